//! Connections against real servers: the test kit's throwaway cluster, and a second one that
//! speaks TLS with its own CA.

use std::time::Duration;

use tend_pg::{
    AdvisoryLock, ConnInfo, ConnectError, ConnectOptions, LockError, ServerFacts, connect,
};
use tend_testkit::{TestDb, TestServer, TlsServer};

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

#[test]
fn connects_and_reads_server_facts() {
    let db = TestDb::create();
    rt().block_on(async {
        let session = connect(&db.info, &quick()).await.unwrap();
        let facts = ServerFacts::read(&session).await.unwrap();
        assert!(facts.major() >= 13, "{facts:?}");
        assert_eq!(facts.database, db.name);
        assert!(facts.is_superuser && facts.has_pg_monitor && facts.can_create_db);
        assert!(!facts.in_recovery);
        let app: String = session
            .query_one("SELECT current_setting('application_name')", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(app, "tend");
    });
}

#[test]
fn statement_timeout_comes_from_options() {
    let db = TestDb::create();
    rt().block_on(async {
        let options = ConnectOptions {
            statement_timeout: Some(Duration::from_millis(150)),
            ..quick()
        };
        let session = connect(&db.info, &options).await.unwrap();
        let err = session
            .batch_execute("SELECT pg_sleep(2)")
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
    });
}

#[test]
fn unreachable_port_is_retried_then_explained() {
    let info = ConnInfo::parse("postgresql://app:hunter2222@127.0.0.1:1/app").unwrap();
    let options = ConnectOptions {
        attempts: 3,
        backoff: Duration::from_millis(20),
        ..quick()
    };
    let err = rt().block_on(connect(&info, &options)).unwrap_err();
    assert!(
        matches!(err, ConnectError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("refused"),
        "{text}"
    );
    assert!(!text.contains("hunter2222"));
}

#[test]
fn wrong_password_is_not_retried_and_names_the_user() {
    let server = TestServer::get();
    let db = TestDb::create();
    let Some(mut info) = server.password_user("tend_pw_alice", "right-password", &db.name) else {
        return;
    };
    info.set("password", "wrong-password");
    let options = ConnectOptions {
        attempts: 3,
        backoff: Duration::from_secs(5),
        ..quick()
    };
    let err = rt().block_on(connect(&info, &options)).unwrap_err();
    assert!(matches!(err, ConnectError::WrongPassword { .. }), "{err:?}");
    // Not retried: the server logged exactly one failed authentication.
    let failures = server
        .log()
        .matches("password authentication failed for user \"tend_pw_alice\"")
        .count();
    assert_eq!(failures, 1, "{}", server.log());
    assert!(err.to_string().contains("tend_pw_alice"));
    assert!(!err.to_string().contains("wrong-password"));
    info.set("password", "right-password");
    rt().block_on(connect(&info, &options)).unwrap();
}

#[test]
fn missing_database_is_explained() {
    let server = TestServer::get();
    let info = server.admin.with_dbname("no_such_database_here");
    let err = rt().block_on(connect(&info, &quick())).unwrap_err();
    assert!(
        matches!(err, ConnectError::NoSuchDatabase { .. }),
        "{err:?}"
    );
}

#[test]
fn sslmode_require_without_server_tls_is_explained() {
    let server = TestServer::get();
    let mut info = server.admin.clone();
    info.set("sslmode", "require");
    let err = rt().block_on(connect(&info, &quick())).unwrap_err();
    assert!(matches!(err, ConnectError::TlsNotOffered { .. }), "{err:?}");
    // prefer falls back to plain text.
    info.set("sslmode", "prefer");
    rt().block_on(connect(&info, &quick())).unwrap();
}

#[test]
fn advisory_lock_names_its_holder() {
    let db = TestDb::create();
    rt().block_on(async {
        let first = AdvisoryLock::acquire(&db.info, &quick(), 4242, Duration::from_secs(1))
            .await
            .unwrap();
        let holder_pid: i32 = first
            .session()
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let err = AdvisoryLock::acquire(&db.info, &quick(), 4242, Duration::from_millis(300))
            .await
            .unwrap_err();
        let LockError::Held {
            holder: Some(holder),
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(holder.pid, holder_pid);
        assert_eq!(holder.application_name, "tend");
        assert!(
            err.to_string().contains(&format!("pid {holder_pid}")),
            "{err}"
        );
        first.release().await.unwrap();
        let again = AdvisoryLock::acquire(&db.info, &quick(), 4242, Duration::from_secs(1))
            .await
            .unwrap();
        drop(again);
        // A negative key (the high bit) works the same.
        let neg = AdvisoryLock::acquire(&db.info, &quick(), -7, Duration::from_secs(1))
            .await
            .unwrap();
        let err = AdvisoryLock::acquire(&db.info, &quick(), -7, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                LockError::Held {
                    holder: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
        drop(neg);
    });
}

#[test]
fn tls_modes_behave_like_libpq() {
    let Some(tls) = TlsServer::start() else {
        return;
    };
    let ca = tls.ca_cert.display().to_string();
    let other = tls.other_ca_cert.display().to_string();
    let runtime = rt();
    let try_url = |url: String| {
        let info = ConnInfo::parse(&url).unwrap();
        runtime.block_on(async {
            let session = connect(&info, &quick()).await?;
            let ssl: bool = session
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            Ok::<bool, ConnectError>(ssl)
        })
    };
    // Encrypted without checking the certificate.
    assert!(try_url(tls.url("127.0.0.1", "sslmode=require")).unwrap());
    assert!(try_url(tls.url("127.0.0.1", "sslmode=prefer")).unwrap());
    assert!(!try_url(tls.url("127.0.0.1", "sslmode=disable")).unwrap());
    // Chain and name both right.
    assert!(
        try_url(tls.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .unwrap()
    );
    // The certificate names localhost, not 127.0.0.1: verify-ca accepts, verify-full refuses.
    assert!(try_url(tls.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}"))).unwrap());
    let err = try_url(tls.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .unwrap_err();
    assert!(matches!(err, ConnectError::TlsFailed { .. }), "{err:?}");
    // A certificate from another CA is refused.
    let err = try_url(tls.url(
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    ))
    .unwrap_err();
    assert!(matches!(err, ConnectError::TlsFailed { .. }), "{err:?}");
    // verify-full with no root certificate says what to set.
    let err = try_url(tls.url("localhost", "sslmode=verify-full")).unwrap_err();
    assert!(err.to_string().contains("sslrootcert"), "{err}");
}

/// `sslcert`/`sslkey` are PEM files (rustls-pki-types reads them): a certificate and its key
/// load and connect; a key file without a key, or a certificate file without a certificate,
/// is a setup error that names the file.
#[test]
fn client_certificate_pem_files_load_or_name_what_they_lack() {
    let Some(tls) = TlsServer::start() else {
        return;
    };
    let dir = tls.ca_cert.parent().unwrap();
    let (cert, key) = (tls.ca_cert.display().to_string(), dir.join("ca.key"));
    let key = key.display().to_string();
    let runtime = rt();
    let try_url = |params: String| {
        let info = ConnInfo::parse(&tls.url("127.0.0.1", &params)).unwrap();
        runtime.block_on(async { connect(&info, &quick()).await.map(drop) })
    };
    try_url(format!("sslmode=require&sslcert={cert}&sslkey={key}")).unwrap();
    let err = try_url(format!("sslmode=require&sslcert={cert}&sslkey={cert}")).unwrap_err();
    assert!(matches!(err, ConnectError::TlsSetup { .. }), "{err:?}");
    assert!(
        err.to_string().contains("holds no private key") && err.to_string().contains(&cert),
        "{err}"
    );
    let err = try_url(format!("sslmode=require&sslcert={key}&sslkey={key}")).unwrap_err();
    assert!(matches!(err, ConnectError::TlsSetup { .. }), "{err:?}");
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
}
