//! The subject graph: from one row of a subject table (a user), the rows that belong to it
//! and the rows that only mention it, as SQL.
//!
//! Following every foreign key would reach far too much: a user who soft-deleted an
//! agency is `agencies.deleted_by`, and the agency's requests are not that user's data.
//! So edges are of two kinds. An edge *owns* when the child's rows belong to the parent's
//! (`ON DELETE CASCADE`, or a declared link that says so): the subject's owned rows own in
//! turn, and the search goes on through them. Any other edge only *references*: its rows
//! mention an owned row (`tasks.assignee_id`), and an erasure unlinks them (their columns
//! set to NULL) without taking the rest of the row, and the search stops there.

use std::collections::{BTreeMap, BTreeSet};

use tend_schema::model::{QualifiedName, ident};

use crate::graph::{LinkKind, OnDelete, ReferenceGraph};

/// How a child's row holds a value of its parent's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    /// A column.
    Column(String),
    /// A text value inside a JSON column, at a path of keys (`metadata -> 'actor' ->> 'id'`).
    JsonPath { column: String, path: Vec<String> },
}

impl Holder {
    /// The value as SQL over the row written `row`; a JSON path gives text.
    pub fn sql(&self, row: &str) -> String {
        match self {
            Holder::Column(column) => format!("{row}.{}", ident(column)),
            Holder::JsonPath { column, path } => {
                let mut sql = format!("{row}.{}", ident(column));
                for (i, key) in path.iter().enumerate() {
                    let arrow = if i + 1 == path.len() { "->>" } else { "->" };
                    sql = format!("{sql} {arrow} {}", tend_pg::quote_literal(key));
                }
                format!("({sql})")
            }
        }
    }

    /// The column that holds it.
    pub fn column(&self) -> &str {
        match self {
            Holder::Column(column) | Holder::JsonPath { column, .. } => column,
        }
    }
}

/// One edge: rows of `child` hold, in `holders`, the values of `parent.parent_columns`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub child: QualifiedName,
    pub holders: Vec<Holder>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    /// The child's rows belong to the parent's: the subject's owned rows own in turn.
    pub owns: bool,
    /// A foreign key's name, or `declared` for a link from the configuration.
    pub name: String,
}

