//! The parallel streamed restore. A backup is one stream (pg_dump's custom format written
//! to a pipe: header, table of contents, then every table's rows in TOC order), read once:
//!
//! 1. the header and TOC are parsed (`archive`) and written to a small scratch file that
//!    holds no rows; `pg_restore --section=pre-data --single-transaction` creates the
//!    schemas, types, functions and tables from it;
//! 2. the rows of each table are cut at line boundaries into pieces of about 1 MiB and
//!    handed to N connections, each running `COPY ... FROM STDIN`: even one big table
//!    loads on every connection while the stream is read only once. The queues are
//!    bounded, so memory stays flat whatever the database's size;
//! 3. as soon as a big table's rows are all in, its indexes and constraints are built by
//!    a pg_restore of their own while later tables load (`early`), as pg_restore -j does;
//! 4. once the stream's checksum is confirmed, the sequences are set and
//!    `pg_restore --section=post-data --jobs N` builds the rest (indexes, constraints,
//!    foreign keys, triggers) from the scratch file, in parallel, in the TOC's dependency
//!    order.
//!
//! It is not one transaction. A restore that fails after the tables were created (a
//! damaged backup, a failing COPY or constraint) undoes itself: it runs the archive's own
//! DROP statements in reverse order, skipping extensions and schemas that the target held
//! before, so the target ends as empty as it started. If even that fails (or tend is
//! killed), the target holds part of the backup, and a rerun with `--clean` (the
//! one-transaction path, which drops what exists first) replaces it.
//!
//! Archives holding anything the loader does not handle itself (large objects, data
//! compressed by pg_dump, an archive version newer than `archive` knows) are restored by
//! the one-transaction path instead, fed the same stream: no second download.

mod early;

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use bytes::Bytes;
use futures::SinkExt;
use tend_pg::{ConnInfo, ConnectOptions};
use tokio::sync::mpsc;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

pub use self::early::EARLY_BUILD;
use self::early::{Early, EarlyState};
use crate::archive::{self, BLOCK_DATA, DataBlocks, Section, Toc};
use crate::crypto::Decryption;
use crate::manifest::{DATA, Manifest};
use crate::ops::{
    BackupError, SingleTransaction, Stop, db_error, read_back, read_manifest, restore_failed,
    role_planner,
};
use crate::pg_restore::PgRestore;
pub use crate::roles::Ownership;
use crate::roles::{RolePlanner, RolesOutcome};
use crate::store::Store;

/// Rows are sent to the connections in pieces of about this size, cut after a newline.
pub const PIECE: usize = 1024 * 1024;
/// Pieces queued for all connections together: what bounds the loader's memory.
const QUEUED: usize = 32;

/// Settings of a parallel restore.
#[derive(Debug, Clone)]
pub struct ParallelOptions {
    /// Connections loading rows, and pg_restore's jobs for the post-data part.
    pub jobs: u32,
    pub connect: ConnectOptions,
    pub pg_restore: PathBuf,
    /// `--no-owner` / `--no-privileges`; roles the target lacks are handled as
    /// [`crate::roles`] says either way.
    pub ownership: Ownership,
    /// Stops the restore between two pieces of rows (or kills the pg_restore running);
    /// what it had created in the target is then dropped again, as after a failure.
    pub cancel: CancellationToken,
}

/// What a stopped restore leaves when it had not created anything yet.
const NOTHING_RESTORED: &str = "nothing was restored";

/// How a backup was restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Parallel {
        jobs: u32,
    },
    /// The archive holds what the loader leaves to pg_restore; the reason says what.
    SingleTransaction {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    pub method: Method,
    /// The tables (`schema.table`) whose indexes and constraints were built while later
    /// tables were still loading.
    pub built_early: Vec<String>,
    /// What was done about roles the target lacks.
    pub roles: RolesOutcome,
}

/// What the target's state is after a failed restore, appended to its error.
const UNDONE: &str = "the restore was undone: what it had created in the target was dropped again";
const PARTIAL: &str = "the target holds part of the backup; rerun with --clean to replace it";

