//! The reference graph: tables as nodes, a link from each referencing (child) table to the
//! table it references (parent), from the schema model's typed foreign keys and from links
//! a project declares where no constraint exists (a column that holds another table's key).
//!
//! - [`ReferenceGraph::delete_order`]: children before parents, so a purge never deletes a
//!   row something still references; tables in a cycle form one group, to be purged
//!   together (one transaction, or nulling the cycle's nullable links first).
//! - [`ReferenceGraph::delete_reaches`]: what a delete from a table does elsewhere:
//!   `CASCADE` deletes (followed on), `SET NULL`/`SET DEFAULT` updates, and the links that
//!   refuse it (`RESTRICT`, `NO ACTION`).
//! - [`ReferenceGraph::reachable_from`]: every table whose rows reference a subject's
//!   rows, directly or through other tables, with the path that reaches each.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tend_schema::model::{Model, QualifiedName, ReferentialAction};

/// What a delete of a referenced row does to the rows that reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OnDelete {
    /// They are deleted too.
    Cascade,
    /// Their referencing columns are set to NULL.
    SetNull,
    /// Their referencing columns are set to their defaults.
    SetDefault,
    /// The delete fails while they exist (`RESTRICT`, or `NO ACTION` at the end of the
    /// statement or, when deferred, of the transaction).
    Refuse,
    /// Nothing: a declared link has no constraint, so the database does nothing.
    Nothing,
}

impl OnDelete {
    fn of(action: &ReferentialAction) -> OnDelete {
        match action {
            ReferentialAction::Cascade => OnDelete::Cascade,
            ReferentialAction::SetNull { .. } => OnDelete::SetNull,
            ReferentialAction::SetDefault { .. } => OnDelete::SetDefault,
            ReferentialAction::NoAction | ReferentialAction::Restrict => OnDelete::Refuse,
        }
    }
}

/// Where a link comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkKind {
    /// A foreign key constraint, by name.
    ForeignKey(String),
    /// Declared in the project's configuration: the database knows nothing of it.
    Declared,
}

/// One table referencing another: `child.child_columns` hold values of
/// `parent.parent_columns`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    pub child: QualifiedName,
    pub child_columns: Vec<String>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    pub on_delete: OnDelete,
    pub kind: LinkKind,
}

/// A table reached from a subject, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub table: QualifiedName,
    /// The links followed from the subject's table, in order: the first one's parent is
    /// the subject's table, the last one's child is `table`. Empty for the subject's table.
    pub path: Vec<Link>,
}

/// What deleting rows of one table does to others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReach {
    /// Tables whose rows are deleted too, through `ON DELETE CASCADE` (followed on: a
    /// cascaded delete cascades further), each with the link that reaches it.
    pub cascades: Vec<Link>,
    /// Links whose referencing columns the delete sets to NULL or their default.
    pub updates: Vec<Link>,
    /// Links that make the delete fail while referencing rows exist, from the table or
    /// from any table the delete cascades into.
    pub refused_by: Vec<Link>,
    /// Declared links the database does not enforce: rows there would keep a dangling
    /// value unless the purge handles them.
    pub unenforced: Vec<Link>,
}

/// The tables of a schema and the links between them.
#[derive(Debug, Clone, Default)]
pub struct ReferenceGraph {
    tables: BTreeSet<QualifiedName>,
    links: Vec<Link>,
}

impl ReferenceGraph {
    /// The graph of `model`'s foreign keys. A partitioned table stands for its
    /// partitions: their copies of its foreign keys are left out, and a link to or from a
    /// partition is a link to or from the partitioned table it belongs to.
    pub fn of(model: &Model) -> ReferenceGraph {
        let root_of = |name: &QualifiedName| -> QualifiedName {
            let mut current = name;
            while let Some(parent) = model
                .tables
                .get(current)
                .and_then(|t| t.partition_of.as_ref())
                .map(|p| &p.parent)
            {
                if parent == current {
                    break;
                }
                current = parent;
            }
            current.clone()
        };
        let mut graph = ReferenceGraph {
            tables: model
                .tables
                .values()
                .filter(|t| t.partition_of.is_none())
                .map(|t| t.name.clone())
                .collect(),
            links: Vec::new(),
        };
        let links: BTreeSet<Link> = model
            .references()
            .filter(|r| !r.constraint.inherited)
            .map(|r| Link {
                child: root_of(r.table),
                child_columns: r.columns().to_vec(),
                parent: root_of(&r.foreign_key.referenced_table),
                parent_columns: r.foreign_key.referenced_columns.clone(),
                on_delete: OnDelete::of(&r.foreign_key.on_delete),
                kind: LinkKind::ForeignKey(r.constraint.name.clone()),
            })
            .collect();
        // Through `add`: a link always names tables of the graph, even one the model
        // does not hold.
        for link in links {
            graph.add(link);
        }
        graph
    }

