//! Retention rules: which rows of a table are past their time, and what happens to them.
//! A rule turns into the SQL a purge runs: its own condition (an age or a predicate), and
//! the rows it must leave because something still refuses their delete (a `RESTRICT` or
//! `NO ACTION` foreign key, directly or through the tables a delete cascades into), so a
//! purge never fails on a foreign key and never deletes what the schema protects.

use std::time::Duration;

use tend_schema::model::{Model, QualifiedName, ident};

use crate::graph::{Link, OnDelete, ReferenceGraph};

/// Where a rule comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// A `[[retention]]` entry.
    Configured,
    /// The built-in rule for soft-deleted rows (a `deleted_at` or `deletedAt` column).
    SoftDelete,
}

/// Which rows of its table a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowSelector {
    /// Rows whose `column` (a timestamp) is further back than `older_than`. Rows where it
    /// is NULL never match.
    OlderThan {
        column: String,
        older_than: Duration,
    },
    /// Rows an SQL boolean expression over the table's columns holds for.
    Where(String),
}

impl RowSelector {
    /// The condition as SQL over the table's columns.
    pub fn sql(&self) -> String {
        match self {
            RowSelector::OlderThan { column, older_than } => format!(
                "{} < now() - make_interval(secs => {})",
                ident(column),
                older_than.as_secs_f64()
            ),
            RowSelector::Where(predicate) => predicate.clone(),
        }
    }
}

/// What a rule does with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Deletes them.
    Delete,
    /// Moves them into another table with the same columns, in the batch that deletes
    /// them: a row is in one table or the other, never in both or neither.
    ArchiveTo(QualifiedName),
    /// Keeps them in the backup store (compressed, encrypted JSON lines, with a manifest):
    /// batches move them, as JSON, into a staging table that the store then takes from.
    ArchiveToStore,
    /// Detaches and drops each partition whose whole range is past the rule (its one
    /// selector, an age on the partition key; see [`crate::partitions`]): the table is
    /// partitioned by range on that column, of type `key_type` (as `format_type` writes it).
    DropPartitions { key_type: String },
}

/// One retention rule, resolved against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub name: String,
    pub table: QualifiedName,
    /// The rule's rows are those every selector holds for.
    pub rows: Vec<RowSelector>,
    pub action: RuleAction,
    pub origin: RuleOrigin,
}

impl RetentionRule {
    /// The rule's rows, as SQL over its table.
    pub fn condition_sql(&self) -> String {
        match self.rows.as_slice() {
            [] => "false".to_string(),
            [one] => one.sql(),
            many => many
                .iter()
                .map(|s| format!("({})", s.sql()))
                .collect::<Vec<_>>()
                .join(" AND "),
        }
    }
}

/// The column names that mark a soft-deleted row, as the ORMs spell them.
pub const SOFT_DELETE_COLUMNS: [&str; 3] = ["deleted_at", "deletedAt", "deletedat"];

/// The built-in rule's name.
pub const SOFT_DELETE_RULE: &str = "soft-delete";

/// One soft-delete rule per table of `model` with a timestamp column named as
/// [`SOFT_DELETE_COLUMNS`]: rows soft-deleted more than `grace` ago. A partition is left to
/// its partitioned table.
pub fn soft_delete_rules(model: &Model, grace: Duration) -> Vec<RetentionRule> {
    model
        .tables
        .values()
        .filter(|t| t.partition_of.is_none())
        .filter_map(|table| {
            let column = soft_delete_column(table)?;
            Some(RetentionRule {
                name: SOFT_DELETE_RULE.to_string(),
                table: table.name.clone(),
                rows: vec![RowSelector::OlderThan {
                    column: column.name.clone(),
                    older_than: grace,
                }],
                action: RuleAction::Delete,
                origin: RuleOrigin::SoftDelete,
            })
        })
        .collect()
}

/// The table's soft-delete column: a timestamp named as [`SOFT_DELETE_COLUMNS`] (in that
/// order of preference).
pub fn soft_delete_column(
    table: &tend_schema::model::Table,
) -> Option<&tend_schema::model::Column> {
    SOFT_DELETE_COLUMNS.iter().find_map(|name| {
        table
            .columns
            .iter()
            .find(|c| c.name == *name && is_timestamp(&c.data_type))
    })
}

/// Whether a `format_type` type is a point in time a rule can age by.
pub fn is_timestamp(data_type: &str) -> bool {
    data_type.starts_with("timestamp") || data_type == "date"
}

