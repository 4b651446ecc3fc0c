//! A reader of pg_dump's custom archive format as tend writes it (`pg_dump -Fc -Z0` to a
//! pipe): the header, the table of contents, then the data blocks in TOC order with no
//! offsets. Written from the format as pg_dump's `pg_backup_archiver.c` and
//! `pg_backup_custom.c` define it (archive versions 1.12 to 1.16, PostgreSQL 9.0 to 17+).
//!
//! It reads what a streamed restore needs and nothing more: the entries (with their
//! section, statements and dependencies) and, for each data block, the raw bytes of its
//! chunks. It records the exact bytes of the header and TOC, so pg_restore can be handed
//! a schema-only archive, or the whole stream again when tend falls back to it.

use std::io::{self, Read};

/// The newest archive version this reader knows (PostgreSQL 17's 1.16).
const NEWEST: (u8, u8) = (1, 16);
/// The oldest it accepts: 1.12 (PostgreSQL 9.0), the first with sections.
const OLDEST: (u8, u8) = (1, 12);
/// Block types of the data part.
pub const BLOCK_DATA: u8 = 1;

/// Where an entry belongs in a restore. Entries without a section of their own (comments,
/// ACLs) take the section of the entry before them, as pg_restore does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    PreData,
    Data,
    PostData,
}

/// One entry of the table of contents.
#[derive(Debug, Clone)]
pub struct TocEntry {
    pub dump_id: i32,
    pub had_dumper: bool,
    pub tag: String,
    pub desc: String,
    pub section: Section,
    pub defn: String,
    pub drop_stmt: String,
    pub copy_stmt: String,
    pub namespace: String,
    pub owner: String,
    pub dependencies: Vec<i32>,
}

/// The header and table of contents of an archive.
#[derive(Debug, Clone)]
pub struct Toc {
    pub version: (u8, u8, u8),
    /// Whether pg_dump compressed the data blocks itself (tend's backups never do).
    pub compressed: bool,
    /// False for an archive newer than this reader knows: nothing after the version was
    /// read, and `prefix` holds the bytes that were.
    pub readable: bool,
    pub entries: Vec<TocEntry>,
    /// The exact bytes of the header and the table of contents.
    pub prefix: Vec<u8>,
    int_size: usize,
}

impl Toc {
    /// A TOC of these entries, for tests of what is done with them.
    #[cfg(test)]
    pub(crate) fn for_tests(entries: Vec<TocEntry>) -> Toc {
        Toc {
            version: (1, 14, 0),
            compressed: false,
            readable: true,
            entries,
            prefix: Vec::new(),
            int_size: 4,
        }
    }
}

/// A malformed or unsupported archive, in words.
fn bad(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads the archive's primitive values, recording what it consumed while `recording`.
struct Primitives<'a, R> {
    inner: &'a mut R,
    int_size: usize,
    recorded: Option<Vec<u8>>,
}

impl<R: Read> Primitives<'_, R> {
    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        if let Some(recorded) = &mut self.recorded {
            recorded.extend_from_slice(buf);
        }
        Ok(())
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    /// pg_dump's integer: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> io::Result<i64> {
        let mut buf = [0u8; 9];
        let n = self.int_size + 1;
        self.exact(&mut buf[..n])?;
        Ok(decode_int(&buf[..n]))
    }

    /// A length-prefixed string; `None` for pg_dump's NULL (length -1).
    fn string(&mut self) -> io::Result<Option<String>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > 1 << 30 {
            return Err(bad(format!("an archive string claims {len} bytes")));
        }
        // Read in steps, so a few bytes claiming a gigabyte cannot allocate one.
        let mut bytes = Vec::new();
        let mut left = len as usize;
        while left > 0 {
            let step = left.min(64 * 1024);
            let start = bytes.len();
            bytes.resize(start + step, 0);
            self.exact(&mut bytes[start..])?;
            left -= step;
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| bad("an archive string is not UTF-8"))
    }

    fn text(&mut self) -> io::Result<String> {
        Ok(self.string()?.unwrap_or_default())
    }
}

fn decode_int(bytes: &[u8]) -> i64 {
    let mut value: i64 = 0;
    for (i, b) in bytes[1..].iter().enumerate() {
        value |= (*b as i64) << (8 * i);
    }
    // An 8-byte magnitude may be i64::MIN, which has no negation: wrap rather than overflow.
    if bytes[0] != 0 {
        value.wrapping_neg()
    } else {
        value
    }
}

