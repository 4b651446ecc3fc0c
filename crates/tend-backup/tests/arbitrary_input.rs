//! The readers of what comes back from a backup store, fed arbitrary bytes: no panic, no
//! allocation larger than the input calls for. (The cargo-fuzz targets in `fuzz/` run the
//! same code for longer; see docs/fuzzing.md.)

use std::io::Cursor;

use proptest::prelude::*;
use tend_backup::archive::{DataBlocks, read_toc};
use tend_backup::manifest::Manifest;

fn read_archive(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let Ok(toc) = read_toc(&mut cursor) else {
        return;
    };
    assert!(toc.prefix.len() <= data.len());
    if !toc.readable {
        return;
    }
    let mut blocks = DataBlocks::new(&toc, &mut cursor);
    let mut out = Vec::new();
    while let Ok(Some(_)) = blocks.next_block() {
        while let Ok(len) = blocks.chunk_len() {
            if len == 0 {
                break;
            }
            out.clear();
            if blocks.read_into(len, &mut out).is_err() {
                return;
            }
        }
    }
}

/// A custom-format header that reads far enough to reach the TOC, then arbitrary bytes.
fn header() -> Vec<u8> {
    let mut bytes = b"PGDMP".to_vec();
    bytes.extend([1, 14, 0, 4, 8, 1]);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_archive_reader_survives_any_bytes(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        read_archive(&tail);
        let mut data = header();
        data.extend(&tail);
        read_archive(&data);
    }

    #[test]
    fn manifests_of_any_bytes_are_errors_or_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(manifest) = Manifest::from_stored_bytes(&bytes) {
            let _ = manifest.checksum_matches();
            let back = Manifest::from_stored_bytes(&manifest.to_stored_bytes()).unwrap();
            prop_assert!(back.checksum_matches());
        }
    }
}

#[test]
fn a_string_claiming_a_gigabyte_is_an_error_without_allocating_it() {
    let mut data = header();
    // compression flag (v1.14: an int), then the header's timestamp ints; then a string
    // whose length claims 2^30 bytes with none behind it.
    data.extend([0, 0, 0, 0, 0]);
    data.extend([0, 0, 0, 0, 64]);
    assert!(read_toc(&mut Cursor::new(&data)).is_err());
    // The most negative 8-byte integer does not overflow.
    let mut data = b"PGDMP".to_vec();
    data.extend([1, 14, 0, 8, 8, 1]);
    data.extend([1, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    let _ = read_toc(&mut Cursor::new(&data));
}
