//! Indexes, constraints, keys, sequences and bloat estimates.

use tend_ops::{Finding, RunOptions, Severity};
use tend_testkit::{TestDb, TestServer};

use crate::{assert_fires, findings, findings_with, on_runtime};

/// Runs SQL that is expected to fail (a CREATE INDEX CONCURRENTLY that leaves an invalid
/// index behind), and returns the error.
fn execute_failing(db: &TestDb, sql: &str) -> String {
    let info = db.info.clone();
    let sql = sql.to_string();
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
        match session.batch_execute(&sql).await {
            Ok(()) => panic!("expected an error from: {sql}"),
            Err(e) => e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string()),
        }
    })
}

/// Runs one check with default thresholds as another role.
fn findings_as(info: &tend_pg::conninfo::ConnInfo, id: &str) -> Vec<Finding> {
    let info = info.clone();
    let options = RunOptions {
        only: vec![id.to_string()],
        ..RunOptions::default()
    };
    on_runtime(async move {
        let session = tend_pg::connect(&info, &Default::default()).await.unwrap();
        let catalog = tend_ops::checks::catalog();
        tend_ops::runner::run(&session, &catalog, &options)
            .await
            .unwrap()
            .findings
    })
}

fn subjects(found: &[Finding]) -> Vec<&str> {
    found.iter().map(|f| f.subject.as_str()).collect()
}

#[test]
fn a_failed_concurrent_index_build_is_critical() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text);
         INSERT INTO accounts VALUES (1, 'a@example.com'), (2, 'a@example.com');
         CREATE INDEX accounts_id_email ON accounts (id, email);",
    );
    let error = execute_failing(
        &db,
        "CREATE UNIQUE INDEX CONCURRENTLY accounts_email ON accounts (email)",
    );
    assert!(
        error.contains("duplicate") || error.contains("unique"),
        "{error}"
    );
    let found = findings(&db, "indexes.invalid");
    assert_fires(&found, "indexes.invalid", Severity::Critical);
    assert_eq!(subjects(&found), ["public.accounts_email"], "{found:#?}");
    assert!(found[0].message.contains("unique"), "{found:#?}");
}

#[test]
fn unused_indexes_fire_above_their_size_and_not_once_scanned() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, kind text, at int);
         INSERT INTO events SELECT g, md5(g::text), g FROM generate_series(1, 20000) g;
         CREATE INDEX events_kind ON events (kind);
         CREATE INDEX events_at ON events (at);
         CREATE UNIQUE INDEX events_kind_at ON events (kind, at);
         ANALYZE events;",
    );
    // Default thresholds: these indexes are far below 10 MB.
    assert!(findings(&db, "indexes.unused").is_empty());
    // Use events_at once; the statistics reach the views when the session ends.
    db.execute(
        "SET enable_seqscan = off; SET enable_bitmapscan = off;
         SELECT count(*) FROM events WHERE at = 42;
         SELECT pg_stat_force_next_flush();",
    );
    let mut found = Vec::new();
    for _ in 0..20 {
        found = findings_with(&db, "indexes.unused", 1.0);
        if !subjects(&found).contains(&"public.events_at") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_fires(&found, "indexes.unused", Severity::Warning);
    // Unique and primary key indexes enforce something: never "unused".
    assert_eq!(subjects(&found), ["public.events_kind"], "{found:#?}");
    assert!(found[0].message.contains("no scans since"), "{found:#?}");
}

#[test]
fn duplicate_and_redundant_indexes_are_told_apart() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, placed date, note text,
                              code text CONSTRAINT orders_code_key UNIQUE);
         CREATE INDEX orders_customer ON orders (customer);
         CREATE INDEX orders_customer_again ON orders (customer);
         CREATE INDEX orders_customer_placed ON orders (customer, placed);
         CREATE INDEX orders_code ON orders (code);
         CREATE INDEX orders_placed_desc ON orders (placed DESC);
         CREATE INDEX orders_placed_note ON orders (placed, note);
         CREATE INDEX orders_customer_open ON orders (customer) WHERE note IS NULL;
         CREATE INDEX orders_lower_note ON orders (lower(note));
         CREATE INDEX orders_note_pattern ON orders (note text_pattern_ops);
         CREATE INDEX orders_note_placed ON orders (note, placed);",
    );
    let found = findings(&db, "indexes.duplicate");
    assert_fires(&found, "indexes.duplicate", Severity::Warning);
    let mut dup = subjects(&found);
    dup.sort();
    // The newer copy goes, and a plain index goes before a unique constraint's.
    assert_eq!(
        dup,
        ["public.orders_code", "public.orders_customer_again"],
        "{found:#?}"
    );
    let keeper = found
        .iter()
        .find(|f| f.subject == "public.orders_code")
        .unwrap();
    assert!(
        keeper.message.contains("public.orders_code_key"),
        "{found:#?}"
    );

    let found = findings(&db, "indexes.redundant");
    assert_fires(&found, "indexes.redundant", Severity::Warning);
    let mut red = subjects(&found);
    red.sort();
    // A descending, a partial, an expression and a pattern-ops index are not prefixes.
    assert_eq!(
        red,
        ["public.orders_customer", "public.orders_customer_again"],
        "{found:#?}"
    );
    assert!(
        found[0].message.contains("public.orders_customer_placed"),
        "{found:#?}"
    );
}