/// Work for one loading connection.
enum Work {
    /// Session settings, from the archive (encoding, search_path) and pg_restore's own.
    Setup(Arc<str>),
    /// Whole lines of one table's COPY text.
    Rows {
        table: i32,
        copy: Arc<str>,
        bytes: Bytes,
    },
    /// Every row of this table has been handed out: end its COPY, and count it in.
    TableEnd(i32),
}

/// Tables whose rows are being counted in: how many connections have yet to end their
/// COPY of each, and who is told when none has.
#[derive(Clone)]
struct Finished {
    remaining: Arc<Mutex<HashMap<i32, usize>>>,
    builder: std::sync::mpsc::Sender<Early>,
}

impl Finished {
    fn count_in(&self, table: i32) {
        let mut remaining = self.remaining.lock();
        if let Some(n) = remaining.get_mut(&table) {
            *n -= 1;
            if *n == 0 {
                remaining.remove(&table);
                // A builder that stopped has its own error to report.
                let _ = self.builder.send(Early::Loaded(table));
            }
        }
    }
}

/// Why the reader thread stopped without a loader error: the loader's own error (a
/// database message) is the one worth showing.
const LOADER_STOPPED: &str = "a loading connection stopped";

enum Outcome {
    Loaded {
        toc: Toc,
        /// Shared with the builder of early indexes; removed when both are done with it.
        scratch: Arc<Scratch>,
        /// pg_restore's flags about owners and privileges.
        flags: Vec<String>,
    },
    FellBack {
        stdin: std::process::ChildStdin,
        reason: String,
    },
}

/// Why the reader stopped when an early index build failed: the build's error is the one
/// shown.
const BUILD_STOPPED: &str = "an index build stopped";

