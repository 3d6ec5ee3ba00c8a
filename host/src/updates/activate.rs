//! Activation and what follows: when a staged update may swap in, the swap
//! (one transaction, then the pointer), probation's verdicts, confirm and
//! roll back, and the operator's go-ahead.

use super::*;

/// Why a staged update may not be activated now, if it may not.
pub fn activation_blocked(node: &Node, record: &UpdateRecord) -> Option<String> {
    if record.now {
        return None;
    }
    if let Some(lock) = node.update_lock.current() {
        return Some(format!(
            "an app holds the update lock ({}); it is swapped in when the lock is released",
            lock.holder
        ));
    }
    let window = node.config.updates.window()?;
    let now = jiff::Zoned::now();
    let minute = (now.hour() as u16) * 60 + now.minute() as u16;
    (!window.contains(minute))
        .then(|| format!("outside the maintenance window {window} (updates.window)"))
}

/// Decides what happens to a staged (or held, or deferred) update: hold it
/// for approval, defer it, or activate it.
pub fn proceed(node: &Node, record: UpdateRecord) -> Result<UpdateRecord, UpdateError> {
    proceed_with(node, record, None)
}

pub(super) fn proceed_with(
    node: &Node,
    mut record: UpdateRecord,
    plugin: Option<Arc<LoadedPlugin>>,
) -> Result<UpdateRecord, UpdateError> {
    // Waiting (held, deferred), a freshly staged version stays loaded.
    let keep = |plugin: Option<Arc<LoadedPlugin>>| {
        if let Some(plugin) = plugin {
            let replaced = lock_loaded(&node.staged).insert(plugin.id().clone(), plugin);
            if let Some(replaced) = replaced {
                node.table.retire(replaced);
            }
        }
    };
    if !record.approved {
        if record.state != UpdateState::Held {
            record.state = UpdateState::Held;
            record.reason = Some(format!("it asks for more: {}", record.asks.join("; ")));
            commit_transition(node, &mut record)?;
        }
        keep(plugin);
        return Ok(record);
    }
    if let Some(why) = activation_blocked(node, &record) {
        if record.state != UpdateState::Deferred || record.reason.as_deref() != Some(&why) {
            record.state = UpdateState::Deferred;
            record.reason = Some(why);
            commit_transition(node, &mut record)?;
        }
        keep(plugin);
        return Ok(record);
    }
    activate(node, record, plugin)
}

/// Activation: one transaction for the kv snapshot, `migrate`, `health`,
/// the install record and the new state; then the pointer swap.
fn activate(
    node: &Node,
    mut record: UpdateRecord,
    plugin: Option<Arc<LoadedPlugin>>,
) -> Result<UpdateRecord, UpdateError> {
    let id = record.plugin.clone();
    let Some(staged) = record.staged.clone() else {
        return Err(UpdateError::WrongState {
            plugin: id,
            to: record.to,
            state: record.state,
            wanted: "activated (nothing is staged)",
        });
    };
    let kept = lock_loaded(&node.staged).remove(&id);
    let kept = match kept {
        Some(kept)
            if kept.version == staged.version
                && kept.component_digest == staged.component_digest =>
        {
            Some(kept)
        }
        Some(other) => {
            node.table.retire(other);
            None
        }
        None => None,
    };
    let plugin = match plugin.or(kept) {
        Some(plugin) => plugin,
        None => match node.load(&id, &staged) {
            Ok((plugin, _)) => Arc::new(plugin),
            Err(why) => {
                let error = format!("the staged version cannot be loaded: {why}");
                refuse(node, &mut record, &error)?;
                return Ok(record);
            }
        },
    };
    advance(node, &mut record, UpdateState::Activating)?;
    match swap_in(node, &mut record, plugin, staged) {
        Ok(()) => Ok(record),
        Err(error) => {
            // A failure with no refusal committed (a full disk, a lost
            // transaction) must not leave the update `activating` until a
            // restart: nothing of the activation was committed.
            let still_activating = node
                .store
                .update(&record.plugin)
                .ok()
                .flatten()
                .is_some_and(|r| r.state == UpdateState::Activating);
            if still_activating
                && let Err(refusing) = refuse(
                    node,
                    &mut record,
                    &format!("its activation failed: {error}"),
                )
            {
                tracing::warn!(plugin = %record.plugin, "cannot record the failed activation ({refusing}); it is undone at the next start");
            }
            Err(error)
        }
    }
}

