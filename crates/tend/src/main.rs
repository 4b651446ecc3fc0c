//! The `tend` binary: parse the command line, resolve settings once, run one command, print
//! its error once, and exit with the code its kind decides.

mod cli;
mod command_error;
mod commands;
mod context;
mod output;
use tend_core::settings;

use clap::Parser;
use clap::error::ErrorKind as ClapErrorKind;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => usage_error(err),
    };
    let mut out = output::Output::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.verbose,
        cli.global.no_color,
    );
    // Mask what may be a password in any argument (--database-url, restore --to, ...),
    // even when it fails to parse.
    out.add_secrets(
        std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .flat_map(|a| tend_pg::conninfo::secret_candidates(&a)),
    );
    let code = match commands::run(cli, &mut out) {
        Ok(code) => code,
        Err(err) => {
            out.error(&err);
            err.kind.exit_code()
        }
    };
    std::process::exit(code);
}

/// clap's own exit for help, version and usage errors; with `--json`, a usage error is also
/// a JSON document on stdout, like every other error.
fn usage_error(err: clap::Error) -> ! {
    // clap echoes arguments it could not place; one may be a URL with a password.
    let secrets: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .flat_map(|a| tend_pg::conninfo::secret_candidates(&a))
        .filter(|s| s.len() >= 3)
        .collect();
    let is_usage = !matches!(
        err.kind(),
        ClapErrorKind::DisplayHelp
            | ClapErrorKind::DisplayVersion
            | ClapErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !is_usage {
        err.exit()
    }
    let rendered = tend_pg::conninfo::scrub(&err.render().to_string(), &secrets);
    if std::env::args_os().any(|a| a == "--json") {
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        let hints = ["run `tend --help` for usage".to_string()];
        let doc = command_error::ErrorDocument {
            error: command_error::ErrorBody {
                kind: "usage",
                exit_code: command_error::exit::USAGE,
                message: &message,
                hints: &hints,
            },
        };
        println!(
            "{}",
            serde_json::to_value(&doc)
                .and_then(|value| serde_json::to_string_pretty(&value))
                .expect("errors serialize")
        );
    }
    eprint!("{rendered}");
    std::process::exit(err.exit_code())
}
