//! The commands a stall runs by hand: tokenize a card, quote and book a
//! courier, follow a parcel, forecast demand. Each is one local API route (see
//! `link`), so a script can switch between the CLI and HTTP freely.

use crate::link::Link;
use crate::sales;
use anyhow::{Context, bail};
use hyper::Method;
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a command's JSON comes from, and how the result is shown.
pub struct Input<'a> {
    pub file: Option<&'a Path>,
    pub plugin: Option<&'a str>,
    pub json: bool,
}

/// Reads the JSON named by `file` (`-` or nothing: standard input).
fn read_json(file: Option<&Path>, what: &str) -> anyhow::Result<Value> {
    let (text, origin) = match file {
        Some(path) if path != Path::new("-") => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {what} from {}", path.display()))?,
            path.display().to_string(),
        ),
        _ => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("reading {what} as JSON from standard input; end with Ctrl-D");
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("cannot read {what} from standard input"))?;
            (text, "standard input".to_string())
        }
    };
    serde_json::from_str(&text).with_context(|| format!("{origin} is not JSON"))
}

/// The API body for a route whose argument is `field`: the file may hold the
/// whole body (as in docs/examples, shared with curl) or just the argument.
fn body(input: &Input, field: &str, what: &str) -> anyhow::Result<Value> {
    let value = read_json(input.file, what)?;
    let mut body = match value {
        Value::Object(ref fields) if fields.contains_key(field) => value,
        Value::Object(_) => json!({ field: value }),
        other => bail!("{what} must be a JSON object, not {other}"),
    };
    if let Some(plugin) = input.plugin {
        body["plugin"] = json!(plugin);
    }
    Ok(body)
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn plugin_query(plugin: Option<&str>) -> String {
    plugin.map(|id| format!("?plugin={id}")).unwrap_or_default()
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or("")
}

pub fn tokenize(link: &Link, input: Input) -> anyhow::Result<()> {
    let body = body(&input, "card", "the card")?;
    let reply = link.request(Method::POST, "/v1/payments/tokenize", Some(&body))?;
    let result = reply.ok("tokenizing")?;
    if input.json {
        return print_json(&result);
    }
    let token = &result["token"];
    println!(
        "{} card ending {}, expires {:02}/{}",
        text(token, "brand"),
        text(token, "last_four"),
        token["expiry_month"],
        token["expiry_year"]
    );
    println!("token: {}", text(token, "token"));
    Ok(())
}

pub fn quote(link: &Link, input: Input) -> anyhow::Result<()> {
    // What a person leaves out (collect now, every service) the node fills.
    let body = body(&input, "request", "the quote request")?;
    let reply = link.request(Method::POST, "/v1/shipping/quotes", Some(&body))?;
    let result = reply.ok("quoting")?;
    if input.json {
        return print_json(&result);
    }
    let quotes = result["quotes"].as_array().cloned().unwrap_or_default();
    if quotes.is_empty() {
        println!("The courier offers no service for this shipment.");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = quotes
        .iter()
        .map(|quote| {
            [
                text(quote, "quote_id").to_string(),
                format!("{} {}", text(quote, "carrier"), text(quote, "service_name")),
                money(&quote["price"]),
                format!(
                    "{}-{}",
                    quote["transit_days_min"], quote["transit_days_max"]
                ),
                utc(quote["expires_at"].as_i64().unwrap_or(0)),
            ]
        })
        .collect();
    let width = |column: usize, title: &str| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (w0, w1, w2, w3) = (
        width(0, "QUOTE"),
        width(1, "SERVICE"),
        width(2, "PRICE"),
        width(3, "DAYS"),
    );
    println!(
        "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  EXPIRES",
        "QUOTE", "SERVICE", "PRICE", "DAYS"
    );
    for [id, service, price, days, expires] in &rows {
        println!("{id:<w0$}  {service:<w1$}  {price:>w2$}  {days:>w3$}  {expires}");
    }
    println!("\nBook one with `outpost book <shipment.json> --quote <QUOTE> --reference <yours>`.");
    Ok(())
}

pub fn book(
    link: &Link,
    input: Input,
    quote: Option<String>,
    reference: Option<String>,
    print: bool,
) -> anyhow::Result<()> {
    let mut body = body(&input, "request", "the booking request")?;
    if let Some(quote) = quote {
        body["request"]["quote_id"] = json!(quote);
    }
    if let Some(reference) = reference {
        body["request"]["reference"] = json!(reference);
    }
    let reply = link.request(Method::POST, "/v1/shipping/bookings", Some(&body))?;
    let result = reply.ok("booking")?;
    if input.json {
        print_json(&result)?;
    } else {
        show_booking(&result["booking"]);
    }
    let booking = &result["booking"];
    if text(booking, "state") == "queued" && !link.is_running() {
        println!(
            "No node is running, so nothing delivers the queue now: start `outpost run`, and \
             the booking goes out as soon as the courier answers."
        );
    }
    if print {
        if text(booking, "state") == "confirmed" {
            print_labels(link, booking)?;
        } else {
            println!(
                "Not printing: the labels come with the courier's confirmation. Print them then \
                 with `outpost booking {} --print`.",
                text(booking, "booking_id")
            );
        }
    }
    Ok(())
}

pub fn booking(
    link: &Link,
    id: &str,
    plugin: Option<&str>,
    cancel: bool,
    print: bool,
    json: bool,
) -> anyhow::Result<()> {
    let path = format!("/v1/shipping/bookings/{id}{}", plugin_query(plugin));
    if cancel {
        link.request(Method::DELETE, &path, None)?
            .ok("cancelling")?;
        println!("{id} cancelled");
        return Ok(());
    }
    let result = link.request(Method::GET, &path, None)?.ok("looking up")?;
    if json {
        print_json(&result)?;
    } else {
        show_booking(&result["booking"]);
    }
    if print {
        print_labels(link, &result["booking"])?;
    }
    Ok(())
}

fn show_booking(booking: &Value) {
    let state = text(booking, "state");
    println!(
        "{} with {}: {state}",
        text(booking, "booking_id"),
        text(booking, "carrier")
    );
    if let Some(numbers) = booking["tracking_numbers"]
        .as_array()
        .filter(|n| !n.is_empty())
    {
        let numbers: Vec<&str> = numbers.iter().filter_map(Value::as_str).collect();
        println!("  tracking: {}", numbers.join(", "));
    }
    if let Some(at) = booking["collection_at"].as_i64() {
        println!("  collection: {}", utc(at));
    }
    if let Some(labels) = booking["labels"].as_array().filter(|l| !l.is_empty()) {
        println!(
            "  labels: {} (print with `outpost booking {} --print`)",
            labels.len(),
            text(booking, "booking_id")
        );
    }
    if let Some(detail) = booking["detail"].as_str() {
        println!("  {detail}");
    }
    if state == "queued" {
        println!(
            "  Queued in the outbox; `outpost booking {}` shows when the courier confirms it.",
            text(booking, "booking_id")
        );
    }
}

/// Sends each of the booking's labels to the default label printer.
fn print_labels(link: &Link, booking: &Value) -> anyhow::Result<()> {
    let labels = booking["labels"].as_array().cloned().unwrap_or_default();
    if labels.is_empty() {
        bail!(
            "{} has no labels yet (it is {}); print once the courier has confirmed it",
            text(booking, "booking_id"),
            text(booking, "state")
        );
    }
    for (index, label) in labels.iter().enumerate() {
        let result = link
            .request(
                Method::POST,
                "/v1/print/label",
                Some(&json!({ "label": label })),
            )?
            .ok("printing the label")?;
        let job = &result["job"];
        println!(
            "label {} of {} printed on `{}` ({} bytes)",
            index + 1,
            labels.len(),
            text(job, "printer"),
            job["bytes"]
        );
    }
    Ok(())
}

pub fn track(link: &Link, number: &str, plugin: Option<&str>, json: bool) -> anyhow::Result<()> {
    let path = format!("/v1/shipping/tracking/{number}{}", plugin_query(plugin));
    let result = link.request(Method::GET, &path, None)?.ok("tracking")?;
    if json {
        return print_json(&result);
    }
    let tracking = &result["tracking"];
    println!(
        "{}: {}",
        text(tracking, "tracking_number"),
        text(tracking, "status")
    );
    if let Some(at) = tracking["estimated_delivery"].as_i64() {
        println!("  expected: {}", utc(at));
    }
    for event in tracking["events"].as_array().into_iter().flatten() {
        let place = event["location"]
            .as_str()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        println!(
            "  {}  {:<16} {}{place}",
            utc(event["at"].as_i64().unwrap_or(0)),
            text(event, "status"),
            text(event, "description")
        );
    }
    Ok(())
}

/// A forecast from JSON, or from a CSV of daily sales.
pub struct ForecastInput {
    pub csv: Option<PathBuf>,
    pub calendar: Option<PathBuf>,
    pub until: Option<String>,
    pub item: Option<String>,
    pub unit: String,
    pub horizon: u32,
    pub coverage: f64,
}

/// The most history sent with one forecast: a year is what the forecaster's
/// weekly and seasonal patterns need, and keeps each call a few
/// milliseconds.
const HISTORY_DAYS: i64 = 364;

fn item_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "item".into())
}

