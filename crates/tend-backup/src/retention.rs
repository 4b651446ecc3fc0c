//! Which backups `tend backup prune` keeps: a grandfather-father-son policy with the
//! semantics of restic's and borg's `forget`. This is the pure decision: no I/O and no
//! clock reads (the caller passes "now"), so every outcome can be tested with made-up dates.
//!
//! How [`decide`] works, in order:
//!
//! 1. Candidates are sorted newest first (by `finished_at`, then `id`, both descending).
//! 2. A backup that finished more than a day after `now` points at a clock problem. It is
//!    kept ("in the future: clock skew?") and left out of everything below, so it can
//!    neither take a rule's slot nor count as the newest backup.
//! 3. Each `keep_*` rule walks the remaining backups newest first. `keep_last N` keeps the
//!    N newest. `keep_daily N` keeps the newest backup of each of the last N distinct UTC
//!    days that have a backup, counting from the newest backup (not from `now`); weekly
//!    (ISO 8601 weeks, starting Monday), monthly and yearly likewise. A backup any rule
//!    keeps is kept, and its reasons name every rule that keeps it.
//! 4. `max_age_days D` deletes a backup older than D days (`now - finished_at > D * 86400`)
//!    even when a rule would keep it. When no `keep_*` rule is set it keeps everything
//!    younger instead.
//! 5. The invariant, never broken: the newest backup with `verified_ok` is kept ("newest
//!    verified"), whatever its age; if no backup is verified, the newest is kept
//!    ("newest"). So a non-empty input never comes back as "delete everything".
//!
//! A count of 0 means the same as leaving the setting out, as in restic: `keep_daily = 0`
//! is no daily rule and `max_age_days = 0` is no age limit. With no rule and no age limit
//! at all, everything is kept; a policy that says nothing deletes nothing.
//!
//! Pruning twice deletes nothing more: for the same policy and the same `now`, deciding
//! again on exactly the backups a decision kept keeps all of them. Every rule's pick is the
//! newest backup of one of the N newest buckets (days, weeks, ...) that have backups; those
//! picks survive, so they are still the newest of the N newest buckets among the survivors.
//! The newest verified backup and the future ones survive too and are chosen again. The
//! age limit does not break this either, because it only deletes by age and `now` is the
//! same. (With a later `now` more backups age out, which is the point of the age limit.)

use serde::Serialize;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// `[backup.retention]` in tend.toml. Defaults: keep_daily 7, keep_weekly 4, keep_monthly
/// 12, the others None. BACKUP_RETENTION_DAYS maps to `max_age_days` (the caller does that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Keep the N newest backups.
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N UTC days that have backups.
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N calendar months that have backups.
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years that have backups.
    pub keep_yearly: Option<u32>,
    /// Delete backups older than this many days, even ones a rule keeps (but never the
    /// newest verified backup). With no `keep_*` rule, keep everything younger.
    pub max_age_days: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_last: None,
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: None,
            max_age_days: None,
        }
    }
}

/// One backup as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    /// Seconds since the Unix epoch, UTC, when the backup finished.
    pub finished_at: i64,
    pub verified_ok: bool,
}

/// What happens to one backup, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Why: e.g. `["last 3", "daily 2026-11-21", "weekly 2026-W47", "monthly 2026-11",
    /// "yearly 2026", "newest verified"]` or `["older than 30 days and matched by no
    /// rule"]`. "last K" means the K-th newest backup (1 is the newest).
    pub reasons: Vec<String>,
}

/// The `keep_*` rules, in the order their reasons are listed.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Last,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Rule {
    /// The bucket a backup falls in, as it is shown in a reason. `rank` is the backup's
    /// place among the backups the rules see (0 is the newest); `keep_last` buckets by it.
    fn bucket(self, finished_at: i64, rank: usize) -> String {
        let days = finished_at.div_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        match self {
            Rule::Last => format!("last {}", rank + 1),
            Rule::Daily => format!("daily {year:04}-{month:02}-{day:02}"),
            Rule::Weekly => {
                let (iso_year, week) = iso_week(days);
                format!("weekly {iso_year:04}-W{week:02}")
            }
            Rule::Monthly => format!("monthly {year:04}-{month:02}"),
            Rule::Yearly => format!("yearly {year:04}"),
        }
    }
}

