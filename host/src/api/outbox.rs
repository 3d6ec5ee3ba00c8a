//! The outbox as operators see it over the API: what is queued, what was
//! delivered, what died and why; retry and drop.

use super::errors::ApiError;
use super::{ApiResponse, json_response};
use crate::node::Node;
use crate::store::{DeliveryState, OutboxEntry};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// The most entries one listing returns.
pub const MAX_LIST: usize = 1000;

pub fn parse_state(text: &str) -> Result<DeliveryState, String> {
    match text {
        "pending" => Ok(DeliveryState::Pending),
        "delivered" => Ok(DeliveryState::Delivered),
        "dead" => Ok(DeliveryState::Dead),
        "dropped" => Ok(DeliveryState::Dropped),
        other => Err(format!(
            "state={other:?}: use pending, delivered, dead or dropped"
        )),
    }
}

/// One entry with its payload and the last answer, as text where it is text.
pub fn detail(entry: &OutboxEntry, payload: Option<Vec<u8>>, response: Vec<u8>) -> Value {
    let text = |bytes: Vec<u8>| match String::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(error) => json!(format!("hex:{}", hex::encode(error.into_bytes()))),
    };
    json!({
        "entry": entry,
        "payload": payload.map(text),
        "response_body": if response.is_empty() { Value::Null } else { text(response) },
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ApiError::ShuttingDown)?
        .map_err(|e| ApiError::Store(e.to_string()))
}

fn entry_id(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("{text:?} is not an outbox entry id")))
}

pub async fn route(
    node: &Arc<Node>,
    rest: &[&str],
    method: &Method,
    query: &str,
) -> Result<ApiResponse, ApiError> {
    let outbox = node.outbox().clone();
    match (rest, method) {
        ([], &Method::GET) => {
            let mut state = None;
            let mut limit = 100;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("state", value)) => {
                        state = Some(parse_state(value).map_err(ApiError::BadQuery)?)
                    }
                    Some(("limit", value)) => {
                        limit = value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=MAX_LIST).contains(n))
                            .ok_or_else(|| {
                                ApiError::BadQuery(format!("limit={value:?}: 1 to {MAX_LIST}"))
                            })?
                    }
                    _ => {
                        return Err(ApiError::BadQuery(format!(
                            "unknown query parameter {pair:?}; this route takes state and limit"
                        )));
                    }
                }
            }
            let (entries, counts) = blocking(move || {
                Ok((
                    outbox.store().outbox_list(state, limit)?,
                    outbox.store().outbox_counts()?,
                ))
            })
            .await?;
            let counts: serde_json::Map<String, Value> = counts
                .iter()
                .map(|(state, n)| (state.name().to_string(), json!(n)))
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({ "counts": counts, "entries": entries }),
            ))
        }
        ([id], &Method::GET) => {
            let id = entry_id(id)?;
            let found = blocking(move || {
                let Some(entry) = outbox.store().outbox_entry(id)? else {
                    return Ok(None);
                };
                let payload = outbox.store().outbox_payload(id)?;
                let response = outbox.store().outbox_response(id)?;
                Ok(Some(detail(&entry, payload, response)))
            })
            .await?;
            found
                .map(|body| json_response(StatusCode::OK, &body))
                .ok_or_else(|| ApiError::NotFound(format!("no outbox entry {id}")))
        }
        ([id, "retry"], &Method::POST) => {
            let id = entry_id(id)?;
            let waker = outbox.clone();
            let entry =
                blocking(move || outbox.store().outbox_retry(id, crate::clock::now_millis()))
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("no outbox entry {id}")))?;
            if entry.state != DeliveryState::Pending {
                return Err(ApiError::Conflict(format!(
                    "outbox entry {id} is {}; only dead (or pending) entries can be retried",
                    entry.state.name()
                )));
            }
            waker.wake();
            Ok(json_response(StatusCode::OK, &json!({ "entry": entry })))
        }
        ([id], &Method::DELETE) => {
            let id = entry_id(id)?;
            let entry =
                blocking(move || outbox.store().outbox_drop(id, crate::clock::now_millis()))
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("no outbox entry {id}")))?;
            Ok(json_response(StatusCode::OK, &json!({ "entry": entry })))
        }
        ([], _) => Err(ApiError::MethodNotAllowed("GET")),
        ([_], _) => Err(ApiError::MethodNotAllowed("GET, DELETE")),
        ([_, "retry"], _) => Err(ApiError::MethodNotAllowed("POST")),
        _ => Err(ApiError::NotFound(
            "no such outbox route; see docs/api.md".into(),
        )),
    }
}
