//! The optimize service behind `tend optimize`: analyze stale statistics, create the
//! indexes foreign keys lack, and (with `apply`) drop unused and duplicate indexes. In a
//! project with migrations, index changes are schema changes: they become the project's
//! next migration instead of running out of band, and an index the migrations create is
//! never proposed for a drop unless asked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tend_migrate::source::{self, Format, Migration, SourceError};
use tend_ops::actions::{self, OptimizeStep};
use tokio_postgres::Client;

/// Indexes under 1 MB cost little to keep: not worth a drop.
const MIN_DROP_BYTES: i64 = 1024 * 1024;

/// What the caller asked for.
#[derive(Debug, Clone, Default)]
pub struct OptimizeRequest {
    /// Also drop unused and duplicate indexes.
    pub apply: bool,
    /// Run index changes directly even in a project with migrations.
    pub out_of_band: bool,
    /// Also propose dropping indexes the migrations create.
    pub include_migration_indexes: bool,
}

/// The project's migrations, where index changes go when there are any.
#[derive(Debug, Clone, Copy)]
pub struct MigrationsDir<'a> {
    pub dir: &'a Path,
    pub format: Format,
    pub migrations: &'a [Migration],
}

/// What `optimize` will do, read before anything runs (so the caller can show it, ask,
/// or stop at a dry run).
#[derive(Debug, Clone)]
pub struct OptimizePlan {
    /// Index drops left out because the migrations create those indexes.
    pub kept_back: Vec<String>,
    /// Every step, when index changes run out of band.
    pub steps: Vec<OptimizeStep>,
    /// The split of the steps when index changes go through a migration.
    pub migration: Option<MigrationPlan>,
}

/// Index changes as the project's next migration.
#[derive(Debug, Clone)]
pub struct MigrationPlan {
    /// Statements that run now (statistics).
    pub others: Vec<OptimizeStep>,
    /// Index changes the migration holds.
    pub written: Vec<OptimizeStep>,
    /// Index drops that need `apply`.
    pub needs_apply: Vec<OptimizeStep>,
    /// The migration's text.
    pub sql: String,
    /// What to change in schema.prisma, for a Prisma project.
    pub prisma_schema: Vec<String>,
    pub dir: PathBuf,
    pub format: Format,
}

/// What `tend optimize --json` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OptimizeReport {
    /// Nothing to do.
    Nothing {
        statements: Vec<OptimizeStep>,
        kept_back: Vec<String>,
    },
    /// A dry run, out of band.
    DryRun {
        dry_run: bool,
        statements: Vec<OptimizeStep>,
    },
    /// A run, out of band.
    Ran {
        ran: Vec<OptimizeStep>,
        needs_apply: Vec<OptimizeStep>,
    },
    /// A dry run in a project with migrations.
    MigrationDryRun {
        dry_run: bool,
        statements: Vec<OptimizeStep>,
        migration: Vec<OptimizeStep>,
        needs_apply: Vec<OptimizeStep>,
        prisma_schema: Vec<String>,
        kept_back: Vec<String>,
    },
    /// A run in a project with migrations: statistics refreshed, the migration written.
    Migration {
        ran: Vec<OptimizeStep>,
        migration: Option<PathBuf>,
        written: Vec<OptimizeStep>,
        needs_apply: Vec<OptimizeStep>,
        prisma_schema: Vec<String>,
        kept_back: Vec<String>,
    },
}

/// Why `optimize` stopped.
#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads what `optimize` would do on `client`'s database for `request`.
pub async fn plan(
    client: &Client,
    request: &OptimizeRequest,
    project: Option<MigrationsDir<'_>>,
) -> Result<OptimizePlan, tokio_postgres::Error> {
    let migrations = project.map(|p| p.migrations).unwrap_or(&[]);
    let created = source::created_indexes(migrations);
    let mut steps = actions::optimize_plan(client, MIN_DROP_BYTES).await?;
    let mut kept_back = Vec::new();
    if !request.include_migration_indexes {
        steps.retain(|p| match &p.index {
            Some(index) if p.destructive && created.contains(&index.name) => {
                kept_back.push(index.name.clone());
                false
            }
            _ => true,
        });
    }
    let migration = match project {
        Some(project) if !project.migrations.is_empty() && !request.out_of_band => {
            let (changes, others): (Vec<OptimizeStep>, Vec<OptimizeStep>) =
                std::mem::take(&mut steps)
                    .into_iter()
                    .partition(|p| p.index.is_some());
            let (written, needs_apply): (Vec<OptimizeStep>, Vec<OptimizeStep>) = changes
                .into_iter()
                .partition(|p| !p.destructive || request.apply);
            let prisma_schema = if project.format == Format::Prisma {
                written.iter().filter_map(prisma_line).collect()
            } else {
                Vec::new()
            };
            Some(MigrationPlan {
                sql: migration_sql(&written, project.format),
                others,
                written,
                needs_apply,
                prisma_schema,
                dir: project.dir.to_path_buf(),
                format: project.format,
            })
        }
        _ => None,
    };
    Ok(OptimizePlan {
        kept_back,
        steps,
        migration,
    })
}

