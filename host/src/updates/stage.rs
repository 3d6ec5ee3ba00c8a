//! Staging: a package read, verified, compiled and kept beside the active
//! version (found → downloaded → verified → compiled → staged), then handed
//! to activation.

use super::*;

/// Installs the package at `offer.folder` through the whole machine, under
/// the node's change lock: stages it, then activates it if it asks for
/// nothing the operator has not agreed to and policy allows it now. Returns
/// the record as it stands (`held`, `deferred`, `probation`, `confirmed`),
/// or the refusal (committed as `refused`, the active version untouched).
pub fn offer(
    node: &Node,
    offer: Offer<'_>,
    found: Option<UpdateRecord>,
) -> Result<UpdateRecord, UpdateError> {
    let _changing = node.lock_changes();
    if let Some(found) = &found
        && node.store.update(&found.plugin)?.as_ref() != Some(found)
    {
        // Found and downloaded outside the change lock: an operator replaced
        // or removed it meanwhile.
        return Err(UpdateError::Superseded {
            plugin: found.plugin.clone(),
            to: found.to.clone(),
        });
    }
    let mut touched = None;
    let result = offer_locked(node, offer, found, &mut touched);
    if result.is_err()
        && let Some(plugin) = touched
    {
        // An operator's offer supersedes a version on probation before it
        // is checked; refused, it must not leave that version unjudged.
        resume_orphaned_probation(node, &plugin);
    }
    tidy_after_change(node);
    result
}

/// A version serving with its previous version and kv snapshot kept but no
/// update record is on probation that nothing judges: an operator's offer
/// superseded it and was then refused, or a crash fell between the two.
/// Puts it back on probation (from now).
pub fn resume_orphaned_probation(node: &Node, plugin: &PluginId) {
    let resume = || -> Result<(), StoreError> {
        if node.store.update(plugin)?.is_some() || !node.store.has_kv_snapshot(plugin)? {
            return Ok(());
        }
        let Some(installed) = node.store.plugin(plugin)? else {
            return Ok(());
        };
        let Some(previous) = installed.previous else {
            return Ok(());
        };
        let asked = Manifest::parse(&installed.active.manifest)
            .map(|m| m.probation)
            .unwrap_or_default();
        let now = now_ms();
        let mut record = UpdateRecord {
            plugin: plugin.clone(),
            from: Some(previous.version),
            to: installed.active.version,
            source: "resumed".into(),
            state: UpdateState::Probation,
            reason: Some("probation resumed: nothing was judging this version".into()),
            asks: Vec::new(),
            approved: true,
            now: true,
            staged: None,
            probation: Some(probation::start(&node.config.updates, &asked, now, (0, 0))),
            interrupted_activations: 0,
            started_at_ms: now,
            updated_at_ms: now,
            directed: None,
        };
        commit_transition(node, &mut record)
    };
    if let Err(error) = resume() {
        tracing::warn!(%plugin, "cannot put the version back on probation: {error}");
    }
}

