//! `outpost plugin approve`: the operator agrees to the origins a plugin's
//! configuration now names (see `Grants::origins_from_config`). Pointing a
//! courier adapter at a carrier's sandbox, then at the carrier, is a change
//! of `plugin-config`, not a new package; the node reaches a new address
//! only once the operator has seen and approved it, as with any grant.

use super::ControlError;
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::plugins::PluginSlot;
use crate::store::NodeStore;
use serde::Serialize;
use std::sync::Arc;

/// What approving changed.
#[derive(Debug, Clone, Serialize)]
pub struct Approved {
    pub plugin: String,
    /// The grants the plugin now runs with.
    pub grants: String,
    /// Origins approved just now.
    pub added: Vec<String>,
}

/// Approves the active version's grants as this node's configuration makes
/// them, and reloads it with them: calls in flight finish on the old.
pub fn configured_origins(node: &Node, id: &PluginId) -> Result<Approved, ControlError> {
    let _changing = node.lock_changes();
    let mut record = node
        .store
        .plugin(id)?
        .ok_or_else(|| ControlError::NotFound(format!("{id} is not installed")))?;
    let manifest = crate::manifest::Manifest::parse(&record.active.manifest)
        .map_err(|e| ControlError::Conflict(format!("its stored manifest does not parse: {e}")))?;
    let configured = node
        .configured_grants(&manifest)
        .map_err(|why| ControlError::BadRequest(format!("{id}: {why}; fix outpost.toml first")))?;
    let approved = &record.active.grants;
    let destinations = |grants: &crate::manifest::Grants| {
        grants
            .outbox
            .as_ref()
            .map(|outbox| outbox.destinations.clone())
            .unwrap_or_default()
    };
    let approved_destinations = destinations(approved);
    let mut added: Vec<String> = configured
        .http
        .iter()
        .filter(|origin| !approved.http.contains(origin))
        .chain(
            destinations(&configured)
                .iter()
                .filter(|origin| !approved_destinations.contains(origin)),
        )
        .map(|origin| origin.to_string())
        .collect();
    added.sort();
    added.dedup();
    if configured == *approved {
        return Ok(Approved {
            plugin: id.to_string(),
            grants: record.active.grants.describe(),
            added,
        });
    }
    record.active.grants = configured;
    let (plugin, _) = node
        .load(id, &record.active)
        .map_err(|why| ControlError::Conflict(format!("{id} does not load: {why}")))?;
    let txn = node.store.begin_write()?;
    NodeStore::put_plugin(&txn, &record)?;
    node.store.commit(txn)?;
    let grants = record.active.grants.describe();
    node.table.put(PluginSlot::Loaded(Arc::new(plugin)));
    tracing::info!(plugin = %id, "approved the origins its configuration names: {}", added.join(", "));
    Ok(Approved {
        plugin: id.to_string(),
        grants,
        added,
    })
}
