//! The HTTP endpoints: `/healthz` and `/readyz` for orchestrators (no auth), and the JSON
//! API (`/api/...`, behind the bearer token when one is set).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tend_core::schedule::{ScheduleEntry, When};

use crate::runs::{self, RunRecord};
use crate::scheduler::{Role, Shared};

/// The routes, on the scheduler's shared state.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/api/schedule", get(schedule))
        .route("/api/runs", get(recent_runs))
        .route("/metrics", get(metrics))
        .route("/api/alerts", get(alerts))
        .merge(crate::actions::routes())
        .merge(crate::pages::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .with_state(shared)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz`: ready when the database answers; says whether this instance leads.
#[derive(Serialize)]
struct Readiness {
    ready: bool,
    role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let role = *shared.role.lock();
    let probe = async {
        let session = shared
            .tasks
            .database
            .session()
            .await
            .map_err(|e| e.to_string())?;
        session
            .simple_query("SELECT 1")
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        Ok::<(), String>(())
    };
    let reason = match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(_) => Some("the database did not answer within 5s".to_string()),
    };
    let status = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready: reason.is_none(),
        role,
        reason,
    };
    (status, Json(body)).into_response()
}

/// Compares in time that does not depend on where the first difference is.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= (given.get(i).copied().unwrap_or(0) ^ b) as usize;
    }
    diff == 0
}

async fn require_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &shared.tasks.settings.serve.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.as_bytes(), token.expose_secret().as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(ApiError {
                    error:
                        "this needs the token of serve.token, as `Authorization: Bearer <token>`"
                            .to_string(),
                }),
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[derive(Serialize)]
struct ApiError {
    error: String,
}

fn unavailable(reason: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ApiError { error: reason }),
    )
        .into_response()
}

/// `/api/schedule`: each entry, its next times, and its last run.
#[derive(Serialize)]
pub struct ScheduleReport {
    pub role: Role,
    pub instance: String,
    pub entries: Vec<EntryReport>,
}

#[derive(Serialize)]
pub struct EntryReport {
    #[serde(flatten)]
    pub entry: ScheduleEntry,
    /// The next times it runs (none for an `after` entry).
    pub next: Vec<DateTime<Utc>>,
    pub last_run: Option<RunRecord>,
}

/// The next `count` times of an entry after `now`.
pub fn next_times(entry: &ScheduleEntry, now: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
    let When::Cron(cron) = &entry.when else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(count);
    let mut at = now;
    while out.len() < count {
        match cron.next_after(at) {
            Some(next) => {
                out.push(next);
                at = next;
            }
            None => break,
        }
    }
    out
}

async fn schedule(State(shared): State<Arc<Shared>>) -> Response {
    let last = match shared.tasks.database.session().await {
        Ok(session) => runs::last_per_entry(&session).await.unwrap_or_default(),
        Err(e) => return unavailable(e.to_string()),
    };
    let now = Utc::now();
    let entries = shared
        .tasks
        .settings
        .serve
        .schedule
        .entries
        .iter()
        .map(|entry| EntryReport {
            next: next_times(entry, now, 3),
            last_run: last.iter().find(|r| r.entry == entry.name).cloned(),
            entry: entry.clone(),
        })
        .collect();
    Json(ScheduleReport {
        role: *shared.role.lock(),
        instance: shared.instance.clone(),
        entries,
    })
    .into_response()
}

/// `/metrics`: read fresh; the database part is left out (`tend_database_up 0`) when it
/// does not answer within 10 s.
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let role = *shared.role.lock();
    let session = tokio::time::timeout(Duration::from_secs(10), shared.tasks.database.session())
        .await
        .ok()
        .and_then(Result::ok);
    let spool = shared.tasks.settings.pitr.spool.as_ref();
    crate::metrics::refresh_backlog(&shared.tasks.database, &shared.tasks.settings.cleanup);
    let read = crate::metrics::scrape(session.as_deref().map(|s| &s.client), role, spool);
    let text = match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(text) => text,
        Err(_) => crate::metrics::scrape(None, role, spool).await,
    };
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::to_prometheus_text(&text),
        )
            .into_response()
    }
}

/// `/api/alerts`: what fires now, and how each channel has done.
async fn alerts(State(shared): State<Arc<Shared>>) -> Response {
    let session = match shared.tasks.database.session().await {
        Ok(session) => session,
        Err(e) => return unavailable(e.to_string()),
    };
    match shared.alerting.report(&session).await {
        Ok(report) => Json(report).into_response(),
        Err(e) if tend_pg::sqlstate(&e) == Some("42P01") => Json(crate::alerts::AlertsReport {
            firing: Vec::new(),
            channels: shared.alerting.channel_status(),
        })
        .into_response(),
        Err(e) => unavailable(tend_pg::error_text(&e)),
    }
}

#[derive(Deserialize)]
struct RunsQuery {
    entry: Option<String>,
    limit: Option<i64>,
}

async fn recent_runs(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<RunsQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let session = match shared.tasks.database.session().await {
        Ok(session) => session,
        Err(e) => return unavailable(e.to_string()),
    };
    match runs::recent(&session, query.entry.as_deref(), limit).await {
        Ok(list) => Json(list).into_response(),
        // Before the first lead, the table may not exist yet.
        Err(e) if tend_pg::sqlstate(&e) == Some("42P01") => {
            Json(Vec::<RunRecord>::new()).into_response()
        }
        Err(e) => unavailable(tend_pg::error_text(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }
}
