//! Everything the console's first screen shows, in one read: what an
//! operator at a stall looks at between customers.

use crate::node::Node;
use crate::store::DeliveryState;
use serde_json::{Value, json};

/// The entries of the outbox the console lists: what waits or gave up.
const OUTBOX_SHOWN: usize = 50;

/// The overview as JSON. Reads the database: call it off async tasks.
pub fn read(node: &Node) -> Value {
    let problems = crate::health::problems(node);
    let updates = crate::control::status(node).ok();
    let plugins: Vec<Value> = node
        .plugins()
        .into_iter()
        .map(|plugin| {
            let update = updates.as_ref().and_then(|u| {
                u.updates
                    .iter()
                    .find(|record| record.plugin.as_str() == plugin.id)
            });
            json!({
                "plugin": plugin,
                "update": update.map(|u| json!({
                    "to": u.to.to_string(),
                    "state": u.state.name(),
                    "reason": u.reason,
                    "asks": u.asks,
                })),
            })
        })
        .collect();
    let printers = super::configured_printers(node);
    let store = node.store();
    let counts = store.outbox_counts().ok().map(|counts| {
        counts
            .iter()
            .map(|(state, count)| (state.name().to_string(), json!(count)))
            .collect::<serde_json::Map<_, _>>()
    });
    let waiting: Vec<Value> = store
        .outbox_list(None, 500)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| matches!(e.state, DeliveryState::Pending | DeliveryState::Dead))
        .take(OUTBOX_SHOWN)
        .map(|e| {
            json!({
                "id": e.id,
                "owner": e.owner,
                "destination": crate::origin::Origin::of_url(&e.destination)
                    .map(|o| o.as_str().to_string())
                    .unwrap_or(e.destination),
                "state": e.state.name(),
                "attempts": e.attempts,
                "enqueued_at_ms": e.enqueued_at_ms,
                "last_error": e.last_error,
            })
        })
        .collect();
    json!({
        "node": {
            "version": env!("CARGO_PKG_VERSION"),
            "status": if problems.is_empty() { "ok" } else { "degraded" },
            "problems": problems,
            "uptime_seconds": node.uptime().as_secs(),
            "data_dir": node.data_dir().display().to_string(),
        },
        "plugins": plugins,
        "printers": printers,
        "outbox": { "counts": counts, "waiting": waiting },
        "updates": updates,
        "telemetry": crate::telemetry::view(node),
        "measures": node.metrics().history(),
    })
}
