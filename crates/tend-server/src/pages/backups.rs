//! `/backups`: the store's backups (sizes, durations, verification, the restore command for
//! each), a chart of duration and stored size over time, and the recorded verification
//! and drill runs. `/api/backups` answers the same `BackupList` as `tend backup list
//! --json`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use tend_backup::ops::Listed;
use tend_core::backup::BackupList;
use tend_core::schedule::Task;

use super::chart::{self, Chart, Format, Kind, Series};
use super::{Scrub, layout};
use crate::runs::{self, RunRecord};
use crate::scheduler::Shared;

/// How long the store's catalog is reused: listing it reads every manifest (a second or
/// more for a thousand backups in a bucket), and it changes only when a backup, a prune or
/// a verification ends, which clears it on this instance ([`Catalog::clear`]).
const CATALOG_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The store's catalog as last read, shared by the pages and the API.
#[derive(Default)]
pub struct Catalog {
    read: tokio::sync::Mutex<Option<(std::time::Instant, BackupList)>>,
}

impl Catalog {
    /// Forgets the catalog: the next page reads the store again.
    pub async fn clear(&self) {
        *self.read.lock().await = None;
    }
}

/// The store's catalog (every manifest and verification record in it), read at most once
/// a minute; concurrent pages wait for one read.
pub async fn read(shared: &Shared, scrub: &Scrub) -> Result<BackupList, String> {
    let mut cached = shared.catalog.read.lock().await;
    if let Some((at, list)) = cached.as_ref()
        && at.elapsed() < CATALOG_FOR
    {
        return Ok(list.clone());
    }
    let store = tend_backup::Store::open(&shared.tasks.settings.backup.store)
        .map_err(|e| scrub.text(&e.to_string()))?;
    let mut list = tend_core::backup::list(&store)
        .await
        .map_err(|e| scrub.text(&e.to_string()))?;
    scrub.string(&mut list.store);
    for listed in &mut list.backups {
        if let Some(v) = &mut listed.verification {
            scrub.string(&mut v.message);
        }
    }
    for (_, why) in &mut list.unusable {
        scrub.string(why);
    }
    *cached = Some((std::time::Instant::now(), list.clone()));
    Ok(list)
}

/// The newest recorded runs of the schedule's `backup verify` entries (with or without
/// the restore drill).
async fn verify_runs(shared: &Shared, scrub: &Scrub) -> Result<Vec<RunRecord>, String> {
    let entries: Vec<&str> = shared
        .tasks
        .settings
        .serve
        .schedule
        .entries
        .iter()
        .filter(|e| matches!(e.task, Task::BackupVerify { .. }))
        .map(|e| e.name.as_str())
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let session = super::session(shared).await?;
    let mut list = Vec::new();
    for entry in entries {
        match runs::recent(&session, Some(entry), 10).await {
            Ok(runs) => list.extend(runs),
            Err(e) if super::not_recorded(&e) => return Ok(Vec::new()),
            Err(e) => return Err(super::db_error(e)),
        }
    }
    list.retain(|r| r.outcome != "skipped");
    list.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    list.truncate(10);
    for run in &mut list {
        scrub.option(&mut run.summary);
        scrub.option(&mut run.error);
    }
    Ok(list)
}

pub async fn api(State(shared): State<Arc<Shared>>) -> Response {
    let scrub = Scrub::new(&shared);
    super::json(super::timed(read(&shared, &scrub)).await)
}

/// Backups listed on the page unless `?all=1` (the charts and the API have them all): a
/// thousand blocks would weigh half a megabyte on a phone.
const SHOWN: usize = 100;

#[derive(serde::Deserialize)]
pub struct PageQuery {
    all: Option<String>,
}

