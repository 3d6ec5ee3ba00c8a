//! `outpost-registry serve`: the OCI distribution API (pull and push) for
//! the bytes, `/tuf/` for the signed metadata and the releases it names,
//! and one Outpost route for a vendor to publish its signed namespace
//! metadata.
//!
//! | route | what |
//! |---|---|
//! | `GET /v2/` | API version check; 401 with a Basic challenge unless a known token is sent |
//! | `GET,HEAD /v2/<repo>/blobs/<digest>` | a blob the repository holds, with `Range` ([`ranges`]) |
//! | `POST /v2/<repo>/blobs/uploads/` | start an upload; whole with `?digest=`; `?mount=&from=` links a blob another repository holds |
//! | `PATCH,PUT,GET,DELETE /v2/<repo>/blobs/uploads/<id>` | chunk, finish (`?digest=`), status, cancel |
//! | `GET,HEAD,PUT /v2/<repo>/manifests/<tag or digest>` | manifests; a tag once pushed never moves |
//! | `GET /v2/<repo>/tags/list` | tags, in lexical order, paged with `n` and `last` |
//! | `GET /v2/<repo>/referrers/<digest>` | manifests whose `subject` is the digest (OCI 1.1), `?artifactType=` |
//! | `GET,HEAD /tuf/<file>` | TUF metadata (`1.root.json`, `timestamp.json`, `3.snapshot.json`, …) |
//! | `GET,HEAD /tuf/targets/<ns>/<sha256>.<name>@<version>` | a release's signed bytes (its OCI manifest), where TUF clients look |
//! | `GET,PUT /outpost/v1/namespaces/<ns>/metadata` | a vendor's signed release metadata |
//!
//! Pulls are anonymous: trust comes from the TUF metadata, not from the
//! channel. Pushes and publishes need a token for the namespace that is the
//! repository's first path segment, as `Bearer <token>` or as the password
//! of HTTP Basic (what docker-style clients send). docs/registry-api.md
//! lists every endpoint against the distribution specification.

use crate::release_check::ReleaseCheck;
use crate::repository::{self, Lifetimes, OnlineKeys};
use crate::store::{RegistryStore, StoreError, TokenRecord};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

mod blobs;
pub mod control;
mod fleet;
mod fleet_page;
mod manifests;
pub mod ranges;
mod tuf_files;

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
    /// HTTPS. Without it the registry serves plain HTTP, and only on a
    /// loopback address (`serve` refuses any other).
    pub tls: Option<crate::tls::ServerTls>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            lifetimes: Lifetimes::default(),
            max_blob_bytes: 64 << 20,
            refresh_timestamp: true,
            max_open_uploads_per_namespace: 32,
            upload_idle_limit: Duration::from_secs(24 * 3600),
            tls: None,
        }
    }
}

/// A running registry's state.
pub struct Registry {
    store: RegistryStore,
    online: OnlineKeys,
    config: ServeConfig,
    release_check: Option<Arc<dyn ReleaseCheck>>,
    /// Uploads a request is writing to or finishing: one request per
    /// upload at a time, so no chunk lands in a file after its digest was
    /// checked and it became a blob other repositories may share.
    uploads_in_use: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Install checks running at once: each compiles a component.
    check_slots: Arc<tokio::sync::Semaphore>,
    /// Pushes waiting for a check slot.
    checks_waiting: std::sync::atomic::AtomicUsize,
    /// Which rollouts reach which node, as of a fleet revision.
    desired: std::sync::Mutex<Option<Arc<crate::desired::Index>>>,
    /// The nodes' public keys, decoded once.
    verifying: crate::keys::VerifyingKeys,
    /// The fleet page's login, when the page is served.
    fleet_login: Option<crate::web_login::WebLogin>,
    /// When each node last asked for its desired state.
    last_seen: crate::fleet::view::LastSeen,
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
/// How often running rollouts are looked at for nodes gone offline.
const ROLLOUT_TICK: Duration = Duration::from_secs(60);

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

/// The specification's repository grammar, with a namespace:
/// `<namespace>/<name>[/…]`, each component `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_repository(name: &str) -> bool {
    let component = |part: &str| {
        let bytes = part.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alphanumeric(first) || !alphanumeric(last) {
            return false;
        }
        // Separators: one `.`, one or two `_`, or any run of `-`.
        let mut run: Vec<u8> = Vec::new();
        for b in bytes {
            if alphanumeric(b) {
                let ok = run.is_empty()
                    || run == b"."
                    || run == b"_"
                    || run == b"__"
                    || run.iter().all(|c| *c == b'-');
                if !ok {
                    return false;
                }
                run.clear();
            } else if matches!(b, b'.' | b'_' | b'-') {
                run.push(*b);
            } else {
                return false;
            }
        }
        true
    };
    let parts: Vec<&str> = name.split('/').collect();
    name.len() <= 255 && parts.len() >= 2 && parts.iter().all(|p| component(p))
}

