//! `outpost-registry` run as the central team would run it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn registry(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_outpost-registry"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("OUTPOST_REGISTRY_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("outpost-registry runs")
}

fn succeeds(data: &Path, args: &[&str]) -> String {
    let output = registry(data, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "outpost-registry {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn fails(data: &Path, args: &[&str]) -> String {
    let output = registry(data, args);
    assert!(
        !output.status.success(),
        "outpost-registry {args:?} should fail"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

fn get(port: u16, path: &str) -> Option<(String, Vec<u8>)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    Some((head, answer[split + 4..].to_vec()))
}

#[test]
fn the_central_team_creates_a_registry_namespaces_and_tokens_then_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    let created = succeeds(&data, &["init"]);
    assert!(created.contains("move them offline"), "{created}");
    assert!(data.join("root-keys/root-1").exists());
    let again = fails(&data, &["init"]);
    assert!(again.contains("already exists"), "{again}");

    let key = dir.path().join("acme.key");
    succeeds(&data, &["keygen", key.to_str().expect("utf-8")]);
    let public = format!("{}.pub.json", key.display());
    let added = succeeds(&data, &["namespace", "add", "acme", "--key", &public]);
    assert!(added.contains("acme/* is delegated"), "{added}");
    let twice = fails(&data, &["namespace", "add", "acme", "--key", &public]);
    assert!(twice.contains("exists already"), "{twice}");
    let reserved = fails(&data, &["namespace", "add", "targets", "--key", &public]);
    assert!(reserved.contains("cannot be a namespace"), "{reserved}");
    let private_as_public = fails(
        &data,
        &[
            "namespace",
            "add",
            "bob",
            "--key",
            key.to_str().expect("utf-8"),
        ],
    );
    assert!(
        private_as_public.contains("not a TUF ed25519 public key"),
        "{private_as_public}"
    );
    assert!(succeeds(&data, &["namespace", "list"]).contains("acme\tthreshold 1"));

    // A vendor that lost its key gets a new one.
    let new_key = dir.path().join("acme-2.key");
    succeeds(&data, &["keygen", new_key.to_str().expect("utf-8")]);
    let new_public = format!("{}.pub.json", new_key.display());
    let rekeyed = succeeds(&data, &["namespace", "rekey", "acme", "--key", &new_public]);
    assert!(
        rekeyed.contains("the old keys can no longer publish"),
        "{rekeyed}"
    );
    let unknown = fails(
        &data,
        &["namespace", "rekey", "nobody", "--key", &new_public],
    );
    assert!(
        unknown.contains("namespace nobody does not exist"),
        "{unknown}"
    );
    let too_many = fails(
        &data,
        &[
            "namespace",
            "rekey",
            "acme",
            "--key",
            &new_public,
            "--threshold",
            "2",
        ],
    );
    assert!(
        too_many.contains("threshold must be between 1"),
        "{too_many}"
    );
    let new_id = outpost_registry::keys::load_public(Path::new(&new_public))
        .map(|key| hex::encode(outpost_registry::keys::key_id(&key).as_ref()))
        .expect("public key");
    let listed = succeeds(&data, &["namespace", "list"]);
    assert!(
        listed.contains(&format!("keys {}", &new_id[..16])),
        "{listed}"
    );

    let token = succeeds(&data, &["token", "create", "acme"]);
    assert!(token.trim().starts_with("opr_"), "{token}");
    let listed = succeeds(&data, &["token", "list"]);
    let id = listed.split('\t').next().expect("an id").to_string();
    assert!(listed.contains("\tacme\t"), "{listed}");
    succeeds(&data, &["token", "create", "acme", "--label", "spare"]);
    let revoked = succeeds(&data, &["token", "revoke", &id]);
    assert!(revoked.contains("revoked"), "{revoked}");
    let listed = succeeds(&data, &["token", "list"]);
    assert!(
        !listed.contains(&id) && listed.contains("spare"),
        "{listed}"
    );
    let missing = fails(&data, &["token", "revoke", &id]);
    assert!(missing.contains("no token has id"), "{missing}");
    succeeds(&data, &["token", "create", "acme"]);
    let unknown = fails(&data, &["token", "create", "nobody"]);
    assert!(unknown.contains("does not exist"), "{unknown}");

    let server = Server::start(&data);
    let port = server.port;
    let (_, root) = get(port, "/tuf/1.root.json").expect("root");
    assert_eq!(
        root,
        std::fs::read(data.join("root.json")).expect("root.json")
    );
    let (head, _) = get(port, "/tuf/timestamp.json").expect("timestamp");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, _) = get(port, "/tuf/../registry.redb").expect("answer");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Admin commands while it serves are told to stop it first.
    let busy = fails(&data, &["token", "create", "acme"]);
    assert!(busy.contains("stop it first"), "{busy}");
    drop(server);
}

