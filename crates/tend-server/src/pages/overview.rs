//! `/`: is the database reachable and does this instance lead, the last backup, the next
//! runs, the newest check run's findings, and what alerts fire. Each part is read on its
//! own, so one that fails shows its error and the others still show. `/api/overview` is
//! the same report as JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Serialize;
use tend_pg::PooledSession;

use super::checks::CheckRun;
use super::{Scrub, layout};
use crate::alerts::AlertsReport;
use crate::http::next_times;
use crate::scheduler::{Role, Shared};

/// A part of the page: read, or why not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part<T> {
    Ok(T),
    Error(String),
}

impl<T> From<Result<T, String>> for Part<T> {
    fn from(result: Result<T, String>) -> Self {
        match result {
            Ok(value) => Part::Ok(value),
            Err(e) => Part::Error(e),
        }
    }
}

/// What `/api/overview` answers and `/` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The target database, its password masked.
    pub database: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
    pub role: Role,
    pub instance: String,
    /// None before any backup.
    pub last_backup: Part<Option<LastBackup>>,
    /// The schedule's next runs, soonest first.
    pub next_runs: Vec<NextRun>,
    /// The newest check run, its findings counted by severity.
    pub checks: Part<Option<CheckRun>>,
    pub alerts: Part<AlertsReport>,
}

/// The newest backup that ended: a scheduled run when there is one, else the store's
/// newest.
#[derive(Debug, Clone, Serialize)]
pub struct LastBackup {
    /// `schedule` (tend.schedule_runs) or `store` (the newest complete backup).
    pub source: &'static str,
    pub outcome: String,
    pub at: DateTime<Utc>,
    pub summary: Option<String>,
    pub error: Option<String>,
    /// The newest successful one, for its age.
    pub last_success: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextRun {
    pub entry: String,
    pub task: String,
    pub at: DateTime<Utc>,
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Starting => "starting",
        Role::Standby => "standby",
        Role::Leader => "leader",
        Role::Unreachable => "unreachable",
    }
}

async fn last_backup(
    shared: &Shared,
    session: &PooledSession,
    scrub: &Scrub,
) -> Result<Option<LastBackup>, String> {
    let last = session
        .query_opt(
            "SELECT outcome, coalesce(finished_at, started_at), summary, error,
                    (SELECT max(finished_at) FROM tend.schedule_runs
                      WHERE task = 'backup' AND outcome = 'succeeded')
               FROM tend.schedule_runs
              WHERE task = 'backup'
                AND outcome IN ('succeeded', 'failed', 'cancelled', 'abandoned')
              ORDER BY started_at DESC, id DESC LIMIT 1",
            &[],
        )
        .await;
    match last {
        Ok(Some(row)) => {
            return Ok(Some(LastBackup {
                source: "schedule",
                outcome: row.get(0),
                at: row.get(1),
                summary: row.get::<_, Option<String>>(2).map(|s| scrub.text(&s)),
                error: row.get::<_, Option<String>>(3).map(|s| scrub.text(&s)),
                last_success: row.get(4),
            }));
        }
        Ok(None) => {}
        Err(e) if super::not_recorded(&e) => {}
        Err(e) => return Err(super::db_error(e)),
    }
    // No scheduled backup ran yet: the store may hold backups taken by hand.
    let list = super::backups::read(shared, scrub).await?;
    Ok(list.backups.last().and_then(|b| {
        let at = DateTime::parse_from_rfc3339(&b.manifest.finished_at)
            .ok()?
            .with_timezone(&Utc);
        Some(LastBackup {
            source: "store",
            outcome: "succeeded".to_string(),
            at,
            summary: Some(format!(
                "backup {} of {}: {} stored",
                b.manifest.id,
                b.manifest.database,
                layout::bytes(b.manifest.stored_bytes as f64)
            )),
            error: None,
            last_success: Some(at),
        })
    }))
}

async fn newest_check(session: &PooledSession) -> Result<Option<CheckRun>, String> {
    match super::checks::runs(session, 1).await {
        Ok(mut runs) => Ok(runs.pop()),
        Err(e) if super::not_recorded(&e) => Ok(None),
        Err(e) => Err(super::db_error(e)),
    }
}

async fn alerts(
    shared: &Shared,
    session: &PooledSession,
    scrub: &Scrub,
) -> Result<AlertsReport, String> {
    let mut report = match shared.alerting.report(session).await {
        Ok(report) => report,
        Err(e) if super::not_recorded(&e) => AlertsReport {
            firing: Vec::new(),
            channels: shared.alerting.channel_status(),
        },
        Err(e) => return Err(super::db_error(e)),
    };
    for alert in &mut report.firing {
        scrub.string(&mut alert.summary);
    }
    for channel in &mut report.channels {
        scrub.option(&mut channel.last_error);
    }
    Ok(report)
}

