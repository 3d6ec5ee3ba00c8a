//! What a registry box serves, measured on loopback: manifests and blobs
//! over the OCI API, timestamp metadata, a node's full TUF refresh, and a
//! burst of concurrent blob pulls (a fleet coming back online).
//!
//! `cargo bench -p outpost-registry --bench fetch`.

mod common;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use outpost_registry::admin;
use outpost_registry::client::{self, MetadataSource, TrustState};
use outpost_registry::keys::KeyPair;
use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
use outpost_registry::server::{Registry, ServeConfig};
use outpost_registry::store::RegistryStore;
use outpost_registry::vendor;
use std::sync::Arc;

struct Setup {
    runtime: tokio::runtime::Runtime,
    url: url::Url,
    root: Vec<u8>,
    manifest: String,
    blob: String,
    blob_bytes: u64,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RegistryStore::create(dir.path()).expect("registry");
    let root_key = KeyPair::generate().expect("key");
    let online = OnlineKeys::generate().expect("keys");
    let root =
        repository::init(&store, &[root_key], 1, &online, Lifetimes::default()).expect("init");
    let vendor_key = KeyPair::generate().expect("key");
    admin::add_namespace(&store, "outpost", vec![vendor_key.public()], 1).expect("namespace");
    let token = admin::issue_token(&store, "outpost", "bench").expect("token");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url =
        url::Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    let registry = Arc::new(Registry::new(store, online, ServeConfig::default()));
    runtime.spawn(registry.serve(listener, std::future::pending()));

    let release = common::thermal_printer_release();
    let component = release.parts.component.clone();
    let outcome = runtime
        .block_on(vendor::publish(
            &url,
            &outpost_registry::tls::ClientTls::system(),
            &token,
            &[&vendor_key],
            &release,
            jiff::SignedDuration::from_hours(24),
        ))
        .expect("publish");
    Setup {
        runtime,
        url,
        root,
        manifest: outcome.digest,
        blob: outpost_registry::artifact::digest_of(&component),
        blob_bytes: component.len() as u64,
        _dir: dir,
    }
}

async fn get(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> usize {
    let response = client.get(url.parse().expect("uri")).await.expect("answer");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

fn fetches(c: &mut Criterion) {
    let setup = setup();
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let base = setup.url.as_str().trim_end_matches('/').to_string();
    let manifest_url = format!(
        "{base}/v2/outpost/thermal-printer/manifests/{}",
        setup.manifest
    );
    let blob_url = format!("{base}/v2/outpost/thermal-printer/blobs/{}", setup.blob);
    let timestamp_url = format!("{base}/tuf/timestamp.json");

    let mut group = c.benchmark_group("registry on loopback");
    group.bench_function("GET manifest", |b| {
        b.iter(|| setup.runtime.block_on(get(&client, &manifest_url)))
    });
    group.bench_function("GET timestamp.json", |b| {
        b.iter(|| setup.runtime.block_on(get(&client, &timestamp_url)))
    });
    group.throughput(Throughput::Bytes(setup.blob_bytes));
    group.bench_function("GET component blob", |b| {
        b.iter(|| setup.runtime.block_on(get(&client, &blob_url)))
    });
    group.throughput(Throughput::Bytes(setup.blob_bytes * 32));
    group.bench_function("32 concurrent component blob GETs", |b| {
        b.iter(|| {
            setup.runtime.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..32 {
                    let client = client.clone();
                    let url = blob_url.clone();
                    tasks.push(tokio::spawn(async move { get(&client, &url).await }));
                }
                for task in tasks {
                    task.await.expect("task");
                }
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("node");
    group.sample_size(30);
    group.bench_function(
        "TUF refresh from the provisioned root (verify all metadata)",
        |b| {
            b.iter(|| {
                setup.runtime.block_on(async {
                    client::load(
                        &setup.root,
                        &TrustState::default(),
                        &MetadataSource::Registry(setup.url.clone()),
                        &outpost_registry::tls::ClientTls::system(),
                    )
                    .await
                    .expect("verified")
                })
            })
        },
    );
    group.finish();
}

criterion_group!(benches, fetches);
criterion_main!(benches);
