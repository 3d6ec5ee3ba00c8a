//! `outpost-registry serve`: the OCI distribution API (pull and push) for
//! the bytes, `/tuf/` for the signed metadata, and one Outpost route for a
//! vendor to publish its signed namespace metadata.
//!
//! | route | what |
//! |---|---|
//! | `GET /v2/` | API version check |
//! | `GET,HEAD /v2/<repo>/blobs/<digest>` | a blob, with `Range` |
//! | `POST /v2/<repo>/blobs/uploads/` | start an upload, or upload whole with `?digest=` |
//! | `PATCH,PUT,GET,DELETE /v2/<repo>/blobs/uploads/<id>` | chunk, finish (`?digest=`), status, cancel |
//! | `GET,HEAD,PUT /v2/<repo>/manifests/<tag or digest>` | manifests; a tag once pushed never moves |
//! | `GET /v2/<repo>/tags/list` | tags |
//! | `GET /tuf/<file>` | TUF metadata (`1.root.json`, `timestamp.json`, `3.snapshot.json`, …) |
//! | `GET,PUT /outpost/v1/namespaces/<ns>/metadata` | a vendor's signed release metadata |
//!
//! Pulls are anonymous: trust comes from the TUF metadata, not from the
//! channel. Pushes and publishes need a token for the namespace that is the
//! repository's first path segment, as `Bearer <token>` or as the password
//! of HTTP Basic (what docker-style clients send).

use crate::artifact;
use crate::release_check::ReleaseCheck;
use crate::repository::{self, Lifetimes, OnlineKeys, PublishRefusal};
use crate::store::{RegistryStore, StoreError, TokenRecord};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// How the registry serves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub lifetimes: Lifetimes,
    /// The largest blob accepted (a component or an asset).
    pub max_blob_bytes: u64,
    /// Re-sign the timestamp before it lapses. Off only in tests that need
    /// metadata to go stale.
    pub refresh_timestamp: bool,
    /// Unfinished uploads one namespace may hold at once; with
    /// `max_blob_bytes` this bounds the disk a token holder can take
    /// without publishing anything.
    pub max_open_uploads_per_namespace: usize,
    /// An upload that receives nothing for this long is removed.
    pub upload_idle_limit: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            lifetimes: Lifetimes::default(),
            max_blob_bytes: 64 << 20,
            refresh_timestamp: true,
            max_open_uploads_per_namespace: 32,
            upload_idle_limit: Duration::from_secs(24 * 3600),
        }
    }
}

/// A running registry's state.
pub struct Registry {
    store: RegistryStore,
    online: OnlineKeys,
    config: ServeConfig,
    release_check: Option<Arc<dyn ReleaseCheck>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Blobs up to this size are read whole; larger ones stream from disk.
const WHOLE_BLOB_BYTES: u64 = 1 << 20;

/// Small answers are built whole; large blobs stream from disk.
type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn idle_limit_text(limit: Duration) -> String {
    let seconds = limit.as_secs();
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// An OCI-style error: a status, a code from the distribution spec, and a
/// message saying what to do.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        tracing::error!("registry store: {error}");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            error.to_string(),
        )
    }
}

impl From<repository::RepositoryError> for Refusal {
    fn from(error: repository::RepositoryError) -> Self {
        tracing::error!("registry metadata: {error}");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            error.to_string(),
        )
    }
}

impl Refusal {
    fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message }]
        });
        let mut response = Response::new(full(body.to_string()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"outpost-registry\""),
            );
        }
        response
    }
}

type Handled = Result<Response<Body>, Refusal>;

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
}

fn with_header(mut response: Response<Body>, name: &'static str, value: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

fn valid_repository(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && p.as_bytes()[0].is_ascii_alphanumeric()
        })
}

fn query_param(request: &Request<Incoming>, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%3A", ":").replace("%3a", ":"))
    })
}

impl Registry {
    pub fn new(store: RegistryStore, online: OnlineKeys, config: ServeConfig) -> Registry {
        Registry {
            store,
            online,
            config,
            release_check: None,
        }
    }

    /// Runs `check` on every plugin manifest pushed, before it is stored:
    /// the node's install checks, so a release no node would install is
    /// refused while its version number is still free.
    pub fn with_release_check(mut self, check: Arc<dyn ReleaseCheck>) -> Registry {
        self.release_check = Some(check);
        self
    }

