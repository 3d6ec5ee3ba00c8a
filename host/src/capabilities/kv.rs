//! `outpost:host/kv`: durable storage private to each plugin.
//!
//! Granted by `kv = { quota-bytes = N }` in the manifest. The namespace is the
//! plugin id the node loaded the plugin under; a plugin names only keys, never
//! a namespace, so no key it can write reaches another plugin's data.
//!
//! Normally each `set` and `delete` commits durably on its own. During
//! `lifecycle.migrate` the node hands the plugin one open write transaction
//! instead ([`KvState::batched`]): every write of the migration then commits
//! together with the new version's install record, or not at all.
//!
//! During a `tokenize` call a write whose key or value carries the call's
//! card number is refused and nothing is written (see `card_data`).
//!
//! A call's writes commit only while its version is the plugin's active one,
//! checked in the write's own transaction: a call still running on a version
//! that an update or a rollback replaced would otherwise write old-format
//! data after the new version's `migrate`, or undo a rollback's restore. The
//! write is refused and the call fails as `Replaced`.

use crate::bindings::kv::{Host, KvError, Usage};
use crate::card_data::CardGuard;
use crate::manifest::{PluginId, QuotaGrant};
use crate::store::{KvRefusal, KvWriter, MAX_VALUE_BYTES, NodeStore, StoreError, check_key};
use redb::WriteTransaction;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// The most keys one `list-keys` returns.
pub const MAX_LIST: u32 = 1000;

pub struct KvState {
    plugin: PluginId,
    grant: Option<QuotaGrant>,
    store: Arc<NodeStore>,
    batch: Option<WriteTransaction>,
    card: Option<Arc<CardGuard>>,
    /// The version making the call and its component digest: its writes
    /// commit only while it is the active one.
    version: Option<(semver::Version, String)>,
    /// Set once a write was refused because the version was replaced.
    replaced: bool,
}

impl std::fmt::Debug for KvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvState")
            .field("plugin", &self.plugin)
            .field("grant", &self.grant)
            .field("batched", &self.batch.is_some())
            .finish()
    }
}

fn unavailable(error: StoreError) -> KvError {
    tracing::warn!("plugin storage failed: {error}");
    KvError::Unavailable(error.to_string())
}

impl KvState {
    /// Each write commits on its own, while `version` (with its component
    /// digest) is the plugin's active version; without one, whatever is.
    pub fn direct(
        plugin: PluginId,
        grant: Option<QuotaGrant>,
        store: Arc<NodeStore>,
        version: Option<(semver::Version, String)>,
    ) -> Self {
        KvState {
            plugin,
            grant,
            store,
            batch: None,
            card: None,
            version,
            replaced: false,
        }
    }

    /// Every read and write goes through `txn`, which the caller commits.
    pub fn batched(
        plugin: PluginId,
        grant: Option<QuotaGrant>,
        store: Arc<NodeStore>,
        txn: WriteTransaction,
    ) -> Self {
        KvState {
            plugin,
            grant,
            store,
            batch: Some(txn),
            card: None,
            version: None,
            replaced: false,
        }
    }

    /// Whether a write was refused because the calling version was replaced.
    pub fn was_replaced(&self) -> bool {
        self.replaced
    }

    /// Refuses writes that carry `guard`'s card, for the rest of the call.
    pub(crate) fn guard_card(&mut self, guard: Arc<CardGuard>) {
        self.card = Some(guard);
    }

    /// The refusal for a write of `key` and `value` that carries the card.
    /// No `kv-error` case says "refused" and the contract cannot grow one in
    /// 0.1, so the key's case names a bad key, and `unavailable` a bad value
    /// (its string says it is final); the call fails either way.
    fn card_refusal(&self, key: &str, value: &[u8]) -> Option<KvError> {
        let card = self.card.as_ref()?;
        let (what, error): (&str, fn(String) -> KvError) = if card.carries(key.as_bytes()) {
            ("key", KvError::InvalidKey)
        } else if card.carries(value) {
            ("value", KvError::Unavailable)
        } else {
            return None;
        };
        card.refuse(format!("a kv write (its {what})"));
        Some(error(format!(
            "refused, not retryable: the {what} carries the card number this call was given, \
             and a tokenizer must never store it; store the token instead"
        )))
    }

