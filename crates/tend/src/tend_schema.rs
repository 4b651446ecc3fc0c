//! tend's own state in the target database: the `tend` schema, created and evolved by
//! tend's own versioned migrations (history in `tend._tend_migrations`), under an advisory
//! lock of its own so it never waits behind an application's deploy.

use std::time::Duration;

use tend_migrate::apply::{self, RunOptions};
use tend_migrate::source::checksum;
use tend_migrate::{Format, History, MigrateError, Migration};
use tend_pg::{ConnInfo, ConnectOptions};

/// The lock tend's own migrations take ("tend" in ASCII).
pub const LOCK_KEY: i64 = 0x7465_6e64;

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

/// Creates or upgrades the `tend` schema.
pub async fn ensure(info: &ConnInfo, connect: &ConnectOptions) -> Result<(), MigrateError> {
    let options = RunOptions {
        lock_wait: Duration::from_secs(10),
        lock_key: LOCK_KEY,
        connect: connect.clone(),
        ..RunOptions::default()
    };
    apply::deploy(
        info,
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