    pub fn store(&self) -> &RegistryStore {
        &self.store
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let graceful = GracefulShutdown::new();
        // These chores hold the registry (and its open database): they end
        // with `serve`, so a stopped registry can be opened again in-process.
        let mut chores = Vec::new();
        if self.config.refresh_timestamp {
            let registry = self.clone();
            chores.push(tokio::spawn(async move {
                registry.keep_timestamp_fresh().await
            }));
        }
        let registry = self.clone();
        chores.push(tokio::spawn(async move {
            registry.sweep_abandoned_uploads().await
        }));
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!("accepting a connection failed: {error}");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // A streamed blob goes out in several writes; with Nagle's
            // algorithm each waits for the client's delayed ACK (~40 ms).
            let _ = stream.set_nodelay(true);
            let registry = self.clone();
            let service = service_fn(move |request| {
                let registry = registry.clone();
                async move { Ok::<_, std::convert::Infallible>(registry.handle(request).await) }
            });
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, "connection ended with an error: {error}");
                }
            });
        }
        for chore in chores {
            chore.abort();
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        Ok(())
    }

    /// Removes abandoned uploads at start (a crash or a restart may have left
    /// some) and then every quarter of the idle limit, at most hourly.
    async fn sweep_abandoned_uploads(&self) {
        let idle = self.config.upload_idle_limit;
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(3600));
        loop {
            match self.store.prune_uploads(idle) {
                Ok(pruned) if pruned.sessions > 0 || pruned.bytes > 0 => tracing::info!(
                    sessions = pruned.sessions,
                    bytes = pruned.bytes,
                    "removed abandoned uploads"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!("removing abandoned uploads failed: {error}"),
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn keep_timestamp_fresh(&self) {
        let lifetime = self.config.lifetimes.timestamp;
        let half = lifetime / 2;
        loop {
            let due = repository::timestamp_expires(&self.store)
                .ok()
                .and_then(|expires| expires.checked_sub(half).ok())
                .map(|at| at.duration_since(jiff::Timestamp::now()))
                .unwrap_or_default();
            let wait = Duration::try_from(due).unwrap_or_default();
            tokio::time::sleep(wait.clamp(Duration::from_millis(200), Duration::from_secs(3600)))
                .await;
            let refresh_at = repository::timestamp_expires(&self.store)
                .ok()
                .and_then(|expires| expires.checked_sub(half).ok());
            if refresh_at.is_some_and(|at| at <= jiff::Timestamp::now()) {
                match repository::refresh_timestamp(
                    &self.store,
                    &self.online,
                    self.config.lifetimes,
                ) {
                    Ok(version) => tracing::info!(version, "timestamp re-signed"),
                    Err(error) => tracing::error!("re-signing the timestamp failed: {error}"),
                }
            }
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let response = match self.route(request).await {
            Ok(response) => response,
            Err(refusal) => refusal.into_response(),
        };
        tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Handled {
        let path = request.uri().path().to_string();
        if path == "/v2/" || path == "/v2" {
            return Ok(with_header(
                respond(StatusCode::OK, "{}"),
                "docker-distribution-api-version",
                "registry/2.0",
            ));
        }
        if let Some(file) = path.strip_prefix("/tuf/") {
            return self.tuf(&request, file);
        }
        if let Some(rest) = path.strip_prefix("/outpost/v1/namespaces/") {
            let namespace = rest.strip_suffix("/metadata").unwrap_or("");
            if namespace.is_empty() || namespace.contains('/') {
                return Err(not_found(&path));
            }
            return self.namespace_metadata(request, namespace).await;
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Err(not_found(&path));
        };
        if let Some(repo) = rest.strip_suffix("/tags/list") {
            return self.tags(repo);
        }
        if let Some((repo, tail)) = rest.rsplit_once("/blobs/uploads") {
            let id = tail.trim_start_matches('/').to_string();
            return self.upload(request, repo, &id).await;
        }
        if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
            return self.blob(&request, repo, digest);
        }
        if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
            return self.manifest(request, repo, reference).await;
        }
        Err(not_found(&path))
    }

    /// The token's record, if the request carries a known token.
    fn caller(&self, request: &Request<Incoming>) -> Result<Option<TokenRecord>, Refusal> {
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value.to_str().unwrap_or("");
        let token = if let Some(token) = value.strip_prefix("Bearer ") {
            token.trim().to_string()
        } else if let Some(basic) = value.strip_prefix("Basic ") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&decoded).to_string();
            text.split_once(':')
                .map(|(_, p)| p.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        if token.is_empty() {
            return Ok(None);
        }
        Ok(self.store.token(&crate::admin::token_hash(&token))?)
    }

    /// Refuses unless the caller's token owns `namespace`.
    fn authorise(&self, request: &Request<Incoming>, namespace: &str) -> Result<(), Refusal> {
        match self.caller(request)? {
            None => Err(refuse(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "this needs a registry token; ask the central team for one (`outpost-registry token create <namespace>`) and pass it with --token or OUTPOST_REGISTRY_TOKEN",
            )),
            Some(record) if record.namespace == namespace => Ok(()),
            Some(record) => Err(refuse(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!(
                    "this token publishes under {}, not {namespace}; use a token for {namespace}",
                    record.namespace
                ),
            )),
        }
    }

    fn push_namespace<'a>(&self, repo: &'a str) -> Result<&'a str, Refusal> {
        if !valid_repository(repo) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                format!(
                    "{repo:?} is not a repository name here; use <namespace>/<plugin> in lowercase"
                ),
            ));
        }
        Ok(repo.split('/').next().unwrap_or(repo))
    }

    fn tuf(&self, request: &Request<Incoming>, file: &str) -> Handled {
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

    async fn namespace_metadata(&self, request: Request<Incoming>, namespace: &str) -> Handled {
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

    fn tags(&self, repo: &str) -> Handled {
        let tags = self.store.tags(repo)?;
        if tags.is_empty() {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("no repository {repo}"),
            ));
        }
        let body = serde_json::json!({ "name": repo, "tags": tags });
        Ok(with_header(
            respond(StatusCode::OK, body.to_string()),
            "content-type",
            "application/json",
        ))
    }

    fn blob(&self, request: &Request<Incoming>, repo: &str, digest: &str) -> Handled {
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
        let size = self.store.blob_size(digest).ok_or_else(unknown)?;
        let range = request
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|v| parse_range(v, size))
            .transpose()?;
        let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
        let length = if size == 0 { 0 } else { end - start + 1 };
        let status = if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        let failed =
            |e: std::io::Error| refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string());
        let mut response = if head {
            respond(status, Bytes::new())
        } else if length <= WHOLE_BLOB_BYTES {
            // Small blobs (most components) in one read and one write: a
            // third of the time of streaming them (docs/performance.md).
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
            respond(status, bytes)
        } else {
            // Larger ones stream in 64 KiB reads, so many nodes pulling a
            // large component at once do not each hold it in memory.
            let mut file = self.store.open_blob(digest).ok_or_else(unknown)?;
            file.seek(SeekFrom::Start(start)).map_err(failed)?;
            let file = tokio::fs::File::from_std(file.into_std());
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(length), 64 << 10)
                .map_ok(Frame::data);
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            *response.status_mut() = status;
            response
        };
        response = with_header(response, "docker-content-digest", digest);
        response = with_header(response, "accept-ranges", "bytes");
        response = with_header(response, "content-type", "application/octet-stream");
        response = with_header(response, "content-length", &length.to_string());
        if range.is_some() {
            response = with_header(
                response,
                "content-range",
                &format!("bytes {start}-{end}/{size}"),
            );
        }
        Ok(response)
    }

    async fn upload(&self, request: Request<Incoming>, repo: &str, id: &str) -> Handled {
        let namespace = self.push_namespace(repo)?;
        self.authorise(&request, namespace)?;
        let location = |id: &str| format!("/v2/{repo}/blobs/uploads/{id}");
        if id.is_empty() {
            if request.method() != Method::POST {
                return Err(method_not_allowed("POST"));
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
        if declared.is_some_and(|length| offset + length > limit) {
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
            if size + data.len() as u64 > limit {
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

    async fn manifest(&self, request: Request<Incoming>, repo: &str, reference: &str) -> Handled {
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
                let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| {
                        v.get("mediaType")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| artifact::MANIFEST_MEDIA_TYPE.to_string());
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
                let body = read_body(request, artifact::MAX_MANIFEST_BYTES).await?;
                self.put_manifest(repo, reference, &body).await
            }
            Method::DELETE => Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "UNSUPPORTED",
                "published manifests are never deleted; publish a new version instead",
            )),
            _ => Err(method_not_allowed("GET, HEAD, PUT")),
        }
    }

    async fn put_manifest(&self, repo: &str, reference: &str, body: &[u8]) -> Handled {
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
            let valid = !reference.is_empty()
                && reference.len() <= 128
                && reference
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "TAG_INVALID",
                    format!("{reference:?} is not a valid tag"),
                ));
            }
            Some(reference)
        };
        let invalid = |e: artifact::ArtifactError| {
            refuse(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", e.to_string())
        };
        let layout = artifact::parse(body).map_err(invalid)?;
        for blob in layout.blobs() {
            match self.store.blob_size(&blob.digest) {
                Some(size) if size as i64 == blob.size => {}
                Some(size) => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "SIZE_INVALID",
                        format!(
                            "the manifest says {} is {} bytes; the stored blob is {size}",
                            blob.digest, blob.size
                        ),
                    ));
                }
                None => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_BLOB_UNKNOWN",
                        format!(
                            "the manifest names {}, which was not uploaded; push the blobs first",
                            blob.digest
                        ),
                    ));
                }
            }
        }
        let has_plugin_manifest = layout
            .manifest
            .layers
            .iter()
            .any(|l| l.media_type == artifact::PLUGIN_MANIFEST_MEDIA_TYPE);
        let mut package = Vec::new();
        if has_plugin_manifest {
            for file in layout.files().map_err(invalid)? {
                let bytes = self
                    .store
                    .read_blob(&file.descriptor.digest, self.config.max_blob_bytes)
                    .unwrap_or_default();
                package.push((file.path, bytes));
            }
        }
        for layer in &layout.manifest.layers {
            if layer.media_type == artifact::WASM_MEDIA_TYPE {
                let bytes = self
                    .store
                    .read_blob(&layer.digest, self.config.max_blob_bytes)
                    .unwrap_or_default();
                artifact::check_component(&format!("layer {}", layer.digest), &bytes)
                    .map_err(invalid)?;
            }
        }
        if let Some(check) = self.release_check.clone()
            && !package.is_empty()
        {
            // Compiling a component takes a core for seconds.
            let verdict = tokio::task::spawn_blocking(move || check.check(&package))
                .await
                .unwrap_or_else(|e| Err(format!("the install check failed: {e}")));
            if let Err(why) = verdict {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_INVALID",
                    format!("no node would install this release: {why}"),
                ));
            }
        }
        match self.store.put_manifest(repo, &digest, body, tag)? {
            Ok(()) => {
                let response = respond(StatusCode::CREATED, Bytes::new());
                let response = with_header(
                    response,
                    "location",
                    &format!("/v2/{repo}/manifests/{digest}"),
                );
                Ok(with_header(response, "docker-content-digest", &digest))
            }
            Err(message) => Err(refuse(StatusCode::CONFLICT, "DENIED", message)),
        }
    }
}

