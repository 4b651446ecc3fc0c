//! Connection strings in both libpq forms (`postgres://` URLs and `key=value` lists), and the
//! one redacting display that every message, log line and JSON document uses.
//!
//! We parse the strings ourselves rather than through `tokio_postgres::Config` because tend
//! needs what that parser drops: `sslmode=verify-ca|verify-full`, `sslrootcert`, the original
//! form for display, and a display that can never show a password.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What the redacted display shows in place of a secret.
pub const MASK: &str = "********";

/// Parameters Prisma's URLs carry for Prisma itself; libpq refuses them, so they are
/// accepted here and left out of what a libpq program is handed.
const PRISMA_ONLY_KEYS: &[&str] = &[
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
    "sslaccept",
    "sslidentity",
    "max_connection_lifetime",
    "max_idle_connection_lifetime",
];

/// libpq's connection keywords, PostgreSQL 15 through 18 (`PQconndefaults`): anything else
/// is refused, as libpq refuses it (`invalid connection option`).
const LIBPQ_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslcertmode",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslkeylogfile",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
    "scram_client_key",
    "scram_server_key",
];

/// Keys whose values are secrets: never shown, masked wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "password",
    "sslpassword",
    "oauth_client_secret",
    "scram_client_key",
    "scram_server_key",
];

/// Is `key` a keyword tend accepts in a connection string (libpq's, or one Prisma's URLs
/// carry)?
pub fn is_known_key(key: &str) -> bool {
    LIBPQ_KEYS.contains(&key) || PRISMA_ONLY_KEYS.contains(&key)
}

/// A parsed connection string. Keys are libpq keywords (`host`, `port`, `user`, `password`,
/// `dbname`, `sslmode`, ...); a URL is normalised into the same keywords.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    params: BTreeMap<String, String>,
    form: Form,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Url,
    KeyValue,
}

/// A connection string that could not be understood. No variant holds any text of the
/// input, which may carry a password in any position when it is malformed: each says where
/// (a part, a 1-based character position or parameter number) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnInfoError {
    #[error(
        "the connection string is empty; set DATABASE_URL or `database.url` to a URL such as postgresql://user@host:5432/dbname"
    )]
    Empty,
    #[error(
        "the connection URL has an unknown scheme{}; it must start with postgresql:// or postgres://",
        .known.map(|s| format!(" `{s}`")).unwrap_or_default()
    )]
    UnknownScheme {
        /// The scheme, when it is one of the well-known ones (mysql, http, ...), never free text.
        known: Option<&'static str>,
    },
    #[error(
        "the connection string holds a NUL character (raw or as %00), which libpq cannot take; remove it"
    )]
    NulCharacter,
    #[error("the connection URL is malformed: {reason}")]
    MalformedUrl { reason: &'static str },
    #[error("the connection string is malformed at character {position}: {reason}")]
    MalformedKeyValue {
        position: usize,
        reason: &'static str,
    },
    #[error(
        "the connection string has a port that is not a number from 1 to 65535{}",
        if *.no_userinfo { "; if that text is a password, the URL is missing `@host` after it" } else { "" }
    )]
    InvalidPort {
        /// The URL has no `@`: `user:password` was probably given without a host.
        no_userinfo: bool,
    },
    #[error(
        "the connection string has an unknown sslmode; use disable, allow, prefer, require, verify-ca or verify-full"
    )]
    InvalidSslMode,
    #[error(
        "the connection string's {}{} is not a connection option libpq knows{}",
        ordinal_parameter(*.position),
        if *.in_query { " after `?`" } else { "" },
        .nearest.map(|n| format!("; did you mean `{n}`?")).unwrap_or_else(|| "; see libpq's list of parameter keywords".to_string())
    )]
    UnknownParameter {
        /// 1-based, in the order written.
        position: usize,
        /// Counted among a URL's query parameters.
        in_query: bool,
        nearest: Option<&'static str>,
    },
    #[error("the connection string's `{key}` must be {expected}")]
    InvalidValue {
        key: &'static str,
        expected: &'static str,
    },
}

fn ordinal_parameter(position: usize) -> String {
    let suffix = match (position % 10, position % 100) {
        (1, n) if n != 11 => "st",
        (2, n) if n != 12 => "nd",
        (3, n) if n != 13 => "rd",
        _ => "th",
    };
    format!("{position}{suffix} parameter")
}

/// Schemes worth naming in an error (people paste other databases' URLs); anything else
/// is not echoed, since a malformed string may have a password where a scheme would be.
const KNOWN_SCHEMES: &[&str] = &[
    "mysql",
    "mariadb",
    "sqlite",
    "sqlserver",
    "mssql",
    "mongodb",
    "mongodb+srv",
    "redis",
    "rediss",
    "http",
    "https",
    "jdbc",
    "pgsql",
    "psql",
    "postgis",
    "cockroachdb",
    "prisma",
    "prisma+postgres",
    "file",
];

/// libpq's `sslmode`, with its documented meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    /// libpq tries plain first, then TLS; tend treats it as `prefer`.
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Result<SslMode, ConnInfoError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(ConnInfoError::InvalidSslMode),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// One server address: a TCP host name or address, or a directory holding a unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Socket(PathBuf),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) => f.write_str(name),
            Host::Socket(dir) => write!(f, "{}", dir.display()),
        }
    }
}

impl ConnInfo {
    /// Parses either libpq form. A string starting with a scheme (`xxx://`) is a URL;
    /// anything else must be `key=value` pairs.
    pub fn parse(input: &str) -> Result<ConnInfo, ConnInfoError> {
        let input = input.trim_matches(is_libpq_space);
        if input.is_empty() {
            return Err(ConnInfoError::Empty);
        }
        if input.contains('\0') {
            return Err(ConnInfoError::NulCharacter);
        }
        let info = match input.find("://") {
            Some(i)
                if input[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                parse_url(&input[..i], &input[i + 3..])?
            }
            _ => parse_key_value(input)?,
        };
        info.validate()?;
        Ok(info)
    }

