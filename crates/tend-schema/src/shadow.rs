//! Shadow databases: throwaway databases where a migration history or desired-state SQL is
//! replayed so that the result can be introspected and compared.
//!
//! Where they live is a [`ShadowHost`]: a server where tend may `CREATE DATABASE` (temporary
//! `tend_shadow_<random>` databases, dropped on release), or the user's dedicated shadow
//! database, reset before each use when its role may not create databases (as Prisma does).
//!
//! Replays on a server are cached as template databases (`tend_shadow_tpl_<16 hex>`), named
//! by a hash chain over the inputs, so that a later replay clones the longest cached prefix
//! and replays only the rest. Templates never accept connections (nobody can then block a
//! clone), carry a tagged comment with their last use, and only the newest few are kept.
//!
//! Safety, in this order:
//! - tend drops or resets only a database that carries its mark (a tagged comment), checked
//!   by oid on the session that acts, right before it acts; a dedicated database is used
//!   only when it is marked already, or empty of user objects (then tend marks it);
//! - never a protected database (the ones being compared): each is marked for the life of
//!   the [`Shadows`] by an advisory lock ([`tend_pg::Marker`]) that any session on the same
//!   server sees in `pg_locks`, so the check holds whatever the URLs look like;
//! - nothing of a replay may reach outside its database: statements that would (see
//!   [`tend_migrate::splitter::reaches_outside`]) fail the replay before anything runs, and
//!   where tend may create roles the replay runs as a temporary role that owns only the
//!   shadow database (no SUPERUSER, CREATEDB or CREATEROLE), dropped with it. Templates are
//!   owned by the administrative role, and clones are handed to the next replay's role.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tend_migrate::apply::{Mode, RunOptions};
use tend_migrate::splitter::{reaches_outside, split};
use tend_migrate::{Format, History, MigrateError, Migration};
use tend_pg::{
    AdvisoryLock, ConnInfo, ConnectError, ConnectOptions, LockError, Marker, PgError, ServerFacts,
    Session, quote_ident, quote_literal,
};
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;

/// Temporary shadow databases are named this prefix and 32 hex digits.
pub const TEMPORARY_PREFIX: &str = "tend_shadow_";
/// Cached replays are named this prefix and 16 hex digits of their key.
pub const TEMPLATE_PREFIX: &str = "tend_shadow_tpl_";
/// How many cached replays a role keeps on a server unless told otherwise.
pub const DEFAULT_CACHE_LIMIT: usize = 8;

/// The comment that marks a template as ours; the last use follows, in Unix milliseconds.
const TEMPLATE_TAG: &str = "tend shadow template, last used ";
/// The comment that marks a temporary shadow database; its creation follows.
const TEMPORARY_TAG: &str = "tend shadow database, created ";
/// The comment that marks a dedicated shadow database (SHADOW_DATABASE_URL) as tend's to
/// reset.
const DEDICATED_TAG: &str = "tend shadow database, reset before each use; marked ";
/// Temporary replay roles are named this prefix and 32 hex digits.
pub const ROLE_PREFIX: &str = "tend_shadow_role_";
/// The comment that marks a temporary replay role; its creation follows.
const ROLE_TAG: &str = "tend shadow replay role, created ";
/// A temporary shadow database this old was left by a process that died before cleaning up.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3600);
/// The advisory lock ("tendshdw") that gives one tend at a time a dedicated shadow database.
const DEDICATED_LOCK_KEY: i64 = 0x7465_6e64_7368_6477;
/// How long to wait for another tend to finish with a dedicated shadow database.
const DEDICATED_LOCK_WAIT: Duration = Duration::from_secs(300);
/// Bumped when what a template holds for the same inputs changes.
const CACHE_VERSION: &str = "tend shadow cache v2";

/// Where shadow databases are made.
#[derive(Debug, Clone)]
pub enum ShadowHost {
    /// The user's shadow database (SHADOW_DATABASE_URL). When its role may create databases,
    /// temporary ones (and the cache) are made on its server through it; otherwise the
    /// database itself is used, after dropping every schema in it.
    Dedicated(ConnInfo),
    /// An administrative connection to a server where tend may create databases (the local
    /// development cluster, or the target server as a last resort).
    Server(ConnInfo),
}

/// Why a shadow database could not be made or filled. Each display is one sentence that
/// says what to do; none holds a connection string.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(
        "the role `{user}` may not create databases on {target}, and tend needs a temporary shadow database there; set SHADOW_DATABASE_URL to a database tend may reset, or grant the role CREATEDB (ALTER ROLE {user} CREATEDB)"
    )]
    CannotCreateDatabase { target: String, user: String },
    #[error(
        "the shadow database `{dbname}` on {target} is the database being compared (the server says so, whatever the URLs look like), and tend drops everything in a shadow database; set SHADOW_DATABASE_URL to an empty database of its own"
    )]
    SameAsLive { target: String, dbname: String },
    #[error(
        "the shadow database `{dbname}` on {target} holds objects and does not carry tend's mark, and tend resets its shadow database before each use; point SHADOW_DATABASE_URL at an empty database (tend then marks it as its own), or empty this one if nothing in it is needed"
    )]
    NotEmpty { target: String, dbname: String },
    #[error(
        "tend did not drop the database `{dbname}` on {target}: {why}; nothing was changed, and it is left as it is"
    )]
    NotOurs {
        target: String,
        dbname: String,
        why: &'static str,
    },
    #[error(
        "{} line {line} reaches outside the shadow database ({reach}): `{statement}`; a replay may change only its own database, so apply such statements outside migrations and desired-state files",
        path.display()
    )]
    ReachesOutside {
        path: PathBuf,
        line: usize,
        /// The statement's start, on one line.
        statement: String,
        reach: &'static str,
    },
    #[error(
        "cannot reset the shadow database `{dbname}` on {target}: {message}; make the role of SHADOW_DATABASE_URL the owner of that database, or grant it CREATEDB"
    )]
    Reset {
        target: String,
        dbname: String,
        message: String,
    },
    #[error("another tend is using the shadow database: {0}")]
    Busy(Box<LockError>),
    #[error("{action} on {target} failed: {message}")]
    Database {
        action: String,
        target: String,
        message: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("replaying the migrations in a shadow database failed: {0}")]
    Migrate(Box<MigrateError>),
    #[error(
        "{} failed at line {line}: {message}; fix the file and run again",
        path.display()
    )]
    Sql {
        path: PathBuf,
        line: usize,
        message: String,
        /// The SQLSTATE, when the server gave one.
        code: Option<String>,
    },
}

