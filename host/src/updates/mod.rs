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

pub mod agent;
pub mod consent;
pub mod probation;

use crate::compile_cache::sha256_hex;
use crate::health::describe_health;
use crate::install::{InstallError, InstallReport};
use crate::manifest::{Manifest, PluginId};
use crate::node::Node;
use crate::package;
use crate::plugins::{LoadedPlugin, PluginSlot};
use crate::store::{
    InstalledVersion, NodeStore, PluginRecord, ProbationRecord, StoreError, UpdateRecord,
    UpdateState, block_version, drop_kv_snapshot, restore_kv, snapshot_kv, write_transition,
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

/// Every transition is an event for the centre, through the outbox.
fn announce(node: &Node, record: &UpdateRecord) {
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

fn refuse(
    node: &Node,
    record: &mut UpdateRecord,
    error: &dyn std::fmt::Display,
) -> Result<(), StoreError> {
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

/// Gives up an update the agent found but could not download: refused, not
/// blocked (the registry may answer better next time), unless an operator
/// replaced it meanwhile.
fn abandon(node: &Node, mut record: UpdateRecord, why: &str) -> Result<(), StoreError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    now: bool,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    begin_locked(node, plugin, to, source, approved, now)
}

fn begin_locked(
    node: &Node,
    plugin: &PluginId,
    to: &semver::Version,
    source: &str,
    approved: bool,
    now: bool,
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

/// Installs the package at `offer.folder` through the whole machine, under
/// the node's change lock: stages it, then activates it if it asks for
/// nothing the operator has not agreed to and policy allows it now. Returns
/// the record as it stands (`held`, `deferred`, `probation`, `confirmed`),
/// or the refusal (committed as `refused`, the active version untouched).
pub fn offer(
    node: &Node,
    offer: Offer<'_>,
    found: Option<UpdateRecord>,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = &found
        && node.store.update(&found.plugin)?.as_ref() != Some(found)
    {
        // Found and downloaded outside the change lock: an operator replaced
        // or removed it meanwhile.
        return Err(UpdateError::Superseded {
            plugin: found.plugin.clone(),
            to: found.to.clone(),
        });
    }
    let mut touched = None;
    let result = offer_locked(node, offer, found, &mut touched);
    if result.is_err()
        && let Some(plugin) = touched
    {
        // An operator's offer supersedes a version on probation before it
        // is checked; refused, it must not leave that version unjudged.
        resume_orphaned_probation(node, &plugin);
    }
    tidy_after_change(node);
    result
}

/// Drops compiled code and asset folders nothing refers to any more. The
/// change itself is committed by then: a failure here is logged, not
/// reported as the change failing.
fn tidy_after_change(node: &Node) {
    if let Err(error) = node.tidy() {
        tracing::warn!("cannot remove code and assets no version uses: {error}");
    }
}

/// A version serving with its previous version and kv snapshot kept but no
/// update record is on probation that nothing judges: an operator's offer
/// superseded it and was then refused, or a crash fell between the two.
/// Puts it back on probation (from now).
pub fn resume_orphaned_probation(node: &Node, plugin: &PluginId) {
    let resume = || -> Result<(), StoreError> {
        if node.store.update(plugin)?.is_some() || !node.store.has_kv_snapshot(plugin)? {
            return Ok(());
        }
        let Some(installed) = node.store.plugin(plugin)? else {
            return Ok(());
        };
        let Some(previous) = installed.previous else {
            return Ok(());
        };
        let asked = Manifest::parse(&installed.active.manifest)
            .map(|m| m.probation)
            .unwrap_or_default();
        let now = now_ms();
        let mut record = UpdateRecord {
            plugin: plugin.clone(),
            from: Some(previous.version),
            to: installed.active.version,
            source: "resumed".into(),
            state: UpdateState::Probation,
            reason: Some("probation resumed: nothing was judging this version".into()),
            asks: Vec::new(),
            approved: true,
            now: true,
            staged: None,
            probation: Some(probation::start(&node.config.updates, &asked, now, (0, 0))),
            interrupted_activations: 0,
            started_at_ms: now,
            updated_at_ms: now,
        };
        commit_transition(node, &mut record)
    };
    if let Err(error) = resume() {
        tracing::warn!(%plugin, "cannot put the version back on probation: {error}");
    }
}

fn offer_locked(
    node: &Node,
    offer: Offer<'_>,
    found: Option<UpdateRecord>,
    touched: &mut Option<PluginId>,
) -> Result<UpdateRecord, UpdateError> {
    let package = match package::read(offer.folder, node.config.policy.max_assets_bytes) {
        Ok(package) => package,
        Err(error) => {
            if let Some(mut record) = found {
                refuse(node, &mut record, &error)?;
            }
            return Err(InstallError::from(error).into());
        }
    };
    let manifest = &package.manifest;
    let digest = sha256_hex(&package.component);
    let id = manifest.id.clone();
    *touched = Some(id.clone());
    let version = manifest.version.clone();
    let existing = node.store.plugin(&id)?;
    let mut record = match found {
        Some(mut record) => {
            advance(node, &mut record, UpdateState::Downloaded)?;
            if record.plugin != id || record.to != version {
                let mut record = record;
                let error = UpdateError::NotTheRelease {
                    plugin: id,
                    version,
                    source_name: record.source.clone(),
                    expected: format!("{}@{}", record.plugin, record.to),
                };
                refuse(node, &mut record, &error)?;
                return Err(error);
            }
            record
        }
        None => {
            // Already active, the same code: nothing to do.
            if let Some(existing) = &existing
                && existing.active.version == version
                && existing.active.component_digest == digest
                && let Some(PluginSlot::Loaded(_)) = node.table.get(&id)
            {
                let mut unchanged = unchanged_record(existing, &offer.source);
                unchanged.reason = Some("already installed".into());
                return Ok(unchanged);
            }
            // The same version already staged or held: this is the same offer.
            if let Some(staged) = node.store.update(&id)?
                && staged.to == version
                && staged
                    .staged
                    .as_ref()
                    .is_some_and(|s| s.component_digest == digest)
            {
                let mut staged = staged;
                staged.approved |= offer.approved;
                staged.now |= offer.now;
                return proceed(node, staged);
            }
            begin_locked(
                node,
                &id,
                &version,
                &offer.source,
                offer.approved,
                offer.now,
            )?
        }
    };

    // Verified: the manifest holds within policy.
    let manifest_path = package.folder.join(crate::manifest::MANIFEST_FILE_NAME);
    if let Err(source) = manifest.limits_under(&node.config.policy) {
        let error = InstallError::Policy {
            path: manifest_path,
            source,
        };
        refuse(node, &mut record, &error)?;
        return Err(error.into());
    }
    advance(node, &mut record, UpdateState::Verified)?;

    // Compiled: compiled, linked, its version asked; compared with what is
    // installed (no downgrades, no new code under an old version).
    let checked = at_background_priority(|| {
        node.check_package(&package, &digest, || {
            let Some(existing) = &existing else {
                return Ok(());
            };
            let installed = &existing.active;
            if installed.version == version && installed.component_digest != digest {
                return Err(InstallError::SameVersionDifferentCode {
                    id: id.clone(),
                    version: version.clone(),
                });
            }
            if installed.version > version {
                return Err(InstallError::Downgrade {
                    id: id.clone(),
                    installed: installed.version.clone(),
                    offered: version.clone(),
                });
            }
            Ok(())
        })
    });
    let plugin = match checked {
        Ok((plugin, _)) => plugin,
        Err(error) => {
            refuse(node, &mut record, &error)?;
            return Err(error.into());
        }
    };
    advance(node, &mut record, UpdateState::Compiled)?;

    // Staged: the component in the database beside the active version.
    let staged = InstalledVersion {
        version: version.clone(),
        manifest: manifest.text.clone(),
        component_digest: digest.clone(),
        component_bytes: package.component.len() as u64,
        grants: manifest.grants.clone(),
        installed_at: crate::clock::now_seconds(),
    };
    // What the operator approved: the active version's grants, and the
    // limits it runs under (one the policy no longer allows compares as
    // the new version's own, so only grants are asked about).
    let approved_before = existing.as_ref().map(|r| {
        let limits = Manifest::parse(&r.active.manifest)
            .ok()
            .and_then(|m| m.limits_under(&node.config.policy).ok())
            .unwrap_or(plugin.spec.limits);
        (r.active.grants.clone(), limits)
    });
    record.asks = consent::asks(
        approved_before.as_ref().map(|(g, l)| (g, l)),
        (manifest, &plugin.spec.limits),
    );
    record.approved |= record.asks.is_empty();
    record.staged = Some(staged);
    record.state = UpdateState::Staged;
    record.reason = None;
    record.updated_at_ms = now_ms();
    let txn = node.store.begin_write()?;
    NodeStore::put_component(&txn, &digest, &package.component)?;
    write_transition(&txn, &record)?;
    node.store.commit(txn)?;
    announce(node, &record);
    crate::failpoint::reached("after:staged");
    proceed_with(node, record, Some(plugin))
}

fn unchanged_record(existing: &PluginRecord, source: &str) -> UpdateRecord {
    UpdateRecord {
        plugin: existing.id.clone(),
        from: Some(existing.active.version.clone()),
        to: existing.active.version.clone(),
        source: source.to_string(),
        state: UpdateState::Confirmed,
        reason: None,
        asks: Vec::new(),
        approved: true,
        now: true,
        staged: None,
        probation: None,
        interrupted_activations: 0,
        started_at_ms: now_ms(),
        updated_at_ms: now_ms(),
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
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Taken under the change lock, so an update in flight is either
    // done before this or never started: removal drops it whole.
    let removed = node.store.remove_plugin(id, purge)?;
    node.table.remove(id);
    tidy_after_change(node);
    if removed {
        tracing::info!(plugin = %id, purge, "removed");
    }
    Ok(removed)
}

/// Why a staged update may not be activated now, if it may not.
pub fn activation_blocked(node: &Node, record: &UpdateRecord) -> Option<String> {
    if record.now {
        return None;
    }
    if let Some(lock) = node.update_lock.current() {
        return Some(format!(
            "an app holds the update lock ({}); it is swapped in when the lock is released",
            lock.holder
        ));
    }
    let window = node.config.updates.window()?;
    let now = jiff::Zoned::now();
    let minute = (now.hour() as u16) * 60 + now.minute() as u16;
    (!window.contains(minute))
        .then(|| format!("outside the maintenance window {window} (updates.window)"))
}

/// Decides what happens to a staged (or held, or deferred) update: hold it
/// for approval, defer it, or activate it.
pub fn proceed(node: &Node, record: UpdateRecord) -> Result<UpdateRecord, UpdateError> {
    proceed_with(node, record, None)
}

fn proceed_with(
    node: &Node,
    mut record: UpdateRecord,
    plugin: Option<LoadedPlugin>,
) -> Result<UpdateRecord, UpdateError> {
    if !record.approved {
        if record.state != UpdateState::Held {
            record.state = UpdateState::Held;
            record.reason = Some(format!("it asks for more: {}", record.asks.join("; ")));
            commit_transition(node, &mut record)?;
        }
        return Ok(record);
    }
    if let Some(why) = activation_blocked(node, &record) {
        if record.state != UpdateState::Deferred || record.reason.as_deref() != Some(&why) {
            record.state = UpdateState::Deferred;
            record.reason = Some(why);
            commit_transition(node, &mut record)?;
        }
        return Ok(record);
    }
    activate(node, record, plugin)
}

/// Activation: one transaction for the kv snapshot, `migrate`, `health`,
/// the install record and the new state; then the pointer swap.
fn activate(
    node: &Node,
    mut record: UpdateRecord,
    plugin: Option<LoadedPlugin>,
) -> Result<UpdateRecord, UpdateError> {
    let id = record.plugin.clone();
    let Some(staged) = record.staged.clone() else {
        return Err(UpdateError::WrongState {
            plugin: id,
            to: record.to,
            state: record.state,
            wanted: "activated (nothing is staged)",
        });
    };
    let plugin = match plugin {
        Some(plugin) => plugin,
        None => match node.load(&id, &staged) {
            Ok((plugin, _)) => plugin,
            Err(why) => {
                let error = format!("the staged version cannot be loaded: {why}");
                refuse(node, &mut record, &error)?;
                return Ok(record);
            }
        },
    };
    advance(node, &mut record, UpdateState::Activating)?;
    match swap_in(node, &mut record, plugin, staged) {
        Ok(()) => Ok(record),
        Err(error) => {
            // A failure with no refusal committed (a full disk, a lost
            // transaction) must not leave the update `activating` until a
            // restart: nothing of the activation was committed.
            let still_activating = node
                .store
                .update(&record.plugin)
                .ok()
                .flatten()
                .is_some_and(|r| r.state == UpdateState::Activating);
            if still_activating
                && let Err(refusing) = refuse(
                    node,
                    &mut record,
                    &format!("its activation failed: {error}"),
                )
            {
                tracing::warn!(plugin = %record.plugin, "cannot record the failed activation ({refusing}); it is undone at the next start");
            }
            Err(error)
        }
    }
}

/// Activation's transaction and the swap (see [`activate`]).
fn swap_in(
    node: &Node,
    record: &mut UpdateRecord,
    plugin: LoadedPlugin,
    staged: InstalledVersion,
) -> Result<(), UpdateError> {
    let id = record.plugin.clone();
    let existing = node.store.plugin(&id)?;
    let previous_loaded = node.table.loaded(&id);
    let from_version = existing.as_ref().map(|r| r.active.version.to_string());

    // A version on probation being replaced by hand keeps its fallback: the
    // last confirmed version, and the kv from before it.
    let fallback = match &existing {
        Some(existing) if existing.previous.is_some() && node.store.has_kv_snapshot(&id)? => {
            existing.previous.clone()
        }
        Some(existing) => Some(existing.active.clone()),
        None => None,
    };
    let txn = node.store.begin_write()?;
    if existing.is_some() && !node.store.has_kv_snapshot(&id)? {
        snapshot_kv(&txn, &id)?;
    }
    let (migrated, txn) =
        node.invoker
            .call_batched(&plugin, "migrate", txn, |store, instance, plugin| {
                let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                lifecycle.call_migrate(&mut *store, from_version.as_deref())
            });
    if let Err(error) = migrated {
        drop(txn);
        refuse(node, record, &format!("its migrate failed: {error}"))?;
        return Err(InstallError::Call(error).into());
    }
    crate::failpoint::reached("during:migrate");
    let lost = |during: &str| StoreError::Record {
        what: "the activation transaction".into(),
        detail: format!("it was lost during {during}"),
    };
    let txn = txn.ok_or_else(|| lost("migrate"))?;
    let (health, txn) =
        node.invoker
            .call_batched(&plugin, "health", txn, |store, instance, plugin| {
                let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                lifecycle.call_health(&mut *store).map(Ok)
            });
    let health = match health {
        Ok(health) if health.status != crate::bindings::lifecycle::HealthStatus::Failing => health,
        Ok(health) => {
            drop(txn);
            let error = InstallError::Unhealthy {
                id: id.clone(),
                version: record.to.clone(),
                detail: health.detail,
            };
            refuse(node, record, &error)?;
            return Err(error.into());
        }
        Err(error) => {
            drop(txn);
            refuse(node, record, &format!("its health check failed: {error}"))?;
            return Err(InstallError::Call(error).into());
        }
    };
    let txn = txn.ok_or_else(|| lost("health"))?;
    let now = now_ms();
    match &existing {
        Some(_) => {
            let baseline = previous_loaded
                .as_ref()
                .map(|p| (p.stats.calls(), p.stats.bad()))
                .unwrap_or((0, 0));
            record.probation = Some(probation::start(
                &node.config.updates,
                &plugin.manifest.probation,
                now,
                baseline,
            ));
            record.state = UpdateState::Probation;
            NodeStore::put_plugin(
                &txn,
                &PluginRecord {
                    id: id.clone(),
                    active: staged.clone(),
                    previous: fallback.clone(),
                },
            )?;
        }
        None => {
            // A new plugin has nothing to go back to: confirmed at once.
            record.state = UpdateState::Confirmed;
            NodeStore::put_plugin(
                &txn,
                &PluginRecord {
                    id: id.clone(),
                    active: staged.clone(),
                    previous: None,
                },
            )?;
        }
    }
    record.reason = Some(describe_health(&health));
    record.staged = None;
    record.updated_at_ms = now;
    write_transition(&txn, record)?;
    // A version replaced on probation is neither active nor the fallback.
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    node.table.put(PluginSlot::Loaded(Arc::new(plugin)));
    announce(node, record);
    crate::failpoint::reached(&format!("after:{}", record.state));
    Ok(())
}

/// Confirms a version on probation: the previous version's code and the kv
/// snapshot are dropped.
pub fn confirm(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    confirm_locked(node, plugin)
}

fn confirm_locked(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    let mut record = on_probation(node, plugin, "confirmed")?;
    let txn = node.store.begin_write()?;
    if let Some(mut installed) = node.store.plugin(plugin)? {
        installed.previous = None;
        NodeStore::put_plugin(&txn, &installed)?;
    }
    drop_kv_snapshot(&txn, plugin)?;
    record.state = UpdateState::Confirmed;
    record.reason = Some("passed probation".into());
    record.updated_at_ms = now_ms();
    write_transition(&txn, &record)?;
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    announce(node, &record);
    tidy_after_change(node);
    Ok(record)
}

fn on_probation(
    node: &Node,
    plugin: &PluginId,
    wanted: &'static str,
) -> Result<UpdateRecord, UpdateError> {
    let record = node
        .store
        .update(plugin)?
        .ok_or_else(|| UpdateError::NoUpdate(plugin.clone()))?;
    if record.state != UpdateState::Probation {
        return Err(UpdateError::WrongState {
            plugin: plugin.clone(),
            to: record.to,
            state: record.state,
            wanted,
        });
    }
    Ok(record)
}

/// Goes back to the previous version and its kv, in one transaction; with
/// `block`, the version is not installed by an update again.
pub fn roll_back(
    node: &Node,
    plugin: &PluginId,
    reason: &str,
    block: bool,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    roll_back_locked(node, plugin, reason, block)
}

fn roll_back_locked(
    node: &Node,
    plugin: &PluginId,
    reason: &str,
    block: bool,
) -> Result<UpdateRecord, UpdateError> {
    let Some(mut record) = node.store.update(plugin)? else {
        let installed = node
            .store
            .plugin(plugin)?
            .ok_or_else(|| UpdateError::NotInstalled(plugin.clone()))?;
        return Err(UpdateError::NothingToRollBackTo {
            plugin: plugin.clone(),
            version: installed.active.version,
        });
    };
    if record.state != UpdateState::Probation {
        // Not active yet: dropping it is the rollback.
        if record.state.is_final() || record.state == UpdateState::Activating {
            return Err(UpdateError::WrongState {
                plugin: plugin.clone(),
                to: record.to,
                state: record.state,
                wanted: "rolled back",
            });
        }
        record.now = !block;
        refuse(node, &mut record, &reason)?;
        tidy_after_change(node);
        return Ok(record);
    }
    let installed = node
        .store
        .plugin(plugin)?
        .ok_or_else(|| UpdateError::NotInstalled(plugin.clone()))?;
    let Some(previous) = installed.previous.clone() else {
        return Err(UpdateError::NothingToRollBackTo {
            plugin: plugin.clone(),
            version: installed.active.version,
        });
    };
    // Loaded before anything is committed: if the old version cannot load,
    // the new one keeps serving and the operator is told.
    let (old, _) = node
        .load(plugin, &previous)
        .map_err(|why| StoreError::Record {
            what: format!("{plugin} {}", previous.version),
            detail: format!("the previous version cannot be loaded: {why}"),
        })?;
    let txn = node.store.begin_write()?;
    restore_kv(&txn, plugin)?;
    NodeStore::put_plugin(
        &txn,
        &PluginRecord {
            id: plugin.clone(),
            active: previous,
            previous: None,
        },
    )?;
    if block {
        block_version(&txn, plugin, &record.to, reason)?;
    }
    record.state = UpdateState::RolledBack;
    record.reason = Some(reason.to_string());
    record.updated_at_ms = now_ms();
    write_transition(&txn, &record)?;
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    node.table.put(PluginSlot::Loaded(Arc::new(old)));
    announce(node, &record);
    tidy_after_change(node);
    Ok(record)
}

/// The operator agrees to what a held update asks for; it proceeds (and is
/// activated now: the operator is there).
pub fn approve(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut record = node
        .store
        .update(plugin)?
        .ok_or_else(|| UpdateError::NoUpdate(plugin.clone()))?;
    if !matches!(
        record.state,
        UpdateState::Held | UpdateState::Deferred | UpdateState::Staged
    ) {
        return Err(UpdateError::WrongState {
            plugin: plugin.clone(),
            to: record.to,
            state: record.state,
            wanted: "approved",
        });
    }
    record.approved = true;
    record.now = true;
    let result = proceed(node, record);
    tidy_after_change(node);
    result
}

/// Activates a staged or deferred update now, whatever the window or lock.
/// A held one still needs `approve`.
pub fn apply(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut record = node
        .store
        .update(plugin)?
        .ok_or_else(|| UpdateError::NoUpdate(plugin.clone()))?;
    if !matches!(
        record.state,
        UpdateState::Held | UpdateState::Deferred | UpdateState::Staged
    ) {
        return Err(UpdateError::WrongState {
            plugin: plugin.clone(),
            to: record.to,
            state: record.state,
            wanted: "applied",
        });
    }
    record.now = true;
    let result = proceed(node, record);
    tidy_after_change(node);
    result
}

/// Activates staged and deferred updates that policy allows now (the agent
/// calls this as windows open and locks are released).
pub fn activate_due(node: &Node) -> Vec<Result<UpdateRecord, UpdateError>> {
    let due = match node.store.updates() {
        Ok(records) => records
            .iter()
            .any(|r| matches!(r.state, UpdateState::Staged | UpdateState::Deferred) && r.approved),
        Err(error) => return vec![Err(error.into())],
    };
    if !due {
        return Vec::new();
    }
    let records = match node.store.updates() {
        Ok(records) => records,
        Err(error) => return vec![Err(error.into())],
    };
    let mut results = Vec::new();
    for record in records {
        if !matches!(record.state, UpdateState::Staged | UpdateState::Deferred) || !record.approved
        {
            continue;
        }
        if record.state == UpdateState::Deferred && activation_blocked(node, &record).is_some() {
            continue;
        }
        let _changing = node
            .changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read again under the lock: an operator may have moved it on.
        match node.store.update(&record.plugin) {
            Ok(Some(current)) if current == record => results.push(proceed(node, current)),
            Ok(_) => {}
            Err(error) => results.push(Err(error.into())),
        }
        tidy_after_change(node);
    }
    results
}

/// Takes one look at a version on probation and acts on the verdict.
/// `health` is a health check made now, if one was due.
pub fn judge(
    node: &Node,
    plugin: &PluginId,
    health: Option<probation::HealthSeen>,
) -> Result<Option<UpdateRecord>, UpdateError> {
    // Under the change lock from the read to the verdict's commit, so an
    // operator's rollback, install or removal in between is not undone, and
    // the verdict applies to the version it was made on.
    let _changing = node
        .changing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(mut record) = node.store.update(plugin)? else {
        return Ok(None);
    };
    if record.state != UpdateState::Probation {
        return Ok(None);
    }
    let Some(loaded) = node.table.loaded(plugin).filter(|p| p.version == record.to) else {
        return Ok(None);
    };
    let Some(mut seen) = record.probation.clone() else {
        return Ok(None);
    };
    seen.calls = seen.carried_calls + loaded.stats.calls();
    seen.bad = seen.carried_bad + loaded.stats.bad();
    let verdict = probation::judge(
        &node.config.updates,
        &seen,
        now_ms(),
        health.as_ref(),
        loaded.stats.last_failure().as_deref(),
    );
    match verdict {
        probation::Verdict::Continue => {
            if record.probation.as_ref() != Some(&seen) {
                record.probation = Some(seen);
                let txn = node.store.begin_write()?;
                crate::store::put_update(&txn, &record)?;
                node.store.commit(txn)?;
            }
            Ok(None)
        }
        probation::Verdict::Confirm => confirm_locked(node, plugin).map(Some),
        probation::Verdict::RollBack(why) => roll_back_locked(node, plugin, &why, true).map(Some),
    }
}

/// The probation record of a plugin on probation, for status pages.
pub fn probation_of(record: &UpdateRecord) -> Option<&ProbationRecord> {
    record.probation.as_ref()
}
