//! What `tend serve` runs, and when: the `[[schedule]]` entries of `tend.toml` (or the
//! default routine), each a task and a cron expression in a time zone, or a task that runs
//! after another entry succeeds. Parsed and checked once, when settings are resolved.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// What one schedule entry does: the commands it stands for, through the same services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// `tend backup run`.
    Backup,
    /// `tend backup run --physical [--incremental]`: a base backup for point-in-time
    /// recovery (the server archives its WAL with `tend pitr enable`).
    PhysicalBackup { incremental: bool },
    /// `tend backup prune --yes`.
    BackupPrune,
    /// `tend backup verify` of the newest backup; with `restore`, the restore drill too.
    BackupVerify { restore: bool },
    /// `tend check` (kept in the check history).
    Check,
    /// `tend vacuum --analyze` of every table the role may vacuum.
    Vacuum,
    /// `tend optimize --dry-run`: the plan, recorded, nothing changed.
    OptimizeDryRun,
    /// `tend cleanup --yes`: the retention rules and the soft-delete purge.
    Cleanup,
    /// `sql:FILE`: one SQL file run in one transaction (relative to the project).
    Sql { file: PathBuf },
}

/// The tasks a schedule entry may name, for errors and docs.
pub const TASKS: &[&str] = &[
    "backup",
    "backup --physical",
    "backup --physical --incremental",
    "backup prune",
    "backup verify",
    "backup verify --restore",
    "check",
    "vacuum",
    "optimize --dry-run",
    "cleanup",
    "sql:FILE",
];

impl Task {
    /// Reads a task as written in `tend.toml` (`backup verify --restore`, `sql:jobs.sql`).
    pub fn parse(text: &str) -> Result<Task, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let task = match words.as_slice() {
            ["backup"] | ["backup", "run"] => Task::Backup,
            ["backup", "--physical"] | ["backup", "run", "--physical"] => {
                Task::PhysicalBackup { incremental: false }
            }
            ["backup", "--physical", "--incremental"]
            | ["backup", "run", "--physical", "--incremental"] => {
                Task::PhysicalBackup { incremental: true }
            }
            ["backup", "prune"] => Task::BackupPrune,
            ["backup", "verify"] => Task::BackupVerify { restore: false },
            ["backup", "verify", "--restore"] => Task::BackupVerify { restore: true },
            ["check"] => Task::Check,
            ["vacuum"] | ["vacuum", "--analyze"] => Task::Vacuum,
            ["optimize", "--dry-run"] => Task::OptimizeDryRun,
            ["cleanup"] | ["cleanup", "--yes"] => Task::Cleanup,
            [one] if one.starts_with("sql:") && one.len() > 4 => Task::Sql {
                file: PathBuf::from(&one[4..]),
            },
            _ => {
                return Err(format!(
                    "`{}` is not a task tend can schedule; use one of: {}",
                    text.chars().take(80).collect::<String>(),
                    TASKS.join(", ")
                ));
            }
        };
        Ok(task)
    }

    /// The name an entry gets when it gives none.
    pub fn default_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Task::Backup => f.write_str("backup"),
            Task::PhysicalBackup { incremental: false } => f.write_str("backup --physical"),
            Task::PhysicalBackup { incremental: true } => {
                f.write_str("backup --physical --incremental")
            }
            Task::BackupPrune => f.write_str("backup prune"),
            Task::BackupVerify { restore: false } => f.write_str("backup verify"),
            Task::BackupVerify { restore: true } => f.write_str("backup verify --restore"),
            Task::Check => f.write_str("check"),
            Task::Vacuum => f.write_str("vacuum"),
            Task::OptimizeDryRun => f.write_str("optimize --dry-run"),
            Task::Cleanup => f.write_str("cleanup"),
            Task::Sql { file } => write!(f, "sql:{}", file.display()),
        }
    }
}

impl Serialize for Task {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A cron expression in a time zone: 5 fields (minute hour day month weekday), or 6 with
/// seconds first. Day of month and day of week match when either does, as in Vixie cron.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: croner::Cron,
}

