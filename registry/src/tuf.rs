//! TUF metadata, built and signed: what the central team and the registry
//! write and what vendors sign for their namespace.
//!
//! The formats and every check a client makes are tough's; this module only
//! assembles tough's own schema types and signs their canonical JSON (the
//! bytes TUF signatures cover), so the registry and the tests can also make
//! the deliberately wrong metadata an attacker would.
//!
//! Layout: `root` (central team, offline keys) names the keys of `targets`,
//! `snapshot` and `timestamp` (the registry's online keys). `targets`
//! delegates `<namespace>/*` to each vendor's keys, terminating, so a vendor
//! can name artifacts only inside its own namespace. A vendor role lists one
//! target per release, `acme/zpl-printer@1.2.0`, naming the release's OCI
//! manifest by length and sha-256 (which is also its OCI digest); the
//! manifest names every blob by digest and size, so the whole artifact is
//! pinned by the signed metadata.

use crate::keys::{KeyPair, key_id};
use olpc_cjson::CanonicalFormatter;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::Key;
use tough::schema::{
    DelegatedRole, Delegations, Hashes, Metafile, PathPattern, PathSet, Role, RoleKeys, RoleType,
    Root, Signature, Signed, Snapshot, Target, Targets, Timestamp,
};

/// The TUF specification version the metadata follows, written into every
/// role. Clients compare only its major version.
pub const SPEC_VERSION: &str = "1.0.31";

/// `at` without its fraction of a second. The specification's `expires`
/// format is `YYYY-MM-DDTHH:MM:SSZ`: python-tuf and go-tuf refuse metadata
/// whose expiry carries nanoseconds.
pub fn whole_seconds(at: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// Names a namespace may not take: they are the top-level roles' file names.
pub const RESERVED_ROLE_NAMES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

#[derive(Debug, thiserror::Error)]
pub enum TufError {
    #[error("{what} is not valid TUF metadata: {detail}")]
    Parse { what: String, detail: String },
    #[error("{0}")]
    Build(String),
}

/// Signs `role` with each of `keys`.
pub fn sign<T: Role + Serialize>(role: T, keys: &[&KeyPair]) -> Signed<T> {
    let message = canonical(&role);
    let signatures = keys
        .iter()
        .map(|key| Signature {
            keyid: key.key_id(),
            sig: Decoded::from(key.sign(&message)),
        })
        .collect();
    Signed {
        signed: role,
        signatures,
    }
}

/// The canonical JSON TUF signs.
pub fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    let mut data = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut data, CanonicalFormatter::new());
    // Schema types serialise without failing; an empty message would not verify.
    let _ = value.serialize(&mut ser);
    data
}

