//! Verifying a physical backup: restore it (and the increments under it) into a scratch
//! directory, let `pg_verifybackup` check every file against PostgreSQL's own manifest,
//! then read back every WAL segment the backup needs (decrypted, checked against the
//! SHA-256 it is named by) and check that the archive has no gap from the backup's start
//! to its newest segment on that timeline, reading those back too, except what an earlier
//! verification read (`wal::Checked`).

use std::path::Path;

use crate::crypto::Decryption;
use crate::manifest::{Manifest, Verification};
use crate::ops::{BackupError, now_rfc3339};
use crate::store::Store;
use crate::wal::{Archive, KeyOnce, WalError, WalFile};

use super::restore::{PhysicalRestore, RestoreTarget, TargetAction, restore_physical};

/// Verifies `chain` (the backup last, its parents first) in a scratch directory under
/// `scratch`. A finding about the backup (sound or damaged) is returned as a
/// `Verification`; anything else (a wrong key, a missing program, the store) is an error.
pub async fn verify_physical(
    store: &Store,
    chain: &[Manifest],
    decryption: &Decryption,
    tools: &tend_pg::ToolSearch,
    scratch: &Path,
) -> Result<Verification, BackupError> {
    let manifest = chain.last().expect("a chain has its backup");
    let physical = manifest.physical.as_ref().expect("a physical backup");
    let major: u32 = manifest
        .server_version
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    let verifier = tools.find(
        tend_pg::PgTool::PgVerifybackup,
        tend_pg::VersionNeed::AtLeastMajor(major),
    )?;
    let dir = scratch.join(format!("tend-verify-{}", manifest.id));
    let _ = std::fs::remove_dir_all(&dir);
    // The archive's key, opened once: it opens the backup (sealed to it) and its WAL.
    let system: u64 = physical.system_identifier.parse().unwrap_or_default();
    let archive = Archive::new(store, system);
    let info = archive.require_info().await.map_err(Box::new)?;
    let key = KeyOnce::new(decryption);
    let archive_key = key
        .get_public(&archive, &info)
        .await
        .map_err(|e| BackupError::Wal(Box::new(e)))?
        .clone();
    let options = PhysicalRestore {
        dir: dir.clone(),
        target: RestoreTarget::Immediate,
        action: TargetAction::Shutdown,
        restore_command: "false".to_string(),
        decryption: decryption.clone(),
        archive_key: Some(archive_key),
        tools: tools.clone(),
        extra_settings: Vec::new(),
        cancel: tokio_util::sync::CancellationToken::new(),
    };
    let found = async {
        let restored = restore_physical(store, chain, &options, &|_| {}).await;
        if let Err(e) = restored {
            return match e {
                e @ (BackupError::Physical(_) | BackupError::Damaged { .. }) => {
                    Ok(Some(e.to_string()))
                }
                other => Err(other),
            };
        }
        // WAL comes from the archive (checked below), not from the copy.
        let output = tokio::process::Command::new(&verifier.path)
            .arg("--no-parse-wal")
            .arg("--quiet")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| BackupError::Spawn {
                program: verifier.path.display().to_string(),
                source,
            })?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr);
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Ok(Some(format!(
                "pg_verifybackup found a problem: {}",
                first.trim()
            )));
        }
        Ok(None)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(problem) = found? {
        return Ok(failed(problem));
    }
    let size = physical.segment_size;
    let parse = |name: &str| WalFile::parse(name).and_then(|f| f.segment());
    let (Some(first), Some(last)) = (parse(&physical.start_wal), parse(&physical.stop_wal)) else {
        return Err(BackupError::BadManifest {
            id: manifest.id.clone(),
            reason: "its WAL range is not made of segment names".to_string(),
        });
    };
    // Every segment the backup needs: read back whole.
    let mut segment = first;
    let mut read = 0;
    loop {
        let file = WalFile::Segment(segment);
        let stored = match archive.find(&file).await.map_err(Box::new)? {
            Some(stored) => stored,
            None => {
                return Ok(failed(format!(
                    "the archive lacks {segment}, which the backup needs"
                )));
            }
        };
        let identity = match key.get_public(&archive, &info).await {
            Ok(identity) => identity,
            Err(e) => return Err(BackupError::Wal(Box::new(e))),
        };
        match archive.read(&stored, identity).await {
            Ok(_) => read += 1,
            Err(e @ WalError::Damaged { .. }) => {
                return Ok(failed(e.to_string()));
            }
            Err(e) => return Err(BackupError::Wal(Box::new(e))),
        }
        if segment >= last {
            break;
        }
        segment = segment.next(size);
    }
    // And the chain after it, to the newest segment of its timeline: no gap (listed),
    // and every segment read back whole, except those an earlier verification read.
    let timeline = format!("{:08X}", last.timeline);
    let mut checked = archive.checked().await.map_err(Box::new)?;
    let checked_through = checked
        .through
        .get(&timeline)
        .and_then(|name| WalFile::parse(name))
        .and_then(|f| f.segment());
    let mut newest = last;
    let mut gaps = Vec::new();
    let mut expected = last.next(size);
    let mut to_read = Vec::new();
    for folder in archive.folders().await.map_err(Box::new)? {
        if folder.len() != 16 || !folder.starts_with(&timeline) {
            continue;
        }
        for stored in archive.files_in(&folder).await.map_err(Box::new)? {
            let WalFile::Segment(s) = stored.file else {
                continue;
            };
            if s <= last {
                continue;
            }
            if s != expected {
                gaps.push(format!("{expected}"));
            }
            expected = s.next(size);
            newest = s;
            if checked_through.is_none_or(|through| s > through) {
                to_read.push(stored);
            }
        }
    }
    let identity = key
        .get_public(&archive, &info)
        .await
        .map_err(|e| BackupError::Wal(Box::new(e)))?;
    let mut read_after = 0;
    for batch in to_read.chunks(4) {
        // Collected first: a lazy iterator of borrowing futures held across the await
        // makes the daemon's task not provably Send.
        let reads: Vec<_> = batch
            .iter()
            .map(|stored| archive.read(stored, identity))
            .collect();
        for result in futures::future::join_all(reads).await {
            match result {
                Ok(_) => read_after += 1,
                Err(e @ WalError::Damaged { .. }) => {
                    return Ok(failed(e.to_string()));
                }
                Err(e) => return Err(BackupError::Wal(Box::new(e))),
            }
        }
    }
    // What is read back stays read: the next verification starts after it (up to the
    // first gap: what follows a gap is read again once the gap is explained).
    let read_through = match gaps.first() {
        None => Some(newest),
        Some(_) => None,
    };
    if let Some(through) = read_through
        && checked_through.is_none_or(|before| through > before)
    {
        checked
            .through
            .insert(timeline.clone(), through.to_string());
        checked.at = now_rfc3339();
        archive.set_checked(&checked).await.map_err(Box::new)?;
    }
    let skipped = match checked_through {
        Some(through) if through > last => {
            format!(" ({read_after} read back now, those to {through} by an earlier verification)")
        }
        _ => String::new(),
    };
    let (ok, message) = if gaps.is_empty() {
        (
            true,
            format!(
                "pg_verifybackup checked every file; the {read} WAL segments the backup needs ({first} to {last}) read back whole; the archive continues without a gap to {newest}, each segment read back whole{skipped}"
            ),
        )
    } else {
        (
            false,
            format!(
                "the backup itself is sound, and the archive has a gap after it at {}: recovery cannot pass it",
                gaps[0]
            ),
        )
    };
    Ok(Verification {
        verified_at: now_rfc3339(),
        ok,
        level: "read".to_string(),
        message,
    })
}

/// A verification that found the backup (or the WAL it needs) unusable.
fn failed(message: String) -> Verification {
    Verification {
        verified_at: now_rfc3339(),
        ok: false,
        level: "read".to_string(),
        message,
    }
}
