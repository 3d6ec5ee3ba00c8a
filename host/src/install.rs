//! Installing, upgrading and removing plugins.
//!
//! An install either completes or leaves the node as it was:
//!
//! 1. read the package (cap-std) and parse its manifest;
//! 2. hold the manifest against the operator's policy;
//! 3. check the file really is a WebAssembly component;
//! 4. compile it (into the cache) and check its imports and exports against
//!    the manifest (`contract`), then link it; only then compare it with
//!    what is installed (no downgrades, no new code under an old version);
//! 5. call `info` (the version must match the manifest);
//! 6. open one database write transaction; call `migrate` with the plugin's
//!    `kv` writes going into it, then `health`; write the install record and
//!    the component into it too, and commit. If any step fails the
//!    transaction is dropped: no record, no migrated data, the previous
//!    version (if any) still active;
//! 7. swap the new version into the plugin table; calls already running
//!    finish on the old one.
//!
//! Success or not, the node then drops compiled code and asset folders that
//! no installed version refers to.
//!
//! Steps 3 to 5, but for the comparison with what is installed, are
//! [`Node::check_package`] (`release_check`): the same checks `outpost
//! vendor publish` and the registry run before a release exists.

use crate::bindings::lifecycle::{HealthReport, HealthStatus};
use crate::call::CallError;
use crate::compile_cache::{CacheOutcome, CompileError, sha256_hex};
use crate::manifest::{ManifestError, PluginId};
use crate::node::Node;
use crate::package::{self, PackageError};
use crate::plugins::{LinkError, PluginSlot};
use crate::store::{InstalledVersion, NodeStore, PluginRecord, StoreError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{path}: {source}")]
    Policy {
        path: PathBuf,
        source: ManifestError,
    },
    #[error(
        "{path} is not WebAssembly (it starts with {start}); a plugin is a component built for wasm32-wasip2"
    )]
    NotWasm { path: PathBuf, start: String },
    #[error(
        "{path} is a core WebAssembly module, not a component; build the plugin with \
         `cargo build --target wasm32-wasip2` (or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule { path: PathBuf },
    #[error("{path} uses WebAssembly binary version {version:#x}, which this node cannot read")]
    UnknownEncoding { path: PathBuf, version: u32 },
    #[error("{path}: {source}")]
    Compile { path: PathBuf, source: CompileError },
    #[error("{path}: {source}")]
    Contract { path: PathBuf, source: LinkError },
    #[error(
        "the component reports version {reported}, but plugin.toml says {manifest}; rebuild it or fix the manifest"
    )]
    VersionMismatch { reported: String, manifest: String },
    #[error("{id}@{version}'s health check failed at install: {detail}")]
    Unhealthy {
        id: PluginId,
        version: semver::Version,
        detail: String,
    },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(
        "{id}@{version} is already installed with a different component; a changed component needs a new version number"
    )]
    SameVersionDifferentCode {
        id: PluginId,
        version: semver::Version,
    },
    #[error(
        "{id} {installed} is installed and {offered} is older; downgrades are refused (remove the plugin first)"
    )]
    Downgrade {
        id: PluginId,
        installed: semver::Version,
        offered: semver::Version,
    },
    #[error("cannot install assets into {path}: {source}")]
    Assets {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] crate::node::NodeError),
}

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub id: String,
    pub version: String,
    /// The version it replaced, if it was an upgrade.
    pub previous: Option<String>,
    pub world: String,
    pub grants: String,
    pub deadline_ms: u64,
    pub memory_mib: u64,
    pub fuel: Option<u64>,
    /// False when this exact version was already installed.
    pub changed: bool,
    /// True when the component was compiled now rather than found compiled.
    pub compiled: bool,
    pub health: String,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_seconds() -> u64 {
    now_millis() / 1000
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// "ok", "degraded" or "failing".
pub fn health_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Ok => "ok",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Failing => "failing",
    }
}

/// "ok: rendered 3 labels".
pub fn describe_health(report: &HealthReport) -> String {
    let status = health_name(report.status);
    if report.detail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {}", report.detail)
    }
}

/// Writes a package's assets under `target`, replacing what was there.
pub(crate) fn install_assets(
    target: &Path,
    files: &[package::AssetFile],
) -> Result<(), InstallError> {
    let error = |path: &Path, source| InstallError::Assets {
        path: path.to_path_buf(),
        source,
    };
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(|e| error(target, e))?;
    }
    std::fs::create_dir_all(target).map_err(|e| error(target, e))?;
    for file in files {
        let path = target.join(&file.relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| error(parent, e))?;
        }
        std::fs::write(&path, &file.bytes).map_err(|e| error(&path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444));
        }
    }
    Ok(())
}

impl Node {
    /// Installs or upgrades the plugin package at `path`.
    pub fn install(&self, path: &Path) -> Result<InstallReport, InstallError> {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = self.install_locked(path);
        // Whatever happened, drop compiled code and asset folders that no
        // installed version refers to: a refused component leaves nothing.
        self.tidy()?;
        result
    }

