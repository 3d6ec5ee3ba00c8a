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
pub mod kv;
pub mod log;

use crate::sandbox::CallState;
use wasmtime::component::{HasData, Linker};

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
    linker.allow_shadowing(false);
    log::add_to_linker(linker, |state| &mut state.log)?;
    kv::add_to_linker(linker, |state| &mut state.kv)?;
    config::add_to_linker(linker, |state| &mut state.config)?;
    crate::bindings::types::add_to_linker::<CallState, SharedTypes>(linker, |_| SharedTypes)?;
    Ok(())
}
