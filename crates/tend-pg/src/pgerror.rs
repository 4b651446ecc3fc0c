//! The one reading of a driver error: [`PgError`] is a typed view of a `tokio_postgres`
//! error (its SQLSTATE and the [`PgErrorClass`] it falls in, PostgreSQL's message, detail and
//! hint, and the position the server pointed at, turned into a line and column of the SQL
//! that was sent), and [`error_text`] is its rendering for people, so no caller ever shows the
//! driver's bare "db error" or decides what went wrong by reading a message.

use std::fmt;

use tokio_postgres::error::{ErrorPosition, SqlState};

/// What kind of failure a server error is, from its SQLSTATE: the code's class (its first
/// two characters) and the few codes callers act on by themselves. Errors the server did
/// not send (a closed connection, a timeout) have no SQLSTATE: they are `Connection` when
/// the connection is gone or an I/O error caused them, `Other` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgErrorClass {
    /// Class 08 (connection exception), 57P01..57P03 (the server is shutting down or not
    /// accepting connections yet), or no server error at all and the connection is gone.
    Connection,
    /// 28: invalid authorization (a wrong password, no pg_hba.conf entry).
    Authentication,
    /// 42501 insufficient_privilege.
    Privilege,
    /// 42601 syntax_error and the other errors in how a statement is written (42602
    /// invalid_name, 42622 name_too_long, 42939 reserved_name, 42P10 invalid_column_reference).
    Syntax,
    /// An object the statement names does not exist: 42P01 undefined_table, 42703
    /// undefined_column, 42704 undefined_object, 42883 undefined_function, 42P02
    /// undefined_parameter, 3D000 invalid_catalog_name (database), 3F000 invalid_schema_name.
    UndefinedObject,
    /// An object the statement creates exists already: 42P04, 42P05, 42P06, 42P07, 42710,
    /// 42712, 42723 (duplicate database, prepared statement, schema, table, object, alias,
    /// function).
    DuplicateObject,
    /// Another session stands in the way: 55P03 lock_not_available (a `lock_timeout` ran out
    /// or `NOWAIT`), 40P01 deadlock_detected, 40001 serialization_failure.
    Lock,
    /// 57014 query_canceled: a cancel request or `statement_timeout`.
    QueryCanceled,
    /// 53100 disk_full.
    DiskFull,
    /// 53200 out_of_memory.
    OutOfMemory,
    /// The rest of class 53 (insufficient resources: 53300 too_many_connections, 53400
    /// configuration_limit_exceeded).
    Resources,
    /// Class 22: a value does not fit (bad input syntax, out of range, division by zero).
    DataException,
    /// Class 23: a constraint refused a row (not null, foreign key, unique, check, exclusion).
    Integrity,
    /// 25006 read_only_sql_transaction: a write on a standby or in a read-only transaction.
    ReadOnly,
    /// 0A000 feature_not_supported.
    FeatureNotSupported,
    /// Anything else.
    Other,
}

impl PgErrorClass {
    /// The class of a SQLSTATE code (five characters, as the server sends them).
    pub fn of_code(code: &str) -> PgErrorClass {
        match code {
            "42501" => PgErrorClass::Privilege,
            "42601" | "42602" | "42622" | "42939" | "42P10" => PgErrorClass::Syntax,
            "42P01" | "42703" | "42704" | "42883" | "42P02" | "3D000" | "3F000" => {
                PgErrorClass::UndefinedObject
            }
            "42P04" | "42P05" | "42P06" | "42P07" | "42710" | "42712" | "42723" => {
                PgErrorClass::DuplicateObject
            }
            "55P03" | "40P01" | "40001" => PgErrorClass::Lock,
            "57014" => PgErrorClass::QueryCanceled,
            "57P01" | "57P02" | "57P03" => PgErrorClass::Connection,
            "53100" => PgErrorClass::DiskFull,
            "53200" => PgErrorClass::OutOfMemory,
            "25006" => PgErrorClass::ReadOnly,
            "0A000" => PgErrorClass::FeatureNotSupported,
            _ => match code.get(..2) {
                Some("08") => PgErrorClass::Connection,
                Some("28") => PgErrorClass::Authentication,
                Some("53") => PgErrorClass::Resources,
                Some("22") => PgErrorClass::DataException,
                Some("23") => PgErrorClass::Integrity,
                _ => PgErrorClass::Other,
            },
        }
    }
}

/// A place in a SQL text: 1-based line and column, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The place of a 1-based *character* position in `sql`, as PostgreSQL reports it in an
    /// error's `position` field (it counts characters, not bytes, from the start of the
    /// query string it was sent). Positions past the end count as the end (the server
    /// reports "at end of input" one past the last character); 0 counts as 1. Lines are
    /// separated by `\n` (a `\r` before it is part of the line). Never panics.
    pub fn of_char_position(sql: &str, position: usize) -> Location {
        let index = position.saturating_sub(1);
        let mut line = 1;
        let mut column = 1;
        for (i, c) in sql.chars().enumerate() {
            if i == index {
                break;
            }
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Location { line, column }
    }
}

