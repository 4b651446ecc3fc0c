//! A backup's manifest: what it holds and how to read it back. Written last, so a backup
//! without one never counts as usable. It names encryption recipients by their public
//! fingerprints and never holds a key or anything derived from a passphrase.

use serde::{Deserialize, Serialize};

/// The manifest's object name inside a backup's folder.
pub const MANIFEST: &str = "manifest.json";
/// The data object: pg_dump's custom format, zstd, then age.
pub const DATA: &str = "data.dump.zst.age";
/// Roles and tablespaces (`--globals`): `pg_dumpall --globals-only`, zstd, then age.
pub const GLOBALS: &str = "globals.sql.zst.age";
/// The result of the last `verify`, written beside the manifest.
pub const VERIFICATION: &str = "verification.json";
/// Written when a backup starts and refreshed while it runs; says who runs it, so `prune`
/// can tell a running backup from the leftover of one that was killed.
pub const RUNNING: &str = "running.json";

/// Who is taking a backup, and when it last said so.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Running {
    pub host: String,
    pub pid: u32,
    pub started_at: String,
    /// Seconds since the Unix epoch of the last refresh.
    pub heartbeat: i64,
    /// The multipart uploads it started (S3), recorded before their first part: `prune`
    /// aborts them when the backup was killed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uploads: Vec<RunningUpload>,
}

/// A multipart upload a running backup started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunningUpload {
    /// The object's path in the bucket.
    pub path: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// `tend-backup/1`.
    pub format: String,
    pub id: String,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    pub started_at: String,
    pub finished_at: String,
    /// Bytes pg_dump wrote.
    pub raw_bytes: u64,
    /// Bytes stored (compressed and encrypted).
    pub stored_bytes: u64,
    pub objects: Vec<StoredObject>,
    pub compression: Compression,
    pub encryption: Encryption,
    /// Rows per table, counted in the dump's own snapshot.
    pub tables: Vec<TableRows>,
    pub tend_version: String,
    /// A physical backup (the whole cluster, through BASE_BACKUP), with where it sits in
    /// the WAL; absent for a logical one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<Physical>,
    /// SHA-256 of this manifest's JSON written with `checksum` absent: a damaged manifest is
    /// caught like a damaged data object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut bare = self.clone();
        bare.checksum = None;
        let bytes = serde_json::to_vec(&bare).expect("manifests serialize");
        crate::pipeline::hex(&Sha256::digest(&bytes))
    }

    /// A manifest as read from the store (any bytes: the store is outside input).
    pub fn from_stored_bytes(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The manifest as stored: pretty JSON carrying its own checksum.
    pub fn to_stored_bytes(&self) -> Vec<u8> {
        let mut sealed = self.clone();
        sealed.checksum = Some(self.digest());
        serde_json::to_vec_pretty(&sealed).expect("manifests serialize")
    }

    /// Does the stored checksum match the contents? (Manifests without one pass.)
    pub fn checksum_matches(&self) -> bool {
        match &self.checksum {
            Some(sum) => *sum == self.digest(),
            None => true,
        }
    }
}

/// The data object of a physical backup: the server's tar stream, zstd, then age.
pub const BASE: &str = "base.tar.zst.age";
/// PostgreSQL's own `backup_manifest` of a physical backup (also inside the tar), zstd then
/// age: an incremental backup reads its parent's from here.
pub const PG_MANIFEST: &str = "backup_manifest.zst.age";

/// Where a physical backup sits in the WAL, and what else it needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Physical {
    /// The server's system identifier (as text: JSON numbers lose 64-bit precision).
    pub system_identifier: String,
    /// The timeline the backup started on.
    pub timeline: u32,
    /// Where the WAL replay of a restore starts, and the LSN it must reach before the
    /// copy is consistent (PostgreSQL's `backup_label` and manifest).
    pub start_lsn: String,
    pub stop_lsn: String,
    /// The first and last WAL segments the backup needs, archived before its manifest was
    /// written.
    pub start_wal: String,
    pub stop_wal: String,
    pub segment_size: u64,
    /// When the server had ended the backup (RFC 3339, to the nanosecond): the backup is
    /// consistent by then, so it can restore to any time after it.
    pub stop_time: String,
    /// The server's next transaction id once the backup had finished: it can restore to
    /// a transaction from this one on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_xid: Option<u64>,
    /// PostgreSQL 17+: the backup this one is an increment of (restore combines the chain
    /// with pg_combinebackup); absent for a full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_of: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredObject {
    pub name: String,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

impl Compression {
    /// What every tend backup uses: zstd at `level`.
    pub fn zstd(level: i32) -> Compression {
        Compression {
            algorithm: "zstd".to_string(),
            level,
        }
    }
}

impl Encryption {
    /// age, for `encryption`'s recipients (public facts only).
    pub fn age(encryption: &crate::crypto::Encryption) -> Encryption {
        Encryption {
            scheme: "age".to_string(),
            recipients: encryption.describe(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Encryption {
    pub scheme: String,
    pub recipients: Vec<RecipientInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecipientInfo {
    /// `scrypt` (a passphrase) or `x25519`.
    pub kind: String,
    /// For x25519: the recipient's public key (age1...), which is public by design.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableRows {
    pub schema: String,
    pub table: String,
    pub rows: i64,
}

/// What `verify` found, kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verification {
    pub verified_at: String,
    pub ok: bool,
    /// `read` (checksums, decryption, decompression, archive) or `restore` (a drill).
    pub level: String,
    pub message: String,
}
