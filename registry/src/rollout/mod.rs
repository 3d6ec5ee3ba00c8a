//! Rollouts: one signed release to the nodes a selector picks, in waves,
//! braked by abort criteria (Greengrass-style: at least N nodes done and
//! more than X% of them failed).
//!
//! A rollout is checked whole when it is created (the release exists and
//! its vendor signed it, the selector picks at least one active node, the
//! waves rise to 100, the abort rule parses) and stored with its nodes
//! already in wave order, so what a wave holds never moves. The decision
//! to advance, halt or finish ([`decide`]) is a function of the nodes'
//! progress alone; the registry applies it as reports arrive.

use crate::fleet::{self, Selector};
use crate::repository;
use crate::store::{RegistryStore, StoreError, now_seconds};
use crate::tuf;

mod actions;
pub use actions::{
    MAX_REASON_CHARS, Steer, advance, advance_running, create, list, record, status_of, steer,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{0:?} is not a release: write vendor/plugin@1.3.0 (an exact version)")]
    BadRelease(String),
    #[error(
        "{0} is not a release the registry holds signed by its vendor; `outpost plugin search` on a node lists the signed ones"
    )]
    UnknownRelease(String),
    #[error(
        "the selector {0:?} matches no active node; `outpost-registry node list` shows their labels"
    )]
    NoNodes(String),
    #[error(
        "waves {0:?} are not usable: give percentages of the selected nodes that rise strictly and end at 100, such as 1,10,50,100"
    )]
    BadWaves(Vec<u32>),
    #[error(
        "{0:?} is not an abort rule: write `failed > 5% after 20` (halt once at least 20 nodes are done and more than 5% of them failed)"
    )]
    BadAbortRule(String),
    #[error("probation must be between a minute and 30 days")]
    BadProbation,
    #[error(
        "a node is offline when it has not reported for between an hour and 30 days, and longer than the probation"
    )]
    BadOffline,
    #[error(
        "{plugin} already has rollout {id} in progress ({state}); abort it first (`outpost-registry rollout abort {id}`)"
    )]
    Busy {
        plugin: String,
        id: String,
        state: String,
    },
    #[error("no rollout {0}; `outpost-registry rollout list` shows them")]
    Unknown(String),
    #[error(
        "node {node} is not in an open wave of rollout {id} (not selected or not reached yet, retired or unknown, or the rollout is over); its report was ignored"
    )]
    NotInRollout { id: String, node: String },
    #[error("rollout {id} is {state}; it cannot be {wanted}")]
    WrongState {
        id: String,
        state: String,
        wanted: &'static str,
    },
    #[error(transparent)]
    Fleet(#[from] fleet::FleetError),
    #[error(transparent)]
    Repository(#[from] repository::RepositoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Halt once at least `after` nodes are done (confirmed or failed) and
/// more than `percent`% of them failed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbortRule {
    pub percent: f64,
    pub after: u32,
}

impl AbortRule {
    /// `failed > 5% after 20`, or `failed > 5%` (after 1).
    pub fn parse(text: &str) -> Result<AbortRule, RolloutError> {
        let bad = || RolloutError::BadAbortRule(text.to_string());
        let words: Vec<&str> = text.split_whitespace().collect();
        let (percent, after) = match words.as_slice() {
            ["failed", ">", percent] => (*percent, "1"),
            ["failed", ">", percent, "after", after] => (*percent, *after),
            _ => return Err(bad()),
        };
        let percent: f64 = percent
            .strip_suffix('%')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        let after: u32 = after.parse().map_err(|_| bad())?;
        if !(0.0..100.0).contains(&percent) || after == 0 {
            return Err(bad());
        }
        Ok(AbortRule { percent, after })
    }

    /// Whether `failed` of `done` nodes trips the rule.
    pub fn tripped(&self, failed: usize, done: usize) -> bool {
        done >= self.after as usize && (failed as f64) * 100.0 > self.percent * done as f64
    }
}

impl std::fmt::Display for AbortRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed > {}% after {}", self.percent, self.after)
    }
}

