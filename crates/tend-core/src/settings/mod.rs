//! Configuration: `tend.toml` (found in the working directory or a parent), then `.env` in
//! the project root, then the process environment, then flags, resolved once into
//! [`Settings`], the one input of every command.
//!
//! Every key is declared once in [`KEYS`]: that table drives parsing, unknown-key
//! suggestions, environment names, `tend config show`, and the file `tend init` writes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tend_pg::conninfo::ConnInfo;

mod sections;

pub use sections::{
    AlertSettings, BackupKeys, BackupSettings, ChecksSettings, CleanupSettings, DatabaseSettings,
    DevSettings, GdprSettings, HealthSettings, KeyError, MigrateSettings, MissedRuns, PitrSettings,
    SchemaSettings, ServeSettings, Setting, SpoolSettings,
};

/// The config file's name.
pub const CONFIG_FILE: &str = "tend.toml";

/// What a key holds, which decides how it is checked and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// A connection string: validated, and shown with its password masked.
    Url,
    /// A secret: never shown.
    Secret,
    Integer,
    Duration,
    /// A size in bytes: a bare number, or with a unit (kB, MB, GB, TB; KiB, MiB, GiB, TiB).
    Size,
    Path,
    Choice(&'static [&'static str]),
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// `section.name`, as written in `tend.toml`.
    pub name: &'static str,
    /// Environment variables that set it, first match wins.
    pub env: &'static [&'static str],
    pub kind: Kind,
    pub default: Option<&'static str>,
    /// One line for `tend init`'s commented file and `tend config show`.
    pub doc: &'static str,
}

