//! `tend vacuum`: VACUUM (and ANALYZE) table by table, with progress from
//! `pg_stat_progress_vacuum`.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tend_ops::actions::{self, VacuumEvent};
use tokio_util::sync::CancellationToken;

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Also update planner statistics (VACUUM (ANALYZE)).
    #[arg(long)]
    pub analyze: bool,
    /// Tables to vacuum (default: every user table, the most dead rows first).
    pub tables: Vec<String>,
}

pub fn run(args: VacuumArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let watcher = ctx.connect(&target.info)?;
    let plan = block_on(actions::vacuum_plan(&session, &args.tables)).map_err(plan_error)?;
    let refusals = &plan.refusals;
    let user = &refusals.user;
    let denied_list = refusals.list();
    let fix = "run it as the owner (or a superuser); on PostgreSQL 17 and later `GRANT MAINTAIN ON TABLE <table> TO <role>;` also allows it";
    if !args.tables.is_empty() && !refusals.denied.is_empty() {
        return Err(CommandError::failure(format!(
            "the role `{user}` may not vacuum {denied_list}, and PostgreSQL would only skip it with a warning; nothing was vacuumed"
        ))
        .with_hint(fix));
    }
    let bar = if ctx.out.quiet || ctx.out.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>30} {bar:30} {pos:>3}% {msg}")
                .expect("a valid template"),
        );
        bar
    };
    let events = |event: VacuumEvent| match event {
        VacuumEvent::Started { table } => {
            bar.set_prefix(table);
            bar.set_position(0);
        }
        VacuumEvent::Progress { percent, phase } => {
            if let Some(percent) = percent {
                bar.set_position(percent);
            }
            bar.set_message(phase);
        }
        VacuumEvent::Finished { sql, seconds } => {
            ctx.out.step(format!("{sql}  ({seconds:.1}s)"));
        }
    };
    let report = block_on(actions::vacuum(
        &session,
        &watcher,
        &plan,
        args.analyze,
        &CancellationToken::new(),
        &events,
    ))?;
    bar.finish_and_clear();
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "Vacuumed {}{}.",
        count(report.vacuumed.len(), "table", "tables"),
        if args.analyze {
            " and refreshed their statistics"
        } else {
            ""
        }
    ));
    if !refusals.denied.is_empty() {
        return Err(partial(
            ctx,
            CommandError::failure(format!(
                "skipped {}: the role `{user}` may not vacuum {denied_list}",
                count(refusals.denied.len(), "table", "tables")
            ))
            .with_hint(fix),
        ));
    }
    Ok(exit::OK)
}

/// A plan that could not be made: a name that is not there, or the database's error.
pub fn plan_error(err: actions::PlanError) -> CommandError {
    match err {
        actions::PlanError::NotFound(message) => CommandError::failure(message),
        actions::PlanError::Database(err) => err.into(),
    }
}

/// The error of a run that did part of its work: with --json the document above already
/// holds what was skipped, so the error goes to stderr only (stdout stays one document).
pub fn partial(ctx: &Context, err: CommandError) -> CommandError {
    if !ctx.out.json {
        return err;
    }
    ctx.out.warn(&err.message);
    for hint in &err.hints {
        ctx.out.warn(hint);
    }
    CommandError::silent(err.kind)
}
