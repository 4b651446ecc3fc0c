//! Point-in-time recovery: `tend pitr enable|status` on a private cluster (archive_mode needs
//! a restart), and `tend wal-push` / `tend wal-fetch` as the server runs them, against a
//! directory store and S3.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tend_testkit::{PrivateCluster, TestProject, query_column};

use crate::run;

const PASSPHRASE: &str = "pitr-test-passphrase-7f3a";

/// A private cluster (archiving needs a restart) and a project whose tend.toml the server's
/// archive_command reads.
struct Setup {
    private: PrivateCluster,
    project: TestProject,
    data_dir: PathBuf,
    /// A superuser URL spelled with the socket directory.
    super_url: String,
    /// The same server through TCP, as the application's role.
    app_url: String,
}

impl Setup {
    fn new(store: &str) -> Setup {
        Setup::with_settings(store, &[])
    }

    fn with_settings(store: &str, settings: &[(&str, &str)]) -> Setup {
        let mut all = vec![("wal_level", "replica")];
        all.extend_from_slice(settings);
        let private = PrivateCluster::start_on_test_major(&all);
        let state = private.cluster.state().unwrap().unwrap();
        let project = TestProject::new();
        // The server runs tend as its own OS user: it must read the project's tend.toml.
        std::fs::set_permissions(project.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        project.write("tend.toml", &format!("[backup]\n{store}\n"));
        std::fs::set_permissions(
            project.path().join("tend.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let super_url = format!(
            "postgres://postgres@/postgres?host={}&port={}",
            state.socket_dir.display(),
            state.port
        );
        for sql in [
            "CREATE ROLE app LOGIN PASSWORD 'app-secret-pw'",
            "CREATE DATABASE appdb OWNER app",
        ] {
            query_column(&private.info, sql);
        }
        let app_url = format!(
            "postgres://app:app-secret-pw@127.0.0.1:{}/appdb",
            state.port
        );
        Setup {
            data_dir: state.data_dir,
            private,
            project,
            super_url,
            app_url,
        }
    }

    fn tend(&self, url: &str, args: &[&str]) -> (i32, String, String) {
        self.tend_with(url, args, &[])
    }

    fn tend_with(
        &self,
        url: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> (i32, String, String) {
        run(self
            .project
            .tend()
            .env("DATABASE_URL", url)
            .env("BACKUP_ENCRYPTION_KEY", PASSPHRASE)
            .envs(env.iter().cloned())
            .args(args))
    }

    /// Writes the project's `.env`, readable by the server's OS user: its archive_command
    /// has none of this process's environment.
    fn server_env(&self, contents: &str) {
        self.project.write(".env", contents);
        std::fs::set_permissions(
            self.project.path().join(".env"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }

    fn sql(&self, sql: &str) -> Vec<Option<String>> {
        query_column(&self.private.info, sql)
    }

    fn restart(&self) {
        self.private.cluster.stop().unwrap();
        self.private.cluster.start(&mut |_| {}).unwrap();
    }

    /// Writes some WAL, switches segment, and waits until the server archived it.
    fn archive_a_segment(&self) -> String {
        self.sql("CREATE TABLE IF NOT EXISTS filler AS SELECT 1 AS x");
        self.sql("INSERT INTO filler SELECT generate_series(1, 1000)");
        self.switch_and_archive()
    }

    /// Closes the segment being written and waits until the server archived it; returns
    /// its name.
    fn switch_and_archive(&self) -> String {
        let wal = self.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
            .clone()
            .unwrap();
        self.sql("SELECT pg_switch_wal()");
        self.wait_archived(&wal);
        wal
    }

    fn wait_archived(&self, wal: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0]
                .clone()
                .unwrap();
            if last.as_str() >= wal {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{wal} was not archived; last {last}; server log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        let state = self.private.cluster.state().unwrap().unwrap();
        std::fs::read_to_string(state.log_file).unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.private.cluster.state().unwrap().unwrap().port
    }

    fn system(&self) -> String {
        self.sql("SELECT system_identifier::text FROM pg_control_system()")[0]
            .clone()
            .unwrap()
    }
}

fn settings_of(setup: &Setup) -> Vec<Option<String>> {
    setup.sql(
        "SELECT name || '=' || setting FROM pg_settings
          WHERE name IN ('archive_mode', 'archive_command', 'restore_command', 'wal_level')
          ORDER BY name",
    )
}

/// The objects of the archive in a directory store: `<folder>/<file>/<sha>.zst.age`.
fn archived_files(store: &Path, system: &str) -> Vec<String> {
    let root = store.join("wal").join(system);
    let mut found = Vec::new();
    let Ok(folders) = std::fs::read_dir(&root) else {
        return found;
    };
    for folder in folders.flatten().filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(folder.path()).unwrap().flatten() {
            for object in std::fs::read_dir(file.path()).unwrap().flatten() {
                let name = object.file_name().to_string_lossy().into_owned();
                if name.ends_with(".zst.age") {
                    found.push(format!("{}/{name}", file.file_name().to_string_lossy()));
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn enable_refuses_an_app_role_then_a_superuser_sets_archiving_up_and_status_shows_it() {
    let store = tempfile::tempdir().unwrap();
    let setup = Setup::new(&format!("dir = \"{}\"", store.path().display()));
    let before = settings_of(&setup);

    // The application's role may not change server settings: refused, nothing changed.
    let (code, out, err) = setup.tend(&setup.app_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("may not change the server's settings"),
        "{err}"
    );
    assert!(err.contains("GRANT ALTER SYSTEM"), "{err}");
    assert!(!err.contains("app-secret-pw") && !out.contains("app-secret-pw"));
    assert_eq!(settings_of(&setup), before);

    // A dry run shows the plan and changes nothing, in the server or the store.
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("archive_mode = on"), "{out}");
    assert!(out.contains("needs a restart"), "{out}");
    assert!(out.contains("wal-push --recipient age1"), "{out}");
    assert_eq!(settings_of(&setup), before);
    assert!(!store.path().join("wal").exists());

    // Without a terminal and without --yes: not confirmed, nothing changed.
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable"]);
    assert_eq!(code, 6, "{out}{err}");
    assert_eq!(settings_of(&setup), before);

    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Restart the server to apply archive_mode"),
        "{out}"
    );
    assert!(out.contains("Archiving not tested"), "{out}");

    // tend never restarts a server; the test does, as its administrator would.
    setup.restart();
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("already tend's"), "{out}");
    assert!(out.contains("Archiving works"), "{out}{}", setup.log());

    // Archiving goes on by itself; status (as the app role, over TCP) shows no problem.
    for _ in 0..3 {
        setup.archive_a_segment();
    }
    let (code, out, err) = setup.tend(&setup.app_url, &["pitr", "status", "--json"]);
    // Exit 1: archiving works, and there is no physical backup yet to restore from.
    assert_eq!(code, 1, "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["server"]["archives_with_tend"], true, "{out}");
    assert_eq!(status["server"]["failing"], false, "{out}");
    // Archiving works; no base backup yet: the one problem, and no window.
    let problems = status["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{out}");
    assert!(
        problems[0].as_str().unwrap().contains("no physical backup"),
        "{out}"
    );
    assert!(status["window"].is_null(), "{out}");
    let timelines = status["archive"]["timelines"].as_array().unwrap();
    assert_eq!(timelines.len(), 1, "{out}");
    assert!(timelines[0]["segments"].as_u64().unwrap() >= 4, "{out}");
    assert_eq!(timelines[0]["gaps"].as_array().unwrap().len(), 0, "{out}");
    let system = setup.system();
    assert_eq!(status["archive"]["system_identifier"], system.as_str());
    // The store holds nothing readable: every object is age.
    for file in archived_files(store.path(), &system) {
        let path = store
            .path()
            .join("wal")
            .join(&system)
            .join(&file[..16])
            .join(&file);
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{file}");
    }
    // A role granted ALTER SYSTEM on the four settings, pg_read_all_settings and
    // pg_reload_conf may run it too; it may not switch segments, so the archiving test is
    // left to `pitr status`.
    setup.sql(
        "GRANT ALTER SYSTEM ON PARAMETER wal_level, archive_mode, archive_command, restore_command TO app",
    );
    setup.sql("GRANT pg_read_all_settings TO app");
    // Function privileges belong to a database: granted where tend connects.
    let super_appdb = setup.super_url.replace("/postgres?", "/appdb?");
    query_column(
        &tend_pg::ConnInfo::parse(&super_appdb).unwrap(),
        "GRANT EXECUTE ON FUNCTION pg_reload_conf() TO app",
    );
    let (code, out, err) = setup.tend(&setup.app_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("may not switch WAL segments"), "{out}");
    // The archive is never taken for a backup or an interrupted one.
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "list", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["backups"], serde_json::json!([]), "{out}");
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &["backup", "prune", "--dry-run", "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    for part in ["decisions", "leftovers", "recent_leftovers", "wal"] {
        assert_eq!(plan[part], serde_json::json!([]), "{out}");
    }
}

#[test]
fn wal_push_stores_once_refuses_other_bytes_and_wal_fetch_gives_them_back() {
    let store = tempfile::tempdir().unwrap();
    let setup = Setup::new(&format!("dir = \"{}\"", store.path().display()));
    setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    setup.restart();
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    // Keep the segments in pg_wal for the test to read: no recycling during it.
    setup.sql("ALTER SYSTEM SET wal_keep_size = '1GB'");
    setup.sql("SELECT pg_reload_conf()");
    let wal = setup.archive_a_segment();
    let segment = setup.data_dir.join("pg_wal").join(&wal);
    let original = std::fs::read(&segment).unwrap();
    let pgdata = setup.data_dir.to_str().unwrap().to_string();

    // The same bytes again: already there, success.
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &[
            "wal-push",
            "--pgdata",
            &pgdata,
            segment.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("already_stored"), "{out}");

    // Other bytes under its name: refused loudly, nothing stored.
    let scratch = tempfile::tempdir().unwrap();
    let changed = scratch.path().join(&wal);
    let mut bytes = original.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&changed, &bytes).unwrap();
    let before = archived_files(store.path(), &setup.system());
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &["wal-push", "--pgdata", &pgdata, changed.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("different contents"), "{err}");
    assert_eq!(archived_files(store.path(), &setup.system()), before);

    // A segment of another server, and a file that is not the segment its name says.
    let other = PrivateCluster::start_on_test_major(&[]);
    let other_state = other.cluster.state().unwrap().unwrap();
    let other_wal = query_column(&other.info, "SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
        .clone()
        .unwrap();
    let foreign = scratch.path().join(format!("f/{other_wal}"));
    std::fs::create_dir_all(foreign.parent().unwrap()).unwrap();
    std::fs::copy(
        other_state.data_dir.join("pg_wal").join(&other_wal),
        &foreign,
    )
    .unwrap();
    let (code, _, err) = setup.tend(
        &setup.super_url,
        &["wal-push", "--pgdata", &pgdata, foreign.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("belongs to the server with system identifier"),
        "{err}"
    );
    let misnamed = scratch.path().join("000000010000000000000099");
    std::fs::write(&misnamed, &original).unwrap();
    let (code, _, err) = setup.tend(
        &setup.super_url,
        &["wal-push", "--pgdata", &pgdata, misnamed.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("does not hold the segment its name says"),
        "{err}"
    );
    // A secret key pasted where the public one goes is refused and never shown.
    let secret = "AGE-SECRET-KEY-1QQPQZRFR7ZZPQ9UAJA4SS0J0QQYNQCJMZEQX9VKXHKVQ0SQLK5DSSXHQ2Z";
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &[
            "wal-push",
            "--pgdata",
            &pgdata,
            "--recipient",
            secret,
            segment.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        !err.contains("QQPQZRFR") && !out.contains("QQPQZRFR"),
        "{err}"
    );
    let not_wal = scratch.path().join("notes.txt");
    std::fs::write(&not_wal, "hello").unwrap();
    let (code, _, err) = setup.tend(
        &setup.super_url,
        &["wal-push", "--pgdata", &pgdata, not_wal.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is not the name of a file PostgreSQL archives"),
        "{err}"
    );
    assert_eq!(archived_files(store.path(), &setup.system()), before);

    // wal-fetch in a copy of the data directory's identity: the same bytes come back, and
    // the segments after it are fetched ahead.
    for _ in 0..3 {
        setup.archive_a_segment();
    }
    let restored = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(restored.path().join("global")).unwrap();
    std::fs::create_dir_all(restored.path().join("pg_wal")).unwrap();
    std::fs::copy(
        setup.data_dir.join("global/pg_control"),
        restored.path().join("global/pg_control"),
    )
    .unwrap();
    let restored_dir = restored.path().to_str().unwrap().to_string();
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &[
            "wal-fetch",
            "--pgdata",
            &restored_dir,
            &wal,
            "pg_wal/RECOVERYXLOG",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read(restored.path().join("pg_wal/RECOVERYXLOG")).unwrap() == original,
        "the fetched segment differs"
    );
    let prefetched: Vec<String> = std::fs::read_dir(restored.path().join("pg_wal/tend-prefetch"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(prefetched.len() >= 2, "{prefetched:?}");
    assert!(
        prefetched.iter().all(|n| n.as_str() > wal.as_str()),
        "{prefetched:?}"
    );
    // The next one comes from the prefetch folder, equal to the server's.
    let next = prefetched.iter().min().unwrap().clone();
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &[
            "wal-fetch",
            "--pgdata",
            &restored_dir,
            &next,
            "pg_wal/RECOVERYXLOG",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read(restored.path().join("pg_wal/RECOVERYXLOG")).unwrap(),
        std::fs::read(setup.data_dir.join("pg_wal").join(&next)).unwrap()
    );
    // What the archive never had: exit 1, quietly (PostgreSQL asks for such files).
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &[
            "wal-fetch",
            "--pgdata",
            &restored_dir,
            "00000009.history",
            "pg_wal/RECOVERYHISTORY",
        ],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (1, "", ""));
    // A wrong key: not "missing" (which would end recovery early) but 255, which stops it.
    let (code, _, err) = setup.tend_with(
        &setup.super_url,
        &[
            "wal-fetch",
            "--pgdata",
            &restored_dir,
            "--prefetch",
            "0",
            &wal,
            "pg_wal/X",
        ],
        &[("BACKUP_ENCRYPTION_KEY".into(), "not-the-passphrase".into())],
    );
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("does not open the WAL archive's key"), "{err}");
    assert!(!err.contains("not-the-passphrase"), "{err}");
    // A store that is not there: 255 too.
    let (code, _, err) = setup.tend_with(
        &setup.super_url,
        &["wal-fetch", "--pgdata", &restored_dir, &wal, "pg_wal/X"],
        &[("BACKUP_DIR".into(), "/dev/null/nowhere".into())],
    );
    assert_eq!(code, 255, "{err}");
}

#[test]
fn killing_wal_push_at_random_moments_never_leaves_a_segment_that_restores_wrong() {
    let store = tempfile::tempdir().unwrap();
    let setup = Setup::new(&format!("dir = \"{}\"", store.path().display()));
    setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    setup.restart();
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let recipient = {
        let system = setup.system();
        let info: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.path().join("wal").join(&system).join("archive.json")).unwrap(),
        )
        .unwrap();
        info["recipient"].as_str().unwrap().to_string()
    };
    // Segments the server made, copied out, then pushed by hand under kill -9.
    setup.sql("ALTER SYSTEM SET wal_keep_size = '1GB'");
    setup.sql("SELECT pg_reload_conf()");
    let scratch = tempfile::tempdir().unwrap();
    let mut segments = Vec::new();
    for i in 0..4 {
        setup.sql(&format!(
            "CREATE TABLE t{i} AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
        ));
        let wal = setup.archive_a_segment();
        segments.push(wal);
    }
    // A fresh archive in another store, for the same server: the pushes under test go there.
    let target = tempfile::tempdir().unwrap();
    let system = setup.system();
    let archive_root = target.path().join("wal").join(&system);
    std::fs::create_dir_all(&archive_root).unwrap();
    for name in ["archive.json", "archive-key.age"] {
        std::fs::copy(
            store.path().join("wal").join(&system).join(name),
            archive_root.join(name),
        )
        .unwrap();
    }
    let pgdata = setup.data_dir.to_str().unwrap().to_string();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    for wal in &segments {
        let copy = scratch.path().join(wal);
        std::fs::copy(setup.data_dir.join("pg_wal").join(wal), &copy).unwrap();
        for _ in 0..12 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let delay = Duration::from_micros(rng % 60_000);
            let mut child = setup
                .project
                .tend_process()
                .env("BACKUP_DIR", target.path())
                .args(["wal-push", "--pgdata", &pgdata, "--recipient", &recipient])
                .arg(&copy)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_none() {
                kills += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
            // Whatever was stored must be the whole segment, or nothing.
            let restored = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(restored.path().join("global")).unwrap();
            std::fs::create_dir_all(restored.path().join("pg_wal")).unwrap();
            std::fs::copy(
                setup.data_dir.join("global/pg_control"),
                restored.path().join("global/pg_control"),
            )
            .unwrap();
            let (code, out, err) = setup.tend_with(
                &setup.super_url,
                &[
                    "wal-fetch",
                    "--pgdata",
                    restored.path().to_str().unwrap(),
                    "--prefetch",
                    "0",
                    wal,
                    "pg_wal/RECOVERYXLOG",
                ],
                &[("BACKUP_DIR".into(), target.path().display().to_string())],
            );
            match code {
                0 => assert!(
                    std::fs::read(restored.path().join("pg_wal/RECOVERYXLOG")).unwrap()
                        == std::fs::read(&copy).unwrap(),
                    "a killed push left a segment that restores wrong"
                ),
                1 => {}
                _ => panic!("wal-fetch after a killed push: {code} {out}{err}"),
            }
        }
        // A push that runs to the end always succeeds afterwards.
        let (code, out, err) = setup.tend_with(
            &setup.super_url,
            &["wal-push", "--pgdata", &pgdata, copy.to_str().unwrap()],
            &[("BACKUP_DIR".into(), target.path().display().to_string())],
        );
        assert_eq!(code, 0, "{out}{err}");
    }
    assert!(kills > 0, "no push was killed while it ran");
}

#[test]
fn archiving_into_s3() {
    let Some(s3) = crate::backup::s3_server() else {
        return;
    };
    let setup = Setup::new("");
    // The server's archive_command has none of this process's environment: the store's
    // settings and credentials go in the .env beside tend.toml.
    let env: String = s3.env().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    setup.server_env(&env);
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    setup.restart();
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}{}", setup.log());
    assert!(out.contains("Archiving works"), "{out}");
    for _ in 0..2 {
        setup.archive_a_segment();
    }
    let system = setup.system();
    let objects = s3.object_paths();
    assert!(
        objects
            .iter()
            .filter(|k| k.starts_with(&format!("wal/{system}/0000000100000000/")))
            .count()
            >= 3,
        "{objects:?}"
    );
    // Archiving works, and with no physical backup yet there is nothing to restore: exit 1.
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "status"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("timeline 1"), "{out}");
    assert!(err.contains("no physical backup"), "{err}");
    assert!(!out.contains(&s3.env()[1].1) && !err.contains(&s3.env()[1].1));

    // A physical backup through S3: verified, then restored with the WAL after it, equal
    // by row hashes.
    let app = tend_pg::ConnInfo::parse(&setup.app_url).unwrap();
    query_column(
        &app,
        "CREATE TABLE things (id int PRIMARY KEY, body text);
         INSERT INTO things SELECT g, md5(g::text) FROM generate_series(1, 20000) g",
    );
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "run", "--physical", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "verify", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pg_verifybackup checked every file"), "{out}");
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Recoverable: from"), "{out}");
    query_column(
        &app,
        "UPDATE things SET body = upper(body) WHERE id % 3 = 0",
    );
    let expected = query_column(&app, APP_HASH);
    setup.switch_and_archive();
    let dirs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = dirs.path().join("copy");
    let restored = query_column(&restore_started(&setup, &dir, &[], "appdb"), APP_HASH);
    stop_copy(&setup, &dir);
    assert_eq!(restored, expected);
}

/// pgbench beside the server, else Debian's (a client of any major runs the workload).
fn pgbench(bindir: &Path) -> PathBuf {
    let beside = bindir.join("pgbench");
    if beside.is_file() {
        return beside;
    }
    PathBuf::from("/usr/lib/postgresql/15/bin/pgbench")
}

/// A project whose server archives with tend, and whose restored copies (run by the
/// server's OS user) can fetch WAL: the passphrase is in the .env beside tend.toml.
fn archiving_setup(store: &Path, settings: &[(&str, &str)]) -> Setup {
    let setup = Setup::with_settings(&format!("dir = \"{}\"", store.display()), settings);
    setup.server_env(&format!("BACKUP_ENCRYPTION_KEY={PASSPHRASE}\n"));
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    setup.restart();
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Archiving works"), "{out}{}", setup.log());
    setup
}

/// Restores into a new directory with `args`, started: a connection to the copy's
/// `dbname` as the superuser (the copy's roles are the server's).
fn restore_started(setup: &Setup, dir: &Path, args: &[&str], dbname: &str) -> tend_pg::ConnInfo {
    let mut all = vec![
        "restore",
        "--physical",
        "--to-dir",
        dir.to_str().unwrap(),
        "--start",
        "--json",
    ];
    all.extend_from_slice(args);
    let (code, out, err) = setup.tend(&setup.super_url, &all);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let url = report["started"]["url"]
        .as_str()
        .unwrap()
        .replace("/postgres?", &format!("/{dbname}?"));
    tend_pg::ConnInfo::parse(&url).unwrap()
}

/// Stops a started copy (as the server's OS user) and removes it.
fn stop_copy(setup: &Setup, dir: &Path) {
    let state = setup.private.cluster.state().unwrap().unwrap();
    let stop = std::process::Command::new("runuser")
        .args(["-u", state.os_user.as_deref().unwrap_or("postgres"), "--"])
        .arg(state.bindir.join("pg_ctl"))
        .args(["stop", "-m", "immediate", "-D"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(stop.status.success(), "{stop:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Restores with `args`, reads `sql` in the copy's `postgres` database, stops it.
fn restore_and_read(setup: &Setup, dir: &Path, args: &[&str], sql: &str) -> Vec<Option<String>> {
    let info = restore_started(setup, dir, args, "postgres");
    let rows = query_column(&info, sql);
    stop_copy(setup, dir);
    rows
}

/// The transaction records (commits and aborts) between two WAL positions, in WAL order:
/// `(xid, is_commit, time in microseconds since the epoch)`, read by `pg_waldump`.
fn transaction_records(setup: &Setup, from: &str, to: &str) -> Vec<(u32, bool, i64)> {
    let state = setup.private.cluster.state().unwrap().unwrap();
    let dump = std::process::Command::new("runuser")
        .args(["-u", state.os_user.as_deref().unwrap_or("postgres"), "--"])
        .arg(state.bindir.join("pg_waldump"))
        .arg("-p")
        .arg(setup.data_dir.join("pg_wal"))
        .args(["-r", "Transaction", "-s", from, "-e", to])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(dump.status.success(), "{dump:?}");
    String::from_utf8(dump.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            // "rmgr: Transaction len ..., tx: 745, lsn: ..., desc: COMMIT 2026-12-05 01:50:00.123456 UTC"
            let (_, desc) = line.split_once("desc: ")?;
            let (kind, rest) = desc.split_once(' ')?;
            let is_commit = match kind {
                "COMMIT" => true,
                "ABORT" => false,
                _ => return None,
            };
            let mut words = rest.split([' ', ';']);
            let at: jiff::Timestamp = format!("{}T{}Z", words.next()?, words.next()?)
                .parse()
                .unwrap();
            let xid = line
                .split_once("tx:")?
                .1
                .split(',')
                .next()?
                .trim()
                .parse()
                .unwrap();
            Some((xid, is_commit, at.as_microsecond()))
        })
        .collect()
}

#[test]
fn restores_to_100_random_times_of_a_pgbench_run_hold_exactly_what_committed_before_each() {
    let store = tempfile::tempdir().unwrap();
    // The run's WAL stays in pg_wal, for pg_waldump to read the order of its commits.
    let setup = archiving_setup(store.path(), &[("wal_keep_size", "1GB")]);
    setup.sql("CREATE TABLE ledger (id bigserial PRIMARY KEY, client int, note text)");
    setup.sql("INSERT INTO ledger (client, note) SELECT 0, 'before' FROM generate_series(1, 100)");
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "run", "--physical", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        manifest["physical"]["system_identifier"],
        setup.system().as_str()
    );
    // The earliest target is 200 ms before the first commit, and no target may be before
    // the backup's end: a backup now returns within a few ms of its end, so wait first.
    std::thread::sleep(Duration::from_millis(300));
    let from = setup.sql("SELECT pg_current_wal_insert_lsn()")[0]
        .clone()
        .unwrap();

    // A pgbench run: every insert its own transaction.
    let state = setup.private.cluster.state().unwrap().unwrap();
    let script = setup.project.path().join("insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO ledger (client, note) VALUES (:client_id, md5(random()::text));\n",
    )
    .unwrap();
    let bench = std::process::Command::new(pgbench(&state.bindir))
        .args(["-n", "-c", "4", "-j", "2", "-T", "6", "-f"])
        .arg(&script)
        .args(["-h", state.socket_dir.to_str().unwrap()])
        .args(["-p", &state.port.to_string(), "-U", "postgres", "postgres"])
        .output()
        .unwrap();
    assert!(bench.status.success(), "{bench:?}");
    let to = setup.sql("SELECT pg_current_wal_insert_lsn()")[0]
        .clone()
        .unwrap();
    setup.switch_and_archive();

    // Recovery to a time stops before the first commit or abort record, in WAL order, whose
    // time is past the target. Concurrent transactions take their commit time before they
    // write their record, so WAL order is not time order: the expectation follows the WAL.
    let records = transaction_records(&setup, &from, &to);
    let rows: std::collections::HashMap<u32, Vec<i64>> = setup
        .sql("SELECT xmin || ' ' || id FROM ledger WHERE note <> 'before'")
        .into_iter()
        .fold(Default::default(), |mut rows, r| {
            let r = r.unwrap();
            let (xid, id) = r.split_once(' ').unwrap();
            rows.entry(xid.parse().unwrap())
                .or_default()
                .push(id.parse().unwrap());
            rows
        });
    let commits: Vec<i64> = records
        .iter()
        .filter(|r| r.1 && rows.contains_key(&r.0))
        .map(|r| r.2)
        .collect();
    assert!(
        commits.len() > 1000,
        "pgbench committed only {}",
        commits.len()
    );
    let first = *commits.iter().min().unwrap();
    let last = *commits.iter().max().unwrap();
    // 100 targets: random moments of the run, some exactly on a commit (inclusive). Never
    // after the last commit: PostgreSQL refuses a target no record in the archive passes.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut targets: Vec<i64> = (0..100)
        .map(|i| {
            if i % 10 == 0 {
                commits[(next() % (commits.len() as u64 - 1)) as usize]
            } else {
                first - 200_000 + (next() % ((last - first + 200_000) as u64)) as i64
            }
        })
        .collect();
    targets.sort();
    let expected_at = |target: i64| -> (usize, i64) {
        let ids: Vec<i64> = records
            .iter()
            .take_while(|r| r.2 <= target)
            .filter(|r| r.1)
            .flat_map(|r| rows.get(&r.0).into_iter().flatten())
            .copied()
            .collect();
        (ids.len(), ids.iter().sum())
    };
    let dirs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let failures = std::sync::Mutex::new(Vec::new());
    let work = std::sync::Mutex::new(targets.into_iter().enumerate().collect::<Vec<_>>());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    // Taken in a statement of its own: the guard must not live through
                    // the restore, or the threads would take turns.
                    let next = work.lock().unwrap().pop();
                    let Some((i, at)) = next else { break };
                    let time = jiff::Timestamp::from_microsecond(at).unwrap();
                    let text = time.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
                    let (count, sum) = expected_at(at);
                    let rows = restore_and_read(
                        &setup,
                        &dirs.path().join(format!("r{i}")),
                        &["--time", &text],
                        "SELECT count(*) || ' ' || coalesce(sum(id), 0) FROM ledger WHERE note <> 'before'",
                    );
                    let want = format!("{count} {sum}");
                    if rows[0].as_deref() != Some(want.as_str()) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{text}: restored {:?}, committed {want}", rows[0]));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The rows of the app's database, hashed.
const APP_HASH: &str =
    "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM things t";

fn app_rows(setup: &Setup) -> String {
    let info = tend_pg::ConnInfo::parse(&setup.app_url).unwrap();
    query_column(&info, APP_HASH)[0].clone().unwrap()
}

#[test]
fn a_physical_backup_restores_the_cluster_verifies_and_refuses_what_it_must() {
    let store = tempfile::tempdir().unwrap();
    let setup = archiving_setup(store.path(), &[]);
    let app = tend_pg::ConnInfo::parse(&setup.app_url).unwrap();
    query_column(
        &app,
        "CREATE TABLE things (id int PRIMARY KEY, body text, doc jsonb);
         INSERT INTO things SELECT g, repeat(md5(g::text), 20), jsonb_build_object('g', g)
           FROM generate_series(1, 30000) g",
    );

    // The application's role has no REPLICATION: refused, nothing stored.
    let (code, out, err) = setup.tend(&setup.app_url, &["backup", "run", "--physical"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("REPLICATION"), "{err}");
    assert!(!err.contains("app-secret-pw"));

    // As production would run it: a role with REPLICATION but not superuser, over TCP with
    // a password (SCRAM for its replication connection too). First pg_hba.conf rejects its
    // replication connection: one sentence saying where to fix it, nothing stored.
    query_column(
        &setup.private.info,
        "CREATE ROLE operator LOGIN REPLICATION PASSWORD 'op-secret-pw'",
    );
    let hba = setup.data_dir.join("pg_hba.conf");
    let original = std::fs::read_to_string(&hba).unwrap();
    let with_replication = |method: &str| {
        std::fs::write(
            &hba,
            format!(
                "host replication operator 127.0.0.1/32 {method}\nhost all operator 127.0.0.1/32 scram-sha-256\n{original}"
            ),
        )
        .unwrap();
        query_column(&setup.private.info, "SELECT pg_reload_conf()");
    };
    let operator_url = format!(
        "postgres://operator:op-secret-pw@127.0.0.1:{}/appdb",
        setup.port()
    );
    with_replication("reject");
    let (code, out, err) = setup.tend(&operator_url, &["backup", "run", "--physical"]);
    assert_eq!(code, 4, "a connection error: {out}{err}");
    assert!(
        err.contains("pg_hba.conf") && err.contains("replication"),
        "{err}"
    );
    assert!(!err.contains("op-secret-pw"), "{err}");
    assert_eq!(
        std::fs::read_dir(store.path())
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().path().join("manifest.json").exists() })
            .count(),
        0
    );
    with_replication("scram-sha-256");

    let (code, out, err) = setup.tend(&operator_url, &["backup", "run", "--physical", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = manifest["id"].as_str().unwrap().to_string();
    for name in [
        "base.tar.zst.age",
        "backup_manifest.zst.age",
        "manifest.json",
    ] {
        assert!(store.path().join(&id).join(name).is_file(), "{name}");
    }
    let stored = std::fs::read(store.path().join(&id).join("base.tar.zst.age")).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"));
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&id) && out.contains("physical"), "{out}");
    let (code, out, err) = setup.tend(&setup.app_url, &["pitr", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Recoverable: from"), "{out}");
    // A required window the archive does not reach yet is a problem status shows.
    let week = [("TEND_PITR_WINDOW".to_string(), "7d".to_string())];
    let (code, out, err) = setup.tend_with(&setup.app_url, &["pitr", "status"], &week);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("less than pitr.window (7days)"), "{out}{err}");

    // A wrong key does not open the archive's key, which seals the backup: a key problem
    // (exit 3), not damage, and the key is not shown.
    let wrong = [(
        "BACKUP_ENCRYPTION_KEY".to_string(),
        "not-the-passphrase-at-all".to_string(),
    )];
    let (code, out, err) = setup.tend_with(&setup.super_url, &["backup", "verify", &id], &wrong);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        !err.contains("damaged") && !err.contains("not-the-passphrase"),
        "{err}"
    );
    // pg_verifybackup and the WAL: sound.
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "verify", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pg_verifybackup checked every file"), "{out}");
    // A logical restore of it is refused by name.
    let (code, _, err) = setup.tend(&setup.super_url, &["restore", &id, "--dry-run"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("restore --physical"), "{err}");

    // Rows written after the backup come back from the archive: the copy equals the
    // source at its last archived segment.
    query_column(
        &app,
        "UPDATE things SET doc = doc || '{\"after\": true}' WHERE id % 7 = 0",
    );
    query_column(&app, "DELETE FROM things WHERE id % 11 = 0");
    let expected = app_rows(&setup);
    setup.switch_and_archive();
    let dirs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = dirs.path().join("latest");
    let restored = query_column(&restore_started(&setup, &dir, &[], "appdb"), APP_HASH)[0]
        .clone()
        .unwrap();
    stop_copy(&setup, &dir);
    assert_eq!(restored, expected);

    // Verifying again reads back only the WAL archived since the last verification, and
    // the list shows the recoverable window to the newest segment.
    let checked = store
        .path()
        .join("wal")
        .join(setup.system())
        .join("checked.json");
    assert!(
        checked.is_file(),
        "the first verification records what it read"
    );
    let mut newest = String::new();
    for round in 0..2 {
        newest = setup.archive_a_segment();
        let (code, out, err) = setup.tend(&setup.super_url, &["backup", "verify", &id]);
        assert_eq!(code, 0, "{out}{err}");
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&checked).unwrap()).unwrap();
        let through = record["through"]["00000001"].as_str().unwrap().to_string();
        assert!(through >= newest, "{record}");
        if round == 1 {
            assert!(out.contains("1 read back now"), "{out}");
            assert!(out.contains("by an earlier verification"), "{out}");
        }
    }
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "list", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let window = &list["windows"][0];
    assert_eq!(
        window["system_identifier"],
        setup.system().as_str(),
        "{list}"
    );
    assert_eq!(window["from_backup"], id.as_str(), "{list}");
    assert!(
        window["to_wal"].as_str().unwrap() >= newest.as_str(),
        "{list}"
    );
    assert_eq!(window["gaps"], serde_json::json!([]), "{list}");

    // A directory that holds anything is refused, and left as it was.
    let busy = dirs.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let (code, _, err) = setup.tend(
        &setup.super_url,
        &["restore", "--physical", "--to-dir", busy.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // A dry run names the backup and the target, and writes nothing.
    let planned = dirs.path().join("planned");
    let to = planned.to_str().unwrap();
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &["restore", "--physical", "--to-dir", to, "--dry-run"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("Would restore {id}")), "{out}");
    assert!(out.contains("up to the end of the archive"), "{out}");
    assert!(!planned.exists());
    // A time without an offset is refused; so is a time before every backup.
    let empty = dirs.path().join("empty");
    for (time, want, words) in [
        ("2026-01-01 00:00:00", 3, "not a time with an offset"),
        ("2000-01-01 00:00:00+00", 1, "ends before the target"),
    ] {
        let to = empty.to_str().unwrap();
        let args = ["restore", "--physical", "--to-dir", to, "--time", time];
        let (code, _, err) = setup.tend(&setup.super_url, &args);
        assert_eq!(code, want, "{err}");
        assert!(err.contains(words), "{err}");
    }

    // A damaged backup: verify says so, and a restore fails and leaves nothing.
    let base = store.path().join(&id).join("base.tar.zst.age");
    let mut bytes = std::fs::read(&base).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&base, &bytes).unwrap();
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "verify", &id]);
    assert_eq!(code, 1, "{out}{err}");
    let damaged = dirs.path().join("damaged");
    let (code, _, err) = setup.tend(
        &setup.super_url,
        &[
            "restore",
            "--physical",
            &id,
            "--to-dir",
            damaged.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!damaged.exists() || std::fs::read_dir(&damaged).unwrap().count() == 0);
}

#[test]
fn incremental_backups_build_on_the_newest_and_restore_combined() {
    let store = tempfile::tempdir().unwrap();
    let setup = archiving_setup(store.path(), &[]);
    let major: u32 = setup.sql("SHOW server_version_num")[0]
        .as_deref()
        .unwrap()
        .parse::<u32>()
        .unwrap()
        / 10_000;
    setup.sql("CREATE TABLE things (id int PRIMARY KEY, body text)");
    setup.sql("INSERT INTO things SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "run", "--physical", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let full = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    if major < 17 {
        // PostgreSQL's incremental backups begin with 17: refused, and said so.
        let (code, _, err) = setup.tend(
            &setup.super_url,
            &["backup", "run", "--physical", "--incremental"],
        );
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("PostgreSQL 17 or later"), "{err}");
        return;
    }
    // Without WAL summaries there is nothing to build on: refused with the setting to change.
    let (code, _, err) = setup.tend(
        &setup.super_url,
        &["backup", "run", "--physical", "--incremental"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("summarize_wal"), "{err}");
    setup.sql("ALTER SYSTEM SET summarize_wal = on");
    setup.sql("SELECT pg_reload_conf()");
    // The full backup predates the summaries: the first increment builds on a new full one.
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "run", "--physical", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let first_full = full;
    let full = {
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut parent = full.clone();
    let mut sizes = Vec::new();
    for round in 0..2 {
        setup.sql(&format!(
            "UPDATE things SET body = body || '{round}' WHERE id % 50 = {round}"
        ));
        let (code, out, err) = setup.tend(
            &setup.super_url,
            &["backup", "run", "--physical", "--incremental", "--json"],
        );
        assert_eq!(code, 0, "{out}{err}{}", setup.log());
        let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            manifest["physical"]["incremental_of"],
            parent.as_str(),
            "{out}"
        );
        sizes.push(manifest["stored_bytes"].as_u64().unwrap());
        parent = manifest["id"].as_str().unwrap().to_string();
    }
    let full_size = std::fs::metadata(store.path().join(&full).join("base.tar.zst.age"))
        .unwrap()
        .len();
    assert!(
        sizes.iter().all(|s| *s < full_size),
        "{sizes:?} vs {full_size}"
    );
    // The newest increment verifies (combined with its parents), and a restore combines
    // the chain and replays the WAL after it.
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "verify", &parent]);
    assert_eq!(code, 0, "{out}{err}");
    // Retention keeps the newest increment, and with it everything it is built on; the
    // first full backup (before the WAL summaries) goes. (Its id, not the smallest name:
    // two backups can fall in one second, and ids order only to the second.)
    setup.project.write(
        "tend.toml",
        &format!(
            "[backup]\ndir = \"{}\"\n[backup.retention]\nkeep_last = 1\n",
            store.path().display()
        ),
    );
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &["backup", "prune", "--dry-run", "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let decision = |id: &str| {
        plan["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {out}"))
    };
    assert_eq!(decision(&first_full)["keep"], false, "{out}");
    assert_eq!(decision(&full)["keep"], true, "{out}");
    assert!(
        decision(&full)["reasons"]
            .to_string()
            .contains("needed by the increment"),
        "{out}"
    );
    // The WAL before the oldest kept backup goes too, and only that.
    let system = setup.system();
    let expiry = &plan["wal"][0];
    assert_eq!(expiry["system_identifier"], system.as_str(), "{out}");
    assert_eq!(expiry["oldest_kept_backup"], full.as_str(), "{out}");
    let keep_from = expiry["keep_from"].as_str().unwrap().to_string();
    let before = archived_files(store.path(), &system);
    let older = |files: &[String]| {
        files
            .iter()
            .filter(|f| !f.contains(".history") && f[..24] < *keep_from)
            .count()
    };
    assert_eq!(expiry["files"], older(&before), "{out}");
    assert!(older(&before) > 0, "{before:?}");
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "prune", "--yes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["deleted_wal_files"], older(&before), "{out}");
    let after = archived_files(store.path(), &system);
    assert_eq!(older(&after), 0, "{after:?}");
    assert_eq!(after.len(), before.len() - older(&before));
    setup.sql("DELETE FROM things WHERE id % 9 = 0");
    let expected = setup.sql(APP_HASH);
    setup.switch_and_archive();
    let dirs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = dirs.path().join("combined");
    let restored = query_column(&restore_started(&setup, &dir, &[], "postgres"), APP_HASH);
    stop_copy(&setup, &dir);
    assert_eq!(restored, expected);
}

/// Bytes of WAL in `pg_wal` (segments, not subfolders) and the segments PostgreSQL still
/// has to archive (`archive_status/*.ready`).
fn pg_wal_usage(data_dir: &Path) -> (u64, usize) {
    let wal = data_dir.join("pg_wal");
    let bytes = std::fs::read_dir(&wal)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let ready = std::fs::read_dir(wal.join("archive_status"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                .count()
        })
        .unwrap_or(0);
    (bytes, ready)
}

/// A server archiving into s3s-fs (`s3`) with `[pitr]` settings `pitr` (a spool), set up
/// by `tend pitr enable` and restarted: its archive_command reads the store and the key
/// from the project's `.env`.
fn spooling_setup(s3: &tend_testkit::s3::S3Server, pitr: &str, settings: &[(&str, &str)]) -> Setup {
    let setup = Setup::with_settings(&format!("\n[pitr]\n{pitr}"), settings);
    let env: String = s3.env().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    setup.server_env(&format!("{env}BACKUP_ENCRYPTION_KEY={PASSPHRASE}\n"));
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    setup.restart();
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "enable", "--yes"]);
    assert_eq!(code, 0, "{out}{err}{}", setup.log());
    setup
}

