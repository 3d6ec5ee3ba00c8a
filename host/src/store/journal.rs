//! The update journal: what each plugin's update is doing, what happened
//! before, which versions are blocked, which plugins follow the registry, and
//! the kv snapshots a rollback restores.
//!
//! | table               | key                 | value                            |
//! |---------------------|---------------------|----------------------------------|
//! | `updates`           | plugin id           | JSON [`UpdateRecord`], in flight |
//! | `update_history`    | sequence number     | JSON [`Transition`]              |
//! | `blocked_versions`  | (plugin id, version)| why                              |
//! | `follows`           | plugin id           | version requirement              |
//! | `kv_snapshots`      | (plugin id, key)    | the value before the update      |
//! | `kv_snapshot_usage` | plugin id           | (bytes, keys) before the update  |
//!
//! Every transition is one commit of the record and its history line
//! together, so what the history says happened is what the record shows.

use super::{InstalledVersion, KV, KV_USAGE, NodeStore, StoreError, decode, encode};
use crate::plugin_id::PluginId;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const UPDATES: TableDefinition<&str, &[u8]> = TableDefinition::new("updates");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("update_history");
const BLOCKED: TableDefinition<(&str, &str), &str> = TableDefinition::new("blocked_versions");
const FOLLOWS: TableDefinition<&str, &str> = TableDefinition::new("follows");
const KV_SNAPSHOTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv_snapshots");
const KV_SNAPSHOT_USAGE: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("kv_snapshot_usage");

/// The most history lines kept; older ones are dropped as new ones come.
const HISTORY_KEPT: u64 = 10_000;

/// Where one update stands. The order is the path an update takes; see
/// `crate::updates` for what each step does and how a crash in it is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
    /// A newer signed release was seen (or a package offered by hand).
    Found,
    /// Its bytes are on the disk.
    Downloaded,
    /// Its bytes match the signed metadata and its manifest the release.
    Verified,
    /// Compiled and linked, and it reports the version it claims.
    Compiled,
    /// Kept in the database beside the active version, ready to activate.
    Staged,
    /// Asks for more than the operator agreed to: waits for `approve`.
    Held,
    /// Outside the maintenance window, or an app holds the update lock.
    Deferred,
    /// Migrating and swapping in (one transaction).
    Activating,
    /// Serving, judged by its calls and health; the old version is kept.
    Probation,
    /// Passed probation: the old version and the kv snapshot are gone.
    Confirmed,
    /// Went back to the previous version (and its kv).
    RolledBack,
    /// Refused before activation; the active version never stopped.
    Refused,
}

impl UpdateState {
    pub const ALL: [UpdateState; 12] = [
        UpdateState::Found,
        UpdateState::Downloaded,
        UpdateState::Verified,
        UpdateState::Compiled,
        UpdateState::Staged,
        UpdateState::Held,
        UpdateState::Deferred,
        UpdateState::Activating,
        UpdateState::Probation,
        UpdateState::Confirmed,
        UpdateState::RolledBack,
        UpdateState::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UpdateState::Found => "found",
            UpdateState::Downloaded => "downloaded",
            UpdateState::Verified => "verified",
            UpdateState::Compiled => "compiled",
            UpdateState::Staged => "staged",
            UpdateState::Held => "held",
            UpdateState::Deferred => "deferred",
            UpdateState::Activating => "activating",
            UpdateState::Probation => "probation",
            UpdateState::Confirmed => "confirmed",
            UpdateState::RolledBack => "rolled-back",
            UpdateState::Refused => "refused",
        }
    }

    /// Confirmed, rolled back or refused: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            UpdateState::Confirmed | UpdateState::RolledBack | UpdateState::Refused
        )
    }

    /// Before `Staged`: nothing of it is in the database but this record.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            UpdateState::Found
                | UpdateState::Downloaded
                | UpdateState::Verified
                | UpdateState::Compiled
        )
    }
}

impl std::fmt::Display for UpdateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What probation has seen of a new version so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbationRecord {
    pub started_at_ms: u64,
    /// It may be confirmed from here on, given `min_calls` calls.
    pub until_ms: u64,
    /// Past this it is confirmed on its health alone, however few calls.
    pub longest_until_ms: u64,
    pub min_calls: u64,
    /// Calls, and of those the bad ones (traps, deadlines, memory,
    /// `internal` errors), counted since activation (across restarts).
    pub calls: u64,
    pub bad: u64,
    /// Of those, what was counted before the node last started (its call
    /// counters begin at zero with each start).
    #[serde(default)]
    pub carried_calls: u64,
    #[serde(default)]
    pub carried_bad: u64,
    /// The previous version's calls and bad calls while it served last,
    /// for the error rate to compare with.
    pub baseline_calls: u64,
    pub baseline_bad: u64,
}

