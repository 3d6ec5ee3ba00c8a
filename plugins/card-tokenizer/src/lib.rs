//! Outpost's reference payment tokenizer.
//!
//! `tokenize` checks a card (number, brand, expiry, security code) and
//! returns a keyed, format-preserving token ([`token`]); `authorize-offline`
//! approves small payments while the node is offline, within per-payment and
//! per-card limits the operator sets. The card number and security code live
//! only in this call's memory: nothing here stores or logs them.

pub mod card;
pub mod token;

use outpost_sdk::payment_tokenizer::{
    Card, CardToken, HealthReport, HealthStatus, Lifecycle, OfflineDecision, OfflinePayment,
    PluginInfo, Tokenizer,
};
use outpost_sdk::types::PluginError;
use outpost_sdk::{config, keystore, kv};

/// The keystore key tokens are made with.
pub const TOKEN_KEY: &str = "card-token";

struct CardTokenizer;

/// The operator's offline limits (plugin-config).
struct OfflineLimits {
    currency: String,
    per_payment: i64,
    per_card: i64,
}

fn offline_limits() -> Result<OfflineLimits, PluginError> {
    Ok(OfflineLimits {
        currency: config::get("offline-currency").unwrap_or_else(|| "EUR".into()),
        per_payment: config::parse("offline-payment-limit-minor")?.unwrap_or(5_000),
        per_card: config::parse("offline-card-limit-minor")?.unwrap_or(15_000),
    })
}

impl Lifecycle for CardTokenizer {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Card checks and keyed, format-preserving tokens".into(),
            support: "https://github.com/outpost-edge/outpost/issues".into(),
        }
    }

    fn health() -> HealthReport {
        match keystore::hmac_sha256(TOKEN_KEY, b"health") {
            Ok(_) => HealthReport {
                status: HealthStatus::Ok,
                detail: "token key provisioned".into(),
            },
            Err(error) => HealthReport {
                status: HealthStatus::Failing,
                detail: keystore::describe(&error),
            },
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Tokenizer for CardTokenizer {
    fn tokenize(card: Card) -> Result<CardToken, PluginError> {
        let brand = card::check_pan(&card.pan).map_err(PluginError::invalid_input)?;
        card::check_expiry(card.expiry_month, card.expiry_year, card::today())
            .map_err(PluginError::invalid_input)?;
        if let Some(code) = &card.security_code {
            card::check_security_code(code, brand).map_err(PluginError::invalid_input)?;
        }
        if let Some(name) = &card.cardholder
            && (name.chars().count() > 45 || name.chars().any(char::is_control))
        {
            return Err(PluginError::invalid_input(
                "card.cardholder: at most 45 printable characters",
            ));
        }
        let digits = token::token_digits(card.pan.len() - 4, |counter| {
            let mut input = Vec::with_capacity(card.pan.len() + 8);
            input.extend_from_slice(b"pan\0");
            input.push(counter);
            input.extend_from_slice(card.pan.as_bytes());
            keystore::hmac_sha256(TOKEN_KEY, &input).map_err(PluginError::from)
        })?;
        let token = token::format_token(&card.pan, &digits);
        outpost_sdk::info!(
            "tokenized a {} card ending {}",
            card::brand_name(brand),
            &token[token.len() - 4..]
        );
        Ok(CardToken {
            last_four: card.pan[card.pan.len() - 4..].to_string(),
            token,
            brand,
            expiry_month: card.expiry_month,
            expiry_year: card.expiry_year,
        })
    }

    fn authorize_offline(payment: OfflinePayment) -> Result<OfflineDecision, PluginError> {
        if !token::is_token(&payment.token) {
            return Err(PluginError::invalid_input(
                "payment.token: not a token from tokenize (card numbers are never accepted here)",
            ));
        }
        let reference = payment.reference.trim();
        if reference.is_empty()
            || reference.len() > 64
            || !reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PluginError::invalid_input(
                "payment.reference: 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if !payment.amount.has_valid_currency() {
            return Err(PluginError::invalid_input(format!(
                "payment.amount.currency: {:?} is not an ISO 4217 code such as \"EUR\"",
                payment.amount.currency
            )));
        }
        if payment.amount.minor_units <= 0 {
            return Err(PluginError::invalid_input(
                "payment.amount.minor-units: must be more than 0",
            ));
        }
        // The same sale asked twice gets the same answer, counted once.
        let decided_key = format!("approved/{reference}");
        if let Some(code) = kv::get_string(&decided_key)? {
            return Ok(OfflineDecision::Approved(code));
        }
        let limits = offline_limits()?;
        if payment.amount.currency != limits.currency {
            return Ok(OfflineDecision::OnlineOnly(format!(
                "offline payments are taken in {} only",
                limits.currency
            )));
        }
        if payment.amount.minor_units > limits.per_payment {
            return Ok(OfflineDecision::OnlineOnly(format!(
                "above the offline limit of {} per payment",
                outpost_sdk::types::Money::new(limits.per_payment, &limits.currency)
            )));
        }
        let spent_key = format!("offline-spend/{}", payment.token);
        let spent: i64 = kv::get_string(&spent_key)?
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        let total = spent.saturating_add(payment.amount.minor_units);
        if total > limits.per_card {
            return Ok(OfflineDecision::Declined(
                "this card's offline limit is used up; take it online or another way".into(),
            ));
        }
        let proof = format!(
            "approve\0{}\0{reference}\0{}\0{}",
            payment.token, payment.amount.minor_units, payment.amount.currency
        );
        let mac = keystore::hmac_sha256(TOKEN_KEY, proof.as_bytes())?;
        let code: String = mac.iter().take(3).map(|b| format!("{b:02X}")).collect();
        kv::set(&spent_key, total.to_string().as_bytes())?;
        kv::set(&decided_key, code.as_bytes())?;
        outpost_sdk::info!("offline approval {code} for sale {reference}");
        Ok(OfflineDecision::Approved(code))
    }
}

outpost_sdk::export_payment_tokenizer!(CardTokenizer);
