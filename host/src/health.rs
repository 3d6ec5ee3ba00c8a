//! What `/v1/health` says beyond "up": the conditions an operator has to act
//! on, each with what to do. A node with any of them answers `degraded`.

use crate::bindings::lifecycle::{HealthReport, HealthStatus};
use crate::clock;
use crate::node::Node;
use crate::store::NodeStore;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable name for programs: `storage`, `clock`.
    pub what: &'static str,
    /// What is wrong and what to do, for people.
    pub detail: String,
}

/// The node's problems now. Blocks briefly while writes fail (it tries one),
/// so call it off async tasks then.
pub fn problems(node: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(why) = node.store().write_trouble() {
        problems.push(Problem {
            what: "storage",
            detail: format!(
                "writes to the node database fail ({why}): sales that need a record are refused \
                 with 503 until they work again. Free space on the disk that holds {}; the node \
                 recovers by itself",
                node.data_dir().display()
            ),
        });
    }
    problems.extend(clock_problem(node.store()));
    problems
}

/// The clock problem for `/v1/health`, if any (see `clock`).
pub fn clock_problem(store: &NodeStore) -> Option<Problem> {
    let now = clock::now_seconds();
    clock::check(now, clock::built_at_secs(), last_refresh_secs(store)).map(|detail| Problem {
        what: "clock",
        detail,
    })
}

/// The clock at the last accepted metadata refresh, as tough recorded it.
fn last_refresh_secs(store: &NodeStore) -> Option<u64> {
    let seen = store.trust_seen().ok()?;
    let recorded = seen.get("latest_known_time.json")?;
    let text: String = serde_json::from_slice(recorded).ok()?;
    let at: jiff::Timestamp = text.parse().ok()?;
    u64::try_from(at.as_second()).ok()
}

/// "ok", "degraded" or "failing".
pub fn health_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Ok => "ok",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Failing => "failing",
    }
}

/// "ok: rendered 3 labels".
pub fn describe_health(report: &HealthReport) -> String {
    let status = health_name(report.status);
    if report.detail.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {}", report.detail)
    }
}
