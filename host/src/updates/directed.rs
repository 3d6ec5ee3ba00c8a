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
//! goes back only from the rollout's own release, to the version it ran
//! before it (from its own update history).

use super::agent::{blocking, download_and_offer};
use super::{UpdateError, begin, roll_back};
use crate::fleet::report::{Tell, queue, stage_of};
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::store::{Directed, UpdateState};
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
/// `registry` as the source of the code.
pub async fn act(node: &Arc<Node>, registry: &url::Url, state: &DesiredState) -> Vec<Acted> {
    let mut acted = Vec::new();
    for release in &state.releases {
        let outcome = match act_on(node, registry, release).await {
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
    release: &DesiredRelease,
) -> Result<String, UpdateError> {
    let plugin = PluginId::parse(&release.plugin).map_err(|e| {
        UpdateError::Check(format!(
            "the desired state names {:?}, which is not a plugin id: {e}",
            release.plugin
        ))
    })?;
    match release.action {
        Action::Install => install(node, registry, &plugin, release).await,
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

async fn install(
    node: &Arc<Node>,
    registry: &url::Url,
    plugin: &PluginId,
    release: &DesiredRelease,
) -> Result<String, UpdateError> {
    let installed = node.store().plugin(plugin)?;
    let in_flight = node.store().update(plugin)?;
    if let Some(update) = &in_flight
        && update.to == release.version
        && !update.state.is_final()
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
            let why = format!(
                "this node runs {}, newer than {}; a rollout does not take a node to an older version",
                installed.active.version, release.version
            );
            tell(node, release, Stage::Failed, Some(why.clone())).await?;
            return Ok(format!("refused: {why}"));
        }
    }
    if let Some(why) = node.store().blocked_versions(plugin)?.get(&release.version) {
        let why = format!(
            "this node blocked {} after it failed here: {why}",
            release.version
        );
        tell(node, release, Stage::Failed, Some(why.clone())).await?;
        return Ok(format!("refused: {why}"));
    }
    if let Some(update) = &in_flight
        && matches!(
            update.state,
            UpdateState::Activating | UpdateState::Probation
        )
    {
        return Ok(format!(
            "waits: {} is {} on this node",
            update.to, update.state
        ));
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

/// The version this node ran before it took `version` of `plugin`, from
/// its update history.
fn version_before(
    node: &Node,
    plugin: &PluginId,
    version: &semver::Version,
) -> Result<Option<semver::Version>, UpdateError> {
    let history = node.store().update_history(Some(plugin), 1000)?;
    Ok(history
        .iter()
        .rev()
        .filter(|line| &line.to == version)
        .find_map(|line| line.from.clone().filter(|from| from != version)))
}

async fn go_back(
    node: &Arc<Node>,
    registry: &url::Url,
    plugin: &PluginId,
    release: &DesiredRelease,
) -> Result<String, UpdateError> {
    let why = format!("rollout {} was stopped", release.rollout);
    let in_flight = node.store().update(plugin)?;
    if let Some(update) = &in_flight
        && update.to == release.version
        && !update.state.is_final()
        && update.state != UpdateState::Activating
    {
        // On probation, or not active yet: the update machine's own
        // rollback (back to the kept version and its data), blocking the
        // release here.
        let (node, plugin) = (node.clone(), plugin.clone());
        let record = blocking(move || roll_back(&node, &plugin, &why, true)).await?;
        return Ok(format!("{} {}", record.to, record.state));
    }
    if let Some(update) = &in_flight
        && update
            .directed
            .as_ref()
            .is_some_and(|d| d.back_from.as_ref() == Some(&release.version))
        && !update.state.is_final()
    {
        return Ok(format!("going back: {} is {}", update.to, update.state));
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
    // Confirmed already: the version before it comes back as an update,
    // from the vendor's signed releases like any other. The release is
    // blocked here first, so following a requirement does not take it
    // again.
    {
        let (node, plugin, version) = (node.clone(), plugin.clone(), release.version.clone());
        blocking(move || {
            let txn = node.store().begin_write()?;
            crate::store::block_version(&txn, &plugin, &version, &why)?;
            node.store().commit(txn)?;
            Ok(())
        })
        .await?;
    }
    let Some(before) = version_before(node, plugin, &release.version)? else {
        let why = format!(
            "{plugin} {} has no earlier version in this node's update history to go back to",
            release.version
        );
        tell(node, release, Stage::Failed, Some(why.clone())).await?;
        return Ok(format!("cannot go back: {why}"));
    };
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
