//! Connection strings in both libpq forms (`postgres://` URLs and `key=value` lists), and the
//! one redacting display that every message, log line and JSON document uses.
//!
//! We parse the strings ourselves rather than through `tokio_postgres::Config` because tend
//! needs what that parser drops: `sslmode=verify-ca|verify-full`, `sslrootcert`, the original
//! form for display, and a display that can never show a password.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// What the redacted display shows in place of a secret.
pub const MASK: &str = "********";

/// Parameters Prisma's URLs carry for Prisma itself; libpq refuses them.
const PRISMA_ONLY_KEYS: &[&str] = &[
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
];

/// Keys whose values are secrets (libpq's `password` and `sslpassword`).
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

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

/// A connection string that could not be understood. Its display never holds the input,
/// which may carry a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnInfoError {
    #[error(
        "the connection string is empty; set DATABASE_URL or `database.url` to a URL such as postgresql://user@host:5432/dbname"
    )]
    Empty,
    #[error(
        "the connection URL has an unknown scheme `{scheme}`; it must start with postgresql:// or postgres://"
    )]
    UnknownScheme { scheme: String },
    #[error("the connection URL is malformed: {reason}")]
    MalformedUrl { reason: String },
    #[error("the connection string is malformed near `{near}`: {reason}")]
    MalformedKeyValue { near: String, reason: String },
    #[error(
        "the connection string has an invalid port `{port}`; a port is a number from 1 to 65535"
    )]
    InvalidPort { port: String },
    #[error(
        "the connection string has an unknown sslmode `{value}`; use disable, allow, prefer, require, verify-ca or verify-full"
    )]
    InvalidSslMode { value: String },
}

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
            other => {
                return Err(ConnInfoError::InvalidSslMode {
                    value: other.to_string(),
                });
            }
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
        let input = input.trim();
        if input.is_empty() {
            return Err(ConnInfoError::Empty);
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
                        return Err(ConnInfoError::InvalidPort {
                            port: port.to_string(),
                        });
                    }
                }
            }
        }
        if let Some(mode) = self.get("sslmode") {
            SslMode::parse(mode)?;
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

/// Characters a URL component must escape. Wider than strictly needed: a reader should see
/// an unambiguous URL.
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'&')
    .add(b'=')
    .add(b',')
    .add(b'\'')
    .add(b'+');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info;
        let secret = |key: &str, value: &str| -> String {
            if !self.reveal && SECRET_KEYS.contains(&key) {
                MASK.to_string()
            } else {
                value.to_string()
            }
        };
        match info.form {
            Form::KeyValue => {
                let mut first = true;
                for (key, value) in &info.params {
                    if !first {
                        f.write_str(" ")?;
                    }
                    first = false;
                    let value = secret(key, value);
                    if value.is_empty() || value.contains([' ', '\'', '\\']) {
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
                if let Some(user) = info.get("user") {
                    f.write_str(&enc(user))?;
                    if let Some(password) = info.get("password") {
                        write!(f, ":{}", enc(&secret("password", password)))?;
                    }
                    f.write_str("@")?;
                }
                // Socket directories go to the query string, where they read naturally.
                let hosts = info.hosts();
                let ports = info.ports();
                let tcp_only = hosts.iter().all(|h| matches!(h, Host::Tcp(_)));
                if tcp_only {
                    for (i, host) in hosts.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        let Host::Tcp(name) = host else {
                            unreachable!()
                        };
                        if name.contains(':') {
                            write!(f, "[{name}]")?;
                        } else {
                            f.write_str(&enc(name))?;
                        }
                        let port = ports.get(i).or(if ports.len() == 1 {
                            ports.first()
                        } else {
                            None
                        });
                        if let Some(port) = port {
                            write!(f, ":{port}")?;
                        }
                    }
                    if hosts.is_empty() && !ports.is_empty() {
                        write!(f, ":{}", ports[0])?;
                    }
                }
                if let Some(db) = info.get("dbname") {
                    write!(f, "/{}", enc(db))?;
                }
                let mut sep = '?';
                for (key, value) in &info.params {
                    let in_authority = matches!(key.as_str(), "user" | "password" | "dbname")
                        || (tcp_only && matches!(key.as_str(), "host" | "port"));
                    if in_authority {
                        continue;
                    }
                    write!(f, "{sep}{}={}", enc(key), enc(&secret(key, value)))?;
                    sep = '&';
                }
                Ok(())
            }
        }
    }
}

