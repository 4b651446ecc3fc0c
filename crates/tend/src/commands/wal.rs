//! `tend wal-push` and `tend wal-fetch`: the commands PostgreSQL runs as `archive_command`
//! and `restore_command` (a process per file, so they do one thing and say little). They
//! run in the server's data directory, which tells them which server's archive to use.

use std::path::PathBuf;

use clap::Args;
use tend_backup::wal::Fetched;

use crate::command_error::{CommandError, ErrorKind, exit};
use crate::context::{Context, block_on};

/// `wal-fetch`'s exit code for an error that is not "the archive does not have it": above
/// 125, so PostgreSQL stops recovery instead of taking it for the end of the archive.
pub const FETCH_ERROR: i32 = 255;

#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The file to archive (archive_command's %p, relative to the data directory).
    pub path: PathBuf,
    /// The archive's public key (tend pitr enable writes it into archive_command); read
    /// from the store when not given.
    #[arg(long, value_name = "AGE_PUBLIC_KEY")]
    pub recipient: Option<String>,
    /// The server's data directory (default: the working directory, where PostgreSQL runs
    /// archive_command).
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WalFetchArgs {
    /// The file PostgreSQL asks for (restore_command's %f).
    pub name: String,
    /// Where to write it (restore_command's %p).
    pub path: PathBuf,
    /// The server's data directory (default: the working directory).
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
    /// Segments to fetch ahead, in parallel, into pg_wal/tend-prefetch (0: none).
    #[arg(long, value_name = "N", default_value_t = tend_core::pitr::DEFAULT_PREFETCH)]
    pub prefetch: usize,
    /// The archive's key, in a file (relative to the data directory): tend restore
    /// --physical writes one, so the restored server needs no backup keys.
    #[arg(long, value_name = "FILE")]
    pub archive_key: Option<PathBuf>,
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf, CommandError> {
    match given {
        Some(dir) => Ok(dir),
        None => Ok(std::env::current_dir()?),
    }
}

pub fn push(args: WalPushArgs, ctx: &Context) -> Result<i32, CommandError> {
    let store = super::backup::store(ctx)?;
    let data_dir = data_dir(args.pgdata)?;
    let report = block_on(tend_core::pitr::push(
        &store,
        &ctx.settings.backup,
        ctx.settings.pitr.spool.as_ref(),
        &data_dir,
        &args.path,
        args.recipient.as_deref(),
    ))?;
    ctx.out.json_value(&report);
    // PostgreSQL's log keeps archive_command's stderr: a spooled file is worth a line there.
    if report.outcome == "spooled" {
        ctx.out.warn(format!(
            "tend wal-push: spooled {}, the store did not take it ({}); it goes to the store with the next push that reaches it",
            report.file,
            report.spooled_because.as_deref().unwrap_or("")
        ));
    }
    if ctx.out.verbose {
        ctx.out.line(match report.outcome {
            "stored" => format!(
                "Archived {}: {:.1} MB, {:.1} MB stored.",
                report.file,
                report.plain_bytes as f64 / 1e6,
                report.stored_bytes as f64 / 1e6
            ),
            "spooled" | "already_spooled" => format!("{} is in the spool.", report.file),
            _ => format!(
                "{} was archived already, with the same contents.",
                report.file
            ),
        });
        if report.drained > 0 {
            ctx.out.line(format!(
                "Sent {} spooled file(s) to the store first.",
                report.drained
            ));
        }
    }
    Ok(exit::OK)
}

pub fn fetch(args: WalFetchArgs, ctx: &Context) -> Result<i32, CommandError> {
    let result = (|| {
        let store = super::backup::store(ctx)?;
        let data_dir = data_dir(args.pgdata)?;
        let dest = data_dir.join(&args.path);
        Ok::<_, CommandError>(block_on(tend_core::pitr::fetch(
            &store,
            &ctx.settings.backup,
            &data_dir,
            &args.name,
            &dest,
            args.prefetch,
            args.archive_key.as_deref(),
        ))?)
    })();
    match result {
        Ok(Fetched::Found { .. }) => Ok(exit::OK),
        // The normal answer for files that never existed (PostgreSQL probes for them).
        Ok(Fetched::Missing) => Ok(exit::FAILURE),
        Err(err) => {
            ctx.out.error(&err);
            Ok(FETCH_ERROR)
        }
    }
}

impl From<tend_core::pitr::PitrError> for CommandError {
    fn from(err: tend_core::pitr::PitrError) -> Self {
        use tend_backup::wal::WalError;
        use tend_core::pitr::PitrError;
        match err {
            PitrError::Keys(e) => e.into(),
            PitrError::Pool(e) => e.into(),
            PitrError::Backup(e) => e.into(),
            PitrError::Cluster(e) => e.into(),
            PitrError::Connect(e) => e.into(),
            PitrError::Wal(WalError::Store(e)) => (*e).into(),
            e @ (PitrError::NoDataDirectory { .. } | PitrError::NoConfigFile) => {
                CommandError::new(ErrorKind::Config, e.to_string())
            }
            e @ PitrError::Wal(WalError::WrongKey { .. }) => {
                CommandError::new(ErrorKind::Config, e.to_string()).with_hint(
                    "set the key the archive was set up with (BACKUP_ENCRYPTION_KEY for a \
                     passphrase, BACKUP_AGE_IDENTITY_FILE for age recipients)",
                )
            }
            e @ PitrError::Privilege(_) => CommandError::failure(e.to_string()),
            other => CommandError::failure(other.to_string()),
        }
    }
}