    /// Builds a URL-form connection string from parts (used for the local cluster).
    pub fn from_parts(host: Host, port: u16, user: &str, dbname: &str) -> ConnInfo {
        let mut params = BTreeMap::new();
        params.insert("host".to_string(), host.to_string());
        params.insert("port".to_string(), port.to_string());
        params.insert("user".to_string(), user.to_string());
        params.insert("dbname".to_string(), dbname.to_string());
        ConnInfo {
            params,
            form: Form::Url,
        }
    }

    fn validate(&self) -> Result<(), ConnInfoError> {
        if let Some(ports) = self.get("port") {
            for port in ports.split(',') {
                if port.is_empty() {
                    continue;
                }
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => {}
                    _ => {
                        return Err(ConnInfoError::InvalidPort { no_userinfo: false });
                    }
                }
            }
        }
        if let Some(mode) = self.get("sslmode") {
            SslMode::parse(mode)?;
        }
        // Numbers libpq reads with atoi-like strictness; tend hands some to its own driver.
        for key in [
            "connect_timeout",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "tcp_user_timeout",
        ] {
            if let Some(value) = self.get(key)
                && !value.is_empty()
                && value.trim().parse::<u32>().is_err()
            {
                return Err(ConnInfoError::InvalidValue {
                    key: LIBPQ_KEYS
                        .iter()
                        .find(|k| **k == key)
                        .expect("listed keywords are libpq's"),
                    expected: "a whole number",
                });
            }
        }
        if let Some(attrs) = self.get("target_session_attrs")
            && !matches!(
                attrs,
                "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby"
            )
        {
            return Err(ConnInfoError::InvalidValue {
                key: "target_session_attrs",
                expected: "any, read-write, read-only, primary, standby or prefer-standby",
            });
        }
        Ok(())
    }

    /// A keyword's value as given, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// Sets a keyword, replacing any earlier value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.params.insert(key.to_string(), value.into());
    }

    /// Removes a keyword.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.params.remove(key)
    }

    /// Every keyword and value, secrets included: only for handing to a driver.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }

    pub fn password(&self) -> Option<&str> {
        self.get("password")
    }

    pub fn dbname(&self) -> Option<&str> {
        self.get("dbname")
    }

    /// Returns a copy pointing at another database on the same server.
    pub fn with_dbname(&self, dbname: &str) -> ConnInfo {
        let mut copy = self.clone();
        copy.set("dbname", dbname);
        copy
    }

    /// The hosts, in order (libpq allows a comma-separated list).
    pub fn hosts(&self) -> Vec<Host> {
        self.get("host")
            .map(|h| {
                h.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.starts_with('/') || s.starts_with('@') {
                            Host::Socket(PathBuf::from(s))
                        } else {
                            Host::Tcp(s.to_string())
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ports, in order; empty when none is given.
    pub fn ports(&self) -> Vec<u16> {
        self.get("port")
            .map(|p| p.split(',').filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The sslmode as given, or libpq's default (`prefer`).
    pub fn ssl_mode(&self) -> SslMode {
        self.get("sslmode")
            .and_then(|m| SslMode::parse(m).ok())
            .unwrap_or(SslMode::Prefer)
    }

    /// Does this string carry any secret (a password)?
    pub fn has_secret(&self) -> bool {
        SECRET_KEYS.iter().any(|k| self.params.contains_key(*k))
    }

    /// The secrets in this string, so an output layer can mask them wherever they appear.
    pub fn secrets(&self) -> Vec<String> {
        SECRET_KEYS
            .iter()
            .filter_map(|k| self.get(k))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A display with every secret masked: the only way a connection string reaches a human.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted {
            info: self,
            reveal: false,
        }
    }

    /// The full string, password included, for handing to a child process such as psql or
    /// pg_dump. Never print it.
    pub fn to_secret_string(&self) -> String {
        Redacted {
            info: self,
            reveal: true,
        }
        .to_string()
    }

    /// How to hand this connection to a libpq program (pg_dump, pg_restore, psql): a
    /// connection string without the password, which goes to `PGPASSWORD` instead (a
    /// command line is visible to every user through `ps`), and without the keys only
    /// Prisma's URLs carry, which libpq rejects. `application_name` defaults to tend's.
    pub fn for_child_program(&self) -> (String, Vec<(String, String)>) {
        let mut plain = self.clone();
        let password = plain.remove("password");
        for key in PRISMA_ONLY_KEYS {
            plain.remove(key);
        }
        if plain.get("application_name").is_none() {
            plain.set("application_name", crate::connect::APPLICATION_NAME);
        }
        let env = password
            .map(|p| vec![("PGPASSWORD".to_string(), p)])
            .unwrap_or_default();
        (plain.to_secret_string(), env)
    }

    /// "host:port" of the first address, for messages.
    pub fn target(&self) -> String {
        let host = self
            .hosts()
            .first()
            .map(Host::to_string)
            .unwrap_or_else(|| "the default socket".to_string());
        let port = self.ports().first().copied().unwrap_or(5432);
        if host.contains(':') && !host.starts_with('/') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({})", self.redacted())
    }
}

/// The redacting display of a [`ConnInfo`].
pub struct Redacted<'a> {
    info: &'a ConnInfo,
    reveal: bool,
}

/// Characters the written URL escapes: everything outside RFC 3986's unreserved set. The
/// parser (like libpq) splits on `@ : / ? & = , [ ]` before percent-decoding, trims
/// whitespace and reads `%` as an escape, so anything narrower can write a URL that parses
/// back differently (found by fuzzing: a host holding `/`, `:` and control characters).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Inside an IPv6 literal's brackets the `:` stays as it is, for readability.
const IPV6_LITERAL: &AsciiSet = &COMPONENT.remove(b':');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// libpq's whitespace in a `key=value` string: C's `isspace` in the C locale.
fn is_libpq_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// The host and port lists as a URL's authority carries them (`h1:p1,h2:p2`), or `None`
/// when only the query string can hold them exactly: socket directories, empty items, or a
/// port list that does not pair with the hosts. `Some(vec![])` means nothing to write.
fn authority_hosts(info: &ConnInfo) -> Option<Vec<(Option<&str>, Option<&str>)>> {
    let host = info.get("host");
    let port = info.get("port");
    let ports: Option<Vec<&str>> = port.map(|p| p.split(',').collect());
    if let Some(ports) = &ports
        && ports.iter().all(|p| p.is_empty())
    {
        // The parser keeps no port list that is all empty items.
        return None;
    }
    match (host, ports) {
        (None, None) => Some(Vec::new()),
        (None, Some(ports)) => (ports.len() == 1).then(|| vec![(None, Some(ports[0]))]),
        (Some(host), ports) => {
            let hosts: Vec<&str> = host.split(',').collect();
            if hosts
                .iter()
                .any(|h| h.is_empty() || h.starts_with('/') || h.starts_with('@'))
            {
                return None;
            }
            match ports {
                None => Some(hosts.into_iter().map(|h| (Some(h), None)).collect()),
                Some(ports) if ports.len() == hosts.len() => Some(
                    hosts
                        .into_iter()
                        .zip(ports)
                        .map(|(h, p)| (Some(h), (!p.is_empty()).then_some(p)))
                        .collect(),
                ),
                Some(_) => None,
            }
        }
    }
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info;
        let masked = |key: &str| !self.reveal && SECRET_KEYS.contains(&key);
        match info.form {
            Form::KeyValue => {
                let mut first = true;
                for (key, value) in &info.params {
                    if !first {
                        f.write_str(" ")?;
                    }
                    first = false;
                    let value = if masked(key) { MASK } else { value.as_str() };
                    // Quoting is always safe; it is needed for whatever the parser would
                    // otherwise split on, trim or read as an escape.
                    if value.is_empty()
                        || value.contains(|c: char| {
                            c.is_whitespace() || c.is_control() || c == '\'' || c == '\\'
                        })
                    {
                        let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
                        write!(f, "{key}='{escaped}'")?;
                    } else {
                        write!(f, "{key}={value}")?;
                    }
                }
                Ok(())
            }
            Form::Url => {
                f.write_str("postgresql://")?;
                // Whatever the authority cannot carry exactly goes to the query string, so
                // the full string parses back to the same keywords and values.
                let mut in_authority: Vec<&str> = Vec::new();
                // A password without a user name (`postgresql://:pw@host`) is kept too; an
                // empty user name would be read as none, so it goes to the query.
                let user = info.get("user").filter(|u| !u.is_empty());
                let password = info.get("password");
                if user.is_some() || password.is_some() {
                    if let Some(user) = user {
                        f.write_str(&enc(user))?;
                        in_authority.push("user");
                    }
                    if let Some(password) = password {
                        f.write_str(":")?;
                        if masked("password") {
                            f.write_str(MASK)?;
                        } else {
                            f.write_str(&enc(password))?;
                        }
                        in_authority.push("password");
                    }
                    f.write_str("@")?;
                }
                if let Some(hosts) = authority_hosts(info) {
                    for (i, (host, port)) in hosts.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        match host {
                            Some(name) if name.contains(':') => {
                                write!(f, "[{}]", utf8_percent_encode(name, IPV6_LITERAL))?
                            }
                            Some(name) => f.write_str(&enc(name))?,
                            None => {}
                        }
                        if let Some(port) = port {
                            write!(f, ":{port}")?;
                        }
                    }
                    in_authority.extend(["host", "port"]);
                }
                if let Some(db) = info.get("dbname").filter(|d| !d.is_empty()) {
                    write!(f, "/{}", enc(db))?;
                    in_authority.push("dbname");
                }
                let mut sep = '?';
                for (key, value) in &info.params {
                    if in_authority.contains(&key.as_str()) {
                        continue;
                    }
                    f.write_str(&format!("{sep}{}=", enc(key)))?;
                    if masked(key) {
                        f.write_str(MASK)?;
                    } else {
                        f.write_str(&enc(value))?;
                    }
                    sep = '&';
                }
                Ok(())
            }
        }
    }
}

/// Percent-decodes one part of a URL. As libpq, a decoded NUL (`%00`) is refused: no C
/// program could be handed it.
fn decode(s: &str, what: &'static str) -> Result<String, ConnInfoError> {
    let decoded = percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ConnInfoError::MalformedUrl { reason: what })?;
    if decoded.contains('\0') {
        return Err(ConnInfoError::NulCharacter);
    }
    Ok(decoded)
}

/// Checks a keyword as libpq would, counting parameters from 1 in the order written.
fn check_key(key: &str, position: usize, in_query: bool) -> Result<(), ConnInfoError> {
    if is_known_key(key) {
        return Ok(());
    }
    let nearest = LIBPQ_KEYS
        .iter()
        .chain(PRISMA_ONLY_KEYS)
        .map(|k| (*k, strsim::damerau_levenshtein(key, k)))
        .filter(|(k, d)| *d <= 2 && *d < k.len())
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k);
    Err(ConnInfoError::UnknownParameter {
        position,
        in_query,
        nearest,
    })
}

