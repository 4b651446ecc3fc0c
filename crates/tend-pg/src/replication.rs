//! A physical replication connection (`replication=true`), for the commands tokio-postgres
//! cannot send: a walsender speaks only the simple query protocol, and `BASE_BACKUP`
//! answers with a COPY stream in which each message is tagged (a new archive, its bytes, the
//! manifest, progress). Everything else (where to connect, TLS, passwords, timeouts) comes
//! from the same settings as [`crate::connect`], so a physical backup reaches the server the
//! way every other command does. Message framing and SCRAM come from `postgres-protocol`;
//! what the server sends is parsed here, by [`parse_message`] and [`parse_backup_data`],
//! which take any bytes without panicking (the `replication` fuzz target).

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use crate::connect::{ConnectError, ConnectOptions, Tls, driver_config, with_retries};
use crate::conninfo::{ConnInfo, SslMode};

/// The largest message tend accepts from a server: BASE_BACKUP's data messages are tens of
/// kilobytes, a manifest's pieces likewise; anything near this is a broken stream.
const MAX_MESSAGE: usize = 64 << 20;

/// A message from the server, as far as a replication client needs to tell them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Authentication(Authentication),
    ParameterStatus {
        name: String,
        value: String,
    },
    ReadyForQuery,
    RowDescription,
    /// A row of a result set: each column as text, or NULL.
    DataRow(Vec<Option<String>>),
    CommandComplete,
    CopyOutResponse,
    CopyInResponse,
    CopyData(Bytes),
    CopyDone,
    Error(ServerMessage),
    Notice(ServerMessage),
    /// BackendKeyData, EmptyQueryResponse and any other the client has no use for.
    Other(u8),
}

/// What the server asks for before it lets the client in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    Ok,
    CleartextPassword,
    Md5Password([u8; 4]),
    Sasl(Vec<String>),
    SaslContinue(Bytes),
    SaslFinal(Bytes),
    /// Kerberos, GSSAPI, SSPI: not supported.
    Other(i32),
}

/// An ErrorResponse or NoticeResponse: its SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerMessage {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
}

/// A message inside BASE_BACKUP's COPY stream (PostgreSQL 15 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupData {
    /// A new archive begins: its file name (`base.tar`, `base.tar.zst`, `16385.tar`) and the
    /// tablespace's location (empty for the main data directory).
    Archive { name: String, location: String },
    /// Bytes of the current archive, or of the manifest once [`BackupData::Manifest`] came.
    Data(Bytes),
    /// The backup manifest follows.
    Manifest,
    /// Uncompressed bytes the server has read so far.
    Progress(u64),
}

/// The stream from a server did not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(String);

/// Takes one whole message off the front of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse_message(buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let length = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=MAX_MESSAGE).contains(&length) {
        return Err(ProtocolError(format!(
            "a message of type {:?} claims {length} bytes",
            char::from(tag)
        )));
    }
    if buf.len() < 1 + length {
        buf.reserve(1 + length - buf.len());
        return Ok(None);
    }
    buf.advance(5);
    let mut body = buf.split_to(length - 4).freeze();
    let short = || {
        ProtocolError(format!(
            "a message of type {:?} is cut short",
            char::from(tag)
        ))
    };
    let message = match tag {
        b'R' => {
            if body.len() < 4 {
                return Err(short());
            }
            let kind = body.get_i32();
            Message::Authentication(match kind {
                0 => Authentication::Ok,
                3 => Authentication::CleartextPassword,
                5 => {
                    if body.len() < 4 {
                        return Err(short());
                    }
                    let mut salt = [0u8; 4];
                    body.copy_to_slice(&mut salt);
                    Authentication::Md5Password(salt)
                }
                10 => {
                    let mut mechanisms = Vec::new();
                    loop {
                        let name = cstring(&mut body).ok_or_else(short)?;
                        if name.is_empty() {
                            break;
                        }
                        mechanisms.push(name);
                    }
                    Authentication::Sasl(mechanisms)
                }
                11 => Authentication::SaslContinue(body),
                12 => Authentication::SaslFinal(body),
                other => Authentication::Other(other),
            })
        }
        b'S' => {
            let name = cstring(&mut body).ok_or_else(short)?;
            let value = cstring(&mut body).ok_or_else(short)?;
            Message::ParameterStatus { name, value }
        }
        b'Z' => Message::ReadyForQuery,
        b'T' => Message::RowDescription,
        b'D' => {
            if body.len() < 2 {
                return Err(short());
            }
            let columns = body.get_u16();
            let mut row = Vec::with_capacity(usize::from(columns).min(64));
            for _ in 0..columns {
                if body.len() < 4 {
                    return Err(short());
                }
                let len = body.get_i32();
                if len < 0 {
                    row.push(None);
                    continue;
                }
                let len = len as usize;
                if body.len() < len {
                    return Err(short());
                }
                let value = body.split_to(len);
                row.push(Some(String::from_utf8_lossy(&value).into_owned()));
            }
            Message::DataRow(row)
        }
        b'C' => Message::CommandComplete,
        b'H' => Message::CopyOutResponse,
        b'G' => Message::CopyInResponse,
        b'd' => Message::CopyData(body),
        b'c' => Message::CopyDone,
        b'E' | b'N' => {
            let mut found = ServerMessage::default();
            while !body.is_empty() {
                let field = body.get_u8();
                if field == 0 {
                    break;
                }
                let value = cstring(&mut body).ok_or_else(short)?;
                match field {
                    b'C' => found.code = value,
                    b'M' => found.message = value,
                    b'D' => found.detail = Some(value),
                    _ => {}
                }
            }
            if tag == b'E' {
                Message::Error(found)
            } else {
                Message::Notice(found)
            }
        }
        other => Message::Other(other),
    };
    Ok(Some(message))
}

