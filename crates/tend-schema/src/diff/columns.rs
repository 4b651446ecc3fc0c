//! Columns: added, dropped, retyped (with a `USING` cast, or moved to the end of their table),
//! defaults, `NOT NULL`, identity and generation.

use super::*;

/// How a retyped column's values are converted, and what that may do to them.
#[derive(Default)]
pub(super) struct Cast {
    /// The `USING` expression, where the assignment cast is not the one to use.
    using: Option<String>,
    hazards: Vec<Hazard>,
    /// What the user should know: values lost, or read in a way they may not expect.
    warning: Option<String>,
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

impl Differ<'_> {
    pub(super) fn columns(&mut self, name: &QualifiedName, old: &Table, new: &Table) {
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
                ObjectId::column(name, &column.name),
                Change::Drop,
                format!(
                    "ALTER TABLE {table_sql} DROP COLUMN {}",
                    ident(&column.name)
                ),
            );
            step.hazards.push(Hazard::DataLoss);
        }
        let regenerated = self.analysis.regenerated(name, old, new);
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
                ObjectId::column(name, &column.name),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} DROP COLUMN {}",
                    ident(&column.name)
                ),
            );
        }
        for column in &generation_changed {
            let step = self.push(
                ObjectId::column(name, &column.name),
                Change::Alter,
                format!(
                    "ALTER TABLE {table_sql} DROP COLUMN {}",
                    ident(&column.name)
                ),
            );
            step.hazards.push(Hazard::DataLoss);
        }
        for column in regenerated.iter().chain(&generation_changed) {
            self.recreated_columns.insert(name, column.name.as_str());
        }
        for column in &new.columns {
            if self.analysis.moved.contains(name, &column.name) {
                self.recreated_columns.insert(name, column.name.as_str());
            }
        }
        let is = |list: &[&Column], column: &Column| list.iter().any(|c| c.name == column.name);
        let moved = |column: &Column| self.analysis.moved.contains(name, &column.name);
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
            let object = ObjectId::column(name, &column.name);
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
    pub(super) fn move_column(
        &mut self,
        table: &QualifiedName,
        old: &Table,
        new: &Table,
        before: &Column,
        after: &Column,
    ) {
        let table_sql = table.sql();
        let column_sql = ident(&after.name);
        let object = ObjectId::column(table, &after.name);
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
    pub(super) fn cast(&self, table: &QualifiedName, before: &Column, after: &Column) -> Cast {
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
    pub(super) fn scalar_cast(&self, value: &str, from: &str, to: &str) -> Option<String> {
        let enum_swapped = self
            .analysis
            .recreated_enums
            .iter()
            .any(|e| uses_type(to, e));
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

    pub(super) fn alter_column(&mut self, table: &QualifiedName, before: &Column, after: &Column) {
        let enum_swapped = self
            .analysis
            .recreated_enums
            .iter()
            .find(|e| uses_type(&after.data_type, e))
            .cloned();
        // What follows compares the two sides aspect by aspect: a column the same on both,
        // over no enum being swapped, has no step (most columns, most of the time).
        if before == after && enum_swapped.is_none() {
            return;
        }
        let table_sql = table.sql();
        let column_sql = ident(&after.name);
        let object = ObjectId::column(table, &after.name);
        let alter = format!("ALTER TABLE {table_sql} ALTER COLUMN {column_sql}");
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
                    .analysis
                    .replaced_by_identity
                    .get(&(table.clone(), after.name.clone()))
                    .cloned()
                    .unwrap_or_default();
                for sequence in replaced {
                    self.push(
                        ObjectId::Sequence(sequence.clone()),
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
    pub(super) fn not_null_constraint(
        &mut self,
        table: &QualifiedName,
        before: &Column,
        after: &Column,
    ) {
        let has = |c: &Column| c.not_null || c.not_null_not_valid;
        if !has(before) || !has(after) {
            return;
        }
        let object = ObjectId::column(table, &after.name);
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
}

pub(super) fn base_type(data_type: &str) -> &str {
    data_type.split('(').next().unwrap_or(data_type).trim()
}

/// A change within the string or number families, or of modifiers only, needs no `USING`:
/// PostgreSQL has an assignment cast for it.
pub(super) fn needs_using(from: &str, to: &str) -> bool {
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
pub(super) fn is_binary_widening(from: &str, to: &str) -> bool {
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
pub(super) fn is_volatile_default(default: &str) -> bool {
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

/// A name for a column being recreated that neither table uses, within PostgreSQL's 63
/// bytes.
pub(super) fn temporary_column(name: &str, old: &Table, new: &Table) -> String {
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

/// `SET ...` clauses of `ALTER COLUMN` that take an identity's sequence from `before`'s
/// options to `after`'s (both lists of non-default clauses, as introspected). A clause that
/// goes away is set back to its default.
pub(super) fn identity_changes(before: &[String], after: &[String]) -> String {
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
