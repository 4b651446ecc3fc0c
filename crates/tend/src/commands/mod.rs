//! One module per command (groups are modules with subcommands). Each exposes its clap
//! arguments and a `run` function that takes the [`Context`] and returns an exit code.

pub mod backup;
pub mod check;
pub mod cleanup;
pub mod completions;
pub mod config;
pub mod demo;
pub mod dev;
pub mod doctor;
pub mod gdpr;
pub mod health;
pub mod init;
pub mod kill;
pub mod locks;
pub mod migrate;
pub mod optimize;
pub mod pitr;
pub mod queries;
pub mod reindex;
pub mod restore;
pub mod schema;
pub mod seed;
pub mod serve;
pub mod soft_delete;
pub mod vacuum;
pub mod wal;

use crate::cli::{Cli, Command};
use crate::command_error::CommandError;
use crate::context::Context;
use crate::output::Output;
use crate::settings::{FlagOverrides, Settings};

/// Resolves settings and runs the command. Returns the exit code on success.
pub fn run(cli: Cli, out: &mut Output) -> Result<i32, CommandError> {
    let cwd = std::env::current_dir()?;
    let flags = FlagOverrides {
        config: cli.global.config.clone(),
        database_url: cli.global.database_url.clone(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let resolved = crate::settings::check_environment(&|name| std::env::var_os(name))
        .and_then(|()| Settings::resolve(&cwd, &env, &flags));
    match &resolved {
        Ok(settings) => out.add_secrets(settings.secrets()),
        // Whatever the error, mask what may be a password in the URLs given.
        Err(_) => out.add_secrets(
            crate::settings::KEYS
                .iter()
                .filter(|k| k.kind == crate::settings::Kind::Url)
                .flat_map(|k| k.env.iter())
                .filter_map(|var| env(var))
                .flat_map(|v| tend_pg::conninfo::secret_candidates(&v)),
        ),
    }
    match cli.command {
        Command::Completions(args) => completions::run(args),
        Command::Doctor(args) => doctor::run(args, resolved, &cwd, out),
        Command::Init(args) => init::run(args, &cwd, out),
        command => {
            let ctx = Context {
                settings: resolved?,
                out,
                yes: cli.global.yes,
            };
            match command {
                Command::Dev(cmd) => dev::run(cmd, &ctx),
                Command::Config(cmd) => config::run(cmd, &ctx),
                Command::Demo(args) => demo::run(args, &ctx),
                Command::Migrate(cmd) => migrate::run(cmd, &ctx),
                Command::Schema(cmd) => schema::run(cmd, &ctx),
                Command::Seed(args) => seed::run(args, &ctx),
                Command::Health(args) => health::run(args, &ctx),
                Command::Check(args) => check::run(args, &ctx),
                Command::Queries(args) => queries::run(args, &ctx),
                Command::Locks(args) => locks::run(args, &ctx),
                Command::Kill(args) => kill::run(args, &ctx),
                Command::Vacuum(args) => vacuum::run(args, &ctx),
                Command::Reindex(args) => reindex::run(args, &ctx),
                Command::Optimize(args) => optimize::run(args, &ctx),
                Command::Cleanup(args) => cleanup::run(args, &ctx),
                Command::Gdpr(cmd) => gdpr::run(cmd, &ctx),
                Command::SoftDelete(args) => soft_delete::soft_delete(args, &ctx),
                Command::Undelete(args) => soft_delete::undelete(args, &ctx),
                Command::Backup(cmd) => backup::run(cmd, &ctx),
                Command::Restore(args) => restore::run(args, &ctx),
                Command::Serve(args) => serve::run(args, &ctx),
                Command::Pitr(cmd) => pitr::run(cmd, &ctx),
                Command::WalPush(args) => wal::push(args, &ctx),
                Command::WalFetch(args) => wal::fetch(args, &ctx),
                Command::Init(_) | Command::Doctor(_) | Command::Completions(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
