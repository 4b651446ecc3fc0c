//! No command prints a password: not on success, not on error, not in JSON.

use tend_testkit::{TestDb, TestProject, TestServer};

use crate::run;

const PASSWORD: &str = "Pa55-w0rd_never_SHOWN";

fn assert_hidden(what: &str, code: i32, out: &str, err: &str) {
    assert!(
        !out.contains(PASSWORD) && !err.contains(PASSWORD),
        "{what} (exit {code}) printed the password:\n{out}\n{err}"
    );
    let encoded = PASSWORD.replace('-', "%2D");
    assert!(!out.contains(&encoded) && !err.contains(&encoded), "{what}");
}

#[test]
fn no_command_prints_a_password() {
    let server = TestServer::get();
    let db = TestDb::create();
    let mut good = db.info.clone();
    good.set("password", PASSWORD);
    let good = server
        .password_user("tend_pw_redact", PASSWORD, &db.name)
        .unwrap_or(good)
        .to_secret_string();
    let unreachable = format!("postgresql://app:{PASSWORD}@127.0.0.1:1/app");
    let broken_port = format!("postgresql://app:{PASSWORD}@127.0.0.1:notaport/app");
    let wrong_scheme = format!("mysql://app:{PASSWORD}@127.0.0.1/app");
    let kv = format!("host=127.0.0.1 port=1 user=app password={PASSWORD} dbname=app");
    let project = TestProject::new();
    project.write(
        "migrations/20260101_000000_a.sql",
        "CREATE TABLE a (id int);",
    );
    let commands: &[&[&str]] = &[
        &["config", "show"],
        &["config", "show", "--json"],
        &["doctor"],
        &["doctor", "--json"],
        &["doctor", "-v"],
        &["dev", "status"],
        &["dev", "status", "--json"],
        &["dev", "url"],
        &["init", "--force"],
        &["config", "show", "-q"],
        &["schema", "verify"],
        &["schema", "verify", "--json"],
        &[
            "schema",
            "diff",
            "--from",
            "database",
            "--to",
            "migrations",
            "--json",
        ],
    ];
    for url in [&good, &unreachable, &broken_port, &wrong_scheme, &kv] {
        for args in commands {
            // Through the environment, through .env-free flags, and through tend.toml.
            let (code, out, err) = run(project
                .tend()
                .env("DATABASE_URL", url)
                .env("BACKUP_ENCRYPTION_KEY", PASSWORD)
                .args(*args));
            assert_hidden(&format!("DATABASE_URL {args:?}"), code, &out, &err);
            let (code, out, err) = run(project
                .tend()
                .args(["--database-url", url.as_str()])
                .args(*args));
            assert_hidden(&format!("--database-url {args:?}"), code, &out, &err);
            let (code, out, err) = run(project
                .tend()
                .env("SHADOW_DATABASE_URL", url)
                .env("DIRECT_URL", url)
                .args(*args));
            assert_hidden(&format!("DIRECT_URL {args:?}"), code, &out, &err);
        }
        project.write("tend.toml", &format!("[database]\nurl = {:?}\n", url));
        for args in commands {
            let (code, out, err) = run(project.tend().args(*args));
            assert_hidden(&format!("tend.toml {args:?}"), code, &out, &err);
        }
        std::fs::remove_file(project.path().join("tend.toml")).unwrap();
        // And through .env, as Prisma projects keep it.
        project.write(".env", &format!("DATABASE_URL=\"{url}\"\n"));
        for args in commands {
            let (code, out, err) = run(project.tend().args(*args));
            assert_hidden(&format!(".env {args:?}"), code, &out, &err);
        }
        std::fs::remove_file(project.path().join(".env")).unwrap();
        let _ = std::fs::remove_file(project.path().join("tend.toml"));
    }
    // The demo, which reports the configured database it leaves alone.
    let (code, out, err) =
        run(project
            .tend()
            .env("DATABASE_URL", &good)
            .args(["demo", "--no-data", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert_hidden("demo", code, &out, &err);
}