pub async fn read(shared: &Shared, scrub: &Scrub) -> Overview {
    let now = Utc::now();
    let mut next_runs: Vec<NextRun> = shared
        .tasks
        .settings
        .serve
        .schedule
        .entries
        .iter()
        .flat_map(|entry| {
            next_times(entry, now, 1).into_iter().map(|at| NextRun {
                entry: entry.name.clone(),
                task: entry.task.to_string(),
                at,
            })
        })
        .collect();
    next_runs.sort_by_key(|n| n.at);
    let database = scrub.text(&shared.tasks.database.info().redacted().to_string());
    let role = *shared.role.lock();
    let instance = shared.instance.clone();
    let session = super::session(shared).await;
    let session = match session {
        Ok(session) => session,
        Err(e) => {
            let e = scrub.text(&e);
            return Overview {
                database,
                reachable: false,
                unreachable: Some(e.clone()),
                role,
                instance,
                last_backup: Part::Error(e.clone()),
                next_runs,
                checks: Part::Error(e.clone()),
                alerts: Part::Error(e),
            };
        }
    };
    let last_backup = super::timed(last_backup(shared, &session, scrub))
        .await
        .into();
    let checks = super::timed(newest_check(&session)).await.into();
    let alerts = super::timed(alerts(shared, &session, scrub)).await.into();
    Overview {
        database,
        reachable: true,
        unreachable: None,
        role,
        instance,
        last_backup,
        next_runs,
        checks,
        alerts,
    }
}

pub async fn api(State(shared): State<Arc<Shared>>) -> Response {
    let scrub = Scrub::new(&shared);
    super::json(Ok::<_, String>(read(&shared, &scrub).await))
}

pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let scrub = Scrub::new(&shared);
    let overview = read(&shared, &scrub).await;
    super::html(
        layout::page("Overview", "/", render(&overview, Utc::now())),
        &scrub,
    )
}

fn render(o: &Overview, now: DateTime<Utc>) -> Markup {
    let role = role_name(o.role);
    html! {
        section {
            dl {
                dt { "Database" } dd {
                    code { (o.database) } " "
                    @if o.reachable { span.ok { "reachable" } } @else { span.failed { "unreachable" } }
                    @if let Some(why) = &o.unreachable { br; span.muted { (why) } }
                }
                dt { "This instance" } dd { code { (o.instance) } " " span class=(role) { (role) } }
            }
        }
        section {
            h2 { a href="/backups" { "Last backup" } }
            @match &o.last_backup {
                Part::Error(e) => p.error { (e) },
                Part::Ok(None) => (layout::empty("No backup yet.")),
                Part::Ok(Some(b)) => {
                    p {
                        span class=(b.outcome) { (b.outcome) } " " (layout::when(&b.at, now))
                        @if b.source == "store" { span.muted { " (from the store: no scheduled backup has run)" } }
                    }
                    @if let Some(s) = &b.summary { p { (s) } }
                    @if let Some(e) = &b.error { p.error { (e) } }
                    @match b.last_success {
                        Some(at) => p { "Newest successful backup: " (layout::relative(&at, now)) "." },
                        None => p.error { "No backup has succeeded yet." },
                    }
                }
            }
        }
        section {
            h2 { a href="/schedules" { "Next runs" } }
            @if o.next_runs.is_empty() {
                (layout::empty("Nothing scheduled by time."))
            } @else {
                div.scroll { table {
                    thead { tr { th { "Entry" } th { "Task" } th { "At" } } }
                    tbody {
                        @for n in &o.next_runs {
                            tr { td { (n.entry) } td { code { (n.task) } } td { (layout::when(&n.at, now)) } }
                        }
                    }
                } }
            }
        }
        section {
            h2 { a href="/checks" { "Findings" } }
            @match &o.checks {
                Part::Error(e) => p.error { (e) },
                Part::Ok(None) => (layout::empty("Nothing recorded yet: no check run stored its findings.")),
                Part::Ok(Some(run)) => p {
                    "Newest check run " (layout::when(&run.started_at, now)) ": worst "
                    strong class=(run.worst) { (run.worst) } "; " (super::checks::counts(&run.by_severity)) "."
                },
            }
        }
        section {
            h2 { "Alerts" }
            @match &o.alerts {
                Part::Error(e) => p.error { (e) },
                Part::Ok(report) => {
                    @if report.firing.is_empty() {
                        p.ok { "No alert fires." }
                    } @else {
                        div.scroll { table {
                            thead { tr { th { "Alert" } th { "Severity" } th { "Since" } th { "Summary" } } }
                            tbody {
                                @for a in &report.firing {
                                    tr { td { code { (a.alert) } } td class=(a.severity) { (a.severity) } td { (layout::when(&a.since, now)) } td { (a.summary) } }
                                }
                            }
                        } }
                    }
                    @for c in &report.channels {
                        p.muted {
                            "Channel " (c.channel) ": " (c.sent) " sent, " (c.pending) " pending, " (c.failed_attempts) " failed attempts"
                            @if let Some(e) = &c.last_error { "; last error: " span.error { (e) } }
                        }
                    }
                }
            }
        }
    }
}
