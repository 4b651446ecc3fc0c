//! The diff from one [`Model`] to another: ordered DDL steps, each tagged with its hazards.
//!
//! The order is what PostgreSQL's dependencies require, in phases:
//! 1. dependents of what changes are dropped first: views over changed tables, triggers,
//!    policies, foreign keys, constraints and indexes that go or change;
//! 2. what the tables need is created: schemas, extensions, types (enum values are added in
//!    place), sequences and functions;
//! 3. tables are created, altered (columns added, retyped with `USING` or recreated at the
//!    end when a migration's drop and add moved them, defaults, `NOT NULL` through a
//!    validated check, identity) and dropped;
//! 4. constraints are added (on existing tables `NOT VALID`, then validated), keys first and
//!    foreign keys last; indexes on existing tables are built `CONCURRENTLY`, each a step
//!    outside any transaction;
//! 5. views, triggers, policies, row level security and comments follow, then `REVOKE`
//!    and `GRANT` on every object, then `ALTER DEFAULT PRIVILEGES`;
//! 6. what nothing uses any more is dropped last: functions, types, sequences, extensions
//!    and schemas.
//!
//! Renames cannot be told from a drop and an add: they come out as such, with a warning,
//! unless a [`Rename`] hint says otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use tend_pg::quote_literal;

use crate::ddl;
use crate::drift::ObjectDrift;
use crate::model::*;
use crate::pairs::both;

mod analysis;
mod columns;
mod constraints;
mod functions;
mod indexes;
mod members;
mod object;
mod order;
mod plan;
mod privileges;
mod renames;
mod tables;
mod triggers;
mod types;
mod views;

use analysis::*;
pub(crate) use columns::mentions_column;
use constraints::*;
use indexes::*;
use members::Members;
pub use object::ObjectId;
use order::*;
pub use plan::{Change, DiffOptions, Hazard, Plan, Rename, Step, group_by_object};
use plan::{function_target, type_target};
pub(crate) use privileges::default_privileges_walk;
use renames::*;
use types::*;
use views::*;

/// The ordered steps that turn a database at `from` into one at `to`.
pub fn diff(from: &Model, to: &Model, options: &DiffOptions) -> Plan {
    let mut diff = Differ {
        to,
        options,
        plan: Plan::default(),
        disowned_sequences: BTreeSet::new(),
        recreated_columns: Members::default(),
        recreated_types: BTreeSet::new(),
        recreated_functions: BTreeSet::new(),
        renamed: Vec::new(),
        analysis: Analysis::default(),
    };
    // Rename hints rewrite a copy of the from side; without any (the usual case) the model
    // is read as it is: cloning 20,000 tables took a tenth of the diff's time.
    let renamed_from;
    let from = if options.renames.is_empty() {
        from
    } else {
        let mut copy = from.clone();
        diff.renames(&mut copy);
        renamed_from = copy;
        &renamed_from
    };
    diff.analysis = Analysis::of(from, to);
    diff.session(from);
    diff.drop_dependents(from);
    diff.schemas_and_extensions(from);
    diff.types(from);
    diff.sequences(from);
    diff.functions(from, false);
    diff.tables(from);
    diff.functions(from, true);
    diff.constraints(from, false);
    diff.indexes(from);
    diff.constraints(from, true);
    diff.sequence_owners(from);
    diff.views(from);
    diff.triggers(from);
    diff.policies(from);
    diff.privileges(from);
    diff.drop_unused(from);
    diff.plan.objects = crate::drift::objects(from, to, &diff.renamed);
    diff.plan
}

struct Differ<'a> {
    to: &'a Model,
    options: &'a DiffOptions,
    plan: Plan,
    /// Sequences released (`OWNED BY NONE`) before the table or column that owned them is
    /// dropped, because they outlive it (a renamed table's `serial`).
    disowned_sequences: BTreeSet<QualifiedName>,
    /// Columns dropped and added again (moved, or generated ones): their privileges start
    /// over.
    recreated_columns: Members,
    /// Types dropped and created again (not the enum swaps, which have their own set).
    recreated_types: BTreeSet<QualifiedName>,
    /// Functions dropped and created again (their result changes).
    recreated_functions: BTreeSet<FunctionKey>,
    /// The rename hints applied (`from` carries the new names).
    renamed: Vec<Rename>,
    /// What changes, found before any step is written.
    analysis: Analysis,
}

