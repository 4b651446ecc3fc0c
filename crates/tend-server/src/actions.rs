//! Actions: run a schedule entry now (a backup, a check, a re-run of what failed). Any
//! instance takes the request and records it (`requested` in `tend.schedule_runs`); the
//! leader runs it as soon as the entry is free, through the same path as a scheduled run.
//! The routes sit behind the API's token; browsers' cross-site posts are refused, so a
//! page elsewhere cannot start work on a tend that listens on loopback without one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use crate::runs::{self, RunRecord};
use crate::scheduler::Shared;

/// The action routes (merged under the API's token layer by `http::router`).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/api/run/{entry}", post(run_now))
}

#[derive(Serialize)]
struct Refused {
    error: String,
}

fn refused(status: StatusCode, error: impl Into<String>) -> Response {
    (
        status,
        Json(Refused {
            error: error.into(),
        }),
    )
        .into_response()
}

/// Whether a browser sent this from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` whose host is not the one asked.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site") == Some("cross-site") {
        return true;
    }
    match (text(header::ORIGIN.as_str()), text(header::HOST.as_str())) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
            origin != "null" && origin_host != host
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// `POST /api/run/{entry}`: 202 with the requested run; 404 for an entry the schedule does
/// not have; 409 when a run of it is already waiting.
async fn run_now(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if cross_site(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "a request from another site may not start a run",
        );
    }
    let Some(entry) = shared.entries().iter().find(|e| e.name == name) else {
        let names: Vec<&str> = shared.entries().iter().map(|e| e.name.as_str()).collect();
        return refused(
            StatusCode::NOT_FOUND,
            format!(
                "the schedule has no entry `{}`; it has: {}",
                name.chars().take(100).collect::<String>(),
                names.join(", ")
            ),
        );
    };
    let session = match shared.tasks.database.session().await {
        Ok(session) => session,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match runs::request(
        &session,
        &entry.name,
        &entry.task.to_string(),
        &shared.instance,
    )
    .await
    {
        Ok(Some(record)) => {
            shared.requests.notify_one();
            (StatusCode::ACCEPTED, Json::<RunRecord>(record)).into_response()
        }
        Ok(None) => refused(
            StatusCode::CONFLICT,
            format!("a run of `{}` is already waiting to start", entry.name),
        ),
        Err(e) if tend_pg::sqlstate(&e) == Some("42P01") => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "no instance has led yet, so the `tend` schema that records runs does not exist",
        ),
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, tend_pg::error_text(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::cross_site;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn cross_site_posts_are_told_from_same_site_ones_and_scripts() {
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8432")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8432"),
            ("origin", "http://127.0.0.1:8432"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8432"),
            ("origin", "https://evil.example"),
        ])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
    }
}
