//! What changes, found before any step is written: an immutable [`Analysis`] of the two models that
//! the phases read.

use super::*;

/// What changes, found before any step is written: the phases read it and never change it.
#[derive(Default)]
pub(super) struct Analysis {
    /// Columns whose type changes: views, policies and triggers over them are rebuilt.
    pub(super) retyped: Members,
    /// Views dropped and created again (changed, or over something that changes).
    pub(super) recreated_views: BTreeSet<QualifiedName>,
    /// Enums whose values are taken away or reordered: built anew and swapped in.
    pub(super) recreated_enums: BTreeSet<QualifiedName>,
    /// Unchanged constraints (table, name) dropped and added again: foreign keys whose key
    /// is rebuilt, and checks that name an enum being swapped.
    pub(super) constraints_to_readd: Members,
    /// Unchanged indexes (table, name) dropped and built again because they name an enum
    /// being swapped (a predicate `status = 'x'::enum` cannot follow the column's new type).
    pub(super) indexes_to_rebuild: Members,
    /// Sequences of a column that becomes an identity (`serial` to identity), dropped just
    /// before, so the identity's own sequence gets their name as the original did.
    pub(super) replaced_by_identity: BTreeMap<(QualifiedName, String), Vec<QualifiedName>>,
    pub(super) policies_to_readd: BTreeSet<QualifiedName>,
    pub(super) triggers_to_readd: BTreeSet<QualifiedName>,
    /// Retyped columns recreated at the end of their table (copied through a temporary
    /// column), so the column order matches a migration that dropped and added them.
    pub(super) moved: Members,
    /// Constraint names (schema, name) the from side holds, where the server names `NOT
    /// NULL` constraints (PostgreSQL 18): a new one whose default name is taken would be
    /// numbered (`..._not_null1`), so the plan names it.
    pub(super) taken_constraint_names: HashSet<(String, String)>,
}

impl Analysis {
    pub(super) fn of(from: &Model, to: &Model) -> Analysis {
        let mut analysis = Analysis {
            taken_constraint_names: taken_constraint_names(from),
            ..Analysis::default()
        };
        analysis.find(from, to);
        analysis
    }

