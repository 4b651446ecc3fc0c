//! Retention by partition (pg_partman's retention, for a table partitioned by time): a
//! partition whose whole range is further back than a rule's age goes whole, detached and
//! dropped, instead of being deleted row by row. The table is partitioned `BY RANGE` on the
//! rule's timestamp column alone (the caller checks that against the model).
//!
//! Which partitions: the table's direct partitions whose upper bound is at or before the
//! cutoff (`now() - older_than`), so every row they can hold is past the rule. The bound is
//! read from the catalog (`pg_get_expr(relpartbound)`) and compared on the server, cast to
//! the key's type: no timestamp is parsed here. Never the `DEFAULT` partition (no range),
//! never one whose range ends at `MAXVALUE`; a partition that is itself partitioned goes
//! whole with its own partitions, its rows those of its leaves.
//!
//! Rows are the statistics' estimate (`pg_class.reltuples`, summed over the leaves), since
//! counting means reading the whole partition, the very work a drop avoids, and the backlog
//! check counts with every `tend check`; a partition nothing has analyzed yet
//! (`reltuples` is -1) is counted exactly instead, so [`ExpiredPartition::rows_estimated`]
//! says which a number is.
//!
//! Each drop is one transaction: `lock_timeout`, the table locked, the partition checked
//! again (still attached, still past the cutoff), `DETACH PARTITION`, `DROP TABLE`,
//! `COMMIT`. A run killed at any moment leaves each partition attached or gone, never in
//! between, and the next run lists what is left. Not `DETACH PARTITION ... CONCURRENTLY`:
//! it cannot run inside a transaction (so the drop could not commit with it), it is refused
//! while the table has a `DEFAULT` partition, and one interrupted between its two
//! transactions leaves the partition "detach pending", attached for some sessions and not
//! for others, until someone runs `... FINALIZE`. The price is an `ACCESS EXCLUSIVE` lock
//! on the table for the few milliseconds of the transaction, bounded by `lock_timeout`. A
//! partition left pending by someone else's concurrent detach is finished with `FINALIZE`
//! (which may run in a transaction) and dropped in the same way.
//!
//! PostgreSQL refuses to detach a partition while a foreign key references rows in it
//! (whatever its `ON DELETE`: a detach deletes nothing), and to drop one that other objects
//! depend on (a view, a foreign key to the partition itself): such a partition is kept and
//! reported with the server's reason, and the others go on.

use std::time::{Duration, Instant};

use tend_schema::model::QualifiedName;
use tokio_postgres::error::SqlState;

use crate::graph::{Link, LinkKind, ReferenceGraph};
use crate::rules::join_sql;

/// The partitions of `table` that one rule drops: those whose whole range of `column` (the
/// partition key, of type `key_type`) is further back than `older_than`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRetention {
    pub table: QualifiedName,
    /// The partition key's type as `format_type` writes it (`timestamp with time zone`,
    /// `date`, ...): bounds are read back as values of it.
    pub key_type: String,
    pub older_than: Duration,
    /// The foreign keys that reference the table: PostgreSQL refuses to detach a partition
    /// while any of them references a row in it.
    pub references: Vec<Link>,
}

/// A partition whose whole range is past the cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiredPartition {
    pub name: QualifiedName,
    /// Its `oid`: a table dropped and made again under the same name is another table.
    pub oid: u32,
    /// `FOR VALUES FROM (...) TO (...)`, as PostgreSQL writes it.
    pub bound: String,
    pub rows: u64,
    /// `rows` comes from the statistics (`reltuples`), not from a count.
    pub rows_estimated: bool,
    /// It is partitioned itself: dropped whole, with its partitions.
    pub partitioned: bool,
    /// How long ago its upper bound passed the cutoff, in seconds.
    pub overdue_seconds: Option<f64>,
    /// The foreign keys that reference rows in it now: PostgreSQL refuses the detach.
    pub referenced_by: Vec<Link>,
}

impl ExpiredPartition {
    /// Whether a foreign key keeps it, as far as the rows read now say.
    pub fn held(&self) -> bool {
        !self.referenced_by.is_empty()
    }
}

/// A partition a run could not drop, and PostgreSQL's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptPartition {
    pub partition: ExpiredPartition,
    pub reason: String,
}

/// How a run of drops goes, so far or in the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DropOutcome {
    pub dropped: Vec<ExpiredPartition>,
    /// Foreign keys reference rows in them, or other objects depend on them.
    pub kept: Vec<KeptPartition>,
    /// Gone or detached by someone else before their turn, or attached again with another
    /// range: left alone.
    pub vanished: u64,
    /// Tries that gave up on a lock (`lock_timeout`) and were made again.
    pub conflicts: u64,
    /// The longest transaction.
    pub longest: Duration,
}

impl DropOutcome {
    /// The rows of the partitions dropped (estimated where their count was).
    pub fn rows(&self) -> u64 {
        self.dropped.iter().map(|p| p.rows).sum()
    }
}

