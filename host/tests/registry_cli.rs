//! The registry commands run as a vendor and an operator would: a vendor
//! makes a key and publishes, an operator provisions trust, searches,
//! installs, and carries a bundle to a node with no network.

mod common;

use common::FleetCa;
use common::{command, expect_failure, expect_success, fails, succeeds};
use outpost_registry::admin;
use outpost_registry::keys;
use outpost_registry::repository::{self, Lifetimes, OnlineKeys};
use outpost_registry::server::{Registry, ServeConfig};
use outpost_registry::store::RegistryStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Served {
    _runtime: tokio::runtime::Runtime,
    registry: Arc<Registry>,
    url: String,
    root_file: PathBuf,
    _store_dir: tempfile::TempDir,
}

/// A registry in this process with namespace acme delegated to the key
/// in `vendor_public`, and a token for it.
fn serve_registry(vendor_public: &Path) -> (Served, String) {
    serve_registry_with(vendor_public, None)
}

/// Like [`serve_registry`], over HTTPS when given a fleet CA's files.
fn serve_registry_with(vendor_public: &Path, https: Option<&FleetCa>) -> (Served, String) {
    let store_dir = tempfile::tempdir().expect("temp dir");
    let store = RegistryStore::create(store_dir.path()).expect("registry");
    let root_keys = vec![keys::KeyPair::generate().expect("key")];
    let online = OnlineKeys::generate().expect("keys");
    let root =
        repository::init(&store, &root_keys, 1, &online, Lifetimes::default()).expect("metadata");
    let root_file = store_dir.path().join("root.json");
    std::fs::write(&root_file, root).expect("write root");
    let vendor_key = keys::load_public(vendor_public).expect("vendor key");
    admin::add_namespace(&store, "acme", vec![vendor_key], 1).expect("namespace");
    let token = admin::issue_token(&store, "acme", "test").expect("token");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let scheme = if https.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("addr"));
    let config = ServeConfig {
        tls: https.map(|ca| {
            outpost_registry::tls::ServerTls::from_files(&ca.certificate, &ca.key).expect("TLS")
        }),
        ..ServeConfig::default()
    };
    let registry = Arc::new(
        Registry::new(store, online, config)
            .with_release_check(Arc::new(outpost::release_check::ReleaseChecker::new())),
    );
    runtime.spawn(registry.clone().serve(listener, std::future::pending()));
    (
        Served {
            _runtime: runtime,
            registry,
            url,
            root_file,
            _store_dir: store_dir,
        },
        token,
    )
}

/// A vendor with a key of its own in `<work>/vendor`, and a registry
/// that delegates namespace acme to it.
struct Vendor {
    dir: PathBuf,
    key: PathBuf,
    registry: Served,
    token: String,
}

fn vendor(work: &Path) -> Vendor {
    let dir = work.join("vendor");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let key = dir.join("acme.key");
    succeeds(&dir, &["vendor", "keygen", &text_of(&key)]);
    let (registry, token) = serve_registry(&keys::public_path(&key));
    Vendor {
        dir,
        key,
        registry,
        token,
    }
}

/// The hostile test plugin packaged as acme/hostile at `version`.
fn package(dir: &Path, version: &str) -> PathBuf {
    let from = Path::new(outpost_plugin_artifacts::TEST_HOSTILE.package_dir);
    let to = dir.join(format!("hostile-{version}"));
    std::fs::create_dir_all(to.join("assets")).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("package") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let manifest = std::fs::read_to_string(to.join("plugin.toml")).expect("manifest");
    std::fs::write(
        to.join("plugin.toml"),
        manifest
            .replace("id = \"test/hostile\"", "id = \"acme/hostile\"")
            .replace("version = \"0.1.0\"", &format!("version = \"{version}\"")),
    )
    .expect("manifest");
    std::fs::write(to.join("assets/version.txt"), version).expect("version");
    to
}

