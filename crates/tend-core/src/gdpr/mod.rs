//! The GDPR services: `check` (every table the subject graph reaches has a policy that
//! can be carried out), `export` (everything of one subject, a JSON file per table and a
//! manifest) and `plan_erase` then `erase` (the policies applied in one transaction, and
//! audited without personal data in the `tend` schema).
//!
//! What belongs to a subject is [`tend_lifecycle::subject`]'s: rows owned through
//! `ON DELETE CASCADE` (or declared owning links), and rows that only mention an owned row
//! through any other link, which an erasure unlinks rather than takes whole.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tend_lifecycle::ReferenceGraph;
use tend_lifecycle::rules::find_table;
use tend_lifecycle::subject::{Edge, Holder, Reach, SubjectGraph};
use tend_schema::Model;
use tend_schema::model::{ConstraintKind, QualifiedName, ident};

pub use config::{GdprConfig, PolicyAction, Strategy};

use crate::settings::GdprSettings;

/// Why a GDPR command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum GdprError {
    #[error(
        "there is no [gdpr] section in tend.toml: name the subject table ([gdpr] subject = \"users\") and give each table a policy; `tend gdpr check` lists what needs one"
    )]
    NotConfigured,
    #[error(
        "[gdpr] names no subject table: set [gdpr] subject = \"<table>\", or give --subject TABLE:KEY"
    )]
    NoSubjectTable,
    #[error("{what} names the table `{table}`, which the database does not have")]
    UnknownTable { what: String, table: String },
    #[error("{what}: {table} has no column `{column}`")]
    UnknownColumn {
        what: String,
        table: String,
        column: String,
    },
    #[error(
        "{table} has no primary key of one column to find a subject by: set [gdpr] key = \"<column>\" (or, for a link, reference a table that has one)"
    )]
    NoKey { table: String },
    #[error("{0}")]
    BadSubject(String),
    #[error("no row of {table} has that {column}")]
    EmailNotFound { table: String, column: String },
    #[error("{count} rows of {table} have that {column}: give the subject by its key (--subject)")]
    EmailAmbiguous {
        table: String,
        column: String,
        count: i64,
    },
    #[error(
        "{table} has no `email` column: set [gdpr] email_column, or give the subject by its key (--subject)"
    )]
    NoEmailColumn { table: String },
    #[error(
        "the GDPR policy does not cover the schema ({} problems, the first: {}): nothing was erased; `tend gdpr check` lists them", .0.len(), .0.first().map(|p| format!("{}: {}", p.table, p.message)).unwrap_or_default()
    )]
    Coverage(Vec<Problem>),
    #[error("the erasure could not be audited, so nothing was erased: {0}")]
    Audit(String),
    #[error("{} already exists: name a new directory for the export", .0.display())]
    Exists(PathBuf),
    #[error("writing the export to {} failed: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the schema failed: {0}")]
    Schema(#[from] tend_schema::SchemaError),
    #[error("{}", tend_pg::error_text(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Connect(#[from] tend_pg::PoolError),
    #[error(transparent)]
    Session(#[from] tend_pg::ConnectError),
}

/// A table's policy, resolved.
#[derive(Debug, Clone)]
pub struct Policy {
    pub action: PolicyAction,
    pub columns: Vec<(String, Strategy)>,
    pub reason: Option<String>,
}

/// Something `tend gdpr check` fails on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub table: String,
    pub message: String,
}

/// The configuration read against the schema.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub graph: SubjectGraph,
    pub reach: Vec<Reach>,
    pub policies: BTreeMap<QualifiedName, Policy>,
    pub model: Model,
    pub key_type: String,
    pub email_column: Option<String>,
    pub problems: Vec<Problem>,
    /// Policies for tables the subject does not reach (the schema moved on).
    pub stale: Vec<String>,
}

impl Resolved {
    fn column_type(
        &self,
        table: &QualifiedName,
        column: &str,
    ) -> Option<&tend_schema::model::Column> {
        self.model
            .tables
            .get(table)
            .and_then(|t| t.columns.iter().find(|c| c.name == column))
    }
}

