//! `tend kill`: cancels sessions' queries (or terminates the sessions, when asked), by pid or
//! by what they are doing. Asks first; `--dry-run` changes nothing.

use clap::Args;
use tend_ops::actions::{self, KillSelection};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("selection")
        .required(true)
        .multiple(false)
        .args(["pids", "idle_in_transaction", "longer_than"])
))]
pub struct KillArgs {
    /// Sessions by backend pid.
    pub pids: Vec<i32>,
    /// Sessions idle in a transaction at least this long ("5m"); needs --terminate, since an
    /// idle session has no query to cancel.
    #[arg(long, value_name = "D", value_parser = super::queries::duration_arg)]
    pub idle_in_transaction: Option<std::time::Duration>,
    /// Sessions whose current query has run at least this long ("1m").
    #[arg(long, value_name = "D", value_parser = super::queries::duration_arg)]
    pub longer_than: Option<std::time::Duration>,
    /// End the sessions (pg_terminate_backend) instead of cancelling their queries.
    #[arg(long)]
    pub terminate: bool,
    /// Show which sessions would be signalled, and signal none.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: KillArgs, ctx: &Context) -> Result<i32, CommandError> {
    let selection = if let Some(d) = args.idle_in_transaction {
        if !args.terminate {
            return Err(CommandError::new(
                ErrorKind::Config,
                "a session idle in a transaction runs no query to cancel",
            )
            .with_hint("add --terminate to end those sessions (their transactions roll back)"));
        }
        KillSelection::IdleInTransaction(d)
    } else if let Some(d) = args.longer_than {
        KillSelection::LongerThan(d)
    } else {
        KillSelection::Pids(args.pids.clone())
    };
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let plan = block_on(actions::kill_plan(&session, &selection))?;
    super::queries::warn_hidden(ctx, plan.hidden_sessions, &plan.user);
    if !plan.missing.is_empty() {
        let missing: Vec<String> = plan.missing.iter().map(|p| p.to_string()).collect();
        return Err(CommandError::failure(format!(
            "no client session of this database has pid {}; nothing was signalled",
            missing.join(", ")
        ))
        .with_hint("`tend queries --all` lists the sessions"));
    }
    let targets = &plan.targets;
    let verb = if args.terminate {
        "terminate"
    } else {
        "cancel the query of"
    };
    if targets.is_empty() {
        json(ctx, &plan.unsent(args.dry_run, args.terminate));
        ctx.out.line("No session matches; nothing to do.");
        return Ok(exit::OK);
    }
    for t in targets {
        ctx.out.line(format!(
            "{} pid {} ({}, {}): {} — {}",
            if args.dry_run { "would" } else { "will" },
            t.session.pid,
            t.session.application,
            t.session.user,
            t.reason,
            super::queries::one_line(&t.session.query, 70)
        ));
    }
    if args.dry_run {
        json(ctx, &plan.unsent(true, args.terminate));
        return Ok(exit::OK);
    }
    ctx.out.confirm(
        &format!("{verb} {}?", count(targets.len(), "session", "sessions")),
        ctx.yes,
    )?;
    let report = block_on(actions::kill(&session, &plan, args.terminate))?;
    json(ctx, &report);
    ctx.out.line(format!(
        "{} {}.",
        if args.terminate {
            "Terminated"
        } else {
            "Cancelled the queries of"
        },
        count(report.signalled().len(), "session", "sessions")
    ));
    Ok(exit::OK)
}

fn json(ctx: &Context, report: &actions::KillReport) {
    ctx.out
        .json_value(&serde_json::to_value(report).expect("kill reports serialize"));
}
