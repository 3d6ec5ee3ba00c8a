//! The fleet's routes for nodes: `POST /fleet/v1/enrol`.

use super::{Handled, Registry, method_not_allowed, read_body, refuse, respond, with_header};
use crate::fleet::{self, EnrolRequest, FleetError};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

/// An enrolment request is a key, a name and a few labels.
const MAX_ENROL_BYTES: u64 = 16 << 10;

impl Registry {
    pub(super) async fn fleet(&self, request: Request<Incoming>, route: &str) -> Handled {
        match route {
            "enrol" => {
                if request.method() != Method::POST {
                    return Err(method_not_allowed("POST"));
                }
                let body = read_body(request, MAX_ENROL_BYTES).await?;
                let enrol: EnrolRequest = serde_json::from_slice(&body).map_err(|e| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "ENROL_INVALID",
                        format!("the enrolment request is not valid: {e}"),
                    )
                })?;
                let node = fleet::enrol(&self.store, &enrol).map_err(fleet_refusal)?;
                tracing::info!(node = %node.id, name = %node.name, labels = ?node.labels, "node enrolled");
                let body = serde_json::to_vec(&node).map_err(|e| {
                    refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
                })?;
                Ok(with_header(
                    respond(StatusCode::CREATED, body),
                    "content-type",
                    "application/json",
                ))
            }
            other => Err(super::not_found(&format!("/fleet/v1/{other}"))),
        }
    }
}

fn fleet_refusal(error: FleetError) -> super::Refusal {
    let status = match &error {
        FleetError::UnknownToken
        | FleetError::TokenUsed { .. }
        | FleetError::TokenExpired { .. } => StatusCode::UNAUTHORIZED,
        FleetError::BadProof => StatusCode::FORBIDDEN,
        FleetError::AlreadyEnrolled { .. } => StatusCode::CONFLICT,
        FleetError::Store(_) | FleetError::Random(_) => {
            tracing::error!("enrolment failed: {error}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let code = if status == StatusCode::UNAUTHORIZED {
        "UNAUTHORIZED"
    } else {
        "ENROL_REFUSED"
    };
    refuse(status, code, error.to_string())
}
