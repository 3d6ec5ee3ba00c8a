//! Values the operator set for this plugin in the node's `outpost.toml`.
//!
//! Needs `config = true` under `[grants]` in `plugin.toml`. The operator writes:
//!
//! ```toml
//! [plugin-config."acme/label-printer"]
//! darkness = "18"
//! ```
//!
//! [`parse`] reads a value and turns a bad one into an `invalid-input` error
//! that names the key, so the operator knows what to fix.

#[cfg(target_family = "wasm")]
use crate::bindings::outpost::host::config as host;
// Natively (a vendor's `cargo test`) there is no node: the in-memory host.
#[cfg(not(target_family = "wasm"))]
use crate::testing::config as host;
use crate::types::PluginError;
use std::str::FromStr;

/// The value of `key`, if the operator set one.
pub fn get(key: &str) -> Option<String> {
    host::get(key)
}

/// Every key and value set for this plugin, sorted by key.
pub fn get_all() -> Vec<(String, String)> {
    host::get_all()
}

/// The value of `key` parsed as `T`, `None` if unset.
pub fn parse<T>(key: &str) -> Result<Option<T>, PluginError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match host::get(key) {
        None => Ok(None),
        Some(raw) => raw.trim().parse::<T>().map(Some).map_err(|error| {
            PluginError::invalid_input(format!(
                "plugin-config `{key}` = {raw:?} is not valid: {error}"
            ))
        }),
    }
}

/// The value of `key` parsed as `T`, or `default` if unset.
pub fn parse_or<T>(key: &str, default: T) -> Result<T, PluginError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Ok(parse(key)?.unwrap_or(default))
}
