//! `/tuf/`: the signed metadata, and each release's signed bytes where a
//! TUF client looks for a target, plus the route a vendor publishes its
//! namespace's metadata through.

use super::{
    Handled, Refusal, Registry, method_not_allowed, read_body, refuse, respond, with_header,
};
use crate::artifact;
use crate::repository::{self, PublishRefusal};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

impl Registry {
    /// `GET /tuf/targets/<namespace>/<sha256>.<name>@<version>`: a
    /// release's target file, its OCI manifest, at the path a TUF client
    /// derives under consistent snapshots (the target's sha-256 before its
    /// base name); without the prefix too, for clients that do not add it.
    /// Only releases the namespace's newest signed metadata lists are
    /// served here, so a client that follows the metadata finds each one.
    pub(super) fn tuf_target(&self, request: &Request<Incoming>, path: &str) -> Handled {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(method_not_allowed("GET"));
        }
        let unknown = || {
            refuse(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no signed release at targets/{path}"),
            )
        };
        let (directory, file) = path.rsplit_once('/').ok_or_else(unknown)?;
        let (prefix, base) = match file.split_once('.') {
            Some((hash, base))
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                (Some(hash), base)
            }
            _ => (None, file),
        };
        let name = format!("{directory}/{base}");
        let (target, repository) =
            repository::signed_release(&self.store, &name)?.ok_or_else(unknown)?;
        let sha256 = crate::tuf::target_sha256(&target);
        if prefix.is_some_and(|p| p != sha256) {
            return Err(unknown());
        }
        let manifest = self
            .store
            .manifest(&repository, &format!("sha256:{sha256}"))?
            .ok_or_else(unknown)?;
        let length = manifest.len();
        let body = if request.method() == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(manifest)
        };
        let response = with_header(
            respond(StatusCode::OK, body),
            "content-type",
            artifact::MANIFEST_MEDIA_TYPE,
        );
        Ok(with_header(response, "content-length", &length.to_string()))
    }

    pub(super) fn tuf(&self, request: &Request<Incoming>, file: &str) -> Handled {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(method_not_allowed("GET"));
        }
        let valid = file.ends_with(".json")
            && file
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        let bytes = if valid {
            self.store.tuf_file(file)?
        } else {
            None
        };
        match bytes {
            Some(bytes) => Ok(with_header(
                respond(StatusCode::OK, bytes),
                "content-type",
                "application/json",
            )),
            None => Err(refuse(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("no metadata file {file}"),
            )),
        }
    }

    pub(super) async fn namespace_metadata(
        &self,
        request: Request<Incoming>,
        namespace: &str,
    ) -> Handled {
        match *request.method() {
            Method::GET => match repository::namespace_role(&self.store, namespace)? {
                Some(bytes) => Ok(respond(StatusCode::OK, bytes)),
                None if self.store.namespace(namespace)?.is_some() => {
                    Ok(respond(StatusCode::NO_CONTENT, Bytes::new()))
                }
                None => Err(unknown_namespace(namespace)),
            },
            Method::PUT => {
                self.authorise(&request, namespace)?;
                let body = read_body(request, artifact::MAX_MANIFEST_BYTES * 16).await?;
                let outcome = repository::publish(
                    &self.store,
                    namespace,
                    &body,
                    &self.online,
                    self.config.lifetimes,
                )?;
                match outcome {
                    Ok(published) => {
                        tracing::info!(namespace, version = published.version, releases = ?published.releases, "published");
                        let body = serde_json::json!({
                            "namespace": published.namespace,
                            "version": published.version,
                            "releases": published.releases,
                        });
                        Ok(respond(StatusCode::CREATED, body.to_string()))
                    }
                    Err(refusal) => Err(publish_refusal(refusal)),
                }
            }
            _ => Err(method_not_allowed("GET, PUT")),
        }
    }
}

fn unknown_namespace(namespace: &str) -> Refusal {
    refuse(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        format!("namespace {namespace} does not exist; ask the central team to create it"),
    )
}

fn publish_refusal(refusal: PublishRefusal) -> Refusal {
    let (status, code) = match &refusal {
        PublishRefusal::UnknownNamespace(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
        PublishRefusal::Signature { .. } | PublishRefusal::OutsideNamespace { .. } => {
            (StatusCode::FORBIDDEN, "DENIED")
        }
        PublishRefusal::Version { .. } | PublishRefusal::Immutable(_) => {
            (StatusCode::CONFLICT, "DENIED")
        }
        _ => (StatusCode::BAD_REQUEST, "METADATA_INVALID"),
    };
    refuse(status, code, refusal.to_string())
}
