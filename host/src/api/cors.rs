//! Web pages calling the API from a browser: a point of sale served from the
//! internet (or another port of this box) is another origin, so the browser
//! asks first (a CORS preflight, and for a page on the internet reaching a
//! box on the local network, the Private Network Access one) and shows the
//! page an answer only if the node names its origin.
//!
//! The node names only the origins in `api.allowed-origins`, none by
//! default. A request that carries any other origin is refused before it
//! reaches a plugin, so a page elsewhere cannot even make a "simple" request
//! print, whatever the browser would have let it read. Requests without an
//! `Origin` (an app on the box, `curl`) are not a browser's and pass on to
//! the token check.

use super::ApiResponse;
use super::errors::ApiError;
use crate::config::ApiConfig;
use crate::origin::Origin;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// What the page may send: its methods and the two headers it needs.
const ALLOW_METHODS: &str = "GET, POST, DELETE";
const ALLOW_HEADERS: &str = "authorization, content-type";
/// How long a browser may reuse a preflight's answer.
const MAX_AGE_SECONDS: &str = "600";
const REQUEST_PRIVATE_NETWORK: &str = "access-control-request-private-network";
const ALLOW_PRIVATE_NETWORK: &str = "access-control-allow-private-network";

/// An allowed page's origin, exactly as its browser sent it (echoed back).
#[derive(Debug, Clone)]
pub(crate) struct AllowedOrigin(HeaderValue);

/// `Ok(None)` for a request from no page; `Ok(Some)` for a page the node
/// names; an error naming the fix for any other.
pub(crate) fn check(
    api: &ApiConfig,
    headers: &HeaderMap,
) -> Result<Option<AllowedOrigin>, ApiError> {
    let Some(sent) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let text = sent.to_str().unwrap_or_default();
    let allowed = Origin::parse(text).is_ok_and(|origin| api.allowed_origins.contains(&origin));
    if allowed {
        return Ok(Some(AllowedOrigin(sent.clone())));
    }
    let shown: String = text.chars().take(100).collect();
    Err(ApiError::Forbidden(format!(
        "a web page from {shown:?} may not call this node; if it is your point of sale, add its \
         origin to api.allowed-origins in outpost.toml and restart the node"
    )))
}

/// True for a browser's preflight (`OPTIONS` asking about a method).
pub(crate) fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to an allowed page's preflight, Private Network Access
/// included when the browser asks for it.
pub(crate) fn preflight<B>(origin: &AllowedOrigin, request: &Request<B>) -> ApiResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECONDS),
    );
    let private_network = request
        .headers()
        .get(REQUEST_PRIVATE_NETWORK)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
    if private_network {
        headers.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
    }
    allow(&mut response, Some(origin));
    response
}

/// Lets the page read `response` (errors included: the page should see why
/// it was refused). Responses always vary by origin and are never stored,
/// so a cache never hands one page's answer to another.
pub(crate) fn allow(response: &mut ApiResponse, origin: Option<&AllowedOrigin>) {
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if let Some(AllowedOrigin(origin)) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> ApiConfig {
        ApiConfig {
            allowed_origins: origins
                .iter()
                .map(|o| Origin::parse(o).expect("origin"))
                .collect(),
            ..ApiConfig::default()
        }
    }

    fn from(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("value"),
        );
        headers
    }

    #[test]
    fn only_listed_pages_are_allowed() {
        let api = config(&["https://pos.example.com"]);
        assert!(check(&api, &HeaderMap::new()).expect("no page").is_none());
        // The browser leaves the default port out; the list may name it.
        assert!(check(&api, &from("https://pos.example.com")).is_ok());
        assert!(check(&api, &from("https://POS.example.com:443")).is_ok());
        for refused in [
            "https://pos.example.com.evil.net",
            "http://pos.example.com",
            "https://pos.example.com:8443",
            "null",
            "",
        ] {
            let error = check(&api, &from(refused)).expect_err(refused);
            assert!(error.to_string().contains("api.allowed-origins"), "{error}");
        }
        // Nothing is allowed by default.
        assert!(check(&config(&[]), &from("https://pos.example.com")).is_err());
    }

    #[test]
    fn the_private_network_preflight_is_answered_when_asked() {
        let origin = AllowedOrigin(HeaderValue::from_static("https://pos.example.com"));
        let request = Request::builder()
            .method(Method::OPTIONS)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(REQUEST_PRIVATE_NETWORK, "true")
            .body(())
            .expect("request");
        assert!(is_preflight(&request));
        let response = preflight(&origin, &request);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://pos.example.com"
        );
        assert_eq!(headers[ALLOW_PRIVATE_NETWORK], "true");
        assert!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .expect("text")
                .contains("authorization")
        );
    }
}
