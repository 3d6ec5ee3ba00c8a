//! {{id}} as a node runs it: the built component in a real sandbox, under
//! plugin.toml's own limits and grants, called with the files in examples/.
//! The test-kit builds the crate for wasm32-wasip2 first.

use outpost_testkit::{Kind, Plugin, example, json};
use std::time::Duration;

/// The time budget of one call: well under plugin.toml's 250 ms deadline,
/// so a change that makes the code slow fails here before nodes stop it.
const QUICK: Duration = Duration::from_millis(100);

fn plugin() -> Plugin {
    Plugin::build().expect("build and install the plugin")
}

#[test]
fn renders_the_example_label_and_receipt() {
    let plugin = plugin();
    let label = plugin.call("render-label", example("render-label"));
    let label = label.expect("render-label");
    assert!(label.elapsed < QUICK, "took {:?}", label.elapsed);
    let text = String::from_utf8(label.bytes().expect("bytes")).expect("plain text");
    assert!(text.contains("REF: ORD-20261123-0042"), "{text}");

    let receipt = plugin.call("render-receipt", example("render-receipt"));
    let receipt = receipt.expect("render-receipt");
    assert!(receipt.elapsed < QUICK, "took {:?}", receipt.elapsed);
    let text = String::from_utf8(receipt.bytes().expect("bytes")).expect("plain text");
    assert!(text.contains("19.35 GBP"), "{text}");
    let widest = text.lines().map(|line| line.chars().count()).max();
    assert!(
        widest <= Some(42),
        "wider than the paper's 42 columns:\n{text}"
    );
}

#[test]
fn reads_the_example_status_reply() {
    let plugin = plugin();
    let probe = plugin.call("status-request", example("status-request"));
    let probe = probe.expect("status-request");
    assert_eq!(probe.value["reply_bytes"], 1, "{}", probe.value);
    let status = plugin.call("parse-status", example("parse-status"));
    let status = status.expect("parse-status");
    assert_eq!(status.value["ready"], true, "{}", status.value);
    assert!(status.elapsed < QUICK, "took {:?}", status.elapsed);
}

/// Through the node's print path to the test-kit's virtual printer, which
/// keeps each job and answers ESC/POS and ZPL status probes.
#[test]
fn prints_to_the_virtual_printer_and_reads_its_status() {
    let plugin = plugin();
    let printed = plugin.print(example("render-receipt")).expect("print");
    let text = String::from_utf8_lossy(&printed.bytes);
    assert!(text.contains("19.35 GBP"), "the printer got:\n{text}");
    let status = plugin.printer_status("receipt").expect("status");
    assert!(status.ready, "{status:?}");
}

#[test]
fn refuses_a_label_without_a_reference() {
    let mut args = example("render-label");
    args["label"]["reference"] = json!("");
    let failure = plugin().call("render-label", args).unwrap_err();
    assert!(
        matches!(failure.kind, Kind::InvalidInput),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("reference"), "{}", failure.message);
}
