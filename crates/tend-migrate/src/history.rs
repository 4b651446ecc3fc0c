//! The history table: `_prisma_migrations` exactly as Prisma keeps it, or tend's own
//! `_tend_migrations` with the same columns. Each row is one attempt at one migration;
//! a migration rolled back and applied again has two rows.

use serde::Serialize;
use tend_pg::quote_ident;
use tokio_postgres::Client;

use crate::source::Format;

/// One attempt, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: String,
    pub name: String,
    pub checksum: String,
    /// Times as RFC 3339 text in UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub rolled_back_at: Option<String>,
    pub logs: Option<String>,
    /// Prisma: 1 once applied. tend also uses it, for migrations that run statement by
    /// statement, as the number of statements completed, so a re-run resumes after them.
    pub applied_steps_count: i32,
}

impl HistoryRow {
    pub fn is_applied(&self) -> bool {
        self.finished_at.is_some() && self.rolled_back_at.is_none()
    }

    /// Started, neither finished nor rolled back: failed, or interrupted.
    pub fn is_unfinished(&self) -> bool {
        self.finished_at.is_none() && self.rolled_back_at.is_none()
    }

    /// The error of a failed attempt: `logs` without tend's progress line. None for an
    /// attempt that was interrupted (killed, cancelled) rather than failed.
    pub fn error(&self) -> Option<String> {
        let logs = self.logs.as_deref()?;
        let error: Vec<&str> = logs
            .lines()
            .filter(|l| !l.starts_with(PROGRESS_MARK))
            .collect();
        let error = error.join("\n");
        (!error.trim().is_empty()).then_some(error)
    }

    /// The digest of the statements a statement-by-statement attempt completed (see
    /// [`progress_line`]), when it recorded one.
    pub fn applied_digest(&self) -> Option<&str> {
        self.logs
            .as_deref()?
            .lines()
            .find_map(|l| l.strip_prefix(PROGRESS_MARK))
            .and_then(|rest| rest.rsplit_once("sha256 "))
            .map(|(_, digest)| digest.trim())
    }
}

/// The start of the line in `logs` by which a statement-by-statement attempt records what it
/// completed. Prisma's table has no column for it; the checksum covers only the whole file,
/// so without it a resumed file could not be checked against the statements that ran.
const PROGRESS_MARK: &str = "tend: completed statements ";

/// `tend: completed statements 1..N, sha256 DIGEST`: the digest of those statements' text
/// (`apply::statements_digest`), so a re-run resumes only when they are still the same.
pub fn progress_line(steps: i32, digest: &str) -> String {
    format!("{PROGRESS_MARK}1..{steps}, sha256 {digest}")
}

/// The history table of one format, in the session's current schema (Prisma keeps it in the
/// schema named by the URL's `schema` parameter, which tend puts first on the search_path).
#[derive(Debug, Clone)]
pub struct History {
    pub format: Format,
    /// The schema holding the table, fixed once so that a migration's own
    /// `SET search_path` cannot send history writes elsewhere.
    schema: Option<String>,
}

impl History {
    pub fn new(format: Format) -> History {
        History {
            format,
            schema: None,
        }
    }

    /// A history kept in a given schema (tend's own `tend` schema, for its internal
    /// migrations), created when missing.
    pub fn in_schema(format: Format, schema: &str) -> History {
        History {
            format,
            schema: Some(schema.to_string()),
        }
    }

