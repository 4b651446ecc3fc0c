//! The backup store: a local directory or an S3-compatible bucket, through `object_store`.
//! Only this module talks to object storage. The store is its own catalog: each backup is
//! a folder `<id>/` holding its data objects and, written last, `manifest.json`.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// The store's folder of WAL archives (`crate::wal`): never a backup, never a leftover.
pub const WAL_FOLDER: &str = "wal";

/// The store's folder of rows retention rules archived (`tend cleanup`'s
/// `archive-to-store`): never a backup, never a leftover.
pub const RETENTION_FOLDER: &str = "retention";

/// Whether a folder at the top of the store holds something other than one backup.
fn reserved(name: &str) -> bool {
    name == WAL_FOLDER || name == RETENTION_FOLDER
}

/// Where backups live.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// `BACKUP_DIR`.
    Directory(std::path::PathBuf),
    /// `BACKUP_S3_BUCKET` and friends; credentials come from the standard AWS variables.
    S3 {
        bucket: String,
        region: Option<String>,
        endpoint: Option<String>,
        force_path_style: bool,
        prefix: Option<String>,
        /// From the settings (tend.toml, .env, the environment); `None`: object_store's
        /// own search of the environment and the instance's role.
        credentials: Option<S3Credentials>,
    },
}

/// An S3 access key as configured.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub key_id: String,
    pub secret: age::secrecy::SecretString,
    pub session_token: Option<age::secrecy::SecretString>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the backup directory {}: {source}", path.display())]
    Directory {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the backup store {store} failed to {action} {path}: {source}")]
    Object {
        store: String,
        action: &'static str,
        path: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("the S3 store is not usable: {0}")]
    S3Config(String),
    /// The probe before a backup (write and delete a small object) failed.
    #[error(
        "the backup store {store} is not usable: {action} a probe object failed: {source}; nothing was dumped"
    )]
    Unusable {
        store: String,
        /// `S3` or `directory`, for the hint.
        kind: StoreKind,
        action: &'static str,
        #[source]
        source: Box<object_store::Error>,
    },
}

impl StoreError {
    /// What kind of failure this is, read from the typed errors underneath (see
    /// [`StoreFailure::of`]); a store configuration that cannot be used is `Other`.
    pub fn failure(&self) -> StoreFailure {
        match self {
            StoreError::S3Config(_) => StoreFailure::Other,
            other => StoreFailure::of(other),
        }
    }
}

/// What kind of failure a store error is, so that callers can say what to do without
/// reading a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// The store refused tend's credentials: HTTP 401 or 403 (object_store's
    /// `PermissionDenied` and `Unauthenticated`). A directory tend may not write in is not
    /// this: its errors name the directory to fix.
    Denied,
    /// The object (or the bucket) is not there.
    NotFound,
    /// No space is left on the disk being written (ENOSPC, or a quota: EDQUOT).
    Full,
    /// The store did not answer: the connection was refused, reset or timed out.
    Unavailable,
    Other,
}

impl StoreFailure {
    /// The first kind of failure that `err` or one of its sources shows, walking the
    /// `source()` chain (and into the error an `io::Error` wraps) and looking at each link
    /// as the type it is: `object_store::Error` (its permission and not-found variants),
    /// object_store's `HttpError` (its connect and timeout kinds) and `std::io::Error` (its
    /// kind). Never from the text of a message.
    pub fn of(err: &(dyn std::error::Error + 'static)) -> StoreFailure {
        let mut link = Some(err);
        while let Some(err) = link {
            if let Some(failure) = Self::of_link(err) {
                return failure;
            }
            link = match err.downcast_ref::<std::io::Error>() {
                // io::Error's own source() skips the error it wraps.
                Some(io) => match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                    None => err.source(),
                },
                None => err.source(),
            };
        }
        StoreFailure::Other
    }

