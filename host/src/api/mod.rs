//! The node's local HTTP API, for apps on the same box (a point-of-sale web
//! app, a packing station).
//!
//! | method | path                                  | auth | what                          |
//! |--------|---------------------------------------|------|-------------------------------|
//! | GET    | `/v1/health`                          | no   | the node is up                |
//! | GET    | `/v1/plugins`                         | yes  | installed plugins and status  |
//! | GET    | `/v1/plugins/{vendor}/{name}`         | yes  | one plugin, with its health   |
//! | POST   | `/v1/print/label`                     | yes  | render and print a label      |
//! | POST   | `/v1/print/receipt`                   | yes  | render and print a receipt    |
//! | GET    | `/v1/printers`                        | yes  | configured printers           |
//! | GET    | `/v1/printers/{name}/status?kind=...` | yes  | ask a printer how it is       |
//! | POST   | `/v1/payments/tokenize`               | yes  | card → token                  |
//! | POST   | `/v1/payments/authorize-offline`      | yes  | approve a payment offline     |
//! | POST   | `/v1/shipping/quotes`                 | yes  | courier quotes                |
//! | POST   | `/v1/shipping/bookings`               | yes  | book (or queue) a shipment    |
//! | GET    | `/v1/shipping/bookings/{id}`          | yes  | where a booking stands        |
//! | DELETE | `/v1/shipping/bookings/{id}`          | yes  | cancel a booking              |
//! | GET    | `/v1/shipping/tracking/{number}`      | yes  | tracking events               |
//! | POST   | `/v1/forecasts`                       | yes  | demand forecast               |
//! | GET    | `/v1/outbox?state=&limit=`            | yes  | queued deliveries             |
//! | GET    | `/v1/outbox/{id}`                     | yes  | one delivery, with payload    |
//! | POST   | `/v1/outbox/{id}/retry`               | yes  | put a dead delivery back      |
//! | DELETE | `/v1/outbox/{id}`                     | yes  | drop a delivery               |
//! | POST   | `/v1/updates/lock`                    | yes  | hold plugin swaps (a sale)    |
//! | DELETE | `/v1/updates/lock`                    | yes  | release them                  |
//!
//! Installing, removing, keys and steering updates are not here: they are
//! the admin channel's (`admin`), which an app holding the token cannot
//! reach.
//!
//! JSON in and out. Authenticated routes need `Authorization: Bearer <token>`
//! with the token from the data directory's `api-token`. Errors are
//! `{"error": {"code", "message", "field"?}}` with a status that says whose
//! fault it is: 4xx for the request, 5xx for a plugin or printer.

pub mod admin;
pub mod console;
mod cors;
pub mod errors;
pub mod kinds;
pub mod outbox;
pub mod overview;
pub mod schema;
pub mod tokens;

pub use tokens::{TokenError, load_or_create_token, read_token, rotate_token};

use crate::log_limit::{LogLimit, held_back};
use crate::node::Node;
use crate::printing::{self, Document, DocumentKind};
use bytes::Bytes;
use errors::ApiError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 << 10;
/// How long running requests get to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(10);

struct Api {
    node: Arc<Node>,
    /// False for requests made inside this process by someone who could
    /// open the node's database, and so already holds everything the token
    /// (the node's current one, see `Node::is_app_token`) would protect.
    checks_token: bool,
    /// What `/metrics` asks for; `None` in-process (see `checks_token`).
    metrics_token: Option<String>,
    /// The operator console's login; `None` in-process (no browser).
    console: Option<console::Console>,
}

/// A request body the API can read: hyper's own from a socket, or a byte
/// buffer for requests made in-process.
pub trait RequestBody:
    Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}

impl<B> RequestBody for B where
    B: Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send
{
}

/// Answers one request without a socket or a token, exactly as the served
/// API would. The CLI uses this when no node is running, so `outpost book`
/// behaves the same whether it reaches a running node or opens the database
/// itself.
pub async fn handle_in_process(node: Arc<Node>, request: Request<Full<Bytes>>) -> ApiResponse {
    let read_timeout = node.config().api.read_timeout();
    Api {
        node,
        checks_token: false,
        metrics_token: None,
        console: None,
    }
    .handle(request, read_timeout)
    .await
}

