//! Deleting rows in batches: each batch its own short transaction (its row locks held only
//! that long), sized by [`BatchSizer`] to a time budget, with `lock_timeout` so a batch
//! that meets a lock gives up instead of queueing others behind it. Committed batch by
//! batch, a purge killed at any moment has deleted whole batches only, and running it
//! again carries on: what is left still matches.
//!
//! A batch chooses its rows by their physical address and deletes them by it: a TID scan,
//! the cheapest delete there is (`ctid = ANY (ARRAY (SELECT ctid ... LIMIT n))`; for a
//! partitioned table, whose partitions each have their own addresses, `(tableoid, ctid)`).
//! When PostgreSQL finds the rows by scanning the whole table (no index serves the rule),
//! each batch looks only after the last batch's highest address (a TID Range Scan), so no
//! batch scans again the rows the batches before it deleted, which stay in the table, dead,
//! until vacuum: from the start each time, the last batches of a large purge took longer
//! than the budget. At the table's end the purge looks once more from its start. When an
//! index finds the rows, the bound is left out: it would tempt the planner away from it.
//! It takes no row locks before the delete: a row another transaction changes meanwhile is
//! skipped (its address is stale) and matches again in a later batch. Once a batch has met
//! a lock, the purge chooses rows `FOR UPDATE SKIP LOCKED` from then on, so rows another
//! transaction holds are left for a later run instead of stopping every batch at the same
//! row; that costs a second write of each row, so it is not the default.

use std::time::{Duration, Instant};

use tend_schema::model::QualifiedName;

use crate::batch::BatchSizer;

/// Rows of one table to delete: those `condition` (an SQL boolean expression over the
/// table's columns, as configuration writes it) holds for, except those `held` (SQL over
/// the table, naming it by its qualified name) holds for: rows a foreign key would refuse
/// to see go.
#[derive(Debug, Clone)]
pub struct PurgeTarget {
    pub table: QualifiedName,
    pub condition: String,
    pub held: Option<String>,
    /// Where deleted rows are moved in the same statement, when the rule archives.
    pub archive_to: Option<MoveTo>,
    /// The table is partitioned: its rows are addressed by `(tableoid, ctid)`.
    pub partitioned: bool,
}

/// Where a batch moves the rows it deletes, in its own statement: a row is in its table or
/// there, never in both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveTo {
    /// A table with the same columns.
    Table(QualifiedName),
    /// A table with columns `(label text, row_json text)`: each row as JSON text
    /// (`row_to_json`), tagged with `label` (a staging table, emptied elsewhere).
    JsonRows { table: QualifiedName, label: String },
}

impl std::fmt::Display for MoveTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MoveTo::Table(table) | MoveTo::JsonRows { table, .. } => table.fmt(f),
        }
    }
}

impl PurgeTarget {
    /// A plain delete of the rows `condition` holds for.
    pub fn delete(table: QualifiedName, condition: impl Into<String>) -> PurgeTarget {
        PurgeTarget {
            table,
            condition: condition.into(),
            held: None,
            archive_to: None,
            partitioned: false,
        }
    }

    /// The rows the purge deletes, as SQL over the table.
    pub fn doomed_sql(&self) -> String {
        match &self.held {
            Some(held) => format!("({}) AND NOT ({held})", self.condition),
            None => format!("({})", self.condition),
        }
    }

