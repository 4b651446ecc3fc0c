//! Configuration: layering, sources, unknown keys, `init`, completions and exit codes.

use tend_testkit::TestProject;

use crate::run;

#[test]
fn config_show_json_names_each_source() {
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[database]\nurl = \"postgresql://file@db.internal/app\"\npool_max = 5\n",
    );
    std::fs::create_dir_all(project.path().join("sub/dir")).unwrap();
    let (code, out, err) = run(project
        .tend()
        .current_dir(project.path().join("sub/dir"))
        .env("DB_CONNECT_TIMEOUT", "3s")
        .args([
            "config",
            "show",
            "--json",
            "--database-url",
            "postgres://flag@h/db",
        ]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entry = |key: &str| {
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .clone()
    };
    assert_eq!(entry("database.url")["source"]["kind"], "flag");
    assert_eq!(entry("database.url")["value"], "postgresql://flag@h/db");
    assert_eq!(entry("database.pool_max")["source"]["kind"], "file");
    assert_eq!(entry("database.pool_max")["value"], "5");
    assert_eq!(entry("database.connect_timeout")["source"]["kind"], "env");
    assert_eq!(
        entry("database.connect_timeout")["source"]["var"],
        "DB_CONNECT_TIMEOUT"
    );
    assert_eq!(entry("dev.database")["source"]["kind"], "default");
    assert!(entry("database.shadow_url")["value"].is_null());
    assert!(doc["config_file"].as_str().unwrap().ends_with("tend.toml"));
}

#[test]
fn unknown_key_is_a_config_error_with_a_suggestion() {
    let project = TestProject::new();
    project.write("tend.toml", "[database]\npool_mx = 3\n");
    let (code, _, err) = run(project.tend().args(["config", "show"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("unknown key `database.pool_mx`"), "{err}");
    assert!(err.contains("did you mean `database.pool_max`?"), "{err}");
    assert_eq!(err.lines().count(), 1, "one sentence: {err}");
}

#[test]
fn bad_values_are_config_errors() {
    let project = TestProject::new();
    let (code, _, err) = run(project
        .tend()
        .env("DB_POOL_MAX", "lots")
        .args(["config", "show"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("database.pool_max") && err.contains("DB_POOL_MAX"),
        "{err}"
    );
    let (code, _, err) = run(project
        .tend()
        .args(["--config", "nope.toml", "config", "show"]));
    assert_eq!(code, 3, "{err}");
    project.write("tend.toml", "[database\n");
    let (code, _, err) = run(project.tend().args(["config", "show"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not valid TOML"), "{err}");
}

#[test]
fn init_writes_config_and_detects_prisma() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().arg("init"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tend.toml"), "{out}");
    assert!(project.path().join("migrations").is_dir());
    let text = std::fs::read_to_string(project.path().join("tend.toml")).unwrap();
    assert!(text.contains("format = \"tend\""), "{text}");
    // The written file is valid as it stands.
    let (code, _, err) = run(project.tend().args(["config", "show"]));
    assert_eq!(code, 0, "{err}");
    // A second init refuses to overwrite.
    let (code, _, err) = run(project.tend().arg("init"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--force"), "{err}");

    let prisma = TestProject::new();
    prisma.write(
        "prisma/schema.prisma",
        "datasource db {\n  provider = \"postgresql\"\n}\n",
    );
    prisma.write(
        "prisma/migrations/migration_lock.toml",
        "provider = \"postgresql\"\n",
    );
    let (code, out, err) = run(prisma.tend().args(["init", "--json"]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["format"], "prisma");
    let text = std::fs::read_to_string(prisma.path().join("tend.toml")).unwrap();
    assert!(text.contains("format = \"prisma\""), "{text}");
    assert!(!prisma.path().join("migrations").exists());
}

#[test]
fn completions_and_usage_errors() {
    let project = TestProject::new();
    let (code, out, _) = run(project.tend().args(["completions", "bash"]));
    assert_eq!(code, 0);
    assert!(out.contains("_tend()"), "{out}");
    let (code, _, err) = run(project.tend().arg("frobnicate"));
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = run(project.tend().arg("--help"));
    assert_eq!(code, 0);
    for command in ["init", "dev", "config", "doctor", "demo", "completions"] {
        assert!(out.contains(command), "{command} missing from help");
    }
}

#[test]
fn json_errors_are_documents_on_stdout() {
    let project = TestProject::new();
    project.write("tend.toml", "[dev]\ndatabse = \"x\"\n");
    let (code, out, _) = run(project.tend().args(["config", "show", "--json"]));
    assert_eq!(code, 3);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["kind"], "config");
    assert_eq!(doc["error"]["exit_code"], 3);
}

#[test]
fn a_missing_postgres_program_exits_5_with_an_install_hint() {
    let project = TestProject::new();
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run(project
        .tend()
        .env("TEND_PG_BINDIR", empty.path())
        .args(["dev", "start"]));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("initdb was not found in TEND_PG_BINDIR"),
        "{err}"
    );
    assert!(err.contains("apt-get install postgresql"), "{err}");
}

#[test]
fn usage_errors_are_json_documents_with_json() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().args(["dev", "--json", "frobnicate"]));
    assert_eq!(code, 2, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["kind"], "usage");
    assert!(err.contains("frobnicate"), "{err}");
}

/// `tend config show --json` is its typed report: where the configuration came from and
/// every key with its value and source (paths of this run redacted).
#[test]
fn config_show_json_is_the_config_report() {
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[database]\nurl = \"postgresql://app:secret@db.internal/app\"\n[backup.retention]\nkeep_last = 3\n",
    );
    // Only what this test sets: no tool folder or server user from the test's environment.
    let (code, out, err) = run(project
        .tend()
        .env_remove("TEND_PG_BINDIR")
        .env_remove("TEND_PG_USER")
        .env("DB_CONNECT_TIMEOUT", "3s")
        .args(["config", "show", "--json"]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".config_file" => "[project]/tend.toml",
        ".project_root" => "[project]",
        ".settings[].source.path" => "[project]/tend.toml",
    });
}

/// `tend init --json` is its typed report: the file written and the layout chosen.
#[test]
fn init_json_is_the_init_report() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().args(["init", "--json"]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".config_file" => "[project]/tend.toml",
        ".migrations_dir" => "[project]/migrations",
    });
}
