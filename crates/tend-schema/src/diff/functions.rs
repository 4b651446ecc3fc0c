//! Functions and procedures: before the tables, or after them when their signature names a new
//! relation or their body is SQL-standard.

use super::*;

impl Differ<'_> {
    /// Functions go before tables (defaults and checks call them), except those whose
    /// signature names a table or view created here, and those with an SQL-standard body
    /// (`BEGIN ATOMIC`, `RETURN`), which PostgreSQL parses at once (`check_function_bodies`
    /// does not apply): those go after the tables.
    pub(super) fn functions(&mut self, from: &Model, after_tables: bool) {
        let to = self.to;
        let new_relations: Vec<String> = to
            .tables
            .keys()
            .chain(to.views.keys())
            .filter(|n| !from.tables.contains_key(*n) && !from.views.contains_key(*n))
            .map(QualifiedName::sql)
            .collect();
        for (key, function) in &to.functions {
            let signature = format!(
                "{} {}",
                key.arguments,
                function.result.as_deref().unwrap_or_default()
            );
            let late = has_sql_body(&function.definition)
                || new_relations.iter().any(|r| signature.contains(r.as_str()));
            if late != after_tables {
                continue;
            }
            let object = ObjectId::of_function(function);
            match from.functions.get(key) {
                None => {
                    self.push(
                        object.clone(),
                        Change::Create,
                        ddl::create_function(function),
                    );
                }
                Some(old) if old.definition == function.definition => {}
                Some(old) => {
                    if old.result != function.result || old.procedure != function.procedure {
                        self.push(object.clone(), Change::Alter, ddl::drop_function(old));
                        self.recreated_functions.insert(key.clone());
                    }
                    self.push(
                        object.clone(),
                        Change::Alter,
                        ddl::create_function(function),
                    );
                }
            }
            let before = from.functions.get(key).and_then(|f| f.comment.as_deref());
            if before != function.comment.as_deref() {
                self.comment(
                    object,
                    function_target(function),
                    function.comment.as_deref(),
                );
            }
        }
    }
}

/// Whether `pg_get_functiondef` shows an SQL-standard body: after the header's attribute
/// lines (indented by one space) comes `BEGIN ATOMIC` or `RETURN ...`, where a body in a
/// string comes as `AS $function$...`.
pub(super) fn has_sql_body(definition: &str) -> bool {
    for line in definition.lines().skip(1) {
        if line.starts_with("BEGIN ATOMIC") || line.starts_with("RETURN ") {
            return true;
        }
        if !line.starts_with(' ') {
            return false;
        }
    }
    false
}