    fn of_link(err: &(dyn std::error::Error + 'static)) -> Option<StoreFailure> {
        use std::io::ErrorKind;
        // A boxed source (as `StoreError` holds it) is a link of type `Box<_>`.
        let store_error = err.downcast_ref::<object_store::Error>().or_else(|| {
            err.downcast_ref::<Box<object_store::Error>>()
                .map(|boxed| &**boxed)
        });
        if let Some(err) = store_error {
            return match err {
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => Some(StoreFailure::Denied),
                object_store::Error::NotFound { .. } => Some(StoreFailure::NotFound),
                _ => None,
            };
        }
        if let Some(err) = err.downcast_ref::<object_store::client::HttpError>() {
            return match err.kind() {
                object_store::client::HttpErrorKind::Connect
                | object_store::client::HttpErrorKind::Timeout
                | object_store::client::HttpErrorKind::Interrupted => {
                    Some(StoreFailure::Unavailable)
                }
                _ => None,
            };
        }
        if let Some(err) = err.downcast_ref::<std::io::Error>() {
            return match err.kind() {
                ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(StoreFailure::Full),
                ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::TimedOut => Some(StoreFailure::Unavailable),
                _ => None,
            };
        }
        None
    }
}

/// Which kind of store, for hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Directory,
    S3,
}

/// A folder of the store without a manifest: what an interrupted or failed backup left.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Leftover {
    pub id: String,
    /// Its objects (and, in a directory store, upload staging files), relative to the store.
    pub objects: Vec<String>,
    pub bytes: u64,
    /// Seconds since the Unix epoch of its newest write.
    pub last_write: i64,
    /// The bytes of its `running.json`, if it has one.
    #[serde(skip)]
    pub running: Option<Bytes>,
}

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The same S3 store through its multipart API, which names an upload's id (object
    /// storage's own `put_multipart` hides it): a backup records it, so a killed backup's
    /// upload can be aborted by `prune`. None for a directory.
    multipart: Option<Arc<object_store::aws::AmazonS3>>,
    /// The same store with few retries: the probe before a backup fails in seconds.
    quick: Arc<dyn ObjectStore>,
    kind: StoreKind,
    /// The directory of a directory store (leftovers are looked for on disk).
    dir: Option<std::path::PathBuf>,
    /// For messages: the directory or `s3://bucket/prefix`.
    pub description: String,
    prefix: Option<String>,
}

