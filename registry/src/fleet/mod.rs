//! The fleet: nodes enrolled with keys of their own, labelled by the
//! central team, chosen by selectors.
//!
//! A node makes its key pair itself and never sends the private half. It
//! enrols with a one-time token from the central team and proves it holds
//! the key by signing the token's hash with it, so a token read off a
//! node's disk later (it is spent) or a request replayed with another key
//! enrols nothing. The node's id is derived from its key, so one key is one
//! node and a retired node cannot come back under the same key.

use crate::keys::{self, KeyPair};
use crate::store::{
    EnrolRefusal, EnrolmentToken, NodeRecord, RegistryStore, StoreError, now_seconds,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tough::schema::key::Key;

mod client;
pub mod report;
pub mod view;
pub use client::{JoinError, fetch_desired_state, join, post_report};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(
        "{0:?} is not a label: write key=value; a key is 1-63 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit; a value is up to 63 letters, digits, '-', '_' or '.'"
    )]
    BadLabel(String),
    #[error("too many labels ({0}); a node has at most {MAX_LABELS}")]
    TooManyLabels(usize),
    #[error("{0:?} is not a node name: use up to 63 letters, digits, '-', '_' or '.'")]
    BadName(String),
    #[error(
        "this enrolment token is not known here; ask the central team for one (`outpost-registry node token`)"
    )]
    UnknownToken,
    #[error(
        "this enrolment token was already used (by node {by}); each token enrols one node: ask the central team for another"
    )]
    TokenUsed { by: String },
    #[error("this enrolment token expired at {at}; ask the central team for another")]
    TokenExpired { at: String },
    #[error("the node key sent is not an ed25519 public key: {0}")]
    BadKey(String),
    #[error(
        "the enrolment is not signed by the node key it sends; nothing was enrolled (a request copied from another node?)"
    )]
    BadProof,
    #[error(
        "node {id} is enrolled already{retired}; a node enrols once per key",
        retired = if *retired { " and was retired" } else { "" }
    )]
    AlreadyEnrolled { id: String, retired: bool },
    #[error("no node {0}; `outpost-registry node list` shows the fleet")]
    UnknownNode(String),
    #[error("{prefix:?} names {count} nodes; give more of the id")]
    Ambiguous { prefix: String, count: usize },
    #[error("an enrolment token must be valid for between a minute and 90 days")]
    Validity,
    #[error("the request is not signed by a node: {0}")]
    Unauthenticated(String),
    #[error(
        "the node's clock reads {node_time} and the registry's {registry_time}: more than 5 minutes apart, so the request was refused. Set the node's clock (NTP)"
    )]
    ClockSkew {
        node_time: String,
        registry_time: String,
    },
    #[error("node {0} is not an active node of this fleet (unknown or retired); it gets nothing")]
    NotActive(String),
    #[error("the system random number generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub const MAX_LABELS: usize = 32;

/// Labels: `site=market-hall`, `region=north`.
pub type Labels = BTreeMap<String, String>;

fn label_key_ok(key: &str) -> bool {
    (1..=63).contains(&key.len())
        && key.as_bytes()[0].is_ascii_alphanumeric()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

fn label_value_ok(value: &str) -> bool {
    value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Parses `key=value`.
pub fn parse_label(text: &str) -> Result<(String, String), FleetError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| FleetError::BadLabel(text.to_string()))?;
    check_label(key, value).map_err(|_| FleetError::BadLabel(text.to_string()))?;
    Ok((key.to_string(), value.to_string()))
}

fn check_label(key: &str, value: &str) -> Result<(), FleetError> {
    if label_key_ok(key) && label_value_ok(value) {
        Ok(())
    } else {
        Err(FleetError::BadLabel(format!("{key}={value}")))
    }
}

/// Checks labels that came from outside (a node, an admin request).
pub fn check_labels(labels: &Labels) -> Result<(), FleetError> {
    if labels.len() > MAX_LABELS {
        return Err(FleetError::TooManyLabels(labels.len()));
    }
    labels.iter().try_for_each(|(k, v)| check_label(k, v))
}

/// Labels as people write them: `region=north,site=market-hall`, or `-`.
pub fn labels_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Which nodes: every `key=value` must match (an empty selector matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector(pub Labels);

impl Selector {
    /// `region=north,site=market-hall`.
    pub fn parse(text: &str) -> Result<Selector, FleetError> {
        let mut labels = Labels::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = parse_label(part)?;
            labels.insert(key, value);
        }
        Ok(Selector(labels))
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&labels_text(&self.0))
    }
}

