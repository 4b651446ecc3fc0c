//! `tend soft-delete` and `tend undelete`: for teams whose app does not do it, marking one
//! row deleted (its `deleted_at`/`deletedAt` set, the soft-delete rule then purges it after
//! the grace period) together with the rows that belong to it: those a hard delete would
//! take through `ON DELETE CASCADE`, in every such table that has a soft-delete column.
//! All are marked with one timestamp, so `undelete` restores exactly what one soft-delete
//! marked, and leaves rows that were soft-deleted on their own before.

use serde::Serialize;
use tend_lifecycle::ReferenceGraph;
use tend_lifecycle::rules::find_table;
use tend_lifecycle::subject::SubjectGraph;
use tend_schema::Model;
use tend_schema::model::{QualifiedName, ident};

/// The columns that say who deleted a row, as the ORMs spell them.
const DELETED_BY_COLUMNS: [&str; 2] = ["deleted_by", "deletedBy"];

/// Why a soft-delete or undelete cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SoftDeleteError {
    #[error("`{0}` is not TABLE:KEY (users:42)")]
    BadRow(String),
    #[error("the database has no table `{0}`")]
    UnknownTable(String),
    #[error("{table} has no primary key of one column to find the row by")]
    NoKey { table: String },
    #[error(
        "{table} has no deleted_at or deletedAt timestamp column to mark its rows with: soft delete needs one"
    )]
    NoColumn { table: String },
    #[error("no row of {table} has {column} = {key}")]
    NotFound {
        table: String,
        column: String,
        key: String,
    },
    #[error("`{key}` is not a value of {table}.{column} ({data_type})")]
    BadKey {
        table: String,
        column: String,
        key: String,
        data_type: String,
    },
    #[error("{table} {key} is already soft-deleted (at {at})")]
    AlreadyDeleted {
        table: String,
        key: String,
        at: String,
    },
    #[error("{table} {key} is not soft-deleted: there is nothing to undelete")]
    NotDeleted { table: String, key: String },
    #[error("reading the schema failed: {0}")]
    Schema(#[from] tend_schema::SchemaError),
    #[error("{}", tend_pg::error_text(.0))]
    Database(#[from] tokio_postgres::Error),
}

/// One table's rows to mark (or unmark).
#[derive(Debug, Clone, Serialize)]
pub struct MarkStep {
    pub table: String,
    pub column: String,
    pub rows: u64,
    #[serde(skip)]
    sql: String,
}

/// What a soft-delete or undelete does: `--dry-run` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct MarkPlan {
    pub table: String,
    pub key: String,
    pub undelete: bool,
    /// For an undelete: the mark being lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marked_at: Option<String>,
    pub steps: Vec<MarkStep>,
    /// Tables whose rows belong to the row but have no soft-delete column: they stay as
    /// they are (a purge of the row would cascade into them).
    pub unmarked_tables: Vec<String>,
}

impl MarkPlan {
    pub fn rows(&self) -> u64 {
        self.steps.iter().map(|s| s.rows).sum()
    }
}

/// What a soft-delete or undelete did.
#[derive(Debug, Clone, Serialize)]
pub struct MarkReport {
    pub table: String,
    pub key: String,
    pub undelete: bool,
    pub steps: Vec<MarkStep>,
    pub rows: u64,
}

fn soft_delete_column(model: &Model, table: &QualifiedName) -> Option<String> {
    tend_lifecycle::rules::soft_delete_column(model.tables.get(table)?).map(|c| c.name.clone())
}

fn deleted_by_column(model: &Model, table: &QualifiedName) -> Option<String> {
    let columns = &model.tables.get(table)?.columns;
    DELETED_BY_COLUMNS
        .iter()
        .find_map(|name| columns.iter().find(|c| c.name == *name))
        .map(|c| c.name.clone())
}

