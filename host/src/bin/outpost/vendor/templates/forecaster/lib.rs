//! {{id}}: an Outpost demand forecaster.
//!
//! Seasonal naive when the history holds two full seasons (each period is
//! forecast as the same period one season earlier), the mean otherwise, with
//! normal-approximation intervals cut at 0. Replace `fit` with your method:
//! `plugins/forecaster` in the Outpost repository chooses between Holt-Winters
//! and Croston/SBA. Pure arithmetic on what the caller sends: no grants.

use outpost_sdk::forecaster::{
    DemandForecast, ForecastPoint, ForecastRequest, Forecasting, HealthReport, HealthStatus,
    Interval, Lifecycle, PluginInfo,
};
use outpost_sdk::types::PluginError;

/// The longest horizon forecast, in periods.
const MAX_HORIZON: u32 = 366;

struct Plugin;

fn invalid<T>(why: impl Into<String>) -> Result<T, PluginError> {
    Err(PluginError::invalid_input(why))
}

/// A period's length in seconds, and a season's length in periods.
fn period(interval: Interval) -> (i64, usize) {
    match interval {
        Interval::Hour => (3_600, 24),
        Interval::Day => (86_400, 7),
        Interval::Week => (604_800, 52),
    }
}

/// The standard normal quantile for a two-sided `coverage`
/// (Abramowitz & Stegun 26.2.23: good to 4.5e-4, plenty for demand).
fn z_score(coverage: f64) -> f64 {
    let t = (-2.0 * ((1.0 - coverage) / 2.0).ln()).sqrt();
    let numerator = 2.515517 + 0.802853 * t + 0.010328 * t * t;
    t - numerator / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t)
}

/// (method, expected value and standard error for `h` periods ahead).
// Replace: your method. `values` are checked: finite, 0 or more, at least 2.
fn fit(values: &[f64], season: usize) -> (String, impl Fn(usize) -> (f64, f64) + '_) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let seasonal = n >= 2 * season;
    // One-step errors of the method on the history, for the interval widths.
    let residuals: Vec<f64> = if seasonal {
        (season..n)
            .map(|t| values[t] - values[t - season])
            .collect()
    } else {
        values.iter().map(|v| v - mean).collect()
    };
    let sigma = (residuals.iter().map(|r| r * r).sum::<f64>() / residuals.len() as f64).sqrt();
    let point = move |h: usize| {
        if seasonal {
            // The same period one season back; the error grows with each season ahead.
            let seasons_ahead = ((h - 1) / season + 1) as f64;
            (
                values[n - season + (h - 1) % season],
                sigma * seasons_ahead.sqrt(),
            )
        } else {
            (mean, sigma * (1.0 + 1.0 / n as f64).sqrt())
        }
    };
    let method = if seasonal {
        format!("seasonal naive ({season})")
    } else {
        "mean".into()
    };
    (method, point)
}

impl Lifecycle for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            // The node checks it against the package: bump the version in Cargo.toml only.
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Seasonal-naive and mean demand forecasts".into(),
            support: "mailto:support@{{vendor}}.example".into(), // Replace: your address.
        }
    }

    fn health() -> HealthReport {
        let detail = "no state, no configuration".to_string();
        HealthReport {
            status: HealthStatus::Ok,
            detail,
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        // Runs once before this version serves (`None` on a fresh install). A
        // forecaster that caches fitted parameters in kv would convert them here.
        Ok(())
    }
}

