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

use outpost::releases::{ReleaseError, Source, Wanted};
use outpost_registry::admin;
use outpost_registry::client::ClientError;
use outpost_registry::keys::KeyPair;
use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
use outpost_registry::tough::schema::{Signed, Targets};
use outpost_registry::tuf;

/// A registry with acme/hostile 1.2.0 and 1.3.0 published.
async fn registry_with_two_versions(config: outpost_registry::server::ServeConfig) -> TestRegistry {
    let registry = TestRegistry::start(config).await;
    for version in ["1.2.0", "1.3.0"] {
        let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", version);
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
    }
    registry
}

/// A proxy in front of `registry` and a node, provisioned through it, that
/// has installed acme/hostile 1.2.0: what each attack must leave running.
async fn node_behind_proxy_with_1_2_0(registry: &TestRegistry) -> (Proxy, TestNode) {
    let proxy = Proxy::start(&registry.url).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &proxy.url);
    install(&node.node, &proxy.url, "acme/hostile@=1.2.0")
        .await
        .expect("install 1.2.0");
    (proxy, node)
}

/// The node still runs `version` of acme/hostile, and answers calls.
fn still_runs(node: &TestNode, version: &str) {
    let plugin = node.loaded("acme/hostile");
    assert_eq!(plugin.version.to_string(), version);
    assert_eq!(
        node.hostile_ok(&plugin, "read-file", &["/assets/version.txt"]),
        version
    );
}

/// What a registry whose online keys were stolen serves: `role`'s next
/// metadata, signed with `key`, adding `acme/hostile@9.0.0` (the bytes of
/// an acme release already published).
fn force_acme_9_0_0(registry: &TestRegistry, role: &str, key: &KeyPair) {
    let current = |name: &str| -> (u64, Signed<Targets>) {
        let version = registry.versions()[name];
        let file = registry.tuf_file(&format!("{version}.{name}.json"));
        (version, tuf::parse(name, &file).expect("role metadata"))
    };
    let (_, acme) = current("acme");
    let release = acme
        .signed
        .targets
        .values()
        .next()
        .expect("an acme release")
        .clone();
    let (version, previous) = current(role);
    let forged = repository::next_vendor_role(
        Some(&previous),
        vec![("acme/hostile@9.0.0".into(), release)],
        jiff::SignedDuration::from_hours(1),
        &[key],
    )
    .expect("sign");
    registry.force_role(role, &tuf::to_bytes(&forged), version + 1);
}

