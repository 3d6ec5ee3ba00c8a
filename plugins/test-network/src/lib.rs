//! A test-only printer driver that talks to the printer itself over raw TCP,
//! which the sandbox forbids: the node must refuse it at install because the
//! component imports `wasi:sockets`.

use outpost_sdk::printer_driver::{
    DocumentKind, HealthReport, HealthStatus, Lifecycle, PluginInfo, Printer, PrinterStatus,
    Receipt, ShippingLabel, StatusProbe,
};
use outpost_sdk::types::PluginError;
use std::io::Write;

struct RawSocket;

impl Lifecycle for RawSocket {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tries to open a raw TCP socket (tests only)".into(),
            support: "tests".into(),
        }
    }

    fn health() -> HealthReport {
        HealthReport {
            status: HealthStatus::Ok,
            detail: String::new(),
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Printer for RawSocket {
    fn render_label(label: ShippingLabel) -> Result<Vec<u8>, PluginError> {
        let mut socket = std::net::TcpStream::connect(label.reference.as_str())
            .map_err(|e| PluginError::unavailable(e.to_string()))?;
        socket
            .write_all(b"^XA^XZ")
            .map_err(|e| PluginError::unavailable(e.to_string()))?;
        Ok(Vec::new())
    }

    fn render_receipt(_receipt: Receipt) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }

    fn status_request(_kind: DocumentKind) -> StatusProbe {
        StatusProbe {
            request: Vec::new(),
            reply_bytes: 0,
        }
    }

    fn parse_status(_kind: DocumentKind, _reply: Vec<u8>) -> Result<PrinterStatus, PluginError> {
        Err(PluginError::unavailable("no status"))
    }
}

outpost_sdk::export_printer_driver!(RawSocket);
