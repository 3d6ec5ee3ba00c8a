//! A stand-in for the central team's event endpoint, on 127.0.0.1: it keeps
//! every event it accepts and can be told to refuse the next few.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Seen {
    /// (Idempotency-Key header, body) of every request, refused or not.
    requests: Vec<(String, Value)>,
    refuse: u32,
}

pub struct VirtualCentre {
    url: String,
    seen: Arc<Mutex<Seen>>,
    accept: tokio::task::JoinHandle<()>,
}

impl VirtualCentre {
    pub async fn start() -> VirtualCentre {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/v1/events",
            listener.local_addr().expect("address")
        );
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(take(&shared, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        VirtualCentre { url, seen, accept }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers the next `count` requests with 503.
    pub fn refuse_next(&self, count: u32) {
        self.lock().refuse = count;
    }

    /// Every request so far: (Idempotency-Key, body).
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for VirtualCentre {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn take(seen: &Mutex<Seen>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = {
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.requests.push((key, json));
        if seen.refuse > 0 {
            seen.refuse -= 1;
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::ACCEPTED
        }
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    *response.status_mut() = status;
    response
}
