//! `[updates]`: how a node follows the registry, when it may swap a plugin,
//! and how long a new version is on probation.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpdateSettings {
    /// Plugins that follow a version requirement from the registry, besides
    /// those set with `outpost plugin follow`: `"acme/zpl-printer" = "^1"`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub follow: BTreeMap<String, String>,
    /// How often the registry is asked for newer releases (give or take a
    /// tenth, so a fleet does not ask all at once).
    pub check_interval_minutes: u64,
    /// When a plugin may be swapped by itself, in the node's local time:
    /// "02:00-05:00" (may span midnight). Unset: any time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// A new version serves on probation at least this long and for at
    /// least this many calls (a manifest may ask for more, up to
    /// `max-probation-seconds`); with fewer calls by four times the
    /// duration it is judged on its health alone.
    pub probation_seconds: u64,
    pub probation_calls: u64,
    pub max_probation_seconds: u64,
    /// Probation fails when at least `probation-failed-calls` calls failed
    /// (trap, deadline, memory, `internal` error) and the share failing is
    /// more than `probation-failed-percent` points above the previous
    /// version's.
    pub probation_failed_calls: u64,
    pub probation_failed_percent: u64,
    /// The longest an app may hold the update lock (`POST /v1/updates/lock`).
    pub max_lock_seconds: u64,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings {
            follow: BTreeMap::new(),
            check_interval_minutes: 60,
            window: None,
            probation_seconds: 600,
            probation_calls: 20,
            max_probation_seconds: 86_400,
            probation_failed_calls: 3,
            probation_failed_percent: 10,
            max_lock_seconds: 900,
        }
    }
}

impl UpdateSettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.check_interval_minutes == 0 {
            return Err("updates.check-interval-minutes must be at least 1".into());
        }
        if let Some(window) = &self.window {
            Window::parse(window).map_err(|why| format!("updates.window = {window:?}: {why}"))?;
        }
        if self.probation_seconds > self.max_probation_seconds {
            return Err(format!(
                "updates.probation-seconds = {} is more than updates.max-probation-seconds ({})",
                self.probation_seconds, self.max_probation_seconds
            ));
        }
        if self.probation_failed_calls == 0 || self.probation_failed_percent > 100 {
            return Err("updates.probation-failed-calls must be at least 1 and \
                 updates.probation-failed-percent at most 100"
                .into());
        }
        for (plugin, requirement) in &self.follow {
            crate::plugin_id::PluginId::parse(plugin)
                .map_err(|why| format!("updates.follow: {plugin:?}: {why}"))?;
            semver::VersionReq::parse(requirement).map_err(|why| {
                format!("updates.follow.\"{plugin}\" = {requirement:?} is not a version requirement ({why}); try \"^1\"")
            })?;
        }
        Ok(())
    }

    pub fn window(&self) -> Option<Window> {
        self.window.as_deref().and_then(|w| Window::parse(w).ok())
    }
}

/// A daily maintenance window, in minutes since local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u16,
    pub end: u16,
}

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let minutes = |part: &str| -> Result<u16, String> {
            let (hours, minutes) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not HH:MM"))?;
            let hours: u16 = hours
                .parse()
                .map_err(|_| format!("{part:?} is not HH:MM"))?;
            let minutes: u16 = minutes
                .parse()
                .map_err(|_| format!("{part:?} is not HH:MM"))?;
            if hours > 23 || minutes > 59 {
                return Err(format!("{part:?} is not a time of day"));
            }
            Ok(hours * 60 + minutes)
        };
        let (start, end) = text.split_once('-').ok_or("write it as \"02:00-05:00\"")?;
        let window = Window {
            start: minutes(start)?,
            end: minutes(end)?,
        };
        if window.start == window.end {
            return Err("it starts and ends at the same time; leave it unset for any time".into());
        }
        Ok(window)
    }

    /// Whether `minute` (since midnight) is inside; a window may span
    /// midnight ("22:00-02:00").
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_may_span_midnight() {
        let night = Window::parse("22:30-02:00").expect("valid");
        assert!(night.contains(23 * 60));
        assert!(night.contains(60));
        assert!(!night.contains(12 * 60));
        let early = Window::parse("02:00-05:00").expect("valid");
        assert!(early.contains(2 * 60));
        assert!(!early.contains(5 * 60));
        assert_eq!(early.to_string(), "02:00-05:00");
        for bad in ["2-5", "25:00-01:00", "02:00", "03:00-03:00", "aa:bb-01:00"] {
            assert!(Window::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
