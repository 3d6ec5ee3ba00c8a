//! {{id}}: an Outpost courier adapter.
//!
//! This skeleton quotes one fixed-price service and books through the node's
//! outbox, which delivers each booking to the carrier (plugin-config `api-url`)
//! once it answers, retrying while it is down. Replace the rate, the booking
//! body and `booking-status`'s reading of the answer with your carrier's API;
//! for live quotes and tracking add `http`. `plugins/courier` in the Outpost
//! repository books online first and falls back to the outbox.

use outpost_sdk::courier_adapter::{
    Booking, BookingRequest, BookingState, Courier, HealthReport, HealthStatus, Lifecycle,
    PluginInfo, Quote, QuoteRequest, Tracking, TrackingStatus,
};
use outpost_sdk::outbox::{self, Delivery, DeliveryState};
use outpost_sdk::types::{Address, Money, Parcel, PluginError};

/// Your carrier's production API, also in plugin.toml's outbox destinations.
/// Operators point `api-url` at your sandbox without repackaging.
const DEFAULT_API_URL: &str = "https://api.courier.example";
const CARRIER: &str = "{{name}}"; // Replace: the carrier's name as customers know it.
const SERVICE: &str = "STD";
const PRICE_PER_PARCEL: i64 = 695; // Replace: your rate card, in pence.

struct Plugin;

fn invalid<T>(why: impl Into<String>) -> Result<T, PluginError> {
    Err(PluginError::invalid_input(why))
}

fn api_url() -> String {
    let url = outpost_sdk::config::get("api-url").unwrap_or_else(|| DEFAULT_API_URL.into());
    url.trim_end_matches('/').to_string()
}

/// One key per booking, forever: the outbox sends it as `Idempotency-Key`, so
/// the carrier sees each booking once however often it is retried.
fn idempotency_key(reference: &str) -> String {
    format!("booking-{reference}")
}

fn check_reference(reference: &str, field: &str) -> Result<(), PluginError> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if reference.is_empty() || reference.len() > 64 || !reference.bytes().all(ok) {
        return invalid(format!("{field}: 1 to 64 letters, digits, '-' or '_'"));
    }
    Ok(())
}

fn check_shipment(from: &Address, to: &Address, parcels: &[Parcel]) -> Result<(), PluginError> {
    for (field, address) in [("ship-from", from), ("ship-to", to)] {
        if address.name.trim().is_empty() || address.postal_code.trim().is_empty() {
            return invalid(format!(
                "request.{field}: name and postal-code are required"
            ));
        }
    }
    let weight_ok = |p: &Parcel| (1..=30_000).contains(&p.weight_grams);
    if parcels.is_empty() || !parcels.iter().all(weight_ok) {
        return invalid("request.parcels: at least one, each 1 to 30000 grams");
    }
    Ok(())
}

/// The reference and outbox entry of a booking `book` made.
fn find(booking_id: &str) -> Result<(&str, Delivery), PluginError> {
    let reference = booking_id.strip_prefix("bk-").unwrap_or_default();
    check_reference(reference, "booking-id")?;
    match outbox::status(&idempotency_key(reference))? {
        Some(delivery) => Ok((reference, delivery)),
        None => invalid(format!("booking-id: no booking {booking_id} on this node")),
    }
}

/// `[{"weight_grams":1200},...]`. The body (and the `/v1/shipments` path)
/// is what the test-kit's virtual courier takes; replace both with your
/// carrier's API.
fn parcels(parcels: &[Parcel]) -> String {
    let each: Vec<String> = parcels
        .iter()
        .map(|p| format!("{{\"weight_grams\":{}}}", p.weight_grams))
        .collect();
    format!("[{}]", each.join(","))
}

/// `value` as a JSON string, every character that must be escaped escaped.
fn json_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// Replace: the body your carrier's booking API expects (serde_json helps).
fn booking_body(request: &BookingRequest) -> Vec<u8> {
    let fields = [
        ("reference", json_string(&request.reference)),
        ("quote_id", json_string(&request.quote_id)),
        ("postal_code", json_string(&request.ship_to.postal_code)),
        ("parcels", parcels(&request.parcels)),
    ];
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    ["{", &fields.join(","), "}"].concat().into_bytes()
}