/// The primary key column of `table`, when it has one of one column.
pub(crate) fn single_key(model: &Model, table: &QualifiedName) -> Option<String> {
    let table = model.tables.get(table)?;
    let key = table
        .constraints
        .values()
        .find(|c| c.kind == ConstraintKind::PrimaryKey)?;
    match key.columns.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Reads `settings` against `model`: the subject graph, each table's policy, and every
/// problem `tend gdpr check` reports. Fails only on what leaves no graph to speak of.
pub fn resolve(
    model: Model,
    settings: &GdprSettings,
    subject_table: Option<&str>,
) -> Result<Resolved, GdprError> {
    let config = settings.config.clone().unwrap_or_default();
    if settings.config.is_none() && subject_table.is_none() {
        return Err(GdprError::NotConfigured);
    }
    let subject_text = subject_table
        .map(str::to_string)
        .or(config.subject.clone())
        .ok_or(GdprError::NoSubjectTable)?;
    let subject = find_table(&model, &subject_text).ok_or_else(|| GdprError::UnknownTable {
        what: "the subject".to_string(),
        table: subject_text.clone(),
    })?;
    let key_column = match &config.key {
        Some(key) => key.clone(),
        None => single_key(&model, &subject).ok_or_else(|| GdprError::NoKey {
            table: subject.to_string(),
        })?,
    };
    let key_type = model.tables[&subject]
        .columns
        .iter()
        .find(|c| c.name == key_column)
        .map(|c| c.data_type.clone())
        .ok_or_else(|| GdprError::UnknownColumn {
            what: "[gdpr] key".to_string(),
            table: subject.to_string(),
            column: key_column.clone(),
        })?;
    let mut problems = Vec::new();
    let mut declared = Vec::new();
    for link in &config.links {
        let what = format!("[[gdpr.link]] {}.{}", link.table, link.column);
        let Some(child) = find_table(&model, &link.table) else {
            problems.push(Problem {
                table: link.table.clone(),
                message: format!("{what} names a table the database does not have"),
            });
            continue;
        };
        let Some(parent) = find_table(&model, &link.references) else {
            problems.push(Problem {
                table: link.table.clone(),
                message: format!(
                    "{what} references `{}`, which the database does not have",
                    link.references
                ),
            });
            continue;
        };
        let Some(column) = model.tables[&child]
            .columns
            .iter()
            .find(|c| c.name == link.column)
        else {
            problems.push(Problem {
                table: child.to_string(),
                message: format!("{what}: the table has no column `{}`", link.column),
            });
            continue;
        };
        if !link.path.is_empty() && !column.data_type.starts_with("json") {
            problems.push(Problem {
                table: child.to_string(),
                message: format!(
                    "{what} has a `path`, but {} is {}, not json or jsonb",
                    link.column, column.data_type
                ),
            });
            continue;
        }
        let parent_key = if parent == subject {
            Some(key_column.clone())
        } else {
            single_key(&model, &parent)
        };
        let Some(parent_key) = parent_key else {
            problems.push(Problem {
                table: child.to_string(),
                message: format!(
                    "{what} references {parent}, which has no primary key of one column"
                ),
            });
            continue;
        };
        declared.push(Edge {
            child,
            holders: vec![if link.path.is_empty() {
                Holder::Column(link.column.clone())
            } else {
                Holder::JsonPath {
                    column: link.column.clone(),
                    path: link.path.clone(),
                }
            }],
            parent,
            parent_columns: vec![parent_key],
            owns: link.owns,
            name: tend_lifecycle::subject::DECLARED.to_string(),
        });
    }
    let graph = SubjectGraph::new(&ReferenceGraph::of(&model), declared, subject, key_column);
    let reach = graph.reach();
    let mut policies = BTreeMap::new();
    for policy in &config.tables {
        match find_table(&model, &policy.table) {
            Some(table) => {
                policies.insert(
                    table,
                    Policy {
                        action: policy.action,
                        columns: policy.columns.clone(),
                        reason: policy.reason.clone(),
                    },
                );
            }
            None => problems.push(Problem {
                table: policy.table.clone(),
                message: format!(
                    "[gdpr.tables.{}] names a table the database does not have",
                    policy.table
                ),
            }),
        }
    }
    let reached: BTreeSet<&QualifiedName> = reach.iter().map(|r| &r.table).collect();
    let stale = policies
        .keys()
        .filter(|t| !reached.contains(t))
        .map(|t| t.to_string())
        .collect();
    let email_column = config.email_column.clone().or_else(|| {
        model.tables[&graph.subject]
            .columns
            .iter()
            .any(|c| c.name == "email")
            .then(|| "email".to_string())
    });
    let mut resolved = Resolved {
        graph,
        reach,
        policies,
        model,
        key_type,
        email_column,
        problems,
        stale,
    };
    resolved
        .problems
        .extend(coverage(&resolved, settings.salt.is_some()));
    Ok(resolved)
}

/// Whether each reached table has a policy an erasure can carry out.
fn coverage(resolved: &Resolved, salted: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |table: &QualifiedName, message: String| {
        problems.push(Problem {
            table: table.to_string(),
            message,
        })
    };
    let owners_of = |table: &QualifiedName| -> Vec<&Edge> {
        resolved
            .graph
            .edges
            .iter()
            .filter(|e| e.owns && &e.child == table)
            .collect()
    };
    for reach in &resolved.reach {
        let table = &reach.table;
        let how = if reach.owned {
            "the subject owns rows of it".to_string()
        } else {
            format!(
                "it mentions the subject through {}",
                reach
                    .references
                    .iter()
                    .map(Edge::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let Some(policy) = resolved.policies.get(table) else {
            problem(
                table,
                format!(
                    "has no policy, and {how}: add [gdpr.tables.\"{table}\"] with action = {}",
                    if reach.owned {
                        "\"delete\", \"anonymize\" or \"retain\""
                    } else {
                        "\"unlink\", \"delete\" or \"retain\""
                    }
                ),
            );
            continue;
        };
        if policy.action == PolicyAction::Unlink && reach.owned {
            problem(
                table,
                "is unlinked, but the subject owns rows of it (unlink is for rows that only mention the subject): choose delete, anonymize or retain".to_string(),
            );
        }
        // Rows that only mention the subject lose the mention: the column must take NULL.
        if matches!(
            policy.action,
            PolicyAction::Unlink | PolicyAction::Anonymize
        ) {
            for edge in &reach.references {
                for holder in &edge.holders {
                    if let Holder::Column(column) = holder
                        && resolved
                            .column_type(table, column)
                            .is_some_and(|c| c.not_null)
                    {
                        problem(
                            table,
                            format!(
                                "{column} mentions the subject ({}) and is NOT NULL, so it cannot be unlinked: choose delete or retain, or declare the link owning",
                                edge.describe()
                            ),
                        );
                    }
                }
            }
        }
        if policy.action == PolicyAction::Anonymize {
            let owners = owners_of(table);
            // Rows of other tables found through this one's: its ties must stay until the
            // end, so they may not be anonymized.
            let owns_others = resolved
                .graph
                .edges
                .iter()
                .any(|e| e.owns && &e.parent == table && &e.child != table);
            for (column, strategy) in &policy.columns {
                let Some(found) = resolved.column_type(table, column) else {
                    problem(
                        table,
                        format!("anonymizes `{column}`, which it does not have"),
                    );
                    continue;
                };
                let foreign_key = owners.iter().find(|e| {
                    e.name != tend_lifecycle::subject::DECLARED
                        && e.holders.iter().any(|h| h.column() == column)
                });
                let declared_tie = owners.iter().any(|e| {
                    e.name == tend_lifecycle::subject::DECLARED
                        && e.holders.iter().any(|h| h.column() == column)
                });
                if *table == resolved.graph.subject && *column == resolved.graph.key_column {
                    problem(
                        table,
                        format!(
                            "anonymizes `{column}`, the subject's key: delete the subject's row instead, or leave it out"
                        ),
                    );
                } else if let Some(edge) = foreign_key {
                    problem(
                        table,
                        format!(
                            "anonymizes `{column}`, which the foreign key {} needs to tie its rows to their owner: leave it out (delete the rows instead)",
                            edge.name
                        ),
                    );
                } else if declared_tie && owns_others {
                    problem(
                        table,
                        format!(
                            "anonymizes `{column}`, which ties its rows to the subject, and other tables' rows are found through them: leave it out"
                        ),
                    );
                }
                if let Some(reason) = unfit(strategy, &found.data_type, found.not_null) {
                    problem(table, format!("`{column}` ({}): {reason}", found.data_type));
                }
                if strategy.salted() && !salted {
                    problem(
                        table,
                        format!(
                            "`{column}` is hashed, and no salt is set: set TEND_GDPR_SALT (a long random secret, kept unchanged)"
                        ),
                    );
                }
            }
        }
        if policy.action == PolicyAction::Retain {
            // A table retained must not lose its rows to a cascade from a deleted one,
            // nor its mention to ON DELETE SET NULL.
            for edge in owners_of(table) {
                let parent_action = resolved.policies.get(&edge.parent).map(|p| p.action);
                if edge.name != tend_lifecycle::subject::DECLARED
                    && parent_action == Some(PolicyAction::Delete)
                {
                    problem(
                        table,
                        format!(
                            "is retained, but deleting {}'s rows deletes its rows too (ON DELETE CASCADE, {}): anonymize {} instead, or do not retain",
                            edge.parent, edge.name, edge.parent
                        ),
                    );
                }
            }
            for edge in &reach.references {
                let parent_action = resolved.policies.get(&edge.parent).map(|p| p.action);
                if edge.name != tend_lifecycle::subject::DECLARED
                    && parent_action == Some(PolicyAction::Delete)
                {
                    problem(
                        table,
                        format!(
                            "is retained, but deleting {}'s rows clears its mention ({}, ON DELETE SET NULL or SET DEFAULT), so it would be kept without its subject: anonymize {} instead, or unlink",
                            edge.parent,
                            edge.describe(),
                            edge.parent
                        ),
                    );
                }
            }
        }
    }
    problems
}

/// Why `strategy` cannot replace a value of `data_type`, if it cannot.
fn unfit(strategy: &Strategy, data_type: &str, not_null: bool) -> Option<String> {
    let text = is_text(data_type);
    match strategy {
        Strategy::Null if not_null => Some("is NOT NULL, so null cannot anonymize it".to_string()),
        Strategy::Hash if !text && data_type != "uuid" => {
            Some("hash works on text and uuid columns".to_string())
        }
        Strategy::FakeEmail | Strategy::FakeName if !text => {
            Some("fake values are text: use null, constant:VALUE or hash".to_string())
        }
        Strategy::FakeEmail if text_length(data_type).is_some_and(|n| n < 40) => {
            Some("is too short for a fake address (40 characters)".to_string())
        }
        Strategy::Redact if !text && !data_type.starts_with("json") => {
            Some("redact works on text and JSON columns".to_string())
        }
        _ => None,
    }
}

fn is_text(data_type: &str) -> bool {
    data_type == "text"
        || data_type == "citext"
        || data_type.starts_with("character varying")
        || data_type.starts_with("character(")
}

/// `n` of `character varying(n)`.
fn text_length(data_type: &str) -> Option<usize> {
    data_type
        .strip_prefix("character varying(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
}

/// One table of `tend gdpr check`'s report.
#[derive(Debug, Clone, Serialize)]
pub struct TableCoverage {
    pub table: String,
    pub owned: bool,
    /// The links through which it mentions the subject.
    pub mentions: Vec<String>,
    pub action: Option<PolicyAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a table without a policy, a start: delete what the subject owns, unlink
    /// mentions that can be cleared, delete rows whose mention cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested: Option<PolicyAction>,
}

/// What `tend gdpr check` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub subject: String,
    pub key: String,
    pub tables: Vec<TableCoverage>,
    pub problems: Vec<Problem>,
    /// Policies of tables the subject no longer reaches.
    pub stale: Vec<String>,
}

/// Reads the schema and checks the policy covers it.
pub async fn check(
    client: &tokio_postgres::Client,
    settings: &GdprSettings,
) -> Result<CheckReport, GdprError> {
    let model = tend_schema::introspect(client).await?;
    let resolved = resolve(model, settings, None)?;
    Ok(CheckReport {
        subject: resolved.graph.subject.to_string(),
        key: resolved.graph.key_column.clone(),
        tables: resolved
            .reach
            .iter()
            .map(|r| {
                let policy = resolved.policies.get(&r.table);
                let clearable = r.references.iter().all(|edge| {
                    edge.holders.iter().all(|h| match h {
                        Holder::Column(c) => resolved
                            .column_type(&r.table, c)
                            .is_some_and(|c| !c.not_null),
                        Holder::JsonPath { .. } => true,
                    })
                });
                TableCoverage {
                    table: r.table.to_string(),
                    owned: r.owned,
                    mentions: r.references.iter().map(Edge::describe).collect(),
                    action: policy.map(|p| p.action),
                    reason: policy.and_then(|p| p.reason.clone()),
                    suggested: policy.is_none().then_some(if r.owned || !clearable {
                        PolicyAction::Delete
                    } else {
                        PolicyAction::Unlink
                    }),
                }
            })
            .collect(),
        problems: resolved.problems.clone(),
        stale: resolved.stale.clone(),
    })
}

/// Whose data: a key (`users:42`, or `42` in the configured subject table) or an email.
#[derive(Debug, Clone)]
pub enum SubjectRef {
    Key { table: Option<String>, key: String },
    Email(String),
}

impl SubjectRef {
    /// `TABLE:KEY` or `KEY`.
    pub fn parse_key(text: &str) -> Result<SubjectRef, GdprError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(GdprError::BadSubject(
                "the subject is empty: give TABLE:KEY (users:42) or a key".to_string(),
            ));
        }
        Ok(match text.split_once(':') {
            Some((table, key)) if !table.is_empty() && !key.is_empty() => SubjectRef::Key {
                table: Some(table.to_string()),
                key: key.to_string(),
            },
            Some(_) => {
                return Err(GdprError::BadSubject(
                    "the subject must be TABLE:KEY, both parts given (users:42)".to_string(),
                ));
            }
            None => SubjectRef::Key {
                table: None,
                key: text.to_string(),
            },
        })
    }

    fn table(&self) -> Option<&str> {
        match self {
            SubjectRef::Key { table, .. } => table.as_deref(),
            SubjectRef::Email(_) => None,
        }
    }
}

/// One subject, found: its key as text, and as SQL of the key column's type.
#[derive(Debug, Clone)]
struct Found {
    key: String,
    literal: String,
    /// The subject's row exists (after an erasure it may not, while retained rows that
    /// hold its key still do).
    exists: bool,
}

async fn find_subject(
    client: &tokio_postgres::Client,
    resolved: &Resolved,
    subject: &SubjectRef,
) -> Result<Found, GdprError> {
    let table = &resolved.graph.subject;
    let key_column = ident(&resolved.graph.key_column);
    match subject {
        SubjectRef::Key { key, .. } => {
            let literal = format!(
                "CAST({} AS {})",
                tend_pg::quote_literal(key),
                resolved.key_type
            );
            let sql = format!(
                "SELECT {key_column}::text FROM {} WHERE {key_column} = {literal}",
                table.sql()
            );
            let rows = client.query(&sql, &[]).await.map_err(|e| {
                // A key that is not of the column's type is the user's mistake.
                match e.code() {
                    Some(code) if code.code().starts_with("22") => GdprError::BadSubject(format!(
                        "`{key}` is not a value of {}.{} ({})",
                        table, resolved.graph.key_column, resolved.key_type
                    )),
                    _ => GdprError::Database(e),
                }
            })?;
            Ok(match rows.first() {
                Some(row) => Found {
                    key: row.get(0),
                    literal,
                    exists: true,
                },
                None => Found {
                    key: key.clone(),
                    literal,
                    exists: false,
                },
            })
        }
        SubjectRef::Email(email) => {
            let column = resolved
                .email_column
                .clone()
                .ok_or_else(|| GdprError::NoEmailColumn {
                    table: table.to_string(),
                })?;
            if resolved.column_type(table, &column).is_none() {
                return Err(GdprError::UnknownColumn {
                    what: "[gdpr] email_column".to_string(),
                    table: table.to_string(),
                    column,
                });
            }
            let sql = format!(
                "SELECT {key_column}::text FROM {} WHERE lower({}::text) = lower($1)",
                table.sql(),
                ident(&column)
            );
            let rows = client.query(&sql, &[email]).await?;
            match rows.as_slice() {
                [row] => {
                    let key: String = row.get(0);
                    Ok(Found {
                        literal: format!(
                            "CAST({} AS {})",
                            tend_pg::quote_literal(&key),
                            resolved.key_type
                        ),
                        key,
                        exists: true,
                    })
                }
                [] => Err(GdprError::EmailNotFound {
                    table: table.to_string(),
                    column,
                }),
                many => Err(GdprError::EmailAmbiguous {
                    table: table.to_string(),
                    column,
                    count: many.len() as i64,
                }),
            }
        }
    }
}

/// The rows of one table that are the subject's: owned, or mentioning through an edge.
struct Selection {
    table: QualifiedName,
    owned: Option<String>,
    mentions: Vec<(Edge, String)>,
}

fn selections(resolved: &Resolved, key: &str) -> Vec<Selection> {
    resolved
        .reach
        .iter()
        .map(|reach| Selection {
            table: reach.table.clone(),
            owned: resolved.graph.owned_sql(&reach.table, "t", key),
            mentions: reach
                .references
                .iter()
                .filter_map(|edge| {
                    resolved
                        .graph
                        .referencing_sql(edge, "t", key)
                        .map(|sql| (edge.clone(), sql))
                })
                .collect(),
        })
        .collect()
}

/// One table in an export's manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedTable {
    pub table: String,
    /// The file under the export's directory, when the table has rows of the subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub owned_rows: u64,
    pub mentioning_rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<PolicyAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An export: the manifest (`manifest.json` in the directory, and what `--json` prints).
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub subject_table: String,
    pub key_column: String,
    pub key: String,
    /// Whether the subject's row exists: after an erasure only retained rows remain.
    pub subject_found: bool,
    pub exported_at: String,
    pub tend_version: &'static str,
    pub directory: PathBuf,
    /// Tables with rows of the subject, then none.
    pub tables: Vec<ExportedTable>,
    pub rows: u64,
}

/// Writes everything of `subject` under `out` (a new directory): `manifest.json` and one
/// JSON file per table with rows, `{"owned": [rows], "mentions": [{"through", "rows"}]}`,
/// read in one snapshot.
pub async fn export(
    client: &tokio_postgres::Client,
    settings: &GdprSettings,
    subject: &SubjectRef,
    out: &Path,
    encryption: Option<&tend_backup::Encryption>,
) -> Result<ExportReport, GdprError> {
    if !crate::state::is_new_directory(out) {
        return Err(GdprError::Exists(out.to_path_buf()));
    }
    // The schema is read in a snapshot of its own; the rows in one snapshot together.
    let model = tend_schema::introspect(client).await?;
    let resolved = resolve(model, settings, subject.table())?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let result = export_in_snapshot(client, &resolved, subject, out, encryption).await;
    let _ = client.batch_execute("ROLLBACK").await;
    result
}

async fn export_in_snapshot(
    client: &tokio_postgres::Client,
    resolved: &Resolved,
    subject: &SubjectRef,
    out: &Path,
    encryption: Option<&tend_backup::Encryption>,
) -> Result<ExportReport, GdprError> {
    let found = find_subject(client, resolved, subject).await?;
    let suffix = if encryption.is_some() { ".age" } else { "" };
    // Each file on its own; encrypted with the backup keys when asked (age files the
    // stock age CLI opens).
    let write = |path: &Path, bytes: &[u8]| -> Result<(), GdprError> {
        let failed = |source: std::io::Error| GdprError::Write {
            path: path.to_path_buf(),
            source,
        };
        match encryption {
            None => std::fs::write(path, bytes).map_err(failed),
            Some(encryption) => {
                use std::io::Write;
                let file = std::fs::File::create(path).map_err(failed)?;
                let mut writer = encryption
                    .wrap(file)
                    .map_err(|e| failed(std::io::Error::other(e.to_string())))?;
                writer.write_all(bytes).map_err(failed)?;
                writer.finish().map_err(failed)?.sync_all().map_err(failed)
            }
        }
    };
    std::fs::create_dir_all(out).map_err(|source| GdprError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let mut tables = Vec::new();
    let rows_of = |table: &QualifiedName, condition: &str| {
        format!(
            "SELECT coalesce(json_agg(to_jsonb(t) ORDER BY t::text), '[]')::text, count(*) FROM {} t WHERE {condition}",
            table.sql()
        )
    };
    for selection in selections(resolved, &found.literal) {
        let mut owned_rows = 0u64;
        let mut document = serde_json::Map::new();
        if let Some(owned) = &selection.owned {
            let row = client
                .query_one(&rows_of(&selection.table, owned), &[])
                .await?;
            owned_rows = row.get::<_, i64>(1) as u64;
            let rows: serde_json::Value =
                serde_json::from_str(row.get(0)).unwrap_or(serde_json::Value::Null);
            document.insert("owned".into(), rows);
        }
        let mut mentioning_rows = 0u64;
        let mut mentions = Vec::new();
        for (edge, condition) in &selection.mentions {
            let row = client
                .query_one(&rows_of(&selection.table, condition), &[])
                .await?;
            let count = row.get::<_, i64>(1) as u64;
            if count == 0 {
                continue;
            }
            mentioning_rows += count;
            let rows: serde_json::Value =
                serde_json::from_str(row.get(0)).unwrap_or(serde_json::Value::Null);
            mentions.push(serde_json::json!({ "through": edge.describe(), "rows": rows }));
        }
        document.insert("mentions".into(), serde_json::Value::Array(mentions));
        let policy = resolved.policies.get(&selection.table);
        let file = if owned_rows + mentioning_rows > 0 {
            let name = format!(
                "{}.{}.json{suffix}",
                selection.table.schema, selection.table.name
            );
            let text = serde_json::to_vec_pretty(&document).expect("JSON values serialize");
            write(&out.join(safe_file_name(&name)), &text)?;
            Some(safe_file_name(&name))
        } else {
            None
        };
        tables.push(ExportedTable {
            table: selection.table.to_string(),
            file,
            owned_rows,
            mentioning_rows,
            action: policy.map(|p| p.action),
            reason: policy.and_then(|p| p.reason.clone()),
        });
    }
    tables.sort_by_key(|t| t.file.is_none());
    let exported_at: String = client
        .query_one(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[],
        )
        .await?
        .get(0);
    let report = ExportReport {
        subject_table: resolved.graph.subject.to_string(),
        key_column: resolved.graph.key_column.clone(),
        key: found.key,
        subject_found: found.exists,
        exported_at,
        tend_version: env!("CARGO_PKG_VERSION"),
        directory: out.to_path_buf(),
        rows: tables
            .iter()
            .map(|t| t.owned_rows + t.mentioning_rows)
            .sum(),
        tables,
    };
    write(
        &out.join(format!("manifest.json{suffix}")),
        &serde_json::to_vec_pretty(&report).expect("the manifest serializes"),
    )?;
    Ok(report)
}

/// A table's name as a file name: path separators and control characters replaced.
fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// One statement of an erasure, counted.
#[derive(Debug, Clone, Serialize)]
pub struct EraseStep {
    pub table: String,
    /// `delete`, `anonymize`, `unlink` or `retain`.
    pub action: PolicyAction,
    /// For mentions: the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub through: Option<String>,
    /// Rows of the subject's the step is for, counted by the plan: its statement changes
    /// them, or a foreign key's cascade from an earlier step already did.
    pub rows: u64,
    /// After an erasure: the rows the step's own statement changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip)]
    sql: Option<String>,
    #[serde(skip)]
    salted: bool,
}

/// What an erasure will do: `--dry-run` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ErasePlan {
    pub subject_table: String,
    pub key: String,
    pub subject_found: bool,
    pub steps: Vec<EraseStep>,
    #[serde(skip)]
    subject_hash_input: String,
}

impl ErasePlan {
    /// Rows the erasure changes (retained ones not counted).
    pub fn rows(&self) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.action != PolicyAction::Retain)
            .map(|s| s.rows)
            .sum()
    }
}

