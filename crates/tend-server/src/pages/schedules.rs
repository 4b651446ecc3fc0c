//! `/schedules`: each schedule entry, its next times, and its last runs with what they
//! said (summary, error). The JSON is `/api/schedule` and `/api/runs?entry=NAME`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use tend_core::schedule::{ScheduleEntry, When};

use super::{Scrub, layout};
use crate::http::next_times;
use crate::runs::{self, RunRecord};
use crate::scheduler::Shared;

/// Runs shown per entry.
const RUNS: i64 = 10;

/// How the entry is triggered, as written in tend.toml.
pub fn trigger(entry: &ScheduleEntry) -> String {
    match &entry.when {
        When::Cron(cron) => format!("cron {} ({})", cron.expression(), cron.zone()),
        When::After(name) => format!("after {name} succeeds"),
    }
}

/// Each entry's newest runs; empty lists before the first lead created the table.
async fn read(shared: &Shared, scrub: &Scrub) -> Result<Vec<Vec<RunRecord>>, String> {
    let session = super::session(shared).await?;
    let mut all = Vec::new();
    for entry in &shared.tasks.settings.serve.schedule.entries {
        let mut runs = match runs::recent(&session, Some(&entry.name), RUNS).await {
            Ok(runs) => runs,
            Err(e) if super::not_recorded(&e) => Vec::new(),
            Err(e) => return Err(super::db_error(e)),
        };
        for run in &mut runs {
            scrub.option(&mut run.summary);
            scrub.option(&mut run.error);
        }
        all.push(runs);
    }
    Ok(all)
}

pub async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let scrub = Scrub::new(&shared);
    let now = Utc::now();
    let runs = super::timed(read(&shared, &scrub)).await;
    let entries = &shared.tasks.settings.serve.schedule.entries;
    let body = html! {
        @if let Err(e) = &runs { (layout::error("the recorded runs", e)) }
        @if entries.is_empty() {
            section { (layout::empty("The schedule has no entries.")) }
        }
        @for (i, entry) in entries.iter().enumerate() {
            @let recorded = runs.as_ref().ok().and_then(|r| r.get(i));
            (render_entry(entry, recorded.map(Vec::as_slice), now))
        }
    };
    super::html(layout::page("Schedules", "/schedules", body), &scrub)
}

fn duration(run: &RunRecord) -> String {
    run.finished_at
        .map(|end| layout::seconds((end - run.started_at).num_milliseconds() as f64 / 1000.0))
        .unwrap_or_default()
}

fn render_entry(entry: &ScheduleEntry, runs: Option<&[RunRecord]>, now: DateTime<Utc>) -> Markup {
    let next = next_times(entry, now, 3);
    html! {
        section {
            h2 { (entry.name) }
            dl {
                dt { "Task" } dd { code { (entry.task.to_string()) } }
                dt { "Runs" } dd { (trigger(entry)) }
                dt { "Next" } dd {
                    @if next.is_empty() { span.muted { "when the entry it follows succeeds" } }
                    @for (i, at) in next.iter().enumerate() {
                        @if i > 0 { br; }
                        (layout::when(at, now))
                    }
                }
            }
            @match runs {
                None => {},
                Some([]) => (layout::empty("Nothing recorded yet: this entry has not run.")),
                Some(runs) => {
                    h3 { "Last runs" }
                    // One block per run: its output is sentences, too long for a
                    // phone's column.
                    @for r in runs {
                        div.item {
                            p {
                                strong class=(r.outcome) { (r.outcome) } " "
                                (layout::when(&r.scheduled_for, now))
                                span.muted {
                                    " · " (r.trigger)
                                    @let took = duration(r);
                                    @if !took.is_empty() { " · took " (took) }
                                    " · on " (r.instance)
                                }
                            }
                            @if let Some(s) = &r.summary { p { (s) } }
                            @if let Some(e) = &r.error { p.error { (e) } }
                        }
                    }
                }
            }
        }
    }
}
