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

/// The node's install checks, independent of any one node's policy.
pub trait ReleaseCheck: Send + Sync {
    /// `Err` says, in the node's words, why every node would refuse it.
    fn check(&self, files: &PackageFiles) -> Result<(), String>;
}