async fn read_body(request: Request<Incoming>, limit: u64) -> Result<Bytes, Refusal> {
    if let Some(length) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit
    {
        return Err(too_large(limit));
    }
    let limited = Limited::new(request.into_body(), limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(error) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "BLOB_UPLOAD_INVALID",
            format!("the request body could not be read: {error}"),
        )),
    }
}

fn too_large(limit: u64) -> Refusal {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        "SIZE_INVALID",
        format!(
            "the upload is larger than this registry's limit of {limit} bytes; nothing was stored"
        ),
    )
}

fn not_found(path: &str) -> Refusal {
    refuse(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route {path}"),
    )
}

fn unknown_namespace(namespace: &str) -> Refusal {
    refuse(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        format!("namespace {namespace} does not exist; ask the central team to create it"),
    )
}

fn method_not_allowed(allowed: &'static str) -> Refusal {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!("use {allowed}"),
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

fn parse_range(value: &str, size: u64) -> Result<(u64, u64), Refusal> {
    let unsatisfiable = || {
        refuse(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "RANGE_INVALID",
            format!("{value:?} is not a satisfiable range of a {size}-byte blob"),
        )
    };
    let spec = value.strip_prefix("bytes=").ok_or_else(unsatisfiable)?;
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let start: u64 = start.trim().parse().map_err(|_| unsatisfiable())?;
    let end: u64 = if end.trim().is_empty() {
        size.saturating_sub(1)
    } else {
        end.trim()
            .parse::<u64>()
            .map_err(|_| unsatisfiable())?
            .min(size.saturating_sub(1))
    };
    if start >= size || end < start {
        return Err(unsatisfiable());
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_and_bad_ones_refused() {
        assert_eq!(parse_range("bytes=0-9", 100).ok(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).ok(), Some((90, 99)));
        assert_eq!(parse_range("bytes=90-500", 100).ok(), Some((90, 99)));
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=5-2", 100).is_err());
        assert!(parse_range("items=0-1", 100).is_err());
    }

    #[test]
    fn repository_names_need_a_namespace_and_lowercase() {
        assert!(valid_repository("acme/zpl-printer"));
        assert!(!valid_repository("zpl-printer"));
        assert!(!valid_repository("Acme/x"));
        assert!(!valid_repository("acme/../x"));
        assert!(!valid_repository("acme//x"));
    }
}
