//! {{id}} as a node runs it: the built component in a real sandbox, under
//! plugin.toml's own limits and grants, called with the files in examples/.
//! The test-kit builds the crate for wasm32-wasip2 first.

use outpost_testkit::{Kind, Plugin, example, json};
use std::time::Duration;

/// The time budget of one call: well under plugin.toml's 3000 ms deadline,
/// so a change that makes the code slow fails here before nodes stop it.
const QUICK: Duration = Duration::from_millis(500);

/// Pointed at a port nothing answers on, so every booking stays queued.
fn plugin() -> Plugin {
    let plugin = Plugin::builder()
        .config("api-url", "http://127.0.0.1:9")
        .build();
    plugin.expect("build and install the plugin")
}

#[test]
fn quotes_the_example_shipment() {
    let answer = plugin().call("request-quotes", example("request-quotes"));
    let answer = answer.expect("request-quotes");
    assert_eq!(
        answer.value.as_array().map(Vec::len),
        Some(1),
        "{}",
        answer.value
    );
    assert_eq!(answer.value[0]["quote_id"], "STD.1795478400");
    assert_eq!(answer.value[0]["price"]["minor_units"], 695);
    assert!(
        answer.elapsed < QUICK,
        "request-quotes took {:?}",
        answer.elapsed
    );
}

#[test]
fn books_the_example_once_and_reports_it_queued() {
    let plugin = plugin();
    let booked = plugin.call("book", example("book")).expect("book");
    assert_eq!(booked.value["state"], "queued", "{}", booked.value);
    assert_eq!(booked.value["booking_id"], "bk-ORDER-1042");
    assert!(booked.elapsed < QUICK, "book took {:?}", booked.elapsed);
    let again = plugin.call("book", example("book")).expect("book again");
    assert_eq!(
        again.value["booking_id"], "bk-ORDER-1042",
        "the same booking"
    );

    let status = plugin.call("booking-status", example("booking-status"));
    assert_eq!(status.expect("booking-status").value["state"], "queued");
    let tracking = plugin.call("track", example("track")).expect("track");
    assert_eq!(tracking.value["tracking_number"], "15501234567890");
    plugin.call("cancel", example("cancel")).expect("cancel");
}

/// A booking reaches the carrier through the node's outbox: here the
/// virtual courier API the test-kit runs on 127.0.0.1 as `api-url`.
#[test]
fn a_booking_reaches_the_virtual_courier() {
    let plugin = Plugin::builder().virtual_courier().build();
    let plugin = plugin.expect("build and install the plugin");
    plugin.call("book", example("book")).expect("book");
    let mut shipments = Vec::new();
    for _ in 0..100 {
        shipments = plugin.courier_shipments().expect("the courier's bookings");
        if !shipments.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(shipments.len(), 1, "delivered once: {shipments:?}");
    assert_eq!(shipments[0]["request"]["reference"], "ORDER-1042");
}

#[test]
fn refuses_a_booking_without_a_reference() {
    let mut args = example("book");
    args["request"]["reference"] = json!("");
    let failure = plugin().call("book", args).unwrap_err();
    assert!(
        matches!(failure.kind, Kind::InvalidInput),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("reference"), "{}", failure.message);
}
