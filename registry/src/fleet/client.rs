//! The node's side of the fleet's routes: enrolling, and fetching its
//! desired state. Tokens and node-signed requests go over HTTPS only (or
//! to this machine).

use super::{EnrolRequest, NodeView, sign_request};
use crate::keys::KeyPair;
use crate::store::now_seconds;
use crate::tls::ClientTls;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use std::time::Duration;

/// Why a node could not join, or could not read its desired state.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("the registry refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// The largest answer to an enrolment: one node's view.
const MAX_ANSWER_BYTES: usize = 64 << 10;
/// A desired state names a few releases.
const MAX_DESIRED_BYTES: usize = 256 << 10;

/// `path` under `registry`, for the errors too.
fn route(registry: &url::Url, path: &str) -> Result<url::Url, JoinError> {
    registry.join(path).map_err(|e| JoinError::Http {
        url: registry.to_string(),
        detail: e.to_string(),
    })
}

/// Sends `request` to `url` and reads at most `limit` bytes of the answer.
async fn exchange<B>(
    url: &url::Url,
    tls: &ClientTls,
    request: hyper::Request<B>,
    limit: usize,
) -> Result<(hyper::StatusCode, Bytes), JoinError>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |detail: String| JoinError::Http {
        url: url.to_string(),
        detail,
    };
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(tls.connector(Duration::from_secs(10)));
    let response = tokio::time::timeout(Duration::from_secs(30), http.request(request))
        .await
        .map_err(|_| failed("no answer within 30 s".into()))?
        .map_err(|e| failed(crate::tls::connect_failure(&e)))?;
    let status = response.status();
    let answer = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    if !status.is_success() && status != hyper::StatusCode::NOT_MODIFIED {
        return Err(JoinError::Refused {
            status: status.as_u16(),
            message: refusal_message(&answer),
        });
    }
    Ok((status, answer))
}

/// Sends `request` to the registry at `registry`: the node's side of
/// [`super::enrol`].
pub async fn join(
    registry: &url::Url,
    tls: &ClientTls,
    request: &EnrolRequest,
) -> Result<NodeView, JoinError> {
    crate::tls::require_private(registry, "an enrolment token")?;
    let url = route(registry, "fleet/v1/enrol")?;
    let failed = |detail: String| JoinError::Http {
        url: url.to_string(),
        detail,
    };
    let body = serde_json::to_vec(request).map_err(|e| failed(e.to_string()))?;
    let request = hyper::Request::post(url.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| failed(e.to_string()))?;
    let (_, answer) = exchange(&url, tls, request, MAX_ANSWER_BYTES).await?;
    serde_json::from_slice(&answer).map_err(|e| failed(format!("the answer is not a node: {e}")))
}

/// `GET /fleet/v1/nodes/<node>/desired-state`, signed with the node's
/// `key`: the document's bytes, or `None` when the registry answers that
/// `known` (the version the node holds) is still the newest.
pub async fn fetch_desired_state(
    registry: &url::Url,
    tls: &ClientTls,
    key: &KeyPair,
    node: &str,
    known: Option<u64>,
) -> Result<Option<Vec<u8>>, JoinError> {
    crate::tls::require_private(registry, "a node's signed request")?;
    let url = route(registry, &format!("fleet/v1/nodes/{node}/desired-state"))?;
    let authorization = sign_request(key, node, "GET", url.path(), now_seconds());
    let mut request =
        hyper::Request::get(url.as_str()).header(hyper::header::AUTHORIZATION, authorization);
    if let Some(known) = known {
        request = request.header(hyper::header::IF_NONE_MATCH, format!("\"{known}\""));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| JoinError::Http {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    let (status, answer) = exchange(&url, tls, request, MAX_DESIRED_BYTES).await?;
    if status == hyper::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    Ok(Some(answer.to_vec()))
}

/// `POST /fleet/v1/reports`: one signed report (`payload`, a
/// [`super::report::SignedReport`]) from a node's outbox. Returns the
/// status and the body of the answer, refusals included: the outbox
/// decides what a status means (retry, or a dead letter).
pub async fn post_report(
    registry_reports: &url::Url,
    tls: &ClientTls,
    payload: Vec<u8>,
    idempotency_key: &str,
) -> Result<(u16, Vec<u8>), JoinError> {
    crate::tls::require_private(registry_reports, "a node's report")?;
    let request = hyper::Request::post(registry_reports.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", idempotency_key)
        .body(Full::new(Bytes::from(payload)))
        .map_err(|e| JoinError::Http {
            url: registry_reports.to_string(),
            detail: e.to_string(),
        })?;
    match exchange(registry_reports, tls, request, MAX_ANSWER_BYTES).await {
        Ok((status, answer)) => Ok((status.as_u16(), answer.to_vec())),
        Err(JoinError::Refused { status, message }) => Ok((status, message.into_bytes())),
        Err(other) => Err(other),
    }
}

/// The message of an OCI-style error body, or its first bytes.
fn refusal_message(answer: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(answer).chars().take(300).collect())
}
