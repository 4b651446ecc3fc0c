//! Reads a database's schema from `pg_catalog` into a [`Model`].
//!
//! One read-only, repeatable-read transaction with an empty `search_path`, so every name the
//! server renders is schema-qualified, and one query per kind of object, so the cost does not
//! grow with round trips. Left out, because they are not the application's: system schemas,
//! tend's own `tend` schema, objects that belong to an extension, and the migration history
//! tables (`_prisma_migrations`, `_tend_migrations`).

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use tokio_postgres::types::{Oid, ToSql};
use tokio_postgres::{Client, RowStream};

use crate::error::SchemaError;
use crate::model::*;

mod constraint_definition;
mod index_definition;

use index_definition::{Attribute, DefaultOpclasses, IndexRow, Quoter};

/// The history tables of both layouts: bookkeeping, not schema.
pub const HISTORY_TABLES: [&str; 2] = ["_prisma_migrations", "_tend_migrations"];

/// Namespaces whose objects are read: not the system's, not tend's own.
const NAMESPACE_FILTER: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'tend') \
     AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

/// Reads the whole model in one consistent snapshot.
pub async fn introspect(client: &Client) -> Result<Model, SchemaError> {
    client
        .batch_execute(
            // JIT compiling the catalog queries' expressions costs more than running them:
            // with it, reading the columns of 2,000 objects took 60-100 ms instead of 15.
            // Parallel workers start processes to scan catalogs that take milliseconds, and
            // a diff already reads two databases at once.
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = ''; \
             SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0; \
             SET LOCAL quote_all_identifiers = off",
        )
        .await
        .map_err(SchemaError::Catalog)?;
    let result = read(client).await;
    // A read-only transaction: ending it cannot lose anything, and the result decides.
    let _ = client.batch_execute("ROLLBACK").await;
    result.map_err(SchemaError::Catalog)
}

/// A catalog query's rows as they arrive: the rows of a big catalog are turned into the model
/// one by one instead of being held all at once (at 20,000 tables, the columns alone were
/// about 130,000 rows, each with its own vector of column ranges).
async fn row_stream(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<std::pin::Pin<Box<RowStream>>, tokio_postgres::Error> {
    Ok(Box::pin(
        client.query_raw(sql, params.iter().copied()).await?,
    ))
}

/// An object's comment, by a subquery on pg_description. Not `obj_description()`: that is a
/// SQL function, run as one for each row, and it took more time than the rest of the
/// relations query at 20,000 tables.
fn comment_sql(oid: &str, catalog: &str) -> String {
    format!(
        "(SELECT ds.description FROM pg_description ds WHERE ds.objoid = {oid} \
         AND ds.classoid = '{catalog}'::regclass AND ds.objsubid = 0)"
    )
}

fn not_extension_member(catalog: &str, alias: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = '{catalog}'::regclass \
         AND dep.objid = {alias}.oid AND dep.deptype = 'e')"
    )
}

async fn read(client: &Client) -> Result<Model, tokio_postgres::Error> {
    let mut model = Model::default();
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    model.named_not_nulls = version >= 180000;
    let namespaces = read_schemas(client, &mut model).await?;
    read_extensions(client, &mut model).await?;
    read_types(client, &mut model, &namespaces).await?;
    let mut identities = read_sequences(client, &mut model, &namespaces).await?;
    let mut relations = read_relations(client, &mut model, &namespaces).await?;
    read_columns(client, &mut model, &mut relations, &mut identities).await?;
    let (quoter, defaults) = read_definition_context(client).await?;
    read_constraints(client, &mut model, &relations, version, &quoter).await?;
    read_indexes(client, &mut model, &relations, version, &quoter, &defaults).await?;
    read_triggers(client, &mut model, &relations).await?;
    read_policies(client, &mut model, &relations).await?;
    read_view_dependencies(client, &mut model, &relations).await?;
    read_functions(client, &mut model, &namespaces).await?;
    read_default_privileges(client, &mut model).await?;
    shrink_to_fit(&mut model);
    Ok(model)
}

/// Gives back the spare room of what the reads grew one row at a time (a table's six columns
/// sit in room for eight): a model of 20,000 tables is held twice through a diff.
fn shrink_to_fit(model: &mut Model) {
    for table in model.tables.values_mut() {
        table.columns.shrink_to_fit();
        table.constraints.shrink_to_fit();
        table.indexes.shrink_to_fit();
        table.triggers.shrink_to_fit();
        table.policies.shrink_to_fit();
    }
    for view in model.views.values_mut() {
        view.columns.shrink_to_fit();
        view.depends_on.shrink_to_fit();
        view.indexes.shrink_to_fit();
    }
}

/// The namespaces whose objects are read, by oid. The other queries take these oids
/// (`= ANY($1)`) instead of joining pg_namespace: its statistics are often stale (a handful
/// of schemas never reaches autovacuum's analyze threshold), and a join planned for "one
/// schema" scanned pg_type once for each schema, 60 to 75 ms a query at 20,000 tables.
#[derive(Default)]
struct Namespaces(HashMap<Oid, String>);

impl Namespaces {
    fn oids(&self) -> Vec<Oid> {
        self.0.keys().copied().collect()
    }

    /// The name of a namespace read; every row the queries return is in one.
    fn name(&self, oid: Oid) -> String {
        self.0.get(&oid).cloned().unwrap_or_default()
    }
}

/// The schemas of the model (not those an extension made), and every namespace whose
/// objects are read (an extension's schema too: its objects are left out one by one).
async fn read_schemas(
    client: &Client,
    model: &mut Model,
) -> Result<Namespaces, tokio_postgres::Error> {
    let comment = comment_sql("n.oid", "pg_namespace");
    let sql = format!(
        "SELECT n.oid, n.nspname::text, {}, {comment}, {} \
         FROM pg_namespace n WHERE {NAMESPACE_FILTER}",
        not_extension_member("pg_namespace", "n"),
        acl_sql("n.nspacl", "'n'", "n.nspowner"),
    );
    let mut namespaces = Namespaces::default();
    let mut rows = row_stream(client, &sql, &[]).await?;
    while let Some(row) = rows.try_next().await? {
        let name: String = row.get(1);
        namespaces.0.insert(row.get(0), name.clone());
        if row.get::<_, bool>(2) {
            model.schemas.insert(
                name.clone(),
                Namespace {
                    name,
                    comment: row.get(3),
                    privileges: privileges(&row, 4),
                },
            );
        }
    }
    Ok(namespaces)
}

