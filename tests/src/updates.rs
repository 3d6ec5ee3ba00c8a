//! For the update tests: releases of the hostile plugin under one id and
//! several versions (optionally with their own machine code, a failing
//! health check, more grants), a node that follows a test registry with its
//! background work running, and waiting for what that work does.

use crate::registry::{TestRegistry, hostile_as, provision};
use crate::{PackageCopy, SharedNode, TestNode, artifacts};
use outpost::control::{self, InstallRequest};
use outpost::manifest::PluginId;
use outpost::node::Node;
use outpost::store::{Transition, UpdateState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const PLUGIN: &str = "acme/hostile";

pub fn plugin_id() -> PluginId {
    PluginId::parse(PLUGIN).expect("valid id")
}

/// The hostile plugin as `acme/hostile` at `version`, its manifest passed
/// through `edit`.
pub fn release(version: &str, edit: impl FnOnce(String) -> String) -> PackageCopy {
    let copy = hostile_as(artifacts::TEST_HOSTILE, PLUGIN, version);
    let manifest = copy.path().join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).expect("read manifest");
    std::fs::write(&manifest, edit(text)).expect("write manifest");
    copy
}

/// Makes the copy's component differ from every other (a custom section
/// naming `tag` at its end), so installing it compiles new machine code
/// rather than finding the same build in the cache.
pub fn with_own_code(copy: &PackageCopy, tag: &str) {
    let component = copy.component(artifacts::TEST_HOSTILE);
    let mut wasm = std::fs::read(&component).expect("read component");
    let name = b"outpost-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    wasm.push(0); // custom section
    leb128(&mut wasm, payload.len() as u64);
    wasm.extend_from_slice(&payload);
    std::fs::write(&component, wasm).expect("write component");
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The node's background work (outbox delivery and the update agent),
/// running until dropped.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    pub fn start(node: &Arc<Node>) -> Background {
        let (stop, stopped) = watch::channel(false);
        let tasks = control::start_background(node, move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            }
        });
        Background { stop, tasks }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A node provisioned with `registry`'s root, configured by `toml` (plus a
/// short probation unless it says otherwise).
pub fn following_node(registry: &TestRegistry, toml: &str) -> SharedNode {
    let node = TestNode::with_toml(toml).shared();
    provision(&node.node, &registry.root_json, &registry.url);
    node
}

/// A node as [`following_node`] with 1.0.0 of the plugin published,
/// installed and followed at `^1`.
pub async fn following_installed(registry: &TestRegistry, toml: &str) -> SharedNode {
    let shared = following_node(registry, toml);
    registry
        .publish(&registry.acme, release("1.0.0", |m| m).path())
        .await
        .expect("publish");
    install(&shared.node, &format!("{PLUGIN}@=1.0.0")).await;
    control::follow(&shared.node, plugin_id(), Some("^1".into()))
        .await
        .expect("follow");
    shared
}

/// Installs `spec` from the node's registry, approved, now.
pub async fn install(node: &Arc<Node>, spec: &str) -> control::InstallOutcome {
    control::install(
        node,
        InstallRequest {
            spec: spec.into(),
            registry: None,
            plugin: None,
            approve: true,
            package: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("installing {spec}: {e}"))
}

/// Waits up to 60 s for `done`, polling.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The version of the plugin that serves calls now.
pub fn serving(node: &Node) -> Option<String> {
    node.loaded(&plugin_id()).map(|p| p.version.to_string())
}

/// The update history of the plugin, oldest first.
pub fn history(node: &Node) -> Vec<Transition> {
    node.store()
        .update_history(Some(&plugin_id()), 1000)
        .expect("history")
}

/// Whether the newest transition to `version` is `state`.
pub fn reached(node: &Node, version: &str, state: UpdateState) -> bool {
    history(node)
        .iter()
        .rev()
        .find(|t| t.to.to_string() == version)
        .is_some_and(|t| t.state == state)
}
