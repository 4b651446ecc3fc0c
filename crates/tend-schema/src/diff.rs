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

/// What a step may do to a live database, shown before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    /// Deletes data: a dropped table or column, enum values taken away.
    DataLoss,
    /// Rewrites the whole table under an `ACCESS EXCLUSIVE` lock.
    TableRewrite,
    /// Holds a lock that blocks writes (or reads) for as long as a scan or build takes.
    LongLock,
    /// May fail on the data that is there (a `NOT NULL` column without a default, a cast).
    MayFail,
}

impl Hazard {
    pub fn describe(self) -> &'static str {
        match self {
            Hazard::DataLoss => "data loss",
            Hazard::TableRewrite => "table rewrite (ACCESS EXCLUSIVE lock while it runs)",
            Hazard::LongLock => "long lock (blocks writes while it scans or builds)",
            Hazard::MayFail => "may fail on existing rows",
        }
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How a step changes its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Create,
    Alter,
    Drop,
}

/// One statement of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What it touches, for people: `column public.users.email`.
    pub object: String,
    pub change: Change,
    /// One statement, without the final semicolon.
    pub sql: String,
    /// False for statements that cannot run in a transaction block
    /// (`CREATE INDEX CONCURRENTLY`, `ALTER TYPE ... ADD VALUE` before its use).
    pub transactional: bool,
    pub hazards: Vec<Hazard>,
    /// Done only because of another change (a view recreated over a retyped column):
    /// the object itself does not differ.
    pub derived: bool,
}

/// The ordered steps from one model to another, and what the user should know.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
    /// What differs, each object once with its old and new values ([`crate::drift`]).
    pub objects: Vec<ObjectDrift>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The objects that differ (not those only rebuilt because of another change), each
    /// once, with how it changes; [`Plan::objects`] has the old and new values.
    pub fn changed_objects(&self) -> Vec<(&str, Change)> {
        self.objects
            .iter()
            .map(|o| (o.object.as_str(), o.change))
            .collect()
    }

    /// A script `psql -f` runs as it is: each step preceded by comments naming its object
    /// and hazards.
    pub fn to_sql(&self, with_comments: bool) -> String {
        let mut out = String::new();
        for warning in &self.warnings {
            out.push_str(&format!("-- warning: {warning}\n"));
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        for step in &self.steps {
            if with_comments && step.object != SESSION {
                let change = match step.change {
                    Change::Create => "create",
                    Change::Alter => "alter",
                    Change::Drop => "drop",
                };
                let mut line = format!("-- {}: {change}", step.object);
                if !step.transactional {
                    line.push_str(" (outside a transaction)");
                }
                out.push_str(&line);
                out.push('\n');
                for hazard in &step.hazards {
                    out.push_str(&format!("-- hazard: {hazard}\n"));
                }
            }
            out.push_str(&step.sql);
            out.push_str(";\n");
            if with_comments {
                out.push('\n');
            }
        }
        out
    }
}

/// A hint that an object was renamed, so the diff renames instead of dropping and adding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    Table {
        from: QualifiedName,
        to: QualifiedName,
    },
    Column {
        table: QualifiedName,
        from: String,
        to: String,
    },
}

