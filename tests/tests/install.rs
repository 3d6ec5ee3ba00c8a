//! Installing: what is refused and why, and that a refused or failed install
//! leaves the node exactly as it was.

use outpost::call::CallFailure;
use outpost::config::NodeConfig;
use outpost::install::InstallError;
use outpost::manifest::PluginId;
use outpost::node::{Node, NodeOptions};
use outpost::printing::Document;
use outpost_e2e_tests::{PackageCopy, TestNode, artifacts, example_label};

/// A node with the reference driver installed and used, so every refusal
/// can be checked against it: still installed, still printing, data intact.
fn node_with_driver() -> TestNode {
    let node = TestNode::new();
    let driver = node.install_artifact(artifacts::THERMAL_PRINTER);
    node.node
        .render(&driver, &Document::Label(example_label()))
        .expect("the driver renders");
    node
}

fn unchanged(node: &TestNode) {
    let plugins: Vec<(String, String)> = node
        .node
        .plugins()
        .into_iter()
        .map(|p| (p.id, p.status.to_string()))
        .collect();
    assert_eq!(
        plugins,
        [("outpost/thermal-printer".to_string(), "active".to_string())]
    );
    let driver = node.loaded("outpost/thermal-printer");
    node.node
        .render(&driver, &Document::Label(example_label()))
        .expect("the driver still renders");
    let id = PluginId::parse("outpost/thermal-printer").expect("id");
    let counter = node
        .node
        .store()
        .kv_get(&id, "rendered/labels")
        .expect("read")
        .expect("the driver's counter survives");
    assert!(u64::from_le_bytes(counter.try_into().expect("8 bytes")) >= 2);
}

fn refusal(node: &TestNode, package: &std::path::Path) -> (InstallError, String) {
    match outpost::updates::install(&node.node, package) {
        Ok(report) => panic!("{} should have been refused: {report:?}", package.display()),
        Err(error) => {
            let text = error.to_string();
            (error, text)
        }
    }
}

#[test]
fn malformed_and_truncated_components_are_refused_naming_the_file() {
    let node = node_with_driver();
    let package = PackageCopy::new(artifacts::THERMAL_PRINTER, |m| m);
    let component = package.component(artifacts::THERMAL_PRINTER);
    let good = std::fs::read(&component).expect("read");

    std::fs::write(&component, b"#!/bin/sh\nrm -rf /\n").expect("write");
    let (error, text) = refusal(&node, package.path());
    assert!(matches!(error, InstallError::NotWasm { .. }), "{text}");
    assert!(
        text.contains("thermal_printer.wasm") && text.contains("not WebAssembly"),
        "{text}"
    );

    std::fs::write(&component, b"").expect("write");
    let (_, text) = refusal(&node, package.path());
    assert!(text.contains("empty"), "{text}");

    std::fs::write(&component, &good[..good.len() / 2]).expect("write");
    let (error, text) = refusal(&node, package.path());
    assert!(matches!(error, InstallError::Compile { .. }), "{text}");
    assert!(text.contains("thermal_printer.wasm"), "{text}");

    let mut flipped = good.clone();
    for byte in &mut flipped[2000..2100] {
        *byte ^= 0x5a;
    }
    std::fs::write(&component, &flipped).expect("write");
    refusal(&node, package.path());
    unchanged(&node);
}

#[test]
fn a_core_module_is_refused_with_how_to_build_a_component() {
    let node = node_with_driver();
    let package = PackageCopy::new(artifacts::THERMAL_PRINTER, |m| m);
    // The smallest valid core module: magic, version 1, no sections.
    std::fs::write(
        package.component(artifacts::THERMAL_PRINTER),
        b"\0asm\x01\0\0\0",
    )
    .expect("write");
    let (error, text) = refusal(&node, package.path());
    assert!(matches!(error, InstallError::CoreModule { .. }), "{text}");
    assert!(text.contains("wasm32-wasip2"), "{text}");
    unchanged(&node);
}

#[test]
fn a_component_of_another_world_is_refused() {
    let node = node_with_driver();
    let package = PackageCopy::new(artifacts::TEST_FORECASTER, |m| {
        m.replace("forecaster@0.1.0", "printer-driver@0.1.0")
    });
    let (_, text) = refusal(&node, package.path());
    assert!(
        text.contains("does not export `outpost:plugins/printer@0.1.0`"),
        "{text}"
    );
    assert!(text.contains("the forecaster world at 0.1.0"), "{text}");
    assert!(text.contains("fix `world` in plugin.toml"), "{text}");
    unchanged(&node);

    // Under its own world it installs.
    let report = outpost::updates::install(
        &node.node,
        std::path::Path::new(artifacts::TEST_FORECASTER.package_dir),
    )
    .expect("a forecaster installs as a forecaster");
    assert_eq!(report.world, "outpost:plugins/forecaster@0.1.0");
}

