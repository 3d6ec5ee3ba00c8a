//! The registry commands: install, search, trust, bundles, and publishing
//! for vendors.

use crate::commands::runtime;
use crate::link::AdminLink;
use anyhow::Context;
use hyper::Method;
use outpost::control::trust;
use outpost::releases;
use outpost_registry::keys::KeyPair;
use outpost_registry::tls::ClientTls;
use std::path::{Path, PathBuf};

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
    let link = AdminLink::open(data_dir, config)?;
    #[derive(serde::Deserialize)]
    struct Found {
        releases: Vec<trust::ReleaseRow>,
    }
    let body = serde_json::json!({ "query": query, "registry": registry });
    let Found { releases } = link.call(
        Method::POST,
        "/admin/v1/releases/search",
        Some(&body),
        "listing the signed releases",
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&releases)?);
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
            r.plugin, r.version, r.world, r.grants
        );
    }
    Ok(())
}

pub fn trust_init(
    data_dir: &Path,
    config: Option<&Path>,
    root: &Path,
    registry: Option<&str>,
    ca: Option<&Path>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(root).with_context(|| format!("cannot read {}", root.display()))?;
    let ca_text = ca
        .map(|ca| {
            std::fs::read_to_string(ca).with_context(|| format!("cannot read {}", ca.display()))
        })
        .transpose()?;
    let link = AdminLink::open(data_dir, config)?;
    let request = trust::TrustRequest {
        root: text,
        root_file: root.display().to_string(),
        registry: registry.map(str::to_string),
        ca: ca_text,
        ca_file: ca.map(|ca| ca.display().to_string()),
    };
    let provisioned: trust::Provisioned = link.call(
        Method::PUT,
        "/admin/v1/trust",
        Some(&request),
        "provisioning the root of trust",
    )?;
    println!(
        "trusting root version {} (signed by {} of {} root key(s), expires {})",
        provisioned.root_version, provisioned.threshold, provisioned.root_keys, provisioned.expires
    );
    match provisioned.registry {
        Some(url) => println!("installing from {url} by default"),
        None => println!("no default registry; pass --registry to install and search"),
    }
    if provisioned.fleet_ca {
        println!("its HTTPS certificate may chain to the fleet's CA as well as the system's");
    }
    Ok(())
}

pub fn trust_show(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<()> {
    let link = AdminLink::open(data_dir, config)?;
    let view: trust::TrustView = link.call(
        Method::GET,
        "/admin/v1/trust",
        None::<&()>,
        "reading what the node trusts",
    )?;
    println!(
        "registry: {}",
        view.registry
            .as_deref()
            .unwrap_or("(none; pass --registry)")
    );
    for role in &view.roles {
        let label = if role.role == "root" {
            "root:    ".to_string()
        } else {
            format!("{:9}", role.role)
        };
        println!(
            "{label} version {}, expires {}",
            role.version,
            role.expires.get(..10).unwrap_or(&role.expires)
        );
    }
    if view.roles.len() == 1 {
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
    let link = AdminLink::open(data_dir, config)?;
    let request = trust::RefreshRequest {
        registry: registry.map(str::to_string),
        clock_was_wrong,
    };
    let refreshed: trust::Refreshed = link.call(
        Method::POST,
        "/admin/v1/trust/refresh",
        Some(&request),
        "refreshing the signed metadata",
    )?;
    if let Some(recorded) = refreshed.forgot_clock {
        println!("forgot the clock reading of the last refresh ({recorded})");
    }
    println!(
        "accepted root version {}, timestamp version {}: {} signed release(s), valid until {}",
        refreshed.root_version, refreshed.timestamp_version, refreshed.releases, refreshed.expires
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
    // The node writes the file: name it from here, not from its directory.
    let output = std::path::absolute(output)
        .with_context(|| format!("cannot make {} an absolute path", output.display()))?;
    let link = AdminLink::open(data_dir, config)?;
    let request = trust::BundleRequest {
        plugins: plugins.to_vec(),
        output: output.display().to_string(),
        registry: registry.map(str::to_string),
    };
    let written: trust::BundleWritten = link.call(
        Method::POST,
        "/admin/v1/bundles",
        Some(&request),
        &format!("exporting a bundle to {}", output.display()),
    )?;
    println!(
        "wrote {} with {} and {} metadata file(s)",
        written.output,
        written.releases.join(", "),
        written.metadata_files
    );
    println!(
        "On the offline node: outpost plugin install {}",
        written.output
    );
    Ok(())
}

pub fn keygen(file: &Path) -> anyhow::Result<()> {
    let key = KeyPair::generate()?;
    // `~/.config/outpost/acme.key` on a machine with no such folder yet:
    // made private (0700), as a key's folder should be.
    if let Some(folder) = file.parent().filter(|f| !f.as_os_str().is_empty())
        && !folder.exists()
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .with_context(|| format!("cannot make the folder {}", folder.display()))?;
    }
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
    registry_ca: Option<&Path>,
    key_files: &[PathBuf],
    token: &str,
    valid_for: jiff::SignedDuration,
    beyond_default_policy: bool,
) -> anyhow::Result<()> {
    let url = releases::parse_registry_url(registry)?;
    let ca = registry_ca
        .map(|file| std::fs::read(file).with_context(|| format!("cannot read {}", file.display())))
        .transpose()?;
    let tls = ClientTls::with_optional_ca(
        ca.as_deref(),
        &registry_ca
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
    )?;
    let keys = key_files
        .iter()
        .map(|p| KeyPair::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let key_refs: Vec<&KeyPair> = keys.iter().collect();
    // A crate is packaged first. Every check of `vendor check` runs before
    // anything is pushed or signed: a release no node would install is
    // refused while its version number is still free.
    let package = crate::vendor::package_of(package_dir, &crate::vendor::PackageOptions::default())
        .and_then(|package| crate::vendor::check(&package, beyond_default_policy).map(|_| package))
        .map_err(|error| {
            anyhow::anyhow!("{error:#}\nNothing was pushed; fix the release and publish it again")
        })?;
    let (checked, outcome) = runtime()?.block_on(releases::publish(
        &package, &url, &tls, token, &key_refs, valid_for,
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
