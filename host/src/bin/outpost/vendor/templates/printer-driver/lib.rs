//! {{id}}: an Outpost printer driver.
//!
//! A driver turns documents into bytes; the node sends them to the printer the
//! operator configured. This skeleton renders plain text, which most printers
//! print as-is: replace `label_text` and `receipt_text` with your printer's
//! language (ZPL II, ESC/POS, ...). `plugins/thermal-printer` in the Outpost
//! repository is a complete driver.

use outpost_sdk::kv;
use outpost_sdk::printer_driver::{
    DocumentKind, HealthReport, HealthStatus, Lifecycle, PluginInfo, Printer, PrinterCondition,
    PrinterStatus, Receipt, ShippingLabel, StatusProbe,
};
use outpost_sdk::types::PluginError;

/// Documents rendered so far, as decimal text, for `health` (the `kv` grant).
const RENDERED: &str = "rendered";

struct Plugin;

fn rendered() -> Result<u64, PluginError> {
    let text = kv::get_string(RENDERED)?;
    Ok(text.and_then(|n| n.parse().ok()).unwrap_or(0))
}

// Replace: your printer's label language. The barcode prints as its data here.
fn label_text(label: &ShippingLabel) -> String {
    let (to, from) = (&label.ship_to, &label.ship_from);
    let mut lines = vec![label.service.to_uppercase(), "TO:".into(), to.name.clone()];
    lines.extend(to.company.iter().chain(&to.lines).cloned());
    lines.push(format!("{} {}", to.city, to.postal_code));
    lines.push(format!("FROM: {}, {}", from.name, from.postal_code));
    lines.push(format!("REF: {}", label.reference));
    if let Some(number) = &label.tracking_number {
        lines.push(format!("TRACKING: {number}"));
    }
    let kg = |g: u32| format!("  {}.{:02} kg", g / 1000, g % 1000 / 10);
    let (n, count) = (label.parcel_number, label.parcel_count);
    let weight = label.weight_grams.map(kg).unwrap_or_default();
    lines.push(format!("PARCEL {n} OF {count}{weight}"));
    lines.extend(label.notes.iter().map(|note| format!("** {note} **")));
    lines.extend(label.barcode.iter().map(|b| format!("[{}]", b.data)));
    lines.join("\n") + "\n"
}

// Replace: ESC/POS (or your printer's language), with a cut (GS V) when
// `paper.cut` and a drawer kick (ESC p) when `paper.open-drawer`.
fn receipt_text(receipt: &Receipt, width: usize) -> String {
    // `left` and `right` on one line of `width` characters; `left` is cut to fit.
    let row = |left: &str, right: String| {
        let w = width.saturating_sub(right.chars().count());
        let left: String = left.chars().take(w.saturating_sub(1)).collect();
        format!("{left:<w$}{right}")
    };
    let shop = &receipt.shop;
    let mut lines = vec![shop.name.clone()];
    lines.extend(shop.address_lines.iter().cloned());
    lines.extend(shop.tax_id.iter().map(|id| format!("VAT {id}")));
    lines.push(row(&receipt.reference, receipt.issued_at.to_string()));
    for line in &receipt.lines {
        let item = format!("{} x{}", line.description, line.quantity);
        lines.push(row(&item, line.total.amount()));
        if let Some(detail) = &line.detail {
            lines.push(row(&format!("  {detail}"), String::new()));
        }
    }
    lines.push("-".repeat(width));
    lines.push(row("Subtotal", receipt.subtotal.amount()));
    for tax in &receipt.taxes {
        lines.push(row(&tax.label, tax.amount.amount()));
    }
    lines.push(row("TOTAL", receipt.total.to_string()));
    for payment in &receipt.payments {
        lines.push(row(&payment.method, payment.amount.amount()));
    }
    lines.extend(receipt.change.iter().map(|c| row("Change", c.amount())));
    lines.extend(receipt.footer.iter().cloned());
    lines.join("\n") + "\n\n\n\n"
}

/// Counts a rendered document and logs it.
fn rendered_one(what: &str, reference: &str, bytes: Vec<u8>) -> Result<Vec<u8>, PluginError> {
    kv::set(RENDERED, (rendered()? + 1).to_string().as_bytes())?;
    outpost_sdk::info!("{what} {reference} rendered: {} bytes", bytes.len());
    Ok(bytes)
}

impl Lifecycle for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            // The node checks it against the package: bump the version in Cargo.toml only.
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Plain-text shipping labels and receipts".into(),
            support: "mailto:support@{{vendor}}.example".into(), // Replace: your address.
        }
    }

    fn health() -> HealthReport {
        // Keep it cheap: the node calls it every few seconds after an update.
        let (status, detail) = match rendered() {
            Ok(n) => (HealthStatus::Ok, format!("{n} documents rendered")),
            Err(error) => (HealthStatus::Degraded, error.message().to_string()),
        };
        HealthReport { status, detail }
    }

    fn migrate(from_version: Option<String>) -> Result<(), PluginError> {
        // Runs once before this version serves (`None` on a fresh install): rewrite
        // what an older version kept in kv here. An error keeps the old version.
        if let Some(previous) = from_version {
            outpost_sdk::info!("upgraded from {previous}: nothing to migrate yet");
        }
        Ok(())
    }
}

