//! A node: its data directory, database, engines, loaded plugins and printers.
//!
//! ```text
//! <data-dir>/
//!   outpost.toml          the operator's configuration (optional)
//!   outpost.redb          all state: plugins, components, kv
//!   api-token             the local API's bearer token (0600)
//!   compiled/             machine code, one file per component and engine
//!   plugins/<vendor>/<name>/<version>/assets/   installed read-only assets
//!   scratch/              per-call scratch folders, emptied at start
//!   printed/              where the default file printers append
//! ```

use crate::bindings::lifecycle::{HealthReport, PluginInfo};
use crate::call::{CallError, Invoker};
use crate::capabilities::Services;
use crate::capabilities::http::HttpLimits;
use crate::compile_cache::{CacheOutcome, CompileCache, CompileError};
use crate::config::{ConfigError, NodeConfig};
use crate::engine::{EngineError, EngineKind, Engines};
use crate::events::CentreEvents;
use crate::keystore::Keystore;
use crate::manifest::{Grants, Limits, Manifest, PluginId};
use crate::outbox::Outbox;
use crate::plugins::{LoadedPlugin, PluginSlot, PluginTable};
use crate::sandbox::{CallState, SandboxSpec};
use crate::store::{DATABASE_FILE_NAME, InstalledVersion, NodeStore, StoreError};
use crate::worlds::PluginKind;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasmtime::component::Linker;

pub const COMPILED_DIR: &str = "compiled";
pub const PLUGINS_DIR: &str = "plugins";
pub const SCRATCH_DIR: &str = "scratch";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("cannot set up the plugin linker: {0}")]
    Linker(String),
    #[error("{source}\n{advice}")]
    Damaged { source: StoreError, advice: String },
    #[error(
        "a restore is moving files in this data directory ({marker} is there); wait for it to \
         finish. If it was interrupted, run `outpost restore` again with --replace, then delete \
         that file"
    )]
    Restoring { marker: PathBuf },
}

/// How a node is opened.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub data_dir: PathBuf,
    pub config: NodeConfig,
    /// Where the configuration came from, for messages.
    pub config_origin: String,
}

impl NodeOptions {
    /// A node in `data_dir`, configured from `outpost.toml` there (or
    /// `config_path`), else from the embedded defaults.
    pub fn resolve(data_dir: &Path, config_path: Option<&Path>) -> Result<NodeOptions, NodeError> {
        let (config, config_origin) = NodeConfig::resolve(data_dir, config_path)?;
        Ok(NodeOptions {
            data_dir: data_dir.to_path_buf(),
            config,
            config_origin,
        })
    }
}

/// One linker per engine: a linker is tied to the engine it was made for.
struct Linkers {
    plain: Linker<CallState>,
    metered: OnceLock<Linker<CallState>>,
    creating_metered: Mutex<()>,
}

fn new_linker(engine: &wasmtime::Engine) -> Result<Linker<CallState>, NodeError> {
    let mut linker = Linker::new(engine);
    crate::capabilities::link(&mut linker).map_err(|e| NodeError::Linker(format!("{e:#}")))?;
    Ok(linker)
}

impl Linkers {
    fn get(&self, engines: &Engines, kind: EngineKind) -> Result<&Linker<CallState>, NodeError> {
        match kind {
            EngineKind::Plain => Ok(&self.plain),
            EngineKind::Metered => {
                if let Some(linker) = self.metered.get() {
                    return Ok(linker);
                }
                let _creating = self
                    .creating_metered
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(linker) = self.metered.get() {
                    return Ok(linker);
                }
                let linker = new_linker(engines.get(EngineKind::Metered)?)?;
                Ok(self.metered.get_or_init(|| linker))
            }
        }
    }
}

