//! `tend check`: the full catalog of checks, as a report. Exit codes follow Nagios: 0 when
//! nothing is worse than info, 1 for a warning or when a check could not look for a reason
//! that may hide a problem (no privilege, other roles' sessions hidden, a lock, a timeout),
//! 2 for a critical finding.

use clap::Args;
use tend_ops::{Check, RunOptions, Severity, checks};

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the catalog (ids, categories, thresholds; with --json also the SQL) and run nothing.
    #[arg(long)]
    pub list: bool,
    /// Run only these checks or categories (comma-separated ids, categories or prefixes).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub only: Vec<String>,
    /// Leave out these checks or categories.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub skip: Vec<String>,
}

pub fn run(args: CheckArgs, ctx: &Context) -> Result<i32, CommandError> {
    let catalog = checks::catalog();
    let options = RunOptions {
        only: args.only.clone(),
        skip: args.skip.clone(),
        overrides: ctx.settings.checks.overrides.clone(),
        ..RunOptions::default()
    };
    for pattern in args.only.iter().chain(&args.skip) {
        let known = catalog.iter().any(|c| {
            c.id == pattern
                || c.category.as_str() == pattern
                || c.id.starts_with(&format!("{pattern}."))
        });
        if !known {
            return Err(CommandError::new(
                crate::command_error::ErrorKind::Config,
                format!("there is no check or category `{pattern}`"),
            )
            .with_hint("`tend check --list` lists them"));
        }
    }
    if args.list {
        return list(ctx, &catalog, &options);
    }
    let target = ctx.target()?;
    let session = ctx.connect(&target.info)?;
    let report = block_on(tend_ops::runner::run(&session, &catalog, &options))?;
    let history = keep_history(ctx, &target.info, &report);
    // Whether schema-changing remedies belong in a migration (a folder that cannot be read
    // still means the project has migrations).
    let project = super::migrate::Project::from_settings(ctx);
    let has_migrations =
        project.dir.is_dir() && project.load().map_or(true, |found| !found.is_empty());
    let status = report.status();
    let code = match status {
        Severity::Critical => 2,
        Severity::Warning | Severity::Unknown => 1,
        _ => exit::OK,
    };
    ctx.out.json_value(&serde_json::json!({
        "status": status,
        "exit_code": code,
        "server": report.server,
        "millis": report.millis,
        "checks": report.results,
        "findings": report.findings,
        "history": history,
    }));
    for finding in &report.findings {
        let mark = match finding.severity {
            Severity::Critical => ctx.out.paint("CRIT", "31;1"),
            Severity::Warning => ctx.out.paint("WARN", "33"),
            Severity::Info => ctx.out.paint("info", "34"),
            Severity::Unknown => ctx.out.paint("????", "35"),
            Severity::Ok => ctx.out.paint("ok  ", "32"),
        };
        ctx.out
            .line(format!("{mark} {:<34} {}", finding.check, finding.message));
        if matches!(finding.severity, Severity::Warning | Severity::Critical) {
            ctx.out
                .line(format!("     {:<34} fix: {}", "", finding.remedy));
            if has_migrations && checks::REMEDY_CHANGES_SCHEMA.contains(&finding.check) {
                ctx.out.line(format!(
                    "     {:<34} this project's schema changes through migrations: write the change as one (`tend optimize` writes index changes as a migration), or `tend schema verify` reports it as drift",
                    ""
                ));
            }
        }
    }
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    ctx.out.line(format!(
        "\n{} checks in {} ms on {}: {} critical, {} warning, {} info, {} could not look.",
        report.results.len(),
        report.millis,
        target.info.redacted(),
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info),
        count(Severity::Unknown),
    ));
    if status == Severity::Unknown {
        ctx.out.line(
            "Exit 1: nothing was found, but some checks could not look (????), so this run cannot vouch for what they cover. Grant what each one names, or leave it out (--skip, or enabled = false under [checks.\"ID\"])."
        );
    }
    Ok(code)
}

