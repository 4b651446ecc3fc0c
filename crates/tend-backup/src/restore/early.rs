//! Indexes and constraints built while later tables load. pg_restore -j builds a table's
//! indexes as soon as that table's rows are in; the streamed restore does the same for the
//! tables big enough to be worth a pg_restore of their own (`EARLY_BUILD`): when the last
//! loading connection has ended its COPY of such a table, one thread runs
//! `pg_restore --section=post-data --use-list` on the scratch file for that table's
//! indexes and constraints, one table after another. Whatever has not started when the
//! stream ends is left to the final `pg_restore --jobs N`, which then skips what was built.
//!
//! Only entries that need nothing but the one table's rows and the schema are taken:
//! indexes and primary key, unique and exclusion constraints on a table with rows.
//! Foreign keys (which need two tables' rows and the other's key), indexes of partitioned
//! tables, a partition's indexes that belong to one of its parent's (pg_dump makes them
//! depend on the parent's), attachments, and anything on a materialized view wait for the
//! end.
//!
//! A failed build stops the restore like a failed COPY: the reader stops feeding rows,
//! the error is the build's, and the restore is undone. A build that has started when the
//! restore fails elsewhere runs to its end first (it is one table's indexes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tend_pg::ConnInfo;

use super::{Scratch, run_pg_restore};
use crate::archive::{Section, Toc};
use crate::ops::BackupError;

/// A table with at least this many bytes of rows gets its indexes built as soon as its rows
/// are in. A smaller one waits for the final pg_restore: starting a pg_restore (a process,
/// a connection, the TOC read again) would cost more than the overlap gains.
pub const EARLY_BUILD: u64 = 16 * 1024 * 1024;

/// For each TABLE DATA entry, the post-data entries that may be built as soon as its rows
/// are loaded, in TOC order.
pub(super) fn plan(toc: &Toc) -> HashMap<i32, Vec<i32>> {
    let by_id: HashMap<i32, &crate::archive::TocEntry> =
        toc.entries.iter().map(|e| (e.dump_id, e)).collect();
    // TABLE entry -> its TABLE DATA entry.
    let data_of: HashMap<i32, i32> = toc
        .entries
        .iter()
        .filter(|e| e.desc == "TABLE DATA")
        .filter_map(|e| {
            e.dependencies
                .iter()
                .find(|d| by_id.get(d).is_some_and(|t| t.desc == "TABLE"))
                .map(|table| (*table, e.dump_id))
        })
        .collect();
    let mut plan: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in toc.entries.iter().filter(|e| {
        e.section == Section::PostData && matches!(e.desc.as_str(), "INDEX" | "CONSTRAINT")
    }) {
        let mut table = None;
        let mut ok = true;
        for dep in &entry.dependencies {
            match (by_id.get(dep), data_of.get(dep)) {
                (Some(_), Some(data)) if table.is_none_or(|t| t == *data) => table = Some(*data),
                (Some(d), None)
                    if d.section == Section::PreData
                        && !matches!(d.desc.as_str(), "TABLE" | "MATERIALIZED VIEW") => {}
                _ => ok = false,
            }
        }
        if let (true, Some(data)) = (ok, table) {
            plan.entry(data).or_default().push(entry.dump_id);
        }
    }
    plan
}

/// What the builder thread is told.
pub(super) enum Early {
    /// The TOC has been read: what to build for which table, and the file to build from.
    Plan {
        plan: HashMap<i32, Vec<i32>>,
        scratch: Arc<Scratch>,
        /// pg_restore's flags about owners and privileges.
        flags: Vec<String>,
    },
    /// Every row of this TABLE DATA entry is loaded and committed.
    Loaded(i32),
}

/// Shared between the builder and the rest of the restore.
#[derive(Default)]
pub(super) struct EarlyState {
    /// The stream has ended: start no more builds, the final pg_restore does them.
    pub ending: AtomicBool,
    /// A build failed: the reader stops feeding rows.
    pub failed: AtomicBool,
}

/// What the builder built.
#[derive(Debug, Default)]
pub(super) struct Built {
    /// The post-data entries: the final pg_restore leaves them out.
    pub entries: HashSet<i32>,
    /// The TABLE DATA entries whose indexes they were, in the order built.
    pub tables: Vec<i32>,
}

