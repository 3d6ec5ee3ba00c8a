//! The model against reference values computed independently with
//! statsmodels and statsforecast (`tests/reference/forecast_reference.py`
//! at the top of the repository says how).

use forecaster::{croston, holt_winters};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let text = include_str!("../../../tests/reference/forecasts.json");
    let parsed: Value = serde_json::from_str(text).expect("reference file parses");
    parsed["cases"].as_array().expect("cases").clone()
}

#[test]
fn point_forecasts_match_the_references() {
    for case in cases() {
        let name = case["name"].as_str().expect("name");
        let history: Vec<f64> = case["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        let expected: Vec<f64> = case["expected"]
            .as_array()
            .expect("expected")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        // The methods themselves, as the backtest's candidates use them.
        let method = case["method"].as_str().expect("method");
        let points: Vec<f64> = match method {
            "holt-winters" => {
                let fit = holt_winters::fit(&history, 7);
                let p = fit.params;
                for (name, got) in [("alpha", p.alpha), ("beta", p.beta), ("gamma", p.gamma)] {
                    let want = case[name].as_f64().expect(name);
                    assert!((got - want).abs() < 1e-9, "{name}: {got} vs {want}");
                }
                (1..=expected.len()).map(|h| fit.point(h)).collect()
            }
            "croston/sba" => {
                let rate = croston::fit(&history, croston::ALPHA)
                    .expect("demand")
                    .rate();
                vec![rate; expected.len()]
            }
            other => panic!("{name}: unknown reference method {other}"),
        };
        for (h, (point, reference)) in points.iter().zip(&expected).enumerate() {
            assert!(
                (point - reference).abs() < 1e-6,
                "{name} h={}: {} vs reference {reference}",
                h + 1,
                point
            );
        }
    }
}