impl Rename {
    /// `schema.table=new_table` (or `=schema.new_table`), or `schema.table.column=new_column`.
    pub fn parse(text: &str) -> Result<Rename, String> {
        let (left, right) = text.split_once('=').ok_or_else(|| {
            format!("rename hint {text:?} has no `=`: write OLD=NEW, e.g. public.users=people or public.users.name=full_name")
        })?;
        let old = split_dotted(left.trim());
        let new = split_dotted(right.trim());
        match (old.as_slice(), new.as_slice()) {
            ([schema, table, column], [to]) => Ok(Rename::Column {
                table: QualifiedName::new(schema.clone(), table.clone()),
                from: column.clone(),
                to: to.clone(),
            }),
            ([schema, table], [to]) => Ok(Rename::Table {
                from: QualifiedName::new(schema.clone(), table.clone()),
                to: QualifiedName::new(schema.clone(), to.clone()),
            }),
            ([schema, table], [to_schema, to]) => Ok(Rename::Table {
                from: QualifiedName::new(schema.clone(), table.clone()),
                to: QualifiedName::new(to_schema.clone(), to.clone()),
            }),
            _ => Err(format!(
                "rename hint {text:?} is not SCHEMA.TABLE=NEW_TABLE or SCHEMA.TABLE.COLUMN=NEW_COLUMN"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub renames: Vec<Rename>,
    /// Build indexes on existing tables `CONCURRENTLY` (outside a transaction).
    pub concurrently: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            renames: Vec::new(),
            concurrently: true,
        }
    }
}

/// How a retyped column's values are converted, and what that may do to them.
#[derive(Default)]
struct Cast {
    /// The `USING` expression, where the assignment cast is not the one to use.
    using: Option<String>,
    hazards: Vec<Hazard>,
    /// What the user should know: values lost, or read in a way they may not expect.
    warning: Option<String>,
}

/// The object of the `SET` statements a plan starts with.
const SESSION: &str = "session";

/// The ordered steps that turn a database at `from` into one at `to`.
pub fn diff(from: &Model, to: &Model, options: &DiffOptions) -> Plan {
    let mut from = from.clone();
    let mut diff = Differ {
        to,
        options,
        plan: Plan::default(),
        retyped: HashSet::new(),
        recreated_views: BTreeSet::new(),
        recreated_enums: BTreeSet::new(),
        constraints_to_readd: BTreeSet::new(),
        indexes_to_rebuild: BTreeSet::new(),
        disowned_sequences: BTreeSet::new(),
        replaced_by_identity: BTreeMap::new(),
        policies_to_readd: BTreeSet::new(),
        triggers_to_readd: BTreeSet::new(),
        moved: HashSet::new(),
        recreated_columns: HashSet::new(),
        recreated_types: BTreeSet::new(),
        recreated_functions: BTreeSet::new(),
        renamed: Vec::new(),
        taken_constraint_names: HashSet::new(),
    };
    diff.renames(&mut from);
    let from = &from;
    diff.taken_constraint_names = taken_constraint_names(from);
    diff.analyse(from);
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
    /// Columns whose type changes: views, policies and triggers over them are rebuilt.
    retyped: HashSet<(QualifiedName, String)>,
    /// Views dropped and created again (changed, or over something that changes).
    recreated_views: BTreeSet<QualifiedName>,
    /// Enums whose values are taken away or reordered: built anew and swapped in.
    recreated_enums: BTreeSet<QualifiedName>,
    /// Unchanged constraints (table, name) dropped and added again: foreign keys whose key
    /// is rebuilt, and checks that name an enum being swapped.
    constraints_to_readd: BTreeSet<(QualifiedName, String)>,
    /// Unchanged indexes (table, name) dropped and built again because they name an enum
    /// being swapped (a predicate `status = 'x'::enum` cannot follow the column's new type).
    indexes_to_rebuild: BTreeSet<(QualifiedName, String)>,
    /// Sequences released (`OWNED BY NONE`) before the table or column that owned them is
    /// dropped, because they outlive it (a renamed table's `serial`).
    disowned_sequences: BTreeSet<QualifiedName>,
    /// Sequences of a column that becomes an identity (`serial` to identity), dropped just
    /// before, so the identity's own sequence gets their name as the original did.
    replaced_by_identity: BTreeMap<(QualifiedName, String), Vec<QualifiedName>>,
    policies_to_readd: BTreeSet<QualifiedName>,
    triggers_to_readd: BTreeSet<QualifiedName>,
    /// Retyped columns recreated at the end of their table (copied through a temporary
    /// column), so the column order matches a migration that dropped and added them.
    moved: HashSet<(QualifiedName, String)>,
    /// Columns dropped and added again (moved, or generated ones): their privileges start
    /// over.
    recreated_columns: HashSet<(QualifiedName, String)>,
    /// Types dropped and created again (not the enum swaps, which have their own set).
    recreated_types: BTreeSet<QualifiedName>,
    /// Functions dropped and created again (their result changes).
    recreated_functions: BTreeSet<FunctionKey>,
    /// The rename hints applied (`from` carries the new names).
    renamed: Vec<Rename>,
    /// Constraint names (schema, name) the from side holds, where the server names `NOT
    /// NULL` constraints (PostgreSQL 18): a new one whose default name is taken would be
    /// numbered (`..._not_null1`), so the plan names it.
    taken_constraint_names: HashSet<(String, String)>,
}

impl Differ<'_> {
    /// `column` of `table`, its `NOT NULL` constraint named where the server's default name
    /// is taken in the schema.
    fn naming_not_null(&self, table: &QualifiedName, column: &Column) -> Column {
        let mut column = column.clone();
        if (column.not_null || column.not_null_not_valid) && column.not_null_constraint.is_none() {
            let name = ddl::not_null_constraint(table, &column);
            if self
                .taken_constraint_names
                .contains(&(table.schema.clone(), name.clone()))
            {
                column.not_null_constraint = Some(name);
            }
        }
        column
    }

    fn push(&mut self, object: impl Into<String>, change: Change, sql: String) -> &mut Step {
        self.plan.steps.push(Step {
            object: object.into(),
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

    fn renames(&mut self, from: &mut Model) {
        for rename in &self.options.renames {
            match rename {
                Rename::Table { from: old, to: new } => {
                    if !from.tables.contains_key(old) || from.tables.contains_key(new) {
                        self.warn(format!(
                            "rename hint {old} -> {new} ignored: {old} is not a table on the from side, or {new} already is"
                        ));
                        continue;
                    }
                    if !self.to.tables.contains_key(new) || self.to.tables.contains_key(old) {
                        self.warn(format!(
                            "rename hint {old} -> {new} ignored: {new} is not a table on the to side, or {old} still is"
                        ));
                        continue;
                    }
                    let mut sql = String::new();
                    if old.schema != new.schema {
                        sql.push_str(&format!(
                            "ALTER TABLE {} SET SCHEMA {}",
                            old.sql(),
                            ident(&new.schema)
                        ));
                        if old.name != new.name {
                            sql.push_str(&format!(
                                ";\nALTER TABLE {} RENAME TO {}",
                                QualifiedName::new(new.schema.clone(), old.name.clone()).sql(),
                                ident(&new.name)
                            ));
                        }
                    } else {
                        sql.push_str(&format!(
                            "ALTER TABLE {} RENAME TO {}",
                            old.sql(),
                            ident(&new.name)
                        ));
                    }
                    self.push(format!("table {old}"), Change::Alter, sql);
                    rename_table(from, old, new);
                    self.renamed.push(rename.clone());
                }
                Rename::Column {
                    table,
                    from: old,
                    to: new,
                } => {
                    let Some(t) = from.tables.get_mut(table) else {
                        self.warn(format!(
                            "rename hint {table}.{old} -> {new} ignored: no table {table} on the from side"
                        ));
                        continue;
                    };
                    if t.column(new).is_some() || t.column(old).is_none() {
                        self.warn(format!(
                            "rename hint {table}.{old} -> {new} ignored: {old} is not a column of {table}, or {new} already is"
                        ));
                        continue;
                    }
                    let target = self.to.tables.get(table);
                    if target.is_none_or(|t| t.column(new).is_none() || t.column(old).is_some()) {
                        self.warn(format!(
                            "rename hint {table}.{old} -> {new} ignored: on the to side, {table} has no column {new}, or still has {old}"
                        ));
                        continue;
                    }
                    let named = from.named_not_nulls;
                    for column in &mut t.columns {
                        if column.name == *old {
                            column.name = new.clone();
                            if named {
                                keep_not_null_name(column, &table.name, old, &table.name);
                            }
                        }
                    }
                    for constraint in t.constraints.values_mut() {
                        for column in &mut constraint.columns {
                            if column == old {
                                *column = new.clone();
                            }
                        }
                    }
                    for sequence in from.sequences.values_mut() {
                        if let Some((owner, column)) = &mut sequence.owned_by
                            && owner == table
                            && column == old
                        {
                            *column = new.clone();
                        }
                    }
                    self.renamed.push(rename.clone());
                    self.push(
                        format!("column {table}.{old}"),
                        Change::Alter,
                        format!(
                            "ALTER TABLE {} RENAME COLUMN {} TO {}",
                            table.sql(),
                            ident(old),
                            ident(new)
                        ),
                    );
                }
            }
        }
    }

    // ---- what changes, before anything is written -------------------------------------

    fn analyse(&mut self, from: &Model) {
        let to = self.to;
        for (name, ty) in &to.types {
            if let (Some(old), TypeKind::Enum { values: new_values }) =
                (from.types.get(name), &ty.kind)
                && let TypeKind::Enum { values: old_values } = &old.kind
                && !is_in_order_subset(old_values, new_values)
            {
                self.recreated_enums.insert(name.clone());
            }
        }
        for (name, new) in &to.tables {
            let Some(old) = from.tables.get(name) else {
                continue;
            };
            for column in &new.columns {
                let Some(before) = old.column(&column.name) else {
                    continue;
                };
                let retyped = before.data_type != column.data_type
                    || before.collation != column.collation
                    || before.generated != column.generated
                    || self
                        .recreated_enums
                        .iter()
                        .any(|e| uses_type(&column.data_type, e));
                if retyped {
                    self.retyped.insert((name.clone(), column.name.clone()));
                }
            }
        }
        // Views to rebuild: changed ones, and those over dropped or retyped columns and
        // over rebuilt views, transitively.
        let mut rebuild: BTreeSet<QualifiedName> = BTreeSet::new();
        for (name, view) in &from.views {
            let changed = match to.views.get(name) {
                None => true,
                Some(new) => !same_view(view, new),
            };
            let over_changed_table = view.depends_on.iter().any(|dep| {
                let Some(old) = from.tables.get(dep) else {
                    return false;
                };
                match to.tables.get(dep) {
                    None => true,
                    Some(new) => old.columns.iter().any(|c| {
                        new.column(&c.name).is_none()
                            || self.retyped.contains(&(dep.clone(), c.name.clone()))
                    }),
                }
            });
            if changed || over_changed_table {
                rebuild.insert(name.clone());
            }
        }
        loop {
            let more: Vec<QualifiedName> = from
                .views
                .iter()
                .filter(|(name, view)| {
                    !rebuild.contains(*name) && view.depends_on.iter().any(|d| rebuild.contains(d))
                })
                .map(|(name, _)| name.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            rebuild.extend(more);
        }
        self.recreated_views = rebuild;
        // Policies and triggers over retyped columns block the type change.
        for (table, _) in &self.retyped {
            self.policies_to_readd.insert(table.clone());
            self.triggers_to_readd.insert(table.clone());
        }
        for (name, sequence) in &from.sequences {
            if let Some((table, column)) = &sequence.owned_by
                && !to.sequences.contains_key(name)
                && from
                    .tables
                    .get(table)
                    .and_then(|t| t.column(column))
                    .is_some_and(|c| c.identity.is_none())
                && to
                    .tables
                    .get(table)
                    .and_then(|t| t.column(column))
                    .is_some_and(|c| c.identity.is_some())
            {
                self.replaced_by_identity
                    .entry((table.clone(), column.clone()))
                    .or_default()
                    .push(name.clone());
            }
        }
        // Indexes and checks that name an enum being swapped are built again over the new one.
        for (name, old) in &from.tables {
            let Some(new) = to.tables.get(name) else {
                continue;
            };
            let names_swapped_enum =
                |text: &str| self.recreated_enums.iter().any(|e| mentions_type(text, e));
            let (indexes, constraints) = kept_dependents(
                old,
                new,
                |index| index.parent.is_none() && names_swapped_enum(&index.definition),
                |constraint| {
                    constraint.kind != ConstraintKind::ForeignKey
                        && names_swapped_enum(&constraint.definition)
                },
            );
            self.rebuild(name, indexes, constraints);
        }
        // Columns recreated at the end: indexes and constraints over them go with the old
        // column, so they are dropped first and built again after.
        for (name, new) in &to.tables {
            let Some(old) = from.tables.get(name) else {
                continue;
            };
            for column in self.column_moves(from, name, old, new) {
                self.moved.insert((name.clone(), column));
            }
        }
        for (name, old) in &from.tables {
            let Some(new) = to.tables.get(name) else {
                continue;
            };
            let moved: Vec<&str> = old
                .columns
                .iter()
                .filter(|c| self.moved.contains(&(name.clone(), c.name.clone())))
                .map(|c| c.name.as_str())
                .collect();
            if moved.is_empty() {
                continue;
            }
            let (indexes, constraints) = kept_dependents(
                old,
                new,
                |index| {
                    let columns = index
                        .definition
                        .split_once(" USING ")
                        .map_or(index.definition.as_str(), |(_, rest)| rest);
                    moved.iter().any(|c| mentions_column(columns, c))
                },
                |constraint| {
                    constraint
                        .columns
                        .iter()
                        .any(|c| moved.contains(&c.as_str()))
                },
            );
            self.rebuild(name, indexes, constraints);
        }
        // Foreign keys that point at a key being dropped or changed, or at a unique index
        // built again.
        let mut rebuilt_keys: HashSet<QualifiedName> = self
            .indexes_to_rebuild
            .iter()
            .filter(|(table, index)| {
                from.tables
                    .get(table)
                    .and_then(|t| t.indexes.get(index))
                    .is_some_and(|i| i.definition.starts_with("CREATE UNIQUE"))
            })
            .map(|(table, _)| table.clone())
            .collect();
        for (name, old) in &from.tables {
            let Some(new) = to.tables.get(name) else {
                continue;
            };
            for constraint in old.constraints.values() {
                if !matches!(
                    constraint.kind,
                    ConstraintKind::PrimaryKey | ConstraintKind::Unique
                ) {
                    continue;
                }
                let kept = new
                    .constraints
                    .get(&constraint.name)
                    .is_some_and(|c| same_constraint(c, constraint));
                let retyped = constraint
                    .columns
                    .iter()
                    .any(|c| self.retyped.contains(&(name.clone(), c.clone())));
                if !kept || retyped {
                    rebuilt_keys.insert(name.clone());
                }
            }
        }
        for (name, old) in &from.tables {
            let Some(new) = to.tables.get(name) else {
                continue;
            };
            for constraint in old.constraints.values() {
                let Some(target) = &constraint.references else {
                    continue;
                };
                let unchanged = new
                    .constraints
                    .get(&constraint.name)
                    .is_some_and(|c| same_constraint(c, constraint));
                if unchanged && rebuilt_keys.contains(target) {
                    self.constraints_to_readd
                        .insert((name.clone(), constraint.name.clone()));
                }
            }
        }
    }

    fn session(&mut self, from: &Model) {
        let functions_change = self
            .to
            .functions
            .iter()
            .any(|(key, f)| from.functions.get(key) != Some(f));
        if functions_change {
            self.push(
                SESSION,
                Change::Alter,
                "SET check_function_bodies = false".to_string(),
            );
        }
    }

    // ---- phase 1: dependents of what changes ------------------------------------------

    fn drop_dependents(&mut self, from: &Model) {
        let to = self.to;
        // Views, dependents first.
        let order = view_order(&from.views);
        for name in order.iter().rev() {
            if !self.recreated_views.contains(name) {
                continue;
            }
            let view = &from.views[name];
            let gone = !to.views.contains_key(name);
            let changed = to.views.get(name).is_some_and(|v| !same_view(view, v));
            let step = self.push(
                view_object(view),
                if gone { Change::Drop } else { Change::Alter },
                ddl::drop_view(view),
            );
            step.derived = !gone && !changed;
        }
        for (name, old) in &from.tables {
            let new = to.tables.get(name);
            let Some(new) = new else {
                continue;
            };
            for trigger in old.triggers.values() {
                let rebuilt = self.triggers_to_readd.contains(name);
                let same = new
                    .triggers
                    .get(&trigger.name)
                    .is_some_and(|t| t.definition == trigger.definition);
                if !same || rebuilt {
                    let step = self.push(
                        format!("trigger {} on {name}", trigger.name),
                        if new.triggers.contains_key(&trigger.name) {
                            Change::Alter
                        } else {
                            Change::Drop
                        },
                        format!("DROP TRIGGER {} ON {}", ident(&trigger.name), name.sql()),
                    );
                    step.derived = same;
                }
            }
            for policy in old.policies.values() {
                let rebuilt = self.policies_to_readd.contains(name);
                let same = new
                    .policies
                    .get(&policy.name)
                    .is_some_and(|p| same_policy(p, policy));
                if !same || rebuilt {
                    let step = self.push(
                        format!("policy {} on {name}", policy.name),
                        if new.policies.contains_key(&policy.name) {
                            Change::Alter
                        } else {
                            Change::Drop
                        },
                        format!("DROP POLICY {} ON {}", ident(&policy.name), name.sql()),
                    );
                    step.derived = same;
                }
            }
        }
        // Foreign keys first (they depend on keys), then the other constraints.
        for foreign in [true, false] {
            for (name, old) in &from.tables {
                for constraint in old.constraints.values() {
                    if constraint.inherited
                        || (constraint.kind == ConstraintKind::ForeignKey) != foreign
                    {
                        continue;
                    }
                    let (drop, derived) = match to.tables.get(name) {
                        // A dropped table's foreign keys go first, so tables that point at
                        // each other can be dropped in any order.
                        None => (
                            foreign && constraint.references.as_ref() != Some(name),
                            true,
                        ),
                        Some(new) => match new.constraints.get(&constraint.name) {
                            None => (true, false),
                            Some(c) if !same_constraint(c, constraint) => {
                                // Only validation to do: VALIDATE later, no drop.
                                let validate_only = c.definition == constraint.definition
                                    && c.validated
                                    && !constraint.validated;
                                (!validate_only, false)
                            }
                            Some(_) => (
                                self.constraints_to_readd
                                    .contains(&(name.clone(), constraint.name.clone())),
                                true,
                            ),
                        },
                    };
                    if !drop {
                        continue;
                    }
                    let kept = to
                        .tables
                        .get(name)
                        .is_some_and(|t| t.constraints.contains_key(&constraint.name));
                    let step = self.push(
                        format!("constraint {} on {name}", constraint.name),
                        if kept { Change::Alter } else { Change::Drop },
                        format!(
                            "ALTER TABLE {} DROP CONSTRAINT {}",
                            name.sql(),
                            ident(&constraint.name)
                        ),
                    );
                    step.derived = derived;
                }
            }
        }
        for (name, old) in &from.tables {
            let Some(new) = to.tables.get(name) else {
                continue;
            };
            for index in old.indexes.values() {
                if index.parent.is_some() {
                    continue;
                }
                let same = new
                    .indexes
                    .get(&index.name)
                    .is_some_and(|i| same_index(i, index));
                let rebuild = self
                    .indexes_to_rebuild
                    .contains(&(name.clone(), index.name.clone()));
                if !same || rebuild {
                    let step = self.push(
                        index_object(name, &index.name),
                        if new.indexes.contains_key(&index.name) {
                            Change::Alter
                        } else {
                            Change::Drop
                        },
                        format!(
                            "DROP INDEX {}",
                            QualifiedName::new(name.schema.clone(), index.name.clone()).sql()
                        ),
                    );
                    step.derived = same;
                }
            }
        }
    }

    // ---- phase 2: what tables need ---------------------------------------------------

    fn schemas_and_extensions(&mut self, from: &Model) {
        let to = self.to;
        for (name, schema) in &to.schemas {
            match from.schemas.get(name) {
                None => {
                    if name != "public" {
                        self.push(
                            format!("schema {name}"),
                            Change::Create,
                            format!("CREATE SCHEMA {}", ident(name)),
                        );
                    }
                    if schema.comment.is_some() && name != "public" {
                        self.comment(
                            format!("schema {name}"),
                            format!("SCHEMA {}", ident(name)),
                            schema.comment.as_deref(),
                        );
                    }
                }
                Some(old) if old.comment != schema.comment => {
                    self.comment(
                        format!("schema {name}"),
                        format!("SCHEMA {}", ident(name)),
                        schema.comment.as_deref(),
                    );
                }
                Some(_) => {}
            }
        }
        for (name, extension) in &to.extensions {
            match from.extensions.get(name) {
                None => {
                    self.push(
                        format!("extension {name}"),
                        Change::Create,
                        format!(
                            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                            ident(name),
                            ident(&extension.schema)
                        ),
                    );
                }
                Some(old) => {
                    if old.schema != extension.schema {
                        self.push(
                            format!("extension {name}"),
                            Change::Alter,
                            format!(
                                "ALTER EXTENSION {} SET SCHEMA {}",
                                ident(name),
                                ident(&extension.schema)
                            ),
                        );
                    }
                    if old.version != extension.version {
                        self.push(
                            format!("extension {name}"),
                            Change::Alter,
                            format!(
                                "ALTER EXTENSION {} UPDATE TO {}",
                                ident(name),
                                quote_literal(&extension.version)
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Marks unchanged indexes and constraints of `table` to be dropped and built again.
    fn rebuild(&mut self, table: &QualifiedName, indexes: Vec<String>, constraints: Vec<String>) {
        for index in indexes {
            self.indexes_to_rebuild.insert((table.clone(), index));
        }
        for constraint in constraints {
            self.constraints_to_readd
                .insert((table.clone(), constraint));
        }
    }

    fn types(&mut self, from: &Model) {
        let to = self.to;
        for name in type_order(&to.types) {
            let ty = &to.types[&name];
            let name = &name;
            let object = type_object(ty);
            match from.types.get(name) {
                None => {
                    self.push(object.clone(), Change::Create, ddl::create_type(ty));
                }
                Some(old) if old.kind == ty.kind => {}
                Some(old) => self.alter_type(old, ty, object.clone()),
            }
            let before = from.types.get(name).and_then(|t| t.comment.as_deref());
            let recreated = self.recreated_enums.contains(name);
            let comment_before = if recreated { None } else { before };
            if comment_before != ty.comment.as_deref() {
                self.comment(object, type_target(ty), ty.comment.as_deref());
            }
        }
    }

    fn alter_type(&mut self, old: &Type, new: &Type, object: String) {
        let name = new.name.sql();
        match (&old.kind, &new.kind) {
            (TypeKind::Enum { values: before }, TypeKind::Enum { values: after })
                if !self.recreated_enums.contains(&new.name) =>
            {
                // Every old value is kept in order: add the new ones in place.
                let mut present: Vec<String> = before.clone();
                for (i, value) in after.iter().enumerate() {
                    if present.contains(value) {
                        continue;
                    }
                    let position = match after[..i].iter().rev().find(|v| present.contains(v)) {
                        Some(previous) => format!(" AFTER {}", quote_literal(previous)),
                        None => match after[i + 1..].iter().find(|v| present.contains(v)) {
                            Some(next) => format!(" BEFORE {}", quote_literal(next)),
                            None => String::new(),
                        },
                    };
                    let step = self.push(
                        object.clone(),
                        Change::Alter,
                        format!(
                            "ALTER TYPE {name} ADD VALUE {}{position}",
                            quote_literal(value)
                        ),
                    );
                    // A value added in a transaction cannot be used before it commits.
                    step.transactional = false;
                    present.push(value.clone());
                }
            }
            (TypeKind::Enum { values: before }, TypeKind::Enum { values: after }) => {
                let removed: Vec<&String> = before.iter().filter(|v| !after.contains(v)).collect();
                let old_name = QualifiedName::new(
                    new.name.schema.clone(),
                    format!("{}__tend_old", new.name.name),
                );
                if !removed.is_empty() {
                    self.warn(format!(
                        "enum {} loses the values {}: rows holding them make the change fail",
                        new.name,
                        removed
                            .iter()
                            .map(|v| quote_literal(v))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER TYPE {name} RENAME TO {}", ident(&old_name.name)),
                );
                let step = self.push(object, Change::Alter, ddl::create_type(new));
                if !removed.is_empty() {
                    step.hazards.push(Hazard::DataLoss);
                }
                // The columns are switched over in the table phase, the old type dropped last.
            }
            (
                TypeKind::Domain {
                    base: old_base,
                    collation: old_collation,
                    default: old_default,
                    not_null: old_not_null,
                    not_null_constraint: old_constraint,
                    checks: old_checks,
                },
                TypeKind::Domain {
                    base,
                    collation,
                    default,
                    not_null,
                    not_null_constraint,
                    checks,
                },
            ) if old_base == base && old_collation == collation => {
                if old_default != default {
                    let sql = match default {
                        Some(d) => format!("ALTER DOMAIN {name} SET DEFAULT {d}"),
                        None => format!("ALTER DOMAIN {name} DROP DEFAULT"),
                    };
                    self.push(object.clone(), Change::Alter, sql);
                }
                // PostgreSQL 17 names a domain's NOT NULL: one not named `<domain>_not_null`
                // is added under its name, or renamed.
                let constraint_name = |constraint: &Option<String>| {
                    constraint
                        .clone()
                        .unwrap_or_else(|| not_null_name(&new.name.name, None))
                };
                if *old_not_null && *not_null && old_constraint != not_null_constraint {
                    self.push(
                        object.clone(),
                        Change::Alter,
                        format!(
                            "ALTER DOMAIN {name} RENAME CONSTRAINT {} TO {}",
                            ident(&constraint_name(old_constraint)),
                            ident(&constraint_name(not_null_constraint))
                        ),
                    );
                }
                if old_not_null != not_null {
                    let sql = if let Some(constraint) =
                        not_null_constraint.as_ref().filter(|_| *not_null)
                    {
                        format!(
                            "ALTER DOMAIN {name} ADD CONSTRAINT {} NOT NULL",
                            ident(constraint)
                        )
                    } else if *not_null {
                        format!("ALTER DOMAIN {name} SET NOT NULL")
                    } else {
                        format!("ALTER DOMAIN {name} DROP NOT NULL")
                    };
                    let step = self.push(object.clone(), Change::Alter, sql);
                    if *not_null {
                        step.hazards.push(Hazard::MayFail);
                    }
                }
                for (check, definition) in old_checks {
                    if checks.get(check) != Some(definition) {
                        self.push(
                            object.clone(),
                            Change::Alter,
                            format!("ALTER DOMAIN {name} DROP CONSTRAINT {}", ident(check)),
                        );
                    }
                }
                for (check, definition) in checks {
                    if old_checks.get(check) != Some(definition) {
                        let step = self.push(
                            object.clone(),
                            Change::Alter,
                            format!(
                                "ALTER DOMAIN {name} ADD CONSTRAINT {} {definition}",
                                ident(check)
                            ),
                        );
                        step.hazards.push(Hazard::MayFail);
                    }
                }
            }
            _ => {
                self.warn(format!(
                    "type {} changes in a way ALTER TYPE cannot do: it is dropped and created again, which fails while columns use it",
                    new.name
                ));
                let step = self.push(object.clone(), Change::Alter, ddl::drop_type(old));
                step.hazards.push(Hazard::DataLoss);
                self.push(object, Change::Alter, ddl::create_type(new));
                self.recreated_types.insert(new.name.clone());
            }
        }
    }

    fn sequences(&mut self, from: &Model) {
        let to = self.to;
        for (name, sequence) in &to.sequences {
            let object = format!("sequence {name}");
            match from.sequences.get(name) {
                None => {
                    self.push(
                        object.clone(),
                        Change::Create,
                        ddl::create_sequence(sequence),
                    );
                }
                Some(old) => {
                    let options_differ = old.data_type != sequence.data_type
                        || old.start != sequence.start
                        || old.increment != sequence.increment
                        || old.min != sequence.min
                        || old.max != sequence.max
                        || old.cache != sequence.cache
                        || old.cycle != sequence.cycle;
                    if options_differ {
                        self.push(
                            object.clone(),
                            Change::Alter,
                            format!(
                                "ALTER SEQUENCE {} AS {}{}",
                                name.sql(),
                                sequence.data_type,
                                ddl::sequence_options(sequence)
                            ),
                        );
                    }
                }
            }
            // A sequence that outlives the table or column owning it (a renamed table's
            // `serial`) is released first, or dropping its owner would drop it too.
            if let Some(Some((owner, column))) = from.sequences.get(name).map(|s| &s.owned_by)
                && sequence.owned_by.as_ref() != Some(&(owner.clone(), column.clone()))
                && (to
                    .tables
                    .get(owner)
                    .is_none_or(|t| t.column(column).is_none_or(|c| c.inherited))
                    || self.moved.contains(&(owner.clone(), column.clone())))
            {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER SEQUENCE {} OWNED BY NONE", name.sql()),
                );
                self.disowned_sequences.insert(name.clone());
            }
            let before = from.sequences.get(name).and_then(|s| s.comment.as_deref());
            if before != sequence.comment.as_deref() {
                self.comment(
                    object,
                    format!("SEQUENCE {}", name.sql()),
                    sequence.comment.as_deref(),
                );
            }
        }
    }

    /// Functions go before tables (defaults and checks call them), except those whose
    /// signature names a table or view created here, and those with an SQL-standard body
    /// (`BEGIN ATOMIC`, `RETURN`), which PostgreSQL parses at once (`check_function_bodies`
    /// does not apply): those go after the tables.
    fn functions(&mut self, from: &Model, after_tables: bool) {
        let to = self.to;
        let new_relations: Vec<String> = to
            .tables
            .keys()
            .chain(to.views.keys())
            .filter(|n| !from.tables.contains_key(*n) && !from.views.contains_key(*n))
            .map(QualifiedName::sql)
            .collect();
        for (key, function) in &to.functions {
            let signature = format!(
                "{} {}",
                key.arguments,
                function.result.as_deref().unwrap_or_default()
            );
            let late = has_sql_body(&function.definition)
                || new_relations.iter().any(|r| signature.contains(r.as_str()));
            if late != after_tables {
                continue;
            }
            let object = function_object(function);
            match from.functions.get(key) {
                None => {
                    self.push(
                        object.clone(),
                        Change::Create,
                        ddl::create_function(function),
                    );
                }
                Some(old) if old.definition == function.definition => {}
                Some(old) => {
                    if old.result != function.result || old.procedure != function.procedure {
                        self.push(object.clone(), Change::Alter, ddl::drop_function(old));
                        self.recreated_functions.insert(key.clone());
                    }
                    self.push(
                        object.clone(),
                        Change::Alter,
                        ddl::create_function(function),
                    );
                }
            }
            let before = from.functions.get(key).and_then(|f| f.comment.as_deref());
            if before != function.comment.as_deref() {
                self.comment(
                    object,
                    function_target(function),
                    function.comment.as_deref(),
                );
            }
        }
    }

    // ---- phase 3: tables ----------------------------------------------------------------

    fn tables(&mut self, from: &Model) {
        let to = self.to;
        // Parents before their partitions and children.
        for name in table_order(&to.tables) {
            let table = &to.tables[&name];
            if from.tables.contains_key(&name) {
                continue;
            }
            self.warn_possible_table_rename(from, table);
            let object = format!("table {name}");
            let mut named = table.clone();
            for column in &mut named.columns {
                *column = self.naming_not_null(&name, column);
            }
            let table = &named;
            self.push(object.clone(), Change::Create, ddl::create_table(table));
            for column in &table.columns {
                if column.not_null_not_valid && !column.inherited {
                    self.push(
                        object.clone(),
                        Change::Create,
                        ddl::add_not_null(&name, column),
                    );
                }
            }
            if table.row_security {
                self.push(
                    object.clone(),
                    Change::Create,
                    format!("ALTER TABLE {} ENABLE ROW LEVEL SECURITY", name.sql()),
                );
            }
            if table.force_row_security {
                self.push(
                    object.clone(),
                    Change::Create,
                    format!("ALTER TABLE {} FORCE ROW LEVEL SECURITY", name.sql()),
                );
            }
            if table.comment.is_some() {
                self.comment(
                    object,
                    format!("TABLE {}", name.sql()),
                    table.comment.as_deref(),
                );
            }
            for column in &table.columns {
                if column.comment.is_some() && !column.inherited {
                    self.comment(
                        format!("column {name}.{}", column.name),
                        format!("COLUMN {}.{}", name.sql(), ident(&column.name)),
                        column.comment.as_deref(),
                    );
                }
            }
        }
        for (name, new) in &to.tables {
            if let Some(old) = from.tables.get(name) {
                self.alter_table(name, old, new);
            }
        }
        // Children before parents; sequences they own go with them.
        let mut order = table_order(&from.tables);
        order.reverse();
        for name in order {
            if to.tables.contains_key(&name) {
                continue;
            }
            let table = &from.tables[&name];
            // A partition goes with its parent when that is dropped too.
            if let Some(partition) = &table.partition_of
                && !to.tables.contains_key(&partition.parent)
                && from.tables.contains_key(&partition.parent)
            {
                continue;
            }
            let step = self.push(
                format!("table {name}"),
                Change::Drop,
                format!("DROP TABLE {}", name.sql()),
            );
            step.hazards.push(Hazard::DataLoss);
        }
    }

    fn warn_possible_table_rename(&mut self, from: &Model, table: &Table) {
        let signature = |t: &Table| -> Vec<(String, String)> {
            t.columns
                .iter()
                .map(|c| (c.name.clone(), c.data_type.clone()))
                .collect()
        };
        let wanted = signature(table);
        for (name, old) in &from.tables {
            if !self.to.tables.contains_key(name) && signature(old) == wanted {
                self.warn(format!(
                    "table {name} is dropped and {} created with the same columns: if it is a rename, pass --rename {}={} or {name}'s rows are lost",
                    table.name, name, table.name.name
                ));
            }
        }
    }

    /// A column dropped while another is added may be a rename: of the same type, or of
    /// another type when it is the table's only such pair or the names look alike (`price`
    /// and `price_cents`, `userId` and `user_id`). A rename hint then renames and converts
    /// it, keeping its values. Each added column is suggested for one dropped column.
    fn warn_possible_column_renames(
        &mut self,
        table: &QualifiedName,
        dropped: &[&Column],
        added: &[&Column],
    ) {
        let mut taken: HashSet<&str> = HashSet::new();
        for gone in dropped {
            let free = || added.iter().filter(|c| !taken.contains(c.name.as_str()));
            let candidate = free()
                .find(|c| c.data_type == gone.data_type)
                .or_else(|| {
                    if dropped.len() == 1 && added.len() == 1 {
                        free().next()
                    } else {
                        free().find(|c| names_look_alike(&gone.name, &c.name))
                    }
                })
                .copied();
            let Some(candidate) = candidate else {
                continue;
            };
            taken.insert(candidate.name.as_str());
            let hint = format!("--rename {table}.{}={}", gone.name, candidate.name);
            if candidate.data_type == gone.data_type {
                self.warn(format!(
                    "column {table}.{} is dropped and {} added with the same type: if it is a rename, pass {hint} or its data is lost",
                    gone.name, candidate.name
                ));
            } else {
                self.warn(format!(
                    "column {table}.{} ({}) is dropped and {} ({}) added: if it is a rename, pass {hint} (its values are then converted to {}) or its data is lost",
                    gone.name, gone.data_type, candidate.name, candidate.data_type, candidate.data_type
                ));
            }
        }
    }

    fn alter_table(&mut self, name: &QualifiedName, old: &Table, new: &Table) {
        let table_sql = name.sql();
        let object = format!("table {name}");
        if old.partition_by != new.partition_by {
            self.warn(format!(
                "the partition key of {name} cannot change in place: change it by hand (create a new table and move the rows)"
            ));
        }
        if old.partition_of != new.partition_of {
            if let Some(partition) = &old.partition_of {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!(
                        "ALTER TABLE {} DETACH PARTITION {table_sql}",
                        partition.parent.sql()
                    ),
                );
            }
            if let Some(partition) = &new.partition_of {
                let step = self.push(
                    object.clone(),
                    Change::Alter,
                    format!(
                        "ALTER TABLE {} ATTACH PARTITION {table_sql} {}",
                        partition.parent.sql(),
                        partition.bound
                    ),
                );
                step.hazards.push(Hazard::LongLock);
            }
        }
        for parent in &old.inherits {
            if !new.inherits.contains(parent) {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER TABLE {table_sql} NO INHERIT {}", parent.sql()),
                );
            }
        }
        if old.unlogged != new.unlogged {
            let step = self.push(
                object.clone(),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} SET {}",
                    if new.unlogged { "UNLOGGED" } else { "LOGGED" }
                ),
            );
            step.hazards.push(Hazard::TableRewrite);
        }
        if old.options != new.options {
            let key = |o: &String| o.split('=').next().unwrap_or_default().to_string();
            let new_keys: Vec<String> = new.options.iter().map(key).collect();
            let reset: Vec<String> = old
                .options
                .iter()
                .map(key)
                .filter(|k| !new_keys.contains(k))
                .collect();
            if !reset.is_empty() {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER TABLE {table_sql} RESET ({})", reset.join(", ")),
                );
            }
            if !new.options.is_empty() {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER TABLE {table_sql} SET ({})", new.options.join(", ")),
                );
            }
        }
        self.columns(name, old, new);
        for parent in &new.inherits {
            if !old.inherits.contains(parent) {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER TABLE {table_sql} INHERIT {}", parent.sql()),
                );
            }
        }
        if old.comment != new.comment {
            self.comment(
                object.clone(),
                format!("TABLE {table_sql}"),
                new.comment.as_deref(),
            );
        }
    }

    /// Generated columns kept as they are but over a column whose type changes: that blocks
    /// the change, so they are dropped first and added again after.
    fn regenerated<'t>(
        &self,
        name: &QualifiedName,
        old: &Table,
        new: &'t Table,
    ) -> Vec<&'t Column> {
        new.columns
            .iter()
            .filter(|c| {
                let expression = c.generated.as_deref().unwrap_or_default();
                !c.inherited
                    && c.generated.is_some()
                    && old
                        .column(&c.name)
                        .is_some_and(|b| b.generated == c.generated)
                    && new.columns.iter().any(|other| {
                        other.name != c.name
                            && self.retyped.contains(&(name.clone(), other.name.clone()))
                            && mentions_column(expression, &other.name)
                    })
            })
            .collect()
    }

    /// The retyped columns to recreate at the end of the table, in `new`'s order, so that
    /// the columns end in `new`'s order. A migration that changes a type by `DROP COLUMN x,
    /// ADD COLUMN x newtype` moves `x` last; `ALTER COLUMN ... TYPE` keeps it in place.
    ///
    /// After the plan, the table holds its kept columns in their old order, then whatever
    /// the plan adds (new columns, generated columns added again, moved columns), in `new`'s
    /// order. So `new`'s order must be a prefix of the kept columns without the moved ones,
    /// then the rest; the longest such prefix moves the fewest columns. Only columns whose
    /// type changes move (a desired-state file listing a new column in the middle rewrites
    /// nothing), and not identity or generated columns, nor those of partitioned or
    /// inheriting tables: those keep the in-place `ALTER COLUMN ... TYPE`.
    fn column_moves(
        &self,
        from: &Model,
        name: &QualifiedName,
        old: &Table,
        new: &Table,
    ) -> Vec<String> {
        let family = |t: &Table| {
            t.partition_by.is_some() || t.partition_of.is_some() || !t.inherits.is_empty()
        };
        let has_children = from.tables.values().any(|t| {
            t.inherits.contains(name) || t.partition_of.as_ref().is_some_and(|p| p.parent == *name)
        });
        if family(old) || family(new) || has_children {
            return Vec::new();
        }
        let movable = |column: &str| {
            let (Some(before), Some(after)) = (old.column(column), new.column(column)) else {
                return false;
            };
            before.data_type != after.data_type
                && before.identity.is_none()
                && after.identity.is_none()
                && before.generated.is_none()
                && after.generated.is_none()
        };
        let wanted: Vec<&str> = new.columns.iter().map(|c| c.name.as_str()).collect();
        if !wanted.iter().any(|c| movable(c)) {
            return Vec::new();
        }
        let generation_changed = |c: &Column| {
            old.column(&c.name)
                .is_some_and(|b| b.generated != c.generated)
        };
        let regenerated: Vec<&str> = self
            .regenerated(name, old, new)
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        // Added by the plan whatever happens.
        let appended: Vec<&str> = new
            .columns
            .iter()
            .filter(|c| {
                old.column(&c.name).is_none()
                    || generation_changed(c)
                    || regenerated.contains(&c.name.as_str())
            })
            .map(|c| c.name.as_str())
            .collect();
        let kept: Vec<&str> = old
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| new.column(c).is_some() && !appended.contains(c))
            .collect();
        for split in (0..=wanted.len()).rev() {
            let (prefix, suffix) = wanted.split_at(split);
            if appended.iter().any(|c| !suffix.contains(c)) {
                continue;
            }
            let moves: Vec<&str> = suffix
                .iter()
                .copied()
                .filter(|c| kept.contains(c))
                .collect();
            if !moves.iter().all(|c| movable(c)) {
                // A shorter prefix only moves more columns.
                return Vec::new();
            }
            let rest: Vec<&str> = kept
                .iter()
                .copied()
                .filter(|c| !suffix.contains(c))
                .collect();
            if rest != prefix {
                continue;
            }
            // A generated column added before a moved column it reads would hold on to
            // the old one.
            let blocked = suffix.iter().enumerate().any(|(at, c)| {
                let expression = new
                    .column(c)
                    .and_then(|c| c.generated.as_deref())
                    .unwrap_or_default();
                suffix[at + 1..]
                    .iter()
                    .any(|later| moves.contains(later) && mentions_column(expression, later))
            });
            if blocked {
                return Vec::new();
            }
            return moves.into_iter().map(str::to_string).collect();
        }
        Vec::new()
    }

    fn columns(&mut self, name: &QualifiedName, old: &Table, new: &Table) {
        let table_sql = name.sql();
        let dropped: Vec<&Column> = old
            .columns
            .iter()
            .filter(|c| !c.inherited && new.column(&c.name).is_none())
            .collect();
        let added: Vec<&Column> = new
            .columns
            .iter()
            .filter(|c| !c.inherited && old.column(&c.name).is_none())
            .collect();
        self.warn_possible_column_renames(name, &dropped, &added);
        for column in &dropped {
            let step = self.push(
                format!("column {name}.{}", column.name),
                Change::Drop,
                format!(
                    "ALTER TABLE {table_sql} DROP COLUMN {}",
                    ident(&column.name)
                ),
            );
            step.hazards.push(Hazard::DataLoss);
        }
        let regenerated = self.regenerated(name, old, new);
        // PostgreSQL 15 cannot change a generation expression in place: such a column is
        // dropped and added again.
        let generation_changed: Vec<&Column> = new
            .columns
            .iter()
            .filter(|c| {
                !c.inherited
                    && old
                        .column(&c.name)
                        .is_some_and(|b| b.generated != c.generated)
            })
            .collect();
        for column in &regenerated {
            self.push(
                format!("column {name}.{}", column.name),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} DROP COLUMN {}",
                    ident(&column.name)
                ),
            );
        }
        for column in &generation_changed {
            let step = self.push(
                format!("column {name}.{}", column.name),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} DROP COLUMN {}",
                    ident(&column.name)
                ),
            );
            step.hazards.push(Hazard::DataLoss);
        }
        for column in regenerated.iter().chain(&generation_changed) {
            self.recreated_columns
                .insert((name.clone(), column.name.clone()));
        }
        for (table, column) in &self.moved {
            if table == name {
                self.recreated_columns
                    .insert((table.clone(), column.clone()));
            }
        }
        let is = |list: &[&Column], column: &Column| list.iter().any(|c| c.name == column.name);
        let moved = |column: &Column| self.moved.contains(&(name.clone(), column.name.clone()));
        let moved_columns: Vec<&Column> = new.columns.iter().filter(|c| moved(c)).collect();
        for after in &new.columns {
            if after.inherited
                || is(&regenerated, after)
                || is(&generation_changed, after)
                || is(&moved_columns, after)
            {
                continue;
            }
            let Some(before) = old.column(&after.name) else {
                continue;
            };
            self.alter_column(name, before, after);
        }
        // What the plan adds goes at the end, in the new order.
        for column in &new.columns {
            if column.inherited {
                continue;
            }
            let object = format!("column {name}.{}", column.name);
            if let Some(before) = old
                .column(&column.name)
                .filter(|_| is(&moved_columns, column))
            {
                self.move_column(name, old, new, before, column);
                continue;
            }
            let change = if is(&added, column) {
                Change::Create
            } else if is(&regenerated, column) || is(&generation_changed, column) {
                Change::Alter
            } else {
                continue;
            };
            let column = &self.naming_not_null(name, column);
            let step = self.push(
                object.clone(),
                change,
                format!(
                    "ALTER TABLE {table_sql} ADD COLUMN {}",
                    ddl::column_definition(column)
                ),
            );
            let rewrites = column.generated.is_some()
                || column.identity.is_some()
                || column.default.as_deref().is_some_and(is_volatile_default);
            if rewrites {
                step.hazards.push(Hazard::TableRewrite);
            }
            if column.not_null
                && column.default.is_none()
                && column.identity.is_none()
                && column.generated.is_none()
            {
                step.hazards.push(Hazard::MayFail);
            }
            if column.not_null_not_valid {
                self.push(object.clone(), change, ddl::add_not_null(name, column));
            }
            if column.comment.is_some() {
                self.comment(
                    object,
                    format!("COLUMN {table_sql}.{}", ident(&column.name)),
                    column.comment.as_deref(),
                );
            }
        }
    }

    /// Recreates a retyped column at the end of its table, keeping its data: a new column
    /// under a temporary name, filled with the same cast `ALTER COLUMN ... TYPE` would use,
    /// then the old one dropped and the new one renamed. What depends on the column
    /// (indexes, constraints, views, policies, triggers, generated columns) was dropped in
    /// phase 1 and is built again later.
    fn move_column(
        &mut self,
        table: &QualifiedName,
        old: &Table,
        new: &Table,
        before: &Column,
        after: &Column,
    ) {
        let table_sql = table.sql();
        let column_sql = ident(&after.name);
        let object = format!("column {table}.{}", after.name);
        let temporary = temporary_column(&after.name, old, new);
        let temporary_sql = ident(&temporary);
        let collate = after
            .collation
            .as_ref()
            .map(|c| format!(" COLLATE {c}"))
            .unwrap_or_default();
        self.push(
            object.clone(),
            Change::Alter,
            format!(
                "ALTER TABLE {table_sql} ADD COLUMN {temporary_sql} {}{collate}",
                after.data_type
            ),
        );
        let cast = self.cast(table, before, after);
        if let Some(warning) = &cast.warning {
            self.warn(warning.clone());
        }
        let value = cast.using.clone().unwrap_or_else(|| column_sql.clone());
        let step = self.push(
            object.clone(),
            Change::Alter,
            format!("UPDATE {table_sql} SET {temporary_sql} = {value}"),
        );
        step.hazards.push(Hazard::TableRewrite);
        step.hazards.push(Hazard::LongLock);
        step.hazards.extend(cast.hazards);
        self.push(
            object.clone(),
            Change::Alter,
            format!("ALTER TABLE {table_sql} DROP COLUMN {column_sql}"),
        );
        self.push(
            object.clone(),
            Change::Alter,
            format!("ALTER TABLE {table_sql} RENAME COLUMN {temporary_sql} TO {column_sql}"),
        );
        let alter = format!("ALTER TABLE {table_sql} ALTER COLUMN {column_sql}");
        if let Some(default) = &after.default {
            self.push(
                object.clone(),
                Change::Alter,
                format!("{alter} SET DEFAULT {default}"),
            );
        }
        if after.not_null || after.not_null_not_valid {
            let sql = if after.not_null_constraint.is_some()
                || after.not_null_no_inherit
                || after.not_null_not_valid
            {
                ddl::add_not_null(table, after)
            } else {
                format!("{alter} SET NOT NULL")
            };
            let step = self.push(object.clone(), Change::Alter, sql);
            if after.not_null && !before.not_null {
                step.hazards.push(Hazard::MayFail);
            }
        }
        if after.comment.is_some() {
            self.comment(
                object,
                format!("COLUMN {table_sql}.{column_sql}"),
                after.comment.as_deref(),
            );
        }
    }

    /// How `before`'s values become `after`'s type: the `USING` expression (`None` where
    /// the assignment cast does it), chosen to keep every value where some expression can
    /// ([`crate::cast`]), and what the change may still do to the values. A scalar becomes
    /// a one-element array; an array becomes `json`/`jsonb` or text whole, and any other
    /// scalar keeps only its first element.
    fn cast(&self, table: &QualifiedName, before: &Column, after: &Column) -> Cast {
        let column_sql = ident(&after.name);
        let (from, to) = (before.data_type.as_str(), after.data_type.as_str());
        let mut cast = Cast::default();
        let loss = match (from.strip_suffix("[]"), to.strip_suffix("[]")) {
            (None, Some(element)) => {
                let value = self
                    .scalar_cast(&column_sql, from, element)
                    .unwrap_or_else(|| column_sql.clone());
                cast.using = Some(format!(
                    "CASE WHEN {column_sql} IS NULL THEN NULL ELSE ARRAY[{value}] END"
                ));
                cast.hazards.push(Hazard::MayFail);
                crate::cast::loss(from, element)
            }
            (Some(_), None) => match crate::cast::array_to_scalar(&column_sql, to) {
                Some(whole) => {
                    cast.using = Some(whole);
                    crate::cast::loss("text", to)
                }
                None => {
                    let first = format!("({column_sql})[1]");
                    let element = from.trim_end_matches("[]");
                    let value = self.scalar_cast(&first, element, to).unwrap_or(first);
                    cast.using = Some(value);
                    cast.hazards.push(Hazard::MayFail);
                    Some((Hazard::DataLoss, "each row keeps only its first element"))
                }
            },
            _ => {
                cast.using = self.scalar_cast(&column_sql, from, to);
                let lossless = crate::cast::between_timestamps(&column_sql, from, to).is_some();
                if cast.using.is_some() && !lossless {
                    cast.hazards.push(Hazard::MayFail);
                }
                if lossless {
                    cast.warning = Some(format!(
                        "column {table}.{} goes from {from} to {to} at UTC: timestamps without a time zone are read as UTC",
                        after.name
                    ));
                }
                crate::cast::loss(from, to)
            }
        };
        if let Some((hazard, reason)) = loss {
            if !cast.hazards.contains(&hazard) {
                cast.hazards.push(hazard);
            }
            if hazard == Hazard::DataLoss {
                cast.warning = Some(format!(
                    "column {table}.{} goes from {from} to {to}, which keeps less: {reason}",
                    after.name
                ));
            }
        }
        cast
    }

    /// The cast of `value` from `from` to `to`, both scalars or both arrays: through text
    /// to an enum (another enum's values, or a swapped enum's), at UTC between `timestamp`
    /// and `timestamptz`, `::to` without its modifiers (the assignment to the column
    /// checks them) across type families, nothing within one.
    fn scalar_cast(&self, value: &str, from: &str, to: &str) -> Option<String> {
        let enum_swapped = self.recreated_enums.iter().any(|e| uses_type(to, e));
        let to_enum = self
            .to
            .types
            .values()
            .any(|t| matches!(t.kind, TypeKind::Enum { .. }) && uses_type(to, &t.name));
        if enum_swapped || (to_enum && from != to) {
            let text = if to.ends_with("[]") { "text[]" } else { "text" };
            Some(format!("{value}::{text}::{to}"))
        } else if let Some(at_utc) = crate::cast::between_timestamps(value, from, to) {
            Some(at_utc)
        } else if needs_using(from, to) {
            Some(format!("{value}::{}", crate::cast::without_modifiers(to)))
        } else {
            None
        }
    }

    fn alter_column(&mut self, table: &QualifiedName, before: &Column, after: &Column) {
        let table_sql = table.sql();
        let column_sql = ident(&after.name);
        let object = format!("column {table}.{}", after.name);
        let alter = format!("ALTER TABLE {table_sql} ALTER COLUMN {column_sql}");
        let enum_swapped = self
            .recreated_enums
            .iter()
            .find(|e| uses_type(&after.data_type, e))
            .cloned();
        let retype = before.data_type != after.data_type
            || before.collation != after.collation
            || enum_swapped.is_some();
        if retype {
            if before.default.is_some() {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("{alter} DROP DEFAULT"),
                );
            }
            let collate = after
                .collation
                .as_ref()
                .map(|c| format!(" COLLATE {c}"))
                .unwrap_or_default();
            let cast = self.cast(table, before, after);
            if let Some(warning) = &cast.warning {
                self.warn(warning.clone());
            }
            let using = cast
                .using
                .as_ref()
                .map(|cast| format!(" USING {cast}"))
                .unwrap_or_default();
            let step = self.push(
                object.clone(),
                Change::Alter,
                format!("{alter} TYPE {}{collate}{using}", after.data_type),
            );
            if enum_swapped.is_some()
                || before.collation != after.collation
                || !is_binary_widening(&before.data_type, &after.data_type)
            {
                step.hazards.push(Hazard::TableRewrite);
            }
            step.hazards.extend(cast.hazards);
            if let Some(default) = &after.default {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("{alter} SET DEFAULT {default}"),
                );
            }
        } else if before.default != after.default {
            let sql = match &after.default {
                Some(default) => format!("{alter} SET DEFAULT {default}"),
                None => format!("{alter} DROP DEFAULT"),
            };
            self.push(object.clone(), Change::Alter, sql);
        }
        if before.identity.is_some() && after.identity.is_none() {
            self.push(
                object.clone(),
                Change::Alter,
                format!("{alter} DROP IDENTITY"),
            );
        }
        self.not_null_constraint(table, before, after);
        if before.not_null_not_valid && after.not_null {
            let step = self.push(
                object.clone(),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} VALIDATE CONSTRAINT {}",
                    ident(&ddl::not_null_constraint(table, after))
                ),
            );
            step.hazards.push(Hazard::MayFail);
        } else if before.not_null_not_valid && !after.not_null_not_valid {
            self.push(
                object.clone(),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} DROP CONSTRAINT {}",
                    ident(&ddl::not_null_constraint(table, before))
                ),
            );
        } else if !before.not_null && after.not_null {
            // A validated CHECK lets SET NOT NULL skip its scan under ACCESS EXCLUSIVE:
            // the scan happens during VALIDATE, which lets writes through.
            let check = ident(&format!("{}_not_null_tend", after.name));
            self.push(
                object.clone(),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} ADD CONSTRAINT {check} CHECK ({column_sql} IS NOT NULL) NOT VALID"
                ),
            );
            let step = self.push(
                object.clone(),
                Change::Alter,
                format!("ALTER TABLE {table_sql} VALIDATE CONSTRAINT {check}"),
            );
            step.hazards.push(Hazard::MayFail);
            // A name of its own or NO INHERIT needs the constraint form (PostgreSQL 18),
            // which skips the scan the same way.
            let after = &self.naming_not_null(table, after);
            let sql = if after.not_null_constraint.is_some() || after.not_null_no_inherit {
                ddl::add_not_null(table, after)
            } else {
                format!("{alter} SET NOT NULL")
            };
            self.push(object.clone(), Change::Alter, sql);
            self.push(
                object.clone(),
                Change::Alter,
                format!("ALTER TABLE {table_sql} DROP CONSTRAINT {check}"),
            );
        } else if before.not_null && !after.not_null {
            self.push(
                object.clone(),
                Change::Alter,
                format!("{alter} DROP NOT NULL"),
            );
        }
        if !before.not_null_not_valid && after.not_null_not_valid {
            self.push(
                object.clone(),
                Change::Alter,
                ddl::add_not_null(table, after),
            );
        }
        match (before.identity, after.identity) {
            (None, Some(identity)) => {
                let replaced = self
                    .replaced_by_identity
                    .get(&(table.clone(), after.name.clone()))
                    .cloned()
                    .unwrap_or_default();
                for sequence in replaced {
                    self.push(
                        format!("sequence {sequence}"),
                        Change::Drop,
                        format!("DROP SEQUENCE {}", sequence.sql()),
                    );
                }
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!(
                        "{alter} ADD {}",
                        ddl::identity_sql(identity, &after.identity_options)
                    ),
                );
            }
            (Some(a), Some(b)) if a != b => {
                let kind = match b {
                    Identity::Always => "ALWAYS",
                    Identity::ByDefault => "BY DEFAULT",
                };
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("{alter} SET GENERATED {kind}"),
                );
            }
            _ => {}
        }
        if before.identity.is_some()
            && after.identity.is_some()
            && before.identity_options != after.identity_options
        {
            self.push(
                object.clone(),
                Change::Alter,
                format!(
                    "{alter} {}",
                    identity_changes(&before.identity_options, &after.identity_options)
                ),
            );
        }
        if before.comment != after.comment {
            self.comment(
                object,
                format!("COLUMN {table_sql}.{column_sql}"),
                after.comment.as_deref(),
            );
        }
    }

    /// A `NOT NULL` constraint both sides have (PostgreSQL 18 names them): renamed, or
    /// made `[NO] INHERIT`, where that is all that differs.
    fn not_null_constraint(&mut self, table: &QualifiedName, before: &Column, after: &Column) {
        let has = |c: &Column| c.not_null || c.not_null_not_valid;
        if !has(before) || !has(after) {
            return;
        }
        let object = format!("column {table}.{}", after.name);
        let (old, new) = (
            ddl::not_null_constraint(table, before),
            ddl::not_null_constraint(table, after),
        );
        if old != new {
            self.push(
                object.clone(),
                Change::Alter,
                format!(
                    "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                    table.sql(),
                    ident(&old),
                    ident(&new)
                ),
            );
        }
        if before.not_null_no_inherit != after.not_null_no_inherit {
            let inherit = if after.not_null_no_inherit {
                "NO INHERIT"
            } else {
                "INHERIT"
            };
            self.push(
                object,
                Change::Alter,
                format!(
                    "ALTER TABLE {} ALTER CONSTRAINT {} {inherit}",
                    table.sql(),
                    ident(&new)
                ),
            );
        }
    }

    // ---- phase 4: constraints and indexes -----------------------------------------------

    /// Keys and checks first, foreign keys (`foreign`) after the indexes: a foreign key
    /// needs the key or unique index it points at.
    fn constraints(&mut self, from: &Model, foreign: bool) {
        let to = self.to;
        let mut order: Vec<(&QualifiedName, &Constraint)> = to
            .tables
            .iter()
            .flat_map(|(name, t)| t.constraints.values().map(move |c| (name, c)))
            .filter(|(_, c)| !c.inherited && (c.kind == ConstraintKind::ForeignKey) == foreign)
            .collect();
        order.sort_by_key(|(name, c)| (c.kind, (*name).clone(), c.name.clone()));
        for (name, constraint) in order {
            let old_table = from.tables.get(name);
            let existing_table = old_table.is_some();
            let before = old_table.and_then(|t| t.constraints.get(&constraint.name));
            let object = format!("constraint {} on {name}", constraint.name);
            let readd = self
                .constraints_to_readd
                .contains(&(name.clone(), constraint.name.clone()));
            match before {
                Some(old) if same_constraint(old, constraint) && !readd => {}
                Some(old)
                    if old.definition == constraint.definition
                        && !old.validated
                        && constraint.validated
                        && !readd =>
                {
                    self.push(
                        object.clone(),
                        Change::Alter,
                        format!(
                            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                            name.sql(),
                            ident(&constraint.name)
                        ),
                    );
                }
                _ => {
                    let change = if before.is_some() {
                        Change::Alter
                    } else {
                        Change::Create
                    };
                    self.add_constraint(name, constraint, existing_table, object.clone(), change);
                    if readd && before.is_some_and(|b| same_constraint(b, constraint)) {
                        let count = self.plan.steps.len();
                        for step in &mut self.plan.steps[count.saturating_sub(2)..] {
                            if step.object == object {
                                step.derived = true;
                            }
                        }
                    }
                }
            }
            let old_comment = before.and_then(|c| c.comment.as_deref());
            if old_comment != constraint.comment.as_deref()
                || (readd && constraint.comment.is_some())
            {
                self.comment(
                    object,
                    format!("CONSTRAINT {} ON {}", ident(&constraint.name), name.sql()),
                    constraint.comment.as_deref(),
                );
            }
        }
    }

    fn add_constraint(
        &mut self,
        table: &QualifiedName,
        constraint: &Constraint,
        existing_table: bool,
        object: String,
        change: Change,
    ) {
        let validate_later = existing_table
            && constraint.validated
            && matches!(
                constraint.kind,
                ConstraintKind::Check | ConstraintKind::ForeignKey
            );
        if validate_later {
            self.push(
                object.clone(),
                change,
                ddl::add_constraint(table, constraint, true),
            );
            let step = self.push(
                object,
                change,
                format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                    table.sql(),
                    ident(&constraint.name)
                ),
            );
            step.hazards.push(Hazard::MayFail);
            return;
        }
        let is_key = matches!(
            constraint.kind,
            ConstraintKind::PrimaryKey | ConstraintKind::Unique
        );
        let partitioned = self
            .to
            .tables
            .get(table)
            .is_some_and(|t| t.partition_by.is_some());
        if existing_table
            && is_key
            && self.options.concurrently
            && !partitioned
            && let Some(index) = key_index(table, constraint)
        {
            // Build the index without blocking writes, then make it the key.
            let step = self.push(object.clone(), change, index);
            step.transactional = false;
            step.hazards.push(Hazard::MayFail);
            let kind = if constraint.kind == ConstraintKind::PrimaryKey {
                "PRIMARY KEY"
            } else {
                "UNIQUE"
            };
            self.push(
                object,
                change,
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {kind} USING INDEX {}",
                    table.sql(),
                    ident(&constraint.name),
                    ident(&constraint.name)
                ),
            );
            return;
        }
        let step = self.push(
            object,
            change,
            ddl::add_constraint(table, constraint, !constraint.validated),
        );
        if existing_table {
            if is_key || constraint.kind == ConstraintKind::Exclusion {
                step.hazards.push(Hazard::LongLock);
            }
            step.hazards.push(Hazard::MayFail);
        }
    }

    fn indexes(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            for index in table.indexes.values() {
                if index.parent.is_some() {
                    continue;
                }
                let before = old.and_then(|t| t.indexes.get(&index.name));
                let rebuild = self
                    .indexes_to_rebuild
                    .contains(&(name.clone(), index.name.clone()));
                let same = before.is_some_and(|b| same_index(b, index));
                if same && !rebuild {
                    if before.and_then(|b| b.comment.as_deref()) != index.comment.as_deref() {
                        self.index_comment(name, index);
                    }
                    continue;
                }
                let online =
                    old.is_some() && self.options.concurrently && table.partition_by.is_none();
                self.create_index(
                    name,
                    index,
                    online,
                    old.is_some(),
                    if before.is_some() {
                        Change::Alter
                    } else {
                        Change::Create
                    },
                );
                if let Some(step) = self.plan.steps.last_mut() {
                    if old.is_some() && !online {
                        step.hazards.push(Hazard::LongLock);
                    }
                    step.derived = same;
                }
                if index.comment.is_some() {
                    self.index_comment(name, index);
                }
            }
        }
    }

    /// `existing`: the table or view holds rows already (a unique index can fail on them).
    fn create_index(
        &mut self,
        table: &QualifiedName,
        index: &Index,
        online: bool,
        existing: bool,
        change: Change,
    ) {
        // A partitioned table's index is rendered `ON ONLY`; created plainly it cascades to
        // the partitions, as the original did.
        let definition = index.definition.replacen(" ON ONLY ", " ON ", 1);
        let sql = if online {
            ddl::concurrently(&definition)
        } else {
            definition
        };
        let is_unique = sql.starts_with("CREATE UNIQUE");
        let step = self.push(index_object(table, &index.name), change, sql);
        step.transactional = !online;
        if is_unique && existing {
            step.hazards.push(Hazard::MayFail);
        }
    }

    fn index_comment(&mut self, table: &QualifiedName, index: &Index) {
        self.comment(
            index_object(table, &index.name),
            format!(
                "INDEX {}",
                QualifiedName::new(table.schema.clone(), index.name.clone()).sql()
            ),
            index.comment.as_deref(),
        );
    }

    fn sequence_owners(&mut self, from: &Model) {
        let to = self.to;
        for (name, sequence) in &to.sequences {
            let before = from
                .sequences
                .get(name)
                .filter(|_| !self.disowned_sequences.contains(name))
                .and_then(|s| s.owned_by.as_ref());
            if before == sequence.owned_by.as_ref() {
                continue;
            }
            let owner = match &sequence.owned_by {
                Some((table, column)) => format!("{}.{}", table.sql(), ident(column)),
                None => "NONE".to_string(),
            };
            self.push(
                format!("sequence {name}"),
                if from.sequences.contains_key(name) {
                    Change::Alter
                } else {
                    Change::Create
                },
                format!("ALTER SEQUENCE {} OWNED BY {owner}", name.sql()),
            );
        }
    }

    // ---- phase 5: views, triggers, policies -------------------------------------------

    fn views(&mut self, from: &Model) {
        let to = self.to;
        for name in view_order(&to.views) {
            let view = &to.views[&name];
            let old = from.views.get(&name);
            let object = view_object(view);
            let rebuilt = old.is_none() || self.recreated_views.contains(&name);
            if rebuilt {
                let changed = old.is_none_or(|o| !same_view(o, view));
                let step = self.push(
                    object.clone(),
                    if old.is_some() {
                        Change::Alter
                    } else {
                        Change::Create
                    },
                    ddl::create_view(view),
                );
                step.derived = !changed;
                if view.materialized && old.is_some() {
                    step.hazards.push(Hazard::LongLock);
                }
            }
            for index in view.indexes.values() {
                let before = old.and_then(|v| v.indexes.get(&index.name));
                let same = before.is_some_and(|b| same_index(b, index));
                if same && !rebuilt {
                    continue;
                }
                if before.is_some() && !same && !rebuilt {
                    self.push(
                        index_object(&name, &index.name),
                        Change::Alter,
                        format!(
                            "DROP INDEX {}",
                            QualifiedName::new(name.schema.clone(), index.name.clone()).sql()
                        ),
                    );
                }
                let online = !rebuilt && self.options.concurrently;
                self.create_index(&name, index, online, old.is_some(), Change::Create);
                if let Some(step) = self.plan.steps.last_mut() {
                    step.derived = same;
                }
            }
            if let Some(old) = old {
                for index in old.indexes.values() {
                    if !view.indexes.contains_key(&index.name) && !rebuilt {
                        self.push(
                            index_object(&name, &index.name),
                            Change::Drop,
                            format!(
                                "DROP INDEX {}",
                                QualifiedName::new(name.schema.clone(), index.name.clone()).sql()
                            ),
                        );
                    }
                }
            }
            let before = old.and_then(|v| v.comment.as_deref());
            if before != view.comment.as_deref() || (rebuilt && view.comment.is_some()) {
                let kind = if view.materialized {
                    "MATERIALIZED VIEW"
                } else {
                    "VIEW"
                };
                self.comment(
                    object,
                    format!("{kind} {}", name.sql()),
                    view.comment.as_deref(),
                );
            }
        }
    }

    fn triggers(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            for trigger in table.triggers.values() {
                let before = old.and_then(|t| t.triggers.get(&trigger.name));
                let object = format!("trigger {} on {name}", trigger.name);
                let rebuilt = self.triggers_to_readd.contains(name);
                let recreate = rebuilt || before.is_none_or(|b| b.definition != trigger.definition);
                if recreate {
                    let step = self.push(
                        object.clone(),
                        if before.is_some() {
                            Change::Alter
                        } else {
                            Change::Create
                        },
                        trigger.definition.clone(),
                    );
                    step.derived = before.is_some_and(|b| b == trigger);
                }
                let state_before = if recreate {
                    'O'
                } else {
                    before.map(|b| b.enabled).unwrap_or('O')
                };
                if state_before != trigger.enabled {
                    self.push(
                        object.clone(),
                        Change::Alter,
                        ddl::trigger_state(name, trigger),
                    );
                }
                let comment_before = if recreate {
                    None
                } else {
                    before.and_then(|b| b.comment.as_deref())
                };
                if comment_before != trigger.comment.as_deref() {
                    self.comment(
                        object,
                        format!("TRIGGER {} ON {}", ident(&trigger.name), name.sql()),
                        trigger.comment.as_deref(),
                    );
                }
            }
        }
    }

    fn policies(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            for policy in table.policies.values() {
                let before = old.and_then(|t| t.policies.get(&policy.name));
                let object = format!("policy {} on {name}", policy.name);
                let rebuilt = self.policies_to_readd.contains(name);
                let recreate = rebuilt || before.is_none_or(|b| !same_policy(b, policy));
                if recreate {
                    let step = self.push(
                        object.clone(),
                        if before.is_some() {
                            Change::Alter
                        } else {
                            Change::Create
                        },
                        ddl::create_policy(name, policy),
                    );
                    step.derived = before.is_some_and(|b| same_policy(b, policy));
                }
                let comment_before = if recreate {
                    None
                } else {
                    before.and_then(|b| b.comment.as_deref())
                };
                if comment_before != policy.comment.as_deref() {
                    self.comment(
                        object,
                        format!("POLICY {} ON {}", ident(&policy.name), name.sql()),
                        policy.comment.as_deref(),
                    );
                }
            }
            if let Some(old) = old {
                let object = format!("row level security on {name}");
                if old.row_security != table.row_security {
                    self.push(
                        object.clone(),
                        Change::Alter,
                        format!(
                            "ALTER TABLE {} {} ROW LEVEL SECURITY",
                            name.sql(),
                            if table.row_security {
                                "ENABLE"
                            } else {
                                "DISABLE"
                            }
                        ),
                    );
                }
                if old.force_row_security != table.force_row_security {
                    self.push(
                        object,
                        Change::Alter,
                        format!(
                            "ALTER TABLE {} {} ROW LEVEL SECURITY",
                            name.sql(),
                            if table.force_row_security {
                                "FORCE"
                            } else {
                                "NO FORCE"
                            }
                        ),
                    );
                }
            }
        }
    }

    /// `GRANT` and `REVOKE`, once every object exists. An object created (or created again)
    /// here starts from what a new object of its kind holds.
    fn privileges(&mut self, from: &Model) {
        let to = self.to;
        for (name, schema) in &to.schemas {
            // PostgreSQL 15's `public`: usable by everyone, as a new database has it.
            let default = if name == "public" {
                Privileges {
                    grants: vec![Grant {
                        grantee: PUBLIC.to_string(),
                        privilege: "USAGE".to_string(),
                        grantable: false,
                    }],
                    owner_revoked: Vec::new(),
                }
            } else {
                Privileges::default()
            };
            let old = from.schemas.get(name);
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "SCHEMAS", None),
            };
            self.grant(
                format!("schema {name}"),
                format!("SCHEMA {}", ident(name)),
                None,
                old.map_or(&default, |s| &s.privileges),
                &schema.privileges,
                &inherited,
            );
        }
        for (name, ty) in &to.types {
            let target = match ty.kind {
                TypeKind::Domain { .. } => PrivilegeTarget::Domain,
                _ => PrivilegeTarget::Type,
            };
            let default = Privileges::default_for(target);
            let old = from.types.get(name).filter(|_| {
                !self.recreated_enums.contains(name) && !self.recreated_types.contains(name)
            });
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "TYPES", Some(&name.schema)),
            };
            self.grant(
                type_object(ty),
                format!("{} {}", target.keyword(), name.sql()),
                None,
                old.map_or(&default, |t| &t.privileges),
                &ty.privileges,
                &inherited,
            );
        }
        let none = Privileges::default();
        for (name, sequence) in &to.sequences {
            let old = from.sequences.get(name);
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "SEQUENCES", Some(&name.schema)),
            };
            self.grant(
                format!("sequence {name}"),
                format!("SEQUENCE {}", name.sql()),
                None,
                old.map_or(&none, |s| &s.privileges),
                &sequence.privileges,
                &inherited,
            );
        }
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            let target = format!("TABLE {}", name.sql());
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "TABLES", Some(&name.schema)),
            };
            self.grant(
                format!("table {name}"),
                target.clone(),
                None,
                old.map_or(&none, |t| &t.privileges),
                &table.privileges,
                &inherited,
            );
            for column in &table.columns {
                let before = old
                    .and_then(|t| t.column(&column.name))
                    .filter(|_| {
                        !self
                            .recreated_columns
                            .contains(&(name.clone(), column.name.clone()))
                    })
                    .map_or(&none, |c| &c.privileges);
                self.grant(
                    format!("column {name}.{}", column.name),
                    target.clone(),
                    Some(&column.name),
                    before,
                    &column.privileges,
                    &[],
                );
            }
        }
        for (name, view) in &to.views {
            let old = from
                .views
                .get(name)
                .filter(|_| !self.recreated_views.contains(name));
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "TABLES", Some(&name.schema)),
            };
            self.grant(
                view_object(view),
                format!("TABLE {}", name.sql()),
                None,
                old.map_or(&none, |v| &v.privileges),
                &view.privileges,
                &inherited,
            );
        }
        for (key, function) in &to.functions {
            let target = if function.procedure {
                PrivilegeTarget::Procedure
            } else {
                PrivilegeTarget::Function
            };
            let default = Privileges::default_for(target);
            let old = from
                .functions
                .get(key)
                .filter(|_| !self.recreated_functions.contains(key));
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "FUNCTIONS", Some(&key.schema)),
            };
            self.grant(
                function_object(function),
                function_target(function),
                None,
                old.map_or(&default, |f| &f.privileges),
                &function.privileges,
                &inherited,
            );
        }
        // After the objects, as pg_dump does: what this plan creates is granted explicitly.
        let keys: BTreeSet<&DefaultPrivilegesKey> = from
            .default_privileges
            .keys()
            .chain(to.default_privileges.keys())
            .collect();
        for key in keys {
            let baseline = DefaultPrivileges::baseline(key);
            let before = from
                .default_privileges
                .get(key)
                .map_or(&baseline, |d| &d.privileges);
            let after = to
                .default_privileges
                .get(key)
                .map_or(&baseline, |d| &d.privileges);
            let prefix = match &key.schema {
                Some(schema) => format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ",
                    ident(&key.role),
                    ident(schema)
                ),
                None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {} ", ident(&key.role)),
            };
            let object = match &key.schema {
                Some(schema) => format!(
                    "default privileges of {} on {} in {schema}",
                    key.role,
                    key.objects.to_lowercase()
                ),
                None => format!(
                    "default privileges of {} on {}",
                    key.role,
                    key.objects.to_lowercase()
                ),
            };
            for (change, grantee, privileges) in privilege_changes(before, after) {
                let privileges: Vec<&str> = privileges.iter().map(String::as_str).collect();
                let sql =
                    ddl::privilege_statement(change, &key.objects, None, &privileges, &grantee);
                let step = self.push(object.clone(), Change::Alter, format!("{prefix}{sql}"));
                step.hazards.push(Hazard::MayFail);
            }
        }
    }

    /// The `REVOKE`s, then the `GRANT`s, from `before` to `after` on `target` (or on its
    /// `column`). A role named there may not exist in this cluster: the step then fails.
    ///
    /// An object created here may also get what `ALTER DEFAULT PRIVILEGES` gave on the from
    /// side (`inherited`): that is revoked where the target lacks it.
    fn grant(
        &mut self,
        object: String,
        target: String,
        column: Option<&str>,
        before: &Privileges,
        after: &Privileges,
        inherited: &[Grant],
    ) {
        if before == after && inherited.is_empty() {
            return;
        }
        let mut changes = privilege_changes(before, after);
        if !inherited.is_empty() {
            let mut wider = before.clone();
            wider.grants.extend(inherited.iter().cloned());
            let revokes = privilege_changes(&wider, after)
                .into_iter()
                .filter(|(change, _, _)| change < &ddl::PrivilegeChange::Grant);
            changes.retain(|(change, _, _)| change >= &ddl::PrivilegeChange::Grant);
            changes = revokes.chain(changes).collect();
        }
        for (change, grantee, privileges) in changes {
            let privileges: Vec<&str> = privileges.iter().map(String::as_str).collect();
            let sql = ddl::privilege_statement(change, &target, column, &privileges, &grantee);
            let step = self.push(object.clone(), Change::Alter, sql);
            if grantee != PUBLIC {
                step.hazards.push(Hazard::MayFail);
            }
        }
    }

    // ---- phase 6: what nothing uses any more -------------------------------------------

    fn drop_unused(&mut self, from: &Model) {
        let to = self.to;
        for (key, function) in &from.functions {
            if !to.functions.contains_key(key) {
                self.push(
                    function_object(function),
                    Change::Drop,
                    ddl::drop_function(function),
                );
            }
        }
        for name in self.recreated_enums.clone() {
            let old = QualifiedName::new(name.schema.clone(), format!("{}__tend_old", name.name));
            // Under the enum's own name: the old copy is part of the same change.
            self.push(
                format!("enum {name}"),
                Change::Alter,
                format!("DROP TYPE {}", old.sql()),
            );
        }
        for (name, ty) in &from.types {
            if !to.types.contains_key(name) {
                self.push(type_object(ty), Change::Drop, ddl::drop_type(ty));
            }
        }
        for (name, sequence) in &from.sequences {
            if to.sequences.contains_key(name)
                || self
                    .replaced_by_identity
                    .values()
                    .any(|gone| gone.contains(name))
            {
                continue;
            }
            // A sequence owned by a dropped (or recreated) column or table went with it.
            if let Some((table, column)) = &sequence.owned_by {
                let owner_kept = to
                    .tables
                    .get(table)
                    .is_some_and(|t| t.column(column).is_some())
                    && !self.moved.contains(&(table.clone(), column.clone()));
                if !owner_kept {
                    continue;
                }
            }
            self.push(
                format!("sequence {name}"),
                Change::Drop,
                format!("DROP SEQUENCE {}", name.sql()),
            );
        }
        for name in from.extensions.keys() {
            if !to.extensions.contains_key(name) {
                self.push(
                    format!("extension {name}"),
                    Change::Drop,
                    format!("DROP EXTENSION {}", ident(name)),
                );
            }
        }
        for name in from.schemas.keys() {
            if !to.schemas.contains_key(name) && name != "public" {
                self.push(
                    format!("schema {name}"),
                    Change::Drop,
                    format!("DROP SCHEMA {}", ident(name)),
                );
            }
        }
    }

    fn comment(&mut self, object: String, target: String, comment: Option<&str>) {
        self.push(object, Change::Alter, ddl::comment_on(&target, comment));
    }
}

