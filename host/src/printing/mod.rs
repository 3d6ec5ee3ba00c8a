//! Printing: a driver plugin renders, the node delivers.
//!
//! A print request names a document and, optionally, a driver and a printer.
//! The node picks the driver (the one named, else `defaults.printer-driver`,
//! else the only printer driver installed), calls it in the sandbox to render
//! the document into device bytes, and sends those bytes over the printer's
//! transport. A status request goes the same way in reverse: the driver
//! supplies the probe bytes, the printer answers, the driver reads the answer.

pub mod preview;
pub mod transport;
pub mod virtual_printer;

pub use crate::bindings::printer::DocumentKind;
use crate::bindings::printer::{
    self, PrinterCondition, PrinterStatus, Receipt, ShippingLabel, StatusProbe,
};
use crate::bindings::types::PluginError;
use crate::call::CallError;
use crate::config::PrinterConfig;
use crate::node::Node;
use crate::plugin_id::PluginId;
use crate::plugins::{LoadedPlugin, PluginSlot};
use crate::sandbox::CallState;
use crate::worlds::PluginKind;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use transport::TransportError;
use wasmtime::Store;

#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("{0:?} is not a plugin id (vendor/name)")]
    BadDriverId(String),
    #[error("no plugin {0} is installed; `outpost plugin list` shows what is")]
    UnknownDriver(PluginId),
    #[error("{id} is installed but unavailable: {reason}")]
    DriverUnavailable { id: PluginId, reason: String },
    #[error("{id} is a {kind} plugin, not a printer driver")]
    NotADriver { id: PluginId, kind: PluginKind },
    #[error(
        "no printer driver to use: name one in the request, or set defaults.printer-driver in outpost.toml (installed drivers: {installed})"
    )]
    NoDefaultDriver { installed: String },
    #[error("no printer named {name:?}; configured printers: {known}")]
    UnknownPrinter { name: String, known: String },
    #[error(
        "no printer for {kind}s: name one in the request, or set defaults.{kind}-printer in outpost.toml"
    )]
    NoDefaultPrinter { kind: &'static str },
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("printer {printer}: {source}")]
    Transport {
        printer: String,
        source: TransportError,
    },
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// What a print did.
#[derive(Debug, Clone, Serialize)]
pub struct PrintJob {
    pub driver: String,
    pub driver_version: String,
    pub printer: String,
    /// "tcp 10.0.0.5:9100", "file /dev/usb/lp0", "stdout".
    pub destination: String,
    pub bytes: usize,
    pub render_ms: f64,
    pub send_ms: f64,
}

/// A printer's answer to a status query, as its driver read it.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub printer: String,
    pub driver: String,
    pub ready: bool,
    pub conditions: Vec<String>,
    pub detail: String,
}

/// A document to print. Moved once per print, so its size does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Document {
    Label(ShippingLabel),
    Receipt(Receipt),
}

impl Document {
    pub fn kind(&self) -> DocumentKind {
        match self {
            Document::Label(_) => DocumentKind::Label,
            Document::Receipt(_) => DocumentKind::Receipt,
        }
    }
}

pub fn kind_name(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Label => "label",
        DocumentKind::Receipt => "receipt",
    }
}

/// The WIT name of a printer condition: "paper-out".
pub fn condition_name(condition: PrinterCondition) -> &'static str {
    match condition {
        PrinterCondition::PaperOut => "paper-out",
        PrinterCondition::PaperLow => "paper-low",
        PrinterCondition::CoverOpen => "cover-open",
        PrinterCondition::Paused => "paused",
        PrinterCondition::HeadTooHot => "head-too-hot",
        PrinterCondition::RibbonOut => "ribbon-out",
        PrinterCondition::CutterError => "cutter-error",
        PrinterCondition::BufferFull => "buffer-full",
        PrinterCondition::OtherError => "other-error",
    }
}

fn millis(since: Instant) -> f64 {
    (since.elapsed().as_micros() as f64) / 1000.0
}