/// A plugin as listed by `outpost plugin list` and `GET /v1/plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub id: String,
    pub version: String,
    pub world: String,
    /// "active" or "unavailable".
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub description: String,
    pub grants: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsView>,
    /// Calls made since the node started.
    pub calls: u64,
    /// Calls the plugin answered with its own error (bad input, say).
    pub refused: u64,
    /// Calls the sandbox stopped: deadline, memory, trap, panic.
    pub failed: u64,
    /// What stopped the last of those.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
    /// True when requests that name no plugin of its kind use this one.
    pub default: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LimitsView {
    pub deadline_ms: u64,
    pub memory_mib: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    pub concurrency: u32,
}

impl From<Limits> for LimitsView {
    fn from(limits: Limits) -> Self {
        LimitsView {
            deadline_ms: limits.deadline.as_millis() as u64,
            memory_mib: limits.memory_bytes >> 20,
            fuel: limits.fuel,
            concurrency: limits.concurrency,
        }
    }
}

pub struct Node {
    pub(crate) data_dir: PathBuf,
    pub(crate) config: NodeConfig,
    config_origin: String,
    pub(crate) store: Arc<NodeStore>,
    pub(crate) engines: Arc<Engines>,
    linkers: Linkers,
    pub(crate) cache: CompileCache,
    pub(crate) table: PluginTable,
    pub(crate) invoker: Invoker,
    keystore: Arc<Keystore>,
    outbox: Arc<Outbox>,
    events: Arc<CentreEvents>,
    metrics: Arc<crate::metrics::Metrics>,
    started: Instant,
    /// Changes (installs, removals, update steps) run one at a time.
    pub(crate) changing: Mutex<()>,
    /// Held by an app during a sale: activations wait (see `update_lock`).
    pub update_lock: crate::update_lock::UpdateLock,
    /// One registry check at a time (the agent's and an operator's).
    pub(crate) checking: tokio::sync::Mutex<()>,
    /// The version to go back to, still loaded, for plugins on probation: a
    /// rollback is then a pointer store, with no code to map while calls run.
    pub(crate) fallbacks: Mutex<std::collections::HashMap<PluginId, Arc<LoadedPlugin>>>,
    /// A staged version waiting (held, deferred), still loaded: activating
    /// it then maps no code while calls run.
    pub(crate) staged: Mutex<std::collections::HashMap<PluginId, Arc<LoadedPlugin>>>,
    /// False on the throwaway node of the release checks: its plugins'
    /// outbound HTTP is refused whatever they are granted.
    pub(crate) outbound_http: bool,
    /// The apps' bearer token the served API checks: set when serving
    /// starts, replaced by a rotation (the old one is refused from then on).
    app_token: std::sync::RwLock<Option<String>>,
    /// Cut during a drill (see `network`).
    network: Arc<crate::network::Network>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("data_dir", &self.data_dir)
            .field("config_origin", &self.config_origin)
            .finish()
    }
}

/// With the data directory open to the node's group (0710, for the token),
/// everything else in it stays the node's alone, whatever umask made it.
#[cfg(unix)]
fn keep_from_group(data_dir: &Path, token_file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    let token = data_dir.join(token_file);
    for entry in entries.flatten() {
        let path = entry.path();
        // The token, and any folder it is in, stay as they are.
        if token.starts_with(&path) {
            continue;
        }
        if let Ok(metadata) = std::fs::symlink_metadata(&path)
            && !metadata.file_type().is_symlink()
        {
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                let _ =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !0o077));
            }
        }
    }
}

