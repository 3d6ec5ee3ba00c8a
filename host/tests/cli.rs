//! The `outpost` binary, run as an operator would run it.

mod common;

use common::{fails, free_port, http_get, start_node, succeeds, text};
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
        added.contains("asks for: kv (4096 bytes), config, assets"),
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
    let refused = succeeds(
        data,
        &[
            "call",
            "test/forecaster",
            "forecast",
            &request.replace("0.8", "1.5"),
        ],
    );
    assert!(
        refused.contains("\"invalid-input\": \"coverage: must be in (0, 1)\""),
        "{refused}"
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

    let busy = fails(dir.path(), &["plugin", "list"]);
    assert!(busy.contains("in use by another Outpost process"), "{busy}");

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
    // The database is free again.
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
