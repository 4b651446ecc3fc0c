#![no_main]
//! What a server sends a replication connection (a physical backup's `BASE_BACKUP`):
//! protocol messages, cut into chunks of every size as the network would, and the tagged
//! messages of the backup stream.

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tend_pg::replication::{Message, parse_backup_data, parse_message};

/// Every message `data` holds, fed `chunk` bytes at a time; stops at the first error.
fn messages(data: &[u8], chunk: usize) -> (Vec<Message>, bool) {
    let mut buf = BytesMut::new();
    let mut found = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parse_message(&mut buf) {
                Ok(Some(message)) => found.push(message),
                Ok(None) => break,
                Err(_) => return (found, true),
            }
        }
    }
    (found, false)
}

fuzz_target!(|data: &[u8]| {
    let chunk = 1 + data.first().copied().unwrap_or(0) as usize;
    let (pieces, failed) = messages(data, chunk);
    let (whole, whole_failed) = messages(data, data.len().max(1));
    // Chunking never changes what is read.
    assert_eq!(pieces, whole);
    assert_eq!(failed, whole_failed);
    for message in whole {
        if let Message::CopyData(payload) = message {
            let _ = parse_backup_data(payload);
        }
    }
    let _ = parse_backup_data(Bytes::copy_from_slice(data));
});
