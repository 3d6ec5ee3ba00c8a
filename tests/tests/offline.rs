//! The stall that loses its network: card payments tokenized locally,
//! bookings queued in the outbox and delivered once, forecasts, and plugins
//! that reach for more than they were granted. Real plugins, a real redb
//! file, real HTTP on 127.0.0.1 to a courier the test runs.

use outpost::config::NodeConfig;
use outpost::virtual_courier::{Behaviour, VirtualCourier};
use outpost_e2e_tests::centre::VirtualCentre;
use outpost_e2e_tests::serving::{Serving, capture_logs};
use outpost_e2e_tests::{ApiClient, PackageCopy, SharedNode, TestNode, artifacts};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PAN: &str = "4111111111111111";

struct Stall {
    client: ApiClient,
    courier: VirtualCourier,
    centre: Option<VirtualCentre>,
    shared: SharedNode,
    serving: Serving,
}

impl Stall {
    /// A node with the three reference plugins, the courier adapter pointed
    /// at a virtual courier, `max_pending` outbox entries for it, and the
    /// delivery worker and API running.
    async fn start(max_pending: u32) -> Stall {
        Stall::start_with(max_pending, None).await
    }

    /// Also sends the node's own events to `centre`.
    async fn start_with(max_pending: u32, centre: Option<VirtualCentre>) -> Stall {
        Stall::start_configured(
            max_pending,
            centre,
            "[outbox]\ninitial-backoff-ms = 50\nmax-backoff-ms = 200\nmax-attempts = 50\n",
        )
        .await
    }

    /// With `outbox` as the node's `[outbox]` section.
    async fn start_configured(
        max_pending: u32,
        centre: Option<VirtualCentre>,
        outbox: &str,
    ) -> Stall {
        let courier = VirtualCourier::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("courier starts");
        let origin = courier.url();
        let events = centre
            .as_ref()
            .map(|centre| format!("[centre]\nevents-url = \"{}\"\n", centre.url()))
            .unwrap_or_default();
        let mut config = NodeConfig::parse(
            &format!(
                "{outbox}{events}[plugin-config.\"outpost/courier\"]\napi-url = \"{origin}\"\n"
            ),
            "test",
        )
        .expect("config");
        config.outbox.attempt_timeout_ms = 2_000;
        let node = TestNode::with_config(config);
        outpost_e2e_tests::install_card_tokenizer(&node.node);
        node.install_artifact(artifacts::FORECASTER);
        let courier_package = PackageCopy::new(artifacts::COURIER, |manifest| {
            manifest.replace("http://127.0.0.1:7280", &origin).replace(
                "max-pending = 1000",
                &format!("max-pending = {max_pending}"),
            )
        });
        node.install(courier_package.path());
        let shared = node.shared();
        let serving = Serving::start(shared.node.clone(), true).await;
        Stall {
            client: serving.client.clone(),
            courier,
            centre,
            shared,
            serving,
        }
    }

    async fn stop(self) {
        self.serving.stop().await;
    }
}

fn shipment(reference: &str, postal_code: &str) -> Value {
    json!({ "request": {
        "quote_id": format!("STD.{}", i64::MAX),
        "reference": reference,
        "ship_from": { "name": "Stall 4", "lines": ["Market Square"], "city": "Leeds",
                       "postal_code": "LS1 6AA", "country": "GB" },
        "ship_to": { "name": "Sam", "lines": ["1 Main Street"], "city": "York",
                     "postal_code": postal_code, "country": "GB" },
        "parcels": [{ "weight_grams": 800, "length_mm": 200, "width_mm": 150,
                      "height_mm": 80, "description": "Ceramics" }],
    }})
}