/// The server keeps a `NOT NULL` constraint's name when its table or column is renamed
/// (PostgreSQL 18): `column`, renamed already, keeps the name it had as `old_column` of
/// `old_table`, which is no longer the default in `new_table`.
fn keep_not_null_name(column: &mut Column, old_table: &str, old_column: &str, new_table: &str) {
    if !column.not_null && !column.not_null_not_valid {
        return;
    }
    let name = column
        .not_null_constraint
        .take()
        .unwrap_or_else(|| not_null_name(old_table, Some(old_column)));
    column.not_null_constraint =
        Some(name).filter(|n| *n != not_null_name(new_table, Some(&column.name)));
}

/// The constraint names each schema holds, where the server names `NOT NULL` constraints.
fn taken_constraint_names(model: &Model) -> HashSet<(String, String)> {
    let mut taken = HashSet::new();
    if !model.named_not_nulls {
        return taken;
    }
    for (name, table) in &model.tables {
        let schema = || name.schema.clone();
        taken.extend(table.constraints.keys().map(|c| (schema(), c.clone())));
        for column in &table.columns {
            if column.not_null || column.not_null_not_valid {
                taken.insert((schema(), ddl::not_null_constraint(name, column)));
            }
        }
    }
    for ty in model.types.values() {
        if let TypeKind::Domain {
            not_null,
            not_null_constraint,
            checks,
            ..
        } = &ty.kind
        {
            let schema = || ty.name.schema.clone();
            taken.extend(checks.keys().map(|c| (schema(), c.clone())));
            if *not_null {
                let name = not_null_constraint
                    .clone()
                    .unwrap_or_else(|| not_null_name(&ty.name.name, None));
                taken.insert((schema(), name));
            }
        }
    }
    taken
}

