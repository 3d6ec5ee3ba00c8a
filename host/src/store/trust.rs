//! What the node trusts for installing plugins: the `trust` table.
//!
//! - `settings`: the TUF root the operator provisioned and the registry URL;
//! - `seen/<file>`: the metadata tough last accepted (its datastore: the
//!   newest root, timestamp, snapshot, targets), so a node that has seen
//!   version 7 refuses version 6 after any restart (rollback), and walks
//!   root rotations from the newest root it accepted.

use super::{NodeStore, StoreError, decode, encode};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const TRUST: TableDefinition<&str, &[u8]> = TableDefinition::new("trust");
const SETTINGS: &str = "settings";
const SEEN: &str = "seen/";

/// The operator's trust settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustSettings {
    /// The root metadata the node was provisioned with (JSON text).
    pub root: String,
    /// The registry to install from when no other source is named.
    pub registry: Option<String>,
    /// Seconds since the Unix epoch.
    pub provisioned_at: u64,
    /// The certificate authority (PEM) the registry's HTTPS certificate
    /// chains to, when it is the fleet's own rather than a public one.
    #[serde(default)]
    pub ca: Option<String>,
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(TRUST)?;
    Ok(())
}

impl NodeStore {
    pub fn trust_settings(&self) -> Result<Option<TrustSettings>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRUST)?;
        table
            .get(SETTINGS)?
            .map(|v| decode("trust settings", v.value()))
            .transpose()
    }

    /// Provisions the node with `settings`, forgetting metadata seen under
    /// an earlier root (a new root is a new chain of trust).
    pub fn set_trust_settings(&self, settings: &TrustSettings) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TRUST)?;
            let same_root = table
                .get(SETTINGS)?
                .and_then(|v| decode::<TrustSettings>("trust settings", v.value()).ok())
                .is_some_and(|old| old.root == settings.root);
            if !same_root {
                table.retain(|name, _| !name.starts_with(SEEN))?;
            }
            table.insert(SETTINGS, encode(settings).as_slice())?;
        }
        self.db.commit(txn)?;
        Ok(())
    }

    /// The metadata files tough accepted last time.
    pub fn trust_seen(&self) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRUST)?;
        let mut files = BTreeMap::new();
        for row in table.range(SEEN..)? {
            let (name, bytes) = row?;
            let Some(file) = name.value().strip_prefix(SEEN) else {
                break;
            };
            files.insert(file.to_string(), bytes.value().to_vec());
        }
        Ok(files)
    }

    /// Removes the clock reading tough recorded at the last refresh (it
    /// refuses any later clock that reads earlier); returns what it was.
    /// Rollback protection is kept: it rests on the metadata versions seen,
    /// not on the clock.
    pub fn forget_trust_clock(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = txn
            .open_table(TRUST)?
            .remove(format!("{SEEN}latest_known_time.json").as_str())?
            .map(|bytes| {
                String::from_utf8_lossy(bytes.value())
                    .trim_matches('"')
                    .to_string()
            });
        self.db.commit(txn)?;
        Ok(removed)
    }

    /// Replaces the accepted metadata with `files`, in one transaction.
    pub fn put_trust_seen(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TRUST)?;
            table.retain(|name, _| !name.starts_with(SEEN))?;
            for (file, bytes) in files {
                table.insert(format!("{SEEN}{file}").as_str(), bytes.as_slice())?;
            }
        }
        self.db.commit(txn)?;
        Ok(())
    }
}
