//! The vendor's whole path with the real binaries, from an empty folder:
//! `outpost vendor new` for each of the four kinds, `cargo test` inside the
//! new crate (native tests on the in-memory host, sandbox tests through the
//! test-kit), `vendor check`, `vendor publish` to a registry on 127.0.0.1
//! and an install on a node; then the releases `vendor publish` must refuse
//! before it pushes anything.

use outpost_e2e_tests::registry::{TestRegistry, hostile_as, test_config};
use outpost_e2e_tests::{artifacts, outpost_binary};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const KINDS: [(&str, &str); 4] = [
    ("printer-driver", "render-label"),
    ("payment-tokenizer", "tokenize"),
    ("courier-adapter", "request-quotes"),
    ("forecaster", "forecast"),
];

/// The workspace, for its Cargo.lock and SDK.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Runs `command`, returning its output; `what` names it in a failure.
fn run(command: &mut Command, what: &str) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeed(command: &mut Command, what: &str) -> String {
    let output = run(command, what);
    let all = text(&output);
    assert!(output.status.success(), "{what} failed:\n{all}");
    all
}

/// `outpost` with the vendor's environment: no registry token or key from
/// the machine running the tests.
fn outpost(home: &Path) -> Command {
    let mut command = Command::new(outpost_binary());
    command
        .env("HOME", home)
        .env_remove("OUTPOST_REGISTRY")
        .env_remove("OUTPOST_VENDOR_KEY")
        .env_remove("OUTPOST_REGISTRY_TOKEN")
        .env_remove("OUTPOST_DATA_DIR");
    command
}

