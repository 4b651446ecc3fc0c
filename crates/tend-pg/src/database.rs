//! [`Database`]: one handle on one database for everything that talks to it: the connection
//! string, the connection options, the TLS set-up (built once), and a pool of sessions sized
//! by `DB_POOL_MAX` whose idle sessions close after `DB_IDLE_TIMEOUT`.
//!
//! The pool is deadpool's, with a manager that opens sessions through [`crate::connect`]'s
//! path, so pooled sessions get the same retries, libpq-compatible TLS modes and typed
//! [`ConnectError`]s as any other (deadpool-postgres's manager would bypass all three).
//! A session goes back to the pool clean: its settings are reset, advisory locks released and
//! LISTENs dropped before the next user gets it.
//!
//! A session that must hold something across calls (an advisory lock, a transaction that
//! outlives one service call) takes a dedicated one with [`Database::dedicated`].

use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

use crate::connect::{ConnectError, ConnectOptions, Session, Tls, connect_with};
use crate::conninfo::ConnInfo;

/// How many sessions a pool keeps, and for how long idle ones stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most sessions open at once; a caller beyond it waits for one to come back.
    pub max_size: usize,
    /// An idle session older than this is closed when the pool next looks at it.
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 10,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a session could not be had from the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("a pooled session to {target} could not be reset for reuse: {detail}")]
    Reset { target: String, detail: String },
    #[error("the connection pool to {target} is closed")]
    Closed { target: String },
}

/// A handle on one database; cheap to clone, `Send + Sync`, shared by the services that a
/// command or the daemon runs at once.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

/// The TLS set-up, built on the first connection (a handle that never connects, or connects
/// without TLS, costs nothing) and then shared by the pool and dedicated sessions.
type LazyTls = Arc<std::sync::OnceLock<Tls>>;

fn tls_of<'a>(tls: &'a LazyTls, info: &ConnInfo) -> &'a Tls {
    tls.get_or_init(|| Tls::for_target(info))
}

struct Inner {
    info: ConnInfo,
    options: ConnectOptions,
    tls: LazyTls,
    pool: managed::Pool<Manager>,
    pool_options: PoolOptions,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.inner.info.redacted())
    }
}

/// A session borrowed from the pool; it goes back when dropped.
pub type PooledSession = managed::Object<Manager>;

impl Database {
    /// A handle; no session is opened until one is asked for.
    pub fn new(info: ConnInfo, options: ConnectOptions, pool_options: PoolOptions) -> Database {
        let tls = LazyTls::default();
        let manager = Manager {
            info: info.clone(),
            options: options.clone(),
            tls: tls.clone(),
            idle_timeout: pool_options.idle_timeout,
        };
        let pool = managed::Pool::builder(manager)
            .max_size(pool_options.max_size.max(1))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("a pool with a runtime and no timeouts builds");
        Database {
            inner: Arc::new(Inner {
                info,
                options,
                tls,
                pool,
                pool_options,
            }),
        }
    }

    pub fn info(&self) -> &ConnInfo {
        &self.inner.info
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    pub fn pool_options(&self) -> PoolOptions {
        self.inner.pool_options
    }

    /// A session from the pool, opened if none is idle; waits while `max_size` are in use.
    /// Idle sessions past the idle timeout are closed first.
    pub async fn session(&self) -> Result<PooledSession, PoolError> {
        self.close_idle();
        self.inner.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            managed::PoolError::Closed => PoolError::Closed {
                target: self.inner.info.target(),
            },
            // No wait or create timeout is configured and the runtime is set, so these
            // cannot happen; they are reported rather than trusted.
            other => PoolError::Reset {
                target: self.inner.info.target(),
                detail: format!("{other:?}"),
            },
        })
    }

    /// A session of its own, outside the pool, with the same options and TLS set-up: for
    /// session-level state that must not return to the pool (advisory locks, LISTEN).
    pub async fn dedicated(&self) -> Result<Session, ConnectError> {
        let tls = tls_of(&self.inner.tls, &self.inner.info);
        connect_with(&self.inner.info, &self.inner.options, tls).await
    }

    /// Sessions open in the pool now (idle or in use), for status pages and tests.
    pub fn open_sessions(&self) -> usize {
        self.inner.pool.status().size
    }

    /// Closes every idle session now (a daemon calls this on a timer; `session` also
    /// prunes on each checkout).
    pub fn close_idle(&self) {
        let idle_timeout = self.inner.pool_options.idle_timeout;
        self.inner
            .pool
            .retain(|_, metrics| metrics.last_used() < idle_timeout);
    }
}

/// Opens and recycles pooled sessions.
pub struct Manager {
    info: ConnInfo,
    options: ConnectOptions,
    tls: LazyTls,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Manager({})", self.info.redacted())
    }
}

impl managed::Manager for Manager {
    type Type = Session;
    type Error = PoolError;

    async fn create(&self) -> Result<Session, PoolError> {
        let tls = tls_of(&self.tls, &self.info);
        Ok(connect_with(&self.info, &self.options, tls).await?)
    }

    async fn recycle(&self, session: &mut Session, metrics: &Metrics) -> RecycleResult<PoolError> {
        if session.client.is_closed() {
            return Err(RecycleError::message("the connection is closed"));
        }
        if metrics.last_used() >= self.idle_timeout {
            return Err(RecycleError::message(
                "idle for longer than the idle timeout",
            ));
        }
        // Back to what a new session looks like: a service may have SET lock_timeout, taken
        // a session-level advisory lock or listened on a channel. RESET ALL goes back to the
        // connection's startup values (options=-c... included); the statement timeout tend
        // sets after connecting is set again. One round trip, which also proves the session
        // still works.
        let mut reset = String::from("RESET ALL; SELECT pg_advisory_unlock_all(); UNLISTEN *;");
        if let Some(timeout) = self.options.statement_timeout {
            reset.push_str(&format!(
                " SET statement_timeout = {};",
                timeout.as_millis()
            ));
        }
        session.client.batch_execute(&reset).await.map_err(|e| {
            RecycleError::Backend(PoolError::Reset {
                target: self.info.target(),
                detail: crate::pgerror::error_text(&e),
            })
        })
    }
}
