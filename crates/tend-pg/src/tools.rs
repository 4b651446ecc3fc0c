//! Finding PostgreSQL client and server programs and picking the right major
//! version for a server or data directory.
//!
//! Nothing here prints: callers get [`FoundTool`]s or a [`ToolError`] whose
//! `Display` is one sentence saying what is wrong and what to do about it.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long `PROGRAM --version` (or `pg_config --bindir`) may take before the
/// candidate is treated as broken; a hung wrapper script must not hang tend.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The major suggested for installing when nothing on the machine hints at one.
const FALLBACK_MAJOR: u32 = 17;

/// At most this many found programs are named in one error message.
const MAX_LISTED: usize = 4;

/// A PostgreSQL program tend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgTool {
    PgDump,
    PgDumpall,
    PgRestore,
    Psql,
    Initdb,
    PgCtl,
    Postgres,
    PgBasebackup,
    PgIsready,
    /// PostgreSQL 17+: combines a full physical backup and its increments.
    PgCombinebackup,
    /// Checks an unpacked physical backup against its `backup_manifest`.
    PgVerifybackup,
}

impl PgTool {
    /// Every tool, so callers can check or report on all of them at once.
    pub const ALL: [PgTool; 11] = [
        PgTool::PgDump,
        PgTool::PgDumpall,
        PgTool::PgRestore,
        PgTool::Psql,
        PgTool::Initdb,
        PgTool::PgCtl,
        PgTool::Postgres,
        PgTool::PgBasebackup,
        PgTool::PgIsready,
        PgTool::PgCombinebackup,
        PgTool::PgVerifybackup,
    ];

    /// The program's file name without any platform suffix.
    pub fn program(self) -> &'static str {
        match self {
            PgTool::PgDump => "pg_dump",
            PgTool::PgDumpall => "pg_dumpall",
            PgTool::PgRestore => "pg_restore",
            PgTool::Psql => "psql",
            PgTool::Initdb => "initdb",
            PgTool::PgCtl => "pg_ctl",
            PgTool::Postgres => "postgres",
            PgTool::PgBasebackup => "pg_basebackup",
            PgTool::PgIsready => "pg_isready",
            PgTool::PgCombinebackup => "pg_combinebackup",
            PgTool::PgVerifybackup => "pg_verifybackup",
        }
    }

    /// Server programs ship in a different package than client programs on
    /// every packaging scheme, so install hints must tell them apart.
    pub fn is_server_tool(self) -> bool {
        matches!(self, PgTool::Initdb | PgTool::PgCtl | PgTool::Postgres)
    }
}

impl fmt::Display for PgTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program())
    }
}

/// A PostgreSQL release as `server_version_num` counts it (150018 = 15.18,
/// 90624 = 9.6.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PgVersion {
    pub num: u32,
}

impl PgVersion {
    /// The major release, the unit that decides compatibility: `num / 10000`
    /// from 10 on (15 for 150018), and `num / 100` before that, because 9.6
    /// and 9.5 were different majors (906 for 90624).
    ///
    /// Majors in this form do not sort numerically across the 10 boundary
    /// (906 > 15); compare with [`PgVersion::num`] or [`VersionNeed::accepts`].
    pub fn major(self) -> u32 {
        if self.num >= 100_000 {
            self.num / 10_000
        } else {
            self.num / 100
        }
    }

    /// Parses the first line of `PROGRAM --version` (or `pg_config
    /// --version`) output, e.g. `pg_dump (PostgreSQL) 15.18 (Debian
    /// 15.18-0+deb12u1)`, `postgres (PostgreSQL) 17beta1` or `pg_ctl
    /// (PostgreSQL) 9.6.24`. Pre-releases count as the `.0` release.
    pub fn parse_version_output(text: &str) -> Option<PgVersion> {
        text.lines().find_map(|line| {
            let at = line.find("PostgreSQL")?;
            let rest = line[at + "PostgreSQL".len()..]
                .trim_start_matches(')')
                .trim_start();
            parse_version_token(rest)
        })
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num >= 100_000 {
            write!(f, "{}.{}", self.num / 10_000, self.num % 10_000)
        } else {
            write!(
                f,
                "{}.{}.{}",
                self.num / 10_000,
                (self.num / 100) % 100,
                self.num % 100
            )
        }
    }
}

/// Turns a server's `server_version_num` into a [`PgVersion`]; negative
/// values (never sent by a real server) become 0.
pub fn version_from_server_num(num: i32) -> PgVersion {
    PgVersion {
        num: u32::try_from(num).unwrap_or(0),
    }
}

/// Parses a version at the start of `s` ("15.18 (Debian…)", "17beta1",
/// "9.6.24", "16devel"); anything after the numeric part is ignored.
fn parse_version_token(s: &str) -> Option<PgVersion> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let numeric = s[..end].trim_end_matches('.');
    let parts: Vec<u32> = numeric
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let num = match parts.as_slice() {
        [major, rest @ ..] if *major >= 10 => {
            let minor = rest.first().copied().unwrap_or(0);
            if minor >= 10_000 {
                return None;
            }
            major.checked_mul(10_000)?.checked_add(minor)?
        }
        [major @ 1..=9, minor, rest @ ..] => {
            let patch = rest.first().copied().unwrap_or(0);
            if *minor >= 100 || patch >= 100 {
                return None;
            }
            major * 10_000 + minor * 100 + patch
        }
        _ => return None,
    };
    Some(PgVersion { num })
}

/// The lowest `num` of a major in [`PgVersion::major`] form (906 -> 90600,
/// 15 -> 150000), so majors on both sides of 10 compare correctly.
fn major_floor(major: u32) -> u32 {
    if major >= 100 {
        major.saturating_mul(100)
    } else {
        major.saturating_mul(10_000)
    }
}

