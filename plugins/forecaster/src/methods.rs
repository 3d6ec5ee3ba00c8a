//! The candidate methods, each as parameters fitted on a history and a
//! runner that walks a series one period at a time and forecasts from
//! wherever it stands. The backtest uses the runner to make forecasts from
//! many past origins in one pass; the final forecast uses it from the end.

use crate::{croston, holt_winters};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HoltWinters,
    SeasonalNaive,
    SimpleSmoothing,
    Croston,
    Tsb,
}

impl Method {
    /// Every method, in the order ties are broken.
    pub const ALL: [Method; 5] = [
        Method::HoltWinters,
        Method::SeasonalNaive,
        Method::SimpleSmoothing,
        Method::Croston,
        Method::Tsb,
    ];

    /// Whether `n` periods are enough to fit the method with season `m`.
    pub fn fits(self, n: usize, m: usize) -> bool {
        match self {
            Method::HoltWinters => m >= 2 && n >= 2 * m,
            Method::SeasonalNaive => m >= 2 && n >= m,
            Method::SimpleSmoothing => n >= 2,
            Method::Croston | Method::Tsb => n >= 2,
        }
    }
}

/// A method with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Fitted {
    HoltWinters(holt_winters::Params),
    SeasonalNaive,
    SimpleSmoothing { alpha: f64 },
    Croston { alpha: f64 },
    Tsb { alpha: f64, beta: f64 },
}

/// TSB's grids: demand size α, demand probability β.
const TSB_ALPHAS: [f64; 3] = [0.1, 0.2, 0.3];
const TSB_BETAS: [f64; 5] = [0.01, 0.02, 0.05, 0.1, 0.2];

impl Fitted {
    /// Fits `method` on `y` (season `m`); `None` when the data cannot
    /// support it (Croston and TSB need intermittent demand: at least one
    /// period in ten without a sale, and a sale).
    pub fn fit(method: Method, y: &[f64], m: usize) -> Option<Fitted> {
        // Croston and TSB model demand that comes and goes; on a series
        // that sells nearly every period they are only a damped average,
        // and a lucky flat stretch in the backtest would pick them.
        let zeros = y.iter().filter(|v| **v <= 0.0).count();
        Fitted::fit_gated(method, y, m, zeros * 10 >= y.len())
    }

    /// Fits the backtest's winner again on the whole history: the same
    /// method, whatever the intermittency gate says of the longer series.
    pub fn refit(method: Method, y: &[f64], m: usize) -> Option<Fitted> {
        Fitted::fit_gated(method, y, m, true)
    }

    fn fit_gated(method: Method, y: &[f64], m: usize, may_be_intermittent: bool) -> Option<Fitted> {
        if !method.fits(y.len(), m) {
            return None;
        }
        let has_demand = y.iter().any(|v| *v > 0.0);
        let intermittent = has_demand && may_be_intermittent;
        Some(match method {
            Method::HoltWinters => Fitted::HoltWinters(
                holt_winters::fit_from(y, m, holt_winters::settled_states(y, m)).params,
            ),
            Method::SeasonalNaive => Fitted::SeasonalNaive,
            Method::SimpleSmoothing => Fitted::SimpleSmoothing {
                alpha: best_by_mse(&holt_winters::ALPHAS, |&alpha| {
                    one_step_mse(y, &Fitted::SimpleSmoothing { alpha }, m)
                }),
            },
            Method::Croston if intermittent => Fitted::Croston {
                alpha: croston::ALPHA,
            },
            Method::Tsb if intermittent => {
                let pairs: Vec<(f64, f64)> = TSB_ALPHAS
                    .iter()
                    .flat_map(|&a| TSB_BETAS.iter().map(move |&b| (a, b)))
                    .collect();
                let (alpha, beta) = best_by_mse(&pairs, |&(alpha, beta)| {
                    one_step_mse(y, &Fitted::Tsb { alpha, beta }, m)
                });
                Fitted::Tsb { alpha, beta }
            }
            Method::Croston | Method::Tsb => return None,
        })
    }

    pub fn method(&self) -> Method {
        match self {
            Fitted::HoltWinters(_) => Method::HoltWinters,
            Fitted::SeasonalNaive => Method::SeasonalNaive,
            Fitted::SimpleSmoothing { .. } => Method::SimpleSmoothing,
            Fitted::Croston { .. } => Method::Croston,
            Fitted::Tsb { .. } => Method::Tsb,
        }
    }

