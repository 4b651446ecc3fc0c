//! Alerts: the leader evaluates its rules every 30 seconds and right after each run, keeps
//! which alerts fire in `tend.alert_state` (so a failover neither repeats nor loses one), and
//! sends one message per change, firing then resolved, to each channel: a JSON webhook, a
//! Slack-compatible webhook, email over SMTP. Sending happens on tasks of their own, with
//! retries: a channel that is down never holds up the schedule, and its failures show in
//! `/api/alerts`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tend_core::schedule::{Task, When};
use tend_core::settings::AlertSettings;
use tokio::sync::Notify;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::scheduler::Shared;

/// How often the rules are evaluated (and right after every run).
const EVALUATE_EVERY: Duration = Duration::from_secs(30);

/// When each failed delivery is tried again.
const RETRIES: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
];

/// Connections above this share of `max_connections` fire; below the second, resolve.
const CONNECTIONS_HIGH: (f64, f64) = (0.8, 0.7);

/// One message: an alert that started or stopped firing.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Stable id of the alert (`task_failed:backup`, `database_size`, ...).
    pub alert: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// `critical` or `warning`.
    pub severity: String,
    pub summary: String,
    /// When it started firing.
    pub since: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub database: String,
    pub instance: String,
}

enum Target {
    Webhook(SecretString),
    Slack(SecretString),
    Email(Box<Email>),
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

struct Channel {
    name: &'static str,
    target: Target,
}

/// How a channel has done, for `/api/alerts` (and the dashboard).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelStatus {
    pub channel: &'static str,
    pub sent: u64,
    pub failed_attempts: u64,
    /// Messages still being tried.
    pub pending: u64,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// What `/api/alerts` shows.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsReport {
    pub firing: Vec<FiringAlert>,
    pub channels: Vec<ChannelStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FiringAlert {
    pub alert: String,
    pub severity: String,
    pub summary: String,
    pub since: DateTime<Utc>,
}

/// The alert channels and the evaluation state of this instance.
pub struct Alerting {
    channels: Vec<Channel>,
    status: Mutex<Vec<ChannelStatus>>,
    http: reqwest::Client,
    settings: AlertSettings,
    wake: Notify,
    /// Metric rules above their limit at the last evaluation (the first of two needed).
    pending_high: Mutex<HashSet<String>>,
    /// The recoverable windows read from the store, and when (listing an archive is
    /// read at most every `WINDOWS_EVERY`, not every evaluation).
    windows: Mutex<Option<(std::time::Instant, Vec<tend_core::backup::ArchiveWindow>)>>,
}

/// How often the alerts read the store's recoverable windows (gaps in the WAL archive).
const WINDOWS_EVERY: Duration = Duration::from_secs(600);

impl Alerting {
    /// The channels configured; a mail server URL or address that cannot be used is an
    /// error here, at start.
    pub fn new(settings: &AlertSettings) -> Result<Alerting, String> {
        let mut channels = Vec::new();
        if let Some(url) = &settings.webhook_url {
            reqwest::Url::parse(url.expose_secret())
                .map_err(|e| format!("alerts.webhook_url is not a URL: {e}"))?;
            channels.push(Channel {
                name: "webhook",
                target: Target::Webhook(url.clone()),
            });
        }
        if let Some(url) = &settings.slack_webhook_url {
            reqwest::Url::parse(url.expose_secret())
                .map_err(|e| format!("alerts.slack_webhook_url is not a URL: {e}"))?;
            channels.push(Channel {
                name: "slack",
                target: Target::Slack(url.clone()),
            });
        }
        if let (Some(url), false) = (&settings.smtp_url, settings.email_to.is_empty()) {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                .map_err(|_| {
                    "alerts.smtp_url is not a mail server URL such as smtps://user:password@mail.example.com:465 or smtp://mail.example.com:587?tls=required".to_string()
                })?
                .timeout(Some(Duration::from_secs(20)))
                .build();
            let host = crate::instance_name()
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_else(|| "localhost".to_string());
            let from_text = settings
                .email_from
                .clone()
                .unwrap_or_else(|| format!("tend <tend@{host}>"));
            let from: Mailbox = from_text
                .parse()
                .map_err(|e| format!("alerts.email_from `{from_text}` is not an address: {e}"))?;
            let to = settings
                .email_to
                .iter()
                .map(|a| {
                    a.parse::<Mailbox>()
                        .map_err(|e| format!("alerts.email_to `{a}` is not an address: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            channels.push(Channel {
                name: "email",
                target: Target::Email(Box::new(Email {
                    transport,
                    from,
                    to,
                })),
            });
        }
        let status = channels
            .iter()
            .map(|c| ChannelStatus {
                channel: c.name,
                ..ChannelStatus::default()
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                format!(
                    "the HTTP client for alerts cannot start: {}",
                    e.without_url()
                )
            })?;
        Ok(Alerting {
            channels,
            status: Mutex::new(status),
            http,
            settings: settings.clone(),
            wake: Notify::new(),
            pending_high: Mutex::new(HashSet::new()),
            windows: Mutex::new(None),
        })
    }

    /// Evaluates soon (after a run finished).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn channel_status(&self) -> Vec<ChannelStatus> {
        self.status.lock().clone()
    }

    /// Evaluates while this instance leads: at once, every 30 s, and when woken.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>, lead: CancellationToken) {
        loop {
            if let Err(reason) = self.evaluate(&shared).await {
                shared.event(crate::Event::AlertsFailed { reason });
            }
            tokio::select! {
                _ = tokio::time::sleep(EVALUATE_EVERY) => {}
                _ = self.wake.notified() => {}
                _ = lead.cancelled() => return,
            }
        }
    }

