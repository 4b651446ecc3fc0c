//! Schemas, extensions, types (enum values added in place, enums swapped, domains altered) and
//! sequences; and, last, what nothing uses any more.

use super::*;

impl Differ<'_> {
    pub(super) fn schemas_and_extensions(&mut self, from: &Model) {
        let to = self.to;
        for (name, schema) in &to.schemas {
            match from.schemas.get(name) {
                None => {
                    if name != "public" {
                        self.push(
                            ObjectId::Schema(name.to_string()),
                            Change::Create,
                            format!("CREATE SCHEMA {}", ident(name)),
                        );
                    }
                    if schema.comment.is_some() && name != "public" {
                        self.comment(
                            ObjectId::Schema(name.to_string()),
                            format!("SCHEMA {}", ident(name)),
                            schema.comment.as_deref(),
                        );
                    }
                }
                Some(old) if old.comment != schema.comment => {
                    self.comment(
                        ObjectId::Schema(name.to_string()),
                        format!("SCHEMA {}", ident(name)),
                        schema.comment.as_deref(),
                    );
                }
                Some(_) => {}
            }
        }
        for (name, extension) in &to.extensions {
            match from.extensions.get(name) {
                None => {
                    self.push(
                        ObjectId::Extension(name.to_string()),
                        Change::Create,
                        format!(
                            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                            ident(name),
                            ident(&extension.schema)
                        ),
                    );
                }
                Some(old) => {
                    if old.schema != extension.schema {
                        self.push(
                            ObjectId::Extension(name.to_string()),
                            Change::Alter,
                            format!(
                                "ALTER EXTENSION {} SET SCHEMA {}",
                                ident(name),
                                ident(&extension.schema)
                            ),
                        );
                    }
                    if old.version != extension.version {
                        self.push(
                            ObjectId::Extension(name.to_string()),
                            Change::Alter,
                            format!(
                                "ALTER EXTENSION {} UPDATE TO {}",
                                ident(name),
                                quote_literal(&extension.version)
                            ),
                        );
                    }
                }
            }
        }
    }

    pub(super) fn types(&mut self, from: &Model) {
        let to = self.to;
        for name in type_order(&to.types) {
            let ty = &to.types[&name];
            let name = &name;
            let object = ObjectId::of_type(ty);
            match from.types.get(name) {
                None => {
                    self.push(object.clone(), Change::Create, ddl::create_type(ty));
                }
                Some(old) if old.kind == ty.kind => {}
                Some(old) => self.alter_type(old, ty, object.clone()),
            }
            let before = from.types.get(name).and_then(|t| t.comment.as_deref());
            let recreated = self.analysis.recreated_enums.contains(name);
            let comment_before = if recreated { None } else { before };
            if comment_before != ty.comment.as_deref() {
                self.comment(object, type_target(ty), ty.comment.as_deref());
            }
        }
    }

    pub(super) fn alter_type(&mut self, old: &Type, new: &Type, object: ObjectId) {
        let name = new.name.sql();
        match (&old.kind, &new.kind) {
            (TypeKind::Enum { values: before }, TypeKind::Enum { values: after })
                if !self.analysis.recreated_enums.contains(&new.name) =>
            {
                // Every old value is kept in order: add the new ones in place.
                let mut present: Vec<String> = before.clone();
                for (i, value) in after.iter().enumerate() {
                    if present.contains(value) {
                        continue;
                    }
                    let position = match after[..i].iter().rev().find(|v| present.contains(v)) {
                        Some(previous) => format!(" AFTER {}", quote_literal(previous)),
                        None => match after[i + 1..].iter().find(|v| present.contains(v)) {
                            Some(next) => format!(" BEFORE {}", quote_literal(next)),
                            None => String::new(),
                        },
                    };
                    let step = self.push(
                        object.clone(),
                        Change::Alter,
                        format!(
                            "ALTER TYPE {name} ADD VALUE {}{position}",
                            quote_literal(value)
                        ),
                    );
                    // A value added in a transaction cannot be used before it commits.
                    step.transactional = false;
                    present.push(value.clone());
                }
            }
            (TypeKind::Enum { values: before }, TypeKind::Enum { values: after }) => {
                let removed: Vec<&String> = before.iter().filter(|v| !after.contains(v)).collect();
                let old_name = QualifiedName::new(
                    new.name.schema.clone(),
                    format!("{}__tend_old", new.name.name),
                );
                if !removed.is_empty() {
                    self.warn(format!(
                        "enum {} loses the values {}: rows holding them make the change fail",
                        new.name,
                        removed
                            .iter()
                            .map(|v| quote_literal(v))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER TYPE {name} RENAME TO {}", ident(&old_name.name)),
                );
                let step = self.push(object, Change::Alter, ddl::create_type(new));
                if !removed.is_empty() {
                    step.hazards.push(Hazard::DataLoss);
                }
                // The columns are switched over in the table phase, the old type dropped last.
            }
            (
                TypeKind::Domain {
                    base: old_base,
                    collation: old_collation,
                    default: old_default,
                    not_null: old_not_null,
                    not_null_constraint: old_constraint,
                    checks: old_checks,
                },
                TypeKind::Domain {
                    base,
                    collation,
                    default,
                    not_null,
                    not_null_constraint,
                    checks,
                },
            ) if old_base == base && old_collation == collation => {
                if old_default != default {
                    let sql = match default {
                        Some(d) => format!("ALTER DOMAIN {name} SET DEFAULT {d}"),
                        None => format!("ALTER DOMAIN {name} DROP DEFAULT"),
                    };
                    self.push(object.clone(), Change::Alter, sql);
                }
                // PostgreSQL 17 names a domain's NOT NULL: one not named `<domain>_not_null`
                // is added under its name, or renamed.
                let constraint_name = |constraint: &Option<String>| {
                    constraint
                        .clone()
                        .unwrap_or_else(|| not_null_name(&new.name.name, None))
                };
                if *old_not_null && *not_null && old_constraint != not_null_constraint {
                    self.push(
                        object.clone(),
                        Change::Alter,
                        format!(
                            "ALTER DOMAIN {name} RENAME CONSTRAINT {} TO {}",
                            ident(&constraint_name(old_constraint)),
                            ident(&constraint_name(not_null_constraint))
                        ),
                    );
                }
                if old_not_null != not_null {
                    let sql = if let Some(constraint) =
                        not_null_constraint.as_ref().filter(|_| *not_null)
                    {
                        format!(
                            "ALTER DOMAIN {name} ADD CONSTRAINT {} NOT NULL",
                            ident(constraint)
                        )
                    } else if *not_null {
                        format!("ALTER DOMAIN {name} SET NOT NULL")
                    } else {
                        format!("ALTER DOMAIN {name} DROP NOT NULL")
                    };
                    let step = self.push(object.clone(), Change::Alter, sql);
                    if *not_null {
                        step.hazards.push(Hazard::MayFail);
                    }
                }
                for (check, definition) in old_checks {
                    if checks.get(check) != Some(definition) {
                        self.push(
                            object.clone(),
                            Change::Alter,
                            format!("ALTER DOMAIN {name} DROP CONSTRAINT {}", ident(check)),
                        );
                    }
                }
                for (check, definition) in checks {
                    if old_checks.get(check) != Some(definition) {
                        let step = self.push(
                            object.clone(),
                            Change::Alter,
                            format!(
                                "ALTER DOMAIN {name} ADD CONSTRAINT {} {definition}",
                                ident(check)
                            ),
                        );
                        step.hazards.push(Hazard::MayFail);
                    }
                }
            }
            _ => {
                self.warn(format!(
                    "type {} changes in a way ALTER TYPE cannot do: it is dropped and created again, which fails while columns use it",
                    new.name
                ));
                let step = self.push(object.clone(), Change::Alter, ddl::drop_type(old));
                step.hazards.push(Hazard::DataLoss);
                self.push(object, Change::Alter, ddl::create_type(new));
                self.recreated_types.insert(new.name.clone());
            }
        }
    }

    pub(super) fn sequences(&mut self, from: &Model) {
        let to = self.to;
        for (name, sequence) in &to.sequences {
            let object = ObjectId::Sequence(name.clone());
            match from.sequences.get(name) {
                None => {
                    self.push(
                        object.clone(),
                        Change::Create,
                        ddl::create_sequence(sequence),
                    );
                }
                Some(old) => {
                    let options_differ = old.data_type != sequence.data_type
                        || old.start != sequence.start
                        || old.increment != sequence.increment
                        || old.min != sequence.min
                        || old.max != sequence.max
                        || old.cache != sequence.cache
                        || old.cycle != sequence.cycle;
                    if options_differ {
                        self.push(
                            object.clone(),
                            Change::Alter,
                            format!(
                                "ALTER SEQUENCE {} AS {}{}",
                                name.sql(),
                                sequence.data_type,
                                ddl::sequence_options(sequence)
                            ),
                        );
                    }
                }
            }
            // A sequence that outlives the table or column owning it (a renamed table's
            // `serial`) is released first, or dropping its owner would drop it too.
            if let Some(Some((owner, column))) = from.sequences.get(name).map(|s| &s.owned_by)
                && sequence.owned_by.as_ref() != Some(&(owner.clone(), column.clone()))
                && (to
                    .tables
                    .get(owner)
                    .is_none_or(|t| t.column(column).is_none_or(|c| c.inherited))
                    || self.analysis.moved.contains(owner, column))
            {
                self.push(
                    object.clone(),
                    Change::Alter,
                    format!("ALTER SEQUENCE {} OWNED BY NONE", name.sql()),
                );
                self.disowned_sequences.insert(name.clone());
            }
            let before = from.sequences.get(name).and_then(|s| s.comment.as_deref());
            if before != sequence.comment.as_deref() {
                self.comment(
                    object,
                    format!("SEQUENCE {}", name.sql()),
                    sequence.comment.as_deref(),
                );
            }
        }
    }

    pub(super) fn sequence_owners(&mut self, from: &Model) {
        let to = self.to;
        for (name, sequence) in &to.sequences {
            let before = from
                .sequences
                .get(name)
                .filter(|_| !self.disowned_sequences.contains(name))
                .and_then(|s| s.owned_by.as_ref());
            if before == sequence.owned_by.as_ref() {
                continue;
            }
            let owner = match &sequence.owned_by {
                Some((table, column)) => format!("{}.{}", table.sql(), ident(column)),
                None => "NONE".to_string(),
            };
            self.push(
                ObjectId::Sequence(name.clone()),
                if from.sequences.contains_key(name) {
                    Change::Alter
                } else {
                    Change::Create
                },
                format!("ALTER SEQUENCE {} OWNED BY {owner}", name.sql()),
            );
        }
    }

    pub(super) fn drop_unused(&mut self, from: &Model) {
        let to = self.to;
        for (key, function) in &from.functions {
            if !to.functions.contains_key(key) {
                self.push(
                    ObjectId::of_function(function),
                    Change::Drop,
                    ddl::drop_function(function),
                );
            }
        }
        for name in self.analysis.recreated_enums.clone() {
            let old = QualifiedName::new(name.schema.clone(), format!("{}__tend_old", name.name));
            // Under the enum's own name: the old copy is part of the same change.
            self.push(
                ObjectId::Enum(name.clone()),
                Change::Alter,
                format!("DROP TYPE {}", old.sql()),
            );
        }
        for (name, ty) in &from.types {
            if !to.types.contains_key(name) {
                self.push(ObjectId::of_type(ty), Change::Drop, ddl::drop_type(ty));
            }
        }
        // Sequences that gave way to an identity were dropped before it.
        let replaced: HashSet<QualifiedName> = self
            .analysis
            .replaced_by_identity
            .values()
            .flatten()
            .cloned()
            .collect();
        for (name, sequence) in &from.sequences {
            if to.sequences.contains_key(name) || replaced.contains(name) {
                continue;
            }
            // A sequence owned by a dropped (or recreated) column or table went with it.
            if let Some((table, column)) = &sequence.owned_by {
                let owner_kept = to
                    .tables
                    .get(table)
                    .is_some_and(|t| t.column(column).is_some())
                    && !self.analysis.moved.contains(table, column);
                if !owner_kept {
                    continue;
                }
            }
            self.push(
                ObjectId::Sequence(name.clone()),
                Change::Drop,
                format!("DROP SEQUENCE {}", name.sql()),
            );
        }
        for name in from.extensions.keys() {
            if !to.extensions.contains_key(name) {
                self.push(
                    ObjectId::Extension(name.to_string()),
                    Change::Drop,
                    format!("DROP EXTENSION {}", ident(name)),
                );
            }
        }
        for name in from.schemas.keys() {
            if !to.schemas.contains_key(name) && name != "public" {
                self.push(
                    ObjectId::Schema(name.to_string()),
                    Change::Drop,
                    format!("DROP SCHEMA {}", ident(name)),
                );
            }
        }
    }
}

/// Whether a column of `data_type` is of the type `ty` (or an array of it).
pub(super) fn uses_type(data_type: &str, ty: &QualifiedName) -> bool {
    let name = ty.sql();
    let base = data_type.strip_suffix("[]").unwrap_or(data_type);
    base == name || base.replace('"', "") == format!("{}.{}", ty.schema, ty.name)
}

/// Whether an expression or definition names the type `ty` (as the server renders it with
/// an empty `search_path`: schema-qualified).
pub(super) fn mentions_type(text: &str, ty: &QualifiedName) -> bool {
    let name = ty.sql();
    text.match_indices(&name).any(|(at, _)| {
        text[at + name.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
    })
}
