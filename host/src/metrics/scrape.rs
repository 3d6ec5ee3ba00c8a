//! One scrape: the counted figures, then the node's state read now.

use super::PluginLabel;
use crate::node::Node;
use crate::plugins::PluginSlot;
use crate::store::{StoreError, UpdateState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot read the node database for metrics: {0}")]
    Store(#[from] StoreError),
    #[error("cannot write the metrics text: {0}")]
    Format(#[from] std::fmt::Error),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginInfo {
    plugin: String,
    version: String,
    kind: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationState {
    destination: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabel {
    destination: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Everything `/metrics` shows, in the Prometheus text format. Reads the
/// database: call it off async tasks.
pub fn render(node: &Node) -> Result<String, ScrapeError> {
    let mut text = String::new();
    prometheus_text::encode(&mut text, node.metrics().registry())?;
    prometheus_text::encode(&mut text, &state_now(node)?)?;
    Ok(text)
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let gauge = FloatGauge::default();
    gauge.set(value);
    registry.register(name, help, gauge);
}

fn family<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Gauge>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Gauge>::default();
    registry.register(name, help, family.clone());
    family
}

/// The node's state as gauges, in a registry made for this one scrape.
fn state_now(node: &Node) -> Result<Registry, ScrapeError> {
    let mut registry = Registry::with_prefix("outpost");
    let now_ms = crate::clock::now_millis();

    family::<VersionLabel>(&mut registry, "build_info", "The node's version (always 1)")
        .get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    let started = now_ms as f64 / 1000.0 - node.uptime().as_secs_f64();
    gauge(
        &mut registry,
        "start_time_seconds",
        "When the node started (Unix time)",
        started,
    );

    plugins(&mut registry, node);
    outbox(&mut registry, node, now_ms)?;
    updates(&mut registry, node)?;
    storage(&mut registry, node);
    Ok(registry)
}

fn plugins(registry: &mut Registry, node: &Node) {
    let info = family::<PluginInfo>(
        registry,
        "plugin_info",
        "Installed plugins: version, kind and status (active, unavailable); always 1",
    );
    let running = family::<PluginLabel>(registry, "plugin_calls_running", "Calls running now");
    let waiting = family::<PluginLabel>(
        registry,
        "plugin_calls_waiting",
        "Calls waiting for one of the plugin's places now",
    );
    let places = family::<PluginLabel>(
        registry,
        "plugin_call_places",
        "How many of the plugin's calls may run at once (limits.concurrency)",
    );
    let queue = family::<PluginLabel>(
        registry,
        "plugin_queue_places",
        "How many more may wait before callers are turned away (policy.max-queued-calls)",
    );
    for slot in node.table.all() {
        let label = PluginLabel {
            plugin: slot.id().to_string(),
        };
        match slot {
            PluginSlot::Loaded(plugin) => {
                info.get_or_create(&PluginInfo {
                    plugin: label.plugin.clone(),
                    version: plugin.version.to_string(),
                    kind: plugin.kind().world_name().to_string(),
                    status: "active",
                })
                .set(1);
                running
                    .get_or_create(&label)
                    .set(i64::from(plugin.share.running()));
                waiting
                    .get_or_create(&label)
                    .set(i64::from(plugin.share.waiting()));
                places
                    .get_or_create(&label)
                    .set(i64::from(plugin.spec.limits.concurrency));
                queue
                    .get_or_create(&label)
                    .set(i64::from(plugin.spec.limits.max_queued));
            }
            PluginSlot::Unavailable { id, version, .. } => {
                info.get_or_create(&PluginInfo {
                    plugin: id.to_string(),
                    version: version.to_string(),
                    kind: String::new(),
                    status: "unavailable",
                })
                .set(1);
            }
        }
    }
    let pool = node.invoker().pool();
    gauge(
        registry,
        "pool_slots",
        "Instances the node may run at once, all plugins together (engine.pool-slots)",
        f64::from(pool.size()),
    );
    gauge(
        registry,
        "pool_slots_in_use",
        "Of those, in use now",
        f64::from(pool.in_use()),
    );
}

fn outbox(registry: &mut Registry, node: &Node, now_ms: u64) -> Result<(), ScrapeError> {
    let entries = family::<DestinationState>(
        registry,
        "outbox_entries",
        "Outbox entries by destination origin and state (pending, dead, delivered, dropped)",
    );
    let oldest = FloatGaugeFamily::default();
    registry.register(
        "outbox_oldest_pending_age_seconds",
        "Age of the oldest entry still waiting to be delivered, by destination origin",
        oldest.clone(),
    );
    let mut by_origin = std::collections::BTreeMap::new();
    for (url, backlog) in node.store().outbox_by_destination()? {
        let origin = crate::origin::Origin::of_url(&url)
            .map(|origin| origin.as_str().to_string())
            .unwrap_or_else(|_| "invalid".to_string());
        let slot: &mut crate::store::DestinationBacklog = by_origin.entry(origin).or_default();
        slot.pending += backlog.pending;
        slot.dead += backlog.dead;
        slot.delivered += backlog.delivered;
        slot.dropped += backlog.dropped;
        slot.oldest_pending_ms = match (slot.oldest_pending_ms, backlog.oldest_pending_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    for (destination, backlog) in by_origin {
        for (state, count) in [
            ("pending", backlog.pending),
            ("dead", backlog.dead),
            ("delivered", backlog.delivered),
            ("dropped", backlog.dropped),
        ] {
            entries
                .get_or_create(&DestinationState {
                    destination: destination.clone(),
                    state,
                })
                .set(count as i64);
        }
        let age = backlog
            .oldest_pending_ms
            .map_or(0.0, |at| now_ms.saturating_sub(at) as f64 / 1000.0);
        oldest
            .get_or_create(&DestinationLabel { destination })
            .set(age);
    }
    Ok(())
}

type FloatGaugeFamily = Family<DestinationLabel, FloatGauge>;

fn updates(registry: &mut Registry, node: &Node) -> Result<(), ScrapeError> {
    let states = family::<StateLabel>(
        registry,
        "updates",
        "Plugin updates by state; held ones wait for an operator's approval",
    );
    let records = node.store().updates()?;
    for state in UpdateState::ALL {
        let count = records.iter().filter(|r| r.state == state).count();
        states
            .get_or_create(&StateLabel {
                state: state.name(),
            })
            .set(count as i64);
    }
    Ok(())
}

fn storage(registry: &mut Registry, node: &Node) {
    let store = node.store();
    let database = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    gauge(
        registry,
        "storage_database_bytes",
        "Size of the node database file",
        database as f64,
    );
    if let Some(free) = crate::store::free_bytes(node.data_dir()) {
        gauge(
            registry,
            "storage_free_bytes",
            "Free space on the disk that holds the data directory",
            free as f64,
        );
    }
    gauge(
        registry,
        "storage_reserve_bytes",
        "Free space plugins may not use (policy.disk-reserve-mib)",
        store.disk_reserve() as f64,
    );
}
