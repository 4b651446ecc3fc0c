//! Archiving a rule's rows to the backup store (`action = "archive-to-store"`): the rows
//! as JSON lines (`row_to_json`), zstd-compressed and age-encrypted, with a manifest.
//!
//! Nothing is lost on the way, and the application's tables are held no longer than by any
//! purge: a batch moves its rows into `tend.retention_staging` in the statement that
//! deletes them (a short transaction sized to the lock budget, as every purge's batch);
//! then [`RuleRun::flush`] stores staged rows in large objects, each in a transaction of
//! tend's own that records the object in `tend.retention_archive` and takes its rows out
//! of staging. A store that refuses, or a kill at any point, leaves rows in the table or in
//! staging, never nowhere; the next run stores what is staged first. An object whose
//! transaction did not commit is listed by no manifest, and its rows are stored again.
//! Each run's batches are listed by a manifest in the rule's folder, written when the rule
//! finishes (or by the next run, when one was killed first).
//!
//! Layout, under the store's `retention/` folder (never a backup, never pruned):
//!
//! ```text
//! retention/<system identifier>/<database>-<oid>/<rule>/
//!     keys/<run>.age                      the run's batch key, encrypted with the backup keys
//!     <id>-<nonce>.jsonl.zst.age          one batch: age(zstd(JSON lines)), to the run's key
//!     manifest-<first batch>.json         the batches of one run, their rows, sizes, sha256
//! ```
//!
//! Batches are encrypted to a key of their run, and that key once with the backup keys: a
//! passphrase costs scrypt's deliberate fraction of a second, once per run rather than
//! once per batch. The stock `age` CLI opens both: first the key, then a batch with it as
//! the identity.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tend_backup::manifest::RecipientInfo;
use tend_backup::store::{RETENTION_FOLDER, StoreError};
use tend_backup::{Decryption, Encryption, Store};

use crate::settings::BackupKeys;
use crate::state::{StateMigration, StateOwner};

/// tend's state for archived batches: `tend.retention_archive`.
pub const RETENTION_STATE: StateOwner = StateOwner {
    owner: "cleanup",
    holds: "table retention_archive (each batch of rows archived to the backup store)",
    migrations: &[StateMigration {
        name: "20261206_000000_retention_archive",
        sql: include_str!("20261206_000000_retention_archive.sql"),
    }],
};

/// The `format` of a manifest this version writes.
pub const MANIFEST_FORMAT: &str = "tend-retention-archive-1";

/// Why rows could not be archived, or archived rows read back.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "archived rows are always encrypted, and {0}: set BACKUP_ENCRYPTION_KEY (a passphrase) or BACKUP_AGE_RECIPIENTS (age public keys)"
    )]
    Keys(String),
    #[error("reading archived rows needs the backup key: {0}")]
    Decrypt(String),
    #[error("cannot encrypt archived rows: {0}")]
    Encrypt(String),
    #[error("cannot set up tend's record of archived rows: {0}")]
    State(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database refused the record of archived rows: {}", tend_pg::error_text(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("archived batch {object} is damaged: {reason}")]
    Damaged { object: String, reason: String },
    #[error("{} already exists and is not empty: choose a new directory for the archived rows", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The database archived rows came from, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedDatabase {
    pub name: String,
    pub oid: u32,
    /// The server's system identifier (as text: JSON numbers lose its digits), when the
    /// role may read it.
    pub system_identifier: Option<String>,
}

/// The backup store, opened for one database's archived rows.
pub struct StoreArchive {
    store: Store,
    encryption: Encryption,
    database: ArchivedDatabase,
    /// `<system identifier>/<database>-<oid>`, under [`RETENTION_FOLDER`].
    folder: String,
}

impl std::fmt::Debug for StoreArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArchive")
            .field("store", &self.store.description)
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

