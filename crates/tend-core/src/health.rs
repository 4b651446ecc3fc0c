//! The health service behind `tend health` (and, later, the daemon's liveness page): the
//! fast probe with the configured limits, one connection attempt of at most 5 s, returning
//! the report `tend health --json` prints.

use std::time::Duration;

use serde::Serialize;
use tend_ops::Severity;
use tend_ops::health::{HealthOptions, Probe, probe};
use tend_pg::ConnInfo;

use crate::settings::{DatabaseSettings, HealthSettings};

/// One probe run: `--json` prints this value.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: Severity,
    /// Nagios: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub exit_code: i32,
    /// Wall time of the probe, to a tenth of a millisecond.
    pub millis: f64,
    pub probes: Vec<Probe>,
}

/// Probes `target` (the database commands use) and the configured read replica.
pub async fn probe_target(
    target: &ConnInfo,
    database: &DatabaseSettings,
    health: &HealthSettings,
) -> HealthReport {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut connect = database.connect_options();
    connect.attempts = 1;
    connect.connect_timeout = connect.connect_timeout.min(Duration::from_secs(5));
    let options = HealthOptions {
        latency_ms: (ms(health.latency_warning), ms(health.latency_critical)),
        connect,
        ..HealthOptions::default()
    };
    let replica = database.read_replica_url.as_ref().map(|url| &url.value);
    let result = probe(target, replica, &options).await;
    HealthReport {
        status: result.status,
        exit_code: result.exit_code(),
        millis: (result.millis * 10.0).round() / 10.0,
        probes: result.probes,
    }
}
