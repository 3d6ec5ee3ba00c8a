//! HTTPS between nodes, vendors and the registry, on 127.0.0.1 with a
//! fleet CA made for the test: a node that trusts the CA installs, one
//! that does not (or trusts another) refuses the registry and keeps what
//! it runs, and tokens never leave for another machine over plain HTTP.

use outpost::releases::{self, ProvisionedCa};
use outpost_e2e_tests::TestNode;
use outpost_e2e_tests::artifacts;
use outpost_e2e_tests::registry::*;
use outpost_e2e_tests::tls::TestCa;
use outpost_registry::tls::{ClientTls, TlsError};
use outpost_registry::vendor::VendorError;
use std::path::Path;

fn provision_with_ca(node: &TestNode, registry: &TestRegistry, ca: Option<&TestCa>) {
    let ca = ca.map(|ca| ProvisionedCa {
        pem: ca.ca_pem.clone(),
        file: ca.ca_file().display().to_string(),
    });
    releases::provision(
        node.node.store(),
        Path::new("root.json"),
        &registry.root_json,
        Some(&registry.url),
        ca.as_ref(),
    )
    .expect("provision");
}

async fn https_registry_with(ca: &TestCa, versions: &[&str]) -> TestRegistry {
    let registry = TestRegistry::start_https(test_config(), ca).await;
    for version in versions {
        let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", version);
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish over HTTPS");
    }
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_trusts_the_fleet_ca_installs_over_https() {
    let ca = TestCa::new("Outpost fleet test CA");
    let registry = https_registry_with(&ca, &["1.2.0"]).await;
    assert_eq!(registry.url.scheme(), "https");
    let node = TestNode::new();
    provision_with_ca(&node, &registry, Some(&ca));
    let installed = install(&node.node, &registry.url, "acme/hostile@^1")
        .await
        .expect("install over HTTPS");
    assert_eq!(installed, "1.2.0");
    // The CA survives in the node's settings, for the update agent too.
    let settings = node
        .node
        .store()
        .trust_settings()
        .expect("read")
        .expect("set");
    assert_eq!(settings.ca.as_deref(), Some(ca.ca_pem.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_certificate_no_trusted_ca_signed_is_refused_and_nothing_changes() {
    let ca = TestCa::new("Outpost fleet test CA");
    let registry = https_registry_with(&ca, &["1.2.0", "1.3.0"]).await;
    let node = TestNode::new();
    provision_with_ca(&node, &registry, Some(&ca));
    install(&node.node, &registry.url, "acme/hostile@=1.2.0")
        .await
        .expect("install 1.2.0");

    // The same node, provisioned again without the CA, then with another
    // fleet's: the registry (or someone in the middle) is not believed.
    let other = TestCa::new("Someone else's CA");
    for trusted in [None, Some(&other)] {
        provision_with_ca(&node, &registry, trusted);
        let error = install(&node.node, &registry.url, "acme/hostile@^1")
            .await
            .expect_err("an untrusted certificate");
        assert!(
            error.contains("not signed by a CA this machine trusts") && error.contains("--ca"),
            "{error}"
        );
        assert_eq!(
            node.loaded("acme/hostile").version.to_string(),
            "1.2.0",
            "the running version stays"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_that_does_not_trust_the_registry_certificate_pushes_nothing() {
    let ca = TestCa::new("Outpost fleet test CA");
    let registry = TestRegistry::start_https(test_config(), &ca).await;
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    let error = outpost_registry::vendor::publish(
        &registry.url,
        &ClientTls::system(),
        &registry.acme.token,
        &[&registry.acme.key],
        &vendor_release(package.path()),
        jiff::SignedDuration::from_hours(24),
    )
    .await
    .expect_err("an untrusted certificate");
    assert!(
        error
            .to_string()
            .contains("not signed by a CA this machine trusts"),
        "{error}"
    );
    assert!(
        registry
            .store()
            .tags("acme/hostile")
            .expect("tags")
            .is_empty(),
        "nothing was pushed"
    );
}

#[tokio::test]
async fn tokens_never_leave_for_another_machine_over_plain_http() {
    // 192.0.2.0/24 is reserved for documentation: nothing answers there,
    // so a connection attempt would hang until its timeout. The refusal
    // must come first, in well under that.
    let elsewhere = url::Url::parse("http://192.0.2.7:7272/").expect("url");
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    let key = outpost_registry::keys::KeyPair::generate().expect("key");
    let started = std::time::Instant::now();
    let error = outpost_registry::vendor::publish(
        &elsewhere,
        &ClientTls::system(),
        "a-vendor-token",
        &[&key],
        &vendor_release(package.path()),
        jiff::SignedDuration::from_hours(24),
    )
    .await
    .expect_err("plain HTTP off loopback");
    assert!(
        matches!(error, VendorError::Tls(TlsError::PlainHttp { .. })),
        "{error}"
    );
    assert!(
        error.to_string().contains("https://192.0.2.7:7272/"),
        "{error}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A node is told the same before it provisions anything.
    let refused = releases::parse_registry_url("http://192.0.2.7:7272").expect_err("refused");
    assert!(
        refused.to_string().contains("use https://192.0.2.7:7272"),
        "{refused}"
    );
    for allowed in [
        "http://127.0.0.1:7272",
        "http://localhost:7272",
        "http://[::1]:7272",
        "https://registry.example",
    ] {
        releases::parse_registry_url(allowed).expect(allowed);
    }
}

#[tokio::test]
async fn a_registry_without_tls_serves_only_on_loopback() {
    let ca = TestCa::new("Outpost fleet test CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = outpost_registry::store::RegistryStore::create(dir.path()).expect("store");
    let online = outpost_registry::repository::OnlineKeys::generate().expect("keys");
    let registry = std::sync::Arc::new(outpost_registry::server::Registry::new(
        store,
        online,
        test_config(),
    ));
    let everywhere = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let error = registry
        .clone()
        .serve(everywhere, std::future::pending())
        .await
        .expect_err("plain HTTP on every interface");
    assert!(error.to_string().contains("--tls-cert"), "{error}");

    // With a certificate, the same address is served (and stops cleanly).
    let dir = tempfile::tempdir().expect("temp dir");
    let store = outpost_registry::store::RegistryStore::create(dir.path()).expect("store");
    let online = outpost_registry::repository::OnlineKeys::generate().expect("keys");
    let mut config = test_config();
    config.tls = Some(ca.server());
    let registry = std::sync::Arc::new(outpost_registry::server::Registry::new(
        store, online, config,
    ));
    let everywhere = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    registry
        .serve(everywhere, async {})
        .await
        .expect("HTTPS on every interface");
}
