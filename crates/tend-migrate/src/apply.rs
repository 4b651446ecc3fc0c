//! Running migrations against a database: deploy (with resume), resolve, baseline, rollback,
//! reset and seed. Every operation that writes takes Prisma's advisory lock on a dedicated
//! connection first, so tend and `prisma migrate` exclude each other.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tend_pg::{
    AdvisoryLock, ConnInfo, ConnectError, ConnectOptions, LockError, PgError, quote_ident,
};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

use crate::history::History;
use crate::source::Migration;
use crate::splitter::{classify, has_no_transaction_directive, split};
use crate::status::{self, MigrationStatus, State, statements_digest};

/// The key Prisma Migrate locks (`pg_advisory_lock(72707369)`); sharing it keeps a tend deploy
/// and a Prisma deploy from running at once.
pub const LOCK_KEY: i64 = 72707369;

/// How a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The whole file in one transaction, with its history row.
    Transaction,
    /// Statement by statement, progress recorded after each, so a re-run resumes.
    Statements,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Transaction => "in one transaction",
            Mode::Statements => "statement by statement",
        })
    }
}

impl Mode {
    /// Statement by statement when the file asks for it, holds a statement that cannot run
    /// in a transaction, or manages transactions itself.
    pub fn of(sql: &str) -> Mode {
        if has_no_transaction_directive(sql) {
            return Mode::Statements;
        }
        let needs = split(sql).iter().any(|s| {
            let traits = classify(s.sql);
            traits.no_transaction || traits.transaction_control
        });
        if needs {
            Mode::Statements
        } else {
            Mode::Transaction
        }
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to wait for another deploy to finish.
    pub lock_wait: Duration,
    /// `lock_timeout` for the migrations' statements.
    pub lock_timeout: Option<Duration>,
    /// `statement_timeout` for the migrations' statements.
    pub statement_timeout: Option<Duration>,
    pub connect: ConnectOptions,
    /// The advisory lock taken; Prisma's by default, another for tend's internal history.
    pub lock_key: i64,
    /// Fired (by SIGINT, say) to stop: the statement running is cancelled on the server,
    /// nothing further starts, and the error says what was applied and what was not.
    pub interrupt: Option<CancellationToken>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            lock_wait: Duration::from_secs(300),
            lock_timeout: None,
            statement_timeout: None,
            connect: ConnectOptions::default(),
            lock_key: LOCK_KEY,
            interrupt: None,
        }
    }
}

impl RunOptions {
    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }
}

/// Progress, for a display.
#[derive(Debug, Clone)]
pub enum Event {
    /// The lock is ours after waiting this long.
    Locked {
        waited: Duration,
    },
    Applying {
        name: String,
        index: usize,
        total: usize,
        mode: Mode,
        resume_from: Option<usize>,
    },
    Applied {
        name: String,
        elapsed: Duration,
    },
}

/// What a deploy did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub applied: Vec<Applied>,
    pub already_applied: usize,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub name: String,
    pub mode: Mode,
    pub millis: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from_statement: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Lock(Box<LockError>),
    #[error("{context}: {}", db_message(source))]
    Database {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "{} changed after {} applied: {}; restore the applied version, or accept the edit with `tend migrate resolve --applied {}`",
        plural(names.len(), "a migration file", "migration files"),
        if names.len() == 1 { "it was" } else { "they were" },
        names.join(", "),
        names[0]
    )]
    Modified { names: Vec<String> },
    #[error(
        "the migration {name} failed earlier{}; {fix}",
        logs.as_ref().map(|l| format!(" ({})", first_line(l))).unwrap_or_default()
    )]
    PreviouslyFailed {
        name: String,
        logs: Option<String>,
        fix: String,
    },
    #[error(
        "the migration {name} changed on disk after an interrupted run completed {steps} of its statements, and tend resumes only the file it started; {fix}"
    )]
    ChangedSinceInterrupted {
        name: String,
        steps: i32,
        fix: String,
    },
    #[error(
        "the migration {name} failed at line {line} of {}: {message}; {state}",
        path.display()
    )]
    Failed {
        name: String,
        path: PathBuf,
        line: usize,
        message: String,
        code: Option<String>,
        /// What became of it, and what fixes it.
        state: Box<str>,
    },
    /// Stopped by [`RunOptions::interrupt`]; `state` says what became of the migration that
    /// was running, `applied` what this run applied before it.
    #[error(
        "interrupted: {state}{}",
        if applied.is_empty() { String::new() } else { format!(" (this run applied {} first: {})", applied.len(), applied.join(", ")) }
    )]
    Interrupted { applied: Vec<String>, state: String },
    #[error("the seed {} failed at line {line}: {message}; {kept}", path.display())]
    SeedFailed {
        path: PathBuf,
        line: usize,
        message: String,
        code: Option<String>,
        /// What of the seed stayed in the database.
        kept: String,
    },
    #[error("there is no migration named `{0}` on disk")]
    Unknown(String),
    #[error("{0}")]
    Refused(String),
}

impl From<LockError> for MigrateError {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Connect(e) => MigrateError::Connect(e),
            other => MigrateError::Lock(Box::new(other)),
        }
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn db_message(err: &tokio_postgres::Error) -> String {
    tend_pg::error_text(err)
}

fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
    let context = context.into();
    move |source| MigrateError::Database { context, source }
}

/// Prisma keeps its tables in the schema named by the URL's `schema` parameter (default
/// public). Put it first on the search_path, creating it as Prisma does.
async fn use_schema(client: &Client, info: &ConnInfo, create: bool) -> Result<(), MigrateError> {
    if let Some(schema) = info.get("schema").filter(|s| !s.is_empty()) {
        let schema = quote_ident(schema);
        let create = if create {
            format!("CREATE SCHEMA IF NOT EXISTS {schema}; ")
        } else {
            String::new()
        };
        client
            .batch_execute(&format!("{create}SET search_path TO {schema}"))
            .await
            .map_err(db("setting the schema from the URL"))?;
    }
    Ok(())
}

