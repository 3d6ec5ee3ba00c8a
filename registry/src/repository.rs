//! The registry's TUF repository over time: created once by the central
//! team, extended by each vendor publish, its timestamp refreshed, its root
//! rotated. Every change writes all the files it touches in one redb
//! transaction (see `store::write_tuf`), so what the registry serves is
//! always one consistent version of the repository.

use crate::keys::{KeyError, KeyPair};
use crate::store::{RegistryStore, StoreError, TufWrite};
use crate::tuf::{self, ReleaseInfo, RoleSpec, RootSpec};
use std::collections::BTreeMap;
use std::path::Path;
use tough::schema::key::Key;
use tough::schema::{Root, Signed, Snapshot, Target, Targets, Timestamp};

/// The registry's online keys: it signs `targets` (the delegations),
/// `snapshot` and `timestamp` itself, so publishing needs no human.
#[derive(Debug, Clone)]
pub struct OnlineKeys {
    pub targets: KeyPair,
    pub snapshot: KeyPair,
    pub timestamp: KeyPair,
    /// Signs each node's desired state ([`crate::desired`]). A registry made
    /// before fleets has none until its root is rotated.
    pub director: Option<KeyPair>,
}

pub const ONLINE_KEY_NAMES: [&str; 3] = ["targets", "snapshot", "timestamp"];

impl OnlineKeys {
    pub fn generate() -> Result<OnlineKeys, KeyError> {
        Ok(OnlineKeys {
            targets: KeyPair::generate()?,
            snapshot: KeyPair::generate()?,
            timestamp: KeyPair::generate()?,
            director: Some(KeyPair::generate()?),
        })
    }

    pub fn save(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        self.targets.save(&dir.join("targets"))?;
        self.snapshot.save(&dir.join("snapshot"))?;
        self.timestamp.save(&dir.join("timestamp"))?;
        if let Some(director) = &self.director {
            director.save(&dir.join("director"))?;
        }
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<OnlineKeys, KeyError> {
        let director = dir.join("director");
        Ok(OnlineKeys {
            targets: KeyPair::load(&dir.join("targets"))?,
            snapshot: KeyPair::load(&dir.join("snapshot"))?,
            timestamp: KeyPair::load(&dir.join("timestamp"))?,
            director: director
                .exists()
                .then(|| KeyPair::load(&director))
                .transpose()?,
        })
    }
}

/// How long each role's metadata stays valid. Short timestamps bound how
/// long a replayed (frozen) repository can fool a node; the registry
/// re-signs the timestamp well before it lapses.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub root: jiff::SignedDuration,
    pub targets: jiff::SignedDuration,
    pub snapshot: jiff::SignedDuration,
    pub timestamp: jiff::SignedDuration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        let day = jiff::SignedDuration::from_hours(24);
        Lifetimes {
            root: day * 365,
            targets: day * 365,
            snapshot: day * 30,
            timestamp: day,
        }
    }
}

fn expires_in(lifetime: jiff::SignedDuration) -> jiff::Timestamp {
    tuf::whole_seconds(
        jiff::Timestamp::now()
            .checked_add(lifetime)
            .unwrap_or(jiff::Timestamp::MAX),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tuf(#[from] tuf::TufError),
    #[error("the registry's metadata is missing {0}; restore the database from a backup")]
    Missing(String),
    #[error("{0}")]
    Refused(String),
}

/// Why a vendor's signed role was refused. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefusal {
    #[error("namespace {0} does not exist; ask the central team to create it")]
    UnknownNamespace(String),
    #[error("the metadata is not valid TUF targets metadata: {0}")]
    Malformed(String),
    #[error(
        "the metadata for {namespace} is not signed by enough of its keys ({detail}); sign it with the key the central team registered for {namespace}"
    )]
    Signature { namespace: String, detail: String },
    #[error(
        "{namespace} metadata version {got} does not follow the published version {published}; fetch the latest metadata and publish again"
    )]
    Version {
        namespace: String,
        published: u64,
        got: u64,
    },
    #[error("the metadata has already expired ({0}); sign it with a later expiry")]
    Expired(String),
    #[error(
        "{name} is not a release name inside {namespace} (expected {namespace}/<plugin>@<version>)"
    )]
    OutsideNamespace { namespace: String, name: String },
    #[error("{0} was published before and cannot change or be withdrawn; publish a new version")]
    Immutable(String),
    #[error("no new release in the metadata; it lists only what is already published")]
    NothingNew,
    #[error(
        "{name} names manifest {digest} in {repository}, which the registry does not hold; push the artifact first (`outpost vendor publish` does both)"
    )]
    MissingManifest {
        name: String,
        repository: String,
        digest: String,
    },
    #[error("{name} says {length} bytes but the manifest it names is {actual}")]
    Length {
        name: String,
        length: u64,
        actual: u64,
    },
    #[error("{name}: {detail}")]
    Custom { name: String, detail: String },
}

