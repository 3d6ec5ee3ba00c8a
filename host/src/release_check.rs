//! The checks a node makes of a package at install that depend on nothing
//! but the package: its `plugin.toml` parses, its component is a component,
//! compiles, imports only what the manifest grants and exports the world it
//! names, links with what a node provides, and its `info` reports the
//! version `plugin.toml` says.
//!
//! One implementation, three callers. [`Node::check_package`] is steps 3 to
//! 5 of every install (`install`). `outpost vendor publish`
//! ([`crate::releases::publish`]) runs it through [`check_package`] before
//! anything is pushed, and the registry through [`ReleaseChecker`] before
//! it stores a pushed manifest: versions are immutable, so a release every
//! node would refuse must be refused while its number is still free.
//!
//! Outside a node the checks run on a throwaway one ([`ReleaseChecker`]),
//! opened in a temporary folder with the embedded defaults: the same engine
//! configuration, linker, sandbox and limits as a node that was just set up.
//! Three differences, all because the checks may run on a registry, on
//! code nobody has approved yet:
//!
//! - what one operator's policy decides is not checked (which grants a node
//!   allows, how much time, memory or storage a plugin may ask for, the size
//!   of its assets): each node holds the manifest against its own policy at
//!   install. A manifest asking for more than a default node allows is
//!   checked with the default maxima instead (5 s and 64 MiB for `info`),
//!   so a release cannot hold the machine checking it for longer, or make
//!   it use more, than a default node would;
//! - `info` gets no outbound HTTP, whatever the manifest grants: the
//!   registry must not make requests a vendor chose (nodes run offline too,
//!   so `info` must answer without the network);
//! - nothing that depends on a node's state is checked: what is installed
//!   (downgrades), its keys and its configuration (`migrate` and `health`
//!   run at install only).

use crate::compile_cache::{CacheOutcome, CompileCache, sha256_hex};
use crate::config::{EngineSettings, NodeConfig, Policy};
use crate::engine::EngineKind;
use crate::install::{InstallError, install_assets};
use crate::manifest::{MANIFEST_FILE_NAME, Manifest};
use crate::node::{Node, NodeOptions, PrepareError};
use crate::package::{self, Package, PackageError};
use crate::plugins::LoadedPlugin;
use outpost_registry::release_check::{CheckRefusal, PackageFiles, ReleaseCheck};
use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Pool slots of a throwaway node: it makes one call.
const CHECK_POOL_SLOTS: u32 = 2;

/// Components whose machine code a [`ReleaseChecker`] keeps, and the most
/// bytes of it: a vendor pushing large components cannot pin much memory.
const REMEMBERED_COMPONENTS: usize = 8;
const REMEMBERED_BYTES: usize = 128 << 20;

/// The most assets a package may hold: what a node on the default policy
/// reads, so a release passing here is not refused by default nodes for
/// its size.
pub fn max_assets_bytes() -> u64 {
    Policy::default().max_assets_bytes
}

/// Why a package is not a release any node would install.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseCheckError {
    /// The package cannot be read, or its `plugin.toml` is not valid.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A node's install check refused it.
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(
        "the release has no {MANIFEST_FILE_NAME}; a release holds {MANIFEST_FILE_NAME}, the component it names, and optionally assets/ (push it with `outpost vendor publish`)"
    )]
    NoManifest,
    #[error("the release holds {path:?}, which is not a plain relative path inside a package")]
    BadPath { path: String },
    #[error("the release holds {path:?} twice")]
    Duplicate { path: String },
    #[error(
        "{MANIFEST_FILE_NAME} grants `assets`, but the release has no assets/ files; add them to the package's assets/ folder, or remove `assets = true`"
    )]
    NoAssets,
    /// Not the package's fault: the checks could not run here.
    #[error("cannot run the install checks: {0}")]
    Setup(String),
}

/// What the checks found a package to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRelease {
    pub id: String,
    pub version: semver::Version,
    /// The world, qualified: `outpost:plugins/printer-driver@0.1.0`.
    pub world: String,
    pub grants: String,
}

/// Checks the 8-byte header: `\0asm`, then the version and layer fields that
/// tell a component (layer 1) from a core module (version 1, layer 0).
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let start: String = bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(InstallError::NotWasm {
            path: path.to_path_buf(),
            start: if start.is_empty() {
                "nothing: it is empty".into()
            } else {
                format!("bytes {start}")
            },
        });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    match (layer, version) {
        (0, 1) => Err(InstallError::CoreModule {
            path: path.to_path_buf(),
        }),
        (1, _) => Ok(()),
        _ => Err(InstallError::UnknownEncoding {
            path: path.to_path_buf(),
            version: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }),
    }
}