/// Reads where each migration stands, without taking the lock or writing anything.
pub async fn status(
    info: &ConnInfo,
    options: &RunOptions,
    mut history: History,
    migrations: &[Migration],
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let session = tend_pg::connect(info, &options.connect).await?;
    use_schema(&session, info, false).await?;
    history
        .pin_schema(&session)
        .await
        .map_err(db("reading the current schema"))?;
    let rows = history
        .load(&session)
        .await
        .map_err(db("reading the migration history"))?;
    Ok(status::compute(migrations, &rows))
}

/// A session holding the migration lock, its schema set and the history table ready.
pub struct Locked {
    lock: AdvisoryLock,
    pub history: History,
    info: ConnInfo,
    /// The backend running the migrations, to cancel its statement on an interrupt.
    pid: i32,
}

impl Locked {
    pub async fn acquire(
        info: &ConnInfo,
        options: &RunOptions,
        history: History,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Locked, MigrateError> {
        let started = Instant::now();
        let acquire =
            AdvisoryLock::acquire(info, &options.connect, options.lock_key, options.lock_wait);
        let lock = match &options.interrupt {
            None => acquire.await?,
            Some(token) => tokio::select! {
                lock = acquire => lock?,
                _ = token.cancelled() => return Err(MigrateError::Interrupted {
                    applied: Vec::new(),
                    state: "stopped while waiting for the migration lock; nothing was applied".into(),
                }),
            },
        };
        on_event(Event::Locked {
            waited: started.elapsed(),
        });
        use_schema(&lock.session().client, info, true).await?;
        let mut history = history;
        history
            .pin_schema(&lock.session().client)
            .await
            .map_err(db("reading the current schema"))?;
        history
            .ensure(&lock.session().client)
            .await
            .map_err(db("creating the migration history table"))?;
        let pid = lock
            .session()
            .client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(db("reading the session's process id"))?
            .get(0);
        Ok(Locked {
            lock,
            history,
            info: info.clone(),
            pid,
        })
    }

    /// Runs SQL on the locked session. When the run's interrupt fires meanwhile, the
    /// statement is cancelled on the server (`pg_cancel_backend` from a second session of
    /// the same role) and its answer awaited: the error is then `query_canceled`, or Ok when
    /// it had finished first. When the cancel cannot be sent, this waits for the statement.
    async fn execute(&self, options: &RunOptions, sql: &str) -> Result<(), tokio_postgres::Error> {
        execute_cancellable(self.client(), self.pid, &self.info, options, sql).await
    }

    pub fn client(&self) -> &Client {
        &self.lock.session().client
    }

    pub async fn statuses(
        &self,
        migrations: &[Migration],
    ) -> Result<Vec<MigrationStatus>, MigrateError> {
        let rows = self
            .history
            .load(self.client())
            .await
            .map_err(db("reading the migration history"))?;
        Ok(status::compute(migrations, &rows))
    }

    pub async fn release(self) -> Result<(), MigrateError> {
        Ok(self.lock.release().await?)
    }
}

/// Runs SQL on `client` (whose backend is `pid`). When the options' interrupt fires
/// meanwhile, the statement is cancelled on the server (`pg_cancel_backend` from a second
/// session of the same role) and its answer awaited: the error is then `query_canceled`, or
/// Ok when it had finished first. When the cancel cannot be sent, this waits for the statement.
async fn execute_cancellable(
    client: &Client,
    pid: i32,
    info: &ConnInfo,
    options: &RunOptions,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    let run = client.batch_execute(sql);
    let Some(token) = &options.interrupt else {
        return run.await;
    };
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => result,
        _ = token.cancelled() => {
            if let Ok(session) = tend_pg::connect(info, &options.connect).await {
                let _ = session
                    .query_one("SELECT pg_cancel_backend($1)", &[&pid])
                    .await;
            }
            run.await
        }
    }
}

/// The backend process id of a session, to cancel its statement on an interrupt.
async fn backend_pid(client: &Client) -> Result<i32, MigrateError> {
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(db("reading the session's process id"))?
        .get(0))
}

/// Applies pending migrations in order, up to and including `to`.
pub async fn deploy(
    info: &ConnInfo,
    options: &RunOptions,
    history: History,
    migrations: &[Migration],
    to: Option<&str>,
    dry_run: bool,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<DeployReport, MigrateError> {
    let plan = DeployPlan {
        to,
        dry_run,
        resume: None,
    };
    deploy_with(info, options, history, migrations, plan, on_event).await
}

/// What a deploy applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeployPlan<'a> {
    /// Up to and including this migration.
    pub to: Option<&'a str>,
    pub dry_run: bool,
    /// Take up this failed or interrupted migration again for the file as it is now: from
    /// the statement after those it completed, which must be unchanged in the file (a
    /// transactional one, which applied nothing, from its start).
    pub resume: Option<&'a str>,
}

