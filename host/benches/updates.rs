//! What an over-the-air update costs a trading node.
//!
//! `cargo bench -p outpost --bench updates` measures, in one run:
//!
//! 1. **Swaps under load.** One or two callers call the hostile test
//!    plugin's `echo` without pause, through the app API
//!    (`POST /v1/print/label` over HTTP, as a till does) and then in-process
//!    (`Node::render`, the call alone), while this thread stages a new
//!    version, swaps it in and rolls it back, over and over. It prints the
//!    call p50/p99 steady and during swaps (and their ratio), the calls
//!    each swap or rollback held up past twice the steady p99 (and how many
//!    of those were a caller's first call on a new version), a control
//!    (unrelated work on another thread), each caller's first call on a new
//!    version, the failed calls (must be 0), and the time of an activation
//!    (the transaction: kv snapshot, `migrate`, `health`, record) and of a
//!    rollback.
//! 2. **A check that finds nothing new.** A registry on 127.0.0.1 behind a
//!    byte-counting TCP relay; the node follows a plugin that is up to date.
//!    It prints the bytes both ways and the time of one check.
//! 3. **Restart after a kill during an update.** A real `outpost run` is
//!    paused inside an activation's transaction (the migration done, nothing
//!    committed) and killed with SIGKILL; it prints the time to open the
//!    node again (redb recovery, the journal's replay, loading the plugins)
//!    and answer a call.
//!
//! Without `--bench` (as `cargo test --benches` runs it) every part runs
//! briefly, to check it works.

mod common;

use outpost::control;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeOptions};
use outpost::printing::Document;
use outpost::updates;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PLUGIN: &str = "acme/hostile";

fn id() -> PluginId {
    PluginId::parse(PLUGIN).expect("id")
}

/// The hostile test plugin packaged as `acme/hostile` at `version`.
fn package(root: &Path, version: &str) -> PathBuf {
    let from = Path::new(outpost_plugin_artifacts::TEST_HOSTILE.package_dir);
    let to = root.join(format!("hostile-{version}"));
    copy_tree(from, &to);
    let manifest = to.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let text = text
        .replace("id = \"test/hostile\"", &format!("id = \"{PLUGIN}\""))
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    std::fs::write(&manifest, text).expect("manifest");
    std::fs::write(to.join("assets/version.txt"), version).expect("version");
    to
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn open(dir: &Path, toml: &str) -> Node {
    Node::open(NodeOptions {
        data_dir: dir.to_path_buf(),
        config: outpost::config::NodeConfig::parse(toml, "bench").expect("config"),
        config_origin: "bench".into(),
    })
    .expect("node")
}

/// The label the callers print: the hostile plugin echoes its reference.
fn echo_label() -> serde_json::Value {
    let mut request: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/examples/label.json")).expect("example");
    request["driver"] = serde_json::json!(PLUGIN);
    request["label"]["reference"] = serde_json::json!("echo");
    request["label"]["notes"] = serde_json::json!(["swap"]);
    request
}

/// How the callers reach the plugin.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// `Node::render` in the caller's thread: the call alone, nothing around it.
    InProcess,
    /// `POST /v1/print/label` over HTTP on 127.0.0.1, as a till does.
    Api,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::InProcess => "in-process render",
            Via::Api => "POST /v1/print/label",
        })
    }
}

