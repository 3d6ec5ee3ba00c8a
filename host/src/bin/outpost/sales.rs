//! A shop's sales file and opening calendar, as `outpost forecast --csv` and
//! `outpost forecast backtest` read them, and the backtest itself: how far
//! this shop's forecasts can be trusted.
//!
//! Sales: `date,quantity` lines (ISO dates, or a date and time as a till
//! writes them: `2026-11-23 14:05`). Several lines for one day add up, so a
//! till export with one line per sale works; a negative quantity is a return
//! and nets off that day's sales. A first line that reads as neither a date
//! nor a number is a header; anything else that does not parse is an error
//! naming its line.
//!
//! Calendar (TOML): which weekdays the shop opens, dates it is closed or
//! open against the pattern, and dated events:
//!
//! ```toml
//! open = ["mon", "thu", "fri", "sat", "sun"]
//! closed = ["2026-12-25", "2026-12-26"]
//! open-dates = ["2026-12-22"]
//!
//! [[event]]
//! name = "market day"
//! dates = ["2026-11-07", "2026-11-21", "2026-12-05"]
//! ```

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const DAY: i64 = 86_400;

const WEEKDAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

/// Net sales per day (days since 1970-01-01), and what the reader noticed.
pub struct Sales {
    pub days: BTreeMap<i64, f64>,
    pub notes: Vec<String>,
}

/// The day of a sales line's date: `2026-11-23`, or with a time after it
/// (`2026-11-23 14:05`, `2026-11-23T14:05:00`), as till exports write it.
fn line_day(text: &str) -> Option<i64> {
    match text.get(..10) {
        Some(date) if text.len() > 10 && text[10..].starts_with([' ', 'T']) => parse_date(date),
        _ => parse_date(text),
    }
}

/// Days since 1970-01-01 for an ISO date, `2026-11-23`.
pub fn parse_date(text: &str) -> Option<i64> {
    let date: jiff::civil::Date = text.parse().ok()?;
    let midnight = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(midnight.timestamp().as_second().div_euclid(DAY))
}

/// `2026-11-23` for a day number.
pub fn date(day: i64) -> String {
    match jiff::Timestamp::from_second(day * DAY) {
        Ok(at) => at.strftime("%Y-%m-%d").to_string(),
        Err(_) => format!("day {day}"),
    }
}

/// Monday = 0.
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

pub fn read_csv(path: &Path) -> anyhow::Result<Sales> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sales from {}", path.display()))?;
    // Spreadsheets save UTF-8 with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut days: BTreeMap<i64, f64> = BTreeMap::new();
    let mut returns: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    let mut first = true;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let first_line = std::mem::replace(&mut first, false);
        let at = || format!("{} line {number}", path.display());
        let Some((date_text, quantity_text)) = line.split_once(',') else {
            bail!("{}: expected `date,quantity`, got {line:?}", at());
        };
        let (date_text, quantity_text) = (date_text.trim(), quantity_text.trim());
        let quantity = quantity_text.parse::<f64>().ok().filter(|q| q.is_finite());
        let day = line_day(date_text);
        if first_line && day.is_none() && quantity.is_none() {
            continue; // a header: `date,quantity`
        }
        let Some(day) = day else {
            bail!(
                "{}: {date_text:?} is not a date like 2026-11-23 (write dates as YYYY-MM-DD)",
                at()
            );
        };
        let Some(quantity) = quantity else {
            let hint = if quantity_text.contains(',') {
                " (write decimals with a point, 2.5, or quote nothing: one comma per line)"
            } else {
                ""
            };
            bail!("{}: {quantity_text:?} is not a number{hint}", at());
        };
        *days.entry(day).or_insert(0.0) += quantity;
        if quantity < 0.0 {
            returns.entry(day).or_default().push(number);
        }
    }
    if days.is_empty() {
        bail!(
            "{} holds no sales; write `date,quantity` lines (2026-11-23,41)",
            path.display()
        );
    }
    let mut notes = Vec::new();
    let netted: usize = returns.values().map(Vec::len).sum();
    if netted > 0 {
        notes.push(format!(
            "{netted} return line(s) netted off their day's sales"
        ));
    }
    for (day, lines) in &returns {
        if let Some(total) = days.get_mut(day).filter(|total| **total < 0.0) {
            notes.push(format!(
                "{} (line {}): returns exceed sales by {}; counted as no sales",
                date(*day),
                lines
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                -*total
            ));
            *total = 0.0;
        }
    }
    Ok(Sales { days, notes })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CalendarFile {
    #[serde(default)]
    open: Vec<String>,
    #[serde(default)]
    closed: Vec<String>,
    #[serde(default)]
    open_dates: Vec<String>,
    #[serde(default)]
    event: Vec<EventEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventEntry {
    name: String,
    dates: Vec<String>,
}

/// The shop's calendar, dates as day numbers.
#[derive(Debug, Default, Clone)]
pub struct ShopCalendar {
    /// Monday = 0; all true when the file names no weekdays.
    open_weekdays: [bool; 7],
    closed: BTreeSet<i64>,
    open_dates: BTreeSet<i64>,
    events: Vec<(String, i64)>,
}

pub fn read_calendar(path: &Path) -> anyhow::Result<ShopCalendar> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the calendar {}", path.display()))?;
    let file: CalendarFile = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a calendar (see `outpost forecast --help`)",
            path.display()
        )
    })?;
    let dates = |field: &str, list: &[String]| -> anyhow::Result<BTreeSet<i64>> {
        list.iter()
            .map(|text| {
                parse_date(text).with_context(|| {
                    format!(
                        "{} {field}: {text:?} is not a date like 2026-12-25",
                        path.display()
                    )
                })
            })
            .collect()
    };
    let mut open_weekdays = [file.open.is_empty(); 7];
    for name in &file.open {
        let lower = name.to_ascii_lowercase();
        let index = WEEKDAYS
            .iter()
            .position(|(short, long)| lower == *short || lower == *long)
            .with_context(|| {
                format!(
                    "{} open: {name:?} is not a weekday; write mon, tue, wed, thu, fri, sat, sun",
                    path.display()
                )
            })?;
        open_weekdays[index] = true;
    }
    let mut events = Vec::new();
    for entry in &file.event {
        if entry.name.trim().is_empty() {
            bail!("{} [[event]]: name must not be empty", path.display());
        }
        for day in dates(&format!("event {:?}", entry.name), &entry.dates)? {
            events.push((entry.name.clone(), day));
        }
    }
    Ok(ShopCalendar {
        open_weekdays,
        closed: dates("closed", &file.closed)?,
        open_dates: dates("open-dates", &file.open_dates)?,
        events,
    })
}

