//! Holt-Winters with additive trend and additive seasonality.
//!
//! The recursions are the "smoothing" form that statsmodels'
//! `ExponentialSmoothing(trend="add", seasonal="add")` uses, so the two can be
//! compared number for number (see `tests/reference/`):
//!
//! ```text
//! level    l[t] = α (y[t] − s[t−m]) + (1 − α)(l[t−1] + b[t−1])
//! trend    b[t] = β (l[t] − l[t−1]) + (1 − β) b[t−1]
//! season   s[t] = γ (y[t] − l[t−1] − b[t−1]) + (1 − γ) s[t−m]
//! forecast ŷ[n+h] = l[n] + h b[n] + s[n + h − m(k+1)],  k = ⌊(h−1)/m⌋
//! ```
//!
//! Start values are statsmodels' "simple" initialisation: the level is the
//! mean of the first season, the trend the mean step from the first season
//! to the second divided by m, each seasonal term the first season's value
//! less that level. α, β, γ are chosen by grid search on the one-step-ahead
//! sum of squared errors (the grid is [`ALPHAS`], [`BETAS`], [`GAMMAS`] with
//! γ ≤ 1 − α; ties keep the first in that order).

/// Smoothing parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
}

/// A fitted model: the final states and what fitting it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub params: Params,
    pub season: usize,
    pub level: f64,
    pub trend: f64,
    /// The last `season` seasonal terms, oldest first.
    pub seasonals: Vec<f64>,
    /// Sum of squared one-step-ahead errors over the history.
    pub sse: f64,
    pub observations: usize,
}

pub const ALPHAS: [f64; 19] = grid();
pub const BETAS: [f64; 6] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2];
pub const GAMMAS: [f64; 19] = grid();

/// 0.05, 0.10, ... 0.95.
const fn grid() -> [f64; 19] {
    let mut values = [0.0; 19];
    let mut i = 0;
    while i < 19 {
        values[i] = (i as f64 + 1.0) * 0.05;
        i += 1;
    }
    values
}

/// Start values: (level, trend, seasonals). Needs two full seasons.
pub fn initial_states(y: &[f64], m: usize) -> (f64, f64, Vec<f64>) {
    let first = &y[..m];
    let second = &y[m..2 * m];
    let level = first.iter().sum::<f64>() / m as f64;
    let trend = second.iter().zip(first).map(|(b, a)| b - a).sum::<f64>() / m as f64 / m as f64;
    let seasonals = first.iter().map(|v| v - level).collect();
    (level, trend, seasonals)
}

/// Start values from up to four seasons instead of two: the trend is the
/// step from the first season's mean to the last's, the seasonal terms the
/// average of each season's own deviations. Two seasons of daily sales carry
/// a week-to-week wobble that a small β then keeps as a trend for months;
/// four average most of it out. Needs two full seasons.
pub fn settled_states(y: &[f64], m: usize) -> (f64, f64, Vec<f64>) {
    let seasons = (y.len() / m).clamp(2, 4);
    let means: Vec<f64> = (0..seasons)
        .map(|j| y[j * m..(j + 1) * m].iter().sum::<f64>() / m as f64)
        .collect();
    let level = means[0];
    let trend = (means[seasons - 1] - means[0]) / ((seasons - 1) * m) as f64;
    let seasonals = (0..m)
        .map(|slot| {
            (0..seasons)
                .map(|j| y[j * m + slot] - means[j])
                .sum::<f64>()
                / seasons as f64
        })
        .collect();
    (level, trend, seasonals)
}

/// Runs the recursions over `y` with fixed parameters.
pub fn run(y: &[f64], m: usize, params: Params) -> Fit {
    run_from(y, m, params, initial_states(y, m))
}