async fn read_extensions(client: &Client, model: &mut Model) -> Result<(), tokio_postgres::Error> {
    let sql = "SELECT e.extname::text, n.nspname::text, e.extversion \
               FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
               WHERE e.extname <> 'plpgsql'";
    let mut rows = row_stream(client, sql, &[]).await?;
    while let Some(row) = rows.try_next().await? {
        let name: String = row.get(0);
        model.extensions.insert(
            name.clone(),
            Extension {
                name,
                schema: row.get(1),
                version: row.get(2),
            },
        );
    }
    Ok(())
}

async fn read_types(
    client: &Client,
    model: &mut Model,
    namespaces: &Namespaces,
) -> Result<(), tokio_postgres::Error> {
    let oids = namespaces.oids();
    let base = format!(
        "FROM pg_type t WHERE t.typnamespace = ANY($1) AND {}",
        not_extension_member("pg_type", "t")
    );
    let acl = acl_sql("t.typacl", "'T'", "t.typowner");
    let comment = comment_sql("t.oid", "pg_type");
    let enums = format!(
        "SELECT t.typnamespace, t.typname::text, \
         array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder), \
         {comment}, {acl} {base} AND t.typtype = 'e'"
    );
    let mut rows = row_stream(client, &enums, &[&oids]).await?;
    while let Some(row) = rows.try_next().await? {
        let name = QualifiedName::new(namespaces.name(row.get(0)), row.get::<_, String>(1));
        let kind = TypeKind::Enum { values: row.get(2) };
        insert_type(model, name, kind, row.get(3), privileges(&row, 4));
    }
    let domains = format!(
        "SELECT t.typnamespace, t.typname::text, format_type(t.typbasetype, t.typtypmod), t.typnotnull, \
         pg_get_expr(t.typdefaultbin, 0), \
         CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN \
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
            JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END, \
         array(SELECT c.conname::text FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname), \
         array(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname), \
         {comment}, {acl}, \
         (SELECT c.conname::text FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'n' LIMIT 1) \
         FROM pg_type t JOIN pg_type bt ON bt.oid = t.typbasetype \
         WHERE t.typnamespace = ANY($1) AND t.typtype = 'd' AND {}",
        not_extension_member("pg_type", "t")
    );
    let mut rows = row_stream(client, &domains, &[&oids]).await?;
    while let Some(row) = rows.try_next().await? {
        let name = QualifiedName::new(namespaces.name(row.get(0)), row.get::<_, String>(1));
        let names: Vec<String> = row.get(6);
        let definitions: Vec<String> = row.get(7);
        // PostgreSQL 17 keeps a domain's NOT NULL as a constraint with a name.
        let not_null_constraint = row
            .get::<_, Option<String>>(14)
            .filter(|n| *n != not_null_name(&name.name, None));
        let kind = TypeKind::Domain {
            base: row.get(2),
            not_null: row.get(3),
            not_null_constraint,
            default: row.get(4),
            collation: row.get(5),
            checks: names.into_iter().zip(definitions).collect(),
        };
        insert_type(model, name, kind, row.get(8), privileges(&row, 9));
    }
    let composites = format!(
        "SELECT t.typnamespace, t.typname::text, \
         array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
         array(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
         {comment}, {acl} \
         FROM pg_class tc JOIN pg_type t ON t.oid = tc.reltype \
         WHERE tc.relkind = 'c' AND t.typnamespace = ANY($1) AND {}",
        not_extension_member("pg_type", "t")
    );
    let mut rows = row_stream(client, &composites, &[&oids]).await?;
    while let Some(row) = rows.try_next().await? {
        let name = QualifiedName::new(namespaces.name(row.get(0)), row.get::<_, String>(1));
        let names: Vec<String> = row.get(2);
        let types: Vec<String> = row.get(3);
        let kind = TypeKind::Composite {
            attributes: names.into_iter().zip(types).collect(),
        };
        insert_type(model, name, kind, row.get(4), privileges(&row, 5));
    }
    let ranges = format!(
        "SELECT t.typnamespace, t.typname::text, \
         'SUBTYPE = ' || format_type(r.rngsubtype, NULL) \
         || CASE WHEN r.rngsubdiff <> 0 THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::regproc::text ELSE '' END \
         || CASE WHEN r.rngcanonical <> 0 THEN ', CANONICAL = ' || r.rngcanonical::regproc::text ELSE '' END, \
         {comment}, {acl} \
         FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid \
         WHERE t.typnamespace = ANY($1) AND {}",
        not_extension_member("pg_type", "t")
    );
    let mut rows = row_stream(client, &ranges, &[&oids]).await?;
    while let Some(row) = rows.try_next().await? {
        let name = QualifiedName::new(namespaces.name(row.get(0)), row.get::<_, String>(1));
        let kind = TypeKind::Range {
            options: row.get(2),
        };
        insert_type(model, name, kind, row.get(3), privileges(&row, 4));
    }
    Ok(())
}

fn insert_type(
    model: &mut Model,
    name: QualifiedName,
    kind: TypeKind,
    comment: Option<String>,
    privileges: Privileges,
) {
    model.types.insert(
        name.clone(),
        Type {
            name,
            kind,
            comment,
            privileges,
        },
    );
}

/// A sequence's numbers as pg_sequence holds them.
struct SequenceNumbers {
    data_type: String,
    start: i64,
    increment: i64,
    min: i64,
    max: i64,
    cache: i64,
    cycle: bool,
}

impl SequenceNumbers {
    /// The options an identity column's `GENERATED ... AS IDENTITY (...)` names: those
    /// that differ from what PostgreSQL gives a new sequence of the type, in the order
    /// pg_dump writes them.
    fn identity_options(&self) -> Vec<String> {
        let (low, high) = match self.data_type.as_str() {
            "smallint" => (i64::from(i16::MIN), i64::from(i16::MAX)),
            "integer" => (i64::from(i32::MIN), i64::from(i32::MAX)),
            _ => (i64::MIN, i64::MAX),
        };
        let ascending = self.increment > 0;
        let mut options = Vec::new();
        if self.start != if ascending { self.min } else { self.max } {
            options.push(format!("START WITH {}", self.start));
        }
        if self.increment != 1 {
            options.push(format!("INCREMENT BY {}", self.increment));
        }
        if self.min != if ascending { 1 } else { low } {
            options.push(format!("MINVALUE {}", self.min));
        }
        if self.max != if ascending { high } else { -1 } {
            options.push(format!("MAXVALUE {}", self.max));
        }
        if self.cache != 1 {
            options.push(format!("CACHE {}", self.cache));
        }
        if self.cycle {
            options.push("CYCLE".to_string());
        }
        options
    }
}

/// The options of identity columns' sequences, by the column's table and attribute number.
type IdentityOptions = HashMap<(Oid, i16), Vec<String>>;

/// Reads the sequences, and gives back the options of identity columns' sequences: those
/// are part of their column, not objects of their own, and are read here once instead of
/// by a subquery for each identity column.
async fn read_sequences(
    client: &Client,
    model: &mut Model,
    namespaces: &Namespaces,
) -> Result<IdentityOptions, tokio_postgres::Error> {
    let comment = comment_sql("c.oid", "pg_class");
    // Only a sequence of its own has an owner column, a comment or privileges to read.
    let own = |sql: &str| format!("CASE WHEN di.objid IS NULL THEN {sql} END");
    let sql = format!(
        "SELECT c.relnamespace, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, \
         s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, \
         {}, {}, {}, {}, {}, di.refobjid, di.refobjsubid \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
         LEFT JOIN pg_depend di ON di.classid = 'pg_class'::regclass AND di.objid = c.oid \
           AND di.refclassid = 'pg_class'::regclass AND di.deptype = 'i' \
         WHERE c.relnamespace = ANY($1) AND {}",
        own(
            "(SELECT tn.nspname::text FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
            JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass \
            AND d.deptype = 'a' AND d.refobjsubid > 0 LIMIT 1)"
        ),
        own(
            "(SELECT tc.relname::text FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass \
            AND d.deptype = 'a' AND d.refobjsubid > 0 LIMIT 1)"
        ),
        own(
            "(SELECT a.attname::text FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass \
            AND d.deptype = 'a' AND d.refobjsubid > 0 LIMIT 1)"
        ),
        own(&comment),
        acl_sql("c.relacl", "'s'", "c.relowner"),
        not_extension_member("pg_class", "c")
    );
    let mut identities = IdentityOptions::new();
    let mut rows = row_stream(client, &sql, &[&namespaces.oids()]).await?;
    while let Some(row) = rows.try_next().await? {
        let numbers = SequenceNumbers {
            data_type: row.get(2),
            start: row.get(3),
            increment: row.get(4),
            min: row.get(5),
            max: row.get(6),
            cache: row.get(7),
            cycle: row.get(8),
        };
        if let (Some(table), Some(attnum)) =
            (row.get::<_, Option<Oid>>(18), row.get::<_, Option<i32>>(19))
        {
            if let Ok(attnum) = i16::try_from(attnum) {
                identities.insert((table, attnum), numbers.identity_options());
            }
            continue;
        }
        let name = QualifiedName::new(namespaces.name(row.get(0)), row.get::<_, String>(1));
        let owned_by = match (
            row.get::<_, Option<String>>(9),
            row.get::<_, Option<String>>(10),
            row.get::<_, Option<String>>(11),
        ) {
            (Some(schema), Some(table), Some(column)) => {
                Some((QualifiedName::new(schema, table), column))
            }
            _ => None,
        };
        model.sequences.insert(
            name.clone(),
            Sequence {
                name,
                data_type: numbers.data_type,
                start: numbers.start,
                increment: numbers.increment,
                min: numbers.min,
                max: numbers.max,
                cache: numbers.cache,
                cycle: numbers.cycle,
                owned_by,
                comment: row.get(12),
                privileges: privileges(&row, 13),
            },
        );
    }
    Ok(identities)
}

