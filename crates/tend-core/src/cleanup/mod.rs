//! The cleanup service: the `[[retention]]` rules and the built-in soft-delete rule,
//! resolved against the database's schema, counted (`plan`: what `tend cleanup --dry-run`
//! prints, and what a run asks about), then purged (`run`) in the reference graph's
//! order, children before parents, batch by batch. The CLI and `tend serve` call the same
//! two functions; the backlog (`backlog`) is the same count kept as a check and a metric.
//!
//! A purge is resumable by construction: every batch commits on its own and a rule's rows
//! are found by their condition, not by a list kept somewhere, so a run killed at any
//! moment leaves whole batches done and the next run carries on. A `drop-partitions` rule
//! (a table partitioned by range on its timestamp) drops whole partitions instead, each in
//! a transaction of its own (`tend_lifecycle::partitions`): the same holds, partition by
//! partition.

pub mod archive;
pub mod config;
pub mod soft_delete;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use tend_lifecycle::rules::{self, cascade_paths, find_table, held_sql, is_timestamp};
use tend_lifecycle::{
    BatchSizer, DropOptions, DropOutcome, ExpiredPartition, MoveTo, PartitionRetention,
    PurgeOptions, PurgeOutcome, PurgeTarget, ReferenceGraph, RetentionRule, RowSelector,
    RuleAction, RuleOrigin,
};
use tend_schema::Model;
use tend_schema::model::{QualifiedName, ident};
use tokio_util::sync::CancellationToken;

pub use archive::{ArchiveError, StoreArchive};
pub use config::{ConfiguredAction, RetentionConfig};

use crate::settings::CleanupSettings;

/// How many links deep the dry run follows `ON DELETE CASCADE` to count what goes too.
const CASCADE_DEPTH: usize = 4;

/// Why a cleanup could not plan or run.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("reading the schema failed: {0}")]
    Schema(#[from] tend_schema::SchemaError),
    #[error("the server is a standby (in recovery): run tend cleanup against the primary")]
    Standby,
    #[error("retention rule `{rule}` names the table `{table}`, which the database does not have")]
    UnknownTable { rule: String, table: String },
    #[error("retention rule `{rule}`: {table} has no column `{column}`")]
    UnknownColumn {
        rule: String,
        table: String,
        column: String,
    },
    #[error(
        "retention rule `{rule}`: {table}.{column} is {data_type}, not a timestamp or date; age it by a timestamp column, or select rows with `where`"
    )]
    NotATimestamp {
        rule: String,
        table: String,
        column: String,
        data_type: String,
    },
    #[error("retention rule `{rule}` archives to {archive}, which {reason}")]
    Archive {
        rule: String,
        archive: String,
        reason: String,
    },
    #[error("retention rule `{rule}` drops partitions, but {table} {reason}")]
    NotPartitioned {
        rule: String,
        table: String,
        reason: String,
    },
    #[error("there is no retention rule `{name}`; the rules are: {known}")]
    UnknownRule { name: String, known: String },
    #[error("retention rule `{rule}` on {table} cannot be counted: {message}")]
    Count {
        rule: String,
        table: String,
        message: String,
    },
    #[error("retention rule `{rule}`: {source}{}", done_text(*deleted_before))]
    Purge {
        rule: String,
        #[source]
        source: tend_lifecycle::PurgeError,
        /// Rows this run deleted before it stopped.
        deleted_before: u64,
    },
    #[error("retention rule `{rule}`: {source}{}", done_text(*deleted_before))]
    DropPartitions {
        rule: String,
        #[source]
        source: tend_lifecycle::PartitionError,
        /// Rows this run deleted before it stopped (estimated for dropped partitions).
        deleted_before: u64,
    },
    #[error(
        "retention rule `{rule}` archives to the backup store, and the store was not opened for it"
    )]
    NoStore { rule: String },
    #[error("retention rule `{rule}`: {source}")]
    StoreArchive {
        rule: String,
        #[source]
        source: ArchiveError,
    },
    #[error(
        "retention rule `{rule}`: {source}; the {staged} rows it deleted and could not store are kept in tend.retention_staging, and the next tend cleanup stores them first"
    )]
    NotStored {
        rule: String,
        #[source]
        source: ArchiveError,
        staged: u64,
    },
    #[error("cleanup could not read the database: {}", tend_pg::error_text(.0))]
    Database(#[from] tokio_postgres::Error),
}

