//! `tend backup run|list|show|verify`: logical backups, compressed and encrypted, into a
//! directory or an S3-compatible bucket that is its own catalog.

use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tend_backup::{Progress, Store};

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};
use crate::output::count;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup: pg_dump, zstd, age, SHA-256, into the store as it flows.
    Run(RunArgs),
    /// List the complete backups in the store (the store is the catalog).
    List,
    /// Print one backup's manifest.
    Show(IdArgs),
    /// Re-read a backup: checksum, decryption, decompression, archive.
    Verify(VerifyArgs),
    /// Delete backups the retention policy ([backup.retention]) no longer keeps.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be kept and deleted, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Also dump roles and tablespaces (pg_dumpall --globals-only; without role passwords
    /// unless run by a superuser), so a restore can recreate missing roles.
    #[arg(long, conflicts_with = "physical")]
    pub globals: bool,
    /// A physical backup of the whole cluster (BASE_BACKUP), for point-in-time recovery;
    /// the server must archive its WAL with tend (tend pitr enable). Needs a role with
    /// REPLICATION.
    #[arg(long)]
    pub physical: bool,
    /// With --physical, PostgreSQL 17+: only what changed since the newest physical backup
    /// (summarize_wal must be on).
    #[arg(long, requires = "physical")]
    pub incremental: bool,
    /// With --physical: how long to wait for the archive to hold the WAL the backup needs.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration, requires = "physical")]
    pub wal_wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The backup's id (see `tend backup list`).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup's id.
    #[arg(conflicts_with = "latest")]
    pub id: Option<String>,
    /// The newest backup (the default).
    #[arg(long)]
    pub latest: bool,
    /// Also restore it into a scratch database and compare every table's row count with
    /// the manifest (the scratch database is dropped afterwards).
    #[arg(long)]
    pub restore: bool,
    /// A server where the drill may create its scratch database (default: the local cluster).
    #[arg(long, value_name = "URL", requires = "restore")]
    pub scratch: Option<String>,
    /// With --restore: the drill restores without owners and/or privileges.
    #[command(flatten)]
    pub ownership: super::restore::OwnershipArgs,
}

impl From<tend_backup::BackupError> for CommandError {
    fn from(err: tend_backup::BackupError) -> Self {
        match err {
            tend_backup::BackupError::Connect(e)
            | tend_backup::BackupError::Replication(tend_pg::ReplicationError::Connect(e)) => {
                e.into()
            }
            tend_backup::BackupError::Tool(e) => e.into(),
            // The WAL archive's errors (its key opens physical backups) as PITR reports them.
            tend_backup::BackupError::Wal(e) => tend_core::pitr::PitrError::Wal(*e).into(),
            tend_backup::BackupError::Crypto(e) => {
                CommandError::new(ErrorKind::Config, e.to_string())
            }
            tend_backup::BackupError::Store(e) => (*e).into(),
            e @ tend_backup::BackupError::WrongKey { .. } => {
                CommandError::new(ErrorKind::Config, e.to_string()).with_hint(
                    "set the key the backup was made with (BACKUP_ENCRYPTION_KEY for a \
                     passphrase, BACKUP_AGE_IDENTITY_FILE for age recipients); nothing was \
                     recorded against the backup",
                )
            }
            e @ tend_backup::BackupError::Decrypt { .. } => {
                CommandError::new(ErrorKind::Config, e.to_string())
            }
            e @ (tend_backup::BackupError::Interrupted { .. }
            | tend_backup::BackupError::RestoreStopped { .. }) => {
                CommandError::new(ErrorKind::Interrupted, e.to_string())
            }
            // pg_restore 17+ into a server older than 17 with no psql beside it.
            e @ tend_backup::BackupError::OlderTarget { .. } => {
                CommandError::new(ErrorKind::Tool, e.to_string())
            }
            other => {
                let failure = other.store_failure();
                with_store_hint(CommandError::failure(other.to_string()), failure)
            }
        }
    }
}

