//! `tend health`: a probe fast enough for a load balancer: connect, one round trip, recovery
//! state, connections against the maximum, replica lag when a replica is configured.

use std::time::{Duration, Instant};

use serde::Serialize;
use tend_pg::{ConnInfo, ConnectOptions};

use crate::check::Severity;

/// Limits of the probe (warning, critical).
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Connect plus first round trip, in milliseconds (DB_CONNECTION_TIME_THRESHOLD).
    pub latency_ms: (f64, f64),
    /// Percent of max_connections in use.
    pub connections_pct: (f64, f64),
    /// Replica replay lag, in seconds.
    pub replica_lag_s: (f64, f64),
    pub connect: ConnectOptions,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            latency_ms: (500.0, 2000.0),
            connections_pct: (80.0, 95.0),
            replica_lag_s: (30.0, 300.0),
            connect: ConnectOptions {
                connect_timeout: Duration::from_secs(5),
                attempts: 1,
                ..ConnectOptions::default()
            },
        }
    }
}

/// One line of the probe.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub name: &'static str,
    pub status: Severity,
    pub value: Option<f64>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: Severity,
    pub probes: Vec<Probe>,
    pub millis: f64,
}

impl Health {
    /// Nagios: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            Severity::Ok | Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
            Severity::Unknown => 3,
        }
    }
}

fn judge(value: f64, (warning, critical): (f64, f64)) -> Severity {
    if value >= critical {
        Severity::Critical
    } else if value >= warning {
        Severity::Warning
    } else {
        Severity::Ok
    }
}

/// Probes the primary (and the replica when given).
pub async fn probe(
    primary: &ConnInfo,
    replica: Option<&ConnInfo>,
    options: &HealthOptions,
) -> Health {
    let started = Instant::now();
    let mut probes = Vec::new();
    probe_server(primary, "primary", options, &mut probes, false).await;
    if let Some(replica) = replica {
        probe_server(replica, "replica", options, &mut probes, true).await;
    }
    let status = probes
        .iter()
        .map(|p| p.status)
        .max()
        .unwrap_or(Severity::Unknown);
    Health {
        status,
        probes,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    }
}

async fn probe_server(
    info: &ConnInfo,
    role: &'static str,
    options: &HealthOptions,
    probes: &mut Vec<Probe>,
    is_replica: bool,
) {
    let started = Instant::now();
    let session = match tend_pg::connect(info, &options.connect).await {
        Ok(session) => session,
        Err(err) => {
            probes.push(Probe {
                name: if is_replica {
                    "replica.connect"
                } else {
                    "connect"
                },
                status: Severity::Critical,
                value: None,
                message: err.to_string(),
            });
            return;
        }
    };
    let row = session
        .query_one(
            "SELECT pg_is_in_recovery(),
                    -- A role without pg_read_all_stats sees other roles' sessions without
                    -- their backend_type: count those connected to a database too, so
                    -- the connection count is never lower for it than for a superuser.
                    (SELECT count(*) FROM pg_stat_activity
                      WHERE backend_type = 'client backend'
                         OR (backend_type IS NULL AND datname IS NOT NULL
                             AND query = '<insufficient privilege>'))::float8,
                    current_setting('max_connections')::float8,
                    CASE WHEN pg_is_in_recovery()
                         THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
                    END,
                    CASE WHEN pg_is_in_recovery()
                         THEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
                    END",
            &[],
        )
        .await;
    let latency = started.elapsed().as_secs_f64() * 1000.0;
    let row = match row {
        Ok(row) => row,
        Err(err) => {
            probes.push(Probe {
                name: if is_replica { "replica.query" } else { "query" },
                status: Severity::Critical,
                value: None,
                message: format!(
                    "the {role} accepted the connection but not a query: {}",
                    tend_pg::error_text(&err)
                ),
            });
            return;
        }
    };
    let in_recovery: bool = row.get(0);
    let used: f64 = row.get(1);
    let max: f64 = row.get(2);
    let lag: Option<f64> = row.get(3);
    let caught_up: Option<bool> = row.get(4);
    probes.push(Probe {
        name: if is_replica {
            "replica.latency"
        } else {
            "latency"
        },
        status: judge(latency, options.latency_ms),
        value: Some(latency),
        message: format!("connected and answered in {latency:.1} ms"),
    });
    let pct = 100.0 * used / max.max(1.0);
    probes.push(Probe {
        name: if is_replica {
            "replica.connections"
        } else {
            "connections"
        },
        status: judge(pct, options.connections_pct),
        value: Some(pct),
        message: format!("{used:.0} of {max:.0} connections in use ({pct:.0}%)"),
    });
    if is_replica {
        // An idle primary sends nothing to replay: a replica that has replayed all it
        // received is not behind, whatever its last replay time says.
        let lag = if caught_up == Some(true) {
            Some(0.0)
        } else {
            lag
        };
        probes.push(match (in_recovery, lag) {
            (false, _) => Probe {
                name: "replica.lag",
                status: Severity::Critical,
                value: None,
                message: "the configured replica is not in recovery: it is a primary".to_string(),
            },
            (true, Some(lag)) => Probe {
                name: "replica.lag",
                status: judge(lag, options.replica_lag_s),
                value: Some(lag),
                message: format!("the replica is {lag:.1}s behind"),
            },
            (true, None) => Probe {
                name: "replica.lag",
                status: Severity::Unknown,
                value: None,
                message: "the replica has replayed nothing yet".to_string(),
            },
        });
    } else {
        probes.push(Probe {
            name: "role",
            status: Severity::Ok,
            value: None,
            message: if in_recovery {
                "in recovery (a standby): read-only".to_string()
            } else {
                "primary: accepts writes".to_string()
            },
        });
    }
}
