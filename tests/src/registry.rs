//! A real registry on 127.0.0.1 for the end-to-end tests, the vendors that
//! publish to it, and a proxy in front of it that can tamper with answers
//! the way a hostile mirror or network would.

use crate::tls::TestCa;
use crate::{Artifact, PackageCopy};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use outpost::node::Node;
use outpost::release_check::ReleaseChecker;
use outpost::releases::{self, Fetched, ReleaseError, Source, Wanted};
use outpost_registry::admin;
use outpost_registry::fleet::{self, Labels};
use outpost_registry::keys::KeyPair;
use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
use outpost_registry::server::{Registry, ServeConfig};
use outpost_registry::store::RegistryStore;
use outpost_registry::tls::ClientTls;
use outpost_registry::vendor::{self, Outcome, VendorError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use url::Url;

/// The install checks every test registry runs, shared so that a test
/// binary compiles each component for them once.
static CHECKER: std::sync::LazyLock<Arc<ReleaseChecker>> =
    std::sync::LazyLock::new(|| Arc::new(ReleaseChecker::new()));

/// A vendor: its namespace, signing key and registry token.
#[derive(Clone, Debug)]
pub struct Vendor {
    pub namespace: String,
    pub key: KeyPair,
    pub token: String,
}

/// A registry serving from a temporary directory.
pub struct TestRegistry {
    pub dir: tempfile::TempDir,
    pub root_keys: Vec<KeyPair>,
    pub online: OnlineKeys,
    pub root_json: Vec<u8>,
    pub url: Url,
    pub registry: Arc<Registry>,
    /// The fleet page's login.
    pub page_password: String,
    pub acme: Vendor,
    pub bob: Vendor,
    /// What a client must trust to reach it: the system's roots for plain
    /// HTTP, its CA for HTTPS.
    pub client_tls: ClientTls,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl TestRegistry {
    /// A registry with namespaces `acme` and `bob`, each with its own key
    /// and token, that runs a node's install checks on every pushed release
    /// (as `outpost-registry serve` does). Must be called inside a tokio
    /// runtime.
    pub async fn start(config: ServeConfig) -> TestRegistry {
        TestRegistry::start_with(config, true).await
    }

    /// Like [`TestRegistry::start`]; `checked: false` leaves the install
    /// checks out, as a registry built before them (or any OCI registry).
    pub async fn start_with(config: ServeConfig, checked: bool) -> TestRegistry {
        TestRegistry::start_serving(config, checked, None).await
    }

    /// Like [`TestRegistry::start`], serving HTTPS with a certificate `ca`
    /// signed.
    pub async fn start_https(config: ServeConfig, ca: &TestCa) -> TestRegistry {
        TestRegistry::start_serving(config, true, Some(ca)).await
    }

    async fn start_serving(
        mut config: ServeConfig,
        checked: bool,
        ca: Option<&TestCa>,
    ) -> TestRegistry {
        config.tls = ca.map(TestCa::server);
        let (scheme, client_tls) = match ca {
            Some(ca) => ("https", ca.client()),
            None => ("http", ClientTls::system()),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RegistryStore::create(dir.path()).expect("create registry");
        let root_keys = vec![KeyPair::generate().expect("key")];
        let online = OnlineKeys::generate().expect("keys");
        let root_json = repository::init(&store, &root_keys, 1, &online, config.lifetimes)
            .expect("init metadata");
        let acme = add_vendor(&store, "acme");
        let bob = add_vendor(&store, "bob");
        let page_password =
            outpost_registry::web_login::password_file(&dir.path().join("fleet-page-password"))
                .expect("the fleet page's password");
        let mut registry =
            Registry::new(store, online.clone(), config).with_fleet_page(page_password.clone());
        if checked {
            registry = registry.with_release_check(CHECKER.clone());
        }
        let registry = Arc::new(registry);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = Url::parse(&format!(
            "{scheme}://{}/",
            listener.local_addr().expect("addr")
        ))
        .expect("url");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = registry.clone();
        let served = tokio::spawn(async move {
            let _ = serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        TestRegistry {
            dir,
            root_keys,
            online,
            root_json,
            url,
            registry,
            page_password,
            acme,
            bob,
            client_tls,
            stop: Some(stop),
            served: Some(served),
        }
    }

    pub fn store(&self) -> &RegistryStore {
        self.registry.store()
    }

    /// Stops serving (the network is gone).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
    }

    /// Publishes the package at `package` as `vendor`.
    pub async fn publish(&self, vendor: &Vendor, package: &Path) -> Result<Outcome, VendorError> {
        let release = vendor_release(package);
        vendor::publish(
            &self.url,
            &self.client_tls,
            &vendor.token,
            &[&vendor.key],
            &release,
            jiff::SignedDuration::from_hours(24),
        )
        .await
    }
}

fn add_vendor(store: &RegistryStore, namespace: &str) -> Vendor {
    let key = KeyPair::generate().expect("key");
    admin::add_namespace(store, namespace, vec![key.public()], 1).expect("namespace");
    let token = admin::issue_token(store, namespace, "test").expect("token");
    Vendor {
        namespace: namespace.into(),
        key,
        token,
    }
}

/// Publishes `package` to `registry` as `vendor`, signed with `keys`.
pub async fn publish_to(
    registry: &Url,
    vendor: &Vendor,
    keys: &[&KeyPair],
    package: &Path,
) -> Result<Outcome, VendorError> {
    let release = vendor_release(package);
    vendor::publish(
        registry,
        &ClientTls::system(),
        &vendor.token,
        keys,
        &release,
        jiff::SignedDuration::from_hours(24),
    )
    .await
}

/// What `outpost vendor publish` builds from a package folder.
pub fn vendor_release(package: &Path) -> vendor::Release {
    releases::vendor_release(package).expect("read package")
}

/// The hostile test plugin packaged as `id` at `version` (its `info`
/// reports the version in assets/version.txt).
pub fn hostile_as(artifact: Artifact, id: &str, version: &str) -> PackageCopy {
    let copy = PackageCopy::new(artifact, |m| {
        m.replace("id = \"test/hostile\"", &format!("id = \"{id}\""))
            .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
    });
    std::fs::write(copy.path().join("assets/version.txt"), version).expect("write version");
    copy
}

/// A registry with acme/hostile published at `version`.
pub async fn registry_with_hostile(version: &str) -> TestRegistry {
    let registry = TestRegistry::start(test_config()).await;
    let package = hostile_as(crate::artifacts::TEST_HOSTILE, "acme/hostile", version);
    registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish");
    registry
}

/// Provisions `node` with the registry's root.
pub fn provision(node: &Node, root_json: &[u8], registry: &Url) {
    releases::provision(
        node.store(),
        Path::new("root.json"),
        root_json,
        Some(registry),
        None,
    )
    .expect("provision");
}

/// Fetches `spec` from `registry` for `node` (not yet installed).
pub async fn fetch(node: &Node, registry: &Url, spec: &str) -> Result<Fetched, ReleaseError> {
    let source = Source::Registry {
        url: registry.clone(),
        wanted: Wanted::parse(spec)?,
    };
    fetch_source(node, &source).await
}

pub async fn fetch_source(node: &Node, source: &Source) -> Result<Fetched, ReleaseError> {
    releases::fetch(
        node.store(),
        &node.data_dir().join("downloads"),
        source,
        &|_| {},
    )
    .await
}

/// Fetches and installs; returns the installed version.
pub async fn install(node: &Node, registry: &Url, spec: &str) -> Result<String, String> {
    let fetched = fetch(node, registry, spec)
        .await
        .map_err(|e| e.to_string())?;
    let package = fetched.package.clone();
    let report = tokio::task::block_in_place(|| outpost::updates::install(node, &package))
        .map_err(|e| e.to_string())?;
    Ok(report.version)
}

/// What the proxy does to answers whose path contains a pattern.
#[derive(Clone, Debug)]
pub enum Tamper {
    /// Flip the last byte.
    FlipLastByte,
    /// Add bytes after the real answer.
    Append(Vec<u8>),
    /// Send only the first n bytes, then drop the connection.
    CutAfter(usize),
    /// Answer with these bytes instead.
    Replace(Vec<u8>),
    /// Answer 404.
    Hide,
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<(String, Tamper)>,
    /// (path, Range header) of every request seen.
    seen: Vec<(String, Option<String>)>,
}

/// A proxy in front of a registry that tampers with matching answers.
pub struct Proxy {
    pub url: Url,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub async fn start(upstream: &Url) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url =
            Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let upstream = upstream.clone();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                let upstream = upstream.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        let upstream = upstream.clone();
                        let client = client.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                forward(&shared, &upstream, &client, request).await,
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { url, state }
    }

    pub fn tamper(&self, path_contains: &str, tamper: Tamper) {
        self.state
            .lock()
            .expect("proxy state")
            .rules
            .push((path_contains.to_string(), tamper));
    }

    pub fn clear(&self) {
        self.state.lock().expect("proxy state").rules.clear();
    }

    /// (path, Range) of every request so far.
    pub fn seen(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().expect("proxy state").seen.clone()
    }
}

type ProxyBody = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn forward(
    state: &Mutex<ProxyState>,
    upstream: &Url,
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let range = request
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let rule = {
        let mut state = state.lock().expect("proxy state");
        state.seen.push((path.clone(), range.clone()));
        state
            .rules
            .iter()
            .find(|(pattern, _)| path.contains(pattern.as_str()))
            .map(|(_, t)| t.clone())
    };
    let mut forwarded = Request::builder()
        .method(request.method().clone())
        .uri(format!(
            "{}{}",
            upstream.as_str().trim_end_matches('/'),
            path
        ));
    for (name, value) in request.headers() {
        if name != hyper::header::HOST {
            forwarded = forwarded.header(name, value);
        }
    }
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let response = client
        .request(forwarded.body(Full::new(body)).expect("request"))
        .await
        .expect("upstream");
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let mut builder = Response::builder().status(status);
    match rule {
        None => {}
        Some(Tamper::FlipLastByte) => {
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
            }
        }
        Some(Tamper::Append(extra)) => bytes.extend_from_slice(&extra),
        Some(Tamper::Replace(new)) => {
            bytes = new;
            builder = Response::builder().status(StatusCode::OK);
        }
        Some(Tamper::Hide) => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(full(Bytes::new()))
                .expect("response");
        }
        Some(Tamper::CutAfter(n)) => {
            // Claim the full length, send part of it, and end the
            // connection: what a dropped mobile link looks like.
            let full_length = bytes.len();
            bytes.truncate(n.min(full_length));
            let mut response = Response::builder().status(status);
            for (name, value) in &headers {
                if name != hyper::header::CONTENT_LENGTH {
                    response = response.header(name, value);
                }
            }
            use futures_util::StreamExt;
            // The part goes out first; the link drops a moment later.
            let part = futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(bytes)))
            });
            let drop = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Err(std::io::Error::other("connection dropped"))
            });
            return response
                .header(hyper::header::CONTENT_LENGTH, full_length.to_string())
                .body(BodyExt::boxed(StreamBody::new(part.chain(drop))))
                .expect("response");
        }
    }
    for (name, value) in &headers {
        if name != hyper::header::CONTENT_LENGTH {
            builder = builder.header(name, value);
        }
    }
    builder.body(full(bytes)).expect("response")
}

