//! `plugin.toml`: what a plugin says it is and what it needs.
//!
//! The manifest is the vendor's claim; the node checks it twice at install:
//! against the operator's policy (no more memory, time or capability than the
//! node allows) and against the component itself (`contract`), so a component
//! cannot use a capability its manifest did not ask for.

pub use crate::origin::Origin;
pub use crate::plugin_id::PluginId;

use crate::config::{GrantKind, Policy};
use crate::worlds::{World, WorldError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a key name may be, as the manifest grants keys and the keystore
/// stores them.
pub const KEY_NAME_RULE: &str = "use 1 to 64 lowercase letters, digits, '-' or '_'";

pub fn is_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The file name a package's manifest must have.
pub const MANIFEST_FILE_NAME: &str = "plugin.toml";

/// Capabilities a plugin has been granted. `log` needs no grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Durable key-value storage with a quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv: Option<QuotaGrant>,
    /// Reading the operator's `plugin-config` values.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config: bool,
    /// Reading the package's `assets/` folder, at `/assets`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub assets: bool,
    /// A fresh writable folder for each call, at `/scratch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<QuotaGrant>,
    /// Names of operator-provisioned keys the plugin may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keystore: Vec<String>,
    /// Origins (`scheme://host:port`) outbound HTTP may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<Origin>,
    /// Durable delivery through the node's outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<OutboxGrant>,
    /// Names of `plugin-config` values that hold a URL the plugin may reach
    /// (a courier's API): the operator points the plugin at a carrier or its
    /// sandbox in `outpost.toml`, with no repackaging. Each value's origin
    /// joins `http` (and the outbox's destinations, with an outbox grant)
    /// once the operator approves it, like any grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins_from_config: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutboxGrant {
    /// Origins messages may be sent to.
    pub destinations: Vec<Origin>,
    /// The most undelivered messages the plugin may have at once.
    pub max_pending: u32,
    /// The most bytes its messages may keep in the node at once: payloads
    /// and answers, delivered ones too until they are forgotten.
    #[serde(default = "OutboxGrant::default_quota_bytes")]
    pub quota_bytes: u64,
}

impl OutboxGrant {
    pub const DEFAULT_QUOTA_BYTES: u64 = 4 << 20;

