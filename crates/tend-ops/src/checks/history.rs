//! Checks that compare with earlier runs, read from the `tend` schema. Before the first run
//! with history on there is nothing to compare: they report nothing. Sizes are never read
//! of a relation another session holds an ACCESS EXCLUSIVE lock on (the size functions
//! would wait for it).

use crate::check::{Category, Check, Rule, Unit};

pub static CHECKS: &[Check] = &[Check {
    id: "storage.growth",
    category: Category::Storage,
    title: "growth of the database and its largest tables since the last run",
    rule: Rule::AtLeast,
    unit: Unit::Percent,
    warning: Some(25.0),
    critical: Some(100.0),
    sql: "WITH last AS (
              SELECT run_id, max(sampled_at) AS at FROM tend.size_samples
               WHERE run_id = (SELECT max(run_id) FROM tend.size_samples)
               GROUP BY run_id),
          now_sizes AS (
              SELECT s.relation, s.bytes AS before, l.at,
                     CASE WHEN s.relation = '(database)' THEN pg_database_size(current_database())
                          ELSE pg_total_relation_size(to_regclass(s.relation)) END AS after
                FROM tend.size_samples s JOIN last l ON l.run_id = s.run_id
               WHERE s.relation = '(database)'
                  OR (to_regclass(s.relation) IS NOT NULL
                      -- pg_total_relation_size waits for any ACCESS EXCLUSIVE lock on the
                      -- table, its TOAST table or an index: such relations are left out
                      -- (locks.exclusive_held reports the lock).
                      AND NOT EXISTS (
                          SELECT 1 FROM pg_locks l
                           WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
                             AND l.pid <> pg_backend_pid()
                             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                             AND l.relation IN (
                                 SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass(s.relation)
                                 UNION ALL SELECT c.reltoastrelid FROM pg_class c WHERE c.oid = to_regclass(s.relation)
                                 UNION ALL SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = to_regclass(s.relation)))))
          SELECT relation,
                 (100.0 * (after - before) / before)::float8,
                 'from ' || pg_size_pretty(before) || ' to ' || pg_size_pretty(after) ||
                 ' since ' || to_char(at, 'YYYY-MM-DD HH24:MI')
            FROM now_sizes
           WHERE before >= 8 * 1024 * 1024 AND after > before",
    finding: "{subject} grew {value} ({detail})",
    remedy: "Find what writes to it (a runaway job, a table without a retention or purge rule) and make sure the disk has room for the trend.",
    min_major: 10,
    extension: None,
    reads_sessions: false,
}];
