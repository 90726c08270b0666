//! A deterministic simulated network for sans-IO signaling nodes.
//!
//! [`SimNet`] connects [`Node`]s with links that delay, jitter, reorder (on links declared
//! unordered), duplicate candidates and lose frames, and that can be partitioned and healed. Time is
//! simulated: [`SimNet::step`] jumps straight to the next delivery or timer, so a 30-second
//! negotiation timeout costs nothing to wait for. All randomness comes from one seeded
//! generator (ChaCha8, reproducible across platforms and versions): the same seed, nodes and
//! calls give the same run, step for step.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use signaling_core::negotiation::{Config, SignalingState};
//! use signaling_mem::sim::{LinkConfig, PeerScript, SimNet, SimPeer};
//!
//! let start = Instant::now();
//! let mut net = SimNet::new(7, start);
//! let a = net.add_node(SimPeer::new("a", Config::new(false), PeerScript::default()));
//! let b = net.add_node(SimPeer::new("b", Config::new(true), PeerScript::default()));
//! net.node_mut(a).set_remote(b);
//! net.node_mut(b).set_remote(a);
//! // An ordered link (like a WebSocket) with 40-70 ms of one-way delay and 10 % of the
//! // candidates delivered twice.
//! let link = LinkConfig::default()
//!     .with_delay(Duration::from_millis(40))
//!     .with_jitter(Duration::from_millis(30))
//!     .with_duplicate(0.1);
//! net.connect(a, b, link);
//! let now = net.now();
//! net.node_mut(a).offer(now);
//! net.drive(10_000).expect("settles");
//! assert_eq!(net.node(a).negotiation().signaling_state(), SignalingState::Stable);
//! signaling_mem::sim::check_converged(net.node(a), net.node(b)).expect("converged");
//! ```
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

mod peer;

pub use peer::{check_converged, AppliedCandidate, PeerScript, SimPeer};

/// A node's index in a [`SimNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}

/// A sans-IO participant of a simulated network.
///
/// After every `handle_*` call (and after the test calls commands on a node directly) the
/// network drains [`Node::poll_transmit`] until it returns `None`.
pub trait Node {
    /// A frame from `from` arrived.
    fn handle_frame(&mut self, now: Instant, from: NodeId, frame: &str);
    /// The instant given by [`Node::poll_timeout`] was reached.
    fn handle_timeout(&mut self, now: Instant);
    /// The next frame to send, and to whom.
    fn poll_transmit(&mut self, now: Instant) -> Option<(NodeId, String)>;
    /// When the node next wants [`Node::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

/// How one direction of a link behaves.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// Base one-way delay. Default: 10 ms.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter`. Default: 0.
    pub jitter: Duration,
    /// Probability that a frame is lost. Default: 0.
    pub loss: f64,
    /// Probability that a candidate frame (`webrtc/candidate`) is delivered twice. Default: 0.
    ///
    /// Only candidates are repeated: a negotiation applies each candidate once however often
    /// it arrives, while a description repeated after the peer reacted to it cannot be told
    /// from the peer sending it again, which RFC 3264 makes a new round (as a browser does).
    /// The transports this crate runs on deliver every frame once.
    pub duplicate: f64,
    /// Whether the link keeps frames in order (a WebSocket does; a datagram bus may not). On an
    /// ordered link jitter only delays; on an unordered one it reorders. Default: `true`.
    pub ordered: bool,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            ordered: true,
        }
    }
}

impl LinkConfig {
    /// Sets the base delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the jitter.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the loss probability (clamped to `0..=1`).
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = p.clamp(0.0, 1.0);
        self
    }

    /// Sets the probability that a candidate frame is delivered twice (clamped to `0..=1`).
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p.clamp(0.0, 1.0);
        self
    }

    /// Declares the link unordered: jitter reorders frames.
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }
}

/// What one [`SimNet::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepEvent {
    /// A frame was delivered.
    Delivered {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
    },
    /// A node's timer fired.
    Timer {
        /// The node.
        node: NodeId,
    },
}

/// [`SimNet::drive`] gave up: the network was still busy after the step budget. Usually a
/// livelock (two nodes answering each other forever) or a node whose timer never settles.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the network did not settle within {steps} steps (simulated time {elapsed:?})")]
pub struct NotSettled {
    /// The step budget that ran out.
    pub steps: usize,
    /// Simulated time elapsed since the network started.
    pub elapsed: Duration,
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimStats {
    /// Frames handed to the network.
    pub sent: u64,
    /// Frames delivered (duplicates included).
    pub delivered: u64,
    /// Frames lost to link loss.
    pub lost: u64,
    /// Extra copies scheduled by duplication.
    pub duplicated: u64,
    /// Frames dropped by a partition, an unconnected pair, or the in-flight bound.
    pub blocked: u64,
    /// Timers fired.
    pub timers: u64,
}

#[derive(Debug)]
struct Link {
    config: LinkConfig,
    partitioned: bool,
    /// Latest delivery time scheduled on this (ordered) link.
    last: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at: Instant,
    seq: u64,
    from: NodeId,
    to: NodeId,
    frame: String,
}

/// The default bound on frames in flight across the whole network.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 100_000;

/// A deterministic simulated network. See the [module docs](self).
pub struct SimNet<N> {
    nodes: Vec<N>,
    links: HashMap<(NodeId, NodeId), Link>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    rng: ChaCha8Rng,
    start: Instant,
    now: Instant,
    seq: u64,
    max_in_flight: usize,
    stats: SimStats,
}

impl<N: fmt::Debug> fmt::Debug for SimNet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNet")
            .field("nodes", &self.nodes)
            .field("in_flight", &self.queue.len())
            .field("elapsed", &(self.now - self.start))
            .field("stats", &self.stats)
            .finish()
    }
}