/// Where each table or view read so far is, by oid.
#[derive(Default)]
struct Relations {
    by_oid: HashMap<Oid, (QualifiedName, RelationKind)>,
    tables: Vec<Oid>,
    views: Vec<Oid>,
    /// Each relation's columns by attribute number (index 0 is `attnum` 1, `None` for a
    /// dropped one), for naming key columns and writing index and key definitions.
    attributes: HashMap<Oid, Vec<Option<Attribute>>>,
}

#[derive(Clone, Copy, PartialEq)]
enum RelationKind {
    Table,
    View,
}

impl Relations {
    fn name(&self, oid: Oid) -> Option<&QualifiedName> {
        self.by_oid.get(&oid).map(|(name, _)| name)
    }

    fn all(&self) -> Vec<Oid> {
        self.tables.iter().chain(&self.views).copied().collect()
    }

    /// The names of a relation's columns by attribute number, in the order given; numbers
    /// that name no column (0 for an expression) are left out, as the catalog's joins did.
    fn column_names(&self, relation: Oid, attnums: &[i16]) -> Vec<String> {
        let Some(attributes) = self.attributes.get(&relation) else {
            return Vec::new();
        };
        attnums
            .iter()
            .filter_map(|&attnum| {
                let at = usize::try_from(attnum).ok()?.checked_sub(1)?;
                attributes.get(at)?.as_ref().map(|a| a.name.clone())
            })
            .collect()
    }
}

