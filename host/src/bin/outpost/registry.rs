//! The registry commands: install, search, trust, bundles, and publishing
//! for vendors.

use crate::commands::{open, runtime};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use outpost::releases::{self, Wanted};
use outpost_registry::client::{MetadataSource, Progress};
use outpost_registry::keys::KeyPair;
use std::path::{Path, PathBuf};

/// Runs `work` with a progress callback that drives a byte bar on a
/// terminal (and nothing when output goes to a file or a script).
fn with_progress<T>(work: impl FnOnce(&(dyn Fn(Progress) + Send + Sync)) -> T) -> T {
    let bar = progress_bar("downloading");
    let on_progress = |p: Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    };
    let result = work(&on_progress);
    bar.finish_and_clear();
    result
}

/// A byte progress bar on a terminal, nothing otherwise.
fn progress_bar(what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

fn downloads(data_dir: &Path) -> PathBuf {
    data_dir.join("downloads")
}

/// Removes `downloads/*.package` folders: an install unpacks a release there
/// and removes it when done, so any left were cut short (Ctrl-C, a power
/// cut). Only a process holding the node's database may call this: every
/// install does, so none is unpacking now. The blobs beside them stay; they
/// let a cut download resume.
pub fn remove_stale_packages(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(downloads(data_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "package")
            && path.is_dir()
            && let Err(error) = std::fs::remove_dir_all(&path)
        {
            tracing::warn!(
                "cannot remove {}, left by an interrupted install: {error}",
                path.display()
            );
        }
    }
}

pub fn search(
    data_dir: &Path,
    config: Option<&Path>,
    query: Option<&str>,
    registry: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let index = refreshed_index(data_dir, config, registry)?;
    let releases: Vec<_> = index
        .releases
        .iter()
        .filter(|r| query.is_none_or(|q| r.plugin.contains(q)))
        .collect();
    if json {
        let rows: Vec<_> = releases
            .iter()
            .map(|r| {
                serde_json::json!({
                    "plugin": r.plugin, "version": r.version.to_string(),
                    "world": r.info.world, "grants": r.info.grants,
                    "digest": r.digest(), "bytes": r.length,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if releases.is_empty() {
        println!(
            "No signed releases{}.",
            query
                .map(|q| format!(" matching {q:?}"))
                .unwrap_or_default()
        );
    }
    for r in releases {
        println!(
            "{}@{}\t{}\tasks for: {}",
            r.plugin, r.version, r.info.world, r.info.grants
        );
    }
    Ok(())
}

/// Verifies the registry's newest metadata for the node, and what it lists.
fn refreshed_index(
    data_dir: &Path,
    config: Option<&Path>,
    registry: Option<&str>,
) -> anyhow::Result<outpost_registry::client::Index> {
    let node = open(data_dir, config)?;
    let url = registry_url(&node, registry)?;
    runtime()?
        .block_on(releases::refresh(
            node.store(),
            &MetadataSource::Registry(url.clone()),
        ))
        .with_context(|| format!("cannot verify the signed metadata of {url}"))
}

fn registry_url(node: &outpost::node::Node, registry: Option<&str>) -> anyhow::Result<url::Url> {
    let text = match registry {
        Some(text) => text.to_string(),
        None => node
            .store()
            .trust_settings()?
            .and_then(|s| s.registry)
            .ok_or(releases::ReleaseError::NoRegistry)?,
    };
    Ok(releases::parse_registry_url(&text)?)
}

pub fn trust_init(
    data_dir: &Path,
    config: Option<&Path>,
    root: &Path,
    registry: Option<&str>,
) -> anyhow::Result<()> {
    let node = open(data_dir, config)?;
    let bytes = std::fs::read(root).with_context(|| format!("cannot read {}", root.display()))?;
    let registry = registry.map(releases::parse_registry_url).transpose()?;
    let signed = releases::provision(node.store(), root, &bytes, registry.as_ref())?;
    let root_keys = signed
        .signed
        .roles
        .get(&outpost_registry::tough::schema::RoleType::Root)
        .map(|role| (role.threshold.get(), role.keyids.len()))
        .unwrap_or_default();
    println!(
        "trusting root version {} (signed by {} of {} root key(s), expires {})",
        signed.signed.version,
        root_keys.0,
        root_keys.1,
        signed.signed.expires.strftime("%Y-%m-%d")
    );
    match registry {
        Some(url) => println!("installing from {url} by default"),
        None => println!("no default registry; pass --registry to install and search"),
    }
    Ok(())
}

pub fn trust_show(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let node = open(data_dir, config)?;
    let Some(settings) = node.store().trust_settings()? else {
        bail!(releases::ReleaseError::NotProvisioned);
    };
    println!(
        "registry: {}",
        settings
            .registry
            .as_deref()
            .unwrap_or("(none; pass --registry)")
    );
    let seen = node.store().trust_seen()?;
    let root_text = seen
        .get("root.json")
        .map(|b| String::from_utf8_lossy(b).to_string())
        .unwrap_or(settings.root.clone());
    let root: outpost_registry::tough::schema::Signed<outpost_registry::tough::schema::Root> =
        serde_json::from_str(&root_text).context("the stored root metadata is damaged")?;
    println!(
        "root:     version {}, expires {}",
        root.signed.version,
        root.signed.expires.strftime("%Y-%m-%d")
    );
    for role in ["timestamp", "snapshot", "targets"] {
        let Some(bytes) = seen.get(&format!("{role}.json")) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        println!(
            "{role:9} version {}, expires {}",
            value
                .pointer("/signed/version")
                .unwrap_or(&serde_json::Value::Null),
            value
                .pointer("/signed/expires")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
        );
    }
    if !seen.contains_key("timestamp.json") {
        println!("no metadata accepted yet; `outpost trust update` fetches it");
    }
    Ok(())
}

pub fn trust_update(
    data_dir: &Path,
    config: Option<&Path>,
    registry: Option<&str>,
    clock_was_wrong: bool,
) -> anyhow::Result<()> {
    if clock_was_wrong {
        let node = open(data_dir, config)?;
        if let Some(recorded) = node.store().forget_trust_clock()? {
            println!("forgot the clock reading of the last refresh ({recorded})");
        }
    }
    let index = refreshed_index(data_dir, config, registry)?;
    println!(
        "accepted root version {}, timestamp version {}: {} signed release(s), valid until {}",
        index.root_version,
        index.timestamp_version,
        index.releases.len(),
        index.expires.strftime("%Y-%m-%d %H:%M UTC")
    );
    Ok(())
}

pub fn bundle_export(
    data_dir: &Path,
    config: Option<&Path>,
    plugins: &[String],
    output: &Path,
    registry: Option<&str>,
) -> anyhow::Result<()> {
    let node = open(data_dir, config)?;
    let url = registry_url(&node, registry)?;
    let wanted = plugins
        .iter()
        .map(|p| Wanted::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = runtime()?;
    let bundle = with_progress(|progress| {
        runtime.block_on(releases::export_bundle(
            node.store(),
            &downloads(data_dir),
            &url,
            &wanted,
            output,
            progress,
        ))
    })
    .with_context(|| format!("cannot export a bundle to {}", output.display()))?;
    println!(
        "wrote {} with {} and {} metadata file(s)",
        output.display(),
        bundle.releases.join(", "),
        bundle.metadata.len()
    );
    println!(
        "On the offline node: outpost plugin install {}",
        output.display()
    );
    Ok(())
}

pub fn keygen(file: &Path) -> anyhow::Result<()> {
    let key = KeyPair::generate()?;
    let public = key.save(file)?;
    println!(
        "private key: {} (keep it secret; it signs your releases)",
        file.display()
    );
    println!(
        "public key:  {} (send it to the central team)",
        public.display()
    );
    println!("key id:      {}", key.key_id_hex());
    Ok(())
}

pub fn publish(
    package_dir: &Path,
    registry: &str,
    key_files: &[PathBuf],
    token: &str,
    valid_for: jiff::SignedDuration,
) -> anyhow::Result<()> {
    let url = releases::parse_registry_url(registry)?;
    let keys = key_files
        .iter()
        .map(|p| KeyPair::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let key_refs: Vec<&KeyPair> = keys.iter().collect();
    // The install checks run first: a release no node would install is
    // refused here, before anything is pushed or signed.
    let (checked, outcome) = runtime()?.block_on(releases::publish(
        package_dir,
        &url,
        token,
        &key_refs,
        valid_for,
    ))?;
    println!(
        "published {} ({}, {} bytes); {} metadata version {}",
        outcome.target,
        outcome.digest,
        outcome.bytes,
        checked.id.split('/').next().unwrap_or_default(),
        outcome.metadata_version
    );
    Ok(())
}
