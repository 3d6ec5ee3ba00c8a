//! Bad input to the registry gets a clear 4xx and leaves what it stores
//! consistent; a published version never changes; standard OCI clients
//! push to it and pull from it.

use hyper::{Method, StatusCode};
use outpost_e2e_tests::artifacts;
use outpost_e2e_tests::registry::*;
use outpost_registry::artifact;
use outpost_registry::server::ServeConfig;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_without_the_namespaces_token_are_refused() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let blob = b"hello".to_vec();
    let digest = artifact::digest_of(&blob);
    let (status, _, body) = http
        .send(
            Method::POST,
            "/v2/acme/x/blobs/uploads/",
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        Http::message(&body).contains("token"),
        "{}",
        Http::message(&body)
    );
    let (status, message) = http.upload("acme/x", "opr_wrong", &blob, &digest).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
    let (status, message) = http
        .upload("acme/x", &registry.bob.token, &blob, &digest)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains("publishes under bob, not acme"),
        "{message}"
    );
    let (status, message) = http
        .upload("acme", &registry.acme.token, &blob, &digest)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    // Nothing was stored.
    let (status, _, _) = http
        .send(
            Method::HEAD,
            &format!("/v2/acme/x/blobs/{digest}"),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digests_huge_uploads_and_bad_manifests_get_a_4xx_and_store_nothing() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let token = registry.acme.token.clone();

    // A digest that does not match what was sent.
    let (status, message) = http
        .upload("acme/x", &token, b"hello", &artifact::digest_of(b"other"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("nothing was stored"), "{message}");
    let (status, message) = http.upload("acme/x", &token, b"hello", "md5:abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");

    // Bigger than the registry accepts (8 MiB in tests).
    let huge = vec![0u8; 9 << 20];
    let (status, message) = http
        .upload("acme/x", &token, &huge, &artifact::digest_of(&huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("limit"), "{message}");

    // A manifest naming a blob that was never uploaded.
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/x", "1.0.0");
    let built = artifact::build(&vendor_release(package.path()).parts).expect("build");
    let (status, _, body) = http
        .put_manifest(
            "/v2/acme/x/manifests/1.0.0",
            &token,
            artifact::MANIFEST_MEDIA_TYPE,
            built.manifest.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        Http::message(&body).contains("does not hold"),
        "{}",
        Http::message(&body)
    );

    // A "component" layer that is a core module, then one that is garbage.
    for (what, bytes) in [
        ("core module", b"\0asm\x01\0\0\0".to_vec()),
        ("garbage", b"not wasm at all".to_vec()),
    ] {
        let mut parts = vendor_release(package.path()).parts;
        parts.component = bytes.clone();
        let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#.to_vec();
        let layers = [
            (artifact::WASM_MEDIA_TYPE, bytes.clone(), "x.wasm"),
            (
                artifact::PLUGIN_MANIFEST_MEDIA_TYPE,
                parts.plugin_manifest.clone(),
                "plugin.toml",
            ),
        ];
        for blob in [&config, &layers[0].1, &layers[1].1] {
            let (status, message) = http
                .upload("acme/x", &token, blob, &artifact::digest_of(blob))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{message}");
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": artifact::MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": artifact::CONFIG_MEDIA_TYPE, "digest": artifact::digest_of(&config), "size": config.len()},
            "layers": layers.iter().map(|(media, bytes, title)| serde_json::json!({
                "mediaType": media, "digest": artifact::digest_of(bytes), "size": bytes.len(),
                "annotations": {"org.opencontainers.image.title": title}
            })).collect::<Vec<_>>(),
        });
        let (status, _, body) = http
            .put_manifest(
                "/v2/acme/x/manifests/1.0.0",
                &token,
                artifact::MANIFEST_MEDIA_TYPE,
                serde_json::to_vec(&manifest).expect("json"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert!(
            Http::message(&body).contains("not a WebAssembly component"),
            "{what}: {}",
            Http::message(&body)
        );
    }

    // No media type, a digest that is not one, and not JSON.
    let image = |digest: &str| {
        format!(
            "{{\"schemaVersion\":2,\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{digest}\",\"size\":1}},\"layers\":[]}}"
        )
        .into_bytes()
    };
    let (status, _, body) = http
        .send(
            Method::PUT,
            "/v2/acme/x/manifests/1.0.0",
            Some(&token),
            &[],
            image(&artifact::digest_of(b"x")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        Http::message(&body).contains("not a manifest type"),
        "{}",
        Http::message(&body)
    );
    let (status, _, body) = http
        .put_manifest(
            "/v2/acme/x/manifests/1.0.0",
            &token,
            "application/vnd.oci.image.manifest.v1+json",
            image("sha256:00"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(Http::code(&body), "DIGEST_INVALID");
    let (status, _, _) = http
        .send(
            Method::PUT,
            "/v2/acme/x/manifests/1.0.0",
            Some(&token),
            &[],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // None of it left a tag behind.
    let (status, _, _) = http
        .send(Method::GET, "/v2/acme/x/tags/list", None, &[], Vec::new())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_version_never_changes_even_under_concurrent_publishes() {
    let registry = TestRegistry::start(test_config()).await;
    // Two different packages claiming the same version, at once.
    let first = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    let second = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    std::fs::write(second.path().join("assets/extra.txt"), "different").expect("write");
    let (a, b) = tokio::join!(
        registry.publish(&registry.acme, first.path()),
        registry.publish(&registry.acme, second.path())
    );
    let winners = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one publish wins: {a:?} / {b:?}");
    let loser = if a.is_ok() { &b } else { &a };
    let message = loser.as_ref().expect_err("loser").to_string();
    assert!(message.contains("never changes"), "{message}");

    // The tag, the signed metadata and what a node installs agree.
    let winner = if a.is_ok() { &a } else { &b };
    let digest = winner.as_ref().expect("winner").digest.clone();
    assert_eq!(
        registry
            .store()
            .tag("acme/hostile", "1.0.0")
            .expect("store"),
        Some(digest.clone())
    );
    let node = outpost_e2e_tests::TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    let fetched = fetch(&node.node, &registry.url, "acme/hostile@1")
        .await
        .expect("fetch");
    assert_eq!(fetched.release.digest(), digest);

    // Publishing the same package again is a no-op, not an error.
    let again = registry
        .publish(
            &registry.acme,
            if a.is_ok() {
                first.path()
            } else {
                second.path()
            },
        )
        .await
        .expect("the same release again");
    assert_eq!(again.digest, digest);

    // A tag cannot be moved to another manifest by hand either.
    let http = Http::new(&registry.url);
    let other = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.1");
    let pushed = outpost_registry::vendor::push(
        &registry.url,
        &outpost_registry::tls::ClientTls::system(),
        &oci_client::secrets::RegistryAuth::Bearer(registry.acme.token.clone()),
        &vendor_release(other.path()),
    )
    .await
    .expect("push 1.0.1");
    let (status, _, body) = http
        .send(
            Method::PUT,
            "/v2/acme/hostile/manifests/1.0.0",
            Some(&registry.acme.token),
            &[],
            pushed.manifest.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        Http::message(&body).contains("never changes"),
        "{}",
        Http::message(&body)
    );
    // And nothing can be deleted.
    let (status, _, _) = http
        .send(
            Method::DELETE,
            &format!("/v2/acme/hostile/manifests/{digest}"),
            Some(&registry.acme.token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_oci_clients_pull_what_was_pushed_with_ranges_and_tags() {
    let registry = TestRegistry::start(test_config()).await;
    for version in ["1.0.0", "1.1.0"] {
        let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", version);
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
    }
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let host = outpost_registry::vendor::registry_host(&registry.url);
    let reference = oci_client::Reference::with_tag(host, "acme/hostile".into(), "1.1.0".into());
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    let tags = client
        .list_tags(&reference, &auth, None, None)
        .await
        .expect("tags");
    assert_eq!(tags.tags, vec!["1.0.0", "1.1.0"]);
    let image = client
        .pull(
            &reference,
            &auth,
            vec![
                artifact::WASM_MEDIA_TYPE,
                artifact::PLUGIN_MANIFEST_MEDIA_TYPE,
                artifact::ASSET_MEDIA_TYPE,
            ],
        )
        .await
        .expect("pull");
    let component = std::fs::read(artifacts::TEST_HOSTILE.component).expect("component");
    let wasm = image
        .layers
        .iter()
        .find(|l| l.media_type == artifact::WASM_MEDIA_TYPE)
        .expect("a wasm layer");
    assert!(
        wasm.data.as_ref() == component.as_slice(),
        "the component comes back intact"
    );
    assert!(
        image.layers.len() >= 3,
        "component, plugin.toml and the assets"
    );
    assert_eq!(image.config.media_type, artifact::CONFIG_MEDIA_TYPE);
    let config: serde_json::Value = serde_json::from_slice(&image.config.data).expect("config");
    assert_eq!(config["os"], "wasip2");

    let http = Http::new(&registry.url);
    let digest = artifact::digest_of(&component);
    let (status, headers, body) = http
        .send(
            Method::GET,
            &format!("/v2/acme/hostile/blobs/{digest}"),
            None,
            &[("range", "bytes=10-19")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body == component[10..20], "the range's bytes");
    assert_eq!(
        headers["content-range"].to_str().expect("header"),
        format!("bytes 10-19/{}", component.len())
    );
    let (status, _, _) = http
        .send(
            Method::GET,
            &format!("/v2/acme/hostile/blobs/{digest}"),
            None,
            &[("range", &format!("bytes={}-", component.len()))],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_must_continue_where_it_stopped() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let token = registry.acme.token.clone();
    let (status, headers, _) = http
        .send(
            Method::POST,
            "/v2/acme/x/blobs/uploads/",
            Some(&token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = headers["location"].to_str().expect("location").to_string();
    let (status, _, _) = http
        .send(
            Method::PATCH,
            &location,
            Some(&token),
            &[("content-range", "0-4")],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A chunk that does not start where the upload stands is refused.
    let (status, _, body) = http
        .send(
            Method::PATCH,
            &location,
            Some(&token),
            &[("content-range", "2-7")],
            b"llo wo".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(
        Http::message(&body).contains("has 5 bytes"),
        "{}",
        Http::message(&body)
    );
    let digest = artifact::digest_of(b"hello world");
    let (status, _, _) = http
        .send(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            Some(&token),
            &[("content-range", "5-10")],
            b" world".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = http
        .send(
            Method::GET,
            &format!("/v2/acme/x/blobs/{digest}"),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"hello world");
    // The finished upload is gone.
    let (status, _, _) = http
        .send(Method::GET, &location, Some(&token), &[], Vec::new())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_are_bounded_per_namespace_and_removed_when_idle() {
    let config = ServeConfig {
        max_open_uploads_per_namespace: 2,
        upload_idle_limit: Duration::from_secs(3),
        ..test_config()
    };
    let registry = TestRegistry::start(config).await;
    let http = Http::new(&registry.url);
    let start = |repo: &'static str, token: String| {
        let http = &http;
        async move {
            let (status, headers, body) = http
                .send(
                    Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/"),
                    Some(&token),
                    &[],
                    Vec::new(),
                )
                .await;
            let location = headers
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            (status, location, Http::message(&body))
        }
    };
    let acme = registry.acme.token.clone();
    let (status, first, _) = start("acme/a", acme.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let first = first.expect("location");
    // Half a blob, then the vendor walks away.
    let (status, _, _) = http
        .send(
            Method::PATCH,
            &first,
            Some(&acme),
            &[("content-range", "0-4")],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, second, _) = start("acme/b", acme.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, message) = start("acme/c", acme.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        message.contains("namespace acme already has 2 unfinished uploads")
            && message.contains("idle for 3 s"),
        "{message}"
    );
    // Another vendor is not held up by acme's sessions.
    let (status, _, _) = start("bob/a", registry.bob.token.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Cancelling one makes room at once.
    let (status, _, _) = http
        .send(
            Method::DELETE,
            &second.expect("location"),
            Some(&acme),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = start("acme/c", acme.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Idle for over three seconds, every session is removed with its bytes.
    let uploads = registry.dir.path().join("uploads");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, _) = http
            .send(Method::GET, &first, Some(&acme), &[], Vec::new())
            .await;
        let files = std::fs::read_dir(&uploads).expect("uploads dir").count();
        if status == StatusCode::NOT_FOUND && files == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "abandoned uploads still there after 20 s: {status}, {files} files"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for repo in ["acme/d", "acme/e"] {
        let (status, _, message) = start(repo, acme.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_release_again_renews_a_signed_list_that_would_lapse() {
    let registry = TestRegistry::start(test_config()).await;
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    let release = vendor_release(package.path());
    let keys = [&registry.acme.key];
    let tls = outpost_registry::tls::ClientTls::system();
    let publish = |lifetime| {
        outpost_registry::vendor::publish(
            &registry.url,
            &tls,
            &registry.acme.token,
            &keys,
            &release,
            lifetime,
        )
    };
    let first = publish(jiff::SignedDuration::from_hours(1))
        .await
        .expect("publish");
    // Within the renewal window: signed again, same release, later expiry.
    let renewed = publish(jiff::SignedDuration::from_hours(24 * 365))
        .await
        .expect("renew");
    assert_eq!(renewed.metadata_version, first.metadata_version + 1);
    assert_eq!(renewed.digest, first.digest);
    // Far from lapsing: nothing to do.
    let again = publish(jiff::SignedDuration::from_hours(24 * 365))
        .await
        .expect("no-op");
    assert_eq!(again.metadata_version, renewed.metadata_version);
    // A node still installs it.
    let node = outpost_e2e_tests::TestNode::new();
    provision(&node.node, &registry.root_json, &registry.url);
    fetch(&node.node, &registry.url, "acme/hostile@1")
        .await
        .expect("fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_stream_whole_and_in_ranges() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    // Larger than what the registry reads whole, so it streams.
    let blob: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    let digest = artifact::digest_of(&blob);
    let (status, message) = http
        .upload("acme/x", &registry.acme.token, &blob, &digest)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");
    let (status, headers, body) = http
        .send(
            Method::GET,
            &format!("/v2/acme/x/blobs/{digest}"),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-length"].to_str().expect("header"),
        blob.len().to_string()
    );
    assert!(body == blob, "the streamed blob is the uploaded one");
    let from = (2 << 20) + 17;
    let (status, _, body) = http
        .send(
            Method::GET,
            &format!("/v2/acme/x/blobs/{digest}"),
            None,
            &[("range", &format!("bytes={from}-"))],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body == blob[from..], "the streamed range");
}
