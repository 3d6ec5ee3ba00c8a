//! Outbound HTTP, for plugins that talk to a service (a courier's API).
//!
//! Needs `http` under `[grants]` in `plugin.toml`, listing every origin the
//! plugin may reach:
//!
//! ```toml
//! [grants]
//! http = ["https://api.courier.example", "http://127.0.0.1:8080"]
//! ```
//!
//! The node checks each request against that list (a redirect is a new
//! request, checked again), bounds how long it may take by the call's deadline,
//! and caps the size of the answer. This module wraps `wasi:http` in a small
//! blocking client whose errors say what the plugin can do about them:
//! [`HttpError::Denied`] is a configuration problem, [`HttpError::Unreachable`]
//! and [`HttpError::Timeout`] mean "try later" (or queue it in the
//! [`outbox`](crate::outbox)).
//!
//! ```no_run
//! # fn demo() -> Result<(), outpost_sdk_core::http::HttpError> {
//! use outpost_sdk_core::http::Request;
//! let response = Request::post("http://127.0.0.1:8080/v1/quotes")
//!     .header("accept", "application/json")
//!     .json(br#"{"weight_grams": 1200}"#.to_vec())
//!     .send()?;
//! assert!(response.is_success());
//! # Ok(()) }
//! ```

use crate::types::PluginError;
use std::fmt;
use std::time::Duration;
use wasip2::http::outgoing_handler;
/// The request method: `Method::Get`, `Method::Post`, `Method::Delete`...
pub use wasip2::http::types::Method;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// The most this client reads of a response body unless told otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;
/// The most a single write to the request body stream may carry.
const WRITE_CHUNK: usize = 4096;

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The node refused the request: its origin is not in the plugin's
    /// `http` grant. Retrying will not help; the manifest or URL is wrong.
    Denied(String),
    /// No connection: the host is down, unknown or refusing.
    Unreachable(String),
    /// The service did not answer in time (or the call's deadline is near).
    Timeout(String),
    /// The answer was larger than allowed.
    TooLarge(String),
    /// The URL or a header is not valid.
    Invalid(String),
    /// The connection broke or the service spoke something that is not HTTP.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(why) => write!(f, "request denied by the node: {why}"),
            HttpError::Unreachable(why) => write!(f, "service unreachable: {why}"),
            HttpError::Timeout(why) => write!(f, "service timed out: {why}"),
            HttpError::TooLarge(why) => write!(f, "response too large: {why}"),
            HttpError::Invalid(why) => write!(f, "invalid request: {why}"),
            HttpError::Protocol(why) => write!(f, "HTTP failure: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    /// True when the same request may work later: the service was down or
    /// slow, not refused by the node.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::Unreachable(_) | HttpError::Timeout(_) | HttpError::Protocol(_)
        )
    }
}

impl From<HttpError> for PluginError {
    fn from(error: HttpError) -> Self {
        let text = error.to_string();
        match error {
            HttpError::Denied(_) => PluginError::Denied(text),
            HttpError::Unreachable(_) | HttpError::Timeout(_) | HttpError::Protocol(_) => {
                PluginError::Unavailable(text)
            }
            HttpError::TooLarge(_) | HttpError::Invalid(_) => PluginError::Internal(text),
        }
    }
}

fn from_error_code(code: ErrorCode) -> HttpError {
    let text = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied => {
            HttpError::Denied("the destination is not in this plugin's `http` grant".to_string())
        }
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionLimitReached => HttpError::Unreachable(text),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout(text),
        ErrorCode::HttpResponseBodySize(_) => HttpError::TooLarge(text),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            HttpError::Invalid(text)
        }
        _ => HttpError::Protocol(text),
    }
}

/// An HTTP request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    max_response_bytes: usize,
}

/// What the service answered.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header of this name (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

