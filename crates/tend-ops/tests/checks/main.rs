//! One test binary for the checks catalog: each module creates, on a real cluster, the
//! condition its checks look for and sees them fire.

mod activity;
mod config;
mod maintenance;
mod schema;

use tend_ops::checks;
use tend_ops::{CheckOverride, Finding, RunOptions, Severity};
use tend_pg::ConnInfo;
use tend_testkit::TestDb;

/// Runs checks on `db` (ids or categories) with optional threshold overrides.
pub fn run_checks(
    db: &TestDb,
    only: &[&str],
    overrides: &[(&str, CheckOverride)],
) -> tend_ops::Report {
    run_checks_on(&db.info, only, overrides)
}

/// The same on any database, as any role.
pub fn run_checks_on(
    info: &ConnInfo,
    only: &[&str],
    overrides: &[(&str, CheckOverride)],
) -> tend_ops::Report {
    let info = info.clone();
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

/// Checks that read through `query_to_xml` (sequences without their lock, roles' password
/// hashes) cannot look on a server built without XML support (PyPI's PostgreSQL 18): there
/// they must say so, as `unknown`, and the calling test stops (true).
pub fn skipped_without_xml(db: &TestDb, id: &str) -> bool {
    if tend_testkit::TestServer::get().has_xml() {
        return false;
    }
    let found = findings(db, id);
    assert!(
        !found.is_empty() && found.iter().all(|f| f.severity == Severity::Unknown),
        "{id} on a server without XML support must be unknown: {found:#?}"
    );
    eprintln!("skipped: {id} reads through query_to_xml, and this server has no XML support");
    true
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

/// A second session holding state while checks run (in the test kit, shared with the CLI
/// tests).
pub use tend_testkit::Holder;