/// Restores a backup into `target`, which must hold no tables (see the module's comment
/// for the steps, and what a failure leaves).
pub async fn restore_parallel(
    store: &Store,
    id: &str,
    decryption: &Decryption,
    target: &ConnInfo,
    options: &ParallelOptions,
) -> Result<Restored, BackupError> {
    let manifest = read_manifest(store, id).await?;
    let planner = role_planner(
        store,
        &manifest,
        decryption,
        target,
        &options.connect,
        (options.ownership, Default::default()),
    )
    .await?;
    let pg_restore = PgRestore::for_target(&options.pg_restore, planner.target_major)?;
    let roles: Arc<Mutex<RolesOutcome>> = Arc::default();
    let jobs = options.jobs.max(1) as usize;
    let mut clients = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        clients.push(tend_pg::connect(target, &options.connect).await?.client);
    }
    let before = Existing::read(&clients[0]).await?;
    let per_connection = (QUEUED / jobs).max(1);
    let (builder_tx, builder_rx) = std::sync::mpsc::channel();
    let early_state = Arc::new(EarlyState::default());
    let builder = {
        let (program, target, state) = (pg_restore.clone(), target.clone(), early_state.clone());
        let cancel = options.cancel.clone();
        std::thread::spawn(move || early::build(builder_rx, program, target, state, &cancel))
    };
    let finished = Finished {
        remaining: Arc::default(),
        builder: builder_tx,
    };
    let mut senders = Vec::with_capacity(jobs);
    let mut loaders = Vec::with_capacity(jobs);
    for client in clients {
        let (tx, rx) = mpsc::channel(per_connection);
        senders.push(tx);
        loaders.push(tokio::spawn(load(client, rx, finished.clone())));
    }

    let created = Arc::new(AtomicBool::new(false));
    let entries: Arc<Mutex<Vec<archive::TocEntry>>> = Arc::default();
    let fallback: Arc<Mutex<Option<SingleTransaction>>> = Arc::new(Mutex::new(None));
    let reader = Reader {
        senders,
        next: 0,
        pg_restore: pg_restore.clone(),
        target: target.clone(),
        scratch_name: format!("tend-restore-{id}-{}.toc", std::process::id()),
        created: created.clone(),
        entries: entries.clone(),
        fallback: fallback.clone(),
        finished,
        early: early_state.clone(),
        planner,
        roles: roles.clone(),
        cancel: options.cancel.clone(),
    };
    let fed = read_back(store, &manifest, decryption, DATA, move |archive| {
        reader.run(archive)
    })
    .await;
    // Tables whose rows end from now on are left to the final pg_restore.
    early_state.ending.store(true, Ordering::SeqCst);
    // The reader is gone with its senders: each loader ends its last COPY and returns.
    let mut loaded = Vec::with_capacity(jobs);
    let mut load_error = None;
    for loader in loaders {
        match loader.await {
            Ok(Ok(client)) => loaded.push(client),
            Ok(Err(e)) => {
                load_error.get_or_insert(e);
            }
            Err(e) => {
                load_error.get_or_insert(BackupError::Pipeline(e.to_string()));
            }
        }
    }
    // The loaders are gone with their senders: the builder ends its current build.
    let built = tokio::task::spawn_blocking(move || builder.join())
        .await
        .map_err(|e| BackupError::Pipeline(e.to_string()))
        .and_then(|joined| {
            joined
                .unwrap_or_else(|_| Err(BackupError::Pipeline("the index builder panicked".into())))
        });
    let outcome = match (fed, load_error, built) {
        (_, Some(e), _) => Err(e),
        (_, None, Err(e)) => Err(e),
        (Err(e), None, Ok(_)) => Err(e),
        (Ok((outcome, _)), None, Ok(built)) => Ok((outcome, built)),
    };
    let result = match outcome {
        Ok((Outcome::FellBack { stdin, reason }, _)) => {
            let child = fallback.lock().take();
            let cancel = options.cancel.clone();
            let finished = tokio::task::spawn_blocking(move || match child {
                Some(child) => child.finish(Ok(stdin), &cancel),
                None => Err(BackupError::Pipeline("pg_restore was stopped".to_string())),
            })
            .await
            .map_err(|e| BackupError::Pipeline(e.to_string()))
            .and_then(|r| r);
            return finished.map(|()| Restored {
                manifest,
                method: Method::SingleTransaction { reason },
                built_early: Vec::new(),
                roles: std::mem::take(&mut *roles.lock()),
            });
        }
        Ok((
            Outcome::Loaded {
                toc,
                scratch,
                flags,
            },
            built,
        )) => {
            let tables = built
                .tables
                .iter()
                .filter_map(|id| toc.entries.iter().find(|e| e.dump_id == *id))
                .map(|e| format!("{}.{}", e.namespace, e.tag))
                .collect();
            finish(
                &toc,
                &scratch,
                &built.entries,
                loaded.first(),
                target,
                &pg_restore,
                (jobs, &flags, &options.cancel),
            )
            .await
            .map(|()| tables)
        }
        Err(e) => {
            // A fallback pg_restore still running must not commit.
            let child = fallback.lock().take();
            if let Some(child) = child {
                let _ = tokio::task::spawn_blocking(move || {
                    child.finish(
                        Err(BackupError::Pipeline(String::new())),
                        &CancellationToken::new(),
                    )
                })
                .await;
            }
            Err(e)
        }
    };
    match result {
        Ok(built_early) => Ok(Restored {
            manifest,
            method: Method::Parallel { jobs: jobs as u32 },
            built_early,
            roles: std::mem::take(&mut *roles.lock()),
        }),
        Err(e) if created.load(Ordering::SeqCst) => {
            let entries = std::mem::take(&mut *entries.lock());
            let state = match undo(target, &options.connect, &before, &entries).await {
                Ok(()) => UNDONE,
                Err(_) => PARTIAL,
            };
            match e {
                BackupError::RestoreStopped { .. } => Err(BackupError::RestoreStopped { state }),
                e => Err(BackupError::Unfinished {
                    source: Box::new(e),
                    state,
                }),
            }
        }
        Err(_) if options.cancel.is_cancelled() => Err(BackupError::RestoreStopped {
            state: NOTHING_RESTORED,
        }),
        Err(e) => Err(e),
    }
}

