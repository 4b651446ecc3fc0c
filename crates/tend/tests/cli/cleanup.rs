//! `tend cleanup` against the example SaaS schema with its generated data, in a database
//! owned by an application role without superuser: the dry run counts and changes nothing
//! (every table's checksum), the run purges children before parents and leaves what a
//! foreign key holds, a kill -9 in the middle and a second run end where an uninterrupted
//! run does, and mistakes in the rules are one sentence.

use std::time::{Duration, Instant};

use tend_testkit::{TestDb, TestProject, TestServer, query_column};

use crate::run;

const RULES: &str = r#"
[[retention]]
name = "expired-sessions"
table = "sessions"
column = "expires_at"
older_than = "1d"

[[retention]]
name = "finished-jobs"
table = "background_jobs"
where = "status IN ('succeeded', 'dead')"
column = "finished_at"
older_than = "7d"

[[retention]]
name = "old-audit"
table = "audit_log"
column = "created_at"
older_than = "365d"
action = "archive"
archive_to = "audit_log_archive"
"#;

/// The example's schema and seed in a database owned by `owner` (no superuser), with an
/// archive table for the audit log. `None` off the test kit's own cluster.
pub(crate) fn saas_database(owner: &str) -> Option<(TestDb, tend_pg::ConnInfo)> {
    let db = TestDb::create();
    let app = TestServer::get().password_user(owner, "cleanup-app-pw", &db.name)?;
    db.execute(&format!("ALTER DATABASE {} OWNER TO {owner}", db.name));
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/saas");
    let schema = std::fs::read_to_string(format!("{example}/schema/schema.sql")).unwrap();
    let seed = std::fs::read_to_string(format!("{example}/seed/generate.sql")).unwrap();
    query_column(&app, &schema);
    query_column(&app, &format!("BEGIN; {seed}; COMMIT"));
    query_column(
        &app,
        "CREATE TABLE audit_log_archive (LIKE audit_log); SELECT 1",
    );
    Some((db, app))
}

/// Every table's rows, hashed: equal only when no row of any table changed.
pub(crate) fn checksum(info: &tend_pg::ConnInfo) -> Vec<String> {
    let tables = query_column(
        info,
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1",
    );
    tables
        .into_iter()
        .map(|t| {
            let t = t.unwrap();
            let hash = query_column(
                info,
                &format!(
                    "SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) FROM {t} r"
                ),
            );
            format!("{t} {}", hash[0].clone().unwrap())
        })
        .collect()
}

fn count(info: &tend_pg::ConnInfo, sql: &str) -> i64 {
    query_column(info, sql)[0].clone().unwrap().parse().unwrap()
}

fn cleanup(project: &TestProject, url: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["cleanup"];
    all.extend_from_slice(args);
    run(project.tend().env("DATABASE_URL", url).args(&all))
}