/// Decides for every candidate (any order in, result sorted newest first). See the module
/// documentation for the rules; a non-empty input always keeps at least one backup.
pub fn decide(policy: &Policy, candidates: &[Candidate], now: i64) -> Vec<Decision> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by(|a, b| {
        b.finished_at
            .cmp(&a.finished_at)
            .then_with(|| b.id.cmp(&a.id))
            .then_with(|| b.verified_ok.cmp(&a.verified_ok))
    });

    let mut keep = vec![false; order.len()];
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); order.len()];

    // Backups from the future are kept and otherwise ignored.
    let future_after = now.saturating_add(DAY);
    let mut present = Vec::with_capacity(order.len());
    for (index, candidate) in order.iter().enumerate() {
        if candidate.finished_at > future_after {
            keep[index] = true;
            reasons[index].push("in the future: clock skew?".to_string());
        } else {
            present.push(index);
        }
    }

    let max_age = policy.max_age_days.filter(|&days| days > 0);
    let too_old = |finished_at: i64| match max_age {
        Some(days) => now.saturating_sub(finished_at) > i64::from(days) * DAY,
        None => false,
    };
    let rules: Vec<(Rule, u32)> = [
        (Rule::Last, policy.keep_last),
        (Rule::Daily, policy.keep_daily),
        (Rule::Weekly, policy.keep_weekly),
        (Rule::Monthly, policy.keep_monthly),
        (Rule::Yearly, policy.keep_yearly),
    ]
    .into_iter()
    .filter_map(|(rule, count)| count.filter(|&n| n > 0).map(|n| (rule, n)))
    .collect();

    if rules.is_empty() {
        for &index in &present {
            match max_age {
                None => {
                    keep[index] = true;
                    reasons[index].push("no retention rule set".to_string());
                }
                Some(days) if too_old(order[index].finished_at) => {
                    reasons[index].push(format!("older than {days} days and matched by no rule"));
                }
                Some(days) => {
                    keep[index] = true;
                    reasons[index].push(format!("younger than {days} days"));
                }
            }
        }
    } else {
        // Every rule's reasons, per backup, in rule order.
        let mut matched: Vec<Vec<String>> = vec![Vec::new(); order.len()];
        for &(rule, count) in &rules {
            let mut left = count;
            let mut last_bucket: Option<String> = None;
            for (rank, &index) in present.iter().enumerate() {
                if left == 0 {
                    break;
                }
                let bucket = rule.bucket(order[index].finished_at, rank);
                if last_bucket.as_ref() != Some(&bucket) {
                    matched[index].push(bucket.clone());
                    last_bucket = Some(bucket);
                    left -= 1;
                }
            }
        }
        for &index in &present {
            let old = too_old(order[index].finished_at);
            let rules_keeping = std::mem::take(&mut matched[index]);
            match (rules_keeping.is_empty(), old, max_age) {
                (false, false, _) => {
                    keep[index] = true;
                    reasons[index] = rules_keeping;
                }
                (false, true, Some(days)) => reasons[index].push(format!(
                    "older than {days} days despite {}",
                    rules_keeping.join(", ")
                )),
                (true, true, Some(days)) => {
                    reasons[index].push(format!("older than {days} days and matched by no rule"))
                }
                _ => reasons[index].push("matched by no rule".to_string()),
            }
        }
    }

    // The invariant: the newest verified backup, or failing that the newest, stays.
    let guard = present
        .iter()
        .find(|&&index| order[index].verified_ok)
        .map(|&index| (index, "newest verified"))
        .or_else(|| present.first().map(|&index| (index, "newest")));
    if let Some((index, why)) = guard {
        if !keep[index] {
            keep[index] = true;
            reasons[index].clear();
        }
        reasons[index].push(why.to_string());
    }

    order
        .iter()
        .zip(keep)
        .zip(reasons)
        .map(|((candidate, keep), reasons)| Decision {
            id: candidate.id.clone(),
            keep,
            reasons,
        })
        .collect()
}