/// Counts what erasing `subject` does, in the order it will run: mentions unlinked first,
/// then owned rows anonymized, then rows deleted children before parents. Refuses while
/// `tend gdpr check` has problems.
pub async fn plan_erase(
    client: &tokio_postgres::Client,
    settings: &GdprSettings,
    subject: &SubjectRef,
) -> Result<ErasePlan, GdprError> {
    let model = tend_schema::introspect(client).await?;
    let resolved = resolve(model, settings, subject.table())?;
    if !resolved.problems.is_empty() {
        return Err(GdprError::Coverage(resolved.problems));
    }
    let found = find_subject(client, &resolved, subject).await?;
    let salt_used = |columns: &[(String, Strategy)]| columns.iter().any(|(_, s)| s.salted());
    let mut unlinks = Vec::new();
    let mut anonymizes = Vec::new();
    let mut last = Vec::new();
    let mut deletes: BTreeMap<QualifiedName, EraseStep> = BTreeMap::new();
    let mut retains = Vec::new();
    for selection in selections(&resolved, &found.literal) {
        let policy = &resolved.policies[&selection.table];
        let table = selection.table.sql();
        let count = |condition: &str| format!("SELECT count(*) FROM {table} t WHERE {condition}");
        match policy.action {
            PolicyAction::Retain => {
                let mut all: Vec<String> = selection.owned.iter().cloned().collect();
                all.extend(selection.mentions.iter().map(|(_, c)| c.clone()));
                if all.is_empty() {
                    continue;
                }
                let rows: i64 = client
                    .query_one(&count(&format!("({})", all.join(") OR ("))), &[])
                    .await?
                    .get(0);
                retains.push(EraseStep {
                    table: selection.table.to_string(),
                    action: PolicyAction::Retain,
                    through: None,
                    rows: rows as u64,
                    changed: None,
                    reason: policy.reason.clone(),
                    sql: None,
                    salted: false,
                });
            }
            PolicyAction::Delete => {
                let mut all: Vec<String> = selection.owned.iter().cloned().collect();
                all.extend(selection.mentions.iter().map(|(_, c)| c.clone()));
                if all.is_empty() {
                    continue;
                }
                let condition = format!("({})", all.join(") OR ("));
                let rows: i64 = client.query_one(&count(&condition), &[]).await?.get(0);
                deletes.insert(
                    selection.table.clone(),
                    EraseStep {
                        table: selection.table.to_string(),
                        action: PolicyAction::Delete,
                        through: None,
                        rows: rows as u64,
                        changed: None,
                        reason: None,
                        sql: Some(format!("DELETE FROM {table} t WHERE {condition}")),
                        salted: false,
                    },
                );
            }
            PolicyAction::Anonymize | PolicyAction::Unlink => {
                for (edge, condition) in &selection.mentions {
                    let rows: i64 = client.query_one(&count(condition), &[]).await?.get(0);
                    let sets: Vec<String> = unlink_sets(edge, |column| {
                        resolved
                            .column_type(&selection.table, column)
                            .map(|c| c.data_type.clone())
                            .unwrap_or_else(|| "jsonb".to_string())
                    });
                    unlinks.push(EraseStep {
                        table: selection.table.to_string(),
                        action: PolicyAction::Unlink,
                        through: Some(edge.describe()),
                        rows: rows as u64,
                        changed: None,
                        reason: None,
                        sql: Some(format!(
                            "UPDATE {table} t SET {} WHERE {condition}",
                            sets.join(", ")
                        )),
                        salted: false,
                    });
                }
                if policy.action == PolicyAction::Anonymize
                    && let Some(owned) = &selection.owned
                {
                    let rows: i64 = client.query_one(&count(owned), &[]).await?.get(0);
                    let sets: Vec<String> = policy
                        .columns
                        .iter()
                        .map(|(column, strategy)| {
                            let data_type = resolved
                                .column_type(&selection.table, column)
                                .map(|c| c.data_type.as_str())
                                .unwrap_or("text");
                            format!(
                                "{} = {}",
                                ident(column),
                                replacement(strategy, &format!("t.{}", ident(column)), data_type)
                            )
                        })
                        .collect();
                    // Anonymizing a declared tie ends the rows' tie to the subject:
                    // after every other step, which may still need to find them.
                    let ties: BTreeSet<&str> = resolved
                        .graph
                        .edges
                        .iter()
                        .filter(|e| e.owns && e.child == selection.table)
                        .flat_map(|e| e.holders.iter().map(Holder::column))
                        .collect();
                    let late = policy
                        .columns
                        .iter()
                        .any(|(c, _)| ties.contains(c.as_str()));
                    let list = if late { &mut last } else { &mut anonymizes };
                    list.push(EraseStep {
                        table: selection.table.to_string(),
                        action: PolicyAction::Anonymize,
                        through: None,
                        rows: rows as u64,
                        changed: None,
                        reason: None,
                        sql: Some(format!(
                            "UPDATE {table} t SET {} WHERE {owned}",
                            sets.join(", ")
                        )),
                        salted: salt_used(&policy.columns),
                    });
                }
            }
        }
    }
    // Deletes children before parents: a parent's rows are how a child's are found.
    let graph = ReferenceGraph::of(&resolved.model);
    let order = graph.delete_order(&deletes.keys().cloned().collect());
    let mut steps = unlinks;
    steps.extend(anonymizes);
    for group in order {
        for table in group {
            if let Some(step) = deletes.remove(&table) {
                steps.push(step);
            }
        }
    }
    steps.extend(last);
    steps.extend(retains);
    steps.retain(|s| s.rows > 0 || s.action == PolicyAction::Retain);
    Ok(ErasePlan {
        subject_table: resolved.graph.subject.to_string(),
        key: found.key.clone(),
        subject_found: found.exists,
        steps,
        subject_hash_input: format!("{}:{}", resolved.graph.subject, found.key),
    })
}

