//! The one error type of the binary: a kind that decides the exit code, a one-sentence
//! message, and hints. Library errors convert into it through `From`, which is where each
//! failure is given its kind.

use std::fmt;

/// Exit codes, documented in docs/cli.md.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The command ran and reports a problem (doctor found one; the cluster is not running).
    pub const FAILURE: i32 = 1;
    /// The command line is wrong (clap's own code).
    pub const USAGE: i32 = 2;
    /// The configuration (tend.toml, environment, URL) is invalid.
    pub const CONFIG: i32 = 3;
    /// The database cannot be reached or refused the connection.
    pub const CONNECTION: i32 = 4;
    /// A PostgreSQL program is missing or unsuitable.
    pub const TOOL: i32 = 5;
    /// A destructive action was not confirmed.
    pub const ABORTED: i32 = 6;
    /// Stopped by SIGINT or SIGTERM (the shell's 128 + SIGINT).
    pub const INTERRUPTED: i32 = 130;
    /// A bug in tend (a panic; Rust's own code for it is 101).
    #[allow(dead_code)]
    pub const INTERNAL: i32 = 101;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Failure,
    Config,
    Connection,
    Tool,
    Aborted,
    Interrupted,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Failure => exit::FAILURE,
            ErrorKind::Config => exit::CONFIG,
            ErrorKind::Connection => exit::CONNECTION,
            ErrorKind::Tool => exit::TOOL,
            ErrorKind::Aborted => exit::ABORTED,
            ErrorKind::Interrupted => exit::INTERRUPTED,
        }
    }
}

#[derive(Debug)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub hints: Vec<String>,
    /// The underlying chain, shown with -v.
    pub detail: Option<String>,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CommandError {
        CommandError {
            kind,
            message: message.into(),
            hints: Vec::new(),
            detail: None,
        }
    }

    pub fn failure(message: impl Into<String>) -> CommandError {
        CommandError::new(ErrorKind::Failure, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> CommandError {
        self.hints.push(hint.into());
        self
    }

    /// Marks that the command already reported the problem (e.g. doctor's findings), so
    /// main only sets the exit code.
    pub fn silent(kind: ErrorKind) -> CommandError {
        CommandError::new(kind, String::new())
    }

    fn from_error(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> CommandError {
        let mut chain = Vec::new();
        let mut source = err.source();
        while let Some(cause) = source {
            chain.push(error_text(cause));
            source = cause.source();
        }
        CommandError {
            kind,
            message: error_text(err),
            hints: Vec::new(),
            detail: (!chain.is_empty()).then(|| chain.join("\ncaused by: ")),
        }
    }
}

/// An error for people: PostgreSQL's message and SQLSTATE for a driver error (whose own
/// display is the bare "db error"), the error's display otherwise.
fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    match err.downcast_ref::<tokio_postgres::Error>() {
        Some(pg) => tend_pg::error_text(pg),
        None => err.to_string(),
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::settings::ConfigError> for CommandError {
    fn from(err: crate::settings::ConfigError) -> Self {
        CommandError::from_error(ErrorKind::Config, &err)
    }
}

impl From<tend_pg::ConnectError> for CommandError {
    fn from(err: tend_pg::ConnectError) -> Self {
        let kind = match err {
            tend_pg::ConnectError::BadSettings { .. } | tend_pg::ConnectError::TlsSetup { .. } => {
                ErrorKind::Config
            }
            _ => ErrorKind::Connection,
        };
        CommandError::from_error(kind, &err)
    }
}

impl From<tend_pg::PoolError> for CommandError {
    fn from(err: tend_pg::PoolError) -> Self {
        match err {
            tend_pg::PoolError::Connect(e) => e.into(),
            other => CommandError::from_error(ErrorKind::Connection, &other),
        }
    }
}

impl From<tend_core::checks::CheckError> for CommandError {
    fn from(err: tend_core::checks::CheckError) -> Self {
        match err {
            tend_core::checks::CheckError::Connect(e) => e.into(),
            tend_core::checks::CheckError::Run(e) => e.into(),
        }
    }
}

impl From<tend_pg::ConnInfoError> for CommandError {
    fn from(err: tend_pg::ConnInfoError) -> Self {
        CommandError::from_error(ErrorKind::Config, &err)
    }
}

impl From<tend_pg::ToolError> for CommandError {
    fn from(err: tend_pg::ToolError) -> Self {
        CommandError::from_error(ErrorKind::Tool, &err)
    }
}

impl From<tend_pg::cluster::ClusterError> for CommandError {
    fn from(err: tend_pg::cluster::ClusterError) -> Self {
        match err {
            tend_pg::cluster::ClusterError::Tool(tool) => tool.into(),
            other => {
                let kind = match other {
                    tend_pg::cluster::ClusterError::NoServerUser { .. } => ErrorKind::Config,
                    _ => ErrorKind::Failure,
                };
                CommandError::from_error(kind, &other)
            }
        }
    }
}

impl From<tokio_postgres::Error> for CommandError {
    fn from(err: tokio_postgres::Error) -> Self {
        let pg = tend_pg::PgError::of(&err);
        if !pg.from_server() {
            return CommandError::from_error(ErrorKind::Connection, &err);
        }
        let mut e = CommandError::failure(format!("PostgreSQL reported: {pg}"));
        e.hints.extend(pg.hint);
        e
    }
}

impl From<std::io::Error> for CommandError {
    fn from(err: std::io::Error) -> Self {
        CommandError::from_error(ErrorKind::Failure, &err)
    }
}

/// What `--json` prints on stdout for an error, `{"error": {...}}`, so a script reads the
/// failure from the same stream as a result. `K` is an `ErrorKind`, or `"usage"` for a
/// command line clap refused.
#[derive(Debug, serde::Serialize)]
pub struct ErrorDocument<'a, K: serde::Serialize> {
    pub error: ErrorBody<'a, K>,
}

/// The error itself: its kind, the exit code that kind gives, the message and the hints.
#[derive(Debug, serde::Serialize)]
pub struct ErrorBody<'a, K: serde::Serialize> {
    pub kind: K,
    pub exit_code: i32,
    pub message: &'a str,
    pub hints: &'a [String],
}
