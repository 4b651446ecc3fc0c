//! PostgreSQL plumbing shared by every part of tend: connection strings and their redacted
//! display, connections with TLS and retries, server facts, the identity of servers and databases, quoting, advisory locks, finding
//! PostgreSQL programs, and local clusters.
//!
//! This crate never prints: it returns typed results and errors whose display is one
//! sentence saying what went wrong and what to do.

pub mod advisory;
pub mod cluster;
pub mod connect;
pub mod conninfo;
pub mod database;
pub mod facts;
pub mod identity;
pub mod pgerror;
pub mod quote;
pub mod replication;
pub mod tools;

pub use advisory::{AdvisoryLock, LockError, LockHolder};
pub use cluster::{ClusterOptions, ClusterStatus, LocalCluster};
pub use connect::{ConnectError, ConnectOptions, Session, connect};
pub use conninfo::{ConnInfo, ConnInfoError, SslMode, redact_text};
pub use database::{Database, PoolError, PoolOptions, PooledSession};
pub use facts::ServerFacts;
pub use identity::{DatabaseIdentity, Marker, ServerIdentity, same_database};
pub use pgerror::{Location, PgError, PgErrorClass, error_text, sqlstate};
pub use quote::{quote_ident, quote_literal};
pub use replication::{BackupData, Replication, ReplicationError, WalPosition};
pub use tools::{FoundTool, PgTool, PgVersion, ToolError, ToolSearch, VersionNeed};
