//! Outpost's reference forecaster: daily (or hourly, weekly) demand
//! forecasts with prediction intervals, computed on the node with no network.
//!
//! The arithmetic lives in [`model`], [`holt_winters`] and [`croston`], plain
//! Rust with no WIT types, so it can be tested and benchmarked natively; this
//! file only checks the request and translates to and from the
//! `outpost:plugins/forecasting` records.

pub mod croston;
pub mod holt_winters;
pub mod model;
pub mod normal;

use outpost_sdk::forecaster::{
    DemandForecast, ForecastPoint, ForecastRequest, Forecasting, HealthReport, HealthStatus,
    Interval, Lifecycle, PluginInfo,
};
use outpost_sdk::types::PluginError;

struct Forecaster;

/// Seconds per period, and the seasonal cycle in periods.
pub fn period(interval: Interval) -> (i64, usize) {
    match interval {
        Interval::Hour => (3_600, 24),
        Interval::Day => (86_400, 7),
        Interval::Week => (604_800, 52),
    }
}

impl Lifecycle for Forecaster {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Demand forecasts: Holt-Winters or Croston/SBA, chosen by the data".into(),
            support: "https://github.com/outpost-edge/outpost/issues".into(),
        }
    }

    fn health() -> HealthReport {
        HealthReport {
            status: HealthStatus::Ok,
            detail: "stateless; nothing to check".into(),
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Forecasting for Forecaster {
    fn forecast(request: ForecastRequest) -> Result<DemandForecast, PluginError> {
        let history = &request.history;
        if history.item.trim().is_empty() {
            return Err(PluginError::invalid_input(
                "history.item: must not be empty",
            ));
        }
        let (step, season) = period(history.interval);
        for (index, pair) in history.observations.windows(2).enumerate() {
            if pair[1].at - pair[0].at != step {
                return Err(PluginError::invalid_input(format!(
                    "history.observations[{}].at: observations must be one {} apart, oldest \
                     first, with no gaps (send 0 for a period without sales)",
                    index + 1,
                    match history.interval {
                        Interval::Hour => "hour",
                        Interval::Day => "day",
                        Interval::Week => "week",
                    }
                )));
            }
        }
        let values: Vec<f64> = history.observations.iter().map(|o| o.value).collect();
        let horizon = usize::try_from(request.horizon).unwrap_or(usize::MAX);
        let result = model::forecast(&values, season, horizon, request.coverage)
            .map_err(|model::ForecastError::Invalid(why)| PluginError::invalid_input(why))?;
        let last = history.observations.last().map_or(0, |o| o.at);
        outpost_sdk::debug!(
            "{}: {} observations, {}",
            history.item,
            values.len(),
            result.method
        );
        Ok(DemandForecast {
            item: history.item.clone(),
            points: result
                .points
                .iter()
                .zip(1i64..)
                .map(|(point, n)| ForecastPoint {
                    at: last + n * step,
                    expected: point.expected,
                    lower: point.lower,
                    upper: point.upper,
                })
                .collect(),
            method: result.method,
        })
    }
}

outpost_sdk::export_forecaster!(Forecaster);
