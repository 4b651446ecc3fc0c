//! The schema services: where shadow databases go, the drift between a live database and
//! the migrations it has applied (`tend schema verify`, `tend migrate dev`, the demo), the
//! difference between two sources (`tend schema diff`), and one source as a model
//! (`tend schema dump`). Each returns a typed report; `--json` prints it as it is.
//!
//! Starting the project's local cluster is the caller's (it announces it): the placement
//! takes the local server's admin connection when the caller could start one.

use serde::Serialize;
use tend_migrate::apply::{self, RunOptions};
use tend_migrate::{Format, History, MigrateError, Migration, State};
use tend_pg::{ConnInfo, ConnectError, ConnectOptions, ServerFacts};
use tend_schema::diff::{Change, DiffOptions, ObjectId, Plan, Step};
use tend_schema::drift::ObjectDrift;
use tend_schema::shadow::{ShadowHost, Shadows};
use tend_schema::source::{DatabaseSource, Source, introspect_and_release};
use tend_schema::{Model, SchemaError};

use crate::settings::DatabaseSettings;

/// Where shadow databases go, and why there.
#[derive(Debug, Clone)]
pub enum ShadowPlacement {
    /// SHADOW_DATABASE_URL.
    Dedicated(ConnInfo),
    /// The project's local cluster (its admin database), running the live server's major
    /// version or with no live server to match.
    LocalCluster(ConnInfo),
    /// The live server itself: the local cluster could not start, or it runs another major
    /// version (which renders definitions differently); then both majors are given.
    LiveServer {
        info: ConnInfo,
        other_major: Option<MajorMismatch>,
    },
}

/// The local cluster's major version and the live server's, when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MajorMismatch {
    pub local: u32,
    pub live: u32,
}

/// Why the placement could not read a server's version.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("reading the server's version failed: {}", tend_pg::error_text(.0))]
    Facts(#[source] tokio_postgres::Error),
}

impl ShadowPlacement {
    /// The shadow server, protecting the live database (a shadow is never made on it, nor
    /// is it ever reset) when there is one.
    pub fn shadows(&self, connect: ConnectOptions, live: Option<&ConnInfo>) -> Shadows {
        let host = match self {
            ShadowPlacement::Dedicated(url) => ShadowHost::Dedicated(url.clone()),
            ShadowPlacement::LocalCluster(admin) => ShadowHost::Server(admin.clone()),
            ShadowPlacement::LiveServer { info, .. } => ShadowHost::Server(info.clone()),
        };
        let shadows = Shadows::new(host, connect);
        match live {
            Some(info) => shadows.protecting(info),
            None => shadows,
        }
    }
}

/// The configured shadow database (SHADOW_DATABASE_URL), which needs no local cluster.
pub fn dedicated_shadows(database: &DatabaseSettings) -> Option<ShadowPlacement> {
    database
        .shadow_url
        .as_ref()
        .map(|url| ShadowPlacement::Dedicated(url.value.clone()))
}

/// Where shadow databases go without a dedicated one: the local cluster (`local`, when the
/// caller could start it) when it runs the live server's major version, else the live server
/// itself. `None` when there is neither.
pub async fn place_shadows(
    database: &DatabaseSettings,
    live: Option<&ConnInfo>,
    local: Option<&ConnInfo>,
) -> Result<Option<ShadowPlacement>, PlacementError> {
    if let Some(placement) = dedicated_shadows(database) {
        return Ok(Some(placement));
    }
    let connect = database.connect_options();
    let live_major = match live {
        Some(info) => Some(server_major(info, &connect).await?),
        None => None,
    };
    Ok(match (local, live) {
        (Some(admin), _) => {
            let local_major = server_major(admin, &connect).await?;
            match (live_major, live) {
                (Some(major), Some(info)) if major != local_major => {
                    Some(ShadowPlacement::LiveServer {
                        info: info.clone(),
                        other_major: Some(MajorMismatch {
                            local: local_major,
                            live: major,
                        }),
                    })
                }
                _ => Some(ShadowPlacement::LocalCluster(admin.clone())),
            }
        }
        (None, Some(info)) => Some(ShadowPlacement::LiveServer {
            info: info.clone(),
            other_major: None,
        }),
        (None, None) => None,
    })
}