    fn install_locked(&self, path: &Path) -> Result<InstallReport, InstallError> {
        let package = package::read(path, self.config.policy.max_assets_bytes)?;
        let manifest_path = package.folder.join(crate::manifest::MANIFEST_FILE_NAME);
        let manifest = &package.manifest;
        let limits = manifest
            .limits_under(&self.config.policy)
            .map_err(|source| InstallError::Policy {
                path: manifest_path.clone(),
                source,
            })?;
        let digest = sha256_hex(&package.component);
        let id = manifest.id.clone();
        let version = manifest.version.clone();
        let existing = self.store.plugin(&id)?;
        let unchanged = existing.as_ref().is_some_and(|record| {
            record.active.version == version && record.active.component_digest == digest
        });
        if unchanged && let Some(PluginSlot::Loaded(_)) = self.table.get(&id) {
            return Ok(InstallReport {
                id: id.to_string(),
                version: version.to_string(),
                previous: None,
                world: manifest.world.qualified_name(),
                grants: manifest.grants.describe(),
                deadline_ms: limits.deadline.as_millis() as u64,
                memory_mib: limits.memory_bytes >> 20,
                fuel: limits.fuel,
                changed: false,
                compiled: false,
                health: "unchanged".into(),
            });
        }

        // The package's own checks; between linking and the first call, it
        // is compared with what is installed (a broken component is the
        // problem to report whatever else is installed, and the assets of an
        // installed version must not be replaced by a refused one).
        let (plugin, outcome) = self.check_package(&package, &digest, || {
            let Some(existing) = &existing else {
                return Ok(());
            };
            let installed = &existing.active;
            if installed.version == version && installed.component_digest != digest {
                return Err(InstallError::SameVersionDifferentCode {
                    id: id.clone(),
                    version: version.clone(),
                });
            }
            if installed.version > version {
                return Err(InstallError::Downgrade {
                    id: id.clone(),
                    installed: installed.version.clone(),
                    offered: version.clone(),
                });
            }
            Ok(())
        })?;

        let grants = manifest.grants.clone();
        let health = self.activate(
            &plugin,
            existing.as_ref(),
            &package.component,
            &digest,
            grants,
        )?;
        let plugin = Arc::new(plugin);
        self.table.put(PluginSlot::Loaded(plugin.clone()));
        tracing::info!(plugin = %id, %version, "installed");
        Ok(InstallReport {
            id: id.to_string(),
            version: version.to_string(),
            previous: existing
                .map(|r| r.active.version.to_string())
                .filter(|previous| *previous != version.to_string()),
            world: plugin.manifest.world.qualified_name(),
            grants: plugin.spec.grants.describe(),
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_mib: limits.memory_bytes >> 20,
            fuel: limits.fuel,
            changed: true,
            compiled: outcome == CacheOutcome::Compiled,
            health,
        })
    }

    /// Step 6: migrate and health in one transaction with the install
    /// record.
    fn activate(
        &self,
        plugin: &crate::plugins::LoadedPlugin,
        existing: Option<&PluginRecord>,
        wasm: &[u8],
        digest: &str,
        grants: crate::manifest::Grants,
    ) -> Result<String, InstallError> {
        let from_version = existing.map(|r| r.active.version.to_string());
        let txn = self.store.begin_write()?;
        let (migrated, txn) =
            self.invoker
                .call_batched(plugin, "migrate", txn, |store, instance, plugin| {
                    let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                    lifecycle.call_migrate(&mut *store, from_version.as_deref())
                });
        migrated?;
        let txn = txn.ok_or_else(|| StoreError::Record {
            what: "the install transaction".into(),
            detail: "it was lost during migrate".into(),
        })?;
        let (health, txn) =
            self.invoker
                .call_batched(plugin, "health", txn, |store, instance, plugin| {
                    let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                    lifecycle.call_health(&mut *store).map(Ok)
                });
        let health = health?;
        if health.status == HealthStatus::Failing {
            return Err(InstallError::Unhealthy {
                id: plugin.id().clone(),
                version: plugin.version.clone(),
                detail: health.detail,
            });
        }
        let txn = txn.ok_or_else(|| StoreError::Record {
            what: "the install transaction".into(),
            detail: "it was lost during health".into(),
        })?;
        let installed = InstalledVersion {
            version: plugin.version.clone(),
            manifest: plugin.manifest.text.clone(),
            component_digest: digest.to_string(),
            component_bytes: wasm.len() as u64,
            grants,
            installed_at: now_seconds(),
        };
        let record = PluginRecord {
            id: plugin.id().clone(),
            active: installed,
            previous: existing
                .map(|r| r.active.clone())
                .filter(|previous| previous.version != plugin.version),
        };
        NodeStore::put_plugin(&txn, &record, wasm)?;
        NodeStore::drop_unreferenced_components(&txn)?;
        self.store.commit(txn)?;
        Ok(describe_health(&health))
    }

    /// Removes a plugin; with `purge`, its stored data too.
    pub fn remove(&self, id: &PluginId, purge: bool) -> Result<bool, StoreError> {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed = self.store.remove_plugin(id, purge)?;
        self.table.remove(id);
        self.tidy()?;
        if removed {
            tracing::info!(plugin = %id, purge, "removed");
        }
        Ok(removed)
    }
}
