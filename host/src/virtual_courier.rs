//! A courier API that lives in the node's own process, on 127.0.0.1.
//!
//! `outpost demo` and the tests book shipments with it, so that a machine
//! with no network shows the whole path: quote, booking, the courier going
//! down, the outbox holding the booking, delivery when it is back. It speaks
//! the JSON API the reference courier adapter expects (see
//! `plugins/courier/src/wire.rs`) and can be told to misbehave:
//!
//! - [`Behaviour::Down`]: the port is closed, connections are refused;
//! - [`Behaviour::Failing`]: every request gets the given 5xx;
//! - [`Behaviour::Slow`]: every answer waits first;
//! - [`Behaviour::AnswersLate`]: requests take effect at once, the answer
//!   waits (a booking made whose confirmation a crash may lose);
//! - [`Behaviour::Dropping`]: connections are accepted and closed unanswered.
//!
//! It deduplicates bookings by `Idempotency-Key` as a real courier API does:
//! the same key with the same body gets the first answer again (200), with a
//! different body a 422. [`VirtualCourier::shipments`] reports what it booked
//! and every body each key arrived with, so tests can check "exactly once".

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Up,
    Down,
    Failing(u16),
    Slow(Duration),
    AnswersLate(Duration),
    Dropping,
}

/// One booking as the courier saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipment {
    pub idempotency_key: String,
    pub shipment_id: String,
    /// The body of the request that created it.
    pub request: Value,
    /// Every body a request with this key carried (retries included).
    pub bodies_seen: Vec<Value>,
    pub tracking_numbers: Vec<String>,
}

#[derive(Default)]
struct Books {
    shipments: BTreeMap<String, Shipment>,
    requests: u64,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    books: Mutex<Books>,
}

