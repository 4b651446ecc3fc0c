//! The WAL archive: the files PostgreSQL's `archive_command` hands tend (`tend wal-push`),
//! kept in the backup store beside the backups, compressed, encrypted and named by their
//! content, and handed back to `restore_command` (`tend wal-fetch`).
//!
//! Layout, under the store's `wal/` folder (never a backup: `Store::ids` skips it):
//! ```text
//! wal/<system identifier>/archive.json            what the archive is (written last)
//! wal/<system identifier>/archive-key.age          its X25519 identity, encrypted with the backup keys
//! wal/<system identifier>/<TTTTTTTTXXXXXXXX>/<file>/<sha256>.zst.age   segments, .partial, .backup
//! wal/<system identifier>/history/<TTTTTTTT.history>/<sha256>.zst.age
//! ```
//! Each file is stored once, in one PUT, as zstd then age, in an object named by the
//! SHA-256 of its plain bytes: a push of the same bytes again finds it and succeeds, other
//! bytes under the same name are refused (two servers writing one archive, or a restore
//! that did not start a new timeline), and a fetch checks what it decrypted against the
//! name. The archive has a key of its own, so a push (a process per segment) encrypts to a
//! public key with no passphrase to stretch; fetching opens that key once per process.

mod header;
mod name;
mod spool;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crypto::{Decryption, Encryption, OpenError};
use crate::pipeline::hex;
use crate::store::{Store, StoreError, StoreFailure, WAL_FOLDER};

pub use header::{
    HeaderError, LONG_HEADER_BYTES, SegmentHeader, control_system_identifier, data_directory_system,
};
pub use name::{
    DEFAULT_SEGMENT_SIZE, HISTORY_FOLDER, SegmentName, WalFile, format_lsn, is_segment_size,
    parse_lsn, parse_segment_size,
};
pub use spool::{Spool, SpoolLock, SpoolState, Spooled, SpooledFile};

/// What an archive's `archive.json` says.
pub const ARCHIVE_INFO: &str = "archive.json";
/// The archive's own key, encrypted with the backup keys.
pub const ARCHIVE_KEY: &str = "archive-key.age";
/// How far `backup verify` has read the archive back, per timeline.
pub const CHECKED: &str = "checked.json";
/// The suffix of a stored file's object.
const OBJECT_SUFFIX: &str = ".zst.age";

/// What `checked.json` says: per timeline (8 hex digits), the newest segment read back
/// whole by a verification, with everything before it on that timeline. Stored objects
/// never change (each is named by its contents), so what was read back once need not be
/// read again; the listing (continuity) is still checked every time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Checked {
    pub through: std::collections::BTreeMap<String, String>,
    pub at: String,
}

/// What the archive of one server is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArchiveInfo {
    /// `tend-wal/1`.
    pub format: String,
    /// The server's system identifier, as text (JSON numbers lose 64-bit precision).
    pub system_identifier: String,
    pub segment_size: u64,
    pub server_version: String,
    pub created_at: String,
    /// The public key every file is encrypted for (`age1...`).
    pub recipient: String,
    /// How the archive's key is encrypted (the backup keys, as manifests describe them).
    pub key_encryption: crate::manifest::Encryption,
}

