//! Reads the tar stream `pg_basebackup -D - -F t` writes as it passes through, and keeps two
//! of its members: `backup_label` (where the backup starts in the WAL) and
//! `backup_manifest` (PostgreSQL's list of files with checksums, and the WAL range the
//! backup needs). The stream itself goes on untouched into compression.
//!
//! A tar member is a 512-byte header (name at 0..100, size at 124..136 in octal or, for
//! large files, base-256; ustar's prefix at 345..500), then its data padded to 512 bytes.
//! Two zero blocks end the archive.

use std::io::{self, Read};
use std::sync::Arc;

/// The largest member kept: a manifest lists every file of the cluster, about 150 bytes
/// each; 256 MiB is well past a million files.
const MAX_KEPT: u64 = 256 * 1024 * 1024;

/// What the stream held, once read.
#[derive(Debug, Default, Clone)]
pub struct TarCapture {
    pub backup_label: Option<Vec<u8>>,
    pub backup_manifest: Option<Vec<u8>>,
    /// The archive's members seen (files and directories).
    pub members: u64,
    /// The stream was not a well-formed tar (what was wrong).
    pub malformed: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Label,
    Manifest,
}

/// Where the parser is.
#[derive(Debug)]
enum State {
    /// Collecting a header block.
    Header,
    /// Inside a member's data: bytes of data left, then padding.
    Data { left: u64, padding: u64 },
    /// After the end-of-archive blocks, or after a malformed header: passes bytes through.
    Done,
}

/// Parses as bytes arrive, from any chunking.
#[derive(Debug)]
pub struct TarParser {
    state: State,
    header: Vec<u8>,
    keeping: Option<(Keep, Vec<u8>)>,
    pub capture: TarCapture,
}

impl Default for TarParser {
    fn default() -> Self {
        TarParser {
            state: State::Header,
            header: Vec::with_capacity(512),
            keeping: None,
            capture: TarCapture::default(),
        }
    }
}

impl TarParser {
    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Header => {
                    let take = (512 - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.header.len() == 512 {
                        let header = std::mem::take(&mut self.header);
                        self.header.reserve(512);
                        self.on_header(&header);
                    }
                }
                State::Data { left, padding } => {
                    if *left > 0 {
                        let take = (*left).min(bytes.len() as u64) as usize;
                        if let Some((_, kept)) = &mut self.keeping {
                            kept.extend_from_slice(&bytes[..take]);
                        }
                        *left -= take as u64;
                        bytes = &bytes[take..];
                        if *left == 0 {
                            self.finish_member();
                        }
                        continue;
                    }
                    let take = (*padding).min(bytes.len() as u64);
                    *padding -= take;
                    bytes = &bytes[take as usize..];
                    if *padding == 0 {
                        self.state = State::Header;
                    }
                }
            }
        }
    }

    fn finish_member(&mut self) {
        match self.keeping.take() {
            Some((Keep::Label, bytes)) => self.capture.backup_label = Some(bytes),
            Some((Keep::Manifest, bytes)) => self.capture.backup_manifest = Some(bytes),
            None => {}
        }
        if let State::Data { padding: 0, .. } = self.state {
            self.state = State::Header;
        }
    }

    fn malformed(&mut self, why: String) {
        self.capture.malformed = Some(why);
        self.keeping = None;
        self.state = State::Done;
    }

    fn on_header(&mut self, header: &[u8]) {
        if header.iter().all(|b| *b == 0) {
            // An end-of-archive block (tar writes two; either ends what we read).
            self.state = State::Done;
            return;
        }
        if !checksum_ok(header) {
            return self.malformed("a tar header's checksum does not match".to_string());
        }
        let Some(size) = member_size(&header[124..136]) else {
            return self.malformed("a tar header's size is not a number".to_string());
        };
        let name = member_name(header);
        let typeflag = header[156];
        self.capture.members += 1;
        // Regular files ('0' or NUL) carry data; so do pax and GNU long-name records,
        // which pg_basebackup does not write but are skipped correctly anyway.
        let keep = match (typeflag, name.as_str()) {
            (b'0' | 0, "backup_label") => Some(Keep::Label),
            (b'0' | 0, "backup_manifest") => Some(Keep::Manifest),
            _ => None,
        };
        self.keeping = match keep {
            Some(_) if size > MAX_KEPT => None,
            Some(kind) => Some((kind, Vec::with_capacity(size as usize))),
            None => None,
        };
        let padding = (512 - size % 512) % 512;
        if size == 0 {
            self.finish_member();
            self.state = State::Header;
        } else {
            self.state = State::Data {
                left: size,
                padding,
            };
        }
    }
}

