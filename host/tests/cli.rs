//! The `outpost` binary, run as an operator would run it.

mod common;

use common::{expect_failure, fails, free_port, http_get, outpost, start_node, succeeds, text};
use std::io::Read;
use std::process::Command;

#[test]
fn help_reads_like_a_manual() {
    let dir = tempfile::tempdir().expect("temp dir");
    let help = succeeds(dir.path(), &["--help"]);
    for command in [
        "run",
        "demo",
        "plugin",
        "call",
        "config",
        "tokenize",
        "book",
        "forecast",
        "outbox",
        "keys",
        "--data-dir",
        "OUTPOST_DATA_DIR",
    ] {
        assert!(help.contains(command), "--help lacks {command}:\n{help}");
    }
    let plugin_help = succeeds(dir.path(), &["plugin", "add", "--help"]);
    assert!(
        plugin_help.contains("package folder") && plugin_help.contains("--yes"),
        "{plugin_help}"
    );
}

#[test]
fn plugins_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let package = outpost_plugin_artifacts::THERMAL_PRINTER.package_dir;

    let refusal = fails(data, &["plugin", "add", package]);
    assert!(refusal.contains("--yes"), "{refusal}");
    let added = succeeds(data, &["plugin", "add", package, "--yes"]);
    assert!(
        added.contains("outpost/thermal-printer installed 0.1.0"),
        "{added}"
    );
    assert!(
        added.contains("granted:  kv (4096 bytes), config, assets"),
        "{added}"
    );

    let list = succeeds(data, &["plugin", "list"]);
    assert!(
        list.contains("outpost/thermal-printer") && list.contains("active (default)"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&succeeds(data, &["plugin", "list", "--json"])).expect("json");
    assert_eq!(json[0]["id"], "outpost/thermal-printer");

    let info = succeeds(data, &["plugin", "info", "outpost/thermal-printer"]);
    assert!(info.contains("health:   ok: rendered 0 labels"), "{info}");
    assert!(info.contains("render-label(label: record)"), "{info}");

    let health = succeeds(
        data,
        &["call", "outpost/thermal-printer", "lifecycle.health"],
    );
    let health: serde_json::Value = serde_json::from_str(&health).expect("json");
    assert_eq!(health["status"], "ok");
    let probe = succeeds(
        data,
        &[
            "call",
            "outpost/thermal-printer",
            "status-request",
            "\"label\"",
        ],
    );
    assert!(probe.contains("\"request\": \"~HS\""), "{probe}");
    let exports = succeeds(data, &["call", "outpost/thermal-printer"]);
    assert!(exports.contains("printer.parse-status"), "{exports}");

    let bad = fails(
        data,
        &["call", "outpost/thermal-printer", "status-request", "label"],
    );
    assert!(
        bad.contains("not JSON") && bad.contains("'\"receipt\"'"),
        "{bad}"
    );
    let bad = fails(
        data,
        &[
            "call",
            "outpost/thermal-printer",
            "status-request",
            "\"scale\"",
        ],
    );
    assert!(
        bad.contains("unknown case \"scale\"; cases are label, receipt"),
        "{bad}"
    );
    let bad = fails(
        data,
        &["call", "outpost/thermal-printer", "print-everything"],
    );
    assert!(
        bad.contains("exports no function") && bad.contains("printer.render-label"),
        "{bad}"
    );

    let removed = succeeds(data, &["plugin", "remove", "outpost/thermal-printer"]);
    assert!(removed.contains("stored data is kept"), "{removed}");
    let missing = fails(data, &["plugin", "info", "outpost/thermal-printer"]);
    assert!(
        missing.contains("not installed") && missing.contains("outpost plugin list"),
        "{missing}"
    );
    let bad_id = fails(data, &["plugin", "remove", "thermal"]);
    assert!(bad_id.contains("vendor/name"), "{bad_id}");
}