    /// The statement of one batch; `$1` is the batch's size, `$2` (text) the address the
    /// batch starts after (`(0,0)`: the start of the table). It returns one row: the rows
    /// deleted (and moved), and the highest address among them as text (NULL when none, or
    /// for a partitioned table, whose addresses are per partition and which ignores `$2`).
    /// With `skip_locked`, rows are locked as they are chosen, and rows other transactions
    /// hold are skipped. Without `after_cursor`, `$2` is not used to choose rows.
    pub fn batch_sql(&self, skip_locked: bool, after_cursor: bool) -> String {
        let table = self.table.sql();
        let doomed = self.doomed_sql();
        let lock = if skip_locked {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let after = if after_cursor {
            "ctid > $2::text::tid"
        } else {
            // Referenced, so it has a type; a condition on a parameter alone is checked once
            // and does not steer the plan.
            "$2::text IS NOT NULL"
        };
        let (doomed_cte, delete, last) = if self.partitioned {
            (
                format!(
                    "doomed AS (
                       SELECT tableoid, ctid FROM {table} WHERE $2::text IS NOT NULL AND {doomed} LIMIT $1{lock}),\n "
                ),
                format!(
                    "DELETE FROM {table} tend_t USING doomed
                      WHERE tend_t.tableoid = doomed.tableoid AND tend_t.ctid = doomed.ctid"
                ),
                "NULL::text",
            )
        } else {
            // From the address after the last batch's rows on: a scan that starts at the
            // table's start again each time passes every row the batches before it deleted
            // (dead until vacuum), so each batch would be slower than the last. With a
            // range of addresses PostgreSQL scans only that range (a TID Range Scan).
            (
                String::new(),
                format!(
                    "DELETE FROM {table} tend_t
                      WHERE tend_t.ctid = ANY (ARRAY (
                        SELECT ctid FROM {table} WHERE {after} AND {doomed} LIMIT $1{lock}))"
                ),
                "max(tend_ctid)::text",
            )
        };
        let (returning, moved) = match &self.archive_to {
            None => ("tend_t.ctid AS tend_ctid".to_string(), String::new()),
            Some(MoveTo::Table(archive)) => (
                "tend_t.ctid AS tend_ctid, tend_t AS tend_row".to_string(),
                format!(
                    ",\n moved AS (INSERT INTO {} SELECT (tend_row).* FROM gone)",
                    archive.sql()
                ),
            ),
            Some(MoveTo::JsonRows { table, label }) => (
                "tend_t.ctid AS tend_ctid, row_to_json(tend_t.*)::text AS tend_json".to_string(),
                format!(
                    ",\n moved AS (INSERT INTO {} (label, row_json) SELECT {}, tend_json FROM gone)",
                    table.sql(),
                    tend_pg::quote::quote_literal(label)
                ),
            ),
        };
        format!(
            "WITH {doomed_cte}gone AS ({delete} RETURNING {returning}){moved}\n SELECT count(*), {last} FROM gone"
        )
    }

    /// How many rows match now, and how many of those a foreign key holds (a dry run's
    /// counts): one row, `matching` then `held`.
    pub fn count_sql(&self) -> String {
        let held = self.held.as_deref().unwrap_or("false");
        format!(
            "SELECT count(*), count(*) FILTER (WHERE {held}) FROM {} WHERE ({})",
            self.table.sql(),
            self.condition
        )
    }

    /// [`count_sql`](Self::count_sql) and a third column, in the same scan: how many
    /// seconds ago the oldest row the purge deletes had its `column` (NULL when none; a
    /// held row is not the purge's).
    pub fn count_with_oldest_sql(&self, column: &str) -> String {
        let held = self.held.as_deref().unwrap_or("false");
        format!(
            "SELECT count(*), count(*) FILTER (WHERE {held}),
                    extract(epoch FROM now() - min({}) FILTER (WHERE NOT ({held})))::float8
               FROM {} WHERE ({})",
            tend_schema::model::ident(column),
            self.table.sql(),
            self.condition
        )
    }
}

/// How a purge goes, so far or in the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    pub deleted: u64,
    pub batches: u64,
    /// Batches that gave up on a lock (`lock_timeout`) or met a row referenced since it
    /// was chosen, and were tried again smaller.
    pub conflicts: u64,
    /// The longest batch.
    pub longest: Duration,
    /// Time spent waiting for replicas to catch up.
    pub paused: Duration,
    /// Time spent resting between batches ([`PurgeOptions::duty_cycle`]).
    pub rested: Duration,
}

impl PurgeOutcome {
    /// Adds a later stretch of the same purge.
    pub fn add(&mut self, later: &PurgeOutcome) {
        self.deleted += later.deleted;
        self.batches += later.batches;
        self.conflicts += later.conflicts;
        self.longest = self.longest.max(later.longest);
        self.paused += later.paused;
        self.rested += later.rested;
    }
}

/// Why a purge stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("deleting from {table} failed: {message}")]
    Statement { table: String, message: String },
    #[error(
        "deleting from {table} gave up: {times} batches in a row met locks held longer than lock_timeout, or rows referenced since they were chosen"
    )]
    Locked { table: String, times: u32 },
}

/// How a purge paces itself.
#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// Between batches, wait while a replica's replay lag (`pg_stat_replication`) is
    /// longer than this. `None`: never wait.
    pub max_replica_lag: Option<Duration>,
    /// The share of time the purge spends in batches, from 0 (exclusive) to 1: after a
    /// batch it rests so that batches take this share of its time, leaving the server to
    /// the application the rest. 1: no rest.
    pub duty_cycle: f64,
}

impl Default for PurgeOptions {
    fn default() -> PurgeOptions {
        PurgeOptions {
            max_replica_lag: None,
            duty_cycle: 1.0,
        }
    }
}

