//! The update lock: an app (the till during a sale) asks the node not to
//! swap plugins for a while. Downloads and staging go on; only activation
//! waits. The lock is in memory and bounded by `updates.max-lock-seconds`, so
//! a forgotten lock, or an app that crashed holding it, cannot hold updates
//! back for longer than that, and a restart releases it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct UpdateLock {
    held: Mutex<Option<Held>>,
    /// Notified on release, so deferred activations need not wait for the
    /// agent's next look.
    pub released: tokio::sync::Notify,
}

#[derive(Debug, Clone)]
struct Held {
    holder: String,
    until: Instant,
}

/// Who holds the lock and for how much longer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockView {
    pub holder: String,
    pub remaining_seconds: u64,
}

impl UpdateLock {
    /// Takes (or extends) the lock for `wanted`, at most `longest`; returns
    /// how long it is held.
    pub fn take(&self, holder: &str, wanted: Duration, longest: Duration) -> Duration {
        let held_for = wanted.min(longest);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        *held = Some(Held {
            holder: holder.to_string(),
            until: Instant::now() + held_for,
        });
        held_for
    }

    /// Releases it; false if it was not held.
    pub fn release(&self) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let was = held.as_ref().is_some_and(|h| h.until > Instant::now());
        *held = None;
        self.released.notify_waiters();
        was
    }

    pub fn current(&self) -> Option<LockView> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let held = held.as_ref()?;
        let remaining = held.until.checked_duration_since(Instant::now())?;
        Some(LockView {
            holder: held.holder.clone(),
            remaining_seconds: remaining.as_secs().max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_capped_and_expires() {
        let lock = UpdateLock::default();
        assert_eq!(lock.current(), None);
        let held = lock.take("till", Duration::from_secs(3600), Duration::from_secs(60));
        assert_eq!(held, Duration::from_secs(60));
        assert_eq!(lock.current().map(|v| v.holder), Some("till".into()));
        assert!(lock.release());
        assert_eq!(lock.current(), None);
        lock.take("till", Duration::from_millis(1), Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(lock.current(), None);
        assert!(!lock.release());
    }
}