/// Every key tend reads. Later features add theirs here.
pub const KEYS: &[Key] = &[
    Key {
        name: "database.url",
        env: &["DATABASE_URL"],
        kind: Kind::Url,
        default: None,
        doc: "The application database. Unset: tend uses the project's local cluster (tend dev).",
    },
    Key {
        name: "database.direct_url",
        env: &["DIRECT_URL"],
        kind: Kind::Url,
        default: None,
        doc: "A URL that bypasses a connection pooler (PgBouncer), for migrations and locks.",
    },
    Key {
        name: "database.shadow_url",
        env: &["SHADOW_DATABASE_URL"],
        kind: Kind::Url,
        default: None,
        doc: "A scratch database for replaying migrations.",
    },
    Key {
        name: "database.read_replica_url",
        env: &["DATABASE_READ_REPLICA_URL"],
        kind: Kind::Url,
        default: None,
        doc: "A read replica for read-only checks.",
    },
    Key {
        name: "database.pool_max",
        env: &["DB_POOL_MAX"],
        kind: Kind::Integer,
        default: Some("10"),
        doc: "Most connections tend opens at once to the database.",
    },
    Key {
        name: "database.connect_timeout",
        env: &["DB_CONNECT_TIMEOUT"],
        kind: Kind::Duration,
        default: Some("10s"),
        doc: "How long one connection attempt may take (\"10s\", \"500ms\"; a bare number is seconds).",
    },
    Key {
        name: "database.connect_attempts",
        env: &["DB_CONNECT_ATTEMPTS"],
        kind: Kind::Integer,
        default: Some("3"),
        doc: "Connection attempts before giving up; only connection errors are retried.",
    },
    Key {
        name: "database.query_timeout",
        env: &["DB_QUERY_TIMEOUT"],
        kind: Kind::Duration,
        default: None,
        doc: "statement_timeout for tend's sessions. Unset: the server's setting.",
    },
    Key {
        name: "database.idle_timeout",
        env: &["DB_IDLE_TIMEOUT"],
        kind: Kind::Duration,
        default: Some("10m"),
        doc: "How long an idle pooled connection is kept.",
    },
    Key {
        name: "dev.database",
        env: &["TEND_DEV_DATABASE"],
        kind: Kind::Text,
        default: Some("app"),
        doc: "The database tend creates and uses on the local cluster.",
    },
    Key {
        name: "dev.pg_user",
        env: &["TEND_PG_USER"],
        kind: Kind::Text,
        default: Some("postgres"),
        doc: "The OS user the local server runs as when tend runs as root.",
    },
    Key {
        name: "tools.pg_bindir",
        env: &["TEND_PG_BINDIR"],
        kind: Kind::Path,
        default: None,
        doc: "Directory of pg_dump, psql, initdb ... Unset: PATH, pg_config, /usr/lib/postgresql/*/bin.",
    },
    Key {
        name: "migrate.format",
        env: &["TEND_MIGRATE_FORMAT"],
        kind: Kind::Choice(&["auto", "prisma", "tend"]),
        default: Some("auto"),
        doc: "Migration layout: prisma (prisma/migrations/*/migration.sql), tend (migrations/*.sql), or auto.",
    },
    Key {
        name: "migrate.dir",
        env: &["TEND_MIGRATIONS_DIR"],
        kind: Kind::Path,
        default: None,
        doc: "Where migrations live. Unset: prisma/migrations or migrations/, by format.",
    },
    Key {
        name: "migrate.seed",
        env: &["TEND_SEED_FILE"],
        kind: Kind::Path,
        default: None,
        doc: "The seed SQL `tend seed` runs. Unset: seed.sql, or prisma/seed.sql.",
    },
    Key {
        name: "migrate.lock_wait",
        env: &["TEND_MIGRATE_LOCK_WAIT"],
        kind: Kind::Duration,
        default: Some("5m"),
        doc: "How long a deploy waits for another one (tend's or Prisma's) to finish.",
    },
    Key {
        name: "migrate.lock_timeout",
        env: &["TEND_MIGRATE_LOCK_TIMEOUT"],
        kind: Kind::Duration,
        default: None,
        doc: "lock_timeout for migration statements, so a migration never queues behind traffic for long.",
    },
    Key {
        name: "migrate.statement_timeout",
        env: &["TEND_MIGRATE_STATEMENT_TIMEOUT"],
        kind: Kind::Duration,
        default: None,
        doc: "statement_timeout for migration statements.",
    },
    Key {
        name: "schema.path",
        env: &["TEND_SCHEMA_PATH"],
        kind: Kind::Path,
        default: Some("schema"),
        doc: "The desired schema for `tend migrate dev`: a .sql file or a directory of them.",
    },
    Key {
        name: "backup.dir",
        env: &["BACKUP_DIR"],
        kind: Kind::Path,
        default: None,
        doc: "A directory for backups. Unset, with no S3 bucket: .tend/backups in the project.",
    },
    Key {
        name: "backup.s3_bucket",
        env: &["BACKUP_S3_BUCKET"],
        kind: Kind::Text,
        default: None,
        doc: "An S3-compatible bucket for backups (credentials: the standard AWS variables).",
    },
    Key {
        name: "backup.s3_region",
        env: &["BACKUP_S3_REGION", "AWS_REGION"],
        kind: Kind::Text,
        default: None,
        doc: "The bucket's region.",
    },
    Key {
        name: "backup.s3_endpoint",
        env: &["BACKUP_S3_ENDPOINT", "AWS_ENDPOINT_URL"],
        kind: Kind::Text,
        default: None,
        doc: "The endpoint of an S3-compatible server (MinIO, R2, ...).",
    },
    Key {
        name: "backup.s3_force_path_style",
        env: &["BACKUP_S3_FORCE_PATH_STYLE"],
        kind: Kind::Choice(&["true", "false"]),
        default: Some("false"),
        doc: "Address the bucket in the path (most S3-compatible servers need it).",
    },
    Key {
        name: "backup.s3_access_key_id",
        env: &["BACKUP_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"],
        kind: Kind::Text,
        default: None,
        doc: "The S3 access key id. Unset: the standard AWS sources (instance role, ~/.aws).",
    },
    Key {
        name: "backup.s3_secret_access_key",
        env: &["BACKUP_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"],
        kind: Kind::Secret,
        default: None,
        doc: "The S3 secret access key, with backup.s3_access_key_id. Never shown.",
    },
    Key {
        name: "backup.s3_session_token",
        env: &["BACKUP_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"],
        kind: Kind::Secret,
        default: None,
        doc: "A temporary session token that goes with the access key. Never shown.",
    },
    Key {
        name: "backup.s3_prefix",
        env: &["BACKUP_S3_PREFIX"],
        kind: Kind::Text,
        default: None,
        doc: "A folder inside the bucket.",
    },
    Key {
        name: "backup.encryption_key",
        env: &["BACKUP_ENCRYPTION_KEY"],
        kind: Kind::Secret,
        default: None,
        doc: "A passphrase that encrypts backups (age's scrypt). Never shown.",
    },
    Key {
        name: "backup.recipients",
        env: &["BACKUP_AGE_RECIPIENTS"],
        kind: Kind::Text,
        default: None,
        doc: "age public keys (age1..., comma-separated) that encrypt backups, instead of a passphrase.",
    },
    Key {
        name: "backup.identity_file",
        env: &["BACKUP_AGE_IDENTITY_FILE"],
        kind: Kind::Path,
        default: None,
        doc: "The age identity file (AGE-SECRET-KEY-1...) that decrypts backups made for recipients.",
    },
    Key {
        name: "backup.compression_level",
        env: &["BACKUP_COMPRESSION_LEVEL"],
        kind: Kind::Integer,
        default: Some("3"),
        doc: "zstd level (1-19): 3 is fast and already beats gzip -6.",
    },
    Key {
        name: "backup.physical_compression_level",
        env: &["BACKUP_PHYSICAL_COMPRESSION_LEVEL"],
        kind: Kind::Integer,
        default: Some("1"),
        doc: "zstd level (1-19) of physical backups (`backup run --physical`): the whole cluster passes through it, and 1 keeps the backup as fast as the server can send it, a few percent larger than 3.",
    },
    Key {
        name: "backup.retention.keep_last",
        env: &[],
        kind: Kind::Integer,
        default: None,
        doc: "`tend backup prune` keeps the newest N backups.",
    },
    Key {
        name: "backup.retention.keep_daily",
        env: &[],
        kind: Kind::Integer,
        default: Some("7"),
        doc: "... and the newest backup of each of the last N days that have one.",
    },
    Key {
        name: "backup.retention.keep_weekly",
        env: &[],
        kind: Kind::Integer,
        default: Some("4"),
        doc: "... of each of the last N ISO weeks.",
    },
    Key {
        name: "backup.retention.keep_monthly",
        env: &[],
        kind: Kind::Integer,
        default: Some("12"),
        doc: "... of each of the last N months.",
    },
    Key {
        name: "backup.retention.keep_yearly",
        env: &[],
        kind: Kind::Integer,
        default: None,
        doc: "... of each of the last N years.",
    },
    Key {
        name: "backup.retention.max_age_days",
        env: &["BACKUP_RETENTION_DAYS"],
        kind: Kind::Integer,
        default: None,
        doc: "Backups older than this are deleted whatever the rules say (never the newest verified one).",
    },
    Key {
        name: "backup.schedule",
        env: &["BACKUP_SCHEDULE"],
        kind: Kind::Text,
        default: Some("0 2 * * *"),
        doc: "When `tend serve` takes the scheduled backup (cron: minute hour day month weekday), for a `backup` entry with no `cron`.",
    },
    Key {
        name: "pitr.spool_dir",
        env: &["TEND_WAL_SPOOL_DIR"],
        kind: Kind::Path,
        default: None,
        doc: "A local directory where `tend wal-push` keeps WAL (compressed and encrypted) while the store cannot take it, so archiving goes on through an outage; drained in order when the store is back. Unset: no spool, and a push fails while the store is away.",
    },
    Key {
        name: "pitr.spool_max",
        env: &["TEND_WAL_SPOOL_MAX"],
        kind: Kind::Size,
        default: Some("1GB"),
        doc: "The most the spool holds: past it, `tend wal-push` fails, and PostgreSQL keeps the WAL in pg_wal and tries again.",
    },
    Key {
        name: "pitr.spool_after",
        env: &["TEND_WAL_SPOOL_AFTER"],
        kind: Kind::Duration,
        default: Some("10s"),
        doc: "How long `tend wal-push` waits for the store before it spools a file; once the store is away, pushes spool at once and try the store again every three times this.",
    },
    Key {
        name: "pitr.window",
        env: &["TEND_PITR_WINDOW"],
        kind: Kind::Duration,
        default: None,
        doc: "How far back point-in-time recovery must reach (e.g. `7d`): `tend backup prune` keeps the physical backup that window starts from, whatever the retention policy says, and `tend pitr status` and `tend serve` (alert `pitr_window_short`) say when the recoverable window is shorter. Unset: the retention policy alone decides.",
    },
    Key {
        name: "health.latency_warning",
        env: &["DB_CONNECTION_TIME_THRESHOLD"],
        kind: Kind::Duration,
        default: Some("500ms"),
        doc: "`tend health` warns when connecting plus one round trip takes this long (a bare number is seconds; the environment variable is in milliseconds).",
    },
    Key {
        name: "health.latency_critical",
        env: &[],
        kind: Kind::Duration,
        default: Some("2s"),
        doc: "`tend health` is critical when connecting plus one round trip takes this long.",
    },
    Key {
        name: "checks.history",
        env: &["TEND_CHECK_HISTORY"],
        kind: Kind::Choice(&["on", "off"]),
        default: Some("on"),
        doc: "Keep each `tend check` run's results in the database's `tend` schema (for growth and trends).",
    },
    Key {
        name: "cleanup.soft_delete",
        env: &["TEND_SOFT_DELETE"],
        kind: Kind::Choice(&["on", "off"]),
        default: Some("on"),
        doc: "`tend cleanup` purges rows soft-deleted (a `deleted_at` or `deletedAt` timestamp column) longer ago than cleanup.soft_delete_grace, in every table that has one, besides the `[[retention]]` rules.",
    },
    Key {
        name: "cleanup.soft_delete_grace",
        env: &["SOFT_DELETE_GRACE_PERIOD_DAYS"],
        kind: Kind::Duration,
        default: Some("30d"),
        doc: "How long a soft-deleted row is kept before `tend cleanup` purges it (the environment variable is in days).",
    },
    Key {
        name: "cleanup.batch_budget",
        env: &["TEND_CLEANUP_BATCH_BUDGET"],
        kind: Kind::Duration,
        default: Some("200ms"),
        doc: "The longest a purge's batch may hold its row locks: batches are sized to a quarter of it, and it is each batch's lock_timeout.",
    },
    Key {
        name: "cleanup.max_batch",
        env: &["TEND_CLEANUP_MAX_BATCH"],
        kind: Kind::Integer,
        default: Some("10000"),
        doc: "The most rows one batch of a purge deletes, however fast the table is.",
    },
    Key {
        name: "cleanup.duty_cycle",
        env: &["TEND_CLEANUP_DUTY_CYCLE"],
        kind: Kind::Text,
        default: Some("6%"),
        doc: "The share of time a purge spends deleting (a percentage, or a fraction): after each batch it rests so the application keeps the rest of the server. 100% runs flat out.",
    },
    Key {
        name: "cleanup.max_replica_lag",
        env: &["TEND_CLEANUP_MAX_REPLICA_LAG"],
        kind: Kind::Duration,
        default: Some("30s"),
        doc: "A purge waits between batches while a replica's replay lag is longer than this (read from pg_stat_replication: the role needs pg_read_all_stats to see it).",
    },
    Key {
        name: "gdpr.salt",
        env: &["TEND_GDPR_SALT"],
        kind: Kind::Secret,
        default: None,
        doc: "The secret `tend gdpr erase` mixes into hashed and fake values (hash, fake-email, fake-name), so they cannot be matched back to the originals by hashing guesses; keep it secret and unchanged.",
    },
    Key {
        name: "serve.listen",
        env: &["TEND_SERVE_LISTEN"],
        kind: Kind::Text,
        default: Some("127.0.0.1:8432"),
        doc: "Address of `tend serve`'s HTTP endpoints (health, API); a non-loopback address needs serve.token.",
    },
    Key {
        name: "serve.token",
        env: &["TEND_SERVE_TOKEN"],
        kind: Kind::Secret,
        default: None,
        doc: "Bearer token the API asks for (`Authorization: Bearer ...`); /healthz and /readyz need none.",
    },
    Key {
        name: "serve.interval",
        env: &["TEND_SERVE_INTERVAL"],
        kind: Kind::Duration,
        default: Some("10s"),
        doc: "How often a standby tries to take the lead, and the leader checks it still holds it.",
    },
    Key {
        name: "serve.time_zone",
        env: &["TEND_TIME_ZONE"],
        kind: Kind::Text,
        default: Some("UTC"),
        doc: "Time zone of schedule entries that name none (an IANA name: UTC, Europe/Berlin).",
    },
    Key {
        name: "serve.missed_runs",
        env: &[],
        kind: Kind::Choice(&["run-once", "skip"]),
        default: Some("run-once"),
        doc: "A run missed while no instance led: run it once when one takes the lead (within serve.missed_window), or skip it.",
    },
    Key {
        name: "serve.missed_window",
        env: &[],
        kind: Kind::Duration,
        default: Some("6h"),
        doc: "How late a missed run may still be run.",
    },
    Key {
        name: "serve.stop_timeout",
        env: &[],
        kind: Kind::Duration,
        default: Some("60s"),
        doc: "On SIGTERM, how long running tasks get to stop cleanly before tend exits.",
    },
    Key {
        name: "serve.run_retention_days",
        env: &[],
        kind: Kind::Integer,
        default: Some("90"),
        doc: "Days the record of each scheduled run is kept in the `tend` schema.",
    },
    Key {
        name: "alerts.webhook_url",
        env: &["TEND_ALERT_WEBHOOK_URL"],
        kind: Kind::Secret,
        default: None,
        doc: "`tend serve` posts each alert (firing and resolved) as JSON to this URL.",
    },
    Key {
        name: "alerts.slack_webhook_url",
        env: &["SLACK_WEBHOOK_URL"],
        kind: Kind::Secret,
        default: None,
        doc: "A Slack (or Slack-compatible) incoming webhook for alerts.",
    },
    Key {
        name: "alerts.email_to",
        env: &["ALERT_EMAIL"],
        kind: Kind::Text,
        default: None,
        doc: "Addresses that get alerts by email, comma-separated (needs alerts.smtp_url).",
    },
    Key {
        name: "alerts.email_from",
        env: &["ALERT_EMAIL_FROM"],
        kind: Kind::Text,
        default: None,
        doc: "The From address of alert emails (default: tend@ and the host's name).",
    },
    Key {
        name: "alerts.smtp_url",
        env: &["SMTP_URL"],
        kind: Kind::Secret,
        default: None,
        doc: "The mail server: smtps://user:pass@host:465 (TLS), smtp://user:pass@host:587?tls=required (STARTTLS), smtp://host:25 (no TLS).",
    },
    Key {
        name: "alerts.database_size_limit",
        env: &["TEND_ALERT_DATABASE_SIZE"],
        kind: Kind::Text,
        default: Some("10GB"),
        doc: "Alert when the database grows past this size (kB, MB, GB, TB: powers of 1024, as PostgreSQL).",
    },
    Key {
        name: "alerts.backup_grace",
        env: &[],
        kind: Kind::Duration,
        default: Some("1h"),
        doc: "Alert when the last successful backup is older than its schedule's period plus this.",
    },
    Key {
        name: "alerts.replication_lag",
        env: &[],
        kind: Kind::Duration,
        default: Some("5m"),
        doc: "Alert when a standby lags by more than this.",
    },
];

