//! `tend gdpr` against the example SaaS schema with its generated data, in a database owned
//! by an application role without superuser, plus two tables the example lacks: tax
//! records that must be kept (a declared link, no foreign key) and notifications whose
//! JSON names the user. Check fails until every reached table has a policy; export, erase,
//! export again; after the erasure no trace of the person is left outside what is
//! retained, the audit holds no personal data, and a second erasure changes nothing.

use tend_testkit::{TestProject, query_column};

use crate::cleanup::{checksum, saas_database};
use crate::run;

const SALT: &str = "a-long-random-gdpr-salt-for-tests";

const POLICY: &str = r#"
[gdpr]
subject = "users"

[gdpr.tables.users]
action = "delete"
[gdpr.tables.accounts]
action = "delete"
[gdpr.tables.sessions]
action = "delete"
[gdpr.tables.agency_memberships]
action = "delete"
[gdpr.tables.tasks]
action = "unlink"
[gdpr.tables.requests]
action = "unlink"
[gdpr.tables.agencies]
action = "unlink"
[gdpr.tables.analytics_connections]
action = "unlink"
[gdpr.tables.audit_log]
action = "unlink"
[gdpr.tables.system_settings]
action = "unlink"
[gdpr.tables.notifications]
action = "anonymize"
columns = { payload = "redact", email = "fake-email", display_name = "fake-name" }
[gdpr.tables.tax_records]
action = "retain"
reason = "invoices are kept 10 years (tax law)"

[[gdpr.link]]
table = "audit_log"
column = "entity_id"
references = "users"

[[gdpr.link]]
table = "tax_records"
column = "user_ref"
references = "users"

[[gdpr.link]]
table = "notifications"
column = "payload"
path = "to.user"
references = "users"
owns = true
"#;

fn gdpr(project: &TestProject, url: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["gdpr"];
    all.extend_from_slice(args);
    run(project
        .tend()
        .env("DATABASE_URL", url)
        .env("TEND_GDPR_SALT", SALT)
        .args(&all))
}

fn one(info: &tend_pg::ConnInfo, sql: &str) -> String {
    query_column(info, sql)[0].clone().unwrap_or_default()
}

/// Rows of the reached, not retained, tables whose text, JSON or uuid columns hold any of
/// `traces` (the person's key, email, name), as `table.column: n` lines.
fn traces_left(info: &tend_pg::ConnInfo, tables: &[String], traces: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for table in tables {
        let (schema, name) = table.split_once('.').unwrap();
        let columns = query_column(
            info,
            &format!(
                "SELECT attname FROM pg_attribute
                  WHERE attrelid = '{schema}.{name}'::regclass AND attnum > 0 AND NOT attisdropped
                    AND atttypid IN ('text'::regtype, 'varchar'::regtype, 'uuid'::regtype,
                                     'json'::regtype, 'jsonb'::regtype)"
            ),
        );
        for column in columns.into_iter().flatten() {
            for trace in traces {
                let n: i64 = one(
                    info,
                    &format!(
                        "SELECT count(*) FROM {table} WHERE lower(\"{column}\"::text) LIKE '%' || lower({}) || '%'",
                        tend_pg::quote_literal(trace)
                    ),
                )
                .parse()
                .unwrap();
                if n > 0 {
                    found.push(format!("{table}.{column}: {n} rows hold {trace}"));
                }
            }
        }
    }
    found
}

