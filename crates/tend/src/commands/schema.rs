//! `tend schema dump|diff|verify`: the schema as a model, compared between sources
//! (a database, the migrations, desired-state SQL, nothing), and the live database proven
//! against its migrations. Replays happen in shadow databases: SHADOW_DATABASE_URL, else the
//! local cluster when it runs the live server's major version, else temporary databases on
//! the live server itself.

use clap::{Args, Subcommand};
use tend_core::schema::{
    DiffReport, DriftError, DriftRequest, PlacementError, ShadowPlacement, VerifyReport,
};
use tend_migrate::Migration;
use tend_pg::ConnInfo;
use tend_schema::SchemaError;
use tend_schema::diff::{Change, DiffOptions, Plan, Rename};
use tend_schema::drift::ObjectDrift;
use tend_schema::shadow::{ShadowError, Shadows};
use tend_schema::source::{DatabaseSource, MigrationsSource, Source};

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

impl From<PlacementError> for CommandError {
    fn from(err: PlacementError) -> Self {
        match err {
            PlacementError::Connect(e) => e.into(),
            PlacementError::Facts(e) => e.into(),
        }
    }
}

impl From<DriftError> for CommandError {
    fn from(err: DriftError) -> Self {
        match err {
            err @ DriftError::HistoryMismatch { .. } => CommandError::failure(err.to_string())
                .with_hint("`tend migrate status` explains each state and what to do"),
            DriftError::Migrate(e) => e.into(),
            DriftError::Schema(e) => e.into(),
        }
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
/// else the live server itself. The placement is the core's; starting the local cluster
/// (announced on stderr) is this command's.
pub fn shadows(ctx: &Context, live: Option<&ConnInfo>) -> Result<Shadows, CommandError> {
    let connect = ctx.settings.connect_options();
    let database = &ctx.settings.database;
    let placement = match tend_core::schema::dedicated_shadows(database) {
        Some(placement) => placement,
        None => {
            let local = crate::context::start_local_cluster(
                &ctx.settings,
                ctx.out,
                "postgres",
                crate::context::ClusterUse::Shadow,
            );
            let placed = block_on(tend_core::schema::place_shadows(
                database,
                live,
                local.as_ref().ok(),
            ))?;
            match (placed, local) {
                (Some(placement), _) => placement,
                (None, Err(e)) => {
                    return Err(e.with_hint(
                        "set SHADOW_DATABASE_URL to a database tend may reset, for replaying migrations",
                    ));
                }
                (None, Ok(_)) => unreachable!("a running local cluster always takes the shadows"),
            }
        }
    };
    if let ShadowPlacement::LiveServer {
        other_major: Some(majors),
        ..
    } = &placement
    {
        ctx.out.notice(format!(
            "The local cluster runs PostgreSQL {} and the database {}: shadow databases go to the database's server",
            majors.local, majors.live
        ));
    }
    Ok(placement.shadows(connect, live))
}

fn dump(ctx: &Context, args: DumpArgs) -> Result<i32, CommandError> {
    let source = source(ctx, &args.from)?;
    let shadows = if source.needs_shadow() {
        Some(shadows(ctx, database_of(ctx, &args.from).as_ref())?)
    } else {
        None
    };
    let report = block_on(tend_core::schema::dump(source.as_ref(), shadows.as_ref()))?;
    ctx.out.json_value(&report);
    ctx.out.line(format!("-- {}", report.source));
    ctx.out.line(format!(
        "-- {}, by tend {}\n",
        count(report.model.object_count(), "object", "objects"),
        env!("CARGO_PKG_VERSION")
    ));
    for step in &report.steps {
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
    let options = DiffOptions {
        renames,
        concurrently: !args.no_concurrently,
    };
    let report = block_on(tend_core::schema::diff(
        from.as_ref(),
        to.as_ref(),
        shadows.as_ref(),
        &options,
    ))?;
    render_diff(ctx, &report);
    if args.exit_code && !report.equal {
        return Ok(exit::FAILURE);
    }
    Ok(exit::OK)
}

/// The diff as psql-runnable SQL, what differs as comments on top.
fn render_diff(ctx: &Context, report: &DiffReport) {
    let plan = &report.plan;
    ctx.out
        .json_value(&serde_json::to_value(report).expect("reports serialize"));
    ctx.out.line(format!(
        "-- tend schema diff\n-- from: {}\n-- to:   {}",
        report.from, report.to
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
            hazard_summary(plan)
        ));
        ctx.out.line(plan.to_sql(true).trim_end());
        for warning in &plan.warnings {
            ctx.out.warn(warning);
        }
    }
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
pub use tend_core::schema::Drift;

/// Compares the database with the migrations its history says are applied (the core's
/// service, for `migrate dev` and the demo).
pub fn drift(
    ctx: &Context,
    info: &ConnInfo,
    project: &Project,
    migrations: &[Migration],
    shadows: &Shadows,
) -> Result<Drift, CommandError> {
    let run_options = run_options(ctx);
    Ok(block_on(tend_core::schema::drift(
        DriftRequest {
            info,
            format: project.format,
            migrations,
            run_options: &run_options,
        },
        shadows,
    ))?)
}

fn verify(ctx: &Context) -> Result<i32, CommandError> {
    let project = Project::from_settings(ctx);
    let migrations = project.load()?;
    let info = ctx.target()?.info;
    let shadows = shadows(ctx, Some(&info))?;
    let run_options = run_options(ctx);
    let (report, drift) = block_on(tend_core::schema::verify(
        DriftRequest {
            info: &info,
            format: project.format,
            migrations: &migrations,
            run_options: &run_options,
        },
        &shadows,
    ))?;
    render_verify(ctx, &report, &drift)
}

fn render_verify(ctx: &Context, report: &VerifyReport, drift: &Drift) -> Result<i32, CommandError> {
    let objects = &drift.plan.objects;
    ctx.out
        .json_value(&serde_json::to_value(report).expect("reports serialize"));
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
    let names: Vec<String> = objects.iter().map(|o| o.object.to_string()).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut lines = Vec::new();
    for (object, name) in objects.iter().zip(&names) {
        lines.push(format!("{name:width$}  {}", word(object.change)));
        for difference in &object.differences {
            lines.push(format!("    {}", difference.describe(VALUE_WIDTH)));
        }
    }
    lines
}

/// Values longer than this are shortened in the listing (the JSON has them whole).
const VALUE_WIDTH: usize = 72;

use tend_core::schema::drift_word;

fn clear_cache(ctx: &Context) -> Result<i32, CommandError> {
    let live = ctx.settings.database.url.as_ref().map(|url| &url.value);
    let shadows = shadows(ctx, live)?;
    let report = block_on(tend_core::schema::clear_cache(&shadows))?;
    ctx.out
        .json_value(&serde_json::to_value(report).expect("reports serialize"));
    ctx.out.line(format!(
        "Dropped {}.",
        count(report.dropped, "cached replay", "cached replays")
    ));
    Ok(exit::OK)
}