fn rename_table(model: &mut Model, old: &QualifiedName, new: &QualifiedName) {
    if let Some(mut table) = model.tables.remove(old) {
        if model.named_not_nulls {
            for column in &mut table.columns {
                let name = column.name.clone();
                keep_not_null_name(column, &old.name, &name, &new.name);
            }
        }
        table.name = new.clone();
        model.tables.insert(new.clone(), table);
    }
    for table in model.tables.values_mut() {
        for constraint in table.constraints.values_mut() {
            if constraint.references.as_ref() == Some(old) {
                constraint.references = Some(new.clone());
            }
        }
        if let Some(partition) = &mut table.partition_of
            && partition.parent == *old
        {
            partition.parent = new.clone();
        }
        for parent in &mut table.inherits {
            if parent == old {
                *parent = new.clone();
            }
        }
    }
    for view in model.views.values_mut() {
        for dep in &mut view.depends_on {
            if dep == old {
                *dep = new.clone();
            }
        }
    }
    for sequence in model.sequences.values_mut() {
        if let Some((owner, _)) = &mut sequence.owned_by
            && owner == old
        {
            *owner = new.clone();
        }
    }
}

/// What `ALTER DEFAULT PRIVILEGES` on the from side gives a new object of the kind
/// (`TABLES`, ...) in `schema`, whoever creates it.
fn inherited_defaults(from: &Model, objects: &str, schema: Option<&str>) -> Vec<Grant> {
    from.default_privileges
        .values()
        .filter(|d| {
            d.key.objects == objects && d.key.schema.as_deref().is_none_or(|s| Some(s) == schema)
        })
        .flat_map(|d| d.privileges.grants.iter().cloned())
        .collect()
}

