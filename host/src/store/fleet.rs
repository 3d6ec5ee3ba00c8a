//! Which fleet the node belongs to: the `fleet` table.
//!
//! - `membership`: the registry it enrolled with, the id the registry gave
//!   it, and the labels it was enrolled with;
//! - `desired`: the newest desired state it accepted from the director
//!   (a replay of an older one is refused against its version).

use super::{NodeStore, StoreError, decode, encode};
use outpost_registry::desired::DesiredState;
use redb::{TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const FLEET: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet");
const MEMBERSHIP: &str = "membership";
const DESIRED: &str = "desired";

/// The node's place in a fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The registry it enrolled with (the fleet's centre).
    pub registry: String,
    /// The id the registry knows it by (derived from its key).
    pub node_id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub joined_at: u64,
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(FLEET)?;
    Ok(())
}

impl NodeStore {
    pub fn membership(&self) -> Result<Option<Membership>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FLEET)?;
        table
            .get(MEMBERSHIP)?
            .map(|v| decode("fleet membership", v.value()))
            .transpose()
    }

    pub fn set_membership(&self, membership: &Membership) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(FLEET)?
            .insert(MEMBERSHIP, encode(membership).as_slice())?;
        self.db.commit(txn)?;
        Ok(())
    }

    /// The newest desired state the node accepted.
    pub fn desired_state(&self) -> Result<Option<DesiredState>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FLEET)?;
        table
            .get(DESIRED)?
            .map(|v| decode("desired state", v.value()))
            .transpose()
    }

    pub fn set_desired_state(&self, state: &DesiredState) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(FLEET)?
            .insert(DESIRED, encode(state).as_slice())?;
        self.db.commit(txn)?;
        Ok(())
    }
}
