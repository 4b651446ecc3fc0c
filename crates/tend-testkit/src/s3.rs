//! A real S3-compatible server for the backup tests: `s3s-fs` (installed by
//! scripts/setup.sh with `cargo install s3s-fs --version 0.14.1 --features binary --locked`),
//! serving a temp directory on a free loopback port, with one bucket and fixed credentials.
//!
//! s3s-fs keeps bucket `B`'s object `K` as the plain file `<root>/B/K`, so tests can look at
//! (and tamper with) what is stored. Its own bookkeeping (ETags, metadata, multipart parts in
//! flight) lives in dot files directly under `<root>`, never inside a bucket.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version scripts/setup.sh installs: the newest s3s-fs that builds on the project's rustc.
pub const S3S_FS_VERSION: &str = "0.14.1";

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const READY_LINE: &str = "server is running at http://";

/// One running s3s-fs with one empty bucket, killed (and its directory removed) on drop.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`: path-style requests only.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Any region signs correctly (s3s-fs takes the one in the request); this is the one to use.
    pub region: String,
    pub bucket: String,
    binary: PathBuf,
    child: Child,
    /// Holds `data/` (the server's root) and `s3s-fs.log` (its output).
    dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts s3s-fs and waits (up to 10 s) until it accepts connections. Panics with the
    /// server's output when it does not, and with a pointer to scripts/setup.sh when the
    /// program is not installed.
    pub fn start() -> S3Server {
        let binary = s3s_fs_binary().unwrap_or_else(|| {
            panic!(
                "s3s-fs is not installed (looked on PATH, in $CARGO_HOME/bin, $HOME/.cargo/bin \
                 and /root/.cargo/bin): run scripts/setup.sh, which builds it with \
                 `cargo install s3s-fs --version {S3S_FS_VERSION} --features binary --locked`"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("tend-s3-")
            .tempdir()
            .expect("a temp dir");
        let bucket = "tend-test".to_string();
        let root = dir.path().join("data");
        // A bucket is a directory under the root: this is all CreateBucket does in s3s-fs.
        std::fs::create_dir_all(root.join(&bucket)).expect("create the bucket's directory");
        let access_key = "tend-test-access-key".to_string();
        let secret_key = "tend-test-secret-key".to_string();
        // Port 0: the OS picks a free port, and s3s-fs logs the address it bound.
        let (child, addr) = spawn(&binary, dir.path(), 0, &access_key, &secret_key);
        S3Server {
            endpoint: format!("http://{addr}"),
            access_key,
            secret_key,
            region: "us-east-1".to_string(),
            bucket,
            binary,
            child,
            dir,
        }
    }

    /// Takes the server away for `outage` (connections are refused meanwhile), then brings it
    /// back on the same address over the same files: a store that fails for a while.
    pub fn interrupt(&mut self, outage: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(outage);
        let port: u16 = self
            .endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the endpoint ends in its port");
        let (child, _) = spawn(
            &self.binary,
            self.dir.path(),
            port,
            &self.access_key,
            &self.secret_key,
        );
        self.child = child;
    }

    /// The environment a `tend` command needs to store into this server (add it to
    /// `TestProject::tend()`, which clears everything else).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", self.region.as_str()),
            ("AWS_DEFAULT_REGION", self.region.as_str()),
            ("BACKUP_S3_BUCKET", self.bucket.as_str()),
            ("BACKUP_S3_REGION", self.region.as_str()),
            ("BACKUP_S3_ENDPOINT", self.endpoint.as_str()),
            ("BACKUP_S3_FORCE_PATH_STYLE", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The keys of the objects stored in the bucket, sorted, read from the server's directory.
    pub fn object_paths(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let bucket_dir = self.bucket_dir();
        let mut pending = vec![bucket_dir.clone()];
        while let Some(dir) = pending.pop() {
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
            for entry in entries {
                let entry = entry.expect("a directory entry");
                let file_type = entry.file_type().expect("a file type");
                let path = entry.path();
                if file_type.is_dir() {
                    // Directories are key prefixes (s3s-fs leaves them behind after a delete).
                    pending.push(path);
                } else if file_type.is_file() {
                    let relative = path.strip_prefix(&bucket_dir).expect("inside the bucket");
                    let key: Vec<String> = relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    keys.push(key.join("/"));
                }
            }
        }
        keys.sort();
        keys
    }

    /// The file that holds object `key` (for tests that corrupt or inspect a stored object).
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.bucket_dir().join(key)
    }

    /// The bucket's directory on disk.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join("data").join(&self.bucket)
    }

    /// What s3s-fs has printed so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `dir` is removed when the field drops, after this.
    }
}

