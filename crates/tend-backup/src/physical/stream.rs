//! The base backup itself: tend sends `BASE_BACKUP` on a replication connection and seals
//! what comes back. The server compresses (zstd, with as many workers as tend would use)
//! where it was built with zstd, so tend only encrypts, hashes and uploads; a server built
//! without it sends a plain tar, which tend compresses as it would pg_basebackup's. The
//! start and end of the backup's WAL come from the command's result sets and PostgreSQL's
//! `backup_manifest` from the stream's last part, so nothing needs to read the tar.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tend_pg::{BackupData, ConnInfo, ConnectOptions, Replication, ReplicationError, WalPosition};
use tokio::sync::mpsc;

use crate::crypto::Encryption;
use crate::ops::BackupError;
use crate::pipeline::ChannelWriter;

/// Where the archive gets compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compressor {
    /// By the server, with this many zstd workers (0: none).
    Server { workers: u32 },
    /// By tend: the server cannot (no zstd in its build).
    Client,
}

/// An open backup stream.
pub(super) struct Started {
    pub connection: Replication,
    pub start: WalPosition,
    pub compressor: Compressor,
}

/// Starts BASE_BACKUP, asking the server to compress and stepping down when it cannot:
/// first without workers (a libzstd without threads), then without compression. Each try
/// opens its own connection, since an incremental backup's manifest belongs to the
/// connection it was uploaded on.
pub(super) async fn start(
    info: &ConnInfo,
    connect: &ConnectOptions,
    label: &str,
    level: i32,
    threads: u32,
    parent_manifest: Option<&[u8]>,
) -> Result<Started, BackupError> {
    let mut tries = Vec::new();
    if threads > 1 {
        tries.push(Compressor::Server { workers: threads });
    }
    tries.push(Compressor::Server { workers: 0 });
    tries.push(Compressor::Client);
    let mut last = None;
    for compressor in tries {
        let mut connection = Replication::connect(info, connect).await?;
        if connection.server_version_num < 150000 {
            return Err(BackupError::Physical(format!(
                "physical backups need PostgreSQL 15 or later (its BASE_BACKUP streams one archive with its manifest), and the server is {}.{}; use logical backups (tend backup run) for it",
                connection.server_version_num / 10000,
                connection.server_version_num % 10000
            )));
        }
        if let Some(manifest) = parent_manifest {
            connection.upload_manifest(manifest).await?;
        }
        let mut options = vec![
            format!("LABEL {}", tend_pg::quote_literal(label)),
            "PROGRESS true".to_string(),
            "CHECKPOINT 'fast'".to_string(),
            // tend waits for the archive itself (`wait_for_wal`), in the store it restores from.
            "WAIT false".to_string(),
            "MANIFEST 'yes'".to_string(),
        ];
        if parent_manifest.is_some() {
            options.push("INCREMENTAL".to_string());
        }
        if let Compressor::Server { workers } = compressor {
            options.push("COMPRESSION 'zstd'".to_string());
            let detail = if workers > 1 {
                format!("level={level},workers={workers}")
            } else {
                format!("level={level}")
            };
            options.push(format!(
                "COMPRESSION_DETAIL {}",
                tend_pg::quote_literal(&detail)
            ));
        }
        match connection.start_backup(&options.join(", ")).await {
            Ok(start) => {
                return Ok(Started {
                    connection,
                    start,
                    compressor,
                });
            }
            Err(e) if compressor != Compressor::Client && is_about_compression(&e) => {
                last = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.expect("a try failed").into())
}

/// The server's build cannot compress as asked ("zstd compression is not supported by
/// this build", "could not set compression worker count").
fn is_about_compression(error: &ReplicationError) -> bool {
    match error {
        ReplicationError::Refused { message, .. } => {
            message.contains("compress") || message.contains("worker")
        }
        _ => false,
    }
}

/// What the stream said besides the archive.
pub(super) struct Finished {
    pub end: WalPosition,
    pub manifest: Vec<u8>,
}

/// Reads the backup stream to its end: the archive's bytes go to `archive`, the manifest
/// is kept, progress goes to `raw`. Ends early (dropping the connection, which makes the
/// server abort the backup) when `archive` is closed.
pub(super) async fn read(
    mut connection: Replication,
    archive: mpsc::Sender<Bytes>,
    raw: Arc<AtomicU64>,
) -> Result<Finished, BackupError> {
    let mut manifest = Vec::new();
    let mut in_manifest = false;
    let mut archives = 0;
    while let Some(message) = connection.next_data().await? {
        match message {
            BackupData::Archive { location, .. } => {
                archives += 1;
                if archives > 1 || !location.is_empty() {
                    return Err(BackupError::Physical(
                        "the cluster has tablespaces outside its data directory, which tend's physical backups do not hold yet; use logical backups (tend backup run) for it".to_string(),
                    ));
                }
            }
            BackupData::Data(bytes) if in_manifest => manifest.extend_from_slice(&bytes),
            BackupData::Data(bytes) => {
                if archive.send(bytes).await.is_err() {
                    return Err(BackupError::Pipeline(
                        "the store stopped taking data".to_string(),
                    ));
                }
            }
            BackupData::Manifest => in_manifest = true,
            BackupData::Progress(done) => raw.store(done, Ordering::Relaxed),
        }
    }
    let end = connection.finish_backup().await?;
    Ok(Finished { end, manifest })
}

/// Seals the archive on a blocking thread: zstd when the server did not compress, then
/// age, hashed and cut into chunks for the upload. Returns the SHA-256 of what it sealed.
pub(super) fn spawn_sealer(
    mut archive: mpsc::Receiver<Bytes>,
    encryption: Encryption,
    compressor: Compressor,
    (level, threads): (i32, u32),
    out: mpsc::Sender<Bytes>,
    stored: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Result<String, BackupError>> {
    tokio::task::spawn_blocking(move || -> Result<String, BackupError> {
        use std::io::Write;
        let failed = |e: std::io::Error| BackupError::Pipeline(e.to_string());
        let age = encryption
            .wrap(ChannelWriter::new(out, stored))
            .map_err(|e| BackupError::Pipeline(e.to_string()))?;
        let sink = match compressor {
            Compressor::Server { .. } => {
                let mut age = age;
                while let Some(bytes) = archive.blocking_recv() {
                    age.write_all(&bytes).map_err(failed)?;
                }
                age.finish().map_err(failed)?
            }
            Compressor::Client => {
                let mut zstd = zstd::stream::write::Encoder::new(age, level).map_err(failed)?;
                if threads > 1 {
                    zstd.multithread(threads).map_err(failed)?;
                }
                while let Some(bytes) = archive.blocking_recv() {
                    zstd.write_all(&bytes).map_err(failed)?;
                }
                zstd.finish().map_err(failed)?.finish().map_err(failed)?
            }
        };
        sink.finish().map_err(failed)
    })
}
