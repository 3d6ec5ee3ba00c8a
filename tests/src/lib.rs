//! Helpers shared by the end-to-end tests: a node in a temporary directory,
//! plugin packages built from `plugins/` (optionally with an edited
//! manifest), the hostile test plugin's commands, and an HTTP client.

pub mod browser;
pub mod centre;
pub mod external;
pub mod pos_page;
pub mod prometheus;
pub mod registry;
pub mod serving;
pub mod tls;
pub mod updates;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use outpost::bindings::types::Address;
use outpost::bindings::types::{LabelMedia, ShippingLabel};
use outpost::call::CallError;
use outpost::config::NodeConfig;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeOptions};
use outpost::plugins::LoadedPlugin;
use outpost::printing::Document;
pub use outpost_plugin_artifacts::{self as artifacts, Artifact};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A node in its own temporary data directory.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub node: Node,
}

impl TestNode {
    /// A node on the embedded defaults.
    pub fn new() -> TestNode {
        TestNode::with_config(NodeConfig::default())
    }

    /// A node with `config` (plus what `outpost.toml` text parses to).
    pub fn with_config(config: NodeConfig) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let node = open(dir.path(), config);
        TestNode { dir, node }
    }

    /// A node configured by TOML text.
    pub fn with_toml(text: &str) -> TestNode {
        TestNode::with_config(NodeConfig::parse(text, "test config").expect("valid test config"))
    }

    /// Closes and reopens the node on the same data directory.
    pub fn restart(self) -> TestNode {
        let TestNode { dir, node } = self;
        let config = node.config().clone();
        drop(node);
        let node = open(dir.path(), config);
        TestNode { dir, node }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Installs a built plugin package, panicking with the reason if refused.
    pub fn install(&self, package: &Path) -> Arc<LoadedPlugin> {
        let report = outpost::updates::install(&self.node, package)
            .unwrap_or_else(|e| panic!("installing {}: {e}", package.display()));
        self.loaded(&report.id)
    }

    pub fn install_artifact(&self, artifact: Artifact) -> Arc<LoadedPlugin> {
        self.install(Path::new(artifact.package_dir))
    }

    pub fn loaded(&self, id: &str) -> Arc<LoadedPlugin> {
        let id = PluginId::parse(id).expect("valid id");
        self.node
            .loaded(&id)
            .unwrap_or_else(|| panic!("{id} is not loaded"))
    }

    /// Runs a hostile-plugin command; see `plugins/test-hostile`.
    pub fn hostile(
        &self,
        plugin: &LoadedPlugin,
        command: &str,
        args: &[&str],
    ) -> Result<Vec<u8>, CallError> {
        self.node
            .render(plugin, &Document::Label(command_label(command, args)))
    }

    /// Like [`TestNode::hostile`], expecting success, as text.
    pub fn hostile_ok(&self, plugin: &LoadedPlugin, command: &str, args: &[&str]) -> String {
        let bytes = self
            .hostile(plugin, command, args)
            .unwrap_or_else(|e| panic!("{command} {args:?} failed: {e}"));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A node shared between tasks (the API, async printing), with its directory.
pub struct SharedNode {
    pub dir: tempfile::TempDir,
    pub node: Arc<Node>,
}

impl TestNode {
    /// Shares the node; the directory lives as long as the result.
    pub fn shared(self) -> SharedNode {
        SharedNode {
            dir: self.dir,
            node: Arc::new(self.node),
        }
    }
}

impl Default for TestNode {
    fn default() -> Self {
        TestNode::new()
    }
}

fn open(dir: &Path, config: NodeConfig) -> Node {
    Node::open(NodeOptions {
        data_dir: dir.to_path_buf(),
        config,
        config_origin: "test".into(),
    })
    .unwrap_or_else(|e| panic!("opening a node in {}: {e}", dir.display()))
}

/// A copy of a built package in a temporary folder, with `edit` applied to
/// its manifest, for installing one build under other ids, versions or grants.
pub struct PackageCopy {
    pub dir: tempfile::TempDir,
}

impl PackageCopy {
    pub fn new(artifact: Artifact, edit: impl FnOnce(String) -> String) -> PackageCopy {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_tree(Path::new(artifact.package_dir), dir.path());
        let manifest = dir.path().join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).expect("read manifest");
        std::fs::write(&manifest, edit(text)).expect("write manifest");
        PackageCopy { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The component file inside the copy.
    pub fn component(&self, artifact: Artifact) -> PathBuf {
        let name = Path::new(artifact.component)
            .file_name()
            .expect("component file name");
        self.dir.path().join(name)
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read package") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// A label that carries a hostile-plugin command in `reference` and its
/// arguments in `notes`.
pub fn command_label(command: &str, args: &[&str]) -> ShippingLabel {
    let address = || Address {
        name: "x".into(),
        company: None,
        lines: vec!["x".into()],
        city: "x".into(),
        region: None,
        postal_code: "x".into(),
        country: "GB".into(),
        phone: None,
        email: None,
    };
    ShippingLabel {
        media: LabelMedia {
            width_mm: 102,
            height_mm: 152,
            dots_per_mm: 8,
        },
        ship_from: address(),
        ship_to: address(),
        service: "x".into(),
        reference: command.into(),
        tracking_number: None,
        weight_grams: None,
        parcel_number: 1,
        parcel_count: 1,
        barcode: None,
        notes: args.iter().map(|a| a.to_string()).collect(),
        copies: 1,
    }
}

/// The example documents in `docs/examples`, as the API takes them.
pub const LABEL_JSON: &str = include_str!("../../docs/examples/label.json");
pub const RECEIPT_JSON: &str = include_str!("../../docs/examples/receipt.json");

/// The `label` and `receipt` objects of the examples, as WIT records.
pub fn example_label() -> ShippingLabel {
    let request: serde_json::Value = serde_json::from_str(LABEL_JSON).expect("valid example");
    let label: outpost::api::schema::Label =
        serde_json::from_value(request["label"].clone()).expect("example label parses");
    label.into()
}

pub fn example_receipt() -> outpost::bindings::printer::Receipt {
    let request: serde_json::Value = serde_json::from_str(RECEIPT_JSON).expect("valid example");
    let receipt: outpost::api::schema::Receipt =
        serde_json::from_value(request["receipt"].clone()).expect("example receipt parses");
    receipt.into()
}

/// A minimal HTTP client for the local API.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    pub fn new(base: String, token: String) -> ApiClient {
        ApiClient {
            base,
            token,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request with the bearer token (unless `token` is `None`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: &str,
        token: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("valid request");
        let response = self.client.request(request).await.expect("API reachable");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, serde_json::Value) {
        self.send(Method::GET, path, "", Some(&self.token.clone()))
            .await
    }

    pub async fn post(&self, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
        self.send(Method::POST, path, body, Some(&self.token.clone()))
            .await
    }
}

/// A raw request with headers; the status, the headers and the body.
pub async fn raw_request(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, hyper::HeaderMap, String) {
    use http_body_util::BodyExt;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request");
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = http.request(request).await.expect("the node answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Answers `request` through `node`'s API in-process: the status, and the
/// body as JSON (`Null` when it is not JSON).
pub async fn send_in_process(
    node: &Arc<Node>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, serde_json::Value) {
    let response = outpost::api::handle_in_process(node.clone(), request).await;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// `POST /v1/forecasts` to `plugin`: `days` of daily sales with a weekly
/// shape, `horizon` days ahead.
pub fn forecast_request(plugin: &str, days: i64, horizon: u32) -> Request<Full<Bytes>> {
    let observations: Vec<serde_json::Value> = (0..days)
        .map(|day| serde_json::json!({ "at": 1_760_000_000 + day * 86_400, "value": 40 + day % 7 }))
        .collect();
    let body = serde_json::json!({
        "plugin": plugin,
        "request": {
            "history": { "item": "bread", "unit": "loaves", "interval": "day",
                         "observations": observations },
            "horizon": horizon,
            "coverage": 0.8,
        }
    });
    Request::post("/v1/forecasts")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

/// Provisions the reference tokenizer's key on `node`, then installs it.
pub fn install_card_tokenizer(node: &Node) {
    let tokenizer = PluginId::parse("outpost/card-tokenizer").expect("id");
    node.keystore()
        .provision(&tokenizer, "card-token", None, false)
        .expect("key");
    outpost::updates::install(node, Path::new(artifacts::CARD_TOKENIZER.package_dir))
        .unwrap_or_else(|e| panic!("installing the card tokenizer: {e}"));
}

/// The `outpost` binary, built (or found up to date) by cargo once per run.
pub fn outpost_binary() -> &'static Path {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        let status = std::process::Command::new(env!("CARGO"))
            // The workspace's feature set, so this shares the crates the
            // suite's own build compiled instead of building them again.
            .args(["build", "--quiet", "--workspace", "--bin", "outpost"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the outpost binary failed");
        let exe = std::env::current_exe().expect("test binary path");
        // target/debug/deps/<test> -> target/debug/outpost
        let binary = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("outpost");
        assert!(binary.is_file(), "{} missing", binary.display());
        binary
    })
}
