//! `tend health`, `check`, `queries`, `locks`, `kill`, `vacuum`, `reindex` and `optimize`
//! against real sessions.

use std::time::Duration;

use tend_testkit::{Holder, TestDb, TestProject};

use crate::run;

#[test]
fn health_is_ok_and_nagios_coded() {
    let db = TestDb::create();
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).arg("health"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK - "), "{out}");
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["health", "--json"]));
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["status"], "ok");
    // A latency threshold no server meets: warning, exit 1.
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("DB_CONNECTION_TIME_THRESHOLD", "0.0001")
        .arg("health"));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("WARNING"), "{out}");
    // Nothing listening: critical, exit 2.
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", "postgresql://x:pw@127.0.0.1:1/x")
        .arg("health"));
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("CRITICAL"), "{out}");
    // The replica probe: pointing at a primary is critical.
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("DATABASE_READ_REPLICA_URL", db.url())
        .arg("health"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not in recovery"), "{out}");
}

#[test]
fn check_lists_the_catalog_with_thresholds() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().args(["check", "--list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(doc["count"].as_u64().unwrap() as usize, checks.len());
    assert!(
        checks.len() >= 60,
        "the catalog has {} checks",
        checks.len()
    );
    // Every check is SQL of the catalog's but the two the core runs itself: the spool
    // (on this machine) and the retention backlog (from the rules in tend.toml).
    let core = ["wal.spooled", "cleanup.backlog"];
    for id in core {
        assert!(checks.iter().any(|c| c["id"] == id), "no {id}");
    }
    for check in checks {
        let sql = check["sql"].as_str().unwrap();
        assert!(
            sql.contains("SELECT") || core.iter().any(|id| check["id"] == *id),
            "{check}"
        );
        assert!(check.get("warning").is_some() && check.get("critical").is_some());
    }
    // Thresholds from tend.toml are the ones in force.
    project.write("tend.toml", "[checks.\"locks.blocked\"]\nwarning = 7\n");
    let (_, out, _) =
        run(project
            .tend()
            .args(["check", "--list", "--json", "--only", "locks.blocked"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["checks"][0]["warning"], 7.0);
    assert_eq!(doc["checks"][0]["default_warning"], 60.0);
    // An unknown check id in tend.toml names the nearest one.
    project.write("tend.toml", "[checks.\"locks.blockd\"]\nwarning = 7\n");
    let (code, _, err) = run(project.tend().args(["check", "--list"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("did you mean `locks.blocked`"), "{err}");
    let (code, _, err) = run(project.tend().args(["check", "--only", "nonsense"]));
    assert_eq!(code, 3, "{err}");
}

/// The acceptance case, with default thresholds: a session idle in a transaction for over a
/// minute, a lock chain blocked for over a minute, a foreign key without an index and a
/// sequence at 99% of its maximum, each reported under its id.
#[test]
fn default_thresholds_catch_the_classic_four() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
         CREATE SEQUENCE nearly_out MAXVALUE 100; SELECT setval('nearly_out', 99);
         CREATE TABLE hot (id int)",
    );
    let idle = Holder::open(&db, "forgetful-worker");
    idle.execute("BEGIN; SELECT 1");
    let blocker = Holder::open(&db, "blocker");
    blocker.execute("BEGIN; LOCK TABLE hot IN EXCLUSIVE MODE");
    let waiter = Holder::open(&db, "waiter");
    waiter.start("SELECT * FROM hot FOR UPDATE");
    std::thread::sleep(Duration::from_secs(62));
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["check", "--json"]));
    assert!(code == 1 || code == 2, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "warning" || f["severity"] == "critical")
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for id in [
        "transactions.idle_in_transaction",
        "locks.blocked",
        "constraints.fk_without_index",
        "sequences.near_max",
    ] {
        if id == "sequences.near_max" && !tend_testkit::TestServer::get().has_xml() {
            // Read through query_to_xml: unknown on a server built without XML support.
            continue;
        }
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    drop(waiter);
    drop(blocker);
    drop(idle);
}

#[test]
fn kill_asks_refuses_dry_runs_and_cancels() {
    let db = TestDb::create();
    let slow = Holder::open(&db, "slow-report");
    slow.start("SELECT pg_sleep(30)");
    std::thread::sleep(Duration::from_millis(1200));
    let project = TestProject::new();
    let tend = |args: &[&str]| run(project.tend().env("DATABASE_URL", db.url()).args(args));
    let alive = || {
        db.query_column("SELECT count(*)::text FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'")
    };
    let (code, out, _) = tend(&["kill", "--longer-than", "1s", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("would pid") && out.contains("slow-report"),
        "{out}"
    );
    assert_eq!(alive(), vec![Some("1".into())]);
    let (code, _, err) = tend(&["kill", "--longer-than", "1s"]);
    assert_eq!(code, 6, "{err}");
    assert_eq!(alive(), vec![Some("1".into())]);
    let (code, out, err) = tend(&["kill", "--longer-than", "1s", "--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(alive(), vec![Some("0".into())]);
    // Idle sessions need --terminate.
    let (code, _, err) = tend(&["kill", "--idle-in-transaction", "1s"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = tend(&["kill", "999999", "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("999999"), "{err}");
}

#[test]
fn queries_and_locks_show_the_chain() {
    let db = TestDb::create();
    db.execute("CREATE TABLE t (id int)");
    let blocker = Holder::open(&db, "holder-app");
    blocker.execute("BEGIN; LOCK TABLE t");
    let waiter = Holder::open(&db, "waiting-app");
    waiter.start("SELECT * FROM t");
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).arg("locks"));
    assert_eq!(code, 0, "{err}");
    let holder_line = out.lines().position(|l| l.contains("holder-app")).unwrap();
    let waiter_line = out.lines().position(|l| l.contains("waiting-app")).unwrap();
    assert!(holder_line < waiter_line, "{out}");
    assert!(
        out.contains(&format!("tend kill {}", blocker.pid())),
        "{out}"
    );
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["queries", "--json"]));
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["application"] == "waiting-app")
    );
}

#[test]
fn vacuum_reindex_and_optimize_do_what_they_say() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int, parent_id int REFERENCES parent (id), email text);
         INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
         INSERT INTO child SELECT g, g % 100 + 1, 'same' FROM generate_series(1, 50000) g;
         CREATE INDEX child_id_a ON child (id); CREATE INDEX child_id_b ON child (id);",
    );
    // A failed concurrent build leaves an invalid index.
    let _ = std::process::Command::new("psql")
        .args([
            db.url().as_str(),
            "-Xqc",
            "CREATE UNIQUE INDEX CONCURRENTLY child_email_key ON child (email)",
        ])
        .output();
    let project = TestProject::new();
    let tend = |args: &[&str]| run(project.tend().env("DATABASE_URL", db.url()).args(args));
    let (code, out, err) = tend(&["vacuum", "--analyze", "child"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        db.query_column("SELECT (last_vacuum IS NOT NULL AND last_analyze IS NOT NULL)::text FROM pg_stat_user_tables WHERE relname = 'child'"),
        vec![Some("true".into())]
    );
    let (code, out, _) = tend(&["reindex", "--invalid", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("REINDEX INDEX CONCURRENTLY public.child_email_key"),
        "{out}"
    );
    // Rebuilding a unique index over duplicates fails again, with PostgreSQL's reason.
    let (code, _, err) = tend(&["reindex", "--invalid"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("could not create unique index"), "{err}");
    assert!(err.contains("SQLSTATE 23505"), "{err}");
    // ... and leaves no half-built copy behind.
    assert_eq!(
        db.query_column(
            "SELECT count(*)::text FROM pg_class WHERE relname LIKE 'child_email_key_ccnew%'"
        ),
        vec![Some("0".into())]
    );
    db.execute("DROP INDEX child_email_key");

    let (code, out, _) = tend(&["optimize", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("CREATE INDEX CONCURRENTLY \"child_parent_id_idx\""),
        "{out}"
    );
    assert!(
        out.contains("(with --apply) DROP INDEX CONCURRENTLY"),
        "{out}"
    );
    let (code, out, err) = tend(&["optimize"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("need --apply"), "{out}");
    assert_eq!(
        db.query_column("SELECT count(*)::text FROM pg_indexes WHERE tablename = 'child'"),
        vec![Some("3".into())]
    );
    assert_eq!(tend(&["optimize", "--apply"]).0, 6);
    let (code, out, err) = tend(&["optimize", "--apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        db.query_column("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'child'"),
        vec![Some("child_parent_id_idx".into())]
    );
}

#[test]
fn check_history_is_kept_and_growth_is_reported() {
    let db = TestDb::create();
    db.execute("CREATE TABLE events AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 200000) g");
    let project = TestProject::new();
    let tend = |args: &[&str]| run(project.tend().env("DATABASE_URL", db.url()).args(args));
    let (_, out, err) = tend(&["check", "--json", "--only", "storage.growth"]);
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(doc["history"]["kept"], true, "{doc}");
    assert_eq!(
        db.query_column("SELECT count(*)::text FROM tend.check_runs"),
        vec![Some("1".into())]
    );
    db.execute("INSERT INTO events SELECT g, md5(g::text) FROM generate_series(1, 200000) g");
    let (code, out, _) = tend(&["check", "--json", "--only", "storage.growth"]);
    assert!(code >= 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["subject"] == "public.events"),
        "{doc}"
    );
    // Opting out writes nothing.
    let (_, out, _) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("TEND_CHECK_HISTORY", "off")
        .args(["check", "--json", "--only", "storage.growth"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["history"]["kept"], false);
    assert_eq!(
        db.query_column("SELECT count(*)::text FROM tend.check_runs"),
        vec![Some("2".into())]
    );
}

#[test]
fn checks_work_without_superuser_and_say_what_they_could_not_see() {
    let server = tend_testkit::TestServer::get();
    let db = TestDb::create();
    let Some(mut monitor) = server.password_user("tend_monitor_role", "monitor-pw", &db.name)
    else {
        return;
    };
    db.execute("GRANT pg_monitor TO tend_monitor_role");
    monitor.set("sslmode", "disable");
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", monitor.to_secret_string())
        .env("TEND_CHECK_HISTORY", "off")
        .args(["check", "--json"]));
    assert!(code <= 2, "{out}{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(doc["server"]["is_superuser"], false);
    for result in doc["checks"].as_array().unwrap() {
        if result["severity"] == "unknown" {
            // Anything it could not see is said, with the reason.
            assert!(
                result["note"].as_str().is_some_and(|n| !n.is_empty()),
                "{result}"
            );
        }
    }
}

#[test]
fn kill_never_touches_another_database() {
    let ours = TestDb::create();
    let theirs = TestDb::create();
    let slow = Holder::open(&theirs, "someone-else");
    slow.start("SELECT pg_sleep(10)");
    std::thread::sleep(Duration::from_millis(1200));
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", ours.url()).args([
        "kill",
        "--longer-than",
        "1s",
        "--yes",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(
        theirs.query_column("SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'someone-else' AND state = 'active'"),
        vec![Some("1".into())]
    );
}

/// Runs `tend`, and kills it if it is still running after two minutes (code -1): a test
/// whose lock holder releases only after tend exits would otherwise hang forever.
fn run_bounded(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    run(cmd.timeout(Duration::from_secs(120)))
}

fn findings_of<'a>(doc: &'a serde_json::Value, check: &str) -> Vec<&'a serde_json::Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

/// Another session holds ACCESS EXCLUSIVE on a table (and its sizes were sampled before):
/// `tend check` finishes while the lock is still held, reports the lock with its holder,
/// and still keeps its history (sampling the sizes of every other table).
#[test]
fn check_finishes_and_reports_an_exclusive_lock_while_it_is_held() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE busy AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 20000) g;
         CREATE INDEX busy_id ON busy (id);
         CREATE TABLE quiet (id int PRIMARY KEY)",
    );
    let project = TestProject::new();
    let check = || {
        run_bounded(
            project
                .tend()
                .env("DATABASE_URL", db.url())
                .args(["check", "--json"]),
        )
    };
    // A first run samples the sizes of both tables.
    let (code, out, err) = check();
    assert!((0..=2).contains(&code), "{out}{err}");
    let holder = Holder::open(&db, "migration-in-progress");
    holder.execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE");
    let (code, out, err) = check();
    assert_ne!(code, -1, "tend check waited for the lock: {err}");
    assert!((0..=2).contains(&code), "{out}{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let held = findings_of(&doc, "locks.exclusive_held");
    assert!(
        held.iter().any(|f| {
            let subject = f["subject"].as_str().unwrap();
            subject.contains("busy") && subject.contains(&format!("pid {}", holder.pid()))
        }),
        "{doc}"
    );
    assert_eq!(doc["history"]["kept"], true, "{doc}");
    // The lock was held the whole time: the holder releases only now.
    assert_eq!(
        db.query_column(
            "SELECT count(*)::text FROM pg_locks WHERE relation = 'busy'::regclass AND mode = 'AccessExclusiveLock' AND granted"
        ),
        vec![Some("1".into())]
    );
    drop(holder);
}

/// A lock on tend's own history tables never makes `tend check` wait: the run is reported,
/// the history write is skipped with a warning that says why.
#[test]
fn check_skips_its_history_with_a_warning_when_tend_tables_are_locked() {
    let db = TestDb::create();
    let project = TestProject::new();
    let check = || {
        run_bounded(
            project
                .tend()
                .env("DATABASE_URL", db.url())
                .args(["check", "--json", "--only", "storage"]),
        )
    };
    let (_, out, err) = check();
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(doc["history"]["kept"], true, "{doc}");
    for table in ["tend.check_runs", "tend._tend_migrations"] {
        let holder = Holder::open(&db, "someone-else");
        holder.execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ));
        let (code, out, err) = check();
        assert_ne!(code, -1, "tend check waited for the lock on {table}: {err}");
        let doc: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        assert_eq!(doc["history"]["kept"], false, "{table}: {doc}");
        assert!(
            err.contains("history was not kept") && err.contains("lock"),
            "{table}: {err}"
        );
        assert!(!err.contains("db error"), "{err}");
        drop(holder);
    }
    assert_eq!(
        db.query_column("SELECT count(*)::text FROM tend.check_runs"),
        vec![Some("1".into())]
    );
}

/// The first run that keeps history says, on stderr and before writing, that it creates a
/// `tend` schema and how to turn that off; later runs do not repeat it.
#[test]
fn check_announces_the_tend_schema_once_before_creating_it() {
    let db = TestDb::create();
    let project = TestProject::new();
    let check = || {
        run(project
            .tend()
            .env("DATABASE_URL", db.url())
            .args(["check", "--only", "storage"]))
    };
    let (_, out, err) = check();
    assert!(
        err.contains("creates a `tend` schema") && err.contains("checks.history = \"off\""),
        "{out}{err}"
    );
    // Said before the write: the notice precedes anything else on stderr.
    assert!(
        err.trim_start()
            .starts_with("note: tend check keeps its history"),
        "{err}"
    );
    assert_eq!(
        db.query_column("SELECT count(*)::text FROM tend.check_runs"),
        vec![Some("1".into())]
    );
    let (_, out, err) = check();
    assert!(!err.contains("creates a `tend` schema"), "{out}{err}");
    // With history off nothing is announced, and nothing is written.
    let other = TestDb::create();
    let (_, _, err) = run(project
        .tend()
        .env("DATABASE_URL", other.url())
        .env("TEND_CHECK_HISTORY", "off")
        .args(["check", "--only", "storage"]));
    assert!(!err.contains("tend` schema"), "{err}");
    assert_eq!(
        other.query_column("SELECT count(*)::text FROM pg_namespace WHERE nspname = 'tend'"),
        vec![Some("0".into())]
    );
}

/// A role that cannot see other roles' sessions (no pg_read_all_stats) is told so for the
/// checks that judge sessions, and the run exits 1, where a superuser sees the critical
/// finding; the superuser's run of the same state is critical.
#[test]
fn check_without_stats_privilege_says_it_could_not_look_and_exits_non_zero() {
    let server = tend_testkit::TestServer::get();
    let db = TestDb::create();
    let Some(mut app) = server.password_user("tend_blind_app", "blind-pw", &db.name) else {
        return;
    };
    app.set("sslmode", "disable");
    db.execute(&format!(
        "ALTER DATABASE {} OWNER TO tend_blind_app",
        db.name
    ));
    let idle = Holder::open(&db, "forgetful-worker");
    idle.execute("BEGIN; SELECT 1");
    let project = TestProject::new();
    let only = [
        "check",
        "--json",
        "--only",
        "transactions.idle_in_transaction",
    ];
    // Thresholds any idle transaction crosses.
    project.write(
        "tend.toml",
        "[checks.\"transactions.idle_in_transaction\"]\nwarning = 0\ncritical = 0\n",
    );
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("TEND_CHECK_HISTORY", "off")
        .args(only));
    assert_eq!(code, 2, "the superuser sees it: {out}{err}");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", app.to_secret_string())
        .env("TEND_CHECK_HISTORY", "off")
        .args(only));
    assert_eq!(code, 1, "{out}{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(doc["status"], "unknown", "{doc}");
    let result = &doc["checks"][0];
    assert_eq!(result["severity"], "unknown", "{doc}");
    assert_eq!(result["unknown"], "hidden_sessions", "{doc}");
    assert!(
        result["note"]
            .as_str()
            .unwrap()
            .contains("GRANT pg_read_all_stats TO \"tend_blind_app\""),
        "{doc}"
    );
    // In words too.
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", app.to_secret_string())
        .env("TEND_CHECK_HISTORY", "off")
        .args(&only[..1])
        .args(&only[2..]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("could not look"), "{out}");
    // Granted the privilege, it sees the session.
    db.execute("GRANT pg_read_all_stats TO tend_blind_app");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", app.to_secret_string())
        .env("TEND_CHECK_HISTORY", "off")
        .args(only));
    assert_eq!(code, 2, "{out}{err}");
    drop(idle);
}