impl<N: Node> SimNet<N> {
    /// An empty network whose randomness comes from `seed` and whose clock starts at `start`.
    pub fn new(seed: u64, start: Instant) -> Self {
        Self {
            nodes: Vec::new(),
            links: HashMap::new(),
            queue: BinaryHeap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            start,
            now: start,
            seq: 0,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            stats: SimStats::default(),
        }
    }

    /// Sets the bound on frames in flight (further frames are dropped and counted as blocked).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Adds a node.
    pub fn add_node(&mut self, node: N) -> NodeId {
        self.nodes.push(node);
        NodeId(self.nodes.len() - 1)
    }

    /// Connects `a` and `b` in both directions with the same behaviour.
    pub fn connect(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        self.connect_one_way(a, b, config.clone());
        self.connect_one_way(b, a, config);
    }

    /// Connects `from` → `to` only.
    pub fn connect_one_way(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        self.links.insert(
            (from, to),
            Link {
                config,
                partitioned: false,
                last: None,
            },
        );
    }

    /// Cuts both directions between `a` and `b`: frames in flight and frames sent later are
    /// dropped until [`SimNet::heal`].
    pub fn partition(&mut self, a: NodeId, b: NodeId) {
        self.set_partitioned(a, b, true);
        let before = self.queue.len();
        self.queue
            .retain(|Reverse(s)| !((s.from == a && s.to == b) || (s.from == b && s.to == a)));
        self.stats.blocked += (before - self.queue.len()) as u64;
    }

    /// Restores both directions between `a` and `b`.
    pub fn heal(&mut self, a: NodeId, b: NodeId) {
        self.set_partitioned(a, b, false);
    }

    fn set_partitioned(&mut self, a: NodeId, b: NodeId, value: bool) {
        for key in [(a, b), (b, a)] {
            if let Some(link) = self.links.get_mut(&key) {
                link.partitioned = value;
            }
        }
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// A node.
    ///
    /// # Panics
    ///
    /// If `id` did not come from this network's [`SimNet::add_node`] (a test bug).
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id.0]
    }

    /// A node, to call commands on it. The network collects what it sends at the next step.
    ///
    /// # Panics
    ///
    /// If `id` did not come from this network's [`SimNet::add_node`] (a test bug).
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id.0]
    }

    /// All nodes, in the order they were added.
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }

    /// Collects every node's pending transmits and puts them on the links.
    pub fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some((to, frame)) = self.nodes[i].poll_transmit(self.now) {
                self.schedule(NodeId(i), to, frame);
            }
        }
    }

    fn schedule(&mut self, from: NodeId, to: NodeId, frame: String) {
        self.stats.sent += 1;
        let Some(link) = self.links.get(&(from, to)) else {
            self.stats.blocked += 1;
            return;
        };
        if link.partitioned || self.queue.len() >= self.max_in_flight {
            self.stats.blocked += 1;
            return;
        }
        let config = link.config.clone();
        if chance(&mut self.rng, config.loss) {
            self.stats.lost += 1;
            return;
        }
        let candidate = matches!(
            signaling_core::wire::frame_form(&frame),
            Some(signaling_core::wire::Form::Candidate(_))
        );
        let copies = if candidate && chance(&mut self.rng, config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut ats = [self.now; 2];
        for at in ats.iter_mut().take(copies) {
            let jitter = uniform_duration(&mut self.rng, config.jitter);
            *at = self.now + config.delay + jitter;
            if let Some(link) = self.links.get_mut(&(from, to)) {
                if config.ordered {
                    if let Some(last) = link.last {
                        *at = (*at).max(last);
                    }
                    link.last = Some(*at);
                }
            }
        }
        if copies == 2 {
            self.push(ats[0], from, to, frame.clone());
        }
        self.push(ats[copies - 1], from, to, frame);
    }

    fn push(&mut self, at: Instant, from: NodeId, to: NodeId, frame: String) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            from,
            to,
            frame,
        }));
    }

    /// Advances to the next event (a delivery or a timer, whichever is first), handles it, and
    /// collects what the nodes send in response. Returns `None` when nothing is in flight and no
    /// timer is armed: the network has settled.
    pub fn step(&mut self) -> Option<StepEvent> {
        self.flush();
        let next_delivery = self.queue.peek().map(|Reverse(s)| s.at);
        let next_timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.poll_timeout().map(|t| (t, i)))
            .min();
        let event = match (next_delivery, next_timer) {
            (None, None) => return None,
            (Some(d), Some((t, i))) if t < d => self.fire(t, i),
            (None, Some((t, i))) => self.fire(t, i),
            (Some(_), _) => {
                let Reverse(s) = self.queue.pop()?;
                self.now = self.now.max(s.at);
                self.stats.delivered += 1;
                self.nodes[s.to.0].handle_frame(self.now, s.from, &s.frame);
                StepEvent::Delivered {
                    from: s.from,
                    to: s.to,
                }
            }
        };
        self.flush();
        Some(event)
    }

    fn fire(&mut self, at: Instant, i: usize) -> StepEvent {
        self.now = self.now.max(at);
        self.stats.timers += 1;
        self.nodes[i].handle_timeout(self.now);
        StepEvent::Timer { node: NodeId(i) }
    }

    /// Steps until the network settles, at most `max_steps` times. Returns the number of steps
    /// taken, or [`NotSettled`] when the budget ran out (a loop that never settles).
    pub fn drive(&mut self, max_steps: usize) -> Result<usize, NotSettled> {
        for n in 0..max_steps {
            if self.step().is_none() {
                return Ok(n);
            }
        }
        if self.step().is_none() {
            return Ok(max_steps);
        }
        Err(NotSettled {
            steps: max_steps,
            elapsed: self.elapsed(),
        })
    }

    /// Steps while the next event is no later than `until` (at most `max_steps` times), then
    /// sets the clock to `until`. For runs whose nodes keep timers armed forever.
    pub fn run_until(&mut self, until: Instant, max_steps: usize) -> Result<usize, NotSettled> {
        for n in 0..max_steps {
            self.flush();
            let next_delivery = self.queue.peek().map(|Reverse(s)| s.at);
            let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
            let next = match (next_delivery, next_timer) {
                (Some(d), Some(t)) => Some(d.min(t)),
                (d, t) => d.or(t),
            };
            match next {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(until);
                    return Ok(n);
                }
            }
        }
        Err(NotSettled {
            steps: max_steps,
            elapsed: self.elapsed(),
        })
    }
}

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    // 53 random bits as a float in [0, 1).
    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    x < p
}

