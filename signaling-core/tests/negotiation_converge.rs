//! Two negotiations joined by a network that reorders (on unordered links) and duplicates
//! frames always converge: both `stable`, every candidate applied exactly once, none applied
//! before its description or to the wrong ICE generation. Glare is resolved for every
//! interleaving when one side is polite.
// Tests take one base instant from the clock; the library itself never reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use proptest::prelude::*;
use signaling_core::negotiation::{Config, Event, Negotiation, Output, SignalingState};
use signaling_core::wire::{Dialect, IceCandidate, SdpKind};

/// A fake WebRTC stack around one negotiation.
struct Peer {
    n: Negotiation,
    ufrag: String,
    version: u64,
    /// ufrag of the remote description applied to the "stack".
    remote_ufrag: Option<String>,
    /// Candidates applied to the stack, with the remote ufrag they were applied under.
    applied: Vec<(String, String)>,
    /// Candidates still to gather for the current local description.
    to_gather: Vec<String>,
    /// Candidates gathered (sent) so far, per local ufrag.
    gathered: Vec<(String, String)>,
    ended: bool,
    wants_offer: bool,
    violations: Vec<String>,
    restarts: u32,
    candidates_per_gen: u32,
    ufrag_in_candidate: bool,
    /// Whether to send end-of-candidates. RFC 8838's end-of-candidates is only meaningful over
    /// signaling that is ordered per direction: on a reordering link it may overtake candidates,
    /// which are then (correctly) ignored.
    send_end: bool,
    name: &'static str,
}

impl Peer {
    fn new(
        name: &'static str,
        polite: bool,
        dialect: Dialect,
        per_gen: u32,
        ufrag_in_candidate: bool,
    ) -> Self {
        Self {
            n: Negotiation::new(Config::new(polite).with_dialect(dialect)),
            ufrag: format!("{name}gen0"),
            version: 1,
            remote_ufrag: None,
            applied: Vec::new(),
            to_gather: Vec::new(),
            gathered: Vec::new(),
            ended: false,
            wants_offer: false,
            violations: Vec::new(),
            restarts: 0,
            candidates_per_gen: per_gen,
            ufrag_in_candidate,
            send_end: true,
            name,
        }
    }

    fn local_sdp(&mut self) -> String {
        self.version += 1;
        common::sdp(&self.ufrag, self.version, 2, "actpass")
    }

    /// Sets a local description; gathering starts for a new ufrag.
    fn set_local(&mut self, now: Instant, kind: SdpKind) {
        let sdp = self.local_sdp();
        let fresh = !self.gathered.iter().any(|(_, u)| *u == self.ufrag);
        if let Err(e) = self.n.set_local_description(now, kind, sdp) {
            self.violations
                .push(format!("{}: set local {kind}: {e}", self.name));
            return;
        }
        if fresh && self.to_gather.is_empty() {
            let base = self.restarts * 100 + if self.name == "a" { 0 } else { 50 };
            self.to_gather = (0..self.candidates_per_gen)
                .map(|i| {
                    let u = self.ufrag_in_candidate.then_some(self.ufrag.as_str());
                    common::candidate(base + i, u)
                })
                .collect();
            self.ended = false;
        }
    }

    fn offer(&mut self, now: Instant) {
        if self.n.start_offer(now).is_ok() {
            self.set_local(now, SdpKind::Offer);
        }
    }

    fn restart_ice(&mut self, now: Instant) {
        self.restarts += 1;
        self.ufrag = format!("{}gen{}", self.name, self.restarts);
        self.to_gather.clear();
        self.offer(now);
    }

    fn gather_one(&mut self) -> bool {
        if self.to_gather.is_empty() {
            if self.send_end && !self.ended && self.n.local_description().is_some() {
                self.ended = true;
                let _ = self.n.end_of_local_candidates();
                return true;
            }
            return false;
        }
        let c = self.to_gather.remove(0);
        let init = IceCandidate::new(c.clone());
        match self.n.add_local_candidate(init) {
            Ok(()) => self.gathered.push((c, self.ufrag.clone())),
            Err(e) => self
                .violations
                .push(format!("{}: add local candidate: {e}", self.name)),
        }
        true
    }