/// An application role that owns its database but not every table: `vacuum` and `reindex`
/// of a table it may not maintain say so and exit 1 (PostgreSQL's VACUUM would only warn),
/// and a run over every table vacuums the ones it may, names the rest and exits 1.
#[test]
fn vacuum_and_reindex_refuse_what_the_role_may_not_maintain() {
    let server = tend_testkit::TestServer::get();
    let db = TestDb::create();
    let Some(mut app) = server.password_user("tend_maint_app", "maint-pw", &db.name) else {
        return;
    };
    app.set("sslmode", "disable");
    db.execute(&format!(
        "ALTER DATABASE {} OWNER TO tend_maint_app;
         CREATE TABLE theirs (id int PRIMARY KEY); INSERT INTO theirs SELECT generate_series(1, 100);
         CREATE TABLE mine (id int PRIMARY KEY); ALTER TABLE mine OWNER TO tend_maint_app",
        db.name
    ));
    let project = TestProject::new();
    let tend = |args: &[&str]| {
        run(project
            .tend()
            .env("DATABASE_URL", app.to_secret_string())
            .args(args))
    };
    let vacuumed = |table: &str| {
        db.query_column(&format!(
            "SELECT (last_vacuum IS NOT NULL)::text FROM pg_stat_user_tables WHERE relname = '{table}'"
        ))
    };
    // The database owner may vacuum every table up to PostgreSQL 16, not from 17 on.
    let major: u32 = db.query_column("SHOW server_version_num")[0]
        .as_deref()
        .unwrap()
        .parse::<u32>()
        .unwrap()
        / 10000;
    if major >= 17 {
        let (code, out, err) = tend(&["vacuum", "theirs"]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("may not vacuum public.theirs") && err.contains("owner `postgres`"),
            "{err}"
        );
        assert!(!out.contains("Vacuumed"), "{out}");
        assert_eq!(vacuumed("theirs"), vec![Some("false".into())]);
    }
    let (code, out, err) = tend(&["vacuum", "mine"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(vacuumed("mine"), vec![Some("true".into())]);
    // Reindex needs the table's owner on every version.
    let (code, out, err) = tend(&["reindex", "theirs_pkey"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("may not rebuild public.theirs_pkey") && err.contains("owner `postgres`"),
        "{err}"
    );
    assert!(!err.contains("db error"), "{err}");
    let (code, out, err) = tend(&["reindex", "mine_pkey"]);
    assert_eq!(code, 0, "{out}{err}");
    // A role that owns nothing: the whole-database vacuum names what it skipped, exit 1.
    let Some(mut stranger) = server.password_user("tend_maint_stranger", "s-pw", &db.name) else {
        return;
    };
    stranger.set("sslmode", "disable");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", stranger.to_secret_string())
        .args(["vacuum", "--json"]));
    assert_eq!(code, 1, "{out}{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(doc["complete"], false, "{doc}");
    assert_eq!(doc["skipped"].as_array().unwrap().len(), 2, "{doc}");
    assert!(err.contains("skipped 2 tables"), "{err}");
    let (code, _, err) = run(project
        .tend()
        .env("DATABASE_URL", stranger.to_secret_string())
        .args(["vacuum", "mine"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("may not vacuum public.mine") && err.contains("owner `tend_maint_app`"),
        "{err}"
    );
}

/// `tend health` run by a role that cannot see other roles' sessions still counts them
/// against max_connections (PostgreSQL hides their backend type from it).
#[test]
fn health_counts_connections_a_role_cannot_see() {
    let server = tend_testkit::TestServer::get();
    let db = TestDb::create();
    let Some(mut app) = server.password_user("tend_health_app", "health-pw", &db.name) else {
        return;
    };
    app.set("sslmode", "disable");
    let holders: Vec<Holder> = (0..3).map(|_| Holder::open(&db, "busy-worker")).collect();
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", app.to_secret_string())
        .args(["health", "--json"]));
    assert!(code <= 2, "{out}{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let connections = doc["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "connections")
        .unwrap_or_else(|| panic!("{doc}"));
    let message = connections["message"].as_str().unwrap();
    let used: u32 = message.split_whitespace().next().unwrap().parse().unwrap();
    // The three holders and tend's own session, at least.
    assert!(used >= 4, "{message}");
    drop(holders);
}

/// `tend queries`, `locks` and `kill` run by a role without pg_read_all_stats say how many
/// sessions of other roles they could not see, rather than an unqualified empty list.
#[test]
fn queries_locks_and_kill_say_what_sessions_they_cannot_see() {
    let server = tend_testkit::TestServer::get();
    let db = TestDb::create();
    let Some(mut app) = server.password_user("tend_queries_app", "queries-pw", &db.name) else {
        return;
    };
    app.set("sslmode", "disable");
    let slow = Holder::open(&db, "hidden-report");
    slow.start("SELECT pg_sleep(20)");
    let project = TestProject::new();
    let tend = |args: &[&str]| {
        run(project
            .tend()
            .env("DATABASE_URL", app.to_secret_string())
            .args(args))
    };
    let (code, out, err) = tend(&["queries", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["hidden_sessions"].as_i64().unwrap() >= 1, "{doc}");
    assert!(
        err.contains("not listed")
            && err.contains("GRANT pg_read_all_stats TO \"tend_queries_app\""),
        "{err}"
    );
    let (_, _, err) = tend(&["locks"]);
    assert!(err.contains("not listed"), "{err}");
    let (_, out, err) = tend(&["kill", "--longer-than", "1s", "--dry-run"]);
    assert!(err.contains("not listed"), "{out}{err}");
    drop(slow);
}

/// A role that may not create the `tend` schema: the checks run, nothing is announced or
/// written, and the warning says which privilege is missing (never a bare "db error").
#[test]
fn check_history_refused_by_privileges_is_a_warning_naming_the_grant() {
    let server = tend_testkit::TestServer::get();
    let db = TestDb::create();
    let Some(mut reader) = server.password_user("tend_history_reader", "reader-pw", &db.name)
    else {
        return;
    };
    reader.set("sslmode", "disable");
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", reader.to_secret_string())
        .args(["check", "--json", "--only", "storage"]));
    assert!(code <= 2, "{out}{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(doc["history"]["kept"], false, "{doc}");
    let reason = doc["history"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("may not create the `tend` schema")
            && reason.contains("GRANT CREATE ON DATABASE"),
        "{reason}"
    );
    assert!(!err.contains("creates a `tend` schema"), "{err}");
    assert!(
        !err.contains("db error") && !out.contains("db error"),
        "{out}{err}"
    );
    assert!(err.contains("history was not kept"), "{err}");
}

#[test]
fn optimize_in_a_prisma_project_writes_a_migration_and_never_drops_what_migrations_create() {
    let project = TestProject::new();
    project.write(
        "prisma/schema.prisma",
        "datasource db {\n  provider = \"postgresql\"\n  url = env(\"DATABASE_URL\")\n}\n",
    );
    project.write(
        "prisma/migrations/20240101000000_init/migration.sql",
        "CREATE TABLE \"User\" (\"id\" SERIAL PRIMARY KEY, \"email\" TEXT NOT NULL);\n\
         CREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\n\
         CREATE UNIQUE INDEX \"User_email_again_key\" ON \"User\"(\"email\");\n\
         CREATE TABLE \"Post\" (\"id\" SERIAL PRIMARY KEY, \"authorId\" INTEGER REFERENCES \"User\"(\"id\"), \"title\" TEXT);\n\
         CREATE INDEX \"Post_title_idx\" ON \"Post\"(\"title\");\n\
         CREATE INDEX \"Post_title_dup\" ON \"Post\"(\"title\");\n",
    );
    let db = TestDb::create();
    let tend = |args: &[&str]| run(project.tend().env("DATABASE_URL", db.url()).args(args));
    let (code, out, err) = tend(&["migrate", "deploy"]);
    assert_eq!(code, 0, "{out}{err}");
    // An index made by hand, outside the migrations, duplicating one of theirs.
    db.execute("CREATE INDEX oob_title ON \"Post\" (title)");
    let indexes = || {
        db.query_column(
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'",
        )
    };
    let before = indexes();

    let (code, out, err) = tend(&["optimize", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Would write a migration"), "{out}");
    assert!(out.contains("CREATE INDEX \"Post_authorId_idx\""), "{out}");
    assert!(out.contains("model Post: add @@index([authorId])"), "{out}");
    assert!(out.contains("oob_title"), "{out}");
    assert!(
        !out.contains("DROP INDEX CONCURRENTLY public.\"User_email"),
        "a unique index is never proposed: {out}"
    );
    assert!(
        !out.contains("Post_title_dup;"),
        "the migrations create it: {out}"
    );
    assert!(
        err.contains("Not proposing to drop Post_title_dup"),
        "{err}"
    );

    let (code, out, err) = tend(&["optimize", "--apply", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("@@index([authorId])"), "{out}");
    assert_eq!(indexes(), before, "nothing ran out of band");
    let written: Vec<_> = std::fs::read_dir(project.path().join("prisma/migrations"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_optimize_indexes"))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let sql = std::fs::read_to_string(
        project
            .path()
            .join(format!("prisma/migrations/{}/migration.sql", written[0])),
    )
    .unwrap();
    assert!(
        sql.contains("CREATE INDEX \"Post_authorId_idx\" ON public.\"Post\" (\"authorId\");"),
        "{sql}"
    );
    assert!(
        sql.contains("DROP INDEX IF EXISTS public.oob_title;"),
        "{sql}"
    );
    assert!(!sql.contains("User_email"), "{sql}");

    // The migration is how it reaches the database.
    let (code, out, err) = tend(&["migrate", "deploy"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        indexes(),
        vec![Some("Post_authorId_idx,Post_pkey,Post_title_dup,Post_title_idx,User_email_again_key,User_email_key,User_pkey,_prisma_migrations_pkey".into())]
    );
    // Asked for, a migration's index may be proposed too.
    let (code, out, _) = tend(&["optimize", "--dry-run", "--include-migration-indexes"]);
    assert_eq!(code, 0);
    assert!(out.contains("Post_title_dup"), "{out}");
}

/// `tend check --json` is the serialized `CheckReport`; the snapshot pins its shape (what
/// varies from run to run, such as timings, the server and the run id, is redacted).
#[test]
fn check_json_is_the_check_report() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent)",
    );
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).args([
        "check",
        "--json",
        "--only",
        "constraints.fk_without_index",
    ]));
    assert_eq!(code, 1, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".server" => "[server]",
        ".millis" => "[millis]",
        ".checks[].millis" => "[millis]",
        ".history.run_id" => "[run id]",
    });
}

/// `tend health --json` is the serialized `HealthReport` (timings and measured values
/// redacted).
#[test]
fn health_json_is_the_health_report() {
    let db = TestDb::create();
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["health", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".millis" => "[millis]",
        ".probes[].value" => "[value]",
        ".probes[].message" => "[message]",
    });
}

/// `tend queries --json` is the serialized `QueriesReport`: the sessions and how many
/// were hidden (pids, times and addresses redacted).
#[test]
fn queries_json_is_the_queries_report() {
    let db = TestDb::create();
    let slow = Holder::open(&db, "slow-report");
    slow.start("SELECT pg_sleep(30)");
    wait_until(
        &db,
        "EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'slow-report' AND state = 'active' AND query = 'SELECT pg_sleep(30)')",
    );
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["queries", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".sessions[].pid" => "[pid]",
        ".sessions[].user" => "[user]",
        ".sessions[].client" => "[client]",
        ".sessions[].seconds" => "[seconds]",
        ".sessions[].transaction_seconds" => "[seconds]",
    });
    drop(slow);
}

/// `tend locks --json` is the serialized `LocksReport`: the blocking tree.
#[test]
fn locks_json_is_the_locks_report() {
    let db = TestDb::create();
    db.execute("CREATE TABLE t (id int)");
    let blocker = Holder::open(&db, "holder-app");
    blocker.execute("BEGIN; LOCK TABLE t");
    let waiter = Holder::open(&db, "waiting-app");
    waiter.start("SELECT * FROM t");
    wait_until(
        &db,
        "EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'waiting-app' AND wait_event_type = 'Lock')",
    );
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["locks", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".blocking[].session.pid" => "[pid]",
        ".blocking[].session.user" => "[user]",
        ".blocking[].session.client" => "[client]",
        ".blocking[].session.seconds" => "[seconds]",
        ".blocking[].session.transaction_seconds" => "[seconds]",
        ".blocking[].waiting[].session.pid" => "[pid]",
        ".blocking[].waiting[].session.user" => "[user]",
        ".blocking[].waiting[].session.client" => "[client]",
        ".blocking[].waiting[].session.seconds" => "[seconds]",
        ".blocking[].waiting[].session.transaction_seconds" => "[seconds]",
        ".blocking[].waiting[].session.blocked_by" => "[pids]",
    });
    drop(waiter);
    drop(blocker);
}

/// `tend kill --dry-run --json` is the serialized `KillReport` of what would be signalled.
#[test]
fn kill_dry_run_json_is_the_kill_report() {
    let db = TestDb::create();
    let slow = Holder::open(&db, "slow-report");
    // The pid first: the session answers nothing else while it sleeps.
    let pid = slow.pid().to_string();
    slow.start("SELECT pg_sleep(30)");
    wait_until(
        &db,
        "EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'slow-report' AND state = 'active' AND query = 'SELECT pg_sleep(30)')",
    );
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).args([
        "kill",
        pid.as_str(),
        "--dry-run",
        "--json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".would_signal[].pid" => "[pid]",
        ".would_signal[].user" => "[user]",
    });
    drop(slow);
}

