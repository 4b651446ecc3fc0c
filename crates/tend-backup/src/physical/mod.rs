//! Physical backups: the whole cluster through `pg_basebackup` (tar format on its stdout,
//! no WAL in it: the WAL comes from the archive), streamed through zstd and age into the
//! store like a logical backup, with no local copy. The backup's manifest records where it
//! sits in the WAL (PostgreSQL's `backup_label` and `backup_manifest`, read from the
//! stream as it passes) and is written only once the archive holds every segment from the
//! backup's start to its end: a physical backup without its WAL restores nothing.

mod restore;
mod tar_tap;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tend_pg::{ConnInfo, ConnectOptions, ServerFacts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::crypto::Encryption;
use crate::manifest::{BASE, Compression, MANIFEST, Manifest, PG_MANIFEST, Physical, StoredObject};
use crate::ops::{
    BackupError, Marker, Progress, Pumped, db_error, new_id, now_rfc3339, pump, remove_interrupted,
    spawn_producer,
};
use crate::store::{Store, StoreError};
use crate::wal::{Archive, SegmentName, WalFile, format_lsn, parse_lsn};

pub use restore::{
    PhysicalRestore, RestoreTarget, RestoredCluster, TargetAction, choose_chain, restore_physical,
};
pub use tar_tap::{TarCapture, TarParser, TarTap};
pub use verify::verify_physical;

/// Settings of a physical backup.
#[derive(Debug, Clone)]
pub struct PhysicalOptions {
    pub tools: tend_pg::ToolSearch,
    pub encryption: Encryption,
    pub level: i32,
    pub threads: u32,
    pub connect: ConnectOptions,
    /// How long to wait, after pg_basebackup ends, for the archive to hold the WAL the
    /// backup needs.
    pub wal_wait: Duration,
    /// PostgreSQL 17+: an increment on the newest physical backup of the server.
    pub incremental: bool,
    pub cancel: CancellationToken,
}

/// What `backup_label` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel {
    pub start_lsn: u64,
    pub timeline: u32,
}

impl BackupLabel {
    /// Reads `START WAL LOCATION: 0/2000028 (file ...)` and `START TIMELINE: 1`.
    pub fn parse(text: &str) -> Option<BackupLabel> {
        let mut start = None;
        let mut timeline = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("START WAL LOCATION:") {
                start = parse_lsn(rest.split_whitespace().next()?);
            } else if let Some(rest) = line.strip_prefix("START TIMELINE:") {
                timeline = rest.trim().parse().ok();
            }
        }
        Some(BackupLabel {
            start_lsn: start?,
            timeline: timeline?,
        })
    }
}

/// One range of WAL PostgreSQL's manifest says the backup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRange {
    pub timeline: u32,
    pub start: u64,
    pub end: u64,
}

/// The `WAL-Ranges` of a `backup_manifest`.
pub fn manifest_wal_ranges(manifest: &[u8]) -> Option<Vec<WalRange>> {
    let value: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    value
        .get("WAL-Ranges")?
        .as_array()?
        .iter()
        .map(|r| {
            Some(WalRange {
                timeline: u32::try_from(r.get("Timeline")?.as_u64()?).ok()?,
                start: parse_lsn(r.get("Start-LSN")?.as_str()?)?,
                end: parse_lsn(r.get("End-LSN")?.as_str()?)?,
            })
        })
        .collect()
}

/// The segments a WAL range spans (the one holding `end - 1` is the last).
fn segments_of(range: &WalRange, segment_size: u64) -> Vec<SegmentName> {
    let first = SegmentName::of_lsn(range.timeline, range.start, segment_size);
    let last = SegmentName::of_lsn(
        range.timeline,
        range.end.max(range.start + 1) - 1,
        segment_size,
    );
    let mut all = vec![first];
    let mut next = first;
    while next < last {
        next = next.next(segment_size);
        all.push(next);
    }
    all
}

