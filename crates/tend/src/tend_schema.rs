//! tend's own state in the target database: the `tend` schema, created and evolved by
//! tend's own versioned migrations (history in `tend._tend_migrations`), under an advisory
//! lock of its own so it never waits behind an application's deploy.
//!
//! Nothing here waits behind another session: the state is read on a session with a short
//! `lock_timeout`, the advisory lock is tried once, and the migrations' sessions start with
//! `lock_timeout` set, so a lock held elsewhere makes the caller skip its write.

use std::time::Duration;

use tend_migrate::apply::{self, RunOptions};
use tend_migrate::source::checksum;
use tend_migrate::{Format, History, MigrateError, Migration};
use tend_pg::{ConnInfo, ConnectOptions};
use tokio_postgres::Client;

/// The lock tend's own migrations take ("tend" in ASCII).
pub const LOCK_KEY: i64 = 0x7465_6e64;

/// `lock_timeout` of every session that creates or upgrades the schema.
const LOCK_TIMEOUT: Duration = Duration::from_millis(500);

/// What tend writes, for the notice before the first write.
pub const WHAT_IT_HOLDS: &str =
    "tables check_runs, check_findings and size_samples, and _tend_migrations";

const MIGRATIONS: &[(&str, &str)] = &[(
    "20261122_000000_check_history",
    include_str!("tend_schema/20261122_000000_check_history.sql"),
)];

fn migrations() -> Vec<Migration> {
    MIGRATIONS
        .iter()
        .map(|(name, sql)| Migration {
            name: name.to_string(),
            path: format!("(built into tend) {name}.sql").into(),
            sql: sql.to_string(),
            checksum: checksum(sql.as_bytes()),
            down: None,
        })
        .collect()
}

/// Where the `tend` schema stands in a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// No `tend` schema: the first write creates it.
    Missing,
    /// It exists, but some of tend's migrations are not applied.
    Behind,
    /// Every migration is applied.
    Current,
}

/// Reads the schema's state on `client` (whose session should have a `lock_timeout`).
pub async fn state(client: &Client) -> Result<SchemaState, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT to_regnamespace('tend') IS NOT NULL,
                    to_regclass('tend._tend_migrations') IS NOT NULL",
            &[],
        )
        .await?;
    let (schema, history): (bool, bool) = (row.get(0), row.get(1));
    if !schema {
        return Ok(SchemaState::Missing);
    }
    if !history {
        return Ok(SchemaState::Behind);
    }
    let applied: Vec<String> = client
        .query(
            "SELECT migration_name::text FROM tend._tend_migrations
              WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let all = MIGRATIONS
        .iter()
        .all(|(name, _)| applied.iter().any(|a| a == name));
    Ok(if all {
        SchemaState::Current
    } else {
        SchemaState::Behind
    })
}

/// Whether the session's role may create the `tend` schema (CREATE on the database), and
/// the role's and the database's names for the message when it may not.
pub async fn may_create(client: &Client) -> Result<(bool, String, String), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT has_database_privilege(current_database(), 'CREATE'),
                    current_user::text, current_database()::text",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Creates or upgrades the `tend` schema. The advisory lock is tried once (another tend
/// doing the same is reported, not waited for), and every statement runs under a short
/// `lock_timeout`.
pub async fn ensure(info: &ConnInfo, connect: &ConnectOptions) -> Result<(), MigrateError> {
    let options = RunOptions {
        lock_wait: Duration::ZERO,
        lock_key: LOCK_KEY,
        lock_timeout: Some(LOCK_TIMEOUT),
        statement_timeout: Some(Duration::from_secs(30)),
        connect: connect.clone(),
        ..RunOptions::default()
    };
    // The lock session and the history reads of the migration runner set no lock_timeout
    // of their own: start every session of this run with one.
    let mut info = info.clone();
    let startup = format!("-c lock_timeout={}", LOCK_TIMEOUT.as_millis());
    let options_param = match info.get("options") {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {startup}"),
        _ => startup,
    };
    info.set("options", options_param);
    apply::deploy(
        &info,
        &options,
        History::in_schema(Format::Tend, "tend"),
        &migrations(),
        None,
        false,
        &mut |_| {},
    )
    .await?;
    Ok(())
}
