//! The checks a node makes of a package before installing it, run by the
//! registry before it stores a plugin's manifest.
//!
//! Versions are immutable: a release every node refuses would burn its
//! number for good, and "install the newest" would fail for every operator.
//! The checks themselves (manifest, component, contract, the version the
//! component reports) belong to the node runtime, which this crate cannot
//! depend on; whoever starts the server hands them in, so the registry and
//! the node run one implementation.

/// A package as the files a node would install: `plugin.toml`, the
/// component, and `assets/…`, by relative path.
pub type PackageFiles = Vec<(String, Vec<u8>)>;

/// Why a release did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckRefusal {
    /// Every node would refuse it; in the node's words.
    #[error("{0}")]
    Refused(String),
    /// Not the release's fault: the checks could not run here (no room for
    /// a temporary folder, say). The push may be tried again.
    #[error("{0}")]
    Unavailable(String),
}

/// The node's install checks, independent of any one node's policy.
pub trait ReleaseCheck: Send + Sync {
    fn check(&self, files: &PackageFiles) -> Result<(), CheckRefusal>;

    /// The most bytes a package may hold in all (component, `plugin.toml`
    /// and assets, a file counted once per path): what a node would read
    /// at most. The registry refuses a larger one from the manifest's sizes,
    /// before reading anything.
    fn max_package_bytes(&self) -> u64;
}

/// The most files a package may hold: a manifest of 256 KiB could
/// otherwise name thousands of layers, every one the same large blob.
pub const MAX_PACKAGE_FILES: usize = 1024;
