//! Checks of the schema itself: indexes, constraints, keys, sequences and bloat estimates.
//!
//! Everything here reads the catalogs (`pg_class`, `pg_index`, `pg_constraint`), the
//! statistics views and `pg_stats`; nothing opens user tables. Sizes come from
//! `pg_class.relpages` (as of the last VACUUM or ANALYZE), never from `pg_relation_size`.

use crate::check::{Category, Check, Rule, Severity, Unit};

pub static CHECKS: &[Check] = &[
    Check {
        id: "indexes.invalid",
        category: Category::Indexes,
        title: "invalid indexes (a failed CREATE INDEX CONCURRENTLY)",
        rule: Rule::Each(Severity::Critical),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        // An index still being built by CREATE INDEX / REINDEX CONCURRENTLY is invalid too:
        // tables with a build in progress are left out.
        sql: "SELECT format('%I.%I', n.nspname, c.relname),
                     c.relpages::float8 * current_setting('block_size')::float8,
                     'on ' || format('%I.%I', n.nspname, t.relname)
                       || CASE WHEN i.indisunique THEN ', unique' ELSE '' END
                       || CASE WHEN c.relkind = 'I' THEN ', partitioned: some partitions lack their attached index'
                               WHEN NOT i.indisready THEN ', not even maintained by writes'
                               ELSE ', still maintained by every write' END
                FROM pg_index i
                JOIN pg_class c ON c.oid = i.indexrelid
                JOIN pg_class t ON t.oid = i.indrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE NOT i.indisvalid
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
                 AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid)
               ORDER BY c.relpages DESC LIMIT 50",
        finding: "index {subject} is invalid ({detail}): queries cannot use it",
        remedy: "Rebuild it with `REINDEX INDEX CONCURRENTLY <index>;` (or `DROP INDEX CONCURRENTLY <index>;` and CREATE INDEX CONCURRENTLY again); if it is unique, first remove the duplicate rows that made the build fail.",
        min_major: 12,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "indexes.unused",
        category: Category::Indexes,
        title: "indexes never scanned",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        // Small unused indexes cost little; 10 MB and up are worth a look.
        warning: Some(10_485_760.0),
        critical: None,
        sql: "SELECT format('%I.%I', s.schemaname, s.indexrelname),
                     c.relpages::float8 * current_setting('block_size')::float8,
                     'on ' || format('%I.%I', s.schemaname, s.relname) || ', no scans since '
                       || coalesce((SELECT 'the statistics were reset on ' || to_char(d.stats_reset, 'YYYY-MM-DD HH24:MI')
                                      FROM pg_stat_database d
                                     WHERE d.datname = current_database() AND d.stats_reset IS NOT NULL),
                                   'the statistics began')
                FROM pg_stat_user_indexes s
                JOIN pg_index i ON i.indexrelid = s.indexrelid
                JOIN pg_class c ON c.oid = s.indexrelid
               WHERE s.idx_scan = 0
                 AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisreplident
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = s.indexrelid)
                 AND s.schemaname <> 'tend'
                 AND c.relpages::float8 * current_setting('block_size')::float8 >= least($1::float8, $2::float8)
               ORDER BY c.relpages DESC LIMIT 50",
        finding: "index {subject} ({value}) has never been used by a query ({detail}), yet every write maintains it",
        remedy: "Make sure no replica uses it (scans there are counted there, not here) and that the statistics cover a full business cycle, then drop it with `DROP INDEX CONCURRENTLY <index>;`.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "indexes.duplicate",
        category: Category::Indexes,
        title: "indexes identical to another index",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        // Same table, columns, expressions, predicate, operator classes, collations, order and
        // method. The keeper is the primary key, then a constraint's index, then a unique one,
        // then the oldest; every other member of the group is reported.
        // Only tables with two indexes or more can hold a duplicate: the definitions of the
        // others (most tables, with only their primary key) are never rendered.
        sql: "WITH idx AS (
                SELECT i.indexrelid, i.indrelid, i.indisprimary, i.indisunique, c.relpages,
                       format('%I.%I', n.nspname, c.relname) AS name, k.conname,
                       format('%I.%I', n.nspname, t.relname) AS tbl,
                       concat_ws(' ', i.indkey::text, '/', i.indclass::text, '/', i.indcollation::text,
                                 '/', i.indoption::text, '/', c.relam::text, '/',
                                 coalesce(pg_get_expr(i.indexprs, i.indrelid), '-'), '/',
                                 coalesce(pg_get_expr(i.indpred, i.indrelid), '-')) AS def
                  FROM pg_index i
                  JOIN pg_class c ON c.oid = i.indexrelid
                  JOIN pg_class t ON t.oid = i.indrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_constraint k
                         ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')
                 WHERE i.indisvalid
                   AND i.indrelid IN (SELECT indrelid FROM pg_index GROUP BY indrelid HAVING count(*) > 1)
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                   AND n.nspname !~ '^pg_(toast|temp_)'
              ), ranked AS (
                SELECT idx.*, first_value(name) OVER w AS keeper, row_number() OVER w AS rank
                  FROM idx
                WINDOW w AS (PARTITION BY indrelid, def
                             ORDER BY indisprimary DESC, conname IS NOT NULL DESC, indisunique DESC, indexrelid)
              )
              SELECT name, relpages::float8 * current_setting('block_size')::float8,
                     'on ' || tbl || ', the same as ' || keeper
                       || CASE WHEN conname IS NOT NULL
                               THEN '; it backs the constraint ' || quote_ident(conname)
                                    || ' (ALTER TABLE ' || tbl || ' DROP CONSTRAINT ' || quote_ident(conname) || ')'
                               ELSE '' END
                FROM ranked WHERE rank > 1
               ORDER BY relpages DESC LIMIT 50",
        finding: "index {subject} ({value}) duplicates another one ({detail})",
        remedy: "Drop the duplicate with `DROP INDEX CONCURRENTLY <index>;` (or drop the constraint it backs); the index it duplicates serves the same queries.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "indexes.redundant",
        category: Category::Indexes,
        title: "indexes whose columns lead a longer index",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        // A non-unique btree index on (a) is redundant next to a btree on (a, b): same leading
        // columns, operator classes, collations and order, neither partial nor on expressions.
        sql: "SELECT format('%I.%I', n.nspname, ca.relname),
                     ca.relpages::float8 * current_setting('block_size')::float8,
                     'on ' || format('%I.%I', n.nspname, t.relname) || ', its columns lead '
                       || format('%I.%I', n.nspname, cover.relname)
                FROM pg_index a
                JOIN pg_class ca ON ca.oid = a.indexrelid
                JOIN pg_class t ON t.oid = a.indrelid
                JOIN pg_namespace n ON n.oid = ca.relnamespace
                JOIN LATERAL (
                  SELECT cb.relname
                    FROM pg_index b
                    JOIN pg_class cb ON cb.oid = b.indexrelid
                   WHERE b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
                     AND b.indisvalid AND b.indpred IS NULL AND b.indexprs IS NULL
                     AND cb.relam = ca.relam AND b.indnkeyatts > a.indnkeyatts
                     AND (b.indkey::int2[])[0:a.indnkeyatts - 1] = (a.indkey::int2[])[0:a.indnkeyatts - 1]
                     AND (b.indclass::oid[])[0:a.indnkeyatts - 1] = (a.indclass::oid[])[0:a.indnkeyatts - 1]
                     AND (b.indcollation::oid[])[0:a.indnkeyatts - 1] = (a.indcollation::oid[])[0:a.indnkeyatts - 1]
                     AND (b.indoption::int2[])[0:a.indnkeyatts - 1] = (a.indoption::int2[])[0:a.indnkeyatts - 1]
                   ORDER BY b.indnkeyatts, b.indexrelid LIMIT 1) cover ON true
               WHERE a.indisvalid AND NOT a.indisunique AND NOT a.indisreplident
                 AND a.indpred IS NULL AND a.indexprs IS NULL AND a.indnatts = a.indnkeyatts
                 AND ca.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = a.indexrelid)
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
               ORDER BY ca.relpages DESC LIMIT 50",
        finding: "index {subject} ({value}) is redundant: {detail}, which serves the same lookups",
        remedy: "Drop it with `DROP INDEX CONCURRENTLY <index>;`: the longer index answers every query on its leading columns.",
        min_major: 11,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "indexes.bloat",
        category: Category::Indexes,
        title: "estimated btree index bloat",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        warning: Some(104_857_600.0),
        critical: Some(10_737_418_240.0),
        // The ioguix btree estimate: the pages the index would need at its fillfactor, from
        // reltuples and the columns' pg_stats widths, against relpages. Only wasted space of at
        // least the lower threshold and 30% of the index (below that the estimate is noise) is
        // reported; indexes whose columns lack statistics are skipped.
        sql: "WITH idx AS (
                SELECT i.indexrelid, i.indrelid, i.indnatts, i.indkey, ci.relname AS idxname,
                       ct.relname AS tblname, n.nspname, ci.reltuples::float8 AS reltuples,
                       ci.relpages::float8 AS relpages, current_setting('block_size')::float8 AS bs,
                       coalesce(substring(array_to_string(ci.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::float8, 90) AS ff
                  FROM pg_index i
                  JOIN pg_class ci ON ci.oid = i.indexrelid
                  JOIN pg_class ct ON ct.oid = i.indrelid
                  JOIN pg_namespace n ON n.oid = ci.relnamespace
                 WHERE ci.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
                   AND i.indisvalid AND ci.relpages > 1 AND ci.reltuples >= 0
                   AND ci.relpages::float8 * current_setting('block_size')::float8 >= least($1::float8, $2::float8)
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                   AND n.nspname !~ '^pg_(toast|temp_)'
              ), cols AS (
                SELECT x.indexrelid, max(x.indnatts) AS natts, count(s.attname) AS nstats,
                       max(coalesce(s.null_frac, 0)) AS null_frac,
                       sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 1024)) AS width,
                       bool_or(coalesce(a1.atttypid, a2.atttypid) = 'name'::regtype) AS has_name
                  FROM idx x
                  CROSS JOIN LATERAL generate_series(0, x.indnatts - 1) AS k
                  LEFT JOIN pg_attribute a1 ON x.indkey[k] <> 0 AND a1.attrelid = x.indrelid AND a1.attnum = x.indkey[k]
                  LEFT JOIN pg_attribute a2 ON x.indkey[k] = 0 AND a2.attrelid = x.indexrelid AND a2.attnum = k + 1
                  LEFT JOIN pg_stats s
                         ON s.schemaname = x.nspname AND NOT s.inherited
                        AND s.tablename = CASE WHEN x.indkey[k] = 0 THEN x.idxname ELSE x.tblname END
                        AND s.attname = coalesce(a1.attname, a2.attname)
                 GROUP BY x.indexrelid
              ), est AS (
                SELECT x.*, 1 + ceil(x.reltuples / floor((x.bs - 24 - 16) * x.ff
                         / (100 * (4 + 8 * ceil(CASE WHEN c.null_frac > 0 THEN 12 ELSE 8 END / 8.0)
                                     + 8 * ceil(c.width / 8.0))))) AS est_pages
                  FROM idx x JOIN cols c ON c.indexrelid = x.indexrelid
                 WHERE c.nstats = c.natts AND NOT c.has_name
              )
              SELECT format('%I.%I', nspname, idxname),
                     (relpages - est_pages) * bs,
                     round((100 * (relpages - est_pages) / relpages)::numeric) || '% of its '
                       || pg_size_pretty((relpages * bs)::bigint) || ', on ' || format('%I.%I', nspname, tblname)
                FROM est
               WHERE (relpages - est_pages) * bs >= least($1::float8, $2::float8) AND (relpages - est_pages) / relpages >= 0.3
               ORDER BY relpages - est_pages DESC LIMIT 50",
        finding: "index {subject} wastes an estimated {value} ({detail})",
        remedy: "Rebuild it without blocking writes: `REINDEX INDEX CONCURRENTLY <index>;` (PostgreSQL 12+; needs about its size in free disk).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "tables.bloat",
        category: Category::Tables,
        title: "estimated table bloat",
        rule: Rule::AtLeast,
        unit: Unit::Bytes,
        warning: Some(1_073_741_824.0),
        critical: Some(10_737_418_240.0),
        // The ioguix table estimate: the pages reltuples rows of the pg_stats average width
        // need at the table's fillfactor (plus TOAST), against relpages. Only wasted space of
        // at least the lower threshold and 30% of the table is reported; tables with a column lacking
        // statistics are skipped.
        sql: "WITH tbl AS (
                SELECT c.oid, n.nspname, c.relname, c.reltuples::float8 AS reltuples,
                       (c.relpages + coalesce(toast.relpages, 0))::float8 AS pages,
                       coalesce(toast.reltuples, 0)::float8 AS toasttuples,
                       current_setting('block_size')::float8 AS bs,
                       coalesce(substring(array_to_string(c.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::float8, 100) AS ff
                  FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_class toast ON toast.oid = c.reltoastrelid
                 WHERE c.relkind IN ('r', 'm') AND c.reltuples >= 0 AND c.relpages > 1
                   AND (c.relpages + coalesce(toast.relpages, 0))::float8 * current_setting('block_size')::float8
                       >= least($1::float8, $2::float8)
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                   AND n.nspname !~ '^pg_(toast|temp_)'
              ), cols AS (
                SELECT t.oid, count(*) AS natts, count(s.attname) AS nstats,
                       max(coalesce(s.null_frac, 0)) AS null_frac,
                       sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS width,
                       bool_or(a.atttypid = 'name'::regtype) AS has_name
                  FROM tbl t
                  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
                  LEFT JOIN pg_stats s
                         ON s.schemaname = t.nspname AND s.tablename = t.relname
                        AND s.attname = a.attname AND NOT s.inherited
                 GROUP BY t.oid
              ), est AS (
                SELECT t.*, ceil(t.reltuples / floor((t.bs - 24) * t.ff
                         / (100 * (4 + 8 * ceil((23 + CASE WHEN c.null_frac > 0 THEN (7 + c.natts) / 8 ELSE 0 END) / 8.0)
                                     + 8 * ceil(c.width / 8.0)))))
                         + ceil(t.toasttuples / 4) AS est_pages
                  FROM tbl t JOIN cols c ON c.oid = t.oid
                 WHERE c.nstats = c.natts AND NOT c.has_name
              )
              SELECT format('%I.%I', nspname, relname),
                     (pages - est_pages) * bs,
                     round((100 * (pages - est_pages) / pages)::numeric) || '% of its '
                       || pg_size_pretty((pages * bs)::bigint) || ', about ' || round(reltuples::numeric) || ' rows'
                FROM est
               WHERE (pages - est_pages) * bs >= least($1::float8, $2::float8) AND (pages - est_pages) / pages >= 0.3
               ORDER BY pages - est_pages DESC LIMIT 50",
        finding: "table {subject} wastes an estimated {value} ({detail})",
        remedy: "Plain VACUUM makes the space reusable but does not return it; to shrink the table without a long lock use pg_repack (`pg_repack --table <table>`), or `VACUUM FULL <table>` in a maintenance window (ACCESS EXCLUSIVE lock for the whole rewrite).",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "constraints.not_valid",
        category: Category::Constraints,
        title: "constraints added NOT VALID and never validated",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        sql: "SELECT CASE WHEN k.conrelid <> 0
                          THEN format('%I on %I.%I', k.conname, n.nspname, t.relname)
                          ELSE format('%I on domain %I.%I', k.conname, tn.nspname, ty.typname) END,
                     coalesce(t.relpages, 0)::float8 * current_setting('block_size')::float8,
                     CASE k.contype WHEN 'f' THEN 'a foreign key to ' || format('%I.%I', fn.nspname, f.relname)
                                    WHEN 'c' THEN 'a CHECK constraint'
                                    ELSE 'a constraint' END
                FROM pg_constraint k
                LEFT JOIN pg_class t ON t.oid = k.conrelid
                LEFT JOIN pg_namespace n ON n.oid = t.relnamespace
                LEFT JOIN pg_type ty ON ty.oid = k.contypid
                LEFT JOIN pg_namespace tn ON tn.oid = ty.typnamespace
                LEFT JOIN pg_class f ON f.oid = k.confrelid
                LEFT JOIN pg_namespace fn ON fn.oid = f.relnamespace
               WHERE NOT k.convalidated AND k.conislocal
                 AND coalesce(n.nspname, tn.nspname) NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND coalesce(n.nspname, tn.nspname) !~ '^pg_(toast|temp_)'
               ORDER BY 2 DESC LIMIT 50",
        finding: "constraint {subject}, {detail}, was added NOT VALID and never validated: existing rows were never checked against it",
        remedy: "Validate it (a SHARE UPDATE EXCLUSIVE lock, writes continue): `ALTER TABLE <table> VALIDATE CONSTRAINT <constraint>;` (`ALTER DOMAIN ... VALIDATE CONSTRAINT` for a domain); fix the rows it reports first.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "constraints.fk_without_index",
        category: Category::Constraints,
        title: "foreign keys without an index on their columns",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Count,
        warning: None,
        critical: None,
        // An index serves the foreign key when its leading key columns are exactly the
        // foreign key's columns, in any order; partial indexes do not count.
        sql: "SELECT format('%I.%I', n.nspname, t.relname) || ' (' || cols.list || ')',
                     greatest(t.reltuples, 0)::float8,
                     'references ' || format('%I.%I', rn.nspname, r.relname) || ' through ' || quote_ident(k.conname)
                       || '; CREATE INDEX CONCURRENTLY ON ' || format('%I.%I', n.nspname, t.relname) || ' (' || cols.list || ')'
                FROM pg_constraint k
                JOIN pg_class t ON t.oid = k.conrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                JOIN pg_class r ON r.oid = k.confrelid
                JOIN pg_namespace rn ON rn.oid = r.relnamespace
                CROSS JOIN LATERAL (
                  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY u.ord) AS list
                    FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum) cols
               WHERE k.contype = 'f' AND k.conparentid = 0
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
                 AND NOT EXISTS (
                   SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                    WHERE i.indrelid = k.conrelid AND i.indisvalid AND i.indpred IS NULL
                      AND i.indnkeyatts >= cardinality(k.conkey)
                      AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey
                      AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey
                      AND ic.relam IN (SELECT oid FROM pg_am WHERE amname IN ('btree', 'hash')))
               ORDER BY t.reltuples DESC LIMIT 50",
        finding: "foreign key {subject} has no index starting with its columns, so every delete or key update on the referenced table scans this table of {value} rows ({detail})",
        remedy: "Create the index without blocking writes: `CREATE INDEX CONCURRENTLY ON <table> (<columns>);` (the statement is in the finding).",
        min_major: 11,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "constraints.fk_type_mismatch",
        category: Category::Constraints,
        title: "foreign key columns of another type than the key they reference",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        sql: "SELECT format('%I.%I.%I', n.nspname, t.relname, a.attname),
                     1::float8,
                     format_type(a.atttypid, a.atttypmod) || ', referencing '
                       || format('%I.%I.%I', rn.nspname, r.relname, ra.attname) || ' '
                       || format_type(ra.atttypid, ra.atttypmod)
                FROM pg_constraint k
                CROSS JOIN LATERAL unnest(k.conkey, k.confkey) AS u(attnum, fattnum)
                JOIN pg_class t ON t.oid = k.conrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                JOIN pg_class r ON r.oid = k.confrelid
                JOIN pg_namespace rn ON rn.oid = r.relnamespace
                JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
                JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = u.fattnum
               WHERE k.contype = 'f' AND k.conparentid = 0 AND a.atttypid <> ra.atttypid
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
               ORDER BY 1 LIMIT 50",
        finding: "column {subject} is {detail}: the types differ, so joins cast and a narrower column overflows before the key it references",
        remedy: "Change the referencing column to the referenced column's type (`ALTER TABLE <table> ALTER COLUMN <column> TYPE <type>;` rewrites the table under an ACCESS EXCLUSIVE lock: on big tables add a new column, backfill it in batches and swap).",
        min_major: 11,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "tables.no_primary_key",
        category: Category::Tables,
        title: "tables without a primary key",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::Count,
        warning: None,
        critical: None,
        sql: "SELECT format('%I.%I', n.nspname, c.relname),
                     greatest(c.reltuples, 0)::float8,
                     coalesce((SELECT 'but its unique index ' || quote_ident(ic.relname)
                                        || ' over NOT NULL columns could become it (ALTER TABLE '
                                        || format('%I.%I', n.nspname, c.relname)
                                        || ' ADD PRIMARY KEY USING INDEX ' || quote_ident(ic.relname) || ')'
                                 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
                                  AND i.indpred IS NULL AND i.indexprs IS NULL
                                  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                                   WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey::int2[])
                                                     AND NOT a.attnotnull)
                                ORDER BY i.indnatts, ic.relname LIMIT 1),
                              'nor a unique index over NOT NULL columns')
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
               ORDER BY c.reltuples DESC LIMIT 50",
        finding: "table {subject} ({value} rows) has no primary key, {detail}",
        remedy: "Add one: `ALTER TABLE <table> ADD PRIMARY KEY (<columns>);` or `ALTER TABLE <table> ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;`. Without it logical replication cannot replicate UPDATE and DELETE, and duplicate rows cannot be told apart.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    Check {
        id: "tables.unlogged",
        category: Category::Tables,
        title: "unlogged tables",
        rule: Rule::Each(Severity::Info),
        unit: Unit::Bytes,
        warning: None,
        critical: None,
        sql: "SELECT format('%I.%I', n.nspname, c.relname),
                     c.relpages::float8 * current_setting('block_size')::float8,
                     CASE c.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END
                FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p')
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
               ORDER BY c.relpages DESC LIMIT 50",
        finding: "{detail} {subject} ({value}) is UNLOGGED: it is emptied after a crash, and its rows never reach standbys or physical backups",
        remedy: "If the data matters, make it durable with `ALTER TABLE <table> SET LOGGED;` (rewrites it under an ACCESS EXCLUSIVE lock); otherwise make sure the application can rebuild it.",
        min_major: 10,
        extension: None,
        reads_sessions: false,
    },
    SEQUENCES_NEAR_MAX,
    INTEGER_KEY_NEAR_MAX,
    Check {
        id: "security.soft_delete_unique",
        category: Category::Security,
        title: "unique indexes that ignore a soft-delete column",
        rule: Rule::Each(Severity::Warning),
        unit: Unit::None,
        warning: None,
        critical: None,
        // A table with deleted_at (or deleted, is_deleted, archived_at, discarded_at) whose
        // unique index neither includes that column nor mentions it in its predicate or
        // expressions. Primary keys and indexes whose every key column is generated
        // (identity, serial, defaults such as gen_random_uuid()) are left out.
        sql: "SELECT format('%I.%I', n.nspname, ic.relname),
                     1::float8,
                     'on ' || format('%I.%I', n.nspname, t.relname) || ' does not mention '
                       || quote_ident(sd.attname)
                FROM pg_attribute sd
                JOIN pg_class t ON t.oid = sd.attrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                JOIN pg_index i ON i.indrelid = t.oid
                JOIN pg_class ic ON ic.oid = i.indexrelid
               WHERE sd.attname IN ('deleted_at', 'deleted', 'is_deleted', 'archived_at', 'discarded_at')
                 AND sd.attnum > 0 AND NOT sd.attisdropped
                 AND t.relkind IN ('r', 'p') AND NOT t.relispartition
                 AND i.indisunique AND NOT i.indisprimary AND i.indisvalid
                 AND NOT (sd.attnum = ANY (i.indkey::int2[]))
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                  WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                                    AND d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid
                                    AND d.refobjsubid = sd.attnum)
                 AND (0 = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
                      OR EXISTS (SELECT 1 FROM pg_attribute k
                                  WHERE k.attrelid = t.oid AND k.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])
                                    AND (NOT k.atthasdef OR k.attgenerated <> '') AND k.attidentity = ''))
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                 AND n.nspname !~ '^pg_(toast|temp_)'
               ORDER BY 1 LIMIT 50",
        finding: "unique index {subject} {detail}: a soft-deleted row still blocks a new row with the same values (re-registering the same email, say)",
        remedy: "Make it apply to live rows only: `CREATE UNIQUE INDEX CONCURRENTLY ... WHERE deleted_at IS NULL;`, then drop the old index or constraint; if deleted rows must keep their values reserved, disable this check.",
        min_major: 12,
        extension: None,
        reads_sessions: false,
    },
];