/// One file of desired-state SQL.
#[derive(Debug, Clone)]
pub struct SqlFile {
    pub path: PathBuf,
    pub sql: String,
}

/// Makes shadow databases on one host. Cheap to create: the host is first contacted when a
/// shadow database is asked for.
#[derive(Debug)]
pub struct Shadows {
    host: ShadowHost,
    connect: ConnectOptions,
    cache: bool,
    cache_limit: usize,
    /// Databases that must never be reset or dropped (the ones being compared).
    protected: Vec<ConnInfo>,
    /// Their markers, placed when the host is first contacted and held until this drops.
    guard: OnceCell<Guard>,
    place: OnceCell<Place>,
}

/// Sessions on the protected databases, each holding a [`Marker`] that the session about to
/// drop or reset a database looks for.
#[derive(Debug, Default)]
struct Guard {
    _sessions: Vec<Session>,
    keys: Vec<i64>,
}

/// What the host turned out to allow.
#[derive(Debug, Clone)]
enum Place {
    /// Temporary databases made through `admin`.
    Server(Server),
    /// The dedicated database itself, reset before each use.
    Reset(ConnInfo),
}

#[derive(Debug, Clone)]
struct Server {
    admin: ConnInfo,
    major: u32,
    user: String,
    /// The admin may create roles: replays then run as a temporary role of their own.
    creates_roles: bool,
    superuser: bool,
}

impl Shadows {
    pub fn new(host: ShadowHost, connect: ConnectOptions) -> Shadows {
        Shadows {
            host,
            connect,
            cache: true,
            cache_limit: DEFAULT_CACHE_LIMIT,
            protected: Vec::new(),
            guard: OnceCell::new(),
            place: OnceCell::new(),
        }
    }

    /// Turns the template cache on (the default) or off. It is always off for a dedicated
    /// database whose role may not create databases.
    pub fn with_cache(mut self, on: bool) -> Shadows {
        self.cache = on;
        self
    }

    /// How many cached replays to keep (the most recently used); at least one.
    pub fn with_cache_limit(mut self, keep: usize) -> Shadows {
        self.cache_limit = keep.max(1);
        self
    }

    /// Never resets or drops this database, whichever URL reaches it: when the host is
    /// first contacted, a session to `live` places a marker that every reset and drop
    /// looks for on its own server (SHADOW_DATABASE_URL naming DATABASE_URL with another
    /// spelling is refused). `live` must then be reachable.
    pub fn protecting(mut self, live: &ConnInfo) -> Shadows {
        self.protected.push(live.clone());
        self
    }

    /// The markers of the protected databases, placed on first use.
    async fn keys(&self) -> Result<&[i64], ShadowError> {
        let guard = self
            .guard
            .get_or_try_init(|| async {
                let mut guard = Guard::default();
                for info in &self.protected {
                    let session = tend_pg::connect(info, &self.connect).await?;
                    let marker = Marker::place(&session)
                        .await
                        .map_err(database("marking the database being compared", info))?;
                    guard.keys.push(marker.key());
                    guard._sessions.push(session);
                }
                Ok::<Guard, ShadowError>(guard)
            })
            .await?;
        Ok(&guard.keys)
    }

    pub fn host(&self) -> &ShadowHost {
        &self.host
    }

    /// Whether replays are cached on this host (known once the host has been contacted).
    pub async fn caches(&self) -> Result<bool, ShadowError> {
        Ok(self.cache && matches!(self.place().await?, Place::Server(_)))
    }

    /// An empty shadow database.
    pub async fn empty(&self) -> Result<ShadowDb, ShadowError> {
        match self.place().await? {
            Place::Server(server) => self.create(server, None).await,
            Place::Reset(info) => self.reset(info).await,
        }
    }

    /// A shadow database with `migrations` deployed in order, as `tend migrate deploy` would
    /// (history table included). A failure names the migration and line, and leaves no
    /// database behind.
    pub async fn replay_migrations(
        &self,
        migrations: &[Migration],
        format: Format,
    ) -> Result<ShadowDb, ShadowError> {
        self.build(Inputs::Migrations(migrations, format)).await
    }

    /// A shadow database with `files` run in order, each in a session and (unless it holds
    /// statements that cannot run in one) a transaction of its own, as psql would run them.
    /// A failure names the file and line, and leaves no database behind.
    pub async fn apply_sql(&self, files: &[SqlFile]) -> Result<ShadowDb, ShadowError> {
        self.build(Inputs::Sql(files)).await
    }