impl Node {
    /// The install checks of `package` (whose component has sha-256
    /// `digest`) that depend on nothing but the package, in install's order:
    ///
    /// 1. the file is a WebAssembly component, not a core module or junk;
    /// 2. it compiles (into the compile cache);
    /// 3. it imports only what the manifest grants and what a node
    ///    provides, exports the manifest's world (`contract`), and links;
    /// 4. `before_running` runs (install compares the package with what is
    ///    installed here), then the assets are put in place, since `info`
    ///    may read them;
    /// 5. `info` reports the version `plugin.toml` says.
    ///
    /// The caller has held the manifest against this node's policy first.
    /// Returns the linked plugin, not yet in the plugin table.
    pub(crate) fn check_package(
        &self,
        package: &Package,
        digest: &str,
        before_running: impl FnOnce() -> Result<(), InstallError>,
    ) -> Result<(LoadedPlugin, CacheOutcome), InstallError> {
        let manifest = &package.manifest;
        let manifest_path = package.folder.join(MANIFEST_FILE_NAME);
        let component_path = package.folder.join(&manifest.component);
        check_header(&component_path, &package.component)?;
        let (plugin, outcome) = self
            .prepare(manifest.clone(), None, digest, || {
                Ok(package.component.clone())
            })
            .map_err(|error| match error {
                PrepareError::Policy(source) => InstallError::Policy {
                    path: manifest_path,
                    source,
                },
                PrepareError::Compile(source) => InstallError::Compile {
                    path: component_path.clone(),
                    source,
                },
                PrepareError::Link(source) => InstallError::Contract {
                    path: component_path.clone(),
                    source,
                },
                PrepareError::Node(error) => InstallError::Node(error),
            })?;
        before_running()?;
        if manifest.grants.assets
            && let Some(files) = &package.assets
        {
            install_assets(&self.assets_dir(&manifest.id, &manifest.version), files)?;
        }
        let info = self.info(&plugin)?;
        if info.version != plugin.version.to_string() {
            return Err(InstallError::VersionMismatch {
                reported: info.version,
                manifest: plugin.version.to_string(),
            });
        }
        Ok((plugin, outcome))
    }
}

/// `manifest` as the checks run it: what it asks for beyond `policy`'s
/// maxima is lowered to them (see the module's documentation).
fn within(policy: &Policy, manifest: &Manifest) -> Manifest {
    let mut manifest = manifest.clone();
    let lower = |asked: &mut u64, most: u64| *asked = (*asked).min(most);
    let limits = &mut manifest.limits;
    for (asked, most) in [
        (&mut limits.deadline_ms, policy.max_deadline_ms),
        (&mut limits.memory_mib, policy.max_memory_mib),
        (&mut limits.concurrency, u64::from(policy.max_concurrency)),
        (&mut limits.fuel, policy.max_fuel.unwrap_or(u64::MAX)),
    ] {
        if let Some(asked) = asked {
            lower(asked, most);
        }
    }
    let grants = &mut manifest.grants;
    if let Some(kv) = &mut grants.kv {
        lower(&mut kv.quota_bytes, policy.max_kv_quota_bytes);
    }
    if let Some(scratch) = &mut grants.scratch {
        lower(&mut scratch.quota_bytes, policy.max_scratch_quota_bytes);
    }
    if let Some(outbox) = &mut grants.outbox {
        outbox.max_pending = outbox.max_pending.min(policy.max_outbox_pending);
        lower(&mut outbox.quota_bytes, policy.max_outbox_quota_bytes);
    }
    manifest
}

/// Runs a node's install checks on packages, each on a throwaway node of
/// its own (see the module's documentation). It keeps the machine code of
/// the last few components it compiled, as a node's compile cache does, so
/// a release pushed again, or another release of one build, is not
/// compiled twice. As `outpost_registry::release_check::ReleaseCheck`, it
/// is what the registry runs on every pushed release.
#[derive(Debug, Default)]
pub struct ReleaseChecker {
    /// (compile cache key, machine code), the most recently used last.
    compiled: Mutex<VecDeque<(String, Arc<[u8]>)>>,
}

impl ReleaseChecker {
    pub fn new() -> ReleaseChecker {
        ReleaseChecker::default()
    }

