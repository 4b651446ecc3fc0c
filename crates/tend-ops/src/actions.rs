//! Maintenance actions: what is running, who blocks whom, ending sessions, vacuum, reindex
//! and optimize. Every action that changes something is first a plan (a list of statements
//! with their reasons), so the binary can show it, ask, or stop at a dry run.

use std::time::Duration;

use serde::Serialize;
use tend_pg::quote_ident;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

/// A session, as `tend queries` and `tend kill` see it.
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub pid: i32,
    pub user: String,
    pub application: String,
    pub client: Option<String>,
    pub state: String,
    pub wait: Option<String>,
    /// Seconds the current query (or the idle-in-transaction state) has lasted.
    pub seconds: f64,
    /// Seconds since the transaction began.
    pub transaction_seconds: Option<f64>,
    pub query: String,
    pub blocked_by: Vec<i32>,
}

/// Client sessions of this database other than ours, longest first. Other databases on
/// the same server are not ours to show or to end.
pub async fn activity(client: &Client) -> Result<Vec<Activity>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''),
                    host(client_addr), coalesce(state, 'unknown'),
                    CASE WHEN wait_event IS NOT NULL THEN wait_event_type || '/' || wait_event END,
                    extract(epoch FROM clock_timestamp() -
                        CASE WHEN state = 'active' THEN query_start ELSE state_change END)::float8,
                    extract(epoch FROM clock_timestamp() - xact_start)::float8,
                    coalesce(query, ''),
                    pg_blocking_pids(pid)
               FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                AND datname = current_database()
              ORDER BY 7 DESC NULLS LAST",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Activity {
            pid: r.get(0),
            user: r.get(1),
            application: r.get(2),
            client: r.get(3),
            state: r.get(4),
            wait: r.get(5),
            seconds: r.get::<_, Option<f64>>(6).unwrap_or(0.0),
            transaction_seconds: r.get(7),
            query: r.get(8),
            blocked_by: r.get(9),
        })
        .collect())
}

/// Sessions of other roles in this database that PostgreSQL shows to this role without
/// their state, times or queries (it lacks pg_read_all_stats), with the role's name:
/// `activity` cannot list them, so callers say how many it could not see.
pub async fn hidden_sessions(client: &Client) -> Result<(i64, String), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT CASE WHEN pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN 0
                         ELSE (SELECT count(*) FROM pg_stat_activity
                                WHERE query = '<insufficient privilege>'
                                  AND datname = current_database())
                    END,
                    current_user::text",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// One node of the blocking tree: a session and those waiting on it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockNode {
    pub session: Activity,
    pub waiting: Vec<BlockNode>,
}

/// The blocking forest: roots are sessions that block others and wait on nobody.
pub fn blocking_tree(sessions: &[Activity]) -> Vec<BlockNode> {
    fn build(pid: i32, sessions: &[Activity], seen: &mut Vec<i32>) -> Option<BlockNode> {
        if seen.contains(&pid) {
            return None;
        }
        seen.push(pid);
        let session = sessions.iter().find(|s| s.pid == pid)?.clone();
        let mut waiting: Vec<BlockNode> = sessions
            .iter()
            .filter(|s| s.blocked_by.contains(&pid))
            .filter_map(|s| build(s.pid, sessions, seen))
            .collect();
        waiting.sort_by(|a, b| b.session.seconds.total_cmp(&a.session.seconds));
        Some(BlockNode { session, waiting })
    }
    let blockers: Vec<i32> = sessions
        .iter()
        .flat_map(|s| s.blocked_by.iter().copied())
        .collect();
    let mut roots = Vec::new();
    let mut seen = Vec::new();
    for session in sessions {
        if blockers.contains(&session.pid)
            && session.blocked_by.is_empty()
            && let Some(node) = build(session.pid, sessions, &mut seen)
        {
            roots.push(node);
        }
    }
    // Cycles (a deadlock about to be broken) have no root: show them from any member.
    for session in sessions {
        if !session.blocked_by.is_empty()
            && !seen.contains(&session.pid)
            && let Some(node) = build(session.pid, sessions, &mut seen)
        {
            roots.push(node);
        }
    }
    roots
}

/// Which sessions `tend kill` ends.
#[derive(Debug, Clone)]
pub enum KillSelection {
    Pids(Vec<i32>),
    IdleInTransaction(Duration),
    LongerThan(Duration),
}

/// A session to end, and why.
#[derive(Debug, Clone, Serialize)]
pub struct KillTarget {
    pub session: Activity,
    pub reason: String,
}