#[test]
fn bloat_estimates_fire_after_most_rows_are_deleted() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE logs (id int PRIMARY KEY, body text, level int);
         INSERT INTO logs SELECT g, md5(g::text), g % 5 FROM generate_series(1, 100000) g;
         CREATE INDEX logs_body ON logs (body);
         ANALYZE logs;",
    );
    // Freshly loaded: the estimates are within noise, even with a 1-byte threshold.
    assert!(findings_with(&db, "tables.bloat", 1.0).is_empty());
    assert!(findings_with(&db, "indexes.bloat", 1.0).is_empty());
    // Nine rows in ten go; every page keeps some, so nothing is truncated.
    db.execute("DELETE FROM logs WHERE id % 10 <> 0; ANALYZE logs;");
    let found = findings_with(&db, "tables.bloat", 1.0);
    assert_fires(&found, "tables.bloat", Severity::Warning);
    assert_eq!(subjects(&found), ["public.logs"], "{found:#?}");
    assert!(found[0].value.unwrap() > 4_000_000.0, "{found:#?}");
    let found = findings_with(&db, "indexes.bloat", 1.0);
    assert_fires(&found, "indexes.bloat", Severity::Warning);
    let mut bloated = subjects(&found);
    bloated.sort();
    assert_eq!(
        bloated,
        ["public.logs_body", "public.logs_pkey"],
        "{found:#?}"
    );
    // Default thresholds: a few MB of waste is not worth a rebuild.
    assert!(findings(&db, "tables.bloat").is_empty());
    assert!(findings(&db, "indexes.bloat").is_empty());
}

#[test]
fn constraints_added_not_valid_fire_until_validated() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE teams (id int PRIMARY KEY);
         CREATE TABLE players (id int PRIMARY KEY, team int, age int);
         ALTER TABLE players ADD CONSTRAINT players_adult CHECK (age >= 18) NOT VALID;
         ALTER TABLE players ADD CONSTRAINT players_team FOREIGN KEY (team) REFERENCES teams NOT VALID;
         CREATE DOMAIN score AS int;
         ALTER DOMAIN score ADD CONSTRAINT score_positive CHECK (VALUE > 0) NOT VALID;
         ALTER TABLE players ADD CONSTRAINT players_id_positive CHECK (id > 0);",
    );
    let found = findings(&db, "constraints.not_valid");
    assert_fires(&found, "constraints.not_valid", Severity::Warning);
    let mut names = subjects(&found);
    names.sort();
    assert_eq!(
        names,
        [
            "players_adult on public.players",
            "players_team on public.players",
            "score_positive on domain public.score",
        ],
        "{found:#?}"
    );
    db.execute(
        "ALTER TABLE players VALIDATE CONSTRAINT players_adult;
         ALTER TABLE players VALIDATE CONSTRAINT players_team;
         ALTER DOMAIN score VALIDATE CONSTRAINT score_positive;",
    );
    assert!(findings(&db, "constraints.not_valid").is_empty());
}

