//! Shadow databases and sources against a real server: replays, the template cache, cleanup
//! on every path, dedicated shadow databases, and the text forms of sources.

use std::path::Path;

use tend_migrate::{Format, Migration};
use tend_pg::{ConnInfo, ConnectOptions};
use tend_schema::shadow::{ShadowError, ShadowHost, Shadows, SqlFile};
use tend_schema::source::{self, SourceError};
use tend_testkit::{TestDb, TestServer};

/// A token that makes this run's inputs (and so its cache keys) its own.
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Shadows on the test server as its superuser. The cache limit is high because the tests
/// of this process share the server and must not prune each other's templates.
fn server_shadows() -> Shadows {
    Shadows::new(
        ShadowHost::Server(TestServer::get().admin.clone()),
        ConnectOptions::default(),
    )
    .with_cache_limit(1000)
}

/// Every row of a simple query, as text.
async fn rows(info: &ConnInfo, sql: &str) -> Vec<Vec<Option<String>>> {
    let session = tend_pg::connect(info, &ConnectOptions::default())
        .await
        .expect("connect");
    session
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The first column of every row.
async fn column(info: &ConnInfo, sql: &str) -> Vec<String> {
    rows(info, sql)
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

async fn admin(sql: &str) {
    let session = tend_pg::connect(&TestServer::get().admin, &ConnectOptions::default())
        .await
        .expect("connect as the test server's superuser");
    session
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn database_exists(name: &str) -> bool {
    let found = column(
        &TestServer::get().admin,
        &format!(
            "SELECT datname FROM pg_database WHERE datname = {}",
            tend_pg::quote_literal(name)
        ),
    )
    .await;
    !found.is_empty()
}

/// The databases a role owns.
async fn owned_by(role: &str) -> Vec<String> {
    column(
        &TestServer::get().admin,
        &format!(
            "SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = {} ORDER BY 1",
            tend_pg::quote_literal(role)
        ),
    )
    .await
}

/// A password role that may create databases, connecting to `postgres`.
async fn creator_role(name: &str) -> Option<ConnInfo> {
    let info = TestServer::get().password_user(name, "creator-secret", "postgres")?;
    admin(&format!("ALTER ROLE {name} CREATEDB")).await;
    Some(info)
}

fn write(dir: &Path, relative: &str, contents: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn load(dir: &Path, format: Format) -> Vec<Migration> {
    tend_migrate::source::load(dir, format).expect("the migrations load")
}

/// History ids in migration order: equal ids mean the rows were cloned, not replayed.
async fn history_ids(info: &ConnInfo, table: &str) -> Vec<String> {
    column(
        info,
        &format!("SELECT id FROM {table} WHERE finished_at IS NOT NULL ORDER BY migration_name"),
    )
    .await
}

#[tokio::test]
async fn tend_history_replays_then_reuses_the_longest_cached_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let run = token();
    write(
        dir.path(),
        "20240101_000000_users.sql",
        &format!("-- {run}\nCREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n"),
    );
    write(
        dir.path(),
        "20240102_000000_posts.sql",
        "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);\n",
    );
    let shadows = server_shadows();
    assert!(shadows.caches().await.unwrap());

    let first = shadows
        .replay_migrations(&load(dir.path(), Format::Tend), Format::Tend)
        .await
        .unwrap();
    assert_eq!((first.cached, first.replayed), (0, 2));
    assert_eq!(first.template, None);
    let name = first.info.dbname().unwrap().to_string();
    assert!(name.starts_with("tend_shadow_"), "{name}");
    assert_eq!(
        column(&first.info, "SELECT to_regclass('public.posts')::text").await,
        ["posts"]
    );
    let first_ids = history_ids(&first.info, "_tend_migrations").await;
    assert_eq!(first_ids.len(), 2);
    first.release().await.unwrap();
    assert!(!database_exists(&name).await);

    // Unchanged history: everything comes from the template saved by the first run.
    let second = shadows
        .replay_migrations(&load(dir.path(), Format::Tend), Format::Tend)
        .await
        .unwrap();
    assert_eq!((second.cached, second.replayed), (2, 0));
    assert_eq!(
        history_ids(&second.info, "_tend_migrations").await,
        first_ids
    );
    let template = second.template.clone().expect("cloned from a template");
    assert!(template.starts_with("tend_shadow_tpl_") && template.len() == 32);
    let tagged = rows(
        &TestServer::get().admin,
        &format!(
            "SELECT datallowconn::text, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{template}'"
        ),
    )
    .await;
    assert_eq!(tagged[0][0].as_deref(), Some("false"));
    assert!(
        tagged[0][1]
            .as_deref()
            .unwrap()
            .starts_with("tend shadow template")
    );
    assert!(
        shadows
            .cached_templates()
            .await
            .unwrap()
            .contains(&template)
    );
    second.release().await.unwrap();

    // One more migration: the two cached ones are cloned and only the new one runs.
    write(
        dir.path(),
        "20240103_000000_index.sql",
        "CREATE INDEX posts_user_id ON posts (user_id);\n",
    );
    let third = shadows
        .replay_migrations(&load(dir.path(), Format::Tend), Format::Tend)
        .await
        .unwrap();
    assert_eq!((third.cached, third.replayed), (2, 1));
    assert_eq!(third.template.as_deref(), Some(template.as_str()));
    let third_ids = history_ids(&third.info, "_tend_migrations").await;
    assert_eq!(third_ids.len(), 3);
    assert_eq!(third_ids[..2], first_ids[..]);
    assert_eq!(
        column(
            &third.info,
            "SELECT to_regclass('public.posts_user_id')::text"
        )
        .await,
        ["posts_user_id"]
    );
    third.release().await.unwrap();

    // And that full state was saved in turn.
    let fourth = shadows
        .replay_migrations(&load(dir.path(), Format::Tend), Format::Tend)
        .await
        .unwrap();
    assert_eq!((fourth.cached, fourth.replayed), (3, 0));
    assert_eq!(
        history_ids(&fourth.info, "_tend_migrations").await,
        third_ids
    );
    fourth.release().await.unwrap();
}

#[tokio::test]
async fn prisma_history_replays_with_prisma_history_table() {
    let dir = tempfile::tempdir().unwrap();
    let run = token();
    write(
        dir.path(),
        "20240101000000_init/migration.sql",
        &format!(
            "-- {run}\nCREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN');\nCREATE TABLE \"User\" (\"id\" SERIAL PRIMARY KEY, \"role\" \"Role\" NOT NULL);\n"
        ),
    );
    write(
        dir.path(),
        "20240102000000_email/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN \"email\" TEXT;\n",
    );
    write(
        dir.path(),
        "migration_lock.toml",
        "provider = \"postgresql\"\n",
    );
    let shadows = server_shadows();
    let migrations = load(dir.path(), Format::Prisma);
    let shadow = shadows
        .replay_migrations(&migrations, Format::Prisma)
        .await
        .unwrap();
    assert_eq!(shadow.replayed, 2);
    assert_eq!(
        column(
            &shadow.info,
            "SELECT migration_name FROM _prisma_migrations ORDER BY 1"
        )
        .await,
        ["20240101000000_init", "20240102000000_email"]
    );
    assert_eq!(
        column(
            &shadow.info,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'User' ORDER BY ordinal_position"
        )
        .await,
        ["id", "role", "email"]
    );
    shadow.release().await.unwrap();

    // The same history in the other layout's table is another cache entry.
    let again = shadows
        .replay_migrations(&migrations, Format::Prisma)
        .await
        .unwrap();
    assert_eq!(again.cached, 2);
    again.release().await.unwrap();
}

#[tokio::test]
async fn failing_migration_is_named_and_leaves_no_database() {
    let Some(info) = creator_role("tend_shadow_failing").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = token();
    write(
        dir.path(),
        "20240101_000000_ok.sql",
        &format!("-- {run}\nCREATE TABLE a (id int PRIMARY KEY);\n"),
    );
    write(
        dir.path(),
        "20240102_000000_broken.sql",
        "CREATE TABLE b (id int);\nCREATE TABLE c (a_id int REFERENCES no_such_table (id));\n",
    );
    let shadows = Shadows::new(ShadowHost::Server(info), ConnectOptions::default());
    let err = shadows
        .replay_migrations(&load(dir.path(), Format::Tend), Format::Tend)
        .await
        .unwrap_err();
    assert!(matches!(err, ShadowError::Migrate(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("20240102_000000_broken"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("no_such_table"), "{message}");
    assert!(!message.contains("creator-secret"), "{message}");
    assert_eq!(owned_by("tend_shadow_failing").await, Vec::<String>::new());
}

#[tokio::test]
async fn apply_sql_runs_files_in_order_and_caches_them() {
    let run = token();
    let files = vec![
        SqlFile {
            path: "schema/01_types.sql".into(),
            sql: format!("-- {run}\nCREATE TYPE mood AS ENUM ('ok', 'sad');\n"),
        },
        SqlFile {
            path: "schema/02_tables.sql".into(),
            sql: "CREATE TABLE people (id int PRIMARY KEY, mood mood)".into(),
        },
        SqlFile {
            // Statements that cannot run in a transaction run one by one.
            path: "schema/03_index.sql".into(),
            sql: "CREATE INDEX CONCURRENTLY people_mood ON people (mood);\n".into(),
        },
    ];
    let shadows = server_shadows();
    let shadow = shadows.apply_sql(&files).await.unwrap();
    assert_eq!((shadow.cached, shadow.replayed), (0, 3));
    assert_eq!(
        column(
            &shadow.info,
            "SELECT to_regclass('public.people_mood')::text"
        )
        .await,
        ["people_mood"]
    );
    shadow.release().await.unwrap();

    let again = shadows.apply_sql(&files).await.unwrap();
    assert_eq!((again.cached, again.replayed), (3, 0));
    again.release().await.unwrap();

    // An appended file: the cached replay of the first three is cloned.
    let mut appended = files.clone();
    appended.push(SqlFile {
        path: "schema/04_more.sql".into(),
        sql: "CREATE TABLE pets (id int PRIMARY KEY);\n".into(),
    });
    let prefix = shadows.apply_sql(&appended).await.unwrap();
    assert_eq!((prefix.cached, prefix.replayed), (3, 1));
    assert_eq!(
        column(&prefix.info, "SELECT to_regclass('public.pets')::text").await,
        ["pets"]
    );
    prefix.release().await.unwrap();

    // An edited last file: only full replays are saved, so nothing is cached for it.
    let mut changed = files.clone();
    changed[2].sql = "CREATE INDEX people_mood2 ON people (mood);\n".into();
    let edited = shadows.apply_sql(&changed).await.unwrap();
    assert_eq!((edited.cached, edited.replayed), (0, 3));
    assert_eq!(
        column(
            &edited.info,
            "SELECT to_regclass('public.people_mood')::text"
        )
        .await,
        [""]
    );
    edited.release().await.unwrap();
}

#[tokio::test]
async fn apply_sql_error_names_the_file_and_line_and_leaves_no_database() {
    let Some(info) = creator_role("tend_shadow_sql_errors").await else {
        return;
    };
    let shadows = Shadows::new(ShadowHost::Server(info), ConnectOptions::default());
    let ok = SqlFile {
        path: "schema/01_base.sql".into(),
        sql: format!("-- {}\nCREATE TABLE a (id int PRIMARY KEY);\n", token()),
    };

    // An error the server gives no position for: found by running statement by statement.
    let missing = SqlFile {
        path: "schema/02_refs.sql".into(),
        sql: "-- references\nCREATE TABLE b (id int);\n\nCREATE TABLE c (\n  id int,\n  b_id int REFERENCES missing_table (id)\n);\n".into(),
    };
    let err = shadows.apply_sql(&[ok.clone(), missing]).await.unwrap_err();
    match &err {
        ShadowError::Sql {
            path, line, code, ..
        } => {
            assert_eq!(path, Path::new("schema/02_refs.sql"));
            assert_eq!(*line, 6, "{err}");
            assert_eq!(code.as_deref(), Some("42P01"));
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with("schema/02_refs.sql failed at line 6"),
        "{message}"
    );
    assert!(message.contains("missing_table"), "{message}");

    // A syntax error, located by the server's position.
    let syntax = SqlFile {
        path: "schema/02_syntax.sql".into(),
        sql: "CREATE TABLE d (id int);\n\nCREATE TABLE e (id int,, x int);\n".into(),
    };
    let err = shadows.apply_sql(&[ok, syntax]).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("schema/02_syntax.sql failed at line 3: syntax error"),
        "{message}"
    );

    // The first file's replay may be cached; no temporary database is left.
    let left: Vec<String> = owned_by("tend_shadow_sql_errors")
        .await
        .into_iter()
        .filter(|name| !name.starts_with("tend_shadow_tpl_"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[tokio::test]
async fn release_and_drop_both_remove_the_temporary_database() {
    let shadows = server_shadows();
    let shadow = shadows.empty().await.unwrap();
    let name = shadow.info.dbname().unwrap().to_string();
    assert!(database_exists(&name).await);
    // A session still open in it does not stop the release.
    let session = tend_pg::connect(&shadow.info, &ConnectOptions::default())
        .await
        .unwrap();
    shadow.release().await.unwrap();
    assert!(!database_exists(&name).await);
    drop(session);

    let dropped = shadows.empty().await.unwrap();
    let name = dropped.info.dbname().unwrap().to_string();
    assert!(database_exists(&name).await);
    drop(dropped);
    assert!(!database_exists(&name).await);
}

/// Schemas other than the system's in a database.
async fn user_schemas(info: &ConnInfo) -> Vec<String> {
    column(
        info,
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1",
    )
    .await
}

#[tokio::test]
async fn dedicated_database_holding_objects_without_the_mark_is_refused_and_untouched() {
    let db = TestDb::create();
    let role = "tend_shadow_dedicated_full";
    let Some(info) = TestServer::get().password_user(role, "full-secret", &db.name) else {
        return;
    };
    admin(&format!("ALTER DATABASE {} OWNER TO {role}", db.name)).await;
    db.execute(&format!(
        "CREATE SCHEMA app AUTHORIZATION {role}; CREATE TABLE app.t (id int); INSERT INTO app.t SELECT generate_series(1, 1000)"
    ));
    let shadows = Shadows::new(
        ShadowHost::Dedicated(info.clone()),
        ConnectOptions::default(),
    );
    let err = shadows.empty().await.unwrap_err();
    assert!(matches!(err, ShadowError::NotEmpty { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&db.name), "{message}");
    assert!(message.contains("SHADOW_DATABASE_URL"), "{message}");
    assert!(!message.contains("full-secret"), "{message}");
    assert_eq!(
        column(&db.info, "SELECT count(*) FROM app.t").await,
        ["1000"]
    );
    admin(&format!("ALTER DATABASE {} OWNER TO CURRENT_USER", db.name)).await;
}

#[tokio::test]
async fn dedicated_database_without_createdb_is_marked_when_empty_then_reset_and_reused() {
    let db = TestDb::create();
    let role = "tend_shadow_dedicated";
    let Some(info) = TestServer::get().password_user(role, "dedicated-secret", &db.name) else {
        return;
    };
    admin(&format!(
        "ALTER DATABASE {} OWNER TO {role}; GRANT CREATE ON DATABASE {} TO {role}",
        db.name, db.name
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "20240101_000000_users.sql",
        &format!("-- {}\nCREATE TABLE users (id int PRIMARY KEY);\n", token()),
    );
    let migrations = load(dir.path(), Format::Tend);

    let shadows = Shadows::new(
        ShadowHost::Dedicated(info.clone()),
        ConnectOptions::default(),
    );
    assert!(!shadows.caches().await.unwrap());
    // Empty: tend marks it as its own and uses it.
    let first = shadows
        .replay_migrations(&migrations, Format::Tend)
        .await
        .unwrap();
    assert_eq!(first.info.dbname(), Some(db.name.as_str()));
    assert_eq!((first.cached, first.replayed), (0, 1));
    let mark = column(
        &db.info,
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()",
    )
    .await;
    assert!(mark[0].starts_with("tend shadow database"), "{mark:?}");
    assert_eq!(
        column(
            &first.info,
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1"
        )
        .await,
        ["_tend_migrations", "users"]
    );
    let first_ids = history_ids(&first.info, "_tend_migrations").await;
    first.release().await.unwrap();

    // Marked: what is left in it (the last replay, and anything else) is reset.
    db.execute(&format!(
        "CREATE SCHEMA junk AUTHORIZATION {role}; CREATE TABLE junk.t (id int); CREATE TABLE public.leftover (id int)"
    ));
    let second = shadows
        .replay_migrations(&migrations, Format::Tend)
        .await
        .unwrap();
    assert_eq!(second.replayed, 1);
    assert_eq!(user_schemas(&second.info).await, ["public"]);
    let second_ids = history_ids(&second.info, "_tend_migrations").await;
    assert_eq!(second_ids.len(), 1);
    assert_ne!(second_ids, first_ids);
    second.release().await.unwrap();

    let empty = shadows.empty().await.unwrap();
    assert_eq!(
        column(
            &empty.info,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        )
        .await,
        ["0"]
    );
    drop(empty);
    assert_eq!(shadows.clear_cache().await.unwrap(), 0);
    assert_eq!(owned_by(role).await, std::slice::from_ref(&db.name));
    admin(&format!("ALTER DATABASE {} OWNER TO CURRENT_USER", db.name)).await;
}

#[tokio::test]
async fn dedicated_database_that_is_the_protected_one_is_refused_whatever_its_spelling() {
    let db = TestDb::create();
    let role = "tend_shadow_dedicated_live";
    let Some(info) = TestServer::get().password_user(role, "live-secret", &db.name) else {
        return;
    };
    admin(&format!("ALTER DATABASE {} OWNER TO {role}", db.name)).await;
    let socket = column(
        &db.info,
        "SELECT current_setting('unix_socket_directories')",
    )
    .await;
    let socket = socket[0].split(',').next().unwrap().trim().to_string();
    let mut localhost = info.clone();
    localhost.set("host", "localhost");
    let mut via_socket = info.clone();
    via_socket.set("host", socket);
    // Even marked as a shadow database (the mark is no licence to reset the live one).
    admin(&format!(
        "COMMENT ON DATABASE {} IS 'tend shadow database, reset before each use; marked 1'",
        db.name
    ))
    .await;
    db.execute(&format!(
        "CREATE TABLE live_rows (id int); INSERT INTO live_rows SELECT generate_series(1, 5000); ALTER TABLE live_rows OWNER TO {role}"
    ));
    for shadow in [&info, &localhost, &via_socket] {
        for live in [&info, &localhost, &via_socket, &db.info] {
            let err = Shadows::new(
                ShadowHost::Dedicated(shadow.clone()),
                ConnectOptions::default(),
            )
            .protecting(live)
            .empty()
            .await
            .unwrap_err();
            assert!(matches!(err, ShadowError::SameAsLive { .. }), "{err:?}");
            assert!(!err.to_string().contains("live-secret"));
        }
    }
    assert_eq!(
        column(&db.info, "SELECT count(*) FROM live_rows").await,
        ["5000"]
    );
    admin(&format!("ALTER DATABASE {} OWNER TO CURRENT_USER", db.name)).await;
}

#[tokio::test]
async fn dedicated_database_with_createdb_makes_temporary_databases() {
    let Some(info) = creator_role("tend_shadow_dedicated_creator").await else {
        return;
    };
    let shadows = Shadows::new(ShadowHost::Dedicated(info), ConnectOptions::default());
    assert!(shadows.caches().await.unwrap());
    let shadow = shadows.empty().await.unwrap();
    let name = shadow.info.dbname().unwrap().to_string();
    assert!(
        name.starts_with("tend_shadow_") && name != "postgres",
        "{name}"
    );
    shadow.release().await.unwrap();
    assert_eq!(
        owned_by("tend_shadow_dedicated_creator").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn server_without_createdb_is_a_clear_error() {
    let Some(info) =
        TestServer::get().password_user("tend_shadow_no_createdb", "plain-secret", "postgres")
    else {
        return;
    };
    let shadows = Shadows::new(ShadowHost::Server(info), ConnectOptions::default());
    let err = shadows.empty().await.unwrap_err();
    assert!(
        matches!(err, ShadowError::CannotCreateDatabase { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("`tend_shadow_no_createdb`"), "{message}");
    assert!(message.contains("SHADOW_DATABASE_URL"), "{message}");
    assert!(message.contains("CREATEDB"), "{message}");
    assert!(!message.contains("plain-secret"), "{message}");
}

#[tokio::test]
async fn cache_keeps_the_most_recently_used_and_clear_cache_drops_the_rest() {
    let role = "tend_shadow_pruning";
    let Some(info) = creator_role(role).await else {
        return;
    };
    let shadows =
        Shadows::new(ShadowHost::Server(info), ConnectOptions::default()).with_cache_limit(2);
    let mut templates = Vec::new();
    for _ in 0..3 {
        let files = [SqlFile {
            path: "one.sql".into(),
            sql: format!("-- {}\nCREATE TABLE t (id int);\n", token()),
        }];
        shadows
            .apply_sql(&files)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        let again = shadows.apply_sql(&files).await.unwrap();
        templates.push(again.template.clone().expect("cached"));
        again.release().await.unwrap();
    }
    let kept = shadows.cached_templates().await.unwrap();
    assert_eq!(kept, [templates[2].clone(), templates[1].clone()]);
    assert!(!database_exists(&templates[0]).await);
    assert_eq!(shadows.clear_cache().await.unwrap(), 2);
    assert_eq!(
        shadows.cached_templates().await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(owned_by(role).await, Vec::<String>::new());
}

#[tokio::test]
async fn concurrent_replays_of_one_history_share_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "20240101_000000_t.sql",
        &format!("-- {}\nCREATE TABLE t (id int);\n", token()),
    );
    let migrations = load(dir.path(), Format::Tend);
    let (a, b) = (server_shadows(), server_shadows());
    let (one, two) = tokio::join!(
        a.replay_migrations(&migrations, Format::Tend),
        b.replay_migrations(&migrations, Format::Tend),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_ne!(one.info.dbname(), two.info.dbname());
    one.release().await.unwrap();
    two.release().await.unwrap();
    let three = a
        .replay_migrations(&migrations, Format::Tend)
        .await
        .unwrap();
    assert_eq!(three.cached, 1);
    three.release().await.unwrap();
}

#[test]
fn parse_accepts_each_form() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "tend/20240101_000000_a.sql", "SELECT 1;\n");
    write(root, "prisma/20240101000000_a/migration.sql", "SELECT 1;\n");
    std::fs::create_dir_all(root.join("nothing")).unwrap();
    write(root, "schema/b.sql", "SELECT 1;\n");
    write(root, "one.sql", "SELECT 1;\n");

    let empty = source::parse("empty", Format::Tend).unwrap();
    assert_eq!(empty.describe(), "an empty database");
    assert!(!empty.needs_shadow());

    let at = |p: &str| root.join(p).display().to_string();
    let tend = source::parse(&format!("migrations:{}", at("tend")), Format::Prisma).unwrap();
    assert!(tend.needs_shadow());
    assert!(
        tend.describe().ends_with("(tend layout)"),
        "{}",
        tend.describe()
    );
    let prisma = source::parse(&format!("migrations:{}", at("prisma")), Format::Tend).unwrap();
    assert!(prisma.describe().ends_with("(Prisma layout)"));
    let fallback = source::parse(&format!("migrations:{}", at("nothing")), Format::Prisma).unwrap();
    assert!(fallback.describe().ends_with("(Prisma layout)"));

    let file = source::parse(&format!("sql:{}", at("one.sql")), Format::Tend).unwrap();
    assert!(file.needs_shadow());
    assert!(file.describe().contains("one.sql"));
    assert!(source::parse(&format!("sql:{}", at("schema")), Format::Tend).is_ok());

    let url = source::parse("postgresql://app:hunter2@db.example:5432/app", Format::Tend).unwrap();
    assert!(!url.needs_shadow());
    assert!(url.describe().contains("db.example"), "{}", url.describe());
    assert!(!url.describe().contains("hunter2"));
    assert!(source::parse("postgres://localhost/app", Format::Tend).is_ok());
    let kv = source::parse("host=localhost dbname=app password=hunter2", Format::Tend).unwrap();
    assert!(!kv.describe().contains("hunter2"), "{}", kv.describe());
}

#[test]
fn parse_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("nosql")).unwrap();
    write(root, "nosql/readme.txt", "not SQL");

    let err = |text: &str| match source::parse(text, Format::Tend) {
        Ok(source) => panic!("{text} parsed as {}", source.describe()),
        Err(err) => err,
    };
    let unknown = err("mysql://root:hunter2@localhost/app");
    assert!(matches!(unknown, SourceError::Unknown { .. }));
    let message = unknown.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    for form in ["`empty`", "`migrations:DIR`", "`sql:PATH`", "postgresql://"] {
        assert!(message.contains(form), "{message}");
    }
    assert!(matches!(err("schema.prisma"), SourceError::Unknown { .. }));
    assert!(matches!(err("migrations:"), SourceError::NoPath { .. }));
    assert!(err("sql: ").to_string().contains("needs a path"));
    let missing = err(&format!("sql:{}", root.join("absent.sql").display()));
    assert!(matches!(missing, SourceError::Missing { .. }));
    assert!(missing.to_string().contains("does not exist"));
    assert!(matches!(
        err(&format!("migrations:{}", root.join("absent").display())),
        SourceError::Missing { .. }
    ));
    let empty_dir = err(&format!("sql:{}", root.join("nosql").display()));
    assert!(matches!(empty_dir, SourceError::EmptySqlDir(_)));
    assert!(empty_dir.to_string().contains("holds no .sql files"));
    assert!(matches!(
        err("postgresql://host:99999/db"),
        SourceError::ConnInfo(_)
    ));
}

#[tokio::test]
async fn sources_needing_a_shadow_say_so_without_one() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.sql", "CREATE TABLE a (id int);\n");
    let sql = source::parse(
        &format!("sql:{}", dir.path().join("a.sql").display()),
        Format::Tend,
    )
    .unwrap();
    let err = sql.load(None).await.unwrap_err();
    assert!(err.to_string().contains("SHADOW_DATABASE_URL"), "{err}");
}

#[tokio::test]
async fn migrations_sql_and_a_live_database_with_one_schema_give_one_model() {
    let ddl = format!(
        "-- {}\nCREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);\nCREATE INDEX users_email_lower ON users (lower(email));\n",
        token()
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "migrations/20240101_000000_init.sql", &ddl);
    write(dir.path(), "schema/schema.sql", &ddl);
    let live = TestDb::create();
    live.execute(&ddl);

    let shadows = server_shadows();
    let at = |p: &str| dir.path().join(p).display().to_string();
    let from_migrations = source::parse(&format!("migrations:{}", at("migrations")), Format::Tend)
        .unwrap()
        .load(Some(&shadows))
        .await
        .unwrap();
    let from_sql = source::parse(&format!("sql:{}", at("schema")), Format::Tend)
        .unwrap()
        .load(Some(&shadows))
        .await
        .unwrap();
    let from_live = source::parse(&live.url(), Format::Tend)
        .unwrap()
        .load(None)
        .await
        .unwrap();
    assert!(from_live.tables.len() == 1, "{:?}", from_live.tables.keys());
    assert_eq!(from_migrations, from_live);
    assert_eq!(from_sql, from_live);
    let empty = source::parse("empty", Format::Tend)
        .unwrap()
        .load(None)
        .await
        .unwrap();
    assert_eq!(empty, tend_schema::Model::default());
}
