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
//! | a retryable failure after `give-up-after-hours` of trying (or `max-attempts`, if set) | dead: given up |
//!
//! Redirects are not followed: a message goes to the destination that was
//! checked against the owner's grant, nowhere else.
//!
//! Backoff is exponential with "equal jitter": the n-th failure waits a random
//! time between half and all of `initial × 2^(n-1)`, capped at the maximum,
//! so a fleet of nodes coming back online does not retry in lockstep.
//!
//! The wall clock is not trusted for waiting. The give-up age is the time
//! the worker spent on an entry (`tried_for_ms`: the waits it scheduled plus
//! the attempts, timed monotonically), so setting the clock forward cannot
//! kill a message; and no entry is left due further ahead than the longest
//! back-off, so setting it back cannot strand one.
//!
//! The node's own database failing is treated like a destination failing:
//! an attempt whose outcome could not be recorded is not made again before a
//! back-off, a queue that cannot be read is read again after a growing wait,
//! and the warnings about either are rate-limited.

use super::Outbox;
use crate::config::OutboxSettings;
use crate::log_limit::{LogLimit, held_back};
use crate::store::{AttemptOutcome, OutboxEntry};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The longest the worker sleeps without looking at the queue again; also
/// the longest wait between reads of a queue that cannot be read.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// How often settled messages past their keep time are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The most of an answer's body read.
const MAX_ANSWER_BYTES: usize = crate::store::MAX_RESPONSE_BYTES;
/// How often a repeating warning is logged again.
const WARN_EVERY: Duration = Duration::from_secs(60);

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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a delivery task hands back to the worker.
struct Finished {
    id: u64,
    /// Why the attempt's outcome could not be recorded, if it could not.
    unrecorded: Option<String>,
}

/// Runs until `shutdown` resolves. Attempts cut short by shutdown are made
/// again after the next start: the entry is still pending on disk.
pub async fn run(
    outbox: Arc<Outbox>,
    settings: OutboxSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut in_flight: JoinSet<Finished> = JoinSet::new();
    let mut busy: HashSet<u64> = HashSet::new();
    // Entries sent whose outcome could not be recorded, and when they may be
    // sent again. On disk they are still due, so without this they would be
    // sent again at once, for as long as the database fails.
    let mut held: HashMap<u64, Instant> = HashMap::new();
    let mut record_failures: u32 = 0;
    let mut read_failures: u32 = 0;
    let mut record_warnings = LogLimit::new(WARN_EVERY);
    let mut read_warnings = LogLimit::new(WARN_EVERY);
    let mut reschedule_warnings = LogLimit::new(WARN_EVERY);
    let mut last_prune: Option<Instant> = None;
    let concurrency = settings.concurrency.max(1) as usize;
    loop {
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let keep = Duration::from_secs(settings.keep_settled_hours.saturating_mul(3600));
            let before = outbox.now_ms().saturating_sub(millis(keep));
            let store_outbox = outbox.clone();
            match tokio::task::spawn_blocking(move || store_outbox.store().outbox_prune(before))
                .await
            {
                Ok(Ok(0)) | Err(_) => {}
                Ok(Ok(pruned)) => tracing::info!("forgot {pruned} settled outbox messages"),
                Ok(Err(error)) => tracing::warn!(
                    "cannot forget settled outbox messages: {error}; trying again in an hour"
                ),
            }
        }

        let mut wait = IDLE_CHECK;
        let started = Instant::now();
        held.retain(|_, until| *until > started);
        let cut = outbox.network().is_cut();
        if cut {
            // A drill: nothing goes out; the cut's end wakes the loop.
            wait = outbox
                .network()
                .remaining()
                .unwrap_or(IDLE_CHECK)
                .min(IDLE_CHECK);
        }
        if !cut && in_flight.len() < concurrency {
            let now = outbox.now_ms();
            let latest = now.saturating_add(settings.max_backoff_ms);
            let lookup = outbox.clone();
            let limit = concurrency + busy.len() + held.len();
            let read = tokio::task::spawn_blocking(move || {
                // Not fatal: a database that cannot write (a full disk) can
                // still deliver what is due; the far entries wait for it.
                let moved = lookup.store().outbox_bring_forward(latest);
                let (due, next) = lookup.due(now, limit)?;
                Ok::<_, crate::store::StoreError>((due, next, moved))
            })
            .await;
            match read {
                Ok(Ok((due, next, moved))) => {
                    if read_failures > 0 {
                        tracing::info!("the outbox can be read again");
                        read_failures = 0;
                        read_warnings.reset();
                    }
                    match moved {
                        Ok(0) => {}
                        Ok(moved) => tracing::warn!(
                            "{moved} outbox messages were due more than outbox.max-backoff-ms \
                             ({} ms) from now, so the clock was ahead when they were scheduled; \
                             they are due within that time instead",
                            settings.max_backoff_ms
                        ),
                        Err(error) => {
                            if let Some(suppressed) = reschedule_warnings.allow() {
                                tracing::warn!(
                                    "cannot bring forward outbox messages due beyond \
                                     outbox.max-backoff-ms (the clock was ahead?): {error}; \
                                     trying again with every look at the queue{}",
                                    held_back(suppressed)
                                );
                            }
                        }
                    }
                    for (entry, payload) in due {
                        if in_flight.len() >= concurrency {
                            break;
                        }
                        if held.contains_key(&entry.id) {
                            continue;
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
                    read_failures = read_failures.saturating_add(1);
                    wait = backoff(&settings, read_failures).min(IDLE_CHECK);
                    if let Some(suppressed) = read_warnings.allow() {
                        tracing::warn!(
                            "cannot read the outbox: {error}; nothing is sent until it can be \
                             read, trying again within {}s{}",
                            IDLE_CHECK.as_secs(),
                            held_back(suppressed)
                        );
                    }
                }
                Err(_) => return,
            }
        }
        if let Some(until) = held.values().min() {
            wait = wait.min(until.saturating_duration_since(started));
        }

        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok(finished) = joined {
                    busy.remove(&finished.id);
                    match finished.unrecorded {
                        None if record_failures > 0 => {
                            tracing::info!("outbox attempts are recorded again");
                            record_failures = 0;
                            record_warnings.reset();
                        }
                        None => {}
                        Some(error) => {
                            record_failures = record_failures.saturating_add(1);
                            let hold = backoff(&settings, record_failures);
                            held.insert(finished.id, Instant::now() + hold);
                            if let Some(suppressed) = record_warnings.allow() {
                                tracing::warn!(
                                    id = finished.id,
                                    "cannot record an outbox attempt: {error}; the message is \
                                     sent again in {}s, and is safe to repeat (same \
                                     Idempotency-Key){}",
                                    hold.as_secs_f64(),
                                    held_back(suppressed)
                                );
                            }
                        }
                    }
                }
            }
            () = outbox.woken() => {}
            () = outbox.network().restored(), if cut => {}
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => {
                in_flight.abort_all();
                return;
            }
        }
    }
}