impl Store {
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        match config {
            StoreConfig::Directory(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                    path: dir.clone(),
                    source,
                })?;
                let fs =
                    object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                        StoreError::Directory {
                            path: dir.clone(),
                            source: std::io::Error::other(e.to_string()),
                        }
                    })?;
                // fsync: a backup that says it is done must survive a power cut.
                let fs: Arc<dyn ObjectStore> = Arc::new(fs.with_fsync(true));
                Ok(Store {
                    inner: fs.clone(),
                    multipart: None,
                    quick: fs,
                    kind: StoreKind::Directory,
                    dir: Some(dir.clone()),
                    description: dir.display().to_string(),
                    prefix: None,
                })
            }
            StoreConfig::S3 {
                bucket,
                region,
                endpoint,
                force_path_style,
                prefix,
                credentials,
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_virtual_hosted_style_request(!force_path_style);
                if let Some(credentials) = credentials {
                    use age::secrecy::ExposeSecret;
                    builder = builder
                        .with_access_key_id(&credentials.key_id)
                        .with_secret_access_key(credentials.secret.expose_secret());
                    if let Some(token) = &credentials.session_token {
                        builder = builder.with_token(token.expose_secret());
                    }
                }
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = builder
                    .clone()
                    .with_retry(retry_policy())
                    .build()
                    .map_err(|e| StoreError::S3Config(e.to_string()))?;
                let quick = builder
                    .with_retry(probe_retry_policy())
                    .build()
                    .map_err(|e| StoreError::S3Config(e.to_string()))?;
                let prefix = prefix
                    .as_ref()
                    .map(|p| p.trim_matches('/').to_string())
                    .filter(|p| !p.is_empty());
                let s3 = Arc::new(s3);
                Ok(Store {
                    inner: s3.clone(),
                    multipart: Some(s3),
                    quick: Arc::new(quick),
                    kind: StoreKind::S3,
                    dir: None,
                    description: match &prefix {
                        Some(p) => format!("s3://{bucket}/{p}"),
                        None => format!("s3://{bucket}"),
                    },
                    prefix,
                })
            }
        }
    }

    /// Writes and deletes a small object, with few retries: a store that cannot take a
    /// backup (an S3 endpoint that does not answer, a bucket that refuses, a directory that
    /// is read-only) is found in seconds, before pg_dump starts.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("tend-probe-{}-{nanos}", std::process::id());
        let path = match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{name}")),
            None => ObjectPath::from(name),
        };
        let unusable = |action: &'static str| {
            let store = self.description.clone();
            let kind = self.kind;
            move |source| StoreError::Unusable {
                store,
                kind,
                action,
                source: Box::new(source),
            }
        };
        self.quick
            .put(
                &path,
                Bytes::from_static(b"tend checks that it may write here\n").into(),
            )
            .await
            .map_err(unusable("writing"))?;
        // object_store retries a PUT that could not be sent, but not the POST that S3's
        // delete is: a store that blinks right after the write is tried again here, while
        // a refusal (credentials, permissions) is final at once.
        let mut attempt = 1;
        loop {
            match self.quick.delete(&path).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= PROBE_DELETE_ATTEMPTS || !may_pass(self.kind, &e) => {
                    return Err(unusable("deleting")(e));
                }
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_secs(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The folders without a manifest, with their objects and when they were last written.
    /// In a directory store this includes the staging files of an unfinished upload
    /// (`data.dump.zst.age#1`), which object storage listings do not show.
    pub async fn leftovers(
        &self,
        manifest_name: &str,
        running_name: &str,
    ) -> Result<Vec<Leftover>, StoreError> {
        let mut found = Vec::new();
        // On disk, a folder holding only a staging file is not always listed as a prefix.
        let ids = match &self.dir {
            Some(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Directory {
                    path: dir.clone(),
                    source,
                })?;
                let mut ids: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|name| !reserved(name))
                    .collect();
                ids.sort();
                ids
            }
            None => self.ids().await?,
        };
        for id in ids {
            if self.size(&self.path(&id, manifest_name)).await?.is_some() {
                continue;
            }
            let mut leftover = Leftover {
                id: id.clone(),
                objects: Vec::new(),
                bytes: 0,
                last_write: 0,
                running: self.get_opt(&self.path(&id, running_name)).await?,
            };
            if let Some(dir) = &self.dir {
                let folder = dir.join(&id);
                let entries =
                    std::fs::read_dir(&folder).map_err(|source| StoreError::Directory {
                        path: folder.clone(),
                        source,
                    })?;
                for entry in entries.flatten() {
                    let Ok(meta) = entry.metadata() else { continue };
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs() as i64)
                        .unwrap_or(0);
                    leftover
                        .objects
                        .push(format!("{id}/{}", entry.file_name().to_string_lossy()));
                    leftover.bytes += meta.len();
                    leftover.last_write = leftover.last_write.max(modified);
                }
            } else {
                let folder = self.folder(&id);
                let mut listing = self.inner.list(Some(&folder));
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(self.error("list", &folder))?;
                    leftover.objects.push(meta.location.to_string());
                    leftover.bytes += meta.size;
                    leftover.last_write = leftover.last_write.max(meta.last_modified.timestamp());
                }
            }
            leftover.objects.sort();
            found.push(leftover);
        }
        Ok(found)
    }

    /// Aborts a multipart upload a backup recorded (gone already is fine). A directory
    /// store has none.
    pub async fn abort_upload(&self, path: &str, id: &str) -> Result<(), StoreError> {
        let Some(multipart) = &self.multipart else {
            return Ok(());
        };
        let location = ObjectPath::from(path);
        let multipart: &dyn object_store::multipart::MultipartStore = multipart.as_ref();
        match multipart.abort_multipart(&location, &id.to_string()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("abort the upload of", &location)(e)),
        }
    }

    /// Removes a folder without a manifest: its objects, and in a directory store its
    /// staging files and the folder itself.
    pub async fn delete_leftover(&self, id: &str, manifest_name: &str) -> Result<(), StoreError> {
        self.delete_backup(id, manifest_name).await?;
        if let Some(dir) = &self.dir {
            let folder = dir.join(id);
            match std::fs::remove_dir_all(&folder) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Directory {
                        path: folder,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The folder of backup `id`.
    fn folder(&self, id: &str) -> ObjectPath {
        match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{id}")),
            None => ObjectPath::from(id),
        }
    }

    /// The object path of `name` inside backup `id`.
    pub fn path(&self, id: &str, name: &str) -> ObjectPath {
        match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{id}/{name}")),
            None => ObjectPath::from(format!("{id}/{name}")),
        }
    }

    fn error(
        &self,
        action: &'static str,
        path: &ObjectPath,
    ) -> impl FnOnce(object_store::Error) -> StoreError {
        let store = self.description.clone();
        let path = path.to_string();
        move |source| StoreError::Object {
            store,
            action,
            path,
            source: Box::new(source),
        }
    }

    pub async fn put(&self, path: &ObjectPath, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(path, bytes.into())
            .await
            .map(|_| ())
            .map_err(self.error("write", path))
    }

    pub async fn get(&self, path: &ObjectPath) -> Result<Bytes, StoreError> {
        let result = self
            .inner
            .get(path)
            .await
            .map_err(self.error("read", path))?;
        result.bytes().await.map_err(self.error("read", path))
    }

    /// The object's bytes, or `None` when it does not exist (one request either way).
    pub async fn get_opt(&self, path: &ObjectPath) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(path).await {
            Ok(result) => Ok(Some(
                result.bytes().await.map_err(self.error("read", path))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("read", path)(e)),
        }
    }

    /// The object's bytes as a stream of chunks.
    pub async fn stream(
        &self,
        path: &ObjectPath,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        let result = self
            .inner
            .get(path)
            .await
            .map_err(self.error("read", path))?;
        let store = self.description.clone();
        let shown = path.to_string();
        // A file of a directory store: read in 1 MiB chunks (object_store's stream of a
        // local file yields 8 KiB ones, a message each down a restore's pipeline).
        if let object_store::GetResultPayload::File(file, _) = result.payload {
            return Ok(futures::stream::try_unfold(Some(file), |file| async move {
                let Some(mut file) = file else {
                    return Ok(None);
                };
                let (file, chunk) = tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0u8; LOCAL_READ_CHUNK];
                    let n = read_full(&mut file, &mut chunk)?;
                    chunk.truncate(n);
                    Ok::<_, std::io::Error>((file, chunk))
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(match chunk.is_empty() {
                    true => None,
                    false => Some((Bytes::from(chunk), Some(file))),
                })
            })
            .map_err(move |e: std::io::Error| StoreError::Object {
                store: store.clone(),
                action: "read",
                path: shown.clone(),
                source: Box::new(object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                }),
            })
            .boxed());
        }
        Ok(result
            .into_stream()
            .map(move |chunk| {
                chunk.map_err(|source| StoreError::Object {
                    store: store.clone(),
                    action: "read",
                    path: shown.clone(),
                    source: Box::new(source),
                })
            })
            .boxed())
    }

    /// An upload of one object as data flows (multipart on S3) that an interruption at any
    /// instant can still abort: see [`Upload`].
    pub fn upload(&self, path: &ObjectPath) -> Upload {
        Upload {
            store: self.inner.clone(),
            multipart: self
                .multipart
                .clone()
                .map(|m| m as Arc<dyn object_store::multipart::MultipartStore>),
            record: None,
            path: path.clone(),
            capacity: UPLOAD_PART_BYTES,
            in_flight: match self.kind {
                StoreKind::S3 => UPLOAD_PARTS_IN_FLIGHT,
                StoreKind::Directory => LOCAL_PARTS_IN_FLIGHT,
            },
            state: UploadState::Buffering(object_store::PutPayloadMut::new()),
        }
    }

    /// Deletes one object (gone already is fine).
    pub async fn delete(&self, path: &ObjectPath) -> Result<(), StoreError> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path)(e)),
        }
    }

    /// Size of an object, if it exists.
    pub async fn size(&self, path: &ObjectPath) -> Result<Option<u64>, StoreError> {
        match self.inner.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("look up", path)(e)),
        }
    }

    /// Backup ids: the folders at the top of the store.
    pub async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let prefix = self.prefix.as_ref().map(|p| ObjectPath::from(p.as_str()));
        let listing = match self.inner.list_with_delimiter(prefix.as_ref()).await {
            Ok(listing) => listing,
            Err(e) => {
                let e = self.refusal_typed(prefix.as_ref(), e).await;
                return Err(self.error("list", &prefix.unwrap_or_default())(e));
            }
        };
        let mut ids: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|name| !reserved(name))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every object under `id/sub` (recursively), as its path below that folder and its
    /// size, sorted by path.
    pub async fn objects_under(
        &self,
        id: &str,
        sub: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let folder = self.path(id, sub);
        let base = folder.as_ref().to_string();
        let mut listing = self.inner.list(Some(&folder));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = match meta {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => {
                    let e = self.refusal_typed(Some(&folder), e).await;
                    return Err(self.error("list", &folder)(e));
                }
            };
            let path = meta.location.as_ref();
            if let Some(rest) = path.strip_prefix(&base).and_then(|r| r.strip_prefix('/')) {
                found.push((rest.to_string(), meta.size));
            }
        }
        found.sort();
        Ok(found)
    }

    /// In a directory store, gives `id/sub` and everything under it to the OS user and
    /// group `owner` (the server's, which writes there through `archive_command`), when
    /// this process may (it runs as root). Object storage has no owners: nothing to do.
    pub fn give_to(&self, id: &str, sub: &str, owner: (u32, u32)) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let folder = dir.join(id).join(sub);
        tend_pg::cluster::chown_tree(&folder, owner).map_err(|source| StoreError::Directory {
            path: folder,
            source,
        })
    }

    /// The folders directly under `id/sub`, sorted.
    pub async fn folders_under(&self, id: &str, sub: &str) -> Result<Vec<String>, StoreError> {
        let folder = self.path(id, sub);
        let listing = match self.inner.list_with_delimiter(Some(&folder)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => {
                let e = self.refusal_typed(Some(&folder), e).await;
                return Err(self.error("list", &folder)(e));
            }
        };
        let mut folders: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        folders.sort();
        Ok(folders)
    }

    /// object_store reports an S3 listing the store refused as a generic error (the status
    /// sits in a type of its own that cannot be named), while it types the refusal of a HEAD:
    /// after a listing failed for no reason it names, one HEAD of the listed prefix asks
    /// again, and a refusal makes the listing's error a `PermissionDenied` (or
    /// `Unauthenticated`) that wraps it, so [`StoreFailure::of`] sees it.
    async fn refusal_typed(
        &self,
        prefix: Option<&ObjectPath>,
        err: object_store::Error,
    ) -> object_store::Error {
        if self.kind != StoreKind::S3 || StoreFailure::of(&err) != StoreFailure::Other {
            return err;
        }
        let path = prefix.cloned().unwrap_or_else(|| ObjectPath::from("tend"));
        match self.quick.head(&path).await {
            Err(object_store::Error::PermissionDenied { .. }) => {
                object_store::Error::PermissionDenied {
                    path: path.to_string(),
                    source: Box::new(err),
                }
            }
            Err(object_store::Error::Unauthenticated { .. }) => {
                object_store::Error::Unauthenticated {
                    path: path.to_string(),
                    source: Box::new(err),
                }
            }
            _ => err,
        }
    }

    /// Deletes every object of backup `id`, the manifest first, so a crash halfway never
    /// leaves a listed backup with missing parts.
    pub async fn delete_backup(&self, id: &str, manifest_name: &str) -> Result<(), StoreError> {
        let manifest = self.path(id, manifest_name);
        match self.inner.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("delete", &manifest)(e)),
        }
        let folder = self.folder(id);
        let mut listing = self.inner.list(Some(&folder));
        let mut paths = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(self.error("list", &folder))?;
            paths.push(meta.location);
        }
        for path in paths {
            match self.inner.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", &path)(e)),
            }
        }
        // A directory store keeps the emptied folder: remove it (only if empty), so a
        // deleted backup leaves nothing that looks like an interrupted one.
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir(dir.join(id));
        }
        Ok(())
    }
}