/// Files spooled during an outage, on a server that writes nothing after it: no push comes
/// to send them, so `tend serve` does, on its timer.
#[test]
fn tend_serve_sends_the_spool_of_an_idle_server_to_the_store() {
    let Some(mut s3) = crate::backup::s3_server() else {
        return;
    };
    let setup = spooling_setup(&s3, "spool_dir = \"spool\"\nspool_after = \"1s\"\n", &[]);
    let spool_dir = setup.project.path().join("spool").join(setup.system());
    let spooled = || {
        std::fs::read_dir(&spool_dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".zst.age")
            })
            .count()
    };
    std::thread::scope(|scope| {
        let store = scope.spawn(|| s3.interrupt(Duration::from_secs(8)));
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..2 {
            setup.archive_a_segment();
        }
        store.join().unwrap();
    });
    assert!(spooled() >= 2, "the outage's segments are in the spool");
    // The store is back and the server writes nothing: they stay there, until serve runs.
    std::thread::sleep(Duration::from_secs(2));
    assert!(spooled() >= 2);
    let mut serve = crate::serve::Instance::start(
        &setup.project,
        &setup.super_url,
        crate::serve::free_port(),
        &[],
    );
    serve.wait_for(
        "from the local spool to the store",
        1,
        Duration::from_secs(60),
    );
    assert_eq!(serve.terminate(), 0, "{}", serve.log());
    assert_eq!(spooled(), 0, "{}", serve.log());
    let (code, out, err) = setup.tend(&setup.app_url, &["pitr", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["spool"]["files"], 0, "{out}{err}");
    assert!(
        !err.contains("wait in"),
        "no spool problem is left: {code} {err}"
    );
}