/// Why the archive did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "`{0}` is not the name of a file PostgreSQL archives (a WAL segment, .partial, .backup or .history file)"
    )]
    NotWal(String),
    #[error("{name} is not a WAL segment: {source}")]
    BadSegment {
        name: String,
        #[source]
        source: HeaderError,
    },
    #[error(
        "{name} belongs to the server with system identifier {found}, not to this one ({expected}); nothing was stored"
    )]
    ForeignSystem {
        name: String,
        expected: u64,
        found: u64,
    },
    #[error("{name} does not hold the segment its name says: {reason}; nothing was stored")]
    Misnamed { name: String, reason: String },
    /// The archive holds other bytes under this name: never overwritten.
    #[error(
        "the archive already holds {name} with different contents (stored {stored}, this file {pushed}): two servers may be archiving into one store, or a restored copy kept the timeline; nothing was stored, and PostgreSQL keeps the file until this is resolved"
    )]
    Conflict {
        name: String,
        stored: String,
        pushed: String,
    },
    #[error(
        "the archive holds {name} twice, with different contents ({first} and {second}); it cannot tell which is right"
    )]
    Ambiguous {
        name: String,
        first: String,
        second: String,
    },
    #[error(
        "the store {store} has no WAL archive for the server with system identifier {system}; run `tend pitr enable` on that server first"
    )]
    NoArchive { store: String, system: u64 },
    #[error("the WAL archive's description ({path}) is unreadable: {reason}")]
    BadInfo { path: String, reason: String },
    #[error("{key} does not open the WAL archive's key (it was encrypted for {made_for})")]
    WrongKey { key: &'static str, made_for: String },
    #[error("the WAL archive's key is damaged: {0}")]
    BadKey(String),
    #[error("{name} in the archive is damaged: {reason}")]
    Damaged { name: String, reason: String },
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The store did not answer a spooling push in time.
    #[error("the store did not answer within {}s", .0.as_secs())]
    StoreTimeout(std::time::Duration),
    /// The spool holds another file under this name.
    #[error(
        "the WAL spool {} already holds {name} with different contents (spooled {spooled}, this file {pushed}): two servers may share one spool folder; nothing was spooled, and PostgreSQL keeps the file until this is resolved",
        dir.display()
    )]
    SpoolConflict {
        name: String,
        dir: PathBuf,
        spooled: String,
        pushed: String,
    },
    /// The spool is at its cap.
    #[error(
        "the WAL spool {} is full ({held} of {max} bytes, pitr.spool_max)",
        dir.display()
    )]
    SpoolFull { dir: PathBuf, held: u64, max: u64 },
}

impl From<StoreError> for WalError {
    fn from(err: StoreError) -> WalError {
        WalError::Store(Box::new(err))
    }
}

impl WalError {
    /// What kind of store failure this is, if it is one.
    pub fn store_failure(&self) -> Option<StoreFailure> {
        match self {
            WalError::Store(e) => Some(e.failure()),
            _ => None,
        }
    }
}

/// One stored file: its name and the object holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub file: WalFile,
    /// SHA-256 of the plain bytes (lowercase hex).
    pub sha256: String,
    /// Bytes stored (compressed and encrypted).
    pub bytes: u64,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now: plain and stored bytes.
    Stored { plain: u64, stored: u64 },
    /// The same bytes were in the archive already.
    AlreadyStored,
}

/// A file read and checked for a push, not stored yet.
pub struct ReadForPush {
    pub file: WalFile,
    /// SHA-256 of `plain` (lowercase hex): the stored object's name.
    pub sha256: String,
    pub plain: Vec<u8>,
}

/// How a push compresses and encrypts.
#[derive(Clone)]
pub struct PushOptions {
    /// The archive's public key (`ArchiveInfo::recipient`).
    pub recipient: age::x25519::Recipient,
    /// zstd level.
    pub level: i32,
    /// zstd worker threads (0: one thread, in the caller's).
    pub threads: u32,
}

/// The archive of one server in a store.
pub struct Archive<'a> {
    store: &'a Store,
    system: u64,
}