async fn read_relations(
    client: &Client,
    model: &mut Model,
    namespaces: &Namespaces,
) -> Result<Relations, tokio_postgres::Error> {
    let comment = comment_sql("c.oid", "pg_class");
    let sql = format!(
        "SELECT c.oid, c.relnamespace, c.relname::text, c.relkind::text, c.relpersistence = 'u', \
         CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
         CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
         array(SELECT pn.nspname::text FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
               JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid ORDER BY i.inhseqno), \
         array(SELECT pc.relname::text FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
               WHERE i.inhrelid = c.oid ORDER BY i.inhseqno), \
         coalesce(c.reloptions, '{{}}')::text[], c.relrowsecurity, c.relforcerowsecurity, \
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, \
         {comment}, {} \
         FROM pg_class c \
         WHERE c.relkind IN ('r', 'p', 'v', 'm') AND c.relnamespace = ANY($1) AND {} \
         AND NOT (c.relkind = 'r' AND c.relname IN ('{}', '{}'))",
        acl_sql("c.relacl", "'r'", "c.relowner"),
        not_extension_member("pg_class", "c"),
        HISTORY_TABLES[0],
        HISTORY_TABLES[1]
    );
    let mut relations = Relations::default();
    let mut rows = row_stream(client, &sql, &[&namespaces.oids()]).await?;
    while let Some(row) = rows.try_next().await? {
        let oid: Oid = row.get(0);
        let name = QualifiedName::new(namespaces.name(row.get(1)), row.get::<_, String>(2));
        let kind: String = row.get(3);
        let options: Vec<String> = row.get(9);
        let comment: Option<String> = row.get(13);
        let privileges = privileges(&row, 14);
        if kind == "v" || kind == "m" {
            relations
                .by_oid
                .insert(oid, (name.clone(), RelationKind::View));
            relations.views.push(oid);
            model.views.insert(
                name.clone(),
                View {
                    name,
                    materialized: kind == "m",
                    definition: row.get::<_, Option<String>>(12).unwrap_or_default(),
                    columns: Vec::new(),
                    options,
                    depends_on: Vec::new(),
                    indexes: NameMap::new(),
                    comment,
                    privileges,
                },
            );
            continue;
        }
        let parent_schemas: Vec<String> = row.get(7);
        let parent_names: Vec<String> = row.get(8);
        let parents: Vec<QualifiedName> = parent_schemas
            .into_iter()
            .zip(parent_names)
            .map(|(s, n)| QualifiedName::new(s, n))
            .collect();
        let bound: Option<String> = row.get(6);
        let (partition_of, inherits) = match bound {
            Some(bound) => (
                parents
                    .first()
                    .cloned()
                    .map(|parent| Partition { parent, bound }),
                Vec::new(),
            ),
            None => (None, parents),
        };
        relations
            .by_oid
            .insert(oid, (name.clone(), RelationKind::Table));
        relations.tables.push(oid);
        model.tables.insert(
            name.clone(),
            Table {
                name,
                unlogged: row.get(4),
                partition_by: row.get(5),
                partition_of,
                inherits,
                options,
                columns: Vec::new(),
                constraints: NameMap::new(),
                indexes: NameMap::new(),
                triggers: NameMap::new(),
                row_security: row.get(10),
                force_row_security: row.get(11),
                policies: NameMap::new(),
                comment,
                privileges,
            },
        );
    }
    Ok(relations)
}

async fn read_columns(
    client: &Client,
    model: &mut Model,
    relations: &mut Relations,
    identities: &mut IdentityOptions,
) -> Result<(), tokio_postgres::Error> {
    // A column default cannot refer to columns, so it is decompiled without its table
    // (relation 0): with the table, pg_get_expr opens every table to name its columns,
    // which was most of this query's time at 20,000 tables. Generation expressions do
    // refer to columns and keep theirs.
    let sql = format!(
        "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
         CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, 0) END, a.attidentity::text, \
         CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
         CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN \
           (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
            JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END, \
         NOT a.attislocal, ds.description, {}, \
         nn.conname::text, coalesce(nn.connoinherit, false), coalesce(nn.convalidated, true), \
         a.attnum, a.atttypid, a.attcollation \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         LEFT JOIN pg_description ds ON ds.objoid = a.attrelid \
           AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = a.attnum \
         LEFT JOIN pg_constraint nn ON nn.conrelid = a.attrelid AND nn.contype = 'n' \
           AND nn.conkey[1] = a.attnum \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attrelid = ANY($1) \
         ORDER BY a.attrelid, a.attnum",
        acl_sql(
            "a.attacl",
            "'c'",
            "(SELECT ac.relowner FROM pg_class ac WHERE ac.oid = a.attrelid)"
        )
    );
    let oids = relations.all();
    let mut rows = row_stream(client, &sql, &[&oids]).await?;
    while let Some(row) = rows.try_next().await? {
        let oid: Oid = row.get(0);
        let Some((name, kind)) = relations.by_oid.get(&oid) else {
            continue;
        };
        let column_name: String = row.get(1);
        let attnum: i16 = row.get(18);
        if let Ok(at) = usize::try_from(attnum - 1) {
            let attributes = relations.attributes.entry(oid).or_default();
            if attributes.len() <= at {
                attributes.resize(at + 1, None);
            }
            attributes[at] = Some(Attribute {
                name: column_name.clone(),
                type_oid: row.get(19),
                collation: row.get(20),
            });
        }
        if *kind == RelationKind::View {
            if let Some(view) = model.views.get_mut(name) {
                view.columns.push(column_name);
            }
            continue;
        }
        let identity = match row.get::<_, String>(5).as_str() {
            "a" => Some(Identity::Always),
            "d" => Some(Identity::ByDefault),
            _ => None,
        };
        // PostgreSQL 18 keeps a column's NOT NULL as a constraint with a name, which may
        // be NOT VALID (attnotnull is true then too) or NO INHERIT.
        let constraint: Option<String> = row.get(15);
        let validated: bool = row.get(17);
        let not_null_constraint =
            constraint.filter(|n| *n != not_null_name(&name.name, Some(&column_name)));
        if let Some(table) = model.tables.get_mut(name) {
            table.columns.push(Column {
                data_type: row.get(2),
                not_null: row.get::<_, bool>(3) && validated,
                not_null_constraint,
                not_null_no_inherit: row.get(16),
                not_null_not_valid: !validated,
                name: column_name,
                default: row.get(4),
                identity,
                identity_options: match identity {
                    Some(_) => identities.remove(&(oid, attnum)).unwrap_or_default(),
                    None => Vec::new(),
                },
                generated: row.get(6),
                collation: row.get(7),
                inherited: row.get(8),
                comment: row.get(9),
                privileges: privileges(&row, 10),
            });
        }
    }
    Ok(())
}