/// The sessions a selection matches (never ours, never a non-client backend).
pub fn kill_targets(sessions: &[Activity], selection: &KillSelection) -> Vec<KillTarget> {
    sessions
        .iter()
        .filter_map(|s| {
            let reason = match selection {
                KillSelection::Pids(pids) => pids.contains(&s.pid).then(|| "named".to_string()),
                KillSelection::IdleInTransaction(d) => (s.state.starts_with("idle in transaction")
                    && s.seconds >= d.as_secs_f64())
                .then(|| format!("idle in transaction for {:.0}s", s.seconds)),
                KillSelection::LongerThan(d) => (s.state == "active"
                    && s.seconds >= d.as_secs_f64())
                .then(|| format!("running one query for {:.0}s", s.seconds)),
            }?;
            Some(KillTarget {
                session: s.clone(),
                reason,
            })
        })
        .collect()
}

/// Cancels (or terminates) a session; true when the signal was sent.
pub async fn signal(
    client: &Client,
    pid: i32,
    terminate: bool,
) -> Result<bool, tokio_postgres::Error> {
    let sql = if terminate {
        "SELECT pg_terminate_backend($1)"
    } else {
        "SELECT pg_cancel_backend($1)"
    };
    Ok(client.query_one(sql, &[&pid]).await?.get(0))
}

/// A statement a maintenance plan would run, with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStatement {
    pub sql: String,
    pub reason: String,
    /// Drops and other changes that need `--apply` and a confirmation.
    pub destructive: bool,
    /// Must run outside a transaction (CONCURRENTLY).
    pub concurrent: bool,
}

/// User tables, qualified and quoted, by name pattern (`schema.table` or `table`).
pub async fn resolve_tables(client: &Client, names: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in names {
        let row = client
            .query_opt(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'm', 'p')",
                &[name],
            )
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        match row {
            Some(row) => out.push(row.get(0)),
            None => return Err(format!("there is no table `{name}` in this database")),
        }
    }
    Ok(out)
}

/// Progress of a running vacuum, from `pg_stat_progress_vacuum`.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumProgress {
    pub phase: String,
    pub scanned: i64,
    pub total: i64,
}

/// The progress of the vacuum run by `pid`, if it is vacuuming.
pub async fn vacuum_progress(
    client: &Client,
    pid: i32,
) -> Result<Option<VacuumProgress>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT phase, heap_blks_scanned, heap_blks_total FROM pg_stat_progress_vacuum WHERE pid = $1",
            &[&pid],
        )
        .await?;
    Ok(row.map(|r| VacuumProgress {
        phase: r.get(0),
        scanned: r.get(1),
        total: r.get(2),
    }))
}

/// What a maintenance command does to a relation, for [`may_maintain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    /// VACUUM or ANALYZE of a table.
    Vacuum,
    /// REINDEX of an index.
    Reindex,
}

/// Whether the session's role may maintain one relation, and who owns it.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceRight {
    /// As given (qualified and quoted).
    pub relation: String,
    pub owner: String,
    pub allowed: bool,
}

/// Whether the role may VACUUM (or REINDEX) each relation, decided before running
/// anything: PostgreSQL's VACUUM only warns and skips a table it may not vacuum, and
/// reports success. The rules are the server's: from PostgreSQL 17 the MAINTAIN privilege
/// on the table; before, its owner (or a member of the owning role), and for VACUUM also
/// the database's owner (shared catalogs aside). Superusers may always.
pub async fn may_maintain(
    client: &Client,
    relations: &[String],
    what: Maintenance,
) -> Result<Vec<MaintenanceRight>, tokio_postgres::Error> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    let allowed = if version >= 170000 {
        "has_table_privilege(t.oid, 'MAINTAIN')"
    } else if what == Maintenance::Vacuum {
        "pg_has_role(t.relowner, 'USAGE') OR (NOT t.relisshared AND pg_has_role(d.datdba, 'USAGE'))"
    } else {
        "pg_has_role(t.relowner, 'USAGE')"
    };
    let sql = format!(
        "SELECT r.rel, pg_get_userbyid(t.relowner)::text, {allowed}
           FROM unnest($1::text[]) WITH ORDINALITY AS r(rel, ord)
           JOIN pg_class c ON c.oid = to_regclass(r.rel)
           LEFT JOIN pg_index i ON i.indexrelid = c.oid
           JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
           JOIN pg_database d ON d.datname = current_database()
          ORDER BY r.ord"
    );
    Ok(client
        .query(&sql, &[&relations])
        .await?
        .into_iter()
        .map(|r| MaintenanceRight {
            relation: r.get(0),
            owner: r.get(1),
            allowed: r.get(2),
        })
        .collect())
}

