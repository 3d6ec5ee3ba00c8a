//! A test-only forecaster: the mean of the last week of observations, with an
//! interval from their spread. Enough to be a real component of another world.

use outpost_sdk::forecaster_0_1::{
    DemandForecast, ForecastPoint, ForecastRequest, Forecasting, HealthReport, HealthStatus,
    Interval, Lifecycle, PluginInfo,
};
use outpost_sdk::types::PluginError;

struct MovingAverage;

const WINDOW: usize = 7;

impl Lifecycle for MovingAverage {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Moving-average demand forecast (tests only)".into(),
            support: "tests".into(),
        }
    }

    fn health() -> HealthReport {
        HealthReport {
            status: HealthStatus::Ok,
            detail: String::new(),
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Forecasting for MovingAverage {
    fn forecast(request: ForecastRequest) -> Result<DemandForecast, PluginError> {
        let history = &request.history.observations;
        if history.is_empty() {
            return Err(PluginError::invalid_input("history.observations: empty"));
        }
        if !(request.coverage > 0.0 && request.coverage < 1.0) {
            return Err(PluginError::invalid_input("coverage: must be in (0, 1)"));
        }
        let recent = &history[history.len().saturating_sub(WINDOW)..];
        let mean = recent.iter().map(|o| o.value).sum::<f64>() / recent.len() as f64;
        let variance =
            recent.iter().map(|o| (o.value - mean).powi(2)).sum::<f64>() / recent.len() as f64;
        // A normal approximation is plenty for a test model.
        let z = if request.coverage >= 0.95 { 1.96 } else { 1.28 };
        let spread = z * variance.sqrt();
        let step = match request.history.interval {
            Interval::Hour => 3_600,
            Interval::Day => 86_400,
            Interval::Week => 604_800,
        };
        let last = history[history.len() - 1].at;
        let points = (1..=i64::from(request.horizon))
            .map(|n| ForecastPoint {
                at: last + n * step,
                expected: mean,
                lower: (mean - spread).max(0.0),
                upper: mean + spread,
            })
            .collect();
        Ok(DemandForecast {
            item: request.history.item,
            points,
            method: format!("moving average ({WINDOW})"),
        })
    }
}

outpost_sdk::export_forecaster_0_1!(MovingAverage);
