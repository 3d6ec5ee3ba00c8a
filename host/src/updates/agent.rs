//! The update agent: the node's background work for updates. It looks for
//! newer releases of the plugins that follow a version requirement (on an
//! interval with jitter, with back-off while the registry cannot be reached,
//! and at once when the network answers again), stages them while the old
//! versions serve, activates what policy allows when it allows it, and
//! judges versions on probation.

use super::{Offer, UpdateError, abandon, begin, judge};
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::releases::{self, ReleaseError, Source, Wanted};
use crate::store::UpdateState;
use outpost_registry::client::{Index, MetadataSource};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often probation and deferred updates are looked at.
const TICK: Duration = Duration::from_millis(500);
/// How often a version on probation has its health export called.
const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// The first wait after a failed check; it doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(30);

/// The wait before the next check after `failures` failed ones in a row
/// (at least one): 30 s, doubling, never past the check `interval`.
pub fn retry_wait(failures: u32, interval: Duration) -> Duration {
    (FIRST_RETRY * 2u32.saturating_pow(failures.clamp(1, 16) - 1)).min(interval)
}

/// What one check found for one followed plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub plugin: String,
    pub follows: String,
    /// "up to date", "staged 1.3.0", "held 1.3.0: …", "refused 1.3.0: …".
    pub outcome: String,
}

/// The plugins that follow a requirement: `updates.follow` in the
/// configuration, then what `outpost plugin follow` set (which wins).
pub fn following(node: &Node) -> Result<BTreeMap<PluginId, String>, UpdateError> {
    let mut follows = BTreeMap::new();
    for (plugin, requirement) in &node.config().updates.follow {
        if let Ok(id) = PluginId::parse(plugin) {
            follows.insert(id, requirement.clone());
        }
    }
    follows.extend(node.store().follows()?);
    Ok(follows)
}

/// What the agent's last full check accepted: a new check first fetches only
/// `timestamp.json`, and while it is the one accepted then (and the metadata
/// has not expired) nothing in the repository changed, so the verified index
/// is still the answer. A check that finds nothing new then costs one small
/// GET instead of a full TUF refresh (root, timestamp, snapshot, every
/// targets file): well under 2 KB on the wire.
#[derive(Debug, Clone)]
pub struct LastCheck {
    registry: url::Url,
    /// The root of trust it was verified under: a new one (`trust init`)
    /// means a full refresh.
    root: String,
    timestamp: serde_json::Value,
    index: Index,
}

/// Asks the registry once for newer releases of every followed plugin, and
/// stages what it finds. One check runs at a time. An operator's check
/// (`outpost update check`) always refreshes the metadata in full.
pub async fn check(node: &Arc<Node>) -> Result<Vec<Checked>, UpdateError> {
    check_since(node, &mut None).await
}

/// Like [`check`], reusing `last` when the registry's timestamp has not
/// changed since, and keeping what this check accepted in it.
pub async fn check_since(
    node: &Arc<Node>,
    last: &mut Option<LastCheck>,
) -> Result<Vec<Checked>, UpdateError> {
    let _checking = node.checking.lock().await;
    let follows = following(node)?;
    if follows.is_empty() {
        return Ok(Vec::new());
    }
    let settings = node
        .store()
        .trust_settings()?
        .ok_or_else(|| store_error("the node trusts no registry yet (`outpost trust init`)"))?;
    let registry = settings
        .registry
        .ok_or_else(|| store_error(&ReleaseError::NoRegistry.to_string()))?;
    let url = releases::parse_registry_url(&registry).map_err(release_error)?;
    let unchanged = match last.as_ref() {
        Some(last)
            if last.registry == url
                && last.root == settings.root
                && last.index.expires > jiff::Timestamp::now() =>
        {
            current_timestamp(node, &url).await? == last.timestamp
        }
        _ => false,
    };
    let index = match last.as_ref() {
        Some(last) if unchanged => last.index.clone(),
        _ => {
            let index = releases::refresh(node.store(), &MetadataSource::Registry(url.clone()))
                .await
                .map_err(release_error)?;
            *last = accepted_timestamp(node).map(|timestamp| LastCheck {
                registry: url.clone(),
                root: settings.root.clone(),
                timestamp,
                index: index.clone(),
            });
            index
        }
    };
    let mut checked = Vec::new();
    for (plugin, requirement) in follows {
        let outcome = check_one(node, &url, &index, &plugin, &requirement).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => format!("failed: {error}"),
        };
        checked.push(Checked {
            plugin: plugin.to_string(),
            follows: requirement,
            outcome,
        });
    }
    Ok(checked)
}