/// Indexes to rebuild: invalid ones, or named ones.
pub async fn reindex_plan(
    client: &Client,
    invalid: bool,
    bloated_min_ratio: Option<f64>,
    names: &[String],
) -> Result<Vec<PlannedStatement>, String> {
    let mut plan = Vec::new();
    if invalid {
        let rows = client
            .query(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'pg_toast')
                  ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        for row in rows {
            let name: String = row.get(0);
            plan.push(PlannedStatement {
                sql: format!("REINDEX INDEX CONCURRENTLY {name}"),
                reason: "invalid (a failed concurrent build): queries cannot use it, writes still pay for it".to_string(),
                destructive: false,
                concurrent: true,
            });
        }
    }
    if let Some(ratio) = bloated_min_ratio {
        // Leaf density from the btree's statistics is the honest measure, but needs
        // pgstattuple; without it, compare the index's size with what its rows need.
        let rows = client
            .query(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                        c.relpages::float8,
                        greatest(1, ceil(c.reltuples * 24 / 8192.0 / 0.9))::float8
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_am am ON am.oid = c.relam
                  WHERE am.amname = 'btree' AND i.indisvalid AND c.relpages > 128
                    AND n.nspname NOT IN ('pg_catalog', 'pg_toast', 'information_schema')
                  ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        for row in rows {
            let name: String = row.get(0);
            let pages: f64 = row.get(1);
            let needed: f64 = row.get(2);
            if pages / needed >= ratio {
                plan.push(PlannedStatement {
                    sql: format!("REINDEX INDEX CONCURRENTLY {name}"),
                    reason: format!(
                        "about {:.0}x the size its rows need ({pages:.0} pages)",
                        pages / needed
                    ),
                    destructive: false,
                    concurrent: true,
                });
            }
        }
    }
    for name in names {
        let row = client
            .query_opt(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = to_regclass($1) AND c.relkind IN ('i', 'I')",
                &[name],
            )
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        let Some(row) = row else {
            return Err(format!("there is no index `{name}` in this database"));
        };
        let qualified: String = row.get(0);
        plan.push(PlannedStatement {
            sql: format!("REINDEX INDEX CONCURRENTLY {qualified}"),
            reason: "asked for".to_string(),
            destructive: false,
            concurrent: true,
        });
    }
    plan.dedup_by(|a, b| a.sql == b.sql);
    Ok(plan)
}

/// Runs a concurrent statement with a short `lock_timeout`, retrying with jitter when the
/// lock is busy, so it never queues in front of traffic for long. Returns the attempts used.
pub async fn run_with_lock_retries(
    client: &Client,
    sql: &str,
    lock_timeout: Duration,
    attempts: u32,
) -> Result<u32, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}",
            lock_timeout.as_millis().max(1)
        ))
        .await?;
    let mut attempt = 1;
    loop {
        match client.batch_execute(sql).await {
            Ok(()) => break,
            Err(err)
                if err.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
                    && attempt < attempts =>
            {
                // A failed concurrent build leaves an invalid index: REINDEX of the same
                // index simply runs again; CREATE INDEX needs the leftover dropped.
                if let Some(name) = created_index_name(sql) {
                    let _ = client
                        .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                        .await;
                }
                let jitter = jitter_ms(attempt);
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt) + jitter)).await;
                attempt += 1;
            }
            Err(err) => {
                drop_reindex_leftovers(client, sql).await;
                let _ = client.batch_execute("RESET lock_timeout").await;
                return Err(err);
            }
        }
    }
    client.batch_execute("RESET lock_timeout").await?;
    Ok(attempt)
}

/// A failed REINDEX CONCURRENTLY leaves an invalid copy named `<index>_ccnew[N]` behind;
/// drop it, so a failure costs nothing but the time.
async fn drop_reindex_leftovers(client: &Client, sql: &str) {
    let Some(index) = sql.strip_prefix("REINDEX INDEX CONCURRENTLY ") else {
        return;
    };
    let Ok(rows) = client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_class o ON o.oid = to_regclass($1)
              WHERE NOT i.indisvalid AND c.relnamespace = o.relnamespace
                AND starts_with(c.relname::text, o.relname::text || '_ccnew')
                AND substr(c.relname::text, length(o.relname::text) + 7) ~ '^[0-9]*$'",
            &[&index],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let leftover: String = row.get(0);
        let _ = client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {leftover}"))
            .await;
    }
}

fn created_index_name(sql: &str) -> Option<&str> {
    let rest = sql.strip_prefix("CREATE INDEX CONCURRENTLY ")?;
    rest.split_whitespace().next()
}

/// A little randomness without a dependency: the clock's nanoseconds.
fn jitter_ms(attempt: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos % 200) + u64::from(attempt) * 7
}

/// One step of `tend optimize`: the statement, and for an index created or dropped, which
/// (so a project with migrations can write it as a migration, and a Prisma project gets the
/// schema line).
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeStep {
    #[serde(flatten)]
    pub statement: PlannedStatement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexChange>,
}

