//! Physical backups: the whole cluster through the replication protocol's `BASE_BACKUP`
//! (one tar, no WAL in it: the WAL comes from the archive), compressed by the server where
//! it can, sealed with age and streamed into the store like a logical backup, with no local
//! copy (`stream`). The backup's manifest records where it sits in the WAL (the command's
//! start position and PostgreSQL's `backup_manifest`, stored beside the archive) and is
//! written only once the archive holds every segment from the backup's start to its end:
//! a physical backup without its WAL restores nothing.

mod restore;
mod stream;
mod verify;

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
};
use crate::store::{Store, StoreError};
use crate::wal::{Archive, SegmentName, WalFile, format_lsn, parse_lsn};

pub use restore::{
    PhysicalRestore, RestoreTarget, RestoredCluster, TargetAction, choose_chain, restore_physical,
};
pub use verify::verify_physical;

/// Settings of a physical backup.
#[derive(Debug, Clone)]
pub struct PhysicalOptions {
    pub encryption: Encryption,
    pub level: i32,
    pub threads: u32,
    pub connect: ConnectOptions,
    /// How long to wait, after the server ends the backup, for the archive to hold the WAL the
    /// backup needs.
    pub wal_wait: Duration,
    /// PostgreSQL 17+: an increment on the newest physical backup of the server.
    pub incremental: bool,
    pub cancel: CancellationToken,
}

/// Where a backup's WAL starts: the first result of `BASE_BACKUP`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BackupStart {
    start_lsn: u64,
    timeline: u32,
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
    let archive_info = archive.require_info().await.map_err(Box::new)?;
    // Sealed to the archive's key, as its WAL is: no passphrase is stretched per backup.
    let sealing = archive_info
        .recipient
        .parse::<age::x25519::Recipient>()
        .map(|r| Encryption::Recipients(vec![r]))
        .map_err(|_| {
            BackupError::Physical(format!(
                "the WAL archive's description names `{}` as its key, which is not an age public key",
                crate::crypto::shown_recipient(&archive_info.recipient)
            ))
        })?;
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
    let result = async {
        let parent_manifest = match &parent {
            Some(parent) => {
                Some(read_parent_manifest(store, &archive, &archive_info, parent, options).await?)
            }
            None => None,
        };
        let started = stream::start(
            info,
            &options.connect,
            &format!("tend {id}"),
            options.level,
            options.threads,
            parent_manifest.as_deref(),
        )
        .await
        .map_err(Some)?;
        let start = started.start.clone();
        let (archive_tx, archive_rx) = mpsc::channel::<Bytes>(32);
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let raw = Arc::new(AtomicU64::new(0));
        let stored = Arc::new(AtomicU64::new(0));
        let sealer = stream::spawn_sealer(
            archive_rx,
            sealing.clone(),
            started.compressor,
            (options.level, options.threads),
            tx,
            stored.clone(),
        );
        let reader = tokio::spawn(stream::read(started.connection, archive_tx, raw.clone()));
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
        if !matches!(pumped, Pumped::Done) {
            // The server aborts the backup when its connection goes.
            reader.abort();
        }
        let read = reader
            .await
            .map_err(|e| BackupError::Pipeline(e.to_string()))
            .and_then(|r| r);
        let sealed = sealer
            .await
            .map_err(|e| BackupError::Pipeline(e.to_string()))
            .and_then(|r| r);
        let (sha256, finished) = match (pumped, read, sealed) {
            (Pumped::Interrupted, _, _) => {
                let _ = writer.abort().await;
                return Err(None);
            }
            (Pumped::MarkerFailed(e), _, _) => {
                let _ = writer.abort().await;
                return Err(Some(e.into()));
            }
            (Pumped::UploadFailed(e), _, _) => {
                let _ = writer.abort().await;
                return Err(Some(BackupError::from(StoreError::Object {
                    store: store.description.clone(),
                    action: "write",
                    path: data_path.to_string(),
                    source: Box::new(e),
                })));
            }
            (Pumped::Done, Err(e), _) | (Pumped::Done, Ok(_), Err(e)) => {
                let _ = writer.abort().await;
                return Err(Some(e));
            }
            (Pumped::Done, Ok(finished), Ok(sha256)) => (sha256, finished),
        };
        // The server has ended the backup: it is consistent from here on.
        let stop_time = jiff::Timestamp::now();
        let next_xid = next_xid(info, &options.connect).await;
        writer.finish().await.map_err(|e| {
            Some(BackupError::Upload {
                source: Box::new(e),
            })
        })?;
        let (label, ranges) = read_positions(&start, &finished).map_err(Some)?;
        let end_lsn = parse_lsn(&finished.end.lsn);
        let pg_manifest = finished.manifest;
        if raw.load(Ordering::Relaxed) == 0 {
            raw.store(manifest_bytes(&pg_manifest), Ordering::Relaxed);
        }
        let mut objects = vec![StoredObject {
            name: BASE.to_string(),
            bytes: stored.load(Ordering::Relaxed),
            sha256,
        }];
        objects.push(
            store_small(
                store,
                &id,
                PG_MANIFEST,
                &pg_manifest,
                &sealing,
                options.level,
            )
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
            .chain(end_lsn)
            .max()
            .unwrap_or(label.start_lsn);
        let manifest = Manifest {
            format: "tend-backup/1".to_string(),
            id: id.clone(),
            database: String::new(),
            server_version: facts.version.clone(),
            pg_dump_version: facts.version.clone(),
            started_at: started_at.clone(),
            finished_at: now_rfc3339(),
            raw_bytes: raw.load(Ordering::Relaxed),
            stored_bytes: objects.iter().map(|o| o.bytes).sum(),
            objects,
            compression: Compression::zstd(options.level),
            encryption: crate::manifest::Encryption::age(&sealing),
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

/// The keys that open `manifest`'s objects: the WAL archive's key for a backup sealed to
/// it (as physical backups are, like the archive's segments), else the backup keys (a
/// physical backup sealed with them before).
pub(crate) fn opener(
    manifest: &Manifest,
    keys: &crate::crypto::Decryption,
    archive_key: Option<&age::x25519::Identity>,
) -> crate::crypto::Decryption {
    if let Some(key) = archive_key {
        let public = key.to_public().to_string();
        let sealed_to_it = manifest
            .encryption
            .recipients
            .iter()
            .any(|r| r.public_key.as_deref() == Some(public.as_str()));
        if sealed_to_it {
            return crate::crypto::Decryption::Identities(vec![key.clone()]);
        }
    }
    keys.clone()
}

/// The parent's `backup_manifest`, decrypted: through the archive's key (opened with the
/// backup keys) when the parent is sealed to it.
async fn read_parent_manifest(
    store: &Store,
    archive: &Archive<'_>,
    info: &crate::wal::ArchiveInfo,
    parent: &Manifest,
    options: &PhysicalOptions,
) -> Result<Vec<u8>, Option<BackupError>> {
    let Some(keys) = options.encryption_for_read() else {
        return Err(Some(BackupError::Physical(
            "an incremental backup reads its parent's manifest, and backups encrypted for age recipients need BACKUP_AGE_IDENTITY_FILE for that; take a full backup, or use a passphrase".to_string(),
        )));
    };
    let sealed_to_archive = parent
        .encryption
        .recipients
        .iter()
        .any(|r| r.public_key.as_deref() == Some(info.recipient.as_str()));
    let keys = if sealed_to_archive {
        let key = archive
            .identity(info, &keys)
            .await
            .map_err(|e| Some(BackupError::Wal(Box::new(e))))?;
        crate::crypto::Decryption::Identities(vec![key])
    } else {
        keys
    };
    open_pg_manifest(store, &parent.id, &keys)
        .await
        .map_err(Some)
}

/// PostgreSQL's `backup_manifest` of backup `id`, decrypted.
pub(crate) async fn open_pg_manifest(
    store: &Store,
    id: &str,
    decryption: &crate::crypto::Decryption,
) -> Result<Vec<u8>, BackupError> {
    let sealed = store.get(&store.path(id, PG_MANIFEST)).await?;
    let decryption = decryption.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let reader = decryption
            .open(&sealed[..])
            .map_err(|_| "the backup's manifest does not open with the backup keys")?;
        let mut out = Vec::new();
        zstd::stream::Decoder::new(reader)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|_| "the backup's manifest is damaged")?;
        Ok::<_, &str>(out)
    })
    .await
    .map_err(|e| BackupError::Pipeline(e.to_string()))?
    .map_err(|e| BackupError::Physical(format!("backup {id}: {e}")))
}