/// A major as people write it: "15", or "9.6" for 906.
fn major_label(major: u32) -> String {
    if major >= 100 {
        format!("{}.{}", major / 100, major % 100)
    } else {
        major.to_string()
    }
}

/// Where a candidate was found, in search priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolOrigin {
    /// TEND_PG_BINDIR or the config's `tools.pg_bindir`.
    Configured,
    Path,
    PgConfig,
    SystemDir,
}

/// A runnable program and the version it reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundTool {
    pub tool: PgTool,
    pub path: PathBuf,
    pub version: PgVersion,
    pub origin: ToolOrigin,
}

/// Which versions of a program will do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionNeed {
    Any,
    /// For pg_dump/pg_restore/pg_basebackup against a server of that major:
    /// an older client cannot dump a newer server.
    AtLeastMajor(u32),
    /// For initdb/pg_ctl/postgres on an existing data directory of that
    /// major, whose on-disk format only that major understands.
    ExactMajor(u32),
}

impl VersionNeed {
    /// Whether a program of version `v` meets this need.
    pub fn accepts(self, v: PgVersion) -> bool {
        match self {
            VersionNeed::Any => true,
            VersionNeed::AtLeastMajor(m) => v.num >= major_floor(m),
            VersionNeed::ExactMajor(m) => v.major() == m,
        }
    }

    fn major(self) -> Option<u32> {
        match self {
            VersionNeed::Any => None,
            VersionNeed::AtLeastMajor(m) | VersionNeed::ExactMajor(m) => Some(m),
        }
    }
}

impl fmt::Display for VersionNeed {
    /// A phrase that follows a program name: "pg_dump 16 or newer".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VersionNeed::Any => f.write_str("of any version"),
            VersionNeed::AtLeastMajor(m) => write!(f, "{} or newer", major_label(m)),
            VersionNeed::ExactMajor(m) => write!(f, "{}.x", major_label(m)),
        }
    }
}

/// A family of versioned install directories: `parent/<prefix><major>/bin`,
/// e.g. `/usr/lib/postgresql/15/bin` or `/usr/pgsql-16/bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemDirPattern {
    pub parent: PathBuf,
    pub prefix: String,
}

impl SystemDirPattern {
    pub fn new(parent: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        SystemDirPattern {
            parent: parent.into(),
            prefix: prefix.into(),
        }
    }

    /// The places packagers put versioned PostgreSQL installs: Debian/Ubuntu,
    /// RHEL/Fedora (PGDG), and Homebrew on Apple silicon and Intel; then the folders
    /// where `scripts/install-postgres-majors.sh` puts other majors (as root, and in the
    /// user's cache).
    pub fn defaults() -> Vec<SystemDirPattern> {
        let mut patterns = vec![
            SystemDirPattern::new("/usr/lib/postgresql", ""),
            SystemDirPattern::new("/usr", "pgsql-"),
            SystemDirPattern::new("/opt/homebrew/opt", "postgresql@"),
            SystemDirPattern::new("/usr/local/opt", "postgresql@"),
            SystemDirPattern::new("/opt/tend/postgresql", ""),
        ];
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(home).join(".cache"));
            patterns.push(SystemDirPattern::new(cache.join("tend/postgresql"), ""));
        }
        patterns
    }

    /// The existing `bin` directories this pattern matches, with the version
    /// named by each directory.
    fn expand(&self) -> Vec<(PgVersion, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.parent) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(self.prefix.as_str()) else {
                continue;
            };
            // The whole rest must be a version: skips e.g. Debian's "common".
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                continue;
            }
            let Some(version) = parse_version_token(rest) else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.is_dir() {
                out.push((version, bin));
            }
        }
        out
    }
}

impl fmt::Display for SystemDirPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            self.parent
                .join(format!("{}*", self.prefix))
                .join("bin")
                .display()
        )
    }
}

/// The packaging scheme install hints are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Debian, Ubuntu and derivatives (apt, postgresql-client-N).
    Debian,
    /// RHEL, Fedora and derivatives (dnf, PGDG postgresqlN).
    RedHat,
    /// macOS with Homebrew (postgresql@N).
    MacOs,
    Other,
}

impl Platform {
    /// Detects the platform from `/etc/debian_version`, `/etc/redhat-release`
    /// and the compile target.
    pub fn detect() -> Platform {
        Platform::detect_in(Path::new("/"))
    }

    fn detect_in(root: &Path) -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else if root.join("etc/debian_version").exists() {
            Platform::Debian
        } else if root.join("etc/redhat-release").exists()
            || root.join("etc/fedora-release").exists()
        {
            Platform::RedHat
        } else {
            Platform::Other
        }
    }
}

/// What to run to install a tool; `text` is a clause that fits after a
/// semicolon in an error message ("install it with `…`").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstallHint {
    pub command: Option<String>,
    pub text: String,
}

impl fmt::Display for InstallHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The install hint for `tool` on this machine. With `major` None it
/// suggests the newest major already installed in the usual system
/// directories, or the distribution's default package.
pub fn install_hint(tool: PgTool, major: Option<u32>) -> InstallHint {
    let major = major.or_else(|| newest_major(&SystemDirPattern::defaults()));
    install_hint_for(Platform::detect(), tool, major)
}

