//! What differs between two models, object by object: the listing behind `schema verify` and
//! `schema diff`, where a [`Plan`](crate::Plan) says what to run.
//!
//! Each object that differs is listed once, under the name its plan steps carry (`column
//! public.users.email`, `enum public.role`), with each aspect that differs as an old and a
//! new value (`type integer -> bigint`, `default now() -> none`). What only follows from
//! another change is not listed on its own: the columns, keys, indexes, triggers and policies
//! of a table created or dropped, the keys and indexes PostgreSQL drops with a column (and
//! their counterparts when the column comes), a `serial` column's sequence with its column,
//! the indexes of partitions attached to their parent's, and views or keys only rebuilt
//! because something they use changes. Indexes that back a key, identity sequences and the
//! triggers of foreign keys are not in the model at all: they are part of their constraint
//! or column.
//!
//! It compares exactly what the diff compares (the same equalities), so the listing is empty
//! when the models are equal, and a plan with steps has at least one object listed.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::diff::{Change, ObjectId, Rename, default_privileges_walk, mentions_column};
use crate::model::*;
use crate::pairs::pairs;

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectDrift {
    /// The object, typed as plan steps carry it; in `--json` its name as steps print it:
    /// `column public.users.email`.
    pub object: ObjectId,
    /// Create: only on the to side. Drop: only on the from side. Alter: on both, differing.
    pub change: Change,
    /// What differs, for an altered object; for a created or dropped one, what comes or
    /// goes with it (its sequence, the index over its column).
    pub differences: Vec<Difference>,
}

/// One aspect of an object, before and after; `None` where it is absent (no default).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// `type`, `default`, `not null`, `values`, `definition`, `privileges`, ...
    pub aspect: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Difference {
    fn new(aspect: impl Into<String>, from: Option<String>, to: Option<String>) -> Difference {
        Difference {
            aspect: aspect.into(),
            from,
            to,
        }
    }

    /// `type integer -> bigint`; values over `width` characters or over several lines are
    /// shortened with an ellipsis (the JSON keeps them whole).
    pub fn describe(&self, width: usize) -> String {
        let show = |value: &Option<String>| match value {
            None => "none".to_string(),
            Some(v) => shorten(v, width),
        };
        format!("{} {} -> {}", self.aspect, show(&self.from), show(&self.to))
    }
}