/// An index `optimize` creates or drops (names unquoted).
#[derive(Debug, Clone, Serialize)]
pub struct IndexChange {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub columns: Vec<String>,
    pub create: bool,
}

impl std::ops::Deref for OptimizeStep {
    type Target = PlannedStatement;
    fn deref(&self) -> &PlannedStatement {
        &self.statement
    }
}

/// What `tend optimize` would do: analyze tables with stale statistics, create the indexes
/// foreign keys lack, and (destructive, needing `--apply` and a confirmation) drop unused
/// and duplicate indexes. A unique index is never proposed for a drop: it enforces a rule
/// (a Prisma `@unique` is one), whether or not queries use it.
pub async fn optimize_plan(
    client: &Client,
    unused_min_bytes: i64,
) -> Result<Vec<OptimizeStep>, tokio_postgres::Error> {
    let mut plan = Vec::new();
    // Stale statistics: never analyzed, or many rows changed since.
    let rows = client
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(relname),
                    coalesce(greatest(last_analyze, last_autoanalyze)::text, 'never'),
                    n_mod_since_analyze, greatest(n_live_tup, 1)
               FROM pg_stat_user_tables
              WHERE schemaname <> 'tend'
                AND ((last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup + n_mod_since_analyze > 0)
                     OR n_mod_since_analyze > 0.2 * greatest(n_live_tup, 1) + 500)
              ORDER BY n_mod_since_analyze DESC LIMIT 200",
            &[],
        )
        .await?;
    for row in rows {
        let table: String = row.get(0);
        let last: String = row.get(1);
        let modified: i64 = row.get(2);
        plan.push(OptimizeStep {
            statement: PlannedStatement {
                sql: format!("ANALYZE {table}"),
                reason: format!(
                    "statistics are stale: last analyzed {last}, {modified} rows changed since"
                ),
                destructive: false,
                concurrent: false,
            },
            index: None,
        });
    }
    // Foreign keys whose columns lead no index: every delete or update of the referenced
    // row scans the referencing table.
    let rows = client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                    c.relname::text, con.conname::text,
                    array_agg(quote_ident(a.attname) ORDER BY k.ord)::text[],
                    array_agg(a.attname::text ORDER BY k.ord)::text[],
                    n.nspname::text
               FROM pg_constraint con
               JOIN pg_class c ON c.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              WHERE con.contype = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                AND NOT EXISTS (
                    SELECT 1 FROM pg_index i
                     WHERE i.indrelid = con.conrelid AND i.indpred IS NULL
                       AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] @> con.conkey
                       AND (i.indkey::int2[])[0:cardinality(con.conkey) - 1] <@ con.conkey)
              GROUP BY n.nspname, c.relname, con.conname
              ORDER BY 1, 3",
            &[],
        )
        .await?;
    for row in rows {
        let table: String = row.get(0);
        let bare: String = row.get(1);
        let constraint: String = row.get(2);
        let quoted_columns: Vec<String> = row.get(3);
        let columns: Vec<String> = row.get(4);
        let schema: String = row.get(5);
        let name = truncate_name(&format!("{bare}_{}_idx", columns.join("_")));
        let index = quote_ident(&name);
        plan.push(OptimizeStep {
            statement: PlannedStatement {
                sql: format!(
                    "CREATE INDEX CONCURRENTLY {index} ON {table} ({})",
                    quoted_columns.join(", ")
                ),
                reason: format!(
                    "the foreign key {constraint} has no index on ({}): deletes and updates of the rows it references scan {table}",
                    columns.join(", ")
                ),
                destructive: false,
                concurrent: true,
            },
            index: Some(IndexChange {
                schema,
                table: bare,
                name,
                columns,
                create: true,
            }),
        });
    }
    // Unused indexes: never scanned since statistics began, not backing a constraint.
    let rows = client
        .query(
            "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.indexrelname),
                    pg_relation_size(s.indexrelid),
                    quote_ident(s.schemaname) || '.' || quote_ident(s.relname),
                    s.indexrelid::oid
               FROM pg_stat_user_indexes s
               JOIN pg_index i ON i.indexrelid = s.indexrelid
              WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
                AND s.schemaname <> 'tend'
                AND pg_relation_size(s.indexrelid) >= $1
              ORDER BY 2 DESC, 1 LIMIT 100",
            &[&unused_min_bytes],
        )
        .await?;
    for row in rows {
        let index: String = row.get(0);
        let bytes: i64 = row.get(1);
        let table: String = row.get(2);
        let oid: u32 = row.get(3);
        plan.push(OptimizeStep {
            statement: PlannedStatement {
                sql: format!("DROP INDEX CONCURRENTLY {index}"),
                reason: format!(
                    "never used since statistics were reset, yet every write to {table} maintains it ({} kB)",
                    bytes / 1024
                ),
                destructive: true,
                concurrent: true,
            },
            index: Some(index_change(client, oid).await?),
        });
    }
    // Duplicate indexes: same table, same definition apart from the name; keep the first.
    let rows = client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                    quote_ident(n.nspname) || '.' || quote_ident(k.relname),
                    d.indexrelid::oid
               FROM (SELECT indrelid, indexrelid, indkey, indclass, indcollation, indoption,
                            coalesce(indexprs::text, '') AS e, coalesce(indpred::text, '') AS p,
                            indisunique,
                            row_number() OVER (PARTITION BY indrelid, indkey::text, indclass::text,
                                coalesce(indexprs::text, ''), coalesce(indpred::text, '')
                                ORDER BY indisunique DESC, indisprimary DESC, indexrelid) AS rn,
                            first_value(indexrelid) OVER (PARTITION BY indrelid, indkey::text, indclass::text,
                                coalesce(indexprs::text, ''), coalesce(indpred::text, '')
                                ORDER BY indisunique DESC, indisprimary DESC, indexrelid) AS keep
                       FROM pg_index) d
               JOIN pg_class c ON c.oid = d.indexrelid
               JOIN pg_class k ON k.oid = d.keep
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE d.rn > 1 AND NOT d.indisunique
                AND n.nspname NOT IN ('pg_catalog', 'pg_toast', 'information_schema', 'tend')
                AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = d.indexrelid)
              ORDER BY 1",
            &[],
        )
        .await?;
    for row in rows {
        let index: String = row.get(0);
        let kept: String = row.get(1);
        let oid: u32 = row.get(2);
        let sql = format!("DROP INDEX CONCURRENTLY {index}");
        if plan.iter().any(|p| p.sql == sql) {
            continue;
        }
        plan.push(OptimizeStep {
            statement: PlannedStatement {
                sql,
                reason: format!("a duplicate of {kept}"),
                destructive: true,
                concurrent: true,
            },
            index: Some(index_change(client, oid).await?),
        });
    }
    Ok(plan)
}