#[test]
fn export_erase_export_leaves_only_what_is_retained_and_a_second_erase_changes_nothing() {
    let Some((_db, app)) = saas_database("tend_gdpr_app") else {
        return;
    };
    let url = app.to_secret_string();
    // The person: the user with the most tasks assigned, who also has sessions.
    let key = one(
        &app,
        "SELECT t.assignee_id FROM tasks t JOIN sessions s ON s.user_id = t.assignee_id
          GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    );
    // A name of their own: names repeat in the generated data, and the scan looks for it.
    let name = "Zebediah Quintrell-Vasquez".to_string();
    query_column(
        &app,
        &format!("UPDATE users SET name = '{name}' WHERE id = '{key}'; SELECT 1"),
    );
    let email = one(&app, &format!("SELECT email FROM users WHERE id = '{key}'"));
    assert!(!email.is_empty() && !name.is_empty());
    query_column(
        &app,
        &format!(
            "CREATE TABLE tax_records (id serial PRIMARY KEY, user_ref text, amount int, billed_to text);
             INSERT INTO tax_records (user_ref, amount, billed_to)
               SELECT id::text, 100, name FROM users ORDER BY id LIMIT 200;
             INSERT INTO tax_records (user_ref, amount, billed_to) VALUES ('{key}', 42, 'the subject');
             CREATE TABLE notifications (id serial PRIMARY KEY, payload jsonb, email text, display_name text);
             INSERT INTO notifications (payload, email, display_name)
               SELECT jsonb_build_object('to', jsonb_build_object('user', id::text), 'subject', 'Hello ' || coalesce(name, '')),
                      email, name
                 FROM users ORDER BY id LIMIT 300;
             INSERT INTO notifications (payload, email, display_name)
               VALUES (jsonb_build_object('to', jsonb_build_object('user', '{key}'), 'subject', 'Hi {name}'),
                       '{email}', '{name}');
             SELECT 1"
        ),
    );
    let project = TestProject::new();

    // Without policies, check fails and names what needs one.
    project.write("tend.toml", "[gdpr]\nsubject = \"users\"\n");
    let (code, out, err) = gdpr(&project, &url, &["check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("public.sessions: has no policy"), "{out}");
    assert!(out.contains("NO POLICY"), "{out}");

    project.write("tend.toml", POLICY);
    let (code, out, err) = gdpr(&project, &url, &["check", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reached: Vec<String> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    // Requests of an agency the person soft-deleted are not theirs: requests is reached
    // only through the person's own mentions.
    let requests = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.requests")
        .unwrap();
    assert_eq!(requests["owned"], false);

    // Export.
    let first = project.path().join("first");
    let (code, out, err) = gdpr(
        &project,
        &url,
        &[
            "export",
            &format!("users:{key}"),
            "--out",
            first.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let exported = |manifest: &serde_json::Value| -> Vec<String> {
        manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["file"].is_string())
            .map(|t| t["table"].as_str().unwrap().to_string())
            .collect()
    };
    let tables = exported(&manifest);
    for expected in [
        "public.users",
        "public.sessions",
        "public.tasks",
        "public.tax_records",
        "public.notifications",
    ] {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} not in {tables:?}"
        );
    }
    let users = std::fs::read_to_string(first.join("public.users.json")).unwrap();
    assert!(users.contains(&email), "{users}");
    assert!(first.join("manifest.json").is_file());
    // Encrypted with the backup keys: every file an age file, nothing in clear.
    let sealed = project.path().join("sealed");
    let (code, out, err) = run(project
        .tend()
        .env("DATABASE_URL", &url)
        .env("BACKUP_ENCRYPTION_KEY", "export-passphrase-for-tests")
        .args([
            "gdpr",
            "export",
            &format!("users:{key}"),
            "--out",
            sealed.to_str().unwrap(),
            "--encrypt",
        ]));
    assert_eq!(code, 0, "{out}{err}");
    let files: Vec<_> = std::fs::read_dir(&sealed)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        assert!(file.to_str().unwrap().ends_with(".age"), "{file:?}");
        let bytes = std::fs::read(file).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{file:?}");
        assert!(!String::from_utf8_lossy(&bytes).contains(&email));
    }
    // An export refuses to write over one.
    let (code, _, err) = gdpr(
        &project,
        &url,
        &[
            "export",
            &format!("users:{key}"),
            "--out",
            first.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");

    // The dry run changes nothing, and neither does a refusal without a terminal.
    let before = checksum(&app);
    let (code, out, err) = gdpr(
        &project,
        &url,
        &["erase", "--email", &email.to_uppercase(), "--dry-run"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("unlink public.tasks(assignee_id) -> public.users"),
        "{out}"
    );
    assert!(
        out.contains("retain (invoices are kept 10 years (tax law))"),
        "{out}"
    );
    let (code, _, err) = gdpr(&project, &url, &["erase", &format!("users:{key}")]);
    assert_eq!(code, 6, "{err}");
    assert_eq!(checksum(&app), before);

    // Erase.
    let (code, out, err) = gdpr(
        &project,
        &url,
        &["erase", &format!("users:{key}"), "--yes", "--json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let erased: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(erased["rows"].as_u64().unwrap() > 10, "{out}");
    assert!(!err.contains(SALT) && !out.contains(SALT));
    let retained = ["public.tax_records".to_string()];
    let scanned: Vec<String> = reached
        .iter()
        .filter(|t| !retained.contains(t))
        .cloned()
        .collect();
    let left = traces_left(&app, &scanned, &[key.clone(), email.clone(), name.clone()]);
    assert!(left.is_empty(), "traces left: {left:#?}");
    // The audit says what was done, by whom, and holds no personal data.
    let audit = one(
        &app,
        "SELECT row_to_json(e)::text FROM tend.gdpr_erasures e ORDER BY id DESC LIMIT 1",
    );
    assert!(
        audit.contains("public.tasks") && audit.contains("tend_gdpr_app"),
        "{audit}"
    );
    for trace in [&key, &email, &name] {
        assert!(
            !audit.to_lowercase().contains(&trace.to_lowercase()),
            "{trace} in {audit}"
        );
    }

    // A second erasure is a no-op.
    let after = checksum(&app);
    let (code, out, err) = gdpr(&project, &url, &["erase", &format!("users:{key}"), "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Nothing to erase"), "{out}");
    assert_eq!(checksum(&app), after);

    // Export again: only the retained table, with its reason.
    let second = project.path().join("second");
    let (code, out, err) = gdpr(
        &project,
        &url,
        &[
            "export",
            &format!("users:{key}"),
            "--out",
            second.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exported(&manifest), retained, "{out}");
    let tax = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.tax_records")
        .unwrap();
    assert_eq!(tax["reason"], "invoices are kept 10 years (tax law)");
    assert_eq!(manifest["subject_found"], false);
}

#[test]
fn policies_an_erasure_cannot_carry_out_are_problems_and_erase_refuses() {
    let Some((_db, app)) = saas_database("tend_gdpr_problems") else {
        return;
    };
    let url = app.to_secret_string();
    let project = TestProject::new();
    let key = one(&app, "SELECT id FROM users ORDER BY id LIMIT 1");
    let check = |policy: &str| -> String {
        project.write("tend.toml", policy);
        let (code, out, err) = gdpr(&project, &url, &["check"]);
        assert_eq!(code, 1, "{out}{err}");
        out
    };
    // The policy names two tables this database does not have.
    let out = check(POLICY);
    assert!(
        out.contains("[gdpr.tables.tax_records] names a table the database does not have"),
        "{out}"
    );
    query_column(
        &app,
        "CREATE TABLE tax_records (id serial PRIMARY KEY, user_ref text);
         CREATE TABLE notifications (id serial PRIMARY KEY, payload jsonb, email text, display_name text);
         SELECT 1",
    );
    // Retaining rows that deleting the subject cascades into.
    let out = check(&POLICY.replace(
        "[gdpr.tables.accounts]\naction = \"delete\"",
        "[gdpr.tables.accounts]\naction = \"retain\"\nreason = \"kept\"",
    ));
    assert!(
        out.contains("deleting public.users's rows deletes its rows too"),
        "{out}"
    );
    // Unlinking a NOT NULL column; anonymizing the key that ties rows to the subject.
    let out = check(&format!(
        "{}\n[[gdpr.link]]\ntable = \"requests\"\ncolumn = \"number\"\nreferences = \"users\"\n",
        POLICY.replace(
            "[gdpr.tables.users]\naction = \"delete\"",
            "[gdpr.tables.users]\naction = \"anonymize\"\ncolumns = { id = \"hash\", email = \"fake-email\" }",
        )
    ));
    assert!(out.contains("number mentions the subject"), "{out}");
    assert!(out.contains("anonymizes `id`, the subject's key"), "{out}");
    let (code, out, err) = gdpr(&project, &url, &["erase", &format!("users:{key}"), "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("does not cover the schema"), "{err}");
}
