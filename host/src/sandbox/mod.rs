//! What one plugin call runs inside.
//!
//! Every call gets a fresh wasmtime `Store` holding a [`CallState`]: a WASI
//! context that denies by default, the state of each capability the plugin was
//! granted, and a memory limiter. Nothing in it outlives the call, so a trap,
//! a leak or a corrupted heap in one call cannot reach the next: the only
//! state that persists is what the plugin wrote through `kv`.
//!
//! Deny by default, concretely: no environment variables, no arguments, stdin
//! closed, stdout and stderr captured (not inherited), no preopened folders
//! unless `assets` or `scratch` is granted, no sockets (refused at install and
//! disabled here too), coarse clocks, at most 1 MiB of randomness per request.

pub mod output;

use crate::capabilities::Services;
use crate::capabilities::clocks::{ClockState, CoarseMonotonicClock, CoarseWallClock};
use crate::capabilities::config::ConfigState;
use crate::capabilities::files::{self, ScratchDir};
use crate::capabilities::http::HttpState;
use crate::capabilities::keystore::KeystoreState;
use crate::capabilities::kv::KvState;
use crate::capabilities::log::LogState;
use crate::capabilities::outbox::OutboxState;
use crate::manifest::{Grants, Limits, Origin, OutboxGrant, PluginId};
use crate::store::NodeStore;
use output::OutputCapture;
use redb::WriteTransaction;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

/// The most a plugin may ask `wasi:random` for at once.
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// Function-table growth allowed per instance.
const MAX_TABLE_ELEMENTS: usize = 20_000;

/// What the node knows about a plugin that shapes its sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub id: PluginId,
    pub grants: Grants,
    pub limits: Limits,
    /// The installed copy of the package's `assets/`, if granted.
    pub assets_dir: Option<PathBuf>,
    /// The operator's values, if `config` is granted.
    pub config_values: Option<Arc<BTreeMap<String, String>>>,
    /// The `http`, `keystore` and `outbox` grants, shared by every call
    /// instead of copied into each.
    pub http_allowed: Arc<[Origin]>,
    pub keystore_keys: Arc<[String]>,
    pub outbox_grant: Option<Arc<OutboxGrant>>,
    /// Origins its configuration names that the operator has not approved
    /// (`outpost plugin approve`): left out of `http_allowed`, reported.
    pub unapproved_origins: Vec<Origin>,
}

/// The memory cap, enforced as the guest grows its memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit_bytes: usize,
    /// Set when the guest asked for more than its cap; the call then fails
    /// with a memory-limit error however the guest reacted.
    pub(crate) hit: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} bytes reached")]
pub struct MemoryLimitReached(pub usize);

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.hit = true;
            // An error (not `Ok(false)`) traps at once instead of letting the
            // guest's allocator abort on its own, which says less.
            return Err(wasmtime::Error::new(MemoryLimitReached(self.limit_bytes)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// The data of one call's `Store`.
pub struct CallState {
    wasi: LazyWasi,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) log: LogState,
    pub(crate) kv: KvState,
    pub(crate) config: ConfigState,
    pub(crate) keystore: KeystoreState,
    pub(crate) outbox: OutboxState,
    pub(crate) http: HttpState,
    pub(crate) clocks: ClockState,
    pub(crate) output: OutputCapture,
    pub(crate) scratch: Option<ScratchDir>,
    /// Why the WASI context could not be set up as granted, if it could not;
    /// the call then fails with this instead of running without its files.
    pub(crate) setup_error: Option<String>,
}

/// The WASI context is built on the guest's first WASI call, not up front:
/// building it allocates random generators and clocks and opens the granted
/// folders, and many calls (a status probe, a validation) never touch WASI.
/// It lives inside the store's data, allocated once per call either way, so
/// the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum LazyWasi {
    Planned(WasiPlan),
    Built(WasiCtx),
}

struct WasiPlan {
    assets: Option<PathBuf>,
    scratch: Option<(PathBuf, u64, u64)>,
    /// Asked, before each write to scratch, whether the disk is within the
    /// reserve plugins may not use.
    store: Option<Arc<NodeStore>>,
}