/// How much of a directory store's file a stream reads at a time.
const LOCAL_READ_CHUNK: usize = 1 << 20;

/// Reads until `buf` is full or the input ends.
pub(crate) fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The size of an upload's parts: an object smaller than this is stored with one PUT.
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// How many parts of one upload may be in flight at once: on S3, enough to hide each
/// request's latency.
const UPLOAD_PARTS_IN_FLIGHT: usize = 8;

/// The same for a directory store, where a part is a local write: more in flight would only
/// hold memory (8 MiB each) while the disk catches up.
const LOCAL_PARTS_IN_FLIGHT: usize = 2;

/// How long an abort waits for the request that creates the multipart upload, and then for
/// the parts in flight, before it gives up on them (a store that does not answer must not
/// hold a SIGTERM for minutes; the bucket's lifecycle rule then removes what stays).
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One object uploaded as data flows: buffered up to one part, then a multipart upload
/// whose parts go up as they fill.
///
/// object_store's `BufWriter` loses a multipart upload when the future of a `put` is dropped
/// while the upload is being created (the upload id arrives into a dropped future, and its
/// `abort` then has nothing to abort), and its abort cuts the parts in flight, which a store
/// may still finish storing after the abort. A backup drops that future whenever SIGINT or
/// SIGTERM lands, so here every step can be interrupted and `abort` still removes all:
/// - the request that creates the multipart upload runs in a task of its own whose handle
///   stays in the state, so `abort` waits for it and aborts the upload it made;
/// - `abort` first lets the parts in flight land, then aborts the upload, so no part is
///   stored after it;
/// - `finish` completes in a task of its own too: an interrupted finish is waited for by
///   `abort`, and what it completed is deleted with the backup's folder.
///
/// S3 cannot list an upload whose id was lost (object_store has no ListMultipartUploads, and
/// s3s-fs does not serve it), so the id is never allowed to be lost instead. On S3, with
/// [`Upload::recorded_by`], the upload is created through the multipart API, which names
/// its id, and the id is recorded (the backup's `running.json`) before the first part is
/// sent, so `prune` aborts the upload of a SIGKILLed backup. Only a kill between S3 creating
/// the upload and the record, or a store silent for longer than [`ABORT_WAIT`], leaves an
/// incomplete upload; docs/cli.md asks for the bucket's AbortIncompleteMultipartUpload rule.
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    multipart: Option<Arc<dyn object_store::multipart::MultipartStore>>,
    /// Told of a multipart upload's id before any part is sent.
    record: Option<RecordUpload>,
    path: ObjectPath,
    capacity: usize,
    /// Parts that may be in flight at once.
    in_flight: usize,
    state: UploadState,
}

