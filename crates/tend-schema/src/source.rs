//! Either side of a diff: where a [`Model`] comes from. A live database is read directly; a
//! migration history or desired-state SQL is replayed in a shadow database first; `empty`
//! is nothing at all.
//!
//! [`parse`] turns the text a user writes (`--from`, `--to`, config) into a source.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use tend_migrate::Format;
use tend_pg::{ConnInfo, ConnInfoError, ConnectOptions};

use crate::SchemaError;
use crate::model::Model;
use crate::shadow::{ShadowDb, Shadows, SqlFile};

/// The forms [`parse`] accepts, for messages.
pub const FORMS: &str = "`empty`, `migrations:DIR`, `sql:PATH` (a file or a directory of .sql files) or a database URL (postgresql://... or key=value)";

/// A source that cannot be used. Each display says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{given}` is not a schema source; use {FORMS}")]
    Unknown {
        /// The input, with any password masked.
        given: String,
    },
    #[error("`{form}` needs a path after the colon, for example `{form}{example}`")]
    NoPath {
        form: &'static str,
        example: &'static str,
    },
    #[error("{} does not exist; check the path in `{form}{}`", path.display(), path.display())]
    Missing { form: &'static str, path: PathBuf },
    #[error("the directory {} holds no .sql files; add one, or point `sql:` at a file", .0.display())]
    EmptySqlDir(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 text; save it as UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error(transparent)]
    Migrations(#[from] tend_migrate::source::SourceError),
    #[error(transparent)]
    ConnInfo(#[from] ConnInfoError),
    #[error(
        "{0} is replayed in a shadow database, and none is configured; set SHADOW_DATABASE_URL, or let tend use the local development cluster"
    )]
    NeedsShadow(String),
}

/// One side of a diff.
///
/// A source knows how to produce a [`Model`], using a shadow database when it has to replay
/// something. New kinds of desired state plug in here: Prisma's `schema.prisma` can become
/// one more implementation (rendered to SQL by `prisma migrate diff --script`, then applied
/// in a shadow database like [`SqlSource`]).
pub trait Source: Send + Sync {
    /// What this source is, for people: never a password.
    fn describe(&self) -> String;
    /// Whether [`Source::load`] needs shadow databases.
    fn needs_shadow(&self) -> bool;
    /// Reads the model. `shadows` must be given when [`Source::needs_shadow`] says so.
    fn load<'a>(
        &'a self,
        shadows: Option<&'a Shadows>,
    ) -> BoxFuture<'a, Result<Model, SchemaError>>;
}

/// A live database, introspected as it is.
#[derive(Debug, Clone)]
pub struct DatabaseSource {
    pub info: ConnInfo,
    pub connect: ConnectOptions,
}

impl DatabaseSource {
    pub fn new(info: ConnInfo) -> DatabaseSource {
        DatabaseSource {
            info,
            connect: ConnectOptions::default(),
        }
    }
}

impl Source for DatabaseSource {
    fn describe(&self) -> String {
        format!("the database {}", self.info.redacted())
    }

    fn needs_shadow(&self) -> bool {
        false
    }

    fn load<'a>(
        &'a self,
        _shadows: Option<&'a Shadows>,
    ) -> BoxFuture<'a, Result<Model, SchemaError>> {
        // A task of its own: a diff reads two databases at once, and turning one's rows
        // into a model (a second of work at 20,000 tables) then runs beside the other's
        // instead of sharing its thread.
        let (info, connect) = (self.info.clone(), self.connect.clone());
        Box::pin(async move {
            let mut read = AbortOnDrop(tokio::spawn(async move {
                let session = tend_pg::connect(&info, &connect).await?;
                crate::introspect::introspect(&session.client).await
            }));
            match (&mut read.0).await {
                Ok(model) => model,
                Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
                Err(_) => Err(SchemaError::Stopped),
            }
        })
    }
}

/// A spawned task aborted when its handle is dropped: a load given up (a diff stopped)
/// leaves no read running behind it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A migration history on disk, deployed in a shadow database.
#[derive(Debug, Clone)]
pub struct MigrationsSource {
    pub dir: PathBuf,
    pub format: Format,
}

impl Source for MigrationsSource {
    fn describe(&self) -> String {
        let layout = match self.format {
            Format::Prisma => "Prisma",
            Format::Tend => "tend",
        };
        format!("the migrations in {} ({layout} layout)", self.dir.display())
    }

    fn needs_shadow(&self) -> bool {
        true
    }

    fn load<'a>(
        &'a self,
        shadows: Option<&'a Shadows>,
    ) -> BoxFuture<'a, Result<Model, SchemaError>> {
        Box::pin(async move {
            let shadows = shadows.ok_or_else(|| SourceError::NeedsShadow(self.describe()))?;
            let migrations =
                tend_migrate::source::load(&self.dir, self.format).map_err(SourceError::from)?;
            let shadow = shadows.replay_migrations(&migrations, self.format).await?;
            introspect_and_release(shadow).await
        })
    }
}

/// Desired-state SQL: one file, or every `*.sql` file of a directory in name order.
#[derive(Debug, Clone)]
pub struct SqlSource {
    pub path: PathBuf,
}

