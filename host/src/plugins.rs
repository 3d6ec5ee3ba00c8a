//! Loaded plugins and the table calls find them in.
//!
//! A [`LoadedPlugin`] is one installed version, compiled and linked: its
//! `InstancePre`, its export indices, its sandbox spec and its counters. The
//! [`PluginTable`] maps plugin ids to them behind an atomically swapped
//! pointer: a call clones an `Arc` and holds no lock while the guest runs, and
//! installing a new version is one pointer store, so calls already running
//! finish on the version they started with.

use crate::admission::Share;
use crate::bindings::{courier, forecasting, forecasting_0_2, lifecycle, printer, tokenizer};
use crate::contract::{self, ContractError};
use crate::engine::EngineKind;
use crate::failure::{CallFailure, PluginFailure};
use crate::manifest::{Manifest, PluginId};
use crate::sandbox::{CallState, SandboxSpec};
use crate::worlds::PluginKind;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

/// Call counts and the last failure, for status pages. A plugin refusing its
/// input is the plugin doing its job; a call the sandbox had to stop (a trap,
/// a deadline, the memory cap) is what an operator should look at.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    /// Of `failed`: calls turned away because the plugin's share was full.
    busy: AtomicU64,
    /// Of `refused`: the plugin's own `internal` errors.
    internal: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

impl PluginStats {
    pub(crate) fn record(&self, failure: Option<&CallFailure>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match failure {
            None => {}
            Some(CallFailure::Plugin(failure)) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if let PluginFailure::Internal(_) = failure {
                    self.internal.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(failure) => {
                // Turned away, or cut off by a swap: not the code's fault.
                if let CallFailure::Busy(_) | CallFailure::Replaced = failure {
                    self.busy.fetch_add(1, Ordering::Relaxed);
                }
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.last_failure.lock() {
                    *last = Some(failure.to_string());
                }
            }
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls that returned the plugin's own `plugin-error`.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Calls the sandbox stopped or that could not start.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Calls that count against a version on probation: the sandbox stopped
    /// them (not merely turned them away as busy), or the plugin answered
    /// with an `internal` error.
    pub fn bad(&self) -> u64 {
        let stopped = self
            .failed
            .load(Ordering::Relaxed)
            .saturating_sub(self.busy.load(Ordering::Relaxed));
        stopped + self.internal.load(Ordering::Relaxed)
    }

    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().ok().and_then(|last| last.clone())
    }
}

/// One installed plugin version, ready to call.
pub struct LoadedPlugin {
    pub version: semver::Version,
    pub manifest: Manifest,
    pub spec: SandboxSpec,
    pub engine_kind: EngineKind,
    pub component_digest: String,
    pub(crate) pre: InstancePre<CallState>,
    pub(crate) lifecycle: lifecycle::GuestIndices,
    /// Set for printer drivers. The other kinds' exports are resolved (and so
    /// checked) at link time; the node calls them from the next release on.
    pub(crate) printer: Option<printer::GuestIndices>,
    pub stats: PluginStats,
    /// Its counters in `/metrics`, looked up at its first call.
    pub(crate) meter: std::sync::OnceLock<crate::metrics::CallMeter>,
    /// Its places for running and waiting calls (see `admission`).
    pub share: Share,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("id", &self.spec.id)
            .field("version", &self.version)
            .field("world", &self.manifest.world)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("the component cannot be linked with what this node provides: {0}")]
    Link(String),
}

impl LoadedPlugin {
    /// Checks `component` against its manifest and links it. `spec` must be
    /// the sandbox spec derived from the same manifest.
    pub(crate) fn link(
        engine: &Engine,
        linker: &Linker<CallState>,
        engine_kind: EngineKind,
        component: &Component,
        manifest: Manifest,
        spec: SandboxSpec,
        component_digest: String,
    ) -> Result<LoadedPlugin, LinkError> {
        contract::check_imports(engine, component, &manifest.grants)?;
        contract::check_exports(engine, component, &manifest.world)?;
        let link_error = |error: wasmtime::Error| LinkError::Link(format!("{error:#}"));
        let pre = linker.instantiate_pre(component).map_err(link_error)?;
        let lifecycle = lifecycle::GuestIndices::new(&pre).map_err(link_error)?;
        let mut printer = None;
        match manifest.world.kind {
            PluginKind::PrinterDriver => {
                printer = Some(printer::GuestIndices::new(&pre).map_err(link_error)?);
            }
            PluginKind::PaymentTokenizer => {
                tokenizer::GuestIndices::new(&pre).map_err(link_error)?;
            }
            PluginKind::CourierAdapter => {
                courier::GuestIndices::new(&pre).map_err(link_error)?;
            }
            // Each contract version has its own bindings; resolving them
            // type-checks the component against the version it claims.
            PluginKind::Forecaster => match manifest.world.track() {
                (0, 1) => {
                    forecasting::GuestIndices::new(&pre).map_err(link_error)?;
                }
                (0, 2) => {
                    forecasting_0_2::GuestIndices::new(&pre).map_err(link_error)?;
                }
                track => {
                    return Err(LinkError::Link(format!(
                        "this node has no bindings for forecaster {}.{}",
                        track.0, track.1
                    )));
                }
            },
        }
        let share = Share::new(spec.limits.concurrency, spec.limits.max_queued);
        Ok(LoadedPlugin {
            share,
            version: manifest.version.clone(),
            manifest,
            spec,
            engine_kind,
            component_digest,
            pre,
            lifecycle,
            printer,
            stats: PluginStats::default(),
            meter: std::sync::OnceLock::new(),
        })
    }