impl CronSchedule {
    /// Parses `expression` in the IANA zone `zone` (`UTC`, `Europe/Paris`).
    pub fn parse(expression: &str, zone: &str) -> Result<CronSchedule, String> {
        let shown: String = expression.chars().take(80).collect();
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) && !expression.trim_start().starts_with('@') {
            return Err(format!(
                "the cron expression `{shown}` has {fields} fields; write 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("the cron expression `{shown}` is not valid: {e}"))?;
        let zone: Tz = zone.trim().parse().map_err(|_| {
            format!(
                "`{}` is not a time zone tend knows; use an IANA name such as UTC or Europe/Berlin",
                zone.chars().take(60).collect::<String>()
            )
        })?;
        // An expression that can never match (30 February) is refused now, not at 2 AM.
        let probe = Utc::now().with_timezone(&zone);
        cron.find_next_occurrence(&probe, false).map_err(|_| {
            format!("the cron expression `{shown}` never matches a date in the next years")
        })?;
        Ok(CronSchedule {
            expression: expression.trim().to_string(),
            zone,
            cron,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn zone(&self) -> &str {
        self.zone.name()
    }

    /// The first time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest time at or before `until` and strictly after `since`, if any: the run a
    /// daemon that was down over that span missed.
    pub fn latest_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&until.with_timezone(&self.zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > since)
    }
}

/// When an entry runs.
#[derive(Debug, Clone)]
pub enum When {
    /// Boxed: a parsed expression is large beside a name.
    Cron(Box<CronSchedule>),
    /// After the named entry succeeds, for the same scheduled time.
    After(String),
}

/// One `[[schedule]]` entry.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    /// Unique in the schedule; runs are recorded under it.
    pub name: String,
    pub task: Task,
    pub when: When,
}

impl Serialize for ScheduleEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ScheduleEntry", 5)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("task", &self.task)?;
        match &self.when {
            When::Cron(cron) => {
                st.serialize_field("cron", cron.expression())?;
                st.serialize_field("time_zone", cron.zone())?;
                st.skip_field("after")?;
            }
            When::After(after) => {
                st.skip_field("cron")?;
                st.skip_field("time_zone")?;
                st.serialize_field("after", after)?;
            }
        }
        st.end()
    }
}

/// Where the schedule came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleOrigin {
    /// No `[[schedule]]` in the file: the default routine.
    Default,
    /// The file's `[[schedule]]` entries, which replace the default routine.
    File,
}

/// The whole schedule: entries in the order written.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub origin: ScheduleOrigin,
    pub entries: Vec<ScheduleEntry>,
}

/// One `[[schedule]]` table as written, before the defaults are filled in.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub name: Option<String>,
    pub task: Task,
    pub cron: Option<String>,
    pub after: Option<String>,
    pub time_zone: Option<String>,
    /// 1-based position in the file, for errors.
    pub position: usize,
}

/// The default routine: a backup at `backup.schedule`, prune after it, a restore drill on
/// Sundays at 04:00, and the checks every five minutes.
pub(crate) fn default_entries(backup_cron: &str) -> Vec<RawEntry> {
    let entry = |task: Task, cron: Option<&str>, after: Option<&str>, position| RawEntry {
        name: None,
        task,
        cron: cron.map(str::to_string),
        after: after.map(str::to_string),
        time_zone: None,
        position,
    };
    vec![
        entry(Task::Backup, Some(backup_cron), None, 1),
        entry(Task::BackupPrune, None, Some("backup"), 2),
        entry(
            Task::BackupVerify { restore: true },
            Some("0 4 * * 0"),
            None,
            3,
        ),
        entry(Task::Check, Some("*/5 * * * *"), None, 4),
    ]
}

/// Builds the schedule from raw entries: names are unique, a backup with no cron takes
/// `backup.schedule`, zones default to `zone`, and an `after` names an entry that exists
/// without making a cycle.
pub(crate) fn build(
    raw: Vec<RawEntry>,
    origin: ScheduleOrigin,
    backup_cron: &str,
    zone: &str,
    project_root: &std::path::Path,
) -> Result<Schedule, String> {
    let mut entries: Vec<ScheduleEntry> = Vec::with_capacity(raw.len());
    for r in &raw {
        let at = format!("[[schedule]] entry {}", r.position);
        let name = r.name.clone().unwrap_or_else(|| r.task.default_name());
        if name.trim().is_empty() || name.len() > 200 {
            return Err(format!("{at}: a name must be 1 to 200 characters"));
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(format!(
                "{at}: two entries are named `{name}`; give each a distinct `name`"
            ));
        }
        let when = match (&r.cron, &r.after) {
            (Some(_), Some(_)) => {
                return Err(format!("{at} (`{name}`): give `cron` or `after`, not both"));
            }
            (None, Some(after)) => {
                if r.time_zone.is_some() {
                    return Err(format!(
                        "{at} (`{name}`): `time_zone` goes with `cron`; an `after` entry runs when the other one ends"
                    ));
                }
                When::After(after.clone())
            }
            (cron, None) => {
                let expression = match (cron, &r.task) {
                    (Some(c), _) => c.as_str(),
                    (None, Task::Backup) => backup_cron,
                    (None, _) => {
                        return Err(format!(
                            "{at} (`{name}`): say when it runs, with `cron = \"0 3 * * *\"` or `after = \"backup\"`"
                        ));
                    }
                };
                let zone = r.time_zone.as_deref().unwrap_or(zone);
                When::Cron(Box::new(
                    CronSchedule::parse(expression, zone)
                        .map_err(|e| format!("{at} (`{name}`): {e}"))?,
                ))
            }
        };
        let task = match &r.task {
            Task::Sql { file } => Task::Sql {
                file: project_root.join(file),
            },
            other => other.clone(),
        };
        entries.push(ScheduleEntry { name, task, when });
    }
    for entry in &entries {
        let mut seen = vec![entry.name.as_str()];
        let mut current = entry;
        while let When::After(after) = &current.when {
            let Some(next) = entries.iter().find(|e| &e.name == after) else {
                return Err(format!(
                    "schedule entry `{}` runs after `{after}`, and no entry has that name",
                    current.name
                ));
            };
            if seen.contains(&next.name.as_str()) {
                return Err(format!(
                    "schedule entry `{}` runs after itself through `after`; one entry of the loop needs a `cron`",
                    entry.name
                ));
            }
            seen.push(&next.name);
            current = next;
        }
    }
    Ok(Schedule { origin, entries })
}

