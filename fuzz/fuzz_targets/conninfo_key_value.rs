#![no_main]
//! ConnInfo::parse, redaction and secret masking on any text.

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let input = text.to_string();
    common::check_conninfo(&input);
});
