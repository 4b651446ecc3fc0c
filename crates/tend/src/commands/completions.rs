//! `tend completions SHELL`: a completion script generated from the command tree.

use clap::{Args, CommandFactory};

use crate::command_error::CommandError;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs) -> Result<i32, CommandError> {
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(args.shell, &mut command, "tend", &mut std::io::stdout());
    Ok(0)
}
