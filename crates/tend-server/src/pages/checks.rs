//! `/checks`: the newest check run's findings with their remedies (from the catalog), and
//! the history of runs; `/api/checks` is the same report as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Serialize;
use tokio_postgres::Client;

use super::chart::{self, Chart, Format, Kind, Series};
use super::{Scrub, layout};
use crate::scheduler::Shared;

/// How many runs the history shows.
const HISTORY: i64 = 100;

/// What `/api/checks` answers and `/checks` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ChecksReport {
    /// The newest run and its findings; none before the first `tend check` run.
    pub newest: Option<NewestRun>,
    /// Runs, newest first (at most 100).
    pub runs: Vec<CheckRun>,
}

/// One recorded `tend check` run (`tend.check_runs`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub millis: i32,
    /// The worst severity found (`ok` when nothing was).
    pub worst: String,
    pub checks: i32,
    pub findings: i32,
    /// Findings per severity.
    pub by_severity: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewestRun {
    #[serde(flatten)]
    pub run: CheckRun,
    /// Worst first.
    pub findings: Vec<StoredFinding>,
}

/// A finding as recorded, with the catalog's title and remedy for its check.
#[derive(Debug, Clone, Serialize)]
pub struct StoredFinding {
    pub check: String,
    /// The check's title; none for a check this tend's catalog does not have.
    pub title: Option<&'static str>,
    pub severity: String,
    pub subject: String,
    pub value: Option<f64>,
    /// The value in the check's unit (`85.0%`, `3 min`).
    pub value_text: Option<String>,
    pub message: String,
    pub remedy: Option<&'static str>,
}

/// Worse is larger; `unknown` (could not look) ranks just below critical.
pub fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 5,
        "unknown" => 4,
        "warning" => 3,
        "info" => 2,
        "ok" => 1,
        _ => 0,
    }
}

/// The newest runs, newest first, each with its findings counted by severity.
pub async fn runs(client: &Client, limit: i64) -> Result<Vec<CheckRun>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, started_at, millis, worst, checks, findings
               FROM tend.check_runs ORDER BY id DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    let mut runs: Vec<CheckRun> = rows
        .iter()
        .map(|r| CheckRun {
            id: r.get(0),
            started_at: r.get(1),
            millis: r.get(2),
            worst: r.get(3),
            checks: r.get(4),
            findings: r.get(5),
            by_severity: BTreeMap::new(),
        })
        .collect();
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let counts = client
        .query(
            "SELECT run_id, severity, count(*) FROM tend.check_findings
              WHERE run_id = ANY($1) GROUP BY 1, 2",
            &[&ids],
        )
        .await?;
    for row in counts {
        let id: i64 = row.get(0);
        if let Some(run) = runs.iter_mut().find(|r| r.id == id) {
            run.by_severity.insert(row.get(1), row.get(2));
        }
    }
    Ok(runs)
}

/// The report; an empty one when nothing was recorded yet.
pub async fn read(client: &Client, scrub: &Scrub) -> Result<ChecksReport, String> {
    let runs = match runs(client, HISTORY).await {
        Ok(runs) => runs,
        Err(e) if super::not_recorded(&e) => {
            return Ok(ChecksReport {
                newest: None,
                runs: Vec::new(),
            });
        }
        Err(e) => return Err(super::db_error(e)),
    };
    let newest = match runs.first() {
        None => None,
        Some(run) => {
            let rows = client
                .query(
                    "SELECT check_id, severity, subject, value, message
                       FROM tend.check_findings WHERE run_id = $1",
                    &[&run.id],
                )
                .await
                .map_err(super::db_error)?;
            let mut findings: Vec<StoredFinding> = rows
                .iter()
                .map(|r| {
                    let check: String = r.get(0);
                    let known = tend_ops::checks::find(&check);
                    let value: Option<f64> = r.get(3);
                    StoredFinding {
                        title: known.map(|c| c.title),
                        remedy: known.map(|c| c.remedy),
                        value_text: value
                            .zip(known)
                            .map(|(v, c)| tend_ops::check::format_value(v, c.unit)),
                        check,
                        severity: r.get(1),
                        subject: scrub.text(r.get(2)),
                        value,
                        message: scrub.text(r.get(4)),
                    }
                })
                .collect();
            findings.sort_by(|a, b| {
                rank(&b.severity)
                    .cmp(&rank(&a.severity))
                    .then_with(|| a.check.cmp(&b.check))
                    .then_with(|| a.subject.cmp(&b.subject))
            });
            Some(NewestRun {
                run: run.clone(),
                findings,
            })
        }
    };
    Ok(ChecksReport { newest, runs })
}

async fn load(shared: &Shared, scrub: &Scrub) -> Result<ChecksReport, String> {
    super::timed(async {
        let session = super::session(shared).await?;
        read(&session, scrub).await
    })
    .await
}

pub async fn api(State(shared): State<Arc<Shared>>) -> Response {
    let scrub = Scrub::new(&shared);
    super::json(load(&shared, &scrub).await)
}

pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let scrub = Scrub::new(&shared);
    let now = Utc::now();
    let body = match load(&shared, &scrub).await {
        Ok(report) => render(&report, now),
        Err(e) => layout::error("the check history", &e),
    };
    super::html(layout::page("Checks", "/checks", body), &scrub)
}

/// Counts by severity, worst first: `2 critical, 1 warning`.
pub fn counts(by_severity: &BTreeMap<String, i64>) -> Markup {
    let mut counts: Vec<(&String, &i64)> = by_severity.iter().collect();
    counts.sort_by_key(|(s, _)| std::cmp::Reverse(rank(s)));
    html! {
        @if counts.is_empty() {
            span.ok { "no findings" }
        }
        @for (i, (severity, n)) in counts.iter().enumerate() {
            @if i > 0 { ", " }
            span class=(severity) { (n) " " (severity) }
        }
    }
}

fn render(report: &ChecksReport, now: DateTime<Utc>) -> Markup {
    let Some(newest) = &report.newest else {
        return html! {
            section {
                (layout::empty("Nothing recorded yet: no `tend check` run (or scheduled `check`) has stored its findings in this database."))
            }
        };
    };
    let run = &newest.run;
    // Oldest first, for the chart.
    let history: Vec<(DateTime<Utc>, f64)> = report
        .runs
        .iter()
        .rev()
        .map(|r| (r.started_at, f64::from(r.findings)))
        .collect();
    let series = [Series {
        label: "findings per run".to_string(),
        points: history,
    }];
    html! {
        section {
            h2 { "Findings of the newest run" }
            p {
                "Run " (run.id) ", " (layout::when(&run.started_at, now)) ": "
                (run.checks) " checks in " (run.millis) " ms; worst "
                strong class=(run.worst) { (run.worst) } "; " (counts(&run.by_severity)) "."
            }
            @if newest.findings.is_empty() {
                (layout::empty("No findings: every check passed."))
            } @else {
                // One block per finding, not a table: remedies are sentences, and a
                // phone has no room for them in a column.
                @for f in &newest.findings {
                    div.item {
                        p {
                            strong class=(f.severity) { (f.severity) } " "
                            code { (f.check) }
                            @if let Some(title) = f.title { " " span.muted { (title) } }
                        }
                        p {
                            (f.subject)
                            @if let Some(value) = f.value_text.clone().or_else(|| f.value.map(|v| v.to_string())) {
                                ": " strong { (value) }
                            }
                        }
                        p { (f.message) }
                        @if let Some(remedy) = f.remedy { p.muted { "Remedy: " (layout::with_code(remedy)) } }
                    }
                }
            }
        }
        section {
            h2 { "Runs" }
            (chart::render(&Chart { title: "Findings per check run", format: Format::Count, kind: Kind::Bar, series: &series }))
            div.scroll { table {
                thead { tr { th { "Run" } th { "Started" } th { "Worst" } th.n { "Checks" } th.n { "Findings" } th { "By severity" } th.n { "Took" } } }
                tbody {
                    @for r in &report.runs {
                        tr {
                            td.n { (r.id) }
                            td { (layout::when(&r.started_at, now)) }
                            td class=(r.worst) { (r.worst) }
                            td.n { (r.checks) }
                            td.n { (r.findings) }
                            td { (counts(&r.by_severity)) }
                            td.n { (r.millis) " ms" }
                        }
                    }
                }
            } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_from_the_database_are_escaped_and_worst_first_counts() {
        let run = CheckRun {
            id: 7,
            started_at: Utc::now(),
            millis: 12,
            worst: "critical".to_string(),
            checks: 3,
            findings: 2,
            by_severity: BTreeMap::from([("info".to_string(), 1), ("critical".to_string(), 1)]),
        };
        let finding = |severity: &str, subject: &str| StoredFinding {
            check: "schema.no_primary_key".to_string(),
            title: Some("a <b>title</b>"),
            severity: severity.to_string(),
            subject: subject.to_string(),
            value: None,
            value_text: None,
            message: "<img src=x onerror=alert(1)>".to_string(),
            remedy: Some("Add one."),
        };
        let report = ChecksReport {
            newest: Some(NewestRun {
                run: run.clone(),
                findings: vec![
                    finding("critical", "public.\"<script>\""),
                    finding("info", "b"),
                ],
            }),
            runs: vec![run],
        };
        let html = render(&report, Utc::now()).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("Remedy: Add one."), "{html}");
        assert!(html.contains("a &lt;b&gt;title&lt;/b&gt;"), "{html}");
        let counts = counts(&report.runs[0].by_severity).into_string();
        assert!(
            counts.find("critical").unwrap() < counts.find("info").unwrap(),
            "{counts}"
        );
    }

    #[test]
    fn no_run_yet_says_nothing_is_recorded() {
        let html = render(
            &ChecksReport {
                newest: None,
                runs: Vec::new(),
            },
            Utc::now(),
        )
        .into_string();
        assert!(html.contains("Nothing recorded yet"), "{html}");
    }
}