impl Node {
    /// The driver to use: `requested`, else the default printer driver.
    pub fn printer_driver(&self, requested: Option<&str>) -> Result<Arc<LoadedPlugin>, PrintError> {
        let Some(text) = requested else {
            return self
                .default_plugin(PluginKind::PrinterDriver)
                .ok_or_else(|| {
                    let installed: Vec<String> = self
                        .table
                        .all()
                        .into_iter()
                        .filter_map(|slot| match slot {
                            PluginSlot::Loaded(p) if p.kind() == PluginKind::PrinterDriver => {
                                Some(p.id().to_string())
                            }
                            _ => None,
                        })
                        .collect();
                    PrintError::NoDefaultDriver {
                        installed: if installed.is_empty() {
                            "none".into()
                        } else {
                            installed.join(", ")
                        },
                    }
                });
        };
        let id = PluginId::parse(text).map_err(|_| PrintError::BadDriverId(text.to_string()))?;
        match self.table.get(&id) {
            None => Err(PrintError::UnknownDriver(id)),
            Some(PluginSlot::Unavailable { reason, .. }) => {
                Err(PrintError::DriverUnavailable { id, reason })
            }
            Some(PluginSlot::Loaded(plugin)) if plugin.kind() != PluginKind::PrinterDriver => {
                Err(PrintError::NotADriver {
                    id,
                    kind: plugin.kind(),
                })
            }
            Some(PluginSlot::Loaded(plugin)) => Ok(plugin),
        }
    }

