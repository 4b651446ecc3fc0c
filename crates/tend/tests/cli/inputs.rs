//! Outside input that is absurd or unreadable: every value is checked once, at resolve
//! time or by clap, and ends as a config (3) or usage (2) error naming what is wrong; never
//! a panic (101), never a silent fallback to the local cluster.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use tend_testkit::{TestDb, TestProject};

use crate::run;

fn assert_no_panic(what: &str, code: i32, err: &str) {
    assert_ne!(code, 101, "{what} panicked: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// No local cluster was created in the project (what a silent fallback would do).
fn assert_no_local_cluster(project: &TestProject) {
    assert!(
        !project.path().join(".tend").exists(),
        "a local cluster was created"
    );
}

#[test]
fn absurd_environment_values_are_config_errors() {
    let project = TestProject::new();
    let huge = "9".repeat(400);
    let cases: Vec<(&str, String)> = vec![
        ("DB_CONNECT_TIMEOUT", "99999999999999999999d".into()),
        ("DB_CONNECT_TIMEOUT", "18446744073709551616".into()),
        ("DB_CONNECT_TIMEOUT", format!("{huge}ms")),
        ("DB_CONNECT_TIMEOUT", "1e400".into()),
        ("DB_CONNECT_TIMEOUT", "-5s".into()),
        ("DB_CONNECT_TIMEOUT", "inf".into()),
        ("DB_CONNECT_TIMEOUT", "NaN".into()),
        ("DB_CONNECT_TIMEOUT", "3 fortnights".into()),
        ("DB_QUERY_TIMEOUT", "30d".into()),
        ("DB_IDLE_TIMEOUT", "36501d".into()),
        ("TEND_MIGRATE_LOCK_WAIT", "99999999999999999999h".into()),
        ("TEND_MIGRATE_LOCK_TIMEOUT", "25d".into()),
        ("TEND_MIGRATE_STATEMENT_TIMEOUT", "4294967296ms".into()),
        (
            "DB_CONNECTION_TIME_THRESHOLD",
            "99999999999999999999".into(),
        ),
        ("DB_POOL_MAX", "0".into()),
        ("DB_POOL_MAX", "4294967296".into()),
        ("DB_POOL_MAX", "-1".into()),
        ("DB_POOL_MAX", "18446744073709551616".into()),
        ("DB_CONNECT_ATTEMPTS", "0".into()),
        ("DB_CONNECT_ATTEMPTS", "4294967295".into()),
        ("BACKUP_COMPRESSION_LEVEL", "2147483648".into()),
        ("BACKUP_COMPRESSION_LEVEL", "100".into()),
        ("BACKUP_RETENTION_DAYS", "4294967295".into()),
        ("DB_QUERY_TIME_THRESHOLD", "1e309".into()),
        ("DB_QUERY_TIME_THRESHOLD", "NaN".into()),
        ("DB_QUERY_TIME_THRESHOLD", "-1".into()),
        ("DB_CONNECTION_COUNT_THRESHOLD", "inf".into()),
        ("DB_CONNECTION_COUNT_THRESHOLD", huge.clone()),
    ];
    for (var, value) in &cases {
        for args in [&["config", "show"][..], &["health", "--json"][..]] {
            let (code, _, err) = run(project
                .tend()
                .env("DATABASE_URL", "postgresql://app@127.0.0.1:1/app")
                .env(var, value)
                .args(args));
            let what = format!("{var}={value} {args:?}");
            assert_no_panic(&what, code, &err);
            assert_eq!(code, 3, "{what}: {err}");
            assert!(err.contains("is invalid"), "{what}: {err}");
        }
    }
    assert_no_local_cluster(&project);
}

#[test]
fn absurd_tend_toml_values_are_config_errors() {
    let project = TestProject::new();
    for body in [
        "[database]\nconnect_timeout = 9223372036854775807\n",
        "[database]\nconnect_timeout = \"99999999999999999999d\"\n",
        "[database]\npool_max = -1\n",
        "[database]\npool_max = 99999999999\n",
        "[backup.retention]\nkeep_last = 99999999999\n",
        "[backup.retention]\nmax_age_days = 4000000\n",
        "[checks.\"queries.long_running\"]\nwarning = nan\n",
        "[checks.\"queries.long_running\"]\ncritical = inf\n",
        "[checks.\"queries.long_running\"]\nwarning = -inf\n",
    ] {
        project.write("tend.toml", body);
        let (code, _, err) = run(project.tend().args(["config", "show"]));
        assert_no_panic(body, code, &err);
        assert_eq!(code, 3, "{body}: {err}");
    }
}

#[test]
fn absurd_flag_values_are_usage_errors() {
    let project = TestProject::new();
    let cases: &[&[&str]] = &[
        &["kill", "--longer-than", "18446744073709551616"],
        &["kill", "--longer-than", "99999999999999999999d"],
        &["kill", "--longer-than", "1e999"],
        &[
            "kill",
            "--idle-in-transaction",
            "18446744073709551616",
            "--terminate",
        ],
        &["kill", "99999999999"],
        &["kill", "-1e9"],
        &["queries", "--min-duration", "99999999999999999999d"],
        &["queries", "--min-duration", "NaN"],
        &["restore", "-j", "0"],
        &["restore", "-j", "18446744073709551616"],
        &["migrate", "rollback", "--steps", "18446744073709551616"],
        &["migrate", "rollback", "--steps", "-1"],
    ];
    for args in cases {
        let (code, out, err) = run(project
            .tend()
            .env("DATABASE_URL", "postgresql://app@127.0.0.1:1/app")
            .args(*args));
        let what = format!("{args:?}");
        assert_no_panic(&what, code, &err);
        assert_eq!(code, 2, "{what}: {out}{err}");
    }
    assert_no_local_cluster(&project);
}

#[test]
fn a_non_utf8_dotenv_is_an_error_naming_the_file_and_line_not_the_local_cluster() {
    let project = TestProject::new();
    let mut bytes =
        b"# the app's settings\nDATABASE_URL=postgresql://app@127.0.0.1:1/app\n".to_vec();
    bytes.extend_from_slice(b"APP_NAME=caf\xe9\n");
    std::fs::write(project.path().join(".env"), &bytes).unwrap();
    for args in [
        &["migrate", "status"][..],
        &["health"][..],
        &["config", "show"][..],
    ] {
        let (code, _, err) = run(project.tend().args(args));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains(".env line 3 is not valid UTF-8"), "{err}");
    }
    let (code, out, _) = run(project.tend().args(["doctor", "--json"]));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(".env line 3 is not valid UTF-8"), "{out}");
    assert_no_local_cluster(&project);
}

