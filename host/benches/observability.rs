//! What watching a node costs: the metrics on the call path (against the
//! call itself, measured in the same run), one scrape of `/metrics` with four
//! plugins installed, and the size of a node-day of telemetry on the wire.
//!
//! `cargo bench -p outpost --bench observability`. Besides criterion's
//! estimates it prints the ratio and the sizes.

use criterion::{Criterion, criterion_group, criterion_main};
use outpost::bindings::printer::DocumentKind;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeOptions};
use outpost::telemetry::{Consent, rollup};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn node_with(dir: &Path, packages: &[&str]) -> Node {
    let node = Node::open(NodeOptions::resolve(dir, None).expect("config")).expect("node");
    let tokenizer = PluginId::parse("outpost/card-tokenizer").expect("id");
    node.keystore()
        .provision(&tokenizer, "card-token", None, false)
        .expect("key");
    for package in packages {
        outpost::updates::install(&node, Path::new(package)).expect("installs");
    }
    node
}

/// The mean of `runs` calls of `work`.
fn mean(runs: u32, mut work: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..runs {
        work();
    }
    started.elapsed() / runs
}

fn metrics(c: &mut Criterion) {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node_with(
        dir.path(),
        &[
            outpost_plugin_artifacts::THERMAL_PRINTER.package_dir,
            outpost_plugin_artifacts::CARD_TOKENIZER.package_dir,
            outpost_plugin_artifacts::COURIER.package_dir,
            outpost_plugin_artifacts::FORECASTER.package_dir,
        ],
    );
    let driver = node.printer_driver(None).expect("driver");
    let call = || {
        node.status_request(&driver, DocumentKind::Label)
            .expect("calls")
            .request
            .len()
    };
    let meter = node.metrics().call_meter("outpost/thermal-printer");
    let took = Duration::from_micros(11);
    let record = || meter.record(black_box(took), None);

    // The ratio from one run, interleaved, so the machine's drift moves both.
    let (rounds, calls, records) = if measuring {
        (10, 20_000, 2_000_000)
    } else {
        (1, 10, 10)
    };
    let mut call_time = Duration::ZERO;
    let mut record_time = Duration::ZERO;
    for _ in 0..rounds {
        call_time += mean(calls, || {
            black_box(call());
        });
        record_time += mean(records, record);
    }
    eprintln!(
        "metrics on the call path: {:.0} ns a call, against {:.2} µs for the call itself: {:.2}%",
        record_time.as_nanos() as f64 / f64::from(rounds),
        call_time.as_nanos() as f64 / f64::from(rounds) / 1000.0,
        record_time.as_secs_f64() / call_time.as_secs_f64() * 100.0
    );

    let scrape = || outpost::metrics::scrape::render(&node).expect("renders");
    let text = scrape();
    eprintln!(
        "/metrics with 4 plugins: {} bytes, {} series",
        text.len(),
        text.lines().filter(|l| !l.starts_with('#')).count()
    );

    // A node-day: 288 rollups of five minutes, shipped in 64 KiB batches.
    let lines = rollup::parse(&text);
    for consent in [Consent::Aggregate, Consent::WithPluginDetail] {
        let one =
            rollup::build(&lines, consent, "0123456789abcdef0123456789abcdef", 0).expect("built");
        let day: Vec<Vec<u8>> = (0..288u64)
            .map(|i| {
                rollup::build(
                    &lines,
                    consent,
                    "0123456789abcdef0123456789abcdef",
                    i * 300_000,
                )
                .expect("built")
            })
            .collect();
        let mut wire = 0;
        let mut batch: Vec<u8> = Vec::new();
        for message in &day {
            if !batch.is_empty() && batch.len() + message.len() > 64 << 10 {
                wire += snap::raw::Encoder::new()
                    .compress_vec(&batch)
                    .expect("compress")
                    .len();
                batch.clear();
            }
            batch.extend_from_slice(message);
        }
        wire += snap::raw::Encoder::new()
            .compress_vec(&batch)
            .expect("compress")
            .len();
        eprintln!(
            "telemetry, {}: {} bytes a rollup; a node-day {} KiB kept, {} KiB on the wire",
            consent.name(),
            one.len(),
            day.iter().map(Vec::len).sum::<usize>() >> 10,
            wire >> 10
        );
    }

    let mut group = c.benchmark_group("observability");
    group.bench_function("status-request call", |b| b.iter(call));
    group.bench_function("its metrics (CallMeter::record)", |b| b.iter(record));
    group.bench_function("scrape /metrics, 4 plugins", |b| b.iter(scrape));
    group.finish();
}

criterion_group!(benches, metrics);
criterion_main!(benches);
