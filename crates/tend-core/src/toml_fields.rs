//! Readers for the tables of `tend.toml` that are more than plain keys (`[[schedule]]`,
//! `[[retention]]`, `[gdpr]`): every mistake one sentence that says where (`at`).

/// Refuses a key that is not in `allowed`, naming the ones that are.
pub(crate) fn only_keys(table: &toml::Table, allowed: &[&str], at: &str) -> Result<(), String> {
    match table.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "{at} has an unknown key `{}`; it takes {}",
            key.chars().take(40).collect::<String>(),
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// A string, trimmed: `None` when absent; an error when empty or not a string.
pub(crate) fn text(table: &toml::Table, at: &str, key: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) if s.trim().is_empty() => {
            Err(format!("{at}: `{key}` is empty"))
        }
        Some(toml::Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(format!("{at}: `{key}` must be a string")),
    }
}
