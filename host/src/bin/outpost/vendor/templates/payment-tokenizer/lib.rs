//! {{id}}: an Outpost payment tokenizer.
//!
//! `tokenize` checks a card and returns a keyed token; `authorize-offline`
//! approves small payments by token while the node is offline. The card
//! number and security code live only in this call's memory: never store, log
//! or return them (the node refuses a call that does; see
//! docs/vendor-guides/payment-tokenizer.md). `plugins/card-tokenizer` in the
//! Outpost repository is a complete tokenizer.

use outpost_sdk::keystore;
use outpost_sdk::payment_tokenizer::{
    Card, CardBrand, CardToken, HealthReport, HealthStatus, Lifecycle, OfflineDecision,
    OfflinePayment, PluginInfo, Tokenizer,
};
use outpost_sdk::types::{Money, PluginError};

/// The keystore key tokens are made with (`keystore = ["card-hmac"]` in
/// plugin.toml). The operator adds it: `outpost keys add {{id}} card-hmac`.
const TOKEN_KEY: &str = "card-hmac";
/// The largest payment approved offline, in minor units (25.00).
/// Replace: read it from plugin-config (and ask for `config = true`).
const OFFLINE_LIMIT_MINOR: i64 = 2_500;

struct Plugin;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn luhn_valid(digits: &str) -> bool {
    let digit = |(i, b): (usize, u8)| match (u32::from(b - b'0'), i % 2) {
        (d, 1) if d > 4 => d * 2 - 9,
        (d, 1) => d * 2,
        (d, _) => d,
    };
    digits.bytes().rev().enumerate().map(digit).sum::<u32>() % 10 == 0
}

// Replace: the full BIN ranges and lengths per brand (the reference has them).
fn brand(pan: &str) -> CardBrand {
    match pan[..2].parse::<u8>().unwrap_or(0) {
        40..=49 => CardBrand::Visa,
        22..=27 | 51..=55 => CardBrand::Mastercard,
        34 | 37 => CardBrand::Amex,
        _ => CardBrand::Other,
    }
}

/// This month, as (year, month), from the node's clock (days to civil date,
/// after Howard Hinnant).
fn this_month() -> (u16, u8) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let days = now.map_or(0, |d| d.as_secs() / 86_400) + 719_468;
    let (era, day_of_era) = (days / 146_097, days % 146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let m = (5 * day_of_year + 2) / 153;
    let month = if m < 10 { m + 3 } else { m - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year as u16, month as u8)
}

/// What `tokenize` returns: "tok-", 24 hex digits of the keyed digest, "-",
/// the last four. Never anything else of the number.
fn is_token(text: &str) -> bool {
    let parts = text
        .strip_prefix("tok-")
        .and_then(|rest| rest.split_once('-'));
    parts.is_some_and(|(mac, last_four)| {
        mac.len() == 24
            && mac.bytes().all(|b| b.is_ascii_hexdigit())
            && last_four.len() == 4
            && last_four.bytes().all(|b| b.is_ascii_digit())
    })
}

impl Lifecycle for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            // The node checks it against the package: bump the version in Cargo.toml only.
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Card checks, keyed tokens and small offline approvals".into(),
            support: "mailto:support@{{vendor}}.example".into(), // Replace: your address.
        }
    }

    fn health() -> HealthReport {
        // Failing until the operator adds the key, so install says what to do.
        let (status, detail) = match keystore::hmac_sha256(TOKEN_KEY, b"health") {
            Ok(_) => (HealthStatus::Ok, "token key provisioned".to_string()),
            Err(error) => (HealthStatus::Failing, keystore::describe(&error)),
        };
        HealthReport { status, detail }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        // Runs once before this version serves (`None` on a fresh install). This
        // plugin keeps nothing; if it ever stores state (kv), convert it here.
        Ok(())
    }
}

