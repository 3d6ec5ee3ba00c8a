//! What the central team and the nodes' reports do to a stored rollout:
//! create, list, show and steer it, and record a node's progress, each in
//! one transaction of the registry's store.

use super::{
    Decision, Progress, Recorded, Rollout, RolloutError, RolloutRequest, RolloutState,
    RolloutStatus, apply, decide, number_of, plan, status,
};
use crate::fleet;
use crate::store::{RegistryStore, now_seconds};
use serde::{Deserialize, Serialize};

/// Creates a rollout from `request`: checked whole, stored with its nodes
/// in wave order, its first wave open.
pub fn create(store: &RegistryStore, request: &RolloutRequest) -> Result<Rollout, RolloutError> {
    store.create_rollout(|id, existing| {
        let rollout = plan(store, id, request)?;
        if let Some(busy) = existing
            .iter()
            .find(|other| other.plugin == rollout.plugin && other.state.in_progress())
        {
            return Err(RolloutError::Busy {
                plugin: rollout.plugin.clone(),
                id: busy.id.clone(),
                state: busy.state.name().to_string(),
            });
        }
        Ok(rollout)
    })?
}

/// Every rollout, oldest first.
pub fn list(store: &RegistryStore) -> Result<Vec<Rollout>, RolloutError> {
    let mut rollouts: Vec<Rollout> = store.rollouts()?.into_values().collect();
    rollouts.sort_by_key(|r| (r.created_at, number_of(&r.id)));
    Ok(rollouts)
}

/// `rollout status`: the rollout, its waves and the failure reasons now.
pub fn status_of(store: &RegistryStore, id: &str) -> Result<RolloutStatus, RolloutError> {
    let rollout = store
        .rollout(id)?
        .ok_or_else(|| RolloutError::Unknown(id.to_string()))?;
    let progress = store.rollout_progress(id)?;
    Ok(status(&rollout, &progress, now_seconds()))
}

/// What the central team can do to a rollout in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Steer {
    Pause,
    Resume,
    Abort,
}

/// Pauses, resumes or aborts rollout `id`.
pub fn steer(store: &RegistryStore, id: &str, steer: Steer) -> Result<Rollout, RolloutError> {
    let now = now_seconds();
    store
        .update_rollout(id, |rollout, _| {
            let wrong = |wanted| RolloutError::WrongState {
                id: rollout.id.clone(),
                state: rollout.state.name().to_string(),
                wanted,
            };
            rollout.state = match (steer, &rollout.state) {
                (Steer::Pause, RolloutState::Running { wave }) => {
                    RolloutState::Paused { wave: *wave }
                }
                (Steer::Resume, RolloutState::Paused { wave }) => {
                    RolloutState::Running { wave: *wave }
                }
                (Steer::Abort, RolloutState::Running { wave } | RolloutState::Paused { wave }) => {
                    RolloutState::Aborted {
                        wave: *wave,
                        at: now,
                    }
                }
                (Steer::Pause, _) => return Err(wrong("paused")),
                (Steer::Resume, _) => return Err(wrong("resumed")),
                (Steer::Abort, _) => return Err(wrong("aborted")),
            };
            Ok(())
        })?
        .ok_or_else(|| RolloutError::Unknown(id.to_string()))?
}

/// Records `node`'s progress on rollout `id` and moves the rollout on if
/// that settles its wave or trips its abort rule. What a node's report
/// does. A rollout that halted or was aborted still records the nodes it
/// reached (their rollbacks are what `rollout status` shows then); a
/// report numbered no higher than the one applied changes nothing.
pub fn record(
    store: &RegistryStore,
    id: &str,
    node: &str,
    progress: &Progress,
    now: u64,
) -> Result<Recorded, RolloutError> {
    let rollout = store
        .rollout(id)?
        .ok_or_else(|| RolloutError::Unknown(id.to_string()))?;
    let not_in = || RolloutError::NotInRollout {
        id: id.to_string(),
        node: node.to_string(),
    };
    let Some(position) = rollout.nodes.iter().position(|n| n == node) else {
        return Err(not_in());
    };
    // Only a node its waves reached.
    let reached = match rollout.state {
        RolloutState::Running { wave }
        | RolloutState::Paused { wave }
        | RolloutState::Halted { wave, .. }
        | RolloutState::Aborted { wave, .. } => rollout.wave_ends[wave],
        RolloutState::Completed { .. } => rollout.nodes.len(),
    };
    if position >= reached || fleet::active_node(store, node)?.is_none() {
        return Err(not_in());
    }
    // The registry's clock, not the node's; a reason of bounded length.
    let progress = Progress {
        stage: progress.stage,
        reason: progress
            .reason
            .as_ref()
            .map(|reason| reason.chars().take(MAX_REASON_CHARS).collect()),
        reported_at: now,
        sequence: progress.sequence,
    };
    if let Some(last) = store.set_progress(id, node, &progress)? {
        return Ok(Recorded::Stale { rollout, last });
    }
    // Only a node done (confirmed or failed) can settle a wave or trip the
    // rule; deciding reads every node's progress, so the reports on the
    // way there (downloading, held, probation) skip it.
    if !progress.stage.done() {
        return Ok(Recorded::Applied(rollout));
    }
    advance(store, id, now).map(Recorded::Applied)
}

/// Moves on every running rollout whose waves settled by time alone (its
/// silent nodes went offline) rather than by a report. The registry's
/// clock chore calls it; returns the rollouts that changed state.
pub fn advance_running(store: &RegistryStore, now: u64) -> Result<Vec<Rollout>, RolloutError> {
    let mut moved = Vec::new();
    for rollout in store.rollouts()?.into_values() {
        if !matches!(rollout.state, RolloutState::Running { .. }) {
            continue;
        }
        let after = advance(store, &rollout.id, now)?;
        if after.state != rollout.state {
            moved.push(after);
        }
    }
    Ok(moved)
}

/// The longest failure reason kept from a node.
pub const MAX_REASON_CHARS: usize = 300;

/// Applies [`decide`] to rollout `id` at `now`.
pub fn advance(store: &RegistryStore, id: &str, now: u64) -> Result<Rollout, RolloutError> {
    store
        .update_rollout(id, |rollout, progress| {
            // Several steps at once when waves are empty or already settled
            // (a handful of nodes in waves 1,10,50,100).
            for _ in 0..=rollout.waves.len() {
                let decision = decide(rollout, progress, now);
                if let Decision::Halt { reason } = &decision {
                    tracing::warn!(rollout = %rollout.id, "rollout halted: {reason}");
                }
                if decision == Decision::Stay {
                    break;
                }
                apply(rollout, &decision, now);
            }
            Ok::<(), RolloutError>(())
        })?
        .ok_or_else(|| RolloutError::Unknown(id.to_string()))?
}