/// Activation's transaction and the swap (see [`activate`]).
fn swap_in(
    node: &Node,
    record: &mut UpdateRecord,
    plugin: Arc<LoadedPlugin>,
    staged: InstalledVersion,
) -> Result<(), UpdateError> {
    let id = record.plugin.clone();
    let existing = node.store.plugin(&id)?;
    let previous_loaded = node.table.loaded(&id);
    let from_version = existing.as_ref().map(|r| r.active.version.to_string());

    // A version on probation being replaced by hand keeps its fallback: the
    // last confirmed version, and the kv from before it.
    let fallback = match &existing {
        Some(existing) if existing.previous.is_some() && node.store.has_kv_snapshot(&id)? => {
            existing.previous.clone()
        }
        Some(existing) => Some(existing.active.clone()),
        None => None,
    };
    let txn = node.store.begin_write()?;
    if existing.is_some() && !node.store.has_kv_snapshot(&id)? {
        snapshot_kv(&txn, &id)?;
    }
    let (migrated, txn) =
        node.invoker
            .call_batched(&plugin, "migrate", txn, |store, instance, plugin| {
                let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                lifecycle.call_migrate(&mut *store, from_version.as_deref())
            });
    if let Err(error) = migrated {
        drop(txn);
        refuse(node, record, &format!("its migrate failed: {error}"))?;
        return Err(InstallError::Call(error).into());
    }
    crate::failpoint::reached("during:migrate");
    let lost = |during: &str| StoreError::Record {
        what: "the activation transaction".into(),
        detail: format!("it was lost during {during}"),
    };
    let txn = txn.ok_or_else(|| lost("migrate"))?;
    let (health, txn) =
        node.invoker
            .call_batched(&plugin, "health", txn, |store, instance, plugin| {
                let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                lifecycle.call_health(&mut *store).map(Ok)
            });
    let health = match health {
        Ok(health) if health.status != crate::bindings::lifecycle::HealthStatus::Failing => health,
        Ok(health) => {
            drop(txn);
            let error = InstallError::Unhealthy {
                id: id.clone(),
                version: record.to.clone(),
                detail: health.detail,
            };
            refuse(node, record, &error)?;
            return Err(error.into());
        }
        Err(error) => {
            drop(txn);
            refuse(node, record, &format!("its health check failed: {error}"))?;
            return Err(InstallError::Call(error).into());
        }
    };
    let txn = txn.ok_or_else(|| lost("health"))?;
    let now = now_ms();
    match &existing {
        Some(_) => {
            let baseline = previous_loaded
                .as_ref()
                .map(|p| (p.stats.calls(), p.stats.bad()))
                .unwrap_or((0, 0));
            // A rollout's probation is a floor like the manifest's.
            let mut asked = plugin.manifest.probation;
            if let Some(directed) = &record.directed {
                asked.seconds = Some(asked.seconds.unwrap_or(0).max(directed.probation_seconds));
            }
            record.probation = Some(probation::start(
                &node.config.updates,
                &asked,
                now,
                baseline,
            ));
            record.state = UpdateState::Probation;
            NodeStore::put_plugin(
                &txn,
                &PluginRecord {
                    id: id.clone(),
                    active: staged.clone(),
                    previous: fallback.clone(),
                },
            )?;
        }
        None => {
            // A new plugin has nothing to go back to: confirmed at once.
            record.state = UpdateState::Confirmed;
            NodeStore::put_plugin(
                &txn,
                &PluginRecord {
                    id: id.clone(),
                    active: staged.clone(),
                    previous: None,
                },
            )?;
        }
    }
    record.reason = Some(describe_health(&health));
    record.staged = None;
    record.updated_at_ms = now;
    write_transition(&txn, record)?;
    // A version replaced on probation is neither active nor the fallback.
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    node.table.put(PluginSlot::Loaded(plugin));
    {
        let mut fallbacks = lock_fallbacks(node);
        match (&fallback, previous_loaded) {
            (Some(fallback), Some(loaded)) if loaded.version == fallback.version => {
                if let Some(replaced) = fallbacks.insert(id.clone(), loaded) {
                    node.table.retire(replaced);
                }
            }
            // Replacing a version on probation: the version to go back to
            // is still the one kept before it.
            (Some(fallback), _)
                if fallbacks
                    .get(&id)
                    .is_some_and(|kept| kept.version == fallback.version) => {}
            _ => {
                if let Some(dropped) = fallbacks.remove(&id) {
                    node.table.retire(dropped);
                }
            }
        }
    }
    announce(node, record);
    crate::failpoint::reached(&format!("after:{}", record.state));
    Ok(())
}

