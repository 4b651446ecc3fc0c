//! The doctor service: finds what stands between this machine and a working tend (the
//! configuration, the PostgreSQL programs, the database and what tend keeps in it, the
//! backup keys and restore drills) and says how to fix each thing in one sentence. It
//! returns the findings as a typed report, which `tend doctor --json` prints as it is.
//!
//! Which database is checked is the caller's to say ([`DoctorTarget`]): with none
//! configured it is the local cluster, which the caller starts (and announces).

use serde::Serialize;
use tend_pg::{ConnInfo, PgTool, ServerFacts, VersionNeed};

use crate::settings::{Settings, Source};

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Info,
    Warning,
    Error,
}

/// One thing the doctor looked at: what it found and, when something is wrong, the fix.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked: `config`, `tools.pg_dump`, `database.connect`, `backup.key`, ...
    pub check: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What `tend doctor --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// No finding is an error.
    pub ok: bool,
    /// How many findings are errors.
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    fn new(findings: Vec<Finding>) -> DoctorReport {
        let count = |status| findings.iter().filter(|f| f.status == status).count();
        let (errors, warnings) = (count(Status::Error), count(Status::Warning));
        DoctorReport {
            ok: errors == 0,
            errors,
            warnings,
            findings,
        }
    }
}

/// The database every command would use, as the caller resolved it.
#[derive(Debug, Clone)]
pub enum DoctorTarget {
    /// The configuration cannot be read: no database is checked (the local cluster would
    /// stand in for a database the user did configure).
    ConfigUnreadable,
    /// `database.url`, from where it was set.
    Configured { info: ConnInfo, source: Source },
    /// No database configured: the project's local cluster (started by the caller).
    LocalCluster { info: ConnInfo },
    /// No database configured, and the local cluster could not start.
    LocalClusterFailed { reason: String, fix: Option<String> },
}

/// What the doctor is asked to look at.
#[derive(Debug, Clone)]
pub struct Diagnosis<'a> {
    /// The settings in effect: the defaults when the configuration cannot be read.
    pub settings: &'a Settings,
    /// Why the configuration cannot be read, when it cannot.
    pub config_error: Option<String>,
    pub target: DoctorTarget,
}

/// Looks at everything and returns the findings, in the order they are shown.
pub async fn diagnose(request: Diagnosis<'_>) -> DoctorReport {
    let Diagnosis {
        settings,
        config_error,
        target,
    } = request;
    let mut report = Report(Vec::new());
    match config_error {
        None => {
            let where_ = match &settings.config_file {
                Some(path) => format!("configuration from {} is valid", path.display()),
                None => "no tend.toml found; using environment variables and defaults".to_string(),
            };
            report.push("config", Status::Ok, where_);
        }
        Some(message) => report.push_fix(
            "config",
            Status::Error,
            message,
            "fix the value named above; `tend config show` prints what is in effect",
        ),
    }
    report
        .0
        .extend(tools(settings, settings.database.url.is_some()));
    match target {
        DoctorTarget::Configured { .. } | DoctorTarget::LocalCluster { .. } => {
            let (info, origin) = match target {
                DoctorTarget::Configured { info, source } => {
                    (info, format!("database.url from {source}"))
                }
                DoctorTarget::LocalCluster { info } => (
                    info,
                    "no database configured: commands use the project's local cluster (tend dev)"
                        .to_string(),
                ),
                _ => unreachable!("matched above"),
            };
            report.push("database", Status::Info, origin);
            let major = check_database(&mut report, "database.connect", &info, settings).await;
            check_project(&mut report, settings, Some(&info), major).await;
            check_backups(&mut report, settings, major);
        }
        DoctorTarget::ConfigUnreadable => {
            report.push_fix(
                "database",
                Status::Error,
                "not checked: the configuration cannot be read",
                "fix the configuration first; tend uses no database until it can read it",
            );
            check_project(&mut report, settings, None, None).await;
            check_backups(&mut report, settings, None);
        }
        DoctorTarget::LocalClusterFailed { reason, fix } => {
            report.push_fix(
                "database",
                Status::Error,
                format!("the local cluster cannot start: {reason}"),
                fix.unwrap_or_else(|| {
                    "fix the cause above, or set DATABASE_URL to use another server".to_string()
                }),
            );
            check_project(&mut report, settings, None, None).await;
            check_backups(&mut report, settings, None);
        }
    }
    let database = &settings.database;
    for (url, label) in [
        (&database.direct_url, "database.direct"),
        (&database.shadow_url, "database.shadow"),
        (&database.read_replica_url, "database.replica"),
    ] {
        if let Some(url) = url {
            let _ = check_database(&mut report, label, &url.value, settings).await;
        }
    }
    DoctorReport::new(report.0)
}

struct Report(Vec<Finding>);

impl Report {
    fn push(&mut self, check: impl Into<String>, status: Status, message: impl Into<String>) {
        self.0.push(Finding {
            check: check.into(),
            status,
            message: message.into(),
            fix: None,
        });
    }

    fn push_fix(
        &mut self,
        check: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Finding {
            check: check.into(),
            status,
            message: message.into(),
            fix: Some(fix.into()),
        });
    }
}

/// `count(2, "run", "runs")` is "2 runs".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The PostgreSQL programs tend runs: client tools always, server tools for the local
/// cluster (needed most when it is the database, with none configured).
pub fn tools(settings: &Settings, database_configured: bool) -> Vec<Finding> {
    let mut report = Report(Vec::new());
    let search = settings.tool_search();

    // Client tools are needed whatever the database; server tools for the local cluster,
    // which is the database itself when none is configured.
    let cluster_severity = if database_configured {
        Status::Warning
    } else {
        Status::Error
    };
    for (tool, needed_for, severity) in [
        (PgTool::Psql, "tend dev psql", Status::Error),
        (PgTool::PgDump, "backups and schema dumps", Status::Error),
        (PgTool::PgRestore, "restores", Status::Error),
        (
            PgTool::PgDumpall,
            "backups of roles (--globals)",
            Status::Warning,
        ),
        (
            PgTool::PgVerifybackup,
            "verifying physical backups",
            Status::Warning,
        ),
        (
            PgTool::Initdb,
            "the local cluster (tend dev)",
            cluster_severity,
        ),
        (
            PgTool::PgCtl,
            "the local cluster (tend dev)",
            cluster_severity,
        ),
        (
            PgTool::Postgres,
            "the local cluster (tend dev)",
            cluster_severity,
        ),
    ] {
        let check = format!("tools.{}", tool.program());
        match search.find(tool, VersionNeed::Any) {
            Ok(found) => report.push(
                check,
                Status::Ok,
                format!("{tool} {} at {}", found.version, found.path.display()),
            ),
            Err(err) => report.push_fix(
                check,
                severity,
                format!("{tool} is missing; tend needs it for {needed_for}"),
                err.to_string(),
            ),
        }
    }
    report.0
}

/// Connects to `info` and checks what tend needs of it (a pg_dump that can dump it).
pub async fn database(settings: &Settings, check: &str, info: &ConnInfo) -> Vec<Finding> {
    let mut report = Report(Vec::new());
    let _ = check_database(&mut report, check, info, settings).await;
    report.0
}

/// Connects to `info` and reports on it; returns the server's major version when it answered.
async fn check_database(
    report: &mut Report,
    check: &str,
    info: &ConnInfo,
    settings: &Settings,
) -> Option<u32> {
    let mut options = settings.connect_options();
    // A diagnosis should answer quickly; one attempt says what is wrong.
    options.attempts = 1;
    let result = async {
        let session = tend_pg::connect(info, &options).await?;
        let facts =
            ServerFacts::read(&session)
                .await
                .map_err(|e| tend_pg::ConnectError::Other {
                    target: info.target(),
                    detail: tend_pg::error_text(&e),
                })?;
        let tls: Option<bool> = session
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|row| row.get(0));
        Ok::<_, tend_pg::ConnectError>((facts, tls))
    }
    .await;
    match result {
        Err(err) => {
            let fix = match &err {
                tend_pg::ConnectError::Unreachable { .. } => {
                    "start the server, or correct host and port in the connection string"
                }
                tend_pg::ConnectError::WrongPassword { .. } => {
                    "set the right password in DATABASE_URL (or database.url in tend.toml)"
                }
                tend_pg::ConnectError::TlsNotOffered { .. } => {
                    "turn on ssl on the server, or lower sslmode to prefer"
                }
                tend_pg::ConnectError::NoSuchDatabase { .. } => {
                    "create the database or correct its name in the connection string"
                }
                _ => "see the message above",
            };
            report.push_fix(check, Status::Error, err.to_string(), fix);
            None
        }
        Ok((facts, tls)) => {
            report.push(
                check,
                Status::Ok,
                format!(
                    "connected to {} as `{}`: PostgreSQL {}{}{}",
                    info.redacted(),
                    facts.user,
                    facts.version,
                    if facts.in_recovery {
                        ", a standby (read-only)"
                    } else {
                        ""
                    },
                    match tls {
                        Some(true) => ", over TLS",
                        Some(false)
                            if info
                                .hosts()
                                .iter()
                                .any(|h| matches!(h, tend_pg::conninfo::Host::Tcp(_))) =>
                            ", without TLS",
                        _ => "",
                    }
                ),
            );
            let major = facts.major();
            match settings
                .tool_search()
                .find(PgTool::PgDump, VersionNeed::AtLeastMajor(major))
            {
                Ok(found) => report.push(
                    format!("{check}.pg_dump"),
                    Status::Ok,
                    format!(
                        "pg_dump {} can dump this PostgreSQL {major} server",
                        found.version
                    ),
                ),
                Err(err) => report.push_fix(
                    format!("{check}.pg_dump"),
                    Status::Error,
                    format!(
                        "no pg_dump of version {major} or newer: backups of this server would fail"
                    ),
                    err.to_string(),
                ),
            }
            Some(major)
        }
    }
}

/// The project's migrations: which layout tend detected (and why), where the files are,
/// and the history table in the database (the migrations' and tend check's own).
async fn check_project(
    report: &mut Report,
    settings: &Settings,
    database: Option<&ConnInfo>,
    major: Option<u32>,
) {
    use tend_migrate::{Format, source};
    let root = &settings.project_root;
    let (format, why) = match settings.migrate.format {
        Some(Format::Prisma) => (Format::Prisma, "migrate.format = \"prisma\"".to_string()),
        Some(Format::Tend) => (Format::Tend, "migrate.format = \"tend\"".to_string()),
        None => {
            let format = Format::detect(root);
            let why = match format {
                Format::Prisma => "detected from prisma/",
                Format::Tend => "no prisma/ directory",
            };
            (format, why.to_string())
        }
    };
    let layout = match format {
        Format::Prisma => "Prisma's layout (prisma/migrations/<name>/migration.sql)",
        Format::Tend => "tend's layout (migrations/<timestamp>_<name>.sql)",
    };
    let dir = settings
        .migrate
        .dir
        .clone()
        .unwrap_or_else(|| root.join(format.default_dir()));
    let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
    if dir.is_dir() {
        match source::load(&dir, format) {
            Ok(migrations) => report.push(
                "project.layout",
                Status::Info,
                format!(
                    "{layout}, {why}: {} in {shown}",
                    count(migrations.len(), "migration", "migrations")
                ),
            ),
            Err(err) => report.push_fix(
                "project.layout",
                Status::Error,
                format!("{layout}, {why}: {err}"),
                "fix or remove the file named above; `tend migrate status` shows the rest",
            ),
        }
    } else {
        report.push(
            "project.layout",
            Status::Info,
            format!(
                "{layout}, {why}: no migrations yet ({shown} does not exist); `tend migrate new NAME` creates one"
            ),
        );
    }
    let Some(info) = database.filter(|_| major.is_some()) else {
        return;
    };
    let table = format.history_table();
    let mut options = settings.connect_options();
    options.attempts = 1;
    let result = async {
        let session = tend_pg::connect(info, &options)
            .await
            .map_err(|e| e.to_string())?;
        // A diagnosis never waits behind a deploy's lock.
        session
            .batch_execute("SET lock_timeout = 1000; SET statement_timeout = 5000")
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        // Prisma keeps its table in the URL's `schema` (default: the current schema).
        if let Some(schema) = info.get("schema").filter(|s| !s.is_empty()) {
            session
                .batch_execute(&format!(
                    "SET search_path = {}",
                    tend_pg::quote_ident(schema)
                ))
                .await
                .map_err(|e| tend_pg::error_text(&e))?;
        }
        let mut history = tend_migrate::History::new(format);
        history
            .pin_schema(&session)
            .await
            .map_err(|e| tend_pg::error_text(&e))?;
        let found = if history
            .exists(&session)
            .await
            .map_err(|e| tend_pg::error_text(&e))?
        {
            Some(history.table())
        } else {
            None
        };
        let counts = match &found {
            Some(_) => {
                let rows = history
                    .load(&session)
                    .await
                    .map_err(|e| tend_pg::error_text(&e))?;
                Some((
                    rows.iter().filter(|r| r.is_applied()).count() as i64,
                    rows.iter().filter(|r| r.is_unfinished()).count() as i64,
                ))
            }
            None => None,
        };
        let registry = crate::state::Registry::builtin();
        let runs = match crate::state::state(&registry, &session).await {
            Ok(crate::state::SchemaState::Missing) | Err(_) => None,
            Ok(_) => tend_ops::history::runs(&session).await.ok(),
        };
        Ok::<_, String>((found, counts, runs))
    }
    .await;
    match result {
        Err(reason) => report.push(
            "project.history",
            Status::Warning,
            format!("could not read the migration history table {table}: {reason}"),
        ),
        Ok((Some(qualified), Some((applied, failed)), _)) if failed > 0 => report.push_fix(
            "project.history",
            Status::Warning,
            format!("history table {qualified}: {applied} applied, {failed} failed or unfinished"),
            "`tend migrate status` names them and the command that resolves each",
        ),
        Ok((Some(qualified), Some((applied, _)), runs)) => {
            report.push(
                "project.history",
                Status::Ok,
                format!(
                    "history table {qualified}: {} applied",
                    count(applied as usize, "migration", "migrations")
                ),
            );
            push_check_history(report, settings, runs);
        }
        Ok((_, _, runs)) => {
            report.push(
                "project.history",
                Status::Info,
                format!(
                    "no history table {table} in the database yet: `tend migrate deploy` creates it"
                ),
            );
            push_check_history(report, settings, runs);
        }
    }
}

fn push_check_history(report: &mut Report, settings: &Settings, runs: Option<i64>) {
    let off = !settings.checks.history;
    let message = match (runs, off) {
        (_, true) => "checks.history is off: `tend check` writes nothing to the database".to_string(),
        (Some(runs), false) => format!(
            "`tend check` keeps its history in the tend schema ({} so far); checks.history = \"off\" stops it",
            count(runs as usize, "run", "runs")
        ),
        (None, false) => "no tend schema yet: the first `tend check` creates one for its history (checks.history = \"off\" to write nothing)".to_string(),
    };
    report.push("project.check_history", Status::Info, message);
}

/// Whether backups can be encrypted (a key is set; never its value) and whether a restore
/// drill (`tend backup verify --restore`) can run here: pg_restore, and a scratch server
/// (the local cluster's programs, unless --scratch names one).
fn check_backups(report: &mut Report, settings: &Settings, major: Option<u32>) {
    let source_of = |key: &str| settings.get(key).map(|s| s.source.to_string());
    let passphrase = source_of("backup.encryption_key");
    let keys = &settings.backup.keys;
    let recipients = (!keys.recipients.is_empty()).then_some(keys.recipients.len());
    match (&passphrase, recipients) {
        (Some(_), Some(_)) => report.push_fix(
            "backup.key",
            Status::Warning,
            "both a backup passphrase (backup.encryption_key) and age recipients (backup.recipients) are set",
            "keep one: age cannot encrypt to a passphrase and recipients at once",
        ),
        (Some(from), None) => report.push(
            "backup.key",
            Status::Ok,
            format!("a backup passphrase is set (backup.encryption_key, from {from}); its value is never shown"),
        ),
        (None, Some(n)) => {
            let identity = &keys.identity_file;
            let status = if identity.as_ref().is_some_and(|p| p.is_file()) {
                "its identity file, to decrypt, exists"
            } else {
                "no identity file (backup.identity_file) here: this machine cannot decrypt them"
            };
            report.push(
                "backup.key",
                Status::Ok,
                format!(
                    "backups are encrypted to {} (backup.recipients); {status}",
                    count(n, "age recipient", "age recipients")
                ),
            );
        }
        (None, None) => report.push_fix(
            "backup.key",
            Status::Warning,
            "no backup key is set: `tend backup run` stores nothing unencrypted, so it would refuse",
            "set BACKUP_ENCRYPTION_KEY (a passphrase) or BACKUP_AGE_RECIPIENTS (age public keys)",
        ),
    }
    let search = settings.tool_search();
    let need = major.map_or(VersionNeed::Any, VersionNeed::AtLeastMajor);
    let pg_restore = search.find(PgTool::PgRestore, need);
    let server_tools: Vec<String> = [PgTool::Initdb, PgTool::PgCtl, PgTool::Postgres]
        .into_iter()
        .filter(|t| search.find(*t, need).is_err())
        .map(|t| t.program().to_string())
        .collect();
    let can_decrypt =
        passphrase.is_some() || keys.identity_file.as_ref().is_some_and(|p| p.is_file());
    let mut missing = Vec::new();
    if let Err(err) = &pg_restore {
        missing.push(format!("pg_restore ({err})"));
    }
    if !server_tools.is_empty() {
        missing.push(format!(
            "a scratch server: the local cluster needs {} (or pass --scratch URL)",
            server_tools.join(", ")
        ));
    }
    if !can_decrypt {
        missing.push("a key that decrypts the backups".to_string());
    }
    let version = major.map(|m| format!(" {m} or newer")).unwrap_or_default();
    if missing.is_empty() {
        report.push(
            "backup.restore_drill",
            Status::Ok,
            format!(
                "a restore drill can run here: pg_restore{version} and the local cluster's programs are present (`tend backup verify --restore`)"
            ),
        );
    } else {
        report.push_fix(
            "backup.restore_drill",
            Status::Warning,
            format!("a restore drill cannot run here: it lacks {}", missing.join("; ")),
            "install the missing PostgreSQL programs (`tend doctor` lists them above) or pass `--scratch URL` to `tend backup verify --restore`",
        );
    }
}