    pub(super) fn find(&mut self, from: &Model, to: &Model) {
        for (name, ty) in &to.types {
            if let (Some(old), TypeKind::Enum { values: new_values }) =
                (from.types.get(name), &ty.kind)
                && let TypeKind::Enum { values: old_values } = &old.kind
                && !is_in_order_subset(old_values, new_values)
            {
                self.recreated_enums.insert(name.clone());
            }
        }
        for (name, old, new) in both(&from.tables, &to.tables) {
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
                    self.retyped.insert(name, column.name.as_str());
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
                        new.column(&c.name).is_none() || self.retyped.contains(dep, &c.name)
                    }),
                }
            });
            if changed || over_changed_table {
                rebuild.insert(name.clone());
            }
        }
        let mut readers: HashMap<&QualifiedName, Vec<&QualifiedName>> = HashMap::new();
        for (name, view) in &from.views {
            for dep in &view.depends_on {
                readers.entry(dep).or_default().push(name);
            }
        }
        let mut pending: Vec<QualifiedName> = rebuild.iter().cloned().collect();
        while let Some(name) = pending.pop() {
            for reader in readers.get(&name).into_iter().flatten() {
                if rebuild.insert((*reader).clone()) {
                    pending.push((*reader).clone());
                }
            }
        }
        self.recreated_views = rebuild;
        // Policies and triggers over retyped columns block the type change.
        for table in self.retyped.tables() {
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
        let no_swapped_enums = self.recreated_enums.is_empty();
        for (name, old, new) in both(&from.tables, &to.tables).filter(|_| !no_swapped_enums) {
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
        let parents = parents(from);
        for (name, old, new) in both(&from.tables, &to.tables) {
            for column in self.column_moves(&parents, name, old, new) {
                self.moved.insert(name, column);
            }
        }
        for (name, old, new) in both(&from.tables, &to.tables) {
            let moved: Vec<&str> = old
                .columns
                .iter()
                .filter(|c| self.moved.contains(name, &c.name))
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
            .filter(|&(table, index)| {
                from.tables
                    .get(table)
                    .and_then(|t| t.indexes.get(index))
                    .is_some_and(|i| i.definition.starts_with("CREATE UNIQUE"))
            })
            .map(|(table, _)| table.clone())
            .collect();
        for (name, old, new) in both(&from.tables, &to.tables) {
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
                    .any(|c| self.retyped.contains(name, c));
                if !kept || retyped {
                    rebuilt_keys.insert(name.clone());
                }
            }
        }
        for (name, old, new) in both(&from.tables, &to.tables) {
            for constraint in old.constraints.values() {
                let Some(target) = constraint.references() else {
                    continue;
                };
                let unchanged = new
                    .constraints
                    .get(&constraint.name)
                    .is_some_and(|c| same_constraint(c, constraint));
                if unchanged && rebuilt_keys.contains(target) {
                    self.constraints_to_readd
                        .insert(name, constraint.name.as_str());
                }
            }
        }
    }

    /// Marks unchanged indexes and constraints of `table` to be dropped and built again.
    pub(super) fn rebuild(
        &mut self,
        table: &QualifiedName,
        indexes: Vec<String>,
        constraints: Vec<String>,
    ) {
        for index in indexes {
            self.indexes_to_rebuild.insert(table, index);
        }
        for constraint in constraints {
            self.constraints_to_readd.insert(table, constraint);
        }
    }

    /// Generated columns kept as they are but over a column whose type changes: that blocks
    /// the change, so they are dropped first and added again after.
    pub(super) fn regenerated<'t>(
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
                            && self.retyped.contains(name, &other.name)
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
    pub(super) fn column_moves(
        &self,
        parents: &HashSet<&QualifiedName>,
        name: &QualifiedName,
        old: &Table,
        new: &Table,
    ) -> Vec<String> {
        let family = |t: &Table| {
            t.partition_by.is_some() || t.partition_of.is_some() || !t.inherits.is_empty()
        };
        // Only retyped columns move.
        if !self.retyped.has_table(name) || family(old) || family(new) || parents.contains(name) {
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
}

/// The constraint names each schema holds, where the server names `NOT NULL` constraints.
pub(super) fn taken_constraint_names(model: &Model) -> HashSet<(String, String)> {
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

/// The tables of `model` that have partitions or children.
pub(super) fn parents(model: &Model) -> HashSet<&QualifiedName> {
    model
        .tables
        .values()
        .flat_map(|t| {
            t.inherits
                .iter()
                .chain(t.partition_of.as_ref().map(|p| &p.parent))
        })
        .collect()
}

/// The names of `old`'s indexes and own (not inherited) constraints that `new` keeps
/// unchanged and that `index` / `constraint` pick: unchanged, yet to be built again.
pub(super) fn kept_dependents(
    old: &Table,
    new: &Table,
    index: impl Fn(&Index) -> bool,
    constraint: impl Fn(&Constraint) -> bool,
) -> (Vec<String>, Vec<String>) {
    let indexes = old
        .indexes
        .values()
        .filter(|i| index(i) && new.indexes.get(&i.name).is_some_and(|n| same_index(n, i)))
        .map(|i| i.name.clone())
        .collect();
    let constraints = old
        .constraints
        .values()
        .filter(|c| {
            !c.inherited
                && constraint(c)
                && new
                    .constraints
                    .get(&c.name)
                    .is_some_and(|n| same_constraint(n, c))
        })
        .map(|c| c.name.clone())
        .collect();
    (indexes, constraints)
}

/// True when `before` appears in `after` in the same relative order (values only added).
pub(super) fn is_in_order_subset(before: &[String], after: &[String]) -> bool {
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