fn done_text(deleted: u64) -> String {
    if deleted == 0 {
        String::new()
    } else {
        format!(" ({deleted} rows were deleted before it; run tend cleanup again to carry on)")
    }
}

/// Which rules run.
#[derive(Debug, Clone, Default)]
pub struct CleanupRequest {
    /// Rule names (`--rule`); empty: all. `soft-delete` names every built-in rule.
    pub only: Vec<String>,
}

/// What a cleanup would do: per rule, in the order it runs.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupPlan {
    pub rules: Vec<PlannedRule>,
}

impl CleanupPlan {
    /// Rows the plan deletes (each rule's matching rows less the held ones).
    pub fn rows(&self) -> u64 {
        self.rules.iter().map(|r| r.deletes()).sum()
    }

    /// Whether a run would change anything: rows to delete, or partitions to drop (an
    /// empty one too).
    pub fn has_work(&self) -> bool {
        self.rules.iter().any(|r| r.has_work())
    }

    /// Partitions the plan drops.
    pub fn partitions(&self) -> usize {
        self.rules.iter().map(|r| r.drops().count()).sum()
    }

    /// Whether a rule of the plan archives to the backup store: a run then needs a
    /// [`StoreArchive`], even with nothing to delete (it lists what a killed run left).
    pub fn archives_to_store(&self) -> bool {
        self.rules.iter().any(|r| r.action == ARCHIVE_TO_STORE)
    }
}

/// The `action` of a rule that archives to the backup store.
pub const ARCHIVE_TO_STORE: &str = "archive-to-store";

/// One rule, counted.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRule {
    pub rule: String,
    pub table: String,
    /// `configured` or `soft-delete`.
    pub origin: &'static str,
    /// `delete`, `archive`, `archive-to-store` or `drop-partitions`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_to: Option<String>,
    /// The rule's rows, as SQL.
    pub condition: String,
    /// Rows the rule selects now.
    pub matching: u64,
    /// Of those, rows a foreign key refuses to see deleted (a `RESTRICT` or `NO ACTION`
    /// reference, directly or through a cascade): they stay.
    pub held: u64,
    /// How far past its rule the oldest row is, in seconds (rules with an age).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_overdue_seconds: Option<f64>,
    /// What `ON DELETE CASCADE` deletes with them.
    pub cascades: Vec<CascadeCount>,
    /// Foreign keys whose columns the delete sets to NULL or to their default.
    pub set_null: Vec<String>,
    /// `drop-partitions` rules: the table's partitions wholly past the rule, oldest first
    /// (`matching` and `held` are their rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PlannedPartition>>,
    /// `matching` and `held` are, in part, the statistics' estimates, not counts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rows_estimated: bool,
    /// `archive-to-store` rules: rows an earlier run deleted and the store did not take
    /// (it refused, or the run was killed), kept in `tend.retention_staging`; a run
    /// stores them first.
    #[serde(skip_serializing_if = "is_zero")]
    pub staged: u64,
    #[serde(skip)]
    work: RuleWork,
}

/// What a run does for a rule.
#[derive(Debug, Clone)]
enum RuleWork {
    Purge(PurgeTarget),
    DropPartitions {
        retention: PartitionRetention,
        partitions: Vec<ExpiredPartition>,
    },
}

impl PlannedRule {
    /// Rows this rule deletes.
    pub fn deletes(&self) -> u64 {
        self.matching.saturating_sub(self.held)
    }

    /// The partitions this rule drops: those no foreign key holds.
    pub fn drops(&self) -> impl Iterator<Item = &PlannedPartition> {
        self.partitions
            .iter()
            .flatten()
            .filter(|p| p.held_by.is_empty())
    }