/// What the central team asks for (`rollout create`, or a TOML file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RolloutRequest {
    /// `vendor/plugin@1.3.0`.
    pub release: String,
    /// `region=north,kind=bakery`; empty: every active node.
    #[serde(default)]
    pub select: String,
    /// Percentages of the selected nodes, rising to 100.
    pub waves: Vec<u32>,
    pub probation_seconds: u64,
    /// `failed > 5% after 20`.
    pub abort_when: String,
    /// Roll the nodes that took it back when the rollout halts.
    #[serde(default = "yes")]
    pub rollback: bool,
    /// A node that has not reported for this long counts as offline and
    /// no longer holds its wave back.
    #[serde(default = "day")]
    pub offline_after_seconds: u64,
}

fn yes() -> bool {
    true
}

fn day() -> u64 {
    24 * 3600
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RolloutState {
    /// Waves up to and including `wave` (from 0) are open.
    Running {
        wave: usize,
    },
    Paused {
        wave: usize,
    },
    /// The abort rule tripped.
    Halted {
        wave: usize,
        reason: String,
        at: u64,
    },
    /// The central team stopped it.
    Aborted {
        wave: usize,
        at: u64,
    },
    Completed {
        at: u64,
    },
}

impl RolloutState {
    pub fn name(&self) -> &'static str {
        match self {
            RolloutState::Running { .. } => "running",
            RolloutState::Paused { .. } => "paused",
            RolloutState::Halted { .. } => "halted",
            RolloutState::Aborted { .. } => "aborted",
            RolloutState::Completed { .. } => "completed",
        }
    }

    /// Still moving or able to move again.
    pub fn in_progress(&self) -> bool {
        matches!(
            self,
            RolloutState::Running { .. } | RolloutState::Paused { .. }
        )
    }
}

/// A rollout as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub plugin: String,
    pub version: semver::Version,
    /// The release's OCI manifest digest, as its vendor signed it.
    pub digest: String,
    pub selector: Selector,
    pub waves: Vec<u32>,
    pub probation_seconds: u64,
    pub abort: AbortRule,
    pub rollback: bool,
    pub offline_after_seconds: u64,
    pub created_at: u64,
    pub state: RolloutState,
    /// The selected nodes, in wave order.
    pub nodes: Vec<String>,
    /// How many of `nodes` each wave reaches (cumulative).
    pub wave_ends: Vec<usize>,
    /// The fleet-wide revision of its last change: the version of the
    /// desired state of every node it reaches ([`crate::desired`]).
    #[serde(default)]
    pub revision: u64,
    /// When each wave opened so far (seconds since the epoch): a node is
    /// offline only when silent that long after its own wave opened.
    #[serde(default)]
    pub wave_opened_at: Vec<u64>,
}

impl Rollout {
    /// Its number: `r12` → 12, the order rollouts were created in.
    pub fn sequence(&self) -> u64 {
        number_of(&self.id)
    }

    /// The wave `node_index` (in `nodes`) belongs to.
    fn wave_of(&self, node_index: usize) -> usize {
        self.wave_ends
            .iter()
            .position(|end| node_index < *end)
            .unwrap_or(self.wave_ends.len())
    }

    /// When the wave of `node_index` opened (the rollout's creation before
    /// anything was recorded).
    fn opened_at(&self, node_index: usize) -> u64 {
        self.wave_opened_at
            .get(self.wave_of(node_index))
            .copied()
            .unwrap_or(self.created_at)
    }
}

/// How far one node is with a rollout's release, from its reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Pending,
    Downloading,
    /// Waiting for the operator's approval or the node's maintenance window.
    Held,
    Probation,
    Confirmed,
    /// Failed probation (or activation) and went back by itself.
    RolledBack,
    /// Refused before activation (verification, install checks, migrate).
    Failed,
}

impl Stage {
    pub fn failed(self) -> bool {
        matches!(self, Stage::RolledBack | Stage::Failed)
    }

    pub fn done(self) -> bool {
        self.failed() || self == Stage::Confirmed
    }
}

