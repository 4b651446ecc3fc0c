//! Opening connections: libpq-compatible settings, TLS through rustls honouring `sslmode`
//! and `sslrootcert`, timeouts, and retries with backoff on connection errors only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::error::SqlState;

use crate::conninfo::{ConnInfo, Host, SslMode};

/// The `application_name` tend reports unless the connection string sets one, so a DBA can
/// tell tend's sessions apart in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "tend";

/// How to connect, apart from where: timeouts and retries, from config.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Per attempt, like libpq's `connect_timeout`.
    pub connect_timeout: Duration,
    /// `statement_timeout` set on the session after connecting; `None` leaves the server's.
    pub statement_timeout: Option<Duration>,
    /// Attempts in all (at least 1). Only connection errors are retried, never a refused
    /// password or a missing database.
    pub attempts: u32,
    /// Pause before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            statement_timeout: None,
            attempts: 3,
            backoff: Duration::from_millis(250),
        }
    }
}

/// Why a connection could not be opened. Each display is one sentence that names the target
/// (never a password) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot reach PostgreSQL at {target}: {detail} ({attempts} attempt{}); check that the server is running and that host and port are right",
        if *attempts == 1 { "" } else { "s" }
    )]
    Unreachable {
        target: String,
        detail: String,
        /// How many times it was tried.
        attempts: u32,
    },
    #[error(
        "PostgreSQL at {target} refused the password for user `{user}`; check the password in the connection string (DATABASE_URL)"
    )]
    WrongPassword { target: String, user: String },
    #[error("PostgreSQL at {target} refused the connection: {message}{hint}")]
    Rejected {
        target: String,
        message: String,
        hint: String,
    },
    #[error(
        "the database `{dbname}` does not exist on {target}; create it (createdb {dbname}) or fix the database name in the connection string"
    )]
    NoSuchDatabase { target: String, dbname: String },
    #[error(
        "PostgreSQL at {target} does not offer TLS but sslmode={mode} requires it; enable ssl on the server or use sslmode=prefer"
    )]
    TlsNotOffered { target: String, mode: &'static str },
    #[error("the TLS handshake with {target} failed: {detail}")]
    TlsFailed { target: String, detail: String },
    #[error("cannot set up TLS for {target}: {reason}")]
    TlsSetup { target: String, reason: String },
    #[error(
        "PostgreSQL at {target} is not accepting connections yet: {message}; try again shortly"
    )]
    NotReady { target: String, message: String },
    #[error("the connection string is not usable: {reason}")]
    BadSettings { reason: String },
    #[error("connecting to {target} failed: {detail}")]
    Other { target: String, detail: String },
}

impl ConnectError {
    /// Worth another attempt: the server may be starting, restarting or briefly unreachable.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable { .. } | ConnectError::NotReady { .. }
        )
    }
}

/// An open session. The connection's I/O runs on a spawned task that ends when the client
/// is dropped.
pub struct Session {
    pub client: tokio_postgres::Client,
    pub info: ConnInfo,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({})", self.info.redacted())
    }
}