impl Forecasting for Plugin {
    fn forecast(request: ForecastRequest) -> Result<DemandForecast, PluginError> {
        let history = &request.history;
        let observations = &history.observations;
        if history.item.trim().is_empty() {
            return invalid("request.history.item: must not be empty");
        }
        if observations.len() < 2 {
            return invalid("request.history.observations: at least 2");
        }
        if request.horizon == 0 || request.horizon > MAX_HORIZON {
            return invalid(format!("request.horizon: 1 to {MAX_HORIZON}"));
        }
        if !(request.coverage > 0.0 && request.coverage < 1.0) {
            return invalid("request.coverage: between 0 and 1, such as 0.8");
        }
        let values: Vec<f64> = observations.iter().map(|o| o.value).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return invalid(format!(
                "request.history.observations[{i}].value: 0 or more"
            ));
        }
        // Oldest first, one period apart: a period without sales is a 0, not a gap.
        let (step, season) = period(history.interval);
        let gap = observations
            .windows(2)
            .position(|w| w[1].at.checked_sub(w[0].at) != Some(step));
        if let Some(i) = gap {
            let i = i + 1;
            return invalid(format!(
                "request.history.observations[{i}].at: {step} s after the one before"
            ));
        }

        let (method, point) = fit(&values, season);
        let (z, last) = (z_score(request.coverage), observations[values.len() - 1].at);
        let points = (1..=request.horizon as usize)
            .map(|h| {
                let (expected, error) = point(h);
                let at = last.saturating_add(step * h as i64);
                let (lower, upper) = ((expected - z * error).max(0.0), expected + z * error);
                ForecastPoint {
                    at,
                    expected,
                    lower,
                    upper,
                }
            })
            .collect();
        let (item, horizon) = (history.item.clone(), request.horizon);
        outpost_sdk::info!("forecast {item}, {horizon} periods ahead: {method}");
        Ok(DemandForecast {
            item,
            points,
            method,
        })
    }
}

outpost_sdk::export_forecaster!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sdk::forecaster::{Observation, Series};
    use outpost_sdk::testing::TestHost;

    const START: i64 = 1_759_968_000;

    fn request(values: &[f64], horizon: u32, coverage: f64) -> ForecastRequest {
        let at = |i: usize| START + 86_400 * i as i64;
        let observations = values.iter().enumerate();
        let observations = observations.map(|(i, &value)| Observation { at: at(i), value });
        let (item, unit) = ("sourdough-loaf".into(), "loaves".into());
        let history = Series {
            item,
            unit,
            interval: Interval::Day,
            observations: observations.collect(),
        };
        ForecastRequest {
            history,
            horizon,
            coverage,
        }
    }

    #[test]
    fn repeats_last_week_once_there_are_two() {
        let host = TestHost::new().install();
        let week = [37.0, 37.0, 43.0, 41.0, 58.0, 80.0, 59.0];
        let forecast = Plugin::forecast(request(&[week, week].concat(), 8, 0.8)).expect("forecast");
        assert_eq!(forecast.method, "seasonal naive (7)");
        let expected: Vec<f64> = forecast.points.iter().map(|p| p.expected).collect();
        assert_eq!(expected, [37.0, 37.0, 43.0, 41.0, 58.0, 80.0, 59.0, 37.0]);
        assert_eq!(forecast.points[0].at, START + 86_400 * 14);
        let logs = host.logs();
        assert!(logs.iter().any(|l| l.message.contains("sourdough-loaf")));
    }

    #[test]
    fn falls_back_to_the_mean_with_intervals_cut_at_zero() {
        let _host = TestHost::new().install();
        let forecast = Plugin::forecast(request(&[0.0, 4.0, 0.0, 2.0], 2, 0.95)).expect("forecast");
        assert_eq!(forecast.method, "mean");
        for point in &forecast.points {
            assert_eq!((point.expected, point.lower), (1.5, 0.0));
            assert!(point.upper > 3.0, "{}", point.upper);
        }
    }

    #[test]
    fn refuses_gaps_and_bad_coverage() {
        let _host = TestHost::new().install();
        let mut gappy = request(&[1.0, 2.0, 3.0], 1, 0.8);
        gappy.history.observations[2].at += 86_400;
        let error = Plugin::forecast(gappy).unwrap_err();
        assert!(matches!(&error, PluginError::InvalidInput(why) if why.contains("[2].at")));
        let error = Plugin::forecast(request(&[1.0, 2.0], 1, 1.0)).unwrap_err();
        assert!(matches!(&error, PluginError::InvalidInput(why) if why.contains("coverage")));
    }
}