/// One caller's way to make calls: each returns its time and something
/// that tells versions apart (to find the first call on a new version).
fn caller(
    node: &Arc<Node>,
    api: Option<&(String, String)>,
) -> Box<dyn FnMut() -> Result<(Duration, u64), String>> {
    let request = echo_label();
    match api {
        None => {
            let node = node.clone();
            let label: outpost::api::schema::Label =
                serde_json::from_value(request["label"].clone()).expect("example label");
            let document = Document::Label(label.into());
            Box::new(move || {
                let plugin = node.loaded(&id()).ok_or("not loaded")?;
                let started = Instant::now();
                node.render(&plugin, &document).map_err(|e| e.to_string())?;
                Ok((started.elapsed(), Arc::as_ptr(&plugin) as u64))
            })
        }
        Some((base, token)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let target = {
                let _entered = runtime.enter();
                common::Target::new(base, token)
            };
            let body = bytes::Bytes::from(request.to_string());
            Box::new(move || {
                let started = Instant::now();
                let (status, answer) =
                    runtime.block_on(target.exchange("POST", "/v1/print/label", &body));
                let took = started.elapsed();
                let answer: serde_json::Value =
                    serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("{status}: {answer}"));
                }
                let version = answer["job"]["driver_version"].as_str().unwrap_or_default();
                let minor = semver::Version::parse(version).map_or(0, |v| v.minor);
                Ok((took, minor))
            })
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One call a caller made: when, how long, and whether it was the caller's
/// first on a newly loaded version.
struct Call {
    at: Instant,
    took: Duration,
    first_on_version: bool,
}

/// Calls from `callers` threads for `duration`, while `during` runs on this
/// one.
fn calls_while(
    node: &Arc<Node>,
    api: Option<&(String, String)>,
    callers: usize,
    duration: Duration,
    during: impl FnOnce(),
) -> (Vec<Call>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..callers)
        .map(|_| {
            let (node, stop, failed) = (node.clone(), stop.clone(), failed.clone());
            let api = api.cloned();
            std::thread::spawn(move || {
                let mut call = caller(&node, api.as_ref());
                let mut calls = Vec::new();
                let mut last_version = None;
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    match call() {
                        Ok((took, version)) => {
                            calls.push(Call {
                                at,
                                took,
                                first_on_version: last_version.is_some_and(|v| v != version),
                            });
                            last_version = Some(version);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                calls
            })
        })
        .collect();
    let started = Instant::now();
    during();
    if let Some(left) = duration.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    stop.store(true, Ordering::Relaxed);
    let all: Vec<Call> = callers
        .into_iter()
        .flat_map(|c| c.join().expect("caller"))
        .collect();
    (all, failed.load(Ordering::Relaxed))
}

/// Hashes 4 MiB buffers for `duration` at background priority.
fn lower_priority_work(duration: Duration) {
    use sha2::Digest;
    updates::at_background_priority(|| {
        let buffer = vec![0x5a_u8; 4 << 20];
        let started = Instant::now();
        let mut digest = Vec::new();
        while started.elapsed() < duration {
            digest = sha2::Sha256::digest(&buffer).to_vec();
        }
        std::hint::black_box(digest);
    });
}

/// The node served on 127.0.0.1 as `outpost run` serves it (two workers);
/// the API's address and token.
fn serve(node: &Arc<Node>) -> (tokio::runtime::Runtime, (String, String)) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let token = outpost::api::load_or_create_token(node).expect("token");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    runtime.spawn(outpost::api::serve(
        node.clone(),
        listener,
        token.clone(),
        std::future::pending(),
    ));
    (runtime, (base, token))
}

fn sorted_times<'a>(calls: impl IntoIterator<Item = &'a Call>) -> Vec<Duration> {
    let mut times: Vec<Duration> = calls.into_iter().map(|call| call.took).collect();
    times.sort();
    times
}

