//! Errors of this crate, each a sentence that says what went wrong.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SchemaError {
    #[error(transparent)]
    Connect(#[from] tend_pg::ConnectError),
    #[error("reading the schema from the catalog failed: {0}")]
    Catalog(#[source] tokio_postgres::Error),
    #[error(transparent)]
    Shadow(#[from] crate::shadow::ShadowError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    /// The runtime shut down while the catalog was being read.
    #[error("reading the schema was stopped before it finished, as the program is shutting down")]
    Stopped,
}