#[test]
fn plugins_of_every_world_can_be_called_by_hand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    succeeds(
        data,
        &[
            "plugin",
            "add",
            outpost_plugin_artifacts::TEST_FORECASTER.package_dir,
            "--yes",
        ],
    );
    let request = r#"{"history": {"item": "sourdough", "unit": "loaves", "interval": "day",
        "observations": [{"at": 0, "value": 30}, {"at": 86400, "value": 34}]},
        "horizon": 2, "coverage": 0.8}"#;
    let forecast = succeeds(data, &["call", "test/forecaster", "forecast", request]);
    let forecast: serde_json::Value = serde_json::from_str(&forecast).expect("json");
    assert_eq!(forecast["ok"]["points"][1]["at"], 259_200);
    assert_eq!(forecast["ok"]["points"][0]["expected"], 32.0);
    // The plugin's own error: printed as its answer, and the exit status
    // says the call failed (for scripts).
    let args = [
        "call",
        "test/forecaster",
        "forecast",
        &request.replace("0.8", "1.5"),
    ];
    let output = outpost(data, &args);
    let stderr = expect_failure(&args, &output);
    let (refused, _) = text(&output);
    assert!(
        refused.contains("\"invalid-input\": \"coverage: must be in (0, 1)\""),
        "{refused}"
    );
    assert!(
        stderr.contains("answered with its invalid-input error"),
        "{stderr}"
    );
}

#[test]
fn errors_name_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_package = fails(dir.path(), &["plugin", "add", "/no/such/package", "--yes"]);
    assert!(
        not_a_package.contains("/no/such/package does not exist"),
        "{not_a_package}"
    );

    let config = dir.path().join("outpost.toml");
    std::fs::write(&config, "[policy]\nmax-memory = 9\n").expect("write");
    let bad_config = fails(dir.path(), &["plugin", "list"]);
    assert!(
        bad_config.contains("outpost.toml") && bad_config.contains("max-memory"),
        "{bad_config}"
    );
    std::fs::remove_file(&config).expect("remove");

    let database = dir.path().join("outpost.redb");
    std::fs::write(
        &database,
        b"not a database at all, just some bytes".repeat(50),
    )
    .expect("write");
    let foreign = fails(dir.path(), &["plugin", "list"]);
    assert!(
        foreign.contains("not an Outpost node database") && foreign.contains("left untouched"),
        "{foreign}"
    );
}

#[test]
fn config_shows_what_the_node_runs_with() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shown = succeeds(dir.path(), &["config"]);
    assert!(
        shown.contains("# configuration: embedded defaults"),
        "{shown}"
    );
    assert!(shown.contains("listen = \"127.0.0.1:7171\""), "{shown}");
    let defaults = succeeds(dir.path(), &["config", "--defaults"]);
    assert!(
        defaults.starts_with("# Outpost node configuration"),
        "{defaults}"
    );
}

#[test]
fn run_serves_until_terminated_and_holds_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let address = free_port();
    let mut node = start_node(dir.path(), address, true);
    let health = http_get(address, "/v1/health").expect("answers");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(dir.path().join("api-token").is_file());

    // Operators' commands reach the running node over its admin socket.
    let listed = succeeds(dir.path(), &["plugin", "list"]);
    assert!(listed.contains("No plugins installed"), "{listed}");
    let socket = dir.path().join("admin.sock");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the admin socket is the node user's only"
        );
    }

    let unauthorised = http_get(address, "/v1/plugins").expect("answers");
    assert!(unauthorised.starts_with("HTTP/1.1 401"), "{unauthorised}");

    common::signal(&node, "-TERM");
    let status = node.wait().expect("the node exits");
    let mut log = String::new();
    if let Some(mut stderr) = node.stderr.take() {
        let _ = stderr.read_to_string(&mut log);
    }
    assert!(
        status.success(),
        "the node exits cleanly on SIGTERM: {status}\n{log}"
    );
    assert!(log.contains("node running: API on http://"), "{log}");
    assert!(log.contains("stopping"), "{log}");
    // The database is free again, and the socket gone.
    assert!(!socket.exists());
    succeeds(dir.path(), &["plugin", "list"]);
}

#[test]
fn the_demo_runs_start_to_finish() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo_dir = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["demo", "--data-dir"])
        .arg(&demo_dir)
        .output()
        .expect("outpost demo runs");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "1. A vendor publishes the reference printer driver to a registry",
        "published outpost/thermal-printer@0.1.0 as sha256:",
        "verified: root v1, timestamp v2",
        "a signed bundle for nodes offline",
        "health: ok: rendered 0 labels and 0 receipts",
        "The label printer received",
        "█ DPD NEXT DAY █",
        "TOTAL GBP                            19.35",
        "ready=true",
        "-> 422 Unprocessable Entity",
        "Done.",
    ] {
        assert!(
            stdout.contains(expected),
            "the demo's output lacks {expected:?}:\n{stdout}"
        );
    }
    // Run twice: the demo clears its own folder, and only its own.
    let again = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["demo", "--data-dir"])
        .arg(&demo_dir)
        .output()
        .expect("outpost demo runs");
    assert!(again.status.success());
    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("holiday.jpg"), b"jpeg").expect("write");
    let refused = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["demo", "--data-dir"])
        .arg(&foreign)
        .output()
        .expect("outpost demo runs");
    assert!(!refused.status.success());
    assert!(
        foreign.join("holiday.jpg").exists(),
        "a folder it did not make is left alone"
    );
}

