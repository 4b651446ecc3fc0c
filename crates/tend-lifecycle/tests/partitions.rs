//! Retention by partition against a real server: only partitions whose whole range is past
//! the cutoff are listed (never DEFAULT, never one ending at MAXVALUE; a sub-partitioned
//! one whole), their rows counted when nothing has analyzed them and estimated once
//! something has; a drop that meets a lock tries again and then names who holds it; a
//! partition someone's interrupted `DETACH ... CONCURRENTLY` left pending is finished and
//! dropped.

use std::time::Duration;

use tend_lifecycle::{
    DropOptions, DropOutcome, ExpiredPartition, PartitionError, PartitionRetention, ReferenceGraph,
};
use tend_schema::model::QualifiedName;
use tend_testkit::{Holder, TestDb};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `table`'s rule: partitions wholly older than a day, keyed by `key_type`.
fn retention(table: &str, key_type: &str) -> PartitionRetention {
    PartitionRetention::new(
        &ReferenceGraph::default(),
        QualifiedName::new("public", table),
        key_type,
        Duration::from_secs(86400),
    )
}

fn names(partitions: &[ExpiredPartition]) -> Vec<String> {
    partitions.iter().map(|p| p.name.name.clone()).collect()
}

async fn drop_all(
    session: &tokio_postgres::Client,
    retention: &PartitionRetention,
    partitions: &[ExpiredPartition],
    options: &DropOptions,
) -> Result<DropOutcome, PartitionError> {
    tend_lifecycle::drop_partitions(session, retention, partitions, options, &|| false, &|_| {})
        .await
}

#[test]
fn only_partitions_wholly_past_the_cutoff_are_listed_and_dropped() {
    let db = TestDb::create();
    // Autovacuum off on every leaf: nothing analyzes them behind the test's back.
    db.execute(
        "CREATE TABLE readings (at date NOT NULL, value int) PARTITION BY RANGE (at);
         CREATE TABLE readings_ancient PARTITION OF readings FOR VALUES FROM (MINVALUE) TO ('2000-01-01')
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_2000 PARTITION OF readings FOR VALUES FROM ('2000-01-01') TO ('2001-01-01')
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_2001 PARTITION OF readings FOR VALUES FROM ('2001-01-01') TO ('2002-01-01')
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_2002 PARTITION OF readings FOR VALUES FROM ('2002-01-01') TO ('2003-01-01')
           PARTITION BY RANGE (at);
         CREATE TABLE readings_2002_h1 PARTITION OF readings_2002 FOR VALUES FROM ('2002-01-01') TO ('2002-07-01')
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_2002_h2 PARTITION OF readings_2002 FOR VALUES FROM ('2002-07-01') TO ('2003-01-01')
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_recent PARTITION OF readings FOR VALUES FROM ('2003-01-01') TO (current_date)
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_open PARTITION OF readings FOR VALUES FROM (current_date) TO (MAXVALUE)
           WITH (autovacuum_enabled = off);
         CREATE TABLE readings_default PARTITION OF readings DEFAULT WITH (autovacuum_enabled = off);
         INSERT INTO readings SELECT date '1999-07-01' + g, g FROM generate_series(0, 1460) g;
         INSERT INTO readings SELECT current_date - 30 + g, g FROM generate_series(0, 60) g;",
    );
    let count = |table: &str| -> u64 {
        db.query_column(&format!("SELECT count(*) FROM {table}"))[0]
            .clone()
            .unwrap()
            .parse()
            .unwrap()
    };
    let rule = retention("readings", "date");
    let runtime = runtime();
    let session = runtime.block_on(async {
        tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap()
    });
    // readings_recent ends today: its last day is not a day old yet. The open one and the
    // default one have no upper bound to pass.
    let expired = runtime.block_on(rule.expired(&session)).unwrap();
    assert_eq!(
        names(&expired),
        [
            "readings_ancient",
            "readings_2000",
            "readings_2001",
            "readings_2002"
        ]
    );
    for partition in &expired {
        assert!(!partition.rows_estimated, "never analyzed: {partition:?}");
        assert_eq!(
            partition.rows,
            count(&partition.name.sql()),
            "{partition:?}"
        );
        assert!(partition.overdue_seconds.unwrap() > 0.0, "{partition:?}");
        assert!(!partition.held(), "{partition:?}");
    }
    assert!(expired[3].partitioned);
    assert!(expired[0].bound.contains("MINVALUE"), "{:?}", expired[0]);
    // Oldest first: the one that ended first has waited longest.
    assert!(expired[0].overdue_seconds > expired[1].overdue_seconds);

    // Analyzed, the rows are the statistics' (exact for tables this small).
    db.execute("ANALYZE readings");
    let analyzed = runtime.block_on(rule.expired(&session)).unwrap();
    for (partition, before) in analyzed.iter().zip(&expired) {
        assert!(partition.rows_estimated, "{partition:?}");
        assert_eq!(partition.rows, before.rows, "{partition:?}");
    }

    let total = count("readings");
    let outcome = runtime
        .block_on(drop_all(
            &session,
            &rule,
            &analyzed,
            &DropOptions::new(Duration::from_millis(200)),
        ))
        .unwrap();
    assert_eq!(names(&outcome.dropped), names(&expired));
    assert!(outcome.kept.is_empty(), "{outcome:?}");
    let dropped_rows: u64 = expired.iter().map(|p| p.rows).sum();
    assert_eq!(outcome.rows(), dropped_rows);
    assert_eq!(count("readings"), total - dropped_rows);
    // The sub-partitions went with their parent; the rest is as it was.
    assert_eq!(
        db.query_column(
            "SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class
              WHERE relname LIKE 'readings%' AND relkind IN ('r', 'p')"
        )[0]
        .as_deref(),
        Some("readings readings_default readings_open readings_recent")
    );
    // Nothing is left to drop; the plan's list, dropped again, finds them gone.
    assert!(runtime.block_on(rule.expired(&session)).unwrap().is_empty());
    let again = runtime
        .block_on(drop_all(
            &session,
            &rule,
            &analyzed,
            &DropOptions::new(Duration::from_millis(200)),
        ))
        .unwrap();
    assert!(again.dropped.is_empty(), "{again:?}");
    assert_eq!(again.vanished, 4);
}