/// The header's checksum: the sum of its bytes with the checksum field read as spaces.
fn checksum_ok(header: &[u8]) -> bool {
    let Some(stored) = octal(&header[148..156]) else {
        return false;
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// A size field: octal digits (NUL- or space-terminated), or GNU's base-256 for big files.
fn member_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    octal(field)
}

fn octal(field: &[u8]) -> Option<u64> {
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() || text.len() > 22 || !text.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// The member's path: ustar's prefix, a slash, the name (each NUL-terminated).
fn member_name(header: &[u8]) -> String {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &header[range];
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let name = field(0..100);
    let prefix = if &header[257..262] == b"ustar" {
        field(345..500)
    } else {
        String::new()
    };
    let full = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    full.trim_start_matches("./").to_string()
}

/// A reader that feeds what passes through it to a [`TarParser`] shared with the caller.
pub struct TarTap<R> {
    pub inner: R,
    pub parser: Arc<parking_lot::Mutex<TarParser>>,
}

impl<R: Read> Read for TarTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.parser.lock().feed(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: u64, typeflag: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000600");
        let size = format!("{size:011o}");
        h[124..135].copy_from_slice(size.as_bytes());
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = header(name, data.len() as u64, b'0');
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn archive() -> Vec<u8> {
        let mut a = header("base", 0, b'5');
        a.extend(member("backup_label", b"START WAL LOCATION: 0/2000028\n"));
        a.extend(member("global/pg_control", &[7u8; 8192]));
        a.extend(member("PG_VERSION", b"15\n"));
        a.extend(member(
            "backup_manifest",
            br#"{"PostgreSQL-Backup-Manifest-Version": 1}"#,
        ));
        a.extend([0u8; 1024]);
        a
    }

    #[test]
    fn keeps_the_label_and_the_manifest_whatever_the_chunks() {
        let bytes = archive();
        for chunk in [1, 7, 511, 512, 513, 4096, bytes.len()] {
            let mut parser = TarParser::default();
            for piece in bytes.chunks(chunk) {
                parser.feed(piece);
            }
            let c = &parser.capture;
            assert_eq!(c.malformed, None, "chunk {chunk}");
            assert_eq!(c.members, 5, "chunk {chunk}");
            assert_eq!(
                c.backup_label.as_deref(),
                Some(&b"START WAL LOCATION: 0/2000028\n"[..])
            );
            assert!(
                c.backup_manifest
                    .as_deref()
                    .unwrap()
                    .starts_with(b"{\"PostgreSQL")
            );
        }
    }

    #[test]
    fn a_damaged_header_is_reported_not_trusted() {
        let mut bytes = archive();
        bytes[512 + 130] = b'9';
        let mut parser = TarParser::default();
        parser.feed(&bytes);
        assert!(parser.capture.malformed.is_some());
        assert_eq!(parser.capture.backup_manifest, None);
    }

    #[test]
    fn base_256_sizes_read() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[11] = 1;
        field[10] = 2;
        assert_eq!(member_size(&field), Some(513));
        assert_eq!(octal(b"00000001000\0"), Some(512));
        assert_eq!(octal(b"        \0\0\0\0"), None);
    }
}
