//! Changing a running node's plugins: the update state machine.
//!
//! Every install, upgrade, rollback and removal goes through here, whether
//! an operator typed it, an update was found in the registry, or a bundle
//! came on a USB stick. Per plugin, one update at a time, journaled in the
//! node database with one commit per transition (`store::journal`):
//!
//! ```text
//! found → downloaded → verified → compiled → staged ─┬→ held (asks for more: approve)
//!                                                    ├→ deferred (window, lock)
//!                                                    └→ activating → probation → confirmed
//!                                                                        └──────→ rolled-back
//! any step before activation can end in refused; the active version serves throughout.
//! ```
//!
//! - **Staging** keeps the new component in the database and its assets in
//!   their own version folder, compiled, linked and asked for its version,
//!   while the old version serves.
//! - **Activation** is one transaction: snapshot the plugin's kv, run the new
//!   version's `migrate` into it, check `health`, write the install record
//!   and the `probation` state. Only after the commit is the new version
//!   swapped into the plugin table: calls in flight finish on the old one.
//! - **Probation** judges the new version on its real calls and health
//!   (`probation`); failing it restores the kv snapshot and the previous
//!   version in one transaction, and blocks that version; passing it drops
//!   both.
//! - **Replay** at open: an update cut short before `staged` is dropped (it
//!   is found again); one cut short while `activating` goes back to
//!   `staged` (the transaction never committed); one on probation carries
//!   on. Nothing is ever half-active, because only commits move the active
//!   version, and the plugin table is loaded from what was committed.
//!
//! kv writes made during probation are undone by a rollback (the old version
//! gets back the data it knew); messages queued in the outbox are not: what
//! was promised to the world stays promised.

mod activate;
pub mod agent;
pub mod consent;
pub mod directed;
pub mod probation;
mod stage;

pub use activate::{
    activate_due, activation_blocked, apply, approve, confirm, judge, proceed, roll_back,
    roll_back_directed,
};
pub use stage::{offer, resume_orphaned_probation};

use crate::compile_cache::sha256_hex;
use crate::health::describe_health;
use crate::install::{InstallError, InstallReport};
use crate::manifest::{Manifest, PluginId};
use crate::node::Node;
use crate::package;
use crate::plugins::{LoadedPlugin, PluginSlot};
use crate::store::{
    Directed, InstalledVersion, NodeStore, PluginRecord, StoreError, UpdateRecord, UpdateState,
    block_version, drop_kv_snapshot, restore_kv, snapshot_kv, write_transition,
};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "an update of {plugin} to {to} is {state}; wait for it to be confirmed or roll it back \
         (`outpost update rollback {plugin}`), then try again"
    )]
    Busy {
        plugin: PluginId,
        to: semver::Version,
        state: UpdateState,
    },
    #[error("cannot check for updates: {0}")]
    Check(String),
    #[error("the update of {plugin} to {to} was replaced by another while it downloaded")]
    Superseded {
        plugin: PluginId,
        to: semver::Version,
    },
    #[error("no update of {0} is in flight; `outpost update status` shows what is")]
    NoUpdate(PluginId),
    #[error("the update of {plugin} to {to} is {state}, so it cannot be {wanted}")]
    WrongState {
        plugin: PluginId,
        to: semver::Version,
        state: UpdateState,
        wanted: &'static str,
    },
    #[error("{0} is not installed; `outpost plugin list` shows what is")]
    NotInstalled(PluginId),
    #[error(
        "{plugin} {version} came from {source_name}, which signed {expected}; the release is refused"
    )]
    NotTheRelease {
        plugin: PluginId,
        version: semver::Version,
        source_name: String,
        expected: String,
    },
    #[error(
        "{plugin} {version} has no update on probation to roll back, and once a version is \
         confirmed the one before it is no longer kept. To go back, remove the plugin and \
         install the version you want"
    )]
    NothingToRollBackTo {
        plugin: PluginId,
        version: semver::Version,
    },
}

/// A package offered for installation.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// The unpacked package folder.
    pub folder: &'a Path,
    /// For the journal and messages: "package ./zpl", "registry http://…".
    pub source: String,
    /// The operator already agreed to whatever it asks (`--yes`).
    pub approved: bool,
    /// Activate as soon as staged, whatever the window or the lock: the
    /// operator asked for it by hand. Also: a failure does not block the
    /// version (the operator may fix the node's policy and try again).
    pub now: bool,
}

pub fn now_ms() -> u64 {
    crate::clock::now_millis()
}

