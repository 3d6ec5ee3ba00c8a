//! A real `outpost run`, killed with SIGKILL at every step of an update (and
//! in the middle of the download, the compile and the migration): after a
//! restart the plugin answers with exactly one version, its data is that
//! version's, the journal agrees, and the update then completes.

use outpost::config::NodeConfig;
use outpost::node::{Node, NodeOptions};
use outpost::store::UpdateState;
use outpost_e2e_tests::outpost_binary;
use outpost_e2e_tests::registry::{TestRegistry, provision};
use outpost_e2e_tests::updates::{PLUGIN, install, plugin_id, release, with_own_code};
use outpost_registry::server::ServeConfig;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a kill lands, in the order an update passes them.
const POINTS: [&str; 10] = [
    "after:found",
    "during:download",
    "after:downloaded",
    "after:verified",
    "during:compile",
    "after:compiled",
    "after:staged",
    "after:activating",
    "during:migrate",
    "after:probation",
];

fn config(port: u16) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n\
         [updates]\nprobation-seconds = 1\nprobation-calls = 0\n\
         follow = {{ \"{PLUGIN}\" = \"^1\" }}\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn open(dir: &Path) -> Node {
    let text = std::fs::read_to_string(dir.join("outpost.toml")).expect("config");
    Node::open(NodeOptions {
        data_dir: dir.to_path_buf(),
        config: NodeConfig::parse(&text, "test").expect("config"),
        config_origin: "test".into(),
    })
    .expect("the node opens after the crash")
}

fn run(dir: &Path, pause: Option<(&str, &Path)>) -> Child {
    let mut command = Command::new(outpost_binary());
    command
        .arg("--data-dir")
        .arg(dir)
        .arg("run")
        .env_remove("OUTPOST_CONFIG")
        .env("OUTPOST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((point, marker)) = pause {
        command
            .env("OUTPOST_TEST_PAUSE", point)
            .env("OUTPOST_TEST_PAUSE_MARKER", marker);
    }
    command.spawn().expect("outpost run starts")
}

fn kv(node: &Node, key: &str) -> Option<String> {
    node.store()
        .kv_get(&plugin_id(), key)
        .expect("kv")
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// What a node opened after the crash shows, checked for coherence:
/// one version serves, its data and the journal agree with it.
fn coherent(node: &Node, point: &str) -> String {
    let record = node
        .store()
        .plugin(&plugin_id())
        .expect("read")
        .expect("installed");
    let serving = node.loaded(&plugin_id()).expect("serving").version.clone();
    assert_eq!(
        serving, record.active.version,
        "{point}: table and record differ"
    );
    let update = node.store().update(&plugin_id()).expect("read");
    let snapshot = node.store().has_kv_snapshot(&plugin_id()).expect("read");
    match update.as_ref().map(|u| u.state) {
        Some(UpdateState::Probation) => {
            assert_eq!(serving.to_string(), "1.1.0", "{point}");
            assert_eq!(
                kv(node, "migrated-from").as_deref(),
                Some("1.0.0"),
                "{point}"
            );
            assert!(
                snapshot,
                "{point}: on probation without the kv to go back to"
            );
            assert_eq!(
                record.previous.map(|p| p.version.to_string()).as_deref(),
                Some("1.0.0"),
                "{point}"
            );
        }
        Some(state) => {
            assert!(
                matches!(state, UpdateState::Staged | UpdateState::Deferred),
                "{point}: left {state}"
            );
            assert_eq!(serving.to_string(), "1.0.0", "{point}");
            assert_eq!(
                kv(node, "migrated-from").as_deref(),
                Some("fresh"),
                "{point}"
            );
            assert!(!snapshot, "{point}");
            let staged = update
                .as_ref()
                .and_then(|u| u.staged.as_ref())
                .expect("staged");
            assert!(
                node.store()
                    .component(&staged.component_digest)
                    .expect("read")
                    .is_some(),
                "{point}: staged without its component"
            );
        }
        None => {
            // Cut short before it was staged (dropped, found again later),
            // or already confirmed.
            let version = serving.to_string();
            let expected = if version == "1.1.0" { "1.0.0" } else { "fresh" };
            assert_eq!(
                kv(node, "migrated-from").as_deref(),
                Some(expected),
                "{point}"
            );
            assert!(!snapshot, "{point}");
        }
    }
    format!(
        "{serving} {}",
        update
            .map(|u| u.state.to_string())
            .unwrap_or_else(|| "none".into())
    )
}

fn wait_for_file(path: &Path, child: &mut Child, point: &str) {
    let started = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{point}: the node exited ({status}) before reaching it");
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("{point}: never reached");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_at_any_step_of_an_update_restarts_coherent_and_finishes_it() {
    let binary = tokio::task::spawn_blocking(outpost_binary)
        .await
        .expect("build");
    assert!(binary.is_file());
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let old = release("1.0.0", |m| m);
    registry
        .publish(&registry.acme, old.path())
        .await
        .expect("publish");
    // Its own machine code, so the node really compiles it.
    let new = release("1.1.0", |m| m);
    with_own_code(&new, "1.1.0");
    registry
        .publish(&registry.acme, new.path())
        .await
        .expect("publish");

    let mut outcomes = Vec::new();
    for point in POINTS {
        let work = tempfile::tempdir().expect("temp dir");
        let dir = work.path().join("node");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("outpost.toml"), config(free_port())).expect("config");
        {
            let node = Arc::new(open(&dir));
            provision(&node, &registry.root_json, &registry.url);
            install(&node, &format!("{PLUGIN}@=1.0.0")).await;
        }

        let marker = work.path().join("paused");
        let mut child = run(&dir, Some((point, &marker)));
        let (mut child, _) = tokio::task::spawn_blocking({
            let marker = marker.clone();
            move || {
                wait_for_file(&marker, &mut child, point);
                child.kill().expect("SIGKILL");
                let status = child.wait().expect("reaped");
                (child, status)
            }
        })
        .await
        .expect("wait");
        let _ = child.wait();

        let after_crash = tokio::task::block_in_place(|| {
            let node = open(&dir);
            coherent(&node, point)
        });
        outcomes.push(format!("{point}: {after_crash}"));

        // Started again, it finishes the update by itself.
        let mut child = run(&dir, None);
        let finished = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || {
                let started = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let confirmed = Command::new(outpost_binary())
                        .arg("--data-dir")
                        .arg(&dir)
                        .args(["update", "history", "--json"])
                        .stderr(Stdio::null())
                        .output()
                        .ok()
                        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                        .is_some_and(|lines| {
                            lines.as_array().is_some_and(|lines| {
                                lines.last().is_some_and(|l| {
                                    l["to"] == "1.1.0" && l["state"] == "confirmed"
                                })
                            })
                        });
                    if confirmed {
                        return true;
                    }
                    if started.elapsed() > Duration::from_secs(90) {
                        return false;
                    }
                }
            }
        })
        .await
        .expect("wait");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            finished,
            "{point}: the update never finished after the restart"
        );
        tokio::task::block_in_place(|| {
            let node = open(&dir);
            assert_eq!(
                node.loaded(&plugin_id())
                    .expect("serving")
                    .version
                    .to_string(),
                "1.1.0",
                "{point}"
            );
            assert_eq!(
                kv(&node, "migrated-from").as_deref(),
                Some("1.0.0"),
                "{point}"
            );
            let record = node
                .store()
                .plugin(&plugin_id())
                .expect("read")
                .expect("installed");
            assert_eq!(record.previous, None, "{point}");
        });
    }
    eprintln!("after each crash:\n  {}", outcomes.join("\n  "));
}
