//! What tend needs to know about a server before it acts: its version, what the connected
//! role may do, and whether it is a standby.

use serde::Serialize;

/// Facts read from one session.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerFacts {
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    /// `server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub version: String,
    pub database: String,
    pub user: String,
    pub is_superuser: bool,
    /// Member of `pg_monitor`, which lets the checks see every session and statistic.
    pub has_pg_monitor: bool,
    pub can_create_db: bool,
    pub can_create_role: bool,
    /// A standby (or a server recovering from a backup) accepts reads only.
    pub in_recovery: bool,
}

impl ServerFacts {
    /// The major version, e.g. 15.
    pub fn major(&self) -> u32 {
        if self.version_num >= 100_000 {
            self.version_num / 10_000
        } else {
            self.version_num / 100
        }
    }

    pub async fn read(
        client: &tokio_postgres::Client,
    ) -> Result<ServerFacts, tokio_postgres::Error> {
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int4,
                        current_setting('server_version'),
                        current_database()::text,
                        current_user::text,
                        r.rolsuper,
                        r.rolsuper OR pg_has_role(current_user, 'pg_monitor', 'USAGE'),
                        r.rolsuper OR r.rolcreatedb,
                        r.rolsuper OR r.rolcreaterole,
                        pg_is_in_recovery()
                   FROM pg_roles r
                  WHERE r.rolname = current_user",
                &[],
            )
            .await?;
        Ok(ServerFacts {
            version_num: row.get::<_, i32>(0) as u32,
            version: row.get(1),
            database: row.get(2),
            user: row.get(3),
            is_superuser: row.get(4),
            has_pg_monitor: row.get(5),
            can_create_db: row.get(6),
            can_create_role: row.get(7),
            in_recovery: row.get(8),
        })
    }
}
