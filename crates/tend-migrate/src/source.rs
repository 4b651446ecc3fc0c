//! Migrations on disk, in either layout:
//!
//! - Prisma: `prisma/migrations/<name>/migration.sql` (and tend's optional `down.sql` beside
//!   it), applied in lexicographic order of directory name;
//! - tend: flat files `migrations/YYYYMMDD_HHMMSS_name.sql`, with an optional
//!   `YYYYMMDD_HHMMSS_name.down.sql`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Which layout, and so which history table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Prisma,
    Tend,
}

impl Format {
    /// The history table this layout keeps.
    pub fn history_table(self) -> &'static str {
        match self {
            Format::Prisma => "_prisma_migrations",
            Format::Tend => "_tend_migrations",
        }
    }

    /// The default directory, relative to the project root.
    pub fn default_dir(self) -> &'static str {
        match self {
            Format::Prisma => "prisma/migrations",
            Format::Tend => "migrations",
        }
    }

    /// Picks the layout of a project: Prisma when `prisma/migrations` or
    /// `prisma/schema.prisma` exists, tend's otherwise.
    pub fn detect(project_root: &Path) -> Format {
        if project_root.join("prisma/migrations").is_dir()
            || project_root.join("prisma/schema.prisma").is_file()
        {
            Format::Prisma
        } else {
            Format::Tend
        }
    }
}

/// One migration file (and its optional down file).
#[derive(Debug, Clone)]
pub struct Migration {
    /// The name the history table records: the directory name (Prisma) or the file name
    /// without `.sql` (tend).
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    /// Lowercase hex SHA-256 of the file's bytes, as Prisma computes it.
    pub checksum: String,
    pub down: Option<DownScript>,
}

#[derive(Debug, Clone)]
pub struct DownScript {
    pub path: PathBuf,
    pub sql: String,
}

impl Migration {
    /// Does `recorded` (from the history table) match this file? Prisma compares the
    /// checksum of the file as it is, and also with its line endings normalised, so that a
    /// checkout with other line endings is not a modification.
    pub fn matches_checksum(&self, recorded: &str) -> bool {
        let recorded = recorded.trim().to_ascii_lowercase();
        if recorded == self.checksum {
            return true;
        }
        let lf = self.sql.replace("\r\n", "\n");
        if checksum(lf.as_bytes()) == recorded {
            return true;
        }
        checksum(lf.replace('\n', "\r\n").as_bytes()) == recorded
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the migrations directory {} does not exist; create it, or set migrate.dir in tend.toml", .0.display())]
    MissingDir(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 text; save it as UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("{} does not follow tend's naming (YYYYMMDD_HHMMSS_name.sql); rename it, or create migrations with `tend migrate new NAME`", .0.display())]
    BadName(PathBuf),
    #[error("the migration directory {} has no migration.sql", .0.display())]
    MissingScript(PathBuf),
}

/// Lowercase hex SHA-256.
pub fn checksum(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn read(path: &Path) -> Result<String, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8(path.to_path_buf()))
}

/// Reads every migration in `dir`, in the order they apply.
pub fn load(dir: &Path, format: Format) -> Result<Vec<Migration>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::MissingDir(dir.to_path_buf()));
    }
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        names.push((name, entry.path()));
    }
    names.sort();
    let mut migrations = Vec::new();
    match format {
        Format::Prisma => {
            for (name, path) in names {
                if !path.is_dir() {
                    // migration_lock.toml and stray files are not migrations.
                    continue;
                }
                let script = path.join("migration.sql");
                if !script.is_file() {
                    return Err(SourceError::MissingScript(path));
                }
                let sql = read(&script)?;
                let down_path = path.join("down.sql");
                let down = if down_path.is_file() {
                    Some(DownScript {
                        sql: read(&down_path)?,
                        path: down_path,
                    })
                } else {
                    None
                };
                migrations.push(Migration {
                    checksum: checksum(sql.as_bytes()),
                    name,
                    path: script,
                    sql,
                    down,
                });
            }
        }
        Format::Tend => {
            for (file, path) in &names {
                let Some(stem) = file.strip_suffix(".sql") else {
                    continue;
                };
                if stem.ends_with(".down") || !path.is_file() {
                    continue;
                }
                if !is_tend_name(stem) {
                    return Err(SourceError::BadName(path.clone()));
                }
                let sql = read(path)?;
                let down_path = dir.join(format!("{stem}.down.sql"));
                let down = if down_path.is_file() {
                    Some(DownScript {
                        sql: read(&down_path)?,
                        path: down_path,
                    })
                } else {
                    None
                };
                migrations.push(Migration {
                    checksum: checksum(sql.as_bytes()),
                    name: stem.to_string(),
                    path: path.clone(),
                    sql,
                    down,
                });
            }
        }
    }
    Ok(migrations)
}

