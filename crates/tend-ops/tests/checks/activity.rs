//! Connections, transactions, locks and queries.

use tend_ops::Severity;
use tend_testkit::TestDb;

use crate::{Holder, assert_fires, findings, findings_with};

#[test]
fn connections_usage_and_counts_fire_on_low_thresholds() {
    let db = TestDb::create();
    let _a = Holder::open(&db, "app-one");
    let _b = Holder::open(&db, "app-one");
    assert_fires(
        &findings_with(&db, "connections.usage", 0.1),
        "connections.usage",
        Severity::Warning,
    );
    assert_fires(
        &findings_with(&db, "connections.count", 1.0),
        "connections.count",
        Severity::Warning,
    );
    let found = findings_with(&db, "connections.by_application", 0.1);
    assert_fires(&found, "connections.by_application", Severity::Warning);
    assert!(
        found.iter().any(|f| f.subject.starts_with("app-one")),
        "{found:#?}"
    );
    assert_fires(
        &findings_with(&db, "connections.idle", 0.1),
        "connections.idle",
        Severity::Warning,
    );
    // Default thresholds: a test cluster is far from its limits.
    assert!(findings(&db, "connections.usage").is_empty());
}

#[test]
fn idle_in_transaction_and_long_transactions_fire() {
    let db = TestDb::create();
    let holder = Holder::open(&db, "forgetful");
    holder.execute("BEGIN; SELECT 1");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let found = findings_with(&db, "transactions.idle_in_transaction", 1.0);
    assert_fires(
        &found,
        "transactions.idle_in_transaction",
        Severity::Warning,
    );
    assert!(found[0].subject.contains("forgetful"), "{found:#?}");
    assert_fires(
        &findings_with(&db, "transactions.long_running", 1.0),
        "transactions.long_running",
        Severity::Warning,
    );
}

#[test]
fn prepared_transactions_fire_when_old() {
    let db = TestDb::create();
    // max_prepared_transactions is 0 by default: the check must then find nothing.
    assert!(findings_with(&db, "transactions.prepared_old", 0.0).is_empty());
}

#[test]
fn a_blocked_session_and_an_exclusive_queue_fire() {
    let db = TestDb::create();
    db.execute("CREATE TABLE hot (id int)");
    let blocker = Holder::open(&db, "blocker");
    blocker.execute("BEGIN; LOCK TABLE hot IN SHARE MODE");
    let waiter = Holder::open(&db, "migration");
    waiter.start("ALTER TABLE hot ADD COLUMN x int");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let found = findings_with(&db, "locks.blocked", 1.0);
    assert_fires(&found, "locks.blocked", Severity::Warning);
    assert!(
        found[0]
            .message
            .contains(&format!("blocked by pid {}", blocker.pid())),
        "{found:#?}"
    );
    assert_fires(
        &findings_with(&db, "locks.exclusive_queue", 1.0),
        "locks.exclusive_queue",
        Severity::Warning,
    );
}

#[test]
fn deadlocks_are_counted() {
    let db = TestDb::create();
    db.execute("CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1), (2)");
    let one = Holder::open(&db, "one");
    let two = Holder::open(&db, "two");
    one.execute("BEGIN; UPDATE a SET id = id WHERE id = 1");
    two.execute("BEGIN; UPDATE a SET id = id WHERE id = 2");
    one.start("UPDATE a SET id = id WHERE id = 2");
    two.start("UPDATE a SET id = id WHERE id = 1");
    // The deadlock detector runs after deadlock_timeout (1 s).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(one);
    drop(two);
    let mut found = Vec::new();
    for _ in 0..20 {
        found = findings(&db, "locks.deadlocks");
        if !found.is_empty() {
            break;
        }
        // Statistics reach pg_stat_database with a short delay.
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_fires(&found, "locks.deadlocks", Severity::Warning);
}

#[test]
fn long_running_queries_fire() {
    let db = TestDb::create();
    let slow = Holder::open(&db, "report");
    slow.start("SELECT pg_sleep(5)");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let found = findings_with(&db, "queries.long_running", 1.0);
    assert_fires(&found, "queries.long_running", Severity::Warning);
    assert!(found[0].message.contains("pg_sleep"), "{found:#?}");
}

#[test]
fn slow_statements_fire_from_pg_stat_statements() {
    // The test kit's cluster preloads pg_stat_statements; another server may not.
    if !tend_testkit::TestServer::get().is_throwaway() {
        return;
    }
    let db = TestDb::create();
    db.execute("CREATE EXTENSION pg_stat_statements");
    for _ in 0..5 {
        db.execute("SELECT pg_sleep(0.2)");
    }
    let found = findings_with(&db, "queries.slow_statements", 0.1);
    assert_fires(&found, "queries.slow_statements", Severity::Warning);
    assert!(
        found.iter().any(|f| f.message.contains("pg_sleep")),
        "{found:#?}"
    );
}

#[test]
fn slow_statements_say_how_to_enable_pg_stat_statements() {
    let db = TestDb::create();
    let found = findings(&db, "queries.slow_statements");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Unknown);
    assert!(
        found[0].message.contains("shared_preload_libraries"),
        "{found:#?}"
    );
}

