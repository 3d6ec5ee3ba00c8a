//! The operator's node configuration, `outpost.toml`.
//!
//! Every key is optional; what is missing comes from the embedded defaults
//! (`default-config.toml`, which a test keeps identical to the `Default` impls
//! here). A section the operator writes replaces only the keys it names,
//! except `printers` and `plugin-config`, which replace the defaults whole: an
//! operator who lists their printers gets exactly those printers.

mod backup;
mod telemetry;
mod updates;

pub use backup::BackupSettings;
pub use telemetry::TelemetrySettings;
pub use updates::{UpdateSettings, Window};

use crate::plugin_id::PluginId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded defaults, as documentation and as what `outpost config` shows.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default-config.toml");

/// The name of the configuration file inside a data directory.
pub const CONFIG_FILE_NAME: &str = "outpost.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the node configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the node configuration {path} is a directory, not a file; put the configuration in a \
         file there (`outpost config --defaults` prints one to start from), or remove it to run \
         with the embedded defaults"
    )]
    NotAFile { path: PathBuf },
    #[error("{origin} is not a valid node configuration: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    pub api: ApiConfig,
    pub engine: EngineSettings,
    pub policy: Policy,
    #[serde(default = "default_printers")]
    pub printers: BTreeMap<String, PrinterConfig>,
    pub defaults: Defaults,
    pub outbox: OutboxSettings,
    pub centre: CentreConfig,
    pub updates: UpdateSettings,
    pub telemetry: TelemetrySettings,
    pub backup: BackupSettings,
    pub plugin_config: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            api: ApiConfig::default(),
            engine: EngineSettings::default(),
            policy: Policy::default(),
            printers: default_printers(),
            defaults: Defaults::default(),
            outbox: OutboxSettings::default(),
            centre: CentreConfig::default(),
            updates: UpdateSettings::default(),
            telemetry: TelemetrySettings::default(),
            backup: BackupSettings::default(),
            plugin_config: BTreeMap::new(),
        }
    }
}

/// How the outbox's delivery worker retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutboxSettings {
    /// Attempts before a message is dead; 0, the default, sets no limit, so
    /// only `give-up-after-hours` ends the retries. A count alone gives up
    /// after minutes once the back-off reaches its cap, far sooner than a
    /// stall can be offline.
    pub max_attempts: u32,
    /// How long the worker keeps trying a message before it is dead and
    /// waits for the operator. Measured as the time the node spent on it
    /// (the waits it scheduled plus the attempts), not by the wall clock, so
    /// a clock set forward cannot kill a message and time the node was
    /// switched off does not count.
    pub give_up_after_hours: u64,
    /// The wait after the first failure; it doubles per failure, with
    /// jitter, up to `max-backoff-ms`.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts. Also the furthest ahead a message
    /// is ever scheduled: one due later (the clock was ahead when it was
    /// scheduled) is brought forward to this long from now.
    pub max_backoff_ms: u64,
    /// How long one attempt may take, connecting included.
    pub attempt_timeout_ms: u64,
    /// Deliveries running at once.
    pub concurrency: u32,
    /// Delivered and dropped messages are forgotten after this long.
    pub keep_settled_hours: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            max_attempts: 0,
            give_up_after_hours: 168,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 300_000,
            attempt_timeout_ms: 10_000,
            concurrency: 4,
            keep_settled_hours: 168,
        }
    }
}

/// Where the node reports its own events (sales, labels printed, bookings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CentreConfig {
    /// An http(s) URL that takes a JSON POST per event, delivered through
    /// the outbox. Unset: the node keeps no events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Relative paths are inside the data directory.
    pub token_file: PathBuf,
    /// Sets the token inline instead of from `token-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token `/metrics` asks for (Prometheus's `credentials_file`).
    pub metrics_token_file: PathBuf,
    /// The operator console's password.
    pub console_password_file: PathBuf,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: u32,
    /// How long a client has to send a request's headers, and then its
    /// body; an idle connection is closed after it too.
    pub read_timeout_ms: u64,
    /// Web pages (a browser point of sale) that may call the API: each gets
    /// CORS and private-network preflight answers. None by default; a page
    /// from any other origin is refused.
    pub allowed_origins: Vec<crate::origin::Origin>,
    /// Make the token file readable by the node's group (mode 0640, data
    /// directory 0710), so an app on this box whose user is in that group
    /// can read it. Off: only the node's user can.
    pub share_token_with_group: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7171)),
            token_file: PathBuf::from("api-token"),
            token: None,
            metrics_token_file: PathBuf::from("metrics-token"),
            console_password_file: PathBuf::from("console-password"),
            max_connections: 256,
            read_timeout_ms: 10_000,
            allowed_origins: Vec::new(),
            share_token_with_group: false,
        }
    }
}