/// Reads a NUL-terminated string off the front of `body`.
fn cstring(body: &mut Bytes) -> Option<String> {
    let end = body.iter().position(|b| *b == 0)?;
    let text = String::from_utf8_lossy(&body[..end]).into_owned();
    body.advance(end + 1);
    Some(text)
}

/// Reads one CopyData payload of BASE_BACKUP's stream.
pub fn parse_backup_data(mut data: Bytes) -> Result<BackupData, ProtocolError> {
    let Some(&kind) = data.first() else {
        return Err(ProtocolError(
            "an empty message in the backup stream".into(),
        ));
    };
    data.advance(1);
    let short = || {
        ProtocolError(format!(
            "a {:?} message in the backup stream is cut short",
            char::from(kind)
        ))
    };
    match kind {
        b'n' => {
            let name = cstring(&mut data).ok_or_else(short)?;
            let location = cstring(&mut data).ok_or_else(short)?;
            Ok(BackupData::Archive { name, location })
        }
        b'd' => Ok(BackupData::Data(data)),
        b'm' => Ok(BackupData::Manifest),
        b'p' => {
            if data.len() < 8 {
                return Err(short());
            }
            Ok(BackupData::Progress(data.get_u64()))
        }
        other => Err(ProtocolError(format!(
            "an unknown message {:?} in the backup stream",
            char::from(other)
        ))),
    }
}

/// Why a command on a replication connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("PostgreSQL at {target} refused {command}: {message}")]
    Refused {
        target: String,
        command: &'static str,
        /// SQLSTATE.
        code: String,
        message: String,
    },
    #[error("the replication connection to {target} broke: {detail}")]
    Broken { target: String, detail: String },
}