#[test]
fn a_dotenv_that_cannot_be_read_or_parsed_is_an_error_naming_the_line() {
    let project = TestProject::new();
    for (body, line) in [
        (
            "DATABASE_URL=postgresql://app@127.0.0.1:1/app\nthis is not an assignment\n",
            2,
        ),
        ("A=1\nDATABASE_URL=\"postgresql://app@127.0.0.1:1/app\n", 2),
        ("DATABASE_URL='postgresql://app@h/app' trailing\n", 1),
        ("A=1\n\n1BAD=2\n", 3),
    ] {
        project.write(".env", body);
        let (code, _, err) = run(project.tend().args(["migrate", "status"]));
        assert_eq!(code, 3, "{body}: {err}");
        assert!(err.contains(&format!(".env line {line} ")), "{body}: {err}");
        assert!(
            !err.contains("127.0.0.1"),
            "the line's text is not echoed: {err}"
        );
    }
    // A quoted value may span lines, as dotenv allows.
    project.write(
        ".env",
        "KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nDATABASE_URL=postgresql://app@127.0.0.1:1/app\n",
    );
    let (code, out, err) = run(project.tend().args(["config", "show"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("postgresql://app@127.0.0.1:1/app"), "{out}");
    // A directory where .env should be cannot be read.
    std::fs::remove_file(project.path().join(".env")).unwrap();
    std::fs::create_dir(project.path().join(".env")).unwrap();
    let (code, _, err) = run(project.tend().args(["config", "show"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot read") && err.contains(".env"), "{err}");
    assert_no_local_cluster(&project);
}

#[test]
fn a_tend_toml_that_is_not_utf8_or_not_toml_names_the_line() {
    let project = TestProject::new();
    std::fs::write(
        project.path().join("tend.toml"),
        b"[database]\n# caf\xe9\nurl = \"postgresql://app@127.0.0.1:1/app\"\n",
    )
    .unwrap();
    let (code, _, err) = run(project.tend().args(["migrate", "status"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("tend.toml line 2 is not valid UTF-8"), "{err}");
    project.write(
        "tend.toml",
        "[database]\npool_max = 3\nurl = \"postgresql://app:S3cr3tW0rd@h/app\n",
    );
    let (code, _, err) = run(project.tend().args(["config", "show"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not valid TOML (line 3)"), "{err}");
    assert!(!err.contains("S3cr3tW0rd"), "{err}");
    assert_no_local_cluster(&project);
}

#[test]
fn a_non_utf8_environment_variable_is_an_error() {
    let project = TestProject::new();
    let (code, _, err) = run(project
        .tend()
        .env(
            "DATABASE_URL",
            OsStr::from_bytes(b"postgresql://app@127.0.0.1:1/caf\xe9"),
        )
        .args(["migrate", "status"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("DATABASE_URL is not valid UTF-8"), "{err}");
    assert_no_local_cluster(&project);
}

#[test]
fn a_migration_folder_whose_name_is_not_utf8_is_an_error_not_skipped() {
    let db = TestDb::create();
    let project = TestProject::new();
    project.write(
        "prisma/migrations/20260101000000_init/migration.sql",
        "CREATE TABLE a (id int);",
    );
    project.write(
        "prisma/migrations/migration_lock.toml",
        "provider = \"postgresql\"\n",
    );
    project.write(
        "prisma/schema.prisma",
        "datasource db {\n  provider = \"postgresql\"\n}\n",
    );
    let (code, _, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["migrate", "deploy"]));
    assert_eq!(code, 0, "{err}");
    let bad = project
        .path()
        .join("prisma/migrations")
        .join(OsStr::from_bytes(b"20260102000000_caf\xe9"));
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("migration.sql"), "CREATE TABLE b (id int);").unwrap();
    for args in [&["migrate", "status"][..], &["migrate", "deploy"][..]] {
        let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).args(args));
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(err.contains("has a name that is not UTF-8"), "{err}");
        assert!(err.contains("20260102000000_caf"), "{err}");
    }
}

/// A URL with more query parameters; the parameter numbers in messages count from its first.
fn with_params(url: &str, params: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{base}?{params}&{query}"),
        None => format!("{url}?{params}"),
    }
}

#[test]
fn unknown_url_parameters_are_refused_and_prismas_are_kept() {
    let db = TestDb::create();
    let project = TestProject::new();
    let (code, _, err) = run(project
        .tend()
        .env(
            "DATABASE_URL",
            with_params(&db.url(), "sslmode=disable&conect_timeout=3"),
        )
        .args(["health"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("2nd parameter after `?` is not a connection option libpq knows")
            && err.contains("did you mean `connect_timeout`?"),
        "{err}"
    );
    let (code, _, err) = run(project
        .tend()
        .env("DATABASE_URL", "host=127.0.0.1 port=1 frobnicate=1")
        .args(["config", "show"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("3rd parameter is not a connection option"),
        "{err}"
    );
    // What Prisma's URLs carry works against a real server, and with pg_dump.
    let prisma = with_params(
        &db.url(),
        "schema=public&connection_limit=5&pool_timeout=10&pgbouncer=true&sslaccept=strict&socket_timeout=5&statement_cache_size=0",
    );
    let (code, out, err) = run(project.tend().env("DATABASE_URL", &prisma).args(["health"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", &prisma)
        .env("BACKUP_DIR", project.path().join("backups"))
        .env("BACKUP_ENCRYPTION_KEY", "correct horse battery staple")
        .args(["backup", "run"]));
    assert_eq!(code, 0, "{out}{err}");
}
