//! `tend health`: the fast probe for scripts, load balancers and Kubernetes, with Nagios
//! exit codes (0 ok, 1 warning, 2 critical, 3 unknown).

use clap::Args;
use tend_ops::Severity;

use crate::command_error::CommandError;
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct HealthArgs {}

pub fn run(_args: HealthArgs, ctx: &Context) -> Result<i32, CommandError> {
    let target = ctx.target()?;
    let health = block_on(tend_core::health::probe_target(
        &target.info,
        &ctx.settings.database,
        &ctx.settings.health,
    ));
    ctx.out.json_value(&health);
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
    Ok(health.exit_code)
}
