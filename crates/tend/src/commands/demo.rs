//! `tend demo`: the README's first command. Builds the example SaaS database (a Prisma
//! project built into the binary, `examples/saas/`) on the local cluster, fills it with
//! generated data, and runs every tend capability that exists on it, printing each step with
//! the command that does the same by hand.

use std::time::{Duration, Instant};

use clap::Args;
use include_dir::{Dir, include_dir};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tend_core::demo::{self, TableRows};
use tend_core::migrate::{self, MigrateEvent};
use tend_pg::{ConnInfo, ServerFacts};

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};

/// The example project, compiled in so the demo works from any directory.
static EXAMPLE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/saas");

/// The demo's own database on the local cluster; rebuilt by every run.
pub const DEMO_DATABASE: &str = "tend_demo";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Build the schema but load no sample data.
    #[arg(long)]
    pub no_data: bool,
}

/// The example's Prisma migrations, in the order Prisma applies them (by directory name),
/// with paths as they are in tend's repository.
pub fn example_migrations() -> Vec<tend_migrate::Migration> {
    let dir = EXAMPLE
        .get_dir("prisma/migrations")
        .expect("the example has prisma/migrations");
    let mut migrations: Vec<tend_migrate::Migration> = dir
        .dirs()
        .filter_map(|d| {
            let name = d.path().file_name()?.to_str()?.to_string();
            let file = d.get_file(d.path().join("migration.sql"))?;
            let sql = file.contents_utf8()?.to_string();
            Some(tend_migrate::Migration {
                path: std::path::Path::new("examples/saas").join(file.path()),
                checksum: tend_migrate::source::checksum(sql.as_bytes()),
                name,
                sql,
                down: None,
            })
        })
        .collect();
    migrations.sort_by(|a, b| a.name.cmp(&b.name));
    migrations
}

fn example_file(path: &str) -> &'static str {
    EXAMPLE
        .get_file(path)
        .and_then(|f| f.contents_utf8())
        .unwrap_or_else(|| panic!("the example has {path}"))
}

struct Step<'a> {
    ctx: &'a Context<'a>,
    number: usize,
    log: Vec<StepLog>,
}

/// One step of `tend demo --json`: what ran, how long it took, what it found.
#[derive(Serialize)]
struct StepLog {
    step: &'static str,
    seconds: f64,
    detail: StepDetail,
}

/// What a step found; each variant serializes as its fields.
#[derive(Serialize)]
#[serde(untagged)]
enum StepDetail {
    Cluster {
        root: std::path::PathBuf,
    },
    Database {
        database: &'static str,
    },
    Migrations {
        migrations: Vec<String>,
    },
    Summary {
        summary: Vec<String>,
    },
    Data {
        rows: i64,
        tables: Vec<TableRows>,
    },
    Facts {
        facts: ServerFacts,
        size: String,
    },
    Doctor {
        findings: Vec<String>,
    },
    Check {
        checks: usize,
        findings: Vec<tend_ops::Finding>,
        history: tend_core::checks::HistoryOutcome,
    },
}

/// What `tend demo --json` prints.
#[derive(Serialize)]
struct DemoReport {
    database: &'static str,
    url: String,
    migrations: usize,
    rows: i64,
    seconds: f64,
    steps: Vec<StepLog>,
}