/// `col = NULL` for a column holder; the key removed for a JSON path (`type_of` gives a
/// column's type: json is edited as jsonb and cast back).
fn unlink_sets(edge: &Edge, type_of: impl Fn(&str) -> String) -> Vec<String> {
    let mut sets: Vec<String> = Vec::new();
    for holder in &edge.holders {
        match holder {
            Holder::Column(column) => sets.push(format!("{} = NULL", ident(column))),
            Holder::JsonPath { column, path } => {
                let path = format!(
                    "{{{}}}",
                    path.iter()
                        .map(|k| format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\"")))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let data_type = type_of(column);
                let col = ident(column);
                let path = tend_pg::quote_literal(&path);
                sets.push(if data_type == "jsonb" {
                    format!("{col} = {col} #- {path}")
                } else {
                    format!("{col} = CAST(CAST({col} AS jsonb) #- {path} AS {data_type})")
                });
            }
        }
    }
    sets
}

/// The SQL that replaces `value` (of `data_type`) by `strategy`; `$1` is the salt.
fn replacement(strategy: &Strategy, value: &str, data_type: &str) -> String {
    let hash = format!("encode(sha256(convert_to($1 || {value}::text, 'UTF8')), 'hex')");
    match strategy {
        Strategy::Null => "NULL".to_string(),
        Strategy::Hash if data_type == "uuid" => format!("CAST(left({hash}, 32) AS uuid)"),
        Strategy::Hash => match text_length(data_type) {
            Some(n) => format!("left({hash}, {n})"),
            None => hash,
        },
        Strategy::FakeEmail => format!("'erased-' || left({hash}, 16) || '@erased.invalid'"),
        Strategy::FakeName => format!("'Erased ' || left({hash}, 8)"),
        Strategy::Redact if data_type.starts_with("json") => format!("CAST('{{}}' AS {data_type})"),
        Strategy::Redact => "'[erased]'".to_string(),
        Strategy::Constant(constant) => {
            format!("CAST({} AS {data_type})", tend_pg::quote_literal(constant))
        }
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Serialize)]
pub struct EraseReport {
    pub subject_table: String,
    pub steps: Vec<EraseStep>,
    pub rows: u64,
    /// The audit record's id in `tend.gdpr_erasures`.
    pub audit_id: i64,
}