impl ApiConfig {
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineSettings {
    pub pool_slots: u32,
    pub epoch_tick_ms: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pool_slots: 16,
            epoch_tick_ms: 5,
        }
    }
}

impl EngineSettings {
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms)
    }
}

/// A capability a plugin can be granted. Logging needs no grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantKind {
    Kv,
    Config,
    Assets,
    Scratch,
    Keystore,
    Http,
    Outbox,
}

impl GrantKind {
    pub const ALL: [GrantKind; 7] = [
        GrantKind::Kv,
        GrantKind::Config,
        GrantKind::Assets,
        GrantKind::Scratch,
        GrantKind::Keystore,
        GrantKind::Http,
        GrantKind::Outbox,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GrantKind::Kv => "kv",
            GrantKind::Config => "config",
            GrantKind::Assets => "assets",
            GrantKind::Scratch => "scratch",
            GrantKind::Keystore => "keystore",
            GrantKind::Http => "http",
            GrantKind::Outbox => "outbox",
        }
    }
}

/// What the operator lets plugins have. A manifest that asks for more than
/// this is refused at install, with the key to change here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    pub default_deadline_ms: u64,
    pub max_deadline_ms: u64,
    pub default_memory_mib: u64,
    pub max_memory_mib: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fuel: Option<u64>,
    pub max_kv_quota_bytes: u64,
    pub max_scratch_quota_bytes: u64,
    pub max_assets_bytes: u64,
    /// The most undelivered outbox messages one plugin may have.
    pub max_outbox_pending: u32,
    /// The most bytes one plugin's outbox messages may keep, delivered ones
    /// included until they are forgotten (`grants.outbox.quota-bytes`).
    pub max_outbox_quota_bytes: u64,
    /// Free space on the data directory's disk that plugins may not use:
    /// their kv writes, outbox messages and scratch files are refused below
    /// it, so sales, events and updates still have room.
    pub disk_reserve_mib: u64,
    /// The largest answer a plugin's outbound HTTP request may read.
    pub http_max_response_bytes: u64,
    /// The longest a plugin's outbound request may wait to connect or for
    /// the answer to start (the call's deadline may cut it shorter).
    pub http_timeout_ms: u64,
    pub allowed_grants: Vec<GrantKind>,
    /// Calls of one plugin that run at once when its manifest names no
    /// `limits.concurrency`, and the most a manifest may ask for.
    pub default_concurrency: u32,
    pub max_concurrency: u32,
    /// Calls of one plugin that may wait for a place beyond those running;
    /// past that its callers are refused at once (503).
    pub max_queued_calls: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_deadline_ms: 500,
            max_deadline_ms: 5_000,
            default_memory_mib: 32,
            max_memory_mib: 64,
            max_fuel: None,
            max_kv_quota_bytes: 1 << 20,
            max_scratch_quota_bytes: 16 << 20,
            max_assets_bytes: 16 << 20,
            max_outbox_pending: 10_000,
            max_outbox_quota_bytes: 64 << 20,
            disk_reserve_mib: 64,
            http_max_response_bytes: 1 << 20,
            http_timeout_ms: 10_000,
            allowed_grants: GrantKind::ALL.to_vec(),
            default_concurrency: 2,
            max_concurrency: 8,
            max_queued_calls: 64,
        }
    }
}

impl Policy {
    pub fn max_memory_bytes(&self) -> u64 {
        self.max_memory_mib << 20
    }

