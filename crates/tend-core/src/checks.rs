//! The check service: runs the catalog against a database and keeps the run in the
//! database's `tend` schema, returning one typed report that `tend check --json` prints as
//! it is and the human output renders (and, later, the daemon's schedule and pages use).

use serde::Serialize;
use tend_ops::history::{self, HistoryError};
use tend_ops::runner::CheckResult;
use tend_ops::{Check, Finding, RunOptions, Severity};

use tend_pg::Database;
use tend_pg::ServerFacts;

use crate::settings::ChecksSettings;
use crate::state::{self, Registry, SchemaState};

/// Which checks run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Ids, categories or id prefixes; empty: all.
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

/// What happens during a run that the caller may want to say as it happens.
#[derive(Debug, Clone)]
pub enum CheckEvent {
    /// The first run on this database creates the `tend` schema now; `holds` says what it
    /// will hold.
    CreatingStateSchema { holds: String },
}

/// One run of `tend check`: `--json` prints this value.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The worst finding; `unknown` when nothing is worse but some checks could not look.
    pub status: Severity,
    /// Nagios' convention: 0 nothing worse than info, 1 warning or could not look, 2 critical.
    pub exit_code: i32,
    pub server: ServerFacts,
    pub millis: u64,
    pub checks: Vec<CheckResult>,
    /// Findings worse than ok, worst first.
    pub findings: Vec<Finding>,
    pub history: HistoryOutcome,
}

/// Whether the run was kept in the `tend` schema, and if not, why.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryOutcome {
    pub kept: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// Whether this run created the schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_schema: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Not kept because something failed (privileges, a lock), not because history is off
    /// or the server is a standby: worth a warning.
    #[serde(skip)]
    pub failed: bool,
}

impl HistoryOutcome {
    fn not_kept(reason: impl Into<String>, failed: bool) -> HistoryOutcome {
        HistoryOutcome {
            kept: false,
            run_id: None,
            created_schema: None,
            reason: Some(reason.into()),
            failed,
        }
    }
}

/// Why the checks could not run at all (a check that cannot look is a finding, not this).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Connect(#[from] tend_pg::PoolError),
    #[error("the checks could not run: {}", tend_pg::error_text(.0))]
    Run(#[source] tokio_postgres::Error),
}

/// The run options of a selection with the configured thresholds.
pub fn run_options(settings: &ChecksSettings, selection: &Selection) -> RunOptions {
    RunOptions {
        only: selection.only.clone(),
        skip: selection.skip.clone(),
        overrides: settings.overrides.clone(),
        ..RunOptions::default()
    }
}

/// Runs the selected checks on `database` and, unless `checks.history` is off or the
/// server is a standby, keeps the run in its `tend` schema. A history that cannot be kept
/// (no CREATE privilege, a lock held elsewhere) is reported in the outcome, never fails
/// the run, and nothing here waits behind another session's lock.
pub async fn run_and_record(
    database: &Database,
    settings: &ChecksSettings,
    catalog: &[&'static Check],
    selection: &Selection,
    on_event: &(dyn Fn(CheckEvent) + Send + Sync),
) -> Result<CheckReport, CheckError> {
    let options = run_options(settings, selection);
    let mut report = {
        let session = database.session().await?;
        let mut report = tend_ops::runner::run(&session, catalog, &options)
            .await
            .map_err(CheckError::Run)?;
        if let Some(spool) = &settings.wal_spool
            && options.selects(&WAL_SPOOLED)
        {
            check_spool(&session, spool, &options, &mut report).await;
        }
        if options.selects(&CLEANUP_BACKLOG) {
            check_backlog(&session, &settings.cleanup, &options, &mut report).await;
        }
        report
    };
    report
        .findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    let history = keep_history(database, settings, &report, on_event).await;
    let status = report.status();
    let exit_code = match status {
        Severity::Critical => 2,
        Severity::Warning | Severity::Unknown => 1,
        _ => 0,
    };
    Ok(CheckReport {
        status,
        exit_code,
        server: report.server,
        millis: report.millis,
        checks: report.results,
        findings: report.findings,
        history,
    })
}

/// WAL waiting in `tend wal-push`'s local spool: the store has not taken it, though
/// PostgreSQL counts it archived (so `wal.archiving_failing` cannot see it). Not SQL: the
/// spool is a folder on this machine, so the check runs here, beside the catalog's.
pub static WAL_SPOOLED: Check = Check {
    id: "wal.spooled",
    category: tend_ops::Category::Replication,
    title: "WAL waiting in the local spool for the store",
    rule: tend_ops::Rule::AtLeast,
    unit: tend_ops::Unit::Percent,
    warning: Some(0.0),
    critical: Some(80.0),
    sql: "",
    finding: "{detail}",
    remedy: "The store did not take these files: see `tend pitr status` and the server's log for why, and bring the store back; the next `tend wal-push` that reaches it sends them in order. Past pitr.spool_max archiving fails and pg_wal grows.",
    min_major: 0,
    extension: None,
    reads_sessions: false,
};

/// Rows past their retention rule that `tend cleanup` has not purged yet: a cleanup that
/// falls behind, fails, or was never scheduled (GitLab's loose foreign keys fell behind
/// for weeks unseen). The value is how long ago the oldest of them passed its rule.
pub static CLEANUP_BACKLOG: Check = Check {
    id: "cleanup.backlog",
    category: tend_ops::Category::Tables,
    title: "Rows past their retention rule, not purged yet",
    rule: tend_ops::Rule::AtLeast,
    unit: tend_ops::Unit::Seconds,
    warning: Some(86_400.0),
    critical: Some(604_800.0),
    sql: "",
    finding: "{detail}",
    remedy: "Run `tend cleanup` (see `tend cleanup --dry-run`), or schedule it: a `[[schedule]]` entry with task = \"cleanup\" under `tend serve`.",
    min_major: 0,
    extension: None,
    reads_sessions: false,
};

/// The checks the core runs beside the catalog's SQL, by id.
pub fn core_check(id: &str) -> Option<&'static Check> {
    [&WAL_SPOOLED, &CLEANUP_BACKLOG]
        .into_iter()
        .find(|c| c.id == id)
}