/// One plugin's update in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRecord {
    pub plugin: PluginId,
    /// The version active when the update was found (none: a new plugin).
    pub from: Option<semver::Version>,
    pub to: semver::Version,
    /// Where it came from: "registry http://…", "bundle /media/usb/…".
    pub source: String,
    pub state: UpdateState,
    /// Why it is held, deferred, refused or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it asks for beyond what the operator agreed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asks: Vec<String>,
    /// The operator approved what it asks (or it asks nothing new).
    #[serde(default)]
    pub approved: bool,
    /// Activate as soon as staged, whatever the window or lock (an
    /// operator's own `install` or `apply`).
    #[serde(default)]
    pub now: bool,
    /// The new version, once staged: its component is in `components`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<InstalledVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation: Option<ProbationRecord>,
    /// Activations a crash cut short; past a few the version is refused.
    #[serde(default)]
    pub interrupted_activations: u32,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
    /// The fleet rollout that asked for it, if one did: its transitions
    /// are reported to the fleet's registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directed: Option<Directed>,
}

/// A rollout's part in an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directed {
    pub rollout: String,
    /// The probation the rollout asks for, at least (the node's
    /// `max-probation-seconds` still caps it).
    pub probation_seconds: u64,
    /// Set when the halted rollout asked the node to go back from this
    /// version of its release (the update installs the one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_from: Option<semver::Version>,
}

/// One line of `outpost update history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub seq: u64,
    pub at_ms: u64,
    pub plugin: PluginId,
    pub from: Option<semver::Version>,
    pub to: semver::Version,
    pub state: UpdateState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The fleet rollout whose release this update installs (not one that
    /// goes back from it): what a stopped rollout may undo, and no more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(UPDATES)?;
    txn.open_table(HISTORY)?;
    txn.open_table(BLOCKED)?;
    txn.open_table(FOLLOWS)?;
    txn.open_table(KV_SNAPSHOTS)?;
    txn.open_table(KV_SNAPSHOT_USAGE)?;
    Ok(())
}

/// The digests of staged components, which `components` must keep.
pub(super) fn staged_digests(txn: &WriteTransaction) -> Result<Vec<String>, StoreError> {
    let table = txn.open_table(UPDATES)?;
    let mut digests = Vec::new();
    for entry in table.iter()? {
        let (key, bytes) = entry?;
        let record: UpdateRecord = decode(&format!("update of {}", key.value()), bytes.value())?;
        if let Some(staged) = record.staged {
            digests.push(staged.component_digest);
        }
    }
    Ok(digests)
}

/// What the journal holds of a removed plugin; blocked versions only with
/// `purge` (a version that failed here should not come back with a
/// reinstall).
/// Returns whether an update was in flight.
pub(super) fn remove_all(
    txn: &WriteTransaction,
    plugin: &PluginId,
    purge: bool,
) -> Result<bool, StoreError> {
    let in_flight = txn.open_table(UPDATES)?.remove(plugin.as_str())?.is_some();
    if purge {
        txn.open_table(BLOCKED)?
            .retain(|(owner, _), _| owner != plugin.as_str())?;
    }
    txn.open_table(FOLLOWS)?.remove(plugin.as_str())?;
    drop_kv_snapshot(txn, plugin)?;
    Ok(in_flight)
}

/// Writes `record` as the plugin's update in flight (or clears it when it is
/// final) and appends the transition to the history, in `txn`.
pub(crate) fn write_transition(
    txn: &WriteTransaction,
    record: &UpdateRecord,
) -> Result<Transition, StoreError> {
    let mut updates = txn.open_table(UPDATES)?;
    if record.state.is_final() {
        updates.remove(record.plugin.as_str())?;
    } else {
        updates.insert(record.plugin.as_str(), encode(record).as_slice())?;
    }
    let mut history = txn.open_table(HISTORY)?;
    let seq = history.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    let transition = Transition {
        seq,
        at_ms: record.updated_at_ms,
        plugin: record.plugin.clone(),
        from: record.from.clone(),
        to: record.to.clone(),
        state: record.state,
        reason: record.reason.clone(),
        rollout: record
            .directed
            .as_ref()
            .filter(|directed| directed.back_from.is_none())
            .map(|directed| directed.rollout.clone()),
    };
    history.insert(seq, encode(&transition).as_slice())?;
    if let Some(directed) = &record.directed
        && let Some(back_from) = &directed.back_from
        && matches!(
            record.state,
            UpdateState::Probation | UpdateState::Confirmed
        )
    {
        // Back on the version before a stopped rollout's release: the
        // release is blocked in the same commit, so following a
        // requirement never takes it again, whatever happens next.
        block_version(
            txn,
            &record.plugin,
            back_from,
            &format!("rollout {} was stopped", directed.rollout),
        )?;
    }
    if seq > HISTORY_KEPT {
        let oldest_kept = seq - HISTORY_KEPT;
        history.retain(|key, _| key > oldest_kept)?;
    }
    Ok(transition)
}

