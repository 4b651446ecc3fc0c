//! Settings and security.
//!
//! Settings that need a restart (or a reload of the whole cluster) cannot be changed here:
//! their checks are tested on the values the test cluster runs with, by lowering or raising
//! thresholds, and through settings a database or a role may carry (`ALTER DATABASE ... SET`
//! reaches only this test's database, and the next session sees it).

use std::time::Duration;

use tend_ops::{RunOptions, Severity, checks};
use tend_testkit::{TestDb, TestServer};

use crate::{assert_fires, findings, findings_with, on_runtime, run_checks};

/// A setting as the test database's sessions see it.
fn show(db: &TestDb, name: &str) -> String {
    db.query_column(&format!("SHOW {name}"))
        .remove(0)
        .unwrap_or_default()
}

/// Runs checks on `db` connected as another role (trusted on the test kit's cluster).
fn run_as(db: &TestDb, user: &str, only: &[&str]) -> tend_ops::Report {
    let mut info = db.info.clone();
    info.set("user", user);
    crate::run_checks_on(&info, only, &[])
}

/// Runs SQL as the test server's superuser, outside any test database.
fn admin_execute(sql: &str) {
    let info = TestServer::get().admin.clone();
    let sql = sql.to_string();
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
        session.batch_execute(&sql).await.unwrap();
    });
}

/// A cluster-wide role for one test, dropped when the value drops (even on a panic).
struct TempRole {
    name: String,
}

impl TempRole {
    fn create(what: &str, options: &str) -> TempRole {
        let name = format!("tend_cfg_{what}_{}", std::process::id());
        admin_execute(&format!(
            "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} {options}"
        ));
        TempRole { name }
    }
}

