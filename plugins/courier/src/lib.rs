//! Outpost's reference courier adapter.
//!
//! Quotes come from the courier's rate API, or from an offline rate card when
//! the courier cannot be reached. A booking goes straight to the courier when
//! it answers; when it does not, the adapter hands the very same request to
//! the node's outbox under the same idempotency key and returns the booking
//! `queued`. The courier therefore sees each booking once, however many times
//! it is sent (a timeout after the courier did book it, the outbox's
//! retries): it deduplicates by key. `booking-status` turns a queued booking
//! into a confirmed one from the outbox's record of the courier's answer.

pub mod wire;

use outpost_sdk::courier_adapter::{
    Barcode, Booking, BookingRequest, BookingState, Courier, HealthReport, HealthStatus,
    LabelMedia, Lifecycle, PluginInfo, Quote, QuoteRequest, ShippingLabel, Symbology, Tracking,
    TrackingEvent, TrackingStatus,
};
use outpost_sdk::http::{HttpError, Request, Response};
use outpost_sdk::outbox::{self, DeliveryState};
use outpost_sdk::types::{Address, Money, Parcel, PluginError};
use outpost_sdk::{config, kv};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const DEFAULT_API: &str = "http://127.0.0.1:7280";
/// How long one request to the courier may take before the adapter treats
/// the courier as unreachable (the call's own deadline is 3 s).
const COURIER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Offline quotes stay valid this long.
const OFFLINE_QUOTE_SECONDS: i64 = 3600;

struct CourierAdapter;

fn api_url() -> String {
    config::get("api-url")
        .unwrap_or_else(|| DEFAULT_API.to_string())
        .trim_end_matches('/')
        .to_string()
}

fn account() -> String {
    config::get("account").unwrap_or_else(|| "outpost-demo".to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A booking as this adapter keeps it, by reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BookingRecord {
    request: wire::ShipmentRequest,
    idempotency_key: String,
    confirmed: Option<wire::ShipmentResponse>,
    outbox_id: Option<u64>,
}

fn record_key(reference: &str) -> String {
    format!("booking/{reference}")
}

fn load(reference: &str) -> Result<Option<BookingRecord>, PluginError> {
    match kv::get(&record_key(reference))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PluginError::internal(format!("stored booking {reference}: {e}"))),
    }
}

fn save(record: &BookingRecord) -> Result<(), PluginError> {
    let bytes = serde_json::to_vec(record)
        .map_err(|e| PluginError::internal(format!("cannot encode a booking: {e}")))?;
    kv::set(&record_key(&record.request.reference), &bytes)?;
    Ok(())
}

fn check_reference(reference: &str) -> Result<(), PluginError> {
    let valid = !reference.is_empty()
        && reference.len() <= 64
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(PluginError::invalid_input(
            "reference: 1 to 64 letters, digits, '-' or '_'",
        ))
    }
}

fn check_address(address: &Address, field: &str) -> Result<(), PluginError> {
    let missing =
        |part: &str| PluginError::invalid_input(format!("{field}.{part}: must not be empty"));
    if address.name.trim().is_empty() {
        return Err(missing("name"));
    }
    if address.lines.iter().all(|l| l.trim().is_empty()) {
        return Err(missing("lines"));
    }
    if address.city.trim().is_empty() {
        return Err(missing("city"));
    }
    if address.postal_code.trim().is_empty() {
        return Err(missing("postal-code"));
    }
    if address.country.len() != 2 || !address.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(PluginError::invalid_input(format!(
            "{field}.country: {:?} is not an ISO 3166 code such as \"GB\"",
            address.country
        )));
    }
    Ok(())
}

