//! `tend serve` as a process: the schedule it prints, leader failover between real
//! instances (kill -9), no run twice, runs recorded, SIGTERM, and the HTTP endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tend_testkit::{TestDb, TestProject};

use crate::run;

/// A running `tend serve`, its stderr collected as it comes.
pub(crate) struct Instance {
    child: Child,
    log: Arc<Mutex<String>>,
    pub(crate) port: u16,
}

impl Instance {
    pub(crate) fn start(
        project: &TestProject,
        url: &str,
        port: u16,
        extra_env: &[(&str, &str)],
    ) -> Instance {
        let mut cmd = project.tend_process();
        cmd.env("DATABASE_URL", url)
            .env("TEND_SERVE_LISTEN", format!("127.0.0.1:{port}"))
            .args(["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("tend serve starts");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Instance { child, log, port }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `text` `times` times; panics with the log after `within`.
    pub(crate) fn wait_for(&self, text: &str, times: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.log().matches(text).count() < times {
            assert!(
                Instant::now() < deadline,
                "no `{text}` (x{times}) from tend serve within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    pub(crate) fn terminate(&mut self) -> i32 {
        // SAFETY: a signal to our own child, whose pid is live until it is waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "tend serve did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A GET on the instance's HTTP port: (status, body).
    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http_get(self.port, path, token)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    http_request(port, "GET", path, token, &[])
}

/// A request with any method and extra headers: (status, body).
pub(crate) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect to :{port}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A free TCP port on loopback.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A database owned by a LOGIN role with no SUPERUSER or CREATEDB, and that role's URL,
/// with the host spelled as given (`127.0.0.1`, `localhost`).
pub(crate) fn app_database(role: &str) -> Option<(TestDb, tend_pg::ConnInfo)> {
    let db = TestDb::create();
    let server = tend_testkit::TestServer::get();
    let mut app = server.password_user(role, "serve-app-secret", &db.name)?;
    app.set("sslmode", "disable");
    db.execute(&format!("ALTER DATABASE {} OWNER TO {role}", db.name));
    Some((db, app))
}

fn with_host(info: &tend_pg::ConnInfo, host: &str) -> String {
    let mut info = info.clone();
    info.set("host", host);
    info.to_secret_string()
}

/// Runs Debian's promtool (installed by `scripts/setup.sh --for-tests`) on `input` and
/// asserts it accepts it.
fn promtool_accepts(args: &[&str], input: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool runs (scripts/setup.sh --for-tests installs Debian's prometheus package)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?} refused it: {}{}\n{input}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A project whose `tend.toml` has `[serve]` with a short interval (so standbys and
/// requests are quick), then `rest` (schedule entries, other sections).
fn serve_project(rest: &str) -> TestProject {
    let project = TestProject::new();
    project.write(
        "tend.toml",
        &format!("[serve]\ninterval = \"500ms\"\n\n{rest}"),
    );
    project
}

#[test]
fn print_alert_rules_writes_rules_promtool_accepts() {
    let project = TestProject::new();
    let (code, out, err) = run(project
        .tend()
        .env("BACKUP_SCHEDULE", "0 */6 * * *")
        .args(["serve", "--print-alert-rules"]));
    assert_eq!(code, 0, "{err}");
    // The backup's limit is its period (6 h) plus the grace (1 h).
    assert!(out.contains("> 25200"), "{out}");
    let file = project.path().join("rules.yml");
    std::fs::write(&file, &out).unwrap();
    let checked = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect(
            "promtool runs (scripts/setup.sh --for-tests installs Debian's prometheus package)",
        );
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn print_schedule_shows_the_default_routine_and_refuses_a_bad_entry() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().env("BACKUP_SCHEDULE", "30 3 * * *").args([
        "serve",
        "--print-schedule",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["origin"], "default");
    let entries = report["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["backup", "backup prune", "backup verify --restore", "check"]
    );
    assert_eq!(entries[0]["cron"], "30 3 * * *");
    assert_eq!(entries[1]["after"], "backup");
    assert_eq!(entries[3]["cron"], "*/5 * * * *");
    assert_eq!(entries[0]["next"].as_array().unwrap().len(), 3);
    let first = entries[0]["next"][0].as_str().unwrap();
    assert!(first.ends_with("03:30:00Z"), "{first}");

    // Each bad entry is a configuration error (exit 3) that says what to write.
    let refused = |toml: &str, expected: &[&str]| {
        project.write("tend.toml", toml);
        let (code, _, err) = run(project.tend().args(["serve", "--print-schedule"]));
        assert_eq!(code, 3, "{err}");
        for text in expected {
            assert!(err.contains(text), "no `{text}` in: {err}");
        }
    };
    refused(
        "[[schedule]]\ntask = \"backup\"\ncron = \"0 2 * *\"\n",
        &["[[schedule]] entry 1", "has 4 fields"],
    );
    refused(
        "[[schedule]]\ntask = \"backup now\"\ncron = \"0 2 * * *\"\n",
        &["backup verify --restore"],
    );
    refused(
        "[[schedule]]\ntask = \"check\"\ncron = \"0 2 * * *\"\ntime_zone = \"Mars/Olympus\"\n",
        &["not a time zone"],
    );
    refused(
        "[[schedule]]\ntask = \"vacuum\"\nafter = \"nightly\"\n",
        &["runs after `nightly`, and no entry has that name"],
    );
    refused("[[schedule]]\ntask = \"check\"\n", &["say when it runs"]);

    // An API reachable from other machines needs a token.
    project.write("tend.toml", "");
    let (code, _, err) = run(project
        .tend()
        .env("TEND_SERVE_LISTEN", "0.0.0.0:8432")
        .args(["serve", "--print-schedule"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("serve.token"), "{err}");
}

const SCHEDULE: &str = r#"
[serve]
interval = "500ms"

[[schedule]]
name = "tick"
task = "sql:tick.sql"
cron = "* * * * * *"
"#;

#[test]
fn a_standby_takes_over_when_the_leader_is_killed_and_no_run_happens_twice() {
    let Some((db, app)) = app_database("tend_serve_app") else {
        return;
    };
    let project = TestProject::new();
    project.write("tend.toml", SCHEDULE);
    project.write(
        "tick.sql",
        "CREATE TABLE IF NOT EXISTS ticks (id serial, at timestamptz DEFAULT clock_timestamp());
         INSERT INTO ticks DEFAULT VALUES;",
    );
    // Two spellings of one server's address; both are the same database.
    let urls = [with_host(&app, "127.0.0.1"), with_host(&app, "localhost")];
    let first = Instance::start(&project, &urls[0], free_port(), &[]);
    first.wait_for("leading", 1, Duration::from_secs(60));
    let second = Instance::start(&project, &urls[1], free_port(), &[]);
    second.wait_for("standing by", 1, Duration::from_secs(60));
    first.wait_for("run tick succeeded", 2, Duration::from_secs(30));

    // Kill the leader, again and again: each time the standby takes over and runs the
    // schedule, and the killed one comes back as a standby.
    let mut leader = first;
    let mut standby = second;
    let mut url_index = 0;
    for round in 0..5 {
        let leads_before = standby.log().matches("leading").count();
        leader.kill9();
        standby.wait_for("leading", leads_before + 1, Duration::from_secs(30));
        let ran_before = standby.log().matches("run tick succeeded").count();
        standby.wait_for(
            "run tick succeeded",
            ran_before + 2,
            Duration::from_secs(30),
        );
        url_index = 1 - url_index;
        let back = Instance::start(&project, &urls[url_index], free_port(), &[]);
        back.wait_for("standing by", 1, Duration::from_secs(60));
        eprintln!("round {round}: the standby took over");
        leader = std::mem::replace(&mut standby, back);
    }
    assert_eq!(leader.terminate(), 0, "{}", leader.log());
    assert_eq!(standby.terminate(), 0, "{}", standby.log());

    let column = |sql: &str| db.query_column(sql);
    // Never twice: no scheduled time claimed twice, and no two runs of the entry at once.
    let twice = column(
        "SELECT count(*) FROM (SELECT entry, scheduled_for FROM tend.schedule_runs
           GROUP BY 1, 2 HAVING count(*) > 1) d",
    );
    assert_eq!(twice, vec![Some("0".into())]);
    let overlapping = column(
        "SELECT count(*) FROM tend.schedule_runs a JOIN tend.schedule_runs b
           ON a.id < b.id AND a.entry = b.entry
          AND tstzrange(a.started_at, coalesce(a.finished_at, 'infinity'))
           && tstzrange(b.started_at, coalesce(b.finished_at, 'infinity'))
          WHERE a.outcome <> 'skipped' AND b.outcome <> 'skipped'",
    );
    assert_eq!(overlapping, vec![Some("0".into())]);
    // Every run that succeeded did its work once; a run cut off by kill -9 did it at most
    // once (its record may say abandoned, or still running when the last instance stopped).
    let succeeded: i64 = column(
        "SELECT count(*) FROM tend.schedule_runs WHERE entry = 'tick' AND outcome = 'succeeded'",
    )[0]
    .as_ref()
    .unwrap()
    .parse()
    .unwrap();
    let cut_off: i64 = column(
        "SELECT count(*) FROM tend.schedule_runs
          WHERE entry = 'tick' AND outcome IN ('abandoned', 'running')",
    )[0]
    .as_ref()
    .unwrap()
    .parse()
    .unwrap();
    let ticks: i64 = column("SELECT count(*) FROM ticks")[0]
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ticks >= succeeded && ticks <= succeeded + cut_off,
        "{ticks} ticks for {succeeded} succeeded and {cut_off} cut-off runs"
    );
    // Runs were made by more than two instances (every restart is a new one), and nothing
    // failed.
    let instances = column("SELECT count(DISTINCT instance) FROM tend.schedule_runs");
    let instances: i64 = instances[0].as_ref().unwrap().parse().unwrap();
    assert!(instances >= 3, "{instances} instances ran the schedule");
    let failed = column("SELECT count(*) FROM tend.schedule_runs WHERE outcome = 'failed'");
    assert_eq!(failed, vec![Some("0".into())]);
}

#[test]
fn sigterm_cancels_a_running_task_records_it_and_exits_zero() {
    let Some((db, app)) = app_database("tend_serve_term") else {
        return;
    };
    let project = serve_project(
        r#"
[[schedule]]
name = "slow"
task = "sql:slow.sql"
cron = "*/2 * * * * *"
"#,
    );
    project.write(
        "slow.sql",
        "CREATE TABLE slow_done (at timestamptz); SELECT pg_sleep(60); INSERT INTO slow_done VALUES (now());",
    );
    let mut serve = Instance::start(&project, &app.to_secret_string(), free_port(), &[]);
    serve.wait_for("run slow (scheduled", 1, Duration::from_secs(60));
    let code = serve.terminate();
    assert_eq!(code, 0, "{}", serve.log());
    let log = serve.log();
    assert!(log.contains("run slow cancelled"), "{log}");
    assert!(log.contains("tend serve: stopped"), "{log}");
    assert!(!log.contains("serve-app-secret"), "{log}");
    let outcome = db.query_column("SELECT outcome FROM tend.schedule_runs WHERE entry = 'slow'");
    assert_eq!(outcome, vec![Some("cancelled".into())]);
    // Its transaction was rolled back.
    let table = db.query_column("SELECT to_regclass('slow_done')::text");
    assert_eq!(table, vec![None]);
}

#[test]
fn a_scheduled_backup_is_the_same_backup_and_the_api_shows_its_runs() {
    let Some((_db, app)) = app_database("tend_serve_backup") else {
        return;
    };
    let project = serve_project(
        r#"
# Prune runs, and keeps every backup of this test: what the API listed is still there
# when the command lists it.
[backup.retention]
keep_last = 1000

[[schedule]]
task = "backup"
cron = "*/3 * * * * *"

[[schedule]]
task = "backup prune"
after = "backup"
"#,
    );
    let token = "api-token-not-for-logs";
    let env = [
        ("BACKUP_ENCRYPTION_KEY", "serve-backup-passphrase"),
        ("TEND_SERVE_TOKEN", token),
    ];
    let url = app.to_secret_string();
    let mut serve = Instance::start(&project, &url, free_port(), &env);
    serve.wait_for("run backup prune succeeded", 1, Duration::from_secs(90));

    // Orchestrators' endpoints need no token; the API does.
    let (status, body) = serve.get("/healthz", None);
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = serve.get("/readyz", None);
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["role"], "leader");
    let (status, _) = serve.get("/api/runs", None);
    assert_eq!(status, 401);
    let (status, _) = serve.get("/api/runs", Some("wrong-token"));
    assert_eq!(status, 401);
    let (status, body) = serve.get("/api/runs?entry=backup", Some(token));
    assert_eq!(status, 200, "{body}");
    let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let done = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == "succeeded")
        .expect("a succeeded backup run");
    let id = done["report"]["id"].as_str().unwrap().to_string();
    // /metrics: behind the token, in Prometheus' text format that promtool checks.
    let (status, _) = serve.get("/metrics", None);
    assert_eq!(status, 401);
    let (status, metrics) = serve.get("/metrics", Some(token));
    assert_eq!(status, 200, "{metrics}");
    promtool_accepts(&["check", "metrics"], &metrics);
    for name in [
        "tend_leader 1",
        "tend_database_up 1",
        "tend_backup_last_success_timestamp_seconds{kind=\"logical\"}",
        "tend_schedule_last_outcome{entry=\"backup\",task=\"backup\",outcome=\"succeeded\"} 1",
        "tend_connections_max",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "no {name} in:\n{metrics}");
    }
    let (status, body) = serve.get("/api/schedule", Some(token));
    assert_eq!(status, 200, "{body}");
    let schedule: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(schedule["role"], "leader");
    assert_eq!(schedule["entries"][1]["after"], "backup");
    assert!(!body.contains(token) && !body.contains("serve-app-secret"));
    let (status, api_backups) = serve.get("/api/backups", Some(token));
    assert_eq!(status, 200, "{api_backups}");
    assert_eq!(serve.terminate(), 0, "{}", serve.log());

    // The backup it took is in the store, as `tend backup run` would have left it.
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", &url)
        .env("BACKUP_ENCRYPTION_KEY", "serve-backup-passphrase")
        .args(["backup", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{id} not in {out}");
    // The API's list is the command's report: every backup it listed is in the command's
    // list, field for field (the command ran later, so it may list more).
    let api: serde_json::Value = serde_json::from_str(&api_backups).unwrap();
    let cli: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(api["store"], cli["store"]);
    let listed = api["backups"].as_array().unwrap();
    assert!(!listed.is_empty());
    for backup in listed {
        assert!(
            cli["backups"].as_array().unwrap().contains(backup),
            "{backup} differs from the command's list: {out}"
        );
    }
    let log = serve.log();
    assert!(
        !log.contains(token) && !log.contains("serve-backup-passphrase"),
        "{log}"
    );
}

#[test]
fn a_run_missed_while_no_instance_led_runs_once_or_is_skipped_by_policy() {
    let Some((db, app)) = app_database("tend_serve_missed") else {
        return;
    };
    let url = app.to_secret_string();
    for (policy, expected) in [("run-once", "succeeded"), ("skip", "skipped")] {
        let project = TestProject::new();
        let entry = format!("every 4s, {policy}");
        project.write(
            "tend.toml",
            &format!(
                r#"
[serve]
interval = "500ms"
missed_runs = "{policy}"

[[schedule]]
name = "{entry}"
task = "sql:noop.sql"
cron = "*/4 * * * * *"
"#
            ),
        );
        project.write("noop.sql", "SELECT 1;");
        let mut serve = Instance::start(&project, &url, free_port(), &[]);
        serve.wait_for(
            &format!("run {entry} succeeded"),
            1,
            Duration::from_secs(60),
        );
        assert_eq!(serve.terminate(), 0, "{}", serve.log());
        // Down over at least one scheduled time.
        std::thread::sleep(Duration::from_secs(5));
        let mut serve = Instance::start(&project, &url, free_port(), &[]);
        serve.wait_for("leading", 1, Duration::from_secs(60));
        let deadline = Instant::now() + Duration::from_secs(30);
        let missed = loop {
            let rows = db.query_column(&format!(
                "SELECT outcome FROM tend.schedule_runs
                  WHERE entry = '{entry}' AND trigger = 'missed' AND outcome <> 'running'"
            ));
            if !rows.is_empty() || Instant::now() > deadline {
                break rows;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(missed, vec![Some(expected.to_string())], "{}", serve.log());
        assert_eq!(serve.terminate(), 0, "{}", serve.log());
    }
}

/// A real HTTP server on loopback that answers 200 to every POST and keeps the bodies.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                sink.lock()
                    .unwrap()
                    .push((path, String::from_utf8_lossy(&body).into_owned()));
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { port, bodies }
    }

    /// The bodies posted to `path`, as JSON.
    fn received(&self, path: &str) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    }
}

/// aiosmtpd (PyPI; `scripts/setup.sh --for-tests` installs it) storing what it receives
/// in a Maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        SmtpServer::start_with(&[])
    }

    /// With STARTTLS required, on a certificate and key (PEM files).
    fn start_with(tls: &[&std::path::Path]) -> SmtpServer {
        let port = free_port();
        let maildir = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new("python3");
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        if let [cert, key] = tls {
            command.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        let child = command
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd runs (scripts/setup.sh --for-tests installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    /// The messages received, as text.
    fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail").join("new");
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_failing_backup_alerts_once_per_channel_and_resolves_once_and_a_down_channel_stops_nothing() {
    let Some((db, app)) = app_database("tend_serve_alerts") else {
        return;
    };
    let project = serve_project(
        r#"
[[schedule]]
task = "backup"
cron = "*/2 * * * * *"
"#,
    );
    // The store is a file where a directory should be: every backup fails until it goes.
    project.write("store", "not a directory");
    let receiver = Receiver::start();
    let smtp = SmtpServer::start();
    let down = free_port();
    let token = "alerts-api-token";
    let env = [
        ("BACKUP_ENCRYPTION_KEY", "alerts-backup-passphrase"),
        ("BACKUP_DIR", "store"),
        ("TEND_SERVE_TOKEN", token),
        (
            "TEND_ALERT_WEBHOOK_URL",
            &format!("http://127.0.0.1:{}/hook", receiver.port),
        ),
        // A receiver that is down: retried, shown, and never in the way.
        (
            "SLACK_WEBHOOK_URL",
            &format!("http://127.0.0.1:{down}/slack"),
        ),
        ("ALERT_EMAIL", "oncall@example.com"),
        ("SMTP_URL", &format!("smtp://127.0.0.1:{}", smtp.port)),
    ];
    let mut serve = Instance::start(&project, &app.to_secret_string(), free_port(), &env);
    serve.wait_for("run backup failed", 3, Duration::from_secs(60));
    wait_until(
        "the firing alert",
        Duration::from_secs(30),
        || !receiver.received("/hook").is_empty() && !smtp.messages().is_empty(),
        || serve.log(),
    );
    // More failed runs: still one alert.
    serve.wait_for("run backup failed", 5, Duration::from_secs(60));
    let hooks = receiver.received("/hook");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["alert"], "task_failed:backup");
    assert_eq!(hooks[0]["state"], "firing");
    assert_eq!(hooks[0]["severity"], "critical");
    assert_eq!(hooks[0]["database"], db.name.as_str());
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("[tend] FIRING critical"), "{}", mails[0]);
    assert!(mails[0].contains("oncall@example.com"), "{}", mails[0]);
    let (status, body) = serve.get("/api/alerts", Some(token));
    assert_eq!(status, 200, "{body}");
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alerts["firing"][0]["alert"], "task_failed:backup");
    let slack = alerts["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "slack")
        .unwrap()
        .clone();
    assert!(slack["failed_attempts"].as_u64().unwrap() >= 1, "{slack}");
    assert!(
        slack["last_error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{slack}"
    );

    // The store comes back: the next backup succeeds, and the alert resolves, once.
    std::fs::remove_file(project.path().join("store")).unwrap();
    serve.wait_for("run backup succeeded", 1, Duration::from_secs(60));
    wait_until(
        "the resolution",
        Duration::from_secs(30),
        || receiver.received("/hook").len() >= 2 && smtp.messages().len() >= 2,
        || serve.log(),
    );
    serve.wait_for("run backup succeeded", 3, Duration::from_secs(60));
    let hooks = receiver.received("/hook");
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(hooks[1]["state"], "resolved");
    assert_eq!(hooks[1]["alert"], "task_failed:backup");
    assert_eq!(smtp.messages().len(), 2);
    assert!(
        smtp.messages()
            .iter()
            .any(|m| m.contains("[tend] RESOLVED"))
    );
    assert_eq!(serve.terminate(), 0, "{}", serve.log());
    let log = serve.log();
    for secret in ["alerts-backup-passphrase", token, "serve-app-secret"] {
        assert!(!log.contains(secret), "{secret} in {log}");
    }
}

#[test]
fn run_now_through_any_instance_is_run_once_by_the_leader_when_the_entry_is_free() {
    let Some((db, app)) = app_database("tend_serve_actions") else {
        return;
    };
    let project = serve_project(
        r#"
[[schedule]]
name = "yearly sql"
task = "sql:work.sql"
cron = "0 0 1 1 *"
"#,
    );
    project.write(
        "work.sql",
        "CREATE TABLE IF NOT EXISTS done (at timestamptz DEFAULT now()); INSERT INTO done DEFAULT VALUES;",
    );
    let token = "actions-token";
    let env = [("TEND_SERVE_TOKEN", token)];
    let url = app.to_secret_string();
    let mut leader = Instance::start(&project, &url, free_port(), &env);
    leader.wait_for("leading", 1, Duration::from_secs(60));
    let mut standby = Instance::start(&project, &url, free_port(), &env);
    standby.wait_for("standing by", 1, Duration::from_secs(60));

    // Hold the entry's run lock, as a run elsewhere would: the request waits.
    let holder = tend_testkit::Holder::open(&db, "test holds the entry");
    holder.execute(
        "SELECT pg_advisory_lock(('x' || left(encode(sha256('tend serve: run yearly sql'), 'hex'), 16))::bit(64)::bigint)",
    );
    let post = |instance: &Instance, path: &str, token: Option<&str>, headers: &[(&str, &str)]| {
        http_request(instance.port, "POST", path, token, headers)
    };
    let path = "/api/run/yearly%20sql";
    assert_eq!(post(&standby, path, None, &[]).0, 401);
    let (status, body) = post(
        &standby,
        path,
        Some(token),
        &[("Origin", "https://elsewhere.example")],
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(&standby, "/api/run/nightly", Some(token), &[]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("yearly sql"), "{body}");
    let (status, body) = post(&standby, path, Some(token), &[]);
    assert_eq!(status, 202, "{body}");
    let requested: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(requested["outcome"], "requested");
    assert_eq!(requested["trigger"], "manual");
    // One waits already: a second is refused, through either instance.
    let (status, body) = post(&leader, path, Some(token), &[]);
    assert_eq!(status, 409, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    let outcome = |id: &serde_json::Value| {
        db.query_column(&format!(
            "SELECT outcome FROM tend.schedule_runs WHERE id = {id}"
        ))
    };
    assert_eq!(outcome(&requested["id"]), vec![Some("requested".into())]);

    // Free: the leader runs it, once.
    drop(holder);
    leader.wait_for("run yearly sql succeeded", 1, Duration::from_secs(30));
    assert_eq!(outcome(&requested["id"]), vec![Some("succeeded".into())]);
    assert_eq!(
        db.query_column("SELECT count(*) FROM done"),
        vec![Some("1".into())]
    );
    assert!(!standby.log().contains("run yearly sql succeeded"));
    assert_eq!(leader.terminate(), 0, "{}", leader.log());
    assert_eq!(standby.terminate(), 0, "{}", standby.log());
}

/// A CA and a certificate it signed for localhost and 127.0.0.1, made with openssl (which
/// `scripts/setup.sh` installs): (CA, certificate, key).
fn test_ca(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tend test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn alert_email_goes_over_starttls_and_a_server_it_cannot_trust_gets_nothing() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(certs.path());
    let smtp = SmtpServer::start_with(&[&cert, &key]);
    let config = r#"
[serve]
interval = "500ms"

[[schedule]]
name = "broken"
task = "sql:broken.sql"
cron = "*/2 * * * * *"
"#;
    // aiosmtpd's command line offers no AUTH, so the URL has no credentials.
    let smtp_url = format!("smtp://localhost:{}?tls=required", smtp.port);
    let ca_path = ca.to_str().unwrap().to_string();
    // Trusting the test CA (rustls-native-certs reads SSL_CERT_FILE): the alert arrives.
    // Without it, the server's certificate is refused and nothing is sent in clear.
    for trusted in [true, false] {
        let Some((_db, app)) = app_database(if trusted {
            "tend_serve_starttls"
        } else {
            "tend_serve_untrusted"
        }) else {
            return;
        };
        let project = TestProject::new();
        project.write("tend.toml", config);
        project.write("broken.sql", "SELECT 1 / 0;");
        let mut env = vec![
            ("ALERT_EMAIL", "oncall@example.com"),
            ("SMTP_URL", smtp_url.as_str()),
        ];
        if trusted {
            env.push(("SSL_CERT_FILE", ca_path.as_str()));
        }
        let before = smtp.messages().len();
        let mut serve = Instance::start(&project, &app.to_secret_string(), free_port(), &env);
        serve.wait_for("run broken failed", 2, Duration::from_secs(60));
        if trusted {
            wait_until(
                "the alert email",
                Duration::from_secs(30),
                || smtp.messages().len() > before,
                || serve.log(),
            );
            let mail = smtp.messages().pop().unwrap();
            assert!(mail.contains("[tend] FIRING warning"), "{mail}");
            assert!(mail.contains("broken failed"), "{mail}");
        } else {
            let failed = || {
                let (_, body) = serve.get("/api/alerts", None);
                let report: serde_json::Value = serde_json::from_str(&body).unwrap();
                report["channels"][0]["failed_attempts"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 1
            };
            wait_until(
                "the refused delivery",
                Duration::from_secs(30),
                failed,
                || serve.log(),
            );
            let (_, body) = serve.get("/api/alerts", None);
            assert!(body.contains("mail server"), "{body}");
            assert_eq!(smtp.messages().len(), before);
        }
        assert_eq!(serve.terminate(), 0, "{}", serve.log());
    }
}

#[test]
fn a_scheduled_restore_drill_starts_the_local_cluster_and_records_its_result_on_the_backup() {
    let Some((_db, app)) = app_database("tend_serve_drill") else {
        return;
    };
    let project = serve_project(
        r#"
[[schedule]]
task = "backup"
cron = "*/5 * * * * *"

[[schedule]]
task = "backup verify --restore"
after = "backup"
"#,
    );
    let env = [("BACKUP_ENCRYPTION_KEY", "drill-passphrase")];
    let url = app.to_secret_string();
    let mut serve = Instance::start(&project, &url, free_port(), &env);
    serve.wait_for(
        "run backup verify --restore succeeded",
        1,
        Duration::from_secs(180),
    );
    assert_eq!(serve.terminate(), 0, "{}", serve.log());
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", &url)
        .env("BACKUP_ENCRYPTION_KEY", "drill-passphrase")
        .args(["backup", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let drilled = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["verification"]["level"] == "restore" && b["verification"]["ok"] == true)
        .count();
    assert!(drilled >= 1, "no drilled backup in {out}");
}

#[test]
fn vacuum_and_optimize_dry_run_run_on_schedule_and_record_their_reports() {
    let Some((db, app)) = app_database("tend_serve_maintenance") else {
        return;
    };
    let project = serve_project(
        r#"
[[schedule]]
task = "vacuum"
cron = "*/2 * * * * *"

[[schedule]]
task = "optimize --dry-run"
cron = "*/2 * * * * *"
"#,
    );
    let mut serve = Instance::start(&project, &app.to_secret_string(), free_port(), &[]);
    serve.wait_for("run vacuum succeeded", 1, Duration::from_secs(60));
    serve.wait_for(
        "run optimize --dry-run succeeded",
        1,
        Duration::from_secs(60),
    );
    assert_eq!(serve.terminate(), 0, "{}", serve.log());
    // The reports are the commands' (`tend vacuum --json`, the optimize plan's steps).
    let vacuumed = db.query_column(
        "SELECT jsonb_typeof(report -> 'vacuumed') FROM tend.schedule_runs
          WHERE entry = 'vacuum' AND outcome = 'succeeded' LIMIT 1",
    );
    assert_eq!(vacuumed, vec![Some("array".into())]);
    let planned = db.query_column(
        "SELECT jsonb_typeof(report) FROM tend.schedule_runs
          WHERE entry = 'optimize --dry-run' AND outcome = 'succeeded' LIMIT 1",
    );
    assert_eq!(planned, vec![Some("array".into())]);
}

#[test]
fn a_scheduled_cleanup_purges_and_the_backlog_is_a_metric() {
    let Some((db, app)) = app_database("tend_serve_cleanup") else {
        return;
    };
    tend_testkit::query_column(
        &app,
        "CREATE TABLE customers (id int PRIMARY KEY, \"deletedAt\" timestamptz);
         INSERT INTO customers SELECT g, CASE WHEN g <= 100 THEN now() - interval '90 days' END
           FROM generate_series(1, 300) g;
         SELECT 1",
    );
    let project = serve_project(
        r#"
[[schedule]]
task = "cleanup"
cron = "*/3 * * * * *"
"#,
    );
    let mut serve = Instance::start(&project, &app.to_secret_string(), free_port(), &[]);
    // The backlog is counted beside the scrapes: a later scrape shows it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let (status, metrics) = serve.get("/metrics", None);
        assert_eq!(status, 200, "{metrics}");
        if metrics.contains("tend_retention_backlog_rows{") {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no backlog in:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    promtool_accepts(&["check", "metrics"], &metrics);
    assert!(
        metrics.contains(
            "tend_retention_backlog_rows{rule=\"soft-delete\",table=\"public.customers\"}"
        ),
        "{metrics}"
    );
    serve.wait_for("run cleanup succeeded", 1, Duration::from_secs(60));
    assert_eq!(serve.terminate(), 0, "{}", serve.log());
    assert_eq!(
        db.query_column("SELECT count(*) FROM customers")[0].as_deref(),
        Some("200")
    );
    let report = db.query_column(
        "SELECT report ->> 'deleted' FROM tend.schedule_runs
          WHERE entry = 'cleanup' AND outcome = 'succeeded' ORDER BY id LIMIT 1",
    );
    assert_eq!(report, vec![Some("100".into())]);
}