/// A store outage of several minutes under pgbench: wal-push spools (PostgreSQL sees
/// archiving succeed, pg_wal stays at its own size), `pitr status` and `tend check` say
/// WAL waits in the spool, and when the store is back the spool drains in order with no
/// segment lost: a restore to the end of the archive equals the server. Then a second
/// outage with a spool too small: pushes fail, PostgreSQL keeps the WAL, the check is
/// critical, and archiving catches up once the store returns.
#[test]
fn a_store_outage_under_pgbench_spools_then_drains_with_no_segment_lost() {
    let Some(mut s3) = crate::backup::s3_server() else {
        return;
    };
    let outage = Duration::from_secs(
        std::env::var("TEND_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(180),
    );
    let spool_section =
        |max: &str| format!("spool_dir = \"spool\"\nspool_max = \"{max}\"\nspool_after = \"2s\"\n");
    let setup = spooling_setup(
        &s3,
        &spool_section("1GB"),
        &[("max_wal_size", "96MB"), ("min_wal_size", "32MB")],
    );
    let spool_dir = setup.project.path().join("spool").join(setup.system());
    assert!(
        spool_dir.is_dir(),
        "pitr enable makes the server's spool folder"
    );
    // The application's role checks, with the monitoring grant every check needs.
    setup.sql("GRANT pg_monitor TO app");

    let state = setup.private.cluster.state().unwrap().unwrap();
    let bench = |args: &[&str]| {
        std::process::Command::new(pgbench(&state.bindir))
            .args(args)
            .args(["-h", state.socket_dir.to_str().unwrap()])
            .args(["-p", &state.port.to_string(), "-U", "postgres", "postgres"])
            .output()
            .unwrap()
    };
    let init = bench(&["-i", "-q", "-s", "4"]);
    assert!(init.status.success(), "{init:?}");
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "run", "--physical"]);
    assert_eq!(code, 0, "{out}{err}");

    // The outage, with pgbench writing through it and some time after.
    let run_for = (outage + Duration::from_secs(20)).as_secs().to_string();
    let mut max_wal = 0u64;
    let mut max_ready = 0usize;
    let mut seen_spooled = false;
    let mut most_spooled = 0usize;
    let mut during = Vec::new();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| bench(&["-n", "-c", "2", "-j", "2", "-T", &run_for]));
        let mut ready_before = 0;
        for _ in 0..20 {
            ready_before = ready_before.max(pg_wal_usage(&setup.data_dir).1);
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("before the outage: at most {ready_before} segments waiting to be archived");
        let store = scope.spawn(|| s3.interrupt(outage));
        let started = Instant::now();
        while !store.is_finished() {
            let (bytes, ready) = pg_wal_usage(&setup.data_dir);
            max_wal = max_wal.max(bytes);
            max_ready = max_ready.max(ready);
            let spooled = std::fs::read_dir(&spool_dir)
                .map(|e| {
                    e.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".zst.age"))
                        .count()
                })
                .unwrap_or(0);
            most_spooled = most_spooled.max(spooled);
            // Halfway through, once files wait: what status and the checks say.
            if !seen_spooled && spooled >= 3 && started.elapsed() > outage / 2 {
                seen_spooled = true;
                during.push(setup.tend(&setup.super_url, &["pitr", "status", "--json"]));
                during.push(setup.tend(&setup.app_url, &["check", "--only", "wal", "--json"]));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        store.join().unwrap();
        let bench = writer.join().unwrap();
        assert!(bench.status.success(), "{bench:?}");
    });
    assert!(
        seen_spooled,
        "nothing was spooled during the outage:\n{}",
        setup.log()
    );
    // PostgreSQL kept archiving (into the spool): pg_wal held about its own WAL (max_wal_size
    // is soft: checkpoints may pass it), never the outage's. Without the spool, every
    // segment of the outage would wait in pg_wal.
    eprintln!(
        "pg_wal: at most {max_wal} bytes, {max_ready} segments waiting to be archived; {most_spooled} files spooled"
    );
    assert!(
        max_ready <= 12 && max_ready * 2 <= most_spooled,
        "{max_ready} segments waited for archiving, {most_spooled} were spooled"
    );
    assert!(
        max_wal <= (2 * 96 + 12 * 16) * 1024 * 1024,
        "pg_wal grew to {max_wal} bytes during the outage (max_wal_size 96MB)"
    );
    let (code, out, err) = &during[0];
    assert_eq!(*code, 1, "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(out).unwrap();
    assert!(status["spool"]["files"].as_u64().unwrap() >= 3, "{status}");
    assert!(status["spool"]["store_away_since"].is_string(), "{status}");
    assert!(err.contains("wait in"), "{err}");
    let (code, out, err) = &during[1];
    assert_eq!(*code, 1, "{out}{err}");
    let check: serde_json::Value = serde_json::from_str(out).unwrap();
    assert!(
        check["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "wal.spooled" && f["severity"] == "warning"),
        "{check}"
    );

    // The store is back: the next push drains the spool in order.
    let last = setup.switch_and_archive();
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&spool_dir)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".zst.age"))
    {
        assert!(
            Instant::now() < deadline,
            "the spool did not drain:\n{}",
            setup.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "status", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["spool"]["files"], 0, "{status}");
    assert!(
        status["problems"].as_array().unwrap().is_empty(),
        "{status}"
    );
    assert!(
        status["archive"]["timelines"][0]["last"].as_str().unwrap() >= last.as_str(),
        "{status}"
    );
    let (code, out, err) = setup.tend(&setup.app_url, &["check", "--only", "wal"]);
    assert_eq!(code, 0, "{out}{err}");

    // No segment lost: a restore to the end of the archive equals the server.
    let live = setup
        .sql("SELECT count(*) || ' ' || sum(abalance) || ' ' || max(aid) FROM pgbench_accounts");
    let history = setup.sql("SELECT count(*)::text FROM pgbench_history");
    let dirs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dirs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dirs.path().join("copy");
    let info = restore_started(&setup, &copy, &[], "postgres");
    assert_eq!(
        query_column(
            &info,
            "SELECT count(*) || ' ' || sum(abalance) || ' ' || max(aid) FROM pgbench_accounts"
        ),
        live
    );
    assert_eq!(
        query_column(&info, "SELECT count(*)::text FROM pgbench_history"),
        history
    );
    stop_copy(&setup, &copy);

    // A second outage with a spool too small for a segment: the push fails, PostgreSQL
    // keeps the WAL and says archiving fails, the check is critical; then it catches up.
    let toml = std::fs::read_to_string(setup.project.path().join("tend.toml")).unwrap();
    setup.project.write(
        "tend.toml",
        &toml.replace("spool_max = \"1GB\"", "spool_max = \"4kB\""),
    );
    std::thread::scope(|scope| {
        let store = scope.spawn(|| s3.interrupt(Duration::from_secs(25)));
        setup.sql("INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now(), 'x' FROM generate_series(1, 1000)");
        let stuck = setup.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0]
            .clone()
            .unwrap();
        setup.sql("SELECT pg_switch_wal()");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let failing = setup.sql(
                "SELECT (last_failed_wal = '{stuck}')::text FROM pg_stat_archiver"
                    .replace("{stuck}", &stuck)
                    .as_str(),
            );
            if failing[0].as_deref() == Some("true") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "archiving {stuck} did not fail:\n{}",
                setup.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(setup.log().contains("is full"), "{}", setup.log());
        let (_, ready) = pg_wal_usage(&setup.data_dir);
        assert!(
            ready >= 1,
            "PostgreSQL keeps the segment it could not archive"
        );
        let (code, out, err) = setup.tend(&setup.app_url, &["check", "--only", "wal", "--json"]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(out.contains("wal.archiving_failing"), "{out}");
        store.join().unwrap();
        // A new segment wakes the archiver, which sends the stuck one first.
        setup.archive_a_segment();
    });
    let (code, out, err) = setup.tend(&setup.app_url, &["check", "--only", "wal"]);
    assert_eq!(code, 0, "{out}{err}");
}