fn create_dir(path: &Path) -> Result<(), NodeError> {
    std::fs::create_dir_all(path).map_err(|source| NodeError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

impl Node {
    /// Opens (or creates) the node in `options.data_dir` and loads every
    /// installed plugin. A plugin that cannot be loaded is listed as
    /// unavailable with the reason; it does not stop the node.
    pub fn open(options: NodeOptions) -> Result<Node, NodeError> {
        let NodeOptions {
            data_dir,
            config,
            config_origin,
        } = options;
        create_dir(&data_dir)?;
        let restoring = data_dir.join(crate::backup::RESTORING_FILE);
        if restoring.exists() {
            return Err(NodeError::Restoring { marker: restoring });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // With the token shared, the group may pass through to it (by
            // its name) and list nothing; otherwise nobody but the node.
            let mode = if config.api.share_token_with_group {
                0o710
            } else {
                0o700
            };
            let _ = std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(mode));
            if config.api.share_token_with_group {
                keep_from_group(&data_dir, &config.api.token_file);
            }
        }
        let store = match NodeStore::open(&data_dir.join(DATABASE_FILE_NAME)) {
            Ok(store) => Arc::new(store),
            Err(source @ StoreError::Corrupt { .. }) => {
                return Err(match crate::backup::local::newest_good(&data_dir) {
                    Some((snapshot, manifest)) => NodeError::Damaged {
                        source,
                        advice: crate::backup::local::restore_advice(
                            &data_dir, &snapshot, &manifest,
                        ),
                    },
                    None => NodeError::Store(source),
                });
            }
            Err(error) => return Err(error.into()),
        };
        // The node's fleet identity is made at first start. Trading does
        // not need it, so a problem with it is reported, not fatal: joining
        // a fleet names it again.
        if let Err(error) = crate::fleet::identity(&data_dir) {
            tracing::warn!("the node's identity key: {error}");
        }
        store.set_disk_reserve(config.policy.disk_reserve_mib << 20);
        let engines = Arc::new(Engines::new(&config.engine, &config.policy)?);
        let cache = CompileCache::new(&data_dir.join(COMPILED_DIR))?;
        let scratch_root = data_dir.join(SCRATCH_DIR);
        crate::capabilities::files::clear_scratch_root(&scratch_root);
        let linkers = Linkers {
            plain: new_linker(engines.get(EngineKind::Plain)?)?,
            metered: OnceLock::new(),
            creating_metered: Mutex::new(()),
        };
        let keystore = Arc::new(Keystore::new(store.clone(), &data_dir));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let network = Arc::new(crate::network::Network::default());
        let outbox = Arc::new(
            Outbox::new(store.clone())
                .metered(metrics.clone())
                .on_network(network.clone()),
        );
        let events = Arc::new(CentreEvents::new(
            outbox.clone(),
            store.clone(),
            config.centre.events_url.clone(),
        ));
        let services = Services {
            keystore: keystore.clone(),
            outbox: outbox.clone(),
            http_limits: HttpLimits {
                timeout: Duration::from_millis(config.policy.http_timeout_ms),
                max_response_bytes: config.policy.http_max_response_bytes,
            },
            network: network.clone(),
        };
        let invoker = Invoker::new(
            engines.clone(),
            store.clone(),
            scratch_root,
            services,
            metrics.clone(),
        );
        let node = Node {
            data_dir,
            config,
            config_origin,
            store,
            engines,
            linkers,
            cache,
            table: PluginTable::default(),
            invoker,
            keystore,
            outbox,
            events,
            metrics,
            started: Instant::now(),
            changing: Mutex::new(()),
            update_lock: Default::default(),
            checking: tokio::sync::Mutex::new(()),
            fallbacks: Mutex::new(std::collections::HashMap::new()),
            staged: Mutex::new(std::collections::HashMap::new()),
            outbound_http: true,
            app_token: std::sync::RwLock::new(None),
            network,
        };
        // Every update cut short by a crash completes or rolls back before
        // anything is loaded: the table shows what was committed.
        node.store.replay_updates()?;
        for record in node.store.plugins()? {
            let slot = match node.load(&record.id, &record.active) {
                Ok((plugin, _)) => {
                    if plugin.kind() == crate::worlds::PluginKind::CourierAdapter {
                        node.metrics.courier(record.id.as_str());
                    }
                    PluginSlot::Loaded(Arc::new(plugin))
                }
                Err(reason) => {
                    tracing::warn!(plugin = %record.id, "installed plugin is unavailable: {reason}");
                    PluginSlot::Unavailable {
                        id: record.id.clone(),
                        version: record.active.version.clone(),
                        reason,
                    }
                }
            };
            node.table.put(slot);
        }
        node.tidy()?;
        Ok(node)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Holds off every other change (install, removal, update step, grant
    /// approval, backup) until the guard is dropped.
    pub(crate) fn lock_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The switch a drill cuts the node off the outside world with.
    pub fn network(&self) -> &crate::network::Network {
        &self.network
    }

    /// True while a drill has the node cut off.
    pub fn is_offline(&self) -> bool {
        self.network.is_cut()
    }

    /// Sets the token the served API asks apps for (see
    /// `api::tokens::rotate_token`).
    pub fn set_app_token(&self, token: String) {
        *self.app_token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    /// True when `presented` is the apps' current token.
    pub fn is_app_token(&self, presented: &str) -> bool {
        let current = self.app_token.read().unwrap_or_else(|e| e.into_inner());
        current.as_deref().is_some_and(|token| {
            crate::api::tokens::same_token(presented.as_bytes(), token.as_bytes())
        })
    }

    pub fn config_origin(&self) -> &str {
        &self.config_origin
    }

    pub fn store(&self) -> &NodeStore {
        &self.store
    }

    pub fn keystore(&self) -> &Arc<Keystore> {
        &self.keystore
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The node's own events for the centre.
    pub fn events(&self) -> &Arc<CentreEvents> {
        &self.events
    }

    /// What the node counts (see `metrics`).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub fn invoker(&self) -> &Invoker {
        &self.invoker
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Where an installed version's assets live.
    pub(crate) fn assets_dir(&self, id: &PluginId, version: &semver::Version) -> PathBuf {
        self.data_dir
            .join(PLUGINS_DIR)
            .join(id.as_str())
            .join(version.to_string())
            .join(crate::package::ASSETS_DIR)
    }

    /// The manifest's grants with the origins this node's configuration
    /// names for it (see `Grants::origins_from_config`): what a new install
    /// or update asks the operator for.
    pub fn configured_grants(&self, manifest: &Manifest) -> Result<Grants, String> {
        manifest
            .grants
            .with_configured_origins(&self.config.plugin_values(&manifest.id))
    }

    /// The sandbox for `manifest`: its grants as configured here, cut to
    /// what the operator `approved` (none given: a version being checked,
    /// whose approval is asked for before it serves).
    pub(crate) fn sandbox_spec(
        &self,
        manifest: &Manifest,
        limits: Limits,
        approved: Option<&Grants>,
    ) -> SandboxSpec {
        let id = manifest.id.clone();
        let configured = self.configured_grants(manifest).unwrap_or_else(|why| {
            tracing::warn!(plugin = %id, "{why}; it reaches only the origins approved before");
            manifest.grants.clone()
        });
        let (grants, unapproved_origins) = match approved {
            Some(approved) => configured.within_approved(approved),
            None => (configured, Vec::new()),
        };
        if !unapproved_origins.is_empty() {
            tracing::warn!(
                plugin = %id,
                "its configuration names origins not approved; requests there are refused until \
                 `outpost plugin approve {id}`"
            );
        }
        SandboxSpec {
            assets_dir: manifest
                .grants
                .assets
                .then(|| self.assets_dir(&id, &manifest.version)),
            config_values: grants
                .config
                .then(|| Arc::new(self.config.plugin_values(&id))),
            http_allowed: if self.outbound_http {
                grants.http.clone().into()
            } else {
                Arc::from([])
            },
            keystore_keys: grants.keystore.clone().into(),
            outbox_grant: grants.outbox.clone().map(Arc::new),
            grants,
            unapproved_origins,
            limits,
            id,
        }
    }

    /// Compiles (or loads from the cache) and links `component` for `manifest`.
    pub(crate) fn prepare(
        &self,
        manifest: Manifest,
        approved: Option<&Grants>,
        digest: &str,
        wasm: impl FnOnce() -> Result<Vec<u8>, CompileError>,
    ) -> Result<(LoadedPlugin, CacheOutcome), PrepareError> {
        let limits = manifest
            .limits_under(&self.config.policy)
            .map_err(PrepareError::Policy)?;
        let kind = EngineKind::for_fuel(limits.fuel);
        let engine = self.engines.get(kind).map_err(NodeError::from)?;
        let linker = self.linkers.get(&self.engines, kind)?;
        let (component, outcome) = self
            .cache
            .load(engine, kind, digest, &self.store, wasm)
            .map_err(PrepareError::Compile)?;
        let spec = self.sandbox_spec(&manifest, limits, approved);
        let plugin = LoadedPlugin::link(
            engine,
            linker,
            kind,
            &component,
            manifest,
            spec,
            digest.to_string(),
        )
        .map_err(PrepareError::Link)?;
        Ok((plugin, outcome))
    }

    /// Loads an installed (or staged) version from the database.
    pub(crate) fn load(
        &self,
        id: &PluginId,
        installed: &InstalledVersion,
    ) -> Result<(LoadedPlugin, CacheOutcome), String> {
        let manifest = Manifest::parse(&installed.manifest)
            .map_err(|e| format!("its stored manifest no longer parses: {e}"))?;
        if &manifest.id != id {
            return Err(format!("its stored manifest names {}", manifest.id));
        }
        let digest = installed.component_digest.clone();
        let store = self.store.clone();
        self.prepare(
            manifest,
            Some(&installed.grants),
            &installed.component_digest,
            move || {
                store
                    .component(&digest)
                    .map_err(CompileError::Store)?
                    .ok_or_else(|| {
                        CompileError::Invalid(format!(
                            "component {digest} is missing from the node database"
                        ))
                    })
            },
        )
        .map_err(|e| e.to_string())
    }

    /// Removes compiled code and asset folders nothing refers to any more.
    pub(crate) fn tidy(&self) -> Result<(), StoreError> {
        let records = self.store.plugins()?;
        let mut digests = Vec::new();
        let mut asset_dirs = Vec::new();
        for record in &records {
            for version in std::iter::once(&record.active).chain(record.previous.as_ref()) {
                digests.push(version.component_digest.clone());
                asset_dirs.push(self.assets_dir(&record.id, &version.version));
            }
        }
        for update in self.store.updates()? {
            // An update being prepared has its assets unpacked but nothing
            // in the database yet; keep them while it runs.
            if let Some(staged) = &update.staged {
                digests.push(staged.component_digest.clone());
            }
            asset_dirs.push(self.assets_dir(&update.plugin, &update.to));
        }
        self.cache.retain(&digests);
        let plugins_root = self.data_dir.join(PLUGINS_DIR);
        let Ok(vendors) = std::fs::read_dir(&plugins_root) else {
            return Ok(());
        };
        for vendor in vendors.flatten() {
            for name in std::fs::read_dir(vendor.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                for version in std::fs::read_dir(name.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let assets = version.path().join(crate::package::ASSETS_DIR);
                    if !asset_dirs.contains(&assets) {
                        let _ = std::fs::remove_dir_all(version.path());
                    }
                }
                let _ = std::fs::remove_dir(name.path());
            }
            let _ = std::fs::remove_dir(vendor.path());
        }
        Ok(())
    }

    /// Every plugin the node knows, with its status.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        self.table
            .all()
            .into_iter()
            .map(|slot| self.status_of(&slot))
            .collect()
    }

    pub fn plugin_status(&self, id: &PluginId) -> Option<PluginStatus> {
        self.table.get(id).map(|slot| self.status_of(&slot))
    }

    fn status_of(&self, slot: &PluginSlot) -> PluginStatus {
        match slot {
            PluginSlot::Loaded(plugin) => PluginStatus {
                id: plugin.id().to_string(),
                version: plugin.version.to_string(),
                world: plugin.manifest.world.qualified_name(),
                status: "active",
                reason: None,
                description: plugin.manifest.description.clone(),
                grants: plugin.spec.grants.describe(),
                limits: Some(plugin.spec.limits.into()),
                calls: plugin.stats.calls(),
                refused: plugin.stats.refused(),
                failed: plugin.stats.failed(),
                last_failure: plugin.stats.last_failure(),
                default: self.is_default(plugin),
            },
            PluginSlot::Unavailable {
                id,
                version,
                reason,
            } => {
                let stored = self.store.plugin(id).ok().flatten();
                let manifest = stored
                    .as_ref()
                    .and_then(|r| Manifest::parse(&r.active.manifest).ok());
                PluginStatus {
                    id: id.to_string(),
                    version: version.to_string(),
                    world: manifest
                        .as_ref()
                        .map(|m| m.world.qualified_name())
                        .unwrap_or_default(),
                    status: "unavailable",
                    reason: Some(reason.clone()),
                    description: manifest
                        .as_ref()
                        .map(|m| m.description.clone())
                        .unwrap_or_default(),
                    grants: stored
                        .map(|r| r.active.grants.describe())
                        .unwrap_or_else(|| Grants::default().describe()),
                    limits: None,
                    calls: 0,
                    refused: 0,
                    failed: 0,
                    last_failure: None,
                    default: false,
                }
            }
        }
    }

    fn is_default(&self, plugin: &LoadedPlugin) -> bool {
        self.default_plugin(plugin.kind())
            .is_some_and(|default| default.id() == plugin.id())
    }

    /// The plugin used for `kind` when a request names none: the configured
    /// default if it is loaded, else the only loaded plugin of that kind.
    pub fn default_plugin(&self, kind: PluginKind) -> Option<Arc<LoadedPlugin>> {
        let defaults = &self.config.defaults;
        let configured = match kind {
            PluginKind::PrinterDriver => defaults.printer_driver.as_deref(),
            PluginKind::PaymentTokenizer => defaults.payment_tokenizer.as_deref(),
            PluginKind::CourierAdapter => defaults.courier_adapter.as_deref(),
            PluginKind::Forecaster => defaults.forecaster.as_deref(),
        };
        if let Some(id) = configured.and_then(|text| PluginId::parse(text).ok())
            && let Some(plugin) = self.table.loaded(&id).filter(|p| p.kind() == kind)
        {
            return Some(plugin);
        }
        let mut of_kind = self.table.all().into_iter().filter_map(|slot| match slot {
            PluginSlot::Loaded(plugin) if plugin.kind() == kind => Some(plugin),
            _ => None,
        });
        let only = of_kind.next()?;
        of_kind.next().is_none().then_some(only)
    }

    pub fn loaded(&self, id: &PluginId) -> Option<Arc<LoadedPlugin>> {
        self.table.loaded(id)
    }

    /// `lifecycle.info` of a loaded plugin.
    pub fn info(&self, plugin: &LoadedPlugin) -> Result<PluginInfo, CallError> {
        self.invoker
            .call(plugin, "info", |store, instance, plugin| {
                let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                lifecycle.call_info(&mut *store).map(Ok)
            })
    }

    /// `lifecycle.health` of a loaded plugin.
    pub fn health(&self, plugin: &LoadedPlugin) -> Result<HealthReport, CallError> {
        self.invoker
            .call(plugin, "health", |store, instance, plugin| {
                let lifecycle = plugin.lifecycle.load(&mut *store, instance)?;
                lifecycle.call_health(&mut *store).map(Ok)
            })
    }
}

/// Why an installed or offered component could not be made ready to call.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Policy(crate::manifest::ManifestError),
    #[error(transparent)]
    Compile(CompileError),
    #[error(transparent)]
    Link(crate::plugins::LinkError),
    #[error(transparent)]
    Node(#[from] NodeError),
}