/// A data directory with the reference driver installed by the binary, and
/// the bytes of its database.
fn node_with_driver(data: &std::path::Path) -> Vec<u8> {
    succeeds(
        data,
        &[
            "plugin",
            "add",
            outpost_plugin_artifacts::THERMAL_PRINTER.package_dir,
            "--yes",
        ],
    );
    std::fs::read(data.join("outpost.redb")).expect("read the database")
}

#[test]
fn a_damaged_database_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let good = node_with_driver(data);
    let database = data.join("outpost.redb");
    // Eight flipped bytes at the start of each of the first pages after the
    // header: the table trees and the allocator state, where redb used to
    // index past a page and panic.
    let mut reported = 0;
    for page in 1..20 {
        let mut damaged = good.clone();
        for byte in &mut damaged[page * 4096 + 8..page * 4096 + 16] {
            *byte ^= 0xff;
        }
        std::fs::write(&database, &damaged).expect("write");
        let mut noticed = false;
        for args in [
            &["plugin", "list"][..],
            &["outbox", "list"],
            &["run", "--listen", "127.0.0.1:0"],
        ] {
            // `run` would serve a database it could read; only ask it of one
            // the quicker commands found damaged.
            if args[0] == "run" && !noticed {
                continue;
            }
            let output = common::outpost(data, args);
            let (stdout, stderr) = text(&output);
            assert_ne!(
                output.status.code(),
                Some(101),
                "outpost {args:?} panicked on page {page}:\n{stdout}\n{stderr}"
            );
            if output.status.success() {
                continue;
            }
            assert!(
                stderr.contains(&database.display().to_string())
                    && stderr.contains("is damaged")
                    && stderr.contains("Restore it from a backup, or move it aside"),
                "page {page}, {args:?}: {stderr}"
            );
            assert!(
                std::fs::read(&database).expect("read") == damaged,
                "outpost {args:?} changed the damaged database (page {page})"
            );
            if args[0] == "plugin" {
                noticed = true;
                reported += 1;
            }
        }
    }
    assert!(
        reported >= 5,
        "only {reported} of 19 damaged pages were noticed"
    );
}

#[test]
fn commands_started_together_take_turns_with_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    node_with_driver(data);
    for round in 0..8 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                common::command(data, &["plugin", "list"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("outpost runs")
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().expect("outpost finishes");
            let (stdout, stderr) = text(&output);
            assert!(
                output.status.success(),
                "round {round}: two `plugin list` at once:\n{stdout}\n{stderr}"
            );
        }
    }

    // A process that keeps it (a command waiting for its input, not a node
    // with an admin socket) is named, after the wait.
    let mut holder = common::command(data, &["tokenize"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("outpost runs");
    let database = data.join("outpost.redb");
    let opened = std::time::Instant::now();
    while outpost::store::NodeStore::open(&database).is_ok() {
        assert!(opened.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = std::time::Instant::now();
    let busy = fails(data, &["plugin", "list"]);
    let waited = started.elapsed();
    drop(holder.stdin.take());
    let _ = holder.wait();
    assert!(
        busy.contains(&format!("pid {}", holder.id())) && busy.contains(" tokenize"),
        "{busy}"
    );
    assert_eq!(
        busy.matches("in use by another Outpost process").count(),
        1,
        "{busy}"
    );
    assert!(
        waited >= std::time::Duration::from_secs(2),
        "gave up after {waited:?}"
    );
}

#[test]
fn an_error_and_its_cause_are_said_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such.toml");
    let error = fails(
        dir.path(),
        &["--config", &missing.display().to_string(), "plugin", "list"],
    );
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert_eq!(
        error.matches("No such file or directory").count(),
        1,
        "{error}"
    );
}

#[test]
fn a_configuration_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("outpost.toml")).expect("mkdir");
    let refused = fails(dir.path(), &["plugin", "list"]);
    assert!(
        refused.contains(&dir.path().join("outpost.toml").display().to_string())
            && refused.contains("is a directory")
            && refused.contains("remove it"),
        "{refused}"
    );
}

