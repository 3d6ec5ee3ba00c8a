//! Any TUF client verifies the registry's metadata: python-tuf's
//! `ngclient.Updater`, the reference implementation, refreshes from the
//! registry's root (through a root rotation and a vendor rekey), downloads
//! releases from where the TUF specification puts targets, and refuses
//! what a thief or a tampering mirror serves.

use outpost_e2e_tests::artifacts;
use outpost_e2e_tests::external::PYTHON_TUF;
use outpost_e2e_tests::registry::*;
use outpost_registry::admin;
use outpost_registry::keys::KeyPair;
use outpost_registry::repository::{self, Lifetimes};
use outpost_registry::tough::schema::{Signed, Targets};
use outpost_registry::tuf;
use sha2::Digest;
use std::path::Path;
use std::process::Command;

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/tuf_client.py");

/// The Python with python-tuf: `.ci/run` makes a virtualenv and names it
/// in OUTPOST_PYTHON.
fn python() -> String {
    std::env::var("OUTPOST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_tuf_available() -> bool {
    PYTHON_TUF.available(Command::new(python()).args(["-c", "import tuf.ngclient"]))
}

/// One run of python-tuf with the trust it kept in `metadata`.
async fn python_tuf(
    url: &url::Url,
    metadata: &Path,
    downloads: &Path,
    targets: &[&str],
) -> serde_json::Value {
    let mut command = Command::new(python());
    command
        .arg(CLIENT)
        .arg(url.as_str())
        .arg(metadata)
        .arg(downloads)
        .args(targets);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "python-tuf printed no result: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn manifest_of(registry: &TestRegistry, version: &str) -> Vec<u8> {
    let digest = registry
        .store()
        .tag("acme/hostile", version)
        .expect("store")
        .expect("tag");
    registry
        .store()
        .manifest("acme/hostile", &digest)
        .expect("store")
        .expect("manifest")
}

fn downloaded(result: &serde_json::Value, target: &str) -> Vec<u8> {
    let entry = &result["targets"][target];
    let path = entry["path"]
        .as_str()
        .unwrap_or_else(|| panic!("{target} was not downloaded: {result}"));
    std::fs::read(path).expect("downloaded file")
}

async fn publish(registry: &TestRegistry, vendor: &Vendor, version: &str) {
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", version);
    registry
        .publish(vendor, package.path())
        .await
        .expect("publish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_verifies_the_registry_through_rotations_and_rekeys() {
    if !python_tuf_available() {
        return;
    }
    let registry = TestRegistry::start(test_config()).await;
    publish(&registry, &registry.acme, "1.2.0").await;
    let client = tempfile::tempdir().expect("temp dir");
    let metadata = client.path().join("metadata");
    let downloads = client.path().join("downloads");
    std::fs::create_dir_all(&metadata).expect("dir");
    std::fs::create_dir_all(&downloads).expect("dir");
    std::fs::write(metadata.join("root.json"), &registry.root_json).expect("root");

    // Every role's expiry is in the specification's format, whole seconds.
    for (role, version) in registry.versions() {
        let name = match role.as_str() {
            "timestamp" => "timestamp.json".to_string(),
            _ => format!("{version}.{role}.json"),
        };
        let file: serde_json::Value =
            serde_json::from_slice(&registry.tuf_file(&name)).expect("json");
        let expires = file["signed"]["expires"].as_str().expect("expires");
        assert!(
            expires.len() == 20 && expires.ends_with('Z') && !expires.contains('.'),
            "{name} expires {expires:?}, not YYYY-MM-DDTHH:MM:SSZ"
        );
        assert_eq!(file["signed"]["spec_version"], tuf::SPEC_VERSION);
    }

    let first = python_tuf(
        &registry.url,
        &metadata,
        &downloads,
        &["acme/hostile@1.2.0"],
    )
    .await;
    assert_eq!(first["refreshed"], true, "{first}");
    assert_eq!(first["root_version"], 1, "{first}");
    assert_eq!(
        downloaded(&first, "acme/hostile@1.2.0"),
        manifest_of(&registry, "1.2.0"),
        "the target is the release's OCI manifest, byte for byte"
    );

    // The central team rotates the root to a new key; the client walks
    // from root 1 to root 2 by itself.
    let second_root = KeyPair::generate().expect("key");
    repository::rotate_root(
        registry.store(),
        &registry.root_keys,
        std::slice::from_ref(&second_root),
        1,
        &registry.online,
        Lifetimes::default(),
    )
    .expect("rotate");
    publish(&registry, &registry.acme, "1.3.0").await;
    let rotated = python_tuf(
        &registry.url,
        &metadata,
        &downloads,
        &["acme/hostile@1.3.0"],
    )
    .await;
    assert_eq!(rotated["root_version"], 2, "{rotated}");
    assert_eq!(
        downloaded(&rotated, "acme/hostile@1.3.0"),
        manifest_of(&registry, "1.3.0")
    );

    // Acme's key is replaced; its next publish is signed with the new one.
    let new_key = KeyPair::generate().expect("key");
    admin::replace_namespace_keys(registry.store(), "acme", vec![new_key.public()], 1)
        .expect("rekey");
    let acme = Vendor {
        key: new_key,
        ..registry.acme.clone()
    };
    publish(&registry, &acme, "1.4.0").await;
    let rekeyed = python_tuf(
        &registry.url,
        &metadata,
        &downloads,
        &["acme/hostile@1.2.0", "acme/hostile@1.4.0"],
    )
    .await;
    assert_eq!(
        downloaded(&rekeyed, "acme/hostile@1.4.0"),
        manifest_of(&registry, "1.4.0"),
        "{rekeyed}"
    );

    // The stolen old key, even with the registry's online keys, signs
    // nothing python-tuf accepts.
    let version = registry.versions()["acme"];
    let current: Signed<Targets> =
        tuf::parse("acme", &registry.tuf_file(&format!("{version}.acme.json"))).expect("acme");
    let release = current
        .signed
        .targets
        .values()
        .next()
        .expect("a release")
        .clone();
    let forged = repository::next_vendor_role(
        Some(&current),
        vec![("acme/hostile@9.0.0".into(), release)],
        jiff::SignedDuration::from_hours(1),
        &[&registry.acme.key],
    )
    .expect("sign");
    registry.force_role("acme", &tuf::to_bytes(&forged), version + 1);
    let forged = python_tuf(
        &registry.url,
        &metadata,
        &downloads,
        &["acme/hostile@9.0.0"],
    )
    .await;
    let error = forged["targets"]["acme/hostile@9.0.0"]["error"]
        .as_str()
        .or(forged["error"].as_str())
        .unwrap_or_else(|| panic!("a list signed by the replaced key was accepted: {forged}"))
        .to_string();
    assert!(
        error.contains("signature") || error.contains("threshold") || error.contains("Unsigned"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_refuses_a_release_a_mirror_changed() {
    if !python_tuf_available() {
        return;
    }
    let registry = TestRegistry::start(test_config()).await;
    publish(&registry, &registry.acme, "1.2.0").await;
    let proxy = Proxy::start(&registry.url).await;
    proxy.tamper("/tuf/targets/", Tamper::FlipLastByte);
    let client = tempfile::tempdir().expect("temp dir");
    let metadata = client.path().join("metadata");
    std::fs::create_dir_all(&metadata).expect("dir");
    std::fs::write(metadata.join("root.json"), &registry.root_json).expect("root");

    let result = python_tuf(
        &proxy.url,
        &metadata,
        client.path(),
        &["acme/hostile@1.2.0"],
    )
    .await;
    let error = result["targets"]["acme/hostile@1.2.0"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a changed release was accepted: {result}"));
    assert!(error.contains("LengthOrHashMismatch"), "{error}");
    let requested: Vec<String> = proxy.seen().into_iter().map(|(p, _)| p).collect();
    let sha256 = hex::encode(sha2::Sha256::digest(manifest_of(&registry, "1.2.0")));
    assert!(
        requested
            .iter()
            .any(|p| *p == format!("/tuf/targets/acme/{sha256}.hostile@1.2.0")),
        "python-tuf asked for {requested:?}"
    );
}
