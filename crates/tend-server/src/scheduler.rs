//! The scheduler: one instance leads (a PostgreSQL advisory lock held on a session of its
//! own), the others stand by and try again every `serve.interval`. The leader runs each
//! schedule entry at its cron times through the core services, and records every run in
//! `tend.schedule_runs`.
//!
//! A run never starts twice, even across a failover: each run is claimed by its unique
//! (entry, scheduled time), and runs under a per-entry advisory lock on its own session, so
//! a new leader cannot start an entry that an old leader (alive, but cut off from its lead
//! lock) is still running. A leader that loses its lock cancels what it runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tend_core::schedule::{ScheduleEntry, Task, When};
use tend_core::settings::MissedRuns;
use tend_core::state::{self, Registry};
use tend_pg::{AdvisoryLock, ConnInfo, LockError};
use tokio_util::sync::CancellationToken;

use crate::runs::{self, Claim, Outcome, Trigger};
use crate::tasks::{self, Failed, TaskContext};

/// Something the daemon did, for its log.
#[derive(Debug, Clone)]
pub enum Event {
    /// Another instance leads; this one stands by.
    Standby,
    /// This instance took the lead.
    Leading,
    /// The lead lock's session broke: running tasks are cancelled, and it stands by.
    LostLead {
        reason: String,
    },
    /// The database cannot be reached to try for the lead.
    Unreachable {
        reason: String,
    },
    /// The `tend` schema could not be created or upgraded; the lead is given back.
    StateFailed {
        reason: String,
    },
    RunStarted {
        entry: String,
        scheduled_for: DateTime<Utc>,
        trigger: Trigger,
    },
    RunFinished {
        entry: String,
        outcome: Outcome,
        summary: String,
        seconds: f64,
    },
    RunSkipped {
        entry: String,
        why: String,
    },
    /// Runs left `running` by an instance that died, marked abandoned.
    Abandoned {
        entry: String,
        count: u64,
    },
    /// The run's record could not be written or read; the run did not start.
    RecordFailed {
        entry: String,
        reason: String,
    },
    /// Shutdown: running tasks were asked to stop.
    Stopping {
        running: usize,
    },
    /// The alert rules could not be evaluated (the database, tend's tables).
    AlertsFailed {
        reason: String,
    },
    /// WAL that waited in the local spool was sent to the store.
    SpoolDrained {
        files: usize,
    },
    /// The local spool could not be sent to the store (it is tried again).
    SpoolStuck {
        reason: String,
    },
}

/// This instance's part, for `/readyz` and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Starting,
    Standby,
    Leader,
    /// The database could not be reached at the last try.
    Unreachable,
}

/// State shared between the scheduler and the HTTP endpoints.
pub struct Shared {
    pub tasks: TaskContext,
    /// The address locks are taken on: `DIRECT_URL` when set (a pooler in transaction mode
    /// cannot hold a session's advisory lock).
    pub lock_info: ConnInfo,
    /// `host:pid`, recorded with each run.
    pub instance: String,
    pub role: Mutex<Role>,
    /// Runs in progress on this instance: entry name and scheduled time.
    pub running: Mutex<Vec<(String, DateTime<Utc>)>>,
    pub alerting: Arc<crate::alerts::Alerting>,
    /// The store's catalog as the pages last read it.
    pub catalog: crate::pages::backups::Catalog,
    /// Woken when this instance records a request, so a leader runs it at once.
    pub requests: tokio::sync::Notify,
    pub on_event: Arc<dyn Fn(Event) + Send + Sync>,
}

impl Shared {
    pub(crate) fn event(&self, event: Event) {
        (self.on_event)(event)
    }

    fn set_role(&self, role: Role) {
        *self.role.lock() = role;
    }

    pub(crate) fn entries(&self) -> &[ScheduleEntry] {
        &self.tasks.settings.serve.schedule.entries
    }
}

/// An advisory lock key from a name: the first 8 bytes of its SHA-256, so tend's keys do
/// not collide with an application's small integers.
pub fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The lead lock.
pub fn leader_key() -> i64 {
    lock_key("tend serve: leader")
}

fn run_key(entry: &str) -> i64 {
    lock_key(&format!("tend serve: run {entry}"))
}

