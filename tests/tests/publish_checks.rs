//! A release every node would refuse is refused before it exists: versions
//! are immutable, so such a release would burn its number for good, and
//! "install the newest" would fail for every operator. `outpost vendor
//! publish` runs a node's install checks before it pushes anything, and the
//! registry runs the same checks on every pushed release before storing it,
//! for vendors who push some other way.

use outpost::releases::{self, PublishError};
use outpost_e2e_tests::registry::*;
use outpost_e2e_tests::{PackageCopy, TestNode, artifacts};
use outpost_registry::vendor::VendorError;
use std::path::Path;

/// A package no node would install, why, and the same release fixed.
struct Broken {
    plugin: &'static str,
    version: &'static str,
    package: PackageCopy,
    /// What the refusal must say: the problem and what to do.
    says: &'static [&'static str],
    fixed: PackageCopy,
}

fn edit_manifest(copy: &PackageCopy, edit: impl FnOnce(String) -> String) {
    let path = copy.path().join("plugin.toml");
    let text = std::fs::read_to_string(&path).expect("read manifest");
    std::fs::write(&path, edit(text)).expect("write manifest");
}

/// The hostile test plugin (a printer driver that imports `kv`), packaged
/// three ways a node refuses at install.
fn broken_packages() -> Vec<Broken> {
    // plugin.toml says 1.0.1; the component's `info` reports 1.0.0.
    let version = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    edit_manifest(&version, |m| {
        m.replace("version = \"1.0.0\"", "version = \"1.0.1\"")
    });
    // A printer driver that says it is a forecaster.
    let world = hostile_as(artifacts::TEST_HOSTILE, "acme/wrong-world", "1.0.0");
    edit_manifest(&world, |m| {
        m.replace(
            "world = \"outpost:plugins/printer-driver@0.1.0\"",
            "world = \"outpost:plugins/forecaster@0.1.0\"",
        )
    });
    // It imports outpost:host/kv, but the grant is gone.
    let grant = hostile_as(artifacts::TEST_HOSTILE, "acme/no-kv", "1.0.0");
    edit_manifest(&grant, |m| m.replace("kv = { quota-bytes = 16384 }\n", ""));
    vec![
        Broken {
            plugin: "acme/hostile",
            version: "1.0.1",
            package: version,
            says: &[
                "the component reports version 1.0.0, but plugin.toml says 1.0.1",
                "rebuild it or fix the manifest",
            ],
            fixed: hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.1"),
        },
        Broken {
            plugin: "acme/wrong-world",
            version: "1.0.0",
            package: world,
            says: &[
                "plugin.toml says world outpost:plugins/forecaster@0.1.0, but the component does not export",
                "fix `world` in plugin.toml or rebuild the component",
            ],
            fixed: hostile_as(artifacts::TEST_HOSTILE, "acme/wrong-world", "1.0.0"),
        },
        Broken {
            plugin: "acme/no-kv",
            version: "1.0.0",
            package: grant,
            says: &[
                "the component imports `outpost:host/kv@0.1.0`, which needs the `kv` grant",
                "add it under [grants] in plugin.toml",
            ],
            fixed: hostile_as(artifacts::TEST_HOSTILE, "acme/no-kv", "1.0.0"),
        },
    ]
}

fn says_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} is not in: {text}");
    }
}

/// `outpost vendor publish`: reads the folder, checks it, pushes, signs.
async fn vendor_publish(
    registry: &url::Url,
    vendor: &Vendor,
    package: &Path,
) -> Result<outpost_registry::vendor::Outcome, PublishError> {
    releases::publish(
        package,
        registry,
        &outpost_registry::tls::ClientTls::system(),
        &vendor.token,
        &[&vendor.key],
        jiff::SignedDuration::from_hours(24),
    )
    .await
    .map(|(_, outcome)| outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_publish_refuses_a_release_no_node_would_install_before_pushing_anything() {
    let registry = TestRegistry::start(test_config()).await;
    // Every request to the registry goes through the proxy, which notes it.
    let proxy = Proxy::start(&registry.url).await;
    for broken in broken_packages() {
        let error = vendor_publish(&proxy.url, &registry.acme, broken.package.path())
            .await
            .expect_err("no node would install it");
        assert!(
            matches!(error, PublishError::Refused { .. }),
            "{}: refused by the vendor's own checks, not the registry: {error}",
            broken.plugin
        );
        let text = error.to_string();
        says_all(&text, broken.says);
        says_all(
            &text,
            &[
                &broken.package.path().display().to_string(),
                "Nothing was pushed",
            ],
        );
        assert_eq!(
            proxy.seen(),
            Vec::new(),
            "{}: nothing reached the registry",
            broken.plugin
        );
        assert!(
            registry
                .store()
                .tags(broken.plugin)
                .expect("store")
                .is_empty(),
            "{}",
            broken.plugin
        );

        // The version number is still free: fixed, the release publishes.
        let outcome = vendor_publish(&registry.url, &registry.acme, broken.fixed.path())
            .await
            .unwrap_or_else(|e| panic!("{}: the fixed release publishes: {e}", broken.plugin));
        assert_eq!(
            outcome.target,
            format!("{}@{}", broken.plugin, broken.version)
        );
    }

    // And "install the newest" works for operators.
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    let installed = install(&node.node, &registry.url, "acme/hostile")
        .await
        .expect("install the newest");
    assert_eq!(installed, "1.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_refuses_a_release_no_node_would_install_when_pushed_without_the_checks() {
    let registry = TestRegistry::start(test_config()).await;
    for broken in broken_packages() {
        // What a vendor's own tooling might do: push the artifact with a
        // standard OCI client and sign it, skipping the vendor-side checks.
        let release = vendor_release(broken.package.path());
        let error = outpost_registry::vendor::publish(
            &registry.url,
            &outpost_registry::tls::ClientTls::system(),
            &registry.acme.token,
            &[&registry.acme.key],
            &release,
            jiff::SignedDuration::from_hours(24),
        )
        .await
        .expect_err("the registry refuses it");
        assert!(
            matches!(&error, VendorError::Push { what, .. } if what == "the manifest"),
            "{}: refused when its manifest is pushed: {error}",
            broken.plugin
        );
        let text = error.to_string();
        says_all(&text, &["no node would install this release"]);
        says_all(&text, broken.says);
        assert!(
            registry
                .store()
                .tags(broken.plugin)
                .expect("store")
                .is_empty(),
            "{}: no tag",
            broken.plugin
        );
    }
    // Nothing was signed: acme has never published.
    assert_eq!(registry.versions().get("acme"), None);

    // The version numbers are still free.
    for broken in broken_packages() {
        let release = vendor_release(broken.fixed.path());
        let outcome = outpost_registry::vendor::publish(
            &registry.url,
            &outpost_registry::tls::ClientTls::system(),
            &registry.acme.token,
            &[&registry.acme.key],
            &release,
            jiff::SignedDuration::from_hours(24),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: the fixed release publishes: {e}", broken.plugin));
        assert_eq!(
            outcome.target,
            format!("{}@{}", broken.plugin, broken.version)
        );
    }
}