/// `cargo` for a vendor's crate: one target folder shared by the four
/// crates (they build the same SDK), the `outpost` under test for the
/// test-kit, and no network (every crate is in the local cache: the crate
/// starts from the workspace's lock file).
fn cargo(home: &Path, target: &Path) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_NET_OFFLINE", "true")
        .env("OUTPOST_BIN", outpost_binary())
        .env("HOME", home)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    // The vendor's cargo keeps its own home (~/.cargo) for the registry cache.
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        command.env("CARGO_HOME", cargo_home);
    } else if let Some(real_home) = std::env::var_os("HOME") {
        command.env("CARGO_HOME", Path::new(&real_home).join(".cargo"));
    }
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_goes_from_nothing_to_an_installed_plugin_for_every_kind() {
    let registry = TestRegistry::start(test_config()).await;
    let url = registry.url.to_string();
    let root_json = registry.root_json.clone();
    let key = registry.acme.key.clone();
    let token = registry.acme.token.clone();

    let timings = tokio::task::spawn_blocking(move || {
        let work = tempfile::tempdir().expect("temp dir");
        let home = work.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let target = work.path().join("target");
        // The key folder does not exist yet: keygen makes it, private.
        let spare = home.join(".config/outpost/spare.key");
        succeed(
            outpost(&home).args(["vendor", "keygen"]).arg(&spare),
            "vendor keygen",
        );
        let folder = spare.parent().expect("key folder");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(folder)
            .expect("made")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "the key folder is private");
        assert!(folder.join("spare.key.pub.json").is_file());
        // The registry delegated acme to this key (the central team's step).
        let key_file = home.join(".config/outpost/acme.key");
        key.save(&key_file).expect("the vendor's key");

        // `outpost vendor <args>` in a crate's folder, as the vendor runs it.
        let vendor = |folder: &Path, args: &[&str]| {
            let mut command = outpost(&home);
            command
                .current_dir(folder)
                .env("CARGO_TARGET_DIR", &target)
                .env("OUTPOST_REGISTRY_TOKEN", &token)
                .arg("vendor")
                .args(args);
            command
        };
        let publish = |folder: &Path| {
            let mut command = vendor(folder, &["publish", "--registry", &url, "--key"]);
            command.arg(&key_file);
            command
        };
        let node = work.path().join("node");
        std::fs::write(work.path().join("root.json"), &root_json).expect("root.json");
        succeed(
            outpost(&home)
                .arg("--data-dir")
                .arg(&node)
                .args(["trust", "init"])
                .arg(work.path().join("root.json"))
                .args(["--registry", &url]),
            "trust init",
        );

        let mut timings = Vec::new();
        for (kind, function) in KINDS {
            let id = format!("acme/{kind}-demo");
            let folder = work.path().join(format!("{kind}-demo"));
            let started = Instant::now();
            succeed(
                outpost(&home)
                    .current_dir(work.path())
                    .args(["vendor", "new", kind, &id]),
                &format!("vendor new {kind}"),
            );
            std::fs::copy(workspace().join("Cargo.lock"), folder.join("Cargo.lock"))
                .expect("lock file");
            let tests = succeed(
                cargo(&home, &target).current_dir(&folder).arg("test"),
                &format!("cargo test in the new {kind} crate"),
            );
            // Both kinds of test ran and passed.
            assert!(
                tests.contains("tests::") && tests.contains("Running tests/sandbox.rs"),
                "{kind}: native and sandbox tests both run:\n{tests}"
            );
            let checked = succeed(
                &mut vendor(&folder, &["check"]),
                &format!("vendor check {kind}"),
            );
            assert!(
                checked.contains(&format!("{id}@0.1.0")),
                "{kind} check:\n{checked}"
            );
            let published = succeed(&mut publish(&folder), &format!("vendor publish {kind}"));
            assert!(
                published.contains(&format!("published {id}@0.1.0")),
                "{kind} publish:\n{published}"
            );
            timings.push((kind, started.elapsed()));

            if kind == "payment-tokenizer" {
                // Its health needs its key, which the operator provisions
                // before installing.
                succeed(
                    outpost(&home).arg("--data-dir").arg(&node).args([
                        "keys",
                        "add",
                        &id,
                        "card-hmac",
                    ]),
                    "keys add",
                );
            }
            succeed(
                outpost(&home)
                    .arg("--data-dir")
                    .arg(&node)
                    .args(["plugin", "install", &id, "--yes"]),
                &format!("installing {id}"),
            );
            // The crate's example input works with `outpost call` as written.
            let example = folder.join(format!("examples/{function}.json"));
            let mut call = outpost(&home);
            call.arg("--data-dir")
                .arg(&node)
                .args(["call", &id, function]);
            call.arg(format!("@{}", example.display()));
            let answer = succeed(&mut call, &format!("outpost call {id} {function} @example"));
            assert!(
                !answer.trim().is_empty(),
                "{id} {function} answered nothing"
            );
        }

        // Releases no node would install: each refused before anything is
        // pushed. Version 0.2.0, so a push would show as a new release.
        let printer = work.path().join("printer-driver-demo");
        let edit = |file: &str, from: &str, to: &str| {
            let path = printer.join(file);
            let text = std::fs::read_to_string(&path).expect("read");
            assert!(text.contains(from), "{file} holds {from:?}");
            std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
        };
        edit("Cargo.toml", "version = \"0.1.0\"", "version = \"0.2.0\"");
        let refusals: [(&str, &str, &str, &str, &str); 4] = [
            (
                "plugin.toml names another version",
                "plugin.toml",
                "[plugin]\n",
                "[plugin]\nversion = \"0.2.1\"\n",
                "plugin.toml says version \"0.2.1\" but Cargo.toml says 0.2.0",
            ),
            (
                "info() reports another version",
                "src/lib.rs",
                "env!(\"CARGO_PKG_VERSION\")",
                "\"0.1.9\"",
                "reports version 0.1.9",
            ),
            (
                "a capability it uses is not granted",
                "plugin.toml",
                "kv = ",
                "# kv = ",
                "needs the `kv` grant",
            ),
            (
                "plugin.toml names the wrong world",
                "plugin.toml",
                "outpost:plugins/printer-driver@0.1.0",
                "outpost:plugins/forecaster@0.1.0",
                "which is the printer-driver world",
            ),
        ];
        for (what, file, from, to, expected) in refusals {
            edit(file, from, to);
            let output = run(&mut publish(&printer), what);
            let said = text(&output);
            assert!(
                !output.status.success(),
                "{what}: published anyway:\n{said}"
            );
            assert!(said.contains(expected), "{what}: says why:\n{said}");
            assert!(!said.contains("published"), "{what}:\n{said}");
            edit(file, to, from);
        }
        // Nothing of 0.2.0 reached the registry.
        let output = run(
            outpost(&home).arg("--data-dir").arg(&node).args([
                "plugin",
                "install",
                "acme/printer-driver-demo@0.2.0",
                "--yes",
            ]),
            "installing 0.2.0",
        );
        assert!(
            !output.status.success(),
            "0.2.0 was published:\n{}",
            text(&output)
        );
        // Put right, it publishes.
        succeed(&mut publish(&printer), "publishing the fixed 0.2.0");

        // `vendor watch` reloads a changed driver into a local node.
        let dev_node = work.path().join("dev-node");
        let mut watch = std::process::Command::new(outpost_binary())
            .env("HOME", &home)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&printer)
            .arg("--data-dir")
            .arg(&dev_node)
            .args(["vendor", "watch", "--every-ms", "200"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("vendor watch starts");
        let lines = watch_lines(&mut watch);
        let reloaded = "reloaded acme/printer-driver-demo@0.2.0";
        wait_for_line(&lines, reloaded, &mut watch);
        let label = |node: &Path| {
            succeed(
                outpost(&home)
                    .current_dir(&printer)
                    .arg("--data-dir")
                    .arg(node)
                    .args(["call", "acme/printer-driver-demo", "render-label"])
                    .arg("@examples/render-label.json"),
                "a label from the dev node",
            )
        };
        assert!(label(&dev_node).contains("REF: "));
        edit("src/lib.rs", "\"REF: {}\"", "\"REFERENCE: {}\"");
        wait_for_line(&lines, reloaded, &mut watch);
        assert!(
            label(&dev_node).contains("REFERENCE: "),
            "the change is live"
        );
        let _ = watch.kill();
        let _ = watch.wait();
        timings
    })
    .await
    .expect("the vendor's path");
    for (kind, took) in &timings {
        println!(
            "{kind}: vendor new to published in {:.1} s",
            took.as_secs_f64()
        );
    }
}