    pub fn allows(&self, grant: GrantKind) -> bool {
        self.allowed_grants.contains(&grant)
    }
}

/// Where printed bytes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PrinterConfig {
    /// A network printer taking raw jobs, usually on port 9100.
    Tcp {
        address: String,
        #[serde(rename = "timeout-ms", default = "default_printer_timeout_ms")]
        timeout_ms: u64,
    },
    /// A device file (`/dev/usb/lp0`) or a plain file, written in append mode.
    File { path: PathBuf },
    /// The node's standard output. (A struct variant, not a unit one, so
    /// that a stray key under it is refused like anywhere else.)
    Stdout {},
}

fn default_printer_timeout_ms() -> u64 {
    5_000
}

fn default_printers() -> BTreeMap<String, PrinterConfig> {
    BTreeMap::from([
        (
            "labels".to_string(),
            PrinterConfig::File {
                path: PathBuf::from("printed/labels.zpl"),
            },
        ),
        (
            "receipts".to_string(),
            PrinterConfig::File {
                path: PathBuf::from("printed/receipts.escpos"),
            },
        ),
    ])
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Defaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub printer_driver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_tokenizer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub courier_adapter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecaster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_printer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_printer: Option<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            printer_driver: Some("outpost/thermal-printer".into()),
            payment_tokenizer: Some("outpost/card-tokenizer".into()),
            courier_adapter: Some("outpost/courier".into()),
            forecaster: Some("outpost/forecaster".into()),
            label_printer: Some("labels".into()),
            receipt_printer: Some("receipts".into()),
        }
    }
}