    fn default_quota_bytes() -> u64 {
        OutboxGrant::DEFAULT_QUOTA_BYTES
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuotaGrant {
    pub quota_bytes: u64,
}

impl Grants {
    pub fn kinds(&self) -> Vec<GrantKind> {
        let mut kinds = Vec::new();
        if self.kv.is_some() {
            kinds.push(GrantKind::Kv);
        }
        if self.config {
            kinds.push(GrantKind::Config);
        }
        if self.assets {
            kinds.push(GrantKind::Assets);
        }
        if self.scratch.is_some() {
            kinds.push(GrantKind::Scratch);
        }
        if !self.keystore.is_empty() {
            kinds.push(GrantKind::Keystore);
        }
        if !self.http.is_empty() || !self.origins_from_config.is_empty() {
            kinds.push(GrantKind::Http);
        }
        if self.outbox.is_some() {
            kinds.push(GrantKind::Outbox);
        }
        kinds
    }

    pub fn has(&self, kind: GrantKind) -> bool {
        self.kinds().contains(&kind)
    }

    /// These grants with the origins the operator's `plugin-config` values
    /// name (see `origins_from_config`) added to `http` and the outbox's
    /// destinations. A value that is not an http(s) URL is an error naming
    /// the setting; one left unset adds nothing.
    pub fn with_configured_origins(
        &self,
        values: &std::collections::BTreeMap<String, String>,
    ) -> Result<Grants, String> {
        let mut grants = self.clone();
        for key in &self.origins_from_config {
            let Some(value) = values.get(key) else {
                continue;
            };
            let origin = Origin::of_url(value).map_err(|why| {
                format!("its plugin-config {key} = {value:?} names no origin it could reach: {why}")
            })?;
            if !grants.http.contains(&origin) {
                grants.http.push(origin.clone());
            }
            if let Some(outbox) = &mut grants.outbox
                && !outbox.destinations.contains(&origin)
            {
                outbox.destinations.push(origin);
            }
        }
        Ok(grants)
    }

    /// These grants cut to what `approved` allows of their origins: an
    /// origin from configuration the operator has not approved is left
    /// out, and returned, so the plugin's requests there are refused.
    pub fn within_approved(&self, approved: &Grants) -> (Grants, Vec<Origin>) {
        let mut grants = self.clone();
        let mut unapproved = Vec::new();
        grants.http.retain(|origin| {
            let kept = approved.http.contains(origin);
            if !kept {
                unapproved.push(origin.clone());
            }
            kept
        });
        if let (Some(outbox), Some(approved)) = (&mut grants.outbox, &approved.outbox) {
            outbox
                .destinations
                .retain(|origin| approved.destinations.contains(origin));
        }
        (grants, unapproved)
    }

    /// One line for operators: "kv (4096 bytes), config, assets".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(kv) = self.kv {
            parts.push(format!("kv ({} bytes)", kv.quota_bytes));
        }
        if self.config {
            parts.push("config".to_string());
        }
        if self.assets {
            parts.push("assets (read-only)".to_string());
        }
        if let Some(scratch) = self.scratch {
            parts.push(format!("scratch ({} bytes per call)", scratch.quota_bytes));
        }
        if !self.keystore.is_empty() {
            parts.push(format!("keystore ({})", self.keystore.join(", ")));
        }
        if !self.http.is_empty() {
            let origins: Vec<&str> = self.http.iter().map(Origin::as_str).collect();
            parts.push(format!("http to {}", origins.join(", ")));
        }
        if !self.origins_from_config.is_empty() {
            parts.push(format!(
                "http to the origins set in plugin-config {}",
                self.origins_from_config.join(", ")
            ));
        }
        if let Some(outbox) = &self.outbox {
            let origins: Vec<&str> = outbox.destinations.iter().map(Origin::as_str).collect();
            parts.push(format!(
                "outbox to {} (at most {} undelivered, {} KiB kept)",
                origins.join(", "),
                outbox.max_pending,
                outbox.quota_bytes >> 10
            ));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// Limits as the manifest asks for them; unset means the policy's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Calls of this plugin that may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
}

/// The limits a plugin runs under, after policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: u64,
    pub fuel: Option<u64>,
    /// Calls that may run at once, and that may wait for a place beyond
    /// those (see `admission`).
    pub concurrency: u32,
    pub max_queued: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a valid manifest: {0}")]
    Syntax(String),
    #[error("[plugin] id {0}")]
    Id(String),
    #[error("[plugin] version {version:?} is not a semantic version (such as \"1.2.0\"): {reason}")]
    Version { version: String, reason: String },
    #[error("[plugin] world: {0}")]
    World(#[from] WorldError),
    #[error("[plugin] component {0:?} must be a file name ending in .wasm, with no folders")]
    ComponentName(String),
    #[error(
        "{key} = {asked} is more than this node allows ({allowed}); ask for less, or raise policy.{policy_key} in the node's outpost.toml"
    )]
    OverPolicy {
        key: &'static str,
        asked: u64,
        allowed: u64,
        policy_key: &'static str,
    },
    #[error("{key} must be at least 1")]
    Zero { key: &'static str },
    #[error("{0}")]
    Grant(String),
    #[error("the `{}` grant is not allowed on this node; policy.allowed-grants in its outpost.toml lists what is", .0.name())]
    GrantNotAllowed(GrantKind),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    plugin: RawPlugin,
    #[serde(default)]
    grants: Grants,
    #[serde(default)]
    limits: RequestedLimits,
    #[serde(default)]
    probation: RequestedProbation,
}

/// `[probation]`: how long a new version of this plugin wants to be watched
/// after an update before it is confirmed. The operator's
/// `updates.probation-*` settings are the least it gets and
/// `updates.max-probation-seconds` the most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedProbation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPlugin {
    id: String,
    version: String,
    world: String,
    #[serde(default = "default_component")]
    component: String,
    #[serde(default)]
    description: String,
}

fn default_component() -> String {
    "component.wasm".to_string()
}

