//! Check history: each run's findings and size samples, kept in the database's `tend`
//! schema (created by the binary through tend's own migrations), so growth and trends can
//! be reported.
//!
//! Writing history never waits behind another session: the session gets a short
//! `lock_timeout` ([`prepare_session`]), sizes are read only of relations no session holds
//! (or waits for) an ACCESS EXCLUSIVE lock on, and a lock that is still not available makes
//! the whole write fail with [`HistoryError::Locked`], which callers report and skip.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::runner::Report;

/// How many of the largest tables are sampled each run.
const SAMPLED_TABLES: i64 = 50;

/// How long a history statement may wait for a lock before the write is skipped.
pub const LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// Why a run was not stored.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Another session holds a lock the write needs (on tend's own tables, say); history
    /// never waits for it.
    #[error("another session holds a lock the history write needs, and checks never wait: {}", tend_pg::error_text(.0))]
    Locked(#[source] tokio_postgres::Error),
    #[error("{}", tend_pg::error_text(.0))]
    Database(#[source] tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for HistoryError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            HistoryError::Locked(err)
        } else {
            HistoryError::Database(err)
        }
    }
}

/// Prepares a session that writes history (or reads tend's own tables): a short
/// `lock_timeout`, a `statement_timeout`, and a name in pg_stat_activity.
pub async fn prepare_session(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}; SET statement_timeout = 10000; \
             SET application_name = 'tend check history'",
            LOCK_TIMEOUT.as_millis()
        ))
        .await
}

/// Stores a run: its findings and the sizes of the database and its largest tables.
/// Returns the run's id. The session is prepared here ([`prepare_session`]).
pub async fn record(
    client: &Client,
    report: &Report,
    tend_version: &str,
) -> Result<i64, HistoryError> {
    prepare_session(client).await?;
    client.batch_execute("BEGIN").await?;
    let result = async {
        let worst = report.worst().as_str();
        let id: i64 = client
            .query_one(
                "INSERT INTO tend.check_runs (millis, worst, checks, findings, tend_version)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &(report.millis as i32),
                    &worst,
                    &(report.results.len() as i32),
                    &(report.findings.len() as i32),
                    &tend_version,
                ],
            )
            .await?
            .get(0);
        // All findings in one statement, column by column.
        let checks: Vec<&str> = report.findings.iter().map(|f| f.check).collect();
        let severities: Vec<&str> = report.findings.iter().map(|f| f.severity.as_str()).collect();
        let subjects: Vec<&str> = report.findings.iter().map(|f| f.subject.as_str()).collect();
        let values: Vec<Option<f64>> = report.findings.iter().map(|f| f.value).collect();
        let messages: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
        client
            .execute(
                "INSERT INTO tend.check_findings (run_id, check_id, severity, subject, value, message)
                 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::text[])",
                &[&id, &checks, &severities, &subjects, &values, &messages],
            )
            .await?;
        client
            .execute(
                "INSERT INTO tend.size_samples (run_id, relation, bytes)
                 SELECT $1::bigint, '(database)', pg_database_size(current_database())
                 UNION ALL
                 SELECT $1::bigint, relation, bytes FROM (
                     SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
                            pg_total_relation_size(c.oid) AS bytes
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relkind IN ('r', 'm', 'p')
                        AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                        AND n.nspname NOT LIKE 'pg\\_%'
                        -- pg_total_relation_size waits for an ACCESS EXCLUSIVE lock on the
                        -- table, its TOAST table or an index (held or queued): skip those.
                        AND NOT EXISTS (
                            SELECT 1 FROM pg_locks l
                             WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
                               AND l.pid <> pg_backend_pid()
                               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                               AND (l.relation IN (c.oid, c.reltoastrelid)
                                    OR l.relation IN (SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = c.oid)))
                      ORDER BY c.relpages DESC LIMIT $2) t",
                &[&id, &SAMPLED_TABLES],
            )
            .await?;
        Ok::<i64, tokio_postgres::Error>(id)
    }
    .await;
    match result {
        Ok(id) => {
            client.batch_execute("COMMIT").await?;
            Ok(id)
        }
        Err(err) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(err.into())
        }
    }
}

/// The number of runs recorded.
pub async fn runs(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM tend.check_runs", &[])
        .await?
        .get(0))
}
