//! The one integration-test binary: each module spawns the real `tend` binary against real
//! PostgreSQL clusters, the way a user meets it, and reads its output and exit code.

mod backup;
mod cleanup;
mod cleanup_archive;
mod config;
mod demo;
mod dev;
mod doctor;
mod gdpr;
mod inputs;
mod migrate;
mod ops;
mod pitr;
mod redaction;
mod reference;
mod schema;
mod serve;
mod serve_pages;
mod shadow_safety;

use std::process::Output;

/// stdout and stderr of a run, as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let output = cmd.output().expect("tend runs");
    let (out, err) = text(&output);
    (output.status.code().unwrap_or(-1), out, err)
}