/// `YYYYMMDD_HHMMSS_name`.
fn is_tend_name(stem: &str) -> bool {
    let bytes = stem.as_bytes();
    bytes.len() > 16
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'_'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'_'
}

/// Turns a user's name for a migration into a safe file-name part: lowercase ASCII words
/// joined by underscores.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let trimmed = out.trim_end_matches('_');
    trimmed.chars().take(80).collect()
}

/// Creates a new, empty migration named with `timestamp` (`YYYYMMDDHHMMSS` digits, UTC) and
/// returns the path of its script.
pub fn create(
    dir: &Path,
    format: Format,
    timestamp: &str,
    name: &str,
) -> Result<PathBuf, SourceError> {
    let name = sanitize_name(name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Read { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let header = "-- Write the migration's SQL here. It runs in one transaction unless it holds a\n\
                  -- statement that cannot (CREATE INDEX CONCURRENTLY, VACUUM, ...) or the line\n\
                  -- `-- tend:no-transaction`.\n";
    match format {
        Format::Prisma => {
            let folder = dir.join(format!("{timestamp}_{name}"));
            std::fs::create_dir_all(&folder).map_err(io(&folder))?;
            let lock = dir.join("migration_lock.toml");
            if !lock.exists() {
                std::fs::write(
                    &lock,
                    "# Please do not edit this file manually\n# It should be added in your version-control system (e.g., Git)\nprovider = \"postgresql\"\n",
                )
                .map_err(io(&lock))?;
            }
            let script = folder.join("migration.sql");
            std::fs::write(&script, header).map_err(io(&script))?;
            Ok(script)
        }
        Format::Tend => {
            let (date, time) = timestamp.split_at(8.min(timestamp.len()));
            let script = dir.join(format!("{date}_{time}_{name}.sql"));
            std::fs::write(&script, header).map_err(io(&script))?;
            Ok(script)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_prisma_compatible() {
        // sha256("") and of a short text, as `sha256sum` prints them.
        assert_eq!(
            checksum(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let m = Migration {
            name: "x".into(),
            path: "x".into(),
            sql: "SELECT 1;\r\n".into(),
            checksum: checksum(b"SELECT 1;\r\n"),
            down: None,
        };
        assert!(m.matches_checksum(&checksum(b"SELECT 1;\n")));
        assert!(m.matches_checksum(&m.checksum.to_uppercase()));
        assert!(!m.matches_checksum(&checksum(b"SELECT 2;\n")));
    }

    #[test]
    fn loads_both_layouts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prisma");
        for name in ["20240102000000_b", "20240101000000_a"] {
            std::fs::create_dir_all(p.join(name)).unwrap();
            std::fs::write(p.join(name).join("migration.sql"), format!("-- {name}\n")).unwrap();
        }
        std::fs::write(p.join("20240101000000_a/down.sql"), "-- down\n").unwrap();
        std::fs::write(p.join("migration_lock.toml"), "provider = \"postgresql\"\n").unwrap();
        let loaded = load(&p, Format::Prisma).unwrap();
        let names: Vec<_> = loaded.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["20240101000000_a", "20240102000000_b"]);
        assert!(loaded[0].down.is_some() && loaded[1].down.is_none());

        let t = dir.path().join("tend");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("20240102_000000_b.sql"), "SELECT 2;").unwrap();
        std::fs::write(t.join("20240101_000000_a.sql"), "SELECT 1;").unwrap();
        std::fs::write(t.join("20240101_000000_a.down.sql"), "SELECT -1;").unwrap();
        std::fs::write(t.join("README.md"), "not a migration").unwrap();
        let loaded = load(&t, Format::Tend).unwrap();
        let names: Vec<_> = loaded.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["20240101_000000_a", "20240102_000000_b"]);
        assert_eq!(loaded[0].down.as_ref().unwrap().sql, "SELECT -1;");
        std::fs::write(t.join("oops.sql"), "SELECT 3;").unwrap();
        assert!(matches!(
            load(&t, Format::Tend),
            Err(SourceError::BadName(_))
        ));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("Add Users table!"), "add_users_table");
        assert_eq!(sanitize_name("  --x--y  "), "x_y");
        assert_eq!(sanitize_name("Ünïcode name"), "n_code_name");
    }

    #[test]
    fn new_migrations_follow_each_layout() {
        let dir = tempfile::tempdir().unwrap();
        let tend = create(
            &dir.path().join("m"),
            Format::Tend,
            "20261122031500",
            "Add users",
        )
        .unwrap();
        assert!(tend.ends_with("20261122_031500_add_users.sql"));
        let prisma = create(
            &dir.path().join("p"),
            Format::Prisma,
            "20261122031500",
            "add users",
        )
        .unwrap();
        assert!(prisma.ends_with("20261122031500_add_users/migration.sql"));
        assert!(dir.path().join("p/migration_lock.toml").is_file());
        assert_eq!(load(&dir.path().join("m"), Format::Tend).unwrap().len(), 1);
        assert_eq!(
            load(&dir.path().join("p"), Format::Prisma).unwrap().len(),
            1
        );
    }
}

/// The names of the indexes the migrations leave behind: created by `CREATE [UNIQUE] INDEX`
/// and not dropped (or renamed away) by a later one. Read from the files, in order, without
/// replaying them; names without their schema, as PostgreSQL stores them (unquoted names
/// folded to lower case).
pub fn created_indexes(migrations: &[Migration]) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for migration in migrations {
        for statement in crate::splitter::split(&migration.sql) {
            let words = words(statement.sql);
            let lower: Vec<String> = words
                .iter()
                .map(|w| {
                    if w.starts_with('"') {
                        String::new()
                    } else {
                        w.to_ascii_lowercase()
                    }
                })
                .collect();
            let is = |i: usize, word: &str| lower.get(i).is_some_and(|w| w == word);
            let skip_options = |mut i: usize| {
                if is(i, "concurrently") {
                    i += 1;
                }
                if is(i, "if") && is(i + 1, "not") && is(i + 2, "exists") {
                    i += 3;
                } else if is(i, "if") && is(i + 1, "exists") {
                    i += 2;
                }
                i
            };
            if is(0, "create") {
                let at = if is(1, "unique") { 2 } else { 1 };
                if is(at, "index") {
                    let i = skip_options(at + 1);
                    if !is(i, "on")
                        && let Some(name) = words.get(i)
                    {
                        names.insert(identifier(name));
                    }
                }
            } else if is(0, "drop") && is(1, "index") {
                let mut i = skip_options(2);
                while let Some(name) = words.get(i) {
                    if is(i, "cascade") || is(i, "restrict") {
                        break;
                    }
                    names.remove(&identifier(name.trim_end_matches(',')));
                    i += 1;
                }
            } else if is(0, "alter") && is(1, "index") {
                let i = skip_options(2);
                if is(i + 1, "rename")
                    && is(i + 2, "to")
                    && let (Some(old), Some(new)) = (words.get(i), words.get(i + 3))
                    && names.remove(&identifier(old))
                {
                    names.insert(identifier(new));
                }
            }
        }
    }
    names
}