/// The registry's `timestamp.json` now, as JSON (not verified: it is only
/// compared with one that was).
async fn current_timestamp(
    node: &Node,
    registry: &url::Url,
) -> Result<serde_json::Value, UpdateError> {
    let tls = releases::client_tls(node.store()).map_err(release_error)?;
    let fetcher = outpost_registry::client::Fetcher::new(&node.data_dir().join("downloads"), &tls)
        .map_err(|e| store_error(&e.to_string()))?;
    let bytes = fetcher
        .metadata_file(registry, "timestamp.json")
        .await
        .map_err(|e| store_error(&e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| store_error(&format!("timestamp.json: {e}")))
}

/// The timestamp the last refresh accepted, as the node keeps it.
fn accepted_timestamp(node: &Node) -> Option<serde_json::Value> {
    let seen = node.store().trust_seen().ok()?;
    serde_json::from_slice(seen.get("timestamp.json")?).ok()
}

fn store_error(detail: &str) -> UpdateError {
    UpdateError::Check(detail.to_string())
}

fn release_error(error: ReleaseError) -> UpdateError {
    UpdateError::Check(error.to_string())
}

async fn check_one(
    node: &Arc<Node>,
    url: &url::Url,
    index: &Index,
    plugin: &PluginId,
    requirement: &str,
) -> Result<String, UpdateError> {
    let versions = semver::VersionReq::parse(requirement).map_err(|e| {
        store_error(&format!(
            "{requirement:?} is not a version requirement: {e}"
        ))
    })?;
    let Some(installed) = node.store().plugin(plugin)? else {
        return Ok("not installed; install it first".into());
    };
    let in_flight = node.store().update(plugin)?;
    if let Some(update) = &in_flight
        && matches!(
            update.state,
            UpdateState::Activating | UpdateState::Probation
        )
    {
        return Ok(format!("{} is on {}", update.to, update.state));
    }
    // A fleet rollout's update in flight is not replaced by following: the
    // two would take turns superseding each other.
    if let Some(update) = &in_flight
        && let Some(directed) = &update.directed
    {
        return Ok(format!(
            "{} is {} for rollout {}",
            update.to, update.state, directed.rollout
        ));
    }
    let blocked = node.store().blocked_versions(plugin)?;
    let newest = index
        .releases
        .iter()
        .filter(|r| {
            r.plugin == plugin.as_str()
                && versions.matches(&r.version)
                && r.version > installed.active.version
                && !blocked.contains_key(&r.version)
        })
        .max_by(|a, b| a.version.cmp(&b.version));
    let Some(release) = newest else {
        return Ok(format!("up to date ({})", installed.active.version));
    };
    if let Some(update) = &in_flight
        && update.to == release.version
        && matches!(
            update.state,
            UpdateState::Staged | UpdateState::Held | UpdateState::Deferred
        )
    {
        return Ok(format!("{} is {}", update.to, update.state));
    }
    let source = format!("registry {url}");
    let found = {
        let (node, plugin, version, source) = (
            node.clone(),
            plugin.clone(),
            release.version.clone(),
            source.clone(),
        );
        blocking(move || begin(&node, &plugin, &version, &source, false, None)).await?
    };
    download_and_offer(node, url, found, None).await
}

/// Downloads the release `found` names from the registry at `url`
/// (verified against the vendor's signed metadata, and, given
/// `expected_digest`, against that manifest digest too) and offers it to
/// the update machine. What became of it, in a few words.
pub(super) async fn download_and_offer(
    node: &Arc<Node>,
    url: &url::Url,
    found: crate::store::UpdateRecord,
    expected_digest: Option<&str>,
) -> Result<String, UpdateError> {
    let (plugin, version, source) = (found.plugin.clone(), found.to.clone(), found.source.clone());
    let wanted = Wanted {
        plugin: plugin.to_string(),
        versions: semver::VersionReq::parse(&format!("={version}"))
            .map_err(|e| store_error(&e.to_string()))?,
    };
    let fetched = releases::fetch(
        node.store(),
        &node.data_dir().join("downloads"),
        &Source::Registry {
            url: url.clone(),
            wanted,
        },
        &|progress| {
            if progress.done > 0 && progress.done < progress.total {
                crate::failpoint::reached("during:download");
            }
        },
    )
    .await;
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err(error) => {
            let (node, why) = (node.clone(), error.to_string());
            blocking(move || abandon(&node, found, &why).map_err(UpdateError::from)).await?;
            return Ok(format!(
                "{plugin}@{version} could not be downloaded: {error}"
            ));
        }
    };
    let folder = fetched.package.clone();
    if let Some(expected) = expected_digest
        && fetched.release.digest() != expected
    {
        let _ = std::fs::remove_dir_all(&folder);
        let why = format!(
            "the fleet's director named {plugin}@{version} with manifest {expected}, but its vendor signed {}; only a release both name is installed",
            fetched.release.digest()
        );
        let (node, reason) = (node.clone(), why.clone());
        blocking(move || abandon(&node, found, &reason).map_err(UpdateError::from)).await?;
        return Ok(format!("{plugin}@{version} refused: {why}"));
    }
    let outcome = {
        let (node, folder) = (node.clone(), folder.clone());
        blocking(move || {
            let offer = Offer {
                folder: &folder,
                source,
                approved: false,
                now: false,
            };
            super::offer(&node, offer, Some(found))
        })
        .await
    };
    let _ = std::fs::remove_dir_all(&folder);
    Ok(match outcome {
        Ok(record) => match &record.reason {
            Some(reason) => format!("{} {}: {reason}", record.to, record.state),
            None => format!("{} {}", record.to, record.state),
        },
        Err(error) => format!("{plugin}@{version} refused: {error}"),
    })
}

