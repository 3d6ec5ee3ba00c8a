//! The commands a stall runs by hand: tokenize a card, quote and book a
//! courier, follow a parcel, forecast demand. Each is one local API route (see
//! `link`), so a script can switch between the CLI and HTTP freely.

use crate::link::Link;
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
    pub item: Option<String>,
    pub unit: String,
    pub horizon: u32,
    pub coverage: f64,
}

pub fn forecast(link: &Link, input: Input, from: ForecastInput) -> anyhow::Result<()> {
    let mut body = match &from.csv {
        Some(path) => {
            let observations = read_sales_csv(path)?;
            let item = from.item.clone().unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "item".into())
            });
            json!({ "request": {
                "history": { "item": item, "unit": from.unit, "interval": "day",
                             "observations": observations },
                "horizon": from.horizon,
                "coverage": from.coverage,
            }})
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
        text(forecast, "item"),
        text(&body["request"]["history"], "unit"),
        text(forecast, "method")
    );
    println!(
        "  {:<10} {:>10}   {:.0}% INTERVAL",
        "DAY",
        "EXPECTED",
        coverage * 100.0
    );
    for point in forecast["points"].as_array().into_iter().flatten() {
        let day = utc(point["at"].as_i64().unwrap_or(0));
        println!(
            "  {:<10} {:>10.1}   {:.1} to {:.1}",
            day.get(..10).unwrap_or(&day),
            point["expected"].as_f64().unwrap_or(f64::NAN),
            point["lower"].as_f64().unwrap_or(f64::NAN),
            point["upper"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}

/// `date,quantity` per line (ISO dates, UTC days); a header line and blank
/// lines are skipped.
fn read_sales_csv(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read sales from {}", path.display()))?;
    let mut days = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let where_ = || format!("{} line {}", path.display(), index + 1);
        let Some((date, quantity)) = line.split_once(',') else {
            bail!("{}: expected `date,quantity`, got {line:?}", where_());
        };
        let Some(day) = parse_date(date.trim()) else {
            if index == 0 {
                continue; // a header
            }
            bail!("{}: {date:?} is not a date like 2026-11-23", where_());
        };
        let quantity: f64 = quantity
            .trim()
            .parse()
            .ok()
            .filter(|q: &f64| q.is_finite())
            .with_context(|| format!("{}: {quantity:?} is not a number", where_()))?;
        days.push((day, quantity, index + 1));
    }
    if days.is_empty() {
        bail!(
            "{} holds no sales; write one `date,quantity` line per day",
            path.display()
        );
    }
    days.sort_by_key(|&(day, _, _)| day);
    let mut observations = Vec::with_capacity(days.len());
    let mut filled = 0;
    for pair in days.windows(2) {
        let ((day, quantity, _), (next, _, line)) = (pair[0], pair[1]);
        if next == day {
            bail!(
                "{} line {line}: {} appears twice; write one line per day",
                path.display(),
                utc(day * 86_400).get(..10).unwrap_or_default()
            );
        }
        observations.push(json!({ "at": day * 86_400, "value": quantity }));
        // A day missing from the file sold nothing: the forecaster wants
        // every day, one apart.
        for gap in day + 1..next {
            observations.push(json!({ "at": gap * 86_400, "value": 0.0 }));
            filled += 1;
        }
    }
    if let Some(&(day, quantity, _)) = days.last() {
        observations.push(json!({ "at": day * 86_400, "value": quantity }));
    }
    if filled > 0 {
        eprintln!(
            "note: {filled} day(s) missing from {} were counted as no sales",
            path.display()
        );
    }
    Ok(observations)
}

/// Days since 1970-01-01 for an ISO date, `2026-11-23`.
fn parse_date(text: &str) -> Option<i64> {
    let date: jiff::civil::Date = text.parse().ok()?;
    let midnight = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(midnight.timestamp().as_second().div_euclid(86_400))
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
        let observations = read_sales_csv(&path).expect("parsed");
        assert_eq!(observations.len(), 2);
        assert_eq!(observations[1]["value"], 38.5);
        std::fs::write(&path, "2026-11-01,40\n2026-11-02,many\n").expect("write");
        let error = read_sales_csv(&path).expect_err("refused").to_string();
        assert!(
            error.contains("line 2") && error.contains("many"),
            "{error}"
        );
        // Out of order and with a gap: sorted, and the gap sold nothing.
        std::fs::write(&path, "2026-11-04,7\n2026-11-01,40\n").expect("write");
        let observations = read_sales_csv(&path).expect("parsed");
        let values: Vec<f64> = observations
            .iter()
            .filter_map(|o| o["value"].as_f64())
            .collect();
        assert_eq!(values, [40.0, 0.0, 0.0, 7.0]);
        std::fs::write(&path, "2026-11-01,4\n2026-11-01,5\n").expect("write");
        let error = read_sales_csv(&path).expect_err("refused").to_string();
        assert!(error.contains("2026-11-01 appears twice"), "{error}");
    }
}