/// A `/v2/` route, read from the end of the path, so a repository may be
/// named like a route segment (`acme/blobs`, `acme/referrers`).
#[derive(Debug, PartialEq, Eq)]
enum V2Route<'a> {
    Tags(&'a str),
    Referrers(&'a str, &'a str),
    /// The repository and the upload id (empty: start one).
    Upload(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Manifest(&'a str, &'a str),
}

fn v2_route(rest: &str) -> Option<V2Route<'_>> {
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return Some(V2Route::Tags(repo));
    }
    // `<repo>/blobs/uploads`, `<repo>/blobs/uploads/`, `<repo>/blobs/uploads/<id>`
    let trimmed = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(repo) = trimmed.strip_suffix("/blobs/uploads") {
        return Some(V2Route::Upload(repo, ""));
    }
    let (head, last) = rest.rsplit_once('/')?;
    if let Some(repo) = head.strip_suffix("/blobs/uploads") {
        return Some(V2Route::Upload(repo, last));
    }
    let (repo, kind) = head.rsplit_once('/')?;
    match kind {
        "blobs" => Some(V2Route::Blob(repo, last)),
        "manifests" => Some(V2Route::Manifest(repo, last)),
        "referrers" => Some(V2Route::Referrers(repo, last)),
        _ => None,
    }
}

/// A query parameter, percent-decoded (`sha256%3A…`, `acme%2Fprinter`).
/// `+` stays `+`: media types carry it (`application/spdx+json`).
fn query_param(request: &Request<Incoming>, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decoded(value))
    })
}

fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Who sent a request.
enum Caller {
    /// No credentials (or an empty password, which docker-style clients
    /// send when they have none).
    Anonymous,
    /// A token the registry does not know: mistyped, or revoked.
    UnknownToken,
    Vendor(TokenRecord),
}

impl Registry {
    pub fn new(store: RegistryStore, online: OnlineKeys, config: ServeConfig) -> Registry {
        Registry {
            store,
            online,
            config,
            release_check: None,
            uploads_in_use: Default::default(),
            check_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            checks_waiting: Default::default(),
            desired: Default::default(),
            verifying: Default::default(),
            fleet_login: None,
            last_seen: Default::default(),
        }
    }

    /// Runs `check` on every plugin manifest pushed, before it is stored:
    /// the node's install checks, so a release no node would install is
    /// refused while its version number is still free.
    pub fn with_release_check(mut self, check: Arc<dyn ReleaseCheck>) -> Registry {
        self.release_check = Some(check);
        self
    }

    /// Serves the central team's fleet page at `/fleet/`, behind `password`.
    pub fn with_fleet_page(mut self, password: String) -> Registry {
        self.fleet_login = Some(crate::web_login::WebLogin::new(
            password,
            "outpost_fleet",
            "/fleet",
        ));
        self
    }

    pub fn store(&self) -> &RegistryStore {
        &self.store
    }