    /// Drops this role's cached replays on the host; returns how many were dropped.
    pub async fn clear_cache(&self) -> Result<usize, ShadowError> {
        let Place::Server(server) = self.place().await? else {
            return Ok(0);
        };
        let keys = self.keys().await?;
        let session = tend_pg::connect(&server.admin, &self.connect).await?;
        let templates = own_templates(&session, &server.admin).await?;
        let mut dropped = 0;
        for template in templates {
            let ours = Ours {
                name: &template.name,
                tag: TEMPLATE_TAG,
                oid: Some(template.oid),
                keys,
            };
            if drop_ours(&session, &server.admin, &ours, server.major, false)
                .await
                .is_ok()
            {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// The names of this role's cached replays on the host, most recently used first.
    pub async fn cached_templates(&self) -> Result<Vec<String>, ShadowError> {
        let Place::Server(server) = self.place().await? else {
            return Ok(Vec::new());
        };
        let session = tend_pg::connect(&server.admin, &self.connect).await?;
        let templates = own_templates(&session, &server.admin).await?;
        Ok(templates.into_iter().map(|t| t.name).collect())
    }

    async fn place(&self) -> Result<&Place, ShadowError> {
        self.place.get_or_try_init(|| self.resolve()).await
    }

    /// Contacts the host once to learn what it allows (and marks the protected databases).
    async fn resolve(&self) -> Result<Place, ShadowError> {
        let (info, dedicated) = match &self.host {
            ShadowHost::Dedicated(info) => (info, true),
            ShadowHost::Server(info) => (info, false),
        };
        let keys = self.keys().await?;
        let session = tend_pg::connect(info, &self.connect).await?;
        let facts = ServerFacts::read(&session)
            .await
            .map_err(database("reading the server's facts", info))?;
        if facts.can_create_db {
            return Ok(Place::Server(Server {
                admin: info.clone(),
                major: facts.major(),
                user: facts.user,
                creates_roles: facts.can_create_role,
                superuser: facts.is_superuser,
            }));
        }
        if dedicated {
            // Checked again, with the mark, right before each reset.
            if is_protected(&session, keys, None)
                .await
                .map_err(database("checking the shadow database", info))?
            {
                return Err(ShadowError::SameAsLive {
                    target: info.target(),
                    dbname: facts.database,
                });
            }
            return Ok(Place::Reset(info.clone()));
        }
        Err(ShadowError::CannotCreateDatabase {
            target: info.target(),
            user: facts.user,
        })
    }

    async fn build(&self, inputs: Inputs<'_>) -> Result<ShadowDb, ShadowError> {
        // Nothing is made, and nothing runs, when a statement would reach outside.
        inputs.check_inside()?;
        let server = match self.place().await? {
            Place::Reset(info) => {
                let mut db = self.reset(info).await?;
                return match self.run(&mut db, &inputs, 0).await {
                    Ok(()) => Ok(db),
                    Err(err) => {
                        let _ = db.release().await;
                        Err(err)
                    }
                };
            }
            Place::Server(server) => server,
        };
        let chain = if self.cache {
            inputs.chain(server)
        } else {
            Vec::new()
        };
        let mut db = self.start_from_cache(server, &chain).await?;
        let mut from = db.cached;
        if let Err(err) = self.run(&mut db, &inputs, from).await {
            let _ = db.release().await;
            if from == 0 {
                return Err(err);
            }
            // A cache is only ever a shortcut: the whole replay, from an empty database,
            // decides (and names the failure, if it is one).
            db = self.create(server, None).await?;
            from = 0;
            if let Err(err) = self.run(&mut db, &inputs, 0).await {
                let _ = db.release().await;
                return Err(err);
            }
        }
        if let Some(last) = chain.last()
            && from < chain.len()
        {
            self.save(server, &db, last).await;
        }
        Ok(db)
    }

    /// A temporary database cloned from the longest cached prefix of `chain`, or an empty
    /// one when none is cached (or the clone fails: a cache is only ever a shortcut).
    async fn start_from_cache(
        &self,
        server: &Server,
        chain: &[String],
    ) -> Result<ShadowDb, ShadowError> {
        if chain.is_empty() {
            return self.create(server, None).await;
        }
        let cached = match tend_pg::connect(&server.admin, &self.connect).await {
            Ok(session) => session
                .query(
                    "SELECT datname::text FROM pg_database
                      WHERE datname::text = ANY($1)
                        AND starts_with(coalesce(shobj_description(oid, 'pg_database'), ''), $2)",
                    &[&chain, &TEMPLATE_TAG],
                )
                .await
                .map(|rows| {
                    rows.iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let longest = chain.iter().rposition(|name| cached.contains(name));
        if let Some(index) = longest {
            let template = &chain[index];
            if let Ok(mut db) = self.create(server, Some(template)).await {
                db.cached = index + 1;
                db.template = Some(template.clone());
                if let Ok(session) = tend_pg::connect(&server.admin, &self.connect).await {
                    let _ = tag(&session, template, TEMPLATE_TAG).await;
                }
                return Ok(db);
            }
        }
        self.create(server, None).await
    }

    /// A new temporary database, empty (from the server's default template) or cloned,
    /// marked as tend's. Where the admin may create roles, it is owned by a new temporary
    /// role (with a clone's objects handed to it) and the replay connects as that role.
    async fn create(
        &self,
        server: &Server,
        template: Option<&str>,
    ) -> Result<ShadowDb, ShadowError> {
        let keys = self.keys().await?.to_vec();
        let name = format!("{TEMPORARY_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let session = tend_pg::connect(&server.admin, &self.connect).await?;
        let role = if server.creates_roles {
            Some(create_role(&session, server).await?)
        } else {
            None
        };
        let mut temporary = Temporary {
            admin: server.admin.clone(),
            name: name.clone(),
            oid: None,
            major: server.major,
            connect: self.connect.clone(),
            role: role.as_ref().map(|r| r.name.clone()),
            keys,
        };
        let mut sql = format!("CREATE DATABASE {}", quote_ident(&name));
        if let Some(template) = template {
            sql.push_str(&format!(" TEMPLATE {}", quote_ident(template)));
        }
        if let Some(role) = &role {
            sql.push_str(&format!(" OWNER {}", quote_ident(&role.name)));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match session.batch_execute(&sql).await {
                Ok(()) => break,
                // Someone is connected to the template: PostgreSQL waited 5 s already.
                Err(err) if err.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => {
                    let _ = temporary.drop_role(&session).await;
                    if err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) && template.is_none() {
                        return Err(ShadowError::CannotCreateDatabase {
                            target: server.admin.target(),
                            user: server.user.clone(),
                        });
                    }
                    return Err(database("creating a shadow database", &server.admin)(err));
                }
            }
        }
        // The mark, then the oid it is checked by: without both, the database is dropped
        // now (it was made by the statement above) rather than left unmarked.
        let marked = async {
            tag(&session, &name, TEMPORARY_TAG).await?;
            let oid: u32 = session
                .query_one("SELECT oid FROM pg_database WHERE datname = $1", &[&name])
                .await?
                .get(0);
            Ok::<u32, tokio_postgres::Error>(oid)
        }
        .await;
        match marked {
            Ok(oid) => temporary.oid = Some(oid),
            Err(err) => {
                let _ = drop_database(&session, &name, server.major, true).await;
                let _ = temporary.drop_role(&session).await;
                temporary.role = None;
                return Err(database("marking a shadow database", &server.admin)(err));
            }
        }
        let mut info = server.admin.with_dbname(&name);
        if let Some(role) = &role {
            info.set("user", role.name.clone());
            info.set("password", role.password.clone());
        }
        let db = ShadowDb {
            info,
            cached: 0,
            replayed: 0,
            template: None,
            connect: self.connect.clone(),
            cleanup: Some(Cleanup::Drop(temporary)),
        };
        if let (Some(role), Some(_)) = (&role, template) {
            // Templates are the admin's: their objects go to this replay's role.
            let clone = tend_pg::connect(&server.admin.with_dbname(&name), &self.connect).await?;
            hand_over(&clone, &role.name).await.map_err(database(
                "handing a cached replay to its role",
                &server.admin,
            ))?;
        }
        Ok(db)
    }

    /// The dedicated database, emptied, held under an advisory lock until released so that
    /// two tends never share it.
    async fn reset(&self, info: &ConnInfo) -> Result<ShadowDb, ShadowError> {
        let lock =
            AdvisoryLock::acquire(info, &self.connect, DEDICATED_LOCK_KEY, DEDICATED_LOCK_WAIT)
                .await
                .map_err(|err| match err {
                    LockError::Connect(e) => ShadowError::Connect(e),
                    other => ShadowError::Busy(Box::new(other)),
                })?;
        let client = &lock.session().client;
        let failed = |err: tokio_postgres::Error| ShadowError::Reset {
            target: info.target(),
            dbname: info.dbname().unwrap_or_default().to_string(),
            message: pg_message(&err),
        };
        // Right before the reset, on the session that does it: never a protected database,
        // and only one that carries tend's mark, or is empty (and is marked now).
        let keys = self.keys().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT d.datname::text, coalesce(shobj_description(d.oid, 'pg_database'), ''),
                            ({EMPTY_DATABASE})
                       FROM pg_database d WHERE d.datname = current_database()"
                ),
                &[],
            )
            .await
            .map_err(failed)?;
        let (dbname, comment, empty): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        if is_protected(client, keys, None).await.map_err(failed)? {
            return Err(ShadowError::SameAsLive {
                target: info.target(),
                dbname,
            });
        }
        if !comment.starts_with(DEDICATED_TAG) {
            if !empty {
                return Err(ShadowError::NotEmpty {
                    target: info.target(),
                    dbname,
                });
            }
            tag(client, &dbname, DEDICATED_TAG).await.map_err(failed)?;
        }
        let schemas: Vec<String> = client
            .query(
                "SELECT nspname::text FROM pg_namespace
                  WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'
                  ORDER BY nspname",
                &[],
            )
            .await
            .map_err(failed)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut sql = String::from("BEGIN;\n");
        for schema in &schemas {
            sql.push_str(&format!("DROP SCHEMA {} CASCADE;\n", quote_ident(schema)));
        }
        // `public` as a new database has it: owned by pg_database_owner (PostgreSQL 14+).
        sql.push_str(
            "DO $$ BEGIN
               CREATE SCHEMA public AUTHORIZATION pg_database_owner;
             EXCEPTION WHEN OTHERS THEN
               CREATE SCHEMA public;
             END $$;
             GRANT USAGE ON SCHEMA public TO PUBLIC;
             COMMENT ON SCHEMA public IS 'standard public schema';
             COMMIT;",
        );
        if let Err(err) = client.batch_execute(&sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failed(err));
        }
        Ok(ShadowDb {
            info: info.clone(),
            cached: 0,
            replayed: 0,
            template: None,
            connect: self.connect.clone(),
            cleanup: Some(Cleanup::Unlock(lock)),
        })
    }

    /// Replays the inputs from index `from` on.
    async fn run(
        &self,
        db: &mut ShadowDb,
        inputs: &Inputs<'_>,
        from: usize,
    ) -> Result<(), ShadowError> {
        match inputs {
            Inputs::Migrations(migrations, format) => {
                let options = RunOptions {
                    connect: self.connect.clone(),
                    ..RunOptions::default()
                };
                let info = db.info.clone();
                let migrations = migrations.to_vec();
                let history = History::new(*format);
                // deploy's progress callback is not `Send`, and so neither is its future:
                // it runs on a thread of its own, which keeps this one `Send`.
                let report = on_own_thread(move || async move {
                    tend_migrate::apply::deploy(
                        &info,
                        &options,
                        history,
                        &migrations,
                        None,
                        false,
                        &mut |_| {},
                    )
                    .await
                })
                .await
                .map_err(|e| ShadowError::Migrate(Box::new(e)))?;
                db.replayed = report.applied.len();
            }
            Inputs::Sql(files) => {
                for file in &files[from.min(files.len())..] {
                    self.run_file(&db.info, file).await?;
                    db.replayed += 1;
                }
            }
        }
        Ok(())
    }

    /// Runs one file on a session of its own, so that its settings end with it.
    async fn run_file(&self, info: &ConnInfo, file: &SqlFile) -> Result<(), ShadowError> {
        let session = tend_pg::connect(info, &self.connect).await?;
        if Mode::of(&file.sql) == Mode::Statements {
            return run_statements(&session, file).await;
        }
        session
            .batch_execute("BEGIN")
            .await
            .map_err(database("starting a transaction", info))?;
        let err = match session.batch_execute(&file.sql).await {
            Ok(()) => match session.batch_execute("COMMIT").await {
                Ok(()) => return Ok(()),
                // A deferred constraint: no line to name but the last.
                Err(err) => return Err(sql_failure(file, file.sql.lines().count().max(1), &err)),
            },
            Err(err) => err,
        };
        let _ = session.batch_execute("ROLLBACK").await;
        if err.code() == Some(&SqlState::UNSAFE_NEW_ENUM_VALUE_USAGE) {
            // The file uses an enum value it adds: that works only statement by statement.
            return run_statements(&session, file).await;
        }
        let pg = PgError::of(&err);
        let line = match pg.location(&file.sql) {
            Some(at) => at.line,
            None => locate_failure(&session, file, &pg).await,
        };
        Err(sql_failure(file, line, &err))
    }

    /// Saves the replay in `source` as the template `name` (best effort: a cache that cannot
    /// be written only makes the next run slower), then prunes old templates.
    async fn save(&self, server: &Server, db: &ShadowDb, name: &str) {
        let Ok(session) = tend_pg::connect(&server.admin, &self.connect).await else {
            return;
        };
        let Some(source) = db.info.dbname() else {
            return;
        };
        let role = match &db.cleanup {
            Some(Cleanup::Drop(temporary)) => temporary.role.clone(),
            _ => None,
        };
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(name),
            quote_ident(source)
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match session.batch_execute(&sql).await {
                Ok(()) => break,
                // Another tend saved the same replay first.
                Err(err) if err.code() == Some(&SqlState::DUPLICATE_DATABASE) => return,
                // Our own sessions to the source may still be closing.
                Err(err) if err.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(_) => return,
            }
        }
        // A template outlives the replay's role: its objects become the admin's.
        if let Some(role) = &role {
            let handed = async {
                let template = tend_pg::connect(&server.admin.with_dbname(name), &self.connect)
                    .await
                    .ok()?;
                let role = quote_ident(role);
                template
                    .batch_execute(&format!(
                        "REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}"
                    ))
                    .await
                    .ok()
            }
            .await;
            if handed.is_none() {
                // Just made under this name, not marked yet: no one else's.
                let _ = drop_database(&session, name, server.major, true).await;
                return;
            }
        }
        // Nobody may connect to a template: a session there would make clones fail.
        let _ = session
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                quote_ident(name)
            ))
            .await;
        let _ = tag(&session, name, TEMPLATE_TAG).await;
        let _ = self.prune(&session, server).await;
    }