impl Drop for TempRole {
    fn drop(&mut self) {
        admin_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

/// Retries `probe` for up to two seconds until it returns true.
fn eventually(mut probe: impl FnMut() -> bool) -> bool {
    for _ in 0..20 {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn durability_settings_fire_as_the_test_cluster_runs_them() {
    let db = TestDb::create();
    // The test kit's cluster runs with all three off, for speed: real positives there.
    for (id, setting, severity) in [
        ("settings.fsync_off", "fsync", Severity::Critical),
        (
            "settings.full_page_writes_off",
            "full_page_writes",
            Severity::Critical,
        ),
        (
            "settings.synchronous_commit_off",
            "synchronous_commit",
            Severity::Info,
        ),
    ] {
        let found = findings(&db, id);
        if show(&db, setting) == "off" {
            assert_fires(&found, id, severity);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert_eq!(found[0].severity, severity, "{found:#?}");
            assert_eq!(found[0].subject, setting, "{found:#?}");
        } else {
            assert!(found.is_empty(), "{found:#?}");
        }
    }
    // synchronous_commit may be set per database: on, the check is quiet.
    db.execute(&format!(
        "ALTER DATABASE {} SET synchronous_commit = on",
        db.name
    ));
    let found = findings(&db, "settings.synchronous_commit_off");
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn restart_only_settings_are_quiet_on_a_sane_server() {
    let db = TestDb::create();
    // autovacuum, wal_level and listen_addresses cannot change without touching the whole
    // cluster: only the quiet side is tested on the values it runs with.
    if show(&db, "autovacuum") == "on" {
        let found = findings(&db, "settings.autovacuum_off");
        assert!(found.is_empty(), "{found:#?}");
    }
    if show(&db, "wal_level") != "minimal" {
        let found = findings(&db, "settings.wal_level_minimal");
        assert!(found.is_empty(), "{found:#?}");
    }
    let listen = show(&db, "listen_addresses");
    if !listen.contains('*') {
        let found = findings(&db, "security.listen_all");
        assert!(found.is_empty(), "{found:#?}");
    }
    // ssl_off counts the listen addresses beyond loopback: none on the test kit's cluster
    // (127.0.0.1), so quiet by default; with the threshold at 0 it shows that ssl is off.
    if TestServer::get().is_throwaway() {
        assert_eq!(listen, "127.0.0.1");
        assert!(findings(&db, "security.ssl_off").is_empty());
        if show(&db, "ssl") == "off" {
            let found = findings_with(&db, "security.ssl_off", 0.0);
            assert_fires(&found, "security.ssl_off", Severity::Warning);
            assert_eq!(found[0].value, Some(0.0), "{found:#?}");
            assert!(found[0].message.contains("127.0.0.1"), "{found:#?}");
        }
    }
}

#[test]
fn track_counts_off_fires_when_a_database_turns_it_off() {
    let db = TestDb::create();
    assert!(findings(&db, "settings.track_counts_off").is_empty());
    db.execute(&format!(
        "ALTER DATABASE {} SET track_counts = off",
        db.name
    ));
    assert_fires(
        &findings(&db, "settings.track_counts_off"),
        "settings.track_counts_off",
        Severity::Warning,
    );
}

#[test]
fn max_connections_and_shared_buffers_are_judged_by_size() {
    let db = TestDb::create();
    let max_connections: f64 = show(&db, "max_connections").parse().unwrap();
    // The test kit's cluster allows 200: below the default 500, above 100.
    assert_eq!(
        findings(&db, "settings.max_connections_high").is_empty(),
        max_connections < 500.0
    );
    let found = findings_with(&db, "settings.max_connections_high", max_connections);
    assert_fires(&found, "settings.max_connections_high", Severity::Warning);
    assert_eq!(found[0].value, Some(max_connections), "{found:#?}");
    assert!(findings_with(&db, "settings.max_connections_high", max_connections + 1.0).is_empty());

    // shared_buffers needs a restart; the test kit's cluster runs with 64MB, a real positive.
    let bytes: f64 = db.query_column("SELECT pg_size_bytes(current_setting('shared_buffers'))")[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let found = findings(&db, "settings.shared_buffers_small");
    if bytes < 128.0 * 1024.0 * 1024.0 {
        assert_fires(&found, "settings.shared_buffers_small", Severity::Warning);
        assert_eq!(found[0].value, Some(bytes), "{found:#?}");
    } else {
        assert!(found.is_empty(), "{found:#?}");
    }
    // Strictly below the threshold: at it, or under a lower one, quiet.
    assert!(findings_with(&db, "settings.shared_buffers_small", bytes).is_empty());
    assert_fires(
        &findings_with(&db, "settings.shared_buffers_small", bytes + 1.0),
        "settings.shared_buffers_small",
        Severity::Warning,
    );
}

#[test]
fn work_mem_and_maintenance_work_mem_fire_when_set_for_the_database() {
    let db = TestDb::create();
    assert!(findings(&db, "settings.work_mem_risky").is_empty());
    assert!(findings(&db, "settings.maintenance_work_mem_small").is_empty());
    db.execute(&format!(
        "ALTER DATABASE {0} SET work_mem = '512MB'; ALTER DATABASE {0} SET maintenance_work_mem = '16MB'",
        db.name
    ));
    let found = findings(&db, "settings.work_mem_risky");
    assert_fires(&found, "settings.work_mem_risky", Severity::Warning);
    assert_eq!(found[0].value, Some(512.0 * 1024.0 * 1024.0), "{found:#?}");
    assert!(found[0].message.contains("max_connections"), "{found:#?}");
    let found = findings(&db, "settings.maintenance_work_mem_small");
    assert_fires(
        &found,
        "settings.maintenance_work_mem_small",
        Severity::Info,
    );
    assert_eq!(found[0].severity, Severity::Info, "{found:#?}");
    assert!(found[0].message.contains("16.0 MB"), "{found:#?}");
}

#[test]
fn checkpoint_timeout_and_max_wal_size_fire_below_their_thresholds() {
    let db = TestDb::create();
    // Both need a reload of the whole cluster: the defaults (5min, 1GB) sit exactly at the
    // thresholds, which find only what is strictly below.
    assert!(findings(&db, "settings.checkpoint_timeout_short").is_empty());
    assert!(findings(&db, "settings.max_wal_size_small").is_empty());
    let found = findings_with(&db, "settings.checkpoint_timeout_short", 100_000.0);
    assert_fires(
        &found,
        "settings.checkpoint_timeout_short",
        Severity::Warning,
    );
    assert_eq!(found[0].subject, "checkpoint_timeout", "{found:#?}");
    let found = findings_with(&db, "settings.max_wal_size_small", 1e15);
    assert_fires(&found, "settings.max_wal_size_small", Severity::Info);
    assert_eq!(found[0].severity, Severity::Info, "{found:#?}");
}

#[test]
fn missing_timeouts_are_reported_until_a_database_or_role_sets_them() {
    let db = TestDb::create();
    let idle = "settings.idle_in_transaction_timeout_unset";
    let statement = "settings.statement_timeout_unset";
    // tend's own session runs with statement_timeout = 5s: the check must look past it.
    assert_fires(&findings(&db, idle), idle, Severity::Info);
    assert_fires(&findings(&db, statement), statement, Severity::Info);
    // Set for this database: quiet.
    db.execute(&format!(
        "ALTER DATABASE {} SET idle_in_transaction_session_timeout = '5min'",
        db.name
    ));
    assert!(findings(&db, idle).is_empty());
    // Set for the application's role (not tend's) in this database: quiet too. Zero counts
    // as unset.
    let app = TempRole::create("timeouts", "NOLOGIN");
    db.execute(&format!(
        "ALTER ROLE {} IN DATABASE {} SET statement_timeout = 0",
        app.name, db.name
    ));
    assert_fires(&findings(&db, statement), statement, Severity::Info);
    db.execute(&format!(
        "ALTER ROLE {} IN DATABASE {} SET statement_timeout = '30s'",
        app.name, db.name
    ));
    assert!(findings(&db, statement).is_empty());
}

#[test]
fn data_checksums_and_log_lock_waits_are_reported() {
    let db = TestDb::create();
    let found = findings(&db, "settings.data_checksums_off");
    if show(&db, "data_checksums") == "off" {
        assert_fires(&found, "settings.data_checksums_off", Severity::Info);
    } else {
        assert!(found.is_empty(), "{found:#?}");
    }
    if show(&db, "log_lock_waits") == "off" {
        assert_fires(
            &findings(&db, "settings.log_lock_waits_off"),
            "settings.log_lock_waits_off",
            Severity::Info,
        );
    }
    db.execute(&format!(
        "ALTER DATABASE {} SET log_lock_waits = on",
        db.name
    ));
    assert!(findings(&db, "settings.log_lock_waits_off").is_empty());
}

/// A restart-only setting changed with ALTER SYSTEM and reloaded, put back on drop (even
/// if the test fails).
struct PendingChange {
    name: &'static str,
    original: String,
}

impl PendingChange {
    fn set(name: &'static str, original: String, value: &str) -> PendingChange {
        let change = PendingChange { name, original };
        admin_execute(&format!("ALTER SYSTEM SET {name} = {value}"));
        admin_execute("SELECT pg_reload_conf()");
        change
    }

    fn pending(&self) -> bool {
        let info = TestServer::get().admin.clone();
        let sql = format!(
            "SELECT pending_restart FROM pg_settings WHERE name = '{}'",
            self.name
        );
        on_runtime(async move {
            let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
            session
                .query_one(&sql, &[])
                .await
                .unwrap()
                .get::<_, bool>(0)
        })
    }
}

impl Drop for PendingChange {
    fn drop(&mut self) {
        // A plain RESET would leave the flag up until a restart: PostgreSQL clears it only
        // when it reads the running value back from the file. So the original value first,
        // then, once the server has seen it, the RESET.
        admin_execute(&format!(
            "ALTER SYSTEM SET {} = '{}'",
            self.name, self.original
        ));
        admin_execute("SELECT pg_reload_conf()");
        eventually(|| !self.pending());
        admin_execute(&format!("ALTER SYSTEM RESET {}", self.name));
        admin_execute("SELECT pg_reload_conf()");
    }
}

#[test]
fn a_setting_waiting_for_a_restart_is_reported() {
    let db = TestDb::create();
    let id = "settings.pending_restart";
    if !TestServer::get().is_throwaway() {
        eprintln!("skipped: changing the configuration needs the test kit's own cluster");
        return;
    }
    assert!(findings(&db, id).is_empty());
    // max_files_per_process needs a restart, and its pending value changes nothing else.
    let current: i64 = show(&db, "max_files_per_process").parse().unwrap();
    let change = PendingChange::set(
        "max_files_per_process",
        current.to_string(),
        &(current + 1).to_string(),
    );
    let mut found = Vec::new();
    assert!(
        eventually(|| {
            found = findings(&db, id);
            !found.is_empty()
        }),
        "no pending restart reported"
    );
    assert_fires(&found, id, Severity::Warning);
    assert_eq!(found[0].subject, "max_files_per_process", "{found:#?}");
    assert!(
        found[0].message.contains(&current.to_string()),
        "{found:#?}"
    );
    drop(change);
    assert!(
        eventually(|| findings(&db, id).is_empty()),
        "the pending restart stayed after the reset"
    );
}

#[test]
fn superuser_connections_and_trust_lines_are_reported() {
    let db = TestDb::create();
    // The test kit connects as the superuser postgres.
    let found = findings(&db, "security.superuser_app");
    assert_fires(&found, "security.superuser_app", Severity::Warning);
    assert_eq!(found[0].subject, "postgres", "{found:#?}");
    if !TestServer::get().is_throwaway() {
        return;
    }
    // initdb --auth=trust writes trust lines for the socket and loopback only: warnings.
    let found = findings(&db, "security.trust_auth");
    assert_fires(&found, "security.trust_auth", Severity::Warning);
    assert!(
        found.iter().all(|f| f.severity == Severity::Warning),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.subject.starts_with("line ") && f.message.contains("127.0.0.1")),
        "{found:#?}"
    );
    // A role of its own: not a superuser, and pg_hba_file_rules is closed to it.
    let app = TempRole::create("app", "LOGIN");
    let report = run_as(
        &db,
        &app.name,
        &["security.superuser_app", "security.trust_auth"],
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.check == "security.superuser_app"),
        "{:#?}",
        report.findings
    );
    let trust = report
        .results
        .iter()
        .find(|r| r.id == "security.trust_auth")
        .unwrap();
    assert_eq!(trust.severity, Severity::Unknown, "{report:#?}");
}

#[test]
fn create_on_a_schema_for_everyone_fires() {
    let db = TestDb::create();
    let id = "security.public_schema_create";
    // PostgreSQL 15 no longer grants it by default; older servers did.
    db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC; CREATE SCHEMA app");
    assert!(findings(&db, id).is_empty());
    db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC; GRANT CREATE ON SCHEMA app TO PUBLIC");
    let found = findings(&db, id);
    assert_fires(&found, id, Severity::Warning);
    let mut subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
    subjects.sort();
    assert_eq!(subjects, ["app", "public"], "{found:#?}");
}

#[test]
fn plaintext_secret_columns_are_found_by_name() {
    let db = TestDb::create();
    let id = "security.plaintext_secrets";
    db.execute(
        r#"CREATE TABLE users (
               id bigint PRIMARY KEY, email text, password text, password_hash text,
               hashed_password text, api_key varchar(64), encrypted_api_key text,
               reset_token text, token_type text, is_secret boolean, refresh_token bytea,
               "apiKey" text, enc_password text, password_digest text);
           CREATE TABLE events (id bigint, token text) PARTITION BY RANGE (id);
           CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (100);
           CREATE SCHEMA tend; CREATE TABLE tend.config (secret text);
           CREATE VIEW logins AS SELECT id, password FROM users;"#,
    );
    let found = findings(&db, id);
    assert_fires(&found, id, Severity::Warning);
    let mut subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
    subjects.sort();
    // Hashed or encrypted by name, not text, a view, a partition or tend's own: left out.
    assert_eq!(
        subjects,
        [
            "public.events.token",
            "public.users.\"apiKey\"",
            "public.users.api_key",
            "public.users.password",
            "public.users.reset_token",
        ],
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.subject == "public.users.api_key"
                && f.message.contains("character varying(64)")),
        "{found:#?}"
    );
}

#[test]
fn md5_password_hashing_fires_for_the_setting_and_for_roles() {
    let db = TestDb::create();
    let id = "security.weak_password_hashing";
    if crate::skipped_without_xml(&db, id) {
        return;
    }
    if show(&db, "password_encryption") != "md5" {
        assert!(findings(&db, id).is_empty());
    }
    db.execute(&format!(
        "ALTER DATABASE {} SET password_encryption = 'md5'",
        db.name
    ));
    let found = findings(&db, id);
    assert_fires(&found, id, Severity::Warning);
    assert!(
        found.iter().any(|f| f.subject == "password_encryption"),
        "{found:#?}"
    );
    if !TestServer::get().is_throwaway() {
        return;
    }
    // A login role with an MD5 hash (given pre-hashed, it is stored as is); pg_authid is
    // read only by a superuser, other roles still get the setting's row.
    let legacy = TempRole::create(
        "legacy",
        "LOGIN PASSWORD 'md5a1b2c3d4e5f60718293a4b5c6d7e8f90'",
    );
    let found = findings(&db, id);
    assert!(
        found
            .iter()
            .any(|f| f.subject == format!("role {}", legacy.name)),
        "{found:#?}"
    );
    let report = run_as(&db, &legacy.name, &[id]);
    let result = report.results.iter().find(|r| r.id == id).unwrap();
    assert_eq!(result.severity, Severity::Warning, "{report:#?}");
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.subject == "password_encryption"),
        "{report:#?}"
    );
}