/// Where a value came from, for `tend config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Default,
    File { path: PathBuf },
    DotEnv { path: PathBuf, var: String },
    Env { var: String },
    Flag { flag: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File { path } => write!(f, "{}", path.display()),
            Source::DotEnv { path, var } => write!(f, "{var} in {}", path.display()),
            Source::Env { var } => write!(f, "env {var}"),
            Source::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Clone)]
pub struct Sourced {
    pub value: String,
    pub source: Source,
}

/// Only the source: the value may be a password or a URL holding one.
impl fmt::Debug for Sourced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sourced")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why configuration could not be resolved. Each is one sentence with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid TOML (line {line}): {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{} line {line} is not valid UTF-8; save the file as UTF-8 (tend reads nothing from a file it cannot decode)",
        path.display()
    )]
    NotUtf8 { path: PathBuf, line: usize },
    #[error("{} line {line} {reason}", path.display())]
    DotEnvSyntax {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("the environment variable {var} is not valid UTF-8; set it to UTF-8 text or unset it")]
    EnvNotUnicode { var: String },
    #[error("unknown key `{key}` in {}{}", path.display(), suggestion(.nearest))]
    UnknownKey {
        key: String,
        path: PathBuf,
        nearest: Option<&'static str>,
    },
    #[error("`{key}` in {} must be {expected}", path.display())]
    WrongType {
        key: String,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{key} (from {origin}) is invalid: {reason}")]
    Invalid {
        key: &'static str,
        origin: Source,
        reason: String,
    },
    #[error(
        "there is no check `{id}` (in {}){}; `tend check --list` lists them",
        path.display(),
        nearest.map(|n| format!("; did you mean `{n}`?")).unwrap_or_default()
    )]
    UnknownCheck {
        id: String,
        path: PathBuf,
        nearest: Option<&'static str>,
    },
    #[error("the config file {} given with --config does not exist", path.display())]
    MissingFile { path: PathBuf },
    #[error("{} has a bad [gdpr] section: {reason}", path.display())]
    Gdpr { path: PathBuf, reason: String },
    #[error("{} has a bad retention rule: {reason}", path.display())]
    Retention { path: PathBuf, reason: String },
    #[error("{} has a bad schedule: {reason}", path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the default routine".to_string()))]
    Schedule {
        path: Option<PathBuf>,
        reason: String,
    },
}

