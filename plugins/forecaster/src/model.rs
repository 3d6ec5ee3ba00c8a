//! Choosing a method from the data, and the forecast it makes.
//!
//! - **Intermittent** demand — average interval between non-zero periods of
//!   1.32 or more (Syntetos, Boylan and Croston's cut-off) — gets
//!   Croston/SBA.
//! - **Regular** demand with at least two full seasons gets Holt-Winters
//!   (additive; the season is 7 for daily data, 24 for hourly, 52 for weekly).
//! - Anything shorter gets simple exponential smoothing, α by grid search.
//!
//! Intervals are normal approximations: ETS(A,A,A)'s analytic variance for
//! Holt-Winters, ETS(A,N,N)'s for simple smoothing, and the in-sample one-step
//! error for Croston. Demand cannot be negative, so every bound is cut at 0.

use crate::{croston, holt_winters, normal};

/// The cut-off on the average inter-demand interval above which demand is
/// treated as intermittent.
pub const INTERMITTENT_ADI: f64 = 1.32;
/// The longest horizon served.
pub const MAX_HORIZON: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub points: Vec<Point>,
    /// For operators: "holt-winters additive (season 7; α=0.25 β=0.01 γ=0.1)".
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForecastError {
    /// The named input breaks the named rule.
    Invalid(String),
}

/// Forecasts `horizon` periods after `history` with intervals that should
/// hold the outcome `coverage` of the time. `season` is the seasonal period
/// of the data's interval.
pub fn forecast(
    history: &[f64],
    season: usize,
    horizon: usize,
    coverage: f64,
) -> Result<Forecast, ForecastError> {
    if history.len() < 2 {
        return Err(ForecastError::Invalid(
            "history.observations: needs at least 2 observations".into(),
        ));
    }
    if let Some(index) = history.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(ForecastError::Invalid(format!(
            "history.observations[{index}].value: demand must be a finite number ≥ 0"
        )));
    }
    if horizon == 0 || horizon > MAX_HORIZON {
        return Err(ForecastError::Invalid(format!(
            "horizon: must be 1 to {MAX_HORIZON}"
        )));
    }
    if !(coverage > 0.0 && coverage < 1.0) {
        return Err(ForecastError::Invalid(
            "coverage: must be between 0 and 1, such as 0.8".into(),
        ));
    }
    let z = normal::quantile(0.5 + coverage / 2.0);
    let band = |expected: f64, variance: f64| {
        let spread = z * variance.max(0.0).sqrt();
        let expected = expected.max(0.0);
        Point {
            expected,
            lower: (expected - spread).max(0.0),
            upper: (expected + spread).max(0.0),
        }
    };

    let demands = history.iter().filter(|v| **v > 0.0).count();
    let adi = if demands == 0 {
        f64::INFINITY
    } else {
        history.len() as f64 / demands as f64
    };
    if adi >= INTERMITTENT_ADI {
        let Some(fit) = croston::fit(history, croston::ALPHA) else {
            let zero = Point {
                expected: 0.0,
                lower: 0.0,
                upper: 0.0,
            };
            return Ok(Forecast {
                points: vec![zero; horizon],
                method: "no demand in the history".into(),
            });
        };
        let rate = fit.rate();
        return Ok(Forecast {
            points: (0..horizon).map(|_| band(rate, fit.mse)).collect(),
            method: format!(
                "croston/sba (α={}; {} demands, mean interval {:.2})",
                fit.alpha, fit.demands, fit.interval
            ),
        });
    }
    if season >= 2 && history.len() >= 2 * season {
        let fit = holt_winters::fit(history, season);
        let p = fit.params;
        return Ok(Forecast {
            points: (1..=horizon)
                .map(|h| band(fit.point(h), fit.variance(h)))
                .collect(),
            method: format!(
                "holt-winters additive (season {season}; α={:.2} β={:.2} γ={:.2})",
                p.alpha, p.beta, p.gamma
            ),
        });
    }
    let (alpha, level, sigma2) = simple_smoothing(history);
    Ok(Forecast {
        points: (1..=horizon)
            .map(|h| band(level, sigma2 * (1.0 + (h as f64 - 1.0) * alpha * alpha)))
            .collect(),
        method: format!(
            "simple exponential smoothing (α={alpha:.2}; history too short for seasons)"
        ),
    })
}

/// (α, final level, mean squared one-step error) of the best α on the grid,
/// starting from the first observation.
fn simple_smoothing(y: &[f64]) -> (f64, f64, f64) {
    let mut best = (0.5, y[0], f64::INFINITY);
    for &alpha in &holt_winters::ALPHAS {
        let mut level = y[0];
        let mut sse = 0.0;
        for &value in &y[1..] {
            let error = value - level;
            sse += error * error;
            level += alpha * error;
        }
        let mse = sse / (y.len() - 1) as f64;
        if mse < best.2 {
            best = (alpha, level, mse);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_follows_the_data() {
        let regular: Vec<f64> = (0..28).map(|t| 20.0 + (t % 7) as f64).collect();
        let sparse: Vec<f64> = (0..28)
            .map(|t| if t % 4 == 0 { 3.0 } else { 0.0 })
            .collect();
        let short = [4.0, 5.0, 6.0];
        let method = |y: &[f64]| forecast(y, 7, 3, 0.8).expect("forecast").method;
        assert!(method(&regular).starts_with("holt-winters"));
        assert!(method(&sparse).starts_with("croston/sba"));
        assert!(method(&short).starts_with("simple exponential smoothing"));
    }

    #[test]
    fn intervals_widen_and_stay_non_negative() {
        let noisy: Vec<f64> = (0..56)
            .map(|t| 30.0 + 10.0 * ((t % 7) as f64) + ((t * 37 % 11) as f64 - 5.0))
            .collect();
        let result = forecast(&noisy, 7, 14, 0.9).expect("forecast");
        let first = result.points[0];
        let last = result.points[13];
        assert!(first.lower <= first.expected && first.expected <= first.upper);
        assert!(last.upper - last.lower > first.upper - first.lower);
        assert!(result.points.iter().all(|p| p.lower >= 0.0));
    }

    #[test]
    fn bad_input_names_the_field() {
        let error = |y: &[f64], h, c| match forecast(y, 7, h, c) {
            Err(ForecastError::Invalid(why)) => why,
            Ok(_) => String::new(),
        };
        assert!(error(&[1.0], 1, 0.8).starts_with("history.observations"));
        assert!(error(&[1.0, -1.0], 1, 0.8).contains("[1].value"));
        assert!(error(&[1.0, f64::NAN], 1, 0.8).contains("[1].value"));
        assert!(error(&[1.0, 2.0], 0, 0.8).starts_with("horizon"));
        assert!(error(&[1.0, 2.0], 1, 1.0).starts_with("coverage"));
    }
}