fn booking(booking_id: String, state: BookingState, entry: u64) -> Booking {
    Booking {
        booking_id,
        state,
        carrier: CARRIER.into(),
        tracking_numbers: Vec::new(),
        labels: Vec::new(),
        collection_at: None,
        detail: Some(format!("outbox entry {entry}")),
    }
}

impl Lifecycle for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            // The node checks it against the package: bump the version in Cargo.toml only.
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Fixed-price quotes, bookings delivered through the outbox".into(),
            support: "mailto:support@{{vendor}}.example".into(), // Replace: your address.
        }
    }

    fn health() -> HealthReport {
        // A cheap check of the configuration; the operator sees it at install.
        let url = api_url();
        let status = match url.split_once("://") {
            Some(("http" | "https", _)) => HealthStatus::Ok,
            _ => HealthStatus::Failing,
        };
        let detail = format!("bookings go to {url:?} (plugin-config api-url)");
        HealthReport { status, detail }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        // Runs once before this version serves (`None` on a fresh install).
        // Bookings live in the outbox, not kv: nothing to convert yet.
        Ok(())
    }
}

impl Courier for Plugin {
    fn request_quotes(request: QuoteRequest) -> Result<Vec<Quote>, PluginError> {
        check_shipment(&request.ship_from, &request.ship_to, &request.parcels)?;
        let codes = &request.service_codes;
        if !codes.is_empty() && !codes.iter().any(|code| code == SERVICE) {
            return Ok(Vec::new()); // None of the services asked for.
        }
        let parcels = request.parcels.len() as i64;
        Ok(vec![Quote {
            quote_id: format!("{SERVICE}.{}", request.ready_at),
            carrier: CARRIER.into(),
            service_code: SERVICE.into(),
            service_name: "Standard, 1 to 2 days".into(),
            price: Money::new(PRICE_PER_PARCEL * parcels, "GBP"),
            transit_days_min: 1,
            transit_days_max: 2,
            expires_at: request.ready_at.saturating_add(24 * 3600),
        }])
    }

    fn book(request: BookingRequest) -> Result<Booking, PluginError> {
        check_reference(&request.reference, "request.reference")?;
        if !request.quote_id.starts_with(&format!("{SERVICE}.")) {
            return invalid("request.quote-id: not a quote from request-quotes");
        }
        check_shipment(&request.ship_from, &request.ship_to, &request.parcels)?;
        let key = idempotency_key(&request.reference);
        let url = format!("{}/v1/shipments", api_url());
        // Durable once it returns. The same reference and details give the same
        // entry; other details a conflict (invalid-input): never two shipments.
        let entry = outbox::enqueue(&outbox::post_json(&url, booking_body(&request), &key))?;
        outpost_sdk::info!("{key} queued for {url} as outbox entry {entry}");
        let id = format!("bk-{}", request.reference);
        Ok(booking(id, BookingState::Queued, entry))
    }

    fn booking_status(booking_id: String) -> Result<Booking, PluginError> {
        let (_, delivery) = find(&booking_id)?;
        let code = delivery.response_status.unwrap_or(0);
        let refused = (400..500).contains(&code) && !matches!(code, 408 | 425 | 429);
        let state = match delivery.state {
            DeliveryState::Pending => BookingState::Queued,
            // Replace: read tracking numbers and labels from `delivery.response_body`.
            DeliveryState::Delivered => BookingState::Confirmed,
            DeliveryState::Dead if refused => BookingState::Rejected,
            // The node gave up, but the carrier never said no: `outpost outbox retry`.
            DeliveryState::Dead => BookingState::Queued,
        };
        Ok(booking(booking_id, state, delivery.id))
    }