async fn booking_state(client: &ApiClient, id: &str, wanted: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = client.get(&format!("/v1/shipping/bookings/{id}")).await;
        assert!(status.is_success(), "{status}: {body}");
        if body["booking"]["state"] == wanted {
            return body["booking"].clone();
        }
        assert!(Instant::now() < deadline, "never became {wanted}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_tokenized_and_the_number_is_kept_nowhere() {
    let logs = capture_logs();
    let stall = Stall::start(10).await;
    let client = &stall.client;
    let card = json!({ "card": { "pan": PAN, "expiry_month": 12, "expiry_year": 2031,
                                 "security_code": "123", "cardholder": "A SHOPPER" } });
    let (status, first) = client
        .post("/v1/payments/tokenize", &card.to_string())
        .await;
    assert!(status.is_success(), "{status}: {first}");
    let token = first["token"]["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), PAN.len());
    assert!(token.ends_with("1111") && token != PAN);
    assert_eq!(first["token"]["brand"], "visa");
    let (_, again) = client
        .post("/v1/payments/tokenize", &card.to_string())
        .await;
    assert_eq!(
        again["token"]["token"], first["token"]["token"],
        "deterministic"
    );

    // Bad input: each a 4xx that says what is wrong, none repeating the number.
    for (body, expected_status, field) in [
        (
            json!({ "card": { "pan": "4111111111111112", "expiry_month": 12, "expiry_year": 2031 } }),
            422,
            "Luhn",
        ),
        (
            json!({ "card": { "pan": PAN, "expiry_month": 13, "expiry_year": 2031 } }),
            422,
            "expiry-month",
        ),
        (
            json!({ "card": { "pan": PAN, "expiry_month": 1, "expiry_year": 2020 } }),
            422,
            "expired",
        ),
        (
            json!({ "card": { "pan": PAN, "expiry_month": 1, "expiry_year": 2031, "security_code": "12" } }),
            422,
            "security-code",
        ),
        (
            json!({ "card": { "pan": PAN, "expiry_month": "twelve", "expiry_year": 2031 } }),
            400,
            "card.expiry-month",
        ),
        (
            json!({ "card": { "expiry_month": 12, "expiry_year": 2031 } }),
            400,
            "pan",
        ),
        (
            json!({ "card": { "pan": PAN, "expiry_month": 12, "expiry_year": 2031 }, "tip": 1 }),
            400,
            "tip",
        ),
    ] {
        let (status, answer) = client
            .post("/v1/payments/tokenize", &body.to_string())
            .await;
        assert_eq!(status.as_u16(), expected_status, "{body}: {answer}");
        let text = answer.to_string();
        assert!(text.contains(field), "{field} in {text}");
        assert!(
            !text.contains(PAN),
            "the error repeats the card number: {text}"
        );
    }
    let huge = format!("{{\"card\": {{\"pan\": \"{}\"}}}}", "4".repeat(400_000));
    let (status, _) = client.post("/v1/payments/tokenize", &huge).await;
    assert_eq!(status.as_u16(), 413);

    // Offline approval under the limits, declined over them.
    let payment = |reference: &str, minor: i64| {
        json!({ "payment": { "token": token, "reference": reference,
                             "amount": { "minor_units": minor, "currency": "EUR" }, "taken_at": 0 } })
        .to_string()
    };
    let (status, decision) = client
        .post("/v1/payments/authorize-offline", &payment("S-1", 2_500))
        .await;
    assert!(status.is_success(), "{decision}");
    assert!(decision["decision"]["approved"].is_string(), "{decision}");
    let (_, decision) = client
        .post("/v1/payments/authorize-offline", &payment("S-2", 9_000))
        .await;
    assert!(
        decision["decision"]["online-only"].is_string(),
        "{decision}"
    );
    let (status, decision) = client
        .post(
            "/v1/payments/authorize-offline",
            &json!({ "payment": { "token": PAN, "reference": "S-3",
            "amount": { "minor_units": 100, "currency": "EUR" }, "taken_at": 0 } })
            .to_string(),
        )
        .await;
    assert_eq!(
        status.as_u16(),
        422,
        "a card number is not a token: {decision}"
    );

    let database = stall.shared.node.store().path().to_path_buf();
    // Every write above was committed durably; read the file as it is on disk.
    let bytes = std::fs::read(&database).expect("database file");
    stall.stop().await;
    let found_in_db = bytes.windows(PAN.len()).any(|w| w == PAN.as_bytes());
    assert!(!found_in_db, "the card number is in the database file");
    let logged = logs.bytes();
    assert!(!logged.is_empty(), "logs were captured");
    let logged = String::from_utf8_lossy(&logged);
    assert!(
        logged.contains("tokenized a Visa card"),
        "the plugin's log line is there"
    );
    assert!(!logged.contains(PAN), "the card number is in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_made_offline_are_delivered_once_when_the_courier_returns() {
    let stall = Stall::start(10).await;
    let client = &stall.client;
    stall.courier.set(Behaviour::Down).await.expect("down");
    let (status, body) = client
        .post(
            "/v1/shipping/bookings",
            &shipment("ORDER-1", "YO1 6HT").to_string(),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(body["booking"]["state"], "queued");
    // Booking the same reference again does not queue it twice.
    let (_, again) = client
        .post(
            "/v1/shipping/bookings",
            &shipment("ORDER-1", "YO1 6HT").to_string(),
        )
        .await;
    assert_eq!(
        again["booking"]["booking_id"],
        body["booking"]["booking_id"]
    );
    let (_, outbox) = client.get("/v1/outbox?state=pending").await;
    assert_eq!(
        outbox["entries"].as_array().map(Vec::len),
        Some(1),
        "{outbox}"
    );

    // The courier comes back failing, then well: retried until delivered.
    stall
        .courier
        .set(Behaviour::Failing(503))
        .await
        .expect("failing");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stall.courier.set(Behaviour::Up).await.expect("up");
    let booking = booking_state(client, "bk-ORDER-1", "confirmed").await;
    assert_eq!(booking["labels"].as_array().map(Vec::len), Some(1));
    let shipments = stall.courier.shipments();
    assert_eq!(shipments.len(), 1, "the courier booked it once");
    assert!(
        shipments[0]
            .bodies_seen
            .iter()
            .all(|b| *b == shipments[0].request),
        "every attempt carried the same payload"
    );
    let (status, tracking) = client
        .get(&format!(
            "/v1/shipping/tracking/{}",
            booking["tracking_numbers"][0].as_str().expect("number")
        ))
        .await;
    assert!(status.is_success(), "{tracking}");
    assert_eq!(tracking["tracking"]["status"], "pre-transit");

    // A booking the courier refuses goes dead; the operator sees why.
    stall.courier.set(Behaviour::Down).await.expect("down");
    let (_, refused) = client
        .post(
            "/v1/shipping/bookings",
            &shipment("ORDER-2", "REFUSE").to_string(),
        )
        .await;
    assert_eq!(refused["booking"]["state"], "queued");
    stall.courier.set(Behaviour::Up).await.expect("up");
    let rejected = booking_state(client, "bk-ORDER-2", "rejected").await;
    let detail = rejected["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("do not deliver"), "{detail}");
    let (_, dead) = client.get("/v1/outbox?state=dead").await;
    let id = dead["entries"][0]["id"].as_u64().expect("a dead entry");
    let (status, shown) = client.get(&format!("/v1/outbox/{id}")).await;
    assert!(status.is_success());
    assert!(
        shown["payload"]
            .as_str()
            .unwrap_or_default()
            .contains("REFUSE")
    );
    let (status, dropped) = client
        .send(
            hyper::Method::DELETE,
            &format!("/v1/outbox/{id}"),
            "",
            Some(&client.token.clone()),
        )
        .await;
    assert!(status.is_success(), "{dropped}");
    assert_eq!(dropped["entry"]["state"], "dropped");
    stall.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_the_outbox_gave_up_on_while_the_courier_was_unreachable_is_not_rejected() {
    // Three attempts stand in for a week-long outage: the give-up is the same.
    let stall = Stall::start_configured(
        10,
        None,
        "[outbox]\ninitial-backoff-ms = 50\nmax-backoff-ms = 200\nmax-attempts = 3\n",
    )
    .await;
    let client = &stall.client;
    stall.courier.set(Behaviour::Down).await.expect("down");
    let (status, body) = client
        .post(
            "/v1/shipping/bookings",
            &shipment("ORDER-9", "YO1 6HT").to_string(),
        )
        .await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(body["booking"]["state"], "queued");
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let (_, dead) = client.get("/v1/outbox?state=dead").await;
        if let Some(id) = dead["entries"][0]["id"].as_u64() {
            break id;
        }
        assert!(Instant::now() < deadline, "never gave up: {dead}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, body) = client.get("/v1/shipping/bookings/bk-ORDER-9").await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(body["booking"]["state"], "queued", "{body}");
    let detail = body["booking"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("never refused"), "{detail}");
    assert!(
        detail.contains(&format!("outpost outbox retry {id}")),
        "{detail}"
    );
    assert!(stall.courier.shipments().is_empty());
    stall.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_flooding_the_outbox_is_refused_and_the_node_carries_on() {
    let stall = Stall::start(3).await;
    let client = &stall.client;
    stall.courier.set(Behaviour::Down).await.expect("down");
    for n in 0..3 {
        let (status, body) = client
            .post(
                "/v1/shipping/bookings",
                &shipment(&format!("F-{n}"), "YO1 6HT").to_string(),
            )
            .await;
        assert_eq!(body["booking"]["state"], "queued", "{status}: {body}");
    }
    let (status, body) = client
        .post(
            "/v1/shipping/bookings",
            &shipment("F-3", "YO1 6HT").to_string(),
        )
        .await;
    assert_eq!(status.as_u16(), 503, "{body}");
    assert!(body.to_string().contains("undelivered"), "{body}");
    // Other plugins are untouched.
    let (status, _) = client
        .post(
            "/v1/payments/tokenize",
            &json!({ "card": { "pan": PAN, "expiry_month": 12, "expiry_year": 2031 } }).to_string(),
        )
        .await;
    assert!(status.is_success());
    stall.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_reaching_past_their_grants_are_denied() {
    let stall = Stall::start(10).await;
    let node = &stall.shared.node;
    // A courier adapter whose allow-list does not hold the courier it calls
    // (it calls its default, 127.0.0.1:7280): every request is denied by the
    // node before a connection is made, and the plugin says so.
    let package = PackageCopy::new(artifacts::COURIER, |manifest| {
        manifest
            .replace("outpost/courier", "test/outside-courier")
            .replace("http://127.0.0.1:7280", "http://127.0.0.1:9")
    });
    // Its health check runs at install, gets the node's denial, and the
    // node refuses to activate a plugin that reports itself failing.
    let refusal = outpost::updates::install(node, package.path())
        .expect_err("refused")
        .to_string();
    assert!(refusal.contains("not in the http grant"), "{refusal}");
    assert!(
        node.loaded(&outpost::manifest::PluginId::parse("test/outside-courier").expect("id"))
            .is_none()
    );

    // The tokenizer repackaged to grant a different key name: the keystore
    // denies the one it asks for, and install is refused the same way.
    let package = PackageCopy::new(artifacts::CARD_TOKENIZER, |manifest| {
        manifest
            .replace("outpost/card-tokenizer", "test/wrong-key-tokenizer")
            .replace("keystore = [\"card-token\"]", "keystore = [\"other-key\"]")
    });
    let refusal = outpost::updates::install(node, package.path())
        .expect_err("refused")
        .to_string();
    assert!(
        refusal.contains("key \"card-token\" is not granted"),
        "{refusal}"
    );

    // The installed plugins were not disturbed.
    let (status, _) = stall
        .client
        .post(
            "/v1/payments/tokenize",
            &json!({ "card": { "pan": PAN, "expiry_month": 12, "expiry_year": 2031 } }).to_string(),
        )
        .await;
    assert!(status.is_success());
    stall.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_through_the_node_match_the_model_run_natively() {
    // The reference series (whose Holt-Winters and Croston fits match
    // statsmodels and statsforecast: plugins/forecaster/tests/reference.rs):
    // the node's answer is the model's, number for number, with the method
    // it chose and the ones it tried.
    let stall = Stall::start(10).await;
    let reference: Value =
        serde_json::from_str(include_str!("../reference/forecasts.json")).expect("reference");
    for case in reference["cases"].as_array().expect("cases") {
        let values: Vec<f64> = case["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        let horizon = case["horizon"].as_u64().expect("horizon") as usize;
        let mut native = forecaster::model::Request::daily(&values, horizon, 0.8);
        for (at, _) in &mut native.observations {
            *at += 1_700_006_400;
        }
        let observations: Vec<Value> = native
            .observations
            .iter()
            .map(|(at, value)| json!({ "at": at, "value": value }))
            .collect();
        let want = forecaster::model::forecast(&native).expect("native forecast");
        let request = json!({ "request": {
            "history": { "item": case["name"], "unit": "units", "interval": "day",
                         "observations": observations },
            "horizon": horizon, "coverage": 0.8 } });
        let (status, body) = stall
            .client
            .post("/v1/forecasts", &request.to_string())
            .await;
        assert!(status.is_success(), "{body}");
        let forecast = &body["forecast"];
        assert_eq!(forecast["method"], want.method, "{}", case["name"]);
        assert_eq!(
            forecast["candidates"].as_array().map(Vec::len),
            Some(want.candidates.len())
        );
        let points = forecast["points"].as_array().expect("points");
        assert_eq!(points.len(), horizon);
        for (point, expected) in points.iter().zip(&want.points) {
            for (field, value) in [
                ("expected", expected.expected),
                ("lower", expected.lower),
                ("upper", expected.upper),
            ] {
                let got = point[field].as_f64().expect("number");
                assert!(
                    (got - value).abs() < 1e-9,
                    "{} {field}: {got} vs {value}",
                    case["name"]
                );
            }
            assert_eq!(point["open"], true);
        }
    }
    let (status, body) = stall
        .client
        .post("/v1/forecasts", r#"{"request": {"history": {"item": "x", "unit": "u", "interval": "fortnight", "observations": []}, "horizon": 1, "coverage": 0.8}}"#)
        .await;
    assert_eq!(status.as_u16(), 400, "{body}");
    assert!(body.to_string().contains("interval"), "{body}");
    stall.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_tells_the_centre_what_happened_once_it_can() {
    let centre = VirtualCentre::start().await;
    // The centre is having a bad moment: the first two deliveries fail.
    centre.refuse_next(2);
    let stall = Stall::start_with(10, Some(centre)).await;
    let client = &stall.client;
    let card = json!({ "card": { "pan": PAN, "expiry_month": 12, "expiry_year": 2031 } });
    let (status, tokenized) = client
        .post("/v1/payments/tokenize", &card.to_string())
        .await;
    assert!(status.is_success(), "{status}: {tokenized}");
    let (status, booked) = client
        .post(
            "/v1/shipping/bookings",
            &shipment("EVT-1", "YO1 7HH").to_string(),
        )
        .await;
    assert!(status.is_success(), "{status}: {booked}");
    // A refused request records no event.
    let (status, _) = client
        .post("/v1/payments/tokenize", &json!({ "card": {} }).to_string())
        .await;
    assert_eq!(status.as_u16(), 400);

    let centre = stall.centre.as_ref().expect("centre");
    let deadline = Instant::now() + Duration::from_secs(20);
    // Besides the trading events, each plugin's install is reported
    // (`plugin.update`); those are tested in updates.rs.
    let (accepted, events) = loop {
        let requests = centre.requests();
        // Two refused attempts, then each event once.
        let mut keys: Vec<&str> = requests.iter().map(|(key, _)| key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let trading: Vec<(String, serde_json::Value)> = requests
            .iter()
            .filter(|(_, event)| event["type"] != "plugin.update")
            .cloned()
            .collect();
        let mut trading_keys: Vec<&str> = trading.iter().map(|(key, _)| key.as_str()).collect();
        trading_keys.sort_unstable();
        trading_keys.dedup();
        if trading_keys.len() == 2 && requests.len() == keys.len() + 2 {
            break (trading, keys.len());
        }
        assert!(
            Instant::now() < deadline,
            "events not delivered: {requests:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut types = Vec::new();
    let mut node_ids = Vec::new();
    for (key, event) in &accepted {
        assert_eq!(event["event_id"], key.as_str(), "the key is the event id");
        assert!(
            !event.to_string().contains(PAN),
            "an event holds the PAN: {event}"
        );
        types.push(event["type"].as_str().unwrap_or_default().to_string());
        node_ids.push(event["node_id"].clone());
    }
    types.sort();
    types.dedup();
    assert_eq!(types, ["payment.tokenized", "shipment.booked"]);
    node_ids.dedup();
    assert_eq!(node_ids.len(), 1, "one node id: {node_ids:?}");
    let payment = accepted
        .iter()
        .find(|(_, e)| e["type"] == "payment.tokenized")
        .map(|(_, e)| e["data"].clone())
        .expect("payment event");
    assert_eq!(payment["token"], tokenized["token"]["token"]);
    assert_eq!(payment["last_four"], "1111");
    let booking = accepted
        .iter()
        .find(|(_, e)| e["type"] == "shipment.booked")
        .map(|(_, e)| e["data"].clone())
        .expect("booking event");
    assert_eq!(booking["booking_id"], booked["booking"]["booking_id"]);

    // The operator sees them as the node's own entries, delivered (the
    // centre can have an answer before the node has recorded it).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, outbox) = client.get("/v1/outbox?state=delivered").await;
        let owners = outbox["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["owner"].as_str())
            .filter(|owner| *owner == "node")
            .count();
        if owners == events {
            break;
        }
        assert!(Instant::now() < deadline, "{owners} of {events}: {outbox}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stall.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trading_route_refuses_bad_input_with_a_4xx_that_names_it() {
    let stall = Stall::start(10).await;
    let client = &stall.client;
    let token = json!({ "card": { "pan": PAN, "expiry_month": 12, "expiry_year": 2031 } });
    let (_, tokenized) = client
        .post("/v1/payments/tokenize", &token.to_string())
        .await;
    let token = tokenized["token"]["token"].clone();
    let quote = |request: Value| json!({ "request": request });
    let address = json!({ "name": "Sam", "lines": ["1 Main Street"], "city": "York",
                          "postal_code": "YO1 7HH", "country": "GB" });
    let parcel = json!({ "weight_grams": 800, "length_mm": 200, "width_mm": 150,
                         "height_mm": 80, "description": "Ceramics" });
    let history = |horizon: Value, coverage: Value| {
        json!({ "request": { "history": { "item": "loaves", "unit": "loaves", "interval": "day",
            "observations": [{ "at": 0, "value": 3 }, { "at": 86400, "value": 4 }] },
            "horizon": horizon, "coverage": coverage } })
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/v1/payments/authorize-offline",
            json!({ "payment": { "token": token, "reference": "S-9", "taken_at": 0,
                                 "amount": { "minor_units": 100, "currency": "XYZ" } } }),
            422,
            "currency",
        ),
        (
            "/v1/payments/authorize-offline",
            json!({ "payment": { "token": token, "reference": "S-9", "taken_at": 0,
                                 "amount": { "minor_units": "ten", "currency": "EUR" } } }),
            400,
            "payment.amount.minor-units",
        ),
        (
            "/v1/shipping/quotes",
            quote(
                json!({ "ship_from": address, "ship_to": address, "ready_at": 0,
                          "service_codes": [] }),
            ),
            400,
            "parcels",
        ),
        (
            "/v1/shipping/quotes",
            quote(
                json!({ "ship_from": address, "ship_to": address, "ready_at": 0,
                          "service_codes": [],
                          "parcels": [{ "weight_grams": "heavy", "length_mm": 1, "width_mm": 1,
                                        "height_mm": 1, "description": "x" }] }),
            ),
            400,
            "request.parcels[0].weight-grams",
        ),
        (
            "/v1/shipping/bookings",
            quote(
                json!({ "quote_id": "nonsense", "reference": "B-1", "ship_from": address,
                          "ship_to": address, "parcels": [parcel] }),
            ),
            422,
            "quote-id",
        ),
        (
            "/v1/shipping/bookings",
            quote(
                json!({ "reference": "B-1", "ship_from": address, "ship_to": address,
                          "parcels": [parcel] }),
            ),
            400,
            "quote-id",
        ),
        (
            "/v1/forecasts",
            history(json!(0), json!(0.8)),
            422,
            "horizon",
        ),
        (
            "/v1/forecasts",
            history(json!(3), json!("high")),
            400,
            "request.coverage",
        ),
        (
            "/v1/forecasts",
            json!({ "history": [] }),
            400,
            "request: missing",
        ),
    ];
    for (route, body, expected, named) in cases {
        let (status, answer) = client.post(route, &body.to_string()).await;
        assert_eq!(status.as_u16(), expected, "{route} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(named),
            "{route}: the message should name {named}: {answer}"
        );
    }
    let huge = format!("{{\"request\": \"{}\"}}", "x".repeat(300_000));
    for route in [
        "/v1/payments/authorize-offline",
        "/v1/shipping/quotes",
        "/v1/shipping/bookings",
        "/v1/forecasts",
    ] {
        let (status, answer) = client.post(route, &huge).await;
        assert_eq!(status.as_u16(), 413, "{route}: {answer}");
        let (status, answer) = client.post(route, "{\"request\": ").await;
        assert_eq!(status.as_u16(), 400, "{route}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid-json", "{route}");
    }
    // After all that, the node still serves.
    let (status, _) = client
        .post("/v1/forecasts", &history(json!(2), json!(0.8)).to_string())
        .await;
    assert!(status.is_success());
    stall.stop().await;
}
