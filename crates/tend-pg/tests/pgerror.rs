//! The typed view of driver errors against a real server: the server's position becomes the
//! line and column of the SQL sent, and the SQLSTATE the class a caller acts on, with no
//! message read.

use std::time::Duration;

use tend_pg::{ConnectOptions, Location, PgError, PgErrorClass};
use tend_testkit::{Holder, TestDb};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Some(Duration::from_secs(30)),
        attempts: 1,
        ..ConnectOptions::default()
    }
}

/// Runs `sql` on a fresh session of `db` and returns its error, typed.
fn error_of(db: &TestDb, sql: &str) -> PgError {
    rt().block_on(async {
        let session = tend_pg::connect(&db.info, &options()).await.unwrap();
        let err = session.batch_execute(sql).await.unwrap_err();
        PgError::of(&err)
    })
}

#[test]
fn a_syntax_error_is_located_at_its_line_and_column_counted_in_characters() {
    let db = TestDb::create();
    let sql =
        "-- é accents before the error count as one character each\nSELECT 'ü' AS a,\n       1 2;";
    let err = error_of(&db, sql);
    assert_eq!(err.class, PgErrorClass::Syntax, "{err}");
    assert_eq!(err.code_str(), Some("42601"));
    assert_eq!(
        err.location(sql),
        Some(Location {
            line: 3,
            column: 10
        }),
        "{err}"
    );
    // The rendering keeps the server's words and its SQLSTATE.
    assert!(err.to_string().ends_with("(SQLSTATE 42601)"), "{err}");
}

#[test]
fn a_statement_sent_after_others_is_located_within_its_own_text() {
    let db = TestDb::create();
    let prefix = "SELECT 1;\nSELECT 2;\n";
    let file = "SELECT 3;\nSELEC 4;";
    let err = error_of(&db, &format!("{prefix}{file}\n;\nSELECT 5"));
    assert_eq!(
        err.location_within(file, prefix.chars().count()),
        Some(Location { line: 2, column: 1 }),
        "{err}"
    );
    assert_eq!(
        err.location_within("SELECT 3;", prefix.chars().count()),
        None
    );
}

#[test]
fn a_missing_table_is_an_undefined_object_that_names_itself() {
    let db = TestDb::create();
    let statement = "SELECT *\n  FROM public.nowhere_at_all";
    let err = error_of(&db, &format!("DO $$ BEGIN PERFORM 1; END $$; {statement}"));
    assert_eq!(err.class, PgErrorClass::UndefinedObject, "{err}");
    assert_eq!(err.quoted_name(), Some("public.nowhere_at_all"));
    assert_eq!(err.lines_before_quoted_name(statement), 1);
}

#[test]
fn a_privilege_the_role_lacks_is_a_privilege_error() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE secret (id int);
         DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tend_pgerror_nobody') THEN
             CREATE ROLE tend_pgerror_nobody NOLOGIN;
           END IF;
         END $$;",
    );
    let err = error_of(&db, "SET ROLE tend_pgerror_nobody; SELECT * FROM secret");
    assert_eq!(err.class, PgErrorClass::Privilege, "{err}");
}

#[test]
fn a_lock_timeout_behind_another_session_is_a_lock_error() {
    let db = TestDb::create();
    db.execute("CREATE TABLE busy (id int)");
    let holder = Holder::open(&db, "holder");
    holder.execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE");
    let err = error_of(&db, "SET lock_timeout = '50ms'; SELECT * FROM busy");
    assert_eq!(err.class, PgErrorClass::Lock, "{err}");
    assert_eq!(err.code_str(), Some("55P03"));
}

#[test]
fn a_cancelled_statement_is_query_canceled_and_a_broken_value_a_data_exception() {
    let db = TestDb::create();
    let err = error_of(&db, "SET statement_timeout = '10ms'; SELECT pg_sleep(5)");
    assert_eq!(err.class, PgErrorClass::QueryCanceled, "{err}");
    let err = error_of(&db, "SELECT 1 / 0");
    assert_eq!(err.class, PgErrorClass::DataException, "{err}");
    let err = error_of(
        &db,
        "CREATE TABLE once (id int PRIMARY KEY); INSERT INTO once VALUES (1), (1)",
    );
    assert_eq!(err.class, PgErrorClass::Integrity, "{err}");
}