/// A full disk or a refusing store shows up deep in an I/O or HTTP error, which the library
/// reads as a [`tend_backup::StoreFailure`]; say what to do.
fn with_store_hint(err: CommandError, failure: tend_backup::StoreFailure) -> CommandError {
    match failure {
        tend_backup::StoreFailure::Denied => err.with_hint(
            "the store refused tend's requests: check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (or the instance's role) and that they may read, write, list \
             and delete in the bucket",
        ),
        tend_backup::StoreFailure::Full => err.with_hint(
            "the disk is full: free space where backups are stored (BACKUP_DIR) or in the \
             temporary directory (TMPDIR), or store backups elsewhere (BACKUP_DIR, BACKUP_S3_BUCKET)",
        ),
        tend_backup::StoreFailure::NotFound
        | tend_backup::StoreFailure::Unavailable
        | tend_backup::StoreFailure::Other => err,
    }
}

impl From<tend_core::backup::BackupServiceError> for CommandError {
    fn from(err: tend_core::backup::BackupServiceError) -> Self {
        use tend_core::backup::BackupServiceError;
        match err {
            BackupServiceError::Keys(e) => e.into(),
            BackupServiceError::Backup(e) => e.into(),
            BackupServiceError::Tool(e) => e.into(),
            BackupServiceError::Connect(e) => e.into(),
            BackupServiceError::Database(e) => e.into(),
            e @ BackupServiceError::ForeignScratch { .. } => {
                CommandError::new(ErrorKind::Config, e.to_string())
            }
            e @ BackupServiceError::Mismatch(_) => CommandError::failure(e.to_string()),
            e @ BackupServiceError::NotEmpty { .. } => CommandError::failure(e.to_string())
                .with_hint(
                    "restore into an empty database (--to URL), or replace what is there with --clean",
                ),
        }
    }
}

impl From<tend_core::settings::KeyError> for CommandError {
    fn from(err: tend_core::settings::KeyError) -> Self {
        use tend_core::settings::KeyError;
        let hint = match &err {
            KeyError::Missing => Some(
                "set BACKUP_ENCRYPTION_KEY to a passphrase, or BACKUP_AGE_RECIPIENTS to age public keys (age-keygen makes a pair)",
            ),
            KeyError::Mixed => Some(
                "keep one: unset BACKUP_AGE_RECIPIENTS to use the passphrase, or unset \
                 BACKUP_ENCRYPTION_KEY and decrypt with BACKUP_AGE_IDENTITY_FILE",
            ),
            KeyError::IdentityFile { .. } | KeyError::Crypto(_) => None,
        };
        let err = CommandError::new(ErrorKind::Config, err.to_string());
        match hint {
            Some(hint) => err.with_hint(hint),
            None => err,
        }
    }
}

impl From<tend_backup::crypto::CryptoError> for CommandError {
    fn from(err: tend_backup::crypto::CryptoError) -> Self {
        CommandError::new(ErrorKind::Config, err.to_string())
    }
}

impl From<tend_backup::store::StoreError> for CommandError {
    fn from(err: tend_backup::store::StoreError) -> Self {
        match err {
            tend_backup::store::StoreError::S3Config(_) => {
                CommandError::new(ErrorKind::Config, err.to_string())
            }
            tend_backup::store::StoreError::Unusable { kind, .. } => {
                let hint = match kind {
                    tend_backup::store::StoreKind::S3 => {
                        "check that BACKUP_S3_ENDPOINT (or AWS_ENDPOINT_URL) answers from here, \
                         that the bucket BACKUP_S3_BUCKET exists, and that the credentials may \
                         write and delete in it"
                    }
                    tend_backup::store::StoreKind::Directory => {
                        "BACKUP_DIR must be a directory that tend may write in (not a file, \
                         not on a read-only filesystem); set BACKUP_DIR to one"
                    }
                };
                let failure = err.failure();
                with_store_hint(CommandError::failure(err.to_string()), failure).with_hint(hint)
            }
            tend_backup::store::StoreError::Directory { .. } => {
                let failure = err.failure();
                with_store_hint(CommandError::failure(err.to_string()), failure).with_hint(
                    "BACKUP_DIR must be a directory that tend may create and write in (not a \
                     file, nor under one); set BACKUP_DIR to one",
                )
            }
            other => {
                let failure = other.failure();
                with_store_hint(CommandError::failure(other.to_string()), failure)
            }
        }
    }
}

