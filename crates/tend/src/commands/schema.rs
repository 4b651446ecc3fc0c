//! `tend schema dump|diff|verify`: the schema as a model, compared between sources
//! (a database, the migrations, desired-state SQL, nothing), and the live database proven
//! against its migrations. Replays happen in shadow databases: SHADOW_DATABASE_URL, else the
//! local cluster when it runs the live server's major version, else temporary databases on
//! the live server itself.

use clap::{Args, Subcommand};
use serde_json::json;
use tend_migrate::apply;
use tend_migrate::{History, Migration, State};
use tend_pg::{ConnInfo, ServerFacts};
use tend_schema::diff::{Change, DiffOptions, Plan, Rename};
use tend_schema::drift::ObjectDrift;
use tend_schema::shadow::{ShadowError, ShadowHost, Shadows};
use tend_schema::source::{DatabaseSource, MigrationsSource, Source, introspect_and_release};
use tend_schema::{Model, SchemaError};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::commands::migrate::{Project, run_options};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print a schema as DDL, or as the model in JSON with --json.
    Dump(DumpArgs),
    /// Print the ordered DDL from one schema to another, hazards as comments, runnable with psql -f.
    Diff(DiffArgs),
    /// Prove the database matches its migrations: exit 0 when identical, 1 listing every drifted object.
    Verify,
    /// Drop the cached replays (template databases) from the shadow server.
    ClearCache,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The schema to dump (default: `database`). See `diff` for the forms.
    #[arg(long, value_name = "SRC", default_value = "database")]
    pub from: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Where the database is now: `database`, `migrations`, `schema`, `empty`, a URL,
    /// `migrations:DIR` or `sql:PATH`.
    #[arg(long, value_name = "SRC")]
    pub from: String,
    /// Where it should be, in the same forms.
    #[arg(long, value_name = "SRC")]
    pub to: String,
    /// Exit 0 when the schemas are equal and 1 when they differ.
    #[arg(long)]
    pub exit_code: bool,
    /// A rename, so it is not a drop and an add: `schema.table=new_name` or
    /// `schema.table.column=new_name` (repeatable).
    #[arg(long, value_name = "OLD=NEW")]
    pub rename: Vec<String>,
    /// Build indexes on existing tables in the transaction instead of CONCURRENTLY.
    #[arg(long)]
    pub no_concurrently: bool,
}

pub fn run(cmd: SchemaCommand, ctx: &Context) -> Result<i32, CommandError> {
    match cmd {
        SchemaCommand::Dump(args) => dump(ctx, args),
        SchemaCommand::Diff(args) => diff(ctx, args),
        SchemaCommand::Verify => verify(ctx),
        SchemaCommand::ClearCache => clear_cache(ctx),
    }
}

impl From<SchemaError> for CommandError {
    fn from(err: SchemaError) -> Self {
        match err {
            SchemaError::Connect(e) => e.into(),
            SchemaError::Shadow(ShadowError::Connect(e)) => e.into(),
            SchemaError::Shadow(
                e @ (ShadowError::CannotCreateDatabase { .. }
                | ShadowError::SameAsLive { .. }
                | ShadowError::NotEmpty { .. }),
            ) => CommandError::new(ErrorKind::Config, e.to_string()),
            SchemaError::Source(e) => CommandError::new(ErrorKind::Config, e.to_string()),
            other => CommandError::failure(other.to_string()),
        }
    }
}

impl From<ShadowError> for CommandError {
    fn from(err: ShadowError) -> Self {
        SchemaError::from(err).into()
    }
}

/// Reads a source's text form; `database`, `migrations` and `schema` name the project's own.
pub fn source(ctx: &Context, text: &str) -> Result<Box<dyn Source>, CommandError> {
    let project = Project::from_settings(ctx);
    match text {
        "database" | "db" => Ok(Box::new(DatabaseSource {
            info: ctx.target()?.info,
            connect: ctx.settings.connect_options(),
        })),
        "migrations" => {
            // Loading checks the directory now, with the error `migrate` gives.
            project.load()?;
            Ok(Box::new(MigrationsSource {
                dir: project.dir,
                format: project.format,
            }))
        }
        "schema" => {
            let path = schema_path(ctx)?;
            Ok(
                tend_schema::source::parse(&format!("sql:{}", path.display()), project.format)
                    .map_err(SchemaError::from)?,
            )
        }
        other => Ok(tend_schema::source::parse(other, project.format).map_err(SchemaError::from)?),
    }
}

