//! Checks of what keeps a server healthy over time: transaction id wraparound, vacuum and
//! analyze, the xmin horizon, sizes, replication and its slots, checkpoints and WAL archiving.

use crate::check::{Category, Check, Rule, Severity, Unit};

pub static CHECKS: &[Check] = &[
    Check {
        id: "wraparound.database_xid_age",
        category: Category::Wraparound,
        title: "transaction id age of each database",
        rule: Rule::AtLeast,
        unit: Unit::Xids,
        // Autovacuum forces freezing at autovacuum_freeze_max_age (200 million by default);
        // 500 million means it has been failing to catch up for a long time, even where
        // that setting was raised to 400 million. 1.2 billion leaves about 900 million
        // transactions before the server stops assigning new ones at 2^31.
        warning: Some(500_000_000.0),
        critical: Some(1_200_000_000.0),
        sql: "SELECT datname::text,
                     age(datfrozenxid)::float8,
                     round(100.0 * age(datfrozenxid) / 2147483648, 1) || '% of the way to the 2^31 stop, about '
                       || round((2147483648 - age(datfrozenxid)) / 1e6) || ' million transactions left; autovacuum_freeze_max_age is '
                       || current_setting('autovacuum_freeze_max_age')
                FROM pg_database
               ORDER BY age(datfrozenxid) DESC",
        finding: "database {subject} has {value} transactions since it was last fully frozen ({detail})",
        remedy: "Find its oldest tables with `tend check --only wraparound.table_xid_age` (connected to that database) and run `VACUUM (FREEZE, VERBOSE) table;` on them; first end whatever holds the xmin horizon back (`tend check --only xmin.horizon`), or the freeze cannot advance.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "wraparound.table_xid_age",
        category: Category::Wraparound,
        title: "tables with the oldest unfrozen transaction ids",
        rule: Rule::AtLeast,
        unit: Unit::Xids,
        warning: Some(500_000_000.0),
        critical: Some(1_200_000_000.0),
        // Every schema counts here: catalogs and orphaned temporary tables (which autovacuum
        // cannot vacuum) hold datfrozenxid back as much as application tables do.
        sql: "SELECT s.oid::regclass::text,
                     s.xid_age::float8,
                     CASE WHEN s.relpersistence = 't'
                          THEN 'a temporary table: autovacuum cannot vacuum it, only its own session can, or DROP it; '
                          ELSE '' END
                       || CASE WHEN s.toast_age > s.heap_age THEN 'its TOAST table is the oldest part; ' ELSE '' END
                       || coalesce('last vacuumed ' || to_char(greatest(pg_stat_get_last_vacuum_time(s.oid), pg_stat_get_last_autovacuum_time(s.oid)), 'YYYY-MM-DD HH24:MI'), 'no vacuum recorded')
                       || ', ' || pg_size_pretty(s.relpages::bigint * current_setting('block_size')::bigint)
                FROM (SELECT c.oid, c.relpersistence, c.relpages,
                             age(c.relfrozenxid) AS heap_age,
                             coalesce(age(t.relfrozenxid), 0) AS toast_age,
                             greatest(age(c.relfrozenxid), age(t.relfrozenxid)) AS xid_age
                        FROM pg_class c
                        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
                       WHERE c.relkind IN ('r', 'm')
                         AND greatest(age(c.relfrozenxid), age(t.relfrozenxid)) >= least($1::float8, $2::float8)
                       ORDER BY xid_age DESC
                       LIMIT 20) s
               ORDER BY s.xid_age DESC",
        finding: "{subject} has {value} transactions since it was last frozen ({detail})",
        remedy: "Run `VACUUM (FREEZE, VERBOSE) table;` in a quiet hour (it reads the whole table) and check that autovacuum is not being cancelled on it; end whatever holds the xmin horizon back first (`tend check --only xmin.horizon`).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "wraparound.multixact_age",
        category: Category::Wraparound,
        title: "multixact id age of databases and tables",
        rule: Rule::AtLeast,
        unit: Unit::Xids,
        // 1.5 times the default autovacuum_multixact_freeze_max_age (400 million); the
        // multixact space wraps at 2^31 like transaction ids.
        warning: Some(600_000_000.0),
        critical: Some(1_200_000_000.0),
        sql: "SELECT * FROM (
                SELECT 'database ' || datname,
                       mxid_age(datminmxid)::float8,
                       'autovacuum_multixact_freeze_max_age is ' || current_setting('autovacuum_multixact_freeze_max_age')
                  FROM pg_database
                 WHERE mxid_age(datminmxid) >= least($1::float8, $2::float8)
                UNION ALL
                (SELECT c.oid::regclass::text,
                        mxid_age(c.relminmxid)::float8,
                        'a table of ' || pg_size_pretty(c.relpages::bigint * current_setting('block_size')::bigint)
                   FROM pg_class c
                  WHERE c.relkind IN ('r', 'm')
                    AND mxid_age(c.relminmxid) >= least($1::float8, $2::float8)
                  ORDER BY 2 DESC
                  LIMIT 20)
              ) m
              ORDER BY 2 DESC",
        finding: "{subject} has a multixact age of {value} ({detail})",
        remedy: "Run `VACUUM (FREEZE, VERBOSE) table;` on the oldest tables of that database; multixacts come from row locks shared by several transactions (SELECT ... FOR SHARE/KEY SHARE, foreign keys), so also look for long transactions that keep them alive.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "vacuum.dead_tuples",
        category: Category::Vacuum,
        title: "tables with many dead rows",
        rule: Rule::AtLeast,
        unit: Unit::Percent,
        // Autovacuum starts at 20% of the rows by default (about 17% of all tuples are then
        // dead): above 25% it is behind or cannot remove them; at 50% half the table is
        // garbage. Tables with fewer than 10,000 dead rows are left out.
        warning: Some(25.0),
        critical: Some(50.0),
        sql: "SELECT c.oid::regclass::text,
                     (100.0 * d.dead / (d.dead + d.live))::float8,
                     d.dead || ' dead and ' || d.live || ' live rows; '
                       || coalesce('last vacuumed ' || to_char(greatest(pg_stat_get_last_vacuum_time(c.oid), pg_stat_get_last_autovacuum_time(c.oid)), 'YYYY-MM-DD HH24:MI'), 'never vacuumed')
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
               CROSS JOIN LATERAL (SELECT pg_stat_get_dead_tuples(c.oid) AS dead,
                                          pg_stat_get_live_tuples(c.oid) AS live) d
               WHERE c.relkind IN ('r', 'm')
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
                 AND d.dead >= 10000
                 AND 100.0 * d.dead / (d.dead + d.live) >= least($1::float8, $2::float8)
               ORDER BY d.dead DESC
               LIMIT 50",
        finding: "{value} of the rows in {subject} are dead ({detail})",
        remedy: "Run `VACUUM (VERBOSE) table;`: if it reports many dead rows 'not yet removable', end what holds the xmin horizon (`tend check --only xmin.horizon`); otherwise make autovacuum visit the table sooner with `ALTER TABLE table SET (autovacuum_vacuum_scale_factor = 0.02);`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "vacuum.stale",
        category: Category::Vacuum,
        title: "tables that need a vacuum and have not had one for long",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        // A table past its autovacuum threshold is normally vacuumed within a minute or
        // two; a day means autovacuum is off, starved or cancelled on it.
        warning: Some(86_400.0),
        critical: Some(604_800.0),
        sql: "SELECT s.oid::regclass::text,
                     extract(epoch FROM now() - coalesce(s.last_vacuum, s.since))::float8,
                     s.dead || ' dead rows, autovacuum starts at ' || round(s.trigger) || '; '
                       || CASE WHEN s.last_vacuum IS NULL
                               THEN 'never vacuumed since ' || to_char(s.since, 'YYYY-MM-DD HH24:MI')
                               ELSE 'last vacuumed ' || to_char(s.last_vacuum, 'YYYY-MM-DD HH24:MI') END
                       || CASE WHEN NOT s.enabled THEN '; autovacuum is disabled on it' ELSE '' END
                FROM (SELECT c.oid,
                             pg_stat_get_dead_tuples(c.oid) AS dead,
                             greatest(pg_stat_get_last_vacuum_time(c.oid), pg_stat_get_last_autovacuum_time(c.oid)) AS last_vacuum,
                             coalesce((SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                                      pg_postmaster_start_time()) AS since,
                             coalesce((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions)
                                        WHERE option_name = 'autovacuum_vacuum_threshold'),
                                      current_setting('autovacuum_vacuum_threshold')::float8)
                               + coalesce((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions)
                                            WHERE option_name = 'autovacuum_vacuum_scale_factor'),
                                          current_setting('autovacuum_vacuum_scale_factor')::float8)
                                 * greatest(c.reltuples, 0) AS trigger,
                             coalesce((SELECT option_value::bool FROM pg_options_to_table(c.reloptions)
                                        WHERE option_name = 'autovacuum_enabled'), true) AS enabled
                        FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'm')
                         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                         AND n.nspname !~ '^pg_(toast|temp_)'
                         AND pg_stat_get_dead_tuples(c.oid) > 0) s
               WHERE s.dead > s.trigger
                 AND extract(epoch FROM now() - coalesce(s.last_vacuum, s.since)) >= least($1::float8, $2::float8)
               ORDER BY 2 DESC
               LIMIT 50",
        finding: "{subject} needs a vacuum and has not had one for {value} ({detail})",
        remedy: "Run `VACUUM (VERBOSE) table;` now; then find out why autovacuum skips it: disabled on the table (`ALTER TABLE table RESET (autovacuum_enabled);`), all autovacuum workers busy elsewhere (raise autovacuum_max_workers), or its runs cancelled by frequent locks (see the server log).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "vacuum.stale_analyze",
        category: Category::Vacuum,
        title: "tables whose planner statistics are out of date",
        rule: Rule::AtLeast,
        unit: Unit::Percent,
        // Autoanalyze starts at 10% changed rows by default; twice that means it is behind.
        // Stale statistics make plans worse, not the server unavailable: no critical.
        warning: Some(20.0),
        critical: None,
        sql: "SELECT s.oid::regclass::text,
                     s.changed::float8,
                     s.mods || ' rows changed since '
                       || coalesce('the last analyze at ' || to_char(s.last_analyze, 'YYYY-MM-DD HH24:MI'), 'statistics began; never analyzed')
                FROM (SELECT c.oid,
                             pg_stat_get_mod_since_analyze(c.oid) AS mods,
                             100.0 * pg_stat_get_mod_since_analyze(c.oid)
                               / greatest(c.reltuples, pg_stat_get_live_tuples(c.oid), 1) AS changed,
                             greatest(pg_stat_get_last_analyze_time(c.oid), pg_stat_get_last_autoanalyze_time(c.oid)) AS last_analyze
                        FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'm')
                         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                         AND n.nspname !~ '^pg_(toast|temp_)'
                         AND pg_stat_get_mod_since_analyze(c.oid) >= 1000) s
               WHERE s.changed >= $1::float8
               ORDER BY s.mods DESC
               LIMIT 50",
        finding: "{value} of {subject} changed since its statistics were gathered ({detail}); the planner works from a wrong picture of it",
        remedy: "Run `ANALYZE table;` (and after every bulk load); if autoanalyze keeps falling behind on it, `ALTER TABLE table SET (autovacuum_analyze_scale_factor = 0.02);`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "vacuum.autovacuum_disabled",
        category: Category::Vacuum,
        title: "tables with autovacuum turned off",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Count,
        warning: None,
        critical: None,
        sql: "SELECT s.oid::regclass::text,
                     pg_stat_get_dead_tuples(s.oid)::float8,
                     CASE WHEN s.heap_off AND s.toast_off THEN 'the table and its TOAST table'
                          WHEN s.heap_off THEN 'the table'
                          ELSE 'its TOAST table' END
                       || ', ' || pg_stat_get_dead_tuples(s.oid) || ' dead rows now'
                FROM (SELECT c.oid,
                             coalesce((SELECT NOT option_value::bool FROM pg_options_to_table(c.reloptions)
                                        WHERE option_name = 'autovacuum_enabled'), false) AS heap_off,
                             coalesce((SELECT NOT option_value::bool FROM pg_options_to_table(t.reloptions)
                                        WHERE option_name = 'autovacuum_enabled'), false) AS toast_off
                        FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
                       WHERE c.relkind IN ('r', 'm')
                         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                         AND n.nspname !~ '^pg_(toast|temp_)'
                         AND (c.reloptions IS NOT NULL OR t.reloptions IS NOT NULL)) s
               WHERE s.heap_off OR s.toast_off
               ORDER BY 2 DESC
               LIMIT 50",
        finding: "autovacuum is disabled for {subject} ({detail})",
        remedy: "Turn it back on with `ALTER TABLE table RESET (autovacuum_enabled, toast.autovacuum_enabled);`; if it was off because autovacuum got in the way, tune it for the table (autovacuum_vacuum_cost_delay, scale factors) instead.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "vacuum.long_running",
        category: Category::Vacuum,
        title: "vacuums running for a long time",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        // Big tables take a while; an hour is worth a look, half a day means it is throttled
        // too hard, repeats its index passes or is stuck.
        warning: Some(3600.0),
        critical: Some(43_200.0),
        sql: "SELECT 'pid ' || p.pid || ' on '
                       || CASE WHEN p.datname = current_database() THEN coalesce(p.relid::regclass::text, '?')
                               ELSE 'relation ' || p.relid || ' in database ' || p.datname END,
                     extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start))::float8,
                     CASE WHEN a.query ILIKE '%to prevent wraparound%' THEN 'an autovacuum to prevent wraparound (do not cancel it, it restarts at once)'
                          WHEN a.backend_type = 'autovacuum worker' THEN 'an autovacuum'
                          ELSE 'a manual VACUUM' END
                       || ', phase ' || p.phase
                       || coalesce(', ' || round(100.0 * p.heap_blks_scanned / nullif(p.heap_blks_total, 0)) || '% of the heap scanned', '')
                       || ', ' || p.index_vacuum_count || ' index passes'
                FROM pg_stat_progress_vacuum p
                LEFT JOIN pg_stat_activity a ON a.pid = p.pid
               ORDER BY 2 DESC
               LIMIT 50",
        finding: "{subject} has been vacuuming for {value}: {detail}",
        remedy: "Let autovacuum go faster: raise autovacuum_vacuum_cost_limit (e.g. 2000) or lower autovacuum_vacuum_cost_delay, and raise maintenance_work_mem (or autovacuum_work_mem) when it needs more than one index pass; a manual VACUUM can be cancelled with `tend kill PID`.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "xmin.horizon",
        category: Category::Vacuum,
        title: "what holds the xmin horizon back",
        rule: Rule::AtLeast,
        unit: Unit::Xids,
        // Vacuum can neither remove nor freeze rows newer than the horizon: 10 million
        // transactions of garbage is serious bloat on a busy table, 100 million is half of
        // autovacuum_freeze_max_age and puts wraparound protection at risk.
        warning: Some(10_000_000.0),
        critical: Some(100_000_000.0),
        sql: "SELECT h.holder, h.xid_age::float8, h.detail
                FROM (SELECT 'pid ' || pid || ' (' || coalesce(nullif(application_name, ''), '?') || ', ' || coalesce(usename::text, '?') || ')' AS holder,
                             greatest(age(backend_xmin), age(backend_xid)) AS xid_age,
                             'a session in database ' || coalesce(datname::text, '?') || ', ' || coalesce(state, backend_type)
                               || coalesce(', transaction open for ' || round(extract(epoch FROM clock_timestamp() - xact_start)) || ' s', '') AS detail
                        FROM pg_stat_activity
                       WHERE (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL)
                         AND pid <> pg_backend_pid() AND backend_type <> 'walsender'
                      UNION ALL
                      SELECT 'replication slot ' || slot_name,
                             greatest(age(xmin), age(catalog_xmin)),
                             slot_type || ' slot' || coalesce(' of database ' || database, '') || ', '
                               || CASE WHEN active THEN 'active' ELSE 'not in use' END
                               || CASE WHEN xmin IS NULL THEN ', holds catalog rows only' ELSE '' END
                        FROM pg_replication_slots
                       WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL
                      UNION ALL
                      SELECT 'prepared transaction ' || gid,
                             age(transaction),
                             'prepared at ' || to_char(prepared, 'YYYY-MM-DD HH24:MI') || ' in database ' || database || ' by ' || owner
                        FROM pg_prepared_xacts
                      UNION ALL
                      SELECT 'standby ' || coalesce(nullif(application_name, ''), host(client_addr), 'pid ' || pid),
                             age(backend_xmin),
                             'hot_standby_feedback from the queries on the standby, walsender pid ' || pid || ', ' || state
                        FROM pg_stat_replication
                       WHERE backend_xmin IS NOT NULL) h
               WHERE h.xid_age >= least($1::float8, $2::float8)
               ORDER BY h.xid_age DESC
               LIMIT 50",
        finding: "{subject} holds the xmin horizon {value} transactions back ({detail}); vacuum cannot remove or freeze anything newer",
        remedy: "End the holder: a session with `tend kill PID --terminate`, an abandoned slot with `SELECT pg_drop_replication_slot('name');`, a forgotten prepared transaction with `ROLLBACK PREPARED 'gid';`; for a standby, end its long queries or turn off hot_standby_feedback there.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "storage.database_size",
        category: Category::Storage,
        title: "the size of the database",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        // Off until a team sets its own numbers: size alone is no problem, and only the team
        // knows its disk or its plan's limit. The size is not even computed until then.
        warning: None,
        critical: None,
        // pg_database_size walks every file of the database: once, and only with a threshold.
        sql: "SELECT current_database()::text, bytes::float8, pg_size_pretty(bytes)
                FROM (SELECT pg_database_size(current_database()) AS bytes
                       WHERE least($1::float8, $2::float8) IS NOT NULL) s",
        finding: "database {subject} takes {detail} on disk, at or above the configured threshold",
        remedy: "See what takes the space with `tend check --only storage.largest_tables`; archive or delete old rows, drop unused indexes, or plan more disk before it fills.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "storage.largest_tables",
        category: Category::Storage,
        title: "the largest tables",
        rule: Rule::Each(Severity::Info),
        unit: Unit::Bytes,
        // An informational list: the warning threshold, when set, is the size from which a
        // table is listed (1 GiB when unset). Sizes come from pg_class (as of the last
        // VACUUM or ANALYZE), which never waits for a lock, unlike pg_total_relation_size.
        warning: None,
        critical: None,
        sql: "SELECT s.oid::regclass::text,
                     s.total::float8,
                     'table ' || pg_size_pretty(s.heap) || ', indexes ' || pg_size_pretty(s.indexes)
                       || ', TOAST ' || pg_size_pretty(s.toast) || ', about ' || round(greatest(s.reltuples, 0)::numeric) || ' rows'
                FROM (SELECT c.oid, c.reltuples,
                             c.relpages::bigint * b.size AS heap,
                             coalesce(t.relpages, 0)::bigint * b.size AS toast,
                             coalesce(i.pages, 0)::bigint * b.size AS indexes,
                             (c.relpages::bigint + coalesce(t.relpages, 0) + coalesce(i.pages, 0)) * b.size AS total
                        FROM pg_class c
                        JOIN pg_namespace n ON n.oid = c.relnamespace
                        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
                        LEFT JOIN (SELECT x.indrelid, sum(ic.relpages) AS pages
                                     FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                                    GROUP BY x.indrelid) i ON i.indrelid = c.oid
                       CROSS JOIN (SELECT current_setting('block_size')::bigint AS size) b
                       WHERE c.relkind IN ('r', 'm')
                         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                         AND n.nspname !~ '^pg_(toast|temp_)') s
               WHERE s.total >= coalesce($1::float8, 1073741824)
               ORDER BY s.total DESC
               LIMIT 10",
        finding: "{subject} takes about {value} ({detail})",
        remedy: "Nothing to do if the growth is expected; otherwise delete or archive old rows (partitioning by time lets you drop them whole) and drop indexes nothing uses (`tend check --only indexes`).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "replication.lag",
        category: Category::Replication,
        title: "standbys replaying behind the primary (time)",
        rule: Rule::AtLeast,
        unit: Unit::Seconds,
        warning: Some(60.0),
        critical: Some(300.0),
        sql: "SELECT coalesce(nullif(application_name, ''), 'pid ' || pid) || coalesce(' at ' || host(client_addr), ''),
                     extract(epoch FROM replay_lag)::float8,
                     state || ', ' || coalesce(sync_state, '?') || ', '
                       || coalesce(pg_size_pretty(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, replay_lsn)), '?')
                       || ' of WAL not replayed yet; write lag ' || coalesce(round(extract(epoch FROM write_lag)::numeric, 1) || ' s', '-')
                       || ', flush lag ' || coalesce(round(extract(epoch FROM flush_lag)::numeric, 1) || ' s', '-')
                FROM pg_stat_replication
               WHERE replay_lag IS NOT NULL",
        finding: "standby {subject} shows changes {value} late ({detail})",
        remedy: "If the write lag is as high, the network or the standby's disk is the limit; if only the replay lag is, long queries on the standby pause replay (max_standby_streaming_delay) or its disk cannot keep up; check its log and pg_stat_activity.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "replication.lag_bytes",
        category: Category::Replication,
        title: "standbys replaying behind the primary (WAL)",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        warning: Some(1_073_741_824.0),
        critical: Some(10_737_418_240.0),
        sql: "SELECT coalesce(nullif(application_name, ''), 'pid ' || pid) || coalesce(' at ' || host(client_addr), ''),
                     pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, replay_lsn)::float8,
                     state || ', ' || coalesce(sync_state, '?') || ', '
                       || coalesce(pg_size_pretty(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, flush_lsn)), '?')
                       || ' not yet flushed there'
                FROM pg_stat_replication
               WHERE replay_lsn IS NOT NULL",
        finding: "standby {subject} has {value} of WAL still to replay ({detail})",
        remedy: "Compare with `tend check --only replication.lag`: a standby that receives but does not replay is paused (`SELECT pg_wal_replay_resume();` there), blocked by its queries or short of disk speed; one that does not receive is short of network.",
        min_major: 10,
        extension: None,
        reads_sessions: true,
    },
    Check {
        id: "replication.slots_inactive",
        category: Category::Replication,
        title: "replication slots nobody uses",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        sql: "SELECT slot_name::text,
                     pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::float8,
                     slot_type || ' slot' || coalesce(' of database ' || database, '') || ', retaining '
                       || coalesce(pg_size_pretty(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)), 'no WAL yet')
                       || CASE WHEN xmin IS NOT NULL OR catalog_xmin IS NOT NULL THEN ' and holding the xmin horizon' ELSE '' END
                FROM pg_replication_slots
               WHERE NOT active
               ORDER BY 2 DESC NULLS LAST",
        finding: "replication slot {subject} is not in use ({detail}); the server keeps every WAL file from its position until a consumer comes back",
        remedy: "Reconnect the standby or subscriber that owns it; if it is gone for good, `SELECT pg_drop_replication_slot('name');`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "replication.slots_wal_retained",
        category: Category::Replication,
        title: "WAL kept for replication slots",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        // pg_wal usually holds about max_wal_size (1 GB by default): a slot keeping another
        // gigabyte is worth a look, ten is a disk about to fill on most servers.
        warning: Some(1_073_741_824.0),
        critical: Some(10_737_418_240.0),
        sql: "SELECT s.slot_name::text, s.retained::float8,
                     s.slot_type || ' slot' || coalesce(' of database ' || s.database, '') || ', '
                       || CASE WHEN s.active THEN 'in use' ELSE 'not in use' END
                FROM (SELECT slot_name, slot_type, database, active,
                             pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn) AS retained
                        FROM pg_replication_slots
                       WHERE restart_lsn IS NOT NULL) s
               WHERE s.retained >= least($1::float8, $2::float8)
               ORDER BY s.retained DESC",
        finding: "replication slot {subject} keeps {value} of WAL on disk ({detail})",
        remedy: "Make its consumer catch up (a lagging standby or a stopped logical subscriber), or drop the slot with `SELECT pg_drop_replication_slot('name');`; on PostgreSQL 13 and newer, max_slot_wal_keep_size caps what one slot may keep.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "replication.slots_lost",
        category: Category::Replication,
        title: "replication slots whose WAL is gone or about to go",
        rule: Rule::Each(Severity::Critical),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        sql: "SELECT slot_name::text,
                     pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::float8,
                     CASE wal_status
                          WHEN 'lost' THEN 'lost: it was invalidated and the WAL it needs is no longer kept, so its consumer can never resume from it'
                          ELSE 'unreserved: it is past max_slot_wal_keep_size (' || current_setting('max_slot_wal_keep_size')
                               || ') and its WAL goes at the next checkpoint' END
                FROM pg_replication_slots
               WHERE wal_status IN ('lost', 'unreserved')",
        finding: "replication slot {subject} is {detail}",
        remedy: "For an unreserved slot, reconnect its consumer now or raise max_slot_wal_keep_size; a lost slot cannot be used again: drop it (`SELECT pg_drop_replication_slot('name');`) and rebuild its standby (pg_basebackup) or resynchronise its subscriber.",
        min_major: 13,
        extension: None,
        reads_sessions: false,
    },
    CHECKPOINTS_REQUESTED,
    Check {
        id: "wal.archiving_failing",
        category: Category::Replication,
        title: "WAL archiving failing now",
        rule: Rule::Each(Severity::Critical),
        unit: Unit::Count,
        warning: None,
        critical: None,
        sql: "SELECT coalesce(last_failed_wal, '?'),
                     failed_count::float8,
                     'last failure at ' || to_char(last_failed_time, 'YYYY-MM-DD HH24:MI:SS')
                       || ', last success ' || coalesce('at ' || to_char(last_archived_time, 'YYYY-MM-DD HH24:MI:SS'), 'never')
                       || ', ' || failed_count || ' failures since ' || coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'statistics began')
                FROM pg_stat_archiver
               WHERE failed_count > 0
                 AND last_failed_time > coalesce(last_archived_time, '-infinity')
                 AND current_setting('archive_mode') <> 'off'
                 AND (NOT pg_is_in_recovery() OR current_setting('archive_mode') = 'always')",
        finding: "archive_command fails on WAL file {subject} ({detail}); WAL piles up in pg_wal until it succeeds, and backups cannot be restored past it",
        remedy: "Read the archiver's error in the server log and fix archive_command or its destination (credentials, disk space, network); test it by hand as the postgres OS user on the failing file.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "wal.archive_backlog",
        category: Category::Replication,
        title: "WAL files waiting to be archived",
        rule: Rule::AtLeast,
        unit: Unit::Count,
        // The archiver normally keeps zero or one segment waiting: ten (160 MB at the
        // default segment size) means it falls behind, a hundred that pg_wal is filling.
        warning: Some(10.0),
        critical: Some(100.0),
        sql: "SELECT 'pg_wal/archive_status',
                     count(*)::float8,
                     count(*) || ' WAL files (' || pg_size_pretty(count(*) * pg_size_bytes(current_setting('wal_segment_size')))
                       || coalesce(', the oldest ' || min(left(name, 24)), '') || ')'
                FROM pg_ls_archive_statusdir()
               WHERE name LIKE '%.ready'",
        finding: "{detail} wait to be archived: archive_command does not keep up",
        remedy: "Check the archiver in `pg_stat_archiver` and the server log: if it fails, fix archive_command; if it is slow, make it faster (compression, parallel uploads with a tool such as pgBackRest or WAL-G).",
        min_major: 12,
        extension: None,
        reads_sessions: false,
    },
];

