//! Backups and restores through the real binary: a directory store and a real S3-compatible
//! server, round trips compared table by table, wrong keys, damaged bytes, the stock age CLI.

use std::process::Command;

use tend_testkit::{TestDb, TestProject};

use crate::migrate::schema_of;
use crate::run;

/// Uncommon column types and objects (tests/cli/fixtures/uncommon.sql).
const UNCOMMON: &str = include_str!("fixtures/uncommon.sql");

/// The uncommon fixture for the test server: a server built without XML support (PyPI's
/// PostgreSQL 18) gets its `xml` column as `text`.
pub fn uncommon() -> String {
    if tend_testkit::TestServer::get().has_xml() {
        return UNCOMMON.to_string();
    }
    UNCOMMON.replace("doc xml,", "doc text,").replace(
        "xmlparse(content '<a n=\"' || g || '\">x &amp; y</a>')",
        "'<a n=\"' || g || '\">x &amp; y</a>'",
    )
}

const PASSPHRASE: &str = "correct horse battery staple 42";

/// A database with the column types teams use, sequences, a view, a function, a trigger and
/// an extension.
fn rich_database() -> TestDb {
    let db = TestDb::create();
    db.execute(
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;
         CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE TABLE things (
             id bigserial PRIMARY KEY, amount numeric(12,2), name text, blob bytea, doc jsonb, raw json,
             tags text[], feeling mood, uid uuid DEFAULT gen_random_uuid(), span int4range,
             at timestamptz DEFAULT now(), day date);
         INSERT INTO things (amount, name, blob, doc, raw, tags, feeling, span, day)
              SELECT g * 1.5, 'secret-marker-' || g, decode(md5(g::text), 'hex'),
                     jsonb_build_object('n', g), json_build_object('n', g), ARRAY['a', g::text],
                     CASE WHEN g % 2 = 0 THEN 'happy'::mood ELSE 'sad' END,
                     int4range(g, g + 10), date '2024-01-01' + g
                FROM generate_series(1, 5000) g;
         CREATE TABLE events (id int PRIMARY KEY, thing_id bigint REFERENCES things (id));
         INSERT INTO events SELECT g, g FROM generate_series(1, 1000) g;
         CREATE VIEW happy_things AS SELECT id, name FROM things WHERE feeling = 'happy';
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.at := now(); RETURN NEW; END $$;
         CREATE TRIGGER things_touch BEFORE UPDATE ON things FOR EACH ROW EXECUTE FUNCTION touch();
         SELECT setval('things_id_seq', 7777);",
    );
    db
}

/// `tend` in `project`, working on `db`, with the backup passphrase.
fn backing_up<'a>(
    project: &'a TestProject,
    db: &'a TestDb,
) -> impl Fn(&[&str]) -> (i32, String, String) + 'a {
    backing_up_with(project, db, Vec::new())
}

/// [`backing_up`], with more environment (a store's settings, say).
fn backing_up_with<'a>(
    project: &'a TestProject,
    db: &'a TestDb,
    env: Vec<(String, String)>,
) -> impl Fn(&[&str]) -> (i32, String, String) + 'a {
    move |args| {
        run(project
            .tend()
            .env("DATABASE_URL", db.url())
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .envs(env.clone())
            .args(args))
    }
}

/// A real S3-compatible server, or None (the test then skips) when s3s-fs is not installed.
pub(crate) fn s3_server() -> Option<tend_testkit::s3::S3Server> {
    if tend_testkit::s3::s3s_fs_binary().is_none() {
        eprintln!("skipped: s3s-fs is not installed (scripts/setup.sh installs it)");
        return None;
    }
    Some(tend_testkit::s3::S3Server::start())
}

fn schema_and_hashes(db: &TestDb) -> (String, Vec<Option<String>>) {
    let schema = schema_of(db);
    let hashes = db.query_column(
        "SELECT 'things ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM things t
         UNION ALL SELECT 'events ' || md5(string_agg(e::text, ',' ORDER BY id)) FROM events e
         UNION ALL SELECT 'seq ' || last_value FROM things_id_seq",
    );
    (schema, hashes)
}

