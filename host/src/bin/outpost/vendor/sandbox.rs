//! `outpost vendor sandbox`: a throwaway node that runs one plugin package
//! for a vendor's tests (the `outpost-testkit` crate drives it).
//!
//! It is the node's own code, not a model of it: the package is installed
//! through the same install checks, with its `plugin.toml`'s limits and
//! grants under a default node's policy, and every call goes through the
//! sandbox, the deadlines and the memory limit a stall's node uses. The
//! test-kit talks to it in JSON lines on standard input and output, one
//! answer per request:
//!
//! ```text
//! {"call": "render-label", "args": {"label": {...}}}
//!     -> {"ok": <the answer>, "micros": 812}
//!     -> {"error": {"kind": "invalid-input", "message": "..."}, "micros": 90}
//! {"install": "/path/to/package"}      (an update: `migrate` runs)
//!     -> {"ok": {"id": "acme/zpl", "version": "1.3.0", "previous": "1.2.0"}}
//! ```
//!
//! Arguments take the shapes `outpost call @FILE` takes (an object keyed
//! by parameter name, an array in order, or the one argument), and answers
//! come back in the API's shape. The node's data lives in a temporary
//! folder removed on exit.

use anyhow::Context;
use outpost::config::NodeConfig;
use outpost::dynamic::{self, DynamicCallError};
use outpost::failure::{CallFailure, PluginFailure};
use outpost::manifest::{MANIFEST_FILE_NAME, Manifest};
use outpost::node::{Node, NodeOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the sandbox is started with.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// The package folder to install first (plugin.toml, the component)
    pub package: PathBuf,
    /// A plugin-config value the plugin reads, KEY=VALUE; repeat
    #[arg(long = "plugin-config", value_name = "KEY=VALUE")]
    pub plugin_config: Vec<String>,
    /// A key provisioned for the plugin, NAME=HEX (32 bytes); repeat
    #[arg(long = "key", value_name = "NAME=HEX")]
    pub keys: Vec<String>,
}

pub fn run(args: &SandboxArgs) -> anyhow::Result<()> {
    let manifest_path = args.package.join(MANIFEST_FILE_NAME);
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&manifest_text)
        .with_context(|| format!("{} is not valid", manifest_path.display()))?;
    let id = manifest.id.clone();

    let mut config = NodeConfig::default();
    let mut values = BTreeMap::new();
    for pair in &args.plugin_config {
        let (key, value) = split_pair(pair, "--plugin-config KEY=VALUE")?;
        values.insert(key.to_string(), toml::Value::String(value.to_string()));
    }
    if !values.is_empty() {
        config.plugin_config.insert(id.to_string(), values);
    }
    let work = tempfile::tempdir().context("cannot make a temporary folder for the node")?;
    let node = Node::open(NodeOptions {
        data_dir: work.path().join("node"),
        config,
        config_origin: "outpost vendor sandbox".into(),
    })
    .context("cannot open the sandbox node")?;
    for pair in &args.keys {
        let (name, hex_text) = split_pair(pair, "--key NAME=HEX")?;
        let material = outpost::keystore::parse_import(hex_text)
            .with_context(|| format!("--key {name}: the key must be 64 hex digits (32 bytes)"))?;
        node.keystore()
            .provision(&id, name, Some(material), true)
            .with_context(|| format!("cannot provision key {name:?}"))?;
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let first = install(&node, &args.package);
    writeln!(out, "{first}")?;
    out.flush()?;
    if first.get("error").is_some() {
        return Ok(());
    }
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read a request")?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) => answer(&node, &id.to_string(), request),
            Err(error) => failure("bad-request", format!("not JSON: {error}")),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

fn split_pair<'a>(pair: &'a str, form: &str) -> anyhow::Result<(&'a str, &'a str)> {
    pair.split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .with_context(|| format!("{pair:?} is not of the form {form}"))
}

fn failure(kind: &str, message: String) -> Value {
    json!({"error": {"kind": kind, "message": message}})
}

fn install(node: &Node, package: &Path) -> Value {
    match outpost::updates::install(node, package) {
        Ok(report) => json!({"ok": {
            "id": report.id,
            "version": report.version,
            "previous": report.previous,
        }}),
        Err(error) => failure("install-refused", error.to_string()),
    }
}

fn answer(node: &Node, id: &str, request: Value) -> Value {
    if let Some(folder) = request.get("install").and_then(Value::as_str) {
        return install(node, Path::new(folder));
    }
    let Some(function) = request.get("call").and_then(Value::as_str) else {
        return failure(
            "bad-request",
            "a request is {\"call\": FUNCTION, \"args\": ...} or {\"install\": FOLDER}".into(),
        );
    };
    let Some(plugin) = outpost::control::plugin_id(id)
        .ok()
        .and_then(|id| node.loaded(&id))
    else {
        return failure("unavailable", format!("{id} is not loaded"));
    };
    let document = request
        .get("args")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let started = Instant::now();
    let result = dynamic::spread_arguments(node, &plugin, function, document)
        .and_then(|args| dynamic::call_for_api(node, &plugin, function, &args));
    let micros = started.elapsed().as_micros() as u64;
    let mut answer = match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => failure(kind(&error), error.to_string()),
    };
    answer["micros"] = json!(micros);
    answer
}

/// The test-kit's `Kind` for a failed call, kebab-case.
fn kind(error: &DynamicCallError) -> &'static str {
    let call = match error {
        DynamicCallError::Call(call) => call,
        DynamicCallError::CardData { .. } => return "card-data",
        _ => return "bad-call",
    };
    match &call.failure {
        CallFailure::Plugin(PluginFailure::InvalidInput(_)) => "invalid-input",
        CallFailure::Plugin(PluginFailure::Unavailable(_)) => "unavailable",
        CallFailure::Plugin(PluginFailure::Denied(_)) => "denied",
        CallFailure::Plugin(PluginFailure::Internal(_)) => "internal",
        CallFailure::DeadlineExceeded(_) => "deadline-exceeded",
        CallFailure::MemoryLimit { .. } => "memory-limit",
        CallFailure::FuelExhausted(_) => "fuel-exhausted",
        CallFailure::Panicked(_) => "panicked",
        CallFailure::Trapped(_) | CallFailure::Exited(_) => "trapped",
        CallFailure::Busy(_) => "refused",
        _ => "other",
    }
}
