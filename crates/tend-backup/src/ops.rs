//! Backup, list, verify and restore. Any stage failing (pg_dump, the store, the key, a
//! corrupt byte) fails the whole operation with one sentence, writes no manifest and
//! removes what was stored.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;
use tokio_util::sync::CancellationToken;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use tend_pg::{ConnInfo, ConnectOptions, ServerFacts};
use tokio::sync::mpsc;

use crate::crypto::{Decryption, Encryption, OpenError};
use crate::fault::{Damage, Layer, Tagged, tag_of};
use crate::manifest::{
    Compression, DATA, GLOBALS, MANIFEST, Manifest, RUNNING, Running, RunningUpload, StoredObject,
    TableRows, VERIFICATION, Verification,
};
use crate::pg_restore::{PgRestore, Restoring};
use crate::pipeline::{ChannelReader, ChannelWriter, CountingReader, drain};
use crate::roles::{Ownership, RolePlanner, RolesOutcome};
use crate::store::{Store, StoreError, StoreFailure};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Connect(#[from] tend_pg::ConnectError),
    #[error(transparent)]
    Store(Box<StoreError>),
    /// PostgreSQL refused a statement of tend's own; `class` says what kind of failure its
    /// SQLSTATE names (a full disk, a missing privilege, a lock...).
    #[error("{context}: {message}")]
    Database {
        context: String,
        message: String,
        class: tend_pg::PgErrorClass,
    },
    #[error("{program} failed (exit {code}): {stderr}; nothing was kept")]
    Dump {
        program: String,
        code: String,
        stderr: String,
    },
    #[error("pg_restore failed (exit {code}): {stderr}")]
    Restore { code: String, stderr: String },
    /// A restore that failed after it had changed the target; `state` says what is left.
    #[error("{source}; {state}")]
    Unfinished {
        source: Box<BackupError>,
        state: &'static str,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the backup pipeline failed: {0}; nothing was kept")]
    Pipeline(String),
    /// The store did not take the last bytes of an object (its single PUT, or the last
    /// parts and the completion of a multipart upload).
    #[error("the backup pipeline failed: finishing the upload: {source}; nothing was kept")]
    Upload {
        #[source]
        source: Box<object_store::Error>,
    },
    /// The scratch file pg_restore reads the archive's table of contents from could not be
    /// written (in the temporary directory).
    #[error(
        "the backup pipeline failed: cannot write the scratch file {}: {source}; nothing was kept",
        path.display()
    )]
    Scratch {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("there is no backup `{0}` in the store; `tend backup list` shows them")]
    NoSuchBackup(String),
    #[error("the store holds no complete backup yet; take one with `tend backup run`")]
    NoBackups,
    #[error("the manifest of backup `{id}` is unreadable: {reason}")]
    BadManifest { id: String, reason: String },
    /// The backup's bytes are bad: the only error that says "damaged".
    #[error("backup {id} is damaged: {damage}")]
    Damaged { id: String, damage: Damage },
    /// The configured key does not open a backup whose bytes are sound.
    #[error(
        "{key} does not open backup {id}, which was encrypted for {made_for}; its bytes match its manifest, so the key is wrong, not the backup"
    )]
    WrongKey {
        id: String,
        key: &'static str,
        made_for: String,
    },
    #[error("cannot decrypt backup {id}: {reason}")]
    Decrypt { id: String, reason: String },
    /// Stopped by its cancellation token (SIGINT or SIGTERM in the binary).
    #[error("the backup was interrupted; {cleanup}")]
    Interrupted { cleanup: String },
    /// A restore stopped by its cancellation token; `state` says what the target holds.
    #[error("the restore was stopped before it finished; {state}")]
    RestoreStopped { state: &'static str },
    /// pg_restore 17+ into an older server needs the psql next to it (see `pg_restore.rs`).
    #[error(
        "pg_restore {pg_restore_major} ({pg_restore}) cannot restore into PostgreSQL {target_major} by itself (it sets transaction_timeout, which that server lacks), and there is no psql next to it to run its script through; install psql of the same major beside it, or point TEND_PG_BINDIR at client programs of PostgreSQL {target_major}"
    )]
    OlderTarget {
        pg_restore: String,
        pg_restore_major: u32,
        target_major: u32,
    },
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A physical backup cannot be taken or restored (the role, the server's archiving,
    /// the server's backup stream): the sentence says what and what to do.
    #[error("{0}")]
    Physical(String),
    #[error(transparent)]
    Wal(#[from] Box<crate::wal::WalError>),
    #[error(transparent)]
    Tool(#[from] tend_pg::ToolError),
    #[error(transparent)]
    Replication(#[from] tend_pg::ReplicationError),
}

impl From<StoreError> for BackupError {
    fn from(err: StoreError) -> Self {
        BackupError::Store(Box::new(err))
    }
}

pub(crate) fn db_error(context: &str) -> impl FnOnce(tokio_postgres::Error) -> BackupError + '_ {
    move |e| BackupError::database(context.to_string(), &tend_pg::PgError::of(&e))
}

impl BackupError {
    /// What kind of store failure this error is or was caused by (a refusing store, a full
    /// disk...), read from its typed sources; `Other` when the store is not the cause.
    pub fn store_failure(&self) -> StoreFailure {
        StoreFailure::of(self)
    }

    /// A statement of tend's own failed: PostgreSQL's message (without its SQLSTATE) and
    /// the class of failure it names.
    pub(crate) fn database(context: String, err: &tend_pg::PgError) -> BackupError {
        BackupError::Database {
            context,
            message: err.message.clone(),
            class: err.class,
        }
    }
}

/// Settings of a backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Where pg_dump (and pg_dumpall) are found; the backup picks one no older than the
    /// server, which cannot be dumped by an older one.
    pub tools: tend_pg::ToolSearch,
    /// Also dump roles and tablespaces with pg_dumpall (`--globals`).
    pub globals: bool,
    pub encryption: Encryption,
    pub level: i32,
    pub threads: u32,
    pub connect: ConnectOptions,
    /// Stops the backup: pg_dump is stopped, the upload aborted and what was stored removed.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Progress for a display.
#[derive(Debug, Clone)]
pub enum Progress {
    Started { id: String, tables: usize },
    Bytes { raw: u64, stored: u64 },
}

/// Now, as the manifests write time: RFC 3339, UTC, seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// How a child process ended, for messages.
pub(crate) fn exit_text(status: &std::process::ExitStatus) -> String {
    status
        .code()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "by a signal".to_string())
}

/// A failed pg_restore, with its own words.
pub(crate) fn restore_failed(output: &std::process::Output) -> BackupError {
    BackupError::Restore {
        code: exit_text(&output.status),
        stderr: tend_pg::redact_text(&first_error(&String::from_utf8_lossy(&output.stderr))),
    }
}

/// The line of pg_restore's output that says what went wrong (the server's error, else its
/// first line), on one line: the rest (the command, "a worker process died") repeats it.
fn first_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| l.contains("ERROR:"))
        .or(lines.first())
        .copied()
        .unwrap_or("no message");
    // From pg_restore ("pg_restore: error: could not execute query: ERROR: ...") or from
    // the psql its script went through ("psql:<stdin>:12: ERROR: ...").
    let line = match line.find("ERROR:") {
        Some(at) => &line[at..],
        None => line.strip_prefix("pg_restore: error: ").unwrap_or(line),
    };
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How often a running backup refreshes its `running.json`.
const HEARTBEAT_SECS: i64 = 60;

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// This machine's host name, as backups' `running.json` records it.
pub fn this_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and the length below stops at the first NUL either way.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    if !ok {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Is process `pid` alive on this machine?
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A new backup id: the UTC time, sortable, plus 16 random bits from the OS (getrandom),
/// so two backups started in one second (two `tend serve` hosts, a retry) differ.
pub(crate) fn new_id() -> String {
    let stamp = now_rfc3339().replace(['-', ':'], "");
    // The OS's generator does not fail on Linux; should it, the clock's nanoseconds still
    // separate two ids of one second.
    let random = getrandom::u32().unwrap_or_else(|_| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    });
    format!("{stamp}-{:04x}", random & 0xffff)
}

