//! The command line, as clap types. Each command's arguments live with the command's code;
//! this file holds the global flags and the command tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tend runs the database side of a PostgreSQL application: local clusters, configuration
/// and diagnostics today; migrations, backups, checks and jobs as they land.
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
    /// Take, list and verify backups (compressed, encrypted, to a directory or S3).
    #[command(subcommand)]
    Backup(crate::commands::backup::BackupCommand),
    /// Restore a backup from the store into a database.
    Restore(crate::commands::restore::RestoreArgs),
    /// Probe the database fast: connect, latency, role, connections, replica lag (Nagios exit codes).
    Health(crate::commands::health::HealthArgs),
    /// Run the catalog of checks and report findings with remedies (exit 0 ok, 1 warning, 2 critical).
    Check(crate::commands::check::CheckArgs),
    /// Show what client sessions are doing now, longest first.
    Queries(crate::commands::queries::QueriesArgs),
    /// Show who blocks whom, as a tree rooted at the blockers.
    Locks(crate::commands::locks::LocksArgs),
    /// Cancel sessions' queries (or terminate sessions) by pid, age or state.
    Kill(crate::commands::kill::KillArgs),
    /// VACUUM (and ANALYZE) tables with progress.
    Vacuum(crate::commands::vacuum::VacuumArgs),
    /// Rebuild indexes with REINDEX CONCURRENTLY, never stalling the lock queue.
    Reindex(crate::commands::reindex::ReindexArgs),
    /// Analyze stale statistics, index foreign keys; with --apply drop unused/duplicate indexes.
    Optimize(crate::commands::optimize::OptimizeArgs),
    /// Check tools, versions, connectivity and configuration, and say how to fix problems.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Build an example SaaS database on the local cluster and show what tend does with it.
    Demo(crate::commands::demo::DemoArgs),
    /// Print a shell completion script.
    Completions(crate::commands::completions::CompletionsArgs),
}
