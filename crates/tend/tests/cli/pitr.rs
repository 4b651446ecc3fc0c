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
        let private = PrivateCluster::start(&[("wal_level", "replica")]);
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
    assert_eq!(code, 0, "{out}{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["server"]["archives_with_tend"], true, "{out}");
    assert_eq!(status["server"]["failing"], false, "{out}");
    assert_eq!(status["problems"].as_array().unwrap().len(), 0, "{out}");
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
    // The archive is never taken for a backup or an interrupted one.
    let (code, out, err) = setup.tend(&setup.super_url, &["backup", "list", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("\"wal\""), "{out}");
    let (code, out, err) = setup.tend(
        &setup.super_url,
        &["backup", "prune", "--dry-run", "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("\"wal\""), "{out}");
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
    let other = PrivateCluster::start(&[]);
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
    setup.project.write(".env", &env);
    std::fs::set_permissions(
        setup.project.path().join(".env"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
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
    let (code, out, err) = setup.tend(&setup.super_url, &["pitr", "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("timeline 1"), "{out}");
    assert!(!out.contains(&s3.env()[1].1) && !err.contains(&s3.env()[1].1));
}