/// Reads the `[[schedule]]` array of a `tend.toml`.
pub(crate) fn parse_array(array: &[toml::Value]) -> Result<Vec<RawEntry>, String> {
    const FIELDS: [&str; 5] = ["name", "task", "cron", "after", "time_zone"];
    let mut out = Vec::with_capacity(array.len());
    for (i, value) in array.iter().enumerate() {
        let position = i + 1;
        let at = format!("[[schedule]] entry {position}");
        let toml::Value::Table(table) = value else {
            return Err(format!("{at} is not a table"));
        };
        crate::toml_fields::only_keys(table, &FIELDS, &at)?;
        let text = |key: &str| -> Result<Option<String>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{at}: `{key}` must be a string")),
            }
        };
        let task = text("task")?
            .ok_or_else(|| format!("{at} has no `task`; use one of: {}", TASKS.join(", ")))?;
        out.push(RawEntry {
            name: text("name")?,
            task: Task::parse(&task).map_err(|e| format!("{at}: {e}"))?,
            cron: text("cron")?,
            after: text("after")?,
            time_zone: text("time_zone")?,
            position,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_and_latest_follow_the_zone() {
        let daily = CronSchedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
        // 02:00 in Berlin in winter is 01:00 UTC.
        assert_eq!(
            daily.next_after(at("2026-12-04T12:00:00Z")),
            Some(at("2026-12-05T01:00:00Z"))
        );
        assert_eq!(
            daily.latest_between(at("2026-12-03T12:00:00Z"), at("2026-12-04T12:00:00Z")),
            Some(at("2026-12-04T01:00:00Z"))
        );
        assert_eq!(
            daily.latest_between(at("2026-12-04T02:00:00Z"), at("2026-12-04T12:00:00Z")),
            None
        );
        let seconds = CronSchedule::parse("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(
            seconds.next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap()),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 2).unwrap())
        );
    }

    #[test]
    fn bad_expressions_zones_and_tasks_are_refused_with_what_to_write() {
        assert!(
            CronSchedule::parse("0 2 * *", "UTC")
                .unwrap_err()
                .contains("has 4 fields")
        );
        assert!(
            CronSchedule::parse("0 25 * * *", "UTC")
                .unwrap_err()
                .contains("not valid")
        );
        assert!(
            CronSchedule::parse("0 2 * * *", "Mars/Olympus")
                .unwrap_err()
                .contains("not a time zone")
        );
        assert!(
            Task::parse("backup now")
                .unwrap_err()
                .contains("backup verify --restore")
        );
        assert_eq!(
            Task::parse("sql:jobs/purge.sql").unwrap(),
            Task::Sql {
                file: "jobs/purge.sql".into()
            }
        );
    }

    #[test]
    fn the_default_routine_builds_and_after_chains_are_checked() {
        let schedule = build(
            default_entries("0 2 * * *"),
            ScheduleOrigin::Default,
            "0 2 * * *",
            "UTC",
            std::path::Path::new("/p"),
        )
        .unwrap();
        let names: Vec<&str> = schedule.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["backup", "backup prune", "backup verify --restore", "check"]
        );
        let looped = vec![
            RawEntry {
                name: Some("a".into()),
                task: Task::Check,
                cron: None,
                after: Some("b".into()),
                time_zone: None,
                position: 1,
            },
            RawEntry {
                name: Some("b".into()),
                task: Task::Vacuum,
                cron: None,
                after: Some("a".into()),
                time_zone: None,
                position: 2,
            },
        ];
        let err = build(
            looped,
            ScheduleOrigin::File,
            "0 2 * * *",
            "UTC",
            std::path::Path::new("/p"),
        )
        .unwrap_err();
        assert!(err.contains("runs after itself"), "{err}");
    }
}