/// [`run`] from the given start values.
pub fn run_from(y: &[f64], m: usize, params: Params, start: (f64, f64, Vec<f64>)) -> Fit {
    let (mut level, mut trend, mut seasonals) = start;
    let Params { alpha, beta, gamma } = params;
    let mut sse = 0.0;
    for (t, &value) in y.iter().enumerate() {
        let slot = t % m;
        let season = seasonals[slot];
        let predicted = level + trend + season;
        let error = value - predicted;
        sse += error * error;
        let (previous_level, previous_trend) = (level, trend);
        level = alpha * (value - season) + (1.0 - alpha) * (level + trend);
        trend = beta * (level - previous_level) + (1.0 - beta) * trend;
        seasonals[slot] =
            gamma * (value - previous_level - previous_trend) + (1.0 - gamma) * season;
    }
    // `seasonals[slot]` holds the term for slot `t % m`; rotate so the
    // oldest (the one the next observation uses) comes first.
    let next = y.len() % m;
    seasonals.rotate_left(next);
    Fit {
        params,
        season: m,
        level,
        trend,
        seasonals,
        sse,
        observations: y.len(),
    }
}

/// How many γ values [`sse_lanes`] scores in one pass over the history.
const LANES: usize = 4;

/// The one-step-ahead SSE over `y` of α, β and each of `gammas`, from the
/// start values `(level, trend, start_seasonals)`.
///
/// Each lane is the arithmetic of [`run`] in the same order, so the results
/// agree exactly; lanes only interleave. One parameter set is a chain of
/// dependent multiply-adds, so the processor mostly waits on it; four
/// independent chains in one loop keep it busy, natively and in
/// WebAssembly. `seasonals` is reused so the search allocates nothing per
/// candidate, and the seasonal slot is a wrapping counter rather than a
/// division per step.
fn sse_lanes(
    y: &[f64],
    (level, trend, start_seasonals): (f64, f64, &[f64]),
    (alpha, beta): (f64, f64),
    gammas: [f64; LANES],
    seasonals: &mut Vec<[f64; LANES]>,
) -> [f64; LANES] {
    seasonals.clear();
    seasonals.extend(start_seasonals.iter().map(|&s| [s; LANES]));
    let mut level = [level; LANES];
    let mut trend = [trend; LANES];
    let mut sse = [0.0; LANES];
    let m = seasonals.len();
    let mut slot = 0;
    for &value in y {
        let terms = &mut seasonals[slot];
        for k in 0..LANES {
            let season = terms[k];
            let error = value - (level[k] + trend[k] + season);
            sse[k] += error * error;
            let (previous_level, previous_trend) = (level[k], trend[k]);
            level[k] = alpha * (value - season) + (1.0 - alpha) * (previous_level + previous_trend);
            trend[k] = beta * (level[k] - previous_level) + (1.0 - beta) * previous_trend;
            terms[k] =
                gammas[k] * (value - previous_level - previous_trend) + (1.0 - gammas[k]) * season;
        }
        slot += 1;
        if slot == m {
            slot = 0;
        }
    }
    sse
}

/// The best parameters on the grid for `y`, from statsmodels' "simple"
/// start values (what the reference tests compare).
pub fn fit(y: &[f64], m: usize) -> Fit {
    fit_from(y, m, initial_states(y, m))
}

/// [`fit`] from the given start values.
pub fn fit_from(y: &[f64], m: usize, states: (f64, f64, Vec<f64>)) -> Fit {
    let (level, trend, start) = states.clone();
    let mut scratch = Vec::with_capacity(m);
    let mut best: Option<(Params, f64)> = None;
    for &alpha in &ALPHAS {
        // On the stack: in the sandbox an allocation per (α, β) was a
        // visible share of a short history's fit.
        let mut allowed = [0.0; GAMMAS.len()];
        let mut count = 0;
        for &gamma in GAMMAS.iter().filter(|&&g| g <= 1.0 - alpha + 1e-9) {
            allowed[count] = gamma;
            count += 1;
        }
        let gammas = &allowed[..count];
        for &beta in &BETAS {
            for chunk in gammas.chunks(LANES) {
                // A short last chunk repeats its last γ; the extra lanes are
                // not looked at.
                let mut lanes = [chunk[chunk.len() - 1]; LANES];
                lanes[..chunk.len()].copy_from_slice(chunk);
                let scores = sse_lanes(
                    y,
                    (level, trend, &start),
                    (alpha, beta),
                    lanes,
                    &mut scratch,
                );
                for (&gamma, &sse) in chunk.iter().zip(&scores) {
                    if best.is_none_or(|(_, best_sse)| sse < best_sse) {
                        best = Some((Params { alpha, beta, gamma }, sse));
                    }
                }
            }
        }
    }
    let params = best.map_or(
        Params {
            alpha: 0.5,
            beta: 0.0,
            gamma: 0.1,
        },
        |(params, _)| params,
    );
    run_from(y, m, params, states)
}

