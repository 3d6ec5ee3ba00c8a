//! The node in a fleet: joining (`outpost fleet join <registry> --token
//! T` enrols the node's own identity key, spending the one-time token),
//! checking the desired state the fleet's director signs for it and acting
//! on it, by hand (`outpost fleet check`) or in the background ([`run`]).

use super::ControlError;
use crate::node::Node;
use crate::releases;
use crate::store::Membership;
use crate::updates::directed::{self, Acted};
use outpost_registry::client::MetadataSource;
use outpost_registry::desired::{self, DesiredState};
use outpost_registry::fleet::{self as registry_fleet, EnrolRequest, Labels};
use outpost_registry::tough::schema::{Root, Signed};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
    /// What the node did about each release it names.
    #[serde(default)]
    pub acted: Vec<Acted>,
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
/// the last accepted, unexpired), keeps it and acts on it
/// ([`crate::updates::directed`]). An unchanged state is acted on again:
/// a download that failed is tried again (a release that failed on the
/// node is blocked there and is not), a report not yet made is made.
pub async fn check(node: &Arc<Node>) -> Result<Checked, ControlError> {
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
    let index =
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
        let acted = match &held {
            Some(state) if state.expires > now => {
                directed::act(node, &registry, &index, state).await
            }
            _ => Vec::new(),
        };
        return Ok(Checked {
            registry: membership.registry,
            node_id: membership.node_id,
            desired: held,
            unchanged: true,
            acted,
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
    let acted = directed::act(node, &registry, &index, &state).await;
    Ok(Checked {
        registry: membership.registry,
        node_id: membership.node_id,
        desired: Some(state),
        unchanged: false,
        acted,
    })
}

/// The fleet agent: while the node is in a fleet, checks its desired state
/// every `updates.check-interval-minutes` (give or take a tenth, so a fleet
/// spreads its checks), backing off while the registry cannot be reached
/// and checking at once when the network answers again. Runs until
/// `shutdown` resolves.
pub async fn run(node: Arc<Node>, shutdown: impl std::future::Future<Output = ()>) {
    use crate::updates::agent::{jittered, retry_wait};
    use std::time::Duration;
    tokio::pin!(shutdown);
    let interval = Duration::from_secs(node.config().updates.check_interval_minutes * 60);
    let mut wait = jittered(Duration::from_secs(5));
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = node.outbox().network_answered.notified(), if failures > 0 => {}
            () = &mut shutdown => return,
        }
        let member = {
            let node = node.clone();
            tokio::task::spawn_blocking(move || node.store().membership())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .is_some()
        };
        if !member {
            wait = jittered(interval);
            continue;
        }
        if node.is_offline() {
            // A drill: try again when it is over.
            wait = node.network().remaining().unwrap_or(wait);
            continue;
        }
        match check(&node).await {
            Ok(checked) => {
                failures = 0;
                for acted in &checked.acted {
                    tracing::debug!(rollout = %acted.rollout, release = %acted.release, "fleet check: {}", acted.outcome);
                }
                wait = jittered(interval);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let backoff = retry_wait(failures, interval);
                tracing::warn!(
                    "cannot check the fleet's desired state: {error}; trying again in {} s (the \
                     plugins installed keep serving)",
                    backoff.as_secs()
                );
                wait = jittered(backoff);
            }
        }
    }
}
