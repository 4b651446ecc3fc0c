//! Where each migration stands: the files on disk compared with the history table.

use serde::Serialize;

use crate::apply::Mode;
use crate::history::HistoryRow;
use crate::source::Migration;
use crate::splitter::split;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied, and the file is unchanged since.
    Applied,
    /// On disk, never applied.
    Pending,
    /// Its last attempt was rolled back (by `resolve --rolled-back` or `rollback`); it applies
    /// again on the next deploy.
    RolledBack,
    /// Its last attempt failed or was interrupted and is neither finished nor rolled back.
    Failed,
    /// Applied, but the file changed since.
    Modified,
    /// Applied, but no longer on disk.
    Missing,
}

/// One migration's standing.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    pub name: String,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// The error of a failed attempt (None for one that was interrupted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// For a failed or interrupted attempt: statements it completed.
    pub steps: i32,
    /// The id of the attempt that decides the state, for resuming it.
    #[serde(skip)]
    pub attempt_id: Option<String>,
    pub has_down: bool,
    /// A failed attempt that stopped without an error (killed, or cancelled).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// A failed or interrupted attempt: the file on disk differs from the one it started.
    #[serde(skip)]
    pub file_changed: bool,
    /// A failed or interrupted attempt: the statements it completed are still, word for
    /// word, the first statements of the file on disk (always true when it completed none).
    #[serde(skip)]
    pub completed_unchanged: bool,
    /// What to run (or do) to fix a modified, missing or failed migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Compares disk and history. Disk order first; migrations only in the history (applied,
/// then deleted) are listed in name order among them.
pub fn compute(disk: &[Migration], history: &[HistoryRow]) -> Vec<MigrationStatus> {
    let mut out = Vec::with_capacity(disk.len());
    for migration in disk {
        let attempts: Vec<&HistoryRow> = history
            .iter()
            .filter(|r| r.name == migration.name)
            .collect();
        let applied = attempts.iter().rev().find(|r| r.is_applied());
        let last = attempts.last();
        let (state, row) = match (applied, last) {
            (Some(row), _) if migration.matches_checksum(&row.checksum) => {
                (State::Applied, Some(*row))
            }
            (Some(row), _) => (State::Modified, Some(*row)),
            (None, Some(row)) if row.is_unfinished() => (State::Failed, Some(*row)),
            (None, Some(row)) => (State::RolledBack, Some(*row)),
            (None, None) => (State::Pending, None),
        };
        let failed = row.filter(|_| state == State::Failed);
        let steps = row.map(|r| r.applied_steps_count).unwrap_or(0);
        let file_changed = failed.is_some_and(|r| !migration.matches_checksum(&r.checksum));
        let completed_unchanged = failed.is_some_and(|r| {
            steps <= 0
                || !file_changed
                || r.applied_digest() == Some(statements_digest(&migration.sql, steps).as_str())
        });
        let mut status = MigrationStatus {
            name: migration.name.clone(),
            applied_at: row.and_then(|r| r.finished_at.clone()),
            logs: failed.and_then(HistoryRow::error),
            steps,
            attempt_id: row.map(|r| r.id.clone()),
            interrupted: failed.is_some_and(|r| r.error().is_none()),
            file_changed,
            completed_unchanged,
            fix: None,
            state,
            has_down: migration.down.is_some(),
        };
        status.fix = fix(&status, Some(migration));
        out.push(status);
    }
    let mut missing: Vec<&HistoryRow> = history
        .iter()
        .filter(|r| r.is_applied() && !disk.iter().any(|m| m.name == r.name))
        .collect();
    missing.sort_by(|a, b| a.name.cmp(&b.name));
    missing.dedup_by(|a, b| a.name == b.name);
    for row in missing {
        let position = out
            .iter()
            .position(|s| s.name > row.name)
            .unwrap_or(out.len());
        let mut status = MigrationStatus {
            name: row.name.clone(),
            state: State::Missing,
            applied_at: row.finished_at.clone(),
            logs: None,
            steps: row.applied_steps_count,
            attempt_id: Some(row.id.clone()),
            has_down: false,
            interrupted: false,
            file_changed: false,
            completed_unchanged: false,
            fix: None,
        };
        status.fix = fix(&status, None);
        out.insert(position, status);
    }
    out
}