async fn read_constraints(
    client: &Client,
    model: &mut Model,
    relations: &Relations,
    version: i32,
    quoter: &Quoter,
) -> Result<(), tokio_postgres::Error> {
    // `ON DELETE SET NULL (a)` keeps its columns in confdelsetcols, and a unique key may
    // have NULLS NOT DISTINCT (PostgreSQL 15); PostgreSQL 18's temporal keys (conperiod) and
    // NOT ENFORCED constraints are left to pg_get_constraintdef.
    let (delete_columns, nulls_not_distinct) = if version >= 150000 {
        (
            "c.confdelsetcols::int2[]",
            "coalesce(pi.indnullsnotdistinct, false)",
        )
    } else {
        ("NULL::int2[]", "false")
    };
    let server_written = if version >= 180000 {
        "c.contype IN ('c', 'x') OR c.conperiod OR NOT c.conenforced"
    } else {
        "c.contype IN ('c', 'x')"
    };
    let comment = comment_sql("c.oid", "pg_constraint");
    // Key columns come as attribute numbers, named from the columns already read: naming
    // them in SQL (a subquery on pg_attribute a constraint) was a third of the query's time.
    let sql = format!(
        "SELECT c.conrelid, c.conname::text, c.contype::text, \
         CASE WHEN {server_written} THEN pg_get_constraintdef(c.oid) END, \
         c.convalidated, c.conkey::int2[], c.confrelid, (NOT c.conislocal OR c.conparentid <> 0), \
         {comment}, \
         array_to_string(ix.reloptions, ', '), rn.nspname::text, r.relname::text, \
         c.confkey::int2[], c.confdeltype::text, c.confupdtype::text, c.confmatchtype::text, \
         c.condeferrable, c.condeferred, {delete_columns}, \
         pi.indkey::int2[], pi.indnkeyatts, {nulls_not_distinct}, c.oid \
         FROM pg_constraint c \
         LEFT JOIN pg_class ix ON ix.oid = c.conindid AND c.contype IN ('p', 'u', 'x') \
         LEFT JOIN pg_index pi ON pi.indexrelid = c.conindid AND c.contype IN ('p', 'u') \
         LEFT JOIN pg_class r ON r.oid = c.confrelid LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace \
         WHERE c.conrelid = ANY($1) AND c.contype IN ('p', 'u', 'f', 'c', 'x')"
    );
    let mut unfinished: Vec<Unfinished> = Vec::new();
    let mut rows = row_stream(client, &sql, &[&relations.tables]).await?;
    while let Some(row) = rows.try_next().await? {
        let table: Oid = row.get(0);
        if relations.name(table).is_none() {
            continue;
        }
        let kind = match row.get::<_, &str>(2) {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "f" => ConstraintKind::ForeignKey,
            "c" => ConstraintKind::Check,
            _ => ConstraintKind::Exclusion,
        };
        let keys: Vec<i16> = row.get::<_, Option<_>>(5).unwrap_or_default();
        let columns = relations.column_names(table, &keys);
        let tail = constraint_definition::Tail {
            deferrable: row.get(16),
            initially_deferred: row.get(17),
            validated: row.get(4),
        };
        let mut constraint = Constraint {
            name: row.get(1),
            kind,
            definition: row.get::<_, Option<String>>(3).unwrap_or_default(),
            validated: tail.validated,
            columns,
            foreign_key: None,
            inherited: row.get(7),
            comment: row.get(8),
        };
        let mut complete = !constraint.definition.is_empty();
        // A column the read did not name (it always should) leaves the text to the server.
        let named = constraint.columns.len() == keys.len();
        match kind {
            ConstraintKind::PrimaryKey | ConstraintKind::Unique if !complete && named => {
                let index_keys: Vec<i16> = row.get::<_, Option<_>>(19).unwrap_or_default();
                let key_count = usize::try_from(row.get::<_, Option<i16>>(20).unwrap_or(0));
                let included = &index_keys[key_count.unwrap_or(0).min(index_keys.len())..];
                let include = relations.column_names(table, included);
                if include.len() == included.len() {
                    constraint.definition = constraint_definition::key(
                        kind == ConstraintKind::PrimaryKey,
                        row.get(21),
                        &constraint.columns,
                        &include,
                        tail,
                        quoter,
                    );
                    complete = true;
                }
            }
            ConstraintKind::ForeignKey => {
                let referenced: Oid = row.get(6);
                let referenced_keys: Vec<i16> = row.get::<_, Option<_>>(12).unwrap_or_default();
                let delete_keys: Option<Vec<i16>> = row.get(18);
                let delete_columns = delete_keys
                    .as_ref()
                    .map(|keys| relations.column_names(table, keys));
                let delete_named = match (&delete_keys, &delete_columns) {
                    (Some(keys), Some(columns)) => keys.len() == columns.len(),
                    _ => true,
                };
                constraint.foreign_key =
                    foreign_key(&row, Vec::new(), delete_columns).map(Box::new);
                // A key to a table outside the model has its columns named below.
                if relations.attributes.contains_key(&referenced) {
                    let referenced_columns = relations.column_names(referenced, &referenced_keys);
                    let referenced_named = referenced_columns.len() == referenced_keys.len();
                    if let Some(fk) = &mut constraint.foreign_key {
                        fk.referenced_columns = referenced_columns;
                        if !complete && named && delete_named && referenced_named {
                            constraint.definition = constraint_definition::foreign_key(
                                &constraint.columns,
                                fk,
                                tail,
                                quoter,
                            );
                            complete = true;
                        }
                    }
                } else {
                    unfinished.push(Unfinished {
                        table,
                        constraint,
                        oid: row.get(22),
                        options: row.get(9),
                        referenced: Some((referenced, referenced_keys)),
                    });
                    continue;
                }
            }
            _ => {}
        }
        let options: Option<String> = row.get(9);
        if complete {
            finish_constraint(model, relations, table, constraint, options);
        } else {
            unfinished.push(Unfinished {
                table,
                constraint,
                oid: row.get(22),
                options,
                referenced: None,
            });
        }
    }
    if unfinished.is_empty() {
        return Ok(());
    }
    // Foreign keys to tables outside the model: their columns' names.
    let outside: Vec<Oid> = unfinished
        .iter()
        .filter_map(|u| u.referenced.as_ref().map(|(table, _)| *table))
        .collect();
    let mut names: HashMap<(Oid, i16), String> = HashMap::new();
    if !outside.is_empty() {
        for row in client
            .query(
                "SELECT a.attrelid, a.attnum, a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = ANY($1) AND a.attnum > 0",
                &[&outside],
            )
            .await?
        {
            names.insert((row.get(0), row.get(1)), row.get(2));
        }
    }
    for u in &mut unfinished {
        if let (Some((table, keys)), Some(fk)) = (&u.referenced, &mut u.constraint.foreign_key) {
            fk.referenced_columns = keys
                .iter()
                .filter_map(|key| names.get(&(*table, *key)).cloned())
                .collect();
        }
    }
    // The rest, and any whose text could not be written here, from the server.
    let oids: Vec<Oid> = unfinished.iter().map(|u| u.oid).collect();
    let mut definitions: HashMap<Oid, String> = client
        .query(
            "SELECT x, pg_get_constraintdef(x) FROM unnest($1::oid[]) x",
            &[&oids],
        )
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for mut u in unfinished {
        if u.constraint.definition.is_empty() {
            u.constraint.definition = definitions.remove(&u.oid).unwrap_or_default();
        }
        finish_constraint(model, relations, u.table, u.constraint, u.options);
    }
    Ok(())
}