/// The request for `days` of `sales` (closed days left out by `calendar`).
fn sales_request(
    sales: &sales::Sales,
    calendar: Option<&sales::ShopCalendar>,
    (from, to): (i64, i64),
    (item, unit): (&str, &str),
    (horizon, coverage): (u32, f64),
) -> (Value, sales::History) {
    let mut history = sales::observations(sales, calendar, from, to);
    let observations = std::mem::take(&mut history.observations);
    let mut request = json!({
        "history": { "item": item, "unit": unit, "interval": "day",
                     "observations": observations },
        "horizon": horizon,
        "coverage": coverage,
    });
    if let Some(calendar) = calendar {
        calendar.request_fields(&mut request);
    }
    (request, history)
}

/// Text a plugin wrote, safe to print: control characters (a hostile
/// plugin's terminal escapes) shown as `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A sales file (its notes told), its first and last day, and the calendar.
fn read_sales(
    csv: &Path,
    calendar: Option<&Path>,
) -> anyhow::Result<(sales::Sales, (i64, i64), Option<sales::ShopCalendar>)> {
    let sales = sales::read_csv(csv)?;
    for note in &sales.notes {
        eprintln!("note: {note}");
    }
    let span = match (sales.days.keys().next(), sales.days.keys().last()) {
        (Some(first), Some(last)) => (*first, *last),
        _ => bail!("{} holds no sales", csv.display()),
    };
    let calendar = calendar.map(sales::read_calendar).transpose()?;
    Ok((sales, span, calendar))
}

