//! Local PostgreSQL clusters: the project's development cluster under `.tend/` (the embedded
//! default) and the throwaway clusters of the test kit.
//!
//! initdb and postgres refuse to run as root, and these machines have no sudo, so when tend
//! runs as root the server programs run as an unprivileged OS user (`postgres`, or
//! `TEND_PG_USER`), switched in the child process. The directories the server writes are
//! owned by that user; everything else stays the caller's. Only 127.0.0.1 and a unix socket
//! listen, and local connections are trusted: this is a development cluster, never a server.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};

use crate::conninfo::{ConnInfo, Host};
use crate::tools::{PgTool, ToolError, ToolSearch, VersionNeed};

/// The superuser role initdb creates in every local cluster.
pub const SUPERUSER: &str = "postgres";

/// How a local cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The OS user the server runs as when tend runs as root (`TEND_PG_USER`).
    pub os_user: String,
    /// Where to find initdb, pg_ctl and postgres.
    pub tools: ToolSearch,
    /// Extra `postgresql.conf` settings (the test kit turns durability off for speed).
    pub settings: Vec<(String, String)>,
    /// Skip fsync during initdb (throwaway clusters only).
    pub fast_init: bool,
    /// `pg_hba.conf` lines put before initdb's, so they match first (tests use them for
    /// password authentication).
    pub hba: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            os_user: "postgres".to_string(),
            tools: ToolSearch::new(None),
            settings: Vec::new(),
            fast_init: false,
            hba: Vec::new(),
        }
    }
}

/// What `.tend/cluster.json` remembers across restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterState {
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
    pub bindir: PathBuf,
    pub major: u32,
    pub os_user: Option<String>,
}

/// Where a cluster stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClusterStatus {
    NotInitialized,
    Stopped { port: u16 },
    Running { pid: u32, port: u16 },
}

/// What `start` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub port: u16,
    pub initialized: bool,
    pub already_running: bool,
}

/// Steps of a start, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    Initializing { data_dir: PathBuf },
    Starting { port: u16 },
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(
        "tend runs as root, and PostgreSQL refuses to; the OS user `{user}` it would run the server as does not exist: create it (`useradd --system --home-dir /var/lib/postgresql {user}`) or set TEND_PG_USER to an existing unprivileged user"
    )]
    NoServerUser { user: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("initdb failed for {}: {output}", data_dir.display())]
    InitdbFailed { data_dir: PathBuf, output: String },
    #[error("the base backup into {} failed: {output}", data_dir.display())]
    BaseBackupFailed { data_dir: PathBuf, output: String },
    #[error(
        "the local PostgreSQL server did not start; its log ({}) ends with:\n{log_tail}", log.display()
    )]
    StartFailed { log: PathBuf, log_tail: String },
    #[error("stopping the local PostgreSQL server failed: {output}")]
    StopFailed { output: String },
    #[error(
        "the local cluster's state file {} is unreadable ({reason}); remove .tend/ with `tend dev destroy --yes` to start over", path.display()
    )]
    BadState { path: PathBuf, reason: String },
    #[error("the local cluster in {} has not been created yet; run `tend dev start`", root.display())]
    NotInitialized { root: PathBuf },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ClusterError + 'a {
    move |source| ClusterError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The OS identity the server programs run under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerUser {
    name: Option<String>,
    uid: u32,
    gid: u32,
    home: Option<PathBuf>,
}

impl ServerUser {
    fn resolve(wanted: &str) -> Result<ServerUser, ClusterError> {
        let euid = nix::unistd::geteuid().as_raw();
        if euid != 0 {
            return Ok(ServerUser {
                name: None,
                uid: euid,
                gid: nix::unistd::getegid().as_raw(),
                home: None,
            });
        }
        let no_user = || ClusterError::NoServerUser {
            user: wanted.to_string(),
        };
        // getpwnam_r underneath: thread-safe, unlike getpwnam's shared static buffer. A name
        // with a NUL byte, an unknown name and root itself all mean "no such server user".
        let user = nix::unistd::User::from_name(wanted)
            .ok()
            .flatten()
            .filter(|user| !user.uid.is_root())
            .ok_or_else(no_user)?;
        Ok(ServerUser {
            name: Some(wanted.to_string()),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: Some(user.dir),
        })
    }

