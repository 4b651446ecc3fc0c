//! tend's own state in the target database: the `tend` schema, created and evolved by
//! versioned migrations (history in `tend._tend_migrations`), under an advisory lock of its
//! own so it never waits behind an application's deploy.
//!
//! The core registers its own migrations ([`Registry::builtin`]); other parts of tend (the
//! job queue, the daemon, data lifecycle) add theirs with [`Registry::register`], and every
//! migration runs in the order of its name, whoever registered it.
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

/// One migration of the `tend` schema.
#[derive(Debug, Clone, Copy)]
pub struct StateMigration {
    /// `YYYYMMDD_HHMMSS_what`: the order it runs in, and its name in the history.
    pub name: &'static str,
    pub sql: &'static str,
}

/// A part of tend that keeps state in the `tend` schema, and the migrations it needs.
#[derive(Debug, Clone, Copy)]
pub struct StateOwner {
    /// Who registers, for errors (`checks`, `jobs`, `serve`...).
    pub owner: &'static str,
    /// What its migrations create, for the notice before the first write.
    pub holds: &'static str,
    pub migrations: &'static [StateMigration],
}

/// The core's own state: the history of `tend check`.
pub const CHECK_HISTORY: StateOwner = StateOwner {
    owner: "checks",
    holds: "tables check_runs, check_findings and size_samples",
    migrations: &[StateMigration {
        name: "20261122_000000_check_history",
        sql: include_str!("20261122_000000_check_history.sql"),
    }],
};

/// Why a set of migrations cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "the tend-schema migration `{name}` of {owner} is not named YYYYMMDD_HHMMSS_what, so its order is unknown"
    )]
    BadName {
        owner: &'static str,
        name: &'static str,
    },
    #[error("the tend-schema migration `{name}` is registered by both {first} and {second}")]
    Duplicate {
        name: &'static str,
        first: &'static str,
        second: &'static str,
    },
}

/// Every migration of the `tend` schema, in the order they run.
#[derive(Debug, Clone)]
pub struct Registry {
    owners: Vec<StateOwner>,
}

impl Registry {
    /// The core's own migrations.
    pub fn builtin() -> Registry {
        Registry {
            owners: vec![CHECK_HISTORY],
        }
    }

    /// Adds a part's migrations. Names order migrations across parts, so each must start
    /// with a timestamp and be unique.
    pub fn register(&mut self, owner: StateOwner) -> Result<(), RegistryError> {
        for migration in owner.migrations {
            if !well_named(migration.name) {
                return Err(RegistryError::BadName {
                    owner: owner.owner,
                    name: migration.name,
                });
            }
            if let Some(first) = self
                .owners
                .iter()
                .find(|o| o.migrations.iter().any(|m| m.name == migration.name))
            {
                return Err(RegistryError::Duplicate {
                    name: migration.name,
                    first: first.owner,
                    second: owner.owner,
                });
            }
        }
        self.owners.push(owner);
        Ok(())
    }

    /// Every migration, in name order.
    pub fn migrations(&self) -> Vec<StateMigration> {
        let mut all: Vec<StateMigration> = self
            .owners
            .iter()
            .flat_map(|o| o.migrations.iter().copied())
            .collect();
        all.sort_by_key(|m| m.name);
        all
    }

    /// What the schema holds, for the notice before the first write.
    pub fn holds(&self) -> String {
        let parts: Vec<&str> = self.owners.iter().map(|o| o.holds).collect();
        format!("{}, and _tend_migrations", parts.join("; "))
    }

    fn runnable(&self) -> Vec<Migration> {
        self.migrations()
            .into_iter()
            .map(|m| Migration {
                name: m.name.to_string(),
                path: format!("(built into tend) {}.sql", m.name).into(),
                sql: m.sql.to_string(),
                checksum: checksum(m.sql.as_bytes()),
                down: None,
            })
            .collect()
    }
}

/// `YYYYMMDD_HHMMSS_` followed by a name.
fn well_named(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 16
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'_'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'_'
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
pub async fn state(
    registry: &Registry,
    client: &Client,
) -> Result<SchemaState, tokio_postgres::Error> {
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
    let all = registry
        .migrations()
        .iter()
        .all(|m| applied.iter().any(|a| a == m.name));
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
pub async fn ensure(
    registry: &Registry,
    info: &ConnInfo,
    connect: &ConnectOptions,
) -> Result<(), MigrateError> {
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
        &registry.runnable(),
        None,
        false,
        &mut |_| {},
    )
    .await?;
    Ok(())
}

/// [`ensure`] with the built-in owners and `owner`: what a part that keeps state of its
/// own runs before it first writes there. The error is the reason, as a sentence.
pub async fn ensure_owner(owner: StateOwner, database: &tend_pg::Database) -> Result<(), String> {
    let mut registry = Registry::builtin();
    registry.register(owner).map_err(|e| e.to_string())?;
    ensure(&registry, database.info(), database.options())
        .await
        .map_err(|e| e.to_string())
}

/// Whether `dir` is somewhere a command may write a new set of files: it does not exist,
/// or it is an empty directory.
pub(crate) fn is_new_directory(dir: &std::path::Path) -> bool {
    !dir.exists()
        || std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATER: StateOwner = StateOwner {
        owner: "jobs",
        holds: "table jobs",
        migrations: &[
            StateMigration {
                name: "20261201_000000_jobs",
                sql: "CREATE TABLE tend.jobs ()",
            },
            StateMigration {
                name: "20261101_000000_early",
                sql: "SELECT 1",
            },
        ],
    };

    #[test]
    fn registered_migrations_run_in_name_order_across_owners() {
        let mut registry = Registry::builtin();
        registry.register(LATER).unwrap();
        let names: Vec<&str> = registry.migrations().iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "20261101_000000_early",
                "20261122_000000_check_history",
                "20261201_000000_jobs"
            ]
        );
        assert!(registry.holds().contains("table jobs"));
    }

    #[test]
    fn a_name_twice_or_without_a_timestamp_is_refused() {
        let mut registry = Registry::builtin();
        let twice = StateOwner {
            owner: "serve",
            ..CHECK_HISTORY
        };
        assert!(matches!(
            registry.register(twice),
            Err(RegistryError::Duplicate {
                first: "checks",
                second: "serve",
                ..
            })
        ));
        let bad = StateOwner {
            owner: "serve",
            holds: "",
            migrations: &[StateMigration {
                name: "runs",
                sql: "",
            }],
        };
        assert!(matches!(
            registry.register(bad),
            Err(RegistryError::BadName { .. })
        ));
    }
}
