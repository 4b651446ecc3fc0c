//! Declarative schema: a model of a database's catalog ([`model`]), read by [`introspect`],
//! compared by [`diff`] into ordered, online-safe DDL whose steps carry their hazards, and
//! rendered as DDL by [`ddl`]. Either side of a diff is a [`source`]: a live database, a
//! migration history or desired-state SQL replayed into a [`shadow`] database, or nothing.
//!
//! This crate never prints: it returns models, plans and typed errors.

pub mod cast;
pub mod ddl;
pub mod diff;
pub mod drift;
pub mod error;
pub mod introspect;
pub mod model;
pub mod name_map;
pub mod pairs;
pub mod shadow;
pub mod source;

pub use diff::{Hazard, Plan, Step, diff};
pub use error::SchemaError;
pub use introspect::introspect;
pub use model::{Model, QualifiedName};
