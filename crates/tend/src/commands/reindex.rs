//! `tend reindex`: rebuilds indexes with REINDEX CONCURRENTLY under a short lock_timeout,
//! retried with jitter, so a rebuild never stalls the lock queue.

use std::time::Duration;

use clap::Args;
use tend_ops::actions;

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("which")
        .required(true)
        .multiple(true)
        .args(["invalid", "bloated", "indexes"])
))]
pub struct ReindexArgs {
    /// Every invalid index (left by a failed concurrent build).
    #[arg(long)]
    pub invalid: bool,
    /// Btree indexes at least twice the size their rows need.
    #[arg(long)]
    pub bloated: bool,
    /// Indexes by name.
    pub indexes: Vec<String>,
    /// Print the statements, and run none.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: ReindexArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let plan = block_on(actions::reindex_plan(
        &session,
        args.invalid,
        args.bloated.then_some(2.0),
        &args.indexes,
    ))
    .map_err(CommandError::failure)?;
    if plan.is_empty() {
        ctx.out.json_value(&serde_json::json!({ "statements": [] }));
        ctx.out.line("No index to rebuild.");
        return Ok(exit::OK);
    }
    if args.dry_run {
        ctx.out
            .json_value(&serde_json::json!({ "dry_run": true, "statements": plan }));
        for p in &plan {
            ctx.out.line(format!("{};  -- {}", p.sql, p.reason));
        }
        return Ok(exit::OK);
    }
    let mut done = Vec::new();
    for p in &plan {
        ctx.out.step(format!("{};  -- {}", p.sql, p.reason));
        let attempts = block_on(actions::run_with_lock_retries(
            &session,
            &p.sql,
            Duration::from_secs(1),
            6,
        ))?;
        done.push(serde_json::json!({ "sql": p.sql, "reason": p.reason, "attempts": attempts }));
    }
    ctx.out.json_value(&serde_json::json!({ "rebuilt": done }));
    ctx.out.line(format!(
        "Rebuilt {}.",
        count(done.len(), "index", "indexes")
    ));
    Ok(exit::OK)
}