/// Takes a backup of `info` into `store`. Returns its manifest.
pub async fn backup(
    info: &ConnInfo,
    store: &Store,
    options: &BackupOptions,
    on_progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Manifest, BackupError> {
    let started_at = now_rfc3339();
    // A store that cannot take the backup fails it now, not after the dump.
    store.probe().await?;
    let cancel = options.cancel.clone();
    // A snapshot pg_dump shares, so the row counts describe exactly what was dumped.
    let session = tend_pg::connect(info, &options.connect).await?;
    let facts = ServerFacts::read(&session)
        .await
        .map_err(db_error("reading the server's facts"))?;
    // Checked before anything starts: a pg_dump older than the server cannot dump it.
    let need = tend_pg::VersionNeed::AtLeastMajor(facts.major());
    let pg_dump = options.tools.find(tend_pg::PgTool::PgDump, need)?;
    let pg_dumpall = if options.globals {
        Some(options.tools.find(tend_pg::PgTool::PgDumpall, need)?.path)
    } else {
        None
    };
    let snapshot: String = {
        session
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(db_error("starting the snapshot"))?;
        session
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(db_error("exporting the snapshot"))?
            .get(0)
    };
    let tables: Vec<(String, String, String)> = session
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'
              ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(db_error("listing tables"))?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let id = new_id();
    // Who runs this backup, refreshed while it runs: `prune` tells it from a leftover.
    let marker = Marker::new(store, &id);
    let marker_path = marker.path.clone();
    marker.write(|_| {}).await?;
    on_progress(Progress::Started {
        id: id.clone(),
        tables: tables.len(),
    });

    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let raw = Arc::new(AtomicU64::new(0));
    let stored = Arc::new(AtomicU64::new(0));
    let (dbname, env) = info.for_child_program();
    let producer = spawn_producer(
        pg_dump.path.clone(),
        vec![
            "--format=custom".to_string(),
            "--compress=0".to_string(),
            "--no-password".to_string(),
            format!("--snapshot={snapshot}"),
            format!("--dbname={dbname}"),
        ],
        env.clone(),
        (options.encryption.clone(), options.level, options.threads),
        tx,
        raw.clone(),
        stored.clone(),
    );

    // Row counts in the same snapshot, while the dump flows.
    let counter = tokio::spawn(async move {
        let mut rows = Vec::with_capacity(tables.len());
        for (schema, table, qualified) in tables {
            let count: i64 = session
                .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
                .await
                .map_err(|e| tend_pg::PgError::of(&e))?
                .get(0);
            rows.push(TableRows {
                schema,
                table,
                rows: count,
            });
        }
        // The transaction stays open, and with it the snapshot pg_dump imports, until the
        // dump is done: pg_dump may start after the counting ends.
        Ok::<_, tend_pg::PgError>((rows, session))
    });

    let data_path = store.path(&id, DATA);
    let mut writer = store.upload(&data_path).recorded_by(marker.recorder());
    let mut upload_error = None;
    let mut interrupted = false;
    match pump(&mut rx, &mut writer, &marker, &cancel, || {
        on_progress(Progress::Bytes {
            raw: raw.load(Ordering::Relaxed),
            stored: stored.load(Ordering::Relaxed),
        })
    })
    .await
    {
        Pumped::Done => {}
        Pumped::Interrupted => interrupted = true,
        Pumped::UploadFailed(e) => upload_error = Some(e),
        Pumped::MarkerFailed(e) => {
            drop(rx);
            let _ = producer.await;
            counter.abort();
            let _ = writer.abort().await;
            let _ = store.delete_leftover(&id, MANIFEST).await;
            return Err(e.into());
        }
    }
    // Closing the channel stops the producer if the upload failed.
    drop(rx);
    let produced = producer
        .await
        .map_err(|e| BackupError::Pipeline(e.to_string()))
        .and_then(|r| r);
    if interrupted || produced.is_err() || upload_error.is_some() {
        // No manifest will be written: counting the rest of a big database is wasted work.
        counter.abort();
    }
    // The counting may outlast the dump: an interruption stops it too.
    let mut counter = counter;
    let counted = tokio::select! {
        biased;
        _ = cancel.cancelled(), if !interrupted => {
            interrupted = true;
            counter.abort();
            (&mut counter).await
        }
        counted = &mut counter => counted,
    };
    let rows = counted
        .map_err(|e| BackupError::Pipeline(e.to_string()))
        .and_then(|r| r.map_err(|e| BackupError::database("counting rows".to_string(), &e)));
    let rows = match rows {
        Ok((rows, session)) => {
            let _ = session.batch_execute("COMMIT").await;
            Ok(rows)
        }
        Err(e) => Err(e),
    };
    let failure = match (upload_error, produced, rows) {
        _ if interrupted => None,
        (Some(e), _, _) => Some(BackupError::from(StoreError::Object {
            store: store.description.clone(),
            action: "write",
            path: data_path.to_string(),
            source: Box::new(e),
        })),
        (None, Err(e), _) => Some(e),
        (None, Ok(_), Err(e)) => Some(e),
        (None, Ok(sha256), Ok(rows)) => {
            // Outside `finishing`, which an interruption drops: its upload is aborted below.
            let mut globals = store
                .upload(&store.path(&id, GLOBALS))
                .recorded_by(marker.recorder());
            let finishing = async {
                writer.finish().await.map_err(|e| BackupError::Upload {
                    source: Box::new(e),
                })?;
                let mut objects = vec![StoredObject {
                    name: DATA.to_string(),
                    bytes: stored.load(Ordering::Relaxed),
                    sha256,
                }];
                if let Some(pg_dumpall) = &pg_dumpall {
                    objects.push(
                        dump_globals(
                            info,
                            store,
                            &id,
                            &mut globals,
                            pg_dumpall,
                            options,
                            facts.is_superuser,
                        )
                        .await?,
                    );
                }
                Ok::<_, BackupError>(objects)
            };
            let finished = tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                finished = finishing => Some(finished),
            };
            let objects = match finished {
                Some(Ok(objects)) if !cancel.is_cancelled() => objects,
                Some(Err(e)) if !cancel.is_cancelled() => {
                    let _ = globals.abort().await;
                    let _ = writer.abort().await;
                    let _ = store.delete_backup(&id, MANIFEST).await;
                    return Err(e);
                }
                _ => {
                    let _ = globals.abort().await;
                    let _ = writer.abort().await;
                    return Err(remove_interrupted(store, &id).await);
                }
            };
            let manifest = Manifest {
                format: "tend-backup/1".to_string(),
                id: id.clone(),
                database: facts.database.clone(),
                server_version: facts.version.clone(),
                pg_dump_version: pg_dump.version.to_string(),
                started_at,
                finished_at: now_rfc3339(),
                raw_bytes: raw.load(Ordering::Relaxed),
                stored_bytes: objects.iter().map(|o| o.bytes).sum(),
                objects,
                compression: Compression::zstd(options.level),
                encryption: crate::manifest::Encryption::age(&options.encryption),
                tables: rows,
                tend_version: env!("CARGO_PKG_VERSION").to_string(),
                physical: None,
                checksum: None,
            };
            let text = manifest.to_stored_bytes();
            if cancel.is_cancelled() {
                return Err(remove_interrupted(store, &id).await);
            }
            if let Err(e) = store
                .put(&store.path(&id, MANIFEST), Bytes::from(text))
                .await
            {
                let _ = store.delete_backup(&id, MANIFEST).await;
                return Err(e.into());
            }
            // Complete: the marker has done its work (a leftover marker is harmless).
            let _ = store.delete(&marker_path).await;
            return Ok(manifest);
        }
    };
    let _ = writer.abort().await;
    match failure {
        Some(failure) => {
            let _ = store.delete_backup(&id, MANIFEST).await;
            Err(failure)
        }
        None => Err(remove_interrupted(store, &id).await),
    }
}

