#![no_main]
//! What PostgreSQL hands `wal-push` and `wal-fetch`, and what a physical backup reads:
//! WAL file names, LSNs, a segment's long page header, pg_control's first bytes,
//! and `backup_manifest` text.

use libfuzzer_sys::fuzz_target;
use tend_backup::physical::manifest_wal_ranges;
use tend_backup::wal::{SegmentHeader, WalFile, control_system_identifier, format_lsn, parse_lsn};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(file) = WalFile::parse(&text) {
        // What parses is written back the same.
        assert_eq!(file.to_string(), text);
        if let Some(segment) = file.segment() {
            for size in [1u64 << 20, 16 << 20, 1 << 30, 12345] {
                let _ = segment.next(size);
                let _ = segment.start_lsn(size);
            }
        }
    }
    if let Some(lsn) = parse_lsn(&text) {
        assert_eq!(parse_lsn(&format_lsn(lsn)), Some(lsn));
    }
    if let Ok(header) = SegmentHeader::parse(data) {
        let _ = header.check_length(data.len() as u64);
    }
    let _ = control_system_identifier(data);
    let _ = manifest_wal_ranges(data);
});
