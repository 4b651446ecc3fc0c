//! SQL text for the objects of a [`Model`]: what [`crate::diff`] puts into its steps, and what
//! `tend schema dump` prints (the diff from nothing to the model).

use tend_pg::quote_literal;

use crate::model::*;

/// A column as it is written inside `CREATE TABLE` or after `ADD COLUMN`.
pub fn column_definition(column: &Column) -> String {
    let mut sql = format!("{} {}", ident(&column.name), column.data_type);
    if let Some(collation) = &column.collation {
        sql.push_str(&format!(" COLLATE {collation}"));
    }
    if let Some(expression) = &column.generated {
        sql.push_str(&format!(" GENERATED ALWAYS AS ({expression}) STORED"));
    } else if let Some(default) = &column.default {
        sql.push_str(&format!(" DEFAULT {default}"));
    }
    if let Some(identity) = column.identity {
        sql.push(' ');
        sql.push_str(&identity_sql(identity, &column.identity_options));
    }
    if column.not_null {
        if let Some(name) = &column.not_null_constraint {
            sql.push_str(&format!(" CONSTRAINT {}", ident(name)));
        }
        sql.push_str(" NOT NULL");
        if column.not_null_no_inherit {
            sql.push_str(" NO INHERIT");
        }
    }
    sql
}

/// The name of `column`'s `NOT NULL` constraint in `table` (PostgreSQL 18 names them).
pub fn not_null_constraint(table: &QualifiedName, column: &Column) -> String {
    column
        .not_null_constraint
        .clone()
        .unwrap_or_else(|| not_null_name(&table.name, Some(&column.name)))
}

/// `NOT NULL` as a named constraint of its own (PostgreSQL 18): the way to give it a name
/// or `NO INHERIT` on an existing column, or to add it `NOT VALID` (`column_definition`
/// leaves such a constraint out).
pub fn add_not_null(table: &QualifiedName, column: &Column) -> String {
    let mut sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} NOT NULL {}",
        table.sql(),
        ident(&not_null_constraint(table, column)),
        ident(&column.name)
    );
    if column.not_null_no_inherit {
        sql.push_str(" NO INHERIT");
    }
    if column.not_null_not_valid {
        sql.push_str(" NOT VALID");
    }
    sql
}

/// `GENERATED ... AS IDENTITY`, with its sequence options when they are not the defaults.
pub fn identity_sql(identity: Identity, options: &[String]) -> String {
    if options.is_empty() {
        identity.sql().to_string()
    } else {
        format!("{} ({})", identity.sql(), options.join(" "))
    }
}

/// `CREATE TABLE`, without its constraints, indexes and the like (separate steps).
pub fn create_table(table: &Table) -> String {
    let unlogged = if table.unlogged { "UNLOGGED " } else { "" };
    let name = table.name.sql();
    let mut sql = match &table.partition_of {
        Some(partition) => {
            let mut sql = format!(
                "CREATE {unlogged}TABLE {name} PARTITION OF {}",
                partition.parent.sql()
            );
            let own: Vec<String> = table
                .columns
                .iter()
                .filter(|c| !c.inherited)
                .map(column_definition)
                .collect();
            if !own.is_empty() {
                sql.push_str(&format!(" (\n    {}\n)", own.join(",\n    ")));
            }
            sql.push(' ');
            sql.push_str(&partition.bound);
            sql
        }
        None => {
            let columns: Vec<String> = table
                .columns
                .iter()
                .filter(|c| !c.inherited)
                .map(column_definition)
                .collect();
            let body = if columns.is_empty() {
                "()".to_string()
            } else {
                format!("(\n    {}\n)", columns.join(",\n    "))
            };
            let mut sql = format!("CREATE {unlogged}TABLE {name} {body}");
            if !table.inherits.is_empty() {
                let parents: Vec<String> = table.inherits.iter().map(QualifiedName::sql).collect();
                sql.push_str(&format!(" INHERITS ({})", parents.join(", ")));
            }
            sql
        }
    };
    if let Some(key) = &table.partition_by {
        sql.push_str(&format!(" PARTITION BY {key}"));
    }
    if !table.options.is_empty() {
        sql.push_str(&format!(" WITH ({})", table.options.join(", ")));
    }
    sql
}

