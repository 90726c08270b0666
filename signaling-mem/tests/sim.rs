//! The simulated network: negotiations converge under delay, jitter, duplication and
//! reordering; partitions surface as failures within the timeout; runs are deterministic.
// Tests take one base instant from the clock; nothing else reads it.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use signaling_core::negotiation::{Config, NegotiationFailure, SignalingState};
use signaling_mem::sim::{LinkConfig, Node, NodeId, PeerScript, Scenario, SimNet, SimPeer};
use signaling_mem::strategy;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_scenario_converges(scenario in strategy::scenario(), seed: u64) {
        let run = scenario.run(seed, Instant::now(), 100_000).expect("settles");
        prop_assert_eq!(run.check(), Ok(()));
        let [a, b] = run.net.nodes() else { unreachable!() };
        let exchanges = 1 + u32::from(scenario.restart) + u32::from(scenario.glare);
        prop_assert!(a.negotiated() >= exchanges && b.negotiated() >= exchanges);
        if scenario.restart {
            prop_assert_eq!(a.remote_ufrag(), Some(b.local_ufrag()));
            prop_assert_eq!(b.remote_ufrag(), Some(a.local_ufrag()));
        }
    }
}

fn two_peers(link: LinkConfig, timeout: Duration) -> (SimNet<SimPeer>, NodeId, NodeId) {
    let mut net = SimNet::new(1, Instant::now());
    let config = |polite| Config::new(polite).with_negotiation_timeout(timeout);
    let a = net.add_node(SimPeer::new("a", config(false), PeerScript::default()));
    let b = net.add_node(SimPeer::new("b", config(true), PeerScript::default()));
    net.node_mut(a).set_remote(b);
    net.node_mut(b).set_remote(a);
    net.connect(a, b, link);
    (net, a, b)
}

#[test]
fn a_partition_is_a_failure_within_the_timeout_not_a_hang() {
    let timeout = Duration::from_secs(10);
    let (mut net, a, b) = two_peers(LinkConfig::default(), timeout);
    net.partition(a, b);
    let now = net.now();
    net.node_mut(a).offer(now);
    net.drive(10_000).expect("settles");
    assert_eq!(
        net.node(a).failures(),
        &[NegotiationFailure::Timeout {
            state: SignalingState::HaveLocalOffer
        }]
    );
    assert_eq!(net.elapsed(), timeout, "reported exactly at the deadline");
    assert!(net.stats().blocked > 0);
    // Healing and retrying converges.
    net.heal(a, b);
    let now = net.now();
    net.node_mut(a)
        .negotiation_mut()
        .rollback(now)
        .expect("rollback");
    net.node_mut(a).offer(now);
    net.drive(10_000).expect("settles");
    assert_eq!(
        net.node(a).negotiation().signaling_state(),
        SignalingState::Stable
    );
    assert_eq!(
        net.node(b).negotiation().signaling_state(),
        SignalingState::Stable
    );
}

#[test]
fn a_partition_mid_exchange_drops_frames_in_flight() {
    let (mut net, a, b) = two_peers(
        LinkConfig::default().with_delay(Duration::from_millis(100)),
        Duration::from_secs(5),
    );
    let now = net.now();
    net.node_mut(a).offer(now);
    net.flush();
    assert_eq!(net.in_flight(), 1);
    net.partition(a, b);
    assert_eq!(net.in_flight(), 0);
    net.drive(10_000).expect("settles");
    assert_eq!(net.node(a).failures().len(), 1);
    assert!(net.node(b).negotiation().remote_description().is_none());
}

#[test]
fn runs_are_deterministic_per_seed() {
    let scenario = Scenario {
        link: LinkConfig::default()
            .with_jitter(Duration::from_millis(80))
            .with_duplicate(0.3)
            .with_loss(0.1),
        glare: true,
        ..Scenario::default()
    };
    let fingerprint = |seed| {
        let run = scenario
            .run(seed, Instant::now(), 100_000)
            .expect("settles");
        (run.steps, run.net.stats(), run.net.elapsed())
    };
    assert_eq!(fingerprint(42), fingerprint(42));
    let differs = (0..20).any(|s| fingerprint(s) != fingerprint(42));
    assert!(differs, "the seed drives the faults");
}

#[test]
fn duplicates_and_reordering_happen_and_are_absorbed() {
    let script = PeerScript {
        candidates: 6,
        end_of_candidates: false,
        ..PeerScript::default()
    };
    let scenario = Scenario {
        link: LinkConfig::default()
            .with_jitter(Duration::from_millis(50))
            .with_duplicate(0.5)
            .unordered(),
        a: script.clone(),
        b: script,
        ..Scenario::default()
    };
    let run = scenario.run(3, Instant::now(), 100_000).expect("settles");
    assert!(run.net.stats().duplicated > 0);
    run.check().expect("converged");
    let [a, b] = run.net.nodes() else {
        unreachable!()
    };
    assert!(
        a.negotiation().stats().duplicates_suppressed
            + b.negotiation().stats().duplicates_suppressed
            > 0
    );
}

/// Two nodes that answer every frame with a frame: a loop that never settles.
struct PingPong(NodeId, Vec<String>);

impl Node for PingPong {
    fn handle_frame(&mut self, _now: Instant, _from: NodeId, frame: &str) {
        self.1.push(frame.to_owned());
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self, _now: Instant) -> Option<(NodeId, String)> {
        self.1.pop().map(|f| (self.0, f))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

#[test]
fn a_loop_that_never_settles_is_reported() {
    let mut net = SimNet::new(0, Instant::now());
    let a = net.add_node(PingPong(NodeId(1), vec!["ping".into()]));
    let b = net.add_node(PingPong(NodeId(0), Vec::new()));
    net.connect(a, b, LinkConfig::default());
    let err = net.drive(1000).expect_err("never settles");
    assert_eq!(err.steps, 1000);
}

#[test]
fn lossy_links_either_converge_or_fail_by_timeout() {
    for seed in 0..200 {
        let scenario = Scenario {
            link: LinkConfig::default()
                .with_loss(0.2)
                .with_jitter(Duration::from_millis(20)),
            timeout: Duration::from_secs(3),
            ..Scenario::default()
        };
        let run = scenario
            .run(seed, Instant::now(), 100_000)
            .expect("settles: loss never hangs");
        let [a, b] = run.net.nodes() else {
            unreachable!()
        };
        let failed = !a.failures().is_empty() || !b.failures().is_empty();
        let stable = a.negotiation().signaling_state() == SignalingState::Stable
            && b.negotiation().signaling_state() == SignalingState::Stable;
        assert!(
            failed || stable,
            "seed {seed}: neither converged nor failed"
        );
        assert!(run.net.elapsed() <= Duration::from_secs(4), "seed {seed}");
    }
}
