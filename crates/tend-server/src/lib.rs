//! `tend serve`: the daemon. A scheduler that leads by a PostgreSQL advisory lock (others
//! stand by), runs the schedule's tasks through the same core services as the commands,
//! and records every run in the `tend` schema; and HTTP endpoints for orchestrators and
//! scripts. It knows nothing of the terminal: what happens goes out as [`Event`]s.

pub mod actions;
pub mod alert_rules;
pub mod alerts;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod runs;
pub mod scheduler;
pub mod tasks;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

pub use scheduler::{Event, Role, Shared};
pub use tasks::{ScratchServer, TaskContext};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: {source}; is another tend serve (or another program) using it? Set serve.listen (TEND_SERVE_LISTEN) or --listen to another address"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// An alert channel that cannot be used (a bad URL or address).
    #[error("{0}")]
    Alerts(String),
}

/// What the daemon runs against.
pub struct Daemon {
    pub tasks: TaskContext,
    /// Where locks are taken (`DIRECT_URL` when set).
    pub lock_info: tend_pg::ConnInfo,
    pub listen: std::net::SocketAddr,
    pub on_event: Arc<dyn Fn(Event) + Send + Sync>,
}

/// How the daemon stopped.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// Whether every running task stopped within `serve.stop_timeout`.
    pub in_time: bool,
}

/// `host:pid`: which instance recorded a run.
pub fn instance_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", std::process::id())
}

/// Binds the listener (so a taken port is an error before anything runs), then serves
/// until `shutdown`: the scheduler and the endpoints. On shutdown no new run starts, the
/// running ones are cancelled, and it returns once they stopped or the stop timeout passed.
pub async fn serve(daemon: Daemon, shutdown: CancellationToken) -> Result<Stopped, ServeError> {
    let alerting =
        Arc::new(alerts::Alerting::new(&daemon.tasks.settings.alerts).map_err(ServeError::Alerts)?);
    let listener = tokio::net::TcpListener::bind(daemon.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: daemon.listen,
            source,
        })?;
    let shared = Arc::new(Shared {
        tasks: daemon.tasks,
        lock_info: daemon.lock_info,
        instance: instance_name(),
        role: Mutex::new(Role::Starting),
        running: Mutex::new(Vec::new()),
        alerting,
        requests: tokio::sync::Notify::new(),
        catalog: pages::backups::Catalog::default(),
        on_event: daemon.on_event,
    });
    let app = http::router(shared.clone());
    let http_stop = CancellationToken::new();
    let http = {
        let stop = http_stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };
    let in_time = scheduler::run(shared, shutdown).await;
    http_stop.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), http).await;
    Ok(Stopped { in_time })
}
