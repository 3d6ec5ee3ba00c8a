//! The delivery worker: sends what is due, records what happened.
//!
//! Each attempt is one HTTP request with the message's method, content type
//! and payload, plus `Idempotency-Key`. The answer decides what follows:
//!
//! | answer                                | then                                  |
//! |---------------------------------------|---------------------------------------|
//! | 2xx                                   | delivered; the body is kept           |
//! | 408, 425, 429, 5xx, no connection, timeout | retry after a backoff (or `Retry-After`) |
//! | any other status (4xx, 3xx)           | dead: the destination refused it      |
//! | the last allowed attempt fails        | dead: out of attempts                 |
//!
//! Redirects are not followed: a message goes to the destination that was
//! checked against the owner's grant, nowhere else.
//!
//! Backoff is exponential with "equal jitter": the n-th failure waits a random
//! time between half and all of `initial × 2^(n-1)`, capped at the maximum,
//! so a fleet of nodes coming back online does not retry in lockstep.

use super::Outbox;
use crate::config::OutboxSettings;
use crate::install::now_millis;
use crate::store::{AttemptOutcome, OutboxEntry};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// The longest the worker sleeps without looking at the queue again.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// How often settled messages past their keep time are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The most of an answer's body read.
const MAX_ANSWER_BYTES: usize = crate::store::MAX_RESPONSE_BYTES;

/// The wait before attempt `failures + 1`, before jitter.
pub fn backoff(settings: &OutboxSettings, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    let millis = settings
        .initial_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.max_backoff_ms);
    Duration::from_millis(millis)
}

/// `backoff` with equal jitter: somewhere in its upper half.
fn jittered(base: Duration) -> Duration {
    let mut random = [0u8; 8];
    let fraction = match getrandom::fill(&mut random) {
        Ok(()) => (u64::from_le_bytes(random) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    };
    base.mul_f64(0.5 + fraction / 2.0)
}

/// Runs until `shutdown` resolves. Attempts cut short by shutdown are made
/// again after the next start: the entry is still pending on disk.
pub async fn run(
    outbox: Arc<Outbox>,
    settings: OutboxSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut in_flight: JoinSet<u64> = JoinSet::new();
    let mut busy: HashSet<u64> = HashSet::new();
    let mut last_prune: Option<tokio::time::Instant> = None;
    let concurrency = settings.concurrency.max(1) as usize;
    loop {
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let keep = Duration::from_secs(settings.keep_settled_hours.saturating_mul(3600));
            let before = now_millis().saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(0));
            let store_outbox = outbox.clone();
            match tokio::task::spawn_blocking(move || store_outbox.store().outbox_prune(before))
                .await
            {
                Ok(Ok(0)) | Err(_) => {}
                Ok(Ok(pruned)) => tracing::info!("forgot {pruned} settled outbox messages"),
                Ok(Err(error)) => tracing::warn!("cannot prune the outbox: {error}"),
            }
        }

        let mut wait = IDLE_CHECK;
        if in_flight.len() < concurrency {
            let now = now_millis();
            let lookup = outbox.clone();
            let limit = concurrency + busy.len();
            let due = tokio::task::spawn_blocking(move || {
                let due = lookup.store().outbox_due(now, limit)?;
                let next = lookup.store().outbox_next_due()?;
                Ok::<_, crate::store::StoreError>((due, next))
            })
            .await;
            match due {
                Ok(Ok((due, next))) => {
                    for (entry, payload) in due {
                        if in_flight.len() >= concurrency {
                            break;
                        }
                        if busy.insert(entry.id) {
                            in_flight.spawn(deliver(
                                outbox.clone(),
                                settings.clone(),
                                entry,
                                payload,
                            ));
                        }
                    }
                    if let Some(next) = next
                        && next > now
                    {
                        wait = Duration::from_millis(next - now).min(IDLE_CHECK);
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!("cannot read the outbox: {error}");
                    wait = Duration::from_secs(5);
                }
                Err(_) => return,
            }
        }

        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok(id) = joined {
                    busy.remove(&id);
                }
            }
            () = outbox.woken() => {}
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => {
                in_flight.abort_all();
                return;
            }
        }
    }
}

