//! Shipping labels in ZPL II.
//!
//! The layout scales with the media: sizes are chosen in millimetres and
//! converted with the print head's dots per mm, so the same label reads the
//! same on a 203 dpi and a 300 dpi printer. Text is wrapped here rather than by
//! the printer so the driver can tell, before anything prints, whether the
//! content fits the label, and refuse with the size it would need if not.

use crate::text::{printable, two_columns, wrap};
use outpost_sdk::config;
use outpost_sdk::printer_driver::{Barcode, ShippingLabel, Symbology};
use outpost_sdk::types::{Address, PluginError};
use std::fmt::Write;

/// Sizes in tenths of a millimetre.
const MARGIN: u32 = 30;
const SMALL: u32 = 25;
const NORMAL: u32 = 35;
const LARGE: u32 = 50;
const BANNER: u32 = 70;
const BARCODE_HEIGHT: u32 = 150;
const RULE: u32 = 4;

/// Font 0 is proportional; 0.6 of its height is a safe average width, so a
/// wrapped line never runs off the label.
const CHAR_WIDTH_PER_HEIGHT_PERCENT: u32 = 60;

/// The operator's `darkness` setting (ZPL `~SD`, 0 to 30), if set.
pub(crate) fn darkness_setting() -> Result<Option<u8>, PluginError> {
    match config::parse::<u8>("darkness")? {
        Some(darkness) if darkness > 30 => Err(PluginError::invalid_input(format!(
            "plugin-config `darkness` = {darkness}: must be between 0 and 30"
        ))),
        other => Ok(other),
    }
}

/// Escapes text for a `^FH_^FD` field: the command prefixes `^` and `~`, and
/// the escape character itself, become hex escapes; control characters become
/// spaces so they cannot end the field early.
fn field(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable(text).chars() {
        match c {
            '_' => out.push_str("_5F"),
            '^' => out.push_str("_5E"),
            '~' => out.push_str("_7E"),
            c => out.push(c),
        }
    }
    out
}

fn weight(grams: u32) -> String {
    let kg = grams / 1000;
    let rest = grams % 1000;
    if rest == 0 {
        format!("{kg} kg")
    } else {
        let decimals = format!("{rest:03}");
        format!("{kg}.{} kg", decimals.trim_end_matches('0'))
    }
}

struct Canvas {
    zpl: String,
    dots_per_mm: u32,
    width: u32,
    height: u32,
    margin: u32,
    y: u32,
}

impl Canvas {
    fn dots(&self, tenths_of_mm: u32) -> u32 {
        (tenths_of_mm * self.dots_per_mm).div_ceil(10)
    }

    fn usable_width(&self) -> u32 {
        self.width - 2 * self.margin
    }

    fn chars_per_line(&self, font: u32) -> usize {
        let char_width = (self.dots(font) * CHAR_WIDTH_PER_HEIGHT_PERCENT / 100).max(1);
        (self.usable_width() / char_width).max(1) as usize
    }

    fn line(&mut self, text: &str, font: u32) {
        let height = self.dots(font);
        let (x, y) = (self.margin, self.y);
        let _ = writeln!(
            self.zpl,
            "^FO{x},{y}^A0N,{height},{height}^FH_^FD{}^FS",
            field(text)
        );
        self.y += height + height / 4;
    }

    fn wrapped(&mut self, text: &str, font: u32) {
        for line in wrap(text, self.chars_per_line(font)) {
            self.line(&line, font);
        }
    }

    fn columns(&mut self, left: &str, right: &str, font: u32) {
        for line in two_columns(left, right, self.chars_per_line(font)) {
            self.line(&line, font);
        }
    }

    fn rule(&mut self) {
        let thickness = self.dots(RULE);
        self.y += thickness;
        let (x, y, w) = (self.margin, self.y, self.usable_width());
        let _ = writeln!(self.zpl, "^FO{x},{y}^GB{w},{thickness},{thickness}^FS");
        self.y += thickness * 3;
    }

    /// White text on a black bar: the service, readable from across a depot.
    fn banner(&mut self, text: &str) {
        let font = self.dots(BANNER);
        let lines = wrap(&text.to_uppercase(), self.chars_per_line(BANNER));
        let pad = font / 4;
        let bar = pad * 2 + lines.len() as u32 * (font + pad);
        let (x, y, w) = (self.margin, self.y, self.usable_width());
        let _ = writeln!(self.zpl, "^FO{x},{y}^GB{w},{bar},{bar}^FS");
        self.y += pad;
        for line in lines {
            let (x, y) = (self.margin + pad, self.y + pad / 2);
            let _ = writeln!(
                self.zpl,
                "^FO{x},{y}^FR^A0N,{font},{font}^FH_^FD{}^FS",
                field(&line)
            );
            self.y += font + pad;
        }
        self.y += pad * 2;
    }

    fn barcode(&mut self, barcode: &Barcode) -> Result<(), PluginError> {
        match barcode.symbology {
            Symbology::Code128 => self.code128(&barcode.data),
            Symbology::QrCode => self.qr_code(&barcode.data),
        }
    }

    fn code128(&mut self, data: &str) -> Result<(), PluginError> {
        // Code 128 subset B: 11 modules per character plus start, check and
        // stop symbols, and a 2-module termination bar.
        let modules = 11 * (data.chars().count() as u32 + 3) + 2;
        let mut module_width = (self.dots_per_mm / 4).max(1);
        while module_width > 1 && modules * module_width > self.usable_width() {
            module_width -= 1;
        }
        if modules * module_width > self.usable_width() {
            return Err(PluginError::invalid_input(format!(
                "barcode.data: {} characters of code128 need {} mm, wider than this label",
                data.chars().count(),
                (modules * module_width).div_ceil(self.dots_per_mm)
            )));
        }
        let height = self.dots(BARCODE_HEIGHT);
        let (x, y) = (self.margin, self.y);
        let _ = writeln!(
            self.zpl,
            "^FO{x},{y}^BY{module_width}^BCN,{height},Y,N,N^FH_^FD{}^FS",
            field(data)
        );
        // The printer sets the human-readable line under the bars.
        self.y += height + self.dots(NORMAL) * 2;
        Ok(())
    }