/// What the attempt at `entry` comes to, given the answer (or why there was
/// none), how long it took, and the wall clock `now_ms`.
fn outcome(
    settings: &OutboxSettings,
    entry: &OutboxEntry,
    answer: Result<Answer, String>,
    took: Duration,
    now_ms: u64,
) -> AttemptOutcome {
    let attempt = entry.attempts.saturating_add(1);
    let (status, body, error, retry_after) = match answer {
        Ok(answer) if (200..300).contains(&answer.status) => {
            return AttemptOutcome::Delivered {
                status: answer.status,
                body: answer.body,
            };
        }
        Ok(answer) => {
            let error = format!("{} answered {}", entry.destination, answer.status);
            let retryable = matches!(answer.status, 408 | 425 | 429) || answer.status >= 500;
            if !retryable {
                return AttemptOutcome::Dead {
                    status: Some(answer.status),
                    body: answer.body,
                    error: format!("refused: {error}"),
                };
            }
            (Some(answer.status), answer.body, error, answer.retry_after)
        }
        Err(error) => (None, Vec::new(), error, None),
    };
    let tried_for = entry.tried_for_ms.saturating_add(millis(took));
    let give_up_after = settings.give_up_after_hours.saturating_mul(3_600_000);
    let out_of_attempts = settings.max_attempts != 0 && attempt >= settings.max_attempts;
    // The node's reports to its fleet are never given up: a node back
    // after more than `give-up-after-hours` offline still owes them, and
    // each is a few hundred bytes.
    let fleet_report = entry.owner == crate::fleet::report::FLEET_OWNER;
    if (tried_for >= give_up_after || out_of_attempts) && !fleet_report {
        let why = if out_of_attempts {
            "outbox.max-attempts"
        } else {
            "outbox.give-up-after-hours"
        };
        return AttemptOutcome::Dead {
            status,
            body,
            error: format!(
                "not delivered, never refused: gave up after {attempt} attempts over {:.1} \
                 hours ({why}); last: {error}",
                tried_for as f64 / 3_600_000.0
            ),
        };
    }
    // `Retry-After` may ask for a longer wait, never a shorter one: with no
    // attempt limit, `Retry-After: 0` would otherwise be a request (and a
    // commit) as fast as the destination answers, for days.
    let backed_off = jittered(backoff(settings, attempt));
    let wait = retry_after
        .map_or(backed_off, |asked| asked.max(backed_off))
        .min(Duration::from_millis(settings.max_backoff_ms));
    AttemptOutcome::Retry {
        status,
        body,
        error,
        retry_at_ms: now_ms.saturating_add(millis(wait)),
        spent_ms: millis(took).saturating_add(millis(wait)),
    }
}

