//! Outpost's reference forecaster: daily (or hourly, weekly) demand
//! forecasts with prediction intervals, computed on the node with no network.
//!
//! The arithmetic lives in [`model`] and the modules it uses, plain Rust
//! with no WIT types, so it can be tested and benchmarked natively; this
//! file only checks the request and translates to and from the
//! `outpost:plugins/forecasting@0.2.0` records.

pub mod backtest;
pub mod calendar;
pub mod cleaning;
pub mod croston;
pub mod holt_winters;
pub mod methods;
pub mod model;
pub mod normal;

use calendar::{Calendar, Interval as Period};
use outpost_sdk::forecaster::{
    Candidate, DemandForecast, ForecastPoint, ForecastRequest, Forecasting, HealthReport,
    HealthStatus, Interval, Lifecycle, OpeningCalendar, PluginInfo, Weekday,
};
use outpost_sdk::types::PluginError;

struct Forecaster;

impl Lifecycle for Forecaster {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Demand forecasts for a shop's own rhythm: opening days, events, and \
                          the method that did best on its history"
                .into(),
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

fn calendar(given: &OpeningCalendar) -> Calendar {
    let mut calendar = Calendar {
        utc_offset_minutes: given.utc_offset_minutes,
        ..Calendar::default()
    };
    if !given.open_weekdays.is_empty() {
        calendar.open_weekdays = [false; 7];
        for day in &given.open_weekdays {
            let index = match day {
                Weekday::Monday => 0,
                Weekday::Tuesday => 1,
                Weekday::Wednesday => 2,
                Weekday::Thursday => 3,
                Weekday::Friday => 4,
                Weekday::Saturday => 5,
                Weekday::Sunday => 6,
            };
            calendar.open_weekdays[index] = true;
        }
    }
    calendar.closed_dates = given
        .closed_dates
        .iter()
        .map(|at| calendar.local_day(*at))
        .collect();
    calendar.open_dates = given
        .open_dates
        .iter()
        .map(|at| calendar.local_day(*at))
        .collect();
    calendar
}

impl Forecasting for Forecaster {
    fn forecast(request: ForecastRequest) -> Result<DemandForecast, PluginError> {
        let history = &request.history;
        if history.item.trim().is_empty() {
            return Err(PluginError::invalid_input(
                "history.item: must not be empty",
            ));
        }
        if let Some(given) = &request.calendar {
            if !(-18 * 60..=18 * 60).contains(&given.utc_offset_minutes) {
                return Err(PluginError::invalid_input(
                    "calendar.utc-offset-minutes: must be within ±1080 (18 hours)",
                ));
            }
            for (field, dates) in [
                ("closed-dates", &given.closed_dates),
                ("open-dates", &given.open_dates),
            ] {
                if let Some(index) = dates
                    .iter()
                    .position(|at| !(-model::MAX_TIMESTAMP..=model::MAX_TIMESTAMP).contains(at))
                {
                    return Err(PluginError::invalid_input(format!(
                        "calendar.{field}[{index}]: must be a time in the years 0 to 9999"
                    )));
                }
            }
        }
        let native = model::Request {
            observations: history
                .observations
                .iter()
                .map(|o| (o.at, o.value))
                .collect(),
            interval: match history.interval {
                Interval::Hour => Period::Hour,
                Interval::Day => Period::Day,
                Interval::Week => Period::Week,
            },
            horizon: usize::try_from(request.horizon).unwrap_or(usize::MAX),
            coverage: request.coverage,
            calendar: request.calendar.as_ref().map(calendar),
            events: request
                .events
                .iter()
                .map(|e| (e.name.clone(), e.at))
                .collect(),
        };
        let result = model::forecast(&native)
            .map_err(|model::ForecastError::Invalid(why)| PluginError::invalid_input(why))?;
        outpost_sdk::debug!(
            "{}: {} observations, {}",
            history.item,
            history.observations.len(),
            result.method
        );
        Ok(DemandForecast {
            item: history.item.clone(),
            points: result
                .points
                .into_iter()
                .map(|point| ForecastPoint {
                    at: point.at,
                    expected: point.expected,
                    lower: point.lower,
                    upper: point.upper,
                    open: point.open,
                    events: point.events,
                })
                .collect(),
            method: result.method,
            candidates: result
                .candidates
                .into_iter()
                .map(|(method, mase)| Candidate { method, mase })
                .collect(),
            warnings: result.warnings,
        })
    }
}

outpost_sdk::export_forecaster!(Forecaster);
