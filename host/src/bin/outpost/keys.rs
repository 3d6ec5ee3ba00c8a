//! `outpost keys`: the secrets plugins use through the keystore.
//!
//! Keys go over the admin channel (the running node's admin socket, or the
//! node opened here when none runs), never over the app API: whoever holds
//! the API token (a point-of-sale app) must not be able to replace the key
//! every card token is made with.

use crate::commands::plugin_id;
use crate::link::AdminLink;
use anyhow::Context;
use hyper::Method;
use outpost::keystore;
use serde_json::json;
use std::io::Read;
use std::path::Path;

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
            // Checked here too, so the file is named in the message.
            keystore::parse_import(&text).with_context(|| format!("in {origin}"))?;
            Some(text.trim().to_string())
        }
    };
    let link = AdminLink::open(data_dir, config)?;
    let body =
        json!({ "plugin": id.as_str(), "name": name, "import": material, "replace": replace });
    let added = link
        .request(Method::POST, "/admin/v1/keys", Some(&body))?
        .ok(&format!("adding the key {name:?} for {id}"))?;
    let key = &added["key"];
    println!(
        "{} key {} for {} ({}; sealed under {})",
        if replace { "set" } else { "added" },
        key["name"],
        key["plugin"].as_str().unwrap_or_default(),
        key["origin"].as_str().unwrap_or_default(),
        added["sealed_under"].as_str().unwrap_or_default()
    );
    if let Some(note) = added["note"].as_str() {
        eprintln!("note: {note}");
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
    let link = AdminLink::open(data_dir, config)?;
    let path = match &id {
        Some(id) => format!("/admin/v1/keys?plugin={id}"),
        None => "/admin/v1/keys".to_string(),
    };
    let reply = link.request(Method::GET, &path, None)?.ok("listing keys")?;
    let keys: Vec<keystore::KeySummary> = serde_json::from_value(reply["keys"].clone())
        .context("the node's list of keys is not what this outpost expects")?;
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
    let link = AdminLink::open(data_dir, config)?;
    link.request(Method::DELETE, &format!("/admin/v1/keys/{id}/{name}"), None)?
        .ok(&format!("removing the key {name:?} of {id}"))?;
    println!(
        "removed the key {name:?} of {id}; what it sealed cannot be opened any more, and its \
         tokens cannot be made again"
    );
    Ok(())
}
