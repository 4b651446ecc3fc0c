//! `REVOKE` and `GRANT` on every object, and `ALTER DEFAULT PRIVILEGES`.

use super::*;

impl Differ<'_> {
    /// `GRANT` and `REVOKE`, once every object exists. An object created (or created again)
    /// here starts from what a new object of its kind holds.
    pub(super) fn privileges(&mut self, from: &Model) {
        let to = self.to;
        for (name, schema) in &to.schemas {
            // PostgreSQL 15's `public`: usable by everyone, as a new database has it.
            let default = if name == "public" {
                Privileges {
                    grants: vec![Grant {
                        grantee: PUBLIC.to_string(),
                        privilege: "USAGE".to_string(),
                        grantable: false,
                    }],
                    owner_revoked: Vec::new(),
                }
            } else {
                Privileges::default()
            };
            let old = from.schemas.get(name);
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "SCHEMAS", None),
            };
            self.grant(
                ObjectId::Schema(name.to_string()),
                format!("SCHEMA {}", ident(name)),
                None,
                old.map_or(&default, |s| &s.privileges),
                &schema.privileges,
                &inherited,
            );
        }
        for (name, ty) in &to.types {
            let target = match ty.kind {
                TypeKind::Domain { .. } => PrivilegeTarget::Domain,
                _ => PrivilegeTarget::Type,
            };
            let default = Privileges::default_for(target);
            let old = from.types.get(name).filter(|_| {
                !self.analysis.recreated_enums.contains(name)
                    && !self.recreated_types.contains(name)
            });
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "TYPES", Some(&name.schema)),
            };
            self.grant(
                ObjectId::of_type(ty),
                format!("{} {}", target.keyword(), name.sql()),
                None,
                old.map_or(&default, |t| &t.privileges),
                &ty.privileges,
                &inherited,
            );
        }
        let none = Privileges::default();
        for (name, sequence) in &to.sequences {
            let old = from.sequences.get(name);
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "SEQUENCES", Some(&name.schema)),
            };
            self.grant(
                ObjectId::Sequence(name.clone()),
                format!("SEQUENCE {}", name.sql()),
                None,
                old.map_or(&none, |s| &s.privileges),
                &sequence.privileges,
                &inherited,
            );
        }
        for (name, table) in &to.tables {
            let old = from.tables.get(name);
            let target = format!("TABLE {}", name.sql());
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "TABLES", Some(&name.schema)),
            };
            self.grant(
                ObjectId::Table(name.clone()),
                target.clone(),
                None,
                old.map_or(&none, |t| &t.privileges),
                &table.privileges,
                &inherited,
            );
            for column in &table.columns {
                let before = old
                    .and_then(|t| t.column(&column.name))
                    .filter(|_| !self.recreated_columns.contains(name, &column.name))
                    .map_or(&none, |c| &c.privileges);
                self.grant(
                    ObjectId::column(name, &column.name),
                    target.clone(),
                    Some(&column.name),
                    before,
                    &column.privileges,
                    &[],
                );
            }
        }
        for (name, view) in &to.views {
            let old = from
                .views
                .get(name)
                .filter(|_| !self.analysis.recreated_views.contains(name));
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "TABLES", Some(&name.schema)),
            };
            self.grant(
                ObjectId::of_view(view),
                format!("TABLE {}", name.sql()),
                None,
                old.map_or(&none, |v| &v.privileges),
                &view.privileges,
                &inherited,
            );
        }
        for (key, function) in &to.functions {
            let target = if function.procedure {
                PrivilegeTarget::Procedure
            } else {
                PrivilegeTarget::Function
            };
            let default = Privileges::default_for(target);
            let old = from
                .functions
                .get(key)
                .filter(|_| !self.recreated_functions.contains(key));
            let inherited = match old {
                Some(_) => Vec::new(),
                None => inherited_defaults(from, "FUNCTIONS", Some(&key.schema)),
            };
            self.grant(
                ObjectId::of_function(function),
                function_target(function),
                None,
                old.map_or(&default, |f| &f.privileges),
                &function.privileges,
                &inherited,
            );
        }
        // After the objects, as pg_dump does: what this plan creates is granted explicitly.
        default_privileges_walk(from, to, |key, before, after| {
            let prefix = match &key.schema {
                Some(schema) => format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ",
                    ident(&key.role),
                    ident(schema)
                ),
                None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {} ", ident(&key.role)),
            };
            let object = ObjectId::DefaultPrivileges(key.clone());
            for (change, grantee, privileges) in privilege_changes(before, after) {
                let privileges: Vec<&str> = privileges.iter().map(String::as_str).collect();
                let sql =
                    ddl::privilege_statement(change, &key.objects, None, &privileges, &grantee);
                let step = self.push(object.clone(), Change::Alter, format!("{prefix}{sql}"));
                step.hazards.push(Hazard::MayFail);
            }
        });
    }

    /// The `REVOKE`s, then the `GRANT`s, from `before` to `after` on `target` (or on its
    /// `column`). A role named there may not exist in this cluster: the step then fails.
    ///
    /// An object created here may also get what `ALTER DEFAULT PRIVILEGES` gave on the from
    /// side (`inherited`): that is revoked where the target lacks it.
    pub(super) fn grant(
        &mut self,
        object: ObjectId,
        target: String,
        column: Option<&str>,
        before: &Privileges,
        after: &Privileges,
        inherited: &[Grant],
    ) {
        if before == after && inherited.is_empty() {
            return;
        }
        let mut changes = privilege_changes(before, after);
        if !inherited.is_empty() {
            let mut wider = before.clone();
            wider.grants.extend(inherited.iter().cloned());
            let revokes = privilege_changes(&wider, after)
                .into_iter()
                .filter(|(change, _, _)| change < &ddl::PrivilegeChange::Grant);
            changes.retain(|(change, _, _)| change >= &ddl::PrivilegeChange::Grant);
            changes = revokes.chain(changes).collect();
        }
        for (change, grantee, privileges) in changes {
            let privileges: Vec<&str> = privileges.iter().map(String::as_str).collect();
            let sql = ddl::privilege_statement(change, &target, column, &privileges, &grantee);
            let step = self.push(object.clone(), Change::Alter, sql);
            if grantee != PUBLIC {
                step.hazards.push(Hazard::MayFail);
            }
        }
    }
}