impl<'a> Archive<'a> {
    pub fn new(store: &'a Store, system: u64) -> Archive<'a> {
        Archive { store, system }
    }

    pub fn system(&self) -> u64 {
        self.system
    }

    /// The path of `name` under this archive's folder.
    fn path(&self, name: &str) -> object_store::path::Path {
        self.store
            .path(WAL_FOLDER, &format!("{}/{name}", self.system))
    }

    fn object_name(file: &WalFile, sha256: &str) -> String {
        format!("{}/{file}/{sha256}{OBJECT_SUFFIX}", file.folder())
    }

    /// The archive's description, if it has been set up.
    pub async fn info(&self) -> Result<Option<ArchiveInfo>, WalError> {
        let path = self.path(ARCHIVE_INFO);
        let Some(bytes) = self.store.get_opt(&path).await? else {
            return Ok(None);
        };
        let info: ArchiveInfo = serde_json::from_slice(&bytes).map_err(|e| WalError::BadInfo {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        if info.system_identifier != self.system.to_string() {
            return Err(WalError::BadInfo {
                path: path.to_string(),
                reason: format!(
                    "it describes the server {}, not {}",
                    info.system_identifier, self.system
                ),
            });
        }
        Ok(Some(info))
    }

    /// The archive's description, which must exist.
    pub async fn require_info(&self) -> Result<ArchiveInfo, WalError> {
        self.info().await?.ok_or_else(|| WalError::NoArchive {
            store: self.store.description.clone(),
            system: self.system,
        })
    }

    /// Sets the archive up with `identity` as its key (stored first, encrypted with the
    /// backup keys, then the description), or returns the archive already there.
    pub async fn create(
        &self,
        encryption: &Encryption,
        server_version: &str,
        segment_size: u64,
        identity: &age::x25519::Identity,
    ) -> Result<(ArchiveInfo, bool), WalError> {
        if let Some(info) = self.info().await? {
            return Ok((info, false));
        }
        let recipient = identity.to_public().to_string();
        let secret = {
            use age::secrecy::ExposeSecret;
            identity.to_string().expose_secret().as_bytes().to_vec()
        };
        let key = encrypt_blocking(encryption.clone(), secret).await?;
        self.store.put(&self.path(ARCHIVE_KEY), key.into()).await?;
        let info = ArchiveInfo {
            format: "tend-wal/1".to_string(),
            system_identifier: self.system.to_string(),
            segment_size,
            server_version: server_version.to_string(),
            created_at: crate::ops::now_rfc3339(),
            recipient,
            key_encryption: crate::manifest::Encryption::age(encryption),
        };
        let bytes = serde_json::to_vec_pretty(&info).expect("archive descriptions serialize");
        self.store
            .put(&self.path(ARCHIVE_INFO), bytes.into())
            .await?;
        Ok((info, true))
    }

    /// In a directory store, gives the archive's folder to the OS user that owns the data
    /// directory `data_dir` (the server writes there), when this process runs as root.
    pub fn give_to_server(&self, data_dir: &Path) -> Result<(), WalError> {
        if let Some(owner) = server_owner_if_root(data_dir)? {
            self.store
                .give_to(WAL_FOLDER, &self.system.to_string(), owner)?;
        }
        Ok(())
    }

    /// Opens the archive's key with the backup keys (a passphrase costs scrypt once).
    pub async fn identity(
        &self,
        info: &ArchiveInfo,
        decryption: &Decryption,
    ) -> Result<age::x25519::Identity, WalError> {
        let path = self.path(ARCHIVE_KEY);
        let Some(stored) = self.store.get_opt(&path).await? else {
            return Err(WalError::BadKey(format!("{path} is missing")));
        };
        let decryption = decryption.clone();
        let made_for = describe_recipients(&info.key_encryption);
        let key_name = decryption.describe();
        let plain = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut reader = decryption.open(&stored[..])?;
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map_err(OpenError::Io)?;
            Ok::<_, OpenError>(out)
        })
        .await
        .map_err(|e| WalError::BadKey(e.to_string()))?
        .map_err(|e| match e {
            OpenError::WrongKey => WalError::WrongKey {
                key: key_name,
                made_for,
            },
            OpenError::Damaged(reason) | OpenError::Excessive(reason) => WalError::BadKey(reason),
            OpenError::Io(e) => WalError::BadKey(e.to_string()),
        })?;
        let text = String::from_utf8(plain).map_err(|_| WalError::BadKey("not text".into()))?;
        text.trim()
            .parse::<age::x25519::Identity>()
            .map_err(|_| WalError::BadKey("not an age identity".into()))
    }

    /// The stored objects of one file (normally one).
    async fn versions(&self, file: &WalFile) -> Result<Vec<StoredFile>, WalError> {
        let folder = format!("{}/{}/{file}", self.system, file.folder());
        let objects = self.store.objects_under(WAL_FOLDER, &folder).await?;
        Ok(objects
            .into_iter()
            .filter_map(|(name, bytes)| {
                let sha256 = name.strip_suffix(OBJECT_SUFFIX)?;
                is_sha256(sha256).then(|| StoredFile {
                    file: *file,
                    sha256: sha256.to_string(),
                    bytes,
                })
            })
            .collect())
    }

    /// Every file stored under one folder (`TTTTTTTTXXXXXXXX` or `history`).
    pub async fn files_in(&self, folder: &str) -> Result<Vec<StoredFile>, WalError> {
        let objects = self
            .store
            .objects_under(WAL_FOLDER, &format!("{}/{folder}", self.system))
            .await?;
        let mut files: Vec<StoredFile> = objects
            .into_iter()
            .filter_map(|(path, bytes)| {
                let (name, object) = path.split_once('/')?;
                let sha256 = object.strip_suffix(OBJECT_SUFFIX)?;
                (is_sha256(sha256) && !object.contains('/')).then_some(())?;
                Some(StoredFile {
                    file: WalFile::parse(name)?,
                    sha256: sha256.to_string(),
                    bytes,
                })
            })
            .collect();
        files.sort_by_key(|f| f.file);
        Ok(files)
    }

    /// The folders the archive has (`TTTTTTTTXXXXXXXX` per 4 GiB of a timeline, and
    /// `history`), sorted.
    pub async fn folders(&self) -> Result<Vec<String>, WalError> {
        Ok(self
            .store
            .folders_under(WAL_FOLDER, &self.system.to_string())
            .await?)
    }

    /// Stores the file at `path` (as `archive_command` gives it). Succeeds only once the
    /// file is in the store, or when the same bytes already were.
    pub async fn push(&self, path: &Path, options: &PushOptions) -> Result<Pushed, WalError> {
        let read = self.read_for_push(path).await?;
        self.push_read(read, options).await
    }

    /// Reads the file at `path` for a push and checks it: a WAL file's name, and for a
    /// segment, its header (this server, the name's position and timeline, its length).
    pub async fn read_for_push(&self, path: &Path) -> Result<ReadForPush, WalError> {
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = WalFile::parse(&shown).ok_or_else(|| WalError::NotWal(shown.clone()))?;
        let plain = tokio::fs::read(path)
            .await
            .map_err(|source| WalError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if file.holds_wal() {
            self.check_segment(&file, &plain)?;
        }
        let sha256 = hex(&Sha256::digest(&plain));
        Ok(ReadForPush {
            file,
            sha256,
            plain,
        })
    }

    /// Stores a file read by [`Archive::read_for_push`].
    pub async fn push_read(
        &self,
        read: ReadForPush,
        options: &PushOptions,
    ) -> Result<Pushed, WalError> {
        if self.stored_already(&read.file, &read.sha256).await? {
            return Ok(Pushed::AlreadyStored);
        }
        let plain = read.plain.len() as u64;
        let sealed = seal(read.plain, options.clone()).await?;
        let stored = sealed.len() as u64;
        self.store
            .put(
                &self.path(&Self::object_name(&read.file, &read.sha256)),
                sealed,
            )
            .await?;
        Ok(Pushed::Stored { plain, stored })
    }

    /// Stores a file sealed earlier (a spooled one): `sealed` is what [`seal`] made of
    /// the plain bytes whose SHA-256 is `sha256`.
    pub async fn push_sealed(
        &self,
        file: &WalFile,
        sha256: &str,
        sealed: Bytes,
    ) -> Result<Pushed, WalError> {
        if self.stored_already(file, sha256).await? {
            return Ok(Pushed::AlreadyStored);
        }
        let stored = sealed.len() as u64;
        self.store
            .put(&self.path(&Self::object_name(file, sha256)), sealed)
            .await?;
        Ok(Pushed::Stored { plain: 0, stored })
    }

    /// Whether the archive holds `file` with these contents; an error when it holds other
    /// contents under that name.
    async fn stored_already(&self, file: &WalFile, sha256: &str) -> Result<bool, WalError> {
        match self.versions(file).await?.first() {
            Some(stored) if stored.sha256 == sha256 => Ok(true),
            Some(stored) => Err(WalError::Conflict {
                name: file.to_string(),
                stored: short(&stored.sha256),
                pushed: short(sha256),
            }),
            None => Ok(false),
        }
    }

    /// Is `plain` the segment `file` names, of this server?
    fn check_segment(&self, file: &WalFile, plain: &[u8]) -> Result<(), WalError> {
        let name = file.to_string();
        let header = SegmentHeader::parse(plain).map_err(|source| WalError::BadSegment {
            name: name.clone(),
            source,
        })?;
        if header.system_identifier != self.system {
            return Err(WalError::ForeignSystem {
                name,
                expected: self.system,
                found: header.system_identifier,
            });
        }
        header
            .check_length(plain.len() as u64)
            .map_err(|source| WalError::BadSegment {
                name: name.clone(),
                source,
            })?;
        let segment = file.segment().expect("segments have one");
        let size = u64::from(header.segment_size);
        if header.page_address != segment.start_lsn(size) {
            return Err(WalError::Misnamed {
                name,
                reason: format!(
                    "its first page is at {}, and {segment} starts at {}",
                    format_lsn(header.page_address),
                    format_lsn(segment.start_lsn(size))
                ),
            });
        }
        if header.timeline > segment.timeline {
            return Err(WalError::Misnamed {
                name,
                reason: format!(
                    "its first page is of timeline {}, later than the name's {}",
                    header.timeline, segment.timeline
                ),
            });
        }
        Ok(())
    }

    /// Finds `file` in the archive, or `None`.
    pub async fn find(&self, file: &WalFile) -> Result<Option<StoredFile>, WalError> {
        let mut versions = self.versions(file).await?;
        match versions.len() {
            0 => Ok(None),
            1 => Ok(versions.pop()),
            _ => Err(WalError::Ambiguous {
                name: file.to_string(),
                first: short(&versions[0].sha256),
                second: short(&versions[1].sha256),
            }),
        }
    }

    /// Reads a stored file back: decrypted, decompressed and checked against its name.
    pub async fn read(
        &self,
        stored: &StoredFile,
        identity: &age::x25519::Identity,
    ) -> Result<Vec<u8>, WalError> {
        let sealed = self
            .store
            .get(&self.path(&Self::object_name(&stored.file, &stored.sha256)))
            .await?;
        let identity = identity.clone();
        let expected = stored.sha256.clone();
        let name = stored.file.to_string();
        tokio::task::spawn_blocking(move || open_sealed(&sealed, &identity, &expected, &name))
            .await
            .map_err(|e| WalError::Damaged {
                name: stored.file.to_string(),
                reason: e.to_string(),
            })?
    }

    /// How far verifications have read the archive back (nothing when never, or when the
    /// record cannot be read: then everything is read again).
    pub async fn checked(&self) -> Result<Checked, WalError> {
        let Some(bytes) = self.store.get_opt(&self.path(CHECKED)).await? else {
            return Ok(Checked::default());
        };
        Ok(serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// Records how far verifications have read the archive back.
    pub async fn set_checked(&self, checked: &Checked) -> Result<(), WalError> {
        let bytes = serde_json::to_vec_pretty(checked).expect("records serialize");
        self.store.put(&self.path(CHECKED), bytes.into()).await?;
        Ok(())
    }

    /// Deletes one stored file (retention).
    pub async fn delete(&self, stored: &StoredFile) -> Result<(), WalError> {
        self.store
            .delete(&self.path(&Self::object_name(&stored.file, &stored.sha256)))
            .await?;
        Ok(())
    }
}

/// The owner (uid, gid) of the data directory `data_dir`, when this process is root and
/// so must hand what it makes for the server (the archive's folder, the spool) to it;
/// `None` otherwise, when what it makes is the server's already.
pub(crate) fn server_owner_if_root(data_dir: &Path) -> Result<Option<(u32, u32)>, WalError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let meta = std::fs::metadata(data_dir).map_err(|source| WalError::Read {
        path: data_dir.to_path_buf(),
        source,
    })?;
    Ok(Some((meta.uid(), meta.gid())))
}

/// Is `command` (a server's `archive_command`) tend's `wal-push`?
pub fn is_tend_archive_command(command: &str) -> bool {
    command.contains(" wal-push ")
}

/// The file a physical restore writes into the data directory: the archive's key, so the
/// restored server's `restore_command` opens WAL without the backup keys.
pub const ARCHIVE_KEY_FILE: &str = "tend-archive.key";

/// Reads an archive key file (`AGE-SECRET-KEY-1...`).
pub fn read_key_file(path: &Path) -> Result<age::x25519::Identity, WalError> {
    let text = std::fs::read_to_string(path).map_err(|source| WalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| WalError::BadKey(format!("{} holds no age identity", path.display())))
}

/// Writes the archive key file, readable by its owner only.
pub fn write_key_file(path: &Path, identity: &age::x25519::Identity) -> Result<(), WalError> {
    use age::secrecy::ExposeSecret;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = format!(
        "# The key of tend's WAL archive, for this data directory's restore_command.\n{}\n",
        identity.to_string().expose_secret()
    );
    std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| WalError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Where `wal-fetch` keeps what it fetched ahead: `pg_wal/tend-prefetch` of the data
/// directory it runs in.
#[derive(Debug, Clone)]
pub struct Prefetch {
    pub dir: PathBuf,
    /// How many segments after the asked one to fetch, in parallel.
    pub count: usize,
}

/// What a fetch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Written to the destination; `prefetched` when it came from the prefetch folder.
    Found { prefetched: bool },
    /// The archive does not have it (PostgreSQL asks for files that may not exist).
    Missing,
}

/// Opens the archive's key once, when a download first needs it: from the store with the
/// backup keys, or as given (the key file a physical restore writes).
pub struct KeyOnce<'k> {
    decryption: Option<&'k Decryption>,
    identity: tokio::sync::OnceCell<age::x25519::Identity>,
}

impl<'k> KeyOnce<'k> {
    pub fn new(decryption: &'k Decryption) -> KeyOnce<'k> {
        KeyOnce {
            decryption: Some(decryption),
            identity: tokio::sync::OnceCell::new(),
        }
    }

    /// The archive's key itself.
    pub fn given(identity: age::x25519::Identity) -> KeyOnce<'static> {
        KeyOnce {
            decryption: None,
            identity: tokio::sync::OnceCell::new_with(Some(identity)),
        }
    }

    /// The archive's key, opened on first use.
    pub async fn get_public(
        &self,
        archive: &Archive<'_>,
        info: &ArchiveInfo,
    ) -> Result<&age::x25519::Identity, WalError> {
        self.get(archive, info).await
    }

    async fn get(
        &self,
        archive: &Archive<'_>,
        info: &ArchiveInfo,
    ) -> Result<&age::x25519::Identity, WalError> {
        let decryption = self.decryption;
        self.identity
            .get_or_try_init(|| async move {
                match decryption {
                    Some(decryption) => archive.identity(info, decryption).await,
                    None => Err(WalError::BadKey("no key was given".to_string())),
                }
            })
            .await
    }
}

impl Archive<'_> {
    /// `restore_command`: writes `file` to `dest`, from the prefetch folder when an earlier
    /// fetch got it there, else from the store, and fetches the segments after it into the
    /// prefetch folder, in parallel, when fewer than half of them are there.
    pub async fn fetch(
        &self,
        file: &WalFile,
        dest: &Path,
        key: &KeyOnce<'_>,
        prefetch: Option<&Prefetch>,
    ) -> Result<Fetched, WalError> {
        let info = self.require_info().await?;
        if let Some(prefetch) = prefetch {
            let ready = prefetch.dir.join(file.to_string());
            if tokio::fs::try_exists(&ready).await.unwrap_or(false) {
                // A copy: PostgreSQL asks for the last segment again when recovery ends,
                // and the prefetched one stays until recovery has passed it.
                copy_into(&ready, dest).await?;
                self.top_up(file, &info, key, prefetch).await;
                return Ok(Fetched::Found { prefetched: true });
            }
        }
        let Some(stored) = self.find(file).await? else {
            return Ok(Fetched::Missing);
        };
        let ahead = async {
            if let Some(prefetch) = prefetch {
                self.top_up(file, &info, key, prefetch).await;
            }
        };
        let this = async {
            let identity = key.get(self, &info).await?;
            let plain = self.read(&stored, identity).await?;
            write_atomically(dest, &plain).await
        };
        let (result, ()) = tokio::join!(this, ahead);
        result?;
        Ok(Fetched::Found { prefetched: false })
    }

    /// Fetches the segments after `file` that the prefetch folder lacks, when it holds
    /// fewer than half of them; removes what is older than `file`. Failures only mean the
    /// next fetch goes to the store itself.
    async fn top_up(
        &self,
        file: &WalFile,
        info: &ArchiveInfo,
        key: &KeyOnce<'_>,
        prefetch: &Prefetch,
    ) {
        let Some(segment) = (match file {
            WalFile::Segment(s) => Some(*s),
            _ => None,
        }) else {
            return;
        };
        let size = info.segment_size;
        let mut wanted = Vec::with_capacity(prefetch.count);
        let mut next = segment;
        for _ in 0..prefetch.count {
            next = next.next(size);
            wanted.push(next);
        }
        let _ = tokio::fs::create_dir_all(&prefetch.dir).await;
        forget_older(&prefetch.dir, &segment).await;
        let mut missing = Vec::new();
        for s in &wanted {
            if !tokio::fs::try_exists(prefetch.dir.join(s.to_string()))
                .await
                .unwrap_or(false)
            {
                missing.push(*s);
            }
        }
        if missing.len() * 2 < wanted.len() {
            return;
        }
        // One listing per 4 GiB folder the wanted segments fall in.
        let mut stored = Vec::new();
        let mut listed: Vec<String> = Vec::new();
        for s in &missing {
            let folder = s.log_prefix();
            if listed.contains(&folder) {
                continue;
            }
            match self.files_in(&folder).await {
                Ok(files) => stored.extend(files),
                Err(_) => return,
            }
            listed.push(folder);
        }
        let found: Vec<StoredFile> = missing
            .iter()
            .filter_map(|s| {
                let mut versions = stored.iter().filter(|f| f.file == WalFile::Segment(*s));
                let first = versions.next()?;
                versions.next().is_none().then(|| first.clone())
            })
            .collect();
        if found.is_empty() {
            return;
        }
        let Ok(identity) = key.get(self, info).await else {
            return;
        };
        let dir = &prefetch.dir;
        futures::stream::iter(found)
            .map(|stored| async move {
                if let Ok(plain) = self.read(&stored, identity).await {
                    let _ = write_atomically(&dir.join(stored.file.to_string()), &plain).await;
                }
            })
            .buffer_unordered(prefetch.count.max(1))
            .collect::<()>()
            .await;
    }
}

/// Removes prefetched segments before `segment` (recovery has passed them) and staging
/// files, so the folder never grows past one batch.
async fn forget_older(dir: &Path, segment: &SegmentName) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = match WalFile::parse(&name) {
            Some(WalFile::Segment(s)) => s < *segment,
            _ => name.ends_with(".tmp"),
        };
        if stale {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

/// Writes `bytes` to `dest` through a temporary file beside it, so a reader never sees a
/// part of it.
async fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), WalError> {
    let mut staging = dest.as_os_str().to_owned();
    staging.push(format!(".{}.tmp", std::process::id()));
    let staging = PathBuf::from(staging);
    let write_err = |source| WalError::Write {
        path: dest.to_path_buf(),
        source,
    };
    tokio::fs::write(&staging, bytes).await.map_err(write_err)?;
    if let Err(source) = tokio::fs::rename(&staging, dest).await {
        let _ = tokio::fs::remove_file(&staging).await;
        return Err(write_err(source));
    }
    Ok(())
}

/// Copies a prefetched file to where PostgreSQL wants it (never a link: PostgreSQL
/// recycles segment files by renaming and overwriting them).
async fn copy_into(from: &Path, dest: &Path) -> Result<(), WalError> {
    let bytes = tokio::fs::read(from)
        .await
        .map_err(|source| WalError::Read {
            path: from.to_path_buf(),
            source,
        })?;
    write_atomically(dest, &bytes).await
}

/// zstd, then age for the archive's key.
/// Compresses and encrypts a file's plain bytes as the archive stores them.
pub async fn seal(plain: Vec<u8>, options: PushOptions) -> Result<Bytes, WalError> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let encryption = Encryption::Recipients(vec![options.recipient.clone()]);
        let mut sealed = Vec::with_capacity(plain.len() / 3 + 1024);
        let encrypted = encryption
            .wrap(&mut sealed)
            .map_err(|e| WalError::Encrypt(e.to_string()))?;
        let mut encoder = zstd::stream::Encoder::new(encrypted, options.level)
            .map_err(|e| WalError::Encrypt(e.to_string()))?;
        if options.threads > 1 {
            encoder
                .multithread(options.threads)
                .map_err(|e| WalError::Encrypt(e.to_string()))?;
        }
        encoder
            .write_all(&plain)
            .and_then(|()| encoder.finish())
            .and_then(|encrypted| encrypted.finish())
            .map_err(|e| WalError::Encrypt(e.to_string()))?;
        Ok(Bytes::from(sealed))
    })
    .await
    .map_err(|e| WalError::Encrypt(e.to_string()))?
}

