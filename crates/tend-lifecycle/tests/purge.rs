//! Batched purges against a real server: every matching row goes and nothing else, a row
//! another transaction holds is skipped (not waited for) and goes in a later run, a purge
//! stopped halfway carries on when run again, and a partitioned table purges through its
//! parent.

use std::time::Duration;

use tend_lifecycle::{BatchSizer, PurgeOptions, PurgeOutcome, PurgeTarget};
use tend_schema::model::QualifiedName;
use tend_testkit::TestDb;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn target(table: &str, condition: &str) -> PurgeTarget {
    PurgeTarget::delete(QualifiedName::new("public", table), condition)
}

/// A purge with no replica pacing and no progress display.
async fn purge(
    client: &tokio_postgres::Client,
    target: &PurgeTarget,
    sizer: &mut BatchSizer,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<PurgeOutcome, tend_lifecycle::PurgeError> {
    tend_lifecycle::purge(
        client,
        target,
        sizer,
        &PurgeOptions::default(),
        &mut Default::default(),
        stop,
        &|_| {},
    )
    .await
}

#[test]
fn a_purge_deletes_what_matches_in_batches_skips_held_rows_and_resumes() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE sessions (id bigint PRIMARY KEY, expires_at timestamptz NOT NULL);
         INSERT INTO sessions
           SELECT g, now() + (CASE WHEN g % 4 = 0 THEN interval '1 day' ELSE interval '-1 day' END)
             FROM generate_series(1, 20000) g;",
    );
    let expired = target("sessions", "expires_at < now()");
    let count = |sql: &str| db.query_column(sql)[0].clone().unwrap();
    assert_eq!(count(&expired.count_sql()), "15000");
    runtime().block_on(async {
        let session = tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap();
        // Another transaction holds one expired row.
        let holder = tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap();
        holder
            .batch_execute("BEGIN; SELECT * FROM sessions WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();

        // Stopped after three batches: whole batches are gone, the rest still matches.
        let mut sizer = BatchSizer::new(Duration::from_millis(200), 1_000);
        let batches = std::sync::atomic::AtomicU32::new(0);
        let stop = || batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3;
        let first = purge(&session, &expired, &mut sizer, &stop).await.unwrap();
        // The first batch meets the held row and waits lock_timeout for it; from then on
        // rows are chosen SKIP LOCKED, and the held one is left.
        assert_eq!((first.conflicts, first.batches), (1, 2), "{first:?}");
        assert!(first.deleted > 0 && first.deleted < 15000, "{first:?}");

        // Run again: everything else goes, except the held row, which is not waited for.
        let mut sizer = BatchSizer::new(Duration::from_millis(200), 1_000);
        let second = purge(&session, &expired, &mut sizer, &|| false)
            .await
            .unwrap();
        assert_eq!(first.deleted + second.deleted, 14999, "{second:?}");
        assert!(second.longest < Duration::from_secs(5), "{second:?}");

        // Once released, the next run deletes it.
        holder.batch_execute("COMMIT").await.unwrap();
        let third = purge(&session, &expired, &mut sizer, &|| false)
            .await
            .unwrap();
        assert_eq!(third.deleted, 1);
    });
    assert_eq!(count(&expired.count_sql()), "0");
    // Nothing that did not match was touched.
    assert_eq!(count("SELECT count(*) FROM sessions"), "5000");
}

#[test]
fn a_partitioned_table_purges_through_its_parent() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE events (at date NOT NULL, body text) PARTITION BY RANGE (at);
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO events SELECT date '2025-06-01' + g % 400, 'e' || g FROM generate_series(1, 4000) g;",
    );
    let old = target("events", "at < date '2026-03-01'");
    let before = db.query_column(&old.count_sql())[0].clone().unwrap();
    let remaining = db.query_column("SELECT count(*) FROM events WHERE at >= date '2026-03-01'")[0]
        .clone()
        .unwrap();
    let old = PurgeTarget {
        partitioned: true,
        ..old
    };
    let outcome = runtime().block_on(async {
        let session = tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap();
        let mut sizer = BatchSizer::new(Duration::from_millis(200), 500);
        purge(&session, &old, &mut sizer, &|| false).await.unwrap()
    });
    assert_eq!(outcome.deleted.to_string(), before);
    assert!(outcome.batches > 1, "{outcome:?}");
    assert_eq!(
        db.query_column("SELECT count(*) FROM events")[0]
            .clone()
            .unwrap(),
        remaining
    );
}