/// One node's progress on one rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: Stage,
    /// Why it failed, as the node said.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the node last reported anything (seconds since the epoch).
    pub reported_at: u64,
    /// The node's number for the report applied: a report numbered no
    /// higher is a repeat or a replay, and changes nothing.
    #[serde(default)]
    pub sequence: u64,
}

/// What recording a node's report came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Recorded; the rollout as it is after it.
    Applied(Rollout),
    /// The registry already applied this report or a newer one from the
    /// node (numbered `last`): nothing changed.
    Stale { rollout: Rollout, last: u64 },
}

impl Recorded {
    /// The rollout as it is now, either way.
    pub fn into_rollout(self) -> Rollout {
        match self {
            Recorded::Applied(rollout) | Recorded::Stale { rollout, .. } => rollout,
        }
    }
}

/// Cumulative node counts per wave: `ceil(percent × n / 100)`, the first
/// wave at least one node, never past `n`.
pub fn wave_ends(waves: &[u32], n: usize) -> Vec<usize> {
    if n == 0 {
        return vec![0; waves.len()];
    }
    let mut ends = Vec::with_capacity(waves.len());
    for percent in waves {
        let end = (*percent as usize * n).div_ceil(100).clamp(1, n);
        ends.push(end.max(ends.last().copied().unwrap_or(0)));
    }
    ends
}

fn check_waves(waves: &[u32]) -> Result<(), RolloutError> {
    let rising = waves.windows(2).all(|w| w[0] < w[1]);
    if waves.is_empty()
        || waves.len() > 20
        || !rising
        || waves.first().is_some_and(|w| *w == 0)
        || waves.last() != Some(&100)
    {
        return Err(RolloutError::BadWaves(waves.to_vec()));
    }
    Ok(())
}

/// A stable, spread-out order for the rollout's nodes: by a hash of the
/// rollout and the node, so each rollout's first wave is a different
/// sample of the fleet.
fn wave_order(rollout_id: &str, mut nodes: Vec<String>) -> Vec<String> {
    nodes.sort_by_cached_key(|node| Sha256::digest(format!("{rollout_id}/{node}").as_bytes()));
    nodes
}

/// Checks `request` against the registry and makes the rollout `id`.
pub fn plan(
    store: &RegistryStore,
    id: &str,
    request: &RolloutRequest,
) -> Result<Rollout, RolloutError> {
    let (plugin, version) = tuf::parse_target_name(&request.release)
        .ok_or_else(|| RolloutError::BadRelease(request.release.clone()))?;
    let name = tuf::target_name(plugin, &version);
    let (target, _) = repository::signed_release(store, &name)?
        .ok_or_else(|| RolloutError::UnknownRelease(name.clone()))?;
    let selector = Selector::parse(&request.select)?;
    check_waves(&request.waves)?;
    let abort = AbortRule::parse(&request.abort_when)?;
    if !(60..=30 * 24 * 3600).contains(&request.probation_seconds) {
        return Err(RolloutError::BadProbation);
    }
    if !(3600..=30 * 24 * 3600).contains(&request.offline_after_seconds)
        || request.offline_after_seconds <= request.probation_seconds
    {
        return Err(RolloutError::BadOffline);
    }
    let selected: Vec<String> = fleet::list(store, &selector, false)?
        .into_iter()
        .map(|node| node.id)
        .collect();
    if selected.is_empty() {
        return Err(RolloutError::NoNodes(selector.to_string()));
    }
    let nodes = wave_order(id, selected);
    Ok(Rollout {
        id: id.to_string(),
        plugin: plugin.to_string(),
        version,
        digest: format!("sha256:{}", tuf::target_sha256(&target)),
        selector,
        wave_ends: wave_ends(&request.waves, nodes.len()),
        waves: request.waves.clone(),
        probation_seconds: request.probation_seconds,
        abort,
        rollback: request.rollback,
        offline_after_seconds: request.offline_after_seconds,
        created_at: now_seconds(),
        state: RolloutState::Running { wave: 0 },
        nodes,
        revision: 0,
        wave_opened_at: vec![now_seconds()],
    })
}

