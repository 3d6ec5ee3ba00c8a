//! Running one plugin call, start to finish.
//!
//! 1. Wait for a pool slot (at most `engine.pool-slots` calls run at once).
//! 2. Open a `plugin_call` span: plugin id, version, call id, function.
//! 3. Make a fresh store: the sandbox, the memory limiter, an epoch deadline,
//!    fuel if the manifest set it.
//! 4. Instantiate from the plugin's `InstancePre` and make the call.
//! 5. Turn whatever happened into one result: the value, the plugin's own
//!    `plugin-error`, or a [`CallFailure`] naming why the sandbox stopped it.
//! 6. Drop the store: memory, resources and the scratch folder go with it.

pub use crate::failure::{CallFailure, PluginFailure};

use crate::admission::{Admission, Pool, Refusal};
use crate::bindings::types::PluginError;
use crate::engine::Engines;
use crate::manifest::{Limits, PluginId};
use crate::metrics::{CallMeter, Metrics};
use crate::plugins::LoadedPlugin;
use crate::sandbox::output::panic_message;
use crate::sandbox::{CallSetup, CallState, MemoryLimitReached};
use crate::store::NodeStore;
use redb::WriteTransaction;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use wasmtime::component::Instance;
use wasmtime::{Store, Trap};

/// A failed call: which plugin, which version, which function, and why.
/// Boxed, so the `Result`s that carry it stay small; read its fields through
/// `Deref` (`error.failure`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {}@{}, {} (call {}): {}", .0.plugin, .0.version, .0.function, .0.call_id, .0.failure)]
pub struct CallError(Box<CallErrorDetail>);

#[derive(Debug, Clone)]
pub struct CallErrorDetail {
    pub plugin: PluginId,
    pub version: semver::Version,
    pub function: Cow<'static, str>,
    pub call_id: u64,
    pub failure: CallFailure,
}

impl std::ops::Deref for CallError {
    type Target = CallErrorDetail;
    fn deref(&self) -> &CallErrorDetail {
        &self.0
    }
}

impl CallError {
    pub fn new(detail: CallErrorDetail) -> CallError {
        CallError(Box::new(detail))
    }

    /// What stopped the call, taken out of the error.
    pub fn into_failure(self) -> CallFailure {
        self.0.failure
    }

    /// True when the sandbox stopped the plugin, as opposed to the plugin
    /// refusing the input or reporting trouble of its own.
    pub fn is_sandbox_stop(&self) -> bool {
        !matches!(self.failure, CallFailure::Plugin(_))
    }
}

/// Runs calls. One per node, shared by every caller.
pub struct Invoker {
    engines: Arc<Engines>,
    store: Arc<NodeStore>,
    scratch_root: PathBuf,
    services: crate::capabilities::Services,
    next_call_id: AtomicU64,
    pool: Pool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("scratch_root", &self.scratch_root)
            .finish()
    }
}

impl Invoker {
    pub fn new(
        engines: Arc<Engines>,
        store: Arc<NodeStore>,
        scratch_root: PathBuf,
        services: crate::capabilities::Services,
        metrics: Arc<Metrics>,
    ) -> Invoker {
        let pool = Pool::new(engines.pool_slots());
        Invoker {
            engines,
            store,
            scratch_root,
            services,
            next_call_id: AtomicU64::new(1),
            pool,
            metrics,
        }
    }