/// Parses an RFC 3339 timestamp like "2026-11-22T04:46:19Z" into epoch seconds (the
/// manifests' format). Also takes a fraction of a second (dropped), a lowercase `t`/`z`
/// and a numeric offset such as `+02:00` (converted to UTC). None when malformed.
///
/// jiff does the calendar (month lengths, leap years, offsets); the shape is checked here
/// first because jiff reads a wider grammar (RFC 9557: a space for `T`, `+0200`, signed
/// six-digit years) that a manifest never holds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let shaped = digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && matches!(bytes[10], b'T' | b't')
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    if !shaped {
        return None;
    }
    let mut rest = &bytes[19..];
    if let Some((b'.', fraction)) = rest.split_first() {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        rest = &fraction[count..];
    }
    let offset_ok = match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) && (*h1, *h2) <= (b'2', b'3')
        }
        _ => false,
    };
    if !offset_ok {
        return None;
    }
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (clamped to the years
/// jiff knows, -9999 to 9999).
fn date_of_days(days: i64) -> jiff::civil::Date {
    let (min, max) = (
        jiff::Timestamp::MIN.as_second(),
        jiff::Timestamp::MAX.as_second(),
    );
    let seconds = days.saturating_mul(DAY).clamp(min, max);
    let at = jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    jiff::tz::Offset::UTC.to_datetime(at).date()
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let date = date_of_days(days);
    (
        i64::from(date.year()),
        i64::from(date.month()),
        i64::from(date.day()),
    )
}

/// The ISO 8601 (week-numbering year, week) of a count of days since 1970-01-01. Weeks
/// start on Monday, and a week belongs to the year that holds its Thursday.
fn iso_week(days: i64) -> (i64, i64) {
    let week = date_of_days(days).iso_week_date();
    (i64::from(week.year()), i64::from(week.week()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap, HashSet};

    /// Days since 1970-01-01 of a date, through jiff.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let date = jiff::civil::date(year as i16, month as i8, day as i8);
        let at = jiff::tz::Offset::UTC
            .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .unwrap();
        at.as_second().div_euclid(DAY)
    }

    fn days_in_month(year: i64, month: i64) -> i64 {
        i64::from(jiff::civil::date(year as i16, month as i8, 1).days_in_month())
    }

    fn at(text: &str) -> i64 {
        parse_rfc3339(text).unwrap_or_else(|| panic!("bad test timestamp {text}"))
    }

    fn candidate(id: &str, finished_at: i64, verified_ok: bool) -> Candidate {
        Candidate {
            id: id.to_string(),
            finished_at,
            verified_ok,
        }
    }

    /// A date as "YYYY-MM-DD", for ids.
    fn date_of(seconds: i64) -> String {
        let (year, month, day) = civil_from_days(seconds.div_euclid(DAY));
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// One backup a day at 04:46:19 UTC, the newest on `newest`, going back `count` days.
    fn daily_backups(newest: &str, count: i64, verified_ok: bool) -> Vec<Candidate> {
        let first = at(&format!("{newest}T04:46:19Z"));
        (0..count)
            .map(|back| {
                let finished_at = first - back * DAY;
                candidate(&date_of(finished_at), finished_at, verified_ok)
            })
            .collect()
    }

    fn kept_ids(decisions: &[Decision]) -> HashSet<&str> {
        decisions
            .iter()
            .filter(|decision| decision.keep)
            .map(|decision| decision.id.as_str())
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter(|decision| decision.keep)
            .map(|decision| decision.id.as_str())
            .collect()
    }

    fn reasons_of<'a>(decisions: &'a [Decision], id: &str) -> &'a [String] {
        &decisions
            .iter()
            .find(|decision| decision.id == id)
            .unwrap_or_else(|| panic!("no decision for {id}"))
            .reasons
    }

    fn only(rule: fn(&mut Policy)) -> Policy {
        let mut policy = Policy {
            keep_last: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            keep_yearly: None,
            max_age_days: None,
        };
        rule(&mut policy);
        policy
    }

    const NOW: &str = "2026-11-22T12:00:00Z";

    #[test]
    fn defaults() {
        let policy = Policy::default();
        assert_eq!(policy.keep_daily, Some(7));
        assert_eq!(policy.keep_weekly, Some(4));
        assert_eq!(policy.keep_monthly, Some(12));
        assert_eq!(policy.keep_last, None);
        assert_eq!(policy.keep_yearly, None);
        assert_eq!(policy.max_age_days, None);
    }

    #[test]
    fn forty_daily_backups_with_the_defaults() {
        // 2026-11-22 (a Sunday, 2026-W47) back to 2026-10-14.
        let backups = daily_backups("2026-11-22", 40, true);
        let decisions = decide(&Policy::default(), &backups, at(NOW));
        assert_eq!(decisions.len(), 40);
        assert_eq!(
            kept(&decisions),
            [
                "2026-11-22",
                "2026-11-21",
                "2026-11-20",
                "2026-11-19",
                "2026-11-18",
                "2026-11-17",
                "2026-11-16",
                "2026-11-15", // weekly 2026-W46
                "2026-11-08", // weekly 2026-W45
                "2026-11-01", // weekly 2026-W44
                "2026-10-31", // monthly 2026-10
            ]
        );
        assert_eq!(
            reasons_of(&decisions, "2026-11-22"),
            [
                "daily 2026-11-22",
                "weekly 2026-W47",
                "monthly 2026-11",
                "newest verified"
            ]
        );
        assert_eq!(reasons_of(&decisions, "2026-11-16"), ["daily 2026-11-16"]);
        assert_eq!(reasons_of(&decisions, "2026-11-15"), ["weekly 2026-W46"]);
        assert_eq!(reasons_of(&decisions, "2026-10-31"), ["monthly 2026-10"]);
        assert_eq!(reasons_of(&decisions, "2026-11-14"), ["matched by no rule"]);
    }

    #[test]
    fn result_is_newest_first_whatever_the_input_order() {
        let mut backups = daily_backups("2026-11-22", 10, false);
        backups.reverse();
        backups.swap(2, 7);
        let decisions = decide(&Policy::default(), &backups, at(NOW));
        let ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(ids, sorted);
    }

    #[test]
    fn keep_last() {
        let backups = daily_backups("2026-11-22", 6, true);
        let decisions = decide(&only(|p| p.keep_last = Some(3)), &backups, at(NOW));
        assert_eq!(kept(&decisions), ["2026-11-22", "2026-11-21", "2026-11-20"]);
        assert_eq!(
            reasons_of(&decisions, "2026-11-22"),
            ["last 1", "newest verified"]
        );
        assert_eq!(reasons_of(&decisions, "2026-11-20"), ["last 3"]);
    }

    #[test]
    fn keep_daily_takes_the_newest_of_each_day_and_skips_empty_days() {
        let backups = vec![
            candidate("d22-late", at("2026-11-22T23:00:00Z"), false),
            candidate("d22-early", at("2026-11-22T01:00:00Z"), false),
            // No backup on the 21st or the 20th: those days do not count.
            candidate("d19-late", at("2026-11-19T18:00:00Z"), false),
            candidate("d19-early", at("2026-11-19T00:00:00Z"), false),
            candidate("d12", at("2026-11-12T12:00:00Z"), false),
            candidate("d01", at("2026-11-01T12:00:00Z"), false),
        ];
        let decisions = decide(
            &only(|p| p.keep_daily = Some(3)),
            &backups,
            at("2026-11-23T00:00:00Z"),
        );
        assert_eq!(kept(&decisions), ["d22-late", "d19-late", "d12"]);
        assert_eq!(
            reasons_of(&decisions, "d22-late"),
            ["daily 2026-11-22", "newest"]
        );
        assert_eq!(reasons_of(&decisions, "d12"), ["daily 2026-11-12"]);
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_starting_monday() {
        let backups = vec![
            candidate("mon", at("2021-01-04T10:00:00Z"), true), // 2021-W01
            candidate("sun", at("2021-01-03T10:00:00Z"), true), // 2020-W53
            candidate("thu", at("2020-12-31T10:00:00Z"), true), // 2020-W53
            candidate("mon-before", at("2020-12-28T10:00:00Z"), true), // 2020-W53
            candidate("sun-before", at("2020-12-27T10:00:00Z"), true), // 2020-W52
            candidate("older", at("2020-12-20T10:00:00Z"), true), // 2020-W51
        ];
        let decisions = decide(
            &only(|p| p.keep_weekly = Some(3)),
            &backups,
            at("2021-01-05T00:00:00Z"),
        );
        assert_eq!(kept(&decisions), ["mon", "sun", "sun-before"]);
        assert_eq!(reasons_of(&decisions, "sun"), ["weekly 2020-W53"]);
        assert_eq!(reasons_of(&decisions, "sun-before"), ["weekly 2020-W52"]);
    }

    #[test]
    fn keep_monthly_and_yearly() {
        let backups = vec![
            candidate("a", at("2026-03-02T00:00:00Z"), false),
            candidate("b", at("2026-03-01T00:00:00Z"), false),
            candidate("c", at("2026-01-31T23:59:59Z"), false),
            candidate("d", at("2025-12-31T23:59:59Z"), false),
            candidate("e", at("2025-06-15T00:00:00Z"), false),
            candidate("f", at("2024-02-29T00:00:00Z"), false),
            candidate("g", at("2023-01-01T00:00:00Z"), false),
        ];
        let now = at("2026-03-03T00:00:00Z");
        let monthly = decide(&only(|p| p.keep_monthly = Some(3)), &backups, now);
        assert_eq!(kept(&monthly), ["a", "c", "d"]);
        assert_eq!(reasons_of(&monthly, "c"), ["monthly 2026-01"]);
        let yearly = decide(&only(|p| p.keep_yearly = Some(3)), &backups, now);
        assert_eq!(kept(&yearly), ["a", "d", "f"]);
        assert_eq!(reasons_of(&yearly, "f"), ["yearly 2024"]);
    }

    #[test]
    fn reasons_name_every_rule_that_keeps() {
        let backups = daily_backups("2026-11-22", 3, false);
        let policy = Policy {
            keep_last: Some(2),
            keep_daily: Some(2),
            keep_weekly: Some(1),
            keep_monthly: Some(1),
            keep_yearly: Some(1),
            max_age_days: None,
        };
        let decisions = decide(&policy, &backups, at(NOW));
        assert_eq!(
            reasons_of(&decisions, "2026-11-22"),
            [
                "last 1",
                "daily 2026-11-22",
                "weekly 2026-W47",
                "monthly 2026-11",
                "yearly 2026",
                "newest"
            ]
        );
        assert_eq!(
            reasons_of(&decisions, "2026-11-21"),
            ["last 2", "daily 2026-11-21"]
        );
        assert_eq!(reasons_of(&decisions, "2026-11-20"), ["matched by no rule"]);
    }

    #[test]
    fn the_only_verified_backup_is_kept_however_old() {
        let mut backups = daily_backups("2026-11-22", 100, false);
        let oldest = backups.len() - 1;
        backups[oldest].verified_ok = true; // 2026-08-15
        let policy = Policy {
            keep_last: Some(1),
            max_age_days: Some(30),
            ..only(|_| {})
        };
        let decisions = decide(&policy, &backups, at(NOW));
        assert_eq!(kept(&decisions), ["2026-11-22", "2026-08-15"]);
        assert_eq!(reasons_of(&decisions, "2026-08-15"), ["newest verified"]);
        assert_eq!(reasons_of(&decisions, "2026-11-22"), ["last 1"]);

        // The same with the defaults and no age limit: still kept, though no rule reaches it.
        let decisions = decide(&Policy::default(), &backups, at(NOW));
        assert_eq!(reasons_of(&decisions, "2026-08-15"), ["newest verified"]);
        assert!(decisions.iter().any(|d| d.id == "2026-08-15" && d.keep));
    }

    #[test]
    fn with_nothing_verified_the_newest_is_kept() {
        let backups = daily_backups("2026-10-01", 5, false);
        let policy = only(|p| p.max_age_days = Some(7));
        let decisions = decide(&policy, &backups, at(NOW));
        assert_eq!(kept(&decisions), ["2026-10-01"]);
        assert_eq!(reasons_of(&decisions, "2026-10-01"), ["newest"]);
        assert_eq!(
            reasons_of(&decisions, "2026-09-30"),
            ["older than 7 days and matched by no rule"]
        );
    }

    #[test]
    fn max_age_without_keep_rules_keeps_everything_younger() {
        let backups = daily_backups("2026-11-22", 40, true);
        let decisions = decide(&only(|p| p.max_age_days = Some(30)), &backups, at(NOW));
        // now is 2026-11-22T12:00; 30 days back is 2026-10-23T12:00, so 10-23 04:46 is older.
        let kept = kept(&decisions);
        assert_eq!(kept.len(), 30);
        assert_eq!(kept.last(), Some(&"2026-10-24"));
        assert_eq!(
            reasons_of(&decisions, "2026-10-24"),
            ["younger than 30 days"]
        );
        assert_eq!(
            reasons_of(&decisions, "2026-10-23"),
            ["older than 30 days and matched by no rule"]
        );
        assert_eq!(
            reasons_of(&decisions, "2026-11-22"),
            ["younger than 30 days", "newest verified"]
        );
    }

    #[test]
    fn max_age_overrides_keep_rules() {
        let backups = daily_backups("2026-11-22", 40, true);
        let policy = Policy {
            max_age_days: Some(20),
            ..Policy::default()
        };
        let decisions = decide(&policy, &backups, at(NOW));
        // The defaults would also keep 11-01 and 10-31 (see above); both are too old.
        assert_eq!(
            kept(&decisions),
            [
                "2026-11-22",
                "2026-11-21",
                "2026-11-20",
                "2026-11-19",
                "2026-11-18",
                "2026-11-17",
                "2026-11-16",
                "2026-11-15",
                "2026-11-08",
            ]
        );
        assert_eq!(
            reasons_of(&decisions, "2026-11-01"),
            ["older than 20 days despite weekly 2026-W44"]
        );
        assert_eq!(
            reasons_of(&decisions, "2026-10-20"),
            ["older than 20 days and matched by no rule"]
        );
        assert_eq!(reasons_of(&decisions, "2026-11-10"), ["matched by no rule"]);
    }

    #[test]
    fn no_rules_at_all_keeps_everything() {
        let backups = daily_backups("2026-11-22", 5, false);
        let zeros = Policy {
            keep_last: Some(0),
            keep_daily: Some(0),
            keep_weekly: Some(0),
            keep_monthly: Some(0),
            keep_yearly: Some(0),
            max_age_days: Some(0),
        };
        for policy in [only(|_| {}), zeros] {
            let decisions = decide(&policy, &backups, at(NOW));
            assert!(decisions.iter().all(|d| d.keep), "{decisions:?}");
        }
    }

    #[test]
    fn backups_in_the_future_are_kept_and_take_no_slot() {
        let mut backups = daily_backups("2026-11-22", 3, true);
        backups.push(candidate("future", at("2026-12-25T00:00:00Z"), true));
        // Within a day of now counts as the present.
        backups.push(candidate("soon", at("2026-11-23T06:00:00Z"), false));
        let decisions = decide(&only(|p| p.keep_last = Some(2)), &backups, at(NOW));
        assert_eq!(kept(&decisions), ["future", "soon", "2026-11-22"]);
        assert_eq!(
            reasons_of(&decisions, "future"),
            ["in the future: clock skew?"]
        );
        assert_eq!(reasons_of(&decisions, "soon"), ["last 1"]);
        assert_eq!(
            reasons_of(&decisions, "2026-11-22"),
            ["last 2", "newest verified"]
        );
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(decide(&Policy::default(), &[], 0).is_empty());
    }

    #[test]
    fn iso_week_edge_cases() {
        let week = |date: &str| iso_week(at(&format!("{date}T12:00:00Z")).div_euclid(DAY));
        assert_eq!(week("2020-12-31"), (2020, 53));
        assert_eq!(week("2021-01-03"), (2020, 53));
        assert_eq!(week("2021-01-04"), (2021, 1));
        assert_eq!(week("2026-11-22"), (2026, 47));
        assert_eq!(week("2026-11-23"), (2026, 48));
        assert_eq!(week("2008-12-29"), (2009, 1));
        assert_eq!(week("2010-01-03"), (2009, 53));
        assert_eq!(week("2016-01-03"), (2015, 53));
        assert_eq!(week("1970-01-01"), (1970, 1));
        assert_eq!(week("1969-12-29"), (1970, 1));
        assert_eq!(week("1969-12-28"), (1969, 52));
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-22T04:46:19Z"), Some(1_795_322_779));
        assert_eq!(parse_rfc3339("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(
            parse_rfc3339("2026-11-22T04:46:19.123456Z"),
            Some(1_795_322_779)
        );
        assert_eq!(parse_rfc3339("2026-11-22t04:46:19z"), Some(1_795_322_779));
        assert_eq!(
            parse_rfc3339("2026-11-22T06:46:19+02:00"),
            Some(1_795_322_779)
        );
        assert_eq!(
            parse_rfc3339("2026-11-21T23:16:19-05:30"),
            Some(1_795_322_779)
        );
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T04:46:19",
            "2026-11-22 04:46:19Z",
            "2026-13-22T04:46:19Z",
            "2026-00-22T04:46:19Z",
            "2026-02-29T04:46:19Z",
            "2026-04-31T04:46:19Z",
            "2026-11-00T04:46:19Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T04:60:19Z",
            "2026-11-22T04:46:61Z",
            "2026-11-22T04:46:19.Z",
            "2026-11-22T04:46:19ZZ",
            "2026-11-22T04:46:19+0200",
            "2026-11-22T04:46:19+24:00",
            "+026-11-22T04:46:19Z",
            "2026-1a-22T04:46:19Z",
            "2026-11-22T04:46:19Z ",
            "２026-11-22T04:46:19Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    // --- Properties -------------------------------------------------------------------

    /// 2026-01-01T00:00:00Z.
    const BASE: i64 = 1_767_225_600;
    const THREE_YEARS: i64 = 3 * 365 * DAY;

    fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec((0..THREE_YEARS, any::<bool>()), 0..60).prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(|(n, (offset, verified_ok))| Candidate {
                    id: format!("b{n:02}"),
                    finished_at: BASE + offset,
                    verified_ok,
                })
                .collect()
        })
    }

    fn count() -> impl Strategy<Value = Option<u32>> {
        prop_oneof![Just(None), (0u32..15).prop_map(Some)]
    }

    fn policies() -> impl Strategy<Value = Policy> {
        (count(), count(), count(), count(), count(), count()).prop_map(
            |(keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, max_age)| Policy {
                keep_last,
                keep_daily,
                keep_weekly,
                keep_monthly,
                keep_yearly,
                max_age_days: max_age.map(|n| n * 40),
            },
        )
    }

    /// "now" somewhere in or after the three years, so some backups may be in the future.
    fn nows() -> impl Strategy<Value = i64> {
        BASE..BASE + THREE_YEARS + 400 * DAY
    }

    /// The newest by the same order `decide` uses.
    fn newest<'a>(candidates: impl Iterator<Item = &'a Candidate>) -> Option<&'a Candidate> {
        candidates.max_by(|a, b| {
            a.finished_at
                .cmp(&b.finished_at)
                .then_with(|| a.id.cmp(&b.id))
        })
    }

    /// A second, independent reading of one bucket rule: group by bucket, take the N newest
    /// buckets, keep the newest backup of each.
    fn reference_picks(
        present: &[&Candidate],
        count: u32,
        bucket: impl Fn(i64) -> i64,
    ) -> HashSet<String> {
        let mut newest_per_bucket: BTreeMap<i64, &Candidate> = BTreeMap::new();
        for &candidate in present {
            let entry = newest_per_bucket
                .entry(bucket(candidate.finished_at))
                .or_insert(candidate);
            if newest([*entry, candidate].into_iter()).map(|c| &c.id) == Some(&candidate.id) {
                *entry = candidate;
            }
        }
        newest_per_bucket
            .values()
            .rev()
            .take(count as usize)
            .map(|candidate| candidate.id.clone())
            .collect()
    }

    proptest! {
        #[test]
        fn every_candidate_gets_exactly_one_decision(
            policy in policies(), candidates in candidates(), now in nows()
        ) {
            let decisions = decide(&policy, &candidates, now);
            prop_assert_eq!(decisions.len(), candidates.len());
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for decision in &decisions {
                *seen.entry(decision.id.as_str()).or_default() += 1;
                prop_assert!(!decision.reasons.is_empty(), "{:?}", decision);
            }
            for candidate in &candidates {
                prop_assert_eq!(seen.get(candidate.id.as_str()), Some(&1));
            }
            let times: HashMap<&str, i64> =
                candidates.iter().map(|c| (c.id.as_str(), c.finished_at)).collect();
            let newest_first = decisions
                .windows(2)
                .all(|pair| times[pair[0].id.as_str()] >= times[pair[1].id.as_str()]);
            prop_assert!(newest_first);
        }

        #[test]
        fn something_is_kept_and_the_newest_verified_is_kept(
            policy in policies(), candidates in candidates(), now in nows()
        ) {
            let decisions = decide(&policy, &candidates, now);
            if !candidates.is_empty() {
                prop_assert!(decisions.iter().any(|d| d.keep));
            }
            let kept = kept_ids(&decisions);
            if let Some(verified) = newest(candidates.iter().filter(|c| c.verified_ok)) {
                prop_assert!(kept.contains(verified.id.as_str()));
            } else if let Some(newest) = newest(candidates.iter()) {
                prop_assert!(kept.contains(newest.id.as_str()));
            }
        }

        #[test]
        fn pruning_twice_deletes_nothing_more(
            policy in policies(), candidates in candidates(), now in nows()
        ) {
            let first = decide(&policy, &candidates, now);
            let kept = kept_ids(&first);
            let survivors: Vec<Candidate> =
                candidates.iter().filter(|c| kept.contains(c.id.as_str())).cloned().collect();
            let second = decide(&policy, &survivors, now);
            prop_assert_eq!(second.len(), survivors.len());
            prop_assert!(second.iter().all(|d| d.keep), "{:?}", second);
            // And the result does not depend on the input order.
            let mut shuffled = candidates.clone();
            shuffled.reverse();
            prop_assert_eq!(decide(&policy, &shuffled, now), first);
        }

        #[test]
        fn bucket_rules_match_a_reference(
            candidates in candidates(), now in nows(), rule in 0usize..5, count in 1u32..15
        ) {
            let mut policy = only(|_| {});
            let bucket: Box<dyn Fn(i64) -> i64> = match rule {
                0 => { policy.keep_last = Some(count); Box::new(|_| 0) }
                1 => { policy.keep_daily = Some(count); Box::new(|t| t.div_euclid(DAY)) }
                2 => {
                    policy.keep_weekly = Some(count);
                    // Mondays: 1970-01-05 was one.
                    Box::new(|t| (t.div_euclid(DAY) - 4).div_euclid(7))
                }
                3 => {
                    policy.keep_monthly = Some(count);
                    Box::new(|t| {
                        let (y, m, _) = civil_from_days(t.div_euclid(DAY));
                        y * 12 + m
                    })
                }
                _ => {
                    policy.keep_yearly = Some(count);
                    Box::new(|t| civil_from_days(t.div_euclid(DAY)).0)
                }
            };
            let present: Vec<&Candidate> =
                candidates.iter().filter(|c| c.finished_at <= now + DAY).collect();
            let expected = if rule == 0 {
                let mut sorted = present.clone();
                sorted.sort_by(|a, b| b.finished_at.cmp(&a.finished_at).then_with(|| b.id.cmp(&a.id)));
                sorted.iter().take(count as usize).map(|c| c.id.clone()).collect()
            } else {
                reference_picks(&present, count, bucket)
            };
            let decisions = decide(&policy, &candidates, now);
            let by_rule: HashSet<String> = decisions
                .iter()
                .filter(|d| d.reasons.iter().any(|r| {
                    !r.starts_with("newest") && !r.starts_with("in the future")
                        && !r.starts_with("matched")
                }))
                .map(|d| d.id.clone())
                .collect();
            prop_assert_eq!(by_rule, expected);
        }

        #[test]
        fn calendar_round_trips(days in -800_000i64..800_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert!((1..=12).contains(&month));
            prop_assert!(day >= 1 && day <= days_in_month(year, month));
            prop_assert_eq!(days_from_civil(year, month, day), days);
            let (next_year, next_month, next_day) = civil_from_days(days + 1);
            prop_assert!((next_year, next_month, next_day) > (year, month, day));
            let text = format!(
                "{year:04}-{month:02}-{day:02}T01:02:03Z"
            );
            if (0..=9999).contains(&year) {
                prop_assert_eq!(parse_rfc3339(&text), Some(days * DAY + 3723));
            }
        }

        #[test]
        fn iso_weeks_are_consistent(days in -800_000i64..800_000) {
            let (iso_year, week) = iso_week(days);
            prop_assert!((1..=53).contains(&week));
            let weekday = (days + 3).rem_euclid(7); // 0 is Monday
            let next = iso_week(days + 1);
            if weekday == 6 {
                // Sunday to Monday: a new week.
                prop_assert!(next == (iso_year, week + 1) || next == (iso_year + 1, 1));
            } else {
                prop_assert_eq!(next, (iso_year, week));
            }
            // Week 1 is the week with January 4th in it.
            if week == 1 {
                let jan4 = days_from_civil(iso_year, 1, 4);
                prop_assert_eq!(days - weekday, jan4 - (jan4 + 3).rem_euclid(7));
            }
        }
    }
}