/// A typed view of a `tokio_postgres` error: what the server said, or the driver's own
/// words when the server said nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    /// The SQLSTATE, when the server sent the error.
    pub code: Option<SqlState>,
    pub class: PgErrorClass,
    /// PostgreSQL's primary message, or the driver's display of an error the server did not
    /// send ("connection closed").
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The 1-based character position in the query sent that the server pointed at (only
    /// positions in the query itself, not in an internally generated one).
    pub position: Option<usize>,
    /// The driver's causes of an error the server did not send, innermost last.
    causes: Vec<String>,
}

impl PgError {
    pub fn of(err: &tokio_postgres::Error) -> PgError {
        if let Some(db) = err.as_db_error() {
            return PgError {
                code: Some(db.code().clone()),
                class: PgErrorClass::of_code(db.code().code()),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                position: match db.position() {
                    Some(ErrorPosition::Original(pos)) => Some(*pos as usize),
                    Some(ErrorPosition::Internal { .. }) | None => None,
                },
                causes: Vec::new(),
            };
        }
        let message = err.to_string();
        let mut causes = Vec::new();
        let mut io = false;
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            io |= cause.is::<std::io::Error>();
            causes.push(cause.to_string());
            source = cause.source();
        }
        PgError {
            code: None,
            class: if err.is_closed() || io {
                PgErrorClass::Connection
            } else {
                PgErrorClass::Other
            },
            message,
            detail: None,
            hint: None,
            position: None,
            causes,
        }
    }

    /// The SQLSTATE as its five characters.
    pub fn code_str(&self) -> Option<&str> {
        self.code.as_ref().map(SqlState::code)
    }

    /// Whether the server sent the error (it has a SQLSTATE).
    pub fn from_server(&self) -> bool {
        self.code.is_some()
    }

    /// Where in `sql` the server's position points, when it gave one; `sql` is the query
    /// that was sent (see [`Location::of_char_position`] for positions past its end).
    pub fn location(&self, sql: &str) -> Option<Location> {
        self.position
            .map(|position| Location::of_char_position(sql, position))
    }

    /// Where in `sql` the server's position points when `sql` was sent after `offset`
    /// characters of other SQL, and only when the position falls inside `sql`.
    pub fn location_within(&self, sql: &str, offset: usize) -> Option<Location> {
        let position = self.position?;
        (position > offset && position - offset <= sql.chars().count())
            .then(|| Location::of_char_position(sql, position - offset))
    }

    /// The name the message quotes first (`relation "x" does not exist` names `x`): the
    /// server sends no field with it for most errors, so a caller with no position can
    /// still find the object in the statement.
    pub fn quoted_name(&self) -> Option<&str> {
        let start = self.message.find('"')?;
        let len = self.message[start + 1..].find('"')?;
        let name = &self.message[start + 1..start + 1 + len];
        (!name.is_empty()).then_some(name)
    }

    /// Lines into `statement` (0 for its first) where the object the message quotes first
    /// appears; 0 when it quotes none or `statement` does not hold it.
    pub fn lines_before_quoted_name(&self, statement: &str) -> usize {
        self.quoted_name()
            .and_then(|name| statement.find(name))
            .map(|at| statement[..at].matches('\n').count())
            .unwrap_or(0)
    }
}

/// PostgreSQL's message, detail and SQLSTATE (`permission denied for table t (SQLSTATE
/// 42501)`), or the driver's own words and their causes when the server said nothing.
impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = self.code_str() {
            if let Some(detail) = &self.detail {
                write!(f, ": {detail}")?;
            }
            return write!(f, " (SQLSTATE {code})");
        }
        let mut text = self.message.clone();
        for cause in &self.causes {
            if !text.contains(cause.as_str()) {
                write!(f, ": {cause}")?;
                text.push_str(&format!(": {cause}"));
            }
        }
        Ok(())
    }
}

/// PostgreSQL's message, detail and SQLSTATE (`permission denied for table t (SQLSTATE
/// 42501)`), or the driver's own words and their cause when the server said nothing
/// (a closed connection, a timeout): the display of [`PgError`].
pub fn error_text(err: &tokio_postgres::Error) -> String {
    PgError::of(err).to_string()
}

