//! A forecast, start to finish, in plain Rust (no WIT types), so it can be
//! tested and benchmarked natively.
//!
//! 1. Lay the history on the period grid and ask the calendar about each
//!    period ([`calendar`]): the open week is what the models see.
//! 2. Clean it ([`cleaning`]): holidays filled in, event days set aside with
//!    their effect measured, outliers pulled in.
//! 3. Choose the method by rolling-origin backtest ([`backtest`]) among
//!    Holt-Winters, seasonal naive, simple exponential smoothing,
//!    Croston/SBA and TSB, and refit the winner on the whole history.
//! 4. Forecast the open periods, apply known events' effects, and give
//!    closed periods zero.
//!
//! Intervals are normal approximations from each method's one-step error
//! (ETS(A,A,A)'s analytic variance for Holt-Winters), with a floor of
//! Poisson spread (variance ≥ the expected value, and ≥ 1/n), so an open
//! period's interval always has width. Demand cannot be negative: bounds are
//! cut at 0.

use crate::backtest;
use crate::calendar::{self, Calendar, Interval, Status};
use crate::cleaning;
use crate::methods::{Fitted, Method, Runner};
use crate::normal;
use std::collections::BTreeMap;

/// The longest horizon served.
pub const MAX_HORIZON: usize = 1000;
/// The most periods a history may span (gaps for closed days included).
pub const MAX_PERIODS: usize = 200_000;
/// Timestamps must fall within years 0 to 9999: beyond, period arithmetic
/// would overflow long before it meant anything.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;
/// The largest value taken: far beyond any shop, small enough that an
/// interval around it still has width in a double.
pub const MAX_VALUE: f64 = 1e12;
/// The coverages served: outside, the normal quantile is 0 or infinite.
pub const COVERAGE: (f64, f64) = (0.01, 0.999);

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// (period start, value), oldest first.
    pub observations: Vec<(i64, f64)>,
    pub interval: Interval,
    pub horizon: usize,
    pub coverage: f64,
    /// `None`: open every period, unless the history shows weekdays that
    /// never sell (then taken as closed, with a warning).
    pub calendar: Option<Calendar>,
    /// (name, period start).
    pub events: Vec<(String, i64)>,
}