fn suggestion(nearest: &Option<&'static str>) -> String {
    match nearest {
        Some(key) => format!("; did you mean `{key}`?"),
        None => format!(
            "; valid sections are {}",
            sections().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn sections() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    KEYS.iter().filter_map(move |k| {
        let section = k.name.split('.').next().expect("keys have a section");
        if seen.contains(&section) {
            None
        } else {
            seen.push(section);
            Some(section)
        }
    })
}

/// The closest known key to a misspelt one, if any is close enough to be a plausible typo.
pub fn nearest_key(unknown: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (k.name, strsim::damerau_levenshtein(unknown, k.name)))
        .chain(
            // A key without its section ("url") or in the wrong section.
            KEYS.iter().map(|k| {
                let tail = k.name.split_once('.').map(|(_, t)| t).unwrap_or(k.name);
                let unknown_tail = unknown.split_once('.').map(|(_, t)| t).unwrap_or(unknown);
                (k.name, strsim::damerau_levenshtein(unknown_tail, tail) + 1)
            }),
        )
        .filter(|(_, distance)| *distance <= 3)
        .min_by_key(|(_, distance)| *distance)
        .map(|(name, _)| name)
}

/// What the command line says about configuration (global flags).
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    pub config: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// The resolved configuration: typed sections, each value parsed once, plus the raw
/// values with their sources for `tend config show` and the secrets output must mask.
#[derive(Debug, Clone)]
pub struct Settings {
    values: BTreeMap<&'static str, Sourced>,
    pub database: DatabaseSettings,
    pub dev: DevSettings,
    pub migrate: MigrateSettings,
    pub schema: SchemaSettings,
    pub backup: BackupSettings,
    pub pitr: PitrSettings,
    pub health: HealthSettings,
    pub checks: ChecksSettings,
    pub serve: ServeSettings,
    pub alerts: AlertSettings,
    pub cleanup: CleanupSettings,
    pub gdpr: GdprSettings,
    /// `TEND_PG_BINDIR`: where PostgreSQL programs are looked for first.
    pub pg_bindir: Option<PathBuf>,
    /// The directory holding `tend.toml`, or the working directory when there is none.
    pub project_root: PathBuf,
    pub config_file: Option<PathBuf>,
    /// Built once: it remembers which programs it ran, so a command that needs several
    /// does not run `--version` on each candidate again.
    tools: std::sync::OnceLock<tend_pg::ToolSearch>,
}

impl Settings {
    /// Resolves settings from the file, `.env`, the given environment and flags.
    pub fn resolve(
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &FlagOverrides,
    ) -> Result<Settings, ConfigError> {
        let config_file = match &flags.config {
            Some(path) => {
                let path = cwd.join(path);
                if !path.is_file() {
                    return Err(ConfigError::MissingFile { path });
                }
                Some(path)
            }
            None => find_config(cwd),
        };
        let project_root = config_file
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| cwd.to_path_buf());
        let mut values = BTreeMap::new();
        for key in KEYS {
            if let Some(default) = key.default {
                values.insert(
                    key.name,
                    Sourced {
                        value: default.to_string(),
                        source: Source::Default,
                    },
                );
            }
        }
        let mut checks = BTreeMap::new();
        let mut schedule = None;
        let mut retention = Vec::new();
        let mut gdpr = None;
        if let Some(path) = &config_file {
            let contents = read_config_file(path)?;
            for (name, value) in contents.values {
                values.insert(
                    name,
                    Sourced {
                        value,
                        source: Source::File { path: path.clone() },
                    },
                );
            }
            checks = contents.checks;
            schedule = contents.schedule;
            retention = contents.retention;
            gdpr = contents.gdpr;
        }
        let dotenv_path = project_root.join(".env");
        let dotenv = read_dotenv(&dotenv_path)?;
        for key in KEYS {
            for var in key.env {
                if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                    values.insert(
                        key.name,
                        Sourced {
                            value,
                            source: Source::Env {
                                var: var.to_string(),
                            },
                        },
                    );
                    break;
                }
                if let Some(value) = dotenv.get(*var).filter(|v| !v.is_empty()) {
                    // .env sits below the real environment, above the file.
                    let file_set = matches!(
                        values.get(key.name),
                        Some(Sourced {
                            source: Source::Env { .. },
                            ..
                        })
                    );
                    if !file_set {
                        values.insert(
                            key.name,
                            Sourced {
                                value: value.clone(),
                                source: Source::DotEnv {
                                    path: dotenv_path.clone(),
                                    var: var.to_string(),
                                },
                            },
                        );
                    }
                    break;
                }
            }
        }
        if let Some(url) = &flags.database_url {
            values.insert(
                "database.url",
                Sourced {
                    value: url.clone(),
                    source: Source::Flag {
                        flag: "--database-url".to_string(),
                    },
                },
            );
        }
        // The variables these teams' scripts already use, mapped onto checks.
        let dotenv_or_env = |var: &str| env(var).or_else(|| dotenv.get(var).cloned());
        for &(var, check, scale) in THRESHOLD_VARS {
            if let Some(raw) = dotenv_or_env(var).filter(|v| !v.is_empty()) {
                let number: f64 = raw
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite() && *n >= 0.0 && *n <= 1e15)
                    .ok_or_else(|| ConfigError::Invalid {
                        key: check,
                        origin: Source::Env {
                            var: var.to_string(),
                        },
                        reason: format!("{var} must be a number from 0 to 10^15"),
                    })?;
                checks
                    .entry(check.to_string())
                    .or_insert_with(tend_ops::CheckOverride::default)
                    .warning = Some(number * scale);
            }
        }
        // DB_CONNECTION_TIME_THRESHOLD is milliseconds in those scripts.
        if let Some(Sourced {
            value,
            source: Source::Env { var } | Source::DotEnv { var, .. },
        }) = values.get_mut("health.latency_warning")
            && var == "DB_CONNECTION_TIME_THRESHOLD"
            && value.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            value.push_str("ms");
        }
        // SOFT_DELETE_GRACE_PERIOD_DAYS is days in those scripts.
        if let Some(Sourced {
            value,
            source: Source::Env { var } | Source::DotEnv { var, .. },
        }) = values.get_mut("cleanup.soft_delete_grace")
            && var == "SOFT_DELETE_GRACE_PERIOD_DAYS"
            && value.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            value.push('d');
        }
        validate(&values)?;
        Settings::build(
            values,
            checks,
            schedule,
            retention,
            gdpr,
            project_root,
            config_file,
        )
    }

    /// The typed sections from validated values.
    fn build(
        values: BTreeMap<&'static str, Sourced>,
        checks: BTreeMap<String, tend_ops::CheckOverride>,
        schedule: Option<Vec<crate::schedule::RawEntry>>,
        retention: Vec<crate::cleanup::RetentionConfig>,
        gdpr: Option<crate::gdpr::GdprConfig>,
        project_root: PathBuf,
        config_file: Option<PathBuf>,
    ) -> Result<Settings, ConfigError> {
        let read = sections::Reader {
            values: &values,
            project_root: &project_root,
        };
        let cleanup = read.cleanup(retention)?;
        Ok(Settings {
            gdpr: crate::settings::GdprSettings {
                config: gdpr,
                salt: read.text("gdpr.salt"),
            },
            checks: read.checks(checks, &cleanup)?,
            cleanup,
            database: read.database()?,
            dev: read.dev()?,
            migrate: read.migrate()?,
            schema: read.schema()?,
            backup: read.backup()?,
            pitr: read.pitr()?,
            health: read.health()?,
            serve: read.serve(schedule, config_file.as_deref())?,
            alerts: read.alerts()?,
            pg_bindir: read.path("tools.pg_bindir"),
            values,
            project_root,
            config_file,
            tools: std::sync::OnceLock::new(),
        })
    }

    /// The defaults alone, with no file and no environment read: what `doctor` checks the
    /// tools with when the configuration cannot be read.
    pub fn defaults(project_root: &Path) -> Settings {
        let values = KEYS
            .iter()
            .filter_map(|key| {
                key.default.map(|default| {
                    (
                        key.name,
                        Sourced {
                            value: default.to_string(),
                            source: Source::Default,
                        },
                    )
                })
            })
            .collect();
        Settings::build(
            values,
            BTreeMap::new(),
            None,
            Vec::new(),
            None,
            project_root.to_path_buf(),
            None,
        )
        .expect("the defaults in KEYS are valid (a unit test resolves them)")
    }

    /// A key's raw value and its source (`tend config show`, `doctor`, and where a
    /// value came from); commands read the typed sections instead.
    pub fn get(&self, key: &str) -> Option<&Sourced> {
        self.values.get(key)
    }

    /// Every secret value (passwords in URLs, secret keys), so output can mask them.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for key in KEYS {
            let Some(sourced) = self.values.get(key.name) else {
                continue;
            };
            if key.kind == Kind::Url {
                // Even a URL that does not parse: its password may be anywhere in it.
                secrets.extend(tend_pg::conninfo::secret_candidates(&sourced.value));
            }
            if key.kind == Kind::Secret {
                secrets.push(sourced.value.clone());
            }
        }
        secrets
    }

    /// Each key with its display value (secrets masked) and source, for `config show`.
    pub fn entries(&self) -> Vec<Entry> {
        KEYS.iter()
            .map(|key| {
                let sourced = self.values.get(key.name);
                Entry {
                    key: key.name,
                    value: sourced.map(|s| display_value(key.kind, &s.value)),
                    source: sourced.map(|s| s.source.clone()),
                    env: key.env.first().copied(),
                }
            })
            .collect()
    }

    /// The connection settings every command uses.
    pub fn connect_options(&self) -> tend_pg::ConnectOptions {
        self.database.connect_options()
    }

    /// Where to find PostgreSQL programs.
    pub fn tool_search(&self) -> tend_pg::ToolSearch {
        self.tools
            .get_or_init(|| tend_pg::ToolSearch::new(self.pg_bindir.clone()))
            .clone()
    }
}