    fn is_switched(&self) -> bool {
        self.name.is_some()
    }

    /// A command for a server program, run as this user.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null());
        if self.is_switched() {
            cmd.uid(self.uid).gid(self.gid).current_dir("/");
            if let Some(home) = &self.home {
                cmd.env("HOME", home);
            }
            if let Some(name) = &self.name {
                cmd.env("USER", name).env("LOGNAME", name);
            }
        }
        cmd
    }

    /// Makes `dir` (created if needed) writable by this user only.
    fn own_dir(&self, dir: &Path) -> Result<(), ClusterError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        if self.is_switched() {
            std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
                .map_err(io_err("change the owner of", dir))?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("set permissions on", dir))
    }

    /// Can this user reach (traverse) `dir`? The server cannot use a data directory under,
    /// say, /root when it runs as `postgres`.
    fn can_traverse(&self, dir: &Path) -> bool {
        if !self.is_switched() {
            return true;
        }
        let mut current = Some(dir);
        while let Some(path) = current {
            if let Ok(meta) = fs::metadata(path) {
                let mode = meta.mode();
                let allowed = if meta.uid() == self.uid {
                    mode & 0o100 != 0
                } else if meta.gid() == self.gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                };
                if !allowed {
                    return false;
                }
            }
            current = path.parent();
        }
        true
    }
}

/// Gives `path` and everything under it to `owner` (uid, gid), never following a symlink:
/// what a server (or its archive_command) must write, made by tend running as root.
pub fn chown_tree(path: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    Ok(())
}

/// A server on a data directory tend did not make with initdb: a restored physical backup,
/// started for inspection. It listens only on 127.0.0.1 and a socket directory of its own,
/// runs as the unprivileged server user when tend runs as root, and is stopped with
/// [`DataDirServer::stop`] (or `pg_ctl -D DIR stop`).
#[derive(Debug, Clone)]
pub struct DataDirServer {
    pub data_dir: PathBuf,
    pub bindir: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
    user: ServerUser,
}

impl DataDirServer {
    /// Gives `data_dir` and everything in it to the server's OS user `os_user` (when tend
    /// runs as root; otherwise to this user, who owns it already) with the modes
    /// PostgreSQL requires.
    pub fn prepare(
        data_dir: &Path,
        bindir: &Path,
        os_user: &str,
    ) -> Result<DataDirServer, ClusterError> {
        let user = ServerUser::resolve(os_user)?;
        if user.is_switched() {
            chown_tree(data_dir, (user.uid, user.gid))
                .map_err(io_err("change the owner of", data_dir))?;
        }
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("set permissions on", data_dir))?;
        let log_dir = data_dir.join("log");
        user.own_dir(&log_dir)?;
        let socket_dir = std::env::temp_dir().join(format!(
            "tend-restored-{:016x}",
            fnv1a(&fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()))
        ));
        user.own_dir(&socket_dir)?;
        Ok(DataDirServer {
            data_dir: data_dir.to_path_buf(),
            bindir: bindir.to_path_buf(),
            socket_dir,
            log_file: log_dir.join("tend-start.log"),
            user,
        })
    }

    /// Starts the server on `port` and waits (up to `wait_secs`) until it accepts
    /// connections: after recovery reached a consistent state.
    pub fn start(&self, port: u16, wait_secs: u32) -> Result<(), ClusterError> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let options = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}'",
            self.socket_dir.display().to_string().replace('\'', "")
        );
        let output = self
            .user
            .command(&pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", &wait_secs.to_string(), "-s"])
            .output()
            .map_err(io_err("run", &pg_ctl))?;
        if !output.status.success() {
            return Err(ClusterError::StartFailed {
                log: self.log_file.clone(),
                log_tail: tail_of(&self.log_file, 12)
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| combined(&output)),
            });
        }
        Ok(())
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&self) -> Result<(), ClusterError> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let output = self
            .user
            .command(&pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "-s"])
            .output()
            .map_err(io_err("run", &pg_ctl))?;
        if !output.status.success() {
            return Err(ClusterError::StopFailed {
                output: combined(&output),
            });
        }
        Ok(())
    }

    /// The server's last words: the FATAL or PANIC line of its log when there is one, else
    /// the last line.
    pub fn last_words(&self) -> Option<String> {
        let tail = tail_of(&self.log_file, 40)?;
        let lines: Vec<&str> = tail.lines().collect();
        lines
            .iter()
            .rev()
            .find(|l| l.contains("FATAL:") || l.contains("PANIC:"))
            .or(lines.last())
            .map(|l| l.trim().to_string())
    }

    /// A connection to it through its socket directory, as the OS user's role (the
    /// restored cluster's roles are the backed-up server's).
    pub fn conninfo(&self, port: u16, user: &str, dbname: &str) -> ConnInfo {
        ConnInfo::from_parts(Host::Socket(self.socket_dir.clone()), port, user, dbname)
    }
}