    async fn evaluate(self: &Arc<Self>, shared: &Arc<Shared>) -> Result<(), String> {
        let session = shared
            .tasks
            .database
            .session()
            .await
            .map_err(|e| e.to_string())?;
        let db = |e: tokio_postgres::Error| tend_pg::error_text(&e);
        let firing: HashMap<String, (String, String, DateTime<Utc>)> = session
            .query(
                "SELECT key, severity, summary, since FROM tend.alert_state WHERE firing",
                &[],
            )
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect();
        let now_firing = self
            .conditions(shared, &session, &firing)
            .await
            .map_err(db)?;
        let database: String = session
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_err(db)?
            .get(0);
        let notification =
            |alert: &str, state, severity: &str, summary: &str, since| Notification {
                alert: alert.to_string(),
                state,
                severity: severity.to_string(),
                summary: summary.to_string(),
                since,
                at: Utc::now(),
                database: database.clone(),
                instance: shared.instance.clone(),
            };
        for condition in &now_firing {
            if firing.contains_key(&condition.key) {
                continue;
            }
            let since: DateTime<Utc> = session
                .query_one(
                    "INSERT INTO tend.alert_state (key, firing, severity, summary)
                     VALUES ($1, true, $2, $3)
                     ON CONFLICT (key) DO UPDATE
                        SET firing = true, severity = $2, summary = $3,
                            since = clock_timestamp(), updated_at = clock_timestamp()
                     RETURNING since",
                    &[&condition.key, &condition.severity, &condition.summary],
                )
                .await
                .map_err(db)?
                .get(0);
            self.send(notification(
                &condition.key,
                "firing",
                condition.severity,
                &condition.summary,
                since,
            ));
        }
        let keys: HashSet<&str> = now_firing.iter().map(|c| c.key.as_str()).collect();
        for (key, (severity, summary, since)) in &firing {
            if keys.contains(key.as_str()) {
                continue;
            }
            session
                .execute(
                    "UPDATE tend.alert_state SET firing = false, updated_at = clock_timestamp()
                      WHERE key = $1",
                    &[key],
                )
                .await
                .map_err(db)?;
            self.send(notification(key, "resolved", severity, summary, *since));
        }
        Ok(())
    }

