//! What `outpost vendor publish` does: push the artifact with a standard
//! OCI client (oci-client), then sign the namespace's next release
//! metadata with the vendor's key and hand it to the registry.
//!
//! The registry never sees the vendor's private key: it checks the
//! signature against the key the central team registered for the
//! namespace, and a node checks it again, so a registry that was broken
//! into still cannot make nodes install a release the vendor did not sign.

use crate::artifact::{self, Parts};
use crate::keys::KeyPair;
use crate::repository;
use crate::tls::ClientTls;
use crate::tuf::{self, ReleaseInfo};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use std::time::Duration;
use tough::schema::{Signed, Targets};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    #[error(transparent)]
    Artifact(#[from] artifact::ArtifactError),
    #[error("pushing {what} to {registry}: {detail}")]
    Push {
        what: String,
        registry: String,
        detail: String,
    },
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("the registry refused the release ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the namespace's current metadata from the registry is not valid: {0}")]
    Metadata(String),
    #[error(transparent)]
    Sign(#[from] tuf::TufError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0:?} is not a plugin id of the form namespace/name")]
    PluginId(String),
    #[error(
        "{registry} is not an outpost-registry ({detail}): an OCI registry can carry plugin \
         bytes but cannot sign releases, so nothing was pushed. Publish to your \
         outpost-registry; to keep a copy on this one too, copy the published artifact \
         there with any OCI client (`skopeo copy`), and nodes install it with \
         `outpost plugin install oci://…`, trusted by the signed digest"
    )]
    NotOutpostRegistry { registry: String, detail: String },
}

/// Publishing a release that is already published renews the namespace's
/// signed list when it would lapse within this.
pub const RENEW_WITHIN: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 30);

/// What to publish.
#[derive(Debug, Clone)]
pub struct Release {
    pub plugin: String,
    pub version: semver::Version,
    pub parts: Parts,
    pub world: String,
    pub grants: String,
}

/// What the registry published.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: String,
    pub digest: String,
    pub metadata_version: u64,
    pub bytes: u64,
}

fn oci_client(registry: &Url, tls: &ClientTls) -> oci_client::Client {
    let protocol = if registry.scheme() == "http" {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    oci_client::Client::new(ClientConfig {
        protocol,
        extra_root_certificates: tls.oci_certificates(),
        ..Default::default()
    })
}

/// `host:port` as OCI references name a registry.
pub fn registry_host(registry: &Url) -> String {
    match (registry.host_str(), registry.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        _ => registry.to_string(),
    }
}

/// Pushes the artifact for `release` to the OCI registry at `registry`.
/// Returns the manifest bytes and digest.
pub async fn push(
    registry: &Url,
    tls: &ClientTls,
    auth: &RegistryAuth,
    release: &Release,
) -> Result<artifact::Built, VendorError> {
    if !matches!(auth, RegistryAuth::Anonymous) {
        crate::tls::require_private(registry, "a registry token")?;
    }
    let built = artifact::build(&release.parts)?;
    let client = oci_client(registry, tls);
    let host = registry_host(registry);
    let reference = oci_client::Reference::with_tag(
        host.clone(),
        release.plugin.clone(),
        release.version.to_string(),
    );
    client.store_auth_if_needed(&host, auth).await;
    let failed = |what: &str, e: oci_client::errors::OciDistributionError| VendorError::Push {
        what: what.to_string(),
        registry: host.clone(),
        detail: e.to_string(),
    };
    client
        .push_blob(&reference, built.config.1.clone(), &built.config.0)
        .await
        .map_err(|e| failed("the config", e))?;
    for (descriptor, bytes) in &built.layers {
        let exists = client
            .blob_exists(&reference, &descriptor.digest)
            .await
            .unwrap_or(false);
        if !exists {
            client
                .push_blob(&reference, bytes.clone(), &descriptor.digest)
                .await
                .map_err(|e| failed(&format!("layer {}", descriptor.digest), e))?;
        }
    }
    let content_type = hyper::header::HeaderValue::from_static(artifact::MANIFEST_MEDIA_TYPE);
    client
        .push_manifest_raw(&reference, built.manifest.clone(), content_type)
        .await
        .map_err(|e| failed("the manifest", e))?;
    Ok(built)
}

async fn request(
    method: hyper::Method,
    url: &Url,
    tls: &ClientTls,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), VendorError> {
    if token.is_some() {
        crate::tls::require_private(url, "a vendor token")?;
    }
    let failed = |detail: String| VendorError::Http {
        url: url.to_string(),
        detail,
    };
    let http: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(tls.connector(Duration::from_secs(10)));
    let mut builder = hyper::Request::builder().method(method).uri(url.as_str());
    if let Some(token) = token {
        builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = builder
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed(e.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(60), http.request(request))
        .await
        .map_err(|_| failed("no answer within 60 s".into()))?
        .map_err(|e| failed(crate::tls::connect_failure(&e)))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    Ok((status, bytes))
}

fn registry_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).chars().take(500).collect())
}

