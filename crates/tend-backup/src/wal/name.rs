//! The names PostgreSQL gives the files it archives, and what they say: a segment's
//! timeline and position, a timeline's history file, a base backup's `.backup` label, the
//! `.partial` segment a promotion leaves.

use std::fmt;

/// The first 8 hex digits of a segment's name: its timeline.
const TIMELINE_DIGITS: usize = 8;
/// A segment's name: timeline, then the high and low 32 bits of its number in "log" units.
const SEGMENT_DIGITS: usize = 24;

/// A file PostgreSQL hands `archive_command` (or asks `restore_command` for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalFile {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: a full segment.
    Segment(SegmentName),
    /// `TTTTTTTTXXXXXXXXYYYYYYYY.partial`: the last, incomplete segment of a timeline a
    /// promotion left.
    Partial(SegmentName),
    /// `TTTTTTTTXXXXXXXXYYYYYYYY.OOOOOOOO.backup`: a base backup's label, named by the
    /// segment and offset where it started.
    Backup { segment: SegmentName, offset: u32 },
    /// `TTTTTTTT.history`: how a timeline branched from its parents.
    History { timeline: u32 },
}

/// A segment's name, as its three numbers. `log` and `seg` are the name's high and low
/// parts: the segment number is `log * segments_per_log + seg`, which depends on the
/// cluster's segment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    pub timeline: u32,
    pub log: u32,
    pub seg: u32,
}

impl SegmentName {
    /// The segment holding byte `lsn` of the WAL, on `timeline`.
    pub fn of_lsn(timeline: u32, lsn: u64, segment_size: u64) -> SegmentName {
        SegmentName::from_number(timeline, lsn / segment_size, segment_size)
    }

    /// The segment with number `number`.
    pub fn from_number(timeline: u32, number: u64, segment_size: u64) -> SegmentName {
        let per_log = segments_per_log(segment_size);
        SegmentName {
            timeline,
            log: (number / per_log) as u32,
            seg: (number % per_log) as u32,
        }
    }

    /// This segment's number (its position in the WAL, counted in segments).
    pub fn number(&self, segment_size: u64) -> u64 {
        u64::from(self.log) * segments_per_log(segment_size) + u64::from(self.seg)
    }

    /// The LSN of this segment's first byte.
    pub fn start_lsn(&self, segment_size: u64) -> u64 {
        self.number(segment_size).saturating_mul(segment_size)
    }

    /// The next segment on the same timeline.
    pub fn next(&self, segment_size: u64) -> SegmentName {
        SegmentName::from_number(self.timeline, self.number(segment_size) + 1, segment_size)
    }

    /// `TTTTTTTTXXXXXXXX`: the timeline and log, which group 4 GiB of WAL (the folder the
    /// archive keeps them in).
    pub fn log_prefix(&self) -> String {
        format!("{:08X}{:08X}", self.timeline, self.log)
    }

    fn parse(text: &str) -> Option<SegmentName> {
        if text.len() != SEGMENT_DIGITS || !text.bytes().all(is_upper_hex) {
            return None;
        }
        let part = |range: std::ops::Range<usize>| u32::from_str_radix(&text[range], 16).ok();
        Some(SegmentName {
            timeline: part(0..8)?,
            log: part(8..16)?,
            seg: part(16..24)?,
        })
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

/// How many segments one "log" (4 GiB of WAL) holds: 256 for 16 MiB segments. A segment
/// size outside PostgreSQL's (a power of two from 1 MiB to 1 GiB) counts as 16 MiB.
fn segments_per_log(segment_size: u64) -> u64 {
    let size = if is_segment_size(segment_size) {
        segment_size
    } else {
        DEFAULT_SEGMENT_SIZE
    };
    0x1_0000_0000 / size
}

/// PostgreSQL's default WAL segment size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// Is `size` a segment size PostgreSQL allows (`initdb --wal-segsize`)?
pub fn is_segment_size(size: u64) -> bool {
    size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size)
}

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

impl WalFile {
    /// Reads a file name as PostgreSQL writes them (upper-case hex); anything else is not a
    /// WAL file.
    pub fn parse(name: &str) -> Option<WalFile> {
        if let Some(timeline) = name.strip_suffix(".history") {
            if timeline.len() != TIMELINE_DIGITS || !timeline.bytes().all(is_upper_hex) {
                return None;
            }
            let timeline = u32::from_str_radix(timeline, 16).ok()?;
            return Some(WalFile::History { timeline });
        }
        if let Some(segment) = name.strip_suffix(".partial") {
            return SegmentName::parse(segment).map(WalFile::Partial);
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (segment, offset) = rest.split_once('.')?;
            if offset.len() != 8 || !offset.bytes().all(is_upper_hex) {
                return None;
            }
            return Some(WalFile::Backup {
                segment: SegmentName::parse(segment)?,
                offset: u32::from_str_radix(offset, 16).ok()?,
            });
        }
        SegmentName::parse(name).map(WalFile::Segment)
    }

