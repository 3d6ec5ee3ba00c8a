//! Ready for a real stall: a browser point of sale on another origin, the
//! token's rotation, the service's setup.

use fantoccini::{Client, Locator};
use hyper::{Method, StatusCode};
use outpost_e2e_tests::browser::{self, Browser};
use outpost_e2e_tests::external::SYSTEMD_ANALYZE;
use outpost_e2e_tests::pos_page::PosPage;
use outpost_e2e_tests::serving::Serving;
use outpost_e2e_tests::{TestNode, artifacts, outpost_binary, raw_request as request};
use std::time::{Duration, Instant};

fn labels_printed(data_dir: &std::path::Path) -> usize {
    std::fs::read(data_dir.join("printed/labels.zpl"))
        .map(|zpl| zpl.windows(3).filter(|w| *w == b"^XA").count())
        .unwrap_or(0)
}

/// Clicks the page's print button and waits for its status to say how it
/// went (anything but "printing").
async fn click_print(page: &Client) -> String {
    page.find(Locator::Css("#print"))
        .await
        .expect("the print button")
        .click()
        .await
        .expect("click");
    let started = Instant::now();
    loop {
        let status = page
            .find(Locator::Css("#status"))
            .await
            .expect("status")
            .text()
            .await
            .unwrap_or_default();
        if status != "printing" && status != "idle" {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the page still says {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pos_page_on_an_allowed_origin_prints_and_others_are_refused() {
    let till = PosPage::start().await;
    let elsewhere = PosPage::start().await;
    let node = TestNode::with_toml(&format!("[api]\nallowed-origins = [\"{}\"]\n", till.origin));
    node.install_artifact(artifacts::THERMAL_PRINTER);
    let shared = node.shared();
    let served = Serving::start(shared.node.clone(), false).await;
    let base = served.client.base.clone();
    let token = served.client.token.clone();
    let bearer = format!("Bearer {token}");

    // The preflights a browser sends, Private Network Access included.
    let asks = [
        ("origin", till.origin.as_str()),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type",
        ),
        ("access-control-request-private-network", "true"),
    ];
    let (status, headers, _) = request(&base, Method::OPTIONS, "/v1/print/label", &asks, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["access-control-allow-origin"], till.origin.as_str());
    assert_eq!(headers["access-control-allow-private-network"], "true");
    let mut from_elsewhere = asks;
    from_elsewhere[0].1 = elsewhere.origin.as_str();
    let (status, headers, body) = request(
        &base,
        Method::OPTIONS,
        "/v1/print/label",
        &from_elsewhere,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!headers.contains_key("access-control-allow-origin"));
    assert!(body.contains("api.allowed-origins"), "{body}");
    // Even a request the browser would send without asking first (and
    // with the token) prints nothing for a page that is not on the list.
    let (status, _, _) = request(
        &base,
        Method::POST,
        "/v1/print/label",
        &[
            ("origin", elsewhere.origin.as_str()),
            ("authorization", &bearer),
        ],
        include_str!("../../docs/examples/label.json"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(labels_printed(shared.dir.path()), 0);

    if browser::available() {
        let browser = Browser::start().await;
        let page = &browser.client;
        page.goto(&till.url(&base, &token))
            .await
            .expect("the till's page");
        let printed = click_print(page).await;
        assert!(printed.starts_with("printed "), "{printed}");
        assert_eq!(labels_printed(shared.dir.path()), 1);
        browser.screenshot("pos-page-printed").await;

        page.goto(&elsewhere.url(&base, &token))
            .await
            .expect("the other page");
        let refused = click_print(page).await;
        assert_eq!(refused, "blocked: TypeError", "the browser must block it");
        assert_eq!(labels_printed(shared.dir.path()), 1);

        // Rotated, the till's old token is refused at once, and the page is
        // told why (errors carry CORS headers too); the new one prints.
        let rotated = outpost::api::rotate_token(&shared.node).expect("rotated");
        page.goto(&till.url(&base, &token)).await.expect("the till");
        page.refresh().await.expect("reload");
        let refused = click_print(page).await;
        assert!(refused.starts_with("refused 401"), "{refused}");
        page.goto(&till.url(&base, &rotated))
            .await
            .expect("the till");
        page.refresh().await.expect("reload");
        let printed = click_print(page).await;
        assert!(printed.starts_with("printed "), "{printed}");
        assert_eq!(labels_printed(shared.dir.path()), 2);
        browser.close().await;
    } else {
        let rotated = outpost::api::rotate_token(&shared.node).expect("rotated");
        assert_ne!(rotated, token);
    }
    // Whatever the path, the old token is refused and the file holds the new.
    let (status, _, _) = request(
        &base,
        Method::GET,
        "/v1/plugins",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let on_disk = std::fs::read_to_string(shared.dir.path().join("api-token")).expect("token");
    let new_bearer = format!("Bearer {}", on_disk.trim());
    let (status, _, _) = request(
        &base,
        Method::GET,
        "/v1/plugins",
        &[("authorization", &new_bearer)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    served.stop().await;
}

/// Runs the real `outpost` binary; its stdout, or a panic with its stderr.
fn outpost(args: &[&str]) -> String {
    let output = std::process::Command::new(outpost_binary())
        .args(args)
        .output()
        .expect("outpost runs");
    assert!(
        output.status.success(),
        "outpost {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_shipped_unit_verifies_and_keeps_the_node_to_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("node");
    let unit = outpost(&[
        "setup",
        "--print-unit",
        "--user",
        "root",
        "--data-dir",
        &data_dir.display().to_string(),
    ]);
    assert!(unit.contains(&format!("ExecStart={} run", outpost_binary().display())));
    assert!(unit.contains(&format!(
        "Environment=OUTPOST_DATA_DIR={}",
        data_dir.display()
    )));
    for hardened in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "Restart=always",
        "Type=notify",
    ] {
        assert!(unit.contains(hardened), "{hardened} missing:\n{unit}");
    }
    let path = dir.path().join("outpost.service");
    std::fs::write(&path, &unit).expect("write unit");
    if !SYSTEMD_ANALYZE.available(std::process::Command::new("systemd-analyze").arg("--version")) {
        return;
    }
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd's own exposure score: 0 is locked down, 10 is exposed; 3.0
    // and under is what it calls "OK".
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=30"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "the unit is more exposed than 3.0:\n{report}"
    );
    let score = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_default();
    eprintln!("{score}");
}

/// A node run as systemd runs it: SIGHUP is logged and survived, SIGTERM
/// stops it cleanly, systemd hears READY=1 and STOPPING=1, and each line
/// carries its journal priority.
#[test]
fn the_node_survives_sighup_and_says_why_it_stops() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("node");
    std::fs::create_dir(&data_dir).expect("data dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    std::fs::write(
        data_dir.join("outpost.toml"),
        format!("[api]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .expect("config");
    let notify_path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&notify_path).expect("notify socket");
    systemd
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let log = dir.path().join("journal.log");
    let journal = std::fs::File::create(&log).expect("log file");
    // As systemd does: JOURNAL_STREAM names the stream stderr is.
    let stream = {
        use std::os::unix::fs::MetadataExt;
        let metadata = journal.metadata().expect("metadata");
        format!("{}:{}", metadata.dev(), metadata.ino())
    };
    let mut node = std::process::Command::new(outpost_binary())
        .args(["run", "--data-dir"])
        .arg(&data_dir)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("JOURNAL_STREAM", stream)
        .stderr(journal)
        .spawn()
        .expect("the node starts");
    let mut heard = [0u8; 64];
    let length = systemd.recv(&mut heard).expect("READY=1 within a minute");
    assert_eq!(&heard[..length], b"READY=1");
    let answers = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    assert!(answers(), "ready but not listening");

    let pid = node.id().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(node.try_wait().expect("wait").is_none(), "SIGHUP killed it");
    assert!(answers(), "it stopped answering after SIGHUP");
    signal("TERM");
    let length = systemd.recv(&mut heard).expect("STOPPING=1");
    assert_eq!(&heard[..length], b"STOPPING=1");
    let status = node.wait().expect("it stops");
    assert!(status.success(), "{status}");
    let journal = std::fs::read_to_string(&log).expect("log");
    assert!(
        journal.contains("<4>") && journal.contains("SIGHUP received"),
        "{journal}"
    );
    assert!(
        journal.contains("<6>") && journal.contains("SIGTERM received"),
        "{journal}"
    );
    assert!(journal.contains("node stopped"), "{journal}");
}

/// `sudo outpost setup --user ...` on a box: the user is made, and every
/// file the node needs is the user's, none root's. Needs root (CI is).
#[test]
fn setup_makes_the_node_the_service_users() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: setting up a service user needs root");
        return;
    }
    let user = format!("outpost-t{}", std::process::id());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::process::Command::new("userdel").arg(&self.0).status();
        }
    }
    let _remove = Remove(user.clone());
    let dir = tempfile::tempdir().expect("dir");
    // The service user must be able to pass through the parents.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data_dir = dir.path().join("node");
    let said = outpost(&[
        "setup",
        "--user",
        &user,
        "--data-dir",
        &data_dir.display().to_string(),
        "--share-token-with-group",
        "--allow-origin",
        "https://pos.example.com",
    ]);
    assert!(said.contains("ready"), "{said}");
    assert!(said.contains("sudo outpost -d"), "{said}");
    let uid = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").uid();
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").mode() & 0o777;
    let owner = uid(&data_dir);
    assert_ne!(owner, 0, "the data directory is root's");
    for file in [
        "outpost.redb",
        "api-token",
        "metrics-token",
        "console-password",
        "outpost.toml",
    ] {
        assert_eq!(uid(&data_dir.join(file)), owner, "{file} is not the user's");
    }
    assert_eq!(mode(&data_dir), 0o710);
    assert_eq!(mode(&data_dir.join("api-token")), 0o640);
    assert_eq!(mode(&data_dir.join("metrics-token")), 0o600);
    let config = std::fs::read_to_string(data_dir.join("outpost.toml")).expect("config");
    assert!(config.contains("https://pos.example.com"), "{config}");
    // Run again, it checks and changes nothing.
    let again = std::process::Command::new(outpost_binary())
        .args(["setup", "--user", &user, "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("runs");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // A command run with sudo acts as the node's user: what it makes (the
    // backup key, a snapshot) is the user's, and the stick's file root's.
    let stick = dir.path().join("stick.outpost-backup");
    outpost(&[
        "backup",
        "--data-dir",
        &data_dir.display().to_string(),
        "-o",
        &stick.display().to_string(),
    ]);
    assert_eq!(uid(&data_dir.join("backup.key")), owner);
    assert_eq!(uid(&data_dir.join("snapshots")), owner);
    assert_eq!(uid(&stick), 0);
}

const CARD: &str = include_str!("../../docs/examples/card.json");
const LABEL: &str = include_str!("../../docs/examples/label.json");

/// A node that keeps its own events (every label and payment) in the
/// outbox, for a centre that is not there: its trading state grows with
/// every sale.
fn trading_node() -> TestNode {
    let node = TestNode::with_toml(
        "[centre]\nevents-url = \"http://127.0.0.1:9/v1/events\"\n[backup]\nevery-minutes = 0\n",
    );
    node.install_artifact(artifacts::THERMAL_PRINTER);
    outpost_e2e_tests::install_card_tokenizer(&node.node);
    node
}

/// Every outbox entry through the API, oldest first, as JSON text.
async fn outbox_entries(client: &outpost_e2e_tests::ApiClient) -> Vec<String> {
    let (status, list) = client.get("/v1/outbox?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut ids: Vec<u64> = list["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["id"].as_u64())
        .collect();
    ids.sort();
    let mut entries = Vec::new();
    for id in ids {
        let (status, entry) = client.get(&format!("/v1/outbox/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{entry}");
        entries.push(entry.to_string());
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_selling_restores_onto_a_new_box_exactly() {
    let shared = trading_node().shared();
    let served = Serving::start(shared.node.clone(), false).await;
    let (status, token) = served.client.post("/v1/payments/tokenize", CARD).await;
    assert_eq!(status, StatusCode::OK, "{token}");

    // The till keeps printing while the backup is taken.
    let printed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let till = tokio::spawn({
        let client = served.client.clone();
        let (printed, stop) = (printed.clone(), stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (status, body) = client.post("/v1/print/label", LABEL).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                printed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    while printed.load(std::sync::atomic::Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acknowledged_before = printed.load(std::sync::atomic::Ordering::SeqCst);
    let node = shared.node.clone();
    let taken = tokio::task::spawn_blocking(move || outpost::backup::local::take_now(&node))
        .await
        .expect("join")
        .expect("snapshot");
    let after = printed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        taken.new_recovery_code.is_some(),
        "the first backup shows its code"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    till.await.expect("the till kept printing");
    assert!(
        printed.load(std::sync::atomic::Ordering::SeqCst) > after,
        "no sale after the backup"
    );

    // A directory with something of its own in the way is refused before
    // anything moves, and keeps what it had.
    let busy = tempfile::tempdir().expect("busy");
    std::fs::write(busy.path().join("api-token"), "mine\n").expect("a token of its own");
    let code = taken.new_recovery_code.as_deref().expect("code");
    let refused = outpost::backup::restore(
        std::fs::File::open(&taken.snapshot.path).expect("snapshot"),
        &outpost::backup::parse_recovery_code(code).expect("code"),
        "the snapshot",
        busy.path(),
        &outpost::backup::RestoreOptions::default(),
    )
    .expect_err("in the way");
    assert!(refused.to_string().contains("--replace"), "{refused}");
    let left: Vec<_> = std::fs::read_dir(busy.path())
        .expect("list")
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("api-token")]);

    // Onto a new box, with the real binary and the recovery code.
    let new_box = tempfile::tempdir().expect("new box");
    let data_dir = new_box.path().join("node");
    let output = std::process::Command::new(outpost_binary())
        .arg("restore")
        .arg(&taken.snapshot.path)
        .arg("--data-dir")
        .arg(&data_dir)
        .env(
            "OUTPOST_RECOVERY_CODE",
            taken.new_recovery_code.as_deref().expect("code"),
        )
        .output()
        .expect("outpost restore runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("outpost/thermal-printer"), "{said}");
    assert!(said.contains("Never start the old box"), "{said}");

    let restored = TestNode {
        node: outpost::node::Node::open(
            outpost::node::NodeOptions::resolve(&data_dir, None).expect("options"),
        )
        .expect("the restored node opens"),
        dir: new_box,
    }
    .shared();
    let restored_served = Serving::start(restored.node.clone(), false).await;
    // The apps' token came along: the till needs nothing new.
    assert_eq!(restored_served.client.token, served.client.token);

    // The trading state is the live node's as of one commit, byte for byte:
    // every entry it has is the live one exactly, none is missing before
    // the last it has, and every sale acknowledged before the backup began
    // is in it.
    let live = outbox_entries(&served.client).await;
    let back = outbox_entries(&restored_served.client).await;
    assert!(!back.is_empty() && back.len() <= live.len());
    assert_eq!(back[..], live[..back.len()]);
    // One event for the payment, one per label.
    assert!(
        back.len() as u64 > acknowledged_before,
        "{} entries restored, {acknowledged_before} labels acknowledged before the backup",
        back.len()
    );
    // The keys came with node.key: the same card makes the same token.
    let (status, again) = restored_served
        .client
        .post("/v1/payments/tokenize", CARD)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["token"], token["token"], "{again} vs {token}");
    let (status, plugins) = restored_served.client.get("/v1/plugins").await;
    assert_eq!(status, StatusCode::OK);
    let (_, live_plugins) = served.client.get("/v1/plugins").await;
    assert_eq!(plugins["plugins"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        plugins["plugins"][0]["version"],
        live_plugins["plugins"][0]["version"]
    );
    restored_served.stop().await;
    served.stop().await;
}

#[test]
fn a_damaged_database_names_the_newest_good_snapshot_which_restores() {
    let node = trading_node();
    let first = outpost::backup::local::take_now(&node.node).expect("snapshot");
    // A newer snapshot, then damage to it: the older good one is named.
    std::thread::sleep(Duration::from_millis(1100));
    let second = outpost::backup::local::take_now(&node.node).expect("snapshot");
    assert_ne!(first.snapshot.path, second.snapshot.path);
    let mut bytes = std::fs::read(&second.snapshot.path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&second.snapshot.path, bytes).expect("damage the snapshot");
    let TestNode { dir, node } = node;
    drop(node);
    let database = dir.path().join("outpost.redb");
    let length = std::fs::metadata(&database).expect("metadata").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&database)
        .and_then(|file| file.set_len(length / 3))
        .expect("damage the database");

    let options = outpost::node::NodeOptions::resolve(dir.path(), None).expect("options");
    let error = outpost::node::Node::open(options.clone()).expect_err("damaged");
    let text = error.to_string();
    assert!(
        matches!(error, outpost::node::NodeError::Damaged { .. }),
        "{text}"
    );
    let named = first.snapshot.path.display().to_string();
    assert!(
        text.contains(&format!("outpost restore {named} --replace")),
        "{text}"
    );

    let output = std::process::Command::new(outpost_binary())
        .args(["restore", &named, "--replace", "--key-file"])
        .arg(dir.path().join("backup.key"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("outpost restore runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let node = outpost::node::Node::open(options).expect("the node opens again");
    assert_eq!(node.plugins().len(), 2);
    // The damaged file was moved aside, not deleted.
    let aside = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .find(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("before-restore-")
        })
        .expect("moved aside");
    assert_eq!(
        std::fs::metadata(aside.path().join("outpost.redb"))
            .expect("the damaged database")
            .len(),
        length / 3
    );
}

/// That `check` failed, saying `expected`, with a fix that mentions `fix`.
fn assert_fails(findings: &[outpost::doctor::Finding], check: &str, expected: &str, fix: &str) {
    let finding = findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no {check} finding: {findings:#?}"));
    assert_eq!(
        finding.verdict,
        outpost::doctor::Verdict::Fail,
        "{finding:?}"
    );
    assert!(finding.detail.contains(expected), "{finding:?}");
    assert!(
        finding.fix.as_deref().is_some_and(|f| f.contains(fix)),
        "{finding:?}"
    );
}

/// The findings whose check starts with `check`, as "verdict: detail".
fn verdicts(findings: &[outpost::doctor::Finding], check: &str) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.check.starts_with(check))
        .map(|f| {
            let verdict = match f.verdict {
                outpost::doctor::Verdict::Ok => "ok",
                outpost::doctor::Verdict::Warn => "warn",
                outpost::doctor::Verdict::Fail => "fail",
            };
            format!("{verdict}: {}", f.detail)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_finds_each_failure_it_names_with_its_fix() {
    use outpost::store::{AttemptOutcome, NewMessage, OutboxMethod};
    let courier = outpost::virtual_courier::VirtualCourier::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("courier");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port nobody listens on");
    let courier_config =
        |api_url: &str| format!("[plugin-config.\"outpost/courier\"]\napi-url = \"{api_url}\"\n");
    let node = TestNode::with_toml(&courier_config(&courier.url()));
    node.install_artifact(artifacts::THERMAL_PRINTER);
    node.install_artifact(artifacts::COURIER);
    let hostile = node.install_artifact(artifacts::TEST_HOSTILE);
    let shared = node.shared();
    outpost::api::load_or_create_token(&shared.node).expect("token");

    // A healthy node: nothing fails; no backup yet is only a warning.
    let findings = outpost::doctor::examine(&shared.node).await;
    let failing: Vec<_> = findings
        .iter()
        .filter(|f| f.verdict == outpost::doctor::Verdict::Fail)
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
    assert_eq!(
        verdicts(&findings, "courier outpost/courier"),
        vec![format!("ok: reachable: {}", courier.url())]
    );
    assert!(verdicts(&findings, "backups")[0].starts_with("warn: no backup"));

    // Break what can break while it runs.
    let assets = shared
        .dir
        .path()
        .join("plugins")
        .join(hostile.id().as_str())
        .join(hostile.version.to_string())
        .join("assets");
    std::fs::create_dir_all(&assets).expect("assets");
    std::fs::write(assets.join("health.txt"), "failing: print head too hot").expect("write");
    let token = shared.dir.path().join("api-token");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let enqueued = shared
        .node
        .outbox()
        .enqueue(NewMessage {
            owner: "node".into(),
            destination: "http://127.0.0.1:9/v1/events".into(),
            method: OutboxMethod::Post,
            content_type: "application/json".into(),
            payload: b"{}".to_vec(),
            idempotency_key: "doctor-test".into(),
            max_pending: 10,
            max_kept_bytes: 1 << 20,
        })
        .expect("enqueued");
    shared
        .node
        .store()
        .outbox_record(
            enqueued.id,
            AttemptOutcome::Dead {
                status: Some(422),
                body: Vec::new(),
                error: "refused: the centre answered 422".into(),
            },
            outpost::clock::now_millis(),
        )
        .expect("recorded");
    let tomorrow = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
    shared
        .node
        .store()
        .put_trust_seen(&std::collections::BTreeMap::from([(
            "latest_known_time.json".to_string(),
            serde_json::to_vec(&tomorrow.to_string()).expect("json"),
        )]))
        .expect("a registry check recorded a day ahead");

    let findings = outpost::doctor::examine(&shared.node).await;
    let hostile_check = format!("plugin {}", hostile.id());
    for (check, expected, fix) in [
        (
            hostile_check.as_str(),
            "print head too hot",
            "outpost plugin info",
        ),
        (
            "token",
            "can be read by other users",
            "outpost token rotate",
        ),
        (
            "outbox to http://127.0.0.1:9/v1/events",
            "failed for good",
            "--state dead",
        ),
        (
            "clock",
            "before the node last checked the registry",
            "clock",
        ),
    ] {
        assert_fails(&findings, check, expected, fix);
    }
    let outpost_e2e_tests::SharedNode { dir, node } = shared;
    drop(node);

    // The command itself: with no node running it says so first, with the
    // fix, lists the rest, and exits 1.
    let output = std::process::Command::new(outpost_binary())
        .args(["doctor", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("outpost doctor runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{said}");
    let first = said.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("FAIL  node") && first.contains("not running"),
        "{said}"
    );
    assert!(
        said.contains("fix: start it: sudo systemctl start outpost"),
        "{said}"
    );
    assert!(said.contains("FAIL  token"), "{said}");

    // Restarted with a printer that does not answer, a disk reserve the
    // disk cannot meet, and the courier pointed somewhere not approved.
    let text = format!(
        "[policy]\ndisk-reserve-mib = 100000000\n\
         [printers.dock]\ntransport = \"tcp\"\naddress = \"{closed}\"\ntimeout-ms = 500\n\
         [defaults]\nlabel-printer = \"dock\"\nreceipt-printer = \"dock\"\n{}",
        courier_config(&format!("http://{closed}"))
    );
    let node = std::sync::Arc::new(
        outpost::node::Node::open(outpost::node::NodeOptions {
            data_dir: dir.path().to_path_buf(),
            config: outpost::config::NodeConfig::parse(&text, "test").expect("config"),
            config_origin: "test".into(),
        })
        .expect("reopens"),
    );
    let findings = outpost::doctor::examine(&node).await;
    for (check, expected, fix) in [
        ("printer dock", "tcp", "outpost print test"),
        ("disk", "kept for sales", "free space"),
    ] {
        assert_fails(&findings, check, expected, fix);
    }
    let unapproved = verdicts(&findings, "plugin outpost/courier");
    assert!(
        unapproved
            .iter()
            .any(|v| v.starts_with("fail") && v.contains("not approved")),
        "{unapproved:?}"
    );
    // Approved, the courier reaches the new address (and is told so).
    let courier_id = outpost::manifest::PluginId::parse("outpost/courier").expect("id");
    let approved =
        outpost::control::approve::configured_origins(&node, &courier_id).expect("approved");
    assert_eq!(approved.added, vec![format!("http://{closed}")]);
    let loaded = node.loaded(&courier_id).expect("loaded");
    assert!(loaded.spec.unapproved_origins.is_empty());
    assert!(
        loaded
            .spec
            .http_allowed
            .iter()
            .any(|origin| origin.as_str() == format!("http://{closed}"))
    );
    // Nothing answers there: bookings would queue, which the doctor says.
    let findings = outpost::doctor::examine(&node).await;
    let courier_check = verdicts(&findings, "courier outpost/courier");
    assert!(
        courier_check[0].starts_with("warn") && courier_check[0].contains("bookings queue"),
        "{courier_check:?}"
    );
}

/// A real `outpost run` on a data directory, stopped (SIGTERM) when dropped.
struct RunningNode {
    child: std::process::Child,
}

impl RunningNode {
    fn start(data_dir: &std::path::Path, port: u16) -> RunningNode {
        let child = std::process::Command::new(outpost_binary())
            .args(["run", "--data-dir"])
            .arg(data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("outpost run starts");
        let started = Instant::now();
        let socket = data_dir.join("admin.sock");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::os::unix::net::UnixStream::connect(&socket).is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the node did not start serving"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        RunningNode { child }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A stall's data directory (tokenizer, printer driver, courier pointed at
/// `courier_url` by configuration), with `edit` applied to the courier's
/// manifest. Returns the directory and the API's port.
fn drill_stall(courier_url: &str, edit: impl FnOnce(String) -> String) -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    std::fs::write(
        dir.path().join("outpost.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\
             [plugin-config.\"outpost/courier\"]\napi-url = \"{courier_url}\"\n"
        ),
    )
    .expect("config");
    let node = outpost::node::Node::open(
        outpost::node::NodeOptions::resolve(dir.path(), None).expect("options"),
    )
    .expect("opens");
    outpost_e2e_tests::install_card_tokenizer(&node);
    outpost::updates::install(
        &node,
        std::path::Path::new(artifacts::THERMAL_PRINTER.package_dir),
    )
    .expect("printer driver");
    let courier = outpost_e2e_tests::PackageCopy::new(artifacts::COURIER, edit);
    outpost::updates::install(&node, courier.path()).expect("courier");
    drop(node);
    (dir, port)
}

fn drill(data_dir: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(outpost_binary())
        .args(["drill", "--for", "2s", "--settle", "30s", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("outpost drill runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_passes_on_a_healthy_stall_and_fails_with_a_broken_courier() {
    let courier = outpost::virtual_courier::VirtualCourier::start(([127, 0, 0, 1], 0).into())
        .await
        .expect("courier");
    let url = courier.url();

    // The reference courier as shipped, pointed at this courier by
    // configuration alone: no repackaging.
    let (healthy, port) = drill_stall(&url, |manifest| manifest);
    let node = RunningNode::start(healthy.path(), port);
    let path = healthy.path().to_path_buf();
    let (passed, said) = tokio::task::spawn_blocking(move || drill(&path))
        .await
        .expect("join");
    assert!(passed, "{said}");
    for line in [
        "ok    sale (card tokenized)",
        "ok    label printed",
        "ok    booking: queued",
        "delivery(ies) queued in the outbox while offline",
        "confirmed by the courier",
        "cancelled with the courier",
        "Drill passed",
    ] {
        assert!(said.contains(line), "{line:?} missing from:\n{said}");
    }
    // The courier got the booking once the network was back, and the
    // drill cancelled it: nothing is left booked.
    assert!(courier.requests() >= 2, "booked and cancelled");
    assert!(courier.shipments().is_empty());
    drop(node);

    // A courier adapter that cannot queue (its outbox holds one byte):
    // offline, its booking fails, and so does the drill.
    let (broken, port) = drill_stall(&url, |manifest| {
        manifest.replace("max-pending = 1000", "max-pending = 1000, quota-bytes = 1")
    });
    let node = RunningNode::start(broken.path(), port);
    let path = broken.path().to_path_buf();
    let (passed, said) = tokio::task::spawn_blocking(move || drill(&path))
        .await
        .expect("join");
    assert!(!passed, "{said}");
    assert!(said.contains("FAIL  booking"), "{said}");
    assert!(said.contains("the drill failed: booking"), "{said}");
    drop(node);
}
