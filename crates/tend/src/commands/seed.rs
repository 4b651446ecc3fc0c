//! `tend seed`: runs the project's seed SQL in one transaction, or statement by statement as
//! psql does when the file manages its own transactions.

use std::path::PathBuf;

use clap::Args;
use tend_migrate::apply::SeedMode;
use tend_pg::ConnInfo;

use crate::command_error::{CommandError, exit};
use crate::context::{Context, block_on};

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The seed file (default: migrate.seed, else seed.sql, else prisma/seed.sql).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

pub fn run(args: SeedArgs, ctx: &Context) -> Result<i32, CommandError> {
    let info = ctx.target()?.info;
    let (path, mode) = run_seed(ctx, &info, args.file, false)?.expect("required seeds error out");
    ctx.out
        .json_value(&serde_json::json!({ "seed": path, "mode": mode }));
    ctx.out.line(format!(
        "Seeded from {}{}.",
        path.display(),
        match mode {
            SeedMode::Transaction => " (in one transaction)",
            SeedMode::Statements =>
                " (statement by statement, as psql runs it, since the file manages its own transactions)",
        }
    ));
    Ok(exit::OK)
}

/// Finds and runs the seed. With `optional`, a project without one is fine (`None`).
pub fn run_seed(
    ctx: &Context,
    info: &ConnInfo,
    file: Option<PathBuf>,
    optional: bool,
) -> Result<Option<(PathBuf, SeedMode)>, CommandError> {
    let root = &ctx.settings.project_root;
    // A flag's path is the shell's (relative to the working directory); the config's is
    // relative to the project root.
    let given = match file {
        Some(file) => Some(std::env::current_dir()?.join(file)),
        None => ctx.settings.migrate.seed.clone(),
    };
    let path = match given {
        Some(path) => {
            if !path.is_file() {
                return Err(CommandError::failure(format!(
                    "the seed file {} does not exist",
                    path.display()
                )));
            }
            path
        }
        None => match ["seed.sql", "prisma/seed.sql"]
            .iter()
            .map(|p| root.join(p))
            .find(|p| p.is_file())
        {
            Some(path) => path,
            None if optional => return Ok(None),
            None => {
                return Err(CommandError::failure(format!(
                    "there is no seed file: create seed.sql (or prisma/seed.sql) in {}, or set migrate.seed in tend.toml",
                    root.display()
                )));
            }
        },
    };
    let sql = std::fs::read_to_string(&path)?;
    let mode = block_on(tend_migrate::apply::seed(
        info,
        &super::migrate::run_options(ctx),
        &path,
        &sql,
    ))?;
    Ok(Some((path, mode)))
}
