//! `tend dev`: the project's local PostgreSQL cluster under .tend/, the embedded default that
//! every command uses when no database is configured.

use std::os::unix::process::CommandExt;

use clap::{Args, Subcommand};
use tend_pg::cluster::ClusterStatus;
use tend_pg::{PgTool, VersionNeed};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::Context;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Create the cluster if needed and start it; prints its URL. Safe to repeat.
    Start,
    /// Stop the cluster (nothing is lost).
    Stop,
    /// Say whether the cluster is running: exit 0 when it is, 1 when not.
    Status,
    /// Print only the cluster's URL (starting it if needed), for scripts: DATABASE_URL=$(tend dev url).
    Url(DbArgs),
    /// Open psql on the cluster; arguments after -- go to psql.
    Psql(PsqlArgs),
    /// Stop the cluster and delete all its files and data.
    Destroy(DestroyArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// A database other than the configured dev.database.
    #[arg(short = 'd', long = "dbname", value_name = "NAME")]
    pub dbname: Option<String>,
}

#[derive(Debug, Args)]
pub struct PsqlArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Arguments for psql, such as -c 'SELECT 1'.
    #[arg(last = true, allow_hyphen_values = true)]
    pub psql_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Show what would be deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(cmd: DevCommand, ctx: &Context) -> Result<i32, CommandError> {
    match cmd {
        DevCommand::Start => start(ctx),
        DevCommand::Stop => stop(ctx),
        DevCommand::Status => status(ctx),
        DevCommand::Url(args) => url(ctx, args),
        DevCommand::Psql(args) => psql(ctx, args),
        DevCommand::Destroy(args) => destroy(ctx, args),
    }
}

fn dbname(ctx: &Context, args: &DbArgs) -> String {
    args.dbname
        .clone()
        .unwrap_or_else(|| ctx.settings.dev.database.clone())
}

fn start(ctx: &Context) -> Result<i32, CommandError> {
    let before = ctx.local_cluster().status()?;
    let info = ctx.start_local_cluster(
        &dbname(ctx, &DbArgs { dbname: None }),
        crate::context::ClusterUse::Asked,
    )?;
    let already = matches!(before, ClusterStatus::Running { .. });
    ctx.out.json_value(&StartReport {
        url: info.to_secret_string(),
        already_running: already,
        root: ctx.local_cluster().root().to_path_buf(),
    });
    if already {
        ctx.out.notice("The local cluster is already running.");
    } else {
        ctx.out.notice("The local cluster is running.");
    }
    ctx.out.line(info.to_secret_string());
    Ok(exit::OK)
}

fn stop(ctx: &Context) -> Result<i32, CommandError> {
    let was_running = ctx.local_cluster().stop()?;
    ctx.out.json_value(&StopReport {
        stopped: was_running,
    });
    ctx.out.line(if was_running {
        "Stopped the local cluster."
    } else {
        "The local cluster was not running."
    });
    Ok(exit::OK)
}

fn status(ctx: &Context) -> Result<i32, CommandError> {
    let cluster = ctx.local_cluster();
    let status = cluster.status()?;
    let dbname = dbname(ctx, &DbArgs { dbname: None });
    let url = match &status {
        ClusterStatus::Running { port, .. } | ClusterStatus::Stopped { port } => {
            Some(cluster.conninfo(*port, &dbname).to_secret_string())
        }
        ClusterStatus::NotInitialized => None,
    };
    ctx.out.json_value(&StatusReport {
        status: &status,
        running: matches!(status, ClusterStatus::Running { .. }),
        url: url.as_deref(),
        root: cluster.root(),
    });
    match status {
        ClusterStatus::Running { pid, port } => {
            ctx.out.line(format!(
                "running: pid {pid}, 127.0.0.1:{port}, {}",
                url.unwrap_or_default()
            ));
            Ok(exit::OK)
        }
        ClusterStatus::Stopped { .. } => {
            ctx.out.line("stopped: start it with `tend dev start`");
            Ok(exit::FAILURE)
        }
        ClusterStatus::NotInitialized => {
            ctx.out.line(format!(
                "not created: `tend dev start` creates it in {}",
                cluster.root().display()
            ));
            Ok(exit::FAILURE)
        }
    }
}

fn url(ctx: &Context, args: DbArgs) -> Result<i32, CommandError> {
    let info = ctx.start_local_cluster(&dbname(ctx, &args), crate::context::ClusterUse::Asked)?;
    if ctx.out.json {
        ctx.out.json_value(&UrlReport {
            url: info.to_secret_string(),
        });
    } else {
        ctx.out.result(info.to_secret_string());
    }
    Ok(exit::OK)
}

fn psql(ctx: &Context, args: PsqlArgs) -> Result<i32, CommandError> {
    let info =
        ctx.start_local_cluster(&dbname(ctx, &args.db), crate::context::ClusterUse::Asked)?;
    let psql = ctx
        .settings
        .tool_search()
        .find(PgTool::Psql, VersionNeed::Any)?;
    let err = std::process::Command::new(&psql.path)
        .arg(info.to_secret_string())
        .args(&args.psql_args)
        .exec();
    Err(CommandError::new(
        ErrorKind::Tool,
        format!("cannot run {}: {err}", psql.path.display()),
    ))
}

fn destroy(ctx: &Context, args: DestroyArgs) -> Result<i32, CommandError> {
    let cluster = ctx.local_cluster();
    let paths = cluster.files()?;
    let exists = paths.iter().any(|p| p.exists());
    if !exists {
        ctx.out.json_value(&DestroyReport {
            destroyed: false,
            paths: Vec::new(),
        });
        ctx.out
            .line("There is no local cluster here; nothing to delete.");
        return Ok(exit::OK);
    }
    let listing: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if args.dry_run {
        ctx.out.json_value(&DestroyPlan {
            dry_run: true,
            would_delete: &listing,
        });
        ctx.out.line("Would stop the local cluster and delete:");
        for path in &listing {
            ctx.out.line(format!("  {path}"));
        }
        return Ok(exit::OK);
    }
    ctx.out.confirm(
        &format!(
            "Delete the local cluster and all its data ({})?",
            listing.join(", ")
        ),
        ctx.yes,
    )?;
    cluster.destroy()?;
    ctx.out.json_value(&DestroyReport {
        destroyed: true,
        paths: listing,
    });
    ctx.out.line("Deleted the local cluster.");
    Ok(exit::OK)
}

/// `tend dev start --json`.
#[derive(serde::Serialize)]
struct StartReport {
    url: String,
    already_running: bool,
    root: std::path::PathBuf,
}

/// `tend dev stop --json`: whether it was running.
#[derive(serde::Serialize)]
struct StopReport {
    stopped: bool,
}

/// `tend dev status --json`.
#[derive(serde::Serialize)]
struct StatusReport<'a> {
    status: &'a ClusterStatus,
    running: bool,
    url: Option<&'a str>,
    root: &'a std::path::Path,
}

/// `tend dev url --json`.
#[derive(serde::Serialize)]
struct UrlReport {
    url: String,
}

/// `tend dev destroy --dry-run --json`: what would be deleted.
#[derive(serde::Serialize)]
struct DestroyPlan<'a> {
    dry_run: bool,
    would_delete: &'a [String],
}

/// `tend dev destroy --json`: what was deleted.
#[derive(serde::Serialize)]
struct DestroyReport {
    destroyed: bool,
    paths: Vec<String>,
}
