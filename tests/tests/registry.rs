//! Publishing to a real registry on 127.0.0.1 and installing on a real
//! node: the happy paths, and every attack on trust refused with the
//! node's installed plugins untouched (docs/security.md maps each threat
//! to its test here).

use outpost_e2e_tests::TestNode;
use outpost_e2e_tests::artifacts;
use outpost_e2e_tests::registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_publishes_and_a_node_installs_the_newest_matching_version() {
    let registry = TestRegistry::start(test_config()).await;
    for version in ["1.2.0", "1.3.0", "2.0.0"] {
        let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", version);
        let outcome = registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
        assert_eq!(outcome.target, format!("acme/hostile@{version}"));
    }
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    let installed = install(&node.node, &registry.url, "acme/hostile@^1.2")
        .await
        .expect("install");
    assert_eq!(installed, "1.3.0");
    let plugin = node.loaded("acme/hostile");
    assert_eq!(plugin.version.to_string(), "1.3.0");
    // The assets travelled as layers and the plugin reads them.
    assert_eq!(
        node.hostile_ok(&plugin, "read-file", &["/assets/version.txt"]),
        "1.3.0"
    );
}