/// How [`pump`] ended.
pub(crate) enum Pumped {
    /// The producer closed the channel: everything it made was handed to the upload.
    Done,
    /// The cancellation token fired.
    Interrupted,
    UploadFailed(object_store::Error),
    /// The heartbeat in `running.json` could not be written.
    MarkerFailed(StoreError),
}

/// Hands the producer's chunks to `writer` until the channel closes, refreshing the
/// backup's heartbeat; stops at a cancellation or a failed write. `on_chunk` runs after
/// each chunk (progress).
pub(crate) async fn pump(
    rx: &mut mpsc::Receiver<Bytes>,
    writer: &mut crate::store::Upload,
    marker: &Marker,
    cancel: &CancellationToken,
    mut on_chunk: impl FnMut(),
) -> Pumped {
    let mut last_beat = unix_now();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Pumped::Interrupted,
            chunk = rx.recv() => chunk,
        };
        let Some(chunk) = chunk else {
            return Pumped::Done;
        };
        let put = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Pumped::Interrupted,
            put = writer.put(chunk) => put,
        };
        if let Err(e) = put {
            return Pumped::UploadFailed(e);
        }
        if unix_now() - last_beat >= HEARTBEAT_SECS {
            last_beat = unix_now();
            if let Err(e) = marker.write(|r| r.heartbeat = last_beat).await {
                return Pumped::MarkerFailed(e);
            }
        }
        on_chunk();
    }
}