fn client_error(error: ReleaseError) -> ClientError {
    match error {
        ReleaseError::Client(error) => error,
        other => panic!("expected a verification error, got: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_artifact_is_refused_and_the_installed_version_keeps_running() {
    let registry = registry_with_two_versions(test_config()).await;
    let (proxy, node) = node_behind_proxy_with_1_2_0(&registry).await;

    proxy.tamper("/blobs/", Tamper::FlipLastByte);
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("a flipped byte is refused"),
    );
    assert!(matches!(error, ClientError::Tampered { .. }), "{error}");
    assert!(error.to_string().contains("tampered"), "{error}");
    still_runs(&node, "1.2.0");

    proxy.clear();
    proxy.tamper("/manifests/", Tamper::FlipLastByte);
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("a flipped manifest is refused"),
    );
    assert!(matches!(error, ClientError::Tampered { .. }), "{error}");
    still_runs(&node, "1.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_longer_than_signed_is_cut_off_at_its_signed_length() {
    let registry = registry_with_two_versions(test_config()).await;
    let (proxy, node) = node_behind_proxy_with_1_2_0(&registry).await;

    for path in ["/manifests/", "/blobs/"] {
        proxy.clear();
        proxy.tamper(path, Tamper::Append(vec![0x41; 4 << 20]));
        let error = client_error(
            fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
                .await
                .expect_err("padding is refused"),
        );
        assert!(
            matches!(error, ClientError::TooLong { .. }),
            "{path}: {error}"
        );
        // Nothing past the signed length was kept.
        for entry in std::fs::read_dir(downloads(&node.node)).expect("downloads") {
            let entry = entry.expect("entry");
            assert!(
                entry.metadata().expect("metadata").len() < 4 << 20,
                "{} kept the padding",
                entry.path().display()
            );
        }
    }
    still_runs(&node, "1.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_cannot_publish_or_sign_under_another_vendors_namespace() {
    let registry = registry_with_two_versions(test_config()).await;

    // Bob's token cannot push into acme's repositories.
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.4.0");
    let error = registry
        .publish(&registry.bob, package.path())
        .await
        .expect_err("bob cannot push under acme");
    assert!(error.to_string().contains("publishes under bob"), "{error}");

    // Acme's token with Bob's key: the registry checks the signature.
    let impostor = Vendor {
        key: registry.bob.key.clone(),
        ..registry.acme.clone()
    };
    let error = registry
        .publish(&impostor, package.path())
        .await
        .expect_err("bob's key cannot sign for acme");
    assert!(
        error.to_string().contains("not signed by enough"),
        "{error}"
    );

    // A registry whose online keys were stolen serves Bob's role naming an
    // acme release: the node does not see it, because acme/* is delegated
    // to acme's key only.
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    install(&node.node, &registry.url, "acme/hostile@=1.2.0")
        .await
        .expect("install 1.2.0");
    let bob_package = hostile_as(artifacts::TEST_HOSTILE, "bob/hostile", "1.0.0");
    registry
        .publish(&registry.bob, bob_package.path())
        .await
        .expect("bob publishes his own");
    force_acme_9_0_0(&registry, "bob", &registry.bob.key);

    // tough refuses the whole repository, not only the forged release.
    let error = client_error(
        fetch(&node.node, &registry.url, "acme/hostile@9")
            .await
            .expect_err("bob's acme release is not trusted"),
    );
    assert!(
        error.to_string().contains("outside its own namespace"),
        "{error}"
    );
    still_runs(&node, "1.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_vendor_key_stops_publishing_and_nodes_move_to_the_new_one() {
    let registry = registry_with_two_versions(test_config()).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    install(&node.node, &registry.url, "acme/hostile@=1.2.0")
        .await
        .expect("install 1.2.0");

    // Acme's key was stolen: the central team gives the namespace a new one.
    let new_key = KeyPair::generate().expect("key");
    admin::replace_namespace_keys(registry.store(), "acme", vec![new_key.public()], 1)
        .expect("rekey");
    let v1_4 = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.4.0");
    let error = registry
        .publish(&registry.acme, v1_4.path())
        .await
        .expect_err("the old key can no longer publish");
    assert!(
        error.to_string().contains("not signed by enough"),
        "{error}"
    );

    // Until acme signs with the new key, nodes keep the delegation its
    // published list is signed for, even when another vendor publishes.
    let bob_package = hostile_as(artifacts::TEST_HOSTILE, "bob/hostile", "1.0.0");
    registry
        .publish(&registry.bob, bob_package.path())
        .await
        .expect("bob publishes");
    assert_eq!(
        install(&node.node, &registry.url, "acme/hostile@=1.3.0")
            .await
            .expect("acme's old list is still trusted"),
        "1.3.0"
    );

    // Publishing the latest release again with the new key re-signs the
    // list, and the delegation moves with it.
    let in_effect = |registry: &TestRegistry| {
        repository::namespace_keys_in_effect(registry.store(), "acme").expect("targets")
    };
    assert_eq!(
        in_effect(&registry),
        Some(vec![registry.acme.key.key_id_hex()])
    );
    let acme = Vendor {
        key: new_key.clone(),
        ..registry.acme.clone()
    };
    let before = registry.versions()["acme"];
    let v1_3 = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.3.0");
    let outcome = registry.publish(&acme, v1_3.path()).await.expect("re-sign");
    assert_eq!(outcome.metadata_version, before + 1);
    assert_eq!(in_effect(&registry), Some(vec![new_key.key_id_hex()]));
    registry
        .publish(&acme, v1_4.path())
        .await
        .expect("publish 1.4.0 with the new key");
    assert_eq!(
        install(&node.node, &registry.url, "acme/hostile@^1.4")
            .await
            .expect("install 1.4.0"),
        "1.4.0"
    );
    still_runs(&node, "1.4.0");

    // The stolen key is worthless to the thief even with the registry's
    // online keys: a list it signs is refused by the node.
    force_acme_9_0_0(&registry, "acme", &registry.acme.key);
    let error = client_error(
        fetch(&node.node, &registry.url, "acme/hostile@9")
            .await
            .expect_err("a list signed by the old key is refused"),
    );
    assert!(
        error.to_string().contains("not signed by enough"),
        "{error}"
    );
    still_runs(&node, "1.4.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_signed_below_its_threshold_is_refused() {
    let registry = registry_with_two_versions(test_config()).await;
    let (proxy, node) = node_behind_proxy_with_1_2_0(&registry).await;

    // A timestamp signed by a key the root does not name for it.
    let versions = registry.versions();
    let attacker = outpost_registry::keys::KeyPair::generate().expect("key");
    let snapshot = registry.tuf_file(&format!("{}.snapshot.json", versions["snapshot"]));
    let forged = tuf::timestamp(
        versions["timestamp"] + 1,
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
        versions["snapshot"],
        &snapshot,
    );
    proxy.tamper(
        "/tuf/timestamp.json",
        Tamper::Replace(tuf::to_bytes(&tuf::sign(forged, &[&attacker]))),
    );
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("an unsigned timestamp is refused"),
    );
    assert!(
        error.to_string().contains("not signed by enough"),
        "{error}"
    );

    // A namespace that needs two of its vendor's keys: one is not enough.
    let first = outpost_registry::keys::KeyPair::generate().expect("key");
    let second = outpost_registry::keys::KeyPair::generate().expect("key");
    outpost_registry::admin::add_namespace(
        registry.store(),
        "duo",
        vec![first.public(), second.public()],
        2,
    )
    .expect("namespace");
    let token = outpost_registry::admin::issue_token(registry.store(), "duo", "").expect("token");
    let duo = Vendor {
        namespace: "duo".into(),
        key: first.clone(),
        token,
    };
    let package = hostile_as(artifacts::TEST_HOSTILE, "duo/hostile", "1.0.0");
    let error = publish_to(&registry.url, &duo, &[&first], package.path())
        .await
        .expect_err("one of two keys is below the threshold");
    assert!(
        error.to_string().contains("not signed by enough"),
        "{error}"
    );
    publish_to(&registry.url, &duo, &[&first, &second], package.path())
        .await
        .expect("both keys meet the threshold");
    still_runs(&node, "1.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_metadata_and_older_versions_are_refused_even_after_a_restart() {
    let registry = registry_with_two_versions(test_config()).await;
    let proxy = Proxy::start(&registry.url).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &proxy.url);
    let old_timestamp = registry.tuf_file("timestamp.json");
    // A newer timestamp, which the node then sees.
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.4.0");
    registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish 1.4.0");
    install(&node.node, &proxy.url, "acme/hostile@=1.4.0")
        .await
        .expect("install 1.4.0");

    // What the node has seen survives a restart.
    let node = node.restart();
    proxy.tamper("/tuf/timestamp.json", Tamper::Replace(old_timestamp));
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("an older timestamp is refused"),
    );
    assert!(error.to_string().contains("rollback"), "{error}");

    // With honest metadata, an older release than the installed one is
    // still refused: the node does not downgrade.
    proxy.clear();
    let error = install(&node.node, &proxy.url, "acme/hostile@=1.2.0")
        .await
        .expect_err("a downgrade is refused");
    assert!(error.contains("downgrades are refused"), "{error}");
    still_runs(&node, "1.4.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_from_different_versions_of_the_repository_is_refused() {
    let registry = registry_with_two_versions(test_config()).await;
    let (proxy, node) = node_behind_proxy_with_1_2_0(&registry).await;
    let before = registry.versions();
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.4.0");
    registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish");
    let after = registry.versions();

    // The new timestamp with the previous snapshot under the new name.
    let old_snapshot = registry.tuf_file(&format!("{}.snapshot.json", before["snapshot"]));
    proxy.tamper(
        &format!("/tuf/{}.snapshot.json", after["snapshot"]),
        Tamper::Replace(old_snapshot),
    );
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.4.0")
            .await
            .expect_err("mixed snapshot"),
    );
    assert!(error.to_string().contains("mix-and-match"), "{error}");

    // The new snapshot with acme's previous release metadata.
    proxy.clear();
    let old_acme = registry.tuf_file(&format!("{}.acme.json", before["acme"]));
    proxy.tamper(
        &format!("/tuf/{}.acme.json", after["acme"]),
        Tamper::Replace(old_acme),
    );
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.4.0")
            .await
            .expect_err("mixed vendor metadata"),
    );
    assert!(error.to_string().contains("mix-and-match"), "{error}");
    still_runs(&node, "1.2.0");

    proxy.clear();
    install(&node.node, &proxy.url, "acme/hostile@=1.4.0")
        .await
        .expect("consistent metadata installs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_metadata_refuses_installs_while_installed_plugins_keep_running() {
    let mut config = test_config();
    config.lifetimes = Lifetimes {
        timestamp: jiff::SignedDuration::from_secs(6),
        ..Lifetimes::default()
    };
    let registry = registry_with_two_versions(config).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    install(&node.node, &registry.url, "acme/hostile@=1.2.0")
        .await
        .expect("install while fresh");

    // The registry stops re-signing (frozen); the timestamp lapses.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let error = client_error(
        fetch(&node.node, &registry.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("expired metadata"),
    );
    assert!(error.to_string().contains("expired"), "{error}");
    still_runs(&node, "1.2.0");
    let node = node.restart();
    still_runs(&node, "1.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_walks_root_rotations_one_version_at_a_time() {
    let registry = registry_with_two_versions(test_config()).await;
    let (proxy, node) = node_behind_proxy_with_1_2_0(&registry).await;
    let second_root = outpost_registry::keys::KeyPair::generate().expect("key");
    let third_root = outpost_registry::keys::KeyPair::generate().expect("key");
    repository::rotate_root(
        registry.store(),
        &registry.root_keys,
        std::slice::from_ref(&second_root),
        1,
        &registry.online,
        Lifetimes::default(),
    )
    .expect("rotate to 2");
    // Version 3 also replaces the online keys: only a node that accepted
    // root 2 and then 3 trusts the new timestamp key.
    let new_online = OnlineKeys::generate().expect("keys");
    repository::rotate_root(
        registry.store(),
        std::slice::from_ref(&second_root),
        std::slice::from_ref(&third_root),
        1,
        &new_online,
        Lifetimes::default(),
    )
    .expect("rotate to 3");

    // Without 2.root.json a node on root 1 cannot get to 3.
    proxy.tamper("/tuf/2.root.json", Tamper::Hide);
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("a skipped root version"),
    );
    assert!(
        error.to_string().contains("not signed by enough"),
        "{error}"
    );
    still_runs(&node, "1.2.0");

    proxy.clear();
    let fetched = fetch(&node.node, &proxy.url, "acme/hostile@=1.3.0")
        .await
        .expect("walks 1 -> 2 -> 3");
    assert_eq!(fetched.index.root_version, 3);
    let requested: Vec<String> = proxy.seen().into_iter().map(|(p, _)| p).collect();
    assert_eq!(fetched.release.version.to_string(), "1.3.0");
    for root in ["/tuf/2.root.json", "/tuf/3.root.json", "/tuf/4.root.json"] {
        assert!(
            requested.iter().any(|p| p == root),
            "{root} was not asked for: {requested:?}"
        );
    }
    let seen = node.node.store().trust_seen().expect("trust");
    let root: Signed<outpost_registry::tough::schema::Root> =
        serde_json::from_slice(&seen["root.json"]).expect("root");
    assert_eq!(root.signed.version.get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_where_it_stopped() {
    let registry = TestRegistry::start(test_config()).await;
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.2.0");
    registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish");
    let component = std::fs::read(artifacts::TEST_HOSTILE.component).expect("component");
    let digest = outpost_registry::artifact::digest_of(&component);
    let proxy = Proxy::start(&registry.url).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &proxy.url);
    proxy.tamper(&digest, Tamper::CutAfter(component.len() / 3));
    let error = client_error(
        fetch(&node.node, &proxy.url, "acme/hostile@1")
            .await
            .expect_err("a cut download"),
    );
    assert!(matches!(error, ClientError::Truncated { .. }), "{error}");
    assert!(error.to_string().contains("resume"), "{error}");
    let partial =
        downloads(&node.node).join(format!("{}.part", digest.trim_start_matches("sha256:")));
    let kept = std::fs::metadata(&partial).expect("partial kept").len();
    assert!(kept > 0 && kept < component.len() as u64, "kept {kept}");

    proxy.clear();
    install(&node.node, &proxy.url, "acme/hostile@1")
        .await
        .expect("resumed");
    let ranges: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|(path, _)| path.contains(&digest))
        .filter_map(|(_, range)| range)
        .collect();
    assert_eq!(
        ranges,
        vec![format!("bytes={kept}-{}", component.len() - 1)]
    );
    still_runs(&node, "1.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_node_installs_from_a_bundle_verified_the_same_way() {
    let mut registry = registry_with_two_versions(test_config()).await;
    let connected = TestNode::new();
    provision(&connected.node, &registry.root_json, &registry.url);
    let bundle_dir = tempfile::tempdir().expect("temp");
    let bundle = bundle_dir.path().join("hostile.bundle");
    outpost::releases::export_bundle(
        connected.node.store(),
        &downloads(&connected.node),
        &registry.url,
        &[Wanted::parse("acme/hostile@^1").expect("spec")],
        &bundle,
        &|_| {},
    )
    .await
    .expect("export");
    registry.stop().await;

    let offline = TestNode::new();
    provision(&offline.node, &registry.root_json, &registry.url);
    let source = Source::Bundle {
        path: bundle.clone(),
        wanted: None,
    };
    let bytes = std::fs::read(&bundle).expect("bundle");

    // A byte flipped inside the component: refused by digest.
    let component = std::fs::read(artifacts::TEST_HOSTILE.component).expect("component");
    let at = bytes
        .windows(64)
        .position(|w| w == &component[1000..1064])
        .expect("component inside the bundle");
    let mut flipped = bytes.clone();
    flipped[at + 10] ^= 0x01;
    let tampered = bundle_dir.path().join("tampered.bundle");
    std::fs::write(&tampered, &flipped).expect("write");
    let error = fetch_source(
        &offline.node,
        &Source::Bundle {
            path: tampered,
            wanted: None,
        },
    )
    .await
    .expect_err("tampered bundle");
    assert!(matches!(client_error(error), ClientError::Tampered { .. }));

    // Half a bundle (the copy to the stick was cut): a clear error.
    let cut = bundle_dir.path().join("cut.bundle");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let error = fetch_source(
        &offline.node,
        &Source::Bundle {
            path: cut,
            wanted: None,
        },
    )
    .await
    .expect_err("cut bundle");
    assert!(error.to_string().contains("copy it again"), "{error}");

    let fetched = fetch_source(&offline.node, &source)
        .await
        .expect("the bundle verifies offline");
    assert_eq!(fetched.release.version.to_string(), "1.3.0");
    tokio::task::block_in_place(|| outpost::updates::install(&offline.node, &fetched.package))
        .expect("install");
    still_runs(&offline, "1.3.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_package_claims_another_plugin_is_refused() {
    let registry = TestRegistry::start(test_config()).await;
    // acme signs acme/evil@1.0.0, but the package inside says bob/hostile.
    let package = hostile_as(artifacts::TEST_HOSTILE, "bob/hostile", "1.0.0");
    let mut release = vendor_release(package.path());
    release.plugin = "acme/evil".into();
    let error = outpost_registry::vendor::publish(
        &registry.url,
        &outpost_registry::tls::ClientTls::system(),
        &registry.acme.token,
        &[&registry.acme.key],
        &release,
        jiff::SignedDuration::from_hours(1),
    )
    .await
    .expect_err("the registry checks plugin.toml");
    assert!(
        error
            .to_string()
            .contains("plugin.toml says bob/hostile@1.0.0"),
        "{error}"
    );

    // Past a compromised registry, the node checks it too. (The refused
    // publish pushed the artifact; building it again gives the same bytes.)
    let built = outpost_registry::artifact::build(&release.parts).expect("build");
    let info = tuf::ReleaseInfo {
        repository: "acme/evil".into(),
        world: release.world.clone(),
        grants: release.grants.clone(),
    };
    let role = repository::next_vendor_role(
        None,
        vec![(
            "acme/evil@1.0.0".into(),
            tuf::release_target(&built.manifest, &info),
        )],
        jiff::SignedDuration::from_hours(1),
        &[&registry.acme.key],
    )
    .expect("sign");
    // The artifact was pushed by the refused publish; its role is forced in.
    let honest = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    registry
        .publish(&registry.acme, honest.path())
        .await
        .expect("acme has a delegation once it has published");
    let acme_version = registry.versions()["acme"];
    let previous: Signed<Targets> = tuf::parse(
        "acme",
        &registry.tuf_file(&format!("{acme_version}.acme.json")),
    )
    .expect("role");
    let mut targets = previous.signed.clone();
    targets.version = tuf::version(acme_version + 1);
    targets.targets.extend(role.signed.targets.clone());
    let forged = tuf::sign(targets, &[&registry.acme.key]);
    registry.force_role("acme", &tuf::to_bytes(&forged), acme_version + 1);

    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    let error = fetch(&node.node, &registry.url, "acme/evil@1")
        .await
        .expect_err("the package is another plugin");
    assert!(matches!(error, ReleaseError::Mismatch { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_made_while_the_clock_ran_ahead_is_explained_and_can_be_forgotten() {
    let registry = registry_with_two_versions(test_config()).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    install(&node.node, &registry.url, "acme/hostile@=1.2.0")
        .await
        .expect("install");
    // As if that refresh had run while the clock read a year ahead: tough
    // recorded that reading, and refuses any clock earlier than it.
    let mut seen = node.node.store().trust_seen().expect("seen");
    let year_ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365);
    seen.insert(
        "latest_known_time.json".into(),
        serde_json::to_vec(&year_ahead.to_string()).expect("json"),
    );
    node.node.store().put_trust_seen(&seen).expect("store");

    let problem = outpost::health::clock_problem(node.node.store()).expect("health says so");
    assert!(
        problem.detail.contains("--clock-was-wrong"),
        "{}",
        problem.detail
    );
    let error = client_error(
        fetch(&node.node, &registry.url, "acme/hostile@=1.3.0")
            .await
            .expect_err("refused"),
    )
    .to_string();
    assert!(error.contains("clock"), "{error}");
    assert!(error.contains("--clock-was-wrong"), "{error}");
    still_runs(&node, "1.2.0");

    // The operator, with the clock right now, forgets the reading.
    let forgotten = node.node.store().forget_trust_clock().expect("forget");
    assert!(forgotten.is_some());
    assert!(outpost::health::clock_problem(node.node.store()).is_none());
    fetch(&node.node, &registry.url, "acme/hostile@=1.3.0")
        .await
        .expect("refreshes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_cannot_swap_a_release_pinned_by_digest() {
    let registry = registry_with_two_versions(test_config()).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    let manifest = |version: &str| {
        let digest = registry
            .store()
            .tag("acme/hostile", version)
            .expect("store")
            .expect("tag");
        let bytes = registry
            .store()
            .manifest("acme/hostile", &digest)
            .expect("store")
            .expect("manifest");
        (digest, bytes)
    };
    let (pinned, _) = manifest("1.2.0");
    let (_, other) = manifest("1.3.0");
    // The mirror answers with another release, signed too, but not the
    // one the operator pinned.
    let mirror = Proxy::start(&registry.url).await;
    mirror.tamper("/manifests/", Tamper::Replace(other));
    let host = outpost_registry::vendor::registry_host(&mirror.url);
    let source = Source::parse(
        &format!("oci://{host}/acme/hostile@{pinned}"),
        None,
        node.node.store(),
    )
    .expect("source");
    let error = client_error(
        fetch_source(&node.node, &source)
            .await
            .expect_err("a swapped manifest"),
    );
    assert!(
        matches!(error, ClientError::WrongManifest { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("nothing was installed"),
        "{error}"
    );

    mirror.clear();
    let fetched = fetch_source(&node.node, &source)
        .await
        .expect("the pinned release");
    assert_eq!(fetched.release.version.to_string(), "1.2.0");
}
