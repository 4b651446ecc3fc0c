//! What a server and a database are, read from a live session, so that "is this the live
//! database?" is answered by the servers themselves and never by comparing connection
//! strings (`localhost`, `127.0.0.1`, a socket directory and a proxy all name one server).
//!
//! Two facts identify a database: its server and its oid there. The server's system
//! identifier (`pg_control_system()`, which PostgreSQL 15 lets every role call unless an
//! administrator revoked it) names a cluster, but a standby shares its primary's, and a
//! stored identity is only a claim. The proof that needs no privilege and compares two live
//! sessions is a [`Marker`]: a session-level advisory lock with a random key, taken on one session and
//! looked for in `pg_locks` from another. `pg_locks` shows every session's locks on its
//! server to every role, so the lock is visible exactly when both sessions are on one
//! server, and its row names the oid of the marked session's database.

use crate::connect::Session;

/// The server a session is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// `pg_control_system().system_identifier`, when the role may read it.
    pub system_identifier: Option<u64>,
    /// `server_version_num`.
    pub version_num: u32,
}

/// The database a session is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseIdentity {
    pub server: ServerIdentity,
    /// `pg_database.oid`: unique on its server, never reused while the database exists.
    pub oid: u32,
    pub name: String,
}

impl DatabaseIdentity {
    /// Reads the identity of the session's database.
    pub async fn read(client: &tokio_postgres::Client) -> Result<Self, tokio_postgres::Error> {
        let row = client
            .query_one(
                "SELECT d.oid, d.datname::text, current_setting('server_version_num')::int4,
                        has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                   FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .await?;
        let may_read: bool = row.get(3);
        let system_identifier = if may_read {
            client
                .query_one(
                    "SELECT system_identifier::text FROM pg_control_system()",
                    &[],
                )
                .await
                .ok()
                .and_then(|r| r.get::<_, String>(0).parse().ok())
        } else {
            None
        };
        Ok(DatabaseIdentity {
            server: ServerIdentity {
                system_identifier,
                version_num: row.get::<_, i32>(2) as u32,
            },
            oid: row.get(0),
            name: row.get(1),
        })
    }
}

/// A random advisory lock held on a session for as long as the marker lives, that any
/// session on the same server can find (see the module doc). Dropping the session releases
/// it; [`Marker::release`] does so early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    key: i64,
}

impl Marker {
    /// Takes a fresh random lock on `session` (which must stay open while the marker is
    /// looked for).
    pub async fn place(session: &Session) -> Result<Marker, tokio_postgres::Error> {
        let key = random_key();
        session
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await?;
        Ok(Marker { key })
    }

    /// The key, for a caller that looks for the marker on a session of its own.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Looks for this marker from `other`: `Some(oid)`, the oid of the marked session's
    /// database, when `other` is on the same server; `None` when it is not.
    pub async fn find_from(
        &self,
        other: &tokio_postgres::Client,
    ) -> Result<Option<u32>, tokio_postgres::Error> {
        find_marker(other, self.key).await
    }

    /// Releases the lock on the marked session.
    pub async fn release(self, session: &Session) -> Result<(), tokio_postgres::Error> {
        session
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
            .map(|_| ())
    }
}

/// The oid of the database where a session holds the advisory lock `key`, as seen from
/// `client`: `None` when no session on `client`'s server holds it.
pub async fn find_marker(
    client: &tokio_postgres::Client,
    key: i64,
) -> Result<Option<u32>, tokio_postgres::Error> {
    // A bigint advisory key shows as classid (high half), objid (low half), objsubid 1.
    let high = ((key as u64) >> 32) as u32;
    let low = (key as u64 & 0xffff_ffff) as u32;
    let row = client
        .query_opt(
            "SELECT database FROM pg_catalog.pg_locks
              WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 1
                AND granted
              LIMIT 1",
            &[&high, &low],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Whether two sessions are connected to one database, proven by the servers: a marker
/// placed on `a` is looked for from `b`, and must name `b`'s database.
pub async fn same_database(a: &Session, b: &Session) -> Result<bool, tokio_postgres::Error> {
    let marker = Marker::place(a).await?;
    let found = marker.find_from(&b.client).await;
    let released = marker.release(a).await;
    let found = found?;
    released?;
    let Some(oid) = found else {
        return Ok(false);
    };
    let own: u32 = b
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0);
    Ok(oid == own)
}

/// A key no other lock of tend (nor, in practice, of anyone) uses.
fn random_key() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    hasher.finish() as i64
}
