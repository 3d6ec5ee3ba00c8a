//! Which fleet the node belongs to: the `fleet` table.
//!
//! - `membership`: the registry it enrolled with, the id the registry gave
//!   it, and the labels it was enrolled with;
//! - `desired`: the newest desired state it accepted from the director
//!   (a replay of an older one is refused against its version);
//! - `report-sequence`: the number of the last report it made;
//! - `reported/<rollout>`: what it last reported on that rollout, so a
//!   state already reported is not reported again.

use super::{NodeStore, StoreError, decode, encode};
use outpost_registry::desired::DesiredState;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const FLEET: TableDefinition<&str, &[u8]> = TableDefinition::new("fleet");
const MEMBERSHIP: &str = "membership";
const DESIRED: &str = "desired";
const REPORT_SEQUENCE: &str = "report-sequence";

fn reported_key(rollout: &str) -> String {
    format!("reported/{rollout}")
}

/// What the node last reported on one rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub stage: outpost_registry::rollout::Stage,
    pub reason: Option<String>,
    pub sequence: u64,
}

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

    /// Takes the next report number (numbers only rise, gaps are allowed).
    pub fn next_report_sequence(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let next = {
            let mut table = txn.open_table(FLEET)?;
            let last: u64 = table
                .get(REPORT_SEQUENCE)?
                .map(|v| decode("report sequence", v.value()))
                .transpose()?
                .unwrap_or(0);
            let next = last + 1;
            table.insert(REPORT_SEQUENCE, encode(&next).as_slice())?;
            next
        };
        self.db.commit(txn)?;
        Ok(next)
    }

    /// What the node last reported on `rollout`.
    pub fn reported(&self, rollout: &str) -> Result<Option<Reported>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FLEET)?;
        table
            .get(reported_key(rollout).as_str())?
            .map(|v| decode("last report", v.value()))
            .transpose()
    }

    pub fn set_reported(&self, rollout: &str, reported: &Reported) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(FLEET)?
            .insert(reported_key(rollout).as_str(), encode(reported).as_slice())?;
        self.db.commit(txn)?;
        Ok(())
    }
}