/// A constraint read without all of its text or names, finished after the main query.
struct Unfinished {
    table: Oid,
    constraint: Constraint,
    oid: Oid,
    options: Option<String>,
    /// A foreign key's referenced table outside the model and its key's attribute numbers.
    referenced: Option<(Oid, Vec<i16>)>,
}

/// Adds a key's index storage parameters (pg_get_constraintdef leaves them out, pg_dump
/// adds them) and puts the constraint on its table.
fn finish_constraint(
    model: &mut Model,
    relations: &Relations,
    table: Oid,
    mut constraint: Constraint,
    options: Option<String>,
) {
    if let Some(options) = options
        && !options.is_empty()
        && !constraint.definition.contains(" WITH (")
    {
        constraint.definition = with_index_options(&constraint.definition, &options);
    }
    insert_constraint(model, relations, table, constraint);
}

fn insert_constraint(model: &mut Model, relations: &Relations, table: Oid, constraint: Constraint) {
    if let Some(table) = relations.name(table).and_then(|n| model.tables.get_mut(n)) {
        table
            .constraints
            .insert(constraint.name.clone(), constraint);
    }
}

/// A foreign key's columns 10, 11 and 13 to 17 of [`read_constraints`]' query, with the
/// referenced columns and those `ON DELETE SET NULL (...)` names. `None` only for codes
/// this version does not know (a later server's new action).
fn foreign_key(
    row: &tokio_postgres::Row,
    referenced_columns: Vec<String>,
    delete_columns: Option<Vec<String>>,
) -> Option<ForeignKey> {
    let referenced_table = QualifiedName::new(
        row.get::<_, Option<String>>(10)?,
        row.get::<_, Option<String>>(11)?,
    );
    let on_delete: String = row.get(13);
    let on_update: String = row.get(14);
    let match_type: String = row.get(15);
    Some(ForeignKey {
        referenced_table,
        referenced_columns,
        on_delete: ReferentialAction::from_catalog(&on_delete, delete_columns)?,
        on_update: ReferentialAction::from_catalog(&on_update, None)?,
        match_type: MatchType::from_catalog(&match_type)?,
        deferrable: row.get(16),
        initially_deferred: row.get(17),
    })
}

/// Puts `WITH (options)` where a key's definition takes it: after the columns and `INCLUDE`,
/// before `DEFERRABLE`.
fn with_index_options(definition: &str, options: &str) -> String {
    let with = format!(" WITH ({options})");
    for tail in [" DEFERRABLE", " NOT DEFERRABLE", " INITIALLY"] {
        if let Some(at) = definition.find(tail) {
            return format!("{}{with}{}", &definition[..at], &definition[at..]);
        }
    }
    format!("{definition}{with}")
}

/// What the server says about the text of definitions: its keywords (for quoting names) and
/// the default operator classes, read once for the definitions written here.
async fn read_definition_context(
    client: &Client,
) -> Result<(Quoter, DefaultOpclasses), tokio_postgres::Error> {
    let keywords = client
        .query(
            "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'",
            &[],
        )
        .await?;
    let quoter = Quoter::new(keywords.iter().map(|row| row.get::<_, String>(0)));
    let mut defaults = DefaultOpclasses::default();
    for row in client
        .query(
            "SELECT opcmethod, opcintype, oid FROM pg_opclass WHERE opcdefault",
            &[],
        )
        .await?
    {
        defaults.insert(row.get(0), row.get(1), row.get(2));
    }
    Ok((quoter, defaults))
}

async fn read_indexes(
    client: &Client,
    model: &mut Model,
    relations: &Relations,
    version: i32,
    quoter: &Quoter,
    defaults: &DefaultOpclasses,
) -> Result<(), tokio_postgres::Error> {
    // The server writes the definition only of an index whose text needs more than names
    // (see index_definition): expressions, a predicate, storage parameters, opclass options,
    // the index of a partitioned table. The others are written here, or, when that turns
    // out to need the server too, asked for by a second query below.
    let nulls_not_distinct = if version >= 150000 {
        "i.indnullsnotdistinct"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT i.indrelid, ic.relname::text, \
         CASE WHEN i.indexprs IS NOT NULL OR i.indpred IS NOT NULL OR ic.reloptions IS NOT NULL \
           OR ic.relkind <> 'i' OR EXISTS (SELECT 1 FROM pg_attribute ia \
             WHERE ia.attrelid = i.indexrelid AND ia.attoptions IS NOT NULL) \
           THEN pg_get_indexdef(i.indexrelid) END, \
         i.indisvalid, pn.nspname::text, pc.relname::text, ds.description, \
         i.indexrelid, i.indisunique, {nulls_not_distinct}, am.amname::text, ic.relam, \
         i.indnkeyatts, i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[], \
         i.indoption::int2[] \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
         LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid \
         LEFT JOIN pg_class pc ON pc.oid = h.inhparent \
         LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
         LEFT JOIN pg_description ds ON ds.objoid = i.indexrelid \
           AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0 \
         WHERE i.indrelid = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
            WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))"
    );
    let no_attributes = Vec::new();
    let oids = relations.all();
    // Indexes the server has to write after all: their oid and where they go.
    let mut pending: Vec<(Oid, Oid, Index)> = Vec::new();
    let mut rows = row_stream(client, &sql, &[&oids]).await?;
    while let Some(row) = rows.try_next().await? {
        let oid: Oid = row.get(0);
        let Some((owner, _)) = relations.by_oid.get(&oid) else {
            continue;
        };
        let parent = match (
            row.get::<_, Option<String>>(4),
            row.get::<_, Option<String>>(5),
        ) {
            (Some(schema), Some(name)) => Some(QualifiedName::new(schema, name)),
            _ => None,
        };
        let name: String = row.get(1);
        let definition = match row.get::<_, Option<String>>(2) {
            Some(definition) => Some(definition),
            None => {
                let keys: Vec<i16> = row.get(13);
                let opclasses: Vec<Oid> = row.get(14);
                let collations: Vec<Oid> = row.get(15);
                let options: Vec<i16> = row.get(16);
                let index = IndexRow {
                    name: &name,
                    table_schema: &owner.schema,
                    table_name: &owner.name,
                    unique: row.get(8),
                    nulls_not_distinct: row.get(9),
                    method: row.get(10),
                    method_oid: row.get(11),
                    key_count: usize::try_from(row.get::<_, i16>(12)).unwrap_or(0),
                    keys: &keys,
                    opclasses: &opclasses,
                    collations: &collations,
                    options: &options,
                };
                let attributes = relations.attributes.get(&oid).unwrap_or(&no_attributes);
                index_definition::render(&index, attributes, defaults, quoter)
            }
        };
        let index = Index {
            name,
            definition: definition.clone().unwrap_or_default(),
            valid: row.get(3),
            parent,
            comment: row.get(6),
        };
        match definition {
            Some(_) => insert_index(model, relations, oid, index),
            None => pending.push((row.get(7), oid, index)),
        }
    }
    if !pending.is_empty() {
        let index_oids: Vec<Oid> = pending.iter().map(|(index, _, _)| *index).collect();
        let mut definitions: HashMap<Oid, String> = client
            .query(
                "SELECT x, pg_get_indexdef(x) FROM unnest($1::oid[]) x",
                &[&index_oids],
            )
            .await?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        for (index_oid, oid, mut index) in pending {
            index.definition = definitions.remove(&index_oid).unwrap_or_default();
            insert_index(model, relations, oid, index);
        }
    }
    Ok(())
}