    /// Keeps the `cache_limit` most recently used templates of this role, and drops
    /// temporary shadow databases left by processes that died long ago.
    async fn prune(&self, session: &Session, server: &Server) -> Result<(), ShadowError> {
        let keys = self.keys().await?;
        let templates = own_templates(session, &server.admin).await?;
        for template in templates.iter().skip(self.cache_limit) {
            let ours = Ours {
                name: &template.name,
                tag: TEMPLATE_TAG,
                oid: Some(template.oid),
                keys,
            };
            let _ = drop_ours(session, &server.admin, &ours, server.major, false).await;
        }
        let rows = session
            .query(
                "SELECT d.datname::text, d.oid, coalesce(shobj_description(d.oid, 'pg_database'), '')
                   FROM pg_database d JOIN pg_roles o ON o.oid = d.datdba
                  WHERE d.datname ~ '^tend_shadow_[0-9a-f]{32}$'
                    AND (o.rolname = current_user OR o.rolname ~ '^tend_shadow_role_[0-9a-f]{32}$')
                    AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.datid = d.oid)",
                &[],
            )
            .await
            .map_err(database("listing shadow databases", &server.admin))?;
        let stale_before = now_millis().saturating_sub(STALE_AFTER.as_millis() as u64);
        let stale = |comment: &str, tag: &str| {
            comment
                .strip_prefix(tag)
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|c| c < stale_before)
        };
        for row in rows {
            let name: String = row.get(0);
            let comment: String = row.get(2);
            if stale(&comment, TEMPORARY_TAG) {
                let ours = Ours {
                    name: &name,
                    tag: TEMPORARY_TAG,
                    oid: Some(row.get(1)),
                    keys,
                };
                let _ = drop_ours(session, &server.admin, &ours, server.major, false).await;
            }
        }
        if server.creates_roles {
            // Replay roles left by processes that died: only marked ones, long unused.
            let roles = session
                .query(
                    "SELECT r.rolname::text, coalesce(shobj_description(r.oid, 'pg_authid'), '')
                       FROM pg_roles r
                      WHERE r.rolname ~ '^tend_shadow_role_[0-9a-f]{32}$'
                        AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.usesysid = r.oid)",
                    &[],
                )
                .await
                .map_err(database("listing shadow replay roles", &server.admin))?;
            for row in roles {
                let (name, comment): (String, String) = (row.get(0), row.get(1));
                if stale(&comment, ROLE_TAG) {
                    let _ = session
                        .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&name)))
                        .await;
                }
            }
        }
        Ok(())
    }
}

