//! A node's reports on the rollouts that reached it: each transition of a
//! rollout's release on the node (downloading, held, on probation,
//! confirmed, rolled back, failed), signed with the node's key.
//!
//! A report is signed in its body, not by a request header with a time in
//! it: it travels through the node's outbox, so one written on the first
//! day of three offline is delivered on the fourth, and must still verify.
//! What stops a replay is its sequence number, which rises with every
//! report a node makes: the registry keeps, per rollout and node, the
//! highest it applied, and a report at or below it changes nothing (a
//! retry of a delivered report gets the same answer, and an old report
//! replayed by someone on the wire cannot move a node backwards).

use super::{FleetError, active_node};
use crate::keys::{self, KeyPair};
use crate::rollout::{self, Progress, Recorded, RolloutError, Stage};
use crate::store::RegistryStore;
use serde::{Deserialize, Serialize};

pub const REPORT_TYPE: &str = "outpost-rollout-report";

/// What a node says about one rollout's release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    #[serde(rename = "_type")]
    pub kind: String,
    pub node: String,
    pub rollout: String,
    pub plugin: String,
    pub version: semver::Version,
    /// Rises with every report the node makes.
    pub sequence: u64,
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it happened by the node's clock, seconds since the epoch: for
    /// people reading it; the registry decides by its own clock.
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReport {
    pub report: Report,
    /// Ed25519 over [`message`], hex.
    pub signature: String,
}

fn message(report: &Report) -> Vec<u8> {
    let mut message = b"outpost node report v1\n".to_vec();
    message.extend(crate::tuf::canonical(report));
    message
}

impl SignedReport {
    pub fn sign(key: &KeyPair, report: Report) -> SignedReport {
        let signature = hex::encode(key.sign(&message(&report)));
        SignedReport { report, signature }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report is not valid: {0}")]
    Malformed(String),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(
        "rollout {rollout} is of {expected}, but node {node} reported on {got}; the report was refused"
    )]
    WrongRelease {
        rollout: String,
        node: String,
        expected: String,
        got: String,
    },
    #[error(transparent)]
    Rollout(#[from] RolloutError),
}

/// What became of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// False when the registry already held this report or a newer one.
    pub recorded: bool,
    /// The rollout's state after it (`running`, `halted`, …).
    pub rollout_state: String,
}

/// Checks `report` (an active node's signature, a release of the rollout it
/// names, a node the rollout reached) and records it at the registry's
/// `now`.
pub fn accept(store: &RegistryStore, report: &[u8], now: u64) -> Result<Accepted, ReportError> {
    let signed: SignedReport =
        serde_json::from_slice(report).map_err(|e| ReportError::Malformed(e.to_string()))?;
    let report = &signed.report;
    if report.kind != REPORT_TYPE {
        return Err(ReportError::Malformed(format!(
            "its _type is {:?}, not {REPORT_TYPE:?}",
            report.kind
        )));
    }
    if report.sequence == 0 {
        return Err(ReportError::Malformed(
            "its sequence number is 0; a node numbers its reports from 1".into(),
        ));
    }
    let node = active_node(store, &report.node)?
        .ok_or_else(|| FleetError::NotActive(report.node.clone()))?;
    let signature = hex::decode(&signed.signature)
        .map_err(|_| FleetError::Unauthenticated("the report's signature is not hex".into()))?;
    if !keys::verify(&node.key, &message(report), &signature) {
        return Err(FleetError::Unauthenticated(format!(
            "the report is not signed by node {}'s key",
            report.node
        ))
        .into());
    }
    let rollout = store
        .rollout(&report.rollout)
        .map_err(RolloutError::from)?
        .ok_or_else(|| RolloutError::Unknown(report.rollout.clone()))?;
    if rollout.plugin != report.plugin || rollout.version != report.version {
        return Err(ReportError::WrongRelease {
            rollout: rollout.id,
            node: report.node.clone(),
            expected: format!("{}@{}", rollout.plugin, rollout.version),
            got: format!("{}@{}", report.plugin, report.version),
        });
    }
    let progress = Progress {
        stage: report.stage,
        reason: report.reason.clone(),
        reported_at: now,
        sequence: report.sequence,
    };
    Ok(
        match rollout::record(store, &report.rollout, &report.node, &progress, now)? {
            Recorded::Applied(rollout) => Accepted {
                recorded: true,
                rollout_state: rollout.state.name().to_string(),
            },
            Recorded::Stale { rollout, .. } => Accepted {
                recorded: false,
                rollout_state: rollout.state.name().to_string(),
            },
        },
    )
}