/// [`deploy`], with a migration to resume.
pub async fn deploy_with(
    info: &ConnInfo,
    options: &RunOptions,
    history: History,
    migrations: &[Migration],
    deploy_plan: DeployPlan<'_>,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Result<DeployReport, MigrateError> {
    let DeployPlan {
        to,
        dry_run,
        resume,
    } = deploy_plan;
    if let Some(name) = resume
        && !migrations.iter().any(|m| m.name == name)
    {
        return Err(MigrateError::Unknown(name.to_string()));
    }
    let last = match to {
        Some(name) => migrations
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| MigrateError::Unknown(name.to_string()))?,
        None => migrations.len().saturating_sub(1),
    };
    let wanted = if migrations.is_empty() {
        &migrations[..0]
    } else {
        &migrations[..=last]
    };
    if dry_run {
        let statuses = status(info, options, history, migrations).await?;
        return plan(&statuses, wanted, resume).map(|(todo, done)| DeployReport {
            applied: todo
                .into_iter()
                .map(|(m, resume)| Applied {
                    name: m.name.clone(),
                    mode: Mode::of(&m.sql),
                    millis: 0,
                    resumed_from_statement: resume,
                })
                .collect(),
            already_applied: done,
            dry_run: true,
        });
    }
    let locked = Locked::acquire(info, options, history, on_event).await?;
    let statuses = locked.statuses(migrations).await?;
    let (todo, done) = plan(&statuses, wanted, resume)?;
    let total = todo.len();
    let mut applied = Vec::with_capacity(total);
    for (index, (migration, resume)) in todo.into_iter().enumerate() {
        if options.interrupted() {
            return Err(MigrateError::Interrupted {
                state: format!(
                    "stopped before {}; it and {} after it are still pending, and `tend migrate deploy` applies them",
                    migration.name,
                    total - index - 1
                ),
                applied: applied.into_iter().map(|a: Applied| a.name).collect(),
            });
        }
        let mode = if resume.is_some_and(|from| from > 0) {
            Mode::Statements
        } else {
            Mode::of(&migration.sql)
        };
        let status = statuses.iter().find(|s| s.name == migration.name);
        let mut resume = resume;
        if let Some(status) = status
            && status.state == State::Failed
            && resume.is_some()
        {
            // Taken up again for the file as it is now (plan checked its completed part).
            let id = status.attempt_id.as_deref().unwrap_or_default();
            let steps = resume.unwrap_or(0) as i32;
            if mode == Mode::Transaction {
                // It applied nothing: a fresh attempt replaces the failed one.
                locked
                    .history
                    .mark_rolled_back(locked.client(), &migration.name)
                    .await
                    .map_err(db("marking the failed attempt rolled back"))?;
                resume = None;
            } else {
                locked
                    .history
                    .take_up(
                        locked.client(),
                        id,
                        &migration.checksum,
                        steps,
                        &statements_digest(&migration.sql, steps),
                    )
                    .await
                    .map_err(db("taking up the interrupted migration"))?;
            }
        }
        on_event(Event::Applying {
            name: migration.name.clone(),
            index,
            total,
            mode,
            resume_from: resume,
        });
        let started = Instant::now();
        let attempt = statuses
            .iter()
            .find(|s| s.name == migration.name)
            .and_then(|s| s.attempt_id.clone());
        let outcome = match mode {
            Mode::Transaction => apply_in_transaction(&locked, options, migration).await,
            Mode::Statements => {
                apply_statements(&locked, options, migration, resume.zip(attempt)).await
            }
        };
        if let Err(err) = outcome {
            return Err(match err {
                MigrateError::Interrupted { state, .. } => MigrateError::Interrupted {
                    state,
                    applied: applied.into_iter().map(|a: Applied| a.name).collect(),
                },
                other => other,
            });
        }
        if leaks_session_state(&migration.sql) {
            // psql runs each file in a session of its own: settings a file changes must
            // not reach the next one.
            reset_session(locked.client(), info, options).await?;
        }
        let elapsed = started.elapsed();
        on_event(Event::Applied {
            name: migration.name.clone(),
            elapsed,
        });
        applied.push(Applied {
            name: migration.name.clone(),
            mode,
            millis: elapsed.as_millis() as u64,
            resumed_from_statement: resume,
        });
    }
    locked.release().await?;
    Ok(DeployReport {
        applied,
        already_applied: done,
        dry_run: false,
    })
}

/// Migrations to apply, each with the statement to resume from.
type Todo<'m> = Vec<(&'m Migration, Option<usize>)>;

/// Does the file change session state (`SET`, `set_config`, temporary tables) that would
/// outlive it on a shared session?
fn leaks_session_state(sql: &str) -> bool {
    split(sql).iter().any(|statement| {
        let words: Vec<String> = statement
            .sql
            .split_whitespace()
            .take(3)
            .map(|w| w.to_ascii_uppercase())
            .collect();
        let first = words.first().map(String::as_str);
        let second = words.get(1).map(String::as_str);
        (first == Some("SET") && !matches!(second, Some("LOCAL" | "TRANSACTION" | "CONSTRAINTS")))
            || first == Some("RESET")
            || (first == Some("CREATE") && matches!(second, Some("TEMP" | "TEMPORARY")))
            || statement.sql.to_ascii_lowercase().contains("set_config(")
    })
}

/// Puts the session back as it was after connecting.
async fn reset_session(
    client: &Client,
    info: &ConnInfo,
    options: &RunOptions,
) -> Result<(), MigrateError> {
    client
        .batch_execute("RESET ALL; DISCARD TEMP")
        .await
        .map_err(db("resetting the session between migrations"))?;
    if let Some(timeout) = options.connect.statement_timeout {
        client
            .batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis()))
            .await
            .map_err(db("resetting the session between migrations"))?;
    }
    use_schema(client, info, true).await
}