/// What turns the privileges `before` into `after`: for each change and grantee, the
/// privileges, revokes first.
fn privilege_changes(
    before: &Privileges,
    after: &Privileges,
) -> Vec<(ddl::PrivilegeChange, String, Vec<String>)> {
    use ddl::PrivilegeChange as P;
    let held = |p: &Privileges| -> BTreeMap<(String, String), bool> {
        p.grants
            .iter()
            .map(|g| ((g.grantee.clone(), g.privilege.clone()), g.grantable))
            .collect()
    };
    let (was, will) = (held(before), held(after));
    let mut changes: BTreeMap<(P, String), Vec<String>> = BTreeMap::new();
    let mut add = |change: P, grantee: &str, privilege: &str| {
        changes
            .entry((change, grantee.to_string()))
            .or_default()
            .push(privilege.to_string());
    };
    for ((grantee, privilege), &option) in &was {
        match will.get(&(grantee.clone(), privilege.clone())) {
            None => add(P::Revoke, grantee, privilege),
            Some(false) if option => add(P::RevokeGrantOption, grantee, privilege),
            _ => {}
        }
    }
    for ((grantee, privilege), &option) in &will {
        match was.get(&(grantee.clone(), privilege.clone())) {
            None if option => add(P::GrantWithGrantOption, grantee, privilege),
            None => add(P::Grant, grantee, privilege),
            Some(false) if option => add(P::GrantWithGrantOption, grantee, privilege),
            _ => {}
        }
    }
    for lost in &after.owner_revoked {
        if !before.owner_revoked.contains(lost) {
            add(P::Revoke, &lost.grantee, &lost.privilege);
        }
    }
    for back in &before.owner_revoked {
        if !after.owner_revoked.contains(back) {
            add(P::Grant, &back.grantee, &back.privilege);
        }
    }
    changes
        .into_iter()
        .map(|((change, grantee), privileges)| (change, grantee, privileges))
        .collect()
}

