//! The admin channel: the control plane's routes, on a Unix socket in the
//! data directory that only the node's user can open (`admin.sock`, 0600,
//! in a 0700 directory). It is not the app API: a point-of-sale app holding
//! the API token reaches none of this, so it cannot install code or replace
//! keys. The CLI speaks it to a running node, and when no node runs, sends
//! the very same requests to [`handle_in_process`] on a node it opened.
//!
//! | method | path                                          | what                          |
//! |--------|-----------------------------------------------|-------------------------------|
//! | GET    | `/admin/v1/plugins/{vendor}/{name}`           | versions, update, follows     |
//! | POST   | `/admin/v1/plugins`                           | install (`InstallRequest`)    |
//! | DELETE | `/admin/v1/plugins/{vendor}/{name}?purge=true`| remove                        |
//! | PUT    | `/admin/v1/plugins/{vendor}/{name}/follow`    | follow `{"requirement"}`      |
//! | DELETE | `/admin/v1/plugins/{vendor}/{name}/follow`    | stop following                |
//! | GET    | `/admin/v1/updates`                           | updates in flight, lock       |
//! | POST   | `/admin/v1/updates/check`                     | ask the registry now          |
//! | GET    | `/admin/v1/updates/history?plugin=&limit=`    | transitions, oldest first     |
//! | POST   | `/admin/v1/updates/{vendor}/{name}/{verb}`    | apply, approve, reject, rollback |
//! | GET    | `/admin/v1/keys?plugin=`                      | keys (never their material)   |
//! | POST   | `/admin/v1/keys`                              | add a key (`KeyRequest`)      |
//! | DELETE | `/admin/v1/keys/{vendor}/{name}/{key}`        | remove a key                  |
//! | GET    | `/admin/v1/trust`                             | the root, the accepted metadata |
//! | PUT    | `/admin/v1/trust`                             | provision (`TrustRequest`)    |
//! | POST   | `/admin/v1/trust/refresh`                     | fetch and verify the metadata |
//! | GET    | `/admin/v1/fleet`                             | the node's identity and fleet |
//! | POST   | `/admin/v1/fleet/join`                        | enrol with a registry (`JoinRequest`) |
//! | POST   | `/admin/v1/fleet/check`                       | fetch and verify the desired state |
//! | POST   | `/admin/v1/releases/search`                   | signed releases `{"query", "registry"}` |
//! | POST   | `/admin/v1/bundles`                           | export a bundle (`BundleRequest`) |
//! | GET    | `/admin/v1/telemetry`                         | consent, endpoint, backlog    |
//! | PUT    | `/admin/v1/telemetry`                         | `{"consent"}`: off, aggregate, with-plugin-detail |
//! | GET    | `/admin/v1/snapshots`                         | local snapshots, newest first |
//! | POST   | `/admin/v1/snapshots`                         | take one now: path, manifest, recovery code if new |
//! | POST   | `/admin/v1/plugins/{vendor}/{name}/approve`   | approve the origins its configuration names |
//! | GET    | `/admin/v1/doctor`                            | can the node trade: findings with fixes |
//! | GET    | `/admin/v1/drill`                             | whether a drill has the node offline |
//! | POST   | `/admin/v1/drill`                             | cut the network `{"seconds"}` (a drill) |
//! | DELETE | `/admin/v1/drill`                             | restore it                    |
//! | POST   | `/admin/v1/token/rotate`                      | a new API token `{"token", "file"}`; the old one is refused |

use super::errors::ApiError;
use super::{ApiResponse, RequestBody, json_response, read_json};
use crate::control::{self, ControlError, Steer};
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::updates::UpdateError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The socket's name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Longer than the app API's: an install downloads and compiles.
const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the admin socket. Only the process holding the node database gets
/// here, so a socket file already there was left by a node that died: it is
/// replaced.
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
    // The data directory is 0700, so nobody else could reach it meanwhile.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the admin routes on `listener` until `shutdown` resolves.
#[cfg(unix)]
pub async fn serve(
    node: Arc<Node>,
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
        let node = node.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let node = node.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&node, request).await) }
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

/// Answers one admin request without a socket, exactly as the served
/// channel would: the CLI's path when no node runs.
pub async fn handle_in_process(node: Arc<Node>, request: Request<Full<Bytes>>) -> ApiResponse {
    handle(&node, request).await
}