/// What to apply and how many are already applied. Refuses when a file was modified after
/// it was applied, or a migration failed, or an interrupted one changed on disk, unless it
/// is the one to `resume` and the statements it completed are unchanged.
fn plan<'m>(
    statuses: &[MigrationStatus],
    wanted: &'m [Migration],
    resume: Option<&str>,
) -> Result<(Todo<'m>, usize), MigrateError> {
    let modified: Vec<String> = statuses
        .iter()
        .filter(|s| s.state == State::Modified)
        .map(|s| s.name.clone())
        .collect();
    if !modified.is_empty() {
        return Err(MigrateError::Modified { names: modified });
    }
    let mut todo = Vec::new();
    let mut done = 0;
    for migration in wanted {
        let Some(status) = statuses.iter().find(|s| s.name == migration.name) else {
            todo.push((migration, None));
            continue;
        };
        match status.state {
            State::Applied => done += 1,
            State::Pending | State::RolledBack => todo.push((migration, None)),
            State::Failed if resume == Some(migration.name.as_str()) => {
                if !status.completed_unchanged {
                    return Err(MigrateError::ChangedSinceInterrupted {
                        name: migration.name.clone(),
                        steps: status.steps,
                        fix: status.fix.clone().unwrap_or_default(),
                    });
                }
                todo.push((migration, Some(status.steps.max(0) as usize)));
            }
            // An interrupted statement-by-statement run (killed, no error recorded) resumes,
            // when the file is still the one it started.
            State::Failed
                if status.interrupted && crate::status::resumes_by_statement(status, migration) =>
            {
                if status.file_changed {
                    return Err(MigrateError::ChangedSinceInterrupted {
                        name: migration.name.clone(),
                        steps: status.steps,
                        fix: status.fix.clone().unwrap_or_default(),
                    });
                }
                todo.push((migration, Some(status.steps.max(0) as usize)));
            }
            State::Failed => {
                return Err(MigrateError::PreviouslyFailed {
                    name: migration.name.clone(),
                    logs: status.logs.clone(),
                    fix: status.fix.clone().unwrap_or_default(),
                });
            }
            State::Modified | State::Missing => unreachable!("handled above"),
        }
    }
    Ok((todo, done))
}

/// The `SET` statements for the configured timeouts.
fn timeouts_sql(options: &RunOptions, local: bool) -> String {
    let scope = if local { "LOCAL " } else { "" };
    let mut sql = String::new();
    if let Some(t) = options.lock_timeout {
        sql.push_str(&format!("SET {scope}lock_timeout = {};\n", t.as_millis()));
    }
    if let Some(t) = options.statement_timeout {
        sql.push_str(&format!(
            "SET {scope}statement_timeout = {};\n",
            t.as_millis()
        ));
    }
    sql
}

async fn set_timeouts(
    client: &Client,
    options: &RunOptions,
    local: bool,
) -> Result<(), MigrateError> {
    let sql = timeouts_sql(options, local);
    if !sql.is_empty() {
        client
            .batch_execute(&sql)
            .await
            .map_err(db("setting the migration timeouts"))?;
    }
    Ok(())
}

/// The whole file and its history row in one transaction: a failure, or a kill, leaves the
/// database as it was. The failure is then recorded in a row of its own.
async fn apply_in_transaction(
    locked: &Locked,
    options: &RunOptions,
    migration: &Migration,
) -> Result<(), MigrateError> {
    let client = locked.client();
    let history = &locked.history;
    // One message, one round trip: the transaction, its history row, the file and the
    // row's completion. The newline and `;` after the file end a trailing comment or a
    // last statement without a semicolon.
    let id = History::new_id();
    let mut prefix = String::from("BEGIN;\n");
    prefix.push_str(&timeouts_sql(options, true));
    prefix.push_str(&history.start_sql(&id, &migration.name, &migration.checksum));
    prefix.push_str(";\n");
    let script = format!(
        "{prefix}{}\n;\n{};\nCOMMIT",
        migration.sql,
        history.finish_sql(&id, 1)
    );
    match locked.execute(options, &script).await {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = client.batch_execute("ROLLBACK").await;
            if options.interrupted() && err.code() == Some(&SqlState::QUERY_CANCELED) {
                // Cancelled on our request: not a failure of the file, so no failure row.
                return Err(MigrateError::Interrupted {
                    applied: Vec::new(),
                    state: format!(
                        "the statement running in {} was cancelled on the server and its transaction rolled back, so nothing of it is applied and it is still pending; `tend migrate deploy` applies it",
                        migration.name
                    ),
                });
            }
            if err.code() == Some(&SqlState::UNSAFE_NEW_ENUM_VALUE_USAGE) {
                // The file uses an enum value it adds, which only works statement by
                // statement, as psql runs it.
                return Box::pin(apply_statements(locked, options, migration, None)).await;
            }
            // The position counts characters of the whole message: take the prefix off.
            let pg = PgError::of(&err);
            let line = match pg.location_within(&migration.sql, prefix.chars().count()) {
                Some(at) => at.line,
                None => locate_failure(client, options, &migration.sql, &pg).await,
            };
            let failure = Failure::of(&pg);
            history
                .fail(
                    client,
                    None,
                    &migration.name,
                    &migration.checksum,
                    0,
                    &failure.logs(line, migration),
                )
                .await
                .map_err(db("recording the failure"))?;
            Err(MigrateError::Failed {
                name: migration.name.clone(),
                path: migration.path.clone(),
                line,
                message: failure.message,
                code: failure.code,
                state: format!(
                    "nothing of it was applied (it ran in one transaction); fix it, then mark it rolled back with `tend migrate resolve --rolled-back {name}` and deploy again (or `tend migrate deploy --resume {name}` does both)",
                    name = migration.name
                )
                .into(),
            })
        }
    }
}

