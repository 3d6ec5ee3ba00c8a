//! A fleet against one registry on loopback: simulated nodes, each enrolled
//! with its own key, poll their desired state with the real protocol (a
//! request signed with the node's key, `If-None-Match` with the version
//! they hold), and a rollout to all of them is driven by their reports.
//!
//! `cargo bench -p outpost-registry --bench fleet` prints:
//! - checks that find nothing new (304) per second and their p50/p99, with
//!   many nodes polling over a pool of keep-alive connections;
//! - the same for checks that fetch a freshly signed document (200);
//! - the registry's CPU (this process: the simulator's side is small, its
//!   requests are signed once up front) and resident memory;
//! - a rollout to every node in waves 1,10,50,100 driven by the nodes'
//!   signed reports over HTTP, with 1% of them offline and 2% failing
//!   probation (it must halt in the first wave past its rule, with the
//!   right counts), and with none failing (it must complete every wave,
//!   the offline nodes timed out); reports per second and their p99.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it uses a few
//! hundred nodes and runs briefly, to check it works.

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use outpost_registry::fleet::report::{REPORT_TYPE, Report, SignedReport};
use outpost_registry::fleet::{self, EnrolRequest, Labels};
use outpost_registry::keys::KeyPair;
use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
use outpost_registry::rollout::{self, RolloutRequest, RolloutState, Stage};
use outpost_registry::server::{Registry, ServeConfig};
use outpost_registry::store::{RegistryStore, now_seconds};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One simulated node: its id and a signed request for its desired state.
struct SimNode {
    path: String,
    authorization: String,
    version: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU seconds of this process's threads whose name starts with `prefix`
/// (tokio names its workers and blocking threads after the runtime).
fn thread_cpu_seconds(prefix: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... utime stime: fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let field = |n: usize| {
            fields
                .get(n)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        total += (field(11) + field(12)) / ticks;
    }
    total
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / (1 << 20) as f64)
}

/// Polls for `duration` over `connections` keep-alive connections, each
/// taking the next node in turn; returns the latencies and the statuses.
fn poll(
    runtime: &tokio::runtime::Runtime,
    base: &str,
    nodes: &Arc<Vec<SimNode>>,
    connections: usize,
    duration: Duration,
    conditional: bool,
) -> (Vec<Duration>, usize, usize, Duration) {
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (stop, next, nodes) = (stop.clone(), next.clone(), nodes.clone());
            let base = base.to_string();
            runtime.spawn(async move {
                let client: Client<HttpConnector, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new())
                        .pool_max_idle_per_host(1)
                        .build_http();
                let mut times = Vec::new();
                let (mut unchanged, mut fetched) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let node = &nodes[next.fetch_add(1, Ordering::Relaxed) % nodes.len()];
                    let mut request = hyper::Request::get(format!("{base}{}", node.path))
                        .header(hyper::header::AUTHORIZATION, &node.authorization);
                    if conditional {
                        request = request.header(
                            hyper::header::IF_NONE_MATCH,
                            format!("\"{}\"", node.version),
                        );
                    }
                    let request = request.body(Empty::new()).expect("request");
                    let started = Instant::now();
                    let response = client.request(request).await.expect("registry reachable");
                    let status = response.status();
                    let body = response.into_body().collect().await.expect("body");
                    times.push(started.elapsed());
                    match status.as_u16() {
                        304 => unchanged += 1,
                        200 => {
                            fetched += 1;
                            std::hint::black_box(body);
                        }
                        other => panic!("the registry answered {other}"),
                    }
                }
                (times, unchanged, fetched)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let (mut unchanged, mut fetched) = (0, 0);
    for task in tasks {
        let (times, u, f) = runtime.block_on(task).expect("poller");
        all.extend(times);
        unchanged += u;
        fetched += f;
    }
    all.sort();
    (all, unchanged, fetched, started.elapsed())
}

fn report(what: &str, times: &[Duration], duration: Duration, cpu: f64) {
    println!(
        "{what}: {} checks in {:.1} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms; CPU {:.2} core(s)",
        times.len(),
        duration.as_secs_f64(),
        times.len() as f64 / duration.as_secs_f64(),
        percentile(times, 0.5).as_secs_f64() * 1e3,
        percentile(times, 0.99).as_secs_f64() * 1e3,
        cpu / duration.as_secs_f64(),
    );
}

