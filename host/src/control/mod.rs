//! The control plane: every change an operator makes to a node, in one
//! place. The admin channel (`api::admin`, a Unix socket only the node's
//! user can open), the CLI when no node runs (the same routes, in-process)
//! and the update agent all come here, so a change made while the node
//! serves and one made while it is stopped are the same code.
//!
//! What is not here on purpose: trading (the app API's routes) and anything
//! an app holding the API token can reach. Installing code and replacing
//! keys need the admin channel.

use crate::keystore::{self, KeySummary, KeystoreError};
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::releases::{self, ReleaseError, Source, Wanted};
use crate::store::{InstalledVersion, StoreError, Transition, UpdateRecord};
use crate::updates::{self, Offer, UpdateError, agent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod approve;
pub mod fleet;
pub mod trust;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Update(#[from] UpdateError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// `POST /admin/v1/plugins`: what to install.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallRequest {
    /// A package folder or bundle path (absolute: the node's working
    /// directory is not the operator's), `oci://…`, or `vendor/name[@req]`.
    pub spec: String,
    #[serde(default)]
    pub registry: Option<String>,
    /// Which plugin of a bundle.
    #[serde(default)]
    pub plugin: Option<String>,
    /// The operator agreed to what it asks for (`--yes`).
    #[serde(default)]
    pub approve: bool,
    /// `spec` is a package (a folder, its plugin.toml or its component),
    /// not a signed release (`outpost plugin add`).
    #[serde(default)]
    pub package: bool,
}

/// What an install did, or where it waits.
#[derive(Debug, Clone, Serialize)]
pub struct InstallOutcome {
    pub update: UpdateRecord,
    /// "verified acme/zpl@1.3.0 (sha256:…, signed metadata valid until …)"
    /// for a signed release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<crate::node::PluginStatus>,
}

/// `outpost plugin info`: a plugin's versions and its update.
#[derive(Debug, Clone, Serialize)]
pub struct PluginVersions {
    pub plugin: crate::node::PluginStatus,
    pub active: Option<InstalledVersion>,
    /// Kept while the active version is on probation.
    pub previous: Option<InstalledVersion>,
    pub update: Option<UpdateRecord>,
    pub follows: Option<String>,
    pub blocked: BTreeMap<String, String>,
    /// What it stores: `{"bytes", "keys"}`.
    pub kv: serde_json::Value,
    /// Its health export now, if it is loaded.
    pub health: Option<serde_json::Value>,
    /// Its exported functions, as `outpost call` takes them.
    pub exports: Vec<String>,
}

/// `outpost update status`.
#[derive(Debug, Clone, Serialize)]
pub struct UpdatesView {
    pub updates: Vec<UpdateRecord>,
    pub follows: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<crate::update_lock::LockView>,
}

/// Runs blocking control work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ControlError::BadRequest(format!("the node stopped the work: {e}")))?
}

pub fn plugin_id(text: &str) -> Result<PluginId, ControlError> {
    PluginId::parse(text).map_err(|why| {
        ControlError::BadRequest(format!("{why}; `outpost plugin list` shows the ids"))
    })
}

/// Installs (or upgrades) from what the operator named, activating now.
/// Without `approve`, a package that asks for capabilities the operator has
/// not agreed to is staged and held: the answer shows what it asks, and
/// `approve` (or `reject`) decides.
pub async fn install(
    node: &Arc<Node>,
    request: InstallRequest,
) -> Result<InstallOutcome, ControlError> {
    let InstallRequest {
        spec,
        registry,
        plugin,
        approve,
        package,
    } = request;
    let folder = PathBuf::from(&spec);
    if package || folder.is_dir() {
        let node = node.clone();
        return blocking(move || {
            let offer = Offer {
                folder: &folder,
                source: format!("package {}", folder.display()),
                approved: approve,
                now: true,
            };
            let update = updates::offer(&node, offer, None)?;
            Ok(outcome(&node, update, None))
        })
        .await;
    }
    let mut source = Source::parse(&spec, registry.as_deref(), node.store())?;
    match (&mut source, plugin) {
        (Source::Bundle { wanted, .. }, Some(plugin)) => *wanted = Some(Wanted::parse(&plugin)?),
        (_, Some(_)) => {
            return Err(ControlError::BadRequest(format!(
                "--plugin picks a plugin from a bundle; {spec} is not a bundle"
            )));
        }
        (_, None) => {}
    }
    let described = match &source {
        Source::Registry { url, .. } => format!("registry {url}"),
        Source::Oci {
            base, repository, ..
        } => format!("oci {base}{repository}"),
        Source::Bundle { path, .. } => format!("bundle {}", path.display()),
    };
    let fetched = releases::fetch(
        node.store(),
        &node.data_dir().join("downloads"),
        &source,
        &|_| {},
    )
    .await?;
    let release = &fetched.release;
    let verified = format!(
        "verified {}@{} (sha256:{}…, signed metadata valid until {})",
        release.plugin,
        release.version,
        release.sha256.get(..12).unwrap_or(&release.sha256),
        fetched.index.expires.strftime("%Y-%m-%d %H:%M UTC")
    );
    let folder = fetched.package.clone();
    let worker = node.clone();
    blocking(move || {
        let offer = Offer {
            folder: &folder,
            source: described,
            approved: approve,
            now: true,
        };
        let update = updates::offer(&worker, offer, None);
        let _ = std::fs::remove_dir_all(&folder);
        Ok(outcome(&worker, update?, Some(verified)))
    })
    .await
}