async fn handle(node: &Arc<Node>, request: Request<impl RequestBody>) -> ApiResponse {
    match route(node, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn control_error(error: ControlError) -> ApiError {
    match error {
        ControlError::NotFound(why) => ApiError::NotFound(why),
        ControlError::Conflict(why) => ApiError::Conflict(why),
        ControlError::BadRequest(why) => ApiError::BadField {
            field: String::new(),
            message: why,
        },
        ControlError::Store(error) => ApiError::Store(error.to_string()),
        ControlError::Update(error) => match error {
            UpdateError::NotInstalled(_) => ApiError::NotFound(error.to_string()),
            UpdateError::Busy { .. }
            | UpdateError::WrongState { .. }
            | UpdateError::NoUpdate(_)
            | UpdateError::NothingToRollBackTo { .. } => ApiError::Conflict(error.to_string()),
            UpdateError::Store(error) => ApiError::Store(error.to_string()),
            other => ApiError::Refused(other.to_string()),
        },
        other => ApiError::Refused(other.to_string()),
    }
}

fn id(vendor: &str, name: &str) -> Result<PluginId, ApiError> {
    control::plugin_id(&format!("{vendor}/{name}")).map_err(control_error)
}

fn query_pairs(request: &Request<impl RequestBody>) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (pair.to_string(), String::new()),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    registry: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    consent: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrillBody {
    seconds: u64,
}

#[derive(Debug, Deserialize)]
struct FollowBody {
    requirement: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SteerBody {
    /// For reject: keep this version from being offered again.
    #[serde(default)]
    block: Option<bool>,
    /// The version the operator looked at: refused if the update in flight
    /// is another one by now.
    #[serde(default)]
    version: Option<semver::Version>,
}

async fn route(
    node: &Arc<Node>,
    request: Request<impl RequestBody>,
) -> Result<ApiResponse, ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = request.method().clone();
    let ok = |body: serde_json::Value| Ok(json_response(StatusCode::OK, &body));
    match (segments.as_slice(), &method) {
        (["admin", "v1", "plugins"], &Method::GET) => ok(json!({ "plugins": node.plugins() })),
        (["admin", "v1", "plugins"], &Method::POST) => {
            let body: control::InstallRequest = read_json(request, ADMIN_READ_TIMEOUT).await?;
            let outcome = control::install(node, body).await.map_err(control_error)?;
            ok(json!(outcome))
        }
        (["admin", "v1", "plugins", vendor, name], &Method::GET) => {
            let plugin = id(vendor, name)?;
            let worker = node.clone();
            let versions = tokio::task::spawn_blocking(move || control::versions(&worker, &plugin))
                .await
                .map_err(|_| ApiError::ShuttingDown)?
                .map_err(control_error)?;
            ok(json!(versions))
        }
        (["admin", "v1", "plugins", vendor, name], &Method::DELETE) => {
            let mut purge = false;
            for (key, value) in query_pairs(&request) {
                match (key.as_str(), value.as_str()) {
                    ("purge", "true") => purge = true,
                    ("purge", "false") => purge = false,
                    _ => {
                        return Err(ApiError::BadQuery(format!(
                            "{key}={value:?}: this route takes purge=true or purge=false"
                        )));
                    }
                }
            }
            let plugin = id(vendor, name)?;
            if !control::remove(node, plugin.clone(), purge)
                .await
                .map_err(control_error)?
            {
                return Err(ApiError::NotFound(format!(
                    "{plugin} is not installed; `outpost plugin list` shows what is"
                )));
            }
            ok(json!({ "removed": plugin.as_str(), "purged": purge }))
        }
        (["admin", "v1", "plugins", vendor, name, "approve"], &Method::POST) => {
            let plugin = id(vendor, name)?;
            let worker = node.clone();
            let approved = tokio::task::spawn_blocking(move || {
                control::approve::configured_origins(&worker, &plugin)
            })
            .await
            .map_err(|_| ApiError::ShuttingDown)?
            .map_err(control_error)?;
            ok(json!(approved))
        }
        (["admin", "v1", "doctor"], &Method::GET) => {
            ok(json!({ "findings": crate::doctor::examine(node).await }))
        }
        (["admin", "v1", "drill"], &Method::GET) => ok(json!({
            "offline": node.is_offline(),
            "remaining_seconds": node.network().remaining().map(|left| left.as_secs()),
        })),
        (["admin", "v1", "drill"], &Method::POST) => {
            let body: DrillBody = read_json(request, ADMIN_READ_TIMEOUT).await?;
            if !(1..=3600).contains(&body.seconds) {
                return Err(ApiError::BadField {
                    field: "seconds".into(),
                    message: "a drill lasts 1 to 3600 seconds".into(),
                });
            }
            node.network().cut_for(Duration::from_secs(body.seconds));
            ok(json!({ "offline": true, "remaining_seconds": body.seconds }))
        }
        (["admin", "v1", "drill"], &Method::DELETE) => {
            node.network().restore();
            node.outbox().wake();
            ok(json!({ "offline": false }))
        }
        (["admin", "v1", "plugins", vendor, name, "follow"], &Method::PUT) => {
            let plugin = id(vendor, name)?;
            let body: FollowBody = read_json(request, ADMIN_READ_TIMEOUT).await?;
            control::follow(node, plugin.clone(), Some(body.requirement.clone()))
                .await
                .map_err(control_error)?;
            ok(json!({ "plugin": plugin.as_str(), "follows": body.requirement }))
        }
        (["admin", "v1", "plugins", vendor, name, "follow"], &Method::DELETE) => {
            let plugin = id(vendor, name)?;
            let was = control::follow(node, plugin.clone(), None)
                .await
                .map_err(control_error)?;
            ok(json!({ "plugin": plugin.as_str(), "was_following": was }))
        }
        (["admin", "v1", "updates"], &Method::GET) => {
            ok(json!(control::status(node).map_err(control_error)?))
        }
        (["admin", "v1", "updates", "check"], &Method::POST) => {
            let checked = control::check(node).await.map_err(control_error)?;
            ok(json!({ "checked": checked }))
        }
        (["admin", "v1", "updates", "history"], &Method::GET) => {
            let mut plugin = None;
            let mut limit = 50usize;
            for (key, value) in query_pairs(&request) {
                match key.as_str() {
                    "plugin" => plugin = Some(control::plugin_id(&value).map_err(control_error)?),
                    "limit" => {
                        limit = value
                            .parse()
                            .map_err(|_| ApiError::BadQuery(format!("limit={value:?}: a number")))?
                    }
                    other => {
                        return Err(ApiError::BadQuery(format!(
                            "unknown query parameter {other:?}; this route takes plugin and limit"
                        )));
                    }
                }
            }
            let lines = control::history(node, plugin.as_ref(), limit.min(10_000))
                .map_err(control_error)?;
            ok(json!({ "history": lines }))
        }
        (["admin", "v1", "updates", vendor, name, verb], &Method::POST) => {
            let plugin = id(vendor, name)?;
            let empty = request
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .is_none_or(|length| length == "0");
            let body: SteerBody = if empty {
                SteerBody::default()
            } else {
                read_json(request, ADMIN_READ_TIMEOUT).await?
            };
            let steer = Steer::parse(verb, body.block.unwrap_or(true)).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no update action {verb:?}; use apply, approve, reject or rollback"
                ))
            })?;
            let record = control::steer(node, plugin, steer, body.version)
                .await
                .map_err(control_error)?;
            ok(json!({ "update": record, "plugin": node.plugin_status(&record.plugin) }))
        }
        (["admin", "v1", "keys"], &Method::GET) => {
            let mut plugin = None;
            for (key, value) in query_pairs(&request) {
                if key == "plugin" {
                    plugin = Some(control::plugin_id(&value).map_err(control_error)?);
                }
            }
            let keys = control::keys(node, plugin.as_ref()).map_err(control_error)?;
            ok(json!({ "keys": keys }))
        }
        (["admin", "v1", "keys"], &Method::POST) => {
            let body: control::KeyRequest = read_json(request, ADMIN_READ_TIMEOUT).await?;
            let added = control::add_key(node, body).await.map_err(control_error)?;
            ok(json!(added))
        }
        (["admin", "v1", "keys", vendor, name, key], &Method::DELETE) => {
            let plugin = id(vendor, name)?;
            if !control::remove_key(node, plugin.clone(), key.to_string())
                .await
                .map_err(control_error)?
            {
                return Err(ApiError::NotFound(format!(
                    "{plugin} has no key {key:?}; `outpost keys list {plugin}` shows its keys"
                )));
            }
            ok(json!({ "removed": key }))
        }
        (["admin", "v1", "fleet"], &Method::GET) => {
            let worker = node.clone();
            let view = tokio::task::spawn_blocking(move || control::fleet::view(&worker))
                .await
                .map_err(|_| ApiError::ShuttingDown)?
                .map_err(control_error)?;
            ok(json!(view))
        }
        (["admin", "v1", "fleet", "check"], &Method::POST) => {
            let checked = control::fleet::check(node).await.map_err(control_error)?;
            ok(json!(checked))
        }
        (["admin", "v1", "fleet", "join"], &Method::POST) => {
            let body: control::fleet::JoinRequest = read_json(request, ADMIN_READ_TIMEOUT).await?;
            let membership = control::fleet::join(node, &body)
                .await
                .map_err(control_error)?;
            ok(json!(membership))
        }
        (["admin", "v1", "trust"], &Method::GET) => {
            let worker = node.clone();
            let view = tokio::task::spawn_blocking(move || control::trust::view(&worker))
                .await
                .map_err(|_| ApiError::ShuttingDown)?
                .map_err(control_error)?;
            ok(json!(view))
        }
        (["admin", "v1", "trust"], &Method::PUT) => {
            let body: control::trust::TrustRequest = read_json(request, ADMIN_READ_TIMEOUT).await?;
            let worker = node.clone();
            let provisioned =
                tokio::task::spawn_blocking(move || control::trust::provision(&worker, &body))
                    .await
                    .map_err(|_| ApiError::ShuttingDown)?
                    .map_err(control_error)?;
            ok(json!(provisioned))
        }
        (["admin", "v1", "trust", "refresh"], &Method::POST) => {
            let body: control::trust::RefreshRequest =
                read_json(request, ADMIN_READ_TIMEOUT).await?;
            let refreshed = control::trust::refresh(node, &body)
                .await
                .map_err(control_error)?;
            ok(json!(refreshed))
        }
        (["admin", "v1", "releases", "search"], &Method::POST) => {
            let body: SearchBody = read_json(request, ADMIN_READ_TIMEOUT).await?;
            let releases =
                control::trust::releases(node, body.query.as_deref(), body.registry.as_deref())
                    .await
                    .map_err(control_error)?;
            ok(json!({ "releases": releases }))
        }
        (["admin", "v1", "bundles"], &Method::POST) => {
            let body: control::trust::BundleRequest =
                read_json(request, ADMIN_READ_TIMEOUT).await?;
            let written = control::trust::export_bundle(node, &body)
                .await
                .map_err(control_error)?;
            ok(json!(written))
        }
        (["admin", "v1", "telemetry"], &Method::GET) => {
            let worker = node.clone();
            let view = tokio::task::spawn_blocking(move || crate::telemetry::view(&worker))
                .await
                .map_err(|_| ApiError::ShuttingDown)?;
            ok(view)
        }
        (["admin", "v1", "telemetry"], &Method::PUT) => {
            let body: ConsentBody = read_json(request, ADMIN_READ_TIMEOUT).await?;
            let worker = node.clone();
            let view = tokio::task::spawn_blocking(move || {
                crate::telemetry::set_consent(&worker, &body.consent)
                    .map(|_| crate::telemetry::view(&worker))
            })
            .await
            .map_err(|_| ApiError::ShuttingDown)?
            .map_err(|error| match error {
                crate::telemetry::TelemetryError::BadConsent(why) => ApiError::BadField {
                    field: "consent".into(),
                    message: why,
                },
                crate::telemetry::TelemetryError::Store(error) => {
                    ApiError::Store(error.to_string())
                }
            })?;
            ok(view)
        }
        (["admin", "v1", "snapshots"], &Method::GET) => {
            ok(json!({ "snapshots": crate::backup::local::list(node.data_dir()) }))
        }
        (["admin", "v1", "snapshots"], &Method::POST) => {
            let worker = node.clone();
            let taken =
                tokio::task::spawn_blocking(move || crate::backup::local::take_now(&worker))
                    .await
                    .map_err(|_| ApiError::ShuttingDown)?
                    .map_err(|error| ApiError::Store(error.to_string()))?;
            ok(json!(taken))
        }
        (["admin", "v1", "token", "rotate"], &Method::POST) => {
            let worker = node.clone();
            let token = tokio::task::spawn_blocking(move || super::tokens::rotate_token(&worker))
                .await
                .map_err(|_| ApiError::ShuttingDown)?
                .map_err(|error| match error {
                    super::TokenError::Inline { .. } => ApiError::Conflict(error.to_string()),
                    error => ApiError::Store(error.to_string()),
                })?;
            ok(json!({
                "token": token,
                "file": super::tokens::token_path(&node.config().api, node.data_dir()),
            }))
        }
        _ => Err(ApiError::NotFound(format!(
            "no admin route {method} {path}; see docs/architecture.md (the control plane)"
        ))),
    }
}