/// Starts s3s-fs over `<dir>/data` on `port` (0: any), appending its output to
/// `<dir>/s3s-fs.log`, and waits until it answers.
fn spawn(
    binary: &Path,
    dir: &Path,
    port: u16,
    access_key: &str,
    secret_key: &str,
) -> (Child, SocketAddr) {
    let log_path = dir.join("s3s-fs.log");
    // A restart appends: the address is then read from the new lines only.
    let seen = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("open the s3s-fs log");
    let mut child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", access_key, "--secret-key", secret_key])
        .arg(dir.join("data"))
        // The bound address is an info-level line; without RUST_LOG it logs errors only.
        .env("RUST_LOG", "warn,s3s_fs=info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        let fresh = output.get(seen..).unwrap_or_default();
        if let Some(addr) = bound_address(fresh)
            && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        {
            return (child, addr);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("s3s-fs exited ({status}) before it served; its output:\n{fresh}");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("s3s-fs did not answer within {READY_TIMEOUT:?}; its output:\n{fresh}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The address in s3s-fs's "server is running at http://127.0.0.1:PORT" line.
fn bound_address(output: &str) -> Option<SocketAddr> {
    let rest = &output[output.find(READY_LINE)? + READY_LINE.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// s3s-fs on PATH, in `$CARGO_HOME/bin`, `$HOME/.cargo/bin` or `/root/.cargo/bin`.
pub fn s3s_fs_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(cargo_home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.push(PathBuf::from("/root/.cargo/bin"));
    dirs.into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::aws::AmazonS3Builder;
    use object_store::buffered::BufWriter;
    use object_store::path::Path as StorePath;
    use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
    use tokio::io::AsyncWriteExt;

    /// The store as tend will build it.
    fn store(server: &S3Server) -> Arc<dyn ObjectStore> {
        let store = AmazonS3Builder::new()
            .with_endpoint(&server.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_access_key_id(&server.access_key)
            .with_secret_access_key(&server.secret_key)
            .with_region(&server.region)
            .with_bucket_name(&server.bucket)
            .build()
            .expect("an S3 store");
        Arc::new(store)
    }

    /// Deterministic bytes that do not compress or repeat at part boundaries.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn s3_bound_address_is_read_from_the_log_line() {
        let line = "  2026-05-01T10:00:00.000000Z  INFO s3s_fs: server is running at \
                    http://127.0.0.1:40123\n    at src/main.rs:124\n";
        assert_eq!(
            bound_address(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            bound_address("INFO s3s_fs: authentication is enabled\n"),
            None
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_server_stores_lists_reads_and_deletes_through_object_store() {
        let server = S3Server::start();
        let store = store(&server);
        assert!(server.endpoint.starts_with("http://127.0.0.1:"));

        // The bucket made as a directory exists for the server: listing it is no NoSuchBucket.
        let listed: Vec<_> = store.list(None).try_collect().await.expect("list empty");
        assert!(listed.is_empty(), "{listed:?}");

        // A plain PUT.
        let manifest = StorePath::from("backups/db1/manifest.json");
        let small = br#"{"format":1}"#.to_vec();
        let put = store
            .put(&manifest, PutPayload::from(small.clone()))
            .await
            .expect("put");
        assert!(put.e_tag.is_some(), "a PUT answers with an ETag");

        // Create-only PUT of an existing key fails as AlreadyExists (If-None-Match: *).
        let again = store
            .put_opts(
                &manifest,
                PutPayload::from_static(b"other"),
                PutOptions::from(PutMode::Create),
            )
            .await;
        assert!(
            matches!(again, Err(object_store::Error::AlreadyExists { .. })),
            "{again:?}"
        );

        // A multipart upload of ~12 MB through BufWriter (10 MiB parts: 2 parts).
        let dump = StorePath::from("backups/db1/base/dump.bin");
        let big = noise(12 * 1024 * 1024 + 12_345);
        let mut writer = BufWriter::new(Arc::clone(&store), dump.clone());
        for chunk in big.chunks(1024 * 1024) {
            writer.write_all(chunk).await.expect("write");
        }
        writer
            .shutdown()
            .await
            .expect("complete the multipart upload");

        let head = store.head(&dump).await.expect("head");
        assert_eq!(head.size, big.len() as u64);
        let e_tag = head.e_tag.expect("an ETag");
        assert!(
            e_tag.trim_matches('"').ends_with("-2"),
            "a multipart ETag names its part count: {e_tag}"
        );

        assert_eq!(
            server.object_paths(),
            vec![
                "backups/db1/base/dump.bin".to_string(),
                "backups/db1/manifest.json".to_string()
            ]
        );
        assert_eq!(
            std::fs::read(server.object_file("backups/db1/manifest.json")).unwrap(),
            small
        );

        // Recursive listing under a prefix.
        let mut listed: Vec<_> = store
            .list(Some(&StorePath::from("backups")))
            .try_collect()
            .await
            .expect("list");
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        let found: Vec<_> = listed
            .iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect();
        assert_eq!(
            found,
            vec![
                ("backups/db1/base/dump.bin".to_string(), big.len() as u64),
                ("backups/db1/manifest.json".to_string(), small.len() as u64),
            ]
        );

        // One level, with the delimiter.
        let level = store
            .list_with_delimiter(Some(&StorePath::from("backups/db1")))
            .await
            .expect("list with delimiter");
        let objects: Vec<_> = level
            .objects
            .iter()
            .map(|m| m.location.to_string())
            .collect();
        let prefixes: Vec<_> = level
            .common_prefixes
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(objects, vec!["backups/db1/manifest.json".to_string()]);
        assert_eq!(prefixes, vec!["backups/db1/base".to_string()]);

        // Read back, whole and a range across the part boundary.
        let got = store.get(&manifest).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], &small[..]);
        let got = store.get(&dump).await.unwrap().bytes().await.unwrap();
        assert!(got[..] == big[..], "the multipart object reads back intact");
        let boundary = 10 * 1024 * 1024;
        let range = store
            .get_range(&dump, (boundary - 100) as u64..(boundary + 100) as u64)
            .await
            .unwrap();
        assert_eq!(&range[..], &big[boundary - 100..boundary + 100]);

        // Delete.
        store.delete(&manifest).await.expect("delete");
        store.delete(&dump).await.expect("delete");
        let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
        assert!(listed.is_empty(), "{listed:?}");
        assert!(server.object_paths().is_empty());
        let gone = store.get(&dump).await;
        assert!(
            matches!(gone, Err(object_store::Error::NotFound { .. })),
            "{gone:?}"
        );
    }
}