fn text_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn a_vendor_publishes_and_operators_install_online_and_from_a_bundle() {
    let work = tempfile::tempdir().expect("temp dir");
    let vendor_dir = work.path().join("vendor");
    std::fs::create_dir_all(&vendor_dir).expect("mkdir");
    let key = vendor_dir.join("acme.key");
    let made = succeeds(&vendor_dir, &["vendor", "keygen", &text_of(&key)]);
    assert!(made.contains("send it to the central team"), "{made}");
    let (registry, token) = serve_registry(&keys::public_path(&key));

    // Publishing needs the token; without it the error says where to put it.
    let package_dir = package(work.path(), "1.2.0");
    let publish = [
        "vendor",
        "publish",
        &text_of(&package_dir),
        "--registry",
        &registry.url,
        "--key",
        &text_of(&key),
    ];
    let output = command(&vendor_dir, &publish)
        .env_remove("OUTPOST_REGISTRY_TOKEN")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--token"));
    let output = command(&vendor_dir, &publish)
        .env("OUTPOST_REGISTRY_TOKEN", &token)
        .output()
        .expect("runs");
    let published = expect_success(&publish, &output);
    assert!(
        published.contains("published acme/hostile@1.2.0"),
        "{published}"
    );

    // An operator without trust is told how to get it.
    let node = work.path().join("node");
    let refusal = fails(
        &node,
        &[
            "plugin",
            "install",
            "acme/hostile",
            "--registry",
            &registry.url,
        ],
    );
    assert!(refusal.contains("outpost trust init"), "{refusal}");

    let root_copy = work.path().join("root.json");
    std::fs::copy(&registry.root_file, &root_copy).expect("copy root");
    let root = text_of(&root_copy);
    let trusted = succeeds(
        &node,
        &["trust", "init", &root, "--registry", &registry.url],
    );
    assert!(trusted.contains("trusting root version 1"), "{trusted}");
    let found = succeeds(&node, &["plugin", "search"]);
    assert!(found.contains("acme/hostile@1.2.0"), "{found}");

    let refusal = fails(&node, &["plugin", "install", "acme/hostile@^1"]);
    assert!(refusal.contains("--yes"), "{refusal}");
    assert!(succeeds(&node, &["plugin", "list"]).contains("No plugins installed"));
    let installed = succeeds(&node, &["plugin", "install", "acme/hostile@^1", "--yes"]);
    assert!(
        installed.contains("verified acme/hostile@1.2.0"),
        "{installed}"
    );
    assert!(
        installed.contains("acme/hostile installed 1.2.0"),
        "{installed}"
    );
    let missing = fails(&node, &["plugin", "install", "acme/hostile@^2", "--yes"]);
    assert!(
        missing.contains("the signed versions are 1.2.0"),
        "{missing}"
    );
    let shown = succeeds(&node, &["trust", "show"]);
    assert!(
        shown.contains("timestamp") && shown.contains("root:     version 1"),
        "{shown}"
    );

    // A newer release, then a bundle with both for a node with no
    // network: exported where there is one...
    let newer = package(work.path(), "1.3.0");
    let publish_newer = [
        "vendor",
        "publish",
        &text_of(&newer),
        "--registry",
        &registry.url,
        "--key",
        &text_of(&key),
    ];
    let output = command(&vendor_dir, &publish_newer)
        .env("OUTPOST_REGISTRY_TOKEN", &token)
        .output()
        .expect("runs");
    expect_success(&publish_newer, &output);
    let bundle = work.path().join("usb/hostile.bundle");
    std::fs::create_dir_all(bundle.parent().expect("parent")).expect("mkdir");
    let exported = succeeds(
        &node,
        &[
            "bundle",
            "export",
            "acme/hostile@=1.2.0",
            "acme/hostile@=1.3.0",
            "-o",
            &text_of(&bundle),
        ],
    );
    assert!(
        exported.contains("acme/hostile@1.2.0, acme/hostile@1.3.0"),
        "{exported}"
    );
    // The registry goes away: no network from here on.
    drop(registry);

    // ...installed where there is none (this node was never told a registry).
    let offline = work.path().join("offline");
    succeeds(&offline, &["trust", "init", &root]);
    let which = fails(&offline, &["plugin", "install", &text_of(&bundle), "--yes"]);
    assert!(
        which.contains("it holds acme/hostile@1.2.0, acme/hostile@1.3.0"),
        "{which}"
    );
    let installed = succeeds(
        &offline,
        &[
            "plugin",
            "install",
            &text_of(&bundle),
            "--plugin",
            "acme/hostile@=1.2.0",
            "--yes",
        ],
    );
    assert!(
        installed.contains("acme/hostile installed 1.2.0"),
        "{installed}"
    );
    let upgraded = succeeds(
        &offline,
        &[
            "plugin",
            "install",
            &text_of(&bundle),
            "--plugin",
            "acme/hostile",
            "--yes",
        ],
    );
    assert!(
        upgraded.contains("acme/hostile upgraded from 1.2.0 to 1.3.0"),
        "{upgraded}"
    );
    let garbage = work.path().join("garbage.bundle");
    std::fs::write(&garbage, b"not a bundle").expect("write");
    let args = ["plugin", "install", &text_of(&garbage), "--yes"];
    let refusal = expect_failure(&args, &common::outpost(&offline, &args));
    assert!(
        refusal.contains("copy it again") || refusal.contains("not an Outpost bundle"),
        "{refusal}"
    );
}

