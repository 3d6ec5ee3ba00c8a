//! What a node uses to decide what to trust and to fetch it.
//!
//! Trust: tough loads the TUF repository (from a registry's `/tuf/`, or
//! from a bundle's copy) starting from the root the node trusts, walking
//! root rotations one version at a time and refusing expired, rolled-back,
//! mix-and-matched or under-signed metadata. The node keeps what tough
//! saw (its datastore files) in its own database and hands them back on
//! the next load, so rollback protection survives restarts.
//!
//! Bytes: a release's target pins its OCI manifest by length and sha-256,
//! and the manifest pins every blob by size and digest. Every download
//! stops reading at the signed length, so an endless or padded answer is
//! refused without being stored; a cut download is resumed with `Range`.

use crate::artifact::{self, Layout};
use crate::tls::ClientTls;
use crate::tuf::{self, ReleaseInfo};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tough::{RepositoryLoader, Transport, TransportError, TransportErrorKind};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the trusted root metadata is not usable: {0}")]
    Root(String),
    #[error("{what}: {detail}\n  {hint}")]
    Metadata {
        what: String,
        detail: String,
        hint: &'static str,
    },
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error(
        "{url} answered with manifest {got}, not {asked}; the registry or a proxy changed it, so nothing was installed"
    )]
    WrongManifest {
        url: String,
        asked: String,
        got: String,
    },
    #[error(
        "no plugin {plugin} in the signed metadata; `outpost plugin search` lists what is there"
    )]
    UnknownPlugin { plugin: String },
    #[error("no version of {plugin} matches {wanted}; the signed versions are {available}")]
    NoMatch {
        plugin: String,
        wanted: String,
        available: String,
    },
    #[error(
        "{what} is longer than its signed length of {limit} bytes; stopped reading there and kept nothing (the source is serving something other than what was signed)"
    )]
    TooLong { what: String, limit: u64 },
    #[error(
        "{what} has sha-256 {actual}, but the signed metadata says {expected}; it was tampered with or damaged, and was discarded"
    )]
    Tampered {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("the bundle does not hold {what}; export the bundle again")]
    NotInBundle { what: String },
    #[error("{what} ended after {got} of {expected} bytes; run the command again to resume")]
    Truncated {
        what: String,
        got: u64,
        expected: u64,
    },
    #[error(transparent)]
    Artifact(#[from] artifact::ArtifactError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{manifest} is not a release in the signed metadata, so it is not trusted; only artifacts the vendor signed can be installed"
    )]
    Unsigned { manifest: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Explains a tough error to an operator.
fn metadata_error(error: tough::error::Error) -> ClientError {
    use tough::error::Error as E;
    let text = error.to_string();
    let hint = match &error {
        // A file that does not hash to what the snapshot or timestamp
        // pinned arrives as a transport error.
        E::Transport { .. } if text.contains("Hash mismatch") => {
            "the metadata files do not belong to one consistent version of the repository (mix-and-match); refused"
        }
        E::InvalidPath { .. } => {
            "a vendor's metadata names releases outside its own namespace; the whole repository was refused"
        }
        E::ExpiredMetadata { .. } => {
            "the metadata has expired (a frozen or stale source); installed plugins keep running. Install again when the registry is reachable, or use a fresh bundle"
        }
        E::OlderMetadata { .. }
        | E::OlderSnapshotInTimestamp { .. }
        | E::SnapshotRoleRollback { .. } => {
            "the source offers older metadata than this node has already seen (a rollback); it was refused and nothing changed"
        }
        E::VerifyMetadata { .. }
        | E::VerifyRoleMetadata { .. }
        | E::VerifyTrustedMetadata { .. } => {
            "the metadata is not signed by enough of the keys the node trusts; it was refused and nothing changed"
        }
        E::VersionMismatch { .. }
        | E::HashMismatch { .. }
        | E::MetaMissing { .. }
        | E::SnapshotRoleMissing { .. }
        | E::SnapshotTargetsMetaMissing { .. } => {
            "the metadata files do not belong to one consistent version of the repository (mix-and-match); refused"
        }
        E::MaxSizeExceeded { .. } => "a metadata file is larger than allowed; refused",
        // tough records the clock at every accepted refresh and refuses a
        // clock that reads earlier, which a refresh made while the clock ran
        // ahead turns into a lockout once the clock is put right.
        E::SystemTimeSteppedBackward { .. } => {
            "this node's clock reads earlier than when it last accepted metadata: the clock was ahead then, or is behind now. Set the clock right (`date`, NTP); if it is right now, run `outpost trust update --clock-was-wrong` to forget the time recorded then. Installed plugins keep running meanwhile"
        }
        E::Transport { url, source, .. } if crate::tls::is_untrusted_certificate(&text) => {
            // Our transport's own words are the innermost cause.
            let detail =
                std::error::Error::source(source).map_or_else(|| text.clone(), ToString::to_string);
            return ClientError::Http {
                url: url.to_string(),
                detail,
            };
        }
        E::Transport { .. } => "check the registry URL and that the registry is running",
        _ => "the metadata was refused and nothing changed",
    };
    ClientError::Metadata {
        what: "the signed metadata was refused".into(),
        detail: text,
        hint,
    }
}

/// Where metadata comes from.
#[derive(Debug, Clone)]
pub enum MetadataSource {
    /// `<registry>/tuf/`
    Registry(Url),
    /// The files of a bundle, by name.
    Files(Arc<BTreeMap<String, Vec<u8>>>),
}

/// How long a download may go without receiving a byte.
const STALL: Duration = Duration::from_secs(30);

/// A hyper client for `https://` registries (and `http://` ones on
/// loopback).
type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

/// tough's transport over hyper.
#[derive(Debug, Clone)]
struct HttpTransport {
    client: HttpsClient,
}

impl HttpTransport {
    fn new(tls: &ClientTls) -> HttpTransport {
        HttpTransport {
            client: http_client(tls),
        }
    }
}

fn http_client(tls: &ClientTls) -> HttpsClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(tls.connector(Duration::from_secs(10)))
}