fn number_of(id: &str) -> u64 {
    id.trim_start_matches('r').parse().unwrap_or(0)
}

/// What the registry should do with a rollout now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Stay,
    Advance { to_wave: usize },
    Halt { reason: String },
    Complete,
}

/// Whether the node at `node_index` counts as offline at `now`: silent
/// for `offline_after` since its wave opened or it last reported.
fn offline(rollout: &Rollout, node_index: usize, progress: Option<&Progress>, now: u64) -> bool {
    let opened = rollout.opened_at(node_index);
    let last = progress.map_or(opened, |p| p.reported_at.max(opened));
    now.saturating_sub(last) > rollout.offline_after_seconds
}

/// The next step for a running rollout, from its nodes' progress: halt
/// when the abort rule trips over every node reached so far; advance when
/// every node of the open waves is done (or offline); complete after the
/// last wave.
pub fn decide(rollout: &Rollout, progress: &BTreeMap<String, Progress>, now: u64) -> Decision {
    let RolloutState::Running { wave } = rollout.state else {
        return Decision::Stay;
    };
    let reached = &rollout.nodes[..rollout.wave_ends[wave]];
    let stages = reached
        .iter()
        .map(|node| progress.get(node).map_or(Stage::Pending, |p| p.stage));
    let done = stages.clone().filter(|s| s.done()).count();
    let failed = stages.filter(|s| s.failed()).count();
    if rollout.abort.tripped(failed, done) {
        return Decision::Halt {
            reason: format!(
                "{failed} of {done} nodes done failed ({:.1}%), over the rule `{}`",
                failed as f64 * 100.0 / done as f64,
                rollout.abort
            ),
        };
    }
    let settled = reached.iter().enumerate().all(|(index, node)| {
        let entry = progress.get(node);
        entry.is_some_and(|p| p.stage.done()) || offline(rollout, index, entry, now)
    });
    // A wave whose nodes all went silent tells nothing about the release:
    // it holds until at least one of them is done.
    let wave_start = wave.checked_sub(1).map_or(0, |w| rollout.wave_ends[w]);
    let heard_from = rollout.nodes[wave_start..rollout.wave_ends[wave]]
        .iter()
        .any(|node| progress.get(node).is_some_and(|p| p.stage.done()));
    let empty_wave = wave_start == rollout.wave_ends[wave];
    if !settled || !(heard_from || empty_wave) {
        Decision::Stay
    } else if wave + 1 < rollout.waves.len() {
        Decision::Advance { to_wave: wave + 1 }
    } else {
        Decision::Complete
    }
}

/// Applies `decision` to `rollout` at `now`.
pub fn apply(rollout: &mut Rollout, decision: &Decision, now: u64) {
    let wave = match rollout.state {
        RolloutState::Running { wave } => wave,
        _ => return,
    };
    rollout.state = match decision {
        Decision::Stay => return,
        Decision::Advance { to_wave } => {
            rollout.wave_opened_at.resize(*to_wave, now);
            rollout.wave_opened_at.push(now);
            RolloutState::Running { wave: *to_wave }
        }
        Decision::Halt { reason } => RolloutState::Halted {
            wave,
            reason: reason.clone(),
            at: now,
        },
        Decision::Complete => RolloutState::Completed { at: now },
    };
}

/// One wave of `rollout status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveStatus {
    pub percent: u32,
    pub nodes: usize,
    /// Whether the wave is open (its nodes were told to install).
    pub open: bool,
    /// Nodes by stage name (`pending`, `downloading`, `held`, `probation`,
    /// `confirmed`, `rolled-back`, `failed`), and `offline`.
    pub counts: BTreeMap<String, usize>,
}

/// `rollout status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub rollout: Rollout,
    pub waves: Vec<WaveStatus>,
    /// Failure reasons as the nodes gave them, with how many said each.
    pub reasons: BTreeMap<String, usize>,
}

