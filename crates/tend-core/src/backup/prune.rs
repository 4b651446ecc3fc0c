//! `backup prune`: which backups the retention policy no longer keeps
//! (`tend_backup::retention::decide`, pure) and which folders without a manifest were left
//! by interrupted backups (`retention::leftover_verdict`), planned first (what `--dry-run`
//! shows and a confirmation asks about), then carried out.

use serde::Serialize;
use tend_backup::manifest::{MANIFEST, RUNNING, Running};
use tend_backup::ops;
use tend_backup::retention::{
    Candidate, Decision, LeftoverVerdict, Policy, decide, leftover_verdict, parse_rfc3339,
};
use tend_backup::store::Leftover;
use tend_backup::wal::{Archive, HISTORY_FOLDER, SegmentName, StoredFile, parse_lsn};
use tend_backup::{BackupError, Store};
use tokio_util::sync::CancellationToken;

use super::BackupServiceError;
use crate::settings::BackupSettings;

/// A folder without a manifest, as prune reports it.
#[derive(Debug, Clone, Serialize)]
pub struct LeftoverReport {
    pub id: String,
    /// Its objects, relative to the store.
    pub objects: Vec<String>,
    pub bytes: u64,
    /// Its newest write, RFC 3339, UTC, seconds.
    pub last_write: String,
    /// Why it is removed (stale) or kept (maybe a running backup).
    pub reason: String,
}

/// The WAL of one server's archive that no kept physical backup needs: every file before
/// the segment the oldest kept one starts in (LSNs only grow, across timelines too, so no
/// restore from a kept backup reads below its start). History files are always kept.
#[derive(Debug, Clone, Serialize)]
pub struct WalExpiry {
    pub system_identifier: String,
    /// The first segment kept: where the oldest kept physical backup starts.
    pub keep_from: String,
    /// The kept backup that starts there.
    pub oldest_kept_backup: String,
    pub files: usize,
    pub bytes: u64,
    #[serde(skip)]
    doomed: Vec<StoredFile>,
}

/// What prune would do, decided once: the binary shows it, asks, then hands it to
/// [`prune`].
#[derive(Debug, Clone)]
pub struct PrunePlan {
    pub store: String,
    pub policy: Policy,
    /// Every listed backup, newest first: kept or deleted, and why.
    pub decisions: Vec<Decision>,
    /// Leftovers of interrupted backups: removed.
    pub leftovers: Vec<LeftoverReport>,
    /// Folders without a manifest that may belong to a running backup: kept.
    pub recent_leftovers: Vec<LeftoverReport>,
    /// Archived WAL no kept physical backup needs, per server: deleted.
    pub wal: Vec<WalExpiry>,
    stale: Vec<Leftover>,
}

impl PrunePlan {
    /// The backups the policy no longer keeps.
    pub fn doomed(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }

    pub fn is_empty(&self) -> bool {
        self.doomed().next().is_none() && self.stale.is_empty() && self.wal_files() == 0
    }

    /// How many archived WAL files it deletes.
    pub fn wal_files(&self) -> usize {
        self.wal.iter().map(|w| w.files).sum()
    }

    /// The report of a prune that deletes nothing (a dry run, or nothing to delete).
    pub fn unchanged(self, dry_run: bool) -> PruneReport {
        PruneReport {
            dry_run,
            policy: self.policy,
            decisions: self.decisions,
            deleted: Vec::new(),
            leftovers: self.leftovers,
            recent_leftovers: self.recent_leftovers,
            removed_leftovers: Vec::new(),
            wal: self.wal,
            deleted_wal_files: 0,
        }
    }
}

/// What `tend backup prune` did (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub policy: Policy,
    pub decisions: Vec<Decision>,
    /// The backups deleted.
    pub deleted: Vec<String>,
    pub leftovers: Vec<LeftoverReport>,
    pub recent_leftovers: Vec<LeftoverReport>,
    /// The leftovers removed.
    pub removed_leftovers: Vec<String>,
    /// Archived WAL that no kept physical backup needs (deleted unless a dry run).
    pub wal: Vec<WalExpiry>,
    pub deleted_wal_files: usize,
}

