//! `[telemetry]`: what the node ships to the centre's Prometheus-compatible
//! store, how often, and within what budget while it is offline.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TelemetrySettings {
    /// The centre's Prometheus remote-write endpoint
    /// (`https://metrics.example/api/v1/write`). Unset: nothing is shipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_write_url: Option<String>,
    /// What the operator agrees may leave the box until they choose on the
    /// console or with `outpost telemetry consent`: "off", "aggregate" or
    /// "with-plugin-detail". Their choice, once made, wins over this.
    pub consent: String,
    /// One rollup (the node's figures at that moment) every so often.
    pub rollup_seconds: u64,
    /// Of the rollups, every this many is a coarse one, kept when the
    /// backlog is over its budget: the default keeps one an hour.
    pub coarse_every: u64,
    /// The most the backlog keeps while the centre cannot be reached; past
    /// it the oldest fine rollups go first, then the oldest coarse ones.
    pub max_backlog_kib: u64,
    /// Rollups older than this are dropped unsent.
    pub max_age_hours: u64,
    /// The most one request carries.
    pub batch_kib: u64,
    /// The most shipped in an hour, so a node back from a week offline
    /// does not spend the month's cellular data at once.
    pub max_upload_kib_per_hour: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            remote_write_url: None,
            consent: "off".to_string(),
            rollup_seconds: 300,
            coarse_every: 12,
            max_backlog_kib: 2048,
            max_age_hours: 14 * 24,
            batch_kib: 64,
            max_upload_kib_per_hour: 1024,
        }
    }
}

impl TelemetrySettings {
    pub(super) fn validate(&self) -> Result<(), String> {
        crate::telemetry::Consent::parse(&self.consent)
            .map_err(|why| format!("telemetry.consent: {why}"))?;
        if let Some(url) = &self.remote_write_url {
            crate::origin::Origin::of_url(url)
                .map_err(|why| format!("telemetry.remote-write-url: {why}"))?;
        }
        for (name, value) in [
            ("rollup-seconds", self.rollup_seconds),
            ("coarse-every", self.coarse_every),
            ("max-backlog-kib", self.max_backlog_kib),
            ("max-age-hours", self.max_age_hours),
            ("batch-kib", self.batch_kib),
            ("max-upload-kib-per-hour", self.max_upload_kib_per_hour),
        ] {
            if value == 0 {
                return Err(format!("telemetry.{name} must be at least 1"));
            }
        }
        for (name, value, most) in [
            ("rollup-seconds", self.rollup_seconds, 86_400),
            ("coarse-every", self.coarse_every, 10_000),
            ("max-backlog-kib", self.max_backlog_kib, 1 << 20),
            ("max-age-hours", self.max_age_hours, 24 * 366),
            ("batch-kib", self.batch_kib, 16 << 10),
            (
                "max-upload-kib-per-hour",
                self.max_upload_kib_per_hour,
                1 << 30,
            ),
        ] {
            if value > most {
                return Err(format!(
                    "telemetry.{name} = {value} is over its limit of {most}"
                ));
            }
        }
        if self.batch_kib > self.max_upload_kib_per_hour {
            return Err(format!(
                "telemetry.batch-kib ({}) is more than telemetry.max-upload-kib-per-hour ({}): \
                 no request could ever be sent",
                self.batch_kib, self.max_upload_kib_per_hour
            ));
        }
        Ok(())
    }
}