/// What `prune` does with a folder that has no manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverVerdict {
    /// Left by a backup that is gone: remove it. The reason says how that is known.
    Stale(String),
    /// It may belong to a backup still running: keep it.
    Running(String),
}

/// A folder untouched for this long is stale whoever wrote it: a running backup refreshes
/// its `running.json` every minute and writes its data all along.
pub const LEFTOVER_AGE_SECS: i64 = 3600;

/// Decides about a folder without a manifest, last written at `last_write`, holding the
/// marker `running` if it has one. On the host that runs prune, a marker whose process is
/// gone means the backup was killed: stale at once. Anything else is stale once nothing
/// was written for [`LEFTOVER_AGE_SECS`]. Pure: the caller says which host this is and
/// which processes are alive.
pub fn leftover_verdict(
    last_write: i64,
    running: Option<&crate::manifest::Running>,
    now: i64,
    this_host: &str,
    alive: impl Fn(u32) -> bool,
) -> LeftoverVerdict {
    let age = now - last_write;
    if let Some(marker) = running
        && marker.host == this_host
        && !alive(marker.pid)
    {
        return LeftoverVerdict::Stale(format!(
            "its backup process ({} on this host) is gone",
            marker.pid
        ));
    }
    if age >= LEFTOVER_AGE_SECS {
        LeftoverVerdict::Stale("nothing was written to it for an hour or more".to_string())
    } else {
        match running {
            Some(marker) => LeftoverVerdict::Running(format!(
                "backup process {} on {} wrote to it less than an hour ago",
                marker.pid, marker.host
            )),
            None => LeftoverVerdict::Running(
                "written to less than an hour ago: it may be a running backup".to_string(),
            ),
        }
    }
}