/// Checks every raw value against its key's kind and range: an absurd count, level, size or
/// duration is a config error at resolve time, never a panic later.
fn validate(values: &BTreeMap<&'static str, Sourced>) -> Result<(), ConfigError> {
    for key in KEYS {
        let Some(sourced) = values.get(key.name) else {
            continue;
        };
        let invalid = |reason: String| ConfigError::Invalid {
            key: key.name,
            origin: sourced.source.clone(),
            reason,
        };
        match key.kind {
            Kind::Url => {
                ConnInfo::parse(&sourced.value).map_err(|e| invalid(e.to_string()))?;
            }
            Kind::Integer => {
                let range = integer_range(key.name);
                let in_range = sourced
                    .value
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|n| range.contains(&n));
                if !in_range {
                    return Err(invalid(format!(
                        "it must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    )));
                }
            }
            Kind::Duration => {
                let duration = parse_duration(&sourced.value).map_err(invalid)?;
                let max = duration_max(key.name);
                if duration > max {
                    return Err(invalid(format!(
                        "it must be at most {}",
                        describe_duration(max)
                    )));
                }
            }
            Kind::Size => {
                parse_size(&sourced.value).map_err(invalid)?;
            }
            Kind::Choice(choices) => {
                if !choices.contains(&sourced.value.as_str()) {
                    return Err(invalid(format!("it must be one of {}", choices.join(", "))));
                }
            }
            Kind::Text | Kind::Path | Kind::Secret => {}
        }
    }
    Ok(())
}

/// The values an integer key accepts; anything outside is a config error at resolve time,
/// so no command meets an absurd count, level or size.
fn integer_range(key: &str) -> std::ops::RangeInclusive<u32> {
    match key {
        "database.pool_max" => 1..=10_000,
        "database.connect_attempts" => 1..=100,
        "backup.compression_level" | "backup.physical_compression_level" => 1..=19,
        // A century of days.
        "backup.retention.max_age_days" => 0..=36_500,
        "serve.run_retention_days" => 1..=36_500,
        _ => 0..=1_000_000,
    }
}

/// The longest value a duration key accepts. PostgreSQL's `statement_timeout` and
/// `lock_timeout` are milliseconds in a 32-bit integer (about 24.8 days).
fn duration_max(key: &str) -> Duration {
    match key {
        "database.query_timeout" | "migrate.lock_timeout" | "migrate.statement_timeout" => {
            Duration::from_millis(i32::MAX as u64)
        }
        _ => MAX_DURATION,
    }
}

/// No duration tend reads may be longer than this (a hundred years).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

fn describe_duration(d: Duration) -> String {
    if d == MAX_DURATION {
        "100 years".to_string()
    } else {
        format!("{}ms (PostgreSQL's limit)", d.as_millis())
    }
}

/// Checks that every environment variable tend reads holds UTF-8: a variable that is set
/// but cannot be decoded is an error, never treated as unset.
pub fn check_environment(
    get: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(), ConfigError> {
    let vars = KEYS
        .iter()
        .flat_map(|k| k.env.iter().copied())
        .chain(THRESHOLD_VARS.iter().map(|(var, _, _)| *var));
    for var in vars {
        if let Some(value) = get(var)
            && value.to_str().is_none()
        {
            return Err(ConfigError::EnvNotUnicode {
                var: var.to_string(),
            });
        }
    }
    Ok(())
}

/// The variables these teams' scripts already use, mapped onto checks' warning thresholds
/// (variable, check, scale to the check's unit).
const THRESHOLD_VARS: &[(&str, &str, f64)] = &[
    ("DB_QUERY_TIME_THRESHOLD", "queries.long_running", 0.001),
    ("DB_CONNECTION_COUNT_THRESHOLD", "connections.count", 1.0),
];

/// One line of `tend config show`.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub key: &'static str,
    pub value: Option<String>,
    pub source: Option<Source>,
    pub env: Option<&'static str>,
}

fn display_value(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Url => ConnInfo::parse(value)
            .map(|c| c.redacted().to_string())
            .unwrap_or_else(|_| "(invalid)".to_string()),
        Kind::Secret => tend_pg::conninfo::MASK.to_string(),
        _ => value.to_string(),
    }
}

/// `tend.toml` in `start` or the nearest parent.
pub fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|p| p.is_file())
}

