//! What the node trusts and what its registry offers: provisioning the root
//! of trust, refreshing the signed metadata, listing the signed releases,
//! and exporting them as a bundle for a node with no network. Refreshing
//! writes the metadata the node accepted (and the clock reading it was
//! accepted at), so it is a change like any other: a running node makes it,
//! asked over the admin channel. Each takes the node's `checking` lock, as
//! the update agent's checks do: a refresh that started under the old root
//! must not write its metadata back over a new one.

use super::ControlError;
use crate::node::Node;
use crate::releases::{self, ReleaseError};
use outpost_registry::client::MetadataSource;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `PUT /admin/v1/trust`: the root of trust to provision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRequest {
    /// The root metadata's text (`root.json`), as the operator's file holds it.
    pub root: String,
    /// Where it came from, to name it in errors.
    pub root_file: String,
    /// The registry to install from by default.
    #[serde(default)]
    pub registry: Option<String>,
    /// The CA (PEM text) the registry's HTTPS certificate chains to, when
    /// it is the fleet's own, and the file it came from.
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// What was provisioned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provisioned {
    pub root_version: u64,
    /// How many root keys must sign, of how many.
    pub threshold: u64,
    pub root_keys: usize,
    pub expires: String,
    pub registry: Option<String>,
    /// Whether the registry's certificate is checked against a CA of the
    /// fleet's own besides the system's.
    #[serde(default)]
    pub fleet_ca: bool,
}

/// `GET /admin/v1/trust`: what the node trusts now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustView {
    pub registry: Option<String>,
    #[serde(default)]
    pub fleet_ca: bool,
    /// root, then timestamp, snapshot and targets when accepted.
    pub roles: Vec<RoleView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleView {
    pub role: String,
    pub version: u64,
    pub expires: String,
}

/// `POST /admin/v1/trust/refresh`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[serde(default)]
    pub registry: Option<String>,
    /// Forget the clock reading of the last refresh first (`--clock-was-wrong`).
    #[serde(default)]
    pub clock_was_wrong: bool,
}

/// What a refresh accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refreshed {
    pub root_version: u64,
    pub timestamp_version: u64,
    pub releases: usize,
    pub expires: String,
    /// The clock reading forgotten first, if asked and there was one.
    pub forgot_clock: Option<String>,
}

/// One signed release (`GET /admin/v1/releases`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRow {
    pub plugin: String,
    pub version: String,
    pub world: String,
    pub grants: String,
    pub digest: String,
    pub bytes: u64,
}

/// `POST /admin/v1/bundles`: releases to carry to a node with no network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRequest {
    /// `vendor/name[@requirement]` each.
    pub plugins: Vec<String>,
    /// Where to write it: an absolute path, written by the node's user
    /// (the node's working directory is not the operator's).
    pub output: String,
    #[serde(default)]
    pub registry: Option<String>,
}

/// What a bundle holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleWritten {
    pub output: String,
    pub releases: Vec<String>,
    pub metadata_files: usize,
}

/// Blocks: call it off async tasks.
pub fn provision(node: &Node, request: &TrustRequest) -> Result<Provisioned, ControlError> {
    let _checking = node.checking.blocking_lock();
    let registry = request
        .registry
        .as_deref()
        .map(releases::parse_registry_url)
        .transpose()?;
    let ca = request.ca.as_ref().map(|pem| releases::ProvisionedCa {
        pem: pem.clone(),
        file: request
            .ca_file
            .clone()
            .unwrap_or_else(|| "the CA certificate".into()),
    });
    let signed = releases::provision(
        node.store(),
        Path::new(&request.root_file),
        request.root.as_bytes(),
        registry.as_ref(),
        ca.as_ref(),
    )?;
    let (threshold, root_keys) = signed
        .signed
        .roles
        .get(&outpost_registry::tough::schema::RoleType::Root)
        .map(|role| (role.threshold.get(), role.keyids.len()))
        .unwrap_or_default();
    Ok(Provisioned {
        root_version: signed.signed.version.get(),
        threshold,
        root_keys,
        expires: signed.signed.expires.strftime("%Y-%m-%d").to_string(),
        registry: registry.map(|url| url.to_string()),
        fleet_ca: ca.is_some(),
    })
}

pub fn view(node: &Node) -> Result<TrustView, ControlError> {
    let Some(settings) = node.store().trust_settings()? else {
        return Err(ReleaseError::NotProvisioned.into());
    };
    let seen = node.store().trust_seen()?;
    let root = seen
        .get("root.json")
        .map(|bytes| bytes.as_slice())
        .unwrap_or(settings.root.as_bytes());
    let mut roles = vec![role_of("root", root)?];
    for role in ["timestamp", "snapshot", "targets"] {
        if let Some(bytes) = seen.get(&format!("{role}.json")) {
            roles.push(role_of(role, bytes)?);
        }
    }
    Ok(TrustView {
        registry: settings.registry,
        fleet_ca: settings.ca.is_some(),
        roles,
    })
}

