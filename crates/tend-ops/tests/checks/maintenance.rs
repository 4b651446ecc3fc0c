//! Wraparound, vacuum, the xmin horizon, sizes, replication, checkpoints and archiving.
//!
//! Replication slots made on the shared cluster are dropped by a guard, even when a test
//! fails. Standbys, lost slots and failing archiving need server settings the shared cluster
//! must not have: they are made on a private primary and standby of their own.

use std::time::Duration;

use tend_ops::{CheckOverride, Finding, Severity};
use tend_pg::ConnInfo;
use tend_pg::cluster::{ClusterOptions, LocalCluster};
use tend_testkit::{PrivateCluster, TestDb, TestServer};

use crate::{Holder, assert_fires, findings, findings_with};

/// Every check of this module, to run them all at once.
const MAINTENANCE: &[&str] = &[
    "wraparound",
    "vacuum",
    "xmin",
    "storage",
    "replication",
    "checkpoints",
    "wal",
];

/// Runs `find` until `done` holds (statistics reach the views with a short delay), for at
/// most about five seconds, and returns the last findings.
fn eventually(
    mut find: impl FnMut() -> Vec<Finding>,
    done: impl Fn(&[Finding]) -> bool,
) -> Vec<Finding> {
    let mut found = find();
    for _ in 0..20 {
        if done(&found) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        found = find();
    }
    found
}

fn about(found: &[Finding], subject: &str) -> bool {
    found.iter().any(|f| f.subject == subject)
}

/// Checks (ids or categories) run on any server, with an optional warning threshold for
/// each of them.
fn findings_on(info: &ConnInfo, only: &[&str], warning: Option<f64>) -> Vec<Finding> {
    let overrides: Vec<(&str, CheckOverride)> = only
        .iter()
        .map(|id| {
            (
                *id,
                CheckOverride {
                    warning,
                    ..Default::default()
                },
            )
        })
        .collect();
    crate::run_checks_on(info, only, &overrides).findings
}

/// Runs SQL (one simple query, so one transaction unless it says otherwise) on any server
/// and returns the first column of its rows.
fn sql_on(info: &ConnInfo, sql: &str) -> Vec<Option<String>> {
    tend_testkit::query_column(info, sql)
}

fn no_unknown(found: &[Finding]) {
    let unknown: Vec<&Finding> = found
        .iter()
        .filter(|f| f.severity == Severity::Unknown)
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
}

#[test]
fn the_maintenance_checks_all_run_and_stay_quiet_on_a_fresh_database() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, name text);
         INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g;
         SELECT pg_stat_force_next_flush();",
    );
    // After the insert's statistics are in, or the insert counts as a change since.
    db.execute("ANALYZE t");
    let found = crate::run_checks(&db, MAINTENANCE, &[]).findings;
    no_unknown(&found);
    // Other tests' slots, sessions and checkpoints are cluster-wide: only this database's
    // own objects are sure to be quiet.
    assert!(
        !found
            .iter()
            .any(|f| f.subject == "t" || f.subject == db.name || f.severity == Severity::Critical),
        "{found:#?}"
    );
}

#[test]
fn transaction_id_ages_fire_on_tiny_thresholds() {
    let db = TestDb::create();
    db.execute("CREATE TABLE aging (id int, body text)");
    // Each statement its own transaction: the ages grow.
    for _ in 0..3 {
        db.execute("SELECT txid_current()");
    }
    let found = findings_with(&db, "wraparound.database_xid_age", 1.0);
    assert_fires(&found, "wraparound.database_xid_age", Severity::Warning);
    let ours = found.iter().find(|f| f.subject == db.name).expect("our db");
    assert!(
        ours.message.contains("of the way to the 2^31 stop"),
        "{ours:#?}"
    );

    let found = findings_with(&db, "wraparound.table_xid_age", 1.0);
    assert_fires(&found, "wraparound.table_xid_age", Severity::Warning);
    assert!(found.len() <= 20, "{found:#?}");
    // TOAST tables are reported as their owners.
    assert!(
        !found.iter().any(|f| f.subject.starts_with("pg_toast")),
        "{found:#?}"
    );

    // A fresh database is nowhere near the defaults.
    assert!(!about(
        &findings(&db, "wraparound.database_xid_age"),
        &db.name
    ));
    assert!(findings(&db, "wraparound.table_xid_age").is_empty());
}