/// The first error code of an OCI-style error body.
fn error_code(bytes: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(
        body.get("errors")?
            .get(0)?
            .get("code")?
            .as_str()?
            .to_string(),
    )
}

fn metadata_url(registry: &Url, namespace: &str) -> Result<Url, VendorError> {
    registry
        .join(&format!("outpost/v1/namespaces/{namespace}/metadata"))
        .map_err(|e| VendorError::Http {
            url: registry.to_string(),
            detail: e.to_string(),
        })
}

/// The namespace's published metadata, if it has published before.
pub async fn current_metadata(
    registry: &Url,
    tls: &ClientTls,
    namespace: &str,
) -> Result<Option<Signed<Targets>>, VendorError> {
    let url = metadata_url(registry, namespace)?;
    let (status, bytes) = request(hyper::Method::GET, &url, tls, None, Vec::new()).await?;
    // The route is anonymous on an outpost-registry, which answers 200
    // with signed metadata, 204 before a first publish, or 404 with
    // NAME_UNKNOWN for a namespace it lacks. Anything else means the route
    // is not there: a plain OCI registry (404, 401, 405, an HTML page…).
    let not_outpost = |detail: String| VendorError::NotOutpostRegistry {
        registry: registry.to_string(),
        detail,
    };
    match status {
        StatusCode::OK => match serde_json::from_slice::<Signed<Targets>>(&bytes) {
            Ok(metadata) => Ok(Some(metadata)),
            Err(e) if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() => {
                Err(VendorError::Metadata(e.to_string()))
            }
            Err(_) => Err(not_outpost(format!(
                "GET {} answered something that is not JSON",
                url.path()
            ))),
        },
        StatusCode::NO_CONTENT => Ok(None),
        StatusCode::NOT_FOUND if error_code(&bytes).as_deref() == Some("NAME_UNKNOWN") => {
            Err(VendorError::Refused {
                status: status.as_u16(),
                message: registry_message(&bytes),
            })
        }
        status if status.is_server_error() => Err(VendorError::Refused {
            status: status.as_u16(),
            message: registry_message(&bytes),
        }),
        status => Err(not_outpost(format!("GET {} answered {status}", url.path()))),
    }
}

/// Sends signed metadata for `namespace`.
pub async fn send_metadata(
    registry: &Url,
    tls: &ClientTls,
    token: &str,
    namespace: &str,
    signed: &Signed<Targets>,
) -> Result<u64, VendorError> {
    let url = metadata_url(registry, namespace)?;
    let body = tuf::to_bytes(signed);
    let (status, bytes) = request(hyper::Method::PUT, &url, tls, Some(token), body).await?;
    if status == StatusCode::CREATED {
        Ok(signed.signed.version.get())
    } else {
        Err(VendorError::Refused {
            status: status.as_u16(),
            message: registry_message(&bytes),
        })
    }
}

