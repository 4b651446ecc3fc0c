//! The identity of servers and databases, proven against a real server reached by several
//! spellings, as roles with and without privileges.

use std::time::Duration;

use tend_pg::{ConnInfo, ConnectOptions, DatabaseIdentity, connect, same_database};
use tend_testkit::{TestDb, TestServer};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn quick() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        attempts: 1,
        ..ConnectOptions::default()
    }
}

/// The server's socket directory, read from the server.
async fn socket_dir(info: &ConnInfo) -> String {
    let session = connect(info, &quick()).await.unwrap();
    let dirs: String = session
        .query_one("SELECT current_setting('unix_socket_directories')", &[])
        .await
        .unwrap()
        .get(0);
    dirs.split(',').next().unwrap().trim().to_string()
}

#[test]
fn one_database_is_the_same_whatever_the_spelling_of_its_host() {
    let db = TestDb::create();
    rt().block_on(async {
        let socket = socket_dir(&db.info).await;
        let mut localhost = db.info.clone();
        localhost.set("host", "localhost");
        let mut via_socket = db.info.clone();
        via_socket.set("host", socket);
        let a = connect(&db.info, &quick()).await.unwrap();
        for other in [&localhost, &via_socket, &db.info] {
            let b = connect(other, &quick()).await.unwrap();
            assert!(same_database(&a, &b).await.unwrap(), "{}", other.redacted());
            assert!(same_database(&b, &a).await.unwrap());
        }
        let postgres = connect(&db.info.with_dbname("postgres"), &quick())
            .await
            .unwrap();
        assert!(!same_database(&a, &postgres).await.unwrap());
        let ours = DatabaseIdentity::read(&a).await.unwrap();
        let theirs = DatabaseIdentity::read(&postgres).await.unwrap();
        assert_eq!(ours.name, db.name);
        assert_ne!(ours.oid, theirs.oid);
        assert!(ours.server.system_identifier.is_some());
        assert_eq!(ours.server, theirs.server);
    });
}

#[test]
fn a_role_without_privileges_proves_sameness() {
    let db = TestDb::create();
    let Some(info) = TestServer::get().password_user("tend_identity_plain", "id-secret", &db.name)
    else {
        return;
    };
    rt().block_on(async {
        let plain = connect(&info, &quick()).await.unwrap();
        let identity = DatabaseIdentity::read(&plain).await.unwrap();
        assert_eq!(identity.name, db.name);
        let admin = connect(&db.info, &quick()).await.unwrap();
        // PostgreSQL 15 lets every role read the system identifier; the proof below needs
        // none of it.
        let by_admin = DatabaseIdentity::read(&admin).await.unwrap();
        if identity.server.system_identifier.is_some() {
            assert_eq!(identity, by_admin);
        }
        assert!(same_database(&plain, &admin).await.unwrap());
        assert!(same_database(&admin, &plain).await.unwrap());
        let elsewhere = connect(&info.with_dbname("postgres"), &quick())
            .await
            .unwrap();
        assert!(!same_database(&plain, &elsewhere).await.unwrap());
    });
}
