//! `tend cleanup`: the `[[retention]]` rules and the built-in soft-delete rule. It counts
//! first (rows per rule, what foreign keys hold back, what cascades take with them, the
//! partitions a `drop-partitions` rule drops whole), shows that, asks, then purges in
//! batches, children before parents. `--dry-run` stops after the counts; an interrupt
//! stops between batches (or partitions), with every finished one kept. `tend cleanup
//! archived` lists, and reads back, what `archive-to-store` rules keep in the store.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tend_core::cleanup::{
    self, ArchiveError, CleanupError, CleanupEvent, CleanupPlan, CleanupRequest, PlannedPartition,
    PlannedRule, StoreArchive,
};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CleanupArgs {
    #[command(subcommand)]
    pub command: Option<CleanupCommand>,
    /// Count what each rule would delete, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only this rule (repeatable); `soft-delete` is the built-in rule on every table
    /// with a `deleted_at`/`deletedAt` column.
    #[arg(long = "rule", value_name = "NAME")]
    pub rules: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CleanupCommand {
    /// List the rows `archive-to-store` rules keep in the backup store (read from its
    /// manifests, without the database); with --out, decrypt them into JSON-lines files.
    Archived(ArchivedArgs),
}

#[derive(Debug, Args)]
pub struct ArchivedArgs {
    /// Only this rule's archive (repeatable).
    #[arg(long = "rule", value_name = "NAME")]
    pub rules: Vec<String>,
    /// Write each rule's rows, decrypted, to `<database>-<rule>.jsonl` in this new directory
    /// (one JSON object per line, as `row_to_json` wrote it).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: CleanupArgs, ctx: &Context) -> Result<i32, CommandError> {
    if let Some(CleanupCommand::Archived(archived)) = args.command {
        return list_archived(ctx, &archived);
    }
    let settings = &ctx.settings.cleanup;
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let request = CleanupRequest { only: args.rules };
    let plan = block_on(cleanup::plan(&session, settings, &request)).map_err(cleanup_error)?;
    if args.dry_run {
        ctx.out.json_value(&plan);
    }
    show_plan(ctx, &plan);
    // A rule that archives to the store needs a key: said before anything is asked.
    let missing_key = plan.archives_to_store() && ctx.settings.backup.keys.encryption().is_err();
    if args.dry_run && missing_key {
        ctx.out.warn(
            "a rule archives to the backup store and no backup key is configured: a run would stop before deleting anything (set BACKUP_ENCRYPTION_KEY or BACKUP_AGE_RECIPIENTS)",
        );
    }
    if args.dry_run {
        if plan.has_work() {
            ctx.out
                .line("Nothing was deleted (--dry-run); run without it to purge.");
        }
        return Ok(exit::OK);
    }
    if !plan.has_work() {
        ctx.out.json_value(&tend_core::cleanup::CleanupReport {
            rules: Vec::new(),
            deleted: 0,
            millis: 0,
            interrupted: false,
        });
        return Ok(exit::OK);
    }
    let tables: std::collections::BTreeSet<&str> = plan
        .rules
        .iter()
        .filter(|r| r.has_work())
        .map(|r| r.table.as_str())
        .collect();
    let estimated = plan.rules.iter().any(|r| r.rows_estimated);
    if missing_key {
        // Fails on the keys, first of all it checks.
        prepare_archive(ctx, &target, &plan)?;
    }
    // Rows only staged by an earlier run are deleted already: storing them asks nothing.
    let deletes = plan.rows() > 0 || plan.partitions() > 0;
    ctx.out.confirm(
        &format!(
            "Delete {}{} from {}{}?",
            if estimated && plan.rows() > 0 {
                "about "
            } else {
                ""
            },
            count(plan.rows() as usize, "row", "rows"),
            count(tables.len(), "table", "tables"),
            match plan.partitions() {
                0 => String::new(),
                n => format!(", dropping {}", count(n, "partition", "partitions")),
            }
        ),
        ctx.yes || !deletes,
    )?;
    let cancel = super::migrate::interrupt_token();
    let bar = if ctx.out.quiet || ctx.out.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>40} {bar:30} {pos}/{len} rows {per_sec}")
                .expect("a valid template"),
        );
        bar
    };
    let events = |event: CleanupEvent| match event {
        CleanupEvent::Started {
            rule,
            table,
            expected,
        } => {
            bar.reset();
            bar.set_length(expected);
            bar.set_prefix(format!("{rule} on {table}"));
        }
        CleanupEvent::Progress { deleted, .. } => bar.set_position(deleted),
        CleanupEvent::Finished(outcome) if outcome.partitions_dropped.is_some() => {
            bar.suspend(|| {
                let dropped = outcome.partitions_dropped.as_deref().unwrap_or_default();
                ctx.out.step(format!(
                    "{} on {}: dropped {} ({}{}; longest {} ms{})",
                    outcome.rule,
                    outcome.table,
                    count(dropped.len(), "partition", "partitions"),
                    if outcome.rows_estimated && outcome.deleted > 0 {
                        "about "
                    } else {
                        ""
                    },
                    count(outcome.deleted as usize, "row", "rows"),
                    outcome.longest_batch_ms,
                    if outcome.conflicts > 0 {
                        format!(", {} retried after a lock", outcome.conflicts)
                    } else {
                        String::new()
                    },
                ));
                if ctx.out.verbose {
                    for name in dropped {
                        ctx.out.step(format!("  - {name}"));
                    }
                }
                for kept in outcome.partitions_kept.iter().flatten() {
                    ctx.out
                        .warn(format!("kept partition {}: {}", kept.name, kept.reason));
                }
            });
        }
        CleanupEvent::Finished(outcome) => {
            bar.suspend(|| {
                ctx.out.step(format!(
                    "{} on {}: deleted {} in {} (longest {} ms{}{})",
                    outcome.rule,
                    outcome.table,
                    count(outcome.deleted as usize, "row", "rows"),
                    count(outcome.batches as usize, "batch", "batches"),
                    outcome.longest_batch_ms,
                    if outcome.conflicts > 0 {
                        format!(", {} retried smaller", outcome.conflicts)
                    } else {
                        String::new()
                    },
                    if outcome.paused_ms > 0 {
                        format!(
                            ", {:.1} s waiting for replicas",
                            outcome.paused_ms as f64 / 1e3
                        )
                    } else {
                        String::new()
                    },
                ))
            });
        }
    };
    // The store and the keys are checked before the first batch, and tend's record of
    // archived batches set up.
    let archive = if plan.archives_to_store() {
        Some(prepare_archive(ctx, &target, &plan)?)
    } else {
        None
    };
    let report = block_on(cleanup::run(
        &session,
        settings,
        &plan,
        archive.as_ref(),
        &cancel,
        &events,
    ));
    bar.finish_and_clear();
    let report = report.map_err(cleanup_error)?;
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "Deleted {}{} in {:.1} s.",
        if report.deleted > 0 && report.rules.iter().any(|r| r.rows_estimated) {
            "about "
        } else {
            ""
        },
        count(report.deleted as usize, "row", "rows"),
        report.millis as f64 / 1e3
    ));
    if report.interrupted {
        return Err(CommandError::new(
            ErrorKind::Interrupted,
            format!(
                "cleanup was interrupted after {}; every finished batch is kept, and tend cleanup carries on where it stopped",
                count(report.deleted as usize, "row", "rows")
            ),
        ));
    }
    Ok(exit::OK)
}

