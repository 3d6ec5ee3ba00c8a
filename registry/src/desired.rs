//! A node's desired state: which releases the fleet's rollouts ask of one
//! node, signed by the director role its root delegates (Uptane's
//! director, beside TUF's image repository).
//!
//! A node acts on one only if the director signed it for that node, it is
//! newer than the last it accepted (an old one cannot be replayed), and it
//! has not expired (a frozen one is noticed). It still installs only what
//! the vendor signed: the document names a release by plugin, version and
//! manifest digest, and the node checks that digest against the vendor's
//! TUF metadata. A stolen director key can point nodes at signed releases,
//! never at code no vendor signed; a vendor key reaches no node that no
//! rollout selected.

use crate::keys::{self, KeyPair};
use crate::rollout::{Rollout, RolloutState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use tough::schema::Root;
use tough::schema::key::Key;

pub const DESIRED_STATE_TYPE: &str = "outpost-desired-state";

#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("the desired state is not valid JSON of its kind: {0}")]
    Malformed(String),
    #[error(
        "this node's root of trust names no director, so it cannot accept a desired state; the central team rotates the root to add one (`outpost-registry root rotate`)"
    )]
    NoDirector,
    #[error("the root's director role is malformed: {0}")]
    BadDirectorRole(String),
    #[error(
        "the desired state is signed by {valid} of the director's keys, and {threshold} must sign; it was refused and nothing changed"
    )]
    UnderSigned { valid: usize, threshold: usize },
    #[error("the desired state is for node {for_node}, not this node ({this_node}); refused")]
    OtherNode { for_node: String, this_node: String },
    #[error(
        "the desired state is version {got}, older than version {seen} this node already accepted (a replay); refused"
    )]
    Replayed { got: u64, seen: u64 },
    #[error(
        "the desired state expired at {expires} (the registry's director stopped signing, or this node's clock is wrong); the node keeps what it runs"
    )]
    Expired { expires: String },
}

/// What one rollout asks of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Install this release (and keep it).
    Install,
    /// The rollout halted or was aborted: go back from this release to the
    /// version before it.
    RollBack,
}

/// One release the node should (or should no longer) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRelease {
    pub plugin: String,
    pub version: semver::Version,
    /// The OCI manifest digest the vendor signed.
    pub digest: String,
    pub rollout: String,
    pub action: Action,
    /// How long the node keeps it on probation before confirming.
    pub probation_seconds: u64,
}

/// The signed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    #[serde(rename = "_type")]
    pub kind: String,
    pub node: String,
    /// Rises whenever what the node is asked changes.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub expires: u64,
    pub releases: Vec<DesiredRelease>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

/// The document as served: TUF's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDesiredState {
    pub signed: DesiredState,
    pub signatures: Vec<Signature>,
}

/// How long a desired state stays valid: a director that stops signing
/// (a frozen feed) is noticed within this.
pub const LIFETIME_SECONDS: u64 = 7 * 24 * 3600;

/// What `rollouts` ask of `node`, and the document's version.
///
/// The version is the newest revision of every rollout that lists the
/// node, whatever it asks now: revisions only rise and a rollout never
/// drops a node, so the version never goes back, and any change to what
/// the node is asked moves it. Per plugin only the newest rollout that
/// has reached the node speaks: install its release, roll back from it,
/// or (halted without rollback) nothing, leaving the node as it is.
pub fn for_node<'a>(
    node: &str,
    rollouts: impl IntoIterator<Item = &'a Rollout>,
) -> (u64, Vec<DesiredRelease>) {
    at_positions(rollouts.into_iter().filter_map(|rollout| {
        let position = rollout.nodes.iter().position(|n| n == node)?;
        Some((rollout, position))
    }))
}