/// The store from config: the S3 bucket when set, else the directory (default
/// `.tend/backups` in the project).
pub fn store(ctx: &Context) -> Result<Store, CommandError> {
    Ok(Store::open(&ctx.settings.backup.store)?)
}

pub fn run(cmd: BackupCommand, ctx: &Context) -> Result<i32, CommandError> {
    match cmd {
        BackupCommand::Run(args) => run_backup(ctx, &args),
        BackupCommand::List => list(ctx),
        BackupCommand::Show(args) => show(ctx, &args.id),
        BackupCommand::Verify(args) => verify(ctx, &args),
        BackupCommand::Prune(args) => prune(ctx, &args),
    }
}

fn run_backup(ctx: &Context, args: &RunArgs) -> Result<i32, CommandError> {
    // The store is refused before a local cluster is started for the target; the keys are
    // checked by the service.
    let store = store(ctx)?;
    let target = ctx.target()?;
    let database = ctx.settings.database.handle(target.info.clone());
    let request = tend_core::backup::BackupRequest {
        globals: args.globals,
        threads: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(2),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let bar = if ctx.out.quiet || ctx.out.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    };
    let started = Instant::now();
    let mut on_progress = |p| match p {
        Progress::Started { id, tables } if args.physical => {
            let _ = tables;
            bar.set_message(format!("physical backup {id}"))
        }
        Progress::Started { id, tables } => {
            bar.set_message(format!("backup {id}: {tables} tables"))
        }
        Progress::Bytes { raw, stored } => bar.set_message(format!(
            "read {:.1} MB, stored {:.1} MB",
            raw as f64 / 1e6,
            stored as f64 / 1e6
        )),
    };
    let manifest = if args.physical {
        let request = tend_core::backup::PhysicalRequest {
            threads: request.threads,
            incremental: args.incremental,
            wal_wait: args.wal_wait,
        };
        block_on(until_signal(
            &cancel,
            tend_core::backup::run_physical(
                &database,
                &store,
                &ctx.settings.backup,
                &request,
                cancel.clone(),
                &mut on_progress,
            ),
        ))?
    } else {
        block_on(until_signal(
            &cancel,
            tend_core::backup::run(
                &database,
                &store,
                &ctx.settings.backup,
                ctx.settings.tool_search(),
                &request,
                cancel.clone(),
                &mut on_progress,
            ),
        ))?
    };
    bar.finish_and_clear();
    let manifest = manifest?;
    ctx.out.json_value(&manifest);
    if let Some(p) = &manifest.physical {
        ctx.out.line(format!(
            "Physical backup {}{}: {:.1} MB read, {:.1} MB stored ({:.1}x), WAL {} to {} archived, in {:.1}s, to {}.",
            manifest.id,
            p.incremental_of
                .as_ref()
                .map(|parent| format!(" (incremental on {parent})"))
                .unwrap_or_default(),
            manifest.raw_bytes as f64 / 1e6,
            manifest.stored_bytes as f64 / 1e6,
            manifest.raw_bytes as f64 / manifest.stored_bytes.max(1) as f64,
            p.start_wal,
            p.stop_wal,
            started.elapsed().as_secs_f64(),
            store.description
        ));
        return Ok(exit::OK);
    }
    ctx.out.line(format!(
        "Backup {} of {}: {:.1} MB dumped, {:.1} MB stored ({:.1}x), {} tables, in {:.1}s, to {}.",
        manifest.id,
        manifest.database,
        manifest.raw_bytes as f64 / 1e6,
        manifest.stored_bytes as f64 / 1e6,
        manifest.raw_bytes as f64 / manifest.stored_bytes.max(1) as f64,
        manifest.tables.len(),
        started.elapsed().as_secs_f64(),
        store.description
    ));
    Ok(exit::OK)
}