    fn qr_code(&mut self, data: &str) -> Result<(), PluginError> {
        // Byte-mode capacity at error correction level M, by QR version.
        const CAPACITY: [usize; 17] = [
            14, 26, 42, 62, 84, 106, 122, 152, 180, 213, 251, 287, 331, 362, 412, 450, 504,
        ];
        let version = CAPACITY
            .iter()
            .position(|capacity| data.len() <= *capacity)
            .map_or(CAPACITY.len() as u32, |index| index as u32 + 1);
        let modules = 17 + 4 * version;
        let magnification = (self.dots_per_mm / 2).clamp(1, 10);
        let size = modules * magnification;
        if size > self.usable_width() {
            return Err(PluginError::invalid_input(format!(
                "barcode.data: a QR code of {} bytes needs {} mm, wider than this label",
                data.len(),
                size.div_ceil(self.dots_per_mm)
            )));
        }
        let (x, y) = (self.margin, self.y);
        let _ = writeln!(
            self.zpl,
            "^FO{x},{y}^BQN,2,{magnification}^FH_^FDMA,{}^FS",
            field(data)
        );
        // ^BQ sets the symbol a few dots below the field origin.
        self.y += size + self.dots(NORMAL);
        Ok(())
    }

    fn address(&mut self, address: &Address, font: u32, uppercase_town: bool) {
        self.wrapped(&address.name, font);
        if let Some(company) = &address.company {
            self.wrapped(company, font);
        }
        for line in &address.lines {
            self.wrapped(line, font);
        }
        let mut town = address.city.clone();
        if let Some(region) = &address.region {
            town.push(' ');
            town.push_str(region);
        }
        if !address.postal_code.is_empty() {
            town.push(' ');
            town.push_str(&address.postal_code);
        }
        if uppercase_town {
            town = town.to_uppercase();
        }
        self.wrapped(&town, font);
        self.line(&address.country, font);
    }
}

pub(crate) fn render(label: &ShippingLabel, darkness: Option<u8>) -> Result<Vec<u8>, PluginError> {
    let dots_per_mm = u32::from(label.media.dots_per_mm);
    let mut canvas = Canvas {
        zpl: String::new(),
        dots_per_mm,
        width: label.media.width_mm * dots_per_mm,
        height: label.media.height_mm * dots_per_mm,
        margin: 0,
        y: 0,
    };
    canvas.margin = canvas.dots(MARGIN);
    canvas.y = canvas.margin;

    canvas.zpl.push_str("^XA\n");
    if let Some(darkness) = darkness {
        let _ = writeln!(canvas.zpl, "~SD{darkness:02}");
    }
    // UTF-8 field data, label size, origin at the top-left corner.
    let _ = writeln!(
        canvas.zpl,
        "^CI28\n^PW{}\n^LL{}\n^LH0,0",
        canvas.width, canvas.height
    );

    canvas.line("FROM", SMALL);
    canvas.address(&label.ship_from, SMALL, false);
    canvas.rule();
    canvas.line("TO", SMALL);
    canvas.address(&label.ship_to, LARGE, true);
    if let Some(phone) = &label.ship_to.phone {
        canvas.line(&format!("Tel {phone}"), SMALL);
    }
    canvas.rule();
    canvas.banner(&label.service);
    if let Some(barcode) = &label.barcode {
        canvas.barcode(barcode)?;
    }
    if let Some(tracking) = &label.tracking_number {
        let shown_by_barcode = label.barcode.as_ref().is_some_and(|b| &b.data == tracking);
        if !shown_by_barcode {
            canvas.wrapped(&format!("TRACKING {tracking}"), NORMAL);
        }
    }
    canvas.rule();
    let parcel = format!("PARCEL {} OF {}", label.parcel_number, label.parcel_count);
    canvas.columns(&format!("REF {}", label.reference), &parcel, NORMAL);
    if let Some(grams) = label.weight_grams {
        canvas.line(&format!("WEIGHT {}", weight(grams)), NORMAL);
    }
    for note in &label.notes {
        canvas.wrapped(note, NORMAL);
    }

    let bottom = canvas.height - canvas.margin;
    if canvas.y > bottom {
        let needed_mm = (canvas.y + canvas.margin).div_ceil(dots_per_mm);
        return Err(PluginError::invalid_input(format!(
            "media.height-mm: this label needs {needed_mm} mm but the media is {} mm tall; \
             use taller labels or shorten the notes and addresses",
            label.media.height_mm
        )));
    }

    let _ = writeln!(canvas.zpl, "^PQ{},0,1,Y\n^XZ", label.copies);
    Ok(canvas.zpl.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_smuggle_commands() {
        assert_eq!(field("a^XZ~JR_b"), "a_5EXZ_7EJR_5Fb");
        assert_eq!(field("line\nbreak"), "line break");
        assert_eq!(field("Zürich €"), "Zürich €");
    }

    #[test]
    fn weights_print_in_kilograms() {
        assert_eq!(weight(2000), "2 kg");
        assert_eq!(weight(1250), "1.25 kg");
        assert_eq!(weight(5), "0.005 kg");
    }
}