fn swaps(measuring: bool, via: Via, callers: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Arc::new(open(
        &dir.path().join("node"),
        "[updates]\nprobation-seconds = 3600\n",
    ));
    updates::install(&node, &package(dir.path(), "1.0.0")).expect("install");
    let served = (via == Via::Api).then(|| serve(&node));
    let api = served.as_ref().map(|(_, api)| api);
    // An API call takes ~50x an in-process one, so a swap window holds
    // fewer of them: more rounds for as many calls to rank.
    let rounds = match (measuring, via) {
        (false, _) => 3,
        (true, Via::InProcess) => 40,
        (true, Via::Api) => 120,
    };
    let versions: Vec<PathBuf> = (1..=rounds)
        .map(|minor| package(dir.path(), &format!("1.{minor}.0")))
        .collect();
    let window = if measuring {
        Duration::from_secs(8)
    } else {
        Duration::from_millis(300)
    };
    let (steady, steady_failed) = calls_while(&node, api, callers, window, || {});
    // A control: the same calls while another thread does unrelated CPU and
    // memory work (hashing 4 MiB buffers) at background priority, as the
    // update thread does, for as long as the swaps below take.
    let (neighbour, _) = calls_while(&node, api, callers, Duration::ZERO, || {
        lower_priority_work(window.min(Duration::from_secs(2)));
    });
    // Each update is staged first (while the lock is held: staging is not
    // the swap), then swapped in with `apply` and rolled back. The calls
    // that count as "during a swap" started inside one of those two windows
    // or in the millisecond after it (the first calls on the new version).
    let mut activations = Vec::new();
    let mut rollbacks = Vec::new();
    let mut windows: Vec<(Instant, Instant)> = Vec::new();
    let (all, swapping_failed) = calls_while(&node, api, callers, Duration::ZERO, || {
        for version in &versions {
            node.update_lock.take(
                "bench",
                Duration::from_secs(3600),
                Duration::from_secs(3600),
            );
            let offer = updates::Offer {
                folder: version,
                source: "bench".into(),
                approved: true,
                now: false,
            };
            let staged = updates::offer(&node, offer, None).expect("stage");
            assert_eq!(staged.state, outpost::store::UpdateState::Deferred);
            node.update_lock.release();
            std::thread::sleep(Duration::from_millis(2));
            let started = Instant::now();
            let record = updates::apply(&node, &id()).expect("swap in");
            let ended = Instant::now();
            activations.push(ended - started);
            windows.push((started, ended + Duration::from_millis(1)));
            assert_eq!(record.state, outpost::store::UpdateState::Probation);
            std::thread::sleep(Duration::from_millis(2));
            let started = Instant::now();
            updates::roll_back(&node, &id(), "bench", true).expect("rollback");
            let ended = Instant::now();
            rollbacks.push(ended - started);
            windows.push((started, ended + Duration::from_millis(1)));
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    drop(served);
    let swapping: Vec<&Call> = all
        .iter()
        .filter(|call| {
            windows
                .iter()
                .any(|(from, to)| call.at >= *from && call.at <= *to)
        })
        .collect();
    activations.sort();
    rollbacks.sort();
    let first_on_new = sorted_times(swapping.iter().copied().filter(|c| c.first_on_version));
    let later = sorted_times(swapping.iter().copied().filter(|c| !c.first_on_version));
    let steady = sorted_times(&steady);
    let neighbour = sorted_times(&neighbour);
    let swapping = sorted_times(swapping);
    let steady_p99 = percentile(&steady, 0.99).as_secs_f64().max(1e-9);
    let ratio = |times: &[Duration]| percentile(times, 0.99).as_secs_f64() / steady_p99;
    println!(
        "swaps under load, {via}: {callers} caller(s) without pause, {rounds} staged updates swapped in and rolled back:"
    );
    println!(
        "  calls steady:        {:>7} calls, p50 {:>8.1?}, p99 {:>8.1?}, failed {steady_failed}",
        steady.len(),
        percentile(&steady, 0.5),
        percentile(&steady, 0.99)
    );
    println!(
        "  calls during swaps:  {:>7} calls, p50 {:>8.1?}, p99 {:>8.1?}, failed {swapping_failed}",
        swapping.len(),
        percentile(&swapping, 0.5),
        percentile(&swapping, 0.99)
    );
    println!("  p99 during / steady: {:.2}", ratio(&swapping));
    // Independent of how long the windows are: how many calls each swap or
    // rollback held up past twice the steady p99.
    let held_up = |times: &[Duration]| {
        times
            .iter()
            .filter(|took| took.as_secs_f64() > 2.0 * steady_p99)
            .count()
    };
    // A first call on a version is slow on its own (cold caches), so the
    // two causes are counted apart: the rest is the swap's own work.
    let held_up_in_swaps = held_up(&swapping);
    println!(
        "  calls held up past 2x the steady p99: {held_up_in_swaps} in {} swaps and rollbacks ({:.2} each), \
         {} of them a caller's first call on a newly loaded version",
        windows.len(),
        held_up_in_swaps as f64 / windows.len().max(1) as f64,
        held_up(&first_on_new),
    );
    println!(
        "  control, unrelated work on another thread: p99 {:.1?} ({:.2}x steady)",
        percentile(&neighbour, 0.99),
        ratio(&neighbour)
    );
    println!(
        "  of those, each caller's first call on a newly loaded version: {} calls, p50 {:.1?}; \
         the rest: p99 {:.1?} ({:.2}x steady)",
        first_on_new.len(),
        percentile(&first_on_new, 0.5),
        percentile(&later, 0.99),
        ratio(&later)
    );
    println!(
        "  a swap (staged -> serving: the transaction and the pointer): p50 {:.1?}, max {:.1?}; a rollback: p50 {:.1?}, max {:.1?}",
        percentile(&activations, 0.5),
        activations.last().copied().unwrap_or_default(),
        percentile(&rollbacks, 0.5),
        rollbacks.last().copied().unwrap_or_default()
    );
    assert_eq!(steady_failed + swapping_failed, 0, "calls failed");
}

/// A TCP relay to `upstream` that counts the bytes it carries.
async fn counting_relay(upstream: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if let Ok((up, down)) =
                    tokio::io::copy_bidirectional(&mut client, &mut server).await
                {
                    counted.fetch_add(up + down, Ordering::Relaxed);
                }
            });
        }
    });
    (address, bytes)
}

