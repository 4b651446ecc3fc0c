//! Constraints: dropped when they go or change, added after the tables (`NOT VALID` then validated
//! on existing tables; keys through a concurrently built index).

use super::*;

impl Differ<'_> {
    /// Phase 1: constraints that go or change, foreign keys first (they depend on keys).
    pub(super) fn drop_constraints(&mut self, from: &Model) {
        let to = self.to;
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
                        None => (foreign && constraint.references() != Some(name), true),
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
                                self.analysis
                                    .constraints_to_readd
                                    .contains(name, &constraint.name),
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
                        ObjectId::constraint(name, &constraint.name),
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
    }

    /// Keys and checks first, foreign keys (`foreign`) after the indexes: a foreign key
    /// needs the key or unique index it points at.
    pub(super) fn constraints(&mut self, from: &Model, foreign: bool) {
        let to = self.to;
        let mut order: Vec<(&QualifiedName, &Constraint)> = to
            .tables
            .iter()
            .flat_map(|(name, t)| t.constraints.values().map(move |c| (name, c)))
            .filter(|(_, c)| !c.inherited && (c.kind == ConstraintKind::ForeignKey) == foreign)
            .collect();
        // By kind, then table and name: the tables and their constraints come in name
        // order already, and the sort is stable.
        order.sort_by_key(|(_, c)| c.kind);
        for (name, constraint) in order {
            let old_table = from.tables.get(name);
            let existing_table = old_table.is_some();
            let before = old_table.and_then(|t| t.constraints.get(&constraint.name));
            let object = ObjectId::constraint(name, &constraint.name);
            let readd = self
                .analysis
                .constraints_to_readd
                .contains(name, &constraint.name);
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

    pub(super) fn add_constraint(
        &mut self,
        table: &QualifiedName,
        constraint: &Constraint,
        existing_table: bool,
        object: ObjectId,
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
}

/// `CREATE UNIQUE INDEX CONCURRENTLY` for a plain `PRIMARY KEY (..)` or `UNIQUE (..)`
/// constraint; `None` for anything fancier (it is then added directly).
pub(super) fn key_index(table: &QualifiedName, constraint: &Constraint) -> Option<String> {
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

pub(super) fn same_constraint(a: &Constraint, b: &Constraint) -> bool {
    a.kind == b.kind && a.definition == b.definition && a.validated == b.validated
}
