//! The central team's fleet page: nodes (last heard from, versions, labels,
//! health), rollouts with their waves and the reasons nodes gave for
//! failing, and pause, resume or abort. Its files are built into the
//! binary; its login is the password in `<data-dir>/fleet-page-password`
//! (see `web_login` for the session and the page header).
//!
//! | method | path                                     | what                       |
//! |--------|------------------------------------------|----------------------------|
//! | GET    | `/fleet/`                                | the page and its files     |
//! | POST   | `/fleet/login`, `/fleet/logout`          | `{"password"}`             |
//! | GET    | `/fleet/api/overview`                    | [`FleetOverview`](crate::fleet::view::FleetOverview) |
//! | POST   | `/fleet/api/rollouts/<id>/<action>`      | pause, resume or abort     |

use super::{
    Handled, Registry, control, method_not_allowed, read_body, refuse, respond, with_header,
};
use crate::web_login::{Refused, page_headers};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

/// A node is silent after this long without a word: three default check
/// intervals of an hour.
const SILENT_AFTER_SECONDS: u64 = 3 * 3600;
const LOGIN_BYTES: u64 = 4 << 10;

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("fleet_page/index.html"),
    ),
    (
        "page.js",
        "text/javascript; charset=utf-8",
        crate::web_login::PAGE_SCRIPT,
    ),
    (
        "fleet.js",
        "text/javascript; charset=utf-8",
        include_str!("fleet_page/fleet.js"),
    ),
    (
        "fleet.css",
        "text/css; charset=utf-8",
        include_str!("fleet_page/fleet.css"),
    ),
];

fn json(status: StatusCode, body: String) -> super::Response<super::Body> {
    with_header(respond(status, body), "content-type", "application/json")
}

/// A refusal for the page's script: `{"error"}`, and no `WWW-Authenticate`
/// (a Basic challenge would make the browser ask for a user name).
fn page_refusal(status: StatusCode, message: &str) -> Handled {
    Ok(json(
        status,
        serde_json::json!({ "error": message }).to_string(),
    ))
}

impl Registry {
    /// Everything under `/fleet/` but the nodes' own `/fleet/v1/`.
    pub(super) async fn fleet_page(&self, request: Request<Incoming>, rest: &str) -> Handled {
        let Some(login) = &self.fleet_login else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "the fleet page is not served here (`outpost-registry serve` serves it)",
            ));
        };
        let method = request.method().clone();
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match (segments.as_slice(), &method) {
            ([], &Method::GET) if request.uri().path() == "/fleet" => Ok(with_header(
                respond(StatusCode::SEE_OTHER, ""),
                "location",
                "/fleet/",
            )),
            ([], &Method::GET) => asset(""),
            ([file], &Method::GET) if !["login", "logout", "api"].contains(file) => asset(file),
            (["login"], &Method::POST) => {
                tokio::time::sleep(login.penalty()).await;
                let body = read_body(request, LOGIN_BYTES).await?;
                let password = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["password"].as_str().map(str::to_string))
                    .unwrap_or_default();
                match login.log_in(&password) {
                    Ok(logged_in) => {
                        let body = serde_json::json!({
                            "logged_in": true,
                            "page_token": logged_in.page_token,
                        });
                        let mut response = json(StatusCode::OK, body.to_string());
                        response
                            .headers_mut()
                            .insert("set-cookie", logged_in.cookie);
                        Ok(response)
                    }
                    Err(Refused::Random(why)) => {
                        Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", why))
                    }
                    Err(_) => {
                        tracing::warn!("a fleet page login with a wrong password");
                        page_refusal(
                            StatusCode::UNAUTHORIZED,
                            "wrong password; it is in the registry's data directory \
                             (fleet-page-password)",
                        )
                    }
                }
            }
            (["logout"], &Method::POST) => {
                let cleared = login.log_out(request.headers());
                let mut response = json(StatusCode::OK, r#"{"logged_in":false}"#.into());
                response.headers_mut().insert("set-cookie", cleared);
                Ok(response)
            }
            (["api", api @ ..], _) => {
                if let Err(refused) = login.admit(request.headers()) {
                    let status = match refused {
                        Refused::NoPageHeader => StatusCode::FORBIDDEN,
                        _ => StatusCode::UNAUTHORIZED,
                    };
                    return page_refusal(status, &refused.to_string());
                }
                match (api, &method) {
                    (["overview"], &Method::GET) => {
                        let now = crate::store::now_seconds();
                        let overview = crate::fleet::view::overview(
                            &self.store,
                            &self.last_seen,
                            now,
                            SILENT_AFTER_SECONDS,
                        )
                        .map_err(|e| {
                            refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
                        })?;
                        let body = serde_json::to_string(&overview).map_err(|e| {
                            refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
                        })?;
                        Ok(json(StatusCode::OK, body))
                    }
                    (["rollouts", id, action], &Method::POST) => {
                        let answered = control::answer(
                            &self.store,
                            &Method::POST,
                            &format!("/admin/v1/rollouts/{id}/{action}"),
                            b"",
                        );
                        Ok(json(answered.status, answered.body.to_string()))
                    }
                    _ => Err(super::not_found(&format!("/fleet/api/{}", api.join("/")))),
                }
            }
            ([] | [_], _) => Err(method_not_allowed("GET")),
            _ => Err(super::not_found(&format!("/fleet/{rest}"))),
        }
    }
}

fn asset(name: &str) -> Handled {
    let (_, content_type, text) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| super::not_found(&format!("/fleet/{name}")))?;
    let mut response = respond(StatusCode::OK, *text);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    page_headers(headers);
    Ok(response)
}
