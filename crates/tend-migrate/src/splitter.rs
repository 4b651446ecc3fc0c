//! Splitting SQL scripts into statements the way psql does, and classifying statements by
//! what they need from the runner.
//!
//! Some migrations cannot run as one multi-statement query inside a transaction (for example
//! `CREATE INDEX CONCURRENTLY`), so they must be sent statement by statement; and a failure
//! must name the line of the failing statement. Both need a splitter that agrees with
//! PostgreSQL's lexer (with `standard_conforming_strings` on) about where strings, quoted
//! identifiers, comments and dollar quotes begin and end. The rules below follow psql's
//! `psqlscan.l`, including its heuristic for SQL-standard function bodies (`BEGIN ATOMIC`).
//!
//! Everything here works on bytes and only ever cuts the script at ASCII bytes, so it never
//! panics and never slices through a character.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement's text from its first significant character (comments before it
    /// excluded) up to and excluding its terminating `;` (trailing whitespace trimmed).
    /// Comments inside the statement are kept.
    pub sql: &'a str,
    /// Byte offset of `sql` in the script.
    pub offset: usize,
    /// 1-based line of the statement's first character in the script.
    pub line: usize,
}

impl Statement<'_> {
    /// The script line of an error position the server reported for this statement sent on
    /// its own (`position` counts characters from the start of `sql`, 1-based).
    pub fn line_of_char_position(&self, position: usize) -> usize {
        self.line + line_of_char_position(self.sql, position) - 1
    }

    /// The script line of a server error for this statement sent on its own: where the
    /// error's position points, else where the object its message quotes first appears
    /// (`relation "x" does not exist`), else the statement's first line.
    pub fn line_of_error(&self, err: &tend_pg::PgError) -> usize {
        match err.position {
            Some(position) => self.line_of_char_position(position),
            None => self.line + err.lines_before_quoted_name(self.sql),
        }
    }
}

/// Splits a script into statements the way psql would send them.
///
/// Never panics, on any input. Empty statements (only whitespace, comments or lone
/// semicolons) are dropped. Text after the last semicolon is a final statement if it is
/// significant. An unterminated string, quoted identifier, dollar quote or block comment
/// makes the rest of the script one final statement, so that the server reports the error
/// just as it would for the whole file.
pub fn split(script: &str) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    let mut lines = LineCounter::new(script);
    let mut state = StatementState::default();
    let mut push = |start: usize, end: usize| {
        let sql = trim_end_space(script.get(start..end).unwrap_or(""));
        if !sql.is_empty() {
            let line = lines.line_at(start);
            out.push(Statement {
                sql,
                offset: start,
                line,
            });
        }
    };
    for tok in Lexer::new(script) {
        match tok.kind {
            Kind::LineComment => continue,
            Kind::BlockComment if tok.terminated => continue,
            Kind::Op if tok.is_op(script, b';') && state.ends_at_semicolon() => {
                if let Some(start) = state.start {
                    push(start, tok.start);
                }
                state = StatementState::default();
                continue;
            }
            _ => {}
        }
        state.start.get_or_insert(tok.start);
        match tok.kind {
            Kind::Op if tok.is_op(script, b'(') => state.paren_depth += 1,
            Kind::Op if tok.is_op(script, b')') => {
                state.paren_depth = state.paren_depth.saturating_sub(1);
            }
            Kind::Word => state.observe_word(tok.text(script)),
            _ => {}
        }
    }
    if let Some(start) = state.start {
        push(start, script.len());
    }
    out
}

/// 1-based line and column (in characters) of a byte offset, for error messages.
///
/// Offsets past the end count as the end; an offset inside a multi-byte character counts as
/// that character. Lines are separated by `\n` (a `\r` before it is part of the line).
pub fn line_col(script: &str, byte_offset: usize) -> (usize, usize) {
    let bytes = script.as_bytes();
    let prefix = &bytes[..byte_offset.min(bytes.len())];
    let line = 1 + prefix.iter().filter(|&&b| b == b'\n').count();
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    // Count characters by their first bytes, so that an offset need not be a char boundary.
    let column = 1 + prefix[line_start..]
        .iter()
        .filter(|&&b| !is_utf8_continuation(b))
        .count();
    (line, column)
}

/// 1-based line of a 1-based *character* position, as PostgreSQL reports it in an error's
/// `position` field (it counts characters, not bytes, from the start of the query string it
/// was sent). Positions past the end count as the end; 0 counts as 1.
pub fn line_of_char_position(script: &str, position: usize) -> usize {
    tend_pg::Location::of_char_position(script, position).line
}

/// What a statement needs from the runner.
/// (Not `Copy`: it carries the index name.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatementTraits {
    /// Cannot run inside a transaction block (the server refuses it there).
    pub no_transaction: bool,
    /// Transaction control the script does itself: BEGIN, START TRANSACTION, COMMIT, END,
    /// ROLLBACK, ABORT, PREPARE TRANSACTION (not SAVEPOINT, RELEASE or ROLLBACK TO, which
    /// work inside the runner's transaction).
    pub transaction_control: bool,
    /// For `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON ...`, the name the
    /// index gets in the catalog (quotes removed, unquoted parts folded to lower case and
    /// truncated to 63 bytes as the server does; a qualified name keeps its `.`), so that a
    /// runner can drop an INVALID leftover of an interrupted build before retrying. `None`
    /// otherwise or when the name is omitted.
    pub concurrent_index: Option<String>,
}

/// Classifies the first statement of `statement` (leading comments are skipped).
///
/// Marked `no_transaction`: CREATE [UNIQUE] INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY,
/// REINDEX ... CONCURRENTLY (also as an option, `REINDEX (CONCURRENTLY) ...`), REINDEX
/// SCHEMA/SYSTEM/DATABASE, VACUUM, ALTER SYSTEM, CREATE/DROP DATABASE, ALTER DATABASE ...
/// SET TABLESPACE, CREATE/DROP TABLESPACE, ALTER TABLE ... DETACH PARTITION ...
/// CONCURRENTLY, CREATE/DROP SUBSCRIPTION, the ALTER SUBSCRIPTION forms that refresh or
/// touch the slot (REFRESH, SET/ADD/DROP PUBLICATION unless `refresh = false`,
/// SET (failover/two_phase)), CLUSTER without a table, DISCARD ALL, COMMIT PREPARED and
/// ROLLBACK PREPARED.
pub fn classify(statement: &str) -> StatementTraits {
    let t = Tokens::first_statement(statement);
    let mut traits = StatementTraits::default();
    let Some(first) = t.word(0) else {
        return traits;
    };
    match first.to_ascii_lowercase().as_str() {
        "begin" | "end" | "abort" => traits.transaction_control = true,
        "start" | "prepare" => traits.transaction_control = t.is_word(1, "transaction"),
        "commit" => {
            if t.is_word(1, "prepared") {
                traits.no_transaction = true;
            } else {
                traits.transaction_control = true;
            }
        }
        "rollback" => {
            if t.is_word(1, "prepared") {
                traits.no_transaction = true;
            } else {
                let i = if t.is_word(1, "work") || t.is_word(1, "transaction") {
                    2
                } else {
                    1
                };
                // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] x stays inside the transaction.
                traits.transaction_control = !t.is_word(i, "to");
            }
        }
        "vacuum" => traits.no_transaction = true,
        "discard" => traits.no_transaction = t.is_word(1, "all"),
        "cluster" => {
            let mut i = t.skip_parens(1);
            if t.is_word(i, "verbose") {
                i += 1;
            }
            traits.no_transaction = i >= t.len();
        }
        "reindex" => traits.no_transaction = classify_reindex(&t),
        "create" => {
            let i = if t.is_word(1, "unique") { 2 } else { 1 };
            if t.is_word(i, "index") {
                if t.is_word(i + 1, "concurrently") {
                    traits.no_transaction = true;
                    traits.concurrent_index = concurrent_index_name(&t, i + 2);
                }
            } else {
                traits.no_transaction = i == 1
                    && (t.is_word(1, "database")
                        || t.is_word(1, "tablespace")
                        || t.is_word(1, "subscription"));
            }
        }
        "drop" => {
            traits.no_transaction = (t.is_word(1, "index") && t.is_word(2, "concurrently"))
                || t.is_word(1, "database")
                || t.is_word(1, "tablespace")
                || t.is_word(1, "subscription");
        }
        "alter" => traits.no_transaction = classify_alter(&t),
        _ => {}
    }
    traits
}