/// The major version of the server at `info` (`server_version_num / 10000`).
pub async fn server_major(
    info: &ConnInfo,
    connect: &ConnectOptions,
) -> Result<u32, PlacementError> {
    let session = tend_pg::connect(info, connect).await?;
    let facts = ServerFacts::read(&session)
        .await
        .map_err(PlacementError::Facts)?;
    Ok(facts.version_num / 10000)
}

/// Why there is no drift to report.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// The history has failed, modified or missing migrations: nothing to replay.
    #[error(
        "the migration history does not match the files, so there is no schema to compare with: {}",
        .problems.join(", ")
    )]
    HistoryMismatch { problems: Vec<String> },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

/// The drift between a live database and the migrations it has applied.
#[derive(Debug, Clone)]
pub struct Drift {
    /// Migrations applied in the database (and replayed in the shadow).
    pub applied: usize,
    /// Migrations on disk not applied yet (not part of the comparison).
    pub pending: Vec<String>,
    /// The steps that would bring the database to its migrations' schema.
    pub plan: Plan,
}

/// What the drift compares: the database, its migrations and how to reach it.
#[derive(Debug, Clone, Copy)]
pub struct DriftRequest<'a> {
    pub info: &'a ConnInfo,
    pub format: Format,
    pub migrations: &'a [Migration],
    /// How the history is read (lock and statement timeouts, connection options).
    pub run_options: &'a RunOptions,
}

/// Compares the database with the migrations its history says are applied: those are
/// replayed in a shadow database while the live catalog is read.
pub async fn drift(request: DriftRequest<'_>, shadows: &Shadows) -> Result<Drift, DriftError> {
    let DriftRequest {
        info,
        format,
        migrations,
        run_options,
    } = request;
    let statuses = apply::status(info, run_options, History::new(format), migrations).await?;
    let problems: Vec<String> = statuses
        .iter()
        .filter(|s| matches!(s.state, State::Failed | State::Modified | State::Missing))
        .map(|s| format!("{} ({})", s.name, apply::state_word(&s.state)))
        .collect();
    if !problems.is_empty() {
        return Err(DriftError::HistoryMismatch { problems });
    }
    let applied: Vec<&str> = statuses
        .iter()
        .filter(|s| s.state == State::Applied)
        .map(|s| s.name.as_str())
        .collect();
    let pending: Vec<String> = statuses
        .iter()
        .filter(|s| matches!(s.state, State::Pending | State::RolledBack))
        .map(|s| s.name.clone())
        .collect();
    let replay: Vec<Migration> = migrations
        .iter()
        .filter(|m| applied.contains(&m.name.as_str()))
        .cloned()
        .collect();
    let live_source = DatabaseSource {
        info: info.clone(),
        connect: run_options.connect.clone(),
    };
    // The live catalog is read while the shadow replays the history.
    let expected = async {
        let shadow = shadows.replay_migrations(&replay, format).await?;
        introspect_and_release(shadow).await
    };
    let (expected, live) = tokio::join!(expected, live_source.load(None));
    let (expected, live) = (expected?, live?);
    let plan = tend_schema::diff(&live, &expected, &DiffOptions::default());
    Ok(Drift {
        applied: replay.len(),
        pending,
        plan,
    })
}

/// `tend schema verify`: the drift of the database from its applied migrations, as
/// `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The database, its password redacted.
    pub database: String,
    pub drift: bool,
    pub applied: usize,
    pub pending: Vec<String>,
    pub objects: Vec<DriftedObject>,
    pub steps: Vec<Step>,
    /// The reconciling DDL (database -> migrations), runnable with psql.
    pub sql: String,
}

/// One object of the database that differs from its migrations.
#[derive(Debug, Clone, Serialize)]
pub struct DriftedObject {
    pub object: ObjectId,
    pub change: Change,
    /// What the change means for the database, in words ([`drift_word`]).
    pub drift: &'static str,
    pub differences: Vec<DriftedAspect>,
}

/// One aspect of a drifted object: its value in the database and in the migrations.
#[derive(Debug, Clone, Serialize)]
pub struct DriftedAspect {
    pub aspect: String,
    pub database: Option<String>,
    pub migrations: Option<String>,
}