impl ReplicationError {
    /// The SQLSTATE when the server refused a command.
    pub fn code(&self) -> Option<&str> {
        match self {
            ReplicationError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open replication connection, idle between commands.
pub struct Replication {
    io: Box<dyn Io>,
    read: BytesMut,
    write: BytesMut,
    target: String,
    /// `server_version_num` as the server reported it at start-up.
    pub server_version_num: u32,
}

/// Where BASE_BACKUP starts or ends: a WAL location and a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalPosition {
    pub lsn: String,
    pub timeline: u32,
}

impl Replication {
    /// Opens a physical replication connection, with the retries of [`crate::connect`].
    pub async fn connect(
        info: &ConnInfo,
        options: &ConnectOptions,
    ) -> Result<Replication, ConnectError> {
        let tls = Tls::for_target(info);
        with_retries(options, || connect_once(info, options, &tls)).await
    }

    /// PostgreSQL 17+: sends the manifest an incremental BASE_BACKUP builds on.
    pub async fn upload_manifest(&mut self, manifest: &[u8]) -> Result<(), ReplicationError> {
        const COMMAND: &str = "UPLOAD_MANIFEST";
        self.query(COMMAND).await?;
        loop {
            match self.receive(COMMAND).await? {
                Message::CopyInResponse => break,
                Message::ReadyForQuery => return Err(self.broken("no COPY for the manifest")),
                _ => {}
            }
        }
        for piece in manifest.chunks(1 << 20) {
            frontend::CopyData::new(piece)
                .map_err(|e| self.broken(&e.to_string()))?
                .write(&mut self.write);
            self.flush().await?;
        }
        frontend::copy_done(&mut self.write);
        self.flush().await?;
        self.until_ready(COMMAND).await
    }

    /// Starts `BASE_BACKUP (options)`. Returns where the backup's WAL starts; then call
    /// [`Replication::next_data`] until it returns `None`, then [`Replication::finish_backup`].
    pub async fn start_backup(&mut self, options: &str) -> Result<WalPosition, ReplicationError> {
        const COMMAND: &str = "BASE_BACKUP";
        self.query(&format!("BASE_BACKUP ({options})")).await?;
        let mut start = None;
        loop {
            match self.receive(COMMAND).await? {
                Message::DataRow(row) if start.is_none() => start = Some(self.position(&row)?),
                Message::CopyOutResponse => break,
                Message::ReadyForQuery => return Err(self.broken("BASE_BACKUP sent no data")),
                _ => {}
            }
        }
        start.ok_or_else(|| self.broken("BASE_BACKUP did not say where it starts"))
    }

    /// The next message of the backup stream; `None` once the stream has ended.
    pub async fn next_data(&mut self) -> Result<Option<BackupData>, ReplicationError> {
        loop {
            match self.receive("BASE_BACKUP").await? {
                Message::CopyData(data) => {
                    return parse_backup_data(data)
                        .map(Some)
                        .map_err(|e| self.broken(&e.0));
                }
                Message::CopyDone => return Ok(None),
                Message::ReadyForQuery => {
                    return Err(self.broken("the backup stream ended without CopyDone"));
                }
                _ => {}
            }
        }
    }

    /// After the stream: where the backup's WAL ends. The connection is idle again.
    pub async fn finish_backup(&mut self) -> Result<WalPosition, ReplicationError> {
        const COMMAND: &str = "BASE_BACKUP";
        let mut end = None;
        loop {
            match self.receive(COMMAND).await? {
                Message::DataRow(row) if end.is_none() => end = Some(self.position(&row)?),
                Message::ReadyForQuery => break,
                _ => {}
            }
        }
        end.ok_or_else(|| self.broken("BASE_BACKUP did not say where it ends"))
    }

    fn position(&self, row: &[Option<String>]) -> Result<WalPosition, ReplicationError> {
        match row {
            [Some(lsn), Some(timeline), ..] => Ok(WalPosition {
                lsn: lsn.clone(),
                timeline: timeline
                    .parse()
                    .map_err(|_| self.broken("a timeline that is not a number"))?,
            }),
            _ => Err(self.broken("a WAL position row without its two columns")),
        }
    }

    async fn query(&mut self, text: &str) -> Result<(), ReplicationError> {
        frontend::query(text, &mut self.write).map_err(|e| self.broken(&e.to_string()))?;
        self.flush().await
    }

    async fn until_ready(&mut self, command: &'static str) -> Result<(), ReplicationError> {
        while self.receive(command).await? != Message::ReadyForQuery {}
        Ok(())
    }

    /// The next message; an ErrorResponse becomes [`ReplicationError::Refused`] (after the
    /// server's ReadyForQuery, so the connection stays usable).
    async fn receive(&mut self, command: &'static str) -> Result<Message, ReplicationError> {
        match self.read_message().await? {
            Message::Error(error) => {
                let _ = self.until_ready_quietly().await;
                Err(ReplicationError::Refused {
                    target: self.target.clone(),
                    command,
                    code: error.code,
                    message: crate::conninfo::redact_text(&error.message),
                })
            }
            other => Ok(other),
        }
    }

    async fn until_ready_quietly(&mut self) -> Result<(), ReplicationError> {
        while self.read_message().await? != Message::ReadyForQuery {}
        Ok(())
    }

    async fn read_message(&mut self) -> Result<Message, ReplicationError> {
        read_message(&mut self.io, &mut self.read)
            .await
            .map_err(|detail| ReplicationError::Broken {
                target: self.target.clone(),
                detail,
            })
    }

    async fn flush(&mut self) -> Result<(), ReplicationError> {
        let bytes = self.write.split();
        self.io
            .write_all(&bytes)
            .await
            .and(self.io.flush().await)
            .map_err(|e| self.broken(&e.to_string()))
    }

    fn broken(&self, detail: &str) -> ReplicationError {
        ReplicationError::Broken {
            target: self.target.clone(),
            detail: detail.to_string(),
        }
    }
}

async fn read_message<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    buf: &mut BytesMut,
) -> Result<Message, String> {
    loop {
        if let Some(message) = parse_message(buf).map_err(|e| e.0)? {
            return Ok(message);
        }
        buf.reserve(64 * 1024);
        let n = io.read_buf(buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".to_string());
        }
    }
}

/// One attempt at each host in turn, as libpq does; the last host's error is returned.
async fn connect_once(
    info: &ConnInfo,
    options: &ConnectOptions,
    tls: &Tls,
) -> Result<Replication, ConnectError> {
    let target = info.target();
    let config = driver_config(info, options)?;
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(10));
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let count = hosts.len().max(addrs.len()).max(1);
    let mut last = None;
    for i in 0..count {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let host = hosts.get(i).cloned();
        let addr = addrs.get(i).copied();
        let attempt = tokio::time::timeout(timeout, async {
            let io = open(host.as_ref(), addr, port, info, tls, &target).await?;
            start_up(io, &config, &target, info).await
        })
        .await;
        match attempt {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(ConnectError::Unreachable {
                    target: target.clone(),
                    detail: "no answer within the connect timeout".to_string(),
                    attempts: 1,
                })
            }
        }
    }
    Err(last.expect("one host at least"))
}

