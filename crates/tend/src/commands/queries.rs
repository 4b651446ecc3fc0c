//! `tend queries`: what client sessions are doing now, longest first.

use clap::Args;
use tend_ops::actions;

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};
use crate::settings::parse_duration;

#[derive(Debug, Args)]
pub struct QueriesArgs {
    /// Only sessions whose current query (or idle transaction) has lasted this long ("30s", "5m").
    #[arg(long, value_name = "D", value_parser = duration_arg)]
    pub min_duration: Option<std::time::Duration>,
    /// Include idle sessions.
    #[arg(long)]
    pub all: bool,
}

pub fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    parse_duration(text)
}

pub fn run(args: QueriesArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let filter = actions::QueryFilter {
        all: args.all,
        min_duration: args.min_duration,
    };
    let report = block_on(actions::queries(&session, &filter))?;
    warn_hidden(ctx, report.hidden_sessions, &report.user);
    ctx.out.json_value(&report);
    let shown = &report.sessions;
    if shown.is_empty() {
        ctx.out.line("No sessions match.");
        return Ok(exit::OK);
    }
    ctx.out.line(format!(
        "{:>7}  {:>8}  {:<20} {:<12} {:<22} {}",
        "pid", "seconds", "state", "user", "application / wait", "query"
    ));
    for s in shown {
        let who = match &s.wait {
            Some(wait) => format!("{} [{wait}]", s.application),
            None => s.application.clone(),
        };
        ctx.out.line(format!(
            "{:>7}  {:>8.1}  {:<20} {:<12} {:<22} {}",
            s.pid,
            s.seconds,
            s.state,
            s.user,
            who,
            one_line(&s.query, 100)
        ));
    }
    Ok(exit::OK)
}

/// Says (on stderr) how many sessions of other roles `user` cannot see: a list that leaves
/// them out must not pass for complete.
pub fn warn_hidden(ctx: &Context, hidden: i64, user: &str) {
    if hidden > 0 {
        let user = tend_pg::quote_ident(user);
        ctx.out.warn(format!(
            "{hidden} sessions of other roles in this database are not listed: PostgreSQL hides their state and queries from {user}, which lacks pg_read_all_stats. `GRANT pg_read_all_stats TO {user};` (or pg_monitor) lets tend see them."
        ));
    }
}

/// A query on one line, cut to `max` characters.
pub fn one_line(query: &str, max: usize) -> String {
    let flat: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}...", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}