/// True in a database holding no user objects: no schema but `public`, nothing in `public`,
/// no extension but plpgsql.
const EMPTY_DATABASE: &str = "SELECT NOT EXISTS (SELECT FROM pg_namespace n
        WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%')
    AND NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public')
    AND NOT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public')
    AND NOT EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public')
    AND NOT EXISTS (SELECT FROM pg_extension WHERE extname <> 'plpgsql')";

/// What a shadow database is built from.
enum Inputs<'a> {
    Migrations(&'a [Migration], Format),
    Sql(&'a [SqlFile]),
}

impl Inputs<'_> {
    /// Fails on the first statement that would reach outside the shadow database.
    fn check_inside(&self) -> Result<(), ShadowError> {
        let files: Vec<(&std::path::Path, &str)> = match self {
            Inputs::Migrations(migrations, _) => migrations
                .iter()
                .map(|m| (m.path.as_path(), m.sql.as_str()))
                .collect(),
            Inputs::Sql(files) => files
                .iter()
                .map(|f| (f.path.as_path(), f.sql.as_str()))
                .collect(),
        };
        for (path, sql) in files {
            for statement in split(sql) {
                if let Some(reach) = reaches_outside(statement.sql) {
                    let mut start: String = statement
                        .sql
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    // A string may hold a password: the statement is shown up to its first.
                    if let Some(at) = start.find(['\'', '$']) {
                        start.truncate(at);
                        start = format!("{}...", start.trim_end());
                    }
                    if start.chars().count() > 80 {
                        start = start.chars().take(77).collect::<String>() + "...";
                    }
                    return Err(ShadowError::ReachesOutside {
                        path: path.to_path_buf(),
                        line: statement.line,
                        statement: start,
                        reach,
                    });
                }
            }
        }
        Ok(())
    }

    /// The template name of each prefix: entry `i` holds the state after inputs `0..=i`.
    /// The key covers everything that changes the result: the server's major version, the
    /// role (which owns the objects), the history layout and schema, and each input.
    fn chain(&self, server: &Server) -> Vec<String> {
        let major = server.major.to_string();
        let schema = server.admin.get("schema").unwrap_or_default();
        match self {
            Inputs::Migrations(migrations, format) => {
                let format = match format {
                    Format::Prisma => "prisma",
                    Format::Tend => "tend",
                };
                hash_chain(
                    &["migrations", &major, &server.user, format, schema],
                    migrations
                        .iter()
                        .map(|m| (m.name.clone(), m.checksum.clone())),
                )
            }
            Inputs::Sql(files) => hash_chain(
                &["sql", &major, &server.user],
                files.iter().map(|f| {
                    (
                        f.path.display().to_string(),
                        tend_migrate::source::checksum(f.sql.as_bytes()),
                    )
                }),
            ),
        }
    }
}

