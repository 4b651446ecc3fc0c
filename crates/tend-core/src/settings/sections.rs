//! The typed sections of [`Settings`](super::Settings): each value parsed and checked once,
//! when settings are resolved, and handed to the library that uses it. Names, environment
//! variables and defaults stay in [`KEYS`](super::KEYS); this module only gives them types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use tend_backup::crypto::{CryptoError, Decryption, Encryption};
use tend_backup::retention::Policy;
use tend_backup::store::{S3Credentials, StoreConfig};
use tend_migrate::source::Format;
use tend_pg::conninfo::ConnInfo;

use super::{ConfigError, Source, Sourced, parse_duration};

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// `[database]`: where the application database is and how tend connects to it.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`. Unset: the project's local cluster (the embedded default).
    pub url: Option<Setting<ConnInfo>>,
    /// `DIRECT_URL`, which bypasses a pooler, for migrations and locks.
    pub direct_url: Option<Setting<ConnInfo>>,
    /// `SHADOW_DATABASE_URL`.
    pub shadow_url: Option<Setting<ConnInfo>>,
    /// `DATABASE_READ_REPLICA_URL`.
    pub read_replica_url: Option<Setting<ConnInfo>>,
    /// `DB_POOL_MAX`: most connections tend opens at once.
    pub pool_max: usize,
    pub connect_timeout: Duration,
    pub connect_attempts: u32,
    /// statement_timeout for tend's sessions; `None` keeps the server's.
    pub query_timeout: Option<Duration>,
    /// `DB_IDLE_TIMEOUT`: how long an idle pooled connection is kept.
    pub idle_timeout: Duration,
}

impl DatabaseSettings {
    /// The connection settings every session uses.
    pub fn connect_options(&self) -> tend_pg::ConnectOptions {
        tend_pg::ConnectOptions {
            connect_timeout: self.connect_timeout,
            statement_timeout: self.query_timeout,
            attempts: self.connect_attempts,
            ..tend_pg::ConnectOptions::default()
        }
    }

    /// The pool's size (`DB_POOL_MAX`) and idle timeout (`DB_IDLE_TIMEOUT`).
    pub fn pool_options(&self) -> tend_pg::PoolOptions {
        tend_pg::PoolOptions {
            max_size: self.pool_max,
            idle_timeout: self.idle_timeout,
        }
    }

    /// A pooled handle on `info` with these settings.
    pub fn handle(&self, info: ConnInfo) -> tend_pg::Database {
        tend_pg::Database::new(info, self.connect_options(), self.pool_options())
    }
}

/// `[dev]`: the project's local cluster.
#[derive(Debug, Clone)]
pub struct DevSettings {
    /// The database tend creates and uses on the local cluster.
    pub database: String,
    /// The OS user the local server runs as when tend runs as root.
    pub pg_user: String,
}

/// `[migrate]`.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    /// The layout; `None` means detect it from the project.
    pub format: Option<Format>,
    /// Where migrations live; `None`: the layout's default directory.
    pub dir: Option<PathBuf>,
    pub seed: Option<PathBuf>,
    pub lock_wait: Duration,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
}

/// `[schema]`.
#[derive(Debug, Clone)]
pub struct SchemaSettings {
    /// The desired schema for `tend migrate dev`: a .sql file or a directory of them.
    pub path: PathBuf,
}

/// `[backup]`: where backups go, how they are encrypted and compressed, and how long kept.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub store: StoreConfig,
    pub keys: BackupKeys,
    pub compression_level: i32,
    /// `backup.physical_compression_level`: physical backups' zstd level.
    pub physical_compression_level: i32,
    pub retention: Policy,
}

/// The backup keys as configured. age encrypts either for a passphrase or for recipients,
/// so asking for the encryption or decryption with both set is an error.
#[derive(Debug, Clone)]
pub struct BackupKeys {
    /// `BACKUP_ENCRYPTION_KEY`; `SecretString` never prints its value.
    pub passphrase: Option<SecretString>,
    /// `BACKUP_AGE_RECIPIENTS`, split at commas.
    pub recipients: Vec<String>,
    /// `BACKUP_AGE_IDENTITY_FILE`.
    pub identity_file: Option<PathBuf>,
}

