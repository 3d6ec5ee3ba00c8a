//! The model against reference values computed independently with
//! statsmodels and statsforecast (`tests/reference/forecast_reference.py`
//! at the top of the repository says how).

use forecaster::model;
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
        let forecast = model::forecast(&history, 7, expected.len(), 0.8).expect("forecast");
        let method = case["method"].as_str().expect("method");
        assert!(
            forecast.method.starts_with(method),
            "{name}: {}",
            forecast.method
        );
        if method == "holt-winters" {
            let parameters = format!(
                "α={:.2} β={:.2} γ={:.2}",
                case["alpha"].as_f64().expect("alpha"),
                case["beta"].as_f64().expect("beta"),
                case["gamma"].as_f64().expect("gamma")
            );
            assert!(
                forecast.method.contains(&parameters),
                "{name}: {} vs {parameters}",
                forecast.method
            );
        }
        for (h, (point, reference)) in forecast.points.iter().zip(&expected).enumerate() {
            assert!(
                (point.expected - reference).abs() < 1e-6,
                "{name} h={}: {} vs reference {reference}",
                h + 1,
                point.expected
            );
        }
    }
}