/// Where the backup starts (the command's first result) and the WAL its manifest says it
/// needs, checked.
fn read_positions(
    start: &tend_pg::WalPosition,
    finished: &stream::Finished,
) -> Result<(BackupStart, Vec<WalRange>), BackupError> {
    let label = parse_lsn(&start.lsn)
        .map(|start_lsn| BackupStart {
            start_lsn,
            timeline: start.timeline,
        })
        .ok_or_else(|| {
            BackupError::Physical(format!(
                "the server says the backup starts at `{}`, which is not a WAL location; nothing was kept",
                start.lsn
            ))
        })?;
    if finished.manifest.is_empty() {
        return Err(BackupError::Physical(
            "the server sent no backup_manifest; nothing was kept".to_string(),
        ));
    }
    let ranges = manifest_wal_ranges(&finished.manifest)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            BackupError::Physical(
                "the backup_manifest has no readable WAL-Ranges; nothing was kept".to_string(),
            )
        })?;
    Ok((label, ranges))
}

/// The bytes of the files a `backup_manifest` lists: the cluster's size as backed up.
fn manifest_bytes(manifest: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(manifest)
        .ok()
        .and_then(|v| {
            v.get("Files")?
                .as_array()
                .map(|files| files.iter().filter_map(|f| f.get("Size")?.as_u64()).sum())
        })
        .unwrap_or(0)
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
    encryption: &Encryption,
    level: i32,
) -> Result<StoredObject, BackupError> {
    let plain = plain.to_vec();
    let encryption = encryption.clone();
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
        .filter(|m| {
            m.physical
                .as_ref()
                .is_some_and(|p| p.system_identifier == system)
        })
        .max_by_key(recency))
}

/// How physical backups order in time: when each became consistent (to the nanosecond),
/// then the id. Ids carry the time only to the second, and two backups can fall in one.
pub(crate) fn recency(manifest: &Manifest) -> (Option<jiff::Timestamp>, String) {
    let consistent = manifest
        .physical
        .as_ref()
        .and_then(|p| p.stop_time.parse::<jiff::Timestamp>().ok());
    (consistent, manifest.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_say_where_the_backup_is() {
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