#[async_trait::async_trait]
impl Transport for HttpTransport {
    async fn fetch(&self, url: Url) -> Result<tough::TransportStream, TransportError> {
        let uri: hyper::Uri = url.as_str().parse().map_err(|e| {
            TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e)
        })?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.get(uri))
            .await
            .map_err(|e| TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e))?
            .map_err(|e| {
                TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    url.clone(),
                    std::io::Error::other(crate::tls::connect_failure(&e)),
                )
            })?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => {
                return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
            }
            other => {
                return Err(TransportError::new_with_cause(
                    TransportErrorKind::Other,
                    url,
                    std::io::Error::other(format!("HTTP {other}")),
                ));
            }
        }
        // Each chunk must come within STALL, so a source that stops
        // sending mid-file cannot hold the update forever.
        let body = response.into_body();
        let stream = futures_util::stream::unfold(Some(body), move |body| {
            let url = url.clone();
            async move {
                let mut body = body?;
                loop {
                    let error = |e: Box<dyn std::error::Error + Send + Sync>| {
                        TransportError::new_with_cause(TransportErrorKind::Other, url.clone(), e)
                    };
                    match tokio::time::timeout(STALL, body.frame()).await {
                        Err(_) => return Some((Err(error("the source stalled".into())), None)),
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => return Some((Err(error(e.into())), None)),
                        Ok(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                return Some((Ok(data), Some(body)));
                            }
                        }
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

/// tough's transport over a bundle's files.
#[derive(Debug, Clone)]
struct FilesTransport {
    files: Arc<BTreeMap<String, Vec<u8>>>,
}

#[async_trait::async_trait]
impl Transport for FilesTransport {
    async fn fetch(&self, url: Url) -> Result<tough::TransportStream, TransportError> {
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("");
        match self.files.get(name) {
            Some(bytes) => {
                let bytes = Bytes::from(bytes.clone());
                Ok(Box::pin(futures_util::stream::once(
                    async move { Ok(bytes) },
                )))
            }
            None => Err(TransportError::new(TransportErrorKind::FileNotFound, url)),
        }
    }
}

/// What the node keeps between loads: tough's datastore files (the newest
/// root, timestamp, snapshot and targets it accepted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustState {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl TrustState {
    /// The root to start from: the newest the node accepted, else the one
    /// it was provisioned with.
    pub fn root<'a>(&'a self, provisioned: &'a [u8]) -> &'a [u8] {
        self.files
            .get("root.json")
            .map(Vec::as_slice)
            .unwrap_or(provisioned)
    }
}

/// One signed release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub plugin: String,
    pub version: semver::Version,
    pub length: u64,
    /// sha-256 of the manifest, hex.
    pub sha256: String,
    pub info: ReleaseInfo,
}

impl Release {
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.sha256)
    }
}

