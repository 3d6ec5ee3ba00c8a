//! Receipts in ESC/POS.
//!
//! Text goes out in code page 858 (Latin-1 plus the euro sign), which every
//! Epson-compatible printer carries; characters outside it print as `?`.
//! Every command byte in ESC/POS is below 0x20, and control characters in the
//! receipt's text become spaces, so no field can inject a command.

use crate::codepage::CP858;
use crate::text::{printable, two_columns, wrap};
use outpost_sdk::printer_driver::{Barcode, Receipt, Symbology};
use outpost_sdk::types::PluginError;

const ESC: u8 = 0x1b;
const GS: u8 = 0x1d;

/// Widest logo that fits 80 mm paper at 203 dpi, and a sane height.
const LOGO_MAX_WIDTH: usize = 576;
const LOGO_MAX_HEIGHT: usize = 256;

/// The operator's `logo` setting: print `assets/logo.pbm` at the top.
pub(crate) fn logo_setting() -> Result<bool, PluginError> {
    crate::bool_setting("logo")
}

/// A 1-bit raster image, rows of `bytes_per_row` bytes, most significant bit
/// leftmost, 1 for black: the layout of both PBM (P4) and ESC/POS `GS v 0`.
pub(crate) struct Logo {
    bytes_per_row: usize,
    rows: usize,
    bits: Vec<u8>,
}

impl Logo {
    pub(crate) fn load(path: &str) -> Result<Logo, PluginError> {
        let bytes = std::fs::read(path).map_err(|error| {
            PluginError::unavailable(format!("cannot read the logo {path}: {error}"))
        })?;
        Logo::parse(&bytes)
            .map_err(|why| PluginError::internal(format!("the logo {path} is unusable: {why}")))
    }

    /// Parses a binary PBM: `P4`, width, height (with `#` comments allowed
    /// between them), one whitespace byte, then the rows.
    fn parse(bytes: &[u8]) -> Result<Logo, String> {
        let mut rest = bytes
            .strip_prefix(b"P4")
            .ok_or("not a binary PBM file (it must start with P4)")?;
        let mut numbers = [0usize; 2];
        for number in &mut numbers {
            loop {
                match rest.first() {
                    Some(b'#') => {
                        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                        rest = &rest[end..];
                    }
                    Some(b) if b.is_ascii_whitespace() => rest = &rest[1..],
                    _ => break,
                }
            }
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 5 {
                return Err("the header's width and height are missing or too large".into());
            }
            *number = std::str::from_utf8(&rest[..digits])
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or("the header's width or height is not a number")?;
            rest = &rest[digits..];
        }
        let [width, height] = numbers;
        match rest.first() {
            Some(b) if b.is_ascii_whitespace() => rest = &rest[1..],
            _ => return Err("the header does not end in whitespace".into()),
        }
        if width == 0 || height == 0 || width > LOGO_MAX_WIDTH || height > LOGO_MAX_HEIGHT {
            return Err(format!(
                "{width}x{height} pixels; a receipt logo must be at most \
                 {LOGO_MAX_WIDTH}x{LOGO_MAX_HEIGHT}"
            ));
        }
        let bytes_per_row = width.div_ceil(8);
        let expected = bytes_per_row * height;
        if rest.len() < expected {
            return Err(format!(
                "it is truncated: {} bytes of pixels where {width}x{height} needs {expected}",
                rest.len()
            ));
        }
        Ok(Logo {
            bytes_per_row,
            rows: height,
            bits: rest[..expected].to_vec(),
        })
    }
}

/// Encodes text in code page 858.
fn encode(text: &str, out: &mut Vec<u8>) {
    for c in printable(text).chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            let byte = CP858
                .binary_search_by_key(&c, |&(unicode, _)| unicode)
                .map_or(b'?', |index| CP858[index].1);
            out.push(byte);
        }
    }
}

struct Writer {
    out: Vec<u8>,
    columns: usize,
}

