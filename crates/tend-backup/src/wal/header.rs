//! What a WAL segment says about itself in its first page's long header, and the system
//! identifier a data directory's `global/pg_control` starts with: how `wal-push` knows a
//! file belongs to the server it archives for, without a connection.
//!
//! The layout (PostgreSQL's `XLogLongPageHeaderData`, native byte order, stable since 9.x):
//! magic u16 @0, info u16 @2, timeline u32 @4, page address u64 @8, remaining length u32
//! @16, (padding), system identifier u64 @24, segment size u32 @32, block size u32 @36.

/// The bytes of the long page header.
pub const LONG_HEADER_BYTES: usize = 40;
/// `XLP_LONG_HEADER`: the first page of a segment carries the long header.
const XLP_LONG_HEADER: u16 = 0x0002;

/// What a segment's first page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `XLOG_PAGE_MAGIC`: changes with each major version's WAL format.
    pub magic: u16,
    /// The timeline the page was written on (a new timeline's first segment starts with
    /// its parent's pages, so this may be lower than the name's).
    pub timeline: u32,
    /// The LSN of the page's first byte: the segment's start.
    pub page_address: u64,
    pub system_identifier: u64,
    pub segment_size: u32,
    pub block_size: u32,
}

/// Why a file is not the segment its name says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("it is {0} bytes long, shorter than a WAL page header")]
    Short(usize),
    #[error("its first page has no long header (not a WAL segment, or damaged)")]
    NotLong,
    #[error("its header names a segment size of {0} bytes, which PostgreSQL never uses")]
    SegmentSize(u32),
    #[error("it is {file} bytes long, and its header says segments are {header} bytes")]
    Length { file: u64, header: u32 },
}

impl SegmentHeader {
    /// Reads the long header at the start of `bytes` (a segment's first bytes).
    pub fn parse(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < LONG_HEADER_BYTES {
            return Err(HeaderError::Short(bytes.len()));
        }
        let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        let u32_at =
            |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("four bytes"));
        let u64_at =
            |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
        if u16_at(2) & XLP_LONG_HEADER == 0 {
            return Err(HeaderError::NotLong);
        }
        let header = SegmentHeader {
            magic: u16_at(0),
            timeline: u32_at(4),
            page_address: u64_at(8),
            system_identifier: u64_at(24),
            segment_size: u32_at(32),
            block_size: u32_at(36),
        };
        if !super::name::is_segment_size(u64::from(header.segment_size)) {
            return Err(HeaderError::SegmentSize(header.segment_size));
        }
        Ok(header)
    }

    /// Checks the file's length against the header (a whole segment; a `.partial` may be
    /// the same size too, since PostgreSQL copies the whole segment).
    pub fn check_length(&self, file_len: u64) -> Result<(), HeaderError> {
        if file_len != u64::from(self.segment_size) {
            return Err(HeaderError::Length {
                file: file_len,
                header: self.segment_size,
            });
        }
        Ok(())
    }
}

/// The system identifier at the start of `global/pg_control`.
pub fn control_system_identifier(pg_control: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = pg_control.get(..8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(bytes))
}

/// Reads the system identifier of the data directory `data_dir`.
pub fn data_directory_system(data_dir: &std::path::Path) -> std::io::Result<u64> {
    let path = data_dir.join("global").join("pg_control");
    let mut bytes = [0u8; 8];
    use std::io::Read;
    std::fs::File::open(&path)?.read_exact(&mut bytes)?;
    Ok(u64::from_ne_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(info: u16, segment_size: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..2].copy_from_slice(&0xD110u16.to_ne_bytes());
        b[2..4].copy_from_slice(&info.to_ne_bytes());
        b[4..8].copy_from_slice(&3u32.to_ne_bytes());
        b[8..16].copy_from_slice(&0x1_0300_0000u64.to_ne_bytes());
        b[24..32].copy_from_slice(&7_300_000_000_000_000_001u64.to_ne_bytes());
        b[32..36].copy_from_slice(&segment_size.to_ne_bytes());
        b[36..40].copy_from_slice(&8192u32.to_ne_bytes());
        b
    }

    #[test]
    fn a_long_header_reads_back() {
        let h = SegmentHeader::parse(&header_bytes(0x0007, 16 << 20)).unwrap();
        assert_eq!(h.magic, 0xD110);
        assert_eq!(h.timeline, 3);
        assert_eq!(h.page_address, 0x1_0300_0000);
        assert_eq!(h.system_identifier, 7_300_000_000_000_000_001);
        assert_eq!(h.segment_size, 16 << 20);
        assert!(h.check_length(16 << 20).is_ok());
        assert!(h.check_length(1000).is_err());
    }

    #[test]
    fn what_is_not_a_segment_is_refused() {
        assert_eq!(
            SegmentHeader::parse(&header_bytes(0x0005, 16 << 20)),
            Err(HeaderError::NotLong)
        );
        assert_eq!(
            SegmentHeader::parse(&header_bytes(0x0002, 12345)),
            Err(HeaderError::SegmentSize(12345))
        );
        assert_eq!(SegmentHeader::parse(&[0; 10]), Err(HeaderError::Short(10)));
    }

    #[test]
    fn pg_control_starts_with_the_system() {
        let mut b = 42u64.to_ne_bytes().to_vec();
        b.extend([0; 100]);
        assert_eq!(control_system_identifier(&b), Some(42));
        assert_eq!(control_system_identifier(&[1, 2]), None);
    }
}
