//! Environment overrides: `DEVICEGRAPH_SECTION__KEY=value` sets `section.key`.
//!
//! `__` separates levels (`DEVICEGRAPH_CACHE__TTL__NOT_FOUND` is `cache.ttl.not_found`)
//! and key names are matched case-insensitively (they are lower-cased), so the usual
//! upper-case shell spelling works. Values stay strings (`"64"`), which the typed
//! conversion in `validate` accepts for numbers and booleans too; a value starting
//! with `[` or `{` is read as a TOML inline array or table, which is how
//! `DEVICEGRAPH_AUTH__API_KEYS` can carry a list of keys.
//!
//! The variables come in as an iterator, never from `std::env` here, so tests can pass
//! their own without touching the process environment.

use toml::{Table, Value};

use super::Problem;

/// The prefix that marks a variable as a config override.
pub(crate) const PREFIX: &str = "DEVICEGRAPH_";

/// Variables with the prefix that are not keys: `DEVICEGRAPH_CONFIG` names the file.
const NOT_KEYS: &[&str] = &["DEVICEGRAPH_CONFIG"];

/// The config's sections. Every key lives in one, so an override always has at least
/// one `__`; a variable without one is someone else's (a CI knob, say) and is left
/// alone, unless it looks like a section with a single underscore: that is a typo
/// worth reporting (`DEVICEGRAPH_UPSTREAM_CLIENT_SECRET`).
const SECTIONS: &[&str] = &[
    "server",
    "upstream",
    "simulator",
    "cache",
    "auth",
    "limits",
    "graphql",
    "log",
];

/// Overlays every `DEVICEGRAPH_*` variable of `env` onto `table`, in name order so the
/// result does not depend on the environment's iteration order.
pub(crate) fn apply(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX) && !NOT_KEYS.contains(&name.as_str()))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(|segment| segment.to_ascii_lowercase())
            .collect();
        if let [single] = path.as_slice() {
            if let Some(section) = SECTIONS
                .iter()
                .find(|s| single.starts_with(&format!("{s}_")))
            {
                let key = &single[section.len() + 1..];
                problems.push(Problem::new(
                    name.clone(),
                    format!(
                        "not a config key: sections and keys are separated by a double underscore                          (DEVICEGRAPH_{}__{})",
                        section.to_ascii_uppercase(),
                        key.to_ascii_uppercase()
                    ),
                ));
            }
            continue;
        }
        if path.iter().any(String::is_empty) {
            problems.push(Problem::new(
                name.clone(),
                "not a config key (write DEVICEGRAPH_SECTION__KEY, e.g. DEVICEGRAPH_SERVER__LISTEN)",
            ));
            continue;
        }
        let key = path.join(".");
        let value = match parse_value(&raw) {
            Ok(value) => value,
            Err(message) => {
                problems.push(Problem::new(key, format!("from {name}: {message}")));
                continue;
            }
        };
        if let Err(message) = set(table, &path, value) {
            problems.push(Problem::new(key, format!("from {name}: {message}")));
        }
    }
}

fn parse_value(raw: &str) -> Result<Value, String> {
    let trimmed = raw.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let doc: Table = toml::from_str(&format!("v = {raw}"))
            .map_err(|e| format!("not a TOML inline array or table: {}", e.message()))?;
        return doc
            .get("v")
            .cloned()
            .ok_or_else(|| "empty value".to_owned());
    }
    Ok(Value::String(raw.to_owned()))
}

fn set(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".to_owned());
    };
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(inner) => inner,
            _ => {
                return Err(format!(
                    "`{}` is a value, not a section",
                    path[..=depth].join(".")
                ));
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