#[test]
fn superusers_that_can_log_in_are_counted() {
    let db = TestDb::create();
    let id = "security.superusers_many";
    let found = findings_with(&db, id, 1.0);
    assert_fires(&found, id, Severity::Warning);
    assert!(found[0].message.contains("postgres"), "{found:#?}");
    assert!(findings_with(&db, id, 1e6).is_empty());
}

#[test]
fn every_config_check_runs_and_only_durability_is_critical() {
    let db = TestDb::create();
    let ours = checks::config::CHECKS;
    let ids: Vec<&str> = ours.iter().map(|c| c.id).collect();
    let report = run_checks(&db, &ids, &[]);
    assert_eq!(report.results.len(), ours.len(), "{report:#?}");
    let has_xml = tend_testkit::TestServer::get().has_xml();
    for result in &report.results {
        if !has_xml && result.id == "security.weak_password_hashing" {
            // Reads pg_authid through query_to_xml: unknown on a server without XML.
            continue;
        }
        assert_ne!(
            result.severity,
            Severity::Unknown,
            "{} could not run: {:?}",
            result.id,
            result.note
        );
        if result.severity == Severity::Critical {
            assert!(
                ["settings.fsync_off", "settings.full_page_writes_off"].contains(&result.id),
                "{} is critical on the test server: {:#?}",
                result.id,
                report.findings
            );
        }
    }
}