/// What a tend.toml holds: plain keys, and per-check settings.
struct FileContents {
    values: Vec<(&'static str, String)>,
    checks: BTreeMap<String, tend_ops::CheckOverride>,
    /// `[[schedule]]` entries, when the file has any.
    schedule: Option<Vec<crate::schedule::RawEntry>>,
    /// `[[retention]]` entries.
    retention: Vec<crate::cleanup::RetentionConfig>,
    /// `[gdpr]`, when the file has it.
    gdpr: Option<crate::gdpr::GdprConfig>,
}

fn read_config_file(path: &Path) -> Result<FileContents, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = decode_utf8(path, &bytes)?;
    parse_config_text(path, text)
}

/// Checks a `tend.toml`'s bytes as [`Settings::resolve`] reads them, with no file system:
/// the entry point of the fuzz target.
pub fn parse_config_file(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let text = decode_utf8(path, bytes)?;
    parse_config_text(path, text).map(|_| ())
}

fn parse_config_text(path: &Path, text: &str) -> Result<FileContents, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map(|span| line_of(text, span.start)).unwrap_or(1),
            // toml's message alone: its rendered form quotes the line, which may hold a
            // password.
            message: e.message().trim().to_string(),
        })?;
    let mut checks = BTreeMap::new();
    if let Some(toml::Value::Table(section)) = table.get("checks") {
        collect_checks(path, "", section, &mut checks)?;
    }
    let schedule = match table.get("schedule") {
        None => None,
        Some(toml::Value::Array(array)) => Some(crate::schedule::parse_array(array).map_err(
            |reason| ConfigError::Schedule {
                path: Some(path.to_path_buf()),
                reason,
            },
        )?),
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "schedule".to_string(),
                path: path.to_path_buf(),
                expected: "an array of tables, written [[schedule]]",
            });
        }
    };
    let retention = match table.get("retention") {
        None => Vec::new(),
        Some(toml::Value::Array(array)) => {
            crate::cleanup::config::parse_array(array).map_err(|reason| ConfigError::Retention {
                path: path.to_path_buf(),
                reason,
            })?
        }
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "retention".to_string(),
                path: path.to_path_buf(),
                expected: "an array of tables, written [[retention]]",
            });
        }
    };
    let gdpr = match table.get("gdpr") {
        None => None,
        Some(toml::Value::Table(section)) => Some(crate::gdpr::config::parse(section).map_err(
            |reason| ConfigError::Gdpr {
                path: path.to_path_buf(),
                reason,
            },
        )?),
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "gdpr".to_string(),
                path: path.to_path_buf(),
                expected: "a table, written [gdpr]",
            });
        }
    };
    let mut out = Vec::new();
    for (section, value) in &table {
        if section == "schedule" || section == "retention" {
            continue;
        }
        // [gdpr] is read above, but for its salt, a plain (secret) key.
        let value = &match (section.as_str(), value) {
            ("gdpr", toml::Value::Table(entries)) => toml::Value::Table(
                entries
                    .iter()
                    .filter(|(k, _)| k.as_str() == "salt")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => value.clone(),
        };
        let toml::Value::Table(entries) = value else {
            let key = section.to_string();
            return Err(ConfigError::UnknownKey {
                nearest: nearest_key(&key),
                key,
                path: path.to_path_buf(),
            });
        };
        // Sub-tables (`[backup.retention]`) hold keys named `section.table.key`.
        let mut flat: Vec<(String, &toml::Value)> = Vec::new();
        for (name, value) in entries {
            match value {
                toml::Value::Table(_) if section == "checks" => {}
                toml::Value::Table(inner) => {
                    for (sub, v) in inner {
                        flat.push((format!("{name}.{sub}"), v));
                    }
                }
                other => flat.push((name.clone(), other)),
            }
        }
        for (name, value) in &flat {
            let value = *value;
            let full = format!("{section}.{name}");
            let Some(key) = KEYS.iter().find(|k| k.name == full) else {
                return Err(ConfigError::UnknownKey {
                    nearest: nearest_key(&full),
                    key: full,
                    path: path.to_path_buf(),
                });
            };
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i)
                    if matches!(key.kind, Kind::Integer | Kind::Duration | Kind::Size) =>
                {
                    i.to_string()
                }
                _ => {
                    return Err(ConfigError::WrongType {
                        key: full,
                        path: path.to_path_buf(),
                        expected: match key.kind {
                            Kind::Integer => "a whole number",
                            Kind::Duration => "a duration such as \"30s\" or a number of seconds",
                            Kind::Size => "a size such as \"1GB\" or a number of bytes",
                            _ => "a string",
                        },
                    });
                }
            };
            out.push((key.name, text));
        }
    }
    Ok(FileContents {
        values: out,
        checks,
        schedule,
        retention,
        gdpr,
    })
}