/// Template names for each prefix of `items`, each key hashing the previous one.
fn hash_chain(seed: &[&str], items: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let mut hasher = Sha256::new();
    hasher.update(CACHE_VERSION.as_bytes());
    for part in seed {
        hasher.update([0]);
        hasher.update(part.as_bytes());
    }
    let mut key = hasher.finalize();
    items
        .map(|(name, checksum)| {
            let mut hasher = Sha256::new();
            hasher.update(key);
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(checksum.as_bytes());
            key = hasher.finalize();
            let hex: String = key[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{TEMPLATE_PREFIX}{hex}")
        })
        .collect()
}

/// A shadow database, dropped (or, for a dedicated one, unlocked) by [`ShadowDb::release`],
/// or on drop if release was not called.
#[derive(Debug)]
pub struct ShadowDb {
    /// Where to connect to it.
    pub info: ConnInfo,
    /// How many of the inputs came from a cached replay rather than being run.
    pub cached: usize,
    /// How many inputs were run (migrations deployed, files applied).
    pub replayed: usize,
    /// The cached replay it was cloned from.
    pub template: Option<String>,
    connect: ConnectOptions,
    cleanup: Option<Cleanup>,
}

#[derive(Debug)]
enum Cleanup {
    Drop(Temporary),
    Unlock(AdvisoryLock),
}

#[derive(Debug)]
struct Temporary {
    admin: ConnInfo,
    name: String,
    /// The oid it was made with: the drop checks it, with the mark, right before.
    oid: Option<u32>,
    major: u32,
    connect: ConnectOptions,
    /// The temporary role the replay runs as, dropped after the database.
    role: Option<String>,
    /// The markers of the protected databases.
    keys: Vec<i64>,
}

impl Temporary {
    async fn drop_now(&self) -> Result<(), ShadowError> {
        let session = tend_pg::connect(&self.admin, &self.connect).await?;
        let dropped = match self.oid {
            Some(oid) => {
                let ours = Ours {
                    name: &self.name,
                    tag: TEMPORARY_TAG,
                    oid: Some(oid),
                    keys: &self.keys,
                };
                drop_ours(&session, &self.admin, &ours, self.major, true).await
            }
            None => Ok(()),
        };
        let role = self.drop_role(&session).await;
        dropped?;
        role
    }

    /// Drops the replay role, when it carries tend's mark.
    async fn drop_role(&self, session: &Session) -> Result<(), ShadowError> {
        let Some(role) = &self.role else {
            return Ok(());
        };
        let comment: Option<String> = session
            .query_opt(
                "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles
                  WHERE rolname = $1",
                &[role],
            )
            .await
            .map_err(database("reading a replay role", &self.admin))?
            .map(|row| row.get(0));
        match comment {
            None => Ok(()),
            Some(comment) if comment.starts_with(ROLE_TAG) => session
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(role)))
                .await
                .map_err(database("dropping a replay role", &self.admin)),
            Some(_) => Err(ShadowError::NotOurs {
                target: self.admin.target(),
                dbname: role.clone(),
                why: "the role does not carry tend's mark",
            }),
        }
    }
}

/// A temporary role for one replay: it may log in and owns the shadow database, nothing
/// more.
struct ReplayRole {
    name: String,
    password: String,
}

