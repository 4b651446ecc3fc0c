//! Key and foreign key definitions written from the catalog, character for character as
//! `pg_get_constraintdef` writes them: at 20,000 tables that function was most of the
//! constraint query's time. Checks and exclusions (expressions) and PostgreSQL 18's
//! temporal and `NOT ENFORCED` constraints stay with the server.

use crate::model::{ForeignKey, MatchType, ReferentialAction};

use super::index_definition::Quoter;

/// `PRIMARY KEY (a)` or `UNIQUE [NULLS NOT DISTINCT ](a, b) [INCLUDE (c)]`, then the tail.
pub(crate) fn key(
    primary: bool,
    nulls_not_distinct: bool,
    columns: &[String],
    include: &[String],
    tail: Tail,
    quoter: &Quoter,
) -> String {
    let mut sql = String::from(if primary {
        "PRIMARY KEY ("
    } else if nulls_not_distinct {
        "UNIQUE NULLS NOT DISTINCT ("
    } else {
        "UNIQUE ("
    });
    push_names(&mut sql, columns, quoter);
    sql.push(')');
    if !include.is_empty() {
        sql.push_str(" INCLUDE (");
        push_names(&mut sql, include, quoter);
        sql.push(')');
    }
    tail.push_to(&mut sql);
    sql
}

/// `FOREIGN KEY (a) REFERENCES s.t(b) [MATCH ...] [ON UPDATE ...] [ON DELETE ... [(a)]]`,
/// then the tail.
pub(crate) fn foreign_key(
    columns: &[String],
    key: &ForeignKey,
    tail: Tail,
    quoter: &Quoter,
) -> String {
    let mut sql = String::from("FOREIGN KEY (");
    push_names(&mut sql, columns, quoter);
    sql.push_str(") REFERENCES ");
    sql.push_str(&quoter.quote(&key.referenced_table.schema));
    sql.push('.');
    sql.push_str(&quoter.quote(&key.referenced_table.name));
    sql.push('(');
    push_names(&mut sql, &key.referenced_columns, quoter);
    sql.push(')');
    sql.push_str(match key.match_type {
        MatchType::Simple => "",
        MatchType::Full => " MATCH FULL",
        MatchType::Partial => " MATCH PARTIAL",
    });
    for (clause, action) in [
        (" ON UPDATE ", &key.on_update),
        (" ON DELETE ", &key.on_delete),
    ] {
        let (verb, columns) = match action {
            ReferentialAction::NoAction => continue,
            ReferentialAction::Restrict => ("RESTRICT", None),
            ReferentialAction::Cascade => ("CASCADE", None),
            ReferentialAction::SetNull { columns } => ("SET NULL", columns.as_ref()),
            ReferentialAction::SetDefault { columns } => ("SET DEFAULT", columns.as_ref()),
        };
        sql.push_str(clause);
        sql.push_str(verb);
        if let Some(columns) = columns {
            sql.push_str(" (");
            push_names(&mut sql, columns, quoter);
            sql.push(')');
        }
    }
    tail.push_to(&mut sql);
    sql
}

/// What follows every kind of constraint.
#[derive(Clone, Copy)]
pub(crate) struct Tail {
    pub deferrable: bool,
    pub initially_deferred: bool,
    pub validated: bool,
}

impl Tail {
    fn push_to(self, sql: &mut String) {
        if self.deferrable {
            sql.push_str(" DEFERRABLE");
        }
        if self.initially_deferred {
            sql.push_str(" INITIALLY DEFERRED");
        }
        if !self.validated {
            sql.push_str(" NOT VALID");
        }
    }
}

fn push_names(sql: &mut String, names: &[String], quoter: &Quoter) {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quoter.quote(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QualifiedName;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    const PLAIN: Tail = Tail {
        deferrable: false,
        initially_deferred: false,
        validated: true,
    };

    #[test]
    fn keys_and_foreign_keys() {
        let q = Quoter::new(["user".to_string()]);
        assert_eq!(
            key(true, false, &names(&["id"]), &[], PLAIN, &q),
            "PRIMARY KEY (id)"
        );
        let tail = Tail {
            deferrable: true,
            initially_deferred: true,
            validated: true,
        };
        assert_eq!(
            key(false, true, &names(&["a", "B"]), &names(&["c"]), tail, &q),
            "UNIQUE NULLS NOT DISTINCT (a, \"B\") INCLUDE (c) DEFERRABLE INITIALLY DEFERRED"
        );
        let fk = ForeignKey {
            referenced_table: QualifiedName::new("Odd", "user"),
            referenced_columns: names(&["id", "k"]),
            on_delete: ReferentialAction::SetNull {
                columns: Some(names(&["a"])),
            },
            on_update: ReferentialAction::Cascade,
            match_type: MatchType::Full,
            deferrable: false,
            initially_deferred: false,
        };
        let tail = Tail {
            validated: false,
            ..PLAIN
        };
        assert_eq!(
            foreign_key(&names(&["a", "b"]), &fk, tail, &q),
            "FOREIGN KEY (a, b) REFERENCES \"Odd\".\"user\"(id, k) MATCH FULL \
             ON UPDATE CASCADE ON DELETE SET NULL (a) NOT VALID"
        );
    }
}
