//! `tend optimize`: analyzes stale statistics and creates the indexes foreign keys lack;
//! with `--apply` (and a confirmation) also drops unused and duplicate indexes. Each
//! statement is printed with its reason. In a project with migrations, index changes are
//! schema changes: they are written as a new migration (run by `tend migrate deploy`), not
//! run out of band, unless `--out-of-band` says so; and an index the migrations create is
//! never proposed for a drop unless `--include-migration-indexes` asks.

use std::time::Duration;

use clap::Args;
use tend_migrate::source::{self, Format};
use tend_ops::actions::{self, OptimizeStep};

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// Print every statement with its reason, and run none.
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Also drop unused and duplicate indexes (asks first; --yes in scripts).
    #[arg(long)]
    pub apply: bool,
    /// In a project with migrations, run index changes on the database directly instead of
    /// writing them as a migration (`tend schema verify` then reports them as drift).
    #[arg(long)]
    pub out_of_band: bool,
    /// Also propose dropping unused or duplicate indexes that the migrations create.
    #[arg(long)]
    pub include_migration_indexes: bool,
}

pub fn run(args: OptimizeArgs, ctx: &Context) -> Result<i32, CommandError> {
    let project = super::migrate::Project::from_settings(ctx);
    let migrations = if project.dir.is_dir() {
        project.load()?
    } else {
        Vec::new()
    };
    let created = source::created_indexes(&migrations);
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    // Indexes under 1 MB cost little to keep; not worth a drop.
    let mut plan = block_on(actions::optimize_plan(&session, 1024 * 1024))?;
    let mut kept_back = Vec::new();
    if !args.include_migration_indexes {
        plan.retain(|p| match &p.index {
            Some(index) if p.destructive && created.contains(&index.name) => {
                kept_back.push(index.name.clone());
                false
            }
            _ => true,
        });
    }
    for name in &kept_back {
        ctx.out.notice(format!(
            "Not proposing to drop {name}: the migrations create it (--include-migration-indexes to consider it)"
        ));
    }
    if plan.is_empty() {
        ctx.out
            .json_value(&serde_json::json!({ "statements": [], "kept_back": kept_back }));
        ctx.out.line("Nothing to optimize.");
        return Ok(exit::OK);
    }
    if !migrations.is_empty() && !args.out_of_band {
        return through_migration(ctx, &args, &project, plan, &session, kept_back);
    }
    let show = |p: &actions::PlannedStatement, prefix: &str| {
        ctx.out.line(format!("{prefix}{};  -- {}", p.sql, p.reason));
    };
    if args.dry_run {
        ctx.out
            .json_value(&serde_json::json!({ "dry_run": true, "statements": plan }));
        for p in &plan {
            show(p, if p.destructive { "(with --apply) " } else { "" });
        }
        return Ok(exit::OK);
    }
    let destructive: Vec<&OptimizeStep> = plan.iter().filter(|p| p.destructive).collect();
    if args.apply && !destructive.is_empty() {
        for p in &destructive {
            show(p, "");
        }
        ctx.out.confirm(
            &format!(
                "Drop these {}?",
                count(destructive.len(), "index", "indexes")
            ),
            ctx.yes,
        )?;
    }
    let mut ran = Vec::new();
    let mut skipped = Vec::new();
    for p in &plan {
        if p.destructive && !args.apply {
            skipped.push(p);
            continue;
        }
        ctx.out.step(format!("{};  -- {}", p.sql, p.reason));
        execute(&session, p)?;
        ran.push(p);
    }
    ctx.out
        .json_value(&serde_json::json!({ "ran": ran, "needs_apply": skipped }));
    ctx.out.line(format!(
        "Ran {}.",
        count(ran.len(), "statement", "statements")
    ));
    if !skipped.is_empty() {
        ctx.out.line(format!(
            "{} need --apply (see them with --dry-run).",
            count(skipped.len(), "index drop", "index drops")
        ));
    }
    Ok(exit::OK)
}

fn execute(session: &tend_pg::Session, p: &OptimizeStep) -> Result<(), CommandError> {
    if p.concurrent {
        block_on(actions::run_with_lock_retries(
            session,
            &p.sql,
            Duration::from_secs(1),
            6,
        ))?;
    } else {
        block_on(session.batch_execute(&p.sql))?;
    }
    Ok(())
}

