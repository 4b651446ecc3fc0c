//! Test support for tend: one throwaway PostgreSQL cluster per test process (or an existing
//! server named by `TEND_TEST_DATABASE_URL`), a fresh database per test, and a runner for the
//! real `tend` binary with a deterministic environment.
//!
//! Nothing here is a mock: every test talks to a real server.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tend_pg::cluster::{ClusterOptions, LocalCluster};
use tend_pg::conninfo::ConnInfo;

/// Set this to a superuser URL to run the tests against an existing server.
pub const EXTERNAL_URL_VAR: &str = "TEND_TEST_DATABASE_URL";

/// The server the tests of this process use.
pub struct TestServer {
    /// A superuser connection to its `postgres` database.
    pub admin: ConnInfo,
    cluster: Option<LocalCluster>,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();
static CLUSTER_ROOT: OnceLock<PathBuf> = OnceLock::new();

impl TestServer {
    /// The process's server, started on first use.
    pub fn get() -> &'static TestServer {
        SERVER.get_or_init(|| {
            if let Ok(url) = std::env::var(EXTERNAL_URL_VAR)
                && !url.trim().is_empty()
            {
                let admin = ConnInfo::parse(&url)
                    .unwrap_or_else(|e| panic!("{EXTERNAL_URL_VAR} is not usable: {e}"));
                return TestServer {
                    admin,
                    cluster: None,
                };
            }
            start_process_cluster()
        })
    }

    /// Is this server a throwaway cluster of ours (so tests may stop it or fill it)?
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }
}

fn testkit_base() -> PathBuf {
    std::env::temp_dir().join("tend-testkit")
}

fn start_process_cluster() -> TestServer {
    let base = testkit_base();
    std::fs::create_dir_all(&base).expect("create the test kit's temp dir");
    reap_stale_clusters(&base);
    let root = base.join(format!("cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let options = ClusterOptions {
        settings: vec![
            ("fsync".into(), "off".into()),
            ("synchronous_commit".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("max_connections".into(), "200".into()),
            ("shared_buffers".into(), "64MB".into()),
        ],
        fast_init: true,
        ..ClusterOptions::default()
    };
    let cluster = LocalCluster::new(&root, options);
    let started = cluster
        .start(&mut |_| {})
        .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL cluster: {e}"));
    CLUSTER_ROOT.set(root).expect("one cluster per process");
    // SAFETY: registering a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(stop_process_cluster);
    }
    TestServer {
        admin: cluster.conninfo(started.port, "postgres"),
        cluster: Some(cluster),
    }
}

extern "C" fn stop_process_cluster() {
    if let Some(root) = CLUSTER_ROOT.get() {
        let cluster = LocalCluster::new(root, ClusterOptions::default());
        let _ = cluster.kill();
        let _ = cluster.destroy();
    }
}

/// Removes clusters left behind by test processes that were killed before their exit hook.
fn reap_stale_clusters(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cluster-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only probes for the process.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let cluster = LocalCluster::new(entry.path(), ClusterOptions::default());
            let _ = cluster.kill();
            let _ = cluster.destroy();
        }
    }
}

/// A database of its own for one test, dropped (with its sessions) when the value drops.
pub struct TestDb {
    pub name: String,
    pub info: ConnInfo,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Creates `tend_test_<pid>_<n>`, empty, on the process's server.
    pub fn create() -> TestDb {
        let server = TestServer::get();
        let name = format!(
            "tend_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run_admin_sql(
            &server.admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"),
        );
        TestDb {
            info: server.admin.with_dbname(&name),
            name,
        }
    }

    /// The URL to hand to `tend` (and to psql).
    pub fn url(&self) -> String {
        self.info.to_secret_string()
    }

    /// Runs SQL in this database.
    pub fn execute(&self, sql: &str) {
        run_admin_sql(&self.info, sql);
    }

    /// Runs a query and returns the rows' first column as text.
    pub fn query_column(&self, sql: &str) -> Vec<Option<String>> {
        let info = self.info.clone();
        let sql = sql.to_string();
        on_runtime(async move {
            let session = tend_pg::connect(&info, &Default::default())
                .await
                .expect("connect to the test database");
            let messages = session.simple_query(&sql).await.expect("query");
            messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).map(str::to_string))
                    }
                    _ => None,
                })
                .collect()
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = TestServer::get();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin = server.admin.clone();
        let _ = std::thread::spawn(move || run_admin_sql(&admin, &sql)).join();
    }
}

/// Runs SQL on a fresh runtime in its own thread, so it works from sync and async tests.
fn run_admin_sql(info: &ConnInfo, sql: &str) {
    let info = info.clone();
    let sql = sql.to_string();
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        for statement in sql.split("; ") {
            session
                .batch_execute(statement)
                .await
                .unwrap_or_else(|e| panic!("test SQL failed: {statement}: {e:?}"));
        }
    })
}

fn on_runtime<T: Send + 'static>(fut: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(fut)
    })
    .join()
    .expect("test SQL thread panicked")
}

/// A temporary project directory for one test: the working directory of the `tend` it runs.
pub struct TestProject {
    pub dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl TestProject {
    pub fn new() -> TestProject {
        TestProject {
            dir: tempfile::Builder::new()
                .prefix("tend-project-")
                .tempdir()
                .expect("a temp dir"),
            home: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the project.
    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(path, contents).expect("write a project file");
    }

    /// The real `tend` binary, run in this project with a cleared, deterministic
    /// environment: only PATH survives, HOME is empty, colors are off.
    pub fn tend(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(tend_binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env("LANG", "C.UTF-8")
            .current_dir(self.dir.path());
        for var in ["TEND_PG_USER", "TEND_PG_BINDIR"] {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        cmd
    }
}

impl Default for TestProject {
    fn default() -> Self {
        TestProject::new()
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        // A test may have started a dev cluster in the project: stop it before the files go.
        let root = self.dir.path().join(".tend");
        if root.exists() {
            let cluster = LocalCluster::new(&root, ClusterOptions::default());
            let _ = cluster.kill();
            let _ = cluster.destroy();
        }
    }
}

/// The `tend` binary cargo built for these tests.
pub fn tend_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CARGO_BIN_EXE_tend") {
        return PathBuf::from(path);
    }
    assert_cmd::cargo::cargo_bin("tend")
}
