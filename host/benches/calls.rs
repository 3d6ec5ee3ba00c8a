//! The per-call path: a call through the node (fresh sandboxed instance per
//! call) beside the same call made with bare wasmtime on the same engine, and
//! a guest's kv round trip.
//!
//! `cargo bench -p outpost --bench calls`. Besides criterion's estimates, each
//! pair prints per-call percentiles from 20,000 single calls.

use criterion::{Criterion, criterion_group, criterion_main};
use outpost::bindings::printer::{DocumentKind, GuestIndices};
use outpost::config::{EngineSettings, Policy};
use outpost::engine::{EngineKind, Engines};
use outpost::node::{Node, NodeOptions};
use outpost::printing::Document;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What a minimal embedder keeps per store.
struct Bare {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The bare-wasmtime side: the thermal driver linked with plain WASI (its
/// own host imports trap if called; the benchmarked functions call none).
struct BareDriver {
    engines: Engines,
    pre: InstancePre<Bare>,
    printer: GuestIndices,
}

impl BareDriver {
    fn new() -> BareDriver {
        let engines = Engines::new(&EngineSettings::default(), &Policy::default()).expect("engine");
        let engine = engines.get(EngineKind::Plain).expect("engine").clone();
        let component =
            Component::from_file(&engine, outpost_plugin_artifacts::THERMAL_PRINTER.component)
                .expect("the reference driver compiles");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
        stub_outpost_imports(&mut linker, &engine, &component);
        let pre = linker.instantiate_pre(&component).expect("links");
        let printer = GuestIndices::new(&pre).expect("printer exports");
        BareDriver {
            engines,
            pre,
            printer,
        }
    }

    fn store(&self) -> Store<Bare> {
        let engine = self.engines.get(EngineKind::Plain).expect("engine");
        let mut store = Store::new(
            engine,
            Bare {
                ctx: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }

    fn status_request(&self) -> usize {
        let mut store = self.store();
        let instance = self.pre.instantiate(&mut store).expect("instantiates");
        let printer = self.printer.load(&mut store, &instance).expect("loads");
        let probe = printer
            .call_status_request(&mut store, DocumentKind::Label)
            .expect("calls");
        probe.request.len()
    }

    fn parse_status(&self, reply: &[u8]) -> bool {
        let mut store = self.store();
        let instance = self.pre.instantiate(&mut store).expect("instantiates");
        let printer = self.printer.load(&mut store, &instance).expect("loads");
        printer
            .call_parse_status(&mut store, DocumentKind::Label, reply)
            .expect("calls")
            .expect("parses")
            .ready
    }
}

/// Stubs the node's own interfaces with traps. Not wasmtime's
/// `define_unknown_imports_as_traps`: it looks imports up by exact name, so
/// a component built against a newer WASI patch release (`wasi:io/error@0.2.12`
/// where wasmtime defines 0.2.6) gets a stub `error` resource that
/// `wasi:io/streams` (found by semver) does not match, and linking fails.
fn stub_outpost_imports(
    linker: &mut Linker<Bare>,
    engine: &wasmtime::Engine,
    component: &Component,
) {
    use wasmtime::component::types::ComponentItem;
    let ty = component.component_type();
    for (name, import) in ty.imports(engine) {
        if name.starts_with("wasi:") {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            panic!("the driver imports {name}, which is not an interface");
        };
        let mut stubs = linker.instance(name).expect("stub instance");
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let qualified = format!("{name}#{item}");
                    stubs
                        .func_new(item, move |_, _, _, _| {
                            wasmtime::bail!("{qualified} is not provided by the bare embedder")
                        })
                        .expect("stub function");
                }
                ComponentItem::Resource(_) => stubs
                    .resource(
                        item,
                        wasmtime::component::ResourceType::host::<()>(),
                        |_, _| Ok(()),
                    )
                    .expect("stub resource"),
                _ => {}
            }
        }
    }
}

const ZPL_REPLY: &[u8] = b"\x02030,0,0,1218,000,0,0,0,000,0,0,0\x03\r\n\
\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n";

fn node_with(dir: &Path, packages: &[&str]) -> Node {
    let node = Node::open(NodeOptions::resolve(dir, None).expect("config")).expect("node");
    for package in packages {
        outpost::updates::install(&node, Path::new(package)).expect("installs");
    }
    node
}

/// Per-call percentiles from single timed calls.
fn percentiles(name: &str, mut call: impl FnMut()) {
    // `cargo test --benches` (CI) runs this once to prove it works, unoptimised:
    // 84,000 calls there would add half a minute and measure nothing.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (warm_up, timed) = if measuring { (1_000, 20_000) } else { (1, 10) };
    for _ in 0..warm_up {
        call();
    }
    let mut times: Vec<Duration> = (0..timed)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    if std::env::var_os("OUTPOST_BENCH_HISTOGRAM").is_some() {
        let mut buckets = std::collections::BTreeMap::new();
        for time in &times {
            *buckets.entry(time.as_micros()).or_insert(0u32) += 1;
        }
        eprintln!("{name} histogram (µs: calls): {buckets:?}");
    }
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "{name}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        at(0.50).as_nanos() as f64 / 1000.0,
        at(0.90).as_nanos() as f64 / 1000.0,
        at(0.99).as_nanos() as f64 / 1000.0,
    );
}