type Task<T> = tokio::task::JoinHandle<object_store::Result<T>>;

/// Records a multipart upload (its object path and id) somewhere durable; the upload sends
/// no part before this has returned.
pub type RecordUpload = Arc<
    dyn Fn(String, String) -> futures::future::BoxFuture<'static, Result<(), StoreError>>
        + Send
        + Sync,
>;

/// A multipart upload through S3's multipart API, whose id is known (see `Store::multipart`).
struct KnownUpload {
    store: Arc<dyn object_store::multipart::MultipartStore>,
    path: ObjectPath,
    id: object_store::MultipartId,
    parts: Arc<parking_lot::Mutex<Vec<Option<object_store::multipart::PartId>>>>,
    next: usize,
}

impl std::fmt::Debug for KnownUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownUpload")
            .field("path", &self.path)
            .field("id", &self.id)
            .finish()
    }
}

type Pinned<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

// object_store's trait is an `async_trait`; its methods are written out here as it expands
// them, so tend needs no macro crate for three methods.
impl object_store::MultipartUpload for KnownUpload {
    fn put_part(&mut self, data: object_store::PutPayload) -> object_store::UploadPart {
        let index = self.next;
        self.next += 1;
        let (store, path, id, parts) = (
            self.store.clone(),
            self.path.clone(),
            self.id.clone(),
            self.parts.clone(),
        );
        Box::pin(async move {
            let part = store.put_part(&path, &id, index, data).await?;
            let mut parts = parts.lock();
            if parts.len() <= index {
                parts.resize(index + 1, None);
            }
            parts[index] = Some(part);
            Ok(())
        })
    }

