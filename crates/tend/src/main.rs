//! The `tend` binary: parse the command line, resolve settings once, run one command, print
//! its error once, and exit with the code its kind decides.

mod cli;
mod command_error;
mod commands;
mod context;
mod output;
mod settings;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let mut out = output::Output::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.verbose,
        cli.global.no_color,
    );
    if let Some(url) = &cli.global.database_url {
        // Mask the flag's password even when the URL fails to parse.
        if let Ok(info) = tend_pg::ConnInfo::parse(url) {
            out.add_secrets(info.secrets());
        }
    }
    let code = match commands::run(cli, &mut out) {
        Ok(code) => code,
        Err(err) => {
            out.error(&err);
            err.kind.exit_code()
        }
    };
    std::process::exit(code);
}