/// age for the backup keys (the archive's key).
async fn encrypt_blocking(encryption: Encryption, plain: Vec<u8>) -> Result<Vec<u8>, WalError> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut sealed = Vec::new();
        let mut writer = encryption
            .wrap(&mut sealed)
            .map_err(|e| WalError::Encrypt(e.to_string()))?;
        writer
            .write_all(&plain)
            .and_then(|()| writer.finish().map(|_| ()))
            .map_err(|e| WalError::Encrypt(e.to_string()))?;
        Ok(sealed)
    })
    .await
    .map_err(|e| WalError::Encrypt(e.to_string()))?
}

/// Decrypts and decompresses a stored file and checks it against the SHA-256 its object is
/// named by.
fn open_sealed(
    sealed: &[u8],
    identity: &age::x25519::Identity,
    expected: &str,
    name: &str,
) -> Result<Vec<u8>, WalError> {
    use std::io::Read;
    let damaged = |reason: String| WalError::Damaged {
        name: name.to_string(),
        reason,
    };
    let decryption = Decryption::Identities(vec![identity.clone()]);
    let reader = decryption.open(sealed).map_err(|e| match e {
        OpenError::WrongKey => damaged("the archive's key does not open it".to_string()),
        OpenError::Damaged(reason) | OpenError::Excessive(reason) => damaged(reason),
        OpenError::Io(e) => damaged(e.to_string()),
    })?;
    let mut plain = Vec::new();
    zstd::stream::Decoder::new(reader)
        .and_then(|mut d| d.read_to_end(&mut plain))
        .map_err(|e| damaged(e.to_string()))?;
    let sha256 = hex(&Sha256::digest(&plain));
    if sha256 != expected {
        return Err(damaged(format!(
            "its bytes hash to {}, not {}",
            short(&sha256),
            short(expected)
        )));
    }
    Ok(plain)
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The first 12 hex digits of a SHA-256, for messages.
fn short(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}

fn describe_recipients(encryption: &crate::manifest::Encryption) -> String {
    let list: Vec<String> = encryption
        .recipients
        .iter()
        .map(|r| match (&r.kind[..], &r.public_key) {
            ("scrypt", _) => "a passphrase".to_string(),
            (_, Some(key)) => key.clone(),
            (kind, None) => kind.to_string(),
        })
        .collect();
    if list.is_empty() {
        "no recorded key".to_string()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_file_opens_with_the_archive_key_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let identity = age::x25519::Identity::generate();
        let plain: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let sha = hex(&Sha256::digest(&plain));
        let sealed = rt
            .block_on(seal(
                plain.clone(),
                PushOptions {
                    recipient: identity.to_public(),
                    level: 1,
                    threads: 0,
                },
            ))
            .unwrap();
        assert!(sealed.len() < plain.len());
        assert_eq!(open_sealed(&sealed, &identity, &sha, "x").unwrap(), plain);
        let other = age::x25519::Identity::generate();
        assert!(matches!(
            open_sealed(&sealed, &other, &sha, "x"),
            Err(WalError::Damaged { .. })
        ));
        let wrong_sum = "0".repeat(64);
        assert!(matches!(
            open_sealed(&sealed, &identity, &wrong_sum, "x"),
            Err(WalError::Damaged { .. })
        ));
        let mut flipped = sealed.to_vec();
        let at = flipped.len() - 20;
        flipped[at] ^= 1;
        assert!(open_sealed(&flipped, &identity, &sha, "x").is_err());
    }
}
