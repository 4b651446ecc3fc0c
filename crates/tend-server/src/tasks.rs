//! What each scheduled task does: the same core services the commands call, with the
//! run's cancellation token, returning a one-line summary and the service's typed report.

use std::sync::Arc;

use tend_core::schedule::Task;
use tend_core::settings::Settings;
use tend_pg::{ConnInfo, Database};
use tokio_util::sync::CancellationToken;

/// Where a restore drill may make its scratch database, found when a drill first needs
/// it (the binary starts the project's local cluster, as `tend backup verify --restore`).
pub trait ScratchServer: Send + Sync {
    fn scratch(&self) -> Result<ConnInfo, String>;
}

/// What a task needs: the settings, the target's pooled handle and the drill's server.
#[derive(Clone)]
pub struct TaskContext {
    pub settings: Arc<Settings>,
    pub database: Database,
    pub scratch: Arc<dyn ScratchServer>,
}

/// How a task ended that ran to its end.
#[derive(Debug)]
pub struct Done {
    pub summary: String,
    pub report: serde_json::Value,
}

/// Why a task did not finish its work.
#[derive(Debug)]
pub enum Failed {
    /// Stopped by its token (shutdown, lost lead), after undoing what it did.
    Cancelled(String),
    Error(String),
}

/// What an `sql:FILE` run reports.
#[derive(serde::Serialize)]
struct SqlReport {
    file: std::path::PathBuf,
}