pub fn forecast(link: &Link, input: Input, from: ForecastInput) -> anyhow::Result<()> {
    let mut body = match &from.csv {
        Some(path) => {
            let (sales, (first, last), calendar) = read_sales(path, from.calendar.as_deref())?;
            let item = from.item.clone().unwrap_or_else(|| item_name(path));
            // A till export lists days with sales only: --until says up to
            // when the file is complete, so days after its last sale count.
            let last = match from.until.as_deref() {
                Some(until) => sales::parse_date(until)
                    .with_context(|| format!("--until {until:?} is not a date like 2026-11-23"))?
                    .max(first),
                None => last,
            };
            let start = (last + 1 - HISTORY_DAYS).max(first);
            let (request, history) = sales_request(
                &sales,
                calendar.as_ref(),
                (start, last + 1),
                (&item, &from.unit),
                (from.horizon, from.coverage),
            );
            eprintln!(
                "note: history {} to {}, forecasting from {}",
                sales::date(start),
                sales::date(last),
                sales::date(last + 1)
            );
            if history.missing > 0 {
                eprintln!(
                    "note: {} open day(s) missing from {} were counted as no sales",
                    history.missing,
                    path.display()
                );
            }
            if let Some(first_closed) = history.sold_while_closed.first() {
                eprintln!(
                    "note: sales on {} day(s) the calendar closes were left out (first {}); \
                     check the calendar",
                    history.sold_while_closed.len(),
                    sales::date(*first_closed)
                );
            }
            json!({ "request": request })
        }
        None => body(&input, "request", "the forecast request")?,
    };
    if let Some(plugin) = input.plugin {
        body["plugin"] = json!(plugin);
    }
    let result = link
        .request(Method::POST, "/v1/forecasts", Some(&body))?
        .ok("forecasting")?;
    if input.json {
        return print_json(&result);
    }
    let forecast = &result["forecast"];
    let coverage = body["request"]["coverage"].as_f64().unwrap_or(0.0);
    println!(
        "{} ({}), {}:",
        printable(text(forecast, "item")),
        printable(text(&body["request"]["history"], "unit")),
        printable(text(forecast, "method"))
    );
    println!(
        "  {:<10} {:>10}   {:.0}% INTERVAL",
        "DAY",
        "EXPECTED",
        coverage * 100.0
    );
    for point in forecast["points"].as_array().into_iter().flatten() {
        let day = utc(point["at"].as_i64().unwrap_or(0));
        let day = day.get(..10).unwrap_or(&day);
        let events = match point_events(point) {
            events if events.is_empty() => String::new(),
            events => format!("   {events}"),
        };
        // 0.1.0 forecasters have no `open`: every day is open to them.
        if point["open"] == json!(false) {
            println!("  {day:<10} {:>10}{events}", "closed");
            continue;
        }
        println!(
            "  {:<10} {:>10.1}   {:.1} to {:.1}{events}",
            day,
            point["expected"].as_f64().unwrap_or(f64::NAN),
            point["lower"].as_f64().unwrap_or(f64::NAN),
            point["upper"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(tried) = methods_tried(forecast) {
        println!("tried on the history (MASE, below 1 beats last week's sales): {tried}");
    }
    for warning in forecast["warnings"].as_array().into_iter().flatten() {
        println!(
            "warning: {}",
            printable(warning.as_str().unwrap_or_default())
        );
    }
    Ok(())
}

/// The events a forecast point names, printable: "market day, festival".
pub fn point_events(point: &Value) -> String {
    let events: Vec<&str> = point["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    printable(&events.join(", "))
}

/// "holt-winters additive 0.61, seasonal naive 1.01": the methods a
/// forecaster (0.2.0) tried, with their backtest MASE; `None` from one that
/// does not say.
pub fn methods_tried(forecast: &Value) -> Option<String> {
    let tried: Vec<String> = forecast["candidates"]
        .as_array()?
        .iter()
        .map(|c| {
            let method = text(c, "method");
            let short = method.split(" (").next().unwrap_or(method);
            format!(
                "{} {:.2}",
                printable(short),
                c["mase"].as_f64().unwrap_or(f64::NAN)
            )
        })
        .collect();
    (!tried.is_empty()).then(|| tried.join(", "))
}

/// `outpost forecast backtest`.
pub struct BacktestInput {
    pub csv: PathBuf,
    pub calendar: Option<PathBuf>,
    pub horizon: u32,
    pub origins: u32,
    pub coverage: f64,
    pub plugin: Option<String>,
    pub json: bool,
}

pub fn backtest(link: &Link, input: BacktestInput) -> anyhow::Result<()> {
    if !(input.coverage > 0.0 && input.coverage < 1.0) {
        bail!("--coverage must be between 0 and 1, such as 0.8");
    }
    let (sales, (first, last), calendar) = read_sales(&input.csv, input.calendar.as_deref())?;
    let horizon = i64::from(input.horizon);
    let item = item_name(&input.csv);
    let mut origins = Vec::new();
    let mut skipped = 0;
    for week in (0..i64::from(input.origins)).rev() {
        let origin = last + 1 - horizon - 7 * week;
        let first_day = (origin - HISTORY_DAYS).max(first);
        // Two weeks of history at least, or there is nothing to learn from.
        if origin - first_day < 14 {
            skipped += 1;
            continue;
        }
        let (request, _) = sales_request(
            &sales,
            calendar.as_ref(),
            (first_day, origin),
            (&item, "units"),
            (input.horizon, input.coverage),
        );
        let mut body = json!({ "request": request });
        if let Some(plugin) = &input.plugin {
            body["plugin"] = json!(plugin);
        }
        let answer = link
            .request(Method::POST, "/v1/forecasts", Some(&body))?
            .ok("forecasting")
            .with_context(|| format!("forecasting from {}", sales::date(origin)))?;
        let window = sales::Window {
            first_day,
            origin,
            horizon,
        };
        match sales::score(&sales, calendar.as_ref(), &window, &answer["forecast"]) {
            Some(scored) => origins.push(scored),
            None => skipped += 1,
        }
    }
    if origins.is_empty() {
        bail!(
            "{} is too short to replay: it needs at least {} days (two weeks of history and \
             --horizon {} days to check)",
            input.csv.display(),
            14 + horizon,
            horizon
        );
    }
    let result = sales::summarize(origins, input.coverage);
    if input.json {
        return print_json(&serde_json::to_value(&result)?);
    }
    println!(
        "{}: forecasts from {} past mornings, {} days ahead each",
        item,
        result.origins.len(),
        horizon
    );
    println!(
        "  {:<10} {:>6} {:>10} {:>9}   METHOD",
        "FROM", "MASE", "LAST WEEK", "INTERVAL"
    );
    for origin in &result.origins {
        println!(
            "  {:<10} {:>6.2} {:>10.2} {:>9}   {}",
            origin.date,
            origin.mase,
            origin.naive_mase,
            format!("{}/{}", origin.inside, origin.days),
            printable(&origin.method)
        );
    }
    println!(
        "mean MASE {:.2} (same weekday last week: {:.2}); the {:.0}% interval held {:.0}% of days",
        result.mase,
        result.naive_mase,
        result.nominal_coverage * 100.0,
        result.coverage * 100.0
    );
    let verdict = if result.mase < result.naive_mase {
        format!(
            "forecasts were {:.0}% closer than last week's sales",
            (1.0 - result.mase / result.naive_mase) * 100.0
        )
    } else {
        "forecasts were no better than last week's sales: plan with care".to_string()
    };
    let trust = if result.coverage + 0.1 < result.nominal_coverage {
        "; the interval was too narrow, so plan for more than its range"
    } else {
        ""
    };
    println!("{verdict}{trust}");
    if skipped > 0 {
        println!(
            "({skipped} earlier origin(s) skipped: under two weeks of history before them, a \
             history with no week-to-week change to scale by, or no open day to score)"
        );
    }
    Ok(())
}

/// `2026-11-23 14:05 UTC` for seconds since the epoch.
pub fn utc(seconds: i64) -> String {
    match jiff::Timestamp::from_second(seconds) {
        Ok(at) => at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => format!("{seconds} s after 1970"),
    }
}

/// "8.95 GBP", "1200 JPY": minor units shown in the currency's own decimals
/// (ISO 4217; a hundredth unless listed).
fn money(value: &Value) -> String {
    const NO_DECIMALS: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let minor = value["minor_units"].as_i64().unwrap_or(0);
    let currency = text(value, "currency");
    let decimals = if NO_DECIMALS.contains(&currency) {
        0
    } else if THREE_DECIMALS.contains(&currency) {
        3
    } else {
        2
    };
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{magnitude} {currency}");
    }
    let scale = 10u64.pow(decimals);
    format!(
        "{sign}{}.{:0width$} {currency}",
        magnitude / scale,
        magnitude % scale,
        width = decimals as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sales::parse_date;

    #[test]
    fn dates_round_trip() {
        for (text, days) in [
            ("1970-01-01", 0),
            ("2000-03-01", 11_017),
            ("2026-11-23", 20_780),
        ] {
            assert_eq!(parse_date(text), Some(days), "{text}");
            assert_eq!(&utc(days * 86_400)[..10], text);
        }
        assert_eq!(parse_date("2026-02-29"), None);
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("date"), None);
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn prices_use_the_currency_decimals() {
        let price = |minor: i64, currency: &str| {
            money(&json!({ "minor_units": minor, "currency": currency }))
        };
        assert_eq!(price(895, "GBP"), "8.95 GBP");
        assert_eq!(price(-5, "EUR"), "-0.05 EUR");
        assert_eq!(price(1200, "JPY"), "1200 JPY");
        assert_eq!(price(1500, "KWD"), "1.500 KWD");
    }

    #[test]
    fn sales_csv_names_the_bad_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("loaves.csv");
        std::fs::write(&path, "date,sold\n2026-11-01,40\n\n2026-11-02,38.5\n").expect("write");
        let sales = sales::read_csv(&path).expect("parsed");
        assert_eq!(sales.days.len(), 2);
        std::fs::write(&path, "2026-11-01,40\n2026-11-02,many\n").expect("write");
        let error = sales::read_csv(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("line 2") && error.contains("many"),
            "{error}"
        );
        // Out of order, with a gap, and two lines for one day: sorted, the
        // lines added up, and the open day missing counted as no sales.
        std::fs::write(&path, "2026-11-04,7\n2026-11-01,40\n2026-11-01,2\n").expect("write");
        let sales = sales::read_csv(&path).expect("parsed");
        let (first, last) = (20_758, 20_761);
        let history = sales::observations(&sales, None, first, last + 1);
        let values: Vec<f64> = history
            .observations
            .iter()
            .filter_map(|o| o["value"].as_f64())
            .collect();
        assert_eq!(values, [42.0, 0.0, 0.0, 7.0]);
        assert_eq!(history.missing, 2);
    }
}