#[test]
fn the_dry_run_counts_and_changes_nothing_then_the_run_purges_children_first() {
    let Some((_db, app)) = saas_database("tend_cleanup_app") else {
        return;
    };
    let url = app.to_secret_string();
    let project = TestProject::new();
    project.write("tend.toml", RULES);
    let before = checksum(&app);
    let soft_deleted_tasks = count(
        &app,
        "SELECT count(*) FROM tasks WHERE deleted_at < now() - interval '30 days'",
    );
    assert!(soft_deleted_tasks > 100, "{soft_deleted_tasks}");

    let (code, out, err) = cleanup(&project, &url, &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("cleanup-app-pw") && !out.contains("cleanup-app-pw"));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules = plan["rules"].as_array().unwrap();
    let position = |rule: &str, table: &str| {
        rules
            .iter()
            .position(|r| r["rule"] == rule && r["table"] == table)
            .unwrap_or_else(|| panic!("no {rule} on {table}: {out}"))
    };
    // Children before parents: tasks reference requests, requests agencies, and all of
    // them users.
    let tasks = position("soft-delete", "public.tasks");
    let requests = position("soft-delete", "public.requests");
    let agencies = position("soft-delete", "public.agencies");
    let users = position("soft-delete", "public.users");
    assert!(
        tasks < requests && requests < agencies && agencies < users,
        "{out}"
    );
    assert_eq!(rules[tasks]["matching"], soft_deleted_tasks);
    assert_eq!(rules[tasks]["held"], 0);
    // Deleting agencies cascades into their requests (and on into tasks): counted.
    let cascades = rules[agencies]["cascades"].as_array().unwrap();
    assert!(
        cascades
            .iter()
            .any(|c| c["table"] == "public.requests" && c["rows"].as_u64().unwrap() > 0),
        "{out}"
    );
    let audit = position("old-audit", "public.audit_log");
    assert_eq!(rules[audit]["action"], "archive");
    assert_eq!(
        rules[audit]["matching"],
        count(&app, "SELECT count(*) FROM audit_log")
    );
    position("expired-sessions", "public.sessions");
    position("finished-jobs", "public.background_jobs");
    // The human dry run, and nothing changed.
    let (code, out, err) = cleanup(&project, &url, &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("soft-delete on public.tasks"), "{out}");
    assert!(out.contains("Nothing was deleted"), "{out}");
    assert_eq!(checksum(&app), before);

    // No terminal and no --yes: refused, nothing deleted.
    let (code, out, err) = cleanup(&project, &url, &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(checksum(&app), before);

    let archived = count(&app, "SELECT count(*) FROM audit_log");
    let (code, out, err) = cleanup(&project, &url, &["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Deleted"), "{out}");
    for table in [
        "tasks",
        "requests",
        "agencies",
        "users",
        "analytics_connections",
    ] {
        assert_eq!(
            count(
                &app,
                &format!(
                    "SELECT count(*) FROM {table} WHERE deleted_at < now() - interval '30 days'"
                )
            ),
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM sessions WHERE expires_at < now() - interval '1 day'"
        ),
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM background_jobs WHERE status IN ('succeeded', 'dead') AND finished_at < now() - interval '7 days'"
        ),
        0
    );
    assert!(
        count(&app, "SELECT count(*) FROM background_jobs") > 0,
        "jobs the rule does not select stay"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM audit_log"), 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_log_archive"),
        archived
    );
    // Nothing is left to do.
    let (code, out, err) = cleanup(&project, &url, &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        plan["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["matching"] == 0),
        "{out}"
    );
}