impl Writer {
    fn command(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn line(&mut self, text: &str) {
        encode(text, &mut self.out);
        self.out.push(b'\n');
    }

    fn wrapped(&mut self, text: &str, width: usize) {
        for line in wrap(text, width) {
            self.line(&line);
        }
    }

    fn columns(&mut self, left: &str, right: &str, width: usize) {
        for line in two_columns(left, right, width) {
            self.line(&line);
        }
    }

    fn rule(&mut self) {
        let rule = "-".repeat(self.columns);
        self.line(&rule);
    }

    fn align(&mut self, alignment: u8) {
        self.command(&[ESC, b'a', alignment]);
    }

    fn bold(&mut self, on: bool) {
        self.command(&[ESC, b'E', u8::from(on)]);
    }

    /// Character size: width and height multipliers from 1 to 8.
    fn size(&mut self, width: u8, height: u8) {
        self.command(&[GS, b'!', ((width - 1) << 4) | (height - 1)]);
    }

    fn logo(&mut self, logo: &Logo) {
        let [x_low, x_high] = (logo.bytes_per_row as u16).to_le_bytes();
        let [y_low, y_high] = (logo.rows as u16).to_le_bytes();
        self.command(&[GS, b'v', b'0', 0, x_low, x_high, y_low, y_high]);
        self.command(&logo.bits);
        self.out.push(b'\n');
    }

    fn barcode(&mut self, barcode: &Barcode) {
        match barcode.symbology {
            Symbology::Code128 => {
                // Height 80 dots, module width 2, readable text below, then
                // GS k 73 with code set B selected by the "{B" prefix.
                self.command(&[GS, b'h', 80, GS, b'w', 2, GS, b'H', 2]);
                let mut data = b"{B".to_vec();
                encode(&barcode.data, &mut data);
                let length = data.len().min(255) as u8;
                self.command(&[GS, b'k', 73, length]);
                self.command(&data[..usize::from(length)]);
            }
            Symbology::QrCode => {
                let data = barcode.data.as_bytes();
                let [store_low, store_high] = ((data.len() + 3) as u16).to_le_bytes();
                // Model 2, module size 6, error correction M, store, print.
                self.command(&[GS, b'(', b'k', 4, 0, 49, 65, 50, 0]);
                self.command(&[GS, b'(', b'k', 3, 0, 49, 67, 6]);
                self.command(&[GS, b'(', b'k', 3, 0, 49, 69, 49]);
                self.command(&[GS, b'(', b'k', store_low, store_high, 49, 80, 48]);
                self.command(data);
                self.command(&[GS, b'(', b'k', 3, 0, 49, 81, 48]);
            }
        }
        self.out.push(b'\n');
    }
}

pub(crate) fn render(receipt: &Receipt, logo: Option<&Logo>) -> Vec<u8> {
    let columns = usize::from(receipt.paper.columns);
    let mut w = Writer {
        out: Vec::with_capacity(1024),
        columns,
    };
    // Initialise, then select code page 858.
    w.command(&[ESC, b'@', ESC, b't', 19]);

    w.align(1);
    if let Some(logo) = logo {
        w.logo(logo);
    }
    w.bold(true);
    w.size(2, 2);
    w.wrapped(&receipt.shop.name, columns / 2);
    w.size(1, 1);
    w.bold(false);
    for line in &receipt.shop.address_lines {
        w.wrapped(line, columns);
    }
    if let Some(phone) = &receipt.shop.phone {
        w.wrapped(&format!("Tel {phone}"), columns);
    }
    if let Some(tax_id) = &receipt.shop.tax_id {
        w.wrapped(&format!("Tax ID {tax_id}"), columns);
    }
    w.line("");

    w.align(0);
    w.columns(
        &format!("Receipt {}", receipt.reference),
        &receipt.issued_at.to_string(),
        columns,
    );
    if let Some(cashier) = &receipt.cashier {
        w.wrapped(&format!("Served by {cashier}"), columns);
    }
    w.rule();
    for line in &receipt.lines {
        let description = if line.quantity == 1 {
            line.description.clone()
        } else {
            format!("{} x {}", line.quantity, line.description)
        };
        w.columns(&description, &line.total.amount(), columns);
        if line.quantity > 1 {
            w.line(&format!("    @ {}", line.unit_price.amount()));
        }
        if let Some(detail) = &line.detail {
            for part in wrap(detail, columns.saturating_sub(4)) {
                w.line(&format!("    {part}"));
            }
        }
    }
    w.rule();
    w.columns("Subtotal", &receipt.subtotal.amount(), columns);
    for tax in &receipt.taxes {
        let label = if tax.included {
            format!("{} (included)", tax.label)
        } else {
            tax.label.clone()
        };
        w.columns(&label, &tax.amount.amount(), columns);
    }
    w.bold(true);
    w.size(1, 2);
    w.columns(
        &format!("TOTAL {}", receipt.total.currency),
        &receipt.total.amount(),
        columns,
    );
    w.size(1, 1);
    w.bold(false);
    for payment in &receipt.payments {
        let label = match &payment.detail {
            Some(detail) => format!("{} {detail}", payment.method),
            None => payment.method.clone(),
        };
        w.columns(&label, &payment.amount.amount(), columns);
    }
    if let Some(change) = &receipt.change {
        w.columns("Change", &change.amount(), columns);
    }

    if !receipt.footer.is_empty() || receipt.barcode.is_some() {
        w.line("");
        w.align(1);
        for line in &receipt.footer {
            w.wrapped(line, columns);
        }
        if let Some(barcode) = &receipt.barcode {
            w.barcode(barcode);
        }
        w.align(0);
    }

    // Feed past the tear bar, then cut and kick the drawer as asked.
    w.command(&[ESC, b'd', 4]);
    if receipt.paper.cut {
        w.command(&[GS, b'V', 66, 3]);
    }
    if receipt.paper.open_drawer {
        w.command(&[ESC, b'p', 0, 25, 250]);
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_in_code_page_858() {
        let mut out = Vec::new();
        encode("€5 café ✓\x1b", &mut out);
        assert_eq!(out, b"\xd55 caf\x82 ? ");
    }

    #[test]
    fn pbm_logos_parse_with_comments_and_refuse_truncation() {
        let logo = Logo::parse(b"P4\n# a comment\n10 2\n\xff\xc0\x80\x00").expect("valid PBM");
        assert_eq!((logo.bytes_per_row, logo.rows), (2, 2));
        assert_eq!(logo.bits, [0xff, 0xc0, 0x80, 0x00]);

        let truncated = Logo::parse(b"P4 10 2 \xff\xc0").err().unwrap_or_default();
        assert!(truncated.contains("truncated"), "{truncated}");
        let too_wide = Logo::parse(b"P4 9999 1 \x00").err().unwrap_or_default();
        assert!(too_wide.contains("at most"), "{too_wide}");
        assert!(Logo::parse(b"P1 1 1 1").is_err());
    }
}
