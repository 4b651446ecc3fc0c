//! `tend pitr enable|status`: point-in-time recovery's set-up and health. The server
//! archives its WAL through `tend wal-push` into the backup store.

use std::time::Duration;

use clap::{Args, Subcommand};
use tend_core::pitr::{ArchiveTest, EnablePlan, TendInvocation};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};

#[derive(Debug, Subcommand)]
pub enum PitrCommand {
    /// Set the server up to archive its WAL into the backup store (wal_level,
    /// archive_mode, archive_command, restore_command), then see it archive a segment.
    ///
    /// Run it on the database server, as a role that may change settings (a superuser, or
    /// one granted ALTER SYSTEM on those parameters). It never restarts the server: it says
    /// which settings wait for a restart. A managed service (RDS, Cloud SQL, Azure) cannot
    /// run tend as its archive_command, and is refused.
    Enable(EnableArgs),
    /// Show how archiving goes: the server's archiver (last archived, failures, segments
    /// waiting) and what the archive holds (timelines, gaps). Exit 1 when there is a problem.
    Status,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the server to archive its first segment through tend.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

pub fn run(cmd: PitrCommand, ctx: &Context) -> Result<i32, CommandError> {
    match cmd {
        PitrCommand::Enable(args) => enable(ctx, &args),
        PitrCommand::Status => status(ctx),
    }
}

fn invocation(ctx: &Context) -> Result<TendInvocation, CommandError> {
    let config_file = ctx
        .settings
        .config_file
        .as_ref()
        .ok_or(tend_core::pitr::PitrError::NoConfigFile)?;
    let config_file = std::fs::canonicalize(config_file)?;
    let program = std::env::current_exe()?;
    Ok(TendInvocation {
        program,
        config_file,
    })
}

/// The store's settings that come from this process's environment (or flags), which the
/// server's archive_command does not have. (The backup keys are not among them: a push
/// needs only the archive's public key, which the command line carries.)
fn from_environment_only(ctx: &Context) -> Vec<String> {
    [
        "backup.dir",
        "backup.s3_bucket",
        "backup.s3_endpoint",
        "backup.s3_region",
        "backup.s3_prefix",
        "backup.s3_force_path_style",
        "backup.s3_access_key_id",
        "backup.s3_secret_access_key",
        "backup.s3_session_token",
    ]
    .iter()
    .filter_map(|key| {
        let sourced = ctx.settings.get(key)?;
        match &sourced.source {
            tend_core::settings::Source::Env { var }
            | tend_core::settings::Source::Flag { flag: var } => Some(var.clone()),
            _ => None,
        }
    })
    .collect()
}

fn show_plan(ctx: &Context, plan: &EnablePlan) {
    ctx.out.line(format!(
        "PostgreSQL {} (system identifier {}), data directory {}.",
        plan.server_version, plan.system_identifier, plan.data_directory
    ));
    if plan.archive_exists {
        ctx.out
            .line("The store has this server's WAL archive already; its key is kept.");
    } else {
        ctx.out.line(
            "A WAL archive for this server will be created in the store, with a key of its own encrypted with the backup keys.",
        );
    }
    if plan.changes.is_empty() {
        ctx.out.line("The server's settings are already tend's.");
    }
    for change in &plan.changes {
        ctx.out.line(format!(
            "  {} = {}   (now: {}){}",
            change.name,
            change.to,
            if change.from.is_empty() {
                "unset"
            } else {
                &change.from
            },
            if change.needs_restart {
                ", needs a restart"
            } else {
                ""
            }
        ));
    }
}

fn enable(ctx: &Context, args: &EnableArgs) -> Result<i32, CommandError> {
    let store = super::backup::store(ctx)?;
    // The archive's key is encrypted with the backup keys: refuse before anything else.
    ctx.settings.backup.keys.encryption()?;
    let tend = invocation(ctx)?;
    let target = ctx.target()?;
    let database = ctx.settings.database.handle(target.info.clone());
    let plan = block_on(tend_core::pitr::enable_plan(&database, &store, &tend))?;
    show_plan(ctx, &plan);
    let environment = from_environment_only(ctx);
    if !environment.is_empty() {
        ctx.out.warn(format!(
            "{} come from this shell's environment, which the server's archive_command does not see: put them in {} or the .env beside it",
            environment.join(", "),
            tend.config_file.display()
        ));
    }
    if args.dry_run {
        ctx.out.json_value(&plan);
        ctx.out.line("Dry run: nothing was changed.");
        return Ok(exit::OK);
    }
    if !plan.changes.is_empty() {
        ctx.out.confirm(
            &format!(
                "Change {} of the server's settings with ALTER SYSTEM?",
                plan.changes.len()
            ),
            ctx.yes,
        )?;
    }
    let report = block_on(tend_core::pitr::enable(
        &database,
        &store,
        &ctx.settings.backup,
        ctx.settings.pitr.spool.as_ref(),
        &plan,
        args.wait,
    ))?;
    ctx.out.json_value(&report);
    if report.archive_created {
        ctx.out
            .line(format!("Created the WAL archive in {}.", store.description));
    }
    if !report.restart_needed.is_empty() {
        ctx.out.line(format!(
            "Restart the server to apply {} (for example: systemctl restart postgresql, or pg_ctl restart); then run `tend pitr status`.",
            report.restart_needed.join(", ")
        ));
    }
    match &report.test {
        ArchiveTest::Passed { wal } => {
            ctx.out.line(format!(
                "Archiving works: the server archived {wal} through tend. Take a base backup next: tend backup run --physical."
            ));
            Ok(exit::OK)
        }
        ArchiveTest::NotRun { reason } => {
            ctx.out.line(format!("Archiving not tested: {reason}."));
            Ok(exit::OK)
        }
        ArchiveTest::Failed { wal } => Err(CommandError::failure(format!(
            "the settings are in place, and the server failed to archive {wal} through tend"
        ))
        .with_hint(
            "the server's log has tend's message; the server runs it as its own OS user, \
             which must be able to run tend and read the config file and its .env",
        )),
        ArchiveTest::TimedOut { waited_secs } => Err(CommandError::new(
            ErrorKind::Failure,
            format!(
                "the settings are in place, and the server archived nothing within {waited_secs}s"
            ),
        )
        .with_hint("run `tend pitr status` to see the archiver; the server's log says more")),
    }
}

fn status(ctx: &Context) -> Result<i32, CommandError> {
    let store = super::backup::store(ctx)?;
    let target = ctx.target()?;
    let database = ctx.settings.database.handle(target.info.clone());
    let status = block_on(tend_core::pitr::status(
        &database,
        &store,
        ctx.settings.pitr.spool.as_ref(),
        ctx.settings.pitr.window,
    ))?;
    ctx.out.json_value(&status);
    let s = &status.server;
    ctx.out.line(format!(
        "Server: wal_level {}, archive_mode {}, {}.",
        s.wal_level,
        s.archive_mode,
        if s.archives_with_tend {
            "archiving with tend"
        } else {
            "not archiving with tend"
        }
    ));
    ctx.out.line(format!(
        "Archived {} (last {} at {}), failed {} (last {} at {}).",
        s.archived_count,
        s.last_archived_wal.as_deref().unwrap_or("none"),
        s.last_archived_time.as_deref().unwrap_or("-"),
        s.failed_count,
        s.last_failed_wal.as_deref().unwrap_or("none"),
        s.last_failed_time.as_deref().unwrap_or("-"),
    ));
    if let (Some(current), Some(pending)) = (&s.current_wal, s.pending_segments) {
        ctx.out.line(format!(
            "Writing {current}; {pending} closed segments wait to be archived."
        ));
    }
    match &status.archive {
        Some(a) => {
            ctx.out.line(format!(
                "Archive in {}: {:.1} MB stored, created {}.",
                status.store,
                a.stored_bytes as f64 / 1e6,
                a.created_at
            ));
            for t in &a.timelines {
                ctx.out.line(format!(
                    "  timeline {}: {} .. {} ({} segments{})",
                    t.timeline,
                    t.first,
                    t.last,
                    t.segments,
                    if t.gaps.is_empty() {
                        String::new()
                    } else {
                        format!(", {} gaps", t.gaps.len())
                    }
                ));
            }
        }
        None => ctx.out.line(format!("No WAL archive in {}.", status.store)),
    }
    if let Some(spool) = &status.spool {
        ctx.out.line(format!(
            "Spool {}: {} waiting, {:.1} MB of {:.1} MB{}.",
            spool.dir.display(),
            crate::output::count(spool.files, "file", "files"),
            spool.bytes as f64 / 1e6,
            spool.max_bytes as f64 / 1e6,
            spool
                .store_away_since
                .as_deref()
                .map(|t| format!("; the store has been away since {t}"))
                .unwrap_or_default()
        ));
    }
    if let Some(w) = &status.window {
        ctx.out.line(format!(
            "Recoverable: from {} (the oldest of {} physical backups) to {} (archived {}).",
            w.from,
            w.base_backups,
            w.to_wal.as_deref().unwrap_or("the newest archived segment"),
            w.to_time.as_deref().unwrap_or("-"),
        ));
    }
    for problem in &status.problems {
        ctx.out.warn(problem);
    }
    Ok(if status.problems.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
