//! `tend schema dump|diff|verify` and `tend migrate dev`, run as a user runs them against
//! real databases. Shadow databases go to the test server through SHADOW_DATABASE_URL
//! (its superuser may create databases), except where the fallbacks are the point.

use std::path::Path;
use std::process::Command;

use tend_testkit::{TestDb, TestProject, TestServer};

use crate::migrate::schema_of;
use crate::run;

const HISTORY: [(&str, &str); 3] = [
    (
        "20260101_000000_init.sql",
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());\n\
         CREATE UNIQUE INDEX users_email_key ON users (email);",
    ),
    (
        "20260102_000000_posts.sql",
        "CREATE TABLE posts (id bigserial PRIMARY KEY, author_id bigint NOT NULL REFERENCES users (id), title text NOT NULL,\n\
           CONSTRAINT posts_title_check CHECK (length(title) > 0));\n\
         CREATE INDEX posts_author_idx ON posts (author_id);",
    ),
    (
        "20260103_000000_rls.sql",
        "ALTER TABLE posts ENABLE ROW LEVEL SECURITY;\n\
         CREATE POLICY posts_owner ON posts USING (author_id = current_setting('app.user_id')::bigint);",
    ),
];

fn project_with_history() -> TestProject {
    let project = TestProject::new();
    project.write("tend.toml", "[migrate]\nformat = \"tend\"\n");
    for (name, sql) in HISTORY {
        project.write(&format!("migrations/{name}"), sql);
    }
    project
}

fn shadow_url() -> String {
    TestServer::get().admin.to_secret_string()
}

fn tend(project: &TestProject, db: &TestDb, args: &[&str]) -> (i32, String, String) {
    run(project
        .tend()
        .env("DATABASE_URL", db.url())
        .env("SHADOW_DATABASE_URL", shadow_url())
        .args(args))
}

