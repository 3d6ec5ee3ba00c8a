//! Installing signed releases: the node's side of the registry.
//!
//! A release is found in TUF metadata the node verifies from the root it
//! was provisioned with ([`outpost_registry::client`]), its bytes come from
//! the Outpost registry, any OCI registry, or a bundle file, and every byte
//! is checked against the signed digests before the ordinary install path
//! (`Node::install` on the unpacked package folder) sees it. The package's
//! own `plugin.toml` must name the same plugin and version as the signed
//! release, so a vendor cannot ship another namespace's plugin inside its
//! own release.

use crate::package::{self, PackageError};
use crate::plugin_id::PluginId;
use crate::release_check::{self, CheckedRelease, ReleaseCheckError};
use crate::store::{NodeStore, StoreError, TrustSettings};
use outpost_registry::bundle::{Bundle, BundleError};
use outpost_registry::client::{
    self, BlobSource, ClientError, Fetcher, Index, MetadataSource, Progress, Release, TrustState,
};
use outpost_registry::keys::KeyPair;
use outpost_registry::tls::ClientTls;
use outpost_registry::tough::schema::{Root, Signed};
use outpost_registry::vendor::Outcome;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "this node trusts no registry yet; provision it with the central team's root metadata: `outpost trust init root.json --registry <url>`"
    )]
    NotProvisioned,
    #[error(
        "no registry to install from; pass --registry <url> or set one with `outpost trust init root.json --registry <url>`"
    )]
    NoRegistry,
    #[error("{0:?} is not a plugin to install: {1}")]
    Spec(String, String),
    #[error("{0:?} is not a registry URL to use: {1}")]
    RegistryUrl(String, String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Tls(#[from] outpost_registry::tls::TlsError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(
        "the signed release is {release}, but its plugin.toml says {manifest}; refusing a package that claims to be another plugin"
    )]
    Mismatch { release: String, manifest: String },
    #[error("{path} is not root metadata the node can trust: {detail}")]
    BadRoot { path: PathBuf, detail: String },
    #[error("the bundle {path} holds no release of {plugin} matching {wanted}; it holds {holds}")]
    NotInBundle {
        path: PathBuf,
        plugin: String,
        wanted: String,
        holds: String,
    },
}

/// What to install: `acme/zpl-printer@^1.2` (no `@`: the newest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub plugin: String,
    pub versions: semver::VersionReq,
}

impl Wanted {
    pub fn parse(text: &str) -> Result<Wanted, ReleaseError> {
        let (plugin, versions) = match text.split_once('@') {
            Some((plugin, versions)) => (plugin, versions),
            None => (text, "*"),
        };
        PluginId::parse(plugin).map_err(|e| ReleaseError::Spec(text.into(), e.to_string()))?;
        let versions = semver::VersionReq::parse(versions).map_err(|e| {
            ReleaseError::Spec(
                text.into(),
                format!("{versions:?} is not a version requirement ({e}); try @1.2.0 or @^1.2"),
            )
        })?;
        Ok(Wanted {
            plugin: plugin.to_string(),
            versions,
        })
    }
}

/// Where a release comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An Outpost registry: metadata and bytes.
    Registry { url: Url, wanted: Wanted },
    /// Bytes from any OCI registry (`oci://host:port/repo:tag` or
    /// `oci://host:port/repo@sha256:<hex>`); metadata from the node's
    /// registry, matched by manifest digest.
    Oci {
        metadata: Url,
        base: Url,
        repository: String,
        /// A tag, or a digest the manifest must have.
        reference: String,
    },
    /// A bundle file.
    Bundle {
        path: PathBuf,
        wanted: Option<Wanted>,
    },
}

impl Source {
    /// Reads what the operator typed: a bundle path, an `oci://` reference
    /// or `vendor/name[@versions]` from the registry.
    pub fn parse(
        spec: &str,
        registry: Option<&str>,
        store: &NodeStore,
    ) -> Result<Source, ReleaseError> {
        let configured = || -> Result<Url, ReleaseError> {
            let url = match registry {
                Some(url) => url.to_string(),
                None => store
                    .trust_settings()?
                    .and_then(|s| s.registry)
                    .ok_or(ReleaseError::NoRegistry)?,
            };
            parse_registry_url(&url)
        };
        if let Some(rest) = spec.strip_prefix("oci://") {
            let (host, path) = rest.split_once('/').ok_or_else(|| {
                ReleaseError::Spec(
                    spec.into(),
                    "expected oci://host:port/repository:tag".into(),
                )
            })?;
            let (repository, reference) =
                oci_reference(path).map_err(|why| ReleaseError::Spec(spec.into(), why.into()))?;
            let base = Url::parse(&format!("http://{host}/"))
                .map_err(|e| ReleaseError::Spec(spec.into(), e.to_string()))?;
            return Ok(Source::Oci {
                metadata: configured()?,
                base,
                repository: repository.to_string(),
                reference: reference.to_string(),
            });
        }
        let path = Path::new(spec);
        if spec.starts_with('.')
            || spec.starts_with('/')
            || spec.ends_with(".bundle")
            || path.is_file()
        {
            return Ok(Source::Bundle {
                path: path.to_path_buf(),
                wanted: None,
            });
        }
        Ok(Source::Registry {
            url: configured()?,
            wanted: Wanted::parse(spec)?,
        })
    }
}