impl Differ<'_> {
    /// `column` of `table`, its `NOT NULL` constraint named where the server's default name
    /// is taken in the schema.
    fn naming_not_null(&self, table: &QualifiedName, column: &Column) -> Column {
        let mut column = column.clone();
        if (column.not_null || column.not_null_not_valid) && column.not_null_constraint.is_none() {
            let name = ddl::not_null_constraint(table, &column);
            if self
                .analysis
                .taken_constraint_names
                .contains(&(table.schema.clone(), name.clone()))
            {
                column.not_null_constraint = Some(name);
            }
        }
        column
    }

    fn push(&mut self, object: ObjectId, change: Change, sql: String) -> &mut Step {
        self.plan.steps.push(Step {
            object,
            change,
            sql,
            transactional: true,
            hazards: Vec::new(),
            derived: false,
        });
        self.plan.steps.last_mut().expect("just pushed")
    }

    fn warn(&mut self, warning: String) {
        self.plan.warnings.push(warning);
    }

    // ---- renames -------------------------------------------------------------------------

    fn session(&mut self, from: &Model) {
        let functions_change = self
            .to
            .functions
            .iter()
            .any(|(key, f)| from.functions.get(key) != Some(f));
        if functions_change {
            self.push(
                ObjectId::Session,
                Change::Alter,
                "SET check_function_bodies = false".to_string(),
            );
        }
    }

    // ---- phase 1: dependents of what changes ------------------------------------------

    fn drop_dependents(&mut self, from: &Model) {
        self.drop_views(from);
        self.drop_triggers_and_policies(from);
        self.drop_constraints(from);
        self.drop_indexes(from);
    }

    // ---- phase 2: what tables need ---------------------------------------------------

    // ---- phase 3: tables ----------------------------------------------------------------

    // ---- phase 4: constraints and indexes -----------------------------------------------

    // ---- phase 5: views, triggers, policies -------------------------------------------

    // ---- phase 6: what nothing uses any more -------------------------------------------

    fn comment(&mut self, object: ObjectId, target: String, comment: Option<&str>) {
        self.push(object, Change::Alter, ddl::comment_on(&target, comment));
    }
}

#[cfg(test)]
mod tests {
    use super::columns::*;
    use super::functions::*;
    use super::*;

    #[test]
    fn identity_options_change_clause_by_clause() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            identity_changes(&v(&[]), &v(&["START WITH 100", "INCREMENT BY 10"])),
            "SET INCREMENT BY 10 SET START WITH 100"
        );
        assert_eq!(
            identity_changes(
                &v(&["START WITH 50", "INCREMENT BY 5", "CACHE 10", "CYCLE"]),
                &v(&[])
            ),
            "SET INCREMENT BY 1 SET CACHE 1 SET NO CYCLE SET START WITH 1"
        );
        assert_eq!(
            identity_changes(&v(&["MINVALUE 7"]), &v(&[])),
            "SET NO MINVALUE SET START WITH 1"
        );
    }

    #[test]
    fn type_names_match_whole_names_only() {
        assert!(names_type("public.short_text", "public.short_text"));
        assert!(names_type("public.short_text[]", "public.short_text"));
        assert!(names_type(
            "a public.short_text, b integer",
            "public.short_text"
        ));
        assert!(!names_type("public.short_text2", "public.short_text"));
        assert!(!names_type("x.public.short_text", "public.short_text"));
    }

    #[test]
    fn sql_standard_bodies_are_told_from_string_bodies() {
        let header =
            "CREATE OR REPLACE FUNCTION public.f(a integer)\n RETURNS integer\n LANGUAGE sql\n";
        assert!(has_sql_body(&format!(
            "{header}BEGIN ATOMIC\n SELECT a;\nEND"
        )));
        assert!(has_sql_body(&format!("{header} IMMUTABLE\nRETURN (a + 1)")));
        assert!(!has_sql_body(&format!(
            "{header}AS $function$\nRETURN a + 1$function$\n"
        )));
        assert!(!has_sql_body(&format!(
            "{header}AS $function$\nBEGIN ATOMIC\n$function$\n"
        )));
    }

    #[test]
    fn enum_additions_are_in_order_subsets() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(is_in_order_subset(
            &v(&["a", "b"]),
            &v(&["a", "x", "b", "y"])
        ));
        assert!(!is_in_order_subset(&v(&["a", "b"]), &v(&["b", "a"])));
        assert!(!is_in_order_subset(&v(&["a", "b"]), &v(&["a"])));
    }

    #[test]
    fn using_only_across_families() {
        assert!(!needs_using("character varying(10)", "text"));
        assert!(!needs_using("integer", "bigint"));
        assert!(needs_using("text", "integer"));
        assert!(needs_using("text", "jsonb"));
        assert!(!needs_using("numeric(10,2)", "numeric(12,2)"));
    }

    #[test]
    fn renamed_column_names_look_alike() {
        assert!(names_look_alike("price", "price_cents"));
        assert!(names_look_alike("userId", "user_id"));
        assert!(names_look_alike("adress", "address"));
        assert!(!names_look_alike("id", "kind"));
        assert!(!names_look_alike("title", "body"));
    }

    #[test]
    fn widening_without_rewrite() {
        assert!(is_binary_widening(
            "character varying(10)",
            "character varying(20)"
        ));
        assert!(!is_binary_widening(
            "character varying(20)",
            "character varying(10)"
        ));
        assert!(is_binary_widening("character varying(10)", "text"));
        assert!(!is_binary_widening("integer", "bigint"));
    }

    #[test]
    fn rename_hints_parse() {
        assert_eq!(
            Rename::parse("public.users=people").unwrap(),
            Rename::Table {
                from: QualifiedName::new("public", "users"),
                to: QualifiedName::new("public", "people")
            }
        );
        assert_eq!(
            Rename::parse("public.users.name=full_name").unwrap(),
            Rename::Column {
                table: QualifiedName::new("public", "users"),
                from: "name".into(),
                to: "full_name".into()
            }
        );
        assert!(Rename::parse("users").is_err());
    }

    #[test]
    fn a_model_against_itself_is_empty() {
        let mut model = Model::default();
        model.tables.insert(
            QualifiedName::new("public", "t"),
            Table::new(QualifiedName::new("public", "t")),
        );
        assert!(diff(&model, &model, &DiffOptions::default()).is_empty());
    }
}
