//! Rename hints (applied to the from side before anything else) and the warnings that a drop and an
//! add may be a rename.

use super::*;

impl Differ<'_> {
    pub(super) fn renames(&mut self, from: &mut Model) {
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
                    self.push(ObjectId::Table(old.clone()), Change::Alter, sql);
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
                        rename_in(&mut constraint.columns, old, new);
                        if let Some(foreign_key) = &mut constraint.foreign_key {
                            for action in [&mut foreign_key.on_delete, &mut foreign_key.on_update] {
                                if let ReferentialAction::SetNull {
                                    columns: Some(columns),
                                }
                                | ReferentialAction::SetDefault {
                                    columns: Some(columns),
                                } = action
                                {
                                    rename_in(columns, old, new);
                                }
                            }
                        }
                    }
                    for referencing in from.tables.values_mut() {
                        for constraint in referencing.constraints.values_mut() {
                            if let Some(foreign_key) = &mut constraint.foreign_key
                                && foreign_key.referenced_table == *table
                            {
                                rename_in(&mut foreign_key.referenced_columns, old, new);
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
                        ObjectId::column(table, old),
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

    pub(super) fn warn_possible_table_rename(
        &mut self,
        dropped: &HashMap<Vec<(&str, &str)>, Vec<&QualifiedName>>,
        table: &Table,
    ) {
        let Some(names) = dropped.get(&column_signature(table)) else {
            return;
        };
        for name in names {
            self.warn(format!(
                "table {name} is dropped and {} created with the same columns: if it is a rename, pass --rename {}={} or {name}'s rows are lost",
                table.name, name, table.name.name
            ));
        }
    }

    /// A column dropped while another is added may be a rename: of the same type, or of
    /// another type when it is the table's only such pair or the names look alike (`price`
    /// and `price_cents`, `userId` and `user_id`). A rename hint then renames and converts
    /// it, keeping its values. Each added column is suggested for one dropped column.
    pub(super) fn warn_possible_column_renames(
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
}

/// The server keeps a `NOT NULL` constraint's name when its table or column is renamed
/// (PostgreSQL 18): `column`, renamed already, keeps the name it had as `old_column` of
/// `old_table`, which is no longer the default in `new_table`.
pub(super) fn keep_not_null_name(
    column: &mut Column,
    old_table: &str,
    old_column: &str,
    new_table: &str,
) {
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

/// Renames `old` to `new` in a list of column names.
fn rename_in(columns: &mut [String], old: &str, new: &str) {
    for column in columns {
        if column == old {
            *column = new.to_string();
        }
    }
}

pub(super) fn rename_table(model: &mut Model, old: &QualifiedName, new: &QualifiedName) {
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
            if let Some(foreign_key) = &mut constraint.foreign_key
                && foreign_key.referenced_table == *old
            {
                foreign_key.referenced_table = new.clone();
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

/// A table's columns, names and types in order: tables with the same may be one renamed.
pub(super) fn column_signature(table: &Table) -> Vec<(&str, &str)> {
    table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect()
}

/// Whether two column names look like one renamed: equal but for case and underscores, one
/// inside the other (`price`, `price_cents`), or a typo apart.
pub(super) fn names_look_alike(a: &str, b: &str) -> bool {
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
