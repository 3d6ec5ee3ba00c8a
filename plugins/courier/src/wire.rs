//! The courier's JSON API, as this adapter speaks it.
//!
//! `POST /v1/rates` → [`RatesResponse`]; `POST /v1/shipments` with an
//! `Idempotency-Key` header → [`ShipmentResponse`] (201, or 200 when the key
//! was seen before with the same body); `GET /v1/tracking/{number}` →
//! [`TrackingResponse`]; `DELETE /v1/shipments/{id}` → 204. Errors are
//! `{"error": "..."}` with a 4xx or 5xx status. The node's
//! `outpost::virtual_courier` serves this API on loopback for demos and tests.

use outpost_sdk::types;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    pub lines: Vec<String>,
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl From<&types::Address> for Address {
    fn from(a: &types::Address) -> Address {
        Address {
            name: a.name.clone(),
            company: a.company.clone(),
            lines: a.lines.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone(),
            email: a.email.clone(),
        }
    }
}

impl From<&Address> for types::Address {
    fn from(a: &Address) -> types::Address {
        types::Address {
            name: a.name.clone(),
            company: a.company.clone(),
            lines: a.lines.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone(),
            email: a.email.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    pub weight_grams: u32,
    pub length_mm: u32,
    pub width_mm: u32,
    pub height_mm: u32,
    pub description: String,
}

impl From<&types::Parcel> for Parcel {
    fn from(p: &types::Parcel) -> Parcel {
        Parcel {
            weight_grams: p.weight_grams,
            length_mm: p.length_mm,
            width_mm: p.width_mm,
            height_mm: p.height_mm,
            description: p.description.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RatesRequest<'a> {
    pub account: &'a str,
    pub from: Address,
    pub to: Address,
    pub parcels: Vec<Parcel>,
    pub ready_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Rate {
    pub service_code: String,
    pub service_name: String,
    pub price_minor: i64,
    pub currency: String,
    pub transit_days_min: u16,
    pub transit_days_max: u16,
}

#[derive(Debug, Deserialize)]
pub struct RatesResponse {
    pub carrier: String,
    pub rates: Vec<Rate>,
    pub valid_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentRequest {
    pub account: String,
    pub service_code: String,
    pub reference: String,
    pub from: Address,
    pub to: Address,
    pub parcels: Vec<Parcel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentResponse {
    pub shipment_id: String,
    pub carrier: String,
    pub service_code: String,
    pub service_name: String,
    pub tracking_numbers: Vec<String>,
    #[serde(default)]
    pub collection_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct TrackingEvent {
    pub at: i64,
    pub status: String,
    #[serde(default)]
    pub location: Option<String>,
    pub description: String,
}

#[derive(Debug, Deserialize)]
pub struct TrackingResponse {
    pub tracking_number: String,
    pub status: String,
    pub events: Vec<TrackingEvent>,
    #[serde(default)]
    pub estimated_delivery: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
}

/// The courier's own words from an error body, or the body's start.
pub fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(error) => error.error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}
