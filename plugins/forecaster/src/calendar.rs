//! When the shop trades, and dates as an operator reads them.
//!
//! A closed day is neither demand nor zero demand. Closures come in two
//! shapes, and they are treated differently because they do different things
//! to a weekly pattern:
//!
//! - a **weekday the shop never opens** (closed Tuesdays and Wednesdays) is
//!   left out of the series altogether: the open days form a shorter week
//!   (five days), and the models see that week's pattern;
//! - a **closed date** on an open weekday (a holiday) keeps its place in the
//!   open week, so the pattern does not slip by a day; its value is unknown
//!   and filled in for the fit, and its forecast is zero.
//!
//! A date open although its weekday is closed (a Sunday fair) is outside the
//! open week: it is not fitted, and its forecast is the open days' average.

use std::collections::BTreeSet;

pub const DAY: i64 = 86_400;

/// The period length the series uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Week,
}

impl Interval {
    pub fn seconds(self) -> i64 {
        match self {
            Interval::Hour => 3_600,
            Interval::Day => DAY,
            Interval::Week => 7 * DAY,
        }
    }

    /// The seasonal cycle, in periods, when every period is open.
    pub fn season(self) -> usize {
        match self {
            Interval::Hour => 24,
            Interval::Day => 7,
            Interval::Week => 52,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
        }
    }
}

pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The shop's opening calendar. The default is open every day.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// Indexed Monday = 0.
    pub open_weekdays: [bool; 7],
    /// Local day numbers (days since 1970-01-01 in the shop's time).
    pub closed_dates: BTreeSet<i64>,
    pub open_dates: BTreeSet<i64>,
    pub utc_offset_minutes: i32,
}

impl Default for Calendar {
    fn default() -> Calendar {
        Calendar {
            open_weekdays: [true; 7],
            closed_dates: BTreeSet::new(),
            open_dates: BTreeSet::new(),
            utc_offset_minutes: 0,
        }
    }
}

/// What a period is to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In the open week, trading.
    Open,
    /// In the open week, but closed that date: a holiday.
    ClosedDate,
    /// On a weekday the shop does not open.
    ClosedWeekday,
    /// Open on a weekday the shop does not usually open.
    ExtraOpening,
}

impl Status {
    /// In the series the models fit (a holiday keeps its place).
    pub fn in_open_week(self) -> bool {
        matches!(self, Status::Open | Status::ClosedDate)
    }

    pub fn trades(self) -> bool {
        matches!(self, Status::Open | Status::ExtraOpening)
    }
}

impl Calendar {
    /// The local day number a period starting at `at` falls on.
    pub fn local_day(&self, at: i64) -> i64 {
        (at + i64::from(self.utc_offset_minutes) * 60).div_euclid(DAY)
    }

    /// Monday = 0. 1970-01-01 was a Thursday.
    pub fn weekday(&self, at: i64) -> usize {
        weekday_of_day(self.local_day(at))
    }

    pub fn open_weekday_count(&self) -> usize {
        self.open_weekdays.iter().filter(|open| **open).count()
    }

    /// Weekly data has no weekdays: only listed dates close a week.
    pub fn status(&self, at: i64, interval: Interval) -> Status {
        let day = self.local_day(at);
        if interval == Interval::Week {
            return if self.closed_dates.contains(&day) {
                Status::ClosedDate
            } else {
                Status::Open
            };
        }
        // A date listed both closed and open is closed.
        let weekday_open = self.open_weekdays[weekday_of_day(day)];
        match (
            weekday_open,
            self.closed_dates.contains(&day),
            self.open_dates.contains(&day),
        ) {
            (true, false, _) => Status::Open,
            (true, true, _) => Status::ClosedDate,
            (false, false, true) => Status::ExtraOpening,
            (false, _, _) => Status::ClosedWeekday,
        }
    }

