//! `tend migrate`: new, deploy, status, resolve, rollback, reset and baseline, for Prisma's
//! layout and tend's own: arguments, confirmations and rendering; the work is
//! `tend_core::migrate`'s. Migrations go to DIRECT_URL when set (a pooler breaks the
//! advisory lock), else to the database every command uses.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use tend_core::migrate::{
    self as service, DeployRequest, DevReport, DryRun, MigrateEvent, MigrateServiceError,
    MigrationProject, ResetRequest, ResolveRequest, RollbackReport, RollbackRequest, SeedRequest,
};
use tend_migrate::apply::{self, Event};
use tend_migrate::source::{Format, Migration};
use tend_migrate::{MigrateError, RunOptions, State};
use tend_pg::{ConnInfo, Database};
use tokio_util::sync::CancellationToken;

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Create an empty migration, named with the current UTC time.
    New(NewArgs),
    /// Write the next migration from the desired schema (schema/), then apply it to the dev database.
    Dev(DevArgs),
    /// Apply pending migrations in order, each exactly once, under a lock.
    Deploy(DeployArgs),
    /// Show each migration's state; exit 0 only when all are applied and none failed or changed.
    Status,
    /// Record a migration's fate by hand (Prisma's semantics).
    Resolve(ResolveArgs),
    /// Undo the latest applied migrations through their down scripts.
    Rollback(RollbackArgs),
    /// Drop the application's schemas, apply every migration again, then seed.
    Reset(ResetArgs),
    /// Record migrations as applied without running them, to adopt an existing database.
    Baseline(BaselineArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the migration does, e.g. "add users".
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// What the migration does, e.g. "add invoices".
    #[arg(long)]
    pub name: String,
    /// Write the migration and apply nothing.
    #[arg(long)]
    pub create_only: bool,
    /// A rename, so it is not a drop and an add: `schema.table=new_name` or
    /// `schema.table.column=new_name` (repeatable).
    #[arg(long, value_name = "OLD=NEW")]
    pub rename: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Show what would be applied, and apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply up to and including this migration only.
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Take up the failed or interrupted migration NAME for its file as it is now: go on
    /// after the statements it completed, which must be unchanged in the file.
    #[arg(long, value_name = "NAME")]
    pub resume: Option<String>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ResolveArgs {
    /// Mark NAME applied: a failed migration finished by hand, one never to run, or an
    /// applied file whose edit you accept.
    #[arg(long, value_name = "NAME")]
    pub applied: Option<String>,
    /// Mark the failed NAME rolled back, so the next deploy applies it again.
    #[arg(long, value_name = "NAME")]
    pub rolled_back: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// How many migrations to undo (default 1).
    #[arg(long, conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Undo every migration applied after NAME (NAME stays applied).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Show what would be undone, and undo nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Show what would be dropped, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not run the seed afterwards.
    #[arg(long)]
    pub skip_seed: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Record up to and including this migration (default: all).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
}

/// The project's migrations: their layout, directory and files.
pub struct Project {
    pub format: Format,
    pub dir: PathBuf,
}

impl Project {
    pub fn from_settings(ctx: &Context) -> Project {
        let MigrationProject { format, dir } =
            MigrationProject::resolve(&ctx.settings.migrate, &ctx.settings.project_root);
        Project { format, dir }
    }

    pub fn load(&self) -> Result<Vec<Migration>, CommandError> {
        self.core()
            .load()
            .map(|loaded| loaded.files)
            .map_err(|e| MigrateServiceError::Load(e).into())
    }

    /// The same project, as the core's services take it.
    pub fn core(&self) -> MigrationProject {
        MigrationProject {
            format: self.format,
            dir: self.dir.clone(),
        }
    }
}

impl From<MigrateError> for CommandError {
    fn from(err: MigrateError) -> Self {
        match err {
            MigrateError::Connect(e) => e.into(),
            err @ MigrateError::Interrupted { .. } => {
                CommandError::new(ErrorKind::Interrupted, err.to_string())
            }
            other => {
                let message = other.to_string();
                CommandError::failure(message)
            }
        }
    }
}

impl From<MigrateServiceError> for CommandError {
    fn from(err: MigrateServiceError) -> Self {
        match err {
            MigrateServiceError::Migrate(e) => e.into(),
            err @ MigrateServiceError::Load(_) => {
                CommandError::new(ErrorKind::Config, err.to_string()).with_hint(
                    "`tend init` sets up a project; `tend migrate new NAME` creates a migration",
                )
            }
            other => CommandError::failure(other.to_string()),
        }
    }
}

pub fn run_options(ctx: &Context) -> RunOptions {
    service::run_options(&ctx.settings.migrate, &ctx.settings.connect_options(), None)
}

/// A token that SIGINT or SIGTERM fires, for a run that stops cleanly on it: the statement
/// running is cancelled on the server and the error says what is applied. A second signal
/// exits at once.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let fired = token.clone();
    block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            fired.cancel();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            // Fixed text, no secret: written directly, as the process leaves now.
            eprintln!(
                "error: interrupted again: leaving without waiting for the server; `tend migrate status` shows what was applied"
            );
            std::process::exit(exit::INTERRUPTED);
        });
    });
    token
}

