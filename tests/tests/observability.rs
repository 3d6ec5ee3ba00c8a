//! What a node shows of itself: `/metrics` scraped by a real Prometheus and
//! linted by promtool, and telemetry shipped as remote write to a real
//! Prometheus after the node was offline.

use hyper::{Method, StatusCode};
use outpost::config::NodeConfig;
use outpost_e2e_tests::prometheus::{self, Prometheus};
use outpost_e2e_tests::serving::Serving;
use outpost_e2e_tests::{
    ApiClient, LABEL_JSON, TestNode, artifacts, install_card_tokenizer, raw_request,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn metrics_token(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("metrics-token"))
        .expect("the node made its scrape token")
        .trim()
        .to_string()
}

/// `/metrics` with `token`: the status and the text.
async fn scrape(client: &ApiClient, token: Option<&str>) -> (StatusCode, String) {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    let (status, _, text) = raw_request(&client.base, Method::GET, "/metrics", &headers, "").await;
    (status, text)
}

/// The value of the series `line_start` (name and labels, as written).
fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(line_start) && line[line_start.len()..].starts_with(' '))
        .and_then(|line| line.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

/// A node with a printer driver, a tokenizer and the hostile plugin, some
/// trade done through the API: two labels, a receipt-less failure, a card.
async fn trading_node() -> (outpost_e2e_tests::SharedNode, Serving) {
    let node = TestNode::new();
    node.install_artifact(artifacts::THERMAL_PRINTER);
    node.install_artifact(artifacts::TEST_HOSTILE);
    install_card_tokenizer(&node.node);
    let shared = node.shared();
    let serving = Serving::start(shared.node.clone(), false).await;
    let client = &serving.client;
    let mut label: Value = serde_json::from_str(LABEL_JSON).expect("example");
    label["driver"] = json!("outpost/thermal-printer");
    for _ in 0..2 {
        let (status, body) = client.post("/v1/print/label", &label.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The hostile driver panics: a label that failed, a call stopped.
    let mut failing = label.clone();
    failing["driver"] = json!("test/hostile");
    failing["label"]["reference"] = json!("panic");
    let (status, _) = client.post("/v1/print/label", &failing.to_string()).await;
    assert!(status.is_server_error(), "{status}");
    let card = include_str!("../../docs/examples/card.json");
    let (status, body) = client.post("/v1/payments/tokenize", card).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (shared, serving)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_trade_and_open_only_to_the_scrape_token() {
    let (shared, serving) = trading_node().await;
    let client = &serving.client;

    // Nobody gets in by default: no token, and the apps' token is not it.
    let (status, _) = scrape(client, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scrape(client, Some(&client.token)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the app token opens /metrics"
    );

    let (status, text) = scrape(client, Some(&metrics_token(shared.dir.path()))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let expect = |series: &str, wanted: f64| {
        assert_eq!(value(&text, series), Some(wanted), "{series} in:\n{text}");
    };
    expect("outpost_documents_printed_total{document=\"label\"}", 2.0);
    expect("outpost_documents_failed_total{document=\"label\"}", 1.0);
    expect("outpost_payments_tokenized_total", 1.0);
    expect(
        "outpost_plugin_call_errors_total{plugin=\"test/hostile\",cause=\"panic\"}",
        1.0,
    );
    expect(
        "outpost_plugin_calls_total{plugin=\"outpost/thermal-printer\"}",
        2.0,
    );
    expect(
        "outpost_plugin_call_duration_seconds_count{plugin=\"outpost/thermal-printer\"}",
        2.0,
    );
    expect("outpost_pool_slots_in_use", 0.0);
    expect("outpost_updates{state=\"held\"}", 0.0);
    assert!(
        value(&text, "outpost_storage_free_bytes").is_some_and(|free| free > 0.0),
        "{text}"
    );
    assert!(
        text.contains("outpost_plugin_info{plugin=\"outpost/card-tokenizer\""),
        "{text}"
    );
    // Nothing from a card or a label's contents is ever in it.
    assert!(!text.contains("4111"), "card data in /metrics");
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_node_and_promtool_passes_its_output() {
    if !prometheus::available() {
        return;
    }
    let (shared, serving) = trading_node().await;
    let client = &serving.client;
    let token = metrics_token(shared.dir.path());
    let (_, text) = scrape(client, Some(&token)).await;
    let (clean, said) = prometheus::promtool_check(&text);
    assert!(clean, "promtool check metrics:\n{said}\non:\n{text}");

    let target = client.base.trim_start_matches("http://").to_string();
    let config = prometheus::scrape_config(&target, &shared.dir.path().join("metrics-token"));
    let server = Prometheus::start(prometheus::free_port(), &config);
    let prometheus_api = ApiClient::new(server.base(), String::new());
    let query = |promql: &str| {
        let promql = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect::<String>();
        format!("/api/v1/query?query={promql}")
    };
    // Scraped every second: wait for the first scrapes to land.
    let started = Instant::now();
    let result = loop {
        let (status, answer) = prometheus_api
            .send(
                Method::GET,
                &query("outpost_documents_printed_total{document=\"label\",job=\"outpost\"}"),
                "",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if let Some(result) = answer["data"]["result"]
            .as_array()
            .filter(|r| !r.is_empty())
        {
            break result.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Prometheus has not scraped the node in 30 s; its log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(result[0]["value"][1], "2", "{result:?}");
    let (_, up) = prometheus_api
        .send(Method::GET, &query("up{job=\"outpost\"}"), "", None)
        .await;
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let (_, errors) = prometheus_api
        .send(
            Method::GET,
            &query("sum by (cause) (outpost_plugin_call_errors_total{plugin=\"test/hostile\"})"),
            "",
            None,
        )
        .await;
    let panics = errors["data"]["result"]
        .as_array()
        .and_then(|r| r.iter().find(|s| s["metric"]["cause"] == "panic"))
        .map(|s| s["value"][1].clone());
    assert_eq!(panics, Some(json!("1")), "{errors}");
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_made_offline_reach_a_real_prometheus_within_the_budget() {
    if !prometheus::available() {
        return;
    }
    let port = prometheus::free_port();
    let mut config = NodeConfig::default();
    let telemetry = &mut config.telemetry;
    telemetry.remote_write_url = Some(format!("http://127.0.0.1:{port}/api/v1/write"));
    telemetry.consent = "aggregate".into();
    telemetry.max_backlog_kib = 64;
    telemetry.batch_kib = 16;
    let budget = 64 << 10;
    let batch = 16 << 10;
    let node = TestNode::with_config(config);
    node.install_artifact(artifacts::THERMAL_PRINTER);
    let shared = node.shared();
    let node = shared.node.clone();

    // Six hours offline, a rollup every five minutes (the defaults): the
    // centre does not answer, so they wait, within the budget.
    let now = outpost::clock::now_millis();
    let interval = 300_000;
    let first = (now - 6 * 3_600_000) / interval * interval;
    let mut taken = Vec::new();
    let mut at = first;
    while at <= now {
        assert!(outpost::telemetry::take_rollup(&node, at).expect("rolled up"));
        taken.push(at);
        let backlog = node.store().telemetry_backlog().expect("backlog");
        assert!(
            backlog.bytes <= budget,
            "{backlog:?} over the {budget}-byte budget"
        );
        if taken.len() % 12 == 0 {
            let shipped = outpost::telemetry::ship_once(&node, u64::MAX)
                .await
                .expect("tried");
            assert!(shipped.trouble.is_some(), "shipped to nobody: {shipped:?}");
        }
        at += interval;
    }
    let kept: Vec<_> = node.store().telemetry_oldest(u64::MAX).expect("reads");
    let kept_times: Vec<u64> = kept.iter().map(|r| r.at_ms).collect();
    assert!(
        kept.len() < taken.len(),
        "no thinning: the test does not test the budget"
    );
    // Over budget, fine rollups went first: every hourly one of the outage
    // is still there.
    for hour in taken
        .iter()
        .filter(|at| (*at / interval).is_multiple_of(12))
    {
        assert!(
            kept_times.contains(hour),
            "the hourly rollup of {hour} was dropped while fine ones were kept: {kept_times:?}"
        );
    }
    assert!(
        kept.iter().any(|r| !r.coarse),
        "only coarse rollups kept: {kept_times:?}"
    );

    // The centre comes back: the backlog goes out oldest first, a batch at
    // a time, none bigger than batch-kib.
    let server = Prometheus::start(port, &prometheus::receiver_config());
    let mut requests = 0;
    loop {
        let shipped = outpost::telemetry::ship_once(&node, u64::MAX)
            .await
            .expect("shipped");
        assert_eq!(shipped.trouble, None, "Prometheus said:\n{}", server.log());
        if shipped.rollups == 0 {
            break;
        }
        requests += 1;
        assert!(
            shipped.wire_bytes <= batch,
            "{shipped:?} over the {batch}-byte batch"
        );
    }
    assert!(requests > 1, "one request carried {} rollups", kept.len());
    assert_eq!(
        node.store().telemetry_backlog().expect("backlog").rollups,
        0
    );

    // Every rollup kept arrived, at the time it was taken.
    let node_id = node.store().node_id(|| unreachable!()).expect("id");
    let prometheus_api = ApiClient::new(server.base(), String::new());
    let query = |promql: String| {
        let promql = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect::<String>();
        format!("/api/v1/query?query={promql}")
    };
    let (status, answer) = prometheus_api
        .send(
            Method::GET,
            &query(format!("outpost_build_info{{node=\"{node_id}\"}}[7h]")),
            "",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let received: Vec<u64> = answer["data"]["result"][0]["values"]
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(|v| v[0].as_f64())
                .map(|seconds| (seconds * 1000.0).round() as u64)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        received, kept_times,
        "what Prometheus has, against what the node kept"
    );
    // Aggregate consent: no plugin is named in what left.
    let (_, named) = prometheus_api
        .send(
            Method::GET,
            &query(format!("count({{node=\"{node_id}\",plugin!=\"\"}})")),
            "",
            None,
        )
        .await;
    assert_eq!(named["data"]["result"], json!([]), "{named}");
}
