//! Point-in-time recovery: setting a server up to archive its WAL into the backup store
//! (`tend pitr enable`), how that archiving goes (`tend pitr status`), and the two commands
//! PostgreSQL runs, `archive_command` (`tend wal-push`) and `restore_command`
//! (`tend wal-fetch`). The archive itself is `tend_backup::wal`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tend_backup::Store;
use tend_backup::physical::{self, PhysicalRestore, RestoreTarget, TargetAction};
use tend_backup::wal::{
    Archive, ArchiveInfo, Fetched, KeyOnce, Prefetch, PushOptions, Pushed, SegmentName, Spool,
    SpoolState, Spooled, WalError, WalFile, data_directory_system,
};
use tend_pg::cluster::DataDirServer;
use tend_pg::{Database, quote_literal};

use crate::settings::{BackupSettings, KeyError, SpoolSettings};

/// Why a PITR service did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Pool(#[from] tend_pg::PoolError),
    #[error("{context}: {}", tend_pg::error_text(.source))]
    Database {
        context: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// `wal-push`/`wal-fetch` run outside a data directory.
    #[error(
        "cannot read {}: tend wal-push and wal-fetch run in the server's data directory (PostgreSQL runs archive_command and restore_command there), or name it with --pgdata",
        path.display()
    )]
    NoDataDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server cannot run tend's archive_command (a managed service, another host).
    #[error("{0}")]
    Unsupported(String),
    /// The role may not change the server's settings.
    #[error("{0}")]
    Privilege(String),
    #[error(transparent)]
    Backup(tend_backup::BackupError),
    #[error(transparent)]
    Cluster(tend_pg::cluster::ClusterError),
    #[error(transparent)]
    Connect(tend_pg::ConnectError),
    /// The restored copy's server stopped during recovery (a target past the archive's
    /// newest transaction, a missing segment).
    #[error(
        "the restored server in {} stopped during recovery: {words}; a --time past the newest transaction in the archive cannot be reached (use an earlier one, or none for the end of the archive)",
        dir.display()
    )]
    CopyStopped { dir: PathBuf, words: String },
    /// The store is away and the spool cannot take the file.
    #[error(
        "the store did not take the file ({because}) and {full}: nothing was spooled, and PostgreSQL keeps the WAL in pg_wal and tries again; bring the store back, or raise pitr.spool_max"
    )]
    SpoolFull { full: String, because: String },
    /// `pitr enable` needs a config file the server's archive_command can read.
    #[error(
        "this needs a tend.toml: the server runs `tend wal-push` and `tend wal-fetch` (its archive_command and restore_command) from its own data directory and environment, so the store's settings must come from a file (run `tend init`, or pass --config)"
    )]
    NoConfigFile,
}

impl PitrError {
    fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PitrError {
        move |source| PitrError::Database { context, source }
    }
}

/// What a `wal-push` did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub file: String,
    /// `stored`, `already_stored`, `spooled` (the store is away: kept in the local spool)
    /// or `already_spooled`.
    pub outcome: &'static str,
    pub plain_bytes: u64,
    pub stored_bytes: u64,
    /// Files sent from the spool to the store first.
    pub drained: usize,
    /// Why the file was spooled instead of stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spooled_because: Option<String>,
}

/// The system identifier of the data directory a WAL command runs in.
pub fn system_of(data_dir: &Path) -> Result<u64, PitrError> {
    data_directory_system(data_dir).map_err(|source| PitrError::NoDataDirectory {
        path: data_dir.join("global").join("pg_control"),
        source,
    })
}

/// `archive_command`: stores the file at `path` (of the server whose data directory is
/// `data_dir`) in the archive, encrypted for `recipient` (the archive's key; read from the
/// store when not given). Returns once the store has it; with a spool, once the store or
/// the spool has it (see [`push_spooling`]).
pub async fn push(
    store: &Store,
    settings: &BackupSettings,
    spool: Option<&SpoolSettings>,
    data_dir: &Path,
    path: &Path,
    recipient: Option<&str>,
) -> Result<PushReport, PitrError> {
    let system = system_of(data_dir)?;
    let archive = Archive::new(store, system);
    let recipient = match recipient {
        Some(text) => parse_recipient(text)?,
        None => {
            let info = match spool {
                Some(spool) => tokio::time::timeout(spool.after, archive.require_info())
                    .await
                    .unwrap_or(Err(WalError::StoreTimeout(spool.after)))?,
                None => archive.require_info().await?,
            };
            parse_recipient(&info.recipient)?
        }
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get().min(4) as u32)
        .unwrap_or(1);
    let options = PushOptions {
        recipient,
        level: settings.compression_level,
        threads,
    };
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(spool) = spool {
        return push_spooling(&archive, spool, path, &options).await;
    }
    let (outcome, plain_bytes, stored_bytes) = match archive.push(path, &options).await? {
        Pushed::Stored { plain, stored } => ("stored", plain, stored),
        Pushed::AlreadyStored => ("already_stored", 0, 0),
    };
    Ok(PushReport {
        file,
        outcome,
        plain_bytes,
        stored_bytes,
        drained: 0,
        spooled_because: None,
    })
}

/// The spool of the server `system`, when one is configured.
pub fn spool_of(settings: &SpoolSettings, system: u64) -> Spool {
    Spool::new(&settings.dir, system, settings.max_bytes)
}

