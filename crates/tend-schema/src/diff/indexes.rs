//! Indexes: dropped when they go or change, built after the tables (`CONCURRENTLY` on existing
//! tables).

use super::*;

impl Differ<'_> {
    /// Phase 1: indexes that go or change, or are built again.
    pub(super) fn drop_indexes(&mut self, from: &Model) {
        let to = self.to;
        for (name, old, new) in both(&from.tables, &to.tables) {
            for index in old.indexes.values() {
                if index.parent.is_some() {
                    continue;
                }
                let same = new
                    .indexes
                    .get(&index.name)
                    .is_some_and(|i| same_index(i, index));
                let rebuild = self.analysis.indexes_to_rebuild.contains(name, &index.name);
                if !same || rebuild {
                    let step = self.push(
                        ObjectId::index(name, &index.name),
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

    pub(super) fn indexes(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            for index in table.indexes.values() {
                if index.parent.is_some() {
                    continue;
                }
                let before = old.and_then(|t| t.indexes.get(&index.name));
                let rebuild = self.analysis.indexes_to_rebuild.contains(name, &index.name);
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
    pub(super) fn create_index(
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
        let step = self.push(ObjectId::index(table, &index.name), change, sql);
        step.transactional = !online;
        if is_unique && existing {
            step.hazards.push(Hazard::MayFail);
        }
    }

    pub(super) fn index_comment(&mut self, table: &QualifiedName, index: &Index) {
        self.comment(
            ObjectId::index(table, &index.name),
            format!(
                "INDEX {}",
                QualifiedName::new(table.schema.clone(), index.name.clone()).sql()
            ),
            index.comment.as_deref(),
        );
    }
}

pub(super) fn same_index(a: &Index, b: &Index) -> bool {
    a.definition == b.definition && a.valid == b.valid
}
