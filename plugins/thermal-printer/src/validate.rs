//! Checks a document before rendering it. Every error names the field (in the
//! WIT's own spelling) and the rule, so the caller knows what to fix.

use outpost_sdk::printer_driver::{Barcode, Receipt, ShippingLabel, Symbology};
use outpost_sdk::types::{Address, Money, PluginError};

/// Print-head resolutions thermal printers ship with: 152, 203, 300, 600 dpi.
const DOTS_PER_MM: [u8; 4] = [6, 8, 12, 24];
const MAX_COPIES: u16 = 100;

fn invalid(field: &str, rule: impl std::fmt::Display) -> PluginError {
    PluginError::invalid_input(format!("{field}: {rule}"))
}

fn not_blank(field: &str, value: &str) -> Result<(), PluginError> {
    if value.trim().is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

fn address(field: &str, address: &Address) -> Result<(), PluginError> {
    not_blank(&format!("{field}.name"), &address.name)?;
    if address.lines.is_empty() {
        return Err(invalid(
            &format!("{field}.lines"),
            "needs at least one street line",
        ));
    }
    for (index, line) in address.lines.iter().enumerate() {
        not_blank(&format!("{field}.lines[{index}]"), line)?;
    }
    not_blank(&format!("{field}.city"), &address.city)?;
    let country = &address.country;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            &format!("{field}.country"),
            format_args!("{country:?} is not an ISO 3166-1 alpha-2 code such as \"GB\""),
        ));
    }
    Ok(())
}

