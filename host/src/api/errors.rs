//! How every failure becomes an HTTP response.
//!
//! The status says whose problem it is and what a client can do: 400 and 422
//! mean fix the request, 401 the token, 404 the name; 502 and 503 mean a
//! printer or plugin is not reachable or not ready (try again later), 504 that
//! a plugin ran out of time, 500 that a plugin failed. The JSON body names a
//! stable `code` for programs and a `message` for people.

use crate::call::{CallError, CallFailure, PluginFailure};
use crate::printing::PrintError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this route takes {0}")]
    MethodNotAllowed(&'static str),
    #[error("send JSON, with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than {} KiB", super::MAX_BODY_BYTES >> 10)]
    TooLarge,
    #[error("cannot read the body: {0}")]
    BadBody(String),
    #[error("the body did not arrive within {}ms", .0.as_millis())]
    SlowBody(std::time::Duration),
    #[error("the body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{field}: {message}")]
    BadField { field: String, message: String },
    #[error("{0}")]
    BadQuery(String),
    /// The request is fine but the thing it names is in the wrong state.
    #[error("{0}")]
    Conflict(String),
    /// The node will not do it: a release that fails its checks, a bad
    /// signature (admin routes).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Print(#[from] PrintError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(
        "no {kind} plugin is loaded; install one (`outpost plugin add`), or set {setting} in \
         outpost.toml, or name one with \"plugin\""
    )]
    NoPlugin {
        kind: &'static str,
        setting: &'static str,
    },
    #[error("plugin {plugin} is installed but unavailable: {reason}")]
    PluginUnavailable { plugin: String, reason: String },
    #[error(transparent)]
    Call(CallError),
    #[error(
        "plugin {plugin}: its answer was ready only after its {}ms deadline (too large to \
         convert in time), so it was dropped",
        .deadline.as_millis()
    )]
    AnsweredLate {
        plugin: String,
        deadline: std::time::Duration,
    },
    /// A tokenizer put the card it was given where it must not; the message
    /// names the plugin, the call and the route, never the card.
    #[error("{0}")]
    CardData(String),
    #[error("the plugin does not export what its world promises: {0}")]
    PluginContract(String),
    #[error("the node database failed: {0}")]
    Store(String),
    /// What the route promised could not be committed (a full disk).
    #[error(transparent)]
    NotKept(#[from] crate::events::EventNotKept),
}

fn call_status(failure: &CallFailure) -> (StatusCode, &'static str) {
    match failure {
        CallFailure::Plugin(PluginFailure::InvalidInput(_)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input")
        }
        CallFailure::Plugin(PluginFailure::Denied(_)) => (StatusCode::FORBIDDEN, "denied"),
        CallFailure::Plugin(PluginFailure::Unavailable(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "plugin-unavailable")
        }
        CallFailure::Plugin(PluginFailure::Internal(_)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "plugin-internal-error")
        }
        CallFailure::DeadlineExceeded(_) => (StatusCode::GATEWAY_TIMEOUT, "plugin-deadline"),
        CallFailure::Start(_) => (StatusCode::SERVICE_UNAVAILABLE, "plugin-not-started"),
        CallFailure::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "plugin-busy"),
        CallFailure::Replaced => (StatusCode::SERVICE_UNAVAILABLE, "plugin-replaced"),
        CallFailure::DiskReserve(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable"),
        CallFailure::MemoryLimit { .. }
        | CallFailure::FuelExhausted(_)
        | CallFailure::Panicked(_)
        | CallFailure::Exited(_)
        | CallFailure::Trapped(_)
        | CallFailure::TooMuchData { .. }
        | CallFailure::ScratchQuota { .. }
        | CallFailure::ScratchUnmeasured(_) => (StatusCode::INTERNAL_SERVER_ERROR, "plugin-failed"),
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "bad-body"),
            ApiError::SlowBody(_) => (StatusCode::REQUEST_TIMEOUT, "body-timeout"),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "invalid-json"),
            ApiError::BadField { .. } => (StatusCode::BAD_REQUEST, "invalid-field"),
            ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "invalid-query"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "refused"),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting-down"),
            ApiError::NoPlugin { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no-plugin"),
            ApiError::PluginUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "plugin-unavailable")
            }
            ApiError::Call(error) => call_status(&error.failure),
            ApiError::PluginContract(_) => (StatusCode::INTERNAL_SERVER_ERROR, "plugin-contract"),
            ApiError::AnsweredLate { .. } => (StatusCode::GATEWAY_TIMEOUT, "plugin-deadline"),
            ApiError::CardData(_) => (StatusCode::BAD_GATEWAY, "plugin-leaked-card"),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            ApiError::NotKept(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable"),
            ApiError::Print(error) => match error {
                PrintError::BadDriverId(_) => (StatusCode::BAD_REQUEST, "invalid-field"),
                PrintError::UnknownDriver(_) => (StatusCode::NOT_FOUND, "unknown-driver"),
                PrintError::UnknownPrinter { .. } => (StatusCode::NOT_FOUND, "unknown-printer"),
                PrintError::NotADriver { .. } => (StatusCode::BAD_REQUEST, "not-a-printer-driver"),
                PrintError::NoDefaultDriver { .. } => (StatusCode::BAD_REQUEST, "no-driver"),
                PrintError::NoDefaultPrinter { .. } => (StatusCode::BAD_REQUEST, "no-printer"),
                PrintError::DriverUnavailable { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "driver-unavailable")
                }
                PrintError::Call(error) => call_status(&error.failure),
                PrintError::Transport { .. } => (StatusCode::BAD_GATEWAY, "printer-unreachable"),
                PrintError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting-down"),
            },
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let (status, code) = self.status_and_code();
        let mut error = json!({ "code": code, "message": self.to_string() });
        match &self {
            ApiError::BadField { field, .. } if !field.is_empty() => {
                error["field"] = json!(field);
            }
            ApiError::Print(PrintError::Call(call)) | ApiError::Call(call) => {
                error["plugin"] = json!(call.plugin.as_str());
                error["plugin_version"] = json!(call.version.to_string());
                error["call_id"] = json!(call.call_id);
            }
            _ => {}
        }
        let mut response = super::json_response(status, &json!({ "error": error }));
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed(allowed) => {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allowed));
            }
            ApiError::Call(call) | ApiError::Print(PrintError::Call(call))
                if matches!(call.failure, CallFailure::Busy(_) | CallFailure::Replaced) =>
            {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
