//! Checks that compare with earlier runs, read from the `tend` schema. Before the first run
//! with history on there is nothing to compare: they report nothing.

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
               WHERE s.relation = '(database)' OR to_regclass(s.relation) IS NOT NULL)
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
}];