/// Why the backup keys cannot encrypt or decrypt.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("backups are always encrypted, and no key is configured")]
    Missing,
    #[error(
        "both BACKUP_ENCRYPTION_KEY (a passphrase) and BACKUP_AGE_RECIPIENTS (age public keys) are set, and age cannot encrypt one backup for both"
    )]
    Mixed,
    #[error("cannot read the age identity file {}: {source}", path.display())]
    IdentityFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl BackupKeys {
    fn refuse_mixed(&self) -> Result<(), KeyError> {
        if !self.recipients.is_empty() && self.passphrase.is_some() {
            return Err(KeyError::Mixed);
        }
        Ok(())
    }

    /// How new backups are encrypted.
    pub fn encryption(&self) -> Result<Encryption, KeyError> {
        self.refuse_mixed()?;
        if !self.recipients.is_empty() {
            return Ok(Encryption::recipients_from(&self.recipients)?);
        }
        match &self.passphrase {
            Some(pass) => Ok(Encryption::Passphrase(pass.clone())),
            None => Err(KeyError::Missing),
        }
    }

    /// How stored backups are opened (reads the identity file, if one is configured).
    pub fn decryption(&self) -> Result<Decryption, KeyError> {
        self.refuse_mixed()?;
        if let Some(path) = &self.identity_file {
            let text = std::fs::read_to_string(path).map_err(|source| KeyError::IdentityFile {
                path: path.clone(),
                source,
            })?;
            return Ok(Decryption::identities_from(&text)?);
        }
        match &self.passphrase {
            Some(pass) => Ok(Decryption::Passphrase(pass.clone())),
            None => Err(KeyError::Missing),
        }
    }

    /// Whether any key is configured (for `doctor`).
    pub fn any(&self) -> bool {
        self.passphrase.is_some() || !self.recipients.is_empty() || self.identity_file.is_some()
    }
}

/// `[pitr]`: how `tend wal-push` rides out a store outage.
#[derive(Debug, Clone)]
pub struct PitrSettings {
    /// The local spool, when one is configured.
    pub spool: Option<SpoolSettings>,
    /// `pitr.window`: how far back point-in-time recovery must reach. Prune keeps the
    /// physical backup it starts from; status and serve say when the window is shorter.
    pub window: Option<Duration>,
}

/// `[cleanup]` and `[[retention]]`: what `tend cleanup` purges, and how gently.
#[derive(Debug, Clone)]
pub struct CleanupSettings {
    /// The `[[retention]]` entries, in the file's order.
    pub rules: Vec<crate::cleanup::RetentionConfig>,
    /// `cleanup.soft_delete_grace`, or `None` when `cleanup.soft_delete` is off.
    pub soft_delete_grace: Option<Duration>,
    /// `cleanup.batch_budget`: the longest a batch may hold its locks.
    pub batch_budget: Duration,
    /// `cleanup.max_batch`: the most rows in one batch.
    pub max_batch: u64,
    /// `cleanup.max_replica_lag`: batches wait while a replica lags more.
    pub max_replica_lag: Duration,
    /// `cleanup.duty_cycle`: the share of time a purge spends in batches, (0, 1].
    pub duty_cycle: f64,
}

/// `[gdpr]`: the subject, the policies, the declared links, and the salt.
#[derive(Clone, Default)]
pub struct GdprSettings {
    /// `None` without a `[gdpr]` section.
    pub config: Option<crate::gdpr::GdprConfig>,
    /// `gdpr.salt` (`TEND_GDPR_SALT`): never shown.
    pub salt: Option<String>,
}

impl std::fmt::Debug for GdprSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GdprSettings")
            .field("config", &self.config)
            .field("salt", &self.salt.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// Where `tend wal-push` spools WAL while the store is away, and how much.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    /// `pitr.spool_dir`: each server's spool is a folder named by its system identifier.
    pub dir: PathBuf,
    /// `pitr.spool_max`, in bytes (as stored: compressed and encrypted).
    pub max_bytes: u64,
    /// `pitr.spool_after`: how long a push waits for the store before spooling.
    pub after: Duration,
}