/// Runs `work` on a thread of its own at background priority (nice 10 on
/// Linux), and waits for it. Staging and activating an update is CPU work
/// (hashing, loading code, the plugin's own `migrate`) that must not take a
/// core from a sale: on a two-core box, at normal priority it made the
/// calls of a till calling without pause wait for the scheduler (their p99
/// went from 0.6 ms to 4.6 ms; docs/performance.md). The priority is set on
/// a fresh thread because an unprivileged process cannot raise it again.
pub fn at_background_priority<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let work = std::sync::Mutex::new(Some(work));
    let ran = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("outpost-update".into())
            .spawn_scoped(scope, || {
                lower_this_threads_priority();
                let work = work.lock().ok().and_then(|mut slot| slot.take());
                work.map(|work| work())
            });
        match worker {
            Ok(worker) => worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        }
    });
    match ran {
        Some(result) => result,
        // No thread to be had: do the work here, at this thread's priority.
        None => match work.into_inner().ok().flatten() {
            Some(work) => work(),
            None => unreachable!("the update work neither ran nor stayed"),
        },
    }
}

fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority on this thread's id
    // changes only this thread's nice value.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 10) != 0 {
            tracing::debug!("cannot lower the update thread's priority");
        }
    }
}

/// Commits `record` (already moved to its new state) and tells the centre.
fn commit_transition(node: &Node, record: &mut UpdateRecord) -> Result<(), StoreError> {
    record.updated_at_ms = now_ms();
    node.store.transition(record)?;
    announce(node, record);
    Ok(())
}

/// Every transition is an event for the centre, through the outbox, and
/// a report to the fleet when a rollout asked for the update.
fn announce(node: &Node, record: &UpdateRecord) {
    if let Some(directed) = &record.directed {
        report_to_fleet(node, record, directed);
    }
    tracing::info!(
        plugin = %record.plugin,
        from = record.from.as_ref().map(ToString::to_string).unwrap_or_default(),
        to = %record.to,
        reason = record.reason.as_deref().unwrap_or(""),
        "update {}", record.state
    );
    if !node.events().enabled() {
        return;
    }
    let data = json!({
        "plugin": record.plugin.as_str(),
        "from": record.from.as_ref().map(ToString::to_string),
        "to": record.to.to_string(),
        "state": record.state.name(),
        "reason": record.reason,
        "source": record.source,
    });
    if let Err(error) = node.events().record("plugin.update", data) {
        tracing::warn!("cannot queue the update event for the centre: {error}");
    }
}

/// The rollout's view of `record`: its own release's progress, or, for the
/// update that takes the node back from it, whether it went back.
fn report_to_fleet(node: &Node, record: &UpdateRecord, directed: &Directed) {
    use crate::fleet::report::{Tell, queue, stage_of};
    use outpost_registry::rollout::Stage;
    let (version, stage, reason) = match &directed.back_from {
        // A refusal that blocked nothing (a download that failed, an
        // operator's update taking its place) is no verdict on the
        // release: the node tries again, and the rollout does not count
        // it as failed.
        None if record.state == UpdateState::Refused && record.now => {
            (&record.to, Stage::Downloading, record.reason.clone())
        }
        None => (&record.to, stage_of(record.state), record.reason.clone()),
        Some(back_from) => match record.state {
            UpdateState::Probation | UpdateState::Confirmed => (
                back_from,
                Stage::RolledBack,
                Some(format!(
                    "went back to {} as rollout {} asked",
                    record.to, directed.rollout
                )),
            ),
            UpdateState::Refused | UpdateState::RolledBack => (
                back_from,
                Stage::Failed,
                Some(format!(
                    "could not go back to {}: {}",
                    record.to,
                    record.reason.as_deref().unwrap_or("refused")
                )),
            ),
            _ => return,
        },
    };
    let tell = Tell {
        rollout: &directed.rollout,
        plugin: record.plugin.as_str(),
        version,
        stage,
        reason,
    };
    if let Err(error) = queue(&node.store, node.outbox(), node.data_dir(), tell) {
        tracing::warn!(plugin = %record.plugin, rollout = %directed.rollout, "cannot queue the report for the fleet: {error}");
    }
}

fn refuse(
    node: &Node,
    record: &mut UpdateRecord,
    error: &dyn std::fmt::Display,
) -> Result<(), StoreError> {
    activate::let_go(node, &node.staged, &record.plugin);
    record.state = UpdateState::Refused;
    record.reason = Some(error.to_string());
    record.updated_at_ms = now_ms();
    let txn = node.store.begin_write()?;
    if !record.now {
        block_version(&txn, &record.plugin, &record.to, &error.to_string())?;
    }
    write_transition(&txn, record)?;
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    announce(node, record);
    Ok(())
}

/// Gives up an update the agent found but did not offer (it could not be
/// downloaded, or its digest is not the one the fleet's director named):
/// refused, not blocked (the registry may answer better next time), unless
/// an operator replaced it meanwhile.
fn abandon(node: &Node, mut record: UpdateRecord, why: &str) -> Result<(), StoreError> {
    let _changing = node.lock_changes();
    if node.store.update(&record.plugin)?.as_ref() != Some(&record) {
        return Ok(());
    }
    record.now = true;
    refuse(node, &mut record, &why)
}

