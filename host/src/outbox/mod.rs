//! The outbox: messages the node has promised to deliver.
//!
//! Plugins (through `capabilities::outbox`) and the node itself (its events
//! for the centre) enqueue messages; [`Outbox::enqueue`] returns once the
//! message is committed durably. The delivery worker ([`delivery`]) sends
//! what is due, records each answer, and backs off while a destination is
//! down. State lives in the node database (`store::outbox`), so a restart, or
//! a `kill -9` at any moment, loses nothing that was acknowledged: an attempt
//! cut short is simply made again, with the same payload and idempotency key.
//!
//! Durable commits cost a disk flush each, so concurrent enqueuers share
//! them: whoever finds no commit running takes every message waiting at that
//! moment and commits them together (group commit); the others wait for that
//! commit and take their results from it.

pub mod delivery;

use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::store::{
    AttemptOutcome, EnqueueError, Enqueued, NewMessage, NodeStore, OutboxEntry, StoreError,
};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

/// The largest payload a message may carry.
pub const MAX_PAYLOAD_BYTES: usize = 256 << 10;
/// The longest idempotency key.
pub const MAX_KEY_BYTES: usize = 128;
/// The owner name of the node's own messages.
pub const NODE_OWNER: &str = "node";

/// Why a message was not accepted before it reached the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageRefusal {
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Invalid(String),
}

