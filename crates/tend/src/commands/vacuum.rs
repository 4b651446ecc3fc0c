//! `tend vacuum`: VACUUM (and ANALYZE) table by table, with progress from
//! `pg_stat_progress_vacuum`.

use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tend_ops::actions;

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
    let tables = if args.tables.is_empty() {
        block_on(session.query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(relname)
               FROM pg_stat_user_tables WHERE schemaname <> 'tend'
              ORDER BY n_dead_tup DESC, relname",
            &[],
        ))?
        .into_iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
    } else {
        block_on(actions::resolve_tables(&session, &args.tables)).map_err(CommandError::failure)?
    };
    // VACUUM of a table the role may not vacuum only warns and skips it: decide first.
    let rights = block_on(actions::may_maintain(
        &session,
        &tables,
        actions::Maintenance::Vacuum,
    ))?;
    let (denied, user, denied_list) = refused(&session, &rights)?;
    let fix = "run it as the owner (or a superuser); on PostgreSQL 17 and later `GRANT MAINTAIN ON TABLE <table> TO <role>;` also allows it";
    if !args.tables.is_empty() && !denied.is_empty() {
        return Err(CommandError::failure(format!(
            "the role `{user}` may not vacuum {denied_list}, and PostgreSQL would only skip it with a warning; nothing was vacuumed"
        ))
        .with_hint(fix));
    }
    let tables: Vec<String> = rights
        .iter()
        .filter(|r| r.allowed)
        .map(|r| r.relation.clone())
        .collect();
    let pid: i32 = block_on(session.query_one("SELECT pg_backend_pid()", &[]))?.get(0);
    let command = if args.analyze {
        "VACUUM (ANALYZE)"
    } else {
        "VACUUM"
    };
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
    let mut done = Vec::new();
    for table in &tables {
        let started = Instant::now();
        bar.set_prefix(table.clone());
        bar.set_position(0);
        let sql = format!("{command} {table}");
        block_on(async {
            let work = session.batch_execute(&sql);
            tokio::pin!(work);
            loop {
                tokio::select! {
                    result = &mut work => return result,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if let Ok(Some(p)) = actions::vacuum_progress(&watcher, pid).await {
                            if p.total > 0 {
                                bar.set_position((100 * p.scanned / p.total) as u64);
                            }
                            bar.set_message(p.phase);
                        }
                    }
                }
            }
        })?;
        ctx.out
            .step(format!("{sql}  ({:.1}s)", started.elapsed().as_secs_f64()));
        done.push(
            serde_json::json!({ "table": table, "seconds": started.elapsed().as_secs_f64() }),
        );
    }
    bar.finish_and_clear();
    let skipped: Vec<serde_json::Value> = denied
        .iter()
        .map(|r| serde_json::json!({ "table": r.relation, "owner": r.owner, "reason": "not allowed" }))
        .collect();
    ctx.out.json_value(&serde_json::json!({
        "vacuumed": done,
        "analyze": args.analyze,
        "skipped": skipped,
        "complete": denied.is_empty(),
    }));
    ctx.out.line(format!(
        "Vacuumed {}{}.",
        count(done.len(), "table", "tables"),
        if args.analyze {
            " and refreshed their statistics"
        } else {
            ""
        }
    ));
    if !denied.is_empty() {
        return Err(partial(
            ctx,
            CommandError::failure(format!(
                "skipped {}: the role `{user}` may not vacuum {denied_list}",
                count(denied.len(), "table", "tables")
            ))
            .with_hint(fix),
        ));
    }
    Ok(exit::OK)
}

/// The error of a run that did part of its work: with --json the document above already
/// holds what was skipped, so the error goes to stderr only (stdout stays one document).
/// What the role may not maintain among `rights`, the role's name, and the refused
/// relations with their owners as one list, for vacuum's and reindex's messages.
pub fn refused<'a>(
    session: &tend_pg::Session,
    rights: &'a [actions::MaintenanceRight],
) -> Result<(Vec<&'a actions::MaintenanceRight>, String, String), CommandError> {
    let denied: Vec<&actions::MaintenanceRight> = rights.iter().filter(|r| !r.allowed).collect();
    let user: String = block_on(session.query_one("SELECT current_user::text", &[]))?.get(0);
    let list = denied
        .iter()
        .map(|r| format!("{} (owner `{}`)", r.relation, r.owner))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((denied, user, list))
}

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
