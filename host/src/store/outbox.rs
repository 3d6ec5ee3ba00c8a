//! The outbox tables: messages waiting for delivery, and what became of them.
//!
//! | table              | key                     | value                          |
//! |--------------------|-------------------------|--------------------------------|
//! | `outbox`           | entry id                | JSON [`OutboxEntry`]           |
//! | `outbox_payloads`  | entry id                | the payload, never rewritten   |
//! | `outbox_responses` | entry id                | the last answer's body         |
//! | `outbox_keys`      | (owner, idempotency key)| entry id                       |
//! | `outbox_due`       | (due time ms, entry id) | () — pending entries only      |
//! | `outbox_owed`      | owner                   | undelivered entries (quota)    |
//! | `outbox_kept`      | owner                   | bytes its entries keep (quota) |
//!
//! An entry's payload and destination are written once, when it is enqueued,
//! and the idempotency key maps to that one entry for as long as the entry is
//! kept, so a key can never go out with two different payloads. Every state
//! change updates the due index and the owner's count in the same transaction.
//!
//! Every byte an owner's messages keep counts against its byte quota until
//! the entry is forgotten: the payload, the last answer's body, and a fixed
//! share for the entry's own record. Delivered messages count too: they are
//! kept for inspection for `keep-settled-hours`, and a plugin whose
//! destination answers 200 at once would otherwise grow the database without
//! bound (27 MB to 856 MB in 31 s, measured).

use super::{NodeStore, StoreError, decode, encode};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const PAYLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_payloads");
const RESPONSES: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox_responses");
const KEYS: TableDefinition<(&str, &str), u64> = TableDefinition::new("outbox_keys");
const DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("outbox_due");
const OWED: TableDefinition<&str, u64> = TableDefinition::new("outbox_owed");
const KEPT: TableDefinition<&str, u64> = TableDefinition::new("outbox_kept");

/// What an entry's own record and indexes count against its owner's byte
/// quota, besides its payload and answer.
pub const ENTRY_OVERHEAD_BYTES: u64 = 512;

/// The most of a response body kept.
pub const MAX_RESPONSE_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxMethod {
    Post,
    Put,
}

impl OutboxMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxMethod::Post => "POST",
            OutboxMethod::Put => "PUT",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
    /// The operator dropped it: the payload is gone, the key stays taken.
    Dropped,
}

impl DeliveryState {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Dropped => "dropped",
        }
    }

    /// Counts against the owner's `max-pending`.
    fn owed(self) -> bool {
        matches!(self, DeliveryState::Pending | DeliveryState::Dead)
    }
}

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// A plugin id, or "node" for the node's own events.
    pub owner: String,
    pub destination: String,
    pub method: OutboxMethod,
    pub content_type: String,
    pub payload: Vec<u8>,
    pub idempotency_key: String,
    /// The owner's limit on undelivered entries.
    pub max_pending: u32,
    /// The owner's limit on bytes its entries keep (see the module docs).
    pub max_kept_bytes: u64,
}

impl NewMessage {
    /// What must match for a repeated key to be the same message.
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.destination.as_bytes(),
            self.method.as_str().as_bytes(),
            self.content_type.as_bytes(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        hash.update(&self.payload);
        hex::encode(hash.finalize())
    }
}

/// What the outbox holds for one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationBacklog {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub dropped: u64,
    /// Milliseconds since the Unix epoch.
    pub oldest_pending_ms: Option<u64>,
}