/// Whether each of `keys` signed `metadata`; a namespace that kept one key
/// and replaced another must re-sign too.
fn signed_by_all(metadata: &Signed<Targets>, keys: &[&KeyPair]) -> bool {
    keys.iter().all(|key| {
        let id = key.key_id();
        metadata.signatures.iter().any(|s| s.keyid == id)
    })
}

/// Pushes `release` and publishes it signed with `keys`.
pub async fn publish(
    registry: &Url,
    tls: &ClientTls,
    token: &str,
    keys: &[&KeyPair],
    release: &Release,
    lifetime: jiff::SignedDuration,
) -> Result<Outcome, VendorError> {
    let namespace = release
        .plugin
        .split_once('/')
        .map(|(ns, _)| ns.to_string())
        .ok_or_else(|| VendorError::PluginId(release.plugin.clone()))?;
    // Ask before pushing: a plain OCI registry, or a namespace the
    // registry lacks, should cost the vendor nothing and say why.
    crate::tls::require_private(registry, "a vendor token")?;
    current_metadata(registry, tls, &namespace).await?;
    let built = push(
        registry,
        tls,
        &RegistryAuth::Bearer(token.to_string()),
        release,
    )
    .await?;
    let info = ReleaseInfo {
        repository: release.plugin.clone(),
        world: release.world.clone(),
        grants: release.grants.clone(),
    };
    let name = tuf::target_name(&release.plugin, &release.version);
    let target = tuf::release_target(&built.manifest, &info);
    // Another publish for the same namespace may land between reading the
    // metadata and sending ours; the registry then refuses with 409 and we
    // build on the newer metadata once more.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let previous = current_metadata(registry, tls, &namespace).await?;
        if let Some(previous) = &previous
            && let Some(existing) = previous
                .signed
                .targets
                .iter()
                .find(|(n, _)| n.raw() == name)
                .map(|(_, t)| t)
        {
            if existing.hashes.sha256 == target.hashes.sha256 {
                // Already published. Sign the list again if it lapses
                // within RENEW_WITHIN (nodes refuse an expired one), or if
                // one of our keys did not sign it: the central team replaced
                // the namespace's keys, and this publish moves nodes to them.
                let mut metadata_version = previous.signed.version.get();
                let now = jiff::Timestamp::now();
                // A renewal must move the expiry, which has whole seconds.
                let renewal_extends = tuf::whole_seconds(now + lifetime) > previous.signed.expires;
                if (previous.signed.expires < now + RENEW_WITHIN && renewal_extends)
                    || !signed_by_all(previous, keys)
                {
                    let renewed =
                        repository::next_vendor_role(Some(previous), Vec::new(), lifetime, keys)?;
                    match send_metadata(registry, tls, token, &namespace, &renewed).await {
                        Ok(version) => metadata_version = version,
                        Err(VendorError::Refused { status: 409, .. }) if attempts < 5 => continue,
                        Err(error) => return Err(error),
                    }
                }
                return Ok(Outcome {
                    target: name,
                    digest: built.digest,
                    metadata_version,
                    bytes: built.layers.iter().map(|(_, b)| b.len() as u64).sum(),
                });
            }
            return Err(VendorError::Refused {
                status: 409,
                message: format!(
                    "{name} is already published with different contents; a published version never changes, so bump the version in plugin.toml"
                ),
            });
        }
        let signed = repository::next_vendor_role(
            previous.as_ref(),
            vec![(name.clone(), target.clone())],
            lifetime,
            keys,
        )?;
        match send_metadata(registry, tls, token, &namespace, &signed).await {
            Ok(version) => {
                return Ok(Outcome {
                    target: name,
                    digest: built.digest,
                    metadata_version: version,
                    bytes: built.layers.iter().map(|(_, b)| b.len() as u64).sum(),
                });
            }
            Err(VendorError::Refused { status: 409, .. }) if attempts < 5 => continue,
            Err(error) => return Err(error),
        }
    }
}
