//! The model of a database's schema: what introspection reads and what the diff compares.
//!
//! Everything is kept in ordered maps so two reads of the same database give the same model,
//! and the server renders the definitions (`pg_get_indexdef`, `pg_get_constraintdef`,
//! `pg_get_viewdef`, `pg_get_functiondef`, ...) with an empty `search_path`: names are then
//! fully qualified and two databases built from the same SQL compare equal text for text.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

pub use crate::name_map::NameMap;

/// A name inside a schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parses `schema.name` or `name` (then in `public`), with optional double quotes.
    pub fn parse(text: &str) -> QualifiedName {
        let parts = split_dotted(text);
        match parts.as_slice() {
            [name] => QualifiedName::new("public", name.clone()),
            [schema, name] => QualifiedName::new(schema.clone(), name.clone()),
            _ => QualifiedName::new("public", text),
        }
    }

    /// `"schema"."name"`, quoted only where SQL needs it.
    pub fn sql(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }
}

impl fmt::Display for QualifiedName {
    /// The form people read: `schema.name` without quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an identifier only where SQL needs it, as PostgreSQL's `quote_ident` and
/// `format_type` do, so the names tend writes read like the ones the server renders.
pub fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && KEYWORDS.binary_search(&name).is_err();
    if plain {
        name.to_string()
    } else {
        tend_pg::quote_ident(name)
    }
}

/// PostgreSQL's keywords that are not "unreserved": as names they need quotes. Sorted.
const KEYWORDS: [&str; 151] = [
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Splits `a.b.c` on dots outside double quotes, removing the quotes.
pub fn split_dotted(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// A function is known by its schema, name and argument types (overloads are distinct).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FunctionKey {
    pub schema: String,
    pub name: String,
    /// `pg_get_function_identity_arguments`, e.g. `a integer, b text`.
    pub arguments: String,
}

impl FunctionKey {
    pub fn sql(&self) -> String {
        format!(
            "{}.{}({})",
            ident(&self.schema),
            ident(&self.name),
            self.arguments
        )
    }
}

impl fmt::Display for FunctionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}({})", self.schema, self.name, self.arguments)
    }
}

/// A database's schema, as far as an application's migrations shape it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Model {
    #[serde(serialize_with = "values")]
    pub schemas: BTreeMap<String, Namespace>,
    #[serde(serialize_with = "values")]
    pub extensions: BTreeMap<String, Extension>,
    #[serde(serialize_with = "values")]
    pub types: BTreeMap<QualifiedName, Type>,
    #[serde(serialize_with = "values")]
    pub sequences: BTreeMap<QualifiedName, Sequence>,
    #[serde(serialize_with = "values")]
    pub tables: BTreeMap<QualifiedName, Table>,
    #[serde(serialize_with = "values")]
    pub views: BTreeMap<QualifiedName, View>,
    #[serde(serialize_with = "values")]
    pub functions: BTreeMap<FunctionKey, Function>,
    /// `ALTER DEFAULT PRIVILEGES`: what objects get when they are created.
    #[serde(serialize_with = "values")]
    pub default_privileges: BTreeMap<DefaultPrivilegesKey, DefaultPrivileges>,
    /// Read from a server that keeps a column's `NOT NULL` as a named constraint
    /// (PostgreSQL 18): the name stays when the table or column is renamed, so a rename
    /// in a plan carries it along.
    #[serde(default, skip_serializing_if = "is_false")]
    pub named_not_nulls: bool,
}

impl Model {
    /// How many objects the model holds, counting columns, constraints, indexes, triggers and
    /// policies one each.
    pub fn object_count(&self) -> usize {
        let tables: usize = self
            .tables
            .values()
            .map(|t| {
                1 + t.columns.len()
                    + t.constraints.len()
                    + t.indexes.len()
                    + t.triggers.len()
                    + t.policies.len()
            })
            .sum();
        let views: usize = self.views.values().map(|v| 1 + v.indexes.len()).sum();
        self.schemas.len()
            + self.extensions.len()
            + self.types.len()
            + self.sequences.len()
            + tables
            + views
            + self.functions.len()
    }
}

