//! Host capabilities, one module each.
//!
//! Each module holds one capability whole: its state inside a call, its WIT
//! host implementation and its `add_to_linker`. Which plugins get it is decided
//! by its grant in the manifest (see `manifest::Grants`), checked against the
//! component's imports at install (`contract`) and against the operator's
//! policy (`config::Policy`). Adding a capability is a module here, a field in
//! `sandbox::CallState`, and a line in [`link`].

pub mod clocks;
pub mod config;
pub mod files;
pub mod http;
pub mod keystore;
pub mod kv;
pub mod log;
pub mod outbox;
pub mod scratch_quota;

use crate::sandbox::CallState;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

/// What the node lends capabilities, shared by every call.
#[derive(Debug, Clone)]
pub struct Services {
    pub keystore: Arc<crate::keystore::Keystore>,
    pub outbox: Arc<crate::outbox::Outbox>,
    pub http_limits: http::HttpLimits,
    /// Cut during a drill: outbound HTTP is refused.
    pub network: Arc<crate::network::Network>,
}

/// `outpost:plugins/types` declares only types, but components import it as
/// an instance, so the linker must define it (empty).
struct SharedTypes;

impl HasData for SharedTypes {
    type Data<'a> = SharedTypes;
}

impl crate::bindings::types::Host for SharedTypes {}

/// Everything a plugin may import, in one linker: WASI (sandboxed by each
/// call's context), then the node's own capabilities.
pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    clocks::add_to_linker(linker, |state| clocks::ClockView {
        state: &state.clocks,
        table: &mut state.table,
    })?;
    // Counts writes under /scratch against its quota as they happen.
    scratch_quota::add_to_linker(linker)?;
    linker.allow_shadowing(false);
    log::add_to_linker(linker, |state| &mut state.log)?;
    kv::add_to_linker(linker, |state| &mut state.kv)?;
    config::add_to_linker(linker, |state| &mut state.config)?;
    keystore::add_to_linker(linker, |state| &mut state.keystore)?;
    outbox::add_to_linker(linker, |state| &mut state.outbox)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
    crate::bindings::types::add_to_linker::<CallState, SharedTypes>(linker, |_| SharedTypes)?;
    Ok(())
}