    /// A graph of these links alone (and the tables they name).
    pub fn from_links(links: Vec<Link>) -> ReferenceGraph {
        let mut graph = ReferenceGraph::default();
        for link in links {
            graph.add(link);
        }
        graph
    }

    /// Adds a link (a declared one: a column that references without a constraint).
    pub fn add(&mut self, link: Link) {
        self.tables.insert(link.child.clone());
        self.tables.insert(link.parent.clone());
        if !self.links.contains(&link) {
            self.links.push(link);
        }
    }

    pub fn tables(&self) -> &BTreeSet<QualifiedName> {
        &self.tables
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The links pointing at `table`: the rows that reference its rows.
    pub fn referencing<'a>(&'a self, table: &'a QualifiedName) -> impl Iterator<Item = &'a Link> {
        self.links.iter().filter(move |l| &l.parent == table)
    }

    /// `tables` in an order to purge them: each table before every table it references,
    /// directly or through others (the whole graph counts, not only `tables`), so no
    /// delete meets a row that still references it. Tables that reference each other in a
    /// cycle (a table referencing itself included) come as one group; the groups are in
    /// order, the tables in a group sorted by name.
    pub fn delete_order(&self, tables: &BTreeSet<QualifiedName>) -> Vec<Vec<QualifiedName>> {
        // Tarjan's strongly connected components over child -> parent links: it emits a
        // component only after every component it reaches (its parents), so the reverse
        // of its order puts children first.
        let nodes: Vec<&QualifiedName> = self.tables.iter().collect();
        let index_of: BTreeMap<&QualifiedName, usize> =
            nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for link in &self.links {
            let (c, p) = (index_of[&link.child], index_of[&link.parent]);
            if !next[c].contains(&p) {
                next[c].push(p);
            }
        }
        for targets in &mut next {
            targets.sort_unstable();
        }
        let mut order: Vec<Vec<QualifiedName>> = strongly_connected(&next)
            .into_iter()
            .rev()
            .map(|members| {
                let mut group: Vec<QualifiedName> = members
                    .into_iter()
                    .map(|i| nodes[i].clone())
                    .filter(|t| tables.contains(t))
                    .collect();
                group.sort();
                group
            })
            .filter(|group| !group.is_empty())
            .collect();
        // Tables the graph does not know reference nothing: any place is right.
        let unknown: Vec<QualifiedName> = tables.difference(&self.tables).cloned().collect();
        order.extend(unknown.into_iter().map(|t| vec![t]));
        order
    }

    /// What deleting rows of `table` does elsewhere, following cascades to their end.
    pub fn delete_reaches(&self, table: &QualifiedName) -> DeleteReach {
        let mut reach = DeleteReach::default();
        let mut deleted: BTreeSet<&QualifiedName> = BTreeSet::from([table]);
        let mut queue: VecDeque<&QualifiedName> = VecDeque::from([table]);
        while let Some(current) = queue.pop_front() {
            for link in self.referencing(current) {
                match link.on_delete {
                    OnDelete::Cascade => {
                        reach.cascades.push(link.clone());
                        if deleted.insert(&link.child) {
                            queue.push_back(&link.child);
                        }
                    }
                    OnDelete::SetNull | OnDelete::SetDefault => reach.updates.push(link.clone()),
                    OnDelete::Refuse => reach.refused_by.push(link.clone()),
                    OnDelete::Nothing => reach.unenforced.push(link.clone()),
                }
            }
        }
        reach
    }

    /// Every table whose rows reference rows of `subject`, directly or through other
    /// tables (a comment on a post by the subject), with the shortest path that reaches
    /// it; the subject's table first, with an empty path. Each table comes once, however
    /// many paths and cycles lead to it.
    pub fn reachable_from(&self, subject: &QualifiedName) -> Vec<Reached> {
        let mut found = vec![Reached {
            table: subject.clone(),
            path: Vec::new(),
        }];
        let mut seen: BTreeSet<QualifiedName> = BTreeSet::from([subject.clone()]);
        let mut at = 0;
        while at < found.len() {
            let here = found[at].clone();
            let mut links: Vec<&Link> = self.referencing(&here.table).collect();
            links.sort();
            for link in links {
                if seen.insert(link.child.clone()) {
                    let mut path = here.path.clone();
                    path.push(link.clone());
                    found.push(Reached {
                        table: link.child.clone(),
                        path,
                    });
                }
            }
            at += 1;
        }
        found
    }
}

/// Tarjan's algorithm, iterative (a deep chain of tables must not overflow the stack):
/// the strongly connected components of the graph `next`, each emitted after every
/// component reachable from it.
fn strongly_connected(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let count = next.len();
    let mut index = vec![UNSEEN; count];
    let mut low = vec![0; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut counter = 0;
    for root in 0..count {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, position in its list of successors)
        let mut work = vec![(root, 0usize)];
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut position)) = work.last_mut() {
            if let Some(&successor) = next[node].get(*position) {
                *position += 1;
                if index[successor] == UNSEEN {
                    index[successor] = counter;
                    low[successor] = counter;
                    counter += 1;
                    stack.push(successor);
                    on_stack[successor] = true;
                    work.push((successor, 0));
                } else if on_stack[successor] {
                    low[node] = low[node].min(index[successor]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[node]);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(n: &str) -> QualifiedName {
        QualifiedName::new("public", n)
    }

    fn link(child: &str, parent: &str, on_delete: OnDelete) -> Link {
        Link {
            child: name(child),
            child_columns: vec![format!("{parent}_id")],
            parent: name(parent),
            parent_columns: vec!["id".to_string()],
            on_delete,
            kind: LinkKind::ForeignKey(format!("{child}_{parent}_fkey")),
        }
    }

    fn names(groups: Vec<Vec<QualifiedName>>) -> Vec<Vec<String>> {
        groups
            .into_iter()
            .map(|g| g.into_iter().map(|n| n.name).collect())
            .collect()
    }

    /// A SaaS schema: organizations have users and projects, users write comments on
    /// tasks of projects, users invite users, and tasks and comments point at each other
    /// (a task's accepted answer).
    fn saas() -> ReferenceGraph {
        ReferenceGraph::from_links(vec![
            link("users", "organizations", OnDelete::Cascade),
            link("projects", "organizations", OnDelete::Cascade),
            link("tasks", "projects", OnDelete::Cascade),
            link("tasks", "users", OnDelete::SetNull),
            link("comments", "tasks", OnDelete::Cascade),
            link("comments", "users", OnDelete::Refuse),
            link("tasks", "comments", OnDelete::SetNull),
            link("users", "users", OnDelete::SetNull),
            Link {
                kind: LinkKind::Declared,
                ..link("audit_events", "users", OnDelete::Nothing)
            },
        ])
    }

    #[test]
    fn purges_go_children_first_with_cycles_as_one_group() {
        let graph = saas();
        let order = names(graph.delete_order(graph.tables()));
        assert_eq!(
            order,
            [
                vec!["comments", "tasks"],
                vec!["projects"],
                vec!["audit_events"],
                vec!["users"],
                vec!["organizations"]
            ]
        );
        // Only the tables asked for, ordered among themselves.
        let some = BTreeSet::from([name("organizations"), name("comments")]);
        assert_eq!(
            names(graph.delete_order(&some)),
            [vec!["comments"], vec!["organizations"]]
        );
    }

    #[test]
    fn a_delete_reaches_through_cascades_and_names_what_refuses_it() {
        let graph = saas();
        let reach = graph.delete_reaches(&name("organizations"));
        let cascaded: BTreeSet<String> = reach
            .cascades
            .iter()
            .map(|l| l.child.name.clone())
            .collect();
        assert_eq!(
            cascaded,
            BTreeSet::from(["users", "projects", "tasks", "comments"].map(String::from))
        );
        // Deleting users (cascaded from organizations) is refused while their comments
        // exist, unless those go first; audit_events is not enforced at all.
        assert!(
            reach
                .refused_by
                .iter()
                .any(|l| l.child == name("comments") && l.parent == name("users"))
        );
        assert_eq!(reach.unenforced.len(), 1);
        assert!(reach.updates.iter().any(|l| l.child == name("users")));
        // A leaf deletes nothing else.
        assert_eq!(
            graph.delete_reaches(&name("audit_events")),
            DeleteReach::default()
        );
    }

    #[test]
    fn a_subject_reaches_every_table_that_references_it_once() {
        let graph = saas();
        let reached = graph.reachable_from(&name("users"));
        let tables: Vec<&str> = reached.iter().map(|r| r.table.name.as_str()).collect();
        assert_eq!(tables, ["users", "audit_events", "comments", "tasks"]);
        assert!(reached[0].path.is_empty());
        // comments reference users directly; tasks are reached through comments (their
        // accepted answer) or directly (their assignee): the shortest path is kept.
        let tasks = reached.iter().find(|r| r.table == name("tasks")).unwrap();
        assert_eq!(tasks.path.len(), 1);
        // Nothing references organizations' parent side from users: not reached.
        assert!(!tables.contains(&"organizations"));
    }

    #[test]
    fn the_model_gives_the_same_links_with_partitions_folded_into_their_table() {
        use tend_schema::model::{
            Constraint, ConstraintKind, ForeignKey, MatchType, Partition, Table,
        };
        let fk = |constraint: &str, target: &str, inherited: bool| {
            let c = Constraint {
                name: constraint.to_string(),
                kind: ConstraintKind::ForeignKey,
                definition: String::new(),
                validated: true,
                columns: vec!["user_id".to_string()],
                foreign_key: Some(Box::new(ForeignKey {
                    referenced_table: name(target),
                    referenced_columns: vec!["id".to_string()],
                    on_delete: ReferentialAction::Cascade,
                    on_update: ReferentialAction::NoAction,
                    match_type: MatchType::Simple,
                    deferrable: false,
                    initially_deferred: false,
                })),
                inherited,
                comment: None,
            };
            (c.name.clone(), c)
        };
        let mut model = Model::default();
        model
            .tables
            .insert(name("users"), Table::new(name("users")));
        let mut events = Table::new(name("events"));
        events.partition_by = Some("RANGE (at)".to_string());
        events.constraints = [fk("events_user_id_fkey", "users", false)]
            .into_iter()
            .collect();
        model.tables.insert(name("events"), events);
        let mut partition = Table::new(name("events_2026"));
        partition.partition_of = Some(Partition {
            parent: name("events"),
            bound: "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')".to_string(),
        });
        partition.constraints = [fk("events_user_id_fkey", "users", true)]
            .into_iter()
            .collect();
        model.tables.insert(name("events_2026"), partition);
        let graph = ReferenceGraph::of(&model);
        assert_eq!(
            graph
                .tables()
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["events", "users"]
        );
        assert_eq!(graph.links().len(), 1);
        assert_eq!(graph.links()[0].child, name("events"));
        assert_eq!(graph.links()[0].on_delete, OnDelete::Cascade);
    }

    proptest! {
        /// Whatever the links: every table comes once, and a link between two groups
        /// always goes from an earlier group (the child) to a later one (the parent).
        #[test]
        fn delete_order_is_children_first(edges in proptest::collection::vec((0u8..12, 0u8..12), 0..40)) {
            let links: Vec<Link> = edges
                .iter()
                .map(|(c, p)| link(&format!("t{c}"), &format!("t{p}"), OnDelete::Cascade))
                .collect();
            let graph = ReferenceGraph::from_links(links.clone());
            let order = graph.delete_order(graph.tables());
            let mut group_of = BTreeMap::new();
            for (i, group) in order.iter().enumerate() {
                for table in group {
                    prop_assert!(group_of.insert(table.clone(), i).is_none());
                }
            }
            prop_assert_eq!(group_of.len(), graph.tables().len());
            for l in &links {
                prop_assert!(group_of[&l.child] <= group_of[&l.parent]);
            }
            // A group of more than one table is a cycle: each member reaches the others.
            for group in order.iter().filter(|g| g.len() > 1) {
                for member in group {
                    let reached: BTreeSet<QualifiedName> =
                        graph.reachable_from(member).into_iter().map(|r| r.table).collect();
                    for other in group {
                        prop_assert!(reached.contains(other));
                    }
                }
            }
        }
    }
}