impl StoreArchive {
    /// Checks the keys can encrypt and the store takes a write (in seconds, with few
    /// retries), sets up `tend.retention_archive` (tend's state migrations), and reads
    /// which database this is, before any row is touched.
    pub async fn prepare(
        database: &tend_pg::Database,
        store: Store,
        keys: &BackupKeys,
    ) -> Result<StoreArchive, ArchiveError> {
        let encryption = keys.encryption().map_err(|e| match e {
            crate::settings::KeyError::Missing => {
                ArchiveError::Keys("no key is configured".to_string())
            }
            other => ArchiveError::Keys(other.to_string()),
        })?;
        store.probe().await?;
        crate::state::ensure_owner(RETENTION_STATE, database)
            .await
            .map_err(ArchiveError::State)?;
        let session = database
            .session()
            .await
            .map_err(|e| ArchiveError::State(e.to_string()))?;
        let identity = tend_pg::identity::DatabaseIdentity::read(&session).await?;
        let system = identity.server.system_identifier.map(|s| s.to_string());
        let folder = format!(
            "{}/{}-{}",
            system.as_deref().unwrap_or("unknown-server"),
            safe_name(&identity.name),
            identity.oid
        );
        Ok(StoreArchive {
            store,
            encryption,
            database: ArchivedDatabase {
                name: identity.name,
                oid: identity.oid,
                system_identifier: system,
            },
            folder,
        })
    }

    /// The rule's folder. A name that is not a safe path part as it is gets a short hash
    /// of itself, so two rules never share one.
    fn rule_folder(&self, rule: &str) -> String {
        let safe = safe_name(rule);
        if safe == rule {
            format!("{}/{safe}", self.folder)
        } else {
            let hash = format!("{:x}", Sha256::digest(rule.as_bytes()));
            format!("{}/{safe}-{}", self.folder, &hash[..8])
        }
    }

    async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store
            .put(&self.store.path(RETENTION_FOLDER, relative), bytes.into())
            .await
    }

    /// Starts a rule's run: stores what a killed run left staged, and lists what it
    /// left unlisted. The run's batch key is stored with its first batch.
    pub(crate) async fn start_rule(
        &self,
        client: &tokio_postgres::Client,
        rule: &str,
        table: &str,
    ) -> Result<RuleRun<'_>, ArchiveError> {
        let run = RuleRun {
            archive: self,
            rule: rule.to_string(),
            table: table.to_string(),
            key: tokio::sync::OnceCell::new(),
        };
        run.flush(client).await?;
        self.write_manifests(client, rule).await?;
        Ok(run)
    }

    /// A fresh key for a run's batches, stored encrypted with the backup keys: how batches
    /// are encrypted to it, and its object.
    async fn new_batch_key(&self, rule: &str) -> Result<(Encryption, String), ArchiveError> {
        let key = age::x25519::Identity::generate();
        let key_object = format!("{}/keys/{}.age", self.rule_folder(rule), unique_stem());
        let wrapped = encrypt(&self.encryption, key.to_string().expose_secret().as_bytes())
            .map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
        self.put(&key_object, wrapped).await?;
        Ok((Encryption::Recipients(vec![key.to_public()]), key_object))
    }

    /// Writes a manifest for the rule's recorded batches no manifest lists yet (a run's,
    /// at its end; a killed run's, at the next start), then records that it did. A
    /// manifest is named by its first batch, so writing it again after a kill between the
    /// two steps writes the same object.
    pub(crate) async fn write_manifests(
        &self,
        client: &tokio_postgres::Client,
        rule: &str,
    ) -> Result<u64, ArchiveError> {
        let rows = client
            .query(
                "SELECT id, table_name, object, key_object, rows, bytes, sha256,
                        to_char(archived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                   FROM tend.retention_archive
                  WHERE rule = $1 AND manifest IS NULL
                  ORDER BY id",
                &[&rule],
            )
            .await?;
        // Grouped by folder: a database restored elsewhere keeps its old records, whose
        // objects stay where they were written.
        let mut by_folder: BTreeMap<String, Vec<&tokio_postgres::Row>> = BTreeMap::new();
        for row in &rows {
            let object: &str = row.get(2);
            let folder = object.rsplit_once('/').map_or("", |(f, _)| f).to_string();
            by_folder.entry(folder).or_default().push(row);
        }
        let mut listed = 0;
        for (folder, records) in by_folder {
            let table: String = records[0].get(1);
            let columns = client
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
                       FROM pg_attribute a
                      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                      ORDER BY a.attnum",
                    &[&table],
                )
                .await?
                .iter()
                .map(|c| ArchivedColumn {
                    name: c.get(0),
                    data_type: c.get(1),
                })
                .collect();
            let relative = |path: &str| {
                path.strip_prefix(&folder)
                    .map_or(path, |p| p.trim_start_matches('/'))
                    .to_string()
            };
            let batches: Vec<ArchivedBatch> = records
                .iter()
                .map(|r| ArchivedBatch {
                    object: relative(r.get(2)),
                    key: relative(r.get(3)),
                    rows: r.get::<_, i64>(4) as u64,
                    bytes: r.get::<_, i64>(5) as u64,
                    sha256: r.get(6),
                    archived_at: r.get(7),
                })
                .collect();
            let first = batches[0]
                .object
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string();
            let manifest = ArchiveManifest {
                format: MANIFEST_FORMAT.to_string(),
                rule: rule.to_string(),
                table,
                database: folder
                    .strip_prefix(&self.folder)
                    .is_some_and(|rest| rest.starts_with('/'))
                    .then(|| self.database.clone()),
                columns,
                encoding: "one JSON object per line (row_to_json), zstd-compressed, then age-encrypted to the batch's key; each key is age-encrypted with the backup keys".to_string(),
                keys_encrypted_to: self.encryption.describe(),
                rows: batches.iter().map(|b| b.rows).sum(),
                batches,
                written_at: now_utc(),
                tend_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let path = format!("{folder}/manifest-{first}.json");
            let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
            self.put(&path, bytes).await?;
            let ids: Vec<i64> = records.iter().map(|r| r.get(0)).collect();
            client
                .execute(
                    "UPDATE tend.retention_archive SET manifest = $1 WHERE id = ANY($2)",
                    &[&path, &ids],
                )
                .await?;
            listed += ids.len() as u64;
        }
        Ok(listed)
    }
}

