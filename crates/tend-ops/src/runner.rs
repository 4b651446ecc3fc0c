//! Running checks: one session, short timeouts, read-only queries, and every check that
//! could not look reported as `unknown` with the reason.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tend_pg::ServerFacts;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::check::{Category, Check, Finding, Severity, Thresholds, render};

/// Per-check settings from `[checks."<id>"]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckOverride {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub enabled: Option<bool>,
}

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Ids or categories to run; empty means all.
    pub only: Vec<String>,
    /// Ids or categories to leave out.
    pub skip: Vec<String>,
    pub overrides: BTreeMap<String, CheckOverride>,
    /// At most 5 s: a check must never be the slow query on a busy server.
    pub statement_timeout: Duration,
    /// At most 50 ms: a check must never queue behind (or in front of) a lock.
    pub lock_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            only: Vec::new(),
            skip: Vec::new(),
            overrides: BTreeMap::new(),
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_millis(50),
        }
    }
}

impl RunOptions {
    fn selects(&self, check: &Check) -> bool {
        let matches = |pattern: &String| {
            pattern == check.id
                || pattern == check.category.as_str()
                || check
                    .id
                    .strip_prefix(pattern.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        let enabled = self
            .overrides
            .get(check.id)
            .and_then(|o| o.enabled)
            .unwrap_or(true);
        enabled
            && (self.only.is_empty() || self.only.iter().any(matches))
            && !self.skip.iter().any(matches)
    }

    /// Thresholds in force for a check.
    pub fn thresholds(&self, check: &Check) -> Thresholds {
        let over = self.overrides.get(check.id);
        Thresholds {
            warning: over.and_then(|o| o.warning).or(check.warning),
            critical: over.and_then(|o| o.critical).or(check.critical),
        }
    }
}

/// How one check went.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: &'static str,
    pub category: Category,
    /// The worst severity among its findings (`ok` with none).
    pub severity: Severity,
    pub findings: usize,
    pub millis: u64,
    /// Why it could not look, for `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: ServerFacts,
    pub results: Vec<CheckResult>,
    /// Findings worse than ok, worst first.
    pub findings: Vec<Finding>,
    pub millis: u64,
}

impl Report {
    /// The worst severity of the run, ignoring `unknown` (reported, but not a failure).
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .filter(|s| *s != Severity::Unknown)
            .max()
            .unwrap_or(Severity::Ok)
    }
}

/// Prepares a session for checks: short timeouts, read-only, a name in pg_stat_activity.
pub async fn prepare_session(
    client: &Client,
    options: &RunOptions,
) -> Result<(), tokio_postgres::Error> {
    let statement = options.statement_timeout.min(Duration::from_secs(5));
    let lock = options.lock_timeout.min(Duration::from_millis(50));
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}; SET lock_timeout = {}; \
             SET default_transaction_read_only = on; SET application_name = 'tend check'",
            statement.as_millis(),
            lock.as_millis().max(1)
        ))
        .await
}

/// Runs the selected checks of `catalog`, in order, on one session.
pub async fn run(
    client: &Client,
    catalog: &[&'static Check],
    options: &RunOptions,
) -> Result<Report, tokio_postgres::Error> {
    let started = Instant::now();
    prepare_session(client, options).await?;
    let server = ServerFacts::read(client).await?;
    let extensions: Vec<String> = client
        .query("SELECT extname::text FROM pg_extension", &[])
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let mut results = Vec::new();
    let mut findings = Vec::new();
    for check in catalog.iter().copied().filter(|c| options.selects(c)) {
        let check = crate::checks::for_major(check, server.major());
        let check_started = Instant::now();
        let thresholds = options.thresholds(check);
        let (mut found, note) = if server.major() < check.min_major {
            (
                Vec::new(),
                Some(format!(
                    "needs PostgreSQL {} or newer; the server is {}",
                    check.min_major,
                    server.major()
                )),
            )
        } else if let Some(ext) = check
            .extension
            .filter(|e| !extensions.iter().any(|x| x == e))
        {
            let note = format!(
                "the {ext} extension is not installed in this database; enable it with `shared_preload_libraries = '{ext}'` in postgresql.conf (a restart), then `CREATE EXTENSION {ext};`"
            );
            (vec![unknown(check, &note)], Some(note))
        } else {
            match run_one(client, check, thresholds).await {
                Ok(found) => (found, None),
                // Checks that compare with history find nothing to compare on a first run.
                Err(err)
                    if err.code() == Some(&SqlState::UNDEFINED_TABLE)
                        && check.sql.contains("tend.") =>
                {
                    (
                        Vec::new(),
                        Some(
                            "no check history yet: the first run with history on starts it"
                                .to_string(),
                        ),
                    )
                }
                Err(err) => {
                    let note = could_not_look(&err, &server);
                    (vec![unknown(check, &note)], Some(note))
                }
            }
        };
        let severity = found
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok);
        results.push(CheckResult {
            id: check.id,
            category: check.category,
            severity,
            findings: found.len(),
            millis: check_started.elapsed().as_millis() as u64,
            note,
        });
        findings.append(&mut found);
    }
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    Ok(Report {
        server,
        results,
        findings,
        millis: started.elapsed().as_millis() as u64,
    })
}

fn unknown(check: &'static Check, note: &str) -> Finding {
    Finding {
        check: check.id,
        category: check.category,
        severity: Severity::Unknown,
        subject: "check".to_string(),
        value: None,
        message: format!("could not check {}: {note}", check.title),
        remedy: check.remedy.to_string(),
    }
}

fn could_not_look(err: &tokio_postgres::Error, server: &ServerFacts) -> String {
    match err.code() {
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "the role `{}` may not read this; `GRANT pg_monitor TO {};` opens most checks, a few (such as pg_hba_file_rules) only a superuser may read",
            server.user, server.user
        ),
        Some(code) if *code == SqlState::QUERY_CANCELED => {
            "the query took longer than the 5 s checks may take".to_string()
        }
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => {
            "a lock it needed was held; checks never wait for locks".to_string()
        }
        _ => match err.as_db_error() {
            Some(db) => db.message().to_string(),
            None => err.to_string(),
        },
    }
}

/// Runs one check's query and judges its rows.
pub async fn run_one(
    client: &Client,
    check: &'static Check,
    thresholds: Thresholds,
) -> Result<Vec<Finding>, tokio_postgres::Error> {
    // Bind only the parameters the query uses.
    let warning = thresholds.warning;
    let critical = thresholds.critical;
    let params: Vec<&(dyn ToSql + Sync)> = if check.sql.contains("$2") {
        vec![&warning, &critical]
    } else if check.sql.contains("$1") {
        vec![&warning]
    } else {
        Vec::new()
    };
    let rows = client.query(check.sql, &params).await?;
    let mut findings = Vec::new();
    for row in rows {
        // A query must return (text, float8, text); anything else is a bug in the
        // catalog, reported as `unknown` rather than a crash.
        let subject: Option<String> = row.try_get(0)?;
        let value: Option<f64> = row.try_get(1)?;
        let detail: Option<String> = row.try_get(2)?;
        let severity = match value {
            Some(v) => thresholds.judge(check.rule, v),
            None => thresholds.judge(check.rule, f64::NAN),
        };
        if severity == Severity::Ok {
            continue;
        }
        let subject = subject.unwrap_or_default();
        findings.push(Finding {
            check: check.id,
            category: check.category,
            severity,
            message: render(
                check.finding,
                &subject,
                value,
                detail.as_deref().unwrap_or(""),
                check.unit,
            ),
            subject,
            value,
            remedy: check.remedy.to_string(),
        });
    }
    Ok(findings)
}