/// Views in an order where each comes after the views it reads.
fn view_order(views: &BTreeMap<QualifiedName, View>) -> Vec<QualifiedName> {
    let mut order = Vec::new();
    let mut placed: HashSet<&QualifiedName> = HashSet::new();
    let mut visiting: HashSet<&QualifiedName> = HashSet::new();
    fn visit<'a>(
        name: &'a QualifiedName,
        views: &'a BTreeMap<QualifiedName, View>,
        placed: &mut HashSet<&'a QualifiedName>,
        visiting: &mut HashSet<&'a QualifiedName>,
        order: &mut Vec<QualifiedName>,
    ) {
        if placed.contains(name) || !visiting.insert(name) {
            return;
        }
        if let Some(view) = views.get(name) {
            for dep in &view.depends_on {
                if views.contains_key(dep) {
                    visit(dep, views, placed, visiting, order);
                }
            }
        }
        placed.insert(name);
        order.push(name.clone());
    }
    for name in views.keys() {
        visit(name, views, &mut placed, &mut visiting, &mut order);
    }
    order
}

/// Types in an order where each comes after the types it is made of: a domain's base type, a
/// composite's attribute types, a range's subtype.
fn type_order(types: &BTreeMap<QualifiedName, Type>) -> Vec<QualifiedName> {
    let parts = |ty: &Type| -> String {
        match &ty.kind {
            TypeKind::Enum { .. } => String::new(),
            TypeKind::Domain { base, .. } => base.clone(),
            TypeKind::Composite { attributes } => attributes
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            TypeKind::Range { options } => options.clone(),
        }
    };
    let mut order = Vec::new();
    let mut placed: HashSet<&QualifiedName> = HashSet::new();
    let mut visiting: HashSet<&QualifiedName> = HashSet::new();
    fn visit<'a>(
        name: &'a QualifiedName,
        types: &'a BTreeMap<QualifiedName, Type>,
        parts: &dyn Fn(&Type) -> String,
        placed: &mut HashSet<&'a QualifiedName>,
        visiting: &mut HashSet<&'a QualifiedName>,
        order: &mut Vec<QualifiedName>,
    ) {
        if placed.contains(name) || !visiting.insert(name) {
            return;
        }
        let made_of = parts(&types[name]);
        for other in types.keys() {
            if other != name && names_type(&made_of, &other.sql()) {
                visit(other, types, parts, placed, visiting, order);
            }
        }
        placed.insert(name);
        order.push(name.clone());
    }
    for name in types.keys() {
        visit(name, types, &parts, &mut placed, &mut visiting, &mut order);
    }
    order
}