/// Checks a message against the rules in `outpost:host/outbox` and the
/// destinations its owner may use.
pub fn check_message(message: &NewMessage, allowed: &[Origin]) -> Result<(), MessageRefusal> {
    let key = &message.idempotency_key;
    if key.is_empty()
        || key.len() > MAX_KEY_BYTES
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(MessageRefusal::Invalid(format!(
            "idempotency-key must be 1 to {MAX_KEY_BYTES} printable ASCII characters"
        )));
    }
    if message.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(MessageRefusal::Invalid(format!(
            "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
            message.payload.len()
        )));
    }
    let content_type = &message.content_type;
    if content_type.is_empty()
        || content_type.len() > 200
        || !content_type
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(MessageRefusal::Invalid(
            "content-type must be 1 to 200 printable ASCII characters".into(),
        ));
    }
    let origin = Origin::of_url(&message.destination).map_err(MessageRefusal::Invalid)?;
    if hyper::Uri::try_from(message.destination.as_str()).is_err() {
        return Err(MessageRefusal::Invalid(format!(
            "destination {:?} is not a valid URL",
            message.destination
        )));
    }
    if !allowed.contains(&origin) {
        return Err(MessageRefusal::Denied(format!(
            "{origin} is not among the outbox destinations granted ({})",
            allowed
                .iter()
                .map(Origin::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// Entries due now with their payloads, and when the first pending entry
/// falls due.
pub(crate) type Due = (Vec<(OutboxEntry, Vec<u8>)>, Option<u64>);

struct Queue {
    waiting: Vec<(u64, NewMessage)>,
    results: HashMap<u64, Result<Enqueued, EnqueueError>>,
    committing: bool,
    next_ticket: u64,
}

pub struct Outbox {
    store: Arc<NodeStore>,
    queue: Mutex<Queue>,
    committed: Condvar,
    /// Wakes the delivery worker when something new is due.
    wake: tokio::sync::Notify,
    /// Notified when a delivery got an answer (any status): a sign the
    /// network is back, for whoever waits for it (the update agent).
    pub network_answered: tokio::sync::Notify,
    /// Where attempts are counted.
    pub(crate) metrics: Arc<Metrics>,
    /// Cut during a drill: deliveries wait (see `network`).
    network: Arc<crate::network::Network>,
    #[cfg(test)]
    pub(crate) test_seams: TestSeams,
}

/// What the worker's tests control: the wall clock, and whether the
/// database fails. Neither a clock jump nor a full disk can be arranged on
/// demand on a shared machine.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestSeams {
    /// Added to the wall clock, in milliseconds.
    pub clock_offset_ms: std::sync::atomic::AtomicI64,
    /// Makes the worker's reads of the queue fail.
    pub fail_reads: std::sync::atomic::AtomicBool,
    /// When the worker read the queue, or tried to.
    pub reads: Mutex<Vec<tokio::time::Instant>>,
    /// Makes the recording of attempts fail.
    pub fail_records: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
fn injected_failure() -> StoreError {
    StoreError::Database(redb::Error::Io(std::io::Error::from_raw_os_error(28)))
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(store: Arc<NodeStore>) -> Outbox {
        Outbox {
            store,
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                results: HashMap::new(),
                committing: false,
                next_ticket: 0,
            }),
            committed: Condvar::new(),
            wake: tokio::sync::Notify::new(),
            network_answered: tokio::sync::Notify::new(),
            metrics: Arc::new(Metrics::new()),
            network: Arc::default(),
            #[cfg(test)]
            test_seams: TestSeams::default(),
        }
    }

    /// Holds deliveries while `network` is cut (the node's).
    pub fn on_network(mut self, network: Arc<crate::network::Network>) -> Outbox {
        self.network = network;
        self
    }

    pub fn network(&self) -> &crate::network::Network {
        &self.network
    }

    /// Counts attempts in `metrics` (the node's) instead of its own.
    pub fn metered(mut self, metrics: Arc<Metrics>) -> Outbox {
        self.metrics = metrics;
        self
    }

    /// The wall clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        #[cfg(test)]
        let now = crate::clock::now_millis().saturating_add_signed(
            self.test_seams
                .clock_offset_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        #[cfg(not(test))]
        let now = crate::clock::now_millis();
        now
    }

    /// Pending entries due by `now_ms`, with payloads, and when the first
    /// pending entry falls due.
    pub(crate) fn due(&self, now_ms: u64, limit: usize) -> Result<Due, StoreError> {
        #[cfg(test)]
        self.test_seams
            .reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tokio::time::Instant::now());
        #[cfg(test)]
        if self
            .test_seams
            .fail_reads
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(injected_failure());
        }
        let due = self.store.outbox_due(now_ms, limit)?;
        let next = self.store.outbox_next_due()?;
        Ok((due, next))
    }

    /// Records an attempt (see [`NodeStore::outbox_record`]).
    pub(crate) fn record(
        &self,
        id: u64,
        outcome: AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        #[cfg(test)]
        if self
            .test_seams
            .fail_records
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(injected_failure());
        }
        self.store.outbox_record(id, outcome, now_ms)
    }

    pub fn store(&self) -> &NodeStore {
        &self.store
    }

    /// Enqueues one message, durably, sharing the commit with any other
    /// enqueuers waiting at the same time. Blocks; call it off async tasks.
    pub fn enqueue(&self, message: NewMessage) -> Result<Enqueued, EnqueueError> {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, message));
        loop {
            if let Some(result) = queue.results.remove(&ticket) {
                return result;
            }
            if queue.committing {
                queue = self
                    .committed
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            queue.committing = true;
            let batch = std::mem::take(&mut queue.waiting);
            drop(queue);
            let (tickets, messages): (Vec<u64>, Vec<NewMessage>) = batch.into_iter().unzip();
            let outcome = self.commit(&messages);
            queue = self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match outcome {
                Ok(results) => queue.results.extend(tickets.into_iter().zip(results)),
                Err(error) => {
                    let text = error.to_string();
                    queue.results.extend(
                        tickets
                            .into_iter()
                            .map(|t| (t, Err(EnqueueError::Unavailable(text.clone())))),
                    );
                }
            }
            queue.committing = false;
            self.committed.notify_all();
        }
    }

    /// Enqueues `messages` in one durable commit, each with its own result.
    pub fn enqueue_batch(
        &self,
        messages: &[NewMessage],
    ) -> Result<Vec<Result<Enqueued, EnqueueError>>, StoreError> {
        self.commit(messages)
    }

    fn commit(
        &self,
        messages: &[NewMessage],
    ) -> Result<Vec<Result<Enqueued, EnqueueError>>, StoreError> {
        let results = self.store.outbox_enqueue(messages, self.now_ms())?;
        if results.iter().any(|r| matches!(r, Ok(e) if e.created)) {
            self.wake.notify_one();
        }
        Ok(results)
    }

    /// Tells the delivery worker to look again now (after a retry, say).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}
