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