/// An increment restores only with the backups it is built on: each kept one keeps its
/// parents, whatever the policy says of them.
fn keep_increments_whole(decisions: &mut [Decision], backups: &[ops::Listed]) {
    let parent_of = |id: &str| {
        backups
            .iter()
            .find(|b| b.manifest.id == id)
            .and_then(|b| b.manifest.physical.as_ref())
            .and_then(|p| p.incremental_of.clone())
    };
    let kept: Vec<String> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.clone())
        .collect();
    for child in kept {
        let mut current = child.clone();
        while let Some(parent) = parent_of(&current) {
            if let Some(d) = decisions.iter_mut().find(|d| d.id == parent)
                && !d.keep
            {
                d.keep = true;
                d.reasons = vec![format!("needed by the increment {child}")];
            }
            current = parent;
        }
    }
}

/// When a physical backup became consistent (its `stop_time`, else when it finished), in
/// seconds since the epoch.
fn consistent_at(manifest: &tend_backup::Manifest) -> Option<i64> {
    manifest
        .physical
        .as_ref()
        .and_then(|p| parse_rfc3339(&p.stop_time))
        .or_else(|| parse_rfc3339(&manifest.finished_at))
}

/// `pitr.window`: for each server, keeps the physical backup the window starts from (the
/// newest one consistent at least `window` ago; while none is that old yet, the oldest),
/// so pruning never shortens point-in-time recovery below the window. WAL expiry follows
/// the kept backups, so its WAL stays too.
fn keep_window(decisions: &mut [Decision], backups: &[ops::Listed], window: u64, now: i64) {
    let reach = now.saturating_sub(i64::try_from(window).unwrap_or(i64::MAX));
    let mut servers: std::collections::BTreeMap<&str, Vec<(i64, &str)>> = Default::default();
    for listed in backups {
        if let (Some(physical), Some(at)) =
            (&listed.manifest.physical, consistent_at(&listed.manifest))
        {
            servers
                .entry(&physical.system_identifier)
                .or_default()
                .push((at, &listed.manifest.id));
        }
    }
    let label = humantime::format_duration(std::time::Duration::from_secs(window));
    for (_, mut times) in servers {
        times.sort();
        let start = times
            .iter()
            .rev()
            .find(|(at, _)| *at <= reach)
            .or(times.first());
        let Some((_, id)) = start else { continue };
        if let Some(d) = decisions.iter_mut().find(|d| d.id == *id)
            && !d.keep
        {
            d.keep = true;
            d.reasons = vec![format!("the pitr.window of {label} starts from it")];
        }
    }
}

/// Decides what to delete, now, under `settings.retention` (and `pitr.window`, the
/// recovery window physical backups must keep reaching). A backup whose time cannot be
/// read is never a candidate for deletion.
pub async fn prune_plan(
    store: &Store,
    settings: &BackupSettings,
    pitr_window: Option<std::time::Duration>,
) -> Result<PrunePlan, BackupServiceError> {
    let backups = ops::list(store).await?;
    let candidates = |physical: bool| -> Vec<Candidate> {
        backups
            .iter()
            .filter(|b| b.manifest.physical.is_some() == physical)
            .filter_map(|b| {
                Some(Candidate {
                    id: b.manifest.id.clone(),
                    finished_at: parse_rfc3339(&b.manifest.finished_at)?,
                    verified_ok: b.verification.as_ref().is_some_and(|v| v.ok),
                })
            })
            .collect()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let policy = settings.retention.clone();
    // Logical and physical backups are kept by the same policy, each kind on its own, so
    // nightly physical backups never push the logical ones out (or the other way round).
    let mut decisions = decide(&policy, &candidates(false), now);
    decisions.extend(decide(&policy, &candidates(true), now));
    decisions.sort_by(|a, b| b.id.cmp(&a.id));
    if let Some(window) = pitr_window {
        keep_window(&mut decisions, &backups, window.as_secs(), now);
    }
    keep_increments_whole(&mut decisions, &backups);
    let wal = expired_wal(store, &backups, &decisions).await?;
    // A folder without a manifest: see `retention::leftover_verdict` for how a leftover
    // is told from a running backup.
    let host = ops::this_host();
    let (mut stale, mut leftovers, mut recent_leftovers) = (Vec::new(), Vec::new(), Vec::new());
    for l in store
        .leftovers(MANIFEST, RUNNING)
        .await
        .map_err(BackupError::from)?
    {
        let marker: Option<Running> = l
            .running
            .as_ref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok());
        let verdict = leftover_verdict(
            l.last_write,
            marker.as_ref(),
            now,
            &host,
            ops::process_alive,
        );
        let report = |reason: String| LeftoverReport {
            id: l.id.clone(),
            objects: l.objects.clone(),
            bytes: l.bytes,
            last_write: when(l.last_write),
            reason,
        };
        match verdict {
            LeftoverVerdict::Stale(why) => {
                leftovers.push(report(why));
                stale.push(l);
            }
            LeftoverVerdict::Running(why) => recent_leftovers.push(report(why)),
        }
    }
    Ok(PrunePlan {
        store: store.description.clone(),
        policy,
        decisions,
        leftovers,
        recent_leftovers,
        wal,
        stale,
    })
}

