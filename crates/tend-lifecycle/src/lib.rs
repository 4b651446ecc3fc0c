//! Data lifecycle: retention purges and GDPR export and erasure (issue 15). This crate
//! holds what both stand on: the reference graph of a schema ([`graph`]: in which order a
//! purge deletes from tables, children before parents; what a delete reaches through
//! `ON DELETE` actions; every table that references a subject's row, directly or through
//! others, cycles included), retention rules as SQL ([`rules`]: their rows, and the rows a
//! foreign key holds), the sizing of a purge's batches to a time budget ([`batch`]), and
//! the batched purge itself ([`purge`]) and retention by whole partitions of a table
//! partitioned by time ([`partitions`]) (the two parts that talk to a database), and the
//! subject graph of GDPR requests ([`subject`]: the rows that belong to one person, and
//! the rows that only mention them).

pub mod batch;
pub mod graph;
pub mod partitions;
pub mod purge;
pub mod rules;
pub mod subject;

pub use batch::BatchSizer;
pub use graph::{DeleteReach, Link, LinkKind, OnDelete, Reached, ReferenceGraph};
pub use partitions::{
    DropOptions, DropOutcome, ExpiredPartition, KeptPartition, PartitionError, PartitionRetention,
    drop_partitions,
};
pub use purge::{Cursor, MoveTo, PurgeError, PurgeOptions, PurgeOutcome, PurgeTarget, purge};
pub use rules::{CascadePath, RetentionRule, RowSelector, RuleAction, RuleOrigin};
