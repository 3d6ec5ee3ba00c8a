//! How an operator's command reaches the node.
//!
//! A node that is running holds its database, so a second process cannot open
//! it. Commands that do business (tokenize, book, the outbox view) therefore
//! speak the local API: to the running node over loopback with its bearer
//! token, or, when no node runs, to a node opened in this process through the
//! very same router. Either way the command sees the same answers and the
//! same errors, and there is one code path to test.

use crate::commands::{open_waiting, runtime};
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use outpost::api;
use outpost::node::{Node, NodeError, NodeOptions};
use outpost::store::StoreError;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// An answer from the API: its status and JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The body of a successful answer; otherwise the API's own message as
    /// the error, which already says what is wrong and which field.
    pub fn ok(self, what: &str) -> anyhow::Result<Value> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        // The message already names the field when one is wrong.
        let message = self.body["error"]["message"]
            .as_str()
            .unwrap_or("the node gave no reason");
        bail!("{what} refused ({}): {message}", self.status)
    }
}

pub enum Link {
    /// A node runs and answers on `base`.
    Running {
        base: String,
        listen: SocketAddr,
        token: String,
        client: Client<HttpConnector, Full<Bytes>>,
        runtime: tokio::runtime::Runtime,
    },
    /// No node runs; this process opened it.
    InProcess {
        node: Arc<Node>,
        runtime: tokio::runtime::Runtime,
    },
}

impl Link {
    pub fn open(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<Link> {
        let options = NodeOptions::resolve(data_dir, config)?;
        let api_config = options.config.api.clone();
        let listen = api_config.listen;
        let node_answers = || {
            listen.port() != 0
                && std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(100)).is_ok()
        };
        if !socket_answers(&api::admin::socket_path(data_dir)) {
            crate::commands::before_opening(data_dir)?;
        }
        match open_waiting(&options, node_answers) {
            Ok(node) => Ok(Link::InProcess {
                node: Arc::new(node),
                runtime: runtime()?,
            }),
            // Another command, not a node, still holds it after the wait:
            // its pid and command line say more than a refused connection.
            Err(error @ NodeError::Store(StoreError::InUse { .. }))
                if listen.port() != 0 && !node_answers() =>
            {
                Err(error)
                    .with_context(|| format!("cannot open the node in {}", data_dir.display()))
            }
            Err(NodeError::Store(StoreError::InUse { .. })) => {
                let token = api::read_token(&api_config, data_dir).context(
                    "a node is running on this data directory, but its API token cannot be read",
                )?;
                let listen = api_config.listen;
                if listen.port() == 0 {
                    bail!(
                        "a node is running on this data directory, but api.listen is {listen} \
                         (any free port), so there is no knowing where its API is; give \
                         api.listen a fixed port in outpost.toml, or stop the node"
                    );
                }
                Ok(Link::Running {
                    base: format!("http://{listen}"),
                    listen,
                    token,
                    client: Client::builder(TokioExecutor::new()).build_http(),
                    runtime: runtime()?,
                })
            }
            Err(error) => Err(error)
                .with_context(|| format!("cannot open the node in {}", data_dir.display())),
        }
    }

    /// Whether a separate node process answers (and so runs the outbox's
    /// delivery worker).
    pub fn is_running(&self) -> bool {
        matches!(self, Link::Running { .. })
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let bytes = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let builder = request_builder(method);
        match self {
            Link::Running {
                base,
                listen,
                token,
                client,
                runtime,
            } => runtime.block_on(async {
                send(client, base, token, builder, path, bytes)
                    .await
                    .with_context(|| {
                        format!(
                            "a node is running on this data directory but does not answer \
                                 on {listen} (api.listen); if it was started with --listen, set \
                                 api.listen in outpost.toml instead"
                        )
                    })
            }),
            Link::InProcess { node, runtime } => {
                let request = builder.uri(path).body(Full::new(bytes))?;
                runtime.block_on(async {
                    let response = api::handle_in_process(node.clone(), request).await;
                    let status = response.status();
                    let bytes = response.into_body().collect().await?.to_bytes();
                    Ok(Reply {
                        status,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    })
                })
            }
        }
    }
}