/// Runs the scheduler until `shutdown`: stands by, leads when it can, and on shutdown
/// stops its running tasks, waiting at most `serve.stop_timeout`. Returns whether every
/// task stopped in time.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> bool {
    let serve = &shared.tasks.settings.serve;
    let interval = serve.interval;
    let mut registry = Registry::builtin();
    registry
        .register(runs::SERVE_STATE)
        .expect("the daemon's migrations are well named and its own");
    let connect = shared.tasks.database.options().clone();
    if shared.tasks.settings.pitr.spool.is_some() {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { spool_loop(&shared, &shutdown).await });
    }
    loop {
        if shutdown.is_cancelled() {
            return true;
        }
        let lock = AdvisoryLock::acquire(&shared.lock_info, &connect, leader_key(), Duration::ZERO);
        let lock = tokio::select! {
            lock = lock => lock,
            _ = shutdown.cancelled() => return true,
        };
        match lock {
            Ok(lock) => {
                if let Err(e) = state::ensure(&registry, &shared.lock_info, &connect).await {
                    shared.event(Event::StateFailed {
                        reason: e.to_string(),
                    });
                    shared.set_role(Role::Unreachable);
                    drop(lock);
                } else {
                    shared.set_role(Role::Leader);
                    shared.event(Event::Leading);
                    let finished = lead(&shared, &lock, &shutdown).await;
                    drop(lock);
                    if shutdown.is_cancelled() {
                        return finished;
                    }
                    shared.set_role(Role::Standby);
                }
            }
            Err(LockError::Held { .. }) => {
                let was = *shared.role.lock();
                shared.set_role(Role::Standby);
                if was != Role::Standby {
                    shared.event(Event::Standby);
                }
            }
            Err(e) => {
                shared.set_role(Role::Unreachable);
                shared.event(Event::Unreachable {
                    reason: e.to_string(),
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return true,
        }
    }
}

/// Leads until the lock's session breaks or `shutdown`; returns whether the running
/// tasks stopped within the stop timeout.
/// Sends the local WAL spool to the store every three times `pitr.spool_after` (the pace
/// at which pushes try an away store again; at most 30 s), on every instance
/// (leader or not: the spool is on the machine of the server that archives into it), so
/// WAL spooled during a store outage reaches the store without waiting for the server's
/// next segment. A failure is reported once until a drain works again.
async fn spool_loop(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    let Some(spool) = shared.tasks.settings.pitr.spool.clone() else {
        return;
    };
    let every = (spool.after * 3).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut stuck = false;
    // The server's identity and the store do not change while serve runs: each is
    // learned once, then every round only looks at the spool.
    let mut system: Option<u64> = None;
    let mut store: Option<tend_backup::Store> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
        if system.is_none()
            && let Ok(session) = shared.tasks.database.session().await
        {
            system = tend_pg::DatabaseIdentity::read(&session)
                .await
                .ok()
                .and_then(|identity| identity.server.system_identifier);
        }
        if store.is_none() {
            store = tend_backup::Store::open(&shared.tasks.settings.backup.store).ok();
        }
        let (Some(system), Some(store)) = (system, &store) else {
            continue;
        };
        match tend_core::pitr::drain_spool(store, &spool, system).await {
            Ok(files) => {
                stuck = false;
                if files > 0 {
                    shared.event(Event::SpoolDrained { files });
                }
            }
            Err(e) if !stuck => {
                stuck = true;
                shared.event(Event::SpoolStuck {
                    reason: e.to_string(),
                });
            }
            Err(_) => {}
        }
    }
}

async fn lead(shared: &Arc<Shared>, lock: &AdvisoryLock, shutdown: &CancellationToken) -> bool {
    let serve = &shared.tasks.settings.serve;
    let lead = shutdown.child_token();
    let mut loops = tokio::task::JoinSet::new();
    for (index, entry) in shared.entries().iter().enumerate() {
        if matches!(entry.when, When::Cron(_)) {
            let shared = shared.clone();
            let lead = lead.clone();
            loops.spawn(async move { entry_loop(&shared, index, &lead).await });
        }
    }
    {
        let alerting = shared.alerting.clone();
        let shared = shared.clone();
        let lead = lead.clone();
        loops.spawn(async move { alerting.run(shared, lead).await });
    }
    {
        let shared = shared.clone();
        let lead = lead.clone();
        loops.spawn(async move { requests_loop(&shared, &lead).await });
    }
    let mut last_expiry: Option<Instant> = None;
    loop {
        if last_expiry.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            last_expiry = Some(Instant::now());
            if let Ok(session) = shared.tasks.database.session().await {
                let _ = runs::expire(&session, serve.run_retention_days).await;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(serve.interval) => {}
            _ = shutdown.cancelled() => break,
        }
        let patience = serve.interval.max(Duration::from_secs(1));
        let alive = tokio::time::timeout(patience, lock.session().simple_query("SELECT 1")).await;
        let reason = match alive {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => tend_pg::error_text(&e),
            Err(_) => format!("the lock's session did not answer within {patience:?}"),
        };
        shared.event(Event::LostLead { reason });
        break;
    }
    let running = shared.running.lock().len();
    if shutdown.is_cancelled() {
        shared.event(Event::Stopping { running });
    }
    lead.cancel();
    let drained = async { while loops.join_next().await.is_some() {} };
    tokio::time::timeout(serve.stop_timeout, drained)
        .await
        .is_ok()
}

/// One cron entry while this instance leads: first the missed run, then each time as it
/// comes. Times that pass while a run is still going are not run late.
async fn entry_loop(shared: &Arc<Shared>, index: usize, lead: &CancellationToken) {
    let entry = &shared.entries()[index];
    let When::Cron(cron) = &entry.when else {
        return;
    };
    let mut after = Utc::now();
    if let Some(missed) = missed_run(shared, entry, after).await {
        match shared.tasks.settings.serve.missed_runs {
            MissedRuns::RunOnce { .. } => {
                run_chain(shared, index, missed, Trigger::Missed, lead).await;
            }
            MissedRuns::Skip => {
                record_skip(
                    shared,
                    entry,
                    missed,
                    Trigger::Missed,
                    "missed while no instance led, and serve.missed_runs is skip",
                )
                .await;
            }
        }
    }
    loop {
        let Some(next) = cron.next_after(after.max(Utc::now())) else {
            return;
        };
        // Sleep in steps, so a clock that jumps is noticed within a minute.
        loop {
            let left = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
                _ = lead.cancelled() => return,
            }
        }
        if lead.is_cancelled() {
            return;
        }
        run_chain(shared, index, next, Trigger::Schedule, lead).await;
        after = next;
    }
}

