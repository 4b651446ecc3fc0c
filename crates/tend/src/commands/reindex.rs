//! `tend reindex`: rebuilds indexes with REINDEX CONCURRENTLY under a short lock_timeout,
//! retried with jitter, so a rebuild never stalls the lock queue.

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
    // Decide first whether the role may rebuild each index, rather than fail halfway.
    let plan = block_on(actions::reindex_checked_plan(
        &session,
        args.invalid,
        args.bloated.then_some(2.0),
        &args.indexes,
    ))
    .map_err(super::vacuum::plan_error)?;
    let refusals = &plan.refusals;
    let user = &refusals.user;
    let denied_list = refusals.list();
    let fix = "run it as the owner of the table (or a superuser); on PostgreSQL 17 and later `GRANT MAINTAIN ON TABLE <table> TO <role>;` also allows it";
    if !args.indexes.is_empty() && !refusals.denied.is_empty() {
        return Err(CommandError::failure(format!(
            "the role `{user}` may not rebuild {denied_list}; nothing was rebuilt"
        ))
        .with_hint(fix));
    }
    let json = |report: &actions::ReindexReport| {
        ctx.out
            .json_value(&serde_json::to_value(report).expect("reindex reports serialize"));
    };
    let incomplete = || -> Result<i32, CommandError> {
        if refusals.denied.is_empty() {
            return Ok(exit::OK);
        }
        Err(crate::commands::vacuum::partial(
            ctx,
            CommandError::failure(format!(
                "skipped {}: the role `{user}` may not rebuild {denied_list}",
                count(refusals.denied.len(), "index", "indexes")
            ))
            .with_hint(fix),
        ))
    };
    if plan.statements.is_empty() {
        json(&plan.unrun(args.dry_run));
        ctx.out.line("No index to rebuild.");
        return incomplete();
    }
    if args.dry_run {
        json(&plan.unrun(true));
        for p in &plan.statements {
            ctx.out.line(format!("{};  -- {}", p.sql, p.reason));
        }
        return incomplete();
    }
    let starting = |p: &actions::PlannedStatement| {
        ctx.out.step(format!("{};  -- {}", p.sql, p.reason));
    };
    let report = block_on(actions::reindex(
        &session,
        &plan,
        &tokio_util::sync::CancellationToken::new(),
        &starting,
    ))?;
    json(&report);
    let rebuilt = match &report {
        actions::ReindexReport::Rebuilt { rebuilt, .. } => rebuilt.len(),
        _ => 0,
    };
    ctx.out
        .line(format!("Rebuilt {}.", count(rebuilt, "index", "indexes")));
    incomplete()
}
