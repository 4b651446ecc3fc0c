//! The dashboard: server-rendered HTML pages (no JavaScript, nothing loaded from
//! elsewhere, inline SVG charts) and the JSON behind each one, on the same router and
//! token as the API.
//!
//! Every page reads fresh, on one pooled session with a short statement timeout, and
//! shows what it could not read as an error section instead of failing: a database
//! without tend's tables yet is "nothing recorded yet". Text that comes from the database
//! or the store is scrubbed of the configured secrets before it is rendered or sent, and
//! maud escapes it.

pub mod activity;
pub mod backups;
pub mod chart;
pub mod checks;
pub mod growth;
pub mod layout;
pub mod overview;
pub mod schedules;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use serde::Serialize;
use tend_pg::PooledSession;

use crate::scheduler::Shared;

/// The pages and their JSON, to merge into the router behind the token.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/backups", get(backups::page))
        .route("/checks", get(checks::page))
        .route("/growth", get(growth::page))
        .route("/activity", get(activity::page))
        .route("/schedules", get(schedules::page))
        .route("/api/overview", get(overview::api))
        .route("/api/backups", get(backups::api))
        .route("/api/checks", get(checks::api))
        .route("/api/growth", get(growth::api))
        .route("/api/activity", get(activity::api))
}

/// How long a page waits for a session or for its reads: a slow database shows as an
/// error section, not as a page that never comes.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Masks the configured secrets (database passwords, the token, backup keys, alert
/// channel URLs) and anything URL- or `password=`-shaped in text from outside.
pub struct Scrub {
    secrets: Vec<String>,
}

impl Scrub {
    pub fn new(shared: &Shared) -> Scrub {
        let mut secrets = shared.tasks.settings.secrets();
        secrets.extend(shared.tasks.database.info().secrets());
        secrets.retain(|s| !s.is_empty());
        Scrub { secrets }
    }

    pub fn text(&self, text: &str) -> String {
        tend_pg::conninfo::scrub(text, &self.secrets)
    }

    pub fn string(&self, text: &mut String) {
        *text = self.text(text);
    }

    pub fn option(&self, text: &mut Option<String>) {
        if let Some(text) = text {
            self.string(text);
        }
    }

    /// The last pass over a whole page: a secret that reached it verbatim anyway.
    fn page(&self, mut html: String) -> String {
        for secret in &self.secrets {
            // Short values would match markup; those are masked field by field only.
            if secret.len() >= 6 && html.contains(secret.as_str()) {
                html = html.replace(secret.as_str(), "********");
            }
        }
        html
    }
}

/// A pooled session for a page's reads, with a statement timeout; the error as text.
pub(crate) async fn session(shared: &Shared) -> Result<PooledSession, String> {
    let session = tokio::time::timeout(READ_TIMEOUT, shared.tasks.database.session())
        .await
        .map_err(|_| {
            format!(
                "the database did not answer within {}s",
                READ_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| e.to_string())?;
    session
        .batch_execute("SET statement_timeout = '10s'; SET lock_timeout = '1s'")
        .await
        .map_err(|e| tend_pg::error_text(&e))?;
    Ok(session)
}

/// Runs a read with the page's timeout.
pub(crate) async fn timed<T>(read: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(READ_TIMEOUT * 2, read)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {}s",
                (READ_TIMEOUT * 2).as_secs()
            ))
        })
}

/// The `tend` schema or one of its tables does not exist yet: nothing was recorded.
pub(crate) fn not_recorded(err: &tokio_postgres::Error) -> bool {
    matches!(tend_pg::sqlstate(err), Some("42P01" | "3F000"))
}

/// A database error as a person reads it.
pub(crate) fn db_error(err: tokio_postgres::Error) -> String {
    tend_pg::error_text(&err)
}

/// The headers every page and answer carries: nothing cached (it is read fresh), and a
/// policy that lets the page run no script and load nothing at all.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) fn html(markup: Markup, scrub: &Scrub) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        scrub.page(markup.into_string()),
    )
        .into_response()
}

#[derive(Serialize)]
struct ApiError {
    error: String,
}

/// A page's data as JSON, or `503` with the reason, like the rest of the API.
pub(crate) fn json<T: Serialize>(result: Result<T, String>) -> Response {
    let headers = [(header::CACHE_CONTROL, "no-store")];
    match result {
        Ok(value) => (headers, axum::Json(value)).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            headers,
            axum::Json(ApiError { error }),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::Scrub;

    #[test]
    fn secrets_are_masked_in_text_and_in_the_page() {
        let scrub = Scrub {
            secrets: vec!["hunter2-secret".to_string(), "abc".to_string()],
        };
        let text = scrub.text("ALTER ROLE app PASSWORD 'hunter2-secret' -- postgres://u:pw@h/db");
        assert!(
            !text.contains("hunter2-secret") && !text.contains(":pw@"),
            "{text}"
        );
        // The last pass leaves markup alone: short secrets are masked field by field only.
        let page = scrub.page("<abbr>hunter2-secret</abbr>".to_string());
        assert_eq!(page, "<abbr>********</abbr>");
    }
}
