//! `tend doctor`: finds what stands between this machine and a working tend, and says how to
//! fix each thing in one sentence. Exit 0 only when nothing is wrong.

use std::path::Path;

use clap::Args;
use serde::Serialize;
use tend_pg::{ConnInfo, PgTool, ServerFacts, VersionNeed};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{TargetOrigin, block_on, resolve_target};
use crate::output::Output;
use crate::output::count;
use crate::settings::{ConfigError, Settings};

#[derive(Debug, Args)]
pub struct DoctorArgs {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Info,
    Warning,
    Error,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

struct Report(Vec<Finding>);

impl Report {
    fn push(&mut self, check: impl Into<String>, status: Status, message: impl Into<String>) {
        self.0.push(Finding {
            check: check.into(),
            status,
            message: message.into(),
            fix: None,
        });
    }

    fn push_fix(
        &mut self,
        check: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Finding {
            check: check.into(),
            status,
            message: message.into(),
            fix: Some(fix.into()),
        });
    }
}

pub fn run(
    _args: DoctorArgs,
    settings: Result<Settings, ConfigError>,
    cwd: &Path,
    out: &Output,
) -> Result<i32, CommandError> {
    let mut report = Report(Vec::new());
    let config_broken = settings.is_err();
    let settings = match settings {
        Ok(settings) => {
            let where_ = match &settings.config_file {
                Some(path) => format!("configuration from {} is valid", path.display()),
                None => "no tend.toml found; using environment variables and defaults".to_string(),
            };
            report.push("config", Status::Ok, where_);
            settings
        }
        Err(err) => {
            let message = err.to_string();
            report.push_fix(
                "config",
                Status::Error,
                message,
                "fix the value named above; `tend config show` prints what is in effect",
            );
            // Keep checking what does not depend on the configuration (the tools).
            Settings::defaults(cwd)
        }
    };
    report.0.extend(check_tools(
        &settings,
        settings.url("database.url").is_some(),
    ));

    // The database every command would use: configured, or the local cluster (the embedded
    // default, started on demand). With a configuration that cannot be read, neither: the
    // local cluster would stand in for a database the user did configure.
    let target = if config_broken {
        Err(CommandError::new(
            ErrorKind::Config,
            "not checked: the configuration cannot be read",
        )
        .with_hint("fix the configuration first; tend uses no database until it can read it"))
    } else {
        resolve_target(&settings, out)
    };
    match target {
        Ok(target) => {
            let origin = match &target.origin {
                TargetOrigin::Configured(source) => format!("database.url from {source}"),
                TargetOrigin::LocalCluster => {
                    "no database configured: commands use the project's local cluster (tend dev)"
                        .to_string()
                }
            };
            report.push("database", Status::Info, origin);
            check_database(&mut report, "database.connect", &target.info, &settings);
        }
        Err(err) if config_broken => report.push_fix(
            "database",
            Status::Error,
            err.message,
            err.hints.first().cloned().unwrap_or_default(),
        ),
        Err(err) => report.push_fix(
            "database",
            Status::Error,
            format!("the local cluster cannot start: {}", err.message),
            err.hints.first().cloned().unwrap_or_else(|| {
                "fix the cause above, or set DATABASE_URL to use another server".to_string()
            }),
        ),
    }
    for (key, label) in [
        ("database.direct_url", "database.direct"),
        ("database.shadow_url", "database.shadow"),
        ("database.read_replica_url", "database.replica"),
    ] {
        if let Some(info) = settings.url(key) {
            check_database(&mut report, label, &info, &settings);
        }
    }

    let problems = report
        .0
        .iter()
        .filter(|f| f.status == Status::Error)
        .count();
    let warnings = report
        .0
        .iter()
        .filter(|f| f.status == Status::Warning)
        .count();
    out.json_value(&serde_json::json!({
        "ok": problems == 0,
        "errors": problems,
        "warnings": warnings,
        "findings": report.0,
    }));
    for finding in &report.0 {
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
    if problems == 0 {
        out.line(format!(
            "\nAll is well{}.",
            if warnings > 0 {
                format!(" ({})", count(warnings, "warning", "warnings"))
            } else {
                String::new()
            }
        ));
        Ok(exit::OK)
    } else {
        out.line(format!(
            "\n{} found.",
            count(problems, "problem", "problems")
        ));
        // A configuration that cannot be read exits as every command does on it.
        Err(CommandError::silent(if config_broken {
            ErrorKind::Config
        } else {
            ErrorKind::Failure
        }))
    }
}

/// The PostgreSQL programs tend runs: client tools always, server tools for the local
/// cluster (needed most when it is the database, with none configured).
pub fn check_tools(settings: &Settings, database_configured: bool) -> Vec<Finding> {
    let mut report = Report(Vec::new());
    let search = settings.tool_search();

    // Client tools are needed whatever the database; server tools for the local cluster,
    // which is the database itself when none is configured.
    let cluster_severity = if database_configured {
        Status::Warning
    } else {
        Status::Error
    };
    for (tool, needed_for, severity) in [
        (PgTool::Psql, "tend dev psql", Status::Error),
        (PgTool::PgDump, "backups and schema dumps", Status::Error),
        (PgTool::PgRestore, "restores", Status::Error),
        (
            PgTool::PgDumpall,
            "backups of roles (--globals)",
            Status::Warning,
        ),
        (PgTool::PgBasebackup, "physical backups", Status::Warning),
        (
            PgTool::Initdb,
            "the local cluster (tend dev)",
            cluster_severity,
        ),
        (
            PgTool::PgCtl,
            "the local cluster (tend dev)",
            cluster_severity,
        ),
        (
            PgTool::Postgres,
            "the local cluster (tend dev)",
            cluster_severity,
        ),
    ] {
        let check = format!("tools.{}", tool.program());
        match search.find(tool, VersionNeed::Any) {
            Ok(found) => report.push(
                check,
                Status::Ok,
                format!("{tool} {} at {}", found.version, found.path.display()),
            ),
            Err(err) => report.push_fix(
                check,
                severity,
                format!("{tool} is missing; tend needs it for {needed_for}"),
                err.to_string(),
            ),
        }
    }
    report.0
}

/// Connects to `info` and checks what tend needs of it (a pg_dump that can dump it).
pub fn check_one_database(settings: &Settings, check: &str, info: &ConnInfo) -> Vec<Finding> {
    let mut report = Report(Vec::new());
    check_database(&mut report, check, info, settings);
    report.0
}

fn check_database(report: &mut Report, check: &str, info: &ConnInfo, settings: &Settings) {
    let mut options = settings.connect_options();
    // A diagnosis should answer quickly; one attempt says what is wrong.
    options.attempts = 1;
    let result = block_on(async {
        let session = tend_pg::connect(info, &options).await?;
        let facts =
            ServerFacts::read(&session)
                .await
                .map_err(|e| tend_pg::ConnectError::Other {
                    target: info.target(),
                    detail: e.to_string(),
                })?;
        let tls: Option<bool> = session
            .query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|row| row.get(0));
        Ok::<_, tend_pg::ConnectError>((facts, tls))
    });
    match result {
        Err(err) => {
            let fix = match &err {
                tend_pg::ConnectError::Unreachable { .. } => {
                    "start the server, or correct host and port in the connection string"
                }
                tend_pg::ConnectError::WrongPassword { .. } => {
                    "set the right password in DATABASE_URL (or database.url in tend.toml)"
                }
                tend_pg::ConnectError::TlsNotOffered { .. } => {
                    "turn on ssl on the server, or lower sslmode to prefer"
                }
                tend_pg::ConnectError::NoSuchDatabase { .. } => {
                    "create the database or correct its name in the connection string"
                }
                _ => "see the message above",
            };
            report.push_fix(check, Status::Error, err.to_string(), fix);
        }
        Ok((facts, tls)) => {
            report.push(
                check,
                Status::Ok,
                format!(
                    "connected to {} as `{}`: PostgreSQL {}{}{}",
                    info.redacted(),
                    facts.user,
                    facts.version,
                    if facts.in_recovery {
                        ", a standby (read-only)"
                    } else {
                        ""
                    },
                    match tls {
                        Some(true) => ", over TLS",
                        Some(false)
                            if info
                                .hosts()
                                .iter()
                                .any(|h| matches!(h, tend_pg::conninfo::Host::Tcp(_))) =>
                            ", without TLS",
                        _ => "",
                    }
                ),
            );
            let major = facts.major();
            match settings
                .tool_search()
                .find(PgTool::PgDump, VersionNeed::AtLeastMajor(major))
            {
                Ok(found) => report.push(
                    format!("{check}.pg_dump"),
                    Status::Ok,
                    format!(
                        "pg_dump {} can dump this PostgreSQL {major} server",
                        found.version
                    ),
                ),
                Err(err) => report.push_fix(
                    format!("{check}.pg_dump"),
                    Status::Error,
                    format!(
                        "no pg_dump of version {major} or newer: backups of this server would fail"
                    ),
                    err.to_string(),
                ),
            }
        }
    }
}