/// A cluster whose files live under one root directory (a project's `.tend/`).
#[derive(Debug, Clone)]
pub struct LocalCluster {
    root: PathBuf,
    options: ClusterOptions,
}

impl LocalCluster {
    pub fn new(root: impl Into<PathBuf>, options: ClusterOptions) -> LocalCluster {
        LocalCluster {
            root: root.into(),
            options,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    /// The remembered state, if the cluster was ever created.
    pub fn state(&self) -> Result<Option<ClusterState>, ClusterError> {
        let path = self.state_path();
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ClusterError::BadState {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn save_state(&self, state: &ClusterState) -> Result<(), ClusterError> {
        let path = self.state_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(state).expect("state serializes");
        fs::write(&tmp, text + "\n").map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("write", &path))
    }

    /// Is the cluster running, stopped, or not created?
    pub fn status(&self) -> Result<ClusterStatus, ClusterError> {
        let Some(state) = self.state()? else {
            return Ok(ClusterStatus::NotInitialized);
        };
        if !state.data_dir.join("PG_VERSION").exists() {
            return Ok(ClusterStatus::NotInitialized);
        }
        Ok(match running_postmaster(&state.data_dir) {
            Some(pid) => ClusterStatus::Running {
                pid,
                port: state.port,
            },
            None => ClusterStatus::Stopped { port: state.port },
        })
    }

    /// A connection string for `dbname` on this cluster, over TCP on 127.0.0.1.
    pub fn conninfo(&self, port: u16, dbname: &str) -> ConnInfo {
        ConnInfo::from_parts(Host::Tcp("127.0.0.1".to_string()), port, SUPERUSER, dbname)
    }

    /// Creates the cluster if needed and starts it if stopped. Idempotent; safe to call from
    /// several processes at once (they serialise on a lock file).
    pub fn start(&self, on_event: &mut dyn FnMut(ClusterEvent)) -> Result<Started, ClusterError> {
        fs::create_dir_all(&self.root).map_err(io_err("create", &self.root))?;
        let _lock = FileLock::acquire(&self.root.join("lock"))?;
        let user = ServerUser::resolve(&self.options.os_user)?;
        let mut initialized = false;
        let mut state = match self.state()? {
            Some(state) if state.data_dir.join("PG_VERSION").exists() => state,
            _ => {
                let state = self.initialize(&user, on_event)?;
                initialized = true;
                state
            }
        };
        if let Some(_pid) = running_postmaster(&state.data_dir) {
            return Ok(Started {
                port: state.port,
                initialized,
                already_running: true,
            });
        }
        // The remembered port may have been taken while we were stopped.
        if !port_is_free(state.port) {
            state.port = free_port()?;
        }
        self.write_settings(&state, &user)?;
        self.save_state(&state)?;
        on_event(ClusterEvent::Starting { port: state.port });
        let pg_ctl = state.bindir.join("pg_ctl");
        let output = user
            .command(&pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(&state.data_dir)
            .arg("-l")
            .arg(&state.log_file)
            .args(["-w", "-t", "120", "-s"])
            .output()
            .map_err(io_err("run", &pg_ctl))?;
        if !output.status.success() {
            return Err(ClusterError::StartFailed {
                log: state.log_file.clone(),
                log_tail: tail_of(&state.log_file, 12)
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| combined(&output)),
            });
        }
        Ok(Started {
            port: state.port,
            initialized,
            already_running: false,
        })
    }

    fn initialize(
        &self,
        user: &ServerUser,
        on_event: &mut dyn FnMut(ClusterEvent),
    ) -> Result<ClusterState, ClusterError> {
        let initdb = self.options.tools.find(PgTool::Initdb, VersionNeed::Any)?;
        // The real directory, not a symlink's: pg_ctl and postgres are its neighbours.
        let real = fs::canonicalize(&initdb.path).unwrap_or_else(|_| initdb.path.clone());
        let bindir = real.parent().map(Path::to_path_buf).unwrap_or_default();
        let major = initdb.version.major();
        // pg_ctl and postgres must come from the same installation as initdb.
        for tool in [PgTool::PgCtl, PgTool::Postgres] {
            let path = bindir.join(tool.program());
            if !path.exists() {
                self.options
                    .tools
                    .find(tool, VersionNeed::ExactMajor(major))?;
            }
        }
        let (data_dir, log_dir, socket_dir) = self.layout(user)?;
        // A half-made data directory from an interrupted initdb is useless: start over.
        if data_dir.exists() && !data_dir.join("PG_VERSION").exists() {
            fs::remove_dir_all(&data_dir).map_err(io_err("remove", &data_dir))?;
        }
        user.own_dir(&data_dir)?;
        user.own_dir(&log_dir)?;
        user.own_dir(&socket_dir)?;
        on_event(ClusterEvent::Initializing {
            data_dir: data_dir.clone(),
        });
        let mut cmd = user.command(&initdb.path);
        cmd.arg("-D").arg(&data_dir).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        if self.options.fast_init {
            cmd.arg("--no-sync");
        }
        let output = cmd.output().map_err(io_err("run", &initdb.path))?;
        if !output.status.success() {
            return Err(ClusterError::InitdbFailed {
                data_dir,
                output: combined(&output),
            });
        }
        // Our settings live in one file of their own, included last, so they win.
        let conf = data_dir.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(io_err("read", &conf))?;
        text.push_str("\n# Settings managed by tend.\ninclude_if_exists = 'tend.conf'\n");
        fs::write(&conf, text).map_err(io_err("write", &conf))?;
        if !self.options.hba.is_empty() {
            let hba = data_dir.join("pg_hba.conf");
            let old = fs::read_to_string(&hba).map_err(io_err("read", &hba))?;
            let mut text = self.options.hba.join("\n");
            text.push('\n');
            text.push_str(&old);
            fs::write(&hba, text).map_err(io_err("write", &hba))?;
        }
        let state = ClusterState {
            port: free_port()?,
            data_dir,
            socket_dir,
            log_file: log_dir.join("postgres.log"),
            bindir,
            major,
            os_user: user.name.clone(),
        };
        self.save_state(&state)?;
        Ok(state)
    }

    /// Data, log and socket directories: under the root when the server user can reach it
    /// and the socket path fits (unix socket paths are limited to about 100 bytes);
    /// otherwise in a directory of the system's named after the root.
    fn layout(&self, user: &ServerUser) -> Result<(PathBuf, PathBuf, PathBuf), ClusterError> {
        let root = fs::canonicalize(&self.root).map_err(io_err("resolve", &self.root))?;
        let fallback = || std::env::temp_dir().join(format!("tend-{:016x}", fnv1a(&root)));
        let home = if user.can_traverse(&root) {
            root.clone()
        } else {
            let base = Path::new("/var/tmp").join(format!("tend-{:016x}", fnv1a(&root)));
            fs::create_dir_all(&base).map_err(io_err("create", &base))?;
            fs::set_permissions(&base, fs::Permissions::from_mode(0o755))
                .map_err(io_err("set permissions on", &base))?;
            base
        };
        let mut socket = home.join("run");
        if socket.as_os_str().len() + ".s.PGSQL.65535".len() + 1 > 100 {
            socket = fallback();
        }
        Ok((home.join("data"), home.join("log"), socket))
    }

    fn write_settings(&self, state: &ClusterState, user: &ServerUser) -> Result<(), ClusterError> {
        // The socket directory may sit in a temp dir that was cleaned since the last start.
        user.own_dir(&state.socket_dir)?;
        let mut text = String::from(
            "# Written by tend at each start; edit postgresql.conf instead.\n\
             listen_addresses = '127.0.0.1'\n",
        );
        text.push_str(&format!("port = {}\n", state.port));
        text.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            state.socket_dir.display().to_string().replace('\'', "''")
        ));
        for (key, value) in &self.options.settings {
            text.push_str(&format!("{key} = '{}'\n", value.replace('\'', "''")));
        }
        let path = state.data_dir.join("tend.conf");
        fs::write(&path, text).map_err(io_err("write", &path))?;
        if user.is_switched() {
            std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))
                .map_err(io_err("change the owner of", &path))?;
        }
        Ok(())
    }

    /// Creates this cluster as a streaming standby of the running local cluster `primary`
    /// (a base backup with its recovery settings, `pg_basebackup -R`, taken as the server
    /// user), ready to `start`.
    pub fn init_standby(&self, primary: &LocalCluster) -> Result<(), ClusterError> {
        let source = primary
            .state()?
            .ok_or_else(|| ClusterError::NotInitialized {
                root: primary.root.clone(),
            })?;
        let primary_port = match primary.status()? {
            ClusterStatus::Running { port, .. } => port,
            _ => {
                return Err(ClusterError::NotInitialized {
                    root: primary.root.clone(),
                });
            }
        };
        fs::create_dir_all(&self.root).map_err(io_err("create", &self.root))?;
        let _lock = FileLock::acquire(&self.root.join("lock"))?;
        let user = ServerUser::resolve(&self.options.os_user)?;
        let (data_dir, log_dir, socket_dir) = self.layout(&user)?;
        user.own_dir(&data_dir)?;
        user.own_dir(&log_dir)?;
        user.own_dir(&socket_dir)?;
        // Beside the server when it is there; else the newest the tool search finds (the
        // server-only packages of some majors ship no client programs).
        let beside = source.bindir.join("pg_basebackup");
        let program = if beside.is_file() {
            beside
        } else {
            self.options
                .tools
                .find(
                    PgTool::PgBasebackup,
                    VersionNeed::AtLeastMajor(source.major),
                )?
                .path
        };
        let output = user
            .command(&program)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .arg("-D")
            .arg(&data_dir)
            .args(["-R", "-X", "stream", "-c", "fast"])
            .output()
            .map_err(io_err("run", &program))?;
        if !output.status.success() {
            return Err(ClusterError::BaseBackupFailed {
                data_dir,
                output: combined(&output),
            });
        }
        self.save_state(&ClusterState {
            port: free_port()?,
            data_dir,
            socket_dir,
            log_file: log_dir.join("postgres.log"),
            bindir: source.bindir,
            major: source.major,
            os_user: user.name.clone(),
        })
    }

    /// Stops the server (fast shutdown: sessions are disconnected, nothing is lost).
    /// Returns whether it was running.
    pub fn stop(&self) -> Result<bool, ClusterError> {
        let Some(state) = self.state()? else {
            return Ok(false);
        };
        if !self.root.exists() {
            return Ok(false);
        }
        let _lock = FileLock::acquire(&self.root.join("lock"))?;
        if running_postmaster(&state.data_dir).is_none() {
            return Ok(false);
        }
        let user = ServerUser::resolve(&self.options.os_user)?;
        let pg_ctl = state.bindir.join("pg_ctl");
        let output = user
            .command(&pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(&state.data_dir)
            .args(["-m", "fast", "-w", "-t", "60", "-s"])
            .output()
            .map_err(io_err("run", &pg_ctl))?;
        if !output.status.success() && running_postmaster(&state.data_dir).is_some() {
            return Err(ClusterError::StopFailed {
                output: combined(&output),
            });
        }
        Ok(true)
    }

    /// Stops the server at once, without a checkpoint (throwaway clusters only).
    pub fn kill(&self) -> Result<(), ClusterError> {
        if let Some(state) = self.state()?
            && let Some(pid) = running_postmaster(&state.data_dir)
        {
            // SAFETY: kill with a pid we read from postmaster.pid; SIGQUIT is postgres's
            // immediate shutdown.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGQUIT);
            }
            for _ in 0..100 {
                if running_postmaster(&state.data_dir).is_none() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Every path `destroy` removes, for a dry run and for the confirmation prompt.
    pub fn files(&self) -> Result<Vec<PathBuf>, ClusterError> {
        let mut paths = vec![self.root.clone()];
        if let Some(state) = self.state()? {
            for p in [&state.data_dir, &state.socket_dir] {
                if !p.starts_with(&self.root) {
                    paths.push(p.clone());
                }
            }
            if let Some(parent) = state.data_dir.parent()
                && !parent.starts_with(&self.root)
            {
                paths.push(parent.to_path_buf());
            }
        }
        paths.dedup();
        Ok(paths)
    }

    /// Stops the server and deletes every file of the cluster.
    pub fn destroy(&self) -> Result<(), ClusterError> {
        let paths = match self.files() {
            Ok(paths) => {
                self.stop()?;
                paths
            }
            // An unreadable state file must not stop a user from starting over.
            Err(ClusterError::BadState { .. }) => vec![self.root.clone()],
            Err(e) => return Err(e),
        };
        for path in paths.iter().rev() {
            match fs::remove_dir_all(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", path)(e)),
            }
        }
        Ok(())
    }
}

/// The postmaster's pid when one is running on `data_dir`.
pub fn running_postmaster(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    if pid <= 0 {
        return None;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // After a crash the pid may now belong to another program.
    let is_postgres = match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains("postgres"),
        Err(_) => true,
    };
    (alive && is_postgres).then_some(pid as u32)
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port nobody listens on now, from the kernel's ephemeral range.
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("bind a port on", Path::new("127.0.0.1")))?;
    let port = listener
        .local_addr()
        .map_err(io_err("bind a port on", Path::new("127.0.0.1")))?
        .port();
    Ok(port)
}

fn combined(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    text.trim().to_string()
}

fn tail_of(path: &Path, lines: usize) -> Option<String> {
    let mut file = fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(8192))).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let all: Vec<&str> = text.lines().collect();
    Some(all[all.len().saturating_sub(lines)..].join("\n"))
}

