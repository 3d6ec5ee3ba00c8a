//! {{id}} as a node runs it: the built component in a real sandbox, under
//! plugin.toml's own limits and grants, called with the files in examples/.
//! The test-kit builds the crate for wasm32-wasip2 first.

use outpost_testkit::{Kind, Plugin, example, json};
use std::time::Duration;

/// The time budget of one call: well under plugin.toml's 1000 ms deadline,
/// so a change that makes the code slow fails here before nodes stop it.
const QUICK: Duration = Duration::from_millis(300);

fn plugin() -> Plugin {
    Plugin::build().expect("build and install the plugin")
}

#[test]
fn forecasts_the_example_history() {
    let answer = plugin().call("forecast", example("forecast"));
    let answer = answer.expect("forecast");
    let forecast = &answer.value;
    assert_eq!(forecast["method"], "seasonal naive (7)", "{forecast}");
    let points = forecast["points"].as_array().expect("points");
    assert_eq!(points.len(), 3);
    // The day after the last observation, forecast as the same day a week earlier.
    assert_eq!(points[0]["at"], 1_762_300_800_i64 + 86_400);
    let first = points[0]["expected"].as_f64().expect("a number");
    assert!((first - 47.15).abs() < 1e-9, "{forecast}");
    for point in points {
        let numbers = ["lower", "expected", "upper"].map(|key| point[key].as_f64());
        let [lower, expected, upper] = numbers.map(|n| n.expect("a number"));
        assert!(lower <= expected && expected <= upper, "{point}");
    }
    assert!(answer.elapsed < QUICK, "forecast took {:?}", answer.elapsed);
}

#[test]
fn refuses_a_coverage_outside_0_to_1() {
    let mut args = example("forecast");
    args["request"]["coverage"] = json!(1.5);
    let failure = plugin().call("forecast", args).unwrap_err();
    assert!(
        matches!(failure.kind, Kind::InvalidInput),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("coverage"), "{}", failure.message);
}