/// The table `text` names in `model`: `schema.name` as written, or a bare name that one
/// table of the model has (in any schema; `public` first when several do). `None` when no
/// table matches.
pub fn find_table(model: &Model, text: &str) -> Option<QualifiedName> {
    let parsed = QualifiedName::parse(text);
    if model.tables.contains_key(&parsed) {
        return Some(parsed);
    }
    if text.contains('.') {
        return None;
    }
    let mut named: Vec<&QualifiedName> = model
        .tables
        .keys()
        .filter(|name| name.name == parsed.name)
        .collect();
    named.sort_by_key(|name| name.schema != "public");
    named.first().map(|name| (*name).clone())
}

/// SQL that is true for a row of `table` (written `outer` in the statement) whose delete a
/// foreign key would refuse: a row of a `RESTRICT` or `NO ACTION` link references it, or
/// references a row the delete would cascade into. `None` when nothing can refuse.
pub fn held_sql(graph: &ReferenceGraph, table: &QualifiedName, outer: &str) -> Option<String> {
    let mut visiting = vec![table.clone()];
    held_clauses(graph, table, outer, 1, &mut visiting)
}

fn held_clauses(
    graph: &ReferenceGraph,
    table: &QualifiedName,
    outer: &str,
    depth: usize,
    visiting: &mut Vec<QualifiedName>,
) -> Option<String> {
    let mut clauses = Vec::new();
    let mut links: Vec<&Link> = graph.referencing(table).collect();
    links.sort();
    for link in links {
        let alias = format!("tend_held{depth}");
        let joined = join_sql(link, &alias, outer);
        match link.on_delete {
            OnDelete::Refuse => clauses.push(format!(
                "EXISTS (SELECT 1 FROM {} {alias} WHERE {joined})",
                link.child.sql()
            )),
            OnDelete::Cascade if !visiting.contains(&link.child) => {
                visiting.push(link.child.clone());
                let inner = held_clauses(graph, &link.child, &alias, depth + 1, visiting);
                visiting.pop();
                if let Some(inner) = inner {
                    clauses.push(format!(
                        "EXISTS (SELECT 1 FROM {} {alias} WHERE {joined} AND ({inner}))",
                        link.child.sql()
                    ));
                }
            }
            _ => {}
        }
    }
    if clauses.is_empty() {
        None
    } else {
        Some(clauses.join(" OR "))
    }
}

