//! The pooled database handle against a real server: the pool's size bounds the sessions
//! open at once, sessions come back clean, idle ones close, and services sharing the handle
//! run concurrently inside one runtime.

use std::time::Duration;

use tend_pg::{ConnectOptions, Database, PoolOptions};
use tend_testkit::TestDb;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Some(Duration::from_secs(7)),
        attempts: 1,
        ..ConnectOptions::default()
    }
}

/// Sessions of this test's database in pg_stat_activity, seen from a session of its own.
async fn sessions_of(db: &TestDb, observer: &tend_pg::Session) -> i64 {
    observer
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name = 'tend'",
            &[&db.info.dbname().unwrap()],
        )
        .await
        .unwrap()
        .get(0)
}

#[test]
fn the_pool_never_opens_more_sessions_than_its_size() {
    let db = TestDb::create();
    let pool = PoolOptions {
        max_size: 2,
        idle_timeout: Duration::from_secs(600),
    };
    let database = Database::new(db.info.clone(), options(), pool);
    rt().block_on(async {
        let observer = tend_pg::connect(&db.info, &options()).await.unwrap();
        // Six tasks each hold a session for a moment; at most two exist at any time.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let database = database.clone();
            tasks.push(tokio::spawn(async move {
                let session = database.session().await.unwrap();
                session.batch_execute("SELECT pg_sleep(0.2)").await.unwrap();
            }));
        }
        let mut most = 0;
        while tasks.iter().any(|t| !t.is_finished()) {
            most = most.max(sessions_of(&db, &observer).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(most <= 2, "{most} sessions were open at once");
        assert_eq!(database.open_sessions(), 2);
    });
}

#[test]
fn a_session_comes_back_from_the_pool_clean() {
    let db = TestDb::create();
    let pool = PoolOptions {
        max_size: 1,
        idle_timeout: Duration::from_secs(600),
    };
    let database = Database::new(db.info.clone(), options(), pool);
    rt().block_on(async {
        let first_pid: i32 = {
            let session = database.session().await.unwrap();
            session
                .batch_execute(
                    "SET lock_timeout = '1s'; SET statement_timeout = '1s';
                     SELECT pg_advisory_lock(4242); LISTEN something",
                )
                .await
                .unwrap();
            session
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0)
        };
        let session = database.session().await.unwrap();
        let row = session
            .query_one(
                "SELECT pg_backend_pid(), current_setting('lock_timeout'),
                        current_setting('statement_timeout'),
                        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                           AND pid = pg_backend_pid()),
                        (SELECT count(*) FROM pg_listening_channels())",
                &[],
            )
            .await
            .unwrap();
        let (pid, lock_timeout, statement_timeout, locks, channels): (
            i32,
            String,
            String,
            i64,
            i64,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(pid, first_pid, "the session was reused");
        assert_eq!(lock_timeout, "0");
        assert_eq!(
            statement_timeout, "7s",
            "tend's own statement_timeout is set again"
        );
        assert_eq!((locks, channels), (0, 0));
    });
}

#[test]
fn idle_sessions_past_the_idle_timeout_are_closed() {
    let db = TestDb::create();
    let pool = PoolOptions {
        max_size: 3,
        idle_timeout: Duration::from_millis(300),
    };
    let database = Database::new(db.info.clone(), options(), pool);
    rt().block_on(async {
        let observer = tend_pg::connect(&db.info, &options()).await.unwrap();
        {
            let (_a, _b) = (
                database.session().await.unwrap(),
                database.session().await.unwrap(),
            );
        }
        assert_eq!(database.open_sessions(), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
        database.close_idle();
        assert_eq!(database.open_sessions(), 0);
        // The server sees them go.
        let mut left = sessions_of(&db, &observer).await;
        for _ in 0..50 {
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = sessions_of(&db, &observer).await;
        }
        assert_eq!(left, 0);
    });
}

#[test]
fn a_refused_password_is_the_same_typed_error_through_the_pool() {
    let db = TestDb::create();
    let mut info = db.info.clone();
    info.set("user", "nobody_here");
    info.set("host", "127.0.0.1");
    let database = Database::new(info, options(), PoolOptions::default());
    let err = rt().block_on(database.session()).unwrap_err();
    assert!(
        matches!(
            err,
            tend_pg::PoolError::Connect(
                tend_pg::ConnectError::Rejected { .. }
                    | tend_pg::ConnectError::WrongPassword { .. }
            )
        ),
        "{err:?}"
    );
}

/// Every public future of the handle is `Send`, so services built on it can be spawned and
/// called from HTTP handlers.
#[allow(dead_code)]
fn futures_are_send(database: &Database) {
    fn send<T: Send>(_: T) {}
    send(database.session());
    send(database.dedicated());
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Database>();
}