/// [`install_hint`] for an explicit platform.
pub fn install_hint_for(platform: Platform, tool: PgTool, major: Option<u32>) -> InstallHint {
    let server = tool.is_server_tool();
    match platform {
        Platform::Debian => {
            let base = if server {
                "postgresql"
            } else {
                "postgresql-client"
            };
            match major {
                Some(m) => {
                    let command = format!("apt-get install {base}-{}", major_label(m));
                    InstallHint {
                        text: format!(
                            "install it with `{command}` (from apt.postgresql.org if your release does not ship that version)"
                        ),
                        command: Some(command),
                    }
                }
                None => {
                    let command = format!("apt-get install {base}");
                    InstallHint {
                        text: format!("install it with `{command}`"),
                        command: Some(command),
                    }
                }
            }
        }
        Platform::RedHat => match major {
            Some(m) => {
                let suffix = if server { "-server" } else { "" };
                let command = format!(
                    "dnf install postgresql{}{suffix}",
                    major_label(m).replace('.', "")
                );
                InstallHint {
                    text: format!(
                        "install it with `{command}` from the PostgreSQL repository (yum.postgresql.org)"
                    ),
                    command: Some(command),
                }
            }
            None => {
                let package = if server {
                    "postgresql-server"
                } else {
                    "postgresql"
                };
                let command = format!("dnf install {package}");
                InstallHint {
                    text: format!("install it with `{command}`"),
                    command: Some(command),
                }
            }
        },
        Platform::MacOs => {
            let m = major.unwrap_or(FALLBACK_MAJOR);
            let command = format!("brew install postgresql@{}", major_label(m));
            InstallHint {
                text: format!("install it with `{command}`"),
                command: Some(command),
            }
        }
        Platform::Other => {
            let kind = if server { "server" } else { "client" };
            let version = major
                .map(|m| format!(" {}", major_label(m)))
                .unwrap_or_default();
            InstallHint {
                command: None,
                text: format!(
                    "install the PostgreSQL{version} {kind} programs, which include {tool} (see https://www.postgresql.org/download/)"
                ),
            }
        }
    }
}

/// The newest major installed under `patterns`, if any.
fn newest_major(patterns: &[SystemDirPattern]) -> Option<u32> {
    patterns
        .iter()
        .flat_map(SystemDirPattern::expand)
        .map(|(v, _)| v)
        .max()
        .map(PgVersion::major)
}

/// Why no suitable program could be used.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "{tool} was not found in {places}; {install}, or point TEND_PG_BINDIR at the directory that holds it"
    )]
    NotFound {
        tool: PgTool,
        /// Every directory looked in, in order.
        searched: Vec<PathBuf>,
        /// A short description of where was looked, for the message.
        places: String,
        install: InstallHint,
    },
    #[error("{tool} {} or newer is needed for a PostgreSQL {} server, but only {} found; {install}, or point TEND_PG_BINDIR at the directory that holds it", major_label(*need_major), major_label(*need_major), list_found(*tool, found))]
    TooOld {
        tool: PgTool,
        need_major: u32,
        found: Vec<FoundTool>,
        install: InstallHint,
    },
    #[error("{tool} from PostgreSQL {} is needed to match a PostgreSQL {} data directory, but only {} found; {install}, or point TEND_PG_BINDIR at the directory that holds it", major_label(*need_major), major_label(*need_major), list_found(*tool, found))]
    WrongMajor {
        tool: PgTool,
        need_major: u32,
        found: Vec<FoundTool>,
        install: InstallHint,
    },
    #[error("{}", configured_unsuitable(*tool, path, *found, need))]
    ConfiguredUnsuitable {
        tool: PgTool,
        path: PathBuf,
        /// None when the program did not run or did not report a version.
        found: Option<PgVersion>,
        /// What was needed, as a phrase after the program name ("16 or newer").
        need: String,
    },
}

/// "pg_dump 15.18 (/a) was" / "pg_dump 15.18 (/a) and 14.3 (/b) were".
fn list_found(tool: PgTool, found: &[FoundTool]) -> String {
    let mut items: Vec<String> = found
        .iter()
        .take(MAX_LISTED)
        .map(|f| format!("{} ({})", f.version, f.path.display()))
        .collect();
    if found.len() > MAX_LISTED {
        items.push(format!("{} more", found.len() - MAX_LISTED));
    }
    let verb = if found.len() == 1 { "was" } else { "were" };
    let list = match items.len() {
        0 => return format!("no {tool} was"),
        1 => items.remove(0),
        _ => {
            let last = items.pop().unwrap_or_default();
            format!("{} and {last}", items.join(", "))
        }
    };
    format!("{tool} {list} {verb}")
}

fn configured_unsuitable(
    tool: PgTool,
    path: &Path,
    found: Option<PgVersion>,
    need: &str,
) -> String {
    let what = match found {
        Some(v) => format!(
            "{} is {tool} {v}, but {tool} {need} is needed",
            path.display()
        ),
        None => format!(
            "{} did not run or report a PostgreSQL version with --version, but {tool} {need} is needed",
            path.display()
        ),
    };
    format!(
        "{what}; it comes from TEND_PG_BINDIR (or tools.pg_bindir), which tend never overrides, so point that at a directory with a suitable {tool} or unset it"
    )
}

/// Where to look for programs; build once (from config) and reuse, since it
/// caches what it finds. Clones share the cache.
#[derive(Debug, Clone)]
pub struct ToolSearch {
    bindir: Option<PathBuf>,
    path: Option<OsString>,
    system_dirs: Vec<SystemDirPattern>,
    platform: Option<Platform>,
    timeout: Duration,
    cache: Arc<Cache>,
}

/// Results of running programs, so repeated finds do not respawn them.
#[derive(Debug, Default)]
struct Cache {
    candidates: Mutex<HashMap<PgTool, Vec<FoundTool>>>,
    versions: Mutex<HashMap<PathBuf, Option<PgVersion>>>,
    pg_config_bindir: OnceLock<Option<PathBuf>>,
}