#[test]
fn registry_commands_explain_themselves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let help = succeeds(dir.path(), &["plugin", "install", "--help"]);
    for needle in ["oci://", ".bundle", "--registry", "--yes", "^1.2"] {
        assert!(
            help.contains(needle),
            "install --help lacks {needle}:\n{help}"
        );
    }
    let help = succeeds(dir.path(), &["vendor", "publish", "--help"]);
    assert!(help.contains("OUTPOST_REGISTRY_TOKEN"), "{help}");
    let bad_root = dir.path().join("root.json");
    std::fs::write(&bad_root, b"{\"signed\":{}}").expect("write");
    let refusal = fails(dir.path(), &["trust", "init", &text_of(&bad_root)]);
    assert!(refusal.contains("not root metadata"), "{refusal}");
    let refusal = fails(dir.path(), &["plugin", "install", "not a plugin id"]);
    assert!(
        refusal.contains("not a plugin to install") || refusal.contains("registry"),
        "{refusal}"
    );
}

#[test]
fn vendor_publish_refuses_a_release_no_node_would_install_before_pushing_it() {
    let work = tempfile::tempdir().expect("temp dir");
    let Vendor {
        dir: vendor_dir,
        key,
        registry,
        token,
    } = vendor(work.path());

    // plugin.toml says 1.2.1; the component's `info` still reports 1.2.0.
    let package_dir = package(work.path(), "1.2.1");
    std::fs::write(package_dir.join("assets/version.txt"), "1.2.0").expect("version");
    let publish = [
        "vendor",
        "publish",
        &text_of(&package_dir),
        "--registry",
        &registry.url,
        "--key",
        &text_of(&key),
    ];
    let output = command(&vendor_dir, &publish)
        .env("OUTPOST_REGISTRY_TOKEN", &token)
        .output()
        .expect("runs");
    let refusal = expect_failure(&publish, &output);
    for needle in [
        text_of(&package_dir).as_str(),
        "the component reports version 1.2.0, but plugin.toml says 1.2.1",
        "rebuild it or fix the manifest",
        "Nothing was pushed",
    ] {
        assert!(refusal.contains(needle), "{needle:?} not in {refusal}");
    }
    let address: std::net::SocketAddr = registry
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let answer = common::http_get(address, "/v2/acme/hostile/manifests/1.2.1").expect("answer");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

    // Fixed, the same version publishes.
    std::fs::write(package_dir.join("assets/version.txt"), "1.2.1").expect("version");
    let output = command(&vendor_dir, &publish)
        .env("OUTPOST_REGISTRY_TOKEN", &token)
        .output()
        .expect("runs");
    let published = expect_success(&publish, &output);
    assert!(
        published.contains("published acme/hostile@1.2.1"),
        "{published}"
    );
}

