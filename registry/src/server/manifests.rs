//! Manifests, tags and referrers.
//!
//! Any OCI image manifest or index (and their Docker schema-2 forms) is
//! taken, as long as everything it names is in the repository already; a
//! plugin (the Wasm artifact config) must also pass the plugin layout
//! checks and the node's install checks. A manifest with a `subject` is
//! listed by the referrers API under that digest: signatures and SBOMs
//! that travel with a release.

use super::{
    Handled, Refusal, Registry, method_not_allowed, query_param, read_body, refuse, respond,
    valid_repository, with_header,
};
use crate::artifact;
use crate::release_check::{CheckRefusal, MAX_PACKAGE_FILES};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, StatusCode};
use std::sync::atomic::Ordering;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a tag must have escaped inside a query value (tags are
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]*`, so in practice nothing is).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_');

/// Pushes waiting for a check slot; more are told to come back.
const MAX_WAITING_CHECKS: usize = 16;

/// Referrers in one answer; more follow through the `Link` header, as the
/// specification allows, so a subject with thousands of signatures does
/// not make one huge answer.
const REFERRERS_PER_PAGE: usize = 256;

/// What a pushed manifest refers to.
struct Refers {
    media_type: String,
    /// Config and layers: (digest, size).
    blobs: Vec<(String, i64)>,
    /// An index's manifests.
    children: Vec<String>,
    subject: Option<String>,
    artifact_type: Option<String>,
    config_media_type: Option<String>,
    annotations: Option<serde_json::Value>,
}

fn invalid(message: impl Into<String>) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
}

/// One descriptor's digest and size, checked.
fn descriptor(value: &serde_json::Value, what: &str) -> Result<(String, i64), Refusal> {
    let digest = value
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| invalid(format!("{what} has no digest")))?;
    if !crate::store::is_digest(digest) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!(
                "{what}'s digest {digest:?} is not sha256:<64 lowercase hex>, the only algorithm this registry stores"
            ),
        ));
    }
    let size = value
        .get("size")
        .and_then(|s| s.as_i64())
        .filter(|s| *s >= 0)
        .ok_or_else(|| invalid(format!("{what} has no valid size")))?;
    if value.get("mediaType").and_then(|m| m.as_str()).is_none() {
        return Err(invalid(format!("{what} has no mediaType")));
    }
    Ok((digest.to_string(), size))
}

fn read_manifest(body: &[u8], content_type: Option<&str>) -> Result<Refers, Refusal> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the manifest is not JSON: {e}")))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let declared = value.get("mediaType").and_then(|m| m.as_str());
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    if let (Some(declared), Some(sent)) = (declared, content_type)
        && declared != sent
    {
        return Err(invalid(format!(
            "the manifest's mediaType is {declared} but it was sent as {sent}; send it with Content-Type: {declared}"
        )));
    }
    let media_type = declared
        .or(content_type)
        .filter(|m| [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(m))
        .ok_or_else(|| {
            invalid(format!(
                "{:?} is not a manifest type this registry stores; use {OCI_MANIFEST} or {OCI_INDEX}",
                declared.or(content_type).unwrap_or("no media type")
            ))
        })?
        .to_string();
    let mut refers = Refers {
        media_type: media_type.clone(),
        blobs: Vec::new(),
        children: Vec::new(),
        subject: None,
        artifact_type: value
            .get("artifactType")
            .and_then(|a| a.as_str())
            .map(str::to_string),
        config_media_type: None,
        annotations: value.get("annotations").cloned(),
    };
    let is_index = media_type == OCI_INDEX || media_type == DOCKER_LIST;
    // What one kind of manifest has, the other must not: an index that
    // also carried a config and layers would be stored unchecked and read
    // by nodes as a plugin.
    let (wrong, kind) = if is_index {
        (["config", "layers"].as_slice(), "an index")
    } else {
        (["manifests"].as_slice(), "an image manifest")
    };
    if let Some(field) = wrong.iter().find(|f| value.get(**f).is_some()) {
        return Err(invalid(format!(
            "{kind} ({media_type}) may not have `{field}`"
        )));
    }
    if is_index {
        let manifests = value
            .get("manifests")
            .and_then(|m| m.as_array())
            .ok_or_else(|| invalid("an index needs a manifests array"))?;
        for (index, child) in manifests.iter().enumerate() {
            refers
                .children
                .push(descriptor(child, &format!("manifests[{index}]"))?.0);
        }
    } else {
        let config = value
            .get("config")
            .ok_or_else(|| invalid("an image manifest needs a config descriptor"))?;
        refers.blobs.push(descriptor(config, "config")?);
        refers.config_media_type = config
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string);
        let layers = value
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or_else(|| invalid("an image manifest needs a layers array"))?;
        for (index, layer) in layers.iter().enumerate() {
            refers
                .blobs
                .push(descriptor(layer, &format!("layers[{index}]"))?);
        }
    }
    if let Some(annotations) = &refers.annotations {
        let strings = annotations
            .as_object()
            .is_some_and(|map| map.values().all(|v| v.is_string()));
        if !strings {
            return Err(invalid("annotations must map strings to strings"));
        }
    }
    if let Some(subject) = value.get("subject") {
        refers.subject = Some(descriptor(subject, "subject")?.0);
    }
    Ok(refers)
}

/// Tags after `last`, at most `n` of them, and whether more follow.
fn tag_page(mut tags: Vec<String>, last: Option<&str>, n: Option<usize>) -> (Vec<String>, bool) {
    tags.sort();
    if let Some(last) = last {
        tags.retain(|t| t.as_str() > last);
    }
    match n {
        Some(n) if tags.len() > n => {
            tags.truncate(n);
            (tags, true)
        }
        _ => (tags, false),
    }
}

impl Registry {
    /// `GET /v2/<repo>/tags/list[?n=<n>&last=<tag>]`: in lexical order;
    /// with `n`, a page, and a `Link` to the next one when more follow.
    pub(super) fn tags(&self, request: &Request<Incoming>, repo: &str) -> Handled {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(method_not_allowed("GET"));
        }
        let tags = self.store.tags(repo)?;
        if tags.is_empty() && !self.store.repository_exists(repo)? {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("no repository {repo}"),
            ));
        }
        let n = match query_param(request, "n") {
            None => None,
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "UNSUPPORTED",
                    format!("n={n:?} is not a number of tags"),
                )
            })?),
        };
        let last = query_param(request, "last");
        let (page, more) = tag_page(tags, last.as_deref(), n);
        let next = match (more, page.last(), n) {
            (true, Some(last), Some(n)) => Some(format!(
                "</v2/{repo}/tags/list?n={n}&last={}>; rel=\"next\"",
                percent_encoding::utf8_percent_encode(last, QUERY_VALUE)
            )),
            _ => None,
        };
        let body = serde_json::json!({ "name": repo, "tags": page });
        let mut response = with_header(
            respond(StatusCode::OK, body.to_string()),
            "content-type",
            "application/json",
        );
        if let Some(next) = next {
            response = with_header(response, "link", &next);
        }
        Ok(response)
    }

    /// `GET /v2/<repo>/referrers/<digest>[?artifactType=<type>]`: an image
    /// index of the repository's manifests whose subject is `digest`;
    /// empty, not 404, when there are none.
    pub(super) fn referrers(
        &self,
        request: &Request<Incoming>,
        repo: &str,
        digest: &str,
    ) -> Handled {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(method_not_allowed("GET"));
        }
        if !valid_repository(repo) {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "NAME_INVALID",
                format!("{repo:?} is not a repository name"),
            ));
        }
        if !crate::store::is_digest(digest) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("{digest:?} is not sha256:<64 lowercase hex>"),
            ));
        }
        let filter = query_param(request, "artifactType");
        let after = query_param(request, "last");
        let page = self
            .store
            .referrers(repo, digest, after.as_deref(), REFERRERS_PER_PAGE + 1)?;
        let next = page
            .get(REFERRERS_PER_PAGE - 1)
            .filter(|_| page.len() > REFERRERS_PER_PAGE)
            .map(|(last, _)| {
                let mut link = format!("</v2/{repo}/referrers/{digest}?last={last}");
                if let Some(filter) = &filter {
                    link.push_str("&artifactType=");
                    link.extend(percent_encoding::utf8_percent_encode(filter, QUERY_VALUE));
                }
                link + ">; rel=\"next\""
            });
        let mut manifests = Vec::new();
        for (_, bytes) in page.iter().take(REFERRERS_PER_PAGE) {
            let Ok(descriptor) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                continue;
            };
            let artifact_type = descriptor.get("artifactType").and_then(|a| a.as_str());
            if filter.as_deref().is_none_or(|f| artifact_type == Some(f)) {
                manifests.push(descriptor);
            }
        }
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let mut response = with_header(
            respond(StatusCode::OK, body.to_string()),
            "content-type",
            OCI_INDEX,
        );
        if filter.is_some() {
            response = with_header(response, "oci-filters-applied", "artifactType");
        }
        if let Some(next) = next {
            response = with_header(response, "link", &next);
        }
        Ok(response)
    }

    /// A plugin's manifest must have the plugin layout, a valid component,
    /// and pass the node's install checks. Sizes are judged from the
    /// manifest before anything is read; reading and checking happen under
    /// a check slot, which the blocking work holds to its end.
    async fn check_plugin(&self, body: &[u8]) -> Result<(), Refusal> {
        let layout = artifact::parse(body).map_err(|e| invalid(e.to_string()))?;
        let check = self.release_check.clone();
        let has_plugin_manifest = layout
            .manifest
            .layers
            .iter()
            .any(|l| l.media_type == artifact::PLUGIN_MANIFEST_MEDIA_TYPE);
        // A generic Wasm artifact (no plugin.toml) is stored after its
        // component is validated, but no node can install it and
        // publishing it is refused.
        let files = match (&check, has_plugin_manifest) {
            (Some(check), true) => {
                let files = layout.files().map_err(|e| invalid(e.to_string()))?;
                if files.len() > MAX_PACKAGE_FILES {
                    return Err(invalid(format!(
                        "the package has {} files; a package holds at most {MAX_PACKAGE_FILES}",
                        files.len()
                    )));
                }
                let total: u64 = files
                    .iter()
                    .map(|f| u64::try_from(f.descriptor.size).unwrap_or(u64::MAX))
                    .fold(0, u64::saturating_add);
                let limit = check.max_package_bytes();
                if total > limit {
                    return Err(invalid(format!(
                        "the package holds {total} bytes; a node reads at most {limit}"
                    )));
                }
                files
                    .into_iter()
                    .map(|f| (f.path, f.descriptor.digest.clone()))
                    .collect()
            }
            _ => Vec::new(),
        };
        let components: Vec<String> = layout
            .manifest
            .layers
            .iter()
            .filter(|l| l.media_type == artifact::WASM_MEDIA_TYPE)
            .map(|l| l.digest.clone())
            .collect();

        let busy = || {
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "TOOMANYREQUESTS",
                "the registry is checking many other releases; push this one again in a minute",
            )
        };
        if self.checks_waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_CHECKS {
            self.checks_waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let slot = self.check_slots.clone().acquire_owned().await;
        self.checks_waiting.fetch_sub(1, Ordering::SeqCst);
        let slot = slot.map_err(|_| busy())?;

        let read = |digest: &str| {
            self.store
                .read_blob(digest, self.config.max_blob_bytes)
                .ok_or_else(|| {
                    CheckRefusal::Unavailable(format!(
                        "blob {digest} is linked but cannot be read; see the registry's log"
                    ))
                })
        };
        let loaded = (|| -> Result<_, CheckRefusal> {
            let mut wasm = Vec::new();
            for digest in &components {
                wasm.push((digest.clone(), read(digest)?));
            }
            let mut package = Vec::new();
            for (path, digest) in &files {
                package.push((path.clone(), read(digest)?));
            }
            Ok((wasm, package))
        })();
        let (wasm, package) = match loaded {
            Ok(loaded) => loaded,
            Err(why) => {
                return Err(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    why.to_string(),
                ));
            }
        };
        // Validating and compiling take a core for seconds. The slot moves
        // into the work, so a client that hangs up does not free it early.
        let verdict = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            for (digest, bytes) in &wasm {
                artifact::check_component(&format!("layer {digest}"), bytes)
                    .map_err(|e| CheckRefusal::Refused(e.to_string()))?;
            }
            match check {
                Some(check) if !package.is_empty() => check.check(&package),
                _ => Ok(()),
            }
        })
        .await
        .unwrap_or_else(|e| {
            Err(CheckRefusal::Unavailable(format!(
                "the install checks failed: {e}"
            )))
        });
        match verdict {
            Ok(()) => Ok(()),
            Err(CheckRefusal::Refused(why)) => Err(invalid(format!(
                "no node would install this release: {why}"
            ))),
            Err(CheckRefusal::Unavailable(why)) => {
                Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "UNKNOWN", why))
            }
        }
    }

    pub(super) async fn manifest(
        &self,
        request: Request<Incoming>,
        repo: &str,
        reference: &str,
    ) -> Handled {
        match *request.method() {
            Method::GET | Method::HEAD => {
                let head = request.method() == Method::HEAD;
                let digest = if reference.starts_with("sha256:") {
                    Some(reference.to_string())
                } else {
                    self.store.tag(repo, reference)?
                };
                let bytes = match &digest {
                    Some(digest) => self.store.manifest(repo, digest)?,
                    None => None,
                };
                let (Some(digest), Some(bytes)) = (digest, bytes) else {
                    return Err(refuse(
                        StatusCode::NOT_FOUND,
                        "MANIFEST_UNKNOWN",
                        format!("{repo} has no manifest {reference}"),
                    ));
                };
                // Stored manifests passed `read_manifest`; one without a
                // `mediaType` (it came as Content-Type) is told apart by shape.
                let value = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
                let media_type = value
                    .as_ref()
                    .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()))
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        if value.as_ref().is_some_and(|v| v.get("manifests").is_some()) {
                            OCI_INDEX.to_string()
                        } else {
                            OCI_MANIFEST.to_string()
                        }
                    });
                let length = bytes.len();
                let body = if head {
                    Bytes::new()
                } else {
                    Bytes::from(bytes)
                };
                let response = respond(StatusCode::OK, body);
                let response = with_header(response, "content-type", &media_type);
                let response = with_header(response, "content-length", &length.to_string());
                Ok(with_header(response, "docker-content-digest", &digest))
            }
            Method::PUT => {
                let namespace = self.push_namespace(repo)?;
                self.authorise(&request, namespace)?;
                let content_type = request
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = read_body(request, artifact::MAX_MANIFEST_BYTES).await?;
                self.put_manifest(repo, reference, content_type.as_deref(), &body)
                    .await
            }
            Method::DELETE => Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "published manifests are never deleted; publish a new version instead",
            )),
            _ => Err(method_not_allowed("GET, HEAD, PUT")),
        }
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Handled {
        let digest = artifact::digest_of(body);
        let tag = if reference.starts_with("sha256:") {
            if reference != digest {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    format!("the manifest's digest is {digest}, not {reference}"),
                ));
            }
            None
        } else {
            // The specification's tag grammar: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
            let valid = reference.len() <= 128
                && reference
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && reference
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_INVALID",
                    format!("{reference:?} is not a valid tag"),
                ));
            }
            Some(reference)
        };
        let refers = read_manifest(body, content_type)?;
        for (blob, size) in &refers.blobs {
            match self.store.linked_blob_size(repo, blob)? {
                Some(stored) if stored as i64 == *size => {}
                Some(stored) => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "SIZE_INVALID",
                        format!(
                            "the manifest says {blob} is {size} bytes; the stored blob is {stored}"
                        ),
                    ));
                }
                None => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_BLOB_UNKNOWN",
                        format!(
                            "the manifest names {blob}, which {repo} does not hold; push the blob \
                             to {repo} first (or mount it with ?mount=&from=)"
                        ),
                    ));
                }
            }
        }
        for child in &refers.children {
            if self.store.manifest(repo, child)?.is_none() {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!(
                        "the index names manifest {child}, which {repo} does not hold; push it first"
                    ),
                ));
            }
        }
        // The cheap refusals first: a tag that names another manifest is
        // refused without the install checks; a manifest already stored
        // passed them when it was pushed (the store checks the tag again,
        // atomically).
        if let Some(tag) = tag
            && let Some(existing) = self.store.tag(repo, tag)?
            && existing != digest
        {
            return Err(refuse(
                StatusCode::CONFLICT,
                "DENIED",
                format!(
                    "{repo}:{tag} is already published as {existing}; a published version never changes, publish a new version instead"
                ),
            ));
        }
        let stored = self.store.manifest(repo, &digest)?.is_some();
        if !stored && refers.config_media_type.as_deref() == Some(artifact::CONFIG_MEDIA_TYPE) {
            self.check_plugin(body).await?;
        }
        let descriptor = refers.subject.as_ref().map(|_| {
            let mut descriptor = serde_json::json!({
                "mediaType": refers.media_type,
                "digest": digest,
                "size": body.len(),
            });
            if let Some(artifact_type) = refers
                .artifact_type
                .as_ref()
                .or(refers.config_media_type.as_ref())
            {
                descriptor["artifactType"] = serde_json::Value::String(artifact_type.clone());
            }
            if let Some(annotations) = &refers.annotations {
                descriptor["annotations"] = annotations.clone();
            }
            descriptor.to_string()
        });
        let referrer = refers
            .subject
            .as_deref()
            .zip(descriptor.as_deref().map(str::as_bytes));
        match self
            .store
            .put_manifest(repo, &digest, body, tag, referrer)?
        {
            Ok(()) => {
                let response = respond(StatusCode::CREATED, Bytes::new());
                let response = with_header(
                    response,
                    "location",
                    &format!("/v2/{repo}/manifests/{digest}"),
                );
                let mut response = with_header(response, "docker-content-digest", &digest);
                if let Some(subject) = &refers.subject {
                    response = with_header(response, "oci-subject", subject);
                }
                Ok(response)
            }
            Err(message) => Err(refuse(StatusCode::CONFLICT, "DENIED", message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_page_in_lexical_order_after_last() {
        let tags = ["1.10.0", "1.2.0", "1.9.0", "latest"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            tag_page(tags.clone(), None, Some(2)),
            (vec!["1.10.0".to_string(), "1.2.0".to_string()], true)
        );
        assert_eq!(
            tag_page(tags.clone(), Some("1.2.0"), Some(2)),
            (vec!["1.9.0".to_string(), "latest".to_string()], false)
        );
        assert_eq!(tag_page(tags.clone(), None, Some(0)), (vec![], true));
        assert_eq!(tag_page(tags, Some("latest"), None), (vec![], false));
    }
}