/// The bytes of a metadata file as served.
pub fn to_bytes<T: Serialize>(signed: &Signed<T>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(signed).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

pub fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, TufError> {
    serde_json::from_slice(bytes).map_err(|e| TufError::Parse {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

pub fn version(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN)
}

/// Who may sign one top-level role, and how many of them must.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub keys: Vec<Key>,
    pub threshold: u64,
}

impl RoleSpec {
    pub fn one(key: &KeyPair) -> RoleSpec {
        RoleSpec {
            keys: vec![key.public()],
            threshold: 1,
        }
    }
}

/// The four top-level roles' keys, and the director's.
#[derive(Debug, Clone)]
pub struct RootSpec {
    pub root: RoleSpec,
    pub targets: RoleSpec,
    pub snapshot: RoleSpec,
    pub timestamp: RoleSpec,
    /// Outpost's own role, outside TUF's four: it signs each node's desired
    /// state. Listed in the root as `"director": {"keyids", "threshold"}`
    /// (an extra field TUF clients keep and ignore), its keys in `keys`.
    pub director: Option<RoleSpec>,
}

/// The root's field naming the director role.
pub const DIRECTOR_FIELD: &str = "director";

pub fn root(spec: &RootSpec, version_number: u64, expires: jiff::Timestamp) -> Root {
    let mut keys = HashMap::new();
    let mut roles = HashMap::new();
    for (role, role_spec) in [
        (RoleType::Root, &spec.root),
        (RoleType::Targets, &spec.targets),
        (RoleType::Snapshot, &spec.snapshot),
        (RoleType::Timestamp, &spec.timestamp),
    ] {
        let mut keyids = Vec::new();
        for key in &role_spec.keys {
            let id = key_id(key);
            keys.insert(id.clone(), key.clone());
            keyids.push(id);
        }
        roles.insert(
            role,
            RoleKeys {
                keyids,
                threshold: version(role_spec.threshold),
                _extra: HashMap::new(),
            },
        );
    }
    let mut extra = HashMap::new();
    if let Some(director) = &spec.director {
        let mut keyids = Vec::new();
        for key in &director.keys {
            let id = key_id(key);
            keyids.push(serde_json::Value::String(hex::encode(id.as_ref())));
            keys.insert(id, key.clone());
        }
        extra.insert(
            DIRECTOR_FIELD.to_string(),
            serde_json::json!({ "keyids": keyids, "threshold": director.threshold }),
        );
    }
    Root {
        spec_version: SPEC_VERSION.into(),
        consistent_snapshot: true,
        version: version(version_number),
        expires,
        keys,
        roles,
        _extra: extra,
    }
}

/// The delegation of `<namespace>/*` to a vendor's keys.
pub fn delegation(
    namespace: &str,
    keys: &[Key],
    threshold: u64,
) -> Result<DelegatedRole, TufError> {
    let pattern = PathPattern::new(format!("{namespace}/*"))
        .map_err(|e| TufError::Build(format!("namespace {namespace}: {e}")))?;
    Ok(DelegatedRole {
        name: namespace.to_string(),
        keyids: keys.iter().map(key_id).collect(),
        threshold: version(threshold),
        paths: PathSet::Paths(vec![pattern]),
        terminating: true,
        targets: None,
    })
}

/// Delegations holding `roles` and their keys.
pub fn delegations(roles: Vec<(DelegatedRole, Vec<Key>)>) -> Delegations {
    let mut delegations = Delegations::new();
    for (role, keys) in roles {
        for key in keys {
            delegations.keys.insert(key_id(&key), key);
        }
        delegations.roles.push(role);
    }
    delegations
}

/// Snapshot/timestamp's record of one metadata file.
pub fn metafile(version_number: u64, bytes: &[u8]) -> Metafile {
    Metafile {
        length: Some(bytes.len() as u64),
        hashes: Some(Hashes {
            sha256: Decoded::from(Sha256::digest(bytes).to_vec()),
            _extra: HashMap::new(),
        }),
        version: version(version_number),
        _extra: HashMap::new(),
    }
}

pub fn snapshot(
    version_number: u64,
    expires: jiff::Timestamp,
    meta: BTreeMap<String, Metafile>,
) -> Snapshot {
    let mut snapshot = Snapshot::new(SPEC_VERSION.into(), version(version_number), expires);
    snapshot.meta = meta.into_iter().collect();
    snapshot
}

pub fn timestamp(
    version_number: u64,
    expires: jiff::Timestamp,
    snapshot_version: u64,
    snapshot_bytes: &[u8],
) -> Timestamp {
    let mut timestamp = Timestamp::new(SPEC_VERSION.into(), version(version_number), expires);
    timestamp.meta.insert(
        "snapshot.json".into(),
        metafile(snapshot_version, snapshot_bytes),
    );
    timestamp
}

/// A release's target: its OCI manifest by length and sha-256, and what a
/// node shows before downloading (custom fields are signed too).
pub fn release_target(manifest: &[u8], custom: &ReleaseInfo) -> Target {
    let mut fields = HashMap::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(custom) {
        fields.extend(map);
    }
    Target {
        length: manifest.len() as u64,
        hashes: Hashes {
            sha256: Decoded::from(Sha256::digest(manifest).to_vec()),
            _extra: HashMap::new(),
        },
        custom: fields,
        _extra: HashMap::new(),
    }
}

/// The signed facts about a release, beside its manifest's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReleaseInfo {
    /// The OCI repository holding it, `acme/zpl-printer`.
    pub repository: String,
    /// The WIT world it exports, `printer-driver@0.1.0`.
    pub world: String,
    /// What it asks the operator for, in words.
    pub grants: String,
}

/// The target name of a release: `acme/zpl-printer@1.2.0`.
pub fn target_name(plugin: &str, version: &semver::Version) -> String {
    format!("{plugin}@{version}")
}

/// Splits a target name back into plugin id and version.
pub fn parse_target_name(name: &str) -> Option<(&str, semver::Version)> {
    let (plugin, version) = name.rsplit_once('@')?;
    let (namespace, rest) = plugin.split_once('/')?;
    if namespace.is_empty() || rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some((plugin, semver::Version::parse(version).ok()?))
}

/// A hex sha-256 of a target's hashes.
pub fn target_sha256(target: &Target) -> String {
    hex::encode(target.hashes.sha256.as_ref())
}

/// Key ids as hex, for messages.
pub fn key_ids(ids: &[Decoded<Hex>]) -> String {
    ids.iter()
        .map(|id| {
            hex::encode(id.as_ref())
                .chars()
                .take(12)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An empty top-level targets role with `delegations`.
pub fn targets(
    version_number: u64,
    expires: jiff::Timestamp,
    delegations: Option<Delegations>,
) -> Targets {
    let mut targets = Targets::new(SPEC_VERSION.into(), version(version_number), expires);
    targets.delegations = delegations;
    targets
}