/// Where the node downloaded into.
pub fn downloads(node: &Node) -> PathBuf {
    node.data_dir().join("downloads")
}

/// The lifetimes tests use unless they need metadata to go stale.
pub fn test_config() -> ServeConfig {
    ServeConfig {
        lifetimes: Lifetimes::default(),
        max_blob_bytes: 8 << 20,
        refresh_timestamp: false,
        ..ServeConfig::default()
    }
}

impl TestRegistry {
    /// A metadata file as the registry serves it.
    pub fn tuf_file(&self, name: &str) -> Vec<u8> {
        self.store()
            .tuf_file(name)
            .expect("store")
            .unwrap_or_else(|| panic!("no metadata file {name}"))
    }

    /// The newest version of each role.
    pub fn versions(&self) -> std::collections::BTreeMap<String, u64> {
        self.store().tuf_latest().expect("store")
    }

    /// What a registry whose online keys were stolen can do: serve `role`
    /// as the metadata of delegated role `name`, under a freshly signed
    /// snapshot and timestamp, skipping every check a publish makes.
    pub fn force_role(&self, name: &str, role: &[u8], version: u64) {
        use outpost_registry::tuf;
        let store = self.store();
        let online = &self.online;
        store
            .write_tuf(|latest| -> Result<_, std::convert::Infallible> {
                let snapshot_version = latest["snapshot"];
                let timestamp_version = latest["timestamp"];
                let snapshot: outpost_registry::tough::schema::Signed<
                    outpost_registry::tough::schema::Snapshot,
                > = tuf::parse(
                    "snapshot",
                    &store
                        .tuf_file(&format!("{snapshot_version}.snapshot.json"))
                        .expect("store")
                        .expect("snapshot"),
                )
                .expect("parse");
                let mut meta: std::collections::BTreeMap<_, _> =
                    snapshot.signed.meta.into_iter().collect();
                meta.insert(format!("{name}.json"), tuf::metafile(version, role));
                let expires = tuf::whole_seconds(
                    jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
                );
                let snapshot = tuf::snapshot(snapshot_version + 1, expires, meta);
                let snapshot_bytes = tuf::to_bytes(&tuf::sign(snapshot, &[&online.snapshot]));
                let timestamp = tuf::timestamp(
                    timestamp_version + 1,
                    expires,
                    snapshot_version + 1,
                    &snapshot_bytes,
                );
                let timestamp_bytes = tuf::to_bytes(&tuf::sign(timestamp, &[&online.timestamp]));
                Ok(outpost_registry::store::TufWrite {
                    files: vec![
                        (format!("{version}.{name}.json"), role.to_vec()),
                        (
                            format!("{}.snapshot.json", snapshot_version + 1),
                            snapshot_bytes,
                        ),
                        (
                            format!("{}.timestamp.json", timestamp_version + 1),
                            timestamp_bytes.clone(),
                        ),
                        ("timestamp.json".into(), timestamp_bytes),
                    ],
                    versions: vec![
                        (name.to_string(), version),
                        ("snapshot".into(), snapshot_version + 1),
                        ("timestamp".into(), timestamp_version + 1),
                    ],
                })
            })
            .expect("store")
            .expect("write");
    }
}