    /// Runs every check of [`Node::check_package`] on `package`.
    pub fn check(&self, package: &Package) -> Result<CheckedRelease, ReleaseCheckError> {
        let setup = |detail: String| ReleaseCheckError::Setup(detail);
        let config = NodeConfig {
            engine: EngineSettings {
                pool_slots: CHECK_POOL_SLOTS,
                ..EngineSettings::default()
            },
            ..NodeConfig::default()
        };
        let run = Package {
            folder: package.folder.clone(),
            manifest: within(&config.policy, &package.manifest),
            component: package.component.clone(),
            assets: package.assets.clone(),
        };
        let work = tempfile::tempdir().map_err(|e| setup(format!("no temporary folder: {e}")))?;
        let mut node = Node::open(NodeOptions {
            data_dir: work.path().join("node"),
            config,
            config_origin: "the release checks".into(),
        })
        .map_err(|e| setup(e.to_string()))?;
        node.outbound_http = false;

        let digest = sha256_hex(&package.component);
        let kind = EngineKind::for_fuel(run.manifest.limits.fuel);
        let engine = node.engines.get(kind).map_err(|e| setup(e.to_string()))?;
        let key = CompileCache::key(engine, kind, &digest);
        if let Some(code) = self.recall(&key) {
            node.cache
                .adopt(&key, &node.store, &code)
                .map_err(|e| setup(e.to_string()))?;
        }
        node.check_package(&run, &digest, || Ok(()))?;
        // Only code of releases that passed: a refused one is not pushed
        // again unchanged.
        if let Ok(Some(code)) = node.cache.verified_code(&key, &node.store) {
            self.remember(key, code.into());
        }
        let manifest = &package.manifest;
        Ok(CheckedRelease {
            id: manifest.id.to_string(),
            version: manifest.version.clone(),
            world: manifest.world.qualified_name(),
            grants: manifest.grants.describe(),
        })
    }

    /// Checks a package given as its files by relative path
    /// (`plugin.toml`, the component, `assets/…`), as the registry has them
    /// from a pushed artifact. Messages name the files by those paths.
    pub fn check_files(&self, files: &PackageFiles) -> Result<CheckedRelease, ReleaseCheckError> {
        if !files.iter().any(|(path, _)| path == MANIFEST_FILE_NAME) {
            return Err(ReleaseCheckError::NoManifest);
        }
        let setup = |detail: String| ReleaseCheckError::Setup(detail);
        let work = tempfile::tempdir().map_err(|e| setup(format!("no temporary folder: {e}")))?;
        let folder = work.path().join("package");
        let mut written: Vec<&str> = Vec::new();
        for (path, bytes) in files {
            let relative = Path::new(path);
            let plain = !path.is_empty()
                && !path.contains('\\')
                && relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(ReleaseCheckError::BadPath { path: path.clone() });
            }
            if written.contains(&path.as_str()) {
                return Err(ReleaseCheckError::Duplicate { path: path.clone() });
            }
            written.push(path);
            let target = folder.join(relative);
            // A path the file system will not take is the release's fault
            // (a file where another path needs a folder, say); a full or
            // failing disk is the registry's.
            let written_out = target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&target, bytes));
            if let Err(error) = written_out {
                return Err(match error.kind() {
                    std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::OutOfMemory
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::QuotaExceeded => {
                        setup(format!("cannot write {}: {error}", target.display()))
                    }
                    _ => ReleaseCheckError::BadPath { path: path.clone() },
                });
            }
        }
        let dir = cap_std::fs::Dir::open_ambient_dir(&folder, cap_std::ambient_authority())
            .map_err(|e| setup(format!("cannot open {}: {e}", folder.display())))?;
        // Named by their paths in the release, not in the temporary folder.
        let package = package::read_dir(&dir, &PathBuf::new(), None, max_assets_bytes()).map_err(
            |error| match error {
                PackageError::NoAssets { .. } => ReleaseCheckError::NoAssets,
                other => ReleaseCheckError::Package(other),
            },
        )?;
        self.check(&package)
    }

    fn recall(&self, key: &str) -> Option<Arc<[u8]>> {
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = compiled.iter().position(|(k, _)| k == key)?;
        let entry = compiled.remove(at)?;
        let code = entry.1.clone();
        compiled.push_back(entry);
        Some(code)
    }

    fn remember(&self, key: String, code: Arc<[u8]>) {
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        compiled.retain(|(k, _)| *k != key);
        compiled.push_back((key, code));
        while compiled.len() > REMEMBERED_COMPONENTS
            || compiled.iter().map(|(_, code)| code.len()).sum::<usize>() > REMEMBERED_BYTES
        {
            compiled.pop_front();
        }
    }
}

/// Runs every check of [`Node::check_package`] on `package`, on a
/// throwaway node.
pub fn check_package(package: &Package) -> Result<CheckedRelease, ReleaseCheckError> {
    ReleaseChecker::new().check(package)
}

/// Reads the package folder at `path` and checks it.
pub fn check_folder(path: &Path) -> Result<CheckedRelease, ReleaseCheckError> {
    check_package(&package::read(path, max_assets_bytes())?)
}