/// Which index an oid is, with its key columns (expressions shown as written).
async fn index_change(client: &Client, oid: u32) -> Result<IndexChange, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT n.nspname::text, t.relname::text, c.relname::text,
                    array(SELECT pg_get_indexdef(i.indexrelid, k, true)
                            FROM generate_series(1, i.indnkeyatts) k ORDER BY k)::text[]
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE i.indexrelid = $1",
            &[&oid],
        )
        .await?;
    Ok(IndexChange {
        schema: row.get(0),
        table: row.get(1),
        name: row.get(2),
        columns: row.get(3),
        create: false,
    })
}

/// PostgreSQL cuts identifiers at 63 bytes; cut on a character boundary ourselves.
fn truncate_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pid: i32, blocked_by: &[i32]) -> Activity {
        Activity {
            pid,
            user: "u".into(),
            application: "a".into(),
            client: None,
            state: "active".into(),
            wait: None,
            seconds: f64::from(pid),
            transaction_seconds: None,
            query: String::new(),
            blocked_by: blocked_by.to_vec(),
        }
    }

    #[test]
    fn blocking_tree_roots_at_the_blocker() {
        let sessions = vec![
            session(1, &[]),
            session(2, &[1]),
            session(3, &[2]),
            session(4, &[1]),
            session(5, &[]),
        ];
        let tree = blocking_tree(&sessions);
        assert_eq!(tree.len(), 1);
        assert_eq!(tree[0].session.pid, 1);
        let children: Vec<i32> = tree[0].waiting.iter().map(|n| n.session.pid).collect();
        assert_eq!(children, vec![4, 2]);
        assert_eq!(tree[0].waiting[1].waiting[0].session.pid, 3);
    }

    #[test]
    fn cycles_still_show() {
        let sessions = vec![session(1, &[2]), session(2, &[1])];
        let tree = blocking_tree(&sessions);
        assert_eq!(tree.len(), 1);
    }

    #[test]
    fn kill_selects_by_state_and_age() {
        let mut idle = session(7, &[]);
        idle.state = "idle in transaction".into();
        idle.seconds = 120.0;
        let mut fast = session(8, &[]);
        fast.seconds = 5.0;
        let mut slow = session(9, &[]);
        slow.seconds = 90.0;
        let all = vec![idle, fast, slow];
        let pick = |sel| -> Vec<i32> {
            kill_targets(&all, &sel)
                .iter()
                .map(|t| t.session.pid)
                .collect()
        };
        assert_eq!(
            pick(KillSelection::IdleInTransaction(Duration::from_secs(60))),
            vec![7]
        );
        assert_eq!(
            pick(KillSelection::LongerThan(Duration::from_secs(60))),
            vec![9]
        );
        assert_eq!(pick(KillSelection::Pids(vec![8, 99])), vec![8]);
    }

    #[test]
    fn index_names_fit_postgres() {
        assert_eq!(truncate_name(&"x".repeat(80)).len(), 63);
        assert_eq!(
            created_index_name("CREATE INDEX CONCURRENTLY \"a_b_idx\" ON t (b)"),
            Some("\"a_b_idx\"")
        );
    }
}

