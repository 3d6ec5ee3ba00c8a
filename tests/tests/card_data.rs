//! A payment tokenizer that tries to leak the card it is given, through
//! every route it has, against a node with a centre: whatever it tries, the
//! card number ends up in no database byte, no log line and no request the
//! centre receives, and the honest reference tokenizer works as before.
//! Real plugins, a real redb file, real HTTP on 127.0.0.1.

use outpost::config::NodeConfig;
use outpost_e2e_tests::centre::VirtualCentre;
use outpost_e2e_tests::serving::{Serving, capture_logs};
use outpost_e2e_tests::{ApiClient, PackageCopy, SharedNode, TestNode, artifacts};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Luhn-valid and with no long runs of one digit, so finding eight of its
/// digits anywhere means the card, not a coincidence.
const PAN: &str = "4539148803436467";
const PAN_SPACED: &str = "4539 1488 0343 6467";
/// Another card, which no guard knows: only masking keeps it out of the log.
const OTHER_PAN: &str = "5555555555554444";

/// The cardholder names that make `test/leaky-tokenizer` try each route, and
/// what the node's refusal must name.
const ROUTES: &[(&str, &str)] = &[
    ("token", "`token`"),
    ("token-spaced", "`token`"),
    ("last-four", "`last-four`"),
    ("error", "its error"),
    ("log", "a log line"),
    ("stdout", "its standard output"),
    ("stderr", "its standard output"),
    ("panic", "its standard output"),
    ("kv-value", "a kv write (its value)"),
    ("kv-key", "a kv write (its key)"),
    ("outbox", "an outbox message (its payload)"),
    ("outbox-key", "an outbox message (its idempotency key)"),
    ("outbox-destination", "an outbox message (its destination)"),
];

/// A node with the reference tokenizer and the leaky one, its events and the
/// leaky plugin's outbox both pointed at a virtual centre, the API and the
/// delivery worker running.
struct Till {
    client: ApiClient,
    centre: VirtualCentre,
    shared: SharedNode,
    serving: Serving,
    _leaky: PackageCopy,
}

impl Till {
    async fn start() -> Till {
        let centre = VirtualCentre::start().await;
        let events_url = centre.url().to_string();
        let origin = events_url
            .strip_suffix("/v1/events")
            .expect("the centre's URL ends in /v1/events")
            .to_string();
        let mut config = NodeConfig::parse(
            &format!(
                "[outbox]\ninitial-backoff-ms = 50\nmax-backoff-ms = 200\nmax-attempts = 50\n\
                 [centre]\nevents-url = \"{events_url}\"\n\
                 [plugin-config.\"test/leaky-tokenizer\"]\ncentre-url = \"{events_url}\"\n"
            ),
            "test",
        )
        .expect("config");
        config.outbox.attempt_timeout_ms = 2_000;
        let node = TestNode::with_config(config);
        outpost_e2e_tests::install_card_tokenizer(&node.node);
        let leaky = PackageCopy::new(artifacts::TEST_LEAKY_TOKENIZER, |manifest| {
            manifest.replace("http://127.0.0.1:7290", &origin)
        });
        node.install(leaky.path());
        let shared = node.shared();
        let serving = Serving::start(shared.node.clone(), true).await;
        Till {
            client: serving.client.clone(),
            centre,
            shared,
            serving,
            _leaky: leaky,
        }
    }

    async fn tokenize(&self, plugin: &str, cardholder: &str) -> (u16, Value) {
        let body = json!({ "plugin": plugin, "card": { "pan": PAN, "expiry_month": 12,
            "expiry_year": 2031, "security_code": "123", "cardholder": cardholder } });
        let (status, answer) = self
            .client
            .post("/v1/payments/tokenize", &body.to_string())
            .await;
        (status.as_u16(), answer)
    }

    async fn stop(self) {
        self.serving.stop().await;
    }
}

