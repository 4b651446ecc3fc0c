//! `tend soft-delete TABLE:KEY` and `tend undelete TABLE:KEY`: mark one row deleted (its
//! `deleted_at`/`deletedAt` set) with the rows that belong to it through `ON DELETE
//! CASCADE`, all with one timestamp; or lift exactly that mark. Shows what it will do, asks.

use clap::Args;
use tend_core::cleanup::soft_delete::{self, MarkPlan, SoftDeleteError};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Args)]
pub struct SoftDeleteArgs {
    /// The row: TABLE:KEY (agencies:8f0c...), by the table's primary key.
    #[arg(value_name = "TABLE:KEY")]
    pub row: String,
    /// Who deletes: written into deleted_by/deletedBy where a table has one.
    #[arg(long, value_name = "KEY")]
    pub by: Option<String>,
    /// Show what would be marked, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UndeleteArgs {
    /// The row: TABLE:KEY, by the table's primary key.
    #[arg(value_name = "TABLE:KEY")]
    pub row: String,
    /// Show what would be restored, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn soft_delete(args: SoftDeleteArgs, ctx: &Context) -> Result<i32, CommandError> {
    mark(&args.row, false, args.by.as_deref(), args.dry_run, ctx)
}

pub fn undelete(args: UndeleteArgs, ctx: &Context) -> Result<i32, CommandError> {
    mark(&args.row, true, None, args.dry_run, ctx)
}

fn mark(
    row: &str,
    undelete: bool,
    by: Option<&str>,
    dry_run: bool,
    ctx: &Context,
) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let mut session = ctx.connect(&target.info)?;
    let plan = block_on(soft_delete::plan(&session, row, undelete, by)).map_err(mark_error)?;
    show(ctx, &plan);
    let verb = if undelete { "Restore" } else { "Soft-delete" };
    if dry_run {
        ctx.out.json_value(&plan);
        ctx.out.line(format!(
            "Would {} {} (--dry-run: nothing was changed).",
            verb.to_lowercase(),
            count(plan.rows() as usize, "row", "rows")
        ));
        return Ok(exit::OK);
    }
    ctx.out.confirm(
        &format!(
            "{verb} {} in {}?",
            count(plan.rows() as usize, "row", "rows"),
            count(plan.steps.len(), "table", "tables")
        ),
        ctx.yes,
    )?;
    let report = block_on(soft_delete::run(&mut session.client, &plan)).map_err(mark_error)?;
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "{} {} of {} {} and what belongs to it.",
        if undelete { "Restored" } else { "Soft-deleted" },
        count(report.rows as usize, "row", "rows"),
        report.table,
        report.key
    ));
    Ok(exit::OK)
}

fn show(ctx: &Context, plan: &MarkPlan) {
    for step in &plan.steps {
        ctx.out.line(format!(
            "  {:>8}  {} ({})",
            step.rows, step.table, step.column
        ));
    }
    if !plan.unmarked_tables.is_empty() {
        ctx.out.notice(format!(
            "Rows of {} belong to it but have no deleted_at column: they stay as they are (a purge of it would delete them through ON DELETE CASCADE).",
            plan.unmarked_tables.join(", ")
        ));
    }
}

fn mark_error(err: SoftDeleteError) -> CommandError {
    match err {
        SoftDeleteError::Database(e) => e.into(),
        err @ (SoftDeleteError::BadRow(_)
        | SoftDeleteError::UnknownTable(_)
        | SoftDeleteError::NoKey { .. }
        | SoftDeleteError::NoColumn { .. }
        | SoftDeleteError::BadKey { .. }) => CommandError::new(ErrorKind::Config, err.to_string()),
        err => CommandError::failure(err.to_string()),
    }
}