    /// Every alert that fires now. Metric rules need two evaluations in a row above their
    /// limit to fire, and resolve only below a lower one (hysteresis).
    async fn conditions(
        &self,
        shared: &Arc<Shared>,
        client: &Client,
        firing: &HashMap<String, (String, String, DateTime<Utc>)>,
    ) -> Result<Vec<Condition>, tokio_postgres::Error> {
        let mut out = Vec::new();
        let schedule = &shared.tasks.settings.serve.schedule;
        // The last finished run of each entry.
        let rows = client
            .query(
                "SELECT DISTINCT ON (entry) entry, outcome, coalesce(error, ''),
                        to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')
                   FROM tend.schedule_runs
                  WHERE outcome IN ('succeeded', 'failed')
                  ORDER BY entry, scheduled_for DESC, id DESC",
                &[],
            )
            .await?;
        for row in &rows {
            let (entry, outcome): (String, String) = (row.get(0), row.get(1));
            let Some(scheduled) = schedule.entries.iter().find(|e| e.name == entry) else {
                continue;
            };
            if outcome != "failed" {
                continue;
            }
            let critical = matches!(
                scheduled.task,
                Task::Backup | Task::PhysicalBackup { .. } | Task::BackupVerify { restore: true }
            );
            let error: String = row.get(2);
            let what = if scheduled.task == (Task::BackupVerify { restore: true }) {
                "the restore drill"
            } else {
                "the scheduled task"
            };
            out.push(Condition {
                key: format!("task_failed:{entry}"),
                severity: if critical { "critical" } else { "warning" },
                summary: format!(
                    "{what} {entry} failed at {}: {}",
                    row.get::<_, String>(3),
                    error.chars().take(500).collect::<String>()
                ),
            });
        }
        // Each kind of backup's age against its schedule.
        type IsKind = fn(&Task) -> bool;
        let kinds: [(&str, IsKind, &str, &str); 2] = [
            (
                "backup_too_old",
                |t| *t == Task::Backup,
                "task = 'backup'",
                "backup",
            ),
            (
                "physical_backup_too_old",
                |t| matches!(t, Task::PhysicalBackup { .. }),
                "task LIKE 'backup --physical%'",
                "physical backup",
            ),
        ];
        for (key, is_kind, filter, what) in kinds {
            let Some(period) = schedule
                .entries
                .iter()
                .filter(|e| is_kind(&e.task))
                .filter_map(|e| match &e.when {
                    When::Cron(cron) => {
                        let first = cron.next_after(Utc::now())?;
                        let second = cron.next_after(first)?;
                        (second - first).to_std().ok()
                    }
                    _ => None,
                })
                .max()
            else {
                continue;
            };
            let row = client
                .query_one(
                    &format!(
                        "SELECT extract(epoch FROM clock_timestamp()
                                  - coalesce(max(finished_at) FILTER (WHERE outcome = 'succeeded'),
                                             min(started_at)))::float8
                           FROM tend.schedule_runs WHERE {filter}"
                    ),
                    &[],
                )
                .await?;
            let limit = period + self.settings.backup_grace;
            if let Some(age) = row.get::<_, Option<f64>>(0)
                && age > limit.as_secs_f64()
            {
                out.push(Condition {
                    key: key.to_string(),
                    severity: "critical",
                    summary: format!(
                        "no {what} succeeded in the last {} (the schedule's period plus alerts.backup_grace)",
                        humantime::format_duration(Duration::from_secs(limit.as_secs()))
                    ),
                });
            }
        }
        // Critical findings of the newest check run.
        let findings = client
            .query(
                "SELECT check_id, min(message) FROM tend.check_findings
                  WHERE run_id = (SELECT max(id) FROM tend.check_runs) AND severity = 'critical'
                  GROUP BY check_id",
                &[],
            )
            .await;
        // The check history may not exist (checks.history off).
        if let Ok(findings) = findings {
            for row in findings {
                let (check, message): (String, String) = (row.get(0), row.get(1));
                out.push(Condition {
                    key: format!("check_critical:{check}"),
                    severity: "critical",
                    summary: format!("check {check} is critical: {message}"),
                });
            }
        }
        // WAL archiving: PostgreSQL failing to archive, and WAL waiting in tend's spool
        // (which PostgreSQL counts archived).
        let row = client
            .query_one(
                "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
                          AND current_setting('archive_mode') <> 'off',
                        last_failed_wal,
                        to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),
                        (SELECT system_identifier::text FROM pg_control_system()),
                        current_setting('archive_command')
                   FROM pg_stat_archiver",
                &[],
            )
            .await?;
        let system: Option<String> = row.get(3);
        if tend_backup::wal::is_tend_archive_command(&row.get::<_, String>(4))
            && let Some(system) = &system
        {
            for window in self.windows(shared).await {
                if window.system_identifier != *system {
                    continue;
                }
                if let Some(required) = shared.tasks.settings.pitr.window
                    && let Some(problem) = tend_core::pitr::window_shortfall(&window.from, required)
                {
                    out.push(Condition {
                        key: "pitr_window_short".to_string(),
                        severity: "warning",
                        summary: problem,
                    });
                }
                if let Some((first, last)) = window.gaps.first() {
                    out.push(Condition {
                        key: "wal_archive_gap".to_string(),
                        severity: "critical",
                        summary: format!(
                            "the WAL archive is missing {first}..{last} after the oldest physical backup ({}): point-in-time recovery cannot pass it; take a physical backup now",
                            window.from_backup
                        ),
                    });
                }
            }
        }
        if row.get::<_, bool>(0) {
            out.push(Condition {
                key: "wal_archiving_failing".to_string(),
                severity: "critical",
                summary: format!(
                    "WAL archiving is failing: PostgreSQL could not archive {} at {} and keeps the WAL in pg_wal until it can (see the server's log)",
                    row.get::<_, Option<String>>(1).unwrap_or_default(),
                    row.get::<_, Option<String>>(2).unwrap_or_default()
                ),
            });
        }
        if let (Some(spool), Some(system)) = (
            &shared.tasks.settings.pitr.spool,
            system.and_then(|s| s.parse::<u64>().ok()),
        ) && let Ok(state) = tend_core::pitr::spool_of(spool, system).state()
            && let Some(problem) = tend_core::pitr::spool_problem(&state)
        {
            let full = state.bytes as f64 >= state.max_bytes as f64 * 0.8;
            out.push(Condition {
                key: "wal_spooled".to_string(),
                severity: if full { "critical" } else { "warning" },
                summary: problem,
            });
        }
        // The server's numbers, with hysteresis.
        let row = client
            .query_one(
                "SELECT pg_database_size(current_database())::float8,
                        (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float8
                          / current_setting('max_connections')::float8,
                        greatest(
                          CASE WHEN pg_is_in_recovery()
                               THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END,
                          (SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication))::float8",
                &[],
            )
            .await?;
        let size_limit = self.settings.database_size_limit as f64;
        let lag_limit = self.settings.replication_lag.as_secs_f64();
        let metrics: [(&str, Option<f64>, f64, f64, String); 3] = [
            (
                "database_size",
                row.get(0),
                size_limit,
                size_limit * 0.95,
                format!(
                    "the database is larger than alerts.database_size_limit ({:.1} GB)",
                    size_limit / 1024f64.powi(3)
                ),
            ),
            (
                "connections",
                row.get(1),
                CONNECTIONS_HIGH.0,
                CONNECTIONS_HIGH.1,
                "client connections are above 80% of max_connections".to_string(),
            ),
            (
                "replication_lag",
                row.get(2),
                lag_limit,
                lag_limit / 2.0,
                format!(
                    "replication lags by more than {}",
                    humantime::format_duration(self.settings.replication_lag)
                ),
            ),
        ];
        let mut pending = self.pending_high.lock();
        for (key, value, high, low, summary) in metrics {
            let Some(value) = value else {
                pending.remove(key);
                continue;
            };
            let fires = if firing.contains_key(key) {
                value > low
            } else if value > high {
                // The second evaluation in a row above the limit fires.
                !pending.insert(key.to_string())
            } else {
                pending.remove(key);
                false
            };
            if fires {
                pending.remove(key);
                out.push(Condition {
                    key: key.to_string(),
                    severity: "warning",
                    summary,
                });
            }
        }
        Ok(out)
    }