/// The counts, rule by rule in the order they run.
fn show_plan(ctx: &Context, plan: &CleanupPlan) {
    if plan.rules.is_empty() {
        ctx.out.line(
            "No retention rules: add [[retention]] entries to tend.toml (no table has a deleted_at or deletedAt column for the built-in soft-delete rule).",
        );
        return;
    }
    let width = plan
        .rules
        .iter()
        .map(|r| r.rule.len() + r.table.len() + 4)
        .chain(
            plan.rules
                .iter()
                .flat_map(|r| r.partitions.iter().flatten())
                .map(|p| p.name.len() + 4),
        )
        .max()
        .unwrap_or(0);
    for rule in &plan.rules {
        if let Some(partitions) = &rule.partitions {
            show_partitions(ctx, rule, partitions, width);
            continue;
        }
        ctx.out.line(format!(
            "{:<width$}  {:>10} {}{}",
            format!("{} on {}", rule.rule, rule.table),
            thousands(rule.deletes()),
            match (rule.archive_to.as_deref(), rule.action) {
                (Some(to), _) => format!("to archive in {to}"),
                (None, cleanup::ARCHIVE_TO_STORE) => "to archive in the backup store".to_string(),
                (None, _) => "to delete".to_string(),
            },
            held_and_age(rule),
        ));
        let shown = if ctx.out.verbose {
            rule.cascades.len()
        } else {
            rule.cascades.len().min(3)
        };
        for cascade in &rule.cascades[..shown] {
            ctx.out.line(format!(
                "{:<width$}  {:>10} with them (ON DELETE CASCADE: {})",
                format!("  + {}", cascade.table),
                thousands(cascade.rows),
                cascade.through.join(", then ")
            ));
        }
        if shown < rule.cascades.len() {
            ctx.out.line(format!(
                "  + {} more tables through ON DELETE CASCADE (--verbose lists them)",
                rule.cascades.len() - shown
            ));
        }
        if ctx.out.verbose {
            ctx.out.line(format!("    rows: {}", rule.condition));
            for link in &rule.set_null {
                ctx.out.line(format!("    sets to NULL or default: {link}"));
            }
        }
    }
    ctx.out.line(format!(
        "{}{} {} to delete in all{}.",
        if plan.rows() > 0 && plan.rules.iter().any(|r| r.rows_estimated) {
            "about "
        } else {
            ""
        },
        thousands(plan.rows()),
        if plan.rows() == 1 { "row" } else { "rows" },
        match plan.partitions() {
            0 => String::new(),
            n => format!(", in {} to drop", count(n, "partition", "partitions")),
        }
    ));
}