impl Step<'_> {
    fn begin(&mut self, title: &str, equivalent: &str) -> Instant {
        self.number += 1;
        self.ctx.out.step(format!(
            "\n{} {title}",
            self.ctx.out.paint(&format!("[{}]", self.number), "1")
        ));
        self.ctx.out.step(format!("    $ {equivalent}"));
        Instant::now()
    }

    fn end(&mut self, step: &'static str, started: Instant, detail: StepDetail) {
        self.log.push(StepLog {
            step,
            seconds: round(started.elapsed()),
            detail,
        });
    }
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub fn run(args: DemoArgs, ctx: &Context) -> Result<i32, CommandError> {
    let started = Instant::now();
    let out = ctx.out;
    if let Some(sourced) = &ctx.settings.database.url {
        out.notice(format!(
            "The demo always runs on the local cluster; the configured database ({}) is not touched.",
            sourced.source
        ));
    }
    let mut steps = Step {
        ctx,
        number: 0,
        log: Vec::new(),
    };

    // 1. The local cluster.
    let t = steps.begin(
        "Start the project's local PostgreSQL cluster",
        "tend dev start",
    );
    let cluster = ctx.local_cluster();
    let admin = ctx.start_local_cluster("postgres", crate::context::ClusterUse::Asked)?;
    out.step(format!(
        "    local cluster running in {}",
        cluster.root().display()
    ));
    steps.end(
        "dev start",
        t,
        StepDetail::Cluster {
            root: cluster.root().to_path_buf(),
        },
    );

    // 2. A fresh demo database.
    let t = steps.begin(
        "Create the example database (rebuilt on every run)",
        &format!("psql \"$(tend dev url)\" -c 'DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)' -c 'CREATE DATABASE {DEMO_DATABASE}'"),
    );
    block_on(demo::recreate_database(
        &admin,
        &ctx.settings.connect_options(),
        DEMO_DATABASE,
    ))?;
    let demo = admin.with_dbname(DEMO_DATABASE);
    out.step(format!("    {}", demo.redacted()));
    steps.end(
        "create database",
        t,
        StepDetail::Database {
            database: DEMO_DATABASE,
        },
    );

    // 3. The schema, from the Prisma migrations.
    let migrations = example_migrations();
    let t = steps.begin(
        &format!(
            "Apply the example's {} Prisma migrations, recorded in _prisma_migrations",
            migrations.len()
        ),
        "cd examples/saas && DATABASE_URL=\"$(tend dev url -d tend_demo)\" tend migrate deploy",
    );
    // The same services as `tend migrate deploy` and `tend migrate status`.
    let example = migrate::Migrations {
        project: migrate::MigrationProject {
            format: tend_migrate::Format::Prisma,
            dir: std::path::PathBuf::from("examples/saas/prisma/migrations"),
        },
        files: migrations.clone(),
    };
    let database = ctx.settings.database.handle(demo.clone());
    let bar = progress(ctx, migrations.len() as u64, "migrations");
    let report = block_on(migrate::deploy(
        &database,
        &ctx.settings.migrate,
        &example,
        &migrate::DeployRequest {
            to: None,
            dry_run: false,
            resume: None,
        },
        &super::migrate::interrupt_token(),
        &mut |event| match event {
            MigrateEvent::Run(tend_migrate::Event::Applying { name, .. }) => bar.set_message(name),
            MigrateEvent::Run(tend_migrate::Event::Applied { .. }) => bar.inc(1),
            _ => {}
        },
    ))?;
    bar.finish_and_clear();
    for applied in &report.applied {
        out.step(format!(
            "    applied {}  ({} ms)",
            applied.name, applied.millis
        ));
    }
    let status = block_on(migrate::status(&database, &ctx.settings.migrate, &example))?;
    out.step(format!(
        "    $ tend migrate status  ->  {}",
        if status.up_to_date {
            "every migration applied (exit 0)"
        } else {
            "not up to date (exit 1)"
        }
    ));
    let session = ctx.connect(&demo)?;
    steps.end(
        "apply migrations",
        t,
        StepDetail::Migrations {
            migrations: migrations.iter().map(|m| m.name.clone()).collect(),
        },
    );

    // 4. The schema proven against the migrations, and drift caught.
    let t = steps.begin(
        "Verify the schema against its migrations, then catch an out-of-band change",
        "tend schema verify",
    );
    let drift_summary = demo_drift(ctx, &demo, &admin, &migrations)?;
    for line in &drift_summary {
        out.step(format!("    {line}"));
    }
    steps.end(
        "schema verify",
        t,
        StepDetail::Summary {
            summary: drift_summary,
        },
    );

    // 5. Sample data.
    let mut total_rows = 0i64;
    if !args.no_data {
        let t = steps.begin(
            "Generate realistic sample data (generate_series, deterministic seed)",
            "DATABASE_URL=\"$(tend dev url -d tend_demo)\" tend seed --file examples/saas/seed/generate.sql",
        );
        let spinner = spinner(ctx, "generating rows");
        block_on(migrate::run_seed(
            &database,
            &ctx.settings.migrate,
            std::path::PathBuf::from("examples/saas/seed/generate.sql"),
            example_file("seed/generate.sql"),
            &super::migrate::interrupt_token(),
        ))?;
        spinner.finish_and_clear();
        let counts = block_on(demo::row_counts(&session))?;
        for TableRows { table, rows } in &counts {
            out.step(format!("    {table:<28} {rows:>8} rows"));
            total_rows += rows;
        }
        out.step(format!("    {:<28} {total_rows:>8} rows", "total"));
        steps.end(
            "generate data",
            t,
            StepDetail::Data {
                rows: total_rows,
                tables: counts,
            },
        );
    }

    // 6. What tend knows about the server.
    let t = steps.begin(
        "Read the server's facts and sizes",
        "psql -c 'SELECT version(), pg_size_pretty(pg_database_size(current_database()))'",
    );
    let facts = block_on(ServerFacts::read(&session))?;
    let size = block_on(demo::database_size(&session))?;
    out.step(format!(
        "    PostgreSQL {} as `{}` (superuser: {}, standby: {}), database size {size}",
        facts.version, facts.user, facts.is_superuser, facts.in_recovery
    ));
    steps.end("server facts", t, StepDetail::Facts { facts, size });

    // 7. The diagnosis a user runs first.
    let t = steps.begin(
        "Check tools, versions and connectivity",
        "tend doctor --database-url \"$(tend dev url -d tend_demo)\"",
    );
    let doctor = doctor_summary(ctx, &demo);
    for line in &doctor {
        out.step(format!("    {line}"));
    }
    steps.end("doctor", t, StepDetail::Doctor { findings: doctor });

    // 8. The checks catalog on the example, with a finding and its remedy.
    let t = steps.begin(
        "Run the checks catalog on the example database",
        "tend check --database-url \"$(tend dev url -d tend_demo)\"",
    );
    let catalog = tend_ops::checks::catalog();
    let report = super::check::run_and_record(
        ctx,
        &demo,
        &catalog,
        &tend_core::checks::Selection::default(),
    )?;
    let count = |s: tend_ops::Severity| report.findings.iter().filter(|f| f.severity == s).count();
    out.step(format!(
        "    {} checks in {} ms: {} critical, {} warning, {} info, {} could not look",
        report.checks.len(),
        report.millis,
        count(tend_ops::Severity::Critical),
        count(tend_ops::Severity::Warning),
        count(tend_ops::Severity::Info),
        count(tend_ops::Severity::Unknown),
    ));
    // The first finding of each of the three worst checks: variety shows more.
    let mut shown: Vec<&tend_ops::Finding> = Vec::new();
    for finding in report
        .findings
        .iter()
        .filter(|f| f.severity != tend_ops::Severity::Unknown)
    {
        if shown.len() < 3 && !shown.iter().any(|s| s.check == finding.check) {
            shown.push(finding);
        }
    }
    for finding in &shown {
        let word = match finding.severity {
            tend_ops::Severity::Critical => "critical",
            tend_ops::Severity::Warning => "warning",
            _ => "info",
        };
        out.step(format!(
            "    {word}: {} [{}]",
            finding.message, finding.check
        ));
        out.step(format!("      fix: {}", finding.remedy));
    }
    steps.end(
        "check",
        t,
        StepDetail::Check {
            checks: report.checks.len(),
            findings: report.findings,
            history: report.history,
        },
    );

    // 9. A backup: taken, verified, restored.
    let t = steps.begin(
        "Back up the example (pg_dump, zstd, age), verify it, and restore it into a new database",
        "tend backup run && tend backup verify --latest && tend restore --to \"$(tend dev url -d tend_demo_restored)\"",
    );
    let backup = demo_backup(ctx, &demo, &admin)?;
    out.step(format!("    {}", backup.0));
    out.step(format!("    {}", backup.1));
    out.step(format!("    {}", backup.2));
    steps.end(
        "backup",
        t,
        StepDetail::Summary {
            summary: vec![backup.0, backup.1, backup.2],
        },
    );

    // 10. Data lifecycle: what retention would purge, and whom a GDPR request reaches.
    let t = steps.begin(
        "Count what retention rules would purge (nothing is deleted), and what a user's GDPR erasure must cover",
        "tend cleanup --dry-run && tend gdpr check --suggest",
    );
    let lifecycle = demo_lifecycle(ctx, &demo)?;
    for line in &lifecycle {
        out.step(format!("    {line}"));
    }
    steps.end("lifecycle", t, StepDetail::Summary { summary: lifecycle });

    let elapsed = started.elapsed();
    out.json_value(&DemoReport {
        database: DEMO_DATABASE,
        url: demo.to_secret_string(),
        migrations: migrations.len(),
        rows: total_rows,
        seconds: round(elapsed),
        steps: steps.log,
    });
    out.line(format!(
        "\n{} the example SaaS database `{DEMO_DATABASE}` is ready: {} migrations, {total_rows} rows, in {:.1}s.",
        out.paint("Demo done:", "32;1"),
        migrations.len(),
        elapsed.as_secs_f64()
    ));
    let tend = self_command();
    out.line(format!("    URL:      {}", demo.redacted()));
    out.line(format!("    explore:  {tend} dev psql -d {DEMO_DATABASE}"));
    out.line(format!(
        "    stop:     {tend} dev stop        (the cluster keeps running until then)"
    ));
    Ok(exit::OK)
}

