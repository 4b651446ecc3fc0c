//! `/growth`: the database's size and its biggest tables over time, from the size samples
//! each check run stores (`tend.size_samples`); `/api/growth` is the same report as JSON.

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

/// The window shown, in days.
const DAYS: i32 = 90;
/// At most this many check runs are drawn: a check every 5 minutes for 90 days is 26 000
/// runs, so older ones are thinned out evenly.
const MAX_RUNS: i64 = 300;
/// Tables drawn on the chart, and listed.
const CHARTED: usize = 8;
const LISTED: usize = 20;

/// What `/api/growth` answers and `/growth` shows.
#[derive(Debug, Clone, Serialize)]
pub struct GrowthReport {
    pub days: i32,
    /// The database's size at each sampled run, oldest first.
    pub database: Vec<SizePoint>,
    /// The biggest tables at the newest sample, biggest first.
    pub tables: Vec<TableGrowth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizePoint {
    pub at: DateTime<Utc>,
    pub bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableGrowth {
    /// `schema.table`, quoted where needed.
    pub relation: String,
    pub bytes: i64,
    /// Growth over the window: the newest sample minus the oldest.
    pub change: i64,
    /// Oldest first.
    pub points: Vec<SizePoint>,
}

pub async fn read(client: &Client, scrub: &Scrub) -> Result<GrowthReport, String> {
    let rows = client
        .query(
            "WITH runs AS (
                 SELECT id, row_number() OVER (ORDER BY id DESC) AS rn, count(*) OVER () AS total
                   FROM tend.check_runs
                  WHERE started_at > now() - make_interval(days => $1)),
             picked AS (
                 SELECT id FROM runs
                  WHERE (rn - 1) % greatest(1, ceil(total / $2::float8)::bigint) = 0)
             SELECT s.relation, s.sampled_at, s.bytes
               FROM tend.size_samples s JOIN picked p ON p.id = s.run_id
              ORDER BY s.sampled_at, s.relation",
            &[&DAYS, &(MAX_RUNS as f64)],
        )
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) if super::not_recorded(&e) => Vec::new(),
        Err(e) => return Err(super::db_error(e)),
    };
    let mut database = Vec::new();
    let mut tables: BTreeMap<String, Vec<SizePoint>> = BTreeMap::new();
    for row in rows {
        let relation: String = row.get(0);
        let point = SizePoint {
            at: row.get(1),
            bytes: row.get(2),
        };
        if relation == "(database)" {
            database.push(point);
        } else {
            tables.entry(relation).or_default().push(point);
        }
    }
    let newest = database.last().map(|p| p.at);
    let mut tables: Vec<TableGrowth> = tables
        .into_iter()
        .map(|(relation, points)| TableGrowth {
            relation: scrub.text(&relation),
            bytes: points.last().map_or(0, |p| p.bytes),
            change: points.last().map_or(0, |p| p.bytes) - points.first().map_or(0, |p| p.bytes),
            points,
        })
        .collect();
    // Biggest now first; a table missing from the newest sample (dropped) goes last.
    tables.sort_by_key(|t| {
        let current = t.points.last().map(|p| p.at) == newest;
        (std::cmp::Reverse(current), std::cmp::Reverse(t.bytes))
    });
    tables.truncate(LISTED);
    Ok(GrowthReport {
        days: DAYS,
        database,
        tables,
    })
}

async fn load(shared: &Shared, scrub: &Scrub) -> Result<GrowthReport, String> {
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
    let body = match load(&shared, &scrub).await {
        Ok(report) => render(&report),
        Err(e) => layout::error("the size samples", &e),
    };
    super::html(layout::page("Growth", "/growth", body), &scrub)
}

fn points(points: &[SizePoint]) -> Vec<(DateTime<Utc>, f64)> {
    points.iter().map(|p| (p.at, p.bytes as f64)).collect()
}

fn signed_bytes(change: i64) -> String {
    if change >= 0 {
        format!("+{}", layout::bytes(change as f64))
    } else {
        format!("−{}", layout::bytes(-(change as f64)))
    }
}

fn render(report: &GrowthReport) -> Markup {
    if report.database.is_empty() {
        return html! {
            section {
                (layout::empty("Nothing recorded yet: each check run (`tend check`, or a scheduled `check`) samples the sizes of the database and its biggest tables."))
            }
        };
    }
    let database = [Series {
        label: String::new(),
        points: points(&report.database),
    }];
    let tables: Vec<Series> = report
        .tables
        .iter()
        .take(CHARTED)
        .map(|t| Series {
            label: t.relation.clone(),
            points: points(&t.points),
        })
        .collect();
    let first = report.database.first().map_or(0, |p| p.bytes);
    let last = report.database.last().map_or(0, |p| p.bytes);
    html! {
        section {
            h2 { "Database size" }
            p {
                strong { (layout::bytes(last as f64)) } " now; "
                (signed_bytes(last - first)) " over the " (report.database.len())
                " samples of the last " (report.days) " days."
            }
            (chart::render(&Chart { title: "Database size over time", format: Format::Bytes, kind: Kind::Line, series: &database }))
        }
        section {
            h2 { "Biggest tables" }
            @if tables.is_empty() {
                (layout::empty("No table was sampled."))
            } @else {
                (chart::render(&Chart { title: "Biggest tables over time (with indexes and TOAST)", format: Format::Bytes, kind: Kind::Line, series: &tables }))
                div.scroll { table {
                    thead { tr { th { "Table" } th.n { "Size" } th.n { "Change" } } }
                    tbody {
                        @for t in &report.tables {
                            tr { td { code { (t.relation) } } td.n { (layout::bytes(t.bytes as f64)) } td.n { (signed_bytes(t.change)) } }
                        }
                    }
                } }
            }
        }
    }
}
