#![no_main]
//! The number-and-unit parsers of settings and flags: durations (`--longer-than`,
//! DB_CONNECT_TIMEOUT, ...) and sizes (`pitr.spool_max`, TEND_WAL_SPOOL_MAX).

use libfuzzer_sys::fuzz_target;

use tend_core::settings;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = settings::parse_duration(&text) {
        assert!(d <= settings::MAX_DURATION);
    }
    if let Ok(bytes) = settings::parse_size(&text) {
        assert!(bytes <= 1_000_000_000_000_000);
    }
});
