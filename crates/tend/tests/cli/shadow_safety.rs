//! Shadow databases never touch what tend did not create for itself: a shadow URL that is
//! the live database by another spelling is refused, and a replay (a `sql:` file, a
//! migration history) can change nothing outside its own database. Run as a user runs
//! them: the real binary, real servers, an application role that is not a superuser.

use std::process::Command;

use tend_testkit::{TestDb, TestProject, TestServer, query_column};

use crate::run;

fn admin(sql: &str) {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(TestServer::get().admin.to_secret_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn database_exists(name: &str) -> bool {
    !query_column(
        &TestServer::get().admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
    )
    .is_empty()
}

/// The server's socket directory.
fn socket_dir() -> String {
    let dirs = query_column(
        &TestServer::get().admin,
        "SELECT current_setting('unix_socket_directories')",
    );
    dirs[0]
        .clone()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// No `ALTER DATABASE ... SET` landed on the database.
fn no_settings_on(name: &str) -> bool {
    query_column(
        &TestServer::get().admin,
        &format!(
            "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE d.datname = '{name}'"
        ),
    )
    .is_empty()
}

const ROWS: i64 = 200_000;

#[test]
fn shadow_url_naming_the_live_database_by_another_spelling_is_refused_and_its_rows_stay() {
    let project = TestProject::new();
    project.write("tend.toml", "[migrate]\nformat = \"tend\"\n");
    project.write(
        "migrations/20260101_000000_init.sql",
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text);",
    );
    let db = TestDb::create();
    let role = "tend_cli_live_app";
    let Some(app) = TestServer::get().password_user(role, "app-s3cret", &db.name) else {
        return;
    };
    admin(&format!("ALTER DATABASE {} OWNER TO {role}", db.name));
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", app.to_secret_string())
        .args(["migrate", "deploy"]));
    assert_eq!(code, 0, "{out}{err}");
    db.execute(&format!(
        "INSERT INTO events SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g"
    ));
    let mut localhost = app.clone();
    localhost.set("host", "localhost");
    let mut via_socket = app.clone();
    via_socket.set("host", socket_dir());
    // Even a database marked as tend's shadow is never reset when it is the live one.
    for marked in [false, true] {
        if marked {
            admin(&format!(
                "COMMENT ON DATABASE {} IS 'tend shadow database, reset before each use; marked 1'",
                db.name
            ));
        }
        for shadow in [&app, &localhost, &via_socket] {
            for args in [
                &["schema", "verify"][..],
                &["schema", "diff", "--from", "database", "--to", "migrations"][..],
            ] {
                let (code, out, err) = run(project
                    .tend()
                    .env("DATABASE_URL", app.to_secret_string())
                    .env("SHADOW_DATABASE_URL", shadow.to_secret_string())
                    .args(args));
                assert_eq!(code, 3, "{args:?} {}: {out}{err}", shadow.redacted());
                assert!(err.contains("is the database being compared"), "{err}");
                assert!(!err.contains("app-s3cret") && !out.contains("app-s3cret"));
                assert_eq!(
                    db.query_column("SELECT count(*) FROM events"),
                    [Some(ROWS.to_string())]
                );
            }
        }
    }
    admin(&format!("ALTER DATABASE {} OWNER TO CURRENT_USER", db.name));
}

#[test]
fn shadow_database_holding_objects_tend_did_not_mark_is_refused() {
    let project = TestProject::new();
    project.write("tend.toml", "[migrate]\nformat = \"tend\"\n");
    project.write(
        "migrations/20260101_000000_init.sql",
        "CREATE TABLE events (id bigint PRIMARY KEY);",
    );
    let live = TestDb::create();
    let scratch = TestDb::create();
    let role = "tend_cli_scratch_app";
    let Some(shadow) = TestServer::get().password_user(role, "scratch-s3cret", &scratch.name)
    else {
        return;
    };
    admin(&format!("ALTER DATABASE {} OWNER TO {role}", scratch.name));
    scratch.execute(&format!(
        "CREATE TABLE keep (id int); INSERT INTO keep SELECT generate_series(1, 1000); ALTER TABLE keep OWNER TO {role}"
    ));
    let verify = || {
        run(project
            .tend()
            .env("DATABASE_URL", live.url())
            .env("SHADOW_DATABASE_URL", shadow.to_secret_string())
            .args(["schema", "verify"]))
    };
    let (code, out, err) = verify();
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&scratch.name) && err.contains("tend's mark"),
        "{err}"
    );
    assert_eq!(
        scratch.query_column("SELECT count(*) FROM keep"),
        [Some("1000".into())]
    );
    // Emptied, it becomes tend's: marked, then used.
    scratch.execute("DROP TABLE keep");
    let (code, out, err) = verify();
    assert_eq!(code, 0, "{out}{err}");
    let mark = scratch.query_column(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()",
    );
    assert!(
        mark[0]
            .as_deref()
            .unwrap_or("")
            .starts_with("tend shadow database"),
        "{mark:?}"
    );
    admin(&format!(
        "ALTER DATABASE {} OWNER TO CURRENT_USER",
        scratch.name
    ));
}

/// Shadows on the test server through its superuser (which may create roles).
fn diff_sql(project: &TestProject, shadow: &str, to: &str) -> (i32, String, String) {
    run(project
        .tend()
        .env("SHADOW_DATABASE_URL", shadow)
        .args(["schema", "diff", "--from", "empty", "--to", to]))
}

