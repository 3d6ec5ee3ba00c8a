//! Outbound HTTP: `wasi:http/outgoing-handler` with a per-plugin allow-list.
//!
//! Granted by `http = ["scheme://host:port", ...]` in the manifest. The
//! protocol work is wasmtime-wasi-http's; this module decides, for every
//! request, whether it may go and how long it may take:
//!
//! - its origin must be in the grant, or it fails with `HTTP-request-denied`
//!   before any connection is made. The client does not follow redirects, so
//!   a redirect is a new request from the plugin, checked again here;
//! - its connect, first-byte and between-bytes timeouts are clamped to the
//!   node's `policy.http-timeout-ms` and to the time left before the call's
//!   deadline, because a guest blocked in the host is out of reach of the
//!   epoch interrupt (as with sleeps, see `clocks`);
//! - its answer is cut at `policy.http-max-response-bytes`: a longer body
//!   fails with `HTTP-response-body-size`, whatever the headers claimed.

use crate::origin::Origin;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks,
};

/// The node's limits on outbound HTTP, from its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub timeout: Duration,
    pub max_response_bytes: u64,
}

pub struct HttpState {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: HttpHooks,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("allowed", &self.hooks.allowed)
            .finish()
    }
}

impl HttpState {
    pub fn new(
        allowed: Arc<[Origin]>,
        limits: HttpLimits,
        wake_by: Instant,
        network: Arc<crate::network::Network>,
    ) -> HttpState {
        HttpState {
            ctx: WasiHttpCtx::new(),
            hooks: HttpHooks {
                allowed,
                limits,
                wake_by,
                network,
            },
        }
    }
}

pub struct HttpHooks {
    allowed: Arc<[Origin]>,
    limits: HttpLimits,
    wake_by: Instant,
    network: Arc<crate::network::Network>,
}

impl HttpHooks {
    /// Whether a request to `uri` may go, and if not, why (for the log).
    fn check(&self, uri: &hyper::Uri) -> Result<(), String> {
        let origin = Origin::of_url(&uri.to_string())?;
        if self.allowed.contains(&origin) {
            Ok(())
        } else if self.allowed.is_empty() {
            Err(format!("{origin}: this plugin has no http grant"))
        } else {
            Err(format!("{origin} is not in the plugin's http grant"))
        }
    }

    /// The request's own timeouts, none longer than policy or the deadline.
    fn clamp(&self, options: Option<RequestOptions>) -> RequestOptions {
        let remaining = self.wake_by.saturating_duration_since(Instant::now());
        let bound = self
            .limits
            .timeout
            .min(remaining)
            .max(Duration::from_millis(1));
        let clamp = |asked: Option<Duration>| Some(asked.map_or(bound, |a| a.min(bound)));
        let options = options.unwrap_or_default();
        RequestOptions {
            connect_timeout: clamp(options.connect_timeout),
            first_byte_timeout: clamp(options.first_byte_timeout),
            between_bytes_timeout: clamp(options.between_bytes_timeout),
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    hyper::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        if let Err(why) = self.check(request.uri()) {
            tracing::warn!(target: "outpost::http", "outbound request denied: {why}");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        // A drill: the line is down, as far as the plugin can tell.
        if self.network.is_cut() {
            tracing::debug!(target: "outpost::http", uri = %request.uri(), "drill: refused");
            return Box::new(async { Err(HttpError::ConnectionRefused) });
        }
        let options = self.clamp(options);
        let limit = self.limits.max_response_bytes;
        tracing::debug!(target: "outpost::http", uri = %request.uri(), "outbound request");
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let declared = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > limit) {
                return Err(HttpError::HttpResponseBodySize(declared));
            }
            let cap = usize::try_from(limit).unwrap_or(usize::MAX);
            let response = response.map(|body| {
                Limited::new(body, cap)
                    .map_err(move |error| match error.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(_) => HttpError::HttpResponseBodySize(Some(limit)),
                    })
                    .map_frame(|frame| frame.map_data(Bytes::from))
                    .boxed_unsync()
            });
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(allowed: &[&str], wake_in: Duration) -> HttpHooks {
        HttpHooks {
            allowed: allowed
                .iter()
                .map(|o| Origin::parse(o).expect("origin"))
                .collect(),
            limits: HttpLimits {
                timeout: Duration::from_secs(10),
                max_response_bytes: 1024,
            },
            wake_by: Instant::now() + wake_in,
            network: Arc::default(),
        }
    }

    #[test]
    fn only_granted_origins_pass() {
        let hooks = hooks(&["http://127.0.0.1:8080"], Duration::from_secs(1));
        let uri = |text: &str| text.parse::<hyper::Uri>().expect("uri");
        assert!(hooks.check(&uri("http://127.0.0.1:8080/v1/quotes")).is_ok());
        assert!(hooks.check(&uri("http://127.0.0.1:8081/")).is_err());
        assert!(hooks.check(&uri("https://127.0.0.1:8080/")).is_err());
        assert!(hooks.check(&uri("http://localhost:8080/")).is_err());
    }

    #[test]
    fn timeouts_never_outlast_the_deadline() {
        let hooks = hooks(&[], Duration::from_millis(200));
        let options = hooks.clamp(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(60)),
            first_byte_timeout: Some(Duration::from_millis(50)),
            between_bytes_timeout: None,
        }));
        assert!(options.connect_timeout <= Some(Duration::from_millis(200)));
        assert_eq!(options.first_byte_timeout, Some(Duration::from_millis(50)));
        assert!(options.between_bytes_timeout <= Some(Duration::from_millis(200)));
    }
}