    /// Whether running this rule would change anything.
    pub fn has_work(&self) -> bool {
        self.deletes() > 0 || self.drops().next().is_some() || self.staged > 0
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A partition a `drop-partitions` rule drops whole.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPartition {
    pub name: String,
    /// `FOR VALUES FROM (...) TO (...)`, as PostgreSQL writes it.
    pub bound: String,
    pub rows: u64,
    /// `rows` is the statistics' estimate (`reltuples`, as of the last ANALYZE or vacuum);
    /// a partition never analyzed is counted.
    pub rows_estimated: bool,
    /// It is partitioned itself: its partitions go with it.
    pub partitioned: bool,
    /// Foreign keys that reference rows in it: PostgreSQL refuses to detach it while they
    /// do, so it stays (its rows count as held).
    pub held_by: Vec<String>,
}

/// Rows another table loses through a chain of cascades.
#[derive(Debug, Clone, Serialize)]
pub struct CascadeCount {
    pub table: String,
    /// The foreign keys followed, from the rule's table outwards.
    pub through: Vec<String>,
    pub rows: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub rules: Vec<RuleOutcome>,
    pub deleted: u64,
    pub millis: u64,
    /// Stopped by an interrupt before the end: what is done stays done.
    pub interrupted: bool,
}

/// One rule's run.
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    pub rule: String,
    pub table: String,
    pub deleted: u64,
    pub batches: u64,
    /// Batches that met a lock or a new reference and were tried again, smaller.
    pub conflicts: u64,
    pub longest_batch_ms: u64,
    /// Time spent waiting for lagging replicas.
    pub paused_ms: u64,
    /// Time spent resting between batches (`cleanup.duty_cycle`).
    pub rested_ms: u64,
    /// `drop-partitions` rules: the partitions dropped (each its own transaction, counted
    /// in `batches`; `deleted` is their rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions_dropped: Option<Vec<String>>,
    /// `drop-partitions` rules: the partitions PostgreSQL would not detach or drop, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions_kept: Option<Vec<KeptPartition>>,
    /// `deleted` is, in part, the statistics' estimate of dropped partitions' rows.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rows_estimated: bool,
}

impl RuleOutcome {
    /// A rule purged batch by batch.
    fn purged(rule: &PlannedRule, outcome: &PurgeOutcome) -> RuleOutcome {
        RuleOutcome {
            rule: rule.rule.clone(),
            table: rule.table.clone(),
            deleted: outcome.deleted,
            batches: outcome.batches,
            conflicts: outcome.conflicts,
            longest_batch_ms: millis(outcome.longest),
            paused_ms: millis(outcome.paused),
            rested_ms: millis(outcome.rested),
            partitions_dropped: None,
            partitions_kept: None,
            rows_estimated: false,
        }
    }

