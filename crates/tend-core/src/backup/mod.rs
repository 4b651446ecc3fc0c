//! The backup services: one logical backup of a database into the configured store (the
//! same code path for `tend backup run` and, to come, a scheduled backup), and what the
//! store holds: list, show, verify (with the restore drill, `drill`) and prune (`prune`).
//! Each returns a typed report that `--json` serializes and the binary renders.

mod drill;
mod prune;

use serde::Serialize;
use tend_backup::manifest::Verification;
use tend_backup::ops::{self, BackupOptions, Listed, Progress};
use tend_backup::{BackupError, Manifest, Store};
use tend_pg::{Database, FoundTool, PgTool, ToolError, ToolSearch, VersionNeed};
use tokio_util::sync::CancellationToken;

use crate::settings::{BackupSettings, KeyError};

pub use drill::{DRILL_TAG, DrillRequest, drill};
pub use prune::{LeftoverReport, PrunePlan, PruneReport, prune, prune_plan};

/// What one backup asks for beyond the settings.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Also dump roles and tablespaces (`pg_dumpall --globals-only`).
    pub globals: bool,
    /// zstd worker threads.
    pub threads: u32,
}

/// Why a backup service did not do its work. A backup that fails leaves nothing in the
/// store; a verification records only findings about the backup itself.
#[derive(Debug, thiserror::Error)]
pub enum BackupServiceError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// No PostgreSQL program that can do the work (a pg_restore as new as the backup's
    /// pg_dump).
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The restore drill's scratch server (or its scratch database) cannot be reached.
    #[error(transparent)]
    Connect(#[from] tend_pg::ConnectError),
    /// A statement on the scratch server failed.
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    /// The drill's scratch database exists and is not tend's: never dropped.
    #[error(
        "the scratch server already has a database `{name}` that tend did not make for a drill, and tend drops only its own; drop or rename it, or give another scratch server with --scratch"
    )]
    ForeignScratch { name: String },
    /// The drill restored the backup, and its tables do not hold the manifest's rows
    /// (recorded against the backup).
    #[error("{0}")]
    Mismatch(String),
    /// `tend restore` into a database that holds tables, without `--clean`.
    #[error("{to} already holds {tables} tables; nothing was restored")]
    NotEmpty { to: String, tables: i64 },
}

/// Backs up `database` into `store` (opened by the caller from `settings.store`, which also
/// names it in its output). The keys are checked here, before anything else. `cancel` stops
/// it cleanly (pg_dump stopped, the upload aborted, what was stored removed); the report is
/// the backup's manifest, as stored.
pub async fn run(
    database: &Database,
    store: &Store,
    settings: &BackupSettings,
    tools: ToolSearch,
    request: &BackupRequest,
    cancel: CancellationToken,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Manifest, BackupServiceError> {
    let encryption = settings.keys.encryption()?;
    let options = BackupOptions {
        tools,
        globals: request.globals,
        encryption,
        level: settings.compression_level,
        threads: request.threads,
        connect: database.options().clone(),
        cancel,
    };
    Ok(ops::backup(database.info(), store, &options, on_progress).await?)
}

/// How long a physical backup waits for the archive to hold the WAL it needs, unless told.
pub const DEFAULT_WAL_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// What a physical backup asks for beyond the settings.
#[derive(Debug, Clone)]
pub struct PhysicalRequest {
    /// zstd worker threads.
    pub threads: u32,
    /// PostgreSQL 17+: an increment on the newest physical backup.
    pub incremental: bool,
    /// How long to wait for the archive to hold the WAL the backup needs.
    pub wal_wait: std::time::Duration,
}

/// Takes a physical backup (the whole cluster, BASE_BACKUP) of the server `database` is
/// on into `store`; the server must archive its WAL there (`tend pitr enable`). Same keys,
/// cancellation and cleanup as [`run`]; the report is the stored manifest.
pub async fn run_physical(
    database: &Database,
    store: &Store,
    settings: &BackupSettings,
    request: &PhysicalRequest,
    cancel: CancellationToken,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Manifest, BackupServiceError> {
    let encryption = settings.keys.encryption()?;
    let options = tend_backup::physical::PhysicalOptions {
        encryption,
        level: settings.physical_compression_level,
        threads: request.threads,
        connect: database.options().clone(),
        wal_wait: request.wal_wait,
        incremental: request.incremental,
        cancel,
    };
    Ok(
        tend_backup::physical::backup_physical(database.info(), store, &options, on_progress)
            .await?,
    )
}

/// What `tend backup list` shows: the complete backups, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct BackupList {
    /// The store, as its description names it (a directory or `s3://bucket/prefix`).
    pub store: String,
    pub backups: Vec<Listed>,
    /// Folders whose manifest exists but cannot be trusted: `(id, why)`; never listed as
    /// usable, shown as warnings so they are not forgotten.
    #[serde(skip)]
    pub unusable: Vec<(String, String)>,
    /// For each server with physical backups: what a point-in-time restore can reach.
    pub windows: Vec<ArchiveWindow>,
}

/// What the WAL archive of one server lets a physical restore reach, read from the store
/// alone: from the end of its oldest physical backup to the newest archived segment.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveWindow {
    pub system_identifier: String,
    /// When the oldest physical backup finished: the earliest time to restore to.
    pub from: String,
    pub from_backup: String,
    /// The newest archived segment (of the newest timeline): recovery reaches the last
    /// transaction in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_wal: Option<String>,
    /// Missing stretches after the oldest backup's start (first and last segment of
    /// each): recovery cannot pass them.
    pub gaps: Vec<(String, String)>,
    /// Why the archive could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The store's catalog, read once, with each server's recoverable window.
pub async fn list(store: &Store) -> Result<BackupList, BackupServiceError> {
    let catalog = ops::catalog(store).await?;
    let windows = archive_windows(store, &catalog.backups).await;
    Ok(BackupList {
        store: store.description.clone(),
        backups: catalog.backups,
        unusable: catalog.unusable,
        windows,
    })
}

async fn archive_windows(store: &Store, backups: &[ops::Listed]) -> Vec<ArchiveWindow> {
    // The oldest physical backup of each server (the list is newest first).
    let mut oldest: std::collections::BTreeMap<&str, &Manifest> = Default::default();
    for listed in backups {
        if let Some(physical) = &listed.manifest.physical {
            oldest.insert(&physical.system_identifier, &listed.manifest);
        }
    }
    let mut windows = Vec::new();
    for (system, manifest) in oldest {
        let physical = manifest
            .physical
            .as_ref()
            .expect("chosen for its physical part");
        let mut window = ArchiveWindow {
            system_identifier: system.to_string(),
            from: physical.stop_time.clone(),
            from_backup: manifest.id.clone(),
            to_wal: None,
            gaps: Vec::new(),
            problem: None,
        };
        let archive = tend_backup::wal::Archive::new(store, system.parse().unwrap_or_default());
        let summary = match archive.info().await {
            Ok(Some(info)) => crate::pitr::summarize(&archive, &info)
                .await
                .map_err(|e| e.to_string()),
            Ok(None) => Err(format!(
                "the store has no WAL archive for the server {system}"
            )),
            Err(e) => Err(e.to_string()),
        };
        match summary {
            Ok(summary) => {
                let start = &physical.start_wal;
                window.to_wal = summary.timelines.last().map(|t| t.last.clone());
                window.gaps = summary
                    .timelines
                    .iter()
                    .flat_map(|t| t.gaps.iter())
                    .filter(|(_, last)| last.get(8..) >= start.get(8..))
                    .cloned()
                    .collect();
            }
            Err(problem) => window.problem = Some(problem),
        }
        windows.push(window);
    }
    windows
}

/// One backup's manifest, checked (its checksum and id).
pub async fn show(store: &Store, id: &str) -> Result<Manifest, BackupServiceError> {
    Ok(ops::read_manifest(store, id).await?)
}

/// What `tend backup verify` reports.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub id: String,
    pub verification: Verification,
}

