//! Restoring a physical backup into a data directory: choose the base backup (and its
//! increments) for the recovery target, stream each from the store through age and zstd
//! into `tar` (no local copy of the archive), combine increments with pg_combinebackup,
//! then write the recovery settings (`recovery.signal`, `restore_command`, the target) so
//! the server replays the archived WAL up to the target when it starts.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::crypto::{Decryption, OpenError};
use crate::manifest::{BASE, Manifest};
use crate::ops::BackupError;
use crate::pipeline::{ChannelReader, hex};
use crate::store::Store;
use crate::wal::parse_lsn;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreTarget {
    /// The end of the archive (then a new timeline).
    Latest,
    /// As soon as the copy is consistent: the backup itself.
    Immediate,
    /// After the last transaction committed at or before this time.
    Time(jiff::Timestamp),
    Lsn(u64),
    Xid(u64),
    /// A restore point made with `pg_create_restore_point`.
    Name(String),
}

impl std::fmt::Display for RestoreTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreTarget::Latest => f.write_str("the end of the archive"),
            RestoreTarget::Immediate => f.write_str("the moment the copy is consistent"),
            RestoreTarget::Time(t) => write!(f, "{t}"),
            RestoreTarget::Lsn(l) => write!(f, "LSN {}", crate::wal::format_lsn(*l)),
            RestoreTarget::Xid(x) => write!(f, "transaction {x}"),
            RestoreTarget::Name(n) => write!(f, "the restore point {n}"),
        }
    }
}

/// What the server does at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetAction {
    Promote,
    Pause,
    Shutdown,
}

impl TargetAction {
    fn setting(self) -> &'static str {
        match self {
            TargetAction::Promote => "promote",
            TargetAction::Pause => "pause",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

/// How to restore.
#[derive(Clone)]
pub struct PhysicalRestore {
    /// The data directory to write: absent or empty.
    pub dir: PathBuf,
    pub target: RestoreTarget,
    pub action: TargetAction,
    /// The `restore_command` the restored server runs (tend's wal-fetch).
    pub restore_command: String,
    /// The backup keys.
    pub decryption: Decryption,
    /// The WAL archive's key, which opens the backups sealed to it (see
    /// [`super::opener`]); backups sealed with the backup keys open with those.
    pub archive_key: Option<age::x25519::Identity>,
    pub tools: tend_pg::ToolSearch,
    /// More settings for the restored server (an inspection copy turns archiving off).
    pub extra_settings: Vec<(String, String)>,
    pub cancel: CancellationToken,
}

/// What a restore wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoredCluster {
    pub dir: PathBuf,
    /// The backups restored, the full one first.
    pub backups: Vec<String>,
    /// The recovery settings written to `postgresql.auto.conf`.
    pub settings: Vec<(String, String)>,
    /// The major version of the backed-up server (the programs that may start it).
    pub server_major: u32,
    /// Bytes written into the data directory (the tar stream's size).
    pub bytes: u64,
}

/// The backups to restore for `target`, the full one first: backup `id` when given, else
/// the newest physical backup of `system` (of the newest server when `None`) that ends
/// before the target, with the increments it is built on.
pub fn choose_chain(
    catalog: &[Manifest],
    id: Option<&str>,
    target: &RestoreTarget,
) -> Result<Vec<Manifest>, BackupError> {
    let mut physical: Vec<&Manifest> = catalog.iter().filter(|m| m.physical.is_some()).collect();
    // Oldest first by when each became consistent: ids only order to the second.
    physical.sort_by_key(|m| super::recency(m));
    let chosen = match id {
        Some(id) => catalog
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| BackupError::NoSuchBackup(id.to_string()))?,
        None => {
            let newest = physical.last().ok_or_else(|| {
                BackupError::Physical(
                    "the store holds no physical backup; take one with `tend backup run --physical`"
                        .to_string(),
                )
            })?;
            let system = &newest
                .physical
                .as_ref()
                .expect("physical")
                .system_identifier;
            let fits = |m: &&&Manifest| {
                let p = m.physical.as_ref().expect("physical");
                if &p.system_identifier != system {
                    return false;
                }
                match target {
                    RestoreTarget::Time(t) => p
                        .stop_time
                        .parse::<jiff::Timestamp>()
                        .is_ok_and(|stop| stop <= *t),
                    RestoreTarget::Lsn(l) => parse_lsn(&p.stop_lsn).is_some_and(|s| s <= *l),
                    RestoreTarget::Xid(x) => p.next_xid.is_some_and(|n| n <= *x),
                    RestoreTarget::Latest | RestoreTarget::Immediate | RestoreTarget::Name(_) => {
                        true
                    }
                }
            };
            physical.iter().rev().find(fits).copied().ok_or_else(|| {
                BackupError::Physical(format!(
                    "no physical backup of this server ends before the target{}: recovery cannot go back past a backup's end; the oldest ends at {}",
                    match target {
                        RestoreTarget::Xid(_) => " transaction",
                        _ => "",
                    },
                    physical
                        .iter()
                        .find_map(|m| m.physical.as_ref().map(|p| p.stop_time.clone()))
                        .unwrap_or_default()
                ))
            })?
        }
    };
    if chosen.physical.is_none() {
        return Err(BackupError::Physical(format!(
            "backup {} is a logical backup (pg_dump); restore it with `tend restore {0}`, without --physical",
            chosen.id
        )));
    }
    let mut chain = vec![chosen.clone()];
    while let Some(parent) = chain
        .last()
        .and_then(|m| m.physical.as_ref())
        .and_then(|p| p.incremental_of.clone())
    {
        let found = catalog.iter().find(|m| m.id == parent).ok_or_else(|| {
            BackupError::Physical(format!(
                "backup {} is an increment on {parent}, which is not in the store (pruned or damaged); it cannot be restored",
                chain.last().expect("one").id
            ))
        })?;
        chain.push(found.clone());
    }
    chain.reverse();
    Ok(chain)
}

