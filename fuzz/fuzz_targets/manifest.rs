#![no_main]
//! Backup manifests as read from the store.

use libfuzzer_sys::fuzz_target;
use tend_backup::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::from_stored_bytes(data) {
        let _ = manifest.checksum_matches();
        let stored = manifest.to_stored_bytes();
        let back = Manifest::from_stored_bytes(&stored).expect("a stored manifest reads back");
        assert!(back.checksum_matches());
    }
});
