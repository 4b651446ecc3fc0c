//! tend's core, shared by the command line and the daemon: settings resolved once into
//! typed sections, tend's own state in the target database, and the services every command
//! runs (backup, restore, migrate, schema, checks, doctor, health, optimize ...), each async,
//! taking a settings section and a database handle, and returning a typed report.
//!
//! The core never reads the process environment and never prints: the caller hands it an
//! environment getter and renders what it returns.

pub mod backup;
pub mod checks;
pub mod cleanup;
pub mod demo;
pub mod doctor;
pub mod gdpr;
pub mod health;
pub mod local;
pub mod migrate;
pub mod optimize;
pub mod pitr;
pub mod restore;
pub mod schedule;
pub mod schema;
pub mod settings;
pub mod state;
mod toml_fields;