/// A node's id: the first 16 hex digits of its key's id. `key` must be
/// canonical ([`keys::canonical_ed25519`]), so one key has one id.
pub fn node_id(key: &Key) -> String {
    let mut id = hex::encode(keys::key_id(key).as_ref());
    id.truncate(16);
    id
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What the node signs to show it holds its key: the token, the key, and
/// what it asks to be called and labelled, so a request seen on the way
/// cannot be sent first with other names or labels.
fn proof_message(token: &str, key: &Key, name: &str, labels: &Labels) -> Vec<u8> {
    let signed = serde_json::json!({
        "purpose": "outpost enrol v1",
        "token_sha256": token_hash(token),
        "key_id": hex::encode(keys::key_id(key).as_ref()),
        "name": name,
        "labels": labels,
    });
    crate::tuf::canonical(&signed)
}

/// `POST /fleet/v1/enrol`: a node asks to join.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub token: String,
    /// The node's public key (TUF key JSON).
    pub key: Key,
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    /// Hex ed25519 signature of the proof message by `key`.
    pub proof: String,
}

impl EnrolRequest {
    /// A request to enrol `key`'s node with `token`.
    pub fn new(key: &KeyPair, token: &str, name: &str, labels: Labels) -> EnrolRequest {
        let public = key.public();
        let proof = key.sign(&proof_message(token, &public, name, &labels));
        EnrolRequest {
            token: token.to_string(),
            key: public,
            name: name.to_string(),
            labels,
            proof: hex::encode(proof),
        }
    }
}

/// A node as the central team sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub labels: Labels,
    pub enrolled_at: u64,
    pub retired_at: Option<u64>,
}

fn view(id: &str, node: &NodeRecord) -> NodeView {
    NodeView {
        id: id.to_string(),
        name: node.name.clone(),
        labels: node.labels.clone(),
        enrolled_at: node.enrolled_at,
        retired_at: node.retired_at,
    }
}

fn check_name(name: &str) -> Result<(), FleetError> {
    if !name.is_empty() && label_value_ok(name) {
        Ok(())
    } else {
        Err(FleetError::BadName(name.to_string()))
    }
}

/// Enrols the node in `request`, spending its token.
pub fn enrol(store: &RegistryStore, request: &EnrolRequest) -> Result<NodeView, FleetError> {
    check_name(&request.name)?;
    check_labels(&request.labels)?;
    // Rebuilt from its bytes: another spelling of the same key is the
    // same node, and only the key itself is stored.
    let public = keys::canonical_ed25519(&request.key)
        .ok_or_else(|| FleetError::BadKey("it must be an ed25519 key of 32 bytes".into()))?;
    let proof = hex::decode(&request.proof).map_err(|_| FleetError::BadProof)?;
    let message = proof_message(&request.token, &public, &request.name, &request.labels);
    if !keys::verify(&public, &message, &proof) {
        return Err(FleetError::BadProof);
    }
    let id = node_id(&public);
    let now = now_seconds();
    let record = NodeRecord {
        key: public,
        name: request.name.clone(),
        labels: request.labels.clone(),
        enrolled_at: now,
        retired_at: None,
    };
    match store.enrol(&token_hash(&request.token), &id, record, MAX_LABELS, now)? {
        Ok(node) => Ok(view(&id, &node)),
        Err(EnrolRefusal::UnknownToken) => Err(FleetError::UnknownToken),
        Err(EnrolRefusal::TokenUsed { by }) => Err(FleetError::TokenUsed { by }),
        Err(EnrolRefusal::TokenExpired { at }) => Err(FleetError::TokenExpired {
            at: jiff::Timestamp::from_second(at as i64)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|_| at.to_string()),
        }),
        Err(EnrolRefusal::AlreadyEnrolled { retired }) => {
            Err(FleetError::AlreadyEnrolled { id, retired })
        }
        Err(EnrolRefusal::TooManyLabels(count)) => Err(FleetError::TooManyLabels(count)),
    }
}

/// A new enrolment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: u64,
    pub labels: Labels,
}

/// Makes a one-time enrolment token valid for `valid_for_seconds`; nodes
/// it enrols get `labels` (over their own). Only its hash is kept.
pub fn issue_enrolment_token(
    store: &RegistryStore,
    labels: Labels,
    valid_for_seconds: u64,
) -> Result<IssuedToken, FleetError> {
    if !(60..=90 * 24 * 3600).contains(&valid_for_seconds) {
        return Err(FleetError::Validity);
    }
    check_labels(&labels)?;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| FleetError::Random(e.to_string()))?;
    let token = format!("ope_{}", hex::encode(bytes));
    let now = now_seconds();
    let expires_at = now + valid_for_seconds;
    store.add_enrolment_token(
        &token_hash(&token),
        &EnrolmentToken {
            labels: labels.clone(),
            created_at: now,
            expires_at,
            used_by: None,
        },
    )?;
    Ok(IssuedToken {
        token,
        expires_at,
        labels,
    })
}

/// The nodes `selector` matches, retired ones too when asked.
pub fn list(
    store: &RegistryStore,
    selector: &Selector,
    include_retired: bool,
) -> Result<Vec<NodeView>, FleetError> {
    Ok(store
        .nodes()?
        .iter()
        .filter(|(_, node)| include_retired || node.retired_at.is_none())
        .filter(|(_, node)| selector.matches(&node.labels))
        .map(|(id, node)| view(id, node))
        .collect())
}

