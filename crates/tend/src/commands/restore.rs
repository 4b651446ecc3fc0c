//! `tend restore`: its arguments, the confirmation before `--clean` replaces what the
//! target holds, and the rendering of the plan (`--dry-run`) and of the report. Choosing
//! the backup, looking at the target and the restore itself are `tend_core::restore`.

use clap::Args;
use tend_backup::restore::Ownership;
use tend_backup::roles::RolesOutcome;
use tend_core::restore::{self, RestoreProgress, RestoreRequest};
use tend_pg::ConnInfo;

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup's id (default: the newest).
    #[arg(conflicts_with_all = ["latest", "list"])]
    pub id: Option<String>,
    /// The newest backup.
    #[arg(long)]
    pub latest: bool,
    /// List the backups in the store, and restore nothing.
    #[arg(long)]
    pub list: bool,
    /// The database to restore into (default: the configured one).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Drop the objects the backup holds before restoring them (asks first); restores in
    /// one transaction, like --single-transaction.
    #[arg(long, conflicts_with = "jobs")]
    pub clean: bool,
    /// Say what would be restored where, and restore nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Load rows and build indexes on N connections (default: the number of CPUs). Not one
    /// transaction: a restore that fails drops what it had created.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,
    /// Restore in one transaction through pg_restore: slower, but a failure at any point
    /// leaves the target exactly as it was.
    #[arg(long, conflicts_with = "jobs")]
    pub single_transaction: bool,
    #[command(flatten)]
    pub ownership: OwnershipArgs,
    #[command(flatten)]
    pub physical: PhysicalArgs,
}

/// Point-in-time recovery from a physical backup.
#[derive(Debug, Args)]
pub struct PhysicalArgs {
    /// Restore a physical backup (and the WAL after it) into a data directory, to the
    /// target: --time, --lsn, --xid, --name, --immediate, or the end of the archive.
    #[arg(long, requires = "to_dir", conflicts_with_all = ["to", "clean", "jobs", "single_transaction", "no_owner", "no_privileges"])]
    pub physical: bool,
    /// The data directory to write (absent or empty).
    #[arg(long, value_name = "DIR", requires = "physical")]
    pub to_dir: Option<std::path::PathBuf>,
    /// Recover up to this time (with an offset: 2026-12-04 15:00:00+00, or RFC 3339).
    #[arg(
        long,
        value_name = "TIME",
        requires = "physical",
        group = "recovery_target"
    )]
    pub time: Option<String>,
    /// Recover up to this WAL position (e.g. 16/B374D848).
    #[arg(
        long,
        value_name = "LSN",
        requires = "physical",
        group = "recovery_target"
    )]
    pub lsn: Option<String>,
    /// Recover up to this transaction's commit.
    #[arg(
        long,
        value_name = "XID",
        requires = "physical",
        group = "recovery_target"
    )]
    pub xid: Option<u64>,
    /// Recover up to this restore point (pg_create_restore_point).
    #[arg(
        long,
        value_name = "NAME",
        requires = "physical",
        group = "recovery_target"
    )]
    pub name: Option<String>,
    /// Stop as soon as the copy is consistent (the backup itself, no later WAL).
    #[arg(long, requires = "physical", group = "recovery_target")]
    pub immediate: bool,
    /// What the server does at the target: promote (a new timeline, writable), pause (read
    /// only, to look before deciding), or shutdown.
    #[arg(long, value_enum, default_value = "promote", requires = "physical")]
    pub target_action: TargetActionArg,
    /// Start the restored server on 127.0.0.1 for inspection (archiving off), and wait
    /// until it reached the target.
    #[arg(long, requires = "physical")]
    pub start: bool,
    /// The port for --start (default: a free one).
    #[arg(long, value_name = "PORT", requires = "start")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TargetActionArg {
    Promote,
    Pause,
    Shutdown,
}

