//! The migration services: deploy, status, resolve, rollback, reset, baseline, new and seed,
//! for Prisma's layout and tend's own. Each takes the `[migrate]` settings and a handle on
//! the database the migrations go to (DIRECT_URL when set: the caller picks it), reports
//! progress through a `Send` callback, and returns a typed report that `--json` prints as it
//! is. Every write runs under the migration lock (`tend_migrate::apply::Locked`).
//!
//! Destructive services come in two halves, a plan that reads and a run that acts, so the
//! caller can ask a person in between without holding the lock; the run checks the plan
//! still holds under the lock.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tend_migrate::apply::{self, Applied, Event, Locked, SeedMode};
use tend_migrate::source::{self, Format, Migration, SourceError};
use tend_migrate::{History, MigrateError, MigrationStatus, RunOptions};
use tend_pg::{ConnectOptions, Database};
use tokio_util::sync::CancellationToken;

use crate::settings::MigrateSettings;

/// The project's migrations: their layout and directory.
#[derive(Debug, Clone)]
pub struct MigrationProject {
    pub format: Format,
    pub dir: PathBuf,
}

impl MigrationProject {
    /// The configured layout and directory, else the layout found in `project_root` and its
    /// default directory.
    pub fn resolve(settings: &MigrateSettings, project_root: &Path) -> MigrationProject {
        let format = settings
            .format
            .unwrap_or_else(|| Format::detect(project_root));
        let dir = settings
            .dir
            .clone()
            .unwrap_or_else(|| project_root.join(format.default_dir()));
        MigrationProject { format, dir }
    }

    /// The migrations on disk, in order: read once by the caller, before it reaches for
    /// the database, and handed to the services.
    pub fn load(&self) -> Result<Migrations, SourceError> {
        Ok(Migrations {
            files: source::load(&self.dir, self.format)?,
            project: self.clone(),
        })
    }
}

/// A project's migrations as read from disk: what the services work on.
#[derive(Debug, Clone)]
pub struct Migrations {
    pub project: MigrationProject,
    pub files: Vec<Migration>,
}

impl Migrations {
    fn history(&self) -> History {
        History::new(self.project.format)
    }
}

/// Progress of a migration service, for a display.
#[derive(Debug, Clone)]
pub enum MigrateEvent {
    /// The lock taken, a migration applying or applied.
    Run(Event),
    /// `reset` dropped these schemas; the deploy comes next.
    Dropped { schemas: Vec<String> },
}

