//! How pg_restore reaches the target server.
//!
//! pg_restore 17 and newer begin every session with `SET transaction_timeout = 0;`, which
//! PostgreSQL 16 and older reject ("unrecognized configuration parameter"), so on its own it
//! cannot restore into them, not even an archive of the same old server. Two ways out were
//! weighed:
//! - an older pg_restore matching the target: it cannot read the archives of a newer
//!   pg_dump (pg_dump must be at least the server's major, and tend picks the newest), and
//!   often none is installed at all (npm's PostgreSQL packages ship no client programs);
//! - pg_restore writing its script (`--file=-`), streamed through the psql of its own
//!   directory (psql speaks to older servers) with that one statement left out of each
//!   session's preamble. It reads every archive that pg_restore reads, keeps memory flat
//!   (lines flow through a pipe, no temporary file), and gives up only pg_restore's `--jobs`
//!   (a script is one session).
//!
//! The second is what runs, when pg_restore is 17+ and the target older than 17; otherwise
//! pg_restore connects itself. psql runs with `ON_ERROR_STOP`, so the first error stops it
//! as `--exit-on-error` stops pg_restore, and its error (the server's message) is the one
//! shown. psql is killed before pg_restore, so a script cut short never reaches psql's
//! end-of-input, where psql would run an unfinished statement; a `--single-transaction`
//! script without its `COMMIT` is rolled back by the server, as with pg_restore alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use tend_pg::ConnInfo;
use tokio_util::sync::CancellationToken;

use crate::ops::BackupError;

/// The first major whose pg_restore sets `transaction_timeout`.
const SETS_TRANSACTION_TIMEOUT: u32 = 17;

/// The statement an older server rejects, as pg_restore writes it in a session's preamble.
const TRANSACTION_TIMEOUT: &[u8] = b"SET transaction_timeout = 0;\n";

/// A pg_restore program, and how it reaches the target server.
#[derive(Debug, Clone)]
pub(crate) struct PgRestore {
    pub program: PathBuf,
    /// The psql its script goes through, when it cannot connect to the target itself.
    psql: Option<PathBuf>,
}

impl PgRestore {
    /// pg_restore connecting to the target itself.
    pub(crate) fn direct(program: PathBuf) -> PgRestore {
        PgRestore {
            program,
            psql: None,
        }
    }

    /// The way `program` restores into a server of major `target_major`.
    pub(crate) fn for_target(program: &Path, target_major: u32) -> Result<PgRestore, BackupError> {
        let major = program_major(program);
        if target_major >= SETS_TRANSACTION_TIMEOUT
            || major.is_none_or(|m| m < SETS_TRANSACTION_TIMEOUT)
        {
            return Ok(PgRestore::direct(program.to_path_buf()));
        }
        let psql = program.with_file_name("psql");
        if !psql.is_file() {
            return Err(BackupError::OlderTarget {
                pg_restore: program.display().to_string(),
                pg_restore_major: major.unwrap_or(SETS_TRANSACTION_TIMEOUT),
                target_major,
            });
        }
        Ok(PgRestore {
            program: program.to_path_buf(),
            psql: Some(psql),
        })
    }

    /// Does it go through psql (and so run without `--jobs`)?
    pub(crate) fn through_psql(&self) -> bool {
        self.psql.is_some()
    }