pub(super) fn lock_fallbacks(
    node: &Node,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<PluginId, Arc<LoadedPlugin>>> {
    lock_loaded(&node.fallbacks)
}

/// Takes `id`'s version out of `map` (staged or fallbacks) and retires it,
/// so no call drops it (see `PluginTable::retire`).
pub(super) fn let_go(
    node: &Node,
    map: &std::sync::Mutex<std::collections::HashMap<PluginId, Arc<LoadedPlugin>>>,
    id: &PluginId,
) {
    let removed = lock_loaded(map).remove(id);
    if let Some(removed) = removed {
        node.table.retire(removed);
    }
}

pub(super) fn lock_loaded(
    map: &std::sync::Mutex<std::collections::HashMap<PluginId, Arc<LoadedPlugin>>>,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<PluginId, Arc<LoadedPlugin>>> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Confirms a version on probation: the previous version's code and the kv
/// snapshot are dropped.
pub fn confirm(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    let _changing = node.lock_changes();
    confirm_locked(node, plugin)
}

fn confirm_locked(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    let mut record = on_probation(node, plugin, "confirmed")?;
    let txn = node.store.begin_write()?;
    if let Some(mut installed) = node.store.plugin(plugin)? {
        installed.previous = None;
        NodeStore::put_plugin(&txn, &installed)?;
    }
    drop_kv_snapshot(&txn, plugin)?;
    let_go(node, &node.fallbacks, plugin);
    record.state = UpdateState::Confirmed;
    record.reason = Some("passed probation".into());
    record.updated_at_ms = now_ms();
    write_transition(&txn, &record)?;
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    announce(node, &record);
    tidy_after_change(node);
    Ok(record)
}

fn on_probation(
    node: &Node,
    plugin: &PluginId,
    wanted: &'static str,
) -> Result<UpdateRecord, UpdateError> {
    let record = node
        .store
        .update(plugin)?
        .ok_or_else(|| UpdateError::NoUpdate(plugin.clone()))?;
    if record.state != UpdateState::Probation {
        return Err(UpdateError::WrongState {
            plugin: plugin.clone(),
            to: record.to,
            state: record.state,
            wanted,
        });
    }
    Ok(record)
}

/// Goes back to the previous version and its kv, in one transaction; with
/// `block`, the version is not installed by an update again.
pub fn roll_back(
    node: &Node,
    plugin: &PluginId,
    reason: &str,
    block: bool,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node.lock_changes();
    roll_back_locked(node, plugin, reason, block)
}

/// Rolls back the update in flight of `plugin` only if it is rollout
/// `rollout`'s install of `version` (checked under the change lock, so an
/// operator's update that replaced it meanwhile is left alone). `None`
/// when it is not.
pub fn roll_back_directed(
    node: &Node,
    plugin: &PluginId,
    rollout: &str,
    version: &semver::Version,
    reason: &str,
) -> Result<Option<UpdateRecord>, UpdateError> {
    let _changing = node.lock_changes();
    let ours = node.store.update(plugin)?.is_some_and(|update| {
        update.to == *version
            && update.state != UpdateState::Activating
            && update
                .directed
                .as_ref()
                .is_some_and(|directed| directed.rollout == rollout && directed.back_from.is_none())
    });
    if !ours {
        return Ok(None);
    }
    roll_back_locked(node, plugin, reason, true).map(Some)
}

fn roll_back_locked(
    node: &Node,
    plugin: &PluginId,
    reason: &str,
    block: bool,
) -> Result<UpdateRecord, UpdateError> {
    let Some(mut record) = node.store.update(plugin)? else {
        let installed = node
            .store
            .plugin(plugin)?
            .ok_or_else(|| UpdateError::NotInstalled(plugin.clone()))?;
        return Err(UpdateError::NothingToRollBackTo {
            plugin: plugin.clone(),
            version: installed.active.version,
        });
    };
    if record.state != UpdateState::Probation {
        // Not active yet: dropping it is the rollback.
        if record.state.is_final() || record.state == UpdateState::Activating {
            return Err(UpdateError::WrongState {
                plugin: plugin.clone(),
                to: record.to,
                state: record.state,
                wanted: "rolled back",
            });
        }
        record.now = !block;
        refuse(node, &mut record, &reason)?;
        tidy_after_change(node);
        return Ok(record);
    }
    let installed = node
        .store
        .plugin(plugin)?
        .ok_or_else(|| UpdateError::NotInstalled(plugin.clone()))?;
    let Some(previous) = installed.previous.clone() else {
        return Err(UpdateError::NothingToRollBackTo {
            plugin: plugin.clone(),
            version: installed.active.version,
        });
    };
    // Loaded before anything is committed: if the old version cannot load,
    // the new one keeps serving and the operator is told.
    let kept = lock_fallbacks(node)
        .get(plugin)
        .filter(|kept| {
            kept.version == previous.version && kept.component_digest == previous.component_digest
        })
        .cloned();
    let old = match kept {
        Some(kept) => kept,
        // After a restart nothing is kept: load it from the compile cache.
        None => Arc::new(
            node.load(plugin, &previous)
                .map_err(|why| StoreError::Record {
                    what: format!("{plugin} {}", previous.version),
                    detail: format!("the previous version cannot be loaded: {why}"),
                })?
                .0,
        ),
    };
    let txn = node.store.begin_write()?;
    restore_kv(&txn, plugin)?;
    NodeStore::put_plugin(
        &txn,
        &PluginRecord {
            id: plugin.clone(),
            active: previous,
            previous: None,
        },
    )?;
    if block {
        block_version(&txn, plugin, &record.to, reason)?;
    }
    record.state = UpdateState::RolledBack;
    record.reason = Some(reason.to_string());
    record.updated_at_ms = now_ms();
    write_transition(&txn, &record)?;
    NodeStore::drop_unreferenced_components(&txn)?;
    node.store.commit(txn)?;
    node.table.put(PluginSlot::Loaded(old));
    let_go(node, &node.fallbacks, plugin);
    announce(node, &record);
    tidy_after_change(node);
    Ok(record)
}

/// The operator agrees to what a held update asks for; it proceeds (and is
/// activated now: the operator is there).
pub fn approve(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    go_ahead(node, plugin, "approved", true)
}

/// Activates a staged or deferred update now, whatever the window or lock.
/// A held one still needs `approve`.
pub fn apply(node: &Node, plugin: &PluginId) -> Result<UpdateRecord, UpdateError> {
    go_ahead(node, plugin, "applied", false)
}

/// An operator's go-ahead for a staged, held or deferred update: now, and
/// with `approving`, granting what it asks.
fn go_ahead(
    node: &Node,
    plugin: &PluginId,
    wanted: &'static str,
    approving: bool,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node.lock_changes();
    let mut record = node
        .store
        .update(plugin)?
        .ok_or_else(|| UpdateError::NoUpdate(plugin.clone()))?;
    if !matches!(
        record.state,
        UpdateState::Held | UpdateState::Deferred | UpdateState::Staged
    ) {
        return Err(UpdateError::WrongState {
            plugin: plugin.clone(),
            to: record.to,
            state: record.state,
            wanted,
        });
    }
    record.approved |= approving;
    record.now = true;
    let result = proceed(node, record);
    tidy_after_change(node);
    result
}

/// Activates staged and deferred updates that policy allows now (the agent
/// calls this as windows open and locks are released).
pub fn activate_due(node: &Node) -> Vec<Result<UpdateRecord, UpdateError>> {
    let due = match node.store.updates() {
        Ok(records) => records
            .iter()
            .any(|r| matches!(r.state, UpdateState::Staged | UpdateState::Deferred) && r.approved),
        Err(error) => return vec![Err(error.into())],
    };
    if !due {
        return Vec::new();
    }
    let records = match node.store.updates() {
        Ok(records) => records,
        Err(error) => return vec![Err(error.into())],
    };
    let mut results = Vec::new();
    for record in records {
        if !matches!(record.state, UpdateState::Staged | UpdateState::Deferred) || !record.approved
        {
            continue;
        }
        if record.state == UpdateState::Deferred && activation_blocked(node, &record).is_some() {
            continue;
        }
        let _changing = node.lock_changes();
        // Read again under the lock: an operator may have moved it on.
        match node.store.update(&record.plugin) {
            Ok(Some(current)) if current == record => results.push(proceed(node, current)),
            Ok(_) => {}
            Err(error) => results.push(Err(error.into())),
        }
        tidy_after_change(node);
    }
    results
}

/// Takes one look at a version on probation and acts on the verdict.
/// `health` is a health check made now, if one was due.
pub fn judge(
    node: &Node,
    plugin: &PluginId,
    health: Option<probation::HealthSeen>,
) -> Result<Option<UpdateRecord>, UpdateError> {
    // Under the change lock from the read to the verdict's commit, so an
    // operator's rollback, install or removal in between is not undone, and
    // the verdict applies to the version it was made on.
    let _changing = node.lock_changes();
    let Some(mut record) = node.store.update(plugin)? else {
        return Ok(None);
    };
    if record.state != UpdateState::Probation {
        return Ok(None);
    }
    let Some(loaded) = node.table.loaded(plugin).filter(|p| p.version == record.to) else {
        return Ok(None);
    };
    let Some(mut seen) = record.probation.clone() else {
        return Ok(None);
    };
    seen.calls = seen.carried_calls + loaded.stats.calls();
    seen.bad = seen.carried_bad + loaded.stats.bad();
    let verdict = probation::judge(
        &node.config.updates,
        &seen,
        now_ms(),
        health.as_ref(),
        loaded.stats.last_failure().as_deref(),
    );
    match verdict {
        probation::Verdict::Continue => {
            if record.probation.as_ref() != Some(&seen) {
                record.probation = Some(seen);
                let txn = node.store.begin_write()?;
                crate::store::put_update(&txn, &record)?;
                node.store.commit(txn)?;
            }
            Ok(None)
        }
        probation::Verdict::Confirm => confirm_locked(node, plugin).map(Some),
        probation::Verdict::RollBack(why) => roll_back_locked(node, plugin, &why, true).map(Some),
    }
}