impl Default for ToolSearch {
    fn default() -> Self {
        ToolSearch::new(None)
    }
}

/// A poisoned cache is still a valid cache: a panic elsewhere cannot leave a
/// half-written HashMap entry.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ToolSearch {
    /// Searches `bindir` (TEND_PG_BINDIR or config `tools.pg_bindir`; the
    /// caller resolves which), the process's PATH and the default system
    /// directories.
    pub fn new(bindir: Option<PathBuf>) -> Self {
        ToolSearch {
            bindir,
            path: None,
            system_dirs: SystemDirPattern::defaults(),
            platform: None,
            timeout: DEFAULT_TIMEOUT,
            cache: Arc::new(Cache::default()),
        }
    }

    /// Uses `path` instead of the process's PATH.
    pub fn with_path(mut self, path: impl Into<OsString>) -> Self {
        self.path = Some(path.into());
        self.cache = Arc::new(Cache::default());
        self
    }

    /// Replaces the versioned system directories searched last.
    pub fn with_system_dirs(mut self, dirs: Vec<SystemDirPattern>) -> Self {
        self.system_dirs = dirs;
        self.cache = Arc::new(Cache::default());
        self
    }

    /// Writes install hints for `platform` instead of the detected one.
    pub fn with_platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Changes how long each `--version` run may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.cache = Arc::new(Cache::default());
        self
    }

    /// The configured bin directory, if any.
    pub fn bindir(&self) -> Option<&Path> {
        self.bindir.as_deref()
    }

    /// Every runnable candidate, in priority order: bindir, PATH entries,
    /// `pg_config --bindir` (pg_config itself found via bindir/PATH), then
    /// versioned system directories, newest major first. Deduplicated by
    /// canonical path, keeping the first path seen (Debian's /usr/bin/pg_dump
    /// is a symlink to pg_wrapper and must stay that name to work).
    /// Candidates whose `--version` fails or times out are skipped.
    pub fn candidates(&self, tool: PgTool) -> Vec<FoundTool> {
        if let Some(found) = lock(&self.cache.candidates).get(&tool) {
            return found.clone();
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (dir, origin) in self.search_dirs() {
            let file = dir.join(exe_name(tool.program()));
            if !is_runnable(&file) {
                continue;
            }
            let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if !seen.insert(canonical) {
                continue;
            }
            if let Some(version) = self.version_of(&file) {
                out.push(FoundTool {
                    tool,
                    path: file,
                    version,
                    origin,
                });
            }
        }
        lock(&self.cache.candidates).insert(tool, out.clone());
        out
    }

    /// The first candidate in priority order that meets `need`. A configured
    /// bindir is the only place considered, so a missing or unsuitable program
    /// there is an error rather than silently replaced by another installation.
    pub fn find(&self, tool: PgTool, need: VersionNeed) -> Result<FoundTool, ToolError> {
        if let Some(bindir) = &self.bindir {
            let file = bindir.join(exe_name(tool.program()));
            if file.is_file() {
                let version = if is_runnable(&file) {
                    self.version_of(&file)
                } else {
                    None
                };
                return match version {
                    Some(v) if need.accepts(v) => Ok(FoundTool {
                        tool,
                        path: file,
                        version: v,
                        origin: ToolOrigin::Configured,
                    }),
                    _ => Err(ToolError::ConfiguredUnsuitable {
                        tool,
                        path: file,
                        found: version,
                        need: need.to_string(),
                    }),
                };
            }
            // A configured directory pins the installation: never use another one
            // behind the user's back.
            return Err(ToolError::NotFound {
                tool,
                searched: vec![bindir.clone()],
                places: format!("TEND_PG_BINDIR ({})", bindir.display()),
                install: self.hint(tool, need.major()),
            });
        }

        let found = self.candidates(tool);
        if let Some(hit) = found.iter().find(|f| need.accepts(f.version)) {
            return Ok(hit.clone());
        }
        let install = self.hint(tool, need.major());
        match need {
            _ if found.is_empty() => Err(ToolError::NotFound {
                tool,
                searched: self.search_dirs().into_iter().map(|(d, _)| d).collect(),
                places: self.places(),
                install,
            }),
            VersionNeed::AtLeastMajor(m) => Err(ToolError::TooOld {
                tool,
                need_major: m,
                found,
                install,
            }),
            VersionNeed::ExactMajor(m) => Err(ToolError::WrongMajor {
                tool,
                need_major: m,
                found,
                install,
            }),
            // Any accepts every candidate, so a non-empty list returned above.
            VersionNeed::Any => Err(ToolError::NotFound {
                tool,
                searched: self.search_dirs().into_iter().map(|(d, _)| d).collect(),
                places: self.places(),
                install,
            }),
        }
    }

    /// The install hint for this search's platform; with no major, the
    /// newest one installed in its system directories.
    fn hint(&self, tool: PgTool, major: Option<u32>) -> InstallHint {
        let platform = self.platform.unwrap_or_else(Platform::detect);
        let major = major.or_else(|| newest_major(&self.system_dirs));
        install_hint_for(platform, tool, major)
    }

    /// Directories to look in, in priority order, without exact duplicates.
    fn search_dirs(&self) -> Vec<(PathBuf, ToolOrigin)> {
        let mut dirs: Vec<(PathBuf, ToolOrigin)> = Vec::new();
        let mut push = |dir: PathBuf, origin| {
            if !dirs.iter().any(|(d, _)| *d == dir) {
                dirs.push((dir, origin));
            }
        };
        if let Some(b) = &self.bindir {
            push(b.clone(), ToolOrigin::Configured);
        }
        for d in self.path_dirs() {
            push(d, ToolOrigin::Path);
        }
        if let Some(d) = self.pg_config_bindir() {
            push(d, ToolOrigin::PgConfig);
        }
        let mut system: Vec<(PgVersion, PathBuf)> = self
            .system_dirs
            .iter()
            .flat_map(SystemDirPattern::expand)
            .collect();
        // Stable: equal versions keep pattern order.
        system.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (_, d) in system {
            push(d, ToolOrigin::SystemDir);
        }
        dirs
    }

    /// PATH entries; empty and relative entries are skipped so tend never
    /// runs a program from whatever directory it was started in.
    fn path_dirs(&self) -> Vec<PathBuf> {
        let path = match &self.path {
            Some(p) => p.clone(),
            None => std::env::var_os("PATH").unwrap_or_default(),
        };
        std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .collect()
    }

    /// `pg_config --bindir` of the first pg_config in bindir or PATH.
    fn pg_config_bindir(&self) -> Option<PathBuf> {
        self.cache
            .pg_config_bindir
            .get_or_init(|| {
                let pg_config = self
                    .bindir
                    .iter()
                    .cloned()
                    .chain(self.path_dirs())
                    .map(|d| d.join(exe_name("pg_config")))
                    .find(|f| is_runnable(f))?;
                let out = run_capture(&pg_config, &["--bindir"], self.timeout)?;
                let dir = PathBuf::from(out.lines().next()?.trim());
                (dir.is_absolute() && dir.is_dir()).then_some(dir)
            })
            .clone()
    }

    /// The version `file --version` reports, run at most once per path.
    fn version_of(&self, file: &Path) -> Option<PgVersion> {
        if let Some(v) = lock(&self.cache.versions).get(file) {
            return *v;
        }
        let v = run_capture(file, &["--version"], self.timeout)
            .and_then(|out| PgVersion::parse_version_output(&out));
        lock(&self.cache.versions).insert(file.to_path_buf(), v);
        v
    }

    /// Where was looked, for NotFound: system patterns are listed only when
    /// their parent exists (or none does), to keep the message short.
    fn places(&self) -> String {
        let mut places = Vec::new();
        if let Some(b) = &self.bindir {
            places.push(format!("TEND_PG_BINDIR ({})", b.display()));
        }
        places.push("PATH".to_string());
        if let Some(d) = self.pg_config_bindir() {
            places.push(format!("pg_config --bindir ({})", d.display()));
        }
        let existing: Vec<&SystemDirPattern> = self
            .system_dirs
            .iter()
            .filter(|p| p.parent.is_dir())
            .collect();
        let shown: Vec<&SystemDirPattern> = if existing.is_empty() {
            self.system_dirs.iter().collect()
        } else {
            existing
        };
        places.extend(shown.iter().map(|p| p.to_string()));
        match places.len() {
            1 => places.remove(0),
            _ => {
                let last = places.pop().unwrap_or_default();
                format!("{} or {last}", places.join(", "))
            }
        }
    }
}

