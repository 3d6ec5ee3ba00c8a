//! Making the open-day series fit to learn from: unknown days filled in,
//! event days set aside (their effect measured), outliers down-weighted.
//!
//! Everything is measured against a robust baseline: the median of the same
//! slot of the season in the four seasons either side (a Saturday against
//! the nearby Saturdays). A day is an outlier when it is further from its
//! baseline than four robust standard deviations (1.4826 × the median
//! absolute deviation, and at least √level, the spread of counts); it is
//! then pulled in to three, not dropped, so a real change still shows.
//! Intermittent demand (fewer than half the days selling) is left alone:
//! there a sale among zeros is the pattern, not an outlier.

use std::collections::BTreeMap;

/// A value the fit must not take as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub index: usize,
    pub value: f64,
    pub usual: f64,
    pub used: f64,
}

/// How far an event's days ran above (or below) their baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEffect {
    pub name: String,
    /// Actual over baseline, summed over its past occurrences.
    pub ratio: f64,
    pub occurrences: usize,
}

pub struct Cleaned {
    pub values: Vec<f64>,
    pub outliers: Vec<Outlier>,
    pub effects: Vec<EventEffect>,
}

const NEIGHBOUR_SEASONS: usize = 4;
const OUTLIER_SIGMAS: f64 = 4.0;
const PULLED_TO_SIGMAS: f64 = 3.0;

/// `known[i]` is `None` where the value is unknown (a holiday in the open
/// week); `events[i]` names the events on period `i`.
pub fn clean(known: &[Option<f64>], events: &[Vec<String>], m: usize) -> Cleaned {
    let n = known.len();
    let step = m.max(1);
    // Event days and unknown days do not vote in baselines.
    let usable = |i: usize| -> Option<f64> { if events[i].is_empty() { known[i] } else { None } };
    // The same slot in the seasons either side; event days only when no
    // other day is there (an event on every Saturday is the Saturday
    // pattern, and its effect against that is about 1).
    // On the stack: this runs once per period, and allocating here was the
    // biggest cost of a short history inside the sandbox.
    let baseline = |i: usize| -> Option<f64> {
        let neighbours = (1..=NEIGHBOUR_SEASONS).flat_map(|k| {
            let back = i.checked_sub(k * step);
            let ahead = Some(i + k * step).filter(|&j| j < n);
            [back, ahead]
        });
        let mut around = [0.0; 2 * NEIGHBOUR_SEASONS];
        let mut count = 0;
        for j in neighbours.clone().flatten() {
            if let Some(value) = usable(j) {
                around[count] = value;
                count += 1;
            }
        }
        if count == 0 {
            for j in neighbours.flatten() {
                if let Some(value) = known[j] {
                    around[count] = value;
                    count += 1;
                }
            }
        }
        median(&mut around[..count])
    };
    let baselines: Vec<Option<f64>> = (0..n).map(baseline).collect();

    let observed: Vec<f64> = (0..n).filter_map(usable).collect();
    let selling = observed.iter().filter(|v| **v > 0.0).count();
    let regular = !observed.is_empty() && selling * 2 >= observed.len();
    let level = observed.iter().sum::<f64>() / observed.len().max(1) as f64;
    let mut deviations: Vec<f64> = (0..n)
        .filter_map(|i| Some((usable(i)? - baselines[i]?).abs()))
        .collect();
    let sigma = (1.4826 * median(&mut deviations).unwrap_or(0.0)).max(level.max(1.0).sqrt());

    let mut values = vec![0.0; n];
    let mut outliers = Vec::new();
    let mut last = None;
    for i in 0..n {
        let fallback = baselines[i].or(last).unwrap_or(level);
        values[i] = match (usable(i), baselines[i]) {
            (Some(value), Some(usual))
                if regular && (value - usual).abs() > OUTLIER_SIGMAS * sigma =>
            {
                let used = usual + (value - usual).signum() * PULLED_TO_SIGMAS * sigma;
                let used = used.max(0.0);
                outliers.push(Outlier {
                    index: i,
                    value,
                    usual,
                    used,
                });
                used
            }
            (Some(value), _) => value,
            (None, _) => fallback,
        };
        if usable(i).is_some() {
            last = Some(values[i]);
        }
    }

    // Per event name: (actual, baseline, occurrences) over its past days.
    let mut sums: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for i in 0..n {
        let (Some(value), Some(usual)) = (known[i], baselines[i]) else {
            continue;
        };
        for name in &events[i] {
            let (actual, baseline, count) = sums.entry(name).or_default();
            *actual += value;
            *baseline += usual;
            *count += 1;
        }
        if !events[i].is_empty() {
            values[i] = usual;
        }
    }
    let effects = sums
        .into_iter()
        .filter(|(_, (_, baseline, _))| *baseline > 0.0)
        .map(|(name, (actual, baseline, occurrences))| EventEffect {
            name: name.to_string(),
            ratio: actual / baseline,
            occurrences,
        })
        .collect();
    Cleaned {
        values,
        outliers,
        effects,
    }
}