pub async fn page(
    State(shared): State<Arc<Shared>>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Response {
    let shown = if query.all.is_some() {
        usize::MAX
    } else {
        SHOWN
    };
    let scrub = Scrub::new(&shared);
    let now = Utc::now();
    let (list, verifies) = tokio::join!(
        super::timed(read(&shared, &scrub)),
        super::timed(verify_runs(&shared, &scrub))
    );
    let body = html! {
        @match &list {
            Ok(list) => (render(list, now, shown)),
            Err(e) => (layout::error("the backup store", e)),
        }
        @match &verifies {
            Ok(runs) => (render_verifies(runs, now)),
            Err(e) => (layout::error("the recorded verification runs", e)),
        }
    };
    super::html(layout::page("Backups", "/backups", body), &scrub)
}

fn parse(time: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How long the backup took, from its manifest's times.
pub fn duration(listed: &Listed) -> Option<f64> {
    let started = parse(&listed.manifest.started_at)?;
    let finished = parse(&listed.manifest.finished_at)?;
    Some((finished - started).num_milliseconds() as f64 / 1000.0)
}

/// The command that restores it (into the configured database; `--to URL` for another).
pub fn restore_command(id: &str) -> String {
    format!("tend restore {id}")
}

fn verification(listed: &Listed, now: DateTime<Utc>) -> Markup {
    html! {
        @match &listed.verification {
            None => span.muted { "not verified" },
            Some(v) => {
                @let what = if v.level == "restore" { "restore drill" } else { "read back" };
                @if v.ok { span.ok { (what) " passed" } } @else { span.failed { (what) " FAILED" } }
                @if let Some(at) = parse(&v.verified_at) { span.muted { " " (layout::relative(&at, now)) } }
                @if !v.message.is_empty() { span.muted { ": " (v.message) } }
            }
        }
    }
}

fn render(list: &BackupList, now: DateTime<Utc>, shown: usize) -> Markup {
    let mut durations = Vec::new();
    let mut sizes = Vec::new();
    for b in &list.backups {
        let Some(started) = parse(&b.manifest.started_at) else {
            continue;
        };
        if let Some(d) = duration(b) {
            durations.push((started, d));
        }
        sizes.push((started, b.manifest.stored_bytes as f64));
    }
    let duration_series = [Series {
        label: "duration".to_string(),
        points: durations,
    }];
    let size_series = [Series {
        label: "stored size".to_string(),
        points: sizes,
    }];
    html! {
        section {
            p { "Store: " code { (list.store) } ". " (list.backups.len()) " complete backups." }
            @for (id, why) in &list.unusable {
                p.error { "Backup " code { (id) } " is not listed: its manifest is unusable (" (why) ")." }
            }
            @if list.backups.is_empty() {
                (layout::empty("No complete backup in the store yet."))
            } @else {
                // One block per backup, newest first: on a phone a table would push the
                // verification and the restore command out of sight.
                @for b in list.backups.iter().rev().take(shown) {
                    @let m = &b.manifest;
                    div.item {
                        p {
                            code { (m.id) } " "
                            @match parse(&m.finished_at) { Some(at) => (layout::when(&at, now)), None => (m.finished_at) }
                        }
                        p {
                            (verification(b, now))
                        }
                        p.muted {
                            (m.database) " (PostgreSQL " (m.server_version.split_whitespace().next().unwrap_or_default()) ")"
                            @if let Some(took) = duration(b) { " · took " (layout::seconds(took)) }
                            " · " (layout::bytes(m.raw_bytes as f64)) " dumped, "
                            (layout::bytes(m.stored_bytes as f64)) " stored · " (m.tables.len()) " tables"
                        }
                        p { "Restore: " code { (restore_command(&m.id)) } }
                    }
                }
                @if list.backups.len() > shown {
                    p.muted {
                        "The newest " (shown) " are shown. "
                        a href="/backups?all=1" { "All " (list.backups.len()) }
                        " (the charts below have them all)."
                    }
                }
            }
        }
        @if !list.backups.is_empty() {
            section {
                h2 { "Duration" }
                (chart::render(&Chart { title: "Backup duration over time", format: Format::Seconds, kind: Kind::Line, series: &duration_series }))
                h2 { "Stored size" }
                (chart::render(&Chart { title: "Stored size of each backup over time", format: Format::Bytes, kind: Kind::Bar, series: &size_series }))
            }
        }
    }
}

fn render_verifies(runs: &[RunRecord], now: DateTime<Utc>) -> Markup {
    html! {
        section {
            h2 { "Scheduled verifications and drills" }
            @if runs.is_empty() {
                (layout::empty("Nothing recorded yet: no scheduled `backup verify` has run."))
            } @else {
                div.scroll { table {
                    thead { tr { th { "Entry" } th { "Started" } th { "Outcome" } th { "Result" } } }
                    tbody {
                        @for r in runs {
                            tr {
                                td { (r.entry) }
                                td { (layout::when(&r.started_at, now)) }
                                td class=(r.outcome) { (r.outcome) }
                                td {
                                    @if let Some(s) = &r.summary { (s) }
                                    @if let Some(e) = &r.error { br; span.error { (e) } }
                                }
                            }
                        }
                    }
                } }
            }
        }
    }
}
