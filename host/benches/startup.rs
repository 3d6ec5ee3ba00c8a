//! Starting a node with an installed plugin: from its compiled-code cache
//! (every restart) and compiling it (first start after an upgrade of the
//! node, or a damaged cache).
//!
//! `cargo bench -p outpost --bench startup`.

use criterion::{Criterion, criterion_group, criterion_main};
use outpost::node::{COMPILED_DIR, Node, NodeOptions};
use std::path::Path;
use std::time::{Duration, Instant};

fn startup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = NodeOptions::resolve(dir.path(), None).expect("config");
    {
        let node = Node::open(options.clone()).expect("node");
        outpost::updates::install(
            &node,
            Path::new(outpost_plugin_artifacts::THERMAL_PRINTER.package_dir),
        )
        .expect("installs");
    }
    let mut group = c.benchmark_group("node start with the printer driver installed");
    group.sample_size(30);
    group.bench_function("from the compiled cache", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let node = Node::open(options.clone()).expect("node");
                total += started.elapsed();
                assert_eq!(node.plugins()[0].status, "active");
            }
            total
        })
    });
    group.bench_function("compiling the plugin", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                std::fs::remove_dir_all(dir.path().join(COMPILED_DIR)).expect("clear cache");
                let started = Instant::now();
                let node = Node::open(options.clone()).expect("node");
                total += started.elapsed();
                assert_eq!(node.plugins()[0].status, "active");
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, startup);
criterion_main!(benches);
