//! The central team's changes to a running registry: enrolment tokens,
//! node labels, retirement. The database has one writer, and the running
//! registry is it, so `outpost-registry node …` sends these requests over a
//! Unix socket in the registry's data directory (0600: only the registry's
//! user reaches it, and it needs no token). With no registry running, the
//! command answers the same requests in-process through [`answer`], so both
//! paths run the same code.
//!
//! | request | what |
//! |---|---|
//! | `POST /admin/v1/enrolment-tokens` `{labels, valid_for_seconds}` | a one-time enrolment token |
//! | `GET /admin/v1/nodes?select=k=v,…&retired=true` | the nodes |
//! | `POST /admin/v1/nodes/<id>/labels` `{set, remove}` | change a node's labels |
//! | `POST /admin/v1/nodes/<id>/retire` | retire a node |
//! | `POST /admin/v1/rollouts` `RolloutRequest` | create a rollout |
//! | `GET /admin/v1/rollouts` | every rollout |
//! | `GET /admin/v1/rollouts/<id>` | its waves and failure reasons |
//! | `POST /admin/v1/rollouts/<id>/pause` (`resume`, `abort`) | steer it |
//!
//! Answers are JSON; a refusal is `{"error": "<what to do>"}`.

use super::Registry;
use crate::fleet::{self, FleetError, LabelChange, Labels, Selector};
use crate::rollout::{self, RolloutError, RolloutRequest, Steer};
use crate::store::RegistryStore;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the socket is: `<data-dir>/admin.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// An admin request is a handful of labels.
const MAX_REQUEST_BYTES: usize = 64 << 10;

/// `POST /admin/v1/enrolment-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default)]
    pub labels: Labels,
    pub valid_for_seconds: u64,
}

/// One answer: a status and a JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

fn ok<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    match serde_json::to_value(value) {
        Ok(body) => Answer { status, body },
        Err(error) => refused(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

fn refused(status: StatusCode, message: String) -> Answer {
    Answer {
        status,
        body: serde_json::json!({ "error": message }),
    }
}

fn fleet_refused(error: FleetError) -> Answer {
    let status = match &error {
        FleetError::UnknownNode(_) => StatusCode::NOT_FOUND,
        FleetError::Store(_) | FleetError::Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    refused(status, error.to_string())
}

fn rollout_refused(error: RolloutError) -> Answer {
    let status = match &error {
        RolloutError::Unknown(_) => StatusCode::NOT_FOUND,
        RolloutError::Busy { .. } | RolloutError::WrongState { .. } => StatusCode::CONFLICT,
        RolloutError::Store(_) | RolloutError::Repository(_) => StatusCode::INTERNAL_SERVER_ERROR,
        RolloutError::Fleet(FleetError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    refused(status, error.to_string())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|e| {
        refused(
            StatusCode::BAD_REQUEST,
            format!("the request is not valid: {e}"),
        )
    })
}

/// Answers one admin request against `store`.
pub fn answer(store: &RegistryStore, method: &Method, path_and_query: &str, body: &[u8]) -> Answer {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let outcome = match (segments.as_slice(), method) {
        (["admin", "v1", "enrolment-tokens"], &Method::POST) => {
            parse::<TokenRequest>(body).map(|request| {
                match fleet::issue_enrolment_token(store, request.labels, request.valid_for_seconds)
                {
                    Ok(issued) => ok(StatusCode::CREATED, &issued),
                    Err(error) => fleet_refused(error),
                }
            })
        }
        (["admin", "v1", "nodes"], &Method::GET) => {
            let mut selector = Selector::default();
            let mut retired = false;
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                match key.as_ref() {
                    "select" => match Selector::parse(&value) {
                        Ok(parsed) => selector = parsed,
                        Err(error) => return fleet_refused(error),
                    },
                    "retired" => retired = value == "true",
                    _ => {}
                }
            }
            Ok(match fleet::list(store, &selector, retired) {
                Ok(nodes) => ok(StatusCode::OK, &nodes),
                Err(error) => fleet_refused(error),
            })
        }
        (["admin", "v1", "nodes", id, "labels"], &Method::POST) => {
            parse::<LabelChange>(body).map(|change| match fleet::label(store, id, &change) {
                Ok(node) => ok(StatusCode::OK, &node),
                Err(error) => fleet_refused(error),
            })
        }
        (["admin", "v1", "nodes", id, "retire"], &Method::POST) => {
            Ok(match fleet::retire(store, id) {
                Ok(node) => ok(StatusCode::OK, &node),
                Err(error) => fleet_refused(error),
            })
        }
        (["admin", "v1", "rollouts"], &Method::POST) => {
            parse::<RolloutRequest>(body).map(|request| match rollout::create(store, &request) {
                Ok(created) => ok(StatusCode::CREATED, &created),
                Err(error) => rollout_refused(error),
            })
        }
        (["admin", "v1", "rollouts"], &Method::GET) => Ok(match rollout::list(store) {
            Ok(rollouts) => ok(StatusCode::OK, &rollouts),
            Err(error) => rollout_refused(error),
        }),
        (["admin", "v1", "rollouts", id], &Method::GET) => {
            Ok(match rollout::status_of(store, id) {
                Ok(status) => ok(StatusCode::OK, &status),
                Err(error) => rollout_refused(error),
            })
        }
        (["admin", "v1", "rollouts", id, action], &Method::POST) => {
            let steer = match *action {
                "pause" => Steer::Pause,
                "resume" => Steer::Resume,
                "abort" => Steer::Abort,
                other => {
                    return refused(
                        StatusCode::NOT_FOUND,
                        format!("no rollout action {other:?}: pause, resume or abort"),
                    );
                }
            };
            Ok(match rollout::steer(store, id, steer) {
                Ok(rollout) => ok(StatusCode::OK, &rollout),
                Err(error) => rollout_refused(error),
            })
        }
        _ => Ok(refused(
            StatusCode::NOT_FOUND,
            format!("no admin route {method} {path}"),
        )),
    };
    outcome.unwrap_or_else(|refusal| refusal)
}

/// Binds the admin socket in `data_dir`, replacing a stale one (a registry
/// that died): the database lock held by the caller means no other
/// registry serves from this directory.
#[cfg(unix)]
pub fn bind(data_dir: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

impl Registry {
    /// Serves the admin requests on `listener` until `shutdown` resolves.
    #[cfg(unix)]
    pub async fn serve_admin(
        self: Arc<Self>,
        listener: tokio::net::UnixListener,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!("cannot accept on the admin socket: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let registry = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let registry = registry.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(registry.admin_request(request).await)
                    }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("admin connection ended with an error: {error}");
                }
            });
        }
    }

    async fn admin_request(
        &self,
        request: Request<hyper::body::Incoming>,
    ) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let target = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path().to_string(), ToString::to_string);
        let answered = match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
            .collect()
            .await
        {
            // Small transactions, as the other routes make in place.
            Ok(body) => answer(&self.store, &method, &target, &body.to_bytes()),
            Err(error) => refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request could not be read: {error}"),
            ),
        };
        let mut response = Response::new(Full::new(Bytes::from(answered.body.to_string())));
        *response.status_mut() = answered.status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        response
    }
}