async fn create_role(session: &Session, server: &Server) -> Result<ReplayRole, ShadowError> {
    let name = format!("{ROLE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let quoted = quote_ident(&name);
    session
        .batch_execute(&format!(
            "CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS PASSWORD {}",
            quote_literal(&password)
        ))
        .await
        .map_err(database("creating a replay role", &server.admin))?;
    let mut setup = format!(
        "COMMENT ON ROLE {quoted} IS {};",
        quote_literal(&format!("{ROLE_TAG}{}", now_millis()))
    );
    if !server.superuser {
        // CREATE DATABASE ... OWNER and REASSIGN OWNED need the admin to be a member.
        setup.push_str(&format!("GRANT {quoted} TO CURRENT_USER;"));
    }
    if let Err(err) = session.batch_execute(&setup).await {
        let _ = session
            .batch_execute(&format!("DROP ROLE IF EXISTS {quoted}"))
            .await;
        return Err(database("setting up a replay role", &server.admin)(err));
    }
    Ok(ReplayRole { name, password })
}

/// Hands the objects of a clone (the admin's, in a template) to the replay role, so that the
/// rest of the replay can change them. Extension members stay with their extension.
async fn hand_over(session: &Session, role: &str) -> Result<(), tokio_postgres::Error> {
    let rows = session
        .query(
            "WITH me AS (SELECT oid FROM pg_roles WHERE rolname = current_user),
                  sys AS (SELECT oid FROM pg_namespace
                           WHERE nspname LIKE 'pg\\_%' OR nspname = 'information_schema'),
                  member AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
             SELECT 0, format('ALTER SCHEMA %I OWNER TO %I', n.nspname, $1::text)
               FROM pg_namespace n, me
              WHERE n.nspowner = me.oid AND n.oid NOT IN (SELECT oid FROM sys)
                AND NOT EXISTS (SELECT FROM member m
                                 WHERE m.classid = 'pg_namespace'::regclass AND m.objid = n.oid)
             UNION ALL
             SELECT 1, format('ALTER %s %s OWNER TO %I',
                        CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
                             ELSE 'TABLE' END, c.oid::regclass, $1::text)
               FROM pg_class c, me
              WHERE c.relowner = me.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                AND c.relnamespace NOT IN (SELECT oid FROM sys)
                AND NOT EXISTS (SELECT FROM member m
                                 WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid)
                AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.deptype IN ('a', 'i')))
             UNION ALL
             SELECT 2, format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text)
               FROM pg_proc p, me
              WHERE p.proowner = me.oid AND p.pronamespace NOT IN (SELECT oid FROM sys)
                AND NOT EXISTS (SELECT FROM member m
                                 WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
             UNION ALL
             SELECT 2, format('ALTER %s %s OWNER TO %I',
                        CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                        t.oid::regtype, $1::text)
               FROM pg_type t, me
              WHERE t.typowner = me.oid AND t.typnamespace NOT IN (SELECT oid FROM sys)
                AND NOT EXISTS (SELECT FROM member m
                                 WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid)
                AND (t.typtype IN ('e', 'd', 'r')
                     OR t.typtype = 'c' AND (SELECT relkind FROM pg_class
                                              WHERE oid = t.typrelid) = 'c')
             ORDER BY 1",
            &[&role],
        )
        .await?;
    for row in rows {
        let sql: String = row.get(1);
        session.batch_execute(&sql).await?;
    }
    Ok(())
}

/// A database tend means to drop: its name, the mark it must carry and, when known, the oid
/// it was made with.
struct Ours<'a> {
    name: &'a str,
    tag: &'static str,
    oid: Option<u32>,
    keys: &'a [i64],
}

/// Drops a database only when, right now on this session, it carries `ours.tag`, has the
/// oid tend made it with, and is not a protected database. Gone already is fine.
async fn drop_ours(
    session: &Session,
    admin: &ConnInfo,
    ours: &Ours<'_>,
    major: u32,
    force: bool,
) -> Result<(), ShadowError> {
    let row = session
        .query_opt(
            "SELECT oid, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database
              WHERE datname = $1",
            &[&ours.name],
        )
        .await
        .map_err(database("reading a shadow database", admin))?;
    let Some(row) = row else {
        return Ok(());
    };
    let (oid, comment): (u32, String) = (row.get(0), row.get(1));
    let refuse = |why: &'static str| ShadowError::NotOurs {
        target: admin.target(),
        dbname: ours.name.to_string(),
        why,
    };
    if !comment.starts_with(ours.tag) {
        return Err(refuse("it does not carry tend's mark"));
    }
    if ours.oid.is_some_and(|made| made != oid) {
        return Err(refuse("it is not the database tend made under that name"));
    }
    if is_protected(session, ours.keys, Some(oid))
        .await
        .map_err(database("checking a shadow database", admin))?
    {
        return Err(refuse("it is the database being compared"));
    }
    drop_database(session, ours.name, major, force)
        .await
        .map_err(database("dropping a shadow database", admin))
}

