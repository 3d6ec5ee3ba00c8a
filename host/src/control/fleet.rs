//! Joining a fleet: `outpost fleet join <registry> --token T`. The node
//! enrols its own identity key with the registry, spending the one-time
//! token, and remembers which fleet it belongs to.

use super::ControlError;
use crate::node::Node;
use crate::releases;
use crate::store::Membership;
use outpost_registry::fleet::{self as registry_fleet, EnrolRequest, Labels};
use serde::{Deserialize, Serialize};

/// `POST /admin/v1/fleet/join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub registry: String,
    pub token: String,
    #[serde(default)]
    pub labels: Labels,
    /// What to call the node; its host name if not given.
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /admin/v1/fleet`: the node's identity and its fleet, if any.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetView {
    /// The identity key's id (the node id is its first 16 hex digits).
    pub key_id: String,
    pub membership: Option<Membership>,
}

fn identity(node: &Node) -> Result<outpost_registry::keys::KeyPair, ControlError> {
    crate::fleet::identity(node.data_dir()).map_err(|e| {
        ControlError::BadRequest(format!(
            "the node's identity key {}: {e}",
            crate::fleet::identity_path(node.data_dir()).display()
        ))
    })
}

pub fn view(node: &Node) -> Result<FleetView, ControlError> {
    Ok(FleetView {
        key_id: identity(node)?.key_id_hex(),
        membership: node.store().membership()?,
    })
}

pub async fn join(node: &Node, request: &JoinRequest) -> Result<Membership, ControlError> {
    // Two joins at once must not enrol the node in two fleets.
    let _checking = node.checking.lock().await;
    if let Some(membership) = node.store().membership()? {
        return Err(ControlError::Conflict(format!(
            "this node is already in the fleet of {} as node {}; a node belongs to one fleet",
            membership.registry, membership.node_id
        )));
    }
    let registry = releases::parse_registry_url(&request.registry)?;
    registry_fleet::check_labels(&request.labels)
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    let key = identity(node)?;
    let name = request.name.clone().unwrap_or_else(crate::fleet::host_name);
    let enrol = EnrolRequest::new(&key, &request.token, &name, request.labels.clone());
    let tls = releases::client_tls(node.store())?;
    let enrolled = registry_fleet::join(&registry, &tls, &enrol)
        .await
        .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    let membership = Membership {
        registry: registry.to_string(),
        node_id: enrolled.id,
        name: enrolled.name,
        labels: enrolled.labels,
        joined_at: crate::clock::now_seconds(),
    };
    node.store().set_membership(&membership)?;
    tracing::info!(registry = %membership.registry, node = %membership.node_id, "joined the fleet");
    Ok(membership)
}
