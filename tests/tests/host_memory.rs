//! What a plugin's results cost the node. A result is lifted into host
//! memory (and then into JSON) at several times its size in the guest, so a
//! plugin within its own memory cap could make the node allocate hundreds of
//! megabytes per call. The node bounds what one call may hand it.
//!
//! Alone in its test binary: it reads the process's peak memory.

use hyper::StatusCode;
use outpost_e2e_tests::{TestNode, artifacts, forecast_request, send_in_process};

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib << 10
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_result_is_refused_before_it_costs_the_node_more_than_the_plugins_own_memory() {
    let node = TestNode::new();
    node.install_artifact(artifacts::TEST_FORECASTER);
    let shared = node.shared();

    // Five years a day at a time is an ordinary answer and still fits.
    let ordinary = forecast_request("test/forecaster", 28, 5 * 365);
    let (status, _) = send_in_process(&shared.node, ordinary).await;
    assert_eq!(status, StatusCode::OK);
    let before = peak_rss_bytes();

    // 400,000 points fit the forecaster's 16 MiB; lifted into the host and
    // turned into JSON they took ~350 MB a call.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let node = shared.node.clone();
        calls.push(tokio::spawn(async move {
            send_in_process(&node, forecast_request("test/forecaster", 28, 400_000)).await
        }));
    }
    for call in calls {
        let (status, body) = call.await.expect("call task");
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"]["code"], "plugin-failed", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("passed more than"), "{message}");
    }
    let grown = peak_rss_bytes().saturating_sub(before);
    // At most its share of calls run at once, each with up to 16 MiB of
    // guest memory and a quarter of that handed to the host.
    assert!(
        grown < 192 << 20,
        "8 calls grew the node's peak memory by {} MiB",
        grown >> 20
    );
}
