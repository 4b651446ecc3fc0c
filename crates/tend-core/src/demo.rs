//! What `tend demo` does to its own databases on the local cluster, beyond the services every
//! command shares: rebuild the demo database, count its rows, make and undo an out-of-band
//! change, and take a backup round trip with a key of its own. The binary walks through the
//! steps and prints them; everything that touches a database or a store is here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use serde::Serialize;
use tend_backup::store::StoreError;
use tend_backup::{BackupError, Store, StoreConfig};
use tend_pg::{ConnInfo, ConnectError, ConnectOptions, PgTool, ToolError, ToolSearch, VersionNeed};
use tend_schema::diff::Plan;

/// Why a demo step failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The change the demo makes by hand, outside any migration, for `schema verify` to catch.
pub const OUT_OF_BAND_CHANGE: &str = "ALTER TABLE users ADD COLUMN nickname text; \
                                      ALTER TABLE agencies ALTER COLUMN timezone SET DEFAULT 'Europe/Paris'";

/// Drops and creates `name` on the server `admin` reaches. Only for the demo's own databases
/// on the project's local cluster, which every run rebuilds.
pub async fn recreate_database(
    admin: &ConnInfo,
    options: &ConnectOptions,
    name: &str,
) -> Result<(), DemoError> {
    let session = tend_pg::connect(admin, options).await?;
    let quoted = tend_pg::quote_ident(name);
    session
        .batch_execute(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        .await?;
    session
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await?;
    Ok(())
}

/// Rows in one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

/// Exact row counts of the tables in `public`, by name.
pub async fn row_counts(session: &tokio_postgres::Client) -> Result<Vec<TableRows>, DemoError> {
    let tables = session
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'
              ORDER BY c.relname",
            &[],
        )
        .await?;
    let mut counts = Vec::new();
    for row in tables {
        let qualified: String = row.get(0);
        let rows: i64 = session
            .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
            .await?
            .get(0);
        counts.push(TableRows {
            table: row.get(1),
            rows,
        });
    }
    Ok(counts)
}

/// The size of the connected database, as PostgreSQL prints it (`12 MB`).
pub async fn database_size(session: &tokio_postgres::Client) -> Result<String, DemoError> {
    Ok(session
        .query_one(
            "SELECT pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )
        .await?
        .get(0))
}

/// Makes [`OUT_OF_BAND_CHANGE`] in the demo database.
pub async fn change_out_of_band(session: &tokio_postgres::Client) -> Result<(), DemoError> {
    session.batch_execute(OUT_OF_BAND_CHANGE).await?;
    Ok(())
}

/// Runs a drift plan's steps, in order, so the database ends as its migrations say.
pub async fn reconcile(session: &tokio_postgres::Client, plan: &Plan) -> Result<(), DemoError> {
    for step in &plan.steps {
        session.batch_execute(&step.sql).await?;
    }
    Ok(())
}

/// What the demo's backup round trip needs: where its key and store live (`.tend/`), the
/// database to back up, and the server to restore on.
pub struct RoundTripRequest<'a> {
    /// The project's `.tend` directory: the key goes to `demo-backup-key.txt`, the backups
    /// to `demo-backups/`.
    pub state_dir: &'a Path,
    pub source: &'a ConnInfo,
    pub admin: &'a ConnInfo,
    /// The database the backup is restored into (rebuilt first).
    pub restored: &'a str,
    pub tools: &'a ToolSearch,
    pub connect: &'a ConnectOptions,
}

/// How the round trip went.
#[derive(Debug, Serialize)]
pub struct RoundTrip {
    pub id: String,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    #[serde(skip)]
    pub took: Duration,
    pub store: String,
    pub restored: String,
    pub restored_audit_rows: i64,
    pub manifest_audit_rows: i64,
}

/// A backup of the demo database encrypted to an age key the demo keeps (made on first use,
/// mode 0600), verified, then restored into a fresh database whose `audit_log` rows are
/// counted against the manifest's.
pub async fn backup_round_trip(request: &RoundTripRequest<'_>) -> Result<RoundTrip, DemoError> {
    let file_error = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::File { what, path, source }
    };
    std::fs::create_dir_all(request.state_dir)
        .map_err(file_error("creating", request.state_dir))?;
    let identity = demo_identity(&request.state_dir.join("demo-backup-key.txt"))?;
    let store = Store::open(&StoreConfig::Directory(
        request.state_dir.join("demo-backups"),
    ))?;
    let pg_restore = request.tools.find(PgTool::PgRestore, VersionNeed::Any)?;
    let options = tend_backup::BackupOptions {
        tools: request.tools.clone(),
        globals: false,
        encryption: tend_backup::Encryption::Recipients(vec![identity.to_public()]),
        level: 3,
        threads: 2,
        connect: request.connect.clone(),
        cancel: Default::default(),
    };
    let started = Instant::now();
    let manifest = tend_backup::ops::backup(request.source, &store, &options, &mut |_| {}).await?;
    let took = started.elapsed();
    let decryption = tend_backup::Decryption::Identities(vec![identity]);
    tend_backup::ops::verify(&store, &manifest.id, &decryption, pg_restore.path.clone()).await?;
    recreate_database(request.admin, request.connect, request.restored).await?;
    let target = request.admin.with_dbname(request.restored);
    tend_backup::ops::restore(
        &store,
        &manifest.id,
        &decryption,
        &target,
        &tend_backup::ops::SingleOptions {
            pg_restore: pg_restore.path,
            clean: false,
            ownership: Default::default(),
            connect: request.connect.clone(),
            created_roles: Default::default(),
            cancel: Default::default(),
        },
    )
    .await?;
    let restored = tend_pg::connect(&target, request.connect).await?;
    let restored_audit_rows: i64 = restored
        .query_one("SELECT count(*) FROM audit_log", &[])
        .await?
        .get(0);
    let manifest_audit_rows = manifest
        .tables
        .iter()
        .find(|t| t.table == "audit_log")
        .map(|t| t.rows)
        .unwrap_or(0);
    Ok(RoundTrip {
        id: manifest.id,
        raw_bytes: manifest.raw_bytes,
        stored_bytes: manifest.stored_bytes,
        took,
        store: store.description.clone(),
        restored: request.restored.to_string(),
        restored_audit_rows,
        manifest_audit_rows,
    })
}

/// The demo's age identity from `path`, or a new one written there (mode 0600).
fn demo_identity(path: &Path) -> Result<age::x25519::Identity, DemoError> {
    let kept = std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .and_then(|l| l.parse::<age::x25519::Identity>().ok())
    });
    if let Some(identity) = kept {
        return Ok(identity);
    }
    let identity = age::x25519::Identity::generate();
    let text = format!(
        "# tend demo backup key (age). public key: {}\n{}\n",
        identity.to_public(),
        identity.to_string().expose_secret()
    );
    let write_error = |source| DemoError::File {
        what: "writing",
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(write_error)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(write_error)?;
    Ok(identity)
}
