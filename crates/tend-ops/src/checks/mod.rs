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
