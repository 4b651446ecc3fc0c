//! One test binary for the checks catalog: each module creates, on a real cluster, the
//! condition its checks look for and sees them fire.

mod activity;
mod config;
mod maintenance;
mod schema;

use std::time::Duration;

use tend_ops::checks;
use tend_ops::{CheckOverride, Finding, RunOptions, Severity};
use tend_testkit::TestDb;

/// Runs checks on `db` (ids or categories) with optional threshold overrides.
pub fn run_checks(
    db: &TestDb,
    only: &[&str],
    overrides: &[(&str, CheckOverride)],
) -> tend_ops::Report {
    let info = db.info.clone();
    let options = RunOptions {
        only: only.iter().map(|s| s.to_string()).collect(),
        overrides: overrides
            .iter()
            .map(|(id, o)| (id.to_string(), o.clone()))
            .collect(),
        ..RunOptions::default()
    };
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
        tend_ops::runner::run(&session, &checks::catalog(), &options)
            .await
            .unwrap()
    })
}

/// The findings of one check.
pub fn findings(db: &TestDb, id: &str) -> Vec<Finding> {
    run_checks(db, &[id], &[]).findings
}

/// The findings of one check with its warning threshold set.
pub fn findings_with(db: &TestDb, id: &str, warning: f64) -> Vec<Finding> {
    run_checks(
        db,
        &[id],
        &[(
            id,
            CheckOverride {
                warning: Some(warning),
                ..Default::default()
            },
        )],
    )
    .findings
}

/// Asserts that `id` fired at `severity` or worse, and returns the findings.
pub fn assert_fires(found: &[Finding], id: &str, severity: Severity) {
    assert!(
        found
            .iter()
            .any(|f| f.check == id && f.severity >= severity && f.severity != Severity::Unknown),
        "{id} did not fire at {severity:?}: {found:#?}"
    );
}

/// Runs an async block on its own runtime (tests here are plain #[test]s).
pub fn on_runtime<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    })
    .join()
    .expect("the test's async part panicked")
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