    /// The node's instance pool, for `/metrics`.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn meter<'p>(&self, plugin: &'p LoadedPlugin) -> &'p CallMeter {
        plugin
            .meter
            .get_or_init(|| self.metrics.call_meter(plugin.id().as_str()))
    }

    /// Waits, without holding a thread, until a call to `plugin` may run
    /// (see `admission`); run the call inside [`Admission::run`].
    pub async fn admit(
        &self,
        plugin: &LoadedPlugin,
        function: &'static str,
    ) -> Result<Admission, CallError> {
        Admission::wait(&self.pool, &plugin.share, plugin.spec.limits.deadline)
            .await
            .map_err(|refusal| {
                let error = refused(plugin, function, refusal);
                self.meter(plugin).refused(&error.failure);
                error
            })
    }

    /// Calls into `plugin`. `body` gets a fresh instance and makes the typed
    /// call; `function` names it in errors and traces.
    pub fn call<R: Send>(
        &self,
        plugin: &LoadedPlugin,
        function: impl Into<Cow<'static, str>>,
        body: impl FnOnce(
            &mut Store<CallState>,
            &Instance,
            &LoadedPlugin,
        ) -> wasmtime::Result<Result<R, PluginError>>
        + Send,
    ) -> Result<R, CallError> {
        let function = function.into();
        outside_async_context(|| self.run(plugin, function, None, body)).0
    }

    /// Like [`Invoker::call`], with `kv` going through `txn`, which is handed
    /// back (uncommitted) whatever the outcome.
    pub fn call_batched<R: Send>(
        &self,
        plugin: &LoadedPlugin,
        function: impl Into<Cow<'static, str>>,
        txn: WriteTransaction,
        body: impl FnOnce(
            &mut Store<CallState>,
            &Instance,
            &LoadedPlugin,
        ) -> wasmtime::Result<Result<R, PluginError>>
        + Send,
    ) -> (Result<R, CallError>, Option<WriteTransaction>) {
        let function = function.into();
        outside_async_context(|| self.run(plugin, function, Some(txn), body))
    }

    fn run<R>(
        &self,
        plugin: &LoadedPlugin,
        function: Cow<'static, str>,
        kv_batch: Option<WriteTransaction>,
        body: impl FnOnce(
            &mut Store<CallState>,
            &Instance,
            &LoadedPlugin,
        ) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> (Result<R, CallError>, Option<WriteTransaction>) {
        let call_id = self.next_call_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "plugin_call",
            plugin = %plugin.spec.id,
            version = %plugin.version,
            call_id,
            function = &*function,
        );
        let _entered = span.enter();
        let fail = |failure| {
            CallError::new(CallErrorDetail {
                plugin: plugin.spec.id.clone(),
                version: plugin.version.clone(),
                function: function.clone(),
                call_id,
                failure,
            })
        };

        let _admission = if crate::admission::held_for(&plugin.share) {
            None
        } else {
            let patience = plugin.spec.limits.deadline;
            match Admission::wait_blocking(&self.pool, &plugin.share, patience) {
                Ok(admission) => Some(admission),
                Err(refusal) => {
                    let failure = CallFailure::Busy(refusal);
                    self.meter(plugin).refused(&failure);
                    return (Err(fail(failure)), kv_batch);
                }
            }
        };
        let _running = self.engines.call_guard();
        let started = Instant::now();
        let limits = plugin.spec.limits;
        let engine = match self.engines.get(plugin.engine_kind) {
            Ok(engine) => engine,
            Err(error) => return (Err(fail(CallFailure::Start(error.to_string()))), None),
        };
        let setup = CallSetup {
            call_id,
            // Waits end just after the epoch deadline has passed, so a guest
            // woken from one traps as soon as it runs.
            wake_by: started + limits.deadline + self.engines.deadline_slack(),
            store: self.store.clone(),
            services: &self.services,
            scratch_root: &self.scratch_root,
            kv_batch,
            version: (&plugin.version, &plugin.component_digest),
        };
        let state = CallState::new(&plugin.spec, setup);
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_hostcall_fuel(host_copy_budget(&limits));
        // The first tick a call is still running marks it a long one. From
        // then on it gives way to other runnable threads at every tick: a
        // five-year forecast then costs a lone tokenize a few hundred
        // microseconds instead of several time slices. The deadline itself
        // is wall-clock time since the call started, never early.
        store.set_epoch_deadline(1);
        let deadline = started + limits.deadline;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Err(Trap::Interrupt.into());
            }
            std::thread::yield_now();
            Ok(wasmtime::UpdateDeadline::Continue(1))
        });
        if let Some(fuel) = limits.fuel
            && let Err(error) = store.set_fuel(fuel)
        {
            return (Err(fail(CallFailure::Start(format!("{error:#}")))), None);
        }

        let outcome = match plugin.pre.instantiate(&mut store) {
            Ok(instance) => body(&mut store, &instance, plugin),
            Err(error) => Err(error),
        };

        let state = store.data_mut();
        state.log.finish();
        let (output, dropped) = state.output.take();
        if !output.is_empty() {
            tracing::debug!(target: "plugin", dropped_bytes = dropped, "plugin output: {}", output.trim_end());
        }
        let scratch_over = state
            .scratch
            .as_ref()
            .and_then(|scratch| scratch.over_quota());
        let memory_hit = state.limiter.hit;
        // The deadline is the caller's: lifting the result into the host
        // counts, so a result that took long to hand over came too late.
        let overran = state.clocks.overran()
            || started.elapsed() > limits.deadline + self.engines.deadline_slack();
        let setup_error = state.setup_error.take();
        let replaced = state.kv.was_replaced();
        let batch = state.kv.take_batch();
        drop(store);

        let result = match (outcome, setup_error) {
            (_, Some(why)) => Err(CallFailure::Start(why)),
            // Whatever it made of the refused write, its result is stale.
            (_, None) if replaced => Err(CallFailure::Replaced),
            // It waited, or handed over its result, past its deadline:
            // whatever it returned came too late.
            (_, None) if overran => Err(CallFailure::DeadlineExceeded(limits.deadline)),
            (Ok(returned), None) => match (scratch_over, returned) {
                // A refused write is the cause, however the plugin reported it.
                (Some(failure), _) => Err(failure),
                (None, Ok(value)) => Ok(value),
                (None, Err(error)) => Err(CallFailure::Plugin(error.into())),
            },
            (Err(error), None) => Err(classify(&error, memory_hit, &limits, &output)),
        };
        let elapsed = started.elapsed();
        let elapsed_us = elapsed.as_micros() as u64;
        // The node's own lifecycle calls (health probes, info, migrate) are
        // not the plugin's work: counting them would dilute a new version's
        // failure rate on probation, and inflate its call count.
        if !matches!(&*function, "info" | "health" | "migrate") {
            plugin.stats.record(result.as_ref().err());
            self.meter(plugin).record(elapsed, result.as_ref().err());
        }
        match &result {
            Ok(_) => tracing::debug!(elapsed_us, "call returned"),
            Err(CallFailure::Plugin(failure)) => {
                tracing::info!(elapsed_us, "call returned an error: {failure}")
            }
            Err(failure) => tracing::warn!(elapsed_us, "call failed: {failure}"),
        }
        (result.map_err(fail), batch)
    }
}

