//! Records shared by every plugin kind, with the helpers plugins keep needing.

pub use crate::bindings::outpost::plugins::types::{
    Address, Barcode, LabelMedia, LocalDatetime, Money, Parcel, PluginError, ShippingLabel,
    Symbology, Timestamp,
};
use std::fmt;

impl PluginError {
    /// The input broke a rule; name the field and the rule.
    pub fn invalid_input(why: impl Into<String>) -> Self {
        PluginError::InvalidInput(why.into())
    }

    /// Something the plugin depends on is not available now.
    pub fn unavailable(why: impl Into<String>) -> Self {
        PluginError::Unavailable(why.into())
    }

    /// The plugin will not do this.
    pub fn denied(why: impl Into<String>) -> Self {
        PluginError::Denied(why.into())
    }

    /// A bug or unexpected state inside the plugin.
    pub fn internal(why: impl Into<String>) -> Self {
        PluginError::Internal(why.into())
    }

    /// The explanation the plugin gave, whatever the case.
    pub fn message(&self) -> &str {
        match self {
            PluginError::InvalidInput(why)
            | PluginError::Unavailable(why)
            | PluginError::Denied(why)
            | PluginError::Internal(why) => why,
        }
    }
}

/// A bare message is an internal error: a bug or an unexpected state.
impl From<String> for PluginError {
    fn from(why: String) -> Self {
        PluginError::Internal(why)
    }
}

/// Currencies whose minor unit is not a hundredth (ISO 4217). Everything not
/// listed has two decimals.
const CURRENCY_DECIMALS: &[(&str, u32)] = &[
    ("BHD", 3),
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("PYG", 0),
    ("RWF", 0),
    ("TND", 3),
    ("UGX", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
];

/// ISO 4217 codes in circulation (2026), sorted: what money can be counted
/// in at a till. Fund codes (BOV, CHE, ...), metals and testing codes are
/// left out.
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU",
    "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR",
    "ZMW", "ZWG", "ZWL",
];

impl Money {
    pub fn new(minor_units: i64, currency: &str) -> Self {
        Money {
            minor_units,
            currency: currency.to_string(),
        }
    }

    /// How many decimals the currency's minor unit has: 2 for EUR, 0 for JPY.
    pub fn decimals(&self) -> u32 {
        CURRENCY_DECIMALS
            .iter()
            .find(|(code, _)| *code == self.currency)
            .map_or(2, |(_, decimals)| *decimals)
    }

    /// Whether `currency` is an ISO 4217 code a sale can be in ("EUR", not
    /// "eur", "XYZ", a fund code or a precious metal).
    pub fn has_valid_currency(&self) -> bool {
        CURRENCIES.binary_search(&self.currency.as_str()).is_ok()
    }

    /// The amount in major units without the currency: "12.34", "-0.05", "1200".
    pub fn amount(&self) -> String {
        let decimals = self.decimals();
        let negative = self.minor_units < 0;
        let magnitude = self.minor_units.unsigned_abs();
        let sign = if negative { "-" } else { "" };
        if decimals == 0 {
            return format!("{sign}{magnitude}");
        }
        let scale = 10u64.pow(decimals);
        format!(
            "{sign}{}.{:0width$}",
            magnitude / scale,
            magnitude % scale,
            width = decimals as usize
        )
    }

    /// The sum, or `None` if the currencies differ or it overflows.
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        Some(Money {
            minor_units: self.minor_units.checked_add(other.minor_units)?,
            currency: self.currency.clone(),
        })
    }
}

/// "12.34 EUR".
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount(), self.currency)
    }
}

impl LocalDatetime {
    /// Whether this is a real calendar date and time of day.
    pub fn is_valid(&self) -> bool {
        let leap = (self.year.is_multiple_of(4) && !self.year.is_multiple_of(100))
            || self.year.is_multiple_of(400);
        let days_in_month = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return false,
        };
        self.day >= 1
            && self.day <= days_in_month
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }
}

/// "2026-11-23 14:05".
impl fmt::Display for LocalDatetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_amounts_use_the_currency_minor_unit() {
        assert_eq!(Money::new(1234, "EUR").amount(), "12.34");
        assert_eq!(Money::new(-5, "GBP").amount(), "-0.05");
        assert_eq!(Money::new(1200, "JPY").amount(), "1200");
        assert_eq!(Money::new(1500, "KWD").amount(), "1.500");
        assert_eq!(
            Money::new(i64::MIN, "EUR").amount(),
            "-92233720368547758.08"
        );
        assert_eq!(Money::new(7, "EUR").to_string(), "0.07 EUR");
    }

    #[test]
    fn only_currencies_in_circulation_are_valid() {
        assert!(
            CURRENCIES.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted"
        );
        for code in ["EUR", "GBP", "JPY", "KWD", "XOF", "CHF"] {
            assert!(Money::new(1, code).has_valid_currency(), "{code}");
        }
        for code in ["eur", "XYZ", "EU", "EURO", "XAU", "XTS", "CHE", ""] {
            assert!(!Money::new(1, code).has_valid_currency(), "{code}");
        }
    }

    #[test]
    fn money_adds_only_in_one_currency() {
        let sum = Money::new(150, "EUR").checked_add(&Money::new(250, "EUR"));
        assert_eq!(sum.map(|m| m.minor_units), Some(400));
        assert!(
            Money::new(1, "EUR")
                .checked_add(&Money::new(1, "GBP"))
                .is_none()
        );
        assert!(
            Money::new(i64::MAX, "EUR")
                .checked_add(&Money::new(1, "EUR"))
                .is_none()
        );
    }

    #[test]
    fn datetimes_check_the_calendar() {
        let at = |year, month, day| LocalDatetime {
            year,
            month,
            day,
            hour: 9,
            minute: 5,
            second: 0,
        };
        assert!(at(2024, 2, 29).is_valid());
        assert!(!at(2025, 2, 29).is_valid());
        assert!(!at(2025, 13, 1).is_valid());
        assert!(!at(2025, 4, 31).is_valid());
        assert_eq!(at(2026, 11, 3).to_string(), "2026-11-03 09:05");
    }
}