/// Where a purge moves an archive-to-store rule's rows: `tend.retention_staging`, labelled
/// with the rule's name.
pub(crate) fn staging(rule: &str) -> tend_lifecycle::MoveTo {
    tend_lifecycle::MoveTo::JsonRows {
        table: tend_schema::model::QualifiedName::new("tend", "retention_staging"),
        label: rule.to_string(),
    }
}

/// The most rows one stored batch holds.
const BATCH_ROWS: usize = 50_000;
/// A batch stops taking rows once their JSON passes this size (before compression).
const BATCH_BYTES: usize = 32 << 20;
/// Staged rows are read in pages of this many.
const PAGE_ROWS: i64 = 2_000;

/// One rule's run: its batch key, made when the first batch is stored.
pub(crate) struct RuleRun<'a> {
    archive: &'a StoreArchive,
    rule: String,
    /// The table, as SQL names it.
    table: String,
    key: tokio::sync::OnceCell<(Encryption, String)>,
}

impl RuleRun<'_> {
    /// Stores every staged row of the rule, batch by batch; returns how many. Each batch is
    /// a transaction that locks its staged rows (a concurrent run skips them), stores the
    /// object, records it and takes its rows out of staging: all of it, or none.
    pub(crate) async fn flush(&self, client: &tokio_postgres::Client) -> Result<u64, ArchiveError> {
        let mut stored = 0;
        loop {
            client.batch_execute("BEGIN").await?;
            let result = self.store_batch(client).await;
            let result = match result {
                Ok(rows) => client
                    .batch_execute("COMMIT")
                    .await
                    .map(|()| rows)
                    .map_err(ArchiveError::from),
                Err(e) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            };
            match result? {
                0 => return Ok(stored),
                rows => stored += rows,
            }
        }
    }

    /// Inside a transaction: one batch of staged rows to the store; 0 when none is staged.
    async fn store_batch(&self, client: &tokio_postgres::Client) -> Result<u64, ArchiveError> {
        let mut ids: Vec<i64> = Vec::new();
        let mut lines: Vec<u8> = Vec::new();
        let mut after = 0i64;
        while ids.len() < BATCH_ROWS && lines.len() < BATCH_BYTES {
            let page = (BATCH_ROWS - ids.len()).min(PAGE_ROWS as usize) as i64;
            let rows = client
                .query(
                    "SELECT id, row_json FROM tend.retention_staging
                      WHERE label = $1 AND id > $2
                      ORDER BY id LIMIT $3
                      FOR UPDATE SKIP LOCKED",
                    &[&self.rule, &after, &page],
                )
                .await?;
            for row in &rows {
                if lines.len() >= BATCH_BYTES {
                    break;
                }
                ids.push(row.get(0));
                lines.extend_from_slice(row.get::<_, &str>(1).as_bytes());
                lines.push(b'\n');
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == page => after = last.get(0),
                _ => break,
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let (encryption, key_object) = self
            .key
            .get_or_try_init(|| self.archive.new_batch_key(&self.rule))
            .await?;
        let compressed =
            zstd::encode_all(lines.as_slice(), 3).map_err(|e| ArchiveError::Write {
                path: PathBuf::from("(memory)"),
                source: e,
            })?;
        drop(lines);
        let bytes =
            encrypt(encryption, &compressed).map_err(|e| ArchiveError::Encrypt(e.to_string()))?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let size = bytes.len() as i64;
        // Named by its first staged row, with a nonce: a stored batch is never overwritten,
        // not even when a sequence goes back (a database restored to an earlier point).
        let object = format!(
            "{}/{:012}-{}.jsonl.zst.age",
            self.archive.rule_folder(&self.rule),
            ids[0],
            unique_stem()
        );
        self.archive.put(&object, bytes).await?;
        client
            .execute(
                "INSERT INTO tend.retention_archive
                        (rule, table_name, object, key_object, rows, bytes, sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &self.rule,
                    &self.table,
                    &object,
                    key_object,
                    &(ids.len() as i64),
                    &size,
                    &sha256,
                ],
            )
            .await?;
        client
            .execute(
                "DELETE FROM tend.retention_staging WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(ids.len() as u64)
    }
}

/// One run's batches of one rule: `manifest-<first batch>.json` in the rule's folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveManifest {
    pub format: String,
    pub rule: String,
    /// The table, as SQL names it.
    pub table: String,
    /// `None` for batches recorded under another database's folder (this database was
    /// restored from one).
    pub database: Option<ArchivedDatabase>,
    /// The table's columns when the manifest was written.
    pub columns: Vec<ArchivedColumn>,
    pub encoding: String,
    /// Who the batch keys are encrypted to (public facts only).
    pub keys_encrypted_to: Vec<RecipientInfo>,
    pub rows: u64,
    pub batches: Vec<ArchivedBatch>,
    pub written_at: String,
    pub tend_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedColumn {
    pub name: String,
    pub data_type: String,
}

/// One stored batch; paths are relative to the manifest's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedBatch {
    pub object: String,
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    /// Of the stored (encrypted) bytes.
    pub sha256: String,
    pub archived_at: String,
}

/// What the store holds for one rule of one database: `tend cleanup archived`.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedRule {
    /// The rule's folder under `retention/`.
    pub folder: String,
    pub database: Option<String>,
    pub rule: String,
    pub table: String,
    pub manifests: usize,
    pub batches: usize,
    pub rows: u64,
    pub bytes: u64,
    pub first_archived_at: Option<String>,
    pub last_archived_at: Option<String>,
    /// Batch objects no manifest lists: a batch whose run was killed before its manifest
    /// (the next `tend cleanup` lists it), or one the database rolled back (its rows are
    /// still in the table; the object can go).
    pub unlisted: usize,
    #[serde(skip)]
    listed: Vec<(String, ArchivedBatch)>,
}