/// What `ALTER DEFAULT PRIVILEGES` on the from side gives a new object of the kind
/// (`TABLES`, ...) in `schema`, whoever creates it.
pub(super) fn inherited_defaults(from: &Model, objects: &str, schema: Option<&str>) -> Vec<Grant> {
    from.default_privileges
        .values()
        .filter(|d| {
            d.key.objects == objects && d.key.schema.as_deref().is_none_or(|s| Some(s) == schema)
        })
        .flat_map(|d| d.privileges.grants.iter().cloned())
        .collect()
}

/// What turns the privileges `before` into `after`: for each change and grantee, the
/// privileges, revokes first.
pub(super) fn privilege_changes(
    before: &Privileges,
    after: &Privileges,
) -> Vec<(ddl::PrivilegeChange, String, Vec<String>)> {
    use ddl::PrivilegeChange as P;
    let held = |p: &Privileges| -> BTreeMap<(String, String), bool> {
        p.grants
            .iter()
            .map(|g| ((g.grantee.clone(), g.privilege.clone()), g.grantable))
            .collect()
    };
    let (was, will) = (held(before), held(after));
    let mut changes: BTreeMap<(P, String), Vec<String>> = BTreeMap::new();
    let mut add = |change: P, grantee: &str, privilege: &str| {
        changes
            .entry((change, grantee.to_string()))
            .or_default()
            .push(privilege.to_string());
    };
    for ((grantee, privilege), &option) in &was {
        match will.get(&(grantee.clone(), privilege.clone())) {
            None => add(P::Revoke, grantee, privilege),
            Some(false) if option => add(P::RevokeGrantOption, grantee, privilege),
            _ => {}
        }
    }
    for ((grantee, privilege), &option) in &will {
        match was.get(&(grantee.clone(), privilege.clone())) {
            None if option => add(P::GrantWithGrantOption, grantee, privilege),
            None => add(P::Grant, grantee, privilege),
            Some(false) if option => add(P::GrantWithGrantOption, grantee, privilege),
            _ => {}
        }
    }
    for lost in &after.owner_revoked {
        if !before.owner_revoked.contains(lost) {
            add(P::Revoke, &lost.grantee, &lost.privilege);
        }
    }
    for back in &before.owner_revoked {
        if !after.owner_revoked.contains(back) {
            add(P::Grant, &back.grantee, &back.privilege);
        }
    }
    changes
        .into_iter()
        .map(|((change, grantee), privileges)| (change, grantee, privileges))
        .collect()
}

/// Every `ALTER DEFAULT PRIVILEGES` key either model has, in order, with what it gives on each
/// side (the built-in baseline where a side has none): the walk of both the plan's steps and
/// the drift listing ([`crate::drift`]), so the two cannot disagree.
pub(crate) fn default_privileges_walk<'a>(
    from: &'a Model,
    to: &'a Model,
    mut each: impl FnMut(&'a DefaultPrivilegesKey, &Privileges, &Privileges),
) {
    let keys: BTreeSet<&DefaultPrivilegesKey> = from
        .default_privileges
        .keys()
        .chain(to.default_privileges.keys())
        .collect();
    for key in keys {
        let baseline = DefaultPrivileges::baseline(key);
        let [before, after] = [from, to].map(|model| {
            model
                .default_privileges
                .get(key)
                .map_or(&baseline, |d| &d.privileges)
        });
        each(key, before, after);
    }
}
