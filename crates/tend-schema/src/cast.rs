//! What a column's change of type does to its values: which cast keeps them all, and what a
//! change that cannot keep them all loses.
//!
//! The diff retypes a column with `ALTER COLUMN ... TYPE t USING expr` (or copies it into a
//! new column with `UPDATE`). PostgreSQL converts the expression's result to `t` with an
//! assignment cast, which refuses a string too long for `varchar(n)`; an explicit cast to
//! `varchar(n)` in the expression would cut it silently. So the expressions here cast to the
//! type without its modifiers and leave the modifiers to the assignment.
//!
//! Where a lossless expression exists it is the one used: an array becomes `json`/`jsonb`
//! through `to_json`/`to_jsonb` (every element, where `(a)[1]` kept one), text through its
//! array literal; `timestamp` and `timestamptz` convert at UTC (the session's time zone
//! would make the result depend on who runs the plan, and loses an hour at each change back
//! from summer time). Where none exists (fewer digits, less precision, a date from a
//! timestamp), [`loss`] says so and the step carries the data-loss hazard.

use crate::diff::Hazard;

/// Types whose modifiers (`(n)`, `(p,s)`, `(p)`) are written right after the name.
const WITH_MODIFIERS: [&str; 8] = [
    "character varying",
    "character",
    "bit varying",
    "bit",
    "numeric",
    "timestamp",
    "time",
    "interval",
];

/// `character varying(20)` -> `character varying`, `timestamp(3) without time zone` ->
/// `timestamp without time zone`, `numeric(10,2)[]` -> `numeric[]`; other types unchanged.
pub fn without_modifiers(data_type: &str) -> String {
    match split(data_type) {
        Some((name, _)) => name,
        None => data_type.to_string(),
    }
}

