//! Any OCI client pushes and pulls: skopeo (the library podman and buildah
//! share) logs in to the registry with a vendor's token, pushes a plugin
//! artifact into the vendor's namespace and nowhere else, and copies a
//! release out to an OCI layout and to Debian's docker-registry, from
//! which a node installs it by tag and by digest.
//!
//! `.ci/run` installs skopeo and docker-registry and sets
//! OUTPOST_REQUIRE_SKOPEO and OUTPOST_REQUIRE_DOCKER_REGISTRY, so in CI a
//! missing tool fails this test; elsewhere it says it skipped.

use outpost::releases::Source;
use outpost_e2e_tests::external::{SKOPEO, start_docker_registry};
use outpost_e2e_tests::registry::*;
use outpost_e2e_tests::{TestNode, artifacts};
use std::path::Path;
use std::process::{Command, Output};

/// skopeo with its own home and credentials file, so nothing of the
/// machine's container configuration is read or written.
struct Skopeo {
    home: tempfile::TempDir,
}

impl Skopeo {
    fn new() -> Option<Skopeo> {
        if !SKOPEO.available(Command::new("skopeo").arg("--version")) {
            return None;
        }
        Some(Skopeo {
            home: tempfile::tempdir().expect("temp dir"),
        })
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new("skopeo");
        command
            .env("HOME", self.home.path())
            .env("XDG_RUNTIME_DIR", self.home.path())
            .env("REGISTRY_AUTH_FILE", self.home.path().join("auth.json"))
            // Trust is the TUF metadata's, checked by the node; skopeo's
            // signature policy is not what is tested here.
            .arg("--insecure-policy")
            .args(args);
        tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("run skopeo")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "skopeo {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            !output.status.success(),
            "skopeo {} succeeded but should have been refused",
            args.join(" ")
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

fn host(url: &url::Url) -> String {
    outpost_registry::vendor::registry_host(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_logs_in_pushes_into_its_namespace_and_carries_releases_to_any_registry() {
    let Some(skopeo) = Skopeo::new() else {
        return;
    };
    let Some(mirror) = start_docker_registry() else {
        return;
    };
    let registry = TestRegistry::start(test_config()).await;
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.2.0");
    let published = registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish");
    let outpost = host(&registry.url);

    // Out to an OCI layout on disk, anonymously: the same manifest, byte
    // for byte.
    let layout = tempfile::tempdir().expect("temp dir");
    let layout_ref = format!("oci:{}:1.2.0", layout.path().display());
    skopeo
        .ok(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{outpost}/acme/hostile:1.2.0"),
            &layout_ref,
        ])
        .await;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.path().join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], published.digest.as_str());
    assert!(blob_file(layout.path(), &published.digest).exists());

    // Login: a wrong token is refused, the vendor's works.
    let refused = skopeo
        .refused(&[
            "login",
            "--tls-verify=false",
            "--username",
            "acme",
            "--password",
            "wrong",
            &outpost,
        ])
        .await;
    assert!(
        refused.contains("invalid username/password") || refused.contains("401"),
        "{refused}"
    );
    skopeo
        .ok(&[
            "login",
            "--tls-verify=false",
            "--username",
            "acme",
            "--password",
            &registry.acme.token,
            &outpost,
        ])
        .await;

    // Back in, under the vendor's own namespace: stored as it was.
    skopeo
        .ok(&[
            "copy",
            "--dest-tls-verify=false",
            &layout_ref,
            &format!("docker://{outpost}/acme/hostile-copy:1.2.0"),
        ])
        .await;
    let copied = registry
        .store()
        .tag("acme/hostile-copy", "1.2.0")
        .expect("store");
    assert_eq!(copied.as_deref(), Some(published.digest.as_str()));
    // Not under another vendor's.
    let denied = skopeo
        .refused(&[
            "copy",
            "--dest-tls-verify=false",
            &layout_ref,
            &format!("docker://{outpost}/bob/hostile:1.2.0"),
        ])
        .await;
    assert!(
        denied.contains("denied") || denied.contains("403"),
        "{denied}"
    );
    assert_eq!(
        registry.store().tag("bob/hostile", "1.2.0").expect("store"),
        None
    );

    // To a mirror on any OCI registry, straight from the Outpost registry.
    let mirror_host = host(&mirror.url);
    skopeo
        .ok(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{outpost}/acme/hostile:1.2.0"),
            &format!("docker://{mirror_host}/acme/hostile:1.2.0"),
        ])
        .await;

    // A node installs from the mirror by tag and by digest, trusting it
    // only through the Outpost registry's signed metadata.
    for reference in [
        format!("oci://{mirror_host}/acme/hostile:1.2.0"),
        format!("oci://{mirror_host}/acme/hostile@{}", published.digest),
    ] {
        let node = TestNode::new();
        provision(&node.node, &registry.root_json, &registry.url);
        let source = Source::parse(&reference, None, node.node.store()).expect("source");
        let fetched = fetch_source(&node.node, &source)
            .await
            .unwrap_or_else(|e| panic!("{reference}: {e}"));
        tokio::task::block_in_place(|| outpost::updates::install(&node.node, &fetched.package))
            .expect("install");
        assert_eq!(node.loaded("acme/hostile").version.to_string(), "1.2.0");
    }
}

fn blob_file(layout: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256");
    layout.join("blobs/sha256").join(hex)
}
