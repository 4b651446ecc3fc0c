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
) {
    fn send<T: Send>(_: T) {}
    send(tend_core::state::state(registry, client));
    send(tend_core::state::may_create(client));
    send(tend_core::state::ensure(
        registry,
        database.info(),
        database.options(),
    ));
}

/// The schema and doctor services are `Send` too: `tend serve` will run them from its
/// scheduler and handlers.
#[allow(dead_code)]
fn the_schema_and_doctor_futures_are_send(
    settings: &Settings,
    info: &tend_pg::ConnInfo,
    shadows: &tend_schema::shadow::Shadows,
    source: &dyn tend_schema::source::Source,
    migrations: &[tend_migrate::Migration],
    run_options: &tend_migrate::RunOptions,
) {
    fn send<T: Send>(_: T) {}
    let request = tend_core::schema::DriftRequest {
        info,
        format: tend_migrate::Format::Tend,
        migrations,
        run_options,
    };
    send(tend_core::schema::place_shadows(
        &settings.database,
        Some(info),
        None,
    ));
    send(tend_core::schema::server_major(
        info,
        &settings.connect_options(),
    ));
    send(tend_core::schema::drift(request, shadows));
    send(tend_core::schema::verify(request, shadows));
    send(tend_core::schema::diff(
        source,
        source,
        Some(shadows),
        &tend_schema::diff::DiffOptions::default(),
    ));
    send(tend_core::schema::dump(source, None));
    send(tend_core::schema::clear_cache(shadows));
    send(tend_core::doctor::diagnose(tend_core::doctor::Diagnosis {
        settings,
        config_error: None,
        target: tend_core::doctor::DoctorTarget::LocalCluster { info: info.clone() },
    }));
    send(tend_core::doctor::database(settings, "database", info));
}