/// The socket, with TLS negotiated as `sslmode` says.
async fn open(
    host: Option<&tokio_postgres::config::Host>,
    addr: Option<std::net::IpAddr>,
    port: u16,
    info: &ConnInfo,
    tls: &Tls,
    target: &str,
) -> Result<Box<dyn Io>, ConnectError> {
    let unreachable = |e: std::io::Error| ConnectError::Unreachable {
        target: target.to_string(),
        detail: e.to_string(),
        attempts: 1,
    };
    let name = match host {
        Some(tokio_postgres::config::Host::Unix(dir)) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let socket = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(unreachable)?;
            return Ok(Box::new(socket));
        }
        Some(tokio_postgres::config::Host::Tcp(name)) => name.clone(),
        None => addr.map(|a| a.to_string()).unwrap_or_default(),
    };
    let mut socket = match addr {
        Some(ip) => tokio::net::TcpStream::connect((ip, port)).await,
        None => tokio::net::TcpStream::connect((name.as_str(), port)).await,
    }
    .map_err(unreachable)?;
    let _ = socket.set_nodelay(true);
    let mode = info.ssl_mode();
    let maker = tls.0.clone().map_err(|reason| ConnectError::TlsSetup {
        target: target.to_string(),
        reason,
    })?;
    let Some(mut maker) = maker.filter(|_| mode != SslMode::Disable) else {
        return Ok(Box::new(socket));
    };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    socket.write_all(&request).await.map_err(unreachable)?;
    let mut answer = [0u8; 1];
    socket.read_exact(&mut answer).await.map_err(unreachable)?;
    if answer[0] != b'S' {
        if matches!(mode, SslMode::Allow | SslMode::Prefer) {
            return Ok(Box::new(socket));
        }
        return Err(ConnectError::TlsNotOffered {
            target: target.to_string(),
            mode: mode.as_str(),
        });
    }
    let failed = |detail: String| ConnectError::TlsFailed {
        target: target.to_string(),
        detail,
    };
    let connector = MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(&mut maker, &name)
        .map_err(|e| failed(e.to_string()))?;
    let stream = connector
        .connect(socket)
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(Box::new(stream))
}