    /// For operators: "holt-winters additive (season 7; α=0.25 β=0.01 γ=0.10)".
    pub fn describe(&self, m: usize) -> String {
        match self {
            Fitted::HoltWinters(p) => format!(
                "holt-winters additive (season {m}; α={:.2} β={:.2} γ={:.2})",
                p.alpha, p.beta, p.gamma
            ),
            Fitted::SeasonalNaive => format!("seasonal naive ({m})"),
            Fitted::SimpleSmoothing { alpha } => {
                format!("simple exponential smoothing (α={alpha:.2})")
            }
            Fitted::Croston { alpha } => format!("croston/sba (α={alpha})"),
            Fitted::Tsb { alpha, beta } => format!("tsb (α={alpha:.2} β={beta:.2})"),
        }
    }

    /// A runner at the start of `y` (it reads the start values it needs).
    pub fn runner(&self, y: &[f64], m: usize) -> Runner {
        let state = match self {
            Fitted::HoltWinters(params) => {
                let (level, trend, seasonals) = holt_winters::settled_states(y, m);
                State::HoltWinters {
                    params: *params,
                    level,
                    trend,
                    seasonals,
                }
            }
            Fitted::SeasonalNaive => State::SeasonalNaive {
                recent: Vec::with_capacity(m),
            },
            Fitted::SimpleSmoothing { alpha } => State::Smoothing {
                alpha: *alpha,
                level: y.first().copied(),
            },
            Fitted::Croston { alpha } => State::Croston {
                alpha: *alpha,
                size: None,
                interval: 0.0,
                since: 0.0,
            },
            Fitted::Tsb { alpha, beta } => {
                let first = y.iter().position(|v| *v > 0.0).unwrap_or(0);
                let head = &y[..(first + 1).min(y.len())];
                State::Tsb {
                    alpha: *alpha,
                    beta: *beta,
                    probability: 1.0 / head.len().max(1) as f64,
                    size: y.get(first).copied().unwrap_or(0.0),
                }
            }
        };
        Runner {
            state,
            m,
            seen: 0,
            squared: 0.0,
            counted: 0,
        }
    }
}

fn best_by_mse<T: Copy>(choices: &[T], mse: impl Fn(&T) -> f64) -> T {
    let mut best = (choices[0], f64::INFINITY);
    for choice in choices {
        let score = mse(choice);
        if score < best.1 {
            best = (*choice, score);
        }
    }
    best.0
}

fn one_step_mse(y: &[f64], fitted: &Fitted, m: usize) -> f64 {
    let mut runner = fitted.runner(y, m);
    for &value in y {
        runner.observe(value);
    }
    runner.mse()
}

#[derive(Debug, Clone)]
enum State {
    HoltWinters {
        params: holt_winters::Params,
        level: f64,
        trend: f64,
        /// Indexed by period modulo the season.
        seasonals: Vec<f64>,
    },
    SeasonalNaive {
        recent: Vec<f64>,
    },
    Smoothing {
        alpha: f64,
        level: Option<f64>,
    },
    Croston {
        alpha: f64,
        size: Option<f64>,
        interval: f64,
        since: f64,
    },
    Tsb {
        alpha: f64,
        beta: f64,
        probability: f64,
        size: f64,
    },
}

/// Walks a series: `observe` each value in turn, `forecast(h)` from where it
/// stands. Keeps the one-step errors it made on the way, for intervals.
#[derive(Debug, Clone)]
pub struct Runner {
    state: State,
    m: usize,
    seen: usize,
    squared: f64,
    counted: usize,
}

