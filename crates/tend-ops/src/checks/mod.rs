//! The catalog: every check tend runs, grouped by what it looks at. Ids are stable; the
//! order here is the order of a report.

pub mod activity;
pub mod config;
pub mod history;
pub mod maintenance;
pub mod schema;

use crate::check::Check;

/// Every check, in report order.
pub fn catalog() -> Vec<&'static Check> {
    activity::CHECKS
        .iter()
        .chain(schema::CHECKS)
        .chain(maintenance::CHECKS)
        .chain(config::CHECKS)
        .chain(history::CHECKS)
        .collect()
}

/// Checks whose catalog view moved (or that a newer major reads more lightly): from its `min_major` on, each runs in
/// the place of the catalog's check with the same id (same thresholds, other SQL).
static MOVED: &[&Check] = &[
    &maintenance::CHECKPOINTS_REQUESTED_17,
    &schema::SEQUENCES_NEAR_MAX_18,
    &schema::INTEGER_KEY_NEAR_MAX_18,
];

/// The form of `check` that runs on a server of `major`.
pub fn for_major(check: &'static Check, major: u32) -> &'static Check {
    MOVED
        .iter()
        .copied()
        .find(|newer| newer.id == check.id && major >= newer.min_major)
        .unwrap_or(check)
}

/// Checks whose remedy changes the schema (creates or drops an index or constraint): in a
/// project whose schema goes through migrations, the change belongs in a migration, or
/// `schema verify` reports it as drift.
pub const REMEDY_CHANGES_SCHEMA: &[&str] = &[
    "indexes.unused",
    "indexes.duplicate",
    "indexes.redundant",
    "constraints.fk_without_index",
    "security.soft_delete_unique",
    "tables.no_primary_key",
];

/// One check by id.
pub fn find(id: &str) -> Option<&'static Check> {
    catalog().into_iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_dotted_and_documented() {
        let all = catalog();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate check ids");
        for check in all {
            assert!(check.id.contains('.'), "{}", check.id);
            assert!(
                check
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{}",
                check.id
            );
            assert!(
                !check.remedy.is_empty() && !check.finding.is_empty(),
                "{}",
                check.id
            );
            assert!(
                check.remedy.ends_with('.') || check.remedy.ends_with(')'),
                "{}",
                check.id
            );
        }
    }
}
