#![no_main]
//! The duration parser of settings and flags (`--longer-than`, DB_CONNECT_TIMEOUT, ...).

use libfuzzer_sys::fuzz_target;

use tend_core::settings;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = settings::parse_duration(&text) {
        assert!(d <= settings::MAX_DURATION);
    }
});
