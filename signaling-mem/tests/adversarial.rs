//! Two negotiations joined by an adversarial network: every interleaving of deliveries and
//! gathering that proptest can find, with duplicated candidates, and reordering on links that
//! allow it.
//! They always converge: both `stable`, every candidate applied exactly once, none before its
//! description or under the wrong ICE generation; glare resolves whichever side is polite.
// Tests take one base instant from the clock; nothing else reads it.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use signaling_core::negotiation::Config;
use signaling_core::wire::Dialect;
use signaling_mem::sim::{check_converged, Node, NodeId, PeerScript, SimPeer};

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Deliver a frame in flight in direction `dir` (the oldest on ordered links, any on
    /// unordered ones), keeping a copy when `dup`.
    Deliver { dir: usize, pick: usize, dup: bool },
    /// Let peer `p`'s stack gather its next candidate.
    Gather(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, any::<usize>(), proptest::bool::weighted(0.15))
            .prop_map(|(dir, pick, dup)| Step::Deliver { dir, pick, dup }),
        2 => (0..2usize).prop_map(Step::Gather),
    ]
}

struct World {
    peers: [SimPeer; 2],
    links: [Vec<String>; 2],
    ordered: bool,
    dups_left: u32,
    now: Instant,
}

impl World {
    fn new(dialect: Dialect, polite_first: bool, script: PeerScript, ordered: bool) -> Self {
        let config = |polite| Config::new(polite).with_dialect(dialect);
        let mut a = SimPeer::new("a", config(polite_first), script.clone());
        let mut b = SimPeer::new("b", config(!polite_first), script);
        a.set_remote(NodeId(1));
        b.set_remote(NodeId(0));
        Self {
            peers: [a, b],
            links: [Vec::new(), Vec::new()],
            ordered,
            dups_left: 8,
            now: Instant::now(),
        }
    }

    fn flush(&mut self) {
        for (i, p) in self.peers.iter_mut().enumerate() {
            while let Some((_, frame)) = p.poll_transmit(self.now) {
                self.links[i].push(frame);
            }
        }
    }

    /// Time moves one millisecond per gathering step: far from any negotiation timeout.
    fn gather(&mut self, p: usize) -> bool {
        match self.peers[p].poll_timeout() {
            Some(at) if at <= self.now + Duration::from_millis(1) => {
                self.now += Duration::from_millis(1);
                self.peers[p].handle_timeout(self.now);
                true
            }
            _ => false,
        }
    }

    /// Delivers a frame; with `keep`, a copy stays in flight to be delivered again later, for
    /// candidates only. A description delivered twice is a duplicate only while it is in force
    /// (see the negotiation tests); a copy arriving after the peer reacted to it cannot be told
    /// from the peer sending it again, which RFC 3264 makes a new round, as a browser does.
    fn deliver(&mut self, dir: usize, index: usize, keep: bool) {
        let candidate = self.links[dir][index].starts_with(r#"{"type":"webrtc/candidate""#);
        let frame = if keep && candidate {
            self.links[dir][index].clone()
        } else {
            self.links[dir].remove(index)
        };
        self.peers[1 - dir].handle_frame(self.now, NodeId(dir), &frame);
    }

    fn run(&mut self, steps: &[Step]) {
        self.flush();
        for s in steps {
            match *s {
                Step::Deliver { dir, pick, dup } => {
                    if self.links[dir].is_empty() {
                        continue;
                    }
                    let i = if self.ordered {
                        0
                    } else {
                        pick % self.links[dir].len()
                    };
                    let keep = dup && self.dups_left > 0;
                    if keep {
                        self.dups_left -= 1;
                    }
                    self.deliver(dir, i, keep);
                }
                Step::Gather(p) => {
                    self.gather(p);
                }
            }
            self.flush();
        }
        // Then let everything settle, in order.
        for _ in 0..10_000 {
            let mut progressed = false;
            for dir in 0..2 {
                if !self.links[dir].is_empty() {
                    self.deliver(dir, 0, false);
                    progressed = true;
                }
            }
            for p in 0..2 {
                progressed |= self.gather(p);
            }
            self.flush();
            if !progressed {
                return;
            }
        }
        panic!("did not settle");
    }
}

fn dialect(object: bool) -> Dialect {
    if object {
        Dialect::BROWSER
    } else {
        Dialect::GO2RTC
    }
}

fn script(candidates: u32, ufrag_in_candidate: bool, end: bool) -> PeerScript {
    PeerScript {
        candidates,
        gather_interval: Duration::from_millis(1),
        ufrag_in_candidate,
        end_of_candidates: end,
        ..PeerScript::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn offer_answer_converges(
        ordered: bool,
        object: bool,
        ufrag_in_candidate: bool,
        candidates in 0u32..6,
        steps in proptest::collection::vec(step(), 0..80),
    ) {
        // End-of-candidates assumes signaling ordered per direction (RFC 8838).
        let mut w = World::new(dialect(object), false, script(candidates, ufrag_in_candidate, ordered), ordered);
        let now = w.now;
        w.peers[0].offer(now);
        w.run(&steps);
        let [a, b] = &w.peers;
        prop_assert_eq!(check_converged(a, b), Ok(()));
    }

    #[test]
    fn glare_resolves_for_every_interleaving(
        object: bool,
        ufrag_in_candidate: bool,
        polite_first: bool,
        candidates in 0u32..4,
        steps in proptest::collection::vec(step(), 0..60),
    ) {
        let mut w = World::new(dialect(object), polite_first, script(candidates, ufrag_in_candidate, true), true);
        let now = w.now;
        w.peers[0].offer(now);
        w.peers[1].offer(now);
        w.run(&steps);
        let [a, b] = &w.peers;
        prop_assert_eq!(check_converged(a, b), Ok(()));
        // The polite side's offer was abandoned, made again, and answered: two exchanges each.
        prop_assert!(a.negotiated() >= 2 && b.negotiated() >= 2);
    }

    #[test]
    fn ice_restart_converges(
        object: bool,
        ufrag_in_candidate: bool,
        candidates in 1u32..5,
        steps1 in proptest::collection::vec(step(), 0..40),
        steps2 in proptest::collection::vec(step(), 0..40),
    ) {
        let mut w = World::new(dialect(object), false, script(candidates, ufrag_in_candidate, true), true);
        let now = w.now;
        w.peers[0].offer(now);
        w.run(&steps1);
        prop_assert_eq!(check_converged(&w.peers[0], &w.peers[1]), Ok(()));
        let now = w.now;
        w.peers[0].restart_ice(now);
        w.run(&steps2);
        let [a, b] = &w.peers;
        prop_assert_eq!(check_converged(a, b), Ok(()));
        prop_assert_eq!(a.remote_ufrag(), Some(b.local_ufrag()));
        prop_assert_eq!(b.remote_ufrag(), Some(a.local_ufrag()));
        prop_assert!(a.local_ufrag().contains("g1") && b.local_ufrag().contains("g1"));
    }
}