fn uniform_duration(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.next_u64() % (nanos + 1).max(1))
}

/// A two-peer signaling scenario on a [`SimNet`]: who offers, whether both offer at once
/// (glare), whether ICE restarts afterwards, and how the link behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The first peer's script (it is impolite and offers first).
    pub a: PeerScript,
    /// The second peer's script (it is polite).
    pub b: PeerScript,
    /// The wire dialect both speak.
    pub dialect: signaling_core::wire::Dialect,
    /// Both peers offer at the same instant.
    pub glare: bool,
    /// After the first exchange settles, the first peer restarts ICE.
    pub restart: bool,
    /// Both directions of the link.
    pub link: LinkConfig,
    /// The negotiation timeout of both peers.
    pub timeout: Duration,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            a: PeerScript::default(),
            b: PeerScript::default(),
            dialect: signaling_core::wire::Dialect::GO2RTC,
            glare: false,
            restart: false,
            link: LinkConfig::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The result of [`Scenario::run`].
#[derive(Debug)]
pub struct ScenarioRun {
    /// The network, with both peers (ids 0 and 1) as they ended.
    pub net: SimNet<SimPeer>,
    /// Steps taken.
    pub steps: usize,
}

impl Scenario {
    /// Runs the scenario with randomness from `seed`, at most `max_steps` steps per phase.
    pub fn run(
        &self,
        seed: u64,
        start: Instant,
        max_steps: usize,
    ) -> Result<ScenarioRun, NotSettled> {
        use signaling_core::negotiation::Config;
        let config = |polite| {
            Config::new(polite)
                .with_dialect(self.dialect)
                .with_negotiation_timeout(self.timeout)
        };
        let mut net = SimNet::new(seed, start);
        let a = net.add_node(SimPeer::new("a", config(false), self.a.clone()));
        let b = net.add_node(SimPeer::new("b", config(true), self.b.clone()));
        net.node_mut(a).set_remote(b);
        net.node_mut(b).set_remote(a);
        net.connect(a, b, self.link.clone());
        let now = net.now();
        net.node_mut(a).offer(now);
        if self.glare {
            net.node_mut(b).offer(now);
        }
        let mut steps = net.drive(max_steps)?;
        if self.restart {
            let now = net.now();
            net.node_mut(a).restart_ice(now);
            steps += net.drive(max_steps)?;
        }
        Ok(ScenarioRun { net, steps })
    }
}

impl ScenarioRun {
    /// [`check_converged`] on the two peers.
    pub fn check(&self) -> Result<(), String> {
        let nodes = self.net.nodes();
        match nodes {
            [a, b] => check_converged(a, b),
            _ => Err("a scenario has two peers".to_owned()),
        }
    }
}
