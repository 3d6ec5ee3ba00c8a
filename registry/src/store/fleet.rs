//! The fleet's nodes and the one-time tokens that enrol them.
//!
//! | table               | key                   | value                   |
//! |---------------------|-----------------------|-------------------------|
//! | `enrolment_tokens`  | sha-256 of the token  | JSON [`EnrolmentToken`] |
//! | `nodes`             | node id               | JSON [`NodeRecord`]     |
//!
//! A token is spent and its node written in one transaction, so two nodes
//! racing with one token cannot both enrol.

use super::{RegistryStore, StoreError, decode, encode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tough::schema::key::Key;

const ENROLMENT_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("enrolment_tokens");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ENROLMENT_TOKENS)?;
    txn.open_table(NODES)?;
    Ok(())
}

/// A one-time enrolment token, as the registry keeps it (its hash is the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentToken {
    /// Labels every node enrolled with it gets, over the node's own.
    pub labels: BTreeMap<String, String>,
    pub created_at: u64,
    pub expires_at: u64,
    /// The node that spent it.
    pub used_by: Option<String>,
}

/// An enrolled node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's own key: it signs the node's reports.
    pub key: Key,
    /// What the node calls itself (its host name), for people.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub enrolled_at: u64,
    pub retired_at: Option<u64>,
}

/// Why an enrolment was refused, decided inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolRefusal {
    UnknownToken,
    TokenUsed {
        by: String,
    },
    TokenExpired {
        at: u64,
    },
    AlreadyEnrolled {
        retired: bool,
    },
    /// The token's labels and the node's together are too many.
    TooManyLabels(usize),
}

impl RegistryStore {
    pub fn add_enrolment_token(
        &self,
        token_sha256: &str,
        token: &EnrolmentToken,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(ENROLMENT_TOKENS)?
            .insert(token_sha256, encode(token).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Spends the token with hash `token_sha256` at `now` and enrols `node`
    /// as `id` with the token's labels over its own (at most `max_labels`),
    /// or says why not. The same node enrolling again with the token it
    /// spent (its answer was lost) gets its record back.
    pub fn enrol(
        &self,
        token_sha256: &str,
        id: &str,
        mut node: NodeRecord,
        max_labels: usize,
        now: u64,
    ) -> Result<Result<NodeRecord, EnrolRefusal>, StoreError> {
        // Most refusals need no write: decide them on a snapshot, so a
        // flood of bad tokens does not queue behind publishes.
        {
            let txn = self.db.begin_read()?;
            let tokens = txn.open_table(ENROLMENT_TOKENS)?;
            if tokens.get(token_sha256)?.is_none() {
                return Ok(Err(EnrolRefusal::UnknownToken));
            }
        }
        let txn = self.db.begin_write()?;
        {
            let mut tokens = txn.open_table(ENROLMENT_TOKENS)?;
            let Some(token) = tokens
                .get(token_sha256)?
                .map(|v| decode::<EnrolmentToken>("enrolment token", v.value()))
                .transpose()?
            else {
                return Ok(Err(EnrolRefusal::UnknownToken));
            };
            let mut nodes = txn.open_table(NODES)?;
            if let Some(by) = token.used_by {
                if by == id
                    && let Some(existing) = nodes.get(id)?
                {
                    let existing: NodeRecord = decode("node", existing.value())?;
                    if existing.retired_at.is_none() {
                        return Ok(Ok(existing));
                    }
                }
                return Ok(Err(EnrolRefusal::TokenUsed { by }));
            }
            if token.expires_at <= now {
                return Ok(Err(EnrolRefusal::TokenExpired {
                    at: token.expires_at,
                }));
            }
            if let Some(existing) = nodes.get(id)? {
                let existing: NodeRecord = decode("node", existing.value())?;
                return Ok(Err(EnrolRefusal::AlreadyEnrolled {
                    retired: existing.retired_at.is_some(),
                }));
            }
            node.labels.extend(token.labels.clone());
            if node.labels.len() > max_labels {
                return Ok(Err(EnrolRefusal::TooManyLabels(node.labels.len())));
            }
            nodes.insert(id, encode(&node).as_slice())?;
            tokens.insert(
                token_sha256,
                encode(&EnrolmentToken {
                    used_by: Some(id.to_string()),
                    ..token
                })
                .as_slice(),
            )?;
        }
        txn.commit()?;
        Ok(Ok(node))
    }

    pub fn nodes(&self) -> Result<BTreeMap<String, NodeRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (id, record) = row?;
            out.insert(id.value().to_string(), decode("node", record.value())?);
        }
        Ok(out)
    }

    pub fn node(&self, id: &str) -> Result<Option<NodeRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        table
            .get(id)?
            .map(|v| decode("node", v.value()))
            .transpose()
    }

    /// Changes node `id` with `change` in one transaction; `None` when
    /// there is no such node.
    pub fn update_node(
        &self,
        id: &str,
        change: impl FnOnce(&mut NodeRecord),
    ) -> Result<Option<NodeRecord>, StoreError> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut table = txn.open_table(NODES)?;
            let current = table
                .get(id)?
                .map(|v| decode::<NodeRecord>("node", v.value()))
                .transpose()?;
            match current {
                None => None,
                Some(mut node) => {
                    change(&mut node);
                    table.insert(id, encode(&node).as_slice())?;
                    Some(node)
                }
            }
        };
        txn.commit()?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry made before fleets (schema 2) gains the fleet's tables
    /// when opened, and keeps what it had.
    #[test]
    fn a_schema_2_registry_is_upgraded_with_empty_fleet_tables() {
        let dir = tempfile::tempdir().expect("temp dir");
        RegistryStore::create(dir.path())
            .expect("create")
            .add_token(
                "abc",
                &crate::store::TokenRecord {
                    namespace: "acme".into(),
                    created_at: 1,
                    label: "kept".into(),
                },
            )
            .expect("token");
        {
            let db = redb::Database::open(dir.path().join(super::super::DATABASE_FILE_NAME))
                .expect("open");
            let txn = db.begin_write().expect("write");
            txn.delete_table(ENROLMENT_TOKENS).expect("drop");
            txn.delete_table(NODES).expect("drop");
            txn.open_table(super::super::META)
                .expect("meta")
                .insert("schema", "2")
                .expect("schema");
            txn.commit().expect("commit");
        }
        let store = RegistryStore::open(dir.path()).expect("open and upgrade");
        assert!(store.nodes().expect("nodes").is_empty());
        assert_eq!(store.tokens().expect("tokens").len(), 1);
        drop(store);
        // Opened again: already at schema 3.
        RegistryStore::open(dir.path()).expect("open again");
    }
}