#[test]
fn a_bad_condition_is_one_sentence_naming_the_table() {
    let db = TestDb::create();
    db.execute("CREATE TABLE jobs (id int, finished_at timestamptz)");
    let err = runtime().block_on(async {
        let session = tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap();
        let mut sizer = BatchSizer::new(Duration::from_millis(200), 500);
        purge(
            &session,
            &target("jobs", "finishd_at < now()"),
            &mut sizer,
            &|| false,
        )
        .await
        .unwrap_err()
    });
    let text = err.to_string();
    assert!(
        text.contains("public.jobs") && text.contains("finishd_at"),
        "{text}"
    );
}

#[test]
fn rows_a_foreign_key_refuses_stay_and_archived_rows_move_whole() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, closed_at timestamptz);
         CREATE TABLE invoices (id int PRIMARY KEY, order_id int REFERENCES orders);
         CREATE TABLE lines (id int PRIMARY KEY, order_id int REFERENCES orders ON DELETE CASCADE);
         CREATE TABLE refunds (id int PRIMARY KEY, line_id int REFERENCES lines ON DELETE RESTRICT);
         CREATE TABLE orders_archive (LIKE orders);
         INSERT INTO orders SELECT g, now() - interval '400 days' FROM generate_series(1, 1000) g;
         INSERT INTO invoices SELECT g, g FROM generate_series(1, 10) g;
         INSERT INTO lines SELECT g, g FROM generate_series(1, 1000) g;
         INSERT INTO refunds SELECT g, g FROM generate_series(991, 1000) g;",
    );
    let runtime = runtime();
    let session = runtime.block_on(async {
        tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap()
    });
    let model = runtime.block_on(tend_schema::introspect(&session)).unwrap();
    let graph = tend_lifecycle::ReferenceGraph::of(&model);
    let orders = QualifiedName::new("public", "orders");
    let target = PurgeTarget {
        held: tend_lifecycle::rules::held_sql(&graph, &orders, &orders.sql()),
        archive_to: Some(tend_lifecycle::MoveTo::Table(QualifiedName::new(
            "public",
            "orders_archive",
        ))),
        ..PurgeTarget::delete(orders.clone(), "closed_at < now() - interval '1 year'")
    };
    // The dry run's counts: 1,000 match, 20 held (10 by invoices, 10 through a cascade
    // into lines that refunds refuses).
    let counts = db.query_column(&format!(
        "SELECT m || ' ' || h FROM ({}) c(m, h)",
        target.count_sql()
    ));
    assert_eq!(counts[0].as_deref(), Some("1000 20"));
    let outcome = runtime.block_on(async {
        let mut sizer = BatchSizer::new(Duration::from_millis(200), 300);
        purge(&session, &target, &mut sizer, &|| false)
            .await
            .unwrap()
    });
    assert_eq!(outcome.deleted, 980, "{outcome:?}");
    let one = |sql: &str| db.query_column(sql)[0].clone().unwrap();
    assert_eq!(one("SELECT count(*) FROM orders"), "20");
    assert_eq!(
        one("SELECT count(*) || ' ' || sum(id) FROM orders_archive"),
        "980 490490"
    );
    assert_eq!(one("SELECT count(*) FROM lines"), "20");
}

#[test]
fn rows_moved_as_json_are_exactly_the_rows_deleted() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz NOT NULL, note text, doc jsonb);
         INSERT INTO audit SELECT g, timestamptz '2026-01-01' - g * interval '1 hour', 'n''' || g, jsonb_build_object('g', g)
           FROM generate_series(1, 1000) g;
         CREATE TABLE staged (id bigserial, label text NOT NULL, row_json text NOT NULL);",
    );
    let expected = db.query_column(
        "SELECT row_to_json(a)::text FROM audit a WHERE at < timestamptz '2026-01-01' - interval '100 hours' ORDER BY 1",
    );
    let old = PurgeTarget {
        archive_to: Some(tend_lifecycle::MoveTo::JsonRows {
            table: QualifiedName::new("public", "staged"),
            label: "old-audit".to_string(),
        }),
        ..target(
            "audit",
            "at < timestamptz '2026-01-01' - interval '100 hours'",
        )
    };
    let outcome = runtime().block_on(async {
        let session = tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap();
        let mut sizer = BatchSizer::new(Duration::from_millis(200), 100);
        purge(&session, &old, &mut sizer, &|| false).await.unwrap()
    });
    assert_eq!(outcome.deleted, expected.len() as u64);
    assert!(outcome.batches > 5, "{outcome:?}");
    let staged = db.query_column("SELECT row_json FROM staged ORDER BY 1");
    assert_eq!(staged, expected);
    let labels = db.query_column("SELECT DISTINCT label FROM staged");
    assert_eq!(labels, vec![Some("old-audit".to_string())]);
    assert_eq!(
        db.query_column("SELECT count(*)::text FROM audit")[0].as_deref(),
        Some("100")
    );
}