#[test]
fn a_cleanup_killed_midway_then_run_again_ends_where_an_uninterrupted_one_does() {
    let Some((whole, app)) = saas_database("tend_cleanup_kill") else {
        return;
    };
    // A second copy of the same data.
    let server = TestServer::get();
    let copy = TestDb::create();
    query_column(
        &server.admin,
        &format!("DROP DATABASE {} WITH (FORCE)", copy.name),
    );
    query_column(
        &server.admin,
        &format!(
            "CREATE DATABASE {} TEMPLATE {} OWNER tend_cleanup_kill",
            copy.name, whole.name
        ),
    );
    let copy_app = app.with_dbname(&copy.name);
    let project = TestProject::new();
    project.write("tend.toml", RULES);

    let (code, out, err) = cleanup(&project, &app.to_secret_string(), &["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let expected = checksum(&app);

    // Small batches, so the run is still going when it is killed.
    let before = count(&copy_app, "SELECT count(*) FROM tasks");
    let mut child = project
        .tend_process()
        .env("DATABASE_URL", copy_app.to_secret_string())
        .env("TEND_CLEANUP_MAX_BATCH", "5")
        .args(["cleanup", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while count(&copy_app, "SELECT count(*) FROM tasks") == before {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the cleanup deleted nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "it finished before the kill: {status:?}");
    assert_ne!(checksum(&copy_app), expected, "killed before the end");

    let (code, out, err) = cleanup(&project, &copy_app.to_secret_string(), &["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(checksum(&copy_app), expected);
}

#[test]
fn rows_a_restrict_key_references_stay_and_are_named() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, deleted_at timestamptz);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE RESTRICT);
         INSERT INTO customers SELECT g, now() - interval '90 days' FROM generate_series(1, 100) g;
         INSERT INTO orders SELECT g, g FROM generate_series(1, 7) g;",
    );
    let project = TestProject::new();
    let (code, out, err) = cleanup(&project, &db.url(), &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("93 to delete"), "{out}");
    assert!(out.contains("7 kept"), "{out}");
    let (code, out, err) = cleanup(&project, &db.url(), &["--yes", "--rule", "soft-delete"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        db.query_column("SELECT count(*) FROM customers")[0].as_deref(),
        Some("7")
    );
    // The grace period from the variable these teams already set, in days.
    db.execute("UPDATE customers SET deleted_at = now() - interval '10 days'; DELETE FROM orders");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("SOFT_DELETE_GRACE_PERIOD_DAYS", "14")
        .args(["cleanup", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["rules"][0]["matching"], 0, "{out}");
}

#[test]
fn mistakes_in_rules_are_one_sentence_and_delete_nothing() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE jobs (id int PRIMARY KEY, finished_at timestamptz, label text);
         INSERT INTO jobs SELECT g, now() - interval '30 days', 'x' FROM generate_series(1, 10) g;",
    );
    let project = TestProject::new();
    let cases: [(&str, i32, &str); 6] = [
        (
            "[[retention]]\ntable = \"jobz\"\ncolumn = \"finished_at\"\nolder_than = \"1d\"",
            3,
            "names the table `jobz`",
        ),
        (
            "[[retention]]\ntable = \"jobs\"\ncolumn = \"finishd_at\"\nolder_than = \"1d\"",
            3,
            "no column `finishd_at`",
        ),
        (
            "[[retention]]\ntable = \"jobs\"\ncolumn = \"label\"\nolder_than = \"1d\"",
            3,
            "not a timestamp",
        ),
        (
            "[[retention]]\ntable = \"jobs\"\nwhere = \"finishd_at < now()\"",
            3,
            "finishd_at",
        ),
        (
            "[[retention]]\ntable = \"jobs\"\nwhere = \"true\"\narchive_to = \"jobs_archive\"",
            3,
            "CREATE TABLE public.jobs_archive (LIKE public.jobs)",
        ),
        (
            "[[retention]]\ntable = \"jobs\"\ncolumn = \"finished_at\"\nolder_than = \"often\"",
            3,
            "[[retention]] entry 1",
        ),
    ];
    for (rules, expected_code, expected) in cases {
        project.write("tend.toml", rules);
        let (code, out, err) = cleanup(&project, &db.url(), &["--yes"]);
        assert_eq!(code, expected_code, "{rules}: {out}{err}");
        assert!(err.contains(expected), "{rules}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    project.write(
        "tend.toml",
        "[[retention]]\ntable = \"jobs\"\ncolumn = \"finished_at\"\nolder_than = \"1d\"",
    );
    let (code, out, err) = cleanup(&project, &db.url(), &["--yes", "--rule", "nope"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("the rules are: jobs"), "{err}");
    assert_eq!(
        db.query_column("SELECT count(*) FROM jobs")[0].as_deref(),
        Some("10")
    );
}

#[test]
fn the_backlog_is_a_check_that_names_each_rule_and_how_overdue_it_is() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE sessions (id int PRIMARY KEY, expires_at timestamptz NOT NULL);
         INSERT INTO sessions SELECT g, now() - interval '3 days' FROM generate_series(1, 50) g;
         CREATE TABLE notes (id int PRIMARY KEY, deleted_at timestamptz);
         INSERT INTO notes SELECT g, now() - interval '60 days' FROM generate_series(1, 5) g;",
    );
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[[retention]]\nname = \"expired-sessions\"\ntable = \"sessions\"\ncolumn = \"expires_at\"\nolder_than = \"1d\"\n",
    );
    let check = |project: &TestProject| {
        run(project
            .tend()
            .env("DATABASE_URL", db.url())
            .env("TEND_CHECK_HISTORY", "off")
            .args(["check", "--only", "cleanup.backlog", "--json"]))
    };
    let (code, out, err) = check(&project);
    // The soft-deleted notes are 30 days past their 30-day grace: critical (over 7 days).
    assert_eq!(code, 2, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let finding = |subject: &str| {
        findings
            .iter()
            .find(|f| f["subject"] == subject)
            .unwrap_or_else(|| panic!("no {subject} in {out}"))
    };
    assert_eq!(
        finding("public.notes (soft-delete)")["severity"],
        "critical"
    );
    let sessions = finding("public.sessions (expired-sessions)");
    assert_eq!(sessions["severity"], "warning");
    assert!(
        sessions["message"].as_str().unwrap().starts_with("50 rows"),
        "{out}"
    );
    // After a cleanup, nothing is overdue.
    let (code, out, err) = cleanup(&project, &db.url(), &["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = check(&project);
    assert_eq!(code, 0, "{out}{err}");
    // The thresholds are the check's, from tend.toml like any other.
    db.execute("INSERT INTO notes VALUES (6, now() - interval '60 days')");
    project.write(
        "tend.toml",
        "[checks.\"cleanup.backlog\"]\nwarning = 2592000\ncritical = 31536000\n",
    );
    let (code, out, err) = check(&project);
    assert_eq!(code, 1, "{out}{err}");
}

/// `events`, partitioned by month on a timestamptz: 14 monthly partitions (`events_p00`,
/// twelve months back, to `events_p13`, next month) with a row every 7 hours, a DEFAULT
/// partition holding one very old row, and `alerts` referencing the oldest event. Analyzed,
/// so the row estimates are exact.
const MONTHLY_EVENTS: &str = "
    CREATE TABLE events (id bigint NOT NULL, at timestamptz NOT NULL, body text,
                         PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
    DO $$
    BEGIN
      FOR i IN 0..13 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)
                          WITH (autovacuum_enabled = off)',
                       'events_p' || lpad(i::text, 2, '0'),
                       date_trunc('month', now()) + make_interval(months => i - 12),
                       date_trunc('month', now()) + make_interval(months => i - 11));
      END LOOP;
    END $$;
    CREATE TABLE events_default PARTITION OF events DEFAULT;
    INSERT INTO events
      SELECT g, date_trunc('month', now()) - interval '12 months' + g * interval '7 hours', 'e' || g
        FROM generate_series(0, 1500) g
       WHERE date_trunc('month', now()) - interval '12 months' + g * interval '7 hours'
             < date_trunc('month', now()) + interval '2 months';
    INSERT INTO events VALUES (-1, '2001-01-01', 'in the default partition');
    CREATE TABLE alerts (id int PRIMARY KEY, event_id bigint NOT NULL, event_at timestamptz NOT NULL,
                         FOREIGN KEY (event_id, event_at) REFERENCES events ON DELETE CASCADE);
    INSERT INTO alerts SELECT 1, id, at FROM events WHERE id = 0;
    ANALYZE events;";

const OLD_EVENTS: &str = "[[retention]]\nname = \"old-events\"\ntable = \"events\"\ncolumn = \"at\"\nolder_than = \"180d\"\naction = \"drop-partitions\"\n";

/// The partitions of `events`, by name.
fn partitions_of_events(db: &TestDb) -> Vec<String> {
    db.query_column(
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .into_iter()
    .map(|n| format!("public.{}", n.unwrap()))
    .collect()
}

#[test]
fn drop_partitions_drops_the_months_wholly_past_the_rule_and_keeps_referenced_ones() {
    let db = TestDb::create();
    db.execute(MONTHLY_EVENTS);
    let project = TestProject::new();
    project.write("tend.toml", OLD_EVENTS);
    // The months whose end is at least 180 days back, worked out here from how they were
    // made; the oldest is referenced by an alert.
    let expected: Vec<String> = db
        .query_column(
            "SELECT 'public.events_p' || lpad(i::text, 2, '0') FROM generate_series(0, 13) i
          WHERE date_trunc('month', now()) + make_interval(months => i - 11)
                <= now() - make_interval(secs => 180 * 86400)
          ORDER BY i",
        )
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert!((5..=7).contains(&expected.len()), "{expected:?}");
    let rows_in = |partition: &str| count(&db.info, &format!("SELECT count(*) FROM {partition}"));
    let before = checksum(&db.info);
    let all_partitions = partitions_of_events(&db);
    assert_eq!(all_partitions.len(), 15);
    let total = count(&db.info, "SELECT count(*) FROM events");

    let (code, out, err) = cleanup(&project, &db.url(), &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules = plan["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{out}");
    let rule = &rules[0];
    assert_eq!(rule["action"], "drop-partitions");
    assert_eq!(rule["rows_estimated"], true);
    let planned = rule["partitions"].as_array().unwrap();
    let names: Vec<&str> = planned
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, expected, "{out}");
    for partition in planned {
        let name = partition["name"].as_str().unwrap();
        assert_eq!(partition["rows"], rows_in(name), "{out}");
        assert_eq!(partition["rows_estimated"], true, "{out}");
        assert!(
            partition["bound"]
                .as_str()
                .unwrap()
                .starts_with("FOR VALUES FROM (")
        );
        let held = !partition["held_by"].as_array().unwrap().is_empty();
        assert_eq!(held, name == "public.events_p00", "{out}");
    }
    let doomed_rows: i64 = expected[1..].iter().map(|p| rows_in(p)).sum();
    let held_rows = rows_in("public.events_p00");
    assert_eq!(rule["matching"], doomed_rows + held_rows, "{out}");
    assert_eq!(rule["held"], held_rows, "{out}");
    assert!(
        rule["oldest_overdue_seconds"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    // The human dry run lists them, and only them.
    let (code, out, err) = cleanup(&project, &db.url(), &["--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("old-events on public.events"), "{out}");
    for name in &expected {
        assert!(out.contains(&format!("  - {name} ")), "{name}: {out}");
    }
    assert!(
        !out.contains("events_p13") && !out.contains("events_default"),
        "{out}"
    );
    assert!(
        out.contains("kept: a foreign key references rows in it"),
        "{out}"
    );
    assert!(out.contains("Nothing was deleted"), "{out}");
    assert_eq!(checksum(&db.info), before);
    assert_eq!(partitions_of_events(&db), all_partitions);
    // The backlog: the rows of the partitions a cleanup would drop now.
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("TEND_CHECK_HISTORY", "off")
        .args(["check", "--only", "cleanup.backlog", "--json"]));
    assert_ne!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "public.events (old-events)")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{doomed_rows} rows")),
        "{out}"
    );

    // The run drops all but the referenced one, each whole.
    let (code, out, err) = cleanup(&project, &db.url(), &["--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let outcome = &report["rules"][0];
    let dropped: Vec<&str> = outcome["partitions_dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(dropped, expected[1..], "{out}");
    assert_eq!(outcome["deleted"], doomed_rows, "{out}");
    assert_eq!(outcome["rows_estimated"], true, "{out}");
    let kept = outcome["partitions_kept"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{out}");
    assert_eq!(kept[0]["name"], "public.events_p00");
    assert!(
        kept[0]["reason"].as_str().unwrap().contains("foreign key"),
        "{out}"
    );
    let remaining: Vec<String> = all_partitions
        .iter()
        .filter(|p| !expected[1..].contains(p))
        .cloned()
        .collect();
    assert_eq!(partitions_of_events(&db), remaining);
    assert_eq!(
        count(&db.info, "SELECT count(*) FROM events"),
        total - doomed_rows
    );
    assert_eq!(count(&db.info, "SELECT count(*) FROM events_default"), 1);
    assert_eq!(count(&db.info, "SELECT count(*) FROM alerts"), 1);
    for name in &expected[1..] {
        assert!(
            db.query_column(&format!("SELECT to_regclass('{name}')"))[0].is_none(),
            "{name} is still there"
        );
    }

    // A second run has nothing to do, and changes nothing.
    let after = checksum(&db.info);
    let (code, out, err) = cleanup(&project, &db.url(), &["--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"], 0, "{out}");
    assert_eq!(checksum(&db.info), after);
    assert_eq!(partitions_of_events(&db), remaining);

    // Once nothing references it, the oldest month goes too.
    db.execute("DELETE FROM alerts");
    let (code, out, err) = cleanup(&project, &db.url(), &["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("old-events on public.events: dropped 1 partition (about"),
        "{out}"
    );
    assert_eq!(partitions_of_events(&db).len(), 15 - expected.len());
    assert_eq!(
        count(&db.info, "SELECT count(*) FROM events"),
        total - doomed_rows - held_rows
    );
    let (code, out, err) = cleanup(&project, &db.url(), &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        plan["rules"][0]["partitions"],
        serde_json::json!([]),
        "{out}"
    );
}

#[test]
fn drop_partitions_on_a_table_not_partitioned_by_range_on_its_column_is_a_config_error() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE plain (id int, at timestamptz);
         CREATE TABLE listed (kind text NOT NULL, at timestamptz) PARTITION BY LIST (kind);
         CREATE TABLE listed_a PARTITION OF listed FOR VALUES IN ('a');
         CREATE TABLE ranged (at timestamptz, other timestamptz NOT NULL) PARTITION BY RANGE (other);
         CREATE TABLE ranged_old PARTITION OF ranged FOR VALUES FROM ('2001-01-01') TO ('2002-01-01');
         INSERT INTO plain VALUES (1, '2001-01-01');
         INSERT INTO listed VALUES ('a', '2001-01-01');
         INSERT INTO ranged VALUES ('2001-06-01', '2001-06-01');",
    );
    let project = TestProject::new();
    let rule = |table: &str, extra: &str| {
        format!(
            "[[retention]]\ntable = \"{table}\"\ncolumn = \"at\"\nolder_than = \"30d\"\naction = \"drop-partitions\"\n{extra}"
        )
    };
    let cases = [
        (
            rule("plain", ""),
            "retention rule `plain` drops partitions, but public.plain is not partitioned: set action = \"delete\"",
        ),
        (
            rule("listed", ""),
            "public.listed is partitioned by LIST (kind), not by RANGE (at)",
        ),
        (
            rule("ranged", ""),
            "public.ranged is partitioned by RANGE (other), not by RANGE (at)",
        ),
        (
            rule("ranged", "where = \"true\"\n"),
            "[[retention]] entry 1 drops partitions but has a `where`",
        ),
    ];
    for (rules, expected) in cases {
        project.write("tend.toml", &rules);
        for args in [&["--dry-run"][..], &["--yes"][..]] {
            let (code, out, err) = cleanup(&project, &db.url(), args);
            assert_eq!(code, 3, "{rules}: {out}{err}");
            assert!(err.contains(expected), "{rules}: {err}");
        }
    }
    for table in ["plain", "listed", "ranged"] {
        assert_eq!(
            count(&db.info, &format!("SELECT count(*) FROM {table}")),
            1,
            "{table}"
        );
    }
    assert_eq!(
        count(
            &db.info,
            "SELECT count(*) FROM pg_class WHERE relname IN ('listed_a', 'ranged_old')"
        ),
        2
    );
}

#[test]
fn soft_delete_marks_a_row_with_what_cascades_from_it_and_undelete_lifts_exactly_that() {
    let Some((_db, app)) = saas_database("tend_soft_delete_app") else {
        return;
    };
    let url = app.to_secret_string();
    let project = TestProject::new();
    // An agency in use, some of whose requests were soft-deleted on their own before.
    let agency = query_column(
        &app,
        "SELECT a.id FROM agencies a WHERE a.deleted_at IS NULL
            AND EXISTS (SELECT 1 FROM requests r WHERE r.agency_id = a.id AND r.deleted_at IS NOT NULL)
          ORDER BY a.id LIMIT 1",
    )[0]
    .clone()
    .unwrap();
    let row = format!("agencies:{agency}");
    let tend = |args: &[&str]| run(project.tend().env("DATABASE_URL", &url).args(args));
    let before = checksum(&app);
    let earlier = count(
        &app,
        &format!(
            "SELECT count(*) FROM requests WHERE agency_id = '{agency}' AND deleted_at IS NOT NULL"
        ),
    );

    let (code, out, err) = tend(&["soft-delete", &row, "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("public.requests (deleted_at)"), "{out}");
    assert!(err.contains("public.agency_memberships"), "{err}");
    assert_eq!(checksum(&app), before);

    let (code, out, err) = tend(&["soft-delete", &row, "--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["rows"].as_u64().unwrap() > 1, "{out}");
    // The agency and all its requests and tasks are marked, with one timestamp.
    let marks = count(
        &app,
        &format!(
            "SELECT count(DISTINCT deleted_at) FROM (
               SELECT deleted_at FROM agencies WHERE id = '{agency}'
               UNION ALL SELECT deleted_at FROM requests WHERE agency_id = '{agency}' AND deleted_at > now() - interval '1 hour'
               UNION ALL SELECT deleted_at FROM tasks WHERE agency_id = '{agency}' AND deleted_at > now() - interval '1 hour') m"
        ),
    );
    assert_eq!(marks, 1);
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) FROM requests WHERE agency_id = '{agency}' AND deleted_at IS NULL"
            )
        ),
        0
    );
    // Twice is a mistake, said so.
    let (code, _, err) = tend(&["soft-delete", &row, "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already soft-deleted"), "{err}");

    // Undelete restores exactly what was marked; the requests deleted before stay so.
    let (code, out, err) = tend(&["undelete", &row, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        count(
            &app,
            &format!(
                "SELECT count(*) FROM requests WHERE agency_id = '{agency}' AND deleted_at IS NOT NULL"
            )
        ),
        earlier
    );
    assert_eq!(checksum(&app), before);
    let (code, _, err) = tend(&["undelete", &row, "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not soft-deleted"), "{err}");
}
