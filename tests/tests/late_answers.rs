//! A plugin's deadline is the caller's: handing over and converting its
//! result count against it, so a plugin cannot return in time a result that
//! takes the node far longer to answer with. (Lifting is also caught by the
//! epoch check when the guest's post-return runs; the node checks the
//! elapsed time itself after lifting and again after converting to JSON.)

use hyper::StatusCode;
use outpost_e2e_tests::{PackageCopy, TestNode, artifacts, forecast_request, send_in_process};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_cannot_be_answered_within_the_deadline_is_a_timeout() {
    // The forecaster computes 50,000 points in well under a millisecond;
    // lifting them into the node and writing them as JSON takes longer. With
    // 64 MiB of memory, 16 MiB may be handed over: they fit.
    let package = PackageCopy::new(artifacts::TEST_FORECASTER, |manifest| {
        manifest
            .replace("deadline-ms = 500", "deadline-ms = 1")
            .replace("memory-mib = 16", "memory-mib = 64")
    });
    let node = TestNode::new();
    node.install(package.path());
    let shared = node.shared();

    let small = forecast_request("test/forecaster", 14, 7);
    let (status, _) = send_in_process(&shared.node, small).await;
    assert_eq!(status, StatusCode::OK, "a small answer is in time");

    let started = std::time::Instant::now();
    let large = forecast_request("test/forecaster", 14, 50_000);
    let (status, body) = send_in_process(&shared.node, large).await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "after {:?}: {body}",
        started.elapsed()
    );
    assert_eq!(body["error"]["code"], "plugin-deadline", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1ms deadline"),
        "{body}"
    );
}
