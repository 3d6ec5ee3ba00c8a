//! What a node does with its fleet's desired state: each release the
//! director names goes through the same update machine as any other
//! (staged while the old version serves, held for approval when it asks
//! for more, on probation, rolled back by itself), and every transition is
//! reported to the fleet ([`crate::fleet::report`]).
//!
//! The node still trusts only its vendors for code: a release is installed
//! only when the vendor's signed metadata has it with the very manifest
//! digest the director named. And it takes from the director only what a
//! rollout may ask: install a newer release, or go back from one. It never
//! installs an older version than it runs on a director's word alone; it
//! goes back only from a release that rollout itself installed, to the
//! version it ran before (from its own update history), and never past a
//! version it blocked. An update of the operator's, or one following a
//! requirement, goes first; the rollout's waits.

use super::agent::{blocking, download_and_offer};
use super::{UpdateError, begin};
use crate::fleet::report::{Tell, queue, stage_of};
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::store::{Directed, UpdateState};
use outpost_registry::client::Index;
use outpost_registry::desired::{Action, DesiredRelease, DesiredState};
use outpost_registry::rollout::Stage;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the node did about one release of its desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acted {
    pub rollout: String,
    pub release: String,
    pub action: Action,
    /// "installing: 1.3.0 probation", "already runs it", "went back to 1.2.0", …
    pub outcome: String,
}

/// Acts on every release of `state`, one at a time, with the registry at
/// `registry` as the source of the code and `index` its vendors' signed
/// releases, as just verified.
pub async fn act(
    node: &Arc<Node>,
    registry: &url::Url,
    index: &Index,
    state: &DesiredState,
) -> Vec<Acted> {
    let mut acted = Vec::new();
    for release in &state.releases {
        let outcome = match act_on(node, registry, index, release).await {
            Ok(outcome) => outcome,
            Err(error) => format!("failed: {error}"),
        };
        tracing::info!(rollout = %release.rollout, plugin = %release.plugin, version = %release.version, action = ?release.action, "fleet: {outcome}");
        acted.push(Acted {
            rollout: release.rollout.clone(),
            release: format!("{}@{}", release.plugin, release.version),
            action: release.action.clone(),
            outcome,
        });
    }
    acted
}

async fn act_on(
    node: &Arc<Node>,
    registry: &url::Url,
    index: &Index,
    release: &DesiredRelease,
) -> Result<String, UpdateError> {
    let plugin = PluginId::parse(&release.plugin).map_err(|e| {
        UpdateError::Check(format!(
            "the desired state names {:?}, which is not a plugin id: {e}",
            release.plugin
        ))
    })?;
    match release.action {
        Action::Install => install(node, registry, index, &plugin, release).await,
        Action::RollBack => go_back(node, registry, &plugin, release).await,
    }
}

/// Tells the rollout where the node is, unless it already knows.
async fn tell(
    node: &Arc<Node>,
    release: &DesiredRelease,
    stage: Stage,
    reason: Option<String>,
) -> Result<(), UpdateError> {
    let (node, release) = (node.clone(), release.clone());
    blocking(move || {
        let tell = Tell {
            rollout: &release.rollout,
            plugin: &release.plugin,
            version: &release.version,
            stage,
            reason,
        };
        queue(node.store(), node.outbox(), node.data_dir(), tell)
            .map(drop)
            .map_err(|e| UpdateError::Check(format!("cannot queue the fleet report: {e}")))
    })
    .await
}

/// Refuses `release` for `why`: reported as failed, nothing on the node
/// changed.
async fn refuse(
    node: &Arc<Node>,
    release: &DesiredRelease,
    why: String,
) -> Result<String, UpdateError> {
    tell(node, release, Stage::Failed, Some(why.clone())).await?;
    Ok(format!("refused: {why}"))
}

async fn install(
    node: &Arc<Node>,
    registry: &url::Url,
    index: &Index,
    plugin: &PluginId,
    release: &DesiredRelease,
) -> Result<String, UpdateError> {
    let installed = node.store().plugin(plugin)?;
    let in_flight = node.store().update(plugin)?;
    let ours = |update: &crate::store::UpdateRecord| {
        update.to == release.version
            && update.directed.as_ref().is_some_and(|directed| {
                directed.rollout == release.rollout && directed.back_from.is_none()
            })
    };
    if let Some(update) = &in_flight
        && ours(update)
    {
        // Under way: its transitions report themselves; this covers a
        // report a crash kept from being queued.
        tell(node, release, stage_of(update.state), update.reason.clone()).await?;
        return Ok(format!("{} is {}", update.to, update.state));
    }
    if let Some(installed) = &installed {
        if installed.active.version == release.version {
            tell(node, release, Stage::Confirmed, None).await?;
            return Ok(format!("runs {}", release.version));
        }
        if installed.active.version > release.version {
            // Ahead already (it follows a newer release): not a failure of
            // the rollout's release, and not a reason to go back.
            let why = format!("runs {}, newer", installed.active.version);
            tell(node, release, Stage::Confirmed, Some(why.clone())).await?;
            return Ok(why);
        }
    }
    if let Some(update) = &in_flight {
        // Someone else's update (the operator's, or one following a
        // requirement) goes first; the rollout's waits for it, and hears
        // why.
        let why = format!("waits: {} is {} on this node", update.to, update.state);
        tell(node, release, Stage::Held, Some(why.clone())).await?;
        return Ok(why);
    }
    // What the director names must be what the vendor signed, checked
    // before anything on the node changes.
    let Some(signed) = index
        .releases
        .iter()
        .find(|r| r.plugin == release.plugin && r.version == release.version)
    else {
        return refuse(
            node,
            release,
            format!(
                "{}@{} is not a release its vendor signed (the fleet's director named it); nothing was installed",
                release.plugin, release.version
            ),
        )
        .await;
    };
    if signed.digest() != release.digest {
        return refuse(
            node,
            release,
            format!(
                "the fleet's director named {}@{} with manifest {}, but its vendor signed {}; nothing was installed",
                release.plugin,
                release.version,
                release.digest,
                signed.digest()
            ),
        )
        .await;
    }
    if let Some(why) = node.store().blocked_versions(plugin)?.get(&release.version) {
        let why = format!(
            "this node blocked {} after it failed here: {why}",
            release.version
        );
        return refuse(node, release, why).await;
    }
    let directed = Directed {
        rollout: release.rollout.clone(),
        probation_seconds: release.probation_seconds,
        back_from: None,
    };
    let found = {
        let (node, plugin, version) = (node.clone(), plugin.clone(), release.version.clone());
        let source = format!("rollout {} via registry {registry}", release.rollout);
        blocking(move || begin(&node, &plugin, &version, &source, false, Some(directed))).await?
    };
    download_and_offer(node, registry, found, Some(&release.digest)).await
}