/// Reads `[checks."<id>"]` (or nested `[checks.<category>.<name>]`) tables: `warning`,
/// `critical` and `enabled` for a check of the catalog.
fn collect_checks(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, tend_ops::CheckOverride>,
) -> Result<(), ConfigError> {
    const FIELDS: [&str; 3] = ["warning", "critical", "enabled"];
    for (name, value) in table {
        let toml::Value::Table(inner) = value else {
            continue;
        };
        let id = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        let is_settings = inner.keys().all(|k| FIELDS.contains(&k.as_str()));
        let known =
            tend_ops::checks::find(&id).is_some() || crate::checks::core_check(&id).is_some();
        if !is_settings || !known {
            if inner.values().all(toml::Value::is_table) && !known {
                collect_checks(path, &id, inner, out)?;
                continue;
            }
            if !known {
                return Err(ConfigError::UnknownCheck {
                    nearest: nearest_check(&id),
                    id,
                    path: path.to_path_buf(),
                });
            }
        }
        let mut over = tend_ops::CheckOverride::default();
        for (field, value) in inner {
            let wrong = |expected: &'static str| ConfigError::WrongType {
                key: format!("checks.\"{id}\".{field}"),
                path: path.to_path_buf(),
                expected,
            };
            match field.as_str() {
                "warning" | "critical" => {
                    let number = match value {
                        toml::Value::Integer(i) => *i as f64,
                        toml::Value::Float(f) if f.is_finite() => *f,
                        _ => return Err(wrong("a finite number")),
                    };
                    if field == "warning" {
                        over.warning = Some(number);
                    } else {
                        over.critical = Some(number);
                    }
                }
                "enabled" => {
                    over.enabled = Some(value.as_bool().ok_or_else(|| wrong("true or false"))?);
                }
                other => {
                    return Err(ConfigError::UnknownKey {
                        key: format!("checks.\"{id}\".{other}"),
                        path: path.to_path_buf(),
                        nearest: None,
                    });
                }
            }
        }
        out.insert(id, over);
    }
    Ok(())
}

fn nearest_check(id: &str) -> Option<&'static str> {
    tend_ops::checks::catalog()
        .into_iter()
        .map(|c| (c.id, strsim::damerau_levenshtein(id, c.id)))
        .filter(|(_, d)| *d <= 4)
        .min_by_key(|(_, d)| *d)
        .map(|(id, _)| id)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A config file's text, or an error naming the first line that is not UTF-8.
fn decode_utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
    })
}

