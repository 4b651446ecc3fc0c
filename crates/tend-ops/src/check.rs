//! What a check is: a stable id, a category, the SQL it runs, how its rows become findings,
//! default thresholds, and the remedy a person reads.
//!
//! Every check's SQL returns rows of `(subject text, value float8, detail text)`: the thing
//! looked at (a table, a session, a setting), a number compared with the thresholds, and a
//! short phrase that makes the finding specific.

use serde::Serialize;

/// Where a check belongs, for listing and for `--only connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Connections,
    Locks,
    Queries,
    Indexes,
    Constraints,
    Tables,
    Sequences,
    Vacuum,
    Wraparound,
    Storage,
    Replication,
    Settings,
    Security,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Connections => "connections",
            Category::Locks => "locks",
            Category::Queries => "queries",
            Category::Indexes => "indexes",
            Category::Constraints => "constraints",
            Category::Tables => "tables",
            Category::Sequences => "sequences",
            Category::Vacuum => "vacuum",
            Category::Wraparound => "wraparound",
            Category::Storage => "storage",
            Category::Replication => "replication",
            Category::Settings => "settings",
            Category::Security => "security",
        }
    }
}

/// How bad a finding is. `Unknown` means the check could not look (no privilege, no
/// extension): it is reported, never hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Critical,
    Unknown,
}

impl Severity {
    /// The name JSON and the history table use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Unknown => "unknown",
        }
    }
}

/// How a row's value is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Warning at or above `warning`, critical at or above `critical`.
    AtLeast,
    /// Warning at or below `warning`, critical at or below `critical` (hit ratios).
    AtMost,
    /// Every row is a finding of this severity; thresholds do not apply.
    Each(Severity),
    /// Like `AtLeast`, but a row below the warning threshold is still an `info` finding: its
    /// presence is worth knowing (a lock held now), its value says how bad it is.
    AtLeastElseInfo,
}

/// What the value counts, for display and for the units of thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Percent,
    Seconds,
    Count,
    Bytes,
    /// Transaction ids (wraparound age).
    Xids,
    /// No unit: the row's presence is the finding.
    None,
}

/// One check of the catalog.
#[derive(Debug, Serialize)]
pub struct Check {
    /// Stable, dotted: `connections.usage`. Config lives under `[checks."connections.usage"]`.
    pub id: &'static str,
    pub category: Category,
    /// What it looks at, as a short phrase.
    pub title: &'static str,
    pub rule: Rule,
    pub unit: Unit,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// A query returning `(subject text, value float8, detail text)`. `$1` and `$2` are
    /// bound to the warning and critical thresholds (float8) so the query can filter
    /// server-side; a query that does not use them may ignore them.
    #[serde(skip)]
    pub sql: &'static str,
    /// The one-sentence finding, with `{subject}`, `{value}` and `{detail}` placeholders.
    pub finding: &'static str,
    pub remedy: &'static str,
    /// Oldest server major it runs on (its catalog columns exist from then).
    pub min_major: u32,
    /// An extension it needs in the database, and how to enable it when absent.
    pub extension: Option<&'static str>,
    /// It judges other sessions (`pg_stat_activity`, `pg_stat_progress_*`,
    /// `pg_stat_replication`), whose state,
    /// times and queries PostgreSQL hides from a role without pg_read_all_stats: for such a
    /// role the runner reports that it could not see them, rather than "nothing found".
    pub reads_sessions: bool,
}

impl Check {
    /// The SQL, for `tend check --list --json` and docs.
    pub fn query(&self) -> &'static str {
        self.sql
    }
}

/// Thresholds in force for one check (defaults, overridden by config).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
}

impl Thresholds {
    /// The severity of a value under a rule.
    pub fn judge(&self, rule: Rule, value: f64) -> Severity {
        match rule {
            Rule::Each(severity) => severity,
            Rule::AtLeast => {
                if self.critical.is_some_and(|c| value >= c) {
                    Severity::Critical
                } else if self.warning.is_some_and(|w| value >= w) {
                    Severity::Warning
                } else {
                    Severity::Ok
                }
            }
            Rule::AtLeastElseInfo => match Thresholds::judge(self, Rule::AtLeast, value) {
                Severity::Ok => Severity::Info,
                worse => worse,
            },
            Rule::AtMost => {
                if self.critical.is_some_and(|c| value <= c) {
                    Severity::Critical
                } else if self.warning.is_some_and(|w| value <= w) {
                    Severity::Warning
                } else {
                    Severity::Ok
                }
            }
        }
    }
}

/// A finding about one subject.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub category: Category,
    pub severity: Severity,
    pub subject: String,
    pub value: Option<f64>,
    pub message: String,
    pub remedy: String,
}

/// Fills a finding template.
pub fn render(
    template: &str,
    subject: &str,
    value: Option<f64>,
    detail: &str,
    unit: Unit,
) -> String {
    template
        .replace("{subject}", subject)
        .replace("{detail}", detail)
        .replace(
            "{value}",
            &value.map(|v| format_value(v, unit)).unwrap_or_default(),
        )
}

/// A value as a person reads it.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Percent => format!("{value:.1}%"),
        Unit::Seconds => format_seconds(value),
        Unit::Bytes => format_bytes(value),
        Unit::Xids => format!("{:.0} million", value / 1e6),
        Unit::Count | Unit::None => {
            if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            }
        }
    }
}

fn format_seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

fn format_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = b;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_judge_both_directions() {
        let t = Thresholds {
            warning: Some(80.0),
            critical: Some(95.0),
        };
        assert_eq!(t.judge(Rule::AtLeast, 50.0), Severity::Ok);
        assert_eq!(t.judge(Rule::AtLeast, 80.0), Severity::Warning);
        assert_eq!(t.judge(Rule::AtLeast, 99.0), Severity::Critical);
        let t = Thresholds {
            warning: Some(0.99),
            critical: Some(0.90),
        };
        assert_eq!(t.judge(Rule::AtMost, 0.999), Severity::Ok);
        assert_eq!(t.judge(Rule::AtMost, 0.95), Severity::Warning);
        assert_eq!(t.judge(Rule::AtMost, 0.5), Severity::Critical);
        assert_eq!(t.judge(Rule::Each(Severity::Info), 0.0), Severity::Info);
        let t = Thresholds {
            warning: Some(60.0),
            critical: Some(300.0),
        };
        assert_eq!(t.judge(Rule::AtLeastElseInfo, 1.0), Severity::Info);
        assert_eq!(t.judge(Rule::AtLeastElseInfo, 61.0), Severity::Warning);
        assert_eq!(t.judge(Rule::AtLeastElseInfo, 301.0), Severity::Critical);
    }

    #[test]
    fn values_read_well() {
        assert_eq!(format_value(90.0, Unit::Seconds), "90s");
        assert_eq!(format_value(3600.0, Unit::Seconds), "60 min");
        assert_eq!(format_value(1536.0, Unit::Bytes), "1.5 kB");
        assert_eq!(format_value(99.5, Unit::Percent), "99.5%");
        assert_eq!(format_value(3.0, Unit::Count), "3");
        assert_eq!(
            render(
                "{subject} at {value} ({detail})",
                "t",
                Some(42.0),
                "d",
                Unit::Count
            ),
            "t at 42 (d)"
        );
    }
}
