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

/// A vacuum waiting behind another session's lock stops when its token fires: the
/// statement is cancelled on the server and the service returns `query_canceled`.
#[test]
fn a_vacuum_waiting_on_a_lock_stops_when_cancelled() {
    use tend_ops::actions;
    let db = TestDb::create();
    db.execute("CREATE TABLE busy (id int)");
    let holder = tend_testkit::Holder::open(&db, "lock-holder");
    holder.execute("BEGIN; LOCK TABLE busy");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = tend_pg::ConnectOptions::default();
        let session = tend_pg::connect(&db.info, &options).await.unwrap();
        let watcher = tend_pg::connect(&db.info, &options).await.unwrap();
        let plan = actions::vacuum_plan(&session, &["busy".to_string()])
            .await
            .unwrap();
        assert_eq!(plan.tables, ["public.busy"]);
        let cancel = CancellationToken::new();
        let vacuum = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                actions::vacuum(&session, &watcher, &plan, false, &cancel, &|_| {}).await
            })
        };
        // Cancel once the VACUUM waits for the table's lock.
        let observer = tend_pg::connect(&db.info, &options).await.unwrap();
        let mut waiting = 0;
        for _ in 0..600 {
            waiting = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                      WHERE query LIKE 'VACUUM%' AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0);
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(waiting, 1, "the VACUUM never waited for the lock");
        cancel.cancel();
        let err = vacuum.await.unwrap().expect_err("a cancelled vacuum fails");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
    });
    drop(holder);
}

/// Every public future of the core is `Send` (spawnable, callable from HTTP handlers); this
/// compiles only while that holds. The two services above are proven by `tokio::spawn`.
#[allow(dead_code, clippy::too_many_arguments)]
fn the_cores_futures_are_send(
    database: &tend_pg::Database,
    client: &tokio_postgres::Client,
    registry: &tend_core::state::Registry,
    store: &tend_backup::Store,
    settings: &Settings,
    backup: tend_core::restore::ChosenBackup,
    restore_plan: &tend_core::restore::RestorePlan,
    restore_request: &tend_core::restore::RestoreRequest,
    drill: &tend_core::backup::DrillRequest,
    prune_plan: tend_core::backup::PrunePlan,
) {
    fn send<T: Send>(_: T) {}
    let tools = settings.tool_search();
    send(tend_core::backup::list(store));
    let admin = tend_pg::ConnInfo::parse("postgresql://localhost/postgres").unwrap();
    let connect = settings.connect_options();
    send(tend_core::demo::recreate_database(&admin, &connect, "d"));
    send(tend_core::demo::row_counts(client));
    send(tend_core::demo::database_size(client));
    send(tend_core::demo::change_out_of_band(client));
    send(tend_core::demo::backup_round_trip(
        &tend_core::demo::RoundTripRequest {
            state_dir: std::path::Path::new(".tend"),
            source: &admin,
            admin: &admin,
            restored: "r",
            tools: &tools,
            connect: &connect,
        },
    ));
    send(tend_core::backup::show(store, "id"));
    send(tend_core::backup::verify(
        store,
        &settings.backup,
        &tools,
        None,
        &mut |_| {},
    ));
    send(tend_core::backup::drill(
        store,
        &settings.backup,
        &tools,
        "id",
        drill,
    ));
    send(tend_core::backup::prune_plan(store, &settings.backup));
    send(tend_core::backup::prune(
        store,
        prune_plan,
        CancellationToken::new(),
    ));
    send(tend_core::restore::choose(store, None));
    send(tend_core::restore::plan(
        backup,
        database.info().clone(),
        restore_request,
    ));
    send(tend_core::restore::run(
        store,
        &settings.backup,
        &tools,
        restore_plan,
        restore_request,
        &mut |_| {},
    ));
    send(tend_core::state::state(registry, client));
    send(tend_core::state::may_create(client));
    send(tend_core::state::ensure(
        registry,
        database.info(),
        database.options(),
    ));
    send(tend_core::health::probe_target(
        database.info(),
        &settings.database,
        &settings.health,
    ));
    let request = tend_core::optimize::OptimizeRequest::default();
    send(tend_core::optimize::plan(client, &request, None));
    let plan = tend_core::optimize::OptimizePlan {
        kept_back: Vec::new(),
        steps: Vec::new(),
        migration: None,
    };
    send(tend_core::optimize::run(
        client,
        &plan,
        &request,
        "20260101000000",
        &|_| {},
    ));
    // The operations services the commands call.
    use tend_ops::actions;
    send(actions::queries(client, &actions::QueryFilter::default()));
    send(actions::locks(client));
    let selection = actions::KillSelection::Pids(Vec::new());
    send(actions::kill_plan(client, &selection));
    let kill = actions::KillPlan {
        targets: Vec::new(),
        missing: Vec::new(),
        hidden_sessions: 0,
        user: String::new(),
    };
    send(actions::kill(client, &kill, false));
    send(actions::vacuum_plan(client, &[]));
    let vacuum = actions::VacuumPlan {
        tables: Vec::new(),
        refusals: actions::Refusals::default(),
    };
    let cancel = CancellationToken::new();
    send(actions::vacuum(
        client,
        client,
        &vacuum,
        false,
        &cancel,
        &|_| {},
    ));
    send(actions::reindex_checked_plan(client, true, None, &[]));
    let reindex = actions::ReindexPlan {
        statements: Vec::new(),
        refusals: actions::Refusals::default(),
    };
    send(actions::reindex(client, &reindex, &cancel, &|_| {}));
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