fn stage_name(stage: Stage) -> String {
    serde_json::to_value(stage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The rollout's waves and reasons, from its nodes' progress at `now`.
pub fn status(rollout: &Rollout, progress: &BTreeMap<String, Progress>, now: u64) -> RolloutStatus {
    let open_until = match &rollout.state {
        RolloutState::Running { wave }
        | RolloutState::Paused { wave }
        | RolloutState::Halted { wave, .. }
        | RolloutState::Aborted { wave, .. } => *wave,
        RolloutState::Completed { .. } => rollout.waves.len().saturating_sub(1),
    };
    let mut waves = Vec::new();
    let mut reasons = BTreeMap::new();
    let mut start = 0;
    for (index, (percent, end)) in rollout.waves.iter().zip(&rollout.wave_ends).enumerate() {
        let mut counts = BTreeMap::new();
        for (offset, node) in rollout.nodes[start..*end].iter().enumerate() {
            let entry = progress.get(node);
            let stage = entry.map_or(Stage::Pending, |p| p.stage);
            let offline = index <= open_until && offline(rollout, start + offset, entry, now);
            let name = if !stage.done() && offline {
                "offline".to_string()
            } else {
                stage_name(stage)
            };
            *counts.entry(name).or_insert(0) += 1;
            if let Some(reason) = entry.and_then(|p| p.reason.as_ref())
                && stage.failed()
            {
                *reasons.entry(reason.clone()).or_insert(0) += 1;
            }
        }
        waves.push(WaveStatus {
            percent: *percent,
            nodes: end - start,
            open: index <= open_until,
            counts,
        });
        start = *end;
    }
    RolloutStatus {
        rollout: rollout.clone(),
        waves,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_rules_parse_and_trip_as_written() {
        let rule = AbortRule::parse("failed > 5% after 20").expect("rule");
        assert_eq!(
            rule,
            AbortRule {
                percent: 5.0,
                after: 20
            }
        );
        assert_eq!(rule.to_string(), "failed > 5% after 20");
        assert!(!rule.tripped(5, 19), "not before 20 are done");
        assert!(!rule.tripped(1, 20), "5% of 20 is 1: not more than 5%");
        assert!(rule.tripped(2, 20));
        assert_eq!(AbortRule::parse("failed > 0%").expect("rule").after, 1);
        for bad in [
            "",
            "failed > 5",
            "failed >= 5% after 20",
            "failed > 5% after",
            "failed > 5% after 0",
            "failed > 100% after 3",
            "failed > -1% after 3",
            "succeeded > 5% after 20",
            "failed > x% after 20",
        ] {
            assert!(AbortRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn waves_rise_to_100_and_cover_every_node_once() {
        for good in [vec![100], vec![1, 10, 50, 100], vec![50, 100]] {
            check_waves(&good).expect("good waves");
        }
        for bad in [
            vec![],
            vec![10, 50],
            vec![50, 10, 100],
            vec![10, 10, 100],
            vec![0, 100],
            vec![10, 100, 100],
            vec![120],
        ] {
            assert!(check_waves(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            wave_ends(&[1, 10, 50, 100], 10_000),
            vec![100, 1000, 5000, 10_000]
        );
        // A handful of nodes: the first wave still has one, none repeats.
        assert_eq!(wave_ends(&[1, 10, 50, 100], 3), vec![1, 1, 2, 3]);
        assert_eq!(wave_ends(&[1, 10, 50, 100], 1), vec![1, 1, 1, 1]);
    }

    fn planned(nodes: usize, waves: &[u32], rule: &str) -> Rollout {
        let ids: Vec<String> = (0..nodes).map(|n| format!("node-{n:05}")).collect();
        Rollout {
            id: "r1".into(),
            plugin: "acme/zpl-printer".into(),
            version: semver::Version::new(1, 3, 0),
            digest: "sha256:00".into(),
            selector: Selector::default(),
            waves: waves.to_vec(),
            probation_seconds: 1800,
            abort: AbortRule::parse(rule).expect("rule"),
            rollback: true,
            offline_after_seconds: 24 * 3600,
            created_at: 1_000,
            revision: 0,
            wave_opened_at: vec![1_000],
            state: RolloutState::Running { wave: 0 },
            wave_ends: wave_ends(waves, ids.len()),
            nodes: wave_order("r1", ids),
        }
    }

    /// Every node of each open wave reports, a fixed share of them failing;
    /// returns the waves the rollout opened and where it ended.
    fn drive(rollout: &mut Rollout, failing_every: Option<usize>) -> (usize, RolloutState) {
        let mut progress = BTreeMap::new();
        let now = 2_000;
        let mut opened = 1;
        loop {
            let RolloutState::Running { wave } = rollout.state else {
                return (opened, rollout.state.clone());
            };
            for (index, node) in rollout.nodes[..rollout.wave_ends[wave]].iter().enumerate() {
                let fails = failing_every.is_some_and(|every| index % every == every - 1);
                progress.entry(node.clone()).or_insert(Progress {
                    stage: if fails {
                        Stage::RolledBack
                    } else {
                        Stage::Confirmed
                    },
                    reason: fails.then(|| "health: printer not found".into()),
                    reported_at: now,
                    sequence: 1,
                });
            }
            let decision = decide(rollout, &progress, now);
            if let Decision::Advance { .. } = decision {
                opened += 1;
            }
            apply(rollout, &decision, now);
        }
    }

    #[test]
    fn a_rollout_with_no_failures_completes_every_wave() {
        let mut rollout = planned(10_000, &[1, 10, 50, 100], "failed > 1% after 20");
        let (opened, end) = drive(&mut rollout, None);
        assert_eq!(opened, 4);
        assert!(matches!(end, RolloutState::Completed { .. }), "{end:?}");
    }

    #[test]
    fn two_percent_failing_halts_at_the_first_wave_past_the_rule() {
        // 1% of 10,000 is 100 nodes, enough for `after 20`; 2% fail.
        let mut rollout = planned(10_000, &[1, 10, 50, 100], "failed > 1% after 20");
        let (opened, end) = drive(&mut rollout, Some(50));
        assert_eq!(opened, 1, "halted in the first wave");
        let RolloutState::Halted { wave, reason, .. } = end else {
            panic!("{end:?}");
        };
        assert_eq!(wave, 0);
        assert!(
            reason.starts_with("2 of 100 nodes done failed (2.0%)"),
            "{reason}"
        );
        // A looser rule lets the same fleet through.
        let mut rollout = planned(10_000, &[1, 10, 50, 100], "failed > 5% after 20");
        let (opened, end) = drive(&mut rollout, Some(50));
        assert_eq!(opened, 4);
        assert!(matches!(end, RolloutState::Completed { .. }), "{end:?}");
    }

    #[test]
    fn a_wave_waits_for_its_nodes_but_not_for_ones_gone_offline() {
        let mut rollout = planned(4, &[50, 100], "failed > 50% after 2");
        let first: Vec<String> = rollout.nodes[..2].to_vec();
        let mut progress = BTreeMap::new();
        progress.insert(
            first[0].clone(),
            Progress {
                stage: Stage::Confirmed,
                reason: None,
                reported_at: 1_500,
                sequence: 1,
            },
        );
        assert_eq!(decide(&rollout, &progress, 2_000), Decision::Stay);
        // A day and a bit without a word from the other: it no longer holds
        // the wave, and `status` shows it as offline.
        let later = 1_000 + 24 * 3600 + 1;
        assert_eq!(
            decide(&rollout, &progress, later),
            Decision::Advance { to_wave: 1 }
        );
        let status = status(&rollout, &progress, later);
        assert_eq!(status.waves[0].counts.get("offline"), Some(&1));
        assert_eq!(status.waves[0].counts.get("confirmed"), Some(&1));
        assert!(!status.waves[1].open);
        apply(&mut rollout, &Decision::Advance { to_wave: 1 }, later);
        assert_eq!(rollout.state, RolloutState::Running { wave: 1 });
        // Its nodes count from when their wave opened, not from the
        // rollout's creation: just opened, they are not offline.
        let opened = super::status(&rollout, &progress, later + 10);
        assert_eq!(opened.waves[1].counts.get("offline"), None);
        assert_eq!(decide(&rollout, &progress, later + 10), Decision::Stay);
    }
}
