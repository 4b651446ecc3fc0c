//! `tend init`: writes a commented tend.toml for this project, detecting a Prisma project.

use std::path::Path;

use clap::Args;

use crate::command_error::CommandError;
use crate::output::Output;
use crate::settings::{CONFIG_FILE, template};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing tend.toml.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: InitArgs, cwd: &Path, out: &Output) -> Result<i32, CommandError> {
    let path = cwd.join(CONFIG_FILE);
    if path.exists() && !args.force {
        return Err(CommandError::failure(format!(
            "{} already exists; nothing was changed",
            path.display()
        ))
        .with_hint("pass --force to overwrite it"));
    }
    let prisma_schema = cwd.join("prisma/schema.prisma");
    let prisma_migrations = cwd.join("prisma/migrations");
    let prisma = prisma_schema.is_file() || prisma_migrations.is_dir();
    std::fs::write(&path, template(prisma))?;
    let migrations = if prisma {
        prisma_migrations
    } else {
        let dir = cwd.join("migrations");
        std::fs::create_dir_all(&dir)?;
        dir
    };
    out.json_value(&InitReport {
        config_file: &path,
        format: if prisma { "prisma" } else { "tend" },
        migrations_dir: &migrations,
    });
    out.line(format!("Wrote {}", path.display()));
    if prisma {
        out.line(format!(
            "Detected a Prisma project: migrations are read from {} and recorded in _prisma_migrations.",
            migrations.display()
        ));
    } else {
        out.line(format!("Migrations go in {}.", migrations.display()));
    }
    out.line("Next: set database.url (or DATABASE_URL), or leave it unset to use the local cluster; then `tend doctor`.");
    Ok(0)
}

/// What `tend init --json` prints: the file written and the migration layout it chose.
#[derive(serde::Serialize)]
struct InitReport<'a> {
    config_file: &'a Path,
    format: &'static str,
    migrations_dir: &'a Path,
}