/// Puts an index where it belongs: on its table or materialized view.
fn insert_index(model: &mut Model, relations: &Relations, owner: Oid, index: Index) {
    let Some((owner, kind)) = relations.by_oid.get(&owner) else {
        return;
    };
    let indexes = match kind {
        RelationKind::Table => model.tables.get_mut(owner).map(|t| &mut t.indexes),
        RelationKind::View => model.views.get_mut(owner).map(|v| &mut v.indexes),
    };
    if let Some(indexes) = indexes {
        indexes.insert(index.name.clone(), index);
    }
}

async fn read_triggers(
    client: &Client,
    model: &mut Model,
    relations: &Relations,
) -> Result<(), tokio_postgres::Error> {
    // Triggers a partition inherits from its parent (tgparentid) come with the parent's.
    let comment = comment_sql("t.oid", "pg_trigger");
    let sql = format!(
        "SELECT t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text, \
         {comment} \
         FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgrelid = ANY($1)"
    );
    let mut rows = row_stream(client, &sql, &[&relations.tables]).await?;
    while let Some(row) = rows.try_next().await? {
        let oid: Oid = row.get(0);
        let Some(table) = relations.name(oid).and_then(|n| model.tables.get_mut(n)) else {
            continue;
        };
        let name: String = row.get(1);
        let enabled: String = row.get(3);
        table.triggers.insert(
            name.clone(),
            Trigger {
                name,
                definition: row.get(2),
                enabled: enabled.chars().next().unwrap_or('O'),
                comment: row.get(4),
            },
        );
    }
    Ok(())
}

async fn read_policies(
    client: &Client,
    model: &mut Model,
    relations: &Relations,
) -> Result<(), tokio_postgres::Error> {
    let comment = comment_sql("p.oid", "pg_policy");
    let sql = format!(
        "SELECT p.polrelid, p.polname::text, p.polpermissive, p.polcmd::text, \
         array(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END \
               FROM unnest(p.polroles) r ORDER BY 1), \
         pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), \
         {comment} \
         FROM pg_policy p WHERE p.polrelid = ANY($1)"
    );
    let mut rows = row_stream(client, &sql, &[&relations.tables]).await?;
    while let Some(row) = rows.try_next().await? {
        let oid: Oid = row.get(0);
        let Some(table) = relations.name(oid).and_then(|n| model.tables.get_mut(n)) else {
            continue;
        };
        let command = match row.get::<_, String>(3).as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let name: String = row.get(1);
        table.policies.insert(
            name.clone(),
            Policy {
                name,
                permissive: row.get(2),
                command: command.to_string(),
                roles: row.get(4),
                using: row.get(5),
                check: row.get(6),
                comment: row.get(7),
            },
        );
    }
    Ok(())
}

async fn read_view_dependencies(
    client: &Client,
    model: &mut Model,
    relations: &Relations,
) -> Result<(), tokio_postgres::Error> {
    let sql = "SELECT DISTINCT r.ev_class, d.refobjid FROM pg_rewrite r \
         JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
         AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class \
         WHERE r.ev_class = ANY($1)";
    let mut rows = row_stream(client, sql, &[&relations.views]).await?;
    while let Some(row) = rows.try_next().await? {
        let view: Oid = row.get(0);
        let on: Oid = row.get(1);
        let (Some(view), Some(on)) = (relations.name(view), relations.name(on)) else {
            continue;
        };
        if let Some(view) = model.views.get_mut(view) {
            view.depends_on.push(on.clone());
        }
    }
    for view in model.views.values_mut() {
        view.depends_on.sort();
        view.depends_on.dedup();
    }
    Ok(())
}

async fn read_functions(
    client: &Client,
    model: &mut Model,
    namespaces: &Namespaces,
) -> Result<(), tokio_postgres::Error> {
    // Aggregates and window functions have no pg_get_functiondef: not modelled yet. Functions
    // a type made for itself (a range's constructors) come with the type.
    let comment = comment_sql("p.oid", "pg_proc");
    let sql = format!(
        "SELECT p.pronamespace, p.proname::text, pg_get_function_identity_arguments(p.oid), \
         p.prokind = 'p', pg_get_functiondef(p.oid), \
         CASE WHEN p.prokind = 'f' THEN pg_get_function_result(p.oid) END, \
         {comment}, {} \
         FROM pg_proc p \
         WHERE p.prokind IN ('f', 'p') AND p.pronamespace = ANY($1) AND {} \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
            AND d.objid = p.oid AND d.deptype = 'i')",
        acl_sql("p.proacl", "'f'", "p.proowner"),
        not_extension_member("pg_proc", "p")
    );
    let mut rows = row_stream(client, &sql, &[&namespaces.oids()]).await?;
    while let Some(row) = rows.try_next().await? {
        let key = FunctionKey {
            schema: namespaces.name(row.get(0)),
            name: row.get(1),
            arguments: row.get(2),
        };
        model.functions.insert(
            key.clone(),
            Function {
                key,
                procedure: row.get(3),
                definition: row.get(4),
                result: row.get(5),
                comment: row.get(6),
                privileges: privileges(&row, 7),
            },
        );
    }
    Ok(())
}

