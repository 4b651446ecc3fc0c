//! Data lifecycle: retention purges and GDPR export and erasure (issue 15). This crate
//! starts with what both stand on: the reference graph of a schema ([`graph`]: in which
//! order a purge deletes from tables, children before parents; what a delete reaches
//! through `ON DELETE` actions; every table that references a subject's row, directly or
//! through others, cycles included), and the sizing of a purge's batches to a time budget
//! ([`batch`]). Pure: it reads a schema model and measurements, never a database.

pub mod batch;
pub mod graph;
pub mod purge;

pub use batch::BatchSizer;
pub use graph::{DeleteReach, Link, LinkKind, OnDelete, Reached, ReferenceGraph};
pub use purge::{PurgeError, PurgeOutcome, PurgeTarget, purge};
