//! `tend serve`: the daemon (scheduler with a leader lock, recorded runs, HTTP endpoints),
//! and `--print-schedule`, which shows what it would run and when.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use tend_core::schedule::{ScheduleEntry, ScheduleOrigin};
use tend_server::Event;
use tokio_util::sync::CancellationToken;

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{ClusterUse, Context, block_on};
use crate::output::Output;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTP endpoints (default: serve.listen, 127.0.0.1:8432).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Print the schedule with each entry's next runs, and exit.
    #[arg(long)]
    pub print_schedule: bool,
    /// Print a Prometheus rules file for the alerts over /metrics, and exit.
    #[arg(long, conflicts_with = "print_schedule")]
    pub print_alert_rules: bool,
    /// A server where restore drills may create their scratch database (default: the
    /// project's local cluster, started when a drill first runs).
    #[arg(long, value_name = "URL")]
    pub scratch: Option<String>,
}

/// `tend serve --print-schedule --json`.
#[derive(Debug, Serialize)]
struct ScheduleReport<'a> {
    origin: &'a ScheduleOrigin,
    entries: Vec<PrintedEntry<'a>>,
}

#[derive(Debug, Serialize)]
struct PrintedEntry<'a> {
    #[serde(flatten)]
    entry: &'a ScheduleEntry,
    next: Vec<DateTime<Utc>>,
}

pub fn run(args: ServeArgs, ctx: &Context) -> Result<i32, CommandError> {
    if args.print_schedule {
        return print_schedule(ctx);
    }
    if args.print_alert_rules {
        ctx.out
            .result(tend_server::alert_rules::rules(&ctx.settings.serve.schedule).trim_end());
        return Ok(exit::OK);
    }
    let mut settings = ctx.settings.clone();
    if let Some(listen) = args.listen {
        if settings.serve.token.is_none() && !listen.ip().is_loopback() {
            return Err(CommandError::new(
                ErrorKind::Config,
                format!(
                    "--listen {listen} is reachable from other machines, and the API has no token"
                ),
            )
            .with_hint("set serve.token (TEND_SERVE_TOKEN), or listen on 127.0.0.1"));
        }
        settings.serve.listen = listen;
    }
    let scratch_url = args
        .scratch
        .as_deref()
        .map(tend_pg::ConnInfo::parse)
        .transpose()?;
    let target = ctx.target()?;
    let lock_info = settings
        .database
        .direct_url
        .as_ref()
        .map(|s| s.value.clone())
        .unwrap_or_else(|| target.info.clone());
    let database = settings.database.handle(target.info.clone());
    let settings = Arc::new(settings);
    let scratch = Arc::new(LocalScratch {
        url: scratch_url,
        settings: settings.clone(),
        out: ctx.out.clone(),
    });
    let out = ctx.out.clone();
    let listen = settings.serve.listen;
    let daemon = tend_server::Daemon {
        tasks: tend_server::TaskContext {
            settings: settings.clone(),
            database,
            scratch,
        },
        lock_info,
        listen,
        on_event: Arc::new(move |event| log(&out, event)),
    };
    ctx.out.notice(format!(
        "tend serve: {} scheduled entries, on {}; HTTP on http://{listen} (/healthz, /readyz, /metrics, /api/schedule, /api/runs, /api/alerts)",
        settings.serve.schedule.entries.len(),
        target.info.redacted()
    ));
    let shutdown = CancellationToken::new();
    let stopped = block_on(async {
        let signals = watch_signals(shutdown.clone(), ctx.out.clone())?;
        let stopped = tend_server::serve(daemon, shutdown).await;
        signals.abort();
        Ok::<_, CommandError>(stopped)
    })?;
    let stopped = stopped.map_err(|e| match e {
        tend_server::ServeError::Alerts(message) => CommandError::new(ErrorKind::Config, message),
        other => CommandError::failure(other.to_string()),
    })?;
    if !stopped.in_time {
        ctx.out.warn(format!(
            "tasks still running after serve.stop_timeout ({}); they were abandoned, and the next leader records them as such",
            humantime::format_duration(settings.serve.stop_timeout)
        ));
    }
    ctx.out.notice("tend serve: stopped");
    Ok(exit::OK)
}