    /// Starts pg_restore with `args` (without `--dbname`) into `target`, its stdin from
    /// `stdin`, stdout to nowhere and stderr captured. With `die_with_parent`, the programs
    /// are killed if the spawning thread ends (tend dies).
    pub(crate) fn spawn(
        &self,
        target: &ConnInfo,
        args: &[String],
        stdin: Stdio,
        die_with_parent: bool,
    ) -> Result<Restoring, BackupError> {
        let (dbname, env) = target.for_child_program();
        let spawn_error = |program: &Path| {
            let program = program.display().to_string();
            move |source| BackupError::Spawn { program, source }
        };
        let Some(psql) = &self.psql else {
            let restore = command(&self.program, die_with_parent)
                .args(args)
                .arg(format!("--dbname={dbname}"))
                .envs(env)
                .stdin(stdin)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(spawn_error(&self.program))?;
            return Ok(Restoring {
                restore,
                psql: None,
            });
        };
        let mut psql = command(psql, die_with_parent)
            .args([
                "--no-psqlrc",
                "--quiet",
                "--no-password",
                "--set=ON_ERROR_STOP=1",
            ])
            .arg(format!("--dbname={dbname}"))
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error(psql))?;
        // A script is one session: pg_restore refuses --jobs with --file.
        let args: Vec<&String> = args.iter().filter(|a| !a.starts_with("--jobs")).collect();
        let restore = command(&self.program, die_with_parent)
            .args(args)
            .arg("--file=-")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut restore = match restore {
            Ok(restore) => restore,
            Err(source) => {
                let _ = psql.kill();
                let _ = psql.wait();
                return Err(spawn_error(&self.program)(source));
            }
        };
        let script = restore.stdout.take().expect("piped");
        let into = psql.stdin.take().expect("piped");
        let pump = std::thread::spawn(move || pump(script, into));
        let mut errors = psql.stderr.take().expect("piped");
        // Read as it comes: a psql blocked on a full stderr pipe would stall the pipeline.
        let stderr = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = errors.read_to_end(&mut text);
            text
        });
        Ok(Restoring {
            restore,
            psql: Some(Psql {
                child: psql,
                pump,
                stderr,
            }),
        })
    }
}

/// The pg_restore command, set to die with the spawning thread when asked.
fn command(program: &Path, die_with_parent: bool) -> Command {
    let mut command = Command::new(program);
    #[cfg(target_os = "linux")]
    if die_with_parent {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = die_with_parent;
    command
}

/// The major of a PostgreSQL program, from `PROGRAM --version`.
fn program_major(program: &Path) -> Option<u32> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    tend_pg::PgVersion::parse_version_output(&String::from_utf8_lossy(&output.stdout))
        .map(|v| v.major())
}

/// Copies pg_restore's script to psql, line by line, without `SET transaction_timeout = 0;`
/// in a session's preamble (see [`Preamble`]). A last line without its newline is pg_restore
/// cut short: it is not passed on.
fn pump(script: impl Read, mut into: ChildStdin) -> std::io::Result<()> {
    let mut script = BufReader::with_capacity(1024 * 1024, script);
    let mut preamble = Preamble::default();
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        if script.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
            return Ok(());
        }
        if preamble.keeps(&line) {
            into.write_all(&line)?;
        }
    }
}

/// Where pg_restore's script is: in a session's preamble (its start, or right after a
/// `\connect`), where pg_restore sets its fixed session state, or past it. Only there is
/// `SET transaction_timeout = 0;` pg_restore's own statement rather than a line of the
/// backup's data or definitions.
#[derive(Debug)]
struct Preamble {
    inside: bool,
}

impl Default for Preamble {
    fn default() -> Self {
        Preamble { inside: true }
    }
}

impl Preamble {
    /// Whether `line` goes on to psql.
    fn keeps(&mut self, line: &[u8]) -> bool {
        if line.starts_with(b"\\connect ") {
            self.inside = true;
            return true;
        }
        if !self.inside {
            return true;
        }
        if line == TRANSACTION_TIMEOUT {
            return false;
        }
        let preamble_line = line == b"\n"
            || line.starts_with(b"--")
            || line.starts_with(b"SET ")
            || line.starts_with(b"SELECT pg_catalog.set_config(")
            || line.starts_with(b"\\")
            || line == b"BEGIN;\n";
        self.inside = preamble_line;
        true
    }
}

/// psql and the thread that feeds it.
#[derive(Debug)]
struct Psql {
    child: Child,
    pump: std::thread::JoinHandle<std::io::Result<()>>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
}

/// A running restore: pg_restore, and the psql it feeds when it goes through one.
#[derive(Debug)]
pub(crate) struct Restoring {
    restore: Child,
    psql: Option<Psql>,
}