/// Whether the database `oid` (the session's own when `None`) is one a marker in `keys`
/// protects, as seen from this session's server.
async fn is_protected(
    client: &tokio_postgres::Client,
    keys: &[i64],
    oid: Option<u32>,
) -> Result<bool, tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(false);
    }
    let oid = match oid {
        Some(oid) => oid,
        None => client
            .query_one(
                "SELECT oid FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await?
            .get(0),
    };
    for key in keys {
        if tend_pg::identity::find_marker(client, *key).await? == Some(oid) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl ShadowDb {
    /// A session in the shadow database, with the connect options it was made with.
    pub async fn connect(&self) -> Result<Session, ShadowError> {
        Ok(tend_pg::connect(&self.info, &self.connect).await?)
    }

    /// Drops the temporary database (ending any session still in it), or lets another tend
    /// have the dedicated one.
    pub async fn release(mut self) -> Result<(), ShadowError> {
        match self.cleanup.take() {
            Some(Cleanup::Drop(temporary)) => temporary.drop_now().await,
            Some(Cleanup::Unlock(lock)) => match lock.release().await {
                Ok(()) => Ok(()),
                Err(LockError::Query { source, .. }) => Err(database(
                    "unlocking the shadow database",
                    &self.info,
                )(source)),
                Err(other) => Err(ShadowError::Busy(Box::new(other))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for ShadowDb {
    /// The error paths' cleanup: drops the database on a thread and runtime of its own, so
    /// that it works whatever runtime (if any) is dropping this value, and waits for it so
    /// that nothing is left behind when the caller goes on.
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::Drop(mut temporary)) => {
                temporary.connect.attempts = 1;
                temporary.connect.connect_timeout = Duration::from_secs(5);
                let _ = std::thread::spawn(move || {
                    if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        let _ = runtime.block_on(temporary.drop_now());
                    }
                })
                .join();
            }
            // Closing the lock's connection releases it.
            Some(Cleanup::Unlock(lock)) => drop(lock),
            None => {}
        }
    }
}

/// Runs a future that need not be `Send` on a thread and runtime of its own, and waits
/// for its result without blocking the caller's runtime.
async fn on_own_thread<T, F, Fut>(make: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let (send, receive) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for a shadow replay");
        let _ = send.send(runtime.block_on(make()));
    });
    receive.await.expect("the shadow replay thread panicked")
}

/// A cached replay.
struct Template {
    name: String,
    oid: u32,
    used: u64,
}

/// This role's templates, most recently used first (untagged ones, from an interrupted
/// save, are never used nor dropped: tend cannot tell them from someone else's).
async fn own_templates(session: &Session, admin: &ConnInfo) -> Result<Vec<Template>, ShadowError> {
    let rows = session
        .query(
            "SELECT d.datname::text, d.oid, coalesce(shobj_description(d.oid, 'pg_database'), '')
               FROM pg_database d
              WHERE d.datname ~ '^tend_shadow_tpl_[0-9a-f]{16}$'
                AND d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(database("listing cached shadow databases", admin))?;
    let mut templates: Vec<Template> = rows
        .iter()
        .filter_map(|row| {
            let comment: String = row.get(2);
            let used = comment.strip_prefix(TEMPLATE_TAG)?.parse().ok()?;
            Some(Template {
                name: row.get(0),
                oid: row.get(1),
                used,
            })
        })
        .collect();
    templates.sort_by(|a, b| b.used.cmp(&a.used).then_with(|| a.name.cmp(&b.name)));
    Ok(templates)
}

/// Drops a database; `force` ends the sessions in it first.
async fn drop_database(
    session: &Session,
    name: &str,
    major: u32,
    force: bool,
) -> Result<(), tokio_postgres::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sql = if force && major >= 13 {
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name))
        } else {
            if force {
                session
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await?;
            }
            format!("DROP DATABASE IF EXISTS {}", quote_ident(name))
        };
        match session.batch_execute(&sql).await {
            Err(err) if err.code() == Some(&SqlState::OBJECT_IN_USE) && force && attempt < 3 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Marks a database as tend's, with the time now.
async fn tag(
    session: &tokio_postgres::Client,
    name: &str,
    tag: &str,
) -> Result<(), tokio_postgres::Error> {
    session
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {}",
            quote_ident(name),
            quote_literal(&format!("{tag}{}", now_millis()))
        ))
        .await
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Statement by statement in autocommit, for files that cannot run in one transaction.
async fn run_statements(session: &Session, file: &SqlFile) -> Result<(), ShadowError> {
    for statement in split(&file.sql) {
        if let Err(err) = session.batch_execute(statement.sql).await {
            let line = statement.line_of_error(&PgError::of(&err));
            return Err(sql_failure(file, line, &err));
        }
    }
    Ok(())
}

/// The line of an error the server gave no position for: the file's statements are run
/// one by one in a transaction that is then rolled back, until one fails.
async fn locate_failure(session: &Session, file: &SqlFile, err: &PgError) -> usize {
    let statements = split(&file.sql);
    let first = statements.first().map(|s| s.line).unwrap_or(1);
    if session.batch_execute("BEGIN").await.is_err() {
        return first;
    }
    let mut line = first;
    for statement in &statements {
        if let Err(again) = session.batch_execute(statement.sql).await {
            line = match PgError::of(&again).position {
                Some(pos) => statement.line_of_char_position(pos),
                None => statement.line + err.lines_before_quoted_name(statement.sql),
            };
            break;
        }
    }
    let _ = session.batch_execute("ROLLBACK").await;
    line
}

fn sql_failure(file: &SqlFile, line: usize, err: &tokio_postgres::Error) -> ShadowError {
    ShadowError::Sql {
        path: file.path.clone(),
        line,
        message: pg_message(err),
        code: err.code().map(|c| c.code().to_string()),
    }
}

/// PostgreSQL's message, detail and SQLSTATE, or the driver's words.
fn pg_message(err: &tokio_postgres::Error) -> String {
    tend_pg::error_text(err)
}

fn database(action: &str, info: &ConnInfo) -> impl FnOnce(tokio_postgres::Error) -> ShadowError {
    let action = action.to_string();
    let target = info.target();
    move |source| ShadowError::Database {
        action,
        target,
        message: pg_message(&source),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_each_prefix_and_depends_on_everything_before() {
        let items = |names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), format!("sum-{n}")))
                .collect::<Vec<_>>()
        };
        let two = hash_chain(&["migrations", "15"], items(&["a", "b"]).into_iter());
        let three = hash_chain(&["migrations", "15"], items(&["a", "b", "c"]).into_iter());
        assert_eq!(two.len(), 2);
        assert_eq!(two[..], three[..2]);
        assert!(three.iter().all(|n| n.len() == TEMPLATE_PREFIX.len() + 16));
        let other_server = hash_chain(&["migrations", "16"], items(&["a", "b"]).into_iter());
        assert_ne!(two[0], other_server[0]);
        let other_first = hash_chain(&["migrations", "15"], items(&["x", "b"]).into_iter());
        assert_ne!(two[1], other_first[1]);
    }
}
