#![no_main]
//! The pg_dump custom-format reader: header, TOC and data blocks, from any bytes.

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use tend_backup::archive::{DataBlocks, read_toc};

fuzz_target!(|data: &[u8]| {
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
        loop {
            match blocks.chunk_len() {
                Ok(0) | Err(_) => break,
                Ok(len) => {
                    out.clear();
                    if blocks.read_into(len, &mut out).is_err() {
                        return;
                    }
                }
            }
        }
    }
});