async fn check_backlog(
    session: &tend_pg::Session,
    settings: &crate::settings::CleanupSettings,
    options: &RunOptions,
    report: &mut tend_ops::Report,
) {
    let started = std::time::Instant::now();
    let mut result = CheckResult {
        id: CLEANUP_BACKLOG.id,
        category: CLEANUP_BACKLOG.category,
        severity: Severity::Ok,
        findings: 0,
        millis: 0,
        note: None,
        unknown: None,
    };
    match crate::cleanup::backlog(session, settings).await {
        Err(e) => {
            result.severity = Severity::Unknown;
            result.note = Some(e.to_string());
        }
        Ok(backlog) => {
            let thresholds = options.thresholds(&CLEANUP_BACKLOG);
            for rule in backlog.iter().filter(|b| b.rows > 0) {
                // A rule without an age (only `where`) has rows due at once: worth
                // knowing, not a warning.
                let severity = match rule.oldest_overdue_seconds {
                    None => Severity::Info,
                    Some(age) if thresholds.critical.is_some_and(|c| age >= c) => {
                        Severity::Critical
                    }
                    Some(age) if thresholds.warning.is_some_and(|w| age >= w) => Severity::Warning,
                    Some(_) => Severity::Info,
                };
                result.severity = result.severity.max(severity);
                result.findings += 1;
                report.findings.push(Finding {
                    check: CLEANUP_BACKLOG.id,
                    category: CLEANUP_BACKLOG.category,
                    severity,
                    subject: format!("{} ({})", rule.table, rule.rule),
                    value: rule.oldest_overdue_seconds,
                    message: match rule.oldest_overdue_seconds {
                        Some(age) => format!(
                            "{} rows past rule `{}`, the oldest {:.1} days past it",
                            rule.rows,
                            rule.rule,
                            age / 86_400.0
                        ),
                        None => format!("{} rows match rule `{}`", rule.rows, rule.rule),
                    },
                    remedy: CLEANUP_BACKLOG.remedy.to_string(),
                });
            }
        }
    }
    result.millis = started.elapsed().as_millis() as u64;
    report.results.push(result);
}