/// A backup's `running.json`, written by the backup (its start, its heartbeat) and by its
/// uploads (each multipart upload's id, before its first part), one write at a time.
#[derive(Clone)]
pub(crate) struct Marker {
    store: Store,
    path: object_store::path::Path,
    running: Arc<tokio::sync::Mutex<Running>>,
}

impl Marker {
    /// A new backup's marker: this host and process, started now.
    pub(crate) fn new(store: &Store, id: &str) -> Marker {
        Marker {
            store: store.clone(),
            path: store.path(id, RUNNING),
            running: Arc::new(tokio::sync::Mutex::new(Running {
                host: this_host(),
                pid: std::process::id(),
                started_at: now_rfc3339(),
                heartbeat: unix_now(),
                uploads: Vec::new(),
            })),
        }
    }

    pub(crate) fn path_of(&self) -> object_store::path::Path {
        self.path.clone()
    }

    pub(crate) async fn write(&self, change: impl FnOnce(&mut Running)) -> Result<(), StoreError> {
        let mut running = self.running.lock().await;
        change(&mut running);
        let bytes = Bytes::from(serde_json::to_vec(&*running).expect("serializes"));
        self.store.put(&self.path, bytes).await
    }

    pub(crate) fn recorder(&self) -> crate::store::RecordUpload {
        let marker = self.clone();
        Arc::new(move |path, id| {
            let marker = marker.clone();
            Box::pin(async move {
                marker
                    .write(|r| r.uploads.push(RunningUpload { path, id }))
                    .await
            })
        })
    }
}

/// Removes what an interrupted or killed backup left (a folder without a manifest): first
/// the multipart uploads its `running.json` recorded, aborted (best effort: one that was
/// completed or aborted already has nothing left to abort, and the bucket's lifecycle rule
/// is the backstop), then its objects.
pub async fn remove_leftover(
    store: &Store,
    leftover: &crate::store::Leftover,
) -> Result<(), BackupError> {
    let running = leftover
        .running
        .as_ref()
        .and_then(|bytes| serde_json::from_slice::<Running>(bytes).ok());
    for upload in running.iter().flat_map(|r| &r.uploads) {
        let _ = store.abort_upload(&upload.path, &upload.id).await;
    }
    store.delete_leftover(&leftover.id, MANIFEST).await?;
    Ok(())
}

/// After an interruption: removes what the backup had stored (the upload was aborted
/// first), and says whether that worked.
pub(crate) async fn remove_interrupted(store: &Store, id: &str) -> BackupError {
    let cleanup = match store.delete_leftover(id, MANIFEST).await {
        Ok(()) => "what it had stored was removed".to_string(),
        Err(e) => format!(
            "removing what it had stored failed ({e}); `tend backup prune` removes it later"
        ),
    };
    BackupError::Interrupted { cleanup }
}

/// Runs a dump program on a blocking thread, its stdout through zstd and age into the
/// channel. Returns the SHA-256 of what it sent.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_producer(
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    (encryption, level, threads): (Encryption, i32, u32),
    tx: mpsc::Sender<Bytes>,
    raw: Arc<AtomicU64>,
    stored: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Result<String, BackupError>> {
    tokio::task::spawn_blocking(move || -> Result<String, BackupError> {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        // The key wrapping (scrypt for a passphrase) comes first, so pg_dump never waits
        // on its pipe while it runs.
        let sink = ChannelWriter::new(tx, stored);
        let age = encryption
            .wrap(sink)
            .map_err(|e| BackupError::Pipeline(e.to_string()))?;
        let mut child = Command::new(&program)
            .args(&args)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BackupError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let stdout = child.stdout.take().expect("piped");
        widen_pipe(&stdout);
        let mut stderr = child.stderr.take().expect("piped");
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let result = (|| -> std::io::Result<String> {
            let mut zstd = zstd::stream::write::Encoder::new(age, level)?;
            if threads > 1 {
                zstd.multithread(threads)?;
            }
            let mut source = CountingReader {
                inner: stdout,
                count: raw,
            };
            // Large reads: fewer calls into the pipe and into zstd than io::copy's 8 KiB.
            let mut buffer = vec![0u8; COPY_BUFFER];
            loop {
                let n = match source.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                zstd.write_all(&buffer[..n])?;
            }
            let age = zstd.finish()?;
            let sink = age.finish()?;
            sink.finish()
        })();
        if result.is_err() {
            // The rest of the pipeline is gone (the store failed, or the backup was
            // interrupted): pg_dump may be waiting on a lock with nothing to write, so it
            // would not notice its closed pipe.
            let _ = child.kill();
        }
        let status = child.wait().map_err(|source| BackupError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
        let stderr_text = stderr_reader.join().unwrap_or_default();
        if !status.success() {
            return Err(BackupError::Dump {
                program: name,
                code: exit_text(&status),
                stderr: tend_pg::redact_text(stderr_text.trim()),
            });
        }
        result.map_err(|e| BackupError::Pipeline(e.to_string()))
    })
}

/// `pg_dumpall --globals-only` (roles and tablespaces) into its own object.
async fn dump_globals(
    info: &ConnInfo,
    store: &Store,
    id: &str,
    writer: &mut crate::store::Upload,
    pg_dumpall: &std::path::Path,
    options: &BackupOptions,
    superuser: bool,
) -> Result<StoredObject, BackupError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let stored = Arc::new(AtomicU64::new(0));
    let (dbname, env) = info.for_child_program();
    let producer = spawn_producer(
        pg_dumpall.to_path_buf(),
        [
            vec![
                "--globals-only".to_string(),
                "--no-password".to_string(),
                format!("--dbname={dbname}"),
            ],
            // Only a superuser may read pg_authid; anyone else gets the roles from pg_roles,
            // without their passwords (a restore recreates them without passwords).
            if superuser {
                vec![]
            } else {
                vec!["--no-role-passwords".to_string()]
            },
        ]
        .concat(),
        env,
        (options.encryption.clone(), options.level, options.threads),
        tx,
        Arc::new(AtomicU64::new(0)),
        stored.clone(),
    );
    let path = store.path(id, GLOBALS);
    let mut upload_error = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = writer.put(chunk).await {
            upload_error = Some(e);
            break;
        }
    }
    drop(rx);
    let produced = producer
        .await
        .map_err(|e| BackupError::Pipeline(e.to_string()))
        .and_then(|r| r);
    match (upload_error, produced) {
        (None, Ok(sha256)) => {
            writer.finish().await.map_err(|e| BackupError::Upload {
                source: Box::new(e),
            })?;
            Ok(StoredObject {
                name: GLOBALS.to_string(),
                bytes: stored.load(Ordering::Relaxed),
                sha256,
            })
        }
        (Some(e), _) => {
            let _ = writer.abort().await;
            Err(BackupError::from(StoreError::Object {
                store: store.description.clone(),
                action: "write",
                path: path.to_string(),
                source: Box::new(e),
            }))
        }
        (None, Err(e)) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// A backup as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub manifest: Manifest,
    pub verification: Option<Verification>,
}