#[test]
fn a_future_contract_version_is_refused_by_name() {
    let node = node_with_driver();
    let (_, text) = refusal(
        &node,
        std::path::Path::new(artifacts::TEST_FUTURE_WIT.package_dir),
    );
    assert!(
        text.contains("printer-driver@0.2.0 is not supported"),
        "{text}"
    );
    assert!(text.contains("it supports printer-driver@0.1.0"), "{text}");

    // A manifest that lies about the version does not get it past either.
    let lying = PackageCopy::new(artifacts::TEST_FUTURE_WIT, |m| {
        m.replace("printer-driver@0.2.0", "printer-driver@0.1.0")
    });
    let (_, text) = refusal(&node, lying.path());
    assert!(text.contains("outpost:plugins/lifecycle@0.2.0"), "{text}");
    assert!(text.contains("the printer-driver world at 0.2.0"), "{text}");
    unchanged(&node);
}

#[test]
fn sockets_are_refused_at_install() {
    let node = node_with_driver();
    let (_, text) = refusal(
        &node,
        std::path::Path::new(artifacts::TEST_NETWORK.package_dir),
    );
    assert!(text.contains("imports `wasi:sockets/"), "{text}");
    assert!(text.contains("plugins get no sockets"), "{text}");
    unchanged(&node);
}

#[test]
fn a_capability_the_manifest_does_not_request_is_refused_naming_the_import() {
    let node = node_with_driver();
    let package = PackageCopy::new(artifacts::TEST_HOSTILE, |m| {
        m.replace("kv = { quota-bytes = 16384 }\n", "")
    });
    let (_, text) = refusal(&node, package.path());
    assert!(text.contains("imports `outpost:host/kv@0.1.0`"), "{text}");
    assert!(text.contains("needs the `kv` grant"), "{text}");
    unchanged(&node);
}

#[test]
fn the_operators_policy_caps_what_a_plugin_may_ask_for() {
    let node = TestNode::with_toml(
        "[policy]\nmax-memory-mib = 4\ndefault-memory-mib = 4\n\
         allowed-grants = [\"kv\", \"config\", \"assets\"]\n",
    );
    let (_, text) = refusal(
        &node,
        std::path::Path::new(artifacts::TEST_HOSTILE.package_dir),
    );
    assert!(text.contains("`scratch` grant is not allowed"), "{text}");
    let modest = PackageCopy::new(artifacts::TEST_HOSTILE, |m| {
        m.replace("scratch = { quota-bytes = 65536 }\n", "")
    });
    let (_, text) = refusal(&node, modest.path());
    assert!(text.contains("limits.memory-mib = 8"), "{text}");
    assert!(text.contains("raise policy.max-memory-mib"), "{text}");
    assert!(node.node.plugins().is_empty());
}

#[test]
fn the_component_must_report_the_manifests_version() {
    let node = node_with_driver();
    let package = PackageCopy::new(artifacts::THERMAL_PRINTER, |m| {
        m.replace("version = \"0.1.0\"", "version = \"0.3.0\"")
    });
    let (error, text) = refusal(&node, package.path());
    assert!(
        matches!(error, InstallError::VersionMismatch { .. }),
        "{text}"
    );
    assert!(
        text.contains("reports version 0.1.0") && text.contains("says 0.3.0"),
        "{text}"
    );
    unchanged(&node);
}

/// The hostile plugin packaged as `version`, reporting that version.
fn hostile_version(version: &str, extra_manifest: &str) -> PackageCopy {
    let copy = PackageCopy::new(artifacts::TEST_HOSTILE, |m| {
        format!(
            "{}{extra_manifest}",
            m.replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        )
    });
    std::fs::write(copy.path().join("assets/version.txt"), version).expect("write");
    copy
}

#[test]
fn an_upgrade_keeps_stored_data_and_migrates_from_the_old_version() {
    let node = TestNode::new();
    let old = hostile_version("0.1.0", "");
    let plugin = node.install(old.path());
    assert_eq!(
        node.hostile_ok(&plugin, "kv-get", &["migrated-from"]),
        "fresh"
    );
    node.hostile_ok(&plugin, "kv-set", &["customer", "Priya"]);

    let new = hostile_version("0.2.0", "");
    let report = outpost::updates::install(&node.node, new.path()).expect("upgrade");
    assert_eq!(report.previous.as_deref(), Some("0.1.0"));
    let upgraded = node.loaded("test/hostile");
    assert_eq!(upgraded.version.to_string(), "0.2.0");
    assert_eq!(node.hostile_ok(&upgraded, "kv-get", &["customer"]), "Priya");
    assert_eq!(
        node.hostile_ok(&upgraded, "kv-get", &["migrated-from"]),
        "0.1.0"
    );
    let record = node
        .node
        .store()
        .plugin(upgraded.id())
        .expect("read")
        .expect("record");
    assert_eq!(
        record.previous.map(|p| p.version.to_string()).as_deref(),
        Some("0.1.0")
    );
    // A call that started on the old version would have finished on it; new
    // calls use the new one.
    assert_eq!(plugin.version.to_string(), "0.1.0");
}

