//! Croston's method with the Syntetos-Boylan approximation (SBA), for
//! intermittent demand: many zero days, the odd sale.
//!
//! Two simple exponential smoothings with the same α, one over the sizes of
//! the non-zero demands and one over the intervals between them (the first
//! interval counts from the start of the history), each started at its first
//! value. The forecast per period is `(1 − α/2) · size / interval`, flat over
//! the horizon; the factor is Syntetos and Boylan's (2005) bias correction.
//! This is the definition statsforecast's `CrostonSBA` implements, which the
//! reference values in `tests/reference/` come from.

/// The usual smoothing constant for intermittent demand.
pub const ALPHA: f64 = 0.1;

#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub alpha: f64,
    /// Smoothed demand size.
    pub size: f64,
    /// Smoothed interval between demands, in periods.
    pub interval: f64,
    /// How many non-zero demands the history has.
    pub demands: usize,
    /// Mean squared one-step error from the first demand on.
    pub mse: f64,
}

/// `None` when the history has no demand at all.
pub fn fit(y: &[f64], alpha: f64) -> Option<Fit> {
    let mut size: Option<f64> = None;
    let mut interval = 0.0;
    let mut since = 0.0;
    let mut demands = 0;
    let mut squared = 0.0;
    let mut counted = 0usize;
    for &value in y {
        since += 1.0;
        if let Some(current) = size {
            let predicted = (1.0 - alpha / 2.0) * current / interval;
            squared += (value - predicted).powi(2);
            counted += 1;
        }
        if value > 0.0 {
            demands += 1;
            match size {
                None => {
                    size = Some(value);
                    interval = since;
                }
                Some(current) => {
                    size = Some(current + alpha * (value - current));
                    interval += alpha * (since - interval);
                }
            }
            since = 0.0;
        }
    }
    let size = size?;
    Some(Fit {
        alpha,
        size,
        interval,
        demands,
        mse: if counted == 0 {
            0.0
        } else {
            squared / counted as f64
        },
    })
}

impl Fit {
    /// Demand per period.
    pub fn rate(&self) -> f64 {
        (1.0 - self.alpha / 2.0) * self.size / self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_intermittent_demand() {
        // 4 units every third day: the rate is 4/3 before the correction.
        let y: Vec<f64> = (0..30)
            .map(|t| if t % 3 == 2 { 4.0 } else { 0.0 })
            .collect();
        let fit = fit(&y, ALPHA).expect("has demand");
        assert!((fit.size - 4.0).abs() < 1e-12);
        assert!((fit.interval - 3.0).abs() < 1e-12);
        assert!((fit.rate() - 0.95 * 4.0 / 3.0).abs() < 1e-12);
        assert!(self::fit(&[0.0; 10], ALPHA).is_none());
    }
}