    /// Drains the negotiation, acting like a stack on its events; returns frames to send.
    fn pump(&mut self, now: Instant) -> Vec<String> {
        let mut frames = Vec::new();
        loop {
            match self.n.poll_output() {
                Output::Transmit(f) => frames.push(f),
                Output::Event(e) => self.on_event(now, e),
                Output::Timeout(_) => return frames,
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::ApplyRemoteDescription(d) => {
                let ufrag = d
                    .sdp
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                    .map(str::to_owned);
                if ufrag.as_deref() != self.remote_ufrag.as_deref()
                    && self.remote_ufrag.is_some()
                    && d.kind == SdpKind::Offer
                {
                    // The peer restarted ICE: restart ours too, as browsers do.
                    self.restarts += 1;
                    self.ufrag = format!("{}gen{}", self.name, self.restarts);
                    self.to_gather.clear();
                }
                self.remote_ufrag = ufrag;
                if d.kind == SdpKind::Offer {
                    self.set_local(now, SdpKind::Answer);
                }
            }
            Event::Rollback => self.wants_offer = true,
            Event::AddRemoteCandidate(rc) => {
                let text = rc.init.candidate.clone();
                let Some(remote) = self.remote_ufrag.clone() else {
                    self.violations.push(format!(
                        "{}: candidate before description: {text}",
                        self.name
                    ));
                    return;
                };
                if rc.init.username_fragment.as_deref() != Some(remote.as_str()) {
                    self.violations.push(format!(
                        "{}: candidate for {:?} applied under {remote}",
                        self.name, rc.init.username_fragment
                    ));
                }
                if rc.init.sdp_mid.as_deref() != Some("0") {
                    self.violations.push(format!(
                        "{}: candidate mapped to {:?}",
                        self.name, rc.init.sdp_mid
                    ));
                }
                if self.applied.iter().any(|(c, _)| *c == text) {
                    self.violations
                        .push(format!("{}: candidate applied twice: {text}", self.name));
                }
                self.applied.push((text, remote));
            }
            Event::PeerError(err) => self
                .violations
                .push(format!("{}: peer error {err}", self.name)),
            Event::NegotiationFailed(f) => {
                self.violations.push(format!("{}: failed {f:?}", self.name))
            }
            _ => {}
        }
    }
}

/// The network: one queue per direction.
struct Net {
    links: [Vec<String>; 2],
    ordered: bool,
    dups_left: u32,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Deliver { dir: usize, pick: usize, dup: bool },
    Gather(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, any::<usize>(), proptest::bool::weighted(0.15))
            .prop_map(|(dir, pick, dup)| Step::Deliver { dir, pick, dup }),
        2 => (0..2usize).prop_map(Step::Gather),
    ]
}

fn run(peers: &mut [Peer; 2], net: &mut Net, steps: &[Step], now: Instant) {
    let flush = |peers: &mut [Peer; 2], net: &mut Net| {
        for (i, p) in peers.iter_mut().enumerate() {
            let frames = p.pump(now);
            net.links[i].extend(frames);
        }
    };
    flush(peers, net);
    for s in steps {
        match *s {
            Step::Deliver { dir, pick, dup } => {
                let link = &mut net.links[dir];
                if link.is_empty() {
                    continue;
                }
                let i = if net.ordered { 0 } else { pick % link.len() };
                let frame = if dup && net.dups_left > 0 {
                    net.dups_left -= 1;
                    link[i].clone()
                } else {
                    link.remove(i)
                };
                peers[1 - dir].n.handle_frame(now, &frame);
            }
            Step::Gather(p) => {
                peers[p].gather_one();
            }
        }
        flush(peers, net);
    }
    // Then let everything settle, in order.
    for _ in 0..10_000 {
        let mut progressed = false;
        for dir in 0..2 {
            if !net.links[dir].is_empty() {
                let frame = net.links[dir].remove(0);
                peers[1 - dir].n.handle_frame(now, &frame);
                progressed = true;
            }
        }
        for p in peers.iter_mut() {
            progressed |= p.gather_one();
            if p.wants_offer && p.n.signaling_state() == SignalingState::Stable {
                p.wants_offer = false;
                p.offer(now);
                progressed = true;
            }
        }
        flush(peers, net);
        if !progressed {
            return;
        }
    }
    panic!("did not settle");
}