async fn check_spool(
    session: &tend_pg::Session,
    settings: &crate::settings::SpoolSettings,
    options: &RunOptions,
    report: &mut tend_ops::Report,
) {
    let started = std::time::Instant::now();
    let system = tend_pg::DatabaseIdentity::read(session)
        .await
        .ok()
        .and_then(|identity| identity.server.system_identifier);
    let mut result = CheckResult {
        id: WAL_SPOOLED.id,
        category: WAL_SPOOLED.category,
        severity: Severity::Ok,
        findings: 0,
        millis: 0,
        note: None,
        unknown: None,
    };
    let state = system.map(|system| crate::pitr::spool_of(settings, system).state());
    match state {
        None => result.note = Some("could not read the server's system identifier".into()),
        Some(Err(e)) => {
            result.severity = Severity::Unknown;
            result.note = Some(e.to_string());
        }
        Some(Ok(state)) if state.files > 0 => {
            let percent = state.bytes as f64 * 100.0 / state.max_bytes.max(1) as f64;
            let thresholds = options.thresholds(&WAL_SPOOLED);
            let severity = if thresholds.critical.is_some_and(|c| percent >= c) {
                Severity::Critical
            } else {
                Severity::Warning
            };
            result.severity = severity;
            result.findings = 1;
            report.findings.push(Finding {
                check: WAL_SPOOLED.id,
                category: WAL_SPOOLED.category,
                severity,
                subject: state.dir.display().to_string(),
                value: Some(percent),
                message: crate::pitr::spool_problem(&state).unwrap_or_default(),
                remedy: WAL_SPOOLED.remedy.to_string(),
            });
        }
        Some(Ok(_)) => {}
    }
    result.millis = started.elapsed().as_millis() as u64;
    report.results.push(result);
}

async fn keep_history(
    database: &Database,
    settings: &ChecksSettings,
    report: &tend_ops::Report,
    on_event: &(dyn Fn(CheckEvent) + Send + Sync),
) -> HistoryOutcome {
    if !settings.history {
        return HistoryOutcome::not_kept("checks.history is off", false);
    }
    if report.server.in_recovery {
        return HistoryOutcome::not_kept("the server is a standby", false);
    }
    let result: Result<(i64, bool), String> = async {
        let session = database.session().await.map_err(|e| e.to_string())?;
        let db = |e: tokio_postgres::Error| HistoryError::from(e).to_string();
        history::prepare_session(&session).await.map_err(db)?;
        let registry = Registry::builtin();
        let schema_state = state::state(&registry, &session).await.map_err(db)?;
        if schema_state == SchemaState::Missing {
            let (allowed, user, name) = state::may_create(&session).await.map_err(db)?;
            if !allowed {
                return Err(format!(
                    "the role {} may not create the `tend` schema that keeps it (it needs CREATE on the database): `GRANT CREATE ON DATABASE {} TO {};`, or set checks.history = \"off\"",
                    tend_pg::quote_ident(&user),
                    tend_pg::quote_ident(&name),
                    tend_pg::quote_ident(&user)
                ));
            }
            on_event(CheckEvent::CreatingStateSchema {
                holds: registry.holds(),
            });
        }
        if schema_state != SchemaState::Current {
            state::ensure(&registry, database.info(), database.options())
                .await
                .map_err(|e| e.to_string())?;
        }
        history::record(&session, report, env!("CARGO_PKG_VERSION"))
            .await
            .map(|id| (id, schema_state == SchemaState::Missing))
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok((run_id, created)) => HistoryOutcome {
            kept: true,
            run_id: Some(run_id),
            created_schema: Some(created),
            reason: None,
            failed: false,
        },
        Err(reason) => HistoryOutcome::not_kept(reason, true),
    }
}

/// The catalog as `tend check --list` shows it: each selected check with the thresholds in
/// force (configured over defaults) and its SQL.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogReport {
    pub count: usize,
    pub checks: Vec<CatalogEntry>,
}

/// One check of the catalog, with the thresholds in force beside its defaults.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub id: &'static str,
    pub category: tend_ops::Category,
    pub title: &'static str,
    pub rule: tend_ops::Rule,
    pub unit: tend_ops::Unit,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub default_warning: Option<f64>,
    pub default_critical: Option<f64>,
    pub remedy: &'static str,
    pub min_major: u32,
    pub extension: Option<&'static str>,
    pub sql: &'static str,
}

/// The checks of `catalog` that `options.only` selects (an id, a category, or an id prefix;
/// all when empty), as `tend check --list` reports them.
pub fn catalog_report(catalog: &[&'static Check], options: &RunOptions) -> CatalogReport {
    let checks: Vec<CatalogEntry> = catalog
        .iter()
        .filter(|c| {
            options.only.is_empty()
                || options.only.iter().any(|p| {
                    c.id == p || c.category.as_str() == p || c.id.starts_with(&format!("{p}."))
                })
        })
        .map(|c| {
            let t = options.thresholds(c);
            CatalogEntry {
                id: c.id,
                category: c.category,
                title: c.title,
                rule: c.rule,
                unit: c.unit,
                warning: t.warning,
                critical: t.critical,
                default_warning: c.warning,
                default_critical: c.critical,
                remedy: c.remedy,
                min_major: c.min_major,
                extension: c.extension,
                sql: c.query(),
            }
        })
        .collect();
    CatalogReport {
        count: checks.len(),
        checks,
    }
}