pub fn create_sequence(sequence: &Sequence) -> String {
    let mut sql = format!(
        "CREATE SEQUENCE {} AS {}",
        sequence.name.sql(),
        sequence.data_type
    );
    sql.push_str(&sequence_options(sequence));
    sql
}

/// The options of a sequence that differ from `CREATE SEQUENCE`'s defaults are still all
/// written: the server would otherwise derive them from the type and `pg_dump` shows them.
pub fn sequence_options(sequence: &Sequence) -> String {
    format!(
        " INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {}{}",
        sequence.increment,
        sequence.min,
        sequence.max,
        sequence.start,
        sequence.cache,
        if sequence.cycle {
            " CYCLE"
        } else {
            " NO CYCLE"
        }
    )
}

pub fn create_type(ty: &Type) -> String {
    let name = ty.name.sql();
    match &ty.kind {
        TypeKind::Enum { values } => {
            let labels: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
            format!("CREATE TYPE {name} AS ENUM ({})", labels.join(", "))
        }
        TypeKind::Domain {
            base,
            not_null,
            not_null_constraint,
            default,
            collation,
            checks,
        } => {
            let mut sql = format!("CREATE DOMAIN {name} AS {base}");
            if let Some(collation) = collation {
                sql.push_str(&format!(" COLLATE {collation}"));
            }
            if let Some(default) = default {
                sql.push_str(&format!(" DEFAULT {default}"));
            }
            if *not_null {
                if let Some(constraint) = not_null_constraint {
                    sql.push_str(&format!(" CONSTRAINT {}", ident(constraint)));
                }
                sql.push_str(" NOT NULL");
            }
            for (check, definition) in checks {
                sql.push_str(&format!(" CONSTRAINT {} {definition}", ident(check)));
            }
            sql
        }
        TypeKind::Composite { attributes } => {
            let body: Vec<String> = attributes
                .iter()
                .map(|(n, t)| format!("{} {t}", ident(n)))
                .collect();
            format!("CREATE TYPE {name} AS ({})", body.join(", "))
        }
        TypeKind::Range { options } => format!("CREATE TYPE {name} AS RANGE ({options})"),
    }
}

pub fn drop_type(ty: &Type) -> String {
    match ty.kind {
        TypeKind::Domain { .. } => format!("DROP DOMAIN {}", ty.name.sql()),
        _ => format!("DROP TYPE {}", ty.name.sql()),
    }
}

/// `pg_get_functiondef` without its trailing newline.
pub fn create_function(function: &Function) -> String {
    function.definition.trim_end().to_string()
}

pub fn drop_function(function: &Function) -> String {
    let kind = if function.procedure {
        "PROCEDURE"
    } else {
        "FUNCTION"
    };
    format!("DROP {kind} {}", function.key.sql())
}

pub fn create_view(view: &View) -> String {
    let kind = if view.materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    };
    let options = if view.options.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", view.options.join(", "))
    };
    let query = view.definition.trim().trim_end_matches(';');
    format!("CREATE {kind} {}{options} AS\n{query}", view.name.sql())
}

pub fn drop_view(view: &View) -> String {
    let kind = if view.materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    };
    format!("DROP {kind} {}", view.name.sql())
}

pub fn add_constraint(table: &QualifiedName, constraint: &Constraint, not_valid: bool) -> String {
    let mut sql = format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {}",
        table.sql(),
        ident(&constraint.name),
        constraint.definition
    );
    // pg_get_constraintdef already says NOT VALID for a constraint that is not validated.
    if not_valid && !constraint.definition.ends_with("NOT VALID") {
        sql.push_str(" NOT VALID");
    }
    sql
}

