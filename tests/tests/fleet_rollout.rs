//! A rollout from the registry to a running node and back: the node reads
//! its desired state, installs through its update machine, reports every
//! transition through its outbox (signed with its own key), and the rollout
//! moves on, halts or takes the node back. A real registry on 127.0.0.1,
//! real plugins, real redb files, real reports over HTTP.

use outpost::control::fleet as node_fleet;
use outpost::printing::Document;
use outpost::store::UpdateState;
use outpost::updates::directed;
use outpost_e2e_tests::SharedNode;
use outpost_e2e_tests::command_label;
use outpost_e2e_tests::registry::{TestRegistry, enrol_key, join_fleet, test_config};
use outpost_e2e_tests::updates::{
    Background, PLUGIN, following_node, install, plugin_id, reached, release, serving, wait_for,
};
use outpost_registry::desired::{Action, DESIRED_STATE_TYPE, DesiredRelease, DesiredState};
use outpost_registry::fleet::report::{REPORT_TYPE, Report, SignedReport};
use outpost_registry::fleet::{self, Labels};
use outpost_registry::keys::KeyPair;
use outpost_registry::rollout::{self, RolloutRequest, RolloutState, Stage, Steer};

/// A second's probation at most, whatever the rollout asks (the node's own
/// cap), and quick outbox retries.
const NODE_TOML: &str = "[updates]\nprobation-seconds = 1\nprobation-calls = 3\nmax-probation-seconds = 1\n[outbox]\ninitial-backoff-ms = 50\nmax-backoff-ms = 200\n";

fn call(node: &outpost::node::Node, command: &str) -> Result<String, String> {
    let plugin = node.loaded(&plugin_id()).expect("loaded");
    tokio::task::block_in_place(|| {
        node.render(&plugin, &Document::Label(command_label(command, &["hi"])))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| e.to_string())
    })
}

/// A registry with 1.0.0 and `versions` of the plugin, and a node running
/// 1.0.0, enrolled in its fleet.
async fn fleet_with_node(versions: &[&str]) -> (TestRegistry, SharedNode, String) {
    let registry = TestRegistry::start(test_config()).await;
    for version in std::iter::once(&"1.0.0").chain(versions) {
        registry
            .publish(&registry.acme, release(version, |m| m).path())
            .await
            .expect("publish");
    }
    let shared = following_node(&registry, NODE_TOML);
    install(&shared.node, &format!("{PLUGIN}@=1.0.0")).await;
    let id = join_fleet(&registry, &shared.node).await;
    (registry, shared, id)
}

fn to_everyone(release: &str, abort_when: &str) -> RolloutRequest {
    RolloutRequest {
        release: release.into(),
        select: String::new(),
        waves: vec![100],
        probation_seconds: 600,
        abort_when: abort_when.into(),
        rollback: true,
        offline_after_seconds: 24 * 3600,
    }
}

fn state_of(registry: &TestRegistry, rollout: &str) -> RolloutState {
    registry
        .store()
        .rollout(rollout)
        .expect("read")
        .expect("the rollout")
        .state
}

