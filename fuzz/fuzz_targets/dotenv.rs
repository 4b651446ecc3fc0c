#![no_main]
//! The `.env` parser: any text, and an error is a line number within the file.

use libfuzzer_sys::fuzz_target;

use tend_core::settings;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match settings::parse_dotenv(&text) {
        Ok(vars) => {
            for key in vars.keys() {
                assert!(!key.is_empty() && !key.contains('='));
            }
        }
        Err((line, _)) => assert!(line >= 1 && line <= text.lines().count().max(1)),
    }
});
