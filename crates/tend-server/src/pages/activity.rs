//! `/activity`: the running queries and who blocks whom, read-only (the same services as
//! `tend queries` and `tend locks`; ending a session stays with `tend kill`).
//! `/api/activity` is the same report as JSON.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use serde::Serialize;
use tend_ops::actions::{self, Activity, BlockNode, LocksReport, QueriesReport, QueryFilter};
use tokio_postgres::Client;

use super::{Scrub, layout};
use crate::scheduler::Shared;

/// What `/api/activity` answers and `/activity` shows: `tend queries --json` and `tend
/// locks --json` side by side.
#[derive(Debug, Clone, Serialize)]
pub struct ActivityReport {
    pub queries: QueriesReport,
    pub locks: LocksReport,
}

fn scrub_session(scrub: &Scrub, session: &mut Activity) {
    scrub.string(&mut session.query);
    scrub.string(&mut session.application);
}

fn scrub_tree(scrub: &Scrub, node: &mut BlockNode) {
    scrub_session(scrub, &mut node.session);
    for child in &mut node.waiting {
        scrub_tree(scrub, child);
    }
}

pub async fn read(client: &Client, scrub: &Scrub) -> Result<ActivityReport, String> {
    let filter = QueryFilter {
        all: false,
        min_duration: None,
    };
    let mut queries = actions::queries(client, &filter)
        .await
        .map_err(super::db_error)?;
    let mut locks = actions::locks(client).await.map_err(super::db_error)?;
    for session in &mut queries.sessions {
        scrub_session(scrub, session);
    }
    for root in &mut locks.blocking {
        scrub_tree(scrub, root);
    }
    Ok(ActivityReport { queries, locks })
}

async fn load(shared: &Shared, scrub: &Scrub) -> Result<ActivityReport, String> {
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
        Err(e) => layout::error("the sessions", &e),
    };
    super::html(layout::page("Activity", "/activity", body), &scrub)
}

/// At most this many characters of a query are shown in the table.
const QUERY_CHARS: usize = 400;

fn short(query: &str) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > QUERY_CHARS {
        format!("{}…", flat.chars().take(QUERY_CHARS).collect::<String>())
    } else {
        flat
    }
}

fn node(node: &BlockNode) -> Markup {
    let s = &node.session;
    html! {
        li {
            "pid " strong { (s.pid) } " (" (s.application) ", " (s.user) ") "
            span class=(s.state.replace(' ', "-")) { (s.state) } " for " (layout::seconds(s.seconds))
            @if let Some(wait) = &s.wait { ", waiting on " code { (wait) } }
            @if !s.query.is_empty() { pre { (short(&s.query)) } }
            @if !node.waiting.is_empty() {
                ul.tree { @for child in &node.waiting { (self::node(child)) } }
            }
        }
    }
}

fn render(report: &ActivityReport) -> Markup {
    let hidden = report.queries.hidden_sessions;
    html! {
        @if hidden > 0 {
            section.err {
                p {
                    (hidden) " sessions of other roles are not listed: PostgreSQL hides their state and queries from "
                    code { (report.queries.user) } ", which lacks pg_read_all_stats (or pg_monitor)."
                }
            }
        }
        section {
            h2 { "Running queries" }
            @if report.queries.sessions.is_empty() {
                (layout::empty("No client session of this database is running a query or holding a transaction open."))
            } @else {
                div.scroll { table {
                    thead { tr { th.n { "pid" } th.n { "For" } th { "State" } th { "User" } th { "Application / wait" } th { "Query" } } }
                    tbody {
                        @for s in &report.queries.sessions {
                            tr {
                                td.n { (s.pid) }
                                td.n { (layout::seconds(s.seconds)) }
                                td { (s.state) }
                                td { (s.user) }
                                td { (s.application) @if let Some(wait) = &s.wait { br; code { (wait) } } }
                                td { code { (short(&s.query)) } }
                            }
                        }
                    }
                } }
            }
        }
        section {
            h2 { "Lock tree" }
            @if report.locks.blocking.is_empty() {
                (layout::empty("No session is waiting on another's lock."))
            } @else {
                p.muted { "Each session with, under it, those waiting on its locks. End a blocker with " code { "tend kill PID" } "." }
                ul.tree { @for root in &report.locks.blocking { (node(root)) } }
            }
        }
    }
}