fn stage_of(registry: &TestRegistry, rollout: &str, node: &str) -> Option<Stage> {
    let progress = registry
        .store()
        .rollout_progress(rollout)
        .expect("progress");
    progress.get(node).map(|p| p.stage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_takes_a_rollout_on_probation_confirms_it_and_the_rollout_completes() {
    let (registry, shared, id) = fleet_with_node(&["1.1.0"]).await;
    let node = shared.node.clone();
    let _background = Background::start(&node);
    let created = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.1.0", "failed > 5%"),
    )
    .expect("rollout");

    let checked = node_fleet::check(&node).await.expect("check");
    assert_eq!(checked.acted.len(), 1, "{checked:?}");
    assert!(
        checked.acted[0].outcome.contains("1.1.0 probation"),
        "{checked:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    let update = node
        .store()
        .update(&plugin_id())
        .expect("read")
        .expect("an update");
    let probation = update.probation.expect("on probation");
    assert!(
        probation.until_ms - probation.started_at_ms <= 1_000,
        "the node's max-probation-seconds caps the rollout's 10 minutes"
    );
    wait_for("the registry to hear of the probation", || {
        stage_of(&registry, &created.id, &id) == Some(Stage::Probation)
    })
    .await;
    for _ in 0..3 {
        assert_eq!(call(&node, "echo"), Ok("hi".into()));
    }
    wait_for("1.1.0 to be confirmed", || {
        reached(&node, "1.1.0", UpdateState::Confirmed)
    })
    .await;
    wait_for("the rollout to complete", || {
        matches!(
            state_of(&registry, &created.id),
            RolloutState::Completed { .. }
        )
    })
    .await;
    let status = rollout::status_of(registry.store(), &created.id).expect("status");
    assert_eq!(
        status.waves[0].counts.get("confirmed"),
        Some(&1),
        "{status:?}"
    );

    // Checked again: nothing to do, and nothing reported twice.
    let sent = node
        .store()
        .reported(&created.id)
        .expect("read")
        .expect("reported");
    let again = node_fleet::check(&node).await.expect("check");
    assert!(again.acted[0].outcome.contains("runs 1.1.0"), "{again:?}");
    assert_eq!(
        node.store()
            .reported(&created.id)
            .expect("read")
            .expect("reported")
            .sequence,
        sent.sequence
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_probation_halts_the_rollout_and_the_node_is_back_on_its_own() {
    let (registry, shared, id) = fleet_with_node(&["1.2.0"]).await;
    let node = shared.node.clone();
    let _background = Background::start(&node);
    let created = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.2.0", "failed > 0% after 1"),
    )
    .expect("rollout");
    node_fleet::check(&node).await.expect("check");
    assert_eq!(serving(&node).as_deref(), Some("1.2.0"));
    for _ in 0..3 {
        assert!(call(&node, "panic").is_err());
    }
    wait_for("1.2.0 to be rolled back", || {
        reached(&node, "1.2.0", UpdateState::RolledBack)
    })
    .await;
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"));
    wait_for("the rollout to halt", || {
        matches!(
            state_of(&registry, &created.id),
            RolloutState::Halted { .. }
        )
    })
    .await;
    let status = rollout::status_of(registry.store(), &created.id).expect("status");
    assert_eq!(
        status.waves[0].counts.get("rolled-back"),
        Some(&1),
        "{status:?}"
    );
    assert!(
        status
            .reasons
            .keys()
            .any(|reason| reason.contains("panicked")),
        "the node's reason, grouped: {status:?}"
    );
    assert_eq!(
        stage_of(&registry, &created.id, &id),
        Some(Stage::RolledBack)
    );

    // The halted rollout asks it to go back: it already is.
    let checked = node_fleet::check(&node).await.expect("check");
    assert_eq!(checked.acted[0].action, Action::RollBack);
    assert!(
        checked.acted[0].outcome.contains("runs 1.0.0"),
        "{checked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_rollout_takes_back_a_node_that_had_confirmed_it() {
    let (registry, shared, id) = fleet_with_node(&["1.1.0"]).await;
    let (_, silent) = enrol_key(registry.store(), "silent", Labels::new());
    let node = shared.node.clone();
    let _background = Background::start(&node);
    let created = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.1.0", "failed > 50% after 2"),
    )
    .expect("rollout");
    assert_eq!(created.nodes.len(), 2);
    assert!(created.nodes.contains(&silent));
    node_fleet::check(&node).await.expect("check");
    for _ in 0..3 {
        assert_eq!(call(&node, "echo"), Ok("hi".into()));
    }
    wait_for("the registry to hear 1.1.0 was confirmed", || {
        stage_of(&registry, &created.id, &id) == Some(Stage::Confirmed)
    })
    .await;
    rollout::steer(registry.store(), &created.id, Steer::Abort).expect("abort");

    let checked = node_fleet::check(&node).await.expect("check");
    assert_eq!(checked.acted[0].action, Action::RollBack);
    assert!(
        checked.acted[0].outcome.contains("going back to 1.0.0"),
        "{checked:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.0.0"), "{checked:?}");
    wait_for("the registry to hear the node went back", || {
        stage_of(&registry, &created.id, &id) == Some(Stage::RolledBack)
    })
    .await;
    let blocked = node.store().blocked_versions(&plugin_id()).expect("read");
    assert!(
        blocked.contains_key(&semver::Version::new(1, 1, 0)),
        "following ^1 must not take 1.1.0 again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_made_offline_survive_a_restart_and_arrive_when_the_node_is_back() {
    let (registry, shared, id) = fleet_with_node(&["1.1.0"]).await;
    let created = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.1.0", "failed > 5%"),
    )
    .expect("rollout");
    // No delivery running: whatever the node reports waits in its outbox.
    node_fleet::check(&shared.node).await.expect("check");
    outpost::updates::confirm(&shared.node, &plugin_id()).expect("confirm");
    let fleet_entries = |node: &outpost::node::Node| {
        node.store()
            .outbox_list(None, 1000)
            .expect("outbox")
            .into_iter()
            .filter(|entry| entry.owner == "node:fleet")
            .collect::<Vec<_>>()
    };
    let queued = fleet_entries(&shared.node);
    assert_eq!(
        queued.len(),
        3,
        "downloading, probation, confirmed: {queued:?}"
    );
    assert_eq!(stage_of(&registry, &created.id, &id), None);

    // The box is switched off and on again, then finds its network.
    let SharedNode { dir, node } = shared;
    let node = std::sync::Arc::try_unwrap(node).unwrap_or_else(|_| panic!("one owner"));
    let config = node.config().clone();
    drop(node);
    let node = std::sync::Arc::new(
        outpost::node::Node::open(outpost::node::NodeOptions {
            data_dir: dir.path().to_path_buf(),
            config,
            config_origin: "test".into(),
        })
        .expect("reopen"),
    );
    let _background = Background::start(&node);
    wait_for("the rollout to complete", || {
        matches!(
            state_of(&registry, &created.id),
            RolloutState::Completed { .. }
        )
    })
    .await;
    wait_for("every report to be delivered", || {
        fleet_entries(&node)
            .iter()
            .all(|entry| entry.state == outpost::store::DeliveryState::Delivered)
    })
    .await;
    let progress = registry
        .store()
        .rollout_progress(&created.id)
        .expect("read");
    let held = &progress[&id];
    assert_eq!(held.stage, Stage::Confirmed);
    let last = node
        .store()
        .reported(&created.id)
        .expect("read")
        .expect("reported");
    assert_eq!(
        held.sequence, last.sequence,
        "the newest report is the one that stands"
    );
}

fn state_naming(node: &str, release: DesiredRelease) -> DesiredState {
    DesiredState {
        kind: DESIRED_STATE_TYPE.into(),
        node: node.into(),
        version: 99,
        expires: u64::MAX,
        releases: vec![release],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_director_alone_cannot_install_what_no_vendor_signed_nor_take_a_node_down() {
    let (registry, shared, id) = fleet_with_node(&["1.1.0"]).await;
    let node = shared.node.clone();
    let signed = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.1.0", "failed > 5%"),
    )
    .expect("rollout");
    let index = outpost::releases::refresh(
        node.store(),
        &outpost_registry::client::MetadataSource::Registry(registry.url.clone()),
    )
    .await
    .expect("the vendor's signed releases");
    // What a stolen director key could sign: a release with another
    // digest than the vendor signed, one the vendor never published, an
    // older version than the node runs.
    let named = |rollout: &str, version: &str, digest: &str, action: Action| DesiredRelease {
        plugin: PLUGIN.into(),
        version: semver::Version::parse(version).expect("version"),
        digest: digest.into(),
        rollout: rollout.into(),
        action,
        probation_seconds: 60,
    };
    let bad_digest = format!("sha256:{}", "0".repeat(64));
    for (release, expected) in [
        (
            named("r7", "1.1.0", &bad_digest, Action::Install),
            "but its vendor signed",
        ),
        (
            named("r8", "9.9.9", &signed.digest, Action::Install),
            "not a release its vendor signed",
        ),
        (
            named("r9", "0.9.0", &signed.digest, Action::Install),
            "runs 1.0.0, newer",
        ),
    ] {
        let acted = directed::act(&node, &registry.url, &index, &state_naming(&id, release)).await;
        assert!(acted[0].outcome.contains(expected), "{acted:?}");
        assert_eq!(serving(&node).as_deref(), Some("1.0.0"), "untouched");
        assert_eq!(node.store().update(&plugin_id()).expect("read"), None);
    }
    assert!(
        node.store()
            .blocked_versions(&plugin_id())
            .expect("read")
            .is_empty(),
        "a refusal blocks nothing the vendor signed"
    );
    let record = node
        .store()
        .plugin(&plugin_id())
        .expect("read")
        .expect("installed");
    assert_eq!(record.active.version.to_string(), "1.0.0");
    assert_eq!(record.previous, None);

    // The operator takes 1.1.0 by hand: a rollout that did not install it
    // cannot take the node back from it, on probation or confirmed.
    install(&node, &format!("{PLUGIN}@=1.1.0")).await;
    let back = named(&signed.id, "1.1.0", &signed.digest, Action::RollBack);
    let acted = directed::act(
        &node,
        &registry.url,
        &index,
        &state_naming(&id, back.clone()),
    )
    .await;
    assert!(acted[0].outcome.contains("waits"), "{acted:?}");
    outpost::updates::confirm(&node, &plugin_id()).expect("confirm");
    let acted = directed::act(&node, &registry.url, &index, &state_naming(&id, back)).await;
    assert!(
        acted[0].outcome.contains("did not come from rollout"),
        "{acted:?}"
    );
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    assert!(
        node.store()
            .blocked_versions(&plugin_id())
            .expect("read")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_rollout_takes_a_node_back_one_step_and_no_further() {
    let (registry, shared, id) = fleet_with_node(&["1.1.0", "1.2.0"]).await;
    let node = shared.node.clone();
    let index = outpost::releases::refresh(
        node.store(),
        &outpost_registry::client::MetadataSource::Registry(registry.url.clone()),
    )
    .await
    .expect("the vendor's signed releases");
    let release = |rollout: &str, version: &str, action: Action| {
        let signed = index
            .releases
            .iter()
            .find(|r| r.plugin == PLUGIN && r.version.to_string() == version)
            .expect("signed");
        state_naming(
            &id,
            DesiredRelease {
                plugin: PLUGIN.into(),
                version: signed.version.clone(),
                digest: signed.digest(),
                rollout: rollout.into(),
                action,
                probation_seconds: 60,
            },
        )
    };
    let act = async |rollout: &str, version: &str, action: Action| {
        let state = release(rollout, version, action);
        let acted = directed::act(&node, &registry.url, &index, &state).await;
        acted[0].outcome.clone()
    };
    // Two rollouts, one after the other: 1.0.0 → 1.1.0 → 1.2.0.
    for (rollout, version) in [("r1", "1.1.0"), ("r2", "1.2.0")] {
        let acted = act(rollout, version, Action::Install).await;
        assert!(acted.contains("probation"), "{acted:?}");
        outpost::updates::confirm(&node, &plugin_id()).expect("confirm");
        assert_eq!(serving(&node).as_deref(), Some(version));
    }
    // r2 is stopped: back to 1.1.0, and 1.2.0 blocked with the way back.
    let acted = act("r2", "1.2.0", Action::RollBack).await;
    assert!(acted.contains("going back to 1.1.0"), "{acted:?}");
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
    assert!(
        node.store()
            .blocked_versions(&plugin_id())
            .expect("read")
            .contains_key(&semver::Version::new(1, 2, 0))
    );
    outpost::updates::confirm(&node, &plugin_id()).expect("confirm the way back");
    // Whoever signs "r1 was stopped" now: 1.1.0 is active by the way back,
    // not by r1, so the node stays.
    let acted = act("r1", "1.1.0", Action::RollBack).await;
    assert!(acted.contains("did not come from rollout"), "{acted:?}");
    assert_eq!(serving(&node).as_deref(), Some("1.1.0"));
}

fn report(node: &str, rollout: &str, version: &str, sequence: u64, stage: Stage) -> Report {
    Report {
        kind: REPORT_TYPE.into(),
        node: node.into(),
        rollout: rollout.into(),
        plugin: PLUGIN.into(),
        version: semver::Version::parse(version).expect("version"),
        sequence,
        stage,
        reason: None,
        at: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_refused_unless_an_enrolled_node_signed_its_own_in_order() {
    let registry = TestRegistry::start(test_config()).await;
    registry
        .publish(&registry.acme, release("1.1.0", |m| m).path())
        .await
        .expect("publish");
    let (key_a, a) = enrol_key(registry.store(), "a", Labels::new());
    let (key_b, b) = enrol_key(registry.store(), "b", Labels::new());
    let created = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.1.0", "failed > 90%"),
    )
    .expect("rollout");
    let url = registry.url.join("fleet/v1/reports").expect("url");
    let send = |signed: SignedReport| {
        let url = url.clone();
        let tls = registry.client_tls.clone();
        async move {
            let body = serde_json::to_vec(&signed).expect("json");
            let (status, answer) = fleet::post_report(&url, &tls, body, "k")
                .await
                .expect("sent");
            (status, String::from_utf8_lossy(&answer).into_owned())
        }
    };
    let stage = || stage_of(&registry, &created.id, &a);

    let (status, _) = send(SignedReport::sign(
        &key_a,
        report(&a, &created.id, "1.1.0", 2, Stage::Probation),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(stage(), Some(Stage::Probation));
    // Node b signs a report for a: refused, a's progress untouched.
    let (status, why) = send(SignedReport::sign(
        &key_b,
        report(&a, &created.id, "1.1.0", 3, Stage::Failed),
    ))
    .await;
    assert_eq!(status, 401, "{why}");
    assert!(why.contains("not signed by node"), "{why}");
    // A changed report under a's signature.
    let mut tampered = SignedReport::sign(
        &key_a,
        report(&a, &created.id, "1.1.0", 3, Stage::Confirmed),
    );
    tampered.report.stage = Stage::Failed;
    assert_eq!(send(tampered).await.0, 401);
    // A replay of an older report, and a late one: nothing changes.
    let (status, answer) = send(SignedReport::sign(
        &key_a,
        report(&a, &created.id, "1.1.0", 1, Stage::Failed),
    ))
    .await;
    assert_eq!(status, 200);
    assert!(answer.contains("\"recorded\":false"), "{answer}");
    assert_eq!(stage(), Some(Stage::Probation));
    // Another release than the rollout's; an unknown rollout; an unknown node.
    let (status, why) = send(SignedReport::sign(
        &key_a,
        report(&a, &created.id, "1.2.0", 4, Stage::Failed),
    ))
    .await;
    assert_eq!(status, 400, "{why}");
    assert_eq!(
        send(SignedReport::sign(
            &key_a,
            report(&a, "r999", "1.1.0", 5, Stage::Failed)
        ))
        .await
        .0,
        404
    );
    let stranger = KeyPair::generate().expect("key");
    assert_eq!(
        send(SignedReport::sign(
            &stranger,
            report("0123456789abcdef", &created.id, "1.1.0", 6, Stage::Failed)
        ))
        .await
        .0,
        403
    );
    assert_eq!(stage(), Some(Stage::Probation));
    // A retired node is not heard any more.
    fleet::retire(registry.store(), &b).expect("retire");
    let (status, why) = send(SignedReport::sign(
        &key_b,
        report(&b, &created.id, "1.1.0", 1, Stage::Confirmed),
    ))
    .await;
    assert_eq!(status, 403, "{why}");
    assert_eq!(stage_of(&registry, &created.id, &b), None);
    // And the next report of a in order is.
    let (status, _) = send(SignedReport::sign(
        &key_a,
        report(&a, &created.id, "1.1.0", 7, Stage::Confirmed),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(stage(), Some(Stage::Confirmed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_shows_a_halted_rollout_its_reasons_and_the_failing_node_in_chromium() {
    use fantoccini::Locator;
    use outpost_e2e_tests::browser::{self, Browser};
    if !browser::available() {
        return;
    }
    let (registry, shared, id) = fleet_with_node(&["1.2.0", "1.1.0"]).await;
    let node = shared.node.clone();
    let _background = Background::start(&node);
    let created = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.2.0", "failed > 0% after 1"),
    )
    .expect("rollout");
    node_fleet::check(&node).await.expect("check");
    for _ in 0..3 {
        assert!(call(&node, "panic").is_err());
    }
    wait_for("the rollout to halt", || {
        matches!(
            state_of(&registry, &created.id),
            RolloutState::Halted { .. }
        )
    })
    .await;

    let browser = Browser::start().await;
    let page = &browser.client;
    page.goto(&format!("{}fleet/", registry.url))
        .await
        .expect("the fleet page loads");
    page.wait()
        .for_element(Locator::Css("#login:not([hidden]) #password"))
        .await
        .expect("the login form")
        .send_keys(&registry.page_password)
        .await
        .expect("type");
    page.find(Locator::Css("#login button[type=submit]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    let card = page
        .wait()
        .for_element(Locator::Css(&format!(
            "[data-rollout=\"{}\"][data-state=halted]",
            created.id
        )))
        .await
        .expect("the halted rollout");
    let text = card.text().await.expect("text");
    assert!(text.contains("acme/hostile@1.2.0"), "{text}");
    assert!(text.contains("rolled-back"), "the wave's counts: {text}");
    assert!(text.contains("panicked"), "the node's reason: {text}");
    let row = page
        .find(Locator::Css(&format!("tr[data-node=\"{id}\"]")))
        .await
        .expect("the node's row")
        .text()
        .await
        .expect("text");
    assert!(row.contains("failing"), "{row}");
    assert!(row.contains("acme/hostile@1.2.0: rolled-back"), "{row}");
    assert!(!row.contains("never"), "the node checked in: {row}");
    browser.screenshot("fleet-page-halted").await;

    // A new rollout, paused from the page.
    let next = rollout::create(
        registry.store(),
        &to_everyone("acme/hostile@1.1.0", "failed > 0%"),
    )
    .expect("rollout");
    page.refresh().await.expect("reload");
    page.wait()
        .for_element(Locator::Css(&format!(
            "button.pause[data-rollout=\"{}\"]",
            next.id
        )))
        .await
        .expect("the pause button")
        .click()
        .await
        .expect("click");
    page.wait()
        .for_element(Locator::Css(&format!(
            "[data-rollout=\"{}\"][data-state=paused]",
            next.id
        )))
        .await
        .expect("the page shows it paused");
    assert!(matches!(
        state_of(&registry, &next.id),
        RolloutState::Paused { .. }
    ));
    browser.close().await;
}
