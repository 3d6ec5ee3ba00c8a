//! The registry's OCI endpoints, point by point against the distribution
//! specification (v1.1): the version check's challenge, blobs only through
//! the repositories that hold them, cross-repository mounts, ranges, tag
//! paging and the referrers API. docs/registry-api.md lists each endpoint.

use hyper::{Method, StatusCode};
use outpost_e2e_tests::artifacts;
use outpost_e2e_tests::registry::*;
use outpost_registry::artifact;

const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn header(headers: &hyper::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_check_challenges_so_clients_send_their_token() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let (status, headers, _) = http.get("/v2/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(header(&headers, "www-authenticate").starts_with("Basic realm="));
    assert_eq!(
        header(&headers, "docker-distribution-api-version"),
        "registry/2.0"
    );
    let (status, _, body) = http
        .send(
            Method::GET,
            "/v2/",
            Some("opr_not_a_token"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(Http::message(&body).contains("does not know that token"));
    let (status, _, _) = http
        .send(
            Method::GET,
            "/v2/",
            Some(&registry.acme.token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_are_served_only_through_repositories_that_hold_them() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let secret = b"acme's unreleased bytes".to_vec();
    let digest = artifact::digest_of(&secret);
    let (status, message) = http
        .upload("acme/a", &registry.acme.token, &secret, &digest)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{message}");

    let (status, _, body) = http.get(&format!("/v2/acme/a/blobs/{digest}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, secret);
    for elsewhere in ["bob/a", "acme/never-pushed"] {
        for method in [Method::GET, Method::HEAD] {
            let (status, _, body) = http
                .send(
                    method.clone(),
                    &format!("/v2/{elsewhere}/blobs/{digest}"),
                    None,
                    &[],
                    Vec::new(),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{method} through {elsewhere}"
            );
            if method == Method::GET {
                assert_eq!(Http::code(&body), "BLOB_UNKNOWN");
            }
        }
    }

    // Bob mounts it from acme/a (pulls are anonymous, so he could read it
    // anyway): no bytes sent, and bob/a serves it from then on.
    let (status, headers, _) = http
        .send(
            Method::POST,
            &format!("/v2/bob/a/blobs/uploads/?mount={digest}&from=acme%2Fa"),
            Some(&registry.bob.token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        header(&headers, "location"),
        format!("/v2/bob/a/blobs/{digest}")
    );
    let (status, _, _) = http
        .send(
            Method::HEAD,
            &format!("/v2/bob/a/blobs/{digest}"),
            None,
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A mount from a repository that does not hold the blob starts an
    // ordinary upload instead, as the specification says.
    let (status, headers, _) = http
        .send(
            Method::POST,
            &format!("/v2/bob/b/blobs/uploads/?mount={digest}&from=bob%2Fnothing"),
            Some(&registry.bob.token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(header(&headers, "location").starts_with("/v2/bob/b/blobs/uploads/"));

    // A manifest may name only blobs its repository holds.
    let config = b"{}".to_vec();
    http.upload(
        "bob/c",
        &registry.bob.token,
        &config,
        &artifact::digest_of(&config),
    )
    .await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY_CONFIG, "digest": artifact::digest_of(&config), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": secret.len()}],
    });
    let (status, _, body) = http
        .put_manifest(
            "/v2/bob/c/manifests/v1",
            &registry.bob.token,
            OCI_MANIFEST,
            serde_json::to_vec(&manifest).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(Http::code(&body), "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_suffixes_and_several_ranges_are_served() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let blob: Vec<u8> = (0..100u8).collect();
    let digest = artifact::digest_of(&blob);
    http.upload("acme/r", &registry.acme.token, &blob, &digest)
        .await;
    let path = format!("/v2/acme/r/blobs/{digest}");
    let get = |range: &'static str| {
        let http = &http;
        let path = path.clone();
        async move {
            http.send(Method::GET, &path, None, &[("range", range)], Vec::new())
                .await
        }
    };

    let (status, headers, body) = get("bytes=-10").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, blob[90..]);
    assert_eq!(header(&headers, "content-range"), "bytes 90-99/100");

    let (status, headers, body) = get("bytes=0-1, 50-51").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    let content_type = header(&headers, "content-type");
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let text = body.iter().map(|b| char::from(*b)).collect::<String>();
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
    assert_eq!(
        parts.len(),
        4,
        "two parts and the closing delimiter: {text:?}"
    );
    assert!(parts[1].contains("content-range: bytes 0-1/100\r\n\r\n\u{0}\u{1}\r\n"));
    assert!(parts[2].contains("content-range: bytes 50-51/100\r\n\r\n\u{32}\u{33}\r\n"));
    assert_eq!(parts[3], "--\r\n");

    let (status, headers, _) = get("bytes=100-").await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&headers, "content-range"), "bytes */100");

    // A header that does not parse is ignored: the whole blob, 200.
    let (status, _, body) = get("bytes=9-3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, blob);
    // So is one asking for more than 16 parts, and one at the edge of u64.
    let (status, _, body) = get(
        "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, blob);
    let (status, _, body) = get("bytes=0-18446744073709551615").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, blob);
    // Range applies to GET only: a HEAD describes the whole blob.
    let (status, headers, _) = http
        .send(
            Method::HEAD,
            &path,
            None,
            &[("range", "bytes=0-9")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), "100");

    // Several ranges adding up to more than a multipart answer is built
    // from in memory: the whole blob, streamed.
    let large: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    let large_digest = artifact::digest_of(&large);
    http.upload("acme/r", &registry.acme.token, &large, &large_digest)
        .await;
    let (status, headers, body) = http
        .send(
            Method::GET,
            &format!("/v2/acme/r/blobs/{large_digest}"),
            None,
            &[("range", "bytes=0-999999,2000000-2999999")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-length"), large.len().to_string());
    assert!(body == large);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_at_a_time_writes_to_an_upload() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let token = registry.acme.token.clone();
    let (status, headers, _) = http
        .send(
            Method::POST,
            "/v2/acme/u/blobs/uploads/",
            Some(&token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let location = header(&headers, "location");

    // A chunk that is still arriving...
    let address = format!(
        "{}:{}",
        registry.url.host_str().expect("host"),
        registry.url.port().expect("port")
    );
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(
        format!(
            "PATCH {location} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/octet-stream\r\ncontent-range: 0-9\r\ncontent-length: 10\r\n\r\nhello"
        )
        .as_bytes(),
    )
    .await
    .expect("send");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // ...keeps others off the upload: no finishing it underneath.
    let digest = artifact::digest_of(b"helloworld");
    let (status, _, body) = http
        .send(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            Some(&token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{}", Http::message(&body));
    slow.write_all(b"world").await.expect("send");
    let mut answer = [0u8; 12];
    slow.read_exact(&mut answer).await.expect("answer");
    assert_eq!(&answer, b"HTTP/1.1 202");
    let (status, _, body) = http
        .send(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            Some(&token),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{}", Http::message(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_page_with_n_and_last() {
    let registry = TestRegistry::start(test_config()).await;
    for version in ["1.0.0", "1.1.0", "1.10.0"] {
        let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", version);
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
    }
    let http = Http::new(&registry.url);
    let tags = |body: &[u8]| -> Vec<String> {
        let value: serde_json::Value = serde_json::from_slice(body).expect("json");
        serde_json::from_value(value["tags"].clone()).expect("tags")
    };
    let (status, headers, body) = http.get("/v2/acme/hostile/tags/list?n=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tags(&body), ["1.0.0", "1.1.0"]);
    let link = header(&headers, "link");
    assert_eq!(
        link,
        "</v2/acme/hostile/tags/list?n=2&last=1.1.0>; rel=\"next\""
    );
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(url, _)| url.to_string())
        .expect("link");
    let (_, headers, body) = http.get(&next).await;
    assert_eq!(tags(&body), ["1.10.0"]);
    assert_eq!(header(&headers, "link"), "");
    let (_, _, body) = http.get("/v2/acme/hostile/tags/list?last=1.0.0").await;
    assert_eq!(tags(&body), ["1.1.0", "1.10.0"]);
    let (status, _, body) = http.get("/v2/acme/none/tags/list").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(Http::code(&body), "NAME_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sbom_pushed_with_a_subject_is_listed_by_the_referrers_api() {
    let registry = TestRegistry::start(test_config()).await;
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.2.0");
    let release = registry
        .publish(&registry.acme, package.path())
        .await
        .expect("publish");
    let http = Http::new(&registry.url);
    let token = registry.acme.token.clone();
    let empty = b"{}".to_vec();
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"acme/hostile"}"#.to_vec();
    for blob in [&empty, &sbom] {
        let (status, message) = http
            .upload("acme/hostile", &token, blob, &artifact::digest_of(blob))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": EMPTY_CONFIG, "digest": artifact::digest_of(&empty), "size": empty.len()},
        "layers": [{"mediaType": "application/spdx+json", "digest": artifact::digest_of(&sbom), "size": sbom.len()}],
        "subject": {"mediaType": artifact::MANIFEST_MEDIA_TYPE, "digest": release.digest, "size": 1},
        "annotations": {"org.opencontainers.image.created": "2026-12-02T00:00:00Z"},
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let sbom_digest = artifact::digest_of(&manifest);
    let (status, headers, body) = http
        .put_manifest(
            &format!("/v2/acme/hostile/manifests/{sbom_digest}"),
            &token,
            OCI_MANIFEST,
            manifest.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{}", Http::message(&body));
    assert_eq!(header(&headers, "oci-subject"), release.digest);

    let referrers = |query: &'static str| {
        let http = &http;
        let path = format!("/v2/acme/hostile/referrers/{}{query}", release.digest);
        async move { http.get(&path).await }
    };
    let (status, headers, body) = referrers("").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), OCI_INDEX);
    let index: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(
        index["manifests"],
        serde_json::json!([{
            "mediaType": OCI_MANIFEST,
            "digest": sbom_digest,
            "size": manifest.len(),
            "artifactType": "application/spdx+json",
            "annotations": {"org.opencontainers.image.created": "2026-12-02T00:00:00Z"},
        }])
    );
    let (_, headers, body) = referrers("?artifactType=application%2Fvnd.example.signature").await;
    assert_eq!(header(&headers, "oci-filters-applied"), "artifactType");
    let index: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(index["manifests"], serde_json::json!([]));
    let (_, _, body) = referrers("?artifactType=application/spdx%2Bjson").await;
    let index: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1));

    // Many referrers come in pages, each naming the next.
    for n in 0..300 {
        let mut signature = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": {"mediaType": EMPTY_CONFIG, "digest": artifact::digest_of(&empty), "size": empty.len()},
            "layers": [],
            "subject": {"mediaType": artifact::MANIFEST_MEDIA_TYPE, "digest": release.digest, "size": 1},
        });
        signature["annotations"] = serde_json::json!({"n": n.to_string()});
        let bytes = serde_json::to_vec(&signature).expect("json");
        let (status, _, body) = http
            .put_manifest(
                &format!("/v2/acme/hostile/manifests/{}", artifact::digest_of(&bytes)),
                &token,
                OCI_MANIFEST,
                bytes,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{}", Http::message(&body));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut path = format!("/v2/acme/hostile/referrers/{}", release.digest);
    let mut pages = 0;
    loop {
        let (status, headers, body) = http.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        let index: serde_json::Value = serde_json::from_slice(&body).expect("json");
        for descriptor in index["manifests"].as_array().expect("manifests") {
            assert!(
                seen.insert(descriptor["digest"].to_string()),
                "listed twice"
            );
        }
        let link = header(&headers, "link");
        if link.is_empty() {
            break;
        }
        path = link
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(url, _)| url.to_string())
            .expect("link");
    }
    assert_eq!((seen.len(), pages), (301, 2));

    // Annotations are strings.
    let mut odd: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    odd["annotations"] = serde_json::json!({"n": 1});
    let (status, _, _) = http
        .put_manifest(
            "/v2/acme/hostile/manifests/odd",
            &token,
            OCI_MANIFEST,
            serde_json::to_vec(&odd).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // No referrers is an empty index, not a 404.
    let unknown = artifact::digest_of(b"nothing refers to this");
    let (status, _, body) = http
        .get(&format!("/v2/acme/hostile/referrers/{unknown}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let index: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(index["manifests"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_the_specifications_grammar_and_indexes_need_their_manifests() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let token = registry.acme.token.clone();
    let missing = artifact::digest_of(b"never pushed");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 10}],
    });
    let index = serde_json::to_vec(&index).expect("json");
    for (tag, code) in [
        (".hidden", "MANIFEST_INVALID"),
        ("v1", "MANIFEST_BLOB_UNKNOWN"),
    ] {
        let (status, _, body) = http
            .put_manifest(
                &format!("/v2/acme/i/manifests/{tag}"),
                &token,
                OCI_INDEX,
                index.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tag}");
        assert_eq!(Http::code(&body), code, "{tag}: {}", Http::message(&body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_naming_more_bytes_than_a_node_reads_is_refused_before_it_is_read() {
    let registry = TestRegistry::start(test_config()).await;
    let http = Http::new(&registry.url);
    let token = registry.acme.token.clone();
    let package = hostile_as(artifacts::TEST_HOSTILE, "acme/big", "1.0.0");
    let built = artifact::build(&vendor_release(package.path()).parts).expect("build");
    let asset = vec![7u8; 4 << 20];
    let blobs = std::iter::once(built.config.1.clone())
        .chain(built.layers.iter().map(|(_, bytes)| bytes.clone()))
        .chain(std::iter::once(asset.clone()));
    for blob in blobs {
        let (status, message) = http
            .upload("acme/big", &token, &blob, &artifact::digest_of(&blob))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{message}");
    }
    // One 4 MiB blob named by 40 assets: 160 MiB for a checker to read.
    let mut manifest: serde_json::Value = serde_json::from_slice(&built.manifest).expect("json");
    let layers = manifest["layers"].as_array_mut().expect("layers");
    for n in 0..40 {
        layers.push(serde_json::json!({
            "mediaType": artifact::ASSET_MEDIA_TYPE,
            "digest": artifact::digest_of(&asset),
            "size": asset.len(),
            "annotations": {(artifact::TITLE): format!("assets/copy-{n}")},
        }));
    }
    let (status, _, body) = http
        .put_manifest(
            "/v2/acme/big/manifests/1.0.0",
            &token,
            OCI_MANIFEST,
            serde_json::to_vec(&manifest).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        Http::message(&body).contains("a node reads at most"),
        "{}",
        Http::message(&body)
    );
    // A file where another layer needs a folder is the release's fault.
    let mut clash: serde_json::Value = serde_json::from_slice(&built.manifest).expect("json");
    let layers = clash["layers"].as_array_mut().expect("layers");
    for title in ["assets/a", "assets/a/b"] {
        layers.push(serde_json::json!({
            "mediaType": artifact::ASSET_MEDIA_TYPE,
            "digest": artifact::digest_of(&asset),
            "size": asset.len(),
            "annotations": {(artifact::TITLE): title},
        }));
    }
    let (status, _, body) = http
        .put_manifest(
            "/v2/acme/big/manifests/1.0.0",
            &token,
            OCI_MANIFEST,
            serde_json::to_vec(&clash).expect("json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        Http::message(&body).contains("both a file and a folder"),
        "{}",
        Http::message(&body)
    );
}
