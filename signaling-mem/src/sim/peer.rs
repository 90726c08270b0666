//! A simulated WebRTC endpoint: a [`Negotiation`] plus a scripted stand-in for the
//! application's WebRTC stack.
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use signaling_core::negotiation::{Config, Event, Negotiation, NegotiationFailure, Output};
use signaling_core::wire::{IceCandidate, SdpKind};

use super::{Node, NodeId};

/// How a [`SimPeer`]'s stand-in stack behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerScript {
    /// Candidates gathered for each local ICE generation. Default: 3.
    pub candidates: u32,
    /// Time between the local description and the first candidate, and between candidates.
    /// Default: 5 ms.
    pub gather_interval: Duration,
    /// Whether candidate text carries the `ufrag` extension (Chrome's do; the seed client's
    /// frames then still lack `usernameFragment`). Default: `true`.
    pub ufrag_in_candidate: bool,
    /// Whether to send end-of-candidates after the last candidate. Default: `true`.
    pub end_of_candidates: bool,
    /// m-sections in each description. Default: 2.
    pub sections: usize,
    /// Whether to renegotiate (from `stable`) after giving way in a glare. Default: `true`.
    pub reoffer_after_rollback: bool,
}

impl Default for PeerScript {
    fn default() -> Self {
        Self {
            candidates: 3,
            gather_interval: Duration::from_millis(5),
            ufrag_in_candidate: true,
            end_of_candidates: true,
            sections: 2,
            reoffer_after_rollback: true,
        }
    }
}

/// A candidate the stand-in stack applied.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppliedCandidate {
    /// The candidate text.
    pub candidate: String,
    /// The remote ufrag it was applied under.
    pub ufrag: String,
}

/// A simulated WebRTC endpoint for [`super::SimNet`]: it answers offers, gathers candidates
/// over simulated time, re-offers after a glare, and records everything it applied, and every
/// rule it saw broken, for [`check_converged`].
pub struct SimPeer {
    name: String,
    negotiation: Negotiation,
    script: PeerScript,
    remote: Option<NodeId>,
    ufrag: String,
    generation: u32,
    version: u64,
    remote_ufrag: Option<String>,
    to_gather: VecDeque<String>,
    next_gather: Option<Instant>,
    end_pending: bool,
    sent: Vec<AppliedCandidate>,
    applied: Vec<AppliedCandidate>,
    wants_offer: bool,
    violations: Vec<String>,
    failures: Vec<NegotiationFailure>,
    negotiated: u32,
    outbox: VecDeque<String>,
}

impl fmt::Debug for SimPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimPeer")
            .field("name", &self.name)
            .field("state", &self.negotiation.signaling_state())
            .field("sent", &self.sent.len())
            .field("applied", &self.applied.len())
            .field("violations", &self.violations)
            .finish()
    }
}

impl SimPeer {
    /// A peer named `name` (used in its ICE ufrags, so make it 1–8 letters or digits).
    pub fn new(name: &str, config: Config, script: PeerScript) -> Self {
        Self {
            name: name.to_owned(),
            negotiation: Negotiation::new(config),
            script,
            remote: None,
            ufrag: format!("{name}g0uf"),
            generation: 0,
            version: 1,
            remote_ufrag: None,
            to_gather: VecDeque::new(),
            next_gather: None,
            end_pending: false,
            sent: Vec::new(),
            applied: Vec::new(),
            wants_offer: false,
            violations: Vec::new(),
            failures: Vec::new(),
            negotiated: 0,
            outbox: VecDeque::new(),
        }
    }

    /// Sets the node this peer signals with.
    pub fn set_remote(&mut self, remote: NodeId) {
        self.remote = Some(remote);
    }

    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The negotiation inside.
    pub fn negotiation(&self) -> &Negotiation {
        &self.negotiation
    }

    /// The negotiation inside, for commands the script does not cover.
    pub fn negotiation_mut(&mut self) -> &mut Negotiation {
        &mut self.negotiation
    }

    /// Candidates this peer sent, with the local ufrag they belong to.
    pub fn sent_candidates(&self) -> &[AppliedCandidate] {
        &self.sent
    }

    /// Candidates this peer's stack applied, with the remote ufrag they were applied under.
    pub fn applied_candidates(&self) -> &[AppliedCandidate] {
        &self.applied
    }

