//! The local spool: where `tend wal-push` keeps files while the store cannot take them, so
//! a store outage does not stop archiving (PostgreSQL would keep every segment in
//! `pg_wal` until the disk fills). Files are kept sealed, as the archive stores them
//! (compressed, encrypted for the archive's key), one file each, named
//! `<WAL file>.<sha256>.zst.age`, written to a temporary name, synced and renamed, so a
//! file in the spool is whole. The spool holds at most its cap in bytes; past it a push
//! fails and PostgreSQL keeps the WAL itself. Files leave the spool in name order (the
//! order PostgreSQL archived them), each deleted only once the store has it.
//!
//! One process at a time works on a spool: [`Spool::lock`] takes an exclusive `flock` on
//! its `.lock` file (PostgreSQL runs one archive_command at a time, but `tend serve` may
//! drain at the same moment). `.store-away` records when the store was first found away
//! (its contents) and last tried (its modification time), so pushes during an outage go
//! straight to the spool instead of each waiting for the store.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use super::{Archive, WalError, WalFile, is_sha256, short};

const LOCK_FILE: &str = ".lock";
const STORE_AWAY_FILE: &str = ".store-away";
const SUFFIX: &str = ".zst.age";

/// One server's spool: `<pitr.spool_dir>/<system identifier>/`.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

/// A file waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledFile {
    pub file: WalFile,
    /// SHA-256 of the plain bytes.
    pub sha256: String,
    /// Bytes kept (sealed).
    pub bytes: u64,
    pub path: PathBuf,
}

/// What the spool holds now, for `pitr status`, checks and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolState {
    pub dir: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub max_bytes: u64,
    /// The oldest file waiting (the next to drain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<String>,
    /// When the oldest file was spooled (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_spooled_at: Option<String>,
    /// How long the oldest file has waited, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_seconds: Option<u64>,
    /// When a push first found the store away, while it still is (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_away_since: Option<String>,
}

/// What adding a file to the spool did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spooled {
    /// Kept now: bytes written.
    Added(u64),
    /// The same file with the same contents was waiting already.
    AlreadySpooled,
}

/// The spool's exclusive lock, released when dropped.
#[derive(Debug)]
pub struct SpoolLock {
    _file: File,
}

/// When the store was found away, and when a push last tried it.
#[derive(Debug, Clone, Copy)]
pub struct StoreAway {
    pub since: SystemTime,
    pub last_try: SystemTime,
}

