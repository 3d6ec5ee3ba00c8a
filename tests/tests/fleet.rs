//! Enrolment: a node joins the fleet with a one-time token and its own
//! key; the central team labels, selects and retires nodes; every bad
//! enrolment is refused with nothing stored and the token left unspent.

use outpost::control::ControlError;
use outpost::control::fleet::{self as node_fleet, JoinRequest};
use outpost_e2e_tests::TestNode;
use outpost_e2e_tests::registry::*;
use outpost_e2e_tests::tls::TestCa;
use outpost_registry::fleet::{self, EnrolRequest, JoinError, LabelChange, Labels, Selector};
use outpost_registry::keys::KeyPair;
use outpost_registry::store::EnrolmentToken;
use outpost_registry::tls::ClientTls;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn join_request(registry: &TestRegistry, token: &str, own: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        registry: registry.url.to_string(),
        token: token.to_string(),
        labels: labels(own),
        name: Some("stall-1".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_enrols_once_and_the_central_team_labels_selects_and_retires_it() {
    let registry = TestRegistry::start(test_config()).await;
    let issued =
        fleet::issue_enrolment_token(registry.store(), labels(&[("region", "north")]), 3600)
            .expect("token");
    let node = TestNode::new();
    let joined = node_fleet::join(
        &node.node,
        &join_request(
            &registry,
            &issued.token,
            &[("site", "market-hall"), ("region", "south")],
        ),
    )
    .await
    .expect("join");
    // The token's labels are the central team's and win over the node's.
    assert_eq!(
        joined.labels,
        labels(&[("region", "north"), ("site", "market-hall")])
    );
    let identity = outpost::fleet::identity(node.node.data_dir()).expect("identity");
    assert_eq!(joined.node_id, fleet::node_id(&identity.public()));
    assert_eq!(
        node.node.store().membership().expect("read"),
        Some(joined.clone())
    );
    let listed = fleet::list(registry.store(), &Selector::default(), false).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, joined.node_id);
    assert_eq!(listed[0].name, "stall-1");

    // The token is spent: a second node cannot use it.
    let other = TestNode::new();
    let refused = node_fleet::join(&other.node, &join_request(&registry, &issued.token, &[]))
        .await
        .expect_err("a spent token");
    assert!(
        refused
            .to_string()
            .contains(&format!("already used (by node {})", joined.node_id)),
        "{refused}"
    );
    assert_eq!(other.node.store().membership().expect("read"), None);
    // And the node cannot join a second fleet (or this one twice).
    let again = fleet::issue_enrolment_token(registry.store(), Labels::new(), 3600).expect("token");
    let twice = node_fleet::join(&node.node, &join_request(&registry, &again.token, &[]))
        .await
        .expect_err("already a member");
    assert!(matches!(twice, ControlError::Conflict(_)), "{twice}");

    let prefix = &joined.node_id[..6];
    let relabelled = fleet::label(
        registry.store(),
        prefix,
        &LabelChange {
            set: labels(&[("kind", "bakery")]),
            remove: vec!["site".into()],
        },
    )
    .expect("label");
    assert_eq!(
        relabelled.labels,
        labels(&[("kind", "bakery"), ("region", "north")])
    );
    let north = Selector::parse("region=north,kind=bakery").expect("selector");
    assert_eq!(
        fleet::list(registry.store(), &north, false)
            .expect("list")
            .len(),
        1
    );
    let south = Selector::parse("region=south").expect("selector");
    assert!(
        fleet::list(registry.store(), &south, false)
            .expect("list")
            .is_empty()
    );

    let retired = fleet::retire(registry.store(), prefix).expect("retire");
    assert!(retired.retired_at.is_some());
    assert!(
        fleet::list(registry.store(), &Selector::default(), false)
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        fleet::list(registry.store(), &Selector::default(), true)
            .expect("list")
            .len(),
        1
    );
    assert!(
        fleet::active_node(registry.store(), &joined.node_id)
            .expect("read")
            .is_none(),
        "a retired node is not an active one"
    );
    // Its key cannot come back with a fresh token.
    let request = EnrolRequest::new(&identity, &again.token, "stall-1", Labels::new());
    let back = fleet::enrol(registry.store(), &request).expect_err("retired");
    assert!(back.to_string().contains("was retired"), "{back}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_enrolments_are_refused_and_store_nothing() {
    let registry = TestRegistry::start(test_config()).await;
    let issued =
        fleet::issue_enrolment_token(registry.store(), Labels::new(), 3600).expect("token");
    let key = KeyPair::generate().expect("key");
    let send = |request: EnrolRequest| {
        let url = registry.url.clone();
        async move { fleet::join(&url, &ClientTls::system(), &request).await }
    };
    let status_of = |error: JoinError| match error {
        JoinError::Refused { status, message } => (status, message),
        other => panic!("not a refusal: {other}"),
    };

    // A token nobody issued.
    let (status, message) = status_of(
        send(EnrolRequest::new(
            &key,
            "ope_made-up",
            "stall-1",
            Labels::new(),
        ))
        .await
        .expect_err("unknown token"),
    );
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("not known here"), "{message}");

    // A request whose proof another key made: copied from another node.
    let thief = KeyPair::generate().expect("key");
    let mut forged = EnrolRequest::new(&thief, &issued.token, "stall-1", Labels::new());
    forged.key = key.public();
    let (status, message) = status_of(send(forged).await.expect_err("forged"));
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("not signed by the node key"), "{message}");

    // A request seen on the way, sent first with other labels or name.
    let mut relabelled = EnrolRequest::new(&key, &issued.token, "stall-1", Labels::new());
    relabelled.labels = labels(&[("region", "elsewhere")]);
    let (status, _) = status_of(send(relabelled).await.expect_err("labels not signed"));
    assert_eq!(status, 403);
    let mut renamed = EnrolRequest::new(&key, &issued.token, "stall-1", Labels::new());
    renamed.name = "decoy".into();
    let (status, _) = status_of(send(renamed).await.expect_err("name not signed"));
    assert_eq!(status, 403);

    // Labels and names that could not be selected on.
    for (name, label) in [
        ("stall 1", ("site", "hall")),
        ("stall-1", ("Site", "hall")),
        ("stall-1", ("site", "market hall")),
    ] {
        let request = EnrolRequest::new(&key, &issued.token, name, labels(&[label]));
        let (status, message) = status_of(send(request).await.expect_err("bad label"));
        assert_eq!(status, 400, "{message}");
    }
    let too_many: Labels = (0..40)
        .map(|n| (format!("k{n}"), "v".to_string()))
        .collect();
    let request = EnrolRequest::new(&key, &issued.token, "stall-1", too_many);
    let (status, message) = status_of(send(request).await.expect_err("too many labels"));
    assert_eq!(status, 400, "{message}");

    // An expired token.
    registry
        .store()
        .add_enrolment_token(
            &hex_sha256("ope_expired"),
            &EnrolmentToken {
                labels: Labels::new(),
                created_at: 1,
                expires_at: 2,
                used_by: None,
            },
        )
        .expect("token");
    let (status, message) = status_of(
        send(EnrolRequest::new(
            &key,
            "ope_expired",
            "stall-1",
            Labels::new(),
        ))
        .await
        .expect_err("expired"),
    );
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("expired at 1970-01-01"), "{message}");

    // None of that enrolled anything or spent the token: it still works.
    assert!(registry.store().nodes().expect("nodes").is_empty());
    let enrolled = send(EnrolRequest::new(
        &key,
        &issued.token,
        "stall-1",
        Labels::new(),
    ))
    .await
    .expect("the token was never spent");
    assert_eq!(enrolled.id, fleet::node_id(&key.public()));

    // A token valid for no time at all is refused when it is made.
    assert!(fleet::issue_enrolment_token(registry.store(), Labels::new(), 0).is_err());
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_over_https_trusting_the_fleet_ca() {
    let ca = TestCa::new("Outpost fleet test CA");
    let registry = TestRegistry::start_https(test_config(), &ca).await;
    let node = TestNode::new();
    outpost::releases::provision(
        node.node.store(),
        std::path::Path::new("root.json"),
        &registry.root_json,
        Some(&registry.url),
        Some(&outpost::releases::ProvisionedCa {
            pem: ca.ca_pem.clone(),
            file: "ca.pem".into(),
        }),
    )
    .expect("provision");
    let issued =
        fleet::issue_enrolment_token(registry.store(), Labels::new(), 3600).expect("token");
    let joined = node_fleet::join(&node.node, &join_request(&registry, &issued.token, &[]))
        .await
        .expect("join over HTTPS");
    assert!(joined.registry.starts_with("https://"));

    // Enrolment tokens are never sent in clear off this machine.
    let other = TestNode::new();
    let mut request = join_request(&registry, &issued.token, &[]);
    request.registry = "http://192.0.2.7:7272".into();
    let refused = node_fleet::join(&other.node, &request)
        .await
        .expect_err("plain HTTP off loopback");
    assert!(
        refused.to_string().contains("https://192.0.2.7:7272"),
        "{refused}"
    );
}