/// The SQLSTATE code, when the server gave one.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(|c| c.code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let s = "é\nselect ü\nfrom";
        let at = |p| Location::of_char_position(s, p);
        assert_eq!(at(0), Location { line: 1, column: 1 });
        assert_eq!(at(1), Location { line: 1, column: 1 });
        assert_eq!(at(2), Location { line: 1, column: 2 }); // the newline itself
        assert_eq!(at(3), Location { line: 2, column: 1 });
        assert_eq!(at(10), Location { line: 2, column: 8 }); // ü
        assert_eq!(at(11), Location { line: 2, column: 9 }); // the second newline
        assert_eq!(at(12), Location { line: 3, column: 1 });
        // "at end of input" is one past the last character; further counts as the end.
        assert_eq!(at(16), Location { line: 3, column: 5 });
        assert_eq!(at(1000), Location { line: 3, column: 5 });
    }

    #[test]
    fn classes_follow_the_sqlstate() {
        assert_eq!(PgErrorClass::of_code("42501"), PgErrorClass::Privilege);
        assert_eq!(
            PgErrorClass::of_code("42P01"),
            PgErrorClass::UndefinedObject
        );
        assert_eq!(PgErrorClass::of_code("42601"), PgErrorClass::Syntax);
        assert_eq!(
            PgErrorClass::of_code("42P07"),
            PgErrorClass::DuplicateObject
        );
        assert_eq!(PgErrorClass::of_code("55P03"), PgErrorClass::Lock);
        assert_eq!(PgErrorClass::of_code("40P01"), PgErrorClass::Lock);
        assert_eq!(PgErrorClass::of_code("57014"), PgErrorClass::QueryCanceled);
        assert_eq!(PgErrorClass::of_code("53100"), PgErrorClass::DiskFull);
        assert_eq!(PgErrorClass::of_code("53200"), PgErrorClass::OutOfMemory);
        assert_eq!(PgErrorClass::of_code("53300"), PgErrorClass::Resources);
        assert_eq!(PgErrorClass::of_code("22012"), PgErrorClass::DataException);
        assert_eq!(PgErrorClass::of_code("23505"), PgErrorClass::Integrity);
        assert_eq!(PgErrorClass::of_code("08006"), PgErrorClass::Connection);
        assert_eq!(PgErrorClass::of_code("57P01"), PgErrorClass::Connection);
        assert_eq!(PgErrorClass::of_code("28P01"), PgErrorClass::Authentication);
        assert_eq!(PgErrorClass::of_code("XX000"), PgErrorClass::Other);
        assert_eq!(PgErrorClass::of_code(""), PgErrorClass::Other);
    }

    fn sql_text() -> impl Strategy<Value = String> {
        // Lines of SQL-ish text with multi-byte characters, CRLF and empty lines.
        proptest::collection::vec(
            prop_oneof![
                Just("select".to_string()),
                Just("'é'".to_string()),
                Just("\"ü\"".to_string()),
                Just(" ".to_string()),
                Just("\n".to_string()),
                Just("\r\n".to_string()),
                Just("😀".to_string()),
                "[a-z0-9_;(),.*]{1,8}",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        /// The location names the very character the position counts to: its line of the
        /// text, and its column in that line.
        #[test]
        fn a_location_points_at_the_character_of_the_position(
            sql in sql_text(),
            pick in any::<proptest::sample::Index>(),
        ) {
            let chars: Vec<char> = sql.chars().collect();
            prop_assume!(!chars.is_empty());
            let position = pick.index(chars.len()) + 1;
            let at = Location::of_char_position(&sql, position);
            let line: Vec<char> = sql.split('\n').nth(at.line - 1).unwrap().chars().collect();
            let expected = chars[position - 1];
            if expected == '\n' {
                prop_assert_eq!(at.column, line.len() + 1);
            } else {
                prop_assert_eq!(line[at.column - 1], expected);
            }
            let newlines_before = chars[..position - 1].iter().filter(|&&c| c == '\n').count();
            prop_assert_eq!(at.line, newlines_before + 1);
        }

        /// Any position, even 0 or far past the end, gives a place inside the text (or one
        /// past its last character), without panicking.
        #[test]
        fn any_position_is_a_place_in_the_text(sql in sql_text(), position in any::<usize>()) {
            let at = Location::of_char_position(&sql, position);
            let lines: Vec<&str> = sql.split('\n').collect();
            prop_assert!(at.line >= 1 && at.line <= lines.len());
            prop_assert!(at.column >= 1 && at.column <= lines[at.line - 1].chars().count() + 1);
        }

        /// A position in a query that had other SQL sent before `sql` is located in `sql`
        /// as if `sql` had been sent alone, and not at all when it falls outside `sql`.
        #[test]
        fn a_position_after_a_prefix_is_located_in_the_text_after_it(
            prefix in sql_text(),
            sql in sql_text(),
            suffix in sql_text(),
            position in 0usize..300,
        ) {
            let error = PgError {
                code: Some(SqlState::SYNTAX_ERROR),
                class: PgErrorClass::Syntax,
                message: "syntax error".into(),
                detail: None,
                hint: None,
                position: Some(position),
                causes: Vec::new(),
            };
            let offset = prefix.chars().count();
            let within = error.location_within(&sql, offset);
            let inside = position > offset && position <= offset + sql.chars().count();
            prop_assert_eq!(within.is_some(), inside);
            if inside {
                prop_assert_eq!(within, Some(Location::of_char_position(&sql, position - offset)));
                let whole = format!("{prefix}{sql}{suffix}");
                let alone = error.location(&whole).unwrap();
                let prefix_lines = prefix.matches('\n').count();
                prop_assert_eq!(alone.line, within.unwrap().line + prefix_lines);
            }
        }
    }
}
