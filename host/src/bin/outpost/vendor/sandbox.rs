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
//!
//! The node's virtual devices are offered too, so a vendor tests against
//! what a stall's node does with its plugin's output. A printer driver's
//! node prints to a virtual printer (the one `outpost demo` uses: it keeps
//! each job and answers ZPL `~HS` and ESC/POS `DLE EOT` status probes):
//!
//! ```text
//! {"print": {"label": {...}}}   -> {"ok": {"printed": "^XA...", "rendered_bytes": 812}, "micros": 950}
//! {"printer-status": "receipt"}        -> {"ok": {"ready": true, ...}}
//! ```
//!
//! and with `--virtual-courier` a courier adapter's `api-url` is the
//! virtual courier API (`outpost demo`'s), whose bookings
//! `{"courier-shipments": null}` lists.

use anyhow::Context;
use outpost::call::CallError;
use outpost::config::{NodeConfig, PrinterConfig};
use outpost::dynamic::{self, DynamicCallError};
use outpost::failure::{CallFailure, PluginFailure};
use outpost::manifest::{MANIFEST_FILE_NAME, Manifest};
use outpost::node::{Node, NodeOptions};
use outpost::plugins::LoadedPlugin;
use outpost::printing::virtual_printer::VirtualPrinter;
use outpost::printing::{self, DocumentKind, PrintError};
use outpost::virtual_courier::VirtualCourier;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The version of this JSON-lines protocol, in the first line: the
/// test-kit refuses a sandbox speaking another.
const PROTOCOL: u64 = 1;

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
    /// Run the virtual courier API on 127.0.0.1 and make it the plugin's
    /// `api-url`
    #[arg(long)]
    pub virtual_courier: bool,
}

/// The virtual devices the sandbox runs beside its node.
struct Devices {
    runtime: tokio::runtime::Runtime,
    printer: Option<VirtualPrinter>,
    courier: Option<VirtualCourier>,
}

pub fn run(args: &SandboxArgs) -> anyhow::Result<()> {
    let manifest_path = args.package.join(MANIFEST_FILE_NAME);
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&manifest_text)
        .with_context(|| format!("{} is not valid", manifest_path.display()))?;
    let id = manifest.id.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the sandbox's runtime")?;
    let mut config = NodeConfig::default();
    let mut values = BTreeMap::new();
    let courier = if args.virtual_courier {
        let courier = runtime
            .block_on(VirtualCourier::start(([127, 0, 0, 1], 0).into()))
            .context("cannot start the virtual courier")?;
        values.insert("api-url".to_string(), toml::Value::String(courier.url()));
        Some(courier)
    } else {
        None
    };
    for pair in &args.plugin_config {
        let (key, value) = split_pair(pair, "--plugin-config KEY=VALUE")?;
        values.insert(key.to_string(), toml::Value::String(value.to_string()));
    }
    let printer = if manifest.world.qualified_name().contains("/printer-driver@") {
        let printer = runtime
            .block_on(VirtualPrinter::start())
            .context("cannot start the virtual printer")?;
        let device = PrinterConfig::Tcp {
            address: printer.address().to_string(),
            timeout_ms: 5_000,
        };
        config.printers = BTreeMap::from([
            ("labels".to_string(), device.clone()),
            ("receipts".to_string(), device),
        ]);
        config.defaults.label_printer = Some("labels".into());
        config.defaults.receipt_printer = Some("receipts".into());
        Some(printer)
    } else {
        None
    };
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
    let node = Arc::new(node);
    if courier.is_some() {
        // Bookings go out through the outbox, as on a running node.
        runtime.spawn(outpost::outbox::delivery::run(
            node.outbox().clone(),
            node.config().outbox.clone(),
            std::future::pending(),
        ));
    }
    let devices = Devices {
        runtime,
        printer,
        courier,
    };
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
    let mut first = install(&node, &args.package);
    first["protocol"] = json!(PROTOCOL);
    writeln!(out, "{first}")?;
    out.flush()?;
    if first.get("error").is_some() {
        return Ok(());
    }
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("cannot read a request")?
            == 0
        {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        // Whatever a request holds, it gets an answer and the node stays up.
        let answer = match serde_json::from_slice::<Value>(&line) {
            Ok(request) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer(&node, &devices, &id.to_string(), request)
            }))
            .unwrap_or_else(|_| failure("other", "the sandbox failed on this request".into())),
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