    pub fn id(&self) -> &PluginId {
        &self.spec.id
    }

    pub fn kind(&self) -> PluginKind {
        self.manifest.world.kind
    }

    pub(crate) fn printer(&self) -> Option<&printer::GuestIndices> {
        self.printer.as_ref()
    }

    pub(crate) fn component(&self) -> &Component {
        self.pre.component()
    }
}

/// A plugin the node knows about: loaded, or installed but unusable now (its
/// stored component will not load, or the policy no longer allows it).
#[derive(Debug, Clone)]
pub enum PluginSlot {
    Loaded(Arc<LoadedPlugin>),
    Unavailable {
        id: PluginId,
        version: semver::Version,
        reason: String,
    },
}

impl PluginSlot {
    pub fn id(&self) -> &PluginId {
        match self {
            PluginSlot::Loaded(plugin) => plugin.id(),
            PluginSlot::Unavailable { id, .. } => id,
        }
    }
}

/// Plugin id to slot, swapped whole on every change.
#[derive(Debug, Default)]
pub struct PluginTable {
    slots: ArcSwap<BTreeMap<PluginId, PluginSlot>>,
    /// Versions taken out of service that a call may still hold.
    ///
    /// Why: dropping a version's last reference unmaps its code and clears
    /// the pool slots kept for it. Left to chance, that is done by whichever
    /// call finishes last on the old version, after a swap, in the middle of
    /// trading, and the unmapping stalls every other call's page faults. Kept
    /// here, the last reference goes in [`PluginTable::bury`], on the thread
    /// making a change or the update agent's.
    retired: std::sync::Mutex<Vec<Arc<LoadedPlugin>>>,
}

impl PluginTable {
    pub fn get(&self, id: &PluginId) -> Option<PluginSlot> {
        self.slots.load().get(id).cloned()
    }

    pub fn loaded(&self, id: &PluginId) -> Option<Arc<LoadedPlugin>> {
        match self.slots.load().get(id) {
            Some(PluginSlot::Loaded(plugin)) => Some(plugin.clone()),
            _ => None,
        }
    }

    pub fn all(&self) -> Vec<PluginSlot> {
        self.slots.load().values().cloned().collect()
    }

    pub fn put(&self, slot: PluginSlot) {
        let before = self.slots.rcu(|slots| {
            let mut next = BTreeMap::clone(slots);
            next.insert(slot.id().clone(), slot.clone());
            next
        });
        if let Some(PluginSlot::Loaded(replaced)) = before.get(slot.id()) {
            let same = matches!(&slot, PluginSlot::Loaded(now) if Arc::ptr_eq(replaced, now));
            if !same {
                self.retire(replaced.clone());
            }
        }
    }

    pub fn remove(&self, id: &PluginId) {
        let before = self.slots.rcu(|slots| {
            let mut next = BTreeMap::clone(slots);
            next.remove(id);
            next
        });
        if let Some(PluginSlot::Loaded(removed)) = before.get(id) {
            self.retire(removed.clone());
        }
    }

    /// Keeps `plugin` (a version no longer served, staged or kept to fall
    /// back to) until no call holds it; see `retired`.
    pub fn retire(&self, plugin: Arc<LoadedPlugin>) {
        self.bury();
        let mut retired = self.lock_retired();
        if !retired.iter().any(|kept| Arc::ptr_eq(kept, &plugin)) {
            retired.push(plugin);
        }
    }

    /// Drops, here, the retired versions no call holds any more.
    pub fn bury(&self) {
        let unheld: Vec<Arc<LoadedPlugin>> = {
            let mut retired = self.lock_retired();
            let (unheld, held) = retired
                .drain(..)
                .partition(|plugin| Arc::strong_count(plugin) == 1);
            *retired = held;
            unheld
        };
        drop(unheld);
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, Vec<Arc<LoadedPlugin>>> {
        self.retired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