impl OptimizePlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        match &self.migration {
            None => self.steps.is_empty(),
            Some(m) => m.others.is_empty() && m.written.is_empty() && m.needs_apply.is_empty(),
        }
    }

    /// The index drops the run will perform or write (to confirm first).
    pub fn drops(&self, apply: bool) -> Vec<&OptimizeStep> {
        match &self.migration {
            None if apply => self.steps.iter().filter(|p| p.destructive).collect(),
            None => Vec::new(),
            Some(m) => m.written.iter().filter(|p| p.destructive).collect(),
        }
    }

    /// The report of a run that changes nothing: nothing to do, or a dry run.
    pub fn unrun(&self) -> OptimizeReport {
        match &self.migration {
            _ if self.is_empty() => OptimizeReport::Nothing {
                statements: Vec::new(),
                kept_back: self.kept_back.clone(),
            },
            None => OptimizeReport::DryRun {
                dry_run: true,
                statements: self.steps.clone(),
            },
            Some(m) => OptimizeReport::MigrationDryRun {
                dry_run: true,
                statements: m.others.clone(),
                migration: m.written.clone(),
                needs_apply: m.needs_apply.clone(),
                prisma_schema: m.prisma_schema.clone(),
                kept_back: self.kept_back.clone(),
            },
        }
    }
}

/// Runs the plan: out of band, every step (drops only with `apply`); through a migration,
/// the statistics steps, then the migration is written under `timestamp`. `starting`
/// hears of each statement before it runs.
pub async fn run(
    client: &Client,
    plan: &OptimizePlan,
    request: &OptimizeRequest,
    timestamp: &str,
    starting: &(dyn Fn(&OptimizeStep) + Send + Sync),
) -> Result<OptimizeReport, OptimizeError> {
    let Some(m) = &plan.migration else {
        let mut ran = Vec::new();
        let mut needs_apply = Vec::new();
        for p in &plan.steps {
            if p.destructive && !request.apply {
                needs_apply.push(p.clone());
                continue;
            }
            starting(p);
            execute(client, p).await?;
            ran.push(p.clone());
        }
        return Ok(OptimizeReport::Ran { ran, needs_apply });
    };
    for p in &m.others {
        starting(p);
        execute(client, p).await?;
    }
    let path = if m.written.is_empty() {
        None
    } else {
        let path = source::create(&m.dir, m.format, timestamp, "optimize indexes")?;
        std::fs::write(&path, &m.sql).map_err(|source| OptimizeError::Write {
            path: path.clone(),
            source,
        })?;
        Some(path)
    };
    Ok(OptimizeReport::Migration {
        ran: m.others.clone(),
        migration: path,
        written: m.written.clone(),
        needs_apply: m.needs_apply.clone(),
        prisma_schema: m.prisma_schema.clone(),
        kept_back: plan.kept_back.clone(),
    })
}

async fn execute(client: &Client, p: &OptimizeStep) -> Result<(), tokio_postgres::Error> {
    if p.concurrent {
        actions::run_with_lock_retries(client, &p.sql, Duration::from_secs(1), 6).await?;
    } else {
        client.batch_execute(&p.sql).await?;
    }
    Ok(())
}

/// The migration's text. Prisma runs a migration file as one script, where CONCURRENTLY
/// cannot run; tend's layout runs it statement by statement, so it keeps CONCURRENTLY. A
/// drop says IF EXISTS: the index may exist only in this database, not in a replay.
fn migration_sql(written: &[OptimizeStep], format: Format) -> String {
    let mut sql = String::from(
        "-- Written by `tend optimize`: index changes for this project's migrations.\n\n",
    );
    for p in written {
        let mut statement = p.sql.clone();
        if p.destructive {
            statement = statement.replacen(
                "DROP INDEX CONCURRENTLY ",
                "DROP INDEX CONCURRENTLY IF EXISTS ",
                1,
            );
        }
        if format == Format::Prisma {
            statement = statement.replacen(" CONCURRENTLY", "", 1);
        }
        sql.push_str(&format!("-- {}\n{statement};\n\n", p.reason));
    }
    sql
}

/// The line for schema.prisma (model names are the table's unless `@@map` renames them).
fn prisma_line(p: &OptimizeStep) -> Option<String> {
    let index = p.index.as_ref()?;
    let columns = index.columns.join(", ");
    Some(if index.create {
        format!("model {}: add @@index([{columns}])", index.table)
    } else {
        format!(
            "model {}: remove @@index([{columns}]) if it is there (index {})",
            index.table, index.name
        )
    })
}