    /// Rules seen broken (a candidate before its description, applied twice, a peer error...).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Negotiations that failed (timeouts).
    pub fn failures(&self) -> &[NegotiationFailure] {
        &self.failures
    }

    /// How many offer/answer exchanges finished.
    pub fn negotiated(&self) -> u32 {
        self.negotiated
    }

    /// The ufrag of the remote description applied to the stack.
    pub fn remote_ufrag(&self) -> Option<&str> {
        self.remote_ufrag.as_deref()
    }

    /// The current local ufrag.
    pub fn local_ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Starts an offer (perfect negotiation's `negotiationneeded`), if the state allows.
    pub fn offer(&mut self, now: Instant) {
        if self.negotiation.start_offer(now).is_ok() {
            self.set_local(now, SdpKind::Offer);
        } else {
            self.wants_offer = true;
        }
        self.pump(now);
    }

    /// Restarts ICE (new ufrag) and offers.
    pub fn restart_ice(&mut self, now: Instant) {
        self.new_generation();
        self.offer(now);
    }

    fn new_generation(&mut self) {
        self.generation += 1;
        self.ufrag = format!("{}g{}uf", self.name, self.generation);
        self.to_gather.clear();
        self.next_gather = None;
        self.end_pending = false;
    }

    fn sdp(&mut self, setup: &str) -> String {
        self.version += 1;
        let mut s = format!(
            "v=0\r\no=- 4611731400430051336 {} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE",
            self.version
        );
        for i in 0..self.script.sections {
            s.push_str(&format!(" {i}"));
        }
        s.push_str("\r\n");
        for i in 0..self.script.sections {
            let kind = if i % 2 == 0 { "video" } else { "audio" };
            s.push_str(&format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{u}0123456789abcdefghij\r\na=ice-options:trickle\r\na=setup:{setup}\r\na=mid:{i}\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n",
                u = self.ufrag
            ));
        }
        s
    }

    fn set_local(&mut self, now: Instant, kind: SdpKind) {
        let setup = if kind == SdpKind::Offer {
            "actpass"
        } else {
            "active"
        };
        let sdp = self.sdp(setup);
        let fresh = !self.sent.iter().any(|c| c.ufrag == self.ufrag)
            && self.to_gather.is_empty()
            && !self.end_pending;
        if let Err(e) = self.negotiation.set_local_description(now, kind, sdp) {
            self.violations
                .push(format!("{}: set local {kind}: {e}", self.name));
            return;
        }
        if fresh {
            let base =
                self.generation * 1000 + u32::from(self.name.bytes().next().unwrap_or(0)) * 10;
            for i in 0..self.script.candidates {
                let n = base + i;
                let mut c = format!(
                    "candidate:{n} 1 udp {} 192.0.2.{} {} typ host generation 0",
                    2_122_260_223u32.saturating_sub(n),
                    n % 250 + 1,
                    10_000 + n % 50_000
                );
                if self.script.ufrag_in_candidate {
                    c.push_str(" ufrag ");
                    c.push_str(&self.ufrag);
                }
                c.push_str(" network-id 1");
                self.to_gather.push_back(c);
            }
            self.end_pending = self.script.end_of_candidates;
            self.next_gather = Some(now + self.script.gather_interval);
        }
    }

    fn gather(&mut self, now: Instant) {
        if let Some(c) = self.to_gather.pop_front() {
            match self
                .negotiation
                .add_local_candidate(now, IceCandidate::new(c.clone()))
            {
                Ok(()) => self.sent.push(AppliedCandidate {
                    candidate: c,
                    ufrag: self.ufrag.clone(),
                }),
                Err(e) => self
                    .violations
                    .push(format!("{}: add local candidate: {e}", self.name)),
            }
        } else if self.end_pending {
            self.end_pending = false;
            if let Err(e) = self.negotiation.end_of_local_candidates(now) {
                self.violations
                    .push(format!("{}: end of candidates: {e}", self.name));
            }
        }
        self.next_gather = (!self.to_gather.is_empty() || self.end_pending)
            .then(|| now + self.script.gather_interval);
    }