/// `sequences.near_max`'s query around `$last_value`, the expression that reads the last value of
/// sequence `s.oid` (NULL when nextval was never called).
macro_rules! sequences_near_max_sql {
    ($last_value:literal) => {
        concat!(
            "WITH seqs AS (
                SELECT format('%I.%I', n.nspname, c.relname) AS name, c.oid, q.seqincrement, q.seqmax, q.seqmin,
                       format_type(q.seqtypid, NULL) AS data_type,
                       has_sequence_privilege(c.oid, 'SELECT') AS readable, n.nspname
                  FROM pg_sequence q
                  JOIN pg_class c ON c.oid = q.seqrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE NOT q.seqcycle
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                   AND n.nspname !~ '^pg_(toast|temp_)'
              ), valued AS (
                SELECT s.*, ",
            $last_value,
            " AS last_value FROM seqs s WHERE s.readable
              ), pct AS (
                SELECT v.*, CASE WHEN v.seqincrement > 0 THEN 100.0 * v.last_value / v.seqmax::float8
                                 ELSE 100.0 * v.last_value / v.seqmin::float8 END AS pct
                  FROM valued v WHERE v.last_value IS NOT NULL
              )
              SELECT name, pct::float8,
                     'sequence at ' || round(pct::numeric, 1) || '% of its maximum (last value ' || last_value::bigint || ', '
                       || CASE WHEN seqincrement > 0 THEN 'maximum ' || seqmax ELSE 'minimum ' || seqmin END
                       || ', ' || data_type || '); nextval() fails at the end and inserts stop'
                FROM pct
              UNION ALL
              SELECT 'sequences', coalesce($1::float8, $2::float8),
                     count(*) || ' could not be read by the role ' || quote_ident(current_user)
                       || ', so how close they are to their maximum is unknown (GRANT SELECT ON ALL SEQUENCES IN SCHEMA '
                       || string_agg(DISTINCT quote_ident(nspname), ', ') || ' TO ' || quote_ident(current_user) || ')'
                FROM seqs WHERE NOT readable
              HAVING count(*) > 0
               ORDER BY 2 DESC LIMIT 50"
        )
    };
}