#[test]
fn multixact_age_fires_once_multixacts_exist() {
    let db = TestDb::create();
    db.execute("CREATE TABLE shared_rows (id int PRIMARY KEY); INSERT INTO shared_rows VALUES (1)");
    // Two transactions share a row lock: the second makes a multixact.
    let one = Holder::open(&db, "sharer-one");
    let two = Holder::open(&db, "sharer-two");
    one.execute("BEGIN; SELECT * FROM shared_rows WHERE id = 1 FOR SHARE");
    two.execute("BEGIN; SELECT * FROM shared_rows WHERE id = 1 FOR SHARE");
    drop(one);
    drop(two);
    let subject = format!("database {}", db.name);
    let found = findings_with(&db, "wraparound.multixact_age", 1.0);
    assert_fires(&found, "wraparound.multixact_age", Severity::Warning);
    assert!(about(&found, &subject), "{found:#?}");
    assert!(!about(&findings(&db, "wraparound.multixact_age"), &subject));
}

#[test]
fn dead_rows_stale_vacuum_and_disabled_autovacuum_fire() {
    let db = TestDb::create();
    // Autovacuum off, so it cannot clean up before the checks look.
    db.execute(
        "CREATE TABLE churn (id int, body text) WITH (autovacuum_enabled = false);
         INSERT INTO churn SELECT g, 'x' FROM generate_series(1, 20000) g;
         DELETE FROM churn WHERE id <= 15000;
         CREATE TABLE calm (id int, body text) WITH (toast.autovacuum_enabled = off);
         INSERT INTO calm SELECT g, 'x' FROM generate_series(1, 20000) g;
         DELETE FROM calm WHERE id <= 100;
         CREATE TABLE fine (id int);
         SELECT pg_stat_force_next_flush();",
    );
    // 15,000 dead of 20,000: 75%, critical by default.
    let found = eventually(
        || findings(&db, "vacuum.dead_tuples"),
        |f| about(f, "churn"),
    );
    let churn = found.iter().find(|f| f.subject == "churn").expect("churn");
    assert_eq!(churn.severity, Severity::Critical, "{churn:#?}");
    assert!(
        churn.message.contains("15000 dead and 5000 live rows"),
        "{churn:#?}"
    );
    // 100 dead rows are under the 10,000-row floor.
    assert!(!about(&found, "calm"), "{found:#?}");

    // Never vacuumed while past its autovacuum threshold: stale from the first second.
    let found = findings_with(&db, "vacuum.stale", 0.0);
    assert_fires(&found, "vacuum.stale", Severity::Warning);
    let stale = found.iter().find(|f| f.subject == "churn").expect("churn");
    assert!(stale.message.contains("never vacuumed"), "{stale:#?}");
    assert!(
        stale.message.contains("autovacuum is disabled"),
        "{stale:#?}"
    );
    assert!(!about(&found, "fine"), "{found:#?}");

    let found = findings(&db, "vacuum.autovacuum_disabled");
    assert_fires(&found, "vacuum.autovacuum_disabled", Severity::Warning);
    let calm = found.iter().find(|f| f.subject == "calm").expect("calm");
    assert!(calm.message.contains("(its TOAST table, "), "{calm:#?}");
    assert!(
        about(&found, "churn") && !about(&found, "fine"),
        "{found:#?}"
    );

    // A vacuum makes it fresh again.
    db.execute("VACUUM churn");
    assert!(!about(&findings_with(&db, "vacuum.stale", 600.0), "churn"));
}

#[test]
fn out_of_date_statistics_fire() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE loaded (id int) WITH (autovacuum_enabled = false);
         INSERT INTO loaded SELECT generate_series(1, 5000);
         CREATE TABLE analyzed (id int) WITH (autovacuum_enabled = false);
         INSERT INTO analyzed SELECT generate_series(1, 5000);
         SELECT pg_stat_force_next_flush();",
    );
    db.execute("ANALYZE analyzed");
    let found = eventually(
        || findings(&db, "vacuum.stale_analyze"),
        |f| about(f, "loaded"),
    );
    assert_fires(&found, "vacuum.stale_analyze", Severity::Warning);
    let loaded = found
        .iter()
        .find(|f| f.subject == "loaded")
        .expect("loaded");
    assert!(loaded.message.contains("never analyzed"), "{loaded:#?}");
    assert!(!about(&found, "analyzed"), "{found:#?}");
}

#[test]
fn a_slow_vacuum_is_seen() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE wide (id int, body text) WITH (autovacuum_enabled = false);
         INSERT INTO wide SELECT g, repeat('x', 500) FROM generate_series(1, 5000) g;",
    );
    // Throttled to a crawl: it sleeps after nearly every page.
    let vacuum = Holder::open(&db, "slow-vacuum");
    vacuum.execute("SET vacuum_cost_delay = '100ms'; SET vacuum_cost_limit = 1");
    vacuum.start("VACUUM wide");
    std::thread::sleep(Duration::from_millis(900));
    let found = findings_with(&db, "vacuum.long_running", 1.0);
    assert_fires(&found, "vacuum.long_running", Severity::Warning);
    assert!(
        found
            .iter()
            .any(|f| f.subject.ends_with(" on wide") && f.message.contains("a manual VACUUM")),
        "{found:#?}"
    );
    assert!(
        !findings(&db, "vacuum.long_running")
            .iter()
            .any(|f| f.subject.ends_with(" on wide"))
    );
    db.execute(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'slow-vacuum' AND datname = current_database()",
    );
}