/// One attempt at `entry`, recorded before returning.
async fn deliver(
    outbox: Arc<Outbox>,
    settings: OutboxSettings,
    entry: OutboxEntry,
    payload: Vec<u8>,
) -> Finished {
    let id = entry.id;
    let timeout = Duration::from_millis(settings.attempt_timeout_ms);
    let started = Instant::now();
    let answer = match tokio::time::timeout(timeout, send(&outbox, &entry, payload, timeout)).await
    {
        Ok(answer) => answer,
        Err(_) => Err(format!(
            "no answer within {}ms",
            settings.attempt_timeout_ms
        )),
    };
    if answer.is_ok() {
        // Something answered: the network is there. The update agent
        // checks the registry now if its last check could not reach it.
        outbox.network_answered.notify_waiters();
    }
    let now = outbox.now_ms();
    let outcome = outcome(&settings, &entry, answer, started.elapsed(), now);
    let attempt = entry.attempts.saturating_add(1);
    let dead = matches!(outcome, AttemptOutcome::Dead { .. });
    let result = match &outcome {
        AttemptOutcome::Delivered { .. } => "delivered",
        AttemptOutcome::Retry { .. } => "retry",
        AttemptOutcome::Dead { .. } => "dead",
    };
    let describe = match &outcome {
        AttemptOutcome::Delivered { status, .. } => format!("delivered ({status})"),
        AttemptOutcome::Retry { error, .. } => format!("will retry: {error}"),
        AttemptOutcome::Dead { error, .. } => format!(
            "dead: {error}. It waits for an operator: `outpost outbox retry {id}` once the \
             cause is fixed, or `outpost outbox drop {id}`"
        ),
    };
    let recorder = outbox.clone();
    let recorded = tokio::task::spawn_blocking(move || recorder.record(id, outcome, now)).await;
    if matches!(recorded, Ok(Ok(_))) {
        let centre =
            entry.owner == super::NODE_OWNER || entry.owner == crate::fleet::report::FLEET_OWNER;
        let metrics = &outbox.metrics;
        metrics.outbox_attempt(&entry.destination, result, centre);
        if result == "delivered" {
            let waited = Duration::from_millis(now.saturating_sub(entry.enqueued_at_ms));
            metrics.delivered_for(&entry.owner, waited);
        }
    }
    let unrecorded = match recorded {
        Ok(Ok(_)) if dead => {
            tracing::warn!(target: "outpost::outbox", id, owner = %entry.owner, attempt, "{describe}");
            None
        }
        Ok(Ok(_)) => {
            tracing::info!(target: "outpost::outbox", id, owner = %entry.owner, attempt, "{describe}");
            None
        }
        Ok(Err(error)) => Some(error.to_string()),
        Err(error) => Some(format!("the recording task failed: {error}")),
    };
    Finished { id, unrecorded }
}

/// A fleet report goes to the fleet's registry over the node's own TLS
/// trust (the system's roots, or the CA provisioned with `trust init`),
/// which a plugin's messages do not get.
async fn send_report(
    outbox: &Outbox,
    entry: &OutboxEntry,
    payload: Vec<u8>,
) -> Result<Answer, String> {
    let url = url::Url::parse(&entry.destination).map_err(|e| format!("bad destination: {e}"))?;
    let tls = crate::releases::client_tls(outbox.store()).map_err(|e| e.to_string())?;
    let (status, body) =
        outpost_registry::fleet::post_report(&url, &tls, payload, &entry.idempotency_key)
            .await
            .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        body,
        retry_after: None,
    })
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