/// Rewrites the update in flight without a history line: probation's
/// counters, which change with every call and are not transitions.
pub(crate) fn put_update(txn: &WriteTransaction, record: &UpdateRecord) -> Result<(), StoreError> {
    txn.open_table(UPDATES)?
        .insert(record.plugin.as_str(), encode(record).as_slice())?;
    Ok(())
}

pub(crate) fn block_version(
    txn: &WriteTransaction,
    plugin: &PluginId,
    version: &semver::Version,
    why: &str,
) -> Result<(), StoreError> {
    txn.open_table(BLOCKED)?
        .insert((plugin.as_str(), version.to_string().as_str()), why)?;
    Ok(())
}

/// Copies the plugin's kv into the snapshot tables (replacing any older
/// snapshot), in `txn`.
pub(crate) fn snapshot_kv(txn: &WriteTransaction, plugin: &PluginId) -> Result<(), StoreError> {
    drop_kv_snapshot(txn, plugin)?;
    let kv = txn.open_table(KV)?;
    let mut snapshot = txn.open_table(KV_SNAPSHOTS)?;
    for entry in kv.range((plugin.as_str(), "")..)? {
        let (key, value) = entry?;
        let (owner, name) = key.value();
        if owner != plugin.as_str() {
            break;
        }
        snapshot.insert((owner, name), value.value())?;
    }
    let usage = txn
        .open_table(KV_USAGE)?
        .get(plugin.as_str())?
        .map(|v| v.value())
        .unwrap_or((0, 0));
    txn.open_table(KV_SNAPSHOT_USAGE)?
        .insert(plugin.as_str(), usage)?;
    Ok(())
}

/// Puts the snapshot back as the plugin's kv and drops it, in `txn`. What
/// the plugin wrote since the snapshot is gone.
pub(crate) fn restore_kv(txn: &WriteTransaction, plugin: &PluginId) -> Result<bool, StoreError> {
    let Some(usage) = txn
        .open_table(KV_SNAPSHOT_USAGE)?
        .get(plugin.as_str())?
        .map(|v| v.value())
    else {
        return Ok(false);
    };
    let mut kv = txn.open_table(KV)?;
    kv.retain(|(owner, _), _| owner != plugin.as_str())?;
    let snapshot = txn.open_table(KV_SNAPSHOTS)?;
    for entry in snapshot.range((plugin.as_str(), "")..)? {
        let (key, value) = entry?;
        let (owner, name) = key.value();
        if owner != plugin.as_str() {
            break;
        }
        kv.insert((owner, name), value.value())?;
    }
    drop(snapshot);
    txn.open_table(KV_USAGE)?.insert(plugin.as_str(), usage)?;
    drop_kv_snapshot(txn, plugin)?;
    Ok(true)
}

pub(crate) fn drop_kv_snapshot(
    txn: &WriteTransaction,
    plugin: &PluginId,
) -> Result<(), StoreError> {
    txn.open_table(KV_SNAPSHOTS)?
        .retain(|(owner, _), _| owner != plugin.as_str())?;
    txn.open_table(KV_SNAPSHOT_USAGE)?.remove(plugin.as_str())?;
    Ok(())
}