fn outcome(node: &Node, update: UpdateRecord, verified: Option<String>) -> InstallOutcome {
    InstallOutcome {
        plugin: node.plugin_status(&update.plugin),
        update,
        verified,
    }
}

/// Removes a plugin (with `purge`, its data). Ordered after any update step
/// in progress (they share the node's change lock); an update in flight is
/// dropped with it.
pub async fn remove(node: &Arc<Node>, plugin: PluginId, purge: bool) -> Result<bool, ControlError> {
    let node = node.clone();
    blocking(move || Ok(updates::remove(&node, &plugin, purge)?)).await
}

/// Sets (or with `None` clears) the version requirement a plugin follows.
pub async fn follow(
    node: &Arc<Node>,
    plugin: PluginId,
    requirement: Option<String>,
) -> Result<bool, ControlError> {
    if let Some(requirement) = &requirement {
        semver::VersionReq::parse(requirement).map_err(|e| {
            ControlError::BadRequest(format!(
                "{requirement:?} is not a version requirement ({e}); try ^1 or ~1.2"
            ))
        })?;
        if node.store().plugin(&plugin)?.is_none() {
            return Err(ControlError::NotFound(format!(
                "{plugin} is not installed; install it first (`outpost plugin install \
                 {plugin}@{requirement}`), then follow it"
            )));
        }
    }
    let node = node.clone();
    blocking(move || Ok(node.store().set_follow(&plugin, requirement.as_deref())?)).await
}

/// A plugin's versions, update, storage, health and exports. Calls its
/// health export: run it off the async threads.
pub fn versions(node: &Node, plugin: &PluginId) -> Result<PluginVersions, ControlError> {
    let status = node.plugin_status(plugin).ok_or_else(|| {
        ControlError::NotFound(format!(
            "{plugin} is not installed; `outpost plugin list` shows what is"
        ))
    })?;
    let record = node.store().plugin(plugin)?;
    let follows = agent::following(node)?.remove(plugin);
    let usage = node.store().kv_usage(plugin)?;
    let loaded = node.loaded(plugin);
    let health = loaded.as_ref().map(|loaded| match node.health(loaded) {
        Ok(report) => serde_json::json!({
            "status": crate::health::health_name(report.status),
            "detail": report.detail,
        }),
        Err(error) => serde_json::json!({ "status": "error", "detail": error.to_string() }),
    });
    let exports = loaded
        .as_ref()
        .map(|loaded| {
            crate::dynamic::exported_functions(node, loaded)
                .into_iter()
                .map(|f| format!("{}.{}", f.interface, f.signature))
                .collect()
        })
        .unwrap_or_default();
    Ok(PluginVersions {
        kv: serde_json::json!({ "bytes": usage.bytes, "keys": usage.keys }),
        health,
        exports,
        plugin: status,
        active: record.as_ref().map(|r| r.active.clone()),
        previous: record.and_then(|r| r.previous),
        update: node.store().update(plugin)?,
        follows,
        blocked: node
            .store()
            .blocked_versions(plugin)?
            .into_iter()
            .map(|(v, why)| (v.to_string(), why))
            .collect(),
    })
}

pub fn status(node: &Node) -> Result<UpdatesView, ControlError> {
    Ok(UpdatesView {
        updates: node.store().updates()?,
        follows: agent::following(node)?
            .into_iter()
            .map(|(id, req)| (id.to_string(), req))
            .collect(),
        window: node.config().updates.window().map(|w| w.to_string()),
        lock: node.update_lock.current(),
    })
}

pub fn history(
    node: &Node,
    plugin: Option<&PluginId>,
    limit: usize,
) -> Result<Vec<Transition>, ControlError> {
    Ok(node.store().update_history(plugin, limit)?)
}

/// What `outpost update apply | approve | reject | rollback` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    Apply,
    Approve,
    /// Drops a staged or held update; with `block`, that version is not
    /// offered again by an update.
    Reject {
        block: bool,
    },
    Rollback,
}

impl Steer {
    pub fn parse(verb: &str, block: bool) -> Option<Steer> {
        Some(match verb {
            "apply" => Steer::Apply,
            "approve" => Steer::Approve,
            "reject" => Steer::Reject { block },
            "rollback" => Steer::Rollback,
            _ => return None,
        })
    }
}