/// [`for_node`] given where the node stands in each rollout that lists it.
fn at_positions<'a>(
    listed: impl IntoIterator<Item = (&'a Rollout, usize)>,
) -> (u64, Vec<DesiredRelease>) {
    let mut version = 0;
    let mut reached: Vec<(&Rollout, u64)> = Vec::new();
    for (rollout, position) in listed {
        version = version.max(rollout.revision);
        let open_until = match &rollout.state {
            RolloutState::Running { wave }
            | RolloutState::Paused { wave }
            | RolloutState::Halted { wave, .. }
            | RolloutState::Aborted { wave, .. } => {
                rollout.wave_ends.get(*wave).copied().unwrap_or(0)
            }
            RolloutState::Completed { .. } => rollout.nodes.len(),
        };
        if position < open_until {
            reached.push((rollout, rollout.sequence()));
        }
    }
    // Newest first; the first rollout per plugin decides.
    reached.sort_by_key(|(_, sequence)| std::cmp::Reverse(*sequence));
    let mut decided = HashSet::new();
    let mut releases = Vec::new();
    for (rollout, _) in reached {
        if !decided.insert(rollout.plugin.clone()) {
            continue;
        }
        let action = match &rollout.state {
            RolloutState::Halted { .. } | RolloutState::Aborted { .. } if rollout.rollback => {
                Action::RollBack
            }
            RolloutState::Halted { .. } | RolloutState::Aborted { .. } => continue,
            _ => Action::Install,
        };
        releases.push(DesiredRelease {
            plugin: rollout.plugin.clone(),
            version: rollout.version.clone(),
            digest: rollout.digest.clone(),
            rollout: rollout.id.clone(),
            action,
            probation_seconds: rollout.probation_seconds,
        });
    }
    releases.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    (version, releases)
}

/// Every rollout, and which of them list each node: rebuilt when the
/// fleet's revision moves, so a node's check reads no rollout it is not in.
#[derive(Debug, Default)]
pub struct Index {
    pub revision: u64,
    rollouts: Vec<Rollout>,
    /// Per node: (rollout, the node's position in its wave order). The
    /// position is kept so a check never searches a rollout's node list.
    by_node: std::collections::HashMap<String, Vec<(usize, usize)>>,
}

impl Index {
    pub fn new(revision: u64, rollouts: Vec<Rollout>) -> Index {
        let mut by_node: std::collections::HashMap<String, Vec<(usize, usize)>> =
            Default::default();
        for (index, rollout) in rollouts.iter().enumerate() {
            for (position, node) in rollout.nodes.iter().enumerate() {
                by_node
                    .entry(node.clone())
                    .or_default()
                    .push((index, position));
            }
        }
        Index {
            revision,
            rollouts,
            by_node,
        }
    }

    /// [`for_node`] over the rollouts that list `node`.
    pub fn for_node(&self, node: &str) -> (u64, Vec<DesiredRelease>) {
        let listed = self.by_node.get(node).map(Vec::as_slice).unwrap_or(&[]);
        at_positions(
            listed
                .iter()
                .map(|(index, position)| (&self.rollouts[*index], *position)),
        )
    }
}

/// Signs `state` with the director's `keys`.
pub fn sign(state: DesiredState, director: &[&KeyPair]) -> SignedDesiredState {
    let bytes = crate::tuf::canonical(&state);
    let signatures = director
        .iter()
        .map(|key| Signature {
            keyid: key.key_id_hex(),
            sig: hex::encode(key.sign(&bytes)),
        })
        .collect();
    SignedDesiredState {
        signed: state,
        signatures,
    }
}

/// The director's keys and threshold, as `root` delegates them.
pub fn director_role(root: &Root) -> Result<(BTreeMap<String, Key>, usize), DesiredError> {
    let role = root
        ._extra
        .get(crate::tuf::DIRECTOR_FIELD)
        .ok_or(DesiredError::NoDirector)?;
    let bad = |what: &str| DesiredError::BadDirectorRole(what.to_string());
    let threshold = role
        .get("threshold")
        .and_then(|t| t.as_u64())
        .filter(|t| *t >= 1)
        .ok_or_else(|| bad("no threshold of at least 1"))? as usize;
    let ids = role
        .get("keyids")
        .and_then(|k| k.as_array())
        .ok_or_else(|| bad("no keyids"))?;
    let mut keys = BTreeMap::new();
    for id in ids {
        let id = id.as_str().ok_or_else(|| bad("a key id is not text"))?;
        let key = root
            .keys
            .iter()
            .find(|(known, _)| hex::encode(known.as_ref()) == id)
            .map(|(_, key)| key.clone())
            .ok_or_else(|| bad("it names a key the root does not list"))?;
        keys.insert(id.to_string(), key);
    }
    if keys.len() < threshold {
        return Err(bad("fewer keys than its threshold"));
    }
    Ok((keys, threshold))
}