impl NodeStore {
    /// The plugin's update in flight, if any.
    pub fn update(&self, plugin: &PluginId) -> Result<Option<UpdateRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPDATES)?;
        table
            .get(plugin.as_str())?
            .map(|bytes| decode(&format!("update of {plugin}"), bytes.value()))
            .transpose()
    }

    /// Every update in flight.
    pub fn updates(&self) -> Result<Vec<UpdateRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(UPDATES)?;
        let mut records = Vec::new();
        for entry in table.iter()? {
            let (key, bytes) = entry?;
            records.push(decode(
                &format!("update of {}", key.value()),
                bytes.value(),
            )?);
        }
        Ok(records)
    }

    /// Commits one transition on its own.
    pub fn transition(&self, record: &UpdateRecord) -> Result<Transition, StoreError> {
        let txn = self.begin_write()?;
        let transition = write_transition(&txn, record)?;
        self.commit(txn)?;
        Ok(transition)
    }

    /// The newest `limit` transitions, of one plugin or all, oldest first.
    pub fn update_history(
        &self,
        plugin: Option<&PluginId>,
        limit: usize,
    ) -> Result<Vec<Transition>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HISTORY)?;
        let mut lines = Vec::new();
        for entry in table.iter()?.rev() {
            let (key, bytes) = entry?;
            let line: Transition = decode(
                &format!("update history line {}", key.value()),
                bytes.value(),
            )?;
            if plugin.is_none_or(|p| *p == line.plugin) {
                lines.push(line);
                if lines.len() >= limit {
                    break;
                }
            }
        }
        lines.reverse();
        Ok(lines)
    }

    /// Versions of `plugin` that will not be installed again by an update,
    /// and why.
    pub fn blocked_versions(
        &self,
        plugin: &PluginId,
    ) -> Result<BTreeMap<semver::Version, String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BLOCKED)?;
        let mut blocked = BTreeMap::new();
        for entry in table.range((plugin.as_str(), "")..)? {
            let (key, why) = entry?;
            let (owner, version) = key.value();
            if owner != plugin.as_str() {
                break;
            }
            if let Ok(version) = semver::Version::parse(version) {
                blocked.insert(version, why.value().to_string());
            }
        }
        Ok(blocked)
    }

    /// Plugins that follow a version requirement, as the operator set them
    /// with `outpost plugin follow`.
    pub fn follows(&self) -> Result<BTreeMap<PluginId, String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FOLLOWS)?;
        let mut follows = BTreeMap::new();
        for entry in table.iter()? {
            let (id, requirement) = entry?;
            if let Ok(id) = PluginId::parse(id.value()) {
                follows.insert(id, requirement.value().to_string());
            }
        }
        Ok(follows)
    }

    /// Sets (`Some`) or clears what `plugin` follows.
    pub fn set_follow(
        &self,
        plugin: &PluginId,
        requirement: Option<&str>,
    ) -> Result<bool, StoreError> {
        let txn = self.begin_write()?;
        let changed = {
            let mut table = txn.open_table(FOLLOWS)?;
            match requirement {
                Some(requirement) => {
                    table.insert(plugin.as_str(), requirement)?;
                    true
                }
                None => table.remove(plugin.as_str())?.is_some(),
            }
        };
        self.commit(txn)?;
        Ok(changed)
    }

    /// Whether a kv snapshot of `plugin` is kept (an update on probation).
    pub fn has_kv_snapshot(&self, plugin: &PluginId) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(KV_SNAPSHOT_USAGE)?
            .get(plugin.as_str())?
            .is_some())
    }
}

/// Activations a crash may cut short before the version is refused: a
/// migration that kills the node each time must not loop forever.
const MAX_INTERRUPTED_ACTIVATIONS: u32 = 3;