/// Why dropping partitions stopped before the end.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("listing the partitions of {table} failed: {message}")]
    List { table: String, message: String },
    #[error("dropping partition {partition} of {table} failed: {message}")]
    Statement {
        table: String,
        partition: String,
        message: String,
    },
    #[error(
        "dropping partition {partition} of {table} gave up: {times} tries in a row waited longer than lock_timeout ({budget_ms} ms) for the lock{}; try again when it is free",
        holder.as_ref().map(|h| format!(", held by {h}")).unwrap_or_default()
    )]
    Locked {
        table: String,
        partition: String,
        times: u32,
        budget_ms: u64,
        /// Who held a lock on the table or the partition just after the last try.
        holder: Option<String>,
    },
}

/// How drops pace themselves.
#[derive(Debug, Clone)]
pub struct DropOptions {
    /// Each transaction's `lock_timeout`: the longest the table may wait behind it.
    pub lock_timeout: Duration,
    /// Tries of one partition that may meet a lock before the run stops.
    pub tries: u32,
    /// The pause before trying again.
    pub pause: Duration,
}

impl DropOptions {
    /// Five tries, half a second apart, each waiting at most `lock_timeout`.
    pub fn new(lock_timeout: Duration) -> DropOptions {
        DropOptions {
            lock_timeout,
            tries: 5,
            pause: Duration::from_millis(500),
        }
    }
}

impl PartitionRetention {
    /// The rule on `table` (partitioned by range on its `key_type` key) with the foreign
    /// keys `graph` has referencing it (declared links have no constraint to refuse).
    pub fn new(
        graph: &ReferenceGraph,
        table: QualifiedName,
        key_type: impl Into<String>,
        older_than: Duration,
    ) -> PartitionRetention {
        let mut references: Vec<Link> = graph
            .referencing(&table)
            .filter(|l| matches!(l.kind, LinkKind::ForeignKey(_)))
            .cloned()
            .collect();
        references.sort();
        PartitionRetention {
            table,
            key_type: key_type.into(),
            older_than,
            references,
        }
    }

    /// One row per direct partition of the table (`$1`, its name as SQL text) wholly past
    /// the cutoff, oldest first: oid, schema, name, bound, partitioned, detach pending,
    /// seconds overdue, estimated rows (NULL when a leaf was never analyzed). With `one`,
    /// only the partition whose oid is `$2`.
    pub fn expired_sql(&self, one: bool) -> String {
        // The upper bound of a single-column range: `... TO ('<literal>')`, quotes doubled
        // inside. `MAXVALUE` and `DEFAULT` do not match, so they are never past anything.
        let cutoff = format!(
            "(now() - make_interval(secs => {}))",
            self.older_than.as_secs_f64()
        );
        format!(
            "SELECT c.oid, n.nspname::text, c.relname::text, pg_get_expr(c.relpartbound, c.oid),
                    c.relkind = 'p', i.inhdetachpending,
                    CASE WHEN isfinite(u.upper_at)
                         THEN extract(epoch FROM {cutoff} - u.upper_at)::float8 END,
                    (SELECT CASE WHEN bool_and(l.reltuples >= 0) THEN sum(l.reltuples)::float8 END
                       FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                      WHERE t.isleaf)
               FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              CROSS JOIN LATERAL (
                    SELECT replace(m[1], '''''', '''')::{}::timestamptz AS upper_at
                      FROM regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                        ' TO \\(''((?:[^'']|'''')*)''\\)$') m) u
              WHERE i.inhparent = $1::text::regclass
                AND u.upper_at <= {cutoff}{}
              ORDER BY u.upper_at, c.relname",
            self.key_type,
            if one {
                "\n                AND c.oid = $2"
            } else {
                ""
            }
        )
    }

    /// The table's partitions wholly past the cutoff, oldest first, with their rows and
    /// the foreign keys that reference rows in them now. Reads only.
    pub async fn expired(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<Vec<ExpiredPartition>, PartitionError> {
        let failed = |e: tokio_postgres::Error| PartitionError::List {
            table: self.table.to_string(),
            message: tend_pg::error_text(&e),
        };
        let rows = client
            .query(&self.expired_sql(false), &[&self.table.sql()])
            .await
            .map_err(failed)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name = QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2));
            let estimate: Option<f64> = row.get(7);
            let (rows, rows_estimated) = match estimate {
                Some(estimate) => (estimate.max(0.0).round() as u64, true),
                None => {
                    let sql = format!("SELECT count(*) FROM {}", name.sql());
                    let count: i64 = client.query_one(&sql, &[]).await.map_err(failed)?.get(0);
                    (count as u64, false)
                }
            };
            let mut referenced_by = Vec::new();
            for link in &self.references {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {} tend_p WHERE EXISTS (SELECT 1 FROM {} tend_r WHERE {}))",
                    name.sql(),
                    link.child.sql(),
                    join_sql(link, "tend_r", "tend_p")
                );
                let referenced: bool = client.query_one(&sql, &[]).await.map_err(failed)?.get(0);
                if referenced {
                    referenced_by.push(link.clone());
                }
            }
            out.push(ExpiredPartition {
                name,
                oid: row.get(0),
                bound: row.get(3),
                rows,
                rows_estimated,
                partitioned: row.get(4),
                overdue_seconds: row.get::<_, Option<f64>>(6).map(|s| s.max(0.0)),
                referenced_by,
            });
        }
        Ok(out)
    }
}

