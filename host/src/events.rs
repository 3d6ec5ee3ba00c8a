//! What the node tells the centre: its own events (a card tokenized, a sale
//! approved offline, a courier booked, a label printed), carried by the
//! outbox so they survive a day without network and a `kill -9`.
//!
//! Each event is one JSON POST to `centre.events-url`:
//!
//! ```json
//! {"event_id": "9f…", "type": "payment.tokenized", "node_id": "3c…",
//!  "occurred_at_ms": 1795478000000, "data": {"brand": "visa", …}}
//! ```
//!
//! `event_id` is also the message's `Idempotency-Key`, so the centre can drop
//! a repeat after a crash mid-delivery. Events carry what the centre needs to
//! reconcile and nothing more: a payment event has the token, brand and last
//! four digits, never the card number (the node never had it past the
//! tokenizer call).
//!
//! An event is part of what a route promises: a route answers 2xx only once
//! its event is committed, and answers 503 naming the disk when it could not
//! be (see [`EventNotKept`]). The node's own events have no count quota, so a
//! week offline never turns sales away; the disk they fill is protected by
//! the free-space reserve plugins cannot use (`policy.disk-reserve-mib`).

use crate::outbox::{NODE_OWNER, Outbox};
use crate::store::{EnqueueError, NewMessage, NodeStore, OutboxMethod};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// The node's own events, or nothing when no centre is configured.
pub struct CentreEvents {
    outbox: Arc<Outbox>,
    store: Arc<NodeStore>,
    url: Option<String>,
    node_id: OnceLock<String>,
}

/// An event that could not be committed: the operation it describes must
/// not be reported as done.
#[derive(Debug, thiserror::Error)]
#[error(
    "the node could not store its {kind} record ({source}), so it does not answer success. Free \
     space on the disk that holds the node's data directory, then retry (with the same booking \
     reference: the plugin's part may already have happened)"
)]
pub struct EventNotKept {
    pub kind: &'static str,
    pub source: EnqueueError,
}

impl std::fmt::Debug for CentreEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CentreEvents")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if let Err(error) = getrandom::fill(&mut bytes) {
        // Without randomness the id is still unique enough per node: the
        // clock in nanoseconds and a counter.
        tracing::warn!("no randomness for an event id ({error}); using the clock");
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
        bytes[8..].copy_from_slice(&count.to_le_bytes());
    }
    hex::encode(bytes)
}