/// Why a migration service stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateServiceError {
    /// The migrations on disk cannot be read.
    #[error(transparent)]
    Load(SourceError),
    /// A new migration's file cannot be written.
    #[error(transparent)]
    Create(SourceError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a migration name needs at least one letter or digit")]
    EmptyName,
    #[error(
        "the migration history changed while you were asked; nothing was rolled back, run the command again"
    )]
    HistoryChanged,
    #[error("the seed file {} does not exist", .0.display())]
    SeedMissing(PathBuf),
    #[error(
        "there is no seed file: create seed.sql (or prisma/seed.sql) in {}, or set migrate.seed in tend.toml",
        .0.display()
    )]
    NoSeed(PathBuf),
    #[error("cannot read the seed file {}: {source}", path.display())]
    ReadSeed {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// The options of a run with the `[migrate]` settings; `interrupt` stops it cleanly (the
/// statement running is cancelled on the server, nothing further starts).
pub fn run_options(
    settings: &MigrateSettings,
    connect: &ConnectOptions,
    interrupt: Option<CancellationToken>,
) -> RunOptions {
    RunOptions {
        lock_wait: settings.lock_wait,
        lock_timeout: settings.lock_timeout,
        statement_timeout: settings.statement_timeout,
        connect: connect.clone(),
        interrupt,
        ..RunOptions::default()
    }
}

fn options(settings: &MigrateSettings, database: &Database) -> RunOptions {
    run_options(settings, database.options(), None)
}

fn interruptible(
    settings: &MigrateSettings,
    database: &Database,
    cancel: &CancellationToken,
) -> RunOptions {
    run_options(settings, database.options(), Some(cancel.clone()))
}

async fn lock(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    on_event: &mut (dyn FnMut(MigrateEvent) + Send),
) -> Result<Locked, MigrateError> {
    Locked::acquire(
        database.info(),
        &options(settings, database),
        migrations.history(),
        &mut |event| on_event(MigrateEvent::Run(event)),
    )
    .await
}

/// Where each migration stands, read without the lock.
async fn statuses(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
) -> Result<Vec<MigrationStatus>, MigrateError> {
    apply::status(
        database.info(),
        &options(settings, database),
        migrations.history(),
        &migrations.files,
    )
    .await
}

/// `migrate new`: what was created.
#[derive(Debug, Clone, Serialize)]
pub struct NewReport {
    pub path: PathBuf,
}

/// Creates the migration `name`, stamped `timestamp` (`YYYYMMDDHHMMSS`, UTC), holding `sql`
/// (`None`: the empty template with its header).
pub fn create_migration(
    project: &MigrationProject,
    timestamp: &str,
    name: &str,
    sql: Option<&str>,
) -> Result<NewReport, MigrateServiceError> {
    if source::sanitize_name(name).is_empty() {
        return Err(MigrateServiceError::EmptyName);
    }
    let path = source::create(&project.dir, project.format, timestamp, name)
        .map_err(MigrateServiceError::Create)?;
    if let Some(sql) = sql {
        std::fs::write(&path, sql).map_err(|source| MigrateServiceError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(NewReport { path })
}

/// What `migrate deploy` applies beyond the settings.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    /// Up to and including this migration.
    pub to: Option<String>,
    /// Say what would be applied, apply nothing.
    pub dry_run: bool,
    /// Take up this failed or interrupted migration for its file as it is now.
    pub resume: Option<String>,
}

/// What a deploy did (or, dry, would do): `migrate deploy --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub applied: Vec<Applied>,
    pub already_applied: usize,
    pub dry_run: bool,
    /// How long the run took, lock wait included.
    #[serde(skip)]
    pub elapsed: Duration,
}

/// Applies the pending migrations in order, each exactly once, under the lock. `cancel`
/// stops it between statements (the running one is cancelled on the server); the error
/// then says what was applied.
pub async fn deploy(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    request: &DeployRequest,
    cancel: &CancellationToken,
    on_event: &mut (dyn FnMut(MigrateEvent) + Send),
) -> Result<DeployReport, MigrateServiceError> {
    let started = Instant::now();
    let report = apply::deploy_with(
        database.info(),
        &interruptible(settings, database, cancel),
        migrations.history(),
        &migrations.files,
        apply::DeployPlan {
            to: request.to.as_deref(),
            dry_run: request.dry_run,
            resume: request.resume.as_deref(),
        },
        &mut |event| on_event(MigrateEvent::Run(event)),
    )
    .await?;
    Ok(DeployReport {
        applied: report.applied,
        already_applied: report.already_applied,
        dry_run: report.dry_run,
        elapsed: started.elapsed(),
    })
}

/// Where each migration stands: `migrate status --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub format: Format,
    pub history_table: &'static str,
    /// Every migration applied, none failed, modified or missing.
    pub up_to_date: bool,
    pub migrations: Vec<MigrationStatus>,
}

/// Reads where each migration stands, without the lock and without writing.
pub async fn status(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
) -> Result<StatusReport, MigrateServiceError> {
    let statuses = statuses(database, settings, migrations).await?;
    Ok(StatusReport {
        format: migrations.project.format,
        history_table: migrations.project.format.history_table(),
        up_to_date: tend_migrate::status::is_up_to_date(&statuses),
        migrations: statuses,
    })
}

/// A migration's fate recorded by hand (Prisma's semantics).
#[derive(Debug, Clone)]
pub enum ResolveRequest {
    /// Mark it applied: a failed one finished by hand, one never to run, or an applied file
    /// whose edit is accepted.
    Applied(String),
    /// Mark the failed one rolled back, so the next deploy applies it again.
    RolledBack(String),
}

/// `migrate resolve --json`.
#[derive(Debug, Clone, Serialize)]
pub struct ResolveReport {
    pub migration: String,
    /// What was recorded, as a sentence.
    pub result: String,
}

/// Records a migration's fate under the lock.
pub async fn resolve(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    request: &ResolveRequest,
    on_event: &mut (dyn FnMut(MigrateEvent) + Send),
) -> Result<ResolveReport, MigrateServiceError> {
    let (name, applied) = match request {
        ResolveRequest::Applied(name) => (name, true),
        ResolveRequest::RolledBack(name) => (name, false),
    };
    let locked = lock(database, settings, migrations, on_event).await?;
    let result = apply::resolve(&locked, &migrations.files, name, applied).await?;
    locked.release().await?;
    Ok(ResolveReport {
        migration: name.clone(),
        result,
    })
}

/// Which migrations a rollback undoes.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    /// How many (default 1).
    pub steps: Option<usize>,
    /// Every one applied after this (which stays applied).
    pub to: Option<String>,
}

/// What a rollback would undo, newest first: `migrate rollback --dry-run --json` prints it
/// inside [`DryRun`].
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    pub would_roll_back: Vec<String>,
}

