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

const REINDEX: &str = "REINDEX INDEX CONCURRENTLY ";

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
    // Decide first whether the role may rebuild each index, rather than fail halfway.
    let names: Vec<String> = plan
        .iter()
        .map(|p| p.sql.trim_start_matches(REINDEX).to_string())
        .collect();
    let rights = block_on(actions::may_maintain(
        &session,
        &names,
        actions::Maintenance::Reindex,
    ))?;
    let (denied, user, denied_list) = super::vacuum::refused(&session, &rights)?;
    let fix = "run it as the owner of the table (or a superuser); on PostgreSQL 17 and later `GRANT MAINTAIN ON TABLE <table> TO <role>;` also allows it";
    if !args.indexes.is_empty() && !denied.is_empty() {
        return Err(CommandError::failure(format!(
            "the role `{user}` may not rebuild {denied_list}; nothing was rebuilt"
        ))
        .with_hint(fix));
    }
    let plan: Vec<actions::PlannedStatement> = plan
        .into_iter()
        .filter(|p| {
            let name = p.sql.trim_start_matches(REINDEX);
            !denied.iter().any(|r| r.relation == name)
        })
        .collect();
    let skipped: Vec<serde_json::Value> = denied
        .iter()
        .map(|r| serde_json::json!({ "index": r.relation, "owner": r.owner, "reason": "not allowed" }))
        .collect();
    let incomplete = || -> Result<i32, CommandError> {
        if denied.is_empty() {
            return Ok(exit::OK);
        }
        Err(crate::commands::vacuum::partial(
            ctx,
            CommandError::failure(format!(
                "skipped {}: the role `{user}` may not rebuild {denied_list}",
                count(denied.len(), "index", "indexes")
            ))
            .with_hint(fix),
        ))
    };
    if plan.is_empty() {
        ctx.out
            .json_value(&serde_json::json!({ "statements": [], "skipped": skipped }));
        ctx.out.line("No index to rebuild.");
        return incomplete();
    }
    if args.dry_run {
        ctx.out.json_value(
            &serde_json::json!({ "dry_run": true, "statements": plan, "skipped": skipped }),
        );
        for p in &plan {
            ctx.out.line(format!("{};  -- {}", p.sql, p.reason));
        }
        return incomplete();
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
    ctx.out
        .json_value(&serde_json::json!({ "rebuilt": done, "skipped": skipped }));
    ctx.out.line(format!(
        "Rebuilt {}.",
        count(done.len(), "index", "indexes")
    ));
    incomplete()
}
