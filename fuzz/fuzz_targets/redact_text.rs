#![no_main]
//! redact_text and scrub on any text; a URL password placed in it is always masked.

use libfuzzer_sys::fuzz_target;
use tend_pg::conninfo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = conninfo::redact_text(&text);
    let _ = conninfo::scrub(&text, &conninfo::secret_candidates(&text));
    let wrapped = format!("{text} postgres://app:Zq7xK9wP@db/app {text}");
    let scrubbed = conninfo::redact_text(&wrapped);
    assert!(!scrubbed.contains("Zq7xK9wP") || text.contains("Zq7xK9wP"));
});
