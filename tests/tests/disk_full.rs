//! A full disk: every sale the node answered 2xx is on disk with its event,
//! every other one is refused with a 503 that names the disk, the node says
//! `degraded`, and it recovers by itself once space is back.
//!
//! The node runs on a small tmpfs this test mounts, so it needs root (as the
//! CI runs). Elsewhere it says it skipped, unless OUTPOST_REQUIRE_TMPFS is
//! set, as `.ci/run` sets it, which makes it fail instead.

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use outpost::config::NodeConfig;
use outpost::node::{Node, NodeOptions};
use outpost_e2e_tests::{artifacts, send_in_process};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A tmpfs of `size_mib`, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(size_mib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&mount)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { _dir: dir, mount }),
            other => {
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                    Err(error) => error.to_string(),
                };
                assert!(
                    std::env::var_os("OUTPOST_REQUIRE_TMPFS").is_none(),
                    "cannot mount a tmpfs for the full-disk test: {why}"
                );
                eprintln!("skipped: cannot mount a tmpfs (needs root): {why}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.mount
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn tokenize() -> hyper::Request<Full<Bytes>> {
    let body = json!({ "card": { "pan": "4111111111111111", "expiry_month": 12,
                                 "expiry_year": 2031, "security_code": "123" } });
    hyper::Request::post("/v1/payments/tokenize")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

async fn health(node: &Arc<Node>) -> Value {
    let request = hyper::Request::get("/v1/health")
        .body(Full::new(Bytes::new()))
        .expect("request");
    send_in_process(node, request).await.1
}

fn tokenized_events(node: &Node) -> usize {
    node.store()
        .outbox_list(None, 10_000)
        .expect("outbox readable")
        .iter()
        .filter(|entry| entry.owner == "node")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_no_acknowledged_sale_loses_its_event_and_the_node_recovers() {
    let Some(disk) = SmallDisk::mount(48) else {
        return;
    };
    let config = NodeConfig::parse(
        "[centre]\nevents-url = \"http://127.0.0.1:9/v1/events\"\n[policy]\ndisk-reserve-mib = 1\n",
        "test",
    )
    .expect("config");
    let node = Node::open(NodeOptions {
        data_dir: disk.path().join("node"),
        config,
        config_origin: "test".into(),
    })
    .expect("node opens");
    outpost_e2e_tests::install_card_tokenizer(&node);
    let node = Arc::new(node);
    assert_eq!(send_in_process(&node, tokenize()).await.0, StatusCode::OK);
    assert_eq!(health(&node).await["status"], "ok");
    let before = tokenized_events(&node);

    let filler = disk.fill();
    let mut answered = 0;
    let mut refused = 0;
    for _ in 0..300 {
        let (status, body) = send_in_process(&node, tokenize()).await;
        match status {
            StatusCode::OK => answered += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["error"]["code"], "storage-unavailable", "{body}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("disk"), "{message}");
                assert!(!message.contains("4111111111111111"), "{message}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0, "the disk never filled: {answered} answered");
    let degraded = health(&node).await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert_eq!(degraded["problems"][0]["what"], "storage", "{degraded}");

    // Space is back: no restart, the node writes again within a few seconds.
    std::fs::remove_file(&filler).expect("free the disk");
    let started = std::time::Instant::now();
    loop {
        let (status, _) = send_in_process(&node, tokenize()).await;
        if status == StatusCode::OK {
            answered += 1;
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the node never wrote again after space came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(health(&node).await["status"], "ok");
    // Every 2xx has its event on disk, and nothing more.
    assert_eq!(tokenized_events(&node) - before, answered);
}

#[test]
fn plugins_may_not_write_within_the_disk_reserve() {
    let node = outpost_e2e_tests::TestNode::new();
    let plugin = node.install_artifact(artifacts::TEST_HOSTILE);
    // A reserve larger than any disk: every plugin write is within it.
    node.node.store().set_disk_reserve(u64::MAX / 2);
    for (command, args) in [
        ("kv-set", &["key", "value"][..]),
        ("write-file", &["/scratch/a", "value"][..]),
    ] {
        let refused = node
            .hostile(&plugin, command, args)
            .expect_err(command)
            .to_string();
        assert!(refused.contains("kept for sales"), "{command}: {refused}");
    }
    assert_eq!(
        node.hostile_ok(&plugin, "echo", &["still", "works"]),
        "still works"
    );
}
