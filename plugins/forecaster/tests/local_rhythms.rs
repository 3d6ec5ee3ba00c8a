//! The forecaster on real daily demand, by rolling-origin evaluation, against
//! statsmodels on exactly the same protocol.
//!
//! Data: the UCI Bike Sharing daily counts (Capital Bikeshare, 2011-2012,
//! CC BY 4.0; `tests/reference/data/README.md` names the source and how it
//! was checked). References: `tests/reference/ets_reference.py` (statsmodels
//! 0.14.4) wrote `ets_reference.json`: for each of the series `casual`,
//! `registered` and `cnt`, eight origins a week apart, a 364-day training
//! window and a 14-day horizon, the MASE of ETS(A,A,A), Holt-Winters and
//! seasonal naive, scaled by the in-sample seasonal naive error of each
//! window. The same again with the shop closed every Tuesday and Wednesday:
//! those days dropped, a five-day open week, 260 open days of training and
//! ten open days ahead.
//!
//! Here the plugin's own model gets each window as a node would send it
//! (dated observations; for the closed case, no Tuesdays or Wednesdays and a
//! calendar saying so) and its MASE is computed the same way.

use forecaster::calendar::{Calendar, DAY, Interval};
use forecaster::model::{self, Request};
use serde_json::Value;

struct Day {
    day: i64,
    weekday: usize,
    values: [f64; 3],
}

const SERIES: [&str; 3] = ["casual", "registered", "cnt"];

fn days() -> Vec<Day> {
    let text = include_str!("../../../tests/reference/data/bike_sharing_daily.csv");
    let calendar = Calendar::default();
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let date: Vec<i64> = fields[0]
                .split('-')
                .map(|p| p.parse().expect("date"))
                .collect();
            let day = days_from_civil(date[0], date[1], date[2]);
            let number = |i: usize| fields[i].trim().parse::<f64>().expect("count");
            Day {
                day,
                weekday: calendar.weekday(day * DAY),
                values: [number(1), number(2), number(3)],
            }
        })
        .collect()
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn reference() -> Value {
    serde_json::from_str(include_str!("../../../tests/reference/ets_reference.json"))
        .expect("reference parses")
}

fn scale(train: &[f64], m: usize) -> f64 {
    let errors: Vec<f64> = train.windows(m + 1).map(|w| (w[m] - w[0]).abs()).collect();
    errors.iter().sum::<f64>() / errors.len() as f64
}

struct Score {
    mase: f64,
    inside: usize,
    points: usize,
}

/// Our mean MASE and 80% coverage over the reference's origins.
fn evaluate(days: &[Day], series: usize, closed: &[usize], case: &Value) -> Score {
    let (m, horizon, window) = if closed.is_empty() {
        (7, 14, 364)
    } else {
        (5, 10, 260)
    };
    let open: Vec<&Day> = days
        .iter()
        .filter(|d| !closed.contains(&d.weekday))
        .collect();
    let mut calendar = Calendar::default();
    for &weekday in closed {
        calendar.open_weekdays[weekday] = false;
    }
    let (mut total, mut inside, mut points) = (0.0, 0, 0);
    let origins = case["origins"].as_array().expect("origins");
    for origin in origins {
        let o = origin["origin_index"].as_u64().expect("index") as usize;
        let train = &open[o - window..o];
        let actual = &open[o..o + horizon];
        let values: Vec<f64> = train.iter().map(|d| d.values[series]).collect();
        let request = Request {
            observations: train
                .iter()
                .map(|d| (d.day * DAY, d.values[series]))
                .collect(),
            interval: Interval::Day,
            // Calendar days to the last open day asked about.
            horizon: (actual[horizon - 1].day - train[window - 1].day) as usize,
            coverage: 0.8,
            calendar: (!closed.is_empty()).then(|| calendar.clone()),
            events: Vec::new(),
        };
        let forecast = model::forecast(&request).expect("forecast");
        let mut error = 0.0;
        for day in actual {
            let point = forecast
                .points
                .iter()
                .find(|p| p.at == day.day * DAY)
                .expect("a point for every open day");
            assert!(point.open && point.upper > point.lower, "{point:?}");
            let value = day.values[series];
            error += (value - point.expected).abs();
            inside += usize::from(point.lower <= value && value <= point.upper);
            points += 1;
        }
        for point in &forecast.points {
            if !point.open {
                assert_eq!((point.expected, point.upper), (0.0, 0.0), "{point:?}");
            }
        }
        total += error / horizon as f64 / scale(&values, m);
    }
    Score {
        mase: total / origins.len() as f64,
        inside,
        points,
    }
}

#[test]
fn regular_series_are_no_worse_than_statsmodels_ets() {
    let days = days();
    let reference = reference();
    let mut failures = Vec::new();
    for (index, name) in SERIES.iter().enumerate() {
        let case = &reference["series"][name]["all-open"];
        let ets = case["mean_mase"]["ets_aaa"].as_f64().expect("ets");
        let ours = evaluate(&days, index, &[], case);
        println!(
            "{name}, open every day: MASE {:.3} (statsmodels ETS(A,A,A) {ets:.3}); 80% interval \
             held {}/{} (ETS {:.3})",
            ours.mase,
            ours.inside,
            ours.points,
            case["ets_coverage_80"].as_f64().unwrap_or(0.0)
        );
        if ours.mase > ets {
            failures.push(format!(
                "{name}: MASE {} is worse than statsmodels' ETS(A,A,A) {ets}",
                ours.mase
            ));
        }
        // Intervals as honest as ETS's: no more than 5 points less often
        // holding what sold.
        let ets_coverage = case["ets_coverage_80"].as_f64().expect("coverage");
        let coverage = ours.inside as f64 / ours.points as f64;
        if coverage < ets_coverage - 0.05 {
            failures.push(format!(
                "{name}: the 80% interval held {coverage:.3}, ETS's {ets_coverage:.3}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn closed_weekdays_are_within_five_percent_of_the_best_open_day_fit() {
    let days = days();
    let reference = reference();
    let mut failures = Vec::new();
    for (index, name) in SERIES.iter().enumerate() {
        let case = &reference["series"][name]["closed-tue-wed"];
        let means = &case["mean_mase"];
        let best = ["holt_winters", "seasonal_naive"]
            .iter()
            .map(|method| means[method].as_f64().expect("mase"))
            .fold(f64::INFINITY, f64::min);
        let ours = evaluate(&days, index, &[1, 2], case);
        println!(
            "{name}, closed Tuesday and Wednesday: MASE {:.3} (best of Holt-Winters and seasonal \
             naive on open days {best:.3}); 80% interval held {}/{}",
            ours.mase, ours.inside, ours.points
        );
        if ours.mase > best * 1.05 {
            failures.push(format!(
                "{name}: MASE {} is more than 5% worse than {best}",
                ours.mase
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