/// Runs `work` with SIGINT and SIGTERM turned into a cancellation of `cancel`, which the
/// work obeys (a backup removes what it stored, a restore undoes what it restored, then
/// each returns its error).
pub(crate) async fn until_signal<T>(
    cancel: &tokio_util::sync::CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Result<T, CommandError> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered before the work starts, so no signal is missed.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let watcher = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            cancel.cancel();
        })
    };
    let result = work.await;
    watcher.abort();
    Ok(result)
}

fn list(ctx: &Context) -> Result<i32, CommandError> {
    let store = store(ctx)?;
    let list = block_on(tend_core::backup::list(&store))?;
    for (id, reason) in &list.unusable {
        ctx.out.warn(format!(
            "backup {id} is not listed: its manifest is unusable ({reason})"
        ));
    }
    ctx.out.json_value(&to_json(&list));
    if list.backups.is_empty() {
        ctx.out
            .line(format!("No complete backup in {}.", list.store));
        return Ok(exit::OK);
    }
    for b in &list.backups {
        let m = &b.manifest;
        let verified = match &b.verification {
            Some(v) if v.ok => format!("verified {}", v.verified_at),
            Some(v) => format!("VERIFY FAILED {}: {}", v.verified_at, v.message),
            None => "not verified".to_string(),
        };
        let what = match &m.physical {
            Some(p) if p.incremental_of.is_some() => "physical (incr)".to_string(),
            Some(_) => "physical".to_string(),
            None => m.database.clone(),
        };
        ctx.out.line(format!(
            "{}  {:<16} {:>9.1} MB  {}",
            m.id,
            what,
            m.stored_bytes as f64 / 1e6,
            verified
        ));
    }
    for w in &list.windows {
        match (&w.problem, &w.to_wal) {
            (Some(problem), _) => ctx.out.warn(format!(
                "server {}: the recoverable window cannot be read: {problem}",
                w.system_identifier
            )),
            (None, to) => ctx.out.line(format!(
                "Recoverable (server {}): from {} ({}) to the end of {}{}.",
                w.system_identifier,
                w.from,
                w.from_backup,
                to.as_deref().unwrap_or("the archive"),
                if w.gaps.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", with {} recovery cannot pass (first {}..{})",
                        count(w.gaps.len(), "gap", "gaps"),
                        w.gaps[0].0,
                        w.gaps[0].1
                    )
                }
            )),
        }
    }
    Ok(exit::OK)
}

/// A report as JSON: the value `--json` prints.
pub fn to_json(report: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(report).expect("reports serialize")
}

fn show(ctx: &Context, id: &str) -> Result<i32, CommandError> {
    let store = store(ctx)?;
    let manifest = block_on(tend_core::backup::show(&store, id))?;
    let value = to_json(&manifest);
    if ctx.out.json {
        ctx.out.json_value(&value);
    } else {
        ctx.out
            .line(serde_json::to_string_pretty(&value).expect("JSON values serialize"));
    }
    Ok(exit::OK)
}

fn verify(ctx: &Context, args: &VerifyArgs) -> Result<i32, CommandError> {
    use tend_core::backup::VerifyProgress;
    let store = store(ctx)?;
    let tools = ctx.settings.tool_search();
    let mut bar = None;
    let verified = block_on(tend_core::backup::verify(
        &store,
        &ctx.settings.backup,
        &tools,
        args.id.as_deref(),
        &mut |p| match p {
            VerifyProgress::Reading { id } => {
                bar = Some(spinner(ctx.out, &format!("verifying backup {id}")))
            }
        },
    ));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut report = verified?;
    if args.restore {
        let scratch = match args.scratch.as_deref() {
            Some(url) => tend_pg::ConnInfo::parse(url)?,
            None => crate::context::start_local_cluster(
                &ctx.settings,
                ctx.out,
                "postgres",
                crate::context::ClusterUse::Scratch,
            )?,
        };
        let cancel = tokio_util::sync::CancellationToken::new();
        let request = tend_core::backup::DrillRequest {
            scratch,
            connect: ctx.settings.connect_options(),
            ownership: args.ownership.into(),
            cancel: cancel.clone(),
        };
        report = block_on(until_signal(
            &cancel,
            tend_core::backup::drill(&store, &ctx.settings.backup, &tools, &report.id, &request),
        ))??;
    }
    ctx.out.json_value(&to_json(&report));
    ctx.out.line(format!(
        "Backup {} is sound: {}.",
        report.id, report.verification.message
    ));
    Ok(exit::OK)
}