    /// The printer to use for `kind`: `requested`, else the configured default.
    pub fn printer(
        &self,
        requested: Option<&str>,
        kind: DocumentKind,
    ) -> Result<(String, PrinterConfig), PrintError> {
        let defaults = &self.config.defaults;
        let name = match (requested, kind) {
            (Some(name), _) => name,
            (None, DocumentKind::Label) => {
                defaults
                    .label_printer
                    .as_deref()
                    .ok_or(PrintError::NoDefaultPrinter {
                        kind: kind_name(kind),
                    })?
            }
            (None, DocumentKind::Receipt) => {
                defaults
                    .receipt_printer
                    .as_deref()
                    .ok_or(PrintError::NoDefaultPrinter {
                        kind: kind_name(kind),
                    })?
            }
        };
        let config = self
            .config
            .printers
            .get(name)
            .ok_or_else(|| PrintError::UnknownPrinter {
                name: name.to_string(),
                known: self
                    .config
                    .printers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok((name.to_string(), config.clone()))
    }

    /// Calls `function` of `driver`'s printer interface, in the sandbox.
    fn call_printer<R: Send>(
        &self,
        driver: &LoadedPlugin,
        function: &'static str,
        body: impl FnOnce(
            &printer::Guest,
            &mut Store<CallState>,
        ) -> wasmtime::Result<Result<R, PluginError>>
        + Send,
    ) -> Result<R, CallError> {
        self.invoker
            .call(driver, function, |store, instance, plugin| {
                let exports = plugin.printer().ok_or_else(|| {
                    wasmtime::format_err!("{} is not a printer driver", plugin.id())
                })?;
                let printer = exports.load(&mut *store, instance)?;
                body(&printer, store)
            })
    }

    /// Renders `document` with `driver`, in the sandbox.
    pub fn render(&self, driver: &LoadedPlugin, document: &Document) -> Result<Vec<u8>, CallError> {
        match document {
            Document::Label(label) => {
                self.call_printer(driver, "render-label", |printer, store| {
                    printer.call_render_label(store, label)
                })
            }
            Document::Receipt(receipt) => {
                self.call_printer(driver, "render-receipt", |printer, store| {
                    printer.call_render_receipt(store, receipt)
                })
            }
        }
    }

    /// The driver's status probe for a printer of `kind`.
    pub fn status_request(
        &self,
        driver: &LoadedPlugin,
        kind: DocumentKind,
    ) -> Result<StatusProbe, CallError> {
        self.call_printer(driver, "status-request", |printer, store| {
            printer.call_status_request(store, kind).map(Ok)
        })
    }

    /// The driver's reading of a printer's reply to its status probe.
    pub fn parse_status(
        &self,
        driver: &LoadedPlugin,
        kind: DocumentKind,
        reply: &[u8],
    ) -> Result<PrinterStatus, CallError> {
        self.call_printer(driver, "parse-status", |printer, store| {
            printer.call_parse_status(store, kind, reply)
        })
    }
}

/// Runs `work`, which calls `driver`'s `function`, on a blocking thread once
/// the driver has a free place (see `admission`); waiting holds no thread.
async fn in_sandbox<R: Send + 'static>(
    node: &Node,
    driver: &LoadedPlugin,
    function: &'static str,
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, PrintError> {
    let admission = node.invoker().admit(driver, function).await?;
    admission
        .run(work)
        .await
        .map_err(|_| PrintError::ShuttingDown)
}

/// Renders `document` and sends it to a printer.
pub async fn print(
    node: &Arc<Node>,
    driver: Option<&str>,
    printer: Option<&str>,
    document: Document,
) -> Result<PrintJob, PrintError> {
    let plugin = node.printer_driver(driver)?;
    let (printer_name, printer_config) = node.printer(printer, document.kind())?;
    let started = Instant::now();
    let bytes = {
        let node = node.clone();
        let plugin = plugin.clone();
        let function = match document.kind() {
            DocumentKind::Label => "render-label",
            DocumentKind::Receipt => "render-receipt",
        };
        in_sandbox(&node.clone(), &plugin.clone(), function, move || {
            node.render(&plugin, &document)
        })
        .await??
    };
    let render_ms = millis(started);
    let sending = Instant::now();
    transport::send(&printer_config, node.data_dir(), &bytes)
        .await
        .map_err(|source| PrintError::Transport {
            printer: printer_name.clone(),
            source,
        })?;
    let job = PrintJob {
        driver: plugin.id().to_string(),
        driver_version: plugin.version.to_string(),
        destination: transport::describe(&printer_config, node.data_dir()),
        printer: printer_name,
        bytes: bytes.len(),
        render_ms,
        send_ms: millis(sending),
    };
    tracing::debug!(
        driver = %job.driver,
        printer = %job.printer,
        bytes = job.bytes,
        "printed"
    );
    Ok(job)
}

/// Asks a printer how it is, through its driver.
pub async fn status(
    node: &Arc<Node>,
    driver: Option<&str>,
    printer: &str,
    kind: DocumentKind,
) -> Result<StatusReport, PrintError> {
    let plugin = node.printer_driver(driver)?;
    let (printer_name, printer_config) = node.printer(Some(printer), kind)?;
    let probe = {
        let node = node.clone();
        let plugin = plugin.clone();
        in_sandbox(
            &node.clone(),
            &plugin.clone(),
            "status-request",
            move || node.status_request(&plugin, kind),
        )
        .await??
    };
    // An empty probe waiting for no reply is a driver with no way to ask
    // (a printer language without status): nothing is sent, and the driver
    // reads the empty reply as it sees fit.
    let reply = if probe.request.is_empty() && probe.reply_bytes == 0 {
        Vec::new()
    } else {
        transport::query(&printer_config, &probe.request, probe.reply_bytes as usize)
            .await
            .map_err(|source| PrintError::Transport {
                printer: printer_name.clone(),
                source,
            })?
    };
    let status = {
        let node = node.clone();
        let plugin = plugin.clone();
        in_sandbox(&node.clone(), &plugin.clone(), "parse-status", move || {
            node.parse_status(&plugin, kind, &reply)
        })
        .await??
    };
    Ok(StatusReport {
        printer: printer_name,
        driver: plugin.id().to_string(),
        ready: status.ready,
        conditions: status
            .conditions
            .iter()
            .map(|c| condition_name(*c).to_string())
            .collect(),
        detail: status.detail,
    })
}