/// What the verified metadata says is published.
#[derive(Debug, Clone)]
pub struct Index {
    pub releases: Vec<Release>,
    /// The metadata files of this version of the repository: every root,
    /// the timestamp and what it names (what a bundle must carry).
    pub files: Vec<String>,
    pub root_version: u64,
    pub timestamp_version: u64,
    pub expires: jiff::Timestamp,
}

impl Index {
    /// The newest release of `plugin` matching `wanted`.
    pub fn resolve(
        &self,
        plugin: &str,
        wanted: &semver::VersionReq,
    ) -> Result<&Release, ClientError> {
        let mut versions: Vec<&Release> = self
            .releases
            .iter()
            .filter(|r| r.plugin == plugin)
            .collect();
        if versions.is_empty() {
            return Err(ClientError::UnknownPlugin {
                plugin: plugin.into(),
            });
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        versions
            .iter()
            .rev()
            .find(|r| wanted.matches(&r.version))
            .copied()
            .ok_or_else(|| ClientError::NoMatch {
                plugin: plugin.into(),
                wanted: wanted.to_string(),
                available: versions
                    .iter()
                    .map(|r| r.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The release whose manifest has `digest`.
    pub fn by_digest(&self, digest: &str) -> Result<&Release, ClientError> {
        self.releases
            .iter()
            .find(|r| r.digest() == digest)
            .ok_or_else(|| ClientError::Unsigned {
                manifest: digest.into(),
            })
    }
}

/// Loads and verifies the repository, returning what it lists and the
/// state to keep. Nothing is kept when verification fails.
pub async fn load(
    provisioned_root: &[u8],
    state: &TrustState,
    source: &MetadataSource,
    tls: &ClientTls,
) -> Result<(Index, TrustState), ClientError> {
    let datastore = tempfile::tempdir().map_err(io(Path::new("a temporary folder")))?;
    for (name, bytes) in &state.files {
        if name.contains('/') || name.starts_with('.') {
            continue;
        }
        std::fs::write(datastore.path().join(name), bytes).map_err(io(datastore.path()))?;
    }
    let root = state.root(provisioned_root).to_vec();
    serde_json::from_slice::<tough::schema::Signed<tough::schema::Root>>(&root)
        .map_err(|e| ClientError::Root(e.to_string()))?;
    let (metadata_url, loader) = match source {
        MetadataSource::Registry(base) => {
            let metadata = base
                .join("tuf/")
                .map_err(|e| ClientError::Root(e.to_string()))?;
            (metadata, None)
        }
        MetadataSource::Files(files) => (
            Url::parse("bundle:///tuf/").map_err(|e| ClientError::Root(e.to_string()))?,
            Some(FilesTransport {
                files: files.clone(),
            }),
        ),
    };
    let targets_url = metadata_url.clone();
    let builder = RepositoryLoader::new(&root, metadata_url, targets_url)
        .datastore(datastore.path())
        .limits(tough::Limits {
            max_root_size: 1 << 20,
            max_targets_size: 8 << 20,
            max_timestamp_size: 64 << 10,
            max_snapshot_size: 1 << 20,
            max_root_updates: 1024,
        });
    let repository = match loader {
        Some(files) => builder.transport(files).load().await,
        None => builder.transport(HttpTransport::new(tls)).load().await,
    }
    .map_err(metadata_error)?;
    let mut releases = Vec::new();
    let top = &repository.targets().signed;
    let names: Vec<_> = repository
        .all_targets()
        .map(|(name, _)| name.clone())
        .collect();
    for name in names {
        // find_target follows the delegation paths: a target listed by a
        // role not delegated its path (vendor B naming acme/…) is not found.
        let Ok(target) = top.find_target(&name, false) else {
            continue;
        };
        // A target must name its manifest by a whole sha-256.
        if target.hashes.sha256.len() != 32 {
            continue;
        }
        let Some((plugin, version)) = tuf::parse_target_name(name.raw()) else {
            continue;
        };
        let Ok(info) = serde_json::from_value::<ReleaseInfo>(serde_json::Value::Object(
            target.custom.clone().into_iter().collect(),
        )) else {
            continue;
        };
        if releases
            .iter()
            .any(|r: &Release| r.plugin == plugin && r.version == version)
        {
            continue;
        }
        releases.push(Release {
            plugin: plugin.to_string(),
            version,
            length: target.length,
            sha256: tuf::target_sha256(target),
            info,
        });
    }
    releases.sort_by(|a, b| (&a.plugin, &a.version).cmp(&(&b.plugin, &b.version)));
    let expires = [
        repository.root().signed.expires,
        repository.timestamp().signed.expires,
        repository.snapshot().signed.expires,
        repository.targets().signed.expires,
    ]
    .into_iter()
    .min()
    .unwrap_or(jiff::Timestamp::MIN);
    let mut files: Vec<String> = (1..=repository.root().signed.version.get())
        .map(|v| format!("{v}.root.json"))
        .collect();
    files.push("timestamp.json".into());
    let snapshot_version = repository
        .timestamp()
        .signed
        .meta
        .get("snapshot.json")
        .map(|m| m.version.get())
        .unwrap_or(1);
    files.push(format!("{snapshot_version}.snapshot.json"));
    for (name, meta) in &repository.snapshot().signed.meta {
        files.push(format!("{}.{name}", meta.version.get()));
    }
    let index = Index {
        releases,
        files,
        root_version: repository.root().signed.version.get(),
        timestamp_version: repository.timestamp().signed.version.get(),
        expires,
    };
    let mut kept = TrustState::default();
    let entries = std::fs::read_dir(datastore.path()).map_err(io(datastore.path()))?;
    for entry in entries {
        let entry = entry.map_err(io(datastore.path()))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let bytes = std::fs::read(entry.path()).map_err(io(&entry.path()))?;
        kept.files.insert(name, bytes);
    }
    Ok((index, kept))
}

/// Progress of one download, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Where an artifact's bytes come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// An OCI registry (`http://host:port`) and the repository in it.
    Oci { base: Url, repository: String },
    /// A bundle's blobs, by digest.
    Files(Arc<BTreeMap<String, Vec<u8>>>),
}

/// Downloads, verifies and unpacks releases into package folders.
pub struct Fetcher {
    downloads: PathBuf,
    client: HttpsClient,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("downloads", &self.downloads)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// `downloads` keeps partial downloads between runs, so a cut download
    /// resumes where it stopped.
    pub fn new(downloads: &Path, tls: &ClientTls) -> Result<Fetcher, ClientError> {
        std::fs::create_dir_all(downloads).map_err(io(downloads))?;
        Ok(Fetcher {
            downloads: downloads.to_path_buf(),
            client: http_client(tls),
        })
    }

    /// Fetches a manifest by tag or digest from an OCI registry, at most
    /// `artifact::MAX_MANIFEST_BYTES`, and returns it with its digest.
    /// Whether to trust it is decided by the caller, by digest; asked for
    /// by digest, a manifest with another one is refused here.
    pub async fn manifest(
        &self,
        base: &Url,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), ClientError> {
        let url = oci_url(base, &format!("{repository}/manifests/{reference}"))?;
        let shown = if reference.starts_with("sha256:") {
            format!("manifest {repository}@{reference}")
        } else {
            format!("manifest {repository}:{reference}")
        };
        let bytes = self
            .get_capped(&url, artifact::MAX_MANIFEST_BYTES, &shown, None)
            .await?;
        let digest = artifact::digest_of(&bytes);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(ClientError::WrongManifest {
                url: url.to_string(),
                asked: reference.to_string(),
                got: digest,
            });
        }
        Ok((bytes, digest))
    }

    /// Downloads `release` from `source`, verifies every byte against the
    /// signed metadata and unpacks it into a new package folder.
    pub async fn fetch(
        &self,
        release: &Release,
        source: &BlobSource,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<PathBuf, ClientError> {
        let (_, layout) = self.fetch_verified(release, source, progress).await?;
        let files = layout.files()?;
        let folder = self.unpack(&files, &release.sha256);
        self.forget(&layout);
        folder
    }

    /// Deletes the verified blobs of `layout` from `downloads/`: once
    /// unpacked or bundled they are not needed, and a Pi's disk is small.
    fn forget(&self, layout: &Layout) {
        for blob in layout.blobs() {
            let _ = std::fs::remove_file(
                self.downloads
                    .join(blob.digest.trim_start_matches("sha256:")),
            );
        }
    }

    /// Downloads and verifies `release`, returning its manifest and every
    /// blob by digest (what a bundle carries).
    pub async fn fetch_raw(
        &self,
        release: &Release,
        source: &BlobSource,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<BTreeMap<String, Vec<u8>>, ClientError> {
        let (manifest, layout) = self.fetch_verified(release, source, progress).await?;
        let mut blobs = BTreeMap::from([(release.digest(), manifest)]);
        for blob in layout.blobs() {
            let path = self
                .downloads
                .join(blob.digest.trim_start_matches("sha256:"));
            blobs.insert(
                blob.digest.clone(),
                std::fs::read(&path).map_err(io(&path))?,
            );
        }
        self.forget(&layout);
        Ok(blobs)
    }

    async fn fetch_verified(
        &self,
        release: &Release,
        source: &BlobSource,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<(Vec<u8>, Layout), ClientError> {
        let what = format!("the manifest of {} {}", release.plugin, release.version);
        let manifest = match source {
            BlobSource::Oci { base, repository } => {
                let url = oci_url(
                    base,
                    &format!("{repository}/manifests/{}", release.digest()),
                )?;
                self.get_capped(&url, release.length, &what, None).await?
            }
            BlobSource::Files(files) => files
                .get(&release.digest())
                .cloned()
                .ok_or_else(|| ClientError::NotInBundle { what: what.clone() })?,
        };
        if manifest.len() as u64 > release.length {
            return Err(ClientError::TooLong {
                what,
                limit: release.length,
            });
        }
        let actual = hex::encode(Sha256::digest(&manifest));
        if actual != release.sha256 {
            return Err(ClientError::Tampered {
                what,
                expected: release.sha256.clone(),
                actual,
            });
        }
        let layout = artifact::parse(&manifest)?;
        layout.files()?;
        let total: u64 = layout.blobs().map(|b| b.size as u64).sum();
        let mut done = 0u64;
        for blob in layout.blobs() {
            self.blob(source, &blob.digest, blob.size as u64, &mut |n| {
                progress(Progress {
                    done: done + n,
                    total,
                })
            })
            .await?;
            done += blob.size as u64;
        }
        progress(Progress { done: total, total });
        Ok((manifest, layout))
    }

    /// Fetches one metadata file from a registry's `/tuf/`, for a bundle.
    pub async fn metadata_file(&self, base: &Url, name: &str) -> Result<Vec<u8>, ClientError> {
        let url = join_uri(base, &format!("tuf/{name}"))?;
        self.get_capped(&url, 8 << 20, name, Some("application/json"))
            .await
    }

    /// One blob into `downloads/<hex>`, resuming `downloads/<hex>.part`.
    async fn blob(
        &self,
        source: &BlobSource,
        digest: &str,
        size: u64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<PathBuf, ClientError> {
        let hex = digest.trim_start_matches("sha256:");
        let done = self.downloads.join(hex);
        if done.exists() && verify_file(&done, size, digest).is_ok() {
            progress(size);
            return Ok(done);
        }
        let partial = self.downloads.join(format!("{hex}.part"));
        match source {
            BlobSource::Files(files) => {
                let bytes = files.get(digest).ok_or_else(|| ClientError::NotInBundle {
                    what: format!("blob {digest}"),
                })?;
                if bytes.len() as u64 > size {
                    return Err(ClientError::TooLong {
                        what: format!("blob {digest}"),
                        limit: size,
                    });
                }
                std::fs::write(&partial, bytes).map_err(io(&partial))?;
            }
            BlobSource::Oci { base, repository } => {
                let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
                let have = if have > size { 0 } else { have };
                let url = oci_url(base, &format!("{repository}/blobs/{digest}"))?;
                self.download_into(&url, &partial, have, size, digest, progress)
                    .await?;
            }
        }
        if let Err(error) = verify_file(&partial, size, digest) {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
        std::fs::rename(&partial, &done).map_err(io(&done))?;
        Ok(done)
    }

    async fn download_into(
        &self,
        url: &hyper::Uri,
        partial: &Path,
        mut have: u64,
        size: u64,
        digest: &str,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), ClientError> {
        let what = format!("blob {digest}");
        if have == size {
            return Ok(());
        }
        let mut request = hyper::Request::get(url.clone());
        if have > 0 {
            request = request.header(hyper::header::RANGE, format!("bytes={have}-{}", size - 1));
        }
        let request = request.body(Empty::new()).map_err(|e| ClientError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        let response = self.send(request, url).await?;
        let append = match response.status() {
            StatusCode::PARTIAL_CONTENT if have > 0 => true,
            StatusCode::OK => {
                have = 0;
                false
            }
            status => {
                return Err(ClientError::Http {
                    url: url.to_string(),
                    detail: format!("HTTP {status}"),
                });
            }
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(partial)
            .map_err(io(partial))?;
        progress(have);
        let mut body = response.into_body();
        while let Some(frame) = next_frame(&mut body, url).await? {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(ClientError::Truncated {
                        what: format!("{what} ({e})"),
                        got: have,
                        expected: size,
                    });
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if have + data.len() as u64 > size {
                drop(file);
                let _ = std::fs::remove_file(partial);
                return Err(ClientError::TooLong { what, limit: size });
            }
            file.write_all(&data).map_err(io(partial))?;
            have += data.len() as u64;
            progress(have);
        }
        file.sync_all().map_err(io(partial))?;
        if have < size {
            return Err(ClientError::Truncated {
                what,
                got: have,
                expected: size,
            });
        }
        Ok(())
    }

    async fn send(
        &self,
        request: hyper::Request<Empty<Bytes>>,
        url: &hyper::Uri,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| ClientError::Http {
                url: url.to_string(),
                detail: "no answer within 30 s".into(),
            })?
            .map_err(|e| ClientError::Http {
                url: url.to_string(),
                detail: crate::tls::connect_failure(&e),
            })
    }

    /// GET `url`, reading at most `limit` bytes.
    async fn get_capped(
        &self,
        url: &hyper::Uri,
        limit: u64,
        what: &str,
        accept: Option<&str>,
    ) -> Result<Vec<u8>, ClientError> {
        let request = hyper::Request::get(url.clone())
            .header(
                hyper::header::ACCEPT,
                accept.unwrap_or(artifact::MANIFEST_MEDIA_TYPE),
            )
            .body(Empty::new())
            .map_err(|e| ClientError::Http {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        let response = self.send(request, url).await?;
        if response.status() != StatusCode::OK {
            return Err(ClientError::Http {
                url: url.to_string(),
                detail: format!("HTTP {}", response.status()),
            });
        }
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = next_frame(&mut body, url).await? {
            let frame = frame.map_err(|e| ClientError::Http {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() as u64 + data.len() as u64 > limit {
                    return Err(ClientError::TooLong {
                        what: what.to_string(),
                        limit,
                    });
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    }

    /// Writes the verified blobs into `downloads/<manifest hex>.package/`
    /// through cap-std, so no layer title can land outside it.
    fn unpack(
        &self,
        files: &[artifact::LayerFile<'_>],
        manifest_hex: &str,
    ) -> Result<PathBuf, ClientError> {
        let folder = self.downloads.join(format!("{manifest_hex}.package"));
        if folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(io(&folder))?;
        }
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let dir = cap_std::fs::Dir::open_ambient_dir(&folder, cap_std::ambient_authority())
            .map_err(io(&folder))?;
        for file in files {
            let relative = Path::new(&file.path);
            if let Some(parent) = relative.parent()
                && !parent.as_os_str().is_empty()
            {
                dir.create_dir_all(parent)
                    .map_err(io(&folder.join(parent)))?;
            }
            let hex = file.descriptor.digest.trim_start_matches("sha256:");
            let bytes =
                std::fs::read(self.downloads.join(hex)).map_err(io(&self.downloads.join(hex)))?;
            dir.write(relative, bytes)
                .map_err(io(&folder.join(relative)))?;
        }
        Ok(folder)
    }
}

/// The next frame of `body`, or an error if none comes within `STALL`.
async fn next_frame(
    body: &mut hyper::body::Incoming,
    url: &hyper::Uri,
) -> Result<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>, ClientError> {
    tokio::time::timeout(STALL, body.frame())
        .await
        .map_err(|_| ClientError::Http {
            url: url.to_string(),
            detail: format!(
                "nothing received for {} s; run the command again to resume",
                STALL.as_secs()
            ),
        })
}

fn oci_url(base: &Url, path: &str) -> Result<hyper::Uri, ClientError> {
    join_uri(base, &format!("v2/{path}"))
}

/// `base` joined with `path`, as hyper wants it.
fn join_uri(base: &Url, path: &str) -> Result<hyper::Uri, ClientError> {
    let joined = base.join(path).map_err(|e| ClientError::Http {
        url: base.to_string(),
        detail: e.to_string(),
    })?;
    joined
        .as_str()
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| ClientError::Http {
            url: joined.to_string(),
            detail: e.to_string(),
        })
}

fn verify_file(path: &Path, size: u64, digest: &str) -> Result<(), ClientError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let what = format!("blob {digest}");
    if (bytes.len() as u64) < size {
        return Err(ClientError::Truncated {
            what,
            got: bytes.len() as u64,
            expected: size,
        });
    }
    if bytes.len() as u64 > size {
        return Err(ClientError::TooLong { what, limit: size });
    }
    let actual = artifact::digest_of(&bytes);
    if actual != digest {
        return Err(ClientError::Tampered {
            what,
            expected: digest.to_string(),
            actual,
        });
    }
    Ok(())
}