    /// The store's recoverable windows, read again when older than `WINDOWS_EVERY`; a
    /// store that cannot be read gives none (the backup tasks' failures say why).
    async fn windows(&self, shared: &Arc<Shared>) -> Vec<tend_core::backup::ArchiveWindow> {
        if let Some((at, windows)) = &*self.windows.lock()
            && at.elapsed() < WINDOWS_EVERY
        {
            return windows.clone();
        }
        let read = async {
            let store = tend_backup::Store::open(&shared.tasks.settings.backup.store).ok()?;
            tend_core::backup::list(&store).await.ok()
        };
        let windows = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .ok()
            .flatten()
            .map(|list| list.windows)
            .unwrap_or_default();
        *self.windows.lock() = Some((std::time::Instant::now(), windows.clone()));
        windows
    }

    /// Sends to every channel on a task of its own, retrying failures.
    fn send(self: &Arc<Self>, notification: Notification) {
        for index in 0..self.channels.len() {
            let this = self.clone();
            let notification = notification.clone();
            this.status.lock()[index].pending += 1;
            tokio::spawn(async move {
                let mut delays = RETRIES.iter();
                loop {
                    let result = this.deliver(&this.channels[index], &notification).await;
                    let retry = {
                        let mut status = this.status.lock();
                        let entry = &mut status[index];
                        match result {
                            Ok(()) => {
                                entry.sent += 1;
                                entry.last_sent_at = Some(Utc::now());
                                None
                            }
                            Err(error) => {
                                entry.failed_attempts += 1;
                                entry.last_error = Some(error);
                                entry.last_error_at = Some(Utc::now());
                                delays.next()
                            }
                        }
                    };
                    let Some(delay) = retry else {
                        this.status.lock()[index].pending -= 1;
                        return;
                    };
                    tokio::time::sleep(*delay).await;
                }
            });
        }
    }