/// Everything the store's `retention/` folder holds, per rule folder, from the manifests
/// (reads the store only: it works without the database). `rule` keeps one rule's.
pub async fn archived(
    store: &Store,
    rule: Option<&str>,
) -> Result<Vec<ArchivedRule>, ArchiveError> {
    let objects = store.objects_under(RETENTION_FOLDER, "").await?;
    let mut rules: BTreeMap<String, ArchivedRule> = BTreeMap::new();
    let mut batch_objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, _) in &objects {
        let Some((folder, name)) = path.rsplit_once('/') else {
            continue;
        };
        if name.ends_with(".jsonl.zst.age") {
            batch_objects
                .entry(folder.to_string())
                .or_default()
                .insert(name.to_string());
        }
        if !(name.starts_with("manifest-") && name.ends_with(".json")) {
            continue;
        }
        let bytes = store.get(&store.path(RETENTION_FOLDER, path)).await?;
        let manifest: ArchiveManifest =
            serde_json::from_slice(&bytes).map_err(|e| ArchiveError::Damaged {
                object: path.clone(),
                reason: format!("its manifest is not readable JSON ({e})"),
            })?;
        if rule.is_some_and(|r| r != manifest.rule) {
            continue;
        }
        let entry = rules
            .entry(folder.to_string())
            .or_insert_with(|| ArchivedRule {
                folder: folder.to_string(),
                database: None,
                rule: manifest.rule.clone(),
                table: manifest.table.clone(),
                manifests: 0,
                batches: 0,
                rows: 0,
                bytes: 0,
                first_archived_at: None,
                last_archived_at: None,
                unlisted: 0,
                listed: Vec::new(),
            });
        entry.manifests += 1;
        if let Some(database) = &manifest.database {
            entry.database = Some(database.name.clone());
        }
        entry.listed.extend(
            manifest
                .batches
                .into_iter()
                .map(|b| (folder.to_string(), b)),
        );
    }
    let mut out: Vec<ArchivedRule> = rules.into_values().collect();
    for rule in &mut out {
        rule.listed.sort_by(|a, b| a.1.object.cmp(&b.1.object));
        // Two manifests may list a batch (two runs wrote one at once): count it once.
        rule.listed.dedup_by(|a, b| a.1.object == b.1.object);
        rule.batches = rule.listed.len();
        rule.rows = rule.listed.iter().map(|(_, b)| b.rows).sum();
        rule.bytes = rule.listed.iter().map(|(_, b)| b.bytes).sum();
        rule.first_archived_at = rule.listed.iter().map(|(_, b)| b.archived_at.clone()).min();
        rule.last_archived_at = rule.listed.iter().map(|(_, b)| b.archived_at.clone()).max();
        let listed: BTreeSet<&str> = rule.listed.iter().map(|(_, b)| b.object.as_str()).collect();
        rule.unlisted = batch_objects.get(&rule.folder).map_or(0, |all| {
            all.iter().filter(|o| !listed.contains(o.as_str())).count()
        });
    }
    Ok(out)
}

