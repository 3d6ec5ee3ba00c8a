//! Outpost's reference printer driver.
//!
//! Labels are rendered in ZPL II for Zebra-compatible label printers, receipts
//! in ESC/POS for Epson-compatible receipt printers. The driver only produces
//! bytes; the node owns the wire. It keeps two counters in `kv` for `health`,
//! reads two operator settings through `config`, and prints an optional logo
//! from its read-only `assets` folder.

mod codepage;
mod escpos;
mod status;
mod text;
mod validate;
mod zpl;

use outpost_sdk::printer_driver::{
    DocumentKind, HealthReport, HealthStatus, Lifecycle, PluginInfo, Printer, PrinterStatus,
    Receipt, ShippingLabel, StatusProbe,
};
use outpost_sdk::types::PluginError;
use outpost_sdk::{config, kv};

struct ThermalPrinter;

const LABELS_RENDERED: &str = "rendered/labels";
const RECEIPTS_RENDERED: &str = "rendered/receipts";
const SCHEMA_KEY: &str = "schema";
const SCHEMA: &[u8] = b"1";

/// Where the operator's logo lives inside the plugin package.
const LOGO_ASSET: &str = "/assets/logo.pbm";

fn read_counter(key: &str) -> Result<u64, PluginError> {
    match kv::get(key)? {
        None => Ok(0),
        Some(bytes) => {
            let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                PluginError::internal(format!(
                    "counter `{key}` holds {} bytes, not 8",
                    bytes.len()
                ))
            })?;
            Ok(u64::from_le_bytes(array))
        }
    }
}

fn bump_counter(key: &str) -> Result<(), PluginError> {
    let next = read_counter(key)?.saturating_add(1);
    kv::set(key, &next.to_le_bytes())?;
    Ok(())
}

impl Lifecycle for ThermalPrinter {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "ZPL II shipping labels and ESC/POS receipts for thermal printers".into(),
            support: "https://github.com/outpost-edge/outpost/issues".into(),
        }
    }

    fn health() -> HealthReport {
        let counts = read_counter(LABELS_RENDERED)
            .and_then(|labels| read_counter(RECEIPTS_RENDERED).map(|receipts| (labels, receipts)));
        let settings = zpl::darkness_setting().and_then(|_| escpos::logo_setting());
        match (counts, settings) {
            (Ok((labels, receipts)), Ok(_)) => HealthReport {
                status: HealthStatus::Ok,
                detail: format!("rendered {labels} labels and {receipts} receipts"),
            },
            (Err(error), _) => HealthReport {
                status: HealthStatus::Degraded,
                detail: format!("cannot read counters: {}", error.message()),
            },
            (_, Err(error)) => HealthReport {
                status: HealthStatus::Failing,
                detail: error.message().to_string(),
            },
        }
    }

    fn migrate(from_version: Option<String>) -> Result<(), PluginError> {
        match from_version {
            None => {
                kv::set(SCHEMA_KEY, SCHEMA)?;
                outpost_sdk::info!("fresh install: counters start at zero");
            }
            Some(previous) => {
                // 0.1.0 is the first schema; anything that stored state before
                // us and is not ours is refused rather than misread.
                match kv::get(SCHEMA_KEY)? {
                    Some(schema) if schema == SCHEMA => {}
                    None => kv::set(SCHEMA_KEY, SCHEMA)?,
                    Some(other) => {
                        return Err(PluginError::internal(format!(
                            "stored state from {previous} has schema {:?}; this version reads schema 1",
                            String::from_utf8_lossy(&other)
                        )));
                    }
                }
                outpost_sdk::info!("upgraded from {previous}");
            }
        }
        Ok(())
    }
}

impl Printer for ThermalPrinter {
    fn render_label(label: ShippingLabel) -> Result<Vec<u8>, PluginError> {
        validate::shipping_label(&label)?;
        let darkness = zpl::darkness_setting()?;
        let bytes = zpl::render(&label, darkness)?;
        bump_counter(LABELS_RENDERED)?;
        outpost_sdk::debug!("label {} rendered: {} bytes", label.reference, bytes.len());
        Ok(bytes)
    }

    fn render_receipt(receipt: Receipt) -> Result<Vec<u8>, PluginError> {
        validate::receipt(&receipt)?;
        let logo = if escpos::logo_setting()? {
            Some(escpos::Logo::load(LOGO_ASSET)?)
        } else {
            None
        };
        let bytes = escpos::render(&receipt, logo.as_ref());
        bump_counter(RECEIPTS_RENDERED)?;
        outpost_sdk::debug!(
            "receipt {} rendered: {} bytes",
            receipt.reference,
            bytes.len()
        );
        Ok(bytes)
    }

    fn status_request(kind: DocumentKind) -> StatusProbe {
        match kind {
            DocumentKind::Label => status::zpl_probe(),
            DocumentKind::Receipt => status::escpos_probe(),
        }
    }

    fn parse_status(kind: DocumentKind, reply: Vec<u8>) -> Result<PrinterStatus, PluginError> {
        match kind {
            DocumentKind::Label => status::parse_zpl(&reply),
            DocumentKind::Receipt => status::parse_escpos(&reply),
        }
    }
}

/// Reads an operator setting that must be a boolean.
fn bool_setting(key: &str) -> Result<bool, PluginError> {
    config::parse_or::<bool>(key, false)
}

outpost_sdk::export_printer_driver!(ThermalPrinter);
