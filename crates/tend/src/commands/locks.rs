//! `tend locks`: who blocks whom, as a tree rooted at the sessions holding everyone up.

use clap::Args;
use tend_ops::actions::{self, BlockNode};

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct LocksArgs {}

pub fn run(_args: LocksArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let report = block_on(actions::locks(&session))?;
    super::queries::warn_hidden(ctx, report.hidden_sessions, &report.user);
    ctx.out.json_value(&report);
    let tree = &report.blocking;
    if tree.is_empty() {
        ctx.out.line("No session is waiting on another's lock.");
        return Ok(exit::OK);
    }
    for root in tree {
        print_node(ctx, root, 0);
    }
    ctx.out.line(format!(
        "\nEnd a blocker with `tend kill {}` (add --terminate if it is idle in a transaction).",
        tree[0].session.pid
    ));
    Ok(exit::OK)
}

fn print_node(ctx: &Context, node: &BlockNode, depth: usize) {
    let s = &node.session;
    let indent = "    ".repeat(depth);
    let arrow = if depth == 0 { "" } else { "└─ waits: " };
    ctx.out.line(format!(
        "{indent}{arrow}pid {} ({}, {}) {} for {:.0}s{}: {}",
        s.pid,
        s.application,
        s.user,
        s.state,
        s.seconds,
        s.wait
            .as_ref()
            .map(|w| format!(" on {w}"))
            .unwrap_or_default(),
        super::queries::one_line(&s.query, 80)
    ));
    for child in &node.waiting {
        print_node(ctx, child, depth + 1);
    }
}