/// One line, at most `width` characters (ellipsis included).
pub fn shorten(value: &str, width: usize) -> String {
    let flat: String = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let mut cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The objects that differ from `from` to `to`, in a stable order (kind by kind, as the
/// models hold them). `renamed` are the rename hints the diff applied (`from` already
/// carries the new names): each becomes a `name` difference of its object.
pub fn objects(from: &Model, to: &Model, renamed: &[Rename]) -> Vec<ObjectDrift> {
    let mut list = Listing::default();
    list.schemas(from, to);
    list.extensions(from, to);
    list.types(from, to);
    list.sequences(from, to);
    list.tables(from, to);
    list.views(from, to);
    list.functions(from, to);
    list.default_privileges(from, to);
    let mut objects = list.objects;
    for rename in renamed {
        add_rename(&mut objects, rename);
    }
    objects
}

fn add_rename(objects: &mut Vec<ObjectDrift>, rename: &Rename) {
    let (old_object, new_object, old, new) = match rename {
        Rename::Table { from, to } => (
            ObjectId::Table(from.clone()),
            ObjectId::Table(to.clone()),
            from.to_string(),
            to.to_string(),
        ),
        Rename::Column { table, from, to } => (
            ObjectId::column(table, from),
            ObjectId::column(table, to),
            from.clone(),
            to.clone(),
        ),
    };
    let name = Difference::new("name", Some(old), Some(new));
    match objects
        .iter_mut()
        .find(|o| o.object == new_object && o.change == Change::Alter)
    {
        Some(entry) => {
            entry.object = old_object;
            entry.differences.insert(0, name);
        }
        None => objects.insert(
            0,
            ObjectDrift {
                object: old_object,
                change: Change::Alter,
                differences: vec![name],
            },
        ),
    }
}

#[derive(Default)]
struct Listing {
    objects: Vec<ObjectDrift>,
}

/// The differences of one aspect, when its values differ.
fn aspect<T: PartialEq>(
    out: &mut Vec<Difference>,
    name: &str,
    from: &T,
    to: &T,
    show: impl Fn(&T) -> Option<String>,
) {
    if from != to {
        out.push(Difference::new(name, show(from), show(to)));
    }
}

fn text(value: &Option<String>) -> Option<String> {
    value.clone()
}

fn yes_no(value: &bool) -> Option<String> {
    Some(if *value { "yes" } else { "no" }.to_string())
}

fn plain<T: ToString>(value: &T) -> Option<String> {
    Some(value.to_string())
}

fn list(values: &[String]) -> Option<String> {
    if values.is_empty() {
        None
    } else {
        Some(values.join(", "))
    }
}

fn quoted(values: &[String]) -> Option<String> {
    Some(
        values
            .iter()
            .map(|v| tend_pg::quote_literal(v))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// `PUBLIC USAGE, app SELECT (with grant option)`; `none` for what the owner alone holds.
fn privileges(value: &Privileges) -> Option<String> {
    let mut parts: Vec<String> = value
        .grants
        .iter()
        .map(|g| {
            format!(
                "{} {}{}",
                g.grantee,
                g.privilege,
                if g.grantable {
                    " (with grant option)"
                } else {
                    ""
                }
            )
        })
        .collect();
    parts.extend(
        value
            .owner_revoked
            .iter()
            .map(|g| format!("owner without {}", g.privilege)),
    );
    list(&parts)
}

impl Listing {
    fn push(&mut self, object: ObjectId, change: Change, differences: Vec<Difference>) {
        if change != Change::Alter || !differences.is_empty() {
            self.objects.push(ObjectDrift {
                object,
                change,
                differences,
            });
        }
    }

    fn schemas(&mut self, from: &Model, to: &Model) {
        // `public` is never created or dropped (every database has one): only what the
        // other side says of it is compared, against a new database's `public`.
        let public_default = Privileges {
            grants: vec![Grant {
                grantee: PUBLIC.to_string(),
                privilege: "USAGE".to_string(),
                grantable: false,
            }],
            owner_revoked: Vec::new(),
        };
        for (name, old, new) in pairs(&from.schemas, &to.schemas) {
            let object = ObjectId::Schema(name.to_string());
            let public = name == "public";
            let mut d = Vec::new();
            match (old, new) {
                (None, Some(_)) if !public => self.push(object, Change::Create, d),
                (Some(_), None) if !public => self.push(object, Change::Drop, d),
                (None, Some(new)) => {
                    aspect(
                        &mut d,
                        "privileges",
                        &public_default,
                        &new.privileges,
                        privileges,
                    );
                    self.push(object, Change::Alter, d);
                }
                (Some(old), Some(new)) => {
                    aspect(&mut d, "comment", &old.comment, &new.comment, text);
                    aspect(
                        &mut d,
                        "privileges",
                        &old.privileges,
                        &new.privileges,
                        privileges,
                    );
                    self.push(object, Change::Alter, d);
                }
                _ => {}
            }
        }
    }

    fn extensions(&mut self, from: &Model, to: &Model) {
        for (name, old, new) in pairs(&from.extensions, &to.extensions) {
            let object = ObjectId::Extension(name.to_string());
            match (old, new) {
                (None, Some(_)) => self.push(object, Change::Create, Vec::new()),
                (Some(_), None) => self.push(object, Change::Drop, Vec::new()),
                (Some(old), Some(new)) => {
                    let mut d = Vec::new();
                    aspect(&mut d, "schema", &old.schema, &new.schema, plain);
                    aspect(&mut d, "version", &old.version, &new.version, plain);
                    self.push(object, Change::Alter, d);
                }
                (None, None) => {}
            }
        }
    }

    fn types(&mut self, from: &Model, to: &Model) {
        for (_, old, new) in pairs(&from.types, &to.types) {
            match (old, new) {
                (None, Some(new)) => self.push(ObjectId::of_type(new), Change::Create, Vec::new()),
                (Some(old), None) => self.push(ObjectId::of_type(old), Change::Drop, Vec::new()),
                (Some(old), Some(new)) => {
                    let d = type_differences(old, new);
                    self.push(ObjectId::of_type(new), Change::Alter, d);
                }
                (None, None) => {}
            }
        }
    }

    fn sequences(&mut self, from: &Model, to: &Model) {
        for (name, old, new) in pairs(&from.sequences, &to.sequences) {
            let object = ObjectId::Sequence(name.clone());
            match (old, new) {
                (None, Some(new)) => {
                    if !goes_with_its_column(new, to, from) {
                        self.push(object, Change::Create, Vec::new());
                    }
                }
                (Some(old), None) => {
                    if !goes_with_its_column(old, from, to) {
                        self.push(object, Change::Drop, Vec::new());
                    }
                }
                (Some(old), Some(new)) => {
                    let mut d = Vec::new();
                    aspect(&mut d, "data type", &old.data_type, &new.data_type, plain);
                    let number = |v: &i64| Some(v.to_string());
                    aspect(&mut d, "start", &old.start, &new.start, number);
                    aspect(&mut d, "increment", &old.increment, &new.increment, number);
                    aspect(&mut d, "min value", &old.min, &new.min, number);
                    aspect(&mut d, "max value", &old.max, &new.max, number);
                    aspect(&mut d, "cache", &old.cache, &new.cache, number);
                    aspect(&mut d, "cycle", &old.cycle, &new.cycle, yes_no);
                    aspect(&mut d, "owned by", &old.owned_by, &new.owned_by, |o| {
                        o.as_ref().map(|(t, c)| format!("{t}.{c}"))
                    });
                    aspect(&mut d, "comment", &old.comment, &new.comment, text);
                    aspect(
                        &mut d,
                        "privileges",
                        &old.privileges,
                        &new.privileges,
                        privileges,
                    );
                    self.push(object, Change::Alter, d);
                }
                (None, None) => {}
            }
        }
    }

    fn tables(&mut self, from: &Model, to: &Model) {
        for (name, old, new) in pairs(&from.tables, &to.tables) {
            let object = || ObjectId::Table(name.clone());
            match (old, new) {
                (None, Some(_)) => self.push(object(), Change::Create, Vec::new()),
                (Some(_), None) => self.push(object(), Change::Drop, Vec::new()),
                // The same table on both sides has no difference to list (most tables).
                (Some(old), Some(new)) if old == new => {}
                (Some(old), Some(new)) => self.table(name, old, new),
                (None, None) => {}
            }
        }
    }

    fn table(&mut self, name: &QualifiedName, old: &Table, new: &Table) {
        let mut d = Vec::new();
        aspect(&mut d, "unlogged", &old.unlogged, &new.unlogged, yes_no);
        aspect(
            &mut d,
            "partition key",
            &old.partition_by,
            &new.partition_by,
            text,
        );
        aspect(
            &mut d,
            "partition of",
            &old.partition_of,
            &new.partition_of,
            |p| p.as_ref().map(|p| format!("{} {}", p.parent, p.bound)),
        );
        aspect(&mut d, "inherits", &old.inherits, &new.inherits, |i| {
            list(&i.iter().map(ToString::to_string).collect::<Vec<_>>())
        });
        aspect(&mut d, "options", &old.options, &new.options, |o| list(o));
        aspect(&mut d, "comment", &old.comment, &new.comment, text);
        aspect(
            &mut d,
            "privileges",
            &old.privileges,
            &new.privileges,
            privileges,
        );
        self.push(ObjectId::Table(name.clone()), Change::Alter, d);

        // Columns that come or go take their keys and indexes along (PostgreSQL drops them
        // with the column): listed with the column, not on their own.
        let gone: Vec<&str> = old
            .columns
            .iter()
            .filter(|c| !c.inherited && new.column(&c.name).is_none())
            .map(|c| c.name.as_str())
            .collect();
        let come: Vec<&str> = new
            .columns
            .iter()
            .filter(|c| !c.inherited && old.column(&c.name).is_none())
            .map(|c| c.name.as_str())
            .collect();
        let index_over = |index: &Index, columns: &[&str]| {
            let over = index
                .definition
                .split_once(" USING ")
                .map_or(index.definition.as_str(), |(_, rest)| rest);
            columns.iter().any(|c| mentions_column(over, c))
        };
        let constraint_over = |c: &Constraint, columns: &[&str]| {
            c.columns.iter().any(|x| columns.contains(&x.as_str()))
        };
        let mut along: Vec<(String, Difference)> = Vec::new();
        for (side, columns, table, other) in [(0, &gone, old, new), (1, &come, new, old)] {
            let entry = |what: String, definition: &str| {
                let value = Some(definition.to_string());
                if side == 0 {
                    Difference::new(what, value, None)
                } else {
                    Difference::new(what, None, value)
                }
            };
            for c in table.constraints.values() {
                if !c.inherited
                    && !other.constraints.contains_key(&c.name)
                    && constraint_over(c, columns)
                {
                    let column = c
                        .columns
                        .iter()
                        .find(|x| columns.contains(&x.as_str()))
                        .cloned()
                        .unwrap_or_default();
                    along.push((
                        column,
                        entry(format!("constraint {}", c.name), &c.definition),
                    ));
                }
            }
            for i in table.indexes.values() {
                if i.parent.is_none()
                    && !other.indexes.contains_key(&i.name)
                    && index_over(i, columns)
                {
                    let column = columns
                        .iter()
                        .find(|c| index_over(i, &[c]))
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    along.push((column, entry(format!("index {}", i.name), &i.definition)));
                }
            }
        }
        let is_along_constraint = |c: &Constraint| {
            along
                .iter()
                .any(|(_, d)| d.aspect == format!("constraint {}", c.name))
        };
        let is_along_index = |i: &Index| {
            along
                .iter()
                .any(|(_, d)| d.aspect == format!("index {}", i.name))
        };

        for column in &old.columns {
            if column.inherited || new.column(&column.name).is_some() {
                continue;
            }
            let differences = along_with(&along, &column.name);
            self.push(
                ObjectId::column(name, &column.name),
                Change::Drop,
                differences,
            );
        }
        for column in &new.columns {
            if column.inherited {
                continue;
            }
            let object = ObjectId::column(name, &column.name);
            match old.column(&column.name) {
                None => {
                    let differences = along_with(&along, &column.name);
                    self.push(object, Change::Create, differences);
                }
                Some(before) if !before.inherited => {
                    self.push(object, Change::Alter, column_differences(before, column));
                }
                Some(_) => {}
            }
        }

        let constraints: BTreeSet<&String> = old
            .constraints
            .keys()
            .chain(new.constraints.keys())
            .collect();
        for key in constraints {
            let object = ObjectId::constraint(name, key);
            match (old.constraints.get(key), new.constraints.get(key)) {
                (None, Some(c)) if !c.inherited && !is_along_constraint(c) => {
                    self.push(object, Change::Create, Vec::new());
                }
                (Some(c), None) if !c.inherited && !is_along_constraint(c) => {
                    self.push(object, Change::Drop, Vec::new());
                }
                (Some(a), Some(b)) if !b.inherited => {
                    let mut d = Vec::new();
                    if a.kind != b.kind || a.definition != b.definition {
                        d.push(Difference::new(
                            "definition",
                            Some(a.definition.clone()),
                            Some(b.definition.clone()),
                        ));
                    }
                    aspect(&mut d, "validated", &a.validated, &b.validated, yes_no);
                    aspect(&mut d, "comment", &a.comment, &b.comment, text);
                    self.push(object, Change::Alter, d);
                }
                _ => {}
            }
        }

        self.indexes(name, &old.indexes, &new.indexes, &|i| is_along_index(i));

        self.members(
            &old.triggers,
            &new.triggers,
            |key| ObjectId::trigger(name, key),
            |a, b| {
                let mut d = Vec::new();
                aspect(&mut d, "definition", &a.definition, &b.definition, plain);
                aspect(&mut d, "enabled", &a.enabled, &b.enabled, |e| {
                    Some(trigger_state(*e).to_string())
                });
                aspect(&mut d, "comment", &a.comment, &b.comment, text);
                d
            },
        );
        self.members(
            &old.policies,
            &new.policies,
            |key| ObjectId::policy(name, key),
            |a, b| {
                let mut d = Vec::new();
                aspect(&mut d, "permissive", &a.permissive, &b.permissive, yes_no);
                aspect(&mut d, "command", &a.command, &b.command, plain);
                aspect(&mut d, "roles", &a.roles, &b.roles, |r| list(r));
                aspect(&mut d, "using", &a.using, &b.using, text);
                aspect(&mut d, "with check", &a.check, &b.check, text);
                aspect(&mut d, "comment", &a.comment, &b.comment, text);
                d
            },
        );

        let mut d = Vec::new();
        aspect(
            &mut d,
            "enabled",
            &old.row_security,
            &new.row_security,
            yes_no,
        );
        aspect(
            &mut d,
            "forced",
            &old.force_row_security,
            &new.force_row_security,
            yes_no,
        );
        self.push(ObjectId::RowLevelSecurity(name.clone()), Change::Alter, d);
    }

    /// Indexes of a table or materialized view; those attached to a partitioned parent's
    /// index come and go with it.
    /// A table's triggers or policies: each created, dropped, or altered by what `differences`
    /// finds.
    fn members<T>(
        &mut self,
        old: &NameMap<T>,
        new: &NameMap<T>,
        object: impl Fn(&str) -> ObjectId,
        differences: impl Fn(&T, &T) -> Vec<Difference>,
    ) {
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in names {
            match (old.get(key), new.get(key)) {
                (None, Some(_)) => self.push(object(key), Change::Create, Vec::new()),
                (Some(_), None) => self.push(object(key), Change::Drop, Vec::new()),
                (Some(a), Some(b)) => self.push(object(key), Change::Alter, differences(a, b)),
                (None, None) => {}
            }
        }
    }

    fn indexes(
        &mut self,
        owner: &QualifiedName,
        old: &NameMap<Index>,
        new: &NameMap<Index>,
        along: &dyn Fn(&Index) -> bool,
    ) {
        let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in names {
            let object = ObjectId::index(owner, key);
            match (old.get(key), new.get(key)) {
                (None, Some(i)) if i.parent.is_none() && !along(i) => {
                    self.push(object, Change::Create, Vec::new());
                }
                (Some(i), None) if i.parent.is_none() && !along(i) => {
                    self.push(object, Change::Drop, Vec::new());
                }
                (Some(a), Some(b)) if b.parent.is_none() => {
                    let mut d = Vec::new();
                    aspect(&mut d, "definition", &a.definition, &b.definition, plain);
                    aspect(&mut d, "valid", &a.valid, &b.valid, yes_no);
                    aspect(&mut d, "comment", &a.comment, &b.comment, text);
                    self.push(object, Change::Alter, d);
                }
                _ => {}
            }
        }
    }

    fn views(&mut self, from: &Model, to: &Model) {
        for (name, old, new) in pairs(&from.views, &to.views) {
            match (old, new) {
                (None, Some(new)) => self.push(ObjectId::of_view(new), Change::Create, Vec::new()),
                (Some(old), None) => self.push(ObjectId::of_view(old), Change::Drop, Vec::new()),
                (Some(old), Some(new)) => {
                    let mut d = Vec::new();
                    aspect(
                        &mut d,
                        "materialized",
                        &old.materialized,
                        &new.materialized,
                        yes_no,
                    );
                    aspect(
                        &mut d,
                        "definition",
                        &old.definition,
                        &new.definition,
                        plain,
                    );
                    aspect(&mut d, "columns", &old.columns, &new.columns, |c| list(c));
                    aspect(&mut d, "options", &old.options, &new.options, |o| list(o));
                    aspect(&mut d, "comment", &old.comment, &new.comment, text);
                    aspect(
                        &mut d,
                        "privileges",
                        &old.privileges,
                        &new.privileges,
                        privileges,
                    );
                    self.push(ObjectId::of_view(new), Change::Alter, d);
                    self.indexes(name, &old.indexes, &new.indexes, &|_| false);
                }
                (None, None) => {}
            }
        }
    }

    fn functions(&mut self, from: &Model, to: &Model) {
        for (_, old, new) in pairs(&from.functions, &to.functions) {
            match (old, new) {
                (None, Some(new)) => {
                    self.push(ObjectId::of_function(new), Change::Create, Vec::new())
                }
                (Some(old), None) => {
                    self.push(ObjectId::of_function(old), Change::Drop, Vec::new())
                }
                (Some(old), Some(new)) => {
                    let mut d = Vec::new();
                    aspect(&mut d, "result", &old.result, &new.result, text);
                    aspect(
                        &mut d,
                        "definition",
                        &old.definition,
                        &new.definition,
                        plain,
                    );
                    aspect(&mut d, "comment", &old.comment, &new.comment, text);
                    aspect(
                        &mut d,
                        "privileges",
                        &old.privileges,
                        &new.privileges,
                        privileges,
                    );
                    self.push(ObjectId::of_function(new), Change::Alter, d);
                }
                (None, None) => {}
            }
        }
    }

    fn default_privileges(&mut self, from: &Model, to: &Model) {
        default_privileges_walk(from, to, |key, before, after| {
            let object = ObjectId::DefaultPrivileges(key.clone());
            let mut d = Vec::new();
            aspect(&mut d, "privileges", before, after, privileges);
            self.push(object, Change::Alter, d);
        });
    }
}

/// The keys and indexes listed with a column that comes or goes.
fn along_with(along: &[(String, Difference)], column: &str) -> Vec<Difference> {
    along
        .iter()
        .filter(|(c, _)| c == column)
        .map(|(_, d)| d.clone())
        .collect()
}

fn column_differences(before: &Column, after: &Column) -> Vec<Difference> {
    let mut d = Vec::new();
    aspect(&mut d, "type", &before.data_type, &after.data_type, plain);
    aspect(
        &mut d,
        "collation",
        &before.collation,
        &after.collation,
        text,
    );
    aspect(
        &mut d,
        "not null",
        &before.not_null,
        &after.not_null,
        yes_no,
    );
    aspect(
        &mut d,
        "not null constraint",
        &before.not_null_constraint,
        &after.not_null_constraint,
        text,
    );
    aspect(
        &mut d,
        "not null no inherit",
        &before.not_null_no_inherit,
        &after.not_null_no_inherit,
        yes_no,
    );
    aspect(
        &mut d,
        "not null not valid",
        &before.not_null_not_valid,
        &after.not_null_not_valid,
        yes_no,
    );
    aspect(&mut d, "default", &before.default, &after.default, text);
    aspect(&mut d, "identity", &before.identity, &after.identity, |i| {
        i.map(|i| i.sql().to_string())
    });
    aspect(
        &mut d,
        "identity options",
        &before.identity_options,
        &after.identity_options,
        |o| list(o),
    );
    aspect(
        &mut d,
        "generated",
        &before.generated,
        &after.generated,
        text,
    );
    aspect(&mut d, "comment", &before.comment, &after.comment, text);
    aspect(
        &mut d,
        "privileges",
        &before.privileges,
        &after.privileges,
        privileges,
    );
    d
}

fn type_differences(old: &Type, new: &Type) -> Vec<Difference> {
    let mut d = Vec::new();
    match (&old.kind, &new.kind) {
        (TypeKind::Enum { values: a }, TypeKind::Enum { values: b }) => {
            aspect(&mut d, "values", a, b, |v| quoted(v));
        }
        (
            TypeKind::Domain {
                base: a_base,
                not_null: a_not_null,
                not_null_constraint: a_not_null_constraint,
                default: a_default,
                collation: a_collation,
                checks: a_checks,
            },
            TypeKind::Domain {
                base,
                not_null,
                not_null_constraint,
                default,
                collation,
                checks,
            },
        ) => {
            aspect(&mut d, "base type", a_base, base, plain);
            aspect(&mut d, "not null", a_not_null, not_null, yes_no);
            aspect(
                &mut d,
                "not null constraint",
                a_not_null_constraint,
                not_null_constraint,
                text,
            );
            aspect(&mut d, "default", a_default, default, text);
            aspect(&mut d, "collation", a_collation, collation, text);
            let names: BTreeSet<&String> = a_checks.keys().chain(checks.keys()).collect();
            for check in names {
                aspect(
                    &mut d,
                    &format!("check {check}"),
                    &a_checks.get(check).cloned(),
                    &checks.get(check).cloned(),
                    text,
                );
            }
        }
        (TypeKind::Composite { attributes: a }, TypeKind::Composite { attributes: b }) => {
            aspect(&mut d, "attributes", a, b, |attributes| {
                list(
                    &attributes
                        .iter()
                        .map(|(n, t)| format!("{n} {t}"))
                        .collect::<Vec<_>>(),
                )
            });
        }
        (TypeKind::Range { options: a }, TypeKind::Range { options: b }) => {
            aspect(&mut d, "options", a, b, plain);
        }
        (a, b) if a != b => {
            d.push(Difference::new(
                "kind",
                Some(kind_word(a).to_string()),
                Some(kind_word(b).to_string()),
            ));
        }
        _ => {}
    }
    aspect(&mut d, "comment", &old.comment, &new.comment, text);
    aspect(
        &mut d,
        "privileges",
        &old.privileges,
        &new.privileges,
        privileges,
    );
    d
}

fn kind_word(kind: &TypeKind) -> &'static str {
    match kind {
        TypeKind::Enum { .. } => "enum",
        TypeKind::Domain { .. } => "domain",
        TypeKind::Composite { .. } => "composite",
        TypeKind::Range { .. } => "range",
    }
}

fn trigger_state(enabled: char) -> &'static str {
    match enabled {
        'D' => "disabled",
        'R' => "replica",
        'A' => "always",
        _ => "origin",
    }
}

/// A `serial` column's sequence that is only on one side (`side`) together with its column:
/// it comes or goes with the column (or its table), or gives way to an identity.
fn goes_with_its_column(sequence: &Sequence, side: &Model, other: &Model) -> bool {
    let Some((table, column)) = &sequence.owned_by else {
        return false;
    };
    let owner_here = side
        .tables
        .get(table)
        .and_then(|t| t.column(column))
        .is_some();
    match other.tables.get(table).and_then(|t| t.column(column)) {
        None => owner_here,
        Some(c) => c.identity.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_multiline_values_are_shortened_to_one_line() {
        let d = Difference::new(
            "definition",
            Some("SELECT a,\n  b\nFROM t".to_string()),
            None,
        );
        assert_eq!(d.describe(40), "definition SELECT a, b FROM t -> none");
        assert_eq!(shorten("abcdefghij", 5), "abcd…");
    }
}