#[test]
fn drop_database_in_a_sql_file_fails_the_diff_naming_the_statement_and_the_database_stays() {
    let project = TestProject::new();
    let other = TestDb::create();
    project.write(
        "desired.sql",
        &format!(
            "CREATE TABLE t (id int);\n\n-- gone\nDROP DATABASE {};\n",
            other.name
        ),
    );
    let shadow = TestServer::get().admin.to_secret_string();
    let (code, out, err) = diff_sql(&project, &shadow, "sql:desired.sql");
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("equal"), "{out}");
    assert!(err.contains("desired.sql line 4"), "{err}");
    assert!(
        err.contains(&format!("DROP DATABASE {}", other.name)),
        "{err}"
    );
    assert!(err.contains("reaches outside"), "{err}");
    assert!(database_exists(&other.name));

    // The same as a migration.
    project.write(
        "migrations/20260101_000000_init.sql",
        "CREATE TABLE t (id int);\nALTER SYSTEM SET work_mem = '1GB';\n",
    );
    let (code, out, err) = diff_sql(&project, &shadow, "migrations:migrations");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("20260101_000000_init.sql line 2"), "{err}");
    assert!(err.contains("ALTER SYSTEM"), "{err}");
}

#[test]
fn replay_runs_as_a_role_without_privileges_so_hidden_changes_to_other_databases_and_roles_fail() {
    let project = TestProject::new();
    let other = TestDb::create();
    project.write(
        "desired.sql",
        &format!(
            "CREATE TABLE t (id int);\nDO $$ BEGIN EXECUTE 'ALTER DATABASE ' || '{}' || ' SET work_mem = ''1GB'''; END $$;\n",
            other.name
        ),
    );
    project.write(
        "roles.sql",
        "DO $$ BEGIN EXECUTE 'CREATE ROLE ' || 'tend_cli_sneaky SUPERUSER'; END $$;\n",
    );
    let shadow = TestServer::get().admin.to_secret_string();
    let (code, out, err) = diff_sql(&project, &shadow, "sql:desired.sql");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("desired.sql"), "{err}");
    assert!(err.contains("must be owner of database"), "{err}");
    assert!(database_exists(&other.name));
    assert!(no_settings_on(&other.name));
    let (code, out, err) = diff_sql(&project, &shadow, "sql:roles.sql");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("permission denied") || err.contains("must be superuser"),
        "{err}"
    );
    assert!(
        query_column(
            &TestServer::get().admin,
            "SELECT 1 FROM pg_roles WHERE rolname = 'tend_cli_sneaky'"
        )
        .is_empty()
    );
}

#[test]
fn prisma_history_creating_a_trusted_extension_replays_as_the_least_privileged_role() {
    let project = TestProject::new();
    project.write(
        "prisma/migrations/20260101000000_init/migration.sql",
        "-- CreateExtension\nCREATE EXTENSION IF NOT EXISTS \"citext\";\n\n\
         -- CreateTable\nCREATE TABLE \"User\" (\n    \"id\" UUID NOT NULL DEFAULT gen_random_uuid(),\n    \"email\" CITEXT NOT NULL,\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\n",
    );
    project.write(
        "prisma/migrations/20260102000000_posts/migration.sql",
        "CREATE TABLE \"Post\" (\"id\" SERIAL NOT NULL, \"authorId\" UUID NOT NULL REFERENCES \"User\"(\"id\"), CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\"));\n",
    );
    project.write(
        "prisma/migrations/migration_lock.toml",
        "provider = \"postgresql\"\n",
    );
    let shadow = TestServer::get().admin.to_secret_string();
    // Twice: the second run clones the cached replay and hands it to a new role.
    for _ in 0..2 {
        let (code, out, err) = diff_sql(&project, &shadow, "migrations:prisma/migrations");
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("gen_random_uuid()"), "{out}");
        assert!(out.contains("\"Post\""), "{out}");
    }
}

#[test]
fn live_server_as_last_resort_keeps_the_same_rules() {
    let project = TestProject::new();
    let live = TestDb::create();
    let other = TestDb::create();
    let role = "tend_cli_creator_app";
    let Some(app) = TestServer::get().password_user(role, "creator-s3cret", &live.name) else {
        return;
    };
    admin(&format!(
        "ALTER ROLE {role} CREATEDB CREATEROLE; ALTER DATABASE {} OWNER TO {role}",
        live.name
    ));
    live.execute(&format!(
        "CREATE TABLE kept (id int); INSERT INTO kept SELECT generate_series(1, 1000); ALTER TABLE kept OWNER TO {role}"
    ));
    project.write(
        "desired.sql",
        &format!(
            "CREATE TABLE t (id int);\nDO $$ BEGIN EXECUTE 'ALTER DATABASE ' || '{}' || ' SET work_mem = ''1GB'''; END $$;\n",
            other.name
        ),
    );
    project.write("fine.sql", "CREATE TABLE t (id int);\n");
    let diff = |to: &str| {
        run(project
            .tend()
            .env("DATABASE_URL", app.to_secret_string())
            .env("TEND_PG_BINDIR", project.path().join("no-bin"))
            .args(["schema", "diff", "--from", "database", "--to", to]))
    };
    let (code, out, err) = diff("sql:desired.sql");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("must be owner of database"), "{err}");
    assert!(database_exists(&other.name));
    assert!(no_settings_on(&other.name));
    let (code, out, err) = diff("sql:fine.sql");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("DROP TABLE public.kept") || out.contains("kept"),
        "{out}"
    );
    assert_eq!(
        live.query_column("SELECT count(*) FROM kept"),
        [Some("1000".into())]
    );
    // No replay role is left behind.
    assert!(
        query_column(
            &TestServer::get().admin,
            &format!(
                "SELECT rolname FROM pg_roles r WHERE rolname LIKE 'tend\\_shadow\\_role\\_%' \
                 AND pg_has_role('{role}', r.oid, 'MEMBER')"
            )
        )
        .is_empty()
    );
    admin(&format!(
        "ALTER DATABASE {} OWNER TO CURRENT_USER",
        live.name
    ));
}
