//! Backups: `pg_dump` (custom format, its own compression off) streamed through
//! multithreaded zstd and age encryption into a store (a directory or an S3-compatible
//! bucket) that is its own catalog; list, verify and restore read the store alone.
//!
//! This crate never prints; only `store` talks to object storage.

pub mod archive;
pub mod crypto;
pub mod fault;
pub mod manifest;
pub mod ops;
mod pg_restore;
pub mod physical;
pub mod pipeline;
pub mod restore;
pub mod retention;
pub mod roles;
pub mod store;
pub mod wal;

pub use crypto::{Decryption, Encryption};
pub use manifest::Manifest;
pub use ops::{BackupError, BackupOptions, Progress};
pub use store::{Store, StoreConfig, StoreFailure};