impl SqlSource {
    /// The files, read, in the order they run.
    pub fn files(&self) -> Result<Vec<SqlFile>, SourceError> {
        if !self.path.exists() {
            return Err(SourceError::Missing {
                form: "sql:",
                path: self.path.clone(),
            });
        }
        let paths = if self.path.is_dir() {
            let paths = sql_files_in(&self.path)?;
            if paths.is_empty() {
                return Err(SourceError::EmptySqlDir(self.path.clone()));
            }
            paths
        } else {
            vec![self.path.clone()]
        };
        paths
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).map_err(|source| SourceError::Read {
                    path: path.clone(),
                    source,
                })?;
                let sql =
                    String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8(path.clone()))?;
                Ok(SqlFile { path, sql })
            })
            .collect()
    }
}

impl Source for SqlSource {
    fn describe(&self) -> String {
        format!("the SQL in {}", self.path.display())
    }

    fn needs_shadow(&self) -> bool {
        true
    }

    fn load<'a>(
        &'a self,
        shadows: Option<&'a Shadows>,
    ) -> BoxFuture<'a, Result<Model, SchemaError>> {
        Box::pin(async move {
            let shadows = shadows.ok_or_else(|| SourceError::NeedsShadow(self.describe()))?;
            let files = self.files()?;
            let shadow = shadows.apply_sql(&files).await?;
            introspect_and_release(shadow).await
        })
    }
}

/// Nothing: every object is to be created (as `from`) or dropped (as `to`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptySource;

impl Source for EmptySource {
    fn describe(&self) -> String {
        "an empty database".to_string()
    }

    fn needs_shadow(&self) -> bool {
        false
    }

    fn load<'a>(
        &'a self,
        _shadows: Option<&'a Shadows>,
    ) -> BoxFuture<'a, Result<Model, SchemaError>> {
        Box::pin(async { Ok(Model::default()) })
    }
}

/// Reads a shadow database's model and drops the shadow, whether the read worked or not.
/// The model of a shadow database, which is then released (dropped or unlocked) whatever
/// happened.
pub async fn introspect_and_release(shadow: ShadowDb) -> Result<Model, SchemaError> {
    let model = async {
        let session = shadow.connect().await?;
        crate::introspect::introspect(&session.client).await
    }
    .await;
    let released = shadow.release().await;
    let model = model?;
    released?;
    Ok(model)
}

/// Reads a source from its text form: `empty`, `migrations:DIR`, `sql:PATH`, or a database
/// URL (`postgres://`, `postgresql://`, or libpq's `key=value` list). The history layout of
/// `migrations:` is read from the directory (Prisma's subfolders with `migration.sql`, or
/// tend's flat `.sql` files), `default_format` when it cannot tell.
pub fn parse(text: &str, default_format: Format) -> Result<Box<dyn Source>, SourceError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("empty") {
        return Ok(Box::new(EmptySource));
    }
    if let Some(dir) = text.strip_prefix("migrations:") {
        let dir = existing_path("migrations:", "prisma/migrations", dir)?;
        let format = detect_format(&dir).unwrap_or(default_format);
        return Ok(Box::new(MigrationsSource { dir, format }));
    }
    if let Some(path) = text.strip_prefix("sql:") {
        let path = existing_path("sql:", "schema.sql", path)?;
        if path.is_dir() && sql_files_in(&path)?.is_empty() {
            return Err(SourceError::EmptySqlDir(path));
        }
        return Ok(Box::new(SqlSource { path }));
    }
    let scheme = text.split_once("://").map(|(scheme, _)| scheme);
    if matches!(scheme, Some("postgres" | "postgresql")) {
        return Ok(Box::new(DatabaseSource::new(ConnInfo::parse(text)?)));
    }
    if scheme.is_none() && is_key_value(text) {
        return Ok(Box::new(DatabaseSource::new(ConnInfo::parse(text)?)));
    }
    Err(SourceError::Unknown {
        given: tend_pg::redact_text(text),
    })
}

/// Looks like libpq's `key=value` list: every word is a known-looking assignment.
fn is_key_value(text: &str) -> bool {
    text.split_whitespace().next().is_some_and(|first| {
        first.split_once('=').is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

fn existing_path(
    form: &'static str,
    example: &'static str,
    text: &str,
) -> Result<PathBuf, SourceError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SourceError::NoPath { form, example });
    }
    let path = PathBuf::from(text);
    if !path.exists() {
        return Err(SourceError::Missing { form, path });
    }
    Ok(path)
}

/// The history layout of a directory: Prisma's when it has subfolders holding
/// `migration.sql`, tend's when it has `.sql` files, unknown when it has neither or both.
pub fn detect_format(dir: &Path) -> Option<Format> {
    let entries = std::fs::read_dir(dir).ok()?;
    let (mut prisma, mut tend) = (false, false);
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path.join("migration.sql").is_file() {
            prisma = true;
        } else if path.is_file() && path.extension().is_some_and(|e| e == "sql") {
            tend = true;
        }
    }
    match (prisma, tend) {
        (true, false) => Some(Format::Prisma),
        (false, true) => Some(Format::Tend),
        _ => None,
    }
}

/// The `*.sql` files directly in `dir`, by name.
fn sql_files_in(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let read_error = |source| SourceError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "sql") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