pub(crate) type ApiResponse = Response<Full<Bytes>>;

pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> ApiResponse {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Failures to accept a connection in a row: how long to wait before the
/// next try, and when to say so.
#[derive(Debug)]
struct AcceptFailures {
    in_a_row: u32,
    log: LogLimit,
}

impl AcceptFailures {
    const FIRST_PAUSE: Duration = Duration::from_millis(10);
    const LONGEST_PAUSE: Duration = Duration::from_secs(1);

    fn new() -> AcceptFailures {
        AcceptFailures {
            in_a_row: 0,
            log: LogLimit::new(Duration::from_secs(30)),
        }
    }

    fn succeeded(&mut self) {
        if self.in_a_row > 0 {
            self.in_a_row = 0;
            self.log.reset();
        }
    }

    /// Records a failure; returns how long to pause.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        if let Some(suppressed) = self.log.allow() {
            // EMFILE, ENFILE: the process or the system is out of files.
            let hint = if matches!(error.raw_os_error(), Some(23 | 24)) {
                "; the node is out of open files: raise its limit (`ulimit -n`, or \
                 LimitNOFILE= in its service), or lower api.max-connections"
            } else {
                ""
            };
            tracing::warn!(
                "cannot accept a connection: {error}{hint}{}",
                held_back(suppressed)
            );
        }
        let exponent = self.in_a_row.saturating_sub(1).min(10);
        (Self::FIRST_PAUSE * (1u32 << exponent)).min(Self::LONGEST_PAUSE)
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then lets running
/// requests finish (up to ten seconds).
pub async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    token: String,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let settings = node.config().api.clone();
    let metrics_token =
        tokens::load_or_create_metrics_token(&node).map_err(std::io::Error::other)?;
    let console_password =
        tokens::load_or_create_console_password(&node).map_err(std::io::Error::other)?;
    node.set_app_token(token);
    let api = Arc::new(Api {
        node,
        checks_token: true,
        metrics_token: Some(metrics_token),
        console: Some(console::login(console_password)),
    });
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(settings.max_connections as usize));
    let mut accept_failures = AcceptFailures::new();
    tokio::pin!(shutdown);
    loop {
        // A connection place first: past the cap, clients wait in the
        // kernel's backlog instead of each costing the node a file and a task.
        let place = tokio::select! {
            place = connections.clone().acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    accept_failures.succeeded();
                    accepted
                }
                Err(error) => {
                    // Out of files (EMFILE) or memory: accepting again at
                    // once fails again at once, and spins. Wait, and say so
                    // once in a while rather than per failure.
                    let pause = accept_failures.failed(&error);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let api = api.clone();
        let read_timeout = settings.read_timeout();
        let service = service_fn(move |request| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.handle(request, read_timeout).await) }
        });
        let connection = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, "connection ended with an error: {error}");
            }
            drop(place);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => tracing::warn!("requests still running after {DRAIN:?}; stopping anyway"),
    }
    Ok(())
}

impl Api {
    async fn handle(
        &self,
        request: Request<impl RequestBody>,
        read_timeout: Duration,
    ) -> ApiResponse {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let started = std::time::Instant::now();
        let response = match self.route_page_request(request, read_timeout).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        // One line per request is an operator's log flooded at peak (12-30%
        // of throughput measured): requests are for debugging.
        tracing::debug!(
            target: "outpost::api",
            %method,
            path,
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
        );
        response
    }