/// `[health]`: `tend health`'s latency thresholds.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub latency_warning: Duration,
    pub latency_critical: Duration,
}

/// `[checks]`.
#[derive(Debug, Clone)]
pub struct ChecksSettings {
    /// Whether each run's results are kept in the database's `tend` schema.
    pub history: bool,
    /// `[checks."<id>"]` tables, with the environment's thresholds mapped in.
    pub overrides: BTreeMap<String, tend_ops::CheckOverride>,
    /// `[pitr]`'s spool, which the `wal.spooled` check reads.
    pub wal_spool: Option<SpoolSettings>,
    /// The retention rules, for the backlog check.
    pub cleanup: CleanupSettings,
}

/// `[serve]` and `[[schedule]]`: what `tend serve` runs, when, and where it listens.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: std::net::SocketAddr,
    /// The API's bearer token; `None` leaves the API open, allowed on loopback only.
    pub token: Option<SecretString>,
    /// How often a standby tries to lead and a leader checks it still does.
    pub interval: Duration,
    pub missed_runs: MissedRuns,
    pub stop_timeout: Duration,
    pub run_retention_days: u32,
    pub schedule: crate::schedule::Schedule,
}

/// `[alerts]`: where `tend serve` sends alerts, and the limits of its rules.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub webhook_url: Option<SecretString>,
    pub slack_webhook_url: Option<SecretString>,
    /// Addresses, split at commas.
    pub email_to: Vec<String>,
    pub email_from: Option<String>,
    pub smtp_url: Option<SecretString>,
    pub database_size_limit: u64,
    pub backup_grace: Duration,
    pub replication_lag: Duration,
}

/// A size as PostgreSQL writes one (`10GB`, `512MB`, `100kB`, bytes when bare): powers of
/// 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: f64 = number.parse().map_err(|_| {
        format!(
            "`{}` is not a size such as 10GB",
            t.chars().take(40).collect::<String>()
        )
    })?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "`{}` is not a size such as 10GB (units: B, kB, MB, GB, TB)",
                t.chars().take(40).collect::<String>()
            ));
        }
    };
    let bytes = number * scale;
    if !(1.0..=1e18).contains(&bytes) {
        return Err("a size must be from 1 byte to 1 EB".to_string());
    }
    Ok(bytes as u64)
}

/// `25%` or `0.25` as 0.25; `None` outside 1% to 100%.
fn parse_share(text: &str) -> Option<f64> {
    let text = text.trim();
    let share = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok()? / 100.0,
        None => text.parse::<f64>().ok()?,
    };
    (share.is_finite() && (0.01..=1.0).contains(&share)).then_some(share)
}

/// What the leader does with a run that was due while no instance led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedRuns {
    /// Run the latest missed one once, if it was due within `window`.
    RunOnce { window: Duration },
    /// Record it as skipped.
    Skip,
}

/// Reads typed values out of the resolved map. Values were checked by `validate`, so
/// failures here are the same config errors, never panics.
pub(super) struct Reader<'a> {
    pub values: &'a BTreeMap<&'static str, Sourced>,
    pub project_root: &'a Path,
}