impl ShopCalendar {
    pub fn is_open(&self, day: i64) -> bool {
        if self.closed.contains(&day) {
            return false;
        }
        self.open_weekdays[weekday(day)] || self.open_dates.contains(&day)
    }

    /// The request's `calendar` and `events` fields (forecaster@0.2.0).
    pub fn request_fields(&self, request: &mut Value) {
        let open: Vec<&str> = WEEKDAYS
            .iter()
            .zip(self.open_weekdays)
            .filter(|(_, open)| *open)
            .map(|((_, long), _)| *long)
            .collect();
        let at = |days: &BTreeSet<i64>| days.iter().map(|d| d * DAY).collect::<Vec<_>>();
        request["calendar"] = json!({
            "open_weekdays": open,
            "closed_dates": at(&self.closed),
            "open_dates": at(&self.open_dates),
            "utc_offset_minutes": 0,
        });
        request["events"] = self
            .events
            .iter()
            .map(|(name, day)| json!({ "name": name, "at": day * DAY }))
            .collect();
    }
}

/// The observations sent for some days, and what was done to fit them.
pub struct History {
    pub observations: Vec<Value>,
    /// Open days without a line, counted as no sales.
    pub missing: usize,
    /// Days with sales that the calendar closes, left out.
    pub sold_while_closed: Vec<i64>,
}

/// Observations for the days `from..to`: closed days (by the calendar) left
/// out, open days without a line counted as no sales.
pub fn observations(sales: &Sales, calendar: Option<&ShopCalendar>, from: i64, to: i64) -> History {
    let mut history = History {
        observations: Vec::new(),
        missing: 0,
        sold_while_closed: Vec::new(),
    };
    for day in from..to {
        let sold = sales.days.get(&day).copied();
        if calendar.is_some_and(|c| !c.is_open(day)) {
            if sold.is_some_and(|v| v > 0.0) {
                history.sold_while_closed.push(day);
            }
            continue;
        }
        let value = sold.unwrap_or_else(|| {
            history.missing += 1;
            0.0
        });
        history
            .observations
            .push(json!({ "at": day * DAY, "value": value }));
    }
    history
}

