//! Installing and removing plugins by hand: the errors an install can meet
//! and what it reports. An install is an update the operator approved and
//! wants now; it goes through `crate::updates` like every other change, so
//! it either completes or leaves the node as it was:
//!
//! 1. read the package (cap-std) and parse its manifest; hold it against the
//!    operator's policy;
//! 2. check the file really is a WebAssembly component, compile it (into the
//!    cache), check its imports and exports against the manifest
//!    (`contract`) and link it; only then compare it with what is installed
//!    (no downgrades, no new code under an old version); call `info` (the
//!    version must match the manifest). These are [`Node::check_package`]
//!    (`release_check`): the same checks `outpost vendor publish` and the
//!    registry run before a release exists;
//! 3. stage it, then activate it in one transaction (`migrate` and `health`
//!    with the install record); swap it into the plugin table.
//!
//! Success or not, the node then drops compiled code and asset folders that
//! no installed or staged version refers to.

use crate::call::CallError;
use crate::compile_cache::CompileError;
use crate::manifest::{ManifestError, PluginId};
use crate::package::{self, PackageError};
use crate::plugins::LinkError;
use crate::store::StoreError;
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    #[error("{0}")]
    Update(String),
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
    /// "confirmed" for a new plugin, "probation" for an upgrade (see
    /// `crate::updates`).
    pub state: String,
    pub health: String,
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
