//! Why a plugin call did not return a value: the plugin's own error, or what
//! the sandbox stopped it for. Below the call machinery, so the plugin table
//! (its counters) and the capabilities (a scratch quota) can name failures
//! without depending on how calls are made.

use crate::admission::Refusal;
use crate::bindings::types::PluginError;
use std::time::Duration;

/// Why a call did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// The plugin returned its own error.
    #[error("{0}")]
    Plugin(PluginFailure),
    #[error("ran past its {}ms deadline and was stopped", .0.as_millis())]
    DeadlineExceeded(Duration),
    #[error("tried to use more than its {} MiB memory limit and was stopped", .limit_bytes >> 20)]
    MemoryLimit { limit_bytes: u64 },
    #[error("used all {0} units of its fuel and was stopped")]
    FuelExhausted(u64),
    #[error("panicked: {0}")]
    Panicked(String),
    #[error("exited with status {0} (plugins must return, not exit)")]
    Exited(i32),
    #[error("trapped: {0}")]
    Trapped(String),
    /// `used` is what it tried to put in the folder when a write was
    /// refused, or what it left there when the call ended.
    #[error(
        "tried to use {used} bytes of /scratch, over its {quota}-byte quota; the call's result \
         was discarded"
    )]
    ScratchQuota { used: u64, quota: u64 },
    #[error(
        "left something in /scratch the node could not measure ({0}); the call's result was discarded"
    )]
    ScratchUnmeasured(String),
    #[error("could not write to /scratch: {0}")]
    DiskReserve(String),
    #[error(
        "passed more than {limit_bytes} bytes to the node in one go (a result or a host call's \
         arguments) and was stopped"
    )]
    TooMuchData { limit_bytes: u64 },
    #[error("could not start: {0}")]
    Start(String),
    /// Not run: the plugin's share of the node was taken (see `admission`).
    #[error(transparent)]
    Busy(Refusal),
    /// An update or a rollback replaced the version while the call ran. Its
    /// data may have been migrated or restored meanwhile, so the old code's
    /// writes were refused rather than mixed into the new version's.
    #[error(
        "wrote to storage while it was not the plugin's active version (an update, a rollback \
         or a removal replaced it during the call, or it was still being checked for install); \
         the write was refused and the result discarded; call again to reach the version \
         serving now"
    )]
    Replaced,
}

/// The `plugin-error` variant, as the node reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("denied: {0}")]
    Denied(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<PluginError> for PluginFailure {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::InvalidInput(why) => PluginFailure::InvalidInput(why),
            PluginError::Unavailable(why) => PluginFailure::Unavailable(why),
            PluginError::Denied(why) => PluginFailure::Denied(why),
            PluginError::Internal(why) => PluginFailure::Internal(why),
        }
    }
}