fn parse_url(scheme: &str, rest: &str) -> Result<ConnInfo, ConnInfoError> {
    if scheme != "postgresql" && scheme != "postgres" {
        let lower = scheme.to_ascii_lowercase();
        return Err(ConnInfoError::UnknownScheme {
            known: KNOWN_SCHEMES.iter().find(|k| **k == lower).copied(),
        });
    }
    let mut params = BTreeMap::new();
    let (before_query, query) = match rest.find('?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    // The authority ends at the first '/' after the last '@' (a password may hold '/' only
    // percent-encoded, as in libpq, but we accept a raw '@' in it by splitting on the last).
    let (userinfo, after_user) = match before_query.rfind('@') {
        Some(i) => (Some(&before_query[..i]), &before_query[i + 1..]),
        None => (None, before_query),
    };
    let (hostspec, path) = match after_user.find('/') {
        Some(i) => (&after_user[..i], Some(&after_user[i + 1..])),
        None => (after_user, None),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.find(':') {
            Some(i) => (&userinfo[..i], Some(&userinfo[i + 1..])),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            params.insert(
                "user".to_string(),
                decode(
                    user,
                    "the user name is not valid UTF-8 after percent-decoding",
                )?,
            );
        }
        if let Some(password) = password {
            params.insert(
                "password".to_string(),
                decode(
                    password,
                    "the password is not valid UTF-8 after percent-decoding",
                )?,
            );
        }
    }
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostspec.split(',') {
            let (host, port) = if let Some(stripped) = spec.strip_prefix('[') {
                let end = stripped.find(']').ok_or(ConnInfoError::MalformedUrl {
                    reason: "an IPv6 address in the host part is missing its closing `]`",
                })?;
                let host = &stripped[..end];
                if !host.contains(':') || host.contains('[') {
                    return Err(ConnInfoError::MalformedUrl {
                        reason: "the brackets in the host part hold something other than an IPv6 address",
                    });
                }
                let after = &stripped[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => {
                        return Err(ConnInfoError::MalformedUrl {
                            reason: "an IPv6 address in the host part is followed by text that is not `:port`",
                        });
                    }
                };
                // libpq percent-decodes the whole host list, bracketed addresses included
                // (`[fe80::1%25eth0]`).
                let host = decode(
                    host,
                    "an IPv6 address in the host part is not valid UTF-8 after percent-decoding",
                )?;
                (host, port)
            } else {
                const HOST: &str = "the host is not valid UTF-8 after percent-decoding";
                let (host, port) = match spec.rfind(':') {
                    Some(i) => (decode(&spec[..i], HOST)?, Some(&spec[i + 1..])),
                    None => (decode(spec, HOST)?, None),
                };
                // Brackets belong around an IPv6 address only; elsewhere a host holds them
                // percent-encoded (as the display writes them).
                if spec.contains(['[', ']']) {
                    return Err(ConnInfoError::MalformedUrl {
                        reason: "a host name holds `[` or `]` outside an IPv6 address's brackets",
                    });
                }
                (host, port)
            };
            if let Some(port) = port
                && !port.is_empty()
                && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
            {
                return Err(ConnInfoError::InvalidPort {
                    no_userinfo: userinfo.is_none(),
                });
            }
            hosts.push(host);
            ports.push(port.unwrap_or("").to_string());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            params.insert("host".to_string(), hosts.join(","));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            params.insert("port".to_string(), ports.join(","));
        }
    }
    if let Some(path) = path
        && !path.is_empty()
    {
        params.insert(
            "dbname".to_string(),
            decode(
                path,
                "the database name is not valid UTF-8 after percent-decoding",
            )?,
        );
    }
    if let Some(query) = query {
        for (index, pair) in query.split('&').filter(|p| !p.is_empty()).enumerate() {
            let (key, value) = pair.split_once('=').ok_or(ConnInfoError::MalformedUrl {
                reason: "a query parameter after `?` has no `=value`",
            })?;
            let key = decode(
                key,
                "a query parameter's name is not valid UTF-8 after percent-decoding",
            )?;
            let value = decode(
                value,
                "a query parameter's value is not valid UTF-8 after percent-decoding",
            )?;
            // JDBC-style `ssl=true`, which libpq also accepts.
            if key == "ssl" {
                if value == "true" {
                    params.insert("sslmode".to_string(), "require".to_string());
                }
                continue;
            }
            check_key(&key, index + 1, true)?;
            params.insert(key, value);
        }
    }
    Ok(ConnInfo {
        params,
        form: Form::Url,
    })
}

