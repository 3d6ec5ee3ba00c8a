//! The offline kinds through the node, and the outbox's durable enqueue.
//!
//! `cargo bench -p outpost --bench trading`. Besides criterion's estimates it
//! prints the forecaster's wasm / native ratio from one interleaved run.
//!
//! - tokenize: `POST /v1/payments/tokenize` answered in-process by the API's
//!   router (JSON in, route, WIT conversion, sandbox, keystore HMAC, JSON
//!   out; everything but the socket).
//! - forecast: the reference forecaster's `model::forecast` compiled natively
//!   and the same crate as a plugin called through the node with the same
//!   series (56 and 365 days of regular demand, 56 days of intermittent).
//! - outbox: `Outbox::enqueue` one at a time (a durable commit each), from 8
//!   threads at once (group commit shares commits), and `enqueue_batch` of 64.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use outpost::api;
use outpost::dynamic;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeOptions};
use outpost::outbox::Outbox;
use outpost::store::{NewMessage, NodeStore, OutboxMethod};
use serde_json::{Value, json};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn node_with(dir: &Path, packages: &[&str]) -> Arc<Node> {
    let options = NodeOptions::resolve(dir, None).expect("config");
    let node = Node::open(options).expect("node");
    let tokenizer = PluginId::parse("outpost/card-tokenizer").expect("id");
    node.keystore()
        .provision(&tokenizer, "card-token", None, false)
        .expect("key");
    for package in packages {
        outpost::updates::install(&node, Path::new(package)).expect("installs");
    }
    Arc::new(node)
}

fn tokenize(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node_with(
        dir.path(),
        &[outpost_plugin_artifacts::CARD_TOKENIZER.package_dir],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = Bytes::from(
        json!({ "card": { "pan": "4111111111111111", "expiry_month": 12,
                          "expiry_year": 2030, "security_code": "123" } })
        .to_string(),
    );
    let request = || {
        hyper::Request::builder()
            .method("POST")
            .uri("/v1/payments/tokenize")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .expect("request")
    };
    let mut group = c.benchmark_group("tokenize");
    group.bench_function("POST /v1/payments/tokenize, in-process", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = api::handle_in_process(node.clone(), request()).await;
                assert!(response.status().is_success());
                black_box(response.into_body().collect().await.expect("body"));
            })
        })
    });
    group.finish();
}

/// Daily demand with a weekly shape, a trend and a fixed wobble.
fn regular(days: usize) -> Vec<f64> {
    let shape = [42.0, 38.0, 40.0, 45.0, 58.0, 75.0, 61.0];
    (0..days)
        .map(|t| shape[t % 7] + 0.15 * t as f64 + ((t * 37) % 11) as f64 - 5.0)
        .collect()
}

/// A slow mover: something sells about one day in three.
fn intermittent(days: usize) -> Vec<f64> {
    (0..days)
        .map(|t| {
            if (t * 7) % 3 == 0 {
                ((t % 4) + 1) as f64
            } else {
                0.0
            }
        })
        .collect()
}

/// 2025-10-09, a Thursday, midnight UTC.
const FIRST_DAY: i64 = 20_370 * 86_400;

fn request(values: &[f64], horizon: usize) -> Value {
    let observations: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(t, v)| json!({ "at": FIRST_DAY + t as i64 * 86_400, "value": v }))
        .collect();
    json!({
        "history": { "item": "bench", "unit": "units", "interval": "day",
                     "observations": observations },
        "horizon": horizon,
        "coverage": 0.8,
    })
}