pub struct VirtualCourier {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for VirtualCourier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCourier")
            .field("address", &self.address)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VirtualCourier {
    /// Starts on `address` (port 0 picks a free one). Needs a Tokio runtime.
    pub async fn start(address: SocketAddr) -> std::io::Result<VirtualCourier> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour::Up),
            books: Mutex::new(Books::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(VirtualCourier {
            address,
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Changes how it behaves from the next connection on. Going `Down`
    /// closes the port; leaving `Down` opens it again on the same address.
    pub async fn set(&self, behaviour: Behaviour) -> std::io::Result<()> {
        let was = std::mem::replace(&mut *lock(&self.shared.behaviour), behaviour);
        if behaviour == Behaviour::Down && was != Behaviour::Down {
            let accept = lock(&self.accept).take();
            if let Some(accept) = accept {
                accept.abort();
                let _ = accept.await;
            }
        } else if was == Behaviour::Down && behaviour != Behaviour::Down {
            let listener = TcpListener::bind(self.address).await?;
            *lock(&self.accept) = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
        }
        Ok(())
    }

    /// Every booking made, by idempotency key.
    pub fn shipments(&self) -> Vec<Shipment> {
        lock(&self.shared.books)
            .shipments
            .values()
            .cloned()
            .collect()
    }

    /// Requests answered so far, of any kind.
    pub fn requests(&self) -> u64 {
        lock(&self.shared.books).requests
    }
}

impl Drop for VirtualCourier {
    fn drop(&mut self) {
        if let Some(accept) = lock(&self.accept).take() {
            accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let behaviour = *lock(&shared.behaviour);
        if behaviour == Behaviour::Dropping {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({ "error": message }))
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let behaviour = *lock(&shared.behaviour);
    lock(&shared.books).requests += 1;
    match behaviour {
        Behaviour::Failing(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return error(status, "the courier is having trouble; try again later");
        }
        Behaviour::Slow(wait) => tokio::time::sleep(wait).await,
        _ => {}
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let json: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(json) => json,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("not JSON: {e}")),
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (method, segments.as_slice()) {
        (Method::GET, ["v1", "health"]) => reply(StatusCode::OK, json!({ "status": "ok" })),
        (Method::POST, ["v1", "rates"]) => rates(&json),
        (Method::POST, ["v1", "shipments"]) => book(shared, key, json),
        (Method::GET, ["v1", "tracking", number]) => track(shared, number),
        (Method::DELETE, ["v1", "shipments", id]) => cancel(shared, id),
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    };
    if let Behaviour::AnswersLate(wait) = behaviour {
        tokio::time::sleep(wait).await;
    }
    response
}

fn total_weight(json: &Value) -> u64 {
    json["parcels"]
        .as_array()
        .map(|parcels| {
            parcels
                .iter()
                .filter_map(|p| p["weight_grams"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn rates(json: &Value) -> Response<Full<Bytes>> {
    let weight = total_weight(json);
    if weight == 0 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "parcels: no weight given");
    }
    let international = json["from"]["country"] != json["to"]["country"];
    let per_kg = |base: i64, rate: i64| {
        base + rate * i64::try_from(weight.div_ceil(1000)).unwrap_or(i64::MAX / 2)
    };
    let surcharge = if international { 900 } else { 0 };
    reply(
        StatusCode::OK,
        json!({
            "carrier": "outpost-sandbox",
            "valid_seconds": 3600,
            "rates": [
                { "service_code": "STD", "service_name": "Standard",
                  "price_minor": per_kg(450, 80) + surcharge, "currency": "EUR",
                  "transit_days_min": 2, "transit_days_max": 4 },
                { "service_code": "EXP", "service_name": "Express next day",
                  "price_minor": per_kg(900, 120) + surcharge, "currency": "EUR",
                  "transit_days_min": 1, "transit_days_max": 1 },
            ],
        }),
    )
}

fn confirmation(shipment: &Shipment) -> Value {
    let code = shipment.request["service_code"].as_str().unwrap_or("STD");
    json!({
        "shipment_id": shipment.shipment_id,
        "carrier": "outpost-sandbox",
        "service_code": code,
        "service_name": if code == "EXP" { "Express next day" } else { "Standard" },
        "tracking_numbers": shipment.tracking_numbers,
        "collection_at": null,
    })
}

fn book(shared: &Shared, key: Option<String>, json: Value) -> Response<Full<Bytes>> {
    let Some(key) = key else {
        return error(StatusCode::BAD_REQUEST, "Idempotency-Key header required");
    };
    let parcels = json["parcels"].as_array().map_or(0, Vec::len);
    if parcels == 0 || json["reference"].as_str().is_none_or(str::is_empty) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reference and parcels are required",
        );
    }
    if json["to"]["postal_code"].as_str() == Some("REFUSE") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "we do not deliver to that address",
        );
    }
    let mut books = lock(&shared.books);
    let next = books.shipments.len() + 1;
    if let Some(existing) = books.shipments.get_mut(&key) {
        existing.bodies_seen.push(json.clone());
        if existing.request != json {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different shipment",
            );
        }
        return reply(StatusCode::OK, confirmation(existing));
    }
    let shipment = Shipment {
        idempotency_key: key.clone(),
        shipment_id: format!("SHP{next:06}"),
        request: json.clone(),
        bodies_seen: vec![json],
        tracking_numbers: (0..parcels)
            .map(|parcel| format!("OP{next:07}{:02}", parcel + 1))
            .collect(),
    };
    let body = confirmation(&shipment);
    books.shipments.insert(key, shipment);
    reply(StatusCode::CREATED, body)
}

fn track(shared: &Shared, number: &str) -> Response<Full<Bytes>> {
    let books = lock(&shared.books);
    let found = books
        .shipments
        .values()
        .any(|s| s.tracking_numbers.iter().any(|t| t == number));
    if !found {
        return error(StatusCode::NOT_FOUND, "unknown tracking number");
    }
    let now = crate::clock::now_seconds();
    reply(
        StatusCode::OK,
        json!({
            "tracking_number": number,
            "status": "pre-transit",
            "events": [{ "at": now, "status": "pre-transit", "location": "Sandbox depot",
                         "description": "Shipment booked; awaiting collection" }],
            "estimated_delivery": now + 2 * 86_400,
        }),
    )
}

fn cancel(shared: &Shared, id: &str) -> Response<Full<Bytes>> {
    let mut books = lock(&shared.books);
    let key = books
        .shipments
        .iter()
        .find(|(_, s)| s.shipment_id == id)
        .map(|(k, _)| k.clone());
    match key {
        Some(key) => {
            books.shipments.remove(&key);
            let mut response = reply(StatusCode::NO_CONTENT, Value::Null);
            *response.body_mut() = Full::new(Bytes::new());
            response
        }
        None => error(StatusCode::NOT_FOUND, "unknown shipment"),
    }
}
