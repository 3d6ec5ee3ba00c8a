//! The sandbox holds against a hostile plugin: each attack costs only its own
//! call, the node keeps serving, and no stored state is lost.

use outpost::call::{CallFailure, PluginFailure};
use outpost::plugins::LoadedPlugin;
use outpost_e2e_tests::{PackageCopy, TestNode, artifacts};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node with the hostile plugin, plus a second plugin (another copy of it,
/// under another id) holding data the first must not reach.
struct Scene {
    node: TestNode,
    hostile: Arc<LoadedPlugin>,
    bystander: Arc<LoadedPlugin>,
    _copy: PackageCopy,
}

const BYSTANDER_SECRET: &str = "bystander's card token";

fn scene() -> Scene {
    let node = TestNode::new();
    let hostile = node.install_artifact(artifacts::TEST_HOSTILE);
    let copy = PackageCopy::new(artifacts::TEST_HOSTILE, |m| {
        m.replace("id = \"test/hostile\"", "id = \"test/bystander\"")
    });
    let bystander = node.install(copy.path());
    node.hostile_ok(&bystander, "kv-set", &["secret", BYSTANDER_SECRET]);
    Scene {
        node,
        hostile,
        bystander,
        _copy: copy,
    }
}

impl Scene {
    /// After an attack: both plugins still answer, and the bystander's data
    /// and both install records are intact.
    fn still_serving(&self) {
        assert_eq!(
            self.node
                .hostile_ok(&self.hostile, "echo", &["still", "here"]),
            "still here"
        );
        assert_eq!(
            self.node.hostile_ok(&self.bystander, "kv-get", &["secret"]),
            BYSTANDER_SECRET
        );
        let ids: Vec<String> = self.node.node.plugins().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["test/bystander", "test/hostile"]);
    }

    fn failure(&self, command: &str, args: &[&str]) -> CallFailure {
        match self.node.hostile(&self.hostile, command, args) {
            Ok(bytes) => panic!(
                "{command} should have failed, returned {:?}",
                String::from_utf8_lossy(&bytes)
            ),
            Err(error) => {
                assert_eq!(error.plugin.as_str(), "test/hostile", "{error}");
                assert_eq!(error.version.to_string(), "0.1.0", "{error}");
                error.into_failure()
            }
        }
    }
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline_while_other_calls_succeed() {
    let scene = Arc::new(scene());
    let spinner = {
        let scene = scene.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let failure = scene.failure("spin", &[]);
            (failure, started.elapsed())
        })
    };
    // While it spins, the other plugin and the spinner's own plugin serve.
    let mut served = 0;
    while !spinner.is_finished() {
        assert_eq!(
            scene.node.hostile_ok(&scene.bystander, "echo", &["ok"]),
            "ok"
        );
        served += 1;
    }
    let (failure, elapsed) = spinner.join().expect("spinner thread");
    assert_eq!(
        failure,
        CallFailure::DeadlineExceeded(Duration::from_millis(300))
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "stopped early: {elapsed:?}"
    );
    // Generous: the deadline is 300 ms and the clock ticks every 5 ms; this
    // only guards against "never stopped" on a loaded machine.
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped late: {elapsed:?}"
    );
    assert!(served > 0, "no call completed while the loop ran");
    scene.still_serving();
}