const SEQUENCES_NEAR_MAX: Check = Check {
    id: "sequences.near_max",
    category: Category::Sequences,
    title: "sequences close to their maximum",
    rule: Rule::AtLeast,
    unit: Unit::Percent,
    warning: Some(75.0),
    critical: Some(90.0),
    // One query reads every sequence with pg_sequence_last_value(), as the pg_sequences
    // view does: a SELECT per sequence (query_to_xml) cost 0.1-0.3 ms each, most of the
    // run at 10,000 relations. It takes ROW EXCLUSIVE, as nextval() does, until the
    // statement's transaction ends (under the runner's lock_timeout, so it never waits);
    // from PostgreSQL 18 on, SEQUENCES_NEAR_MAX_18 reads under ACCESS SHARE, released at
    // once. A sequence never used has no value yet. The ones the role
    // may not read are counted in one row, reported at the warning threshold, so a role
    // without privileges does not see a silent all-clear. Cycling sequences wrap by
    // design and are left out.
    sql: sequences_near_max_sql!("pg_sequence_last_value(s.oid)::float8"),
    finding: "{subject}: {detail}",
    remedy: "Widen it before it runs out: `ALTER SEQUENCE <sequence> AS bigint NO MAXVALUE;` after widening its column to bigint (or raise its MAXVALUE); for sequences the role cannot read, grant it SELECT on them.",
    min_major: 10,
    extension: None,
    reads_sessions: false,
};