/// Which sessions `tend queries` lists.
#[derive(Debug, Clone, Default)]
pub struct QueryFilter {
    /// Idle sessions too.
    pub all: bool,
    /// Only sessions whose current query (or idle transaction) has lasted this long.
    pub min_duration: Option<Duration>,
}

/// What `tend queries --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct QueriesReport {
    pub sessions: Vec<Activity>,
    /// Sessions of other roles the role could not see (no pg_read_all_stats).
    pub hidden_sessions: i64,
    /// The role the sessions were read as, to name in the warning about hidden ones.
    #[serde(skip)]
    pub user: String,
}

/// Client sessions of this database, longest first, as `filter` selects them.
pub async fn queries(
    client: &Client,
    filter: &QueryFilter,
) -> Result<QueriesReport, tokio_postgres::Error> {
    let sessions = activity(client).await?;
    let (hidden_sessions, user) = hidden_sessions(client).await?;
    let min = filter.min_duration.map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Ok(QueriesReport {
        sessions: sessions
            .into_iter()
            .filter(|s| filter.all || s.state != "idle")
            .filter(|s| s.seconds >= min)
            .collect(),
        hidden_sessions,
        user,
    })
}

/// What `tend locks --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct LocksReport {
    /// Trees rooted at the sessions holding others up.
    pub blocking: Vec<BlockNode>,
    pub hidden_sessions: i64,
    #[serde(skip)]
    pub user: String,
}

/// Who blocks whom in this database now.
pub async fn locks(client: &Client) -> Result<LocksReport, tokio_postgres::Error> {
    let sessions = activity(client).await?;
    let (hidden_sessions, user) = hidden_sessions(client).await?;
    Ok(LocksReport {
        blocking: blocking_tree(&sessions),
        hidden_sessions,
        user,
    })
}

/// The sessions a `tend kill` selection matches, read once, before asking.
#[derive(Debug, Clone)]
pub struct KillPlan {
    pub targets: Vec<KillTarget>,
    /// Pids named that are no client session of this database.
    pub missing: Vec<i32>,
    pub hidden_sessions: i64,
    pub user: String,
}

/// One session `tend kill --dry-run --json` lists.
#[derive(Debug, Clone, Serialize)]
pub struct KillListing {
    pub pid: i32,
    pub application: String,
    pub user: String,
    pub state: String,
    pub reason: String,
    pub query: String,
}

/// What `tend kill --json` prints: nothing matched, what a dry run would signal, or what
/// was signalled.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum KillReport {
    Nothing {
        signalled: Vec<i32>,
        dry_run: bool,
    },
    DryRun {
        dry_run: bool,
        would_signal: Vec<KillListing>,
        terminate: bool,
    },
    Signalled {
        signalled: Vec<i32>,
        terminate: bool,
    },
}

impl KillReport {
    /// The pids signalled (none but in a report of `kill`).
    pub fn signalled(&self) -> &[i32] {
        match self {
            KillReport::Signalled { signalled, .. } => signalled,
            _ => &[],
        }
    }
}

/// Reads the sessions `selection` matches.
pub async fn kill_plan(
    client: &Client,
    selection: &KillSelection,
) -> Result<KillPlan, tokio_postgres::Error> {
    let sessions = activity(client).await?;
    let (hidden_sessions, user) = hidden_sessions(client).await?;
    let targets = kill_targets(&sessions, selection);
    let missing = match selection {
        KillSelection::Pids(pids) => pids
            .iter()
            .copied()
            .filter(|p| !targets.iter().any(|t| t.session.pid == *p))
            .collect(),
        _ => Vec::new(),
    };
    Ok(KillPlan {
        targets,
        missing,
        hidden_sessions,
        user,
    })
}

impl KillPlan {
    /// The report of a run that signals nothing: nothing matched, or a dry run.
    pub fn unsent(&self, dry_run: bool, terminate: bool) -> KillReport {
        if self.targets.is_empty() {
            return KillReport::Nothing {
                signalled: Vec::new(),
                dry_run,
            };
        }
        KillReport::DryRun {
            dry_run: true,
            would_signal: self
                .targets
                .iter()
                .map(|t| KillListing {
                    pid: t.session.pid,
                    application: t.session.application.clone(),
                    user: t.session.user.clone(),
                    state: t.session.state.clone(),
                    reason: t.reason.clone(),
                    query: t.session.query.clone(),
                })
                .collect(),
            terminate,
        }
    }
}