/// `checkpoints.requested` up to PostgreSQL 16.
const CHECKPOINTS_REQUESTED: Check = Check {
    id: "checkpoints.requested",
    category: Category::Settings,
    title: "checkpoints forced by WAL volume rather than by time",
    rule: Rule::AtLeast,
    unit: Unit::Percent,
    // More than one checkpoint in five forced early means max_wal_size is too small for
    // the write load: more I/O and more full-page writes, but no outage.
    warning: Some(20.0),
    critical: None,
    // pg_stat_bgwriter has these columns up to PostgreSQL 16; 17 moved them to
    // pg_stat_checkpointer, read by CHECKPOINTS_REQUESTED_17 in this one's place.
    sql: "SELECT 'server',
                 (100.0 * checkpoints_req / (checkpoints_timed + checkpoints_req))::float8,
                 checkpoints_req || ' of ' || (checkpoints_timed + checkpoints_req) || ' checkpoints since '
                   || coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'statistics began')
                   || ' were requested; max_wal_size is ' || current_setting('max_wal_size')
                   || ', checkpoint_timeout ' || current_setting('checkpoint_timeout')
            FROM pg_stat_bgwriter
           WHERE checkpoints_timed + checkpoints_req >= 10",
    finding: "{value} of checkpoints were requested instead of timed ({detail})",
    remedy: "Raise max_wal_size so checkpoints come from checkpoint_timeout (`ALTER SYSTEM SET max_wal_size = '8GB'; SELECT pg_reload_conf();`, sized to the WAL written per checkpoint_timeout); log_checkpoints shows what requests the others.",
    min_major: 10,
    extension: None,
    reads_sessions: false,
};

/// `checkpoints.requested` on PostgreSQL 17 and newer, which moved the checkpoint counters
/// from pg_stat_bgwriter to pg_stat_checkpointer (`checks::for_major` swaps it in).
pub static CHECKPOINTS_REQUESTED_17: Check = Check {
    sql: "SELECT 'server',
                 (100.0 * num_requested / (num_timed + num_requested))::float8,
                 num_requested || ' of ' || (num_timed + num_requested) || ' checkpoints since '
                   || coalesce(to_char(stats_reset, 'YYYY-MM-DD HH24:MI'), 'statistics began')
                   || ' were requested; max_wal_size is ' || current_setting('max_wal_size')
                   || ', checkpoint_timeout ' || current_setting('checkpoint_timeout')
            FROM pg_stat_checkpointer
           WHERE num_timed + num_requested >= 10",
    min_major: 17,
    ..CHECKPOINTS_REQUESTED
};