/// pg_restore's flags of the same names.
#[derive(Debug, Args, Clone, Copy)]
pub struct OwnershipArgs {
    /// Do not give restored objects their backed-up owners: they belong to the restoring
    /// user (as pg_restore --no-owner). Implied when the target server lacks the owner roles
    /// and the backup does not hold them.
    #[arg(long)]
    pub no_owner: bool,
    /// Do not restore privileges (GRANT/REVOKE), as pg_restore --no-privileges. Implied like
    /// --no-owner.
    #[arg(long)]
    pub no_privileges: bool,
}

impl From<OwnershipArgs> for Ownership {
    fn from(args: OwnershipArgs) -> Ownership {
        Ownership {
            no_owner: args.no_owner,
            no_privileges: args.no_privileges,
        }
    }
}

/// The default number of connections: one per CPU, at least 2, at most 8.
fn default_jobs() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2)
        .clamp(2, 8)
}

pub fn run(args: RestoreArgs, ctx: &Context) -> Result<i32, CommandError> {
    let store = super::backup::store(ctx)?;
    if args.list {
        return super::backup::run(super::backup::BackupCommand::List, ctx);
    }
    if args.physical.physical {
        return physical(&args, &store, ctx);
    }
    let backup = block_on(restore::choose(&store, args.id.as_deref()))?;
    let target = match &args.to {
        Some(url) => ConnInfo::parse(url)?,
        None => ctx.target()?.info,
    };
    let request = RestoreRequest {
        dry_run: args.dry_run,
        clean: args.clean,
        single_transaction: args.single_transaction,
        jobs: args.jobs.unwrap_or_else(default_jobs),
        ownership: args.ownership.into(),
        connect: ctx.settings.connect_options(),
    };
    let plan = block_on(restore::plan(backup, target, &request))?;
    let tables = plan.target_tables;
    if args.dry_run {
        ctx.out.json_value(&super::backup::to_json(&plan));
        ctx.out.line(format!(
            "Would restore backup {} ({} tables) into {} (which holds {tables} tables{}).",
            plan.id,
            plan.manifest.tables.len(),
            plan.to,
            if tables > 0 && !args.clean {
                "; --clean would be needed"
            } else {
                ""
            }
        ));
        return Ok(exit::OK);
    }
    // Without --clean, the service refuses a target that holds tables.
    if plan.needs_clean() && args.clean {
        ctx.out.confirm(
            &format!(
                "Replace the objects of backup {} in {} (it holds {tables} tables)?",
                plan.id, plan.to
            ),
            ctx.yes,
        )?;
    }
    let mut bar = None;
    let cancel = tokio_util::sync::CancellationToken::new();
    let restored = block_on(super::backup::until_signal(
        &cancel,
        restore::run(
            &store,
            &ctx.settings.backup,
            &ctx.settings.tool_search(),
            &plan,
            &request,
            &cancel,
            &mut |p| match p {
                RestoreProgress::Restoring { id } => {
                    bar = Some(super::backup::spinner(
                        ctx.out,
                        &format!("restoring backup {id}"),
                    ))
                }
            },
        ),
    ))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = restored?;
    ctx.out.json_value(&super::backup::to_json(&report));
    ctx.out.line(format!(
        "Restored backup {} ({} tables) into {} {}.",
        report.restored, report.tables, report.to, report.how
    ));
    if let Some(sentence) = report.roles.sentence() {
        ctx.out.line(format!("Roles: {sentence}."));
    }
    if matches!(report.roles, RolesOutcome::WithoutOwners { .. }) {
        ctx.out.warn(
            "owners and privileges were not restored; create the roles and rerun with --clean, \
             or take backups with --globals to keep them",
        );
    }
    Ok(exit::OK)
}

