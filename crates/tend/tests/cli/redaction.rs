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

/// A password whose pieces would each be recognisable if any were printed.
const SECRET: &str = "Kq7Vr2Mz@Hx4W:Lp9Q/Tb6J?Wn3E#Yd8R";
/// The same, with only letters and digits.
const PLAIN: &str = "S3cr3tW0rdZq";

/// Every piece of a password a reader could recognise: the whole, its percent-encoded form
/// and each run of four or more letters and digits.
fn fragments(password: &str) -> Vec<String> {
    let mut out = vec![password.to_string(), percent_encode(password)];
    out.extend(
        password
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|f| f.len() >= 4)
            .map(str::to_string),
    );
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Malformed and odd connection strings carrying `password`, each in a shape that people
/// write by mistake: missing host, bad port, unbalanced brackets, bad percent-escapes,
/// quotes, unknown parameters, other schemes.
fn malformed(password: &str) -> Vec<String> {
    let p = password;
    let e = percent_encode(password);
    // Raw where a URL can still tell the password apart (a later `@`); encoded elsewhere.
    let bare = if p.contains(['@', '/', '?', '#', ':']) {
        e.as_str()
    } else {
        p
    };
    vec![
        format!("postgres://app:{bare}"),
        format!("postgresql://app:{bare}/app"),
        format!("postgres://app:{e}@"),
        format!("postgres://app:{p}@127.0.0.1:notaport/app"),
        format!("postgres://app:{p}@127.0.0.1:99999/app"),
        format!("postgres://app:{p}@127.0.0.1:-1/app"),
        format!("postgres://app:{p}@[::1/app"),
        format!("postgres://app:{p}@[::1]junk/app"),
        format!("postgres://app:{e}@[::1]:1/app"),
        format!("postgres://app:{e}%ZZ@127.0.0.1:1/app"),
        format!("postgres://app:{e}%C3%28@127.0.0.1:1/app"),
        format!("postgres://app:{e}@127.0.0.1:1/app?sslmode=sometimes"),
        format!("postgres://app:{e}@127.0.0.1:1/app?not_a_libpq_option=1"),
        format!("postgres://app:{e}@127.0.0.1:1/app?sslmode"),
        format!("postgres://app@127.0.0.1:1/app?password={e}&connect_timeout=soon"),
        format!("postgres://app@127.0.0.1:1/app?sslpassword={e}&bogus"),
        format!("mysql://app:{e}@127.0.0.1/app"),
        format!("postgres://app:{e}@127.0.0.1:1/app?target_session_attrs=sometimes"),
        format!("host=127.0.0.1 port=x user=app password={bare}"),
        format!("host=127.0.0.1 port=1 user=app password='{bare}"),
        format!("host=127.0.0.1 port=1 password = '{bare}' bogus=1"),
        format!("host=127.0.0.1 port=1 password={bare} sslmode=maybe"),
        format!("host=127.0.0.1 port=1 hostaddr=not-an-ip password={bare}"),
        format!("host=127.0.0.1 port=1 password={bare} dbname"),
        // Well-formed, unreachable: the password must not show either.
        format!("postgres://app:{e}@127.0.0.1:1/app"),
        format!("host=127.0.0.1 port=1 user=app password='{bare}' connect_timeout=2"),
    ]
}

#[test]
fn no_part_of_a_password_in_malformed_urls_reaches_any_output() {
    let project = TestProject::new();
    project.write(
        "migrations/20260101_000000_a.sql",
        "CREATE TABLE a (id int);",
    );
    // Every command that takes a URL, in both formats, through the environment.
    let env_commands: &[&[&str]] = &[
        &["config", "show"],
        &["config", "show", "--json"],
        &["doctor", "--json"],
        &["health"],
        &["health", "--json"],
        &["migrate", "status", "--json"],
        &["backup", "list", "--json"],
        &["-v", "queries"],
    ];
    // Through the flag and the files, a few suffice: each is read before any command runs.
    let other_commands: &[&[&str]] = &[
        &["config", "show", "--json"],
        &["doctor"],
        &["-v", "migrate", "status"],
    ];
    let mut runs = 0;
    for (password, thorough) in [(SECRET, true), (PLAIN, false)] {
        let hidden = fragments(password);
        let check = |what: &str, code: i32, out: &str, err: &str| {
            assert_ne!(code, 101, "{what} panicked: {err}");
            for fragment in &hidden {
                assert!(
                    !out.contains(fragment.as_str()) && !err.contains(fragment.as_str()),
                    "{what} (exit {code}) printed `{fragment}`:\n{out}\n{err}"
                );
            }
        };
        let fast = |cmd: &mut assert_cmd::Command| {
            cmd.env("DB_CONNECT_ATTEMPTS", "1")
                .env("DB_CONNECT_TIMEOUT", "2s");
        };
        for url in malformed(password) {
            let commands = if thorough {
                env_commands
            } else {
                other_commands
            };
            for args in commands {
                let mut cmd = project.tend();
                fast(&mut cmd);
                let (code, out, err) = run(cmd.env("DATABASE_URL", &url).args(*args));
                check(&format!("DATABASE_URL={url} {args:?}"), code, &out, &err);
                runs += 1;
            }
            if !thorough {
                continue;
            }
            for args in other_commands {
                let mut cmd = project.tend();
                fast(&mut cmd);
                let (code, out, err) = run(cmd.args(["--database-url", url.as_str()]).args(*args));
                check(&format!("--database-url {url} {args:?}"), code, &out, &err);
                runs += 1;
            }
            project.write(
                "tend.toml",
                &format!(
                    "[database]\nurl = \"{}\"\nconnect_attempts = 1\n",
                    url.replace('\\', "\\\\").replace('"', "\\\"")
                ),
            );
            for args in other_commands {
                let (code, out, err) = run(project.tend().args(*args));
                check(&format!("tend.toml {url} {args:?}"), code, &out, &err);
                runs += 1;
            }
            std::fs::remove_file(project.path().join("tend.toml")).unwrap();
            let quoted = if url.contains('\'') {
                format!("\"{}\"", url.replace('"', "\\\""))
            } else {
                format!("'{url}'")
            };
            project.write(
                ".env",
                &format!("DATABASE_URL={quoted}\nDB_CONNECT_ATTEMPTS=1\n"),
            );
            for args in other_commands {
                let (code, out, err) = run(project.tend().args(*args));
                check(&format!(".env {url} {args:?}"), code, &out, &err);
                runs += 1;
            }
            std::fs::remove_file(project.path().join(".env")).unwrap();
            // A URL given where clap cannot place it is echoed by clap: scrubbed too.
            let (code, out, err) = run(project.tend().args(["migrate", "status", url.as_str()]));
            check(&format!("stray argument {url}"), code, &out, &err);
            let (code, out, err) = run(project.tend().args(["--json", "health", url.as_str()]));
            check(&format!("stray argument {url} --json"), code, &out, &err);
            runs += 2;
        }
    }
    assert!(runs > 500, "{runs} runs");
}