/// Steers the plugin's update in flight. With `seen`, the version the
/// operator looked at: if the update in flight is for another version by now
/// (the agent found a newer one), nothing is done.
pub async fn steer(
    node: &Arc<Node>,
    plugin: PluginId,
    steer: Steer,
    seen: Option<semver::Version>,
) -> Result<UpdateRecord, ControlError> {
    let node = node.clone();
    blocking(move || {
        if let Some(seen) = &seen
            && let Some(current) = node.store().update(&plugin)?
            && current.to != *seen
        {
            return Err(ControlError::Conflict(format!(
                "the update of {plugin} in flight is now {} (you looked at {seen}); see \
                 `outpost update status`, then try again",
                current.to
            )));
        }
        Ok(match steer {
            Steer::Apply => updates::apply(&node, &plugin)?,
            Steer::Approve => updates::approve(&node, &plugin)?,
            Steer::Reject { block } => {
                let record = node
                    .store()
                    .update(&plugin)?
                    .ok_or_else(|| UpdateError::NoUpdate(plugin.clone()))?;
                if record.state == crate::store::UpdateState::Probation {
                    return Err(ControlError::BadRequest(format!(
                        "{plugin} {} is already serving, on probation; use `outpost update \
                         rollback {plugin}` to go back",
                        record.to
                    )));
                }
                updates::roll_back(&node, &plugin, "rejected by the operator", block)?
            }
            Steer::Rollback => {
                updates::roll_back(&node, &plugin, "rolled back by the operator", true)?
            }
        })
    })
    .await
}

pub async fn check(node: &Arc<Node>) -> Result<Vec<agent::Checked>, ControlError> {
    Ok(agent::check(node).await?)
}

/// `POST /admin/v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRequest {
    pub plugin: String,
    pub name: String,
    /// The key as 64 hex digits; unset: the node makes one.
    #[serde(default)]
    pub import: Option<String>,
    #[serde(default)]
    pub replace: bool,
}

/// What adding a key did, and whether the plugin can use it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyAdded {
    pub key: KeySummary,
    pub sealed_under: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub async fn add_key(node: &Arc<Node>, request: KeyRequest) -> Result<KeyAdded, ControlError> {
    let id = plugin_id(&request.plugin)?;
    keystore::check_name(&request.name)?;
    let material = request
        .import
        .as_deref()
        .map(keystore::parse_import)
        .transpose()?;
    let node = node.clone();
    blocking(move || {
        let key = node
            .keystore()
            .provision(&id, &request.name, material, request.replace)?;
        let name = &request.name;
        let note = match node.loaded(&id) {
            Some(plugin) if !plugin.manifest.grants.keystore.iter().any(|k| k == name) => {
                Some(format!(
                    "{id}'s manifest does not ask for a key {name:?} (it asks for: {}); it \
                     cannot use this one",
                    if plugin.manifest.grants.keystore.is_empty() {
                        "none".to_string()
                    } else {
                        plugin.manifest.grants.keystore.join(", ")
                    }
                ))
            }
            Some(_) => None,
            None if node.plugin_status(&id).is_none() => Some(format!(
                "{id} is not installed yet; it gets this key when it is"
            )),
            None => None,
        };
        Ok(KeyAdded {
            key,
            sealed_under: node.keystore().node_key_path().display().to_string(),
            note,
        })
    })
    .await
}

pub async fn remove_key(
    node: &Arc<Node>,
    plugin: PluginId,
    name: String,
) -> Result<bool, ControlError> {
    let node = node.clone();
    blocking(move || Ok(node.keystore().remove(&plugin, &name)?)).await
}

pub fn keys(node: &Node, plugin: Option<&PluginId>) -> Result<Vec<KeySummary>, ControlError> {
    Ok(node.keystore().list(plugin)?)
}

/// Starts the node's background work: outbox delivery, the update agent
/// and the fleet agent. `outpost run` binds sockets and calls this;
/// nothing else.
pub fn start_background<F>(
    node: &Arc<Node>,
    shutdown: impl Fn() -> F,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    vec![
        tokio::spawn(crate::outbox::delivery::run(
            node.outbox().clone(),
            node.config().outbox.clone(),
            shutdown(),
        )),
        tokio::spawn(agent::run(node.clone(), shutdown())),
        tokio::spawn(fleet::run(node.clone(), shutdown())),
        tokio::spawn(crate::telemetry::run(node.clone(), shutdown())),
        tokio::spawn(sample_measures(node.clone(), shutdown())),
        tokio::spawn(crate::backup::local::run(node.clone(), shutdown())),
    ]
}

/// A sample of the business measures a minute, for the console's charts.
async fn sample_measures(node: Arc<Node>, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut minutes = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = minutes.tick() => node.metrics().sample(),
            () = &mut shutdown => return,
        }
    }
}
