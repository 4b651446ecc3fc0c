//! Deleting rows in batches: each batch its own short transaction (its row locks held only
//! that long), sized by [`BatchSizer`] to a time budget, with `lock_timeout` so a batch
//! that meets a lock gives up instead of queueing others behind it, and `SKIP LOCKED` so
//! rows a transaction holds are left for a later batch. Committed batch by batch, a purge
//! killed at any moment has deleted whole batches only, and running it again carries on:
//! what is left still matches.
//!
//! The statement selects the batch by its rows' physical address (`tableoid`, `ctid`),
//! which works on any table, partitioned ones included, with or without a primary key.

use std::time::{Duration, Instant};

use tend_schema::model::QualifiedName;

use crate::batch::BatchSizer;

/// Rows of one table to delete: those `condition` (an SQL boolean expression over the
/// table's columns, as configuration writes it) holds for.
#[derive(Debug, Clone)]
pub struct PurgeTarget {
    pub table: QualifiedName,
    pub condition: String,
}

impl PurgeTarget {
    /// The statement of one batch; `$1` is the batch's size.
    pub fn batch_sql(&self) -> String {
        let table = self.table.sql();
        format!(
            "WITH doomed AS (
               SELECT tableoid, ctid FROM {table} WHERE ({condition})
                LIMIT $1 FOR UPDATE SKIP LOCKED)
             DELETE FROM {table} t USING doomed
              WHERE t.tableoid = doomed.tableoid AND t.ctid = doomed.ctid",
            condition = self.condition
        )
    }

    /// How many rows match now (a dry run's count).
    pub fn count_sql(&self) -> String {
        format!(
            "SELECT count(*) FROM {} WHERE ({})",
            self.table.sql(),
            self.condition
        )
    }
}

/// How a purge went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    pub deleted: u64,
    pub batches: u64,
    /// Batches that gave up on a lock (`lock_timeout`) and were tried again smaller.
    pub lock_timeouts: u64,
    /// The longest batch.
    pub longest: Duration,
}

/// Why a purge stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("deleting from {table} failed: {message}")]
    Statement { table: String, message: String },
    #[error(
        "deleting from {table} gave up: {times} batches in a row waited longer than lock_timeout for locks"
    )]
    Locked { table: String, times: u32 },
}

/// Batches in a row that may meet a lock before the purge stops.
const LOCKED_TRIES: u32 = 10;

/// Deletes the rows of `target` that match, batch by batch, until a batch finds none (rows
/// other transactions hold are skipped: a later run deletes them) or `stop` says so
/// between batches. Each batch is a transaction of its own on `client`, with
/// `lock_timeout` set to the sizer's budget.
pub async fn purge(
    client: &tokio_postgres::Client,
    target: &PurgeTarget,
    sizer: &mut BatchSizer,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<PurgeOutcome, PurgeError> {
    let failed = |e: tokio_postgres::Error| PurgeError::Statement {
        table: target.table.to_string(),
        message: e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| e.to_string()),
    };
    let statement = client.prepare(&target.batch_sql()).await.map_err(failed)?;
    let lock_timeout = format!("SET lock_timeout = {}", sizer.budget().as_millis().max(1));
    let mut outcome = PurgeOutcome::default();
    let mut locked_in_a_row = 0;
    while !stop() {
        let size = i64::try_from(sizer.size()).unwrap_or(i64::MAX);
        let started = Instant::now();
        client
            .batch_execute(&format!("BEGIN; {lock_timeout}"))
            .await
            .map_err(failed)?;
        let result = client.execute(&statement, &[&size]).await;
        let result = match result {
            Ok(rows) => client.batch_execute("COMMIT").await.map(|()| rows),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        };
        let took = started.elapsed();
        outcome.longest = outcome.longest.max(took);
        match result {
            Ok(rows) => {
                locked_in_a_row = 0;
                outcome.batches += 1;
                outcome.deleted += rows;
                sizer.record(rows, took);
                if rows == 0 {
                    break;
                }
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                outcome.lock_timeouts += 1;
                locked_in_a_row += 1;
                if locked_in_a_row >= LOCKED_TRIES {
                    return Err(PurgeError::Locked {
                        table: target.table.to_string(),
                        times: locked_in_a_row,
                    });
                }
                // As a batch over budget: smaller next time.
                sizer.record(0, sizer.budget() * 4);
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(outcome)
}
