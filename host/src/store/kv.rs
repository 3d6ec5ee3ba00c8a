//! Per-plugin key-value data: the `kv` and `kv_usage` tables.
//!
//! Keys are `(plugin id, key)` tuples, so the namespace is part of the key
//! itself: no key a plugin can name reaches another plugin's entries. Usage
//! (bytes of keys and values, and key count) is updated in the same
//! transaction as every write, so quota checks are exact.

use super::{KV, KV_USAGE, NodeStore, StoreError};
use crate::plugin_id::PluginId;
use redb::{ReadableTable, WriteTransaction};

/// The largest single value a plugin may store.
pub const MAX_VALUE_BYTES: u64 = 1 << 20;
/// The longest key.
pub const MAX_KEY_BYTES: usize = 512;

/// Why a kv write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvRefusal {
    InvalidKey(String),
    ValueTooLarge,
    QuotaExceeded { used: u64, keys: u64 },
}

/// A plugin's storage use: bytes of keys and values, and key count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    pub bytes: u64,
    pub keys: u64,
}

impl NodeStore {
    pub fn kv_get(&self, plugin: &PluginId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        Ok(table
            .get((plugin.as_str(), key))?
            .map(|v| v.value().to_vec()))
    }

    pub fn kv_usage(&self, plugin: &PluginId) -> Result<KvUsage, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV_USAGE)?;
        Ok(usage_from(table.get(plugin.as_str())?.map(|v| v.value())))
    }

    pub fn kv_list(
        &self,
        plugin: &PluginId,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        list_in(&table, plugin, prefix, limit)
    }
}

fn usage_from(value: Option<(u64, u64)>) -> KvUsage {
    value
        .map(|(bytes, keys)| KvUsage { bytes, keys })
        .unwrap_or_default()
}

fn list_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    plugin: &PluginId,
    prefix: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for entry in table.range((plugin.as_str(), prefix)..)? {
        let (key, _) = entry?;
        let (owner, name) = key.value();
        if owner != plugin.as_str() || !name.starts_with(prefix) || keys.len() >= limit {
            break;
        }
        keys.push(name.to_string());
    }
    Ok(keys)
}

/// Checks a key before it reaches the database.
pub fn check_key(key: &str) -> Result<(), KvRefusal> {
    if key.is_empty() {
        return Err(KvRefusal::InvalidKey("the key is empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvRefusal::InvalidKey(format!(
            "the key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(KvRefusal::InvalidKey(
            "the key contains control characters".into(),
        ));
    }
    Ok(())
}

/// Key-value operations inside a write transaction, so one plugin call (a
/// migration) can make many writes that commit or vanish together. Usage is
/// kept exact in the same transaction.
pub(crate) struct KvWriter<'txn> {
    txn: &'txn WriteTransaction,
}

impl<'txn> KvWriter<'txn> {
    pub(crate) fn new(txn: &'txn WriteTransaction) -> Self {
        KvWriter { txn }
    }

    pub(crate) fn get(&self, plugin: &PluginId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.txn.open_table(KV)?;
        Ok(table
            .get((plugin.as_str(), key))?
            .map(|v| v.value().to_vec()))
    }

    /// `plugin`'s active version and its component digest, as this
    /// transaction sees them (so a swap committed before it is seen).
    pub(crate) fn active_version(
        &self,
        plugin: &PluginId,
    ) -> Result<Option<(semver::Version, String)>, StoreError> {
        let table = self.txn.open_table(super::PLUGINS)?;
        let record = table.get(plugin.as_str())?;
        let record: Option<super::PluginRecord> = record
            .map(|bytes| super::decode(&format!("plugin {plugin}"), bytes.value()))
            .transpose()?;
        Ok(record.map(|record| (record.active.version, record.active.component_digest)))
    }

    pub(crate) fn usage(&self, plugin: &PluginId) -> Result<KvUsage, StoreError> {
        let table = self.txn.open_table(KV_USAGE)?;
        Ok(usage_from(table.get(plugin.as_str())?.map(|v| v.value())))
    }

    pub(crate) fn list(
        &self,
        plugin: &PluginId,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let table = self.txn.open_table(KV)?;
        list_in(&table, plugin, prefix, limit)
    }

