//! The backup store: a local directory or an S3-compatible bucket, through `object_store`.
//! Only this module talks to object storage. The store is its own catalog: each backup is
//! a folder `<id>/` holding its data objects and, written last, `manifest.json`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

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
    },
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
}

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
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
                let fs = fs.with_fsync(true);
                Ok(Store {
                    inner: Arc::new(fs),
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
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_retry(retry_policy())
                    .with_bucket_name(bucket)
                    .with_virtual_hosted_style_request(!force_path_style);
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = builder
                    .build()
                    .map_err(|e| StoreError::S3Config(e.to_string()))?;
                let prefix = prefix
                    .as_ref()
                    .map(|p| p.trim_matches('/').to_string())
                    .filter(|p| !p.is_empty());
                Ok(Store {
                    inner: Arc::new(s3),
                    description: match &prefix {
                        Some(p) => format!("s3://{bucket}/{p}"),
                        None => format!("s3://{bucket}"),
                    },
                    prefix,
                })
            }
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

    /// A writer that uploads in parts as data flows (multipart on S3).
    pub fn writer(&self, path: &ObjectPath) -> object_store::buffered::BufWriter {
        object_store::buffered::BufWriter::with_capacity(
            self.inner.clone(),
            path.clone(),
            8 * 1024 * 1024,
        )
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
        let listing = self
            .inner
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(self.error("list", &prefix.clone().unwrap_or_default()))?;
        let mut ids: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Deletes every object of backup `id`, the manifest first, so a crash halfway never
    /// leaves a listed backup with missing parts.
    pub async fn delete_backup(&self, id: &str, manifest_name: &str) -> Result<(), StoreError> {
        let manifest = self.path(id, manifest_name);
        match self.inner.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("delete", &manifest)(e)),
        }
        let folder = match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{id}")),
            None => ObjectPath::from(id),
        };
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
        Ok(())
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