impl Runner {
    /// The forecast `h` ≥ 1 periods past the last observed one; `None`
    /// where the method has nothing to go on yet.
    pub fn forecast(&self, h: usize) -> Option<f64> {
        let m = self.m;
        match &self.state {
            State::HoltWinters {
                level,
                trend,
                seasonals,
                ..
            } => Some(level + h as f64 * trend + seasonals[(self.seen + h - 1) % m]),
            State::SeasonalNaive { recent } => {
                (recent.len() == m).then(|| recent[(self.seen + h - 1) % m])
            }
            State::Smoothing { level, .. } => *level,
            State::Croston {
                alpha,
                size,
                interval,
                ..
            } => size.map(|size| (1.0 - alpha / 2.0) * size / interval),
            State::Tsb {
                probability, size, ..
            } => Some(probability * size),
        }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(predicted) = self.forecast(1) {
            self.squared += (value - predicted).powi(2);
            self.counted += 1;
        }
        let m = self.m;
        let slot = self.seen % m.max(1);
        match &mut self.state {
            State::HoltWinters {
                params,
                level,
                trend,
                seasonals,
            } => {
                let season = seasonals[slot];
                let (previous_level, previous_trend) = (*level, *trend);
                *level = params.alpha * (value - season)
                    + (1.0 - params.alpha) * (previous_level + previous_trend);
                *trend =
                    params.beta * (*level - previous_level) + (1.0 - params.beta) * previous_trend;
                seasonals[slot] = params.gamma * (value - previous_level - previous_trend)
                    + (1.0 - params.gamma) * season;
            }
            State::SeasonalNaive { recent } => {
                if recent.len() < m {
                    recent.push(value);
                } else {
                    recent[slot] = value;
                }
            }
            State::Smoothing { alpha, level } => {
                *level = Some(match level {
                    Some(level) => *level + *alpha * (value - *level),
                    None => value,
                });
            }
            State::Croston {
                alpha,
                size,
                interval,
                since,
            } => {
                *since += 1.0;
                if value > 0.0 {
                    match size {
                        None => {
                            *size = Some(value);
                            *interval = *since;
                        }
                        Some(current) => {
                            *size = Some(*current + *alpha * (value - *current));
                            *interval += *alpha * (*since - *interval);
                        }
                    }
                    *since = 0.0;
                }
            }
            State::Tsb {
                alpha,
                beta,
                probability,
                size,
            } => {
                let occurred = if value > 0.0 { 1.0 } else { 0.0 };
                *probability += *beta * (occurred - *probability);
                if value > 0.0 {
                    *size += *alpha * (value - *size);
                }
            }
        }
        self.seen += 1;
    }

    /// The mean squared one-step error so far (0 before any).
    pub fn mse(&self) -> f64 {
        if self.counted == 0 {
            0.0
        } else {
            self.squared / self.counted as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runner is the same arithmetic as the fitted models it stands for.
    #[test]
    fn runners_agree_with_the_fits() {
        let y: Vec<f64> = (0..56)
            .map(|t| 30.0 + 5.0 * ((t % 7) as f64) + ((t * 37 % 11) as f64))
            .collect();
        let fit = holt_winters::fit_from(&y, 7, holt_winters::settled_states(&y, 7));
        let mut runner = Fitted::HoltWinters(fit.params).runner(&y, 7);
        y.iter().for_each(|v| runner.observe(*v));
        for h in 1..=14 {
            let got = runner.forecast(h).expect("forecast");
            assert!((got - fit.point(h)).abs() < 1e-9, "h={h}: {got}");
        }
        let sparse: Vec<f64> = (0..40)
            .map(|t| if t % 4 == 1 { 3.0 } else { 0.0 })
            .collect();
        let croston = croston::fit(&sparse, croston::ALPHA).expect("demand");
        let mut runner = Fitted::Croston {
            alpha: croston::ALPHA,
        }
        .runner(&sparse, 7);
        sparse.iter().for_each(|v| runner.observe(*v));
        assert!((runner.forecast(3).expect("rate") - croston.rate()).abs() < 1e-12);
        let mut naive = Fitted::SeasonalNaive.runner(&y, 7);
        y.iter().for_each(|v| naive.observe(*v));
        assert_eq!(naive.forecast(1), Some(y[49]));
        assert_eq!(naive.forecast(9), Some(y[50]));
    }

    #[test]
    fn tsb_lets_go_of_demand_that_stopped() {
        let mut y = vec![0.0; 30];
        y[1] = 1.0;
        let y: Vec<f64> = y.into_iter().chain([0.0; 28]).collect();
        let fitted = Fitted::fit(Method::Tsb, &y, 7).expect("a demand");
        let mut runner = fitted.runner(&y, 7);
        y.iter().for_each(|v| runner.observe(*v));
        let croston = croston::fit(&y, croston::ALPHA).expect("demand").rate();
        assert!(runner.forecast(1).expect("rate") < croston / 3.0);
    }
}