impl NodeConfig {
    /// Parses and checks a configuration. `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_string(),
            message: error.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        if path.is_dir() {
            return Err(ConfigError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        NodeConfig::parse(&text, &path.display().to_string())
    }

    /// The configuration a node in `data_dir` runs with: `explicit` if given,
    /// else `outpost.toml` in the data directory if present, else the
    /// embedded defaults. Returns where it came from, for messages.
    pub fn resolve(
        data_dir: &Path,
        explicit: Option<&Path>,
    ) -> Result<(NodeConfig, String), ConfigError> {
        if let Some(path) = explicit {
            return Ok((NodeConfig::load(path)?, path.display().to_string()));
        }
        let in_data_dir = data_dir.join(CONFIG_FILE_NAME);
        // Anything by that name is the operator's configuration: a directory
        // or a dangling link is reported, not quietly replaced by defaults.
        if in_data_dir.symlink_metadata().is_ok() {
            let config = NodeConfig::load(&in_data_dir)?;
            return Ok((config, in_data_dir.display().to_string()));
        }
        Ok((NodeConfig::default(), "embedded defaults".to_string()))
    }

    fn validate(&self) -> Result<(), String> {
        self.updates.validate()?;
        self.telemetry.validate()?;
        self.backup.validate()?;
        let engine = &self.engine;
        if !(1..=1024).contains(&engine.pool_slots) {
            return Err(format!(
                "engine.pool-slots = {} is outside 1..=1024",
                engine.pool_slots
            ));
        }
        if self.api.max_connections == 0 || self.api.read_timeout_ms == 0 {
            return Err("api.max-connections and api.read-timeout-ms must be at least 1".into());
        }
        if !(1..=100).contains(&engine.epoch_tick_ms) {
            return Err(format!(
                "engine.epoch-tick-ms = {} is outside 1..=100",
                engine.epoch_tick_ms
            ));
        }
        let policy = &self.policy;
        if policy.default_deadline_ms == 0 || policy.default_deadline_ms > policy.max_deadline_ms {
            return Err(format!(
                "policy.default-deadline-ms = {} must be between 1 and policy.max-deadline-ms ({})",
                policy.default_deadline_ms, policy.max_deadline_ms
            ));
        }
        if policy.max_memory_mib > 4096 {
            return Err(format!(
                "policy.max-memory-mib = {} exceeds the 4096 MiB a 32-bit plugin can address",
                policy.max_memory_mib
            ));
        }
        if policy.default_memory_mib == 0 || policy.default_memory_mib > policy.max_memory_mib {
            return Err(format!(
                "policy.default-memory-mib = {} must be between 1 and policy.max-memory-mib ({})",
                policy.default_memory_mib, policy.max_memory_mib
            ));
        }
        // No plugin may hold more than half the pool, so one that is slow or
        // hostile always leaves room for the others.
        let half_the_pool = (engine.pool_slots / 2).max(1);
        if policy.max_concurrency > half_the_pool {
            return Err(format!(
                "policy.max-concurrency = {} is more than half of engine.pool-slots ({}); one \
                 plugin could then hold the calls of all the others. Lower it to {half_the_pool}, \
                 or raise engine.pool-slots",
                policy.max_concurrency, engine.pool_slots
            ));
        }
        if policy.default_concurrency == 0 || policy.default_concurrency > policy.max_concurrency {
            return Err(format!(
                "policy.default-concurrency = {} must be between 1 and policy.max-concurrency ({})",
                policy.default_concurrency, policy.max_concurrency
            ));
        }
        for (name, printer) in &self.printers {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!(
                    "printers.{name:?}: printer names use letters, digits and '-'"
                ));
            }
            if let PrinterConfig::Tcp { address, .. } = printer
                && address
                    .rsplit_once(':')
                    .is_none_or(|(_, port)| port.parse::<u16>().is_err())
            {
                return Err(format!(
                    "printers.{name}.address = {address:?} needs a port, as in \"192.168.1.50:9100\""
                ));
            }
        }
        let printer_keys = [
            ("defaults.label-printer", &self.defaults.label_printer),
            ("defaults.receipt-printer", &self.defaults.receipt_printer),
        ];
        for (key, printer) in printer_keys {
            if let Some(printer) = printer
                && !self.printers.contains_key(printer)
            {
                let known: Vec<&str> = self.printers.keys().map(String::as_str).collect();
                return Err(format!(
                    "{key} = {printer:?} is not a configured printer; configured: {known:?}"
                ));
            }
        }
        let default_plugins = [
            ("defaults.printer-driver", &self.defaults.printer_driver),
            (
                "defaults.payment-tokenizer",
                &self.defaults.payment_tokenizer,
            ),
            ("defaults.courier-adapter", &self.defaults.courier_adapter),
            ("defaults.forecaster", &self.defaults.forecaster),
        ];
        for (key, plugin) in default_plugins {
            if let Some(plugin) = plugin {
                PluginId::parse(plugin).map_err(|e| format!("{key} = {plugin:?}: {e}"))?;
            }
        }
        let outbox = &self.outbox;
        if outbox.concurrency == 0 || outbox.concurrency > 64 {
            return Err(format!(
                "outbox.concurrency = {} must be between 1 and 64",
                outbox.concurrency
            ));
        }
        if outbox.give_up_after_hours == 0 || outbox.give_up_after_hours > 24 * 366 {
            return Err(format!(
                "outbox.give-up-after-hours = {} must be between 1 and 8784 (a year)",
                outbox.give_up_after_hours
            ));
        }
        if outbox.max_backoff_ms > 24 * 3_600_000 {
            return Err(format!(
                "outbox.max-backoff-ms = {} must be at most 86400000 (a day)",
                outbox.max_backoff_ms
            ));
        }
        if outbox.initial_backoff_ms == 0 || outbox.initial_backoff_ms > outbox.max_backoff_ms {
            return Err(format!(
                "outbox.initial-backoff-ms = {} must be between 1 and outbox.max-backoff-ms ({})",
                outbox.initial_backoff_ms, outbox.max_backoff_ms
            ));
        }
        if outbox.attempt_timeout_ms == 0 {
            return Err("outbox.attempt-timeout-ms must be at least 1".into());
        }
        if let Some(url) = &self.centre.events_url {
            crate::origin::Origin::of_url(url)
                .map_err(|e| format!("centre.events-url = {url:?}: {e}"))?;
        }
        for (plugin, values) in &self.plugin_config {
            PluginId::parse(plugin).map_err(|e| format!("plugin-config.{plugin:?}: {e}"))?;
            for (key, value) in values {
                if scalar_text(value).is_none() {
                    return Err(format!(
                        "plugin-config.\"{plugin}\".{key}: values are text, numbers or booleans"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The operator's values for `plugin`, as the text a plugin reads.
    pub fn plugin_values(&self, plugin: &PluginId) -> BTreeMap<String, String> {
        self.plugin_config
            .get(plugin.as_str())
            .map(|values| {
                values
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), scalar_text(value)?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The configuration as TOML, for `outpost config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_is_the_default() {
        let parsed = NodeConfig::parse(DEFAULT_CONFIG_TOML, "embedded").expect("embedded parses");
        assert_eq!(parsed, NodeConfig::default());
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let config = NodeConfig::parse(
            "[policy]\nmax-memory-mib = 128\n[api]\nlisten = \"127.0.0.1:9000\"\n",
            "test",
        )
        .expect("valid");
        assert_eq!(config.policy.max_memory_mib, 128);
        assert_eq!(config.policy.default_memory_mib, 32);
        assert_eq!(config.api.listen.port(), 9000);
        assert_eq!(config.printers, default_printers());
    }

    #[test]
    fn listing_printers_replaces_the_default_printers() {
        let config = NodeConfig::parse(
            "[printers.front]\ntransport = \"tcp\"\naddress = \"10.0.0.5:9100\"\n\
             [defaults]\nlabel-printer = \"front\"\nreceipt-printer = \"front\"\n",
            "test",
        )
        .expect("valid");
        assert_eq!(config.printers.len(), 1);
        assert_eq!(
            config.printers["front"],
            PrinterConfig::Tcp {
                address: "10.0.0.5:9100".into(),
                timeout_ms: 5_000
            }
        );
    }

    #[test]
    fn no_plugin_may_hold_more_than_half_the_pool() {
        let refused = NodeConfig::parse("[policy]\nmax-concurrency = 16\n", "outpost.toml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("more than half of engine.pool-slots (16)"),
            "{refused}"
        );
        NodeConfig::parse(
            "[engine]\npool-slots = 32\n[policy]\nmax-concurrency = 16\n",
            "t",
        )
        .expect("half of 32");
    }

    #[test]
    fn mistakes_name_the_key() {
        let typo = NodeConfig::parse("[policy]\nmax-memory-mb = 1\n", "outpost.toml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(typo.contains("max-memory-mb"), "{typo}");

        let dangling = NodeConfig::parse("[defaults]\nlabel-printer = \"nope\"\n", "outpost.toml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(dangling.contains("defaults.label-printer"), "{dangling}");

        let no_port = NodeConfig::parse(
            "[printers.x]\ntransport = \"tcp\"\naddress = \"10.0.0.5\"\n",
            "outpost.toml",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(no_port.contains("needs a port"), "{no_port}");

        let stray = NodeConfig::parse(
            "[printers.x]\ntransport = \"stdout\"\npath = \"/tmp/x\"\n[defaults]\nlabel-printer = \"x\"\nreceipt-printer = \"x\"\n",
            "outpost.toml",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(stray.contains("path"), "{stray}");

        let crossed = NodeConfig::parse(
            "[printers.x]\ntransport = \"file\"\naddress = \"10.0.0.5:9100\"\n[defaults]\nlabel-printer = \"x\"\nreceipt-printer = \"x\"\n",
            "outpost.toml",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(crossed.contains("address"), "{crossed}");
    }

    #[test]
    fn plugin_values_accept_scalars_as_text() {
        let config = NodeConfig::parse(
            "[plugin-config.\"acme/zpl\"]\ndarkness = 18\nlogo = true\nname = \"Shop\"\n",
            "test",
        )
        .expect("valid");
        let id = PluginId::parse("acme/zpl").expect("valid id");
        let values = config.plugin_values(&id);
        assert_eq!(values["darkness"], "18");
        assert_eq!(values["logo"], "true");
        assert_eq!(values["name"], "Shop");
        assert!(NodeConfig::parse("[plugin-config.\"acme/zpl\"]\nlist = [1]\n", "t").is_err());
    }
}
