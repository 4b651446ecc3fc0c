//! `tend optimize`: analyzes stale statistics and creates the indexes foreign keys lack;
//! with `--apply` (and a confirmation) also drops unused and duplicate indexes. Each
//! statement is printed with its reason.

use std::time::Duration;

use clap::Args;
use tend_ops::actions;

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
}

pub fn run(args: OptimizeArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    // Indexes under 1 MB cost little to keep; not worth a drop.
    let plan = block_on(actions::optimize_plan(&session, 1024 * 1024))?;
    if plan.is_empty() {
        ctx.out.json_value(&serde_json::json!({ "statements": [] }));
        ctx.out.line("Nothing to optimize.");
        return Ok(exit::OK);
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
    let destructive: Vec<&actions::PlannedStatement> =
        plan.iter().filter(|p| p.destructive).collect();
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
        if p.concurrent {
            block_on(actions::run_with_lock_retries(
                &session,
                &p.sql,
                Duration::from_secs(1),
                6,
            ))?;
        } else {
            block_on(session.batch_execute(&p.sql))?;
        }
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