fn check_parcels(parcels: &[Parcel]) -> Result<(), PluginError> {
    if parcels.is_empty() {
        return Err(PluginError::invalid_input("parcels: at least one parcel"));
    }
    if parcels.len() > 20 {
        return Err(PluginError::invalid_input(
            "parcels: at most 20 per shipment",
        ));
    }
    for (index, parcel) in parcels.iter().enumerate() {
        if parcel.weight_grams == 0 || parcel.weight_grams > 70_000 {
            return Err(PluginError::invalid_input(format!(
                "parcels[{index}].weight-grams: 1 to 70000"
            )));
        }
        if parcel.length_mm == 0 || parcel.width_mm == 0 || parcel.height_mm == 0 {
            return Err(PluginError::invalid_input(format!(
                "parcels[{index}]: length, width and height must be more than 0 mm"
            )));
        }
        if let Some(value) = &parcel.declared_value
            && (!value.has_valid_currency() || value.minor_units < 0)
        {
            return Err(PluginError::invalid_input(format!(
                "parcels[{index}].declared-value: a non-negative amount in an ISO 4217 currency"
            )));
        }
    }
    Ok(())
}

/// A transient failure: worth queueing or falling back for.
fn unreachable(result: &Result<Response, HttpError>) -> Option<String> {
    match result {
        Err(error) if error.is_transient() => Some(error.to_string()),
        Ok(response) if matches!(response.status, 408 | 429) || response.status >= 500 => {
            Some(format!("the courier answered {}", response.status))
        }
        _ => None,
    }
}

/// A refusal that is not transient, as the error the caller should see.
fn refused(result: Result<Response, HttpError>, what: &str) -> PluginError {
    match result {
        Err(error) => error.into(),
        Ok(response) => {
            let text = wire::error_text(&response.body);
            match response.status {
                401 | 403 => {
                    PluginError::denied(format!("the courier refused the account: {text}"))
                }
                _ => PluginError::invalid_input(format!("the courier refused the {what}: {text}")),
            }
        }
    }
}

fn parse<T: for<'a> Deserialize<'a>>(body: &[u8], what: &str) -> Result<T, PluginError> {
    serde_json::from_slice(body).map_err(|e| {
        PluginError::unavailable(format!(
            "the courier's {what} is not what its API says: {e}"
        ))
    })
}

fn offline_rate_card() -> Vec<wire::Rate> {
    let rate = |code: &str, name: &str, price, min, max| wire::Rate {
        service_code: code.into(),
        service_name: name.into(),
        price_minor: price,
        currency: config::get("currency").unwrap_or_else(|| "EUR".into()),
        transit_days_min: min,
        transit_days_max: max,
    };
    vec![
        rate("STD", "Standard", 650, 2, 4),
        rate("EXP", "Express next day", 1150, 1, 1),
    ]
}

fn label_media() -> Result<LabelMedia, PluginError> {
    Ok(LabelMedia {
        width_mm: config::parse("label-width-mm")?.unwrap_or(100),
        height_mm: config::parse("label-height-mm")?.unwrap_or(150),
        dots_per_mm: config::parse("label-dots-per-mm")?.unwrap_or(8),
    })
}

/// Whether the courier's last answer refused the booking itself: a 4xx,
/// other than those asking to try again later.
fn refused_by_courier(status: Option<u16>) -> bool {
    status.is_some_and(|status| (400..500).contains(&status) && !matches!(status, 408 | 425 | 429))
}

fn booking_of(record: &BookingRecord, detail: Option<String>) -> Result<Booking, PluginError> {
    let request = &record.request;
    let booking_id = format!("bk-{}", request.reference);
    let Some(confirmed) = &record.confirmed else {
        return Ok(Booking {
            booking_id,
            state: BookingState::Queued,
            carrier: "outpost-sandbox".into(),
            tracking_numbers: Vec::new(),
            labels: Vec::new(),
            collection_at: None,
            detail,
        });
    };
    let media = label_media()?;
    let count = u16::try_from(request.parcels.len()).unwrap_or(u16::MAX);
    let labels = request
        .parcels
        .iter()
        .zip(&confirmed.tracking_numbers)
        .zip(1u16..)
        .map(|((parcel, tracking), number)| ShippingLabel {
            media,
            ship_from: (&request.from).into(),
            ship_to: (&request.to).into(),
            service: format!("{} {}", confirmed.carrier, confirmed.service_name).to_uppercase(),
            reference: request.reference.clone(),
            tracking_number: Some(tracking.clone()),
            weight_grams: Some(parcel.weight_grams),
            parcel_number: number,
            parcel_count: count,
            barcode: Some(Barcode {
                symbology: Symbology::Code128,
                data: tracking.clone(),
            }),
            notes: Vec::new(),
            copies: 1,
        })
        .collect();
    Ok(Booking {
        booking_id,
        state: BookingState::Confirmed,
        carrier: confirmed.carrier.clone(),
        tracking_numbers: confirmed.tracking_numbers.clone(),
        labels,
        collection_at: confirmed.collection_at,
        detail,
    })
}