pub fn create_policy(table: &QualifiedName, policy: &Policy) -> String {
    let mut sql = format!(
        "CREATE POLICY {} ON {} AS {} FOR {} TO {}",
        ident(&policy.name),
        table.sql(),
        if policy.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        policy.command,
        if policy.roles.is_empty() {
            "PUBLIC".to_string()
        } else {
            policy.roles.join(", ")
        }
    );
    if let Some(using) = &policy.using {
        sql.push_str(&format!(" USING ({using})"));
    }
    if let Some(check) = &policy.check {
        sql.push_str(&format!(" WITH CHECK ({check})"));
    }
    sql
}

/// `ALTER TABLE ... ENABLE/DISABLE TRIGGER` for a trigger's state other than the default.
pub fn trigger_state(table: &QualifiedName, trigger: &Trigger) -> String {
    let action = match trigger.enabled {
        'D' => "DISABLE TRIGGER",
        'R' => "ENABLE REPLICA TRIGGER",
        'A' => "ENABLE ALWAYS TRIGGER",
        _ => "ENABLE TRIGGER",
    };
    format!(
        "ALTER TABLE {} {action} {}",
        table.sql(),
        ident(&trigger.name)
    )
}

/// `COMMENT ON <target> IS ...`, or `IS NULL` to remove one.
pub fn comment_on(target: &str, comment: Option<&str>) -> String {
    match comment {
        Some(text) => format!("COMMENT ON {target} IS {}", quote_literal(text)),
        None => format!("COMMENT ON {target} IS NULL"),
    }
}

/// What one `GRANT` or `REVOKE` does to a grantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrivilegeChange {
    /// `REVOKE`: the privileges go, with their grant option.
    Revoke,
    /// `REVOKE GRANT OPTION FOR`: the privileges stay.
    RevokeGrantOption,
    Grant,
    GrantWithGrantOption,
}

/// A `GRANT` or `REVOKE` of `privileges` on `target` (`TABLE public.t`, `FUNCTION
/// public.f(integer)`), on its `column` only if one is given.
pub fn privilege_statement(
    change: PrivilegeChange,
    target: &str,
    column: Option<&str>,
    privileges: &[&str],
    grantee: &str,
) -> String {
    let list: Vec<String> = privileges
        .iter()
        .map(|p| match column {
            Some(column) => format!("{p} ({})", ident(column)),
            None => p.to_string(),
        })
        .collect();
    let list = list.join(", ");
    let grantee = if grantee == PUBLIC {
        PUBLIC.to_string()
    } else {
        ident(grantee)
    };
    match change {
        PrivilegeChange::Revoke => format!("REVOKE {list} ON {target} FROM {grantee}"),
        PrivilegeChange::RevokeGrantOption => {
            format!("REVOKE GRANT OPTION FOR {list} ON {target} FROM {grantee}")
        }
        PrivilegeChange::Grant => format!("GRANT {list} ON {target} TO {grantee}"),
        PrivilegeChange::GrantWithGrantOption => {
            format!("GRANT {list} ON {target} TO {grantee} WITH GRANT OPTION")
        }
    }
}

/// An index's definition made `CONCURRENTLY`.
pub fn concurrently(definition: &str) -> String {
    for prefix in ["CREATE UNIQUE INDEX ", "CREATE INDEX "] {
        if let Some(rest) = definition.strip_prefix(prefix) {
            return format!("{prefix}CONCURRENTLY {rest}");
        }
    }
    definition.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrently_goes_after_index() {
        assert_eq!(
            concurrently("CREATE UNIQUE INDEX a ON public.t USING btree (x)"),
            "CREATE UNIQUE INDEX CONCURRENTLY a ON public.t USING btree (x)"
        );
        assert_eq!(
            concurrently("CREATE INDEX a ON public.t USING btree (x)"),
            "CREATE INDEX CONCURRENTLY a ON public.t USING btree (x)"
        );
    }
}