#[test]
fn a_foreign_key_without_an_index_fires_with_default_thresholds() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, region int, UNIQUE (region, id));
         CREATE TABLE invoices (id int PRIMARY KEY, customer int REFERENCES customers);
         CREATE TABLE shipments (id int PRIMARY KEY, region int, customer int,
                                 FOREIGN KEY (region, customer) REFERENCES customers (region, id));
         CREATE TABLE payments (id int PRIMARY KEY, customer int REFERENCES customers, region int,
                                FOREIGN KEY (region, customer) REFERENCES customers (region, id));
         CREATE INDEX payments_customer_region ON payments (customer, region);
         CREATE TABLE refunds (id int PRIMARY KEY, customer int REFERENCES customers);
         CREATE INDEX refunds_customer_recent ON refunds (customer) WHERE id > 100;
         CREATE TABLE notes (id int PRIMARY KEY, customer int REFERENCES customers, body text);
         CREATE INDEX notes_body_customer ON notes (body, customer);",
    );
    let found = findings(&db, "constraints.fk_without_index");
    assert_fires(&found, "constraints.fk_without_index", Severity::Warning);
    let mut names = subjects(&found);
    names.sort();
    // payments is covered both ways: (customer, region) serves (region, customer) too.
    assert_eq!(
        names,
        [
            "public.invoices (customer)",
            "public.notes (customer)",
            "public.refunds (customer)",
            "public.shipments (region, customer)",
        ],
        "{found:#?}"
    );
    let shipments = found
        .iter()
        .find(|f| f.subject.starts_with("public.shipments"))
        .unwrap();
    assert!(
        shipments
            .message
            .contains("CREATE INDEX CONCURRENTLY ON public.shipments (region, customer)"),
        "{found:#?}"
    );
    db.execute("CREATE INDEX ON invoices (customer)");
    assert!(
        !subjects(&findings(&db, "constraints.fk_without_index"))
            .contains(&"public.invoices (customer)")
    );
}

#[test]
fn foreign_keys_of_another_type_fire() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE users (id bigint PRIMARY KEY);
         CREATE TABLE posts (id bigint PRIMARY KEY, author int REFERENCES users, editor bigint REFERENCES users);",
    );
    let found = findings(&db, "constraints.fk_type_mismatch");
    assert_fires(&found, "constraints.fk_type_mismatch", Severity::Warning);
    assert_eq!(subjects(&found), ["public.posts.author"], "{found:#?}");
    assert!(found[0].message.contains("integer"), "{found:#?}");
    assert!(found[0].message.contains("bigint"), "{found:#?}");
}

#[test]
fn tables_without_a_primary_key_fire() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE keyed (id int PRIMARY KEY);
         CREATE TABLE heap (a int, b text);
         CREATE TABLE almost (code text NOT NULL, note text);
         CREATE UNIQUE INDEX almost_code ON almost (code);
         CREATE TABLE measures (at date NOT NULL, v int, PRIMARY KEY (at)) PARTITION BY RANGE (at);
         CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE readings (at date, v int) PARTITION BY RANGE (at);
         CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');",
    );
    let found = findings(&db, "tables.no_primary_key");
    assert_fires(&found, "tables.no_primary_key", Severity::Warning);
    let mut names = subjects(&found);
    names.sort();
    // A partition is judged through its parent.
    assert_eq!(
        names,
        ["public.almost", "public.heap", "public.readings"],
        "{found:#?}"
    );
    let almost = found.iter().find(|f| f.subject == "public.almost").unwrap();
    assert!(
        almost
            .message
            .contains("ADD PRIMARY KEY USING INDEX almost_code"),
        "{found:#?}"
    );
}

#[test]
fn unlogged_tables_are_listed() {
    let db = TestDb::create();
    db.execute("CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text); CREATE TABLE durable (id int PRIMARY KEY);");
    let found = findings(&db, "tables.unlogged");
    assert_fires(&found, "tables.unlogged", Severity::Info);
    assert_eq!(subjects(&found), ["public.cache"], "{found:#?}");
    assert_eq!(found[0].severity, Severity::Info);
}

#[test]
fn a_sequence_at_99_percent_of_its_maximum_is_critical() {
    let db = TestDb::create();
    db.execute(
        "CREATE SEQUENCE s MAXVALUE 100; SELECT setval('s', 99);
         CREATE SEQUENCE half MAXVALUE 100; SELECT setval('half', 80);
         CREATE SEQUENCE fresh MAXVALUE 100; SELECT nextval('fresh');
         CREATE SEQUENCE unused MAXVALUE 100;
         CREATE SEQUENCE wraps MAXVALUE 100 CYCLE; SELECT setval('wraps', 99);
         CREATE SEQUENCE down INCREMENT -1 MINVALUE -100 MAXVALUE -1; SELECT setval('down', -95);",
    );
    let found = findings(&db, "sequences.near_max");
    assert_fires(&found, "sequences.near_max", Severity::Critical);
    let by_subject = |s: &str| found.iter().find(|f| f.subject == s);
    assert_eq!(by_subject("public.s").unwrap().severity, Severity::Critical);
    assert_eq!(
        by_subject("public.half").unwrap().severity,
        Severity::Warning
    );
    assert_eq!(
        by_subject("public.down").unwrap().severity,
        Severity::Critical
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        by_subject("public.s").unwrap().message.contains("99.0%"),
        "{found:#?}"
    );
}