/// Every complete backup (with a readable manifest), oldest first. Folders without a
/// manifest are incomplete and never listed.
pub async fn list(store: &Store) -> Result<Vec<Listed>, BackupError> {
    Ok(catalog(store).await?.backups)
}

/// What the store holds, read once: the usable backups, and the folders whose manifest
/// exists but cannot be trusted (never listed as usable, reported so they are not
/// forgotten). Folders without a manifest are incomplete and appear in neither.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub backups: Vec<Listed>,
    pub unusable: Vec<(String, String)>,
}

pub async fn catalog(store: &Store) -> Result<Catalog, BackupError> {
    let mut catalog = Catalog::default();
    for id in store.ids().await? {
        let manifest = match load_manifest(store, &id).await {
            Ok(Some(manifest)) => manifest,
            Ok(None) => continue,
            Err(BackupError::BadManifest { reason, .. }) => {
                catalog.unusable.push((id, reason));
                continue;
            }
            Err(e) => return Err(e),
        };
        let verification = store
            .get_opt(&store.path(&id, VERIFICATION))
            .await?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        catalog.backups.push(Listed {
            manifest,
            verification,
        });
    }
    Ok(catalog)
}

pub async fn read_manifest(store: &Store, id: &str) -> Result<Manifest, BackupError> {
    load_manifest(store, id)
        .await?
        .ok_or_else(|| BackupError::NoSuchBackup(id.to_string()))
}

