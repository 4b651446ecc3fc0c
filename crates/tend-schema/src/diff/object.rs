//! How a plan step names the object it touches: a typed [`ObjectId`] whose text (`Display`,
//! and the JSON of a step) is the name people read, `column public.users.email`.

use super::*;

/// The object of a [`Step`] and of an [`ObjectDrift`]. Its text is part of tend's output
/// (human listings, `--json`, the comments of `schema diff`): change a variant's wording
/// and scripts that read it break.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectId {
    /// The `SET` statements a plan starts with.
    Session,
    Schema(String),
    Extension(String),
    /// A composite or range type.
    Type(QualifiedName),
    Enum(QualifiedName),
    Domain(QualifiedName),
    Sequence(QualifiedName),
    Table(QualifiedName),
    Column {
        table: QualifiedName,
        name: String,
    },
    Constraint {
        table: QualifiedName,
        name: String,
    },
    /// An index of a table or a materialized view (`table`), in its schema.
    Index {
        table: QualifiedName,
        name: String,
    },
    View(QualifiedName),
    MaterializedView(QualifiedName),
    Function(FunctionKey),
    Procedure(FunctionKey),
    Trigger {
        table: QualifiedName,
        name: String,
    },
    Policy {
        table: QualifiedName,
        name: String,
    },
    RowLevelSecurity(QualifiedName),
    DefaultPrivileges(DefaultPrivilegesKey),
}

impl ObjectId {
    pub fn column(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::Column {
            table: table.clone(),
            name: name.to_string(),
        }
    }

    pub fn constraint(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::Constraint {
            table: table.clone(),
            name: name.to_string(),
        }
    }

    pub fn index(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::Index {
            table: table.clone(),
            name: name.to_string(),
        }
    }

    pub fn trigger(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::Trigger {
            table: table.clone(),
            name: name.to_string(),
        }
    }

    pub fn policy(table: &QualifiedName, name: &str) -> ObjectId {
        ObjectId::Policy {
            table: table.clone(),
            name: name.to_string(),
        }
    }

    pub fn of_view(view: &View) -> ObjectId {
        if view.materialized {
            ObjectId::MaterializedView(view.name.clone())
        } else {
            ObjectId::View(view.name.clone())
        }
    }

    pub fn of_type(ty: &Type) -> ObjectId {
        match ty.kind {
            TypeKind::Domain { .. } => ObjectId::Domain(ty.name.clone()),
            TypeKind::Enum { .. } => ObjectId::Enum(ty.name.clone()),
            _ => ObjectId::Type(ty.name.clone()),
        }
    }

    pub fn of_function(function: &Function) -> ObjectId {
        if function.procedure {
            ObjectId::Procedure(function.key.clone())
        } else {
            ObjectId::Function(function.key.clone())
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Session => f.write_str("session"),
            ObjectId::Schema(name) => write!(f, "schema {name}"),
            ObjectId::Extension(name) => write!(f, "extension {name}"),
            ObjectId::Type(name) => write!(f, "type {name}"),
            ObjectId::Enum(name) => write!(f, "enum {name}"),
            ObjectId::Domain(name) => write!(f, "domain {name}"),
            ObjectId::Sequence(name) => write!(f, "sequence {name}"),
            ObjectId::Table(name) => write!(f, "table {name}"),
            ObjectId::Column { table, name } => write!(f, "column {table}.{name}"),
            ObjectId::Constraint { table, name } => write!(f, "constraint {name} on {table}"),
            ObjectId::Index { table, name } => {
                write!(f, "index {}.{name} on {table}", table.schema)
            }
            ObjectId::View(name) => write!(f, "view {name}"),
            ObjectId::MaterializedView(name) => write!(f, "materialized view {name}"),
            ObjectId::Function(key) => write!(f, "function {key}"),
            ObjectId::Procedure(key) => write!(f, "procedure {key}"),
            ObjectId::Trigger { table, name } => write!(f, "trigger {name} on {table}"),
            ObjectId::Policy { table, name } => write!(f, "policy {name} on {table}"),
            ObjectId::RowLevelSecurity(table) => write!(f, "row level security on {table}"),
            ObjectId::DefaultPrivileges(key) => {
                write!(
                    f,
                    "default privileges of {} on {}",
                    key.role,
                    key.objects.to_lowercase()
                )?;
                match &key.schema {
                    Some(schema) => write!(f, " in {schema}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Compares the text: `step.object == "view public.v"`, as when the object was a string.
impl PartialEq<str> for ObjectId {
    fn eq(&self, other: &str) -> bool {
        /// What is left of the text to match, as the name is written piece by piece.
        struct Rest<'a>(&'a str);
        impl fmt::Write for Rest<'_> {
            fn write_str(&mut self, piece: &str) -> fmt::Result {
                self.0 = self.0.strip_prefix(piece).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut rest = Rest(other);
        fmt::write(&mut rest, format_args!("{self}")).is_ok() && rest.0.is_empty()
    }
}

impl PartialEq<&str> for ObjectId {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for ObjectId {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

impl Serialize for ObjectId {
    /// As its text: the `object` of a step in `--json` has always been a string.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_read_as_the_names_plans_have_always_printed() {
        let users = QualifiedName::new("public", "users");
        let key = FunctionKey {
            schema: "public".into(),
            name: "f".into(),
            arguments: "a integer".into(),
        };
        let cases = [
            (ObjectId::Session, "session"),
            (ObjectId::Schema("app".into()), "schema app"),
            (ObjectId::Extension("citext".into()), "extension citext"),
            (ObjectId::Enum(users.clone()), "enum public.users"),
            (
                ObjectId::column(&users, "email"),
                "column public.users.email",
            ),
            (
                ObjectId::constraint(&users, "users_pkey"),
                "constraint users_pkey on public.users",
            ),
            (
                ObjectId::index(&users, "users_email"),
                "index public.users_email on public.users",
            ),
            (
                ObjectId::MaterializedView(users.clone()),
                "materialized view public.users",
            ),
            (
                ObjectId::Procedure(key.clone()),
                "procedure public.f(a integer)",
            ),
            (ObjectId::Function(key), "function public.f(a integer)"),
            (ObjectId::trigger(&users, "t"), "trigger t on public.users"),
            (ObjectId::policy(&users, "p"), "policy p on public.users"),
            (
                ObjectId::RowLevelSecurity(users.clone()),
                "row level security on public.users",
            ),
            (
                ObjectId::DefaultPrivileges(DefaultPrivilegesKey {
                    role: "app".into(),
                    schema: Some("s".into()),
                    objects: "TABLES".into(),
                }),
                "default privileges of app on tables in s",
            ),
            (
                ObjectId::DefaultPrivileges(DefaultPrivilegesKey {
                    role: "app".into(),
                    schema: None,
                    objects: "FUNCTIONS".into(),
                }),
                "default privileges of app on functions",
            ),
        ];
        for (id, text) in cases {
            assert_eq!(id.to_string(), text);
            assert_eq!(id, text);
            assert_ne!(id, format!("{text}x"));
            assert_ne!(id, text[..text.len() - 1]);
            assert_eq!(serde_json::to_value(&id).unwrap(), text);
        }
    }
}