/// The median, or `None` for no values. Reorders `values`.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(weeks: usize) -> Vec<Option<f64>> {
        (0..weeks * 7)
            .map(|t| Some([40.0, 38.0, 41.0, 45.0, 60.0, 80.0, 62.0][t % 7] + (t % 3) as f64))
            .collect()
    }

    #[test]
    fn one_bad_day_is_pulled_in_and_named() {
        let mut known = weekly(8);
        let last = known.len() - 1;
        known[last] = Some(62.0 * 30.0);
        let events = vec![Vec::new(); known.len()];
        let cleaned = clean(&known, &events, 7);
        assert_eq!(cleaned.outliers.len(), 1, "{:?}", cleaned.outliers);
        assert_eq!(cleaned.outliers[0].index, last);
        assert!(
            cleaned.values[last] < 62.0 * 2.0,
            "{}",
            cleaned.values[last]
        );
        let untouched = clean(&weekly(8), &events, 7);
        assert!(untouched.outliers.is_empty(), "{:?}", untouched.outliers);
    }

    #[test]
    fn event_days_measure_their_effect_and_are_set_aside() {
        let mut known = weekly(8);
        let mut events = vec![Vec::new(); known.len()];
        for week in [2, 5] {
            let i = week * 7 + 2;
            known[i] = known[i].map(|v| v * 2.0);
            events[i].push("market day".to_string());
        }
        let cleaned = clean(&known, &events, 7);
        assert!(cleaned.outliers.is_empty());
        let effect = &cleaned.effects[0];
        assert_eq!(effect.occurrences, 2);
        assert!((effect.ratio - 2.0).abs() < 0.1, "{effect:?}");
        assert!(cleaned.values[16] < 50.0);
    }

    #[test]
    fn an_event_on_every_such_day_is_that_days_pattern() {
        let known = weekly(6);
        let events: Vec<Vec<String>> = (0..known.len())
            .map(|t| {
                if t % 7 == 5 {
                    vec!["market".to_string()]
                } else {
                    Vec::new()
                }
            })
            .collect();
        let cleaned = clean(&known, &events, 7);
        assert!(
            (cleaned.values[12] - 80.0).abs() < 3.0,
            "{}",
            cleaned.values[12]
        );
        assert!(
            (cleaned.effects[0].ratio - 1.0).abs() < 0.05,
            "{:?}",
            cleaned.effects
        );
    }

    #[test]
    fn unknown_days_are_filled_from_their_neighbours() {
        let mut known = weekly(6);
        known[19] = None;
        let cleaned = clean(&known, &vec![Vec::new(); known.len()], 7);
        assert!(
            (cleaned.values[19] - 81.0).abs() < 3.0,
            "{}",
            cleaned.values[19]
        );
    }
}
