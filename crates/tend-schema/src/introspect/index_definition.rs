//! `CREATE INDEX` statements written from the catalog, character for character as
//! `pg_get_indexdef` writes them, for the indexes whose text depends only on names.
//!
//! Why: `pg_get_indexdef` opens the index's table on the server (it builds a deparse context
//! naming the table's columns), so reading every index of a 20,000-table schema built 20,000
//! relation cache entries, most of the catalog read's time. A plain index (columns only, the
//! default operator classes and collations, a built-in access method, no storage parameters)
//! needs nothing but names the read already has. Anything else (expressions, predicates,
//! another operator class or collation, opclass options, storage parameters, an index of a
//! partitioned table, an access method from an extension) is left to the server:
//! [`render`] returns `None` and the caller asks `pg_get_indexdef`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use tokio_postgres::types::Oid;

/// Quotes identifiers as the server's `quote_identifier` does: plain when the name is lower
/// case ASCII letters, digits and underscores, not starting with a digit, and not a keyword
/// that needs quotes; otherwise in double quotes, doubling the ones inside.
pub(crate) struct Quoter {
    /// The server's keywords other than the unreserved ones (`pg_get_keywords()`), read
    /// from the server itself, since each major version adds some.
    keywords: HashSet<String>,
}

impl Quoter {
    pub(crate) fn new(keywords: impl IntoIterator<Item = String>) -> Quoter {
        Quoter {
            keywords: keywords.into_iter().collect(),
        }
    }

    pub(crate) fn quote<'a>(&self, name: &'a str) -> Cow<'a, str> {
        let plain = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !self.keywords.contains(name);
        if plain {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(format!("\"{}\"", name.replace('"', "\"\"")))
        }
    }
}

/// A column of a table, as an index key needs it.
#[derive(Debug, Clone)]
pub(crate) struct Attribute {
    pub name: String,
    pub type_oid: Oid,
    pub collation: Oid,
}

/// The default operator class of each access method and input type (`opcdefault`).
#[derive(Default)]
pub(crate) struct DefaultOpclasses(HashMap<(Oid, Oid), Oid>);

impl DefaultOpclasses {
    pub(crate) fn insert(&mut self, method: Oid, input_type: Oid, opclass: Oid) {
        self.0.insert((method, input_type), opclass);
    }

    /// Whether `opclass` is what the server would choose for a column of `type_oid` by
    /// default, so that `pg_get_indexdef` leaves it out. Only an exact match of the input
    /// type counts: a column whose type reaches its default class by a binary coercion
    /// (`varchar` to `text_ops`, an enum to `enum_ops`, a domain to its base type's) gets
    /// `false`, and its index is left to the server.
    fn is_default(&self, method: Oid, type_oid: Oid, opclass: Oid) -> bool {
        self.0.get(&(method, type_oid)) == Some(&opclass)
    }
}

/// One row of `pg_index`, with its access method, as [`render`] reads it.
pub(crate) struct IndexRow<'a> {
    pub name: &'a str,
    pub table_schema: &'a str,
    pub table_name: &'a str,
    pub unique: bool,
    pub nulls_not_distinct: bool,
    pub method: &'a str,
    pub method_oid: Oid,
    /// `indnkeyatts`: the key columns; the others (to `keys.len()`) are `INCLUDE` columns.
    pub key_count: usize,
    /// `indkey`: attribute numbers, 0 for an expression.
    pub keys: &'a [i16],
    /// `indclass`, `indcollation`, `indoption`: one per key column.
    pub opclasses: &'a [Oid],
    pub collations: &'a [Oid],
    pub options: &'a [i16],
}

/// `indoption` bits (`pg_index.h`).
const DESC: i16 = 0x0001;
const NULLS_FIRST: i16 = 0x0002;

