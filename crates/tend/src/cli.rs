//! The command line, as clap types. Each command's arguments live with the command's code;
//! this file holds the global flags and the command tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tend runs the database side of a PostgreSQL application: migrations and schema drift,
/// encrypted backups and restores, health checks and maintenance, and a local cluster.
///
/// Migrations and schemas (Prisma's layout or tend's own): migrate, schema, seed.
///
/// Backups (pg_dump, compressed and encrypted, to a directory or S3): backup, restore;
/// point-in-time recovery: pitr, wal-push, wal-fetch.
///
/// Health and maintenance: health, check, queries, locks, kill, vacuum, reindex, optimize.
///
/// Setup and diagnosis: init, dev, config, doctor, demo, completions.
///
/// With no database configured, tend uses the project's local cluster under .tend/,
/// starting it when needed.
#[derive(Debug, Parser)]
#[command(name = "tend", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Read this config file instead of the nearest tend.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The database to work on (overrides DATABASE_URL and tend.toml).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail, including the causes of errors.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Answer yes to confirmations (for scripts).
    #[arg(long, global = true)]
    pub yes: bool,
    /// Never use colors (also: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented tend.toml (and migrations/) in this directory.
    Init(crate::commands::init::InitArgs),
    /// Manage the project's local PostgreSQL cluster under .tend/.
    #[command(subcommand)]
    Dev(crate::commands::dev::DevCommand),
    /// Inspect the resolved configuration.
    #[command(subcommand)]
    Config(crate::commands::config::ConfigCommand),
    /// Apply and manage migrations (Prisma's layout or tend's own).
    #[command(subcommand)]
    Migrate(crate::commands::migrate::MigrateCommand),
    /// Dump, diff and verify schemas: databases, migrations, desired-state SQL.
    #[command(subcommand)]
    Schema(crate::commands::schema::SchemaCommand),
    /// Run the project's seed SQL in one transaction.
    Seed(crate::commands::seed::SeedArgs),
    /// Take, list, verify and prune backups (compressed, encrypted, to a directory or S3).
    #[command(subcommand)]
    Backup(crate::commands::backup::BackupCommand),
    /// Restore a backup from the store into a database.
    Restore(crate::commands::restore::RestoreArgs),
    /// Point-in-time recovery: archive the server's WAL into the backup store.
    #[command(subcommand)]
    Pitr(crate::commands::pitr::PitrCommand),
    /// Archive one WAL file into the store (the server's archive_command; tend pitr enable sets it).
    ///
    /// Succeeds only once the file is in the store, or when the same bytes already are;
    /// other bytes under the same name are refused. Runs in the data directory.
    #[command(name = "wal-push")]
    WalPush(crate::commands::wal::WalPushArgs),
    /// Fetch one WAL file from the store (restore_command): exit 0 written, 1 not archived, 255 error.
    ///
    /// Exit 1 tells PostgreSQL the archive does not have the file; any other failure exits
    /// 255, which makes PostgreSQL stop recovery instead of ending it early.
    #[command(name = "wal-fetch")]
    WalFetch(crate::commands::wal::WalFetchArgs),
    /// Probe the database fast: connect, latency, role, connections, replica lag (Nagios exit codes).
    Health(crate::commands::health::HealthArgs),
    /// Run the catalog of checks and report findings with remedies (exit 0 ok, 1 warning or could not look, 2 critical).
    ///
    /// The checks run on one read-only session that never waits for a lock. Exit 0 when
    /// nothing is worse than info; 1 for a warning, or when a check could not look for a
    /// reason that may hide a problem (a privilege the role lacks, other roles' sessions
    /// hidden from it, a lock, a timeout); 2 for a critical finding.
    ///
    /// Each run is kept in a `tend` schema of the database (created on the first run, which
    /// says so first); set checks.history = "off" (TEND_CHECK_HISTORY=off) to write nothing.
    Check(crate::commands::check::CheckArgs),
    /// Show what client sessions are doing now, longest first.
    Queries(crate::commands::queries::QueriesArgs),
    /// Show who blocks whom, as a tree rooted at the blockers.
    Locks(crate::commands::locks::LocksArgs),
    /// Cancel sessions' queries (or terminate sessions) by pid, age or state.
    Kill(crate::commands::kill::KillArgs),
    /// VACUUM (and ANALYZE) tables with progress; tables the role may not vacuum are named, exit 1.
    ///
    /// PostgreSQL's own VACUUM skips a table the role may not vacuum with only a warning;
    /// tend decides first: a named table it may not vacuum is an error and nothing runs;
    /// with no table named, it vacuums the ones it may and names the rest (exit 1).
    Vacuum(crate::commands::vacuum::VacuumArgs),
    /// Rebuild indexes with REINDEX CONCURRENTLY, never stalling the lock queue.
    ///
    /// Indexes the role may not rebuild (it must own the table; from PostgreSQL 17 the
    /// MAINTAIN privilege is enough) are refused when named, else skipped and named (exit 1).
    Reindex(crate::commands::reindex::ReindexArgs),
    /// Analyze stale statistics, index foreign keys; with --apply drop unused/duplicate indexes.
    Optimize(crate::commands::optimize::OptimizeArgs),
    /// Purge rows past their retention rule (and soft-deleted rows past their grace), in batches.
    ///
    /// Rules are `[[retention]]` entries in tend.toml (a table, an age column and
    /// `older_than`, and/or a `where`; delete, or archive to a table), plus the built-in
    /// rule on every table with a `deleted_at`/`deletedAt` column (cleanup.soft_delete_grace,
    /// SOFT_DELETE_GRACE_PERIOD_DAYS, 30 days). Tables are purged children before parents;
    /// rows a RESTRICT or NO ACTION foreign key still references stay. Each batch is its own
    /// transaction within cleanup.batch_budget, so a run stopped at any moment carries on
    /// when run again. Asks first (--yes in scripts); --dry-run only counts.
    Cleanup(crate::commands::cleanup::CleanupArgs),
    /// Mark one row deleted (deleted_at) with the rows that belong to it through ON DELETE CASCADE.
    ///
    /// Every table the row's hard delete would cascade into that has a deleted_at or
    /// deletedAt timestamp column gets the same mark, so `tend undelete` restores exactly
    /// these rows; `tend cleanup`'s soft-delete rule purges them after the grace period.
    SoftDelete(crate::commands::soft_delete::SoftDeleteArgs),
    /// Lift the mark one `tend soft-delete` set: the row and the rows marked with it.
    Undelete(crate::commands::soft_delete::UndeleteArgs),
    /// GDPR requests: check the policy covers the schema, export or erase one person's data.
    ///
    /// `[gdpr]` in tend.toml names the subject table and a policy per table (delete,
    /// anonymize columns, unlink mentions, or retain with a reason); `[[gdpr.link]]`
    /// declares references the database does not know. Rows owned through ON DELETE
    /// CASCADE belong to the subject; rows that only mention it through other keys are
    /// unlinked. `check` exits 1 while a reachable table has no workable policy.
    #[command(subcommand)]
    Gdpr(crate::commands::gdpr::GdprCommand),
    /// Run the schedule unattended (backups, drills, checks, maintenance), with health and API endpoints.
    ///
    /// Several instances may run against one database: one leads (a PostgreSQL advisory
    /// lock) and runs the schedule, the others stand by and take over within serve.interval
    /// when it stops. Every run is recorded in the database's `tend` schema. SIGTERM stops
    /// it cleanly: no new run starts, running tasks are cancelled and undo what they did.
    Serve(crate::commands::serve::ServeArgs),
    /// Check tools, configuration, connectivity, the project's layout, backups and restore drills.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Build an example SaaS database on the local cluster and show what tend does with it.
    Demo(crate::commands::demo::DemoArgs),
    /// Print a shell completion script.
    Completions(crate::commands::completions::CompletionsArgs),
}