impl Model {
    /// Every foreign key of the model, by referencing table and constraint name.
    pub fn references(&self) -> impl Iterator<Item = Reference<'_>> {
        self.tables
            .iter()
            .flat_map(|(name, table)| table_references(name, table))
    }

    /// The foreign keys `table` holds: what its rows point at.
    pub fn references_from(&self, table: &QualifiedName) -> impl Iterator<Item = Reference<'_>> {
        self.tables
            .get_key_value(table)
            .into_iter()
            .flat_map(|(name, table)| table_references(name, table))
    }

    /// The foreign keys pointing at `table`, its own self-references included: the rows a
    /// delete there cascades to, nulls or is refused by. It reads every table's
    /// constraints: to walk the whole graph, index [`Model::references`] once instead.
    pub fn references_to<'a>(
        &'a self,
        table: &'a QualifiedName,
    ) -> impl Iterator<Item = Reference<'a>> + 'a {
        self.references()
            .filter(move |r| r.foreign_key.referenced_table == *table)
    }
}

fn table_references<'a>(
    name: &'a QualifiedName,
    table: &'a Table,
) -> impl Iterator<Item = Reference<'a>> + 'a {
    table.constraints.values().filter_map(move |constraint| {
        Some(Reference {
            table: name,
            constraint,
            foreign_key: constraint.foreign_key.as_deref()?,
        })
    })
}