fn failing_upgrade(setting: &str) -> (TestNode, InstallError) {
    let node = TestNode::new();
    let old = hostile_version("0.1.0", "");
    let plugin = node.install(old.path());
    node.hostile_ok(&plugin, "kv-set", &["customer", "Priya"]);
    drop(plugin);
    // The operator's setting makes the next migration fail; plugin-config is
    // read when a node starts.
    let config = NodeConfig::parse(
        &format!("[plugin-config.\"test/hostile\"]\n{setting} = true\n"),
        "test config",
    )
    .expect("valid config");
    let TestNode { dir, node: inner } = node;
    drop(inner);
    let node = TestNode {
        node: Node::open(NodeOptions {
            data_dir: dir.path().to_path_buf(),
            config,
            config_origin: "test".into(),
        })
        .expect("reopen"),
        dir,
    };
    let new = hostile_version("0.2.0", "");
    let error = outpost::updates::install(&node.node, new.path()).expect_err("the upgrade fails");
    (node, error)
}

fn still_old_version_with_data(node: &TestNode) {
    let plugin = node.loaded("test/hostile");
    assert_eq!(plugin.version.to_string(), "0.1.0");
    assert_eq!(node.hostile_ok(&plugin, "kv-get", &["customer"]), "Priya");
    // The failed migration wrote "migrated-from = 0.1.0" before failing; that
    // write was rolled back with the rest of the install.
    assert_eq!(
        node.hostile_ok(&plugin, "kv-get", &["migrated-from"]),
        "fresh"
    );
    let record = node
        .node
        .store()
        .plugin(plugin.id())
        .expect("read")
        .expect("record");
    assert_eq!(record.active.version.to_string(), "0.1.0");
    assert!(!node.path().join("plugins/test/hostile/0.2.0").exists());
    // Storage is not left locked by the abandoned transaction.
    node.hostile_ok(&plugin, "kv-set", &["after", "ok"]);
}

#[test]
fn a_failed_migration_leaves_the_old_version_and_none_of_its_writes() {
    let (node, error) = failing_upgrade("fail-migrate");
    let text = error.to_string();
    assert!(
        text.contains("migrate") && text.contains("migration failed on purpose"),
        "{text}"
    );
    still_old_version_with_data(&node);
}

#[test]
fn a_migration_that_never_ends_is_stopped_and_rolled_back() {
    let (node, error) = failing_upgrade("spin-in-migrate");
    match error {
        InstallError::Call(call) => {
            assert!(
                matches!(call.failure, CallFailure::DeadlineExceeded(_)),
                "{call}"
            )
        }
        other => panic!("expected the deadline to stop migrate, got {other}"),
    }
    still_old_version_with_data(&node);
}

#[test]
fn downgrades_and_changed_code_under_an_old_version_are_refused() {
    let node = TestNode::new();
    let new = hostile_version("0.2.0", "");
    node.install(new.path());
    let old = hostile_version("0.1.0", "");
    let (error, text) = refusal(&node, old.path());
    assert!(matches!(error, InstallError::Downgrade { .. }), "{text}");

    let tampered = hostile_version("0.2.0", "");
    std::fs::write(
        tampered.component(artifacts::TEST_HOSTILE),
        std::fs::read(artifacts::THERMAL_PRINTER.component).expect("read"),
    )
    .expect("write");
    let (error, text) = refusal(&node, tampered.path());
    assert!(
        matches!(error, InstallError::SameVersionDifferentCode { .. }),
        "{text}"
    );
    assert_eq!(node.loaded("test/hostile").version.to_string(), "0.2.0");
}

#[test]
fn reinstalling_the_same_version_changes_nothing() {
    let node = node_with_driver();
    let report = outpost::updates::install(
        &node.node,
        std::path::Path::new(artifacts::THERMAL_PRINTER.package_dir),
    )
    .expect("reinstall");
    assert!(!report.changed);
    unchanged(&node);
}

#[test]
fn removing_keeps_stored_data_unless_purged() {
    let node = TestNode::new();
    let plugin = node.install_artifact(artifacts::TEST_HOSTILE);
    node.hostile_ok(&plugin, "kv-set", &["customer", "Priya"]);
    let id = plugin.id().clone();
    drop(plugin);

    assert!(outpost::updates::remove(&node.node, &id, false).expect("remove"));
    assert!(node.node.plugins().is_empty());
    assert!(
        !node.path().join("plugins/test").exists(),
        "assets are removed"
    );
    let plugin = node.install_artifact(artifacts::TEST_HOSTILE);
    assert_eq!(node.hostile_ok(&plugin, "kv-get", &["customer"]), "Priya");
    drop(plugin);

    assert!(outpost::updates::remove(&node.node, &id, true).expect("purge"));
    let plugin = node.install_artifact(artifacts::TEST_HOSTILE);
    assert_eq!(node.hostile_ok(&plugin, "kv-get", &["customer"]), "<none>");
    assert!(
        !outpost::updates::remove(
            &node.node,
            &PluginId::parse("nobody/here").expect("id"),
            false
        )
        .expect("remove")
    );
}