/// A backup's manifest, checked; `None` when the folder has none.
async fn load_manifest(store: &Store, id: &str) -> Result<Option<Manifest>, BackupError> {
    let Some(bytes) = store.get_opt(&store.path(id, MANIFEST)).await? else {
        return Ok(None);
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| BackupError::BadManifest {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
    if !manifest.checksum_matches() {
        return Err(BackupError::BadManifest {
            id: id.to_string(),
            reason: "its checksum does not match its contents (it was changed or damaged)"
                .to_string(),
        });
    }
    if manifest.id != id {
        return Err(BackupError::BadManifest {
            id: id.to_string(),
            reason: format!("it describes backup {}, not this one", manifest.id),
        });
    }
    Ok(Some(manifest))
}

/// The id asked for, or the newest logical backup (what `tend restore` and the restore
/// drill restore; physical backups are restored into a data directory, by id or target).
pub async fn resolve_id(store: &Store, id: Option<&str>) -> Result<String, BackupError> {
    match id {
        Some(id) => Ok(id.to_string()),
        None => list(store)
            .await?
            .iter()
            .rev()
            .find(|l| l.manifest.physical.is_none())
            .map(|l| l.manifest.id.clone())
            .ok_or(BackupError::NoBackups),
    }
}

/// Refuses a physical backup where only a logical one (pg_dump's archive) can go.
pub fn require_logical(manifest: &Manifest) -> Result<(), BackupError> {
    if manifest.physical.is_some() {
        return Err(BackupError::Physical(format!(
            "backup {} is a physical backup of the whole cluster: restore it into a data directory with `tend restore --physical {0} --to-dir DIR`",
            manifest.id
        )));
    }
    Ok(())
}

/// Why `consume` stopped reading a backup: the reader failed (a layer below says which,
/// see [`crate::fault`]), the archive's format is broken, or something else failed (the
/// target database, a program), which says so itself.
pub(crate) enum Stop {
    Read(std::io::Error),
    Damaged(Damage),
    Failed(BackupError),
}

impl From<std::io::Error> for Stop {
    /// An error of a reading layer keeps its tag; any other came from parsing the archive.
    fn from(err: std::io::Error) -> Stop {
        if tag_of(&err).is_some() {
            Stop::Read(err)
        } else {
            Stop::Damaged(Damage::Archive(err.to_string()))
        }
    }
}

impl From<String> for Stop {
    /// A message about the archive's format.
    fn from(reason: String) -> Stop {
        Stop::Damaged(Damage::Archive(reason))
    }
}

/// The error a tagged reading failure stands for.
fn read_failure(id: &str, err: std::io::Error) -> BackupError {
    match err.get_ref().and_then(|e| e.downcast_ref::<Tagged>()) {
        Some(Tagged::Damage(damage)) => BackupError::Damaged {
            id: id.to_string(),
            damage: damage.clone(),
        },
        Some(Tagged::Store(message)) => BackupError::Pipeline(message.clone()),
        None => BackupError::Damaged {
            id: id.to_string(),
            damage: Damage::Archive(err.to_string()),
        },
    }
}

/// Who a backup was encrypted for, from its manifest: public facts only.
fn made_for(manifest: &Manifest) -> String {
    let recipients = &manifest.encryption.recipients;
    if recipients.iter().any(|r| r.kind == "scrypt") {
        return "a passphrase".to_string();
    }
    let keys: Vec<&str> = recipients
        .iter()
        .filter_map(|r| r.public_key.as_deref())
        .collect();
    if keys.is_empty() {
        "keys the manifest does not name".to_string()
    } else {
        format!("the age recipients {}", keys.join(", "))
    }
}

/// Streams a backup's object through a reader on a blocking thread: `consume` gets the
/// decrypted, decompressed bytes. Checks size and SHA-256 against the manifest; the
/// decompressed size only when `consume` read to the end. When several things fail, the
/// one reported is the first of: the store, the stored bytes' size and checksum, then
/// what reading them found (a wrong key is believed only when the checksum matched).
pub(crate) async fn read_back<T: Send + 'static>(
    store: &Store,
    manifest: &Manifest,
    decryption: &Decryption,
    name: &str,
    consume: impl FnOnce(&mut dyn Read) -> Result<T, Stop> + Send + 'static,
) -> Result<(T, u64), BackupError> {
    let object = manifest
        .objects
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| BackupError::BadManifest {
            id: manifest.id.clone(),
            reason: format!("it lists no {name}"),
        })?
        .clone();
    let damaged = |damage: Damage| BackupError::Damaged {
        id: manifest.id.clone(),
        damage,
    };
    let path = store.path(&manifest.id, name);
    let size = store.size(&path).await?.ok_or_else(|| {
        damaged(Damage::Missing {
            object: name.to_string(),
        })
    })?;
    if size != object.bytes {
        return Err(damaged(Damage::Size {
            object: name.to_string(),
            stored: size,
            expected: object.bytes,
        }));
    }
    let mut stream = store.stream(&path).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let decryption = decryption.clone();
    let id = manifest.id.clone();
    let key = decryption.describe();
    let made_for = made_for(manifest);
    let worker = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(rx);
        let outcome = (|| {
            let age = decryption.open(&mut reader).map_err(|e| match e {
                OpenError::WrongKey => BackupError::WrongKey {
                    id: id.clone(),
                    key,
                    made_for: made_for.clone(),
                },
                OpenError::Damaged(reason) => BackupError::Damaged {
                    id: id.clone(),
                    damage: Damage::Decryption(reason),
                },
                OpenError::Excessive(reason) => BackupError::Decrypt {
                    id: id.clone(),
                    reason,
                },
                OpenError::Io(e) => read_failure(&id, e),
            })?;
            let age = Layer {
                inner: age,
                kind: Damage::Decryption,
            };
            let zstd = zstd::stream::read::Decoder::new(age).map_err(|e| read_failure(&id, e))?;
            let mut zstd = Layer {
                inner: zstd,
                kind: Damage::Compression,
            };
            let mut counting = CountingReader {
                inner: &mut zstd,
                count: Arc::new(AtomicU64::new(0)),
            };
            let count = counting.count.clone();
            let result = consume(&mut counting).map_err(|stop| match stop {
                Stop::Read(e) => read_failure(&id, e),
                Stop::Damaged(damage) => BackupError::Damaged {
                    id: id.clone(),
                    damage,
                },
                Stop::Failed(e) => e,
            })?;
            Ok::<_, BackupError>((result, count.load(Ordering::Relaxed)))
        })();
        // Read to the end, so the checksum covers every stored byte.
        let _ = drain(&mut reader);
        (outcome, reader.digest())
    });
    let mut store_error = None;
    while let Some(chunk) = stream.next().await {
        let item = match chunk {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                let shown = e.to_string();
                store_error = Some(e);
                Err(shown)
            }
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            break;
        }
    }
    drop(tx);
    let (outcome, digest) = worker
        .await
        .map_err(|e| BackupError::Pipeline(e.to_string()))?;
    if let Some(e) = store_error {
        return Err(e.into());
    }
    if digest != object.sha256 {
        return Err(damaged(Damage::Checksum {
            object: name.to_string(),
        }));
    }
    let (result, raw) = outcome?;
    if name == DATA && raw != manifest.raw_bytes {
        return Err(damaged(Damage::Length {
            raw,
            expected: manifest.raw_bytes,
        }));
    }
    Ok((result, raw))
}