/// A private cluster started with the settings that need a restart to change: autovacuum
/// off, wal_level minimal, listening everywhere without TLS. Their checks fire for real.
#[test]
fn restart_only_settings_fire_on_a_cluster_started_with_them() {
    let private = tend_testkit::PrivateCluster::start(&[
        ("autovacuum", "off"),
        ("wal_level", "minimal"),
        ("max_wal_senders", "0"),
        ("archive_mode", "off"),
        ("listen_addresses", "*"),
        ("ssl", "off"),
    ]);
    let info = private.info.clone();
    let report = on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
        let options = RunOptions {
            only: vec![
                "settings.autovacuum_off".into(),
                "settings.wal_level_minimal".into(),
                "security.listen_all".into(),
                "security.ssl_off".into(),
            ],
            ..RunOptions::default()
        };
        tend_ops::runner::run(&session, &checks::catalog(), &options)
            .await
            .unwrap()
    });
    drop(private);
    assert_fires(
        &report.findings,
        "settings.autovacuum_off",
        Severity::Critical,
    );
    assert_fires(
        &report.findings,
        "settings.wal_level_minimal",
        Severity::Warning,
    );
    assert_fires(&report.findings, "security.listen_all", Severity::Info);
    assert_fires(&report.findings, "security.ssl_off", Severity::Warning);
}