/// A new update record, `found`, committed. Refused when an update of the
/// plugin is activating or on probation (the second waits for the first).
/// A staged, held or deferred one for another version is replaced.
pub fn begin(
    node: &Node,
    plugin: &PluginId,
    to: &semver::Version,
    source: &str,
    approved: bool,
    directed: Option<Directed>,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node.lock_changes();
    begin_locked(node, plugin, to, source, approved, false, directed)
}

fn begin_locked(
    node: &Node,
    plugin: &PluginId,
    to: &semver::Version,
    source: &str,
    approved: bool,
    now: bool,
    directed: Option<Directed>,
) -> Result<UpdateRecord, UpdateError> {
    if let Some(mut existing) = node.store.update(plugin)? {
        match existing.state {
            // The agent waits for probation to end; an operator installing
            // by hand replaces the version on probation (below, in
            // `activate`, the fallback stays the last confirmed version and
            // its kv snapshot).
            UpdateState::Probation if now => {
                existing.state = UpdateState::Refused;
                existing.reason = Some(format!(
                    "superseded on probation by {to} from {source}; the version to go back to stays the one before {}",
                    existing.to
                ));
                commit_transition(node, &mut existing)?;
            }
            UpdateState::Activating | UpdateState::Probation => {
                return Err(UpdateError::Busy {
                    plugin: plugin.clone(),
                    to: existing.to,
                    state: existing.state,
                });
            }
            _ => {
                existing.now = true; // superseded: no block
                refuse(
                    node,
                    &mut existing,
                    &format!("superseded by {to} from {source}"),
                )?;
            }
        }
    }
    let from = node.store.plugin(plugin)?.map(|r| r.active.version);
    let at = now_ms();
    let mut record = UpdateRecord {
        plugin: plugin.clone(),
        from,
        to: to.clone(),
        source: source.to_string(),
        state: UpdateState::Found,
        reason: None,
        asks: Vec::new(),
        approved,
        now,
        staged: None,
        probation: None,
        interrupted_activations: 0,
        started_at_ms: at,
        updated_at_ms: at,
        directed,
    };
    commit_transition(node, &mut record)?;
    crate::failpoint::reached("after:found");
    Ok(record)
}

/// Moves `record` on to `state` and commits it.
pub fn advance(
    node: &Node,
    record: &mut UpdateRecord,
    state: UpdateState,
) -> Result<(), StoreError> {
    record.state = state;
    record.reason = None;
    commit_transition(node, record)?;
    crate::failpoint::reached(&format!("after:{state}"));
    Ok(())
}

/// Drops compiled code and asset folders nothing refers to any more. The
/// change itself is committed by then: a failure here is logged, not
/// reported as the change failing.
fn tidy_after_change(node: &Node) {
    if let Err(error) = node.tidy() {
        tracing::warn!("cannot remove code and assets no version uses: {error}");
    }
}

/// Installs or upgrades the plugin package at `path` now, as an
/// operator's approved install (`outpost plugin add --yes`): through the update machine
/// (`crate::updates`), so an upgrade is on probation and can roll back.
pub fn install(node: &Node, path: &Path) -> Result<InstallReport, InstallError> {
    let package = Offer {
        folder: path,
        source: format!("package {}", path.display()),
        approved: true,
        now: true,
    };
    let record = offer(node, package, None).map_err(|error| match error {
        UpdateError::Install(error) => error,
        UpdateError::Store(error) => InstallError::Store(error),
        other => InstallError::Update(other.to_string()),
    })?;
    let unchanged = record.reason.as_deref() == Some("already installed");
    let plugin = node
        .table
        .loaded(&record.plugin)
        .filter(|p| p.version == record.to)
        .ok_or_else(|| {
            InstallError::Update(format!(
                "{} {} is {}{}",
                record.plugin,
                record.to,
                record.state,
                record
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
        })?;
    let limits = plugin.spec.limits;
    Ok(InstallReport {
        id: record.plugin.to_string(),
        version: record.to.to_string(),
        previous: record
            .from
            .as_ref()
            .filter(|from| **from != record.to)
            .map(ToString::to_string),
        world: plugin.manifest.world.qualified_name(),
        grants: plugin.spec.grants.describe(),
        deadline_ms: limits.deadline.as_millis() as u64,
        memory_mib: limits.memory_bytes >> 20,
        fuel: limits.fuel,
        changed: !unchanged,
        state: record.state.name().to_string(),
        health: if unchanged {
            "unchanged".into()
        } else {
            record.reason.clone().unwrap_or_default()
        },
    })
}

/// Removes a plugin; with `purge`, its stored data too.
pub fn remove(node: &Node, id: &PluginId, purge: bool) -> Result<bool, StoreError> {
    let _changing = node.lock_changes();
    // Taken under the change lock, so an update in flight is either
    // done before this or never started: removal drops it whole.
    let removed = node.store.remove_plugin(id, purge)?;
    node.table.remove(id);
    activate::let_go(node, &node.fallbacks, id);
    activate::let_go(node, &node.staged, id);
    tidy_after_change(node);
    if removed {
        tracing::info!(plugin = %id, purge, "removed");
    }
    Ok(removed)
}
