//! [`Members`]: a set of table members (columns, constraints, indexes) by table, asked
//! without building a key.
//!
//! The diff asks "is this column retyped, this constraint added again?" once for every
//! member of every table. A set of `(table, member)` pairs needs both names cloned into a
//! key for each question (two allocations a column at 20,000 tables); this one is asked with
//! borrowed names, and an empty one answers at once.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::QualifiedName;

/// Members by table, iterated in (table, member) order.
#[derive(Debug, Default)]
pub(super) struct Members(BTreeMap<QualifiedName, BTreeSet<String>>);

impl Members {
    /// Adds `member` of `table`; false when it was there already.
    pub(super) fn insert(&mut self, table: &QualifiedName, member: impl Into<String>) -> bool {
        match self.0.get_mut(table) {
            Some(members) => members.insert(member.into()),
            None => {
                self.0
                    .insert(table.clone(), BTreeSet::from([member.into()]));
                true
            }
        }
    }

    pub(super) fn contains(&self, table: &QualifiedName, member: &str) -> bool {
        !self.0.is_empty() && self.0.get(table).is_some_and(|m| m.contains(member))
    }

    pub(super) fn has_table(&self, table: &QualifiedName) -> bool {
        !self.0.is_empty() && self.0.contains_key(table)
    }

    /// The tables with any member here.
    pub(super) fn tables(&self) -> impl Iterator<Item = &QualifiedName> {
        self.0.keys()
    }

    /// Every (table, member), in that order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&QualifiedName, &String)> {
        self.0
            .iter()
            .flat_map(|(table, members)| members.iter().map(move |m| (table, m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_by_table_and_member() {
        let users = QualifiedName::new("public", "users");
        let orders = QualifiedName::new("public", "orders");
        let mut members = Members::default();
        assert!(!members.contains(&users, "id"));
        assert!(members.insert(&users, "id"));
        assert!(!members.insert(&users, "id"));
        members.insert(&orders, "total");
        members.insert(&users, "email");
        assert!(members.contains(&users, "email"));
        assert!(!members.contains(&orders, "id"));
        let all: Vec<_> = members
            .iter()
            .map(|(t, m)| (t.name.as_str(), m.as_str()))
            .collect();
        assert_eq!(
            all,
            [("orders", "total"), ("users", "email"), ("users", "id")]
        );
        assert_eq!(members.tables().count(), 2);
    }
}
