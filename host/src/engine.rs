//! The wasmtime engines a node runs plugins on, and the clock that stops them.
//!
//! Two engines, because fuel metering is compiled into the machine code: every
//! plugin runs on the plain engine unless its manifest sets `limits.fuel`, in
//! which case it is compiled for and runs on the metered engine. A node that
//! never installs a metered plugin never creates the second engine.
//!
//! Deadlines use epoch interruption: a ticker thread bumps each engine's epoch
//! every `epoch-tick-ms`, and at each tick a running call is checked against
//! its deadline at the next loop back-edge or function entry (and gives way
//! to other threads; see `call`). That stops a guest spinning in a loop
//! without any help from it. The ticker parks itself after a second with
//! no call running, so an idle node does not wake 200 times a second.

use crate::config::{EngineSettings, Policy};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Which engine a plugin runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    Plain,
    Metered,
}

impl EngineKind {
    pub fn for_fuel(fuel: Option<u64>) -> EngineKind {
        if fuel.is_some() {
            EngineKind::Metered
        } else {
            EngineKind::Plain
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            EngineKind::Plain => "plain",
            EngineKind::Metered => "metered",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly engine: {0}")]
pub struct EngineError(String);

/// Per component: a Rust `wasm32-wasip2` component instantiates a handful of
/// core modules (the program, wit-component's shims) with one memory.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;
const TABLE_ELEMENTS: usize = 20_000;
/// Guard pages after each memory; with the reservation equal to the largest
/// memory allowed, bounds checks are explicit, which keeps the pool's address
/// space small (16 slots x 64 MiB, not 16 x 4 GiB) on a Pi-class node.
const MEMORY_GUARD_BYTES: u64 = 64 << 10;
/// When the kernel can report which pages a call dirtied (`PAGEMAP_SCAN`,
/// Linux 6.7+), a slot keeps this much of its memory mapped and resets only
/// the dirty pages, instead of unmapping everything and taking a page fault
/// per page on the next call. That halves the cost of a call (see
/// docs/performance.md). A Rust plugin's stack and data fit in the first
/// 2 MiB. Without the scan, resetting would mean clearing the whole region,
/// so older kernels keep wasmtime's default of unmapping.
const KEEP_RESIDENT_MEMORY_BYTES: usize = 2 << 20;
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

fn wasmtime_config(
    settings: &EngineSettings,
    policy: &Policy,
    kind: EngineKind,
) -> Result<Config, EngineError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(kind == EngineKind::Metered);
    // No WIT here is async; leaving concurrency support on costs every call.
    config.concurrency_support(false);
    config.parallel_compilation(true);

    let max_memory = policy.max_memory_bytes();
    let slots = settings.pool_slots;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        .total_stacks(slots)
        .max_memory_size(usize::try_from(max_memory).map_err(|_| {
            EngineError(format!(
                "policy.max-memory-mib does not fit this machine: {max_memory}"
            ))
        })?);
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
            .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config.memory_reservation(max_memory);
    config.memory_guard_size(MEMORY_GUARD_BYTES);
    config.memory_reservation_for_growth(0);
    Ok(config)
}

/// The node's engines and their deadline clock.
pub struct Engines {
    settings: EngineSettings,
    policy: Policy,
    plain: Engine,
    metered: OnceLock<Engine>,
    /// Held while the metered engine is created, so it is created and
    /// registered with the ticker exactly once.
    creating_metered: Mutex<()>,
    ticker: EpochTicker,
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines")
            .field("settings", &self.settings)
            .field("metered", &self.metered.get().is_some())
            .finish()
    }
}

impl Engines {
    pub fn new(settings: &EngineSettings, policy: &Policy) -> Result<Engines, EngineError> {
        let config = wasmtime_config(settings, policy, EngineKind::Plain)?;
        let plain = Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;
        let ticker = EpochTicker::start(plain.clone(), settings.epoch_tick());
        Ok(Engines {
            settings: settings.clone(),
            policy: policy.clone(),
            plain,
            metered: OnceLock::new(),
            creating_metered: Mutex::new(()),
            ticker,
        })
    }

    /// The engine for `kind`, creating the metered one on first use.
    pub fn get(&self, kind: EngineKind) -> Result<&Engine, EngineError> {
        match kind {
            EngineKind::Plain => Ok(&self.plain),
            EngineKind::Metered => {
                if let Some(engine) = self.metered.get() {
                    return Ok(engine);
                }
                let _creating = self
                    .creating_metered
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(engine) = self.metered.get() {
                    return Ok(engine);
                }
                let config = wasmtime_config(&self.settings, &self.policy, EngineKind::Metered)?;
                let engine = Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;
                let engine = self.metered.get_or_init(|| engine);
                self.ticker.add(engine.clone());
                Ok(engine)
            }
        }
    }

    /// How long after its deadline a running call has surely been stopped:
    /// it is checked at every tick (see `call`), so one tick, and two more
    /// for the ticker's own jitter and a descheduled ticker catching up.
    pub fn deadline_slack(&self) -> Duration {
        self.settings.epoch_tick() * 3
    }

    /// Marks a call as running for as long as the guard lives, waking the
    /// ticker if it parked.
    pub fn call_guard(&self) -> CallGuard<'_> {
        self.ticker.busy()
    }

    pub fn pool_slots(&self) -> u32 {
        self.settings.pool_slots
    }
}