    pub(crate) fn set(
        &self,
        plugin: &PluginId,
        key: &str,
        value: &[u8],
        quota: u64,
    ) -> Result<Result<(), KvRefusal>, StoreError> {
        if let Err(refusal) = check_key(key) {
            return Ok(Err(refusal));
        }
        if value.len() as u64 > MAX_VALUE_BYTES {
            return Ok(Err(KvRefusal::ValueTooLarge));
        }
        let mut table = self.txn.open_table(KV)?;
        let mut usage_table = self.txn.open_table(KV_USAGE)?;
        let usage = usage_from(usage_table.get(plugin.as_str())?.map(|v| v.value()));
        let old = table
            .get((plugin.as_str(), key))?
            .map(|v| (key.len() + v.value().len()) as u64);
        let new_entry = (key.len() + value.len()) as u64;
        let bytes = usage.bytes - old.unwrap_or(0) + new_entry;
        let keys = usage.keys + u64::from(old.is_none());
        if bytes > quota {
            return Ok(Err(KvRefusal::QuotaExceeded {
                used: usage.bytes,
                keys: usage.keys,
            }));
        }
        table.insert((plugin.as_str(), key), value)?;
        usage_table.insert(plugin.as_str(), (bytes, keys))?;
        Ok(Ok(()))
    }

    pub(crate) fn delete(&self, plugin: &PluginId, key: &str) -> Result<bool, StoreError> {
        let mut table = self.txn.open_table(KV)?;
        let Some(old) = table
            .remove((plugin.as_str(), key))?
            .map(|v| (key.len() + v.value().len()) as u64)
        else {
            return Ok(false);
        };
        let mut usage_table = self.txn.open_table(KV_USAGE)?;
        let usage = usage_from(usage_table.get(plugin.as_str())?.map(|v| v.value()));
        usage_table.insert(
            plugin.as_str(),
            (
                usage.bytes.saturating_sub(old),
                usage.keys.saturating_sub(1),
            ),
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DATABASE_FILE_NAME;

    fn id(text: &str) -> PluginId {
        PluginId::parse(text).expect("valid id")
    }

    fn temp_store() -> (tempfile::TempDir, NodeStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        (dir, store)
    }
    fn set(
        store: &NodeStore,
        plugin: &PluginId,
        key: &str,
        value: &[u8],
        quota: u64,
    ) -> Result<(), KvRefusal> {
        let txn = store.begin_write().expect("txn");
        let result = KvWriter::new(&txn)
            .set(plugin, key, value, quota)
            .expect("storage works");
        txn.commit().expect("commit");
        result
    }

    #[test]
    fn kv_is_namespaced_per_plugin() {
        let (_dir, store) = temp_store();
        let (a, b) = (id("acme/a"), id("acme/b"));
        assert_eq!(set(&store, &a, "secret", b"a's", 100), Ok(()));
        assert_eq!(
            store.kv_get(&a, "secret").expect("read"),
            Some(b"a's".to_vec())
        );
        assert_eq!(store.kv_get(&b, "secret").expect("read"), None);
        assert!(store.kv_list(&b, "", 10).expect("list").is_empty());
        assert_eq!(store.kv_list(&a, "sec", 10).expect("list"), ["secret"]);
    }

    #[test]
    fn kv_quota_counts_keys_and_values() {
        let (_dir, store) = temp_store();
        let plugin = id("acme/a");
        assert_eq!(set(&store, &plugin, "k", &[0; 9], 20), Ok(()));
        assert_eq!(
            store.kv_usage(&plugin).expect("usage"),
            KvUsage { bytes: 10, keys: 1 }
        );
        // Replacing counts the difference, not the sum.
        assert_eq!(set(&store, &plugin, "k", &[0; 19], 20), Ok(()));
        assert_eq!(
            set(&store, &plugin, "j", &[0; 1], 20),
            Err(KvRefusal::QuotaExceeded { used: 20, keys: 1 })
        );
        let txn = store.begin_write().expect("txn");
        assert!(KvWriter::new(&txn).delete(&plugin, "k").expect("delete"));
        txn.commit().expect("commit");
        assert_eq!(store.kv_usage(&plugin).expect("usage"), KvUsage::default());
    }

    #[test]
    fn bad_keys_are_refused() {
        let (_dir, store) = temp_store();
        let plugin = id("acme/a");
        assert!(matches!(
            set(&store, &plugin, "", b"x", 100),
            Err(KvRefusal::InvalidKey(_))
        ));
        assert!(matches!(
            set(&store, &plugin, "a\0b", b"x", 100),
            Err(KvRefusal::InvalidKey(_))
        ));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            set(&store, &plugin, &long, b"x", 10_000),
            Err(KvRefusal::InvalidKey(_))
        ));
    }
}