/// `child.columns = parent.columns`, the child written `child` and the parent `parent`.
pub fn join_sql(link: &Link, child: &str, parent: &str) -> String {
    link.child_columns
        .iter()
        .zip(&link.parent_columns)
        .map(|(c, p)| format!("{child}.{} = {parent}.{}", ident(c), ident(p)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// One chain of `ON DELETE CASCADE` links from a rule's table: the rows at its end are
/// deleted with the rule's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadePath {
    pub links: Vec<Link>,
}

impl CascadePath {
    /// The table at the end of the chain.
    pub fn table(&self) -> &QualifiedName {
        &self.links.last().expect("a path has a link").child
    }

    /// SQL counting the rows at the end of the chain that reference (through the chain) a
    /// row of the rule's table for which `doomed` (SQL over the table, which it names by
    /// its qualified name, as the purge does) holds.
    pub fn count_sql(&self, rule_table: &QualifiedName, doomed: &str) -> String {
        // Innermost first: the rule's table, then each link's child around it. The rule's
        // table is never in a chain again, so its name stays unambiguous.
        let outer = rule_table.sql();
        let mut condition = format!(
            "EXISTS (SELECT 1 FROM {outer} WHERE {} AND ({doomed}))",
            join_sql(&self.links[0], "tend_c1", &outer)
        );
        for (i, link) in self.links.iter().enumerate().skip(1) {
            let parent = format!("tend_c{i}");
            let child = format!("tend_c{}", i + 1);
            condition = format!(
                "EXISTS (SELECT 1 FROM {} {parent} WHERE {} AND {condition})",
                link.parent.sql(),
                join_sql(link, &child, &parent)
            );
        }
        format!(
            "SELECT count(*) FROM {} tend_c{} WHERE {condition}",
            self.table().sql(),
            self.links.len()
        )
    }
}

/// Every chain of cascades from `table`, each table at most once in a chain, at most
/// `max_depth` links long: what a delete from `table` also deletes.
pub fn cascade_paths(
    graph: &ReferenceGraph,
    table: &QualifiedName,
    max_depth: usize,
) -> Vec<CascadePath> {
    let mut paths = Vec::new();
    let mut stack: Vec<Vec<Link>> = vec![Vec::new()];
    while let Some(path) = stack.pop() {
        let end = path.last().map(|l| &l.child).unwrap_or(table);
        if path.len() >= max_depth {
            continue;
        }
        let mut links: Vec<&Link> = graph
            .referencing(end)
            .filter(|l| l.on_delete == OnDelete::Cascade)
            .filter(|l| l.child != *table && !path.iter().any(|p| p.child == l.child))
            .collect();
        links.sort();
        for link in links.into_iter().rev() {
            let mut longer = path.clone();
            longer.push(link.clone());
            paths.push(CascadePath {
                links: longer.clone(),
            });
            stack.push(longer);
        }
    }
    paths.sort_by(|a, b| {
        a.links
            .len()
            .cmp(&b.links.len())
            .then(a.links.cmp(&b.links))
    });
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::LinkKind;

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

    #[test]
    fn an_age_is_compared_with_now_and_a_predicate_is_kept_as_written() {
        let age = RowSelector::OlderThan {
            column: "deletedAt".to_string(),
            older_than: Duration::from_secs(30 * 86400),
        };
        assert_eq!(
            age.sql(),
            "\"deletedAt\" < now() - make_interval(secs => 2592000)"
        );
        let predicate = RowSelector::Where("status = 'done'".to_string());
        assert_eq!(predicate.sql(), "status = 'done'");
    }

    #[test]
    fn refusing_links_hold_rows_directly_and_through_cascades() {
        // invoices RESTRICT -> orders; lines CASCADE -> orders; refunds RESTRICT -> lines;
        // notes SET NULL -> orders.
        let graph = ReferenceGraph::from_links(vec![
            link("invoices", "order_id", "orders", OnDelete::Refuse),
            link("lines", "order_id", "orders", OnDelete::Cascade),
            link("refunds", "line_id", "lines", OnDelete::Refuse),
            link("notes", "order_id", "orders", OnDelete::SetNull),
        ]);
        let held = held_sql(&graph, &name("orders"), "public.orders").unwrap();
        assert_eq!(
            held,
            "EXISTS (SELECT 1 FROM public.invoices tend_held1 WHERE tend_held1.order_id = public.orders.id) OR \
             EXISTS (SELECT 1 FROM public.lines tend_held1 WHERE tend_held1.order_id = public.orders.id AND \
             (EXISTS (SELECT 1 FROM public.refunds tend_held2 WHERE tend_held2.line_id = tend_held1.id)))"
        );
        // Nothing refuses a delete from a leaf, or from a table only SET NULL points at.
        assert_eq!(held_sql(&graph, &name("refunds"), "r"), None);
        let only_set_null = ReferenceGraph::from_links(vec![link(
            "notes",
            "order_id",
            "orders",
            OnDelete::SetNull,
        )]);
        assert_eq!(held_sql(&only_set_null, &name("orders"), "o"), None);
    }

    #[test]
    fn cascade_cycles_end() {
        // a cascades into b, b into a, and a into itself.
        let graph = ReferenceGraph::from_links(vec![
            link("b", "a_id", "a", OnDelete::Cascade),
            link("a", "b_id", "b", OnDelete::Cascade),
            link("a", "parent_id", "a", OnDelete::Cascade),
            link("c", "b_id", "b", OnDelete::Refuse),
        ]);
        let held = held_sql(&graph, &name("a"), "public.a").unwrap();
        assert!(held.contains("public.c"), "{held}");
        let paths = cascade_paths(&graph, &name("a"), 5);
        let tables: Vec<String> = paths.iter().map(|p| p.table().to_string()).collect();
        assert_eq!(tables, ["public.b"]);
    }

    #[test]
    fn cascade_paths_go_deep_and_count_through_each_link() {
        let graph = ReferenceGraph::from_links(vec![
            link("requests", "agency_id", "agencies", OnDelete::Cascade),
            link("tasks", "request_id", "requests", OnDelete::Cascade),
            link("tasks", "agency_id", "agencies", OnDelete::Cascade),
        ]);
        let paths = cascade_paths(&graph, &name("agencies"), 4);
        let shown: Vec<Vec<String>> = paths
            .iter()
            .map(|p| p.links.iter().map(|l| l.child_columns[0].clone()).collect())
            .collect();
        assert_eq!(
            shown,
            [
                vec!["agency_id".to_string()],
                vec!["agency_id".to_string()],
                vec!["agency_id".to_string(), "request_id".to_string()],
            ]
        );
        let deep = paths[2].count_sql(&name("agencies"), "deleted");
        assert_eq!(
            deep,
            "SELECT count(*) FROM public.tasks tend_c2 WHERE EXISTS (SELECT 1 FROM public.requests tend_c1 \
             WHERE tend_c2.request_id = tend_c1.id AND EXISTS (SELECT 1 FROM public.agencies \
             WHERE tend_c1.agency_id = public.agencies.id AND (deleted)))"
        );
    }
}
