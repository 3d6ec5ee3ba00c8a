//! Any OCI registry can carry plugin bytes: Debian's `docker-registry`
//! (the CNCF distribution server), started here on 127.0.0.1, takes an
//! artifact pushed by the vendor's OCI client, and a node installs it from
//! `oci://…` — trusted only because the registry's TUF metadata signs the
//! same manifest digest.
//!
//! `.ci/run` installs the package and sets OUTPOST_REQUIRE_DOCKER_REGISTRY,
//! so in CI a missing server fails this test; elsewhere it says it skipped.

use outpost::releases::{ReleaseError, Source};
use outpost_e2e_tests::external::start_docker_registry;
use outpost_e2e_tests::registry::*;
use outpost_e2e_tests::{TestNode, artifacts};
use outpost_registry::client::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_installs_from_any_oci_registry_what_the_signed_metadata_names() {
    let Some(oci) = start_docker_registry() else {
        return;
    };
    let registry = TestRegistry::start(test_config()).await;
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.2.0");
    let release = vendor_release(package.path());
    // The fleet's bytes go to the OCI registry with a standard client...
    let pushed = outpost_registry::vendor::push(
        &oci.url,
        &outpost_registry::tls::ClientTls::system(),
        &oci_client::secrets::RegistryAuth::Anonymous,
        &release,
    )
    .await
    .expect("push to docker-registry");
    // ...and the release is signed through the Outpost registry (the same
    // bytes: artifacts are reproducible).
    let published = registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish");
    assert_eq!(published.digest, pushed.digest);

    let proxy = Proxy::start(&registry.url).await;
    let node = TestNode::new();
    provision(&node.node, &registry.root_json, &proxy.url);
    let host = outpost_registry::vendor::registry_host(&oci.url);
    let source = Source::parse(
        &format!("oci://{host}/acme/hostile:1.2.0"),
        None,
        node.node.store(),
    )
    .expect("source");
    let fetched = fetch_source(&node.node, &source)
        .await
        .expect("fetch via oci://");
    tokio::task::block_in_place(|| outpost::updates::install(&node.node, &fetched.package))
        .expect("install");
    assert_eq!(node.loaded("acme/hostile").version.to_string(), "1.2.0");
    // Only metadata came from the Outpost registry; the bytes did not.
    let asked: Vec<String> = proxy.seen().into_iter().map(|(path, _)| path).collect();
    assert!(asked.iter().all(|p| p.starts_with("/tuf/")), "{asked:?}");

    // An artifact in the OCI registry that no vendor signed is refused.
    let unsigned = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "6.6.6");
    outpost_registry::vendor::push(
        &oci.url,
        &outpost_registry::tls::ClientTls::system(),
        &oci_client::secrets::RegistryAuth::Anonymous,
        &vendor_release(unsigned.path()),
    )
    .await
    .expect("push unsigned");
    let source = Source::parse(
        &format!("oci://{host}/acme/hostile:6.6.6"),
        None,
        node.node.store(),
    )
    .expect("source");
    let error = fetch_source(&node.node, &source)
        .await
        .expect_err("unsigned");
    assert!(
        matches!(error, ReleaseError::Client(ClientError::Unsigned { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("not trusted"), "{error}");

    // `outpost vendor publish` pointed at the plain OCI registry says what
    // it is before pushing anything.
    let v7 = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "7.0.0");
    let error = publish_to(&oci.url, &registry.acme, &[&registry.acme.key], v7.path())
        .await
        .expect_err("a plain OCI registry cannot sign");
    assert!(
        matches!(
            error,
            outpost_registry::vendor::VendorError::NotOutpostRegistry { .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("nothing was pushed"), "{error}");
    let plain = outpost_e2e_tests::ApiClient::new(
        oci.url.as_str().trim_end_matches('/').into(),
        String::new(),
    );
    let (status, _) = plain
        .send(
            hyper::Method::GET,
            "/v2/acme/hostile/manifests/7.0.0",
            "",
            None,
        )
        .await;
    assert_eq!(status, hyper::StatusCode::NOT_FOUND);
}
