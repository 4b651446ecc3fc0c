//! The record of scheduled runs in the `tend` schema (`tend.schedule_runs`): claimed by a
//! unique (entry, scheduled time) so no run starts twice, finished with its outcome and
//! report, and expired after `serve.run_retention_days`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tend_core::state::{StateMigration, StateOwner};
use tokio_postgres::Client;

/// The daemon's state: the runs table.
pub const SERVE_STATE: StateOwner = StateOwner {
    owner: "serve",
    holds: "tables schedule_runs and alert_state",
    migrations: &[
        StateMigration {
            name: "20261204_000000_schedule_runs",
            sql: include_str!("state.sql"),
        },
        StateMigration {
            name: "20261204_000001_alert_state",
            sql: include_str!("alert_state.sql"),
        },
    ],
};

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its cron time came.
    Schedule,
    /// It was due while no instance led, and the missed-run policy runs it once.
    Missed,
    /// The entry it runs after succeeded.
    After,
    /// Asked for through the API (run now, re-run).
    Manual,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Missed => "missed",
            Trigger::After => "after",
            Trigger::Manual => "manual",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Stopped by a shutdown or a lost lead; what it did was undone by the task.
    Cancelled,
    /// Not run: the missed-run policy, or the previous run still going elsewhere.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One recorded run, as the API and `tend serve` show it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub entry: String,
    pub task: String,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: String,
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `cancelled`, `abandoned` or `skipped`.
    pub outcome: String,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub report: Option<serde_json::Value>,
}

const COLUMNS: &str = "id, entry, task, scheduled_for, trigger, instance, started_at, \
                       finished_at, outcome, summary, error, report";

fn record(row: &tokio_postgres::Row) -> RunRecord {
    RunRecord {
        id: row.get(0),
        entry: row.get(1),
        task: row.get(2),
        scheduled_for: row.get(3),
        trigger: row.get(4),
        instance: row.get(5),
        started_at: row.get(6),
        finished_at: row.get(7),
        outcome: row.get(8),
        summary: row.get(9),
        error: row.get(10),
        report: row.get(11),
    }
}

/// What is claimed: one entry at one scheduled time.
pub struct Claim<'a> {
    pub entry: &'a str,
    pub task: &'a str,
    pub scheduled_for: DateTime<Utc>,
    pub trigger: Trigger,
    pub instance: &'a str,
}

/// Claims a run; `None` when that entry's run at that time was claimed before (by this
/// instance or another), which is never run again.
pub async fn claim(
    client: &Client,
    claim: &Claim<'_>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "INSERT INTO tend.schedule_runs (entry, task, scheduled_for, trigger, instance)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (entry, scheduled_for) DO NOTHING
             RETURNING id",
            &[
                &claim.entry,
                &claim.task,
                &claim.scheduled_for,
                &claim.trigger.as_str(),
                &claim.instance,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Asks for a run of `entry` now: a `requested` row the leader picks up. `None` when one is
/// already waiting for that entry.
pub async fn request(
    client: &Client,
    entry: &str,
    task: &str,
    requester: &str,
) -> Result<Option<RunRecord>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO tend.schedule_runs (entry, task, scheduled_for, trigger, instance, outcome)
                 SELECT $1, $2, clock_timestamp(), 'manual', $3, 'requested'
                  WHERE NOT EXISTS (SELECT FROM tend.schedule_runs
                                     WHERE entry = $1 AND outcome = 'requested')
                 RETURNING {COLUMNS}"
            ),
            &[&entry, &task, &requester],
        )
        .await?;
    Ok(row.as_ref().map(record))
}

/// The runs waiting to be picked up: (id, entry, scheduled time), oldest first.
pub async fn requested(
    client: &Client,
) -> Result<Vec<(i64, String, DateTime<Utc>)>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT id, entry, scheduled_for FROM tend.schedule_runs
              WHERE outcome = 'requested' ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Takes a requested run to run it here; `false` when it was taken or dropped meanwhile.
pub async fn take(client: &Client, id: i64, instance: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute(
            "UPDATE tend.schedule_runs
                SET outcome = 'running', instance = $2, started_at = clock_timestamp()
              WHERE id = $1 AND outcome = 'requested'",
            &[&id, &instance],
        )
        .await?
        == 1)
}

/// Records a run that is not run (`skipped`), unless that time was claimed already.
pub async fn skip(
    client: &Client,
    claim: &Claim<'_>,
    why: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO tend.schedule_runs
                    (entry, task, scheduled_for, trigger, instance, finished_at, outcome, summary)
             VALUES ($1, $2, $3, $4, $5, clock_timestamp(), 'skipped', $6)
             ON CONFLICT (entry, scheduled_for) DO NOTHING",
            &[
                &claim.entry,
                &claim.task,
                &claim.scheduled_for,
                &claim.trigger.as_str(),
                &claim.instance,
                &why,
            ],
        )
        .await?;
    Ok(())
}

/// Records how a claimed run ended.
pub async fn finish(
    client: &Client,
    id: i64,
    outcome: Outcome,
    summary: &str,
    error: Option<&str>,
    report: Option<&serde_json::Value>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE tend.schedule_runs
                SET finished_at = clock_timestamp(), outcome = $2, summary = $3, error = $4,
                    report = $5
              WHERE id = $1",
            &[&id, &outcome.as_str(), &summary, &error, &report],
        )
        .await?;
    Ok(())
}

/// Marks the entry's runs still `running` as abandoned. Called by the holder of the entry's
/// run lock, which proves no instance runs it now: the instance that started them died.
pub async fn abandon_stale(client: &Client, entry: &str) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE tend.schedule_runs
                SET outcome = 'abandoned', finished_at = clock_timestamp(),
                    error = 'the instance running it (' || instance || ') stopped before it ended'
              WHERE entry = $1 AND outcome = 'running'",
            &[&entry],
        )
        .await
}

/// The latest time the entry was scheduled for, if it ever ran.
pub async fn latest_scheduled(
    client: &Client,
    entry: &str,
) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT max(scheduled_for) FROM tend.schedule_runs WHERE entry = $1",
            &[&entry],
        )
        .await
        .map(|r| r.get(0))
}

/// The newest runs, newest first; of one entry when `entry` is set.
pub async fn recent(
    client: &Client,
    entry: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM tend.schedule_runs
                  WHERE $1::text IS NULL OR entry = $1
                  ORDER BY started_at DESC, id DESC LIMIT $2"
            ),
            &[&entry, &limit],
        )
        .await?;
    Ok(rows.iter().map(record).collect())
}

/// Each entry's newest run.
pub async fn last_per_entry(client: &Client) -> Result<Vec<RunRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT DISTINCT ON (entry) {COLUMNS} FROM tend.schedule_runs
                  ORDER BY entry, scheduled_for DESC, id DESC"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(record).collect())
}

/// Deletes finished runs older than `days`.
pub async fn expire(client: &Client, days: u32) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM tend.schedule_runs
              WHERE outcome NOT IN ('running', 'requested')
                AND started_at < now() - make_interval(days => $1)",
            &[&(days as i32)],
        )
        .await
}