    /// Drains the negotiation, acting on its events as a WebRTC stack would.
    fn pump(&mut self, now: Instant) {
        loop {
            match self.negotiation.poll_output() {
                Output::Transmit(frame) => self.outbox.push_back(frame),
                Output::Event(e) => self.on_event(now, e),
                Output::Timeout(_) => break,
            }
        }
        if self.wants_offer
            && self.script.reoffer_after_rollback
            && self.negotiation.signaling_state()
                == signaling_core::negotiation::SignalingState::Stable
        {
            self.wants_offer = false;
            if self.negotiation.start_offer(now).is_ok() {
                self.set_local(now, SdpKind::Offer);
                // The offer's frame is in the negotiation's output now.
                loop {
                    match self.negotiation.poll_output() {
                        Output::Transmit(frame) => self.outbox.push_back(frame),
                        Output::Event(e) => self.on_event(now, e),
                        Output::Timeout(_) => break,
                    }
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::ApplyRemoteDescription(d) => {
                let ufrag = d
                    .sdp
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                    .map(str::to_owned);
                let restart = self.remote_ufrag.is_some() && ufrag != self.remote_ufrag;
                if restart && d.kind == SdpKind::Offer {
                    // The peer restarted ICE; a browser answers with new credentials too.
                    self.new_generation();
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
                        "{}: candidate before any description: {text}",
                        self.name
                    ));
                    return;
                };
                if rc.init.username_fragment.as_deref() != Some(remote.as_str()) {
                    self.violations.push(format!(
                        "{}: candidate of {:?} applied under {remote}",
                        self.name, rc.init.username_fragment
                    ));
                }
                if let Some(u) = rc.ufrag() {
                    if u != remote {
                        self.violations.push(format!(
                            "{}: candidate of generation {u} applied under {remote}",
                            self.name
                        ));
                    }
                }
                if self.applied.iter().any(|c| c.candidate == text) {
                    self.violations
                        .push(format!("{}: candidate applied twice: {text}", self.name));
                }
                self.applied.push(AppliedCandidate {
                    candidate: text,
                    ufrag: remote,
                });
            }
            Event::Negotiated => self.negotiated += 1,
            Event::PeerError(e) => self
                .violations
                .push(format!("{}: peer error: {e}", self.name)),
            Event::RemoteError(e) => self
                .violations
                .push(format!("{}: remote error: {}", self.name, e.text)),
            Event::NegotiationFailed(f) => self.failures.push(f),
            _ => {}
        }
    }
}

impl Node for SimPeer {
    fn handle_frame(&mut self, now: Instant, _from: NodeId, frame: &str) {
        self.negotiation.handle_frame(now, frame);
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.next_gather.is_some_and(|t| t <= now) {
            self.gather(now);
        }
        self.negotiation.handle_timeout(now);
        self.pump(now);
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<(NodeId, String)> {
        let remote = self.remote?;
        self.outbox.pop_front().map(|f| (remote, f))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.negotiation.next_timeout(), self.next_gather) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Checks that two peers converged: both `stable`, no rule broken, no failure, and each applied
/// exactly the candidates the other sent, once each, under the right ICE generation (except
/// candidates of a generation the receiver had already moved past, which are dropped).
pub fn check_converged(a: &SimPeer, b: &SimPeer) -> Result<(), String> {
    use signaling_core::negotiation::SignalingState;
    for p in [a, b] {
        if !p.violations.is_empty() {
            return Err(format!("{} broke rules: {:?}", p.name, p.violations));
        }
        if !p.failures.is_empty() {
            return Err(format!("{} failed: {:?}", p.name, p.failures));
        }
        if p.negotiation.signaling_state() != SignalingState::Stable {
            return Err(format!(
                "{} is in {}, not stable",
                p.name,
                p.negotiation.signaling_state()
            ));
        }
        if !p.to_gather.is_empty() || p.end_pending || !p.outbox.is_empty() {
            return Err(format!("{} has not finished", p.name));
        }
    }
    for (me, other) in [(a, b), (b, a)] {
        let current = me.remote_ufrag.as_deref().unwrap_or_default();
        let mut applied: Vec<_> = me.applied.iter().filter(|c| c.ufrag == current).collect();
        let mut sent: Vec<_> = other.sent.iter().filter(|c| c.ufrag == current).collect();
        applied.sort();
        sent.sort();
        if applied != sent {
            return Err(format!(
                "{} applied {} candidates of generation {current}; {} sent {}",
                me.name,
                applied.len(),
                other.name,
                sent.len()
            ));
        }
    }
    Ok(())
}