/// What a rollback undid, newest first: `migrate rollback --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub rolled_back: Vec<String>,
}

/// A plan shown and not carried out (`--dry-run`).
#[derive(Debug, Clone, Serialize)]
pub struct DryRun<T> {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    #[serde(flatten)]
    pub plan: T,
}

impl<T> DryRun<T> {
    pub fn of(plan: T) -> DryRun<T> {
        DryRun {
            dry_run: true,
            plan,
        }
    }
}

/// Plans a rollback without the lock (so a question asked about it never blocks a deploy);
/// refuses when a chosen migration has no down script.
pub async fn plan_rollback(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    request: &RollbackRequest,
) -> Result<RollbackPlan, MigrateServiceError> {
    let statuses = statuses(database, settings, migrations).await?;
    let chosen = apply::rollback_plan(
        &statuses,
        &migrations.files,
        request.steps,
        request.to.as_deref(),
        migrations.project.format,
    )?;
    Ok(RollbackPlan {
        would_roll_back: chosen.iter().map(|m| m.name.clone()).collect(),
    })
}

/// Carries out `plan` under the lock, each down script with its history update in one
/// transaction; refuses, undoing nothing, when the history no longer gives the same plan.
pub async fn rollback(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    request: &RollbackRequest,
    plan: &RollbackPlan,
    on_event: &mut (dyn FnMut(MigrateEvent) + Send),
) -> Result<RollbackReport, MigrateServiceError> {
    let locked = lock(database, settings, migrations, on_event).await?;
    let (steps, to) = (request.steps, request.to.as_deref());
    let again = apply::rollback(&locked, &migrations.files, steps, to, true).await?;
    if again != plan.would_roll_back {
        locked.release().await?;
        return Err(MigrateServiceError::HistoryChanged);
    }
    let rolled_back = apply::rollback(&locked, &migrations.files, steps, to, false).await?;
    locked.release().await?;
    Ok(RollbackReport { rolled_back })
}

/// What a reset would drop and apply: `migrate reset --dry-run --json` prints it inside
/// [`DryRun`].
#[derive(Debug, Clone, Serialize)]
pub struct ResetPlan {
    pub would_drop_schemas: Vec<String>,
    pub would_apply: Vec<String>,
}

/// Reads what a reset would drop (every schema but PostgreSQL's own and `tend`) and apply.
pub async fn plan_reset(
    database: &Database,
    migrations: &Migrations,
) -> Result<ResetPlan, MigrateServiceError> {
    let session = database.dedicated().await.map_err(MigrateError::Connect)?;
    let would_drop_schemas = apply::application_schemas(&session).await?;
    Ok(ResetPlan {
        would_drop_schemas,
        would_apply: migrations.files.iter().map(|m| m.name.clone()).collect(),
    })
}

/// What a reset does beyond the settings.
#[derive(Debug, Clone, Default)]
pub struct ResetRequest {
    /// The seed to run afterwards when there is one; `None`: no seed.
    pub seed: Option<SeedRequest>,
}

/// What a reset did: `migrate reset --json`.
#[derive(Debug, Clone, Serialize)]
pub struct ResetReport {
    pub dropped_schemas: Vec<String>,
    pub applied: Vec<Applied>,
    /// The seed file run, if any.
    pub seed: Option<PathBuf>,
}

/// Drops the application's schemas (those there now, under the lock: one created since the
/// plan goes too), applies every migration again, then runs the seed when there is one.
/// `cancel` stops it during the deploy, or between the deploy and the seed.
pub async fn reset(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    request: &ResetRequest,
    cancel: &CancellationToken,
    on_event: &mut (dyn FnMut(MigrateEvent) + Send),
) -> Result<ResetReport, MigrateServiceError> {
    let locked = lock(database, settings, migrations, on_event).await?;
    let dropped_schemas = apply::application_schemas(locked.client()).await?;
    apply::drop_schemas(&locked, &dropped_schemas).await?;
    locked.release().await?;
    on_event(MigrateEvent::Dropped {
        schemas: dropped_schemas.clone(),
    });
    let report = apply::deploy(
        database.info(),
        &interruptible(settings, database, cancel),
        migrations.history(),
        &migrations.files,
        None,
        false,
        &mut |event| on_event(MigrateEvent::Run(event)),
    )
    .await?;
    let seed = match &request.seed {
        Some(_) if cancel.is_cancelled() => {
            return Err(MigrateError::Interrupted {
                applied: report.applied.iter().map(|a| a.name.clone()).collect(),
                state: "the migrations are applied and the seed did not run; `tend seed` runs it"
                    .to_string(),
            }
            .into());
        }
        Some(seed_request) => seed(database, settings, seed_request, cancel)
            .await?
            .map(|report| report.seed),
        None => None,
    };
    Ok(ResetReport {
        dropped_schemas,
        applied: report.applied,
        seed,
    })
}

