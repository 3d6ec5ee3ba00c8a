//! The node's switch on the world outside the box, for `outpost drill`: a
//! rehearsal of the day the shop's internet goes, made by the node itself
//! rather than a firewall rule someone forgets to remove.
//!
//! While the network is cut, everything the node would start towards the
//! outside is refused as if the line were down: plugins' outbound HTTP
//! fails as a refused connection (a courier adapter queues its bookings, as
//! it would), the outbox holds its deliveries, and telemetry, update checks
//! and the fleet agent wait. The local API keeps serving, and printers
//! (on the shop's own network) keep printing. A cut always has an end: a
//! drill that is interrupted cannot leave a node offline for good, and a
//! restart ends it too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Network {
    cut_until: Mutex<Option<Instant>>,
    restored: tokio::sync::Notify,
}

impl Network {
    /// Cuts the network for `duration` (at most an hour).
    pub fn cut_for(&self, duration: Duration) {
        let until = Instant::now() + duration.min(Duration::from_secs(3600));
        *self.lock() = Some(until);
        tracing::info!(
            "drill: the node is cut off from everything outside the box for {}s",
            duration.as_secs()
        );
    }

    /// Ends a cut now.
    pub fn restore(&self) {
        if self.lock().take().is_some() {
            tracing::info!("drill: the network is back");
        }
        self.restored.notify_waiters();
    }

    /// True while a cut lasts.
    pub fn is_cut(&self) -> bool {
        let mut cut = self.lock();
        match *cut {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *cut = None;
                drop(cut);
                tracing::info!("drill: the cut ended on its own; the network is back");
                self.restored.notify_waiters();
                false
            }
            None => false,
        }
    }

    /// How long the cut has left.
    pub fn remaining(&self) -> Option<Duration> {
        self.lock()
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    /// Resolves when the network is back (at once if it is not cut).
    pub async fn restored(&self) {
        loop {
            let notified = self.restored.notified();
            let Some(left) = self.remaining() else {
                return;
            };
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(left) => {}
            }
            if !self.is_cut() {
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.cut_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cut_ends_by_itself_or_when_restored() {
        let network = Network::default();
        assert!(!network.is_cut());
        network.restored().await;
        network.cut_for(Duration::from_millis(50));
        assert!(network.is_cut());
        network.restored().await;
        assert!(!network.is_cut());
        network.cut_for(Duration::from_secs(60));
        assert!(network.is_cut());
        network.restore();
        assert!(!network.is_cut());
    }
}
