//! One slow plugin must not stall the rest: tokenize and health latency over
//! real HTTP while 32 five-year forecasts are in flight.
//!
//! `cargo bench -p outpost --bench load` measures 200 tokenize requests at
//! 10 a second, first on an idle node and then under load, and prints p50,
//! p99 and the process's thread count. Without `--bench` (as
//! `cargo test --benches` runs it) it makes 20 requests, to check it works.
//!
//! The reference forecaster asks for one call at a time. To see what a
//! larger share costs the other plugins, `FORECASTER_CONCURRENCY=N` installs
//! it with `limits.concurrency = N` instead.

mod common;

use bytes::Bytes;
use common::Target;
use outpost::api;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeOptions};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FORECASTS_IN_FLIGHT: usize = 32;
const FIVE_YEARS_OF_DAYS: usize = 5 * 365;

fn five_year_forecast() -> Bytes {
    let shape = [42.0, 38.0, 40.0, 45.0, 58.0, 75.0, 61.0];
    let observations: Vec<Value> = (0..FIVE_YEARS_OF_DAYS)
        .map(|t| {
            let value = shape[t % 7] + 0.01 * t as f64 + ((t * 37) % 11) as f64 - 5.0;
            json!({ "at": 1_600_000_000 + t as i64 * 86_400, "value": value })
        })
        .collect();
    Bytes::from(
        json!({ "request": {
            "history": { "item": "bread", "unit": "loaves", "interval": "day",
                         "observations": observations },
            "horizon": 14, "coverage": 0.8 } })
        .to_string(),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn threads() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:").map(|n| n.trim().to_string()))
        })
        .unwrap_or_else(|| "?".into())
}

/// `requests` tokenize calls and as many health checks, 10 a second.
async fn measure(target: &Target, requests: usize) -> (Vec<Duration>, Vec<Duration>) {
    let card = Bytes::from(
        json!({ "card": { "pan": "4111111111111111", "expiry_month": 12,
                          "expiry_year": 2030, "security_code": "123" } })
        .to_string(),
    );
    let mut tokenize = Vec::with_capacity(requests);
    let mut health = Vec::with_capacity(requests);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..requests {
        tick.tick().await;
        let started = Instant::now();
        let status = target
            .exchange("POST", "/v1/payments/tokenize", &card)
            .await
            .0;
        assert!(status.is_success(), "tokenize answered {status}");
        tokenize.push(started.elapsed());
        let started = Instant::now();
        assert!(
            target
                .exchange("GET", "/v1/health", &Bytes::new())
                .await
                .0
                .is_success()
        );
        health.push(started.elapsed());
    }
    tokenize.sort();
    health.sort();
    (tokenize, health)
}

fn report(label: &str, tokenize: &[Duration], health: &[Duration]) {
    println!(
        "{label:<32} tokenize p50 {:>9.3?} p99 {:>9.3?} | health p50 {:>9.3?} p99 {:>9.3?} | threads {}",
        percentile(tokenize, 0.5),
        percentile(tokenize, 0.99),
        percentile(health, 0.5),
        percentile(health, 0.99),
        threads(),
    );
}

/// The reference forecaster's package, with `limits.concurrency` set to
/// `share` if given.
fn forecaster_package(share: Option<String>) -> tempfile::TempDir {
    let from = Path::new(outpost_plugin_artifacts::FORECASTER.package_dir);
    let copy = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(from).expect("package") {
        let path = entry.expect("entry").path();
        let target = copy.path().join(path.file_name().expect("name"));
        std::fs::copy(&path, &target).expect("copy");
    }
    if let Some(share) = share {
        let manifest = copy.path().join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let text = text.replace("concurrency = 1", &format!("concurrency = {share}"));
        std::fs::write(&manifest, text).expect("manifest");
    }
    copy
}

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let requests = if measuring { 200 } else { 20 };
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::open(NodeOptions::resolve(dir.path(), None).expect("config")).expect("node");
    let tokenizer = PluginId::parse("outpost/card-tokenizer").expect("id");
    node.keystore()
        .provision(&tokenizer, "card-token", None, false)
        .expect("key");
    outpost::updates::install(
        &node,
        Path::new(outpost_plugin_artifacts::CARD_TOKENIZER.package_dir),
    )
    .expect("installs");
    let share = std::env::var("FORECASTER_CONCURRENCY").ok();
    let forecaster = forecaster_package(share.filter(|share| !share.is_empty()));
    outpost::updates::install(&node, forecaster.path()).expect("installs");
    let node = Arc::new(node);
    // Three runtimes, as on a stall: the node's (two workers, as `outpost
    // run`), the load's (the till and back office sending forecasts) and the
    // probe's (the till taking a card), so that the probe's latency is the
    // node's, not a queue in a shared client.
    let runtime = |workers: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (node_runtime, load_runtime) = (runtime(2), runtime(1));
    let probe_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let token = api::load_or_create_token(&node).expect("token");
    let listener = node_runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    node_runtime.spawn(api::serve(
        node.clone(),
        listener,
        token.clone(),
        std::future::pending(),
    ));
    let target = |runtime: &tokio::runtime::Runtime| {
        let _entered = runtime.enter();
        Arc::new(Target::new(&base, &token))
    };
    let probe = target(&probe_runtime);

    let (tokenize, health) = probe_runtime.block_on(measure(&probe, requests));
    report("idle node", &tokenize, &health);

    let stop = Arc::new(AtomicBool::new(false));
    let forecasts = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let body = five_year_forecast();
    let loader = target(&load_runtime);
    let mut load = Vec::new();
    for _ in 0..FORECASTS_IN_FLIGHT {
        let (target, stop, body) = (loader.clone(), stop.clone(), body.clone());
        let (forecasts, refused) = (forecasts.clone(), refused.clone());
        load.push(load_runtime.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = target.exchange("POST", "/v1/forecasts", &body).await.0;
                if status.is_success() {
                    forecasts.fetch_add(1, Ordering::Relaxed);
                } else {
                    // A full share answers 503 at once; come back shortly.
                    refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (tokenize, health) = probe_runtime.block_on(measure(&probe, requests));
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    report(
        &format!("{FORECASTS_IN_FLIGHT} five-year forecasts running"),
        &tokenize,
        &health,
    );
    load_runtime.block_on(async {
        for task in load {
            let _ = task.await;
        }
    });
    println!(
        "forecasts meanwhile: {:.1}/s answered, {:.1}/s refused busy",
        forecasts.load(Ordering::Relaxed) as f64 / elapsed,
        refused.load(Ordering::Relaxed) as f64 / elapsed,
    );
}
