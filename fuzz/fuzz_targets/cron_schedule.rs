#![no_main]
//! A `[[schedule]]` entry's `cron` and `time_zone`: parsed as settings are resolved, and
//! when valid, asked for its next and latest times (what the scheduler does with it).

use libfuzzer_sys::fuzz_target;

use tend_core::schedule::CronSchedule;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (expression, zone) = text.split_once('|').unwrap_or((&text, "UTC"));
    if let Ok(schedule) = CronSchedule::parse(expression, zone) {
        let now = chrono::DateTime::from_timestamp(1_796_385_600, 0).expect("a valid time");
        let _ = schedule.next_after(now);
        let _ = schedule.latest_between(now - chrono::Duration::days(2), now);
    }
});
