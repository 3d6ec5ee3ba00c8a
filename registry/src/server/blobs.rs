//! Blobs: downloads (scoped to the repositories that hold them, with
//! ranges) and uploads (monolithic, chunked, resumable, or mounted from
//! another repository).

use super::ranges::{self, Ranges};
use super::{
    Body, Handled, Refusal, Registry, WHOLE_BLOB_BYTES, idle_limit_text, method_not_allowed,
    query_param, refuse, respond, too_large, with_header,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use std::io::{Seek, SeekFrom};
use tokio::io::AsyncReadExt;

/// A multipart answer is built in memory; asking for more than this in
/// several ranges gets the whole blob, streamed, instead.
const MAX_MULTIPART_BYTES: u64 = WHOLE_BLOB_BYTES;

impl Registry {
    pub(super) fn blob(&self, request: &Request<Incoming>, repo: &str, digest: &str) -> Handled {
        let head = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            Method::DELETE => {
                return Err(refuse(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "UNSUPPORTED",
                    "published blobs are never deleted",
                ));
            }
            _ => return Err(method_not_allowed("GET, HEAD")),
        };
        let unknown = || {
            refuse(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                format!("{repo} has no blob {digest}"),
            )
        };
        // Only through a repository that holds it: otherwise any blob would
        // be readable under any name, other vendors' namespaces included.
        let size = self
            .store
            .linked_blob_size(repo, digest)?
            .ok_or_else(unknown)?;
        // `Range` applies to GET only (RFC 9110 §14.2): a HEAD describes
        // the whole blob.
        let ranges = request
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| !head)
            .map(|v| ranges::parse(v, size))
            .unwrap_or(Ranges::Whole);
        let ranges = match ranges {
            Ranges::Many(parts)
                if parts.iter().map(|(s, e)| e - s + 1).sum::<u64>() > MAX_MULTIPART_BYTES =>
            {
                Ranges::Whole
            }
            other => other,
        };
        let failed =
            |e: std::io::Error| refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string());
        let read = |start: u64, length: u64| -> Result<Vec<u8>, Refusal> {
            let mut file = self.store.open_blob(digest).ok_or_else(unknown)?;
            let mut bytes = Vec::with_capacity(length as usize);
            file.seek(SeekFrom::Start(start))
                .and_then(|_| {
                    std::io::Read::read_to_end(
                        &mut std::io::Read::take(&mut file, length),
                        &mut bytes,
                    )
                })
                .map_err(failed)?;
            Ok(bytes)
        };
        let (status, start, length, content_range, content_type) = match &ranges {
            Ranges::Unsatisfiable => {
                let refusal = refuse(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "UNSUPPORTED",
                    format!("no range asked for lies inside this {size}-byte blob"),
                );
                let response = refusal.into_response();
                return Ok(with_header(
                    response,
                    "content-range",
                    &format!("bytes */{size}"),
                ));
            }
            Ranges::Whole => (
                StatusCode::OK,
                0,
                size,
                None,
                "application/octet-stream".to_string(),
            ),
            Ranges::One(start, end) => (
                StatusCode::PARTIAL_CONTENT,
                *start,
                end - start + 1,
                Some(format!("bytes {start}-{end}/{size}")),
                "application/octet-stream".to_string(),
            ),
            Ranges::Many(_) => (
                StatusCode::PARTIAL_CONTENT,
                0,
                0,
                None,
                format!(
                    "multipart/byteranges; boundary={}",
                    ranges::boundary(digest)
                ),
            ),
        };
        let mut response = if let Ranges::Many(parts) = &ranges {
            let boundary = ranges::boundary(digest);
            let mut body = Vec::new();
            for (index, (start, end)) in parts.iter().enumerate() {
                if index > 0 {
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(
                    ranges::part_header(&boundary, *start, *end, size).as_bytes(),
                );
                body.extend(read(*start, end - start + 1)?);
            }
            body.extend_from_slice(ranges::closing(&boundary).as_bytes());
            let length = body.len();
            with_header(respond(status, body), "content-length", &length.to_string())
        } else if head {
            with_header(
                respond(status, Bytes::new()),
                "content-length",
                &length.to_string(),
            )
        } else if length <= WHOLE_BLOB_BYTES {
            // Small blobs (most components) in one read and one write: a
            // third of the time of streaming them (docs/performance.md).
            with_header(
                respond(status, read(start, length)?),
                "content-length",
                &length.to_string(),
            )
        } else {
            // Larger ones stream in 64 KiB reads, so many nodes pulling a
            // large component at once do not each hold it in memory.
            let mut file = self.store.open_blob(digest).ok_or_else(unknown)?;
            file.seek(SeekFrom::Start(start)).map_err(failed)?;
            let file = tokio::fs::File::from_std(file.into_std());
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), 64 << 10)
                .map_ok(Frame::data);
            let mut response: Response<Body> =
                Response::new(BodyExt::boxed(StreamBody::new(stream)));
            *response.status_mut() = status;
            with_header(response, "content-length", &length.to_string())
        };
        response = with_header(response, "docker-content-digest", digest);
        response = with_header(response, "accept-ranges", "bytes");
        response = with_header(response, "content-type", &content_type);
        if let Some(content_range) = content_range {
            response = with_header(response, "content-range", &content_range);
        }
        Ok(response)
    }

    pub(super) async fn upload(&self, request: Request<Incoming>, repo: &str, id: &str) -> Handled {
        let namespace = self.push_namespace(repo)?;
        self.authorise(&request, namespace)?;
        let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}");
        if id.is_empty() {
            if request.method() != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            if let Some(mounted) = self.mount(&request, repo)? {
                return Ok(mounted);
            }
            let digest = query_param(&request, "digest");
            let limit = self.config.max_open_uploads_per_namespace;
            let Some(id) = self.store.start_upload(repo, limit)? else {
                return Err(refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOOMANYREQUESTS",
                    format!(
                        "namespace {namespace} already has {limit} unfinished uploads; finish \
                         or cancel one (DELETE its /v2/.../blobs/uploads/<id>), or wait: uploads \
                         idle for {} are removed",
                        idle_limit_text(self.config.upload_idle_limit)
                    ),
                ));
            };
            if let Some(digest) = digest {
                self.receive(request, &id, 0).await?;
                return self.finish(repo, &id, &digest);
            }
            let response = respond(StatusCode::ACCEPTED, Bytes::new());
            let response = with_header(response, "location", &location(&id));
            let response = with_header(response, "range", "0-0");
            return Ok(with_header(response, "docker-upload-uuid", &id));
        }
        // Asking where an upload stands is safe beside a writer; changing
        // it is not.
        let _in_use = if request.method() == Method::GET {
            None
        } else {
            Some(self.claim_upload(id)?)
        };
        let Some((owner, received)) = self.store.upload(id)? else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                format!("no upload {id}; start again with POST /v2/{repo}/blobs/uploads/"),
            ));
        };
        if owner != repo {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "BLOB_UPLOAD_UNKNOWN",
                format!("upload {id} belongs to another repository"),
            ));
        }
        match *request.method() {
            Method::GET => {
                let response = respond(StatusCode::NO_CONTENT, Bytes::new());
                let response = with_header(response, "location", &location(id));
                Ok(with_header(
                    response,
                    "range",
                    &format!("0-{}", received.saturating_sub(1)),
                ))
            }
            Method::DELETE => {
                self.store.cancel_upload(id)?;
                Ok(respond(StatusCode::NO_CONTENT, Bytes::new()))
            }
            Method::PATCH | Method::PUT => {
                let put = request.method() == Method::PUT;
                let digest = query_param(&request, "digest");
                if let Some(range) = request
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                {
                    let start = range
                        .trim_start_matches("bytes ")
                        .split('-')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok());
                    if start != Some(received) {
                        return Err(refuse(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            "BLOB_UPLOAD_INVALID",
                            format!(
                                "this upload has {received} bytes; send the next chunk from there"
                            ),
                        ));
                    }
                }
                let size = self.receive(request, id, received).await?;
                if put {
                    let Some(digest) = digest else {
                        return Err(refuse(
                            StatusCode::BAD_REQUEST,
                            "DIGEST_INVALID",
                            "finishing an upload needs ?digest=sha256:<hex>",
                        ));
                    };
                    return self.finish(repo, id, &digest);
                }
                let response = respond(StatusCode::ACCEPTED, Bytes::new());
                let response = with_header(response, "location", &location(id));
                Ok(with_header(
                    response,
                    "range",
                    &format!("0-{}", size.saturating_sub(1)),
                ))
            }
            _ => Err(method_not_allowed("GET, PATCH, PUT, DELETE")),
        }
    }

    /// Marks upload `id` as in use by this request until the returned
    /// guard drops; a second request on it meanwhile is refused.
    fn claim_upload(&self, id: &str) -> Result<UploadInUse<'_>, Refusal> {
        let mut in_use = self
            .uploads_in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !in_use.insert(id.to_string()) {
            return Err(refuse(
                StatusCode::CONFLICT,
                "BLOB_UPLOAD_INVALID",
                format!(
                    "another request is still writing to upload {id}; wait for it to end, \
                     then ask where the upload stands (GET) and continue from there"
                ),
            ));
        }
        Ok(UploadInUse {
            registry: self,
            id: id.to_string(),
        })
    }

    /// `POST …/blobs/uploads/?mount=<digest>&from=<repository>`: links a
    /// blob `from` holds into `repo` without sending it again (201). Pulls
    /// are anonymous, so any repository's blobs may be mounted; without
    /// `from`, or when `from` does not hold it, `None`, and the caller
    /// starts an ordinary upload (202), as the specification says.
    fn mount(
        &self,
        request: &Request<Incoming>,
        repo: &str,
    ) -> Result<Option<Response<Body>>, Refusal> {
        let Some(digest) = query_param(request, "mount") else {
            return Ok(None);
        };
        let Some(from) = query_param(request, "from") else {
            return Ok(None);
        };
        if !crate::store::is_digest(&digest)
            || self.store.linked_blob_size(&from, &digest)?.is_none()
        {
            return Ok(None);
        }
        if !self.store.link_blob(repo, &digest)? {
            return Ok(None);
        }
        let response = respond(StatusCode::CREATED, Bytes::new());
        let response = with_header(response, "location", &format!("/v2/{repo}/blobs/{digest}"));
        Ok(Some(with_header(
            response,
            "docker-content-digest",
            &digest,
        )))
    }

    /// Streams the request body into upload `id` from `offset`, so a
    /// large blob never sits in memory; past the size limit the upload is
    /// dropped. Returns the upload's size.
    async fn receive(
        &self,
        request: Request<Incoming>,
        id: &str,
        offset: u64,
    ) -> Result<u64, Refusal> {
        let limit = self.config.max_blob_bytes;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| offset.saturating_add(length) > limit) {
            self.store.cancel_upload(id)?;
            return Err(too_large(limit));
        }
        let mut file = self.store.upload_file(id, offset)?;
        let mut size = offset;
        let mut body = request.into_body();
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    // The client went away mid-chunk: keep what is written
                    // up to the last whole frame, so it can resume.
                    self.store.record_upload_size(id, size)?;
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "BLOB_UPLOAD_INVALID",
                        format!(
                            "the upload was cut off after {size} bytes ({error}); resume from there"
                        ),
                    ));
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if size.saturating_add(data.len() as u64) > limit {
                drop(file);
                self.store.cancel_upload(id)?;
                return Err(too_large(limit));
            }
            std::io::Write::write_all(&mut file, &data).map_err(|e| {
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    format!("writing the upload: {e}"),
                )
            })?;
            size += data.len() as u64;
        }
        self.store.record_upload_size(id, size)?;
        Ok(size)
    }

    fn finish(&self, repo: &str, id: &str, digest: &str) -> Handled {
        if !crate::store::is_digest(digest) {
            self.store.cancel_upload(id)?;
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("{digest:?} is not a sha256 digest (sha256:<64 lowercase hex>)"),
            ));
        }
        match self.store.finish_upload(id, digest)? {
            Ok(_) => {
                let response = respond(StatusCode::CREATED, Bytes::new());
                let response =
                    with_header(response, "location", &format!("/v2/{repo}/blobs/{digest}"));
                Ok(with_header(response, "docker-content-digest", digest))
            }
            Err(actual) => Err(refuse(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                format!("the upload's digest is {actual}, not {digest}; nothing was stored"),
            )),
        }
    }
}

/// An upload claimed by one request; released when the request ends.
struct UploadInUse<'a> {
    registry: &'a Registry,
    id: String,
}

impl Drop for UploadInUse<'_> {
    fn drop(&mut self) {
        self.registry
            .uploads_in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.id);
    }
}
