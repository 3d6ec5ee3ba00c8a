//! Two contract versions on one node: a forecaster built against
//! `outpost:plugins/forecaster@0.1.0` (the test forecaster, kept on 0.1.0 on
//! purpose) and one built against 0.2.0 (the reference forecaster), both
//! installed and called through the API, and a plugin updated from a 0.1.0
//! build to a 0.2.0 build through the node's update path.

use outpost::control::{self, Steer};
use outpost::store::UpdateState;
use outpost_e2e_tests::registry::TestRegistry;
use outpost_e2e_tests::serving::Serving;
use outpost_e2e_tests::updates::{install, wait_for};
use outpost_e2e_tests::{PackageCopy, TestNode, artifacts};
use outpost_registry::server::ServeConfig;
use serde_json::{Value, json};

fn observations(days: usize) -> Vec<Value> {
    (0..days)
        .map(|t| {
            let value = [40.0, 38.0, 41.0, 45.0, 60.0, 80.0, 62.0][t % 7] + (t % 3) as f64;
            json!({ "at": 1_759_968_000 + t as i64 * 86_400, "value": value })
        })
        .collect()
}

fn forecast_body(plugin: &str, extra: Value) -> String {
    let mut request = json!({
        "history": { "item": "loaf", "unit": "loaves", "interval": "day",
                     "observations": observations(28) },
        "horizon": 7, "coverage": 0.8 });
    if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
        request.extend(extra.clone());
    }
    json!({ "plugin": plugin, "request": request }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_and_a_0_2_forecaster_serve_side_by_side() {
    let node = TestNode::new();
    let old = node.install_artifact(artifacts::TEST_FORECASTER);
    let new = node.install_artifact(artifacts::FORECASTER);
    assert_eq!(old.manifest.world.to_string(), "forecaster@0.1.0");
    assert_eq!(new.manifest.world.to_string(), "forecaster@0.2.0");
    let shared = node.shared();
    let served = Serving::start(shared.node.clone(), false).await;
    let client = &served.client;

    // The 0.1.0 plugin answers the 0.1.0 shape, exactly as before.
    let (status, body) = client
        .post(
            "/v1/forecasts",
            &forecast_body("test/forecaster", json!({})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let forecast = &body["forecast"];
    assert_eq!(forecast["points"].as_array().map(Vec::len), Some(7));
    assert!(forecast.get("candidates").is_none(), "{forecast}");
    assert!(forecast["points"][0].get("open").is_none(), "{forecast}");

    // The 0.2.0 plugin takes a calendar and events, and says what it tried.
    let calendar = json!({
        "calendar": { "open_weekdays": ["monday", "thursday", "friday", "saturday", "sunday"] },
        "events": [{ "name": "market day", "at": 1_759_968_000 + 30 * 86_400 }],
    });
    let (status, body) = client
        .post(
            "/v1/forecasts",
            &forecast_body("outpost/forecaster", calendar.clone()),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let forecast = &body["forecast"];
    assert!(
        !forecast["candidates"]
            .as_array()
            .expect("candidates")
            .is_empty()
    );
    let points = forecast["points"].as_array().expect("points");
    // The history ends on a Wednesday: the 6th and 7th days ahead are the
    // closed Tuesday and Wednesday.
    for closed in &points[5..7] {
        assert_eq!(closed["open"], false, "{forecast}");
        assert_eq!(closed["expected"], 0.0, "{forecast}");
    }
    assert!(
        points[..5]
            .iter()
            .all(|p| p["open"] == true && p["upper"].as_f64() > p["lower"].as_f64())
    );
    assert_eq!(points[2]["events"], json!(["market day"]), "{forecast}");
    let warnings = forecast["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("\"market day\""))),
        "{forecast}"
    );

    // What 0.1.0 cannot take is refused by name before the plugin runs.
    let (status, body) = client
        .post("/v1/forecasts", &forecast_body("test/forecaster", calendar))
        .await;
    assert_eq!(status.as_u16(), 400, "{body}");
    let message = body.to_string();
    assert!(message.contains("calendar"), "{message}");
    assert!(message.contains("forecaster@0.1.0"), "{message}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_moves_from_0_1_to_0_2_through_the_update_path() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = outpost_e2e_tests::updates::following_node(
        &registry,
        "[updates]\nprobation-seconds = 1\nprobation-calls = 2\n",
    );
    let node = shared.node.clone();
    let id = outpost::manifest::PluginId::parse("acme/forecast").expect("id");
    // One plugin id, two builds: 0.1.0 on the 0.1.0 contract, 0.2.0 on the
    // 0.2.0 contract (each reports its own version in `info`).
    let first = PackageCopy::new(artifacts::TEST_FORECASTER, |m| {
        m.replace("id = \"test/forecaster\"", "id = \"acme/forecast\"")
    });
    let second = PackageCopy::new(artifacts::FORECASTER, |m| {
        m.replace("id = \"outpost/forecaster\"", "id = \"acme/forecast\"")
    });
    for package in [&first, &second] {
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
    }
    install(&node, "acme/forecast@=0.1.0").await;
    let world = |node: &outpost::node::Node| {
        node.loaded(&id)
            .map(|p| (p.version.to_string(), p.manifest.world.to_string()))
    };
    assert_eq!(
        world(&node),
        Some(("0.1.0".into(), "forecaster@0.1.0".into()))
    );
    control::follow(&node, id.clone(), Some(">=0.1".into()))
        .await
        .expect("follow");

    // 0.2.0 asks for a longer deadline than 0.1.0 had: held for consent,
    // then activated on approval, on probation, then confirmed.
    let checked = control::check(&node).await.expect("check");
    assert!(checked[0].outcome.contains("0.2.0 held"), "{checked:?}");
    let update = node.store().update(&id).expect("read").expect("held");
    assert!(
        update.asks.iter().any(|a| a.contains("deadline")),
        "{:?}",
        update.asks
    );
    let approved = control::steer(&node, id.clone(), Steer::Approve, None)
        .await
        .expect("approve");
    assert_eq!(approved.state, UpdateState::Probation);
    assert_eq!(
        world(&node),
        Some(("0.2.0".into(), "forecaster@0.2.0".into()))
    );
    let served = Serving::start(node.clone(), false).await;
    for _ in 0..2 {
        let (status, body) = served
            .client
            .post("/v1/forecasts", &forecast_body("acme/forecast", json!({})))
            .await;
        assert!(status.is_success(), "{body}");
        assert!(body["forecast"]["candidates"].is_array(), "{body}");
    }
    let _background = outpost_e2e_tests::updates::Background::start(&node);
    wait_for("0.2.0 to be confirmed", || {
        node.store()
            .update_history(Some(&id), 100)
            .expect("history")
            .iter()
            .rev()
            .find(|t| t.to.to_string() == "0.2.0")
            .is_some_and(|t| t.state == UpdateState::Confirmed)
    })
    .await;

    served.stop().await;
}