/// SIGTERM and SIGINT stop the daemon; SIGHUP is answered with what to do (the
/// configuration is read once, at start).
fn watch_signals(
    shutdown: CancellationToken,
    out: Output,
) -> Result<tokio::task::JoinHandle<()>, CommandError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = hangup.recv() => out.warn(
                    "SIGHUP: tend serve reads its configuration once, at start; restart it to apply changes (a standby takes over meanwhile)",
                ),
            }
        }
        out.notice("tend serve: stopping (no new runs; running tasks are cancelled)");
        shutdown.cancel();
    }))
}

/// One line per event on stderr, each starting with the time.
fn log(out: &Output, event: Event) {
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let line = match event {
        Event::Standby => "standing by: another instance leads".to_string(),
        Event::Leading => "leading: this instance runs the schedule".to_string(),
        Event::LostLead { reason } => {
            format!("lost the lead ({reason}); running tasks cancelled, standing by")
        }
        Event::Unreachable { reason } => format!("cannot reach the database: {reason}"),
        Event::StateFailed { reason } => {
            format!("cannot create or upgrade the `tend` schema, so not leading: {reason}")
        }
        Event::RunStarted {
            entry,
            scheduled_for,
            trigger,
        } => format!(
            "run {entry} (scheduled {}, {}) started",
            scheduled_for.format("%Y-%m-%dT%H:%M:%SZ"),
            serde_json::to_value(trigger)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        Event::RunFinished {
            entry,
            outcome,
            summary,
            seconds,
        } => format!(
            "run {entry} {} in {seconds:.1}s: {summary}",
            outcome.as_str()
        ),
        Event::RunSkipped { entry, why } => format!("run {entry} skipped: {why}"),
        Event::Abandoned { entry, count } => {
            format!("{count} run(s) of {entry} left running by a stopped instance marked abandoned")
        }
        Event::RecordFailed { entry, reason } => {
            format!("run {entry} not started: its record could not be written: {reason}")
        }
        Event::Stopping { running } => format!("stopping: {running} running task(s) cancelled"),
        Event::AlertsFailed { reason } => format!("alert rules not evaluated: {reason}"),
        Event::SpoolDrained { files } => {
            format!("sent {files} WAL file(s) from the local spool to the store")
        }
        Event::SpoolStuck { reason } => {
            format!("the local WAL spool could not be sent to the store: {reason}")
        }
    };
    out.notice(format!("{now} {line}"));
}

fn print_schedule(ctx: &Context) -> Result<i32, CommandError> {
    let schedule = &ctx.settings.serve.schedule;
    let now = Utc::now();
    let report = ScheduleReport {
        origin: &schedule.origin,
        entries: schedule
            .entries
            .iter()
            .map(|entry| PrintedEntry {
                entry,
                next: tend_server::http::next_times(entry, now, 3),
            })
            .collect(),
    };
    ctx.out.json_value(&report);
    ctx.out.line(match schedule.origin {
        ScheduleOrigin::Default => {
            "The default routine (no [[schedule]] in tend.toml):".to_string()
        }
        ScheduleOrigin::File => "The [[schedule]] entries of tend.toml:".to_string(),
    });
    for printed in &report.entries {
        let entry = printed.entry;
        let when = match &entry.when {
            tend_core::schedule::When::Cron(cron) => {
                format!("cron \"{}\" ({})", cron.expression(), cron.zone())
            }
            tend_core::schedule::When::After(after) => format!("after {after} succeeds"),
        };
        let name = if entry.name == entry.task.to_string() {
            entry.name.clone()
        } else {
            format!("{} ({})", entry.name, entry.task)
        };
        ctx.out.line(format!("  {name:<32} {when}"));
        for next in &printed.next {
            ctx.out.line(format!(
                "      next {}",
                next.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
    }
    Ok(exit::OK)
}

/// The restore drill's scratch server: `--scratch`, else the project's local cluster,
/// started the first time a drill needs it (on a thread of its own: starting it waits on
/// the runtime the daemon runs on).
struct LocalScratch {
    url: Option<tend_pg::ConnInfo>,
    settings: Arc<Settings>,
    out: Output,
}

impl tend_server::ScratchServer for LocalScratch {
    fn scratch(&self) -> Result<tend_pg::ConnInfo, String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let settings = self.settings.clone();
        let out = self.out.clone();
        std::thread::spawn(move || {
            crate::context::start_local_cluster(&settings, &out, "postgres", ClusterUse::Scratch)
                .map_err(|e| e.message)
        })
        .join()
        .map_err(|_| "starting the local cluster for the drill failed".to_string())?
    }
}