impl Request {
    pub fn new(method: Method, url: &str) -> Request {
        Request {
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    pub fn get(url: &str) -> Request {
        Request::new(Method::Get, url)
    }

    pub fn post(url: &str) -> Request {
        Request::new(Method::Post, url)
    }

    pub fn put(url: &str) -> Request {
        Request::new(Method::Put, url)
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body and `Content-Type: application/json`.
    pub fn json(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self.header("content-type", "application/json")
    }

    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }

    /// How long to wait for the connection and for the answer to start. The
    /// node shortens it further to fit the call's deadline.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// The most of the body to accept; a longer answer is [`HttpError::TooLarge`].
    pub fn max_response_bytes(mut self, limit: usize) -> Request {
        self.max_response_bytes = limit;
        self
    }

    /// Sends the request and reads the whole answer.
    pub fn send(self) -> Result<Response, HttpError> {
        // Natively there is no node to send it: say so, instead of the
        // bindings aborting the whole test binary.
        if cfg!(not(target_family = "wasm")) {
            panic!(
                "outpost_sdk::http: {} was sent outside a node (a native test); test outbound \
                 HTTP with outpost-testkit, which runs the component in a node's sandbox",
                self.url
            );
        }
        let target = Target::parse(&self.url)?;
        let fields: Vec<(String, Vec<u8>)> = self.headers.clone();
        let headers =
            Fields::from_list(&fields).map_err(|e| HttpError::Invalid(format!("header: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let invalid = |what: &str| HttpError::Invalid(format!("{what} of {}", self.url));
        request
            .set_method(&self.method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&target.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(&target.path_and_query))
            .map_err(|()| invalid("path"))?;
        let body = request
            .body()
            .map_err(|()| HttpError::Protocol("request body taken twice".into()))?;
        let options = RequestOptions::new();
        if let Some(timeout) = self.timeout {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            // The node may refuse to let a guest set a timeout; its own
            // deadline-derived bounds apply either way.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
        }
        let pending = outgoing_handler::handle(request, Some(options)).map_err(from_error_code)?;
        let written = write_body(&body, &self.body)
            .and_then(|()| OutgoingBody::finish(body, None).map_err(from_error_code));
        if let Err(write_error) = written {
            // A refused connection shows first as a closed body stream; the
            // response future says what really happened.
            pending.subscribe().block();
            return Err(match pending.get() {
                Some(Ok(Err(code))) => from_error_code(code),
                _ => write_error,
            });
        }
        let response = loop {
            match pending.get() {
                Some(Ok(Ok(response))) => break response,
                Some(Ok(Err(code))) => return Err(from_error_code(code)),
                Some(Err(())) => {
                    return Err(HttpError::Protocol("the response was taken twice".into()));
                }
                None => pending.subscribe().block(),
            }
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::Protocol("the response body was taken twice".into()))?;
        let body = read_body(&incoming, self.max_response_bytes)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| HttpError::Protocol("the request body stream was taken twice".into()))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|error| match error {
                StreamError::LastOperationFailed(e) => HttpError::Protocol(e.to_debug_string()),
                StreamError::Closed => HttpError::Protocol("the service closed the request".into()),
            })?;
    }
    Ok(())
}

fn read_body(body: &IncomingBody, limit: usize) -> Result<Vec<u8>, HttpError> {
    let stream = body
        .stream()
        .map_err(|()| HttpError::Protocol("the response stream was taken twice".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(HttpError::TooLarge(format!(
                        "more than {limit} bytes of body"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                let text = error.to_debug_string();
                return Err(match wasip2::http::types::http_error_code(&error) {
                    Some(code) => from_error_code(code),
                    None => HttpError::Protocol(text),
                });
            }
        }
    }
    Ok(bytes)
}

/// A URL split into what `wasi:http` wants.
struct Target {
    scheme: Scheme,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HttpError> {
        let invalid = |why: &str| HttpError::Invalid(format!("{url:?}: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("not an absolute URL"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid("only http and https are supported")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid("the host is missing or carries credentials"));
        }
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        let path_and_query = path_and_query
            .split('#')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(Target {
            scheme,
            authority: authority.to_string(),
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_path() {
        let target = Target::parse("http://127.0.0.1:8080/v1/quotes?x=1#frag").expect("url");
        assert!(matches!(target.scheme, Scheme::Http));
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(target.path_and_query, "/v1/quotes?x=1");
        let bare = Target::parse("https://api.example").expect("url");
        assert_eq!(bare.path_and_query, "/");
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://user:pw@host/").is_err());
        assert!(Target::parse("/relative").is_err());
    }
}