/// Finds the failing statement's line by replaying the file statement by statement in a
/// transaction that is rolled back. Only on the failure path, for errors without a position.
async fn locate_failure(client: &Client, options: &RunOptions, sql: &str, err: &PgError) -> usize {
    let statements = split(sql);
    let first = statements.first().map(|s| s.line).unwrap_or(1);
    if client.batch_execute("BEGIN").await.is_err() {
        return first;
    }
    let _ = set_timeouts(client, options, true).await;
    let mut line = first;
    for statement in &statements {
        if client.batch_execute(statement.sql).await.is_err() {
            line = statement.line + err.lines_before_quoted_name(statement.sql);
            break;
        }
    }
    let _ = client.batch_execute("ROLLBACK").await;
    line
}

struct Failure {
    message: String,
    code: Option<String>,
}

impl Failure {
    /// The text kept in the history's `logs`, as a person reading the table needs it.
    fn logs(&self, line: usize, migration: &Migration) -> String {
        format!(
            "ERROR: {}{}\nat line {line} of {}",
            self.message,
            self.code
                .as_ref()
                .map(|c| format!(" (SQLSTATE {c})"))
                .unwrap_or_default(),
            portable_path(&migration.path).display()
        )
    }
}

/// The migration's path as the project sees it (`prisma/migrations/x/migration.sql`): the
/// history table is shared by every machine that deploys, so it keeps no absolute path of
/// one of them.
fn portable_path(path: &std::path::Path) -> PathBuf {
    let from_cwd = std::env::current_dir().ok().and_then(|cwd| {
        path.strip_prefix(cwd)
            .ok()
            .map(std::path::Path::to_path_buf)
    });
    from_cwd.unwrap_or_else(|| {
        // Outside the working directory: keep the layout's own part of the path.
        let parts: Vec<_> = path.components().collect();
        let keep = parts.len().min(3);
        parts[parts.len() - keep..].iter().collect()
    })
}

impl Failure {
    /// The server's message with its detail in parentheses, and its SQLSTATE.
    fn of(err: &PgError) -> Failure {
        Failure {
            message: match &err.detail {
                Some(detail) => format!("{} ({detail})", err.message),
                None => err.message.clone(),
            },
            code: err.code_str().map(str::to_string),
        }
    }
}

/// Statement by statement in autocommit (or in the file's own transactions), with progress
/// recorded after each, so a re-run after a crash resumes after the last one that completed.
async fn apply_statements(
    locked: &Locked,
    options: &RunOptions,
    migration: &Migration,
    resume: Option<(usize, String)>,
) -> Result<(), MigrateError> {
    let client = locked.client();
    let history = &locked.history;
    let statements = split(&migration.sql);
    let resuming = resume.is_some();
    let (id, from) = match resume {
        Some((from, id)) => (id, from),
        None => (
            history
                .start(client, &migration.name, &migration.checksum)
                .await
                .map_err(db("recording the migration's start"))?,
            0,
        ),
    };
    set_timeouts(client, options, false).await?;
    let manages_transactions = statements
        .iter()
        .any(|s| classify(s.sql).transaction_control);
    for (index, statement) in statements.iter().enumerate().skip(from) {
        if options.interrupted() {
            return Err(interrupted_between(locked, options, migration, &id).await);
        }
        let traits = classify(statement.sql);
        let mut skip = false;
        if let Some(index_name) = &traits.concurrent_index {
            // A failed or interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index
            // behind: drop it and build again. A valid one where a killed run stopped means
            // the build finished after the kill (the server finishes the statement before it
            // notices the client is gone).
            let valid = settle_concurrent_index(client, index_name).await?;
            skip = valid && resuming && index == from;
        }
        let done = index as i32 + 1;
        let digest = statements_digest(&migration.sql, done);
        // A statement that may run in a transaction goes in one message with its progress
        // update: an implicit transaction makes the pair atomic, so a kill never leaves a
        // statement done but not counted (which a re-run would repeat).
        let atomic_progress = !traits.no_transaction;
        let sent = if atomic_progress {
            format!(
                "{};\n{}",
                statement.sql,
                history.set_steps_sql(&id, done, &digest)
            )
        } else {
            statement.sql.to_string()
        };
        let result = if skip {
            Ok(())
        } else {
            locked.execute(options, &sent).await
        };
        if let Err(err) = result {
            if manages_transactions {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            // What is committed: a statement inside the file's own transaction block went
            // back with the block, and the count with it.
            let kept = history.steps_of(client, &id).await.unwrap_or(index as i32);
            if options.interrupted() && err.code() == Some(&SqlState::QUERY_CANCELED) {
                if let Some(index_name) = &traits.concurrent_index {
                    let _ = settle_concurrent_index(client, index_name).await;
                }
                reset_timeouts(client, options).await;
                return Err(MigrateError::Interrupted {
                    applied: Vec::new(),
                    state: format!(
                        "statement {} of {} was cancelled on the server; statements 1..{kept} are applied and recorded, and `tend migrate deploy` resumes from statement {}",
                        index + 1,
                        migration.name,
                        kept + 1
                    ),
                });
            }
            let pg = PgError::of(&err);
            let failure = Failure::of(&pg);
            let line = statement.line_of_error(&pg);
            let mut logs = failure.logs(line, migration);
            if kept > 0 {
                logs.push('\n');
                logs.push_str(&crate::history::progress_line(
                    kept,
                    &statements_digest(&migration.sql, kept),
                ));
            }
            let _ = history
                .fail(
                    client,
                    Some(&id),
                    &migration.name,
                    &migration.checksum,
                    kept,
                    &logs,
                )
                .await;
            reset_timeouts(client, options).await;
            return Err(MigrateError::Failed {
                name: migration.name.clone(),
                path: migration.path.clone(),
                line,
                message: failure.message,
                code: failure.code,
                state: if kept == 0 {
                    format!(
                        "none of its statements were applied; fix it, then `tend migrate deploy --resume {}` runs it again",
                        migration.name
                    )
                } else {
                    format!(
                        "the statements before it were applied (it runs statement by statement); fix that statement (or the data it needs), keeping statements 1..{kept} as they ran, then `tend migrate deploy --resume {}` goes on from statement {}",
                        migration.name,
                        kept + 1
                    )
                }
                .into(),
            });
        }
        if skip || !atomic_progress {
            history
                .set_steps(client, &id, done, &digest)
                .await
                .map_err(db("recording the migration's progress"))?;
        }
    }
    reset_timeouts(client, options).await;
    history
        .finish(client, &id, statements.len() as i32, &migration.checksum)
        .await
        .map_err(db("recording the migration's end"))?;
    Ok(())
}

/// The interrupt came between two statements: what is recorded is what ran.
async fn interrupted_between(
    locked: &Locked,
    options: &RunOptions,
    migration: &Migration,
    id: &str,
) -> MigrateError {
    reset_timeouts(locked.client(), options).await;
    let kept = locked
        .history
        .steps_of(locked.client(), id)
        .await
        .unwrap_or_default();
    MigrateError::Interrupted {
        applied: Vec::new(),
        state: format!(
            "{} stopped after statement {kept}, which is applied and recorded; `tend migrate deploy` resumes from statement {}",
            migration.name,
            kept + 1
        ),
    }
}

async fn reset_timeouts(client: &Client, options: &RunOptions) {
    if options.lock_timeout.is_some() || options.statement_timeout.is_some() {
        let _ = client
            .batch_execute("RESET lock_timeout; RESET statement_timeout")
            .await;
    }
}

/// Returns true when a valid index of that name exists; drops an invalid one.
async fn settle_concurrent_index(client: &Client, name: &str) -> Result<bool, MigrateError> {
    let quoted = name
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".");
    let row = client
        .query_opt(
            "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)",
            &[&quoted],
        )
        .await
        .map_err(db("checking an interrupted index build"))?;
    match row.map(|r| r.get::<_, bool>(0)) {
        Some(true) => Ok(true),
        Some(false) => {
            client
                .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {quoted}"))
                .await
                .map_err(db(format!("dropping the invalid index {name}")))?;
            Ok(false)
        }
        None => Ok(false),
    }
}