/// Reads the header and table of contents from the start of an archive.
pub fn read_toc<R: Read>(reader: &mut R) -> io::Result<Toc> {
    let mut p = Primitives {
        inner: reader,
        int_size: 4,
        recorded: Some(Vec::with_capacity(64 * 1024)),
    };
    let mut magic = [0u8; 5];
    p.exact(&mut magic)?;
    if &magic != b"PGDMP" {
        return Err(bad("it is not a pg_dump custom-format archive"));
    }
    let version = (p.byte()?, p.byte()?, p.byte()?);
    if (version.0, version.1) > NEWEST {
        return Ok(Toc {
            version,
            compressed: false,
            readable: false,
            entries: Vec::new(),
            prefix: p.recorded.take().unwrap_or_default(),
            int_size: 4,
        });
    }
    if (version.0, version.1) < OLDEST {
        return Err(bad(format!(
            "archive version {}.{} is not one tend reads",
            version.0, version.1
        )));
    }
    let at_least = |minor: u8| version.1 >= minor;
    let int_size = p.byte()? as usize;
    if !(1..=8).contains(&int_size) {
        return Err(bad(format!("archive integer size {int_size}")));
    }
    p.int_size = int_size;
    let _offset_size = p.byte()?;
    let format = p.byte()?;
    if format != 1 {
        return Err(bad(format!("archive format {format} is not custom")));
    }
    let compressed = if at_least(15) {
        p.byte()? != 0
    } else {
        p.int()? != 0
    };
    for _ in 0..7 {
        p.int()?; // the creation time
    }
    for _ in 0..3 {
        p.string()?; // the database name, the server's and pg_dump's versions
    }
    let count = p.int()?;
    if !(0..=100_000_000).contains(&count) {
        return Err(bad(format!("the archive claims {count} TOC entries")));
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut current = Section::PreData;
    for _ in 0..count {
        let dump_id = p.int()? as i32;
        let had_dumper = p.int()? != 0;
        let _table_oid = p.string()?;
        let _oid = p.string()?;
        let tag = p.text()?;
        let desc = p.text()?;
        let section = match p.int()? {
            1 => None, // SECTION_NONE: inherits
            2 => Some(Section::PreData),
            3 => Some(Section::Data),
            4 => Some(Section::PostData),
            other => return Err(bad(format!("TOC section {other}"))),
        };
        if let Some(section) = section {
            current = section;
        }
        let defn = p.text()?;
        let drop_stmt = p.text()?;
        let copy_stmt = p.text()?;
        let namespace = p.text()?;
        let _tablespace = p.string()?;
        if at_least(14) {
            let _tableam = p.string()?;
        }
        if at_least(16) {
            let _relkind = p.int()?;
        }
        let owner = p.text()?;
        let _with_oids = p.string()?;
        let mut dependencies = Vec::new();
        while let Some(dep) = p.string()? {
            dependencies.push(
                dep.trim()
                    .parse()
                    .map_err(|_| bad(format!("TOC dependency `{dep}`")))?,
            );
        }
        // The custom format's own part: where the data is (never known in a stream).
        let _data_state = p.byte()?;
        let mut offset = [0u8; 16];
        let off_size = _offset_size as usize;
        if off_size > offset.len() {
            return Err(bad(format!("archive offset size {off_size}")));
        }
        p.exact(&mut offset[..off_size])?;
        entries.push(TocEntry {
            dump_id,
            had_dumper,
            tag,
            desc,
            section: current,
            defn,
            drop_stmt,
            copy_stmt,
            namespace,
            owner,
            dependencies,
        });
    }
    let prefix = p.recorded.take().unwrap_or_default();
    Ok(Toc {
        version,
        compressed,
        readable: true,
        entries,
        prefix,
        int_size,
    })
}

/// Reads the data blocks that follow the table of contents.
pub struct DataBlocks<'a, R> {
    inner: &'a mut R,
    int_size: usize,
}

impl<'a, R: Read> DataBlocks<'a, R> {
    pub fn new(toc: &Toc, inner: &'a mut R) -> DataBlocks<'a, R> {
        DataBlocks {
            inner,
            int_size: toc.int_size,
        }
    }

    fn primitives(&mut self) -> Primitives<'_, R> {
        Primitives {
            inner: self.inner,
            int_size: self.int_size,
            recorded: None,
        }
    }

    /// The next block's type and dump id; `None` at the end of the archive.
    pub fn next_block(&mut self) -> io::Result<Option<(u8, i32)>> {
        let mut first = [0u8; 1];
        loop {
            match self.inner.read(&mut first) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let id = self.primitives().int()?;
        Ok(Some((first[0], id as i32)))
    }

    /// The length of the next chunk of the current data block; 0 ends the block.
    pub fn chunk_len(&mut self) -> io::Result<usize> {
        let len = self.primitives().int()?;
        if !(0..=1 << 30).contains(&len) {
            return Err(bad(format!("a data chunk claims {len} bytes")));
        }
        Ok(len as usize)
    }

    /// Appends the next `len` bytes to `out`.
    pub fn read_into(&mut self, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        // In steps, so a chunk that claims more than the archive holds allocates no more
        // than what is there.
        let mut left = len;
        while left > 0 {
            let step = left.min(1 << 20);
            let start = out.len();
            out.resize(start + step, 0);
            self.inner.read_exact(&mut out[start..])?;
            left -= step;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_sign_and_little_endian_magnitude() {
        assert_eq!(decode_int(&[0, 1, 0, 0, 0]), 1);
        assert_eq!(decode_int(&[1, 1, 0, 0, 0]), -1);
        assert_eq!(decode_int(&[0, 0x10, 0x27, 0, 0]), 10_000);
        assert_eq!(decode_int(&[0, 0xff, 0xff, 0xff, 0x7f]), i32::MAX as i64);
    }

    #[test]
    fn a_foreign_file_is_refused_in_words() {
        let err = read_toc(&mut &b"-- plain SQL, not an archive"[..]).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a pg_dump custom-format archive")
        );
    }
}