/// The one node whose id starts with `prefix`.
fn resolve(store: &RegistryStore, prefix: &str) -> Result<String, FleetError> {
    let nodes = store.nodes()?;
    let matching: Vec<&String> = nodes
        .keys()
        .filter(|id| !prefix.is_empty() && id.starts_with(prefix))
        .collect();
    match matching.as_slice() {
        [id] => Ok((*id).clone()),
        [] => Err(FleetError::UnknownNode(prefix.to_string())),
        many => Err(FleetError::Ambiguous {
            prefix: prefix.to_string(),
            count: many.len(),
        }),
    }
}

/// `POST /admin/v1/nodes/<id>/labels`: labels to set and to remove.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelChange {
    #[serde(default)]
    pub set: Labels,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Sets and removes labels of the node whose id starts with `prefix`.
pub fn label(
    store: &RegistryStore,
    prefix: &str,
    change: &LabelChange,
) -> Result<NodeView, FleetError> {
    check_labels(&change.set)?;
    let id = resolve(store, prefix)?;
    let mut too_many = None;
    let updated = store.update_node(&id, |node| {
        let mut labels = node.labels.clone();
        for key in &change.remove {
            labels.remove(key);
        }
        labels.extend(change.set.clone());
        if labels.len() > MAX_LABELS {
            too_many = Some(labels.len());
        } else {
            node.labels = labels;
        }
    })?;
    if let Some(count) = too_many {
        return Err(FleetError::TooManyLabels(count));
    }
    let node = updated.ok_or_else(|| FleetError::UnknownNode(prefix.to_string()))?;
    Ok(view(&id, &node))
}

/// Retires the node whose id starts with `prefix`: from now on it gets
/// nothing, and its key cannot enrol again.
pub fn retire(store: &RegistryStore, prefix: &str) -> Result<NodeView, FleetError> {
    let id = resolve(store, prefix)?;
    let now = now_seconds();
    let node = store
        .update_node(&id, |node| {
            node.retired_at.get_or_insert(now);
        })?
        .ok_or_else(|| FleetError::UnknownNode(prefix.to_string()))?;
    Ok(view(&id, &node))
}

/// An enrolled node that is not retired, by exact id: what every request
/// from a node must be.
pub fn active_node(store: &RegistryStore, id: &str) -> Result<Option<NodeRecord>, FleetError> {
    Ok(store.node(id)?.filter(|node| node.retired_at.is_none()))
}

/// How a node signs its requests: `Authorization: Outpost-Node <id> <unix
/// seconds> <hex signature>`, over the method, the path and the time.
pub const NODE_AUTH_SCHEME: &str = "Outpost-Node";

/// How far a node's clock may be from the registry's.
pub const CLOCK_SKEW_SECONDS: u64 = 300;

fn request_message(method: &str, path: &str, at: u64) -> Vec<u8> {
    format!("outpost node request v1\n{method}\n{path}\n{at}").into_bytes()
}

/// The `Authorization` value for node `node`'s request `method path` at `at`.
pub fn sign_request(key: &KeyPair, node: &str, method: &str, path: &str, at: u64) -> String {
    let signature = key.sign(&request_message(method, path, at));
    format!("{NODE_AUTH_SCHEME} {node} {at} {}", hex::encode(signature))
}

fn clock_text(seconds: u64) -> String {
    jiff::Timestamp::from_second(seconds as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// The active node that signed `authorization` for `method path`, at a
/// time within [`CLOCK_SKEW_SECONDS`] of `now`.
pub fn check_request(
    store: &RegistryStore,
    verifying: &keys::VerifyingKeys,
    authorization: Option<&str>,
    method: &str,
    path: &str,
    now: u64,
) -> Result<(String, NodeRecord), FleetError> {
    let unauthenticated = |why: &str| FleetError::Unauthenticated(why.to_string());
    let value = authorization.ok_or_else(|| unauthenticated("no Authorization header"))?;
    let mut parts = value.split(' ');
    let (Some(NODE_AUTH_SCHEME), Some(id), Some(at), Some(signature), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(unauthenticated(
            "expected `Outpost-Node <node id> <unix seconds> <signature>`",
        ));
    };
    let at: u64 = at
        .parse()
        .map_err(|_| unauthenticated("the time is not a number of seconds"))?;
    if at.abs_diff(now) > CLOCK_SKEW_SECONDS {
        return Err(FleetError::ClockSkew {
            node_time: clock_text(at),
            registry_time: clock_text(now),
        });
    }
    let node = active_node(store, id)?.ok_or_else(|| FleetError::NotActive(id.to_string()))?;
    let signature =
        hex::decode(signature).map_err(|_| unauthenticated("the signature is not hex"))?;
    if !verifying.verify(&node.key, &request_message(method, path, at), &signature) {
        return Err(unauthenticated("the signature is not this node's"));
    }
    Ok((id.to_string(), node))
}