/// Where a verification is.
#[derive(Debug, Clone)]
pub enum VerifyProgress {
    /// The backup is chosen and is being read back.
    Reading { id: String },
}

/// Re-reads backup `id` (the newest when `None`): checksum, decryption, decompression and
/// pg_restore's reading of the archive. Records the result in the store when it is a
/// finding about the backup (sound or damaged), never a wrong key or a missing program.
pub async fn verify(
    store: &Store,
    settings: &BackupSettings,
    tools: &ToolSearch,
    id: Option<&str>,
    on_progress: &mut (dyn FnMut(VerifyProgress) + Send),
) -> Result<VerifyReport, BackupServiceError> {
    let decryption = settings.keys.decryption()?;
    let id = ops::resolve_id(store, id).await?;
    let manifest = ops::read_manifest(store, &id).await?;
    if manifest.physical.is_some() {
        on_progress(VerifyProgress::Reading { id: id.clone() });
        let catalog: Vec<Manifest> = ops::list(store)
            .await?
            .into_iter()
            .map(|l| l.manifest)
            .collect();
        let chain = tend_backup::physical::choose_chain(
            &catalog,
            Some(&id),
            &tend_backup::physical::RestoreTarget::Latest,
        )?;
        let verification = tend_backup::physical::verify_physical(
            store,
            &chain,
            &decryption,
            tools,
            &std::env::temp_dir(),
        )
        .await?;
        ops::record_verification(store, &id, &verification).await?;
        if !verification.ok {
            return Err(BackupError::Physical(verification.message).into());
        }
        return Ok(VerifyReport { id, verification });
    }
    let pg_restore = pg_restore_for(tools, &manifest)?;
    on_progress(VerifyProgress::Reading { id: id.clone() });
    let verification = ops::verify(store, &id, &decryption, pg_restore.path).await?;
    Ok(VerifyReport { id, verification })
}

/// A pg_restore that reads the archive: no older than the pg_dump that wrote it (an older
/// one cannot read a newer archive, which would look like damage).
pub fn pg_restore_for(tools: &ToolSearch, manifest: &Manifest) -> Result<FoundTool, ToolError> {
    let need = manifest_major(&manifest.pg_dump_version)
        .map(VersionNeed::AtLeastMajor)
        .unwrap_or(VersionNeed::Any);
    tools.find(PgTool::PgRestore, need)
}

/// The major of a version as manifests write it (`15.4`, `9.6.24`), as tools count it.
fn manifest_major(version: &str) -> Option<u32> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first >= 10 {
        Some(first)
    } else {
        Some(first * 100 + parts.next()?.parse::<u32>().ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::manifest_major;

    #[test]
    fn manifest_versions_give_the_major_tools_count_by() {
        assert_eq!(manifest_major("15.4"), Some(15));
        assert_eq!(manifest_major("17.2 (Debian 17.2-1)"), Some(17));
        assert_eq!(manifest_major("9.6.24"), Some(906));
        assert_eq!(manifest_major("devel"), None);
    }
}
