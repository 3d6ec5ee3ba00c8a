//! `outpost:host/outbox`: durable delivery for a plugin's messages.
//!
//! Granted by `outbox = { destinations = [...], max-pending = N }` in the
//! manifest. Each message's destination must be under a granted origin, and
//! a plugin may have at most `max-pending` undelivered messages (pending or
//! dead) at once: a plugin flooding the outbox is refused, not the node.
//! Statuses are looked up by (plugin id, idempotency key), so a plugin sees
//! only its own messages.
//!
//! During a `tokenize` call a message carrying the call's card number (in
//! its destination, content type, payload or idempotency key) is refused
//! before anything is written (see `card_data`).

use crate::bindings::outbox::{Delivery, DeliveryState, Host, Message, Method, OutboxError};
use crate::card_data::CardGuard;
use crate::manifest::{OutboxGrant, PluginId};
use crate::outbox::{MessageRefusal, Outbox, check_message};
use crate::store::{self, EnqueueError, NewMessage, OutboxMethod};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

pub struct OutboxState {
    plugin: PluginId,
    grant: Option<Arc<OutboxGrant>>,
    outbox: Arc<Outbox>,
    card: Option<Arc<CardGuard>>,
    /// Set during `migrate`, whose kv writes hold the database's one write
    /// transaction: an enqueue (its own transaction) would wait for it on
    /// the same thread forever.
    in_migration: bool,
}

impl std::fmt::Debug for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxState")
            .field("plugin", &self.plugin)
            .field("grant", &self.grant)
            .finish()
    }
}

impl OutboxState {
    pub fn new(plugin: PluginId, grant: Option<Arc<OutboxGrant>>, outbox: Arc<Outbox>) -> Self {
        OutboxState {
            plugin,
            grant,
            outbox,
            card: None,
            in_migration: false,
        }
    }

    /// Refuses `enqueue` for the rest of the call (see `in_migration`).
    pub(crate) fn refuse_during_migration(&mut self) {
        self.in_migration = true;
    }

    /// Refuses messages that carry `guard`'s card, for the rest of the call.
    pub(crate) fn guard_card(&mut self, guard: Arc<CardGuard>) {
        self.card = Some(guard);
    }

    /// The refusal for `message` if any part of it carries the card.
    fn card_refusal(&self, message: &Message) -> Option<OutboxError> {
        let card = self.card.as_ref()?;
        let part = [
            ("destination", message.destination.as_bytes()),
            ("content type", message.content_type.as_bytes()),
            ("payload", message.payload.as_slice()),
            ("idempotency key", message.idempotency_key.as_bytes()),
        ]
        .into_iter()
        .find(|(_, bytes)| card.carries(bytes))?
        .0;
        card.refuse(format!("an outbox message (its {part})"));
        Some(OutboxError::Denied(format!(
            "the message's {part} carries the card number this call was given, and a \
             tokenizer must never send it; send the token instead"
        )))
    }

    fn grant(&self) -> Result<&OutboxGrant, OutboxError> {
        self.grant
            .as_deref()
            .ok_or_else(|| OutboxError::Denied("this plugin has no outbox grant".into()))
    }
}

fn delivery(entry: &store::OutboxEntry, body: Vec<u8>) -> Delivery {
    Delivery {
        id: entry.id,
        state: match entry.state {
            store::DeliveryState::Pending => DeliveryState::Pending,
            store::DeliveryState::Delivered => DeliveryState::Delivered,
            store::DeliveryState::Dead | store::DeliveryState::Dropped => DeliveryState::Dead,
        },
        attempts: entry.attempts,
        response_status: entry.response_status,
        response_body: body,
        last_error: match entry.state {
            store::DeliveryState::Dropped => Some("dropped by the operator".into()),
            _ => entry.last_error.clone(),
        },
    }
}

impl Host for OutboxState {
    fn enqueue(&mut self, message: Message) -> Result<u64, OutboxError> {
        let grant = self.grant()?;
        if self.in_migration {
            return Err(OutboxError::Unavailable(
                "the outbox cannot be used during migrate (the migration's writes are one \
                 transaction); send from a later call"
                    .into(),
            ));
        }
        if let Some(refusal) = self.card_refusal(&message) {
            return Err(refusal);
        }
        let message = NewMessage {
            owner: self.plugin.to_string(),
            destination: message.destination,
            method: match message.method {
                Method::Post => OutboxMethod::Post,
                Method::Put => OutboxMethod::Put,
            },
            content_type: message.content_type,
            payload: message.payload,
            idempotency_key: message.idempotency_key,
            max_pending: grant.max_pending,
            max_kept_bytes: grant.quota_bytes,
        };
        check_message(&message, &grant.destinations).map_err(|refusal| match refusal {
            MessageRefusal::Denied(why) => {
                tracing::warn!("outbox destination refused: {why}");
                OutboxError::Denied(why)
            }
            MessageRefusal::Invalid(why) => OutboxError::Invalid(why),
        })?;
        if let Err(full) = self.outbox.store().check_plugin_room() {
            tracing::warn!("outbox message refused: {full}");
            return Err(OutboxError::Unavailable(full.to_string()));
        }
        match self.outbox.enqueue(message) {
            Ok(enqueued) => Ok(enqueued.id),
            Err(EnqueueError::Conflict { id, .. }) => Err(OutboxError::Conflict(id)),
            Err(EnqueueError::QuotaExceeded { limit, .. }) => {
                tracing::warn!(limit, "outbox quota reached");
                Err(OutboxError::QuotaExceeded(limit))
            }
            // WIT 0.1's quota-exceeded counts messages; bytes are said in words.
            Err(error @ EnqueueError::BytesQuotaExceeded { .. }) => {
                tracing::warn!("{error}");
                Err(OutboxError::Unavailable(error.to_string()))
            }
            Err(error) => {
                tracing::warn!("outbox write failed: {error}");
                Err(OutboxError::Unavailable(error.to_string()))
            }
        }
    }

    fn status(&mut self, idempotency_key: String) -> Result<Option<Delivery>, OutboxError> {
        self.grant()?;
        match self
            .outbox
            .store()
            .outbox_by_key(self.plugin.as_str(), &idempotency_key)
        {
            Ok(found) => Ok(found.map(|(entry, body)| delivery(&entry, body))),
            Err(error) => Err(OutboxError::Unavailable(error.to_string())),
        }
    }
}

struct OutboxCapability;

impl HasData for OutboxCapability {
    type Data<'a> = &'a mut OutboxState;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut OutboxState,
) -> wasmtime::Result<()> {
    crate::bindings::outbox::add_to_linker::<T, OutboxCapability>(linker, state)
}
