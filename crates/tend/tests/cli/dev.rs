//! `tend dev`: the local cluster's whole life, as root too (the server then runs as postgres).

use tend_testkit::TestProject;

use crate::run;

#[test]
fn dev_cluster_lifecycle() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().args(["dev", "start"]));
    assert_eq!(code, 0, "{out}{err}");
    let url = out.trim().to_string();
    assert!(url.starts_with("postgresql://postgres@127.0.0.1:"), "{url}");
    assert!(err.contains("Creating a local PostgreSQL cluster"), "{err}");

    // Idempotent: same URL, nothing created.
    let (code, out2, err2) = run(project.tend().args(["dev", "start"]));
    assert_eq!(code, 0, "{err2}");
    assert_eq!(out2.trim(), url);
    assert!(err2.contains("already running"), "{err2}");

    // `url` prints only the URL, and psql connects to it.
    let (code, out3, _) = run(project.tend().args(["dev", "url"]));
    assert_eq!(code, 0);
    assert_eq!(out3, format!("{url}\n"));
    let psql = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-XAtc",
            "SELECT current_database() || ' ' || host(inet_server_addr())",
        ])
        .output()
        .expect("psql runs");
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout).trim(),
        "app 127.0.0.1"
    );

    // `psql` passes arguments through.
    let (code, out, err) =
        run(project
            .tend()
            .args(["dev", "psql", "--", "-XAtc", "SELECT 40 + 2"]));
    assert_eq!((code, out.trim()), (0, "42"), "{err}");

    // Only loopback listens.
    let listen = std::process::Command::new("psql")
        .args([url.as_str(), "-XAtc", "SHOW listen_addresses"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listen.stdout).trim(), "127.0.0.1");

    let (code, out, _) = run(project.tend().args(["dev", "status"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("running"), "{out}");
    let (code, out, _) = run(project.tend().args(["dev", "status", "--json"]));
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["running"], true);

    let (code, _, _) = run(project.tend().args(["dev", "stop"]));
    assert_eq!(code, 0);
    let (code, out, _) = run(project.tend().args(["dev", "status"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("stopped"), "{out}");

    // The port is remembered across restarts.
    let (code, out, _) = run(project.tend().args(["dev", "start"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), url);

    // Destroy asks; without a terminal, it refuses unless --yes.
    let (code, _, err) = run(project.tend().args(["dev", "destroy"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("--yes"), "{err}");
    let (code, out, _) = run(project.tend().args(["dev", "destroy", "--dry-run"]));
    assert_eq!(code, 0);
    assert!(out.contains(".tend"), "{out}");
    assert!(project.path().join(".tend").exists());
    let (code, _, err) = run(project.tend().args(["dev", "destroy", "--yes"]));
    assert_eq!(code, 0, "{err}");
    assert!(!project.path().join(".tend").exists());
    let (code, out, _) = run(project.tend().args(["dev", "status"]));
    assert_eq!(code, 1);
    assert!(out.starts_with("not created"), "{out}");
}

#[test]
fn dev_database_name_comes_from_config() {
    let project = TestProject::new();
    project.write("tend.toml", "[dev]\ndatabase = \"shop\"\n");
    let (code, out, err) = run(project.tend().args(["dev", "url"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().ends_with("/shop"), "{out}");
    let (code, out, _) = run(project.tend().args(["dev", "url", "-d", "other"]));
    assert_eq!(code, 0);
    assert!(out.trim().ends_with("/other"), "{out}");
}
