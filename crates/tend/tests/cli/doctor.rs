//! `tend doctor` against the failures a user meets: nothing listening, a wrong password, a
//! missing pg_dump, TLS not offered; and the all-clear.

use tend_testkit::{TestDb, TestProject, TestServer};

use crate::run;

#[test]
fn doctor_passes_on_a_healthy_setup() {
    let db = TestDb::create();
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("DATABASE_URL", db.url()).arg("doctor"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("All is well"), "{out}");
    assert!(out.contains("can dump this PostgreSQL"), "{out}");
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["doctor", "--json"]));
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["errors"], 0);
}

#[test]
fn doctor_explains_an_unreachable_port() {
    let project = TestProject::new();
    let (code, out, _) = run(project
        .tend()
        .env(
            "DATABASE_URL",
            "postgresql://app:pw-unreach@127.0.0.1:1/app",
        )
        .arg("doctor"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cannot reach PostgreSQL at 127.0.0.1:1"),
        "{out}"
    );
    assert!(out.contains("fix:"), "{out}");
    assert!(!out.contains("pw-unreach"));
}

#[test]
fn doctor_explains_a_wrong_password() {
    let server = TestServer::get();
    let db = TestDb::create();
    let Some(mut info) = server.password_user("tend_pw_doctor", "the-right-one", &db.name) else {
        return;
    };
    info.set("password", "Wr0ngPassw0rd");
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", info.to_secret_string())
        .arg("doctor"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("refused the password for user `tend_pw_doctor`"),
        "{out}"
    );
    assert!(!out.contains("Wr0ngPassw0rd") && !err.contains("Wr0ngPassw0rd"));
}

#[test]
fn doctor_explains_a_missing_pg_dump() {
    let db = TestDb::create();
    let project = TestProject::new();
    let empty = tempfile::tempdir().unwrap();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("TEND_PG_BINDIR", empty.path())
        .arg("doctor"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("pg_dump is missing"), "{out}");
    assert!(out.contains("apt-get install postgresql-client"), "{out}");
}

#[test]
fn doctor_explains_tls_not_offered() {
    let db = TestDb::create();
    let project = TestProject::new();
    let mut info = db.info.clone();
    info.set("sslmode", "require");
    let (code, out, _) = run(project
        .tend()
        .env("DATABASE_URL", info.to_secret_string())
        .arg("doctor"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not offer TLS"), "{out}");
}

#[test]
fn doctor_reports_an_invalid_config_and_keeps_going() {
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[database]\nurl = \"mysql://root:SekretPW@h/db\"\n",
    );
    let (code, out, err) = run(project.tend().arg("doctor"));
    // The configuration's own exit code; the tools are still checked, but no database:
    // the local cluster would stand in for the one configured.
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("FAIL config"), "{out}");
    assert!(out.contains("tools.pg_dump"), "{out}");
    assert!(
        out.contains("not checked: the configuration cannot be read"),
        "{out}"
    );
    assert!(!project.path().join(".tend").exists(), "no local cluster");
    assert!(!out.contains("SekretPW") && !err.contains("SekretPW"));
}