/// A queued message as the node keeps it (the payload lives beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub owner: String,
    pub destination: String,
    pub method: OutboxMethod,
    pub content_type: String,
    pub idempotency_key: String,
    pub fingerprint: String,
    pub payload_bytes: u64,
    pub state: DeliveryState,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch, like every time here.
    pub enqueued_at_ms: u64,
    pub next_attempt_at_ms: u64,
    pub last_attempt_at_ms: Option<u64>,
    pub settled_at_ms: Option<u64>,
    pub response_status: Option<u16>,
    pub last_error: Option<String>,
    /// How long the worker has spent on this entry since it was enqueued or
    /// last retried by the operator: the waits it scheduled plus the
    /// attempts (timed by a monotonic clock). The give-up age is judged by
    /// this rather than by `enqueued_at_ms`, which a clock set forward would
    /// age by a year in an instant.
    #[serde(default)]
    pub tried_for_ms: u64,
    /// What this entry counts against its owner's byte quota. Entries from
    /// before the quota count nothing.
    #[serde(default)]
    pub kept_bytes: u64,
    /// The owner's byte quota when it was enqueued: an answer is kept only
    /// as far as it fits.
    #[serde(default = "no_limit")]
    pub kept_limit_bytes: u64,
}

fn no_limit() -> u64 {
    u64::MAX
}

/// The result of enqueueing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: u64,
    /// False when the key was already there with the same message.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("idempotency key {key:?} was already used for a different message (entry {id})")]
    Conflict { key: String, id: u64 },
    #[error("{owner} already has {limit} undelivered messages in the outbox")]
    QuotaExceeded { owner: String, limit: u32 },
    #[error(
        "{owner}'s messages already keep {kept} of its {limit} bytes in the outbox (delivered \
         ones count until they are forgotten); raise grants.outbox.quota-bytes, or wait"
    )]
    BytesQuotaExceeded {
        owner: String,
        kept: u64,
        limit: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The commit this message shared with others failed.
    #[error("the node database could not store the message: {0}")]
    Unavailable(String),
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
        body: Vec<u8>,
    },
    /// Try again at `retry_at_ms`; `spent_ms` (the attempt plus the wait
    /// before the next) is added to the entry's `tried_for_ms`.
    Retry {
        status: Option<u16>,
        body: Vec<u8>,
        error: String,
        retry_at_ms: u64,
        spent_ms: u64,
    },
    Dead {
        status: Option<u16>,
        body: Vec<u8>,
        error: String,
    },
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(OUTBOX)?;
    txn.open_table(PAYLOADS)?;
    txn.open_table(RESPONSES)?;
    txn.open_table(KEYS)?;
    txn.open_table(DUE)?;
    txn.open_table(OWED)?;
    Ok(())
}

fn entry_what(id: u64) -> String {
    format!("outbox entry {id}")
}

fn adjust_owed(txn: &WriteTransaction, owner: &str, delta: i64) -> Result<(), StoreError> {
    let mut owed = txn.open_table(OWED)?;
    let current = owed.get(owner)?.map(|v| v.value()).unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        owed.remove(owner)?;
    } else {
        owed.insert(owner, next)?;
    }
    Ok(())
}

/// Changes what `entry` keeps to `kept` bytes, and its owner's total with it.
fn set_kept(txn: &WriteTransaction, entry: &mut OutboxEntry, kept: u64) -> Result<(), StoreError> {
    if kept == entry.kept_bytes {
        return Ok(());
    }
    let mut table = txn.open_table(KEPT)?;
    let current = table
        .get(entry.owner.as_str())?
        .map(|v| v.value())
        .unwrap_or(0);
    let next = current
        .saturating_sub(entry.kept_bytes)
        .saturating_add(kept);
    if next == 0 {
        table.remove(entry.owner.as_str())?;
    } else {
        table.insert(entry.owner.as_str(), next)?;
    }
    entry.kept_bytes = kept;
    Ok(())
}

/// How much of an answer to `entry` fits its owner's byte quota: a
/// destination answering 64 KiB to every one-byte message must not take the
/// owner past it.
fn answer_room(txn: &WriteTransaction, entry: &OutboxEntry) -> Result<usize, StoreError> {
    if entry.kept_bytes == 0 {
        return Ok(usize::MAX);
    }
    let owner_kept = txn
        .open_table(KEPT)?
        .get(entry.owner.as_str())?
        .map_or(0, |v| v.value());
    let others = owner_kept.saturating_sub(entry.kept_bytes);
    let room = entry
        .kept_limit_bytes
        .saturating_sub(others + entry.payload_bytes + ENTRY_OVERHEAD_BYTES);
    Ok(usize::try_from(room).unwrap_or(usize::MAX))
}