    /// "Tuesday, Wednesday".
    pub fn closed_weekday_names(&self) -> String {
        self.open_weekdays
            .iter()
            .zip(WEEKDAYS)
            .filter(|(open, _)| !**open)
            .map(|(_, name)| name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn weekday_of_day(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Weekdays a daily history never sold on, at least four times each, when
/// the other days sell regularly: a shop that is closed those days and did
/// not say so (or a sales file that leaves closed days out). Returns the
/// weekdays, Monday = 0.
pub fn silent_weekdays(calendar: &Calendar, days: &[(i64, Option<f64>)]) -> Vec<usize> {
    let mut seen = [0usize; 7];
    let mut sold = [0usize; 7];
    for &(at, value) in days {
        if calendar.status(at, Interval::Day) != Status::Open {
            continue;
        }
        let Some(value) = value else { continue };
        let weekday = calendar.weekday(at);
        seen[weekday] += 1;
        if value > 0.0 {
            sold[weekday] += 1;
        }
    }
    let silent: Vec<usize> = (0..7).filter(|&d| seen[d] >= 4 && sold[d] == 0).collect();
    let (other_seen, other_sold) = (0..7)
        .filter(|d| !silent.contains(d))
        .fold((0, 0), |(s, o), d| (s + seen[d], o + sold[d]));
    // Regular sellers only: for intermittent demand a weekday without a sale
    // is chance, not a closure.
    if silent.is_empty() || silent.len() > 3 || other_sold * 10 < other_seen * 8 {
        return Vec::new();
    }
    silent
}

/// `2026-11-23` (or `2026-11-23 14:00` for hourly data) for the local
/// period starting at `at`.
pub fn describe(at: i64, calendar: &Calendar, interval: Interval) -> String {
    let local = at + i64::from(calendar.utc_offset_minutes) * 60;
    let (year, month, day) = civil_from_days(local.div_euclid(DAY));
    if interval == Interval::Hour {
        let hour = local.rem_euclid(DAY) / 3_600;
        format!("{year:04}-{month:02}-{day:02} {hour:02}:00")
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

/// (year, month, day) of a day number, proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_weekdays() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let calendar = Calendar::default();
        // 2026-11-23 was a Monday.
        assert_eq!(calendar.weekday(20_780 * DAY), 0);
        assert_eq!(calendar.weekday(20_780 * DAY + 6 * DAY), 6);
        assert_eq!(
            describe(20_780 * DAY + 14 * 3_600, &calendar, Interval::Hour),
            "2026-11-23 14:00"
        );
        // A shop an hour east of UTC: 23:30 UTC on Sunday is Monday there.
        let east = Calendar {
            utc_offset_minutes: 60,
            ..Calendar::default()
        };
        assert_eq!(east.weekday(20_779 * DAY + 23 * 3_600 + 1_800), 0);
    }

    #[test]
    fn statuses() {
        let monday = 20_780 * DAY;
        let mut calendar = Calendar::default();
        calendar.open_weekdays[1] = false;
        calendar.closed_dates.insert(20_780);
        calendar.open_dates.insert(20_781);
        assert_eq!(calendar.status(monday, Interval::Day), Status::ClosedDate);
        assert_eq!(
            calendar.status(monday + DAY, Interval::Day),
            Status::ExtraOpening
        );
        assert_eq!(
            calendar.status(monday + 8 * DAY, Interval::Day),
            Status::ClosedWeekday
        );
        assert_eq!(
            calendar.status(monday + 2 * DAY, Interval::Day),
            Status::Open
        );
        assert_eq!(calendar.closed_weekday_names(), "Tuesday");
    }

    #[test]
    fn silent_weekdays_are_found_only_in_regular_sales() {
        let calendar = Calendar::default();
        let start = 20_780 * DAY;
        let regular: Vec<(i64, Option<f64>)> = (0..35)
            .map(|d| {
                let weekday = d % 7;
                let value = if weekday == 1 || weekday == 2 {
                    0.0
                } else {
                    20.0
                };
                (start + d * DAY, Some(value))
            })
            .collect();
        assert_eq!(silent_weekdays(&calendar, &regular), vec![1, 2]);
        let sparse: Vec<(i64, Option<f64>)> = (0..35)
            .map(|d| (start + d * DAY, Some(if d % 5 == 0 { 2.0 } else { 0.0 })))
            .collect();
        assert!(silent_weekdays(&calendar, &sparse).is_empty());
    }
}