/// A call turned away before it ran, as a [`CallError`]. It has no call id:
/// it never became a call.
fn refused(plugin: &LoadedPlugin, function: &'static str, refusal: Refusal) -> CallError {
    CallError::new(CallErrorDetail {
        plugin: plugin.spec.id.clone(),
        version: plugin.version.clone(),
        function: Cow::Borrowed(function),
        call_id: 0,
        failure: CallFailure::Busy(refusal),
    })
}

/// Runs `work` where it may block. Calls are synchronous, and wasmtime-wasi's
/// synchronous bindings block on a Tokio runtime internally, which Tokio
/// forbids on a thread that is driving async tasks. From a plain thread or a
/// `spawn_blocking` thread this is a direct call; from inside an async task it
/// steps out of the task first (`block_in_place` on a multi-threaded runtime,
/// a short-lived thread on a current-thread one), so the node's API can be
/// called from anywhere.
fn outside_async_context<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Err(_) => work(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        Ok(_) => {
            std::thread::scope(
                |scope| match scope.spawn(crate::admission::carried(work)).join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                },
            )
        }
    }
}

/// The most a call may hand the node in one crossing (its result, or the
/// arguments of one host call), counted by wasmtime as it lifts the values.
/// Lifted values cost the host a few times their byte count (a `String` or
/// `Val` per element), and JSON for the API about as much again, so a quarter
/// of the plugin's memory cap keeps one call's cost to the node near that cap:
/// without it, many strings pointing at one buffer cost the node 265 MB a call.
pub fn host_copy_budget(limits: &Limits) -> usize {
    usize::try_from(limits.memory_bytes / 4).unwrap_or(usize::MAX)
}

/// Names what stopped a call.
fn classify(
    error: &wasmtime::Error,
    memory_hit: bool,
    limits: &Limits,
    output: &str,
) -> CallFailure {
    if memory_hit || error.downcast_ref::<MemoryLimitReached>().is_some() {
        return CallFailure::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        };
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallFailure::Exited(exit.0);
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => CallFailure::DeadlineExceeded(limits.deadline),
            Trap::OutOfFuel => CallFailure::FuelExhausted(limits.fuel.unwrap_or(0)),
            Trap::StackOverflow => CallFailure::Trapped("stack overflow".into()),
            Trap::UnreachableCodeReached => match panic_message(output) {
                Some(message) => CallFailure::Panicked(message),
                None => {
                    CallFailure::Trapped("reached unreachable code (the plugin aborted)".into())
                }
            },
            other => CallFailure::Trapped(other.to_string()),
        };
    }
    let text = format!("{error:#}");
    // wasmtime's own error type for this is private; its message is not.
    if text.contains("fuel allocated for hostcalls has been exhausted") {
        return CallFailure::TooMuchData {
            limit_bytes: host_copy_budget(limits) as u64,
        };
    }
    if text.contains("concurrent") && text.contains("limit") {
        return CallFailure::Start(format!("no free instance slot: {text}"));
    }
    CallFailure::Trapped(text)
}