fn prune(ctx: &Context, args: &PruneArgs) -> Result<i32, CommandError> {
    let store = store(ctx)?;
    let plan = block_on(tend_core::backup::prune_plan(
        &store,
        &ctx.settings.backup,
        ctx.settings.pitr.window,
    ))?;
    for d in &plan.decisions {
        ctx.out.line(format!(
            "{} {}  {}",
            if d.keep {
                "keep  "
            } else if args.dry_run {
                "would delete"
            } else {
                "delete"
            },
            d.id,
            d.reasons.join(", ")
        ));
    }
    for l in &plan.leftovers {
        ctx.out.line(format!(
            "{} {}  left by an interrupted backup ({}): no manifest, {}, {:.1} MB, last written {}",
            if args.dry_run {
                "would remove"
            } else {
                "remove"
            },
            l.id,
            l.reason,
            count(l.objects.len(), "file", "files"),
            l.bytes as f64 / 1e6,
            l.last_write,
        ));
    }
    for l in &plan.recent_leftovers {
        ctx.out.line(format!(
            "keep   {}  no manifest, but {} (last written {})",
            l.id, l.reason, l.last_write,
        ));
    }
    for w in &plan.wal {
        ctx.out.line(format!(
            "{} WAL of server {}: {} before {}, {:.1} MB (the oldest kept physical backup, {}, starts there)",
            if args.dry_run { "would delete" } else { "delete" },
            w.system_identifier,
            count(w.files, "file", "files"),
            w.keep_from,
            w.bytes as f64 / 1e6,
            w.oldest_kept_backup,
        ));
    }
    if args.dry_run || plan.is_empty() {
        let nothing = plan.is_empty();
        ctx.out.json_value(&to_json(&plan.unchanged(args.dry_run)));
        if nothing {
            ctx.out.line("Nothing to delete.");
        }
        return Ok(exit::OK);
    }
    let what = match (plan.doomed().count(), plan.leftovers.len()) {
        (0, 0) => String::new(),
        (n, 0) => count(n, "backup", "backups"),
        (0, m) => count(
            m,
            "leftover of an interrupted backup",
            "leftovers of interrupted backups",
        ),
        (n, m) => format!(
            "{} and {}",
            count(n, "backup", "backups"),
            count(
                m,
                "leftover of an interrupted backup",
                "leftovers of interrupted backups"
            )
        ),
    };
    let what = match (what.is_empty(), plan.wal_files()) {
        (_, 0) => what,
        (true, files) => format!("{} of archived WAL", count(files, "file", "files")),
        (false, files) => format!(
            "{what} and {} of archived WAL",
            count(files, "file", "files")
        ),
    };
    ctx.out
        .confirm(&format!("Delete {what} from {}?", plan.store), ctx.yes)?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let report = block_on(until_signal(
        &cancel,
        tend_core::backup::prune(&store, plan, cancel.clone()),
    ))??;
    ctx.out.json_value(&to_json(&report));
    ctx.out.line(format!("Deleted {what}."));
    Ok(exit::OK)
}

/// A spinner with the elapsed time, on stderr, for long steps that report no byte counts.
pub fn spinner(out: &crate::output::Output, message: &str) -> ProgressBar {
    if out.quiet || out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