fn list(
    ctx: &Context,
    catalog: &[&'static Check],
    options: &RunOptions,
) -> Result<i32, CommandError> {
    let selected: Vec<&&Check> = catalog
        .iter()
        .filter(|c| {
            options.only.is_empty()
                || options.only.iter().any(|p| {
                    c.id == p || c.category.as_str() == p || c.id.starts_with(&format!("{p}."))
                })
        })
        .collect();
    ctx.out.json_value(&serde_json::json!({
        "count": selected.len(),
        "checks": selected.iter().map(|c| {
            let t = options.thresholds(c);
            serde_json::json!({
                "id": c.id,
                "category": c.category,
                "title": c.title,
                "rule": c.rule,
                "unit": c.unit,
                "warning": t.warning,
                "critical": t.critical,
                "default_warning": c.warning,
                "default_critical": c.critical,
                "remedy": c.remedy,
                "min_major": c.min_major,
                "extension": c.extension,
                "sql": c.query(),
            })
        }).collect::<Vec<_>>(),
    }));
    for c in &selected {
        let t = options.thresholds(c);
        let threshold = |v: Option<f64>| {
            v.map(|v| tend_ops::check::format_value(v, c.unit))
                .unwrap_or_else(|| "-".to_string())
        };
        ctx.out.line(format!(
            "{:<34} {:<12} warn {:<10} crit {:<10} {}",
            c.id,
            c.category.as_str(),
            threshold(t.warning),
            threshold(t.critical),
            c.title
        ));
    }
    ctx.out.line(format!("\n{} checks.", selected.len()));
    Ok(exit::OK)
}

/// Stores the run in the database's `tend` schema (created by tend's own migrations), unless
/// history is off or the server is a standby. A failure is a warning, never the check's;
/// nothing here waits behind another session's lock (a held lock skips the write). Before
/// the schema is first created, says so on stderr, with how to turn it off.
pub fn keep_history(
    ctx: &Context,
    info: &tend_pg::ConnInfo,
    report: &tend_ops::Report,
) -> serde_json::Value {
    use tend_core::state::{self, Registry, SchemaState};
    use tend_ops::history::{self, HistoryError};

    if !ctx.settings.checks.history {
        return serde_json::json!({ "kept": false, "reason": "checks.history is off" });
    }
    if report.server.in_recovery {
        return serde_json::json!({ "kept": false, "reason": "the server is a standby" });
    }
    let connect = ctx.settings.connect_options();
    let result = block_on(async {
        let session = tend_pg::connect(info, &connect)
            .await
            .map_err(|e| e.to_string())?;
        let db = |e: tokio_postgres::Error| HistoryError::from(e).to_string();
        history::prepare_session(&session).await.map_err(db)?;
        let registry = Registry::builtin();
        let schema_state = state::state(&registry, &session).await.map_err(db)?;
        if schema_state == SchemaState::Missing {
            let (allowed, user, database) = state::may_create(&session).await.map_err(db)?;
            if !allowed {
                return Err(format!(
                    "the role {} may not create the `tend` schema that keeps it (it needs CREATE on the database): `GRANT CREATE ON DATABASE {} TO {};`, or set checks.history = \"off\"",
                    tend_pg::quote_ident(&user),
                    tend_pg::quote_ident(&database),
                    tend_pg::quote_ident(&user)
                ));
            }
            ctx.out.notice(format!(
                "note: tend check keeps its history in this database: it now creates a `tend` schema ({}) and adds a row per run. To write nothing, set checks.history = \"off\" in tend.toml (or TEND_CHECK_HISTORY=off); `DROP SCHEMA tend CASCADE` removes it.",
                registry.holds()
            ));
        }
        if schema_state != SchemaState::Current {
            state::ensure(&registry, info, &connect)
                .await
                .map_err(|e| e.to_string())?;
        }
        history::record(&session, report, env!("CARGO_PKG_VERSION"))
            .await
            .map(|id| (id, schema_state == SchemaState::Missing))
            .map_err(|e| e.to_string())
    });
    match result {
        Ok((run_id, created)) => {
            serde_json::json!({ "kept": true, "run_id": run_id, "created_schema": created })
        }
        Err(reason) => {
            ctx.out.warn(format!(
                "the check history was not kept: {reason}. The checks ran; set checks.history = \"off\" in tend.toml to stop keeping history."
            ));
            serde_json::json!({ "kept": false, "reason": reason })
        }
    }
}