/// The desired-state SQL (`schema.path`, default `schema/`), which must exist.
pub fn schema_path(ctx: &Context) -> Result<std::path::PathBuf, CommandError> {
    let path = ctx.settings.schema.path.clone();
    if !path.exists() {
        return Err(CommandError::new(
            ErrorKind::Config,
            format!("the desired schema {} does not exist", path.display()),
        )
        .with_hint(
            "write the schema you want as SQL in schema/*.sql (or schema.sql and set schema.path)",
        ));
    }
    Ok(path)
}

/// Where shadow databases go: SHADOW_DATABASE_URL; else the local cluster, when it runs the
/// same major version as the live server (another major renders definitions differently);
/// else the live server itself.
pub fn shadows(ctx: &Context, live: Option<&ConnInfo>) -> Result<Shadows, CommandError> {
    let connect = ctx.settings.connect_options();
    let protect = |shadows: Shadows| match live {
        Some(info) => shadows.protecting(info),
        None => shadows,
    };
    if let Some(url) = &ctx.settings.database.shadow_url {
        return Ok(protect(Shadows::new(
            ShadowHost::Dedicated(url.value.clone()),
            connect,
        )));
    }
    let live_major = match live {
        Some(info) => Some(block_on(async {
            let session = tend_pg::connect(info, &connect).await?;
            let facts = ServerFacts::read(&session).await?;
            Ok::<u32, CommandError>(facts.version_num / 10000)
        })?),
        None => None,
    };
    let local = crate::context::start_local_cluster(
        &ctx.settings,
        ctx.out,
        "postgres",
        crate::context::ClusterUse::Shadow,
    );
    match (local, live) {
        (Ok(admin), _) => {
            let local_major = block_on(async {
                let session = tend_pg::connect(&admin, &connect).await?;
                let facts = ServerFacts::read(&session).await?;
                Ok::<u32, CommandError>(facts.version_num / 10000)
            })?;
            match (live_major, live) {
                (Some(major), Some(info)) if major != local_major => {
                    ctx.out.notice(format!(
                        "The local cluster runs PostgreSQL {local_major} and the database {major}: shadow databases go to the database's server"
                    ));
                    Ok(protect(Shadows::new(
                        ShadowHost::Server(info.clone()),
                        connect,
                    )))
                }
                _ => Ok(protect(Shadows::new(ShadowHost::Server(admin), connect))),
            }
        }
        (Err(_), Some(info)) => Ok(protect(Shadows::new(
            ShadowHost::Server(info.clone()),
            connect,
        ))),
        (Err(e), None) => Err(e.with_hint(
            "set SHADOW_DATABASE_URL to a database tend may reset, for replaying migrations",
        )),
    }
}

/// Loads a model, making shadow databases only when the source needs them.
pub fn load(source: &dyn Source, shadows: Option<&Shadows>) -> Result<Model, CommandError> {
    Ok(block_on(source.load(shadows))?)
}

fn dump(ctx: &Context, args: DumpArgs) -> Result<i32, CommandError> {
    let source = source(ctx, &args.from)?;
    let shadows = if source.needs_shadow() {
        Some(shadows(ctx, database_of(ctx, &args.from).as_ref())?)
    } else {
        None
    };
    let model = load(source.as_ref(), shadows.as_ref())?;
    ctx.out
        .json_value(&serde_json::to_value(&model).expect("models serialize"));
    let plan = tend_schema::diff(
        &Model::default(),
        &model,
        &DiffOptions {
            concurrently: false,
            ..DiffOptions::default()
        },
    );
    ctx.out.line(format!("-- {}", source.describe()));
    ctx.out.line(format!(
        "-- {}, by tend {}\n",
        count(model.object_count(), "object", "objects"),
        env!("CARGO_PKG_VERSION")
    ));
    for step in &plan.steps {
        ctx.out.line(format!("{};\n", step.sql));
    }
    Ok(exit::OK)
}

