//! Choosing a method by how it would have done: rolling-origin evaluation.
//!
//! The last part of the history (up to eight seasons, at most a third of it)
//! is held out. Each method's parameters are fitted on what comes before;
//! then, walking through the held-out part, each method forecasts the next
//! periods from every point (up to two seasons ahead, or the horizon asked
//! for if shorter) and its absolute errors are added up. The method with the
//! smallest mean error wins. Errors are reported as MASE: divided by the
//! in-sample error of the seasonal naive forecast on the fitting part, so
//! below 1 beats "the same as one season ago".
//!
//! Parameters are fitted once, not at every origin: a node forecasts in a
//! few milliseconds, and the fitting part alone never looks ahead.

use crate::methods::{Fitted, Method};

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub fitted: Fitted,
    pub mase: f64,
}

/// The held-out periods for a history of `n` with season `m`.
pub fn held_out(n: usize, m: usize) -> usize {
    let m = m.max(1);
    if n >= 3 * m {
        (8 * m).min(n / 3).max(1)
    } else if n > m + 1 {
        // Very short histories: every origin after one season, so a
        // seasonal naive forecast can be tried at all.
        n - m
    } else {
        n / 2
    }
}

/// The in-sample mean absolute error of the naive forecast one season back
/// (one period back without seasons); the MASE scale. Never 0, so a flat
/// history still gives finite scores.
pub fn scale(y: &[f64], m: usize) -> f64 {
    let lag = if m >= 2 && y.len() > m { m } else { 1 };
    let errors: Vec<f64> = y.windows(lag + 1).map(|w| (w[lag] - w[0]).abs()).collect();
    let mean = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    if mean > 0.0 {
        mean
    } else {
        let level = y.iter().sum::<f64>() / y.len().max(1) as f64;
        (level.abs() * 0.01).max(1e-6)
    }
}

/// Every method that fits, scored, best first. Empty when the history is
/// too short to hold anything out. `scored[i]` is false for periods whose
/// value was filled in (a holiday, an event day): forecasts are checked only
/// against what sold.
pub fn compare(y: &[f64], scored: &[bool], m: usize, horizon: usize) -> Vec<Score> {
    let n = y.len();
    let hold = held_out(n, m);
    let train = n - hold;
    if hold == 0 || train < 2 {
        return Vec::new();
    }
    let reach = horizon.clamp(1, 2 * m.max(1));
    let scale = scale(&y[..train], m);
    let mut scores: Vec<Score> = Method::ALL
        .iter()
        .filter_map(|&method| Fitted::fit(method, &y[..train], m))
        .filter_map(|fitted| {
            let mae = held_out_error((y, scored), m, train, reach, &fitted)?;
            Some(Score {
                mase: mae / scale,
                fitted,
            })
        })
        .collect();
    // Stable: ties keep `Method::ALL`'s order.
    scores.sort_by(|a, b| a.mase.total_cmp(&b.mase));
    scores
}

/// The mean absolute error of `fitted`'s forecasts from every origin in
/// `train..n`, up to `reach` periods ahead.
fn held_out_error(
    (y, scored): (&[f64], &[bool]),
    m: usize,
    train: usize,
    reach: usize,
    fitted: &Fitted,
) -> Option<f64> {
    // Start values from the fitting part only: nothing held out leaks in.
    let mut runner = fitted.runner(&y[..train], m);
    for &value in &y[..train] {
        runner.observe(value);
    }
    let (mut total, mut count) = (0.0, 0usize);
    for origin in train..y.len() {
        for h in 1..=reach.min(y.len() - origin) {
            let forecast = runner.forecast(h)?.max(0.0);
            if scored.get(origin + h - 1) == Some(&true) {
                total += (y[origin + h - 1] - forecast).abs();
                count += 1;
            }
        }
        runner.observe(y[origin]);
    }
    (count > 0).then(|| total / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::Method;

    #[test]
    fn the_method_follows_the_data() {
        let weekly: Vec<f64> = (0..70)
            .map(|t| [40.0, 38.0, 41.0, 45.0, 60.0, 80.0, 62.0][t % 7] + (t * 7 % 5) as f64)
            .collect();
        let all = vec![true; 70];
        let best = compare(&weekly, &all, 7, 14)[0].fitted.method();
        assert!(
            matches!(best, Method::HoltWinters | Method::SeasonalNaive),
            "{best:?}"
        );
        let sparse: Vec<f64> = (0..70)
            .map(|t| if t % 9 == 4 { 3.0 } else { 0.0 })
            .collect();
        let best = compare(&sparse, &all, 7, 14)[0].fitted.method();
        assert!(
            !matches!(best, Method::HoltWinters | Method::SeasonalNaive),
            "{best:?}"
        );
    }

    #[test]
    fn short_histories_still_try_the_weekly_pattern() {
        let ten_days = [10.0, 12.0, 11.0, 14.0, 30.0, 45.0, 20.0, 11.0, 12.0, 12.0];
        let scores = compare(&ten_days, &[true; 10], 7, 7);
        assert!(
            scores
                .iter()
                .any(|s| s.fitted.method() == Method::SeasonalNaive),
            "{scores:?}"
        );
        assert!(compare(&[1.0, 2.0], &[true; 2], 7, 7).is_empty());
    }
}