/// DIRECT_URL when set (it bypasses a pooler), else the database every command uses; a
/// `--database-url` flag beats both, as flags beat all configuration.
pub fn migration_target(ctx: &Context) -> Result<ConnInfo, CommandError> {
    let from_flag = matches!(
        ctx.settings.database.url.as_ref().map(|url| &url.source),
        Some(crate::settings::Source::Flag { .. })
    );
    if !from_flag && let Some(direct) = &ctx.settings.database.direct_url {
        return Ok(direct.value.clone());
    }
    Ok(ctx.target()?.info)
}

/// The project's migrations, read before the database is reached for (a project that is
/// not set up is said before any server starts).
fn load(ctx: &Context) -> Result<service::Migrations, CommandError> {
    Ok(Project::from_settings(ctx)
        .core()
        .load()
        .map_err(MigrateServiceError::Load)?)
}

/// A handle on [`migration_target`].
fn migration_database(ctx: &Context) -> Result<Database, CommandError> {
    Ok(ctx.settings.database.handle(migration_target(ctx)?))
}

/// The seed `reset` runs when the project has one.
pub fn project_seed(ctx: &Context) -> SeedRequest {
    SeedRequest {
        project_root: ctx.settings.project_root.clone(),
        file: None,
        optional: true,
    }
}

pub fn run(cmd: MigrateCommand, ctx: &Context) -> Result<i32, CommandError> {
    match cmd {
        MigrateCommand::New(args) => new(ctx, args),
        MigrateCommand::Dev(args) => dev(ctx, args),
        MigrateCommand::Deploy(args) => deploy(ctx, args),
        MigrateCommand::Status => status(ctx),
        MigrateCommand::Resolve(args) => resolve(ctx, args),
        MigrateCommand::Rollback(args) => rollback(ctx, args),
        MigrateCommand::Reset(args) => reset(ctx, args),
        MigrateCommand::Baseline(args) => baseline(ctx, args),
    }
}

/// `--json` prints a service's report as it is.
fn print_json(ctx: &Context, report: &impl serde::Serialize) {
    ctx.out
        .json_value(&serde_json::to_value(report).expect("reports serialize"));
}

fn new(ctx: &Context, args: NewArgs) -> Result<i32, CommandError> {
    let project = Project::from_settings(ctx).core();
    let report = service::create_migration(&project, &utc_timestamp(), &args.name, None)?;
    print_json(ctx, &report);
    ctx.out.line(format!("Created {}", report.path.display()));
    Ok(exit::OK)
}