/// Parses a registry URL, adding the trailing slash URL joining needs.
pub fn parse_registry_url(text: &str) -> Result<Url, ReleaseError> {
    let with_slash = if text.ends_with('/') {
        text.to_string()
    } else {
        format!("{text}/")
    };
    let url = Url::parse(&with_slash)
        .map_err(|e| ReleaseError::RegistryUrl(text.into(), format!("not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        // A registry serves plain HTTP only on loopback; elsewhere the
        // node would talk to something that is not one.
        "http" if outpost_registry::tls::is_loopback(&url) => {}
        "http" => {
            let mut https = url.clone();
            // http → https always succeeds for a URL with a host.
            let _ = https.set_scheme("https");
            return Err(ReleaseError::RegistryUrl(
                text.into(),
                format!("a registry on another machine is reached over HTTPS: use {https}"),
            ));
        }
        other => {
            return Err(ReleaseError::RegistryUrl(
                text.into(),
                format!(
                    "a registry URL starts with https:// (or http:// on this machine), not {other}://"
                ),
            ));
        }
    }
    Ok(url)
}

/// The registry's certificate authority, when it is the fleet's own: its
/// PEM text and the file it came from.
#[derive(Debug, Clone)]
pub struct ProvisionedCa {
    pub pem: String,
    pub file: String,
}

/// Checks that `bytes` is root metadata signed by its own threshold, and
/// provisions the node with it (and with `ca`, which the registry's HTTPS
/// certificate must chain to if it is not a public one).
pub fn provision(
    store: &NodeStore,
    path: &Path,
    bytes: &[u8],
    registry: Option<&Url>,
    ca: Option<&ProvisionedCa>,
) -> Result<Signed<Root>, ReleaseError> {
    let bad = |detail: String| ReleaseError::BadRoot {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
    let root: Signed<Root> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    root.signed
        .verify_role(&root)
        .map_err(|e| bad(format!("it is not signed by its own root keys: {e}")))?;
    if let Some(ca) = ca {
        ClientTls::with_ca(ca.pem.as_bytes(), &ca.file)?;
    }
    store.set_trust_settings(&TrustSettings {
        root: text.to_string(),
        registry: registry.map(Url::to_string),
        provisioned_at: crate::clock::now_seconds(),
        ca: ca.map(|ca| ca.pem.clone()),
    })?;
    Ok(root)
}

fn settings(store: &NodeStore) -> Result<TrustSettings, ReleaseError> {
    store.trust_settings()?.ok_or(ReleaseError::NotProvisioned)
}

/// The certificate authorities the node believes for its registry's HTTPS:
/// the system's, and the fleet's own CA if one was provisioned.
pub fn client_tls(store: &NodeStore) -> Result<ClientTls, ReleaseError> {
    tls_trusting(
        store
            .trust_settings()?
            .and_then(|settings| settings.ca)
            .as_deref(),
    )
}

fn tls_trusting(ca: Option<&str>) -> Result<ClientTls, ReleaseError> {
    Ok(ClientTls::with_optional_ca(
        ca.map(str::as_bytes),
        "the CA provisioned with `outpost trust init --ca`",
    )?)
}

/// Verifies the metadata from `source` and remembers what was accepted.
pub async fn refresh(store: &NodeStore, source: &MetadataSource) -> Result<Index, ReleaseError> {
    let settings = settings(store)?;
    let state = TrustState {
        files: store.trust_seen()?,
    };
    let tls = tls_trusting(settings.ca.as_deref())?;
    let (index, seen) = client::load(settings.root.as_bytes(), &state, source, &tls).await?;
    if seen != state {
        store.put_trust_seen(&seen.files)?;
    }
    Ok(index)
}

/// A verified release, unpacked into a package folder.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub release: Release,
    pub package: PathBuf,
    pub index: Index,
}

/// Finds, downloads and verifies a release; the caller installs
/// `package` with [`crate::node::Node::install`] once the operator agrees.
pub async fn fetch(
    store: &NodeStore,
    downloads: &Path,
    source: &Source,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Fetched, ReleaseError> {
    let fetcher = Fetcher::new(downloads, &client_tls(store)?)?;
    let (index, release, blobs) = match source {
        Source::Registry { url, wanted } => {
            let index = refresh(store, &MetadataSource::Registry(url.clone())).await?;
            let release = index.resolve(&wanted.plugin, &wanted.versions)?.clone();
            let blobs = BlobSource::Oci {
                base: url.clone(),
                repository: release.info.repository.clone(),
            };
            (index, release, blobs)
        }
        Source::Oci {
            metadata,
            base,
            repository,
            reference,
        } => {
            let index = refresh(store, &MetadataSource::Registry(metadata.clone())).await?;
            let (_, digest) = fetcher.manifest(base, repository, reference).await?;
            let release = index.by_digest(&digest)?.clone();
            let blobs = BlobSource::Oci {
                base: base.clone(),
                repository: repository.clone(),
            };
            (index, release, blobs)
        }
        Source::Bundle { path, wanted } => {
            let bundle = Bundle::read(path)?;
            let index = refresh(store, &MetadataSource::Files(Arc::new(bundle.metadata))).await?;
            let release = bundle_release(&index, &bundle.blobs, path, wanted.as_ref())?;
            (index, release, BlobSource::Files(Arc::new(bundle.blobs)))
        }
    };
    let package_dir = fetcher.fetch(&release, &blobs, progress).await?;
    check_package(&release, &package_dir)?;
    Ok(Fetched {
        release,
        package: package_dir,
        index,
    })
}

/// `repository:tag` or `repository@sha256:<hex>` (a tag before the digest
/// is allowed and ignored, as docker-style clients do): the repository and
/// the reference to ask the registry for.
fn oci_reference(path: &str) -> Result<(&str, &str), &'static str> {
    let (repository, reference) = match path.split_once('@') {
        Some((named, digest)) => {
            if !outpost_registry::store::is_digest(digest) {
                return Err(
                    "a digest is sha256: and 64 lowercase hex digits: oci://host:port/repository@sha256:<hex>",
                );
            }
            // `repo:tag@sha256:…`: the digest pins it; the tag is a comment.
            let repository = match named.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => repository,
                _ => named,
            };
            (repository, digest)
        }
        None => match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag),
            _ => {
                return Err(
                    "name a tag or a digest: oci://host:port/repository:tag or oci://host:port/repository@sha256:<hex>",
                );
            }
        },
    };
    if repository.is_empty() || reference.is_empty() || reference == "sha256:" {
        return Err(
            "expected oci://host:port/repository:tag or oci://host:port/repository@sha256:<hex>",
        );
    }
    Ok((repository, reference))
}