/// `resolve --applied NAME`: records a migration as applied without running it (a failed one
/// that was fixed by hand, or one never run), or accepts an edited file's new checksum.
/// `resolve --rolled-back NAME`: marks a failed attempt rolled back, so deploy retries it.
pub async fn resolve(
    locked: &Locked,
    migrations: &[Migration],
    name: &str,
    applied: bool,
) -> Result<String, MigrateError> {
    let migration = migrations
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| MigrateError::Unknown(name.to_string()))?;
    let statuses = locked.statuses(migrations).await?;
    let state = statuses
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.state.clone())
        .unwrap_or(State::Pending);
    let client = locked.client();
    let history = &locked.history;
    let err = |e| MigrateError::Database {
        context: format!("resolving {name}"),
        source: e,
    };
    match (applied, state) {
        (true, State::Applied) => Err(MigrateError::Refused(format!(
            "{name} is already applied and unchanged; nothing to resolve"
        ))),
        (true, State::Modified) => {
            history
                .accept_checksum(client, name, &migration.checksum)
                .await
                .map_err(err)?;
            Ok(format!("accepted the edited {name} as applied"))
        }
        (true, State::Failed) => {
            history.mark_rolled_back(client, name).await.map_err(err)?;
            history
                .record_applied(client, name, &migration.checksum)
                .await
                .map_err(err)?;
            Ok(format!("recorded the failed {name} as applied"))
        }
        (true, _) => {
            history
                .record_applied(client, name, &migration.checksum)
                .await
                .map_err(err)?;
            Ok(format!("recorded {name} as applied without running it"))
        }
        (false, State::Failed) => {
            history.mark_rolled_back(client, name).await.map_err(err)?;
            Ok(format!(
                "marked {name} rolled back; the next deploy applies it again"
            ))
        }
        (false, state) => Err(MigrateError::Refused(format!(
            "{name} is {} and not failed; only a failed migration can be marked rolled back (to undo an applied one, use `tend migrate rollback`)",
            state_word(&state)
        ))),
    }
}

pub fn state_word(state: &State) -> &'static str {
    match state {
        State::Applied => "applied",
        State::Pending => "pending",
        State::RolledBack => "rolled back",
        State::Failed => "failed",
        State::Modified => "modified on disk since applied",
        State::Missing => "applied but missing from disk",
    }
}

/// Records every migration up to `to` (all by default) as applied without running them, to
/// adopt a database whose schema already matches. Returns the names recorded.
pub async fn baseline(
    locked: &Locked,
    migrations: &[Migration],
    to: Option<&str>,
) -> Result<Vec<String>, MigrateError> {
    let last = match to {
        Some(name) => migrations
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| MigrateError::Unknown(name.to_string()))?,
        None => migrations.len().saturating_sub(1),
    };
    let statuses = locked.statuses(migrations).await?;
    let mut recorded = Vec::new();
    for migration in migrations.iter().take(last + 1) {
        let state = statuses
            .iter()
            .find(|s| s.name == migration.name)
            .map(|s| s.state.clone());
        if matches!(state, Some(State::Applied | State::Modified)) {
            continue;
        }
        if state == Some(State::Failed) {
            return Err(MigrateError::PreviouslyFailed {
                name: migration.name.clone(),
                logs: None,
                fix: "resolve it first (`tend migrate status` says how), then baseline again"
                    .to_string(),
            });
        }
        locked
            .history
            .record_applied(locked.client(), &migration.name, &migration.checksum)
            .await
            .map_err(db(format!("recording {} as applied", migration.name)))?;
        recorded.push(migration.name.clone());
    }
    Ok(recorded)
}

