//! The fleet page's one read: every node with when it was last heard from,
//! the versions its rollouts left it on and how it is, and every rollout
//! with its waves and failure reasons. Built on what the registry already
//! keeps: enrolments, rollout progress, and the times nodes last asked for
//! their desired state (kept in memory: a restarted registry knows them
//! again at each node's next check).

use crate::rollout::{self, RolloutError, RolloutStatus, Stage};
use crate::store::RegistryStore;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// When each node last reached the registry (seconds since the epoch).
#[derive(Debug, Default)]
pub struct LastSeen(Mutex<HashMap<String, u64>>);

impl LastSeen {
    pub fn saw(&self, node: &str, now: u64) {
        if let Ok(mut seen) = self.0.lock() {
            match seen.get_mut(node) {
                Some(at) => *at = (*at).max(now),
                None => {
                    seen.insert(node.to_string(), now);
                }
            }
        }
    }

    fn get(&self, node: &str) -> Option<u64> {
        self.0.lock().ok().and_then(|seen| seen.get(node).copied())
    }
}

/// One plugin on one node, as its latest rollout left it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRelease {
    pub version: String,
    pub stage: Stage,
    pub rollout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSummary {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub enrolled_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// Plugin id → its release on the node.
    pub releases: BTreeMap<String, NodeRelease>,
    /// `ok`, `failing` (its latest release of some plugin failed), `silent`
    /// (not heard from for `silent_after` seconds), or `unknown` (not heard
    /// from since the registry started).
    pub health: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetOverview {
    pub now: u64,
    pub nodes: Vec<NodeSummary>,
    /// Newest first.
    pub rollouts: Vec<RolloutStatus>,
}

/// The fleet now. A node is `silent` when not heard from for
/// `silent_after` seconds.
pub fn overview(
    store: &RegistryStore,
    seen: &LastSeen,
    now: u64,
    silent_after: u64,
) -> Result<FleetOverview, RolloutError> {
    let mut rollouts = Vec::new();
    let mut releases: BTreeMap<String, BTreeMap<String, (u64, NodeRelease)>> = BTreeMap::new();
    let mut reported: HashMap<String, u64> = HashMap::new();
    for found in rollout::list(store)? {
        let progress = store.rollout_progress(&found.id)?;
        for (node, entry) in &progress {
            let latest = reported.entry(node.clone()).or_insert(0);
            *latest = (*latest).max(entry.reported_at);
            let per_plugin = releases.entry(node.clone()).or_default();
            let newer = per_plugin
                .get(&found.plugin)
                .is_none_or(|(sequence, _)| *sequence < found.sequence());
            if newer {
                per_plugin.insert(
                    found.plugin.clone(),
                    (
                        found.sequence(),
                        NodeRelease {
                            version: found.version.to_string(),
                            stage: entry.stage,
                            rollout: found.id.clone(),
                            reason: entry.reason.clone(),
                        },
                    ),
                );
            }
        }
        rollouts.push(rollout::status(&found, &progress, now));
    }
    rollouts.reverse();
    let mut nodes = Vec::new();
    for (id, record) in store.nodes()? {
        if record.retired_at.is_some() {
            continue;
        }
        let last_seen = match (seen.get(&id), reported.get(&id)) {
            (Some(a), Some(b)) => Some(a.max(*b)),
            (a, b) => a.or(b.copied()),
        };
        let releases: BTreeMap<String, NodeRelease> = releases
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|(plugin, (_, release))| (plugin, release))
            .collect();
        let health = if releases.values().any(|r| r.stage.failed()) {
            "failing"
        } else {
            match last_seen {
                None => "unknown",
                Some(at) if now.saturating_sub(at) > silent_after => "silent",
                Some(_) => "ok",
            }
        };
        nodes.push(NodeSummary {
            id,
            name: record.name,
            labels: record.labels,
            enrolled_at: record.enrolled_at,
            last_seen,
            releases,
            health,
        });
    }
    Ok(FleetOverview {
        now,
        nodes,
        rollouts,
    })
}