/// The release a bundle carries (the one asked for, or the only one).
fn bundle_release(
    index: &Index,
    blobs: &BTreeMap<String, Vec<u8>>,
    path: &Path,
    wanted: Option<&Wanted>,
) -> Result<Release, ReleaseError> {
    let carried: Vec<&Release> = index
        .releases
        .iter()
        .filter(|r| blobs.contains_key(&r.digest()))
        .collect();
    let holds = carried
        .iter()
        .map(|r| format!("{}@{}", r.plugin, r.version))
        .collect::<Vec<_>>()
        .join(", ");
    let pick = match wanted {
        Some(w) => carried
            .iter()
            .filter(|r| r.plugin == w.plugin && w.versions.matches(&r.version))
            .max_by(|a, b| a.version.cmp(&b.version)),
        None if carried.len() == 1 => carried.first(),
        None => None,
    };
    pick.map(|r| (*r).clone())
        .ok_or_else(|| ReleaseError::NotInBundle {
            path: path.to_path_buf(),
            plugin: wanted
                .map(|w| w.plugin.clone())
                .unwrap_or_else(|| "a single plugin".into()),
            wanted: wanted
                .map(|w| w.versions.to_string())
                .unwrap_or_else(|| "*".into()),
            holds: if holds.is_empty() {
                "no signed release".into()
            } else {
                holds
            },
        })
}

fn check_package(release: &Release, folder: &Path) -> Result<(), ReleaseError> {
    let package = package::read(folder, package::MAX_COMPONENT_BYTES)?;
    let manifest = &package.manifest;
    if manifest.id.as_str() != release.plugin || manifest.version != release.version {
        return Err(ReleaseError::Mismatch {
            release: format!("{}@{}", release.plugin, release.version),
            manifest: format!("{}@{}", manifest.id, manifest.version),
        });
    }
    Ok(())
}