fn barcode(field: &str, barcode: &Barcode) -> Result<(), PluginError> {
    let data = &barcode.data;
    not_blank(&format!("{field}.data"), data)?;
    match barcode.symbology {
        Symbology::Code128 => {
            if data.len() > 80 {
                return Err(invalid(
                    &format!("{field}.data"),
                    "code128 holds at most 80 characters",
                ));
            }
            if let Some(bad) = data.chars().find(|c| !(' '..='~').contains(c)) {
                return Err(invalid(
                    &format!("{field}.data"),
                    format_args!("code128 takes printable ASCII only, not {bad:?}"),
                ));
            }
        }
        Symbology::QrCode => {
            if data.len() > 500 {
                return Err(invalid(
                    &format!("{field}.data"),
                    "a printable QR code holds at most 500 bytes",
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn shipping_label(label: &ShippingLabel) -> Result<(), PluginError> {
    let media = &label.media;
    if !(25..=220).contains(&media.width_mm) {
        return Err(invalid(
            "media.width-mm",
            format_args!("{} is outside 25..=220", media.width_mm),
        ));
    }
    if !(15..=1000).contains(&media.height_mm) {
        return Err(invalid(
            "media.height-mm",
            format_args!("{} is outside 15..=1000", media.height_mm),
        ));
    }
    if !DOTS_PER_MM.contains(&media.dots_per_mm) {
        return Err(invalid(
            "media.dots-per-mm",
            format_args!(
                "{} is not a print-head resolution; use 6, 8 (203 dpi), 12 (300 dpi) or 24",
                media.dots_per_mm
            ),
        ));
    }
    address("ship-from", &label.ship_from)?;
    address("ship-to", &label.ship_to)?;
    not_blank("service", &label.service)?;
    not_blank("reference", &label.reference)?;
    if let Some(tracking) = &label.tracking_number {
        not_blank("tracking-number", tracking)?;
    }
    if label.parcel_number == 0 || label.parcel_number > label.parcel_count {
        return Err(invalid(
            "parcel-number",
            format_args!(
                "{} is not between 1 and parcel-count ({})",
                label.parcel_number, label.parcel_count
            ),
        ));
    }
    if label.copies == 0 || label.copies > MAX_COPIES {
        return Err(invalid(
            "copies",
            format_args!("{} is outside 1..={MAX_COPIES}", label.copies),
        ));
    }
    if let Some(code) = &label.barcode {
        barcode("barcode", code)?;
    }
    Ok(())
}

/// Checks that `money` is in `currency`, the receipt's currency.
fn same_currency(field: &str, money: &Money, currency: &str) -> Result<(), PluginError> {
    if money.currency != currency {
        return Err(invalid(
            &format!("{field}.currency"),
            format_args!(
                "{} differs from the receipt total's {currency}",
                money.currency
            ),
        ));
    }
    Ok(())
}

fn sum<'a>(
    field: &str,
    amounts: impl Iterator<Item = &'a Money>,
    currency: &str,
) -> Result<Money, PluginError> {
    let mut total = Money::new(0, currency);
    for amount in amounts {
        total = total
            .checked_add(amount)
            .ok_or_else(|| invalid(field, "the amounts overflow"))?;
    }
    Ok(total)
}

pub(crate) fn receipt(receipt: &Receipt) -> Result<(), PluginError> {
    let currency = receipt.total.currency.as_str();
    if !receipt.total.has_valid_currency() {
        return Err(invalid(
            "total.currency",
            format_args!("{currency:?} is not an ISO 4217 code such as \"EUR\""),
        ));
    }
    not_blank("shop.name", &receipt.shop.name)?;
    not_blank("reference", &receipt.reference)?;
    if !receipt.issued_at.is_valid() {
        return Err(invalid("issued-at", "is not a real date and time"));
    }
    if !(24..=64).contains(&receipt.paper.columns) {
        return Err(invalid(
            "paper.columns",
            format_args!("{} is outside 24..=64", receipt.paper.columns),
        ));
    }
    if receipt.lines.is_empty() {
        return Err(invalid("lines", "a receipt needs at least one line"));
    }
    for (index, line) in receipt.lines.iter().enumerate() {
        let field = format!("lines[{index}]");
        not_blank(&format!("{field}.description"), &line.description)?;
        if line.quantity == 0 {
            return Err(invalid(&format!("{field}.quantity"), "must be at least 1"));
        }
        same_currency(&format!("{field}.unit-price"), &line.unit_price, currency)?;
        same_currency(&format!("{field}.total"), &line.total, currency)?;
    }
    same_currency("subtotal", &receipt.subtotal, currency)?;
    let lines_total = sum("lines", receipt.lines.iter().map(|l| &l.total), currency)?;
    if lines_total != receipt.subtotal {
        return Err(invalid(
            "subtotal",
            format_args!(
                "is {} but the lines add up to {lines_total}",
                receipt.subtotal
            ),
        ));
    }
    for (index, tax) in receipt.taxes.iter().enumerate() {
        not_blank(&format!("taxes[{index}].label"), &tax.label)?;
        same_currency(&format!("taxes[{index}].amount"), &tax.amount, currency)?;
    }
    let added_tax = sum(
        "taxes",
        receipt
            .taxes
            .iter()
            .filter(|t| !t.included)
            .map(|t| &t.amount),
        currency,
    )?;
    let expected_total = receipt
        .subtotal
        .checked_add(&added_tax)
        .ok_or_else(|| invalid("total", "the amounts overflow"))?;
    if expected_total != receipt.total {
        return Err(invalid(
            "total",
            format_args!(
                "is {} but subtotal plus the taxes not included is {expected_total}",
                receipt.total
            ),
        ));
    }
    for (index, payment) in receipt.payments.iter().enumerate() {
        not_blank(&format!("payments[{index}].method"), &payment.method)?;
        same_currency(
            &format!("payments[{index}].amount"),
            &payment.amount,
            currency,
        )?;
    }
    if let Some(change) = &receipt.change {
        same_currency("change", change, currency)?;
        let paid = sum(
            "payments",
            receipt.payments.iter().map(|p| &p.amount),
            currency,
        )?;
        let expected_change = paid
            .minor_units
            .checked_sub(receipt.total.minor_units)
            .ok_or_else(|| invalid("change", "the amounts overflow"))?;
        if change.minor_units != expected_change {
            return Err(invalid(
                "change",
                format_args!(
                    "is {change} but the payments ({paid}) less the total ({}) leave {}",
                    receipt.total,
                    Money::new(expected_change, currency)
                ),
            ));
        }
    }
    if let Some(code) = &receipt.barcode {
        barcode("barcode", code)?;
    }
    Ok(())
}