async fn read_default_privileges(
    client: &Client,
    model: &mut Model,
) -> Result<(), tokio_postgres::Error> {
    // acldefault's kinds are pg_default_acl's, but for sequences.
    let sql = format!(
        "SELECT n.nspname::text, d.defaclobjtype::text, {} \
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace \
         WHERE d.defaclnamespace = 0 OR ({NAMESPACE_FILTER})",
        acl_sql(
            "d.defaclacl",
            "(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END)::\"char\"",
            "d.defaclrole"
        )
    );
    let mut rows = row_stream(client, &sql, &[]).await?;
    while let Some(row) = rows.try_next().await? {
        let schema: Option<String> = row.get(0);
        let objects = match row.get::<_, String>(1).as_str() {
            "r" => "TABLES",
            "S" => "SEQUENCES",
            "f" => "FUNCTIONS",
            "T" => "TYPES",
            _ => "SCHEMAS",
        };
        let mut privileges = privileges(&row, 2);
        let key = DefaultPrivilegesKey {
            role: row.get(5),
            schema,
            objects: objects.to_string(),
        };
        if key.schema.is_some() {
            // Added to the global default: the role's own privileges are not in it.
            privileges.owner_revoked.clear();
        }
        model
            .default_privileges
            .insert(key.clone(), DefaultPrivileges { key, privileges });
    }
    Ok(())
}

/// Five columns reading an ACL (`acl`, of the `acldefault` kind `kind`, of the object owned
/// by `owner`): the grantees, privileges and grant options held by roles other than the
/// owner (three arrays in one order), then the owner's name and the default privileges it
/// lacks. A NULL ACL reads as its default.
fn acl_sql(acl: &str, kind: &str, owner: &str) -> String {
    let effective = format!("aclexplode(coalesce({acl}, acldefault({kind}, {owner})))");
    let others = |column: &str| {
        format!(
            "array(SELECT {column} FROM {effective} x WHERE x.grantee <> {owner} \
             ORDER BY x.grantee, x.privilege_type, x.is_grantable, x.grantor)"
        )
    };
    let full = [
        others("CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END"),
        others("x.privilege_type"),
        others("x.is_grantable"),
        format!("pg_get_userbyid({owner})::text"),
        format!(
            "array(SELECT dflt.privilege_type FROM aclexplode(acldefault({kind}, {owner})) dflt \
             WHERE dflt.grantee = {owner} AND NOT EXISTS (SELECT 1 FROM {effective} x \
             WHERE x.grantee = {owner} AND x.privilege_type = dflt.privilege_type) ORDER BY 1)"
        ),
    ];
    // Most ACLs are NULL (the defaults): their columns are constants, not five
    // aclexplode calls a row, which doubled the time of reading a big catalog.
    let public = |privilege: &str| {
        [
            "ARRAY['PUBLIC']".to_string(),
            format!("ARRAY['{privilege}']"),
            "ARRAY[false]".to_string(),
        ]
    };
    let nobody = || {
        [
            "'{}'::text[]".to_string(),
            "'{}'::text[]".to_string(),
            "'{}'::boolean[]".to_string(),
        ]
    };
    let defaults = match kind {
        "'f'" => Some(public("EXECUTE")),
        "'T'" => Some(public("USAGE")),
        "'n'" | "'r'" | "'s'" | "'c'" => Some(nobody()),
        _ => None,
    };
    match defaults {
        Some([grantees, privileges, grantable]) => {
            let null = [
                grantees,
                privileges,
                grantable,
                "''".to_string(),
                "'{}'::text[]".to_string(),
            ];
            full.iter()
                .zip(null)
                .map(|(full, null)| format!("CASE WHEN {acl} IS NULL THEN {null} ELSE {full} END"))
                .collect::<Vec<_>>()
                .join(", ")
        }
        None => full.join(", "),
    }
}

/// The [`Privileges`] of the five columns of [`acl_sql`] from `first` on.
fn privileges(row: &tokio_postgres::Row, first: usize) -> Privileges {
    let grantees: Vec<String> = row.get(first);
    let kinds: Vec<String> = row.get(first + 1);
    let grantable: Vec<bool> = row.get(first + 2);
    let owner: String = row.get(first + 3);
    let lacking: Vec<String> = row.get(first + 4);
    // Grants of one privilege by several grantors are one entry, with the grant option if
    // any of them gave it.
    let mut held: BTreeMap<(String, String), bool> = BTreeMap::new();
    for ((grantee, privilege), option) in grantees.into_iter().zip(kinds).zip(grantable) {
        *held.entry((grantee, privilege)).or_default() |= option;
    }
    Privileges {
        grants: held
            .into_iter()
            .map(|((grantee, privilege), grantable)| Grant {
                grantee,
                privilege,
                grantable,
            })
            .collect(),
        owner_revoked: lacking
            .into_iter()
            .map(|privilege| Grant {
                grantee: owner.clone(),
                privilege,
                grantable: false,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(data_type: &str, start: i64, increment: i64, min: i64, max: i64) -> SequenceNumbers {
        SequenceNumbers {
            data_type: data_type.to_string(),
            start,
            increment,
            min,
            max,
            cache: 1,
            cycle: false,
        }
    }

    #[test]
    fn identity_options_name_what_differs_from_a_new_sequence() {
        // What `GENERATED ... AS IDENTITY` alone gives, and a plain descending one.
        assert!(
            numbers("integer", 1, 1, 1, 2147483647)
                .identity_options()
                .is_empty()
        );
        assert_eq!(
            numbers("smallint", -1, -1, -32768, -1).identity_options(),
            ["INCREMENT BY -1"]
        );
        assert!(
            numbers("bigint", 1, 1, 1, i64::MAX)
                .identity_options()
                .is_empty()
        );
        assert_eq!(
            numbers("integer", 100, 10, 1, 5000).identity_options(),
            ["START WITH 100", "INCREMENT BY 10", "MAXVALUE 5000"]
        );
        assert_eq!(
            numbers("smallint", -1, -2, -500, -1).identity_options(),
            ["INCREMENT BY -2", "MINVALUE -500"]
        );
        let mut cycling = numbers("bigint", 50, 5, 1, i64::MAX);
        cycling.cache = 10;
        cycling.cycle = true;
        assert_eq!(
            cycling.identity_options(),
            ["START WITH 50", "INCREMENT BY 5", "CACHE 10", "CYCLE"]
        );
    }
}
