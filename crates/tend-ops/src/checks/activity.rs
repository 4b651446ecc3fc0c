//! Checks of what sessions are doing now: connections, transactions, locks and queries.

use crate::check::{Category, Check, Rule, Severity, Unit};

pub static CHECKS: &[Check] = &[
    Check {
        id: "connections.usage",
        category: Category::Connections,
        title: "connections in use against max_connections",
        rule: Rule::AtLeast,
        unit: Unit::Percent,
        warning: Some(80.0),
        critical: Some(95.0),
        sql: "SELECT 'server',
                     100.0 * count(*) / current_setting('max_connections')::float8,
                     count(*) || ' of ' || current_setting('max_connections') || ' connections in use'
                FROM pg_stat_activity
               WHERE backend_type = 'client backend'",
        finding: "{value} of max_connections is in use ({detail})",
        remedy: "Put a connection pooler (PgBouncer in transaction mode) in front of the database, lower the pool sizes of the applications, or raise max_connections (a restart).",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "connections.count",
        category: Category::Connections,
        title: "the number of client connections",
        rule: Rule::AtLeast,
        unit: Unit::Count,
        // Off until a team sets its own number (DB_CONNECTION_COUNT_THRESHOLD).
        warning: None,
        critical: None,
        sql: "SELECT 'server', count(*)::float8, count(*) || ' client connections'
                FROM pg_stat_activity WHERE backend_type = 'client backend'",
        finding: "{detail}, at or above the configured threshold",
        remedy: "Find which application opens them (`tend check --only connections.by_application`) and lower its pool size.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "connections.by_application",
        category: Category::Connections,
        title: "connections held by one application",
        rule: Rule::AtLeast,
        unit: Unit::Percent,
        warning: Some(50.0),
        critical: Some(80.0),
        sql: "SELECT coalesce(nullif(application_name, ''), '(no application_name)') || ' as ' || coalesce(usename::text, '?'),
                     100.0 * count(*) / current_setting('max_connections')::float8,
                     count(*) || ' connections: ' || string_agg(DISTINCT coalesce(state, '?'), ', ')
                FROM pg_stat_activity
               WHERE backend_type = 'client backend'
               GROUP BY application_name, usename",
        finding: "{subject} holds {value} of max_connections ({detail})",
        remedy: "Lower that application's pool size, or route it through a pooler.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "connections.idle",
        category: Category::Connections,
        title: "idle connections",
        rule: Rule::AtLeast,
        unit: Unit::Percent,
        warning: Some(50.0),
        critical: None,
        sql: "SELECT 'server',
                     100.0 * count(*) FILTER (WHERE state = 'idle') / current_setting('max_connections')::float8,
                     count(*) FILTER (WHERE state = 'idle') || ' idle of ' || count(*) || ' client connections'
                FROM pg_stat_activity WHERE backend_type = 'client backend'",
        finding: "{value} of max_connections is held by idle sessions ({detail})",
        remedy: "Idle sessions still cost memory and slots: shrink the applications' pools, set idle timeouts in them, or use a pooler.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "transactions.idle_in_transaction",
        category: Category::Connections,
        title: "sessions idle in a transaction",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(60.0),
        critical: Some(300.0),
        sql: "SELECT 'pid ' || pid || ' (' || coalesce(nullif(application_name, ''), '?') || ', ' || coalesce(usename::text, '?') || ')',
                     extract(epoch FROM clock_timestamp() - state_change)::float8,
                     left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 80)
                FROM pg_stat_activity
               WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
                 AND pid <> pg_backend_pid()",
        finding: "{subject} has been idle in a transaction for {value}, holding its locks and the xmin horizon (last: {detail})",
        remedy: "Fix the code path that leaves the transaction open; set idle_in_transaction_session_timeout (e.g. '5min') for the role; end this one with `tend kill PID`.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "transactions.long_running",
        category: Category::Connections,
        title: "transactions open for a long time",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(600.0),
        critical: Some(3600.0),
        sql: "SELECT 'pid ' || pid || ' (' || coalesce(nullif(application_name, ''), '?') || ', ' || coalesce(usename::text, '?') || ')',
                     extract(epoch FROM clock_timestamp() - xact_start)::float8,
                     coalesce(state, '?')
                FROM pg_stat_activity
               WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend'",
        finding: "{subject} has had a transaction open for {value} ({detail}); vacuum cannot clean rows it may still see",
        remedy: "Commit in smaller batches; find the session with `tend queries` and end it with `tend kill PID` if it is stuck.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "transactions.prepared_old",
        category: Category::Connections,
        title: "old prepared (two-phase) transactions",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(300.0),
        critical: Some(3600.0),
        sql: "SELECT gid, extract(epoch FROM now() - prepared)::float8, 'owner ' || owner || ', database ' || database
                FROM pg_prepared_xacts",
        finding: "the prepared transaction {subject} has waited {value} for COMMIT PREPARED ({detail}); it holds locks and the xmin horizon",
        remedy: "Have the transaction manager finish it, or end it by hand: `COMMIT PREPARED 'gid'` or `ROLLBACK PREPARED 'gid'`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "locks.blocked",
        category: Category::Locks,
        title: "sessions blocked by locks",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(60.0),
        critical: Some(300.0),
        sql: "SELECT 'pid ' || a.pid || ' (' || coalesce(nullif(a.application_name, ''), '?') || ')',
                     extract(epoch FROM clock_timestamp() - coalesce(a.query_start, a.state_change))::float8,
                     'blocked by pid ' || array_to_string(pg_blocking_pids(a.pid), ', ') ||
                     ' on ' || coalesce(a.wait_event_type, '?') || '/' || coalesce(a.wait_event, '?') ||
                     ': ' || left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 60)
                FROM pg_stat_activity a
               WHERE a.wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(a.pid)) > 0",
        finding: "{subject} has waited {value} for a lock, {detail}",
        remedy: "See the whole chain with `tend locks`; end the blocker at its root with `tend kill PID` (or `--terminate`); set lock_timeout in migrations so DDL never queues behind traffic.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "locks.exclusive_queue",
        category: Category::Locks,
        title: "sessions waiting for an ACCESS EXCLUSIVE lock",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(5.0),
        critical: Some(30.0),
        sql: "SELECT 'pid ' || a.pid || ' on ' || coalesce(l.relation::regclass::text, '?'),
                     extract(epoch FROM clock_timestamp() - coalesce(a.query_start, a.state_change))::float8,
                     (SELECT count(*) FROM pg_locks w WHERE w.relation = l.relation AND NOT w.granted AND w.pid <> a.pid)
                       || ' other sessions queued behind it'
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE NOT l.granted AND l.mode = 'AccessExclusiveLock' AND l.locktype = 'relation'",
        finding: "{subject} has waited {value} for an ACCESS EXCLUSIVE lock, and every query on the table now queues behind it ({detail})",
        remedy: "Cancel the DDL (`tend kill PID`) and run it again with a short lock_timeout and retries (tend migrate's `migrate.lock_timeout`).",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "locks.exclusive_held",
        category: Category::Locks,
        title: "ACCESS EXCLUSIVE locks held on relations",
        // Held at all, it is worth knowing (nothing can read the relation, and checks that
        // would read it report that they could not); held long, it is an outage.
        rule: Rule::AtLeastElseInfo,
        unit: Unit::Seconds,
        warning: Some(60.0),
        critical: Some(300.0),
        sql: "SELECT coalesce(l.relation::regclass::text, '?') || ' by pid ' || a.pid
                       || ' (' || coalesce(nullif(a.application_name, ''), '?') || ', ' || coalesce(a.usename::text, '?') || ')',
                     extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.state_change))::float8,
                     'session ' || coalesce(a.state, '?') || ', '
                       || (SELECT count(*) FROM pg_locks w WHERE w.locktype = 'relation' AND w.relation = l.relation
                              AND w.database = l.database AND NOT w.granted)
                       || ' sessions waiting for it'
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.pid <> pg_backend_pid()",
        finding: "{subject} holds an ACCESS EXCLUSIVE lock, for {value} so far ({detail}): no one can read it until that transaction ends",
        remedy: "If it is not a migration in progress, end the transaction that holds it (`tend locks` shows the chain, `tend kill PID --terminate` ends it); DDL should run with a short lock_timeout.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "locks.deadlocks",
        category: Category::Locks,
        title: "deadlocks since statistics were reset",
        rule: Rule::AtLeast,
        unit: Unit::Count,
        warning: Some(1.0),
        critical: Some(100.0),
        sql: "SELECT datname::text, deadlocks::float8,
                     'since ' || coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'the cluster started')
                FROM pg_stat_database WHERE datname = current_database()",
        finding: "{value} deadlocks in {subject} ({detail})",
        remedy: "Deadlocks mean two code paths lock the same rows in different orders: make them lock in one order (e.g. by primary key) or lock up front with SELECT ... FOR UPDATE; log_lock_waits shows which statements collide.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "queries.long_running",
        category: Category::Queries,
        title: "long-running queries",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(60.0),
        critical: Some(300.0),
        sql: "SELECT 'pid ' || pid || ' (' || coalesce(nullif(application_name, ''), '?') || ', ' || coalesce(usename::text, '?') || ')',
                     extract(epoch FROM clock_timestamp() - query_start)::float8,
                     left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 80)
                FROM pg_stat_activity
               WHERE state = 'active' AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend'",
        finding: "{subject} has run one query for {value}: {detail}",
        remedy: "Look at its plan (EXPLAIN), add the index it lacks, or set statement_timeout for the role; `tend kill PID` cancels it.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "queries.slow_statements",
        category: Category::Queries,
        title: "statements slow on average (pg_stat_statements)",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(1.0),
        critical: Some(10.0),
        sql: "SELECT left(regexp_replace(s.query, '\\s+', ' ', 'g'), 80),
                     s.mean_exec_time / 1000.0,
                     s.calls || ' calls, ' || round(s.total_exec_time::numeric / 1000, 1) || ' s in all'
                FROM pg_stat_statements s
               WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND s.calls >= 5 AND s.mean_exec_time / 1000.0 >= $1
               ORDER BY s.total_exec_time DESC LIMIT 20",
        finding: "`{subject}` takes {value} on average ({detail})",
        remedy: "EXPLAIN (ANALYZE, BUFFERS) the statement and add the index or rewrite it; the slowest by total time pay back first.",
        min_major: 13,
        extension: Some("pg_stat_statements"),
        reads_sessions: false,
    },
    Check {
        id: "queries.cache_hit_ratio",
        category: Category::Queries,
        title: "the share of table reads served from memory",
        rule: Rule::AtMost,
        unit: Unit::Percent,
        warning: Some(99.0),
        critical: Some(95.0),
        sql: "SELECT 'tables', (100.0 * sum(heap_blks_hit) / nullif(sum(heap_blks_hit) + sum(heap_blks_read), 0))::float8,
                     sum(heap_blks_read) || ' blocks read from disk'
                FROM pg_statio_user_tables
              HAVING sum(heap_blks_hit) + sum(heap_blks_read) > 10000",
        finding: "only {value} of table reads come from shared buffers ({detail})",
        remedy: "The working set does not fit in memory: raise shared_buffers (about 25% of RAM), add RAM, or cut what queries read (indexes, narrower selects).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "queries.index_hit_ratio",
        category: Category::Queries,
        title: "the share of index reads served from memory",
        rule: Rule::AtMost,
        unit: Unit::Percent,
        warning: Some(99.0),
        critical: Some(95.0),
        sql: "SELECT 'indexes', (100.0 * sum(idx_blks_hit) / nullif(sum(idx_blks_hit) + sum(idx_blks_read), 0))::float8,
                     sum(idx_blks_read) || ' blocks read from disk'
                FROM pg_statio_user_indexes
              HAVING sum(idx_blks_hit) + sum(idx_blks_read) > 10000",
        finding: "only {value} of index reads come from shared buffers ({detail})",
        remedy: "Raise shared_buffers or RAM, and drop unused indexes that compete for memory (`tend check --only indexes.unused`).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "queries.temp_files",
        category: Category::Queries,
        title: "temporary files written by queries",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        warning: Some(1_073_741_824.0),
        critical: Some(107_374_182_400.0),
        sql: "SELECT datname::text, temp_bytes::float8,
                     temp_files || ' files since ' || coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'the cluster started')
                FROM pg_stat_database WHERE datname = current_database()",
        finding: "queries in {subject} spilled {value} to temporary files ({detail})",
        remedy: "Sorts and hashes overflow work_mem: find them with log_temp_files = 0, add indexes that avoid the sort, or raise work_mem for the roles that need it.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "connections.waiting_clients",
        category: Category::Connections,
        title: "client sessions waiting on anything but the client",
        rule: Rule::AtLeast,
        unit: Unit::Percent,
        warning: Some(50.0),
        critical: None,
        sql: "SELECT 'server',
                     (100.0 * count(*) FILTER (WHERE wait_event_type IS NOT NULL AND wait_event_type NOT IN ('Client', 'Activity'))
                       / nullif(count(*) FILTER (WHERE state = 'active'), 0))::float8,
                     count(*) FILTER (WHERE state = 'active') || ' active sessions'
                FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
              HAVING count(*) FILTER (WHERE state = 'active') >= 5",
        finding: "{value} of active sessions are waiting (on locks, I/O or LWLocks) rather than working ({detail})",
        remedy: "Look at the wait events with `tend queries`: Lock means contention (see `tend locks`), IO means the disk is the limit, LWLock often means too many connections.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "locks.advisory_held",
        category: Category::Locks,
        title: "advisory locks held by idle sessions",
        rule: Rule::Each(Severity::Info),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT 'pid ' || a.pid || ' (' || coalesce(nullif(a.application_name, ''), '?') || ')',
                     count(*)::float8,
                     count(*) || ' advisory locks, session ' || a.state
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND a.state = 'idle'
                 AND a.pid <> pg_backend_pid()
               GROUP BY a.pid, a.application_name, a.state",
        finding: "{subject} holds {detail}",
        remedy: "Usually a job runner or a deploy lock; if its owner is gone, `tend kill PID --terminate` releases it.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
];