/// `tend schema verify` on the demo: clean, then an out-of-band change caught by name, then
/// the reconciling DDL applied so the demo database ends as its migrations say.
fn demo_drift(
    ctx: &Context,
    demo: &ConnInfo,
    admin: &ConnInfo,
    migrations: &[tend_migrate::Migration],
) -> Result<Vec<String>, CommandError> {
    use tend_schema::shadow::{ShadowHost, Shadows};
    let project = super::migrate::Project {
        format: tend_migrate::Format::Prisma,
        dir: "examples/saas/prisma/migrations".into(),
    };
    let shadows = Shadows::new(
        ShadowHost::Server(admin.clone()),
        ctx.settings.connect_options(),
    )
    .protecting(demo);
    let mut lines = Vec::new();
    let clean = super::schema::drift(ctx, demo, &project, migrations, &shadows)?;
    lines.push(format!(
        "{} (exit {})",
        if clean.plan.is_empty() {
            format!("no drift from the {} applied migrations", clean.applied)
        } else {
            format!("{} drifted objects", clean.plan.changed_objects().len())
        },
        if clean.plan.is_empty() { 0 } else { 1 }
    ));
    lines.push(format!(
        "$ psql -c \"{}\"  (by hand, outside any migration)",
        demo::OUT_OF_BAND_CHANGE
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let session = ctx.connect(demo)?;
    block_on(demo::change_out_of_band(&session))?;
    let drifted = super::schema::drift(ctx, demo, &project, migrations, &shadows)?;
    lines.push(format!(
        "$ tend schema verify  ->  drift (exit 1): {}",
        drifted
            .plan
            .changed_objects()
            .iter()
            .map(|(object, _)| object.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    block_on(demo::reconcile(&session, &drifted.plan))?;
    for step in &drifted.plan.steps {
        lines.push(format!("  reconciled: {}", step.sql));
    }
    let after = super::schema::drift(ctx, demo, &project, migrations, &shadows)?;
    lines.push(format!(
        "$ tend schema verify  ->  {}",
        if after.plan.is_empty() {
            "no drift again (exit 0)"
        } else {
            "still drifted (exit 1)"
        }
    ));
    Ok(lines)
}

/// `tend cleanup --dry-run` with the built-in soft-delete rule and two example rules (the
/// configured ones instead, when there are), and `tend gdpr check` with users as the
/// subject (or the configured `[gdpr]`): a few lines of what each found.
fn demo_lifecycle(ctx: &Context, demo: &ConnInfo) -> Result<Vec<String>, CommandError> {
    use tend_core::cleanup::{self, CleanupRequest, ConfiguredAction, RetentionConfig};
    let session = ctx.connect(demo)?;
    let mut settings = ctx.settings.cleanup.clone();
    if settings.rules.is_empty() {
        let rule = |name: &str, table: &str, column: &str, days: u64, predicate: Option<&str>| {
            RetentionConfig {
                name: name.to_string(),
                table: table.to_string(),
                older_than: Some((column.to_string(), Duration::from_secs(days * 86_400))),
                predicate: predicate.map(str::to_string),
                action: ConfiguredAction::Delete,
                position: 0,
            }
        };
        settings.rules = vec![
            rule("expired-sessions", "sessions", "expires_at", 1, None),
            rule(
                "finished-jobs",
                "background_jobs",
                "finished_at",
                7,
                Some("status IN ('succeeded', 'dead')"),
            ),
        ];
    }
    let plan = block_on(cleanup::plan(
        &session,
        &settings,
        &CleanupRequest::default(),
    ))
    .map_err(|e| CommandError::failure(e.to_string()))?;
    let mut lines = vec![format!(
        "retention: {} rows past {} rules, in the order they would go (children first); nothing deleted",
        plan.rows(),
        plan.rules.len()
    )];
    for rule in plan.rules.iter().filter(|r| r.has_work()).take(4) {
        lines.push(format!(
            "  {} on {}: {} rows{}",
            rule.rule,
            rule.table,
            rule.deletes(),
            match rule.cascades.first() {
                Some(c) => format!(" (+{} in {} through ON DELETE CASCADE)", c.rows, c.table),
                None => String::new(),
            }
        ));
    }
    let gdpr = tend_core::settings::GdprSettings {
        config: Some(ctx.settings.gdpr.config.clone().unwrap_or_else(|| {
            tend_core::gdpr::GdprConfig {
                subject: Some("users".to_string()),
                ..Default::default()
            }
        })),
        salt: None,
    };
    let report = block_on(tend_core::gdpr::check(&session, &gdpr))
        .map_err(|e| CommandError::failure(e.to_string()))?;
    let owned = report.tables.iter().filter(|t| t.owned).count();
    let uncovered: Vec<&str> = report
        .tables
        .iter()
        .filter(|t| t.action.is_none())
        .map(|t| t.table.as_str())
        .collect();
    lines.push(format!(
        "gdpr: one of {} reaches {} tables ({owned} hold rows it owns, {} mention it); {} without a policy, so tend gdpr check fails until [gdpr.tables] covers them (--suggest writes a start)",
        report.subject,
        report.tables.len(),
        report.tables.len() - owned,
        uncovered.len()
    ));
    Ok(lines)
}

/// `tend doctor`'s own checks, on the demo database, one line each.
fn doctor_summary(ctx: &Context, demo: &ConnInfo) -> Vec<String> {
    use super::doctor::{Status, check_one_database, check_tools};
    check_tools(&ctx.settings, false)
        .into_iter()
        .chain(check_one_database(&ctx.settings, "database", demo))
        .map(|f| {
            let mark = match f.status {
                Status::Ok => "ok  ",
                Status::Info => "info",
                Status::Warning => "warn",
                Status::Error => "FAIL",
            };
            format!("{mark} {}", f.message)
        })
        .collect()
}

fn progress(ctx: &Context, len: u64, what: &str) -> ProgressBar {
    if ctx.out.quiet || ctx.out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("    {{bar:30}} {{pos}}/{{len}} {what} {{msg}}"))
            .expect("a valid template"),
    );
    bar
}

fn spinner(ctx: &Context, message: &str) -> ProgressBar {
    if ctx.out.quiet || ctx.out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// How the user can run this binary again: `tend` when that is on PATH, else its path
/// (after `cargo run`, the binary sits in target/).
fn self_command() -> String {
    let me = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join("tend");
            candidate.is_file()
                && std::fs::canonicalize(&candidate).ok()
                    == me.as_ref().and_then(|m| std::fs::canonicalize(m).ok())
        })
    });
    match me {
        Some(path) if !on_path => {
            let cwd = std::env::current_dir().unwrap_or_default();
            path.strip_prefix(&cwd)
                .map(|p| format!("./{}", p.display()))
                .unwrap_or_else(|_| path.display().to_string())
        }
        _ => "tend".to_string(),
    }
}

