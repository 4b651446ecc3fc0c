//! Orders the phases walk objects in: parents before partitions and children, views after the views
//! they read, types after the types they are made of.

use super::*;

/// Tables in an order where parents (partitioned or inherited) come before children, by
/// name among the same depth.
pub(super) fn table_order(
    tables: &BTreeMap<QualifiedName, Table>,
) -> Vec<(&QualifiedName, &Table)> {
    let depth = |table: &Table| -> usize {
        let mut depth = 0;
        let mut current = table;
        let mut seen = HashSet::new();
        while let Some(parent) = current
            .partition_of
            .as_ref()
            .map(|p| &p.parent)
            .or(current.inherits.first())
        {
            if !seen.insert(parent.clone()) {
                break;
            }
            match tables.get(parent) {
                Some(p) => {
                    depth += 1;
                    current = p;
                }
                None => break,
            }
        }
        depth
    };
    // The map gives the names in order and the sort is stable: sorted by depth alone.
    let mut order: Vec<(usize, (&QualifiedName, &Table))> =
        tables.iter().map(|entry| (depth(entry.1), entry)).collect();
    order.sort_by_key(|(depth, _)| *depth);
    order.into_iter().map(|(_, entry)| entry).collect()
}

/// Views in an order where each comes after the views it reads.
pub(super) fn view_order(views: &BTreeMap<QualifiedName, View>) -> Vec<QualifiedName> {
    let mut order = Vec::new();
    let mut placed: HashSet<&QualifiedName> = HashSet::new();
    let mut visiting: HashSet<&QualifiedName> = HashSet::new();
    fn visit<'a>(
        name: &'a QualifiedName,
        views: &'a BTreeMap<QualifiedName, View>,
        placed: &mut HashSet<&'a QualifiedName>,
        visiting: &mut HashSet<&'a QualifiedName>,
        order: &mut Vec<QualifiedName>,
    ) {
        if placed.contains(name) || !visiting.insert(name) {
            return;
        }
        if let Some(view) = views.get(name) {
            for dep in &view.depends_on {
                if views.contains_key(dep) {
                    visit(dep, views, placed, visiting, order);
                }
            }
        }
        placed.insert(name);
        order.push(name.clone());
    }
    for name in views.keys() {
        visit(name, views, &mut placed, &mut visiting, &mut order);
    }
    order
}

/// Types in an order where each comes after the types it is made of: a domain's base type, a
/// composite's attribute types, a range's subtype.
pub(super) fn type_order(types: &BTreeMap<QualifiedName, Type>) -> Vec<QualifiedName> {
    let parts = |ty: &Type| -> String {
        match &ty.kind {
            TypeKind::Enum { .. } => String::new(),
            TypeKind::Domain { base, .. } => base.clone(),
            TypeKind::Composite { attributes } => attributes
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            TypeKind::Range { options } => options.clone(),
        }
    };
    let mut order = Vec::new();
    let mut placed: HashSet<&QualifiedName> = HashSet::new();
    let mut visiting: HashSet<&QualifiedName> = HashSet::new();
    fn visit<'a>(
        name: &'a QualifiedName,
        types: &'a BTreeMap<QualifiedName, Type>,
        parts: &dyn Fn(&Type) -> String,
        placed: &mut HashSet<&'a QualifiedName>,
        visiting: &mut HashSet<&'a QualifiedName>,
        order: &mut Vec<QualifiedName>,
    ) {
        if placed.contains(name) || !visiting.insert(name) {
            return;
        }
        let made_of = parts(&types[name]);
        for other in types.keys() {
            if other != name && names_type(&made_of, &other.sql()) {
                visit(other, types, parts, placed, visiting, order);
            }
        }
        placed.insert(name);
        order.push(name.clone());
    }
    for name in types.keys() {
        visit(name, types, &parts, &mut placed, &mut visiting, &mut order);
    }
    order
}

/// Whether the type text `text` (as `format_type` writes it, qualified) names `ty`: not as
/// the prefix of a longer name.
pub(super) fn names_type(text: &str, ty: &str) -> bool {
    text.match_indices(ty).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ty.len()..].chars().next();
        let part = |c: Option<char>| {
            c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"' || c == '.')
        };
        !part(before) && !part(after)
    })
}