impl Printer for Plugin {
    fn render_label(label: ShippingLabel) -> Result<Vec<u8>, PluginError> {
        let invalid = |why: &str| Err(PluginError::invalid_input(why));
        if label.reference.trim().is_empty() {
            return invalid("label.reference: must not be empty");
        }
        if label.ship_to.name.trim().is_empty() || label.ship_to.postal_code.trim().is_empty() {
            return invalid("label.ship-to: name and postal-code must not be empty");
        }
        if label.parcel_number == 0 || label.parcel_number > label.parcel_count {
            return invalid("label.parcel-number: from 1 to parcel-count");
        }
        if !(1..=10).contains(&label.copies) {
            return invalid("label.copies: 1 to 10");
        }
        // A form feed between copies: text printers take it as "next label".
        let copies = vec![label_text(&label); usize::from(label.copies)];
        rendered_one("label", &label.reference, copies.join("\x0c").into_bytes())
    }

    fn render_receipt(receipt: Receipt) -> Result<Vec<u8>, PluginError> {
        let invalid = |why: &str| Err(PluginError::invalid_input(why));
        let width = usize::from(receipt.paper.columns);
        if receipt.reference.trim().is_empty() {
            return invalid("receipt.reference: must not be empty");
        }
        if !receipt.issued_at.is_valid() {
            return invalid("receipt.issued-at: not a real date and time");
        }
        if !(24..=64).contains(&width) {
            return invalid("receipt.paper.columns: 24 to 64");
        }
        let bytes = receipt_text(&receipt, width).into_bytes();
        rendered_one("receipt", &receipt.reference, bytes)
    }

    fn status_request(kind: DocumentKind) -> StatusProbe {
        let (request, reply_bytes) = match kind {
            // ESC/POS "DLE EOT 4": the paper sensor, one byte back.
            DocumentKind::Receipt => (vec![0x10, 0x04, 0x04], 1),
            // Replace: your label printer's status command (ZPL: "~HS").
            DocumentKind::Label => (Vec::new(), 0),
        };
        StatusProbe {
            request,
            reply_bytes,
        }
    }

    fn parse_status(kind: DocumentKind, reply: Vec<u8>) -> Result<PrinterStatus, PluginError> {
        let unknown = || PluginError::invalid_input("reply: not one ESC/POS status byte");
        let (ready, conditions, detail) = match (kind, reply.as_slice()) {
            (DocumentKind::Label, _) | (_, []) => (true, vec![], "no status reported"),
            // An ESC/POS status byte has bits 0x12 set and 0x81 clear.
            (_, [byte]) if byte & 0x93 == 0x12 => match (byte & 0x60, byte & 0x0c) {
                (0x60, _) => (false, vec![PrinterCondition::PaperOut], "paper out"),
                (_, 0x0c) => (true, vec![PrinterCondition::PaperLow], "paper low"),
                _ => (true, vec![], "paper ok"),
            },
            _ => return Err(unknown()),
        };
        let detail = detail.to_string();
        Ok(PrinterStatus {
            ready,
            conditions,
            detail,
        })
    }
}

outpost_sdk::export_printer_driver!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sdk::testing::TestHost;
    use outpost_sdk::types::{Address, LabelMedia};

    fn address(name: &str, postal_code: &str) -> Address {
        Address {
            name: name.into(),
            company: None,
            lines: vec!["Unit 4, Riverside Market".into()],
            city: "Bristol".into(),
            region: None,
            postal_code: postal_code.into(),
            country: "GB".into(),
            phone: None,
            email: None,
        }
    }

    fn label(reference: &str) -> ShippingLabel {
        ShippingLabel {
            media: LabelMedia {
                width_mm: 102,
                height_mm: 152,
                dots_per_mm: 8,
            },
            ship_from: address("Hollow Oak Bakery", "BS1 4DJ"),
            ship_to: address("Priya Natarajan", "BS8 1TH"),
            service: "DPD Next Day".into(),
            reference: reference.into(),
            tracking_number: Some("15501234567890".into()),
            weight_grams: Some(2350),
            parcel_number: 1,
            parcel_count: 2,
            barcode: None,
            notes: vec!["Fragile".into()],
            copies: 1,
        }
    }

    #[test]
    fn renders_a_label_and_counts_it() {
        let host = TestHost::new().kv_quota(4096).install();
        let bytes = Plugin::render_label(label("ORD-0042")).expect("label");
        let text = String::from_utf8(bytes).expect("plain text");
        assert!(text.contains("Priya Natarajan\n") && text.contains("REF: ORD-0042"));
        assert!(text.contains("PARCEL 1 OF 2  2.35 kg"), "{text}");
        assert_eq!(host.kv_get(RENDERED), Some(b"1".to_vec()));
        let logs = host.logs();
        assert!(logs.iter().any(|l| l.message.contains("label ORD-0042")));
    }

    #[test]
    fn refuses_a_label_without_a_reference() {
        let host = TestHost::new().kv_quota(4096).install();
        let error = Plugin::render_label(label("  ")).unwrap_err();
        assert!(matches!(&error, PluginError::InvalidInput(why) if why.contains("reference")));
        assert_eq!(host.kv_get(RENDERED), None, "nothing counted");
    }

    #[test]
    fn reads_the_paper_sensor() {
        let _host = TestHost::new().install();
        let status = Plugin::parse_status(DocumentKind::Receipt, vec![0x72]).expect("status");
        assert!(!status.ready && status.conditions == [PrinterCondition::PaperOut]);
        assert!(Plugin::parse_status(DocumentKind::Receipt, vec![0xff, 0]).is_err());
    }
}
