//! `/metrics`: what a Prometheus server scrapes, read fresh at each scrape from the
//! database (one read-only session, a few catalog queries sized to stay cheap on databases
//! of many relations), from tend's own records (scheduled runs, check history), and from
//! this process. Encoded with prometheus-client (OpenMetrics text).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio_postgres::Client;

use crate::scheduler::Role;

type Labels = Vec<(String, String)>;
type GaugeF = Gauge<f64, AtomicU64>;

/// Registers a gauge family and returns it.
fn family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, GaugeF> {
    let family = Family::<Labels, GaugeF>::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    family
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The scrape: every metric, as OpenMetrics text. A query that fails (a privilege, tend's
/// tables not made yet) leaves its metrics out; `tend_scrape_errors` counts those.
pub async fn scrape(
    client: Option<&Client>,
    role: Role,
    spool: Option<&tend_core::settings::SpoolSettings>,
) -> String {
    let mut root = Registry::default();
    let registry = root.sub_registry_with_prefix("tend");
    let up = family(
        registry,
        "database_up",
        "Whether the database answered this scrape",
        None,
    );
    let leader = family(
        registry,
        "leader",
        "Whether this instance leads (runs the schedule)",
        None,
    );
    leader
        .get_or_create(&labels(&[]))
        .set(if role == Role::Leader { 1.0 } else { 0.0 });
    let errors = family(
        registry,
        "scrape_errors",
        "Queries of this scrape that failed (their metrics are left out)",
        None,
    );
    let mut failed = 0.0;
    if let Some(client) = client {
        up.get_or_create(&labels(&[])).set(1.0);
        for part in [database, schedule, checks] {
            failed += part(registry, client).await;
        }
        failed += wal(registry, client, spool).await;
        failed += backlog(registry);
    } else {
        up.get_or_create(&labels(&[])).set(0.0);
    }
    errors.get_or_create(&labels(&[])).set(failed);
    process(&mut root);
    let mut text = String::new();
    encode(&mut text, &root).expect("writing to a String does not fail");
    text
}

/// The same metrics in Prometheus' text format 0.0.4, for scrapers that do not ask for
/// OpenMetrics (promtool, curl, older agents): no `# UNIT` or `# EOF` lines, and a
/// counter's `# HELP` and `# TYPE` name its sample (`x_total`), not its family (`x`).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(previous) = help.replace(line) {
                out.push_str(previous);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let renamed = kind == "counter" && !name.ends_with("_total");
            if let Some(help_line) = help.take() {
                match help_line
                    .strip_prefix("# HELP ")
                    .and_then(|h| h.split_once(' '))
                {
                    Some((help_name, text)) if renamed && help_name == name => {
                        out.push_str(&format!("# HELP {name}_total {text}\n"));
                    }
                    _ => {
                        out.push_str(help_line);
                        out.push('\n');
                    }
                }
            }
            if renamed {
                out.push_str(&format!("# TYPE {name}_total {kind}\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if let Some(help_line) = help.take() {
            out.push_str(help_line);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(help_line) = help {
        out.push_str(help_line);
        out.push('\n');
    }
    out
}

/// The number of failed queries: 0 or 1.
fn failed<T>(result: &Result<T, tokio_postgres::Error>) -> f64 {
    if result.is_err() { 1.0 } else { 0.0 }
}

/// The server: connections, the longest transaction, blocked sessions, sizes, lag.
fn database<'a>(
    registry: &'a mut Registry,
    client: &'a Client,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = f64> + Send + 'a>> {
    Box::pin(async move {
        let mut errors = 0.0;
        let activity = client
            .query(
                "SELECT coalesce(state, 'unknown'), count(*)::float8
                   FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1",
                &[],
            )
            .await;
        errors += failed(&activity);
        let connections = family(
            registry,
            "connections",
            "Client sessions by state (pg_stat_activity)",
            None,
        );
        for row in activity.iter().flatten() {
            connections
                .get_or_create(&labels(&[("state", row.get(0))]))
                .set(row.get(1));
        }
        let summary = client
            .query_one(
                "SELECT current_setting('max_connections')::float8,
                        coalesce((SELECT max(extract(epoch FROM clock_timestamp() - xact_start))
                                    FROM pg_stat_activity
                                   WHERE xact_start IS NOT NULL
                                     AND backend_type = 'client backend'), 0)::float8,
                        (SELECT count(*) FROM pg_stat_activity
                          WHERE wait_event_type = 'Lock'
                            AND cardinality(pg_blocking_pids(pid)) > 0)::float8,
                        pg_is_in_recovery(),
                        CASE WHEN pg_is_in_recovery()
                             THEN coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
                        END::float8",
                &[],
            )
            .await;
        errors += failed(&summary);
        if let Ok(row) = &summary {
            let one = |registry: &mut Registry, name: &str, help: &str, unit, value: f64| {
                family(registry, name, help, unit)
                    .get_or_create(&labels(&[]))
                    .set(value);
            };
            one(
                registry,
                "connections_max",
                "max_connections of the server",
                None,
                row.get(0),
            );
            one(
                registry,
                "longest_transaction",
                "Age of the oldest open client transaction",
                Some(Unit::Seconds),
                row.get(1),
            );
            one(
                registry,
                "blocked_sessions",
                "Sessions waiting for a lock another session holds",
                None,
                row.get(2),
            );
            if let Some(lag) = row.get::<_, Option<f64>>(4) {
                family(
                    registry,
                    "replication_lag",
                    "Replication lag: per standby on a primary; since the last replayed transaction on a standby",
                    Some(Unit::Seconds),
                )
                .get_or_create(&labels(&[("standby", "self")]))
                .set(lag);
            }
        }
        let standbys = client
            .query(
                "SELECT coalesce(application_name, '') || '@' || coalesce(host(client_addr), 'local'),
                        coalesce(extract(epoch FROM replay_lag), 0)::float8
                   FROM pg_stat_replication",
                &[],
            )
            .await;
        errors += failed(&standbys);
        if let Ok(rows) = &standbys
            && !rows.is_empty()
        {
            let lag = family(
                registry,
                "standby_replay_lag",
                "Replay lag of each standby streaming from this server",
                Some(Unit::Seconds),
            );
            for row in rows {
                lag.get_or_create(&labels(&[("standby", row.get(0))]))
                    .set(row.get(1));
            }
        }
        match sizes(client).await {
            Ok(sizes) => {
                family(
                    registry,
                    "database_size",
                    "Size of the database on disk (read at most once a minute)",
                    Some(Unit::Bytes),
                )
                .get_or_create(&labels(&[]))
                .set(sizes.database);
                let tables = family(
                    registry,
                    "table_size",
                    "Size of the 20 biggest tables, with their indexes and TOAST (read at most once a minute)",
                    Some(Unit::Bytes),
                );
                for (schema, table, bytes) in &sizes.tables {
                    tables
                        .get_or_create(&labels(&[("schema", schema), ("table", table)]))
                        .set(*bytes);
                }
            }
            Err(_) => errors += 1.0,
        }
        errors
    })
}

/// tend's own records: each schedule entry's last run, and the last successful backup and
/// verification.
/// WAL archiving (pg_stat_archiver) and tend's local spool, when one is configured.
async fn wal(
    registry: &mut Registry,
    client: &Client,
    spool: Option<&tend_core::settings::SpoolSettings>,
) -> f64 {
    let row = client
        .query_one(
            "SELECT archived_count::float8, failed_count::float8,
                    (coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
                      AND current_setting('archive_mode') <> 'off'),
                    extract(epoch FROM clock_timestamp() - last_archived_time)::float8,
                    (SELECT system_identifier::text FROM pg_control_system())
               FROM pg_stat_archiver",
            &[],
        )
        .await;
    let errors = failed(&row);
    let Ok(row) = row else {
        return errors;
    };
    let mut one = |name: &str, help: &str, unit: Option<Unit>, value: f64| {
        family(registry, name, help, unit)
            .get_or_create(&labels(&[]))
            .set(value);
    };
    one(
        "wal_archived",
        "WAL files archived since statistics were reset (pg_stat_archiver.archived_count)",
        None,
        row.get(0),
    );
    one(
        "wal_archive_failed",
        "Failed attempts to archive WAL since statistics were reset (pg_stat_archiver.failed_count)",
        None,
        row.get(1),
    );
    one(
        "wal_archiving_failing",
        "Whether the last attempt to archive WAL failed",
        None,
        if row.get::<_, bool>(2) { 1.0 } else { 0.0 },
    );
    if let Some(age) = row.get::<_, Option<f64>>(3) {
        one(
            "wal_last_archived_age",
            "Time since PostgreSQL last archived a WAL file",
            Some(Unit::Seconds),
            age,
        );
    }
    let system = row
        .get::<_, Option<String>>(4)
        .and_then(|s| s.parse::<u64>().ok());
    if let (Some(settings), Some(system)) = (spool, system) {
        match tend_core::pitr::spool_of(settings, system).state() {
            Ok(state) => {
                one(
                    "wal_spool_files",
                    "WAL files waiting in tend's local spool for the store",
                    None,
                    state.files as f64,
                );
                one(
                    "wal_spool",
                    "Bytes waiting in tend's local spool for the store",
                    Some(Unit::Bytes),
                    state.bytes as f64,
                );
                one(
                    "wal_spool_max",
                    "The spool's cap (pitr.spool_max): past it, archiving fails",
                    Some(Unit::Bytes),
                    state.max_bytes as f64,
                );
                one(
                    "wal_spool_oldest_age",
                    "How long the oldest file in the spool has waited (0 when empty)",
                    Some(Unit::Seconds),
                    state.oldest_age_seconds.unwrap_or(0) as f64,
                );
                return errors;
            }
            Err(_) => return errors + 1.0,
        }
    }
    errors
}

fn schedule<'a>(
    registry: &'a mut Registry,
    client: &'a Client,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = f64> + Send + 'a>> {
    Box::pin(async move {
        if !has_table(client, "tend.schedule_runs").await {
            return 0.0;
        }
        let rows = client
            .query(
                "SELECT DISTINCT ON (entry) entry, task, outcome,
                        coalesce(extract(epoch FROM finished_at - started_at), 0)::float8,
                        extract(epoch FROM started_at)::float8,
                        (SELECT extract(epoch FROM max(s.finished_at))::float8
                           FROM tend.schedule_runs s
                          WHERE s.entry = r.entry AND s.outcome = 'succeeded')
                   FROM tend.schedule_runs r
                  WHERE outcome NOT IN ('requested', 'running', 'skipped')
                  ORDER BY entry, scheduled_for DESC, id DESC",
                &[],
            )
            .await;
        let errors = failed(&rows);
        let outcome = family(
            registry,
            "schedule_last_outcome",
            "1 for the outcome of each schedule entry's last finished run",
            None,
        );
        let duration = family(
            registry,
            "schedule_last_duration",
            "Duration of each schedule entry's last finished run",
            Some(Unit::Seconds),
        );
        let started = family(
            registry,
            "schedule_last_run_timestamp",
            "When each schedule entry's last finished run started",
            Some(Unit::Seconds),
        );
        let success = family(
            registry,
            "schedule_last_success_timestamp",
            "When each schedule entry last succeeded",
            Some(Unit::Seconds),
        );
        for row in rows.iter().flatten() {
            let (entry, task): (String, String) = (row.get(0), row.get(1));
            for state in ["succeeded", "failed", "cancelled", "abandoned"] {
                let is = row.get::<_, String>(2) == state;
                outcome
                    .get_or_create(&labels(&[
                        ("entry", &entry),
                        ("task", &task),
                        ("outcome", state),
                    ]))
                    .set(if is { 1.0 } else { 0.0 });
            }
            let pair = labels(&[("entry", &entry), ("task", &task)]);
            duration.get_or_create(&pair).set(row.get(3));
            started.get_or_create(&pair).set(row.get(4));
            if let Some(at) = row.get::<_, Option<f64>>(5) {
                success.get_or_create(&pair).set(at);
            }
        }
        let backup = client
            .query_opt(
                "SELECT extract(epoch FROM finished_at)::float8,
                        extract(epoch FROM finished_at - started_at)::float8,
                        (report ->> 'stored_bytes')::float8, (report ->> 'raw_bytes')::float8
                   FROM tend.schedule_runs
                  WHERE task = 'backup' AND outcome = 'succeeded'
                  ORDER BY finished_at DESC LIMIT 1",
                &[],
            )
            .await;
        let errors = errors + failed(&backup);
        if let Ok(Some(row)) = &backup {
            let kind = labels(&[("kind", "logical")]);
            let set =
                |registry: &mut Registry, name: &str, help: &str, unit, value: Option<f64>| {
                    if let Some(value) = value {
                        family(registry, name, help, unit)
                            .get_or_create(&kind)
                            .set(value);
                    }
                };
            set(
                registry,
                "backup_last_success_timestamp",
                "When the last scheduled backup that succeeded finished",
                Some(Unit::Seconds),
                row.get(0),
            );
            set(
                registry,
                "backup_last_duration",
                "How long the last successful scheduled backup took",
                Some(Unit::Seconds),
                row.get(1),
            );
            set(
                registry,
                "backup_last_stored",
                "Bytes the last successful scheduled backup stored (compressed, encrypted)",
                Some(Unit::Bytes),
                row.get(2),
            );
            set(
                registry,
                "backup_last_dumped",
                "Bytes the last successful scheduled backup dumped (before compression)",
                Some(Unit::Bytes),
                row.get(3),
            );
        }
        errors
    })
}

/// The newest `tend check` run's findings by check and severity.
fn checks<'a>(
    registry: &'a mut Registry,
    client: &'a Client,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = f64> + Send + 'a>> {
    Box::pin(async move {
        if !has_table(client, "tend.check_runs").await {
            return 0.0;
        }
        let rows = client
            .query(
                "WITH last AS (SELECT id, started_at FROM tend.check_runs ORDER BY id DESC LIMIT 1)
                 SELECT f.check_id, f.severity, count(*)::float8,
                        extract(epoch FROM (SELECT started_at FROM last))::float8
                   FROM tend.check_findings f WHERE f.run_id = (SELECT id FROM last)
                  GROUP BY 1, 2",
                &[],
            )
            .await;
        let findings = family(
            registry,
            "check_findings",
            "Findings of the newest check run, by check and severity",
            None,
        );
        for row in rows.iter().flatten() {
            findings
                .get_or_create(&labels(&[("check", row.get(0)), ("severity", row.get(1))]))
                .set(row.get(2));
        }
        let last = client
            .query_opt(
                "SELECT extract(epoch FROM started_at)::float8 FROM tend.check_runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await;
        if let Ok(Some(row)) = &last {
            family(
                registry,
                "check_last_run_timestamp",
                "When the newest check run started",
                Some(Unit::Seconds),
            )
            .get_or_create(&labels(&[]))
            .set(row.get(0));
        }
        failed(&rows) + failed(&last)
    })
}

/// The newest count of the retention rules' backlog, and when it was read.
struct BacklogReading {
    read_at: std::time::Instant,
    unix: f64,
    rules: Result<Vec<tend_core::cleanup::Backlog>, String>,
}

/// How long a backlog count is reused. Counting reads the schema and every rule's rows,
/// which may take longer than a scrape may, so it runs beside the scrapes, at most this
/// often, and a scrape shows the newest count.
const BACKLOG_FOR: std::time::Duration = std::time::Duration::from_secs(300);

static BACKLOG: std::sync::Mutex<Option<BacklogReading>> = std::sync::Mutex::new(None);
static BACKLOG_COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Starts a count of the backlog in the background when the newest is older than
/// [`BACKLOG_FOR`] (or there is none) and no count is running.
pub fn refresh_backlog(
    database: &tend_pg::Database,
    settings: &tend_core::settings::CleanupSettings,
) {
    use std::sync::atomic::Ordering;
    let fresh = BACKLOG
        .lock()
        .expect("the backlog lock is never poisoned")
        .as_ref()
        .is_some_and(|r| r.read_at.elapsed() < BACKLOG_FOR);
    if fresh || BACKLOG_COUNTING.swap(true, Ordering::SeqCst) {
        return;
    }
    let database = database.clone();
    let settings = settings.clone();
    tokio::spawn(async move {
        let rules = match database.session().await {
            Ok(session) => tend_core::cleanup::backlog(&session, &settings)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        *BACKLOG.lock().expect("the backlog lock is never poisoned") = Some(BacklogReading {
            read_at: std::time::Instant::now(),
            unix,
            rules,
        });
        BACKLOG_COUNTING.store(false, Ordering::SeqCst);
    });
}

/// The retention backlog from the newest count; 1 error when that count failed.
fn backlog(registry: &mut Registry) -> f64 {
    let reading = BACKLOG.lock().expect("the backlog lock is never poisoned");
    let Some(reading) = reading.as_ref() else {
        return 0.0;
    };
    let Ok(rules) = &reading.rules else {
        return 1.0;
    };
    family(
        registry,
        "retention_backlog_read",
        "When the retention backlog below was counted (it is counted at most every 5 minutes)",
        Some(Unit::Seconds),
    )
    .get_or_create(&labels(&[]))
    .set(reading.unix);
    let rows = family(
        registry,
        "retention_backlog_rows",
        "Rows past their retention rule that tend cleanup would delete now",
        None,
    );
    let overdue = family(
        registry,
        "retention_backlog_oldest_overdue",
        "How long ago the oldest row of the backlog passed its rule (rules with an age)",
        Some(Unit::Seconds),
    );
    for rule in rules {
        let names = labels(&[("rule", &rule.rule), ("table", &rule.table)]);
        rows.get_or_create(&names).set(rule.rows as f64);
        if let Some(age) = rule.oldest_overdue_seconds {
            overdue.get_or_create(&names).set(age);
        }
    }
    0.0
}

/// Sizes on disk: the database's and its 20 biggest tables'.
#[derive(Clone)]
struct Sizes {
    database: f64,
    tables: Vec<(String, String, f64)>,
    read_at: std::time::Instant,
}

/// How long sizes are reused: reading them stats every file of the database (20 ms on
/// 10,000 relations), and they change slowly next to a scrape interval.
const SIZES_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The last sizes read. A daemon serves one database, so one value per process; the async
/// lock makes concurrent scrapes wait for one read instead of each doing it.
static SIZES: tokio::sync::Mutex<Option<Sizes>> = tokio::sync::Mutex::const_new(None);

async fn sizes(client: &Client) -> Result<Sizes, tokio_postgres::Error> {
    let mut cached = SIZES.lock().await;
    if let Some(sizes) = cached.as_ref()
        && sizes.read_at.elapsed() < SIZES_FOR
    {
        return Ok(sizes.clone());
    }
    let database: f64 = client
        .query_one("SELECT pg_database_size(current_database())::float8", &[])
        .await?
        .get(0);
    // Candidates by pages (no file is read), then the real sizes of those only, so this
    // costs the same on 10 or 10,000 relations.
    let tables = client
        .query(
            "WITH candidates AS (
                SELECT c.oid, n.nspname, c.relname FROM pg_class c
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'm', 'p')
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                   AND n.nspname NOT LIKE 'pg_toast%'
                 ORDER BY c.relpages DESC LIMIT 50)
             SELECT nspname::text, relname::text, pg_total_relation_size(oid)::float8 AS bytes
               FROM candidates ORDER BY bytes DESC LIMIT 20",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let sizes = Sizes {
        database,
        tables,
        read_at: std::time::Instant::now(),
    };
    *cached = Some(sizes.clone());
    Ok(sizes)
}

async fn has_table(client: &Client, name: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map(|r| r.get(0))
        .unwrap_or(false)
}

/// This process: resident memory, CPU time, open files, start time (Linux `/proc`),
/// under the conventional `process_` names.
fn process(root: &mut Registry) {
    let Some(stat) = ProcStat::read() else {
        return;
    };
    let gauge = |v: f64| {
        let g = GaugeF::default();
        g.set(v);
        g
    };
    let sub = root.sub_registry_with_prefix("process");
    sub.register_with_unit(
        "resident_memory",
        "Resident memory of tend serve",
        Unit::Bytes,
        gauge(stat.rss_bytes),
    );
    sub.register_with_unit(
        "cpu",
        "CPU time tend serve used, user and system",
        Unit::Seconds,
        ConstCounter::new(stat.cpu_seconds),
    );
    sub.register(
        "open_fds",
        "Open file descriptors of tend serve",
        gauge(stat.open_fds),
    );
    sub.register_with_unit(
        "start_time",
        "When tend serve started, since the epoch",
        Unit::Seconds,
        gauge(stat.start_time),
    );
}

/// What `/proc/self` says of this process.
struct ProcStat {
    rss_bytes: f64,
    cpu_seconds: f64,
    open_fds: f64,
    start_time: f64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as f64;
        // utime, stime, starttime and rss are fields 14, 15, 22 and 24 of stat(5); `rest`
        // starts at field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        Some(ProcStat {
            rss_bytes: field(24)? * page,
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            open_fds,
            start_time: boot + field(22)? / ticks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn counters_are_named_by_their_sample_and_openmetrics_lines_dropped() {
        let open = "# HELP process_cpu_seconds CPU time.\n# TYPE process_cpu_seconds counter\n\
                    # UNIT process_cpu_seconds seconds\nprocess_cpu_seconds_total 0.5\n\
                    # HELP tend_leader Leads.\n# TYPE tend_leader gauge\ntend_leader 1.0\n# EOF\n";
        assert_eq!(
            to_prometheus_text(open),
            "# HELP process_cpu_seconds_total CPU time.\n# TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 0.5\n\
             # HELP tend_leader Leads.\n# TYPE tend_leader gauge\ntend_leader 1.0\n"
        );
    }
}