/// The digest of a file's first `n` statements, as the splitter cuts them: what a
/// statement-by-statement attempt records after each statement, so that a re-run can tell
/// whether the statements that ran are still the file's.
pub fn statements_digest(sql: &str, n: i32) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for statement in split(sql).iter().take(n.max(0) as usize) {
        hasher.update(statement.sql.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Does this failed attempt go on statement by statement (it completed some statements, or
/// the file cannot run in one transaction)?
pub fn resumes_by_statement(status: &MigrationStatus, migration: &Migration) -> bool {
    status.steps > 0 || Mode::of(&migration.sql) == Mode::Statements
}

/// The command (or the action) that fixes a modified, missing or failed migration.
fn fix(status: &MigrationStatus, migration: Option<&Migration>) -> Option<String> {
    let name = &status.name;
    match (&status.state, migration) {
        (State::Modified, Some(m)) => Some(format!(
            "restore the applied version of {}, or accept the edit with `tend migrate resolve --applied {name}` (runs nothing: the database keeps what the applied version made)",
            m.path.display()
        )),
        (State::Missing, _) => Some(format!(
            "it was applied but its file is gone: restore it from version control (`git log --all --stat -- '*{name}*'` finds it)"
        )),
        (State::Failed, Some(m)) if resumes_by_statement(status, m) => {
            let n = status.steps;
            Some(if !status.completed_unchanged {
                format!(
                    "the file changed in statements 1..{n}, which already ran: put them back as they ran and run `tend migrate deploy --resume {name}`; or undo what they did by hand, then `tend migrate resolve --rolled-back {name}` and `tend migrate deploy` to run the edited file from its start"
                )
            } else if status.interrupted && !status.file_changed {
                format!(
                    "interrupted after statement {n}: `tend migrate deploy` resumes it from statement {}",
                    n + 1
                )
            } else if status.interrupted {
                format!(
                    "changed on disk after an interrupted run completed statements 1..{n}, which the edit leaves as they ran: `tend migrate deploy --resume {name}` runs the edited file from statement {}",
                    n + 1
                )
            } else {
                format!(
                    "fix the failing statement (or the data it needs), keeping statements 1..{n} as they ran, then `tend migrate deploy --resume {name}` goes on from statement {}",
                    n + 1
                )
            })
        }
        (State::Failed, Some(_)) => Some(format!(
            "nothing of it was applied: fix it, then mark it rolled back with `tend migrate resolve --rolled-back {name}` and deploy again (or `tend migrate deploy --resume {name}` does both)"
        )),
        _ => None,
    }
}

/// Is everything on disk applied, with nothing failed or modified? (`status` exits 0.)
pub fn is_up_to_date(statuses: &[MigrationStatus]) -> bool {
    statuses
        .iter()
        .all(|s| matches!(s.state, State::Applied | State::Missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::checksum;

    fn migration(name: &str, sql: &str) -> Migration {
        Migration {
            name: name.into(),
            path: name.into(),
            sql: sql.into(),
            checksum: checksum(sql.as_bytes()),
            down: None,
        }
    }

    fn row(
        name: &str,
        sql: &str,
        finished: bool,
        rolled_back: bool,
        logs: Option<&str>,
    ) -> HistoryRow {
        HistoryRow {
            id: format!("id-{name}"),
            name: name.into(),
            checksum: checksum(sql.as_bytes()),
            started_at: "2024-01-01T00:00:00.000Z".into(),
            finished_at: finished.then(|| "2024-01-01T00:00:01.000Z".into()),
            rolled_back_at: rolled_back.then(|| "2024-01-01T00:00:02.000Z".into()),
            logs: logs.map(str::to_string),
            applied_steps_count: 1,
        }
    }

    #[test]
    fn every_state_is_recognised() {
        let disk = vec![
            migration("a", "A"),
            migration("b", "B"),
            migration("c", "C"),
            migration("d", "D"),
            migration("f", "F"),
        ];
        let history = vec![
            row("a", "A", true, false, None),
            row("b", "B-old", true, false, None),
            row("c", "C", false, false, Some("ERROR: boom")),
            row("d", "D", false, true, Some("ERROR: boom")),
            row("e", "E", true, false, None),
        ];
        let states: Vec<(String, State)> = compute(&disk, &history)
            .into_iter()
            .map(|s| (s.name, s.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("a".into(), State::Applied),
                ("b".into(), State::Modified),
                ("c".into(), State::Failed),
                ("d".into(), State::RolledBack),
                ("e".into(), State::Missing),
                ("f".into(), State::Pending),
            ]
        );
    }

    #[test]
    fn reapplied_after_rollback_is_applied() {
        let disk = vec![migration("a", "A")];
        let history = vec![
            row("a", "A", false, true, Some("ERROR")),
            row("a", "A", true, false, None),
        ];
        let status = compute(&disk, &history);
        assert_eq!(status[0].state, State::Applied);
        assert!(is_up_to_date(&status));
    }
}
