//! Checks `tend_schema::diff` against a real migration history (issue 4): for consecutive
//! states S(i-1), S(i), the plan `diff(S(i-1), S(i))` applied with `psql -f` onto a copy of
//! S(i-1) must give the schema of S(i), as `pg_dump -s --no-owner` prints it, and a fresh
//! introspection of the result must not differ from S(i) (no false drift). The diff of every
//! state with itself must be empty.
//!
//! `bench/schema-history.sh` runs it; see docs/schema-diff.md.
//!
//! ```text
//! history_check DIR [--from N] [--limit N] [--url URL] [--show-plan] [--rename-hints]
//! ```
//!
//! A rename cannot be told from a drop and an add: without a hint the diff drops the old
//! column or table and adds the new one (at the end of the table), so a step whose
//! migration renames fails, and is counted apart. `--rename-hints` passes the renames the
//! migration states (`ALTER TABLE ... RENAME [COLUMN] a TO b`) as hints, as a user who knows
//! them would with `tend schema diff --rename`.
//!
//! DIR is Prisma's layout (`<name>/migration.sql`) or plain `*.sql` files, applied in name
//! order. Each state is a database cloned (`CREATE DATABASE ... TEMPLATE`) from the previous
//! one with the next migration run by `psql -f`. A migration that does not replay (an
//! extension that is not installed here, or a file of an abandoned branch that the index kept)
//! is skipped and reported; the history goes on from the previous state.
//!
//! The server is `--url`, else TEND_TEST_DATABASE_URL, else DATABASE_URL (a superuser that may
//! create databases), else a throwaway cluster started here and removed at the end.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tend_pg::cluster::{ClusterOptions, LocalCluster};
use tend_pg::{ConnInfo, ConnectOptions, PgTool, ToolSearch, VersionNeed, quote_ident};
use tend_schema::diff::{DiffOptions, Rename};
use tend_schema::model::QualifiedName;
use tend_schema::{Model, diff, introspect};

/// Every database this checker makes starts with this, so a rerun can drop a crashed run's.
const PREFIX: &str = "tend_hc_";

struct Args {
    dir: PathBuf,
    from: usize,
    limit: Option<usize>,
    url: Option<String>,
    show_plan: bool,
    rename_hints: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: history_check DIR [--from N] [--limit N] [--url URL] [--show-plan] [--rename-hints]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut parsed = Args {
        dir: PathBuf::new(),
        from: 1,
        limit: None,
        url: None,
        show_plan: false,
        rename_hints: false,
    };
    while let Some(arg) = args.next() {
        let number = |args: &mut dyn Iterator<Item = String>| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match arg.as_str() {
            "--from" => parsed.from = number(&mut args).max(1),
            "--limit" => parsed.limit = Some(number(&mut args)),
            "--url" => parsed.url = Some(args.next().unwrap_or_else(|| usage())),
            "--show-plan" => parsed.show_plan = true,
            "--rename-hints" => parsed.rename_hints = true,
            "-h" | "--help" => usage(),
            _ if arg.starts_with('-') => usage(),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    parsed.dir = dir.unwrap_or_else(|| usage());
    parsed
}

/// One migration: its name and file.
struct Migration {
    name: String,
    path: PathBuf,
}

/// Prisma's `<name>/migration.sql` directories, or plain `*.sql` files (not `*.down.sql`).
fn load(dir: &Path) -> Vec<Migration> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut migrations = Vec::new();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() && path.join("migration.sql").is_file() {
            migrations.push(Migration {
                name,
                path: path.join("migration.sql"),
            });
        } else if path.is_file() && name.ends_with(".sql") && !name.ends_with(".down.sql") {
            migrations.push(Migration {
                name: name.trim_end_matches(".sql").to_string(),
                path,
            });
        }
    }
    migrations
}