/// `outpost-registry serve` on a free port, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `serve` on a free port of 127.0.0.1 with `extra` arguments,
    /// without waiting for it.
    fn spawn(data: &Path, extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_outpost-registry"))
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        Server { child, port }
    }

    fn start(data: &Path) -> Server {
        let server = Server::spawn(data, &[]);
        let port = server.port;
        let mut answer = None;
        for _ in 0..100 {
            answer = get(port, "/v2/");
            if answer.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let (head, _) = answer.expect("the registry answers");
        // Anonymous: challenged, so docker-style clients send their token.
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        assert!(head.contains("www-authenticate: Basic"), "{head}");
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hostile test plugin as acme/hostile with `manifest_version` in
/// plugin.toml and `reported` as the version its `info` reports.
fn hostile(dir: &Path, manifest_version: &str, reported: &str) -> PathBuf {
    let from = Path::new(outpost_plugin_artifacts::TEST_HOSTILE.package_dir);
    let to = dir.join(format!("hostile-{manifest_version}-{reported}"));
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
            .replace(
                "version = \"0.1.0\"",
                &format!("version = \"{manifest_version}\""),
            ),
    )
    .expect("manifest");
    std::fs::write(to.join("assets/version.txt"), reported).expect("version");
    to
}

/// Pushes the package at `folder` with a standard OCI client, as `outpost
/// vendor publish` would but without its checks.
fn push(port: u16, token: &str, folder: &Path) -> Result<(), String> {
    let release = outpost::releases::vendor_release(folder).expect("package");
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
    let auth = oci_client::secrets::RegistryAuth::Bearer(token.to_string());
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(outpost_registry::vendor::push(
            &url,
            &outpost_registry::tls::ClientTls::system(),
            &auth,
            &release,
        ))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn serve_refuses_a_release_no_node_would_install() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    succeeds(&data, &["init"]);
    let key = dir.path().join("acme.key");
    succeeds(&data, &["keygen", key.to_str().expect("utf-8")]);
    let public = format!("{}.pub.json", key.display());
    succeeds(&data, &["namespace", "add", "acme", "--key", &public]);
    let token = succeeds(&data, &["token", "create", "acme"]);
    let server = Server::start(&data);

    let refused = push(
        server.port,
        token.trim(),
        &hostile(dir.path(), "1.0.1", "1.0.0"),
    )
    .expect_err("the component reports another version");
    assert!(
        refused.contains("no node would install this release")
            && refused.contains("reports version 1.0.0, but plugin.toml says 1.0.1"),
        "{refused}"
    );
    let (head, _) = get(server.port, "/v2/acme/hostile/manifests/1.0.1").expect("answer");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    push(
        server.port,
        token.trim(),
        &hostile(dir.path(), "1.0.1", "1.0.1"),
    )
    .expect("the fixed release is accepted under the same version");
}

#[test]
fn root_rotation_needs_the_current_root_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    succeeds(&data, &["init"]);
    let new_key = dir.path().join("root-2");
    succeeds(&data, &["keygen", new_key.to_str().expect("utf-8")]);
    let stranger = dir.path().join("stranger");
    succeeds(&data, &["keygen", stranger.to_str().expect("utf-8")]);
    let refused = fails(
        &data,
        &[
            "root",
            "rotate",
            "--current-key",
            stranger.to_str().expect("utf-8"),
            "--new-key",
            new_key.to_str().expect("utf-8"),
        ],
    );
    assert!(refused.contains("needs 1 of its current keys"), "{refused}");
    let current = data.join("root-keys/root-1");
    let rotated = succeeds(
        &data,
        &[
            "root",
            "rotate",
            "--current-key",
            current.to_str().expect("utf-8"),
            "--new-key",
            new_key.to_str().expect("utf-8"),
        ],
    );
    assert!(rotated.contains("root version 2 signed"), "{rotated}");
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("root.json")).expect("root"))
            .expect("json");
    assert_eq!(root["signed"]["version"], 2);
    assert_eq!(
        root["signatures"].as_array().map(Vec::len),
        Some(2),
        "old and new keys sign"
    );
}