    /// A rule that dropped partitions, each its own transaction (a "batch").
    fn dropped(rule: &PlannedRule, outcome: &DropOutcome) -> RuleOutcome {
        RuleOutcome {
            rule: rule.rule.clone(),
            table: rule.table.clone(),
            deleted: outcome.rows(),
            batches: outcome.dropped.len() as u64,
            conflicts: outcome.conflicts,
            longest_batch_ms: millis(outcome.longest),
            paused_ms: 0,
            rested_ms: 0,
            partitions_dropped: Some(outcome.dropped.iter().map(|p| p.name.to_string()).collect()),
            partitions_kept: Some(
                outcome
                    .kept
                    .iter()
                    .map(|k| KeptPartition {
                        name: k.partition.name.to_string(),
                        reason: k.reason.clone(),
                    })
                    .collect(),
            ),
            rows_estimated: outcome.dropped.iter().any(|p| p.rows_estimated),
        }
    }
}

/// A partition a run left, and PostgreSQL's reason.
#[derive(Debug, Clone, Serialize)]
pub struct KeptPartition {
    pub name: String,
    pub reason: String,
}

/// What a run says as it goes.
#[derive(Debug, Clone)]
pub enum CleanupEvent {
    Started {
        rule: String,
        table: String,
        expected: u64,
    },
    Progress {
        rule: String,
        deleted: u64,
    },
    Finished(RuleOutcome),
}

/// The rules `settings` and `model` give: the configured ones, resolved, then the built-in
/// soft-delete rule on every table with a soft-delete column.
pub fn resolve_rules(
    settings: &CleanupSettings,
    model: &Model,
) -> Result<Vec<RetentionRule>, CleanupError> {
    let mut resolved = Vec::new();
    for config in &settings.rules {
        let table = find_table(model, &config.table).ok_or_else(|| CleanupError::UnknownTable {
            rule: config.name.clone(),
            table: config.table.clone(),
        })?;
        let mut rows = Vec::new();
        let mut age_type = None;
        if let Some((column, older_than)) = &config.older_than {
            let found = model.tables[&table]
                .columns
                .iter()
                .find(|c| &c.name == column)
                .ok_or_else(|| CleanupError::UnknownColumn {
                    rule: config.name.clone(),
                    table: table.to_string(),
                    column: column.clone(),
                })?;
            if !is_timestamp(&found.data_type) {
                return Err(CleanupError::NotATimestamp {
                    rule: config.name.clone(),
                    table: table.to_string(),
                    column: column.clone(),
                    data_type: found.data_type.clone(),
                });
            }
            age_type = Some(found.data_type.clone());
            rows.push(RowSelector::OlderThan {
                column: column.clone(),
                older_than: *older_than,
            });
        }
        if let Some(predicate) = &config.predicate {
            rows.push(RowSelector::Where(predicate.clone()));
        }
        let action = match &config.action {
            ConfiguredAction::Delete => RuleAction::Delete,
            ConfiguredAction::ArchiveToStore => RuleAction::ArchiveToStore,
            ConfiguredAction::ArchiveTo(to) => {
                let archive = find_table(model, to).ok_or_else(|| CleanupError::Archive {
                    rule: config.name.clone(),
                    archive: to.clone(),
                    reason: format!(
                        "the database does not have: create it with CREATE TABLE {} (LIKE {})",
                        QualifiedName::parse(to).sql(),
                        table.sql()
                    ),
                })?;
                check_archive(model, &config.name, &table, &archive)?;
                RuleAction::ArchiveTo(archive)
            }
            ConfiguredAction::DropPartitions => {
                let not_partitioned = |reason: String| CleanupError::NotPartitioned {
                    rule: config.name.clone(),
                    table: table.to_string(),
                    reason,
                };
                let (Some((column, _)), Some(key_type), None) =
                    (&config.older_than, age_type, &config.predicate)
                else {
                    return Err(not_partitioned(
                        "can only be aged by its partition key: give `column` and `older_than`, and no `where`".to_string(),
                    ));
                };
                let key = format!("RANGE ({})", ident(column));
                match model.tables[&table].partition_by.as_deref() {
                    None => {
                        return Err(not_partitioned(
                            "is not partitioned: set action = \"delete\" to delete its rows in batches".to_string(),
                        ));
                    }
                    Some(by) if !ranges_by(by, column) => {
                        return Err(not_partitioned(format!(
                            "is partitioned by {by}, not by {key}: age the rule by its range key, or set action = \"delete\" to delete its rows in batches"
                        )));
                    }
                    Some(_) => RuleAction::DropPartitions { key_type },
                }
            }
        };
        resolved.push(RetentionRule {
            name: config.name.clone(),
            table,
            rows,
            action,
            origin: RuleOrigin::Configured,
        });
    }
    if let Some(grace) = settings.soft_delete_grace {
        resolved.extend(rules::soft_delete_rules(model, grace));
    }
    Ok(resolved)
}

/// Whether `partition_by` (`pg_get_partkeydef`: `RANGE (created_at)`, `LIST (kind)`) is a
/// range on `column` alone, written plain or quoted.
fn ranges_by(partition_by: &str, column: &str) -> bool {
    partition_by
        .strip_prefix("RANGE (")
        .and_then(|key| key.strip_suffix(')'))
        .is_some_and(|key| {
            key == column || key == ident(column) || key == tend_pg::quote_ident(column)
        })
}

/// An archive table takes a rule's rows as `INSERT ... SELECT *`: the same columns, in
/// the same order, of the same types.
fn check_archive(
    model: &Model,
    rule: &str,
    table: &QualifiedName,
    archive: &QualifiedName,
) -> Result<(), CleanupError> {
    let failed = |reason: String| CleanupError::Archive {
        rule: rule.to_string(),
        archive: archive.to_string(),
        reason,
    };
    if archive == table {
        return Err(failed("is the rule's own table".to_string()));
    }
    let columns = |name: &QualifiedName| -> Vec<(String, String)> {
        model.tables[name]
            .columns
            .iter()
            .filter(|c| c.generated.is_none())
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect()
    };
    let (ours, theirs) = (columns(table), columns(archive));
    if ours != theirs {
        let first = ours
            .iter()
            .zip(theirs.iter().map(Some).chain(std::iter::repeat(None)))
            .find(|(a, b)| Some(*a) != *b)
            .map(|(a, _)| format!(" (first difference at column {})", a.0))
            .unwrap_or_default();
        return Err(failed(format!(
            "does not have {table}'s columns in the same order and types{first}: create it with CREATE TABLE {} (LIKE {})",
            archive.sql(),
            table.sql()
        )));
    }
    Ok(())
}

/// Counts what `rules` select now, and orders them to run: children before parents.
/// Reads only.
pub async fn plan(
    client: &tokio_postgres::Client,
    settings: &CleanupSettings,
    request: &CleanupRequest,
) -> Result<CleanupPlan, CleanupError> {
    let standby: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await?
        .get(0);
    if standby {
        return Err(CleanupError::Standby);
    }
    let model = tend_schema::introspect(client).await?;
    let all = resolve_rules(settings, &model)?;
    for name in &request.only {
        if !all.iter().any(|r| &r.name == name) {
            let mut known: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
            known.dedup();
            return Err(CleanupError::UnknownRule {
                name: name.clone(),
                known: if known.is_empty() {
                    "none (add [[retention]] entries to tend.toml)".to_string()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    let chosen: Vec<RetentionRule> = all
        .into_iter()
        .filter(|r| request.only.is_empty() || request.only.contains(&r.name))
        .collect();
    let graph = ReferenceGraph::of(&model);
    let tables: BTreeSet<QualifiedName> = chosen.iter().map(|r| r.table.clone()).collect();
    let mut planned = Vec::new();
    for group in graph.delete_order(&tables) {
        for table in group {
            for rule in chosen.iter().filter(|r| r.table == table) {
                planned.push(count_rule(client, &graph, &model, rule, true).await?);
            }
        }
    }
    Ok(CleanupPlan { rules: planned })
}

/// Counts one rule's rows (and with `cascades`, what its deletes cascade into).
async fn count_rule(
    client: &tokio_postgres::Client,
    graph: &ReferenceGraph,
    model: &Model,
    rule: &RetentionRule,
    cascades: bool,
) -> Result<PlannedRule, CleanupError> {
    let with_cascades = cascades;
    let partitioned = model
        .tables
        .get(&rule.table)
        .is_some_and(|t| t.partition_by.is_some());
    let failed = |e: tokio_postgres::Error| CleanupError::Count {
        rule: rule.name.clone(),
        table: rule.table.to_string(),
        message: tend_pg::error_text(&e),
    };
    let archive_to = match &rule.action {
        RuleAction::ArchiveTo(to) => Some(MoveTo::Table(to.clone())),
        RuleAction::ArchiveToStore => Some(archive::staging(&rule.name)),
        RuleAction::Delete => None,
        RuleAction::DropPartitions { key_type } => {
            return count_partitions(client, graph, rule, key_type).await;
        }
    };
    let target = PurgeTarget {
        table: rule.table.clone(),
        condition: rule.condition_sql(),
        held: held_sql(graph, &rule.table, &rule.table.sql()),
        archive_to,
        partitioned,
    };
    // With an age, the oldest row the purge deletes comes in the same scan (a row a
    // foreign key holds is not overdue).
    let aged = match rule.rows.first() {
        Some(RowSelector::OlderThan { column, older_than }) => Some((column, older_than)),
        _ => None,
    };
    let sql = match aged {
        Some((column, _)) => target.count_with_oldest_sql(column),
        None => target.count_sql(),
    };
    let row = client.query_one(&sql, &[]).await.map_err(failed)?;
    let matching: i64 = row.get(0);
    let held: i64 = row.get(1);
    let oldest_overdue_seconds = match aged {
        Some((_, older_than)) if matching > held => row
            .get::<_, Option<f64>>(2)
            .map(|age| (age - older_than.as_secs_f64()).max(0.0)),
        _ => None,
    };
    let mut cascades = Vec::new();
    if with_cascades && matching > held {
        for path in cascade_paths(graph, &rule.table, CASCADE_DEPTH) {
            let rows: i64 = client
                .query_one(&path.count_sql(&rule.table, &target.doomed_sql()), &[])
                .await
                .map_err(failed)?
                .get(0);
            if rows > 0 {
                cascades.push(CascadeCount {
                    table: path.table().to_string(),
                    through: path.links.iter().map(link_name).collect(),
                    rows: rows as u64,
                });
            }
        }
    }
    let set_null = graph
        .delete_reaches(&rule.table)
        .updates
        .iter()
        .map(link_name)
        .collect();
    let staged = match rule.action {
        RuleAction::ArchiveToStore => staged_rows(client, &rule.name).await.map_err(failed)?,
        _ => 0,
    };
    Ok(PlannedRule {
        rule: rule.name.clone(),
        table: rule.table.to_string(),
        origin: origin_name(&rule.origin),
        action: match rule.action {
            RuleAction::Delete => "delete",
            RuleAction::ArchiveTo(_) => "archive",
            RuleAction::ArchiveToStore => ARCHIVE_TO_STORE,
            RuleAction::DropPartitions { .. } => "drop-partitions",
        },
        archive_to: match &rule.action {
            RuleAction::ArchiveTo(to) => Some(to.to_string()),
            _ => None,
        },
        condition: target.condition.clone(),
        matching: matching as u64,
        held: held as u64,
        oldest_overdue_seconds,
        cascades,
        set_null,
        partitions: None,
        rows_estimated: false,
        staged,
        work: RuleWork::Purge(target),
    })
}

/// Rows of `rule` in `tend.retention_staging` (none before tend has made it).
async fn staged_rows(
    client: &tokio_postgres::Client,
    rule: &str,
) -> Result<u64, tokio_postgres::Error> {
    let made: bool = client
        .query_one(
            "SELECT to_regclass('tend.retention_staging') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !made {
        return Ok(0);
    }
    let row = client
        .query_one(
            "SELECT count(*) FROM tend.retention_staging WHERE label = $1",
            &[&rule],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn origin_name(origin: &RuleOrigin) -> &'static str {
    match origin {
        RuleOrigin::Configured => "configured",
        RuleOrigin::SoftDelete => "soft-delete",
    }
}

/// Counts a `drop-partitions` rule: its partitions wholly past the cutoff, their rows, and
/// those a foreign key holds. Nothing cascades and nothing is set to NULL: PostgreSQL
/// refuses to detach a partition any foreign key still references.
async fn count_partitions(
    client: &tokio_postgres::Client,
    graph: &ReferenceGraph,
    rule: &RetentionRule,
    key_type: &str,
) -> Result<PlannedRule, CleanupError> {
    let failed = |message: String| CleanupError::Count {
        rule: rule.name.clone(),
        table: rule.table.to_string(),
        message,
    };
    let Some(RowSelector::OlderThan { older_than, .. }) = rule.rows.first() else {
        return Err(failed(
            "a drop-partitions rule needs an age on the partition key".to_string(),
        ));
    };
    let retention = PartitionRetention::new(graph, rule.table.clone(), key_type, *older_than);
    let partitions = retention.expired(client).await.map_err(|e| match e {
        tend_lifecycle::PartitionError::List { message, .. } => failed(message),
        other => failed(other.to_string()),
    })?;
    let matching = partitions.iter().map(|p| p.rows).sum();
    let held = partitions.iter().filter(|p| p.held()).map(|p| p.rows).sum();
    // How long the oldest partition it would drop has waited: a partition is due only
    // once its whole range has passed the rule.
    let oldest_overdue_seconds = partitions
        .iter()
        .filter(|p| !p.held())
        .filter_map(|p| p.overdue_seconds)
        .reduce(f64::max);
    Ok(PlannedRule {
        rule: rule.name.clone(),
        table: rule.table.to_string(),
        origin: origin_name(&rule.origin),
        action: "drop-partitions",
        staged: 0,
        archive_to: None,
        condition: rule.condition_sql(),
        matching,
        held,
        oldest_overdue_seconds,
        cascades: Vec::new(),
        set_null: Vec::new(),
        partitions: Some(
            partitions
                .iter()
                .map(|p| PlannedPartition {
                    name: p.name.to_string(),
                    bound: p.bound.clone(),
                    rows: p.rows,
                    rows_estimated: p.rows_estimated,
                    partitioned: p.partitioned,
                    held_by: p.referenced_by.iter().map(link_name).collect(),
                })
                .collect(),
        ),
        rows_estimated: partitions.iter().any(|p| p.rows_estimated),
        work: RuleWork::DropPartitions {
            retention,
            partitions,
        },
    })
}

/// One rule's backlog: rows past it that a cleanup would delete now.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub rule: String,
    pub table: String,
    pub rows: u64,
    /// How far past its rule the oldest of them is (rules with an age).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_overdue_seconds: Option<f64>,
}

/// Every rule's backlog (a cleanup that falls behind, or never runs, shows here first):
/// the same counts as the dry run, without the cascades. Reads only; on a standby, reads
/// what the primary would purge.
pub async fn backlog(
    client: &tokio_postgres::Client,
    settings: &CleanupSettings,
) -> Result<Vec<Backlog>, CleanupError> {
    if !has_rules(client, settings).await? {
        return Ok(Vec::new());
    }
    let model = tend_schema::introspect(client).await?;
    let rules = resolve_rules(settings, &model)?;
    let graph = ReferenceGraph::of(&model);
    let mut out = Vec::with_capacity(rules.len());
    for rule in &rules {
        let counted = count_rule(client, &graph, &model, rule, false).await?;
        out.push(Backlog {
            rule: counted.rule.clone(),
            table: counted.table.clone(),
            rows: counted.deletes(),
            oldest_overdue_seconds: counted.oldest_overdue_seconds,
        });
    }
    Ok(out)
}

/// Whether any rule can apply, without reading the whole schema: a configured rule, or a
/// table with a soft-delete column while that rule is on. The backlog check runs with
/// every `tend check`, and most databases have neither.
async fn has_rules(
    client: &tokio_postgres::Client,
    settings: &CleanupSettings,
) -> Result<bool, CleanupError> {
    if !settings.rules.is_empty() {
        return Ok(true);
    }
    if settings.soft_delete_grace.is_none() {
        return Ok(false);
    }
    let names: Vec<&str> = rules::SOFT_DELETE_COLUMNS.to_vec();
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute a
                              JOIN pg_class c ON c.oid = a.attrelid
                              JOIN pg_namespace n ON n.oid = c.relnamespace
                             WHERE a.attname = ANY ($1) AND a.attnum > 0 AND NOT a.attisdropped
                               AND c.relkind IN ('r', 'p')
                               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend'))",
            &[&names],
        )
        .await?;
    Ok(row.get(0))
}

/// `child(columns) -> parent`, as people read a foreign key.
fn link_name(link: &tend_lifecycle::Link) -> String {
    format!(
        "{}({}) -> {}",
        link.child,
        link.child_columns.join(", "),
        link.parent
    )
}

/// Purges what `plan` counted, rule by rule in its order, until each rule's rows are gone
/// (but for held ones) or `cancel` fires between batches. A plan that
/// [archives to the store](CleanupPlan::archives_to_store) needs `archive`.
pub async fn run(
    client: &tokio_postgres::Client,
    settings: &CleanupSettings,
    plan: &CleanupPlan,
    archive: Option<&StoreArchive>,
    cancel: &CancellationToken,
    on_event: &(dyn Fn(CleanupEvent) + Sync),
) -> Result<CleanupReport, CleanupError> {
    let started = Instant::now();
    let options = PurgeOptions {
        max_replica_lag: Some(settings.max_replica_lag),
        duty_cycle: settings.duty_cycle,
    };
    let stop = || cancel.is_cancelled();
    let mut report = CleanupReport {
        rules: Vec::new(),
        deleted: 0,
        millis: 0,
        interrupted: false,
    };
    for rule in &plan.rules {
        if cancel.is_cancelled() {
            break;
        }
        on_event(CleanupEvent::Started {
            rule: rule.rule.clone(),
            table: rule.table.clone(),
            expected: rule.deletes(),
        });
        let outcome = match &rule.work {
            RuleWork::Purge(target) => {
                let mut sizer = BatchSizer::new(settings.batch_budget, settings.max_batch);
                let progress = |so_far: &PurgeOutcome| {
                    on_event(CleanupEvent::Progress {
                        rule: rule.rule.clone(),
                        deleted: so_far.deleted,
                    })
                };
                let outcome = if rule.action == ARCHIVE_TO_STORE {
                    let archive = archive.ok_or_else(|| CleanupError::NoStore {
                        rule: rule.rule.clone(),
                    })?;
                    purge_to_store(
                        client,
                        target,
                        rule,
                        archive,
                        &mut sizer,
                        &options,
                        &stop,
                        &|deleted| {
                            on_event(CleanupEvent::Progress {
                                rule: rule.rule.clone(),
                                deleted,
                            })
                        },
                    )
                    .await
                } else {
                    tend_lifecycle::purge(
                        client,
                        target,
                        &mut sizer,
                        &options,
                        &mut Default::default(),
                        &stop,
                        &progress,
                    )
                    .await
                    .map_err(|source| CleanupError::Purge {
                        rule: rule.rule.clone(),
                        source,
                        deleted_before: 0,
                    })
                }
                .map_err(|e| match e {
                    CleanupError::Purge { rule, source, .. } => CleanupError::Purge {
                        rule,
                        source,
                        deleted_before: report.deleted,
                    },
                    other => other,
                })?;
                RuleOutcome::purged(rule, &outcome)
            }
            RuleWork::DropPartitions {
                retention,
                partitions,
            } => {
                // The batch budget bounds how long the table waits behind each drop, as it
                // bounds a batch's row locks.
                let drop_options = DropOptions::new(settings.batch_budget);
                let progress = |so_far: &DropOutcome| {
                    on_event(CleanupEvent::Progress {
                        rule: rule.rule.clone(),
                        deleted: so_far.rows(),
                    })
                };
                let outcome = tend_lifecycle::drop_partitions(
                    client,
                    retention,
                    partitions,
                    &drop_options,
                    &stop,
                    &progress,
                )
                .await
                .map_err(|source| CleanupError::DropPartitions {
                    rule: rule.rule.clone(),
                    source,
                    deleted_before: report.deleted,
                })?;
                RuleOutcome::dropped(rule, &outcome)
            }
        };
        report.deleted += outcome.deleted;
        on_event(CleanupEvent::Finished(outcome.clone()));
        report.rules.push(outcome);
    }
    report.interrupted = cancel.is_cancelled();
    report.millis = millis(started.elapsed());
    Ok(report)
}

/// Staged rows a purge to the store leaves before they are stored: the staging table holds
/// at most about this many of a rule's rows.
const STAGE_ROWS: u64 = 50_000;

/// A purge that archives to the store: stores what a killed run left staged, then purges
/// in stretches of [`STAGE_ROWS`] rows (moved to staging batch by batch, as any purge's),
/// storing each stretch's rows before the next, and lists the run's batches in a manifest.
#[allow(clippy::too_many_arguments)]
async fn purge_to_store(
    client: &tokio_postgres::Client,
    target: &PurgeTarget,
    rule: &PlannedRule,
    archive: &StoreArchive,
    sizer: &mut BatchSizer,
    options: &PurgeOptions,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PurgeOutcome, CleanupError> {
    let stored = |source| CleanupError::StoreArchive {
        rule: rule.rule.clone(),
        source,
    };
    let run = archive
        .start_rule(client, &rule.rule, &target.table.sql())
        .await
        .map_err(stored)?;
    let mut total = PurgeOutcome::default();
    // Each stretch carries on where the last one stopped.
    let mut cursor = tend_lifecycle::Cursor::default();
    loop {
        let stretch = std::sync::atomic::AtomicU64::new(0);
        let done_before = total.deleted;
        let full = || stop() || stretch.load(std::sync::atomic::Ordering::Relaxed) >= STAGE_ROWS;
        let heard = |so_far: &PurgeOutcome| {
            stretch.store(so_far.deleted, std::sync::atomic::Ordering::Relaxed);
            progress(done_before + so_far.deleted);
        };
        let purged =
            tend_lifecycle::purge(client, target, sizer, options, &mut cursor, &full, &heard).await;
        // What the stretch staged is stored whatever stopped it; a purge's own failure is
        // the one reported (its staged rows are stored by the next run, if not now).
        let flushed = run.flush(client).await;
        let outcome = purged.map_err(|source| CleanupError::Purge {
            rule: rule.rule.clone(),
            source,
            deleted_before: 0,
        })?;
        if let Err(source) = flushed {
            return Err(CleanupError::NotStored {
                rule: rule.rule.clone(),
                source,
                staged: staged_rows(client, &rule.rule).await.unwrap_or(0),
            });
        }
        total.add(&outcome);
        if outcome.deleted < STAGE_ROWS || stop() {
            break;
        }
    }
    archive
        .write_manifests(client, &rule.rule)
        .await
        .map_err(stored)?;
    Ok(total)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drop_partitions_rule_needs_a_range_on_its_column_alone() {
        assert!(ranges_by("RANGE (created_at)", "created_at"));
        assert!(ranges_by("RANGE (\"createdAt\")", "createdAt"));
        assert!(!ranges_by("RANGE (created_at, id)", "created_at"));
        assert!(!ranges_by("RANGE (date_trunc('month'::text, at))", "at"));
        assert!(!ranges_by("LIST (created_at)", "created_at"));
        assert!(!ranges_by("HASH (created_at)", "created_at"));
        assert!(!ranges_by("RANGE (updated_at)", "created_at"));
    }
}