    /// Takes the transaction back after a batched call.
    pub fn take_batch(&mut self) -> Option<WriteTransaction> {
        self.batch.take()
    }

    fn quota(&self) -> Result<u64, KvError> {
        self.grant
            .map(|grant| grant.quota_bytes)
            .ok_or_else(|| KvError::Unavailable("this plugin has no kv grant".into()))
    }

    fn refusal(&self, refusal: KvRefusal, quota: u64) -> KvError {
        match refusal {
            KvRefusal::InvalidKey(why) => KvError::InvalidKey(why),
            KvRefusal::ValueTooLarge => KvError::ValueTooLarge(MAX_VALUE_BYTES),
            KvRefusal::QuotaExceeded { used, keys } => KvError::QuotaExceeded(Usage {
                used_bytes: used,
                limit_bytes: quota,
                keys,
            }),
        }
    }

    /// Runs `write` in the batch transaction, or in a fresh one committed
    /// durably when `write` succeeds and the calling version is still the
    /// active one.
    fn write<R>(
        &mut self,
        write: impl FnOnce(&KvWriter<'_>) -> Result<Result<R, KvRefusal>, StoreError>,
    ) -> Result<Result<R, KvRefusal>, KvError> {
        if let Some(txn) = &self.batch {
            return write(&KvWriter::new(txn)).map_err(unavailable);
        }
        let txn = self.store.begin_write().map_err(unavailable)?;
        let writer = KvWriter::new(&txn);
        if let Some(version) = &self.version {
            let active = writer.active_version(&self.plugin).map_err(unavailable)?;
            if active.as_ref() != Some(version) {
                self.replaced = true;
                return Err(KvError::Unavailable(
                    "refused, not retryable: this version of the plugin was replaced by an \
                     update or a rollback while the call ran"
                        .into(),
                ));
            }
        }
        let outcome = write(&writer).map_err(unavailable)?;
        if outcome.is_ok() {
            self.store.commit(txn).map_err(unavailable)?;
        }
        Ok(outcome)
    }
}

impl Host for KvState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        let quota = self.quota()?;
        check_key(&key).map_err(|r| self.refusal(r, quota))?;
        match &self.batch {
            Some(txn) => KvWriter::new(txn).get(&self.plugin, &key),
            None => self.store.kv_get(&self.plugin, &key),
        }
        .map_err(unavailable)
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        let quota = self.quota()?;
        if let Some(refusal) = self.card_refusal(&key, &value) {
            return Err(refusal);
        }
        if let Err(full) = self.store.check_plugin_room() {
            tracing::warn!("kv write refused: {full}");
            return Err(KvError::Unavailable(full.to_string()));
        }
        let plugin = self.plugin.clone();
        self.write(|writer| writer.set(&plugin, &key, &value, quota))?
            .map_err(|refusal| self.refusal(refusal, quota))
    }

    fn delete(&mut self, key: String) -> Result<bool, KvError> {
        let quota = self.quota()?;
        check_key(&key).map_err(|r| self.refusal(r, quota))?;
        let plugin = self.plugin.clone();
        self.write(|writer| writer.delete(&plugin, &key).map(Ok))?
            .map_err(|refusal| self.refusal(refusal, quota))
    }

    fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, KvError> {
        self.quota()?;
        let limit = limit.min(MAX_LIST) as usize;
        match &self.batch {
            Some(txn) => KvWriter::new(txn).list(&self.plugin, &prefix, limit),
            None => self.store.kv_list(&self.plugin, &prefix, limit),
        }
        .map_err(unavailable)
    }

    fn current_usage(&mut self) -> Result<Usage, KvError> {
        let quota = self.quota()?;
        let usage = match &self.batch {
            Some(txn) => KvWriter::new(txn).usage(&self.plugin),
            None => self.store.kv_usage(&self.plugin),
        }
        .map_err(unavailable)?;
        Ok(Usage {
            used_bytes: usage.bytes,
            limit_bytes: quota,
            keys: usage.keys,
        })
    }
}