fn forecast(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node_with(
        dir.path(),
        &[outpost_plugin_artifacts::FORECASTER.package_dir],
    );
    let plugin = node
        .loaded(&PluginId::parse("outpost/forecaster").expect("id"))
        .expect("loaded");
    // A year with Tuesdays and Wednesdays closed (sent as zeros, no
    // calendar: the forecaster finds the closed days itself). FIRST_DAY is
    // a Thursday, so t % 7 of 5 and 6 are Tuesday and Wednesday.
    let closed_two_days: Vec<f64> = regular(365)
        .into_iter()
        .enumerate()
        .map(|(t, v)| if matches!(t % 7, 5 | 6) { 0.0 } else { v })
        .collect();
    let series = [
        ("regular, 56 days", regular(56)),
        ("regular, 365 days", regular(365)),
        ("closed two weekdays, 365 days", closed_two_days),
        ("intermittent, 56 days", intermittent(56)),
    ];
    let horizon = 14;
    let through_node = |argument: &Value| {
        dynamic::call_for_api(
            &node,
            &plugin,
            "forecasting.forecast",
            std::slice::from_ref(argument),
        )
        .expect("forecast")
    };
    // Backtest included: the forecaster tries five methods on every call.
    let native = |values: &[f64]| {
        let mut request = forecaster::model::Request::daily(values, horizon, 0.8);
        for (at, _) in &mut request.observations {
            *at += FIRST_DAY;
        }
        forecaster::model::forecast(&request).expect("forecast")
    };

    let mut group = c.benchmark_group("forecast");
    for (name, values) in &series {
        let argument = request(values, horizon);
        // Same model, same answers: the comparison is fair.
        let wasm = through_node(&argument);
        let local = native(values);
        let first = wasm["points"][0]["expected"].as_f64().expect("expected");
        assert!((first - local.points[0].expected).abs() < 1e-9);
        group.bench_with_input(BenchmarkId::new("native", name), values, |b, values| {
            b.iter(|| black_box(native(values)))
        });
        group.bench_with_input(
            BenchmarkId::new("plugin through the node", name),
            &argument,
            |b, argument| b.iter(|| black_box(through_node(argument))),
        );
    }
    group.finish();

    // The ratio from one run, interleaved so machine noise hits both alike.
    println!(
        "\nforecast, wasm plugin through the node / native (medians of 200 interleaved calls):"
    );
    for (name, values) in &series {
        let argument = request(values, horizon);
        let (mut wasm, mut local) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let started = Instant::now();
            black_box(through_node(&argument));
            wasm.push(started.elapsed());
            let started = Instant::now();
            black_box(native(values));
            local.push(started.elapsed());
        }
        wasm.sort();
        local.sort();
        let (wasm, local) = (wasm[100], local[100]);
        println!(
            "  {name:<22} plugin {wasm:>10.1?}  native {local:>10.1?}  ratio {:.2}x (target <= 1.5x)",
            wasm.as_secs_f64() / local.as_secs_f64()
        );
    }
}

fn message(counter: &AtomicU64) -> NewMessage {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    NewMessage {
        owner: "bench/outbox".into(),
        destination: "http://127.0.0.1:9/v1/events".into(),
        method: OutboxMethod::Post,
        content_type: "application/json".into(),
        payload: format!("{{\"sale\": {n}, \"amount\": 1250, \"currency\": \"EUR\"}}").into_bytes(),
        idempotency_key: format!("bench-{n}"),
        max_pending: u32::MAX,
        max_kept_bytes: u64::MAX,
    }
}

fn outbox(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(NodeStore::open(&dir.path().join("outbox.redb")).expect("store"));
    let outbox = Arc::new(Outbox::new(store));
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("outbox enqueue, durable");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    group.throughput(Throughput::Elements(1));
    group.bench_function("one at a time", |b| {
        b.iter(|| outbox.enqueue(message(&counter)).expect("enqueued"))
    });

    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 16;
    group.throughput(Throughput::Elements(THREADS * PER_THREAD));
    group.bench_function("8 threads at once (group commit)", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..THREADS {
                    scope.spawn(|| {
                        for _ in 0..PER_THREAD {
                            outbox.enqueue(message(&counter)).expect("enqueued");
                        }
                    });
                }
            })
        })
    });

    const BATCH: u64 = 64;
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("batches of 64", |b| {
        b.iter(|| {
            let messages: Vec<NewMessage> = (0..BATCH).map(|_| message(&counter)).collect();
            let results = outbox.enqueue_batch(&messages).expect("committed");
            assert!(results.iter().all(Result::is_ok));
        })
    });
    group.finish();
}

criterion_group!(benches, tokenize, forecast, outbox);
criterion_main!(benches);
