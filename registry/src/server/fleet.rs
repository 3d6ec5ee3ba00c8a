//! The fleet's routes for nodes: `POST /fleet/v1/enrol`,
//! `GET /fleet/v1/nodes/<id>/desired-state` (signed by the node; answered
//! 304 when the node already has the newest version), and
//! `POST /fleet/v1/reports` (one report, signed in its body).

use super::{Handled, Registry, method_not_allowed, read_body, refuse, respond, with_header};
use crate::desired;
use crate::fleet::report::{self, ReportError};
use crate::fleet::{self, EnrolRequest, FleetError};
use crate::rollout::RolloutError;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::sync::Arc;

/// An enrolment request is a key, a name and a few labels.
const MAX_ENROL_BYTES: u64 = 16 << 10;
/// A report is a few short fields and a reason of at most a few hundred
/// characters (longer ones are cut when stored).
const MAX_REPORT_BYTES: u64 = 16 << 10;

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
            "reports" => {
                if request.method() != Method::POST {
                    return Err(method_not_allowed("POST"));
                }
                let body = read_body(request, MAX_REPORT_BYTES).await?;
                let now = crate::store::now_seconds();
                let accepted = report::accept(&self.store, &body, now).map_err(report_refusal)?;
                let body = serde_json::to_vec(&accepted).map_err(|e| {
                    refuse(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
                })?;
                Ok(with_header(
                    respond(StatusCode::OK, body),
                    "content-type",
                    "application/json",
                ))
            }
            _ if route.starts_with("nodes/") => {
                match route
                    .strip_prefix("nodes/")
                    .and_then(|rest| rest.strip_suffix("/desired-state"))
                {
                    Some(id) if !id.is_empty() && !id.contains('/') => {
                        self.desired_state(&request, id)
                    }
                    _ => Err(super::not_found(&format!("/fleet/v1/{route}"))),
                }
            }
            other => Err(super::not_found(&format!("/fleet/v1/{other}"))),
        }
    }
}

impl Registry {
    /// Which rollouts reach which node, rebuilt when the fleet moved on.
    fn desired_index(&self) -> Result<Arc<desired::Index>, super::Refusal> {
        let revision = self.store.fleet_revision()?;
        let mut slot = self
            .desired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(index) = slot.as_ref()
            && index.revision == revision
        {
            return Ok(index.clone());
        }
        // Rebuilt under the lock: one rebuild per revision, not one per
        // request that saw it move.
        let rollouts = self.store.rollouts()?.into_values().collect();
        let index = Arc::new(desired::Index::new(revision, rollouts));
        *slot = Some(index.clone());
        Ok(index)
    }

    /// `GET /fleet/v1/nodes/<id>/desired-state`.
    fn desired_state(&self, request: &Request<Incoming>, id: &str) -> Handled {
        if request.method() != Method::GET {
            return Err(method_not_allowed("GET"));
        }
        let now = crate::store::now_seconds();
        let authorization = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (signer, _) = fleet::check_request(
            &self.store,
            &self.verifying,
            authorization,
            "GET",
            request.uri().path(),
            now,
        )
        .map_err(fleet_refusal)?;
        if signer != id {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "DENIED",
                format!("node {signer} cannot read node {id}'s desired state"),
            ));
        }
        self.last_seen.saw(id, now);
        let (version, releases) = self.desired_index()?.for_node(id);
        let etag = format!("\"{version}\"");
        let unchanged = request
            .headers()
            .get(hyper::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == etag);
        if unchanged {
            return Ok(with_header(
                respond(StatusCode::NOT_MODIFIED, bytes::Bytes::new()),
                "etag",
                &etag,
            ));
        }
        let Some(director) = &self.online.director else {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "this registry has no director key (it was made before fleets); the central team rotates its root to add one",
            ));
        };
        let state = desired::DesiredState {
            kind: desired::DESIRED_STATE_TYPE.into(),
            node: id.to_string(),
            version,
            expires: now + desired::LIFETIME_SECONDS,
            releases,
        };
        let body = crate::tuf::canonical(&desired::sign(state, &[director]));
        Ok(with_header(
            with_header(respond(StatusCode::OK, body), "etag", &etag),
            "content-type",
            "application/json",
        ))
    }
}

fn fleet_refusal(error: FleetError) -> super::Refusal {
    let status = match &error {
        FleetError::UnknownToken
        | FleetError::TokenUsed { .. }
        | FleetError::TokenExpired { .. }
        | FleetError::Unauthenticated(_)
        | FleetError::ClockSkew { .. } => StatusCode::UNAUTHORIZED,
        FleetError::BadProof | FleetError::NotActive(_) => StatusCode::FORBIDDEN,
        FleetError::AlreadyEnrolled { .. } => StatusCode::CONFLICT,
        FleetError::Store(_) | FleetError::Random(_) => {
            tracing::error!("a fleet request failed: {error}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let code = match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "DENIED",
        _ => "FLEET_REFUSED",
    };
    refuse(status, code, error.to_string())
}

/// Statuses a node's outbox reads: 4xx is final (the report is a dead
/// letter the operator sees), 5xx is tried again.
fn report_refusal(error: ReportError) -> super::Refusal {
    match error {
        ReportError::Fleet(error) => fleet_refusal(error),
        ReportError::Malformed(_) | ReportError::WrongRelease { .. } => {
            refuse(StatusCode::BAD_REQUEST, "REPORT_INVALID", error.to_string())
        }
        ReportError::Rollout(RolloutError::Unknown(_)) => {
            refuse(StatusCode::NOT_FOUND, "NAME_UNKNOWN", error.to_string())
        }
        ReportError::Rollout(RolloutError::NotInRollout { .. }) => {
            refuse(StatusCode::FORBIDDEN, "DENIED", error.to_string())
        }
        ReportError::Rollout(RolloutError::Fleet(error)) => fleet_refusal(error),
        ReportError::Rollout(other) => {
            tracing::error!("a node's report could not be recorded: {other}");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                other.to_string(),
            )
        }
    }
}
