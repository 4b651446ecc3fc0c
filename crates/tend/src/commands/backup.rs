//! `tend backup run|list|show|verify`: logical backups, compressed and encrypted, into a
//! directory or an S3-compatible bucket that is its own catalog.

use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tend_backup::ops::{self, Listed};
use tend_backup::{Decryption, Encryption, Progress, Store};
use tend_pg::{PgTool, VersionNeed};

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
    #[arg(long)]
    pub globals: bool,
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
            tend_backup::BackupError::Connect(e) => e.into(),
            tend_backup::BackupError::Tool(e) => e.into(),
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
            e @ tend_backup::BackupError::Interrupted { .. } => {
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

pub fn encryption(ctx: &Context) -> Result<Encryption, CommandError> {
    Ok(ctx.settings.backup.keys.encryption()?)
}

pub fn decryption(ctx: &Context) -> Result<Decryption, CommandError> {
    Ok(ctx.settings.backup.keys.decryption()?)
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
    // Keys and store are refused before a local cluster is started for the target.
    encryption(ctx)?;
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
    let manifest = block_on(until_signal(
        &cancel,
        tend_core::backup::run(
            &database,
            &store,
            &ctx.settings.backup,
            ctx.settings.tool_search(),
            &request,
            cancel.clone(),
            &mut |p| match p {
                Progress::Started { id, tables } => {
                    bar.set_message(format!("backup {id}: {tables} tables"))
                }
                Progress::Bytes { raw, stored } => bar.set_message(format!(
                    "dumped {:.1} MB, stored {:.1} MB",
                    raw as f64 / 1e6,
                    stored as f64 / 1e6
                )),
            },
        ),
    ))?;
    bar.finish_and_clear();
    let manifest = manifest?;
    ctx.out
        .json_value(&serde_json::to_value(&manifest).expect("manifests serialize"));
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
/// work obeys (a backup removes what it stored, then returns its error).
async fn until_signal<T>(
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
    let catalog = block_on(ops::catalog(&store))?;
    let backups: Vec<Listed> = catalog.backups;
    for (id, reason) in catalog.unusable {
        ctx.out.warn(format!(
            "backup {id} is not listed: its manifest is unusable ({reason})"
        ));
    }
    ctx.out
        .json_value(&serde_json::json!({ "store": store.description, "backups": backups }));
    if backups.is_empty() {
        ctx.out
            .line(format!("No complete backup in {}.", store.description));
        return Ok(exit::OK);
    }
    for b in &backups {
        let m = &b.manifest;
        let verified = match &b.verification {
            Some(v) if v.ok => format!("verified {}", v.verified_at),
            Some(v) => format!("VERIFY FAILED {}: {}", v.verified_at, v.message),
            None => "not verified".to_string(),
        };
        ctx.out.line(format!(
            "{}  {:<16} {:>9.1} MB  {}",
            m.id,
            m.database,
            m.stored_bytes as f64 / 1e6,
            verified
        ));
    }
    Ok(exit::OK)
}

fn show(ctx: &Context, id: &str) -> Result<i32, CommandError> {
    let store = store(ctx)?;
    let manifest = block_on(ops::read_manifest(&store, id))?;
    let value = serde_json::to_value(&manifest).expect("manifests serialize");
    if ctx.out.json {
        ctx.out.json_value(&value);
    } else {
        ctx.out
            .line(serde_json::to_string_pretty(&value).expect("JSON values serialize"));
    }
    Ok(exit::OK)
}

/// A pg_restore that reads the archive: no older than the pg_dump that wrote it (an older
/// one cannot read a newer archive, which would look like damage).
pub fn pg_restore_for(
    ctx: &Context,
    manifest: &tend_backup::Manifest,
) -> Result<tend_pg::FoundTool, CommandError> {
    let need = manifest_major(&manifest.pg_dump_version)
        .map(VersionNeed::AtLeastMajor)
        .unwrap_or(VersionNeed::Any);
    Ok(ctx.settings.tool_search().find(PgTool::PgRestore, need)?)
}

/// The major of a version as manifests write it (`15.4`, `9.6.24`), as tools count it.
fn manifest_major(version: &str) -> Option<u32> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first >= 10 {
        Some(first)
    } else {
        Some(first * 100 + parts.next()?.parse::<u32>().ok()?)
    }
}

fn verify(ctx: &Context, args: &VerifyArgs) -> Result<i32, CommandError> {
    let store = store(ctx)?;
    let decryption = decryption(ctx)?;
    let id = block_on(ops::resolve_id(&store, args.id.as_deref()))?;
    let manifest = block_on(ops::read_manifest(&store, &id))?;
    let pg_restore = pg_restore_for(ctx, &manifest)?;
    let bar = spinner(ctx, &format!("verifying backup {id}"));
    let verification = block_on(ops::verify(
        &store,
        &id,
        &decryption,
        pg_restore.path.clone(),
    ));
    bar.finish_and_clear();
    let mut verification = verification?;
    if args.restore {
        verification = restore_drill(ctx, &store, &id, &decryption, pg_restore.path, args)?;
    }
    ctx.out
        .json_value(&serde_json::json!({ "id": id, "verification": verification }));
    ctx.out
        .line(format!("Backup {id} is sound: {}.", verification.message));
    Ok(exit::OK)
}

/// The comment that marks a restore drill's scratch database as tend's to drop.
const DRILL_TAG: &str = "tend restore drill scratch database";

/// The oid of the scratch database `name` when it exists and carries the drill's mark; an
/// error when it exists without it (someone else's database: never dropped).
async fn drill_database(
    session: &tend_pg::Session,
    name: &str,
) -> Result<Option<u32>, CommandError> {
    let row = session
        .query_opt(
            "SELECT oid, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database
              WHERE datname = $1",
            &[&name],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let comment: String = row.get(1);
    if comment != DRILL_TAG {
        return Err(CommandError::new(
            ErrorKind::Config,
            format!(
                "the scratch server already has a database `{name}` that tend did not make for a drill, and tend drops only its own; drop or rename it, or give another scratch server with --scratch"
            ),
        ));
    }
    Ok(Some(row.get(0)))
}

/// Drops the drill's scratch database when it is still the one tend made (same oid, mark).
async fn drop_drill_database(
    session: &tend_pg::Session,
    name: &str,
    oid: u32,
) -> Result<(), CommandError> {
    if drill_database(session, name).await? == Some(oid) {
        session
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                tend_pg::quote_ident(name)
            ))
            .await?;
    }
    Ok(())
}

