//! Over-the-air updates on a running node: following the registry, staging
//! while the old version serves, probation and automatic rollback, consent,
//! windows and the update lock, refusals before activation, and hot swaps
//! under load. A real registry on 127.0.0.1, real plugins, real redb files.

use hyper::{Method, StatusCode};
use outpost::control::{self, Steer};
use outpost::printing::Document;
use outpost::store::UpdateState;
use outpost_e2e_tests::centre::VirtualCentre;
use outpost_e2e_tests::registry::TestRegistry;
use outpost_e2e_tests::serving::Serving;
use outpost_e2e_tests::updates::{
    Background, PLUGIN, following_installed, following_node, history, install, plugin_id, reached,
    release, serving, wait_for, with_own_code,
};
use outpost_e2e_tests::{LABEL_JSON, command_label};
use outpost_registry::server::ServeConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const QUICK_PROBATION: &str = "[updates]\nprobation-seconds = 1\nprobation-calls = 3\n";

fn call(node: &outpost::node::Node, command: &str, args: &[&str]) -> Result<String, String> {
    let plugin = node.loaded(&plugin_id()).expect("loaded");
    tokio::task::block_in_place(|| {
        node.render(&plugin, &Document::Label(command_label(command, args)))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| e.to_string())
    })
}

fn kv(node: &outpost::node::Node, key: &str) -> Option<String> {
    node.store()
        .kv_get(&plugin_id(), key)
        .expect("read kv")
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_plugin_moves_to_new_releases_and_back_from_a_failing_one() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let centre = VirtualCentre::start().await;
    let shared = following_node(
        &registry,
        &format!(
            "{QUICK_PROBATION}[centre]\nevents-url = \"{}\"\n[outbox]\ninitial-backoff-ms = 50\n",
            centre.url()
        ),
    );
    let node = shared.node.clone();
    for version in ["1.0.0", "1.1.0"] {
        let package = release(version, |m| m);
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
    }
    install(&node, &format!("{PLUGIN}@=1.0.0")).await;
    assert_eq!(kv(&node, "migrated-from").as_deref(), Some("fresh"));
    control::follow(&node, plugin_id(), Some("^1".into()))
        .await
        .expect("follow");
    let _background = Background::start(&node);

    // 1.1.0 is found, staged and activated by the node itself, then confirmed
    // after its probation (a second and three calls).
    let checked = control::check(&node).await.expect("check");
    assert_eq!(checked.len(), 1);
    assert!(
        checked[0].outcome.contains("1.1.0 probation"),
        "{checked:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    assert_eq!(kv(&node, "migrated-from").as_deref(), Some("1.0.0"));
    for _ in 0..3 {
        assert_eq!(call(&node, "echo", &["hi"]), Ok("hi".into()));
    }
    wait_for("1.1.0 to be confirmed", || {
        reached(&node, "1.1.0", UpdateState::Confirmed)
    })
    .await;
    let record = node
        .store()
        .plugin(&plugin_id())
        .expect("read")
        .expect("installed");
    assert_eq!(
        record.previous, None,
        "the old version is freed once confirmed"
    );
    assert!(!node.store().has_kv_snapshot(&plugin_id()).expect("read"));

    // 1.2.0 fails its real calls: the node goes back to 1.1.0 and its data
    // by itself, says why, and does not take 1.2.0 again.
    let broken = release("1.2.0", |m| m);
    registry
        .publish(&registry.acme, broken.path())
        .await
        .expect("publish");
    control::check(&node).await.expect("check");
    assert_eq!(serving(&node).as_deref(), Some("1.2.0"));
    assert_eq!(kv(&node, "migrated-from").as_deref(), Some("1.1.0"));
    call(&node, "kv-set", &["written-on-probation", "1.2.0"]).expect("kv write");
    for _ in 0..3 {
        assert!(call(&node, "panic", &[]).is_err());
    }
    wait_for("1.2.0 to be rolled back", || {
        reached(&node, "1.2.0", UpdateState::RolledBack)
    })
    .await;
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    assert_eq!(kv(&node, "migrated-from").as_deref(), Some("1.0.0"));
    assert_eq!(kv(&node, "written-on-probation"), None);
    let why = history(&node)
        .into_iter()
        .rev()
        .find(|t| t.state == UpdateState::RolledBack)
        .and_then(|t| t.reason)
        .expect("a reason");
    assert!(
        why.contains("3 of its") && why.contains("panicked"),
        "{why}"
    );
    let blocked = node.store().blocked_versions(&plugin_id()).expect("read");
    assert!(blocked.contains_key(&semver::Version::new(1, 2, 0)));
    let again = control::check(&node).await.expect("check");
    assert!(again[0].outcome.contains("up to date (1.1.0)"), "{again:?}");

    // A newer release is taken again.
    let fixed = release("1.3.0", |m| m);
    registry
        .publish(&registry.acme, fixed.path())
        .await
        .expect("publish");
    control::check(&node).await.expect("check");
    assert_eq!(serving(&node).as_deref(), Some("1.3.0"));

    // The centre hears of every transition, with the reason of the rollback.
    wait_for("the rollback event at the centre", || {
        centre.requests().iter().any(|(_, event)| {
            event["type"] == "plugin.update"
                && event["data"]["state"] == "rolled-back"
                && event["data"]["to"] == "1.2.0"
        })
    })
    .await;
    let states: Vec<Value> = centre
        .requests()
        .iter()
        .filter(|(_, e)| e["type"] == "plugin.update" && e["data"]["to"] == "1.1.0")
        .map(|(_, e)| e["data"]["state"].clone())
        .collect();
    for state in [
        "found",
        "downloaded",
        "verified",
        "compiled",
        "staged",
        "activating",
        "probation",
        "confirmed",
    ] {
        assert!(
            states.contains(&json!(state)),
            "{state} missing from {states:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_asks_for_more_waits_for_the_operator() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_installed(&registry, QUICK_PROBATION).await;
    let node = shared.node.clone();
    let greedy = release("1.1.0", |m| {
        m.replace("quota-bytes = 16384", "quota-bytes = 65536")
    });
    registry
        .publish(&registry.acme, greedy.path())
        .await
        .expect("publish");

    let checked = control::check(&node).await.expect("check");
    assert!(checked[0].outcome.contains("1.1.0 held"), "{checked:?}");
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    let update = node
        .store()
        .update(&plugin_id())
        .expect("read")
        .expect("held");
    assert_eq!(update.asks, ["kv quota bytes: 16384 -> 65536"]);
    let served = Serving::start(node.clone(), false).await;
    let (status, health) = served.client.get("/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["updates"][0]["state"], "held", "{health}");
    // Checking again changes nothing: it is still held, not fetched again.
    let again = control::check(&node).await.expect("check");
    assert!(again[0].outcome.contains("1.1.0 is held"), "{again:?}");

    // Approving what the operator looked at: another version by now is refused.
    let stale = control::steer(
        &node,
        plugin_id(),
        Steer::Approve,
        Some(semver::Version::new(1, 0, 9)),
    )
    .await
    .expect_err("not what is held");
    assert!(stale.to_string().contains("is now 1.1.0"), "{stale}");
    let approved = control::steer(
        &node,
        plugin_id(),
        Steer::Approve,
        Some(semver::Version::new(1, 1, 0)),
    )
    .await
    .expect("approve");
    assert_eq!(approved.state, UpdateState::Probation);
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_waits_for_the_window_and_for_an_apps_lock() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    // A window that is never now: an hour that ended a minute ago.
    let now = jiff::Zoned::now();
    let end = (now.hour() as i64 * 60 + now.minute() as i64 + 1439) % 1440;
    let start = (end + 1380) % 1440;
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    );
    let shared = following_node(
        &registry,
        &format!("{QUICK_PROBATION}window = \"{window}\"\n"),
    );
    let node = shared.node.clone();
    for version in ["1.0.0", "1.1.0"] {
        registry
            .publish(&registry.acme, release(version, |m| m).path())
            .await
            .expect("publish");
    }
    install(&node, &format!("{PLUGIN}@=1.0.0")).await;
    control::follow(&node, plugin_id(), Some("^1".into()))
        .await
        .expect("follow");
    let checked = control::check(&node).await.expect("check");
    assert!(
        checked[0].outcome.contains("deferred") && checked[0].outcome.contains(&window),
        "{checked:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    // Staged: the operator can have it now.
    control::steer(&node, plugin_id(), Steer::Apply, None)
        .await
        .expect("apply");
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    drop(shared);

    // A node with no window, and an app holding the lock during a sale.
    let shared = following_node(&registry, QUICK_PROBATION);
    let node = shared.node.clone();
    install(&node, &format!("{PLUGIN}@=1.0.0")).await;
    control::follow(&node, plugin_id(), Some("^1".into()))
        .await
        .expect("follow");
    let served = Serving::start(node.clone(), false).await;
    let (status, lock) = served
        .client
        .post(
            "/v1/updates/lock",
            r#"{"seconds": 100000, "holder": "till 1"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lock}");
    assert_eq!(
        lock["locked_for_seconds"], 900,
        "capped at max-lock-seconds"
    );
    let checked = control::check(&node).await.expect("check");
    assert!(checked[0].outcome.contains("till 1"), "{checked:?}");
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    let _background = Background::start(&node);
    let (status, _) = served
        .client
        .send(
            Method::DELETE,
            "/v1/updates/lock",
            "",
            Some(&served.client.token.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for("activation once the lock is released", || {
        serving(&node).as_deref() == Some("1.1.0")
    })
    .await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_releases_are_refused_before_activation_and_the_old_version_serves() {
    let registry = TestRegistry::start_with(ServeConfig::default(), false).await;
    let shared = following_node(
        &registry,
        &format!("{QUICK_PROBATION}[plugin-config.\"{PLUGIN}\"]\nfail-migrate = \"false\"\n"),
    );
    let node = shared.node.clone();
    registry
        .publish(&registry.acme, release("1.0.0", |m| m).path())
        .await
        .expect("publish");
    install(&node, &format!("{PLUGIN}@=1.0.0")).await;
    control::follow(&node, plugin_id(), Some("^1".into()))
        .await
        .expect("follow");

    // Each is published (this registry does not check), found by the node,
    // refused with the release and the cause named, and blocked.
    let unhealthy = release("1.1.0", |m| m);
    std::fs::write(
        unhealthy.path().join("assets/health.txt"),
        "failing: no paper",
    )
    .expect("write");
    let liar = release("1.2.0", |m| m);
    std::fs::write(liar.path().join("assets/version.txt"), "9.9.9").expect("write");
    // A component of another world under this plugin's manifest: it parses,
    // so the vendor's tool pushes it, but it does not link as a printer
    // driver.
    let misfit = release("1.3.0", |m| m);
    std::fs::copy(
        outpost_e2e_tests::artifacts::CARD_TOKENIZER.component,
        misfit.component(outpost_e2e_tests::artifacts::TEST_HOSTILE),
    )
    .expect("copy");
    let cases = [
        (unhealthy, "1.1.0", "no paper"),
        (liar, "1.2.0", "reports version 9.9.9"),
        (misfit, "1.3.0", "the component imports"),
    ];
    for (package, version, cause) in &cases {
        registry
            .publish(&registry.acme, package.path())
            .await
            .expect("publish");
        let checked = control::check(&node).await.expect("check");
        assert!(
            checked[0]
                .outcome
                .contains(&format!("{PLUGIN}@{version} refused"))
                && checked[0].outcome.contains(cause),
            "{version}: {checked:?}"
        );
        assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
        assert_eq!(
            call(&node, "echo", &["still here"]),
            Ok("still here".into())
        );
    }
    let blocked = node.store().blocked_versions(&plugin_id()).expect("read");
    assert_eq!(blocked.len(), 3, "{blocked:?}");

    // A migration that fails leaves no trace and blocks the version too.
    let config = node.config().clone();
    let mut failing = config.clone();
    failing
        .plugin_config
        .get_mut(PLUGIN)
        .expect("config")
        .insert("fail-migrate".into(), "true".into());
    drop(node);
    let dir = shared.dir;
    drop(shared.node);
    let node = Arc::new(
        outpost::node::Node::open(outpost::node::NodeOptions {
            data_dir: dir.path().to_path_buf(),
            config: failing,
            config_origin: "test".into(),
        })
        .expect("reopen"),
    );
    registry
        .publish(&registry.acme, release("1.4.0", |m| m).path())
        .await
        .expect("publish");
    let checked = control::check(&node).await.expect("check");
    assert!(
        checked[0].outcome.contains("acme/hostile@1.4.0 refused")
            && checked[0].outcome.contains("migrate"),
        "{checked:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    assert_eq!(kv(&node, "migrated-from").as_deref(), Some("fresh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_leaves_the_node_serving_what_it_has() {
    let mut registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_installed(&registry, QUICK_PROBATION).await;
    let node = shared.node.clone();
    registry.stop().await;
    let error = control::check(&node).await.expect_err("no registry");
    assert!(
        error.to_string().contains("cannot check for updates"),
        "{error}"
    );
    assert_eq!(call(&node, "echo", &["offline"]), Ok("offline".into()));
    assert!(node.store().update(&plugin_id()).expect("read").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_never_fail_while_versions_are_swapped_in_and_rolled_back() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_node(&registry, "[updates]\nprobation-seconds = 3600\n");
    let node = shared.node.clone();
    let first = release("1.0.0", |m| m);
    outpost::updates::install(&node, first.path()).expect("install 1.0.0");
    let served = Serving::start(node.clone(), false).await;
    let mut body: Value = serde_json::from_str(LABEL_JSON).expect("example");
    body["driver"] = json!(PLUGIN);
    body["label"]["reference"] = json!("echo");
    body["label"]["notes"] = json!(["swap"]);
    let body = body.to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let client = served.client.clone();
    let caller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, answer) = client.post("/v1/print/label", &body).await;
                answers.push((status, answer["job"]["driver_version"].clone(), answer));
            }
            answers
        })
    };
    let packages: Vec<_> = (1..=20)
        .map(|minor| release(&format!("1.{minor}.0"), |m| m))
        .collect();
    for (index, package) in packages.iter().enumerate() {
        let report =
            tokio::task::block_in_place(|| outpost::updates::install(&node, package.path()))
                .expect("install");
        assert_eq!(report.state, "probation", "update {index}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let back = control::steer(&node, plugin_id(), Steer::Rollback, None)
            .await
            .expect("rollback");
        assert_eq!(back.state, UpdateState::RolledBack);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let answers = caller.await.expect("caller");
    served.stop().await;
    assert!(answers.len() > 40, "only {} calls made", answers.len());
    let mut versions = std::collections::BTreeSet::new();
    for (status, version, answer) in &answers {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        let version = version.as_str().expect("a version");
        versions.insert(version.to_string());
    }
    assert!(
        versions.contains("1.0.0") && versions.len() > 2,
        "{versions:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    let rolled_back = history(&node)
        .iter()
        .filter(|t| t.state == UpdateState::RolledBack)
        .count();
    assert_eq!(rolled_back, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_holding_the_api_token_cannot_reach_the_control_plane() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_node(&registry, QUICK_PROBATION);
    let node = shared.node.clone();
    let served = Serving::start(node.clone(), false).await;
    let package = release("1.0.0", |m| m);
    let install = json!({ "spec": package.path(), "approve": true, "package": true }).to_string();
    for (method, path, body) in [
        (Method::POST, "/admin/v1/plugins", install.as_str()),
        (
            Method::POST,
            "/admin/v1/keys",
            r#"{"plugin": "acme/hostile", "name": "k"}"#,
        ),
        (Method::POST, "/v1/plugins", install.as_str()),
        (
            Method::POST,
            "/v1/keys",
            r#"{"plugin": "acme/hostile", "name": "k"}"#,
        ),
        (Method::POST, "/v1/updates/acme/hostile/approve", ""),
    ] {
        let token = served.client.token.clone();
        let (status, answer) = served
            .client
            .send(method.clone(), path, body, Some(&token))
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {answer}"
        );
    }
    assert!(node.plugins().is_empty());
    assert!(node.keystore().list(None).expect("keys").is_empty());
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_plugin_drops_its_update_in_flight_whole() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_installed(&registry, QUICK_PROBATION).await;
    let node = shared.node.clone();
    let greedy = release("1.1.0", |m| {
        m.replace("quota-bytes = 16384", "quota-bytes = 65536")
    });
    with_own_code(&greedy, "1.1.0");
    registry
        .publish(&registry.acme, greedy.path())
        .await
        .expect("publish");
    control::check(&node).await.expect("check");
    let held = node
        .store()
        .update(&plugin_id())
        .expect("read")
        .expect("held");
    let staged = held.staged.expect("staged").component_digest;
    assert!(node.store().component(&staged).expect("read").is_some());

    assert!(
        control::remove(&node, plugin_id(), false)
            .await
            .expect("remove")
    );
    assert!(node.store().update(&plugin_id()).expect("read").is_none());
    assert!(node.store().component(&staged).expect("read").is_none());
    assert!(control::status(&node).expect("status").follows.is_empty());
    let approve = control::steer(&node, plugin_id(), Steer::Approve, None).await;
    assert!(approve.is_err(), "nothing left to approve");
    assert_eq!(serving(&node), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_finds_nothing_new_asks_only_for_the_timestamp() {
    use outpost::updates::agent;
    use outpost_e2e_tests::registry::Proxy;
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let proxy = Proxy::start(&registry.url).await;
    let shared = following_node(&registry, QUICK_PROBATION);
    let node = shared.node.clone();
    outpost_e2e_tests::registry::provision(&node, &registry.root_json, &proxy.url);
    registry
        .publish(&registry.acme, release("1.0.0", |m| m).path())
        .await
        .expect("publish");
    install(&node, &format!("{PLUGIN}@=1.0.0")).await;
    control::follow(&node, plugin_id(), Some("^1".into()))
        .await
        .expect("follow");

    let mut last = None;
    let first = agent::check_since(&node, &mut last).await.expect("check");
    assert!(first[0].outcome.contains("up to date"), "{first:?}");
    assert!(last.is_some(), "the first check keeps what it accepted");
    let before = proxy.seen().len();
    let quiet = agent::check_since(&node, &mut last).await.expect("check");
    assert!(quiet[0].outcome.contains("up to date"), "{quiet:?}");
    let asked: Vec<String> = proxy.seen()[before..]
        .iter()
        .map(|(path, _)| path.clone())
        .collect();
    assert_eq!(
        asked,
        ["/tuf/timestamp.json"],
        "a quiet check asked for more"
    );

    // A new release changes the timestamp: the next check sees it.
    registry
        .publish(&registry.acme, release("1.1.0", |m| m).path())
        .await
        .expect("publish");
    let found = agent::check_since(&node, &mut last).await.expect("check");
    assert!(found[0].outcome.contains("1.1.0 probation"), "{found:?}");
}

/// A version taken out of service while a call holds it is dropped by the
/// node (the update agent), never by the call that finishes last: dropping
/// it unmaps code, which would stall the calls running beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_version_is_let_go_by_the_node_not_by_the_last_call() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_node(&registry, "[updates]\nprobation-seconds = 3600\n");
    let node = shared.node.clone();
    for version in ["1.0.0", "1.1.0"] {
        let package = release(version, |m| m);
        tokio::task::block_in_place(|| outpost::updates::install(&node, package.path()))
            .expect("install");
    }
    // A call in flight on 1.1.0 while it is rolled back.
    let in_flight = node.loaded(&plugin_id()).expect("loaded");
    assert_eq!(in_flight.version.to_string(), "1.1.0");
    let rolled_back = Arc::downgrade(&in_flight);
    control::steer(&node, plugin_id(), Steer::Rollback, None)
        .await
        .expect("rollback");
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    drop(in_flight);
    assert!(
        rolled_back.upgrade().is_some(),
        "the call's end dropped the rolled-back version"
    );
    let _agent = Background::start(&node);
    wait_for("the agent to let the rolled-back version go", || {
        rolled_back.upgrade().is_none()
    })
    .await;
}

/// A call still running on a version that an update or a rollback replaced
/// cannot write into the data the new version migrated or the rollback
/// restored: its write is refused and the call fails as replaced; calls on
/// the version serving now write as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_off_by_a_swap_cannot_write_into_the_other_versions_data() {
    let registry = TestRegistry::start(ServeConfig::default()).await;
    let shared = following_node(&registry, "[updates]\nprobation-seconds = 3600\n");
    let node = shared.node.clone();
    let slow = |m: String| m.replace("deadline-ms = 300", "deadline-ms = 5000");
    let first = release("1.0.0", slow);
    let second = release("1.1.0", slow);
    tokio::task::block_in_place(|| outpost::updates::install(&node, first.path()))
        .expect("install 1.0.0");
    let late_write = |key: &'static str| {
        let node = node.clone();
        std::thread::spawn(move || {
            let plugin = node.loaded(&plugin_id()).expect("loaded");
            let label = command_label("sleep-then-kv-set", &["1000", key, "late"]);
            node.render(&plugin, &Document::Label(label))
                .map_err(|e| e.to_string())
        })
    };

    // An update swaps in while a call on 1.0.0 sleeps before its write.
    let on_old = late_write("from-1.0.0");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| outpost::updates::install(&node, second.path()))
        .expect("install 1.1.0");
    let error = on_old.join().expect("caller").expect_err("a refused write");
    assert!(error.contains("replaced"), "{error}");
    assert_eq!(kv(&node, "from-1.0.0"), None);

    // A rollback restores the data while a call on 1.1.0 sleeps.
    let on_new = late_write("from-1.1.0");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    control::steer(&node, plugin_id(), Steer::Rollback, None)
        .await
        .expect("rollback");
    let error = on_new.join().expect("caller").expect_err("a refused write");
    assert!(error.contains("replaced"), "{error}");
    assert_eq!(kv(&node, "from-1.1.0"), None);

    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    assert_eq!(
        call(&node, "kv-set", &["after", "1.0.0"]),
        Ok("stored".into())
    );
    assert_eq!(kv(&node, "after").as_deref(), Some("1.0.0"));
}