/// Sends what waits in the spool of server `system` to the store, oldest first, as the
/// next push would: `tend serve` calls it on a timer, so WAL spooled during an outage does
/// not wait for the server's next segment (an idle server may write none for hours).
/// Returns how many files went; nothing happens while the spool is empty or the store was
/// found away a moment ago. Waits for a push that holds the spool's lock.
pub async fn drain_spool(
    store: &Store,
    settings: &SpoolSettings,
    system: u64,
) -> Result<usize, PitrError> {
    let spool = spool_of(settings, system);
    if spool.state()?.files == 0 {
        return Ok(0);
    }
    if spool.store_away().is_some_and(|away| {
        away.last_try.elapsed().unwrap_or_default() < retry_store_after(settings)
    }) {
        return Ok(0);
    }
    let (spool, lock) = tokio::task::spawn_blocking(move || spool.lock().map(|lock| (spool, lock)))
        .await
        .map_err(|e| PitrError::Backup(tend_backup::BackupError::Pipeline(e.to_string())))??;
    let archive = Archive::new(store, system);
    let (sent, result) = spool.drain(&lock, &archive, settings.after).await;
    match result {
        Ok(()) => {
            spool.mark_store_back(&lock);
            Ok(sent)
        }
        Err(e @ (WalError::Store(_) | WalError::StoreTimeout(_))) => {
            spool.mark_store_away(&lock);
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Once a push found the store away, how long later pushes spool without trying it: three
/// times `pitr.spool_after`, so at most a quarter of an outage goes to waiting for it.
fn retry_store_after(settings: &SpoolSettings) -> Duration {
    settings.after * 3
}

/// A push with a spool. Under the spool's lock: unless the store was found away less than
/// three times `pitr.spool_after` ago, sends what waits in the spool (in order), then the file, each
/// given `pitr.spool_after` to be stored; when the store fails or does not answer in time
/// (or is still away), the file joins the spool instead, up to its cap. So files reach
/// the store in the order PostgreSQL archived them, and a push during an outage returns
/// at once. A file that is not this server's WAL, or that conflicts with a stored one, is
/// an error either way.
async fn push_spooling(
    archive: &Archive<'_>,
    settings: &SpoolSettings,
    path: &Path,
    options: &PushOptions,
) -> Result<PushReport, PitrError> {
    let spool = spool_of(settings, archive.system());
    let read = archive.read_for_push(path).await?;
    let lock = spool.lock()?;
    let store_failure = |e: &WalError| matches!(e, WalError::Store(_) | WalError::StoreTimeout(_));
    let mut drained = 0;
    let mut away: Option<String> = match spool.store_away() {
        Some(away) if away.last_try.elapsed().unwrap_or_default() < retry_store_after(settings) => {
            Some("the store was away a moment ago".to_string())
        }
        _ => None,
    };
    if away.is_none() {
        let (sent, result) = spool.drain(&lock, archive, settings.after).await;
        drained = sent;
        match result {
            Ok(()) => {}
            Err(e) if store_failure(&e) => {
                spool.mark_store_away(&lock);
                away = Some(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let plain_bytes = read.plain.len() as u64;
    let file = read.file;
    let sha256 = read.sha256.clone();
    let sealed = tend_backup::wal::seal(read.plain, options.clone()).await?;
    let stored_bytes = sealed.len() as u64;
    if away.is_none() {
        let pushed = tokio::time::timeout(
            settings.after,
            archive.push_sealed(&file, &sha256, sealed.clone()),
        )
        .await
        .unwrap_or(Err(WalError::StoreTimeout(settings.after)));
        match pushed {
            Ok(pushed) => {
                spool.mark_store_back(&lock);
                return Ok(PushReport {
                    file: file.to_string(),
                    outcome: match pushed {
                        Pushed::Stored { .. } => "stored",
                        Pushed::AlreadyStored => "already_stored",
                    },
                    plain_bytes,
                    stored_bytes,
                    drained,
                    spooled_because: None,
                });
            }
            Err(e) if store_failure(&e) => {
                spool.mark_store_away(&lock);
                away = Some(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let because = away.unwrap_or_default();
    let spooled = spool
        .add(&lock, &file, &sha256, &sealed)
        .map_err(|e| match e {
            WalError::SpoolFull { .. } => PitrError::SpoolFull {
                full: e.to_string(),
                because: because.clone(),
            },
            other => other.into(),
        })?;
    Ok(PushReport {
        file: file.to_string(),
        outcome: match spooled {
            Spooled::Added(_) => "spooled",
            Spooled::AlreadySpooled => "already_spooled",
        },
        plain_bytes,
        stored_bytes,
        drained,
        spooled_because: Some(because),
    })
}

fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, PitrError> {
    text.trim().parse().map_err(|_| {
        PitrError::Wal(WalError::BadKey(format!(
            "--recipient `{}` is not an age public key (age1...)",
            tend_backup::crypto::shown_recipient(text)
        )))
    })
}

/// How many segments `wal-fetch` fetches ahead by default.
pub const DEFAULT_PREFETCH: usize = 8;

/// `restore_command`: writes the archived file `name` to `dest`. `Missing` is the normal
/// answer for a file the archive does not have (PostgreSQL asks for some that never
/// existed); an error is anything else, which must not end recovery early.
#[allow(clippy::too_many_arguments)]
pub async fn fetch(
    store: &Store,
    settings: &BackupSettings,
    data_dir: &Path,
    name: &str,
    dest: &Path,
    prefetch: usize,
    key_file: Option<&Path>,
) -> Result<Fetched, PitrError> {
    let file = WalFile::parse(name).ok_or_else(|| WalError::NotWal(name.to_string()))?;
    let system = system_of(data_dir)?;
    let archive = Archive::new(store, system);
    let decryption;
    let key = match key_file {
        Some(path) => KeyOnce::given(tend_backup::wal::read_key_file(&data_dir.join(path))?),
        None => {
            decryption = settings.keys.decryption()?;
            KeyOnce::new(&decryption)
        }
    };
    let prefetch = (prefetch > 0).then(|| Prefetch {
        dir: data_dir.join("pg_wal").join("tend-prefetch"),
        count: prefetch,
    });
    Ok(archive.fetch(&file, dest, &key, prefetch.as_ref()).await?)
}

/// A server setting `pitr enable` changes.
#[derive(Debug, Clone, Serialize)]
pub struct SettingChange {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Only a restart applies it (`wal_level`, `archive_mode`, `max_wal_senders`).
    pub needs_restart: bool,
}

/// What `pitr enable` will do: read, nothing changed.
#[derive(Debug, Clone, Serialize)]
pub struct EnablePlan {
    pub server_version: String,
    pub system_identifier: String,
    pub data_directory: String,
    pub segment_size: u64,
    /// Settings to change (empty when the server is set up already).
    pub changes: Vec<SettingChange>,
    /// Whether the store has this server's archive already.
    pub archive_exists: bool,
    pub archive_command: String,
    pub restore_command: String,
    /// The archive's key, made by the plan when the store has no archive yet; stored by
    /// `enable`.
    #[serde(skip)]
    new_key: Option<NewKey>,
}

/// A new archive key, which never shows in `Debug`.
#[derive(Clone)]
struct NewKey(age::x25519::Identity);

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewKey(********)")
    }
}

/// How the server runs tend: the program and the config file it reads.
#[derive(Debug, Clone)]
pub struct TendInvocation {
    pub program: PathBuf,
    pub config_file: PathBuf,
}

impl TendInvocation {
    pub fn archive_command(&self, recipient: &str) -> String {
        format!(
            "{} --config {} wal-push --recipient {recipient} %p",
            shell_quote(&self.program),
            shell_quote(&self.config_file)
        )
    }

    pub fn restore_command(&self) -> String {
        format!(
            "{} --config {} wal-fetch %f %p",
            shell_quote(&self.program),
            shell_quote(&self.config_file)
        )
    }

    /// The restore_command of a restored copy, which reads the archive's key from the file
    /// the restore wrote into its data directory.
    pub fn restore_command_with_key(&self) -> String {
        format!(
            "{} --config {} wal-fetch --archive-key {} %f %p",
            shell_quote(&self.program),
            shell_quote(&self.config_file),
            tend_backup::wal::ARCHIVE_KEY_FILE
        )
    }
}

/// A path as one shell word (the server runs these commands through `sh -c`).
fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,".contains(&b))
    {
        return text.into_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Roles and settings only managed services have.
const MANAGED_ROLES: &[(&str, &str)] = &[
    ("rds_superuser", "Amazon RDS"),
    ("rdsadmin", "Amazon RDS"),
    ("cloudsqlsuperuser", "Google Cloud SQL"),
    ("azure_pg_admin", "Azure Database for PostgreSQL"),
    ("alloydbsuperuser", "Google AlloyDB"),
];

/// Reads what `pitr enable` would change, and refuses a server tend cannot archive for:
/// a managed service, a server whose data directory is not on this machine, a role that
/// may not change settings.
pub async fn enable_plan(
    database: &Database,
    store: &Store,
    tend: &TendInvocation,
) -> Result<EnablePlan, PitrError> {
    let session = database.session().await?;
    let row = session
        .query_one(
            "SELECT current_setting('server_version'),
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                    (SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname = ANY($1)),
                    current_user::text",
            &[&MANAGED_ROLES.iter().map(|(r, _)| *r).collect::<Vec<_>>()],
        )
        .await
        .map_err(PitrError::db("reading the server's facts"))?;
    let version: String = row.get(0);
    let superuser: bool = row.get(1);
    let managed: Option<String> = row.get(2);
    let role: String = row.get(3);
    if let Some(found) = managed {
        let first = found.split(',').next().unwrap_or_default();
        let service = MANAGED_ROLES
            .iter()
            .find(|(r, _)| *r == first)
            .map(|(_, s)| *s)
            .unwrap_or("a managed service");
        return Err(PitrError::Unsupported(format!(
            "this server is {service} (it has the role {first}): a managed service does not run programs of yours as archive_command, so tend cannot archive its WAL; use the service's own point-in-time recovery, and tend's logical backups (`tend backup run`) for copies you keep"
        )));
    }
    let may_alter = superuser
        || {
            // PostgreSQL 15+: ALTER SYSTEM may be granted per parameter.
            let row = session
            .query_one(
                "SELECT current_setting('server_version_num')::int >= 150000
                        AND bool_and(has_parameter_privilege(p, 'ALTER SYSTEM'))
                        AND has_function_privilege('pg_catalog.pg_reload_conf()', 'EXECUTE')
                   FROM unnest(ARRAY['wal_level','archive_mode','archive_command','restore_command']) p",
                &[],
            )
            .await;
            matches!(row.map(|r| r.get::<_, Option<bool>>(0)), Ok(Some(true)))
        };
    if !may_alter {
        return Err(PitrError::Privilege(format!(
            "the role {} may not change the server's settings, which PITR needs (wal_level, archive_mode, archive_command, restore_command); run tend pitr enable as a superuser (--database-url), or have one run: GRANT ALTER SYSTEM ON PARAMETER wal_level, archive_mode, archive_command, restore_command TO {0}; GRANT pg_read_all_settings TO {0}; and, in this database, GRANT EXECUTE ON FUNCTION pg_reload_conf() TO {0}",
            tend_pg::quote_ident(&role)
        )));
    }
    let row = session
        .query_one(
            "SELECT (SELECT system_identifier::text FROM pg_control_system()),
                    current_setting('data_directory'),
                    current_setting('wal_segment_size')::text,
                    current_setting('wal_level'),
                    current_setting('archive_mode'),
                    current_setting('archive_command'),
                    current_setting('restore_command'),
                    current_setting('max_wal_senders'),
                    coalesce(current_setting('archive_library', true), '')",
            &[],
        )
        .await
        .map_err(PitrError::db("reading the server's settings"))?;
    let system: String = row.get(0);
    let data_directory: String = row.get(1);
    let segment_size = tend_backup::wal::parse_segment_size(&row.get::<_, String>(2));
    let wal_level: String = row.get(3);
    let archive_mode: String = row.get(4);
    let archive_command: String = row.get(5);
    let restore_command: String = row.get(6);
    let max_wal_senders: String = row.get(7);
    let archive_library: String = row.get(8);
    if !archive_library.is_empty() {
        return Err(PitrError::Unsupported(format!(
            "the server archives through archive_library = '{archive_library}', which PostgreSQL runs instead of any archive_command; reset it (ALTER SYSTEM RESET archive_library) to archive with tend"
        )));
    }
    // The server must be this machine's: its data directory here, with its system
    // identifier (never a guess from the URL).
    let system_id: u64 = system.parse().unwrap_or_default();
    match data_directory_system(Path::new(&data_directory)) {
        Ok(found) if found == system_id => {}
        Ok(found) => {
            return Err(PitrError::Unsupported(format!(
                "the server's data directory {data_directory} on this machine belongs to another server (system identifier {found}, the server says {system_id}): run tend pitr enable on the database server itself"
            )));
        }
        Err(e) => {
            return Err(PitrError::Unsupported(format!(
                "cannot read the server's data directory {data_directory} here ({e}): archive_command runs tend on the database server, so run tend pitr enable there, as root or as the user PostgreSQL runs as"
            )));
        }
    }
    let archive = Archive::new(store, system_id);
    let existing = archive.info().await?;
    let (recipient, new_key) = match &existing {
        Some(info) => (info.recipient.clone(), None),
        None => {
            let key = age::x25519::Identity::generate();
            (key.to_public().to_string(), Some(NewKey(key)))
        }
    };
    let want_archive = tend.archive_command(&recipient);
    let want_restore = tend.restore_command();
    let mut changes = Vec::new();
    let mut change = |name: &str, from: &str, to: &str, needs_restart: bool| {
        changes.push(SettingChange {
            name: name.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            needs_restart,
        })
    };
    if wal_level == "minimal" {
        change("wal_level", &wal_level, "replica", true);
    }
    if archive_mode == "off" {
        change("archive_mode", &archive_mode, "on", true);
    }
    if archive_command != want_archive {
        change("archive_command", &archive_command, &want_archive, false);
    }
    if restore_command != want_restore {
        change("restore_command", &restore_command, &want_restore, false);
    }
    if max_wal_senders.parse::<u32>().unwrap_or(0) < 2 {
        change("max_wal_senders", &max_wal_senders, "10", true);
    }
    Ok(EnablePlan {
        server_version: version,
        system_identifier: system,
        data_directory,
        segment_size,
        changes,
        archive_exists: existing.is_some(),
        archive_command: want_archive,
        restore_command: want_restore,
        new_key,
    })
}

/// Whether archiving was seen to work after `enable`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ArchiveTest {
    /// PostgreSQL archived this segment through tend.
    Passed { wal: String },
    /// PostgreSQL ran the command and it failed.
    Failed { wal: String },
    /// Archiving is not on yet (a restart is needed), so there was nothing to test.
    NotRun { reason: String },
    /// Nothing was archived within the wait.
    TimedOut { waited_secs: u64 },
}

/// What `pitr enable` did.
#[derive(Debug, Clone, Serialize)]
pub struct EnableReport {
    pub system_identifier: String,
    pub changes: Vec<SettingChange>,
    /// Settings waiting for a restart of the server.
    pub restart_needed: Vec<String>,
    pub archive_created: bool,
    pub test: ArchiveTest,
}

/// Applies the plan: the archive in the store (its key first), the settings with ALTER
/// SYSTEM and a reload, then a switch to a new segment to see PostgreSQL archive it through
/// tend. Never restarts the server: it says which settings wait for one.
pub async fn enable(
    database: &Database,
    store: &Store,
    settings: &BackupSettings,
    spool: Option<&SpoolSettings>,
    plan: &EnablePlan,
    wait: Duration,
) -> Result<EnableReport, PitrError> {
    let system: u64 = plan.system_identifier.parse().unwrap_or_default();
    let archive = Archive::new(store, system);
    if let Some(spool) = spool {
        spool_of(spool, system).create_for_server(Path::new(&plan.data_directory))?;
    }
    let mut archive_created = false;
    if let Some(NewKey(key)) = &plan.new_key {
        let encryption = settings.keys.encryption()?;
        let (_, created) = archive
            .create(&encryption, &plan.server_version, plan.segment_size, key)
            .await?;
        archive_created = created;
    }
    archive.give_to_server(Path::new(&plan.data_directory))?;
    let session = database.session().await?;
    let loaded_before: String = session
        .query_one("SELECT pg_conf_load_time()::text", &[])
        .await
        .map_err(PitrError::db("reading the server's settings"))?
        .get(0);
    for change in &plan.changes {
        session
            .batch_execute(&format!(
                "ALTER SYSTEM SET {} = {}",
                change.name,
                quote_literal(&change.to)
            ))
            .await
            .map_err(PitrError::db("changing the server's settings"))?;
    }
    if !plan.changes.is_empty() {
        session
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(PitrError::db("reloading the server's configuration"))?;
        // The reload is asynchronous: wait until the server has read the files again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let loaded: String = session
                .query_one("SELECT pg_conf_load_time()::text", &[])
                .await
                .map_err(PitrError::db("reading the server's settings"))?
                .get(0);
            if loaded != loaded_before || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let restart_needed: Vec<String> = session
        .query(
            "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
            &[],
        )
        .await
        .map_err(PitrError::db("reading which settings wait for a restart"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let test = test_archiving(&session, &restart_needed, wait).await?;
    Ok(EnableReport {
        system_identifier: plan.system_identifier.clone(),
        changes: plan.changes.clone(),
        restart_needed,
        archive_created,
        test,
    })
}

/// Switches to a new WAL segment and waits for PostgreSQL to archive the one it closed.
async fn test_archiving(
    session: &tokio_postgres::Client,
    restart_needed: &[String],
    wait: Duration,
) -> Result<ArchiveTest, PitrError> {
    let row = session
        .query_one(
            "SELECT current_setting('archive_mode'), current_setting('wal_level'), pg_is_in_recovery()",
            &[],
        )
        .await
        .map_err(PitrError::db("reading the server's settings"))?;
    let mode: String = row.get(0);
    let level: String = row.get(1);
    let in_recovery: bool = row.get(2);
    if mode == "off" || level == "minimal" || !restart_needed.is_empty() {
        return Ok(ArchiveTest::NotRun {
            reason: "archiving starts when the server restarts".to_string(),
        });
    }
    if in_recovery {
        return Ok(ArchiveTest::NotRun {
            reason: "the server is a standby; its primary archives".to_string(),
        });
    }
    // Write a little WAL so the switch closes a segment, and note the failures so far.
    // pg_switch_wal is a superuser's unless granted: a role given only ALTER SYSTEM cannot
    // run the test, which is then left to `tend pitr status`.
    let may_switch: bool = session
        .query_one(
            "SELECT has_function_privilege('pg_catalog.pg_switch_wal()', 'EXECUTE')",
            &[],
        )
        .await
        .map_err(PitrError::db("reading the role's privileges"))?
        .get(0);
    if !may_switch {
        return Ok(ArchiveTest::NotRun {
            reason: "the role may not switch WAL segments (pg_switch_wal); `tend pitr status` shows the archiver once the next segment fills".to_string(),
        });
    }
    // A transaction with an id writes a commit record: WAL, with no privilege needed.
    session
        .batch_execute("SELECT txid_current()")
        .await
        .map_err(PitrError::db("writing a test record to the WAL"))?;
    let row = session
        .query_one(
            "SELECT pg_walfile_name(pg_current_wal_lsn()), failed_count
               FROM pg_stat_archiver",
            &[],
        )
        .await
        .map_err(PitrError::db("reading pg_stat_archiver"))?;
    let wal: String = row.get(0);
    let failures_before: i64 = row.get(1);
    session
        .batch_execute("SELECT pg_switch_wal()")
        .await
        .map_err(PitrError::db("switching to a new WAL segment"))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        let row = session
            .query_one(
                "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '')
                   FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(PitrError::db("reading pg_stat_archiver"))?;
        let archived: String = row.get(0);
        let failed: i64 = row.get(1);
        let failed_wal: String = row.get(2);
        if archived.len() >= 24 && archived[..24] >= wal[..] {
            return Ok(ArchiveTest::Passed { wal: archived });
        }
        if failed > failures_before {
            return Ok(ArchiveTest::Failed { wal: failed_wal });
        }
        if std::time::Instant::now() > deadline {
            return Ok(ArchiveTest::TimedOut {
                waited_secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server's side of archiving (pg_stat_archiver and the settings).
#[derive(Debug, Clone, Serialize)]
pub struct ServerArchiving {
    pub wal_level: String,
    pub archive_mode: String,
    /// The archive_command is tend's.
    pub archives_with_tend: bool,
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
    /// The segment being written now (none on a standby).
    pub current_wal: Option<String>,
    /// Closed segments not archived yet.
    pub pending_segments: Option<i64>,
    /// Failing: the last failure is newer than the last success.
    pub failing: bool,
}

/// One timeline's stretch of WAL in the archive.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineSpan {
    pub timeline: u32,
    pub first: String,
    pub last: String,
    pub segments: u64,
    /// Missing segments between `first` and `last` (first and last of each gap).
    pub gaps: Vec<(String, String)>,
}

/// What the archive holds.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveSummary {
    pub system_identifier: String,
    pub created_at: String,
    pub segment_size: u64,
    pub timelines: Vec<TimelineSpan>,
    pub history_files: Vec<String>,
    pub stored_bytes: u64,
}

/// The times a physical restore can reach.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverableWindow {
    /// When the oldest physical backup of this server had finished.
    pub from: String,
    /// The newest archived segment: its name and when the server archived it (WAL up to
    /// then is in the store; a restore reaches the last transaction in it).
    pub to_wal: Option<String>,
    pub to_time: Option<String>,
    /// Physical backups of this server in the store.
    pub base_backups: usize,
}

/// What `tend pitr status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PitrStatus {
    pub store: String,
    pub server: ServerArchiving,
    /// `None` when there is no physical backup of this server yet.
    pub window: Option<RecoverableWindow>,
    /// `None` when the store has no archive for this server.
    pub archive: Option<ArchiveSummary>,
    /// The local spool, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolState>,
    /// Problems, worst first, each one sentence.
    pub problems: Vec<String>,
}

/// How long `pitr status` waits for the store's first answer (its retries go on for
/// minutes): a store that is away is then one of the problems it shows.
const STATUS_STORE_WAIT: Duration = Duration::from_secs(15);

/// Reads archiving's health from the server and the archive's contents from the store.
pub async fn status(
    database: &Database,
    store: &Store,
    spool: Option<&SpoolSettings>,
    required_window: Option<Duration>,
) -> Result<PitrStatus, PitrError> {
    let session = database.session().await?;
    let row = session
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('archive_mode'),
                    current_setting('archive_command'),
                    a.archived_count, a.last_archived_wal,
                    to_char(a.last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    a.failed_count, a.last_failed_wal,
                    to_char(a.last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    coalesce(a.last_failed_time > coalesce(a.last_archived_time, '-infinity'), false),
                    CASE WHEN pg_is_in_recovery() THEN NULL
                         ELSE pg_walfile_name(pg_current_wal_lsn()) END,
                    (SELECT system_identifier::text FROM pg_control_system()),
                    current_setting('wal_segment_size')
               FROM pg_stat_archiver a",
            &[],
        )
        .await
        .map_err(PitrError::db("reading pg_stat_archiver"))?;
    let command: String = row.get(2);
    let current_wal: Option<String> = row.get(10);
    let last_archived_wal: Option<String> = row.get(4);
    let segment_size = tend_backup::wal::parse_segment_size(&row.get::<_, String>(12));
    let pending_segments = match (&current_wal, &last_archived_wal) {
        (Some(current), archived) => {
            let current = WalFile::parse(current).and_then(|f| f.segment());
            let archived = archived
                .as_deref()
                .and_then(WalFile::parse)
                .and_then(|f| f.segment());
            match (current, archived) {
                (Some(c), Some(a)) => {
                    Some(c.number(segment_size) as i64 - a.number(segment_size) as i64 - 1)
                        .map(|n| n.max(0))
                }
                (Some(_), None) => None,
                _ => None,
            }
        }
        _ => None,
    };
    let server = ServerArchiving {
        wal_level: row.get(0),
        archive_mode: row.get(1),
        archives_with_tend: tend_backup::wal::is_tend_archive_command(&command),
        archived_count: row.get(3),
        last_archived_wal,
        last_archived_time: row.get(5),
        failed_count: row.get(6),
        last_failed_wal: row.get(7),
        last_failed_time: row.get(8),
        failing: row.get(9),
        current_wal,
        pending_segments,
    };
    let system: String = row.get::<_, Option<String>>(11).unwrap_or_default();
    let archive = Archive::new(store, system.parse().unwrap_or_default());
    let mut problems = Vec::new();
    // A store that cannot be read is a problem to show beside the rest, not the end of it.
    let mut unreadable = None;
    let info = tokio::time::timeout(STATUS_STORE_WAIT, archive.info())
        .await
        .unwrap_or(Err(WalError::StoreTimeout(STATUS_STORE_WAIT)));
    let summary = match info {
        Ok(Some(info)) => match summarize(&archive, &info).await {
            Ok(summary) => Some(summary),
            Err(e) => {
                unreadable = Some(e.to_string());
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            unreadable = Some(e.to_string());
            None
        }
    };
    if server.archive_mode == "off" || !server.archives_with_tend {
        problems.push(
            "the server does not archive its WAL with tend: run `tend pitr enable`".to_string(),
        );
    }
    if server.failing {
        problems.push(format!(
            "archiving is failing: PostgreSQL could not archive {} at {} (the server's log has tend's message); it keeps the WAL until it can",
            server.last_failed_wal.as_deref().unwrap_or("a segment"),
            server.last_failed_time.as_deref().unwrap_or("an unknown time"),
        ));
    }
    if let Some(reason) = &unreadable {
        problems.push(format!(
            "the store {} cannot be read now: {reason}",
            store.description
        ));
    } else if summary.is_none() {
        problems.push(format!(
            "the store {} has no WAL archive for this server (system identifier {system})",
            store.description
        ));
    }
    let listed = match unreadable {
        Some(_) => Vec::new(),
        None => tend_backup::ops::list(store)
            .await
            .map_err(PitrError::Backup)?,
    };
    let bases: Vec<tend_backup::Manifest> = listed
        .into_iter()
        .map(|l| l.manifest)
        .filter(|m| {
            m.physical
                .as_ref()
                .is_some_and(|p| p.system_identifier == system)
        })
        .collect();
    let window = bases.first().map(|oldest| RecoverableWindow {
        from: oldest
            .physical
            .as_ref()
            .map(|p| p.stop_time.clone())
            .unwrap_or_default(),
        to_wal: server.last_archived_wal.clone(),
        to_time: server.last_archived_time.clone(),
        base_backups: bases.len(),
    });
    if let (Some(required), Some(window)) = (required_window, &window)
        && let Some(problem) = window_shortfall(&window.from, required)
    {
        problems.push(problem);
    }
    if summary.is_some() && window.is_none() {
        problems.push(
            "no physical backup of this server yet, so no point in time can be restored: take one with `tend backup run --physical`".to_string(),
        );
    }
    let spool = match spool {
        Some(settings) => Some(spool_of(settings, system.parse().unwrap_or_default()).state()?),
        None => None,
    };
    if let Some(problem) = spool.as_ref().and_then(spool_problem) {
        problems.insert(0, problem);
    }
    for span in summary.iter().flat_map(|s| &s.timelines) {
        for (first, last) in &span.gaps {
            // Files waiting in the spool are not a gap yet.
            let spooled = spool.as_ref().and_then(|s| s.oldest.as_deref());
            if spooled.is_some_and(|oldest| oldest <= first.as_str()) {
                continue;
            }
            problems.push(format!(
                "timeline {} is missing {first}..{last} in the archive: recovery cannot pass that gap",
                span.timeline
            ));
        }
    }
    Ok(PitrStatus {
        store: store.description.clone(),
        server,
        window,
        archive: summary,
        spool,
        problems,
    })
}

/// The problem a recoverable window that starts at `from` (when the oldest physical backup
/// became consistent) is, when it reaches back less than `pitr.window`.
pub fn window_shortfall(from: &str, required: Duration) -> Option<String> {
    let from_at = tend_backup::retention::parse_rfc3339(from)?;
    let now = jiff::Timestamp::now().as_second();
    let reach = u64::try_from(now.saturating_sub(from_at)).unwrap_or(0);
    if reach >= required.as_secs() {
        return None;
    }
    Some(format!(
        "point-in-time recovery reaches back {} (to {from}), less than pitr.window ({}): the window grows as physical backups age, since prune keeps the one it starts from; if the oldest backup is newer than it should be, take physical backups on a schedule and keep them longer",
        humantime::format_duration(Duration::from_secs(reach)),
        humantime::format_duration(required)
    ))
}

/// The problem a spool with files in it is: the store has not taken them (PostgreSQL
/// thinks they are archived), and the recoverable window stops before the oldest.
pub fn spool_problem(state: &SpoolState) -> Option<String> {
    if state.files == 0 {
        return None;
    }
    Some(format!(
        "{} WAL file(s) ({:.1} MB of the spool's {:.1} MB) wait in {} for the store{}: the archive, and the recoverable window, end before {} until they are sent (the next push that reaches the store sends them; past the cap, archiving fails)",
        state.files,
        state.bytes as f64 / 1e6,
        state.max_bytes as f64 / 1e6,
        state.dir.display(),
        state
            .store_away_since
            .as_deref()
            .map(|t| format!(", which has been away since {t}"))
            .unwrap_or_default(),
        state.oldest.as_deref().unwrap_or("the oldest"),
    ))
}

/// Lists the archive: each timeline's segments, gaps and history files.
pub async fn summarize(
    archive: &Archive<'_>,
    info: &ArchiveInfo,
) -> Result<ArchiveSummary, PitrError> {
    let size = info.segment_size;
    let mut timelines: Vec<TimelineSpan> = Vec::new();
    let mut history_files = Vec::new();
    let mut stored_bytes = 0;
    let mut previous: Option<SegmentName> = None;
    for folder in archive.folders().await? {
        for stored in archive.files_in(&folder).await? {
            stored_bytes += stored.bytes;
            let segment = match stored.file {
                WalFile::Segment(s) => s,
                WalFile::History { .. } => {
                    history_files.push(stored.file.to_string());
                    continue;
                }
                _ => continue,
            };
            match (timelines.last_mut(), previous) {
                (Some(span), Some(prev)) if prev.timeline == segment.timeline => {
                    if segment == prev {
                        continue;
                    }
                    let expected = prev.next(size);
                    if segment != expected {
                        let before = SegmentName::from_number(
                            segment.timeline,
                            segment.number(size).saturating_sub(1),
                            size,
                        );
                        span.gaps.push((expected.to_string(), before.to_string()));
                    }
                    span.last = segment.to_string();
                    span.segments += 1;
                }
                _ => timelines.push(TimelineSpan {
                    timeline: segment.timeline,
                    first: segment.to_string(),
                    last: segment.to_string(),
                    segments: 1,
                    gaps: Vec::new(),
                }),
            }
            previous = Some(segment);
        }
    }
    Ok(ArchiveSummary {
        system_identifier: info.system_identifier.clone(),
        created_at: info.created_at.clone(),
        segment_size: size,
        timelines,
        history_files,
        stored_bytes,
    })
}

/// Reads a recovery target time as people and PostgreSQL write it (`2026-12-04
/// 15:00:00.123+00`, RFC 3339 with `T` and `Z`): an offset is required, so the moment
/// is never a guess.
pub fn parse_target_time(text: &str) -> Option<jiff::Timestamp> {
    let text = text.trim();
    let bytes = text.as_bytes();
    // PostgreSQL prints `+00`; jiff wants minutes in the offset too.
    let normalized = if bytes.len() > 3
        && matches!(bytes[bytes.len() - 3], b'+' | b'-')
        && bytes[bytes.len() - 2..].iter().all(u8::is_ascii_digit)
    {
        format!("{text}:00")
    } else {
        text.to_string()
    };
    normalized.parse().ok()
}

/// What `tend restore --physical` asks for.
#[derive(Debug, Clone)]
pub struct PhysicalRestoreRequest {
    /// The backup (default: the newest that ends before the target).
    pub id: Option<String>,
    pub dir: PathBuf,
    pub target: RestoreTarget,
    pub action: TargetAction,
    /// Start the restored server on this port (0: a free one) for inspection (archiving
    /// off), and wait until it reached the target.
    pub start: Option<u16>,
    /// The OS user that owns the data directory and runs the server when tend is root.
    pub os_user: String,
    pub tend: TendInvocation,
}

/// Where a started restored server stands.
#[derive(Debug, Clone, Serialize)]
pub struct StartedCopy {
    pub port: u16,
    /// A connection string to it (its socket directory; the backed-up server's roles).
    pub url: String,
    /// `promoted` (recovery ended, the copy is writable) or `paused` (at the target, read
    /// only), or `recovering` when the wait ended first.
    pub state: String,
}

/// What `tend restore --physical` did.
#[derive(Debug, Clone, Serialize)]
pub struct PhysicalRestoreReport {
    pub dir: PathBuf,
    pub backups: Vec<String>,
    pub settings: Vec<(String, String)>,
    pub bytes: u64,
    pub started: Option<StartedCopy>,
}

/// The chain a physical restore would use (for `--dry-run`, and before the restore).
pub async fn physical_chain(
    store: &Store,
    id: Option<&str>,
    target: &RestoreTarget,
) -> Result<Vec<tend_backup::Manifest>, PitrError> {
    let catalog: Vec<tend_backup::Manifest> = tend_backup::ops::list(store)
        .await
        .map_err(PitrError::Backup)?
        .into_iter()
        .map(|l| l.manifest)
        .collect();
    physical::choose_chain(&catalog, id, target).map_err(PitrError::Backup)
}

/// Restores a physical backup (and its increments) into an empty directory with the
/// recovery settings for the target, and optionally starts it.
pub async fn restore_physical(
    store: &Store,
    settings: &BackupSettings,
    tools: &tend_pg::ToolSearch,
    request: &PhysicalRestoreRequest,
    cancel: tokio_util::sync::CancellationToken,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<PhysicalRestoreReport, PitrError> {
    let decryption = settings.keys.decryption()?;
    let chain = physical_chain(store, request.id.as_deref(), &request.target).await?;
    let mut extra_settings = Vec::new();
    if request.start.is_some() {
        // An inspection copy must not archive into the production archive.
        extra_settings.push(("archive_mode".to_string(), "off".to_string()));
    }
    // The archive's key, opened once here: it opens the backups (sealed to it), and it
    // goes into the copy, whose restore_command then needs no backup keys and opens each
    // segment without stretching a passphrase.
    let system: u64 = chain
        .last()
        .and_then(|m| m.physical.as_ref())
        .and_then(|p| p.system_identifier.parse().ok())
        .unwrap_or_default();
    let archive = Archive::new(store, system);
    let info = archive.require_info().await?;
    let identity = archive.identity(&info, &decryption).await?;
    let options = PhysicalRestore {
        dir: request.dir.clone(),
        target: request.target.clone(),
        action: request.action,
        restore_command: request.tend.restore_command_with_key(),
        decryption,
        archive_key: Some(identity.clone()),
        tools: tools.clone(),
        extra_settings,
        cancel,
    };
    let restored = physical::restore_physical(store, &chain, &options, on_bytes)
        .await
        .map_err(PitrError::Backup)?;
    tend_backup::wal::write_key_file(
        &restored.dir.join(tend_backup::wal::ARCHIVE_KEY_FILE),
        &identity,
    )?;
    let pg_ctl = tools
        .find(
            tend_pg::PgTool::PgCtl,
            tend_pg::VersionNeed::ExactMajor(restored.server_major),
        )
        .map_err(|e| PitrError::Backup(e.into()))?;
    let bindir = pg_ctl
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // The server user owns the copy (when tend is root), started or not.
    let server = DataDirServer::prepare(&restored.dir, &bindir, &request.os_user)
        .map_err(PitrError::Cluster)?;
    let started = match request.start {
        None => None,
        Some(asked) => {
            // Port 0: a free one, tried again when another process takes it between the
            // choice and the server's bind.
            let mut port = if asked == 0 { free_port()? } else { asked };
            let mut attempt = 1;
            loop {
                match server.start(port, 3600) {
                    Ok(()) => break,
                    Err(_) if asked == 0 && attempt < 5 && !port_is_free(port) => {
                        port = free_port()?;
                        attempt += 1;
                    }
                    Err(e) => return Err(PitrError::Cluster(e)),
                }
            }
            let role = if request.os_user.is_empty() {
                "postgres"
            } else {
                &request.os_user
            };
            let info = server.conninfo(port, role, "postgres");
            let state = match wait_recovered(&info, request.action).await {
                Ok(state) => state,
                // The server stopped during recovery: say why, in its words.
                Err(_) if server.last_words().is_some_and(|w| w.contains("FATAL")) => {
                    return Err(PitrError::CopyStopped {
                        dir: restored.dir.clone(),
                        words: server.last_words().unwrap_or_default(),
                    });
                }
                Err(e) => return Err(e),
            };
            Some(StartedCopy {
                port,
                url: info.redacted().to_string(),
                state,
            })
        }
    };
    Ok(PhysicalRestoreReport {
        dir: restored.dir,
        backups: restored.backups,
        settings: restored.settings,
        bytes: restored.bytes,
        started,
    })
}

/// A port nothing listens on now, on 127.0.0.1.
fn free_port() -> Result<u16, PitrError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PitrError::Unsupported(format!("cannot find a free port on 127.0.0.1: {e}")))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Waits until a started copy is past recovery (promoted) or paused at its target.
async fn wait_recovered(
    info: &tend_pg::ConnInfo,
    action: TargetAction,
) -> Result<String, PitrError> {
    let options = tend_pg::ConnectOptions::default();
    let session = tend_pg::connect(info, &options)
        .await
        .map_err(PitrError::Connect)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let row = session
            .query_one(
                "SELECT pg_is_in_recovery(),
                        CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END",
                &[],
            )
            .await
            .map_err(PitrError::db("reading the restored server's recovery"))?;
        let in_recovery: bool = row.get(0);
        let pause: String = row.get(1);
        if !in_recovery {
            return Ok("promoted".to_string());
        }
        if pause == "paused" && action == TargetAction::Pause {
            return Ok("paused".to_string());
        }
        if std::time::Instant::now() > deadline {
            return Ok("recovering".to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_one_shell_word() {
        assert_eq!(shell_quote(Path::new("/usr/bin/tend")), "/usr/bin/tend");
        assert_eq!(
            shell_quote(Path::new("/srv/my app/tend.toml")),
            "'/srv/my app/tend.toml'"
        );
        assert_eq!(shell_quote(Path::new("/a'b")), r"'/a'\''b'");
    }

    #[test]
    fn target_times_need_an_offset() {
        let t = parse_target_time("2026-12-04 15:00:00.123456+00").unwrap();
        assert_eq!(t.to_string(), "2026-12-04T15:00:00.123456Z");
        assert!(parse_target_time("2026-12-04T15:00:00Z").is_some());
        assert!(parse_target_time("2026-12-04 17:00:00+02:00").is_some());
        assert_eq!(
            parse_target_time("2026-12-04 17:00:00+02"),
            parse_target_time("2026-12-04T15:00:00Z")
        );
        assert!(parse_target_time("2026-12-04 15:00:00").is_none());
        assert!(parse_target_time("yesterday").is_none());
    }
}