fn reference_of(booking_id: &str) -> Result<&str, PluginError> {
    booking_id
        .strip_prefix("bk-")
        .filter(|r| check_reference(r).is_ok())
        .ok_or_else(|| {
            PluginError::invalid_input(format!(
                "booking-id: {booking_id:?} is not a booking id from `book`"
            ))
        })
}

impl Lifecycle for CourierAdapter {
    fn info() -> PluginInfo {
        PluginInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Quotes, bookings and tracking with the sandbox courier API".into(),
            support: "https://github.com/outpost-edge/outpost/issues".into(),
        }
    }

    fn health() -> HealthReport {
        match Request::get(&format!("{}/v1/health", api_url()))
            .timeout(COURIER_TIMEOUT)
            .send()
        {
            Ok(response) if response.is_success() => HealthReport {
                status: HealthStatus::Ok,
                detail: format!("courier reachable at {}", api_url()),
            },
            Ok(response) => HealthReport {
                status: HealthStatus::Degraded,
                detail: format!(
                    "the courier answered {}; bookings will queue",
                    response.status
                ),
            },
            Err(HttpError::Denied(why)) => HealthReport {
                status: HealthStatus::Failing,
                detail: format!("api-url {} is not in the http grant: {why}", api_url()),
            },
            Err(error) => HealthReport {
                status: HealthStatus::Degraded,
                detail: format!("courier unreachable ({error}); bookings will queue"),
            },
        }
    }

    fn migrate(_from_version: Option<String>) -> Result<(), PluginError> {
        Ok(())
    }
}

impl Courier for CourierAdapter {
    fn request_quotes(request: QuoteRequest) -> Result<Vec<Quote>, PluginError> {
        check_address(&request.ship_from, "ship-from")?;
        check_address(&request.ship_to, "ship-to")?;
        check_parcels(&request.parcels)?;
        let account = account();
        let body = wire::RatesRequest {
            account: &account,
            from: (&request.ship_from).into(),
            to: (&request.ship_to).into(),
            parcels: request.parcels.iter().map(Into::into).collect(),
            ready_at: request.ready_at,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| PluginError::internal(format!("cannot encode the rate request: {e}")))?;
        let result = Request::post(&format!("{}/v1/rates", api_url()))
            .json(body)
            .timeout(COURIER_TIMEOUT)
            .send();
        let (carrier, rates, valid, offline) = if let Some(why) = unreachable(&result) {
            outpost_sdk::warn!(
                "courier unreachable for quotes ({why}); using the offline rate card"
            );
            (
                "outpost-sandbox".to_string(),
                offline_rate_card(),
                OFFLINE_QUOTE_SECONDS,
                true,
            )
        } else {
            match result {
                Ok(response) if response.is_success() => {
                    let rates: wire::RatesResponse = parse(&response.body, "rate list")?;
                    (rates.carrier, rates.rates, rates.valid_seconds, false)
                }
                other => return Err(refused(other, "quote request")),
            }
        };
        let expires_at = now() + valid;
        Ok(rates
            .into_iter()
            .filter(|rate| {
                request.service_codes.is_empty()
                    || request.service_codes.contains(&rate.service_code)
            })
            .map(|rate| Quote {
                quote_id: format!("{}.{}", rate.service_code, expires_at),
                carrier: carrier.clone(),
                service_name: if offline {
                    format!("{} (offline estimate)", rate.service_name)
                } else {
                    rate.service_name
                },
                service_code: rate.service_code,
                price: Money::new(rate.price_minor, &rate.currency),
                transit_days_min: rate.transit_days_min,
                transit_days_max: rate.transit_days_max,
                expires_at,
            })
            .collect())
    }