/// Checks a package given as its files (see [`ReleaseChecker::check_files`]).
pub fn check_files(files: &PackageFiles) -> Result<CheckedRelease, ReleaseCheckError> {
    ReleaseChecker::new().check_files(files)
}

/// For `outpost_registry::server::Registry::with_release_check`: the
/// registry refuses a pushed release every node would refuse, before it is
/// stored.
impl ReleaseCheck for ReleaseChecker {
    fn max_package_bytes(&self) -> u64 {
        // The component, the assets, and plugin.toml (small; a MiB of room).
        package::MAX_COMPONENT_BYTES + max_assets_bytes() + (1 << 20)
    }

    fn check(&self, files: &PackageFiles) -> Result<(), CheckRefusal> {
        match self.check_files(files) {
            Ok(checked) => {
                tracing::debug!(plugin = %checked.id, version = %checked.version, "release passed the install checks");
                Ok(())
            }
            Err(ReleaseCheckError::Setup(why)) => {
                tracing::error!("cannot run the install checks on a pushed release: {why}");
                Err(CheckRefusal::Unavailable(format!(
                    "the registry could not run the install checks ({why}); push it again later, and tell the central team if this persists"
                )))
            }
            Err(error) => Err(CheckRefusal::Refused(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_components_from_modules_and_garbage() {
        let path = Path::new("p.wasm");
        assert!(check_header(path, b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(matches!(
            check_header(path, b"\0asm\x01\0\0\0"),
            Err(InstallError::CoreModule { .. })
        ));
        assert!(matches!(
            check_header(path, b"PK\x03\x04zipfile"),
            Err(InstallError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(path, b""),
            Err(InstallError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(path, b"\0asm\x02\0\0\0"),
            Err(InstallError::UnknownEncoding { .. })
        ));
    }

    const MANIFEST: &str = "[plugin]\nid = \"acme/p\"\nversion = \"1.0.0\"\n\
        world = \"printer-driver@0.1.0\"\ncomponent = \"p.wasm\"\n";

    fn files(extra: &[(&str, &[u8])]) -> PackageFiles {
        let mut files = vec![(MANIFEST_FILE_NAME.to_string(), MANIFEST.as_bytes().to_vec())];
        files.extend(extra.iter().map(|(p, b)| (p.to_string(), b.to_vec())));
        files
    }

    #[test]
    fn files_are_named_by_their_paths_in_the_release() {
        let error = check_files(&files(&[("p.wasm", &b"\0asm\x01\0\0\0"[..])]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.starts_with("p.wasm is a core WebAssembly module"),
            "{error}"
        );
        let error = check_files(&files(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("cannot read p.wasm"), "{error}");
    }

    #[test]
    fn paths_outside_the_package_and_missing_manifests_are_refused() {
        for path in ["../p.wasm", "/etc/p.wasm", "assets/../../p", "", "a\\b"] {
            assert!(
                matches!(
                    check_files(&files(&[(path, &b"x"[..])])),
                    Err(ReleaseCheckError::BadPath { .. })
                ),
                "{path:?}"
            );
        }
        assert!(matches!(
            check_files(&vec![("p.wasm".to_string(), Vec::new())]),
            Err(ReleaseCheckError::NoManifest)
        ));
        assert!(matches!(
            check_files(&files(&[("p.wasm", &b"a"[..]), ("p.wasm", &b"b"[..])])),
            Err(ReleaseCheckError::Duplicate { .. })
        ));
    }

    #[test]
    fn what_a_manifest_asks_beyond_a_default_node_is_checked_at_the_default_maxima() {
        let manifest = Manifest::parse(&format!(
            "{MANIFEST}\n[grants]\nkv = {{ quota-bytes = 1073741824 }}\n\
             outbox = {{ destinations = [\"http://127.0.0.1:9\"], max-pending = 4000000000 }}\n\n\
             [limits]\nmemory-mib = 512\ndeadline-ms = 600000\nconcurrency = 64\nfuel = 7\n"
        ))
        .expect("manifest");
        let policy = Policy::default();
        assert!(manifest.limits_under(&policy).is_err());
        let run = within(&policy, &manifest);
        let limits = run.limits_under(&policy).expect("within the defaults");
        assert_eq!(limits.memory_bytes, policy.max_memory_mib << 20);
        assert_eq!(
            limits.deadline.as_millis(),
            u128::from(policy.max_deadline_ms)
        );
        assert_eq!(limits.fuel, Some(7));
        assert_eq!(run.grants.kinds(), manifest.grants.kinds());
        // What it leaves unset, or asks within them, is unchanged.
        let plain = Manifest::parse(MANIFEST).expect("manifest");
        assert_eq!(within(&policy, &plain), plain);
    }
}
