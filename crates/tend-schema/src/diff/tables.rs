//! Tables: created in parent-first order, altered (columns, partitions, inheritance, row level
//! security, comments) and dropped.

use super::*;

impl Differ<'_> {
    pub(super) fn tables(&mut self, from: &Model) {
        let to = self.to;
        // Dropped tables by their columns, in name order: a new table with the same columns
        // may be a rename.
        let mut dropped: HashMap<Vec<(&str, &str)>, Vec<&QualifiedName>> = HashMap::new();
        for (name, old) in &from.tables {
            if !to.tables.contains_key(name) {
                dropped.entry(column_signature(old)).or_default().push(name);
            }
        }
        // Parents before their partitions and children.
        for (name, table) in table_order(&to.tables) {
            if from.tables.contains_key(name) {
                continue;
            }
            self.warn_possible_table_rename(&dropped, table);
            let object = ObjectId::Table(name.clone());
            let mut named = table.clone();
            for column in &mut named.columns {
                *column = self.naming_not_null(name, column);
            }
            let table = &named;
            self.push(object.clone(), Change::Create, ddl::create_table(table));
            for column in &table.columns {
                if column.not_null_not_valid && !column.inherited {
                    self.push(
                        object.clone(),
                        Change::Create,
                        ddl::add_not_null(name, column),
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
                        ObjectId::column(name, &column.name),
                        format!("COLUMN {}.{}", name.sql(), ident(&column.name)),
                        column.comment.as_deref(),
                    );
                }
            }
        }
        for (name, old, new) in both(&from.tables, &to.tables) {
            self.alter_table(name, old, new);
        }
        // Children before parents; sequences they own go with them.
        let mut order = table_order(&from.tables);
        order.reverse();
        for (name, table) in order {
            if to.tables.contains_key(name) {
                continue;
            }
            // A partition goes with its parent when that is dropped too.
            if let Some(partition) = &table.partition_of
                && !to.tables.contains_key(&partition.parent)
                && from.tables.contains_key(&partition.parent)
            {
                continue;
            }
            let step = self.push(
                ObjectId::Table(name.clone()),
                Change::Drop,
                format!("DROP TABLE {}", name.sql()),
            );
            step.hazards.push(Hazard::DataLoss);
        }
    }

    pub(super) fn alter_table(&mut self, name: &QualifiedName, old: &Table, new: &Table) {
        // The same table on both sides changes only through what the analysis found: a
        // column over an enum being swapped, or retyped or moved (most tables: none).
        if old == new
            && self.analysis.recreated_enums.is_empty()
            && !self.analysis.retyped.has_table(name)
            && !self.analysis.moved.has_table(name)
        {
            return;
        }
        let table_sql = name.sql();
        let object = ObjectId::Table(name.clone());
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
}
