//! `tend serve --print-alert-rules`: a Prometheus rules file over tend's `/metrics`, for
//! teams that alert from Prometheus. The backup's age limit follows the configured schedule.

use std::fmt::Write;
use std::time::Duration;

use chrono::Utc;
use tend_core::schedule::{Schedule, Task, When};

/// How late the backup may be beyond its period before it alerts.
const BACKUP_GRACE: Duration = Duration::from_secs(3600);

/// Above this the database "grew past a size" (the teams' 10 GB).
const DATABASE_SIZE_LIMIT: f64 = 10e9;

struct Rule {
    name: &'static str,
    expr: String,
    for_: &'static str,
    severity: &'static str,
    summary: String,
}

/// The period of the schedule's backup entry: the gap between its next two times.
fn backup_period(schedule: &Schedule) -> Option<Duration> {
    let entry = schedule
        .entries
        .iter()
        .find(|e| e.task == Task::Backup && matches!(e.when, When::Cron(_)))?;
    let When::Cron(cron) = &entry.when else {
        return None;
    };
    let first = cron.next_after(Utc::now())?;
    let second = cron.next_after(first)?;
    (second - first).to_std().ok()
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The rules file, as YAML.
pub fn rules(schedule: &Schedule) -> String {
    let mut rules = vec![
        Rule {
            name: "TendScheduledTaskFailed",
            expr: r#"tend_schedule_last_outcome{outcome="failed"} == 1"#.to_string(),
            for_: "0m",
            severity: "warning",
            summary: "tend: the last run of {{ $labels.entry }} ({{ $labels.task }}) failed"
                .to_string(),
        },
        Rule {
            name: "TendRestoreDrillFailed",
            expr: r#"tend_schedule_last_outcome{task="backup verify --restore",outcome="failed"} == 1"#
                .to_string(),
            for_: "0m",
            severity: "critical",
            summary: "tend: the last restore drill failed: the newest backup may not restore"
                .to_string(),
        },
        Rule {
            name: "TendRetentionBacklog",
            expr: "tend_retention_backlog_oldest_overdue_seconds > 86400".to_string(),
            for_: "30m",
            severity: "warning",
            summary: "tend: rows of {{ $labels.table }} are over a day past retention rule {{ $labels.rule }}: is tend cleanup scheduled and succeeding?"
                .to_string(),
        },
        Rule {
            name: "TendCheckCritical",
            expr: r#"sum by (check) (tend_check_findings{severity="critical"}) > 0"#.to_string(),
            for_: "0m",
            severity: "critical",
            summary: "tend: check {{ $labels.check }} is critical".to_string(),
        },
        Rule {
            name: "TendWalArchivingFailing",
            expr: "max(tend_wal_archiving_failing) == 1".to_string(),
            for_: "5m",
            severity: "critical",
            summary: "tend: PostgreSQL cannot archive its WAL: pg_wal grows and point-in-time recovery falls behind"
                .to_string(),
        },
        Rule {
            name: "TendWalSpooled",
            expr: "max(tend_wal_spool_files) > 0".to_string(),
            for_: "5m",
            severity: "warning",
            summary: "tend: WAL waits in the local spool: the backup store does not take it"
                .to_string(),
        },
        Rule {
            name: "TendDatabaseLarge",
            expr: format!("max(tend_database_size_bytes) > {DATABASE_SIZE_LIMIT:e}"),
            for_: "0m",
            severity: "warning",
            summary: "tend: the database is larger than 10 GB".to_string(),
        },
        Rule {
            name: "TendConnectionsNearLimit",
            expr: "sum(tend_connections) / max(tend_connections_max) > 0.8".to_string(),
            for_: "5m",
            severity: "warning",
            summary: "tend: client connections above 80% of max_connections".to_string(),
        },
        Rule {
            name: "TendReplicationLag",
            expr: "max(tend_replication_lag_seconds) > 300 or max(tend_standby_replay_lag_seconds) > 300"
                .to_string(),
            for_: "5m",
            severity: "warning",
            summary: "tend: replication lag above 5 minutes".to_string(),
        },
        Rule {
            name: "TendDatabaseDown",
            expr: "min(tend_database_up) == 0".to_string(),
            for_: "2m",
            severity: "critical",
            summary: "tend: the database does not answer tend serve".to_string(),
        },
        Rule {
            name: "TendNoLeader",
            expr: "max(tend_leader) == 0".to_string(),
            for_: "5m",
            severity: "critical",
            summary: "tend: no tend serve instance leads, so nothing scheduled runs".to_string(),
        },
    ];
    if let Some(period) = backup_period(schedule) {
        let limit = (period + BACKUP_GRACE).as_secs();
        rules.insert(
            1,
            Rule {
                name: "TendBackupTooOld",
                expr: format!(
                    r#"time() - max(tend_schedule_last_success_timestamp_seconds{{task="backup"}}) > {limit}"#
                ),
                for_: "0m",
                severity: "critical",
                summary: format!(
                    "tend: no backup succeeded in the last {} (its schedule plus {})",
                    humantime::format_duration(period + BACKUP_GRACE),
                    humantime::format_duration(BACKUP_GRACE)
                ),
            },
        );
    }
    let mut out = String::from(
        "# Prometheus alerting rules for tend serve's /metrics (tend serve --print-alert-rules).\n\
         groups:\n  - name: tend\n    rules:\n",
    );
    for rule in &rules {
        let _ = write!(
            out,
            "      - alert: {}\n        expr: {}\n        for: {}\n        labels:\n          severity: {}\n        annotations:\n          summary: {}\n",
            rule.name,
            quoted(&rule.expr),
            rule.for_,
            rule.severity,
            quoted(&rule.summary)
        );
    }
    out
}