impl Tokenizer for Plugin {
    fn tokenize(card: Card) -> Result<CardToken, PluginError> {
        // Errors name the field and the rule, never the number.
        let invalid = |why: &str| Err(PluginError::invalid_input(why));
        let pan = card.pan.as_str();
        if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
            return invalid("card.pan: 12 to 19 digits");
        }
        if !luhn_valid(pan) {
            return invalid("card.pan: fails the Luhn check");
        }
        if !(1..=12).contains(&card.expiry_month) {
            return invalid("card.expiry-month: 1 to 12");
        }
        if (card.expiry_year, card.expiry_month) < this_month() {
            return invalid("card.expiry-year: the card has expired");
        }
        let brand = brand(pan);
        // Checked for format, then forgotten: the security code goes nowhere.
        let code_length = 3 + usize::from(matches!(brand, CardBrand::Amex));
        let code_ok =
            |code: &String| code.len() == code_length && code.bytes().all(|b| b.is_ascii_digit());
        if !card.security_code.as_ref().is_none_or(code_ok) {
            return invalid("card.security-code: 3 digits, 4 for American Express");
        }
        // Keyed, so nobody without the node's key can go from token to card or
        // test a guess (a plain hash would not do: card numbers are few).
        let last_four = pan[pan.len() - 4..].to_string();
        let mac = keystore::hmac_sha256(TOKEN_KEY, pan.as_bytes())?;
        let token = format!("tok-{}-{last_four}", hex(&mac[..12]));
        outpost_sdk::info!("tokenized a card ending {last_four}");
        let (expiry_month, expiry_year) = (card.expiry_month, card.expiry_year);
        Ok(CardToken {
            token,
            brand,
            last_four,
            expiry_month,
            expiry_year,
        })
    }

    fn authorize_offline(payment: OfflinePayment) -> Result<OfflineDecision, PluginError> {
        let invalid = |why: &str| Err(PluginError::invalid_input(why));
        if !is_token(&payment.token) {
            return invalid("payment.token: not a token from tokenize");
        }
        if payment.reference.trim().is_empty() {
            return invalid("payment.reference: must not be empty");
        }
        if !payment.amount.has_valid_currency() || payment.amount.minor_units <= 0 {
            return invalid("payment.amount: more than 0, in an ISO 4217 currency");
        }
        if payment.amount.minor_units > OFFLINE_LIMIT_MINOR {
            let limit = Money::new(OFFLINE_LIMIT_MINOR, &payment.amount.currency);
            let why = format!("above the offline limit of {limit}");
            return Ok(OfflineDecision::OnlineOnly(why));
        }
        // The same sale always gets the same code, so a retried call is harmless.
        // Replace: keep spend per token in kv to cap what one card takes offline.
        let sale = format!(
            "{}\0{}\0{}",
            payment.token, payment.reference, payment.amount
        );
        let code = hex(&keystore::hmac_sha256(TOKEN_KEY, sale.as_bytes())?[..3]);
        outpost_sdk::info!("offline approval {code} for sale {}", payment.reference);
        Ok(OfflineDecision::Approved(code.to_uppercase()))
    }
}

outpost_sdk::export_payment_tokenizer!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sdk::testing::TestHost;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn card(pan: &str) -> Card {
        Card {
            pan: pan.into(),
            expiry_month: 12,
            expiry_year: this_month().0 + 3,
            cardholder: Some("A SHOPPER".into()),
            security_code: Some("123".into()),
        }
    }

    #[test]
    fn tokens_are_stable_keyed_and_keep_only_the_last_four() {
        let host = TestHost::new().key(TOKEN_KEY, KEY).install();
        let token = Plugin::tokenize(card("4111111111111111")).expect("token");
        let again = Plugin::tokenize(card("4111111111111111")).expect("token");
        let other = Plugin::tokenize(card("4000056655665556")).expect("token");
        assert_eq!(token.token, again.token);
        assert_ne!(token.token, other.token);
        assert!(is_token(&token.token) && token.token.ends_with("-1111"));
        assert!(matches!(token.brand, CardBrand::Visa) && token.last_four == "1111");
        let logs = host.logs();
        assert!(logs.iter().any(|l| l.message.ends_with("ending 1111")));
        assert!(logs.iter().all(|l| !l.message.contains("411111")));
    }

    #[test]
    fn refuses_a_bad_number_without_repeating_it() {
        let _host = TestHost::new().key(TOKEN_KEY, KEY).install();
        let error = Plugin::tokenize(card("4111111111111112")).unwrap_err();
        assert!(matches!(&error, PluginError::InvalidInput(why) if why.contains("Luhn")));
        assert!(!error.message().contains("411111"));
    }

    #[test]
    fn approves_small_payments_by_token_only() {
        let _host = TestHost::new().key(TOKEN_KEY, KEY).install();
        let issued = Plugin::tokenize(card("4111111111111111")).expect("token");
        let pay = |token: &str, minor_units| {
            Plugin::authorize_offline(OfflinePayment {
                token: token.into(),
                amount: Money::new(minor_units, "GBP"),
                reference: "R-0042".into(),
                taken_at: 1_795_426_860,
            })
        };
        let small = pay(&issued.token, 1935);
        assert!(matches!(small, Ok(OfflineDecision::Approved(_))));
        let large = pay(&issued.token, 9900);
        assert!(matches!(large, Ok(OfflineDecision::OnlineOnly(_))));
        let card_number = pay("4111111111111111", 100);
        assert!(matches!(card_number, Err(PluginError::InvalidInput(_))));
    }
}