fn decode(s: &str, what: &str) -> Result<String, ConnInfoError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ConnInfoError::MalformedUrl {
            reason: format!("the {what} is not valid UTF-8 after percent-decoding"),
        })
}

fn parse_url(scheme: &str, rest: &str) -> Result<ConnInfo, ConnInfoError> {
    if scheme != "postgresql" && scheme != "postgres" {
        return Err(ConnInfoError::UnknownScheme {
            scheme: scheme.to_string(),
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
            params.insert("user".to_string(), decode(user, "user name")?);
        }
        if let Some(password) = password {
            params.insert("password".to_string(), decode(password, "password")?);
        }
    }
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for spec in hostspec.split(',') {
            let (host, port) = if let Some(stripped) = spec.strip_prefix('[') {
                let end = stripped
                    .find(']')
                    .ok_or_else(|| ConnInfoError::MalformedUrl {
                        reason: "an IPv6 address is missing its closing `]`".to_string(),
                    })?;
                let host = &stripped[..end];
                let after = &stripped[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => {
                        return Err(ConnInfoError::MalformedUrl {
                            reason: "unexpected text after an IPv6 address".to_string(),
                        });
                    }
                };
                (host.to_string(), port)
            } else {
                match spec.rfind(':') {
                    Some(i) => (decode(&spec[..i], "host")?, Some(&spec[i + 1..])),
                    None => (decode(spec, "host")?, None),
                }
            };
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
        params.insert("dbname".to_string(), decode(path, "database name")?);
    }
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| ConnInfoError::MalformedUrl {
                    reason: format!(
                        "the query parameter `{}` has no value",
                        redact_key_for_message(pair)
                    ),
                })?;
            let key = decode(key, "parameter name")?;
            let value = decode(value, "parameter value")?;
            // JDBC-style `ssl=true`, which libpq also accepts.
            if key == "ssl" {
                if value == "true" {
                    params.insert("sslmode".to_string(), "require".to_string());
                }
                continue;
            }
            params.insert(key, value);
        }
    }
    Ok(ConnInfo {
        params,
        form: Form::Url,
    })
}

fn redact_key_for_message(pair: &str) -> String {
    let lower = pair.to_ascii_lowercase();
    if SECRET_KEYS.iter().any(|k| lower.starts_with(k)) {
        MASK.to_string()
    } else {
        pair.chars().take(40).collect()
    }
}

fn parse_key_value(input: &str) -> Result<ConnInfo, ConnInfoError> {
    let mut params = BTreeMap::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_ws(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(ConnInfoError::MalformedKeyValue {
                near: redact_key_for_message(&key),
                reason: "expected `key=value` (a URL must start with postgresql://)".to_string(),
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
                    near: redact_key_for_message(&key),
                    reason: "a quoted value is missing its closing quote".to_string(),
                });
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
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
                near: "=".to_string(),
                reason: "a value has no key".to_string(),
            });
        }
        params.insert(key, value);
    }
    Ok(ConnInfo {
        params,
        form: Form::KeyValue,
    })
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
                rest = tail;
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
        let hit = ["sslpassword", "password", "pgpassword"]
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
        assert!(matches!(e, ConnInfoError::InvalidSslMode { .. }));
        assert!(ConnInfo::parse("   ").is_err());
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

    proptest! {
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

        #[test]
        fn parse_never_panics(input in "\\PC{0,80}") {
            let _ = ConnInfo::parse(&input);
            let _ = redact_text(&input);
        }
    }
}