impl PurgeOptions {
    /// How long to rest after a batch that took `took`.
    pub fn rest_after(&self, took: Duration) -> Duration {
        let duty = self.duty_cycle.clamp(0.01, 1.0);
        took.mul_f64(1.0 / duty - 1.0)
    }
}

/// The address before a table's first row.
const START: &str = "(0,0)";

/// Where a purge's next batch looks for rows: after the last batch's highest address.
/// A purge stopped between batches (`stop`) and started again with the same cursor carries
/// on from there, rather than scanning again what it deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor(START.to_string())
    }
}

/// Batches in a row that may meet a lock before the purge stops.
const LOCKED_TRIES: u32 = 10;

/// How often the replicas' lag is read while waiting for them.
const LAG_POLL: Duration = Duration::from_millis(500);

/// Deletes the rows of `target` that match, batch by batch, until a batch finds none (rows
/// other transactions hold are skipped: a later run deletes them) or `stop` says so
/// between batches. Each batch is a transaction of its own on `client`, with
/// `lock_timeout` set to the sizer's budget. `progress` hears the outcome so far after
/// each batch.
pub async fn purge(
    client: &tokio_postgres::Client,
    target: &PurgeTarget,
    sizer: &mut BatchSizer,
    options: &PurgeOptions,
    cursor: &mut Cursor,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(&PurgeOutcome) + Sync),
) -> Result<PurgeOutcome, PurgeError> {
    let failed = |e: tokio_postgres::Error| PurgeError::Statement {
        table: target.table.to_string(),
        message: tend_pg::error_text(&e),
    };
    // The cursor helps a scan of the whole table, which it narrows to the rest of it (a
    // TID Range Scan). When an index finds the rule's rows, a bound on addresses would
    // only tempt the planner away from it, into scanning a stretch of the table where
    // few rows match: it is left out.
    let after_cursor = !target.partitioned
        && scans_whole_table(client, target, sizer.size())
            .await
            .map_err(failed)?;
    let plain = client
        .prepare(&target.batch_sql(false, after_cursor))
        .await
        .map_err(failed)?;
    // Prepared when first needed: after a batch has met a lock.
    let mut skipping: Option<tokio_postgres::Statement> = None;
    // A partitioned table's batch joins (tableoid, ctid) pairs: past some size the planner
    // prefers a hash join over a scan of the whole table to a nested loop of TID scans, and
    // a batch that took 86 ms took 604 ms one size up. A batch is small: keep the loop.
    let plan = if target.partitioned {
        "; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
    } else {
        ""
    };
    let lock_timeout = format!(
        "SET LOCAL lock_timeout = {}{plan}",
        sizer.budget().as_millis().max(1)
    );
    let mut outcome = PurgeOutcome::default();
    let mut locked_in_a_row = 0;
    while !stop() {
        if let Some(max) = options.max_replica_lag {
            outcome.paused += wait_for_replicas(client, max, stop).await.map_err(failed)?;
            if stop() {
                break;
            }
        }
        let size = i64::try_from(sizer.size()).unwrap_or(i64::MAX);
        let started = Instant::now();
        client
            .batch_execute(&format!("BEGIN; {lock_timeout}"))
            .await
            .map_err(failed)?;
        let statement = skipping.as_ref().unwrap_or(&plain);
        let result = client.query_one(statement, &[&size, &cursor.0]).await;
        let result = match result {
            Ok(row) => client
                .batch_execute("COMMIT")
                .await
                .map(|()| (row.get::<_, i64>(0) as u64, row.get::<_, Option<String>>(1))),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        };
        let took = started.elapsed();
        // A batch that deleted nothing held no row locks; one that gave up held them until
        // then.
        if !matches!(result, Ok((0, _))) {
            outcome.longest = outcome.longest.max(took);
        }
        match result {
            Ok((rows, last)) => {
                locked_in_a_row = 0;
                outcome.batches += 1;
                outcome.deleted += rows;
                sizer.record(rows, took);
                progress(&outcome);
                if rows == 0 {
                    // The end of the table. Rows before where this pass started may
                    // match still (skipped while another transaction held them, or past
                    // the rule since): once more from the start, and done when that finds
                    // none.
                    if cursor.0 == START {
                        break;
                    }
                    *cursor = Cursor::default();
                    continue;
                }
                if let Some(last) = last.filter(|_| after_cursor) {
                    cursor.0 = last;
                }
                let rest = options.rest_after(took);
                if !rest.is_zero() && !stop() {
                    tokio::time::sleep(rest).await;
                    outcome.rested += rest;
                }
            }
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
                    || e.code()
                        == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
            {
                outcome.conflicts += 1;
                locked_in_a_row += 1;
                if locked_in_a_row >= LOCKED_TRIES {
                    return Err(PurgeError::Locked {
                        table: target.table.to_string(),
                        times: locked_in_a_row,
                    });
                }
                // Smaller next time; and from now on rows held elsewhere are skipped
                // rather than waited for.
                sizer.conflict();
                if skipping.is_none() {
                    skipping = Some(
                        client
                            .prepare(&target.batch_sql(true, after_cursor))
                            .await
                            .map_err(failed)?,
                    );
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(outcome)
}

/// Whether PostgreSQL finds a batch's rows by scanning the whole table (no index serves
/// the rule's condition, or the planner prefers the scan).
async fn scans_whole_table(
    client: &tokio_postgres::Client,
    target: &PurgeTarget,
    size: u64,
) -> Result<bool, tokio_postgres::Error> {
    let plan = client
        .query(
            &format!(
                "EXPLAIN SELECT ctid FROM {} WHERE {} LIMIT {size}",
                target.table.sql(),
                target.doomed_sql()
            ),
            &[],
        )
        .await?;
    // "Seq Scan on events" (or "Parallel Seq Scan on events events_1"): a scan of the
    // target, not of a table its held-row condition reads.
    let scan = format!(
        "Seq Scan on {}",
        tend_schema::model::ident(&target.table.name)
    );
    Ok(plan.iter().any(|line| {
        let line: &str = line.get(0);
        line.split_once(&scan)
            .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with(' '))
    }))
}

/// Waits while the longest replay lag of the server's replicas is over `max`; returns how
/// long it waited. A server without replicas (or a role that may not read their lag) never
/// waits.
async fn wait_for_replicas(
    client: &tokio_postgres::Client,
    max: Duration,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Duration, tokio_postgres::Error> {
    let started = Instant::now();
    loop {
        let row = client
            .query_one(
                "SELECT coalesce(max(extract(epoch FROM replay_lag))::float8, 0) FROM pg_stat_replication",
                &[],
            )
            .await?;
        let lag: f64 = row.get(0);
        if lag <= max.as_secs_f64() || stop() {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(LAG_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duty_cycle_rests_in_proportion() {
        let at = |duty: f64| PurgeOptions {
            duty_cycle: duty,
            ..PurgeOptions::default()
        };
        let batch = Duration::from_millis(40);
        assert_eq!(at(1.0).rest_after(batch), Duration::ZERO);
        assert_eq!(at(0.25).rest_after(batch), Duration::from_millis(120));
        assert_eq!(at(0.5).rest_after(batch), Duration::from_millis(40));
    }

    #[test]
    fn a_batch_deletes_by_address_and_locks_only_when_asked() {
        let target = PurgeTarget::delete(QualifiedName::new("public", "jobs"), "done");
        let plain = target.batch_sql(false, true);
        assert!(plain.contains("ctid = ANY (ARRAY ("), "{plain}");
        assert!(
            plain.contains("SELECT ctid FROM public.jobs WHERE ctid > $2::text::tid"),
            "{plain}"
        );
        assert!(
            plain.ends_with("SELECT count(*), max(tend_ctid)::text FROM gone"),
            "{plain}"
        );
        assert!(!plain.contains("FOR UPDATE"), "{plain}");
        assert!(
            target
                .batch_sql(true, true)
                .contains("FOR UPDATE SKIP LOCKED")
        );
        let indexed = target.batch_sql(false, false);
        assert!(
            indexed.contains("WHERE $2::text IS NOT NULL AND (done)"),
            "{indexed}"
        );
        let partitioned = PurgeTarget {
            partitioned: true,
            archive_to: Some(MoveTo::Table(QualifiedName::new("public", "jobs_archive"))),
            ..target
        };
        let sql = partitioned.batch_sql(false, false);
        assert!(sql.contains("tend_t.tableoid = doomed.tableoid"), "{sql}");
        assert!(
            sql.contains("INSERT INTO public.jobs_archive SELECT (tend_row).* FROM gone"),
            "{sql}"
        );
        let as_json = PurgeTarget {
            archive_to: Some(MoveTo::JsonRows {
                table: QualifiedName::new("tend", "staging"),
                label: "old's jobs".to_string(),
            }),
            ..partitioned
        };
        let sql = as_json.batch_sql(false, false);
        assert!(
            sql.contains(
                "INSERT INTO tend.staging (label, row_json) SELECT 'old''s jobs', tend_json FROM gone"
            ),
            "{sql}"
        );
    }
}
