//! Data lifecycle: retention purges and GDPR export and erasure (issue 15). This crate
//! holds what both stand on: the reference graph of a schema ([`graph`]: in which order a
//! purge deletes from tables, children before parents; what a delete reaches through
//! `ON DELETE` actions; every table that references a subject's row, directly or through
//! others, cycles included), retention rules as SQL ([`rules`]: their rows, and the rows a
//! foreign key holds), the sizing of a purge's batches to a time budget ([`batch`]), and
//! the batched purge itself ([`purge`], the one part that talks to a database).

pub mod batch;
pub mod graph;
pub mod purge;
pub mod rules;

pub use batch::BatchSizer;
pub use graph::{DeleteReach, Link, LinkKind, OnDelete, Reached, ReferenceGraph};
pub use purge::{PurgeError, PurgeOptions, PurgeOutcome, PurgeTarget, purge};
pub use rules::{CascadePath, RetentionRule, RowSelector, RuleAction, RuleOrigin};