/// Off loopback the registry serves HTTPS only; with a certificate a node's
/// client verifies it (and the signed metadata behind it) through the
/// fleet's CA, and plain HTTP to that port gets no answer.
#[test]
fn serve_speaks_https_with_a_certificate_and_plain_http_only_on_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    succeeds(&data, &["init"]);
    let ca = outpost_e2e_tests::tls::TestCa::new("Outpost fleet test CA");
    let cert = ca.certificate_file().display().to_string();
    let key = ca.key_file().display().to_string();

    let refused = fails(&data, &["serve", "--listen", "0.0.0.0:0"]);
    assert!(
        refused.contains("--tls-cert") && refused.contains("in clear"),
        "{refused}"
    );
    let half = registry(&data, &["serve", "--tls-cert", &cert]);
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"));
    let swapped = fails(&data, &["serve", "--tls-cert", &key, "--tls-key", &cert]);
    assert!(swapped.contains("no PEM certificate"), "{swapped}");

    let server = Server::spawn(&data, &["--tls-cert", &cert, "--tls-key", &key]);
    let port = server.port;
    let url = url::Url::parse(&format!("https://127.0.0.1:{port}/")).expect("url");
    let root = std::fs::read(data.join("root.json")).expect("root.json");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let load = |tls: &outpost_registry::tls::ClientTls| {
        runtime.block_on(outpost_registry::client::load(
            &root,
            &outpost_registry::client::TrustState::default(),
            &outpost_registry::client::MetadataSource::Registry(url.clone()),
            tls,
        ))
    };
    let mut loaded = load(&ca.client());
    for _ in 0..100 {
        if loaded.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        loaded = load(&ca.client());
    }
    let (index, _) = loaded.expect("the metadata, over HTTPS");
    assert_eq!(index.root_version, 1);
    let untrusted = load(&outpost_registry::tls::ClientTls::system())
        .expect_err("a certificate from the fleet's CA only");
    assert!(
        untrusted
            .to_string()
            .contains("not signed by a CA this machine trusts"),
        "{untrusted}"
    );
    let plain = get(port, "/v2/");
    assert!(
        plain
            .as_ref()
            .is_none_or(|(head, _)| !head.starts_with("HTTP/1.1 401")),
        "plain HTTP was answered: {plain:?}"
    );
    drop(server);
}

/// The central team manages the fleet while the registry serves (through
/// its admin socket) and while it is stopped (in-process), with the same
/// commands.
#[test]
fn node_commands_work_while_the_registry_serves_and_while_it_is_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    succeeds(&data, &["init"]);
    let server = Server::start(&data);
    assert!(data.join("admin.sock").exists());
    let token = succeeds(
        &data,
        &[
            "node",
            "token",
            "--label",
            "region=north",
            "--valid-for",
            "1h",
        ],
    );
    let token = token.trim().to_string();
    assert!(token.starts_with("ope_"), "{token}");
    let bad = fails(&data, &["node", "token", "--label", "Region=north"]);
    assert!(bad.contains("is not a label"), "{bad}");
    let too_long = fails(&data, &["node", "token", "--valid-for", "2400h"]);
    assert!(too_long.contains("90 days"), "{too_long}");

    // A node enrols over the served API, as `outpost fleet join` does.
    let key = outpost_registry::keys::KeyPair::generate().expect("key");
    let url = url::Url::parse(&format!("http://127.0.0.1:{}/", server.port)).expect("url");
    let request = outpost_registry::fleet::EnrolRequest::new(
        &key,
        &token,
        "stall-1",
        [("site".to_string(), "market-hall".to_string())].into(),
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let enrolled = runtime
        .block_on(outpost_registry::fleet::join(
            &url,
            &outpost_registry::tls::ClientTls::system(),
            &request,
        ))
        .expect("enrol");
    let listed = succeeds(&data, &["node", "list"]);
    assert!(
        listed.contains(&enrolled.id)
            && listed.contains("stall-1")
            && listed.contains("region=north,site=market-hall"),
        "{listed}"
    );
    let prefix = &enrolled.id[..8];
    let labelled = succeeds(
        &data,
        &["node", "label", prefix, "kind=bakery", "--remove", "site"],
    );
    assert!(labelled.contains("kind=bakery,region=north"), "{labelled}");
    let selected = succeeds(&data, &["node", "list", "--select", "kind=bakery"]);
    assert!(selected.contains(&enrolled.id), "{selected}");
    let none = succeeds(&data, &["node", "list", "--select", "kind=florist"]);
    assert!(none.contains("No nodes match kind=florist"), "{none}");
    let unknown = fails(&data, &["node", "label", "ffffffff", "kind=x"]);
    assert!(unknown.contains("no node ffffffff"), "{unknown}");
    let retired = succeeds(&data, &["node", "retire", prefix]);
    assert!(retired.contains("retired"), "{retired}");
    drop(server);

    // Killed (so its socket file is left behind), nobody answers there:
    // the same commands open the database themselves.
    assert!(data.join("admin.sock").exists());
    assert!(succeeds(&data, &["node", "list"]).contains("No nodes"));
    let json = succeeds(&data, &["node", "list", "--retired", "--json"]);
    let nodes: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(nodes[0]["id"], enrolled.id.as_str());
    assert!(nodes[0]["retired_at"].is_u64(), "{json}");
}