/// The start-up message and authentication, up to the first ReadyForQuery.
async fn start_up(
    mut io: Box<dyn Io>,
    config: &tokio_postgres::Config,
    target: &str,
    info: &ConnInfo,
) -> Result<Replication, ConnectError> {
    let user = config.get_user().unwrap_or_default().to_string();
    let mut params = vec![
        ("user", user.as_str()),
        ("replication", "true"),
        (
            "application_name",
            config.get_application_name().unwrap_or("tend"),
        ),
    ];
    if let Some(options) = config.get_options() {
        params.push(("options", options));
    }
    let broken = |detail: String| ConnectError::Other {
        target: target.to_string(),
        detail,
    };
    let mut write = BytesMut::new();
    frontend::startup_message(params.iter().copied(), &mut write)
        .map_err(|e| broken(e.to_string()))?;
    let mut read = BytesMut::new();
    let mut scram: Option<ScramSha256> = None;
    let mut version = 0;
    let password = config.get_password();
    let no_password = || ConnectError::Rejected {
        target: target.to_string(),
        message: format!("the server asks a password of user `{user}` and none is given"),
        hint: "; add it to the connection string (DATABASE_URL) or PGPASSWORD".to_string(),
    };
    loop {
        if !write.is_empty() {
            let bytes = write.split();
            io.write_all(&bytes)
                .await
                .and(io.flush().await)
                .map_err(|e| broken(e.to_string()))?;
        }
        let message = read_message(&mut io, &mut read).await.map_err(broken)?;
        match message {
            Message::Authentication(Authentication::Ok) => {}
            Message::Authentication(Authentication::CleartextPassword) => {
                let password = password.ok_or_else(no_password)?;
                frontend::password_message(password, &mut write)
                    .map_err(|e| broken(e.to_string()))?;
            }
            Message::Authentication(Authentication::Md5Password(salt)) => {
                let password = password.ok_or_else(no_password)?;
                let hashed =
                    postgres_protocol::authentication::md5_hash(user.as_bytes(), password, salt);
                frontend::password_message(hashed.as_bytes(), &mut write)
                    .map_err(|e| broken(e.to_string()))?;
            }
            Message::Authentication(Authentication::Sasl(mechanisms)) => {
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(broken(format!(
                        "the server offers only {} authentication, which tend does not speak",
                        mechanisms.join(", ")
                    )));
                }
                let password = password.ok_or_else(no_password)?;
                // Channel binding is not used ("n"): the server accepts that whether or not
                // it offers SCRAM-SHA-256-PLUS.
                let exchange = ScramSha256::new(password, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, exchange.message(), &mut write)
                    .map_err(|e| broken(e.to_string()))?;
                scram = Some(exchange);
            }
            Message::Authentication(Authentication::SaslContinue(data)) => {
                let exchange = scram
                    .as_mut()
                    .ok_or_else(|| broken("SCRAM out of order".into()))?;
                exchange
                    .update(&data)
                    .map_err(|e| broken(format!("SCRAM failed: {e}")))?;
                frontend::sasl_response(exchange.message(), &mut write)
                    .map_err(|e| broken(e.to_string()))?;
            }
            Message::Authentication(Authentication::SaslFinal(data)) => {
                let exchange = scram
                    .as_mut()
                    .ok_or_else(|| broken("SCRAM out of order".into()))?;
                exchange
                    .finish(&data)
                    .map_err(|e| broken(format!("the server's SCRAM proof is wrong: {e}")))?;
            }
            Message::Authentication(Authentication::Other(kind)) => {
                return Err(broken(format!(
                    "the server asks for authentication method {kind} (Kerberos, GSSAPI or SSPI), which tend does not speak"
                )));
            }
            Message::ParameterStatus { name, value } if name == "server_version" => {
                version = version_num(&value);
            }
            Message::Error(error) => return Err(refusal(error, target, info)),
            Message::ReadyForQuery => {
                return Ok(Replication {
                    io,
                    read,
                    write,
                    target: target.to_string(),
                    server_version_num: version,
                });
            }
            _ => {}
        }
    }
}

/// `15.4 (Debian 15.4-1)` → 150004; `9.6.2` → 90602.
fn version_num(text: &str) -> u32 {
    let numbers: Vec<u32> = text
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    match numbers.as_slice() {
        [major, minor, ..] if *major >= 10 => major * 10000 + minor,
        [major, minor, patch, ..] => major * 10000 + minor * 100 + patch,
        [major, ..] => major * 10000,
        [] => 0,
    }
}