impl Spool {
    /// The spool of the server `system` under `root` (`pitr.spool_dir`).
    pub fn new(root: &Path, system: u64, max_bytes: u64) -> Spool {
        Spool {
            dir: root.join(system.to_string()),
            max_bytes,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn write_error(&self, path: PathBuf) -> impl FnOnce(std::io::Error) -> WalError {
        move |source| WalError::Write { path, source }
    }

    /// Creates the spool's folder (and its parents).
    pub fn create(&self) -> Result<(), WalError> {
        std::fs::create_dir_all(&self.dir).map_err(self.write_error(self.dir.clone()))
    }

    /// Creates the spool's folder for the server whose data directory is `data_dir`: when
    /// this process is root, the folders it makes go to the data directory's owner (the
    /// server's archive_command writes there); folders that were there stay as they are.
    pub fn create_for_server(&self, data_dir: &Path) -> Result<(), WalError> {
        let made: Vec<PathBuf> = self
            .dir
            .ancestors()
            .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
            .map(Path::to_path_buf)
            .collect();
        self.create()?;
        let Some((uid, gid)) = super::server_owner_if_root(data_dir)? else {
            return Ok(());
        };
        for dir in made.iter().rev() {
            std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
                .map_err(self.write_error(dir.clone()))?;
        }
        Ok(())
    }

    /// Takes the spool's lock, waiting for another process that holds it.
    pub fn lock(&self) -> Result<SpoolLock, WalError> {
        self.create()?;
        let path = self.dir.join(LOCK_FILE);
        // Read-only when it exists: flock needs no more, and another OS user may own it.
        let file = File::open(&path)
            .or_else(|_| {
                File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            })
            .map_err(self.write_error(path.clone()))?;
        file.lock().map_err(self.write_error(path))?;
        Ok(SpoolLock { _file: file })
    }

    /// The files waiting, in the order they drain (name order). A spool folder that does
    /// not exist is empty; temporary files of an interrupted write are not listed.
    pub fn files(&self) -> Result<Vec<SpooledFile>, WalError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(WalError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| WalError::Read {
                path: self.dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(parsed) = name.to_str().and_then(parse_spooled_name) else {
                continue;
            };
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(SpooledFile {
                file: parsed.0,
                sha256: parsed.1,
                bytes,
                path: entry.path(),
            });
        }
        files.sort_by(|a, b| a.file.cmp(&b.file).then(a.sha256.cmp(&b.sha256)));
        Ok(files)
    }

    /// What the spool holds now (without its lock: a reading, not a decision).
    pub fn state(&self) -> Result<SpoolState, WalError> {
        let files = self.files()?;
        let oldest = files.first();
        let spooled_at = oldest.and_then(|f| std::fs::metadata(&f.path).ok()?.modified().ok());
        Ok(SpoolState {
            dir: self.dir.clone(),
            files: files.len(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            max_bytes: self.max_bytes,
            oldest: oldest.map(|f| f.file.to_string()),
            oldest_spooled_at: spooled_at.map(rfc3339),
            oldest_age_seconds: spooled_at.map(|t| t.elapsed().map(|d| d.as_secs()).unwrap_or(0)),
            store_away_since: self.store_away().map(|a| rfc3339(a.since)),
        })
    }

    /// Keeps a sealed file until the store takes it. Fails when the spool would pass its
    /// cap, and when a file of this name with other contents is waiting.
    pub fn add(
        &self,
        _lock: &SpoolLock,
        file: &WalFile,
        sha256: &str,
        sealed: &[u8],
    ) -> Result<Spooled, WalError> {
        let files = self.files()?;
        if let Some(waiting) = files.iter().find(|f| f.file == *file) {
            if waiting.sha256 == sha256 {
                return Ok(Spooled::AlreadySpooled);
            }
            return Err(WalError::SpoolConflict {
                name: file.to_string(),
                dir: self.dir.clone(),
                spooled: short(&waiting.sha256),
                pushed: short(sha256),
            });
        }
        let held: u64 = files.iter().map(|f| f.bytes).sum();
        let need = sealed.len() as u64;
        if held + need > self.max_bytes {
            return Err(WalError::SpoolFull {
                dir: self.dir.clone(),
                held,
                max: self.max_bytes,
            });
        }
        let name = format!("{file}.{sha256}{SUFFIX}");
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        let written = (|| {
            let mut out = File::create(&temporary)?;
            out.write_all(sealed)?;
            out.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(source) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(WalError::Write { path, source });
        }
        Ok(Spooled::Added(need))
    }

    /// Sends the waiting files to the archive in order, deleting each once the store has
    /// it. Stops at the first failure, returning how many went and the error.
    pub async fn drain(
        &self,
        _lock: &SpoolLock,
        archive: &Archive<'_>,
        each_within: std::time::Duration,
    ) -> (usize, Result<(), WalError>) {
        let files = match self.files() {
            Ok(files) => files,
            Err(e) => return (0, Err(e)),
        };
        let mut sent = 0;
        for waiting in files {
            let sealed = match std::fs::read(&waiting.path) {
                Ok(bytes) => Bytes::from(bytes),
                Err(source) => {
                    return (
                        sent,
                        Err(WalError::Read {
                            path: waiting.path,
                            source,
                        }),
                    );
                }
            };
            let pushed = tokio::time::timeout(
                each_within,
                archive.push_sealed(&waiting.file, &waiting.sha256, sealed),
            )
            .await
            .unwrap_or_else(|_| Err(WalError::StoreTimeout(each_within)));
            if let Err(e) = pushed {
                return (sent, Err(e));
            }
            if let Err(source) = std::fs::remove_file(&waiting.path) {
                return (
                    sent,
                    Err(WalError::Write {
                        path: waiting.path,
                        source,
                    }),
                );
            }
            sent += 1;
        }
        (sent, Ok(()))
    }

    /// When the store was found away, if it has not been found back since.
    pub fn store_away(&self) -> Option<StoreAway> {
        let path = self.dir.join(STORE_AWAY_FILE);
        let last_try = std::fs::metadata(&path).ok()?.modified().ok()?;
        let since = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<jiff::Timestamp>().ok())
            .and_then(|t| u64::try_from(t.as_second()).ok())
            .map(|seconds| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
            .unwrap_or(last_try);
        Some(StoreAway { since, last_try })
    }

    /// Records that the store did not take a file just now.
    pub fn mark_store_away(&self, _lock: &SpoolLock) {
        let path = self.dir.join(STORE_AWAY_FILE);
        // Best effort: without the mark, the next push tries the store again.
        match File::options().write(true).open(&path) {
            Ok(file) => {
                let _ = file.set_modified(SystemTime::now());
            }
            Err(_) => {
                let _ = std::fs::write(&path, jiff::Timestamp::now().to_string());
            }
        }
    }

    /// Records that the store takes files again.
    pub fn mark_store_back(&self, _lock: &SpoolLock) {
        let _ = std::fs::remove_file(self.dir.join(STORE_AWAY_FILE));
    }
}

/// `<WAL file>.<sha256>.zst.age` into its parts.
fn parse_spooled_name(name: &str) -> Option<(WalFile, String)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (file, sha256) = stem.rsplit_once('.')?;
    is_sha256(sha256).then_some(())?;
    Some((WalFile::parse(file)?, sha256.to_string()))
}

fn rfc3339(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn segment(n: u32) -> WalFile {
        WalFile::parse(&format!("0000000100000000000000{n:02X}")).unwrap()
    }

    #[test]
    fn names_round_trip_and_temporaries_are_skipped() {
        let name = format!("000000010000000000000003.{SHA}{SUFFIX}");
        let (file, sha) = parse_spooled_name(&name).unwrap();
        assert_eq!(file, segment(3));
        assert_eq!(sha, SHA);
        assert!(parse_spooled_name(&format!(".{name}.tmp")).is_none());
        assert!(parse_spooled_name("000000010000000000000003.zst.age").is_none());
        assert!(parse_spooled_name(".lock").is_none());
        let history = format!("00000002.history.{SHA}{SUFFIX}");
        assert!(parse_spooled_name(&history).unwrap().0.to_string() == "00000002.history");
    }

    #[test]
    fn the_cap_holds_and_files_come_out_in_order() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool::new(root.path(), 42, 100);
        let lock = spool.lock().unwrap();
        for n in [5, 3, 4] {
            let sha = format!("{n:064x}");
            assert_eq!(
                spool.add(&lock, &segment(n), &sha, &[n as u8; 30]).unwrap(),
                Spooled::Added(30)
            );
        }
        // The same file again is fine; other contents under its name are not.
        assert_eq!(
            spool
                .add(&lock, &segment(4), &format!("{:064x}", 4), &[4; 30])
                .unwrap(),
            Spooled::AlreadySpooled
        );
        assert!(matches!(
            spool.add(&lock, &segment(4), SHA, &[9; 30]),
            Err(WalError::SpoolConflict { .. })
        ));
        // 90 held: 11 more bytes pass the cap of 100.
        assert!(matches!(
            spool.add(&lock, &segment(6), SHA, &[6; 11]),
            Err(WalError::SpoolFull {
                held: 90,
                max: 100,
                ..
            })
        ));
        assert_eq!(
            spool.add(&lock, &segment(6), SHA, &[6; 10]).unwrap(),
            Spooled::Added(10)
        );
        let order: Vec<String> = spool
            .files()
            .unwrap()
            .iter()
            .map(|f| f.file.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000005",
                "000000010000000000000006"
            ]
        );
        let state = spool.state().unwrap();
        assert_eq!((state.files, state.bytes, state.max_bytes), (4, 100, 100));
        assert_eq!(state.oldest.as_deref(), Some("000000010000000000000003"));
        assert!(state.store_away_since.is_none());
        spool.mark_store_away(&lock);
        let first = spool.store_away().unwrap().since;
        spool.mark_store_away(&lock);
        assert_eq!(spool.store_away().unwrap().since, first);
        assert!(spool.state().unwrap().store_away_since.is_some());
        spool.mark_store_back(&lock);
        assert!(spool.store_away().is_none());
    }
}
