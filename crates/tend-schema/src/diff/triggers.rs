//! Triggers and policies: dropped when they change or block a column's new type, created again
//! after the views. Both are a table's named members made by one statement and dropped by
//! `DROP <kind> name ON table`: one walk ([`TableMember`]) serves the two.

use super::*;

/// What the walk needs of a trigger or a policy.
pub(super) trait TableMember: Sized {
    /// `TRIGGER` or `POLICY`, as `DROP` and `COMMENT ON` name it.
    const KEYWORD: &'static str;
    fn of(table: &Table) -> &NameMap<Self>;
    /// The tables whose members are dropped and created again though unchanged.
    fn readd(analysis: &Analysis) -> &BTreeSet<QualifiedName>;
    fn object(table: &QualifiedName, name: &str) -> ObjectId;
    fn name(&self) -> &str;
    fn comment(&self) -> Option<&str>;
    /// Whether `self` can stay as it is to become `new` (no drop and create).
    fn same(&self, new: &Self) -> bool;
    /// Whether a member created again equals what it was: the step is then only derived.
    fn unchanged(&self, new: &Self) -> bool {
        self.same(new)
    }
    fn create(&self, table: &QualifiedName) -> String;
    /// A statement after its creation, setting what `CREATE` cannot (a trigger's state).
    fn state(&self, _table: &QualifiedName, _before: Option<&Self>) -> Option<String> {
        None
    }
}

impl TableMember for Trigger {
    const KEYWORD: &'static str = "TRIGGER";
    fn of(table: &Table) -> &NameMap<Trigger> {
        &table.triggers
    }
    fn readd(analysis: &Analysis) -> &BTreeSet<QualifiedName> {
        &analysis.triggers_to_readd
    }
    fn object(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::trigger(table, name)
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
    fn same(&self, new: &Trigger) -> bool {
        self.definition == new.definition
    }
    fn unchanged(&self, new: &Trigger) -> bool {
        self == new
    }
    fn create(&self, _table: &QualifiedName) -> String {
        self.definition.clone()
    }
    /// `before` is `None` when the trigger is created (again): it starts enabled (`O`).
    fn state(&self, table: &QualifiedName, before: Option<&Trigger>) -> Option<String> {
        let state_before = before.map_or('O', |b| b.enabled);
        (state_before != self.enabled).then(|| ddl::trigger_state(table, self))
    }
}

impl TableMember for Policy {
    const KEYWORD: &'static str = "POLICY";
    fn of(table: &Table) -> &NameMap<Policy> {
        &table.policies
    }
    fn readd(analysis: &Analysis) -> &BTreeSet<QualifiedName> {
        &analysis.policies_to_readd
    }
    fn object(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::policy(table, name)
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
    fn same(&self, new: &Policy) -> bool {
        same_policy(self, new)
    }
    fn create(&self, table: &QualifiedName) -> String {
        ddl::create_policy(table, self)
    }
}

impl Differ<'_> {
    /// Phase 1: triggers and policies that go, change, or block a column's new type.
    pub(super) fn drop_triggers_and_policies(&mut self, from: &Model) {
        let to = self.to;
        for (name, old, new) in both(&from.tables, &to.tables) {
            self.drop_members::<Trigger>(name, old, new);
            self.drop_members::<Policy>(name, old, new);
        }
    }

    fn drop_members<T: TableMember>(&mut self, name: &QualifiedName, old: &Table, new: &Table) {
        let rebuilt = T::readd(&self.analysis).contains(name);
        for member in T::of(old).values() {
            let after = T::of(new).get(member.name());
            let same = after.is_some_and(|a| member.same(a));
            if !same || rebuilt {
                let change = if after.is_some() {
                    Change::Alter
                } else {
                    Change::Drop
                };
                let sql = format!(
                    "DROP {} {} ON {}",
                    T::KEYWORD,
                    ident(member.name()),
                    name.sql()
                );
                let step = self.push(T::object(name, member.name()), change, sql);
                step.derived = same;
            }
        }
    }

    /// Phase 5: triggers and policies created (again), their state and comments.
    fn create_members<T: TableMember>(
        &mut self,
        name: &QualifiedName,
        old: Option<&Table>,
        table: &Table,
    ) {
        let rebuilt = T::readd(&self.analysis).contains(name);
        for member in T::of(table).values() {
            let before = old.and_then(|t| T::of(t).get(member.name()));
            let object = T::object(name, member.name());
            let recreate = rebuilt || before.is_none_or(|b| !b.same(member));
            if recreate {
                let change = if before.is_some() {
                    Change::Alter
                } else {
                    Change::Create
                };
                let step = self.push(object.clone(), change, member.create(name));
                step.derived = before.is_some_and(|b| b.unchanged(member));
            }
            let kept = before.filter(|_| !recreate);
            if let Some(sql) = member.state(name, kept) {
                self.push(object.clone(), Change::Alter, sql);
            }
            if kept.and_then(T::comment) != member.comment() {
                self.comment(
                    object,
                    format!("{} {} ON {}", T::KEYWORD, ident(member.name()), name.sql()),
                    member.comment(),
                );
            }
        }
    }

    pub(super) fn triggers(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            self.create_members::<Trigger>(name, from.tables.get(name), table);
        }
    }

    pub(super) fn policies(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            self.create_members::<Policy>(name, old, table);
            if let Some(old) = old {
                let object = ObjectId::RowLevelSecurity(name.clone());
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
}

pub(super) fn same_policy(a: &Policy, b: &Policy) -> bool {
    a.permissive == b.permissive
        && a.command == b.command
        && a.roles == b.roles
        && a.using == b.using
        && a.check == b.check
}