/// An ErrorResponse during start-up, as [`crate::connect`] reports the same refusal.
fn refusal(error: ServerMessage, target: &str, info: &ConnInfo) -> ConnectError {
    let target = target.to_string();
    let message = crate::conninfo::redact_text(&error.message);
    match error.code.as_str() {
        "28P01" => ConnectError::WrongPassword {
            target,
            user: info.user().unwrap_or("?").to_string(),
        },
        "57P03" => ConnectError::NotReady { target, message },
        "28000" => {
            let hint = if message.contains("pg_hba.conf") && message.contains("replication") {
                "; a physical backup connects for replication: add a `host replication` (or `local replication`) line for this role to the server's pg_hba.conf"
            } else if message.contains("no encryption") {
                "; the server accepts only TLS from here: use sslmode=require"
            } else {
                ""
            };
            ConnectError::Rejected {
                target,
                message,
                hint: hint.to_string(),
            }
        }
        "53300" => ConnectError::Rejected {
            target,
            message,
            hint: "; a physical backup needs a free walsender: raise max_wal_senders".to_string(),
        },
        _ => ConnectError::Rejected {
            target,
            message,
            hint: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[tag]);
        buf.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        buf.extend_from_slice(body);
        buf
    }

    #[test]
    fn messages_are_taken_whole_or_not_at_all() {
        let mut buf = frame(b'D', b"\x00\x02\x00\x00\x00\x090/2000028\x00\x00\x00\x011");
        let whole = buf.clone();
        let mut partial = BytesMut::from(&whole[..7]);
        assert_eq!(parse_message(&mut partial), Ok(None));
        assert_eq!(
            parse_message(&mut buf),
            Ok(Some(Message::DataRow(vec![
                Some("0/2000028".into()),
                Some("1".into())
            ])))
        );
        assert!(buf.is_empty());
        let mut error = frame(b'E', b"SERROR\0C42601\0Msyntax error\0\0");
        assert_eq!(
            parse_message(&mut error),
            Ok(Some(Message::Error(ServerMessage {
                code: "42601".into(),
                message: "syntax error".into(),
                detail: None
            })))
        );
        let mut sasl = frame(
            b'R',
            b"\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0",
        );
        assert_eq!(
            parse_message(&mut sasl),
            Ok(Some(Message::Authentication(Authentication::Sasl(vec![
                "SCRAM-SHA-256-PLUS".into(),
                "SCRAM-SHA-256".into()
            ]))))
        );
    }

    #[test]
    fn broken_messages_are_errors_not_panics() {
        for bad in [
            frame(b'D', b"\x00\x02\x00\x00\x00\x09"),
            frame(b'R', b"\x00\x00"),
            frame(b'R', b"\x00\x00\x00\x05\x01"),
            frame(b'S', b"name-without-end"),
            frame(b'E', b"Mno end"),
        ] {
            assert!(parse_message(&mut bad.clone()).is_err(), "{bad:?}");
        }
        let mut huge = BytesMut::from(&b"d\xff\xff\xff\xff"[..]);
        assert!(parse_message(&mut huge).is_err());
        let mut tiny = BytesMut::from(&b"d\x00\x00\x00\x01"[..]);
        assert!(parse_message(&mut tiny).is_err());
    }

    #[test]
    fn backup_stream_messages() {
        assert_eq!(
            parse_backup_data(Bytes::from_static(b"nbase.tar.zst\0\0")),
            Ok(BackupData::Archive {
                name: "base.tar.zst".into(),
                location: String::new()
            })
        );
        assert_eq!(
            parse_backup_data(Bytes::from_static(b"dabc")),
            Ok(BackupData::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(
            parse_backup_data(Bytes::from_static(b"p\0\0\0\0\0\0\x01\0")),
            Ok(BackupData::Progress(256))
        );
        assert_eq!(
            parse_backup_data(Bytes::from_static(b"m")),
            Ok(BackupData::Manifest)
        );
        assert!(parse_backup_data(Bytes::new()).is_err());
        assert!(parse_backup_data(Bytes::from_static(b"p\0")).is_err());
        assert!(parse_backup_data(Bytes::from_static(b"nname")).is_err());
        assert!(parse_backup_data(Bytes::from_static(b"x")).is_err());
    }

    #[test]
    fn server_versions() {
        assert_eq!(version_num("15.18 (Debian 15.18-0+deb12u1)"), 150018);
        assert_eq!(version_num("18.1"), 180001);
        assert_eq!(version_num("18beta1"), 180000);
        assert_eq!(version_num("9.6.24"), 90624);
        assert_eq!(version_num(""), 0);
    }
}
