//! `tend check`: the full catalog of checks, as a report. Exit codes follow Nagios: 0 when
//! nothing is worse than info, 1 for a warning or when a check could not look for a reason
//! that may hide a problem (no privilege, other roles' sessions hidden, a lock, a timeout),
//! 2 for a critical finding.

use clap::Args;
use tend_core::checks::{CheckEvent, CheckReport};
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
    let selection = tend_core::checks::Selection {
        only: args.only,
        skip: args.skip,
    };
    let options = tend_core::checks::run_options(&ctx.settings.checks, &selection);
    // The catalog's SQL checks, and the one the core runs beside them (the local spool).
    let every: Vec<&'static Check> = catalog
        .iter()
        .copied()
        .chain([
            &tend_core::checks::WAL_SPOOLED,
            &tend_core::checks::CLEANUP_BACKLOG,
        ])
        .collect();
    for pattern in selection.only.iter().chain(&selection.skip) {
        let known = every.iter().any(|c| {
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
        return list(ctx, &every, &options);
    }
    let target = ctx.target()?;
    let report = run_and_record(ctx, &target.info, &catalog, &selection)?;
    // Whether schema-changing remedies belong in a migration (a folder that cannot be read
    // still means the project has migrations).
    let project = super::migrate::Project::from_settings(ctx);
    let has_migrations =
        project.dir.is_dir() && project.load().map_or(true, |found| !found.is_empty());
    let status = report.status;
    let code = report.exit_code;
    ctx.out.json_value(&report);
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
        report.checks.len(),
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
    let report = tend_core::checks::catalog_report(catalog, options);
    ctx.out.json_value(&report);
    for c in &report.checks {
        let threshold = |v: Option<f64>| {
            v.map(|v| tend_ops::check::format_value(v, c.unit))
                .unwrap_or_else(|| "-".to_string())
        };
        ctx.out.line(format!(
            "{:<34} {:<12} warn {:<10} crit {:<10} {}",
            c.id,
            c.category.as_str(),
            threshold(c.warning),
            threshold(c.critical),
            c.title
        ));
    }
    ctx.out.line(format!("\n{} checks.", report.count));
    Ok(exit::OK)
}

/// Runs the checks through the core's service on a pooled handle, saying before the first
/// write that the `tend` schema is created, and warning when the history was not kept.
pub fn run_and_record(
    ctx: &Context,
    info: &tend_pg::ConnInfo,
    catalog: &[&'static Check],
    selection: &tend_core::checks::Selection,
) -> Result<CheckReport, CommandError> {
    let database = ctx.settings.database.handle(info.clone());
    let out = ctx.out;
    let report = block_on(tend_core::checks::run_and_record(
        &database,
        &ctx.settings.checks,
        catalog,
        selection,
        &|event| {
            match event {
            CheckEvent::CreatingStateSchema { holds } => out.notice(format!(
                "note: tend check keeps its history in this database: it now creates a `tend` schema ({holds}) and adds a row per run. To write nothing, set checks.history = \"off\" in tend.toml (or TEND_CHECK_HISTORY=off); `DROP SCHEMA tend CASCADE` removes it."
            )),
        }
        },
    ))?;
    if report.history.failed
        && let Some(reason) = &report.history.reason
    {
        out.warn(format!(
            "the check history was not kept: {reason}. The checks ran; set checks.history = \"off\" in tend.toml to stop keeping history."
        ));
    }
    Ok(report)
}
