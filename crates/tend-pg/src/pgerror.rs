//! One rendering of a driver error for people: PostgreSQL's own message, its detail and its
//! SQLSTATE, so no caller ever shows the driver's bare "db error".

/// PostgreSQL's message, detail and SQLSTATE (`permission denied for table t (SQLSTATE
/// 42501)`), or the driver's own words and their cause when the server said nothing
/// (a closed connection, a timeout).
pub fn error_text(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(": {detail}"));
        }
        text.push_str(&format!(" (SQLSTATE {})", db.code().code()));
        return text;
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// The SQLSTATE code, when the server gave one.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<&str> {
    err.code().map(|c| c.code())
}