/// Checks `bytes` as node `node`'s desired state under `root`, newer than
/// `seen` (the version last accepted) and unexpired at `now`.
pub fn verify(
    bytes: &[u8],
    root: &Root,
    node: &str,
    seen: Option<u64>,
    now: u64,
) -> Result<DesiredState, DesiredError> {
    let document: SignedDesiredState =
        serde_json::from_slice(bytes).map_err(|e| DesiredError::Malformed(e.to_string()))?;
    if document.signed.kind != DESIRED_STATE_TYPE {
        return Err(DesiredError::Malformed(format!(
            "its _type is {:?}",
            document.signed.kind
        )));
    }
    let (keys, threshold) = director_role(root)?;
    let message = crate::tuf::canonical(&document.signed);
    let mut counted = HashSet::new();
    for signature in &document.signatures {
        let Some(key) = keys.get(&signature.keyid) else {
            continue;
        };
        let Ok(sig) = hex::decode(&signature.sig) else {
            continue;
        };
        if keys::verify(key, &message, &sig) {
            counted.insert(signature.keyid.clone());
        }
    }
    if counted.len() < threshold {
        return Err(DesiredError::UnderSigned {
            valid: counted.len(),
            threshold,
        });
    }
    let state = document.signed;
    if state.node != node {
        return Err(DesiredError::OtherNode {
            for_node: state.node,
            this_node: node.to_string(),
        });
    }
    if let Some(seen) = seen
        && state.version < seen
    {
        return Err(DesiredError::Replayed {
            got: state.version,
            seen,
        });
    }
    if state.expires <= now {
        return Err(DesiredError::Expired {
            expires: jiff::Timestamp::from_second(state.expires as i64)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|_| state.expires.to_string()),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Selector;
    use crate::rollout::AbortRule;

    fn rollout(
        id: &str,
        version: &str,
        revision: u64,
        state: RolloutState,
        rollback: bool,
    ) -> Rollout {
        Rollout {
            id: id.into(),
            plugin: "acme/zpl-printer".into(),
            version: semver::Version::parse(version).expect("version"),
            digest: format!("sha256:{id}"),
            selector: Selector::default(),
            waves: vec![100],
            probation_seconds: 600,
            abort: AbortRule {
                percent: 5.0,
                after: 1,
            },
            rollback,
            offline_after_seconds: 24 * 3600,
            created_at: 1,
            state,
            nodes: vec!["n1".into()],
            wave_ends: vec![1],
            revision,
            wave_opened_at: vec![1],
        }
    }

    #[test]
    fn the_newest_rollout_per_plugin_speaks_and_the_version_never_goes_back() {
        let done = rollout("r1", "1.2.0", 3, RolloutState::Completed { at: 2 }, true);
        let halted = |rollback| {
            rollout(
                "r2",
                "1.3.0",
                5,
                RolloutState::Halted {
                    wave: 0,
                    reason: "bad".into(),
                    at: 3,
                },
                rollback,
            )
        };
        let (version, releases) = for_node("n1", [&done]);
        assert_eq!((version, releases.len()), (3, 1));
        assert_eq!(releases[0].action, Action::Install);
        // Halted without rollback: nothing asked of the plugin (not the
        // older rollout's version), and the version still rises.
        let (version, releases) = for_node("n1", [&done, &halted(false)]);
        assert_eq!(version, 5);
        assert!(releases.is_empty(), "{releases:?}");
        let (version, releases) = for_node("n1", [&halted(true), &done]);
        assert_eq!(version, 5);
        assert_eq!(releases.len(), 1);
        assert_eq!(
            (releases[0].action.clone(), releases[0].version.to_string()),
            (Action::RollBack, "1.3.0".to_string())
        );
        // A node a rollout does not list: version 0, nothing asked.
        assert_eq!(for_node("n2", [&done, &halted(true)]), (0, Vec::new()));
    }
}
