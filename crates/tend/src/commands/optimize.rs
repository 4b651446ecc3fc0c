//! `tend optimize`: analyzes stale statistics and creates the indexes foreign keys lack;
//! with `--apply` (and a confirmation) also drops unused and duplicate indexes. Each
//! statement is printed with its reason. In a project with migrations, index changes are
//! schema changes: they are written as a new migration (run by `tend migrate deploy`), not
//! run out of band, unless `--out-of-band` says so; and an index the migrations create is
//! never proposed for a drop unless `--include-migration-indexes` asks.

use clap::Args;
use tend_core::optimize::{self, MigrationsDir, OptimizeError, OptimizeReport, OptimizeRequest};
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
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let request = OptimizeRequest {
        apply: args.apply,
        out_of_band: args.out_of_band,
        include_migration_indexes: args.include_migration_indexes,
    };
    let dir = MigrationsDir {
        dir: &project.dir,
        format: project.format,
        migrations: &migrations,
    };
    let plan = block_on(optimize::plan(&session, &request, Some(dir)))?;
    for name in &plan.kept_back {
        ctx.out.notice(format!(
            "Not proposing to drop {name}: the migrations create it (--include-migration-indexes to consider it)"
        ));
    }
    let json = |report: &OptimizeReport| {
        ctx.out
            .json_value(&serde_json::to_value(report).expect("optimize reports serialize"));
    };
    if plan.is_empty() {
        json(&plan.unrun());
        ctx.out.line("Nothing to optimize.");
        return Ok(exit::OK);
    }
    let show = |p: &actions::PlannedStatement, prefix: &str| {
        ctx.out.line(format!("{prefix}{};  -- {}", p.sql, p.reason));
    };
    if args.dry_run {
        json(&plan.unrun());
        match &plan.migration {
            None => {
                for p in &plan.steps {
                    show(p, if p.destructive { "(with --apply) " } else { "" });
                }
            }
            Some(m) => {
                for p in &m.others {
                    show(p, "");
                }
                if !m.written.is_empty() {
                    ctx.out.line(format!(
                        "Would write a migration in {} with:",
                        project.dir.display()
                    ));
                    ctx.out.line(m.sql.trim_end());
                }
                for p in &m.needs_apply {
                    show(p, "(with --apply, in the migration) ");
                }
                for line in &m.prisma_schema {
                    ctx.out.line(line);
                }
            }
        }
        return Ok(exit::OK);
    }
    let drops = plan.drops(args.apply);
    if !drops.is_empty() {
        for p in &drops {
            show(p, "");
        }
        let question = if plan.migration.is_some() {
            "Write a migration that drops these"
        } else {
            "Drop these"
        };
        ctx.out.confirm(
            &format!("{question} {}?", count(drops.len(), "index", "indexes")),
            ctx.yes,
        )?;
    }
    let starting = |p: &OptimizeStep| {
        ctx.out.step(format!("{};  -- {}", p.sql, p.reason));
    };
    let report = block_on(optimize::run(
        &session,
        &plan,
        &request,
        &super::migrate::utc_timestamp(),
        &starting,
    ))
    .map_err(optimize_error)?;
    json(&report);
    match &report {
        OptimizeReport::Ran { ran, needs_apply } => {
            ctx.out.line(format!(
                "Ran {}.",
                count(ran.len(), "statement", "statements")
            ));
            if !needs_apply.is_empty() {
                ctx.out.line(format!(
                    "{} need --apply (see them with --dry-run).",
                    count(needs_apply.len(), "index drop", "index drops")
                ));
            }
        }
        OptimizeReport::Migration {
            ran,
            migration,
            written,
            needs_apply,
            prisma_schema,
            ..
        } => {
            ctx.out.line(format!(
                "Ran {}.",
                count(ran.len(), "statement", "statements")
            ));
            if let Some(path) = migration {
                ctx.out.line(format!(
                    "Wrote {} ({}): the project has migrations, so index changes go through one; review it, then `tend migrate deploy` applies it (--out-of-band runs them directly instead).",
                    path.display(),
                    count(written.len(), "index change", "index changes")
                ));
                if !prisma_schema.is_empty() {
                    ctx.out.line(
                        "Also change prisma/schema.prisma, so Prisma's next migration agrees:",
                    );
                    for line in prisma_schema {
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
        }
        _ => {}
    }
    Ok(exit::OK)
}

fn optimize_error(err: OptimizeError) -> CommandError {
    match err {
        OptimizeError::Database(err) => err.into(),
        OptimizeError::Source(err) => CommandError::failure(err.to_string()),
        err @ OptimizeError::Write { .. } => CommandError::failure(err.to_string()),
    }
}