/// The name without modifiers and the modifiers, for the built-in types that have them.
fn split(data_type: &str) -> Option<(String, Vec<i64>)> {
    let open = data_type.find('(')?;
    let head = &data_type[..open];
    if !WITH_MODIFIERS.contains(&head) {
        return None;
    }
    let close = open + data_type[open..].find(')')?;
    let modifiers = data_type[open + 1..close]
        .split(',')
        .map(|m| m.trim().parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    Some((format!("{head}{}", &data_type[close + 1..]), modifiers))
}

/// The base name and the modifiers (none when the type has none).
fn parts(data_type: &str) -> (String, Vec<i64>) {
    split(data_type).unwrap_or_else(|| (data_type.to_string(), Vec::new()))
}

const INTEGERS: [&str; 3] = ["smallint", "integer", "bigint"];
const FLOATS: [&str; 2] = ["real", "double precision"];
const STRINGS: [&str; 3] = ["text", "character varying", "character"];
const TIMESTAMPS: [&str; 2] = ["timestamp without time zone", "timestamp with time zone"];
const CLOCKS: [&str; 5] = [
    "timestamp without time zone",
    "timestamp with time zone",
    "time without time zone",
    "time with time zone",
    "interval",
];

/// The expression that turns an array `value` of `element`s into `to` keeping every
/// element, where one exists: `to_json`/`to_jsonb`, or the array's text.
pub fn array_to_scalar(value: &str, to: &str) -> Option<String> {
    let (name, _) = parts(to);
    match name.as_str() {
        "jsonb" => Some(format!("to_jsonb({value})")),
        "json" => Some(format!("to_json({value})")),
        n if STRINGS.contains(&n) => Some(format!("{value}::text")),
        _ => None,
    }
}

/// The expression between `timestamp` and `timestamptz` at UTC, for scalars.
pub fn between_timestamps(value: &str, from: &str, to: &str) -> Option<String> {
    let (a, b) = (parts(from).0, parts(to).0);
    (a != b && TIMESTAMPS.contains(&a.as_str()) && TIMESTAMPS.contains(&b.as_str()))
        .then(|| format!("{value} AT TIME ZONE 'UTC'"))
}

/// What a change from scalar (or array of) `from` to `to` may do to the values that are
/// there, beyond what any cast does: `DataLoss` where values are rounded or cut short
/// silently, `MayFail` where a value that does not fit stops the change. With the reason,
/// for the plan's warning.
pub fn loss(from: &str, to: &str) -> Option<(Hazard, &'static str)> {
    let (from, to) = (
        from.strip_suffix("[]").unwrap_or(from),
        to.strip_suffix("[]").unwrap_or(to),
    );
    let ((a, a_mods), (b, b_mods)) = (parts(from), parts(to));
    let (a, b) = (a.as_str(), b.as_str());
    let rank = |t: &str| INTEGERS.iter().position(|i| *i == t);
    let data_loss = |reason| Some((Hazard::DataLoss, reason));
    let may_fail = |reason| Some((Hazard::MayFail, reason));
    match (a, b) {
        _ if from == to => None,
        ("numeric", "numeric") => {
            let scale = |m: &[i64]| m.get(1).copied().unwrap_or(0);
            match (a_mods.as_slice(), b_mods.as_slice()) {
                (_, []) => None,
                ([], _) => data_loss("values are rounded to the new scale"),
                (a_m, b_m) if scale(b_m) < scale(a_m) => {
                    data_loss("values are rounded to fewer decimal places")
                }
                (a_m, b_m) if b_m[0] - scale(b_m) < a_m[0] - scale(a_m) => {
                    may_fail("values with more integer digits than the new precision fail")
                }
                _ => None,
            }
        }
        (x, y) if rank(x).is_some() && rank(y).is_some() => {
            (rank(y) < rank(x)).then_some((Hazard::MayFail, "values out of the smaller range fail"))
        }
        (x, y) if (FLOATS.contains(&x) || x == "numeric") && rank(y).is_some() => {
            data_loss("fractions are rounded to whole numbers")
        }
        ("numeric", y) if FLOATS.contains(&y) => {
            data_loss("values keep only the digits a float holds")
        }
        ("double precision", "real") => data_loss("values keep only the digits a real holds"),
        ("bigint", "double precision") | ("bigint" | "integer", "real") => {
            data_loss("large values keep only the digits a float holds")
        }
        (x, y) if CLOCKS.contains(&x) && x == y => {
            let precision = |m: &[i64]| m.first().copied().unwrap_or(6);
            (precision(&b_mods) < precision(&a_mods))
                .then_some((Hazard::DataLoss, "fractions of a second are rounded"))
        }
        (x, "date") if TIMESTAMPS.contains(&x) => data_loss("the time of day is dropped"),
        (x, "time without time zone" | "time with time zone") if TIMESTAMPS.contains(&x) => {
            data_loss("the date is dropped")
        }
        (x, y) if STRINGS.contains(&x) && STRINGS.contains(&y) => {
            let length = |m: &[i64]| m.first().copied();
            match (length(&a_mods), length(&b_mods)) {
                (_, None) => None,
                (Some(n), Some(m)) if m >= n => None,
                _ => may_fail("values longer than the new length fail"),
            }
        }
        (_, "character varying" | "character") if !b_mods.is_empty() => {
            may_fail("values longer than the new length fail")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modifiers_come_off_builtin_types_only() {
        assert_eq!(
            without_modifiers("character varying(20)"),
            "character varying"
        );
        assert_eq!(
            without_modifiers("timestamp(3) without time zone"),
            "timestamp without time zone"
        );
        assert_eq!(without_modifiers("numeric(10,2)[]"), "numeric[]");
        assert_eq!(without_modifiers("public.\"T(1)\""), "public.\"T(1)\"");
        assert_eq!(without_modifiers("integer"), "integer");
    }

    #[test]
    fn narrowing_is_data_loss_or_may_fail_and_widening_is_neither() {
        let hazard = |a, b| loss(a, b).map(|(h, _)| h);
        assert_eq!(hazard("integer", "bigint"), None);
        assert_eq!(hazard("bigint", "integer"), Some(Hazard::MayFail));
        assert_eq!(
            hazard("numeric(10,4)", "numeric(10,2)"),
            Some(Hazard::DataLoss)
        );
        assert_eq!(hazard("numeric", "numeric(10,2)"), Some(Hazard::DataLoss));
        assert_eq!(
            hazard("numeric(10,2)", "numeric(6,2)"),
            Some(Hazard::MayFail)
        );
        assert_eq!(hazard("numeric(10,2)", "numeric"), None);
        assert_eq!(hazard("numeric(10,2)", "integer"), Some(Hazard::DataLoss));
        assert_eq!(hazard("double precision", "real"), Some(Hazard::DataLoss));
        assert_eq!(
            hazard(
                "timestamp(6) without time zone",
                "timestamp(3) without time zone"
            ),
            Some(Hazard::DataLoss)
        );
        assert_eq!(
            hazard(
                "timestamp without time zone",
                "timestamp(3) without time zone"
            ),
            Some(Hazard::DataLoss)
        );
        assert_eq!(
            hazard(
                "timestamp(3) without time zone",
                "timestamp without time zone"
            ),
            None
        );
        assert_eq!(
            hazard("timestamp with time zone", "date"),
            Some(Hazard::DataLoss)
        );
        assert_eq!(
            hazard("character varying(20)", "character varying(10)"),
            Some(Hazard::MayFail)
        );
        assert_eq!(
            hazard("text", "character varying(10)"),
            Some(Hazard::MayFail)
        );
        assert_eq!(hazard("character varying(10)", "text"), None);
        assert_eq!(
            hazard("public.mood", "character varying(3)"),
            Some(Hazard::MayFail)
        );
        assert_eq!(hazard("jsonb", "json"), None);
    }

    #[test]
    fn arrays_become_json_and_text_whole() {
        assert_eq!(
            array_to_scalar("c", "jsonb").as_deref(),
            Some("to_jsonb(c)")
        );
        assert_eq!(array_to_scalar("c", "json").as_deref(), Some("to_json(c)"));
        assert_eq!(
            array_to_scalar("c", "character varying(10)").as_deref(),
            Some("c::text")
        );
        assert_eq!(array_to_scalar("c", "integer"), None);
    }
}