    fn book(request: BookingRequest) -> Result<Booking, PluginError> {
        check_reference(&request.reference)?;
        check_address(&request.ship_from, "ship-from")?;
        check_address(&request.ship_to, "ship-to")?;
        check_parcels(&request.parcels)?;
        let (service_code, expires_at) = request
            .quote_id
            .rsplit_once('.')
            .and_then(|(code, at)| Some((code.to_string(), at.parse::<i64>().ok()?)))
            .filter(|(code, _)| !code.is_empty())
            .ok_or_else(|| {
                PluginError::invalid_input("quote-id: not a quote id from request-quotes")
            })?;
        let shipment = wire::ShipmentRequest {
            account: account(),
            service_code,
            reference: request.reference.clone(),
            from: (&request.ship_from).into(),
            to: (&request.ship_to).into(),
            parcels: request.parcels.iter().map(Into::into).collect(),
        };
        if let Some(existing) = load(&request.reference)? {
            if existing.request != shipment {
                return Err(PluginError::invalid_input(format!(
                    "reference: {} was already booked with other details; use a new reference",
                    request.reference
                )));
            }
            return Self::booking_status(format!("bk-{}", request.reference));
        }
        if now() > expires_at {
            return Err(PluginError::invalid_input(
                "quote-id: the quote has expired; ask for new quotes",
            ));
        }
        let payload = serde_json::to_vec(&shipment)
            .map_err(|e| PluginError::internal(format!("cannot encode the booking: {e}")))?;
        let key = format!("outpost-booking-{}", request.reference);
        let url = format!("{}/v1/shipments", api_url());
        let result = Request::post(&url)
            .header("idempotency-key", &key)
            .json(payload.clone())
            .timeout(COURIER_TIMEOUT)
            .send();
        let mut record = BookingRecord {
            request: shipment,
            idempotency_key: key.clone(),
            confirmed: None,
            outbox_id: None,
        };
        if let Some(why) = unreachable(&result) {
            let id = outbox::enqueue(&outbox::post_json(&url, payload, &key))?;
            record.outbox_id = Some(id);
            save(&record)?;
            outpost_sdk::info!(
                "booking {} queued as outbox entry {id}: {why}",
                request.reference
            );
            return booking_of(
                &record,
                Some(format!(
                    "courier unreachable ({why}); queued for delivery as outbox entry {id}"
                )),
            );
        }
        match result {
            Ok(response) if response.is_success() => {
                record.confirmed = Some(parse(&response.body, "booking confirmation")?);
                save(&record)?;
                booking_of(&record, None)
            }
            other => Err(refused(other, "booking")),
        }
    }

    fn booking_status(booking_id: String) -> Result<Booking, PluginError> {
        let reference = reference_of(&booking_id)?;
        let mut record = load(reference)?.ok_or_else(|| {
            PluginError::invalid_input(format!("booking-id: no booking {booking_id}"))
        })?;
        if record.confirmed.is_some() {
            return booking_of(&record, None);
        }
        let delivery = outbox::status(&record.idempotency_key)?.ok_or_else(|| {
            PluginError::internal(format!(
                "booking {booking_id} is queued but the outbox has no record of it"
            ))
        })?;
        match delivery.state {
            DeliveryState::Delivered => {
                record.confirmed = Some(parse(&delivery.response_body, "booking confirmation")?);
                save(&record)?;
                booking_of(&record, None)
            }
            DeliveryState::Pending => booking_of(
                &record,
                Some(match delivery.last_error {
                    Some(error) => format!(
                        "waiting for the courier: {} attempt(s) so far; last: {error}",
                        delivery.attempts
                    ),
                    None => "waiting for the courier".to_string(),
                }),
            ),
            // The courier never judged a booking the outbox gave up on
            // because it could not reach it (an outage past the node's
            // give-up age): calling that `rejected` would tell the customer
            // the courier said no. It is still unbooked and waiting, now for
            // an operator, so it stays `queued`, and the detail says so.
            DeliveryState::Dead if !refused_by_courier(delivery.response_status) => booking_of(
                &record,
                Some(format!(
                    "not booked yet: {}. An operator can send it again with `outpost outbox \
                     retry {}` once the courier is reachable",
                    delivery
                        .last_error
                        .unwrap_or_else(|| "the node stopped trying to reach the courier".into()),
                    delivery.id
                )),
            ),
            DeliveryState::Dead => {
                let mut booking = booking_of(&record, None)?;
                booking.state = outpost_sdk::courier_adapter::BookingState::Rejected;
                let courier_said = if delivery.response_body.is_empty() {
                    String::new()
                } else {
                    format!(
                        " The courier said: {}",
                        wire::error_text(&delivery.response_body)
                    )
                };
                booking.detail = Some(format!(
                    "{}.{courier_said} An operator can retry it with `outpost outbox retry {}`",
                    delivery
                        .last_error
                        .unwrap_or_else(|| "not delivered".into()),
                    delivery.id
                ));
                Ok(booking)
            }
        }
    }