/// For each server with a kept physical backup, the archived WAL before the oldest kept
/// one's start. A server with physical backups but none kept keeps all its WAL (nothing
/// says which is needed), and so does a server whose archive cannot be read as tend's.
async fn expired_wal(
    store: &Store,
    backups: &[ops::Listed],
    decisions: &[Decision],
) -> Result<Vec<WalExpiry>, BackupServiceError> {
    let kept = |id: &str| decisions.iter().any(|d| d.id == id && d.keep);
    // The oldest kept physical backup of each server, by start LSN.
    let mut oldest: std::collections::BTreeMap<String, (u64, &tend_backup::Manifest)> =
        Default::default();
    for listed in backups.iter().filter(|b| kept(&b.manifest.id)) {
        let Some(physical) = &listed.manifest.physical else {
            continue;
        };
        let Some(start) = parse_lsn(&physical.start_lsn) else {
            continue;
        };
        let entry = oldest
            .entry(physical.system_identifier.clone())
            .or_insert((start, &listed.manifest));
        if start < entry.0 {
            *entry = (start, &listed.manifest);
        }
    }
    let mut out = Vec::new();
    for (system, (start, manifest)) in oldest {
        let Ok(system_number) = system.parse::<u64>() else {
            continue;
        };
        let physical = manifest
            .physical
            .as_ref()
            .expect("chosen for its physical part");
        let size = physical.segment_size;
        let first_kept = SegmentName::of_lsn(physical.timeline, start, size);
        let keep_from_number = first_kept.number(size);
        let archive = Archive::new(store, system_number);
        if archive.info().await.map_err(wal_error)?.is_none() {
            continue;
        }
        let mut doomed = Vec::new();
        for folder in archive.folders().await.map_err(wal_error)? {
            // `TTTTTTTTXXXXXXXX`: a folder of a later log holds no segment before the start.
            let log = folder
                .get(8..16)
                .and_then(|hex| u32::from_str_radix(hex, 16).ok());
            if folder == HISTORY_FOLDER || log.is_none_or(|log| log > first_kept.log) {
                continue;
            }
            for stored in archive.files_in(&folder).await.map_err(wal_error)? {
                if stored
                    .file
                    .segment()
                    .is_some_and(|segment| segment.number(size) < keep_from_number)
                {
                    doomed.push(stored);
                }
            }
        }
        doomed.sort_by_key(|f| f.file);
        if doomed.is_empty() {
            continue;
        }
        out.push(WalExpiry {
            system_identifier: system,
            keep_from: first_kept.to_string(),
            oldest_kept_backup: manifest.id.clone(),
            files: doomed.len(),
            bytes: doomed.iter().map(|f| f.bytes).sum(),
            doomed,
        });
    }
    Ok(out)
}

fn wal_error(e: tend_backup::wal::WalError) -> BackupServiceError {
    BackupError::Wal(Box::new(e)).into()
}