impl Reader<'_> {
    fn sourced(&self, key: &'static str) -> Option<&Sourced> {
        self.values.get(key)
    }

    fn invalid(&self, key: &'static str, reason: String) -> ConfigError {
        ConfigError::Invalid {
            key,
            origin: self
                .sourced(key)
                .map(|s| s.source.clone())
                .unwrap_or(Source::Default),
            reason,
        }
    }

    pub fn text(&self, key: &'static str) -> Option<String> {
        self.sourced(key).map(|s| s.value.clone())
    }

    pub fn path(&self, key: &'static str) -> Option<PathBuf> {
        self.sourced(key).map(|s| self.project_root.join(&s.value))
    }

    pub fn url(&self, key: &'static str) -> Result<Option<Setting<ConnInfo>>, ConfigError> {
        self.sourced(key)
            .map(|s| {
                ConnInfo::parse(&s.value)
                    .map(|value| Setting {
                        value,
                        source: s.source.clone(),
                    })
                    .map_err(|e| self.invalid(key, e.to_string()))
            })
            .transpose()
    }

    pub fn integer(&self, key: &'static str) -> Result<Option<u32>, ConfigError> {
        self.sourced(key)
            .map(|s| {
                s.value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| self.invalid(key, "it must be a whole number".to_string()))
            })
            .transpose()
    }

    pub fn duration(&self, key: &'static str) -> Result<Option<Duration>, ConfigError> {
        self.sourced(key)
            .map(|s| parse_duration(&s.value).map_err(|reason| self.invalid(key, reason)))
            .transpose()
    }

    /// A key that has a default in `KEYS`: present once resolved.
    fn required<T>(&self, key: &'static str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.invalid(key, "it has no value".to_string()))
    }

    pub fn database(&self) -> Result<DatabaseSettings, ConfigError> {
        Ok(DatabaseSettings {
            url: self.url("database.url")?,
            direct_url: self.url("database.direct_url")?,
            shadow_url: self.url("database.shadow_url")?,
            read_replica_url: self.url("database.read_replica_url")?,
            pool_max: self.required("database.pool_max", self.integer("database.pool_max")?)?
                as usize,
            connect_timeout: self.required(
                "database.connect_timeout",
                self.duration("database.connect_timeout")?,
            )?,
            connect_attempts: self.required(
                "database.connect_attempts",
                self.integer("database.connect_attempts")?,
            )?,
            query_timeout: self.duration("database.query_timeout")?,
            idle_timeout: self.required(
                "database.idle_timeout",
                self.duration("database.idle_timeout")?,
            )?,
        })
    }

    pub fn dev(&self) -> Result<DevSettings, ConfigError> {
        Ok(DevSettings {
            database: self.required("dev.database", self.text("dev.database"))?,
            pg_user: self.required("dev.pg_user", self.text("dev.pg_user"))?,
        })
    }

    pub fn migrate(&self) -> Result<MigrateSettings, ConfigError> {
        let format = match self.text("migrate.format").as_deref() {
            Some("prisma") => Some(Format::Prisma),
            Some("tend") => Some(Format::Tend),
            _ => None,
        };
        Ok(MigrateSettings {
            format,
            dir: self.path("migrate.dir"),
            seed: self.path("migrate.seed"),
            lock_wait: self.required("migrate.lock_wait", self.duration("migrate.lock_wait")?)?,
            lock_timeout: self.duration("migrate.lock_timeout")?,
            statement_timeout: self.duration("migrate.statement_timeout")?,
        })
    }

    pub fn schema(&self) -> Result<SchemaSettings, ConfigError> {
        Ok(SchemaSettings {
            path: self.required("schema.path", self.path("schema.path"))?,
        })
    }

    pub fn backup(&self) -> Result<BackupSettings, ConfigError> {
        let store = match self.text("backup.s3_bucket") {
            Some(bucket) => StoreConfig::S3 {
                bucket,
                region: self.text("backup.s3_region"),
                endpoint: self.text("backup.s3_endpoint"),
                force_path_style: self.text("backup.s3_force_path_style").as_deref()
                    == Some("true"),
                prefix: self.text("backup.s3_prefix"),
                credentials: match (
                    self.text("backup.s3_access_key_id"),
                    self.text("backup.s3_secret_access_key"),
                ) {
                    (Some(key_id), Some(secret)) => Some(S3Credentials {
                        key_id,
                        secret: SecretString::from(secret),
                        session_token: self.text("backup.s3_session_token").map(SecretString::from),
                    }),
                    _ => None,
                },
            },
            None => StoreConfig::Directory(
                self.path("backup.dir")
                    .unwrap_or_else(|| self.project_root.join(".tend/backups")),
            ),
        };
        let keys = BackupKeys {
            passphrase: self.text("backup.encryption_key").map(SecretString::from),
            recipients: self
                .text("backup.recipients")
                .map(|list| {
                    list.split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            identity_file: self.path("backup.identity_file"),
        };
        let retention = Policy {
            keep_last: self.integer("backup.retention.keep_last")?,
            keep_daily: self.integer("backup.retention.keep_daily")?,
            keep_weekly: self.integer("backup.retention.keep_weekly")?,
            keep_monthly: self.integer("backup.retention.keep_monthly")?,
            keep_yearly: self.integer("backup.retention.keep_yearly")?,
            max_age_days: self.integer("backup.retention.max_age_days")?,
        };
        Ok(BackupSettings {
            store,
            keys,
            compression_level: self.required(
                "backup.compression_level",
                self.integer("backup.compression_level")?,
            )? as i32,
            physical_compression_level: self.required(
                "backup.physical_compression_level",
                self.integer("backup.physical_compression_level")?,
            )? as i32,
            retention,
        })
    }

    pub fn size(&self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        self.sourced(key)
            .map(|s| super::parse_size(&s.value).map_err(|reason| self.invalid(key, reason)))
            .transpose()
    }

    pub fn pitr(&self) -> Result<PitrSettings, ConfigError> {
        let spool = match self.path("pitr.spool_dir") {
            None => None,
            Some(dir) => Some(SpoolSettings {
                dir,
                max_bytes: self.required("pitr.spool_max", self.size("pitr.spool_max")?)?,
                after: self.required("pitr.spool_after", self.duration("pitr.spool_after")?)?,
            }),
        };
        Ok(PitrSettings {
            spool,
            window: self.duration("pitr.window")?,
        })
    }

    pub fn cleanup(
        &self,
        rules: Vec<crate::cleanup::RetentionConfig>,
    ) -> Result<CleanupSettings, ConfigError> {
        let on = self.text("cleanup.soft_delete").as_deref() != Some("off");
        let grace = self.required(
            "cleanup.soft_delete_grace",
            self.duration("cleanup.soft_delete_grace")?,
        )?;
        let batch_budget = self.required(
            "cleanup.batch_budget",
            self.duration("cleanup.batch_budget")?,
        )?;
        if batch_budget < Duration::from_millis(10) {
            return Err(self.invalid(
                "cleanup.batch_budget",
                "a batch needs at least 10ms".to_string(),
            ));
        }
        let max_batch = self.required("cleanup.max_batch", self.integer("cleanup.max_batch")?)?;
        if max_batch == 0 {
            return Err(self.invalid(
                "cleanup.max_batch",
                "a batch must delete at least 1 row".to_string(),
            ));
        }
        let duty_text = self.required("cleanup.duty_cycle", self.text("cleanup.duty_cycle"))?;
        let duty_cycle = parse_share(&duty_text).ok_or_else(|| {
            self.invalid(
                "cleanup.duty_cycle",
                "it must be a share of time from 1% to 100% (or 0.01 to 1)".to_string(),
            )
        })?;
        Ok(CleanupSettings {
            rules,
            duty_cycle,
            soft_delete_grace: on.then_some(grace),
            batch_budget,
            max_batch: u64::from(max_batch),
            max_replica_lag: self.required(
                "cleanup.max_replica_lag",
                self.duration("cleanup.max_replica_lag")?,
            )?,
        })
    }

    pub fn health(&self) -> Result<HealthSettings, ConfigError> {
        Ok(HealthSettings {
            latency_warning: self.required(
                "health.latency_warning",
                self.duration("health.latency_warning")?,
            )?,
            latency_critical: self.required(
                "health.latency_critical",
                self.duration("health.latency_critical")?,
            )?,
        })
    }

    pub fn serve(
        &self,
        raw: Option<Vec<crate::schedule::RawEntry>>,
        config_file: Option<&Path>,
    ) -> Result<ServeSettings, ConfigError> {
        use crate::schedule::{ScheduleOrigin, build, default_entries};
        let listen_text = self.required("serve.listen", self.text("serve.listen"))?;
        let listen: std::net::SocketAddr = listen_text.trim().parse().map_err(|_| {
            self.invalid(
                "serve.listen",
                "it must be an address and port, such as 127.0.0.1:8432 or [::]:8432".to_string(),
            )
        })?;
        let token = self.text("serve.token").map(SecretString::from);
        if token.is_none() && !listen.ip().is_loopback() {
            return Err(self.invalid(
                "serve.listen",
                format!(
                    "{listen} is reachable from other machines, and the API has no token; set serve.token (TEND_SERVE_TOKEN), or listen on 127.0.0.1"
                ),
            ));
        }
        let backup_cron = self.required("backup.schedule", self.text("backup.schedule"))?;
        let zone = self.required("serve.time_zone", self.text("serve.time_zone"))?;
        let (raw, origin) = match raw {
            Some(raw) => (raw, ScheduleOrigin::File),
            None => (default_entries(&backup_cron), ScheduleOrigin::Default),
        };
        let schedule =
            build(raw, origin, &backup_cron, &zone, self.project_root).map_err(|reason| {
                ConfigError::Schedule {
                    path: config_file.map(Path::to_path_buf),
                    reason,
                }
            })?;
        let missed_runs = match self.text("serve.missed_runs").as_deref() {
            Some("skip") => MissedRuns::Skip,
            _ => MissedRuns::RunOnce {
                window: self
                    .required("serve.missed_window", self.duration("serve.missed_window")?)?,
            },
        };
        let interval = self.required("serve.interval", self.duration("serve.interval")?)?;
        if interval < Duration::from_millis(100) {
            return Err(self.invalid("serve.interval", "it must be at least 100ms".to_string()));
        }
        Ok(ServeSettings {
            listen,
            token,
            interval,
            missed_runs,
            stop_timeout: self
                .required("serve.stop_timeout", self.duration("serve.stop_timeout")?)?,
            run_retention_days: self.required(
                "serve.run_retention_days",
                self.integer("serve.run_retention_days")?,
            )?,
            schedule,
        })
    }

    pub fn alerts(&self) -> Result<AlertSettings, ConfigError> {
        let limit_text = self.required(
            "alerts.database_size_limit",
            self.text("alerts.database_size_limit"),
        )?;
        let database_size_limit = parse_size(&limit_text)
            .map_err(|reason| self.invalid("alerts.database_size_limit", reason))?;
        let email_to: Vec<String> = self
            .text("alerts.email_to")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let smtp_url = self.text("alerts.smtp_url").map(SecretString::from);
        if !email_to.is_empty() && smtp_url.is_none() {
            return Err(self.invalid(
                "alerts.email_to",
                "it needs a mail server: set alerts.smtp_url (SMTP_URL)".to_string(),
            ));
        }
        for address in &email_to {
            if !address.contains('@') || address.contains(char::is_whitespace) {
                return Err(self.invalid(
                    "alerts.email_to",
                    format!(
                        "`{}` is not an email address",
                        address.chars().take(80).collect::<String>()
                    ),
                ));
            }
        }
        Ok(AlertSettings {
            webhook_url: self.text("alerts.webhook_url").map(SecretString::from),
            slack_webhook_url: self
                .text("alerts.slack_webhook_url")
                .map(SecretString::from),
            email_to,
            email_from: self.text("alerts.email_from"),
            smtp_url,
            database_size_limit,
            backup_grace: self
                .required("alerts.backup_grace", self.duration("alerts.backup_grace")?)?,
            replication_lag: self.required(
                "alerts.replication_lag",
                self.duration("alerts.replication_lag")?,
            )?,
        })
    }

    pub fn checks(
        &self,
        overrides: BTreeMap<String, tend_ops::CheckOverride>,
        cleanup: &CleanupSettings,
    ) -> Result<ChecksSettings, ConfigError> {
        Ok(ChecksSettings {
            history: self.text("checks.history").as_deref() != Some("off"),
            overrides,
            wal_spool: self.pitr()?.spool,
            cleanup: cleanup.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_share;

    #[test]
    fn a_share_is_a_percentage_or_a_fraction_within_bounds() {
        assert_eq!(parse_share("25%"), Some(0.25));
        assert_eq!(parse_share(" 0.5 "), Some(0.5));
        assert_eq!(parse_share("100 %"), Some(1.0));
        for bad in ["0", "0%", "150%", "1.5", "-1", "NaN", "lots", ""] {
            assert_eq!(parse_share(bad), None, "{bad}");
        }
    }
}
