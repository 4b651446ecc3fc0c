//! The reference graph of the example SaaS schema (`examples/saas`), introspected from a
//! real server: the purge order, what deleting an agency reaches, and what references a
//! user, as cleanup and GDPR erasure will use them.

use std::collections::BTreeSet;

use tend_lifecycle::{OnDelete, ReferenceGraph};
use tend_schema::model::QualifiedName;
use tend_schema::{Model, introspect};
use tend_testkit::TestDb;

fn model_of(db: &TestDb) -> Model {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let session = tend_pg::connect(&db.info, &Default::default())
                .await
                .unwrap();
            introspect(&session).await.unwrap()
        })
}

fn public(name: &str) -> QualifiedName {
    QualifiedName::new("public", name)
}

#[test]
fn the_example_saas_schema_purges_children_first_and_a_user_reaches_what_references_them() {
    let db = TestDb::create();
    let schema = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/saas/schema/schema.sql"
    ))
    .unwrap();
    db.execute(&schema);
    let graph = ReferenceGraph::of(&model_of(&db));

    // Every foreign key is a link, with its action read from the catalog.
    let link = |child: &str, parent: &str, column: &str| {
        graph
            .links()
            .iter()
            .find(|l| {
                l.child == public(child)
                    && l.parent == public(parent)
                    && l.child_columns == [column]
            })
            .unwrap_or_else(|| panic!("{child}.{column} -> {parent}"))
    };
    assert_eq!(
        link("tasks", "requests", "request_id").on_delete,
        OnDelete::Cascade
    );
    assert_eq!(
        link("tasks", "users", "assignee_id").on_delete,
        OnDelete::SetNull
    );

    // The purge order: every table before what it references. users reference
    // themselves (deleted_by), so they are a group of their own; tasks come before
    // requests, requests before agencies, agencies before users.
    let order = graph.delete_order(graph.tables());
    let position = |table: &str| {
        order
            .iter()
            .position(|group| group.contains(&public(table)))
            .unwrap_or_else(|| panic!("{table} is in the order"))
    };
    for l in graph.links() {
        assert!(
            position(&l.child.name) <= position(&l.parent.name),
            "{} before {}",
            l.child.name,
            l.parent.name
        );
    }
    assert!(position("tasks") < position("requests"));
    assert!(position("requests") < position("agencies"));
    assert!(position("agencies") < position("users"));

    // Deleting an agency cascades to its memberships, requests (and their tasks), usage
    // and invoices, and only nulls the audit log's reference.
    let reach = graph.delete_reaches(&public("agencies"));
    let cascaded: BTreeSet<&str> = reach
        .cascades
        .iter()
        .map(|l| l.child.name.as_str())
        .collect();
    for table in [
        "agency_memberships",
        "requests",
        "tasks",
        "monthly_usage",
        "invoices",
    ] {
        assert!(cascaded.contains(table), "{table}: {cascaded:?}");
    }
    assert!(reach.updates.iter().any(|l| l.child == public("audit_log")));
    assert!(reach.refused_by.is_empty(), "{:?}", reach.refused_by);

    // A user: every table with a column that points at users is reached, directly.
    let reached = graph.reachable_from(&public("users"));
    let direct: BTreeSet<&str> = reached
        .iter()
        .filter(|r| r.path.len() == 1)
        .map(|r| r.table.name.as_str())
        .collect();
    for table in [
        "accounts",
        "sessions",
        "agency_memberships",
        "tasks",
        "requests",
        "audit_log",
        "system_settings",
    ] {
        assert!(direct.contains(table), "{table}: {direct:?}");
    }
    assert_eq!(reached[0].table, public("users"));
    let once: BTreeSet<&QualifiedName> = reached.iter().map(|r| &r.table).collect();
    assert_eq!(once.len(), reached.len(), "each table once");
}