fn report(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The machine's CPUs: a backup's zstd threads (2 when the OS does not say).
fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Runs `task`. An error that came from the cancellation is `Cancelled`.
pub async fn run(
    task: &Task,
    ctx: &TaskContext,
    cancel: CancellationToken,
) -> Result<Done, Failed> {
    let result = run_inner(task, ctx, cancel.clone()).await;
    match result {
        Err(message) if cancel.is_cancelled() => Err(Failed::Cancelled(message)),
        Err(message) => Err(Failed::Error(message)),
        Ok(done) => Ok(done),
    }
}

async fn run_inner(
    task: &Task,
    ctx: &TaskContext,
    cancel: CancellationToken,
) -> Result<Done, String> {
    let settings = &ctx.settings;
    let tools = settings.tool_search();
    let store = || tend_backup::Store::open(&settings.backup.store).map_err(|e| e.to_string());
    match task {
        Task::Backup => {
            let store = store()?;
            let request = tend_core::backup::BackupRequest {
                globals: false,
                threads: cpus(),
            };
            let manifest = tend_core::backup::run(
                &ctx.database,
                &store,
                &settings.backup,
                tools,
                &request,
                cancel,
                &mut |_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Done {
                summary: format!(
                    "backup {} of {}: {:.1} MB dumped, {:.1} MB stored, {} tables, to {}",
                    manifest.id,
                    manifest.database,
                    mb(manifest.raw_bytes),
                    mb(manifest.stored_bytes),
                    manifest.tables.len(),
                    store.description
                ),
                report: report(&manifest),
            })
        }
        Task::PhysicalBackup { incremental } => {
            let store = store()?;
            let request = tend_core::backup::PhysicalRequest {
                threads: cpus(),
                incremental: *incremental,
                wal_wait: tend_core::backup::DEFAULT_WAL_WAIT,
            };
            let manifest = tend_core::backup::run_physical(
                &ctx.database,
                &store,
                &settings.backup,
                &request,
                cancel,
                &mut |_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Done {
                summary: format!(
                    "physical backup {}{}: {:.1} MB read, {:.1} MB stored, to {}",
                    manifest.id,
                    if *incremental { " (incremental)" } else { "" },
                    mb(manifest.raw_bytes),
                    mb(manifest.stored_bytes),
                    store.description
                ),
                report: report(&manifest),
            })
        }
        Task::BackupPrune => {
            let store = store()?;
            let plan =
                tend_core::backup::prune_plan(&store, &settings.backup, settings.pitr.window)
                    .await
                    .map_err(|e| e.to_string())?;
            let done = tend_core::backup::prune(&store, plan, cancel)
                .await
                .map_err(|e| e.to_string())?;
            let kept = done.decisions.iter().filter(|d| d.keep).count();
            Ok(Done {
                summary: format!(
                    "kept {kept} backups, deleted {}, removed {} leftovers of interrupted backups",
                    done.deleted.len(),
                    done.removed_leftovers.len()
                ),
                report: report(&done),
            })
        }
        Task::BackupVerify { restore } => {
            let store = store()?;
            let mut verified =
                tend_core::backup::verify(&store, &settings.backup, &tools, None, &mut |_| {})
                    .await
                    .map_err(|e| e.to_string())?;
            if *restore {
                let scratch_server = ctx.scratch.clone();
                let scratch = tokio::task::spawn_blocking(move || scratch_server.scratch())
                    .await
                    .map_err(|e| format!("finding the drill's scratch server failed: {e}"))??;
                let request = tend_core::backup::DrillRequest {
                    scratch,
                    connect: settings.connect_options(),
                    ownership: Default::default(),
                    cancel,
                };
                verified = tend_core::backup::drill(
                    &store,
                    &settings.backup,
                    &tools,
                    &verified.id,
                    &request,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
            Ok(Done {
                summary: format!(
                    "backup {} is sound: {}",
                    verified.id, verified.verification.message
                ),
                report: report(&verified),
            })
        }
        Task::Check => {
            let catalog = tend_ops::checks::catalog();
            let checked = tend_core::checks::run_and_record(
                &ctx.database,
                &settings.checks,
                &catalog,
                &tend_core::checks::Selection::default(),
                &|_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(Done {
                summary: format!(
                    "{:?}: {} findings from {} checks in {} ms",
                    checked.status,
                    checked.findings.len(),
                    checked.checks.len(),
                    checked.millis
                )
                .to_lowercase(),
                report: report(&checked),
            })
        }
        Task::Vacuum => {
            let session = ctx.database.session().await.map_err(|e| e.to_string())?;
            let watcher = ctx.database.session().await.map_err(|e| e.to_string())?;
            let plan = tend_ops::actions::vacuum_plan(&session, &[])
                .await
                .map_err(|e| match e {
                    tend_ops::actions::PlanError::NotFound(m) => m,
                    tend_ops::actions::PlanError::Database(e) => tend_pg::error_text(&e),
                })?;
            let done = tend_ops::actions::vacuum(&session, &watcher, &plan, true, &cancel, &|_| {})
                .await
                .map_err(|e| tend_pg::error_text(&e))?;
            Ok(Done {
                summary: format!(
                    "vacuumed and analyzed {} tables; {} the role may not vacuum",
                    done.vacuumed.len(),
                    plan.refusals.denied.len()
                ),
                report: report(&done),
            })
        }
        Task::OptimizeDryRun => {
            let session = ctx.database.session().await.map_err(|e| e.to_string())?;
            let plan = tend_core::optimize::plan(
                &session,
                &tend_core::optimize::OptimizeRequest::default(),
                None,
            )
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
            Ok(Done {
                summary: format!("{} steps would run (nothing changed)", plan.steps.len()),
                report: report(&plan.steps),
            })
        }
        Task::Cleanup => {
            let session = ctx.database.session().await.map_err(|e| e.to_string())?;
            let plan = tend_core::cleanup::plan(
                &session,
                &settings.cleanup,
                &tend_core::cleanup::CleanupRequest::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let archive = if plan.archives_to_store() {
                Some(
                    tend_core::cleanup::StoreArchive::prepare(
                        &ctx.database,
                        store()?,
                        &settings.backup.keys,
                    )
                    .await
                    .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            let done = tend_core::cleanup::run(
                &session,
                &settings.cleanup,
                &plan,
                archive.as_ref(),
                &cancel,
                &|_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
            if done.interrupted {
                return Err(format!(
                    "stopped after {} rows; every finished batch is kept and the next run carries on",
                    done.deleted
                ));
            }
            Ok(Done {
                summary: format!(
                    "deleted {} rows by {} rules in {:.1} s",
                    done.deleted,
                    done.rules.len(),
                    done.millis as f64 / 1e3
                ),
                report: report(&done),
            })
        }
        Task::Sql { file } => {
            let sql = tokio::fs::read_to_string(file)
                .await
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            // Its own connection: a cancelled run closes it, which rolls the transaction back.
            let mut session = ctx.database.dedicated().await.map_err(|e| e.to_string())?;
            let transaction = session
                .client
                .transaction()
                .await
                .map_err(|e| tend_pg::error_text(&e))?;
            tokio::select! {
                result = transaction.batch_execute(&sql) => {
                    result.map_err(|e| tend_pg::error_text(&e))?;
                }
                _ = cancel.cancelled() => {
                    return Err("stopped before it ended; the transaction was rolled back".to_string());
                }
            }
            transaction
                .commit()
                .await
                .map_err(|e| tend_pg::error_text(&e))?;
            Ok(Done {
                summary: format!("{} ran and committed", file.display()),
                report: report(&SqlReport { file: file.clone() }),
            })
        }
    }
}