/// `tend vacuum --json` is the serialized `VacuumReport` (vacuum has no dry run: it
/// changes no data).
#[test]
fn vacuum_json_is_the_vacuum_report() {
    let db = TestDb::create();
    db.execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)");
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).args([
        "vacuum",
        "--analyze",
        "--json",
        "t",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".vacuumed[].seconds" => "[seconds]",
    });
}

/// `tend reindex --dry-run --json` is the serialized `ReindexReport` of the statements it
/// would run.
#[test]
fn reindex_dry_run_json_is_the_reindex_report() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE t (id int, email text);
         INSERT INTO t SELECT g, 'same' FROM generate_series(1, 10) g;",
    );
    // A failed concurrent build leaves an invalid index.
    let _ = std::process::Command::new("psql")
        .args([
            db.url().as_str(),
            "-Xqc",
            "CREATE UNIQUE INDEX CONCURRENTLY t_email_key ON t (email)",
        ])
        .output();
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).args([
        "reindex",
        "--invalid",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc);
}

/// `tend optimize --json` is the serialized report of what it ran and what needs --apply.
#[test]
fn optimize_json_is_the_optimize_report() {
    let db = TestDb::create();
    // Autovacuum off, so no ANALYZE but tend's changes the statistics it reads.
    db.execute(
        "CREATE TABLE parent (id int PRIMARY KEY) WITH (autovacuum_enabled = off);
         CREATE TABLE child (id int, parent_id int REFERENCES parent (id))
           WITH (autovacuum_enabled = off);
         INSERT INTO parent SELECT g FROM generate_series(1, 100) g;
         INSERT INTO child SELECT g, g % 100 + 1 FROM generate_series(1, 50000) g;
         CREATE INDEX child_id_a ON child (id); CREATE INDEX child_id_b ON child (id);",
    );
    // The inserting session reports its counts when it ends: wait until they are in.
    let counted = || {
        db.query_column("SELECT (sum(n_mod_since_analyze) = 50100)::text FROM pg_stat_user_tables")
            == vec![Some("true".to_string())]
    };
    for _ in 0..600 {
        if counted() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(counted(), "the statistics never showed the inserted rows");
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["optimize", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".needs_apply[].reason" => "[reason with the index size]",
    });
}

/// Waits until `condition` (SQL returning one boolean) holds in `db`, so a snapshot never
/// catches a session before it got going; panics if it never does.
fn wait_until(db: &TestDb, condition: &str) {
    let holds = || {
        db.query_column(&format!("SELECT ({condition})::text")) == vec![Some("true".to_string())]
    };
    for _ in 0..600 {
        if holds() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(holds(), "never true: {condition}");
}

/// `tend check --list --json` is the core's `CatalogReport`: each selected check with the
/// thresholds in force beside its defaults, and its SQL.
#[test]
fn check_list_json_is_the_catalog_report() {
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[checks.\"connections.usage\"]\nwarning = 70\n",
    );
    let (code, out, err) =
        run(project
            .tend()
            .args(["check", "--list", "--json", "--only", "connections.usage"]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc);
}