    /// The segment a segment-shaped file is (or labels).
    pub fn segment(&self) -> Option<SegmentName> {
        match self {
            WalFile::Segment(s) | WalFile::Partial(s) => Some(*s),
            WalFile::Backup { segment, .. } => Some(*segment),
            WalFile::History { .. } => None,
        }
    }

    /// The folder of the archive that keeps it: the segment's timeline and log, or
    /// `history`.
    pub fn folder(&self) -> String {
        match self.segment() {
            Some(segment) => segment.log_prefix(),
            None => HISTORY_FOLDER.to_string(),
        }
    }

    /// Does the file start with a WAL page header (a segment, whole or partial)?
    pub fn holds_wal(&self) -> bool {
        matches!(self, WalFile::Segment(_) | WalFile::Partial(_))
    }
}

/// The archive's folder of history files.
pub const HISTORY_FOLDER: &str = "history";

impl fmt::Display for WalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalFile::Segment(s) => write!(f, "{s}"),
            WalFile::Partial(s) => write!(f, "{s}.partial"),
            WalFile::Backup { segment, offset } => write!(f, "{segment}.{offset:08X}.backup"),
            WalFile::History { timeline } => write!(f, "{timeline:08X}.history"),
        }
    }
}

/// `wal_segment_size` as `current_setting` shows it (`16MB`, `1GB`); anything else is the
/// default size.
pub fn parse_segment_size(text: &str) -> u64 {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let Ok(n) = digits.parse::<u64>() else {
        return DEFAULT_SEGMENT_SIZE;
    };
    let size = match text[digits.len()..].trim() {
        "kB" => n << 10,
        "MB" => n << 20,
        "GB" => n << 30,
        _ => return DEFAULT_SEGMENT_SIZE,
    };
    if is_segment_size(size) {
        size
    } else {
        DEFAULT_SEGMENT_SIZE
    }
}

/// Reads an LSN as PostgreSQL prints it (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.trim().split_once('/')?;
    if high.is_empty() || low.is_empty() || high.len() > 8 || low.len() > 8 {
        return None;
    }
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some((u64::from(high) << 32) | u64::from(low))
}

/// Writes an LSN as PostgreSQL prints it.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = DEFAULT_SEGMENT_SIZE;

    #[test]
    fn names_read_back_as_written() {
        for name in [
            "000000010000000000000001",
            "0000000A00000003000000FF",
            "000000010000000000000005.partial",
            "000000010000000000000002.00000028.backup",
            "00000002.history",
        ] {
            let file = WalFile::parse(name).unwrap_or_else(|| panic!("{name} parses"));
            assert_eq!(file.to_string(), name);
        }
    }

    #[test]
    fn other_names_are_not_wal() {
        for name in [
            "",
            "00000001000000000000001",
            "0000000100000000000000010",
            "00000001000000000000000g",
            "000000010000000000000001.ready",
            "archive_status",
            "RECOVERYXLOG",
            "0000000100000000000000ab",
            "1.history",
            "000000010000000000000002.28.backup",
            "000000010000000000000002.backup",
            "+0000001.history",
        ] {
            assert_eq!(WalFile::parse(name), None, "{name}");
        }
    }

    #[test]
    fn segment_numbers_follow_the_segment_size() {
        let s = SegmentName::of_lsn(1, 0x1_0300_0028, MB16);
        assert_eq!(s.to_string(), "000000010000000100000003");
        assert_eq!(s.next(MB16).to_string(), "000000010000000100000004");
        let last = WalFile::parse("0000000100000001000000FF")
            .and_then(|f| f.segment())
            .unwrap();
        assert_eq!(last.next(MB16).to_string(), "000000010000000200000000");
        // 64 MiB segments: 64 per log.
        let big = SegmentName::from_number(1, 64, 64 << 20);
        assert_eq!(big.to_string(), "000000010000000100000000");
        assert_eq!(big.start_lsn(64 << 20), 64 * (64 << 20));
    }

    #[test]
    fn segment_sizes_read_as_the_server_shows_them() {
        assert_eq!(parse_segment_size("16MB"), 16 << 20);
        assert_eq!(parse_segment_size("1GB"), 1 << 30);
        assert_eq!(parse_segment_size("64MB"), 64 << 20);
        assert_eq!(parse_segment_size("3MB"), DEFAULT_SEGMENT_SIZE);
        assert_eq!(parse_segment_size("lots"), DEFAULT_SEGMENT_SIZE);
    }

    #[test]
    fn lsns_read_back_as_written() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x/1"), None);
        assert_eq!(parse_lsn("1/"), None);
        assert_eq!(parse_lsn("123456789/1"), None);
    }
}