/// Plans marking (or, with `undelete`, unmarking) `row` (`TABLE:KEY`) and the rows that
/// belong to it. `by`, for a soft-delete, goes into `deleted_by`/`deletedBy` where a table
/// has one.
pub async fn plan(
    client: &tokio_postgres::Client,
    row: &str,
    undelete: bool,
    by: Option<&str>,
) -> Result<MarkPlan, SoftDeleteError> {
    let (table_text, key) = row
        .split_once(':')
        .filter(|(t, k)| !t.trim().is_empty() && !k.trim().is_empty())
        .ok_or_else(|| SoftDeleteError::BadRow(row.to_string()))?;
    let model = tend_schema::introspect(client).await?;
    let table = find_table(&model, table_text.trim())
        .ok_or_else(|| SoftDeleteError::UnknownTable(table_text.trim().to_string()))?;
    let key_column =
        crate::gdpr::single_key(&model, &table).ok_or_else(|| SoftDeleteError::NoKey {
            table: table.to_string(),
        })?;
    let column = soft_delete_column(&model, &table).ok_or_else(|| SoftDeleteError::NoColumn {
        table: table.to_string(),
    })?;
    let key_type = model.tables[&table]
        .columns
        .iter()
        .find(|c| c.name == key_column)
        .map(|c| c.data_type.clone())
        .unwrap_or_else(|| "text".to_string());
    let key = key.trim().to_string();
    let literal = format!("CAST({} AS {key_type})", tend_pg::quote_literal(&key));
    // The row itself, and its mark.
    let found = client
        .query(
            &format!(
                "SELECT ({col})::text, ({col}) IS NULL FROM {} WHERE {} = {literal}",
                table.sql(),
                ident(&key_column),
                col = ident(&column)
            ),
            &[],
        )
        .await
        .map_err(|e| match e.code() {
            Some(code) if code.code().starts_with("22") => SoftDeleteError::BadKey {
                table: table.to_string(),
                column: key_column.clone(),
                key: key.clone(),
                data_type: key_type.clone(),
            },
            _ => SoftDeleteError::Database(e),
        })?;
    let Some(found) = found.first() else {
        return Err(SoftDeleteError::NotFound {
            table: table.to_string(),
            column: key_column,
            key,
        });
    };
    let marked_at: Option<String> = found.get(0);
    match (undelete, &marked_at) {
        (false, Some(at)) => {
            return Err(SoftDeleteError::AlreadyDeleted {
                table: table.to_string(),
                key,
                at: at.clone(),
            });
        }
        (true, None) => {
            return Err(SoftDeleteError::NotDeleted {
                table: table.to_string(),
                key,
            });
        }
        _ => {}
    }
    // The rows that belong to it: a hard delete's cascades.
    let graph = SubjectGraph::new(
        &ReferenceGraph::of(&model),
        Vec::new(),
        table.clone(),
        key_column.clone(),
    );
    let mut steps = Vec::new();
    let mut unmarked_tables = Vec::new();
    for reach in graph.reach().into_iter().filter(|r| r.owned) {
        let Some(mark) = soft_delete_column(&model, &reach.table) else {
            unmarked_tables.push(reach.table.to_string());
            continue;
        };
        let owned = graph
            .owned_sql(&reach.table, "t", &literal)
            .expect("a reached owned table has owned rows");
        let mark_sql = ident(&mark);
        let mark_type = model.tables[&reach.table]
            .columns
            .iter()
            .find(|c| c.name == mark)
            .map(|c| c.data_type.clone())
            .unwrap_or_else(|| "timestamptz".to_string());
        let (set, which) = if undelete {
            let at = marked_at.as_deref().unwrap_or_default();
            let by = deleted_by_column(&model, &reach.table)
                .map(|c| format!(", {} = NULL", ident(&c)))
                .unwrap_or_default();
            (
                format!("{mark_sql} = NULL{by}"),
                format!(
                    "t.{mark_sql} = CAST({} AS {mark_type})",
                    tend_pg::quote_literal(at)
                ),
            )
        } else {
            let by = match (by, deleted_by_column(&model, &reach.table)) {
                (Some(by), Some(c)) => {
                    let data_type = model.tables[&reach.table]
                        .columns
                        .iter()
                        .find(|x| x.name == c)
                        .map(|x| x.data_type.clone())
                        .unwrap_or_else(|| "text".to_string());
                    format!(
                        ", {} = CAST({} AS {data_type})",
                        ident(&c),
                        tend_pg::quote_literal(by)
                    )
                }
                _ => String::new(),
            };
            // To the millisecond: a `timestamp(3)` (Prisma's) and a `timestamptz` column
            // then hold the same instant, which undelete matches on.
            (
                format!("{mark_sql} = date_trunc('milliseconds', now()){by}"),
                format!("t.{mark_sql} IS NULL"),
            )
        };
        let condition = format!("({owned}) AND {which}");
        let rows: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} t WHERE {condition}",
                    reach.table.sql()
                ),
                &[],
            )
            .await?
            .get(0);
        if rows > 0 {
            steps.push(MarkStep {
                table: reach.table.to_string(),
                column: mark,
                rows: rows as u64,
                sql: format!("UPDATE {} t SET {set} WHERE {condition}", reach.table.sql()),
            });
        }
    }
    Ok(MarkPlan {
        table: table.to_string(),
        key,
        undelete,
        marked_at: if undelete { marked_at } else { None },
        steps,
        unmarked_tables,
    })
}

/// Marks (or unmarks) what `plan` counted, in one transaction: every row of a soft-delete
/// gets the same `now()`, the transaction's.
pub async fn run(
    client: &mut tokio_postgres::Client,
    plan: &MarkPlan,
) -> Result<MarkReport, SoftDeleteError> {
    let transaction = client.transaction().await?;
    let mut steps = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let mut done = step.clone();
        done.rows = transaction.execute(step.sql.as_str(), &[]).await?;
        steps.push(done);
    }
    transaction.commit().await?;
    Ok(MarkReport {
        table: plan.table.clone(),
        key: plan.key.clone(),
        undelete: plan.undelete,
        rows: steps.iter().map(|s| s.rows).sum(),
        steps,
    })
}