/// The version this node ran before rollout `rollout` took `plugin` to
/// `version`: the newest history line that made `version` active must be
/// that rollout's (not an operator's reinstall, not a way back), and its
/// `from` is the only version a stopped rollout may take the node back to.
/// A way back is no rollout's line, so a node goes back one step at most.
fn version_before(
    node: &Node,
    plugin: &PluginId,
    rollout: &str,
    version: &semver::Version,
) -> Result<Option<semver::Version>, UpdateError> {
    let history = node.store().update_history(Some(plugin), usize::MAX)?;
    let made_active = history.iter().rev().find(|line| {
        &line.to == version && matches!(line.state, UpdateState::Probation | UpdateState::Confirmed)
    });
    Ok(made_active
        .filter(|line| line.rollout.as_deref() == Some(rollout))
        .and_then(|line| line.from.clone())
        .filter(|from| from < version))
}

async fn go_back(
    node: &Arc<Node>,
    registry: &url::Url,
    plugin: &PluginId,
    release: &DesiredRelease,
) -> Result<String, UpdateError> {
    let why = format!("rollout {} was stopped", release.rollout);
    // The rollout's own update, on probation or not active yet: the update
    // machine's rollback (back to the kept version and its data), blocking
    // the release here. Checked again under the change lock.
    let rolled = {
        let (node, plugin, release, why) =
            (node.clone(), plugin.clone(), release.clone(), why.clone());
        blocking(move || {
            super::roll_back_directed(&node, &plugin, &release.rollout, &release.version, &why)
        })
        .await?
    };
    if let Some(record) = rolled {
        if record.state == UpdateState::Refused {
            // Stopped before it was active: the node never left its version.
            tell(
                node,
                release,
                Stage::RolledBack,
                Some(format!("stopped before it was active: {why}")),
            )
            .await?;
        }
        return Ok(format!("{} {}", record.to, record.state));
    }
    if let Some(update) = node.store().update(plugin)? {
        return Ok(format!(
            "waits: {} is {} on this node",
            update.to, update.state
        ));
    }
    let Some(installed) = node.store().plugin(plugin)? else {
        return Ok("not installed".into());
    };
    if installed.active.version != release.version {
        // Never took it, or already went back: the rollout hears of it
        // only if it heard the node had it.
        if let Some(last) = node.store().reported(&release.rollout)?
            && !last.stage.failed()
            && last.stage != Stage::Pending
        {
            tell(
                node,
                release,
                Stage::RolledBack,
                Some(format!("runs {}", installed.active.version)),
            )
            .await?;
        }
        return Ok(format!("runs {}", installed.active.version));
    }
    // Confirmed already: the version it ran before this rollout comes back
    // as an update, from the vendor's signed releases like any other.
    let Some(before) = version_before(node, plugin, &release.rollout, &release.version)? else {
        let why = format!(
            "{plugin} {} did not come from rollout {} on this node (or its history no longer says from what), so the node keeps it",
            release.version, release.rollout
        );
        return refuse(node, release, why).await;
    };
    if let Some(blocked) = node.store().blocked_versions(plugin)?.get(&before) {
        let why = format!("the version before, {before}, is blocked here: {blocked}");
        return refuse(node, release, why).await;
    }
    let directed = Directed {
        rollout: release.rollout.clone(),
        probation_seconds: 0,
        back_from: Some(release.version.clone()),
    };
    let found = {
        let (node, plugin, before) = (node.clone(), plugin.clone(), before.clone());
        let source = format!(
            "rollout {} (going back) via registry {registry}",
            release.rollout
        );
        // Approved: it ran here before with what it asks.
        blocking(move || begin(&node, &plugin, &before, &source, true, Some(directed))).await?
    };
    let outcome = download_and_offer(node, registry, found, None).await?;
    Ok(format!("going back to {before}: {outcome}"))
}