struct Server {
    admin: ConnInfo,
    cluster: Option<(LocalCluster, tempfile::TempDir)>,
    psql: PathBuf,
    pg_dump: PathBuf,
}

impl Server {
    fn start(url: Option<String>) -> Server {
        let tools = ToolSearch::default();
        let psql = tools.find(PgTool::Psql, VersionNeed::Any).unwrap().path;
        let pg_dump = tools.find(PgTool::PgDump, VersionNeed::Any).unwrap().path;
        let url = url
            .or_else(|| std::env::var("TEND_TEST_DATABASE_URL").ok())
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|u| !u.trim().is_empty());
        if let Some(url) = url {
            let admin = ConnInfo::parse(&url).unwrap_or_else(|e| panic!("bad URL: {e}"));
            return Server {
                admin,
                cluster: None,
                psql,
                pg_dump,
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("tend-history-check-")
            .tempdir()
            .unwrap();
        let options = ClusterOptions {
            settings: vec![
                ("fsync".into(), "off".into()),
                ("synchronous_commit".into(), "off".into()),
                ("full_page_writes".into(), "off".into()),
            ],
            fast_init: true,
            ..ClusterOptions::default()
        };
        let cluster = LocalCluster::new(dir.path().join("cluster"), options);
        eprintln!("starting a throwaway cluster in {}", dir.path().display());
        let started = cluster
            .start(&mut |_| {})
            .unwrap_or_else(|e| panic!("cannot start a throwaway cluster: {e}"));
        let admin = cluster.conninfo(started.port, "postgres");
        Server {
            admin,
            cluster: Some((cluster, dir)),
            psql,
            pg_dump,
        }
    }

    fn stop(self) {
        if let Some((cluster, _dir)) = self.cluster {
            let _ = cluster.destroy();
        }
    }

    fn admin_sql(&self, rt: &tokio::runtime::Runtime, sql: &str) -> Result<(), String> {
        rt.block_on(async {
            let session = tend_pg::connect(&self.admin, &ConnectOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            session.batch_execute(sql).await.map_err(|e| {
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string())
            })
        })
    }

    /// `CREATE DATABASE name TEMPLATE source`, retried while the source's last session ends.
    fn clone_db(&self, rt: &tokio::runtime::Runtime, name: &str, source: &str) {
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(name),
            quote_ident(source)
        );
        for attempt in 0.. {
            match self.admin_sql(rt, &sql) {
                Ok(()) => return,
                Err(e) if e.contains("being accessed by other users") && attempt < 50 => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{sql}: {e}"),
            }
        }
    }