/// What a statement of a replay would reach outside its own database, in words, or `None`
/// when it stays inside. Replays (shadow databases) refuse these before running anything:
/// CREATE/ALTER/DROP of a DATABASE, ROLE, USER, GROUP, TABLESPACE or SUBSCRIPTION; ALTER
/// SYSTEM; SET/RESET ROLE and SESSION AUTHORIZATION; GRANT/REVOKE of a role; REASSIGN OWNED
/// and DROP OWNED (which also revokes on shared objects); COMMENT ON and SECURITY LABEL ON a
/// database, role or tablespace; COPY to or from a server file or a PROGRAM; LOAD.
///
/// A static guard, not a sandbox: code run by functions and `DO` blocks is out of its sight,
/// which is why replays also run as a role without the privileges these need.
pub fn reaches_outside(statement: &str) -> Option<&'static str> {
    let t = Tokens::first_statement(statement);
    let first = t.word(0)?.to_ascii_lowercase();
    let shared = |i: usize| -> Option<&'static str> {
        let word = t.word(i)?.to_ascii_lowercase();
        Some(match word.as_str() {
            "database" => "a database other than the shadow",
            "role" | "group" => "a role",
            // CREATE/ALTER/DROP USER MAPPING stays in the database.
            "user" if !t.is_word(i + 1, "mapping") => "a role",
            "tablespace" => "a tablespace",
            "subscription" => "a subscription, which connects to another server",
            _ => return None,
        })
    };
    match first.as_str() {
        "drop" if t.is_word(1, "owned") => {
            Some("privileges on shared objects and other roles' objects (DROP OWNED)")
        }
        "create" | "drop" => shared(1),
        "alter" if t.is_word(1, "system") => Some("the server's configuration (ALTER SYSTEM)"),
        "alter" => shared(1),
        "set" | "reset" => {
            let i = if t.is_word(1, "local")
                || t.is_word(1, "session") && !t.is_word(2, "authorization")
            {
                2
            } else {
                1
            };
            let role = t.is_word(i, "role")
                || t.is_word(i, "session_authorization")
                || t.is_word(i, "session") && t.is_word(i + 1, "authorization");
            role.then_some("the session's role (SET ROLE, SESSION AUTHORIZATION)")
        }
        // GRANT role TO ..., REVOKE role FROM ...: no ON before TO/FROM.
        "grant" | "revoke" => {
            let end = (1..t.len())
                .find(|&i| t.is_word(i, "to") || t.is_word(i, "from"))
                .unwrap_or(t.len());
            let on = (1..end).any(|i| t.is_word(i, "on"));
            (!on).then_some("the membership of roles (GRANT or REVOKE of a role)")
        }
        "reassign" => Some("objects of roles in other databases (REASSIGN OWNED)"),
        "comment" | "security" => {
            let on = (1..t.len().min(5)).find(|&i| t.is_word(i, "on"))?;
            match t.word(on + 1)?.to_ascii_lowercase().as_str() {
                "database" | "role" | "tablespace" => {
                    Some("a database, role or tablespace (a shared object)")
                }
                _ => None,
            }
        }
        "copy" => {
            // COPY t TO/FROM 'file' | PROGRAM '...'; STDIN and STDOUT stay in the session.
            let mut depth = 0usize;
            for i in 1..t.len() {
                if t.is_op(i, b'(') {
                    depth += 1;
                } else if t.is_op(i, b')') {
                    depth = depth.saturating_sub(1);
                } else if depth == 0 && (t.is_word(i, "to") || t.is_word(i, "from")) {
                    let target = i + 1;
                    if t.is_word(target, "program") {
                        return Some("a program on the server (COPY ... PROGRAM)");
                    }
                    if t.toks
                        .get(target)
                        .is_some_and(|tok| tok.kind == Kind::Literal)
                    {
                        return Some("a file on the server (COPY to or from a file)");
                    }
                    return None;
                }
            }
            None
        }
        "load" => Some("a shared library on the server (LOAD)"),
        _ => None,
    }
}

/// A file-level directive: a line comment `-- tend:no-transaction` (case-insensitive,
/// whitespace tolerant, anywhere in the file as a real comment, not inside a string, quoted
/// identifier, dollar quote or block comment) asks for statement-by-statement execution.
/// Text may follow the directive after whitespace, e.g. to say why.
pub fn has_no_transaction_directive(script: &str) -> bool {
    Lexer::new(script)
        .filter(|tok| tok.kind == Kind::LineComment)
        .any(|tok| is_directive(tok.text(script).get(2..).unwrap_or("")))
}

fn is_directive(comment: &str) -> bool {
    let rest = comment.trim_start_matches(is_space_char);
    let Some(rest) = strip_prefix_ignore_case(rest, "tend") else {
        return false;
    };
    let Some(rest) = rest.trim_start_matches(is_space_char).strip_prefix(':') else {
        return false;
    };
    let rest = rest.trim_start_matches(is_space_char);
    let Some(rest) = strip_prefix_ignore_case(rest, "no-transaction") else {
        return false;
    };
    rest.chars().next().is_none_or(is_space_char)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

// ---------------------------------------------------------------------------------------
// Classification helpers
// ---------------------------------------------------------------------------------------

/// `REINDEX [(options)] {INDEX|TABLE|SCHEMA|DATABASE|SYSTEM} [CONCURRENTLY] name`.
fn classify_reindex(t: &Tokens<'_>) -> bool {
    let mut concurrent = false;
    if t.is_op(1, b'(') {
        let end = t.skip_parens(1);
        for i in 2..end {
            if t.is_word(i, "concurrently") {
                // `CONCURRENTLY false` (or off / 0 / no) turns the option off.
                concurrent |= !t.is_false(i + 1);
            }
        }
    }
    let kind = t.skip_parens(1);
    // The server refuses these in a transaction block whatever the options.
    let whole_schema = ["schema", "system", "database"]
        .iter()
        .any(|w| t.is_word(kind, w));
    concurrent || whole_schema || t.is_word(kind + 1, "concurrently")
}

fn classify_alter(t: &Tokens<'_>) -> bool {
    if t.is_word(1, "system") {
        return true;
    }
    if t.is_word(1, "database") {
        // ALTER DATABASE name SET TABLESPACE x (not SET some_parameter ...).
        return t.is_word(3, "set") && t.is_word(4, "tablespace");
    }
    if t.is_word(1, "table") {
        // ALTER TABLE [IF EXISTS] [ONLY] name DETACH PARTITION pname CONCURRENTLY
        return (2..t.len()).any(|i| {
            t.is_word(i, "detach")
                && t.is_word(i + 1, "partition")
                && t.qualified_name(i + 2)
                    .is_some_and(|(_, next)| t.is_word(next, "concurrently"))
        });
    }
    if t.is_word(1, "subscription") {
        return alter_subscription_needs_no_transaction(t);
    }
    false
}

/// ALTER SUBSCRIPTION forms the server refuses in a transaction block (documented in
/// `ALTER SUBSCRIPTION`): REFRESH, and SET/ADD/DROP PUBLICATION with the `refresh` option on
/// (its default); also SET (failover / two_phase), which alter the remote slot.
fn alter_subscription_needs_no_transaction(t: &Tokens<'_>) -> bool {
    let i = 3; // ALTER SUBSCRIPTION name <action>
    if t.is_word(i, "refresh") {
        return true;
    }
    let publication_change =
        ["set", "add", "drop"].iter().any(|w| t.is_word(i, w)) && t.is_word(i + 1, "publication");
    if publication_change {
        let refresh_off = (i + 2..t.len()).any(|j| {
            t.is_word(j, "refresh") && {
                let value = if t.is_op(j + 1, b'=') { j + 2 } else { j + 1 };
                t.is_false(value)
            }
        });
        return !refresh_off;
    }
    if t.is_word(i, "set") && t.is_op(i + 1, b'(') {
        let end = t.skip_parens(i + 1);
        return (i + 2..end).any(|j| t.is_word(j, "failover") || t.is_word(j, "two_phase"));
    }
    false
}

/// The name after `CREATE [UNIQUE] INDEX CONCURRENTLY`, if given.
fn concurrent_index_name(t: &Tokens<'_>, mut i: usize) -> Option<String> {
    if t.is_word(i, "if") && t.is_word(i + 1, "not") && t.is_word(i + 2, "exists") {
        i += 3;
    }
    if t.is_word(i, "on") {
        return None;
    }
    let (name, next) = t.qualified_name(i)?;
    // Anything else (e.g. `U&"..."` names, which would need decoding) is not trusted.
    t.is_word(next, "on").then_some(name)
}

/// The significant tokens (no comments) of a statement, up to its terminating `;`.
struct Tokens<'a> {
    src: &'a str,
    toks: Vec<Token>,
}

