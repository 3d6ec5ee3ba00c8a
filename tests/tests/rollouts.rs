//! Rollouts on a real registry: created only whole and valid, waves
//! opened as nodes settle, halted by the abort rule, steered by the
//! central team; reports from nodes outside the rollout ignored.

use outpost_e2e_tests::registry::*;
use outpost_registry::fleet::Labels;
use outpost_registry::rollout::{
    self, Progress, RolloutError, RolloutRequest, RolloutState, Stage, Steer,
};
use outpost_registry::store::RegistryStore;

/// Enrols `count` nodes labelled `region`, returning their ids.
fn enrol(store: &RegistryStore, count: usize, region: &str) -> Vec<String> {
    let labels: Labels = [("region".to_string(), region.to_string())].into();
    (0..count)
        .map(|n| enrol_key(store, &format!("stall-{n}"), labels.clone()).1)
        .collect()
}

fn request(release: &str, select: &str, waves: &[u32], rule: &str) -> RolloutRequest {
    RolloutRequest {
        release: release.into(),
        select: select.into(),
        waves: waves.to_vec(),
        probation_seconds: 1800,
        abort_when: rule.into(),
        rollback: true,
        offline_after_seconds: 24 * 3600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_refused_whole_when_any_part_is_wrong() {
    let registry = registry_with_hostile("1.3.0").await;
    let store = registry.store();
    enrol(store, 3, "north");
    // A namespace's pushed but never published bytes are not a release.
    let cases = [
        (
            request("acme/hostile@9.9.9", "", &[100], "failed > 5%"),
            "not a release the registry holds signed",
        ),
        (
            request("bob/hostile@1.3.0", "", &[100], "failed > 5%"),
            "not a release the registry holds signed",
        ),
        (
            request("acme/hostile@^1", "", &[100], "failed > 5%"),
            "an exact version",
        ),
        (
            request("acme/hostile@1.3.0", "region=south", &[100], "failed > 5%"),
            "matches no active node",
        ),
        (
            request("acme/hostile@1.3.0", "Region=north", &[100], "failed > 5%"),
            "is not a label",
        ),
        (
            request("acme/hostile@1.3.0", "", &[10, 50], "failed > 5%"),
            "end at 100",
        ),
        (
            request("acme/hostile@1.3.0", "", &[50, 10, 100], "failed > 5%"),
            "rise strictly",
        ),
        (
            request("acme/hostile@1.3.0", "", &[100], "more than 5 failed"),
            "is not an abort rule",
        ),
    ];
    for (request, expected) in cases {
        let refused = rollout::create(store, &request).expect_err(expected);
        assert!(refused.to_string().contains(expected), "{refused}");
    }
    let mut short = request("acme/hostile@1.3.0", "", &[100], "failed > 5%");
    short.probation_seconds = 5;
    assert!(matches!(
        rollout::create(store, &short),
        Err(RolloutError::BadProbation)
    ));
    assert!(
        store.rollouts().expect("rollouts").is_empty(),
        "nothing stored"
    );

    let created = rollout::create(
        store,
        &request(
            "acme/hostile@1.3.0",
            "region=north",
            &[50, 100],
            "failed > 5%",
        ),
    )
    .expect("a good rollout");
    assert_eq!(created.id, "r1");
    assert_eq!(created.nodes.len(), 3);
    assert_eq!(created.wave_ends, vec![2, 3]);
    assert!(created.digest.starts_with("sha256:"));
    // One at a time per plugin.
    let busy = rollout::create(
        store,
        &request("acme/hostile@1.3.0", "", &[100], "failed > 5%"),
    )
    .expect_err("busy");
    assert!(
        busy.to_string().contains("already has rollout r1"),
        "{busy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_open_as_nodes_confirm_and_the_abort_rule_halts_the_rollout() {
    let registry = registry_with_hostile("1.3.0").await;
    let store = registry.store();
    let north = enrol(store, 10, "north");
    let south = enrol(store, 2, "south");
    let created = rollout::create(
        store,
        &request(
            "acme/hostile@1.3.0",
            "region=north",
            &[20, 50, 100],
            "failed > 25% after 4",
        ),
    )
    .expect("rollout");
    assert_eq!(created.wave_ends, vec![2, 5, 10]);
    let now = created.created_at + 60;
    // Numbered as a node numbers its reports: each higher than the last.
    let sequence = std::cell::Cell::new(0);
    let report = |node: &str, stage: Stage, reason: Option<&str>| {
        sequence.set(sequence.get() + 1);
        rollout::record(
            store,
            &created.id,
            node,
            &Progress {
                stage,
                reason: reason.map(str::to_string),
                reported_at: now,
                sequence: sequence.get(),
            },
            now,
        )
        .map(rollout::Recorded::into_rollout)
    };
    // A node the rollout did not select is not heard.
    let outsider = report(&south[0], Stage::Confirmed, None).expect_err("not selected");
    assert!(
        matches!(outsider, RolloutError::NotInRollout { .. }),
        "{outsider}"
    );
    assert!(!north.is_empty());

    let wave_1 = &created.nodes[..2];
    report(&wave_1[0], Stage::Probation, None).expect("report");
    let after = report(&wave_1[1], Stage::Confirmed, None).expect("report");
    assert_eq!(
        after.state,
        RolloutState::Running { wave: 0 },
        "one still on probation"
    );
    let after = report(&wave_1[0], Stage::Confirmed, None).expect("report");
    assert_eq!(after.state, RolloutState::Running { wave: 1 });

    // Wave 2: two of three fail; with 4 done and 2 failed (50% > 25%) it halts.
    let wave_2 = &created.nodes[2..5];
    report(
        &wave_2[0],
        Stage::RolledBack,
        Some("health: printer not found"),
    )
    .expect("report");
    let after =
        report(&wave_2[1], Stage::Failed, Some("migrate: schema 3 unknown")).expect("report");
    let RolloutState::Halted { wave, reason, .. } = &after.state else {
        panic!("{:?}", after.state);
    };
    assert_eq!(*wave, 1);
    assert!(
        reason.starts_with("2 of 4 nodes done failed (50.0%)"),
        "{reason}"
    );

    let status = rollout::status_of(store, &created.id).expect("status");
    assert_eq!(status.waves[0].counts.get("confirmed"), Some(&2));
    assert_eq!(status.waves[1].counts.get("rolled-back"), Some(&1));
    assert_eq!(status.waves[1].counts.get("failed"), Some(&1));
    assert_eq!(status.waves[1].counts.get("pending"), Some(&1));
    assert!(!status.waves[2].open);
    assert_eq!(status.reasons.get("health: printer not found"), Some(&1));
    // Halted is final: it cannot be resumed or paused.
    let refused = rollout::steer(store, &created.id, Steer::Resume).expect_err("halted");
    assert!(refused.to_string().contains("is halted"), "{refused}");
    // A new rollout of the plugin may start now.
    rollout::create(
        store,
        &request("acme/hostile@1.3.0", "region=south", &[100], "failed > 5%"),
    )
    .expect("the plugin is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_team_pauses_resumes_and_aborts() {
    let registry = registry_with_hostile("1.3.0").await;
    let store = registry.store();
    enrol(store, 2, "north");
    let created = rollout::create(
        store,
        &request("acme/hostile@1.3.0", "", &[50, 100], "failed > 5%"),
    )
    .expect("rollout");
    let now = created.created_at + 60;
    let paused = rollout::steer(store, &created.id, Steer::Pause).expect("pause");
    assert_eq!(paused.state, RolloutState::Paused { wave: 0 });
    // Paused: a settled wave does not open the next.
    let confirmed = Progress {
        stage: Stage::Confirmed,
        reason: None,
        reported_at: now,
        sequence: 1,
    };
    let after = rollout::record(store, &created.id, &created.nodes[0], &confirmed, now)
        .expect("report")
        .into_rollout();
    assert_eq!(after.state, RolloutState::Paused { wave: 0 });
    let twice = rollout::steer(store, &created.id, Steer::Pause).expect_err("paused already");
    assert!(twice.to_string().contains("cannot be paused"), "{twice}");
    rollout::steer(store, &created.id, Steer::Resume).expect("resume");
    let moved = rollout::advance(store, &created.id, now).expect("advance");
    assert_eq!(moved.state, RolloutState::Running { wave: 1 });
    let aborted = rollout::steer(store, &created.id, Steer::Abort).expect("abort");
    assert!(matches!(
        aborted.state,
        RolloutState::Aborted { wave: 1, .. }
    ));
    assert!(rollout::steer(store, "r99", Steer::Abort).is_err());
}

/// A handful of nodes in waves 1,10,50,100: empty waves are skipped, not
/// waited on; a node whose wave has not opened is not heard yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_waves_are_stepped_over_and_unreached_nodes_are_not_heard() {
    let registry = registry_with_hostile("1.3.0").await;
    let store = registry.store();
    enrol(store, 3, "north");
    let created = rollout::create(
        store,
        &request(
            "acme/hostile@1.3.0",
            "",
            &[1, 10, 50, 100],
            "failed > 50% after 3",
        ),
    )
    .expect("rollout");
    assert_eq!(created.wave_ends, vec![1, 1, 2, 3]);
    let now = created.created_at + 60;
    let confirmed = Progress {
        stage: Stage::Confirmed,
        reason: None,
        reported_at: 0,
        sequence: 1,
    };
    let early = rollout::record(store, &created.id, &created.nodes[2], &confirmed, now)
        .expect_err("its wave is not open");
    assert!(early.to_string().contains("not in an open wave"), "{early}");
    let after = rollout::record(store, &created.id, &created.nodes[0], &confirmed, now)
        .expect("report")
        .into_rollout();
    // Wave 2 is empty: the rollout goes straight on to wave 3.
    assert_eq!(after.state, RolloutState::Running { wave: 2 });
    let progress = store.rollout_progress(&created.id).expect("progress");
    assert_eq!(
        progress[&created.nodes[0]].reported_at, now,
        "the registry's clock, not the node's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_waiting_only_for_silent_nodes_moves_on_when_they_count_as_offline() {
    let registry = registry_with_hostile("1.3.0").await;
    let store = registry.store();
    enrol(store, 4, "north");
    let created = rollout::create(
        store,
        &request("acme/hostile@1.3.0", "", &[50, 100], "failed > 50% after 2"),
    )
    .expect("create");
    let now = created.created_at + 60;
    let confirmed = Progress {
        stage: Stage::Confirmed,
        reason: None,
        reported_at: now,
        sequence: 1,
    };
    rollout::record(store, &created.id, &created.nodes[0], &confirmed, now).expect("report");
    // The other node of wave 1 is silent: nothing moves while it may yet
    // report, whoever looks.
    assert!(
        rollout::advance_running(store, now + 3600)
            .expect("tick")
            .is_empty()
    );
    let later = now + 24 * 3600 + 61;
    let moved = rollout::advance_running(store, later).expect("tick");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].state, RolloutState::Running { wave: 1 });
}