    async fn deliver(&self, channel: &Channel, n: &Notification) -> Result<(), String> {
        let headline = format!(
            "[tend] {} {}: {}",
            if n.state == "firing" {
                "FIRING"
            } else {
                "RESOLVED"
            },
            n.severity,
            n.summary
        );
        match &channel.target {
            Target::Webhook(url) => {
                self.post(url, &serde_json::to_value(n).unwrap_or_default())
                    .await
            }
            Target::Slack(url) => {
                let body = SlackMessage {
                    text: format!("{headline}\n(database {}, {})", n.database, n.instance),
                };
                self.post(url, &serde_json::to_value(&body).unwrap_or_default())
                    .await
            }
            Target::Email(email) => {
                let Email {
                    transport,
                    from,
                    to,
                } = email.as_ref();
                let mut builder = Message::builder()
                    .from(from.clone())
                    .subject(headline.clone());
                for address in to {
                    builder = builder.to(address.clone());
                }
                let body = format!(
                    "{headline}\n\nAlert: {}\nState: {}\nSince: {}\nDatabase: {}\nInstance: {}\n",
                    n.alert, n.state, n.since, n.database, n.instance
                );
                let message = builder
                    .body(body)
                    .map_err(|e| format!("the alert email could not be built: {e}"))?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the mail server refused or could not be reached: {e}"))
            }
        }
    }

    async fn post(&self, url: &SecretString, body: &serde_json::Value) -> Result<(), String> {
        let response = self
            .http
            .post(url.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| format!("the webhook could not be reached: {}", e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {}", response.status()))
        }
    }

    /// What fires now, from the state table, and the channels' status.
    pub async fn report(&self, client: &Client) -> Result<AlertsReport, tokio_postgres::Error> {
        let firing = client
            .query(
                "SELECT key, severity, summary, since FROM tend.alert_state
                  WHERE firing ORDER BY since",
                &[],
            )
            .await?
            .into_iter()
            .map(|r| FiringAlert {
                alert: r.get(0),
                severity: r.get(1),
                summary: r.get(2),
                since: r.get(3),
            })
            .collect();
        Ok(AlertsReport {
            firing,
            channels: self.channel_status(),
        })
    }
}

#[derive(Serialize)]
struct SlackMessage {
    text: String,
}

struct Condition {
    key: String,
    severity: &'static str,
    summary: String,
}