/// After every row is in: the sequences' values, then the post-data part that was not
/// built early.
async fn finish(
    toc: &Toc,
    scratch: &Scratch,
    built: &HashSet<i32>,
    client: Option<&Client>,
    target: &ConnInfo,
    pg_restore: &PgRestore,
    (jobs, flags, cancel): (usize, &[String], &CancellationToken),
) -> Result<(), BackupError> {
    let client = client.ok_or_else(|| BackupError::Pipeline(LOADER_STOPPED.to_string()))?;
    for entry in toc.entries.iter().filter(|e| e.desc == "SEQUENCE SET") {
        client
            .batch_execute(&entry.defn)
            .await
            .map_err(db_error(&format!("setting sequence {}", entry.tag)))?;
    }
    let mut args = vec!["--section=post-data".to_string()];
    args.extend(flags.iter().cloned());
    // A script through psql is one session (see `pg_restore.rs`).
    if jobs > 1 && !pg_restore.through_psql() {
        args.push(format!("--jobs={jobs}"));
    }
    let list = if built.is_empty() {
        None
    } else {
        let rest: Vec<i32> = toc
            .entries
            .iter()
            .filter(|e| e.section == Section::PostData && !built.contains(&e.dump_id))
            .map(|e| e.dump_id)
            .collect();
        if rest.is_empty() {
            return Ok(());
        }
        let list = early::use_list(scratch, "post-data", &rest)?;
        args.push(format!("--use-list={}", list.path.display()));
        Some(list)
    };
    let (program, target, path) = (pg_restore.clone(), target.clone(), scratch.path.clone());
    let cancel = cancel.clone();
    let result = tokio::task::spawn_blocking(move || {
        run_pg_restore(&program, &target, &path, &args, &cancel)
    })
    .await
    .map_err(|e| BackupError::Pipeline(e.to_string()))?;
    drop(list);
    result
}

/// Runs pg_restore on the scratch file (header and TOC, no rows) and waits for it, or
/// kills it when `cancel` fires first.
fn run_pg_restore(
    pg_restore: &PgRestore,
    target: &ConnInfo,
    file: &Path,
    args: &[String],
    cancel: &CancellationToken,
) -> Result<(), BackupError> {
    let mut all = vec!["--exit-on-error".to_string(), "--no-password".to_string()];
    all.extend(args.iter().cloned());
    all.push(file.display().to_string());
    // If tend dies, pg_restore goes too, instead of building indexes behind a rerun's back.
    // The signal follows the spawning thread, which waits here until pg_restore ends.
    let output = pg_restore
        .spawn(target, &all, Stdio::null(), true)?
        .wait_or_cancel(cancel)
        .map_err(|source| BackupError::Spawn {
            program: pg_restore.program.display().to_string(),
            source,
        })?
        .ok_or(BackupError::RestoreStopped {
            state: NOTHING_RESTORED,
        })?;
    if !output.status.success() {
        return Err(restore_failed(&output));
    }
    Ok(())
}

/// The blocking side: reads the archive once, runs the pre-data part, and deals the rows
/// out to the loaders.
struct Reader {
    senders: Vec<mpsc::Sender<Work>>,
    next: usize,
    pg_restore: PgRestore,
    target: ConnInfo,
    scratch_name: String,
    created: Arc<AtomicBool>,
    /// The TOC's entries, for an undo.
    entries: Arc<Mutex<Vec<archive::TocEntry>>>,
    fallback: Arc<Mutex<Option<SingleTransaction>>>,
    /// Counts in the tables whose indexes are built early.
    finished: Finished,
    early: Arc<EarlyState>,
    planner: RolePlanner,
    /// What the planner decided, for the report.
    roles: Arc<Mutex<RolesOutcome>>,
    cancel: CancellationToken,
}

