//! A test-only payment tokenizer that tries to leak the card it is given.
//!
//! The cardholder name picks the route, so one build tries each in its own
//! call: `token`, `token-spaced`, `last-four` and `error` put the number in
//! what `tokenize` returns; `log`, `stdout`, `stderr` and `panic` in what the
//! node prints; `kv-value`, `kv-key`, `outbox`, `outbox-key` and
//! `outbox-destination` in what the node stores or sends. Any other name (or
//! none) tokenizes honestly: `leaky-` and the last four digits.
//!
//! A refused `kv` or `outbox` write is logged (without the number) and
//! otherwise ignored, as a careless plugin would, so the tests can see the
//! plugin was told. `authorize-offline` logs and prints the token it is given,
//! to show the node masks card-like numbers in any plugin's output.

use outpost_sdk::payment_tokenizer::{
    Card, CardBrand, CardToken, HealthReport, HealthStatus, Lifecycle, OfflineDecision,
    OfflinePayment, PluginInfo, Tokenizer,
};
use outpost_sdk::types::PluginError;
use outpost_sdk::{config, kv, outbox};

struct Leaky;

fn honest(card: &Card) -> CardToken {
    let last_four = card
        .pan
        .get(card.pan.len().saturating_sub(4)..)
        .unwrap_or_default()
        .to_string();
    CardToken {
        token: format!("leaky-{last_four}"),
        brand: CardBrand::Other,
        last_four,
        expiry_month: card.expiry_month,
        expiry_year: card.expiry_year,
    }
}

fn centre() -> Result<String, PluginError> {
    config::get("centre-url").ok_or_else(|| PluginError::unavailable("config centre-url: not set"))
}

fn send(message: outbox::Message) {
    if let Err(error) = outbox::enqueue(&message) {
        outpost_sdk::warn!("leaky: outbox refused: {}", outbox::describe(&error));
    }
}

fn store(key: &str, value: &[u8]) {
    if let Err(error) = kv::set(key, value) {
        outpost_sdk::warn!("leaky: kv write refused: {}", kv::describe(&error));
    }
}

impl Lifecycle for Leaky {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Tries to leak the card it is given (tests only)".into(),
            support: "tests".into(),
        }
    }

    fn health() -> HealthReport {
        HealthReport {
            status: HealthStatus::Ok,
            detail: "leaky on request".into(),
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Tokenizer for Leaky {
    fn tokenize(card: Card) -> Result<CardToken, PluginError> {
        let pan = card.pan.clone();
        let mut token = honest(&card);
        match card.cardholder.as_deref().unwrap_or_default() {
            "token" => token.token = format!("tok_{pan}"),
            "token-spaced" => {
                let groups: Vec<&str> = pan
                    .as_bytes()
                    .chunks(4)
                    .filter_map(|chunk| std::str::from_utf8(chunk).ok())
                    .collect();
                token.token = groups.join(" ");
            }
            "last-four" => token.last_four = pan,
            "error" => {
                return Err(PluginError::invalid_input(format!(
                    "card {pan} is not accepted"
                )));
            }
            "log" => outpost_sdk::info!("tokenizing card {pan}"),
            "stdout" => println!("pan={pan}"),
            "stderr" => eprintln!("card number: {pan}"),
            "panic" => panic!("cannot tokenize {pan}"),
            "kv-value" => store("last-card", pan.as_bytes()),
            "kv-key" => store(&format!("seen/{pan}"), b"1"),
            "outbox" => send(outbox::post_json(
                &centre()?,
                format!("{{\"pan\":\"{pan}\"}}").into_bytes(),
                "leak-payload",
            )),
            "outbox-key" => send(outbox::post_json(&centre()?, b"{}".to_vec(), &pan)),
            "outbox-destination" => send(outbox::post_json(
                &format!("{}?card={pan}", centre()?),
                b"{}".to_vec(),
                "leak-destination",
            )),
            _ => {}
        }
        Ok(token)
    }

    fn authorize_offline(payment: OfflinePayment) -> Result<OfflineDecision, PluginError> {
        outpost_sdk::info!("asked to approve {} offline", payment.token);
        println!("token {}", payment.token);
        Ok(OfflineDecision::Declined(
            "this test plugin approves nothing".into(),
        ))
    }
}

outpost_sdk::export_payment_tokenizer!(Leaky);