    fn track(tracking_number: String) -> Result<Tracking, PluginError> {
        if tracking_number.is_empty()
            || tracking_number.len() > 64
            || !tracking_number.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(PluginError::invalid_input(
                "tracking-number: 1 to 64 letters and digits",
            ));
        }
        let result = Request::get(&format!("{}/v1/tracking/{tracking_number}", api_url()))
            .timeout(COURIER_TIMEOUT)
            .send();
        if let Some(why) = unreachable(&result) {
            return Err(PluginError::unavailable(format!(
                "cannot reach the courier to track: {why}"
            )));
        }
        let response = result?;
        if response.status == 404 {
            return Err(PluginError::invalid_input(format!(
                "tracking-number: the courier knows no shipment {tracking_number}"
            )));
        }
        if !response.is_success() {
            return Err(refused(Ok(response), "tracking request"));
        }
        let tracking: wire::TrackingResponse = parse(&response.body, "tracking")?;
        Ok(Tracking {
            status: tracking_status(&tracking.status),
            tracking_number: tracking.tracking_number,
            events: tracking
                .events
                .into_iter()
                .map(|event| TrackingEvent {
                    at: event.at,
                    status: tracking_status(&event.status),
                    location: event.location,
                    description: event.description,
                })
                .collect(),
            estimated_delivery: tracking.estimated_delivery,
        })
    }

    fn cancel(booking_id: String) -> Result<(), PluginError> {
        let reference = reference_of(&booking_id)?;
        let record = load(reference)?.ok_or_else(|| {
            PluginError::invalid_input(format!("booking-id: no booking {booking_id}"))
        })?;
        let Some(confirmed) = &record.confirmed else {
            return Err(PluginError::denied(
                "the booking is still queued for the courier; cancel it once it is confirmed",
            ));
        };
        let result = Request::new(
            outpost_sdk::http::Method::Delete,
            &format!("{}/v1/shipments/{}", api_url(), confirmed.shipment_id),
        )
        .timeout(COURIER_TIMEOUT)
        .send();
        if let Some(why) = unreachable(&result) {
            return Err(PluginError::unavailable(format!(
                "cannot reach the courier to cancel: {why}"
            )));
        }
        match result {
            Ok(response) if response.is_success() || response.status == 404 => {
                kv::delete(&record_key(reference))?;
                Ok(())
            }
            Ok(response) if response.status == 409 => Err(PluginError::denied(format!(
                "the courier will not cancel it: {}",
                wire::error_text(&response.body)
            ))),
            other => Err(refused(other, "cancellation")),
        }
    }
}

fn tracking_status(text: &str) -> TrackingStatus {
    match text {
        "in-transit" => TrackingStatus::InTransit,
        "out-for-delivery" => TrackingStatus::OutForDelivery,
        "delivered" => TrackingStatus::Delivered,
        "exception" => TrackingStatus::Exception,
        _ => TrackingStatus::PreTransit,
    }
}

outpost_sdk::export_courier_adapter!(CourierAdapter);