/// Diffs the migrations (replayed in a shadow database) against the desired schema, writes
/// the difference as the next migration, and deploys it to the dev database. It never resets
/// the dev database: when the deploy cannot apply, it says so and leaves the choice to the user.
fn dev(ctx: &Context, args: DevArgs) -> Result<i32, CommandError> {
    use tend_schema::diff::Rename;
    use tend_schema::source::{Source, SqlSource};

    let project = Project::from_settings(ctx);
    if tend_migrate::source::sanitize_name(&args.name).is_empty() {
        return Err(MigrateServiceError::EmptyName.into());
    }
    let renames = args
        .rename
        .iter()
        .map(|r| Rename::parse(r).map_err(|e| CommandError::new(ErrorKind::Config, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let migrations = if project.dir.exists() {
        project.load()?
    } else {
        Vec::new()
    };
    let desired = SqlSource {
        path: super::schema::schema_path(ctx)?,
    };
    let target = if args.create_only {
        None
    } else {
        Some(migration_target(ctx)?)
    };
    let shadows = super::schema::shadows(ctx, target.as_ref())?;
    let plan = block_on(service::dev_plan(
        &shadows,
        &migrations,
        project.format,
        &desired,
        renames,
    ))?;
    for warning in &plan.warnings {
        ctx.out.warn(warning);
    }
    if plan.is_empty() {
        print_json(
            ctx,
            &DevReport {
                path: None,
                steps: 0,
                applied: None,
                deploy: None,
            },
        );
        ctx.out.line(format!(
            "No changes: the migrations already give the schema in {}.",
            desired.describe()
        ));
        return Ok(exit::OK);
    }
    let header = format!(
        "-- {}: written by `tend migrate dev` from {}.\n-- Review it, hazards especially, before it reaches production.\n\n",
        args.name,
        desired.describe()
    );
    let path = service::create_migration(
        &project.core(),
        &utc_timestamp(),
        &args.name,
        Some(&format!("{header}{}", plan.to_sql(true))),
    )?
    .path;
    let hazards = plan.steps.iter().filter(|s| !s.hazards.is_empty()).count();
    ctx.out.line(format!(
        "Created {} ({}{})",
        path.display(),
        count(plan.steps.len(), "step", "steps"),
        if hazards > 0 {
            format!(
                ", {} with hazards: read them",
                count(hazards, "step", "steps")
            )
        } else {
            String::new()
        }
    ));
    let Some(info) = target else {
        print_json(
            ctx,
            &DevReport {
                path: Some(path),
                steps: plan.steps.len(),
                applied: Some(false),
                deploy: None,
            },
        );
        return Ok(exit::OK);
    };
    let database = ctx.settings.database.handle(info.clone());
    let migrations = load(ctx)?;
    let report = block_on(service::deploy(
        &database,
        &ctx.settings.migrate,
        &migrations,
        &DeployRequest::default(),
        &interrupt_token(),
        &mut |event| print_event(ctx, event),
    ))
    .map_err(|e| {
        CommandError::from(e)
            .with_hint(format!("the migration is written ({}); fix the cause and run `tend migrate deploy`", path.display()))
            .with_hint("if the dev database drifted from its migrations, `tend schema verify` shows how, and `tend migrate reset` rebuilds it (it asks first)")
    })?;
    print_json(
        ctx,
        &DevReport {
            path: Some(path),
            steps: plan.steps.len(),
            applied: Some(true),
            deploy: Some(report),
        },
    );
    ctx.out.line(format!("Applied to {}.", info.redacted()));
    Ok(exit::OK)
}

fn print_event(ctx: &Context, event: MigrateEvent) {
    let event = match event {
        MigrateEvent::Run(event) => event,
        MigrateEvent::Dropped { schemas } => {
            ctx.out.line(format!("Dropped {}.", schemas.join(", ")));
            return;
        }
    };
    match event {
        Event::Locked { waited } if waited > Duration::from_millis(500) => ctx.out.notice(format!(
            "Took the migration lock after waiting {:.1}s for another deploy",
            waited.as_secs_f64()
        )),
        Event::Locked { .. } => {}
        Event::Applying {
            name, resume_from, ..
        } => match resume_from {
            Some(0) => ctx.out.notice(format!(
                "Running {name} again from its first statement, where an earlier run stopped"
            )),
            Some(from) => ctx.out.notice(format!(
                "Resuming {name} after its statement {from}, where an earlier run stopped"
            )),
            None => {}
        },
        Event::Applied { name, elapsed } => ctx.out.step(format!(
            "applied  {name}  ({:.1} ms)",
            elapsed.as_secs_f64() * 1000.0
        )),
    }
}

fn deploy(ctx: &Context, args: DeployArgs) -> Result<i32, CommandError> {
    let migrations = load(ctx)?;
    let database = migration_database(ctx)?;
    let report = block_on(service::deploy(
        &database,
        &ctx.settings.migrate,
        &migrations,
        &DeployRequest {
            to: args.to,
            dry_run: args.dry_run,
            resume: args.resume,
        },
        &interrupt_token(),
        &mut |event| print_event(ctx, event),
    ))?;
    print_json(ctx, &report);
    if args.dry_run {
        if report.applied.is_empty() {
            ctx.out
                .line("Nothing to apply: the database is up to date.");
        } else {
            ctx.out.line(format!(
                "Would apply {}:",
                count(report.applied.len(), "migration", "migrations")
            ));
            for m in &report.applied {
                ctx.out.line(format!("  {}  ({})", m.name, m.mode));
            }
        }
        return Ok(exit::OK);
    }
    ctx.out.line(format!(
        "{} applied, {} already applied, in {:.2}s.",
        count(report.applied.len(), "migration", "migrations"),
        report.already_applied,
        report.elapsed.as_secs_f64()
    ));
    Ok(exit::OK)
}

fn status(ctx: &Context) -> Result<i32, CommandError> {
    let migrations = load(ctx)?;
    let database = migration_database(ctx)?;
    let report = block_on(service::status(
        &database,
        &ctx.settings.migrate,
        &migrations,
    ))?;
    print_json(ctx, &report);
    let statuses = &report.migrations;
    let width = statuses.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in statuses {
        let state = apply::state_word(&s.state);
        let mark = match s.state {
            State::Applied => ctx.out.paint(state, "32"),
            State::Pending | State::RolledBack | State::Missing => ctx.out.paint(state, "33"),
            State::Failed | State::Modified => ctx.out.paint(state, "31;1"),
        };
        let when = s.applied_at.as_deref().unwrap_or("");
        let mark = if s.interrupted {
            format!("{mark} (interrupted after statement {})", s.steps)
        } else {
            mark
        };
        ctx.out.line(format!("{:width$}  {mark}  {when}", s.name));
        if let Some(logs) = &s.logs {
            ctx.out
                .line(format!("{:width$}    {}", "", logs.replace('\n', " ")));
        }
        if let Some(fix) = &s.fix {
            ctx.out.line(format!("{:width$}    fix: {fix}", ""));
        }
    }
    let count = |state: State| statuses.iter().filter(|s| s.state == state).count();
    ctx.out.line(format!(
        "\n{} applied, {} pending, {} failed, {} modified, {} rolled back, {} missing from disk ({}).",
        count(State::Applied),
        count(State::Pending),
        count(State::Failed),
        count(State::Modified),
        count(State::RolledBack),
        count(State::Missing),
        report.history_table
    ));
    let waiting = count(State::Pending) + count(State::RolledBack);
    if waiting > 0 {
        ctx.out.line(format!(
            "`tend migrate deploy` applies the {waiting} pending{}.",
            if count(State::Failed) + count(State::Modified) > 0 {
                ", once the problems above are fixed"
            } else {
                ""
            }
        ));
    }
    Ok(if report.up_to_date {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn resolve(ctx: &Context, args: ResolveArgs) -> Result<i32, CommandError> {
    let migrations = load(ctx)?;
    let request = match (args.applied, args.rolled_back) {
        (Some(name), _) => ResolveRequest::Applied(name),
        (None, Some(name)) => ResolveRequest::RolledBack(name),
        (None, None) => unreachable!("clap requires one"),
    };
    let database = migration_database(ctx)?;
    let report = block_on(service::resolve(
        &database,
        &ctx.settings.migrate,
        &migrations,
        &request,
        &mut |event| print_event(ctx, event),
    ))?;
    print_json(ctx, &report);
    ctx.out.line(format!("Resolved: {}.", report.result));
    Ok(exit::OK)
}

fn rollback(ctx: &Context, args: RollbackArgs) -> Result<i32, CommandError> {
    let migrations = load(ctx)?;
    let database = migration_database(ctx)?;
    let request = RollbackRequest {
        steps: args.steps,
        to: args.to,
    };
    // Plan and ask without holding the lock, so a prompt never blocks a deploy.
    let plan = block_on(service::plan_rollback(
        &database,
        &ctx.settings.migrate,
        &migrations,
        &request,
    ))?;
    let names = &plan.would_roll_back;
    if names.is_empty() {
        print_json(
            ctx,
            &RollbackReport {
                rolled_back: Vec::new(),
            },
        );
        ctx.out.line("Nothing to roll back.");
        return Ok(exit::OK);
    }
    if args.dry_run {
        ctx.out.line("Would run the down scripts of, newest first:");
        for name in names {
            ctx.out.line(format!("  {name}"));
        }
        print_json(ctx, &DryRun::of(plan));
        return Ok(exit::OK);
    }
    ctx.out.confirm(
        &format!(
            "Undo {} ({}) through {}?",
            count(names.len(), "migration", "migrations"),
            names.join(", "),
            if names.len() == 1 {
                "its down script"
            } else {
                "their down scripts"
            }
        ),
        ctx.yes,
    )?;
    let report = block_on(service::rollback(
        &database,
        &ctx.settings.migrate,
        &migrations,
        &request,
        &plan,
        &mut |event| print_event(ctx, event),
    ))?;
    print_json(ctx, &report);
    for name in &report.rolled_back {
        ctx.out.line(format!("rolled back  {name}"));
    }
    Ok(exit::OK)
}

fn reset(ctx: &Context, args: ResetArgs) -> Result<i32, CommandError> {
    let migrations = load(ctx)?;
    let database = migration_database(ctx)?;
    let info = database.info();
    let plan = block_on(service::plan_reset(&database, &migrations))?;
    let schemas = &plan.would_drop_schemas;
    if args.dry_run {
        ctx.out.line(format!(
            "Would drop the schemas {} of {}, then apply {}{}.",
            schemas.join(", "),
            info.redacted(),
            count(plan.would_apply.len(), "migration", "migrations"),
            if args.skip_seed { "" } else { " and seed" }
        ));
        print_json(ctx, &DryRun::of(plan));
        return Ok(exit::OK);
    }
    ctx.out.confirm(
        &format!(
            "Drop the schemas {} of {} with all their data, and rebuild them from the migrations?",
            schemas.join(", "),
            info.redacted()
        ),
        ctx.yes,
    )?;
    let request = ResetRequest {
        seed: (!args.skip_seed).then(|| project_seed(ctx)),
    };
    let report = block_on(service::reset(
        &database,
        &ctx.settings.migrate,
        &migrations,
        &request,
        &interrupt_token(),
        &mut |event| print_event(ctx, event),
    ))?;
    print_json(ctx, &report);
    ctx.out.line(format!(
        "Reset done: {} applied{}.",
        count(report.applied.len(), "migration", "migrations"),
        match &report.seed {
            Some(path) => format!(", seeded from {}", path.display()),
            None => String::new(),
        }
    ));
    Ok(exit::OK)
}

fn baseline(ctx: &Context, args: BaselineArgs) -> Result<i32, CommandError> {
    let migrations = load(ctx)?;
    let database = migration_database(ctx)?;
    let report = block_on(service::baseline(
        &database,
        &ctx.settings.migrate,
        &migrations,
        args.to.as_deref(),
        &mut |event| print_event(ctx, event),
    ))?;
    print_json(ctx, &report);
    let recorded = &report.recorded;
    ctx.out.line(format!(
        "Recorded {} as applied without running {}.",
        count(recorded.len(), "migration", "migrations"),
        if recorded.len() == 1 { "it" } else { "them" }
    ));
    Ok(exit::OK)
}

/// `YYYYMMDDHHMMSS` in UTC, as Prisma names migrations.
pub(crate) fn utc_timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}
