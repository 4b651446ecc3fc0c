//! Migrations: where they live on disk (Prisma's layout or tend's), the history table in the
//! database (`_prisma_migrations` or tend's own), and the operations on them.
//!
//! This crate never prints: it reports progress through callbacks and returns typed results.

pub mod apply;
pub mod history;
pub mod source;
pub mod splitter;
pub mod status;

pub use apply::{DeployReport, Event, Locked, MigrateError, Mode, RunOptions};
pub use history::History;
pub use source::{Format, Migration};
pub use status::{MigrationStatus, State};