fn diff(ctx: &Context, args: DiffArgs) -> Result<i32, CommandError> {
    let renames = args
        .rename
        .iter()
        .map(|r| Rename::parse(r).map_err(|e| CommandError::new(ErrorKind::Config, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let from = source(ctx, &args.from)?;
    let to = source(ctx, &args.to)?;
    let shadows = if from.needs_shadow() || to.needs_shadow() {
        let live = database_of(ctx, &args.from).or_else(|| database_of(ctx, &args.to));
        Some(shadows(ctx, live.as_ref())?)
    } else {
        None
    };
    // The two catalogs are read at once (each read waits on its server). Two shadow
    // replays stay one after the other: a dedicated shadow database serves one at a time.
    let (before, after) = if from.needs_shadow() && to.needs_shadow() {
        (
            load(from.as_ref(), shadows.as_ref())?,
            load(to.as_ref(), shadows.as_ref())?,
        )
    } else {
        let (before, after) = block_on(async {
            tokio::join!(from.load(shadows.as_ref()), to.load(shadows.as_ref()))
        });
        (before?, after?)
    };
    let options = DiffOptions {
        renames,
        concurrently: !args.no_concurrently,
    };
    let plan = tend_schema::diff(&before, &after, &options);
    ctx.out.json_value(&json!({
        "from": from.describe(),
        "to": to.describe(),
        "equal": plan.is_empty(),
        "objects": plan.objects,
        "steps": plan.steps,
        "warnings": plan.warnings,
    }));
    ctx.out.line(format!(
        "-- tend schema diff\n-- from: {}\n-- to:   {}",
        from.describe(),
        to.describe()
    ));
    if plan.is_empty() {
        ctx.out.line("-- The schemas are equal: nothing to do.");
    } else {
        ctx.out.line(format!(
            "-- {} {} (from -> to):",
            count(plan.objects.len(), "object", "objects"),
            if plan.objects.len() == 1 {
                "differs"
            } else {
                "differ"
            }
        ));
        for line in drift_lines(&plan.objects, |change| match change {
            Change::Create => "only in to",
            Change::Drop => "only in from",
            Change::Alter => "differs",
        }) {
            ctx.out.line(format!("--   {line}"));
        }
        ctx.out.line(format!(
            "--\n-- {}{}\n",
            count(plan.steps.len(), "step", "steps"),
            hazard_summary(&plan)
        ));
        ctx.out.line(plan.to_sql(true).trim_end());
        for warning in &plan.warnings {
            ctx.out.warn(warning);
        }
    }
    if args.exit_code && !plan.is_empty() {
        return Ok(exit::FAILURE);
    }
    Ok(exit::OK)
}

/// The connection a source text names, when it is a live database (to pick a shadow server
/// of the same major version).
fn database_of(ctx: &Context, text: &str) -> Option<ConnInfo> {
    match text {
        "database" | "db" => ctx.target().ok().map(|t| t.info),
        other if other.contains("://") || other.contains('=') && !other.contains(':') => {
            ConnInfo::parse(other).ok()
        }
        _ => None,
    }
}

fn hazard_summary(plan: &Plan) -> String {
    let mut hazards: Vec<_> = plan.steps.iter().flat_map(|s| s.hazards.iter()).collect();
    hazards.sort();
    hazards.dedup();
    if hazards.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = hazards.iter().map(|h| h.describe()).collect();
    format!("; hazards: {}", names.join(", "))
}

/// The drift between a live database and the migrations it has applied.
pub struct Drift {
    /// Migrations applied in the database (and replayed in the shadow).
    pub applied: usize,
    /// Migrations on disk not applied yet (not part of the comparison).
    pub pending: Vec<String>,
    /// The steps that would bring the database to its migrations' schema.
    pub plan: Plan,
}

/// Compares the database with the migrations its history says are applied.
pub fn drift(
    ctx: &Context,
    info: &ConnInfo,
    project: &Project,
    migrations: &[Migration],
    shadows: &Shadows,
) -> Result<Drift, CommandError> {
    let statuses = block_on(apply::status(
        info,
        &run_options(ctx),
        History::new(project.format),
        migrations,
    ))?;
    let problems: Vec<String> = statuses
        .iter()
        .filter(|s| matches!(s.state, State::Failed | State::Modified | State::Missing))
        .map(|s| format!("{} ({})", s.name, apply::state_word(&s.state)))
        .collect();
    if !problems.is_empty() {
        return Err(CommandError::failure(format!(
            "the migration history does not match the files, so there is no schema to compare with: {}",
            problems.join(", ")
        ))
        .with_hint("`tend migrate status` explains each state and what to do"));
    }
    let applied: Vec<&str> = statuses
        .iter()
        .filter(|s| s.state == State::Applied)
        .map(|s| s.name.as_str())
        .collect();
    let pending: Vec<String> = statuses
        .iter()
        .filter(|s| matches!(s.state, State::Pending | State::RolledBack))
        .map(|s| s.name.clone())
        .collect();
    let replay: Vec<Migration> = migrations
        .iter()
        .filter(|m| applied.contains(&m.name.as_str()))
        .cloned()
        .collect();
    let live_source = DatabaseSource {
        info: info.clone(),
        connect: ctx.settings.connect_options(),
    };
    // The live catalog is read while the shadow replays the history.
    let (expected, live) = block_on(async {
        let expected = async {
            let shadow = shadows.replay_migrations(&replay, project.format).await?;
            introspect_and_release(shadow).await
        };
        tokio::join!(expected, live_source.load(None))
    });
    let (expected, live) = (expected?, live?);
    let plan = tend_schema::diff(&live, &expected, &DiffOptions::default());
    Ok(Drift {
        applied: replay.len(),
        pending,
        plan,
    })
}

fn verify(ctx: &Context) -> Result<i32, CommandError> {
    let project = Project::from_settings(ctx);
    let migrations = project.load()?;
    let info = ctx.target()?.info;
    let shadows = shadows(ctx, Some(&info))?;
    let drift = drift(ctx, &info, &project, &migrations, &shadows)?;
    let objects = &drift.plan.objects;
    ctx.out.json_value(&json!({
        "database": info.redacted().to_string(),
        "drift": !drift.plan.is_empty() || !objects.is_empty(),
        "applied": drift.applied,
        "pending": drift.pending,
        "objects": objects.iter().map(|o| json!({
            "object": o.object,
            "change": o.change,
            "drift": drift_word(o.change),
            "differences": o.differences.iter().map(|d| json!({
                "aspect": d.aspect,
                "database": d.from,
                "migrations": d.to,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "steps": drift.plan.steps,
        "sql": drift.plan.to_sql(true),
    }));
    if !drift.pending.is_empty() {
        ctx.out.notice(format!(
            "{} not applied yet, so not compared: {} (`tend migrate deploy` applies them)",
            count(drift.pending.len(), "migration is", "migrations are"),
            drift.pending.join(", ")
        ));
    }
    if drift.plan.is_empty() && objects.is_empty() {
        ctx.out.line(format!(
            "No drift: the database matches its {}.",
            count(drift.applied, "applied migration", "applied migrations")
        ));
        return Ok(exit::OK);
    }
    ctx.out.line(format!(
        "Drift: {} in the database {} from its {} (database -> migrations):",
        count(objects.len(), "object", "objects"),
        if objects.len() == 1 {
            "differs"
        } else {
            "differ"
        },
        count(drift.applied, "applied migration", "applied migrations")
    ));
    for line in drift_lines(objects, drift_word) {
        ctx.out.line(format!("  {line}"));
    }
    ctx.out
        .line("\nThe DDL that brings the database back to its migrations:\n");
    ctx.out.line(drift.plan.to_sql(true).trim_end());
    Ok(exit::FAILURE)
}

/// The listing of what differs: each object once, with what its change means (`word`), then
/// each aspect that differs as `old -> new`, one line each.
fn drift_lines(objects: &[ObjectDrift], word: impl Fn(Change) -> &'static str) -> Vec<String> {
    let width = objects.iter().map(|o| o.object.len()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for object in objects {
        lines.push(format!("{:width$}  {}", object.object, word(object.change)));
        for difference in &object.differences {
            lines.push(format!("    {}", difference.describe(VALUE_WIDTH)));
        }
    }
    lines
}

/// Values longer than this are shortened in the listing (the JSON has them whole).
const VALUE_WIDTH: usize = 72;

/// What a step of the reconciling plan (database -> migrations) says about the database.
fn drift_word(change: Change) -> &'static str {
    match change {
        Change::Create => "missing from the database",
        Change::Drop => "in the database, not in the migrations",
        Change::Alter => "differs from the migrations",
    }
}

fn clear_cache(ctx: &Context) -> Result<i32, CommandError> {
    let live = ctx.settings.database.url.as_ref().map(|url| &url.value);
    let shadows = shadows(ctx, live)?;
    let dropped = block_on(shadows.clear_cache())?;
    ctx.out.json_value(&json!({ "dropped": dropped }));
    ctx.out.line(format!(
        "Dropped {}.",
        count(dropped, "cached replay", "cached replays")
    ));
    Ok(exit::OK)
}
