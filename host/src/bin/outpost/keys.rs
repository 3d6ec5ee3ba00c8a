//! `outpost keys`: the secrets plugins use through the keystore.
//!
//! Keys are managed with the node stopped, through the database directly and
//! never over the local API: whoever holds the API token (a point-of-sale app)
//! must not be able to replace the key every card token is made with.

use crate::commands::{open, plugin_id};
use anyhow::{Context, bail};
use outpost::keystore;
use outpost::node::Node;
use std::io::Read;
use std::path::Path;

fn open_for_keys(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<Node> {
    open(data_dir, config).context(
        "keys are managed with the node stopped (so no app holding the API token can change \
         them); stop `outpost run`, run this again, then start the node",
    )
}

pub fn add(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: &str,
    name: &str,
    import: Option<&Path>,
    replace: bool,
) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    keystore::check_name(name)?;
    let material = match import {
        None => None,
        Some(path) => {
            let text = if path == Path::new("-") {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the key from standard input")?;
                text
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the key from {}", path.display()))?
            };
            let origin = if path == Path::new("-") {
                "standard input".to_string()
            } else {
                path.display().to_string()
            };
            Some(keystore::parse_import(&text).with_context(|| format!("in {origin}"))?)
        }
    };
    let node = open_for_keys(data_dir, config)?;
    let summary = node
        .keystore()
        .provision(&id, name, material, replace)
        .with_context(|| format!("cannot add the key {name:?} for {id}"))?;
    println!(
        "{} key {:?} for {} ({}; sealed under {})",
        if replace { "set" } else { "added" },
        summary.name,
        summary.plugin,
        summary.origin,
        node.keystore().node_key_path().display()
    );
    match node.loaded(&id) {
        Some(plugin) if !plugin.manifest.grants.keystore.iter().any(|k| k == name) => {
            eprintln!(
                "note: {id}'s manifest does not ask for a key {name:?} (it asks for: {}); it \
                 cannot use this one",
                if plugin.manifest.grants.keystore.is_empty() {
                    "none".to_string()
                } else {
                    plugin.manifest.grants.keystore.join(", ")
                }
            );
        }
        Some(_) => {}
        None if node.plugin_status(&id).is_none() => {
            println!("{id} is not installed yet; it gets this key when it is.");
        }
        None => {}
    }
    Ok(())
}

pub fn list(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let id = plugin.map(plugin_id).transpose()?;
    let node = open_for_keys(data_dir, config)?;
    let keys = node.keystore().list(id.as_ref())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    if keys.is_empty() {
        println!("No keys. Add one with `outpost keys add <plugin> <name>`.");
        return Ok(());
    }
    let width = keys
        .iter()
        .map(|k| k.plugin.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:width$}  {:24}  {:9}  CREATED",
        "PLUGIN", "NAME", "ORIGIN"
    );
    for key in &keys {
        println!(
            "{:width$}  {:24}  {:9}  {}",
            key.plugin,
            key.name,
            key.origin,
            crate::trade::utc(i64::try_from(key.created_at).unwrap_or(i64::MAX))
        );
    }
    Ok(())
}

pub fn remove(
    data_dir: &Path,
    config: Option<&Path>,
    plugin: &str,
    name: &str,
) -> anyhow::Result<()> {
    let id = plugin_id(plugin)?;
    let node = open_for_keys(data_dir, config)?;
    if !node.keystore().remove(&id, name)? {
        bail!("{id} has no key {name:?}; `outpost keys list {id}` shows its keys");
    }
    println!(
        "removed the key {name:?} of {id}; what it sealed cannot be opened any more, and its \
         tokens cannot be made again"
    );
    Ok(())
}
