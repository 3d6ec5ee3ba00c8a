//! {{id}} as a node runs it: the built component in a real sandbox, under
//! plugin.toml's own limits and grants, called with the files in examples/.
//! The test-kit builds the crate for wasm32-wasip2 first.

use outpost_testkit::{Kind, Plugin, example, json};
use std::time::Duration;

/// The time budget of one call: well under plugin.toml's 250 ms deadline,
/// so a change that makes the code slow fails here before nodes stop it.
const QUICK: Duration = Duration::from_millis(100);

/// With the key plugin.toml asks for, as an operator would add it.
fn plugin() -> Plugin {
    let key = b"0123456789abcdef0123456789abcdef";
    let plugin = Plugin::builder().key("card-hmac", key).build();
    plugin.expect("build and install the plugin")
}

#[test]
fn tokenizes_the_example_card_the_same_way_twice() {
    let plugin = plugin();
    let answer = plugin
        .call("tokenize", example("tokenize"))
        .expect("tokenize");
    let token = answer.value["token"].as_str().expect("a token").to_string();
    assert!(
        token.starts_with("tok-") && token.ends_with("-1111"),
        "{token}"
    );
    assert_eq!(answer.value["last_four"], "1111");
    assert_eq!(answer.value["brand"], "visa");
    assert!(answer.elapsed < QUICK, "tokenize took {:?}", answer.elapsed);
    let again = plugin
        .call("tokenize", example("tokenize"))
        .expect("tokenize");
    assert_eq!(again.value["token"], token.as_str());
}

#[test]
fn approves_the_example_offline_payment() {
    let answer = plugin().call("authorize-offline", example("authorize-offline"));
    let answer = answer.expect("authorize-offline");
    assert!(answer.value["approved"].is_string(), "{}", answer.value);
    assert!(
        answer.elapsed < QUICK,
        "authorize-offline took {:?}",
        answer.elapsed
    );
}

#[test]
fn refuses_a_card_that_fails_the_luhn_check() {
    let mut args = example("tokenize");
    args["card"]["pan"] = json!("4111111111111112");
    let failure = plugin().call("tokenize", args).unwrap_err();
    assert!(
        matches!(failure.kind, Kind::InvalidInput),
        "{}",
        failure.message
    );
    assert!(
        !failure.message.contains("41111111"),
        "the number must not come back"
    );
}
