//! `tend restore`: streams a backup from the store into the target, loading rows on
//! several connections (`tend_backup::restore`), or with `--single-transaction` or
//! `--clean` through pg_restore in one transaction; refuses to write into a database that
//! holds tables unless `--clean` is confirmed.

use clap::Args;
use tend_backup::ops;
use tend_backup::restore::{Method, Ownership, ParallelOptions, restore_parallel};
use tend_backup::roles::RolesOutcome;
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
    let id = block_on(ops::resolve_id(&store, args.id.as_deref()))?;
    let manifest = block_on(ops::read_manifest(&store, &id))?;
    let target = match &args.to {
        Some(url) => ConnInfo::parse(url)?,
        None => ctx.target()?.info,
    };
    let tables = block_on(ops::user_tables(&target, &ctx.settings.connect_options()))?;
    if args.dry_run {
        ctx.out.json_value(&serde_json::json!({
            "dry_run": true, "id": id, "to": target.redacted().to_string(), "target_tables": tables,
        }));
        ctx.out.line(format!(
            "Would restore backup {id} ({} tables) into {} (which holds {tables} tables{}).",
            manifest.tables.len(),
            target.redacted(),
            if tables > 0 && !args.clean {
                "; --clean would be needed"
            } else {
                ""
            }
        ));
        return Ok(exit::OK);
    }
    if tables > 0 {
        if !args.clean {
            return Err(CommandError::failure(format!(
                "{} already holds {tables} tables; nothing was restored",
                target.redacted()
            ))
            .with_hint(
                "restore into an empty database (--to URL), or replace what is there with --clean",
            ));
        }
        ctx.out.confirm(
            &format!(
                "Replace the objects of backup {id} in {} (it holds {tables} tables)?",
                target.redacted()
            ),
            ctx.yes,
        )?;
    }
    let decryption = super::backup::decryption(ctx)?;
    let pg_restore = super::backup::pg_restore_for(ctx, &manifest)?;
    let bar = super::backup::spinner(ctx, &format!("restoring backup {id}"));
    let restored = if args.single_transaction || args.clean {
        block_on(ops::restore(
            &store,
            &id,
            &decryption,
            &target,
            &ops::SingleOptions {
                pg_restore: pg_restore.path,
                clean: args.clean,
                ownership: args.ownership.into(),
                connect: ctx.settings.connect_options(),
                created_roles: Default::default(),
            },
        ))
        .map(|(manifest, roles)| {
            (
                manifest,
                "in one transaction".to_string(),
                "single-transaction",
                roles,
            )
        })
    } else {
        let options = ParallelOptions {
            jobs: args.jobs.unwrap_or_else(default_jobs),
            connect: ctx.settings.connect_options(),
            pg_restore: pg_restore.path,
            ownership: args.ownership.into(),
        };
        block_on(restore_parallel(
            &store,
            &id,
            &decryption,
            &target,
            &options,
        ))
        .map(|restored| match restored.method {
            Method::Parallel { jobs } => (
                restored.manifest,
                format!("on {jobs} connections"),
                "parallel",
                restored.roles,
            ),
            Method::SingleTransaction { reason } => (
                restored.manifest,
                format!("in one transaction through pg_restore ({reason})"),
                "single-transaction",
                restored.roles,
            ),
        })
    };
    bar.finish_and_clear();
    let (restored, how, method, roles) = restored?;
    ctx.out.json_value(&serde_json::json!({
        "restored": id, "to": target.redacted().to_string(),
        "tables": restored.tables.len(), "method": method, "roles": roles,
    }));
    ctx.out.line(format!(
        "Restored backup {id} ({} tables) into {} {how}.",
        restored.tables.len(),
        target.redacted()
    ));
    if let Some(sentence) = roles.sentence() {
        ctx.out.line(format!("Roles: {sentence}."));
    }
    if matches!(roles, RolesOutcome::WithoutOwners { .. }) {
        ctx.out.warn(
            "owners and privileges were not restored; create the roles and rerun with --clean, \
             or take backups with --globals to keep them",
        );
    }
    Ok(exit::OK)
}