#[test]
fn a_snapshot_holding_the_xmin_horizon_is_named() {
    let db = TestDb::create();
    let holder = Holder::open(&db, "snapshot-holder");
    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class");
    for _ in 0..3 {
        db.execute("SELECT txid_current()");
    }
    let found = findings_with(&db, "xmin.horizon", 1.0);
    assert_fires(&found, "xmin.horizon", Severity::Warning);
    let ours = found
        .iter()
        .find(|f| f.subject.contains("snapshot-holder"))
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert!(ours.message.contains(&db.name), "{ours:#?}");
    assert!(
        !findings(&db, "xmin.horizon")
            .iter()
            .any(|f| f.subject.contains("snapshot-holder"))
    );
}

#[test]
fn sizes_are_listed_when_asked_for() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE sized (id int PRIMARY KEY, body text);
         INSERT INTO sized SELECT g, repeat('x', 200) FROM generate_series(1, 10000) g;",
    );
    db.execute("VACUUM ANALYZE sized");
    // Opt-in: no threshold, no finding.
    assert!(findings(&db, "storage.database_size").is_empty());
    let found = findings_with(&db, "storage.database_size", 1_000_000.0);
    assert_fires(&found, "storage.database_size", Severity::Warning);
    assert!(about(&found, &db.name), "{found:#?}");

    // Small tables stay off the list unless its floor is lowered.
    assert!(findings(&db, "storage.largest_tables").is_empty());
    let found = findings_with(&db, "storage.largest_tables", 1_000_000.0);
    assert_fires(&found, "storage.largest_tables", Severity::Info);
    let sized = found.iter().find(|f| f.subject == "sized").expect("sized");
    assert!(sized.value.unwrap() > 2_000_000.0, "{sized:#?}");
    assert!(sized.message.contains("indexes"), "{sized:#?}");
}

#[test]
fn requested_checkpoints_are_counted() {
    let db = TestDb::create();
    // Ten checkpoints by hand, all requested: cluster-wide counters only.
    for _ in 0..10 {
        db.execute("CHECKPOINT");
    }
    let found = eventually(
        || findings_with(&db, "checkpoints.requested", 1.0),
        |f| !f.is_empty(),
    );
    assert_fires(&found, "checkpoints.requested", Severity::Warning);
    assert!(found[0].message.contains("max_wal_size"), "{found:#?}");
    assert!(findings_with(&db, "checkpoints.requested", 100.01).is_empty());
    // The shared cluster does not archive: nothing is failing or waiting.
    assert!(findings(&db, "wal.archiving_failing").is_empty());
    assert!(findings_with(&db, "wal.archive_backlog", 1.0).is_empty());
}

/// Drops a replication slot of the shared cluster when the test ends, however it ends.
struct SlotGuard {
    name: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let admin = TestServer::get().admin.clone();
        let sql = format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}'",
            self.name
        );
        let _ = std::thread::spawn(move || sql_on(&admin, &sql)).join();
    }
}

#[test]
fn an_unused_slot_retaining_wal_fires() {
    let db = TestDb::create();
    let slot = SlotGuard {
        name: format!("{}_slot", db.name),
    };
    db.execute(&format!(
        "SELECT pg_create_physical_replication_slot('{}', true)",
        slot.name
    ));
    db.execute("CREATE TABLE wal_maker AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    let found = findings(&db, "replication.slots_inactive");
    assert_fires(&found, "replication.slots_inactive", Severity::Warning);
    let ours = found
        .iter()
        .find(|f| f.subject == slot.name)
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert!(ours.value.unwrap() > 100_000.0, "{ours:#?}");

    let found = findings_with(&db, "replication.slots_wal_retained", 1.0);
    assert_fires(&found, "replication.slots_wal_retained", Severity::Warning);
    assert!(about(&found, &slot.name), "{found:#?}");
    assert!(!about(
        &findings(&db, "replication.slots_wal_retained"),
        &slot.name
    ));
    // Not lost: nothing caps the WAL a slot may keep on the shared cluster.
    assert!(!about(&findings(&db, "replication.slots_lost"), &slot.name));
}

/// A private primary (archiving to a command that fails, slots capped at 1 MB of WAL) and a
/// streaming standby of it with hot_standby_feedback, each stopped and deleted on drop.
struct Replicas {
    standby: LocalCluster,
    primary_info: ConnInfo,
    standby_info: ConnInfo,
    // Dropped after the standby (see Drop): it holds the directory both live in.
    _primary: PrivateCluster,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        let _ = self.standby.kill();
        let _ = self.standby.destroy();
    }
}

