//! What tend hands libpq programs (psql, pg_dump, pg_restore) is read by real libpq as the
//! same user, password and database, however odd their spelling: the writer's escaping and
//! libpq's decoding agree (the fuzzing finding of docs/fuzzing.md was about this string).

use std::process::Command;

use tend_pg::{ConnInfo, PgTool, ToolSearch, VersionNeed, connect, quote_ident};
use tend_testkit::TestServer;

/// Every character a URL or a `key=value` string treats specially, and a non-ASCII one.
const ODD: &str = "odd /?&=#%:,@[x]'\"\\é!$()*+;~";
const USER: &str = "tend_child_strings";

struct OddDatabase {
    admin: ConnInfo,
    name: String,
}

impl OddDatabase {
    fn create(admin: &ConnInfo) -> OddDatabase {
        let name = format!("tend {ODD} {}", std::process::id());
        let db = OddDatabase {
            admin: admin.clone(),
            name,
        };
        db.admin_sql(&format!("CREATE DATABASE {}", quote_ident(&db.name)));
        db
    }

    fn admin_sql(&self, sql: &str) {
        let (admin, sql) = (self.admin.clone(), sql.to_string());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let session = connect(&admin, &Default::default()).await.unwrap();
                    session.batch_execute(&sql).await.unwrap();
                })
        })
        .join()
        .unwrap();
    }
}

impl Drop for OddDatabase {
    fn drop(&mut self) {
        self.admin_sql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        ));
    }
}

/// `current_user|current_database()` as psql sees them through `conn` and `env`.
fn psql_sees(conn: &str, env: &[(String, String)]) -> String {
    // Clients come from PATH: a server-only directory (the npm majors) has no psql.
    let psql = ToolSearch::new(None)
        .find(PgTool::Psql, VersionNeed::Any)
        .expect("psql is installed");
    let mut command = Command::new(&psql.path);
    for var in [
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICE",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
    ] {
        command.env_remove(var);
    }
    let output = command
        .args(["-X", "-w", "-A", "-t", "-d", conn, "-c"])
        .arg("SELECT current_user || '|' || current_database()")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn libpq_programs_read_the_connection_strings_tend_writes_as_the_same_login() {
    let server = TestServer::get();
    let db = OddDatabase::create(&server.admin);
    // A password with a tab and every separator, checked by the server (SCRAM).
    let password = format!("pw\t{ODD}");
    let Some(url_form) = server.password_user(USER, &password, &db.name) else {
        return;
    };
    let port = url_form.ports()[0];
    let escape = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let key_value = ConnInfo::parse(&format!(
        "host=127.0.0.1 port={port} user={USER} dbname='{}' password='{}'",
        escape(&db.name),
        escape(&password)
    ))
    .unwrap();
    let want = format!("{USER}|{}", db.name);
    for info in [url_form, key_value] {
        let full = info.to_secret_string();
        assert_eq!(ConnInfo::parse(&full), Ok(info.clone()));
        // The full string, password included, as tests and `tend dev url` hand it on.
        assert_eq!(psql_sees(&full, &[]), want);
        // What pg_dump and pg_restore get: the password in PGPASSWORD.
        let (conn, env) = info.for_child_program();
        assert!(!conn.contains("pw"));
        assert_eq!(psql_sees(&conn, &env), want);
    }
}