    fn complete<'life0, 'async_trait>(
        &'life0 mut self,
    ) -> Pinned<'async_trait, object_store::Result<object_store::PutResult>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let parts: Option<Vec<_>> = self.parts.lock().iter().cloned().collect();
            let parts = parts.ok_or_else(|| object_store::Error::Generic {
                store: "tend",
                source: "a part of the upload is missing".into(),
            })?;
            self.store
                .complete_multipart(&self.path, &self.id, parts)
                .await
        })
    }

    fn abort<'life0, 'async_trait>(
        &'life0 mut self,
    ) -> Pinned<'async_trait, object_store::Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.store.abort_multipart(&self.path, &self.id).await })
    }
}

/// Creates the multipart upload of `path`: through the multipart API when there is one (and
/// then records its id before returning), else through object storage's own.
async fn create_upload(
    store: Arc<dyn ObjectStore>,
    multipart: Option<Arc<dyn object_store::multipart::MultipartStore>>,
    record: Option<RecordUpload>,
    path: ObjectPath,
) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
    let (Some(multipart), Some(record)) = (multipart, record) else {
        return store.put_multipart(&path).await;
    };
    let id = multipart.create_multipart(&path).await?;
    if let Err(e) = record(path.to_string(), id.clone()).await {
        let _ = multipart.abort_multipart(&path, &id).await;
        return Err(object_store::Error::Generic {
            store: "tend",
            source: Box::new(e),
        });
    }
    Ok(Box::new(KnownUpload {
        store: multipart,
        path,
        id,
        parts: Arc::default(),
        next: 0,
    }))
}

