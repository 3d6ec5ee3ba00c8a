//! Each plugin's share of the node: a slow or hostile plugin holds up its own
//! callers and nobody else's.

use hyper::StatusCode;
use outpost::api;
use outpost_e2e_tests::serving::Serving;
use outpost_e2e_tests::{LABEL_JSON, PackageCopy, TestNode, artifacts};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SLOW_CALLS: usize = 20;

/// The hostile driver as `id`, with `deadline_ms` per call and `concurrency`
/// calls at once.
fn hostile_driver(id: &str, deadline_ms: u64, concurrency: u32) -> PackageCopy {
    PackageCopy::new(artifacts::TEST_HOSTILE, |manifest| {
        manifest
            .replace("id = \"test/hostile\"", &format!("id = \"{id}\""))
            .replace(
                "deadline-ms = 300",
                &format!("deadline-ms = {deadline_ms}\nconcurrency = {concurrency}"),
            )
    })
}

/// `POST /v1/print/label` to the hostile `driver`, running `command`.
fn hostile_label(driver: &str, command: &str, args: &[&str]) -> String {
    let mut label: Value = serde_json::from_str(LABEL_JSON).expect("json");
    label["driver"] = json!(driver);
    label["label"]["reference"] = json!(command);
    label["label"]["notes"] = json!(args);
    label.to_string()
}

fn in_process(body: String) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    hyper::Request::post("/v1/print/label")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_plugin_fills_its_own_share_and_other_plugins_print_at_once() {
    // The hostile driver, renamed, allowed 2 calls at once and 3 s each; the
    // node keeps at most 4 more of its calls waiting.
    let slow = hostile_driver("test/slow", 3000, 2);
    let node = TestNode::with_toml("[policy]\nmax-queued-calls = 4\n");
    node.install_artifact(artifacts::THERMAL_PRINTER);
    node.install(slow.path());
    let shared = node.shared();
    let serving = Serving::start(shared.node.clone(), false).await;
    let client = Arc::new(serving.client.clone());

    let sleepy = Arc::new(hostile_label("test/slow", "sleep", &["1500"]));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut slow_calls = Vec::new();
    for _ in 0..SLOW_CALLS {
        let (client, sleepy, finished) = (client.clone(), sleepy.clone(), finished.clone());
        slow_calls.push(tokio::spawn(async move {
            let answer = client.post("/v1/print/label", &sleepy).await;
            // Only calls that ran count as finished: a refusal is immediate.
            if answer.0 == StatusCode::OK {
                finished.fetch_add(1, Ordering::SeqCst);
            }
            answer
        }));
    }
    // Wait until the slow plugin's share is taken.
    let slow_plugin = shared
        .node
        .loaded(&outpost::manifest::PluginId::parse("test/slow").expect("id"))
        .expect("loaded");
    while slow_plugin.share.running() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // The other plugin prints while the slow one's calls still run: before
    // shares, it waited for a pool slot behind them (16 ms became 4.8 s).
    let (status, body) = client.post("/v1/print/label", LABEL_JSON).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the other plugin's print waited for the slow plugin's calls"
    );
    assert!(
        slow_plugin.share.running() <= 2,
        "the share bounds running calls"
    );

    // The slow plugin's callers beyond its share and queue were refused at
    // once with a 503 that says why and when to come back.
    let mut ok = 0;
    let mut busy = 0;
    for call in slow_calls {
        let (status, body) = call.await.expect("request task");
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "plugin-busy", "{body}");
                assert_eq!(body["error"]["plugin"], "test/slow", "{body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("busy"), "{message}");
                busy += 1;
            }
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    assert!(ok >= 2, "the share's own calls ran: {ok} ok, {busy} busy");
    assert!(
        busy >= SLOW_CALLS - 2 - 4 - 2,
        "calls past the share and the queue are refused: {ok} ok, {busy} busy"
    );
    assert_eq!(
        slow_plugin.share.waiting(),
        0,
        "nobody is left in the queue"
    );
    serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_carry_retry_after() {
    let slow = hostile_driver("test/slow", 2000, 1);
    let node = TestNode::with_toml("[policy]\nmax-queued-calls = 0\n");
    node.install(slow.path());
    let shared = node.shared();
    let plugin = shared
        .node
        .loaded(&outpost::manifest::PluginId::parse("test/slow").expect("id"))
        .expect("loaded");
    let held = shared
        .node
        .invoker()
        .admit(&plugin, "test")
        .await
        .expect("in");
    let label = hostile_label("test/slow", "echo", &[]);
    let response = api::handle_in_process(shared.node.clone(), in_process(label.clone())).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    drop(held);
    let response = api::handle_in_process(shared.node.clone(), in_process(label)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "in once the place is free"
    );
}

/// A node embedded in a single-threaded runtime admits each call once: the
/// call steps onto a thread of its own to block, and takes its admission
/// along instead of queueing behind itself.
#[tokio::test(flavor = "current_thread")]
async fn a_call_is_admitted_once_on_a_single_threaded_runtime() {
    let single = hostile_driver("test/single", 300, 1);
    let node = TestNode::new();
    node.install(single.path());
    let shared = node.shared();
    let label = in_process(hostile_label("test/single", "echo", &[]));
    let (status, body) = outpost_e2e_tests::send_in_process(&shared.node, label).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