/// Runs `outpost run` on a free port; a node that starts is stopped and
/// reported, since these tests expect a refusal.
fn run_refused(data: &std::path::Path) -> String {
    let address = free_port().to_string();
    let mut child = common::command(data, &["run", "--listen", &address])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("outpost run starts");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("outpost run started instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    stderr
}

#[cfg(unix)]
#[test]
fn an_api_token_others_can_read_or_guess_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("api-token");
    std::fs::write(&token, format!("{}\n", "a1".repeat(32))).expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let exposed = run_refused(dir.path());
    assert!(
        exposed.contains(&token.display().to_string())
            && exposed.contains("can be read by other users (mode 644)")
            && exposed.contains(&format!("chmod 600 {}", token.display())),
        "{exposed}"
    );

    std::fs::write(&token, "hunter2\n").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let short = run_refused(dir.path());
    assert!(
        short.contains(&token.display().to_string())
            && short.contains("is 7 characters, too short")
            && short.contains("delete the file to have a new one made"),
        "{short}"
    );
}

/// A copy of the test plugin at `version`, its component given a custom
/// section so each version has its own digest.
fn hostile_at(root: &std::path::Path, version: &str) -> std::path::PathBuf {
    let source = std::path::Path::new(outpost_plugin_artifacts::TEST_HOSTILE.package_dir);
    let folder = root.join(format!("hostile-{version}"));
    std::fs::create_dir_all(folder.join("assets")).expect("mkdir");
    let manifest = std::fs::read_to_string(source.join("plugin.toml")).expect("manifest");
    std::fs::write(
        folder.join("plugin.toml"),
        manifest.replace("version = \"0.1.0\"", &format!("version = \"{version}\"")),
    )
    .expect("write");
    for entry in std::fs::read_dir(source.join("assets")).expect("assets") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), folder.join("assets").join(entry.file_name())).expect("copy");
    }
    std::fs::write(folder.join("assets/version.txt"), version).expect("write");
    let mut wasm = std::fs::read(outpost_plugin_artifacts::TEST_HOSTILE.component).expect("wasm");
    let name = b"outpost-test";
    let payload = version.as_bytes();
    wasm.extend([0, (1 + name.len() + payload.len()) as u8, name.len() as u8]);
    wasm.extend(name);
    wasm.extend(payload);
    let component = std::path::Path::new(outpost_plugin_artifacts::TEST_HOSTILE.component)
        .file_name()
        .map(|name| folder.join(name))
        .expect("component name");
    std::fs::write(component, wasm).expect("write");
    folder
}

#[test]
fn upgrades_drop_components_no_version_refers_to() {
    use outpost::manifest::PluginId;
    use outpost::store::NodeStore;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let id = PluginId::parse("test/hostile").expect("id");
    let database = data.join("outpost.redb");
    let mut digests = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.3.0"] {
        let package = hostile_at(dir.path(), version);
        succeeds(
            &data,
            &["plugin", "add", &package.display().to_string(), "--yes"],
        );
        let store = NodeStore::open(&database).expect("opens");
        let record = store.plugin(&id).expect("read").expect("installed");
        digests.push(record.active.component_digest);
    }
    {
        // 0.2.0 was replaced while on probation: the version to go back to
        // stays 0.1.0, the last one confirmed.
        let store = NodeStore::open(&database).expect("opens");
        assert!(
            store.component(&digests[1]).expect("read").is_none(),
            "0.2.0 is neither active nor the fallback, yet its component is kept"
        );
        assert!(store.component(&digests[0]).expect("read").is_some());
        assert!(store.component(&digests[2]).expect("read").is_some());
    }
    succeeds(&data, &["plugin", "remove", "test/hostile"]);
    let store = NodeStore::open(&database).expect("opens");
    for digest in &digests {
        assert!(store.component(digest).expect("read").is_none());
    }
}

