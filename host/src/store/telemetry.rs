//! The telemetry backlog: rollups waiting to be shipped, oldest first, and
//! the operator's consent.

use super::{META, NodeStore, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

/// Rollup time (ms since the Unix epoch) → tier byte, the consent it was
/// taken under (its index in [`CONSENTS`]), then the rollup as an
/// uncompressed remote-write message.
const BACKLOG: TableDefinition<u64, &[u8]> = TableDefinition::new("telemetry_backlog");
const CONSENT_KEY: &str = "telemetry-consent";
/// Bytes before the message in a stored rollup.
const HEADER: usize = 2;

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(BACKLOG)?;
    Ok(())
}

/// A rollup waiting to be shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRollup {
    pub at_ms: u64,
    pub coarse: bool,
    /// The consent it was taken under (a small number the telemetry module
    /// gives each consent): shipped only while that consent holds.
    pub consent: u8,
    pub message: Vec<u8>,
}

/// What the backlog holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BacklogSize {
    pub rollups: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_at_ms: Option<u64>,
}

impl NodeStore {
    /// The consent the operator chose, if they did.
    pub fn telemetry_consent(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(CONSENT_KEY)?.map(|v| v.value().to_string()))
    }

    /// Records the operator's consent. A different one empties the
    /// backlog: what was rolled up under another consent does not leave
    /// under this one (the shipper checks each rollup's consent too).
    pub fn set_telemetry_consent(&self, consent: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let before = meta.get(CONSENT_KEY)?.map(|v| v.value().to_string());
            if before.as_deref() != Some(consent) {
                meta.insert(CONSENT_KEY, consent)?;
                let mut backlog = txn.open_table(BACKLOG)?;
                backlog.retain(|_, _| false)?;
            }
        }
        self.db.commit(txn)?;
        Ok(())
    }

    /// Queues a rollup, then drops what the budget cannot keep: rollups
    /// older than `oldest_kept_ms`, then, while over `max_bytes`, the
    /// oldest fine rollups, then the oldest coarse ones. Returns how many
    /// were dropped.
    pub fn telemetry_queue(
        &self,
        rollup: &QueuedRollup,
        oldest_kept_ms: u64,
        max_bytes: u64,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let dropped = {
            let mut backlog = txn.open_table(BACKLOG)?;
            let mut value = Vec::with_capacity(rollup.message.len() + HEADER);
            value.push(u8::from(rollup.coarse));
            value.push(rollup.consent);
            value.extend_from_slice(&rollup.message);
            // A clock stepped back must not overwrite a rollup waiting.
            let mut at = rollup.at_ms;
            while backlog.get(at)?.is_some() {
                at += 1;
            }
            backlog.insert(at, value.as_slice())?;
            let mut rows = Vec::new();
            for row in backlog.iter()? {
                let (at, value) = row?;
                let value = value.value();
                rows.push((at.value(), value.first() == Some(&1), value.len() as u64));
            }
            let mut total: u64 = rows.iter().map(|(_, _, bytes)| bytes).sum();
            let mut dropped = Vec::new();
            for (at, _, bytes) in &rows {
                if *at < oldest_kept_ms {
                    dropped.push(*at);
                    total -= bytes;
                }
            }
            for coarse in [false, true] {
                for (at, is_coarse, bytes) in &rows {
                    if total <= max_bytes {
                        break;
                    }
                    if *is_coarse == coarse && !dropped.contains(at) {
                        dropped.push(*at);
                        total -= bytes;
                    }
                }
            }
            for at in &dropped {
                backlog.remove(at)?;
            }
            dropped.len() as u64
        };
        self.db.commit(txn)?;
        Ok(dropped)
    }

    /// The oldest rollups, as many as fit in `max_bytes` (at least one).
    pub fn telemetry_oldest(&self, max_bytes: u64) -> Result<Vec<QueuedRollup>, StoreError> {
        let txn = self.db.begin_read()?;
        let backlog = txn.open_table(BACKLOG)?;
        let mut rollups = Vec::new();
        let mut bytes = 0u64;
        for row in backlog.iter()? {
            let (at, value) = row?;
            let value = value.value();
            let size = value.len().saturating_sub(HEADER) as u64;
            if !rollups.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            rollups.push(QueuedRollup {
                at_ms: at.value(),
                coarse: value.first() == Some(&1),
                consent: value.get(1).copied().unwrap_or(0),
                message: value.get(HEADER..).unwrap_or_default().to_vec(),
            });
        }
        Ok(rollups)
    }

    /// Forgets the rollups at these times (shipped, or refused for good).
    pub fn telemetry_forget(&self, times: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut backlog = txn.open_table(BACKLOG)?;
            for at in times {
                backlog.remove(at)?;
            }
        }
        self.db.commit(txn)?;
        Ok(())
    }

    pub fn telemetry_backlog(&self) -> Result<BacklogSize, StoreError> {
        let txn = self.db.begin_read()?;
        let backlog = txn.open_table(BACKLOG)?;
        let mut size = BacklogSize {
            rollups: backlog.len()?,
            ..BacklogSize::default()
        };
        for row in backlog.iter()? {
            let (at, value) = row?;
            size.oldest_at_ms.get_or_insert(at.value());
            size.bytes += value.value().len() as u64;
        }
        Ok(size)
    }
}