impl Reader {
    fn run(mut self, archive: &mut dyn Read) -> Result<Outcome, Stop> {
        let mut input = BufReader::with_capacity(PIECE, archive);
        let toc = archive::read_toc(&mut input)?;
        let (flags, roles) = self.planner.decide(&toc).map_err(Stop::Failed)?;
        *self.roles.lock() = roles;
        if let Some(reason) = left_to_pg_restore(&toc) {
            let child = SingleTransaction::spawn(&self.pg_restore, &self.target, false, &flags)
                .map_err(Stop::Failed)?;
            *self.fallback.lock() = Some(child.clone());
            let stdin = child.feed(&toc.prefix, &mut input, &self.cancel)?;
            return Ok(Outcome::FellBack { stdin, reason });
        }
        let scratch =
            Arc::new(Scratch::write(&self.scratch_name, &toc.prefix).map_err(Stop::Failed)?);
        *self.entries.lock() = toc.entries.clone();
        run_pg_restore(
            &self.pg_restore,
            &self.target,
            &scratch.path,
            &[
                &[
                    "--section=pre-data".to_string(),
                    "--single-transaction".to_string(),
                ],
                &flags[..],
            ]
            .concat(),
            &self.cancel,
        )
        .map_err(Stop::Failed)?;
        self.created.store(true, Ordering::SeqCst);
        let plan = early::plan(&toc);
        let early_tables: HashSet<i32> = plan.keys().copied().collect();
        let _ = self.finished.builder.send(Early::Plan {
            plan,
            scratch: scratch.clone(),
            flags: flags.clone(),
        });

        let setup: Arc<str> = session_setup(&toc).into();
        for sender in &self.senders {
            sender
                .blocking_send(Work::Setup(setup.clone()))
                .map_err(|_| stopped())?;
        }
        let copies: HashMap<i32, Arc<str>> = toc
            .entries
            .iter()
            .filter(|e| e.desc == "TABLE DATA")
            .map(|e| {
                let statement = e.copy_stmt.trim_end().trim_end_matches(';');
                (e.dump_id, Arc::from(statement))
            })
            .collect();
        let mut blocks = DataBlocks::new(&toc, &mut input);
        let mut buf: Vec<u8> = Vec::with_capacity(PIECE + 64 * 1024);
        let mut skipped = Vec::new();
        while let Some((kind, id)) = blocks.next_block()? {
            if kind != BLOCK_DATA {
                return Err(format!("it holds a data block of type {kind}").into());
            }
            let copy = copies
                .get(&id)
                .ok_or_else(|| format!("it holds rows for entry {id}, which is no table"))?
                .clone();
            let mut ended = false;
            let mut bytes: u64 = 0;
            loop {
                if self.cancel.is_cancelled() {
                    return Err(Stop::Failed(BackupError::RestoreStopped {
                        state: NOTHING_RESTORED,
                    }));
                }
                let len = blocks.chunk_len()?;
                if len == 0 {
                    break;
                }
                bytes += len as u64;
                if ended {
                    skipped.clear();
                    blocks.read_into(len, &mut skipped)?;
                    continue;
                }
                let at_line_start = buf.last().is_none_or(|b| *b == b'\n');
                let start = buf.len();
                blocks.read_into(len, &mut buf)?;
                // pg_dump ends each table's rows with COPY's end marker, `\.`, on a line
                // of its own (a backslash in the data is always escaped, so no row starts
                // with it); the connection ends its COPY itself.
                if at_line_start && (buf[start..].starts_with(b"\\.\n") || &buf[start..] == b"\\.")
                {
                    buf.truncate(start);
                    ended = true;
                    continue;
                }
                if buf.len() >= PIECE
                    && let Some(end) = buf.iter().rposition(|b| *b == b'\n')
                {
                    let mut rest = buf.split_off(end + 1);
                    rest.reserve(PIECE + 64 * 1024);
                    let piece = std::mem::replace(&mut buf, rest);
                    self.send(id, &copy, piece)?;
                }
            }
            if !buf.is_empty() {
                let piece = std::mem::take(&mut buf);
                buf.reserve(PIECE + 64 * 1024);
                self.send(id, &copy, piece)?;
            }
            if bytes >= EARLY_BUILD && early_tables.contains(&id) {
                self.table_end(id)?;
            }
        }
        // The last tables' indexes are left to the final pg_restore, which builds on every
        // connection.
        self.early.ending.store(true, Ordering::SeqCst);
        Ok(Outcome::Loaded {
            toc,
            scratch,
            flags,
        })
    }