/// Raw HTTP to a registry, for the requests no client library makes
/// (wrong digests, ranges, hand-made manifests).
pub struct Http {
    base: url::Url,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new(base: &url::Url) -> Http {
        Http {
            base: base.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            path
        ));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::from(body))).expect("request"))
            .await
            .expect("registry reachable");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    /// Pushes a manifest (`path` is `/v2/<repo>/manifests/<reference>`) sent
    /// as `media_type`.
    pub async fn put_manifest(
        &self,
        path: &str,
        token: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
        self.send(
            Method::PUT,
            path,
            Some(token),
            &[("content-type", media_type)],
            body,
        )
        .await
    }

    /// An anonymous GET.
    pub async fn get(&self, path: &str) -> (StatusCode, hyper::HeaderMap, Vec<u8>) {
        self.send(Method::GET, path, None, &[], Vec::new()).await
    }

    /// The OCI error code of an answer.
    pub fn code(body: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/code")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_default()
    }

    /// The OCI error message of an answer (or the body as text).
    pub fn message(body: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/errors/0/message")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
    }

    /// Uploads `bytes` in one request, as `digest`.
    pub async fn upload(
        &self,
        repo: &str,
        token: &str,
        bytes: &[u8],
        digest: &str,
    ) -> (StatusCode, String) {
        let (status, _, body) = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                Some(token),
                &[],
                bytes.to_vec(),
            )
            .await;
        (status, Http::message(&body))
    }
}

/// Enrols a node made of a fresh key (a node only the registry knows),
/// labelled `labels`: its key and id.
pub fn enrol_key(store: &RegistryStore, name: &str, labels: Labels) -> (KeyPair, String) {
    let token = fleet::issue_enrolment_token(store, Labels::new(), 3600).expect("token");
    let key = KeyPair::generate().expect("key");
    let request = fleet::EnrolRequest::new(&key, &token.token, name, labels);
    let id = fleet::enrol(store, &request).expect("enrol").id;
    (key, id)
}

/// Joins `node` (provisioned with the registry's root) to the registry's
/// fleet as "stall-1", as `outpost fleet join` does: its node id.
pub async fn join_fleet(registry: &TestRegistry, node: &Arc<Node>) -> String {
    let token = fleet::issue_enrolment_token(registry.store(), Labels::new(), 3600).expect("token");
    outpost::control::fleet::join(
        node,
        &outpost::control::fleet::JoinRequest {
            registry: registry.url.to_string(),
            token: token.token,
            labels: Labels::new(),
            name: Some("stall-1".into()),
        },
    )
    .await
    .expect("join")
    .node_id
}