#[test]
fn a_drop_that_meets_a_lock_tries_again_then_names_who_holds_it() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE logs (at timestamptz NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE logs_old PARTITION OF logs FOR VALUES FROM ('2001-01-01') TO ('2001-02-01');
         INSERT INTO logs VALUES ('2001-01-15');",
    );
    let rule = retention("logs", "timestamp with time zone");
    let holder = Holder::open(&db, "report-job");
    let holder_pid = holder.pid();
    holder.execute("BEGIN; SELECT count(*) FROM logs");
    let runtime = runtime();
    let session = runtime.block_on(async {
        tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap()
    });
    let expired = runtime.block_on(rule.expired(&session)).unwrap();
    assert_eq!(names(&expired), ["logs_old"]);
    let options = DropOptions {
        lock_timeout: Duration::from_millis(50),
        tries: 3,
        pause: Duration::from_millis(10),
    };
    let err = runtime
        .block_on(drop_all(&session, &rule, &expired, &options))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, PartitionError::Locked { times: 3, .. }),
        "{text}"
    );
    assert!(
        text.contains("public.logs_old")
            && text.contains(&format!("pid {holder_pid}"))
            && text.contains("report-job"),
        "{text}"
    );
    assert_eq!(
        db.query_column("SELECT count(*) FROM logs")[0].as_deref(),
        Some("1")
    );
    // Once the other transaction ends, the same list drops it.
    holder.execute("COMMIT");
    let outcome = runtime
        .block_on(drop_all(&session, &rule, &expired, &options))
        .unwrap();
    assert_eq!(names(&outcome.dropped), ["logs_old"]);
}

#[test]
fn a_partition_an_interrupted_concurrent_detach_left_pending_is_finished_and_dropped() {
    let db = TestDb::create();
    db.execute(
        "CREATE TABLE visits (at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE visits_2001 PARTITION OF visits FOR VALUES FROM ('2001-01-01') TO ('2002-01-01');
         CREATE TABLE visits_now PARTITION OF visits FOR VALUES FROM ('2002-01-01') TO (MAXVALUE);
         INSERT INTO visits VALUES ('2001-05-01'), ('2020-05-01');",
    );
    // A snapshot older than the detach keeps it waiting in its second transaction; cancelled
    // there, it leaves the partition "detach pending".
    let reader = Holder::open(&db, "reader");
    reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM visits");
    let detacher = Holder::open(&db, "detacher");
    let pid = detacher.pid();
    detacher.start("ALTER TABLE visits DETACH PARTITION visits_2001 CONCURRENTLY");
    let pending = || {
        db.query_column(
            "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'visits_2001'::regclass",
        )[0]
        .as_deref()
            == Some("t")
    };
    let started = std::time::Instant::now();
    while !pending() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the detach never began"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    db.execute(&format!("SELECT pg_cancel_backend({pid})"));
    reader.execute("COMMIT");
    assert!(pending(), "still pending after the cancel");

    let rule = retention("visits", "date");
    let runtime = runtime();
    let session = runtime.block_on(async {
        tend_pg::connect(&db.info, &Default::default())
            .await
            .unwrap()
    });
    let expired = runtime.block_on(rule.expired(&session)).unwrap();
    assert_eq!(names(&expired), ["visits_2001"]);
    let outcome = runtime
        .block_on(drop_all(
            &session,
            &rule,
            &expired,
            &DropOptions::new(Duration::from_millis(200)),
        ))
        .unwrap();
    assert_eq!(names(&outcome.dropped), ["visits_2001"]);
    assert_eq!(
        db.query_column("SELECT count(*) FROM pg_class WHERE relname = 'visits_2001'")[0]
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        db.query_column("SELECT count(*) FROM visits")[0].as_deref(),
        Some("1")
    );
}
