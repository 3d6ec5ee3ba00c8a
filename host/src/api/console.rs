//! The operator's console: a page on the node's own address for a phone or
//! the till's browser, working with no internet (its files are built into
//! the binary), and the routes it speaks.
//!
//! | method | path                         | what                                    |
//! |--------|------------------------------|-----------------------------------------|
//! | GET    | `/console/`                  | the page (and its files beside it)      |
//! | POST   | `/console/login`             | `{"password"}` → a session cookie       |
//! | POST   | `/console/logout`            | ends the session                        |
//! | GET    | `/console/api/overview`      | health, measures, consent in one read   |
//! | any    | `/console/api/v1/...`        | the app API's route, as the node itself |
//! | any    | `/console/api/admin/v1/...`  | the admin channel's route               |
//!
//! The console is the admin side, so its login is not the apps' token: a
//! password in the data directory (`api.console-password-file`), with the
//! session cookie and page header of `outpost_registry::web_login`.

use super::errors::ApiError;
use super::{ApiResponse, RequestBody, json_response, read_json};
use crate::node::Node;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use outpost_registry::web_login::{PAGE_HEADER, Refused, WebLogin, page_headers};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const COOKIE: &str = "outpost_console";

/// The console's files, built into the binary.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "page.js",
        "text/javascript; charset=utf-8",
        outpost_registry::web_login::PAGE_SCRIPT,
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("console/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("console/app.css"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_str!("console/sw.js"),
    ),
    (
        "manifest.webmanifest",
        "application/manifest+json",
        include_str!("console/manifest.webmanifest"),
    ),
];

/// The console's login, for one served API.
pub type Console = WebLogin;

/// A login for the console with `password`.
pub fn login(password: String) -> Console {
    WebLogin::new(password, COOKIE, "/console")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    password: String,
}

/// What a console request comes to: an answer, or a request for the app
/// API's own routes, which the caller answers as the node itself.
pub(crate) enum Answer {
    Response(ApiResponse),
    AppRoute(Request<Full<Bytes>>),
}

/// Answers a request under `/console`. `console` is `None` for requests
/// made in-process, where there is no browser to serve.
pub(crate) async fn route(
    node: &Arc<Node>,
    console: Option<&Console>,
    request: Request<impl RequestBody>,
    segments: &[&str],
    read_timeout: Duration,
) -> Result<Answer, ApiError> {
    let ok = |response| Ok(Answer::Response(response));
    let Some(console) = console else {
        return Err(ApiError::NotFound(
            "the console is served by a running node (`outpost run`)".into(),
        ));
    };
    let method = request.method().clone();
    match (segments, &method) {
        // The page's relative links need the trailing slash.
        ([], &Method::GET) if request.uri().path() == "/console/" => ok(asset("")?),
        ([], &Method::GET) => ok(redirect("/console/")),
        ([file], &Method::GET) if !["login", "logout", "api"].contains(file) => ok(asset(file)?),
        ([], _) | ([_], &Method::GET) => Err(ApiError::MethodNotAllowed("GET")),
        (["login"], &Method::POST) => {
            tokio::time::sleep(console.penalty()).await;
            let login: Login = read_json(request, read_timeout).await?;
            let logged_in = console.log_in(&login.password).map_err(|refused| match refused {
                Refused::Random(why) => ApiError::Store(why),
                _ => {
                    tracing::warn!(target: "outpost::console", "a console login with a wrong password");
                    ApiError::Unauthorized(
                        "wrong password; `outpost console password` on the node shows it",
                    )
                }
            })?;
            let mut response = json_response(
                StatusCode::OK,
                &json!({ "logged_in": true, "page_token": logged_in.page_token }),
            );
            response
                .headers_mut()
                .insert(hyper::header::SET_COOKIE, logged_in.cookie);
            ok(response)
        }
        (["logout"], &Method::POST) => {
            let cleared = console.log_out(request.headers());
            let mut response = json_response(StatusCode::OK, &json!({ "logged_in": false }));
            response
                .headers_mut()
                .insert(hyper::header::SET_COOKIE, cleared);
            ok(response)
        }
        (["login" | "logout"], _) => Err(ApiError::MethodNotAllowed("POST")),
        (["api", rest @ ..], _) => {
            console
                .admit(request.headers())
                .map_err(|refused| match refused {
                    Refused::NoPageHeader => ApiError::Forbidden(format!(
                        "console requests must come from the console page and carry its \
                         session's page token in `{PAGE_HEADER}`; log in again"
                    )),
                    _ => {
                        ApiError::Unauthorized("log in to the console first (POST /console/login)")
                    }
                })?;
            match rest {
                ["overview"] if method == Method::GET => {
                    let worker = node.clone();
                    let overview =
                        tokio::task::spawn_blocking(move || super::overview::read(&worker))
                            .await
                            .map_err(|_| ApiError::ShuttingDown)?;
                    ok(json_response(StatusCode::OK, &overview))
                }
                ["v1", ..] | ["admin", "v1", ..] => {
                    let inner = forwarded(request, rest, read_timeout).await?;
                    if rest[0] == "admin" {
                        ok(super::admin::handle_in_process(node.clone(), inner).await)
                    } else {
                        Ok(Answer::AppRoute(inner))
                    }
                }
                _ => Err(ApiError::NotFound(format!(
                    "no console route {method} /console/api/{}",
                    rest.join("/")
                ))),
            }
        }
        _ => Err(ApiError::NotFound("no such console page".into())),
    }
}

/// `request` re-addressed to `/{rest}`, its body read (within the API's
/// limits) so it can be handed to the in-process routes.
async fn forwarded(
    request: Request<impl RequestBody>,
    rest: &[&str],
    read_timeout: Duration,
) -> Result<Request<Full<Bytes>>, ApiError> {
    let (parts, body) = request.into_parts();
    let mut path = format!("/{}", rest.join("/"));
    if let Some(query) = parts.uri.query() {
        path.push('?');
        path.push_str(query);
    }
    let reading = Limited::new(body, super::MAX_BODY_BYTES).collect();
    let body = tokio::time::timeout(read_timeout, reading)
        .await
        .map_err(|_| ApiError::SlowBody(read_timeout))?
        .map_err(|_| ApiError::TooLarge)?
        .to_bytes();
    let mut inner = Request::builder().method(parts.method).uri(path);
    for name in [CONTENT_TYPE, hyper::header::CONTENT_LENGTH] {
        if let Some(value) = parts.headers.get(&name) {
            inner = inner.header(name, value);
        }
    }
    inner
        .body(Full::new(body))
        .map_err(|e| ApiError::BadQuery(format!("cannot forward the request: {e}")))
}

fn redirect(to: &'static str) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(hyper::header::LOCATION, HeaderValue::from_static(to));
    response
}

fn asset(name: &str) -> Result<ApiResponse, ApiError> {
    let (_, content_type, text) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| ApiError::NotFound(format!("no console file {name:?}")))?;
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    page_headers(headers);
    Ok(response)
}