/// The `pg_get_indexdef` text of a plain index, or `None` when only the server can write it.
/// `attributes` holds the table's columns by attribute number (index 0 is `attnum` 1), with
/// `None` for dropped ones.
pub(crate) fn render(
    index: &IndexRow<'_>,
    attributes: &[Option<Attribute>],
    defaults: &DefaultOpclasses,
    quoter: &Quoter,
) -> Option<String> {
    // Built-in access methods; only btree sorts, so only its keys take DESC and NULLS.
    let can_order = match index.method {
        "btree" => true,
        "hash" | "gist" | "gin" | "spgist" | "brin" => false,
        _ => return None,
    };
    let key_count = index.key_count;
    if key_count == 0
        || key_count > index.keys.len()
        || index.opclasses.len() < key_count
        || index.collations.len() < key_count
        || index.options.len() < key_count
    {
        return None;
    }
    let mut sql = format!(
        "CREATE {}INDEX {} ON {}.{} USING {} (",
        if index.unique { "UNIQUE " } else { "" },
        quoter.quote(index.name),
        quoter.quote(index.table_schema),
        quoter.quote(index.table_name),
        quoter.quote(index.method),
    );
    for (position, &attnum) in index.keys.iter().enumerate() {
        let attribute = usize::try_from(attnum)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|at| attributes.get(at))
            .and_then(Option::as_ref)?;
        if position == key_count {
            sql.push_str(") INCLUDE (");
        } else if position > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&quoter.quote(&attribute.name));
        if position >= key_count {
            continue;
        }
        let collation = index.collations[position];
        if collation != 0 && collation != attribute.collation {
            return None;
        }
        if !defaults.is_default(
            index.method_oid,
            attribute.type_oid,
            index.opclasses[position],
        ) {
            return None;
        }
        let option = index.options[position];
        if can_order {
            if option & DESC != 0 {
                sql.push_str(" DESC");
                if option & NULLS_FIRST == 0 {
                    sql.push_str(" NULLS LAST");
                }
            } else if option & NULLS_FIRST != 0 {
                sql.push_str(" NULLS FIRST");
            }
        }
    }
    sql.push(')');
    if index.nulls_not_distinct {
        sql.push_str(" NULLS NOT DISTINCT");
    }
    Some(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoter() -> Quoter {
        Quoter::new(["select", "user", "order"].map(String::from))
    }

    #[test]
    fn quotes_like_the_server() {
        let q = quoter();
        assert_eq!(q.quote("plain_name1"), "plain_name1");
        assert_eq!(q.quote("_x"), "_x");
        assert_eq!(q.quote("1x"), "\"1x\"");
        assert_eq!(q.quote("Mixed"), "\"Mixed\"");
        assert_eq!(q.quote("with space"), "\"with space\"");
        assert_eq!(q.quote("a$b"), "\"a$b\"");
        assert_eq!(q.quote("order"), "\"order\"");
        assert_eq!(q.quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(q.quote("café"), "\"café\"");
        assert_eq!(q.quote(""), "\"\"");
    }

    fn attributes() -> Vec<Option<Attribute>> {
        vec![
            Some(Attribute {
                name: "id".into(),
                type_oid: 20,
                collation: 0,
            }),
            None,
            Some(Attribute {
                name: "Name".into(),
                type_oid: 25,
                collation: 100,
            }),
        ]
    }

    fn defaults() -> DefaultOpclasses {
        let mut d = DefaultOpclasses::default();
        d.insert(403, 20, 3124);
        d.insert(403, 25, 3126);
        d
    }

    fn row<'a>(keys: &'a [i16], classes: &'a [Oid], options: &'a [i16]) -> IndexRow<'a> {
        IndexRow {
            name: "t_idx",
            table_schema: "public",
            table_name: "user",
            unique: false,
            nulls_not_distinct: false,
            method: "btree",
            method_oid: 403,
            key_count: classes.len(),
            keys,
            opclasses: classes,
            collations: &[0, 0, 0][..classes.len()],
            options,
        }
    }

    #[test]
    fn writes_keys_orders_and_included_columns() {
        let (a, d, q) = (attributes(), defaults(), quoter());
        let mut index = row(&[1, 3], &[3124, 3126], &[0, 3]);
        index.unique = true;
        assert_eq!(
            render(&index, &a, &d, &q).unwrap(),
            "CREATE UNIQUE INDEX t_idx ON public.\"user\" USING btree (id, \"Name\" DESC)"
        );
        let mut index = row(&[1, 3], &[3124], &[2]);
        index.nulls_not_distinct = true;
        assert_eq!(
            render(&index, &a, &d, &q).unwrap(),
            "CREATE INDEX t_idx ON public.\"user\" USING btree (id NULLS FIRST) INCLUDE (\"Name\") NULLS NOT DISTINCT"
        );
        let index = row(&[1], &[3124], &[1]);
        assert!(
            render(&index, &a, &d, &q)
                .unwrap()
                .ends_with("(id DESC NULLS LAST)")
        );
    }

    #[test]
    fn leaves_the_rest_to_the_server() {
        let (a, d, q) = (attributes(), defaults(), quoter());
        // An expression, a dropped or unknown column, another operator class.
        for (keys, classes) in [
            (&[0i16][..], &[3124][..]),
            (&[2], &[3124]),
            (&[9], &[3124]),
            (&[3], &[4217]),
        ] {
            assert_eq!(render(&row(keys, classes, &[0]), &a, &d, &q), None);
        }
        // Another collation than the column's.
        let mut index = row(&[3], &[3126], &[0]);
        index.collations = &[950];
        assert_eq!(render(&index, &a, &d, &q), None);
        // An access method the reader does not know.
        let mut index = row(&[1], &[3124], &[0]);
        index.method = "bloom";
        assert_eq!(render(&index, &a, &d, &q), None);
    }
}