/// The builder thread: builds each loaded table's entries in turn until the stream ends.
pub(super) fn build(
    rx: mpsc::Receiver<Early>,
    pg_restore: crate::pg_restore::PgRestore,
    target: ConnInfo,
    state: Arc<EarlyState>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Built, BackupError> {
    let mut built = Built::default();
    let mut plan = HashMap::new();
    let mut scratch: Option<Arc<Scratch>> = None;
    let mut flags = Vec::new();
    for message in rx {
        match message {
            Early::Plan {
                plan: p,
                scratch: s,
                flags: f,
            } => {
                plan = p;
                scratch = Some(s);
                flags = f;
            }
            Early::Loaded(table) => {
                let (Some(ids), Some(scratch)) = (plan.remove(&table), scratch.as_ref()) else {
                    continue;
                };
                if state.ending.load(Ordering::SeqCst) {
                    continue;
                }
                let result = use_list(scratch, &format!("early-{table}"), &ids).and_then(|list| {
                    run_pg_restore(
                        &pg_restore,
                        &target,
                        &scratch.path,
                        &[
                            &[
                                "--section=post-data".to_string(),
                                format!("--use-list={}", list.path.display()),
                            ],
                            &flags[..],
                        ]
                        .concat(),
                        cancel,
                    )
                });
                if let Err(e) = result {
                    state.failed.store(true, Ordering::SeqCst);
                    return Err(e);
                }
                built.entries.extend(ids);
                built.tables.push(table);
            }
        }
    }
    Ok(built)
}

/// A pg_restore list file naming these entries (one dump id a line), next to the scratch
/// file.
pub(super) fn use_list(
    scratch: &Scratch,
    suffix: &str,
    ids: &[i32],
) -> Result<Scratch, BackupError> {
    let mut text = String::with_capacity(ids.len() * 8);
    for id in ids {
        text.push_str(&id.to_string());
        text.push('\n');
    }
    let name = format!(
        "{}.{suffix}.list",
        scratch
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Scratch::write(&name, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::TocEntry;

    fn entry(id: i32, desc: &str, section: Section, deps: &[i32]) -> TocEntry {
        TocEntry {
            dump_id: id,
            had_dumper: false,
            tag: format!("e{id}"),
            desc: desc.to_string(),
            section,
            defn: String::new(),
            drop_stmt: String::new(),
            copy_stmt: String::new(),
            namespace: String::new(),
            owner: String::new(),
            dependencies: deps.to_vec(),
        }
    }

    #[test]
    fn only_entries_needing_one_loaded_table_are_built_early() {
        use Section::*;
        let toc = Toc::for_tests(vec![
            entry(1, "SCHEMA", PreData, &[]),
            entry(2, "FUNCTION", PreData, &[1]),
            entry(3, "TABLE", PreData, &[1]),
            entry(4, "TABLE", PreData, &[1]),
            entry(5, "TABLE", PreData, &[1]), // partitioned: no rows of its own
            entry(6, "MATERIALIZED VIEW", PreData, &[3]),
            entry(10, "TABLE DATA", Data, &[3]),
            entry(11, "TABLE DATA", Data, &[4]),
            entry(20, "CONSTRAINT", PostData, &[3]), // 3's primary key
            entry(21, "INDEX", PostData, &[3, 2]),   // an expression index
            entry(22, "FK CONSTRAINT", PostData, &[4, 3, 20]),
            entry(23, "INDEX", PostData, &[5]), // on the partitioned table
            entry(24, "INDEX", PostData, &[4]),
            entry(25, "INDEX ATTACH", PostData, &[23, 24]),
            entry(26, "INDEX", PostData, &[6]), // on the materialized view
            entry(27, "COMMENT", PostData, &[20]),
            entry(28, "CONSTRAINT", PostData, &[3, 4]), // two tables: not one table's
            entry(29, "INDEX", PostData, &[3, 20]),     // needs another post-data entry
        ]);
        let plan = plan(&toc);
        assert_eq!(plan.get(&10), Some(&vec![20, 21]));
        assert_eq!(plan.get(&11), Some(&vec![24]));
        assert_eq!(plan.len(), 2);
    }
}