/// Cancels the queries of (or terminates) the plan's sessions; the report lists those the
/// server signalled.
pub async fn kill(
    client: &Client,
    plan: &KillPlan,
    terminate: bool,
) -> Result<KillReport, tokio_postgres::Error> {
    let mut signalled = Vec::new();
    for t in &plan.targets {
        if signal(client, t.session.pid, terminate).await? {
            signalled.push(t.session.pid);
        }
    }
    Ok(KillReport::Signalled {
        signalled,
        terminate,
    })
}

/// Why a maintenance plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// What was asked for is not there (a table or index name); the message says which.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// The relations the role may not maintain, with its name, decided before anything runs.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    pub denied: Vec<MaintenanceRight>,
    /// The session's role.
    pub user: String,
}

impl Refusals {
    async fn read(
        client: &Client,
        rights: &[MaintenanceRight],
    ) -> Result<Refusals, tokio_postgres::Error> {
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .await?
            .get(0);
        Ok(Refusals {
            denied: rights.iter().filter(|r| !r.allowed).cloned().collect(),
            user,
        })
    }

    /// The refused relations with their owners, as one list for messages.
    pub fn list(&self) -> String {
        self.denied
            .iter()
            .map(|r| format!("{} (owner `{}`)", r.relation, r.owner))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A relation left out because the role may not maintain it.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedTable {
    pub table: String,
    pub owner: String,
    pub reason: &'static str,
}

/// An index left out because the role may not rebuild it.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedIndex {
    pub index: String,
    pub owner: String,
    pub reason: &'static str,
}

/// What `tend vacuum` will vacuum, decided before it starts.
#[derive(Debug, Clone)]
pub struct VacuumPlan {
    /// The tables the role may vacuum, in order (most dead rows first by default).
    pub tables: Vec<String>,
    pub refusals: Refusals,
}

/// The tables `names` names (every user table outside `tend` when empty, most dead rows
/// first), and which of them the role may vacuum: VACUUM of a table the role may not
/// vacuum only warns and skips it, so it is decided first.
pub async fn vacuum_plan(client: &Client, names: &[String]) -> Result<VacuumPlan, PlanError> {
    let tables = if names.is_empty() {
        client
            .query(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(relname)
                   FROM pg_stat_user_tables WHERE schemaname <> 'tend'
                  ORDER BY n_dead_tup DESC, relname",
                &[],
            )
            .await?
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    } else {
        resolve_tables(client, names)
            .await
            .map_err(PlanError::NotFound)?
    };
    let rights = may_maintain(client, &tables, Maintenance::Vacuum).await?;
    let refusals = Refusals::read(client, &rights).await?;
    Ok(VacuumPlan {
        tables: rights
            .into_iter()
            .filter(|r| r.allowed)
            .map(|r| r.relation)
            .collect(),
        refusals,
    })
}

/// What happens during `vacuum`, for a progress display.
#[derive(Debug, Clone)]
pub enum VacuumEvent {
    /// A table's VACUUM statement starts.
    Started { table: String },
    /// Progress of the running VACUUM (heap blocks scanned, in percent, when known).
    Progress { percent: Option<u64>, phase: String },
    /// A table is done.
    Finished { sql: String, seconds: f64 },
}

/// One table vacuumed.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumedTable {
    pub table: String,
    pub seconds: f64,
}

/// What `tend vacuum --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    pub vacuumed: Vec<VacuumedTable>,
    pub analyze: bool,
    pub skipped: Vec<SkippedTable>,
    /// Whether every table asked for was vacuumed.
    pub complete: bool,
}

