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

fn finding<'a>(doc: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no `{check}` finding in {doc}"))
}

/// Doctor says which layout it detected, the history table and its state, whether a
/// backup key is set (never its value) and whether a restore drill can run here, in words
/// and in JSON.
#[test]
fn doctor_reports_layout_history_backup_key_and_restore_drill() {
    let db = TestDb::create();
    let project = TestProject::new();
    project.write(
        "prisma/migrations/20240101000000_init/migration.sql",
        "CREATE TABLE accounts (id int PRIMARY KEY);\n",
    );
    project.write(
        "prisma/migrations/migration_lock.toml",
        "provider = \"postgresql\"\n",
    );
    let key = "Corr3ct-Horse-Battery-Staple";
    let doctor = |json: bool, with_key: bool| {
        let mut cmd = project.tend();
        cmd.env("DATABASE_URL", db.url()).arg("doctor");
        if json {
            cmd.arg("--json");
        }
        if with_key {
            cmd.env("BACKUP_ENCRYPTION_KEY", key);
        }
        run(&mut cmd)
    };
    let (code, out, err) = doctor(true, true);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(key) && !err.contains(key), "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let layout = finding(&doc, "project.layout")["message"].as_str().unwrap();
    assert!(
        layout.contains("Prisma's layout") && layout.contains("1 migration"),
        "{layout}"
    );
    let history = finding(&doc, "project.history")["message"]
        .as_str()
        .unwrap();
    assert!(
        history.contains("_prisma_migrations") && history.contains("migrate deploy"),
        "{history}"
    );
    let backup_key = finding(&doc, "backup.key");
    assert_eq!(backup_key["status"], "ok", "{backup_key}");
    assert!(
        backup_key["message"]
            .as_str()
            .unwrap()
            .contains("passphrase is set"),
        "{backup_key}"
    );
    let drill = finding(&doc, "backup.restore_drill");
    // The test machine has pg_restore and the server programs.
    assert_eq!(drill["status"], "ok", "{drill}");
    assert!(
        finding(&doc, "project.check_history")["message"]
            .as_str()
            .unwrap()
            .contains("tend check")
    );

    // Applied: the history table is found and counted; without a key, backups are flagged.
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["migrate", "deploy"]));
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = doctor(false, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("history table \"public\".\"_prisma_migrations\": 1 migration applied"),
        "{out}"
    );
    assert!(out.contains("no backup key is set"), "{out}");
    assert!(out.contains("a restore drill cannot run here"), "{out}");
}

/// `tend doctor --json` is the serialized `DoctorReport`. What depends on the machine (tool
/// paths and versions, the server's version and URL, the restore drill's versions) is
/// replaced before the snapshot; the checks, their order, statuses and the rest are pinned.
#[test]
fn doctor_json_is_the_doctor_report() {
    let db = TestDb::create();
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .args(["doctor", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let mut doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    for finding in doc["findings"].as_array_mut().unwrap() {
        let check = finding["check"].as_str().unwrap().to_string();
        if check.starts_with("tools.")
            || check.starts_with("database.connect")
            || check == "backup.restore_drill"
        {
            finding["message"] = "[depends on the machine]".into();
            if finding.get("fix").is_some() {
                finding["fix"] = "[depends on the machine]".into();
            }
        }
    }
    insta::assert_json_snapshot!(doc);
}