/// Deletes what `plan` dooms: each backup's manifest first (a crash leaves an unlisted
/// folder, never a listed backup with missing parts), then the stale leftovers. `cancel`
/// stops it between two deletions; pruning again finishes the work.
pub async fn prune(
    store: &Store,
    plan: PrunePlan,
    cancel: CancellationToken,
) -> Result<PruneReport, BackupServiceError> {
    let interrupted = |deleted: usize| BackupError::Interrupted {
        cleanup: format!("{deleted} deleted before it stopped; prune again to finish"),
    };
    let mut deleted = Vec::new();
    for d in plan.doomed() {
        if cancel.is_cancelled() {
            return Err(interrupted(deleted.len()).into());
        }
        store
            .delete_backup(&d.id, MANIFEST)
            .await
            .map_err(BackupError::from)?;
        deleted.push(d.id.clone());
    }
    let mut removed_leftovers = Vec::new();
    for l in &plan.stale {
        if cancel.is_cancelled() {
            return Err(interrupted(deleted.len() + removed_leftovers.len()).into());
        }
        ops::remove_leftover(store, l).await?;
        removed_leftovers.push(l.id.clone());
    }
    // Oldest first: an interrupted prune leaves the archive without a hole.
    let mut deleted_wal_files = 0;
    for expiry in &plan.wal {
        let archive = Archive::new(store, expiry.system_identifier.parse().unwrap_or_default());
        for stored in &expiry.doomed {
            if cancel.is_cancelled() {
                return Err(interrupted(deleted.len() + deleted_wal_files).into());
            }
            archive.delete(stored).await.map_err(wal_error)?;
            deleted_wal_files += 1;
        }
    }
    let mut report = plan.unchanged(false);
    report.deleted = deleted;
    report.removed_leftovers = removed_leftovers;
    report.deleted_wal_files = deleted_wal_files;
    Ok(report)
}

/// A time as RFC 3339, UTC, seconds.
fn when(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn physical(id: &str, system: &str, stop_time: &str) -> ops::Listed {
        let manifest = serde_json::json!({
            "format": "tend-backup/1", "id": id, "database": "", "server_version": "17.2",
            "pg_dump_version": "17.2", "started_at": stop_time, "finished_at": stop_time,
            "raw_bytes": 1, "stored_bytes": 1, "objects": [],
            "compression": {"algorithm": "zstd", "level": 1},
            "encryption": {"scheme": "age", "recipients": []},
            "tables": [], "tend_version": "0",
            "physical": {
                "system_identifier": system, "timeline": 1, "start_lsn": "0/1000000",
                "stop_lsn": "0/2000000", "start_wal": "", "stop_wal": "",
                "segment_size": 16777216, "stop_time": stop_time
            }
        });
        ops::Listed {
            manifest: serde_json::from_value(manifest).unwrap(),
            verification: None,
        }
    }

    fn deleted(ids: &[&str]) -> Vec<Decision> {
        ids.iter()
            .map(|id| Decision {
                id: id.to_string(),
                keep: false,
                reasons: vec!["matched by no rule".into()],
            })
            .collect()
    }

    #[test]
    fn the_window_keeps_the_backup_it_starts_from() {
        let day = 86_400;
        let now = parse_rfc3339("2026-12-10T12:00:00Z").unwrap();
        let backups = vec![
            physical("a", "1", "2026-12-01T00:00:00Z"),
            physical("b", "1", "2026-12-02T00:00:00.5Z"),
            physical("c", "1", "2026-12-05T00:00:00Z"),
            physical("x", "2", "2026-12-09T00:00:00Z"),
            physical("y", "2", "2026-12-10T00:00:00Z"),
        ];
        let mut decisions = deleted(&["a", "b", "c", "x", "y"]);
        keep_window(&mut decisions, &backups, 7 * day as u64, now);
        let kept: Vec<&str> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect();
        // Server 1: b is the newest consistent at least 7 days ago. Server 2: nothing is
        // that old yet, so its oldest stays and the window can grow.
        assert_eq!(kept, ["b", "x"]);
        assert!(decisions[1].reasons[0].contains("pitr.window of 7days"));
        // A window no backup could reach keeps each server's oldest.
        let mut decisions = deleted(&["a", "b", "c", "x", "y"]);
        keep_window(&mut decisions, &backups, u64::MAX, now);
        let kept: Vec<&str> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(kept, ["a", "x"]);
    }
}
