//! `tend config show`: the resolved configuration, each value with its source, secrets
//! masked.

use clap::Subcommand;

use crate::command_error::CommandError;
use crate::context::Context;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, its value (secrets masked) and where it came from.
    Show,
}

pub fn run(cmd: ConfigCommand, ctx: &Context) -> Result<i32, CommandError> {
    match cmd {
        ConfigCommand::Show => show(ctx),
    }
}

fn show(ctx: &Context) -> Result<i32, CommandError> {
    let entries = ctx.settings.entries();
    if ctx.out.json {
        ctx.out.json_value(&ConfigReport {
            config_file: ctx.settings.config_file.as_deref(),
            project_root: &ctx.settings.project_root,
            settings: &entries,
        });
        return Ok(0);
    }
    match &ctx.settings.config_file {
        Some(path) => ctx.out.line(format!("# config file: {}", path.display())),
        None => ctx
            .out
            .line("# no tend.toml found; defaults and environment only"),
    }
    let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
    for entry in entries {
        let value = entry.value.as_deref().unwrap_or("(unset)");
        let source = entry
            .source
            .as_ref()
            .map(|s| format!("  # {s}"))
            .unwrap_or_default();
        ctx.out
            .line(format!("{:width$} = {value}{source}", entry.key));
    }
    Ok(0)
}

/// What `tend config show --json` prints: where the configuration came from and every key
/// with its value (secrets masked) and source.
#[derive(serde::Serialize)]
struct ConfigReport<'a> {
    config_file: Option<&'a std::path::Path>,
    project_root: &'a std::path::Path,
    settings: &'a [tend_core::settings::Entry],
}
