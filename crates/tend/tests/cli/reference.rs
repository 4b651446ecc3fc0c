//! docs/cli.md against the real command line: every command and subcommand that the help
//! lists has a heading in the reference, every long flag its help shows is mentioned (in the
//! command's own section, or anywhere for the global flags), and the exit code table has a
//! row for each code.

use tend_testkit::TestProject;

use crate::run;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("cannot read {DOC_PATH}: {e}"))
}

/// The output of `tend <path> --help`.
fn help(project: &TestProject, path: &[String]) -> String {
    let (code, out, err) = run(project.tend().args(path).arg("--help"));
    assert_eq!(code, 0, "`tend {} --help` failed: {err}", path.join(" "));
    out
}

/// The subcommands listed under `Commands:` (two-space indented, one per line), without
/// `help`. Wrapped descriptions are indented further and are skipped.
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            in_commands = line.trim_end() == "Commands:";
            continue;
        }
        let Some(entry) = line.strip_prefix("  ") else {
            continue;
        };
        if !in_commands || entry.starts_with(char::is_whitespace) {
            continue;
        }
        let name = entry
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches(',');
        if !name.is_empty() && name != "help" {
            names.push(name.to_string());
        }
    }
    names
}

/// The long flags (`--name`) of the option lines of a help text, without `--help` and
/// `--version`.
fn long_flags(help: &str) -> Vec<String> {
    let mut flags = Vec::new();
    for line in help.lines() {
        if !line.trim_start().starts_with('-') {
            continue;
        }
        let Some(flag) = line
            .split_whitespace()
            .filter_map(|token| token.strip_prefix("--"))
            .map(|rest| {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .next()
                    .unwrap_or_default()
            })
            .find(|name| name.starts_with(|c: char| c.is_ascii_alphabetic()))
        else {
            continue;
        };
        let flag = format!("--{flag}");
        if flag != "--help" && flag != "--version" && !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    flags
}

/// A Markdown heading outside code blocks: its level, its text without `#` and backticks,
/// and its line number.
struct Heading {
    level: usize,
    text: String,
    line: usize,
}

fn headings(doc: &str) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (number, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        out.push(Heading {
            level,
            text: line[level..].replace('`', "").trim().to_string(),
            line: number,
        });
    }
    out
}

/// Does the heading name exactly this command (`tend dev`, not `tend dev start`)? What
/// follows the name may be arguments (`<SHELL>`, `NAME`, `[-- ARGS]`), not a subcommand.
fn names_command(heading: &str, command: &str) -> bool {
    heading.match_indices(command).any(|(at, _)| {
        let before_ok = heading[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric());
        let rest = &heading[at + command.len()..];
        let after_ok = match rest.chars().next() {
            None => true,
            Some(' ') => !rest
                .trim_start()
                .starts_with(|c: char| c.is_ascii_lowercase()),
            Some(c) => !(c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        };
        before_ok && after_ok
    })
}

/// The lines of the section under a heading: up to the next heading of the same or a
/// higher level.
fn section<'a>(doc: &'a str, all: &[Heading], index: usize) -> Vec<&'a str> {
    let start = all[index].line;
    let end = all[index + 1..]
        .iter()
        .find(|h| h.level <= all[index].level)
        .map_or(usize::MAX, |h| h.line);
    doc.lines()
        .enumerate()
        .filter(|(n, _)| *n >= start && *n < end)
        .map(|(_, line)| line)
        .collect()
}

/// Does the text mention `--flag` as a whole word (so `--to` is not found in `--token`)?
fn mentions_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        let before_ok = !text[..at].ends_with('-');
        let after_ok = text[at + flag.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        before_ok && after_ok
    })
}