impl VerifyReport {
    /// The report of a drift of the database at `info`.
    pub fn new(info: &ConnInfo, drift: &Drift) -> VerifyReport {
        let objects = &drift.plan.objects;
        VerifyReport {
            database: info.redacted().to_string(),
            drift: !drift.plan.is_empty() || !objects.is_empty(),
            applied: drift.applied,
            pending: drift.pending.clone(),
            objects: objects
                .iter()
                .map(|o| DriftedObject {
                    object: o.object.clone(),
                    change: o.change,
                    drift: drift_word(o.change),
                    differences: o
                        .differences
                        .iter()
                        .map(|d| DriftedAspect {
                            aspect: d.aspect.clone(),
                            database: d.from.clone(),
                            migrations: d.to.clone(),
                        })
                        .collect(),
                })
                .collect(),
            steps: drift.plan.steps.clone(),
            sql: drift.plan.to_sql(true),
        }
    }
}

/// `tend schema verify`: the drift of the database at `request.info` from its migrations.
pub async fn verify(
    request: DriftRequest<'_>,
    shadows: &Shadows,
) -> Result<(VerifyReport, Drift), DriftError> {
    let drift = drift(request, shadows).await?;
    Ok((VerifyReport::new(request.info, &drift), drift))
}

/// What a step of the reconciling plan (database -> migrations) says about the database.
pub fn drift_word(change: Change) -> &'static str {
    match change {
        Change::Create => "missing from the database",
        Change::Drop => "in the database, not in the migrations",
        Change::Alter => "differs from the migrations",
    }
}

/// `tend schema diff`: the ordered steps from one source to another, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The sources, for people (never a password).
    pub from: String,
    pub to: String,
    pub equal: bool,
    pub objects: Vec<ObjectDrift>,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    /// The plan itself, for rendering it as SQL.
    #[serde(skip)]
    pub plan: Plan,
}

/// Loads both sources and diffs them. The two catalogs are read at once (each read waits on
/// its server); two shadow replays stay one after the other, as a dedicated shadow database
/// serves one at a time. `shadows` must be given when a source needs them.
pub async fn diff(
    from: &dyn Source,
    to: &dyn Source,
    shadows: Option<&Shadows>,
    options: &DiffOptions,
) -> Result<DiffReport, SchemaError> {
    let (before, after) = if from.needs_shadow() && to.needs_shadow() {
        (from.load(shadows).await?, to.load(shadows).await?)
    } else {
        let (before, after) = tokio::join!(from.load(shadows), to.load(shadows));
        (before?, after?)
    };
    let plan = tend_schema::diff(&before, &after, options);
    // Freeing two models of 20,000 tables takes about a tenth of a second: done on a
    // blocking thread, off the way of the answer.
    tokio::task::spawn_blocking(move || drop((before, after)));
    Ok(DiffReport {
        from: from.describe(),
        to: to.describe(),
        equal: plan.is_empty(),
        objects: plan.objects.clone(),
        steps: plan.steps.clone(),
        warnings: plan.warnings.clone(),
        plan,
    })
}

/// `tend schema dump`: one source as a model (what `--json` prints: the model itself) and
/// as the DDL that recreates it from nothing.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct DumpReport {
    pub model: Model,
    /// The source, for people.
    #[serde(skip)]
    pub source: String,
    /// The steps from an empty database to the model, in order, without CONCURRENTLY.
    #[serde(skip)]
    pub steps: Vec<Step>,
}

/// Loads `source` (in a shadow database when it needs one) and plans its creation.
pub async fn dump(
    source: &dyn Source,
    shadows: Option<&Shadows>,
) -> Result<DumpReport, SchemaError> {
    let model = source.load(shadows).await?;
    let plan = tend_schema::diff(
        &Model::default(),
        &model,
        &DiffOptions {
            concurrently: false,
            ..DiffOptions::default()
        },
    );
    Ok(DumpReport {
        model,
        source: source.describe(),
        steps: plan.steps,
    })
}

/// `tend schema clear-cache`: how many cached replays (template databases) were dropped.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClearCacheReport {
    pub dropped: usize,
}

/// Drops the cached replays from the shadow server.
pub async fn clear_cache(
    shadows: &Shadows,
) -> Result<ClearCacheReport, tend_schema::shadow::ShadowError> {
    Ok(ClearCacheReport {
        dropped: shadows.clear_cache().await?,
    })
}