/// A label for the hostile test plugin, which runs `command` with `args`.
fn hostile_label(command: &str, args: &[&str]) -> outpost_testkit::Value {
    let mut example: outpost_testkit::Value = serde_json::from_str(include_str!(
        "../../host/src/bin/outpost/vendor/templates/printer-driver/examples/render-label.json"
    ))
    .expect("the template's label");
    example["label"]["reference"] = command.into();
    example["label"]["notes"] = args.iter().map(|a| a.to_string()).collect();
    example
}

#[test]
fn the_test_kit_reports_what_the_sandbox_did_to_a_call() {
    use outpost_testkit::{Kind, Plugin};
    let old = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.0.0");
    let new = hostile_as(artifacts::TEST_HOSTILE, "acme/hostile", "1.1.0");
    let mut plugin = Plugin::builder()
        .outpost(outpost_binary())
        .package(old.path())
        .config("greeting", "hello")
        .build()
        .expect("the sandbox starts with 1.0.0");
    assert_eq!((plugin.id(), plugin.version()), ("acme/hostile", "1.0.0"));

    let answer = plugin
        .call("render-label", hostile_label("echo", &["a", "b"]))
        .expect("echo");
    assert_eq!(answer.text().as_deref(), Some("a b"));
    assert!(answer.elapsed > std::time::Duration::ZERO);
    let config = plugin
        .call("render-label", hostile_label("config", &["greeting"]))
        .expect("config");
    assert_eq!(config.text().as_deref(), Some("hello"));

    // What the node stopped, as the kinds a test asserts on.
    for (command, kind) in [
        ("panic", Kind::Panicked),
        ("spin", Kind::DeadlineExceeded),
        ("grow-memory", Kind::MemoryLimit),
        ("no-such-command", Kind::InvalidInput),
    ] {
        let failure = plugin
            .call("render-label", hostile_label(command, &[]))
            .expect_err(command);
        assert_eq!(failure.kind, kind, "{command}: {failure}");
    }
    let deadline = plugin
        .call("render-label", hostile_label("spin", &[]))
        .expect_err("spin");
    assert!(
        deadline.elapsed.is_some_and(|t| t.as_millis() >= 300),
        "stopped at its 300 ms deadline: {deadline:?}"
    );
    assert!(
        plugin
            .logs()
            .iter()
            .any(|line| line.contains("panicked on purpose")),
        "the node's log is kept for the test: {:?}",
        plugin.logs()
    );
    let wrong = plugin
        .call("no-such-function", outpost_testkit::json!([]))
        .expect_err("no such function");
    assert_eq!(wrong.kind, Kind::BadCall, "{wrong}");

    // An update migrates the old version's data.
    plugin
        .call("render-label", hostile_label("kv-set", &["kept", "yes"]))
        .expect("kv-set");
    let installed = plugin.install(new.path()).expect("update to 1.1.0");
    assert_eq!(installed.previous.as_deref(), Some("1.0.0"));
    assert_eq!(plugin.version(), "1.1.0");
    let read = |key: &str| {
        plugin
            .call("render-label", hostile_label("kv-get", &[key]))
            .expect("kv-get")
            .text()
    };
    assert_eq!(read("migrated-from").as_deref(), Some("1.0.0"));
    assert_eq!(read("kept").as_deref(), Some("yes"));
}