impl Restoring {
    /// pg_restore's stdin, once.
    pub(crate) fn stdin(&mut self) -> Option<ChildStdin> {
        self.restore.stdin.take()
    }

    /// Stops the restore before it can commit: psql first (see the module's note).
    pub(crate) fn kill(mut self) {
        if let Some(psql) = &mut self.psql {
            let _ = psql.child.kill();
            let _ = psql.child.wait();
        }
        let _ = self.restore.kill();
        let _ = self.restore.wait();
    }

    /// Waits for the restore to end. Its status and stderr are psql's when psql failed (its
    /// error is the server's), else pg_restore's.
    pub(crate) fn wait_with_output(self) -> std::io::Result<Output> {
        let restored = self.restore.wait_with_output()?;
        with_psql(restored, self.psql)
    }

    /// [`Restoring::wait_with_output`], unless `cancel` fires first: then the restore is
    /// killed before it can commit, and the answer is `None`.
    pub(crate) fn wait_or_cancel(
        mut self,
        cancel: &CancellationToken,
    ) -> std::io::Result<Option<Output>> {
        // pg_restore's stderr is read while it runs, so a full pipe never stalls it.
        let stderr = self.restore.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = pipe.read_to_end(&mut text);
                text
            })
        });
        let status = loop {
            if cancel.is_cancelled() {
                self.kill();
                return Ok(None);
            }
            if let Some(status) = self.restore.try_wait()? {
                break status;
            }
            std::thread::sleep(CANCEL_POLL);
        };
        let restored = Output {
            status,
            stdout: Vec::new(),
            stderr: stderr
                .map(|reader| reader.join().unwrap_or_default())
                .unwrap_or_default(),
        };
        with_psql(restored, self.psql).map(Some)
    }
}

/// How often a cancellable wait looks at its token.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The outcome of a restore whose pg_restore has ended: psql's when it went through one
/// and psql failed (its error is the server's), else pg_restore's.
fn with_psql(restored: Output, psql: Option<Psql>) -> std::io::Result<Output> {
    let Some(psql) = psql else {
        return Ok(restored);
    };
    let pumped = psql.pump.join();
    let status = {
        let mut child = psql.child;
        child.wait()?
    };
    let stderr = psql.stderr.join().unwrap_or_default();
    if !status.success() {
        let mut text = stderr;
        text.extend_from_slice(&restored.stderr);
        return Ok(Output {
            status,
            stdout: Vec::new(),
            stderr: text,
        });
    }
    if !restored.status.success() {
        return Ok(restored);
    }
    match pumped {
        Ok(Ok(())) => Ok(restored),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("the thread feeding psql panicked")),
    }
}

#[cfg(test)]
mod tests {
    use super::Preamble;

    fn kept(script: &str) -> String {
        let mut preamble = Preamble::default();
        script
            .split_inclusive('\n')
            .filter(|line| preamble.keeps(line.as_bytes()))
            .collect()
    }

    #[test]
    fn transaction_timeout_is_left_out_of_each_sessions_preamble_only() {
        let script = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\
                      SET statement_timeout = 0;\nSET lock_timeout = 0;\n\
                      SET transaction_timeout = 0;\nSET client_encoding = 'UTF8';\n\
                      SELECT pg_catalog.set_config('search_path', '', false);\nBEGIN;\n\n\
                      CREATE TABLE public.t (x text);\n\
                      COPY public.t (x) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n\n\
                      \\connect other\n\nSET statement_timeout = 0;\n\
                      SET transaction_timeout = 0;\nSET row_security = off;\n\
                      CREATE TABLE public.u ();\nCOMMIT;\n";
        let out = kept(script);
        assert_eq!(
            out.matches("SET transaction_timeout = 0;").count(),
            1,
            "{out}"
        );
        assert!(
            out.contains("FROM stdin;\nSET transaction_timeout = 0;\n\\."),
            "a row of the data was dropped: {out}"
        );
        assert_eq!(
            out.len() + 2 * "SET transaction_timeout = 0;\n".len(),
            script.len()
        );
    }
}
