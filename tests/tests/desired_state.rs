//! The director's word to a node: what its rollouts ask, signed by the key
//! the root delegates, for that node, newer than the last, unexpired; and
//! nothing at all for a node that is unknown, retired or not itself.

use outpost::control::fleet as node_fleet;
use outpost_e2e_tests::registry::*;
use outpost_e2e_tests::{SharedNode, TestNode};
use outpost_registry::desired::{self, Action, DESIRED_STATE_TYPE, DesiredError, DesiredState};
use outpost_registry::fleet::{self, EnrolRequest, JoinError, Labels};
use outpost_registry::keys::KeyPair;
use outpost_registry::rollout::{self, RolloutRequest, Steer};
use outpost_registry::tls::ClientTls;
use outpost_registry::tough::schema::{Root, Signed};

async fn joined_node(registry: &TestRegistry) -> (SharedNode, String) {
    let node = TestNode::new().shared();
    provision(&node.node, &registry.root_json, &registry.url);
    let id = join_fleet(registry, &node.node).await;
    (node, id)
}

fn everyone(release: &str) -> RolloutRequest {
    RolloutRequest {
        release: release.into(),
        select: String::new(),
        waves: vec![100],
        probation_seconds: 600,
        abort_when: "failed > 5%".into(),
        rollback: true,
        offline_after_seconds: 24 * 3600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_what_its_rollouts_ask_signed_by_the_director() {
    let registry = registry_with_hostile("1.3.0").await;
    let (node, id) = joined_node(&registry).await;
    let first = node_fleet::check(&node.node).await.expect("check");
    let state = first.desired.expect("a desired state");
    assert_eq!((state.version, state.releases.len()), (0, 0));

    let created =
        rollout::create(registry.store(), &everyone("acme/hostile@1.3.0")).expect("rollout");
    assert_eq!(created.nodes, vec![id.clone()]);
    let asked = node_fleet::check(&node.node).await.expect("check");
    assert!(!asked.unchanged);
    let state = asked.desired.expect("a desired state");
    assert!(state.version >= 1);
    assert_eq!(state.releases.len(), 1);
    let release = &state.releases[0];
    assert_eq!(
        (
            release.plugin.as_str(),
            release.version.to_string(),
            &release.action
        ),
        ("acme/hostile", "1.3.0".to_string(), &Action::Install)
    );
    assert_eq!(release.digest, created.digest);
    assert_eq!(
        node.node.store().desired_state().expect("read"),
        Some(state.clone())
    );

    // Nothing new: the registry answers 304 and the node keeps its copy.
    let again = node_fleet::check(&node.node).await.expect("check");
    assert!(again.unchanged);
    assert_eq!(again.desired, Some(state.clone()));

    rollout::steer(registry.store(), &created.id, Steer::Abort).expect("abort");
    let back = node_fleet::check(&node.node).await.expect("check");
    let back = back.desired.expect("a desired state");
    assert!(back.version > state.version);
    assert_eq!(back.releases[0].action, Action::RollBack);
}

fn root_of(registry: &TestRegistry) -> Root {
    let root: Signed<Root> = serde_json::from_slice(&registry.root_json).expect("root");
    root.signed
}

fn state_for(node: &str, version: u64, expires: u64) -> DesiredState {
    DesiredState {
        kind: DESIRED_STATE_TYPE.into(),
        node: node.into(),
        version,
        expires,
        releases: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_state_is_refused_unless_the_director_signed_it_for_this_node_newer_and_fresh() {
    let registry = registry_with_hostile("1.3.0").await;
    let root = root_of(&registry);
    let director = registry.online.director.clone().expect("a director key");
    let now = 2_000_000_000;
    let bytes = |state: DesiredState, key: &KeyPair| {
        serde_json::to_vec(&desired::sign(state, &[key])).expect("json")
    };
    let good = bytes(state_for("n1", 5, now + 60), &director);
    desired::verify(&good, &root, "n1", Some(5), now).expect("the director's, for n1");

    // Any other key: the registry's targets key, a vendor's, a stranger's.
    for key in [
        &registry.online.targets,
        &registry.acme.key,
        &KeyPair::generate().expect("key"),
    ] {
        let forged = bytes(state_for("n1", 6, now + 60), key);
        let refused = desired::verify(&forged, &root, "n1", Some(5), now).expect_err("forged");
        assert!(
            matches!(
                refused,
                DesiredError::UnderSigned {
                    valid: 0,
                    threshold: 1
                }
            ),
            "{refused}"
        );
    }
    // The director's signature on a changed document.
    let mut tampered: serde_json::Value = serde_json::from_slice(&good).expect("json");
    tampered["signed"]["version"] = serde_json::json!(9);
    let tampered = serde_json::to_vec(&tampered).expect("json");
    assert!(matches!(
        desired::verify(&tampered, &root, "n1", Some(5), now),
        Err(DesiredError::UnderSigned { .. })
    ));
    let other = desired::verify(&good, &root, "n2", None, now).expect_err("other node");
    assert!(matches!(other, DesiredError::OtherNode { .. }), "{other}");
    let replay = desired::verify(&good, &root, "n1", Some(6), now).expect_err("replayed");
    assert!(
        matches!(replay, DesiredError::Replayed { got: 5, seen: 6 }),
        "{replay}"
    );
    let stale = bytes(state_for("n1", 7, now - 1), &director);
    let expired = desired::verify(&stale, &root, "n1", Some(5), now).expect_err("expired");
    assert!(expired.to_string().contains("expired at"), "{expired}");
    // A root without a director cannot accept one at all.
    let mut bare = root.clone();
    bare._extra.clear();
    assert!(matches!(
        desired::verify(&good, &bare, "n1", None, now),
        Err(DesiredError::NoDirector)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_active_node_signing_for_itself_gets_its_desired_state() {
    let registry = registry_with_hostile("1.3.0").await;
    let store = registry.store();
    let tls = ClientTls::system();
    let enrol = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let token = fleet::issue_enrolment_token(store, Labels::new(), 3600).expect("token");
        let id = fleet::enrol(
            store,
            &EnrolRequest::new(&key, &token.token, name, Labels::new()),
        )
        .expect("enrol")
        .id;
        (key, id)
    };
    let (key, id) = enrol("stall-1");
    let (other_key, other_id) = enrol("stall-2");
    let status = |result: Result<Option<Vec<u8>>, JoinError>| match result {
        Err(JoinError::Refused { status, message }) => (status, message),
        other => panic!("not refused: {other:?}"),
    };
    fleet::fetch_desired_state(&registry.url, &tls, &key, &id, None)
        .await
        .expect("its own")
        .expect("a document");
    // Signed by another node's key, or asking for another node.
    let (code, _) =
        status(fleet::fetch_desired_state(&registry.url, &tls, &other_key, &id, None).await);
    assert_eq!(code, 401);
    let stranger = KeyPair::generate().expect("key");
    let (code, message) = status(
        fleet::fetch_desired_state(&registry.url, &tls, &stranger, "0123456789abcdef", None).await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("not an active node"), "{message}");
    fleet::retire(store, &other_id).expect("retire");
    let (code, message) =
        status(fleet::fetch_desired_state(&registry.url, &tls, &other_key, &other_id, None).await);
    assert_eq!(code, 403, "{message}");

    // Paths that only look like the route.
    let http = Http::new(&registry.url);
    for path in [
        "/fleet/v1/nodes/desired-state",
        "/fleet/v1/nodes//desired-state",
        "/fleet/v1/nodes/a/b/desired-state",
    ] {
        let (code, _, _) = http.get(path).await;
        assert_eq!(code.as_u16(), 404, "{path}");
    }

    // A node whose clock is an hour off is told so.
    let path = format!("/fleet/v1/nodes/{id}/desired-state");
    let an_hour_ago = outpost_registry::store::now_seconds() - 3600;
    let authorization = fleet::sign_request(&key, &id, "GET", &path, an_hour_ago);
    let (code, _, body) = http
        .send(
            hyper::Method::GET,
            &path,
            None,
            &[("authorization", authorization.as_str())],
            Vec::new(),
        )
        .await;
    assert_eq!(code.as_u16(), 401);
    let message = Http::message(&body);
    assert!(message.contains("more than 5 minutes apart"), "{message}");
}