fn physical(
    args: &RestoreArgs,
    store: &tend_backup::Store,
    ctx: &Context,
) -> Result<i32, CommandError> {
    use tend_backup::physical::{RestoreTarget, TargetAction};
    use tend_core::pitr;
    let p = &args.physical;
    let usage =
        |message: String| CommandError::new(crate::command_error::ErrorKind::Config, message);
    let target = if let Some(text) = &p.time {
        RestoreTarget::Time(pitr::parse_target_time(text).ok_or_else(|| {
            usage(format!(
                "--time {text} is not a time with an offset; write it as 2026-12-04 15:00:00+00 or 2026-12-04T15:00:00Z"
            ))
        })?)
    } else if let Some(text) = &p.lsn {
        RestoreTarget::Lsn(tend_backup::wal::parse_lsn(text).ok_or_else(|| {
            usage(format!("--lsn {text} is not a WAL position; write it as PostgreSQL prints them, e.g. 16/B374D848"))
        })?)
    } else if let Some(xid) = p.xid {
        RestoreTarget::Xid(xid)
    } else if let Some(name) = &p.name {
        RestoreTarget::Name(name.clone())
    } else if p.immediate {
        RestoreTarget::Immediate
    } else {
        RestoreTarget::Latest
    };
    let action = match p.target_action {
        TargetActionArg::Promote => TargetAction::Promote,
        TargetActionArg::Pause => TargetAction::Pause,
        TargetActionArg::Shutdown => TargetAction::Shutdown,
    };
    if p.start && action == TargetAction::Shutdown {
        return Err(usage(
            "--start and --target-action shutdown contradict each other: the server would stop at the target; use pause or promote".to_string(),
        ));
    }
    let dir = std::path::absolute(p.to_dir.as_ref().expect("clap requires it"))?;
    let chain = block_on(pitr::physical_chain(store, args.id.as_deref(), &target))?;
    if args.dry_run {
        ctx.out
            .json_value(&chain.iter().map(|m| &m.id).collect::<Vec<_>>());
        ctx.out.line(format!(
            "Would restore {} into {}, then replay the archived WAL up to {target}.",
            chain
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            dir.display(),
        ));
        return Ok(exit::OK);
    }
    let tend = pitr::TendInvocation {
        program: std::env::current_exe()?,
        config_file: match &ctx.settings.config_file {
            Some(path) => std::fs::canonicalize(path)?,
            None => return Err(pitr::PitrError::NoConfigFile.into()),
        },
    };
    // 0: the service picks a free port (and picks again if it is taken meanwhile).
    let port = match (p.start, p.port) {
        (false, _) => None,
        (true, Some(port)) => Some(port),
        (true, None) => Some(0),
    };
    let request = pitr::PhysicalRestoreRequest {
        id: args.id.clone(),
        dir: dir.clone(),
        target,
        action,
        start: port,
        os_user: ctx.settings.dev.pg_user.clone(),
        tend,
    };
    let bar = super::backup::spinner(ctx.out, &format!("restoring into {}", dir.display()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let report = block_on(super::backup::until_signal(
        &cancel,
        pitr::restore_physical(
            store,
            &ctx.settings.backup,
            &ctx.settings.tool_search(),
            &request,
            cancel.clone(),
            &|bytes| {
                bar.set_message(format!(
                    "restoring into {} ({:.1} MB)",
                    dir.display(),
                    bytes as f64 / 1e6
                ))
            },
        ),
    ))?;
    bar.finish_and_clear();
    let report = report.map_err(|e| {
        let restored = matches!(
            e,
            pitr::PitrError::Cluster(_) | pitr::PitrError::CopyStopped { .. }
        );
        let err = CommandError::from(e);
        if restored {
            err.with_hint(format!(
                "the restored files stay in {}: change the recovery target in its postgresql.auto.conf and start it with pg_ctl, or restore again into an empty directory",
                dir.display()
            ))
        } else {
            err
        }
    })?;
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "Restored {} into {} ({:.1} MB) with its recovery settings.",
        report.backups.join(" + "),
        report.dir.display(),
        report.bytes as f64 / 1e6
    ));
    match &report.started {
        Some(started) => ctx.out.line(format!(
            "Started it on port {} ({}): {}. Stop it with: pg_ctl -D {} stop",
            started.port,
            started.url,
            started.state,
            report.dir.display()
        )),
        None => ctx.out.line(format!(
            "Start it with: pg_ctl -D {} start (as the server's OS user); it replays the archived WAL to the target first.",
            report.dir.display()
        )),
    }
    Ok(exit::OK)
}
