//! Prometheus remote write 1.0 on the wire: a `WriteRequest` protobuf,
//! compressed with snappy's block format, POSTed with the protocol's
//! headers. Any Prometheus-compatible store takes it (Prometheus with
//! `--web.enable-remote-write-receiver`, Thanos, Mimir, VictoriaMetrics).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::time::Duration;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Taken (2xx).
    Taken,
    /// Refused for good (400: out of order, duplicate, malformed; 413: too
    /// large): sending it again cannot help.
    Refused(String),
    /// Not taken now: the network, the store's trouble (5xx, 429) or its
    /// configuration (401, 403, 404). Try again later.
    NotNow(String),
}

/// Sends `messages` (uncompressed `WriteRequest`s, which protobuf lets us
/// join by concatenation) as one request to `url`. Returns how it ended
/// and the bytes that went on the wire.
pub async fn push(url: &str, messages: &[&[u8]], timeout: Duration) -> (Pushed, usize) {
    let joined: Vec<u8> = messages.concat();
    let compressed = match snap::raw::Encoder::new().compress_vec(&joined) {
        Ok(compressed) => compressed,
        Err(error) => return (Pushed::Refused(format!("cannot compress: {error}")), 0),
    };
    let size = compressed.len();
    (send(url, compressed, timeout).await, size)
}

async fn send(url: &str, body: Vec<u8>, timeout: Duration) -> Pushed {
    let uri: hyper::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(error) => return Pushed::NotNow(format!("{url} is not a URL: {error}")),
    };
    let Some(authority) = uri.authority().map(|a| a.to_string()) else {
        return Pushed::NotNow(format!("{url} names no host"));
    };
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = hyper::Request::builder()
        .method("POST")
        .uri(uri)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/x-protobuf")
        .header(hyper::header::CONTENT_ENCODING, "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header(
            hyper::header::USER_AGENT,
            concat!("outpost/", env!("CARGO_PKG_VERSION")),
        )
        .body(body);
    let request = match request {
        Ok(request) => request,
        Err(error) => return Pushed::NotNow(format!("cannot build the request: {error}")),
    };
    let options = wasmtime_wasi_http::RequestOptions {
        connect_timeout: Some(timeout),
        first_byte_timeout: Some(timeout),
        between_bytes_timeout: Some(timeout),
    };
    let sent = tokio::time::timeout(
        timeout,
        wasmtime_wasi_http::default_send_request(request, Some(options)),
    )
    .await;
    let (response, connection) = match sent {
        Ok(Ok(sent)) => sent,
        Ok(Err(error)) => return Pushed::NotNow(format!("{url}: {error}")),
        Err(_) => return Pushed::NotNow(format!("{url}: no answer within {timeout:?}")),
    };
    let driver = tokio::spawn(connection);
    let status = response.status().as_u16();
    let answer = Limited::new(response.into_body(), 4096)
        .collect()
        .await
        .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_string())
        .unwrap_or_default();
    driver.abort();
    match status {
        200..=299 => Pushed::Taken,
        // Malformed or unwanted samples, or a request the store will never
        // take whole: sending them again cannot help.
        400 | 413 => Pushed::Refused(format!("{url} answered {status}: {answer}")),
        _ => Pushed::NotNow(format!("{url} answered {status}: {answer}")),
    }
}
