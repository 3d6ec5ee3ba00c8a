//! {{id}}: an Outpost demand forecaster.
//!
//! Seasonal naive when the history holds two full seasons (each period is
//! forecast as the same period one season earlier), the mean otherwise, with
//! normal-approximation intervals cut at 0. Days the caller's opening
//! calendar closes are forecast as 0. Replace `fit` with your method:
//! `plugins/forecaster` in the Outpost repository picks the best of five by
//! backtest and learns events' effects. Pure arithmetic on what the caller
//! sends: no grants. Built against `outpost:plugins/forecaster@0.2.0`.

use outpost_sdk::forecaster::{
    DemandForecast, ForecastPoint, ForecastRequest, Forecasting, HealthReport, HealthStatus,
    Interval, Lifecycle, OpeningCalendar, PluginInfo, Weekday,
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

/// Whether the calendar closes the day the period starting at `at` falls on
/// (Monday is day 0 of the week; 1970-01-01 was a Thursday).
fn closed(calendar: &OpeningCalendar, at: i64) -> bool {
    let day = (at + i64::from(calendar.utc_offset_minutes) * 60).div_euclid(86_400);
    let starts_at = |date: &i64| {
        (date + i64::from(calendar.utc_offset_minutes) * 60).div_euclid(86_400) == day
    };
    if calendar.closed_dates.iter().any(starts_at) {
        return true;
    }
    if calendar.open_weekdays.is_empty() || calendar.open_dates.iter().any(starts_at) {
        return false;
    }
    let weekday = match (day + 3).rem_euclid(7) {
        0 => Weekday::Monday,
        1 => Weekday::Tuesday,
        2 => Weekday::Wednesday,
        3 => Weekday::Thursday,
        4 => Weekday::Friday,
        5 => Weekday::Saturday,
        _ => Weekday::Sunday,
    };
    !calendar.open_weekdays.contains(&weekday)
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
    // Never a zero-width interval: at least the spread of counts (Poisson).
    let sigma = sigma.max(mean.max(1.0).sqrt());
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
        if let Some(i) = observations.iter().position(|o| !o.value.is_finite() || o.value < 0.0) {
            return invalid(format!(
                "request.history.observations[{i}].value: 0 or more"
            ));
        }
        // Oldest first, one period apart: a period without sales is a 0, not
        // a gap. Closed days (by the calendar) may be left out.
        let (step, mut season) = period(history.interval);
        let calendar = request.calendar.as_ref();
        let is_closed = |at: i64| calendar.is_some_and(|c| closed(c, at));
        let only_closed_between = |from: i64, to: i64| {
            let periods = (to - from) / step;
            (to - from) % step == 0
                && (1..=31).contains(&periods)
                && (1..periods).all(|k| is_closed(from + k * step))
        };
        let gap = observations.windows(2).position(|w| {
            w[1].at.checked_sub(w[0].at) != Some(step) && !only_closed_between(w[0].at, w[1].at)
        });
        if let Some(i) = gap {
            let i = i + 1;
            return invalid(format!(
                "request.history.observations[{i}].at: {step} s after the one before (or \
                 only closed days between)"
            ));
        }
        // The model sees the open days only: a week of five open days has a
        // season of 5, and a closed day is not a day without demand.
        let values: Vec<f64> = observations
            .iter()
            .filter(|o| !is_closed(o.at))
            .map(|o| o.value)
            .collect();
        if values.len() < 2 {
            return invalid("request.history.observations: at least 2 on open days");
        }
        if let Some(c) = calendar.filter(|c| history.interval == Interval::Day) {
            if !c.open_weekdays.is_empty() {
                season = c.open_weekdays.len().clamp(1, 7);
            }
        }

        let (method, point) = fit(&values, season);
        let (z, last) = (z_score(request.coverage), observations[observations.len() - 1].at);
        let mut open_steps = 0;
        let points = (1..=request.horizon as usize)
            .map(|h| {
                let at = last.saturating_add(step * h as i64);
                let open = !is_closed(at);
                let events = request.events.iter().filter(|e| e.at == at);
                let events = events.map(|e| e.name.clone()).collect();
                if !open {
                    let (expected, lower, upper) = (0.0, 0.0, 0.0);
                    return ForecastPoint { at, expected, lower, upper, open, events };
                }
                open_steps += 1;
                let (expected, error) = point(open_steps);
                let (lower, upper) = ((expected - z * error).max(0.0), expected + z * error);
                ForecastPoint { at, expected, lower, upper, open, events }
            })
            .collect();
        // Say what this method does not use, so nobody trusts it blindly.
        let mut warnings = Vec::new();
        if !request.events.is_empty() {
            warnings.push("events are named on their days but do not change the forecast".into());
        }
        let (item, horizon) = (history.item.clone(), request.horizon);
        outpost_sdk::info!("forecast {item}, {horizon} periods ahead: {method}");
        Ok(DemandForecast {
            item,
            points,
            method,
            // Methods tried on the history, best first, with their MASE: this
            // template tries none.
            candidates: Vec::new(),
            warnings,
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
            calendar: None,
            events: Vec::new(),
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
    fn closed_days_forecast_zero() {
        let _host = TestHost::new().install();
        let week = [37.0, 37.0, 43.0, 41.0, 58.0, 80.0, 59.0];
        let mut closed_sundays = request(&[week, week].concat(), 7, 0.8);
        closed_sundays.calendar = Some(OpeningCalendar {
            open_weekdays: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
                Weekday::Saturday,
            ],
            closed_dates: Vec::new(),
            open_dates: Vec::new(),
            utc_offset_minutes: 0,
        });
        let mut without_sundays = closed_sundays.clone();
        let forecast = Plugin::forecast(closed_sundays).expect("forecast");
        // START is a Thursday: the fourth day ahead is a Sunday.
        let sunday = &forecast.points[3];
        assert!(!sunday.open && sunday.upper == 0.0, "{sunday:?}");
        let open = forecast.points.iter().filter(|p| p.open);
        assert!(open.clone().all(|p| p.expected > 0.0 && p.upper > p.lower));
        // The history may leave the closed days out.
        let observations = &mut without_sundays.history.observations;
        observations.retain(|o| (o.at / 86_400 + 3) % 7 != 6);
        let forecast = Plugin::forecast(without_sundays).expect("forecast");
        assert!(!forecast.points[3].open);
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
