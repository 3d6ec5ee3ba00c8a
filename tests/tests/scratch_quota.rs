//! A plugin's `/scratch` quota holds while the call runs, whichever way the
//! plugin grows the folder: the write that would pass it is refused (the
//! plugin sees `quota`), and the call fails on its quota. Before, the folder
//! was measured only after the call, so a call could fill the disk first,
//! and a file nested past `PATH_MAX` was not counted at all.

use outpost::call::CallFailure;
use outpost::capabilities::files::ENTRY_BYTES;
use outpost_e2e_tests::{TestNode, artifacts};

/// `scratch.quota-bytes` in plugins/test-hostile/plugin.toml.
const QUOTA: u64 = 65_536;
/// What each way tries to write: far past the quota.
const FLOOD: u64 = 1 << 20;
const CHUNK: u64 = 4096;

/// Runs `scratch-fill how total chunk`, which must fail on the quota.
/// Returns what the quota refusal reported as tried, and what the plugin saw:
/// the error that stopped it and how far it had got.
fn refused(how: &str, total: u64, chunk: u64) -> (u64, String, u64) {
    let node = TestNode::new();
    let hostile = node.install_artifact(artifacts::TEST_HOSTILE);
    let args = [how, &total.to_string(), &chunk.to_string()];
    let failure = match node.hostile(&hostile, "scratch-fill", &args) {
        Ok(bytes) => panic!(
            "{how}: the call returned {:?} under a {QUOTA}-byte quota",
            String::from_utf8_lossy(&bytes)
        ),
        Err(error) => error.into_failure(),
    };
    let CallFailure::ScratchQuota { used, quota } = failure else {
        panic!("{how}: expected the quota to stop it, got {failure:?}")
    };
    assert_eq!(quota, QUOTA, "{how}");
    let seen = node.hostile_ok(&hostile, "kv-get", &["scratch-refused"]);
    let (error, done) = seen
        .rsplit_once(" after ")
        .unwrap_or_else(|| panic!("{how}: the plugin was never refused: {seen:?}"));
    let done = done.parse().expect("a count");
    (used, error.to_string(), done)
}

/// Every byte-writing way stops within one chunk of the quota, with what it
/// had written (plus `entries` names) inside it.
fn bounded(how: &str, entries: u64) {
    let (used, error, written) = refused(how, FLOOD, CHUNK);
    assert_eq!(error, "quota", "{how}");
    assert!(
        used > QUOTA && used <= QUOTA + CHUNK,
        "{how}: tried {used} bytes"
    );
    let held = written + entries * ENTRY_BYTES;
    assert!(
        held <= QUOTA && held + CHUNK > QUOTA,
        "{how}: {written} bytes written before the refusal"
    );
}

#[test]
fn descriptor_writes_stop_at_the_quota() {
    bounded("write", 1);
}

#[test]
fn writes_to_an_unlinked_open_file_stop_at_the_quota() {
    // Its name is gone, so only its bytes count.
    bounded("unlinked", 0);
}

#[test]
fn what_a_call_deletes_stops_counting() {
    let node = TestNode::new();
    let hostile = node.install_artifact(artifacts::TEST_HOSTILE);
    let churn = ["churn", &FLOOD.to_string(), "32768"];
    assert_eq!(
        node.hostile_ok(&hostile, "scratch-fill", &churn),
        format!("grew by {FLOOD}")
    );
}

#[test]
fn extending_a_file_with_set_size_stops_at_the_quota() {
    bounded("set-size", 1);
}

#[test]
fn stream_writes_stop_at_the_quota() {
    bounded("stream", 1);
    bounded("blocking-stream", 1);
    bounded("append", 1);
}

#[test]
fn empty_files_and_folders_count_against_the_quota() {
    for how in ["files", "dirs"] {
        let (used, error, made) = refused(how, 1000, 1);
        assert_eq!(error, "quota", "{how}");
        assert_eq!(made, QUOTA / ENTRY_BYTES, "{how}");
        assert_eq!(used, QUOTA + ENTRY_BYTES, "{how}");
    }
}

#[test]
fn a_file_nested_past_path_max_is_counted() {
    // 25 folders of 200-byte names, then the file: 5 KB of path.
    bounded("deep", 26);
}
