//! Session-level advisory locks, held on a dedicated connection so that no other work on a
//! pooled session can release them by accident. Used to keep two deploys (or two `tend serve`
//! leaders) from running at once.

use std::time::{Duration, Instant};

use crate::connect::{ConnectError, ConnectOptions, Session, connect};
use crate::conninfo::ConnInfo;

/// A held lock. Dropping it closes its connection, which releases the lock on the server;
/// [`AdvisoryLock::release`] does so explicitly and reports errors.
#[derive(Debug)]
pub struct AdvisoryLock {
    session: Session,
    key: i64,
}

/// Who holds a lock we wait for, so the error can name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: i32,
    pub application_name: String,
    pub user: String,
    pub client_addr: Option<String>,
    pub since: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{}", held_message(.key, .waited, .holder))]
    Held {
        key: i64,
        waited: Duration,
        holder: Option<LockHolder>,
    },
    #[error("taking advisory lock {key} failed: {}", crate::error_text(.source))]
    Query {
        key: i64,
        #[source]
        source: tokio_postgres::Error,
    },
}

fn held_message(key: &i64, waited: &Duration, holder: &Option<LockHolder>) -> String {
    let who = match holder {
        Some(h) => format!(
            "PostgreSQL backend pid {} (application_name `{}`, user `{}`{}{})",
            h.pid,
            h.application_name,
            h.user,
            h.client_addr
                .as_ref()
                .map(|a| format!(", from {a}"))
                .unwrap_or_default(),
            h.since
                .as_ref()
                .map(|s| format!(", connected since {s}"))
                .unwrap_or_default()
        ),
        None => "another session".to_string(),
    };
    format!(
        "advisory lock {key} is held by {who}, still after waiting {:.1}s; wait for it to finish, or end it with `SELECT pg_terminate_backend(pid)` if it is stuck",
        waited.as_secs_f64()
    )
}

impl AdvisoryLock {
    /// Takes `pg_advisory_lock(key)` on a new connection, polling until `wait` has passed.
    /// Polling with `pg_try_advisory_lock` rather than blocking keeps the wait bounded
    /// without relying on `lock_timeout`, which a pooler may drop.
    pub async fn acquire(
        info: &ConnInfo,
        options: &ConnectOptions,
        key: i64,
        wait: Duration,
    ) -> Result<AdvisoryLock, LockError> {
        let session = connect(info, options).await?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let got: bool = session
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(|source| LockError::Query { key, source })?
                .get(0);
            if got {
                return Ok(AdvisoryLock { session, key });
            }
            if started.elapsed() >= wait {
                let holder = Self::holder(&session, key).await;
                return Err(LockError::Held {
                    key,
                    waited: started.elapsed(),
                    holder,
                });
            }
            let left = wait.saturating_sub(started.elapsed());
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The session holding advisory lock `key` (a bigint key is split into classid/objid).
    pub async fn holder(session: &Session, key: i64) -> Option<LockHolder> {
        let row = session
            .query_opt(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
                        host(a.client_addr), to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
                   FROM pg_locks l
                   JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND l.classid = (($1::bigint >> 32) & 4294967295)::bigint::oid
                    AND l.objid = ($1::bigint & 4294967295)::bigint::oid
                    AND l.objsubid = 1
                  LIMIT 1",
                &[&key],
            )
            .await
            .ok()??;
        Some(LockHolder {
            pid: row.get(0),
            application_name: row.get(1),
            user: row.get(2),
            client_addr: row.get(3),
            since: row.get(4),
        })
    }

    pub fn key(&self) -> i64 {
        self.key
    }

    /// The lock's own session, for work that must run under it.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Releases the lock and closes its connection.
    pub async fn release(self) -> Result<(), LockError> {
        self.session
            .query_one("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
            .map_err(|source| LockError::Query {
                key: self.key,
                source,
            })?;
        Ok(())
    }
}