fn calls(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = node_with(
        dir.path(),
        &[outpost_plugin_artifacts::THERMAL_PRINTER.package_dir],
    );
    let driver = node.printer_driver(None).expect("driver");
    let bare = BareDriver::new();

    let host_status = || {
        node.status_request(&driver, DocumentKind::Label)
            .expect("calls")
            .request
            .len()
    };
    let host_parse = || {
        node.parse_status(&driver, DocumentKind::Label, ZPL_REPLY)
            .expect("parses")
            .ready
    };
    percentiles("host  status-request", || {
        black_box(host_status());
    });
    percentiles("bare  status-request", || {
        black_box(bare.status_request());
    });
    percentiles("host  parse-status", || {
        black_box(host_parse());
    });
    percentiles("bare  parse-status", || {
        black_box(bare.parse_status(ZPL_REPLY));
    });

    let mut group = c.benchmark_group("call: fresh instance per call");
    group.bench_function("host / status-request", |b| b.iter(host_status));
    group.bench_function("bare wasmtime / status-request", |b| {
        b.iter(|| bare.status_request())
    });
    group.bench_function("host / parse-status", |b| b.iter(host_parse));
    group.bench_function("bare wasmtime / parse-status", |b| {
        b.iter(|| bare.parse_status(ZPL_REPLY))
    });
    group.finish();
}

fn kv_round_trip(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Arc::new(node_with(
        dir.path(),
        &[outpost_plugin_artifacts::TEST_HOSTILE.package_dir],
    ));
    let plugin = node
        .loaded(&outpost::manifest::PluginId::parse("test/hostile").expect("id"))
        .expect("loaded");
    // The example label, carrying the hostile plugin's command in its
    // reference (see plugins/test-hostile).
    let example: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/examples/label.json")).expect("example");
    let document = |command: &str| {
        let mut label = example["label"].clone();
        label["reference"] = serde_json::json!(command);
        let label: outpost::api::schema::Label = serde_json::from_value(label).expect("label");
        Document::Label(label.into())
    };
    let round_trip = document("kv-roundtrip");
    let echo = document("echo");
    let mut group = c.benchmark_group("kv from a guest");
    group.bench_function("set (durable commit) + get", |b| {
        b.iter(|| node.render(&plugin, &round_trip).expect("round trip"))
    });
    group.bench_function("same call without kv (echo)", |b| {
        b.iter(|| node.render(&plugin, &echo).expect("echo"))
    });
    group.finish();
}

criterion_group!(benches, calls, kv_round_trip);
criterion_main!(benches);