fn load(txn: &WriteTransaction, id: u64) -> Result<Option<OutboxEntry>, StoreError> {
    let table = txn.open_table(OUTBOX)?;
    let entry = table.get(id)?;
    entry
        .map(|bytes| decode(&entry_what(id), bytes.value()))
        .transpose()
}

fn save(txn: &WriteTransaction, entry: &OutboxEntry) -> Result<(), StoreError> {
    txn.open_table(OUTBOX)?
        .insert(entry.id, encode(entry).as_slice())?;
    Ok(())
}

/// Moves `entry` to `state`, keeping the due index and the owed count right.
fn transition(
    txn: &WriteTransaction,
    entry: &mut OutboxEntry,
    state: DeliveryState,
    due_ms: u64,
) -> Result<(), StoreError> {
    let mut due = txn.open_table(DUE)?;
    if entry.state == DeliveryState::Pending {
        due.remove((entry.next_attempt_at_ms, entry.id))?;
    }
    if state == DeliveryState::Pending {
        due.insert((due_ms, entry.id), ())?;
        entry.next_attempt_at_ms = due_ms;
    }
    drop(due);
    match (entry.state.owed(), state.owed()) {
        (true, false) => adjust_owed(txn, &entry.owner, -1)?,
        (false, true) => adjust_owed(txn, &entry.owner, 1)?,
        _ => {}
    }
    entry.state = state;
    Ok(())
}