/// Takes a physical backup of the server `info` reaches into `store`. The server must
/// archive its WAL into the same store (`tend pitr enable`). Returns its manifest.
pub async fn backup_physical(
    info: &ConnInfo,
    store: &Store,
    options: &PhysicalOptions,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Manifest, BackupError> {
    let started_at = now_rfc3339();
    let session = tend_pg::connect(info, &options.connect).await?;
    let facts = ServerFacts::read(&session)
        .await
        .map_err(db_error("reading the server's facts"))?;
    let row = session
        .query_one(
            "SELECT (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
                    (SELECT system_identifier::text FROM pg_control_system()),
                    current_setting('archive_mode'), current_setting('archive_command'),
                    current_setting('wal_segment_size'),
                    coalesce(current_setting('summarize_wal', true), 'off')",
            &[],
        )
        .await
        .map_err(db_error("reading the server's settings"))?;
    let may_replicate: bool = row.get(0);
    let system: String = row.get(1);
    let archive_mode: String = row.get(2);
    let archive_command: String = row.get(3);
    let segment_size = crate::wal::parse_segment_size(&row.get::<_, String>(4));
    let summarize_wal: String = row.get(5);
    if !may_replicate {
        return Err(BackupError::Physical(format!(
            "the role {} may not take a physical backup, which needs the REPLICATION attribute (or superuser): ALTER ROLE {0} REPLICATION, or back up as another role (--database-url)",
            facts.user
        )));
    }
    if archive_mode == "off" || !crate::wal::is_tend_archive_command(&archive_command) {
        return Err(BackupError::Physical(
            "the server does not archive its WAL with tend, and a physical backup cannot be restored without its WAL: run `tend pitr enable` first".to_string(),
        ));
    }
    let system_id: u64 = system.parse().unwrap_or_default();
    let archive = Archive::new(store, system_id);
    archive.require_info().await.map_err(Box::new)?;
    let need = tend_pg::VersionNeed::AtLeastMajor(facts.major());
    let pg_basebackup = options.tools.find(tend_pg::PgTool::PgBasebackup, need)?;
    let parent = if options.incremental {
        if facts.major() < 17 {
            return Err(BackupError::Physical(format!(
                "incremental backups need PostgreSQL 17 or later, and the server is {}",
                facts.major()
            )));
        }
        if summarize_wal != "on" {
            return Err(BackupError::Physical(
                "incremental backups need summarize_wal = on on the server (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf())".to_string(),
            ));
        }
        Some(newest_of_system(store, &system).await?.ok_or_else(|| {
            BackupError::Physical(
                "an incremental backup needs a physical backup of this server to build on; take a full one first (tend backup run --physical)".to_string(),
            )
        })?)
    } else {
        None
    };
    drop(session);

    let id = new_id();
    let marker = Marker::new(store, &id);
    let marker_path = marker.path_of();
    marker.write(|_| {}).await?;
    on_progress(Progress::Started {
        id: id.clone(),
        tables: 0,
    });
    let scratch = tempfile_dir()?;
    let result = async {
        let mut args = vec![
            "--pgdata=-".to_string(),
            "--format=tar".to_string(),
            "--wal-method=none".to_string(),
            "--checkpoint=fast".to_string(),
            "--no-password".to_string(),
            format!("--label=tend {id}"),
        ];
        if let Some(parent) = &parent {
            let path = scratch.join("parent_manifest");
            let bytes = read_pg_manifest(store, &parent.id, &options.encryption_for_read()).await;
            let bytes = bytes?;
            std::fs::write(&path, bytes).map_err(|source| BackupError::Scratch {
                path: path.clone(),
                source,
            })?;
            args.push(format!("--incremental={}", path.display()));
        }
        let (dbname, env) = info.for_child_program();
        args.push(format!("--dbname={dbname}"));
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let raw = Arc::new(AtomicU64::new(0));
        let stored = Arc::new(AtomicU64::new(0));
        let parser = Arc::new(parking_lot::Mutex::new(TarParser::default()));
        let producer = spawn_producer(
            pg_basebackup.path.clone(),
            args,
            env,
            (options.encryption.clone(), options.level, options.threads),
            tx,
            raw.clone(),
            stored.clone(),
            Some(parser.clone()),
        );
        let data_path = store.path(&id, BASE);
        let mut writer = store.upload(&data_path).recorded_by(marker.recorder());
        let pumped = pump(&mut rx, &mut writer, &marker, &options.cancel, || {
            on_progress(Progress::Bytes {
                raw: raw.load(Ordering::Relaxed),
                stored: stored.load(Ordering::Relaxed),
            })
        })
        .await;
        drop(rx);
        let produced = producer
            .await
            .map_err(|e| BackupError::Pipeline(e.to_string()))
            .and_then(|r| r);
        let sha256 = match (pumped, produced) {
            (Pumped::Interrupted, _) => {
                let _ = writer.abort().await;
                return Err(None);
            }
            (Pumped::MarkerFailed(e), _) => {
                let _ = writer.abort().await;
                return Err(Some(e.into()));
            }
            (Pumped::UploadFailed(e), _) => {
                let _ = writer.abort().await;
                return Err(Some(BackupError::from(StoreError::Object {
                    store: store.description.clone(),
                    action: "write",
                    path: data_path.to_string(),
                    source: Box::new(e),
                })));
            }
            (Pumped::Done, Err(e)) => {
                let _ = writer.abort().await;
                return Err(Some(e));
            }
            (Pumped::Done, Ok(sha256)) => sha256,
        };
        // pg_basebackup has ended: the backup is consistent from here on.
        let stop_time = jiff::Timestamp::now();
        let next_xid = next_xid(info, &options.connect).await;
        writer.finish().await.map_err(|e| {
            Some(BackupError::Upload {
                source: Box::new(e),
            })
        })?;
        let capture = parser.lock().capture.clone();
        let (label, ranges, pg_manifest) = read_capture(&capture).map_err(Some)?;
        let mut objects = vec![StoredObject {
            name: BASE.to_string(),
            bytes: stored.load(Ordering::Relaxed),
            sha256,
        }];
        objects.push(
            store_small(store, &id, PG_MANIFEST, &pg_manifest, options)
                .await
                .map_err(Some)?,
        );
        wait_for_wal(&archive, &ranges, segment_size, options)
            .await
            .map_err(Some)?;
        let first = ranges
            .iter()
            .map(|r| SegmentName::of_lsn(r.timeline, r.start, segment_size))
            .min()
            .expect("one range at least");
        let last = ranges
            .iter()
            .flat_map(|r| segments_of(r, segment_size))
            .max()
            .expect("one range at least");
        let stop = ranges
            .iter()
            .map(|r| r.end)
            .max()
            .unwrap_or(label.start_lsn);
        let manifest = Manifest {
            format: "tend-backup/1".to_string(),
            id: id.clone(),
            database: String::new(),
            server_version: facts.version.clone(),
            pg_dump_version: pg_basebackup.version.to_string(),
            started_at: started_at.clone(),
            finished_at: now_rfc3339(),
            raw_bytes: raw.load(Ordering::Relaxed),
            stored_bytes: objects.iter().map(|o| o.bytes).sum(),
            objects,
            compression: Compression::zstd(options.level),
            encryption: crate::manifest::Encryption::age(&options.encryption),
            tables: Vec::new(),
            tend_version: env!("CARGO_PKG_VERSION").to_string(),
            physical: Some(Physical {
                system_identifier: system.clone(),
                timeline: label.timeline,
                start_lsn: format_lsn(label.start_lsn),
                stop_lsn: format_lsn(stop),
                start_wal: first.to_string(),
                stop_wal: last.to_string(),
                segment_size,
                stop_time: stop_time.to_string(),
                next_xid,
                incremental_of: parent.as_ref().map(|p| p.id.clone()),
            }),
            checksum: None,
        };
        if options.cancel.is_cancelled() {
            return Err(None);
        }
        store
            .put(
                &store.path(&id, MANIFEST),
                Bytes::from(manifest.to_stored_bytes()),
            )
            .await
            .map_err(|e| Some(e.into()))?;
        Ok(manifest)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(manifest) => {
            let _ = store.delete(&marker_path).await;
            Ok(manifest)
        }
        Err(Some(e)) => {
            let _ = store.delete_leftover(&id, MANIFEST).await;
            Err(e)
        }
        Err(None) => Err(remove_interrupted(store, &id).await),
    }
}

impl PhysicalOptions {
    /// A backup's own keys do not decrypt (a passphrase does; recipients need the identity
    /// file), so an incremental backup reads its parent's manifest with the keys it was
    /// given for that: see [`read_pg_manifest`].
    fn encryption_for_read(&self) -> Option<crate::crypto::Decryption> {
        match &self.encryption {
            Encryption::Passphrase(p) => Some(crate::crypto::Decryption::Passphrase(p.clone())),
            Encryption::Recipients(_) => None,
        }
    }
}

/// The server's next transaction id (none when it cannot be read: a restore to a
/// transaction then cannot use this backup).
async fn next_xid(info: &ConnInfo, connect: &ConnectOptions) -> Option<u64> {
    let session = tend_pg::connect(info, connect).await.ok()?;
    let row = session
        .query_one(
            "SELECT txid_snapshot_xmax(txid_current_snapshot())::text",
            &[],
        )
        .await
        .ok()?;
    row.get::<_, String>(0).parse().ok()
}

/// The parent's `backup_manifest`, decrypted.
async fn read_pg_manifest(
    store: &Store,
    id: &str,
    decryption: &Option<crate::crypto::Decryption>,
) -> Result<Vec<u8>, Option<BackupError>> {
    let Some(decryption) = decryption.clone() else {
        return Err(Some(BackupError::Physical(
            "an incremental backup reads its parent's manifest, and backups encrypted for age recipients need BACKUP_AGE_IDENTITY_FILE for that; take a full backup, or use a passphrase".to_string(),
        )));
    };
    let sealed = store
        .get(&store.path(id, PG_MANIFEST))
        .await
        .map_err(|e| Some(e.into()))?;
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let reader = decryption
            .open(&sealed[..])
            .map_err(|_| "the parent backup's manifest does not open with the backup keys")?;
        let mut out = Vec::new();
        zstd::stream::Decoder::new(reader)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|_| "the parent backup's manifest is damaged")?;
        Ok::<_, &str>(out)
    })
    .await
    .map_err(|e| Some(BackupError::Pipeline(e.to_string())))?
    .map_err(|e| Some(BackupError::Physical(e.to_string())))
}

