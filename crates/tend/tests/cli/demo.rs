//! `tend demo`, the README's first command: from nothing to an example database.

use tend_testkit::TestProject;

use crate::run;

#[test]
fn demo_builds_the_example_database_and_leaves_it_running() {
    let project = TestProject::new();
    let (code, out, err) = run(project.tend().arg("demo"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("$ tend dev start"), "{out}");
    assert!(out.contains("Demo done"), "{out}");
    assert!(
        out.contains("tend migrate deploy") && out.contains("$ tend check"),
        "{out}"
    );
    assert!(out.contains("fix: "), "a finding and its remedy: {out}");
    // Schema verify passes, then catches the out-of-band change by name.
    assert!(
        out.contains("no drift from the 6 applied migrations (exit 0)"),
        "{out}"
    );
    assert!(
        out.contains(
            "drift (exit 1): column public.agencies.timezone, column public.users.nickname"
        ),
        "{out}"
    );
    assert!(out.contains("no drift again (exit 0)"), "{out}");
    assert!(out.contains("restored into tend_demo_restored"), "{out}");
    // Retention counted (nothing deleted) and the GDPR reach of a user.
    assert!(out.contains("$ tend cleanup --dry-run"), "{out}");
    assert!(out.contains("soft-delete on public.tasks"), "{out}");
    assert!(out.contains("gdpr: one of public.users reaches"), "{out}");
    // The cluster is left running with the example database.
    let (code, url, _) = run(project.tend().args(["dev", "url", "-d", "tend_demo"]));
    assert_eq!(code, 0);
    let psql = std::process::Command::new("psql")
        .args([
            url.trim(),
            "-XAtc",
            "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM audit_log)",
        ])
        .output()
        .unwrap();
    let rows: i64 = String::from_utf8_lossy(&psql.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(rows >= 100_000, "{rows}");

    // A second run rebuilds it, and --json gives a summary.
    let (code, out, err) = run(project.tend().args(["demo", "--json"]));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["database"], "tend_demo");
    assert!(doc["rows"].as_i64().unwrap() >= 100_000);
}
