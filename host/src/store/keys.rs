//! Operator-provisioned keys: the `keys` table.
//!
//! Rows hold key material sealed under the node key (see `crate::keystore`),
//! never the key itself, so a copy of the database alone reveals nothing.

use super::{NodeStore, StoreError, decode, encode};
use crate::plugin_id::PluginId;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

const KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("keys");

/// One key as stored: sealed, with when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key material sealed under the node key, hex.
    pub sealed: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// "generated" or "imported".
    pub origin: String,
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(KEYS)?;
    Ok(())
}

pub(super) fn remove_all(txn: &WriteTransaction, plugin: &PluginId) -> Result<(), StoreError> {
    txn.open_table(KEYS)?
        .retain(|(owner, _), _| owner != plugin.as_str())?;
    Ok(())
}

impl NodeStore {
    pub fn key(&self, plugin: &PluginId, name: &str) -> Result<Option<StoredKey>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KEYS)?;
        table
            .get((plugin.as_str(), name))?
            .map(|bytes| decode(&format!("key {name} of {plugin}"), bytes.value()))
            .transpose()
    }

    /// Stores `key`; refuses to replace an existing one unless `replace`.
    /// Returns false when a key existed and was kept.
    pub fn put_key(
        &self,
        plugin: &PluginId,
        name: &str,
        key: &StoredKey,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let written = {
            let mut table = txn.open_table(KEYS)?;
            if !replace && table.get((plugin.as_str(), name))?.is_some() {
                false
            } else {
                table.insert((plugin.as_str(), name), encode(key).as_slice())?;
                true
            }
        };
        self.db.commit(txn)?;
        Ok(written)
    }

    pub fn remove_key(&self, plugin: &PluginId, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = txn
            .open_table(KEYS)?
            .remove((plugin.as_str(), name))?
            .is_some();
        self.db.commit(txn)?;
        Ok(removed)
    }

    /// Every key, or one plugin's, as (plugin, name, key), sorted.
    pub fn keys(
        &self,
        plugin: Option<&PluginId>,
    ) -> Result<Vec<(String, String, StoredKey)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KEYS)?;
        let mut keys = Vec::new();
        for entry in table.iter()? {
            let (row, bytes) = entry?;
            let (owner, name) = row.value();
            if plugin.is_some_and(|p| p.as_str() != owner) {
                continue;
            }
            let key = decode(&format!("key {name} of {owner}"), bytes.value())?;
            keys.push((owner.to_string(), name.to_string(), key));
        }
        Ok(keys)
    }
}
