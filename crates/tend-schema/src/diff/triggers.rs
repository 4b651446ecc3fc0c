//! Triggers and policies: dropped when they change or block a column's new type, created again
//! after the views.

use super::*;

impl Differ<'_> {
    /// Phase 1: triggers and policies that go, change, or block a column's new type.
    pub(super) fn drop_triggers_and_policies(&mut self, from: &Model) {
        let to = self.to;
        for (name, old) in &from.tables {
            let new = to.tables.get(name);
            let Some(new) = new else {
                continue;
            };
            for trigger in old.triggers.values() {
                let rebuilt = self.analysis.triggers_to_readd.contains(name);
                let same = new
                    .triggers
                    .get(&trigger.name)
                    .is_some_and(|t| t.definition == trigger.definition);
                if !same || rebuilt {
                    let step = self.push(
                        format!("trigger {} on {name}", trigger.name),
                        if new.triggers.contains_key(&trigger.name) {
                            Change::Alter
                        } else {
                            Change::Drop
                        },
                        format!("DROP TRIGGER {} ON {}", ident(&trigger.name), name.sql()),
                    );
                    step.derived = same;
                }
            }
            for policy in old.policies.values() {
                let rebuilt = self.analysis.policies_to_readd.contains(name);
                let same = new
                    .policies
                    .get(&policy.name)
                    .is_some_and(|p| same_policy(p, policy));
                if !same || rebuilt {
                    let step = self.push(
                        format!("policy {} on {name}", policy.name),
                        if new.policies.contains_key(&policy.name) {
                            Change::Alter
                        } else {
                            Change::Drop
                        },
                        format!("DROP POLICY {} ON {}", ident(&policy.name), name.sql()),
                    );
                    step.derived = same;
                }
            }
        }
    }

    pub(super) fn triggers(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            for trigger in table.triggers.values() {
                let before = old.and_then(|t| t.triggers.get(&trigger.name));
                let object = format!("trigger {} on {name}", trigger.name);
                let rebuilt = self.analysis.triggers_to_readd.contains(name);
                let recreate = rebuilt || before.is_none_or(|b| b.definition != trigger.definition);
                if recreate {
                    let step = self.push(
                        object.clone(),
                        if before.is_some() {
                            Change::Alter
                        } else {
                            Change::Create
                        },
                        trigger.definition.clone(),
                    );
                    step.derived = before.is_some_and(|b| b == trigger);
                }
                let state_before = if recreate {
                    'O'
                } else {
                    before.map(|b| b.enabled).unwrap_or('O')
                };
                if state_before != trigger.enabled {
                    self.push(
                        object.clone(),
                        Change::Alter,
                        ddl::trigger_state(name, trigger),
                    );
                }
                let comment_before = if recreate {
                    None
                } else {
                    before.and_then(|b| b.comment.as_deref())
                };
                if comment_before != trigger.comment.as_deref() {
                    self.comment(
                        object,
                        format!("TRIGGER {} ON {}", ident(&trigger.name), name.sql()),
                        trigger.comment.as_deref(),
                    );
                }
            }
        }
    }

    pub(super) fn policies(&mut self, from: &Model) {
        let to = self.to;
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            for policy in table.policies.values() {
                let before = old.and_then(|t| t.policies.get(&policy.name));
                let object = format!("policy {} on {name}", policy.name);
                let rebuilt = self.analysis.policies_to_readd.contains(name);
                let recreate = rebuilt || before.is_none_or(|b| !same_policy(b, policy));
                if recreate {
                    let step = self.push(
                        object.clone(),
                        if before.is_some() {
                            Change::Alter
                        } else {
                            Change::Create
                        },
                        ddl::create_policy(name, policy),
                    );
                    step.derived = before.is_some_and(|b| same_policy(b, policy));
                }
                let comment_before = if recreate {
                    None
                } else {
                    before.and_then(|b| b.comment.as_deref())
                };
                if comment_before != policy.comment.as_deref() {
                    self.comment(
                        object,
                        format!("POLICY {} ON {}", ident(&policy.name), name.sql()),
                        policy.comment.as_deref(),
                    );
                }
            }
            if let Some(old) = old {
                let object = format!("row level security on {name}");
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
