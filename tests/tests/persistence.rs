//! State across restarts: installed plugins come back from compiled code,
//! stored data survives, and a damaged database is reported, never replaced.

use outpost::config::NodeConfig;
use outpost::node::{Node, NodeError, NodeOptions};
use outpost::store::{DATABASE_FILE_NAME, StoreError};
use outpost_e2e_tests::{TestNode, artifacts};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn compiled_files(dir: &Path) -> Vec<(PathBuf, SystemTime, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("compiled"))
        .expect("compiled folder")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .expect("mtime");
            let bytes = std::fs::read(&path).expect("read");
            (path, modified, bytes)
        })
        .collect();
    files.sort();
    files
}

fn open(dir: &Path, config: NodeConfig) -> Result<Node, NodeError> {
    Node::open(NodeOptions {
        data_dir: dir.to_path_buf(),
        config,
        config_origin: "test".into(),
    })
}

#[test]
fn a_restart_loads_plugins_from_compiled_code_and_keeps_their_data() {
    let node = TestNode::new();
    let plugin = node.install_artifact(artifacts::TEST_HOSTILE);
    node.hostile_ok(&plugin, "kv-set", &["order", "ORD-42"]);
    drop(plugin);
    let before = compiled_files(node.path());
    assert_eq!(before.len(), 1, "one component, compiled once");

    let node = node.restart();
    let plugin = node.loaded("test/hostile");
    assert_eq!(node.hostile_ok(&plugin, "kv-get", &["order"]), "ORD-42");
    assert_eq!(
        compiled_files(node.path()),
        before,
        "a restart reuses the compiled code untouched"
    );
}

#[test]
fn damaged_compiled_code_is_recompiled_not_loaded() {
    let node = TestNode::new();
    node.install_artifact(artifacts::TEST_HOSTILE);
    let (path, _, good) = compiled_files(node.path()).remove(0);
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 64] {
        *byte = 0xcc;
    }
    std::fs::write(&path, &damaged).expect("damage");

    let node = node.restart();
    let plugin = node.loaded("test/hostile");
    assert_eq!(
        node.hostile_ok(&plugin, "echo", &["recompiled"]),
        "recompiled"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        good,
        "the entry was rewritten"
    );
}

#[test]
fn a_file_that_is_not_a_node_database_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join(DATABASE_FILE_NAME);
    let contents = b"SQLite format 3\0 -- not ours".repeat(100);
    std::fs::write(&database, &contents).expect("write");
    let error = open(dir.path(), NodeConfig::default()).expect_err("refused");
    let text = error.to_string();
    assert!(
        matches!(error, NodeError::Store(StoreError::Foreign { .. })),
        "{text}"
    );
    assert!(
        text.contains("not an Outpost node database") && text.contains("left untouched"),
        "{text}"
    );
    assert_eq!(std::fs::read(&database).expect("read"), contents);
}

#[test]
fn a_damaged_database_is_reported_and_left_untouched() {
    let node = TestNode::new();
    node.install_artifact(artifacts::TEST_HOSTILE);
    let TestNode { dir, node } = node;
    drop(node);
    let database = dir.path().join(DATABASE_FILE_NAME);
    let length = std::fs::metadata(&database).expect("metadata").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&database)
        .and_then(|file| file.set_len(length / 3))
        .expect("truncate");
    let truncated = std::fs::read(&database).expect("read");

    let error = open(dir.path(), NodeConfig::default()).expect_err("refused");
    let text = error.to_string();
    assert!(
        matches!(error, NodeError::Store(StoreError::Corrupt { .. })),
        "{text}"
    );
    assert!(text.contains("Restore it from a backup"), "{text}");
    assert_eq!(std::fs::read(&database).expect("read"), truncated);
}

#[test]
fn a_second_node_on_the_same_data_directory_is_refused() {
    let node = TestNode::new();
    let error = open(node.path(), NodeConfig::default()).expect_err("refused");
    let text = error.to_string();
    assert!(
        matches!(error, NodeError::Store(StoreError::InUse { .. })),
        "{text}"
    );
    assert!(text.contains("in use by another Outpost process"), "{text}");
}

#[test]
fn a_plugin_the_policy_no_longer_allows_is_unavailable_and_the_node_still_starts() {
    let node = TestNode::new();
    node.install_artifact(artifacts::THERMAL_PRINTER);
    node.install_artifact(artifacts::TEST_HOSTILE);
    let TestNode { dir, node } = node;
    drop(node);
    // The operator lowers the memory cap below what the driver asks for.
    let config = NodeConfig::parse(
        "[policy]\nmax-memory-mib = 8\ndefault-memory-mib = 8\n",
        "test",
    )
    .expect("config");
    let node = open(dir.path(), config).expect("the node starts");
    let plugins = node.plugins();
    let driver = plugins
        .iter()
        .find(|p| p.id == "outpost/thermal-printer")
        .expect("still listed");
    assert_eq!(driver.status, "unavailable");
    let reason = driver.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("limits.memory-mib = 16") && reason.contains("policy.max-memory-mib"),
        "{reason}"
    );
    let hostile = plugins
        .iter()
        .find(|p| p.id == "test/hostile")
        .expect("listed");
    assert_eq!(hostile.status, "active");
}