#[test]
fn every_command_and_flag_is_documented() {
    let project = TestProject::new();
    let doc = doc();
    let all = headings(&doc);
    let top = help(&project, &[]);
    let global = long_flags(&top);
    assert!(
        global.contains(&"--json".to_string()),
        "no global flags found in `tend --help`:\n{top}"
    );

    // Every command path, found by walking the help's `Commands:` sections.
    let mut commands: Vec<(Vec<String>, String)> = Vec::new();
    let mut queue: Vec<Vec<String>> = subcommands(&top).into_iter().map(|c| vec![c]).collect();
    assert!(
        queue.len() >= 3,
        "too few commands found in `tend --help`:\n{top}"
    );
    while let Some(path) = queue.pop() {
        let text = help(&project, &path);
        for sub in subcommands(&text) {
            let mut child = path.clone();
            child.push(sub);
            queue.push(child);
        }
        commands.push((path, text));
    }
    commands.sort();

    let mut problems = Vec::new();
    for flag in &global {
        if !mentions_flag(&doc, flag) {
            problems.push(format!("the global flag {flag} is not documented"));
        }
    }
    for (path, text) in &commands {
        let name = format!("tend {}", path.join(" "));
        let Some(index) = all.iter().position(|h| names_command(&h.text, &name)) else {
            problems.push(format!("`{name}` has no heading (a line starting with #)"));
            continue;
        };
        let body = section(&doc, &all, index).join("\n");
        for flag in long_flags(text) {
            if !global.contains(&flag) && !mentions_flag(&body, &flag) {
                problems.push(format!(
                    "the flag {flag} of `{name}` is not mentioned in its section"
                ));
            }
        }
    }

    // And the other way round: no heading for a command that does not exist (any more).
    let names: Vec<String> = commands
        .iter()
        .map(|(path, _)| format!("tend {}", path.join(" ")))
        .collect();
    for heading in &all {
        let Some(rest) = heading.text.strip_prefix("tend ") else {
            continue;
        };
        let words: Vec<&str> = rest
            .split_whitespace()
            .take_while(|w| {
                w.starts_with(|c: char| c.is_ascii_lowercase())
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .collect();
        if words.is_empty() {
            continue;
        }
        let named = format!("tend {}", words.join(" "));
        if !names.contains(&named) {
            problems.push(format!(
                "the heading `{}` names `{named}`, which `tend --help` does not list",
                heading.text
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "docs/cli.md is out of date:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn exit_code_table_lists_every_code() {
    let doc = doc();
    let all = headings(&doc);
    let index = all
        .iter()
        .position(|h| h.text.to_ascii_lowercase().contains("exit code"))
        .unwrap_or_else(|| panic!("docs/cli.md has no heading containing \"Exit codes\""));
    let codes: Vec<i32> = section(&doc, &all, index)
        .iter()
        .filter(|line| line.trim_start().starts_with('|'))
        .filter_map(|line| {
            line.trim_start()
                .trim_start_matches('|')
                .split('|')
                .next()?
                .replace('`', "")
                .trim()
                .parse()
                .ok()
        })
        .collect();
    let missing: Vec<String> = (0..=6)
        .chain([101])
        .filter(|code| !codes.contains(code))
        .map(|code| code.to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "the exit code table of docs/cli.md has no row for exit code {}",
        missing.join(", ")
    );
}

#[test]
fn help_parsing_follows_clap_layout() {
    let help = "\
About it

Usage: tend dev [OPTIONS] <COMMAND>

Commands:
  start    Start it
  url      Print only the URL, for scripts: DATABASE_URL=$(tend
           dev url)
  help     Print this message or the help of the given subcommand(s)

Arguments:
  [PSQL_ARGS]...  Arguments for psql, such as -c 'SELECT 1' or --set x=1

Options:
      --config <PATH>
          Read this config file

  -d, --dbname <NAME>  A database
      --dry-run        Show what would happen
  -h, --help           Print help
";
    assert_eq!(subcommands(help), ["start", "url"]);
    assert_eq!(long_flags(help), ["--config", "--dbname", "--dry-run"]);
    assert!(names_command("tend dev", "tend dev"));
    assert!(names_command(
        "4. tend completions <SHELL>",
        "tend completions"
    ));
    assert!(!names_command("tend dev start", "tend dev"));
    assert!(!names_command("tend devices", "tend dev"));
    assert!(mentions_flag("pass `--to NAME`.", "--to"));
    assert!(!mentions_flag("pass --token", "--to"));
}

/// The help describes what exists: the top level names the real command groups, and no
/// help text, at any level, promises what comes "as they land" or is "coming".
#[test]
fn help_names_the_real_command_groups_and_promises_nothing() {
    let project = TestProject::new();
    let top = help(&project, &[]);
    let about = top.split("Usage:").next().unwrap();
    for group in [
        "migrate", "schema", "backup", "restore", "health", "check", "vacuum", "doctor", "dev",
    ] {
        assert!(
            about.contains(group),
            "the top-level help's description does not name `{group}`:\n{about}"
        );
    }
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(path) = queue.pop() {
        let text = help(&project, &path).to_lowercase();
        seen += 1;
        for phrase in [
            "as they land",
            "coming",
            "not yet",
            "will be added",
            "planned",
        ] {
            assert!(
                !text.contains(phrase),
                "`tend {} --help` says \"{phrase}\":\n{text}",
                path.join(" ")
            );
        }
        for sub in subcommands(&help(&project, &path)) {
            let mut child = path.clone();
            child.push(sub);
            queue.push(child);
        }
    }
    assert!(seen > 20, "only {seen} help texts found");
}
