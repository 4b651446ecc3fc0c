//! The restore service behind `tend restore`: [`choose`] the backup, [`plan`] the restore
//! (the target's tables counted: what `--dry-run` prints), then [`run`] it, loading rows on
//! several connections (`tend_backup::restore`), or through pg_restore in one transaction
//! (`--single-transaction`, `--clean`). A database that holds tables is written into only
//! with `clean`, which the caller confirms first.

use serde::Serialize;
use tend_backup::ops::{self, SingleOptions};
use tend_backup::restore::{Method, ParallelOptions, restore_parallel};
use tend_backup::roles::{Ownership, RolesOutcome};
use tend_backup::{Manifest, Store};
use tend_pg::{ConnInfo, ConnectOptions, ToolSearch};
use tokio_util::sync::CancellationToken;

use crate::backup::{BackupServiceError, pg_restore_for};
use crate::settings::BackupSettings;

/// The backup a restore reads.
#[derive(Debug, Clone)]
pub struct ChosenBackup {
    pub id: String,
    pub manifest: Manifest,
}

/// Backup `id`, or the newest one.
pub async fn choose(store: &Store, id: Option<&str>) -> Result<ChosenBackup, BackupServiceError> {
    let id = ops::resolve_id(store, id).await?;
    let manifest = ops::read_manifest(store, &id).await?;
    ops::require_logical(&manifest)?;
    Ok(ChosenBackup { id, manifest })
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Only plan; the plan says so.
    pub dry_run: bool,
    /// Drop the backup's objects first; restores in one transaction.
    pub clean: bool,
    /// Restore in one transaction through pg_restore.
    pub single_transaction: bool,
    /// Connections of a parallel restore.
    pub jobs: u32,
    pub ownership: Ownership,
    pub connect: ConnectOptions,
}

/// Which backup goes where, and what the target holds (`--dry-run --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub dry_run: bool,
    pub id: String,
    /// The target, redacted.
    pub to: String,
    /// Tables (and views) the target already holds.
    pub target_tables: i64,
    #[serde(skip)]
    pub manifest: Manifest,
    #[serde(skip)]
    pub target: ConnInfo,
}

impl RestorePlan {
    /// The target holds tables: only `clean` (confirmed) may replace them.
    pub fn needs_clean(&self) -> bool {
        self.target_tables > 0
    }
}

/// Looks at the target: how many tables it holds.
pub async fn plan(
    backup: ChosenBackup,
    target: ConnInfo,
    request: &RestoreRequest,
) -> Result<RestorePlan, BackupServiceError> {
    let target_tables = ops::user_tables(&target, &request.connect).await?;
    Ok(RestorePlan {
        dry_run: request.dry_run,
        id: backup.id,
        to: target.redacted().to_string(),
        target_tables,
        manifest: backup.manifest,
        target,
    })
}

/// How the rows were loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMethod {
    Parallel,
    SingleTransaction,
}

/// What `tend restore` did (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The backup's id.
    pub restored: String,
    /// The target, redacted.
    pub to: String,
    /// Tables in the backup.
    pub tables: usize,
    pub method: RestoreMethod,
    pub roles: RolesOutcome,
    /// How, for people: `on 4 connections`, `in one transaction`, ...
    #[serde(skip)]
    pub how: String,
}

/// Where a restore is.
#[derive(Debug, Clone)]
pub enum RestoreProgress {
    /// Keys and programs are found; the restore starts.
    Restoring { id: String },
}

/// Restores the planned backup. Refuses a target that holds tables unless `clean`; the
/// keys and a pg_restore as new as the backup's pg_dump are found before anything is
/// written.
pub async fn run(
    store: &Store,
    settings: &BackupSettings,
    tools: &ToolSearch,
    plan: &RestorePlan,
    request: &RestoreRequest,
    cancel: &CancellationToken,
    on_progress: &mut (dyn FnMut(RestoreProgress) + Send),
) -> Result<RestoreReport, BackupServiceError> {
    if plan.needs_clean() && !request.clean {
        return Err(BackupServiceError::NotEmpty {
            to: plan.to.clone(),
            tables: plan.target_tables,
        });
    }
    let decryption = settings.keys.decryption()?;
    let pg_restore = pg_restore_for(tools, &plan.manifest)?;
    on_progress(RestoreProgress::Restoring {
        id: plan.id.clone(),
    });
    let (manifest, how, method, roles) = if request.single_transaction || request.clean {
        let options = SingleOptions {
            pg_restore: pg_restore.path,
            clean: request.clean,
            ownership: request.ownership,
            connect: request.connect.clone(),
            created_roles: Default::default(),
            cancel: cancel.clone(),
        };
        let (manifest, roles) =
            ops::restore(store, &plan.id, &decryption, &plan.target, &options).await?;
        (
            manifest,
            "in one transaction".to_string(),
            RestoreMethod::SingleTransaction,
            roles,
        )
    } else {
        let options = ParallelOptions {
            jobs: request.jobs,
            connect: request.connect.clone(),
            pg_restore: pg_restore.path,
            ownership: request.ownership,
            cancel: cancel.clone(),
        };
        let restored =
            restore_parallel(store, &plan.id, &decryption, &plan.target, &options).await?;
        match restored.method {
            Method::Parallel { jobs } => (
                restored.manifest,
                format!("on {jobs} connections"),
                RestoreMethod::Parallel,
                restored.roles,
            ),
            Method::SingleTransaction { reason } => (
                restored.manifest,
                format!("in one transaction through pg_restore ({reason})"),
                RestoreMethod::SingleTransaction,
                restored.roles,
            ),
        }
    };
    Ok(RestoreReport {
        restored: plan.id.clone(),
        to: plan.to.clone(),
        tables: manifest.tables.len(),
        method,
        roles,
        how,
    })
}