/// The demo's backup round trip, as three lines. Demo backups are encrypted to an age key
/// the demo makes (in `.tend/demo-backup-key.txt`), so they need no configuration.
fn demo_backup(
    ctx: &Context,
    demo: &ConnInfo,
    admin: &ConnInfo,
) -> Result<(String, String, String), CommandError> {
    let trip = block_on(demo::backup_round_trip(&demo::RoundTripRequest {
        state_dir: &ctx.settings.project_root.join(".tend"),
        source: demo,
        admin,
        restored: "tend_demo_restored",
        tools: &ctx.settings.tool_search(),
        connect: &ctx.settings.connect_options(),
    }))?;
    Ok((
        format!(
            "backup {}: {:.1} MB dumped, {:.1} MB stored, in {:.1}s, to {}",
            trip.id,
            trip.raw_bytes as f64 / 1e6,
            trip.stored_bytes as f64 / 1e6,
            trip.took.as_secs_f64(),
            trip.store
        ),
        "verified: checksum, decryption, decompression and archive are sound".to_string(),
        format!(
            "restored into {}: audit_log holds {} rows, the manifest says {}",
            trip.restored, trip.restored_audit_rows, trip.manifest_audit_rows
        ),
    ))
}

impl From<demo::DemoError> for CommandError {
    fn from(err: demo::DemoError) -> Self {
        use demo::DemoError;
        match err {
            DemoError::Connect(e) => e.into(),
            DemoError::Database(e) => e.into(),
            DemoError::Backup(e) => e.into(),
            DemoError::Store(e) => e.into(),
            DemoError::Tool(e) => e.into(),
            file @ DemoError::File { .. } => CommandError::failure(file.to_string()),
        }
    }
}