/// Vacuums the plan's tables one by one on `session`, reading the progress of each from
/// `watcher` (another session of the same role) every 200 ms. When `cancel` fires, the
/// running VACUUM is cancelled on the server (`pg_cancel_backend` from `watcher`) and its
/// error (`query_canceled`) returned; the tables done stay done.
pub async fn vacuum(
    session: &Client,
    watcher: &Client,
    plan: &VacuumPlan,
    analyze: bool,
    cancel: &CancellationToken,
    events: &(dyn Fn(VacuumEvent) + Send + Sync),
) -> Result<VacuumReport, tokio_postgres::Error> {
    let pid: i32 = session
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let command = if analyze {
        "VACUUM (ANALYZE)"
    } else {
        "VACUUM"
    };
    let mut vacuumed = Vec::new();
    for table in &plan.tables {
        let started = std::time::Instant::now();
        events(VacuumEvent::Started {
            table: table.clone(),
        });
        let sql = format!("{command} {table}");
        let work = session.batch_execute(&sql);
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => { result?; break; }
                _ = cancel.cancelled() => {
                    let _ = watcher.query_one("SELECT pg_cancel_backend($1)", &[&pid]).await;
                    work.await?;
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Ok(Some(p)) = vacuum_progress(watcher, pid).await {
                        events(VacuumEvent::Progress {
                            percent: (p.total > 0).then(|| (100 * p.scanned / p.total) as u64),
                            phase: p.phase,
                        });
                    }
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        events(VacuumEvent::Finished {
            sql: sql.clone(),
            seconds,
        });
        vacuumed.push(VacuumedTable {
            table: table.clone(),
            seconds,
        });
    }
    Ok(VacuumReport {
        vacuumed,
        analyze,
        skipped: plan
            .refusals
            .denied
            .iter()
            .map(|r| SkippedTable {
                table: r.relation.clone(),
                owner: r.owner.clone(),
                reason: "not allowed",
            })
            .collect(),
        complete: plan.refusals.denied.is_empty(),
    })
}

const REINDEX: &str = "REINDEX INDEX CONCURRENTLY ";

/// What `tend reindex` will rebuild, decided before it starts.
#[derive(Debug, Clone)]
pub struct ReindexPlan {
    /// The statements the role may run.
    pub statements: Vec<PlannedStatement>,
    pub refusals: Refusals,
}

/// One index rebuilt.
#[derive(Debug, Clone, Serialize)]
pub struct Rebuilt {
    pub sql: String,
    pub reason: String,
    /// How many tries it took to get the lock.
    pub attempts: u32,
}

/// What `tend reindex --json` prints: nothing to rebuild, a dry run's statements, or what
/// was rebuilt.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ReindexReport {
    Nothing {
        statements: Vec<PlannedStatement>,
        skipped: Vec<SkippedIndex>,
    },
    DryRun {
        dry_run: bool,
        statements: Vec<PlannedStatement>,
        skipped: Vec<SkippedIndex>,
    },
    Rebuilt {
        rebuilt: Vec<Rebuilt>,
        skipped: Vec<SkippedIndex>,
    },
}

/// The indexes to rebuild (invalid ones, btree indexes at least `bloated_min_ratio` times
/// the size their rows need, named ones), and which of them the role may rebuild.
pub async fn reindex_checked_plan(
    client: &Client,
    invalid: bool,
    bloated_min_ratio: Option<f64>,
    names: &[String],
) -> Result<ReindexPlan, PlanError> {
    let statements = reindex_plan(client, invalid, bloated_min_ratio, names)
        .await
        .map_err(PlanError::NotFound)?;
    let indexes: Vec<String> = statements
        .iter()
        .map(|p| p.sql.trim_start_matches(REINDEX).to_string())
        .collect();
    let rights = may_maintain(client, &indexes, Maintenance::Reindex).await?;
    let refusals = Refusals::read(client, &rights).await?;
    Ok(ReindexPlan {
        statements: statements
            .into_iter()
            .filter(|p| {
                let name = p.sql.trim_start_matches(REINDEX);
                !refusals.denied.iter().any(|r| r.relation == name)
            })
            .collect(),
        refusals,
    })
}

impl ReindexPlan {
    fn skipped(&self) -> Vec<SkippedIndex> {
        self.refusals
            .denied
            .iter()
            .map(|r| SkippedIndex {
                index: r.relation.clone(),
                owner: r.owner.clone(),
                reason: "not allowed",
            })
            .collect()
    }

    /// The report of a run that rebuilds nothing: nothing to do, or a dry run.
    pub fn unrun(&self, dry_run: bool) -> ReindexReport {
        if self.statements.is_empty() {
            ReindexReport::Nothing {
                statements: Vec::new(),
                skipped: self.skipped(),
            }
        } else {
            ReindexReport::DryRun {
                dry_run,
                statements: self.statements.clone(),
                skipped: self.skipped(),
            }
        }
    }
}

/// Rebuilds the plan's indexes one by one, each under a 1 s lock_timeout retried with
/// jitter (six tries); `starting` hears of each statement before it runs. When `cancel`
/// fires, no further index is started (the report lists those rebuilt).
pub async fn reindex(
    client: &Client,
    plan: &ReindexPlan,
    cancel: &CancellationToken,
    starting: &(dyn Fn(&PlannedStatement) + Send + Sync),
) -> Result<ReindexReport, tokio_postgres::Error> {
    let mut rebuilt = Vec::new();
    for p in &plan.statements {
        if cancel.is_cancelled() {
            break;
        }
        starting(p);
        let attempts = run_with_lock_retries(client, &p.sql, Duration::from_secs(1), 6).await?;
        rebuilt.push(Rebuilt {
            sql: p.sql.clone(),
            reason: p.reason.clone(),
            attempts,
        });
    }
    Ok(ReindexReport::Rebuilt {
        rebuilt,
        skipped: plan.skipped(),
    })
}