impl Request {
    /// Daily values from day 0, open every day: the shape 0.1.0 sent.
    pub fn daily(values: &[f64], horizon: usize, coverage: f64) -> Request {
        Request {
            observations: values
                .iter()
                .enumerate()
                .map(|(day, value)| (day as i64 * calendar::DAY, *value))
                .collect(),
            interval: Interval::Day,
            horizon,
            coverage,
            calendar: None,
            events: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at: i64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub open: bool,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub points: Vec<Point>,
    /// "holt-winters additive (season 7; α=0.25 β=0.01 γ=0.10)".
    pub method: String,
    /// (method, MASE in the backtest), best first.
    pub candidates: Vec<(String, f64)>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForecastError {
    /// The named input breaks the named rule.
    Invalid(String),
}

fn invalid(text: impl Into<String>) -> ForecastError {
    ForecastError::Invalid(text.into())
}

pub fn forecast(request: &Request) -> Result<Forecast, ForecastError> {
    check(request)?;
    let interval = request.interval;
    let step = interval.seconds();
    let mut warnings = Vec::new();
    let mut calendar = request.calendar.clone().unwrap_or_default();
    let first = request.observations[0].0;
    let last = request.observations[request.observations.len() - 1].0;
    let periods = usize::try_from((last - first) / step + 1).unwrap_or(usize::MAX);
    if periods > MAX_PERIODS {
        return Err(invalid(format!(
            "history.observations: spans {periods} {}s; the most served is {MAX_PERIODS}",
            interval.name()
        )));
    }
    let mut grid: Vec<Option<f64>> = vec![None; periods];
    for &(at, value) in &request.observations {
        grid[((at - first) / step) as usize] = Some(value);
    }
    let at = |period: usize| first + period as i64 * step;

    if request.calendar.is_none() && interval == Interval::Day {
        let days: Vec<(i64, Option<f64>)> = (0..periods).map(|p| (at(p), grid[p])).collect();
        let silent = calendar::silent_weekdays(&calendar, &days);
        if !silent.is_empty() {
            for &weekday in &silent {
                calendar.open_weekdays[weekday] = false;
            }
            warnings.push(format!(
                "no sales on any {} in the history: taken as closed (forecast 0); send a \
                 calendar to say otherwise",
                calendar.closed_weekday_names()
            ));
        }
    }

    // The open week, and what happened on each of its periods.
    let mut open_index = Vec::new();
    let mut known = Vec::new();
    let mut sold_while_closed = Vec::new();
    for (period, value) in grid.iter().enumerate() {
        let status = calendar.status(at(period), interval);
        match (status, value) {
            (Status::Open, None) => {
                let before = request
                    .observations
                    .iter()
                    .rposition(|(t, _)| *t < at(period))
                    .unwrap_or(0);
                return Err(invalid(format!(
                    "history.observations: nothing for {} (after [{before}]), an open {}; send 0 \
                     for an open {} without sales, or mark it closed in the calendar",
                    calendar::describe(at(period), &calendar, interval),
                    interval.name(),
                    interval.name()
                )));
            }
            (Status::Open, Some(value)) => {
                open_index.push(period);
                known.push(Some(*value));
            }
            (Status::ClosedDate, value) => {
                open_index.push(period);
                known.push(None);
                if value.is_some_and(|v| v > 0.0) {
                    sold_while_closed.push(period);
                }
            }
            (Status::ClosedWeekday, Some(v)) if *v > 0.0 => sold_while_closed.push(period),
            _ => {}
        }
    }
    if let Some(&period) = sold_while_closed.first() {
        warnings.push(format!(
            "sales on {} {} the calendar says were closed (first {}): left out",
            sold_while_closed.len(),
            if sold_while_closed.len() == 1 {
                interval.name().to_string()
            } else {
                format!("{}s", interval.name())
            },
            calendar::describe(at(period), &calendar, interval)
        ));
    }
    let season = match interval {
        Interval::Day => calendar.open_weekday_count(),
        other => other.season(),
    };
    if known.iter().flatten().count() < 2 {
        return Err(invalid(
            "history.observations: needs at least 2 open periods with a value",
        ));
    }

    // Events: on which open-week period, and which lie ahead.
    // An event belongs to the period that contains it.
    let period_of = |t: i64| (t - first).div_euclid(step);
    let mut past_events = vec![Vec::new(); open_index.len()];
    let mut future_events: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let horizon_end = (periods + request.horizon) as i64;
    for (name, t) in &request.events {
        let period = period_of(*t);
        if period >= horizon_end {
            continue;
        }
        if period >= periods as i64 {
            future_events.entry(period).or_default().push(name.clone());
        } else if let Some(i) = usize::try_from(period)
            .ok()
            .and_then(|p| open_index.binary_search(&p).ok())
        {
            past_events[i].push(name.clone());
        }
    }

    let cleaned = cleaning::clean(&known, &past_events, season);
    // The most recent few by name: they move the forecast most.
    const NAMED_OUTLIERS: usize = 3;
    let older = cleaned.outliers.len().saturating_sub(NAMED_OUTLIERS);
    if older > 0 {
        warnings.push(if older == 1 {
            format!(
                "1 older {} far from usual was counted nearer it",
                interval.name()
            )
        } else {
            format!(
                "{older} older {}s far from usual were counted nearer them",
                interval.name()
            )
        });
    }
    for outlier in &cleaned.outliers[older..] {
        warnings.push(format!(
            "{}: {} is far from the usual {} for that {}; counted as {} (a stock-take, a \
             storm?). Send it as an event if it will happen again",
            calendar::describe(at(open_index[outlier.index]), &calendar, interval),
            round(outlier.value),
            round(outlier.usual),
            interval.name(),
            round(outlier.used),
        ));
    }
    let y = &cleaned.values;
    // Forecasts are checked against what sold, not what was filled in.
    let scored: Vec<bool> = known
        .iter()
        .zip(&past_events)
        .map(|(value, events)| value.is_some() && events.is_empty())
        .collect();
    let sold = scored.iter().filter(|s| **s).count();
    if sold * 2 < y.len() {
        warnings.push(format!(
            "only {sold} of {} open {}s have sales without an event or a closure: the \
             forecast rests mostly on filled-in values",
            y.len(),
            interval.name()
        ));
    }

    let scores = backtest::compare(y, &scored, season, request.horizon);
    let chosen = match scores.first() {
        Some(best) => Fitted::refit(best.fitted.method(), y, season),
        None => {
            warnings.push(format!(
                "only {} open {}s of history: too few to test any method; forecasting their \
                 average",
                y.len(),
                interval.name()
            ));
            None
        }
    }
    .or_else(|| Fitted::fit(Method::SimpleSmoothing, y, season))
    .ok_or_else(|| invalid("history.observations: needs at least 2 open periods"))?;
    let mut runner = chosen.runner(y, season);
    for &value in y {
        runner.observe(value);
    }
    let variance = Variance::new(&chosen, &runner, season);

    // Open-week steps ahead, then the calendar's periods.
    let z = normal::quantile(0.5 + request.coverage / 2.0);
    let floor = 1.0 / y.len() as f64;
    // An event scales the forecast and its spread; the floor comes after,
    // so even an event that took sales to nothing leaves an interval.
    let band = |expected: f64, variance: f64, factor: f64| {
        let expected = (expected * factor).max(0.0);
        let variance = (variance * factor * factor).max(expected).max(floor);
        let spread = z * variance.sqrt();
        (expected, (expected - spread).max(0.0), expected + spread)
    };
    let effects: BTreeMap<&str, &cleaning::EventEffect> = cleaned
        .effects
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut unseen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut points = Vec::with_capacity(request.horizon);
    let mut steps = 0usize;
    let step_forecast = |h: usize| runner.forecast(h).unwrap_or(0.0);
    for ahead in 1..=request.horizon {
        let period = (periods - 1 + ahead) as i64;
        let when = first + period * step;
        let names = future_events.get(&period).cloned().unwrap_or_default();
        let status = calendar.status(when, interval);
        if status.in_open_week() {
            steps += 1;
        }
        let mut factor = 1.0;
        for name in &names {
            match effects.get(name.as_str()) {
                Some(effect) => factor *= effect.ratio,
                None => {
                    unseen.insert(name.clone());
                }
            }
        }
        let (expected, lower, upper) = match status {
            Status::Open => band(step_forecast(steps), variance.at(steps), factor),
            Status::ExtraOpening => {
                let week = season.max(1);
                let average =
                    (1..=week).map(|h| step_forecast(steps + h)).sum::<f64>() / week as f64;
                band(average, variance.at(steps + 1), factor)
            }
            Status::ClosedDate | Status::ClosedWeekday => (0.0, 0.0, 0.0),
        };
        points.push(Point {
            at: when,
            expected,
            lower,
            upper,
            open: status.trades(),
            events: names,
        });
    }
    for name in unseen {
        warnings.push(format!(
            "event {name:?} has no earlier day in the history: forecast without its effect"
        ));
    }
    let ahead: std::collections::BTreeSet<&String> = future_events.values().flatten().collect();
    for effect in &cleaned.effects {
        if effect.occurrences == 1 && ahead.contains(&effect.name) {
            warnings.push(format!(
                "event {:?}: its effect (×{:.2}) is learned from one day only",
                effect.name, effect.ratio
            ));
        }
    }
    let method = if season < interval.season() && interval == Interval::Day {
        format!(
            "{} over open days (closed {})",
            chosen.describe(season),
            calendar.closed_weekday_names()
        )
    } else {
        chosen.describe(season)
    };
    Ok(Forecast {
        points,
        method,
        candidates: scores
            .iter()
            .map(|s| (s.fitted.describe(season), s.mase))
            .collect(),
        warnings,
    })
}

/// "1,234" for operators; decimals only for small values.
fn round(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Forecast error variance `h` open periods ahead, for the chosen method.
struct Variance {
    kind: VarianceKind,
    sigma2: f64,
    season: usize,
}

enum VarianceKind {
    HoltWinters(crate::holt_winters::Params),
    SeasonalNaive,
    Smoothing(f64),
    Flat,
}

impl Variance {
    /// `runner` has walked the whole history: its one-step error is σ².
    fn new(fitted: &Fitted, runner: &Runner, season: usize) -> Variance {
        let kind = match fitted {
            Fitted::HoltWinters(params) => VarianceKind::HoltWinters(*params),
            Fitted::SeasonalNaive => VarianceKind::SeasonalNaive,
            Fitted::SimpleSmoothing { alpha } => VarianceKind::Smoothing(*alpha),
            Fitted::Croston { .. } | Fitted::Tsb { .. } => VarianceKind::Flat,
        };
        Variance {
            kind,
            sigma2: runner.mse(),
            season: season.max(1),
        }
    }

    fn at(&self, h: usize) -> f64 {
        let h = h.max(1);
        match &self.kind {
            VarianceKind::HoltWinters(params) => {
                crate::holt_winters::variance(*params, self.season, self.sigma2, h)
            }
            VarianceKind::SeasonalNaive => self.sigma2 * ((h - 1) / self.season + 1) as f64,
            VarianceKind::Smoothing(alpha) => {
                self.sigma2 * (1.0 + (h as f64 - 1.0) * alpha * alpha)
            }
            VarianceKind::Flat => self.sigma2,
        }
    }
}

fn check(request: &Request) -> Result<(), ForecastError> {
    let observations = &request.observations;
    if observations.len() < 2 {
        return Err(invalid(
            "history.observations: needs at least 2 observations",
        ));
    }
    if let Some(index) = observations
        .iter()
        .position(|(_, v)| !v.is_finite() || *v < 0.0 || *v > MAX_VALUE)
    {
        return Err(invalid(format!(
            "history.observations[{index}].value: demand must be a number from 0 to \
             {MAX_VALUE:e} (net returns out of a day's sales before sending)"
        )));
    }
    if let Some(index) = observations
        .iter()
        .position(|(at, _)| !(-MAX_TIMESTAMP..=MAX_TIMESTAMP).contains(at))
    {
        return Err(invalid(format!(
            "history.observations[{index}].at: must be a time in the years 0 to 9999"
        )));
    }
    if let Some(index) = request
        .events
        .iter()
        .position(|(_, at)| !(-MAX_TIMESTAMP..=MAX_TIMESTAMP).contains(at))
    {
        return Err(invalid(format!(
            "events[{index}].at: must be a time in the years 0 to 9999"
        )));
    }
    if let Some(calendar) = &request.calendar
        && request.interval == Interval::Day
    {
        let offset = i64::from(calendar.utc_offset_minutes) * 60;
        if (observations[0].0 + offset).rem_euclid(calendar::DAY) != 0 {
            return Err(invalid(format!(
                "history.observations[0].at: a day starts at the shop's midnight \
                 (calendar.utc-offset-minutes = {}), so daily observations must be at \
                 midnight local time; this one is {} s after it",
                calendar.utc_offset_minutes,
                (observations[0].0 + offset).rem_euclid(calendar::DAY)
            )));
        }
    }
    let step = request.interval.seconds();
    for (index, pair) in observations.windows(2).enumerate() {
        let gap = pair[1].0 - pair[0].0;
        if gap <= 0 || gap % step != 0 {
            return Err(invalid(format!(
                "history.observations[{}].at: observations must be whole {}s apart, oldest first",
                index + 1,
                request.interval.name()
            )));
        }
    }
    if request.horizon == 0 || request.horizon > MAX_HORIZON {
        return Err(invalid(format!("horizon: must be 1 to {MAX_HORIZON}")));
    }
    if !(request.coverage >= COVERAGE.0 && request.coverage <= COVERAGE.1) {
        return Err(invalid(format!(
            "coverage: must be from {} to {}, such as 0.8",
            COVERAGE.0, COVERAGE.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 20_780 * calendar::DAY;

    fn shop_week(t: usize) -> f64 {
        [40.0, 38.0, 41.0, 45.0, 60.0, 80.0, 62.0][t % 7] + ((t * 37) % 11) as f64 - 5.0
    }

    fn request(values: &[f64], horizon: usize) -> Request {
        let mut request = Request::daily(values, horizon, 0.8);
        for (at, _) in &mut request.observations {
            *at += MONDAY;
        }
        request
    }

    #[test]
    fn closed_weekdays_forecast_zero_and_keep_the_open_days_pattern() {
        // Closed Tuesdays and Wednesdays, given as zeros with no calendar.
        let values: Vec<f64> = (0..56)
            .map(|t| {
                if matches!(t % 7, 1 | 2) {
                    0.0
                } else {
                    shop_week(t)
                }
            })
            .collect();
        let result = forecast(&request(&values, 14)).expect("forecast");
        assert!(
            result.warnings[0].contains("Tuesday, Wednesday"),
            "{:?}",
            result.warnings
        );
        for (k, point) in result.points.iter().enumerate() {
            let weekday = k % 7; // the history ends on a Sunday
            if matches!(weekday, 1 | 2) {
                assert!(!point.open && point.expected == 0.0 && point.upper == 0.0);
            } else {
                assert!(point.open);
                let want = shop_week(weekday);
                assert!((point.expected - want).abs() < 12.0, "{k}: {point:?}");
            }
        }
        assert!(!result.method.starts_with("croston"), "{}", result.method);
        // The same days left out of the history, with a calendar.
        let mut calendar = Calendar::default();
        calendar.open_weekdays[1] = false;
        calendar.open_weekdays[2] = false;
        let mut sparse = request(&values, 14);
        sparse
            .observations
            .retain(|(at, _)| !matches!(calendar.weekday(*at), 1 | 2));
        sparse.calendar = Some(calendar);
        let given = forecast(&sparse).expect("forecast");
        assert!(given.warnings.is_empty(), "{:?}", given.warnings);
        assert_eq!(given.points, result.points);
        assert!(
            given
                .method
                .contains("over open days (closed Tuesday, Wednesday)")
        );
    }

    #[test]
    fn one_bad_day_does_not_lift_the_fortnight() {
        let mut values: Vec<f64> = (0..56).map(shop_week).collect();
        let clean = forecast(&request(&values, 14)).expect("forecast");
        values[55] *= 30.0;
        let skewed = forecast(&request(&values, 14)).expect("forecast");
        let total = |f: &Forecast| f.points.iter().map(|p| p.expected).sum::<f64>();
        assert!(
            total(&skewed) < total(&clean) * 1.15,
            "{} vs {}",
            total(&skewed),
            total(&clean)
        );
        assert!(
            skewed.warnings.iter().any(|w| w.starts_with("2027-01-17:")),
            "{:?}",
            skewed.warnings
        );
    }

    #[test]
    fn little_data_still_gives_honest_intervals() {
        let one_sale = forecast(&request(&[0.0, 1.0], 3)).expect("forecast");
        for point in &one_sale.points {
            assert!(point.upper > point.lower, "{point:?}");
        }
        // Four weeks of nothing after one sale: the forecast lets go.
        let mut lapsed = vec![0.0; 29];
        lapsed[0] = 1.0;
        let lapsed = forecast(&request(&lapsed, 7)).expect("forecast");
        assert!(lapsed.points[0].expected < 0.1, "{lapsed:?}");
        // Under two weeks: the weekly pattern is tried, and wins.
        let days: Vec<f64> = (0..13).map(shop_week).collect();
        let short = forecast(&request(&days, 7)).expect("forecast");
        assert!(short.method.starts_with("seasonal naive"), "{short:?}");
    }

    #[test]
    fn events_learned_from_history_apply_ahead() {
        let values: Vec<f64> = (0..56)
            .map(|t| {
                if t % 14 == 3 {
                    shop_week(t) * 2.0
                } else {
                    shop_week(t)
                }
            })
            .collect();
        let mut with_events = request(&values, 14);
        with_events.events = (0..70)
            .filter(|t| t % 14 == 3)
            .map(|t| ("market day".to_string(), MONDAY + t as i64 * calendar::DAY))
            .chain([("festival".to_string(), MONDAY + 60 * calendar::DAY)])
            .collect();
        let result = forecast(&with_events).expect("forecast");
        let market = &result.points[3]; // day 59 = 56 + 3, 59 % 14 == 3
        assert_eq!(market.events, vec!["market day".to_string()]);
        assert!(market.expected > shop_week(3) * 1.6, "{market:?}");
        assert!(result.points[4].expected < shop_week(4) * 1.3);
        assert!(
            result
                .warnings
                .iter()
                .any(|w| w.contains("\"festival\" has no earlier day")),
            "{:?}",
            result.warnings
        );
    }

    #[test]
    fn candidates_are_reported_best_first() {
        let values: Vec<f64> = (0..84).map(shop_week).collect();
        let result = forecast(&request(&values, 14)).expect("forecast");
        assert!(result.candidates.len() >= 3, "{:?}", result.candidates);
        assert!(result.candidates.windows(2).all(|w| w[0].1 <= w[1].1));
        let winner = &result.candidates[0].0;
        assert!(
            result.method.split(' ').next() == winner.split(' ').next(),
            "{} vs {winner}",
            result.method
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let error = |r: Request| match forecast(&r) {
            Err(ForecastError::Invalid(why)) => why,
            Ok(_) => String::new(),
        };
        assert!(error(request(&[1.0], 1)).starts_with("history.observations"));
        assert!(error(request(&[1.0, -1.0], 1)).contains("[1].value"));
        assert!(error(request(&[1.0, f64::NAN], 1)).contains("[1].value"));
        assert!(error(request(&[1.0, 2.0], 0)).starts_with("horizon"));
        let mut gap = request(&[1.0, 2.0, 3.0], 1);
        gap.observations.remove(1);
        assert!(error(gap).contains("nothing for 2026-11-24"), "gap");
        for extreme in [1.0, 0.999_999_999_999_999_9, 1e-17, f64::NAN] {
            let mut coverage = request(&[1.0, 2.0], 1);
            coverage.coverage = extreme;
            assert!(error(coverage).starts_with("coverage"), "{extreme}");
        }
        let mut far = request(&[1.0, 2.0], 2);
        far.observations[1].0 = i64::MAX - 86_400;
        assert!(error(far).starts_with("history.observations[1].at"));
        let mut far_event = request(&[1.0, 2.0], 2);
        far_event.events.push(("x".into(), i64::MIN));
        assert!(error(far_event).starts_with("events[0].at"));
        let mut huge = request(&[1.0, 2.0], 2);
        huge.observations[1].1 = 1e30;
        assert!(error(huge).contains("[1].value"));
        // A calendar in UTC-5 with observations at UTC midnight: every
        // weekday would be off by one, so it is refused.
        let mut shifted = request(&[1.0, 2.0, 3.0], 1);
        shifted.calendar = Some(Calendar {
            utc_offset_minutes: -300,
            ..Calendar::default()
        });
        assert!(error(shifted).contains("midnight local time"));
    }

    #[test]
    fn every_open_interval_has_width() {
        // An event whose past days sold nothing: its future day is 0, with
        // room above it.
        let values: Vec<f64> = (0..42)
            .map(|t| if t == 30 { 0.0 } else { shop_week(t) })
            .collect();
        let mut closed_road = request(&values, 14);
        closed_road.events = [30, 44]
            .iter()
            .map(|t| ("road closed".to_string(), MONDAY + t * calendar::DAY))
            .collect();
        let result = forecast(&closed_road).expect("forecast");
        let day = &result.points[2];
        assert_eq!(day.events, ["road closed"]);
        assert!(day.expected < 1.0 && day.upper > day.lower, "{day:?}");
        for coverage in [0.01, 0.999] {
            let mut edge = request(&values, 7);
            edge.coverage = coverage;
            let points = forecast(&edge).expect("forecast").points;
            assert!(
                points.iter().all(|p| p.upper > p.lower),
                "{coverage}: {points:?}"
            );
        }
    }
}
