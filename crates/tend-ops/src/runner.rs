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
    /// Whether the selection (`only`, `skip`, and `enabled` overrides) includes `check`.
    pub fn selects(&self, check: &Check) -> bool {
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
    /// Why it could not look, for `unknown` (or why it found nothing to compare).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What kept it from looking, when it could not (wholly or in part).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Blind>,
}

/// What kept a check from looking. All but [`Blind::NotInstalled`] may hide a problem a
/// more privileged or luckier run would have found, so they count in [`Report::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blind {
    /// An extension it needs is not installed: the check does not apply to this database.
    NotInstalled,
    /// The role may not read what the check reads.
    NoPrivilege,
    /// Sessions of other roles (client sessions, autovacuum workers, WAL senders) are
    /// hidden from the role (no pg_read_all_stats).
    HiddenSessions,
    /// A lock it needed was held by another session (checks never wait).
    Locked,
    /// Its query ran out of time.
    Timeout,
    /// Any other error.
    Failed,
}

impl Blind {
    /// Whether a check blind this way might have found something.
    pub fn may_hide(self) -> bool {
        self != Blind::NotInstalled
    }
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
    /// The worst severity among the findings, leaving out `unknown`.
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .filter(|s| *s != Severity::Unknown)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// The run's status: critical or warning when a finding is; otherwise `unknown` when a
    /// check could not look for a reason that may hide a problem (no privilege, sessions
    /// of other roles hidden, a lock, a timeout, an error), so a blind run never passes for
    /// a clean one; otherwise ok or info. An extension that is not installed does not count.
    pub fn status(&self) -> Severity {
        let worst = self.worst();
        if worst >= Severity::Warning {
            return worst;
        }
        if self
            .results
            .iter()
            .any(|r| r.unknown.is_some_and(Blind::may_hide))
        {
            Severity::Unknown
        } else {
            worst
        }
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
    // Sessions of other roles whose state PostgreSQL hides from this role.
    let hidden_sessions: i64 = client
        .query_one(
            "SELECT CASE WHEN pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN 0
                         ELSE (SELECT count(*) FROM pg_stat_activity
                                WHERE query = '<insufficient privilege>'
                                  AND (datname IS NOT NULL
                                       OR pid IN (SELECT pid FROM pg_stat_replication)))
                    END",
            &[],
        )
        .await?
        .get(0);
    let mut results = Vec::new();
    let mut findings = Vec::new();
    for check in catalog.iter().copied().filter(|c| options.selects(c)) {
        let check = crate::checks::for_major(check, server.major());
        let check_started = Instant::now();
        let thresholds = options.thresholds(check);
        let (mut found, note, blind) = if server.major() < check.min_major {
            (
                Vec::new(),
                Some(format!(
                    "needs PostgreSQL {} or newer; the server is {}",
                    check.min_major,
                    server.major()
                )),
                None,
            )
        } else if let Some(ext) = check
            .extension
            .filter(|e| !extensions.iter().any(|x| x == e))
        {
            let note = format!(
                "the {ext} extension is not installed in this database; enable it with `shared_preload_libraries = '{ext}'` in postgresql.conf (a restart), then `CREATE EXTENSION {ext};`"
            );
            (
                vec![unknown(check, &note)],
                Some(note),
                Some(Blind::NotInstalled),
            )
        } else {
            match run_one(client, check, thresholds).await {
                // What it saw is real; what it could not see is said.
                Ok(mut found) if check.reads_sessions && hidden_sessions > 0 => {
                    let user = tend_pg::quote_ident(&server.user);
                    let note = format!(
                        "{hidden_sessions} sessions of other roles are hidden from {user} (PostgreSQL shows their state, times and queries only to members of pg_read_all_stats); `GRANT pg_read_all_stats TO {user};` (or pg_monitor) lets tend see them"
                    );
                    found.push(unknown(check, &note));
                    (found, Some(note), Some(Blind::HiddenSessions))
                }
                Ok(found) => (found, None, None),
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
                        None,
                    )
                }
                Err(err) => {
                    let (blind, note) = could_not_look(&err, &server);
                    (vec![unknown(check, &note)], Some(note), Some(blind))
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
            unknown: blind,
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

fn could_not_look(err: &tokio_postgres::Error, server: &ServerFacts) -> (Blind, String) {
    match err.code() {
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => (
            Blind::NoPrivilege,
            format!(
                "the role `{}` may not read this ({}); `GRANT pg_monitor TO {};` opens most checks, a few (such as pg_hba_file_rules) only a superuser may read",
                server.user,
                tend_pg::error_text(err),
                tend_pg::quote_ident(&server.user)
            ),
        ),
        Some(code) if *code == SqlState::QUERY_CANCELED => (
            Blind::Timeout,
            "the query took longer than the 5 s checks may take".to_string(),
        ),
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => (
            Blind::Locked,
            "a lock it needed was held by another session, and checks never wait for locks (locks.exclusive_held and `tend locks` name the holder)".to_string(),
        ),
        _ => (Blind::Failed, tend_pg::error_text(err)),
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