fn parse_key_value(input: &str) -> Result<ConnInfo, ConnInfoError> {
    let mut params = BTreeMap::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut count = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && is_libpq_space(chars[*i]) {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !is_libpq_space(chars[i]) && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_ws(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(ConnInfoError::MalformedKeyValue {
                position: start + 1,
                reason: "expected `key=value` (a URL must start with postgresql://)",
            });
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            let mut closed = false;
            while i < chars.len() {
                match chars[i] {
                    '\\' if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    '\'' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(ConnInfoError::MalformedKeyValue {
                    position: start + 1,
                    reason: "the quoted value of this parameter is missing its closing quote",
                });
            }
        } else {
            while i < chars.len() && !is_libpq_space(chars[i]) {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    value.push(chars[i + 1]);
                    i += 2;
                } else {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        if key.is_empty() {
            return Err(ConnInfoError::MalformedKeyValue {
                position: start + 1,
                reason: "a value has no key before its `=`",
            });
        }
        count += 1;
        check_key(&key, count, false)?;
        params.insert(key, value);
    }
    Ok(ConnInfo {
        params,
        form: Form::KeyValue,
    })
}

/// Every part of a connection string that may be a secret, whether or not the string
/// parses, in each spelling it may be shown in (as written, percent-decoded, unquoted), so an
/// output layer can mask them. A malformed string can hide its password anywhere a parser
/// would look for a port or a database name, so this reads loosely on purpose.
pub fn secret_candidates(input: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |value: &str| {
        for v in [
            value.to_string(),
            percent_decode_str(value).decode_utf8_lossy().into_owned(),
            enc(value),
        ] {
            if !v.is_empty() && !out.contains(&v) {
                out.push(v);
            }
        }
    };
    if let Ok(info) = ConnInfo::parse(input) {
        for secret in info.secrets() {
            add(&secret);
        }
    }
    if let Some(i) = input.find("://") {
        let rest = &input[i + 3..];
        match rest.rfind('@') {
            Some(at) => {
                if let Some(colon) = rest[..at].find(':') {
                    add(&rest[colon + 1..at]);
                }
            }
            None => {
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                for spec in rest[..end].split(',') {
                    if spec.starts_with('[') {
                        continue;
                    }
                    if let Some((_, after)) = spec.split_once(':')
                        && !after.bytes().all(|b| b.is_ascii_digit())
                    {
                        add(after);
                        // The password may run on past a `/`, `?` or `#`.
                        if let Some(colon) = rest.find(':') {
                            add(&rest[colon + 1..]);
                        }
                    }
                }
            }
        }
        if let Some(q) = rest.find('?') {
            for pair in rest[q + 1..].split('&') {
                if let Some((key, value)) = pair.split_once('=')
                    && is_secret_key(&percent_decode_str(key).decode_utf8_lossy())
                {
                    add(value);
                }
            }
        }
    }
    // key=value spellings, quoted or not, anywhere in the text.
    let lower = input.to_ascii_lowercase();
    let bytes = input.as_bytes();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(key) {
            let start = from + found;
            from = start + key.len();
            let mut j = from;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) != Some(&b'=') {
                continue;
            }
            j += 1;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            let value = match bytes.get(j) {
                Some(b'\'') | Some(b'"') => {
                    let quote = bytes[j];
                    let mut k = j + 1;
                    let mut unescaped = String::new();
                    while k < bytes.len() && bytes[k] != quote {
                        if bytes[k] == b'\\' && k + 1 < bytes.len() {
                            k += 1;
                        }
                        k += 1;
                    }
                    let raw = &input[j + 1..k.min(input.len())];
                    let mut chars = raw.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' {
                            if let Some(n) = chars.next() {
                                unescaped.push(n);
                            }
                        } else {
                            unescaped.push(c);
                        }
                    }
                    add(&unescaped);
                    // And the whole token, in case the quotes were the password's own.
                    let token_end = input[j..]
                        .find(is_libpq_space)
                        .map(|k| j + k)
                        .unwrap_or(input.len());
                    add(&input[j..token_end]);
                    raw.to_string()
                }
                _ => {
                    // Up to whitespace (key=value), and up to `&` (a URL's query). The
                    // parser ends a value at libpq's ASCII whitespace only; text elsewhere
                    // may end it at any whitespace: both spellings are candidates.
                    let end = input[j..]
                        .find(is_libpq_space)
                        .map(|k| j + k)
                        .unwrap_or(input.len());
                    if let Some(short) = input[j..end].find(char::is_whitespace) {
                        add(&input[j..j + short]);
                    }
                    if let Some(amp) = input[j..end].find('&') {
                        add(&input[j..j + amp]);
                    }
                    input[j..end].to_string()
                }
            };
            add(&value);
        }
    }
    // The pieces of each, in case a malformed string's parse shows one as a host, a port
    // or a database name; short pieces and keywords would mask ordinary words.
    let mut pieces = Vec::new();
    for candidate in &out {
        for piece in candidate.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-') {
            if piece.chars().count() >= 4
                && !is_known_key(piece)
                && !matches!(piece, "postgres" | "postgresql" | "localhost")
                && !out.iter().any(|o| o == piece)
                && !pieces.iter().any(|p: &String| p == piece)
            {
                pieces.push(piece.to_string());
            }
        }
    }
    out.extend(pieces);
    out
}

