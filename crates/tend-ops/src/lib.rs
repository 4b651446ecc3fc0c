//! Operations: the fast health probe, the catalog of checks with its runner, and the
//! maintenance actions built on the same queries.
//!
//! Probes are light by construction: one session, `statement_timeout` at most 5 s,
//! `lock_timeout` at most 50 ms, read-only, nothing stronger than ACCESS SHARE (but for
//! ROW EXCLUSIVE on sequences before PostgreSQL 18, as nextval() takes, to read their last
//! values in one query). This crate never prints.

pub mod actions;
pub mod check;
pub mod checks;
pub mod health;
pub mod history;
pub mod runner;

pub use check::{Category, Check, Finding, Rule, Severity, Thresholds, Unit};
pub use runner::{Blind, CheckOverride, Report, RunOptions};