impl std::ops::Deref for Session {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

/// Opens a session, retrying connection errors with exponential backoff.
pub async fn connect(info: &ConnInfo, options: &ConnectOptions) -> Result<Session, ConnectError> {
    connect_with(info, options, &Tls::for_target(info)).await
}

/// The TLS client set-up of one connection string, built once and shared by every session
/// opened with it (a pool's sessions): reading root certificates and client keys and
/// building the rustls configuration is done once, not per connection. A set-up that fails
/// is kept as its error and reported by each connection that needs TLS.
#[derive(Clone)]
pub(crate) struct Tls(pub(crate) Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, String>);

impl Tls {
    pub(crate) fn for_target(info: &ConnInfo) -> Tls {
        let mode = info.ssl_mode();
        let uses_tcp = info.hosts().iter().any(|h| matches!(h, Host::Tcp(_)));
        if mode == SslMode::Disable || !uses_tcp {
            return Tls(Ok(None));
        }
        Tls(tls_connector(info, mode).map(Some))
    }
}

/// [`connect`] with a TLS set-up built beforehand.
pub(crate) async fn connect_with(
    info: &ConnInfo,
    options: &ConnectOptions,
    tls: &Tls,
) -> Result<Session, ConnectError> {
    with_retries(options, || connect_once(info, options, tls)).await
}

/// Runs `attempt` until it succeeds, fails for good, or `options.attempts` ran out:
/// connection errors (unreachable, not ready) are retried with exponential backoff, and
/// the count of attempts goes into the last one's error.
pub(crate) async fn with_retries<T, F, Fut>(
    options: &ConnectOptions,
    mut attempt_once: F,
) -> Result<T, ConnectError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectError>>,
{
    let attempts = options.attempts.max(1);
    let mut delay = options.backoff;
    let mut last = None;
    for attempt in 1..=attempts {
        match attempt_once().await {
            Ok(done) => return Ok(done),
            Err(err) if err.is_transient() && attempt < attempts => {
                last = Some(err);
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            Err(ConnectError::Unreachable { target, detail, .. }) => {
                return Err(ConnectError::Unreachable {
                    target,
                    detail,
                    attempts: attempt,
                });
            }
            Err(err) => return Err(err),
        }
    }
    Err(last.expect("at least one attempt ran"))
}

async fn connect_once(
    info: &ConnInfo,
    options: &ConnectOptions,
    tls: &Tls,
) -> Result<Session, ConnectError> {
    let target = info.target();
    let config = driver_config(info, options)?;
    let mode = info.ssl_mode();
    let tls = tls.0.clone().map_err(|reason| ConnectError::TlsSetup {
        target: target.clone(),
        reason,
    })?;
    let client = match tls {
        None => {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| classify(e, info, mode))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        Some(tls) => {
            let (client, connection) = config
                .connect(tls)
                .await
                .map_err(|e| classify(e, info, mode))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    if let Some(timeout) = options.statement_timeout {
        client
            .batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis()))
            .await
            .map_err(|e| classify(e, info, mode))?;
    }
    Ok(Session {
        client,
        info: info.clone(),
    })
}

/// Translates a [`ConnInfo`] into the driver's settings, filling libpq's defaults from the
/// environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`).
pub(crate) fn driver_config(
    info: &ConnInfo,
    options: &ConnectOptions,
) -> Result<tokio_postgres::Config, ConnectError> {
    let mut config = tokio_postgres::Config::new();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let hosts = info.hosts();
    if hosts.is_empty() {
        match env("PGHOST") {
            Some(h) => {
                config.host(&h);
            }
            None => {
                config.host_path(default_socket_dir());
            }
        }
    }
    for host in hosts {
        match host {
            Host::Tcp(name) => config.host(&name),
            Host::Socket(dir) => config.host_path(dir),
        };
    }
    if let Some(addrs) = info.get("hostaddr") {
        for (i, addr) in addrs.split(',').filter(|a| !a.is_empty()).enumerate() {
            // The value is not shown: a malformed string may carry a password anywhere.
            let ip = addr.parse().map_err(|_| ConnectError::BadSettings {
                reason: format!("hostaddr number {} is not an IP address", i + 1),
            })?;
            config.hostaddr(ip);
        }
    }
    let ports = info.ports();
    if ports.is_empty() {
        let port = env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432);
        config.port(port);
    }
    for port in ports {
        config.port(port);
    }
    let user = info
        .user()
        .map(str::to_string)
        .or_else(|| env("PGUSER"))
        .or_else(os_user_name)
        .ok_or_else(|| ConnectError::BadSettings {
            reason: "no user name is given and the current OS user has none; add a user to the connection string".into(),
        })?;
    config.user(&user);
    if let Some(password) = info
        .password()
        .map(str::to_string)
        .or_else(|| env("PGPASSWORD"))
    {
        config.password(password);
    }
    let dbname = info
        .dbname()
        .map(str::to_string)
        .or_else(|| env("PGDATABASE"))
        .unwrap_or_else(|| user.clone());
    config.dbname(&dbname);
    config.application_name(info.get("application_name").unwrap_or(APPLICATION_NAME));
    if let Some(opts) = info.get("options") {
        config.options(opts);
    }
    let timeout = info
        .get("connect_timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        .unwrap_or(options.connect_timeout);
    config.connect_timeout(timeout);
    config.keepalives(true);
    if let Some(attrs) = info.get("target_session_attrs") {
        let attrs = match attrs {
            "any" => tokio_postgres::config::TargetSessionAttrs::Any,
            "read-write" => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
            "read-only" => tokio_postgres::config::TargetSessionAttrs::ReadOnly,
            other => {
                return Err(ConnectError::BadSettings {
                    reason: format!(
                        "target_session_attrs `{other}` is not supported; use any, read-write or read-only"
                    ),
                });
            }
        };
        config.target_session_attrs(attrs);
    }
    config.ssl_mode(match info.ssl_mode() {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    Ok(config)
}

/// libpq's compiled-in default socket directory differs by platform; Debian uses
/// /var/run/postgresql, upstream /tmp.
fn default_socket_dir() -> PathBuf {
    let debian = Path::new("/var/run/postgresql");
    if debian.is_dir() {
        debian.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

fn os_user_name() -> Option<String> {
    // getpwuid_r underneath: thread-safe, unlike getpwuid's shared static buffer.
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// What a failed connection means. The server's errors are read by SQLSTATE; the driver's
/// own (cannot connect, TLS, timeout) by its display, the only place tokio_postgres shows
/// their kind (its `Kind` is private), and a 28000 refusal by its message, the only place
/// the server says whether TLS or a pg_hba.conf line is missing.
fn classify(err: tokio_postgres::Error, info: &ConnInfo, mode: SslMode) -> ConnectError {
    let target = info.target();
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let message = crate::conninfo::redact_text(db.message());
        if *code == SqlState::INVALID_PASSWORD {
            return ConnectError::WrongPassword {
                target,
                user: info.user().unwrap_or("?").to_string(),
            };
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return ConnectError::NoSuchDatabase {
                target,
                dbname: info.dbname().unwrap_or("?").to_string(),
            };
        }
        if *code == SqlState::CANNOT_CONNECT_NOW {
            return ConnectError::NotReady { target, message };
        }
        if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            let hint = if message.contains("no encryption") {
                "; the server accepts only TLS from here: use sslmode=require"
            } else if message.contains("no pg_hba.conf entry") {
                "; add a matching line to the server's pg_hba.conf"
            } else {
                ""
            };
            return ConnectError::Rejected {
                target,
                message,
                hint: hint.to_string(),
            };
        }
        if *code == SqlState::TOO_MANY_CONNECTIONS {
            return ConnectError::Rejected {
                target,
                message,
                hint: "; close idle sessions or raise max_connections".to_string(),
            };
        }
        return ConnectError::Other {
            target,
            detail: message,
        };
    }
    let top = err.to_string();
    let detail = crate::conninfo::redact_text(&error_chain(&err));
    if detail.contains("server does not support TLS") {
        return ConnectError::TlsNotOffered {
            target,
            mode: mode.as_str(),
        };
    }
    if top.starts_with("error performing TLS handshake") {
        return ConnectError::TlsFailed { target, detail };
    }
    if top.starts_with("error connecting to server")
        || top.starts_with("timeout waiting for server")
        || top.starts_with("error communicating with the server")
    {
        let detail = if top.starts_with("timeout") {
            "no answer within the connect timeout".to_string()
        } else {
            detail
        };
        return ConnectError::Unreachable {
            target,
            detail,
            attempts: 1,
        };
    }
    ConnectError::Other { target, detail }
}

/// The innermost causes, which say what actually happened ("Connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

fn tls_connector(
    info: &ConnInfo,
    mode: SslMode,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let root_cert = info.get("sslrootcert").map(str::to_string).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let default = Path::new(&home).join(".postgresql/root.crt");
        default.is_file().then(|| default.display().to_string())
    });
    // libpq: `require` with a root certificate behaves like `verify-ca`.
    let mode = match (mode, &root_cert) {
        (SslMode::Require, Some(_)) if info.get("sslrootcert").is_some() => SslMode::VerifyCa,
        (m, _) => m,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let Some(root_cert) = root_cert else {
                return Err(format!(
                    "sslmode={} needs a root certificate; set sslrootcert=/path/to/ca.crt (or sslrootcert=system for the system's trust store)",
                    mode.as_str()
                ));
            };
            let roots = load_roots(&root_cert)?;
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("the root certificates are not usable: {e}"))?;
            Arc::new(PgVerifier {
                inner: webpki,
                check_name: mode == SslMode::VerifyFull,
            })
        }
        _ => Arc::new(NoVerification(provider.clone())),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (info.get("sslcert"), info.get("sslkey")) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(Path::new(cert))?;
            let key = load_key(Path::new(key))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the client certificate is not usable: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn load_roots(source: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if source == "system" {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err("sslrootcert=system but no system root certificates were found".into());
        }
        return Ok(roots);
    }
    for cert in load_certs(Path::new(source))? {
        roots
            .add(cert)
            .map_err(|e| format!("{source} holds a certificate rustls cannot use: {e}"))?;
    }
    Ok(roots)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("{} holds no private key", path.display())
        }
        e => format!("{} is not a PEM key file: {e}", path.display()),
    })
}

/// `sslmode=prefer|require`: encrypt, but do not authenticate the server (libpq's meaning).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` checks the chain only; `verify-full` also the host name.
#[derive(Debug)]
struct PgVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
