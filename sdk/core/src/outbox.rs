//! Requests the node delivers for this plugin, durably, when the destination
//! answers.
//!
//! Needs `outbox` under `[grants]` in `plugin.toml`:
//!
//! ```toml
//! [grants]
//! outbox = { destinations = ["https://api.courier.example"], max-pending = 500 }
//! ```
//!
//! [`enqueue`] returns once the message is on disk. The node sends it with the
//! idempotency key as the `Idempotency-Key` header, retries with backoff while
//! the destination is down, and keeps the answer; [`status`] reads it back by
//! key. Pick keys from what the message is about (a booking reference), not
//! at random: enqueueing the same key and message twice is harmless.

#[cfg(target_family = "wasm")]
use crate::bindings::outpost::host::outbox as host;
// Natively (a vendor's `cargo test`) there is no node: the in-memory host.
pub use crate::bindings::outpost::host::outbox::{
    Delivery, DeliveryState, Message, Method, OutboxError,
};
#[cfg(not(target_family = "wasm"))]
use crate::testing::outbox as host;
use crate::types::PluginError;

/// Queues `message`; returns its id once it is durably stored.
pub fn enqueue(message: &Message) -> Result<u64, OutboxError> {
    host::enqueue(message)
}

/// A JSON `POST` to `destination`.
pub fn post_json(destination: &str, payload: Vec<u8>, idempotency_key: &str) -> Message {
    Message {
        destination: destination.to_string(),
        method: Method::Post,
        content_type: "application/json".to_string(),
        payload,
        idempotency_key: idempotency_key.to_string(),
    }
}

/// The message this plugin queued under `idempotency_key`, if any, and
/// where its delivery stands.
pub fn status(idempotency_key: &str) -> Result<Option<Delivery>, OutboxError> {
    host::status(idempotency_key)
}

/// A sentence for a log line or an error message.
pub fn describe(error: &OutboxError) -> String {
    match error {
        OutboxError::Denied(why) => format!("outbox destination not granted: {why}"),
        OutboxError::Conflict(id) => format!(
            "the idempotency key was already used for a different message (outbox entry {id})"
        ),
        OutboxError::QuotaExceeded(limit) => {
            format!("the outbox already holds {limit} undelivered messages for this plugin")
        }
        OutboxError::Invalid(why) => format!("invalid outbox message: {why}"),
        OutboxError::Unavailable(why) => format!("outbox unavailable: {why}"),
    }
}

impl From<OutboxError> for PluginError {
    fn from(error: OutboxError) -> Self {
        let text = describe(&error);
        match error {
            OutboxError::Denied(_) => PluginError::Denied(text),
            OutboxError::Conflict(_) => PluginError::InvalidInput(text),
            OutboxError::QuotaExceeded(_) | OutboxError::Unavailable(_) => {
                PluginError::Unavailable(text)
            }
            OutboxError::Invalid(_) => PluginError::Internal(text),
        }
    }
}
