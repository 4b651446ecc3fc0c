//! Everything tend shows goes through [`Output`]: human text or JSON on stdout, notices and
//! errors on stderr, and every byte scrubbed of secrets first (the passwords of configured
//! URLs, and anything that looks like one).

use std::io::{IsTerminal, Write};

use crate::command_error::CommandError;

/// How the user asked to see output.
#[derive(Debug, Clone)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Colors on stdout (its own terminal test: `tend doctor > file` gets none).
    pub color: bool,
    /// Colors on stderr.
    pub color_err: bool,
    secrets: Vec<String>,
}

impl Output {
    pub fn new(json: bool, quiet: bool, verbose: bool, no_color: bool) -> Output {
        let allowed = !no_color && std::env::var_os("NO_COLOR").is_none();
        Output {
            json,
            quiet,
            verbose,
            color: allowed && std::io::stdout().is_terminal(),
            color_err: allowed && std::io::stderr().is_terminal(),
            secrets: Vec::new(),
        }
    }

    /// Values to mask wherever they appear.
    pub fn add_secrets(&mut self, secrets: impl IntoIterator<Item = String>) {
        for secret in secrets {
            // Very short values would mask ordinary words; URL redaction still covers them.
            if secret.len() >= 3 && !self.secrets.contains(&secret) {
                self.secrets.push(secret);
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// The text with every known secret and every URL password masked.
    pub fn scrub(&self, text: &str) -> String {
        tend_pg::conninfo::scrub(text, &self.secrets)
    }

    /// A line of the command's result on stdout (human mode only).
    pub fn line(&self, text: impl AsRef<str>) {
        if self.json {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.scrub(text.as_ref()));
    }

    /// A line on stdout even in quiet mode: the one thing a command exists to print
    /// (`tend dev url`).
    pub fn result(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.scrub(text.as_ref()));
    }

    /// A JSON document on stdout (JSON mode only): a command's report, serialized. Keys come
    /// out sorted (through `serde_json::Value`), whatever the order of the report's fields.
    pub fn json_value<T: serde::Serialize + ?Sized>(&self, report: &T) {
        if !self.json {
            return;
        }
        let value = serde_json::to_value(report).expect("reports serialize");
        let text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.scrub(&text));
    }

    /// Progress and context on stderr, silenced by -q.
    pub fn notice(&self, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", self.scrub(text.as_ref()));
    }

    /// Wraps text for stdout in an ANSI color when stdout shows colors.
    pub fn paint(&self, text: &str, code: &str) -> String {
        paint(self.color, text, code)
    }

    /// The same for stderr.
    fn paint_err(&self, text: &str, code: &str) -> String {
        paint(self.color_err, text, code)
    }

    /// A line of a command's narrative on stdout (human mode), silenced by -q: for
    /// commands such as `demo` whose steps are not their result.
    pub fn step(&self, text: impl AsRef<str>) {
        if !self.quiet {
            self.line(text);
        }
    }

    /// A warning on stderr, silenced by -q.
    pub fn warn(&self, text: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let prefix = self.paint_err("warning:", "33");
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{prefix} {}", self.scrub(text.as_ref()));
    }

    /// Prints an error once, at the top: message, hints, and the cause chain with -v.
    /// In JSON mode stdout also gets `{"error": ...}` for scripts.
    pub fn error(&self, err: &CommandError) {
        if err.message.is_empty() {
            return;
        }
        if self.json {
            let document = crate::command_error::ErrorDocument {
                error: crate::command_error::ErrorBody {
                    kind: err.kind,
                    exit_code: err.kind.exit_code(),
                    message: &err.message,
                    hints: &err.hints,
                },
            };
            let value = serde_json::to_value(&document).expect("errors serialize");
            let text = serde_json::to_string_pretty(&value).expect("JSON values serialize");
            let _ = writeln!(std::io::stdout().lock(), "{}", self.scrub(&text));
        }
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "{} {}",
            self.paint_err("error:", "31;1"),
            self.scrub(&err.message)
        );
        for hint in &err.hints {
            let _ = writeln!(
                stderr,
                "{} {}",
                self.paint_err("hint:", "36"),
                self.scrub(hint)
            );
        }
        if self.verbose
            && let Some(detail) = &err.detail
        {
            let _ = writeln!(stderr, "caused by: {}", self.scrub(detail));
        }
    }

    /// Asks before a destructive action. Without a terminal, only `--yes` says yes.
    pub fn confirm(&self, question: &str, yes: bool) -> Result<(), CommandError> {
        if yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(CommandError::new(
                crate::command_error::ErrorKind::Aborted,
                "this needs confirmation and there is no terminal to ask on; nothing was changed",
            )
            .with_hint(format!("the question was: {question}"))
            .with_hint("pass --yes to confirm, or --dry-run to see what would happen"));
        }
        eprint!("{} [y/N] ", self.scrub(question));
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(CommandError::new(
                crate::command_error::ErrorKind::Aborted,
                "not confirmed; nothing was changed",
            ))
        }
    }
}

/// "1 table", "3 tables": a count with its noun.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn paint(enabled: bool, text: &str, code: &str) -> String {
    if enabled {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
