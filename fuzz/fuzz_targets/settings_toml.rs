#![no_main]
//! tend.toml: any bytes, decoded and checked as Settings::resolve reads the file.

use libfuzzer_sys::fuzz_target;

use tend_core::settings;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("tend.toml");
    if let Err(e) = settings::parse_config_file(path, data) {
        let _ = e.to_string();
    }
});
