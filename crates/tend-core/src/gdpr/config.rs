//! `[gdpr]` as `tend.toml` writes it: the subject table, a policy per table, and links the
//! database does not know (columns or JSON values that hold a key without a constraint).
//! Checked for shape when settings resolve; against the schema by `tend gdpr check`.
//!
//! ```toml
//! [gdpr]
//! subject = "users"            # whose data: a row of this table, by its primary key
//! email_column = "email"       # `--email` finds the subject by it (case-insensitive)
//!
//! [gdpr.tables.users]
//! action = "delete"            # delete | anonymize | unlink | retain
//!
//! [gdpr.tables.tasks]
//! action = "unlink"            # rows that mention the subject lose the mention (NULL)
//!
//! [gdpr.tables.profiles]
//! action = "anonymize"
//! columns = { email = "fake-email", name = "fake-name", bio = "null", phone = "hash" }
//!
//! [gdpr.tables.invoices]
//! action = "retain"
//! reason = "tax law: invoices are kept 10 years"
//!
//! [[gdpr.link]]                # a reference without a constraint
//! table = "audit_log"
//! column = "metadata"
//! path = "actor.id"            # inside a JSON column (optional)
//! references = "users"
//! owns = false                 # rows belong to the referenced row (default false)
//! ```

/// What an erasure does to a table's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Every row of the subject's, owned or mentioning, is deleted.
    Delete,
    /// Owned rows get each listed column replaced; rows that only mention the subject are
    /// unlinked.
    Anonymize,
    /// Rows that mention the subject lose the mention (the referencing columns set to
    /// NULL, a JSON key removed); for tables the subject does not own.
    Unlink,
    /// Nothing changes, for a stated reason (a legal duty to keep).
    Retain,
}

/// How an anonymized column's value is replaced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Null,
    /// A salted SHA-256 of the value (hex; a UUID for a uuid column): equal values stay
    /// equal, so joins and uniqueness hold, and the value cannot be read back.
    Hash,
    /// `erased-<hash>@erased.invalid`: still an address, unique per original.
    FakeEmail,
    /// `Erased <hash>`.
    FakeName,
    /// `[erased]` for text, `{}` for JSON.
    Redact,
    /// A fixed value, cast to the column's type.
    Constant(String),
}

impl Strategy {
    fn parse(text: &str) -> Result<Strategy, String> {
        Ok(match text {
            "null" => Strategy::Null,
            "hash" => Strategy::Hash,
            "fake-email" => Strategy::FakeEmail,
            "fake-name" => Strategy::FakeName,
            "redact" => Strategy::Redact,
            other => match other.strip_prefix("constant:") {
                Some(value) => Strategy::Constant(value.to_string()),
                None => {
                    return Err(format!(
                        "`{}` is not a way to anonymize; use null, hash, fake-email, fake-name, redact or constant:VALUE",
                        other.chars().take(40).collect::<String>()
                    ));
                }
            },
        })
    }

    /// Whether it needs the secret salt.
    pub fn salted(&self) -> bool {
        matches!(
            self,
            Strategy::Hash | Strategy::FakeEmail | Strategy::FakeName
        )
    }
}

/// `[gdpr.tables.<table>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicyConfig {
    pub table: String,
    pub action: PolicyAction,
    /// For `anonymize`: column and strategy, in the file's order.
    pub columns: Vec<(String, Strategy)>,
    /// For `retain`: why.
    pub reason: Option<String>,
}

/// `[[gdpr.link]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub table: String,
    pub column: String,
    /// Keys inside a JSON column, from `path = "actor.id"`.
    pub path: Vec<String>,
    pub references: String,
    pub owns: bool,
}

/// `[gdpr]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GdprConfig {
    pub subject: Option<String>,
    pub key: Option<String>,
    pub email_column: Option<String>,
    pub tables: Vec<TablePolicyConfig>,
    pub links: Vec<LinkConfig>,
}

/// `salt` is a plain key of the settings (`gdpr.salt`, `TEND_GDPR_SALT`), read there.
const KEYS: [&str; 6] = ["subject", "key", "email_column", "tables", "link", "salt"];

/// Reads the `[gdpr]` table; an error is one sentence naming the place.
pub(crate) fn parse(table: &toml::Table) -> Result<GdprConfig, String> {
    crate::toml_fields::only_keys(table, &KEYS, "[gdpr]")?;
    let text = crate::toml_fields::text;
    let mut config = GdprConfig {
        subject: text(table, "[gdpr]", "subject")?,
        key: text(table, "[gdpr]", "key")?,
        email_column: text(table, "[gdpr]", "email_column")?,
        ..GdprConfig::default()
    };
    match table.get("tables") {
        None => {}
        Some(toml::Value::Table(tables)) => {
            for (name, value) in tables {
                let at = format!("[gdpr.tables.{name}]");
                let toml::Value::Table(policy) = value else {
                    return Err(format!("{at} must be a table"));
                };
                config.tables.push(parse_policy(name, policy, &at)?);
            }
        }
        Some(_) => return Err("[gdpr] `tables` must be a table of tables".to_string()),
    }
    match table.get("link") {
        None => {}
        Some(toml::Value::Array(links)) => {
            for (i, value) in links.iter().enumerate() {
                let at = format!("[[gdpr.link]] entry {}", i + 1);
                let toml::Value::Table(link) = value else {
                    return Err(format!("{at} is not a table"));
                };
                const FIELDS: [&str; 5] = ["table", "column", "path", "references", "owns"];
                crate::toml_fields::only_keys(link, &FIELDS, &at)?;
                let required = |key: &str| -> Result<String, String> {
                    text(link, &at, key)?.ok_or_else(|| format!("{at} has no `{key}`"))
                };
                let owns = match link.get("owns") {
                    None => false,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(_) => return Err(format!("{at}: `owns` must be true or false")),
                };
                let path: Vec<String> = text(link, &at, "path")?
                    .map(|p| p.split('.').map(str::to_string).collect())
                    .unwrap_or_default();
                if path.iter().any(String::is_empty) {
                    return Err(format!("{at}: `path` has an empty key"));
                }
                config.links.push(LinkConfig {
                    table: required("table")?,
                    column: required("column")?,
                    path,
                    references: required("references")?,
                    owns,
                });
            }
        }
        Some(_) => {
            return Err(
                "[gdpr] `link` must be an array of tables, written [[gdpr.link]]".to_string(),
            );
        }
    }
    Ok(config)
}