/// Re-reads a backup: checksum, decryption, decompression to the end, and pg_restore's
/// reading of the archive's table of contents. Records the result in the store.
pub async fn verify(
    store: &Store,
    id: &str,
    decryption: &Decryption,
    pg_restore: PathBuf,
) -> Result<Verification, BackupError> {
    let manifest = read_manifest(store, id).await?;
    let outcome = read_back(store, &manifest, decryption, DATA, move |archive| {
        let mut child = Command::new(&pg_restore)
            .arg("--list")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| {
                Stop::Failed(BackupError::Spawn {
                    program: pg_restore.display().to_string(),
                    source,
                })
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        // pg_restore --list stops reading after the table of contents: a broken pipe then
        // is normal; the rest is drained below for the checksum.
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = archive.read(&mut buf)?;
            if n == 0 || stdin.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        drop(stdin);
        let output = child
            .wait_with_output()
            .map_err(|e| Stop::Failed(BackupError::Pipeline(e.to_string())))?;
        if !output.status.success() {
            return Err(format!(
                "pg_restore cannot read it: {}",
                tend_pg::redact_text(String::from_utf8_lossy(&output.stderr).trim())
            )
            .into());
        }
        // Decompress what pg_restore did not need, to the end: every byte is checked.
        drain(archive)?;
        Ok(())
    })
    .await;
    // Every other object (roles and tablespaces): checksum, decryption, decompression.
    let mut outcome = outcome.map(|_| ());
    for object in manifest.objects.iter().filter(|o| o.name != DATA) {
        if outcome.is_err() {
            break;
        }
        outcome = read_back(store, &manifest, decryption, &object.name, |reader| {
            drain(reader).map(|_| ()).map_err(Stop::from)
        })
        .await
        .map(|_| ());
    }
    let verification = Verification {
        verified_at: now_rfc3339(),
        ok: outcome.is_ok(),
        level: "read".to_string(),
        message: match &outcome {
            Ok(_) => "checksum, decryption, decompression and archive are sound".to_string(),
            Err(e) => e.to_string(),
        },
    };
    // Only a finding about the backup itself is recorded: a wrong key, a store that went
    // away or a missing program says nothing about it, and recording those as a failed
    // verification would let `prune` stop protecting a sound backup.
    if outcome.is_ok() || outcome.as_ref().is_err_and(BackupError::is_damage) {
        record_verification(store, id, &verification).await?;
    }
    outcome.map(|_| verification)
}

impl BackupError {
    /// Is this a finding about the backup's bytes (and so worth recording against it)?
    pub fn is_damage(&self) -> bool {
        match self {
            BackupError::Damaged { .. } => true,
            BackupError::Unfinished { source, .. } => source.is_damage(),
            _ => false,
        }
    }
}

pub async fn record_verification(
    store: &Store,
    id: &str,
    verification: &Verification,
) -> Result<(), BackupError> {
    let text = serde_json::to_vec_pretty(verification).expect("verifications serialize");
    store
        .put(&store.path(id, VERIFICATION), Bytes::from(text))
        .await?;
    Ok(())
}

/// Settings of a restore in one transaction.
#[derive(Debug, Clone)]
pub struct SingleOptions {
    pub pg_restore: PathBuf,
    /// Drop the objects the backup holds before restoring them.
    pub clean: bool,
    pub ownership: Ownership,
    pub connect: ConnectOptions,
    /// Filled with the roles the restore creates on the target server (from the backup's
    /// roles), even when it then fails: a drill drops them again.
    pub created_roles: crate::roles::CreatedRoles,
    /// Stops the restore: pg_restore is killed before it can commit, and the target stays
    /// as it was.
    pub cancel: CancellationToken,
}

/// What a restore in one transaction leaves when it is stopped.
pub(crate) const ROLLED_BACK: &str =
    "nothing of it was kept: it ran in one transaction, which was rolled back";

/// Restores a backup into `target` with pg_restore in one transaction: a failure (or a
/// damaged backup, caught before the last byte) leaves the target as it was. Slower than
/// [`crate::restore::restore_parallel`], which loads on several connections. Roles the
/// target lacks are handled as [`crate::roles`] says, and the outcome returned.
pub async fn restore(
    store: &Store,
    id: &str,
    decryption: &Decryption,
    target: &ConnInfo,
    options: &SingleOptions,
) -> Result<(Manifest, RolesOutcome), BackupError> {
    let manifest = read_manifest(store, id).await?;
    let planner = role_planner(
        store,
        &manifest,
        decryption,
        target,
        &options.connect,
        (options.ownership, options.created_roles.clone()),
    )
    .await?;
    let pg_restore = PgRestore::for_target(&options.pg_restore, planner.target_major)?;
    let running: Arc<parking_lot::Mutex<Option<SingleTransaction>>> = Arc::default();
    let (clean, to) = (options.clean, target.clone());
    let holder = running.clone();
    let (feeding, finishing) = (options.cancel.clone(), options.cancel.clone());
    let fed = read_back(store, &manifest, decryption, DATA, move |archive| {
        let mut input = std::io::BufReader::with_capacity(1024 * 1024, archive);
        let toc = crate::archive::read_toc(&mut input)?;
        let (flags, roles) = planner.decide(&toc).map_err(Stop::Failed)?;
        let child =
            SingleTransaction::spawn(&pg_restore, &to, clean, &flags).map_err(Stop::Failed)?;
        *holder.lock() = Some(child.clone());
        let stdin = child.feed(&toc.prefix, &mut input, &feeding)?;
        Ok((stdin, roles))
    })
    .await;
    let child = running.lock().take();
    let roles = tokio::task::spawn_blocking(move || match child {
        Some(child) => {
            let (stdin, roles) = match fed {
                Ok(((stdin, roles), _)) => (Ok(stdin), roles),
                Err(e) => (Err(e), RolesOutcome::Kept),
            };
            child.finish(stdin, &finishing).map(|()| roles)
        }
        None => Err(fed
            .err()
            .unwrap_or_else(|| BackupError::Pipeline("pg_restore was never started".to_string()))),
    })
    .await
    .map_err(|e| BackupError::Pipeline(e.to_string()))??;
    Ok((manifest, roles))
}

/// What a restore of `manifest` into `target` needs to decide about roles: the target's
/// roles, and the backup's own (`--globals`) when it holds them.
pub(crate) async fn role_planner(
    store: &Store,
    manifest: &Manifest,
    decryption: &Decryption,
    target: &ConnInfo,
    connect: &ConnectOptions,
    (ownership, created): (Ownership, crate::roles::CreatedRoles),
) -> Result<RolePlanner, BackupError> {
    let globals = if manifest.objects.iter().any(|o| o.name == GLOBALS) {
        let (text, _) = read_back(store, manifest, decryption, GLOBALS, |reader| {
            let mut text = String::new();
            reader.read_to_string(&mut text)?;
            Ok(text)
        })
        .await?;
        Some(text)
    } else {
        None
    };
    RolePlanner::read(target, connect, ownership, globals, created).await
}

/// pg_restore reading an archive on its stdin and restoring it in one transaction. Its
/// stdin stays open until the backup's checksum is confirmed, and a read error kills it:
/// it never commits a damaged backup.
#[derive(Clone)]
pub(crate) struct SingleTransaction {
    child: Arc<parking_lot::Mutex<Option<Restoring>>>,
    program: PathBuf,
}

impl SingleTransaction {
    pub(crate) fn spawn(
        pg_restore: &PgRestore,
        target: &ConnInfo,
        clean: bool,
        flags: &[String],
    ) -> Result<SingleTransaction, BackupError> {
        let mut args: Vec<String> = ["--single-transaction", "--exit-on-error", "--no-password"]
            .map(String::from)
            .to_vec();
        if clean {
            args.extend(["--clean", "--if-exists"].map(String::from));
        }
        args.extend(flags.iter().cloned());
        let child = pg_restore.spawn(target, &args, Stdio::piped(), false)?;
        Ok(SingleTransaction {
            child: Arc::new(parking_lot::Mutex::new(Some(child))),
            program: pg_restore.program.clone(),
        })
    }

    fn kill(&self) {
        if let Some(c) = self.child.lock().take() {
            c.kill();
        }
    }

    /// Writes `prefix` (bytes already read from the archive), then the rest of `archive`.
    /// Returns the still open stdin.
    pub(crate) fn feed(
        &self,
        prefix: &[u8],
        archive: &mut dyn Read,
        cancel: &CancellationToken,
    ) -> Result<std::process::ChildStdin, Stop> {
        let stdin = self.child.lock().as_mut().and_then(Restoring::stdin);
        let Some(mut stdin) = stdin else {
            return Err(Stop::Failed(BackupError::Pipeline(
                "pg_restore was stopped".to_string(),
            )));
        };
        if stdin.write_all(prefix).is_err() {
            drop(stdin);
            return Err(Stop::Failed(self.stopped_reading()));
        }
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            if cancel.is_cancelled() {
                self.kill();
                return Err(Stop::Failed(BackupError::RestoreStopped {
                    state: ROLLED_BACK,
                }));
            }
            let n = match archive.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    // Damaged, a wrong key or the store: kill pg_restore before it can commit.
                    self.kill();
                    return Err(e.into());
                }
            };
            if n == 0 {
                return Ok(stdin);
            }
            if stdin.write_all(&buf[..n]).is_err() {
                drop(stdin);
                return Err(Stop::Failed(self.stopped_reading()));
            }
        }
    }

    /// pg_restore closed its input before the end: it stopped on an error of its own,
    /// which its stderr holds (a "broken pipe" says nothing). Waits for it to exit.
    fn stopped_reading(&self) -> BackupError {
        let Some(child) = self.child.lock().take() else {
            return BackupError::Pipeline("pg_restore was stopped".to_string());
        };
        match child.wait_with_output() {
            Ok(output) if !output.status.success() => restore_failed(&output),
            Ok(_) => BackupError::Pipeline(
                "pg_restore stopped reading the archive before its end and reported no error"
                    .to_string(),
            ),
            Err(source) => BackupError::Spawn {
                program: self.program.display().to_string(),
                source,
            },
        }
    }

    /// After the read: on success closes stdin (pg_restore commits) and waits; on failure
    /// or when `cancel` fires first, kills pg_restore (it rolls back).
    pub(crate) fn finish(
        &self,
        fed: Result<std::process::ChildStdin, BackupError>,
        cancel: &CancellationToken,
    ) -> Result<(), BackupError> {
        let taken = self.child.lock().take();
        let stdin = match fed {
            Ok(stdin) => stdin,
            Err(e) => {
                if let Some(child) = taken {
                    child.kill();
                }
                return Err(e);
            }
        };
        drop(stdin);
        let Some(child) = taken else {
            return Err(BackupError::Pipeline("pg_restore was stopped".to_string()));
        };
        let output = child
            .wait_or_cancel(cancel)
            .map_err(|source| BackupError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?
            .ok_or(BackupError::RestoreStopped { state: ROLLED_BACK })?;
        if !output.status.success() {
            return Err(restore_failed(&output));
        }
        Ok(())
    }
}