fn check(peers: &[Peer; 2]) -> Result<(), TestCaseError> {
    for p in peers {
        prop_assert!(p.violations.is_empty(), "{:?}", p.violations);
        prop_assert_eq!(
            p.n.signaling_state(),
            SignalingState::Stable,
            "{} not stable",
            p.name
        );
    }
    for (me, other) in [(&peers[0], &peers[1]), (&peers[1], &peers[0])] {
        let mut applied: Vec<_> = me.applied.clone();
        let mut sent: Vec<_> = other.gathered.clone();
        applied.sort();
        sent.sort();
        prop_assert_eq!(
            applied,
            sent,
            "{} did not apply exactly what {} sent",
            me.name,
            other.name
        );
    }
    Ok(())
}

fn dialect(object: bool) -> Dialect {
    if object {
        Dialect::BROWSER
    } else {
        Dialect::GO2RTC
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn offer_answer_converges(
        ordered: bool,
        object: bool,
        ufrag_in_candidate: bool,
        per_gen in 0u32..6,
        steps in proptest::collection::vec(step(), 0..80),
    ) {
        let now = Instant::now();
        let d = dialect(object);
        let mut peers = [
            Peer::new("a", false, d, per_gen, ufrag_in_candidate),
            Peer::new("b", true, d, per_gen, ufrag_in_candidate),
        ];
        let mut net = Net { links: [Vec::new(), Vec::new()], ordered, dups_left: 8 };
        for p in &mut peers {
            p.send_end = ordered;
        }
        peers[0].offer(now);
        run(&mut peers, &mut net, &steps, now);
        check(&peers)?;
    }

    #[test]
    fn glare_resolves_for_every_interleaving(
        object: bool,
        ufrag_in_candidate: bool,
        polite_first: bool,
        per_gen in 0u32..4,
        steps in proptest::collection::vec(step(), 0..60),
    ) {
        let now = Instant::now();
        let d = dialect(object);
        let mut peers = [
            Peer::new("a", polite_first, d, per_gen, ufrag_in_candidate),
            Peer::new("b", !polite_first, d, per_gen, ufrag_in_candidate),
        ];
        let mut net = Net { links: [Vec::new(), Vec::new()], ordered: true, dups_left: 4 };
        peers[0].offer(now);
        peers[1].offer(now);
        run(&mut peers, &mut net, &steps, now);
        check(&peers)?;
        // The polite side's rolled-back offer was made again and answered.
        let polite = if polite_first { &peers[0] } else { &peers[1] };
        prop_assert!(!polite.wants_offer);
    }

    #[test]
    fn ice_restart_converges_and_drops_nothing_current(
        object: bool,
        ufrag_in_candidate: bool,
        per_gen in 1u32..5,
        steps1 in proptest::collection::vec(step(), 0..40),
        steps2 in proptest::collection::vec(step(), 0..40),
    ) {
        let now = Instant::now();
        let d = dialect(object);
        let mut peers = [
            Peer::new("a", false, d, per_gen, ufrag_in_candidate),
            Peer::new("b", true, d, per_gen, ufrag_in_candidate),
        ];
        let mut net = Net { links: [Vec::new(), Vec::new()], ordered: true, dups_left: 4 };
        peers[0].offer(now);
        run(&mut peers, &mut net, &steps1, now);
        check(&peers)?;
        peers[0].restart_ice(now);
        run(&mut peers, &mut net, &steps2, now);
        check(&peers)?;
        for p in &peers {
            let current = p.remote_ufrag.clone().unwrap_or_default();
            prop_assert!(current.ends_with("gen1"), "{} applied {current}", p.name);
        }
    }
}