/// The audit of erasures in the `tend` schema.
pub const GDPR_STATE: crate::state::StateOwner = crate::state::StateOwner {
    owner: "gdpr",
    holds: "table gdpr_erasures (what each erasure did, without personal data)",
    migrations: &[crate::state::StateMigration {
        name: "20261205_000000_gdpr_erasures",
        sql: include_str!("20261205_000000_gdpr_erasures.sql"),
    }],
};

/// Carries out `plan` in one transaction, with its audit record in the same one: both
/// happen, or neither. `by` says who ran it (the OS user and host).
pub async fn erase(
    database: &tend_pg::Database,
    settings: &GdprSettings,
    plan: &ErasePlan,
    by: &str,
) -> Result<EraseReport, GdprError> {
    crate::state::ensure_owner(GDPR_STATE, database)
        .await
        .map_err(GdprError::Audit)?;
    let mut session = database.dedicated().await?;
    let transaction = session.client.transaction().await?;
    let salt = settings.salt.clone().unwrap_or_default();
    let mut steps = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let mut done = step.clone();
        if let Some(sql) = &step.sql {
            done.changed = Some(if step.salted {
                transaction.execute(sql.as_str(), &[&salt]).await?
            } else {
                transaction.execute(sql.as_str(), &[]).await?
            });
        }
        steps.push(done);
    }
    let tables = serde_json::to_value(
        steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "table": s.table, "action": s.action, "through": s.through, "rows": s.rows,
                    "changed": s.changed, "reason": s.reason,
                })
            })
            .collect::<Vec<_>>(),
    )
    .expect("steps serialize");
    let subject_hash = settings.salt.as_ref().map(|salt| {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(salt.as_bytes());
        hasher.update(plan.subject_hash_input.as_bytes());
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    });
    let audit_id: i64 = transaction
        .query_one(
            "INSERT INTO tend.gdpr_erasures (erased_by, subject_table, subject_hash, steps, tend_version)
             VALUES (current_user || ' (' || $1 || ')', $2, $3, $4, $5) RETURNING id",
            &[
                &by,
                &plan.subject_table,
                &subject_hash,
                &tables,
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await?
        .get(0);
    transaction.commit().await?;
    Ok(EraseReport {
        subject_table: plan.subject_table.clone(),
        rows: steps
            .iter()
            .filter(|s| s.action != PolicyAction::Retain)
            .map(|s| s.rows)
            .sum(),
        steps,
        audit_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_keep_types_and_take_the_salt_as_a_parameter() {
        assert_eq!(replacement(&Strategy::Null, "t.a", "text"), "NULL");
        assert_eq!(
            replacement(&Strategy::FakeEmail, "t.email", "text"),
            "'erased-' || left(encode(sha256(convert_to($1 || t.email::text, 'UTF8')), 'hex'), 16) || '@erased.invalid'"
        );
        assert!(replacement(&Strategy::Hash, "t.a", "uuid").starts_with("CAST(left("));
        assert!(replacement(&Strategy::Hash, "t.a", "character varying(20)").ends_with(", 20)"));
        assert_eq!(
            replacement(&Strategy::Redact, "t.a", "jsonb"),
            "CAST('{}' AS jsonb)"
        );
        assert_eq!(
            replacement(&Strategy::Constant("it's".into()), "t.a", "text"),
            "CAST('it''s' AS text)"
        );
    }

    #[test]
    fn unfit_strategies_are_named() {
        assert!(unfit(&Strategy::Null, "text", true).is_some());
        assert!(unfit(&Strategy::Hash, "integer", false).is_some());
        assert!(unfit(&Strategy::FakeEmail, "character varying(20)", false).is_some());
        assert!(unfit(&Strategy::FakeEmail, "text", true).is_none());
        assert!(unfit(&Strategy::Redact, "jsonb", false).is_none());
    }

    #[test]
    fn subjects_read_as_table_and_key() {
        assert!(matches!(
            SubjectRef::parse_key("users:42").unwrap(),
            SubjectRef::Key { table: Some(t), key } if t == "users" && key == "42"
        ));
        assert!(matches!(
            SubjectRef::parse_key("42").unwrap(),
            SubjectRef::Key { table: None, .. }
        ));
        assert!(SubjectRef::parse_key("users:").is_err());
        assert!(SubjectRef::parse_key(" ").is_err());
    }

    #[test]
    fn a_json_mention_is_removed_by_its_path() {
        let edge = Edge {
            child: QualifiedName::new("public", "audit_log"),
            holders: vec![Holder::JsonPath {
                column: "metadata".into(),
                path: vec!["actor".into(), "id".into()],
            }],
            parent: QualifiedName::new("public", "users"),
            parent_columns: vec!["id".into()],
            owns: false,
            name: "declared".into(),
        };
        assert_eq!(
            unlink_sets(&edge, |_| "jsonb".to_string()),
            ["metadata = metadata #- '{\"actor\",\"id\"}'"]
        );
        assert_eq!(
            unlink_sets(&edge, |_| "json".to_string()),
            ["metadata = CAST(CAST(metadata AS jsonb) #- '{\"actor\",\"id\"}' AS json)"]
        );
    }
}