enum UploadState {
    /// Less than one part so far.
    Buffering(object_store::PutPayloadMut),
    /// The multipart upload is being created; `pending` waits for it.
    Creating {
        task: Task<Box<dyn object_store::MultipartUpload>>,
        pending: object_store::PutPayloadMut,
    },
    Writing(object_store::WriteMultipart),
    /// `finish` runs (the single PUT, or the last parts and the completion).
    Finishing(Task<()>),
    /// Finished, aborted, or failed.
    Done,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("path", &self.path).finish()
    }
}

fn joined<T>(
    result: Result<object_store::Result<T>, tokio::task::JoinError>,
) -> object_store::Result<T> {
    result.map_err(|source| object_store::Error::JoinError { source })?
}

impl Upload {
    /// Has `record` told of the multipart upload (on S3) before its first part is sent.
    pub fn recorded_by(mut self, record: RecordUpload) -> Upload {
        self.record = Some(record);
        self
    }

    /// Adds `bytes` to the object. Dropping this future at any point loses nothing that
    /// `abort` needs.
    pub async fn put(&mut self, bytes: Bytes) -> object_store::Result<()> {
        if let UploadState::Buffering(buffer) = &mut self.state {
            if buffer.content_length().saturating_add(bytes.len()) < self.capacity {
                buffer.push(bytes);
                return Ok(());
            }
            let mut pending = std::mem::take(buffer);
            pending.push(bytes);
            let create = create_upload(
                self.store.clone(),
                self.multipart.clone(),
                self.record.clone(),
                self.path.clone(),
            );
            self.state = UploadState::Creating {
                task: tokio::spawn(create),
                pending,
            };
            return self.created().await;
        }
        self.created().await?;
        match &mut self.state {
            UploadState::Writing(write) => {
                write.wait_for_capacity(self.in_flight).await?;
                write.put(bytes);
                Ok(())
            }
            _ => Err(self.finished()),
        }
    }

    /// Waits for the creation of the multipart upload, if one is under way, and hands it the
    /// pending bytes. The task's handle stays in the state until it has answered.
    async fn created(&mut self) -> object_store::Result<()> {
        let UploadState::Creating { task, .. } = &mut self.state else {
            return Ok(());
        };
        let upload = joined(task.await);
        let UploadState::Creating { pending, .. } =
            std::mem::replace(&mut self.state, UploadState::Done)
        else {
            unreachable!("the state was Creating a moment ago");
        };
        let mut write = object_store::WriteMultipart::new_with_chunk_size(upload?, self.capacity);
        for chunk in pending.freeze() {
            write.put(chunk);
        }
        self.state = UploadState::Writing(write);
        Ok(())
    }

    fn finished(&self) -> object_store::Error {
        object_store::Error::Generic {
            store: "tend",
            source: format!(
                "the upload of {} was already finished or aborted",
                self.path
            )
            .into(),
        }
    }

    /// Stores what was put: one PUT, or the last parts and the completion.
    pub async fn finish(&mut self) -> object_store::Result<()> {
        self.created().await?;
        let task = match std::mem::replace(&mut self.state, UploadState::Done) {
            UploadState::Buffering(buffer) => {
                let (store, path) = (self.store.clone(), self.path.clone());
                tokio::spawn(async move { store.put(&path, buffer.freeze()).await.map(|_| ()) })
            }
            UploadState::Writing(write) => {
                tokio::spawn(async move { write.finish().await.map(|_| ()) })
            }
            UploadState::Finishing(task) => task,
            UploadState::Creating { .. } | UploadState::Done => return Err(self.finished()),
        };
        self.state = UploadState::Finishing(task);
        let UploadState::Finishing(task) = &mut self.state else {
            unreachable!("set just above");
        };
        let result = joined(task.await);
        self.state = UploadState::Done;
        result
    }

    /// Removes what was uploaded so far, whatever instant the upload was interrupted at: a
    /// creation under way is waited for and the upload it made aborted; parts in flight land
    /// first. Whatever a finish in flight stored is left to the caller, who deletes the
    /// backup's folder.
    pub async fn abort(&mut self) -> object_store::Result<()> {
        match std::mem::replace(&mut self.state, UploadState::Done) {
            UploadState::Buffering(_) | UploadState::Done => Ok(()),
            UploadState::Creating { task, .. } => {
                match tokio::time::timeout(ABORT_WAIT, task).await {
                    Ok(created) => match joined(created) {
                        Ok(mut upload) => upload.abort().await,
                        // It failed: no upload was made (or none the store admits to).
                        Err(_) => Ok(()),
                    },
                    Err(_) => Err(object_store::Error::Generic {
                        store: "tend",
                        source: "the store did not answer the creation of the multipart upload"
                            .into(),
                    }),
                }
            }
            UploadState::Writing(mut write) => {
                // A part that failed is aborted with the rest.
                let _ = tokio::time::timeout(ABORT_WAIT, write.wait_for_capacity(0)).await;
                write.abort().await
            }
            UploadState::Finishing(task) => {
                let _ = tokio::time::timeout(ABORT_WAIT, task).await;
                Ok(())
            }
        }
    }
}