/// What [`read_out`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ReadOut {
    pub directory: PathBuf,
    pub files: Vec<ReadOutFile>,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadOutFile {
    pub rule: String,
    pub table: String,
    /// `<database>-<rule>.jsonl`: every listed batch's rows, oldest batch first.
    pub path: PathBuf,
    pub rows: u64,
}

/// Decrypts the listed batches of `rules` into `out` (a new directory): one JSON-lines
/// file per rule folder. Each object is checked against its manifest's size and sha256
/// before it is opened.
pub async fn read_out(
    store: &Store,
    keys: &BackupKeys,
    rules: &[ArchivedRule],
    out: &Path,
) -> Result<ReadOut, ArchiveError> {
    if !crate::state::is_new_directory(out) {
        return Err(ArchiveError::Exists(out.to_path_buf()));
    }
    let decryption = keys
        .decryption()
        .map_err(|e| ArchiveError::Decrypt(e.to_string()))?;
    let created = !out.exists();
    std::fs::create_dir_all(out).map_err(|source| ArchiveError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let result = read_out_into(store, &decryption, rules, out).await;
    if result.is_err() {
        // Nothing half-read is left: the directory goes if this made it, else its files.
        if created {
            let _ = std::fs::remove_dir_all(out);
        } else if let Ok(entries) = std::fs::read_dir(out) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    result
}

async fn read_out_into(
    store: &Store,
    decryption: &Decryption,
    rules: &[ArchivedRule],
    out: &Path,
) -> Result<ReadOut, ArchiveError> {
    let written = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Write { path, source }
    };
    let mut files = Vec::new();
    let mut total = 0;
    for rule in rules {
        let name = format!(
            "{}-{}.jsonl",
            safe_name(rule.database.as_deref().unwrap_or("unknown")),
            safe_name(&rule.rule)
        );
        let path = out.join(name);
        let mut file = std::fs::File::create(&path).map_err(written(&path))?;
        let mut batch_keys: BTreeMap<String, Decryption> = BTreeMap::new();
        let mut rows = 0;
        for (folder, batch) in &rule.listed {
            let object = format!("{folder}/{}", batch.object);
            let key_object = format!("{folder}/{}", batch.key);
            if !batch_keys.contains_key(&key_object) {
                let bytes = store
                    .get(&store.path(RETENTION_FOLDER, &key_object))
                    .await?;
                let text = decrypt(decryption, &bytes).map_err(|reason| {
                    ArchiveError::Decrypt(format!(
                        "{} does not open {key_object} ({reason})",
                        decryption.describe()
                    ))
                })?;
                let key =
                    Decryption::identities_from(&String::from_utf8_lossy(&text)).map_err(|_| {
                        ArchiveError::Damaged {
                            object: key_object.clone(),
                            reason: "it does not hold an age identity".to_string(),
                        }
                    })?;
                batch_keys.insert(key_object.clone(), key);
            }
            let damaged = |reason: String| ArchiveError::Damaged {
                object: object.clone(),
                reason,
            };
            let bytes = store.get(&store.path(RETENTION_FOLDER, &object)).await?;
            if bytes.len() as u64 != batch.bytes
                || format!("{:x}", Sha256::digest(&bytes)) != batch.sha256
            {
                return Err(damaged(
                    "its size or sha256 is not what its manifest says".to_string(),
                ));
            }
            let compressed = decrypt(&batch_keys[&key_object], &bytes).map_err(&damaged)?;
            let lines = zstd::decode_all(compressed.as_slice())
                .map_err(|e| damaged(format!("it does not decompress ({e})")))?;
            let count = lines.iter().filter(|b| **b == b'\n').count() as u64;
            if count != batch.rows {
                return Err(damaged(format!(
                    "it holds {count} rows, and its manifest says {}",
                    batch.rows
                )));
            }
            file.write_all(&lines).map_err(written(&path))?;
            rows += count;
        }
        file.sync_all().map_err(written(&path))?;
        total += rows;
        files.push(ReadOutFile {
            rule: rule.rule.clone(),
            table: rule.table.clone(),
            path,
            rows,
        });
    }
    Ok(ReadOut {
        directory: out.to_path_buf(),
        files,
        rows: total,
    })
}

fn encrypt(encryption: &Encryption, bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut writer = encryption
        .wrap(Vec::with_capacity(bytes.len() + 256))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    writer.write_all(bytes)?;
    writer.finish()
}

fn decrypt(decryption: &Decryption, bytes: &[u8]) -> Result<Vec<u8>, String> {
    use tend_backup::crypto::OpenError;
    let mut reader = decryption.open(bytes).map_err(|e| match e {
        OpenError::WrongKey => "the key does not open it".to_string(),
        OpenError::Damaged(reason) | OpenError::Excessive(reason) => reason,
        OpenError::Io(e) => e.to_string(),
    })?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| format!("it does not decrypt ({e})"))?;
    Ok(out)
}

/// A name as a store path part: letters, digits, `.`, `_` and `-` kept, the rest `_`.
fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match safe.trim_matches('.') {
        "" => "_".to_string(),
        _ => safe,
    }
}

/// A name no other run or batch takes: the time in nanoseconds, in hex.
fn unique_stem() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

fn now_utc() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_path_parts() {
        assert_eq!(safe_name("finished-jobs"), "finished-jobs");
        assert_eq!(safe_name("a/b c"), "a_b_c");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name("Übung"), "_bung");
    }

    #[test]
    fn a_batch_round_trips_through_its_key() {
        let key = age::x25519::Identity::generate();
        let encryption = Encryption::Recipients(vec![key.to_public()]);
        let sealed = encrypt(&encryption, b"{\"id\":1}\n").unwrap();
        let opened = Decryption::identities_from(key.to_string().expose_secret()).unwrap();
        assert_eq!(decrypt(&opened, &sealed).unwrap(), b"{\"id\":1}\n");
        let other = Decryption::identities_from(
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret(),
        )
        .unwrap();
        assert!(decrypt(&other, &sealed).is_err());
    }
}