fn offer_locked(
    node: &Node,
    offer: Offer<'_>,
    found: Option<UpdateRecord>,
    touched: &mut Option<PluginId>,
) -> Result<UpdateRecord, UpdateError> {
    let package = match package::read(offer.folder, node.config.policy.max_assets_bytes) {
        Ok(package) => package,
        Err(error) => {
            if let Some(mut record) = found {
                refuse(node, &mut record, &error)?;
            }
            return Err(InstallError::from(error).into());
        }
    };
    let manifest = &package.manifest;
    let digest = sha256_hex(&package.component);
    let id = manifest.id.clone();
    *touched = Some(id.clone());
    let version = manifest.version.clone();
    let existing = node.store.plugin(&id)?;
    let mut record = match found {
        Some(mut record) => {
            advance(node, &mut record, UpdateState::Downloaded)?;
            if record.plugin != id || record.to != version {
                let mut record = record;
                let error = UpdateError::NotTheRelease {
                    plugin: id,
                    version,
                    source_name: record.source.clone(),
                    expected: format!("{}@{}", record.plugin, record.to),
                };
                refuse(node, &mut record, &error)?;
                return Err(error);
            }
            record
        }
        None => {
            // Already active, the same code: nothing to do.
            if let Some(existing) = &existing
                && existing.active.version == version
                && existing.active.component_digest == digest
                && let Some(PluginSlot::Loaded(_)) = node.table.get(&id)
            {
                let mut unchanged = unchanged_record(existing, &offer.source);
                unchanged.reason = Some("already installed".into());
                return Ok(unchanged);
            }
            // The same version already staged or held: this is the same offer.
            if let Some(staged) = node.store.update(&id)?
                && staged.to == version
                && staged
                    .staged
                    .as_ref()
                    .is_some_and(|s| s.component_digest == digest)
            {
                let mut staged = staged;
                staged.approved |= offer.approved;
                staged.now |= offer.now;
                return activate::proceed(node, staged);
            }
            begin_locked(
                node,
                &id,
                &version,
                &offer.source,
                offer.approved,
                offer.now,
                None,
            )?
        }
    };

    // Verified: the manifest holds within policy.
    let manifest_path = package.folder.join(crate::manifest::MANIFEST_FILE_NAME);
    if let Err(source) = manifest.limits_under(&node.config.policy) {
        let error = InstallError::Policy {
            path: manifest_path,
            source,
        };
        refuse(node, &mut record, &error)?;
        return Err(error.into());
    }
    advance(node, &mut record, UpdateState::Verified)?;

    // Compiled: compiled, linked, its version asked; compared with what is
    // installed (no downgrades, no new code under an old version). The one
    // downgrade taken is a halted rollout's way back from its own release
    // to the version the node ran before it.
    let going_back = record
        .directed
        .as_ref()
        .and_then(|directed| directed.back_from.as_ref())
        .is_some_and(|from| existing.as_ref().is_some_and(|e| e.active.version == *from));
    let checked = at_background_priority(|| {
        node.check_package(&package, &digest, || {
            let Some(existing) = &existing else {
                return Ok(());
            };
            let installed = &existing.active;
            if installed.version == version && installed.component_digest != digest {
                return Err(InstallError::SameVersionDifferentCode {
                    id: id.clone(),
                    version: version.clone(),
                });
            }
            if installed.version > version && !going_back {
                return Err(InstallError::Downgrade {
                    id: id.clone(),
                    installed: installed.version.clone(),
                    offered: version.clone(),
                });
            }
            Ok(())
        })
    });
    let plugin = match checked {
        Ok((plugin, _)) => plugin,
        Err(error) => {
            refuse(node, &mut record, &error)?;
            return Err(error.into());
        }
    };
    advance(node, &mut record, UpdateState::Compiled)?;

    // Staged: the component in the database beside the active version.
    let staged = InstalledVersion {
        version: version.clone(),
        manifest: manifest.text.clone(),
        component_digest: digest.clone(),
        component_bytes: package.component.len() as u64,
        // As configured here: what the operator approves, and what the
        // version gets (see `Grants::origins_from_config`).
        grants: plugin.spec.grants.clone(),
        installed_at: crate::clock::now_seconds(),
    };
    // What the operator approved: the active version's grants, and the
    // limits it runs under (one the policy no longer allows compares as
    // the new version's own, so only grants are asked about).
    let approved_before = existing.as_ref().map(|r| {
        let limits = Manifest::parse(&r.active.manifest)
            .ok()
            .and_then(|m| m.limits_under(&node.config.policy).ok())
            .unwrap_or(plugin.spec.limits);
        (r.active.grants.clone(), limits)
    });
    record.asks = consent::asks(
        approved_before.as_ref().map(|(g, l)| (g, l)),
        (&plugin.spec.grants, &plugin.spec.limits),
    );
    record.approved |= record.asks.is_empty();
    record.staged = Some(staged);
    record.state = UpdateState::Staged;
    record.reason = None;
    record.updated_at_ms = now_ms();
    let txn = node.store.begin_write()?;
    NodeStore::put_component(&txn, &digest, &package.component)?;
    write_transition(&txn, &record)?;
    node.store.commit(txn)?;
    announce(node, &record);
    crate::failpoint::reached("after:staged");
    activate::proceed_with(node, record, Some(Arc::new(plugin)))
}

fn unchanged_record(existing: &PluginRecord, source: &str) -> UpdateRecord {
    UpdateRecord {
        plugin: existing.id.clone(),
        from: Some(existing.active.version.clone()),
        to: existing.active.version.clone(),
        source: source.to_string(),
        state: UpdateState::Confirmed,
        reason: None,
        asks: Vec::new(),
        approved: true,
        now: true,
        staged: None,
        probation: None,
        interrupted_activations: 0,
        started_at_ms: now_ms(),
        updated_at_ms: now_ms(),
        directed: None,
    }
}