/// A role's version and expiry, read from its accepted metadata.
fn role_of(role: &str, bytes: &[u8]) -> Result<RoleView, ControlError> {
    let damaged = |detail: String| crate::store::StoreError::Record {
        what: format!("the accepted {role} metadata"),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
    let version = value
        .pointer("/signed/version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| damaged("it has no version".into()))?;
    let expires = value
        .pointer("/signed/expires")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| damaged("it has no expiry".into()))?;
    Ok(RoleView {
        role: role.to_string(),
        version,
        expires: expires.to_string(),
    })
}

pub async fn refresh(node: &Node, request: &RefreshRequest) -> Result<Refreshed, ControlError> {
    let _checking = node.checking.lock().await;
    let forgot_clock = if request.clock_was_wrong {
        node.store().forget_trust_clock()?
    } else {
        None
    };
    let index = refreshed(node, request.registry.as_deref()).await?;
    Ok(Refreshed {
        root_version: index.root_version,
        timestamp_version: index.timestamp_version,
        releases: index.releases.len(),
        expires: index.expires.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        forgot_clock,
    })
}

/// The signed releases whose plugin id contains `query`, after a refresh.
pub async fn releases(
    node: &Node,
    query: Option<&str>,
    registry: Option<&str>,
) -> Result<Vec<ReleaseRow>, ControlError> {
    let _checking = node.checking.lock().await;
    let index = refreshed(node, registry).await?;
    Ok(index
        .releases
        .iter()
        .filter(|r| query.is_none_or(|q| r.plugin.contains(q)))
        .map(|r| ReleaseRow {
            plugin: r.plugin.clone(),
            version: r.version.to_string(),
            world: r.info.world.clone(),
            grants: r.info.grants.clone(),
            digest: r.digest(),
            bytes: r.length,
        })
        .collect())
}

pub async fn export_bundle(
    node: &Node,
    request: &BundleRequest,
) -> Result<BundleWritten, ControlError> {
    let output = Path::new(&request.output);
    if !output.is_absolute() {
        return Err(ControlError::BadRequest(format!(
            "output: {} is not an absolute path (the node writes it, from its own working \
             directory)",
            request.output
        )));
    }
    // The node's own files (its database among them) are not a place for a
    // bundle: writing one there would destroy them.
    let data_dir = node.data_dir();
    let data_dirs: Vec<std::path::PathBuf> =
        [std::path::absolute(data_dir), data_dir.canonicalize()]
            .into_iter()
            .flatten()
            .collect();
    let inside = |path: &Path| data_dirs.iter().any(|dir| path.starts_with(dir));
    if inside(output) || output.canonicalize().is_ok_and(|real| inside(&real)) {
        return Err(ControlError::BadRequest(format!(
            "output: {} is inside the node's data directory {}; write the bundle elsewhere \
             (a USB stick, /tmp)",
            request.output,
            data_dir.display()
        )));
    }
    if request.plugins.is_empty() {
        return Err(ControlError::BadRequest(
            "plugins: name at least one, as vendor/name or vendor/name@^1.2".into(),
        ));
    }
    let _checking = node.checking.lock().await;
    let wanted = request
        .plugins
        .iter()
        .map(|plugin| releases::Wanted::parse(plugin))
        .collect::<Result<Vec<_>, _>>()?;
    let url = registry_url(node, request.registry.as_deref())?;
    let bundle = releases::export_bundle(
        node.store(),
        &node.data_dir().join("downloads"),
        &url,
        &wanted,
        output,
        &|_| {},
    )
    .await?;
    Ok(BundleWritten {
        output: request.output.clone(),
        releases: bundle.releases,
        metadata_files: bundle.metadata.len(),
    })
}

/// `registry`, or the node's default registry.
fn registry_url(node: &Node, registry: Option<&str>) -> Result<url::Url, ControlError> {
    Ok(match registry {
        Some(text) => releases::parse_registry_url(text)?,
        None => releases::parse_registry_url(
            &node
                .store()
                .trust_settings()?
                .and_then(|s| s.registry)
                .ok_or(ReleaseError::NoRegistry)?,
        )?,
    })
}

async fn refreshed(
    node: &Node,
    registry: Option<&str>,
) -> Result<outpost_registry::client::Index, ControlError> {
    let url = registry_url(node, registry)?;
    Ok(releases::refresh(node.store(), &MetadataSource::Registry(url)).await?)
}
