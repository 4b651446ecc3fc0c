//! `tend health`: the fast probe for scripts, load balancers and Kubernetes, with Nagios
//! exit codes (0 ok, 1 warning, 2 critical, 3 unknown).

use std::time::Duration;

use clap::Args;
use tend_ops::Severity;
use tend_ops::health::{HealthOptions, probe};

use crate::command_error::CommandError;
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct HealthArgs {}

pub fn run(_args: HealthArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let replica = ctx
        .settings
        .database
        .read_replica_url
        .as_ref()
        .map(|url| url.value.clone());
    let health_settings = &ctx.settings.health;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut connect = ctx.settings.connect_options();
    connect.attempts = 1;
    connect.connect_timeout = connect.connect_timeout.min(Duration::from_secs(5));
    let options = HealthOptions {
        latency_ms: (
            ms(health_settings.latency_warning),
            ms(health_settings.latency_critical),
        ),
        connect,
        ..HealthOptions::default()
    };
    let health = block_on(probe(&target.info, replica.as_ref(), &options));
    ctx.out.json_value(&serde_json::json!({
        "status": health.status,
        "exit_code": health.exit_code(),
        "millis": (health.millis * 10.0).round() / 10.0,
        "probes": health.probes,
    }));
    let word = |s: Severity| match s {
        Severity::Ok | Severity::Info => ctx.out.paint("OK", "32"),
        Severity::Warning => ctx.out.paint("WARNING", "33"),
        Severity::Critical => ctx.out.paint("CRITICAL", "31;1"),
        Severity::Unknown => ctx.out.paint("UNKNOWN", "35"),
    };
    ctx.out.line(format!(
        "{} - {}",
        word(health.status),
        health
            .probes
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    ));
    if ctx.out.verbose {
        for p in &health.probes {
            ctx.out.line(format!("  {:<20} {}", p.name, word(p.status)));
        }
    }
    Ok(health.exit_code())
}