impl CallState {
    fn build_wasi(&mut self, plan: WasiPlan) -> WasiCtx {
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(self.output.clone())
            .stderr(self.output.clone())
            .allow_blocking_current_thread(true)
            .wall_clock(CoarseWallClock)
            .monotonic_clock(CoarseMonotonicClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES);
        if let Some((root, call_id, quota)) = plan.scratch {
            match ScratchDir::create(&root, call_id, quota, plan.store.clone()) {
                Ok(scratch) => self.scratch = Some(scratch),
                Err(error) => {
                    self.setup_error = Some(format!("cannot create its scratch folder: {error}"));
                }
            }
        }
        if let Err(error) =
            files::preopen(&mut builder, plan.assets.as_deref(), self.scratch.as_ref())
        {
            self.setup_error = Some(format!("cannot open its folders: {error:#}"));
        }
        builder.build()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        if let LazyWasi::Planned(_) = &self.wasi {
            let placeholder = LazyWasi::Planned(WasiPlan {
                assets: None,
                scratch: None,
                store: None,
            });
            if let LazyWasi::Planned(plan) = std::mem::replace(&mut self.wasi, placeholder) {
                let ctx = self.build_wasi(plan);
                self.wasi = LazyWasi::Built(ctx);
            }
        }
        let LazyWasi::Built(ctx) = &mut self.wasi else {
            unreachable!("the WASI context was built just above")
        };
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.hooks,
        }
    }
}

/// Per-call inputs besides the plugin itself.
pub struct CallSetup<'a> {
    pub call_id: u64,
    /// The latest a guest's timer may fire (see `capabilities::clocks`).
    pub wake_by: Instant,
    pub store: Arc<NodeStore>,
    pub services: &'a Services,
    pub scratch_root: &'a Path,
    /// A write transaction for `kv` to use instead of committing per write.
    pub kv_batch: Option<WriteTransaction>,
    /// The version called and its component digest: its `kv` writes commit
    /// only while it is the active version (see `capabilities::kv`).
    pub version: (&'a semver::Version, &'a str),
}

impl CallState {
    pub fn new(spec: &SandboxSpec, setup: CallSetup<'_>) -> CallState {
        let plan = WasiPlan {
            assets: spec.assets_dir.clone().filter(|_| spec.grants.assets),
            scratch: spec.grants.scratch.map(|grant| {
                (
                    setup.scratch_root.to_path_buf(),
                    setup.call_id,
                    grant.quota_bytes,
                )
            }),
            store: spec.grants.scratch.map(|_| setup.store.clone()),
        };
        let batched = setup.kv_batch.is_some();
        let kv = match setup.kv_batch {
            Some(txn) => KvState::batched(spec.id.clone(), spec.grants.kv, setup.store, txn),
            None => KvState::direct(
                spec.id.clone(),
                spec.grants.kv,
                setup.store,
                Some((setup.version.0.clone(), setup.version.1.to_string())),
            ),
        };
        let config = ConfigState::new(spec.config_values.clone().filter(|_| spec.grants.config));
        let keystore = KeystoreState::new(
            spec.id.clone(),
            spec.keystore_keys.clone(),
            setup.services.keystore.clone(),
        );
        let mut outbox = OutboxState::new(
            spec.id.clone(),
            spec.outbox_grant.clone(),
            setup.services.outbox.clone(),
        );
        if batched {
            outbox.refuse_during_migration();
        }
        let http = HttpState::new(
            spec.http_allowed.clone(),
            setup.services.http_limits,
            setup.wake_by,
            setup.services.network.clone(),
        );
        CallState {
            wasi: LazyWasi::Planned(plan),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit_bytes: usize::try_from(spec.limits.memory_bytes).unwrap_or(usize::MAX),
                hit: false,
            },
            log: LogState::default(),
            kv,
            config,
            keystore,
            outbox,
            http,
            clocks: ClockState::new(setup.wake_by),
            output: OutputCapture::default(),
            scratch: None,
            setup_error: None,
        }
    }
}