    /// Routes a request, holding one from a web page to `api.allowed-origins`
    /// first (see `cors`). The console is its own page, with its own checks,
    /// and requests made in-process come from no page.
    async fn route_page_request(
        &self,
        request: Request<impl RequestBody>,
        read_timeout: Duration,
    ) -> Result<ApiResponse, ApiError> {
        let path = request.uri().path();
        if !self.checks_token || path == "/console" || path.starts_with("/console/") {
            return self.route(request, read_timeout).await;
        }
        let origin = match cors::check(&self.node.config().api, request.headers()) {
            Ok(origin) => origin,
            Err(refused) => {
                let mut response = refused.into_response();
                cors::allow(&mut response, None);
                return Ok(response);
            }
        };
        if let Some(origin) = &origin
            && cors::is_preflight(&request)
        {
            return Ok(cors::preflight(origin, &request));
        }
        let mut response = match self.route(request, read_timeout).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        cors::allow(&mut response, origin.as_ref());
        Ok(response)
    }

    /// `/metrics`, for a scraper holding the scrape token (not the apps').
    async fn metrics<B>(&self, request: &Request<B>) -> Result<ApiResponse, ApiError> {
        let metrics_token = self.metrics_token.as_deref();
        let is_scrape_token = |given: &str| {
            metrics_token.is_some_and(|t| tokens::same_token(given.as_bytes(), t.as_bytes()))
        };
        check_bearer(
            request,
            metrics_token.map(|_| &is_scrape_token as &dyn Fn(&str) -> bool),
            "send `Authorization: Bearer <scrape token>`; the token is in the node's data \
             directory (metrics-token), for Prometheus's `authorization.credentials_file`",
            "the scrape token is wrong (it is metrics-token, not the apps' api-token)",
        )?;
        let node = self.node.clone();
        let text = tokio::task::spawn_blocking(move || crate::metrics::scrape::render(&node))
            .await
            .map_err(|_| ApiError::ShuttingDown)?
            .map_err(|error| ApiError::Store(error.to_string()))?;
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::scrape::CONTENT_TYPE),
        );
        Ok(response)
    }

    fn authorize<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
        let is_app_token = |given: &str| self.node.is_app_token(given);
        check_bearer(
            request,
            self.checks_token
                .then_some(&is_app_token as &dyn Fn(&str) -> bool),
            "send `Authorization: Bearer <token>`; the token is in the node's data directory (api-token)",
            "the bearer token is wrong",
        )
    }

    async fn route(
        &self,
        request: Request<impl RequestBody>,
        read_timeout: Duration,
    ) -> Result<ApiResponse, ApiError> {
        let path = request.uri().path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let method = request.method().clone();
        match segments.as_slice() {
            ["v1", "health"] => {
                return match method {
                    Method::GET => Ok(self.health().await),
                    _ => Err(ApiError::MethodNotAllowed("GET")),
                };
            }
            ["metrics"] => {
                return match method {
                    Method::GET => self.metrics(&request).await,
                    _ => Err(ApiError::MethodNotAllowed("GET")),
                };
            }
            ["console", rest @ ..] => {
                let answer = console::route(
                    &self.node,
                    self.console.as_ref(),
                    request,
                    rest,
                    read_timeout,
                )
                .await?;
                return match answer {
                    console::Answer::Response(response) => Ok(response),
                    // The console acts as the node itself: no token.
                    console::Answer::AppRoute(inner) => {
                        let api = Api {
                            node: self.node.clone(),
                            checks_token: false,
                            metrics_token: None,
                            console: None,
                        };
                        Ok(Box::pin(api.handle(inner, read_timeout)).await)
                    }
                };
            }
            _ => {}
        }
        self.authorize(&request)?;
        match (segments.as_slice(), &method) {
            (["v1", "plugins"], &Method::GET) => Ok(json_response(
                StatusCode::OK,
                &json!({ "plugins": self.node.plugins() }),
            )),
            (["v1", "plugins", vendor, name], &Method::GET) => {
                self.plugin(&format!("{vendor}/{name}")).await
            }
            (["v1", "print", "label"], &Method::POST) => {
                let body: schema::LabelRequest = read_json(request, read_timeout).await?;
                let document = Document::Label(body.label.into());
                self.print(body.driver, body.printer, document).await
            }
            (["v1", "print", "receipt"], &Method::POST) => {
                let body: schema::ReceiptRequest = read_json(request, read_timeout).await?;
                let document = Document::Receipt(body.receipt.into());
                self.print(body.driver, body.printer, document).await
            }
            (["v1", "printers"], &Method::GET) => Ok(self.printers()),
            (["v1", "printers", name, "status"], &Method::GET) => {
                let query = request.uri().query().unwrap_or_default().to_string();
                self.printer_status(name, &query).await
            }
            (["v1", "payments", "tokenize"], &Method::POST) => {
                self.kind_with_body(kinds::TOKENIZE, request, read_timeout)
                    .await
            }
            (["v1", "payments", "authorize-offline"], &Method::POST) => {
                self.kind_with_body(kinds::AUTHORIZE_OFFLINE, request, read_timeout)
                    .await
            }
            (["v1", "shipping", "quotes"], &Method::POST) => {
                self.kind_with_body(kinds::QUOTES, request, read_timeout)
                    .await
            }
            (["v1", "shipping", "bookings"], &Method::POST) => {
                self.kind_with_body(kinds::BOOK, request, read_timeout)
                    .await
            }
            (["v1", "shipping", "bookings", id], &Method::GET) => {
                self.kind_with_path(kinds::BOOKING_STATUS, id, &request)
                    .await
            }
            (["v1", "shipping", "bookings", id], &Method::DELETE) => {
                self.kind_with_path(kinds::CANCEL, id, &request).await
            }
            (["v1", "shipping", "tracking", number], &Method::GET) => {
                self.kind_with_path(kinds::TRACK, number, &request).await
            }
            (["v1", "forecasts"], &Method::POST) => {
                self.kind_with_body(kinds::FORECAST, request, read_timeout)
                    .await
            }
            (["v1", "updates", "lock"], &Method::POST) => {
                let body: schema::LockRequest = read_json(request, read_timeout).await?;
                let updates = &self.node.config().updates;
                let held = self.node.update_lock.take(
                    body.holder.as_deref().unwrap_or("an app"),
                    Duration::from_secs(body.seconds),
                    Duration::from_secs(updates.max_lock_seconds),
                );
                Ok(json_response(
                    StatusCode::OK,
                    &json!({
                        "locked_for_seconds": held.as_secs(),
                        "max_lock_seconds": updates.max_lock_seconds,
                    }),
                ))
            }
            (["v1", "updates", "lock"], &Method::DELETE) => {
                let released = self.node.update_lock.release();
                Ok(json_response(
                    StatusCode::OK,
                    &json!({ "released": released }),
                ))
            }
            (["v1", "updates", "lock"], _) => Err(ApiError::MethodNotAllowed("POST, DELETE")),
            (["v1", "outbox", ..], _) => {
                let query = request.uri().query().unwrap_or_default().to_string();
                outbox::route(&self.node, &segments[2..], &method, &query).await
            }
            (["v1", "plugins"] | ["v1", "plugins", _, _] | ["v1", "printers"], _)
            | (["v1", "printers", _, "status"], _)
            | (["v1", "shipping", "tracking", _], _) => Err(ApiError::MethodNotAllowed("GET")),
            (["v1", "shipping", "bookings", _], _) => {
                Err(ApiError::MethodNotAllowed("GET, DELETE"))
            }
            (
                ["v1", "print", "label" | "receipt"]
                | ["v1", "payments", "tokenize" | "authorize-offline"]
                | ["v1", "shipping", "quotes" | "bookings"]
                | ["v1", "forecasts"],
                _,
            ) => Err(ApiError::MethodNotAllowed("POST")),
            _ => Err(ApiError::NotFound(format!(
                "no route {method} {path}; see docs/api.md"
            ))),
        }
    }

    async fn kind_with_body(
        &self,
        route: kinds::KindRoute,
        request: Request<impl RequestBody>,
        read_timeout: Duration,
    ) -> Result<ApiResponse, ApiError> {
        let body: serde_json::Value = read_json(request, read_timeout).await?;
        let (plugin, argument) = kinds::split_body(&route, body)?;
        let result = kinds::call(&self.node, route, plugin, argument).await?;
        Ok(json_response(StatusCode::OK, &result))
    }

    async fn kind_with_path(
        &self,
        route: kinds::KindRoute,
        segment: &str,
        request: &Request<impl RequestBody>,
    ) -> Result<ApiResponse, ApiError> {
        let mut plugin = None;
        for pair in request.uri().query().unwrap_or_default().split('&') {
            match pair.split_once('=') {
                Some(("plugin", id)) => plugin = Some(id.to_string()),
                None if pair.is_empty() => {}
                _ => {
                    return Err(ApiError::BadQuery(format!(
                        "unknown query parameter {pair:?}; this route takes plugin"
                    )));
                }
            }
        }
        let argument = serde_json::Value::String(segment.to_string());
        let mut result = kinds::call(&self.node, route, plugin, argument).await?;
        if route.result == "cancelled" {
            result = json!({ "cancelled": segment });
        }
        Ok(json_response(StatusCode::OK, &result))
    }

    async fn health(&self) -> ApiResponse {
        let plugins = self.node.plugins();
        let unavailable = plugins.iter().filter(|p| p.status != "active").count();
        let problems = if self.node.store().writes_failing() {
            let node = self.node.clone();
            tokio::task::spawn_blocking(move || crate::health::problems(&node))
                .await
                .unwrap_or_default()
        } else {
            crate::health::problems(&self.node)
        };
        // Updates in flight and held, so an operator's dashboard shows what
        // waits for them; never what a plugin asks (that is admin detail).
        let updates: Vec<_> = self
            .node
            .store()
            .updates()
            .unwrap_or_default()
            .into_iter()
            .map(|u| {
                json!({
                    "plugin": u.plugin.as_str(),
                    "from": u.from.map(|v| v.to_string()),
                    "to": u.to.to_string(),
                    "state": u.state.name(),
                })
            })
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "status": if problems.is_empty() { "ok" } else { "degraded" },
                "problems": problems,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_seconds": self.node.uptime().as_secs(),
                "plugins": {
                    "active": plugins.len() - unavailable,
                    "unavailable": unavailable,
                },
                "updates": updates,
                "update_lock": self.node.update_lock.current(),
            }),
        )
    }

    async fn plugin(&self, id: &str) -> Result<ApiResponse, ApiError> {
        let id = crate::plugin_id::PluginId::parse(id)
            .map_err(|why| ApiError::NotFound(format!("no plugin {id:?}: {why}")))?;
        let status = self
            .node
            .plugin_status(&id)
            .ok_or_else(|| ApiError::NotFound(format!("no plugin {id} is installed")))?;
        let health = match self.node.loaded(&id) {
            Some(plugin) => {
                let checked = match self.node.invoker().admit(&plugin, "health").await {
                    Ok(admission) => {
                        let node = self.node.clone();
                        admission
                            .run(move || node.health(&plugin))
                            .await
                            .map_err(|_| ApiError::ShuttingDown)?
                    }
                    Err(busy) => Err(busy),
                };
                match checked {
                    Ok(report) => json!({
                        "status": crate::health::health_name(report.status),
                        "detail": report.detail,
                    }),
                    Err(error) => json!({ "status": "error", "detail": error.to_string() }),
                }
            }
            None => json!({ "status": "unavailable", "detail": status.reason }),
        };
        Ok(json_response(
            StatusCode::OK,
            &json!({ "plugin": status, "health": health }),
        ))
    }

    async fn print(
        &self,
        driver: Option<String>,
        printer: Option<String>,
        document: Document,
    ) -> Result<ApiResponse, ApiError> {
        let kind = match &document {
            Document::Label(_) => "label.printed",
            Document::Receipt(_) => "receipt.printed",
        };
        let printed =
            printing::print(&self.node, driver.as_deref(), printer.as_deref(), document).await;
        let document_name = if kind == "label.printed" {
            "label"
        } else {
            "receipt"
        };
        self.node.metrics().document(document_name, printed.is_ok());
        let job = printed?;
        let body = json!({ "job": job });
        if self.node.events().enabled() {
            let event = json!({
                "driver": body["job"]["driver"],
                "printer": body["job"]["printer"],
                "bytes": body["job"]["bytes"],
            });
            self.node.events().record_async(kind, event).await?;
        }
        Ok(json_response(StatusCode::OK, &body))
    }

    fn printers(&self) -> ApiResponse {
        json_response(
            StatusCode::OK,
            &json!({ "printers": configured_printers(&self.node) }),
        )
    }

    async fn printer_status(&self, name: &str, query: &str) -> Result<ApiResponse, ApiError> {
        let mut kind = None;
        let mut driver = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("kind", "label")) => kind = Some(DocumentKind::Label),
                Some(("kind", "receipt")) => kind = Some(DocumentKind::Receipt),
                Some(("kind", other)) => {
                    return Err(ApiError::BadQuery(format!(
                        "kind={other:?}: use kind=label or kind=receipt"
                    )));
                }
                Some(("driver", id)) => driver = Some(id.to_string()),
                _ => {
                    return Err(ApiError::BadQuery(format!(
                        "unknown query parameter {pair:?}; this route takes kind and driver"
                    )));
                }
            }
        }
        let defaults = &self.node.config().defaults;
        let kind = match kind {
            Some(kind) => kind,
            None if defaults.label_printer.as_deref() == Some(name)
                && defaults.receipt_printer.as_deref() != Some(name) =>
            {
                DocumentKind::Label
            }
            None if defaults.receipt_printer.as_deref() == Some(name)
                && defaults.label_printer.as_deref() != Some(name) =>
            {
                DocumentKind::Receipt
            }
            None => {
                return Err(ApiError::BadQuery(format!(
                    "say which language printer {name:?} speaks: add ?kind=label or ?kind=receipt"
                )));
            }
        };
        let report = printing::status(&self.node, driver.as_deref(), name, kind).await?;
        Ok(json_response(StatusCode::OK, &json!({ "status": report })))
    }
}