/// The latest time the entry was due while no instance led: after its last recorded run,
/// within the policy's window. An entry never run before has missed nothing.
async fn missed_run(
    shared: &Arc<Shared>,
    entry: &ScheduleEntry,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let When::Cron(cron) = &entry.when else {
        return None;
    };
    let session = shared.tasks.database.session().await.ok()?;
    let last = runs::latest_scheduled(&session, &entry.name).await.ok()??;
    let since = match shared.tasks.settings.serve.missed_runs {
        MissedRuns::RunOnce { window } => {
            let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
            last.max(now.checked_sub_signed(window).unwrap_or(last))
        }
        MissedRuns::Skip => last,
    };
    cron.latest_between(since, now)
}

async fn record_skip(
    shared: &Arc<Shared>,
    entry: &ScheduleEntry,
    at: DateTime<Utc>,
    trigger: Trigger,
    why: &str,
) {
    let task = entry.task.to_string();
    let claim = Claim {
        entry: &entry.name,
        task: &task,
        scheduled_for: at,
        trigger,
        instance: &shared.instance,
    };
    let result = match shared.tasks.database.session().await {
        Ok(session) => runs::skip(&session, &claim, why)
            .await
            .map_err(|e| tend_pg::error_text(&e)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => shared.event(Event::RunSkipped {
            entry: entry.name.clone(),
            why: why.to_string(),
        }),
        Err(reason) => shared.event(Event::RecordFailed {
            entry: entry.name.clone(),
            reason,
        }),
    }
}

/// Runs the entry for `at`, then, if it succeeded, the entries that run after it.
async fn run_chain(
    shared: &Arc<Shared>,
    index: usize,
    at: DateTime<Utc>,
    trigger: Trigger,
    lead: &CancellationToken,
) {
    chain(shared, index, at, trigger, None, lead).await;
}

/// `run_chain`, the first run of which may be a requested one (its row's id).
async fn chain(
    shared: &Arc<Shared>,
    index: usize,
    at: DateTime<Utc>,
    trigger: Trigger,
    request: Option<i64>,
    lead: &CancellationToken,
) -> Option<Outcome> {
    let mut queue = vec![(index, trigger, request)];
    let mut first = None;
    while let Some((index, trigger, request)) = queue.pop() {
        if lead.is_cancelled() {
            return first;
        }
        let outcome = run_one(shared, index, at, trigger, request, lead).await;
        if request.is_some() {
            first = outcome;
        }
        if outcome == Some(Outcome::Succeeded) {
            let name = &shared.entries()[index].name;
            for (next, entry) in shared.entries().iter().enumerate().rev() {
                if matches!(&entry.when, When::After(a) if a == name) {
                    queue.push((next, Trigger::After, None));
                }
            }
        }
    }
    first
}

/// Runs what was asked for through the API, oldest first, while this instance leads. A
/// request whose entry another instance still runs waits for the next round.
async fn requests_loop(shared: &Arc<Shared>, lead: &CancellationToken) {
    loop {
        let pending = match shared.tasks.database.session().await {
            Ok(session) => runs::requested(&session).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for (id, name, at) in pending {
            if lead.is_cancelled() {
                return;
            }
            match shared.entries().iter().position(|e| e.name == name) {
                Some(index) => {
                    chain(shared, index, at, Trigger::Manual, Some(id), lead).await;
                }
                None => {
                    if let Ok(session) = shared.tasks.database.session().await {
                        let _ = runs::finish(
                            &session,
                            id,
                            Outcome::Skipped,
                            "no schedule entry has this name any more",
                            None,
                            None,
                        )
                        .await;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.tasks.settings.serve.interval) => {}
            _ = shared.requests.notified() => {}
            _ = lead.cancelled() => return,
        }
    }
}

/// One run: the entry's run lock, its claim, the task, its record. `None` when it was not
/// this instance's to run (claimed before, or the record failed).
async fn run_one(
    shared: &Arc<Shared>,
    index: usize,
    at: DateTime<Utc>,
    trigger: Trigger,
    request: Option<i64>,
    lead: &CancellationToken,
) -> Option<Outcome> {
    let entry = &shared.entries()[index];
    let record_failed = |reason: String| {
        shared.event(Event::RecordFailed {
            entry: entry.name.clone(),
            reason,
        })
    };
    let connect = shared.tasks.database.options();
    let run_lock = match AdvisoryLock::acquire(
        &shared.lock_info,
        connect,
        run_key(&entry.name),
        Duration::ZERO,
    )
    .await
    {
        Ok(lock) => lock,
        // A requested run waits until the entry is free.
        Err(LockError::Held { .. }) if request.is_some() => return None,
        Err(LockError::Held { .. }) => {
            record_skip(
                shared,
                entry,
                at,
                trigger,
                "its previous run is still going on another instance",
            )
            .await;
            return Some(Outcome::Skipped);
        }
        Err(e) => {
            record_failed(e.to_string());
            return None;
        }
    };
    let session = match shared.tasks.database.session().await {
        Ok(session) => session,
        Err(e) => {
            record_failed(e.to_string());
            return None;
        }
    };
    match runs::abandon_stale(&session, &entry.name).await {
        Ok(0) => {}
        Ok(count) => shared.event(Event::Abandoned {
            entry: entry.name.clone(),
            count,
        }),
        Err(e) => {
            record_failed(tend_pg::error_text(&e));
            return None;
        }
    }
    let task = entry.task.to_string();
    let claim = Claim {
        entry: &entry.name,
        task: &task,
        scheduled_for: at,
        trigger,
        instance: &shared.instance,
    };
    let claimed = match request {
        Some(id) => runs::take(&session, id, &shared.instance)
            .await
            .map(|taken| taken.then_some(id)),
        None => runs::claim(&session, &claim).await,
    };
    let id = match claimed {
        Ok(Some(id)) => id,
        Ok(None) => return None,
        Err(e) => {
            record_failed(tend_pg::error_text(&e));
            return None;
        }
    };
    // The record's session goes back to the pool while the task runs.
    drop(session);
    shared.event(Event::RunStarted {
        entry: entry.name.clone(),
        scheduled_for: at,
        trigger,
    });
    shared.running.lock().push((entry.name.clone(), at));
    let started = Instant::now();
    let result = tasks::run(&entry.task, &shared.tasks, lead.child_token()).await;
    shared
        .running
        .lock()
        .retain(|(name, t)| !(name == &entry.name && *t == at));
    let (outcome, summary, error, report) = match result {
        Ok(done) => (Outcome::Succeeded, done.summary, None, Some(done.report)),
        Err(Failed::Cancelled(message)) => (
            Outcome::Cancelled,
            "stopped by a shutdown or a lost lead".to_string(),
            Some(message),
            None,
        ),
        Err(Failed::Error(message)) => (Outcome::Failed, "failed".to_string(), Some(message), None),
    };
    let seconds = started.elapsed().as_secs_f64();
    let written = match shared.tasks.database.session().await {
        Ok(session) => runs::finish(
            &session,
            id,
            outcome,
            &summary,
            error.as_deref(),
            report.as_ref(),
        )
        .await
        .map_err(|e| tend_pg::error_text(&e)),
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = written {
        record_failed(reason);
    }
    drop(run_lock);
    if matches!(
        entry.task,
        Task::Backup | Task::PhysicalBackup { .. } | Task::BackupPrune | Task::BackupVerify { .. }
    ) {
        shared.catalog.clear().await;
    }
    shared.alerting.wake();
    shared.event(Event::RunFinished {
        entry: entry.name.clone(),
        outcome,
        summary: match &error {
            Some(error) => format!("{summary}: {error}"),
            None => summary,
        },
        seconds,
    });
    Some(outcome)
}
