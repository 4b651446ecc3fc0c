//! The core's services called the way the daemon will call them: spawned on one tokio
//! runtime, sharing one pooled handle, with no `block_on` inside.

use std::path::Path;
use std::time::Duration;

use tend_core::backup::BackupRequest;
use tend_core::checks::Selection;
use tend_core::settings::{FlagOverrides, Settings};
use tend_testkit::TestDb;
use tokio_util::sync::CancellationToken;

/// Settings as a project with a directory store and a passphrase would resolve them.
fn settings(project: &Path, store: &Path) -> Settings {
    let store = store.display().to_string();
    let env = move |var: &str| match var {
        "BACKUP_DIR" => Some(store.clone()),
        "BACKUP_ENCRYPTION_KEY" => Some("correct horse battery staple".to_string()),
        "DB_POOL_MAX" => Some("4".to_string()),
        _ => None,
    };
    Settings::resolve(project, &env, &FlagOverrides::default()).unwrap()
}

#[test]
fn a_backup_and_a_check_run_concurrently_inside_one_runtime() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE items AS
           SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 20000) g",
    );
    let (project, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let settings = settings(project.path(), store.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let database = settings.database.handle(db.info.clone());
        assert_eq!(
            database.pool_options().max_size,
            4,
            "DB_POOL_MAX sizes the pool"
        );
        let backup = {
            let (database, backup_settings) = (database.clone(), settings.backup.clone());
            let store = tend_backup::Store::open(&backup_settings.store).unwrap();
            let tools = tend_pg::ToolSearch::new(tend_testkit::server_bindir());
            tokio::spawn(async move {
                let request = BackupRequest {
                    globals: false,
                    threads: 1,
                };
                tend_core::backup::run(
                    &database,
                    &store,
                    &backup_settings,
                    tools,
                    &request,
                    CancellationToken::new(),
                    &mut |_| {},
                )
                .await
            })
        };
        let check = {
            let (database, check_settings) = (database.clone(), settings.checks.clone());
            tokio::spawn(async move {
                let catalog = tend_ops::checks::catalog();
                tend_core::checks::run_and_record(
                    &database,
                    &check_settings,
                    &catalog,
                    &Selection::default(),
                    &|_| {},
                )
                .await
            })
        };
        let (backup, check) = tokio::time::timeout(Duration::from_secs(180), async {
            (backup.await.unwrap(), check.await.unwrap())
        })
        .await
        .expect("both services finish");
        let manifest = backup.expect("the backup succeeds");
        let items = manifest.tables.iter().find(|t| t.table == "items");
        assert_eq!(items.map(|t| t.rows), Some(20_000), "{:?}", manifest.tables);
        let report = check.expect("the checks run");
        assert!(!report.checks.is_empty());
        assert!(report.history.kept, "{:?}", report.history);
        // The report is what `tend check --json` prints.
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "status",
            "exit_code",
            "server",
            "millis",
            "checks",
            "findings",
            "history",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
    });
}

/// Every public future of the core is `Send` (spawnable, callable from HTTP handlers); this
/// compiles only while that holds. The two services above are proven by `tokio::spawn`.
#[allow(dead_code)]
fn the_cores_futures_are_send(
    database: &tend_pg::Database,
    client: &tokio_postgres::Client,
    registry: &tend_core::state::Registry,
    settings: &Settings,
    project: &tend_core::migrate::MigrationProject,
    cancel: &CancellationToken,
) {
    use tend_core::migrate::{self, DeployRequest, ResetRequest, ResolveRequest, RollbackRequest};
    fn send<T: Send>(_: T) {}
    let migrate = &settings.migrate;
    let seed = migrate::SeedRequest {
        project_root: settings.project_root.clone(),
        file: None,
        optional: true,
    };
    let rollback = RollbackRequest::default();
    let plan = migrate::RollbackPlan {
        would_roll_back: Vec::new(),
    };
    let resolve = ResolveRequest::Applied("20240101000000_init".to_string());
    send(migrate::deploy(
        database,
        migrate,
        project,
        &DeployRequest::default(),
        cancel,
        &mut |_| {},
    ));
    send(migrate::status(database, migrate, project));
    send(migrate::resolve(
        database,
        migrate,
        project,
        &resolve,
        &mut |_| {},
    ));
    send(migrate::plan_rollback(
        database, migrate, project, &rollback,
    ));
    send(migrate::rollback(
        database,
        migrate,
        project,
        &rollback,
        &plan,
        &mut |_| {},
    ));
    send(migrate::plan_reset(database, project));
    send(migrate::reset(
        database,
        migrate,
        project,
        &ResetRequest::default(),
        cancel,
        &mut |_| {},
    ));
    send(migrate::baseline(
        database,
        migrate,
        project,
        None,
        &mut |_| {},
    ));
    send(migrate::seed(database, migrate, &seed, cancel));
    send(tend_core::local::ensure_database(
        &settings.database,
        database.info(),
        "app",
    ));
    send(tend_core::state::state(registry, client));
    send(tend_core::state::may_create(client));
    send(tend_core::state::ensure(
        registry,
        database.info(),
        database.options(),
    ));
}