async fn quiet_check(measuring: bool) {
    use outpost_registry::{admin, keys::KeyPair, repository, server, store::RegistryStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RegistryStore::create(&dir.path().join("registry")).expect("registry");
    let root = KeyPair::generate().expect("key");
    let online = repository::OnlineKeys::generate().expect("keys");
    let lifetimes = server::ServeConfig::default().lifetimes;
    let root_json = repository::init(&store, &[root], 1, &online, lifetimes).expect("init");
    let vendor = KeyPair::generate().expect("key");
    admin::add_namespace(&store, "acme", vec![vendor.public()], 1).expect("namespace");
    let token = admin::issue_token(&store, "acme", "bench").expect("token");
    let registry = Arc::new(server::Registry::new(
        store,
        online,
        server::ServeConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = listener.local_addr().expect("address");
    let serving = registry.clone();
    tokio::spawn(async move {
        let _ = serving.serve(listener, std::future::pending()).await;
    });
    let (relay, bytes) = counting_relay(upstream).await;
    let url = url::Url::parse(&format!("http://{relay}/")).expect("url");
    let release =
        outpost::releases::vendor_release(&package(dir.path(), "1.0.0")).expect("release");
    outpost_registry::vendor::publish(
        &url,
        &outpost_registry::tls::ClientTls::system(),
        &token,
        &[&vendor],
        &release,
        jiff::SignedDuration::from_hours(24),
    )
    .await
    .expect("publish");

    let node = Arc::new(open(
        &dir.path().join("node"),
        "[updates]\nprobation-seconds = 1\n",
    ));
    outpost::releases::provision(
        node.store(),
        Path::new("root.json"),
        &root_json,
        Some(&url),
        None,
    )
    .expect("provision");
    control::install(
        &node,
        control::InstallRequest {
            spec: format!("{PLUGIN}@=1.0.0"),
            registry: None,
            plugin: None,
            approve: true,
            package: false,
        },
    )
    .await
    .expect("install");
    control::follow(&node, id(), Some("^1".into()))
        .await
        .expect("follow");
    let checks = if measuring { 20 } else { 2 };
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    // What the agent does: the first check refreshes in full, later ones
    // ask whether the timestamp moved.
    let mut last = None;
    let full_before = bytes.load(Ordering::Relaxed);
    updates::agent::check_since(&node, &mut last)
        .await
        .expect("check");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let full = bytes.load(Ordering::Relaxed) - full_before;
    for _ in 0..checks {
        let before = bytes.load(Ordering::Relaxed);
        let started = Instant::now();
        let checked = updates::agent::check_since(&node, &mut last)
            .await
            .expect("check");
        times.push(started.elapsed());
        assert!(checked[0].outcome.contains("up to date"), "{checked:?}");
        // The relay counts a connection when it closes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sizes.push(bytes.load(Ordering::Relaxed) - before);
    }
    times.sort();
    sizes.sort();
    println!("an update check that finds nothing new ({checks} checks):");
    println!("  a full refresh (the first check after a start): {full} bytes");
    println!(
        "  bytes on the wire (both ways): median {}, max {}",
        sizes[sizes.len() / 2],
        sizes.last().copied().unwrap_or_default()
    );
    println!(
        "  time: p50 {:.1?}, max {:.1?}",
        percentile(&times, 0.5),
        times.last().copied().unwrap_or_default()
    );
}

fn restart_after_kill(measuring: bool) {
    use std::process::{Command, Stdio};
    let binary = env!("CARGO_BIN_EXE_outpost");
    let rounds = if measuring { 5 } else { 1 };
    let mut times = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("node");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let toml = format!("[api]\nlisten = \"127.0.0.1:{port}\"\n");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("outpost.toml"), &toml).expect("config");
        {
            let node = open(&data, &toml);
            updates::install(&node, &package(dir.path(), "1.0.0")).expect("install");
        }
        let marker = dir.path().join("paused");
        let mut node = Command::new(binary)
            .arg("--data-dir")
            .arg(&data)
            .arg("run")
            .env("OUTPOST_TEST_PAUSE", "during:migrate")
            .env("OUTPOST_TEST_PAUSE_MARKER", &marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run");
        let started = Instant::now();
        while !data.join("admin.sock").exists() {
            assert!(started.elapsed() < Duration::from_secs(60), "never served");
            std::thread::sleep(Duration::from_millis(10));
        }
        let newer = package(dir.path(), "1.1.0");
        let mut add = Command::new(binary)
            .arg("--data-dir")
            .arg(&data)
            .args(["plugin", "add"])
            .arg(&newer)
            .arg("--yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("add");
        while !marker.exists() {
            assert!(started.elapsed() < Duration::from_secs(60), "never paused");
            std::thread::sleep(Duration::from_millis(5));
        }
        node.kill().expect("SIGKILL");
        let _ = node.wait();
        let _ = add.kill();
        let _ = add.wait();
        let started = Instant::now();
        let node = Arc::new(open(&data, &toml));
        caller(&node, None)().expect("serves");
        times.push(started.elapsed());
        assert_eq!(
            node.loaded(&id()).map(|p| p.version.to_string()).as_deref(),
            Some("1.0.0")
        );
    }
    times.sort();
    println!("restart after a kill inside an activation ({rounds} kills):");
    println!(
        "  open (recovery, replay, load) and the first call: p50 {:.1?}, max {:.1?}",
        percentile(&times, 0.5),
        times.last().copied().unwrap_or_default()
    );
}

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    for via in [Via::Api, Via::InProcess] {
        for callers in [1, 2] {
            swaps(measuring, via, callers);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(quiet_check(measuring));
    restart_after_kill(measuring);
}