/// Whether the type text `text` (as `format_type` writes it, qualified) names `ty`: not as
/// the prefix of a longer name.
fn names_type(text: &str, ty: &str) -> bool {
    text.match_indices(ty).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ty.len()..].chars().next();
        let part = |c: Option<char>| {
            c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"' || c == '.')
        };
        !part(before) && !part(after)
    })
}

/// Tables in an order where parents (partitioned or inherited) come before children.
fn table_order(tables: &BTreeMap<QualifiedName, Table>) -> Vec<QualifiedName> {
    let depth = |table: &Table| -> usize {
        let mut depth = 0;
        let mut current = table;
        let mut seen = HashSet::new();
        while let Some(parent) = current
            .partition_of
            .as_ref()
            .map(|p| &p.parent)
            .or(current.inherits.first())
        {
            if !seen.insert(parent.clone()) {
                break;
            }
            match tables.get(parent) {
                Some(p) => {
                    depth += 1;
                    current = p;
                }
                None => break,
            }
        }
        depth
    };
    let mut order: Vec<(usize, &QualifiedName)> =
        tables.iter().map(|(name, t)| (depth(t), name)).collect();
    order.sort();
    order.into_iter().map(|(_, name)| name.clone()).collect()
}

fn same_view(a: &View, b: &View) -> bool {
    a.definition == b.definition
        && a.materialized == b.materialized
        && a.options == b.options
        && a.columns == b.columns
}

