//! `[[retention]]` entries as `tend.toml` writes them. Checked when the settings resolve
//! (names, durations, which keys go together); resolved against the schema (which table,
//! which column) when a cleanup plans, since only the database knows its tables.

use std::time::Duration;

/// One `[[retention]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `name`, or the table's name as written when there is none.
    pub name: String,
    /// `table`: `schema.name`, or a bare name one table of the database has.
    pub table: String,
    /// `column` and `older_than`: rows whose timestamp is further back than this.
    pub older_than: Option<(String, Duration)>,
    /// `where`: an SQL boolean expression over the table's columns, ANDed with the age.
    pub predicate: Option<String>,
    pub action: ConfiguredAction,
    /// The entry's place in the file, from 1, for messages.
    pub position: usize,
}

/// `action` (and `archive_to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredAction {
    Delete,
    /// `action = "archive"`, `archive_to = "<table>"`.
    ArchiveTo(String),
    /// `action = "archive-to-store"`: to the backup store, as compressed, encrypted JSON
    /// lines with a manifest.
    ArchiveToStore,
    /// `action = "drop-partitions"`: whole partitions, by the range of `column` (the
    /// partition key); needs `column` and `older_than`, takes no `where`.
    DropPartitions,
}

const FIELDS: [&str; 7] = [
    "name",
    "table",
    "column",
    "older_than",
    "where",
    "action",
    "archive_to",
];

/// The `action`s a rule may take.
const ACTIONS: [&str; 4] = ["delete", "archive", "archive-to-store", "drop-partitions"];

