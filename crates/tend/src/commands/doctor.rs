//! `tend doctor`: finds what stands between this machine and a working tend, and says how to
//! fix each thing in one sentence. Exit 0 only when nothing is wrong. The diagnosis is the
//! core's (`tend_core::doctor`); this command resolves the database to check (starting the
//! local cluster when none is configured) and renders the report.

use std::path::Path;

use clap::Args;
use tend_core::doctor::{Diagnosis, DoctorReport, DoctorTarget};
use tend_pg::ConnInfo;

pub use tend_core::doctor::{Finding, Status};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{TargetOrigin, block_on, resolve_target};
use crate::output::Output;
use crate::output::count;
use crate::settings::{ConfigError, Settings};

#[derive(Debug, Args)]
pub struct DoctorArgs {}

pub fn run(
    _args: DoctorArgs,
    settings: Result<Settings, ConfigError>,
    cwd: &Path,
    out: &Output,
) -> Result<i32, CommandError> {
    let (settings, config_error) = match settings {
        Ok(settings) => (settings, None),
        // Keep checking what does not depend on the configuration (the tools).
        Err(err) => (Settings::defaults(cwd), Some(err.to_string())),
    };
    let config_broken = config_error.is_some();
    // The database every command would use: configured, or the local cluster (the embedded
    // default, started on demand). With a configuration that cannot be read, neither: the
    // local cluster would stand in for a database the user did configure.
    let target = if config_broken {
        DoctorTarget::ConfigUnreadable
    } else {
        match resolve_target(&settings, out) {
            Ok(target) => match target.origin {
                TargetOrigin::Configured(source) => DoctorTarget::Configured {
                    info: target.info,
                    source,
                },
                TargetOrigin::LocalCluster => DoctorTarget::LocalCluster { info: target.info },
            },
            Err(err) => DoctorTarget::LocalClusterFailed {
                reason: err.message,
                fix: err.hints.first().cloned(),
            },
        }
    };
    let report = block_on(tend_core::doctor::diagnose(Diagnosis {
        settings: &settings,
        config_error,
        target,
    }));
    render(out, &report);
    if report.ok {
        Ok(exit::OK)
    } else {
        // A configuration that cannot be read exits as every command does on it.
        Err(CommandError::silent(if config_broken {
            ErrorKind::Config
        } else {
            ErrorKind::Failure
        }))
    }
}

fn render(out: &Output, report: &DoctorReport) {
    out.json_value(&serde_json::to_value(report).expect("doctor reports serialize"));
    for finding in &report.findings {
        let mark = match finding.status {
            Status::Ok => out.paint("ok  ", "32"),
            Status::Info => out.paint("info", "34"),
            Status::Warning => out.paint("warn", "33"),
            Status::Error => out.paint("FAIL", "31;1"),
        };
        out.line(format!("{mark} {:<26} {}", finding.check, finding.message));
        if let Some(fix) = &finding.fix {
            out.line(format!("     {:<26} fix: {fix}", ""));
        }
    }
    if report.ok {
        out.line(format!(
            "\nAll is well{}.",
            if report.warnings > 0 {
                format!(" ({})", count(report.warnings, "warning", "warnings"))
            } else {
                String::new()
            }
        ));
    } else {
        out.line(format!(
            "\n{} found.",
            count(report.errors, "problem", "problems")
        ));
    }
}

/// The PostgreSQL programs tend runs (the core's findings), for the demo.
pub fn check_tools(settings: &Settings, database_configured: bool) -> Vec<Finding> {
    tend_core::doctor::tools(settings, database_configured)
}

/// Connects to `info` and checks what tend needs of it (a pg_dump that can dump it).
pub fn check_one_database(settings: &Settings, check: &str, info: &ConnInfo) -> Vec<Finding> {
    block_on(tend_core::doctor::database(settings, check, info))
}
