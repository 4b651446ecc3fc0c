//! What every command gets: the resolved settings, the output, and the way to the database,
//! which is the configured URL or, with none configured, the project's local cluster
//! (the embedded default), started on demand.

use tend_pg::cluster::{ClusterEvent, ClusterOptions, LocalCluster};
use tend_pg::{ConnInfo, Session};

use crate::command_error::CommandError;
use crate::output::Output;
use crate::settings::{Settings, Source};

pub struct Context<'a> {
    pub settings: Settings,
    pub out: &'a Output,
    pub yes: bool,
}

/// Which database a command works on, and why.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: ConnInfo,
    pub origin: TargetOrigin,
}

#[derive(Debug, Clone)]
pub enum TargetOrigin {
    Configured(Source),
    LocalCluster,
}

/// Why a command needs the project's local cluster. A server tend starts keeps running
/// after the command (the next one is faster), so whenever tend starts it without being
/// asked to, it says why and how to stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterUse {
    /// The user asked for it (`tend dev ...`, `tend demo`).
    Asked,
    /// No database is configured: the command works on the local cluster.
    EmbeddedDefault,
    /// Shadow databases where migrations or desired-state SQL are replayed.
    Shadow,
    /// The scratch server of a restore drill.
    Scratch,
}

impl ClusterUse {
    /// Why the server is started, for the notice; `None` when the user asked.
    fn reason(self) -> Option<&'static str> {
        match self {
            ClusterUse::Asked => None,
            ClusterUse::EmbeddedDefault => Some("because no database is configured"),
            ClusterUse::Shadow => Some("for the shadow databases where migrations are replayed"),
            ClusterUse::Scratch => Some("as the scratch server of the restore drill"),
        }
    }
}

impl Context<'_> {
    /// The project's local cluster under `.tend/`.
    pub fn local_cluster(&self) -> LocalCluster {
        local_cluster(&self.settings)
    }

    /// The configured database, or the local cluster's, started if need be (said on stderr).
    pub fn target(&self) -> Result<Target, CommandError> {
        resolve_target(&self.settings, self.out)
    }

    /// Starts the local cluster if needed and makes sure `dbname` exists on it.
    pub fn start_local_cluster(
        &self,
        dbname: &str,
        why: ClusterUse,
    ) -> Result<ConnInfo, CommandError> {
        start_local_cluster(&self.settings, self.out, dbname, why)
    }

    /// Opens a session.
    pub fn connect(&self, info: &ConnInfo) -> Result<Session, CommandError> {
        let options = self.settings.connect_options();
        Ok(block_on(tend_pg::connect(info, &options))?)
    }
}

/// The configured database, or the local cluster's (the embedded default), started on
/// demand and announced on stderr.
pub fn resolve_target(settings: &Settings, out: &Output) -> Result<Target, CommandError> {
    if let Some(url) = &settings.database.url {
        return Ok(Target {
            info: url.value.clone(),
            origin: TargetOrigin::Configured(url.source.clone()),
        });
    }
    let dbname = settings.dev.database.clone();
    let info = start_local_cluster(settings, out, &dbname, ClusterUse::EmbeddedDefault)?;
    Ok(Target {
        info,
        origin: TargetOrigin::LocalCluster,
    })
}

/// Starts the project's local cluster if needed and makes sure `dbname` exists on it.
pub fn start_local_cluster(
    settings: &Settings,
    out: &Output,
    dbname: &str,
    why: ClusterUse,
) -> Result<ConnInfo, CommandError> {
    let cluster = local_cluster(settings);
    let started = cluster.start(&mut |event| match event {
        ClusterEvent::Initializing { data_dir } => {
            out.notice(format!(
                "Creating a local PostgreSQL cluster in {}",
                data_dir.display()
            ));
        }
        ClusterEvent::Starting { port } => match why.reason() {
            None => out.notice(format!(
                "Starting the local PostgreSQL server on 127.0.0.1:{port}"
            )),
            Some(reason) => out.notice(format!(
                "Starting the project's local PostgreSQL server on 127.0.0.1:{port} {reason}; it keeps running after this command (`tend dev stop` stops it)"
            )),
        },
    })?;
    let info = cluster.conninfo(started.port, dbname);
    if why == ClusterUse::EmbeddedDefault {
        out.notice(format!(
            "No database configured (DATABASE_URL or database.url): using the local cluster, {}",
            info.redacted()
        ));
    }
    block_on(tend_core::local::ensure_database(
        &settings.database,
        &cluster.conninfo(started.port, "postgres"),
        dbname,
    ))?;
    Ok(info)
}

pub fn local_cluster(settings: &Settings) -> LocalCluster {
    LocalCluster::new(
        settings.project_root.join(".tend"),
        ClusterOptions {
            os_user: settings.dev.pg_user.clone(),
            tools: settings.tool_search(),
            ..ClusterOptions::default()
        },
    )
}

impl From<tend_core::local::EnsureDatabaseError> for CommandError {
    fn from(err: tend_core::local::EnsureDatabaseError) -> Self {
        match err {
            tend_core::local::EnsureDatabaseError::Connect(e) => e.into(),
            tend_core::local::EnsureDatabaseError::Create { source, .. } => source.into(),
        }
    }
}

/// Runs a future to completion on the shared runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}
