//! `action = "archive-to-store"`: a retention rule that keeps its rows in the backup store
//! (a real S3-compatible server) before it deletes them. Against the example SaaS data in
//! a database owned by an application role: no key refuses before anything is deleted; a
//! run killed midway and run again leaves the table without the rule's rows and the store
//! with every one of them, once, encrypted; `tend cleanup archived` reads them back; the
//! backup commands never take the archive for a backup.

use std::time::{Duration, Instant};

use tend_testkit::s3::S3Server;
use tend_testkit::{TestProject, query_column};

use crate::cleanup::{checksum, saas_database};
use crate::run;

const RULES: &str = r#"
[cleanup]
soft_delete = "off"

[[retention]]
name = "old-audit"
table = "audit_log"
column = "created_at"
older_than = "365d"
action = "archive-to-store"
"#;

const PASSPHRASE: &str = "archive-passphrase-never-printed";

fn count(info: &tend_pg::ConnInfo, sql: &str) -> i64 {
    query_column(info, sql)[0].clone().unwrap().parse().unwrap()
}

#[test]
fn archived_rows_are_in_the_store_once_encrypted_and_read_back_after_a_kill() {
    let Some((_db, app)) = saas_database("tend_archive_app") else {
        return;
    };
    let url = app.to_secret_string();
    let s3 = S3Server::start();
    let project = TestProject::new();
    project.write("tend.toml", RULES);
    let tend = |key: Option<&str>| {
        let mut command = project.tend();
        // Batches back to back: the test needs no rest between them.
        command
            .env("DATABASE_URL", &url)
            .env("TEND_CLEANUP_DUTY_CYCLE", "100%")
            .envs(s3.env());
        if let Some(key) = key {
            command.env("BACKUP_ENCRYPTION_KEY", key);
        }
        command
    };
    let due = "created_at < now() - interval '365 days'";
    let mut expected: Vec<String> = query_column(
        &app,
        &format!("SELECT row_to_json(a)::text FROM audit_log a WHERE {due}"),
    )
    .into_iter()
    .map(Option::unwrap)
    .collect();
    expected.sort();
    assert!(expected.len() > 10_000, "{}", expected.len());

    // The dry run names where rows go; without a key a run refuses before any delete.
    let (code, out, err) = run(tend(None).args(["cleanup", "--dry-run"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("to archive in the backup store"), "{out}");
    assert!(err.contains("no backup key is configured"), "{err}");
    let before = checksum(&app);
    let (code, out, err) = run(tend(None).args(["cleanup", "--yes"]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("old-audit") && err.contains("BACKUP_ENCRYPTION_KEY"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(checksum(&app), before, "nothing deleted without a key");

    // Small batches, killed once some are done, then run again to the end.
    let mut child = project
        .tend_process()
        .env("DATABASE_URL", &url)
        .envs(s3.env())
        .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
        .env("TEND_CLEANUP_MAX_BATCH", "500")
        .env("TEND_CLEANUP_DUTY_CYCLE", "100%")
        .args(["cleanup", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let total = expected.len() as i64;
    let started = Instant::now();
    while count(&app, &format!("SELECT count(*) FROM audit_log WHERE {due}")) == total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the cleanup archived nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "it finished before the kill"
    );
    let (code, out, err) = run(tend(Some(PASSPHRASE)).args(["cleanup", "--yes", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(PASSPHRASE) && !err.contains(PASSPHRASE));
    assert_eq!(
        count(&app, &format!("SELECT count(*) FROM audit_log WHERE {due}")),
        0
    );
    // Every batch that committed is recorded, listed by a manifest, and nothing twice.
    assert_eq!(
        count(
            &app,
            "SELECT coalesce(sum(rows), 0) FROM tend.retention_archive"
        ),
        total
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM tend.retention_archive WHERE manifest IS NULL"
        ),
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM tend.retention_staging"),
        0,
        "nothing is left staged"
    );
    // Large objects, not one per batch of deletes.
    let batches = count(&app, "SELECT count(*) FROM tend.retention_archive");
    assert!(batches <= 4, "{batches} objects for {total} rows");

    // The store: listed from the manifests alone, every row once.
    let (code, out, err) = run(tend(None).args(["cleanup", "archived", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rule = &listed[0];
    assert_eq!(rule["rule"], "old-audit", "{out}");
    assert_eq!(rule["table"], "public.audit_log", "{out}");
    assert_eq!(rule["rows"], total, "{out}");
    assert!(rule["manifests"].as_u64().unwrap() >= 2, "{out}");
    // Encrypted: no row's text is in the bucket, nor the passphrase.
    let first: serde_json::Value = serde_json::from_str(&expected[0]).unwrap();
    let needle = first
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_str())
        .find(|v| v.len() >= 8)
        .expect("a text column")
        .to_string();
    for path in s3.object_paths() {
        let bytes = std::fs::read(s3.object_file(&path)).unwrap();
        if path.contains("manifest-") {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(PASSPHRASE), "{path}");
            continue;
        }
        assert!(path.ends_with(".age"), "{path}");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&needle) && !text.contains("audit"), "{path}");
    }

    // Read back: exactly the rows that left the table.
    let dir = project.path().join("archived");
    let (code, out, err) = run(tend(Some(PASSPHRASE))
        .args(["cleanup", "archived", "--rule", "old-audit", "--out"])
        .arg(&dir));
    assert_eq!(code, 0, "{out}{err}");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut read: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    read.sort();
    assert_eq!(read.len(), expected.len());
    assert!(
        read == expected,
        "the archived rows differ from the deleted ones"
    );

    // A wrong key: one sentence, exit 3, and nothing written.
    let (code, out, err) = run(tend(Some("not-the-passphrase"))
        .args(["cleanup", "archived", "--out"])
        .arg(project.path().join("wrong")));
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("does not open"), "{err}");
    assert!(!err.contains("not-the-passphrase"), "{err}");

    // The backup commands leave the archive alone: not a backup, not a leftover.
    let (code, out, err) = run(tend(Some(PASSPHRASE)).args(["backup", "list", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("retention"), "{out}");
    let (code, out, err) = run(tend(Some(PASSPHRASE)).args(["backup", "prune", "--dry-run"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("retention") && !err.contains("retention"),
        "{out}{err}"
    );

    // Those rows back in the table, loaded from what was read out (the recipe in
    // docs/cli.md): a second archive of them, to a store that refuses its first write.
    let lines: Vec<&String> = read.iter().take(5_000).collect();
    let values = lines
        .iter()
        .map(|l| format!("($j${l}$j$)"))
        .collect::<Vec<_>>()
        .join(",");
    query_column(
        &app,
        &format!(
            "INSERT INTO audit_log SELECT (json_populate_record(NULL::audit_log, l::json)).*
               FROM (VALUES {values}) v(l); SELECT 1"
        ),
    );
    assert_eq!(count(&app, "SELECT count(*) FROM audit_log"), 5_000);
    // A file where the database's folder goes: the probe passes, the first write refuses.
    let store = project.path().join("store");
    let identity = query_column(
        &app,
        "SELECT (SELECT system_identifier FROM pg_control_system()) || '/' || current_database() || '-' || oid
           FROM pg_database WHERE datname = current_database()",
    );
    let blocked = store.join("retention").join(identity[0].clone().unwrap());
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "in the way").unwrap();
    // Another spelling of the same database (its socket): the same folder, by identity.
    let socket = query_column(
        &tend_testkit::TestServer::get().admin,
        "SELECT current_setting('unix_socket_directories')",
    );
    let mut by_socket = app.clone();
    by_socket.set(
        "host",
        socket[0].clone().unwrap().split(',').next().unwrap().trim(),
    );
    let socket_url = by_socket.to_secret_string();
    let local = |extra: &[&str]| {
        let mut command = project.tend();
        command
            .env("DATABASE_URL", &socket_url)
            .env("BACKUP_DIR", &store)
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .env("TEND_CLEANUP_DUTY_CYCLE", "100%")
            .args(["cleanup", "--yes"])
            .args(extra);
        run(&mut command)
    };
    let (code, out, err) = local(&[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("old-audit") && err.contains("the next tend cleanup stores them"),
        "{err}"
    );
    assert!(!err.contains(PASSPHRASE), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Nothing lost: each row is in the table or staged for the store.
    assert_eq!(
        count(&app, "SELECT count(*) FROM audit_log")
            + count(&app, "SELECT count(*) FROM tend.retention_staging"),
        5_000
    );
    std::fs::remove_file(&blocked).unwrap();
    let mut by_name = app.clone();
    by_name.set("host", "localhost");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", by_name.to_secret_string())
        .args(["cleanup", "--dry-run"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("waiting in tend.retention_staging"), "{out}");
    let (code, out, err) = local(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count(&app, "SELECT count(*) FROM audit_log"), 0);
    assert_eq!(
        count(&app, "SELECT count(*) FROM tend.retention_staging"),
        0
    );
    let (code, out, err) = run(project
        .tend()
        .env("BACKUP_DIR", &store)
        .args(["cleanup", "archived", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["rows"], 5_000, "{out}");
    assert_eq!(
        listed[0]["folder"],
        format!("{}/old-audit", identity[0].clone().unwrap()),
        "{out}"
    );
}