/// How a simulated fleet behaves during a rollout.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Every `n`th node of a wave fails probation and rolls back.
    failing_every: Option<usize>,
    /// Every `n`th node of a wave never reports (offline).
    offline_every: Option<usize>,
}

/// What a rollout came to and what it cost.
struct Driven {
    opened: usize,
    end: RolloutState,
    reports: usize,
    sending: Duration,
    times: Vec<Duration>,
}

/// Drives rollout `id` as its nodes would: each node of an open wave
/// reports over HTTP (`POST /fleet/v1/reports`, signed with its key,
/// `connections` at a time) that it is on probation and then that it
/// confirmed or rolled back; offline nodes say nothing, and the registry's
/// clock chore is run as if their offline time had passed when a wave
/// waits only for them.
fn drive(
    runtime: &tokio::runtime::Runtime,
    base: &str,
    store: &RegistryStore,
    id: &str,
    keys: &HashMap<String, KeyPair>,
    behaviour: Behaviour,
    connections: usize,
) -> Driven {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http();
    let url = format!("{base}/fleet/v1/reports");
    let mut reported = std::collections::HashSet::new();
    let mut sequence = 0;
    let mut skipped = 0;
    let (mut reports, mut sending, mut times) = (0, Duration::ZERO, Vec::new());
    let mut opened = 1;
    loop {
        let current = store.rollout(id).expect("read").expect("rollout");
        let RolloutState::Running { wave } = current.state else {
            times.sort();
            return Driven {
                opened,
                end: current.state,
                reports,
                sending,
                times,
            };
        };
        let mut batch = Vec::new();
        for (index, node) in current.nodes[..current.wave_ends[wave]].iter().enumerate() {
            if !reported.insert(node.clone()) {
                continue;
            }
            let every = |n: Option<usize>| n.is_some_and(|n| index % n == n - 1);
            if every(behaviour.offline_every) {
                continue;
            }
            let fails = every(behaviour.failing_every);
            for stage in [
                Stage::Probation,
                if fails {
                    Stage::RolledBack
                } else {
                    Stage::Confirmed
                },
            ] {
                sequence += 1;
                let report = Report {
                    kind: REPORT_TYPE.into(),
                    node: node.clone(),
                    rollout: id.to_string(),
                    plugin: current.plugin.clone(),
                    version: current.version.clone(),
                    sequence,
                    stage,
                    reason: (stage == Stage::RolledBack)
                        .then(|| "health: printer not found".to_string()),
                    at: now_seconds(),
                };
                let signed = SignedReport::sign(&keys[node], report);
                batch.push(serde_json::to_vec(&signed).expect("json"));
            }
        }
        let started = Instant::now();
        reports += batch.len();
        times.extend(runtime.block_on(send_all(&client, &url, batch, connections)));
        sending += started.elapsed();
        let after = store.rollout(id).expect("read").expect("rollout");
        if after.state == current.state {
            // Only silent nodes left in the wave: their offline time
            // passes (on a clock that only moves forward).
            skipped += current.offline_after_seconds + 1;
            rollout::advance_running(store, now_seconds() + skipped).expect("tick");
        }
        let after = store.rollout(id).expect("read").expect("rollout");
        assert_ne!(
            after.state,
            current.state,
            "the rollout is stuck: {:?}",
            rollout::status_of(store, id).map(|s| s.waves)
        );
        if let RolloutState::Running { .. } = after.state {
            opened += 1;
        }
    }
}