#[test]
fn hit_ratios_and_temp_files_fire() {
    let db = TestDb::create();
    // Enough reads for the ratios to mean something, and a sort that spills.
    db.execute(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 300000) g;
         CREATE INDEX ON big (t); ANALYZE big;",
    );
    db.execute("SET work_mem = '64kB'; SELECT count(*) FROM (SELECT t FROM big ORDER BY t DESC) s");
    for _ in 0..12 {
        db.execute("SELECT count(*) FROM big; SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM big WHERE t > '0'");
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    // 100% is at or below a 100.01% threshold: the rule fires on real statistics.
    assert_fires(
        &findings_with(&db, "queries.cache_hit_ratio", 100.01),
        "queries.cache_hit_ratio",
        Severity::Warning,
    );
    assert_fires(
        &findings_with(&db, "queries.index_hit_ratio", 100.01),
        "queries.index_hit_ratio",
        Severity::Warning,
    );
    assert_fires(
        &findings_with(&db, "queries.temp_files", 1.0),
        "queries.temp_files",
        Severity::Warning,
    );
}

#[test]
fn waiting_sessions_and_advisory_locks_are_seen() {
    let db = TestDb::create();
    let holder = Holder::open(&db, "job-runner");
    holder.execute("SELECT pg_advisory_lock(42)");
    let found = findings(&db, "locks.advisory_held");
    assert_fires(&found, "locks.advisory_held", Severity::Info);
    assert!(found[0].subject.contains("job-runner"), "{found:#?}");
    // Five sessions waiting on the lock make the waiting share 100%.
    let waiters: Vec<Holder> = (0..5)
        .map(|i| Holder::open(&db, &format!("w{i}")))
        .collect();
    for w in &waiters {
        w.start("SELECT pg_advisory_lock(42)");
    }
    assert_fires(
        &findings(&db, "connections.waiting_clients"),
        "connections.waiting_clients",
        Severity::Warning,
    );
}

#[test]
fn the_whole_catalog_runs_clean_on_a_fresh_database() {
    let db = TestDb::create();
    db.execute("CREATE TABLE t (id bigint PRIMARY KEY, name text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g; ANALYZE t");
    let report = crate::run_checks(&db, &[], &[]);
    let catalog = tend_ops::checks::catalog();
    assert_eq!(report.results.len(), catalog.len(), "every check ran");
    // The test cluster runs without fsync and full-page writes, for speed, on purpose.
    let expected_on_test_server = ["settings.fsync_off", "settings.full_page_writes_off"];
    for result in report
        .results
        .iter()
        .filter(|r| !expected_on_test_server.contains(&r.id))
    {
        assert_ne!(
            result.severity,
            Severity::Critical,
            "{} is critical on a clean database: {:#?}",
            result.id,
            report.findings
        );
        // Unknown only where the test server lacks something on purpose (a server built
        // without XML cannot read password hashes through query_to_xml).
        let without_xml = !tend_testkit::TestServer::get().has_xml()
            && result.id == "security.weak_password_hashing";
        if result.severity == Severity::Unknown && !without_xml {
            assert!(
                result.id == "queries.slow_statements",
                "{} could not run: {:?}",
                result.id,
                result.note
            );
        }
    }
}

/// Prepared transactions need `max_prepared_transactions` > 0, a restart-only setting: a
/// private cluster has it. An old one holds locks and the xmin horizon.
#[test]
fn old_prepared_transactions_fire_and_hold_the_horizon() {
    use tend_ops::{CheckOverride, RunOptions, checks};

    let private = tend_testkit::PrivateCluster::start(&[("max_prepared_transactions", "5")]);
    let info = private.info.clone();
    let report = crate::on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
        session
            .batch_execute(
                "CREATE TABLE t (id int); BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'tend-test-gid'",
            )
            .await
            .unwrap();
        // Burn a few transaction ids so the horizon's age is above zero.
        for _ in 0..5 {
            session
                .batch_execute("SELECT txid_current()")
                .await
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let tiny = |w: f64| CheckOverride {
            warning: Some(w),
            ..Default::default()
        };
        let options = RunOptions {
            only: vec!["transactions.prepared_old".into(), "xmin.horizon".into()],
            overrides: [
                ("transactions.prepared_old".to_string(), tiny(1.0)),
                ("xmin.horizon".to_string(), tiny(1.0)),
            ]
            .into_iter()
            .collect(),
            ..RunOptions::default()
        };
        let report = tend_ops::runner::run(&session, &checks::catalog(), &options)
            .await
            .unwrap();
        session
            .batch_execute("ROLLBACK PREPARED 'tend-test-gid'")
            .await
            .unwrap();
        report
    });
    drop(private);
    assert_fires(
        &report.findings,
        "transactions.prepared_old",
        Severity::Warning,
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "transactions.prepared_old" && f.subject == "tend-test-gid"),
        "{:#?}",
        report.findings
    );
    assert_fires(&report.findings, "xmin.horizon", Severity::Warning);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "xmin.horizon" && f.message.to_lowercase().contains("prepared")),
        "{:#?}",
        report.findings
    );
}
