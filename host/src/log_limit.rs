//! Keeps a repeating log line from flooding the log.
//!
//! A failure that repeats (a full disk, a database that stopped writing) is
//! worth one line when it starts and a reminder now and then, not a line per
//! occurrence: thousands a second bury everything else and fill the disk that
//! is already full. [`LogLimit`] lets the first occurrence through, then at
//! most one per interval, saying how many it held back.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log this occurrence: `Some(n)` with the number held back
    /// since the last one logged, or `None` to stay quiet.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Forgets the streak, so the next occurrence is logged at once: the
    /// failure ended, and a new one is news.
    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

/// Says how many were held back, if any, for the end of the next line.
pub fn held_back(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more like it since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_one_per_interval_with_the_count_held_back() {
        let start = Instant::now();
        let mut limit = LogLimit::new(Duration::from_secs(60));
        assert_eq!(limit.allow_at(start), Some(0));
        for second in 1..60 {
            assert_eq!(limit.allow_at(start + Duration::from_secs(second)), None);
        }
        assert_eq!(limit.allow_at(start + Duration::from_secs(60)), Some(59));
        assert_eq!(limit.allow_at(start + Duration::from_secs(61)), None);
        limit.reset();
        assert_eq!(limit.allow_at(start + Duration::from_secs(62)), Some(0));
    }
}