/// Writes a bundle holding `wanted` releases and the metadata that signs
/// them, all verified here first.
pub async fn export_bundle(
    store: &NodeStore,
    downloads: &Path,
    registry: &Url,
    wanted: &[Wanted],
    out: &Path,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Bundle, ReleaseError> {
    let index = refresh(store, &MetadataSource::Registry(registry.clone())).await?;
    let fetcher = Fetcher::new(downloads, &client_tls(store)?)?;
    let mut bundle = Bundle::default();
    for name in &index.files {
        let bytes = fetcher.metadata_file(registry, name).await?;
        bundle.metadata.insert(name.clone(), bytes);
    }
    for w in wanted {
        let release = index.resolve(&w.plugin, &w.versions)?;
        let source = BlobSource::Oci {
            base: registry.clone(),
            repository: release.info.repository.clone(),
        };
        bundle
            .blobs
            .extend(fetcher.fetch_raw(release, &source, progress).await?);
        bundle
            .releases
            .push(format!("{}@{}", release.plugin, release.version));
    }
    bundle.write(out)?;
    Ok(bundle)
}

/// What `outpost vendor publish` sends for the package folder at `folder`,
/// unchecked: [`publish`] runs the install checks on the same bytes first.
pub fn vendor_release(folder: &Path) -> Result<outpost_registry::vendor::Release, PackageError> {
    Ok(release_of(package::read(
        folder,
        release_check::max_assets_bytes(),
    )?))
}

fn release_of(package: package::Package) -> outpost_registry::vendor::Release {
    let manifest = package.manifest;
    let assets = package
        .assets
        .unwrap_or_default()
        .into_iter()
        .map(|file| {
            (
                file.relative.to_string_lossy().replace('\\', "/"),
                file.bytes,
            )
        })
        .collect();
    outpost_registry::vendor::Release {
        plugin: manifest.id.to_string(),
        version: manifest.version.clone(),
        world: manifest.world.to_string(),
        grants: manifest.grants.describe(),
        parts: outpost_registry::artifact::Parts {
            component_name: manifest.component.clone(),
            component: package.component,
            plugin_manifest: manifest.text.into_bytes(),
            assets,
            version: manifest.version.to_string(),
        },
    }
}

/// Why `outpost vendor publish` did not publish a package folder.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "{folder} is not a release any node would install: {source}. Nothing was pushed; \
         fix the package and publish it again"
    )]
    Refused {
        folder: PathBuf,
        source: ReleaseCheckError,
    },
    #[error("cannot check {folder} before publishing it: {detail}; nothing was pushed")]
    CannotCheck { folder: PathBuf, detail: String },
    #[error("cannot publish {folder}: {source}")]
    Publish {
        folder: PathBuf,
        source: outpost_registry::vendor::VendorError,
    },
}

/// What `outpost vendor publish` does: reads the package folder, runs a
/// node's install checks on it ([`crate::release_check`]), and only if they
/// pass pushes those same bytes and publishes them signed with `keys`.
pub async fn publish(
    folder: &Path,
    registry: &Url,
    tls: &ClientTls,
    token: &str,
    keys: &[&KeyPair],
    valid_for: jiff::SignedDuration,
) -> Result<(CheckedRelease, Outcome), PublishError> {
    let refused = |source: ReleaseCheckError| match source {
        ReleaseCheckError::Setup(detail) => PublishError::CannotCheck {
            folder: folder.to_path_buf(),
            detail,
        },
        source => PublishError::Refused {
            folder: folder.to_path_buf(),
            source,
        },
    };
    let read = folder.to_path_buf();
    // Compiling and calling the plugin block for a while.
    let (checked, package) = tokio::task::spawn_blocking(move || {
        let package = package::read(&read, release_check::max_assets_bytes())?;
        let checked = release_check::check_package(&package)?;
        Ok::<_, ReleaseCheckError>((checked, package))
    })
    .await
    .map_err(|e| refused(ReleaseCheckError::Setup(e.to_string())))?
    .map_err(refused)?;
    let release = release_of(package);
    let outcome =
        outpost_registry::vendor::publish(registry, tls, token, keys, &release, valid_for)
            .await
            .map_err(|source| PublishError::Publish {
                folder: folder.to_path_buf(),
                source,
            })?;
    Ok((checked, outcome))
}

#[cfg(test)]
mod oci_reference_tests {
    use super::oci_reference;

    #[test]
    fn tags_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(oci_reference("acme/x:1.2.0"), Ok(("acme/x", "1.2.0")));
        assert_eq!(
            oci_reference(&format!("acme/x@{digest}")),
            Ok(("acme/x", digest.as_str()))
        );
        assert_eq!(
            oci_reference(&format!("acme/x:1.2.0@{digest}")),
            Ok(("acme/x", digest.as_str()))
        );
        assert!(oci_reference("acme/x").is_err());
        assert!(oci_reference("acme/x@md5:00").is_err());
        assert!(oci_reference("acme/x@sha256:").is_err());
        assert!(oci_reference(&format!("acme/x@sha256:{}", "A".repeat(64))).is_err());
    }
}