/// A `.env` file as Prisma and dotenv read it: `KEY=value`, optional `export`, quotes
/// (which may span lines) and `#` comments. A missing file is empty; a file that exists but
/// cannot be read, is not UTF-8 or has a line that is not `KEY=value` is an error naming
/// the line, never skipped: skipping it would send tend to another database.
pub fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let text = decode_utf8(path, &bytes)?;
    parse_dotenv(text).map_err(|(line, reason)| ConfigError::DotEnvSyntax {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// Parses `.env` text; an error is the 1-based line and what is wrong with it (never the
/// line's text, which may hold a secret).
pub fn parse_dotenv(text: &str) -> Result<BTreeMap<String, String>, (usize, &'static str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let number = index + 1;
        let line = lines[index].trim();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((number, "is not `NAME=value` (a comment starts with #)"));
        };
        let key = key.trim();
        let valid_name = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid_name {
            return Err((
                number,
                "has a name that is not a variable name (letters, digits and `_`)",
            ));
        }
        let value = value.trim_start();
        let value = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                // The value runs to the closing quote, over as many lines as it takes.
                let mut body = value[1..].to_string();
                let closing = loop {
                    if let Some(end) = closing_quote(&body, quote) {
                        break end;
                    }
                    let Some(next) = lines.get(index) else {
                        return Err((number, "opens a quoted value that is never closed"));
                    };
                    body.push('\n');
                    body.push_str(next);
                    index += 1;
                };
                let rest = body[closing + 1..].trim();
                if !rest.is_empty() && !rest.starts_with('#') {
                    return Err((number, "has text after the closing quote of its value"));
                }
                let inner = &body[..closing];
                if quote == '"' {
                    unescape_double_quoted(inner)
                } else {
                    inner.to_string()
                }
            }
            _ => value
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// The byte index of the first unescaped `quote` in `body`.
fn closing_quote(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape_double_quoted(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A number and the unit after it (`30s`, `1.5 GB`), with the text as errors show it
/// (at most 40 characters); `what` completes "is not ..." when there is no number.
fn number_and_unit<'t>(text: &'t str, what: &str) -> Result<(f64, &'t str, String), String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shown: String = text.chars().take(40).collect();
    let number: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(|| format!("`{shown}` is not {what}"))?;
    Ok((number, unit, shown))
}

/// "10s", "500ms", "5m", "2h", "1d", or a bare number of seconds; at most
/// [`MAX_DURATION`], so an absurd value is an error and never an overflow.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit, shown) =
        number_and_unit(text, "a duration; write e.g. \"30s\", \"500ms\" or \"5m\"")?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "`{shown}` has an unknown duration unit; use ms, s, m, h or d"
            ));
        }
    };
    let seconds = number * scale;
    if !seconds.is_finite() || seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!("`{shown}` is longer than tend accepts (100 years)"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{shown}` is not a duration"))
}

/// Parses a size: a number of bytes, or a number with a unit (kB, MB, GB, TB in powers of
/// 1000, KiB, MiB, GiB, TiB in powers of 1024, case-insensitive), up to 1 PB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit, shown) = number_and_unit(text, "a size; write e.g. \"1GB\" or \"512MB\"")?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "`{shown}` has an unknown size unit; use kB, MB, GB, TB (or KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let bytes = number * scale;
    if !(0.0..=1e15).contains(&bytes) {
        return Err(format!("`{shown}` is larger than tend accepts (1 PB)"));
    }
    Ok(bytes.round() as u64)
}

/// The commented `tend.toml` that `tend init` writes, generated from [`KEYS`].
pub fn template(prisma: bool) -> String {
    let mut out = String::from(
        "# tend configuration. Environment variables override these values, and flags\n\
         # override both. Run `tend config show` to see what is in effect and why.\n",
    );
    let mut section = "";
    for key in KEYS {
        let (sec, name) = key.name.split_once('.').expect("keys have a section");
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        out.push_str(&format!("# {}\n", key.doc));
        if let Some(env) = key.env.first() {
            out.push_str(&format!("# Environment: {env}\n"));
        }
        let (active, value) = match (key.name, prisma) {
            ("migrate.format", true) => (true, "\"prisma\"".to_string()),
            ("migrate.dir", true) => (true, "\"prisma/migrations\"".to_string()),
            ("migrate.format", false) => (true, "\"tend\"".to_string()),
            ("migrate.dir", false) => (true, "\"migrations\"".to_string()),
            _ => (
                false,
                match (key.default, key.kind) {
                    (Some(d), Kind::Integer) => d.to_string(),
                    (Some(d), _) => format!("\"{d}\""),
                    (None, Kind::Url) => "\"postgresql://user@localhost:5432/app\"".to_string(),
                    (None, _) => "\"\"".to_string(),
                },
            ),
        };
        let comment = if active { "" } else { "# " };
        out.push_str(&format!("{comment}{name} = {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_defaults_resolve_into_every_section() {
        let s = Settings::defaults(Path::new("/project"));
        assert_eq!(s.database.pool_max, 10);
        assert_eq!(s.database.connect_timeout, Duration::from_secs(10));
        assert_eq!(s.database.idle_timeout, Duration::from_secs(600));
        assert_eq!(s.dev.database, "app");
        assert_eq!(s.migrate.lock_wait, Duration::from_secs(300));
        assert_eq!(s.schema.path, Path::new("/project/schema"));
        assert_eq!(s.backup.compression_level, 3);
        assert_eq!(s.backup.retention.keep_daily, Some(7));
        assert!(matches!(
            &s.backup.store,
            tend_backup::store::StoreConfig::Directory(dir) if dir == Path::new("/project/.tend/backups")
        ));
        assert!(s.checks.history);
        assert_eq!(s.health.latency_warning, Duration::from_millis(500));
    }

    #[test]
    fn the_passphrase_is_never_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let env =
            |var: &str| (var == "BACKUP_ENCRYPTION_KEY").then(|| "hunter2-secret".to_string());
        let s = Settings::resolve(dir.path(), &env, &FlagOverrides::default()).unwrap();
        assert!(s.backup.keys.passphrase.is_some());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn layers_file_then_env_then_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[database]\nurl = \"postgres://file@h/db\"\npool_max = 4\n",
        )
        .unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let s = Settings::resolve(&nested, &no_env, &FlagOverrides::default()).unwrap();
        assert_eq!(
            s.get("database.url").map(|v| v.value.as_str()),
            Some("postgres://file@h/db")
        );
        assert_eq!(s.database.pool_max, (4));
        assert_eq!(s.project_root, dir.path());
        let env = |k: &str| (k == "DATABASE_URL").then(|| "postgres://env@h/db".to_string());
        let s = Settings::resolve(&nested, &env, &FlagOverrides::default()).unwrap();
        assert_eq!(
            s.get("database.url").map(|v| v.value.as_str()),
            Some("postgres://env@h/db")
        );
        assert_eq!(
            s.get("database.url").unwrap().source,
            Source::Env {
                var: "DATABASE_URL".into()
            }
        );
        let flags = FlagOverrides {
            database_url: Some("postgres://flag@h/db".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&nested, &env, &flags).unwrap();
        assert_eq!(
            s.get("database.url").map(|v| v.value.as_str()),
            Some("postgres://flag@h/db")
        );
    }

    #[test]
    fn unknown_keys_suggest_the_nearest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "[database]\nulr = \"x\"\n").unwrap();
        let err = Settings::resolve(dir.path(), &no_env, &FlagOverrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `database.url`"),
            "{err}"
        );
        std::fs::write(dir.path().join(CONFIG_FILE), "[databse]\nurl = \"x\"\n").unwrap();
        let err = Settings::resolve(dir.path(), &no_env, &FlagOverrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("did you mean `database.url`"),
            "{err}"
        );
        assert_eq!(nearest_key("zzzzzzzzzz.qqqqqqqq"), None);
    }

    #[test]
    fn invalid_values_name_key_and_source_without_secrets() {
        let env = |k: &str| (k == "DATABASE_URL").then(|| "mysql://u:hunter22@h/db".to_string());
        let err = Settings::resolve(Path::new("/"), &env, &FlagOverrides::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("database.url") && text.contains("DATABASE_URL"),
            "{text}"
        );
        assert!(!text.contains("hunter22"));
        let env = |k: &str| (k == "DB_CONNECT_TIMEOUT").then(|| "soon".to_string());
        assert!(Settings::resolve(Path::new("/"), &env, &FlagOverrides::default()).is_err());
    }

    #[test]
    fn dotenv_sits_between_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "# comment\nexport DATABASE_URL=\"postgres://dotenv@h/db\"\nDB_POOL_MAX=7 # inline\n",
        )
        .unwrap();
        let s = Settings::resolve(dir.path(), &no_env, &FlagOverrides::default()).unwrap();
        assert_eq!(
            s.get("database.url").map(|v| v.value.as_str()),
            Some("postgres://dotenv@h/db")
        );
        assert_eq!(s.database.pool_max, (7));
        let env = |k: &str| (k == "DB_POOL_MAX").then(|| "9".to_string());
        let s = Settings::resolve(dir.path(), &env, &FlagOverrides::default()).unwrap();
        assert_eq!(s.database.pool_max, (9));
    }

    #[test]
    fn sizes_parse_as_postgres_writes_them() {
        use super::sections::parse_size;
        assert_eq!(parse_size("10GB"), Ok(10 * 1024 * 1024 * 1024));
        assert_eq!(parse_size(" 512 MB "), Ok(512 * 1024 * 1024));
        assert_eq!(parse_size("100kB"), Ok(100 * 1024));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5GB"), Ok(1536 * 1024 * 1024));
        for bad in ["", "GB", "ten GB", "10 PB", "0", "1e30", "NaN", "é10GB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1048576").unwrap(), 1_048_576);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("512 MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size("1.5kb").unwrap(), 1500);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("2 PB").is_err());
        assert!(parse_size("-1GB").is_err());
        assert!(parse_size("1e400").is_err());
    }

    #[test]
    fn template_parses_back_and_mentions_every_key() {
        for prisma in [true, false] {
            let text = template(prisma);
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(CONFIG_FILE), &text).unwrap();
            let s = Settings::resolve(dir.path(), &no_env, &FlagOverrides::default()).unwrap();
            assert_eq!(
                s.get("migrate.format").map(|v| v.value.as_str()),
                Some(if prisma { "prisma" } else { "tend" })
            );
            for key in KEYS {
                let name = key.name.split_once('.').unwrap().1;
                assert!(text.contains(&format!("{name} = ")), "{}", key.name);
            }
        }
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn the_parsers_of_settings_survive_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(d) = parse_duration(&text) {
                prop_assert!(d <= MAX_DURATION);
            }
            if let Err((line, _)) = parse_dotenv(&text) {
                prop_assert!(line >= 1 && line <= text.lines().count().max(1));
            }
            let _ = parse_config_file(Path::new("tend.toml"), &bytes);
        }

        #[test]
        fn any_value_of_any_variable_resolves_or_is_a_config_error(
            index in 0usize..64,
            value in "\\PC{0,40}|[0-9]{15,40}[a-z]{0,3}",
        ) {
            let names: Vec<&str> = KEYS.iter().flat_map(|k| k.env.iter().copied())
                .chain(THRESHOLD_VARS.iter().map(|(v, _, _)| *v))
                .collect();
            let name = names[index % names.len()];
            let env = |k: &str| (k == name).then(|| value.clone());
            let dir = Path::new("/nonexistent-tend-project");
            if let Ok(s) = Settings::resolve(dir, &env, &FlagOverrides::default()) {
                let _ = s.connect_options();
                let _ = s.entries();
            }
        }
    }

    #[test]
    fn secrets_are_collected_and_masked_in_entries() {
        let env = |k: &str| (k == "DATABASE_URL").then(|| "postgres://u:pa55word@h/db".to_string());
        let s = Settings::resolve(Path::new("/"), &env, &FlagOverrides::default()).unwrap();
        assert_eq!(s.secrets(), vec!["pa55word".to_string()]);
        let entries = serde_json::to_string(&s.entries()).unwrap();
        assert!(!entries.contains("pa55word"));
    }
}