/// How many times the probe tries to delete its object before the store is called unusable.
const PROBE_DELETE_ATTEMPTS: u64 = 3;

/// Whether a probe's failure may pass if tried again: an S3 error that is not a refusal.
fn may_pass(kind: StoreKind, error: &object_store::Error) -> bool {
    kind == StoreKind::S3
        && !matches!(
            error,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotFound { .. }
                | object_store::Error::NotImplemented { .. }
        )
}

/// The probe's retries: two, a second apart. An endpoint that is away for longer than
/// this when a backup starts fails it at once instead of after three minutes.
fn probe_retry_policy() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: std::time::Duration::from_secs(10),
    }
}

/// How S3 errors that may pass (connection refused or reset, 5xx, throttling) are retried:
/// up to 10 times, the first after a second, each wait drawn between one second and twice
/// the last (at most 20 s), for at most three minutes in all. object_store's default starts at
/// 100 ms and gave up on a server that was away for two seconds.
fn retry_policy() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(20),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: std::time::Duration::from_secs(180),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackupError;
    use std::io;

    fn generic(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(source),
        }
    }

    fn object(source: object_store::Error) -> StoreError {
        StoreError::Object {
            store: "s3://bucket".into(),
            action: "write",
            path: "x/data".into(),
            source: Box::new(source),
        }
    }

    #[test]
    fn a_full_disk_deep_in_a_store_error_is_full() {
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(object(generic(enospc)).failure(), StoreFailure::Full);
        let quota = io::Error::from_raw_os_error(libc::EDQUOT);
        assert_eq!(object(generic(quota)).failure(), StoreFailure::Full);
    }

    #[test]
    fn a_refusal_is_denied_also_inside_an_io_error() {
        let refused = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "403".into(),
        };
        assert_eq!(object(refused).failure(), StoreFailure::Denied);
        // A reading layer carries the store's error inside an io::Error.
        let unauthenticated = object_store::Error::Unauthenticated {
            path: "x".into(),
            source: "401".into(),
        };
        let wrapped = io::Error::other(unauthenticated);
        assert_eq!(StoreFailure::of(&wrapped), StoreFailure::Denied);
    }

    #[test]
    fn missing_and_unreachable_stores_are_named_for_what_they_are() {
        let missing = object_store::Error::NotFound {
            path: "x".into(),
            source: "404".into(),
        };
        assert_eq!(object(missing).failure(), StoreFailure::NotFound);
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            object(generic(refused)).failure(),
            StoreFailure::Unavailable
        );
    }

    #[test]
    fn words_in_a_message_decide_nothing() {
        let text: Box<dyn std::error::Error + Send + Sync> =
            "Server returned non-2xx status code: 403 Forbidden (os error 28)".into();
        let err = object_store::Error::Generic {
            store: "S3",
            source: text,
        };
        assert_eq!(object(err).failure(), StoreFailure::Other);
        assert_eq!(
            StoreError::S3Config("403 Forbidden".into()).failure(),
            StoreFailure::Other
        );
    }

    #[test]
    fn a_backup_error_names_the_store_failure_under_it() {
        let full = BackupError::Upload {
            source: Box::new(generic(io::Error::from(io::ErrorKind::StorageFull))),
        };
        assert_eq!(full.store_failure(), StoreFailure::Full);
        let unfinished = BackupError::Unfinished {
            source: Box::new(BackupError::from(object(
                object_store::Error::PermissionDenied {
                    path: "x".into(),
                    source: "403".into(),
                },
            ))),
            state: "the target is as it was",
        };
        assert_eq!(unfinished.store_failure(), StoreFailure::Denied);
        let scratch = BackupError::Scratch {
            path: "/tmp/x".into(),
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(scratch.store_failure(), StoreFailure::Full);
        let pipeline = BackupError::Pipeline("No space left on device (os error 28)".into());
        assert_eq!(pipeline.store_failure(), StoreFailure::Other);
    }
}
