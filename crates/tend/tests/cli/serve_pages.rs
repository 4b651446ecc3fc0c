//! `tend serve`'s pages in a real browser: Debian's chromium, headless, loads each page of
//! an instance that has backed up and checked a few times, and the DOM, the console and a
//! phone-sized screenshot are checked; the JSON behind each page; the token; and a
//! database without tend's tables, whose pages say nothing is recorded yet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tend_testkit::{Holder, TestDb, TestProject};

use crate::serve::{Instance, app_database, free_port, http_get};

const PASSWORD: &str = "serve-app-secret";
const PASSPHRASE: &str = "pages-backup-passphrase-not-for-pages";

/// Each page: path, heading, and whether it draws charts.
const PAGES: [(&str, &str, bool); 6] = [
    ("/", "Overview", false),
    ("/backups", "Backups", true),
    ("/checks", "Checks", true),
    ("/growth", "Growth", true),
    ("/activity", "Activity", false),
    ("/schedules", "Schedules", false),
];

/// What chromium made of a page: its DOM after load, and its console and load errors.
struct Loaded {
    dom: String,
    problems: Vec<String>,
}

/// Loads `url` in headless chromium (installed by `scripts/setup.sh --for-tests`), writing
/// a 390x844 (phone) screenshot to `screenshot`.
fn chromium(url: &str, profile: &Path, screenshot: &Path) -> Loaded {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=390,844",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs (scripts/setup.sh --for-tests installs Debian's chromium)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium failed on {url}:\n{stderr}"
    );
    // The pages run no script, so any console message is a problem: chromium logs a
    // resource the page's policy blocked (anything not inline) or that failed to load.
    let problems = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Failed to load resource"))
        .map(str::to_string)
        .collect();
    Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        problems,
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-pages");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (status, body) = http_get(port, path, None);
    assert_eq!(status, 200, "{path}: {body}");
    assert_no_secret(path, &body);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn assert_no_secret(what: &str, body: &str) {
    for secret in [PASSWORD, PASSPHRASE, "api-token-for-pages"] {
        assert!(
            !body.contains(secret),
            "{what} shows a secret ({secret}):\n{body}"
        );
    }
}