/// Provisioning trust, refreshing it and searching change what the node
/// stores, so while a node runs they go to it over the admin channel
/// instead of asking the operator to stop it.
#[test]
fn trust_and_search_reach_a_running_node() {
    let work = tempfile::tempdir().expect("temp dir");
    let Vendor {
        dir: vendor_dir,
        key,
        registry,
        token,
    } = vendor(work.path());
    let release = package(work.path(), "1.2.0");
    succeeds(
        &vendor_dir,
        &[
            "vendor",
            "publish",
            &text_of(&release),
            "--registry",
            &registry.url,
            "--key",
            &text_of(&key),
            "--token",
            &token,
        ],
    );

    let data = work.path().join("node");
    std::fs::create_dir_all(&data).expect("mkdir");
    let address = common::free_port();
    std::fs::write(
        data.join("outpost.toml"),
        format!("[api]\nlisten = \"{address}\"\n"),
    )
    .expect("config");
    let mut node = common::start_node(&data, address, false);

    let untrusted = fails(&data, &["trust", "show"]);
    assert!(untrusted.contains("outpost trust init"), "{untrusted}");
    let root = text_of(&registry.root_file);
    let trusted = succeeds(
        &data,
        &["trust", "init", &root, "--registry", &registry.url],
    );
    assert!(trusted.contains("trusting root version 1"), "{trusted}");
    let found = succeeds(&data, &["plugin", "search", "hostile"]);
    assert!(found.contains("acme/hostile@1.2.0"), "{found}");
    let nothing = succeeds(&data, &["plugin", "search", "no-such-plugin"]);
    assert!(nothing.contains("No signed releases"), "{nothing}");
    let shown = succeeds(&data, &["trust", "show"]);
    assert!(
        shown.contains("root:     version 1") && shown.contains("timestamp"),
        "{shown}"
    );
    let updated = succeeds(&data, &["trust", "update", "--clock-was-wrong"]);
    assert!(
        updated.contains("forgot the clock reading") && updated.contains("accepted root version 1"),
        "{updated}"
    );
    // A relative output path is the operator's, not the node's.
    let export = ["bundle", "export", "acme/hostile@^1", "-o", "stall.bundle"];
    let exported = command(&data, &export)
        .current_dir(work.path())
        .output()
        .expect("runs");
    let exported = expect_success(&export, &exported);
    assert!(exported.contains("acme/hostile@1.2.0"), "{exported}");
    assert!(work.path().join("stall.bundle").is_file(), "{exported}");
    let database = text_of(&data.join("outpost.redb"));
    let refused = fails(
        &data,
        &["bundle", "export", "acme/hostile@^1", "-o", &database],
    );
    assert!(
        refused.contains("inside the node's data directory"),
        "{refused}"
    );
    assert!(
        node.try_wait().expect("node state").is_none(),
        "the node stopped"
    );
    common::signal(&node, "-TERM");
    assert!(node.wait().expect("exits").success());
}