impl NodeStore {
    /// Brings the journal and the install records into one coherent state after
    /// a restart (see `crate::updates`). Called by `Node::open` before the
    /// plugin table is loaded.
    pub(crate) fn replay_updates(&self) -> Result<(), StoreError> {
        let store = self;
        for mut record in store.updates()? {
            let installed = store.plugin(&record.plugin)?;
            let active = installed.as_ref().map(|r| r.active.version.clone());
            let at = crate::clock::now_millis();
            record.updated_at_ms = at;
            match record.state {
                state if state.is_preparing() => {
                    record.state = UpdateState::Refused;
                    record.reason = Some(format!(
                        "interrupted by a restart while {state}; it is looked for again at the \
                         next check"
                    ));
                    store.transition(&record)?;
                }
                UpdateState::Activating => {
                    record.interrupted_activations += 1;
                    let txn = store.begin_write()?;
                    if record.interrupted_activations >= MAX_INTERRUPTED_ACTIVATIONS {
                        record.state = UpdateState::Refused;
                        let why = format!(
                            "its activation was cut short {} times (the node stopped while it \
                             migrated); it is blocked",
                            record.interrupted_activations
                        );
                        block_version(&txn, &record.plugin, &record.to, &why)?;
                        record.reason = Some(why);
                    } else {
                        record.state = UpdateState::Staged;
                        record.reason =
                            Some("its activation was cut short by a restart; trying again".into());
                    }
                    write_transition(&txn, &record)?;
                    NodeStore::drop_unreferenced_components(&txn)?;
                    store.commit(txn)?;
                }
                UpdateState::Probation if active.as_ref() != Some(&record.to) => {
                    // Cannot happen through this module; said rather than hidden.
                    record.state = UpdateState::Refused;
                    record.reason = Some(format!(
                        "the journal said probation but {} is active",
                        active
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "nothing".into())
                    ));
                    store.transition(&record)?;
                }
                UpdateState::Probation => {
                    if let Some(probation) = &mut record.probation {
                        probation.carried_calls = probation.calls;
                        probation.carried_bad = probation.bad;
                    }
                    let txn = store.begin_write()?;
                    put_update(&txn, &record)?;
                    store.commit(txn)?;
                }
                _ => {
                    let staged_missing = match &record.staged {
                        Some(staged) => store.component(&staged.component_digest)?.is_none(),
                        None => true,
                    };
                    if staged_missing {
                        record.state = UpdateState::Refused;
                        record.reason = Some("its staged component is missing".into());
                        store.transition(&record)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DATABASE_FILE_NAME, KvWriter};

    fn id(text: &str) -> PluginId {
        PluginId::parse(text).expect("valid id")
    }

    fn record(plugin: &PluginId, state: UpdateState) -> UpdateRecord {
        UpdateRecord {
            plugin: plugin.clone(),
            from: Some(semver::Version::new(1, 0, 0)),
            to: semver::Version::new(1, 1, 0),
            source: "test".into(),
            state,
            reason: None,
            asks: Vec::new(),
            approved: true,
            now: false,
            staged: None,
            probation: None,
            interrupted_activations: 0,
            started_at_ms: 1,
            updated_at_ms: 2,
            directed: None,
        }
    }

    #[test]
    fn a_snapshot_restores_kv_exactly_and_touches_no_other_plugin() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let (a, b) = (id("acme/a"), id("acme/b"));
        let txn = store.begin_write().expect("txn");
        {
            let kv = KvWriter::new(&txn);
            kv.set(&a, "kept", b"before", 1 << 20)
                .expect("set")
                .expect("fits");
            kv.set(&a, "changed", b"old", 1 << 20)
                .expect("set")
                .expect("fits");
            kv.set(&b, "other", b"b's", 1 << 20)
                .expect("set")
                .expect("fits");
        }
        snapshot_kv(&txn, &a).expect("snapshot");
        {
            let kv = KvWriter::new(&txn);
            kv.set(&a, "changed", b"new and longer", 1 << 20)
                .expect("set")
                .expect("fits");
            kv.set(&a, "added", b"x", 1 << 20)
                .expect("set")
                .expect("fits");
            kv.delete(&a, "kept").expect("delete");
            kv.set(&b, "other", b"b changed", 1 << 20)
                .expect("set")
                .expect("fits");
        }
        store.commit(txn).expect("commit");
        let before_usage = crate::store::KvUsage {
            bytes: ("kept".len() + 6 + "changed".len() + 3) as u64,
            keys: 2,
        };
        assert!(store.has_kv_snapshot(&a).expect("read"));

        let txn = store.begin_write().expect("txn");
        assert!(restore_kv(&txn, &a).expect("restore"));
        store.commit(txn).expect("commit");
        assert_eq!(
            store.kv_get(&a, "kept").expect("get"),
            Some(b"before".to_vec())
        );
        assert_eq!(
            store.kv_get(&a, "changed").expect("get"),
            Some(b"old".to_vec())
        );
        assert_eq!(store.kv_get(&a, "added").expect("get"), None);
        assert_eq!(store.kv_usage(&a).expect("usage"), before_usage);
        assert_eq!(
            store.kv_get(&b, "other").expect("get"),
            Some(b"b changed".to_vec())
        );
        assert!(!store.has_kv_snapshot(&a).expect("read"));
    }

    #[test]
    fn transitions_keep_the_record_and_its_history_together() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let a = id("acme/a");
        store
            .transition(&record(&a, UpdateState::Found))
            .expect("found");
        store
            .transition(&record(&a, UpdateState::Staged))
            .expect("staged");
        assert_eq!(
            store.update(&a).expect("read").map(|r| r.state),
            Some(UpdateState::Staged)
        );
        store
            .transition(&record(&a, UpdateState::Confirmed))
            .expect("confirmed");
        assert_eq!(store.update(&a).expect("read"), None);
        let states: Vec<_> = store
            .update_history(Some(&a), 10)
            .expect("history")
            .into_iter()
            .map(|t| (t.seq, t.state))
            .collect();
        assert_eq!(
            states,
            [
                (1, UpdateState::Found),
                (2, UpdateState::Staged),
                (3, UpdateState::Confirmed)
            ]
        );
        assert_eq!(store.update_history(Some(&a), 1).expect("history").len(), 1);
        assert!(
            store
                .update_history(Some(&id("acme/b")), 10)
                .expect("history")
                .is_empty()
        );
    }
}
