//! The JSON the local API accepts, and how it becomes WIT records.
//!
//! Field names are snake_case; optional fields may be left out; unknown fields
//! are refused (a typo should fail loudly, not print a label without the
//! tracking number). Money is `{"minor_units": 350, "currency": "EUR"}`.
//! `docs/api.md` has complete examples.

use crate::bindings::printer as wit;
use crate::bindings::types::{Address, LocalDatetime, Money};
use serde::{Deserialize, Deserializer};

fn one() -> u16 {
    1
}

fn default_dots_per_mm() -> u8 {
    8
}

fn default_columns() -> u8 {
    42
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// A printer driver plugin id; the default driver if absent.
    pub driver: Option<String>,
    /// A configured printer name; the default label printer if absent.
    pub printer: Option<String>,
    pub label: Label,
}

/// `POST /v1/updates/lock`: no plugin is swapped while it is held.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    /// How long; at most `updates.max-lock-seconds`.
    pub seconds: u64,
    /// Who holds it, for the operator: "till 1".
    pub holder: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRequest {
    pub driver: Option<String>,
    pub printer: Option<String>,
    pub receipt: Receipt,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyJson {
    pub minor_units: i64,
    pub currency: String,
}

impl From<MoneyJson> for Money {
    fn from(money: MoneyJson) -> Money {
        Money {
            minor_units: money.minor_units,
            currency: money.currency,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressJson {
    pub name: String,
    pub company: Option<String>,
    pub lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: String,
    pub country: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl From<AddressJson> for Address {
    fn from(a: AddressJson) -> Address {
        Address {
            name: a.name,
            company: a.company,
            lines: a.lines,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
            phone: a.phone,
            email: a.email,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Symbology {
    Code128,
    QrCode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BarcodeJson {
    pub symbology: Symbology,
    pub data: String,
}

impl From<BarcodeJson> for wit::Barcode {
    fn from(b: BarcodeJson) -> wit::Barcode {
        wit::Barcode {
            symbology: match b.symbology {
                Symbology::Code128 => crate::bindings::types::Symbology::Code128,
                Symbology::QrCode => crate::bindings::types::Symbology::QrCode,
            },
            data: b.data,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    pub width_mm: u32,
    pub height_mm: u32,
    #[serde(default = "default_dots_per_mm")]
    pub dots_per_mm: u8,
}

impl Default for Media {
    /// 4 x 6 inch stock at 203 dpi, the usual shipping label.
    fn default() -> Self {
        Media {
            width_mm: 102,
            height_mm: 152,
            dots_per_mm: 8,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    #[serde(default)]
    pub media: Media,
    pub ship_from: AddressJson,
    pub ship_to: AddressJson,
    pub service: String,
    pub reference: String,
    pub tracking_number: Option<String>,
    pub weight_grams: Option<u32>,
    #[serde(default = "one")]
    pub parcel_number: u16,
    #[serde(default = "one")]
    pub parcel_count: u16,
    pub barcode: Option<BarcodeJson>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default = "one")]
    pub copies: u16,
}

impl From<Label> for wit::ShippingLabel {
    fn from(l: Label) -> wit::ShippingLabel {
        wit::ShippingLabel {
            media: crate::bindings::types::LabelMedia {
                width_mm: l.media.width_mm,
                height_mm: l.media.height_mm,
                dots_per_mm: l.media.dots_per_mm,
            },
            ship_from: l.ship_from.into(),
            ship_to: l.ship_to.into(),
            service: l.service,
            reference: l.reference,
            tracking_number: l.tracking_number,
            weight_grams: l.weight_grams,
            parcel_number: l.parcel_number,
            parcel_count: l.parcel_count,
            barcode: l.barcode.map(Into::into),
            notes: l.notes,
            copies: l.copies,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shop {
    pub name: String,
    #[serde(default)]
    pub address_lines: Vec<String>,
    pub phone: Option<String>,
    pub tax_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLine {
    pub description: String,
    #[serde(default = "one_u32")]
    pub quantity: u32,
    pub unit_price: MoneyJson,
    pub total: MoneyJson,
    pub detail: Option<String>,
}

fn one_u32() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxLine {
    pub label: String,
    pub amount: MoneyJson,
    #[serde(default = "yes")]
    pub included: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub method: String,
    pub amount: MoneyJson,
    pub detail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    #[serde(default = "default_columns")]
    pub columns: u8,
    #[serde(default = "yes")]
    pub cut: bool,
    #[serde(default)]
    pub open_drawer: bool,
}

impl Default for Paper {
    fn default() -> Self {
        Paper {
            columns: default_columns(),
            cut: true,
            open_drawer: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub shop: Shop,
    pub reference: String,
    #[serde(deserialize_with = "local_datetime")]
    pub issued_at: LocalDatetime,
    pub cashier: Option<String>,
    pub lines: Vec<ReceiptLine>,
    pub subtotal: MoneyJson,
    #[serde(default)]
    pub taxes: Vec<TaxLine>,
    pub total: MoneyJson,
    #[serde(default)]
    pub payments: Vec<Payment>,
    pub change: Option<MoneyJson>,
    #[serde(default)]
    pub footer: Vec<String>,
    pub barcode: Option<BarcodeJson>,
    #[serde(default)]
    pub paper: Paper,
}

impl From<Receipt> for wit::Receipt {
    fn from(r: Receipt) -> wit::Receipt {
        wit::Receipt {
            shop: wit::Shop {
                name: r.shop.name,
                address_lines: r.shop.address_lines,
                phone: r.shop.phone,
                tax_id: r.shop.tax_id,
            },
            reference: r.reference,
            issued_at: r.issued_at,
            cashier: r.cashier,
            lines: r
                .lines
                .into_iter()
                .map(|line| wit::ReceiptLine {
                    description: line.description,
                    quantity: line.quantity,
                    unit_price: line.unit_price.into(),
                    total: line.total.into(),
                    detail: line.detail,
                })
                .collect(),
            subtotal: r.subtotal.into(),
            taxes: r
                .taxes
                .into_iter()
                .map(|tax| wit::TaxLine {
                    label: tax.label,
                    amount: tax.amount.into(),
                    included: tax.included,
                })
                .collect(),
            total: r.total.into(),
            payments: r
                .payments
                .into_iter()
                .map(|payment| wit::Payment {
                    method: payment.method,
                    amount: payment.amount.into(),
                    detail: payment.detail,
                })
                .collect(),
            change: r.change.map(Into::into),
            footer: r.footer,
            barcode: r.barcode.map(Into::into),
            paper: wit::ReceiptPaper {
                columns: r.paper.columns,
                cut: r.paper.cut,
                open_drawer: r.paper.open_drawer,
            },
        }
    }
}

/// What a request body may leave out, by field name (snake_case), and the
/// value the API then takes: the same defaults as the `#[serde(default)]`s
/// above, for the calls that take WIT-shaped JSON (`outpost call`, the
/// test-kit, and the API's own plugin calls through `dynamic`), so that
/// `docs/examples/` works with all of them. Options left out are `null`
/// there; the defaults are by field name, not by record, so those calls may
/// take a little more than the typed print routes, never less.
pub fn default_field(field: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match field {
        "copies" | "parcel_number" | "parcel_count" => json!(one()),
        "quantity" => json!(one_u32()),
        "included" | "cut" => json!(yes()),
        "open_drawer" => json!(false),
        "dots_per_mm" => json!(default_dots_per_mm()),
        "columns" => json!(default_columns()),
        "postal_code" => json!(""),
        "notes" | "address_lines" | "taxes" | "payments" | "footer" => json!([]),
        // A forecast request (forecaster@0.2.0) without events, and a
        // calendar that only names what it changes.
        "events" | "open_weekdays" | "closed_dates" | "open_dates" => json!([]),
        "utc_offset_minutes" => json!(0),
        // A quote request for every service.
        "service_codes" => json!([]),
        // A quote request collected now.
        "ready_at" => json!(crate::clock::now_seconds()),
        "media" => {
            let media = Media::default();
            json!({"width_mm": media.width_mm, "height_mm": media.height_mm, "dots_per_mm": media.dots_per_mm})
        }
        "paper" => {
            let paper = Paper::default();
            json!({"columns": paper.columns, "cut": paper.cut, "open_drawer": paper.open_drawer})
        }
        _ => return None,
    })
}

/// Parses "2026-11-23T14:05" or "2026-11-23 14:05:30". Range checks are the
/// driver's job; this only reads the shape.
pub fn parse_local_datetime(text: &str) -> Option<LocalDatetime> {
    let (date, time) = text.split_once(['T', ' '])?;
    let mut date_parts = date.split('-');
    let year = date_parts.next()?.parse().ok()?;
    let month = date_parts.next()?.parse().ok()?;
    let day = date_parts.next()?.parse().ok()?;
    if date_parts.next().is_some() {
        return None;
    }
    let mut time_parts = time.split(':');
    let hour = time_parts.next()?.parse().ok()?;
    let minute = time_parts.next()?.parse().ok()?;
    let second = match time_parts.next() {
        Some(seconds) => seconds.parse().ok()?,
        None => 0,
    };
    if time_parts.next().is_some() {
        return None;
    }
    Some(LocalDatetime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// "2026-11-23T14:05", or the WIT's own record (`{"year": 2026, ...}`, as
/// `outpost call` and a plugin crate's examples write it).
fn local_datetime<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LocalDatetime, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Record {
            year: u16,
            month: u8,
            day: u8,
            hour: u8,
            minute: u8,
            second: u8,
        },
    }
    match Either::deserialize(deserializer)? {
        Either::Text(text) => parse_local_datetime(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a local date and time such as \"2026-11-23T14:05:00\""
            ))
        }),
        Either::Record {
            year,
            month,
            day,
            hour,
            minute,
            second,
        } => Ok(LocalDatetime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_datetimes_parse_with_or_without_seconds() {
        let at = parse_local_datetime("2026-11-23T14:05").expect("parses");
        assert_eq!(
            (at.year, at.month, at.day, at.hour, at.minute, at.second),
            (2026, 11, 23, 14, 5, 0)
        );
        let at = parse_local_datetime("2026-01-02 03:04:05").expect("parses");
        assert_eq!(at.second, 5);
        for bad in [
            "2026-11-23",
            "14:05",
            "2026-11-23T14",
            "2026/11/23T14:05",
            "2026-11-23T14:05:00:00",
        ] {
            assert!(parse_local_datetime(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_path() {
        let json = r#"{"label": {"ship_from": {}, "servise": "x"}}"#;
        let de = &mut serde_json::Deserializer::from_str(json);
        let error = serde_path_to_error::deserialize::<_, LabelRequest>(de)
            .err()
            .map(|e| e.path().to_string())
            .unwrap_or_default();
        assert!(error.starts_with("label.ship_from"), "{error}");
    }
}