    fn track(tracking_number: String) -> Result<Tracking, PluginError> {
        if tracking_number.trim().is_empty() || tracking_number.len() > 64 {
            return invalid("tracking-number: 1 to 64 characters");
        }
        // Replace: ask the carrier's tracking API (add an `http` grant).
        Ok(Tracking {
            tracking_number,
            status: TrackingStatus::PreTransit,
            events: Vec::new(),
            estimated_delivery: None,
        })
    }

    fn cancel(booking_id: String) -> Result<(), PluginError> {
        let (reference, _) = find(&booking_id)?;
        // Replace: your carrier's cancel call. Queued as well, so it reaches the
        // carrier even while the booking itself still waits.
        let url = format!("{}/v1/shipments/{reference}/cancel", api_url());
        let message = outbox::post_json(&url, b"{}".to_vec(), &format!("cancel-{reference}"));
        let entry = outbox::enqueue(&message)?;
        outpost_sdk::info!("cancellation of {booking_id} queued as outbox entry {entry}");
        Ok(())
    }
}

outpost_sdk::export_courier_adapter!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_sdk::testing::TestHost;

    fn address(name: &str, postal_code: &str) -> Address {
        Address {
            name: name.into(),
            company: None,
            lines: vec!["Unit 4, Riverside Market".into()],
            city: "Bristol".into(),
            region: None,
            postal_code: postal_code.into(),
            country: "GB".into(),
            phone: None,
            email: None,
        }
    }

    fn request(reference: &str) -> BookingRequest {
        BookingRequest {
            quote_id: "STD.1795478400".into(),
            reference: reference.into(),
            ship_from: address("Hollow Oak Bakery", "BS1 4DJ"),
            ship_to: address("Priya Natarajan", "BS8 1TH"),
            parcels: vec![Parcel {
                weight_grams: 1200,
                length_mm: 300,
                width_mm: 200,
                height_mm: 100,
                description: "Sourdough hamper".into(),
                declared_value: None,
            }],
        }
    }

    #[test]
    fn quotes_and_books_through_the_outbox_once_per_reference() {
        let host = TestHost::new()
            .config("api-url", "https://api.courier.example/")
            .install();
        let quote = QuoteRequest {
            ship_from: address("Hollow Oak Bakery", "BS1 4DJ"),
            ship_to: address("Priya Natarajan", "BS8 1TH"),
            parcels: request("ORDER-1042").parcels,
            ready_at: 1_795_478_400,
            service_codes: Vec::new(),
        };
        let quotes = Plugin::request_quotes(quote).expect("quotes");
        assert_eq!(quotes.len(), 1);
        assert_eq!(quotes[0].price, Money::new(695, "GBP"));

        let booked = Plugin::book(request("ORDER-1042")).expect("booked");
        let again = Plugin::book(request("ORDER-1042")).expect("the same booking");
        assert!(matches!(booked.state, BookingState::Queued));
        assert_eq!(booked.booking_id, "bk-ORDER-1042");
        assert_eq!(again.booking_id, booked.booking_id);
        let sent = host.outbox();
        assert_eq!(sent.len(), 1, "one message per booking");
        assert_eq!(sent[0].destination, "https://api.courier.example/v1/shipments");
        let body = String::from_utf8_lossy(&sent[0].payload).into_owned();
        assert!(body.contains(r#""reference":"ORDER-1042""#), "{body}");
        let status = Plugin::booking_status(booked.booking_id).expect("status");
        assert!(matches!(status.state, BookingState::Queued));
    }

    #[test]
    fn refuses_bad_and_changed_bookings() {
        let host = TestHost::new().install();
        let empty = Plugin::book(request(""));
        assert!(matches!(empty, Err(PluginError::InvalidInput(_))));
        Plugin::book(request("ORDER-1043")).expect("booked");
        let mut changed = request("ORDER-1043");
        changed.ship_to.postal_code = "CF10 4PA".into();
        let changed = Plugin::book(changed);
        assert!(matches!(changed, Err(PluginError::InvalidInput(_))));
        assert_eq!(host.outbox().len(), 1);
    }
}
