//! `wasi:clocks`, coarsened, with waits bounded by the call's deadline.
//!
//! Epoch interruption stops a guest that is running WebAssembly, but not one
//! blocked inside a host call: a guest that sleeps is waiting on a timer the
//! host owns. This module replaces wasmtime-wasi's monotonic clock so that
//! every timer a guest subscribes to fires no later than the call's deadline;
//! the guest wakes, re-enters WebAssembly, and the epoch deadline traps it.
//!
//! Clocks are also coarse, because no plugin kind needs precise time and a
//! precise clock is what timing side channels are built from: the monotonic
//! clock ticks in milliseconds, the wall clock in whole seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Host};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

pub const MONOTONIC_RESOLUTION: Duration = Duration::from_millis(1);
pub const WALL_RESOLUTION: Duration = Duration::from_secs(1);

/// The origin every plugin's monotonic clock counts from.
static ORIGIN: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

fn coarse(nanos: u128, resolution: Duration) -> u64 {
    let step = resolution.as_nanos().max(1);
    u64::try_from(nanos / step * step).unwrap_or(u64::MAX)
}

/// Wall-clock time truncated to whole seconds.
pub struct CoarseWallClock;

impl HostWallClock for CoarseWallClock {
    fn resolution(&self) -> Duration {
        WALL_RESOLUTION
    }

    fn now(&self) -> Duration {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_nanos(coarse(since_epoch.as_nanos(), WALL_RESOLUTION))
    }
}

/// Monotonic time in whole milliseconds.
pub struct CoarseMonotonicClock;

impl HostMonotonicClock for CoarseMonotonicClock {
    fn resolution(&self) -> u64 {
        coarse(MONOTONIC_RESOLUTION.as_nanos(), Duration::from_nanos(1))
    }

    fn now(&self) -> u64 {
        coarse(ORIGIN.elapsed().as_nanos(), MONOTONIC_RESOLUTION)
    }
}

/// The latest any of the call's timers may fire (just past its deadline),
/// and whether one had to be cut short to that.
#[derive(Debug)]
pub struct ClockState {
    wake_by: tokio::time::Instant,
    overran: Arc<AtomicBool>,
}

impl ClockState {
    pub fn new(wake_by: std::time::Instant) -> Self {
        ClockState {
            wake_by: tokio::time::Instant::from_std(wake_by),
            overran: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True when the guest waited on a timer that had to be cut short at
    /// the deadline: the call ran past its deadline, whatever it returns.
    /// Usually the epoch deadline has already trapped it; this covers a
    /// guest that returns at once after waking, before the next epoch check.
    pub fn overran(&self) -> bool {
        self.overran.load(Ordering::SeqCst)
    }
}

pub struct ClockView<'a> {
    pub state: &'a ClockState,
    pub table: &'a mut ResourceTable,
}

/// A timer that fires at `until`: the earlier of what the guest asked for and
/// just past the call's deadline. `cut_short` is set when it fires early
/// because of the deadline.
struct BoundedSleep {
    until: tokio::time::Instant,
    cut_short: Option<Arc<AtomicBool>>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedSleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.until).await;
        if let Some(overran) = &self.cut_short {
            overran.store(true, Ordering::SeqCst);
        }
    }
}

impl ClockView<'_> {
    fn sleep(&mut self, duration: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let wake_by = self.state.wake_by;
        let within_deadline = tokio::time::Instant::now()
            .checked_add(duration)
            .filter(|asked| *asked <= wake_by);
        let cut_short = within_deadline.is_none();
        let until = within_deadline.unwrap_or(wake_by);
        let timer = self.table.push(BoundedSleep {
            until,
            cut_short: cut_short.then(|| self.state.overran.clone()),
        })?;
        subscribe(self.table, timer)
    }
}

impl Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(CoarseMonotonicClock.now())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(CoarseMonotonicClock.resolution())
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = CoarseMonotonicClock.now();
        self.sleep(Duration::from_nanos(when.saturating_sub(now)))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep(Duration::from_nanos(duration))
    }
}

struct ClockCapability;

impl HasData for ClockCapability {
    type Data<'a> = ClockView<'a>;
}

/// Replaces `wasi:clocks/monotonic-clock` in a linker that already has
/// wasmtime-wasi's version (the linker must allow shadowing).
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> ClockView<'_>,
) -> wasmtime::Result<()> {
    monotonic_clock::add_to_linker::<T, ClockCapability>(linker, view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_coarse() {
        let wall = CoarseWallClock.now();
        assert_eq!(wall.subsec_nanos(), 0);
        assert_eq!(CoarseMonotonicClock.now() % 1_000_000, 0);
        assert_eq!(CoarseMonotonicClock.resolution(), 1_000_000);
    }
}