async fn send(
    outbox: &Outbox,
    entry: &OutboxEntry,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, String> {
    if entry.owner == crate::fleet::report::FLEET_OWNER {
        return send_report(outbox, entry, payload).await;
    }
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
    use crate::store::{DATABASE_FILE_NAME, DeliveryState, NewMessage, NodeStore, OutboxMethod};
    use crate::virtual_courier::{Behaviour, VirtualCourier};
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;

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

    const HOUR_MS: u64 = 3_600_000;

    fn pending(attempts: u32, enqueued_at_ms: u64, tried_for_ms: u64) -> OutboxEntry {
        OutboxEntry {
            id: 7,
            owner: "acme/courier".into(),
            destination: "http://127.0.0.1:9/v1/shipments".into(),
            method: OutboxMethod::Post,
            content_type: "application/json".into(),
            idempotency_key: "k".into(),
            fingerprint: String::new(),
            payload_bytes: 2,
            state: DeliveryState::Pending,
            attempts,
            enqueued_at_ms,
            next_attempt_at_ms: enqueued_at_ms,
            last_attempt_at_ms: None,
            settled_at_ms: None,
            response_status: None,
            last_error: None,
            tried_for_ms,
            kept_bytes: 0,
            kept_limit_bytes: u64::MAX,
        }
    }

    #[test]
    fn retry_after_can_lengthen_the_wait_but_never_shorten_it() {
        let settings = OutboxSettings::default();
        let now = 1_000 * HOUR_MS;
        let took = Duration::from_millis(5);
        let answer = |seconds| {
            Ok(Answer {
                status: 503,
                body: Vec::new(),
                retry_after: Some(Duration::from_secs(seconds)),
            })
        };
        // The fifth failure backs off at least half of 16 s.
        let entry = pending(4, now, 0);
        let floor = backoff(&settings, 5).as_millis() as u64 / 2;
        for (seconds, at_least) in [(0, floor), (120, 120_000)] {
            match outcome(&settings, &entry, answer(seconds), took, now) {
                AttemptOutcome::Retry { retry_at_ms, .. } => {
                    assert!(retry_at_ms >= now + at_least, "Retry-After: {seconds}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    async fn courier_that_is(behaviour: Behaviour) -> VirtualCourier {
        let courier = VirtualCourier::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("courier starts");
        courier.set(behaviour).await.expect("behaviour set");
        courier
    }

    fn refused_connection() -> Result<Answer, String> {
        Err("http://127.0.0.1:9/v1/shipments: connection refused".into())
    }

    #[test]
    fn the_default_policy_gives_up_on_an_unreachable_destination_only_after_a_week() {
        let settings = OutboxSettings::default();
        let now = 1_000 * HOUR_MS;
        let took = Duration::from_millis(20);
        // Hundreds of attempts, days of trying: still retried.
        let six_days = pending(2_000, now - 144 * HOUR_MS, 144 * HOUR_MS);
        let next = outcome(&settings, &six_days, refused_connection(), took, now);
        let AttemptOutcome::Retry {
            retry_at_ms,
            spent_ms,
            ..
        } = next
        else {
            panic!("gave up after six days: {next:?}");
        };
        assert!(retry_at_ms > now && retry_at_ms <= now + settings.max_backoff_ms);
        assert_eq!(
            spent_ms,
            20 + (retry_at_ms - now),
            "the attempt and the wait"
        );
        // A 503 is no refusal either.
        let unavailable = Ok(Answer {
            status: 503,
            body: b"busy".to_vec(),
            retry_after: None,
        });
        assert!(matches!(
            outcome(&settings, &six_days, unavailable, took, now),
            AttemptOutcome::Retry { .. }
        ));

        // A week of trying: dead, saying it was never refused.
        let week = pending(2_100, now - 168 * HOUR_MS, 168 * HOUR_MS - 10);
        match outcome(&settings, &week, refused_connection(), took, now) {
            AttemptOutcome::Dead { status, error, .. } => {
                assert_eq!(status, None);
                assert!(error.contains("never refused"), "{error}");
                assert!(error.contains("give-up-after-hours"), "{error}");
            }
            other => panic!("still retried after a week: {other:?}"),
        }
        // A refusal is dead at once.
        let refused = Ok(Answer {
            status: 422,
            body: b"no".to_vec(),
            retry_after: None,
        });
        assert!(matches!(
            outcome(&settings, &pending(0, now, 0), refused, took, now),
            AttemptOutcome::Dead {
                status: Some(422),
                ..
            }
        ));
    }

    #[test]
    fn a_clock_set_a_year_forward_does_not_age_a_message_to_death() {
        let settings = OutboxSettings::default();
        let enqueued = 1_000 * HOUR_MS;
        // Ten minutes of trying, then the clock jumps a year ahead.
        let entry = pending(5, enqueued, 600_000);
        let a_year_later = enqueued + 365 * 24 * HOUR_MS;
        let next = outcome(
            &settings,
            &entry,
            refused_connection(),
            Duration::from_millis(5),
            a_year_later,
        );
        assert!(
            matches!(next, AttemptOutcome::Retry { .. }),
            "the jump killed it: {next:?}"
        );
    }

    /// A node database in a temporary directory, its outbox, and `count`
    /// messages for `destination`.
    fn outbox_with(destination: &str, count: usize) -> (tempfile::TempDir, Arc<Outbox>, Vec<u64>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let outbox = Arc::new(Outbox::new(Arc::new(store)));
        let messages: Vec<NewMessage> = (0..count)
            .map(|n| NewMessage {
                owner: "acme/courier".into(),
                destination: format!("{destination}/v1/shipments"),
                method: OutboxMethod::Post,
                content_type: "application/json".into(),
                payload: format!("{{\"n\":{n}}}").into_bytes(),
                idempotency_key: format!("key-{n}"),
                max_pending: 100,
                max_kept_bytes: u64::MAX,
            })
            .collect();
        let ids = outbox
            .enqueue_batch(&messages)
            .expect("commit")
            .into_iter()
            .map(|r| r.expect("enqueued").id)
            .collect();
        (dir, outbox, ids)
    }

    fn entry(outbox: &Outbox, id: u64) -> OutboxEntry {
        outbox
            .store()
            .outbox_entry(id)
            .expect("reads")
            .expect("exists")
    }

    /// A running worker, stopped by [`Worker::stop`].
    struct Worker {
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Worker {
        fn start(outbox: &Arc<Outbox>, settings: OutboxSettings) -> Worker {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(run(outbox.clone(), settings, async move {
                let _ = stopped.await;
            }));
            Worker { stop, task }
        }

        async fn stop(self) {
            let _ = self.stop.send(());
            self.task.await.expect("the worker ends");
        }
    }

    /// Waits until `done` holds, looking every 20 ms; panics after a minute,
    /// which only a worker that never gets there needs.
    async fn until(mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker never got there"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the worker until `done` holds.
    async fn run_until(outbox: &Arc<Outbox>, settings: OutboxSettings, done: impl FnMut() -> bool) {
        let worker = Worker::start(outbox, settings);
        until(done).await;
        worker.stop().await;
    }

    /// Log lines written on this thread while the guard lives.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
            let logs = Logs::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            (logs, tracing::subscriber::set_default(subscriber))
        }

        fn lines(&self, level: &str, containing: &str) -> usize {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|line| line.contains(level) && line.contains(containing))
                .count()
        }
    }

    #[tokio::test]
    async fn an_attempt_that_cannot_be_recorded_is_not_sent_again_until_a_backoff() {
        let (logs, _guard) = Logs::capture();
        let courier = courier_that_is(Behaviour::Failing(503)).await;
        let (_dir, outbox, ids) = outbox_with(&courier.url(), 4);
        outbox
            .test_seams
            .fail_records
            .store(true, Ordering::Relaxed);
        let settings = OutboxSettings {
            initial_backoff_ms: 500,
            max_backoff_ms: 10_000,
            ..OutboxSettings::default()
        };

        // Each message goes out once; then, for a while longer, none again.
        let worker = Worker::start(&outbox, settings);
        let mut quiet_since = None;
        until(|| {
            if courier.requests() < 4 {
                return false;
            }
            let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
            since.elapsed() >= Duration::from_millis(300)
        })
        .await;
        let sent = courier.requests();
        assert!(
            sent <= 8,
            "{sent} requests for 4 messages whose outcomes could not be recorded"
        );
        let warnings = logs.lines("WARN", "cannot record an outbox attempt");
        assert_eq!(warnings, 1, "the repeats are held back");
        for id in &ids {
            assert_eq!(entry(&outbox, *id).attempts, 0, "nothing was recorded");
        }

        // The database recovers: every attempt is made again and recorded.
        outbox
            .test_seams
            .fail_records
            .store(false, Ordering::Relaxed);
        until(|| ids.iter().all(|id| entry(&outbox, *id).attempts >= 1)).await;
        worker.stop().await;
        assert_eq!(logs.lines("INFO", "outbox attempts are recorded again"), 1);
    }

    #[tokio::test]
    async fn a_queue_that_cannot_be_read_is_read_again_after_growing_waits() {
        let (logs, _guard) = Logs::capture();
        let (_dir, outbox, _) = outbox_with("http://127.0.0.1:9", 1);
        // The enqueue left a wake-up for the worker; it would read at once.
        outbox.woken().await;
        outbox.test_seams.fail_reads.store(true, Ordering::Relaxed);
        let settings = OutboxSettings {
            initial_backoff_ms: 20,
            ..OutboxSettings::default()
        };
        let reads = || {
            outbox
                .test_seams
                .reads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        };
        run_until(&outbox, settings, || reads().len() >= 6).await;
        let reads = reads();
        // A sleep never ends early, so each gap is at least its wait.
        for (n, pair) in reads.windows(2).enumerate() {
            let at_least = Duration::from_millis(20 << n);
            assert!(pair[1] - pair[0] >= at_least, "read {n}: {reads:?}");
        }
        assert_eq!(
            logs.lines("WARN", "cannot read the outbox"),
            1,
            "the repeats are held back"
        );
    }

    #[tokio::test]
    async fn a_destination_down_for_longer_than_the_old_attempt_limit_is_still_retried() {
        let courier = courier_that_is(Behaviour::Down).await;
        let (_dir, outbox, ids) = outbox_with(&courier.url(), 1);
        // The default policy, with the waits shrunk to keep the test short.
        let settings = OutboxSettings {
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..OutboxSettings::default()
        };
        run_until(&outbox, settings, || {
            let entry = entry(&outbox, ids[0]);
            entry.attempts >= 20 || entry.state != DeliveryState::Pending
        })
        .await;
        let entry = entry(&outbox, ids[0]);
        assert_eq!(entry.state, DeliveryState::Pending, "{entry:?}");
        assert!(entry.tried_for_ms > 0, "{entry:?}");
    }

    #[tokio::test]
    async fn giving_up_is_a_warning() {
        let (logs, _guard) = Logs::capture();
        let courier = courier_that_is(Behaviour::Down).await;
        let (_dir, outbox, ids) = outbox_with(&courier.url(), 1);
        let settings = OutboxSettings {
            max_attempts: 2,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            ..OutboxSettings::default()
        };
        run_until(&outbox, settings, || {
            entry(&outbox, ids[0]).state == DeliveryState::Dead
        })
        .await;
        assert_eq!(logs.lines("WARN", "dead: not delivered, never refused"), 1);
        assert_eq!(logs.lines("WARN", "outpost outbox retry 1"), 1);
    }

    #[tokio::test]
    async fn messages_queued_while_the_clock_was_a_year_ahead_go_out_once_it_is_put_right() {
        let courier = courier_that_is(Behaviour::Failing(503)).await;
        let year_ms = 365 * 24 * HOUR_MS;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = NodeStore::open(&dir.path().join(DATABASE_FILE_NAME)).expect("opens");
        let outbox = Arc::new(Outbox::new(Arc::new(store)));
        outbox
            .test_seams
            .clock_offset_ms
            .store(year_ms as i64, Ordering::Relaxed);
        let queued = outbox
            .enqueue(NewMessage {
                owner: "acme/courier".into(),
                destination: format!("{}/v1/shipments", courier.url()),
                method: OutboxMethod::Post,
                content_type: "application/json".into(),
                payload: b"{}".to_vec(),
                idempotency_key: "ahead".into(),
                max_pending: 10,
                max_kept_bytes: u64::MAX,
            })
            .expect("enqueued");
        outbox
            .test_seams
            .clock_offset_ms
            .store(0, Ordering::Relaxed);
        let settings = OutboxSettings {
            initial_backoff_ms: 50,
            max_backoff_ms: 200,
            ..OutboxSettings::default()
        };
        run_until(&outbox, settings.clone(), || {
            entry(&outbox, queued.id).attempts >= 1
        })
        .await;
        let entry = entry(&outbox, queued.id);
        assert!(
            entry.next_attempt_at_ms <= outbox.now_ms() + settings.max_backoff_ms,
            "{entry:?}"
        );
    }
}
