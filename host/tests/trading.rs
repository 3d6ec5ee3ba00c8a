//! Trading from the command line with the real binary, with and without a
//! running node, and a node killed with SIGKILL while it delivers bookings.
//! The courier is a `VirtualCourier` this test runs on 127.0.0.1.

mod common;

use common::{
    expect_failure, expect_success, fails, free_port, outpost_with_input, start_node, succeeds,
};
use outpost::virtual_courier::{Behaviour, VirtualCourier};
use outpost_plugin_artifacts as artifacts;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAN: &str = "4111111111111111";
/// A quote id the reference courier accepts and that never expires.
const QUOTE: &str = "STD.9223372036854775807";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A node's data directory with the tokenizer (and its key), the forecaster
/// and the courier adapter pointed at `courier`, listening on `listen` when
/// it runs.
struct Stall {
    _dir: tempfile::TempDir,
    data: PathBuf,
    listen: SocketAddr,
    courier: VirtualCourier,
    runtime: tokio::runtime::Runtime,
}

impl Stall {
    fn new() -> Stall {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let courier = runtime
            .block_on(VirtualCourier::start(([127, 0, 0, 1], 0).into()))
            .expect("courier starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("node");
        std::fs::create_dir(&data).expect("mkdir");
        let listen = free_port();
        std::fs::write(
            data.join("outpost.toml"),
            format!(
                "[api]\nlisten = \"{listen}\"\n\
                 [outbox]\ninitial-backoff-ms = 50\nmax-backoff-ms = 300\nmax-attempts = 1000\n\
                 attempt-timeout-ms = 5000\n\
                 [plugin-config.\"outpost/courier\"]\napi-url = \"{}\"\n",
                courier.url()
            ),
        )
        .expect("config");
        // The courier package, allowed to reach this courier.
        let package = dir.path().join("courier");
        std::fs::create_dir(&package).expect("mkdir");
        for entry in std::fs::read_dir(artifacts::COURIER.package_dir).expect("package") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                std::fs::copy(entry.path(), package.join(entry.file_name())).expect("copy");
            }
        }
        let manifest = package.join("plugin.toml");
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        std::fs::write(
            &manifest,
            text.replace("http://127.0.0.1:7280", &courier.url()),
        )
        .expect("manifest");

        succeeds(
            &data,
            &["keys", "add", "outpost/card-tokenizer", "card-token"],
        );
        for package in [
            artifacts::CARD_TOKENIZER.package_dir,
            artifacts::FORECASTER.package_dir,
            package.to_str().expect("utf-8 path"),
        ] {
            succeeds(&data, &["plugin", "add", package, "--yes"]);
        }
        Stall {
            _dir: dir,
            data,
            listen,
            courier,
            runtime,
        }
    }

    fn courier(&self, behaviour: Behaviour) {
        self.runtime
            .block_on(self.courier.set(behaviour))
            .expect("courier behaves");
    }

    fn book(&self, reference: &str) -> String {
        let shipment = repo_file("docs/examples/shipment.json");
        let shipment = shipment.to_str().expect("utf-8 path");
        succeeds(
            &self.data,
            &["book", shipment, "--quote", QUOTE, "--reference", reference],
        )
    }

    fn outbox(&self) -> Value {
        let listing = succeeds(&self.data, &["outbox", "list", "--json"]);
        serde_json::from_str(&listing).expect("json")
    }
}

