//! Telemetry to the centre, offline first and consented.
//!
//! Every `rollup-seconds` the node takes a **rollup**: its `/metrics`
//! figures at that moment, cut down to what the operator consented to
//! ([`Consent`]), labelled with the node's id, encoded as a Prometheus
//! remote-write message and queued in the database. A shipper sends the
//! queue oldest first whenever the centre answers, so the centre's store
//! (Prometheus, Thanos, Mimir, VictoriaMetrics) sees every rollup at the
//! time it was taken, however long the node was offline.
//!
//! The budget: the queue keeps at most `max-backlog-kib` and
//! `max-age-hours`. Over the size, the oldest *fine* rollups go first; every
//! `coarse-every`-th rollup is *coarse* and goes only when no fine one is
//! left, so a week offline keeps an hourly line rather than the last two
//! days. Counters are running totals, so a thinned line still gives exact
//! increases between the points it kept. On return, at most
//! `max-upload-kib-per-hour` goes out an hour, `batch-kib` a request.
//!
//! Nothing about a customer or a card is ever in a rollup: the node's
//! metrics have no such label to begin with (see `metrics`).

pub mod rollup;
pub mod wire;

use crate::node::Node;
use crate::store::{QueuedRollup, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What may leave the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consent {
    /// Nothing.
    Off,
    /// The node's totals: no plugin named, no destination.
    Aggregate,
    /// The totals and each plugin's figures.
    WithPluginDetail,
}

impl Consent {
    pub fn parse(text: &str) -> Result<Consent, String> {
        match text {
            "off" => Ok(Consent::Off),
            "aggregate" => Ok(Consent::Aggregate),
            "with-plugin-detail" => Ok(Consent::WithPluginDetail),
            other => Err(format!(
                "{other:?} is not a consent; use off, aggregate or with-plugin-detail"
            )),
        }
    }

    /// The number a stored rollup keeps of the consent it was taken under.
    pub fn code(self) -> u8 {
        match self {
            Consent::Off => 0,
            Consent::Aggregate => 1,
            Consent::WithPluginDetail => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Consent::Off => "off",
            Consent::Aggregate => "aggregate",
            Consent::WithPluginDetail => "with-plugin-detail",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{0}")]
    BadConsent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The consent in force: the operator's choice, else the configured one.
pub fn consent(node: &Node) -> Consent {
    let chosen = node.store().telemetry_consent().ok().flatten();
    let text = chosen
        .as_deref()
        .unwrap_or(&node.config().telemetry.consent);
    Consent::parse(text).unwrap_or(Consent::Off)
}

/// Records the operator's choice. The backlog is emptied: what was rolled
/// up under another consent does not leave under this one.
pub fn set_consent(node: &Node, text: &str) -> Result<Consent, TelemetryError> {
    let consent = Consent::parse(text).map_err(TelemetryError::BadConsent)?;
    node.store().set_telemetry_consent(consent.name())?;
    tracing::info!(target: "outpost::telemetry", "telemetry consent set to {}", consent.name());
    Ok(consent)
}

/// What the console and `outpost telemetry` show.
pub fn view(node: &Node) -> Value {
    let settings = &node.config().telemetry;
    let chosen = node.store().telemetry_consent().ok().flatten().is_some();
    json!({
        "consent": consent(node).name(),
        "chosen_by_operator": chosen,
        "remote_write_url": settings.remote_write_url,
        "rollup_seconds": settings.rollup_seconds,
        "backlog": node.store().telemetry_backlog().ok(),
        "max_backlog_bytes": settings.max_backlog_kib << 10,
    })
}

/// Takes one rollup now, if consent allows. Returns whether one was queued.
pub fn take_rollup(node: &Node, at_ms: u64) -> Result<bool, TelemetryError> {
    let settings = &node.config().telemetry;
    let consent = consent(node);
    if consent == Consent::Off {
        return Ok(false);
    }
    let text = crate::metrics::scrape::render(node).map_err(|error| match error {
        crate::metrics::scrape::ScrapeError::Store(error) => TelemetryError::Store(error),
        other => TelemetryError::BadConsent(other.to_string()),
    })?;
    let node_id = node.store().node_id(random_id)?;
    let Some(message) = rollup::build(&rollup::parse(&text), consent, &node_id, at_ms) else {
        return Ok(false);
    };
    let interval_ms = settings.rollup_seconds.saturating_mul(1000).max(1);
    let coarse = (at_ms / interval_ms).is_multiple_of(settings.coarse_every.max(1));
    let oldest_kept_ms = at_ms.saturating_sub(settings.max_age_hours.saturating_mul(3_600_000));
    let dropped = node.store().telemetry_queue(
        &QueuedRollup {
            at_ms,
            coarse,
            consent: consent.code(),
            message,
        },
        oldest_kept_ms,
        settings.max_backlog_kib << 10,
    )?;
    if dropped > 0 {
        tracing::debug!(target: "outpost::telemetry", dropped, "the telemetry backlog is at its budget");
    }
    Ok(true)
}

fn random_id() -> String {
    let mut random = [0u8; 16];
    let _ = getrandom::fill(&mut random);
    hex::encode(random)
}

/// What one round of shipping did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shipped {
    pub rollups: usize,
    pub wire_bytes: usize,
    /// Set when the centre could not take them now.
    pub trouble: Option<String>,
}

/// Sends the oldest queued rollups: one request of at most `batch-kib`,
/// and nothing once `allowance` (bytes left this hour) is spent.
pub async fn ship_once(node: &Arc<Node>, allowance: u64) -> Result<Shipped, TelemetryError> {
    let settings = node.config().telemetry.clone();
    let Some(url) = settings.remote_write_url.clone() else {
        return Ok(Shipped::default());
    };
    let batch = (settings.batch_kib << 10).min(allowance);
    if batch == 0 {
        return Ok(Shipped::default());
    }
    let worker = node.clone();
    let mut rollups = tokio::task::spawn_blocking(move || worker.store().telemetry_oldest(batch))
        .await
        .map_err(|e| TelemetryError::BadConsent(format!("the node stopped the work: {e}")))??;
    // Taken under another consent than the one in force (the operator
    // narrowed it, or the configuration changed): they never leave.
    let now = consent(node).code();
    let stale: Vec<u64> = rollups
        .iter()
        .filter(|r| r.consent != now || now == Consent::Off.code())
        .map(|r| r.at_ms)
        .collect();
    if !stale.is_empty() {
        let worker = node.clone();
        let times = stale.clone();
        tokio::task::spawn_blocking(move || worker.store().telemetry_forget(&times))
            .await
            .map_err(|e| TelemetryError::BadConsent(format!("the node stopped the work: {e}")))??;
        rollups.retain(|r| !stale.contains(&r.at_ms));
    }
    // One rollup bigger than a batch still goes alone, but never past
    // the hour's allowance.
    let first = rollups.first().map_or(0, |r| r.message.len() as u64);
    if rollups.is_empty() || first > allowance {
        return Ok(Shipped::default());
    }
    let messages: Vec<&[u8]> = rollups.iter().map(|r| r.message.as_slice()).collect();
    let (pushed, wire_bytes) = wire::push(&url, &messages, Duration::from_secs(30)).await;
    let times: Vec<u64> = rollups.iter().map(|r| r.at_ms).collect();
    let trouble = match pushed {
        wire::Pushed::Taken => None,
        wire::Pushed::Refused(why) => {
            // A store that refuses these samples (older than it keeps, or
            // already there) will refuse them again: they go.
            tracing::warn!(target: "outpost::telemetry", "the centre refused {} rollups for good: {why}", times.len());
            None
        }
        wire::Pushed::NotNow(why) => Some(why),
    };
    if trouble.is_none() {
        let worker = node.clone();
        tokio::task::spawn_blocking(move || worker.store().telemetry_forget(&times))
            .await
            .map_err(|e| TelemetryError::BadConsent(format!("the node stopped the work: {e}")))??;
    }
    Ok(Shipped {
        rollups: if trouble.is_none() { rollups.len() } else { 0 },
        wire_bytes,
        trouble,
    })
}

/// Takes rollups and ships them until `shutdown`.
pub async fn run(node: Arc<Node>, shutdown: impl std::future::Future<Output = ()>) {
    let settings = node.config().telemetry.clone();
    let interval = Duration::from_secs(settings.rollup_seconds.max(1));
    let hourly_allowance = settings.max_upload_kib_per_hour << 10;
    let mut hour_started = Instant::now();
    let mut spent = 0u64;
    let mut next_rollup = tokio::time::Instant::now() + interval;
    let mut failures = 0u32;
    let mut log = crate::log_limit::LogLimit::new(Duration::from_secs(600));
    tokio::pin!(shutdown);
    loop {
        if hour_started.elapsed() >= Duration::from_secs(3600) {
            hour_started = Instant::now();
            spent = 0;
        }
        let mut wait = next_rollup.saturating_duration_since(tokio::time::Instant::now());
        if wait.is_zero() {
            next_rollup += interval;
            let worker = node.clone();
            let taken = tokio::task::spawn_blocking(move || {
                take_rollup(&worker, crate::clock::now_millis())
            })
            .await;
            if let Ok(Err(error)) = taken {
                tracing::warn!(target: "outpost::telemetry", "cannot take a telemetry rollup: {error}");
            }
            continue;
        }
        if node.is_offline() {
            // A drill: rollups are still taken; shipping waits for its end.
            tokio::select! {
                () = node.network().restored() => {}
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
            continue;
        }
        match ship_once(&node, hourly_allowance.saturating_sub(spent)).await {
            Ok(shipped) if shipped.trouble.is_none() && shipped.rollups > 0 => {
                spent += shipped.wire_bytes as u64;
                failures = 0;
                log.reset();
                // More may be waiting: go on at once, within the allowance.
                wait = Duration::ZERO;
            }
            Ok(Shipped {
                trouble: Some(why),
                wire_bytes,
                ..
            }) => {
                spent += wire_bytes as u64;
                failures = failures.saturating_add(1);
                if let Some(suppressed) = log.allow() {
                    tracing::info!(
                        target: "outpost::telemetry",
                        "telemetry waits for the centre: {why}{}",
                        crate::log_limit::held_back(suppressed)
                    );
                }
                // Back off, but never past the next rollup.
                let backoff = Duration::from_secs(1u64 << failures.min(8));
                wait = wait.min(backoff);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(target: "outpost::telemetry", "cannot ship telemetry: {error}");
            }
        }
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = node.outbox().network_answered.notified() => {}
            () = &mut shutdown => return,
        }
    }
}