impl<'a> Tokens<'a> {
    fn first_statement(src: &'a str) -> Self {
        let mut depth = 0usize;
        let mut toks = Vec::new();
        for tok in Lexer::new(src) {
            match tok.kind {
                Kind::LineComment | Kind::BlockComment => continue,
                Kind::Op if tok.is_op(src, b';') && depth == 0 => break,
                Kind::Op if tok.is_op(src, b'(') => depth += 1,
                Kind::Op if tok.is_op(src, b')') => depth = depth.saturating_sub(1),
                _ => {}
            }
            toks.push(tok);
        }
        Tokens { src, toks }
    }

    fn len(&self) -> usize {
        self.toks.len()
    }

    fn word(&self, i: usize) -> Option<&'a str> {
        let tok = self.toks.get(i)?;
        (tok.kind == Kind::Word).then(|| tok.text(self.src))
    }

    fn is_word(&self, i: usize, word: &str) -> bool {
        self.word(i).is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    fn is_op(&self, i: usize, op: u8) -> bool {
        self.toks
            .get(i)
            .is_some_and(|tok| tok.kind == Kind::Op && tok.is_op(self.src, op))
    }

    /// A boolean option value that means false.
    fn is_false(&self, i: usize) -> bool {
        let Some(tok) = self.toks.get(i) else {
            return false;
        };
        let text = tok.text(self.src);
        let value = match tok.kind {
            Kind::Word | Kind::Number => text,
            Kind::Literal => text
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .unwrap_or(""),
            _ => return false,
        };
        ["false", "off", "no", "0"]
            .iter()
            .any(|f| value.eq_ignore_ascii_case(f))
    }

    /// The index after a parenthesized group starting at `i`, or `i` if there is none.
    fn skip_parens(&self, i: usize) -> usize {
        if !self.is_op(i, b'(') {
            return i;
        }
        let mut depth = 0usize;
        for j in i..self.len() {
            if self.is_op(j, b'(') {
                depth += 1;
            } else if self.is_op(j, b')') {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
        }
        self.len()
    }

    /// An identifier as the catalog stores it.
    fn identifier(&self, i: usize) -> Option<String> {
        let tok = self.toks.get(i)?;
        let text = tok.text(self.src);
        let name = match tok.kind {
            Kind::Word => text.to_ascii_lowercase(),
            Kind::QuotedIdent if tok.terminated && text.starts_with('"') => {
                text.get(1..text.len() - 1)?.replace("\"\"", "\"")
            }
            _ => return None,
        };
        Some(truncate_identifier(name))
    }

    /// `a`, `"a"`, `a.b`, ...: the parts joined by `.`, and the index after the name.
    fn qualified_name(&self, mut i: usize) -> Option<(String, usize)> {
        let mut name = self.identifier(i)?;
        i += 1;
        while self.is_op(i, b'.') {
            name.push('.');
            name.push_str(&self.identifier(i + 1)?);
            i += 2;
        }
        Some((name, i))
    }
}

/// PostgreSQL keeps NAMEDATALEN - 1 = 63 bytes of an identifier, cut at a character.
fn truncate_identifier(mut name: String) -> String {
    const MAX: usize = 63;
    if name.len() > MAX {
        let mut cut = MAX;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

// ---------------------------------------------------------------------------------------
// Splitting state
// ---------------------------------------------------------------------------------------

/// What psql tracks within one statement to decide whether a `;` ends it.
#[derive(Default)]
struct StatementState {
    /// Byte offset of the first significant token.
    start: Option<usize>,
    /// psql does not end a statement inside parentheses (e.g. `CREATE RULE ... DO (a; b)`).
    paren_depth: usize,
    /// BEGIN ... END nesting inside CREATE FUNCTION/PROCEDURE (SQL-standard bodies).
    begin_depth: usize,
    /// Number of identifiers seen so far.
    ident_count: usize,
    /// psql's `identifiers[]`: the first letter of each of the first four identifiers if it
    /// is one of CREATE, OR, REPLACE, FUNCTION, PROCEDURE, else 0.
    idents: [u8; 4],
}

impl StatementState {
    fn ends_at_semicolon(&self) -> bool {
        self.paren_depth == 0 && self.begin_depth == 0
    }

    /// psql's heuristic for `CREATE [OR REPLACE] {FUNCTION|PROCEDURE} ... BEGIN ATOMIC ...
    /// END`: count BEGIN (and CASE inside it) against END at parenthesis depth 0.
    fn observe_word(&mut self, word: &str) {
        const TRACKED: [&str; 5] = ["create", "function", "procedure", "or", "replace"];
        if self.ident_count < self.idents.len()
            && TRACKED.iter().any(|t| word.eq_ignore_ascii_case(t))
        {
            self.idents[self.ident_count] = word.as_bytes()[0].to_ascii_lowercase();
        }
        self.ident_count = self.ident_count.saturating_add(1);
        let id = self.idents;
        let routine = id[0] == b'c'
            && (id[1] == b'f'
                || id[1] == b'p'
                || (id[1] == b'o' && id[2] == b'r' && (id[3] == b'f' || id[3] == b'p')));
        if !routine || self.paren_depth != 0 {
            return;
        }
        if word.eq_ignore_ascii_case("begin") {
            self.begin_depth += 1;
        } else if word.eq_ignore_ascii_case("case") {
            // CASE also ends with END; it only matters inside a BEGIN.
            if self.begin_depth >= 1 {
                self.begin_depth += 1;
            }
        } else if word.eq_ignore_ascii_case("end") {
            self.begin_depth = self.begin_depth.saturating_sub(1);
        }
    }
}

/// Line numbers of increasing offsets in one pass.
struct LineCounter<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(script: &'a str) -> Self {
        LineCounter {
            bytes: script.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.min(self.bytes.len());
        if offset >= self.pos {
            self.line += self.bytes[self.pos..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.pos = offset;
            self.line
        } else {
            line_of_byte(self.bytes, offset)
        }
    }
}

fn line_of_byte(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count()
}

// ---------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------

/// PostgreSQL's `space`: `[ \t\n\r\f\v]`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_space_char(c: char) -> bool {
    c.is_ascii() && is_space(c as u8)
}

fn trim_end_space(s: &str) -> &str {
    s.trim_end_matches(is_space_char)
}

/// `ident_start`: letters, `_` and any non-ASCII byte.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// `ident_cont`: identifiers may contain digits and `$` after the first character.
fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// `dolq_cont`: a dollar-quote tag is like an identifier but without `$`.
fn is_dolq_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

fn is_utf8_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unquoted identifier or keyword.
    Word,
    /// `"..."` (also `U&"..."`).
    QuotedIdent,
    /// A string constant: `'...'`, `E'...'`, `B'...'`, `X'...'`, `N'...'`, `U&'...'`,
    /// `$tag$...$tag$`.
    Literal,
    /// A number or a `$n` parameter (with any identifier characters glued to it).
    Number,
    /// `-- ...` up to, not including, the end of the line.
    LineComment,
    /// `/* ... */`, nested.
    BlockComment,
    /// Any other single byte: operators, punctuation, `;`, a stray `$`.
    Op,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    /// False for a quoted construct or block comment that runs to the end of the input.
    terminated: bool,
}

impl Token {
    fn text<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.start..self.end).unwrap_or("")
    }

    fn is_op(&self, src: &str, op: u8) -> bool {
        self.kind == Kind::Op && src.as_bytes().get(self.start) == Some(&op)
    }
}