/// `child`'s standard output and error, line by line.
fn watch_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (send, lines) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let forward = |stream: Box<dyn std::io::Read + Send>, send: std::sync::mpsc::Sender<String>| {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
    };
    forward(Box::new(out), send.clone());
    forward(Box::new(err), send);
    lines
}

/// Waits (up to three minutes: a first build) for a line holding `wanted`.
fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    wanted: &str,
    child: &mut std::process::Child,
) {
    let deadline = Instant::now() + std::time::Duration::from_secs(180);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match lines.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(line) if line.contains(wanted) => return,
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    panic!(
        "no {wanted:?} from vendor watch; it said:\n{}",
        seen.join("\n")
    );
}

/// The SDK is obtainable from crates.io once published: every crate a
/// vendor depends on packages, and builds from its packaged files alone
/// (cargo's verification, with the SDK's own crates from a local overlay).
#[test]
fn the_sdk_crates_package_as_published() {
    let target = tempfile::tempdir().expect("temp dir");
    let output = run(
        Command::new(env!("CARGO"))
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", target.path())
            .env("CARGO_NET_OFFLINE", "true")
            .args(["package", "--allow-dirty", "--quiet"])
            .args([
                "-p",
                "outpost-sdk-core",
                "-p",
                "outpost-sdk-printer-driver",
                "-p",
                "outpost-sdk-payment-tokenizer",
                "-p",
                "outpost-sdk-courier-adapter",
                "-p",
                "outpost-sdk-forecaster",
                "-p",
                "outpost-sdk-forecaster-0-1",
                "-p",
                "outpost-sdk",
                "-p",
                "outpost-testkit",
            ]),
        "cargo package",
    );
    assert!(output.status.success(), "cargo package:\n{}", text(&output));
    let packaged = target.path().join("package");
    for name in ["outpost-sdk-0.1.0.crate", "outpost-testkit-0.1.0.crate"] {
        assert!(packaged.join(name).is_file(), "{name} made");
    }
}

/// Every file in `docs/examples/` is taken by `outpost call` (the dynamic
/// call path, which the API's own plugin calls share) for the function it
/// is an example of; a label and a receipt render exactly as the API's
/// typed path renders them, so the defaults both fill in agree.
#[test]
fn every_docs_example_works_with_outpost_call() {
    use outpost::dynamic;
    use outpost_e2e_tests::{TestNode, example_label, example_receipt, install_card_tokenizer};
    let node = TestNode::new();
    for artifact in [
        artifacts::THERMAL_PRINTER,
        artifacts::COURIER,
        artifacts::FORECASTER,
    ] {
        node.install_artifact(artifact);
    }
    install_card_tokenizer(&node.node);
    let examples = workspace().join("docs/examples");
    let call = |plugin: &str, function: &str, file: &str| {
        let text = std::fs::read_to_string(examples.join(file)).expect("example");
        let document: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let loaded = node.loaded(plugin);
        dynamic::spread_arguments(&node.node, &loaded, function, document)
            .and_then(|args| dynamic::call_for_api(&node.node, &loaded, function, &args))
    };
    let bytes = |value: serde_json::Value| match value.as_str() {
        Some(text) => match text.strip_prefix("hex:") {
            Some(digits) => hex::decode(digits).expect("hex"),
            None => text.as_bytes().to_vec(),
        },
        None => panic!("not bytes: {value}"),
    };
    let printer = node.loaded("outpost/thermal-printer");
    let typed_label = node
        .node
        .render(
            &printer,
            &outpost::printing::Document::Label(example_label()),
        )
        .expect("typed label");
    let label = call("outpost/thermal-printer", "render-label", "label.json").expect("label");
    assert_eq!(bytes(label), typed_label, "the same label either way");
    let typed_receipt = node
        .node
        .render(
            &printer,
            &outpost::printing::Document::Receipt(example_receipt()),
        )
        .expect("typed receipt");
    let receipt =
        call("outpost/thermal-printer", "render-receipt", "receipt.json").expect("receipt");
    assert_eq!(bytes(receipt), typed_receipt, "the same receipt either way");

    for (plugin, function, file) in [
        ("outpost/card-tokenizer", "tokenize", "card.json"),
        ("outpost/courier", "request-quotes", "quote.json"),
        ("outpost/courier", "request-quotes", "shipment.json"),
        ("outpost/courier", "book", "booking.json"),
        ("outpost/forecaster", "forecast", "forecast.json"),
    ] {
        if let Err(error) = call(plugin, function, file) {
            panic!("{file} for {function}: {error}");
        }
    }
}