#[test]
fn an_operator_trades_from_the_command_line() {
    let stall = Stall::new();
    let data = &stall.data;

    // A card from standard input, so the number is in no argument list.
    let card = std::fs::read(repo_file("docs/examples/card.json")).expect("example");
    let args = ["tokenize"];
    let tokenized = expect_success(&args, &outpost_with_input(data, &args, &card));
    assert!(
        tokenized.contains("visa card ending 1111, expires 12/2030"),
        "{tokenized}"
    );
    assert!(!tokenized.contains(PAN), "{tokenized}");
    let bad_card = String::from_utf8(card.clone())
        .expect("utf-8")
        .replace(PAN, "4111111111111112");
    let refused = expect_failure(&args, &outpost_with_input(data, &args, bad_card.as_bytes()));
    assert!(
        refused.contains("422") && refused.contains("Luhn"),
        "{refused}"
    );
    let not_json = expect_failure(&args, &outpost_with_input(data, &args, b"{\"card\": "));
    assert!(
        not_json.contains("standard input is not JSON"),
        "{not_json}"
    );

    let shipment = repo_file("docs/examples/shipment.json");
    let shipment = shipment.to_str().expect("utf-8 path");
    let quotes = succeeds(data, &["quote", shipment]);
    assert!(
        quotes.contains("STD.") && quotes.contains("EUR"),
        "{quotes}"
    );

    let booked = stall.book("CLI-1");
    assert!(
        booked.contains("bk-CLI-1 with outpost-sandbox: confirmed"),
        "{booked}"
    );
    assert!(booked.contains("tracking: OP"), "{booked}");
    let shown = succeeds(data, &["booking", "bk-CLI-1", "--json"]);
    let shown: Value = serde_json::from_str(&shown).expect("json");
    let number = shown["booking"]["tracking_numbers"][0]
        .as_str()
        .expect("tracking number")
        .to_string();
    let tracked = succeeds(data, &["track", &number]);
    assert!(tracked.contains(&number), "{tracked}");
    let missing = fails(data, &["book", shipment, "--quote", QUOTE]);
    assert!(
        missing.contains("400") && missing.contains("request.reference: missing"),
        "{missing}"
    );

    // The courier is gone: the booking waits in the outbox.
    stall.courier(Behaviour::Down);
    let queued = stall.book("CLI-2");
    assert!(
        queued.contains("bk-CLI-2 with outpost-sandbox: queued"),
        "{queued}"
    );
    assert!(queued.contains("start `outpost run`"), "{queued}");
    let listing = succeeds(data, &["outbox", "list"]);
    assert!(listing.contains("pending 1, delivered 0"), "{listing}");
    let outbox = stall.outbox();
    let pending = outbox["entries"][0]["id"].as_u64().expect("id");
    let detail = succeeds(data, &["outbox", "show", &pending.to_string()]);
    assert!(
        detail.contains("key:          outpost-booking-CLI-2"),
        "{detail}"
    );

    let sales = tempfile::NamedTempFile::new().expect("temp file");
    let mut csv = String::from("date,sold\n");
    for day in 1..=28 {
        csv.push_str(&format!("2026-10-{day:02},{}\n", 30 + (day % 7) * 4));
    }
    std::fs::write(sales.path(), csv).expect("write");
    let sales_path = sales.path().to_str().expect("utf-8 path");
    let forecast = succeeds(
        data,
        &[
            "forecast",
            "--csv",
            sales_path,
            "--item",
            "loaves",
            "--horizon",
            "2",
        ],
    );
    assert!(
        forecast.contains("loaves (units), holt-winters") && forecast.contains("2026-10-29"),
        "{forecast}"
    );

    let keys = succeeds(data, &["keys", "list"]);
    assert!(
        keys.contains("outpost/card-tokenizer") && keys.contains("card-token"),
        "{keys}"
    );
    let replace = fails(
        data,
        &["keys", "add", "outpost/card-tokenizer", "card-token"],
    );
    assert!(replace.contains("--replace"), "{replace}");

    // Now a node runs: the same commands reach it over its API, and it
    // delivers the queued booking once the courier is back.
    stall.courier(Behaviour::Up);
    let mut node = start_node(data, stall.listen, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = succeeds(data, &["booking", "bk-CLI-2"]);
        if shown.contains("confirmed") {
            break;
        }
        assert!(Instant::now() < deadline, "never delivered: {shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let listing = succeeds(data, &["outbox", "list"]);
    assert!(listing.contains("pending 0, delivered 1"), "{listing}");
    let retry = fails(data, &["outbox", "retry", &pending.to_string()]);
    assert!(
        retry.contains("409") && retry.contains("is delivered"),
        "{retry}"
    );
    let args = ["tokenize", "-"];
    let again = expect_success(&args, &outpost_with_input(data, &args, &card));
    assert_eq!(
        again.lines().last(),
        tokenized.lines().last(),
        "same token through the running node"
    );
    // Keys go to the running node over its admin socket, with the same
    // checks as ever.
    let keys = succeeds(data, &["keys", "list"]);
    assert!(keys.contains("card-token"), "{keys}");
    let kept = fails(
        data,
        &["keys", "add", "outpost/card-tokenizer", "card-token"],
    );
    assert!(kept.contains("already has a key"), "{kept}");

    common::signal(&node, "-TERM");
    assert!(node.wait().expect("exits").success());
    let shipments = stall.courier.shipments();
    assert_eq!(shipments.len(), 2);
}

#[test]
fn a_node_killed_mid_delivery_delivers_each_booking_once() {
    const BOOKINGS: usize = 5;
    let stall = Stall::new();
    let data = &stall.data;
    stall.courier(Behaviour::Down);
    let mut node = start_node(data, stall.listen, false);
    for n in 0..BOOKINGS {
        let booked = stall.book(&format!("KILL-{n}"));
        assert!(booked.contains("queued"), "{booked}");
    }

    // The courier books at once but its answers are slow to come back: kill
    // the node after the courier has booked and before the node has heard.
    stall.courier(Behaviour::AnswersLate(Duration::from_secs(3)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while stall.courier.shipments().is_empty() {
        assert!(Instant::now() < deadline, "the node never delivered");
        std::thread::sleep(Duration::from_millis(10));
    }
    common::signal(&node, "-KILL");
    let _ = node.wait();
    let booked_before_kill = stall.courier.shipments().len();

    // Killed again at another moment: soon after a restart.
    node = start_node(data, stall.listen, false);
    std::thread::sleep(Duration::from_millis(150));
    common::signal(&node, "-KILL");
    let _ = node.wait();

    // The courier answers promptly again; the restarted node finishes.
    stall.courier(Behaviour::Up);
    node = start_node(data, stall.listen, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let outbox = stall.outbox();
        if outbox["counts"]["delivered"] == BOOKINGS && outbox["counts"]["pending"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered: {outbox}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in 0..BOOKINGS {
        let shown = succeeds(data, &["booking", &format!("bk-KILL-{n}")]);
        assert!(shown.contains("confirmed"), "{shown}");
    }
    common::signal(&node, "-TERM");
    let _ = node.wait();

    // Exactly once from the courier's side: one shipment per key, and every
    // attempt for a key carried the same body.
    let shipments = stall.courier.shipments();
    assert_eq!(shipments.len(), BOOKINGS, "{shipments:#?}");
    let mut keys: Vec<&str> = shipments
        .iter()
        .map(|s| s.idempotency_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), BOOKINGS);
    for shipment in &shipments {
        assert!(
            shipment
                .bodies_seen
                .iter()
                .all(|b| *b == shipment.bodies_seen[0]),
            "{} arrived with different bodies: {:#?}",
            shipment.idempotency_key,
            shipment.bodies_seen
        );
    }
    // The kill did land between the courier booking and the node hearing:
    // what was booked then was sent again after the restart.
    assert!(booked_before_kill >= 1);
    assert!(
        shipments.iter().any(|s| s.bodies_seen.len() >= 2),
        "no booking was resent after the kill: {shipments:#?}"
    );
}