struct KvCapability;

impl HasData for KvCapability {
    type Data<'a> = &'a mut KvState;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut KvState,
) -> wasmtime::Result<()> {
    crate::bindings::kv::add_to_linker::<T, KvCapability>(linker, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DATABASE_FILE_NAME;

    fn state(
        dir: &tempfile::TempDir,
        plugin: &str,
        quota: Option<u64>,
    ) -> (KvState, Arc<NodeStore>) {
        let store =
            Arc::new(NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("store opens"));
        let id = PluginId::parse(plugin).expect("id");
        let grant = quota.map(|quota_bytes| QuotaGrant { quota_bytes });
        (KvState::direct(id, grant, store.clone(), None), store)
    }

    #[test]
    fn without_the_grant_every_operation_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut kv, _) = state(&dir, "acme/a", None);
        assert!(matches!(kv.get("k".into()), Err(KvError::Unavailable(_))));
        assert!(matches!(
            kv.set("k".into(), vec![1]),
            Err(KvError::Unavailable(_))
        ));
    }

    #[test]
    fn a_batch_commits_all_or_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, store) = state(&dir, "acme/a", Some(100));
        let id = PluginId::parse("acme/a").expect("id");
        let grant = Some(QuotaGrant { quota_bytes: 100 });

        let txn = store.begin_write().expect("txn");
        let mut kv = KvState::batched(id.clone(), grant, store.clone(), txn);
        kv.set("a".into(), b"1".to_vec()).expect("set");
        assert_eq!(kv.get("a".into()).expect("get"), Some(b"1".to_vec()));
        drop(kv.take_batch());
        assert_eq!(
            store.kv_get(&id, "a").expect("read"),
            None,
            "dropped batch left nothing"
        );

        let txn = store.begin_write().expect("txn");
        let mut kv = KvState::batched(id.clone(), grant, store.clone(), txn);
        kv.set("a".into(), b"2".to_vec()).expect("set");
        kv.take_batch().expect("batch").commit().expect("commit");
        assert_eq!(store.kv_get(&id, "a").expect("read"), Some(b"2".to_vec()));
    }

    #[test]
    fn writes_carrying_the_calls_card_are_refused_and_not_stored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut kv, store) = state(&dir, "acme/a", Some(4096));
        let card = Arc::new(CardGuard::new("4539148803436467").expect("a card"));
        kv.guard_card(card.clone());
        kv.set("spend/0724115938216467".into(), b"100".to_vec())
            .expect("a token is fine");
        assert!(matches!(
            kv.set("card".into(), b"4539-1488-0343-6467".to_vec()),
            Err(KvError::Unavailable(_))
        ));
        assert!(matches!(
            kv.set("card/4539148803436467".into(), b"1".to_vec()),
            Err(KvError::InvalidKey(_))
        ));
        let id = PluginId::parse("acme/a").expect("id");
        assert_eq!(store.kv_get(&id, "card").expect("read"), None);
        assert_eq!(store.kv_usage(&id).expect("usage").keys, 1);
        assert!(card.refusals().expect("noted").contains("kv write"));
    }

    #[test]
    fn quota_errors_report_usage_and_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut kv, _) = state(&dir, "acme/a", Some(10));
        kv.set("key".into(), vec![0; 7]).expect("fits exactly");
        match kv.set("other".into(), vec![0; 1]) {
            Err(KvError::QuotaExceeded(usage)) => {
                assert_eq!(
                    (usage.used_bytes, usage.limit_bytes, usage.keys),
                    (10, 10, 1)
                );
            }
            other => panic!("expected quota-exceeded, got {other:?}"),
        }
        assert_eq!(kv.current_usage().expect("usage").used_bytes, 10);
    }
}
