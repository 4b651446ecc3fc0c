//! The backup service: one logical backup of a database into the configured store, the
//! same code path for `tend backup run` and (to come) a scheduled backup.

use tend_backup::ops::{self, BackupOptions, Progress};
use tend_backup::{BackupError, Manifest, Store};
use tend_pg::{Database, ToolSearch};
use tokio_util::sync::CancellationToken;

use crate::settings::{BackupSettings, KeyError};

/// What one backup asks for beyond the settings.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Also dump roles and tablespaces (`pg_dumpall --globals-only`).
    pub globals: bool,
    /// zstd worker threads.
    pub threads: u32,
}

/// Why a backup did not happen; nothing of it stays in the store.
#[derive(Debug, thiserror::Error)]
pub enum BackupServiceError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// Backs up `database` into `store` (opened by the caller from `settings.store`, which also
/// names it in its output). `cancel` stops it cleanly (pg_dump
/// stopped, the upload aborted, what was stored removed); the report is the backup's
/// manifest, as stored.
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