/// How a drill ended, and whether that is a finding about the backup (recorded in the
/// store) or about something else (the scratch server, the key: recorded nowhere).
enum Drill {
    Passed(String),
    /// The restored tables do not hold the rows the manifest lists.
    Mismatch(String),
    Backup(tend_backup::BackupError),
    Other(CommandError),
}

/// Restores into a scratch database, compares row counts with the manifest, drops it (and
/// any role it had to create from the backup's roles), and records the result in the
/// store when it says something about the backup.
fn restore_drill(
    ctx: &Context,
    store: &Store,
    id: &str,
    decryption: &Decryption,
    pg_restore: std::path::PathBuf,
    args: &VerifyArgs,
) -> Result<tend_backup::manifest::Verification, CommandError> {
    let admin = match args.scratch.as_deref() {
        Some(url) => tend_pg::ConnInfo::parse(url)?,
        None => crate::context::start_local_cluster(
            &ctx.settings,
            ctx.out,
            "postgres",
            crate::context::ClusterUse::Scratch,
        )?,
    };
    let name = format!(
        "tend_drill_{}",
        id.to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let quoted = tend_pg::quote_ident(&name);
    let session = ctx.connect(&admin)?;
    // A leftover of an interrupted drill is dropped only when it carries the drill's mark.
    if let Some(oid) = block_on(drill_database(&session, &name))? {
        block_on(drop_drill_database(&session, &name, oid))?;
    }
    block_on(session.batch_execute(&format!("CREATE DATABASE {quoted}")))?;
    block_on(session.batch_execute(&format!(
        "COMMENT ON DATABASE {quoted} IS {}",
        tend_pg::quote_literal(DRILL_TAG)
    )))?;
    let made = block_on(drill_database(&session, &name))?;
    let target = admin.with_dbname(&name);
    let created_roles = tend_backup::roles::CreatedRoles::default();
    let outcome = (|| -> Drill {
        let restored = block_on(ops::restore(
            store,
            id,
            decryption,
            &target,
            &ops::SingleOptions {
                pg_restore,
                clean: false,
                ownership: args.ownership.into(),
                connect: ctx.settings.connect_options(),
                created_roles: created_roles.clone(),
            },
        ));
        let (manifest, roles) = match restored {
            Ok(done) => done,
            Err(e) => return Drill::Backup(e),
        };
        let restored = match ctx.connect(&target) {
            Ok(session) => session,
            Err(e) => return Drill::Other(e),
        };
        let mut mismatches = Vec::new();
        for table in &manifest.tables {
            let sql = format!(
                "SELECT count(*) FROM {}",
                tend_pg::quote::quote_qualified(&table.schema, &table.table)
            );
            let rows: i64 = match block_on(restored.query_one(&sql, &[])) {
                Ok(row) => row.get(0),
                Err(e) => return Drill::Other(e.into()),
            };
            if rows != table.rows {
                mismatches.push(format!(
                    "{}.{}: {} rows, the manifest says {}",
                    table.schema, table.table, rows, table.rows
                ));
            }
        }
        if !mismatches.is_empty() {
            return Drill::Mismatch(format!(
                "the restore drill found different row counts: {}",
                mismatches.join("; ")
            ));
        }
        let mut message = format!(
            "restored into a scratch database: all {} tables hold the rows the manifest lists",
            manifest.tables.len()
        );
        if let Some(sentence) = roles.sentence() {
            message.push_str(&format!(" ({sentence})"));
        }
        Drill::Passed(message)
    })();
    if let Some(oid) = made {
        let _ = block_on(drop_drill_database(&session, &name, oid));
    }
    // The roles the drill created for itself go with its database: the scratch server is
    // left as it was, whether the drill passed or not.
    for role in created_roles.lock().iter() {
        let _ = block_on(session.batch_execute(&format!(
            "DROP ROLE IF EXISTS {}",
            tend_pg::quote_ident(role)
        )));
    }
    let verification = |ok: bool, message: String| tend_backup::manifest::Verification {
        verified_at: tend_backup::ops::now_rfc3339(),
        ok,
        level: "restore".to_string(),
        message,
    };
    match outcome {
        Drill::Passed(message) => {
            let v = verification(true, message);
            block_on(ops::record_verification(store, id, &v))?;
            Ok(v)
        }
        Drill::Mismatch(message) => {
            block_on(ops::record_verification(
                store,
                id,
                &verification(false, message.clone()),
            ))?;
            Err(CommandError::failure(message))
        }
        Drill::Backup(e) if e.is_damage() => {
            block_on(ops::record_verification(
                store,
                id,
                &verification(false, e.to_string()),
            ))?;
            Err(e.into())
        }
        Drill::Backup(e) => Err(e.into()),
        Drill::Other(e) => Err(e),
    }
}

fn prune(ctx: &Context, args: &PruneArgs) -> Result<i32, CommandError> {
    use tend_backup::retention::{Candidate, decide, parse_rfc3339};
    let store = store(ctx)?;
    let backups = block_on(ops::list(&store))?;
    // A backup whose time cannot be read is never a candidate for deletion.
    let candidates: Vec<Candidate> = backups
        .iter()
        .filter_map(|b| {
            Some(Candidate {
                id: b.manifest.id.clone(),
                finished_at: parse_rfc3339(&b.manifest.finished_at)?,
                verified_ok: b.verification.as_ref().is_some_and(|v| v.ok),
            })
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let policy = ctx.settings.backup.retention.clone();
    let decisions = decide(&policy, &candidates, now);
    let doomed: Vec<&tend_backup::retention::Decision> =
        decisions.iter().filter(|d| !d.keep).collect();
    // A folder without a manifest: see `retention::leftover_verdict` for how a leftover
    // is told from a running backup.
    let leftovers = block_on(store.leftovers(
        tend_backup::manifest::MANIFEST,
        tend_backup::manifest::RUNNING,
    ))?;
    let host = ops::this_host();
    let (mut stale, mut recent) = (Vec::new(), Vec::new());
    for l in leftovers {
        let marker: Option<tend_backup::manifest::Running> = l
            .running
            .as_ref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok());
        match tend_backup::retention::leftover_verdict(
            l.last_write,
            marker.as_ref(),
            now,
            &host,
            ops::process_alive,
        ) {
            tend_backup::retention::LeftoverVerdict::Stale(why) => stale.push((l, why)),
            tend_backup::retention::LeftoverVerdict::Running(why) => recent.push((l, why)),
        }
    }
    for d in &decisions {
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
    for (l, why) in &stale {
        ctx.out.line(format!(
            "{} {}  left by an interrupted backup ({why}): no manifest, {}, {:.1} MB, last written {}",
            if args.dry_run {
                "would remove"
            } else {
                "remove"
            },
            l.id,
            count(l.objects.len(), "file", "files"),
            l.bytes as f64 / 1e6,
            when(l.last_write),
        ));
    }
    for (l, why) in &recent {
        ctx.out.line(format!(
            "keep   {}  no manifest, but {why} (last written {})",
            l.id,
            when(l.last_write),
        ));
    }
    let described = |list: &[(tend_backup::store::Leftover, String)]| {
        list.iter()
            .map(|(l, why)| {
                serde_json::json!({
                    "id": l.id, "objects": l.objects, "bytes": l.bytes,
                    "last_write": when(l.last_write), "reason": why,
                })
            })
            .collect::<Vec<_>>()
    };
    let report = |deleted: &[String], removed: &[String]| {
        serde_json::json!({
            "dry_run": args.dry_run, "policy": policy, "decisions": decisions, "deleted": deleted,
            "leftovers": described(&stale), "recent_leftovers": described(&recent),
            "removed_leftovers": removed,
        })
    };
    if args.dry_run || (doomed.is_empty() && stale.is_empty()) {
        ctx.out.json_value(&report(&[], &[]));
        if doomed.is_empty() && stale.is_empty() {
            ctx.out.line("Nothing to delete.");
        }
        return Ok(exit::OK);
    }
    let what = match (doomed.len(), stale.len()) {
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
    ctx.out.confirm(
        &format!("Delete {what} from {}?", store.description),
        ctx.yes,
    )?;
    let mut deleted = Vec::new();
    for d in doomed {
        // The manifest goes first: a crash here leaves an unlisted folder, never a listed
        // backup with missing parts.
        block_on(store.delete_backup(&d.id, tend_backup::manifest::MANIFEST))?;
        deleted.push(d.id.clone());
    }
    let mut removed = Vec::new();
    for (l, _) in &stale {
        block_on(tend_backup::ops::remove_leftover(&store, l))?;
        removed.push(l.id.clone());
    }
    ctx.out.json_value(&report(&deleted, &removed));
    ctx.out.line(format!("Deleted {what}."));
    Ok(exit::OK)
}

/// A time as RFC 3339, UTC, seconds.
fn when(secs: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A spinner with the elapsed time, on stderr, for long steps that report no byte counts.
pub fn spinner(ctx: &Context, message: &str) -> ProgressBar {
    if ctx.out.quiet || ctx.out.json {
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