    /// Pins the table to the session's current schema, unless a schema was given; creates
    /// a given schema that does not exist.
    pub async fn pin_schema(&mut self, client: &Client) -> Result<(), tokio_postgres::Error> {
        if let Some(schema) = &self.schema {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(schema)
                ))
                .await?;
            return Ok(());
        }
        let row = client
            .query_one("SELECT current_schema()::text", &[])
            .await?;
        self.schema = row.get(0);
        Ok(())
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    pub fn table(&self) -> String {
        match &self.schema {
            Some(schema) => format!(
                "{}.{}",
                quote_ident(schema),
                quote_ident(self.format.history_table())
            ),
            None => quote_ident(self.format.history_table()),
        }
    }

    /// Prisma's DDL, column for column, so `prisma migrate` accepts the table tend made.
    pub fn create_sql(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
    \"id\"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    \"checksum\"              VARCHAR(64) NOT NULL,
    \"finished_at\"           TIMESTAMPTZ,
    \"migration_name\"        VARCHAR(255) NOT NULL,
    \"logs\"                  TEXT,
    \"rolled_back_at\"        TIMESTAMPTZ,
    \"started_at\"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    \"applied_steps_count\"   INTEGER NOT NULL DEFAULT 0
)",
            self.table()
        )
    }

    pub async fn exists(&self, client: &Client) -> Result<bool, tokio_postgres::Error> {
        let row = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.table()])
            .await?;
        Ok(row.get(0))
    }

    pub async fn ensure(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        if !self.exists(client).await? {
            client.batch_execute(&self.create_sql()).await?;
        }
        Ok(())
    }

    /// Every row, oldest first. An absent table is an empty history.
    pub async fn load(&self, client: &Client) -> Result<Vec<HistoryRow>, tokio_postgres::Error> {
        if !self.exists(client).await? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT id, migration_name, checksum, {}, {}, {}, logs, applied_steps_count
                       FROM {} ORDER BY started_at, migration_name",
                    iso("started_at"),
                    iso("finished_at"),
                    iso("rolled_back_at"),
                    self.table()
                ),
                &[],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| HistoryRow {
                id: r.get(0),
                name: r.get(1),
                checksum: r.get(2),
                started_at: r.get(3),
                finished_at: r.get(4),
                rolled_back_at: r.get(5),
                logs: r.get(6),
                applied_steps_count: r.get(7),
            })
            .collect())
    }

    /// Records the start of an attempt and returns its id.
    pub async fn start(
        &self,
        client: &Client,
        name: &str,
        checksum: &str,
    ) -> Result<String, tokio_postgres::Error> {
        let id = Self::new_id();
        client
            .execute(
                &format!(
                    "INSERT INTO {} (id, checksum, migration_name, started_at, applied_steps_count)
                     VALUES ($1, $2, $3, clock_timestamp(), 0)",
                    self.table()
                ),
                &[&id, &checksum, &name],
            )
            .await?;
        Ok(id)
    }

    /// A fresh attempt id (Prisma uses UUIDs).
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// The start of an attempt as text, to send in one message with the migration.
    pub fn start_sql(&self, id: &str, name: &str, checksum: &str) -> String {
        format!(
            "INSERT INTO {} (id, checksum, migration_name, started_at, applied_steps_count) VALUES ({}, {}, {}, clock_timestamp(), 0)",
            self.table(),
            tend_pg::quote_literal(id),
            tend_pg::quote_literal(checksum),
            tend_pg::quote_literal(name)
        )
    }

    /// The end of an attempt as text.
    pub fn finish_sql(&self, id: &str, steps: i32) -> String {
        format!(
            "UPDATE {} SET finished_at = clock_timestamp(), applied_steps_count = {steps}, logs = NULL WHERE id = {}",
            self.table(),
            tend_pg::quote_literal(id)
        )
    }

    /// The progress update as text, to send in one message with the statement it counts:
    /// the count, and the digest of the statements completed (in `logs`).
    pub fn set_steps_sql(&self, id: &str, steps: i32, digest: &str) -> String {
        format!(
            "UPDATE {} SET applied_steps_count = {steps}, logs = {} WHERE id = {}",
            self.table(),
            tend_pg::quote_literal(&progress_line(steps, digest)),
            tend_pg::quote_literal(id)
        )
    }

    pub async fn set_steps(
        &self,
        client: &Client,
        id: &str,
        steps: i32,
        digest: &str,
    ) -> Result<(), tokio_postgres::Error> {
        client
            .batch_execute(&self.set_steps_sql(id, steps, digest))
            .await
    }

    /// The statements an attempt has completed, as committed.
    pub async fn steps_of(&self, client: &Client, id: &str) -> Result<i32, tokio_postgres::Error> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT applied_steps_count FROM {} WHERE id = $1",
                    self.table()
                ),
                &[&id],
            )
            .await?;
        Ok(row.map(|r| r.get(0)).unwrap_or(0))
    }

    /// Takes up an interrupted or failed attempt again for the file as it is now: its
    /// checksum becomes the file's, and a recorded error is cleared (the progress stays).
    pub async fn take_up(
        &self,
        client: &Client,
        id: &str,
        checksum: &str,
        steps: i32,
        digest: &str,
    ) -> Result<(), tokio_postgres::Error> {
        let logs = (steps > 0).then(|| progress_line(steps, digest));
        client
            .execute(
                &format!(
                    "UPDATE {} SET checksum = $2, logs = $3, applied_steps_count = $4 WHERE id = $1",
                    self.table()
                ),
                &[&id, &checksum, &logs, &steps],
            )
            .await?;
        Ok(())
    }

    /// Records the attempt complete, with the checksum of the file that completed it (a
    /// resumed attempt may have started from an earlier version of the file).
    pub async fn finish(
        &self,
        client: &Client,
        id: &str,
        steps: i32,
        checksum: &str,
    ) -> Result<(), tokio_postgres::Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET finished_at = clock_timestamp(), applied_steps_count = $2, logs = NULL, checksum = $3
                      WHERE id = $1",
                    self.table()
                ),
                &[&id, &steps, &checksum],
            )
            .await?;
        Ok(())
    }

    /// Records a failed attempt (a new row when `id` is None). For an existing attempt only
    /// `logs` changes: its count stays what was committed.
    pub async fn fail(
        &self,
        client: &Client,
        id: Option<&str>,
        name: &str,
        checksum: &str,
        steps: i32,
        logs: &str,
    ) -> Result<(), tokio_postgres::Error> {
        match id {
            Some(id) => {
                client
                    .execute(
                        &format!("UPDATE {} SET logs = $2 WHERE id = $1", self.table()),
                        &[&id, &logs],
                    )
                    .await?;
            }
            None => {
                let id = Self::new_id();
                client
                    .execute(
                        &format!(
                            "INSERT INTO {} (id, checksum, migration_name, started_at, logs, applied_steps_count)
                             VALUES ($1, $2, $3, clock_timestamp(), $4, $5)",
                            self.table()
                        ),
                        &[&id, &checksum, &name, &logs, &steps],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Marks every unfinished attempt of `name` rolled back (Prisma's
    /// `resolve --rolled-back`); returns how many.
    pub async fn mark_rolled_back(
        &self,
        client: &Client,
        name: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        self.roll_back(client, name, "finished_at IS NULL").await
    }

    /// Marks the applied attempt of `name` rolled back (after its down script ran).
    pub async fn mark_applied_rolled_back(
        &self,
        client: &Client,
        name: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        self.roll_back(client, name, "finished_at IS NOT NULL")
            .await
    }

    async fn roll_back(
        &self,
        client: &Client,
        name: &str,
        which: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET rolled_back_at = clock_timestamp()
                      WHERE migration_name = $1 AND {which} AND rolled_back_at IS NULL",
                    self.table()
                ),
                &[&name],
            )
            .await
    }

    /// Records `name` as applied without running it (`resolve --applied`, `baseline`).
    pub async fn record_applied(
        &self,
        client: &Client,
        name: &str,
        checksum: &str,
    ) -> Result<(), tokio_postgres::Error> {
        let id = Self::new_id();
        client
            .execute(
                &format!(
                    "INSERT INTO {} (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
                     VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp(), 0)",
                    self.table()
                ),
                &[&id, &checksum, &name],
            )
            .await?;
        Ok(())
    }

    /// Accepts an edited file: the applied attempt of `name` takes the file's checksum.
    pub async fn accept_checksum(
        &self,
        client: &Client,
        name: &str,
        checksum: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET checksum = $2
                      WHERE migration_name = $1 AND finished_at IS NOT NULL AND rolled_back_at IS NULL",
                    self.table()
                ),
                &[&name, &checksum],
            )
            .await
    }
}

fn iso(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}