fn exe_name(program: &str) -> String {
    format!("{program}{}", std::env::consts::EXE_SUFFIX)
}

/// A regular file (after symlinks) that we may execute.
fn is_runnable(file: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(file) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Runs `program args…` and returns its stdout if it exits successfully
/// within `timeout`; otherwise kills it and returns None.
fn run_capture(program: &Path, args: &[&str], timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = spawn_retrying(&mut cmd)?;
    let stdout = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    // A reader thread, so a program that never closes stdout cannot block us
    // past the deadline; `take` bounds what a runaway program can send.
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.take(64 * 1024).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    let Ok(out) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
        kill(&mut child);
        return None;
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) => return None,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                kill(&mut child);
                return None;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Spawns, retrying briefly on ETXTBSY: a program just written by this
/// process (tests, or a tool installed a moment ago) can be transiently busy
/// while another thread's fork still holds its write descriptor.
fn spawn_retrying(cmd: &mut Command) -> Option<Child> {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        match cmd.spawn() {
            Ok(child) => return Some(child),
            Err(e) if attempt < ATTEMPTS && is_text_busy(&e) => {
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
            }
            Err(_) => return None,
        }
    }
    None
}

#[cfg(unix)]
fn is_text_busy(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ETXTBSY)
}

#[cfg(not(unix))]
fn is_text_busy(_: &std::io::Error) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn v(num: u32) -> PgVersion {
        PgVersion { num }
    }

    #[test]
    fn parses_version_outputs() {
        let cases = [
            (
                "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
                150018,
            ),
            ("psql (PostgreSQL) 16.2", 160002),
            ("postgres (PostgreSQL) 17beta1", 170000),
            ("pg_ctl (PostgreSQL) 9.6.24", 90624),
            ("PostgreSQL 15.18 (Debian 15.18-0+deb12u1)", 150018),
            ("psql (PostgreSQL) 16.2 (Homebrew)\n", 160002),
            ("initdb (PostgreSQL) 18devel", 180000),
            ("pg_dump (PostgreSQL) 9.6", 90600),
            ("warning: something\npg_dump (PostgreSQL) 14.3\n", 140003),
        ];
        for (text, num) in cases {
            assert_eq!(
                PgVersion::parse_version_output(text),
                Some(v(num)),
                "{text:?}"
            );
        }
        for bad in [
            "",
            "pg_dump",
            "pg_dump (PostgreSQL)",
            "pg_dump (PostgreSQL) beta",
            "something 15.2",
            "pg_dump (PostgreSQL) 0.1",
        ] {
            assert_eq!(PgVersion::parse_version_output(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn major_display_and_server_num() {
        assert_eq!(v(150018).major(), 15);
        assert_eq!(v(90624).major(), 906);
        assert_eq!(v(150018).to_string(), "15.18");
        assert_eq!(v(90624).to_string(), "9.6.24");
        assert_eq!(v(100000).to_string(), "10.0");
        assert_eq!(version_from_server_num(160004), v(160004));
        assert_eq!(version_from_server_num(-1), v(0));
    }

    #[test]
    fn needs_compare_across_the_10_boundary() {
        assert!(VersionNeed::AtLeastMajor(906).accepts(v(100001)));
        assert!(VersionNeed::AtLeastMajor(906).accepts(v(90624)));
        assert!(!VersionNeed::AtLeastMajor(906).accepts(v(90524)));
        assert!(!VersionNeed::AtLeastMajor(10).accepts(v(90624)));
        assert!(VersionNeed::AtLeastMajor(15).accepts(v(150000)));
        assert!(!VersionNeed::AtLeastMajor(16).accepts(v(150018)));
        assert!(VersionNeed::ExactMajor(906).accepts(v(90624)));
        assert!(!VersionNeed::ExactMajor(15).accepts(v(160001)));
        assert!(VersionNeed::Any.accepts(v(0)));
        assert_eq!(VersionNeed::AtLeastMajor(906).to_string(), "9.6 or newer");
        assert_eq!(VersionNeed::ExactMajor(15).to_string(), "15.x");
    }

    proptest! {
        #[test]
        fn formatted_versions_parse_back(major in 10u32..=30, minor in 0u32..=99) {
            let text = format!("pg_dump (PostgreSQL) {major}.{minor}");
            let parsed = PgVersion::parse_version_output(&text).unwrap();
            prop_assert_eq!(parsed.num, major * 10_000 + minor);
            prop_assert_eq!(parsed.major(), major);
            prop_assert_eq!(parsed.to_string(), format!("{major}.{minor}"));
        }

        #[test]
        fn old_versions_parse_back(major in 7u32..=9, minor in 0u32..=6, patch in 0u32..=99) {
            let text = format!("pg_ctl (PostgreSQL) {major}.{minor}.{patch}");
            let parsed = PgVersion::parse_version_output(&text).unwrap();
            prop_assert_eq!(parsed.major(), major * 100 + minor);
            prop_assert_eq!(parsed.to_string(), format!("{major}.{minor}.{patch}"));
        }
    }

    /// Writes an executable script `dir/name` that prints `stdout`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        fs::create_dir_all(dir).unwrap();
        let file = dir.join(name);
        fs::write(&file, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
        file
    }

    fn fake(dir: &Path, tool: PgTool, version: &str) -> PathBuf {
        script(
            dir,
            tool.program(),
            &format!("echo \"{} (PostgreSQL) {version}\"", tool.program()),
        )
    }

    /// A machine-independent search: explicit PATH, Debian-style system
    /// root `root/lib/postgresql`, Debian hints.
    fn search(bindir: Option<PathBuf>, path: &[&Path], root: &Path) -> ToolSearch {
        ToolSearch::new(bindir)
            .with_path(std::env::join_paths(path).unwrap())
            .with_system_dirs(vec![
                SystemDirPattern::new(root.join("lib/postgresql"), ""),
                SystemDirPattern::new(root.join("opt"), "pgsql-"),
            ])
            .with_platform(Platform::Debian)
    }

    #[test]
    fn candidates_follow_priority_and_dedupe() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let bindir = t.join("configured");
        let pathdir = t.join("path");
        let empty = t.join("empty");
        fs::create_dir_all(&empty).unwrap();
        fake(&bindir, PgTool::PgDump, "13.2");
        fake(&pathdir, PgTool::PgDump, "14.3");
        fake(&t.join("lib/postgresql/15/bin"), PgTool::PgDump, "15.7");
        let v16 = fake(&t.join("opt/pgsql-16/bin"), PgTool::PgDump, "16.1");
        fake(&t.join("lib/postgresql/9.6/bin"), PgTool::PgDump, "9.6.24");
        // Not a version directory, like Debian's /usr/lib/postgresql/common.
        fake(&t.join("lib/postgresql/common/bin"), PgTool::PgDump, "99.0");
        // A symlink to the 16 binary earlier in PATH wins over the real one.
        let linkdir = t.join("links");
        fs::create_dir_all(&linkdir).unwrap();
        std::os::unix::fs::symlink(&v16, linkdir.join("pg_dump")).unwrap();
        // Broken candidates are skipped.
        let broken = t.join("broken");
        script(&broken, "pg_dump", "exit 1");
        let noexec = t.join("noexec");
        fs::create_dir_all(&noexec).unwrap();
        fs::write(
            noexec.join("pg_dump"),
            "#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.1'\n",
        )
        .unwrap();
        fs::set_permissions(noexec.join("pg_dump"), fs::Permissions::from_mode(0o644)).unwrap();

        let s = search(
            Some(bindir.clone()),
            &[&empty, &broken, &noexec, &pathdir, &linkdir],
            t,
        );
        let found = s.candidates(PgTool::PgDump);
        let summary: Vec<(String, ToolOrigin, PathBuf)> = found
            .iter()
            .map(|f| (f.version.to_string(), f.origin, f.path.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "13.2".into(),
                    ToolOrigin::Configured,
                    bindir.join("pg_dump")
                ),
                ("14.3".into(), ToolOrigin::Path, pathdir.join("pg_dump")),
                ("16.1".into(), ToolOrigin::Path, linkdir.join("pg_dump")),
                (
                    "15.7".into(),
                    ToolOrigin::SystemDir,
                    t.join("lib/postgresql/15/bin/pg_dump")
                ),
                (
                    "9.6.24".into(),
                    ToolOrigin::SystemDir,
                    t.join("lib/postgresql/9.6/bin/pg_dump")
                ),
            ]
        );
        // Cached: deleting the programs does not change the answer.
        fs::remove_dir_all(&pathdir).unwrap();
        assert_eq!(s.candidates(PgTool::PgDump), found);
        assert!(s.candidates(PgTool::Psql).is_empty());
    }

    #[test]
    fn system_dirs_are_newest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        fake(&t.join("lib/postgresql/14/bin"), PgTool::Psql, "14.3");
        fake(&t.join("opt/pgsql-16/bin"), PgTool::Psql, "16.1");
        fake(&t.join("lib/postgresql/15/bin"), PgTool::Psql, "15.2");
        let s = search(None, &[], t);
        let versions: Vec<String> = s
            .candidates(PgTool::Psql)
            .iter()
            .map(|f| f.version.to_string())
            .collect();
        assert_eq!(versions, ["16.1", "15.2", "14.3"]);
    }

    #[test]
    fn pg_config_bindir_is_searched_after_path() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let pathdir = t.join("path");
        let hidden = t.join("hidden/bin");
        fake(&hidden, PgTool::Initdb, "15.4");
        script(
            &pathdir,
            "pg_config",
            &format!("echo '{}'", hidden.display()),
        );
        fake(&t.join("lib/postgresql/16/bin"), PgTool::Initdb, "16.1");
        let s = search(None, &[&pathdir], t);
        let found = s.candidates(PgTool::Initdb);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].origin, ToolOrigin::PgConfig);
        assert_eq!(found[0].path, hidden.join("initdb"));
        assert_eq!(found[1].origin, ToolOrigin::SystemDir);

        let exact = s.find(PgTool::Initdb, VersionNeed::ExactMajor(16)).unwrap();
        assert_eq!(exact.version, v(160001));
    }

    #[test]
    fn find_picks_first_satisfying_candidate() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let a = t.join("a");
        let b = t.join("b");
        fake(&a, PgTool::PgDump, "14.3");
        fake(&b, PgTool::PgDump, "16.1");
        fake(&t.join("lib/postgresql/17/bin"), PgTool::PgDump, "17.0");
        let s = search(None, &[&a, &b], t);

        let any = s.find(PgTool::PgDump, VersionNeed::Any).unwrap();
        assert_eq!(any.path, a.join("pg_dump"));
        let at_least = s
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(15))
            .unwrap();
        assert_eq!(at_least.path, b.join("pg_dump"));
        assert_eq!(at_least.version, v(160001));
        assert_eq!(at_least.origin, ToolOrigin::Path);
        let exact = s.find(PgTool::PgDump, VersionNeed::ExactMajor(17)).unwrap();
        assert_eq!(exact.origin, ToolOrigin::SystemDir);
        assert_eq!(exact.version.major(), 17);
    }

    #[test]
    fn configured_bindir_is_never_overridden() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let bindir = t.join("configured");
        let newer = t.join("newer");
        fake(&bindir, PgTool::PgDump, "14.3");
        fake(&newer, PgTool::PgDump, "16.1");
        let s = search(Some(bindir.clone()), &[&newer], t);

        let ok = s
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(14))
            .unwrap();
        assert_eq!(ok.origin, ToolOrigin::Configured);

        let err = s
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(16))
            .unwrap_err();
        assert!(
            matches!(&err, ToolError::ConfiguredUnsuitable { found: Some(f), .. } if *f == v(140003)),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("pg_dump 14.3"), "{msg}");
        assert!(msg.contains("pg_dump 16 or newer is needed"), "{msg}");
        assert!(msg.contains("TEND_PG_BINDIR"), "{msg}");
        assert!(
            msg.contains(&bindir.join("pg_dump").display().to_string()),
            "{msg}"
        );

        // A configured program that does not run is also an error.
        script(&bindir, "psql", "exit 3");
        fake(&newer, PgTool::Psql, "16.1");
        let err = s.find(PgTool::Psql, VersionNeed::Any).unwrap_err();
        assert!(
            matches!(err, ToolError::ConfiguredUnsuitable { found: None, .. }),
            "{err:?}"
        );

        // A program missing from bindir is missing: no silent fallback.
        fake(&newer, PgTool::PgRestore, "16.1");
        let err = s.find(PgTool::PgRestore, VersionNeed::Any).unwrap_err();
        assert!(matches!(err, ToolError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("TEND_PG_BINDIR"), "{err}");
    }

    #[test]
    fn not_found_message_names_tool_places_and_install() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        fs::create_dir_all(t.join("lib/postgresql")).unwrap();
        let bindir = t.join("configured");
        fs::create_dir_all(&bindir).unwrap();
        let s = search(Some(bindir.clone()), &[], t);
        let err = s
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(15))
            .unwrap_err();
        let ToolError::NotFound {
            tool,
            searched,
            install,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(*tool, PgTool::PgDump);
        assert_eq!(searched, &vec![bindir.clone()]);
        assert_eq!(
            install.command.as_deref(),
            Some("apt-get install postgresql-client-15")
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("pg_dump was not found in TEND_PG_BINDIR ("),
            "{msg}"
        );
        // Without a configured directory, the message names every place searched.
        let s = search(None, &[], t);
        let msg = s
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(15))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("PATH"), "{msg}");
        assert!(msg.contains("lib/postgresql/*/bin"), "{msg}");
        assert!(!msg.contains("pgsql-*"), "{msg}");
        assert!(
            msg.contains("install it with `apt-get install postgresql-client-15`"),
            "{msg}"
        );
        assert!(
            msg.ends_with("or point TEND_PG_BINDIR at the directory that holds it"),
            "{msg}"
        );

        // With no version need, the hint uses the newest installed major.
        fake(&t.join("lib/postgresql/13/bin"), PgTool::Psql, "13.1");
        let err = s.find(PgTool::Initdb, VersionNeed::Any).unwrap_err();
        assert!(
            err.to_string().contains("`apt-get install postgresql-13`"),
            "{err}"
        );
    }

    #[test]
    fn too_old_and_wrong_major_messages_list_what_was_found() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let a = t.join("a");
        fake(&a, PgTool::PgDump, "14.3");
        fake(&t.join("lib/postgresql/15/bin"), PgTool::PgDump, "15.18");
        fake(&t.join("lib/postgresql/15/bin"), PgTool::PgCtl, "15.18");
        let s = search(None, &[&a], t);

        let err = s
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(16))
            .unwrap_err();
        assert!(matches!(&err, ToolError::TooOld { found, .. } if found.len() == 2));
        let msg = err.to_string();
        let expected = format!(
            "pg_dump 16 or newer is needed for a PostgreSQL 16 server, but only pg_dump 14.3 ({}) and 15.18 ({}) were found; install it with `apt-get install postgresql-client-16`",
            a.join("pg_dump").display(),
            t.join("lib/postgresql/15/bin/pg_dump").display()
        );
        assert!(msg.starts_with(&expected), "{msg}");

        let err = s
            .find(PgTool::PgCtl, VersionNeed::ExactMajor(906))
            .unwrap_err();
        assert!(matches!(
            &err,
            ToolError::WrongMajor {
                need_major: 906,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(
            msg.starts_with("pg_ctl from PostgreSQL 9.6 is needed to match a PostgreSQL 9.6 data directory, but only pg_ctl 15.18 ("),
            "{msg}"
        );
        assert!(
            msg.contains(") was found; install it with `apt-get install postgresql-9.6`"),
            "{msg}"
        );
    }

    #[test]
    fn hung_candidates_time_out() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let slow = t.join("slow");
        let good = t.join("good");
        script(&slow, "pg_isready", "exec sleep 30");
        fake(&good, PgTool::PgIsready, "16.1");
        let s = search(None, &[&slow, &good], t).with_timeout(Duration::from_millis(300));
        let start = Instant::now();
        let found = s.candidates(PgTool::PgIsready);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, good.join("pg_isready"));
    }

    #[test]
    fn install_hints_per_platform() {
        let cmd = |p, tool, m| install_hint_for(p, tool, m).command;
        assert_eq!(
            cmd(Platform::Debian, PgTool::PgBasebackup, Some(16)).as_deref(),
            Some("apt-get install postgresql-client-16")
        );
        assert_eq!(
            cmd(Platform::Debian, PgTool::Postgres, Some(16)).as_deref(),
            Some("apt-get install postgresql-16")
        );
        assert_eq!(
            cmd(Platform::Debian, PgTool::Psql, None).as_deref(),
            Some("apt-get install postgresql-client")
        );
        assert_eq!(
            cmd(Platform::RedHat, PgTool::PgDump, Some(15)).as_deref(),
            Some("dnf install postgresql15")
        );
        assert_eq!(
            cmd(Platform::RedHat, PgTool::Initdb, Some(906)).as_deref(),
            Some("dnf install postgresql96-server")
        );
        assert_eq!(
            cmd(Platform::MacOs, PgTool::PgCtl, Some(17)).as_deref(),
            Some("brew install postgresql@17")
        );
        let other = install_hint_for(Platform::Other, PgTool::PgRestore, Some(16));
        assert_eq!(other.command, None);
        assert!(
            other.text.contains("PostgreSQL 16 client programs"),
            "{}",
            other.text
        );
        assert!(other.text.contains("pg_restore"), "{}", other.text);
    }

    #[test]
    fn platform_detection_reads_release_files() {
        if cfg!(target_os = "macos") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Platform::detect_in(tmp.path()), Platform::Other);
        fs::create_dir_all(tmp.path().join("etc")).unwrap();
        fs::write(tmp.path().join("etc/redhat-release"), "Rocky").unwrap();
        assert_eq!(Platform::detect_in(tmp.path()), Platform::RedHat);
        fs::write(tmp.path().join("etc/debian_version"), "12.5").unwrap();
        assert_eq!(Platform::detect_in(tmp.path()), Platform::Debian);
    }

    #[test]
    fn tool_names() {
        let names: Vec<&str> = PgTool::ALL.iter().map(|t| t.program()).collect();
        assert_eq!(
            names,
            [
                "pg_dump",
                "pg_dumpall",
                "pg_restore",
                "psql",
                "initdb",
                "pg_ctl",
                "postgres",
                "pg_basebackup",
                "pg_isready",
                "pg_combinebackup",
                "pg_verifybackup"
            ]
        );
        assert_eq!(
            serde_json::to_string(&ToolOrigin::PgConfig).unwrap(),
            "\"pg_config\""
        );
    }

    /// On machines with Debian's PostgreSQL 15 packages, the real search
    /// finds a 15 pg_dump (through /usr/bin's pg_wrapper or directly).
    #[test]
    fn real_machine_finds_pg_dump_15() {
        if !Path::new("/usr/lib/postgresql/15/bin/pg_dump").exists() {
            return;
        }
        // The system's PATH, not the test run's (which may put another major first).
        let found = ToolSearch::new(None)
            .with_path("/usr/local/bin:/usr/bin:/bin")
            .find(PgTool::PgDump, VersionNeed::AtLeastMajor(15))
            .unwrap();
        assert_eq!(found.version.major(), 15, "{found:?}");
    }
}