fn psql(db: &TestDb, sql: &str) {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(db.url())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn psql_file(db: &TestDb, path: &Path) {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(path)
        .arg(db.url())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn verify_passes_then_names_each_out_of_band_change() {
    let project = project_with_history();
    let db = TestDb::create();
    let (code, _, err) = tend(&project, &db, &["migrate", "deploy"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tend(&project, &db, &["schema", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("No drift: the database matches its 3 applied migrations."),
        "{out}"
    );

    psql(
        &db,
        "ALTER TABLE users ADD COLUMN nickname text;
         DROP INDEX posts_author_idx;
         ALTER TABLE users ALTER COLUMN created_at SET DEFAULT clock_timestamp();
         ALTER TABLE posts DROP CONSTRAINT posts_title_check, ADD CONSTRAINT posts_title_check CHECK (length(title) > 3);
         ALTER TABLE posts DISABLE ROW LEVEL SECURITY;",
    );
    let (code, out, err) = tend(&project, &db, &["schema", "verify"]);
    assert_eq!(code, 1, "{out}{err}");
    for expected in [
        "column public.users.nickname",
        "index public.posts_author_idx",
        "column public.users.created_at",
        "constraint posts_title_check on public.posts",
        "row level security on public.posts",
        // Each with its value in the database, then in the migrations.
        "default clock_timestamp() -> now()",
        "definition CHECK ((length(title) > 3)) -> CHECK ((length(title) > 0))",
        "enabled no -> yes",
    ] {
        assert!(out.contains(expected), "{expected} not named in:\n{out}");
    }

    // The JSON names the same objects, and its DDL brings the database back.
    let (code, out, _) = tend(&project, &db, &["schema", "verify", "--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["drift"], true);
    assert_eq!(report["objects"].as_array().unwrap().len(), 5, "{out}");
    let created_at = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == "column public.users.created_at")
        .unwrap();
    assert_eq!(
        created_at["differences"],
        serde_json::json!([{
            "aspect": "default",
            "database": "clock_timestamp()",
            "migrations": "now()",
        }]),
        "{out}"
    );
    let script = project.path().join("reconcile.sql");
    std::fs::write(&script, report["sql"].as_str().unwrap()).unwrap();
    psql_file(&db, &script);
    let (code, out, err) = tend(&project, &db, &["schema", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn verify_compares_only_applied_migrations_and_says_which_are_pending() {
    let project = project_with_history();
    let db = TestDb::create();
    let (code, _, err) = tend(
        &project,
        &db,
        &["migrate", "deploy", "--to", "20260102_000000_posts"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tend(&project, &db, &["schema", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("20260103_000000_rls"), "{err}");
}

#[test]
fn diff_is_runnable_with_psql_and_exit_code_tells_equal_from_different() {
    let project = TestProject::new();
    let from = TestDb::create();
    let to = TestDb::create();
    psql(
        &from,
        "CREATE TABLE t (id int PRIMARY KEY, a text); CREATE TYPE mood AS ENUM ('sad', 'ok');",
    );
    psql(
        &to,
        "CREATE TYPE mood AS ENUM ('sad', 'meh', 'ok'); CREATE TABLE t (id int PRIMARY KEY, a varchar(20) NOT NULL, m mood);
         CREATE INDEX t_a ON t (a); CREATE VIEW v AS SELECT id, a FROM t;",
    );
    let diff = |args: &[&str]| {
        run(project
            .tend()
            .env("SHADOW_DATABASE_URL", shadow_url())
            .args(args))
    };
    let (code, out, err) = diff(&[
        "schema",
        "diff",
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "--exit-code",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("CREATE INDEX CONCURRENTLY"), "{out}");
    assert!(out.contains("ADD VALUE 'meh' AFTER 'sad'"), "{out}");
    // Before the DDL, each object once with its old and new values, as SQL comments.
    for expected in [
        "--   column public.t.a",
        "--       type text -> character varying(20)",
        "--       not null no -> yes",
        "--       values 'sad', 'ok' -> 'sad', 'meh', 'ok'",
    ] {
        assert!(out.contains(expected), "{expected} not in:\n{out}");
    }
    assert!(!out.contains("--   type public.mood"), "{out}");
    assert!(!out.contains("secret"), "{out}");
    let script = project.path().join("plan.sql");
    std::fs::write(&script, &out).unwrap();
    psql_file(&from, &script);
    let (code, out, err) = diff(&[
        "schema",
        "diff",
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "--exit-code",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_of(&from), schema_of(&to));

    let (code, out, _) = diff(&[
        "schema",
        "diff",
        "--from",
        &to.url(),
        "--to",
        "empty",
        "--json",
    ]);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["equal"], false);
    // Dropping everything lists the tables, the view and the enum, not their parts.
    let objects: Vec<&str> = plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"].as_str().unwrap())
        .collect();
    assert_eq!(
        objects,
        ["enum public.mood", "table public.t", "view public.v"],
        "{out}"
    );
    assert!(plan["steps"].as_array().unwrap().iter().any(|s| {
        s["hazards"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("data_loss"))
    }));
}

#[test]
fn dump_recreates_the_schema_and_bad_sources_are_config_errors() {
    let project = project_with_history();
    let db = TestDb::create();
    let copy = TestDb::create();
    assert_eq!(tend(&project, &db, &["migrate", "deploy"]).0, 0);
    let (code, out, err) = tend(&project, &db, &["schema", "dump"]);
    assert_eq!(code, 0, "{err}");
    let script = project.path().join("dump.sql");
    std::fs::write(&script, &out).unwrap();
    psql_file(&copy, &script);
    let (code, out, err) = tend(
        &project,
        &copy,
        &[
            "schema",
            "diff",
            "--from",
            "database",
            "--to",
            "migrations",
            "--exit-code",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, _) = tend(
        &project,
        &db,
        &["schema", "dump", "--from", "migrations", "--json"],
    );
    assert_eq!(code, 0);
    let model: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(model["tables"].as_array().unwrap().len(), 2);

    let (code, _, err) = tend(
        &project,
        &db,
        &["schema", "diff", "--from", "nonsense", "--to", "empty"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is not a schema source"), "{err}");
    let (code, _, err) = tend(
        &project,
        &db,
        &[
            "schema",
            "diff",
            "--from",
            "sql:missing.sql",
            "--to",
            "empty",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("missing.sql does not exist"), "{err}");
}

#[test]
fn a_server_that_refuses_create_database_gets_a_clear_error() {
    let project = project_with_history();
    let db = TestDb::create();
    let Some(user) = TestServer::get().password_user("no_createdb", "s3cret-pw", &db.name) else {
        return;
    };
    // No SHADOW_DATABASE_URL, and no local cluster (no initdb where tend looks): the target
    // server is the last resort, and this role may not create databases there.
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", user.to_secret_string())
        .env("TEND_PG_BINDIR", project.path().join("no-bin"))
        .args(["schema", "verify"]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("SHADOW_DATABASE_URL"), "{err}");
    assert!(!err.contains("s3cret-pw") && !out.contains("s3cret-pw"));
}

fn copy_example(project: &TestProject) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/saas");
    fn walk(dir: &Path, root: &Path, project: &TestProject) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, project);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                project.write(&relative, &std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    walk(&root, &root, project);
}

#[test]
fn migrate_dev_on_the_example_writes_a_migration_deploy_reproduces() {
    let project = TestProject::new();
    copy_example(&project);
    let dev = TestDb::create();
    let fresh = TestDb::create();
    let (code, out, err) = tend(&project, &dev, &["migrate", "dev", "--name", "invoices"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Created "), "{out}");
    let written: Vec<_> = std::fs::read_dir(project.path().join("prisma/migrations"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_invoices"))
        .collect();
    assert_eq!(written.len(), 1);
    let sql = std::fs::read_to_string(written[0].path().join("migration.sql")).unwrap();
    assert!(sql.contains("CREATE TABLE public.invoices"), "{sql}");
    // Prisma's layout: no CONCURRENTLY (prisma migrate deploy runs the file as one script).
    assert!(!sql.contains("CONCURRENTLY"), "{sql}");

    // The same migrations on a fresh database give the same schema, the desired one.
    let (code, _, err) = tend(&project, &fresh, &["migrate", "deploy"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(schema_of(&dev), schema_of(&fresh));
    let (code, out, err) = tend(
        &project,
        &fresh,
        &[
            "schema",
            "diff",
            "--from",
            "database",
            "--to",
            "schema",
            "--exit-code",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = tend(&project, &fresh, &["schema", "verify"]);
    assert_eq!(code, 0, "{out}{err}");

    // Nothing left to write.
    let (code, out, err) = tend(&project, &dev, &["migrate", "dev", "--name", "again"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes"), "{out}");
    let (code, out, err) = tend(
        &project,
        &dev,
        &["migrate", "dev", "--name", "again", "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!("migrate_dev_nothing_json", report);
}

#[test]
fn migrate_dev_create_only_writes_without_applying_and_uses_the_local_cluster() {
    let project = TestProject::new();
    project.write("tend.toml", "[migrate]\nformat = \"tend\"\n");
    project.write(
        "schema/tables.sql",
        "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);",
    );
    // No database and no shadow configured: the local cluster holds the shadows.
    let (code, out, err) = run(project.tend().args([
        "migrate",
        "dev",
        "--name",
        "accounts",
        "--create-only",
        "--json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!("migrate_dev_create_only_json", report, {
        ".path" => "[path]",
    });
    let files: Vec<_> = std::fs::read_dir(project.path().join("migrations"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let (code, out, err) = run(project.tend().args(["migrate", "status"]));
    assert_eq!(code, 1, "pending after --create-only: {out}{err}");
    let _ = run(project.tend().args(["dev", "destroy", "--yes"]));
}

#[test]
fn uncommon_objects_show_no_false_drift_and_rebuild_from_empty() {
    let project = TestProject::new();
    let source = TestDb::create();
    source.execute(&crate::backup::uncommon());
    source.execute("CREATE EXTENSION IF NOT EXISTS btree_gist");
    source.execute(include_str!("fixtures/constraints.sql"));
    let diff = |from: &str, to: &str, extra: &[&str]| {
        let mut args = vec!["schema", "diff", "--from", from, "--to", to];
        args.extend_from_slice(extra);
        run(project
            .tend()
            .env("SHADOW_DATABASE_URL", shadow_url())
            .args(&args))
    };
    let url = source.url();
    let (code, out, err) = diff(&url, &url, &["--exit-code"]);
    assert_eq!(code, 0, "a database differs from itself:\n{out}{err}");
    // From nothing to this: the script, run by psql on an empty database, rebuilds it.
    let target = TestDb::create();
    let (code, out, err) = diff("empty", &url, &[]);
    assert_eq!(code, 0, "{err}");
    let script = project.path().join("build.sql");
    std::fs::write(&script, &out).unwrap();
    psql_file(&target, &script);
    let (code, out, err) = diff(&target.url(), &url, &["--exit-code"]);
    assert_eq!(code, 0, "still different after the script:\n{out}{err}");
    assert_eq!(schema_of(&target), schema_of(&source));
}

/// `tend schema verify --json` is the serialized `VerifyReport`; the snapshot pins its shape
/// (the database URL, which names a per-test database and port, is redacted).
#[test]
fn verify_json_is_the_verify_report() {
    let project = project_with_history();
    let db = TestDb::create();
    assert_eq!(tend(&project, &db, &["migrate", "deploy"]).0, 0);
    psql(
        &db,
        "ALTER TABLE users ADD COLUMN nickname text;
         ALTER TABLE users ALTER COLUMN created_at SET DEFAULT clock_timestamp();",
    );
    let (code, out, err) = tend(&project, &db, &["schema", "verify", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, { ".database" => "[database]" });
}

/// `tend schema dump --json` prints the model itself (the `DumpReport` serializes as its
/// model), foreign keys with their typed references.
#[test]
fn dump_json_is_the_model_with_typed_foreign_keys() {
    let project = TestProject::new();
    let db = TestDb::create();
    psql(
        &db,
        "CREATE TABLE authors (id int PRIMARY KEY, region text, code int, UNIQUE (region, code));
         CREATE TABLE books (id int PRIMARY KEY, author_id int, region text, code int,
           CONSTRAINT books_author FOREIGN KEY (author_id) REFERENCES authors (id)
             ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
           CONSTRAINT books_region FOREIGN KEY (region, code) REFERENCES authors (region, code)
             MATCH FULL ON UPDATE SET NULL);",
    );
    let (code, out, err) = tend(&project, &db, &["schema", "dump", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    // PostgreSQL 18 names NOT NULL constraints, and the model says so; the rest is the same
    // on every major.
    doc.as_object_mut().unwrap().remove("named_not_nulls");
    insta::assert_json_snapshot!(doc);
}

/// `tend schema diff --json` is the serialized `DiffReport`: the sources, whether they are
/// equal, what differs, the steps (each object named as text) and the warnings.
#[test]
fn diff_json_names_each_step_object_as_text() {
    let project = TestProject::new();
    let from = TestDb::create();
    let to = TestDb::create();
    psql(&from, "CREATE TABLE t (id int PRIMARY KEY, a text);");
    psql(
        &to,
        "CREATE TABLE t (id int PRIMARY KEY, a text NOT NULL, b int);
         CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t (id) ON DELETE SET NULL);
         CREATE INDEX t_a ON t (a); CREATE VIEW v AS SELECT count(*) AS n FROM t;",
    );
    let (code, out, err) = run(project
        .tend()
        .env("SHADOW_DATABASE_URL", shadow_url())
        .args([
            "schema",
            "diff",
            "--json",
            "--from",
            &from.url(),
            "--to",
            &to.url(),
        ]));
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(doc, {
        ".from" => "[from]",
        ".to" => "[to]",
    });
}
