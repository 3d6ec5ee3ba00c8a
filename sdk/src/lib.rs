//! Write Outpost plugins in Rust.
//!
//! An Outpost plugin is a WebAssembly component that implements one *world*:
//! a printer driver, a payment tokenizer, a courier adapter or a forecaster.
//! This crate holds the bindings for all four (generated from the WIT in the
//! repository's `wit/` folder), plus small helpers for the host capabilities a
//! plugin may use: [`log`], [`kv`], [`config`], [`keystore`], [`outbox`] and
//! [`http`].
//!
//! # A plugin in one file
//!
//! ```no_run
//! use outpost_sdk::printer_driver::{
//!     DocumentKind, HealthReport, HealthStatus, Lifecycle, PluginInfo, Printer, PrinterStatus,
//!     Receipt, ShippingLabel, StatusProbe,
//! };
//! use outpost_sdk::types::PluginError;
//!
//! struct Driver;
//!
//! impl Lifecycle for Driver {
//!     fn info() -> PluginInfo {
//!         PluginInfo {
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             description: "Prints plain text".into(),
//!             support: "mailto:help@example.com".into(),
//!         }
//!     }
//!     fn health() -> HealthReport {
//!         HealthReport { status: HealthStatus::Ok, detail: String::new() }
//!     }
//!     fn migrate(_from: Option<String>) -> Result<(), PluginError> {
//!         Ok(())
//!     }
//! }
//!
//! impl Printer for Driver {
//!     fn render_label(label: ShippingLabel) -> Result<Vec<u8>, PluginError> {
//!         if label.reference.is_empty() {
//!             return Err(PluginError::invalid_input("reference: must not be empty"));
//!         }
//!         outpost_sdk::info!("label for {}", label.reference);
//!         Ok(format!("{}\n{}\n", label.ship_to.name, label.reference).into_bytes())
//!     }
//!     fn render_receipt(receipt: Receipt) -> Result<Vec<u8>, PluginError> {
//!         Ok(format!("{} {}\n", receipt.reference, receipt.total).into_bytes())
//!     }
//!     fn status_request(_kind: DocumentKind) -> StatusProbe {
//!         StatusProbe { request: Vec::new(), reply_bytes: 0 }
//!     }
//!     fn parse_status(_kind: DocumentKind, _reply: Vec<u8>) -> Result<PrinterStatus, PluginError> {
//!         Ok(PrinterStatus { ready: true, conditions: Vec::new(), detail: "no status".into() })
//!     }
//! }
//!
//! outpost_sdk::export_printer_driver!(Driver);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release` from a crate
//! with `crate-type = ["cdylib"]`, put a `plugin.toml` next to the `.wasm`, and
//! `outpost plugin add` the folder. `docs/plugin-guide.md` walks through it.
//!
//! # Capabilities
//!
//! A plugin may always [`log`]. It may use [`kv`], [`config`], [`keystore`],
//! [`outbox`] and outbound [`http`] only if its `plugin.toml` asks for them
//! under `[grants]`; the node refuses to install a component that imports a
//! capability its manifest does not request.

pub use outpost_sdk_core::{config, http, keystore, kv, log, outbox, types};

/// An in-memory host for native unit tests (the `testing` feature).
#[cfg(all(not(target_family = "wasm"), feature = "testing"))]
pub use outpost_sdk_core::testing;

/// The `printer-driver` world: implement [`Lifecycle`](printer_driver::Lifecycle)
/// and [`Printer`](printer_driver::Printer), then call [`export_printer_driver!`].
pub use outpost_sdk_printer_driver as printer_driver;
pub use outpost_sdk_printer_driver::export_printer_driver;

/// The `payment-tokenizer` world: implement
/// [`Lifecycle`](payment_tokenizer::Lifecycle) and
/// [`Tokenizer`](payment_tokenizer::Tokenizer), then call
/// [`export_payment_tokenizer!`].
pub use outpost_sdk_payment_tokenizer as payment_tokenizer;
pub use outpost_sdk_payment_tokenizer::export_payment_tokenizer;

/// The `courier-adapter` world: implement
/// [`Lifecycle`](courier_adapter::Lifecycle) and
/// [`Courier`](courier_adapter::Courier), then call [`export_courier_adapter!`].
pub use outpost_sdk_courier_adapter as courier_adapter;
pub use outpost_sdk_courier_adapter::export_courier_adapter;

/// The `forecaster` world at 0.2.0 (opening calendar, events, the methods
/// tried and warnings): implement [`Lifecycle`](forecaster::Lifecycle) and
/// [`Forecasting`](forecaster::Forecasting), then call [`export_forecaster!`].
pub use outpost_sdk_forecaster as forecaster;
pub use outpost_sdk_forecaster::export_forecaster;

/// The `forecaster` world at 0.1.0, for a forecaster not yet moved to 0.2.0:
/// nodes keep running it (`docs/wit.md`). Call [`export_forecaster_0_1!`].
pub use outpost_sdk_forecaster_0_1 as forecaster_0_1;
pub use outpost_sdk_forecaster_0_1::export_forecaster_0_1;

pub use outpost_sdk_core::{debug, error, info, trace, warn};
