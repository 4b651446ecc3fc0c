//! The project's local cluster (the embedded default), as far as the core is concerned: the
//! database a command works on exists on it. Starting and stopping the server is
//! `tend_pg::cluster`'s.

use tend_pg::ConnInfo;
use tokio_postgres::error::SqlState;

use crate::settings::DatabaseSettings;

/// Why the local cluster's database could not be made sure of.
#[derive(Debug, thiserror::Error)]
pub enum EnsureDatabaseError {
    #[error(transparent)]
    Connect(#[from] tend_pg::ConnectError),
    /// Looking the database up or creating it failed on the server.
    #[error("cannot create the database {dbname} on the local cluster: {}", tend_pg::error_text(.source))]
    Create {
        dbname: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Creates `dbname` on the local cluster (reached as `admin`, its `postgres` database) when
/// it does not exist yet. Two processes doing it at once both succeed.
pub async fn ensure_database(
    settings: &DatabaseSettings,
    admin: &ConnInfo,
    dbname: &str,
) -> Result<(), EnsureDatabaseError> {
    let session = tend_pg::connect(admin, &settings.connect_options()).await?;
    let failed = |source| EnsureDatabaseError::Create {
        dbname: dbname.to_string(),
        source,
    };
    let exists = session
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
        .await
        .map_err(failed)?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE {}", tend_pg::quote_ident(dbname));
        match session.batch_execute(&sql).await {
            Ok(()) => {}
            // Another process created it between our check and now.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}