/// A tokenizer that knows just enough of PostgreSQL's lexical rules to find where tokens
/// begin and end. Every token ends at an ASCII byte or at the end of the input, so token
/// boundaries are always char boundaries.
struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src: src.as_bytes(),
            pos: 0,
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let s = self.src;
        let mut i = self.pos;
        while i < s.len() && is_space(s[i]) {
            i += 1;
        }
        if i >= s.len() {
            self.pos = s.len();
            return None;
        }
        let b = s[i];
        let next = s.get(i + 1).copied();
        let after_next = s.get(i + 2).copied();
        let (kind, end, terminated) = match b {
            b'-' if next == Some(b'-') => {
                let end = s[i..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .map_or(s.len(), |p| i + p);
                (Kind::LineComment, end, true)
            }
            b'/' if next == Some(b'*') => block_comment(s, i),
            b'\'' => quoted_string(s, i + 1, false),
            b'"' => quoted_identifier(s, i + 1),
            // E'...' only as a token start: in `somee'x'` the E belongs to the identifier.
            b'e' | b'E' if next == Some(b'\'') => quoted_string(s, i + 2, true),
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == Some(b'\'') => {
                quoted_string(s, i + 2, false)
            }
            b'u' | b'U' if next == Some(b'&') && after_next == Some(b'\'') => {
                quoted_string(s, i + 3, false)
            }
            b'u' | b'U' if next == Some(b'&') && after_next == Some(b'"') => {
                quoted_identifier(s, i + 3)
            }
            b'$' => dollar(s, i),
            b'0'..=b'9' => {
                let mut j = i;
                while j < s.len() && (s[j].is_ascii_digit() || s[j] == b'_' || s[j] == b'.') {
                    j += 1;
                }
                // `1abc$` is one (junk) token for the server: glue identifier characters.
                if j < s.len() && is_ident_start(s[j]) {
                    j = skip_ident_cont(s, j);
                }
                (Kind::Number, j, true)
            }
            b if is_ident_start(b) => (Kind::Word, skip_ident_cont(s, i + 1), true),
            _ => (Kind::Op, i + 1, true),
        };
        let end = end.clamp(i + 1, s.len());
        self.pos = end;
        Some(Token {
            kind,
            start: i,
            end,
            terminated,
        })
    }
}

fn skip_ident_cont(s: &[u8], mut j: usize) -> usize {
    while j < s.len() && is_ident_cont(s[j]) {
        j += 1;
    }
    j
}

/// `/* ... */` with nesting, from the opening `/` at `i`.
fn block_comment(s: &[u8], i: usize) -> (Kind, usize, bool) {
    let mut depth = 1usize;
    let mut j = i + 2;
    while j < s.len() {
        match (s[j], s.get(j + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                j += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return (Kind::BlockComment, j, true);
                }
            }
            _ => j += 1,
        }
    }
    (Kind::BlockComment, s.len(), false)
}

/// A string constant whose body starts at `j`. `''` is a quote; with `escapes` (E-strings)
/// a backslash escapes the next byte. Strings separated only by whitespace containing a
/// newline (and line comments) are one constant, and the continuation keeps the first
/// part's rules, as in the server.
fn quoted_string(s: &[u8], mut j: usize, escapes: bool) -> (Kind, usize, bool) {
    loop {
        loop {
            match s.get(j) {
                None => return (Kind::Literal, s.len(), false),
                Some(b'\\') if escapes => j += 2,
                Some(b'\'') if s.get(j + 1) == Some(&b'\'') => j += 2,
                Some(b'\'') => {
                    j += 1;
                    break;
                }
                Some(_) => j += 1,
            }
        }
        match quote_continuation(s, j) {
            Some(quote) => j = quote + 1,
            None => return (Kind::Literal, j, true),
        }
    }
}

/// The position of the `'` that continues a string ending at `j`, if any.
fn quote_continuation(s: &[u8], mut j: usize) -> Option<usize> {
    let mut newline = false;
    loop {
        match s.get(j) {
            Some(b'\n' | b'\r') => {
                newline = true;
                j += 1;
            }
            Some(&c) if is_space(c) => j += 1,
            Some(b'-') if s.get(j + 1) == Some(&b'-') => {
                while j < s.len() && s[j] != b'\n' && s[j] != b'\r' {
                    j += 1;
                }
            }
            Some(b'\'') if newline => return Some(j),
            _ => return None,
        }
    }
}

/// `"..."` with `""` as a quote, body from `j`.
fn quoted_identifier(s: &[u8], mut j: usize) -> (Kind, usize, bool) {
    loop {
        match s.get(j) {
            None => return (Kind::QuotedIdent, s.len(), false),
            Some(b'"') if s.get(j + 1) == Some(&b'"') => j += 2,
            Some(b'"') => return (Kind::QuotedIdent, j + 1, true),
            Some(_) => j += 1,
        }
    }
}