impl CentreEvents {
    pub fn new(outbox: Arc<Outbox>, store: Arc<NodeStore>, url: Option<String>) -> CentreEvents {
        CentreEvents {
            outbox,
            store,
            url,
            node_id: OnceLock::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    fn node_id(&self) -> String {
        if let Some(id) = self.node_id.get() {
            return id.clone();
        }
        match self.store.node_id(random_hex) {
            Ok(id) => self.node_id.get_or_init(|| id).clone(),
            Err(error) => {
                tracing::warn!("cannot read this node's id: {error}");
                "unknown".to_string()
            }
        }
    }

    /// Queues one event durably; returns its id, or `None` when no centre is
    /// configured. Blocks on the commit: call it off async tasks.
    pub fn record(&self, kind: &'static str, data: Value) -> Result<Option<String>, EventNotKept> {
        let Some(url) = self.url.as_ref() else {
            return Ok(None);
        };
        let event_id = random_hex();
        let payload = json!({
            "event_id": event_id,
            "type": kind,
            "node_id": self.node_id(),
            "occurred_at_ms": crate::clock::now_millis(),
            "data": data,
        });
        let message = NewMessage {
            owner: NODE_OWNER.to_string(),
            destination: url.clone(),
            method: OutboxMethod::Post,
            content_type: "application/json".to_string(),
            payload: payload.to_string().into_bytes(),
            idempotency_key: event_id.clone(),
            max_pending: u32::MAX,
            max_kept_bytes: u64::MAX,
        };
        match self.outbox.enqueue(message) {
            Ok(_) => Ok(Some(event_id)),
            Err(source) => Err(EventNotKept { kind, source }),
        }
    }

    /// [`record`](Self::record) from async code, on the blocking pool.
    /// Callers check [`enabled`](Self::enabled) first, so that a node without
    /// a centre does not build the event at all.
    pub async fn record_async(
        self: &Arc<Self>,
        kind: &'static str,
        data: Value,
    ) -> Result<(), EventNotKept> {
        if !self.enabled() {
            return Ok(());
        }
        let events = self.clone();
        match tokio::task::spawn_blocking(move || events.record(kind, data)).await {
            Ok(recorded) => recorded.map(drop),
            // Shutting down: the request is being dropped anyway.
            Err(stopped) if stopped.is_cancelled() => Ok(()),
            Err(_) => Err(EventNotKept {
                kind,
                source: EnqueueError::Unavailable("recording it failed unexpectedly".into()),
            }),
        }
    }
}

/// The event for a successful plugin call through the API, if it is one the
/// centre wants: `function` is the route's function, `subject` the id a path
/// named (a booking id), `result` the answer.
pub fn for_call(
    function: &str,
    plugin: &str,
    subject: Option<&str>,
    result: &Value,
) -> Option<(&'static str, Value)> {
    match function {
        "tokenizer.tokenize" => {
            let token = &result["token"];
            Some((
                "payment.tokenized",
                json!({
                    "plugin": plugin,
                    "token": token["token"],
                    "brand": token["brand"],
                    "last_four": token["last_four"],
                }),
            ))
        }
        "tokenizer.authorize-offline" => Some((
            "payment.authorized-offline",
            json!({ "plugin": plugin, "decision": result["decision"] }),
        )),
        "courier.book" => {
            let booking = &result["booking"];
            Some((
                "shipment.booked",
                json!({
                    "plugin": plugin,
                    "booking_id": booking["booking_id"],
                    "state": booking["state"],
                    "carrier": booking["carrier"],
                    "tracking_numbers": booking["tracking_numbers"],
                }),
            ))
        }
        "courier.cancel" => Some((
            "shipment.cancelled",
            json!({ "plugin": plugin, "booking_id": subject }),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_events_carry_the_token_and_never_more_of_the_card() {
        let result = json!({ "token": { "token": "1367520643311111", "brand": "visa",
            "last_four": "1111", "expiry_month": 12, "expiry_year": 2030 } });
        let (kind, data) = for_call(
            "tokenizer.tokenize",
            "outpost/card-tokenizer",
            None,
            &result,
        )
        .expect("an event");
        assert_eq!(kind, "payment.tokenized");
        assert_eq!(data["last_four"], "1111");
        assert!(data.get("expiry_month").is_none());
        assert!(for_call("forecasting.forecast", "x/y", None, &json!({})).is_none());
    }

    #[test]
    fn events_are_queued_once_each_with_their_id_as_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(NodeStore::open(&dir.path().join("node.redb")).expect("store"));
        let outbox = Arc::new(Outbox::new(store.clone()));
        let off = CentreEvents::new(outbox.clone(), store.clone(), None);
        assert_eq!(
            off.record("label.printed", json!({}))
                .expect("nothing to keep"),
            None
        );

        let events = CentreEvents::new(
            outbox,
            store.clone(),
            Some("http://127.0.0.1:9/v1/events".into()),
        );
        let first = events
            .record("label.printed", json!({"bytes": 10}))
            .expect("kept");
        let second = events
            .record("label.printed", json!({"bytes": 10}))
            .expect("kept");
        assert_ne!(first, second);
        let entries = store.outbox_list(None, 10).expect("list");
        assert_eq!(entries.len(), 2);
        for entry in &entries {
            assert_eq!(entry.owner, NODE_OWNER);
            let payload = store
                .outbox_payload(entry.id)
                .expect("read")
                .expect("payload");
            let payload: Value = serde_json::from_slice(&payload).expect("json");
            assert_eq!(payload["event_id"], entry.idempotency_key.as_str());
            assert_eq!(payload["type"], "label.printed");
            assert_eq!(payload["node_id"].as_str().map(str::len), Some(32));
        }
        // The node id is stable.
        assert_eq!(
            store.node_id(|| "other".into()).expect("id"),
            events.node_id()
        );
    }
}
