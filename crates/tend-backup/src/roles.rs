//! The roles a backup names (owners in its table of contents, grantees and grantors in its
//! privileges), and what a restore does on a server that lacks some of them: a database
//! owned by an application role restores onto a scratch server that has never heard of it.
//!
//! pg_restore would stop at the first `ALTER ... OWNER TO app` or `GRANT ... TO reader`.
//! So, before it starts, the restore compares the roles the archive names with the target
//! server's: when some are missing and the backup holds its roles (`--globals`), they are
//! created from there; otherwise the restore runs without owners and privileges
//! (`--no-owner --no-privileges`, everything then belongs to the restoring user) and says
//! so. `--no-owner` and `--no-privileges` can also be asked for, as with pg_restore.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use tend_pg::{ConnInfo, ConnectOptions};

use crate::archive::Toc;
use crate::ops::BackupError;

/// What the user asked for, as pg_restore's flags of the same names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    pub no_owner: bool,
    pub no_privileges: bool,
}

/// What a restore did about the roles the backup names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "roles", rename_all = "snake_case")]
pub enum RolesOutcome {
    /// Every role the backup names exists on the target, or the archive could not be read
    /// for them; owners and privileges were restored as asked.
    #[default]
    Kept,
    /// These were missing and were created from the backup's roles (`--globals`).
    Created { created: Vec<String> },
    /// These were missing and the backup does not hold them (or they could not be
    /// created): restored without owners and privileges.
    WithoutOwners {
        missing: Vec<String>,
        reason: String,
    },
}

impl RolesOutcome {
    /// One sentence for a report, or `None` when there is nothing to say.
    pub fn sentence(&self) -> Option<String> {
        match self {
            RolesOutcome::Kept => None,
            RolesOutcome::Created { created } => Some(format!(
                "created the roles {} on the target server from the backup's roles (--globals)",
                created.join(", ")
            )),
            RolesOutcome::WithoutOwners { missing, reason } => Some(format!(
                "the target server lacks the roles {} and {reason}: restored without owners \
                 and privileges (as --no-owner --no-privileges), so the restored objects \
                 belong to the restoring user",
                missing.join(", ")
            )),
        }
    }
}

/// Everything needed to decide, read before the stream starts.
#[derive(Clone)]
pub(crate) struct RolePlanner {
    pub ownership: Ownership,
    /// The target server's roles.
    pub existing: HashSet<String>,
    /// The backup's `pg_dumpall --globals-only` text, when it has one.
    pub globals: Option<String>,
    pub target: ConnInfo,
    /// The target server's major: pg_restore 17+ reaches one older than 17 through psql.
    pub target_major: u32,
    pub connect: ConnectOptions,
    pub runtime: tokio::runtime::Handle,
    /// Where the roles it creates are noted, as soon as they are: the caller learns of
    /// them even when the restore fails afterwards.
    pub created: CreatedRoles,
}

/// The roles a restore created on the target server, shared with its caller.
pub type CreatedRoles = std::sync::Arc<parking_lot::Mutex<Vec<String>>>;