/// One origin of a backtest: forecasts made as if on `origin`'s morning.
#[derive(Debug, serde::Serialize)]
pub struct Origin {
    pub date: String,
    pub method: String,
    pub mase: f64,
    /// "Same weekday last week" over the same days.
    pub naive_mase: f64,
    pub inside: usize,
    pub days: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct Backtest {
    pub origins: Vec<Origin>,
    pub mase: f64,
    pub naive_mase: f64,
    pub coverage: f64,
    pub nominal_coverage: f64,
}

/// What to score one origin with: the history's in-sample "same weekday a
/// week earlier" error, and the actual days ahead.
pub struct Window {
    pub first_day: i64,
    pub origin: i64,
    pub horizon: i64,
}

/// Scores one forecast answer against what then sold. `None` when the
/// window has no open day with a sale to score against.
pub fn score(
    sales: &Sales,
    calendar: Option<&ShopCalendar>,
    window: &Window,
    forecast: &Value,
) -> Option<Origin> {
    let open = |day: i64| calendar.is_none_or(|c| c.is_open(day));
    let value = |day: i64| sales.days.get(&day).copied().unwrap_or(0.0);
    let pairs: Vec<f64> = (window.first_day + 7..window.origin)
        .filter(|d| open(*d) && open(d - 7))
        .map(|d| (value(d) - value(d - 7)).abs())
        .collect();
    let scale = pairs.iter().sum::<f64>() / pairs.len().max(1) as f64;
    if scale <= 0.0 {
        return None;
    }
    let (mut error, mut inside, mut days) = (0.0, 0, 0);
    let (mut naive_error, mut naive_days) = (0.0, 0);
    for point in forecast["points"].as_array().into_iter().flatten() {
        let day = point["at"].as_i64().unwrap_or(i64::MIN).div_euclid(DAY);
        if day >= window.origin + window.horizon || !open(day) {
            continue;
        }
        let (Some(expected), Some(lower), Some(upper)) = (
            point["expected"].as_f64(),
            point["lower"].as_f64(),
            point["upper"].as_f64(),
        ) else {
            continue;
        };
        let actual = value(day);
        // The same weekday in the last week before the origin, when the
        // shop was open that day.
        let last_week = window.origin - 7 + (day - window.origin).rem_euclid(7);
        error += (actual - expected).abs();
        if open(last_week) {
            naive_error += (actual - value(last_week)).abs();
            naive_days += 1;
        }
        inside += usize::from(lower <= actual && actual <= upper);
        days += 1;
    }
    (days > 0).then(|| Origin {
        date: date(window.origin),
        method: forecast["method"].as_str().unwrap_or_default().to_string(),
        mase: error / days as f64 / scale,
        naive_mase: naive_error / naive_days.max(1) as f64 / scale,
        inside,
        days,
    })
}

pub fn summarize(origins: Vec<Origin>, nominal_coverage: f64) -> Backtest {
    let count = origins.len().max(1) as f64;
    let inside: usize = origins.iter().map(|o| o.inside).sum();
    let days: usize = origins.iter().map(|o| o.days).sum();
    Backtest {
        mase: origins.iter().map(|o| o.mase).sum::<f64>() / count,
        naive_mase: origins.iter().map(|o| o.naive_mase).sum::<f64>() / count,
        coverage: inside as f64 / days.max(1) as f64,
        nominal_coverage,
        origins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn returns_net_off_and_headers_are_only_headers() {
        let file = write(
            "date,quantity\n2026-11-23,5\n2026-11-23,-2\n2026-11-24,1\n2026-11-24,-3\n\n2026-11-25,4\n",
        );
        let sales = read_csv(file.path()).expect("reads");
        assert_eq!(
            sales.days.values().copied().collect::<Vec<_>>(),
            [3.0, 0.0, 4.0]
        );
        // A till export: a byte-order mark, a blank line before the header,
        // times after the dates, one line per sale.
        let till = write("\u{feff}\nwhen,qty\n2026-11-23 09:12,1\n2026-11-23T17:40:05,2\n");
        let till = read_csv(till.path()).expect("reads");
        assert_eq!(till.days.values().copied().collect::<Vec<_>>(), [3.0]);
        let comma = write("2026-11-23,2,5\n");
        let error = read_csv(comma.path()).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("with a point")),
            "{error:?}"
        );
        assert!(
            sales.notes[0].starts_with("2 return line(s)"),
            "{:?}",
            sales.notes
        );
        assert!(
            sales.notes[1].starts_with("2026-11-24 (line 5): returns exceed sales by 2"),
            "{:?}",
            sales.notes
        );
        // A first line that is data in the wrong shape is an error, not a header.
        let european = write("23/11/2026,5\n24/11/2026,6\n");
        let error = read_csv(european.path()).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("line 1: \"23/11/2026\" is not a date")),
            "{error:?}"
        );
        let bad_number = write("2026-11-23,five\n");
        let error = read_csv(bad_number.path()).err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("line 1: \"five\"")),
            "{error:?}"
        );
    }

    #[test]
    fn calendars_read_weekdays_dates_and_events() {
        let file = write(
            "open = [\"mon\", \"Thursday\", \"fri\", \"sat\", \"sun\"]\nclosed = [\"2026-12-25\"]\nopen-dates = [\"2026-12-22\"]\n[[event]]\nname = \"market day\"\ndates = [\"2026-11-07\"]\n",
        );
        let calendar = read_calendar(file.path()).expect("reads");
        let day = |text: &str| parse_date(text).expect("date");
        assert!(!calendar.is_open(day("2026-11-24"))); // a Tuesday
        assert!(calendar.is_open(day("2026-11-23")));
        assert!(!calendar.is_open(day("2026-12-25")));
        assert!(calendar.is_open(day("2026-12-22")));
        let mut request = json!({});
        calendar.request_fields(&mut request);
        assert_eq!(request["calendar"]["open_weekdays"][1], "thursday");
        assert_eq!(request["events"][0]["name"], "market day");
        let typo = write("open = [\"tues\"]\n");
        let error = read_calendar(typo.path()).err().map(|e| format!("{e:#}"));
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("\"tues\" is not a weekday")),
            "{error:?}"
        );
    }
}