/// The migrations a rollback undoes, newest first: `steps` of them (default 1), or all
/// applied after `to`. Refuses when one has no down script.
pub fn rollback_plan<'m>(
    statuses: &[MigrationStatus],
    migrations: &'m [Migration],
    steps: Option<usize>,
    to: Option<&str>,
    format: crate::source::Format,
) -> Result<Vec<&'m Migration>, MigrateError> {
    let applied: Vec<&Migration> = migrations
        .iter()
        .filter(|m| {
            statuses
                .iter()
                .any(|s| s.name == m.name && s.state == State::Applied)
        })
        .collect();
    let chosen: Vec<&Migration> = match (steps, to) {
        (_, Some(name)) => {
            let keep = applied.iter().position(|m| m.name == name).ok_or_else(|| {
                MigrateError::Refused(format!(
                    "`{name}` is not an applied migration; `tend migrate status` lists them"
                ))
            })?;
            applied[keep + 1..].iter().rev().copied().collect()
        }
        (steps, None) => applied
            .iter()
            .rev()
            .take(steps.unwrap_or(1))
            .copied()
            .collect(),
    };
    let missing: Vec<&str> = chosen
        .iter()
        .filter(|m| m.down.is_none())
        .map(|m| m.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(MigrateError::Refused(format!(
            "no down script for {}; write {} beside the migration, then roll back again (nothing was rolled back)",
            missing.join(", "),
            match format {
                crate::source::Format::Prisma => "down.sql",
                crate::source::Format::Tend => "NAME.down.sql",
            }
        )));
    }
    Ok(chosen)
}

/// Undoes applied migrations, newest first, through their down scripts. Each down script
/// and its history update run in one transaction.
pub async fn rollback(
    locked: &Locked,
    migrations: &[Migration],
    steps: Option<usize>,
    to: Option<&str>,
    dry_run: bool,
) -> Result<Vec<String>, MigrateError> {
    let statuses = locked.statuses(migrations).await?;
    let chosen = rollback_plan(&statuses, migrations, steps, to, locked.history.format)?;
    let names: Vec<String> = chosen.iter().map(|m| m.name.clone()).collect();
    if dry_run {
        return Ok(names);
    }
    let client = locked.client();
    for migration in chosen {
        let down = migration.down.as_ref().expect("checked above");
        client
            .batch_execute("BEGIN")
            .await
            .map_err(db("starting a transaction"))?;
        if let Err(err) = client.batch_execute(&down.sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            let pg = PgError::of(&err);
            let line = pg.location(&down.sql).map_or(1, |at| at.line);
            let failure = Failure::of(&pg);
            return Err(MigrateError::Failed {
                name: migration.name.clone(),
                path: down.path.clone(),
                line,
                message: failure.message,
                code: failure.code,
                state: "its down script was rolled back and the migration stays applied".into(),
            });
        }
        locked
            .history
            .mark_applied_rolled_back(client, &migration.name)
            .await
            .map_err(db("recording the rollback"))?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(db("committing the rollback"))?;
    }
    Ok(names)
}

/// Schemas `reset` drops: every schema but PostgreSQL's own and tend's operational `tend`.
pub async fn application_schemas(client: &Client) -> Result<Vec<String>, MigrateError> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace
              WHERE nspname NOT IN ('information_schema', 'tend')
                AND nspname NOT LIKE 'pg\\_%'
              ORDER BY nspname",
            &[],
        )
        .await
        .map_err(db("listing schemas"))?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Drops the application's schemas and recreates an empty `public` (as PostgreSQL 15
/// creates it), under the migration lock.
pub async fn drop_schemas(locked: &Locked, schemas: &[String]) -> Result<(), MigrateError> {
    let client = locked.client();
    let mut sql = String::from("BEGIN;");
    for schema in schemas {
        sql.push_str(&format!("DROP SCHEMA {} CASCADE;", quote_ident(schema)));
    }
    sql.push_str(
        "CREATE SCHEMA IF NOT EXISTS public;
         GRANT USAGE ON SCHEMA public TO PUBLIC;
         COMMENT ON SCHEMA public IS 'standard public schema';",
    );
    // The schema the URL names (Prisma's `?schema=`), which holds the history table.
    if let Some(schema) = locked.history.schema() {
        sql.push_str(&format!(
            "CREATE SCHEMA IF NOT EXISTS {};",
            quote_ident(schema)
        ));
    }
    sql.push_str("COMMIT;");
    if let Err(err) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(MigrateError::Database {
            context: "dropping the application's schemas".to_string(),
            source: err,
        });
    }
    // The history table went with its schema: make it again for the deploy that follows.
    locked
        .history
        .ensure(client)
        .await
        .map_err(db("creating the migration history table"))?;
    Ok(())
}

/// How a seed ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeedMode {
    /// The whole file in one transaction: all of it or nothing.
    Transaction,
    /// Statement by statement, as `psql -f` runs it, because the file has its own
    /// `BEGIN`/`COMMIT` (or a statement that cannot run in a transaction).
    Statements,
}

/// Runs a seed script: in one transaction, unless it manages transactions itself (or holds
/// a statement that cannot run in one); then statement by statement, as psql runs it, so
/// its own COMMIT keeps what it commits and an error says exactly what stayed. The
/// options' interrupt cancels the running statement on the server and stops it there; the
/// error says what stayed.
pub async fn seed(
    info: &ConnInfo,
    options: &RunOptions,
    path: &std::path::Path,
    sql: &str,
) -> Result<SeedMode, MigrateError> {
    if Mode::of(sql) == Mode::Statements {
        seed_statements(info, options, path, sql).await?;
        return Ok(SeedMode::Statements);
    }
    seed_in_transaction(info, options, path, sql).await?;
    Ok(SeedMode::Transaction)
}