/// `migrate baseline --json`: the migrations recorded as applied without running them.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub recorded: Vec<String>,
}

/// Records every migration up to `to` (all by default) as applied without running it, to
/// adopt a database whose schema already matches.
pub async fn baseline(
    database: &Database,
    settings: &MigrateSettings,
    migrations: &Migrations,
    to: Option<&str>,
    on_event: &mut (dyn FnMut(MigrateEvent) + Send),
) -> Result<BaselineReport, MigrateServiceError> {
    let locked = lock(database, settings, migrations, on_event).await?;
    let recorded = apply::baseline(&locked, &migrations.files, to).await?;
    locked.release().await?;
    Ok(BaselineReport { recorded })
}

/// `migrate dev --json`: the migration written from the desired schema (none when nothing
/// changes), and whether it was applied.
#[derive(Debug, Clone, Serialize)]
pub struct DevReport {
    pub path: Option<PathBuf>,
    pub steps: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployReport>,
}

/// Which seed to run.
#[derive(Debug, Clone)]
pub struct SeedRequest {
    /// Where `seed.sql` and `prisma/seed.sql` are looked for.
    pub project_root: PathBuf,
    /// The file asked for (absolute); `None`: `migrate.seed`, else the usual places.
    pub file: Option<PathBuf>,
    /// A project without a seed is fine (`reset`); otherwise that is an error.
    pub optional: bool,
}

/// `tend seed --json`: the file run and how.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    pub seed: PathBuf,
    pub mode: SeedMode,
}

/// Finds the seed (the file asked for, else `migrate.seed`, else `seed.sql`, else
/// `prisma/seed.sql`) and runs it: in one transaction, or statement by statement when it
/// manages its own. `None`: no seed, and `request.optional`. `cancel` stops it: the running
/// statement is cancelled on the server, what committed stays, and the error says what.
pub async fn seed(
    database: &Database,
    settings: &MigrateSettings,
    request: &SeedRequest,
    cancel: &CancellationToken,
) -> Result<Option<SeedReport>, MigrateServiceError> {
    let given = request.file.clone().or_else(|| settings.seed.clone());
    let path = match given {
        Some(path) if path.is_file() => path,
        Some(path) => return Err(MigrateServiceError::SeedMissing(path)),
        None => match ["seed.sql", "prisma/seed.sql"]
            .iter()
            .map(|p| request.project_root.join(p))
            .find(|p| p.is_file())
        {
            Some(path) => path,
            None if request.optional => return Ok(None),
            None => return Err(MigrateServiceError::NoSeed(request.project_root.clone())),
        },
    };
    let sql = std::fs::read_to_string(&path).map_err(|source| MigrateServiceError::ReadSeed {
        path: path.clone(),
        source,
    })?;
    Ok(Some(
        run_seed(database, settings, path, &sql, cancel).await?,
    ))
}

/// Runs the seed script `sql` (read from `path`, which errors name) on the database: what
/// [`seed`] does once it has found the file, for a caller that holds the script already
/// (the demo's is built into the binary).
pub async fn run_seed(
    database: &Database,
    settings: &MigrateSettings,
    path: PathBuf,
    sql: &str,
    cancel: &CancellationToken,
) -> Result<SeedReport, MigrateServiceError> {
    let mode = apply::seed(
        database.info(),
        &interruptible(settings, database, cancel),
        &path,
        sql,
    )
    .await?;
    Ok(SeedReport { seed: path, mode })
}

/// `migrate dev`'s plan: from the schema the migrations give (replayed in a shadow database)
/// to the schema `desired` describes, with the rename hints. Steps use CONCURRENTLY only in
/// tend's layout: Prisma runs a migration file as one script, where it cannot run.
pub async fn dev_plan(
    shadows: &tend_schema::shadow::Shadows,
    migrations: &[Migration],
    format: Format,
    desired: &dyn tend_schema::source::Source,
    renames: Vec<tend_schema::diff::Rename>,
) -> Result<tend_schema::diff::Plan, tend_schema::SchemaError> {
    let shadow = shadows.replay_migrations(migrations, format).await?;
    let current = tend_schema::source::introspect_and_release(shadow).await?;
    let wanted = desired.load(Some(shadows)).await?;
    Ok(tend_schema::diff(
        &current,
        &wanted,
        &tend_schema::diff::DiffOptions {
            renames,
            concurrently: format == Format::Tend,
        },
    ))
}
