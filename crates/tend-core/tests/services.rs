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
    migrations: &tend_core::migrate::Migrations,
    cancel: &CancellationToken,
    shadows: &tend_schema::shadow::Shadows,
    desired: &dyn tend_schema::source::Source,
) {
    use tend_core::migrate::{self, DeployRequest, ResetRequest, ResolveRequest, RollbackRequest};
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
    send(tend_core::backup::prune_plan(store, &settings.backup, None));
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
        &CancellationToken::new(),
        &mut |_| {},
    ));
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
        migrations,
        &DeployRequest::default(),
        cancel,
        &mut |_| {},
    ));
    send(migrate::status(database, migrate, migrations));
    send(migrate::dev_plan(
        shadows,
        &migrations.files,
        migrations.project.format,
        desired,
        Vec::new(),
    ));
    send(migrate::resolve(
        database,
        migrate,
        migrations,
        &resolve,
        &mut |_| {},
    ));
    send(migrate::plan_rollback(
        database, migrate, migrations, &rollback,
    ));
    send(migrate::rollback(
        database,
        migrate,
        migrations,
        &rollback,
        &plan,
        &mut |_| {},
    ));
    send(migrate::plan_reset(database, migrations));
    send(migrate::reset(
        database,
        migrate,
        migrations,
        &ResetRequest::default(),
        cancel,
        &mut |_| {},
    ));
    send(migrate::baseline(
        database,
        migrate,
        migrations,
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

/// Settings of a project in `project` with nothing configured.
fn plain_settings(project: &Path) -> Settings {
    Settings::resolve(project, &|_: &str| None, &FlagOverrides::default()).unwrap()
}

#[test]
fn the_migration_services_run_spawned_on_one_runtime() {
    use tend_core::migrate::{self, DeployRequest, MigrateEvent, MigrationProject};

    let db = TestDb::create();
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("migrations")).unwrap();
    std::fs::write(
        project
            .path()
            .join("migrations/20240101_000000_widgets.sql"),
        "CREATE TABLE widgets (id int PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(
        project
            .path()
            .join("migrations/20240102_000000_gadgets.sql"),
        "CREATE TABLE gadgets (id int PRIMARY KEY);\n",
    )
    .unwrap();
    let settings = plain_settings(project.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let database = settings.database.handle(db.info.clone());
        let migrations = MigrationProject::resolve(&settings.migrate, project.path())
            .load()
            .unwrap();
        let deploy = {
            let (database, migrate, migrations) = (
                database.clone(),
                settings.migrate.clone(),
                migrations.clone(),
            );
            tokio::spawn(async move {
                let mut applied = Vec::new();
                let report = migrate::deploy(
                    &database,
                    &migrate,
                    &migrations,
                    &DeployRequest::default(),
                    &CancellationToken::new(),
                    &mut |event| {
                        if let MigrateEvent::Run(tend_migrate::Event::Applied { name, .. }) = event
                        {
                            applied.push(name);
                        }
                    },
                )
                .await;
                (report, applied)
            })
        };
        let (report, applied) = deploy.await.unwrap();
        let report = report.expect("the deploy succeeds");
        assert_eq!(report.applied.len(), 2);
        assert_eq!(
            applied,
            ["20240101_000000_widgets", "20240102_000000_gadgets"],
            "each applied migration is reported as it happens"
        );
        let status = {
            let (database, migrate, migrations) = (
                database.clone(),
                settings.migrate.clone(),
                migrations.clone(),
            );
            tokio::spawn(async move { migrate::status(&database, &migrate, &migrations).await })
        };
        let reset_plan = {
            let (database, migrations) = (database.clone(), migrations.clone());
            tokio::spawn(async move { migrate::plan_reset(&database, &migrations).await })
        };
        let status = status.await.unwrap().expect("status reads");
        assert!(status.up_to_date, "{status:?}");
        let reset_plan = reset_plan.await.unwrap().expect("the reset plan reads");
        assert_eq!(reset_plan.would_drop_schemas, ["public"]);
        assert_eq!(reset_plan.would_apply.len(), 2);
    });
}

/// A seed that manages its own transactions, cancelled while a statement runs: the statement
/// is cancelled on the server, what committed before stays, nothing after runs, and the
/// error says so.
#[test]
fn a_cancelled_seed_stops_in_its_running_statement_and_keeps_what_committed() {
    use tend_core::migrate::{self, MigrateServiceError, SeedRequest};
    use tend_migrate::MigrateError;

    let db = TestDb::create();
    db.execute("CREATE TABLE items (id int)");
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("seed.sql"),
        "BEGIN;\nINSERT INTO items VALUES (1);\nCOMMIT;\nSELECT pg_advisory_lock(4242);\nINSERT INTO items VALUES (2);\n",
    )
    .unwrap();
    let settings = plain_settings(project.path());
    // The seed's fourth statement waits on this session's lock: it is running when the
    // token fires.
    let holder = tend_testkit::Holder::open(&db, "lock-holder");
    holder.execute("SELECT pg_advisory_lock(4242)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let seed = {
        let database = settings.database.handle(db.info.clone());
        let (migrate, cancel) = (settings.migrate.clone(), cancel.clone());
        let request = SeedRequest {
            project_root: project.path().to_path_buf(),
            file: None,
            optional: false,
        };
        runtime.spawn(async move { migrate::seed(&database, &migrate, &request, &cancel).await })
    };
    let waiting = "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
    let mut polls = 0;
    while db.query_column(waiting) != [Some("1".to_string())] {
        polls += 1;
        assert!(polls < 1200, "the seed never waited for the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    cancel.cancel();
    let result = runtime.block_on(seed).unwrap();
    drop(holder);
    match result {
        Err(MigrateServiceError::Migrate(MigrateError::Interrupted { state, .. })) => {
            assert!(
                state.contains("stopped in its statement at line 4"),
                "{state}"
            );
            assert!(
                state.contains("its first 3 statements (through line 3) stayed committed"),
                "{state}"
            );
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    assert_eq!(
        db.query_column("SELECT id::text FROM items"),
        [Some("1".to_string())],
        "the committed row stays and the statement after the cancel never ran"
    );
}