/// Words of a statement: comments skipped, a quoted identifier kept whole (with its
/// quotes), `(`, `)`, `,` and `;` cutting words.
fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if !current.is_empty() {
            out.push(std::mem::take(current));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut current, &mut out);
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                current.push('"');
                while let Some(c) = chars.next() {
                    current.push(c);
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            current.push(chars.next().unwrap_or('"'));
                        } else {
                            break;
                        }
                    }
                }
            }
            c if c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';') => {
                flush(&mut current, &mut out);
            }
            c => current.push(c),
        }
    }
    flush(&mut current, &mut out);
    out
}

/// The last part of a possibly qualified name, unquoted (or folded to lower case).
fn identifier(name: &str) -> String {
    // Split on dots outside quotes.
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let last = parts.pop().unwrap_or_default();
    match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => last.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod created_index_tests {
    use super::*;

    #[test]
    fn created_indexes_follow_creates_drops_and_renames() {
        let sql = "-- CreateIndex\nCREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\nCREATE INDEX CONCURRENTLY IF NOT EXISTS public.Post_idx ON post (a);\nCREATE INDEX ON post (b);\nCREATE INDEX gone ON post (c);\nDROP INDEX IF EXISTS public.gone;\nCREATE INDEX old_name ON post (d);\nALTER INDEX old_name RENAME TO new_name;\n";
        let migration = Migration {
            name: "m".into(),
            path: "m".into(),
            sql: sql.into(),
            checksum: checksum(sql.as_bytes()),
            down: None,
        };
        let names: Vec<String> = created_indexes(&[migration]).into_iter().collect();
        assert_eq!(names, ["User_email_key", "new_name", "post_idx"]);
    }
}