impl NodeStore {
    /// Enqueues every message in one durable commit: each gets its own
    /// outcome, and nothing is written unless the commit succeeds.
    pub fn outbox_enqueue(
        &self,
        messages: &[NewMessage],
        now_ms: u64,
    ) -> Result<Vec<Result<Enqueued, EnqueueError>>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(messages.len());
        {
            let mut next_id = txn
                .open_table(OUTBOX)?
                .last()?
                .map_or(1, |(id, _)| id.value() + 1);
            for message in messages {
                let fingerprint = message.fingerprint();
                let existing = txn
                    .open_table(KEYS)?
                    .get((message.owner.as_str(), message.idempotency_key.as_str()))?
                    .map(|v| v.value());
                if let Some(id) = existing {
                    let entry = load(&txn, id)?.ok_or_else(|| StoreError::Record {
                        what: entry_what(id),
                        detail: "its idempotency key is indexed but the entry is missing".into(),
                    })?;
                    outcomes.push(if entry.fingerprint == fingerprint {
                        Ok(Enqueued { id, created: false })
                    } else {
                        Err(EnqueueError::Conflict {
                            key: message.idempotency_key.clone(),
                            id,
                        })
                    });
                    continue;
                }
                let owed = txn
                    .open_table(OWED)?
                    .get(message.owner.as_str())?
                    .map_or(0, |v| v.value());
                if owed >= u64::from(message.max_pending) {
                    outcomes.push(Err(EnqueueError::QuotaExceeded {
                        owner: message.owner.clone(),
                        limit: message.max_pending,
                    }));
                    continue;
                }
                let kept = txn
                    .open_table(KEPT)?
                    .get(message.owner.as_str())?
                    .map_or(0, |v| v.value());
                let adds = message.payload.len() as u64 + ENTRY_OVERHEAD_BYTES;
                if kept.saturating_add(adds) > message.max_kept_bytes {
                    outcomes.push(Err(EnqueueError::BytesQuotaExceeded {
                        owner: message.owner.clone(),
                        kept,
                        limit: message.max_kept_bytes,
                    }));
                    continue;
                }
                let id = next_id;
                next_id += 1;
                let mut entry = OutboxEntry {
                    id,
                    owner: message.owner.clone(),
                    destination: message.destination.clone(),
                    method: message.method,
                    content_type: message.content_type.clone(),
                    idempotency_key: message.idempotency_key.clone(),
                    fingerprint,
                    payload_bytes: message.payload.len() as u64,
                    state: DeliveryState::Pending,
                    attempts: 0,
                    enqueued_at_ms: now_ms,
                    next_attempt_at_ms: now_ms,
                    last_attempt_at_ms: None,
                    settled_at_ms: None,
                    response_status: None,
                    last_error: None,
                    tried_for_ms: 0,
                    kept_bytes: 0,
                    kept_limit_bytes: message.max_kept_bytes,
                };
                set_kept(&txn, &mut entry, adds)?;
                save(&txn, &entry)?;
                txn.open_table(PAYLOADS)?
                    .insert(id, message.payload.as_slice())?;
                txn.open_table(KEYS)?.insert(
                    (message.owner.as_str(), message.idempotency_key.as_str()),
                    id,
                )?;
                txn.open_table(DUE)?.insert((now_ms, id), ())?;
                adjust_owed(&txn, &message.owner, 1)?;
                outcomes.push(Ok(Enqueued { id, created: true }));
            }
        }
        self.db.commit(txn)?;
        Ok(outcomes)
    }

    pub fn outbox_entry(&self, id: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let entry = table.get(id)?;
        entry
            .map(|bytes| decode(&entry_what(id), bytes.value()))
            .transpose()
    }

    /// The entry `owner` enqueued under `key`, with the last answer's body.
    pub fn outbox_by_key(
        &self,
        owner: &str,
        key: &str,
    ) -> Result<Option<(OutboxEntry, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(id) = txn.open_table(KEYS)?.get((owner, key))?.map(|v| v.value()) else {
            return Ok(None);
        };
        let Some(entry) = txn.open_table(OUTBOX)?.get(id)? else {
            return Ok(None);
        };
        let entry: OutboxEntry = decode(&entry_what(id), entry.value())?;
        let body = txn
            .open_table(RESPONSES)?
            .get(id)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        Ok(Some((entry, body)))
    }

    pub fn outbox_payload(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let payload = txn.open_table(PAYLOADS)?.get(id)?;
        Ok(payload.map(|v| v.value().to_vec()))
    }

    pub fn outbox_response(&self, id: u64) -> Result<Vec<u8>, StoreError> {
        let txn = self.db.begin_read()?;
        let body = txn.open_table(RESPONSES)?.get(id)?;
        Ok(body.map(|v| v.value().to_vec()).unwrap_or_default())
    }

    /// Pending entries due by `now_ms`, oldest due first, with payloads.
    pub fn outbox_due(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(OutboxEntry, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let due = txn.open_table(DUE)?;
        let entries = txn.open_table(OUTBOX)?;
        let payloads = txn.open_table(PAYLOADS)?;
        let mut found = Vec::new();
        for row in due.range(..=(now_ms, u64::MAX))? {
            if found.len() >= limit {
                break;
            }
            let (key, _) = row?;
            let (_, id) = key.value();
            let Some(bytes) = entries.get(id)? else {
                continue;
            };
            let entry: OutboxEntry = decode(&entry_what(id), bytes.value())?;
            let payload = payloads
                .get(id)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            found.push((entry, payload));
        }
        Ok(found)
    }

    /// When the next pending entry falls due, if any is pending.
    pub fn outbox_next_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let due = txn.open_table(DUE)?;
        let first = due.first()?;
        Ok(first.map(|(key, _)| key.value().0))
    }

    /// Moves every pending entry due after `latest_ms` to `latest_ms`, and
    /// returns how many moved. No wait the worker schedules is longer than
    /// its longest back-off, so a due time beyond that was set by a clock
    /// that was ahead; trusting it would leave the entry unsent for as long
    /// as the clock was wrong.
    pub fn outbox_bring_forward(&self, latest_ms: u64) -> Result<usize, StoreError> {
        // Most calls find nothing to move: check with a read, which costs no
        // disk flush, before writing.
        {
            let txn = self.db.begin_read()?;
            let last = txn.open_table(DUE)?.last()?.map(|(key, _)| key.value().0);
            if last.is_none_or(|due| due <= latest_ms) {
                return Ok(0);
            }
        }
        let txn = self.db.begin_write()?;
        let mut moved = 0;
        {
            let mut late = Vec::new();
            for row in txn
                .open_table(DUE)?
                .range((latest_ms.saturating_add(1), 0)..)?
            {
                let (key, _) = row?;
                late.push(key.value().1);
            }
            for id in late {
                let Some(mut entry) = load(&txn, id)? else {
                    continue;
                };
                if entry.state != DeliveryState::Pending {
                    continue;
                }
                transition(&txn, &mut entry, DeliveryState::Pending, latest_ms)?;
                save(&txn, &entry)?;
                moved += 1;
            }
        }
        self.db.commit(txn)?;
        Ok(moved)
    }

    /// Records an attempt on entry `id`; ignored (returning `None`) when the
    /// entry is no longer pending, as when the operator dropped it meanwhile.
    pub fn outbox_record(
        &self,
        id: u64,
        outcome: AttemptOutcome,
        now_ms: u64,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        let txn = self.db.begin_write()?;
        let entry = {
            let Some(mut entry) = load(&txn, id)? else {
                return Ok(None);
            };
            if entry.state != DeliveryState::Pending {
                return Ok(None);
            }
            entry.attempts = entry.attempts.saturating_add(1);
            entry.last_attempt_at_ms = Some(now_ms);
            let (status, mut body, next) = match outcome {
                AttemptOutcome::Delivered { status, body } => {
                    entry.last_error = None;
                    entry.settled_at_ms = Some(now_ms);
                    (Some(status), body, (DeliveryState::Delivered, 0))
                }
                AttemptOutcome::Retry {
                    status,
                    body,
                    error,
                    retry_at_ms,
                    spent_ms,
                } => {
                    entry.last_error = Some(error);
                    entry.tried_for_ms = entry.tried_for_ms.saturating_add(spent_ms);
                    (status, body, (DeliveryState::Pending, retry_at_ms))
                }
                AttemptOutcome::Dead {
                    status,
                    body,
                    error,
                } => {
                    entry.last_error = Some(error);
                    entry.settled_at_ms = Some(now_ms);
                    (status, body, (DeliveryState::Dead, 0))
                }
            };
            entry.response_status = status;
            body.truncate(MAX_RESPONSE_BYTES.min(answer_room(&txn, &entry)?));
            let mut responses = txn.open_table(RESPONSES)?;
            if status.is_some() {
                responses.insert(id, body.as_slice())?;
            }
            let answer_bytes = responses
                .get(id)?
                .map_or(0, |body| body.value().len() as u64);
            drop(responses);
            if entry.kept_bytes > 0 {
                let kept = entry.payload_bytes + answer_bytes + ENTRY_OVERHEAD_BYTES;
                set_kept(&txn, &mut entry, kept)?;
            }
            transition(&txn, &mut entry, next.0, next.1)?;
            save(&txn, &entry)?;
            entry
        };
        self.db.commit(txn)?;
        Ok(Some(entry))
    }

    /// Puts a dead (or pending) entry back in line, due now, attempts reset.
    pub fn outbox_retry(&self, id: u64, now_ms: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let txn = self.db.begin_write()?;
        let entry = {
            let Some(mut entry) = load(&txn, id)? else {
                return Ok(None);
            };
            if !entry.state.owed() {
                return Ok(Some(entry));
            }
            transition(&txn, &mut entry, DeliveryState::Pending, now_ms)?;
            entry.attempts = 0;
            entry.tried_for_ms = 0;
            entry.settled_at_ms = None;
            save(&txn, &entry)?;
            entry
        };
        self.db.commit(txn)?;
        Ok(Some(entry))
    }

    /// Gives up on an entry: its payload is deleted, its key stays taken.
    pub fn outbox_drop(&self, id: u64, now_ms: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let txn = self.db.begin_write()?;
        let entry = {
            let Some(mut entry) = load(&txn, id)? else {
                return Ok(None);
            };
            if entry.state == DeliveryState::Dropped {
                return Ok(Some(entry));
            }
            transition(&txn, &mut entry, DeliveryState::Dropped, 0)?;
            entry.settled_at_ms = Some(now_ms);
            txn.open_table(PAYLOADS)?.remove(id)?;
            let without_payload = entry.kept_bytes.saturating_sub(entry.payload_bytes);
            set_kept(&txn, &mut entry, without_payload)?;
            save(&txn, &entry)?;
            entry
        };
        self.db.commit(txn)?;
        Ok(Some(entry))
    }

    /// Entries, newest first, optionally only those in `state`.
    pub fn outbox_list(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut entries = Vec::new();
        for row in table.iter()?.rev() {
            if entries.len() >= limit {
                break;
            }
            let (id, bytes) = row?;
            let entry: OutboxEntry = decode(&entry_what(id.value()), bytes.value())?;
            if state.is_none_or(|s| s == entry.state) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// How many entries are in each state.
    pub fn outbox_counts(&self) -> Result<[(DeliveryState, u64); 4], StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut counts = [
            (DeliveryState::Pending, 0),
            (DeliveryState::Delivered, 0),
            (DeliveryState::Dead, 0),
            (DeliveryState::Dropped, 0),
        ];
        for row in table.iter()? {
            let (id, bytes) = row?;
            let entry: OutboxEntry = decode(&entry_what(id.value()), bytes.value())?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == entry.state) {
                slot.1 += 1;
            }
        }
        Ok(counts)
    }

    /// Per destination URL: entries in each state, and when the oldest
    /// pending one was enqueued (for `/metrics`).
    pub fn outbox_by_destination(
        &self,
    ) -> Result<std::collections::BTreeMap<String, DestinationBacklog>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut backlog = std::collections::BTreeMap::<String, DestinationBacklog>::new();
        for row in table.iter()? {
            let (id, bytes) = row?;
            let entry: OutboxEntry = decode(&entry_what(id.value()), bytes.value())?;
            let slot = backlog.entry(entry.destination).or_default();
            match entry.state {
                DeliveryState::Pending => {
                    slot.pending += 1;
                    slot.oldest_pending_ms = Some(
                        slot.oldest_pending_ms
                            .map_or(entry.enqueued_at_ms, |t| t.min(entry.enqueued_at_ms)),
                    );
                }
                DeliveryState::Delivered => slot.delivered += 1,
                DeliveryState::Dead => slot.dead += 1,
                DeliveryState::Dropped => slot.dropped += 1,
            }
        }
        Ok(backlog)
    }

    /// Forgets delivered and dropped entries settled before `before_ms`,
    /// freeing their keys. Returns how many went.
    pub fn outbox_prune(&self, before_ms: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let mut pruned = 0;
        {
            let mut old = Vec::new();
            for row in txn.open_table(OUTBOX)?.iter()? {
                let (id, bytes) = row?;
                let entry: OutboxEntry = decode(&entry_what(id.value()), bytes.value())?;
                let settled = matches!(
                    entry.state,
                    DeliveryState::Delivered | DeliveryState::Dropped
                );
                if settled && entry.settled_at_ms.is_some_and(|at| at < before_ms) {
                    old.push(entry);
                }
            }
            let mut table = txn.open_table(OUTBOX)?;
            let mut payloads = txn.open_table(PAYLOADS)?;
            let mut responses = txn.open_table(RESPONSES)?;
            let mut keys = txn.open_table(KEYS)?;
            for mut entry in old {
                set_kept(&txn, &mut entry, 0)?;
                table.remove(entry.id)?;
                payloads.remove(entry.id)?;
                responses.remove(entry.id)?;
                keys.remove((entry.owner.as_str(), entry.idempotency_key.as_str()))?;
                pruned += 1;
            }
        }
        self.db.commit(txn)?;
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DATABASE_FILE_NAME;

    fn message(key: &str, payload: &str) -> NewMessage {
        NewMessage {
            owner: "acme/courier".into(),
            destination: "http://127.0.0.1:9/v1/shipments".into(),
            method: OutboxMethod::Post,
            content_type: "application/json".into(),
            payload: payload.as_bytes().to_vec(),
            idempotency_key: key.into(),
            max_pending: 2,
            max_kept_bytes: u64::MAX,
        }
    }

    #[test]
    fn delivered_messages_count_against_the_byte_quota_until_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let kilobyte = "x".repeat(1024);
        let sized = |key: &str| NewMessage {
            max_pending: 1000,
            max_kept_bytes: 3 * (1024 + ENTRY_OVERHEAD_BYTES) + 1100,
            ..message(key, &kilobyte)
        };
        let delivered = AttemptOutcome::Delivered {
            status: 200,
            body: b"ok".to_vec(),
        };
        // Each message is delivered at once, as to a destination that
        // answers 200 straight away: nothing is owed, but bytes are kept.
        for (n, key) in ["a", "b", "c"].iter().enumerate() {
            let results = store.outbox_enqueue(&[sized(key)], 10).expect("commit");
            assert!(results[0].is_ok(), "{key}: {:?}", results[0]);
            store
                .outbox_record(n as u64 + 1, delivered.clone(), 20)
                .expect("record");
        }
        let refused = store.outbox_enqueue(&[sized("d")], 30).expect("commit");
        assert!(
            matches!(&refused[0], Err(EnqueueError::BytesQuotaExceeded { kept, .. }) if *kept > 3 * 1024),
            "{refused:?}"
        );
        // Dropping frees the payload; forgetting frees the rest.
        store.outbox_drop(1, 40).expect("drop");
        assert!(store.outbox_enqueue(&[sized("d")], 50).expect("commit")[0].is_ok());
        assert_eq!(store.outbox_prune(u64::MAX).expect("prune"), 3);
        for key in ["e", "f"] {
            assert!(store.outbox_enqueue(&[sized(key)], 60).expect("commit")[0].is_ok());
        }
    }

    #[test]
    fn an_answer_is_kept_only_as_far_as_the_byte_quota_has_room() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let quota = ENTRY_OVERHEAD_BYTES + 1000;
        let tiny = NewMessage {
            max_kept_bytes: quota,
            ..message("a", "1")
        };
        assert!(store.outbox_enqueue(&[tiny], 10).expect("commit")[0].is_ok());
        // A destination that answers 64 KiB to a one-byte message.
        let answer = AttemptOutcome::Delivered {
            status: 200,
            body: vec![b'x'; MAX_RESPONSE_BYTES],
        };
        let entry = store
            .outbox_record(1, answer, 20)
            .expect("record")
            .expect("entry");
        assert_eq!(entry.kept_bytes, quota, "{entry:?}");
        assert_eq!(store.outbox_response(1).expect("read").len(), 999);
    }

    #[test]
    fn a_key_maps_to_one_payload_and_the_quota_counts_undelivered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let results = store
            .outbox_enqueue(
                &[message("a", "1"), message("a", "1"), message("a", "2")],
                10,
            )
            .expect("commit");
        assert!(matches!(
            results[0],
            Ok(Enqueued {
                id: 1,
                created: true
            })
        ));
        assert!(matches!(
            results[1],
            Ok(Enqueued {
                id: 1,
                created: false
            })
        ));
        assert!(matches!(
            results[2],
            Err(EnqueueError::Conflict { id: 1, .. })
        ));

        let results = store
            .outbox_enqueue(&[message("b", "1"), message("c", "1")], 20)
            .expect("commit");
        assert!(results[0].is_ok());
        assert!(matches!(
            results[1],
            Err(EnqueueError::QuotaExceeded { limit: 2, .. })
        ));

        let due = store.outbox_due(20, 10).expect("due");
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].1, b"1");
        store
            .outbox_record(
                1,
                AttemptOutcome::Delivered {
                    status: 201,
                    body: b"{}".to_vec(),
                },
                30,
            )
            .expect("record");
        let results = store
            .outbox_enqueue(&[message("c", "1")], 40)
            .expect("commit");
        assert!(results[0].is_ok(), "a delivery frees quota");

        let dead = store
            .outbox_record(
                2,
                AttemptOutcome::Dead {
                    status: Some(400),
                    body: b"bad".to_vec(),
                    error: "refused".into(),
                },
                50,
            )
            .expect("record")
            .expect("was pending");
        assert_eq!(dead.state, DeliveryState::Dead);
        assert_eq!(store.outbox_next_due().expect("next"), Some(40));
        let retried = store.outbox_retry(2, 60).expect("retry").expect("exists");
        assert_eq!(retried.state, DeliveryState::Pending);
        assert_eq!(retried.attempts, 0);
        let dropped = store.outbox_drop(2, 70).expect("drop").expect("exists");
        assert_eq!(dropped.state, DeliveryState::Dropped);
        assert_eq!(store.outbox_payload(2).expect("payload"), None);
        let again = store
            .outbox_enqueue(&[message("b", "changed")], 80)
            .expect("commit");
        assert!(
            matches!(again[0], Err(EnqueueError::Conflict { id: 2, .. })),
            "a dropped key stays taken"
        );
        assert_eq!(store.outbox_prune(75).expect("prune"), 2);
        assert!(store.outbox_entry(1).expect("read").is_none());
    }

    #[test]
    fn entries_due_beyond_the_longest_wait_are_brought_forward_and_time_spent_adds_up() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let now = 1_000_000;
        let year = 365 * 24 * 3_600_000;
        let longest = 300_000;
        // Queued while the clock was a year ahead, then one on time.
        store
            .outbox_enqueue(&[message("a", "1"), message("b", "2")], now + year)
            .expect("commit");
        let mut on_time = message("c", "3");
        on_time.max_pending = 10;
        store.outbox_enqueue(&[on_time], now).expect("commit");
        assert_eq!(store.outbox_due(now + longest, 10).expect("due").len(), 1);

        assert_eq!(store.outbox_bring_forward(now + longest).expect("moved"), 2);
        assert_eq!(store.outbox_bring_forward(now + longest).expect("moved"), 0);
        let due = store.outbox_due(now + longest, 10).expect("due");
        assert_eq!(due.len(), 3, "{due:?}");
        assert_eq!(
            store
                .outbox_entry(1)
                .expect("read")
                .map(|e| e.next_attempt_at_ms),
            Some(now + longest)
        );

        for (at, spent) in [(now + 10, 1_500), (now + 20, 2_500)] {
            store
                .outbox_record(
                    3,
                    AttemptOutcome::Retry {
                        status: None,
                        body: Vec::new(),
                        error: "connection refused".into(),
                        retry_at_ms: at + spent,
                        spent_ms: spent,
                    },
                    at,
                )
                .expect("record");
        }
        let entry = store.outbox_entry(3).expect("read").expect("exists");
        assert_eq!((entry.attempts, entry.tried_for_ms), (2, 4_000));
        let retried = store
            .outbox_retry(3, now + 30)
            .expect("retry")
            .expect("exists");
        assert_eq!((retried.attempts, retried.tried_for_ms), (0, 0));
    }
}