impl RolePlanner {
    pub(crate) async fn read(
        target: &ConnInfo,
        connect: &ConnectOptions,
        ownership: Ownership,
        globals: Option<String>,
        created: CreatedRoles,
    ) -> Result<RolePlanner, BackupError> {
        let session = tend_pg::connect(target, connect).await?;
        let existing = session
            .query("SELECT rolname::text FROM pg_roles", &[])
            .await
            .map_err(crate::ops::db_error("reading the target server's roles"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let version: i32 = session
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(crate::ops::db_error("reading the target server's version"))?
            .get(0);
        Ok(RolePlanner {
            target_major: tend_pg::tools::version_from_server_num(version).major(),
            ownership,
            existing,
            globals,
            target: target.clone(),
            connect: connect.clone(),
            runtime: tokio::runtime::Handle::current(),
            created,
        })
    }

    /// Decides from the archive's TOC (creating missing roles when the backup holds them),
    /// and returns pg_restore's flags. Runs on a blocking thread.
    pub(crate) fn decide(&self, toc: &Toc) -> Result<(Vec<String>, RolesOutcome), BackupError> {
        let mut ownership = self.ownership;
        let outcome = if !toc.readable || (ownership.no_owner && ownership.no_privileges) {
            RolesOutcome::Kept
        } else {
            let missing: Vec<String> = referenced(toc, ownership)
                .into_iter()
                .filter(|r| !self.existing.contains(r))
                .collect();
            if missing.is_empty() {
                RolesOutcome::Kept
            } else {
                let outcome = match self
                    .globals
                    .as_deref()
                    .map(|g| statements_for(g, &missing, &self.existing))
                {
                    Some(Ok(statements)) => match self.runtime.block_on(self.create(&statements)) {
                        Ok(()) => {
                            self.created.lock().extend(missing.iter().cloned());
                            RolesOutcome::Created {
                                created: missing.clone(),
                            }
                        }
                        Err(e) => RolesOutcome::WithoutOwners {
                            missing: missing.clone(),
                            reason: format!("creating them failed ({e})"),
                        },
                    },
                    Some(Err(absent)) => RolesOutcome::WithoutOwners {
                        missing: missing.clone(),
                        reason: format!("the backup's roles do not include {}", absent.join(", ")),
                    },
                    None => RolesOutcome::WithoutOwners {
                        missing: missing.clone(),
                        reason: "the backup holds no roles (take it with --globals to keep them)"
                            .to_string(),
                    },
                };
                if matches!(outcome, RolesOutcome::WithoutOwners { .. }) {
                    ownership.no_owner = true;
                    ownership.no_privileges = true;
                }
                outcome
            }
        };
        Ok((flags(ownership), outcome))
    }

    async fn create(&self, statements: &[String]) -> Result<(), String> {
        let session = tend_pg::connect(&self.target, &self.connect)
            .await
            .map_err(|e| e.to_string())?;
        let sql = format!("BEGIN;\n{}\nCOMMIT;", statements.join("\n"));
        session
            .batch_execute(&sql)
            .await
            .map_err(|e| tend_pg::error_text(&e))
    }
}

/// pg_restore's flags for `ownership`.
pub(crate) fn flags(ownership: Ownership) -> Vec<String> {
    let mut flags = Vec::new();
    if ownership.no_owner {
        flags.push("--no-owner".to_string());
    }
    if ownership.no_privileges {
        flags.push("--no-privileges".to_string());
    }
    flags
}

/// The roles a restore with `ownership` would need: owners (unless `--no-owner`), and the
/// roles named in privileges (unless `--no-privileges`). `PUBLIC` is no role.
pub fn referenced(toc: &Toc, ownership: Ownership) -> BTreeSet<String> {
    let mut roles = BTreeSet::new();
    for entry in &toc.entries {
        let is_acl = matches!(entry.desc.as_str(), "ACL" | "DEFAULT ACL");
        if !ownership.no_owner && !entry.owner.is_empty() && !is_acl {
            roles.insert(entry.owner.clone());
        }
        if !ownership.no_privileges && is_acl {
            for statement in entry.defn.split(";\n") {
                roles.extend(roles_in_privilege_statement(statement.trim()));
            }
        }
    }
    roles
}

/// The roles one statement of an ACL entry names: `GRANT ... TO a, b [WITH GRANT OPTION]
/// [GRANTED BY c]`, `REVOKE ... FROM a`, `SET SESSION AUTHORIZATION a`,
/// `ALTER DEFAULT PRIVILEGES FOR ROLE a [IN SCHEMA s] GRANT ...`.
fn roles_in_privilege_statement(statement: &str) -> Vec<String> {
    let statement = statement.trim_end_matches(';').trim();
    let mut roles = Vec::new();
    if let Some(rest) = statement.strip_prefix("SET SESSION AUTHORIZATION ") {
        roles.extend(identifier(rest).map(|(name, _)| name));
        return roles;
    }
    let mut statement = statement;
    if let Some(rest) = statement.strip_prefix("ALTER DEFAULT PRIVILEGES FOR ROLE ") {
        if let Some((name, rest)) = identifier(rest) {
            roles.push(name);
            statement = rest.trim_start();
        }
        if let Some(rest) = statement.strip_prefix("IN SCHEMA ") {
            statement = identifier(rest).map(|(_, r)| r.trim_start()).unwrap_or("");
        }
    }
    let keyword = if statement.starts_with("GRANT ") {
        " TO "
    } else if statement.starts_with("REVOKE ") {
        " FROM "
    } else {
        return roles;
    };
    let Some(at) = last_unquoted(statement, keyword) else {
        return roles;
    };
    let mut rest = &statement[at + keyword.len()..];
    if let Some(by) = last_unquoted(rest, " GRANTED BY ") {
        roles.extend(identifier(&rest[by + " GRANTED BY ".len()..]).map(|(n, _)| n));
        rest = &rest[..by];
    }
    if let Some(with) = last_unquoted(rest, " WITH GRANT OPTION") {
        rest = &rest[..with];
    }
    let mut list = rest.trim();
    while !list.is_empty() {
        let item = list.strip_prefix("GROUP ").unwrap_or(list);
        if let Some(after) = item.strip_prefix("PUBLIC")
            && (after.is_empty() || after.starts_with(','))
        {
            list = after.trim_start_matches(',').trim_start();
            continue;
        }
        let Some((name, after)) = identifier(item) else {
            break;
        };
        roles.push(name);
        list = after.trim_start().trim_start_matches(',').trim_start();
    }
    roles
}

/// Where `needle` last occurs outside double quotes.
fn last_unquoted(text: &str, needle: &str) -> Option<usize> {
    let mut quoted = false;
    let mut found = None;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && text[i..].starts_with(needle) {
            found = Some(i);
        }
    }
    found
}

/// An SQL identifier at the start of `text` (quoted as pg_dump quotes, or bare), and the rest.
fn identifier(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().is_some_and(|(_, n)| *n == '"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &rest[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let end = text
        .find(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .unwrap_or(text.len());
    (end > 0).then(|| (text[..end].to_string(), &text[end..]))
}

/// From `pg_dumpall --globals-only` output, the statements that recreate `roles`: each
/// one's `CREATE ROLE` and `ALTER ROLE`, then the memberships among roles that will exist
/// (without `GRANTED BY`, whose grantor may not), given the roles that `existing` already.
/// `Err` names the roles it lacks.
pub(crate) fn statements_for(
    globals: &str,
    roles: &[String],
    existing: &HashSet<String>,
) -> Result<Vec<String>, Vec<String>> {
    let wanted: HashSet<&str> = roles.iter().map(String::as_str).collect();
    let mut defined = HashSet::new();
    let mut creates = Vec::new();
    let mut grants = Vec::new();
    for line in globals.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("CREATE ROLE ") {
            if let Some((name, _)) = identifier(rest)
                && wanted.contains(name.as_str())
            {
                defined.insert(name);
                creates.push(line.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("ALTER ROLE ") {
            if let Some((name, _)) = identifier(rest)
                && wanted.contains(name.as_str())
            {
                creates.push(line.to_string());
            }
        } else if line.starts_with("GRANT ") && !line.contains(" ON ") {
            grants.push(line.to_string());
        }
    }
    let absent: Vec<String> = roles
        .iter()
        .filter(|r| !defined.contains(r.as_str()))
        .cloned()
        .collect();
    if !absent.is_empty() {
        return Err(absent);
    }
    for grant in grants {
        // GRANT a TO b [WITH ADMIN OPTION] [GRANTED BY c]: keep those touching a new role.
        let body = grant.trim_end_matches(';');
        let body = match last_unquoted(body, " GRANTED BY ") {
            Some(at) => &body[..at],
            None => body,
        };
        let names = roles_in_privilege_statement(body);
        let granted = identifier(&body["GRANT ".len()..]).map(|(n, _)| n);
        let mut named = names.iter().chain(granted.iter());
        let all_exist = named
            .clone()
            .all(|n| wanted.contains(n.as_str()) || existing.contains(n));
        if all_exist && named.any(|n| wanted.contains(n.as_str())) {
            creates.push(format!("{body};"));
        }
    }
    Ok(creates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_statements_name_their_roles() {
        assert_eq!(
            roles_in_privilege_statement("GRANT SELECT ON TABLE public.t TO reader;"),
            vec!["reader"]
        );
        assert_eq!(
            roles_in_privilege_statement(
                "GRANT ALL ON TABLE public.\"odd TO name\" TO \"Odd\"\"Role\", app WITH GRANT OPTION GRANTED BY boss;"
            ),
            vec!["boss", "Odd\"Role", "app"]
        );
        assert_eq!(
            roles_in_privilege_statement("REVOKE ALL ON SCHEMA public FROM PUBLIC;"),
            Vec::<String>::new()
        );
        assert_eq!(
            roles_in_privilege_statement("SET SESSION AUTHORIZATION app;"),
            vec!["app"]
        );
        assert_eq!(
            roles_in_privilege_statement(
                "ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reader;"
            ),
            vec!["app", "reader"]
        );
    }

    #[test]
    fn globals_recreate_only_the_missing_roles() {
        let globals = "--\n-- Roles\n--\n\nCREATE ROLE app;\nALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$x';\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\nCREATE ROLE reader;\nALTER ROLE reader WITH NOLOGIN;\n\nGRANT reader TO app GRANTED BY postgres;\nGRANT pg_read_all_data TO postgres GRANTED BY postgres;\n";
        let existing: HashSet<String> = ["postgres".to_string()].into();
        let statements = statements_for(
            &format!("{globals}GRANT elsewhere TO app;\n"),
            &["app".to_string(), "reader".to_string()],
            &existing,
        )
        .unwrap();
        assert_eq!(
            statements,
            vec![
                "CREATE ROLE app;",
                "ALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$x';",
                "CREATE ROLE reader;",
                "ALTER ROLE reader WITH NOLOGIN;",
                "GRANT reader TO app;",
            ]
        );
        assert_eq!(
            statements_for(globals, &["ghost".to_string()], &existing),
            Err(vec!["ghost".to_string()])
        );
    }

    /// A restore worker that panics while noting a role must not hide the roles it created
    /// from the caller, who drops them afterwards (a poisoned std lock would panic there).
    #[test]
    fn created_roles_stay_readable_after_a_worker_panics_holding_them() {
        let created = CreatedRoles::default();
        let worker = created.clone();
        let failed = std::thread::spawn(move || {
            let mut roles = worker.lock();
            roles.push("app".to_string());
            panic!("worker fails while holding the list");
        })
        .join();
        assert!(failed.is_err());
        assert_eq!(*created.lock(), vec!["app".to_string()]);
    }
}