/// `sequences.near_max` on PostgreSQL 18 and newer, whose `pg_get_sequence_data` reads a sequence
/// under ACCESS SHARE, released at once (`checks::for_major` swaps it in).
pub static SEQUENCES_NEAR_MAX_18: Check = Check {
    sql: sequences_near_max_sql!(
        "(SELECT CASE WHEN d.is_called THEN d.last_value END FROM pg_get_sequence_data(s.oid) d)::float8"
    ),
    min_major: 18,
    ..SEQUENCES_NEAR_MAX
};

/// `columns.integer_key_near_max`'s query around `$last_value`, the expression that reads the last value of
/// sequence `c.seqid` (NULL when nextval was never called).
macro_rules! integer_key_near_max_sql {
    ($last_value:literal) => {
        concat!(
            "WITH linked AS (
                SELECT d.objid AS seqid, d.refobjid AS relid, d.refobjsubid AS attnum
                  FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                   AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
                UNION
                SELECT d.refobjid, ad.adrelid, ad.adnum
                  FROM pg_attrdef ad
                  JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                 WHERE d.refclassid = 'pg_class'::regclass
              ), candidates AS (
                SELECT l.seqid, n.nspname, t.relname, a.attname, format_type(a.atttypid, NULL) AS typname,
                       format('%I.%I', sn.nspname, sq.relname) AS seqname,
                       CASE WHEN a.atttypid = 'int2'::regtype THEN 32767 ELSE 2147483647 END::float8 AS typmax,
                       has_sequence_privilege(l.seqid, 'SELECT') AS readable
                  FROM linked l
                  JOIN pg_class sq ON sq.oid = l.seqid AND sq.relkind = 'S'
                  JOIN pg_namespace sn ON sn.oid = sq.relnamespace
                  JOIN pg_attribute a ON a.attrelid = l.relid AND a.attnum = l.attnum AND NOT a.attisdropped
                  JOIN pg_class t ON t.oid = l.relid
                  JOIN pg_namespace n ON n.oid = t.relnamespace
                 WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype)
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                   AND n.nspname !~ '^pg_(toast|temp_)'
              ), valued AS (
                SELECT c.*, ",
            $last_value,
            " AS last_value
                  FROM candidates c WHERE c.readable
              )
              SELECT format('%I.%I.%I', nspname, relname, attname),
                     100.0 * last_value / typmax,
                     typname || ' column at ' || round((100.0 * last_value / typmax)::numeric, 1)
                       || '% of its maximum ' || typmax || ' (sequence ' || seqname || ' is at ' || last_value
                       || '); inserts fail once it passes the maximum'
                FROM valued
               WHERE last_value IS NOT NULL
              UNION ALL
              SELECT 'integer columns', coalesce($1::float8, $2::float8),
                     count(*) || ' sequences feeding integer columns could not be read by the role '
                       || quote_ident(current_user) || ', so their headroom is unknown (grant it SELECT on '
                       || array_to_string((array_agg(seqname ORDER BY seqname))[1:5], ', ')
                       || CASE WHEN count(*) > 5 THEN ' and the others' ELSE '' END || ')'
                FROM candidates WHERE NOT readable
              HAVING count(*) > 0
               ORDER BY 2 DESC LIMIT 50"
        )
    };
}