/// Runs `work` on the blocking pool (compiles and commits block).
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, UpdateError> + Send + 'static,
) -> Result<T, UpdateError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| UpdateError::Check(format!("the update task stopped: {e}")))?
}

/// The interval with a tenth either way, so a fleet spreads its checks.
pub fn jittered(interval: Duration) -> Duration {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    let unit = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX); // 0..=1
    interval.mul_f64(0.9 + 0.2 * unit)
}

/// Runs until `shutdown` resolves.
pub async fn run(node: Arc<Node>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let interval = Duration::from_secs(node.config().updates.check_interval_minutes * 60);
    // The first check soon after start, spread a little.
    let mut next_check = Instant::now() + jittered(Duration::from_secs(2));
    let mut failures: u32 = 0;
    let mut last_health: HashMap<PluginId, Instant> = HashMap::new();
    let mut last_check: Option<LastCheck> = None;
    // A version left on probation with nothing judging it (a crash between an
    // operator's offer superseding it and that offer's refusal) is judged
    // again from now.
    let resuming = node.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for record in resuming.store().plugins().unwrap_or_default() {
            if record.previous.is_some() {
                super::resume_orphaned_probation(&resuming, &record.id);
            }
        }
    })
    .await;
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = node.update_lock.released.notified() => {}
            () = node.outbox().network_answered.notified(), if failures > 0 => {
                next_check = Instant::now();
            }
            () = &mut shutdown => return,
        }
        let watcher = node.clone();
        let due: HashMap<PluginId, bool> = node
            .store()
            .updates()
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.state == UpdateState::Probation)
            .map(|u| {
                let health_due = last_health
                    .get(&u.plugin)
                    .is_none_or(|at| at.elapsed() >= HEALTH_EVERY);
                (u.plugin, health_due)
            })
            .collect();
        for (plugin, health_due) in &due {
            if *health_due {
                last_health.insert(plugin.clone(), Instant::now());
            }
        }
        last_health.retain(|plugin, _| due.contains_key(plugin));
        let looked = tokio::task::spawn_blocking(move || {
            watcher.table.bury();
            for (plugin, health_due) in due {
                let health = health_due.then(|| health_now(&watcher, &plugin)).flatten();
                if let Err(error) = judge(&watcher, &plugin, health) {
                    tracing::warn!(%plugin, "cannot judge the version on probation: {error}");
                }
            }
            for result in super::activate_due(&watcher) {
                if let Err(error) = result {
                    tracing::warn!("an update could not be activated: {error}");
                }
            }
        })
        .await;
        if looked.is_err() {
            return;
        }
        // A drill: the registry is out of reach; check once it is over.
        if Instant::now() < next_check || node.is_offline() {
            continue;
        }
        match check_since(&node, &mut last_check).await {
            Ok(checked) => {
                failures = 0;
                for line in checked {
                    tracing::debug!(plugin = line.plugin, "update check: {}", line.outcome);
                }
                next_check = Instant::now() + jittered(interval);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let wait = retry_wait(failures, interval);
                tracing::warn!(
                    "cannot check for updates: {error}; trying again in {} s (the plugins \
                     installed keep serving)",
                    wait.as_secs()
                );
                next_check = Instant::now() + jittered(wait);
            }
        }
    }
}

/// The health export of the version on probation, as probation sees it.
fn health_now(node: &Node, plugin: &PluginId) -> Option<super::probation::HealthSeen> {
    let loaded = node.loaded(plugin)?;
    Some(match node.health(&loaded) {
        Ok(report) if report.status == crate::bindings::lifecycle::HealthStatus::Failing => {
            Err(crate::health::describe_health(&report))
        }
        Ok(_) => Ok(()),
        Err(error) if error.is_sandbox_stop() => Err(error.to_string()),
        // Busy: the plugin is serving; not a verdict on its health.
        Err(_) => return None,
    })
}
