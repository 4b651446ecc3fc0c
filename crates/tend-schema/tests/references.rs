//! Foreign keys as introspection types them, read from a real server: the referenced side,
//! the actions, `MATCH`, deferral and validation, and the walk of a table's references in
//! both directions.

use tend_schema::diff::DiffOptions;
use tend_schema::model::{ForeignKey, MatchType, QualifiedName, ReferentialAction};
use tend_schema::{Model, diff, introspect};
use tend_testkit::TestDb;

const SCHEMA: &str = "
CREATE SCHEMA billing;
CREATE TABLE public.accounts (
    id int PRIMARY KEY,
    region text NOT NULL,
    code int NOT NULL,
    parent_id int,
    UNIQUE (region, code),
    CONSTRAINT accounts_parent FOREIGN KEY (parent_id) REFERENCES public.accounts (id) ON DELETE SET NULL
);
CREATE TABLE billing.invoices (
    id int PRIMARY KEY,
    account_id int,
    region text,
    code int,
    tenant_id int,
    CONSTRAINT invoices_account FOREIGN KEY (account_id) REFERENCES public.accounts (id)
        ON DELETE CASCADE ON UPDATE RESTRICT DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT invoices_region FOREIGN KEY (code, region) REFERENCES public.accounts (code, region)
        MATCH FULL ON UPDATE CASCADE
);
INSERT INTO billing.invoices (id, tenant_id) VALUES (1, 42);
SET CONSTRAINTS ALL IMMEDIATE;
ALTER TABLE billing.invoices ADD CONSTRAINT invoices_tenant FOREIGN KEY (tenant_id)
    REFERENCES public.accounts (id) ON DELETE SET DEFAULT NOT VALID;
CREATE TABLE billing.lines (
    invoice_id int REFERENCES billing.invoices (id),
    region text,
    code int,
    CONSTRAINT lines_account FOREIGN KEY (region, code) REFERENCES public.accounts (region, code)
        ON DELETE SET NULL (code)
);
";

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

fn foreign_key<'a>(model: &'a Model, table: &QualifiedName, name: &str) -> &'a ForeignKey {
    model.tables[table].constraints[name]
        .foreign_key
        .as_ref()
        .unwrap_or_else(|| panic!("{name} is a foreign key"))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn foreign_keys_are_read_with_their_columns_actions_match_and_deferral() {
    let db = TestDb::create();
    db.execute(SCHEMA);
    let model = model_of(&db);
    let accounts = QualifiedName::new("public", "accounts");
    let invoices = QualifiedName::new("billing", "invoices");
    let lines = QualifiedName::new("billing", "lines");

    let parent = foreign_key(&model, &accounts, "accounts_parent");
    assert_eq!(parent.referenced_table, accounts, "a self-reference");
    assert_eq!(parent.referenced_columns, strings(&["id"]));
    assert_eq!(
        parent.on_delete,
        ReferentialAction::SetNull { columns: None }
    );
    assert_eq!(parent.on_update, ReferentialAction::NoAction);
    assert_eq!(parent.match_type, MatchType::Simple);
    assert!(!parent.deferrable && !parent.initially_deferred);

    let account = foreign_key(&model, &invoices, "invoices_account");
    assert_eq!(account.referenced_table, accounts, "across schemas");
    assert_eq!(account.on_delete, ReferentialAction::Cascade);
    assert_eq!(account.on_update, ReferentialAction::Restrict);
    assert!(account.deferrable && account.initially_deferred);

    let region = &model.tables[&invoices].constraints["invoices_region"];
    assert_eq!(region.columns, strings(&["code", "region"]));
    let region = region.foreign_key.as_ref().unwrap();
    assert_eq!(region.referenced_columns, strings(&["code", "region"]));
    assert_eq!(region.match_type, MatchType::Full);
    assert_eq!(region.on_update, ReferentialAction::Cascade);

    let tenant = &model.tables[&invoices].constraints["invoices_tenant"];
    assert!(!tenant.validated, "added NOT VALID over a row it rejects");
    assert_eq!(
        tenant.foreign_key.as_ref().unwrap().on_delete,
        ReferentialAction::SetDefault { columns: None }
    );

    let line = foreign_key(&model, &lines, "lines_account");
    assert_eq!(
        line.on_delete,
        ReferentialAction::SetNull {
            columns: Some(strings(&["code"]))
        },
        "ON DELETE SET NULL (code) keeps its column list"
    );

    let primary = &model.tables[&accounts].constraints["accounts_pkey"];
    assert!(primary.foreign_key.is_none() && primary.references().is_none());

    // Typing the foreign keys changes nothing the diff compares.
    assert!(diff(&model, &model, &DiffOptions::default()).is_empty());
}

