//! `tend seed`: runs the project's seed SQL in one transaction, or statement by statement as
//! psql does when the file manages its own transactions (`tend_core::migrate::seed`).

use std::path::PathBuf;

use clap::Args;
use tend_core::migrate::{self as service, SeedRequest};
use tend_migrate::apply::SeedMode;

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The seed file (default: migrate.seed, else seed.sql, else prisma/seed.sql).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

pub fn run(args: SeedArgs, ctx: &Context) -> Result<i32, CommandError> {
    let database = ctx.settings.database.handle(ctx.target()?.info);
    // A flag's path is the shell's (relative to the working directory); the config's is
    // relative to the project root.
    let file = match args.file {
        Some(file) => Some(std::env::current_dir()?.join(file)),
        None => None,
    };
    let request = SeedRequest {
        project_root: ctx.settings.project_root.clone(),
        file,
        optional: false,
    };
    let report = block_on(service::seed(
        &database,
        &ctx.settings.migrate,
        &request,
        &super::migrate::interrupt_token(),
    ))?
    .ok_or_else(|| service::MigrateServiceError::NoSeed(ctx.settings.project_root.clone()))?;
    ctx.out.json_value(&report);
    ctx.out.line(format!(
        "Seeded from {}{}.",
        report.seed.display(),
        match report.mode {
            SeedMode::Transaction => " (in one transaction)",
            SeedMode::Statements =>
                " (statement by statement, as psql runs it, since the file manages its own transactions)",
        }
    ));
    Ok(exit::OK)
}