/// Reads the `[[retention]]` array; an error is one sentence naming the entry.
pub(crate) fn parse_array(array: &[toml::Value]) -> Result<Vec<RetentionConfig>, String> {
    let mut out: Vec<RetentionConfig> = Vec::with_capacity(array.len());
    for (i, value) in array.iter().enumerate() {
        let position = i + 1;
        let at = format!("[[retention]] entry {position}");
        let toml::Value::Table(table) = value else {
            return Err(format!("{at} is not a table"));
        };
        crate::toml_fields::only_keys(table, &FIELDS, &at)?;
        let text = |key: &str| crate::toml_fields::text(table, &at, key);
        let table_name = text("table")?.ok_or_else(|| {
            format!(
                "{at} has no `table`: name the table the rule purges, e.g. table = \"sessions\""
            )
        })?;
        let older_than = match (text("column")?, text("older_than")?) {
            (Some(column), Some(age)) => {
                let age = crate::settings::parse_duration(&age)
                    .map_err(|reason| format!("{at}: `older_than` is not a duration: {reason}"))?;
                if age.is_zero() {
                    return Err(format!("{at}: `older_than` must be longer than 0"));
                }
                Some((column, age))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!(
                    "{at} has a `column` but no `older_than`: say how old its rows must be, e.g. older_than = \"30d\""
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{at} has `older_than` but no `column`: name the timestamp column it ages by"
                ));
            }
        };
        let predicate = text("where")?;
        let action_text = text("action")?;
        if action_text.as_deref() == Some("drop-partitions") {
            if older_than.is_none() {
                return Err(format!(
                    "{at} drops partitions but has no `column` and `older_than`: name the partition key and how old a partition's whole range must be, e.g. column = \"created_at\", older_than = \"180d\""
                ));
            }
            if predicate.is_some() {
                return Err(format!(
                    "{at} drops partitions but has a `where`: a partition goes whole, by its range; remove `where`, or set action = \"delete\" to delete the rows it selects"
                ));
            }
        }
        if older_than.is_none() && predicate.is_none() {
            return Err(format!(
                "{at} selects no rows: give `column` and `older_than`, or `where`, or both"
            ));
        }
        if let Some(predicate) = &predicate
            && predicate.contains(';')
        {
            return Err(format!(
                "{at}: `where` must be one SQL condition, without `;`"
            ));
        }
        let action = match (action_text.as_deref(), text("archive_to")?) {
            (None | Some("delete"), None) => ConfiguredAction::Delete,
            (Some("drop-partitions"), None) => ConfiguredAction::DropPartitions,
            (Some("archive-to-store"), None) => ConfiguredAction::ArchiveToStore,
            (Some("archive-to-store"), Some(_)) => {
                return Err(format!(
                    "{at} archives to the backup store but names `archive_to`: remove archive_to, or set action = \"archive\" to move rows to that table"
                ));
            }
            (Some("drop-partitions"), Some(_)) => {
                return Err(format!(
                    "{at} drops partitions but names `archive_to`: a dropped partition's rows go with it; remove archive_to, or set action = \"archive\""
                ));
            }
            (None | Some("archive"), Some(to)) => ConfiguredAction::ArchiveTo(to),
            (Some("archive"), None) => {
                return Err(format!(
                    "{at} archives but has no `archive_to`: name the table that takes the rows (with the same columns)"
                ));
            }
            (Some("delete"), Some(_)) => {
                return Err(format!(
                    "{at} deletes but names `archive_to`: set action = \"archive\", or remove archive_to"
                ));
            }
            (Some(other), _) => {
                let guess = ACTIONS
                    .iter()
                    .find(|a| strsim::levenshtein(a, other) <= 2)
                    .map(|a| format!(" (did you mean `{a}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{at}: action `{}` is not one of {}{guess}",
                    other.chars().take(40).collect::<String>(),
                    ACTIONS.join(", ")
                ));
            }
        };
        let name = text("name")?.unwrap_or_else(|| table_name.clone());
        if let Some(same) = out.iter().find(|r| r.name == name) {
            return Err(format!(
                "{at} and entry {} are both named `{name}`: give each a `name` of its own",
                same.position
            ));
        }
        if name == tend_lifecycle::rules::SOFT_DELETE_RULE {
            return Err(format!(
                "{at} is named `{name}`, the built-in rule's name: choose another"
            ));
        }
        out.push(RetentionConfig {
            name,
            table: table_name,
            older_than,
            predicate,
            action,
            position,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<RetentionConfig>, String> {
        let table: toml::Table = text.parse().unwrap();
        match table.get("retention") {
            Some(toml::Value::Array(array)) => parse_array(array),
            _ => panic!("no [[retention]]"),
        }
    }

    #[test]
    fn entries_read_with_their_defaults() {
        let rules = parse(
            r#"
            [[retention]]
            table = "sessions"
            column = "expires_at"
            older_than = "7d"

            [[retention]]
            name = "finished-jobs"
            table = "jobs.runs"
            where = "status = 'done'"
            column = "finished_at"
            older_than = "168h"
            action = "archive"
            archive_to = "jobs.runs_archive"
            "#,
        )
        .unwrap();
        assert_eq!(rules[0].name, "sessions");
        assert_eq!(
            rules[0].older_than,
            Some(("expires_at".to_string(), Duration::from_secs(7 * 86400)))
        );
        assert_eq!(rules[0].action, ConfiguredAction::Delete);
        assert_eq!(rules[1].predicate.as_deref(), Some("status = 'done'"));
        assert_eq!(
            rules[1].action,
            ConfiguredAction::ArchiveTo("jobs.runs_archive".to_string())
        );
    }

    #[test]
    fn drop_partitions_ages_by_the_partition_key() {
        let rules = parse(
            r#"
            [[retention]]
            name = "old-events"
            table = "events"
            column = "created_at"
            older_than = "180d"
            action = "drop-partitions"
            "#,
        )
        .unwrap();
        assert_eq!(rules[0].action, ConfiguredAction::DropPartitions);
        assert_eq!(
            rules[0].older_than,
            Some(("created_at".to_string(), Duration::from_secs(180 * 86400)))
        );
        assert_eq!(rules[0].predicate, None);
    }

    #[test]
    fn drop_partitions_needs_an_age_and_takes_no_where_or_archive() {
        let cases = [
            (
                "[[retention]]\ntable = \"events\"\nwhere = \"true\"\naction = \"drop-partitions\"",
                "drops partitions but has no `column` and `older_than`",
            ),
            (
                "[[retention]]\ntable = \"events\"\naction = \"drop-partitions\"",
                "drops partitions but has no `column` and `older_than`",
            ),
            (
                "[[retention]]\ntable = \"events\"\ncolumn = \"at\"\nolder_than = \"30d\"\nwhere = \"kind = 'x'\"\naction = \"drop-partitions\"",
                "drops partitions but has a `where`",
            ),
            (
                "[[retention]]\ntable = \"events\"\ncolumn = \"at\"\nolder_than = \"30d\"\naction = \"drop-partitions\"\narchive_to = \"events_archive\"",
                "drops partitions but names `archive_to`",
            ),
            (
                "[[retention]]\ntable = \"events\"\ncolumn = \"at\"\nolder_than = \"30d\"\naction = \"drop_partitions\"",
                "not one of delete, archive, archive-to-store, drop-partitions (did you mean `drop-partitions`?)",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.starts_with("[[retention]] entry 1"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn mistakes_are_one_sentence_naming_the_entry() {
        let cases = [
            (
                "[[retention]]\ncolumn = \"a\"\nolder_than = \"1d\"",
                "has no `table`",
            ),
            ("[[retention]]\ntable = \"t\"", "selects no rows"),
            (
                "[[retention]]\ntable = \"t\"\ncolumn = \"a\"",
                "no `older_than`",
            ),
            (
                "[[retention]]\ntable = \"t\"\ncolumn = \"a\"\nolder_than = \"soon\"",
                "not a duration",
            ),
            (
                "[[retention]]\ntable = \"t\"\nwhere = \"true; DROP TABLE t\"",
                "without `;`",
            ),
            (
                "[[retention]]\ntable = \"t\"\nwhere = \"true\"\naction = \"archive\"",
                "no `archive_to`",
            ),
            (
                "[[retention]]\ntable = \"t\"\nwhere = \"true\"\naction = \"shred\"",
                "not one of",
            ),
            (
                "[[retention]]\ntable = \"t\"\nwhere = \"true\"\naction = \"archive-to-store\"\narchive_to = \"t2\"",
                "remove archive_to",
            ),
            (
                "[[retention]]\ntable = \"t\"\nwhere = \"true\"\nwhen = 1",
                "unknown key `when`",
            ),
            (
                "[[retention]]\ntable = \"t\"\nwhere = \"true\"\n[[retention]]\ntable = \"t\"\nwhere = \"false\"",
                "both named `t`",
            ),
            (
                "[[retention]]\nname = \"soft-delete\"\ntable = \"t\"\nwhere = \"true\"",
                "built-in",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.starts_with("[[retention]] entry "), "{err}");
        }
    }
}