#[cfg(test)]
mod leftover_tests {
    use super::*;
    use crate::manifest::Running;

    fn marker(host: &str, pid: u32) -> Running {
        Running {
            host: host.to_string(),
            pid,
            started_at: String::new(),
            heartbeat: 0,
            uploads: Vec::new(),
        }
    }

    #[test]
    fn a_dead_process_on_this_host_makes_a_leftover_stale_at_once() {
        let now = 10_000;
        let here = marker("here", 42);
        let stale = |v: &LeftoverVerdict| matches!(v, LeftoverVerdict::Stale(_));
        assert!(stale(&leftover_verdict(
            now,
            Some(&here),
            now,
            "here",
            |_| false
        )));
        assert!(!stale(&leftover_verdict(
            now,
            Some(&here),
            now,
            "here",
            |_| true
        )));
        // Another host's process cannot be asked: only the age decides.
        let there = marker("there", 42);
        assert!(!stale(&leftover_verdict(
            now - 60,
            Some(&there),
            now,
            "here",
            |_| false
        )));
        assert!(stale(&leftover_verdict(
            now - LEFTOVER_AGE_SECS,
            Some(&there),
            now,
            "here",
            |_| true
        )));
        assert!(!stale(&leftover_verdict(
            now - 60,
            None,
            now,
            "here",
            |_| false
        )));
        assert!(stale(&leftover_verdict(0, None, now, "here", |_| true)));
    }
}