    fn drop_db(&self, rt: &tokio::runtime::Runtime, name: &str) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        self.admin_sql(rt, &sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn drop_leftovers(&self, rt: &tokio::runtime::Runtime) {
        let names: Vec<String> = rt.block_on(async {
            let session = tend_pg::connect(&self.admin, &ConnectOptions::default())
                .await
                .unwrap();
            session
                .query(
                    "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
                    &[&format!("{PREFIX}%")],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        });
        for name in names {
            self.drop_db(rt, &name);
        }
    }

    fn model(&self, rt: &tokio::runtime::Runtime, db: &str) -> Model {
        rt.block_on(async {
            let session = tend_pg::connect(&self.admin.with_dbname(db), &ConnectOptions::default())
                .await
                .unwrap();
            introspect(&session).await.unwrap()
        })
    }

    /// Runs a file with `psql -X -v ON_ERROR_STOP=1 -f`; the error output on failure.
    fn psql_file(&self, db: &str, file: &Path) -> Result<(), String> {
        let (conn, env) = self.admin.with_dbname(db).for_child_program();
        let output = Command::new(&self.psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &conn, "-f"])
            .arg(file)
            .envs(env)
            .output()
            .unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }

    fn dump(&self, db: &str) -> String {
        let (conn, env) = self.admin.with_dbname(db).for_child_program();
        let output = Command::new(&self.pg_dump)
            .args(["-s", "--no-owner", "-d", &conn])
            .envs(env)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|l| {
                !l.starts_with("-- Dumped")
                    && !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The dump with the column lines of each `CREATE TABLE` sorted: equal when two dumps differ
/// only in the order of columns.
fn without_column_order(dump: &str) -> String {
    let mut out = Vec::new();
    let mut table: Option<Vec<String>> = None;
    for line in dump.lines() {
        match &mut table {
            None => {
                out.push(line.to_string());
                if line.starts_with("CREATE TABLE ") && line.ends_with('(') {
                    table = Some(Vec::new());
                }
            }
            Some(columns) => {
                if line.starts_with(')') {
                    columns.sort();
                    out.append(columns);
                    out.push(line.to_string());
                    table = None;
                } else {
                    columns.push(line.trim_end_matches(',').to_string());
                }
            }
        }
    }
    out.join("\n")
}

/// The dump without its privileges (`GRANT`, `REVOKE` and their comment lines).
fn without_privileges(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            !l.starts_with("GRANT ")
                && !l.starts_with("REVOKE ")
                && !l.contains("; Type: ACL;")
                && !l.trim().is_empty()
                && l.trim() != "--"
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn only_in(a: &str, b: &str) -> Vec<String> {
    let others: BTreeSet<&str> = b.lines().collect();
    a.lines()
        .filter(|l| !others.contains(l) && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Why a migration does not replay here: a missing extension, or its first error line.
fn replay_failure(error: &str) -> String {
    for marker in ["extension \"", "control file \""] {
        if let Some(at) = error.find(marker) {
            let rest = &error[at + marker.len()..];
            let name = rest.split('"').next().unwrap_or_default();
            let name = name
                .rsplit('/')
                .next()
                .unwrap_or(name)
                .trim_end_matches(".control");
            if error.contains("not available") || error.contains("control file") {
                return format!("extension {name} not installed");
            }
        }
    }
    let first = error.lines().find(|l| l.contains("ERROR")).unwrap_or(error);
    format!("migration does not replay: {}", first.trim())
}

enum Outcome {
    Ok,
    Fail(String),
    Skipped(String),
}

fn main() {
    let args = parse_args();
    let migrations = load(&args.dir);
    if migrations.is_empty() {
        eprintln!("no migrations in {}", args.dir.display());
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start(args.url.clone());
    server.drop_leftovers(&rt);
    let scratch = tempfile::tempdir().unwrap();
    let last = match args.limit {
        Some(limit) => (args.from - 1 + limit).min(migrations.len()),
        None => migrations.len(),
    };
    let mut current = format!("{PREFIX}0");
    server
        .admin_sql(
            &rt,
            &format!(
                "CREATE DATABASE {} TEMPLATE template0",
                quote_ident(&current)
            ),
        )
        .unwrap();
    let (mut ok, mut failed, mut skipped) = (0usize, Vec::new(), Vec::new());
    for (index, migration) in migrations.iter().enumerate().take(last) {
        let step = index + 1;
        let next = format!("{PREFIX}{step}");
        server.clone_db(&rt, &next, &current);
        if let Err(e) = server.psql_file(&next, &migration.path) {
            server.drop_db(&rt, &next);
            if step >= args.from {
                let reason = replay_failure(&e);
                println!("{step:4} {}  skipped: {reason}", migration.name);
                skipped.push((step, migration.name.clone(), reason));
            }
            continue;
        }
        if step >= args.from {
            let sql = std::fs::read_to_string(&migration.path).unwrap_or_default();
            let renames = stated_renames(&sql);
            let outcome = check_step(
                &server,
                &rt,
                (&current, &next),
                scratch.path(),
                &args,
                &renames,
            );
            let outcome = match outcome {
                Outcome::Fail(reason) if !renames.is_empty() && !args.rename_hints => {
                    Outcome::Fail(format!("{RENAME_WITHOUT_HINT}; {reason}"))
                }
                other => other,
            };
            match outcome {
                Outcome::Ok => {
                    ok += 1;
                    println!("{step:4} {}  OK", migration.name);
                }
                Outcome::Fail(reason) => {
                    println!("{step:4} {}  FAIL({reason})", migration.name);
                    failed.push((step, migration.name.clone(), reason));
                }
                Outcome::Skipped(reason) => {
                    println!("{step:4} {}  skipped: {reason}", migration.name);
                    skipped.push((step, migration.name.clone(), reason));
                }
            }
        }
        server.drop_db(&rt, &current);
        current = next;
    }
    server.drop_db(&rt, &current);
    server.stop();
    let checked = ok + failed.len();
    let rate = if checked == 0 {
        100.0
    } else {
        100.0 * ok as f64 / checked as f64
    };
    println!();
    println!(
        "{}: {checked} steps checked, {ok} OK, {} failed, {} skipped: {rate:.1}% pass",
        args.dir.display(),
        failed.len(),
        skipped.len()
    );
    let renames = failed
        .iter()
        .filter(|(_, _, r)| r.starts_with(RENAME_WITHOUT_HINT))
        .count();
    if renames > 0 {
        println!(
            "  {renames} of the failures are renames without a hint: {} of {checked} pass otherwise ({:.1}%); --rename-hints passes them",
            ok,
            100.0 * ok as f64 / (checked - renames).max(1) as f64
        );
    }
    for (step, name, reason) in &failed {
        println!("  FAIL {step} {name}: {reason}");
    }
    for (step, name, reason) in &skipped {
        println!("  skipped {step} {name}: {reason}");
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

const RENAME_WITHOUT_HINT: &str = "the migration renames, and no hint was given";

fn check_step(
    server: &Server,
    rt: &tokio::runtime::Runtime,
    (before_db, after_db): (&str, &str),
    scratch: &Path,
    args: &Args,
    renames: &[Rename],
) -> Outcome {
    let before = server.model(rt, before_db);
    let after = server.model(rt, after_db);
    let mut options = DiffOptions::default();
    if args.rename_hints {
        options.renames = renames.to_vec();
    }
    for (model, db) in [(&before, before_db), (&after, after_db)] {
        let itself = diff(model, model, &options);
        if !itself.is_empty() {
            return Outcome::Fail(format!(
                "the diff of {db} with itself is not empty: {}",
                first_line(&itself.to_sql(false))
            ));
        }
    }
    let plan = diff(&before, &after, &options);
    let script = plan.to_sql(true);
    let work = format!("{after_db}_work");
    server.clone_db(rt, &work, before_db);
    let file = scratch.join("plan.sql");
    std::fs::write(&file, &script).unwrap();
    let show = |reason: String| -> Outcome {
        if args.show_plan {
            println!("--- plan ---\n{script}--- end of plan ---");
        }
        Outcome::Fail(reason)
    };
    if let Err(e) = server.psql_file(&work, &file) {
        server.drop_db(rt, &work);
        if e.contains("extension") && e.contains("not available") {
            return Outcome::Skipped(replay_failure(&e));
        }
        return show(format!("the plan failed: {}", first_error(&e)));
    }
    let reached = server.model(rt, &work);
    let (reached_dump, wanted_dump) = (server.dump(&work), server.dump(after_db));
    server.drop_db(rt, &work);
    let left = diff(&reached, &after, &options);
    if reached_dump == wanted_dump {
        if left.is_empty() {
            return Outcome::Ok;
        }
        return show(format!(
            "false drift: pg_dump is identical but the diff still says {}",
            first_line(&left.to_sql(false))
        ));
    }
    let reason = if without_column_order(&reached_dump) == without_column_order(&wanted_dump) {
        // The diff kept a column in place (ALTER ... TYPE) where the migration dropped and
        // added it at the end, and could not move it (see docs/schema-diff.md).
        return show("column order differs (drop and add in the migration)".to_string());
    } else if without_privileges(&reached_dump) == without_privileges(&wanted_dump) {
        return show("privileges differ (GRANT and REVOKE)".to_string());
    } else {
        let extra = only_in(&reached_dump, &wanted_dump);
        let missing = only_in(&wanted_dump, &reached_dump);
        let mut reason = String::from("pg_dump differs:");
        for line in extra.iter().take(6) {
            reason.push_str(&format!("\n        + {line}"));
        }
        for line in missing.iter().take(6) {
            reason.push_str(&format!("\n        - {line}"));
        }
        reason
    };
    let model_sees = if left.is_empty() {
        " (the model does not see it)"
    } else {
        ""
    };
    show(format!("{reason}{model_sees}"))
}

fn first_line(sql: &str) -> String {
    sql.lines()
        .find(|l| !l.starts_with("--") && !l.trim().is_empty())
        .unwrap_or_default()
        .to_string()
}

fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or(stderr)
        .trim()
        .to_string()
}

/// The renames a migration states: `ALTER TABLE [ONLY] [IF EXISTS] name RENAME [COLUMN] a TO
/// b` and `ALTER TABLE name RENAME TO b`, with names unqualified in `public`.
fn stated_renames(sql: &str) -> Vec<Rename> {
    let words = sql_words(sql);
    let mut renames = Vec::new();
    let keyword = |w: &(String, bool), k: &str| !w.1 && w.0.eq_ignore_ascii_case(k);
    let mut i = 0;
    while i + 1 < words.len() {
        if !(keyword(&words[i], "ALTER") && keyword(&words[i + 1], "TABLE")) {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < words.len()
            && (keyword(&words[j], "ONLY")
                || keyword(&words[j], "IF")
                || keyword(&words[j], "EXISTS"))
        {
            j += 1;
        }
        // A name: `a` or `a . b`.
        let Some((first, _)) = words.get(j) else {
            break;
        };
        let table = if words.get(j + 1).is_some_and(|w| w.0 == ".") {
            j += 2;
            QualifiedName::new(
                first.clone(),
                words.get(j).map(|w| w.0.clone()).unwrap_or_default(),
            )
        } else {
            QualifiedName::new("public".to_string(), first.clone())
        };
        j += 1;
        if !words.get(j).is_some_and(|w| keyword(w, "RENAME")) {
            i = j;
            continue;
        }
        j += 1;
        if words.get(j).is_some_and(|w| keyword(w, "TO")) {
            if let Some((to, _)) = words.get(j + 1) {
                renames.push(Rename::Table {
                    from: table.clone(),
                    to: QualifiedName::new(table.schema.clone(), to.clone()),
                });
            }
        } else {
            if words.get(j).is_some_and(|w| keyword(w, "COLUMN")) {
                j += 1;
            }
            if let (Some((from, _)), Some(to_kw), Some((to, _))) =
                (words.get(j), words.get(j + 1), words.get(j + 2))
                && keyword(to_kw, "TO")
            {
                renames.push(Rename::Column {
                    table: table.clone(),
                    from: from.clone(),
                    to: to.clone(),
                });
            }
        }
        i = j;
    }
    renames
}

/// SQL split into words and punctuation: each with whether it was a quoted identifier
/// (unquoted words are folded to lower case, as PostgreSQL does). Comments and string
/// literals are skipped.
fn sql_words(sql: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            let mut word = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' && chars.get(i + 1) == Some(&'"') {
                    word.push('"');
                    i += 2;
                } else if chars[i] == '"' {
                    break;
                } else {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            i += 1;
            words.push((word, true));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            words.push((
                chars[start..i].iter().collect::<String>().to_lowercase(),
                false,
            ));
        } else {
            if !c.is_whitespace() {
                words.push((c.to_string(), false));
            }
            i += 1;
        }
    }
    words
}