fn answer(node: &Arc<Node>, devices: &Devices, id: &str, request: Value) -> Value {
    if let Some(folder) = request.get("install").and_then(Value::as_str) {
        return install(node, Path::new(folder));
    }
    if let Some(document) = request.get("print") {
        return print(node, devices, id, document.clone());
    }
    if let Some(kind) = request.get("printer-status") {
        return printer_status(node, devices, kind);
    }
    if request.get("courier-shipments").is_some() {
        return match &devices.courier {
            Some(courier) => json!({"ok": courier.shipments().iter().map(|s| json!({
                "idempotency_key": s.idempotency_key,
                "shipment_id": s.shipment_id,
                "request": s.request,
                "tracking_numbers": s.tracking_numbers,
            })).collect::<Vec<_>>()}),
            None => failure(
                "bad-request",
                "no virtual courier runs: start the sandbox with --virtual-courier".into(),
            ),
        };
    }
    let Some(function) = request.get("call").and_then(Value::as_str) else {
        return failure(
            "bad-request",
            "a request is {\"call\": FUNCTION, \"args\": ...} or {\"install\": FOLDER}".into(),
        );
    };
    let plugin = match loaded(node, id) {
        Ok(plugin) => plugin,
        Err(answer) => return answer,
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

/// Prints `document` (`{"label": {...}}` or `{"receipt": {...}}`, the
/// `render-label`/`render-receipt` arguments as `outpost call` takes them):
/// the driver renders it in the sandbox and the node sends the bytes over
/// its printer transport to the virtual printer, answering with what the
/// printer received.
fn print(node: &Arc<Node>, devices: &Devices, id: &str, document: Value) -> Value {
    let Some(printer) = &devices.printer else {
        return failure(
            "bad-request",
            "only a printer driver's sandbox has a printer".into(),
        );
    };
    let (function, printer_name) = if document.get("label").is_some() {
        ("render-label", "labels")
    } else if document.get("receipt").is_some() {
        ("render-receipt", "receipts")
    } else {
        return failure(
            "bad-call",
            "print takes {\"label\": {...}} or {\"receipt\": {...}}".into(),
        );
    };
    let started = Instant::now();
    let plugin = match loaded(node, id) {
        Ok(plugin) => plugin,
        Err(answer) => return answer,
    };
    let bytes = dynamic::spread_arguments(node, &plugin, function, document)
        .and_then(|args| dynamic::call_for_api(node, &plugin, function, &args));
    let bytes = match bytes.map(|value| dynamic::bytes_from_json(&value)) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return failure("other", format!("{function} answered no bytes")),
        Err(error) => return failure(kind(&error), error.to_string()),
    };
    let before = printer.jobs().len();
    let device = match node.config().printers.get(printer_name) {
        Some(device) => device.clone(),
        None => return failure("other", format!("no printer {printer_name}")),
    };
    let sent =
        devices
            .runtime
            .block_on(printing::transport::send(&device, node.data_dir(), &bytes));
    let micros = started.elapsed().as_micros() as u64;
    let mut answer = match sent {
        Ok(()) => {
            let jobs = devices
                .runtime
                .block_on(printer.wait_for_jobs(before + 1, Duration::from_secs(10)));
            match jobs.get(before) {
                Some(received) => json!({"ok": {
                    "printed": dynamic::bytes_to_json(received),
                    "rendered_bytes": bytes.len(),
                }}),
                None => failure(
                    "other",
                    format!(
                        "the printer received nothing within 10 s ({} bytes rendered and sent)",
                        bytes.len()
                    ),
                ),
            }
        }
        Err(error) => failure("other", format!("sending to the printer: {error}")),
    };
    answer["micros"] = json!(micros);
    answer
}

/// The plugin as loaded now (an install may have replaced it), or the
/// answer saying it is not.
fn loaded(node: &Node, id: &str) -> Result<Arc<LoadedPlugin>, Value> {
    outpost::control::plugin_id(id)
        .ok()
        .and_then(|id| node.loaded(&id))
        .ok_or_else(|| failure("unavailable", format!("{id} is not loaded")))
}

/// The driver's status probe through the node's own status path, to the
/// virtual printer.
fn printer_status(node: &Arc<Node>, devices: &Devices, kind: &Value) -> Value {
    if devices.printer.is_none() {
        return failure(
            "bad-request",
            "only a printer driver's sandbox has a printer".into(),
        );
    }
    let (printer, kind) = match kind.as_str() {
        Some("label") => ("labels", DocumentKind::Label),
        Some("receipt") => ("receipts", DocumentKind::Receipt),
        _ => {
            return failure(
                "bad-call",
                "printer-status is \"label\" or \"receipt\"".into(),
            );
        }
    };
    match devices
        .runtime
        .block_on(printing::status(node, None, printer, kind))
    {
        Ok(report) => json!({ "ok": report }),
        Err(PrintError::Call(error)) => failure(kind_of_call(&error), error.to_string()),
        Err(error) => failure("other", error.to_string()),
    }
}

/// The test-kit's `Kind` for a failed call, kebab-case.
fn kind(error: &DynamicCallError) -> &'static str {
    match error {
        DynamicCallError::Call(call) => kind_of_call(call),
        DynamicCallError::CardData { .. } => "card-data",
        _ => "bad-call",
    }
}

fn kind_of_call(call: &CallError) -> &'static str {
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