/// Restores `chain` (from [`choose_chain`]) into `options.dir`.
pub async fn restore_physical(
    store: &Store,
    chain: &[Manifest],
    options: &PhysicalRestore,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<RestoredCluster, BackupError> {
    let dir = &options.dir;
    refuse_non_empty(dir)?;
    let major = chain
        .first()
        .and_then(|m| server_major(&m.server_version))
        .unwrap_or(0);
    let result = async {
        let mut bytes = 0;
        if chain.len() == 1 {
            create_private_dir(dir)?;
            bytes += unpack(store, &chain[0], dir, options, on_bytes).await?;
        } else {
            let combine = options.tools.find(
                tend_pg::PgTool::PgCombinebackup,
                tend_pg::VersionNeed::ExactMajor(major),
            )?;
            let mut parts = Vec::new();
            for (i, manifest) in chain.iter().enumerate() {
                let part = sibling(dir, &format!("tend-part-{i}"));
                let _ = std::fs::remove_dir_all(&part);
                create_private_dir(&part)?;
                parts.push(part.clone());
                bytes += unpack(store, manifest, &part, options, on_bytes).await?;
            }
            let _ = std::fs::remove_dir(dir);
            let output = tokio::process::Command::new(&combine.path)
                .arg("-o")
                .arg(dir)
                .args(&parts)
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|source| BackupError::Spawn {
                    program: combine.path.display().to_string(),
                    source,
                })?;
            for part in &parts {
                let _ = std::fs::remove_dir_all(part);
            }
            if !output.status.success() {
                return Err(BackupError::Physical(format!(
                    "pg_combinebackup failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
        }
        let settings = write_recovery(dir, chain, options)?;
        Ok::<_, BackupError>((bytes, settings))
    }
    .await;
    match result {
        Ok((bytes, settings)) => Ok(RestoredCluster {
            dir: dir.clone(),
            backups: chain.iter().map(|m| m.id.clone()).collect(),
            settings,
            server_major: major,
            bytes,
        }),
        Err(e) => {
            // Nothing half-written stays: the directory was empty (or absent) before.
            empty_dir(dir);
            for i in 0..chain.len() {
                let _ = std::fs::remove_dir_all(sibling(dir, &format!("tend-part-{i}")));
            }
            Err(e)
        }
    }
}

/// `dir` must be absent or empty: a restore never writes over files.
fn refuse_non_empty(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Physical(format!(
                    "{} is not empty; a physical restore writes only into an empty or new directory, and nothing was changed",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BackupError::Scratch {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| BackupError::Scratch {
            path: dir.to_path_buf(),
            source,
        })
}

/// Removes what is inside `dir` (it was empty before the restore), keeping `dir`.
fn empty_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Streams one backup's tar from the store into `dir`, checking the stored bytes against
/// the manifest's checksum. Returns the tar stream's size.
async fn unpack(
    store: &Store,
    manifest: &Manifest,
    dir: &Path,
    options: &PhysicalRestore,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, BackupError> {
    let object = manifest
        .objects
        .iter()
        .find(|o| o.name == BASE)
        .ok_or_else(|| BackupError::BadManifest {
            id: manifest.id.clone(),
            reason: format!("it lists no {BASE}"),
        })?;
    let mut stream = store.stream(&store.path(&manifest.id, BASE)).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(16);
    let decryption = super::opener(manifest, &options.decryption, options.archive_key.as_ref());
    let key_name = decryption.describe();
    let target = dir.to_path_buf();
    let id = manifest.id.clone();
    let made_for = manifest
        .encryption
        .recipients
        .iter()
        .map(|r| r.public_key.clone().unwrap_or_else(|| r.kind.clone()))
        .collect::<Vec<_>>()
        .join(", ");
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = written.clone();
    let unpacker = tokio::task::spawn_blocking(move || -> Result<(), UnpackError> {
        // Decrypting and decompressing on one thread, writing the files on this one: the
        // decoding overlaps the writes.
        let (chunks, decoded) = std::sync::mpsc::sync_channel::<Vec<u8>>(DECODED_AHEAD);
        let decoder = std::thread::spawn(move || -> Result<(), UnpackError> {
            let reader = ChannelReader::new(rx);
            let age = decryption.open(reader).map_err(UnpackError::Open)?;
            let mut zstd = zstd::stream::Decoder::new(age).map_err(UnpackError::Read)?;
            loop {
                let mut chunk = vec![0u8; DECODED_CHUNK];
                let n =
                    crate::store::read_full(&mut zstd, &mut chunk).map_err(UnpackError::Read)?;
                if n == 0 {
                    // Read to the end: age authenticated the last chunk and zstd its frame.
                    return Ok(());
                }
                chunk.truncate(n);
                if chunks.send(chunk).is_err() {
                    // The writer stopped; its error says why.
                    return Ok(());
                }
            }
        });
        let counting = crate::pipeline::CountingReader {
            inner: ChunkReader {
                chunks: decoded,
                current: Vec::new(),
                at: 0,
            },
            count: counter,
        };
        let mut archive = tar::Archive::new(counting);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(false);
        let unpacked = archive.unpack(&target).and_then(|()| {
            let mut rest = archive.into_inner();
            std::io::copy(&mut rest, &mut std::io::sink()).map(|_| ())
        });
        // The decoder's failure (a wrong key, damage) is the cause of the writer's.
        decoder
            .join()
            .map_err(|_| UnpackError::Read(std::io::Error::other("the decoder panicked")))??;
        unpacked.map_err(UnpackError::Read)
    });
    let mut hasher = Sha256::new();
    let mut feed_error = None;
    loop {
        let next = tokio::select! {
            biased;
            _ = options.cancel.cancelled() => {
                feed_error = Some(BackupError::RestoreStopped {
                    state: "the directory was emptied again",
                });
                break;
            }
            next = stream.next() => next,
        };
        let Some(chunk) = next else { break };
        match chunk {
            Ok(chunk) => {
                hasher.update(&chunk);
                if tx.send(Ok(chunk)).await.is_err() {
                    break;
                }
                on_bytes(written.load(std::sync::atomic::Ordering::Relaxed));
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                feed_error = Some(e.into());
                break;
            }
        }
    }
    drop(tx);
    let unpacked = unpacker
        .await
        .map_err(|e| BackupError::Pipeline(e.to_string()))?;
    if let Some(e) = feed_error {
        return Err(e);
    }
    let sha256 = hex(&hasher.finalize());
    if sha256 != object.sha256 {
        return Err(BackupError::Physical(format!(
            "backup {id} is damaged: its {BASE} hashes to {}, and its manifest says {}; nothing was kept",
            &sha256[..12],
            &object.sha256[..12.min(object.sha256.len())]
        )));
    }
    match unpacked {
        Ok(()) => {
            // The server's tar does not hold its manifest (pg_basebackup's did): it is
            // stored beside it, and pg_verifybackup and pg_combinebackup read it here.
            let path = dir.join("backup_manifest");
            if !path.exists() {
                let opener =
                    super::opener(manifest, &options.decryption, options.archive_key.as_ref());
                let bytes = super::open_pg_manifest(store, &manifest.id, &opener).await?;
                std::fs::write(&path, bytes).map_err(|e| {
                    BackupError::Physical(format!(
                        "restoring backup {id} into {} failed: writing backup_manifest: {e}",
                        options.dir.display()
                    ))
                })?;
            }
            Ok(written.load(std::sync::atomic::Ordering::Relaxed))
        }
        Err(UnpackError::Open(OpenError::WrongKey)) => Err(BackupError::WrongKey {
            id,
            key: key_name,
            made_for,
        }),
        Err(UnpackError::Open(other)) => Err(BackupError::Physical(format!(
            "backup {id} cannot be decrypted: {}",
            match other {
                OpenError::Damaged(why) | OpenError::Excessive(why) => why,
                OpenError::Io(e) => e.to_string(),
                OpenError::WrongKey => unreachable!("matched above"),
            }
        ))),
        Err(UnpackError::Read(e)) => Err(BackupError::Physical(format!(
            "restoring backup {id} into {} failed: {e}",
            options.dir.display()
        ))),
    }
}

enum UnpackError {
    Open(OpenError),
    Read(std::io::Error),
}

/// Decoded bytes a restore holds between its decoder and its writer: 8 chunks of 1 MiB.
const DECODED_CHUNK: usize = 1 << 20;
const DECODED_AHEAD: usize = 8;

/// The writer's side of the decoded chunks; the end of the channel is the end of input.
struct ChunkReader {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Writes `recovery.signal` and appends the recovery settings to `postgresql.auto.conf`
/// (read after `postgresql.conf`, so they win).
fn write_recovery(
    dir: &Path,
    chain: &[Manifest],
    options: &PhysicalRestore,
) -> Result<Vec<(String, String)>, BackupError> {
    let mut settings = vec![
        (
            "restore_command".to_string(),
            options.restore_command.clone(),
        ),
        ("recovery_target_timeline".to_string(), "latest".to_string()),
    ];
    let target = match &options.target {
        RestoreTarget::Latest => None,
        RestoreTarget::Immediate => Some(("recovery_target", "immediate".to_string())),
        RestoreTarget::Time(t) => Some((
            "recovery_target_time",
            t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        )),
        RestoreTarget::Lsn(l) => Some(("recovery_target_lsn", crate::wal::format_lsn(*l))),
        RestoreTarget::Xid(x) => Some(("recovery_target_xid", x.to_string())),
        RestoreTarget::Name(n) => Some(("recovery_target_name", n.clone())),
    };
    if let Some((name, value)) = target {
        settings.push((name.to_string(), value));
        settings.push((
            "recovery_target_action".to_string(),
            options.action.setting().to_string(),
        ));
    }
    settings.extend(options.extra_settings.iter().cloned());
    let mut text = format!(
        "\n# Recovery settings written by tend restore --physical (backup {}).\n",
        chain.last().map(|m| m.id.as_str()).unwrap_or_default()
    );
    for (name, value) in &settings {
        text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    let write = |path: PathBuf, bytes: &[u8], append: bool| {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|source| BackupError::Scratch { path, source })
    };
    write(dir.join("postgresql.auto.conf"), text.as_bytes(), true)?;
    write(dir.join("recovery.signal"), b"", false)?;
    Ok(settings)
}

/// The major of a `server_version` (`15.18 (Debian ...)`).
fn server_major(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Compression, Encryption, Physical};

    fn manifest(id: &str, stop_time: &str, stop_lsn: &str, parent: Option<&str>) -> Manifest {
        Manifest {
            format: "tend-backup/1".into(),
            id: id.into(),
            database: String::new(),
            server_version: "17.2".into(),
            pg_dump_version: "17.2".into(),
            started_at: stop_time.into(),
            finished_at: stop_time.into(),
            raw_bytes: 1,
            stored_bytes: 1,
            objects: vec![],
            compression: Compression {
                algorithm: "zstd".into(),
                level: 1,
            },
            encryption: Encryption {
                scheme: "age".into(),
                recipients: vec![],
            },
            tables: vec![],
            tend_version: "0".into(),
            physical: Some(Physical {
                system_identifier: "42".into(),
                timeline: 1,
                start_lsn: "0/1000000".into(),
                stop_lsn: stop_lsn.into(),
                start_wal: String::new(),
                stop_wal: String::new(),
                segment_size: 16 << 20,
                stop_time: stop_time.into(),
                next_xid: Some(1000),
                incremental_of: parent.map(str::to_string),
            }),
            checksum: None,
        }
    }

    #[test]
    fn the_chain_is_the_newest_backup_before_the_target_and_its_parents() {
        let catalog = vec![
            manifest("a", "2026-12-01T00:00:00Z", "0/3000000", None),
            manifest("b", "2026-12-02T00:00:00Z", "0/5000000", Some("a")),
            manifest("c", "2026-12-03T00:00:00Z", "0/7000000", Some("b")),
        ];
        let ids = |chain: Vec<Manifest>| chain.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let at = |t: &str| RestoreTarget::Time(t.parse().unwrap());
        assert_eq!(
            ids(choose_chain(&catalog, None, &RestoreTarget::Latest).unwrap()),
            ["a", "b", "c"]
        );
        assert_eq!(
            ids(choose_chain(&catalog, None, &at("2026-12-02T12:00:00Z")).unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            ids(choose_chain(&catalog, None, &RestoreTarget::Lsn(0x400_0000)).unwrap()),
            ["a"]
        );
        assert!(choose_chain(&catalog, None, &at("2026-11-30T00:00:00Z")).is_err());
        assert_eq!(
            ids(choose_chain(&catalog, Some("b"), &RestoreTarget::Latest).unwrap()),
            ["a", "b"]
        );
        let broken = vec![catalog[1].clone(), catalog[2].clone()];
        assert!(choose_chain(&broken, None, &RestoreTarget::Latest).is_err());
        // Two backups in one second: their ids may sort either way, their times do not.
        let same_second = vec![
            manifest(
                "20261204T120000Z-ffff",
                "2026-12-04T12:00:00.2Z",
                "0/5000000",
                None,
            ),
            manifest(
                "20261204T120000Z-0001",
                "2026-12-04T12:00:00.9Z",
                "0/7000000",
                None,
            ),
        ];
        assert_eq!(
            ids(choose_chain(&same_second, None, &RestoreTarget::Latest).unwrap()),
            ["20261204T120000Z-0001"]
        );
    }
}
