//! A property test of the cluster: over random joins, leaves, dropped connections, resumes,
//! frames and node crashes (and restarts) across three nodes sharing one real NATS server, no
//! frame is delivered outside its room, to the wrong peer, twice, or out of order; every
//! connection ends once its client is gone; and afterwards the cluster is not wedged (fresh
//! pairs of clients on two different nodes talk, in fresh rooms and in the rooms used).
//!
//! The oracle is the test's own record of what it sent. Every frame carries its sender (a test
//! client) and a sequence number unique to that sender, `{"type":"app","value":{"s":S,"n":N}}`,
//! plus `"to":"<peer id>"` when it is addressed to a peer its sender knew of (from the relay's
//! own notices on the sender's connection). Peer ids are numbered by each node's relay, so the
//! same id may name different peers on different nodes: each relay is told apart by the STUN
//! server it hands out in its welcome (`stun:relay-<K>.invalid`), and a peer is known by its
//! relay and its id. For each frame a connection receives, with the peer that connection was
//! at that moment (its last welcome):
//!
//! 1. the connection asked for the room the frame was sent in;
//! 2. an addressed frame reaches the peer it was addressed to (that id, on the relay that ran
//!    the room as its sender last heard), and no other;
//! 3. no peer receives the same frame twice;
//! 4. a peer receives the frames of one sender's connection in increasing order (across the
//!    connections of a resumed peer, in the order of those connections). Frames may be lost
//!    (a crash, a dropped connection), never duplicated or reordered.
//!
//! Also: the `from` the relay stamps names a peer of the frame's sender, a peer never gets its
//! own frames, no frame arrives before the welcome, and no task panics.
//!
//! A client whose room's node died is moved by its own node: it hears `relay/left` for every
//! peer it knew and a new welcome (a new peer, on another relay). Its frames sent before it
//! heard of that may be relayed in the room's new run: a broadcast then reaches the peers
//! there (as the mailbox's frames reach a peer that joins later), and a frame addressed to an
//! id of the old run must reach no one (2).
//!
//! Each case runs on its own tokio runtime, with its own cluster prefix on the shared server
//! (its own subjects and room bucket), with fast timings (heartbeat 150 ms, node timeout
//! 600 ms, retransmission 300 ms, a window of 8), rooms of three, a resume grace of 1 s and no
//! rate limit that matters. Every client joins first; then the operations; then, after time
//! for the dead nodes' rooms to move, every client still connected sends to each peer it knows
//! and to its room; then every client leaves and the cluster settles for the liveness checks.
//!
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` choose the number of cases and the seed (printed
//! at the start of the run); `CLUSTER_PROP_TRACE=1` prints each case's operations and what
//! each connection received.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use signaling::ice::IceServersConfig;
use signaling::relay::{fresh_token, DriverConfig, JoinRequest, RelayConfig, RelayHandle};
use signaling::transport::{CloseCode, CloseReason, PeerInfo, Transport};
use signaling_mem::{MemConfig, MemConnection};
use signaling_nats::testing::NatsServer;
use signaling_nats::{ClusterConfig, ClusterNode};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

const NODES: usize = 3;
const CLIENTS: usize = 5;
const ROOMS: usize = 2;
const DEFAULT_CASES: u32 = 12;

const HEARTBEAT: Duration = Duration::from_millis(150);
const NODE_TIMEOUT: Duration = Duration::from_millis(600);
const RETRANSMIT: Duration = Duration::from_millis(300);
const RELEASE_AFTER: Duration = Duration::from_millis(300);
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
const RESUME_GRACE: Duration = Duration::from_secs(1);
/// A link's window, small: the links' backpressure and retransmissions take part, and frames
/// sent while a room's node is dead (and not yet known to be) wait unread in the client's node,
/// to be relayed in the room's next run.
const WINDOW: usize = 8;
/// Between two operations, so that a case lasts long enough for node deaths to be noticed.
const STEP: Duration = Duration::from_millis(25);
/// After the operations, before the last round of frames: every dead node noticed (twice the
/// node timeout), and the clients of its rooms joined them again.
const EPILOGUE: Duration = Duration::from_millis(2 * 600);
/// After every client closed: the peers of crashed nodes' clients and of dropped connections
/// are gone (the node timeout, and the resume grace).
const SETTLE: Duration = Duration::from_millis(600 + 1000 + 300);
/// How long a connection may take to end once its client closed it (or its node crashed).
const DRAIN: Duration = Duration::from_secs(6);
/// How long the liveness checks wait for each step.
const LIVE_WAIT: Duration = Duration::from_secs(5);
/// The abnormal close a client uses to drop its connection: its peer may resume.
const DROPPED: CloseCode = CloseCode(4000);

/// Panics anywhere in the process (tasks included), counted by a hook.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// What the test does. An operation that does not apply to the client it names (a send from a
/// client with no connection, say) applies to the next client it does apply to, if any; one
/// that applies to none is skipped. Nodes that are down are replaced by the next one up.
#[derive(Clone, Debug)]
enum Op {
    /// A new connection of `client` (one without an open connection) to `node`, for `room`.
    Join {
        client: usize,
        node: usize,
        room: usize,
    },
    /// `count` frames from `client`: to the `to`-th peer it knows of (modulo how many it knows),
    /// or to its whole room.
    Send {
        client: usize,
        to: Option<usize>,
        count: u8,
    },
    /// `client` closes its connection cleanly (1000): its peer leaves.
    Leave { client: usize },
    /// `client` closes its connection abnormally (4000): its peer may resume.
    Drop { client: usize },
    /// `client`, whose connection ended otherwise than by a leave, joins `node` with its last
    /// resume token.
    Resume { client: usize, node: usize },
    /// `node` dies (unless it is the last one up): its tasks stop, and the connections it
    /// served are cut.
    Crash { node: usize },
    /// The node that runs `room` (if one does) dies: its clients' peers on other nodes hear
    /// that everyone left and join the room again.
    CrashOwner { room: usize },
    /// A crashed `node` starts again (a new incarnation, the same name).
    Restart { node: usize },
    /// Nothing happens for `ms` (besides the 25 ms between any two operations).
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CLIENTS, 0..NODES, 0..ROOMS)
            .prop_map(|(client, node, room)| Op::Join { client, node, room }),
        8 => (0..CLIENTS, proptest::option::of(0..3usize), 1..16u8)
            .prop_map(|(client, to, count)| Op::Send { client, to, count }),
        1 => (0..CLIENTS).prop_map(|client| Op::Leave { client }),
        1 => (0..CLIENTS).prop_map(|client| Op::Drop { client }),
        2 => (0..CLIENTS, 0..NODES).prop_map(|(client, node)| Op::Resume { client, node }),
        1 => (0..NODES).prop_map(|node| Op::Crash { node }),
        1 => (0..ROOMS).prop_map(|room| Op::CrashOwner { room }),
        1 => (0..NODES).prop_map(|node| Op::Restart { node }),
        2 => (0..500u64).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// Every client joins first (a room, on a node), then the operations.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let joins = proptest::collection::vec((0..NODES, 0..ROOMS), CLIENTS);
    (joins, proptest::collection::vec(op(), 15..50)).prop_map(|(joins, ops)| {
        let joins = joins
            .into_iter()
            .enumerate()
            .map(|(client, (node, room))| Op::Join { client, node, room });
        joins.chain(ops).collect()
    })
}

#[test]
fn frames_stay_in_their_room_reach_their_peer_once_and_in_order() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    count_panics();
    let base = Config::default();
    let seed = match base.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        base.cases
    } else {
        DEFAULT_CASES
    };
    eprintln!("cluster_prop: {cases} cases, PROPTEST_RNG_SEED={seed}");
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 24,
        failure_persistence: None,
        ..base
    };
    let url = server.url();
    let runs = AtomicUsize::new(0);
    let totals = Mutex::new(Summary::default());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(), |ops| {
        let run = runs.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let summary = run_case(&url, run, &ops).map_err(TestCaseError::fail)?;
        eprintln!(
            "case {run}: {} ops in {:.1} s: {summary}",
            ops.len(),
            started.elapsed().as_secs_f64()
        );
        lock(&totals).add(&summary);
        Ok(())
    });
    match result {
        Ok(()) => eprintln!("cluster_prop: all cases passed: {}", lock(&totals)),
        Err(TestError::Fail(why, ops)) => {
            panic!("{why}\nminimal failing operations (seed {seed}):\n{ops:#?}")
        }
        Err(e) => panic!("{e}"),
    }
}

/// Runs one case on its own runtime (so that nothing of it outlives it) with its own cluster
/// prefix on the shared NATS server.
fn run_case(url: &str, run: usize, ops: &[Op]) -> Result<Summary, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let panics = PANICS.load(Ordering::SeqCst);
    let outcome = runtime.block_on(async {
        let mut harness = Harness::start(url, run).await?;
        for op in ops {
            harness.apply(op).await?;
            tokio::time::sleep(STEP).await;
        }
        harness.epilogue().await;
        harness.finish().await
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let panicked = PANICS.load(Ordering::SeqCst) - panics;
    match outcome {
        Ok(_) if panicked > 0 => Err(format!("{panicked} panic(s) during the case")),
        other => other,
    }
}

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// -------------------------------------------------------------------------------------------
// Clients

/// A command to a connection's task.
enum Cmd {
    Send(String),
    Close(CloseReason),
}

/// A peer: the relay that runs it (see [`relay_of`]) and its id there.
type PeerKey = (u32, String);

/// What a connection's task saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Every frame received, in order.
    frames: Vec<String>,
    /// How the connection ended, once it did.
    end: Option<String>,
    /// The last welcome: the peer this connection is, and its resume token.
    welcome: Option<(PeerKey, String)>,
    /// The other peers of the room, as the relay's notices told.
    peers: Vec<String>,
}

/// Reads everything the connection gets (the relay applies backpressure: a client that does
/// not read holds its room up) and sends what the test asks, until the connection ends.
async fn run_client(
    mut conn: MemConnection,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut commands = true;
    let mut closed = false;
    loop {
        tokio::select! {
            cmd = cmds.recv(), if commands => match cmd {
                Some(Cmd::Send(frame)) if !closed => {
                    // A failed send: the connection is over, which `recv` reports.
                    let _ = conn.send(frame.into()).await;
                }
                Some(Cmd::Close(reason)) if !closed => {
                    closed = true;
                    let _ = conn.close(reason).await;
                }
                Some(_) => {}
                None => commands = false,
            },
            got = conn.recv() => {
                let mut seen = lock(&seen);
                match got {
                    Ok(Some(frame)) => {
                        follow(&mut seen, &frame);
                        seen.frames.push(frame.to_string());
                    }
                    Ok(None) => {
                        seen.end = Some("closed".to_owned());
                        return;
                    }
                    Err(e) => {
                        seen.end = Some(e.to_string());
                        return;
                    }
                }
            }
        }
    }
}

/// Keeps the connection's view of its room (for addressing) from the relay's notices.
fn follow(seen: &mut Seen, frame: &str) {
    match parse(frame) {
        Parsed::Welcome { peer, token, peers } => {
            seen.welcome = Some((peer, token));
            seen.peers = peers;
        }
        Parsed::Joined(id) if !seen.peers.contains(&id) => seen.peers.push(id),
        Parsed::Left(id) => seen.peers.retain(|p| *p != id),
        _ => {}
    }
}

/// A frame, as the test reads it.
enum Parsed {
    Welcome {
        peer: PeerKey,
        token: String,
        peers: Vec<String>,
    },
    Joined(String),
    Left(String),
    Error,
    Data {
        sender: usize,
        seq: u64,
        from: Option<String>,
    },
    Unexpected(String),
}

fn parse(frame: &str) -> Parsed {
    let unexpected = || Parsed::Unexpected(frame.to_owned());
    let Ok(value) = serde_json::from_str::<serde_json::Value>(frame) else {
        return unexpected();
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    match value["type"].as_str() {
        Some("relay/welcome") => {
            let v = &value["value"];
            let relay = v["iceServers"][0]["urls"][0].as_str().and_then(relay_of);
            match (relay, text(&v["id"]), text(&v["resume"])) {
                (Some(relay), Some(id), Some(token)) => Parsed::Welcome {
                    peer: (relay, id),
                    token,
                    peers: v["peers"]
                        .as_array()
                        .map(|a| a.iter().filter_map(text).collect())
                        .unwrap_or_default(),
                },
                _ => unexpected(),
            }
        }
        Some("relay/joined") => text(&value["value"]["id"]).map_or_else(unexpected, Parsed::Joined),
        Some("relay/left") => text(&value["value"]["id"]).map_or_else(unexpected, Parsed::Left),
        Some("error") => Parsed::Error,
        Some("app") => {
            let v = &value["value"];
            match (v["s"].as_u64(), v["n"].as_u64()) {
                (Some(s), Some(n)) => Parsed::Data {
                    sender: s as usize,
                    seq: n,
                    from: text(&value["from"]),
                },
                _ => unexpected(),
            }
        }
        _ => unexpected(),
    }
}

/// The relay a welcome came from: its STUN server is `stun:relay-<K>.invalid`.
fn relay_of(url: &str) -> Option<u32> {
    url.strip_prefix("stun:relay-")?
        .strip_suffix(".invalid")?
        .parse()
        .ok()
}

fn room_name(room: usize) -> String {
    format!("room{room}")
}

// -------------------------------------------------------------------------------------------
// The cluster under test

struct Slot {
    node: Option<ClusterNode>,
    /// The connections this node serves (aborted when it crashes).
    tasks: JoinSet<()>,
}

struct Client {
    /// The last connection.
    conn: Option<usize>,
    next_seq: u64,
}

struct Conn {
    client: usize,
    room: usize,
    node: usize,
    resume: bool,
    /// Closed by its client: cleanly (left), or not (dropped).
    left: bool,
    dropped: bool,
    cmds: Option<mpsc::UnboundedSender<Cmd>>,
    seen: Arc<Mutex<Seen>>,
    task: Option<JoinHandle<()>>,
}

/// What the test sent: the sender's connection, its room, and the peer it was addressed to.
struct Sent {
    conn: usize,
    room: usize,
    to: Option<PeerKey>,
}

#[derive(Default)]
struct Summary {
    sent: usize,
    delivered: usize,
    addressed: usize,
    resumed: usize,
    rehomed: usize,
    crashes: usize,
    errors: usize,
    lost_sent: usize,
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.addressed += other.addressed;
        self.resumed += other.resumed;
        self.rehomed += other.rehomed;
        self.crashes += other.crashes;
        self.errors += other.errors;
        self.lost_sent += other.lost_sent;
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames sent, {} received ({} addressed), {} sent frames received by nobody, \
             {} resumes, {} re-homes after a crash, {} crashes, {} error frames",
            self.sent,
            self.delivered,
            self.addressed,
            self.lost_sent,
            self.resumed,
            self.rehomed,
            self.crashes,
            self.errors
        )
    }
}

struct Harness {
    url: String,
    prefix: String,
    slots: Vec<Slot>,
    /// Connection tasks of crashed nodes, kept to look for panics.
    retired: Vec<JoinSet<()>>,
    next_relay: u32,
    clients: Vec<Client>,
    conns: Vec<Conn>,
    sent: HashMap<(usize, u64), Sent>,
    crashes: usize,
    started: Instant,
    trace: Vec<String>,
}

impl Harness {
    async fn start(url: &str, run: usize) -> Result<Self, String> {
        let mut harness = Harness {
            url: url.to_owned(),
            prefix: format!("prop{run}"),
            slots: Vec::new(),
            retired: Vec::new(),
            next_relay: 0,
            clients: (0..CLIENTS)
                .map(|_| Client {
                    conn: None,
                    next_seq: 0,
                })
                .collect(),
            conns: Vec::new(),
            sent: HashMap::new(),
            crashes: 0,
            started: Instant::now(),
            trace: Vec::new(),
        };
        for _ in 0..NODES {
            harness.slots.push(Slot {
                node: None,
                tasks: JoinSet::new(),
            });
        }
        for slot in 0..NODES {
            harness.start_node(slot).await?;
        }
        Ok(harness)
    }

    fn note(&mut self, what: String) {
        let at = self.started.elapsed().as_millis();
        self.trace.push(format!("{at:>6} ms  {what}"));
    }

    async fn start_node(&mut self, slot: usize) -> Result<(), String> {
        self.next_relay += 1;
        let relay_id = self.next_relay;
        let mut relay = RelayConfig::default();
        relay.room_capacity = 3;
        relay.resume_grace = RESUME_GRACE;
        relay.rate_per_sec = 1_000_000;
        relay.rate_burst = 1_000_000;
        relay.ice_servers = Some(IceServersConfig {
            stun: vec![format!("stun:relay-{relay_id}.invalid")],
            ..IceServersConfig::default()
        });
        let relay = RelayHandle::new(relay, DriverConfig::default());
        let mut config = ClusterConfig::new(self.url.clone(), format!("n{slot}"));
        config.prefix = self.prefix.clone();
        config.heartbeat = HEARTBEAT;
        config.node_timeout = NODE_TIMEOUT;
        config.retransmit = RETRANSMIT;
        config.release_after = RELEASE_AFTER;
        config.join_timeout = JOIN_TIMEOUT;
        config.window = WINDOW;
        let node = ClusterNode::start(config, relay)
            .await
            .map_err(|e| format!("node n{slot} does not start: {e}"))?;
        self.slots[slot].node = Some(node);
        self.note(format!("n{slot} up (relay {relay_id})"));
        Ok(())
    }

    fn crash(&mut self, slot: usize) {
        let Some(node) = self.slots[slot].node.take() else {
            return;
        };
        node.abort();
        let mut tasks = std::mem::replace(&mut self.slots[slot].tasks, JoinSet::new());
        tasks.abort_all();
        self.retired.push(tasks);
        self.crashes += 1;
        self.note(format!("n{slot} crashed"));
    }

    fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.node.is_some()).count()
    }

    /// `slot` if it is up, else the next one that is.
    fn live_node(&self, slot: usize) -> Option<usize> {
        (0..NODES)
            .map(|i| (slot + i) % NODES)
            .find(|&s| self.slots[s].node.is_some())
    }

    /// Whether `client`'s last connection is open (as far as the test knows).
    fn connected(&self, client: usize) -> Option<usize> {
        let c = self.clients[client].conn?;
        let conn = &self.conns[c];
        (!conn.left && !conn.dropped && lock(&conn.seen).end.is_none()).then_some(c)
    }

    /// Opens a connection of `client` to `slot` for `room`.
    fn open(&mut self, client: usize, slot: usize, room: usize, resume: Option<String>) -> usize {
        let (client_end, server_end) = signaling_mem::pair_with(
            // Large enough that the test's own sends never wait (the nodes' windows and queues
            // still apply backpressure).
            &MemConfig::default().with_queue(4096),
            PeerInfo::new("mem"),
            PeerInfo::new("mem"),
        );
        let mut request = JoinRequest::new(room_name(room), fresh_token());
        if let Some(token) = &resume {
            request = request.with_resume(token);
        }
        let node = self.slots[slot].node.clone().expect("a live node");
        self.slots[slot]
            .tasks
            .spawn(async move { node.serve(server_end, request).await });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_client(client_end, cmd_rx, seen.clone()));
        let c = self.conns.len();
        self.conns.push(Conn {
            client,
            room,
            node: slot,
            resume: resume.is_some(),
            left: false,
            dropped: false,
            cmds: Some(cmds),
            seen,
            task: Some(task),
        });
        self.clients[client].conn = Some(c);
        let how = if resume.is_some() { "resumes" } else { "joins" };
        self.note(format!(
            "client {client} {how} room{room} on n{slot}: conn {c}"
        ));
        c
    }

    fn command(&self, c: usize, cmd: Cmd) {
        if let Some(cmds) = &self.conns[c].cmds {
            let _ = cmds.send(cmd);
        }
    }

    /// Sends `count` frames from `client` (connection `c`), to the `to`-th peer it knows of.
    fn send(&mut self, client: usize, c: usize, to: Option<usize>, count: u8) {
        let (target, view) = {
            let seen = lock(&self.conns[c].seen);
            let target = match (&seen.welcome, to) {
                (Some(((relay, _), _)), Some(i)) if !seen.peers.is_empty() => {
                    Some((*relay, seen.peers[i % seen.peers.len()].clone()))
                }
                _ => None,
            };
            (target, seen.welcome.as_ref().map(|(me, _)| me.clone()))
        };
        let mut first = None;
        for _ in 0..count {
            let seq = self.clients[client].next_seq;
            self.clients[client].next_seq += 1;
            first.get_or_insert(seq);
            let frame = match &target {
                Some((_, id)) => {
                    format!(r#"{{"type":"app","value":{{"s":{client},"n":{seq}}},"to":"{id}"}}"#)
                }
                None => format!(r#"{{"type":"app","value":{{"s":{client},"n":{seq}}}}}"#),
            };
            self.sent.insert(
                (client, seq),
                Sent {
                    conn: c,
                    room: self.conns[c].room,
                    to: target.clone(),
                },
            );
            self.command(c, Cmd::Send(frame));
        }
        let to = match &target {
            Some((relay, id)) => format!("to {id}@relay{relay}"),
            None => "to all".to_owned(),
        };
        let me = match view {
            Some((relay, id)) => format!("{id}@relay{relay}"),
            None => "not welcomed yet".to_owned(),
        };
        self.note(format!(
            "client {client} (conn {c}, {me}) sends {}..{} {to}",
            first.unwrap_or(0),
            first.unwrap_or(0) + u64::from(count) - 1
        ));
    }

    /// `client` if `ok(client)`, else the next client for which it is.
    fn pick<T>(&self, client: usize, ok: impl Fn(usize) -> Option<T>) -> Option<(usize, T)> {
        (0..CLIENTS)
            .map(|i| (client + i) % CLIENTS)
            .find_map(|c| ok(c).map(|t| (c, t)))
    }

    /// The token `client` may resume with: its last connection ended, and not by a leave.
    fn resumable(&self, client: usize) -> Option<(usize, String)> {
        let c = self.clients[client].conn?;
        let conn = &self.conns[c];
        if conn.left {
            return None;
        }
        let seen = lock(&conn.seen);
        if !conn.dropped && seen.end.is_none() {
            return None;
        }
        seen.welcome.as_ref().map(|(_, token)| (c, token.clone()))
    }

    /// Runs one operation. One that does not apply to the client it names applies to the next
    /// client it does apply to (a send to the next connected client, say), if any.
    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Join { client, node, room } => {
                let free = |c: usize| self.connected(c).is_none().then_some(());
                if let (Some((client, ())), Some(slot)) =
                    (self.pick(client, free), self.live_node(node))
                {
                    self.open(client, slot, room, None);
                }
            }
            Op::Send { client, to, count } => {
                if let Some((client, c)) = self.pick(client, |c| self.connected(c)) {
                    self.send(client, c, to, count);
                }
            }
            Op::Leave { client } => {
                if let Some((client, c)) = self.pick(client, |c| self.connected(c)) {
                    self.conns[c].left = true;
                    self.command(c, Cmd::Close(CloseReason::normal()));
                    self.note(format!("client {client} leaves (conn {c})"));
                }
            }
            Op::Drop { client } => {
                if let Some((client, c)) = self.pick(client, |c| self.connected(c)) {
                    self.conns[c].dropped = true;
                    self.command(c, Cmd::Close(CloseReason::new(DROPPED, "dropped")));
                    self.note(format!("client {client} drops (conn {c})"));
                }
            }
            Op::Resume { client, node } => {
                if let (Some((client, (c, token))), Some(slot)) = (
                    self.pick(client, |c| self.resumable(c)),
                    self.live_node(node),
                ) {
                    let room = self.conns[c].room;
                    self.open(client, slot, room, Some(token));
                }
            }
            Op::Crash { node } => {
                if self.slots[node].node.is_some() && self.live() > 1 {
                    self.crash(node);
                }
            }
            Op::CrashOwner { room } => {
                let name = room_name(room);
                let owner = (0..NODES).find(|&slot| {
                    self.slots[slot]
                        .node
                        .as_ref()
                        .is_some_and(|node| node.relay().room_in_use(&name))
                });
                if let Some(slot) = owner.filter(|_| self.live() > 1) {
                    self.note(format!("n{slot} runs room{room}"));
                    self.crash(slot);
                }
            }
            Op::Restart { node } => {
                if self.slots[node].node.is_none() {
                    self.start_node(node).await?;
                }
            }
            Op::Wait { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        Ok(())
    }

    /// After the operations, with the clients still there: time for the rooms of crashed nodes
    /// to move (their clients join them again), then every connected client sends to each peer
    /// it knows of, and to its whole room.
    async fn epilogue(&mut self) {
        tokio::time::sleep(EPILOGUE).await;
        self.note("last round of frames".to_owned());
        for client in 0..CLIENTS {
            let Some(c) = self.connected(client) else {
                continue;
            };
            let known = lock(&self.conns[c].seen).peers.len();
            for i in 0..known {
                self.send(client, c, Some(i), 2);
            }
            self.send(client, c, None, 2);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    /// Ends the case: every node up again, every client gone, every connection ended; then,
    /// once the cluster settled, fresh pairs of clients talk across nodes; then the oracle.
    async fn finish(mut self) -> Result<Summary, String> {
        let mut problems = Vec::new();
        for slot in 0..NODES {
            if self.slots[slot].node.is_none() {
                self.start_node(slot).await?;
            }
        }
        self.close_all();
        problems.extend(self.drain().await);
        tokio::time::sleep(SETTLE).await;
        self.note("settled".to_owned());
        let mut pairs: Vec<(usize, usize, usize)> = (0..ROOMS)
            .map(|room| (room, room % NODES, (room + 1) % NODES))
            .collect();
        pairs.extend((0..NODES).map(|i| (ROOMS + i, i, (i + 1) % NODES)));
        for (room, a, b) in pairs {
            if let Err(why) = self.talk(room, a, b).await {
                problems.push(format!("wedged: {why}"));
                break;
            }
        }
        self.close_all();
        problems.extend(self.drain().await);
        for slot in &self.slots {
            if let Some(node) = &slot.node {
                node.abort();
            }
        }
        let mut tasks: Vec<JoinSet<()>> = std::mem::take(&mut self.retired);
        for slot in &mut self.slots {
            tasks.push(std::mem::replace(&mut slot.tasks, JoinSet::new()));
        }
        for mut set in tasks {
            set.abort_all();
            while let Some(joined) = set.join_next().await {
                if let Err(e) = joined {
                    if e.is_panic() {
                        problems.push(format!("a connection's task panicked: {e}"));
                    }
                }
            }
        }
        let (violations, summary) = self.check();
        problems.extend(violations);
        let verbose = std::env::var_os("CLUSTER_PROP_TRACE").is_some();
        if problems.is_empty() && !verbose {
            return Ok(summary);
        }
        let mut report = String::new();
        for p in problems.iter().take(12) {
            report.push_str(p);
            report.push('\n');
        }
        if problems.len() > 12 {
            report.push_str(&format!("... and {} more\n", problems.len() - 12));
        }
        report.push_str("what happened:\n");
        for line in &self.trace {
            report.push_str(line);
            report.push('\n');
        }
        report.push_str("what each connection received:\n");
        for (c, conn) in self.conns.iter().enumerate() {
            let seen = lock(&conn.seen);
            report.push_str(&format!(
                "conn {c}: client {} room{} n{}{} ended {:?}\n",
                conn.client,
                conn.room,
                conn.node,
                if conn.resume { " (resume)" } else { "" },
                seen.end
            ));
            for frame in &seen.frames {
                report.push_str("    ");
                report.push_str(frame);
                report.push('\n');
            }
        }
        if problems.is_empty() {
            eprintln!("{report}");
            return Ok(summary);
        }
        Err(report)
    }

    /// Closes every connection still open, cleanly.
    fn close_all(&mut self) {
        for c in 0..self.conns.len() {
            let conn = &self.conns[c];
            if !conn.left && !conn.dropped && lock(&conn.seen).end.is_none() {
                self.conns[c].left = true;
                self.command(c, Cmd::Close(CloseReason::normal()));
            }
            self.conns[c].cmds = None;
        }
        self.note("every client closes".to_owned());
    }

    /// Waits for every connection to end (its node closes it once its client did, or cuts it
    /// when it crashes).
    async fn drain(&mut self) -> Vec<String> {
        let deadline = Instant::now() + DRAIN;
        let mut problems = Vec::new();
        for c in 0..self.conns.len() {
            let Some(task) = self.conns[c].task.take() else {
                continue;
            };
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("conn {c}: its client task failed: {e}")),
                Err(_) => {
                    let conn = &self.conns[c];
                    problems.push(format!(
                        "hang: conn {c} (client {}, room{}, n{}) did not end within {DRAIN:?} \
                         of its client's close",
                        conn.client, conn.room, conn.node
                    ));
                }
            }
        }
        problems
    }

    /// Two fresh clients join `room` on nodes `a` and `b`, and exchange a frame each way.
    async fn talk(&mut self, room: usize, a: usize, b: usize) -> Result<(), String> {
        let first = self.clients.len();
        for _ in 0..2 {
            self.clients.push(Client {
                conn: None,
                next_seq: 0,
            });
        }
        let ca = self.open(first, a, room, None);
        self.welcomed(ca).await?;
        let cb = self.open(first + 1, b, room, None);
        self.welcomed(cb).await?;
        self.send(first, ca, None, 1);
        self.received(cb, first, 0).await?;
        self.send(first + 1, cb, None, 1);
        self.received(ca, first + 1, 0).await?;
        Ok(())
    }

    async fn welcomed(&self, c: usize) -> Result<(), String> {
        self.wait_for(c, "a welcome", |seen| seen.welcome.is_some())
            .await
    }

    async fn received(&self, c: usize, sender: usize, seq: u64) -> Result<(), String> {
        self.wait_for(c, "the other client's frame", |seen| {
            seen.frames.iter().any(|f| {
                matches!(parse(f), Parsed::Data { sender: s, seq: n, .. } if s == sender && n == seq)
            })
        })
        .await
    }

    async fn wait_for(
        &self,
        c: usize,
        what: &str,
        done: impl Fn(&Seen) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + LIVE_WAIT;
        loop {
            {
                let seen = lock(&self.conns[c].seen);
                if done(&seen) {
                    return Ok(());
                }
                if let Some(end) = &seen.end {
                    let conn = &self.conns[c];
                    return Err(format!(
                        "conn {c} (room{}, n{}) ended ({end}) before {what}",
                        conn.room, conn.node
                    ));
                }
            }
            if Instant::now() >= deadline {
                let conn = &self.conns[c];
                return Err(format!(
                    "conn {c} (room{}, n{}) got no {what} within {LIVE_WAIT:?}",
                    conn.room, conn.node
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The oracle: every frame received, against what was sent.
    fn check(&self) -> (Vec<String>, Summary) {
        let mut v = Vec::new();
        let mut summary = Summary {
            sent: self.sent.len(),
            crashes: self.crashes,
            ..Summary::default()
        };
        let logs: Vec<Vec<String>> = self
            .conns
            .iter()
            .map(|c| lock(&c.seen).frames.clone())
            .collect();
        // Which client each peer is: a peer (relay, id) belongs to one client only.
        let mut clients_of: HashMap<PeerKey, usize> = HashMap::new();
        for (c, log) in logs.iter().enumerate() {
            let client = self.conns[c].client;
            for frame in log {
                if let Parsed::Welcome { peer, .. } = parse(frame) {
                    if let Some(other) = clients_of.insert(peer.clone(), client) {
                        if other != client {
                            v.push(format!(
                                "conn {c}: welcomed as {}@relay{}, a peer of client {other}, \
                                 but it is client {client}'s",
                                peer.1, peer.0
                            ));
                        }
                    }
                }
            }
        }
        let mut received: HashMap<PeerKey, HashSet<(usize, u64)>> = HashMap::new();
        let mut last: HashMap<(PeerKey, usize), u64> = HashMap::new();
        let mut delivered: HashSet<(usize, u64)> = HashSet::new();
        // Connections in the order they were opened: a resumed peer's earlier connection first.
        for (c, log) in logs.iter().enumerate() {
            let conn = &self.conns[c];
            let mut me: Option<PeerKey> = None;
            let mut welcomes = 0;
            for (i, frame) in log.iter().enumerate() {
                let at = format!(
                    "conn {c} (client {}, room{}) frame {i}",
                    conn.client, conn.room
                );
                match parse(frame) {
                    Parsed::Welcome { peer, .. } => {
                        welcomes += 1;
                        if welcomes > 1 {
                            summary.rehomed += 1;
                        } else if conn.resume {
                            summary.resumed += 1;
                        }
                        me = Some(peer);
                    }
                    Parsed::Joined(_) | Parsed::Left(_) => {}
                    Parsed::Error => summary.errors += 1,
                    Parsed::Unexpected(frame) => v.push(format!("{at}: unexpected frame {frame}")),
                    Parsed::Data { sender, seq, from } => {
                        summary.delivered += 1;
                        let Some(peer) = &me else {
                            v.push(format!("{at}: data before any welcome: {frame}"));
                            continue;
                        };
                        let Some(sent) = self.sent.get(&(sender, seq)) else {
                            v.push(format!("{at}: a frame never sent: {frame}"));
                            continue;
                        };
                        delivered.insert((sender, seq));
                        let who = format!("{}@relay{}", peer.1, peer.0);
                        if sent.room != conn.room {
                            v.push(format!(
                                "{at}: outside its room: {frame} was sent in room{} (conn {}), \
                                 received in room{} by {who}",
                                sent.room, sent.conn, conn.room
                            ));
                        }
                        if let Some(to) = &sent.to {
                            summary.addressed += 1;
                            if to != peer {
                                v.push(format!(
                                    "{at}: to the wrong peer: {frame} (sent on conn {}) was \
                                     addressed to {}@relay{}, received by {who}",
                                    sent.conn, to.1, to.0
                                ));
                            }
                        }
                        match &from {
                            Some(from) => {
                                let sender_peer = (peer.0, from.clone());
                                if sender_peer == *peer {
                                    v.push(format!("{at}: {who} received its own frame {frame}"));
                                }
                                if let Some(&owner) = clients_of.get(&sender_peer) {
                                    if owner != sender {
                                        v.push(format!(
                                            "{at}: {frame} from client {sender} is stamped \
                                             from {from}, a peer of client {owner}"
                                        ));
                                    }
                                }
                            }
                            None => v.push(format!("{at}: no `from` on {frame}")),
                        }
                        if !received
                            .entry(peer.clone())
                            .or_default()
                            .insert((sender, seq))
                        {
                            v.push(format!("{at}: twice: {who} received {frame} again"));
                        }
                        let previous = last.entry((peer.clone(), sent.conn)).or_insert(seq);
                        if seq < *previous {
                            v.push(format!(
                                "{at}: out of order: {who} received {frame} after seq {} of the \
                                 same connection (conn {})",
                                *previous, sent.conn
                            ));
                        }
                        *previous = (*previous).max(seq);
                    }
                }
            }
        }
        summary.lost_sent = self.sent.len() - delivered.len();
        (v, summary)
    }
}