/// A `drop-partitions` rule: the rows, then each partition wholly past the rule (its rows
/// an estimate from the statistics where marked "about").
fn show_partitions(
    ctx: &Context,
    rule: &PlannedRule,
    partitions: &[PlannedPartition],
    width: usize,
) {
    let about = |estimated: bool, n: u64| {
        if estimated && n > 0 {
            format!("about {}", thousands(n))
        } else {
            thousands(n)
        }
    };
    ctx.out.line(format!(
        "{:<width$}  {:>10} to drop{}{}",
        format!("{} on {}", rule.rule, rule.table),
        about(rule.rows_estimated, rule.deletes()),
        match rule.drops().count() {
            0 => String::new(),
            n => format!(" in {}", count(n, "whole partition", "whole partitions")),
        },
        held_and_age(rule),
    ));
    // Daily partitions make long lists: the oldest ones, unless --verbose.
    let shown = if ctx.out.verbose {
        partitions.len()
    } else {
        partitions.len().min(MAX_PARTITIONS_SHOWN)
    };
    for partition in &partitions[..shown] {
        ctx.out.line(format!(
            "{:<width$}  {:>10} {}, {}{}",
            format!("  - {}", partition.name),
            about(partition.rows_estimated, partition.rows),
            if partition.rows == 1 { "row" } else { "rows" },
            partition.bound,
            if partition.held_by.is_empty() {
                String::new()
            } else {
                format!(
                    "; kept: a foreign key references rows in it ({})",
                    partition.held_by.join(", ")
                )
            },
        ));
    }
    if shown < partitions.len() {
        ctx.out.line(format!(
            "  + {} more partitions (--verbose lists them)",
            partitions.len() - shown
        ));
    }
    if ctx.out.verbose {
        ctx.out.line(format!("    rows: {}", rule.condition));
    }
}

/// The partitions of one rule the plan lists without --verbose.
const MAX_PARTITIONS_SHOWN: usize = 20;

fn held_and_age(rule: &PlannedRule) -> String {
    let mut parts = Vec::new();
    let held_partitions = rule
        .partitions
        .iter()
        .flatten()
        .filter(|p| !p.held_by.is_empty())
        .count();
    if held_partitions > 0 {
        parts.push(format!(
            "{} kept: a foreign key references rows in {}",
            count(held_partitions, "partition", "partitions"),
            if held_partitions == 1 { "it" } else { "them" }
        ));
    } else if rule.held > 0 {
        parts.push(format!(
            "{} kept: still referenced by a RESTRICT or NO ACTION foreign key",
            thousands(rule.held)
        ));
    }
    if rule.staged > 0 {
        parts.push(format!(
            "and {} deleted by an earlier run, waiting in tend.retention_staging for the store",
            thousands(rule.staged)
        ));
    }
    if let Some(age) = rule.oldest_overdue_seconds
        && rule.has_work()
    {
        if rule.partitions.is_some() {
            // A partition is due once its whole range has passed the rule.
            parts.push(format!("the oldest due for {}", human_age(age)));
        } else {
            parts.push(format!("oldest {} past its rule", human_age(age)));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  ({})", parts.join("; "))
    }
}

fn human_age(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.0} h", s / 3600.0),
        s => format!("{:.0} days", s / 86400.0),
    }
}