#[test]
fn round_trip_through_a_directory_with_verify_and_refusals() {
    let source = rich_database();
    let project = TestProject::new();
    let tend = |args: &[&str], url: &str| {
        run(project
            .tend()
            .env("DATABASE_URL", url)
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .args(args))
    };
    let (code, out, err) = tend(&["backup", "run", "--globals", "--json"], &source.url());
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = manifest["id"].as_str().unwrap().to_string();
    assert_eq!(
        manifest["objects"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
    let things = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "things")
        .unwrap();
    assert_eq!(things["rows"], 5000);
    assert!(!out.contains(PASSPHRASE));

    // The store is the catalog.
    let (code, out, _) = tend(&["backup", "list"], "postgresql://nobody@127.0.0.1:1/none");
    assert_eq!(code, 0, "list needs no database: {out}");
    assert!(out.contains(&id) && out.contains("not verified"), "{out}");
    let (code, out, err) = tend(&["backup", "verify", "--latest"], &source.url());
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = tend(&["backup", "list"], &source.url());
    assert!(out.contains("verified"), "{out}");
    // The restore drill: into a scratch database on the local cluster, rows compared.
    let (code, out, err) = tend(&["backup", "verify", &id, "--restore"], &source.url());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hold the rows the manifest lists"), "{out}");

    // No plaintext of the data is stored.
    let dir = project.path().join(".tend/backups").join(&id);
    let data = std::fs::read(dir.join("data.dump.zst.age")).unwrap();
    assert!(data.starts_with(b"age-encryption.org/v1"));
    assert!(!data.windows(14).any(|w| w == b"secret-marker-"));

    // Restore into an empty database: identical schema and contents.
    let target = TestDb::create();
    let (code, out, err) = tend(&["restore", &id, "--to", &target.url()], &source.url());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_and_hashes(&target), schema_and_hashes(&source));
    // A database holding tables is refused, then replaced only with --clean and a yes.
    let (code, _, err) = tend(&["restore", "--to", &target.url()], &source.url());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already holds"), "{err}");
    assert_eq!(
        tend(
            &["restore", "--clean", "--to", &target.url()],
            &source.url()
        )
        .0,
        6
    );
    let (code, out, err) = tend(
        &["restore", "--clean", "--yes", "--to", &target.url()],
        &source.url(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_and_hashes(&target), schema_and_hashes(&source));

    // A wrong passphrase is caught, and is a key error, not damage.
    let (code, _, err) = run(project
        .tend()
        .env("DATABASE_URL", source.url())
        .env("BACKUP_ENCRYPTION_KEY", "not the passphrase at all")
        .args(["backup", "verify", &id]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("does not open backup") && !err.contains("damaged"),
        "{err}"
    );
    // No key at all is a configuration error.
    let (code, _, err) = run(project
        .tend()
        .env("DATABASE_URL", source.url())
        .args(["backup", "run"]));
    assert_eq!(code, 3, "{err}");
}

#[test]
fn damage_is_caught_by_verify_and_restore_leaves_the_target_alone() {
    let source = rich_database();
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = manifest["id"].as_str().unwrap().to_string();
    let data = project
        .path()
        .join(".tend/backups")
        .join(&id)
        .join("data.dump.zst.age");
    let original = std::fs::read(&data).unwrap();
    let target = TestDb::create();
    let faults: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped byte in the middle", {
            let mut d = original.clone();
            let i = d.len() / 2;
            d[i] ^= 0x40;
            d
        }),
        ("a flipped byte in the header", {
            let mut d = original.clone();
            d[30] ^= 0x01;
            d
        }),
        ("truncation", original[..original.len() - 100].to_vec()),
        ("an extra byte", {
            let mut d = original.clone();
            d.push(0);
            d
        }),
    ];
    for (what, bytes) in faults {
        std::fs::write(&data, &bytes).unwrap();
        let (code, _, err) = tend(&["backup", "verify", &id]);
        assert_eq!(code, 1, "{what} not caught by verify: {err}");
        assert!(
            err.contains(&format!("backup {id} is damaged")) && !err.contains("does not open"),
            "{what}: {err}"
        );
        let (code, _, err) = tend(&["restore", &id, "--to", &target.url()]);
        assert_eq!(code, 1, "{what} not caught by restore: {err}");
        assert!(err.contains("is damaged"), "{what}: {err}");
        // The drill says damaged too, and records it: a damaged backup is a finding.
        let (code, _, err) = tend(&["backup", "verify", &id, "--restore"]);
        assert_eq!(code, 1, "{what} not caught by the drill: {err}");
        assert!(err.contains("is damaged"), "{what}: {err}");
        let (_, out, _) = tend(&["backup", "list"]);
        assert!(out.contains("VERIFY FAILED"), "{what}: {out}");
        assert_eq!(
            target.query_column("SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"),
            vec![Some("0".into())],
            "{what}: the target must stay empty"
        );
    }
    // A changed manifest (a table renamed in it) is caught by its own checksum, and the
    // backup drops out of the list with a warning.
    let manifest_path = data.with_file_name("manifest.json");
    let manifest_text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        manifest_text.replace("\"things\"", "\"thinks\""),
    )
    .unwrap();
    let (code, _, err) = tend(&["backup", "verify", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("checksum does not match its contents"),
        "{err}"
    );
    let (code, out, err) = tend(&["backup", "list"]);
    assert_eq!(code, 0);
    assert!(
        !out.contains(&id) && err.contains("not listed"),
        "{out}{err}"
    );
    std::fs::write(&manifest_path, &manifest_text).unwrap();
    // A missing part, and a manifest from another backup.
    std::fs::remove_file(&data).unwrap();
    let (code, _, err) = tend(&["backup", "verify", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing"), "{err}");
    std::fs::write(&data, &original).unwrap();
    assert_eq!(
        tend(&["backup", "verify", &id]).0,
        0,
        "intact again: no false alarm"
    );
    let (code, out, _) = tend(&["backup", "run", "--json"]);
    assert_eq!(code, 0);
    let other: serde_json::Value = serde_json::from_str(&out).unwrap();
    let other_manifest = project
        .path()
        .join(".tend/backups")
        .join(other["id"].as_str().unwrap())
        .join("manifest.json");
    std::fs::copy(&other_manifest, data.with_file_name("manifest.json")).unwrap();
    let (code, _, err) = tend(&["backup", "verify", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not this one") || err.contains("damaged"),
        "{err}"
    );
}

#[test]
fn the_stock_age_cli_opens_a_backup_made_for_recipients() {
    if Command::new("age-keygen")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: the age CLI is not installed (scripts/setup.sh installs it)");
        return;
    }
    let source = rich_database();
    let project = TestProject::new();
    let keygen = Command::new("age-keygen").output().unwrap();
    let identity = String::from_utf8_lossy(&keygen.stdout).to_string();
    let public = identity
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    project.write("key.txt", &identity);
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", source.url())
        .env("BACKUP_AGE_RECIPIENTS", &public)
        .args(["backup", "run", "--json"]));
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        manifest["encryption"]["recipients"][0]["public_key"],
        public.as_str()
    );
    assert!(!out.contains("AGE-SECRET-KEY"));
    let id = manifest["id"].as_str().unwrap();
    let data = project
        .path()
        .join(".tend/backups")
        .join(id)
        .join("data.dump.zst.age");
    // age -d | zstd -d | pg_restore --list, by hand.
    let pipeline = format!(
        "age -d -i {} {} | zstd -dq | pg_restore --list | grep -c 'TABLE DATA'",
        project.path().join("key.txt").display(),
        data.display()
    );
    let output = Command::new("sh").args(["-c", &pipeline]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "2",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // tend restores it with the identity file.
    let target = TestDb::create();
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", source.url())
        .env("BACKUP_AGE_IDENTITY_FILE", project.path().join("key.txt"))
        .args(["restore", id, "--to", &target.url()]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_and_hashes(&target), schema_and_hashes(&source));
}

#[test]
fn round_trip_through_an_s3_compatible_server() {
    let Some(s3) = s3_server() else {
        return;
    };
    let source = rich_database();
    let project = TestProject::new();
    let tend = backing_up_with(&project, &source, s3.env());
    let (code, out, err) = tend(&["backup", "run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = manifest["id"].as_str().unwrap().to_string();
    let keys = s3.object_paths();
    assert!(
        keys.iter()
            .any(|k| k.ends_with(&format!("{id}/manifest.json"))),
        "{keys:?}"
    );
    // Nothing stored in the bucket holds the data in plain text.
    for key in &keys {
        let bytes = std::fs::read(s3.object_file(key)).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"secret-marker-"),
            "{key} holds plaintext"
        );
    }
    let (code, out, _) = tend(&["backup", "list", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id));
    assert_eq!(tend(&["backup", "verify", &id]).0, 0);
    let target = TestDb::create();
    let (code, out, err) = tend(&["restore", &id, "--to", &target.url()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_and_hashes(&target), schema_and_hashes(&source));
}

#[test]
fn a_killed_backup_never_leaves_a_listed_backup_that_fails() {
    let source = TestDb::create();
    source.execute(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body FROM generate_series(1, 400000) g",
    );
    let project = TestProject::new();
    for delay_ms in [20u64, 80, 150, 250, 400] {
        let mut child = project
            .tend_process()
            .env("DATABASE_URL", source.url())
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .args(["backup", "run", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    let tend = backing_up(&project, &source);
    // Every backup listed (those that finished before a kill) is sound.
    let (code, out, _) = tend(&["backup", "list", "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    for backup in doc["backups"].as_array().unwrap() {
        let id = backup["manifest"]["id"].as_str().unwrap();
        let (code, _, err) = tend(&["backup", "verify", id]);
        assert_eq!(code, 0, "listed backup {id} fails: {err}");
    }
    // And the next run succeeds.
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn prune_follows_the_policy_and_never_drops_the_newest_verified() {
    let source = TestDb::create();
    source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g");
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[backup.retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );
    let tend = backing_up(&project, &source);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (code, out, err) = tend(&["backup", "run", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
        ids.push(manifest["id"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // Only the oldest is verified: it is the newest verified one, so it stays.
    assert_eq!(tend(&["backup", "verify", &ids[0]]).0, 0);
    let (code, out, _) = tend(&["backup", "prune", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("would delete {}", ids[1])), "{out}");
    assert_eq!(
        tend(&["backup", "list", "--json"])
            .1
            .matches("\"format\"")
            .count(),
        3
    );
    assert_eq!(tend(&["backup", "prune"]).0, 6, "asks without a terminal");
    let (code, out, err) = tend(&["backup", "prune", "--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["deleted"], serde_json::json!([ids[1]]));
    let (_, out, _) = tend(&["backup", "list"]);
    assert!(
        out.contains(&ids[0]) && out.contains(&ids[2]) && !out.contains(&ids[1]),
        "{out}"
    );
    // Pruning again deletes nothing more.
    let (_, out, _) = tend(&["backup", "prune", "--yes"]);
    assert!(out.contains("Nothing to delete"), "{out}");
}

#[test]
fn parallel_restore_gives_the_same_database() {
    let source = rich_database();
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = TestDb::create();
    let (code, out, err) = tend(&["restore", "--latest", "--jobs", "2", "--to", &target.url()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_and_hashes(&target), schema_and_hashes(&source));
}

/// The row count and md5 of every row of `table` (in text order) in `db`.
fn table_hash(db: &TestDb, table: &str) -> Vec<Option<String>> {
    db.query_column(&format!(
        "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {table} t"
    ))
}

#[test]
fn parallel_restore_splits_big_tables_and_keeps_awkward_text() {
    let source = TestDb::create();
    // Far more than one 1 MiB piece, with the bytes COPY's text format escapes: newlines,
    // tabs, backslashes, a `\.` that is data, NULLs, multibyte characters.
    source.execute(
        r#"CREATE TABLE notes (id int PRIMARY KEY, body text, raw bytea, tags text[], doc jsonb);
         INSERT INTO notes
              SELECT g, 'line one' || E'\n' || 'tab' || E'\t' || E'back\\slash \\.' || ' \N '
                        || repeat('é', g % 50) || md5(g::text),
                     decode(md5(g::text) || '5c2e0a', 'hex'), ARRAY[E'a\nb', 'c"d', NULL],
                     jsonb_build_object('k', E'\\.\n', 'n', g)
                FROM generate_series(1, 60000) g;
         INSERT INTO notes VALUES (0, E'\\.', NULL, NULL, NULL), (-1, E'\n\\.\n', '\x5c2e0a', '{}', '{}');
         CREATE TABLE empty_one (x int);
         CREATE TABLE "Odd ""Name""" ("a b" text PRIMARY KEY);
         INSERT INTO "Odd ""Name""" SELECT 'v' || g FROM generate_series(1, 3000) g;
         CREATE TABLE child (id serial PRIMARY KEY, note_id int REFERENCES notes (id));
         INSERT INTO child (note_id) SELECT g FROM generate_series(1, 50000) g;
         CREATE INDEX notes_body ON notes (left(body, 20));"#,
    );
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = TestDb::create();
    let (code, out, err) = tend(&["restore", "--jobs", "3", "--json", "--to", &target.url()]);
    assert_eq!(code, 0, "{out}{err}");
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["method"], "parallel", "{out}");
    for table in ["notes", "empty_one", r#""Odd ""Name""""#, "child"] {
        assert_eq!(
            table_hash(&target, table),
            table_hash(&source, table),
            "{table}"
        );
    }
    assert_eq!(
        target.query_column("SELECT last_value::text FROM child_id_seq"),
        vec![Some("50000".to_string())]
    );
    // Indexes, keys and the foreign key were built after the rows.
    assert_eq!(
        target.query_column(
            "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        ),
        source.query_column(
            "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        )
    );
    assert_eq!(
        target.query_column("SELECT count(*)::text FROM pg_indexes WHERE indexname = 'notes_body'"),
        vec![Some("1".to_string())]
    );
}

#[test]
fn a_restore_that_fails_building_an_index_is_undone() {
    let source = TestDb::create();
    // An index on a function that reads a setting of the source database, which a restore
    // does not carry over: it builds here and fails on the target.
    source.execute(&format!(
        "ALTER DATABASE {} SET tend.bucket = '7'",
        tend_pg::quote_ident(&source.name)
    ));
    source.execute(
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;
         CREATE FUNCTION bucket(int) RETURNS int LANGUAGE sql IMMUTABLE
           AS $$ SELECT $1 % current_setting('tend.bucket')::int $$;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
         CREATE INDEX t_bucket ON t (bucket(id));
         CREATE VIEW v AS SELECT id FROM t;",
    );
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = TestDb::create();
    target.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm");
    let (code, _, err) = tend(&["restore", "--to", &target.url()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("tend.bucket") && err.contains("the restore was undone"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    // Nothing of it is left, and what the target held before (the extension) still is.
    assert_eq!(
        target.query_column(
            "SELECT count(*)::text FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ),
        vec![Some("0".into())]
    );
    assert_eq!(
        target.query_column("SELECT count(*)::text FROM pg_proc WHERE proname = 'bucket'"),
        vec![Some("0".into())]
    );
    assert_eq!(
        target.query_column("SELECT count(*)::text FROM pg_extension WHERE extname = 'pg_trgm'"),
        vec![Some("1".into())]
    );
}

#[test]
fn large_objects_are_restored_through_pg_restore_in_one_transaction() {
    let source = TestDb::create();
    source.execute(
        "CREATE TABLE docs (id int PRIMARY KEY, body oid);
         INSERT INTO docs SELECT g, lo_from_bytea(0, convert_to('large object ' || g, 'UTF8'))
           FROM generate_series(1, 3) g;",
    );
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = TestDb::create();
    let (code, out, err) = tend(&["restore", "--json", "--to", &target.url()]);
    assert_eq!(code, 0, "{out}{err}");
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["method"], "single-transaction", "{out}");
    let contents = "SELECT string_agg(id || '=' || convert_from(lo_get(body), 'UTF8'), ',' ORDER BY id) FROM docs";
    assert_eq!(target.query_column(contents), source.query_column(contents));
    let (code, out, _) = tend(&["restore", "--to", &target.url(), "--clean", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("in one transaction"), "{out}");
}

#[test]
fn a_killed_parallel_restore_is_replaced_by_a_clean_rerun() {
    let source = TestDb::create();
    source.execute(
        "CREATE TABLE parent (id int PRIMARY KEY);
         INSERT INTO parent SELECT g FROM generate_series(1, 1000) g;
         CREATE TABLE big (id int PRIMARY KEY, parent_id int REFERENCES parent (id), body text);
         INSERT INTO big SELECT g, g % 1000 + 1, md5(g::text) || md5((g * 7)::text)
           FROM generate_series(1, 300000) g;",
    );
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    let target = TestDb::create();
    // Killed at some point of the restore (wherever it is: before, during or after the
    // rows), the target holds some part of the backup, or none, or all of it.
    let mut child = project
        .tend_process()
        .env("DATABASE_URL", source.url())
        .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
        .args(["restore", "-q", "--to", &target.url()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    let (code, out, err) = tend(&["restore", "--clean", "--yes", "--to", &target.url()]);
    assert_eq!(code, 0, "{out}{err}");
    for table in ["parent", "big"] {
        assert_eq!(
            table_hash(&target, table),
            table_hash(&source, table),
            "{table}"
        );
    }
}

/// A small filesystem of its own, unmounted when dropped. Needs root (CI runs as root).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::Builder::new()
            .prefix("tend-small-disk-")
            .tempdir()
            .unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        mounted.then_some(SmallDisk { dir })
    }

    fn files(&self) -> Vec<String> {
        walk(self.dir.path())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn a_full_disk_fails_the_backup_cleanly_and_leaves_nothing_behind() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!("skipped: cannot mount a small tmpfs (needs root)");
        return;
    };
    let source = TestDb::create();
    // About 6 MB of random bytes: zstd cannot make them fit in 2 MB.
    source.execute(
        "CREATE TABLE noise AS SELECT g AS id, decode(md5(random()::text) || md5(random()::text), 'hex') AS body
           FROM generate_series(1, 200000) g",
    );
    let project = TestProject::new();
    let store = disk.dir.path().display().to_string();
    let tend = |args: &[&str]| {
        run(project
            .tend()
            .env("DATABASE_URL", source.url())
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .env("BACKUP_DIR", &store)
            .args(args))
    };
    let (code, out, err) = tend(&["backup", "run"]);
    assert_ne!(
        code, 0,
        "a backup larger than the disk succeeded: {out}{err}"
    );
    assert!(
        err.contains("No space left on device") && err.contains("free space"),
        "the error does not say the disk is full: {err}"
    );
    assert!(
        disk.files().is_empty(),
        "a failed backup left files: {:?}",
        disk.files()
    );
    let (code, out, _) = tend(&["backup", "list", "--json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["backups"].as_array().unwrap().len(), 0, "{out}");
    // Room again: the next run succeeds and restores.
    source.execute("DELETE FROM noise WHERE id > 20000");
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_store_that_goes_away_for_a_moment_is_retried() {
    let Some(mut s3) = s3_server() else {
        return;
    };
    let source = TestDb::create();
    // About 40 MB that zstd cannot shrink: several multipart parts.
    source.execute(
        "CREATE TABLE noise AS SELECT g AS id, decode(md5(random()::text) || md5(random()::text), 'hex') AS body
           FROM generate_series(1, 1200000) g",
    );
    let project = TestProject::new();
    let mut child = project
        .tend_process()
        .env("DATABASE_URL", source.url())
        .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
        .envs(s3.env())
        .args(["backup", "run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The outage starts once the multipart upload has begun (s3s-fs records it in a
    // `.upload-ID.json` file under its root; the probe before the dump writes only
    // `.tmp.N` files) and lasts two seconds.
    let root = s3.bucket_dir().parent().unwrap().to_path_buf();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while walk(&root).iter().all(|f| !f.contains("/.upload-"))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let running = child.try_wait().unwrap().is_none();
    s3.interrupt(std::time::Duration::from_secs(2));
    let output = child.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(running, "the backup ended before the outage: {out}{err}");
    assert!(output.status.success(), "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = manifest["id"].as_str().unwrap().to_string();
    let tend = backing_up_with(&project, &source, s3.env());
    let (code, out, err) = tend(&["backup", "verify", &id]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_store_that_refuses_fails_the_backup_with_a_clear_message() {
    let Some(s3) = s3_server() else {
        return;
    };
    let source = rich_database();
    let project = TestProject::new();
    let tend = |args: &[&str], secret: &str| {
        let mut env = s3.env();
        env.push(("AWS_SECRET_ACCESS_KEY".to_string(), secret.to_string()));
        backing_up_with(&project, &source, env)(args)
    };
    let (code, out, err) = tend(&["backup", "run"], "not-the-secret-key");
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("403") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret-key"), "{err}");
    assert!(
        s3.object_paths().is_empty(),
        "objects left: {:?}",
        s3.object_paths()
    );
    let (code, out, err) = tend(&["backup", "run"], &s3.secret_key);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_store_that_refuses_a_listing_says_to_check_the_credentials() {
    let Some(s3) = s3_server() else {
        return;
    };
    let source = TestDb::create();
    let project = TestProject::new();
    let mut env = s3.env();
    env.push((
        "AWS_SECRET_ACCESS_KEY".to_string(),
        "not-the-secret-key".to_string(),
    ));
    let (code, out, err) = backing_up_with(&project, &source, env)(&["backup", "list"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("403") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret-key"), "{err}");
}

/// `pg_dump -s` without comments, and every user table's row count and row hash, so two
/// databases compare whole whatever they hold.
fn whole_database(db: &TestDb) -> (String, Vec<Option<String>>) {
    let schema = schema_of(db);
    let tables = db.query_column(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    );
    let mut hashes = Vec::new();
    for table in tables.into_iter().flatten() {
        let mut row = table_hash(db, &table);
        row.insert(0, Some(table));
        hashes.extend(row);
    }
    // Sequences' positions too.
    hashes.extend(db.query_column(
        "SELECT schemaname || '.' || sequencename || ' ' || coalesce(last_value::text, '-') FROM pg_sequences ORDER BY 1",
    ));
    (schema, hashes)
}

#[test]
fn round_trip_of_uncommon_types_and_objects_in_both_restore_modes() {
    let source = TestDb::create();
    source.execute(&uncommon());
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    let expected = whole_database(&source);
    for mode in [&["--jobs", "2"][..], &["--single-transaction"][..]] {
        let target = TestDb::create();
        let mut args = vec!["restore", "--latest", "--to"];
        let url = target.url();
        args.push(&url);
        args.extend_from_slice(mode);
        let (code, out, err) = tend(&args);
        assert_eq!(code, 0, "{mode:?}: {out}{err}");
        let restored = whole_database(&target);
        assert_eq!(restored.0, expected.0, "{mode:?}: schema differs");
        assert_eq!(restored.1, expected.1, "{mode:?}: contents differ");
    }
}

/// A database owned by `owner`, a LOGIN role with no SUPERUSER, CREATEDB or CREATEROLE, as
/// production databases are: tables, a sequence, a view, and grants to `reader`. Returns
/// the database and the owner's URL (None when the server is not the test kit's own).
fn owned_by_application_role(owner: &str, reader: &str) -> Option<(TestDb, String)> {
    let db = TestDb::create();
    let server = tend_testkit::TestServer::get();
    let app = server.password_user(owner, "app-role-secret", &db.name)?;
    db.execute(&format!(
        "DO $$ BEGIN CREATE ROLE {reader} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         ALTER DATABASE {db} OWNER TO {owner};",
        db = db.name
    ));
    let attributes = db.query_column(&format!(
        "SELECT format('%s %s %s', rolsuper, rolcreatedb, rolcreaterole) FROM pg_roles WHERE rolname = '{owner}'"
    ));
    assert_eq!(attributes, vec![Some("f f f".into())]);
    tend_testkit::query_column(
        &app,
        &format!(
            "CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
             INSERT INTO accounts (name) SELECT 'account ' || g FROM generate_series(1, 300) g;
             CREATE SEQUENCE invoice_numbers START 1000;
             SELECT nextval('invoice_numbers');
             CREATE TABLE invoices (id bigint PRIMARY KEY DEFAULT nextval('invoice_numbers'),
                                    account_id int REFERENCES accounts (id));
             INSERT INTO invoices (account_id) SELECT g FROM generate_series(1, 50) g;
             CREATE VIEW big_accounts AS SELECT * FROM accounts WHERE id > 100;
             GRANT SELECT ON accounts, big_accounts TO {reader};
             GRANT USAGE ON SEQUENCE invoice_numbers TO {reader};
             ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {reader};
             SELECT 1"
        ),
    );
    Some((db, app.to_secret_string()))
}

#[test]
fn a_backup_of_a_database_owned_by_an_application_role_passes_the_default_drill() {
    let Some((db, app_url)) = owned_by_application_role("app", "app_reader") else {
        return;
    };
    let project = TestProject::new();
    let tend = |args: &[&str]| {
        run(project
            .tend()
            .env("DATABASE_URL", &app_url)
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .args(args))
    };
    let (code, out, err) = tend(&["backup", "run", "--json"]);
    assert_eq!(code, 0, "a backup as the owning role: {out}{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The default scratch is the project's local cluster, which has no role `app`.
    let (code, out, err) = tend(&["backup", "verify", &id, "--restore"]);
    assert_eq!(code, 0, "the drill of a sound backup passes: {out}{err}");
    assert!(
        out.contains("hold the rows the manifest lists")
            && out.contains("lacks the roles app, app_reader")
            && out.contains("without owners and privileges"),
        "{out}"
    );
    let (_, out, _) = tend(&["backup", "list"]);
    assert!(out.contains("verified") && !out.contains("FAILED"), "{out}");
    // With the backup's roles (--globals, taken by `app` itself), the drill creates them
    // on the scratch server, keeping owners and grants, and drops them afterwards.
    let (code, out, err) = tend(&["backup", "run", "--globals", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let with_roles = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, err) = tend(&["backup", "verify", &with_roles, "--restore"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("created the roles app, app_reader"), "{out}");
    // The drill leaves no role behind on the scratch server.
    let (_, out, _) = run(project.tend().args(["dev", "url"]));
    let local = tend_pg::ConnInfo::parse(out.trim()).unwrap();
    assert_eq!(
        tend_testkit::query_column(
            &local.with_dbname("postgres"),
            "SELECT count(*)::text FROM pg_roles WHERE rolname IN ('app', 'app_reader')"
        ),
        vec![Some("0".into())]
    );
    drop(db);
}

#[test]
fn restore_to_a_server_without_the_roles_recreates_them_from_globals_or_restores_without_owners() {
    let Some((db, app_url)) = owned_by_application_role("app_globals", "globals_reader") else {
        return;
    };
    let project = TestProject::new();
    let tend = |url: &str, args: &[&str]| {
        run(project
            .tend()
            .env("DATABASE_URL", url)
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .args(args))
    };
    let backup = |url: &str, args: &[&str]| {
        let (code, out, err) = tend(url, &[&["backup", "run", "--json"], args].concat());
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The application role can take its roles too (without their passwords, which only a
    // superuser may read).
    let with_roles = backup(&app_url, &["--globals"]);
    let without_roles = backup(&app_url, &[]);

    let other = tend_testkit::PrivateCluster::start(&[]);
    let create = |name: &str| {
        tend_testkit::query_column(&other.info, &format!("CREATE DATABASE {name}"));
        other.info.with_dbname(name)
    };
    let owners = |info: &tend_pg::ConnInfo| {
        tend_testkit::query_column(
            info,
            "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'",
        )
    };
    let rows = |info: &tend_pg::ConnInfo| {
        tend_testkit::query_column(
            info,
            "SELECT (SELECT count(*) FROM accounts) || '/' || (SELECT count(*) FROM invoices)",
        )
    };

    // Without them: restored without owners and privileges, and said so (one transaction).
    // (First, while the server has none of them.)
    let second = create("without_roles");
    let second_single = create("without_roles_single");
    for (target, mode) in [
        (&second, "--jobs=2"),
        (&second_single, "--single-transaction"),
    ] {
        let (code, out, err) = tend(
            &app_url,
            &[
                "restore",
                &without_roles,
                mode,
                "--to",
                &target.to_secret_string(),
            ],
        );
        assert_eq!(code, 0, "{mode}: {out}{err}");
        assert!(
            out.contains("without owners and privileges"),
            "{mode}: {out}"
        );
        assert_eq!(owners(target), vec![Some("postgres".into())], "{mode}");
        assert_eq!(rows(target), vec![Some("300/50".into())], "{mode}");
    }

    // With the backup's roles: they are created, owners and grants kept (parallel restore).
    let first = create("with_roles");
    let (code, out, err) = tend(
        &app_url,
        &["restore", &with_roles, "--to", &first.to_secret_string()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("created the roles app_globals, globals_reader"),
        "{out}"
    );
    assert_eq!(owners(&first), vec![Some("app_globals".into())]);
    assert_eq!(rows(&first), vec![Some("300/50".into())]);
    assert_eq!(
        tend_testkit::query_column(
            &first,
            "SELECT has_table_privilege('globals_reader', 'accounts', 'SELECT')::text"
        ),
        vec![Some("true".into())]
    );

    // --no-owner and --no-privileges as pg_restore users expect, even where the roles exist.
    let third = create("asked_no_owner");
    let (code, out, err) = tend(
        &app_url,
        &[
            "restore",
            &with_roles,
            "--single-transaction",
            "--no-owner",
            "--no-privileges",
            "--to",
            &third.to_secret_string(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(owners(&third), vec![Some("postgres".into())]);
    assert_eq!(
        tend_testkit::query_column(
            &third,
            "SELECT has_table_privilege('globals_reader', 'accounts', 'SELECT')::text"
        ),
        vec![Some("false".into())]
    );
    drop(db);
}

#[test]
fn a_wrong_key_is_a_key_error_that_records_nothing_and_prune_keeps_protecting_the_backup() {
    let source = rich_database();
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[backup.retention]\nkeep_last = 1\nkeep_daily = 0\n",
    );
    let tend = |key: Option<&str>, args: &[&str]| {
        let mut cmd = project.tend();
        cmd.env("DATABASE_URL", source.url());
        if let Some(key) = key {
            cmd.env("BACKUP_ENCRYPTION_KEY", key);
        }
        run(cmd.args(args))
    };
    let take = || {
        let (code, out, err) = tend(Some(PASSPHRASE), &["backup", "run", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let verified = take();
    let (code, _, err) = tend(Some(PASSPHRASE), &["backup", "verify", &verified]);
    assert_eq!(code, 0, "{err}");
    let newest = take();

    // A wrong key, on verify and on the drill: the config exit code, and nothing recorded.
    for args in [
        vec!["backup", "verify", &verified],
        vec!["backup", "verify", &verified, "--restore"],
        vec!["backup", "verify", &newest],
    ] {
        let (code, _, err) = tend(Some("the wrong passphrase"), &args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.contains("does not open backup") && !err.contains("damaged"),
            "{args:?}: {err}"
        );
    }
    // A restore with the wrong key: the same, and the target is left alone.
    let target = TestDb::create();
    for mode in ["--jobs=2", "--single-transaction"] {
        let (code, _, err) = tend(
            Some("the wrong passphrase"),
            &["restore", &newest, mode, "--to", &target.url()],
        );
        assert_eq!(code, 3, "{mode}: {err}");
        assert!(err.contains("does not open backup"), "{mode}: {err}");
        assert_eq!(
            target.query_column("SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'"),
            vec![Some("0".into())],
            "{mode}"
        );
    }
    // No key at all: the same exit code, nothing recorded either.
    let (code, _, err) = tend(None, &["backup", "verify", &verified]);
    assert_eq!(code, 3, "{err}");
    let (_, out, _) = tend(Some(PASSPHRASE), &["backup", "list"]);
    assert!(
        !out.contains("FAILED"),
        "nothing was recorded as failed: {out}"
    );
    assert!(
        !project
            .path()
            .join(".tend/backups")
            .join(&newest)
            .join("verification.json")
            .exists(),
        "no verification written for the unverified backup"
    );

    // Prune still protects the newest verified backup (keep_last = 1 keeps only the newest).
    let (code, out, err) = tend(Some(PASSPHRASE), &["backup", "prune", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = tend(Some(PASSPHRASE), &["backup", "list"]);
    assert!(out.contains(&verified) && out.contains(&newest), "{out}");
    // And the right key opens both.
    for id in [&verified, &newest] {
        let (code, _, err) = tend(Some(PASSPHRASE), &["backup", "verify", id]);
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn a_passphrase_and_age_recipients_together_are_refused_as_config() {
    let source = TestDb::create();
    let project = TestProject::new();
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    for args in [vec!["backup", "run"], vec!["backup", "verify"]] {
        let (code, out, err) = run(project
            .tend()
            .env("DATABASE_URL", source.url())
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .env("BACKUP_AGE_RECIPIENTS", &recipient)
            .args(&args));
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(
            err.contains("BACKUP_ENCRYPTION_KEY") && err.contains("BACKUP_AGE_RECIPIENTS"),
            "{args:?}: {err}"
        );
        assert!(!err.contains(PASSPHRASE), "{err}");
    }
    assert!(
        !project.path().join(".tend/backups").exists()
            || std::fs::read_dir(project.path().join(".tend/backups"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn an_unusable_store_fails_before_pg_dump_starts_and_is_named_as_a_store_error() {
    // The database is unreachable too: an error about the store, not about the database
    // or pg_dump, shows that the store was checked first.
    let unreachable_db = "postgresql://nobody@127.0.0.1:1/none";
    let project = TestProject::new();
    let tend = |env: Vec<(String, String)>| {
        run(project
            .tend()
            .env("DATABASE_URL", unreachable_db)
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .envs(env)
            .args(["backup", "run"]))
    };
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let check = |what: &str, (code, out, err): (i32, String, String), hint: &str| {
        assert_eq!(code, 1, "{what}: {out}{err}");
        assert!(
            err.contains("backup store") || err.contains("backup directory"),
            "{what}: not named as a store error: {err}"
        );
        assert!(err.contains(hint), "{what}: no hint naming {hint}: {err}");
        assert!(
            !err.contains("pg_dump") && !err.contains("connect"),
            "{what}: the store was not checked first: {err}"
        );
    };

    // An S3 endpoint that does not answer.
    check(
        "an unreachable S3 endpoint",
        tend(env(&[
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("BACKUP_S3_BUCKET", "backups"),
            ("BACKUP_S3_REGION", "us-east-1"),
            ("BACKUP_S3_ENDPOINT", "http://127.0.0.1:1"),
            ("BACKUP_S3_FORCE_PATH_STYLE", "true"),
        ])),
        "BACKUP_S3_ENDPOINT",
    );

    // BACKUP_DIR is a file, or lies under one.
    let file = project.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    check(
        "BACKUP_DIR is a file",
        tend(env(&[("BACKUP_DIR", file.to_str().unwrap())])),
        "BACKUP_DIR",
    );
    let under = file.join("backups");
    check(
        "BACKUP_DIR under a file",
        tend(env(&[("BACKUP_DIR", under.to_str().unwrap())])),
        "BACKUP_DIR",
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    // A read-only directory (as root, permissions do not stop writes: a read-only mount
    // does, else an immutable directory).
    let readonly = tempfile::Builder::new()
        .prefix("tend-readonly-")
        .tempdir()
        .unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(readonly.path())
        .status()
        .is_ok_and(|s| s.success());
    let immutable = !mounted
        && Command::new("chattr")
            .arg("+i")
            .arg(readonly.path())
            .status()
            .is_ok_and(|s| s.success());
    if mounted || immutable {
        let result = tend(env(&[("BACKUP_DIR", readonly.path().to_str().unwrap())]));
        let files = walk(readonly.path());
        if mounted {
            let _ = Command::new("umount").arg(readonly.path()).status();
        } else {
            let _ = Command::new("chattr")
                .arg("-i")
                .arg(readonly.path())
                .status();
        }
        check("a read-only BACKUP_DIR", result, "BACKUP_DIR");
        assert!(files.is_empty(), "{files:?}");
    } else {
        eprintln!("skipped the read-only case: neither mount nor chattr works here");
    }
}

/// A database whose dump takes a few seconds: about 40 MB that zstd cannot shrink.
fn incompressible_database() -> TestDb {
    let source = TestDb::create();
    source.execute(
        "CREATE TABLE noise AS SELECT g AS id, decode(md5(random()::text) || md5(random()::text), 'hex') AS body
           FROM generate_series(1, 1200000) g",
    );
    source
}

/// Starts `tend backup run`, waits until `started` says its upload has begun, sends
/// `signal`, and returns the exit code and stderr.
fn signalled_backup(
    project: &TestProject,
    source: &TestDb,
    env: Vec<(String, String)>,
    started: impl Fn() -> bool,
    signal: i32,
) -> (Option<i32>, String) {
    let child = project
        .tend_process()
        .env("DATABASE_URL", source.url())
        .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
        .envs(env)
        .args(["backup", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !started() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn sigint_or_sigterm_during_a_backup_removes_its_partial_objects() {
    let source = incompressible_database();
    let project = TestProject::new();

    // A directory store, SIGINT once the upload's staging file (`data.dump.zst.age#1`) exists.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_path_buf();
    let staging = || {
        walk(&store)
            .iter()
            .any(|f| f.contains("data.dump.zst.age#"))
    };
    let (code, err) = signalled_backup(
        &project,
        &source,
        vec![("BACKUP_DIR".into(), store.display().to_string())],
        staging,
        libc::SIGINT,
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("removed"),
        "{err}"
    );
    assert_eq!(walk(&store), Vec::<String>::new(), "left behind");
    assert!(
        std::fs::read_dir(&store).unwrap().next().is_none(),
        "an empty folder was left"
    );

    // SIGKILL cannot be cleaned up after: the folder stays, unlisted, and `prune` removes
    // it at once, since the process named in its running.json is gone.
    let (code, err) = signalled_backup(
        &project,
        &source,
        vec![("BACKUP_DIR".into(), store.display().to_string())],
        staging,
        libc::SIGKILL,
    );
    assert_eq!(code, None, "{err}");
    assert!(
        !walk(&store).is_empty(),
        "a killed backup leaves its folder"
    );
    let tend = |args: &[&str]| {
        run(project
            .tend()
            .env("BACKUP_DIR", store.display().to_string())
            .args(args))
    };
    let (code, out, err) = tend(&["backup", "list"]);
    assert!(
        code == 0 && out.contains("No complete backup"),
        "{out}{err}"
    );
    let (code, out, err) = tend(&["backup", "prune", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("would remove") && out.contains("is gone"),
        "{out}{:?}",
        walk(&store)
    );
    assert!(!walk(&store).is_empty(), "a dry run removed files");
    let (code, out, err) = tend(&["backup", "prune", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(walk(&store), Vec::<String>::new(), "{out}");

    // An S3-compatible store, SIGTERM at three instants: while the probe or running.json is
    // written (the first of s3s-fs's dot files), while the multipart upload is being created
    // (its `.upload-ID.json` exists, the answer may not have arrived), and while parts are in
    // flight (`.upload_id-ID.part-N`). Each leaves no object and no upload behind.
    let Some(s3) = s3_server() else {
        return;
    };
    let root = s3.bucket_dir().parent().unwrap().to_path_buf();
    // s3s-fs keeps parts in flight in dot files under its root; `.bucket-*` files are its
    // bookkeeping of objects (kept even after they are deleted).
    let dot_files = move |root: &std::path::Path| -> Vec<String> {
        walk(root)
            .into_iter()
            .filter(|f| f.contains("/.") && !f.contains("/.bucket-"))
            .collect()
    };
    type Seen = fn(&str) -> bool;
    let instants: [(&str, Seen); 3] = [
        ("any write", |_| true),
        ("creating the upload", |f| f.contains("/.upload-")),
        ("parts in flight", |f| f.contains("/.upload_id-")),
    ];
    for (instant, seen) in instants {
        let started = || dot_files(&root).iter().any(|f| seen(f));
        let (code, err) = signalled_backup(&project, &source, s3.env(), started, libc::SIGTERM);
        assert_eq!(code, Some(130), "{instant}: {err}");
        assert!(err.contains("interrupted"), "{instant}: {err}");
        assert_eq!(
            s3.object_paths(),
            Vec::<String>::new(),
            "{instant}: objects left"
        );
        // `.tmp.*` files are s3s-fs's own buffers of a request cut off mid-body (never a
        // part of an upload, and invisible through the S3 API).
        let parts: Vec<String> = dot_files(&root)
            .into_iter()
            .filter(|f| !f.contains("/.tmp."))
            .collect();
        assert!(
            parts.is_empty(),
            "{instant}: the multipart upload was not aborted: {parts:?}"
        );
    }
    let in_flight = || dot_files(&root).iter().any(|f| f.contains("/.upload_id-"));

    // SIGKILL on S3: the folder holds running.json, which recorded the multipart upload's id
    // before its first part; prune aborts that upload and removes the folder.
    let (code, err) = signalled_backup(&project, &source, s3.env(), in_flight, libc::SIGKILL);
    assert_eq!(code, None, "{err}");
    let tend = backing_up_with(&project, &source, s3.env());
    assert!(
        !s3.object_paths().is_empty(),
        "a killed backup leaves its marker: {:?} {err}",
        walk(&root)
    );
    let (code, out, err) = tend(&["backup", "prune", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("is gone"), "{out}");
    assert_eq!(s3.object_paths(), Vec::<String>::new(), "{out}");
    let uploads: Vec<String> = dot_files(&root)
        .into_iter()
        .filter(|f| !f.contains("/.tmp."))
        .collect();
    assert!(
        uploads.is_empty(),
        "prune left the killed backup's multipart upload: {uploads:?}"
    );

    // The store still takes a whole backup afterwards.
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// pg_restore 17 and newer set `transaction_timeout`, which PostgreSQL 16 and older reject:
/// tend then runs pg_restore's script through psql without that statement. Proven with
/// PostgreSQL 18's client programs against the test server when it is older than 17 (15 by
/// default, 16 in the 16 subset), in both restore modes and in the restore drill.
#[test]
fn a_newer_pg_restore_restores_into_an_older_server_in_every_mode() {
    let newer = std::path::Path::new("/opt/tend/postgresql/18/bin");
    if !newer.join("pg_restore").is_file() || !newer.join("psql").is_file() {
        eprintln!("skipped: PostgreSQL 18's client programs are not in {newer:?}");
        return;
    }
    if tend_testkit::TestServer::get().major() >= 17 {
        eprintln!("skipped: the test server is 17 or newer");
        return;
    }
    let source = rich_database();
    let project = TestProject::new();
    let tend = |args: &[&str]| {
        run(project
            .tend()
            .env("DATABASE_URL", source.url())
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .env("TEND_PG_BINDIR", newer)
            .args(args))
    };
    let (code, out, err) = tend(&["backup", "run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        manifest["pg_dump_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("18")),
        "{manifest}"
    );
    let expected = schema_and_hashes(&source);
    for mode in [None, Some("--single-transaction")] {
        let target = TestDb::create();
        let url = target.url();
        let mut args = vec!["restore", "--to", url.as_str()];
        args.extend(mode);
        let (code, out, err) = tend(&args);
        assert_eq!(code, 0, "{mode:?}: {out}{err}");
        assert_eq!(schema_and_hashes(&target), expected, "{mode:?}");
    }
    let (code, out, err) = tend(&["backup", "verify", "--latest", "--restore"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hold the rows the manifest lists"), "{out}");
}

#[test]
fn prune_removes_leftovers_of_interrupted_backups_and_shows_them_on_dry_run() {
    let source = TestDb::create();
    source.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let kept = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let store = project.path().join(".tend/backups");
    // What a killed backup leaves: a folder without a manifest, an upload staging file.
    let old = store.join("20250101T000000Z-dead");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("data.dump.zst.age#1"), vec![7u8; 4096]).unwrap();
    std::fs::write(old.join("globals.sql.zst.age"), b"x").unwrap();
    for file in ["data.dump.zst.age#1", "globals.sql.zst.age"] {
        let status = Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(old.join(file))
            .status()
            .unwrap();
        assert!(status.success());
    }
    // One written a moment ago may belong to a backup still running: kept.
    let recent = store.join("20990101T000000Z-live");
    std::fs::create_dir_all(&recent).unwrap();
    std::fs::write(recent.join("data.dump.zst.age#1"), b"running").unwrap();

    let (code, out, err) = tend(&["backup", "prune", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("would remove 20250101T000000Z-dead")
            && out.contains("left by an interrupted backup"),
        "{out}"
    );
    assert!(
        out.contains("20990101T000000Z-live") && out.contains("running backup"),
        "{out}"
    );
    assert!(
        old.join("data.dump.zst.age#1").exists(),
        "a dry run removed files"
    );

    let (code, out, err) = tend(&["backup", "prune", "--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["removed_leftovers"],
        serde_json::json!(["20250101T000000Z-dead"])
    );
    assert!(!old.exists(), "the leftover is still there");
    assert!(
        recent.join("data.dump.zst.age#1").exists(),
        "a recent folder was removed"
    );
    let (_, out, _) = tend(&["backup", "list"]);
    assert!(out.contains(&kept), "{out}");
}

#[test]
fn a_failing_pg_restore_shows_its_own_error_not_a_broken_pipe() {
    let source = rich_database();
    let project = TestProject::new();
    let tend = backing_up(&project, &source);
    let (code, out, err) = tend(&["backup", "run"]);
    assert_eq!(code, 0, "{out}{err}");
    // A role that may connect but not create anything in the target's schema public.
    let target = TestDb::create();
    let Some(mut restorer) = tend_testkit::TestServer::get().password_user(
        "tend_restorer_no_create",
        "restorer-secret",
        &target.name,
    ) else {
        return;
    };
    restorer.set("dbname", &target.name);
    for mode in ["--single-transaction", "--jobs=2"] {
        let (code, out, err) = tend(&["restore", mode, "--to", &restorer.to_secret_string()]);
        assert_eq!(code, 1, "{mode}: {out}{err}");
        assert!(
            err.contains("pg_restore failed") && err.contains("permission denied"),
            "{mode}: pg_restore's own error is not shown: {err}"
        );
        assert!(
            !err.contains("Broken pipe") && !err.contains("damaged"),
            "{mode}: {err}"
        );
        assert!(!err.contains("restorer-secret"), "{err}");
    }
    // The backup was sound all along: nothing was recorded against it.
    let (_, out, _) = tend(&["backup", "list"]);
    assert!(out.contains("not verified"), "{out}");
}

/// `--json` of `backup list`, `show`, `verify`, `prune --dry-run` and of `restore`
/// (`--dry-run` and the restore itself) is the serialization of the core's typed reports;
/// their shape is pinned here, volatile values (ids, times, sizes, versions, checksums,
/// paths, database names) redacted.
#[test]
fn backup_and_restore_json_is_the_serialized_service_report() {
    let source = TestDb::create();
    source.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, name text);
         INSERT INTO accounts SELECT g, 'n' || g FROM generate_series(1, 30) g;
         CREATE TABLE notes (id int PRIMARY KEY, account_id int REFERENCES accounts);
         INSERT INTO notes SELECT g, g FROM generate_series(1, 10) g",
    );
    let project = TestProject::new();
    project.write(
        "tend.toml",
        "[backup.retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );
    let tend = backing_up(&project, &source);
    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = tend(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let manifest = json(&["backup", "run", "--json"]);
        ids.push(manifest["id"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    // A folder without a manifest, written just now: kept, as maybe a running backup's.
    let leftover = project.path().join(".tend/backups/20260101T000000Z-0000");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("data.dump.zst.age"), b"partial").unwrap();

    insta::assert_json_snapshot!("backup_verify_json", json(&["backup", "verify", &ids[0], "--json"]), {
        ".id" => "[id]",
        ".verification.verified_at" => "[time]",
    });
    insta::assert_json_snapshot!("backup_show_json", json(&["backup", "show", &ids[1], "--json"]), {
        ".id" => "[id]",
        ".database" => "[database]",
        ".server_version" => "[version]",
        ".pg_dump_version" => "[version]",
        ".tend_version" => "[version]",
        ".started_at" => "[time]",
        ".finished_at" => "[time]",
        ".raw_bytes" => "[bytes]",
        ".stored_bytes" => "[bytes]",
        ".objects[].bytes" => "[bytes]",
        ".objects[].sha256" => "[sha256]",
        ".checksum" => "[sha256]",
    });
    insta::assert_json_snapshot!("backup_list_json", json(&["backup", "list", "--json"]), {
        ".store" => "[store]",
        ".backups[].manifest.id" => "[id]",
        ".backups[].manifest.database" => "[database]",
        ".backups[].manifest.server_version" => "[version]",
        ".backups[].manifest.pg_dump_version" => "[version]",
        ".backups[].manifest.tend_version" => "[version]",
        ".backups[].manifest.started_at" => "[time]",
        ".backups[].manifest.finished_at" => "[time]",
        ".backups[].manifest.raw_bytes" => "[bytes]",
        ".backups[].manifest.stored_bytes" => "[bytes]",
        ".backups[].manifest.objects[].bytes" => "[bytes]",
        ".backups[].manifest.objects[].sha256" => "[sha256]",
        ".backups[].manifest.checksum" => "[sha256]",
        ".backups[].verification.verified_at" => "[time]",
    });
    insta::assert_json_snapshot!("backup_prune_dry_run_json", json(&["backup", "prune", "--dry-run", "--json"]), {
        ".decisions[].id" => "[id]",
        ".recent_leftovers[].last_write" => "[time]",
    });

    let target = TestDb::create();
    insta::assert_json_snapshot!(
        "restore_dry_run_json",
        json(&["restore", &ids[1], "--to", &target.url(), "--dry-run", "--json"]),
        { ".id" => "[id]", ".to" => "[url]" }
    );
    insta::assert_json_snapshot!(
        "restore_json",
        json(&["restore", &ids[1], "--to", &target.url(), "-j", "2", "--json"]),
        { ".restored" => "[id]", ".to" => "[url]" }
    );
    assert_eq!(
        target.query_column("SELECT count(*)::text FROM accounts"),
        vec![Some("30".to_string())]
    );
    // The restore drill's report, into a scratch database on the local cluster.
    insta::assert_json_snapshot!(
        "backup_verify_restore_json",
        json(&["backup", "verify", &ids[1], "--restore", "--json"]),
        { ".id" => "[id]", ".verification.verified_at" => "[time]" }
    );
    let _ = run(project.tend().args(["dev", "destroy", "--yes"]));
}