/// The names of `old`'s indexes and own (not inherited) constraints that `new` keeps
/// unchanged and that `index` / `constraint` pick: unchanged, yet to be built again.
fn kept_dependents(
    old: &Table,
    new: &Table,
    index: impl Fn(&Index) -> bool,
    constraint: impl Fn(&Constraint) -> bool,
) -> (Vec<String>, Vec<String>) {
    let indexes = old
        .indexes
        .values()
        .filter(|i| new.indexes.get(&i.name).is_some_and(|n| same_index(n, i)) && index(i))
        .map(|i| i.name.clone())
        .collect();
    let constraints = old
        .constraints
        .values()
        .filter(|c| {
            new.constraints
                .get(&c.name)
                .is_some_and(|n| same_constraint(n, c))
                && !c.inherited
                && constraint(c)
        })
        .map(|c| c.name.clone())
        .collect();
    (indexes, constraints)
}

fn same_constraint(a: &Constraint, b: &Constraint) -> bool {
    a.kind == b.kind && a.definition == b.definition && a.validated == b.validated
}

fn same_index(a: &Index, b: &Index) -> bool {
    a.definition == b.definition && a.valid == b.valid
}

fn same_policy(a: &Policy, b: &Policy) -> bool {
    a.permissive == b.permissive
        && a.command == b.command
        && a.roles == b.roles
        && a.using == b.using
        && a.check == b.check
}

/// True when `before` appears in `after` in the same relative order (values only added).
fn is_in_order_subset(before: &[String], after: &[String]) -> bool {
    let mut positions = before.iter().map(|v| after.iter().position(|a| a == v));
    let mut last = None;
    positions.all(|p| match p {
        None => false,
        Some(p) => {
            let ok = last.is_none_or(|l| p > l);
            last = Some(p);
            ok
        }
    })
}

/// Whether a column of `data_type` is of the type `ty` (or an array of it).
fn uses_type(data_type: &str, ty: &QualifiedName) -> bool {
    let name = ty.sql();
    let base = data_type.strip_suffix("[]").unwrap_or(data_type);
    base == name || base.replace('"', "") == format!("{}.{}", ty.schema, ty.name)
}

/// Whether an expression names the column `column` (as a whole identifier).
pub(crate) fn mentions_column(expression: &str, column: &str) -> bool {
    let name = ident(column);
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '"';
    expression.match_indices(&name).any(|(at, _)| {
        let before = expression[..at].chars().next_back();
        let after = expression[at + name.len()..].chars().next();
        before.is_none_or(|c| !is_part(c) && c != '.') && after.is_none_or(|c| !is_part(c))
    })
}

/// Whether an expression or definition names the type `ty` (as the server renders it with
/// an empty `search_path`: schema-qualified).
fn mentions_type(text: &str, ty: &QualifiedName) -> bool {
    let name = ty.sql();
    text.match_indices(&name).any(|(at, _)| {
        text[at + name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
    })
}

fn base_type(data_type: &str) -> &str {
    data_type.split('(').next().unwrap_or(data_type).trim()
}

const STRINGS: [&str; 3] = ["text", "character varying", "character"];
const NUMBERS: [&str; 6] = [
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "real",
    "double precision",
];

/// A change within the string or number families, or of modifiers only, needs no `USING`:
/// PostgreSQL has an assignment cast for it.
fn needs_using(from: &str, to: &str) -> bool {
    let (a, b) = (
        crate::cast::without_modifiers(from),
        crate::cast::without_modifiers(to),
    );
    let (a, b) = (a.as_str(), b.as_str());
    let arrays = from.ends_with("[]") || to.ends_with("[]");
    if arrays {
        return from.trim_end_matches("[]") != to.trim_end_matches("[]");
    }
    let family = |t: &str| {
        if STRINGS.contains(&t) {
            1
        } else if NUMBERS.contains(&t) {
            2
        } else {
            0
        }
    };
    !(a == b || (family(a) != 0 && family(a) == family(b)))
}

/// Changes PostgreSQL makes without rewriting the table: a longer or unlimited `varchar`,
/// `varchar` to `text`, an unconstrained `numeric`.
fn is_binary_widening(from: &str, to: &str) -> bool {
    let length = |t: &str| -> Option<u32> {
        t.split_once('(')
            .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
    };
    match (base_type(from), base_type(to)) {
        ("character varying", "text") => true,
        ("character varying", "character varying") => match (length(from), length(to)) {
            (Some(a), Some(b)) => b >= a,
            (_, None) => true,
            (None, Some(_)) => false,
        },
        ("numeric", "numeric") => to == "numeric",
        _ => false,
    }
}

/// Defaults that are evaluated per row when a column is added: the table is rewritten.
fn is_volatile_default(default: &str) -> bool {
    const VOLATILE: [&str; 6] = [
        "nextval(",
        "random(",
        "gen_random_uuid(",
        "uuid_generate_",
        "clock_timestamp(",
        "timeofday(",
    ];
    VOLATILE.iter().any(|f| default.contains(f))
}

/// `CREATE UNIQUE INDEX CONCURRENTLY` for a plain `PRIMARY KEY (..)` or `UNIQUE (..)`
/// constraint; `None` for anything fancier (it is then added directly).
fn key_index(table: &QualifiedName, constraint: &Constraint) -> Option<String> {
    let definition = &constraint.definition;
    let columns = definition
        .strip_prefix("PRIMARY KEY ")
        .or_else(|| definition.strip_prefix("UNIQUE "))?;
    if !columns.starts_with('(') || !columns.ends_with(')') || columns[1..].contains('(') {
        return None;
    }
    Some(format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {} USING btree {columns}",
        ident(&constraint.name),
        table.sql()
    ))
}

pub(crate) fn view_object(view: &View) -> String {
    if view.materialized {
        format!("materialized view {}", view.name)
    } else {
        format!("view {}", view.name)
    }
}

pub(crate) fn index_object(table: &QualifiedName, index: &str) -> String {
    format!("index {}.{index} on {table}", table.schema)
}

pub(crate) fn type_object(ty: &Type) -> String {
    match ty.kind {
        TypeKind::Domain { .. } => format!("domain {}", ty.name),
        TypeKind::Enum { .. } => format!("enum {}", ty.name),
        _ => format!("type {}", ty.name),
    }
}

fn type_target(ty: &Type) -> String {
    match ty.kind {
        TypeKind::Domain { .. } => format!("DOMAIN {}", ty.name.sql()),
        _ => format!("TYPE {}", ty.name.sql()),
    }
}

pub(crate) fn function_object(function: &Function) -> String {
    if function.procedure {
        format!("procedure {}", function.key)
    } else {
        format!("function {}", function.key)
    }
}

fn function_target(function: &Function) -> String {
    if function.procedure {
        format!("PROCEDURE {}", function.key.sql())
    } else {
        format!("FUNCTION {}", function.key.sql())
    }
}

/// The steps grouped by object, for a listing of drift.
pub fn group_by_object(plan: &Plan) -> HashMap<&str, Vec<&Step>> {
    let mut groups: HashMap<&str, Vec<&Step>> = HashMap::new();
    for step in &plan.steps {
        groups.entry(step.object.as_str()).or_default().push(step);
    }
    groups
}

/// Whether two column names look like one renamed: equal but for case and underscores, one
/// inside the other (`price`, `price_cents`), or a typo apart.
fn names_look_alike(a: &str, b: &str) -> bool {
    let normal = |n: &str| -> Vec<char> {
        n.chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (a, b) = (normal(a), normal(b));
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    if short.len() >= 3 && long.windows(short.len()).any(|w| w == short.as_slice()) {
        return true;
    }
    // Levenshtein distance, at most 2 for names of at least 5 characters.
    if short.len() < 5 || long.len() - short.len() > 2 {
        return false;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, y) in b.iter().enumerate() {
            let cost = usize::from(x != y);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()] <= 2
}

/// A name for a column being recreated that neither table uses, within PostgreSQL's 63
/// bytes.
fn temporary_column(name: &str, old: &Table, new: &Table) -> String {
    for n in 0.. {
        let suffix = if n == 0 {
            "__tend_new".to_string()
        } else {
            format!("__tend_new{n}")
        };
        let mut base = name.to_string();
        while base.len() + suffix.len() > 63 {
            base.pop();
        }
        let candidate = format!("{base}{suffix}");
        if old.column(&candidate).is_none() && new.column(&candidate).is_none() {
            return candidate;
        }
    }
    unreachable!("some suffix is free")
}

/// Whether `pg_get_functiondef` shows an SQL-standard body: after the header's attribute
/// lines (indented by one space) comes `BEGIN ATOMIC` or `RETURN ...`, where a body in a
/// string comes as `AS $function$...`.
fn has_sql_body(definition: &str) -> bool {
    for line in definition.lines().skip(1) {
        if line.starts_with("BEGIN ATOMIC") || line.starts_with("RETURN ") {
            return true;
        }
        if !line.starts_with(' ') {
            return false;
        }
    }
    false
}

/// `SET ...` clauses of `ALTER COLUMN` that take an identity's sequence from `before`'s
/// options to `after`'s (both lists of non-default clauses, as introspected). A clause that
/// goes away is set back to its default.
fn identity_changes(before: &[String], after: &[String]) -> String {
    let value = |options: &[String], key: &str| -> Option<String> {
        options
            .iter()
            .find_map(|o| o.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let descending = value(after, "INCREMENT BY").is_some_and(|v| v.starts_with('-'));
    let mut clauses = Vec::new();
    for key in ["INCREMENT BY", "MINVALUE", "MAXVALUE", "CACHE"] {
        match (value(before, key), value(after, key)) {
            (b, Some(a)) if b.as_deref() != Some(a.as_str()) => {
                clauses.push(format!("SET {key} {a}"))
            }
            (Some(_), None) => clauses.push(match key {
                "INCREMENT BY" => "SET INCREMENT BY 1".to_string(),
                "CACHE" => "SET CACHE 1".to_string(),
                _ => format!("SET NO {key}"),
            }),
            _ => {}
        }
    }
    let cycle = |o: &[String]| o.iter().any(|c| c == "CYCLE");
    if cycle(before) != cycle(after) {
        clauses.push(
            if cycle(after) {
                "SET CYCLE"
            } else {
                "SET NO CYCLE"
            }
            .to_string(),
        );
    }
    // START WITH is always set: its default follows MINVALUE (or MAXVALUE going down).
    let start = value(after, "START WITH").unwrap_or_else(|| {
        if descending {
            value(after, "MAXVALUE").unwrap_or_else(|| "-1".to_string())
        } else {
            value(after, "MINVALUE").unwrap_or_else(|| "1".to_string())
        }
    });
    if value(before, "START WITH").as_deref() != Some(start.as_str()) || !clauses.is_empty() {
        clauses.push(format!("SET START WITH {start}"));
    }
    clauses.join(" ")
}

#[cfg(test)]
mod tests {
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
            Table {
                name: QualifiedName::new("public", "t"),
                unlogged: false,
                partition_by: None,
                partition_of: None,
                inherits: vec![],
                options: vec![],
                columns: vec![],
                constraints: BTreeMap::new(),
                indexes: BTreeMap::new(),
                triggers: BTreeMap::new(),
                row_security: false,
                force_row_security: false,
                policies: BTreeMap::new(),
                comment: None,
                privileges: Privileges::default(),
            },
        );
        assert!(diff(&model, &model, &DiffOptions::default()).is_empty());
    }
}