/// Whether `haystack` holds the card, written plainly or in groups.
fn holds_a_card(haystack: &[u8]) -> Option<&'static str> {
    [PAN, PAN_SPACED, OTHER_PAN]
        .into_iter()
        .find(|card| haystack.windows(card.len()).any(|w| w == card.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaky_tokenizer_gets_the_card_nowhere_and_honest_ones_still_work() {
    let logs = capture_logs();
    let till = Till::start().await;

    for (route, channel) in ROUTES {
        let (status, answer) = till.tokenize("test/leaky-tokenizer", route).await;
        assert_eq!(status, 502, "{route}: {answer}");
        assert_eq!(
            answer["error"]["code"], "plugin-leaked-card",
            "{route}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("test/leaky-tokenizer") && message.contains(channel),
            "{route}: the refusal names the plugin and {channel}: {message}"
        );
        assert_eq!(
            holds_a_card(answer.to_string().as_bytes()),
            None,
            "{route}: the refusal repeats the card: {answer}"
        );
    }

    // The same plugin, honest for once, is answered and reported as usual.
    let (status, answer) = till.tokenize("test/leaky-tokenizer", "nobody").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["token"]["token"], "leaky-6467");
    assert_eq!(answer["token"]["last_four"], "6467");

    // The reference tokenizer still tokenizes and approves offline.
    let (status, reference) = till.tokenize("outpost/card-tokenizer", "A SHOPPER").await;
    assert_eq!(status, 200, "{reference}");
    let token = reference["token"]["token"]
        .as_str()
        .expect("a token")
        .to_string();
    assert!(token.ends_with("6467") && token != PAN, "{token}");
    let payment = |plugin: &str, token: &str| {
        json!({ "plugin": plugin, "payment": { "token": token, "reference": "S-1",
            "amount": { "minor_units": 1_000, "currency": "EUR" }, "taken_at": 0 } })
        .to_string()
    };
    let (status, decision) = till
        .client
        .post(
            "/v1/payments/authorize-offline",
            &payment("outpost/card-tokenizer", &token),
        )
        .await;
    assert!(status.is_success(), "{decision}");
    assert!(decision["decision"]["approved"].is_string(), "{decision}");
    // A card number where a token goes, logged and printed by a plugin that
    // does not know it is one: masked in the node's log all the same.
    let (status, decision) = till
        .client
        .post(
            "/v1/payments/authorize-offline",
            &payment("test/leaky-tokenizer", OTHER_PAN),
        )
        .await;
    assert!(status.is_success(), "{decision}");

    // Every event the node kept reaches the centre; nothing the leaky plugin
    // tried to send does, because it was never queued.
    let deadline = Instant::now() + Duration::from_secs(20);
    let requests = loop {
        let requests = till.centre.requests();
        let tokenized = requests
            .iter()
            .filter(|(_, event)| event["type"] == "payment.tokenized")
            .count();
        let (_, pending) = till.client.get("/v1/outbox?state=pending").await;
        let pending = pending["entries"].as_array().map_or(0, Vec::len);
        if tokenized >= 2 && pending == 0 {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "events not delivered: {requests:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut tokenized: Vec<(String, String)> = Vec::new();
    for (key, event) in &requests {
        assert_eq!(
            holds_a_card(event.to_string().as_bytes()),
            None,
            "the centre received a card number: {event}"
        );
        assert_ne!(
            event["type"],
            Value::Null,
            "only node events arrive: {event}"
        );
        if event["type"] == "payment.tokenized" {
            tokenized.push((
                event["data"]["plugin"].as_str().unwrap_or_default().into(),
                event["data"]["token"].as_str().unwrap_or_default().into(),
            ));
        }
        assert!(!key.starts_with("leak"), "a leaky message went out: {key}");
    }
    tokenized.sort();
    tokenized.dedup();
    assert_eq!(
        tokenized,
        [
            ("outpost/card-tokenizer".to_string(), token.clone()),
            ("test/leaky-tokenizer".to_string(), "leaky-6467".to_string()),
        ],
        "one payment.tokenized per successful call, none for a refused one"
    );
    let entries = till
        .shared
        .node
        .store()
        .outbox_list(None, 1000)
        .expect("outbox");
    assert!(
        entries.iter().all(|e| e.owner != "test/leaky-tokenizer"),
        "the leaky plugin queued something: {entries:?}"
    );

    let database = till.shared.node.store().path().to_path_buf();
    let bytes = std::fs::read(&database).expect("database file");
    till.stop().await;
    assert_eq!(
        holds_a_card(&bytes),
        None,
        "a card number is in the database file"
    );

    let logged = logs.text();
    assert!(
        logged.contains("tokenized a Visa card"),
        "the reference plugin's log line is there"
    );
    assert!(
        logged.contains("leaky: kv write refused: ") && logged.contains("leaky: outbox refused: "),
        "the plugin was told its writes were refused"
    );
    assert!(
        logged.contains("asked to approve ************4444 offline")
            && logged.contains("token ************4444"),
        "card-like numbers are masked, not dropped"
    );
    assert_eq!(
        holds_a_card(logged.as_bytes()),
        None,
        "a card number is in the logs"
    );
}
