//! The node's reports to its fleet: every transition of an update a
//! rollout asked for, signed with the node's identity key and queued in the
//! outbox, so a node offline for days reports in order when it returns.
//!
//! Each report is one outbox message to `<registry>/fleet/v1/reports`
//! (owner [`FLEET_OWNER`]), numbered from a counter that only rises: the
//! registry applies, per rollout, only a report numbered higher than the
//! last it applied, so a retry or a replay changes nothing and a report
//! delivered late cannot undo a newer one. A state already reported for a
//! rollout is not reported again.

use crate::outbox::Outbox;
use crate::store::{NewMessage, NodeStore, OutboxMethod, Reported, StoreError, UpdateState};
use outpost_registry::fleet::report::{REPORT_TYPE, Report, SignedReport};
use outpost_registry::rollout::Stage;
use std::path::Path;

/// The outbox owner of the node's fleet reports: delivered to the fleet's
/// registry with the node's own TLS trust, not as a plugin's message.
pub const FLEET_OWNER: &str = "node:fleet";

/// What the rollout hears of an update in `state`.
pub fn stage_of(state: UpdateState) -> Stage {
    match state {
        UpdateState::Found
        | UpdateState::Downloaded
        | UpdateState::Verified
        | UpdateState::Compiled
        | UpdateState::Staged
        | UpdateState::Activating => Stage::Downloading,
        UpdateState::Held | UpdateState::Deferred => Stage::Held,
        UpdateState::Probation => Stage::Probation,
        UpdateState::Confirmed => Stage::Confirmed,
        UpdateState::RolledBack => Stage::RolledBack,
        UpdateState::Refused => Stage::Failed,
    }
}

/// Why a report could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the node's identity key: {0}")]
    Identity(#[from] outpost_registry::keys::KeyError),
    #[error("the fleet's registry {registry:?} is not a URL: {detail}")]
    Registry { registry: String, detail: String },
    #[error(transparent)]
    Queue(#[from] crate::store::EnqueueError),
}

/// One report: rollout `rollout` of `plugin@version` is at `stage` here.
#[derive(Debug, Clone)]
pub struct Tell<'a> {
    pub rollout: &'a str,
    pub plugin: &'a str,
    pub version: &'a semver::Version,
    pub stage: Stage,
    pub reason: Option<String>,
}

/// Queues `tell` for the fleet's registry, unless the node is in no fleet
/// or already reported this stage for the rollout. Blocks on
/// commits: call it off async tasks.
pub fn queue(
    store: &NodeStore,
    outbox: &Outbox,
    data_dir: &Path,
    tell: Tell<'_>,
) -> Result<bool, ReportError> {
    let Some(membership) = store.membership()? else {
        return Ok(false);
    };
    let reason = tell.reason.map(|reason| {
        reason
            .chars()
            .take(outpost_registry::rollout::MAX_REASON_CHARS)
            .collect::<String>()
    });
    // A stage is reported once; its reason is the first given.
    if let Some(last) = store.reported(tell.rollout)?
        && last.stage == tell.stage
    {
        return Ok(false);
    }
    let destination = url::Url::parse(&membership.registry)
        .and_then(|registry| registry.join("fleet/v1/reports"))
        .map_err(|e| ReportError::Registry {
            registry: membership.registry.clone(),
            detail: e.to_string(),
        })?;
    let key = super::identity(data_dir)?;
    // Numbered first, marked reported last: a crash between the two sends
    // the report again under a higher number, which changes nothing.
    let sequence = store.next_report_sequence()?;
    let report = Report {
        kind: REPORT_TYPE.to_string(),
        node: membership.node_id.clone(),
        rollout: tell.rollout.to_string(),
        plugin: tell.plugin.to_string(),
        version: tell.version.clone(),
        sequence,
        stage: tell.stage,
        reason: reason.clone(),
        at: crate::clock::now_seconds(),
    };
    let payload =
        serde_json::to_vec(&SignedReport::sign(&key, report)).map_err(|e| StoreError::Record {
            what: "a fleet report".into(),
            detail: e.to_string(),
        })?;
    outbox.enqueue(NewMessage {
        owner: FLEET_OWNER.to_string(),
        destination: destination.to_string(),
        method: OutboxMethod::Post,
        content_type: "application/json".to_string(),
        payload,
        idempotency_key: format!("{}-{sequence}", membership.node_id),
        max_pending: u32::MAX,
        max_kept_bytes: u64::MAX,
    })?;
    store.set_reported(
        tell.rollout,
        &Reported {
            stage: tell.stage,
            reason,
            sequence,
        },
    )?;
    tracing::info!(rollout = tell.rollout, plugin = tell.plugin, version = %tell.version, stage = ?tell.stage, "reported to the fleet");
    Ok(true)
}
