//! Rollouts and each node's progress on them.
//!
//! | table              | key                  | value              |
//! |--------------------|----------------------|--------------------|
//! | `rollouts`         | rollout id (`r7`)    | JSON [`Rollout`]   |
//! | `rollout_progress` | (rollout id, node id) | JSON [`Progress`] |

use super::{RegistryStore, StoreError, decode, encode};
use crate::rollout::{Progress, Rollout};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;

const ROLLOUTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rollouts");
const PROGRESS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("rollout_progress");
/// `revision` → the fleet's newest revision: every change to a rollout
/// takes the next one, so each node's desired state only ever rises.
const REVISION: TableDefinition<&str, u64> = TableDefinition::new("fleet_revision");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ROLLOUTS)?;
    txn.open_table(PROGRESS)?;
    txn.open_table(REVISION)?;
    Ok(())
}

/// Takes the next fleet revision inside `txn`.
fn next_revision(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut table = txn.open_table(REVISION)?;
    let next = table.get("revision")?.map_or(0, |v| v.value()) + 1;
    table.insert("revision", next)?;
    Ok(next)
}

fn number(id: &str) -> u64 {
    id.strip_prefix('r')
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl RegistryStore {
    pub fn rollouts(&self) -> Result<BTreeMap<String, Rollout>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ROLLOUTS)?;
        let mut out = BTreeMap::new();
        for row in table.iter()? {
            let (id, record) = row?;
            out.insert(id.value().to_string(), decode("rollout", record.value())?);
        }
        Ok(out)
    }

    pub fn rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ROLLOUTS)?;
        table
            .get(id)?
            .map(|v| decode("rollout", v.value()))
            .transpose()
    }

    /// Stores the rollout `make` builds under the next id, given every
    /// rollout so far; all in one transaction, so two creations cannot
    /// both pass a check against the same list.
    pub fn create_rollout<E>(
        &self,
        make: impl FnOnce(&str, &[Rollout]) -> Result<Rollout, E>,
    ) -> Result<Result<Rollout, E>, StoreError> {
        let txn = self.db.begin_write()?;
        let made = {
            let mut table = txn.open_table(ROLLOUTS)?;
            let mut existing = Vec::new();
            for row in table.iter()? {
                let (_, record) = row?;
                existing.push(decode::<Rollout>("rollout", record.value())?);
            }
            let next = existing.iter().map(|r| number(&r.id)).max().unwrap_or(0) + 1;
            let id = format!("r{next}");
            match make(&id, &existing) {
                Ok(mut rollout) => {
                    rollout.revision = next_revision(&txn)?;
                    table.insert(id.as_str(), encode(&rollout).as_slice())?;
                    Ok(rollout)
                }
                Err(refusal) => return Ok(Err(refusal)),
            }
        };
        txn.commit()?;
        Ok(made)
    }

    /// Changes rollout `id` with `change` in one transaction; `None` when
    /// there is no such rollout, nothing written when `change` refuses.
    pub fn update_rollout<E>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Rollout, &BTreeMap<String, Progress>) -> Result<(), E>,
    ) -> Result<Option<Result<Rollout, E>>, StoreError> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut table = txn.open_table(ROLLOUTS)?;
            let Some(mut rollout) = table
                .get(id)?
                .map(|v| decode::<Rollout>("rollout", v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            let progress = progress_in(&txn.open_table(PROGRESS)?, id)?;
            let before = rollout.clone();
            if let Err(refusal) = change(&mut rollout, &progress) {
                return Ok(Some(Err(refusal)));
            }
            if rollout == before {
                return Ok(Some(Ok(rollout)));
            }
            rollout.revision = next_revision(&txn)?;
            table.insert(id, encode(&rollout).as_slice())?;
            rollout
        };
        txn.commit()?;
        Ok(Some(Ok(updated)))
    }

    /// The fleet's newest revision (0 before any rollout).
    pub fn fleet_revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REVISION)?;
        Ok(table.get("revision")?.map_or(0, |v| v.value()))
    }

    /// Every node's progress on rollout `id`.
    pub fn rollout_progress(&self, id: &str) -> Result<BTreeMap<String, Progress>, StoreError> {
        let txn = self.db.begin_read()?;
        progress_in(&txn.open_table(PROGRESS)?, id)
    }

    /// Records `node`'s progress on rollout `id`, unless the progress held
    /// is from a report numbered as high or higher: then nothing is
    /// written and that number is returned.
    pub fn set_progress(
        &self,
        id: &str,
        node: &str,
        progress: &Progress,
    ) -> Result<Option<u64>, StoreError> {
        // A repeat or replay is answered from a read, without taking the
        // single writer.
        if let Some(last) = newer_held(
            &self.db.begin_read()?.open_table(PROGRESS)?,
            id,
            node,
            progress,
        )? {
            return Ok(Some(last));
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PROGRESS)?;
            if let Some(last) = newer_held(&table, id, node, progress)? {
                return Ok(Some(last));
            }
            table.insert((id, node), encode(progress).as_slice())?;
        }
        txn.commit()?;
        Ok(None)
    }
}

/// The number of the report held for `node` on rollout `id`, when it is
/// as high as `progress`'s or higher.
fn newer_held(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    id: &str,
    node: &str,
    progress: &Progress,
) -> Result<Option<u64>, StoreError> {
    let held: Option<Progress> = table
        .get((id, node))?
        .map(|v| decode("rollout progress", v.value()))
        .transpose()?;
    Ok(held
        .map(|held| held.sequence)
        .filter(|last| *last >= progress.sequence && *last > 0))
}

fn progress_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    id: &str,
) -> Result<BTreeMap<String, Progress>, StoreError> {
    let mut out = BTreeMap::new();
    for row in table.range((id, "")..)? {
        let (key, record) = row?;
        let (rollout, node) = key.value();
        if rollout != id {
            break;
        }
        out.insert(
            node.to_string(),
            decode("rollout progress", record.value())?,
        );
    }
    Ok(out)
}