/// What one transaction did.
enum Dropped {
    Dropped,
    Vanished,
}

/// Detaches and drops `partitions` of `retention`'s table, oldest first, each in a
/// transaction of its own (see the module's doc), until the last or until `stop` says so
/// between two. A partition PostgreSQL refuses to detach (a foreign key references rows in
/// it) or to drop (other objects depend on it) is kept and the run goes on; one that meets
/// a lock is tried again after a pause, and after `options.tries` in a row the run stops
/// with an error naming who holds it. `progress` hears the outcome after each partition.
pub async fn drop_partitions(
    client: &tokio_postgres::Client,
    retention: &PartitionRetention,
    partitions: &[ExpiredPartition],
    options: &DropOptions,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(&DropOutcome) + Sync),
) -> Result<DropOutcome, PartitionError> {
    let table = retention.table.to_string();
    let recheck = client
        .prepare(&retention.expired_sql(true))
        .await
        .map_err(|e| PartitionError::List {
            table: table.clone(),
            message: tend_pg::error_text(&e),
        })?;
    let budget_ms = u64::try_from(options.lock_timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut outcome = DropOutcome::default();
    for partition in partitions {
        if stop() {
            break;
        }
        let mut locked = 0;
        loop {
            let started = Instant::now();
            let result = drop_one(client, retention, &recheck, partition, budget_ms).await;
            outcome.longest = outcome.longest.max(started.elapsed());
            match result {
                Ok(Dropped::Dropped) => outcome.dropped.push(partition.clone()),
                Ok(Dropped::Vanished) => outcome.vanished += 1,
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    outcome.conflicts += 1;
                    locked += 1;
                    if locked >= options.tries {
                        return Err(PartitionError::Locked {
                            table,
                            partition: partition.name.to_string(),
                            times: locked,
                            budget_ms,
                            holder: lock_holder(client, retention, partition).await,
                        });
                    }
                    tokio::time::sleep(options.pause).await;
                    continue;
                }
                Err(e)
                    if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
                        || e.code() == Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST) =>
                {
                    outcome.kept.push(KeptPartition {
                        partition: partition.clone(),
                        reason: tend_pg::error_text(&e),
                    });
                }
                Err(e) => {
                    return Err(PartitionError::Statement {
                        table,
                        partition: partition.name.to_string(),
                        message: tend_pg::error_text(&e),
                    });
                }
            }
            break;
        }
        progress(&outcome);
    }
    Ok(outcome)
}

/// One partition's transaction: committed when it dropped the partition, rolled back
/// otherwise.
async fn drop_one(
    client: &tokio_postgres::Client,
    retention: &PartitionRetention,
    recheck: &tokio_postgres::Statement,
    partition: &ExpiredPartition,
    budget_ms: u64,
) -> Result<Dropped, tokio_postgres::Error> {
    client
        .batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = {budget_ms}"))
        .await?;
    let table = retention.table.sql();
    let result = async {
        // The lock DETACH takes anyway, taken first so the check below still holds when
        // the detach runs. ONLY: without it LOCK would take every partition too.
        client
            .batch_execute(&format!("LOCK TABLE ONLY {table} IN ACCESS EXCLUSIVE MODE"))
            .await?;
        let Some(row) = client.query_opt(recheck, &[&table, &partition.oid]).await? else {
            return Ok(Dropped::Vanished);
        };
        let name = QualifiedName::new(row.get::<_, String>(1), row.get::<_, String>(2)).sql();
        let pending: bool = row.get(5);
        client
            .batch_execute(&format!(
                "ALTER TABLE {table} DETACH PARTITION {name}{}; DROP TABLE {name}",
                if pending { " FINALIZE" } else { "" }
            ))
            .await?;
        Ok(Dropped::Dropped)
    }
    .await;
    match result {
        Ok(Dropped::Dropped) => {
            client.batch_execute("COMMIT").await?;
            Ok(Dropped::Dropped)
        }
        other => {
            let _ = client.batch_execute("ROLLBACK").await;
            other
        }
    }
}

/// The session that has held a lock on the table or the partition longest, for the error.
async fn lock_holder(
    client: &tokio_postgres::Client,
    retention: &PartitionRetention,
    partition: &ExpiredPartition,
) -> Option<String> {
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
                    coalesce(a.state, ''),
                    extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::float8
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.granted AND l.pid <> pg_backend_pid()
                AND l.relation IN ($1::text::regclass, $2)
              ORDER BY a.xact_start NULLS LAST LIMIT 1",
            &[&retention.table.sql(), &partition.oid],
        )
        .await
        .ok()??;
    let pid: i32 = row.get(0);
    let application: String = row.get(1);
    let user: String = row.get(2);
    let state: String = row.get(3);
    let since: Option<f64> = row.get(4);
    Some(format!(
        "PostgreSQL backend pid {pid} (application_name `{application}`, user `{user}`, {state}{})",
        since.map(|s| format!(" for {s:.0} s")).unwrap_or_default()
    ))
}
