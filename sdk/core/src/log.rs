//! Logging into the node's trace.
//!
//! Always available. Events land in the node's log inside the span of the call
//! that emitted them, tagged with the plugin id, version and call id, so a
//! message needs to say only what happened. Use the macros: they skip the
//! formatting when the node would drop the event anyway.
//!
//! ```no_run
//! # use outpost_sdk_core as outpost_sdk;
//! outpost_sdk::info!("rendered {} bytes", 120);
//! outpost_sdk::warn!("paper width {} is unusual", 37);
//! ```

#[cfg(target_family = "wasm")]
use crate::bindings::outpost::host::log as host;
// Natively (a vendor's `cargo test`) there is no node: the in-memory host.
pub use crate::bindings::outpost::host::log::Level;
#[cfg(not(target_family = "wasm"))]
use crate::testing::log as host;

/// Whether the node records events at `level`.
pub fn enabled(level: Level) -> bool {
    host::enabled(level)
}

/// Emits `message` at `level`. The node truncates messages over 4 KiB.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Formats and emits an event if the node records `level`; what the macros call.
pub fn emit(level: Level, args: std::fmt::Arguments<'_>) {
    if host::enabled(level) {
        match args.as_str() {
            Some(text) => host::log(level, text),
            None => host::log(level, &args.to_string()),
        }
    }
}

/// Logs at trace level, with `format!` syntax.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Trace, format_args!($($arg)*)) };
}

/// Logs at debug level, with `format!` syntax.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Debug, format_args!($($arg)*)) };
}

/// Logs at info level, with `format!` syntax.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// Logs at warn level, with `format!` syntax.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Warn, format_args!($($arg)*)) };
}

/// Logs at error level, with `format!` syntax.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Error, format_args!($($arg)*)) };
}
