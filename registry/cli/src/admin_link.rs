//! How `outpost-registry node …` reaches the registry: over the running
//! registry's admin socket, or, when none runs, by opening its database
//! and answering the same request in-process.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use outpost_registry::server::control;
use outpost_registry::store::{RegistryStore, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

pub enum AdminLink {
    /// A registry serves from the data directory.
    Socket(PathBuf),
    /// None does: this process holds the database.
    InProcess(RegistryStore),
}

impl AdminLink {
    pub fn open(data_dir: &Path) -> anyhow::Result<AdminLink> {
        let socket = control::socket_path(data_dir);
        let connected = std::os::unix::net::UnixStream::connect(&socket);
        if connected.is_ok() {
            return Ok(AdminLink::Socket(socket));
        }
        match RegistryStore::open(data_dir) {
            Ok(store) => Ok(AdminLink::InProcess(store)),
            Err(StoreError::InUse { path }) => match connected {
                Err(error)
                    if !matches!(
                        error.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    bail!(
                        "a registry is serving from {} but its admin socket {} cannot be reached: {error}; run this as the registry's user",
                        path.display(),
                        socket.display()
                    )
                }
                _ => bail!(
                    "a registry is serving from {} without an admin socket ({}): it could not make one (its log says why), or it is an older outpost-registry. Restart it with this one, or stop it to run this command",
                    path.display(),
                    socket.display()
                ),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Sends `method path` with `body` and reads the answer as `T`;
    /// `doing` says what for, in errors.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        doing: &str,
    ) -> anyhow::Result<T> {
        let body = match body {
            Some(body) => serde_json::to_vec(body)?,
            None => Vec::new(),
        };
        let (status, answer) = match self {
            AdminLink::InProcess(store) => {
                let answer = control::answer(store, &method, path, &body);
                (answer.status, serde_json::to_vec(&answer.body)?)
            }
            AdminLink::Socket(socket) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime
                    .block_on(over_socket(socket, method, path, body))
                    .with_context(|| format!("{doing}: the registry's admin socket"))?
            }
        };
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
            bail!("{doing}: {message}");
        }
        serde_json::from_slice(&answer).with_context(|| format!("{doing}: the registry's answer"))
    }
}

async fn over_socket(
    socket: &Path,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Vec<u8>)> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "registry")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes.to_vec()))
}

/// An id from the command line, safe as one path segment.
pub fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