impl Replicas {
    fn start() -> Replicas {
        let primary = PrivateCluster::start(&[
            ("archive_mode", "on"),
            ("archive_command", "false"),
            ("max_slot_wal_keep_size", "1MB"),
        ]);
        let standby = LocalCluster::new(
            primary.dir().join("standby"),
            ClusterOptions {
                settings: vec![
                    ("fsync".to_string(), "off".to_string()),
                    ("hot_standby_feedback".to_string(), "on".to_string()),
                ],
                ..ClusterOptions::default()
            },
        );
        standby
            .init_standby(&primary.cluster)
            .unwrap_or_else(|e| panic!("cannot make the private standby: {e}"));
        let started = standby
            .start(&mut |_| {})
            .unwrap_or_else(|e| panic!("cannot start the private standby: {e}"));
        Replicas {
            standby_info: standby.conninfo(started.port, "postgres"),
            primary_info: primary.info.clone(),
            standby,
            _primary: primary,
        }
    }
}

#[test]
fn a_standby_slots_and_archiving_on_a_private_primary() {
    if !TestServer::get().is_throwaway() {
        eprintln!("skipped: the private primary and standby need local PostgreSQL programs");
        return;
    }
    let replicas = Replicas::start();
    let primary = &replicas.primary_info;
    let standby = &replicas.standby_info;

    // The standby streams, and its feedback holds an xmin on the primary.
    let mut ready = Vec::new();
    for _ in 0..40 {
        ready = sql_on(
            primary,
            "SELECT state FROM pg_stat_replication WHERE state = 'streaming' AND backend_xmin IS NOT NULL",
        );
        if !ready.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!ready.is_empty(), "the standby did not start streaming");

    // Replay paused: the primary moves on, the standby (and its xmin) stay behind.
    sql_on(standby, "SELECT pg_wal_replay_pause()");
    sql_on(primary, "CREATE TABLE moving (id int)");
    for _ in 0..5 {
        sql_on(
            primary,
            "INSERT INTO moving SELECT generate_series(1, 1000)",
        );
    }
    std::thread::sleep(Duration::from_millis(1200));
    sql_on(primary, "INSERT INTO moving VALUES (0)");

    let found = eventually(
        || findings_on(primary, &["replication.lag_bytes"], Some(1.0)),
        |f| !f.is_empty(),
    );
    assert_fires(&found, "replication.lag_bytes", Severity::Warning);
    assert!(findings_on(primary, &["replication.lag_bytes"], None).is_empty());

    let found = eventually(
        || findings_on(primary, &["replication.lag"], Some(0.5)),
        |f| !f.is_empty(),
    );
    assert_fires(&found, "replication.lag", Severity::Warning);
    assert!(found[0].message.contains("streaming"), "{found:#?}");
    assert!(findings_on(primary, &["replication.lag"], None).is_empty());

    let found = findings_on(primary, &["xmin.horizon"], Some(1.0));
    assert_fires(&found, "xmin.horizon", Severity::Warning);
    assert!(
        found.iter().any(
            |f| f.subject.starts_with("standby ") && f.message.contains("hot_standby_feedback")
        ),
        "{found:#?}"
    );

    // A slot past max_slot_wal_keep_size (1 MB): three segment switches and a checkpoint.
    sql_on(
        primary,
        "SELECT pg_create_physical_replication_slot('left_behind', true)",
    );
    for _ in 0..3 {
        sql_on(primary, "INSERT INTO moving VALUES (1)");
        sql_on(primary, "SELECT pg_switch_wal()");
    }
    sql_on(primary, "CHECKPOINT");
    let found = findings_on(primary, &["replication.slots_lost"], None);
    assert_fires(&found, "replication.slots_lost", Severity::Critical);
    assert!(about(&found, "left_behind"), "{found:#?}");

    // archive_command is `false`: every completed segment fails and waits.
    let found = eventually(
        || findings_on(primary, &["wal.archiving_failing"], None),
        |f| !f.is_empty(),
    );
    assert_fires(&found, "wal.archiving_failing", Severity::Critical);
    assert!(
        found[0].message.contains("last success never"),
        "{found:#?}"
    );
    let found = findings_on(primary, &["wal.archive_backlog"], Some(1.0));
    assert_fires(&found, "wal.archive_backlog", Severity::Warning);

    // Every check of this module runs on a primary and on a standby.
    no_unknown(&findings_on(primary, MAINTENANCE, None));
    no_unknown(&findings_on(standby, MAINTENANCE, None));
}
