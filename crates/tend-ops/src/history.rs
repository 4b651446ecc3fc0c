//! Check history: each run's findings and size samples, kept in the database's `tend`
//! schema (created by the binary through tend's own migrations), so growth and trends can
//! be reported.

use tokio_postgres::Client;

use crate::runner::Report;

/// How many of the largest tables are sampled each run.
const SAMPLED_TABLES: i64 = 50;

/// Stores a run: its findings and the sizes of the database and its largest tables.
/// Returns the run's id.
pub async fn record(
    client: &Client,
    report: &Report,
    tend_version: &str,
) -> Result<i64, tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let result = async {
        let worst = report.worst().as_str();
        let id: i64 = client
            .query_one(
                "INSERT INTO tend.check_runs (millis, worst, checks, findings, tend_version)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &(report.millis as i32),
                    &worst,
                    &(report.results.len() as i32),
                    &(report.findings.len() as i32),
                    &tend_version,
                ],
            )
            .await?
            .get(0);
        // All findings in one statement, column by column.
        let checks: Vec<&str> = report.findings.iter().map(|f| f.check).collect();
        let severities: Vec<&str> = report.findings.iter().map(|f| f.severity.as_str()).collect();
        let subjects: Vec<&str> = report.findings.iter().map(|f| f.subject.as_str()).collect();
        let values: Vec<Option<f64>> = report.findings.iter().map(|f| f.value).collect();
        let messages: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
        client
            .execute(
                "INSERT INTO tend.check_findings (run_id, check_id, severity, subject, value, message)
                 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::float8[], $6::text[])",
                &[&id, &checks, &severities, &subjects, &values, &messages],
            )
            .await?;
        client
            .execute(
                "INSERT INTO tend.size_samples (run_id, relation, bytes)
                 SELECT $1::bigint, '(database)', pg_database_size(current_database())
                 UNION ALL
                 SELECT $1::bigint, relation, bytes FROM (
                     SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS relation,
                            pg_total_relation_size(c.oid) AS bytes
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relkind IN ('r', 'm', 'p')
                        AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tend')
                        AND n.nspname NOT LIKE 'pg\\_%'
                      ORDER BY c.relpages DESC LIMIT $2) t",
                &[&id, &SAMPLED_TABLES],
            )
            .await?;
        Ok::<i64, tokio_postgres::Error>(id)
    }
    .await;
    match result {
        Ok(id) => {
            client.batch_execute("COMMIT").await?;
            Ok(id)
        }
        Err(err) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(err)
        }
    }
}

/// The number of runs recorded.
pub async fn runs(client: &Client) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT count(*) FROM tend.check_runs", &[])
        .await?
        .get(0))
}