/// The ticker's state, shared with calls. `run_started` and `ticked` keep
/// the epoch following wall-clock time: a late wake is made up.
struct TickerShared {
    engines: Mutex<Vec<Engine>>,
    running_calls: AtomicUsize,
    parked: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
    tick_nanos: u64,
    /// When the current run of ticks began, in nanoseconds since `ORIGIN`;
    /// `NOT_TICKING` while the ticker is parked.
    run_started: AtomicU64,
    /// Epoch increments applied since `run_started`.
    ticked: AtomicU64,
}

const NOT_TICKING: u64 = u64::MAX;

/// A fixed point to measure the ticker's runs from.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn nanos_since_origin() -> u64 {
    u64::try_from(ORIGIN.elapsed().as_nanos()).unwrap_or(NOT_TICKING - 1)
}

impl TickerShared {
    fn new(engines: Vec<Engine>, tick: Duration) -> TickerShared {
        TickerShared {
            engines: Mutex::new(engines),
            running_calls: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            tick_nanos: u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1),
            run_started: AtomicU64::new(NOT_TICKING),
            ticked: AtomicU64::new(0),
        }
    }

    /// Ticks that wall-clock time has made due but the ticker has not applied
    /// yet (it was descheduled); the ticker makes them up.
    fn backlog(&self) -> u64 {
        let started = self.run_started.load(Ordering::SeqCst);
        if started == NOT_TICKING {
            return 0;
        }
        let due = nanos_since_origin().saturating_sub(started) / self.tick_nanos;
        due.saturating_sub(self.ticked.load(Ordering::SeqCst))
    }

    fn begin_run(&self) {
        // `ticked` first: a reader that sees the new start sees zero ticks.
        self.ticked.store(0, Ordering::SeqCst);
        self.run_started
            .store(nanos_since_origin(), Ordering::SeqCst);
    }
}

/// Bumps the engines' epochs every tick while calls run.
struct EpochTicker {
    shared: Arc<TickerShared>,
    handle: Option<JoinHandle<()>>,
}

/// Ticks without a running call before the ticker parks: about one second.
fn idle_ticks_before_parking(tick: Duration) -> u32 {
    u32::try_from(1_000 / tick.as_millis().max(1)).unwrap_or(1)
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> EpochTicker {
        let shared = Arc::new(TickerShared::new(vec![engine], tick));
        let ticker_shared = shared.clone();
        let handle = thread::Builder::new()
            .name("outpost-epoch".into())
            .spawn(move || run_ticker(&ticker_shared, tick))
            .ok();
        if let Some(handle) = &handle {
            let _ = shared.thread.set(handle.thread().clone());
        }
        EpochTicker { shared, handle }
    }

    fn add(&self, engine: Engine) {
        if let Ok(mut engines) = self.shared.engines.lock() {
            engines.push(engine);
        }
    }

    fn busy(&self) -> CallGuard<'_> {
        self.shared.running_calls.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst)
            && let Some(thread) = self.shared.thread.get()
        {
            thread.unpark();
        }
        CallGuard {
            shared: &self.shared,
        }
    }
}

/// After a longer stall (a suspended machine), the missed ticks are dropped
/// rather than fired in a burst.
const MAX_CATCH_UP_TICKS: u64 = 100;

/// The epoch follows wall-clock time, not the number of waits: a wait that
/// overshoots is made up on the next round, and an early wake (shutdown, a
/// spurious unpark) applies nothing that is not due. So a deadline of N ticks,
/// plus the backlog when it was set, passes N ticks of real time after it
/// was set, give or take one.
fn run_ticker(shared: &TickerShared, tick: Duration) {
    let park_after = idle_ticks_before_parking(tick);
    shared.begin_run();
    let mut idle = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.running_calls.load(Ordering::SeqCst) == 0 {
            idle += 1;
            if idle > park_after {
                // Time spent parked is owed to nobody.
                shared.run_started.store(NOT_TICKING, Ordering::SeqCst);
                // Publish "parked" before the last look at the call count; a
                // call starting now either sees the flag and unparks us, or
                // we see its count and do not park.
                shared.parked.store(true, Ordering::SeqCst);
                if shared.running_calls.load(Ordering::SeqCst) == 0
                    && !shared.stop.load(Ordering::SeqCst)
                {
                    thread::park();
                }
                shared.parked.store(false, Ordering::SeqCst);
                idle = 0;
                shared.begin_run();
                continue;
            }
        } else {
            idle = 0;
        }
        thread::park_timeout(tick);
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let owed = shared.backlog();
        if owed == 0 {
            continue;
        }
        let applied = owed.min(MAX_CATCH_UP_TICKS);
        if let Ok(engines) = shared.engines.lock() {
            for _ in 0..applied {
                for engine in engines.iter() {
                    engine.increment_epoch();
                }
            }
        }
        // Beyond the cap, forget the rest.
        shared.ticked.fetch_add(owed, Ordering::SeqCst);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// A deadline in ticks: rounded up, plus one.
/// A running call, as far as the ticker is concerned.
pub struct CallGuard<'a> {
    shared: &'a TickerShared,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.shared.running_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metered_engine_is_made_on_demand_and_kept() {
        let engines = Engines::new(&EngineSettings::default(), &Policy::default()).expect("engine");
        assert!(engines.metered.get().is_none());
        let first = engines.get(EngineKind::Metered).expect("metered") as *const Engine;
        let second = engines.get(EngineKind::Metered).expect("metered") as *const Engine;
        assert_eq!(first, second);
    }
}