/// A fleet with its own CA: the vendor and the operator each give the CA
/// (`--registry-ca`, `trust init --ca`); without it the registry's
/// certificate is refused with what to do, and a plain-HTTP registry on
/// another machine is refused before a token is sent.
#[test]
fn a_fleet_registry_over_https_with_its_own_ca() {
    let work = tempfile::tempdir().expect("temp dir");
    let vendor_dir = work.path().join("vendor");
    std::fs::create_dir_all(&vendor_dir).expect("mkdir");
    let key = vendor_dir.join("acme.key");
    succeeds(&vendor_dir, &["vendor", "keygen", &text_of(&key)]);
    let ca = FleetCa::new(&work.path().join("ca"));
    let (registry, token) = serve_registry_with(&keys::public_path(&key), Some(&ca));
    assert!(registry.url.starts_with("https://"), "{}", registry.url);
    let release = text_of(&package(work.path(), "1.2.0"));
    let publish = |registry_url: &str, extra: &[&str]| {
        let mut args = vec![
            "vendor",
            "publish",
            &release,
            "--registry",
            registry_url,
            "--key",
            key.to_str().expect("utf-8"),
            "--token",
            &token,
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let ca_file = text_of(&ca.ca);
    let untrusted = publish(&registry.url, &[]);
    let untrusted: Vec<&str> = untrusted.iter().map(String::as_str).collect();
    let refused = fails(&vendor_dir, &untrusted);
    assert!(refused.contains("--registry-ca"), "{refused}");
    let elsewhere = publish("http://192.0.2.7:7272", &[]);
    let elsewhere: Vec<&str> = elsewhere.iter().map(String::as_str).collect();
    let refused = fails(&vendor_dir, &elsewhere);
    assert!(refused.contains("https://192.0.2.7:7272"), "{refused}");
    let trusted = publish(&registry.url, &["--registry-ca", &ca_file]);
    let trusted: Vec<&str> = trusted.iter().map(String::as_str).collect();
    let published = succeeds(&vendor_dir, &trusted);
    assert!(
        published.contains("published acme/hostile@1.2.0"),
        "{published}"
    );

    let node = work.path().join("node");
    let root = text_of(&registry.root_file);
    succeeds(
        &node,
        &["trust", "init", &root, "--registry", &registry.url],
    );
    let refused = fails(&node, &["plugin", "search"]);
    assert!(
        refused.contains("not signed by a CA this machine trusts"),
        "{refused}"
    );
    let trusted = succeeds(
        &node,
        &[
            "trust",
            "init",
            &root,
            "--registry",
            &registry.url,
            "--ca",
            &ca_file,
        ],
    );
    assert!(trusted.contains("the fleet's CA"), "{trusted}");
    let installed = succeeds(&node, &["plugin", "install", "acme/hostile@^1", "--yes"]);
    assert!(
        installed.contains("acme/hostile installed 1.2.0"),
        "{installed}"
    );
    let not_a_ca = fails(&node, &["trust", "init", &root, "--ca", &root]);
    assert!(not_a_ca.contains("no PEM certificate"), "{not_a_ca}");
}

/// A node joins the fleet with a one-time token, and says which fleet it
/// is in; its identity key is its own, readable only by its user.
#[test]
fn a_node_joins_the_fleet_with_a_one_time_token() {
    let work = tempfile::tempdir().expect("temp dir");
    let Vendor { registry, .. } = vendor(work.path());
    let node = work.path().join("node");
    let before = succeeds(&node, &["fleet", "status"]);
    assert!(
        before.contains("identity key: ") && before.contains("fleet: none"),
        "{before}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node.join("identity.key"))
            .expect("identity key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let issued = outpost_registry::fleet::issue_enrolment_token(
        registry.registry.store(),
        [("region".to_string(), "north".to_string())].into(),
        3600,
    )
    .expect("token");
    let bad_label = command(
        &node,
        &[
            "fleet",
            "join",
            &registry.url,
            "--token",
            &issued.token,
            "--label",
            "Site=x",
        ],
    )
    .output()
    .expect("runs");
    assert!(!bad_label.status.success());
    let stderr = String::from_utf8_lossy(&bad_label.stderr);
    assert!(stderr.contains("is not a label"), "{stderr}");
    let joined = succeeds(
        &node,
        &[
            "fleet",
            "join",
            &registry.url,
            "--token",
            &issued.token,
            "--label",
            "site=market-hall",
            "--name",
            "stall-7",
        ],
    );
    assert!(
        joined.contains("as node ")
            && joined.contains("(stall-7); labels: region=north,site=market-hall"),
        "{joined}"
    );
    let status = succeeds(&node, &["fleet", "status"]);
    assert!(
        status.contains("as node ") && status.contains("stall-7"),
        "{status}"
    );
    let listed = outpost_registry::fleet::list(
        registry.registry.store(),
        &outpost_registry::fleet::Selector::default(),
        false,
    )
    .expect("list");
    assert_eq!(listed.len(), 1);
    assert!(status.contains(&listed[0].id), "{status}");
    let twice = fails(
        &node,
        &["fleet", "join", &registry.url, "--token", &issued.token],
    );
    assert!(twice.contains("already in the fleet"), "{twice}");

    // What the fleet asks of it, verified against the director its root
    // delegates: nothing yet, and an untrusting node cannot ask at all.
    let untrusted = fails(&node, &["fleet", "check"]);
    assert!(untrusted.contains("outpost trust init"), "{untrusted}");
    let root = text_of(&registry.root_file);
    succeeds(
        &node,
        &["trust", "init", &root, "--registry", &registry.url],
    );
    let checked = succeeds(&node, &["fleet", "check"]);
    assert!(
        checked.contains("desired state version 0")
            && checked.contains("signed by the director")
            && checked.contains("no rollout asks anything of this node"),
        "{checked}"
    );
    let again = succeeds(&node, &["fleet", "check"]);
    assert!(again.contains("(unchanged)"), "{again}");
}