/// Free text with every URL password, `password=` assignment and each of `secrets` masked:
/// what the binary's one output surface applies to every line.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = redact_text(text);
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// Masks secrets in free text: passwords inside any `scheme://user:password@host` URL and
/// `password=...` / `PGPASSWORD=...` assignments. The last line of defence for messages that
/// come from elsewhere (a child process's stderr, a driver error).
pub fn redact_text(text: &str) -> String {
    let text = redact_urls(text);
    redact_assignments(&text)
}

fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The URL's authority runs to the next whitespace or quote; the userinfo ends at its
        // last '@'.
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
            .unwrap_or(tail.len());
        let candidate = &tail[..end];
        let slash = candidate.find(['/', '?']).unwrap_or(candidate.len());
        let at = candidate.rfind('@').filter(|&at| {
            // An '@' after the path start belongs to the path, unless there is none before.
            at < slash || !candidate[..slash].contains('@')
        });
        match at {
            Some(at) => {
                let userinfo = &candidate[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push('@');
                let after = &tail[at + 1..];
                rest = after;
            }
            None => {
                // No `@`: `scheme://user:secret` with the host left out still shows its
                // secret where a port would be. Anything after a `:` that is not a port
                // number is masked.
                let authority = &candidate[..slash];
                let masked = !authority.starts_with('[')
                    && authority.split(',').any(|spec| {
                        spec.split_once(':')
                            .is_some_and(|(_, after)| !after.bytes().all(|b| b.is_ascii_digit()))
                    });
                if masked {
                    let colon = authority.find(':').expect("a `:` was found");
                    out.push_str(&authority[..colon]);
                    out.push(':');
                    out.push_str(MASK);
                    rest = &tail[slash..];
                } else {
                    rest = tail;
                }
            }
        }
    }
    out.push_str(rest);
    out
}