#[test]
fn every_page_loads_in_a_browser_with_its_data_and_charts_and_no_secret() {
    let Some((db, app)) = app_database("tend_serve_pages") else {
        return;
    };
    let role = "tend_serve_pages";
    // A table whose name is markup (the pages must escape it), one to block on, and a
    // role that may read other sessions' queries (for the lock tree).
    db.execute(&format!(
        "CREATE TABLE public.\"<script>alert(1)</script>\" (id int);
         INSERT INTO public.\"<script>alert(1)</script>\" SELECT generate_series(1, 20000);
         CREATE TABLE public.pages_lock (id int PRIMARY KEY, v int);
         INSERT INTO public.pages_lock VALUES (1, 0);
         ALTER TABLE public.\"<script>alert(1)</script>\" OWNER TO {role};
         ALTER TABLE public.pages_lock OWNER TO {role};
         GRANT pg_read_all_stats TO {role};"
    ));
    let project = TestProject::new();
    project.write(
        "tend.toml",
        r#"
[serve]
interval = "500ms"

[[schedule]]
task = "backup"
cron = "*/2 * * * * *"

[[schedule]]
task = "check"
cron = "*/3 * * * * *"

[[schedule]]
task = "backup verify"
cron = "*/4 * * * * *"

[[schedule]]
name = "failing"
task = "sql:failing.sql"
cron = "*/5 * * * * *"
"#,
    );
    project.write("failing.sql", "SELECT '<b>not a number</b>'::int;\n");
    let url = app.to_secret_string();
    let env = [("BACKUP_ENCRYPTION_KEY", PASSPHRASE)];
    let port = free_port();
    let mut serve = Instance::start(&project, &url, port, &env);
    serve.wait_for("run backup succeeded", 2, Duration::from_secs(120));
    serve.wait_for("run check succeeded", 2, Duration::from_secs(120));
    serve.wait_for("run failing failed", 1, Duration::from_secs(120));
    serve.wait_for("run backup verify succeeded", 1, Duration::from_secs(120));
    // The alert rules run right after a run ends; wait until the failure fires.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !json(port, "/api/alerts")
        .to_string()
        .contains("task_failed:failing")
    {
        assert!(std::time::Instant::now() < deadline, "{}", serve.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    // One session holds a row lock, another waits for it: the lock tree has a branch.
    let blocker = Holder::open(&db, "pages-blocker");
    blocker.execute("BEGIN; UPDATE public.pages_lock SET v = v + 1 WHERE id = 1");
    let waiter = Holder::open(&db, "pages-waiter");
    waiter.start("UPDATE public.pages_lock SET v = v + 10 WHERE id = 1 /* <i>waits</i> */");

    let profile = tempfile::tempdir().unwrap();
    let shots = screenshots_dir();
    let mut doms = Vec::new();
    for (path, heading, charts) in PAGES {
        let (status, body) = http_get(port, path, None);
        assert_eq!(status, 200, "{path}: {body}");
        assert_no_secret(path, &body);
        // One small response is the whole page (style and charts inline).
        assert!(body.len() < 100_000, "{path} is {} bytes", body.len());
        let name = if path == "/" { "overview" } else { &path[1..] };
        let shot = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        let page = chromium(
            &format!("http://127.0.0.1:{port}{path}"),
            profile.path(),
            &shot,
        );
        let dom = &page.dom;
        assert!(page.problems.is_empty(), "{path}: {:#?}", page.problems);
        assert!(
            dom.contains(&format!("<h1>{heading}</h1>")),
            "{path}:\n{dom}"
        );
        // Every page links to every other.
        for (other, _, _) in PAGES {
            assert!(
                dom.contains(&format!("href=\"{other}\"")),
                "{path} has no link to {other}"
            );
        }
        // Nothing runs and nothing is fetched: no script, no source, no stylesheet or
        // link to another site (the console check catches what the policy blocks).
        for fetches in [
            "<script",
            " src=",
            "href=\"http",
            "href=\"//",
            "url(",
            "@import",
        ] {
            assert!(!dom.contains(fetches), "{path} has {fetches}:\n{dom}");
        }
        if charts {
            assert!(dom.contains("<svg"), "{path} has no chart:\n{dom}");
            assert!(
                dom.contains("<path") || dom.matches("<rect").count() > 1,
                "{path} draws nothing:\n{dom}"
            );
        }
        let png = std::fs::read(&shot).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG"),
            "{path}: no screenshot at {}",
            shot.display()
        );
        assert_no_secret(path, dom);
        doms.push((path, page.dom));
    }
    let dom = |path: &str| &doms.iter().find(|(p, _)| *p == path).unwrap().1;

    // What each page shows.
    let overview = dom("/");
    for text in [
        "reachable",
        "leader",
        "succeeded",
        "Next runs",
        "task_failed:failing",
    ] {
        assert!(overview.contains(text), "no {text} on /:\n{overview}");
    }
    let backups = json(port, "/api/backups");
    let listed = backups["backups"].as_array().unwrap();
    assert!(listed.len() >= 2, "{backups}");
    // The oldest: newer ones may have come since the page was loaded (none is pruned).
    let oldest = listed[0]["manifest"]["id"].as_str().unwrap();
    assert!(
        dom("/backups").contains(&format!("<code>tend restore {oldest}</code>")),
        "{}",
        dom("/backups")
    );
    assert!(dom("/backups").contains("<path"), "a duration line");
    // The verification the schedule ran, on the backup and in the recorded runs.
    assert!(
        dom("/backups").contains("read back passed"),
        "{}",
        dom("/backups")
    );
    assert!(
        dom("/backups").contains("<td class=\"succeeded\">succeeded</td>"),
        "a recorded verification run: {}",
        dom("/backups")
    );
    let checks = json(port, "/api/checks");
    assert!(checks["newest"]["id"].is_i64(), "{checks}");
    assert!(checks["runs"].as_array().unwrap().len() >= 2, "{checks}");
    assert!(dom("/checks").contains("Findings of the newest run"));
    let growth = json(port, "/api/growth");
    assert!(
        growth["database"].as_array().unwrap().len() >= 2,
        "{growth}"
    );
    let tables = growth["tables"].to_string();
    assert!(tables.contains("<script>alert(1)</script>"), "{tables}");
    // The markup in the table's name is text on the page.
    assert!(
        dom("/growth").contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        dom("/growth")
    );
    assert!(dom("/growth").contains("<path"), "a size line");
    let activity = json(port, "/api/activity");
    let blocking = activity["locks"]["blocking"].to_string();
    assert!(
        blocking.contains(&blocker.pid().to_string()) && blocking.contains("pages-waiter"),
        "{activity}"
    );
    let page = dom("/activity");
    assert!(
        page.contains("pages-blocker") && page.contains("pages-waiter"),
        "{page}"
    );
    assert!(page.contains("&lt;i&gt;waits&lt;/i&gt;"), "{page}");
    let page = dom("/schedules");
    for text in [
        "backup",
        "check",
        "failing",
        "succeeded",
        "&lt;b&gt;not a number&lt;/b&gt;",
    ] {
        assert!(page.contains(text), "no {text} on /schedules:\n{page}");
    }
    let overview = json(port, "/api/overview");
    assert_eq!(overview["reachable"], true, "{overview}");
    assert_eq!(overview["role"], "leader", "{overview}");
    drop(waiter);
    drop(blocker);

    // With a token, the pages need it as the API does.
    let token = "api-token-for-pages";
    let guarded = Instance::start(
        &project,
        &url,
        free_port(),
        &[
            ("BACKUP_ENCRYPTION_KEY", PASSPHRASE),
            ("TEND_SERVE_TOKEN", token),
        ],
    );
    for path in ["/", "/checks", "/api/growth"] {
        let (status, _) = guarded.get(path, None);
        assert_eq!(status, 401, "{path} without the token");
        let (status, body) = guarded.get(path, Some(token));
        assert_eq!(status, 200, "{path}: {body}");
        assert_no_secret(path, &body);
    }
    drop(guarded);
    assert_eq!(serve.terminate(), 0, "{}", serve.log());
    drop(db);
}

#[test]
fn pages_of_a_database_without_tend_tables_say_nothing_is_recorded_yet() {
    // A role that may connect but not create tend's schema: nothing is ever recorded.
    let db = TestDb::create();
    let server = tend_testkit::TestServer::get();
    let Some(mut app) = server.password_user("tend_serve_pages_fresh", PASSWORD, &db.name) else {
        return;
    };
    app.set("sslmode", "disable");
    db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    let project = TestProject::new();
    project.write("tend.toml", "[serve]\ninterval = \"500ms\"\n");
    let port = free_port();
    let serve = Instance::start(&project, &app.to_secret_string(), port, &[]);
    serve.wait_for(
        "cannot create or upgrade the `tend` schema",
        1,
        Duration::from_secs(60),
    );
    for (path, heading, _) in PAGES {
        let (status, body) = http_get(port, path, None);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            body.contains(&format!("<h1>{heading}</h1>")),
            "{path}: {body}"
        );
        assert!(!body.contains("Could not read"), "{path}: {body}");
        assert_no_secret(path, &body);
    }
    for path in ["/checks", "/growth", "/schedules"] {
        let (_, body) = http_get(port, path, None);
        assert!(body.contains("Nothing recorded yet"), "{path}: {body}");
    }
    let (_, body) = http_get(port, "/", None);
    assert!(body.contains("No backup yet"), "{body}");
    let checks = json(port, "/api/checks");
    assert!(
        checks["newest"].is_null() && checks["runs"] == serde_json::json!([]),
        "{checks}"
    );
    let growth = json(port, "/api/growth");
    assert_eq!(growth["database"], serde_json::json!([]), "{growth}");
    let backups = json(port, "/api/backups");
    assert_eq!(backups["backups"], serde_json::json!([]), "{backups}");
}

#[test]
fn pages_show_a_database_that_does_not_answer_as_an_error_section_not_a_500() {
    // Nothing listens on this port.
    let closed = free_port();
    let url = format!("postgresql://app:{PASSWORD}@127.0.0.1:{closed}/app");
    let project = TestProject::new();
    project.write("tend.toml", "[serve]\ninterval = \"500ms\"\n");
    let port = free_port();
    let _serve = Instance::start(&project, &url, port, &[]);
    for (path, heading, _) in PAGES {
        let (status, body) = http_get(port, path, None);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            body.contains(&format!("<h1>{heading}</h1>")),
            "{path}: {body}"
        );
        assert_no_secret(path, &body);
    }
    let (_, body) = http_get(port, "/", None);
    assert!(
        body.contains("unreachable") && body.contains("127.0.0.1"),
        "{body}"
    );
    for path in ["/checks", "/growth", "/activity"] {
        let (_, body) = http_get(port, path, None);
        assert!(body.contains("Could not read"), "{path}: {body}");
    }
    // The JSON says it the API's way.
    let (status, body) = http_get(port, "/api/checks", None);
    assert_eq!(status, 503, "{body}");
    assert_no_secret("/api/checks", &body);
}