fn parse_policy(name: &str, policy: &toml::Table, at: &str) -> Result<TablePolicyConfig, String> {
    let text = crate::toml_fields::text;
    const FIELDS: [&str; 3] = ["action", "columns", "reason"];
    crate::toml_fields::only_keys(policy, &FIELDS, at)?;
    let action = match text(policy, at, "action")?.as_deref() {
        Some("delete") => PolicyAction::Delete,
        Some("anonymize") => PolicyAction::Anonymize,
        Some("unlink") => PolicyAction::Unlink,
        Some("retain") => PolicyAction::Retain,
        Some(other) => {
            return Err(format!(
                "{at}: action `{}` is not one of delete, anonymize, unlink, retain",
                other.chars().take(40).collect::<String>()
            ));
        }
        None => {
            return Err(format!(
                "{at} has no `action`: delete, anonymize, unlink or retain"
            ));
        }
    };
    let mut columns = Vec::new();
    match policy.get("columns") {
        None => {}
        Some(toml::Value::Table(table)) => {
            for (column, strategy) in table {
                let toml::Value::String(strategy) = strategy else {
                    return Err(format!("{at}: column `{column}` must name a strategy"));
                };
                let strategy =
                    Strategy::parse(strategy.trim()).map_err(|e| format!("{at}: {column}: {e}"))?;
                columns.push((column.clone(), strategy));
            }
        }
        Some(_) => {
            return Err(format!(
                "{at}: `columns` must be a table, e.g. columns = {{ email = \"fake-email\" }}"
            ));
        }
    }
    let reason = text(policy, at, "reason")?;
    match action {
        PolicyAction::Anonymize if columns.is_empty() => {
            return Err(format!(
                "{at} anonymizes but lists no `columns`, e.g. columns = {{ email = \"fake-email\", name = \"null\" }}"
            ));
        }
        PolicyAction::Retain if reason.is_none() => {
            return Err(format!(
                "{at} retains without a `reason`: say why the data is kept (the law or contract that requires it)"
            ));
        }
        PolicyAction::Delete | PolicyAction::Unlink | PolicyAction::Retain
            if !columns.is_empty() =>
        {
            return Err(format!(
                "{at} lists `columns`, which only action = \"anonymize\" uses"
            ));
        }
        _ => {}
    }
    Ok(TablePolicyConfig {
        table: name.to_string(),
        action,
        columns,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<GdprConfig, String> {
        let table: toml::Table = text.parse().unwrap();
        match table.get("gdpr") {
            Some(toml::Value::Table(gdpr)) => parse(gdpr),
            _ => panic!("no [gdpr]"),
        }
    }

    #[test]
    fn a_whole_section_reads() {
        let config = parse_text(
            r#"
            [gdpr]
            subject = "users"
            email_column = "email"

            [gdpr.tables.users]
            action = "anonymize"
            columns = { email = "fake-email", name = "null", note = "constant:gone" }

            [gdpr.tables."public.invoices"]
            action = "retain"
            reason = "tax law"

            [[gdpr.link]]
            table = "audit_log"
            column = "metadata"
            path = "actor.id"
            references = "users"
            "#,
        )
        .unwrap();
        assert_eq!(config.subject.as_deref(), Some("users"));
        let users = &config.tables[1];
        assert_eq!(users.table, "users");
        assert_eq!(
            users.columns,
            [
                ("email".to_string(), Strategy::FakeEmail),
                ("name".to_string(), Strategy::Null),
                ("note".to_string(), Strategy::Constant("gone".to_string())),
            ]
        );
        assert_eq!(config.tables[0].table, "public.invoices");
        assert_eq!(config.links[0].path, ["actor", "id"]);
        assert!(!config.links[0].owns);
    }

    #[test]
    fn mistakes_are_one_sentence() {
        let cases = [
            ("[gdpr]\nsubjet = \"users\"", "unknown key `subjet`"),
            ("[gdpr.tables.users]\naction = \"shred\"", "not one of"),
            ("[gdpr.tables.users]\ncolumns = {}", "has no `action`"),
            (
                "[gdpr.tables.users]\naction = \"anonymize\"",
                "lists no `columns`",
            ),
            (
                "[gdpr.tables.users]\naction = \"retain\"",
                "without a `reason`",
            ),
            (
                "[gdpr.tables.users]\naction = \"anonymize\"\ncolumns = { email = \"scramble\" }",
                "not a way to anonymize",
            ),
            (
                "[gdpr.tables.users]\naction = \"delete\"\ncolumns = { email = \"null\" }",
                "only action = \"anonymize\"",
            ),
            (
                "[[gdpr.link]]\ntable = \"a\"\ncolumn = \"b\"",
                "has no `references`",
            ),
            (
                "[[gdpr.link]]\ntable = \"a\"\ncolumn = \"b\"\nreferences = \"c\"\nowns = \"yes\"",
                "true or false",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_text(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