async fn seed_statements(
    info: &ConnInfo,
    options: &RunOptions,
    path: &std::path::Path,
    sql: &str,
) -> Result<(), MigrateError> {
    let session = tend_pg::connect(info, &options.connect).await?;
    use_schema(&session, info, true).await?;
    let pid = match options.interrupt {
        Some(_) => backend_pid(&session).await?,
        None => 0,
    };
    let statements = split(sql);
    let mut in_block = false;
    // Statements committed so far, and the line of the last one.
    let mut committed = 0;
    let mut committed_line = 0;
    // What stayed when the run stops now (the open block, if any, rolled back).
    let stayed = |committed: usize, committed_line: usize, in_block: bool| {
        if committed == 0 {
            "nothing of it stayed".to_string()
        } else {
            format!(
                "its first {committed} statements (through line {committed_line}) stayed committed{}",
                if in_block {
                    " and the transaction it had open was rolled back"
                } else {
                    ""
                }
            )
        }
    };
    for (index, statement) in statements.iter().enumerate() {
        // Stopped between two statements: what committed stays, an open block is undone.
        if options.interrupted() {
            if in_block {
                let _ = session.batch_execute("ROLLBACK").await;
            }
            return Err(MigrateError::Interrupted {
                applied: Vec::new(),
                state: format!(
                    "the seed {} stopped before its line {}; {}",
                    path.display(),
                    statement.line,
                    stayed(committed, committed_line, in_block)
                ),
            });
        }
        let run = execute_cancellable(&session, pid, info, options, statement.sql).await;
        if let Err(err) = &run
            && options.interrupted()
            && err.code() == Some(&SqlState::QUERY_CANCELED)
        {
            if in_block {
                let _ = session.batch_execute("ROLLBACK").await;
            }
            return Err(MigrateError::Interrupted {
                applied: Vec::new(),
                state: format!(
                    "the seed {} was stopped in its statement at line {}; {}",
                    path.display(),
                    statement.line,
                    stayed(committed, committed_line, in_block)
                ),
            });
        }
        if let Err(err) = run {
            if in_block {
                let _ = session.batch_execute("ROLLBACK").await;
            }
            let pg = PgError::of(&err);
            let line = statement.line_of_error(&pg);
            let failure = Failure::of(&pg);
            let kept = if committed == 0 {
                "nothing of it stayed (it runs statement by statement, as psql does, since it manages its own transactions)".to_string()
            } else {
                format!(
                    "it runs statement by statement, as psql does, since it manages its own transactions, so its first {committed} statements (through line {committed_line}) stayed committed{} and nothing after them ran",
                    if in_block {
                        "; the open transaction the failing statement was in was rolled back"
                    } else {
                        ""
                    }
                )
            };
            return Err(MigrateError::SeedFailed {
                path: path.to_path_buf(),
                line,
                message: failure.message,
                code: failure.code,
                kept,
            });
        }
        if classify(statement.sql).transaction_control {
            in_block = opens_transaction(statement.sql);
        }
        if !in_block {
            committed = index + 1;
            committed_line = statement.line + statement.sql.trim_end().matches('\n').count();
        }
    }
    if in_block {
        // psql commits nothing left open at the end of a file: neither do we.
        let _ = session.batch_execute("ROLLBACK").await;
    }
    Ok(())
}

/// `BEGIN` or `START TRANSACTION` (as opposed to COMMIT, END, ROLLBACK, ABORT).
fn opens_transaction(statement: &str) -> bool {
    let first = statement
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .and_then(|l| l.split(|c: char| !c.is_ascii_alphabetic()).next())
        .unwrap_or_default()
        .to_ascii_lowercase();
    first == "begin" || first == "start"
}

/// Runs a seed script in one transaction.
async fn seed_in_transaction(
    info: &ConnInfo,
    options: &RunOptions,
    path: &std::path::Path,
    sql: &str,
) -> Result<(), MigrateError> {
    let session = tend_pg::connect(info, &options.connect).await?;
    use_schema(&session, info, true).await?;
    if options.interrupted() {
        return Err(MigrateError::Interrupted {
            applied: Vec::new(),
            state: format!(
                "the seed {} did not start; nothing of it was applied",
                path.display()
            ),
        });
    }
    let pid = match options.interrupt {
        Some(_) => backend_pid(&session).await?,
        None => 0,
    };
    session
        .batch_execute("BEGIN")
        .await
        .map_err(db("starting a transaction"))?;
    if let Err(err) = execute_cancellable(&session, pid, info, options, sql).await {
        let _ = session.batch_execute("ROLLBACK").await;
        if options.interrupted() && err.code() == Some(&SqlState::QUERY_CANCELED) {
            return Err(MigrateError::Interrupted {
                applied: Vec::new(),
                state: format!(
                    "the seed {} was stopped; nothing of it was applied (it ran in one transaction)",
                    path.display()
                ),
            });
        }
        let pg = PgError::of(&err);
        let line = match pg.location(sql) {
            Some(at) => at.line,
            None => locate_failure(&session, options, sql, &pg).await,
        };
        let failure = Failure::of(&pg);
        return Err(MigrateError::SeedFailed {
            path: path.to_path_buf(),
            line,
            message: failure.message,
            code: failure.code,
            kept: "nothing of it was applied (it ran in one transaction)".to_string(),
        });
    }
    session
        .batch_execute("COMMIT")
        .await
        .map_err(db("committing the seed"))?;
    Ok(())
}