#[test]
fn folders_left_by_interrupted_installs_are_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let downloads = dir.path().join("downloads");
    let stale = downloads.join("4f1c0ffee.package");
    std::fs::create_dir_all(stale.join("assets")).expect("mkdir");
    std::fs::write(stale.join("plugin.toml"), "half").expect("write");
    // A blob beside it is a download to resume, not litter.
    let blob = downloads.join("9a8b7c");
    std::fs::write(&blob, b"partial").expect("write");
    succeeds(dir.path(), &["plugin", "list"]);
    assert!(!stale.exists(), "the stale package folder is still there");
    assert!(blob.exists(), "a partial download was removed");
}

/// Posts `body` to a running node with its token, as docs/api.md shows with
/// curl; returns the status line and the body.
fn post(address: std::net::SocketAddr, token: &str, path: &str, body: &str) -> (String, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, body.to_string())
}

#[test]
fn every_example_in_the_docs_is_a_request_its_route_takes() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A plugin of every kind, so each body is checked against its WIT
    // function's types, not only for its top-level field.
    succeeds(
        dir.path(),
        &["keys", "add", "outpost/card-tokenizer", "card-token"],
    );
    for artifact in [
        outpost_plugin_artifacts::THERMAL_PRINTER,
        outpost_plugin_artifacts::CARD_TOKENIZER,
        outpost_plugin_artifacts::COURIER,
        outpost_plugin_artifacts::FORECASTER,
    ] {
        succeeds(
            dir.path(),
            &["plugin", "add", artifact.package_dir, "--yes"],
        );
    }
    let address = free_port();
    let mut node = start_node(dir.path(), address, true);
    let token = std::fs::read_to_string(dir.path().join("api-token")).expect("token");
    // Where docs/api.md sends each example.
    let routes = [
        ("label.json", "/v1/print/label"),
        ("receipt.json", "/v1/print/receipt"),
        ("card.json", "/v1/payments/tokenize"),
        ("quote.json", "/v1/shipping/quotes"),
        ("booking.json", "/v1/shipping/bookings"),
        ("forecast.json", "/v1/forecasts"),
    ];
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).expect("docs/examples") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "shipment.json" {
            continue;
        }
        let Some((_, route)) = routes.iter().find(|(file, _)| *file == name) else {
            panic!("docs/examples/{name} is not in this test; add the route docs/api.md gives it");
        };
        let body = std::fs::read_to_string(&path).expect("read");
        // No printer or courier is reachable, so not every route can answer
        // 200; what matters is that the body got past the checks of its shape.
        let (status, answer) = post(address, token.trim(), route, &body);
        assert!(
            !answer.contains("\"invalid-field\"") && !answer.contains("\"invalid-json\""),
            "{name} to {route}: {status}\n{answer}"
        );
        checked += 1;
    }
    // The commands take the shorter file and fill in the rest.
    let shipment = format!("{examples}/shipment.json");
    for args in [
        &["quote", &shipment][..],
        &[
            "book",
            &shipment,
            "--quote",
            "STD.1",
            "--reference",
            "ORDER-1042",
        ],
    ] {
        let output = common::outpost(dir.path(), args);
        let (_, stderr) = text(&output);
        assert!(
            !stderr.contains("400 Bad Request"),
            "outpost {args:?}: {stderr}"
        );
        checked += 1;
    }
    common::signal(&node, "-TERM");
    let _ = node.wait();
    assert_eq!(checked, routes.len() + 2);
}

#[test]
fn a_running_node_is_changed_and_steered_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).expect("mkdir");
    let address = free_port();
    std::fs::write(
        data.join("outpost.toml"),
        format!("[api]\nlisten = \"{address}\"\n[updates]\nprobation-seconds = 3600\n"),
    )
    .expect("config");
    let mut node = start_node(&data, address, false);
    let old = hostile_at(dir.path(), "0.1.0");
    let new = hostile_at(dir.path(), "0.2.0");

    let added = succeeds(
        &data,
        &["plugin", "add", &old.display().to_string(), "--yes"],
    );
    assert!(added.contains("test/hostile installed 0.1.0"), "{added}");
    let upgraded = succeeds(
        &data,
        &["plugin", "add", &new.display().to_string(), "--yes"],
    );
    assert!(
        upgraded.contains("upgraded from 0.1.0 to 0.2.0; on probation"),
        "{upgraded}"
    );
    let info = succeeds(&data, &["plugin", "info", "test/hostile"]);
    assert!(
        info.contains("active    0.2.0") && info.contains("previous  0.1.0"),
        "{info}"
    );
    let status = succeeds(&data, &["update", "status"]);
    assert!(
        status.contains("test/hostile  0.1.0 -> 0.2.0  probation"),
        "{status}"
    );
    let back = succeeds(&data, &["update", "rollback", "test/hostile"]);
    assert!(
        back.contains("rolled-back") && back.contains("test/hostile serves 0.1.0"),
        "{back}"
    );
    let history = succeeds(&data, &["update", "history", "test/hostile"]);
    assert!(
        history.contains("test/hostile  0.1.0 -> 0.2.0  rolled-back: rolled back by the operator"),
        "{history}"
    );
    let nothing = fails(&data, &["update", "rollback", "test/hostile"]);
    assert!(nothing.contains("no update on probation"), "{nothing}");
    let key = succeeds(&data, &["keys", "add", "test/hostile", "spare"]);
    assert!(key.contains("added key \"spare\""), "{key}");
    let removed = succeeds(&data, &["plugin", "remove", "test/hostile", "--purge"]);
    assert!(
        removed.contains("removed, with everything it stored"),
        "{removed}"
    );

    common::signal(&node, "-TERM");
    assert!(node.wait().expect("exits").success());
}