fn values<K, V: Serialize, S: Serializer>(
    map: &BTreeMap<K, V>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(map.values())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Namespace {
    pub name: String,
    pub comment: Option<String>,
    pub privileges: Privileges,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension {
    pub name: String,
    pub schema: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Type {
    pub name: QualifiedName,
    pub kind: TypeKind,
    pub comment: Option<String>,
    pub privileges: Privileges,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeKind {
    /// Labels in their sort order.
    Enum { values: Vec<String> },
    Domain {
        base: String,
        not_null: bool,
        /// The name of the domain's `NOT NULL` constraint (PostgreSQL 17 makes one) when it
        /// is not `<domain>_not_null`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_null_constraint: Option<String>,
        default: Option<String>,
        collation: Option<String>,
        /// Check constraints by name, as `CHECK (...)`.
        checks: BTreeMap<String, String>,
    },
    /// `CREATE TYPE x AS (...)`: attribute names and types, in order.
    Composite { attributes: Vec<(String, String)> },
    /// `CREATE TYPE x AS RANGE (...)`: the parenthesised options.
    Range { options: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sequence {
    pub name: QualifiedName,
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// `OWNED BY` a column: dropped with it.
    pub owned_by: Option<(QualifiedName, String)>,
    pub comment: Option<String>,
    pub privileges: Privileges,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub name: QualifiedName,
    pub unlogged: bool,
    /// `PARTITION BY ...` (`pg_get_partkeydef`) of a partitioned table.
    pub partition_by: Option<String>,
    /// The parent and the bound (`FOR VALUES ...`) of a partition.
    pub partition_of: Option<Partition>,
    /// Parents of classic inheritance.
    pub inherits: Vec<QualifiedName>,
    /// Storage parameters (`reloptions`), e.g. `fillfactor=70`.
    pub options: Vec<String>,
    /// In `attnum` order: the order `CREATE TABLE` gives and `pg_dump` shows.
    pub columns: Vec<Column>,
    pub constraints: NameMap<Constraint>,
    /// Indexes that no constraint owns (those come with their constraint).
    pub indexes: NameMap<Index>,
    pub triggers: NameMap<Trigger>,
    pub row_security: bool,
    pub force_row_security: bool,
    pub policies: NameMap<Policy>,
    pub comment: Option<String>,
    pub privileges: Privileges,
}

impl Table {
    /// A table with no columns and nothing else: what `CREATE TABLE name ()` makes.
    pub fn new(name: QualifiedName) -> Table {
        Table {
            name,
            unlogged: false,
            partition_by: None,
            partition_of: None,
            inherits: Vec::new(),
            options: Vec::new(),
            columns: Vec::new(),
            constraints: NameMap::new(),
            indexes: NameMap::new(),
            triggers: NameMap::new(),
            row_security: false,
            force_row_security: false,
            policies: NameMap::new(),
            comment: None,
            privileges: Privileges::default(),
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The name PostgreSQL gives a `NOT NULL` constraint nobody named: `<table>_<column>_not_null`
/// (or `<domain>_not_null`, `column` `None`), the longer of the two names shortened first
/// until the whole fits in 63 bytes, never inside a character (`makeObjectName`). The
/// server numbers the label (`not_null1`, ...) when the name is taken in the schema; such
/// names are not the default here.
pub fn not_null_name(table: &str, column: Option<&str>) -> String {
    const LABEL: &str = "not_null";
    let overhead = LABEL.len() + 1 + usize::from(column.is_some());
    let available = 63 - overhead;
    let (mut first, mut second) = (table.len(), column.map_or(0, str::len));
    while first + second > available {
        if first > second {
            first -= 1;
        } else {
            second -= 1;
        }
    }
    let clip = |text: &str, mut len: usize| {
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        text[..len].to_string()
    };
    let mut name = clip(table, first);
    if let Some(column) = column {
        name.push('_');
        name.push_str(&clip(column, second));
    }
    name.push('_');
    name.push_str(LABEL);
    name
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    pub parent: QualifiedName,
    pub bound: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    /// `format_type`: the type with its modifiers, e.g. `character varying(40)`, `integer[]`.
    pub data_type: String,
    /// A validated `NOT NULL`.
    pub not_null: bool,
    /// The name of the column's `NOT NULL` constraint (PostgreSQL 18 makes one, with a
    /// name kept across table and column renames) when it is not [`not_null_name`]'s
    /// `<table>_<column>_not_null`. A name the server numbered to avoid a collision
    /// (`..._not_null1`) is kept here too: the collision depends on what else existed when
    /// the constraint was made, so only the name itself recreates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_null_constraint: Option<String>,
    /// `NOT NULL NO INHERIT` (PostgreSQL 18): children do not get the constraint.
    #[serde(default, skip_serializing_if = "is_false")]
    pub not_null_no_inherit: bool,
    /// A `NOT NULL` constraint added `NOT VALID` and not validated yet (PostgreSQL 18):
    /// existing rows may hold NULLs, so `not_null` is false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub not_null_not_valid: bool,
    pub default: Option<String>,
    pub identity: Option<Identity>,
    /// The identity's sequence options that differ from the defaults for its type, as
    /// clauses in a fixed order (`START WITH 100`, `INCREMENT BY 10`, `MINVALUE 5`,
    /// `MAXVALUE 99`, `CACHE 20`, `CYCLE`).
    pub identity_options: Vec<String>,
    /// The expression of a `GENERATED ALWAYS AS (...) STORED` column.
    pub generated: Option<String>,
    /// A collation other than the type's default.
    pub collation: Option<String>,
    /// Defined by a parent (inheritance or partitioning), not by this table.
    pub inherited: bool,
    pub comment: Option<String>,
    /// Column privileges (`GRANT SELECT (col) ON ...`): none by default.
    pub privileges: Privileges,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Always,
    ByDefault,
}

impl Identity {
    pub fn sql(self) -> &'static str {
        match self {
            Identity::Always => "GENERATED ALWAYS AS IDENTITY",
            Identity::ByDefault => "GENERATED BY DEFAULT AS IDENTITY",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef`, e.g. `FOREIGN KEY (a) REFERENCES public.t(id) ON DELETE CASCADE`:
    /// what the diff compares and writes.
    pub definition: String,
    /// False for a `NOT VALID` constraint not validated yet.
    pub validated: bool,
    /// The constrained columns in key order (`conkey`): a foreign key's referencing columns.
    pub columns: Vec<String>,
    /// What a foreign key points at and does, read from the catalog rather than parsed out of
    /// [`Constraint::definition`]; `None` for other kinds. Boxed: most constraints are
    /// not foreign keys, and a constraint is about half as big without room for one.
    pub foreign_key: Option<Box<ForeignKey>>,
    /// Defined by a parent table, not by this one.
    pub inherited: bool,
    pub comment: Option<String>,
}

impl Constraint {
    /// The table a foreign key points at.
    pub fn references(&self) -> Option<&QualifiedName> {
        self.foreign_key.as_ref().map(|fk| &fk.referenced_table)
    }
}

impl Serialize for Constraint {
    /// The fields as they are, and `references` (the referenced table) as `schema dump --json`
    /// has always had it, beside the typed `foreign_key`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Constraint", 9)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("definition", &self.definition)?;
        s.serialize_field("validated", &self.validated)?;
        s.serialize_field("columns", &self.columns)?;
        s.serialize_field("references", &self.references())?;
        if let Some(foreign_key) = &self.foreign_key {
            s.serialize_field("foreign_key", foreign_key)?;
        } else {
            s.skip_field("foreign_key")?;
        }
        s.serialize_field("inherited", &self.inherited)?;
        s.serialize_field("comment", &self.comment)?;
        s.end()
    }
}

/// A foreign key's reference: the referenced side, what happens to referencing rows, and
/// when it is checked. The referencing columns and whether the key is validated are the
/// constraint's ([`Constraint::columns`], [`Constraint::validated`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    pub referenced_table: QualifiedName,
    /// In the order of [`Constraint::columns`], column for column (`confkey`).
    pub referenced_columns: Vec<String>,
    pub on_delete: ReferentialAction,
    pub on_update: ReferentialAction,
    pub match_type: MatchType,
    pub deferrable: bool,
    pub initially_deferred: bool,
}

/// `ON DELETE` / `ON UPDATE` of a foreign key (`confdeltype`, `confupdtype`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReferentialAction {
    NoAction,
    Restrict,
    Cascade,
    /// `SET NULL`, on some of the referencing columns only when `columns` is set
    /// (`ON DELETE SET NULL (a)`, PostgreSQL 15).
    SetNull {
        columns: Option<Vec<String>>,
    },
    /// `SET DEFAULT`, on some columns only when `columns` is set (PostgreSQL 15).
    SetDefault {
        columns: Option<Vec<String>>,
    },
}

impl ReferentialAction {
    /// From the catalog's code (`a`, `r`, `c`, `n`, `d`), with the `ON DELETE` column list.
    pub fn from_catalog(code: &str, columns: Option<Vec<String>>) -> Option<ReferentialAction> {
        let columns = columns.filter(|c| !c.is_empty());
        Some(match code {
            "a" => ReferentialAction::NoAction,
            "r" => ReferentialAction::Restrict,
            "c" => ReferentialAction::Cascade,
            "n" => ReferentialAction::SetNull { columns },
            "d" => ReferentialAction::SetDefault { columns },
            _ => return None,
        })
    }
}

/// `MATCH` of a foreign key (`confmatchtype`): how NULLs in a multi-column key are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchType {
    Simple,
    Full,
    Partial,
}

impl MatchType {
    pub fn from_catalog(code: &str) -> Option<MatchType> {
        Some(match code {
            "s" => MatchType::Simple,
            "f" => MatchType::Full,
            "p" => MatchType::Partial,
            _ => return None,
        })
    }
}

/// One foreign key seen from the model: the referencing table and its constraint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference<'a> {
    /// The referencing table.
    pub table: &'a QualifiedName,
    pub constraint: &'a Constraint,
    pub foreign_key: &'a ForeignKey,
}

impl Reference<'_> {
    /// The referencing columns, in the order of [`ForeignKey::referenced_columns`].
    pub fn columns(&self) -> &[String] {
        &self.constraint.columns
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    Exclusion,
    ForeignKey,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Index {
    pub name: String,
    /// `pg_get_indexdef`: the whole `CREATE [UNIQUE] INDEX ... ON ... USING ...` statement.
    pub definition: String,
    /// False for an index a failed `CREATE INDEX CONCURRENTLY` left behind.
    pub valid: bool,
    /// The index of a partitioned parent this one is attached to.
    pub parent: Option<QualifiedName>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    pub name: String,
    /// `pg_get_triggerdef`.
    pub definition: String,
    /// `O` (origin, the default), `D` disabled, `R` replica, `A` always.
    pub enabled: char,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: String,
    pub permissive: bool,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    pub command: String,
    pub roles: Vec<String>,
    pub using: Option<String>,
    pub check: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    pub name: QualifiedName,
    pub materialized: bool,
    /// `pg_get_viewdef`: the query.
    pub definition: String,
    pub columns: Vec<String>,
    pub options: Vec<String>,
    /// Tables and views the query reads: created before it, and a change to one of them
    /// recreates it.
    pub depends_on: Vec<QualifiedName>,
    /// Indexes of a materialized view.
    pub indexes: NameMap<Index>,
    pub comment: Option<String>,
    pub privileges: Privileges,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Function {
    pub key: FunctionKey,
    pub procedure: bool,
    /// `pg_get_functiondef`: a complete `CREATE OR REPLACE FUNCTION` statement.
    pub definition: String,
    /// `pg_get_function_result`: a change to it needs a drop and a create.
    pub result: Option<String>,
    pub comment: Option<String>,
    pub privileges: Privileges,
}

/// What an object's ACL grants, without what its owner holds by default: an ACL never set
/// (NULL, the owner's implicit default) and one set back to the default compare equal.
/// Grantors are left out (as if the owner granted everything). Roles are the cluster's:
/// the model names them and does not check they exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Privileges {
    /// Privileges held by roles other than the owner, `PUBLIC` included, sorted, one entry
    /// per grantee and privilege.
    pub grants: Vec<Grant>,
    /// Default privileges the owner took away from itself (`REVOKE ... FROM owner`).
    pub owner_revoked: Vec<Grant>,
}

impl Privileges {
    /// What a new object of the kind holds before any `GRANT`: functions and procedures
    /// are executable by `PUBLIC`, types and domains usable by it.
    pub fn default_for(kind: PrivilegeTarget) -> Privileges {
        let public = |privilege: &str| Grant {
            grantee: PUBLIC.to_string(),
            privilege: privilege.to_string(),
            grantable: false,
        };
        let grants = match kind {
            PrivilegeTarget::Function | PrivilegeTarget::Procedure => vec![public("EXECUTE")],
            PrivilegeTarget::Type | PrivilegeTarget::Domain => vec![public("USAGE")],
            _ => Vec::new(),
        };
        Privileges {
            grants,
            owner_revoked: Vec::new(),
        }
    }
}

/// Whose new objects, where, and of which kind, `ALTER DEFAULT PRIVILEGES` applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct DefaultPrivilegesKey {
    /// `FOR ROLE`: the role creating the objects.
    pub role: String,
    /// `IN SCHEMA`, or every schema.
    pub schema: Option<String>,
    /// `TABLES` (views and sequences' tables included), `SEQUENCES`, `FUNCTIONS` (and
    /// procedures), `TYPES` or `SCHEMAS`.
    pub objects: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefaultPrivileges {
    pub key: DefaultPrivilegesKey,
    /// For every schema, what differs from the built-in default (as an object's
    /// [`Privileges`] do, the role standing for the owner); in one schema, what is added.
    pub privileges: Privileges,
}

impl DefaultPrivileges {
    /// What holds with no `ALTER DEFAULT PRIVILEGES`.
    pub fn baseline(key: &DefaultPrivilegesKey) -> Privileges {
        match (&key.schema, key.objects.as_str()) {
            (None, "FUNCTIONS") => Privileges::default_for(PrivilegeTarget::Function),
            (None, "TYPES") => Privileges::default_for(PrivilegeTarget::Type),
            _ => Privileges::default(),
        }
    }
}

/// The grantee that stands for every role.
pub const PUBLIC: &str = "PUBLIC";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Grant {
    /// A role's name, or `PUBLIC`.
    pub grantee: String,
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`, `REFERENCES`, `TRIGGER`,
    /// `USAGE`, `CREATE`, `EXECUTE`.
    pub privilege: String,
    /// `WITH GRANT OPTION`.
    pub grantable: bool,
}

/// The kinds of object `GRANT ... ON` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegeTarget {
    Schema,
    /// Tables, views and materialized views.
    Table,
    Sequence,
    Function,
    Procedure,
    Type,
    Domain,
}

impl PrivilegeTarget {
    pub fn keyword(self) -> &'static str {
        match self {
            PrivilegeTarget::Schema => "SCHEMA",
            PrivilegeTarget::Table => "TABLE",
            PrivilegeTarget::Sequence => "SEQUENCE",
            PrivilegeTarget::Function => "FUNCTION",
            PrivilegeTarget::Procedure => "PROCEDURE",
            PrivilegeTarget::Type => "TYPE",
            PrivilegeTarget::Domain => "DOMAIN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_sorted_and_quoted() {
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ident("user"), "\"user\"");
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("User"), "\"User\"");
        assert_eq!(ident("a b"), "\"a b\"");
        assert_eq!(ident("_x1$"), "_x1$");
    }

    #[test]
    fn not_null_names_shorten_the_longer_name_first() {
        assert_eq!(not_null_name("users", Some("id")), "users_id_not_null");
        assert_eq!(not_null_name("email", None), "email_not_null");
        let long = "a".repeat(60);
        let name = not_null_name(&long, Some("id"));
        assert_eq!(name, format!("{}_id_not_null", "a".repeat(51)));
        assert_eq!(name.len(), 63);
        let both = not_null_name(&"t".repeat(40), Some(&"c".repeat(40)));
        assert_eq!(
            both,
            format!("{}_{}_not_null", "t".repeat(27), "c".repeat(26))
        );
        // Never inside a character: 'é' is two bytes.
        let accented = not_null_name(&"é".repeat(40), Some("id"));
        assert!(accented.len() <= 63 && accented.ends_with("_id_not_null"));
        assert_eq!(accented, format!("{}_id_not_null", "é".repeat(25)));
    }

    fn table(schema: &str, name: &str, foreign_keys: &[(&str, &str, &str)]) -> Table {
        let constraints = foreign_keys
            .iter()
            .map(|(constraint, column, target)| {
                let target = QualifiedName::parse(target);
                let constraint = Constraint {
                    name: constraint.to_string(),
                    kind: ConstraintKind::ForeignKey,
                    definition: format!("FOREIGN KEY ({column}) REFERENCES {}(id)", target.sql()),
                    validated: true,
                    columns: vec![column.to_string()],
                    foreign_key: Some(Box::new(ForeignKey {
                        referenced_table: target,
                        referenced_columns: vec!["id".to_string()],
                        on_delete: ReferentialAction::Cascade,
                        on_update: ReferentialAction::NoAction,
                        match_type: MatchType::Simple,
                        deferrable: false,
                        initially_deferred: false,
                    })),
                    inherited: false,
                    comment: None,
                };
                (constraint.name.clone(), constraint)
            })
            .collect();
        Table {
            constraints,
            ..Table::new(QualifiedName::new(schema, name))
        }
    }

    fn model(tables: Vec<Table>) -> Model {
        Model {
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
            ..Model::default()
        }
    }

    #[test]
    fn references_to_finds_every_referencing_table_and_self_references() {
        let model = model(vec![
            table(
                "public",
                "users",
                &[("users_manager", "manager_id", "public.users")],
            ),
            table(
                "shop",
                "orders",
                &[("orders_user", "user_id", "public.users")],
            ),
            table(
                "shop",
                "items",
                &[("items_order", "order_id", "shop.orders")],
            ),
        ]);
        let users = QualifiedName::new("public", "users");
        let incoming: Vec<String> = model
            .references_to(&users)
            .map(|r| format!("{}:{}", r.table, r.constraint.name))
            .collect();
        assert_eq!(
            incoming,
            ["public.users:users_manager", "shop.orders:orders_user"]
        );
        let orders = QualifiedName::new("shop", "orders");
        let outgoing: Vec<&QualifiedName> = model
            .references_from(&orders)
            .map(|r| &r.foreign_key.referenced_table)
            .collect();
        assert_eq!(outgoing, [&users]);
        assert_eq!(
            model
                .references_to(&QualifiedName::new("shop", "items"))
                .count(),
            0
        );
        assert_eq!(
            model
                .references_from(&QualifiedName::new("x", "none"))
                .count(),
            0
        );
    }

    #[test]
    fn constraints_serialize_the_referenced_table_beside_the_typed_foreign_key() {
        let model = model(vec![table(
            "shop",
            "orders",
            &[("orders_user", "user_id", "users")],
        )]);
        let value =
            serde_json::to_value(&model.tables.values().next().unwrap().constraints).unwrap();
        let fk = &value["orders_user"];
        assert_eq!(fk["references"]["name"], "users");
        assert_eq!(fk["foreign_key"]["referenced_table"]["schema"], "public");
        assert_eq!(fk["foreign_key"]["on_delete"]["action"], "cascade");
        assert_eq!(fk["foreign_key"]["match_type"], "simple");
    }

    #[test]
    fn catalog_codes_map_to_actions_and_match_types() {
        let cols = Some(vec!["a".to_string()]);
        assert_eq!(
            ReferentialAction::from_catalog("n", cols.clone()),
            Some(ReferentialAction::SetNull { columns: cols })
        );
        assert_eq!(
            ReferentialAction::from_catalog("d", Some(Vec::new())),
            Some(ReferentialAction::SetDefault { columns: None })
        );
        assert_eq!(
            ReferentialAction::from_catalog("a", None),
            Some(ReferentialAction::NoAction)
        );
        assert_eq!(ReferentialAction::from_catalog("?", None), None);
        assert_eq!(MatchType::from_catalog("f"), Some(MatchType::Full));
        assert_eq!(MatchType::from_catalog("p"), Some(MatchType::Partial));
    }

    #[test]
    fn qualified_names_parse_and_quote() {
        assert_eq!(
            QualifiedName::parse("users"),
            QualifiedName::new("public", "users")
        );
        assert_eq!(
            QualifiedName::parse("\"My Schema\".\"a.b\""),
            QualifiedName::new("My Schema", "a.b")
        );
        assert_eq!(
            QualifiedName::new("public", "User").sql(),
            "public.\"User\""
        );
    }
}