fn redact_assignments(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let hit = [
            "sslpassword",
            "password",
            "pgpassword",
            "oauth_client_secret",
            "scram_client_key",
            "scram_server_key",
        ]
        .iter()
        .filter_map(|k| {
            let idx = lower[i..].find(k)?;
            Some((i + idx, k.len()))
        })
        .min_by_key(|(idx, len)| (*idx, usize::MAX - len));
        let Some((idx, len)) = hit else { break };
        let mut j = idx + len;
        while j < text.len() && bytes[j] == b' ' {
            j += 1;
        }
        let is_assignment = j < text.len() && (bytes[j] == b'=' || bytes[j] == b':');
        // Only `key=` or `key:` directly after a word boundary counts.
        let boundary = idx == 0 || !bytes[idx - 1].is_ascii_alphanumeric();
        if !(is_assignment && boundary) || (bytes[j] == b':' && text[j..].starts_with("://")) {
            out.push_str(&text[i..idx + len]);
            i = idx + len;
            continue;
        }
        j += 1;
        while j < text.len() && bytes[j] == b' ' {
            j += 1;
        }
        out.push_str(&text[i..j]);
        // The value: quoted, or up to whitespace/separator.
        let (value_end, quoted) = match bytes.get(j) {
            Some(b'\'') | Some(b'"') => {
                let q = bytes[j];
                let mut k = j + 1;
                while k < text.len() && bytes[k] != q {
                    if bytes[k] == b'\\' {
                        k += 1;
                    }
                    k += 1;
                }
                (k.min(text.len()), Some(q))
            }
            _ => {
                let k = text[j..]
                    .find(|c: char| c.is_whitespace() || ",;&\"'}".contains(c))
                    .map(|k| j + k)
                    .unwrap_or(text.len());
                (k, None)
            }
        };
        if let Some(q) = quoted {
            out.push(q as char);
            out.push_str(MASK);
            out.push(q as char);
            i = (value_end + 1).min(text.len());
        } else {
            if value_end > j {
                out.push_str(MASK);
            }
            i = value_end;
        }
    }
    if i < text.len() {
        out.push_str(&text[i..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_a_full_url() {
        let c = ConnInfo::parse("postgres://app:s3cr%40t@db.example.com:6543/prod?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(c.user(), Some("app"));
        assert_eq!(c.password(), Some("s3cr@t"));
        assert_eq!(c.hosts(), vec![Host::Tcp("db.example.com".into())]);
        assert_eq!(c.ports(), vec![6543]);
        assert_eq!(c.dbname(), Some("prod"));
        assert_eq!(c.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(c.get("sslrootcert"), Some("/etc/ca.pem"));
    }

    #[test]
    fn parses_socket_hosts_in_url_and_query() {
        let c = ConnInfo::parse("postgresql://%2Fvar%2Frun%2Fpostgresql/app").unwrap();
        assert_eq!(c.hosts(), vec![Host::Socket("/var/run/postgresql".into())]);
        let c = ConnInfo::parse("postgresql:///app?host=/tmp/sock&port=5433").unwrap();
        assert_eq!(c.hosts(), vec![Host::Socket("/tmp/sock".into())]);
        assert_eq!(c.ports(), vec![5433]);
        assert_eq!(c.dbname(), Some("app"));
    }

    #[test]
    fn parses_multiple_hosts_and_ipv6() {
        let c = ConnInfo::parse("postgresql://u@[::1]:5432,db2:5433/x").unwrap();
        assert_eq!(
            c.hosts(),
            vec![Host::Tcp("::1".into()), Host::Tcp("db2".into())]
        );
        assert_eq!(c.ports(), vec![5432, 5433]);
        assert_eq!(
            c.redacted().to_string(),
            "postgresql://u@[::1]:5432,db2:5433/x"
        );
    }

    #[test]
    fn parses_key_value_strings_with_quotes() {
        let c = ConnInfo::parse(r"host=/tmp port=5432 user=me password='it''s' dbname = 'my db'")
            .unwrap_err();
        assert!(matches!(c, ConnInfoError::MalformedKeyValue { .. }));
        let c = ConnInfo::parse(r"host=/tmp port=5432 user=me password='it\'s x' dbname = 'my db'")
            .unwrap();
        assert_eq!(c.password(), Some("it's x"));
        assert_eq!(c.dbname(), Some("my db"));
        assert_eq!(
            c.redacted().to_string(),
            "dbname='my db' host=/tmp password=******** port=5432 user=me"
        );
    }

    #[test]
    fn rejects_bad_input_without_echoing_it() {
        let e = ConnInfo::parse("mysql://root:hunter22@x/y").unwrap_err();
        assert!(!e.to_string().contains("hunter22"));
        let e = ConnInfo::parse("postgres://u:hunter22@x:99999/y").unwrap_err();
        assert!(matches!(e, ConnInfoError::InvalidPort { .. }));
        assert!(!e.to_string().contains("hunter22"));
        let e = ConnInfo::parse("postgres://u@x/y?password").unwrap_err();
        assert!(!e.to_string().contains("password"));
        let e = ConnInfo::parse("postgres://u@x/y?sslmode=sometimes").unwrap_err();
        assert!(matches!(e, ConnInfoError::InvalidSslMode));
        assert!(ConnInfo::parse("   ").is_err());
        // Found by fuzzing: brackets around anything but an IPv6 address, or a bracket
        // outside them, cannot be written back.
        for url in [
            "postgresql://]]::",
            "postgresql://[x[y]",
            "postgresql://[]/d",
        ] {
            assert!(
                matches!(
                    ConnInfo::parse(url),
                    Err(ConnInfoError::MalformedUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn url_redaction_masks_the_password_and_keeps_the_rest() {
        let c = ConnInfo::parse("postgresql://app:pw@h:1/d?sslmode=require&application_name=x")
            .unwrap();
        assert_eq!(
            c.redacted().to_string(),
            "postgresql://app:********@h:1/d?application_name=x&sslmode=require"
        );
        assert_eq!(
            c.to_secret_string(),
            "postgresql://app:pw@h:1/d?application_name=x&sslmode=require"
        );
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn a_password_without_a_user_survives_the_full_string() {
        for url in ["postgresql://:pw@h/d", "postgresql://:@h/d"] {
            let info = ConnInfo::parse(url).unwrap();
            let back = ConnInfo::parse(&info.to_secret_string()).unwrap();
            assert_eq!(back.password(), info.password(), "{url}");
            assert!(!info.redacted().to_string().contains("pw"));
        }
    }

    #[test]
    fn ssl_true_means_require() {
        let c = ConnInfo::parse("postgres://h/d?ssl=true").unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Require);
    }

    #[test]
    fn text_redaction_covers_urls_and_assignments() {
        let cases = [
            (
                "could not connect to postgres://u:p4ss@host/db: refused",
                "could not connect to postgres://u:********@host/db: refused",
            ),
            (
                "url=\"postgresql://a:b@c\"",
                "url=\"postgresql://a:********@c\"",
            ),
            ("password=hunter2 host=x", "password=******** host=x"),
            ("PGPASSWORD='x y z' psql", "PGPASSWORD='********' psql"),
            ("password: secret", "password: ********"),
            ("no secrets here", "no secrets here"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "password authentication failed",
                "password authentication failed",
            ),
            ("https://example.com/a@b", "https://example.com/a@b"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(input), want, "input: {input}");
        }
    }

    #[test]
    fn unknown_parameters_are_refused_as_libpq_refuses_them() {
        let e = ConnInfo::parse("postgres://u@h/d?sslmode=require&conect_timeout=5").unwrap_err();
        assert_eq!(
            e,
            ConnInfoError::UnknownParameter {
                position: 2,
                in_query: true,
                nearest: Some("connect_timeout")
            }
        );
        let e = ConnInfo::parse("host=h dbname=d bogus=1").unwrap_err();
        assert!(matches!(
            e,
            ConnInfoError::UnknownParameter { position: 3, .. }
        ));
        // libpq's own keywords, and what Prisma's URLs carry, are accepted.
        ConnInfo::parse(
            "postgresql://u@h/d?schema=public&connection_limit=5&pool_timeout=10&pgbouncer=true\
             &sslaccept=strict&socket_timeout=5&statement_cache_size=0&sslcertmode=allow\
             &load_balance_hosts=random&keepalives_idle=30&require_auth=scram-sha-256",
        )
        .unwrap();
        let e = ConnInfo::parse("postgres://u@h/d?connect_timeout=soon").unwrap_err();
        assert!(matches!(
            e,
            ConnInfoError::InvalidValue {
                key: "connect_timeout",
                ..
            }
        ));
    }

    #[test]
    fn a_password_without_a_host_is_not_shown_as_a_port() {
        let e = ConnInfo::parse("postgres://app:S3cret").unwrap_err();
        assert_eq!(e, ConnInfoError::InvalidPort { no_userinfo: true });
        assert!(!e.to_string().contains("S3cret"));
        assert_eq!(
            redact_text("postgres://app:S3cret and more"),
            "postgres://app:******** and more"
        );
        assert!(secret_candidates("postgres://app:S3cret").contains(&"S3cret".to_string()));
    }

    /// The open finding of docs/fuzzing.md: a host part holding control characters, a
    /// percent-encoded `/` and `=`, and raw `:` wrote a full string that did not parse back.
    #[test]
    fn a_host_with_control_characters_and_encoded_separators_round_trips() {
        let bytes = b"\x01\x00\x25\x32\x46\x00\x00\x00\x00\x00\x0b\xbb\x08\x3a\x00\x0a\x00\x3d\x3a";
        let found = format!("postgresql://{}", String::from_utf8_lossy(bytes));
        // As found, it holds NUL characters, which libpq refuses (raw or as %00).
        assert_eq!(ConnInfo::parse(&found), Err(ConnInfoError::NulCharacter));
        assert_eq!(
            ConnInfo::parse("postgresql://h%00st/d"),
            Err(ConnInfoError::NulCharacter)
        );
        assert_eq!(
            ConnInfo::parse("host=h password='a\0b'"),
            Err(ConnInfoError::NulCharacter)
        );
        // The same shape without NULs parses, and its full string parses back to it.
        let without_nul = found.replace('\0', "\u{7}");
        let info = ConnInfo::parse(&without_nul).unwrap();
        assert!(info.get("host").unwrap().contains("/"));
        let full = info.to_secret_string();
        assert!(
            full.is_ascii() && !full.contains(|c: char| c.is_control()),
            "{full}"
        );
        assert_eq!(ConnInfo::parse(&full), Ok(info.clone()));
        let (child, _) = info.for_child_program();
        assert!(ConnInfo::parse(&child).is_ok());
    }

    #[test]
    fn hosts_and_ports_the_authority_cannot_carry_go_to_the_query() {
        for (url, written) in [
            // A port on the second host only: the first keeps the default.
            ("postgresql://h1,h2:5433/d", "postgresql://h1,h2:5433/d"),
            // One port for two hosts (libpq applies it to both), written exactly.
            (
                "postgresql:///d?host=h1,h2&port=5433",
                "postgresql:///d?host=h1%2Ch2&port=5433",
            ),
            // An empty host item (the default socket) and a socket directory.
            ("postgresql://,h2/d", "postgresql:///d?host=%2Ch2"),
            (
                "postgresql:///d?host=/tmp,h2&port=1,2",
                "postgresql:///d?host=%2Ftmp%2Ch2&port=1%2C2",
            ),
            // An IPv6 address with a zone, percent-decoded as libpq does.
            (
                "postgresql://[fe80::1%25eth0]:5432/d",
                "postgresql://[fe80::1%25eth0]:5432/d",
            ),
            // A host name holding `:` that is not in brackets.
            ("postgresql://a%3Ab:7/d", "postgresql://[a:b]:7/d"),
            // An empty user name and database name, which the authority reads as none.
            (
                "postgresql://h/?user=&dbname=",
                "postgresql://h?dbname=&user=",
            ),
        ] {
            let info = ConnInfo::parse(url).unwrap();
            assert_eq!(info.to_secret_string(), written, "{url}");
            assert_eq!(ConnInfo::parse(written), Ok(info), "{url}");
        }
    }

    #[test]
    fn a_password_running_past_a_no_break_space_is_masked_whole() {
        // Malformed (an unknown keyword), so only the loose reading sees the password.
        let input = "host=h password=Secr\u{a0}etTail bogus=1";
        assert!(ConnInfo::parse(input).is_err());
        let printed = scrub(input, &secret_candidates(input));
        assert!(
            !printed.contains("Secr") && !printed.contains("etTail"),
            "{printed}"
        );
    }

    #[test]
    fn key_value_strings_split_on_libpq_whitespace_only() {
        // libpq's isspace: a no-break space is part of the value; a tab separates.
        let info = ConnInfo::parse("host=h password=a\u{a0}b\tdbname=d").unwrap();
        assert_eq!(info.password(), Some("a\u{a0}b"));
        assert_eq!(info.dbname(), Some("d"));
        let info = ConnInfo::parse("host=h password='a\tb\u{2028}'").unwrap();
        assert_eq!(info.password(), Some("a\tb\u{2028}"));
        assert_eq!(ConnInfo::parse(&info.to_secret_string()), Ok(info));
    }

    /// The shapes a password meets in a malformed or odd connection string.
    fn shapes(password: &str) -> Vec<String> {
        let e = enc(password);
        let p = password;
        // With no `@` after it, a raw `@` in a password makes a well-formed URL whose host is
        // the rest: nothing can tell it from a real host.
        let bare = if p.contains('@') { e.as_str() } else { p };
        [
            format!("postgres://app:{bare}"),
            format!("postgres://app:{e}"),
            format!("postgres://app:{p}@"),
            format!("postgres://app:{p}@host"),
            format!("postgres://app:{p}@host:badport/db"),
            format!("postgres://app:{p}@host:99999/db"),
            format!("postgres://app:{p}@[::1/db"),
            format!("postgres://app:{p}@[::1]x/db"),
            format!("postgresql://app:{e}@[::1]:5432/db"),
            format!("postgres://app:{p}@host/db?sslmode=bogus"),
            format!("postgres://app:{p}@host/db?unknown=1"),
            format!("postgres://app:{p}@host/db?sslmode"),
            format!("postgres://app:{e}@host/db?password={e}"),
            format!("postgres://app@host/db?password={e}&x"),
            format!("postgres://app:{e}%ZZ@host/db"),
            format!("postgres://app:{e}%C3%28@host/db"),
            format!("mysql://app:{p}@host/db"),
            format!("host=h password={p} port=x"),
            format!("host=h password='{p}"),
            format!("host=h password = \"{p}\" port=1"),
            format!("host=h password={p} sslmode={p}"),
            format!("host=h password= {p} target_session_attrs={p}"),
            format!("password={p}"),
            format!(
                "password='{}' bogus=1",
                p.replace('\\', "\\\\").replace('\'', "\\'")
            ),
        ]
        .into()
    }

    proptest! {
        #[test]
        fn no_part_of_a_password_survives_parse_errors_redaction_or_scrubbing(
            password in "[A-Za-z][A-Za-z0-9]{3,8}[@:/?#%&='\\[\\]!$^*(){}|<>~-]?[A-Za-z0-9]{3,8}",
        ) {
            let fragments: Vec<&str> = password
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|f| f.len() >= 4)
                .chain(std::iter::once(password.as_str()))
                .collect();
            for input in shapes(&password) {
                let secrets = secret_candidates(&input);
                let shown = match ConnInfo::parse(&input) {
                    Err(e) => e.to_string(),
                    Ok(info) => format!("{} {:?}", info.redacted(), info),
                };
                // What the output surface prints: the text scrubbed of the candidates.
                let printed = scrub(&format!("{shown} | {input}"), &secrets);
                for fragment in &fragments {
                    prop_assert!(
                        !printed.contains(fragment),
                        "input {input:?} printed {printed:?} holding {fragment:?}"
                    );
                }
                if let Err(e) = ConnInfo::parse(&input) {
                    // Where nothing marks the password as one, only the error is clean.
                    for unmarked in [format!("{password}://app@host/db"), format!("host=h {password}")] {
                        let error = ConnInfo::parse(&unmarked)
                            .map_err(|e| e.to_string())
                            .err()
                            .unwrap_or_default();
                        prop_assert!(!error.contains(&password));
                    }
                    // The error alone, before any scrubbing, holds no input.
                    for fragment in &fragments {
                        prop_assert!(!e.to_string().contains(fragment), "{input:?}: {e}");
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_parser_or_the_scrubber(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(info) = ConnInfo::parse(&text) {
                let _ = info.redacted().to_string();
                let _ = info.for_child_program();
                let _ = info.target();
            }
            let _ = scrub(&text, &secret_candidates(&text));
        }

        #[test]
        fn redacted_url_never_shows_the_password(
            user in "[a-z][a-z0-9_]{0,8}",
            password in "[A-Za-z0-9!#$%^&*()_+=:;,.~@/?\\[\\]{}|<>-]{8,24}",
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?",
            db in "[a-z][a-z0-9_]{0,8}",
        ) {
            let url = format!("postgresql://{}:{}@{}:5432/{}", user, enc(&password), host, db);
            let info = ConnInfo::parse(&url).unwrap();
            prop_assert_eq!(info.password(), Some(password.as_str()));
            let shown = info.redacted().to_string();
            prop_assert!(!shown.contains(&password));
            prop_assert!(!shown.contains(&enc(&password)));
            // The secret string parses back to the same thing.
            prop_assert_eq!(ConnInfo::parse(&info.to_secret_string()).unwrap(), info.clone());
            // Free text holding the URL, raw or encoded, is masked too.
            let text = format!("error: cannot reach {url} (timeout)");
            prop_assert!(!redact_text(&text).contains(&enc(&password)));
        }

        #[test]
        fn key_value_round_trips_and_redacts(
            password in "[ -~]{8,20}",
            db in "[a-z]{1,8}",
        ) {
            let escaped = password.replace('\\', "\\\\").replace('\'', "\\'");
            let kv = format!("host=localhost dbname={db} password='{escaped}'");
            let info = ConnInfo::parse(&kv).unwrap();
            prop_assert_eq!(info.password(), Some(password.as_str()));
            prop_assert!(!info.redacted().to_string().contains(&password));
            prop_assert_eq!(ConnInfo::parse(&info.to_secret_string()).unwrap(), info);
        }

        /// Whatever parses, in either form, round-trips through the full string handed to
        /// child programs: same hosts, ports, user, password, database and parameters.
        #[test]
        fn any_parsed_connection_string_round_trips_through_its_full_string(
            parts in proptest::collection::vec(prop_oneof![
                // The characters each parser splits on, escapes, trims or decodes.
                proptest::sample::select(vec![
                    "@", ":", "/", "?", "&", "=", ",", "[", "]", "%", "'", "\\", " ", "\t",
                    "\n", "\u{b}", "\u{a0}", "\u{7}", "#", "+", "*", "é", "%2F", "%3A", "%40",
                    "%2C", "%25", "%3D", "%5B", "%20", "%0A", "%C3%A9", "%ZZ", "::1", "5432",
                    "host=", "port=", "user=", "password=", "dbname=", "sslmode=require",
                    "application_name=", "?host=", "&port=", "/tmp", "[::1]", "h", "db",
                ]).prop_map(str::to_string),
                "[a-z0-9]{1,4}",
                "\\PC{1,3}",
            ], 0..16),
            url in any::<bool>(),
        ) {
            let body: String = parts.concat();
            let input = if url { format!("postgresql://{body}") } else { body };
            if let Ok(info) = ConnInfo::parse(&input) {
                let full = info.to_secret_string();
                let back = ConnInfo::parse(&full);
                prop_assert_eq!(&back, &Ok(info.clone()), "input {:?} wrote {:?}", input, full);
                let back = back.unwrap();
                prop_assert_eq!(back.hosts(), info.hosts());
                prop_assert_eq!(back.ports(), info.ports());
                let (child, _) = info.for_child_program();
                prop_assert!(ConnInfo::parse(&child).is_ok(), "{:?}", child);
            }
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,80}") {
            let _ = ConnInfo::parse(&input);
            let _ = redact_text(&input);
        }
    }
}