fn file(role: &str, version: u64) -> String {
    format!("{version}.{role}.json")
}

/// Creates the repository: root v1 signed by the central team's keys, and
/// empty targets, snapshot and timestamp signed by the registry's keys.
pub fn init(
    store: &RegistryStore,
    root_keys: &[KeyPair],
    root_threshold: u64,
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> Result<Vec<u8>, RepositoryError> {
    let spec = RootSpec {
        root: RoleSpec {
            keys: root_keys.iter().map(KeyPair::public).collect(),
            threshold: root_threshold,
        },
        targets: RoleSpec::one(&online.targets),
        snapshot: RoleSpec::one(&online.snapshot),
        timestamp: RoleSpec::one(&online.timestamp),
        director: online.director.as_ref().map(RoleSpec::one),
    };
    let root = tuf::root(&spec, 1, expires_in(lifetimes.root));
    let root_refs: Vec<&KeyPair> = root_keys.iter().collect();
    let root_bytes = tuf::to_bytes(&tuf::sign(root, &root_refs));
    let mut write = sign_top_level(
        TargetsChange::New {
            version: 1,
            delegations: None,
        },
        &BTreeMap::new(),
        1,
        1,
        online,
        lifetimes,
    );
    write.files.push((file("root", 1), root_bytes.clone()));
    write.files.push(("root.json".into(), root_bytes.clone()));
    write.versions.push(("root".into(), 1));
    store
        .write_tuf(|latest| {
            if latest.is_empty() {
                Ok(write)
            } else {
                Err(RepositoryError::Refused(
                    "this registry already has TUF metadata".into(),
                ))
            }
        })?
        .map(|()| root_bytes)
}

/// What a change does to `targets.json`.
enum TargetsChange {
    /// Keep the current version; the snapshot lists it again.
    Keep { version: u64, bytes: Vec<u8> },
    /// Sign a new version with these delegations.
    New {
        version: u64,
        delegations: Option<tough::schema::Delegations>,
    },
}

/// targets (when it changes), snapshot and timestamp, signed with the online keys.
fn sign_top_level(
    targets: TargetsChange,
    roles: &BTreeMap<String, (u64, Vec<u8>)>,
    snapshot_version: u64,
    timestamp_version: u64,
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> TufWrite {
    let mut write = TufWrite::default();
    let (targets_version, targets_bytes) = match targets {
        TargetsChange::Keep { version, bytes } => (version, bytes),
        TargetsChange::New {
            version,
            delegations,
        } => {
            let targets = tuf::targets(version, expires_in(lifetimes.targets), delegations);
            let bytes = tuf::to_bytes(&tuf::sign(targets, &[&online.targets]));
            write.files.push((file("targets", version), bytes.clone()));
            write.versions.push(("targets".into(), version));
            (version, bytes)
        }
    };
    let mut meta = BTreeMap::new();
    for (role, (version, bytes)) in roles {
        meta.insert(format!("{role}.json"), tuf::metafile(*version, bytes));
    }
    meta.insert(
        "targets.json".into(),
        tuf::metafile(targets_version, &targets_bytes),
    );
    let snapshot = tuf::snapshot(snapshot_version, expires_in(lifetimes.snapshot), meta);
    let snapshot_bytes = tuf::to_bytes(&tuf::sign(snapshot, &[&online.snapshot]));
    let timestamp = tuf::timestamp(
        timestamp_version,
        expires_in(lifetimes.timestamp),
        snapshot_version,
        &snapshot_bytes,
    );
    let timestamp_bytes = tuf::to_bytes(&tuf::sign(timestamp, &[&online.timestamp]));
    write
        .files
        .push((file("snapshot", snapshot_version), snapshot_bytes));
    write.versions.push(("snapshot".into(), snapshot_version));
    write.files.push((
        file("timestamp", timestamp_version),
        timestamp_bytes.clone(),
    ));
    write.files.push(("timestamp.json".into(), timestamp_bytes));
    write.versions.push(("timestamp".into(), timestamp_version));
    write
}

/// The next targets (same delegations), snapshot and timestamp: what a
/// root rotation or a change of format re-signs.
fn resign_top_level(
    store: &RegistryStore,
    latest: &BTreeMap<String, u64>,
    targets: &Signed<Targets>,
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> Result<TufWrite, RepositoryError> {
    let roles = current_roles(store, latest)?;
    Ok(sign_top_level(
        TargetsChange::New {
            version: need(latest, "targets")? + 1,
            delegations: targets.signed.delegations.clone(),
        },
        &roles,
        need(latest, "snapshot")? + 1,
        need(latest, "timestamp")? + 1,
        online,
        lifetimes,
    ))
}

fn need(latest: &BTreeMap<String, u64>, role: &str) -> Result<u64, RepositoryError> {
    latest
        .get(role)
        .copied()
        .ok_or_else(|| RepositoryError::Missing(format!("the {role} role")))
}

fn load<T: serde::de::DeserializeOwned>(
    store: &RegistryStore,
    name: &str,
) -> Result<T, RepositoryError> {
    let bytes = store
        .tuf_file(name)?
        .ok_or_else(|| RepositoryError::Missing(name.to_string()))?;
    Ok(tuf::parse(name, &bytes)?)
}

/// The newest snapshot's record of every delegated role: name -> (version, bytes).
fn current_roles(
    store: &RegistryStore,
    latest: &BTreeMap<String, u64>,
) -> Result<BTreeMap<String, (u64, Vec<u8>)>, RepositoryError> {
    let snapshot: Signed<Snapshot> = load(store, &file("snapshot", need(latest, "snapshot")?))?;
    let mut roles = BTreeMap::new();
    for (name, meta) in &snapshot.signed.meta {
        let Some(role) = name.strip_suffix(".json") else {
            continue;
        };
        if role == "targets" {
            continue;
        }
        let version = meta.version.get();
        let bytes = store
            .tuf_file(&file(role, version))?
            .ok_or_else(|| RepositoryError::Missing(file(role, version)))?;
        roles.insert(role.to_string(), (version, bytes));
    }
    Ok(roles)
}

/// The published release metadata of `namespace`, if any.
pub fn namespace_role(
    store: &RegistryStore,
    namespace: &str,
) -> Result<Option<Vec<u8>>, RepositoryError> {
    let latest = store.tuf_latest()?;
    match latest.get(namespace) {
        Some(version) => Ok(store.tuf_file(&file(namespace, *version))?),
        None => Ok(None),
    }
}

/// A release as its namespace's newest signed metadata lists it: the
/// target (the OCI manifest's length and sha-256) and the repository that
/// holds the manifest. `None` when no such release is published.
pub fn signed_release(
    store: &RegistryStore,
    target_name: &str,
) -> Result<Option<(Target, String)>, RepositoryError> {
    let Some((plugin, _)) = tuf::parse_target_name(target_name) else {
        return Ok(None);
    };
    let namespace = plugin.split('/').next().unwrap_or(plugin);
    let Some(bytes) = namespace_role(store, namespace)? else {
        return Ok(None);
    };
    let role: Signed<Targets> = tuf::parse(&format!("{namespace}'s metadata"), &bytes)?;
    let Ok(name) = tough::TargetName::new(target_name) else {
        return Ok(None);
    };
    let Some(target) = role.signed.targets.get(&name) else {
        return Ok(None);
    };
    let repository = target
        .custom
        .get("repository")
        .and_then(|r| r.as_str())
        .unwrap_or(plugin)
        .to_string();
    Ok(Some((target.clone(), repository)))
}

/// What a publish added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub namespace: String,
    pub version: u64,
    pub releases: Vec<String>,
}

/// Accepts a vendor's signed metadata for `namespace` and publishes it
/// with a new snapshot and timestamp, or says why not.
pub fn publish(
    store: &RegistryStore,
    namespace: &str,
    role_bytes: &[u8],
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> Result<Result<Published, PublishRefusal>, RepositoryError> {
    let Some(record) = store.namespace(namespace)? else {
        return Ok(Err(PublishRefusal::UnknownNamespace(namespace.into())));
    };
    let role: Signed<Targets> = match serde_json::from_slice(role_bytes) {
        Ok(role) => role,
        Err(e) => return Ok(Err(PublishRefusal::Malformed(e.to_string()))),
    };
    let delegated = tuf::delegation(namespace, &record.keys, record.threshold)?;
    let delegations = tuf::delegations(vec![(delegated, record.keys.clone())]);
    if let Err(e) = delegations.verify_role(&role, namespace) {
        return Ok(Err(PublishRefusal::Signature {
            namespace: namespace.into(),
            detail: e.to_string(),
        }));
    }
    if role.signed.expires.subsec_nanosecond() != 0 {
        return Ok(Err(PublishRefusal::Malformed(format!(
            "expires {} has a fraction of a second; TUF's format is whole seconds \
             (YYYY-MM-DDTHH:MM:SSZ) and other TUF clients refuse anything else. \
             Update `outpost` and publish again",
            role.signed.expires
        ))));
    }
    if role.signed.expires <= jiff::Timestamp::now() {
        return Ok(Err(PublishRefusal::Expired(
            role.signed.expires.to_string(),
        )));
    }
    if role.signed.delegations.is_some() {
        return Ok(Err(PublishRefusal::Malformed(
            "vendor metadata may not delegate further".into(),
        )));
    }
    let mut outcome = None;
    let written = store.write_tuf(|latest| -> Result<TufWrite, RepositoryError> {
        let published_version = latest.get(namespace).copied().unwrap_or(0);
        let previous: Option<Signed<Targets>> = match published_version {
            0 => None,
            v => Some(load(store, &file(namespace, v))?),
        };
        let check = check_releases(
            store,
            namespace,
            &record.keys,
            &role,
            previous.as_ref(),
            published_version,
        );
        let releases = match check {
            Ok(releases) => releases,
            Err(refusal) => {
                outcome = Some(Err(refusal));
                return Err(RepositoryError::Refused(String::new()));
            }
        };
        let mut roles = current_roles(store, latest)?;
        let new_version = role.signed.version.get();
        roles.insert(namespace.to_string(), (new_version, role_bytes.to_vec()));
        // The delegations are rebuilt from the namespaces that have
        // published, so a namespace appears in targets.json together with
        // its first metadata (a listed role without metadata would stop
        // clients from loading the roles after it). Only the publishing
        // namespace takes its keys from its record: another namespace whose
        // keys were replaced keeps the delegation its published metadata is
        // signed for until it publishes with the new keys itself.
        let targets_version = need(latest, "targets")?;
        let targets_bytes = store
            .tuf_file(&file("targets", targets_version))?
            .ok_or_else(|| RepositoryError::Missing(file("targets", targets_version)))?;
        let current_targets: Signed<Targets> = tuf::parse("targets.json", &targets_bytes)?;
        let namespaces = store.namespaces()?;
        let mut delegated = Vec::new();
        for name in roles.keys() {
            let in_effect = (name != namespace)
                .then(|| delegation_in_effect(&current_targets, name))
                .flatten();
            if let Some(in_effect) = in_effect {
                delegated.push(in_effect);
            } else if let Some(ns) = namespaces.get(name) {
                delegated.push((
                    tuf::delegation(name, &ns.keys, ns.threshold)?,
                    ns.keys.clone(),
                ));
            }
        }
        let new_delegations = tuf::delegations(delegated);
        let targets = if current_targets.signed.delegations.as_ref() == Some(&new_delegations) {
            TargetsChange::Keep {
                version: targets_version,
                bytes: targets_bytes,
            }
        } else {
            TargetsChange::New {
                version: targets_version + 1,
                delegations: Some(new_delegations),
            }
        };
        let mut write = sign_top_level(
            targets,
            &roles,
            need(latest, "snapshot")? + 1,
            need(latest, "timestamp")? + 1,
            online,
            lifetimes,
        );
        write
            .files
            .push((file(namespace, new_version), role_bytes.to_vec()));
        write.versions.push((namespace.to_string(), new_version));
        outcome = Some(Ok(Published {
            namespace: namespace.to_string(),
            version: new_version,
            releases,
        }));
        Ok(write)
    })?;
    match (written, outcome) {
        (Ok(()), Some(outcome)) => Ok(outcome),
        (Err(_), Some(Err(refusal))) => Ok(Err(refusal)),
        (Err(error), _) => Err(error),
        (Ok(()), None) => Err(RepositoryError::Missing("the publish outcome".into())),
    }
}

/// `name`'s delegation in `targets` with the keys it names.
fn delegation_in_effect(
    targets: &Signed<Targets>,
    name: &str,
) -> Option<(tough::schema::DelegatedRole, Vec<Key>)> {
    let delegations = targets.signed.delegations.as_ref()?;
    let role = delegations.roles.iter().find(|r| r.name == name)?;
    let keys = role
        .keyids
        .iter()
        .filter_map(|id| delegations.keys.get(id).cloned())
        .collect();
    Some((role.clone(), keys))
}

/// The key ids `namespace` is delegated to in the published `targets.json`,
/// or `None` before its first publish. They differ from the namespace's
/// record while a key replacement waits for the vendor's first publish
/// signed with the new keys.
pub fn namespace_keys_in_effect(
    store: &RegistryStore,
    namespace: &str,
) -> Result<Option<Vec<String>>, RepositoryError> {
    let latest = store.tuf_latest()?;
    let targets: Signed<Targets> = load(store, &file("targets", need(&latest, "targets")?))?;
    Ok(delegation_in_effect(&targets, namespace).map(|(role, _)| {
        let mut ids: Vec<String> = role
            .keyids
            .iter()
            .map(|id| hex::encode(id.as_ref()))
            .collect();
        ids.sort();
        ids
    }))
}

/// The vendor's new role against what is published: the next version,
/// nothing published changed or withdrawn, every new release inside the
/// namespace and backed by a stored manifest of the signed length.
fn check_releases(
    store: &RegistryStore,
    namespace: &str,
    namespace_keys: &[Key],
    role: &Signed<Targets>,
    previous: Option<&Signed<Targets>>,
    published_version: u64,
) -> Result<Vec<String>, PublishRefusal> {
    let got = role.signed.version.get();
    if got != published_version + 1 {
        return Err(PublishRefusal::Version {
            namespace: namespace.into(),
            published: published_version,
            got,
        });
    }
    if let Some(previous) = previous {
        for (name, target) in &previous.signed.targets {
            if role.signed.targets.get(name) != Some(target) {
                return Err(PublishRefusal::Immutable(name.raw().to_string()));
            }
        }
    }
    let mut releases = Vec::new();
    for (name, target) in &role.signed.targets {
        if previous.is_some_and(|p| p.signed.targets.contains_key(name)) {
            continue;
        }
        let raw = name.raw();
        let inside = tuf::parse_target_name(raw)
            .is_some_and(|(plugin, _)| plugin.split('/').next() == Some(namespace));
        if !inside {
            return Err(PublishRefusal::OutsideNamespace {
                namespace: namespace.into(),
                name: raw.into(),
            });
        }
        check_release(store, raw, target)?;
        releases.push(raw.to_string());
    }
    if releases.is_empty() {
        // The same releases with a later expiry: a renewal, so a vendor's
        // signed list does not lapse while it has nothing new to publish.
        // Or signed by other keys: the namespace's keys were replaced, and
        // this moves nodes to the new ones (within the same second, the
        // expiry cannot be later: TUF's expiry has whole seconds).
        // Only signatures by the namespace's keys count: a junk entry in
        // `signatures` does not make a re-sign.
        let current: Vec<_> = namespace_keys.iter().map(crate::keys::key_id).collect();
        let signers = |role: &Signed<Targets>| {
            let mut ids: Vec<String> = role
                .signatures
                .iter()
                .filter(|s| current.contains(&s.keyid))
                .map(|s| hex::encode(s.keyid.as_ref()))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let renewal = previous.is_some_and(|p| {
            role.signed.expires > p.signed.expires
                || (role.signed.expires == p.signed.expires && signers(role) != signers(p))
        });
        if !renewal {
            return Err(PublishRefusal::NothingNew);
        }
    }
    Ok(releases)
}

fn check_release(store: &RegistryStore, name: &str, target: &Target) -> Result<(), PublishRefusal> {
    let info: ReleaseInfo = serde_json::from_value(serde_json::Value::Object(
        target.custom.clone().into_iter().collect(),
    ))
    .map_err(|e| PublishRefusal::Custom {
        name: name.into(),
        detail: format!("custom fields: {e}"),
    })?;
    let plugin = tuf::parse_target_name(name)
        .map(|(p, _)| p)
        .unwrap_or_default();
    if info.repository != plugin {
        return Err(PublishRefusal::Custom {
            name: name.into(),
            detail: format!("its repository must be {plugin}, not {}", info.repository),
        });
    }
    let digest = format!("sha256:{}", tuf::target_sha256(target));
    let missing = || PublishRefusal::MissingManifest {
        name: name.into(),
        repository: info.repository.clone(),
        digest: digest.clone(),
    };
    let manifest = store
        .manifest(&info.repository, &digest)
        .map_err(|_| missing())?
        .ok_or_else(missing)?;
    if manifest.len() as u64 != target.length {
        return Err(PublishRefusal::Length {
            name: name.into(),
            length: target.length,
            actual: manifest.len() as u64,
        });
    }
    check_plugin_manifest(store, name, &info.repository, &manifest)
}

/// The artifact's plugin.toml must name the release's plugin and version,
/// so a release cannot carry a package that installs as something else.
/// Nodes check this again; refusing here tells the vendor at once.
fn check_plugin_manifest(
    store: &RegistryStore,
    name: &str,
    repository: &str,
    manifest: &[u8],
) -> Result<(), PublishRefusal> {
    let refuse = |detail: String| PublishRefusal::Custom {
        name: name.into(),
        detail,
    };
    let layout = crate::artifact::parse(manifest).map_err(|e| refuse(e.to_string()))?;
    // Nodes fetch every blob through the release's repository.
    for blob in layout.blobs() {
        let held = store
            .linked_blob_size(repository, &blob.digest)
            .map_err(|e| refuse(e.to_string()))?;
        if held != u64::try_from(blob.size).ok() {
            return Err(refuse(format!(
                "{repository} does not hold blob {} of {} bytes; push the artifact again",
                blob.digest, blob.size
            )));
        }
    }
    let files = layout.files().map_err(|e| refuse(e.to_string()))?;
    let Some(toml_layer) = files
        .iter()
        .find(|f| f.path == crate::artifact::PLUGIN_MANIFEST_FILE)
    else {
        return Err(refuse("the artifact has no plugin.toml".into()));
    };
    let bytes = store
        .read_blob(
            &toml_layer.descriptor.digest,
            crate::artifact::MAX_MANIFEST_BYTES,
        )
        .ok_or_else(|| refuse("its plugin.toml blob is missing".into()))?;
    let text = String::from_utf8(bytes).map_err(|_| refuse("plugin.toml is not UTF-8".into()))?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|e| refuse(format!("plugin.toml: {e}")))?;
    let field = |key: &str| {
        value
            .get("plugin")
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let claimed = format!("{}@{}", field("id"), field("version"));
    if claimed != name {
        return Err(refuse(format!(
            "its plugin.toml says {claimed}; the release name and plugin.toml must agree"
        )));
    }
    Ok(())
}

/// Re-signs the timestamp (same snapshot) with a fresh expiry.
pub fn refresh_timestamp(
    store: &RegistryStore,
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> Result<u64, RepositoryError> {
    let mut new_version = 0;
    store.write_tuf(|latest| -> Result<TufWrite, RepositoryError> {
        let snapshot_version = need(latest, "snapshot")?;
        let snapshot_bytes = store
            .tuf_file(&file("snapshot", snapshot_version))?
            .ok_or_else(|| RepositoryError::Missing(file("snapshot", snapshot_version)))?;
        new_version = need(latest, "timestamp")? + 1;
        let timestamp = tuf::timestamp(
            new_version,
            expires_in(lifetimes.timestamp),
            snapshot_version,
            &snapshot_bytes,
        );
        let bytes = tuf::to_bytes(&tuf::sign(timestamp, &[&online.timestamp]));
        Ok(TufWrite {
            files: vec![
                (file("timestamp", new_version), bytes.clone()),
                ("timestamp.json".into(), bytes),
            ],
            versions: vec![("timestamp".into(), new_version)],
        })
    })??;
    Ok(new_version)
}

/// When the current timestamp expires.
pub fn timestamp_expires(store: &RegistryStore) -> Result<jiff::Timestamp, RepositoryError> {
    let timestamp: Signed<Timestamp> = load(store, "timestamp.json")?;
    Ok(timestamp.signed.expires)
}

/// Writes root version N+1, signed by the current root keys (so nodes
/// trusting N accept it) and by the new ones (so it is valid on its own),
/// and re-signs targets, snapshot and timestamp with `online`.
pub fn rotate_root(
    store: &RegistryStore,
    current_root_keys: &[KeyPair],
    new_root_keys: &[KeyPair],
    new_threshold: u64,
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> Result<u64, RepositoryError> {
    let mut rotated = 0;
    store.write_tuf(|latest| -> Result<TufWrite, RepositoryError> {
        let root_version = need(latest, "root")?;
        let current: Signed<Root> = load(store, &file("root", root_version))?;
        let spec = RootSpec {
            root: RoleSpec {
                keys: new_root_keys.iter().map(KeyPair::public).collect(),
                threshold: new_threshold,
            },
            targets: RoleSpec::one(&online.targets),
            snapshot: RoleSpec::one(&online.snapshot),
            timestamp: RoleSpec::one(&online.timestamp),
            director: online.director.as_ref().map(RoleSpec::one),
        };
        let signed_by_current = current_root_keys
            .iter()
            .filter(|k| current.signed.keys.contains_key(&k.key_id()))
            .count() as u64;
        let needed = current
            .signed
            .roles
            .get(&tough::schema::RoleType::Root)
            .map(|r| r.threshold.get())
            .unwrap_or(1);
        if signed_by_current < needed {
            return Err(RepositoryError::Refused(format!(
                "rotating root version {root_version} needs {needed} of its current keys; {signed_by_current} given"
            )));
        }
        rotated = root_version + 1;
        let root = tuf::root(&spec, rotated, expires_in(lifetimes.root));
        let mut signers: Vec<&KeyPair> = current_root_keys.iter().collect();
        for key in new_root_keys {
            if !signers.iter().any(|s| s.key_id() == key.key_id()) {
                signers.push(key);
            }
        }
        let root_bytes = tuf::to_bytes(&tuf::sign(root, &signers));
        let targets: Signed<Targets> = load(store, &file("targets", need(latest, "targets")?))?;
        let mut write = resign_top_level(store, latest, &targets, online, lifetimes)?;
        write.files.push((file("root", rotated), root_bytes.clone()));
        write.files.push(("root.json".into(), root_bytes));
        write.versions.push(("root".into(), rotated));
        Ok(write)
    })??;
    Ok(rotated)
}

/// What a registry made before expiries had whole seconds still serves
/// with a fraction, which other TUF clients refuse.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FractionalExpiries {
    /// targets, snapshot and timestamp were re-signed (new versions).
    pub resigned: bool,
    /// The current root has a fraction: only the offline root keys can fix
    /// it, with `outpost-registry root rotate`.
    pub root: bool,
    /// Namespaces whose current signed list has a fraction: fixed by the
    /// vendor's next `outpost vendor publish`.
    pub namespaces: Vec<String>,
}

/// Re-signs targets, snapshot and timestamp if any of them has an expiry
/// with a fraction of a second, and says what else still has one.
pub fn resign_fractional_expiries(
    store: &RegistryStore,
    online: &OnlineKeys,
    lifetimes: Lifetimes,
) -> Result<FractionalExpiries, RepositoryError> {
    let mut found = FractionalExpiries::default();
    store.write_tuf(|latest| -> Result<TufWrite, RepositoryError> {
        let fractional = |t: jiff::Timestamp| t.subsec_nanosecond() != 0;
        let root: Signed<Root> = load(store, &file("root", need(latest, "root")?))?;
        found.root = fractional(root.signed.expires);
        let targets: Signed<Targets> = load(store, &file("targets", need(latest, "targets")?))?;
        let snapshot: Signed<Snapshot> = load(store, &file("snapshot", need(latest, "snapshot")?))?;
        let timestamp: Signed<Timestamp> =
            load(store, &file("timestamp", need(latest, "timestamp")?))?;
        for (role, version) in latest {
            if tuf::RESERVED_ROLE_NAMES.contains(&role.as_str()) {
                continue;
            }
            let vendor: Signed<Targets> = load(store, &file(role, *version))?;
            if fractional(vendor.signed.expires) {
                found.namespaces.push(role.clone());
            }
        }
        if !(fractional(targets.signed.expires)
            || fractional(snapshot.signed.expires)
            || fractional(timestamp.signed.expires))
        {
            return Ok(TufWrite::default());
        }
        found.resigned = true;
        resign_top_level(store, latest, &targets, online, lifetimes)
    })??;
    Ok(found)
}

/// A vendor's next metadata for its namespace: everything published so
/// far plus `releases`, one version up, signed with `keys`.
pub fn next_vendor_role(
    previous: Option<&Signed<Targets>>,
    releases: Vec<(String, Target)>,
    lifetime: jiff::SignedDuration,
    keys: &[&KeyPair],
) -> Result<Signed<Targets>, tuf::TufError> {
    let version = previous.map(|p| p.signed.version.get()).unwrap_or(0) + 1;
    let mut targets = tuf::targets(version, expires_in(lifetime), None);
    if let Some(previous) = previous {
        targets.targets = previous.signed.targets.clone();
    }
    for (name, target) in releases {
        let name = tough::TargetName::new(&name)
            .map_err(|e| tuf::TufError::Build(format!("release name {name}: {e}")))?;
        targets.targets.insert(name, target);
    }
    Ok(tuf::sign(targets, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_signed_with_fractional_expiries_is_re_signed_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RegistryStore::create(dir.path()).expect("create");
        let root_key = KeyPair::generate().expect("key");
        let online = OnlineKeys::generate().expect("keys");
        init(&store, &[root_key], 1, &online, Lifetimes::default()).expect("init");
        // What an older registry wrote: the same roles, nanoseconds in the expiry.
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
        let fractional = later
            .checked_add(jiff::SignedDuration::from_nanos(123_456_789))
            .expect("time");
        store
            .write_tuf(|latest| -> Result<TufWrite, RepositoryError> {
                let targets = tuf::targets(need(latest, "targets")? + 1, fractional, None);
                let bytes = tuf::to_bytes(&tuf::sign(targets, &[&online.targets]));
                let version = need(latest, "targets")? + 1;
                let mut write = TufWrite::default();
                write.files.push((file("targets", version), bytes));
                write.versions.push(("targets".into(), version));
                Ok(write)
            })
            .expect("store")
            .expect("write");

        let found =
            resign_fractional_expiries(&store, &online, Lifetimes::default()).expect("re-sign");
        assert!(found.resigned);
        assert!(!found.root);
        let latest = store.tuf_latest().expect("store");
        for role in ["targets", "snapshot", "timestamp"] {
            let bytes = store
                .tuf_file(&file(role, latest[role]))
                .expect("store")
                .expect("file");
            let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let expires = value["signed"]["expires"].as_str().expect("expires");
            assert!(!expires.contains('.'), "{role} expires {expires}");
        }
        let again =
            resign_fractional_expiries(&store, &online, Lifetimes::default()).expect("check");
        assert!(!again.resigned);
        assert_eq!(store.tuf_latest().expect("store"), latest);
    }
}
