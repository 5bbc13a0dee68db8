//! `paas config`, `config:get`, `config:set`, `config:unset`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use paas_server::wire::ConfigUpdate;

use super::{app_name, client};
use crate::AppArg;
use crate::client::path;

pub(crate) async fn show(arg: &AppArg, shell: bool, json: bool) -> Result<()> {
    let name = app_name(arg)?;
    let config: BTreeMap<String, String> =
        client()?.get(&path(&["apps", &name, "config"])?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else if shell {
        for (key, value) in &config {
            println!("{key}={}", shell_quote(value));
        }
    } else {
        println!("=== {name} Config Vars");
        print_vars(&config);
    }
    Ok(())
}

pub(crate) async fn get(arg: &AppArg, key: &str) -> Result<()> {
    let name = app_name(arg)?;
    let config: BTreeMap<String, String> =
        client()?.get(&path(&["apps", &name, "config"])?).await?;
    match config.get(key) {
        Some(value) => {
            println!("{value}");
            Ok(())
        }
        None => bail!("{key} is not set on {name}"),
    }
}

pub(crate) async fn set(arg: &AppArg, pairs: &[String]) -> Result<()> {
    let name = app_name(arg)?;
    let mut changes = BTreeMap::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("{pair:?} is not KEY=value");
        };
        changes.insert(key.to_string(), Some(value.to_string()));
    }
    let keys = changes.keys().cloned().collect::<Vec<_>>().join(", ");
    let update = apply(&name, &format!("Setting {keys} on {name}"), &changes).await?;
    if update.unchanged {
        let what =
            if changes.len() == 1 { "already has that value" } else { "already have those values" };
        println!("No change: {keys} {what}; {name} stays at v{}", update.release.version);
        return Ok(());
    }
    let set: BTreeMap<String, String> =
        update.config.into_iter().filter(|(k, _)| changes.contains_key(k)).collect();
    print_vars(&set);
    Ok(())
}

pub(crate) async fn unset(arg: &AppArg, keys: &[String]) -> Result<()> {
    let name = app_name(arg)?;
    let changes: BTreeMap<String, Option<String>> =
        keys.iter().map(|k| (k.clone(), None)).collect();
    let keys = keys.join(", ");
    let update = apply(&name, &format!("Unsetting {keys} on {name}"), &changes).await?;
    if update.unchanged {
        let what = if changes.len() == 1 { "is not set" } else { "are not set" };
        println!("No change: {keys} {what}; {name} stays at v{}", update.release.version);
    }
    Ok(())
}

async fn apply(
    name: &str,
    progress: &str,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<ConfigUpdate> {
    let client = client()?;
    let path = path(&["apps", name, "config"])?;
    let work = client.patch::<ConfigUpdate>(&path, changes);
    let outcome = |update: &ConfigUpdate| {
        if update.unchanged { String::new() } else { format!(", v{}", update.release.version) }
    };
    super::progress(progress, work, outcome).await
}

fn print_vars(config: &BTreeMap<String, String>) {
    let width = config.keys().map(|k| k.len() + 1).max().unwrap_or(0);
    for (key, value) in config {
        println!("{:<width$} {value}", format!("{key}:"));
    }
}

/// Single-quotes a value for POSIX shells when it needs it.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,".contains(c));
    if plain { value.to_string() } else { format!("'{}'", value.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_quoting() {
        assert_eq!(super::shell_quote("abc"), "abc");
        assert_eq!(super::shell_quote("a b"), "'a b'");
        assert_eq!(super::shell_quote("it's"), r"'it'\''s'");
        assert_eq!(super::shell_quote(""), "''");
    }
}