/// 12345 as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The store, opened for the plan's `archive-to-store` rules: keys, a probe, tend's state.
/// An error names the first such rule.
fn prepare_archive(
    ctx: &Context,
    target: &crate::context::Target,
    plan: &CleanupPlan,
) -> Result<StoreArchive, CommandError> {
    let store = super::backup::store(ctx)?;
    let database = ctx.settings.database.handle(target.info.clone());
    block_on(StoreArchive::prepare(
        &database,
        store,
        &ctx.settings.backup.keys,
    ))
    .map_err(|source| {
        let rule = plan
            .rules
            .iter()
            .find(|r| r.action == cleanup::ARCHIVE_TO_STORE)
            .map_or_else(String::new, |r| r.rule.clone());
        cleanup_error(CleanupError::StoreArchive { rule, source })
    })
}

/// `tend cleanup archived`: what the store's manifests list, per rule folder; with
/// `--out`, those rows decrypted.
fn list_archived(ctx: &Context, args: &ArchivedArgs) -> Result<i32, CommandError> {
    let store = super::backup::store(ctx)?;
    let mut rules = block_on(cleanup::archive::archived(&store, None)).map_err(archive_error)?;
    for name in &args.rules {
        if !rules.iter().any(|r| &r.rule == name) {
            return Err(CommandError::new(
                ErrorKind::Config,
                format!(
                    "the backup store {} holds no archived rows of a rule `{name}`",
                    store.description
                ),
            ));
        }
    }
    rules.retain(|r| args.rules.is_empty() || args.rules.contains(&r.rule));
    let Some(out) = &args.out else {
        ctx.out.json_value(&rules);
        if rules.is_empty() {
            ctx.out.line(format!(
                "The backup store {} holds no archived rows (rules with action = \"archive-to-store\" put them there).",
                store.description
            ));
        }
        for rule in &rules {
            ctx.out.line(format!(
                "{} on {} ({}): {} in {} ({:.1} MB), archived {} to {}{}",
                rule.rule,
                rule.table,
                rule.database.as_deref().unwrap_or("another database"),
                count(rule.rows as usize, "row", "rows"),
                count(rule.batches, "batch", "batches"),
                rule.bytes as f64 / 1e6,
                rule.first_archived_at.as_deref().unwrap_or("-"),
                rule.last_archived_at.as_deref().unwrap_or("-"),
                match rule.unlisted {
                    0 => String::new(),
                    n => format!(
                        "; {} no manifest lists yet (the next tend cleanup lists a killed run's)",
                        count(n, "batch", "batches")
                    ),
                }
            ));
        }
        return Ok(exit::OK);
    };
    let written = block_on(cleanup::archive::read_out(
        &store,
        &ctx.settings.backup.keys,
        &rules,
        out,
    ))
    .map_err(archive_error)?;
    ctx.out.json_value(&written);
    for file in &written.files {
        ctx.out.step(format!(
            "{} on {}: {} to {}",
            file.rule,
            file.table,
            count(file.rows as usize, "row", "rows"),
            file.path.display()
        ));
    }
    ctx.out.line(format!(
        "Wrote {} of archived rows to {}.",
        count(written.rows as usize, "row", "rows"),
        written.directory.display()
    ));
    Ok(exit::OK)
}

fn archive_error(err: ArchiveError) -> CommandError {
    match err {
        err @ (ArchiveError::Keys(_) | ArchiveError::Decrypt(_) | ArchiveError::Exists(_)) => {
            CommandError::new(ErrorKind::Config, err.to_string())
        }
        err => CommandError::failure(err.to_string()),
    }
}

fn cleanup_error(err: CleanupError) -> CommandError {
    match err {
        err @ CleanupError::NotStored { .. } => CommandError::failure(err.to_string()),
        CleanupError::StoreArchive { rule, source } => {
            let inner = archive_error(source);
            CommandError::new(
                inner.kind,
                format!("retention rule `{rule}`: {}", inner.message),
            )
        }
        CleanupError::Database(e) => e.into(),
        err @ (CleanupError::UnknownTable { .. }
        | CleanupError::UnknownColumn { .. }
        | CleanupError::NotATimestamp { .. }
        | CleanupError::Archive { .. }
        | CleanupError::NotPartitioned { .. }
        | CleanupError::UnknownRule { .. }) => {
            CommandError::new(ErrorKind::Config, err.to_string())
        }
        err @ CleanupError::Count { .. } => CommandError::new(ErrorKind::Config, err.to_string())
            .with_hint("check the rule's `where` in tend.toml: it is SQL over the table's columns"),
        err @ (CleanupError::Purge { .. } | CleanupError::DropPartitions { .. }) => {
            CommandError::failure(err.to_string())
        }
        err => CommandError::failure(err.to_string()),
    }
}
