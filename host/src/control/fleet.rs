//! Joining a fleet: `outpost fleet join <registry> --token T`. The node
//! enrols its own identity key with the registry, spending the one-time
//! token, and remembers which fleet it belongs to.

use super::ControlError;
use crate::node::Node;
use crate::releases;
use crate::store::Membership;
use outpost_registry::client::MetadataSource;
use outpost_registry::desired::{self, DesiredState};
use outpost_registry::fleet::{self as registry_fleet, EnrolRequest, Labels};
use outpost_registry::tough::schema::{Root, Signed};
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
    let own = registry_fleet::node_id(&key.public());
    if enrolled.id != own {
        return Err(ControlError::BadRequest(format!(
            "the registry enrolled node {}, but this node's key is node {own}; not joined",
            enrolled.id
        )));
    }
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

/// `POST /admin/v1/fleet/check`: what the fleet's director asks of this
/// node now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checked {
    pub registry: String,
    pub node_id: String,
    /// The desired state accepted (this check's, or the one held when
    /// nothing changed).
    pub desired: Option<DesiredState>,
    /// Whether the registry had nothing newer.
    pub unchanged: bool,
}

/// The root the node trusts now: the newest it accepted from the
/// registry, or the one it was provisioned with.
fn trusted_root(node: &Node) -> Result<Signed<Root>, ControlError> {
    let settings = node
        .store()
        .trust_settings()?
        .ok_or(releases::ReleaseError::NotProvisioned)?;
    let seen = node.store().trust_seen()?;
    let bytes = seen
        .get("root.json")
        .cloned()
        .unwrap_or_else(|| settings.root.into_bytes());
    serde_json::from_slice(&bytes).map_err(|e| {
        ControlError::Store(crate::store::StoreError::Record {
            what: "the trusted root".into(),
            detail: e.to_string(),
        })
    })
}

/// Fetches this node's desired state from its fleet's registry, verifies
/// it against the director its root delegates (for this node, newer than
/// the last accepted, unexpired) and keeps it.
pub async fn check(node: &Node) -> Result<Checked, ControlError> {
    let _checking = node.checking.lock().await;
    let membership = node.store().membership()?.ok_or_else(|| {
        ControlError::NotFound(
            "this node is in no fleet; join one with `outpost fleet join <registry-url> --token <token>`"
                .into(),
        )
    })?;
    let registry = releases::parse_registry_url(&membership.registry)?;
    let key = identity(node)?;
    // Without a root there is no director to believe: say so before asking.
    trusted_root(node)?;
    // The newest root first: a director key the central team replaced is
    // not believed a moment longer than it takes to hear of it.
    releases::refresh(node.store(), &MetadataSource::Registry(registry.clone())).await?;
    let root = trusted_root(node)?;
    let now = crate::clock::now_seconds();
    let held = node.store().desired_state()?;
    // Asked "anything newer?" only while the held one has half its life
    // left, so an unchanged fleet still gets a freshly signed state.
    let known = held
        .as_ref()
        .filter(|state| state.expires > now + desired::LIFETIME_SECONDS / 2)
        .map(|state| state.version);
    let tls = releases::client_tls(node.store())?;
    let fetched =
        registry_fleet::fetch_desired_state(&registry, &tls, &key, &membership.node_id, known)
            .await
            .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    let Some(bytes) = fetched else {
        return Ok(Checked {
            registry: membership.registry,
            node_id: membership.node_id,
            desired: held,
            unchanged: true,
        });
    };
    let state = desired::verify(
        &bytes,
        &root.signed,
        &membership.node_id,
        held.as_ref().map(|state| state.version),
        now,
    )
    .map_err(|e| ControlError::BadRequest(e.to_string()))?;
    node.store().set_desired_state(&state)?;
    Ok(Checked {
        registry: membership.registry,
        node_id: membership.node_id,
        desired: Some(state),
        unchanged: false,
    })
}