/// One attempt at `entry`, recorded before returning its id.
async fn deliver(
    outbox: Arc<Outbox>,
    settings: OutboxSettings,
    entry: OutboxEntry,
    payload: Vec<u8>,
) -> u64 {
    let id = entry.id;
    let timeout = Duration::from_millis(settings.attempt_timeout_ms);
    let answer = tokio::time::timeout(timeout, send(&entry, payload, timeout)).await;
    let attempt = entry.attempts + 1;
    let last_attempt = attempt >= settings.max_attempts;
    let now = now_millis();
    let retry_at = |after: Duration| now + u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
    let outcome = match answer {
        Ok(Ok(answer)) if (200..300).contains(&answer.status) => AttemptOutcome::Delivered {
            status: answer.status,
            body: answer.body,
        },
        Ok(Ok(answer)) => {
            let retryable = matches!(answer.status, 408 | 425 | 429) || answer.status >= 500;
            let error = format!("{} answered {}", entry.destination, answer.status);
            if retryable && !last_attempt {
                let wait = answer
                    .retry_after
                    .unwrap_or_else(|| jittered(backoff(&settings, attempt)))
                    .min(Duration::from_millis(settings.max_backoff_ms));
                AttemptOutcome::Retry {
                    status: Some(answer.status),
                    body: answer.body,
                    error,
                    retry_at_ms: retry_at(wait),
                }
            } else {
                let error = if retryable {
                    format!("gave up after {attempt} attempts; last: {error}")
                } else {
                    format!("refused: {error}")
                };
                AttemptOutcome::Dead {
                    status: Some(answer.status),
                    body: answer.body,
                    error,
                }
            }
        }
        failed => {
            let error = match failed {
                Ok(Err(error)) => error,
                _ => format!("no answer within {}ms", settings.attempt_timeout_ms),
            };
            if last_attempt {
                AttemptOutcome::Dead {
                    status: None,
                    body: Vec::new(),
                    error: format!("gave up after {attempt} attempts; last: {error}"),
                }
            } else {
                AttemptOutcome::Retry {
                    status: None,
                    body: Vec::new(),
                    error,
                    retry_at_ms: retry_at(jittered(backoff(&settings, attempt))),
                }
            }
        }
    };
    let describe = match &outcome {
        AttemptOutcome::Delivered { status, .. } => format!("delivered ({status})"),
        AttemptOutcome::Retry { error, .. } => format!("will retry: {error}"),
        AttemptOutcome::Dead { error, .. } => format!("dead: {error}"),
    };
    let recorder = outbox.clone();
    let recorded =
        tokio::task::spawn_blocking(move || recorder.store().outbox_record(id, outcome, now)).await;
    match recorded {
        Ok(Ok(_)) => {
            tracing::info!(target: "outpost::outbox", id, owner = %entry.owner, attempt, "{describe}")
        }
        Ok(Err(error)) => tracing::warn!(id, "cannot record an outbox attempt: {error}"),
        Err(_) => {}
    }
    id
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

async fn send(entry: &OutboxEntry, payload: Vec<u8>, timeout: Duration) -> Result<Answer, String> {
    let uri: hyper::Uri = entry
        .destination
        .parse()
        .map_err(|e| format!("bad destination: {e}"))?;
    let authority = uri
        .authority()
        .map(|a| a.to_string())
        .ok_or("the destination has no host")?;
    let body = Full::new(Bytes::from(payload))
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = hyper::Request::builder()
        .method(entry.method.as_str())
        .uri(uri)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, &entry.content_type)
        .header("idempotency-key", &entry.idempotency_key)
        .header(
            hyper::header::USER_AGENT,
            concat!("outpost/", env!("CARGO_PKG_VERSION")),
        )
        .body(body)
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let options = wasmtime_wasi_http::RequestOptions {
        connect_timeout: Some(timeout),
        first_byte_timeout: Some(timeout),
        between_bytes_timeout: Some(timeout),
    };
    let (response, connection) = wasmtime_wasi_http::default_send_request(request, Some(options))
        .await
        .map_err(|e| format!("{}: {e}", entry.destination))?;
    let driver = tokio::spawn(connection);
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes().to_vec(),
        // An answer whose status arrived counts even if its body is cut or
        // too long: keep what fits.
        Err(_) => Vec::new(),
    };
    driver.abort();
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_jitter_stays_in_the_upper_half() {
        let settings = OutboxSettings {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            ..OutboxSettings::default()
        };
        let waits: Vec<u64> = (1..=6)
            .map(|n| backoff(&settings, n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        for _ in 0..100 {
            let wait = jittered(Duration::from_millis(800));
            assert!(wait >= Duration::from_millis(400) && wait <= Duration::from_millis(800));
        }
    }
}