/// A token starting with `$` (not inside an identifier): a `$n` parameter, a dollar quote
/// `$tag$...$tag$`, or a stray `$` / `$tag` that quotes nothing.
fn dollar(s: &[u8], i: usize) -> (Kind, usize, bool) {
    let mut j = i + 1;
    if s.get(j).is_some_and(u8::is_ascii_digit) {
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j < s.len() && is_ident_start(s[j]) {
            j = skip_ident_cont(s, j);
        }
        return (Kind::Number, j, true);
    }
    if j < s.len() && is_ident_start(s[j]) {
        j += 1;
        while j < s.len() && is_dolq_cont(s[j]) {
            j += 1;
        }
    }
    if s.get(j) != Some(&b'$') {
        return (Kind::Op, j, true);
    }
    let delimiter = &s[i..=j];
    let body = j + 1;
    // The first occurrence of the opening delimiter closes the quote; psql's lexer agrees,
    // since it backs up to retry at the last `$` of a non-matching `$other$`.
    match s[body..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
    {
        Some(p) => (Kind::Literal, body + p + delimiter.len(), true),
        None => (Kind::Literal, s.len(), false),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_that_reach_outside_the_database_are_named() {
        let outside = [
            "DROP DATABASE other",
            "drop database if exists \"other\"",
            "/* c */ CREATE DATABASE x",
            "ALTER DATABASE postgres SET work_mem = '1GB'",
            "CREATE ROLE r",
            "create user u password 'x'",
            "ALTER USER postgres PASSWORD 'x'",
            "DROP GROUP g",
            "CREATE TABLESPACE t LOCATION '/tmp'",
            "ALTER SYSTEM SET fsync = off",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
            "SET ROLE postgres",
            "SET LOCAL ROLE postgres",
            "set role = 'postgres'",
            "SET SESSION AUTHORIZATION postgres",
            "SET session_authorization TO postgres",
            "RESET ROLE",
            "RESET SESSION AUTHORIZATION",
            "GRANT postgres TO app",
            "GRANT pg_read_server_files TO CURRENT_USER WITH ADMIN OPTION",
            "REVOKE app FROM other",
            "REASSIGN OWNED BY a TO b",
            "DROP OWNED BY app",
            "COMMENT ON DATABASE postgres IS 'x'",
            "COMMENT ON ROLE app IS 'x'",
            "COPY t FROM PROGRAM 'rm -rf /'",
            "COPY (SELECT 1 FROM t) TO PROGRAM 'x'",
            "COPY t TO '/tmp/out'",
            "LOAD 'auto_explain'",
        ];
        for sql in outside {
            assert!(super::reaches_outside(sql).is_some(), "{sql}");
        }
        let inside = [
            "CREATE TABLE database (id int)",
            "CREATE TABLE t (role text, \"user\" text)",
            "ALTER TABLE t OWNER TO app",
            "CREATE USER MAPPING FOR app SERVER s",
            "GRANT SELECT ON t TO app",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC",
            "GRANT USAGE ON SCHEMA s TO role_x",
            "SET search_path = public",
            "SET LOCAL lock_timeout = '1s'",
            "SET SESSION statement_timeout = 0",
            "COMMENT ON TABLE t IS 'database role'",
            "COPY t FROM STDIN",
            "COPY (SELECT a FROM t) TO STDOUT",
            "CREATE EXTENSION IF NOT EXISTS \"pgcrypto\"",
            "DO $$ BEGIN EXECUTE 'DROP DATABASE ' || 'other'; END $$",
            "SELECT 'DROP DATABASE x'",
            "ALTER DEFAULT PRIVILEGES FOR ROLE app GRANT SELECT ON TABLES TO r",
        ];
        for sql in inside {
            assert_eq!(super::reaches_outside(sql), None, "{sql}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn sqls(script: &str) -> Vec<&str> {
        split(script).into_iter().map(|s| s.sql).collect()
    }

    fn check_invariants(script: &str) {
        let stmts = split(script);
        let mut last_end = 0;
        for s in &stmts {
            assert!(!s.sql.is_empty());
            assert!(s.offset >= last_end, "statements overlap");
            assert_eq!(&script[s.offset..s.offset + s.sql.len()], s.sql);
            assert_eq!(s.line, line_col(script, s.offset).0);
            assert_eq!(s.sql, trim_end_space(s.sql));
            last_end = s.offset + s.sql.len();
            let _ = classify(s.sql);
        }
    }

    // --- comments ---------------------------------------------------------------------

    #[test]
    fn line_comments_hide_semicolons() {
        assert_eq!(
            sqls("select 1 -- not; the end\n, 2;\nselect 3"),
            ["select 1 -- not; the end\n, 2", "select 3"]
        );
        // `--` inside an operator still starts a comment.
        assert_eq!(sqls("select 1+--x;\n2;"), ["select 1+--x;\n2"]);
        // A carriage return also ends a line comment.
        assert_eq!(
            sqls("select 1 --c\r;select 2"),
            ["select 1 --c", "select 2"]
        );
    }

    #[test]
    fn block_comments_nest_and_hide_semicolons() {
        assert_eq!(
            sqls("select /* a; /* b; */ c; */ 1; select 2"),
            ["select /* a; /* b; */ c; */ 1", "select 2"]
        );
        assert_eq!(
            sqls("select 1 /**/; select /***/ 2"),
            ["select 1 /**/", "select /***/ 2"]
        );
    }

    #[test]
    fn leading_comments_are_excluded_inner_kept() {
        let script = "-- head\n/* block; */\n  select /* in */ 1 -- tail\n;";
        let stmts = split(script);
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].sql, "select /* in */ 1 -- tail");
        assert_eq!(stmts[0].line, 3);
        assert_eq!(stmts[0].offset, script.find("select").unwrap());
    }

    #[test]
    fn empty_statements_are_dropped() {
        assert!(split("").is_empty());
        assert!(split(";;  ; -- c;\n /* x; */ ;\n\t").is_empty());
        assert_eq!(sqls(";;select 1;;;select 2;;"), ["select 1", "select 2"]);
        assert_eq!(sqls("select 1; -- trailing"), ["select 1"]);
        assert_eq!(sqls("select 1; /* trailing */ \n"), ["select 1"]);
    }

    #[test]
    fn final_statement_without_semicolon() {
        assert_eq!(sqls("select 1;\nselect 2\n\n"), ["select 1", "select 2"]);
        assert_eq!(sqls("select 1;\r\nselect 2\r\n"), ["select 1", "select 2"]);
    }

    // --- strings and identifiers -----------------------------------------------------

    #[test]
    fn single_quoted_strings() {
        assert_eq!(
            sqls("select 'a;b''c;'; select 2"),
            ["select 'a;b''c;'", "select 2"]
        );
        // standard_conforming_strings: a backslash is an ordinary character.
        assert_eq!(sqls(r"select 'a\'; select 2"), [r"select 'a\'", "select 2"]);
    }

    #[test]
    fn e_strings_escape_with_backslash() {
        assert_eq!(
            sqls(r"select E'it\'s; fine', e'\\'; select 2"),
            [r"select E'it\'s; fine', e'\\'", "select 2"]
        );
        // The E must start the token: here it ends an identifier and the string is plain.
        assert_eq!(
            sqls(r"select somee'a\'; select 1"),
            [r"select somee'a\'", "select 1"]
        );
        // A continuation on the next line keeps the E-string rules.
        assert_eq!(
            sqls("select E'a'\n'b\\'; c';select 2"),
            ["select E'a'\n'b\\'; c'", "select 2"]
        );
    }

    #[test]
    fn prefixed_strings_use_plain_rules() {
        assert_eq!(
            sqls(r"select U&'d\0061t\'; select B'01', X'1F', N'x;'; select 3"),
            [
                r"select U&'d\0061t\'",
                "select B'01', X'1F', N'x;'",
                "select 3"
            ]
        );
        assert_eq!(
            sqls(r#"select U&"a;b"; select 2"#),
            [r#"select U&"a;b""#, "select 2"]
        );
    }

    #[test]
    fn quoted_identifiers() {
        assert_eq!(
            sqls(r#"select "a;""b"" ;c" from t; select 2"#),
            [r#"select "a;""b"" ;c" from t"#, "select 2"]
        );
        // A quote inside an identifier starts nothing.
        assert_eq!(
            sqls(r#"select "it's"; select 2"#),
            [r#"select "it's""#, "select 2"]
        );
    }

    // --- dollar quotes ----------------------------------------------------------------

    #[test]
    fn dollar_quotes() {
        assert_eq!(
            sqls("select $$a;'b$$; select 2"),
            ["select $$a;'b$$", "select 2"]
        );
        assert_eq!(
            sqls("select $t$ $$; $u$ ;$t$; select 2"),
            ["select $t$ $$; $u$ ;$t$", "select 2"]
        );
        assert_eq!(
            sqls("select $_1$;$_1$; select 2"),
            ["select $_1$;$_1$", "select 2"]
        );
        // Tags are case-sensitive.
        assert_eq!(
            sqls("select $a$;$A$;$a$;select 2"),
            ["select $a$;$A$;$a$", "select 2"]
        );
    }

    #[test]
    fn positional_parameters_are_not_dollar_quotes() {
        assert_eq!(sqls("select $1; select $2"), ["select $1", "select $2"]);
        assert_eq!(
            sqls("select $1$$;$$; select 2"),
            ["select $1$$;$$", "select 2"]
        );
    }

    #[test]
    fn dollar_inside_identifier_is_not_a_quote() {
        assert_eq!(sqls("select a$b$c; select 2"), ["select a$b$c", "select 2"]);
        assert_eq!(sqls("select x$$; select 1;"), ["select x$$", "select 1"]);
        // But after a number it is.
        assert_eq!(
            sqls("select 1 $$;$$; select 2"),
            ["select 1 $$;$$", "select 2"]
        );
        // A `$tag` without a closing `$` quotes nothing.
        assert_eq!(sqls("select $abc; select 2"), ["select $abc", "select 2"]);
    }

    #[test]
    fn plpgsql_functions_with_dollar_bodies() {
        let script = r#"
CREATE OR REPLACE FUNCTION touch() RETURNS trigger AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $body$
DECLARE
  q text := $x$ SELECT 1; $$ $x$;
BEGIN
  EXECUTE q;
  PERFORM 'VACUUM; ';
END;
$body$;
SELECT 1;
"#;
        let stmts = split(script);
        assert_eq!(stmts.len(), 3);
        assert!(
            stmts[0]
                .sql
                .starts_with("CREATE OR REPLACE FUNCTION touch()")
        );
        assert!(stmts[0].sql.ends_with("$$ LANGUAGE plpgsql"));
        assert_eq!(stmts[0].line, 2);
        assert!(stmts[1].sql.starts_with("CREATE FUNCTION g()"));
        assert!(stmts[1].sql.ends_with("END;\n$body$"));
        assert_eq!(stmts[1].line, 9);
        assert_eq!(stmts[2].sql, "SELECT 1");
        assert_eq!(stmts[2].line, 17);
        assert_eq!(classify(stmts[1].sql), StatementTraits::default());
    }

    #[test]
    fn do_blocks() {
        let script = "DO $$\nBEGIN\n  PERFORM 1;\n  RAISE NOTICE 'x;';\nEND\n$$;\nDO LANGUAGE plpgsql $do$ BEGIN NULL; END $do$;";
        assert_eq!(
            sqls(script),
            [
                "DO $$\nBEGIN\n  PERFORM 1;\n  RAISE NOTICE 'x;';\nEND\n$$",
                "DO LANGUAGE plpgsql $do$ BEGIN NULL; END $do$"
            ]
        );
    }

    // --- BEGIN ATOMIC and parentheses -----------------------------------------------

    #[test]
    fn sql_standard_function_bodies() {
        let script = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;";
        let stmts = split(script);
        assert_eq!(stmts.len(), 2);
        assert!(stmts[0].sql.ends_with("SELECT 2;\nEND"));
        assert_eq!(stmts[1].sql, "SELECT 3");
        assert_eq!(stmts[1].line, 6);

        assert_eq!(
            sqls(
                "create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end; select 1"
            ),
            [
                "create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end",
                "select 1"
            ]
        );
        // Outside CREATE FUNCTION/PROCEDURE, BEGIN and END are ordinary statements.
        assert_eq!(sqls("BEGIN; SELECT 1; END;"), ["BEGIN", "SELECT 1", "END"]);
        assert_eq!(
            sqls("CREATE TABLE t (a int); BEGIN; COMMIT"),
            ["CREATE TABLE t (a int)", "BEGIN", "COMMIT"]
        );
    }

    #[test]
    fn semicolons_inside_parentheses_do_not_split() {
        assert_eq!(
            sqls(
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1;"
            ),
            [
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))",
                "SELECT 1"
            ]
        );
        // A stray `)` does not make the depth negative.
        assert_eq!(sqls("select 1); select 2"), ["select 1)", "select 2"]);
    }

    // --- unterminated constructs -----------------------------------------------------

    #[test]
    fn unterminated_constructs_take_the_rest() {
        assert_eq!(
            sqls("select 1; select 'abc; select 2;"),
            ["select 1", "select 'abc; select 2;"]
        );
        assert_eq!(sqls("select 1; select E'\\"), ["select 1", "select E'\\"]);
        assert_eq!(
            sqls("select 1; select \"abc; x;"),
            ["select 1", "select \"abc; x;"]
        );
        assert_eq!(
            sqls("select 1; select $q$ abc; x;"),
            ["select 1", "select $q$ abc; x;"]
        );
        assert_eq!(
            sqls("select 1; select /* a /* b */ ; x;"),
            ["select 1", "select /* a /* b */ ; x;"]
        );
        // An unterminated comment is sent too, so that the server reports it.
        assert_eq!(
            sqls("select 1; /* oops\n select 2;"),
            ["select 1", "/* oops\n select 2;"]
        );
    }

    // --- realistic scripts ------------------------------------------------------------

    const PRISMA: &str = r#"-- CreateEnum
CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL DEFAULT 'it''s; fine',
    "authorId" INTEGER NOT NULL,

    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- AddForeignKey
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
"#;

    #[test]
    fn prisma_migration() {
        let stmts = split(PRISMA);
        let heads: Vec<(&str, usize)> = stmts
            .iter()
            .map(|s| (s.sql.lines().next().unwrap(), s.line))
            .collect();
        assert_eq!(
            heads,
            [
                ("CREATE TYPE \"Role\" AS ENUM ('USER', 'ADMIN')", 2),
                ("CREATE TABLE \"User\" (", 5),
                ("CREATE TABLE \"Post\" (", 15),
                (
                    "CREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\")",
                    24
                ),
                (
                    "ALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY (\"authorId\") REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE",
                    27
                ),
            ]
        );
        assert!(stmts[1].sql.ends_with("PRIMARY KEY (\"id\")\n)"));
        for s in &stmts {
            assert_eq!(classify(s.sql), StatementTraits::default(), "{}", s.sql);
        }
        assert!(!has_no_transaction_directive(PRISMA));
    }

    #[test]
    fn explicit_transaction_file() {
        let script =
            "BEGIN;\nCREATE TABLE t (id int);\nSAVEPOINT s;\nROLLBACK TO SAVEPOINT s;\nCOMMIT;\n";
        let stmts = split(script);
        let got: Vec<(&str, usize, bool)> = stmts
            .iter()
            .map(|s| (s.sql, s.line, classify(s.sql).transaction_control))
            .collect();
        assert_eq!(
            got,
            [
                ("BEGIN", 1, true),
                ("CREATE TABLE t (id int)", 2, false),
                ("SAVEPOINT s", 3, false),
                ("ROLLBACK TO SAVEPOINT s", 4, false),
                ("COMMIT", 5, true),
            ]
        );
    }

    #[test]
    fn line_numbers_after_multiline_comment() {
        let script =
            "select 1;\n/*\n * a long\n * comment; with ' quote\n */\n\n   select 2;  select 3;";
        let stmts = split(script);
        assert_eq!(
            stmts.iter().map(|s| (s.sql, s.line)).collect::<Vec<_>>(),
            [("select 1", 1), ("select 2", 7), ("select 3", 7)]
        );
        assert_eq!(line_col(script, stmts[1].offset), (7, 4));
        assert_eq!(line_col(script, stmts[2].offset), (7, 15));
    }

    #[test]
    fn non_ascii_text() {
        let script = "select 'é;' as ñ$$; select \"ü;\" ; select ñ;";
        assert_eq!(
            sqls(script),
            ["select 'é;' as ñ$$", "select \"ü;\"", "select ñ"]
        );
        check_invariants(script);
    }

    // --- positions --------------------------------------------------------------------

    #[test]
    fn line_col_counts_characters() {
        let s = "ab\nçd\ne";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 2), (1, 3));
        assert_eq!(line_col(s, 3), (2, 1));
        assert_eq!(line_col(s, 5), (2, 2)); // after the two bytes of ç
        assert_eq!(line_col(s, 4), (2, 2)); // inside ç: counts as ç
        assert_eq!(line_col(s, 7), (3, 1));
        assert_eq!(line_col(s, 100), (3, 2));
    }

    #[test]
    fn char_positions() {
        let s = "é\nselect ü\nfrom";
        assert_eq!(line_of_char_position(s, 0), 1);
        assert_eq!(line_of_char_position(s, 1), 1);
        assert_eq!(line_of_char_position(s, 2), 1); // the newline itself
        assert_eq!(line_of_char_position(s, 3), 2);
        assert_eq!(line_of_char_position(s, 11), 2); // the second newline
        assert_eq!(line_of_char_position(s, 12), 3);
        assert_eq!(line_of_char_position(s, 1000), 3);

        let script = "-- x\nselect 1;\n\nselect\n  nope;";
        let stmt = &split(script)[1];
        assert_eq!(stmt.line, 4);
        // The server reports position 10 ("nope") for the statement sent alone.
        assert_eq!(stmt.line_of_char_position(10), 5);
    }

    // --- directive --------------------------------------------------------------------

    #[test]
    fn no_transaction_directive() {
        for yes in [
            "-- tend:no-transaction\nCREATE INDEX CONCURRENTLY i ON t(a);",
            "select 1;\n--TEND : No-Transaction   \n",
            "--\ttend:no-transaction because of the index",
            "select 1 -- tend:no-transaction",
        ] {
            assert!(has_no_transaction_directive(yes), "{yes:?}");
        }
        for no in [
            "select '-- tend:no-transaction'",
            "select $$\n-- tend:no-transaction\n$$",
            "/* -- tend:no-transaction */",
            "select \"-- tend:no-transaction\"",
            "-- tend:no-transactional",
            "-- tend no-transaction",
            "-- not tend:no-transaction",
            "",
        ] {
            assert!(!has_no_transaction_directive(no), "{no:?}");
        }
    }

    // --- classify ---------------------------------------------------------------------

    fn no_txn(sql: &str) -> bool {
        classify(sql).no_transaction
    }

    fn txn_control(sql: &str) -> bool {
        classify(sql).transaction_control
    }

    #[test]
    fn classify_concurrent_indexes() {
        let t = classify("-- comment\nCREATE INDEX CONCURRENTLY \"My Idx\" ON t(a)");
        assert!(t.no_transaction);
        assert!(!t.transaction_control);
        assert_eq!(t.concurrent_index.as_deref(), Some("My Idx"));

        let t = classify("create unique index concurrently if not exists i on t(a)");
        assert!(t.no_transaction);
        assert_eq!(t.concurrent_index.as_deref(), Some("i"));

        let t = classify("CREATE INDEX CONCURRENTLY Idx_A ON t(a)");
        assert_eq!(t.concurrent_index.as_deref(), Some("idx_a"));

        let t = classify("CREATE INDEX CONCURRENTLY \"Public\".\"a\"\"b\" ON t(a)");
        assert_eq!(t.concurrent_index.as_deref(), Some("Public.a\"b"));

        let t = classify("CREATE INDEX CONCURRENTLY public.\"X\" ON t(a)");
        assert_eq!(t.concurrent_index.as_deref(), Some("public.X"));

        let t = classify("CREATE INDEX CONCURRENTLY ON t(a)");
        assert!(t.no_transaction);
        assert_eq!(t.concurrent_index, None);

        let long = "a".repeat(70);
        let t = classify(&format!("CREATE INDEX CONCURRENTLY {long} ON t(a)"));
        assert_eq!(t.concurrent_index, Some("a".repeat(63)));

        assert_eq!(
            classify("CREATE INDEX idx ON t (concurrently)"),
            StatementTraits::default()
        );
        assert_eq!(
            classify("CREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\")"),
            StatementTraits::default()
        );
        assert!(no_txn("DROP INDEX CONCURRENTLY IF EXISTS i"));
        assert!(!no_txn("DROP INDEX i"));
        assert_eq!(classify("DROP INDEX CONCURRENTLY i").concurrent_index, None);
    }

    #[test]
    fn classify_no_transaction_statements() {
        for sql in [
            "VACUUM",
            "VACUUM (ANALYZE) t",
            "vacuum full verbose t",
            "REINDEX TABLE CONCURRENTLY t",
            "REINDEX (VERBOSE) INDEX CONCURRENTLY x",
            "REINDEX (CONCURRENTLY) TABLE t",
            "REINDEX (CONCURRENTLY true, VERBOSE) TABLE t",
            "REINDEX DATABASE d",
            "REINDEX SCHEMA s",
            "REINDEX SYSTEM",
            "ALTER SYSTEM SET work_mem = '64MB'",
            "CREATE DATABASE d",
            "DROP DATABASE IF EXISTS d",
            "ALTER DATABASE d SET TABLESPACE fast",
            "ALTER DATABASE \"D\" SET TABLESPACE fast",
            "CREATE TABLESPACE fast LOCATION '/x'",
            "DROP TABLESPACE fast",
            "ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY",
            "ALTER TABLE IF EXISTS ONLY s.m DETACH PARTITION s.\"M 2020\" CONCURRENTLY",
            "CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p",
            "DROP SUBSCRIPTION s",
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "ALTER SUBSCRIPTION s SET PUBLICATION p",
            "ALTER SUBSCRIPTION s ADD PUBLICATION p WITH (copy_data = false)",
            "CLUSTER",
            "CLUSTER VERBOSE",
            "cluster (verbose)",
            "DISCARD ALL",
            "COMMIT PREPARED 'x'",
            "ROLLBACK PREPARED 'x'",
        ] {
            let t = classify(sql);
            assert!(t.no_transaction, "{sql}");
            assert!(!t.transaction_control, "{sql}");
        }
    }

    #[test]
    fn classify_ordinary_statements() {
        for sql in [
            "",
            "-- only a comment",
            "SELECT 'VACUUM'",
            "ANALYZE t",
            "REINDEX TABLE t",
            "REINDEX (VERBOSE) INDEX x",
            "REINDEX (CONCURRENTLY false) TABLE t",
            "ALTER DATABASE d SET search_path = a",
            "ALTER DATABASE d SET default_tablespace = fast",
            "ALTER TABLE m DETACH PARTITION m_2020",
            "ALTER TABLE m DETACH PARTITION m_2020 FINALIZE",
            "ALTER TABLE t ADD COLUMN concurrently int",
            "ALTER SUBSCRIPTION s ENABLE",
            "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
            "ALTER SUBSCRIPTION s SET (slot_name = NONE)",
            "CLUSTER t",
            "CLUSTER VERBOSE t USING i",
            "DISCARD PLANS",
            "PREPARE q AS SELECT 1",
            "SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "ROLLBACK TO a",
            "ROLLBACK WORK TO SAVEPOINT a",
            "CREATE TABLE vacuum (a int)",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY v",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN VACUUM; COMMIT; END $$",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS 'begin perform ''VACUUM''; end'",
            "DO $$ BEGIN EXECUTE 'VACUUM'; END $$",
            "\"VACUUM\"",
        ] {
            assert_eq!(classify(sql), StatementTraits::default(), "{sql}");
        }
    }

    #[test]
    fn classify_transaction_control() {
        for sql in [
            "BEGIN",
            "begin isolation level serializable",
            "START TRANSACTION READ ONLY",
            "COMMIT",
            "COMMIT AND CHAIN",
            "END",
            "end transaction",
            "ROLLBACK",
            "ROLLBACK WORK",
            "ABORT",
            "PREPARE TRANSACTION 'x'",
            "/* c */ COMMIT",
        ] {
            let t = classify(sql);
            assert!(t.transaction_control, "{sql}");
            assert!(!t.no_transaction, "{sql}");
        }
        assert!(!txn_control("START something"));
        assert!(!txn_control("SELECT 1; COMMIT"));
        assert!(!txn_control("COMMIT PREPARED 'x'"));
    }

    #[test]
    fn classify_uses_only_the_first_statement() {
        assert!(!no_txn("SELECT 1; VACUUM"));
        assert!(no_txn("VACUUM; SELECT 1"));
    }

    // --- properties -------------------------------------------------------------------

    const WORDS: &[&str] = &[
        "select", "from", "t", "e", "u", "x", "n", "b", "a$b$c", "col$", "$1", "$2x", "42", "1.5",
        "+", "=", "::int", "(a, b)", "(x; y)", "begin", "end",
    ];

    fn pieces(options: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(options), 0..max).prop_map(|v| v.concat())
    }

    fn dollar_quoted() -> impl Strategy<Value = String> {
        let tag = prop_oneof![Just(String::new()), "[a-z_][a-z0-9_]{0,3}"];
        let body = pieces(
            &[
                "a", ";", "$", "'", "\"", "$x$", "$$", "--", "/*", " ", "\n", "$1", "\\",
            ],
            8,
        );
        (tag, body)
            .prop_map(|(tag, body)| (format!("${tag}$"), body))
            // The first occurrence of the delimiter must be the closing one.
            .prop_filter("body contains its delimiter", |(d, body)| {
                format!("{body}{d}").find(d.as_str()) == Some(body.len())
            })
            .prop_map(|(d, body)| format!("{d}{body}{d}"))
    }

    fn block_comment_strategy() -> impl Strategy<Value = String> {
        const INSIDE: &[&str] = &["a", ";", "'", "\"", "$$", "--", " ", "\n", "* "];
        let leaf = pieces(INSIDE, 5).prop_map(|c| format!("/*{c}*/"));
        leaf.prop_recursive(2, 8, 3, |inner| {
            (pieces(INSIDE, 3), inner, pieces(INSIDE, 3))
                .prop_map(|(a, c, b)| format!("/*{a}{c}{b}*/"))
        })
    }

    fn fragment() -> impl Strategy<Value = String> {
        let plain = pieces(&["a", ";", "''", "$", "\"", "--", "/*", "\\", " ", "\n"], 6)
            .prop_map(|c| format!("'{c}'"));
        // `::text` keeps a following plain string from continuing the E-string.
        let e_string = (
            prop::sample::select(&["E", "e"][..]),
            pieces(&["a", ";", "\\'", "''", "\\\\", "$", "\""], 6),
        )
            .prop_map(|(e, c)| format!("{e}'{c}'::text"));
        let ident =
            pieces(&["a", ";", "\"\"", "'", " ", "$$", "--"], 6).prop_map(|c| format!("\"{c}\""));
        let line_comment = pieces(&["a", ";", "'", "\"", "$$", "/*", "*/", " ", "--"], 6)
            .prop_map(|c| format!("--{c}\n"));
        prop_oneof![
            3 => prop::sample::select(WORDS).prop_map(String::from),
            1 => plain,
            1 => e_string,
            1 => ident,
            1 => dollar_quoted(),
            1 => line_comment,
            1 => block_comment_strategy(),
        ]
    }

    fn statement() -> impl Strategy<Value = String> {
        (
            prop::sample::select(WORDS),
            prop::collection::vec(
                (
                    prop::sample::select(&[" ", "\n", "\t", "  "][..]),
                    fragment(),
                ),
                0..6,
            ),
        )
            .prop_map(|(first, rest)| {
                let mut s = first.to_string();
                for (sep, frag) in rest {
                    s.push_str(sep);
                    s.push_str(&frag);
                }
                s
            })
    }

    fn script() -> impl Strategy<Value = (String, Vec<(String, usize)>)> {
        (
            prop::sample::select(
                &[
                    "",
                    "\n\n",
                    "-- header;\n",
                    "/* h; */ ",
                    "-- tend:no-transaction\n",
                ][..],
            ),
            prop::collection::vec(statement(), 1..8),
            prop::collection::vec(
                prop::sample::select(
                    &[
                        ";\n",
                        ";",
                        "; ",
                        ";\n\n-- between; 'x'\n",
                        ";\n/* c; /* n; */ */\n",
                        ";\n;\n",
                        ";;",
                    ][..],
                ),
                8,
            ),
            prop::sample::select(&["", ";", ";\n", ";\n-- trailing\n", "; /* t */"][..]),
        )
            .prop_map(|(prefix, stmts, seps, end)| {
                let mut script = prefix.to_string();
                let mut expected = Vec::new();
                for (i, stmt) in stmts.iter().enumerate() {
                    expected.push((trim_end_space(stmt).to_string(), script.len()));
                    script.push_str(stmt);
                    script.push_str(if i + 1 == stmts.len() { end } else { seps[i] });
                }
                (script, expected)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn split_recovers_generated_statements((script, expected) in script()) {
            let stmts = split(&script);
            let got: Vec<(String, usize)> =
                stmts.iter().map(|s| (s.sql.to_string(), s.offset)).collect();
            prop_assert_eq!(got, expected);
            for s in &stmts {
                prop_assert_eq!(&script[s.offset..s.offset + s.sql.len()], s.sql);
                prop_assert_eq!(s.line, 1 + script[..s.offset].matches('\n').count());
            }
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let script = String::from_utf8_lossy(&bytes);
            let mut last_end = 0;
            for statement in split(&script) {
                prop_assert!(statement.offset >= last_end);
                prop_assert_eq!(
                    &script[statement.offset..statement.offset + statement.sql.len()],
                    statement.sql
                );
                last_end = statement.offset + statement.sql.len();
                let _ = classify(statement.sql);
                let _ = statement.line_of_char_position(statement.sql.chars().count() + 1);
            }
            let _ = has_no_transaction_directive(&script);
            let _ = line_col(&script, script.len() / 2);
        }

        #[test]
        fn never_panics_on_any_text(script in "\\PC{0,200}") {
            check_invariants(&script);
            let _ = classify(&script);
            let _ = has_no_transaction_directive(&script);
            let _ = line_col(&script, script.len() / 2);
            let _ = line_of_char_position(&script, script.len() / 2);
        }

        #[test]
        fn never_panics_on_edge_alphabet(script in "[$;'\"/*\\\\\\-a-z() \n]{0,80}") {
            check_invariants(&script);
            let _ = classify(&script);
            let _ = has_no_transaction_directive(&script);
        }

        #[test]
        fn never_panics_on_keyword_soup(
            words in prop::collection::vec(
                prop::sample::select(&[
                    "create", "or", "replace", "function", "procedure", "begin", "atomic",
                    "case", "end", "index", "concurrently", "unique", "if", "not", "exists",
                    "on", "reindex", "alter", "table", "detach", "partition", "(", ")", ";",
                    "\"q\"", ".", "'s'", "$$", "--", "\n", "/*", "*/", "é",
                ][..]),
                0..40,
            )
        ) {
            let script = words.join(" ");
            check_invariants(&script);
            let _ = classify(&script);
        }
    }
}