/// Is the target database empty of user tables?
pub async fn user_tables(info: &ConnInfo, connect: &ConnectOptions) -> Result<i64, BackupError> {
    let session = tend_pg::connect(info, connect).await?;
    Ok(session
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .await
        .map_err(db_error("looking at the target database"))?
        .get(0))
}

/// How much a producer reads from its program at a time.
const COPY_BUFFER: usize = 1 << 20;

/// Asks for a 1 MiB pipe (Linux's default is 64 KiB), so a fast producer such as
/// pg_dump blocks less often on a full pipe. Best effort: the default works too.
fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; failure only leaves the size as it was.
    unsafe {
        libc::fcntl(
            pipe.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            COPY_BUFFER as libc::c_int,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{first_error, new_id};

    /// Ids of one second differ by their random suffix: 64 of them are not one value (the
    /// chance that 64 draws of 16 random bits all agree is 2^-1008).
    #[test]
    fn backup_ids_of_one_second_differ_by_a_random_suffix() {
        let ids: Vec<String> = (0..64).map(|_| new_id()).collect();
        for id in &ids {
            let (stamp, suffix) = id.rsplit_once('-').unwrap();
            assert!(stamp.ends_with('Z') && stamp.contains('T'), "{id}");
            assert!(
                suffix.len() == 4 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
        }
        let suffixes: std::collections::HashSet<&str> = ids
            .iter()
            .map(|id| id.rsplit_once('-').unwrap().1)
            .collect();
        assert!(suffixes.len() > 1, "{ids:?}");
    }

    #[test]
    fn pg_restore_errors_come_down_to_the_servers_line() {
        let stderr = "pg_restore: error: could not execute query: ERROR:  relation \"cfg\" does not exist\nLINE 1: ...\nCommand was: CREATE INDEX t_bucket ON public.t USING btree (public.bucket(id));\npg_restore: error: a worker process died unexpectedly\n";
        assert_eq!(
            first_error(stderr),
            "ERROR: relation \"cfg\" does not exist"
        );
        assert_eq!(
            first_error("pg_restore: error: input file is too short\n"),
            "input file is too short"
        );
        assert_eq!(first_error(""), "no message");
    }
}