#[test]
fn sleeping_past_the_deadline_is_cut_short() {
    let scene = scene();
    let started = Instant::now();
    let failure = scene.failure("sleep", &["60000"]);
    assert_eq!(
        failure,
        CallFailure::DeadlineExceeded(Duration::from_millis(300))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    scene.still_serving();
}

#[test]
fn a_memory_bomb_is_trapped_at_its_cap() {
    let scene = scene();
    assert_eq!(
        scene.failure("grow-memory", &[]),
        CallFailure::MemoryLimit {
            limit_bytes: 8 << 20
        }
    );
    scene.still_serving();
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let scene = scene();
    match scene.failure("panic", &[]) {
        CallFailure::Panicked(message) => {
            assert!(
                message.contains("hostile plugin panicked on purpose"),
                "{message}"
            )
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    scene.still_serving();
}

#[test]
fn abort_exit_and_stack_overflow_each_cost_one_call() {
    let scene = scene();
    assert!(matches!(
        scene.failure("abort", &[]),
        CallFailure::Trapped(_)
    ));
    // WASI 0.2 carries only success or failure, so exit(7) arrives as 1.
    assert_eq!(scene.failure("exit", &[]), CallFailure::Exited(1));
    // Rust keeps its stack in linear memory, so running out of it surfaces
    // as an out-of-bounds access (or, for deep wasm frames, a stack
    // overflow): either way a trap that ends only this call.
    assert!(matches!(
        scene.failure("stack-overflow", &[]),
        CallFailure::Trapped(_)
    ));
    scene.still_serving();
}

fn denied(failure: CallFailure) -> String {
    match failure {
        CallFailure::Plugin(PluginFailure::Denied(why)) => why,
        other => panic!("expected the filesystem to refuse, got {other:?}"),
    }
}

#[test]
fn files_outside_the_granted_folders_do_not_exist() {
    let scene = scene();
    for path in [
        "/etc/passwd",
        "/assets/../../../../../etc/passwd",
        "/assets/../scratch/x",
        "/scratch/../../etc/passwd",
        "../etc/passwd",
        "etc/passwd",
        "/",
    ] {
        let why = denied(scene.failure("read-file", &[path]));
        assert!(!why.contains("root:"), "{path}: {why}");
    }
    assert!(
        scene.failure("list-dir", &["/"])
            != CallFailure::Plugin(PluginFailure::Internal(String::new()))
    );
    // Its own assets are readable, and read-only.
    let readme = scene
        .node
        .hostile_ok(&scene.hostile, "read-file", &["/assets/readme.txt"]);
    assert!(
        readme.starts_with("Assets of the hostile test plugin"),
        "{readme}"
    );
    denied(scene.failure("write-file", &["/assets/readme.txt", "defaced"]));
    denied(scene.failure("write-file", &["/assets/new.txt", "planted"]));
    scene.still_serving();
}

#[test]
fn symlinks_cannot_lead_out_of_the_assets_folder() {
    let scene = scene();
    let assets = scene.node.path().join("plugins/test/hostile/0.1.0/assets");
    assert!(
        assets.join("readme.txt").is_file(),
        "assets installed at {}",
        assets.display()
    );
    // Someone with access to the data directory plants links; the plugin still
    // cannot follow them out.
    std::os::unix::fs::symlink("/etc/passwd", assets.join("absolute")).expect("link");
    std::os::unix::fs::symlink(
        "../../../../../../../../etc/passwd",
        assets.join("relative"),
    )
    .expect("link");
    std::os::unix::fs::symlink("/etc", assets.join("folder")).expect("link");
    for path in [
        "/assets/absolute",
        "/assets/relative",
        "/assets/folder/passwd",
    ] {
        let why = denied(scene.failure("read-file", &[path]));
        assert!(!why.contains("root:"), "{path}: {why}");
    }
    scene.still_serving();
}

#[test]
fn scratch_is_fresh_for_every_call_and_capped() {
    let scene = scene();
    assert_eq!(
        scene.node.hostile_ok(
            &scene.hostile,
            "write-file",
            &["/scratch/note", "left behind"]
        ),
        "written"
    );
    // The next call gets an empty folder.
    assert_eq!(
        scene
            .node
            .hostile_ok(&scene.hostile, "list-dir", &["/scratch"]),
        ""
    );
    // Refused as it passes the quota, within one write of it.
    let big = "x".repeat(100_000);
    match scene.failure("write-file", &["/scratch/big", &big]) {
        CallFailure::ScratchQuota { used, quota } => {
            assert_eq!(quota, 65_536);
            assert!((65_537..100_000).contains(&used), "tried {used} bytes");
        }
        other => panic!("expected the scratch quota to stop it, got {other:?}"),
    }
    let leftovers = std::fs::read_dir(scene.node.path().join("scratch"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "scratch folders are removed after each call");
    scene.still_serving();
}

#[test]
fn one_plugin_cannot_read_or_write_another_plugins_keys() {
    let scene = scene();
    let node = &scene.node;
    assert_eq!(
        node.hostile_ok(&scene.hostile, "kv-get", &["secret"]),
        "<none>"
    );
    for key in [
        "test/bystander/secret",
        "../test/bystander/secret",
        "test/bystander:secret",
        "bystander",
        "secret ",
    ] {
        assert_eq!(
            node.hostile_ok(&scene.hostile, "kv-get", &[key]),
            "<none>",
            "{key}"
        );
    }
    // Its own keys (its migration wrote one at install), none of the other's.
    assert_eq!(
        node.hostile_ok(&scene.hostile, "kv-list", &[""]),
        "migrated-from"
    );
    // A key with a control character cannot smuggle a namespace separator.
    match scene.failure("kv-get", &["test/bystander\0secret"]) {
        CallFailure::Plugin(PluginFailure::Internal(why)) => {
            assert!(why.contains("control characters"), "{why}")
        }
        other => panic!("expected an invalid-key error, got {other:?}"),
    }
    // Writing the same key name lands in its own namespace.
    node.hostile_ok(&scene.hostile, "kv-set", &["secret", "overwritten?"]);
    assert_eq!(
        node.hostile_ok(&scene.hostile, "kv-get", &["secret"]),
        "overwritten?"
    );
    scene.still_serving();
}

#[test]
fn filling_storage_stops_at_the_quota_and_keeps_what_fit() {
    let scene = scene();
    match scene.failure("kv-fill", &[]) {
        CallFailure::Plugin(PluginFailure::Unavailable(why)) => {
            assert!(why.contains("quota"), "{why}")
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    let id = scene.hostile.id().clone();
    let usage = scene.node.node.store().kv_usage(&id).expect("usage");
    assert!(usage.bytes <= 16_384 && usage.bytes > 15_000, "{usage:?}");
    scene.still_serving();
}

#[test]
fn floods_of_logs_and_output_are_capped() {
    let scene = scene();
    assert_eq!(
        scene.node.hostile_ok(&scene.hostile, "log-flood", &[]),
        "logged"
    );
    assert_eq!(
        scene.node.hostile_ok(&scene.hostile, "stderr-flood", &[]),
        "flooded"
    );
    scene.still_serving();
}

#[test]
fn no_environment_arguments_or_precise_clocks() {
    let scene = scene();
    assert_eq!(
        scene.node.hostile_ok(&scene.hostile, "env", &[]),
        "vars=[] args=[]"
    );
    let clock = scene.node.hostile_ok(&scene.hostile, "clock", &[]);
    assert!(
        clock.starts_with("wall_nanos=0 "),
        "wall clock is whole seconds: {clock}"
    );
    let step: u128 = clock
        .rsplit('=')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a step");
    assert!(
        step == u128::MAX || step >= 1_000_000,
        "monotonic clock finer than 1 ms: {step} ns"
    );
}

#[test]
fn fuel_limits_stop_a_metered_plugin() {
    let node = TestNode::new();
    let copy = PackageCopy::new(artifacts::TEST_HOSTILE, |m| {
        m.replace("[limits]", "[limits]\nfuel = 5000000")
    });
    let metered = node.install(copy.path());
    let failure = node
        .hostile(&metered, "spin", &[])
        .err()
        .map(|e| e.into_failure());
    assert_eq!(failure, Some(CallFailure::FuelExhausted(5_000_000)));
    // Fuel is per call: the next call starts with a full tank.
    assert_eq!(
        node.hostile_ok(&metered, "echo", &["refuelled"]),
        "refuelled"
    );
}