impl Fit {
    /// The point forecast `h` steps ahead, h ≥ 1.
    pub fn point(&self, h: usize) -> f64 {
        let m = self.season;
        self.level + h as f64 * self.trend + self.seasonals[(h - 1) % m]
    }

    /// The forecast error variance `h` steps ahead, for ETS(A,A,A) (Hyndman
    /// et al., *Forecasting with Exponential Smoothing*, 2008, table 6.1),
    /// with the error-correction parameters α, β·α and γ that this
    /// smoothing form is equivalent to. σ² is the mean squared one-step error.
    pub fn variance(&self, h: usize) -> f64 {
        let sigma2 = self.sse / self.observations.max(1) as f64;
        variance(self.params, self.season, sigma2, h)
    }
}

/// [`Fit::variance`] from the parameters and a one-step σ² measured
/// elsewhere (the forecaster's runner measures it on its way through the
/// history, so the fit need not be run again).
pub fn variance(params: Params, season: usize, sigma2: f64, h: usize) -> f64 {
    let Params { alpha, beta, gamma } = params;
    let beta = alpha * beta;
    let h = h as f64;
    let m = season as f64;
    let k = ((h - 1.0) / m).floor();
    sigma2
        * (1.0
            + (h - 1.0)
                * (alpha * alpha + alpha * beta * h + beta * beta * h * (2.0 * h - 1.0) / 6.0)
            + gamma * k * (2.0 * alpha + gamma + beta * m * (k + 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pure_seasonal_pattern_is_forecast_exactly() {
        let week = [10.0, 12.0, 14.0, 13.0, 20.0, 30.0, 25.0];
        let y: Vec<f64> = week.iter().cycle().take(42).copied().collect();
        let fit = fit(&y, 7);
        for h in 1..=14 {
            let expected = week[(42 + h - 1) % 7];
            assert!(
                (fit.point(h) - expected).abs() < 1e-6,
                "h={h}: {}",
                fit.point(h)
            );
        }
        assert!(fit.sse < 1e-9);
    }

    #[test]
    fn the_search_scores_exactly_as_a_full_run() {
        let y: Vec<f64> = (0..45)
            .map(|t| 40.0 + (t % 7) as f64 * 3.0 + ((t * 37) % 11) as f64)
            .collect();
        let (level, trend, start) = initial_states(&y, 7);
        let mut scratch = Vec::new();
        let gammas = [0.05, 0.3, 0.6, 0.95];
        for (alpha, beta) in [(0.05, 0.0), (0.5, 0.2)] {
            let scores = sse_lanes(
                &y,
                (level, trend, &start),
                (alpha, beta),
                gammas,
                &mut scratch,
            );
            for (gamma, sse) in gammas.into_iter().zip(scores) {
                assert_eq!(sse, run(&y, 7, Params { alpha, beta, gamma }).sse);
            }
        }
    }

    #[test]
    fn the_trend_carries_on() {
        let y: Vec<f64> = (0..28).map(|t| 5.0 + 2.0 * t as f64).collect();
        let fit = fit(&y, 7);
        // A week on, the forecast is a week's growth higher (the seasonal
        // terms repeat), whatever the start values put into the seasons.
        assert!(
            (fit.point(8) - fit.point(1) - 14.0).abs() < 0.5,
            "{}",
            fit.trend
        );
        assert!(fit.point(1) > y[27]);
    }
}