/// A parsed, checked `plugin.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub id: PluginId,
    pub version: semver::Version,
    pub world: World,
    pub component: String,
    pub description: String,
    pub grants: Grants,
    pub limits: RequestedLimits,
    pub probation: RequestedProbation,
    /// The file as the vendor wrote it, kept with the installed plugin.
    pub text: String,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        let id = PluginId::parse(&raw.plugin.id).map_err(ManifestError::Id)?;
        let version =
            semver::Version::parse(&raw.plugin.version).map_err(|e| ManifestError::Version {
                version: raw.plugin.version.clone(),
                reason: e.to_string(),
            })?;
        let world = World::resolve(&raw.plugin.world)?;
        let component = raw.plugin.component;
        let plain_name = !component.is_empty()
            && !component.contains(['/', '\\'])
            && component != ".."
            && component.ends_with(".wasm");
        if !plain_name {
            return Err(ManifestError::ComponentName(component));
        }
        for (key, value) in [
            ("limits.deadline-ms", raw.limits.deadline_ms),
            ("limits.memory-mib", raw.limits.memory_mib),
            ("limits.fuel", raw.limits.fuel),
            ("limits.concurrency", raw.limits.concurrency),
            (
                "grants.kv.quota-bytes",
                raw.grants.kv.map(|q| q.quota_bytes),
            ),
            (
                "grants.scratch.quota-bytes",
                raw.grants.scratch.map(|q| q.quota_bytes),
            ),
        ] {
            if value == Some(0) {
                return Err(ManifestError::Zero { key });
            }
        }
        for name in &raw.grants.origins_from_config {
            if !is_key_name(name) {
                return Err(ManifestError::Grant(format!(
                    "grants.origins-from-config: {name:?} is not a plugin-config name: \
                     {KEY_NAME_RULE}"
                )));
            }
        }
        if !raw.grants.origins_from_config.is_empty() && !raw.grants.config {
            return Err(ManifestError::Grant(
                "grants.origins-from-config names plugin-config values, so it needs \
                 config = true to read them"
                    .into(),
            ));
        }
        for name in &raw.grants.keystore {
            if !is_key_name(name) {
                return Err(ManifestError::Grant(format!(
                    "grants.keystore: {name:?} is not a key name: {KEY_NAME_RULE}"
                )));
            }
        }
        if let Some(outbox) = &raw.grants.outbox {
            if outbox.destinations.is_empty() {
                return Err(ManifestError::Grant(
                    "grants.outbox.destinations must list at least one origin".into(),
                ));
            }
            if outbox.max_pending == 0 {
                return Err(ManifestError::Zero {
                    key: "grants.outbox.max-pending",
                });
            }
            if outbox.quota_bytes == 0 {
                return Err(ManifestError::Zero {
                    key: "grants.outbox.quota-bytes",
                });
            }
        }
        Ok(Manifest {
            id,
            version,
            world,
            component,
            description: raw.plugin.description,
            grants: raw.grants,
            limits: raw.limits,
            probation: raw.probation,
            text: text.to_string(),
        })
    }

    /// The limits this plugin gets under `policy`, or why the policy refuses
    /// what it asks for.
    pub fn limits_under(&self, policy: &Policy) -> Result<Limits, ManifestError> {
        for kind in self.grants.kinds() {
            if !policy.allows(kind) {
                return Err(ManifestError::GrantNotAllowed(kind));
            }
        }
        let checks = [
            (
                "grants.kv.quota-bytes",
                self.grants.kv.map(|q| q.quota_bytes),
                policy.max_kv_quota_bytes,
                "max-kv-quota-bytes",
            ),
            (
                "grants.scratch.quota-bytes",
                self.grants.scratch.map(|q| q.quota_bytes),
                policy.max_scratch_quota_bytes,
                "max-scratch-quota-bytes",
            ),
            (
                "grants.outbox.max-pending",
                self.grants
                    .outbox
                    .as_ref()
                    .map(|o| u64::from(o.max_pending)),
                u64::from(policy.max_outbox_pending),
                "max-outbox-pending",
            ),
            (
                "grants.outbox.quota-bytes",
                self.grants.outbox.as_ref().map(|o| o.quota_bytes),
                policy.max_outbox_quota_bytes,
                "max-outbox-quota-bytes",
            ),
            (
                "limits.deadline-ms",
                self.limits.deadline_ms,
                policy.max_deadline_ms,
                "max-deadline-ms",
            ),
            (
                "limits.memory-mib",
                self.limits.memory_mib,
                policy.max_memory_mib,
                "max-memory-mib",
            ),
            (
                "limits.concurrency",
                self.limits.concurrency,
                u64::from(policy.max_concurrency),
                "max-concurrency",
            ),
        ];
        for (key, asked, allowed, policy_key) in checks {
            if let Some(asked) = asked
                && asked > allowed
            {
                return Err(ManifestError::OverPolicy {
                    key,
                    asked,
                    allowed,
                    policy_key,
                });
            }
        }
        if let (Some(asked), Some(allowed)) = (self.limits.fuel, policy.max_fuel)
            && asked > allowed
        {
            return Err(ManifestError::OverPolicy {
                key: "limits.fuel",
                asked,
                allowed,
                policy_key: "max-fuel",
            });
        }
        Ok(Limits {
            deadline: Duration::from_millis(
                self.limits
                    .deadline_ms
                    .unwrap_or(policy.default_deadline_ms),
            ),
            memory_bytes: self.limits.memory_mib.unwrap_or(policy.default_memory_mib) << 20,
            fuel: self.limits.fuel,
            concurrency: self
                .limits
                .concurrency
                .and_then(|asked| u32::try_from(asked).ok())
                .unwrap_or(policy.default_concurrency),
            max_queued: policy.max_queued_calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [plugin]
        id = "acme/label-printer"
        version = "1.2.0"
        world = "printer-driver@0.1.0"
        component = "acme.wasm"
        description = "Labels"

        [grants]
        kv = { quota-bytes = 2048 }
        config = true

        [limits]
        deadline-ms = 100
        memory-mib = 8
    "#;

    #[test]
    fn a_good_manifest_parses() {
        let manifest = Manifest::parse(GOOD).expect("valid manifest");
        assert_eq!(manifest.id.as_str(), "acme/label-printer");
        assert_eq!(manifest.version, semver::Version::new(1, 2, 0));
        assert_eq!(
            manifest.world.qualified_name(),
            "outpost:plugins/printer-driver@0.1.0"
        );
        assert_eq!(manifest.grants.kinds(), [GrantKind::Kv, GrantKind::Config]);
        let limits = manifest
            .limits_under(&Policy::default())
            .expect("within policy");
        assert_eq!(limits.deadline, Duration::from_millis(100));
        assert_eq!(limits.memory_bytes, 8 << 20);
    }

    #[test]
    fn origins_are_normalised_and_take_no_path() {
        let origin = |text: &str| Origin::parse(text).map(|o| o.to_string());
        assert_eq!(
            origin("https://API.example.com").as_deref(),
            Ok("https://api.example.com:443")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert!(origin("http://127.0.0.1:8080/v1").is_err());
        assert!(origin("ftp://files.example").is_err());
        assert!(origin("http://user@host").is_err());
        assert!(origin("http://host:99999").is_err());
        assert_eq!(
            Origin::of_url("http://127.0.0.1:9/v1/x?y")
                .map(|o| o.to_string())
                .as_deref(),
            Ok("http://127.0.0.1:9")
        );
        let manifest = Manifest::parse(&GOOD.replace(
            "config = true",
            "config = true\nhttp = [\"https://api.example\"]\nkeystore = [\"card-token\"]\n\
             outbox = { destinations = [\"https://api.example\"], max-pending = 10 }",
        ))
        .expect("parses");
        assert_eq!(
            manifest.grants.kinds(),
            [
                GrantKind::Kv,
                GrantKind::Config,
                GrantKind::Keystore,
                GrantKind::Http,
                GrantKind::Outbox
            ]
        );
        assert!(
            Manifest::parse(&GOOD.replace("config = true", "keystore = [\"Bad Name\"]")).is_err()
        );
        assert!(
            Manifest::parse(&GOOD.replace("config = true", "http = [\"https://x/y\"]")).is_err()
        );
    }

    #[test]
    fn ids_are_vendor_slash_name() {
        for good in ["a/b", "acme/label-printer-2", "x1/y"] {
            assert!(PluginId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "acme", "/b", "a/", "Acme/b", "a/b/c", "a/../b", "1a/b", "a/b c",
        ] {
            assert!(PluginId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_name_the_field() {
        let error = |text: &str| {
            Manifest::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(error(&GOOD.replace("[grants]", "[grant]")).contains("grant"));
        assert!(error(&GOOD.replace("1.2.0", "1.2")).contains("semantic version"));
        assert!(error(&GOOD.replace("acme.wasm", "../x.wasm")).contains("no folders"));
        assert!(
            error(&GOOD.replace("deadline-ms = 100", "deadline-ms = 0")).contains("at least 1")
        );
        let world = error(&GOOD.replace("printer-driver@0.1.0", "scale-reader@0.1.0"));
        assert!(
            world.contains("printer-driver@0.1.0"),
            "lists supported: {world}"
        );
    }

    #[test]
    fn policy_caps_what_a_manifest_may_ask() {
        let greedy =
            Manifest::parse(&GOOD.replace("memory-mib = 8", "memory-mib = 512")).expect("parses");
        let refusal = greedy
            .limits_under(&Policy::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refusal.contains("limits.memory-mib = 512"), "{refusal}");
        assert!(refusal.contains("policy.max-memory-mib"), "{refusal}");

        let strict = Policy {
            allowed_grants: vec![GrantKind::Config],
            ..Policy::default()
        };
        let refusal = Manifest::parse(GOOD)
            .expect("parses")
            .limits_under(&strict)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refusal.contains("`kv` grant is not allowed"), "{refusal}");
    }
}