impl Edge {
    /// The child (written `child`) matches the parent (written `parent`).
    pub fn join_sql(&self, child: &str, parent: &str) -> String {
        self.holders
            .iter()
            .zip(&self.parent_columns)
            .map(|(holder, column)| {
                self.equals_sql(holder, child, &format!("{parent}.{}", ident(column)))
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `holder` of the child (written `child`) equals `value`. A foreign key's columns
    /// have the key's type; a declared link's may not (a text column holding a uuid), and
    /// a JSON value is text: those compare as text.
    fn equals_sql(&self, holder: &Holder, child: &str, value: &str) -> String {
        match holder {
            Holder::Column(_) if self.name != DECLARED => {
                format!("{} = {value}", holder.sql(child))
            }
            Holder::Column(_) => format!("{}::text = ({value})::text", holder.sql(child)),
            Holder::JsonPath { .. } => format!("{} = ({value})::text", holder.sql(child)),
        }
    }

    /// Whether the edge points at the subject's key itself, so rows holding the key are
    /// found without the subject's row (which an erasure may have deleted).
    fn holds_key_of(&self, graph: &SubjectGraph) -> bool {
        self.parent == graph.subject && self.parent_columns == [graph.key_column.clone()]
    }

    /// How people read it: `public.tasks(assignee_id) -> public.users`.
    pub fn describe(&self) -> String {
        let holders: Vec<String> = self
            .holders
            .iter()
            .map(|h| match h {
                Holder::Column(c) => c.clone(),
                Holder::JsonPath { column, path } => format!("{column}.{}", path.join(".")),
            })
            .collect();
        format!("{}({}) -> {}", self.child, holders.join(", "), self.parent)
    }
}

/// The name of an edge declared in the configuration rather than by a foreign key.
pub const DECLARED: &str = "declared";

/// A table the subject reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub table: QualifiedName,
    /// The subject owns rows of it (the subject's table itself, or through owning edges).
    pub owned: bool,
    /// Edges through which its rows mention owned rows without being owned by them.
    pub references: Vec<Edge>,
}

/// Edges are followed at most this deep from the subject: an ownership chain longer than
/// this is a schema tend does not guess about.
const MAX_DEPTH: usize = 8;

/// The subject table, its key column, and every edge.
#[derive(Debug, Clone)]
pub struct SubjectGraph {
    pub subject: QualifiedName,
    pub key_column: String,
    pub edges: Vec<Edge>,
}

impl SubjectGraph {
    /// The foreign keys of `graph` as edges (owning when `ON DELETE CASCADE`), then the
    /// `declared` ones.
    pub fn new(
        graph: &ReferenceGraph,
        declared: Vec<Edge>,
        subject: QualifiedName,
        key_column: String,
    ) -> SubjectGraph {
        let mut edges: Vec<Edge> = graph
            .links()
            .iter()
            .map(|link| Edge {
                child: link.child.clone(),
                holders: link
                    .child_columns
                    .iter()
                    .map(|c| Holder::Column(c.clone()))
                    .collect(),
                parent: link.parent.clone(),
                parent_columns: link.parent_columns.clone(),
                owns: link.on_delete == OnDelete::Cascade,
                name: match &link.kind {
                    LinkKind::ForeignKey(name) => name.clone(),
                    LinkKind::Declared => DECLARED.to_string(),
                },
            })
            .collect();
        edges.extend(declared);
        edges.sort();
        edges.dedup();
        SubjectGraph {
            subject,
            key_column,
            edges,
        }
    }

    /// Every table the subject reaches, the subject's first, then by name.
    pub fn reach(&self) -> Vec<Reach> {
        let mut owned: BTreeSet<&QualifiedName> = BTreeSet::from([&self.subject]);
        let mut frontier = vec![&self.subject];
        let mut depth = 0;
        while !frontier.is_empty() && depth < MAX_DEPTH {
            let mut next = Vec::new();
            for table in frontier {
                for edge in self.edges.iter().filter(|e| e.owns && &e.parent == table) {
                    if owned.insert(&edge.child) {
                        next.push(&edge.child);
                    }
                }
            }
            frontier = next;
            depth += 1;
        }
        let mut reached: BTreeMap<&QualifiedName, Reach> = owned
            .iter()
            .map(|t| {
                (
                    *t,
                    Reach {
                        table: (*t).clone(),
                        owned: true,
                        references: Vec::new(),
                    },
                )
            })
            .collect();
        for edge in &self.edges {
            if !edge.owns && owned.contains(&edge.parent) {
                reached
                    .entry(&edge.child)
                    .or_insert_with(|| Reach {
                        table: edge.child.clone(),
                        owned: false,
                        references: Vec::new(),
                    })
                    .references
                    .push(edge.clone());
            }
        }
        let mut out: Vec<Reach> = Vec::with_capacity(reached.len());
        if let Some(subject) = reached.remove(&self.subject) {
            out.push(subject);
        }
        out.extend(reached.into_values());
        out
    }

    /// SQL true for rows of `table` (written `row`) the subject owns, the subject's key
    /// being the SQL `key`; `None` when the subject owns none of its rows.
    pub fn owned_sql(&self, table: &QualifiedName, row: &str, key: &str) -> Option<String> {
        let mut path = vec![table.clone()];
        self.owned_inner(table, row, key, &mut path)
    }

    fn owned_inner(
        &self,
        table: &QualifiedName,
        row: &str,
        key: &str,
        path: &mut Vec<QualifiedName>,
    ) -> Option<String> {
        let mut clauses = Vec::new();
        if *table == self.subject {
            clauses.push(format!("{row}.{} = {key}", ident(&self.key_column)));
        }
        if path.len() <= MAX_DEPTH {
            let owners: Vec<&Edge> = self
                .edges
                .iter()
                .filter(|e| e.owns && &e.child == table && !path.contains(&e.parent))
                .collect();
            for edge in owners {
                if edge.holds_key_of(self) {
                    clauses.push(edge.equals_sql(&edge.holders[0], row, key));
                    continue;
                }
                let parent = format!("tend_o{}", path.len());
                path.push(edge.parent.clone());
                let inner = self.owned_inner(&edge.parent, &parent, key, path);
                path.pop();
                if let Some(inner) = inner {
                    clauses.push(format!(
                        "EXISTS (SELECT 1 FROM {} {parent} WHERE {} AND ({inner}))",
                        edge.parent.sql(),
                        edge.join_sql(row, &parent)
                    ));
                }
            }
        }
        if clauses.is_empty() {
            None
        } else {
            Some(clauses.join(" OR "))
        }
    }

    /// SQL true for rows of `edge.child` (written `row`) that mention, through `edge`, a
    /// row the subject owns.
    pub fn referencing_sql(&self, edge: &Edge, row: &str, key: &str) -> Option<String> {
        if edge.holds_key_of(self) {
            return Some(edge.equals_sql(&edge.holders[0], row, key));
        }
        let parent = "tend_r";
        let owned = self.owned_sql(&edge.parent, parent, key)?;
        Some(format!(
            "EXISTS (SELECT 1 FROM {} {parent} WHERE {} AND ({owned}))",
            edge.parent.sql(),
            edge.join_sql(row, parent)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Link;

    fn name(n: &str) -> QualifiedName {
        QualifiedName::new("public", n)
    }

    fn link(child: &str, column: &str, parent: &str, on_delete: OnDelete) -> Link {
        Link {
            child: name(child),
            child_columns: vec![column.to_string()],
            parent: name(parent),
            parent_columns: vec!["id".to_string()],
            on_delete,
            kind: LinkKind::ForeignKey(format!("{child}_{column}_fkey")),
        }
    }

    /// users own accounts (cascade); accounts own tokens; tasks only mention users
    /// (SET NULL); agencies.deleted_by mentions users, and agencies own requests, which
    /// are not the user's.
    fn saas() -> SubjectGraph {
        let graph = ReferenceGraph::from_links(vec![
            link("accounts", "user_id", "users", OnDelete::Cascade),
            link("tokens", "account_id", "accounts", OnDelete::Cascade),
            link("tasks", "assignee_id", "users", OnDelete::SetNull),
            link("agencies", "deleted_by", "users", OnDelete::SetNull),
            link("requests", "agency_id", "agencies", OnDelete::Cascade),
            link("users", "deleted_by", "users", OnDelete::SetNull),
        ]);
        let declared = Edge {
            child: name("audit_log"),
            holders: vec![Holder::JsonPath {
                column: "metadata".to_string(),
                path: vec!["actor".to_string(), "id".to_string()],
            }],
            parent: name("users"),
            parent_columns: vec!["id".to_string()],
            owns: false,
            name: DECLARED.to_string(),
        };
        SubjectGraph::new(&graph, vec![declared], name("users"), "id".to_string())
    }

    #[test]
    fn ownership_goes_on_through_owned_rows_and_a_mention_stops_the_search() {
        let reach = saas().reach();
        let shown: Vec<(String, bool, usize)> = reach
            .iter()
            .map(|r| (r.table.name.clone(), r.owned, r.references.len()))
            .collect();
        assert_eq!(
            shown,
            [
                ("users".to_string(), true, 1),
                ("accounts".to_string(), true, 0),
                ("agencies".to_string(), false, 1),
                ("audit_log".to_string(), false, 1),
                ("tasks".to_string(), false, 1),
                ("tokens".to_string(), true, 0),
            ]
        );
        // The agency's requests are not the user's.
        assert!(!reach.iter().any(|r| r.table.name == "requests"));
    }

    #[test]
    fn owned_rows_are_found_through_the_chain_of_owners() {
        let graph = saas();
        assert_eq!(
            graph.owned_sql(&name("users"), "t", "'42'::uuid").unwrap(),
            "t.id = '42'::uuid"
        );
        assert_eq!(
            graph.owned_sql(&name("tokens"), "t", "$1").unwrap(),
            "EXISTS (SELECT 1 FROM public.accounts tend_o1 WHERE t.account_id = tend_o1.id AND \
             (tend_o1.user_id = $1))"
        );
        assert_eq!(graph.owned_sql(&name("tasks"), "t", "$1"), None);
        let audit = &graph.reach()[3].references[0];
        assert_eq!(
            graph.referencing_sql(audit, "t", "$1").unwrap(),
            "(t.metadata -> 'actor' ->> 'id') = ($1)::text"
        );
    }

    #[test]
    fn cycles_of_ownership_end() {
        let graph = ReferenceGraph::from_links(vec![
            link("a", "user_id", "users", OnDelete::Cascade),
            link("b", "a_id", "a", OnDelete::Cascade),
            link("a", "b_id", "b", OnDelete::Cascade),
            link("a", "parent_id", "a", OnDelete::Cascade),
        ]);
        let subject = SubjectGraph::new(&graph, Vec::new(), name("users"), "id".to_string());
        let reach = subject.reach();
        assert_eq!(reach.len(), 3);
        let sql = subject.owned_sql(&name("a"), "t", "$1").unwrap();
        assert!(sql.contains("t.user_id = $1"), "{sql}");
        assert!(subject.owned_sql(&name("b"), "t", "$1").is_some());
    }
}