    /// Tells every connection that `table`'s rows are all handed out; the last to end its
    /// COPY of it has the builder build its indexes.
    fn table_end(&mut self, table: i32) -> Result<(), Stop> {
        self.finished
            .remaining
            .lock()
            .insert(table, self.senders.len());
        for sender in &self.senders {
            sender
                .blocking_send(Work::TableEnd(table))
                .map_err(|_| stopped())?;
        }
        Ok(())
    }

    /// Hands a piece to the first connection with room in its queue, else waits for the
    /// next one in turn.
    fn send(&mut self, table: i32, copy: &Arc<str>, piece: Vec<u8>) -> Result<(), Stop> {
        if self.early.failed.load(Ordering::SeqCst) {
            return Err(Stop::Failed(BackupError::Pipeline(
                BUILD_STOPPED.to_string(),
            )));
        }
        let mut work = Work::Rows {
            table,
            copy: copy.clone(),
            bytes: Bytes::from(piece),
        };
        let n = self.senders.len();
        for i in 0..n {
            let at = (self.next + i) % n;
            match self.senders[at].try_send(work) {
                Ok(()) => {
                    self.next = (at + 1) % n;
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(w)) => work = w,
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(stopped()),
            }
        }
        let at = self.next;
        self.next = (at + 1) % n;
        self.senders[at].blocking_send(work).map_err(|_| stopped())
    }
}

fn stopped() -> Stop {
    Stop::Failed(BackupError::Pipeline(LOADER_STOPPED.to_string()))
}

/// Why the archive goes to pg_restore whole, if it does.
fn left_to_pg_restore(toc: &Toc) -> Option<String> {
    if !toc.readable {
        return Some(format!(
            "its archive format ({}.{}) is newer than tend's loader reads",
            toc.version.0, toc.version.1
        ));
    }
    if toc.compressed {
        return Some("pg_dump compressed its rows itself".to_string());
    }
    for entry in toc.entries.iter().filter(|e| e.section == Section::Data) {
        let handled = match entry.desc.as_str() {
            "TABLE DATA" => entry.had_dumper && entry.copy_stmt.starts_with("COPY "),
            "SEQUENCE SET" => true,
            _ => false,
        };
        if !handled {
            let what = if entry.desc.starts_with("BLOB") || entry.tag.starts_with("LARGE OBJECT") {
                "large objects".to_string()
            } else {
                format!("{} entries", entry.desc)
            };
            return Some(format!("the backup holds {what}"));
        }
    }
    None
}

/// The settings pg_restore gives its own sessions, and the archive's encoding and
/// search_path.
fn session_setup(toc: &Toc) -> String {
    let mut sql = String::from(
        "SET statement_timeout = 0; SET lock_timeout = 0; \
         SET idle_in_transaction_session_timeout = 0; SET client_min_messages = warning; \
         SET row_security = off;\n",
    );
    for entry in &toc.entries {
        if matches!(
            entry.desc.as_str(),
            "ENCODING" | "STDSTRINGS" | "SEARCHPATH"
        ) {
            sql.push_str(&entry.defn);
            sql.push('\n');
        }
    }
    sql
}

