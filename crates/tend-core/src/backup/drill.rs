//! The restore drill behind `tend backup verify --restore`: the backup restored into a
//! scratch database tend makes (and marks with [`DRILL_TAG`]) on a scratch server, every
//! table's row count compared with the manifest, then the database and any role the
//! restore created dropped again. tend drops only a scratch database carrying its mark,
//! checked by oid on the session that drops it.

use tend_backup::manifest::Verification;
use tend_backup::ops::{self, SingleOptions};
use tend_backup::roles::{CreatedRoles, Ownership};
use tend_backup::{BackupError, Store};
use tend_pg::{ConnInfo, ConnectOptions, Session, ToolSearch};

use super::{BackupServiceError, VerifyReport, pg_restore_for};
use crate::settings::BackupSettings;

/// The comment that marks a restore drill's scratch database as tend's to drop.
pub const DRILL_TAG: &str = "tend restore drill scratch database";

/// Where and how the drill restores.
#[derive(Debug, Clone)]
pub struct DrillRequest {
    /// A server where the drill may create its scratch database (the caller's choice: the
    /// local cluster by default).
    pub scratch: ConnInfo,
    pub connect: ConnectOptions,
    /// `--no-owner` / `--no-privileges`.
    pub ownership: Ownership,
    /// Stops the drill: its restore is rolled back, and its database and roles dropped
    /// as after any drill; nothing is recorded about the backup.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// How a drill ended, and whether that is a finding about the backup (recorded in the
/// store) or about something else (the scratch server, the key: recorded nowhere).
enum Drill {
    Passed(String),
    /// The restored tables do not hold the rows the manifest lists.
    Mismatch(String),
    Backup(BackupError),
    Other(BackupServiceError),
}

/// Restores backup `id` into a scratch database, compares row counts with the manifest,
/// drops the database (and any role it had to create from the backup's roles), and records
/// the result in the store when it says something about the backup.
pub async fn drill(
    store: &Store,
    settings: &BackupSettings,
    tools: &ToolSearch,
    id: &str,
    request: &DrillRequest,
) -> Result<VerifyReport, BackupServiceError> {
    let decryption = settings.keys.decryption()?;
    let manifest = ops::read_manifest(store, id).await?;
    ops::require_logical(&manifest)?;
    let pg_restore = pg_restore_for(tools, &manifest)?;
    let name = format!(
        "tend_drill_{}",
        id.to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let quoted = tend_pg::quote_ident(&name);
    let session = tend_pg::connect(&request.scratch, &request.connect).await?;
    // A leftover of an interrupted drill is dropped only when it carries the drill's mark.
    if let Some(oid) = drill_database(&session, &name).await? {
        drop_drill_database(&session, &name, oid).await?;
    }
    session
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await?;
    session
        .batch_execute(&format!(
            "COMMENT ON DATABASE {quoted} IS {}",
            tend_pg::quote_literal(DRILL_TAG)
        ))
        .await?;
    let made = drill_database(&session, &name).await?;
    let target = request.scratch.with_dbname(&name);
    let created_roles = CreatedRoles::default();
    let options = SingleOptions {
        pg_restore: pg_restore.path,
        clean: false,
        ownership: request.ownership,
        connect: request.connect.clone(),
        created_roles: created_roles.clone(),
        cancel: request.cancel.clone(),
    };
    let outcome = restore_and_count(store, id, &decryption, &target, &options).await;
    if let Some(oid) = made {
        let _ = drop_drill_database(&session, &name, oid).await;
    }
    // The roles the drill created for itself go with its database: the scratch server is
    // left as it was, whether the drill passed or not.
    let roles: Vec<String> = created_roles.lock().clone();
    for role in roles {
        let _ = session
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {}",
                tend_pg::quote_ident(&role)
            ))
            .await;
    }
    let verification = |ok: bool, message: String| Verification {
        verified_at: ops::now_rfc3339(),
        ok,
        level: "restore".to_string(),
        message,
    };
    match outcome {
        Drill::Passed(message) => {
            let v = verification(true, message);
            ops::record_verification(store, id, &v).await?;
            Ok(VerifyReport {
                id: id.to_string(),
                verification: v,
            })
        }
        Drill::Mismatch(message) => {
            ops::record_verification(store, id, &verification(false, message.clone())).await?;
            Err(BackupServiceError::Mismatch(message))
        }
        Drill::Backup(e) if e.is_damage() => {
            ops::record_verification(store, id, &verification(false, e.to_string())).await?;
            Err(e.into())
        }
        Drill::Backup(e) => Err(e.into()),
        Drill::Other(e) => Err(e),
    }
}

/// The restore in one transaction, then every table's rows counted against the manifest.
async fn restore_and_count(
    store: &Store,
    id: &str,
    decryption: &tend_backup::Decryption,
    target: &ConnInfo,
    options: &SingleOptions,
) -> Drill {
    let (manifest, roles) = match ops::restore(store, id, decryption, target, options).await {
        Ok(done) => done,
        Err(e) => return Drill::Backup(e),
    };
    let restored = match tend_pg::connect(target, &options.connect).await {
        Ok(session) => session,
        Err(e) => return Drill::Other(e.into()),
    };
    let mut mismatches = Vec::new();
    for table in &manifest.tables {
        let sql = format!(
            "SELECT count(*) FROM {}",
            tend_pg::quote::quote_qualified(&table.schema, &table.table)
        );
        let rows: i64 = match restored.query_one(&sql, &[]).await {
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
}

/// The oid of the scratch database `name` when it exists and carries the drill's mark; an
/// error when it exists without it (someone else's database: never dropped).
async fn drill_database(session: &Session, name: &str) -> Result<Option<u32>, BackupServiceError> {
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
        return Err(BackupServiceError::ForeignScratch {
            name: name.to_string(),
        });
    }
    Ok(Some(row.get(0)))
}

/// Drops the drill's scratch database when it is still the one tend made (same oid, mark).
async fn drop_drill_database(
    session: &Session,
    name: &str,
    oid: u32,
) -> Result<(), BackupServiceError> {
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