#[test]
fn sequences_a_role_cannot_read_are_reported_not_hidden() {
    let db = TestDb::create();
    db.execute(
        "CREATE SEQUENCE s MAXVALUE 100; SELECT setval('s', 99);
         CREATE TABLE items (id serial PRIMARY KEY);",
    );
    let server = TestServer::get();
    let Some(monitor) = server.password_user("tend_schema_monitor", "monitor-pw", &db.name) else {
        return;
    };
    db.execute("GRANT pg_monitor TO tend_schema_monitor");
    let found = findings_as(&monitor, "sequences.near_max");
    assert_fires(&found, "sequences.near_max", Severity::Warning);
    assert_eq!(subjects(&found), ["sequences"], "{found:#?}");
    assert!(
        found[0].message.contains("2 could not be read")
            && found[0]
                .message
                .contains("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public"),
        "{found:#?}"
    );
    let found = findings_as(&monitor, "columns.integer_key_near_max");
    assert_fires(&found, "columns.integer_key_near_max", Severity::Warning);
    assert!(
        found[0].message.contains("public.items_id_seq"),
        "{found:#?}"
    );
    // Once granted, the real values show.
    db.execute("GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO tend_schema_monitor");
    let found = findings_as(&monitor, "sequences.near_max");
    assert_eq!(subjects(&found), ["public.s"], "{found:#?}");
    assert!(findings_as(&monitor, "columns.integer_key_near_max").is_empty());
}

#[test]
fn integer_keys_fed_by_a_sequence_near_the_int4_maximum_fire() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE accounts (id serial PRIMARY KEY);
         SELECT setval('accounts_id_seq', 1800000000);
         CREATE SEQUENCE legacy_ids;
         CREATE TABLE legacy (id int PRIMARY KEY DEFAULT nextval('legacy_ids'));
         SELECT setval('legacy_ids', 1200000000);
         CREATE TABLE tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
         CREATE TABLE flags (id smallserial PRIMARY KEY);
         SELECT setval('flags_id_seq', 30000);
         CREATE TABLE big (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
         SELECT setval(pg_get_serial_sequence('big', 'id'), 1900000000);
         INSERT INTO tickets DEFAULT VALUES;",
    );
    let found = findings(&db, "columns.integer_key_near_max");
    assert_fires(&found, "columns.integer_key_near_max", Severity::Critical);
    let by_subject = |s: &str| found.iter().find(|f| f.subject == s);
    assert_eq!(
        by_subject("public.accounts.id").unwrap().severity,
        Severity::Critical
    );
    // A bigint sequence behind an int column: the column is what overflows.
    assert_eq!(
        by_subject("public.legacy.id").unwrap().severity,
        Severity::Warning
    );
    assert_eq!(
        by_subject("public.flags.id").unwrap().severity,
        Severity::Critical
    );
    // tickets is at 1, big is a bigint column.
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        by_subject("public.legacy.id")
            .unwrap()
            .message
            .contains("public.legacy_ids"),
        "{found:#?}"
    );
}

#[test]
fn unique_indexes_that_ignore_soft_deletes_fire() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text, handle text, token uuid DEFAULT gen_random_uuid() UNIQUE,
                             deleted_at timestamptz, CONSTRAINT users_email_key UNIQUE (email));
         CREATE UNIQUE INDEX users_handle_live ON users (lower(handle)) WHERE deleted_at IS NULL;
         CREATE UNIQUE INDEX users_handle_with_deleted ON users (handle, deleted_at);
         CREATE TABLE teams (id bigserial PRIMARY KEY, slug text UNIQUE);",
    );
    let found = findings(&db, "security.soft_delete_unique");
    assert_fires(&found, "security.soft_delete_unique", Severity::Warning);
    assert_eq!(subjects(&found), ["public.users_email_key"], "{found:#?}");
    assert!(found[0].message.contains("deleted_at"), "{found:#?}");
}