/// One loading connection: runs a COPY per run of pieces of the same table.
async fn load(
    client: Client,
    mut rx: mpsc::Receiver<Work>,
    finished: Finished,
) -> Result<Client, BackupError> {
    type Sink = std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>;
    let mut open: Option<(i32, Arc<str>, Sink)> = None;
    let failed = |copy: &str| {
        let table = copy
            .split_whitespace()
            .nth(1)
            .unwrap_or("a table")
            .to_string();
        move |e: tokio_postgres::Error| {
            BackupError::database(
                format!("loading the rows of {table}"),
                &tend_pg::PgError::of(&e),
            )
        }
    };
    while let Some(work) = rx.recv().await {
        match work {
            Work::Setup(sql) => client
                .batch_execute(&sql)
                .await
                .map_err(db_error("preparing a loading session"))?,
            Work::Rows { table, copy, bytes } => {
                if open.as_ref().map(|(t, _, _)| *t) != Some(table) {
                    if let Some((_, copy, mut sink)) = open.take() {
                        sink.as_mut().finish().await.map_err(failed(&copy))?;
                    }
                    let sink = client.copy_in(&*copy).await.map_err(failed(&copy))?;
                    open = Some((table, copy, Box::pin(sink)));
                }
                let (_, copy, sink) = open.as_mut().expect("opened above");
                sink.send(bytes).await.map_err(failed(copy))?;
            }
            Work::TableEnd(table) => {
                if open.as_ref().map(|(t, _, _)| *t) == Some(table)
                    && let Some((_, copy, mut sink)) = open.take()
                {
                    sink.as_mut().finish().await.map_err(failed(&copy))?;
                }
                finished.count_in(table);
            }
        }
    }
    if let Some((_, copy, mut sink)) = open.take() {
        sink.as_mut().finish().await.map_err(failed(&copy))?;
    }
    Ok(client)
}

/// Extensions and schemas the target held before: an undo leaves them.
struct Existing {
    extensions: Vec<String>,
    schemas: Vec<String>,
}

impl Existing {
    async fn read(client: &Client) -> Result<Existing, BackupError> {
        let names = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect();
        Ok(Existing {
            extensions: names(
                client
                    .query("SELECT extname::text FROM pg_extension", &[])
                    .await
                    .map_err(db_error("looking at the target database"))?,
            ),
            schemas: names(
                client
                    .query("SELECT nspname::text FROM pg_namespace", &[])
                    .await
                    .map_err(db_error("looking at the target database"))?,
            ),
        })
    }
}

/// Drops what the restore created, with the archive's own DROP statements in reverse
/// order; statements that find nothing to drop fail and are passed over.
async fn undo(
    target: &ConnInfo,
    connect: &ConnectOptions,
    before: &Existing,
    entries: &[archive::TocEntry],
) -> Result<(), BackupError> {
    let session = tend_pg::connect(target, connect).await?;
    session
        .client
        .batch_execute("SET statement_timeout = 0; SET client_min_messages = error")
        .await
        .map_err(db_error("undoing the restore"))?;
    for entry in entries.iter().rev() {
        let kept = match entry.desc.as_str() {
            "EXTENSION" => before.extensions.contains(&entry.tag),
            "SCHEMA" => before.schemas.contains(&entry.tag),
            "DATABASE" => true,
            _ => false,
        };
        if kept || entry.drop_stmt.trim().is_empty() {
            continue;
        }
        // The server refusing a drop leaves that object; losing the server stops the undo.
        if let Err(e) = session.client.batch_execute(&entry.drop_stmt).await
            && !tend_pg::PgError::of(&e).from_server()
        {
            return Err(db_error("undoing the restore")(e));
        }
    }
    Ok(())
}

/// The header and TOC on disk, for pg_restore (which needs a file for `--jobs`); it holds
/// the schema, never a row. Removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn write(name: &str, bytes: &[u8]) -> Result<Scratch, BackupError> {
        use std::io::Write;
        let path = std::env::temp_dir().join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(&path)
            .and_then(|mut file| file.write_all(bytes));
        let scratch = Scratch { path };
        written.map_err(|source| BackupError::Scratch {
            path: scratch.path.clone(),
            source,
        })?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