/// One key is one node however its JSON is spelled, a key the registry
/// cannot canonicalise is refused (not a crash), and a node whose answer
/// was lost gets it again with the token it spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_one_node_and_a_lost_answer_can_be_asked_again() {
    let registry = TestRegistry::start(test_config()).await;
    let store = registry.store();
    let key = KeyPair::generate().expect("key");
    let first = fleet::issue_enrolment_token(store, Labels::new(), 3600).expect("token");
    let enrolled = fleet::enrol(
        store,
        &EnrolRequest::new(&key, &first.token, "stall-1", Labels::new()),
    )
    .expect("enrol");
    let again = fleet::enrol(
        store,
        &EnrolRequest::new(&key, &first.token, "stall-1", Labels::new()),
    )
    .expect("the same node, the same token: its answer again");
    assert_eq!(again, enrolled);

    // The same key with extra fields and upper-case hex, properly signed.
    let second = fleet::issue_enrolment_token(store, Labels::new(), 3600).expect("token");
    let mut respelled = EnrolRequest::new(&key, &second.token, "stall-1", Labels::new());
    let mut json = serde_json::to_value(&respelled.key).expect("json");
    json["keyval"]["extra"] = serde_json::json!(1.5);
    json["keyval"]["public"] = serde_json::json!(
        json["keyval"]["public"]
            .as_str()
            .expect("hex")
            .to_uppercase()
    );
    json["x"] = serde_json::json!({ "y": [1, 2] });
    respelled.key = serde_json::from_value(json).expect("a key still");
    let refused = fleet::enrol(store, &respelled).expect_err("the same key");
    assert!(
        refused.to_string().contains("enrolled already"),
        "{refused}"
    );
    assert_eq!(store.nodes().expect("nodes").len(), 1);

    // Through the API too: a refusal, never a dropped connection.
    let sent = fleet::join(&registry.url, &ClientTls::system(), &respelled)
        .await
        .expect_err("refused");
    assert!(
        matches!(sent, JoinError::Refused { status: 409, .. }),
        "{sent}"
    );
}