const INTEGER_KEY_NEAR_MAX: Check = Check {
    id: "columns.integer_key_near_max",
    category: Category::Sequences,
    title: "integer columns fed by a sequence close to the integer maximum",
    rule: Rule::AtLeast,
    unit: Unit::Percent,
    warning: Some(50.0),
    critical: Some(75.0),
    // The classic serial overflow: an int4 (or int2) column whose sequence, even a bigint
    // one, is heading for 2147483647. A column is fed by a sequence it owns (serial,
    // identity, OWNED BY) or that its default calls. Only those sequences are read, as
    // sequences.near_max reads them.
    sql: integer_key_near_max_sql!("pg_sequence_last_value(c.seqid)::float8"),
    finding: "{subject}: {detail}",
    remedy: "Widen the column to bigint before it overflows: `ALTER TABLE <table> ALTER COLUMN <column> TYPE bigint;` rewrites the table under an ACCESS EXCLUSIVE lock, so on big tables add a bigint column, backfill it in batches and swap (and widen the foreign key columns that reference it).",
    min_major: 10,
    extension: None,
    reads_sessions: false,
};

/// `columns.integer_key_near_max` on PostgreSQL 18 and newer, whose `pg_get_sequence_data` reads a sequence
/// under ACCESS SHARE, released at once (`checks::for_major` swaps it in).
pub static INTEGER_KEY_NEAR_MAX_18: Check = Check {
    sql: integer_key_near_max_sql!(
        "(SELECT CASE WHEN d.is_called THEN d.last_value END FROM pg_get_sequence_data(c.seqid) d)::float8"
    ),
    min_major: 18,
    ..INTEGER_KEY_NEAR_MAX
};