/// Sends every report, `connections` at a time, in order per node (a
/// node's two reports go on one connection, one after the other).
async fn send_all(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    reports: Vec<Vec<u8>>,
    connections: usize,
) -> Vec<Duration> {
    let reports = Arc::new(std::sync::Mutex::new(
        reports.into_iter().rev().collect::<Vec<_>>(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, reports) = (client.clone(), url.to_string(), reports.clone());
        tasks.spawn(async move {
            let mut times = Vec::new();
            loop {
                // A node's reports are next to each other: take both.
                let pair: Vec<Vec<u8>> = {
                    let mut left = reports.lock().expect("lock");
                    let take = left.len().min(2);
                    let at = left.len() - take;
                    left.split_off(at).into_iter().rev().collect()
                };
                if pair.is_empty() {
                    return times;
                }
                for body in pair {
                    let request = hyper::Request::post(&url)
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("request");
                    let started = Instant::now();
                    let response = client.request(request).await.expect("registry reachable");
                    let status = response.status();
                    let body = response.into_body().collect().await.expect("body");
                    times.push(started.elapsed());
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body.to_bytes()));
                }
            }
        });
    }
    let mut times = Vec::new();
    while let Some(done) = tasks.join_next().await {
        times.extend(done.expect("sender"));
    }
    times
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let count = if measuring { 10_000 } else { 300 };
    let window = if measuring {
        Duration::from_secs(10)
    } else {
        Duration::from_millis(500)
    };
    // In memory where there is a tmpfs: enrolling 10,000 nodes is 20,000
    // commits, each an fsync on disk (16 ms each on this machine's disk),
    // and the polling measured afterwards writes nothing.
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm"),
        false => tempfile::tempdir(),
    }
    .expect("temp dir");
    let store = RegistryStore::create(dir.path()).expect("registry");
    let root_key = KeyPair::generate().expect("key");
    let online = OnlineKeys::generate().expect("keys");
    repository::init(&store, &[root_key], 1, &online, Lifetimes::default()).expect("init");

    let started = Instant::now();
    let mut keys = Vec::with_capacity(count);
    let mut key_of = HashMap::with_capacity(count);
    for n in 0..count {
        let key = KeyPair::generate().expect("key");
        let token = fleet::issue_enrolment_token(&store, Labels::new(), 3600).expect("token");
        let labels: Labels = [("region".to_string(), "north".to_string())].into();
        let request = EnrolRequest::new(&key, &token.token, &format!("stall-{n}"), labels);
        let id = fleet::enrol(&store, &request).expect("enrol").id;
        key_of.insert(id.clone(), key.clone());
        keys.push((key, id));
    }
    println!(
        "enrolled {count} nodes in {:.1} s ({:.2} ms each, token and enrolment)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e3 / count as f64
    );

    // The registry and the simulator on runtimes of their own, so the
    // registry's share of the CPU can be told apart by thread name.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("simulator")
        .enable_all()
        .build()
        .expect("runtime");
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("registry")
        .enable_all()
        .build()
        .expect("runtime");
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let registry = Arc::new(Registry::new(store, online, ServeConfig::default()));
    server.spawn(registry.clone().serve(listener, std::future::pending()));
    let store = registry.store();

    // A rollout that reaches every node, so each document names a release
    // and each node's version is the rollout's revision.
    let release = publish_release(&runtime, &base, store);
    let created = rollout::create(
        store,
        &RolloutRequest {
            release,
            select: "region=north".into(),
            waves: vec![100],
            probation_seconds: 600,
            abort_when: "failed > 5% after 20".into(),
            rollback: true,
            offline_after_seconds: 24 * 3600,
        },
    )
    .expect("rollout");
    let now = now_seconds();
    let nodes: Arc<Vec<SimNode>> = Arc::new(
        keys.iter()
            .map(|(key, id)| {
                let path = format!("/fleet/v1/nodes/{id}/desired-state");
                SimNode {
                    authorization: fleet::sign_request(key, id, "GET", &path, now),
                    path,
                    version: created.revision,
                }
            })
            .collect(),
    );
    let connections = 64;
    for (what, conditional) in [
        ("checks that find nothing new (304)", true),
        ("checks that fetch a signed document (200)", false),
    ] {
        let cpu = cpu_seconds();
        let registry_cpu = thread_cpu_seconds("registry");
        let (times, unchanged, fetched, took) =
            poll(&runtime, &base, &nodes, connections, window, conditional);
        report(
            &format!("{what}, {count} nodes over {connections} connections"),
            &times,
            took,
            cpu_seconds() - cpu,
        );
        let registry_cpu = thread_cpu_seconds("registry") - registry_cpu;
        let per_check = registry_cpu / times.len().max(1) as f64;
        println!(
            "  of which the registry's threads: {:.2} core(s), {:.0} µs of CPU per check; on both cores alone: {:.0}/s",
            registry_cpu / took.as_secs_f64(),
            per_check * 1e6,
            2.0 / per_check.max(1e-9)
        );
        assert_eq!(
            if conditional { fetched } else { unchanged },
            0,
            "every answer should be {}",
            if conditional { 304 } else { 200 }
        );
    }
    println!("resident memory: {:.0} MiB", resident_mib());
    rollout::steer(store, &created.id, rollout::Steer::Abort).expect("abort");

    // The same fleet, a rollout in waves: 2% failing, then none, each
    // with 1% of the nodes offline.
    for failing_every in [Some(50), None] {
        let rule = "failed > 1% after 20";
        let behaviour = Behaviour {
            failing_every,
            offline_every: Some(100),
        };
        let release = format!("{}@{}", created.plugin, created.version);
        let rollout = rollout::create(
            store,
            &RolloutRequest {
                release,
                select: String::new(),
                waves: vec![1, 10, 50, 100],
                probation_seconds: 600,
                abort_when: rule.into(),
                rollback: true,
                offline_after_seconds: 3600,
            },
        )
        .expect("rollout");
        let cpu = cpu_seconds();
        let driven = drive(
            &runtime,
            &base,
            store,
            &rollout.id,
            &key_of,
            behaviour,
            connections,
        );
        let cpu = cpu_seconds() - cpu;
        println!(
            "rollout to {count} nodes, waves 1,10,50,100, `{rule}`, {} failing, 1% offline: {} after {} wave(s) opened; {} signed reports over HTTP in {:.1} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms; CPU {:.2} core(s)",
            if failing_every.is_some() {
                "2%"
            } else {
                "none"
            },
            end_text(&driven.end),
            driven.opened,
            driven.reports,
            driven.sending.as_secs_f64(),
            driven.reports as f64 / driven.sending.as_secs_f64(),
            percentile(&driven.times, 0.5).as_secs_f64() * 1e3,
            percentile(&driven.times, 0.99).as_secs_f64() * 1e3,
            cpu / driven.sending.as_secs_f64().max(1e-9),
        );
        let status = rollout::status_of(store, &rollout.id).expect("status");
        let counted = |stage: &str| -> usize {
            status
                .waves
                .iter()
                .map(|w| w.counts.get(stage).copied().unwrap_or(0))
                .sum()
        };
        let reached = rollout.wave_ends[match driven.end {
            RolloutState::Halted { wave, .. } => wave,
            _ => rollout.waves.len() - 1,
        }];
        let expect = |every: usize| (0..reached).filter(|i| i % every == every - 1).count();
        assert_eq!(
            counted("rolled-back"),
            failing_every.map_or(0, |every| (0..reached)
                .filter(|i| i % every == every - 1 && i % 100 != 99)
                .count()),
            "{status:?}"
        );
        assert!(counted("confirmed") + counted("rolled-back") + expect(100) >= reached);
        match failing_every {
            // The first failure is the 50th node, and the rule needs 20
            // done: the first wave that reaches 50 nodes halts.
            Some(every) => {
                let expected = rollout
                    .wave_ends
                    .iter()
                    .position(|end| *end >= every.max(20));
                assert!(
                    matches!(driven.end, RolloutState::Halted { wave, .. } if Some(wave) == expected),
                    "{:?}, expected a halt in wave {expected:?}",
                    driven.end
                );
            }
            None => assert!(
                matches!(driven.end, RolloutState::Completed { .. }),
                "{:?}",
                driven.end
            ),
        }
    }
}

fn end_text(state: &RolloutState) -> String {
    match state {
        RolloutState::Halted { wave, reason, .. } => {
            format!("halted in wave {} ({reason})", wave + 1)
        }
        RolloutState::Completed { .. } => "completed".into(),
        other => other.name().into(),
    }
}

/// Publishes the reference printer driver for the rollouts to name.
fn publish_release(runtime: &tokio::runtime::Runtime, base: &str, store: &RegistryStore) -> String {
    let vendor_key = KeyPair::generate().expect("key");
    outpost_registry::admin::add_namespace(store, "outpost", vec![vendor_key.public()], 1)
        .expect("namespace");
    let token = outpost_registry::admin::issue_token(store, "outpost", "bench").expect("token");
    let release = common::thermal_printer_release();
    let url = url::Url::parse(&format!("{base}/")).expect("url");
    runtime
        .block_on(outpost_registry::vendor::publish(
            &url,
            &outpost_registry::tls::ClientTls::system(),
            &token,
            &[&vendor_key],
            &release,
            jiff::SignedDuration::from_hours(24),
        ))
        .expect("publish");
    "outpost/thermal-printer@0.1.0".into()
}
