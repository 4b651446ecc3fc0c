//! Views and materialized views: dropped dependents first when they or what they read change,
//! created again in dependency order.

use super::*;

impl Differ<'_> {
    /// Phase 1: views that go, change or read something that changes, dependents first.
    pub(super) fn drop_views(&mut self, from: &Model) {
        let to = self.to;
        // Views, dependents first.
        let order = view_order(&from.views);
        for name in order.iter().rev() {
            if !self.analysis.recreated_views.contains(name) {
                continue;
            }
            let view = &from.views[name];
            let gone = !to.views.contains_key(name);
            let changed = to.views.get(name).is_some_and(|v| !same_view(view, v));
            let step = self.push(
                ObjectId::of_view(view),
                if gone { Change::Drop } else { Change::Alter },
                ddl::drop_view(view),
            );
            step.derived = !gone && !changed;
        }
    }

    pub(super) fn views(&mut self, from: &Model) {
        let to = self.to;
        for name in view_order(&to.views) {
            let view = &to.views[&name];
            let old = from.views.get(&name);
            let object = ObjectId::of_view(view);
            let rebuilt = old.is_none() || self.analysis.recreated_views.contains(&name);
            if rebuilt {
                let changed = old.is_none_or(|o| !same_view(o, view));
                let step = self.push(
                    object.clone(),
                    if old.is_some() {
                        Change::Alter
                    } else {
                        Change::Create
                    },
                    ddl::create_view(view),
                );
                step.derived = !changed;
                if view.materialized && old.is_some() {
                    step.hazards.push(Hazard::LongLock);
                }
            }
            for index in view.indexes.values() {
                let before = old.and_then(|v| v.indexes.get(&index.name));
                let same = before.is_some_and(|b| same_index(b, index));
                if same && !rebuilt {
                    continue;
                }
                if before.is_some() && !same && !rebuilt {
                    self.push(
                        ObjectId::index(&name, &index.name),
                        Change::Alter,
                        format!(
                            "DROP INDEX {}",
                            QualifiedName::new(name.schema.clone(), index.name.clone()).sql()
                        ),
                    );
                }
                let online = !rebuilt && self.options.concurrently;
                self.create_index(&name, index, online, old.is_some(), Change::Create);
                if let Some(step) = self.plan.steps.last_mut() {
                    step.derived = same;
                }
            }
            if let Some(old) = old {
                for index in old.indexes.values() {
                    if !view.indexes.contains_key(&index.name) && !rebuilt {
                        self.push(
                            ObjectId::index(&name, &index.name),
                            Change::Drop,
                            format!(
                                "DROP INDEX {}",
                                QualifiedName::new(name.schema.clone(), index.name.clone()).sql()
                            ),
                        );
                    }
                }
            }
            let before = old.and_then(|v| v.comment.as_deref());
            if before != view.comment.as_deref() || (rebuilt && view.comment.is_some()) {
                let kind = if view.materialized {
                    "MATERIALIZED VIEW"
                } else {
                    "VIEW"
                };
                self.comment(
                    object,
                    format!("{kind} {}", name.sql()),
                    view.comment.as_deref(),
                );
            }
        }
    }
}

pub(super) fn same_view(a: &View, b: &View) -> bool {
    a.definition == b.definition
        && a.materialized == b.materialized
        && a.options == b.options
        && a.columns == b.columns
}