/// Lets `request` in if `is_right` accepts its bearer token (always, when
/// there is no `is_right`: a request made in-process).
fn check_bearer<B>(
    request: &Request<B>,
    is_right: Option<&dyn Fn(&str) -> bool>,
    missing: &'static str,
    wrong: &'static str,
) -> Result<(), ApiError> {
    let Some(is_right) = is_right else {
        return Ok(());
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(missing))?;
    if is_right(given.trim()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(wrong))
    }
}

/// The configured printers, as `GET /v1/printers` and the console list them.
pub(crate) fn configured_printers(node: &Node) -> Vec<serde_json::Value> {
    let config = node.config();
    config
        .printers
        .iter()
        .map(|(name, printer)| {
            let mut default_for = Vec::new();
            if config.defaults.label_printer.as_deref() == Some(name) {
                default_for.push("label");
            }
            if config.defaults.receipt_printer.as_deref() == Some(name) {
                default_for.push("receipt");
            }
            json!({
                "name": name,
                "destination": printing::transport::describe(printer, node.data_dir()),
                "default_for": default_for,
            })
        })
        .collect()
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`] within `read_timeout`,
/// naming the field that is wrong when it does not fit `T`.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<impl RequestBody>,
    read_timeout: Duration,
) -> Result<T, ApiError> {
    if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
        let is_json = content_type
            .to_str()
            .map(|t| t.starts_with("application/json"))
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let reading = Limited::new(request.into_body(), MAX_BODY_BYTES).collect();
    let body = tokio::time::timeout(read_timeout, reading)
        .await
        .map_err(|_| ApiError::SlowBody(read_timeout))?
        .map_err(|error| {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::TooLarge
            } else {
                ApiError::BadBody(error.to_string())
            }
        })?
        .to_bytes();
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadJson(inner.to_string())
        } else {
            ApiError::BadField {
                field: if field == "." { String::new() } else { field },
                message: inner.to_string(),
            }
        }
    })
}