fn request_builder(method: Method) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .header("content-type", "application/json")
}

/// One request to a node's API over HTTP, with its bearer token.
async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    token: &str,
    builder: hyper::http::request::Builder,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Reply> {
    let request = builder
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(body))?;
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

/// How an operator's change reaches the node: the admin channel.
///
/// Installing, removing, keys and updates are changes the running node must
/// make itself (it holds the database). They go over its admin socket, which
/// only the node's user can open, never over the app API. When no node runs,
/// this process opens the node and sends the same requests to the same
/// routes in-process.
pub enum AdminLink {
    Running {
        socket: std::path::PathBuf,
        runtime: tokio::runtime::Runtime,
    },
    InProcess {
        node: Arc<Node>,
        runtime: tokio::runtime::Runtime,
    },
}

impl AdminLink {
    pub fn open(data_dir: &Path, config: Option<&Path>) -> anyhow::Result<AdminLink> {
        let options = NodeOptions::resolve(data_dir, config)?;
        let socket = api::admin::socket_path(data_dir);
        let node_answers = || socket_answers(&socket);
        if !node_answers() {
            crate::commands::before_opening(data_dir)?;
        }
        match open_waiting(&options, node_answers) {
            Ok(node) => Ok(AdminLink::InProcess {
                node: Arc::new(node),
                runtime: runtime()?,
            }),
            Err(NodeError::Store(StoreError::InUse { .. })) if node_answers() => {
                Ok(AdminLink::Running {
                    socket,
                    runtime: runtime()?,
                })
            }
            Err(error) => Err(error)
                .with_context(|| format!("cannot open the node in {}", data_dir.display())),
        }
    }

    /// The node opened in this process, if no node runs.
    pub fn node(&self) -> Option<&Arc<Node>> {
        match self {
            AdminLink::InProcess { node, .. } => Some(node),
            AdminLink::Running { .. } => None,
        }
    }

    /// One admin request whose answer is a `T`; `what` names it in errors
    /// ("provisioning the root of trust refused (422): ...").
    pub fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
        what: &str,
    ) -> anyhow::Result<T> {
        let body = body.map(serde_json::to_value).transpose()?;
        let reply = self.request(method, path, body.as_ref())?.ok(what)?;
        serde_json::from_value(reply)
            .with_context(|| format!("the node's answer to {what} is not as expected"))
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let bytes = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let request = request_builder(method).uri(path).body(Full::new(bytes))?;
        match self {
            AdminLink::Running { socket, runtime } => runtime.block_on(async {
                send_unix(socket, request).await.with_context(|| {
                    format!(
                        "a node is running on this data directory but its admin socket {} does not answer",
                        socket.display()
                    )
                })
            }),
            AdminLink::InProcess { node, runtime } => runtime.block_on(async {
                let response = api::admin::handle_in_process(node.clone(), request).await;
                let status = response.status();
                let bytes = response.into_body().collect().await?.to_bytes();
                Ok(Reply {
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                })
            }),
        }
    }
}

#[cfg(unix)]
pub fn socket_answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

#[cfg(not(unix))]
pub fn socket_answers(_socket: &Path) -> bool {
    false
}

#[cfg(unix)]
async fn send_unix(socket: &Path, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // hyper's client wants a Host header for HTTP/1.1.
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_static("outpost-admin"),
    );
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}

#[cfg(not(unix))]
async fn send_unix(_socket: &Path, _request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
    bail!("the admin channel needs Unix sockets")
}

/// A client for a node served in this process (the demo's).
pub struct ApiClient {
    base: String,
    token: String,
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

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let body = Bytes::from(body.unwrap_or_default().to_string());
        let reply = send(
            &self.client,
            &self.base,
            &self.token,
            request_builder(method),
            path,
            body,
        )
        .await
        .with_context(|| format!("cannot reach the local API for {path}"))?;
        Ok((reply.status, reply.body))
    }
}