/// What the tar stream said, checked.
fn read_capture(
    capture: &TarCapture,
) -> Result<(BackupLabel, Vec<WalRange>, Vec<u8>), BackupError> {
    if let Some(why) = &capture.malformed {
        return Err(BackupError::Physical(format!(
            "pg_basebackup's output is not a well-formed tar stream ({why}); nothing was kept"
        )));
    }
    let label = capture
        .backup_label
        .as_deref()
        .and_then(|b| BackupLabel::parse(&String::from_utf8_lossy(b)))
        .ok_or_else(|| {
            BackupError::Physical(
                "pg_basebackup's output has no readable backup_label; nothing was kept".to_string(),
            )
        })?;
    let manifest = capture.backup_manifest.clone().ok_or_else(|| {
        BackupError::Physical(
            "pg_basebackup's output has no backup_manifest; nothing was kept".to_string(),
        )
    })?;
    let ranges = manifest_wal_ranges(&manifest)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            BackupError::Physical(
                "the backup_manifest has no readable WAL-Ranges; nothing was kept".to_string(),
            )
        })?;
    Ok((label, ranges, manifest))
}

/// Waits until the archive holds every segment the backup needs.
async fn wait_for_wal(
    archive: &Archive<'_>,
    ranges: &[WalRange],
    segment_size: u64,
    options: &PhysicalOptions,
) -> Result<(), BackupError> {
    let deadline = Instant::now() + options.wal_wait;
    let mut waiting: Vec<SegmentName> = ranges
        .iter()
        .flat_map(|r| segments_of(r, segment_size))
        .collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for segment in waiting {
            if archive
                .find(&WalFile::Segment(segment))
                .await
                .map_err(Box::new)?
                .is_none()
            {
                still.push(segment);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if options.cancel.is_cancelled() {
            return Err(BackupError::Physical("interrupted".to_string()));
        }
        if Instant::now() > deadline {
            return Err(BackupError::Physical(format!(
                "the archive does not hold {} (and {} more segments) that this backup needs, {}s after the backup ended: archiving is behind or failing (see `tend pitr status`); nothing was kept",
                waiting[0],
                waiting.len() - 1,
                options.wal_wait.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Stores a small object (zstd, then age) of backup `id`.
async fn store_small(
    store: &Store,
    id: &str,
    name: &str,
    plain: &[u8],
    options: &PhysicalOptions,
) -> Result<StoredObject, BackupError> {
    let plain = plain.to_vec();
    let encryption = options.encryption.clone();
    let level = options.level;
    let sealed = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut out = Vec::new();
        let age = encryption.wrap(&mut out)?;
        let mut zstd = zstd::stream::write::Encoder::new(age, level)
            .map_err(|e| crate::crypto::CryptoError::Setup(e.to_string()))?;
        zstd.write_all(&plain)
            .and_then(|()| zstd.finish())
            .and_then(|age| age.finish())
            .map_err(|e| crate::crypto::CryptoError::Setup(e.to_string()))?;
        Ok::<_, crate::crypto::CryptoError>(out)
    })
    .await
    .map_err(|e| BackupError::Pipeline(e.to_string()))??;
    let sha256 = {
        use sha2::Digest;
        crate::pipeline::hex(&sha2::Sha256::digest(&sealed))
    };
    let bytes = sealed.len() as u64;
    store
        .put(&store.path(id, name), Bytes::from(sealed))
        .await?;
    Ok(StoredObject {
        name: name.to_string(),
        bytes,
        sha256,
    })
}

/// The newest complete physical backup of the server `system` in the store.
pub async fn newest_of_system(
    store: &Store,
    system: &str,
) -> Result<Option<Manifest>, BackupError> {
    Ok(crate::ops::list(store)
        .await?
        .into_iter()
        .map(|l| l.manifest)
        .rfind(|m| {
            m.physical
                .as_ref()
                .is_some_and(|p| p.system_identifier == system)
        }))
}

/// A scratch directory of this process's, removed by the caller.
fn tempfile_dir() -> Result<PathBuf, BackupError> {
    let dir = std::env::temp_dir().join(format!(
        "tend-physical-{}-{}",
        std::process::id(),
        now_rfc3339().replace([':', '-'], "")
    ));
    std::fs::create_dir_all(&dir).map_err(|source| BackupError::Scratch {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_manifests_say_where_the_backup_is() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-04 15:00:00 UTC\nLABEL: tend x\nSTART TIMELINE: 1\n";
        assert_eq!(
            BackupLabel::parse(label),
            Some(BackupLabel {
                start_lsn: 0x200_0028,
                timeline: 1
            })
        );
        assert_eq!(BackupLabel::parse("LABEL: x\n"), None);
        let manifest = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
            "WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/3000100" }]}"#;
        let ranges = manifest_wal_ranges(manifest).unwrap();
        assert_eq!(
            ranges,
            vec![WalRange {
                timeline: 1,
                start: 0x200_0028,
                end: 0x300_0100
            }]
        );
        let segments: Vec<String> = segments_of(&ranges[0], 16 << 20)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            segments,
            ["000000010000000000000002", "000000010000000000000003"]
        );
        // An end exactly at a segment boundary needs nothing of the next segment.
        let edge = WalRange {
            timeline: 1,
            start: 0x200_0028,
            end: 0x300_0000,
        };
        assert_eq!(segments_of(&edge, 16 << 20).len(), 1);
        assert_eq!(manifest_wal_ranges(b"not json"), None);
    }
}