/// A project with migrations: statistics are refreshed here and now, index changes become
/// the next migration.
fn through_migration(
    ctx: &Context,
    args: &OptimizeArgs,
    project: &super::migrate::Project,
    plan: Vec<OptimizeStep>,
    session: &tend_pg::Session,
    kept_back: Vec<String>,
) -> Result<i32, CommandError> {
    let (changes, others): (Vec<OptimizeStep>, Vec<OptimizeStep>) =
        plan.into_iter().partition(|p| p.index.is_some());
    let (written, needs_apply): (Vec<OptimizeStep>, Vec<OptimizeStep>) = changes
        .into_iter()
        .partition(|p| !p.destructive || args.apply);
    let sql = migration_sql(&written, project.format);
    let prisma_lines: Vec<String> = if project.format == Format::Prisma {
        written.iter().filter_map(prisma_line).collect()
    } else {
        Vec::new()
    };
    if args.dry_run {
        ctx.out.json_value(&serde_json::json!({
            "dry_run": true, "statements": others, "migration": written,
            "needs_apply": needs_apply, "prisma_schema": prisma_lines, "kept_back": kept_back,
        }));
        for p in &others {
            ctx.out.line(format!("{};  -- {}", p.sql, p.reason));
        }
        if !written.is_empty() {
            ctx.out.line(format!(
                "Would write a migration in {} with:",
                project.dir.display()
            ));
            ctx.out.line(sql.trim_end());
        }
        for p in &needs_apply {
            ctx.out.line(format!(
                "(with --apply, in the migration) {};  -- {}",
                p.sql, p.reason
            ));
        }
        for line in &prisma_lines {
            ctx.out.line(line);
        }
        return Ok(exit::OK);
    }
    let drops = written.iter().filter(|p| p.destructive).count();
    if drops > 0 {
        for p in written.iter().filter(|p| p.destructive) {
            ctx.out.line(format!("{};  -- {}", p.sql, p.reason));
        }
        ctx.out.confirm(
            &format!(
                "Write a migration that drops these {}?",
                count(drops, "index", "indexes")
            ),
            ctx.yes,
        )?;
    }
    for p in &others {
        ctx.out.step(format!("{};  -- {}", p.sql, p.reason));
        execute(session, p)?;
    }
    let path = if written.is_empty() {
        None
    } else {
        let path = source::create(
            &project.dir,
            project.format,
            &super::migrate::utc_timestamp(),
            "optimize indexes",
        )
        .map_err(|e| CommandError::failure(e.to_string()))?;
        std::fs::write(&path, &sql)
            .map_err(|e| CommandError::failure(format!("cannot write {}: {e}", path.display())))?;
        Some(path)
    };
    ctx.out.json_value(&serde_json::json!({
        "ran": others, "migration": path, "written": written, "needs_apply": needs_apply,
        "prisma_schema": prisma_lines, "kept_back": kept_back,
    }));
    ctx.out.line(format!(
        "Ran {}.",
        count(others.len(), "statement", "statements")
    ));
    if let Some(path) = &path {
        ctx.out.line(format!(
            "Wrote {} ({}): the project has migrations, so index changes go through one; review it, then `tend migrate deploy` applies it (--out-of-band runs them directly instead).",
            path.display(),
            count(written.len(), "index change", "index changes")
        ));
        if !prisma_lines.is_empty() {
            ctx.out
                .line("Also change prisma/schema.prisma, so Prisma's next migration agrees:");
            for line in &prisma_lines {
                ctx.out.line(format!("  {line}"));
            }
        }
    }
    if !needs_apply.is_empty() {
        ctx.out.line(format!(
            "{} need --apply (see them with --dry-run).",
            count(needs_apply.len(), "index drop", "index drops")
        ));
    }
    Ok(exit::OK)
}

/// The migration's text. Prisma runs a migration file as one script, where CONCURRENTLY
/// cannot run; tend's layout runs it statement by statement, so it keeps CONCURRENTLY. A
/// drop says IF EXISTS: the index may exist only in this database, not in a replay.
fn migration_sql(written: &[OptimizeStep], format: Format) -> String {
    let mut sql = String::from(
        "-- Written by `tend optimize`: index changes for this project's migrations.\n\n",
    );
    for p in written {
        let mut statement = p.sql.clone();
        if p.destructive {
            statement = statement.replacen(
                "DROP INDEX CONCURRENTLY ",
                "DROP INDEX CONCURRENTLY IF EXISTS ",
                1,
            );
        }
        if format == Format::Prisma {
            statement = statement.replacen(" CONCURRENTLY", "", 1);
        }
        sql.push_str(&format!("-- {}\n{statement};\n\n", p.reason));
    }
    sql
}

/// The line for schema.prisma (model names are the table's unless `@@map` renames them).
fn prisma_line(p: &OptimizeStep) -> Option<String> {
    let index = p.index.as_ref()?;
    let columns = index.columns.join(", ");
    Some(if index.create {
        format!("model {}: add @@index([{columns}])", index.table)
    } else {
        format!(
            "model {}: remove @@index([{columns}]) if it is there (index {})",
            index.table, index.name
        )
    })
}