/// A stable short hash for naming directories after a path.
fn fnv1a(path: &Path) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in path.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

/// An exclusive `flock` on a file, released on drop.
pub struct FileLock {
    file: fs::File,
}

impl FileLock {
    pub fn acquire(path: &Path) -> Result<FileLock, ClusterError> {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("open", path))?;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io_err("lock", path)(io::Error::last_os_error()));
        }
        Ok(FileLock { file })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root, the server user is looked up by name from many threads at once (a daemon's
    /// runtime): every lookup sees the same user, and root or an unknown name is refused.
    #[test]
    fn server_user_lookups_agree_across_threads_and_refuse_root() {
        if !nix::unistd::geteuid().is_root() {
            let me = ServerUser::resolve("anyone").unwrap();
            assert!(!me.is_switched());
            return;
        }
        let user = std::env::var("TEND_PG_USER").unwrap_or_else(|_| "postgres".to_string());
        let found: Vec<(u32, u32, Option<PathBuf>)> = (0..8)
            .map(|_| {
                let user = user.clone();
                std::thread::spawn(move || {
                    let u = ServerUser::resolve(&user).unwrap();
                    (u.uid, u.gid, u.home)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(found.iter().all(|f| f == &found[0] && f.0 != 0));
        for refused in ["root", "no-such-user-tend", "bad\0name"] {
            assert!(matches!(
                ServerUser::resolve(refused),
                Err(ClusterError::NoServerUser { .. })
            ));
        }
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(fnv1a(Path::new("/a")), fnv1a(Path::new("/a")));
        assert_ne!(fnv1a(Path::new("/a")), fnv1a(Path::new("/b")));
    }

    #[test]
    fn missing_cluster_reports_not_initialized() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::new(dir.path().join(".tend"), ClusterOptions::default());
        assert_eq!(cluster.status().unwrap(), ClusterStatus::NotInitialized);
        assert!(!cluster.stop().unwrap());
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(".tend");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("cluster.json"), "{nope").unwrap();
        let cluster = LocalCluster::new(&root, ClusterOptions::default());
        let err = cluster.status().unwrap_err();
        assert!(err.to_string().contains("tend dev destroy"), "{err}");
        cluster.destroy().unwrap();
        assert!(!root.exists());
    }
}
