//! `outpost:host/log`: a plugin's log events, into the node's `tracing` output.
//!
//! Always granted. Events are emitted inside the call's span, so they carry the
//! plugin id, version and call id. A plugin cannot flood the log: messages are
//! cut at [`MAX_MESSAGE_BYTES`] and each call may emit [`MAX_EVENTS_PER_CALL`]
//! events; the rest are counted and reported once when the call ends.
//!
//! Card numbers never reach the node's log from here: any card-like number
//! is masked in every plugin's lines, and during a `tokenize` call a line
//! carrying that call's card is withheld whole (see `card_data`).

use crate::bindings::log::{Host, Level};
use crate::card_data::{CardGuard, mask_card_numbers};
use std::borrow::Cow;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

pub const MAX_MESSAGE_BYTES: usize = 4096;
pub const MAX_EVENTS_PER_CALL: u32 = 256;

/// The log target plugin events use, so operators can filter them:
/// `RUST_LOG=plugin=debug`.
pub const TARGET: &str = "plugin";

#[derive(Debug, Default)]
pub struct LogState {
    emitted: u32,
    dropped: u32,
    card: Option<Arc<CardGuard>>,
}

impl LogState {
    /// Withholds the lines that carry `guard`'s card, for the rest of the call.
    pub(crate) fn guard_card(&mut self, guard: Arc<CardGuard>) {
        self.card = Some(guard);
    }

    /// Reports dropped events; called when the call ends.
    pub fn finish(&self) {
        if self.dropped > 0 {
            tracing::warn!(
                target: TARGET,
                dropped = self.dropped,
                "plugin logged more than {MAX_EVENTS_PER_CALL} events in one call; the rest were dropped"
            );
        }
    }
}

fn truncate(message: &mut String) {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… [truncated]");
    }
}

impl Host for LogState {
    fn log(&mut self, level: Level, mut message: String) {
        if self.emitted >= MAX_EVENTS_PER_CALL {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.emitted += 1;
        if let Some(card) = &self.card
            && card.carries(message.as_bytes())
        {
            card.refuse("a log line");
            return;
        }
        // Masked before the cut, which could leave too little of a number
        // to recognise.
        if let Cow::Owned(masked) = mask_card_numbers(&message) {
            message = masked;
        }
        truncate(&mut message);
        match level {
            Level::Trace => tracing::trace!(target: TARGET, "{message}"),
            Level::Debug => tracing::debug!(target: TARGET, "{message}"),
            Level::Info => tracing::info!(target: TARGET, "{message}"),
            Level::Warn => tracing::warn!(target: TARGET, "{message}"),
            Level::Error => tracing::error!(target: TARGET, "{message}"),
        }
    }

    fn enabled(&mut self, level: Level) -> bool {
        if self.emitted >= MAX_EVENTS_PER_CALL {
            return false;
        }
        match level {
            Level::Trace => tracing::enabled!(target: TARGET, tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: TARGET, tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: TARGET, tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: TARGET, tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: TARGET, tracing::Level::ERROR),
        }
    }
}

struct LogCapability;

impl HasData for LogCapability {
    type Data<'a> = &'a mut LogState;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut LogState,
) -> wasmtime::Result<()> {
    crate::bindings::log::add_to_linker::<T, LogCapability>(linker, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_beyond_the_cap_are_counted_not_emitted() {
        let mut state = LogState::default();
        for _ in 0..MAX_EVENTS_PER_CALL + 10 {
            state.log(Level::Info, "x".into());
        }
        assert_eq!(state.emitted, MAX_EVENTS_PER_CALL);
        assert_eq!(state.dropped, 10);
        assert!(!state.enabled(Level::Error));
    }

    #[test]
    fn a_line_carrying_the_calls_card_is_withheld_and_noted() {
        let card = Arc::new(CardGuard::new("4539148803436467").expect("a card"));
        let mut state = LogState::default();
        state.guard_card(card.clone());
        state.log(Level::Info, "tokenized a card ending 6467".into());
        assert_eq!(card.refusals(), None);
        state.log(Level::Debug, "pan=4539 1488 0343 6467".into());
        assert_eq!(card.refusals().as_deref(), Some("a log line"));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let mut message = "é".repeat(MAX_MESSAGE_BYTES);
        truncate(&mut message);
        assert!(message.len() <= MAX_MESSAGE_BYTES + "… [truncated]".len());
        assert!(message.ends_with("[truncated]"));
    }
}