#[test]
fn references_list_a_tables_incoming_and_outgoing_foreign_keys() {
    let db = TestDb::create();
    db.execute(SCHEMA);
    let model = model_of(&db);
    let accounts = QualifiedName::new("public", "accounts");
    let invoices = QualifiedName::new("billing", "invoices");

    let incoming: Vec<(String, &str)> = model
        .references_to(&accounts)
        .map(|r| (r.table.to_string(), r.constraint.name.as_str()))
        .collect();
    assert_eq!(
        incoming,
        vec![
            ("billing.invoices".to_string(), "invoices_account"),
            ("billing.invoices".to_string(), "invoices_region"),
            ("billing.invoices".to_string(), "invoices_tenant"),
            ("billing.lines".to_string(), "lines_account"),
            ("public.accounts".to_string(), "accounts_parent"),
        ]
    );

    let outgoing: Vec<(&str, String, Vec<String>)> = model
        .references_from(&invoices)
        .map(|r| {
            (
                r.constraint.name.as_str(),
                r.foreign_key.referenced_table.to_string(),
                r.columns().to_vec(),
            )
        })
        .collect();
    assert_eq!(
        outgoing,
        vec![
            (
                "invoices_account",
                "public.accounts".to_string(),
                strings(&["account_id"])
            ),
            (
                "invoices_region",
                "public.accounts".to_string(),
                strings(&["code", "region"])
            ),
            (
                "invoices_tenant",
                "public.accounts".to_string(),
                strings(&["tenant_id"])
            ),
        ]
    );
    let into_invoices: Vec<&str> = model
        .references_to(&invoices)
        .map(|r| r.constraint.name.as_str())
        .collect();
    assert_eq!(into_invoices, vec!["lines_invoice_id_fkey"]);
    assert_eq!(model.references().count(), 6);
}

/// A foreign key to a table tend does not read (here in its own `tend` schema) still names
/// the referenced columns, in key order.
#[test]
fn a_key_to_a_table_outside_the_model_names_its_columns() {
    let db = TestDb::create();
    db.execute(
        "CREATE SCHEMA tend;
         CREATE TABLE tend.outside (a int, gone int, b int, UNIQUE (b, a));
         ALTER TABLE tend.outside DROP COLUMN gone;
         CREATE TABLE public.uses_outside (x int, y int,
             CONSTRAINT uses_outside_key FOREIGN KEY (y, x) REFERENCES tend.outside (b, a));
         CREATE TABLE public.also_outside (p int, q int,
             CONSTRAINT also_outside_key FOREIGN KEY (p, q) REFERENCES tend.outside (b, a));",
    );
    let model = model_of(&db);
    assert!(
        !model
            .tables
            .contains_key(&QualifiedName::new("tend", "outside"))
    );
    let key = foreign_key(
        &model,
        &QualifiedName::new("public", "uses_outside"),
        "uses_outside_key",
    );
    assert_eq!(key.referenced_table, QualifiedName::new("tend", "outside"));
    assert_eq!(key.referenced_columns, ["b", "a"]);
    let table = &model.tables[&QualifiedName::new("public", "uses_outside")];
    assert_eq!(table.constraints["uses_outside_key"].columns, ["y", "x"]);
    let key = foreign_key(
        &model,
        &QualifiedName::new("public", "also_outside"),
        "also_outside_key",
    );
    assert_eq!(key.referenced_columns, ["b", "a"]);
}