/// A shop's own sales file (the last 120 days of the bike-sharing casual
/// rentals, real daily demand) through `forecast --csv` with a calendar, and
/// `forecast backtest` telling how far to trust it.
#[test]
fn forecasts_from_a_sales_file_with_a_calendar_and_a_backtest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    succeeds(
        data,
        &[
            "plugin",
            "add",
            outpost_plugin_artifacts::FORECASTER.package_dir,
            "--yes",
        ],
    );
    let sold = include_str!("../../tests/reference/data/bike_sharing_daily.csv");
    let lines: Vec<&str> = sold.lines().skip(1).collect();
    let mut csv = String::from("date,quantity\n");
    for line in &lines[lines.len() - 120..] {
        let fields: Vec<&str> = line.split(',').collect();
        csv.push_str(&format!("{},{}\n", fields[0], fields[1]));
    }
    // A return on the last day, as a till export writes it.
    csv.push_str("2012-12-31,-5\n");
    let sales = data.join("casual.csv");
    std::fs::write(&sales, &csv).expect("write csv");
    let calendar = data.join("shop.toml");
    std::fs::write(
        &calendar,
        "open = [\"mon\", \"thu\", \"fri\", \"sat\", \"sun\"]\n[[event]]\nname = \"market day\"\ndates = [\"2012-12-01\", \"2012-12-15\", \"2013-01-05\"]\n",
    )
    .expect("write calendar");
    let sales = sales.to_str().expect("utf-8 path");
    let calendar = calendar.to_str().expect("utf-8 path");

    let args = [
        "forecast",
        "--csv",
        sales,
        "--calendar",
        calendar,
        "--horizon",
        "7",
    ];
    let output = outpost(data, &args);
    let (shown, notes) = text(&output);
    assert!(output.status.success(), "{shown}{notes}");
    assert!(notes.contains("1 return line(s) netted"), "{notes}");
    assert!(
        shown.contains("over open days (closed Tuesday, Wednesday)"),
        "{shown}"
    );
    assert!(shown.contains("2013-01-01     closed"), "{shown}");
    assert!(shown.contains("market day"), "{shown}");
    assert!(shown.contains("tried on the history (MASE"), "{shown}");

    let report = succeeds(
        data,
        &[
            "forecast",
            "backtest",
            "--csv",
            sales,
            "--calendar",
            calendar,
        ],
    );
    assert!(
        report.contains("forecasts from 8 past mornings, 14 days ahead"),
        "{report}"
    );
    assert!(report.contains("mean MASE"), "{report}");
    let json = succeeds(data, &["forecast", "backtest", "--csv", sales, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    let mase = json["mase"].as_f64().expect("mase");
    let naive = json["naive_mase"].as_f64().expect("naive");
    assert!(mase < naive, "{json}");
    let coverage = json["coverage"].as_f64().expect("coverage");
    assert!((0.6..=1.0).contains(&coverage), "{json}");

    // A sales file whose first line is data in another date format.
    let european = data.join("european.csv");
    std::fs::write(&european, "23/11/2026,5\n24/11/2026,6\n").expect("write");
    let refused = fails(
        data,
        &["forecast", "--csv", european.to_str().expect("utf-8")],
    );
    assert!(
        refused.contains("european.csv line 1: \"23/11/2026\" is not a date"),
        "{refused}"
    );
}