    /// Serves on `listener` until `shutdown` resolves. Without TLS the
    /// listener must be on a loopback address: tokens would cross the
    /// network in clear otherwise.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let address = listener.local_addr()?;
        if self.config.tls.is_none() && !address.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "refusing to serve plain HTTP on {address}: vendor and enrolment tokens \
                     would cross the network in clear. Give a certificate and key \
                     (--tls-cert, --tls-key), or listen on 127.0.0.1 behind a TLS proxy"
                ),
            ));
        }
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
        let registry = self.clone();
        chores.push(tokio::spawn(
            async move { registry.move_rollouts_on().await },
        ));
        self.fix_fractional_expiries();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, say: wait a little
                        // rather than spin and flood the log.
                        tracing::warn!("accepting a connection failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // A streamed blob goes out in several writes; with Nagle's
            // algorithm each waits for the client's delayed ACK (~40 ms).
            let _ = stream.set_nodelay(true);
            let registry = self.clone();
            let watcher = graceful.watcher();
            let tls = self.config.tls.clone();
            tokio::spawn(async move {
                let outcome = match tls {
                    None => registry.serve_connection(stream, watcher).await,
                    Some(tls) => {
                        let handshake = tls.acceptor().accept(stream);
                        match tokio::time::timeout(crate::tls::HANDSHAKE_LIMIT, handshake).await {
                            Ok(Ok(stream)) => registry.serve_connection(stream, watcher).await,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {error}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake took too long");
                                return;
                            }
                        }
                    }
                };
                if let Err(error) = outcome {
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

    /// HTTP/1.1 on one accepted connection, plain or TLS.
    async fn serve_connection<S>(
        self: Arc<Self>,
        stream: S,
        watcher: hyper_util::server::graceful::Watcher,
    ) -> hyper::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| {
            let registry = self.clone();
            async move { Ok::<_, std::convert::Infallible>(registry.handle(request).await) }
        });
        let connection = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        watcher.watch(connection).await
    }

    /// Metadata signed before expiries had whole seconds: re-signs what the
    /// online keys sign, and says what needs a person.
    fn fix_fractional_expiries(&self) {
        match repository::resign_fractional_expiries(
            &self.store,
            &self.online,
            self.config.lifetimes,
        ) {
            Ok(found) => {
                if found.resigned {
                    tracing::info!(
                        "re-signed targets, snapshot and timestamp with whole-second expiries (TUF's format)"
                    );
                }
                if found.root {
                    tracing::warn!(
                        "root.json's expiry has a fraction of a second, which python-tuf and go-tuf \
                         refuse; rotate the root with the offline keys (`outpost-registry root rotate`)"
                    );
                }
                for namespace in found.namespaces {
                    tracing::warn!(
                        namespace,
                        "the namespace's signed release list has an expiry with a fraction of a \
                         second; its vendor's next `outpost vendor publish` of a new release fixes it"
                    );
                }
            }
            Err(error) => tracing::error!("checking the metadata's expiries failed: {error}"),
        }
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

    /// A wave waiting only for nodes that went silent moves on when they
    /// count as offline, with no report to trigger it: looked at every
    /// minute.
    async fn move_rollouts_on(&self) {
        loop {
            tokio::time::sleep(ROLLOUT_TICK).await;
            match crate::rollout::advance_running(&self.store, crate::store::now_seconds()) {
                Ok(moved) => {
                    for rollout in moved {
                        tracing::info!(rollout = %rollout.id, state = rollout.state.name(), "rollout moved on (nodes offline)");
                    }
                }
                Err(error) => tracing::error!("cannot move rollouts on: {error}"),
            }
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
        let mut response = match self.route(request).await {
            Ok(response) => response,
            Err(refusal) => refusal.into_response(),
        };
        if path.starts_with("/v2") {
            response.headers_mut().insert(
                "docker-distribution-api-version",
                HeaderValue::from_static("registry/2.0"),
            );
        }
        tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Handled {
        let path = request.uri().path().to_string();
        if path == "/v2/" || path == "/v2" {
            return self.version_check(&request);
        }
        if let Some(file) = path.strip_prefix("/tuf/") {
            let file = percent_decoded(file);
            if let Some(target) = file.strip_prefix("targets/") {
                return self.tuf_target(&request, target);
            }
            return self.tuf(&request, &file);
        }
        if let Some(route) = path.strip_prefix("/fleet/v1/") {
            return self.fleet(request, route).await;
        }
        if path == "/fleet" || path.starts_with("/fleet/") {
            let rest = path
                .strip_prefix("/fleet")
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            return self.fleet_page(request, &rest).await;
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
        match v2_route(rest) {
            Some(V2Route::Tags(repo)) => self.tags(&request, repo),
            Some(V2Route::Referrers(repo, digest)) => self.referrers(&request, repo, digest),
            Some(V2Route::Upload(repo, id)) => self.upload(request, repo, id).await,
            Some(V2Route::Blob(repo, digest)) => self.blob(&request, repo, digest),
            Some(V2Route::Manifest(repo, reference)) => {
                self.manifest(request, repo, reference).await
            }
            None => Err(not_found(&path)),
        }
    }

    /// `GET /v2/`. Docker-style clients (skopeo, podman, buildah) send
    /// credentials only after a challenge, and `login` takes a 200 as
    /// "these credentials work": so anything but a known token gets 401
    /// and a Basic challenge. Pulls stay anonymous: the other routes do
    /// not ask.
    fn version_check(&self, request: &Request<Incoming>) -> Handled {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(method_not_allowed("GET"));
        }
        match self.caller(request)? {
            Caller::Vendor(_) => Ok(with_header(
                with_header(
                    respond(StatusCode::OK, "{}"),
                    "content-type",
                    "application/json",
                ),
                "docker-distribution-api-version",
                "registry/2.0",
            )),
            Caller::UnknownToken => Err(unknown_token()),
            Caller::Anonymous => Err(refuse(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "pulls need no credentials; pushing needs a registry token as the password",
            )),
        }
    }

    /// Who sent the request.
    fn caller(&self, request: &Request<Incoming>) -> Result<Caller, Refusal> {
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return Ok(Caller::Anonymous);
        };
        let value = value.to_str().unwrap_or("").trim();
        // Authentication schemes are case-insensitive (RFC 9110 §11.1).
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        let token = if scheme.eq_ignore_ascii_case("bearer") {
            credentials.trim().to_string()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let basic = credentials;
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
            return Ok(Caller::Anonymous);
        }
        Ok(match self.store.token(&crate::admin::token_hash(&token))? {
            Some(record) => Caller::Vendor(record),
            None => Caller::UnknownToken,
        })
    }

    /// Refuses unless the caller's token owns `namespace`.
    fn authorise(&self, request: &Request<Incoming>, namespace: &str) -> Result<(), Refusal> {
        match self.caller(request)? {
            Caller::Anonymous => Err(refuse(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "this needs a registry token; ask the central team for one (`outpost-registry token create <namespace>`) and pass it with --token or OUTPOST_REGISTRY_TOKEN",
            )),
            Caller::UnknownToken => Err(unknown_token()),
            Caller::Vendor(record) if record.namespace == namespace => Ok(()),
            Caller::Vendor(record) => Err(refuse(
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
        "UNSUPPORTED",
        format!("no route {path}"),
    )
}

fn unknown_token() -> Refusal {
    refuse(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "this registry does not know that token (mistyped, or revoked); ask the central team \
         for a new one (`outpost-registry token create <namespace>`)",
    )
}

fn method_not_allowed(allowed: &'static str) -> Refusal {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!("use {allowed}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_need_a_namespace_and_the_specifications_grammar() {
        assert!(valid_repository("acme/zpl-printer"));
        assert!(valid_repository("acme/a.b_c__d---e"));
        assert!(!valid_repository("zpl-printer"));
        assert!(!valid_repository("Acme/x"));
        assert!(!valid_repository("acme/../x"));
        assert!(!valid_repository("acme//x"));
        assert!(!valid_repository("acme/a..b"));
        assert!(!valid_repository("acme/a-"));
        assert!(!valid_repository("acme/a___b"));
        assert!(!valid_repository("acme/_a"));
    }

    #[test]
    fn routes_are_read_from_the_end_of_the_path() {
        let digest = "sha256:ab";
        assert_eq!(v2_route("acme/x/tags/list"), Some(V2Route::Tags("acme/x")));
        assert_eq!(
            v2_route("acme/blobs/blobs/uploads/"),
            Some(V2Route::Upload("acme/blobs", ""))
        );
        assert_eq!(
            v2_route("acme/x/blobs/uploads"),
            Some(V2Route::Upload("acme/x", ""))
        );
        assert_eq!(
            v2_route("acme/x/blobs/uploads/0f0f"),
            Some(V2Route::Upload("acme/x", "0f0f"))
        );
        assert_eq!(
            v2_route(&format!("acme/blobs/blobs/{digest}")),
            Some(V2Route::Blob("acme/blobs", digest))
        );
        assert_eq!(
            v2_route("acme/referrers/manifests/1.0.0"),
            Some(V2Route::Manifest("acme/referrers", "1.0.0"))
        );
        assert_eq!(
            v2_route(&format!("acme/manifests/referrers/{digest}")),
            Some(V2Route::Referrers("acme/manifests", digest))
        );
        assert_eq!(v2_route("acme/x/other/y"), None);
    }
}