/// A rollout from the command line, with the registry serving: every bad
/// part refused by name with nothing stored, then created from a file,
/// shown per wave, paused, resumed and aborted.
#[test]
fn rollouts_are_created_checked_shown_and_steered_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("registry");
    succeeds(&data, &["init"]);
    let key_file = dir.path().join("acme.key");
    succeeds(&data, &["keygen", key_file.to_str().expect("utf-8")]);
    let public = format!("{}.pub.json", key_file.display());
    succeeds(&data, &["namespace", "add", "acme", "--key", &public]);
    let token = succeeds(&data, &["token", "create", "acme"]);
    let server = Server::start(&data);
    let url = url::Url::parse(&format!("http://127.0.0.1:{}/", server.port)).expect("url");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let vendor = outpost_registry::keys::KeyPair::load(&key_file).expect("key");
    let release =
        outpost::releases::vendor_release(&hostile(dir.path(), "1.3.0", "1.3.0")).expect("package");
    let tls = outpost_registry::tls::ClientTls::system();
    runtime
        .block_on(outpost_registry::vendor::publish(
            &url,
            &tls,
            token.trim(),
            &[&vendor],
            &release,
            jiff::SignedDuration::from_hours(24),
        ))
        .expect("publish");
    for region in ["north", "north"] {
        let node_token = succeeds(
            &data,
            &["node", "token", "--label", &format!("region={region}")],
        );
        let node_key = outpost_registry::keys::KeyPair::generate().expect("key");
        let request = outpost_registry::fleet::EnrolRequest::new(
            &node_key,
            node_token.trim(),
            "stall",
            Default::default(),
        );
        runtime
            .block_on(outpost_registry::fleet::join(&url, &tls, &request))
            .expect("enrol");
    }

    for (args, expected) in [
        (
            vec!["acme/hostile@9.9.9"],
            "not a release the registry holds signed",
        ),
        (
            vec!["acme/hostile@1.3.0", "--select", "region=mars"],
            "matches no active node",
        ),
        (vec!["acme/hostile@1.3.0", "--waves", "10,50"], "end at 100"),
        (
            vec!["acme/hostile@1.3.0", "--abort-when", "when it feels wrong"],
            "is not an abort rule",
        ),
    ] {
        let mut command = vec!["rollout", "create"];
        command.extend(args);
        let refused = fails(&data, &command);
        assert!(refused.contains(expected), "{refused}");
    }
    assert!(succeeds(&data, &["rollout", "list"]).contains("No rollouts"));

    let file = dir.path().join("rollout.toml");
    std::fs::write(&file, "release = \"acme/hostile@1.3.0\"\nselect = \"region=north\"\nwaves = [50, 100]\nprobation = \"10m\"\nabort-when = \"failed > 10% after 1\"\nsurprise = 1\n")
        .expect("write");
    let unknown = fails(
        &data,
        &["rollout", "create", "--file", file.to_str().expect("utf-8")],
    );
    assert!(
        unknown.contains("rollout.toml is not a rollout"),
        "{unknown}"
    );
    std::fs::write(&file, "release = \"acme/hostile@1.3.0\"\nselect = \"region=north\"\nwaves = [50, 100]\nprobation = \"10m\"\nabort-when = \"failed > 10% after 1\"\n")
        .expect("write");
    let created = succeeds(
        &data,
        &["rollout", "create", "--file", file.to_str().expect("utf-8")],
    );
    assert!(
        created.contains(
            "r1\tacme/hostile@1.3.0\trunning, wave 1 of 2\t2 node(s), select region=north"
        ),
        "{created}"
    );
    let status = succeeds(&data, &["rollout", "status", "r1"]);
    assert!(
        status.contains("wave 1 (50%, 1 node(s)): 1 pending")
            && status.contains("wave 2 (100%, 1 node(s), not open yet): 1 pending")
            && status.contains("probation 10 min, abort when failed > 10% after 1"),
        "{status}"
    );
    succeeds(&data, &["rollout", "pause", "r1"]);
    let twice = fails(&data, &["rollout", "pause", "r1"]);
    assert!(
        twice.contains("rollout r1 is paused; it cannot be paused"),
        "{twice}"
    );
    assert!(succeeds(&data, &["rollout", "resume", "r1"]).contains("running"));
    let aborted = succeeds(&data, &["rollout", "abort", "r1"]);
    assert!(
        aborted.contains("aborted at wave 1 of 2") && aborted.contains("roll back"),
        "{aborted}"
    );
    let missing = fails(&data, &["rollout", "status", "r9"]);
    assert!(missing.contains("no rollout r9"), "{missing}");
    drop(server);
}
