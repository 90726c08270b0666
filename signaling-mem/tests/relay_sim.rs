//! The relay on the simulated network: with many rooms and random joins, leaves, reconnects
//! (resume) and frames, over links with delay and jitter, no frame is ever delivered outside its
//! room, to the wrong peer, twice, or out of order.
// Tests take one base instant from the clock; nothing else reads it.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;
use signaling_core::relay::{ConnId, Disconnect, JoinRequest, Relay, RelayConfig, RelayOutput};
use signaling_mem::sim::{LinkConfig, Node, NodeId, SimNet};

/// Control frames between the clients and the relay node stand for opening and losing a
/// socket: `sim/connect <conn> <room> [resume]`, `sim/disconnect <conn>`. Frames from the relay
/// to a client carry the connection they were sent on (`<conn>|<frame>`), so that a client
/// ignores what arrives for a socket it no longer has, as TCP would.
enum Role {
    Relay {
        relay: Box<Relay>,
        node_of: HashMap<ConnId, NodeId>,
        out: VecDeque<(NodeId, String)>,
    },
    Client(Client),
}

#[derive(Default)]
struct Client {
    index: usize,
    conn: Option<u64>,
    room: Option<String>,
    peer: Option<String>,
    resume: Option<String>,
    seq: u64,
    /// The other peers of the room, as the welcome and joined/left messages tell.
    others: Vec<String>,
    out: VecDeque<String>,
    /// (sender peer, seq) last seen per sender.
    last: HashMap<String, u64>,
    seen: std::collections::HashSet<(String, String, u64)>,
    violations: Vec<String>,
}

impl Node for Role {
    fn handle_frame(&mut self, now: Instant, from: NodeId, frame: &str) {
        match self {
            Role::Relay {
                relay,
                node_of,
                out,
            } => {
                if let Some(rest) = frame.strip_prefix("sim/connect ") {
                    let mut parts = rest.split(' ');
                    let conn = ConnId(parts.next().and_then(|c| c.parse().ok()).expect("conn"));
                    let room = parts.next().expect("room");
                    let mut request = JoinRequest::new(room, format!("{:032}", conn.0));
                    if let Some(token) = parts.next() {
                        request = request.with_resume(token);
                    }
                    node_of.insert(conn, from);
                    if let Err(reason) = relay.join(now, conn, request) {
                        out.push_back((from, format!("{}|closed {}", conn.0, reason.code)));
                        node_of.remove(&conn);
                    }
                } else if let Some(conn) = frame.strip_prefix("sim/disconnect ") {
                    let conn = ConnId(conn.parse().expect("conn"));
                    relay.disconnected(now, conn, Disconnect::Lost);
                    node_of.remove(&conn);
                } else {
                    let (conn, frame) = frame.split_once('|').expect("conn|frame");
                    relay.handle_frame(now, ConnId(conn.parse().expect("conn")), frame);
                }
                drain(relay, node_of, out);
            }
            Role::Client(c) => c.receive(frame),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Role::Relay {
            relay,
            node_of,
            out,
        } = self
        {
            relay.handle_timeout(now);
            drain(relay, node_of, out);
        }
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<(NodeId, String)> {
        match self {
            Role::Relay { out, .. } => out.pop_front(),
            Role::Client(c) => c.out.pop_front().map(|f| (NodeId(0), f)),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Role::Relay { relay, .. } => relay.next_timeout(),
            Role::Client(_) => None,
        }
    }
}

fn drain(
    relay: &mut Relay,
    node_of: &mut HashMap<ConnId, NodeId>,
    out: &mut VecDeque<(NodeId, String)>,
) {
    loop {
        match relay.poll_output() {
            RelayOutput::Transmit { conn, frame } => {
                if let Some(node) = node_of.get(&conn) {
                    out.push_back((*node, format!("{}|{frame}", conn.0)));
                }
            }
            RelayOutput::Close { conn, reason } => {
                if let Some(node) = node_of.remove(&conn) {
                    out.push_back((node, format!("{}|closed {}", conn.0, reason.code)));
                }
            }
            RelayOutput::Timeout(_) => return,
        }
    }
}

impl Client {
    fn receive(&mut self, frame: &str) {
        let (conn, frame) = frame.split_once('|').expect("conn|frame");
        if Some(conn.parse().expect("conn")) != self.conn {
            return; // A socket this client no longer has.
        }
        if frame.starts_with("closed ") {
            self.conn = None;
            return;
        }
        let v: Value = serde_json::from_str(frame).expect("json");
        match v["type"].as_str() {
            Some("relay/welcome") => {
                let id = v["value"]["id"].as_str().map(str::to_owned);
                self.peer = id;
                self.resume = v["value"]["resume"].as_str().map(str::to_owned);
                self.others = v["value"]["peers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            Some("relay/joined") => {
                if let Some(id) = v["value"]["id"].as_str() {
                    self.others.push(id.to_owned());
                }
            }
            Some("relay/left") => {
                let id = v["value"]["id"].as_str().unwrap_or_default();
                self.others.retain(|o| o != id);
            }
            Some("x") => {
                let value = v["value"].as_str().expect("payload");
                let mut parts = value.split(':');
                let (sender, room, seq) = (
                    parts.next().expect("sender").to_owned(),
                    parts.next().expect("room").to_owned(),
                    parts
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .expect("seq"),
                );
                let me = self.peer.clone().unwrap_or_default();
                if Some(&room) != self.room.as_ref() {
                    self.violations.push(format!(
                        "{me} in {:?} got a frame of room {room}",
                        self.room
                    ));
                }
                if sender == me {
                    self.violations.push(format!("{me} got its own frame back"));
                }
                if !self.seen.insert((me.clone(), sender.clone(), seq)) {
                    self.violations
                        .push(format!("{me} got {sender}:{seq} twice"));
                }
                let last = self.last.entry(format!("{me}<-{sender}")).or_insert(0);
                if seq <= *last {
                    self.violations
                        .push(format!("{me} got {sender}:{seq} after {last}"));
                }
                *last = seq;
            }
            _ => {}
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Join {
        client: usize,
        room: usize,
        resume: bool,
    },
    Send {
        client: usize,
        addressed: bool,
    },
    Disconnect {
        client: usize,
    },
    Leave {
        client: usize,
    },
    Run {
        millis: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize, 0..3usize, any::<bool>()).prop_map(|(client, room, resume)| Op::Join { client, room, resume }),
        6 => (0..8usize, any::<bool>()).prop_map(|(client, addressed)| Op::Send { client, addressed }),
        1 => (0..8usize).prop_map(|client| Op::Disconnect { client }),
        1 => (0..8usize).prop_map(|client| Op::Leave { client }),
        3 => (0u64..3_000).prop_map(|millis| Op::Run { millis }),
    ]
}

fn client(net: &mut SimNet<Role>, i: usize) -> &mut Client {
    match net.node_mut(NodeId(i + 1)) {
        Role::Client(c) => c,
        Role::Relay { .. } => unreachable!("node 0 is the relay"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_frame_leaves_its_room_or_arrives_twice_or_out_of_order(
        capacity in 2usize..4,
        seed: u64,
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let mut config = RelayConfig::default();
        config.room_capacity = capacity;
        config.ordering_guard = false;
        config.resume_grace = Duration::from_secs(5);
        config.mailbox_age = Duration::from_secs(4);
        let start = Instant::now();
        let mut net = SimNet::new(seed, start);
        let relay = net.add_node(Role::Relay { relay: Box::new(Relay::new(config)), node_of: HashMap::new(), out: VecDeque::new() });
        let link = LinkConfig::default().with_delay(Duration::from_millis(20)).with_jitter(Duration::from_millis(40));
        for i in 0..8 {
            let id = net.add_node(Role::Client(Client { index: i, ..Client::default() }));
            net.connect(relay, id, link.clone());
        }
        let mut next_conn = 0u64;
        for op in ops {
            match op {
                Op::Join { client: i, room, resume } => {
                    let c = client(&mut net, i);
                    if c.conn.is_some() {
                        continue;
                    }
                    next_conn += 1;
                    let room = match (&c.room, resume) {
                        (Some(r), true) => r.clone(),
                        _ => format!("r{room}"),
                    };
                    let token = if resume { c.resume.clone() } else { None };
                    if !resume {
                        c.peer = None;
                    }
                    c.conn = Some(next_conn);
                    c.room = Some(room.clone());
                    let mut f = format!("sim/connect {next_conn} {room}");
                    if let Some(t) = token {
                        f.push(' ');
                        f.push_str(&t);
                    }
                    c.out.push_back(f);
                }
                Op::Send { client: i, addressed } => {
                    let c = client(&mut net, i);
                    let (Some(conn), Some(peer), Some(room)) = (c.conn, c.peer.clone(), c.room.clone()) else {
                        continue;
                    };
                    c.seq += 1;
                    let seq = c.seq;
                    // Rooms of more than two address one peer with `to`.
                    let frame = match c.others.first().filter(|_| addressed && capacity > 2) {
                        Some(to) => format!(r#"{conn}|{{"type":"x","value":"{peer}:{room}:{seq}:{to}","to":"{to}"}}"#),
                        None => format!(r#"{conn}|{{"type":"x","value":"{peer}:{room}:{seq}"}}"#),
                    };
                    c.out.push_back(frame);
                }
                Op::Disconnect { client: i } => {
                    let c = client(&mut net, i);
                    if let Some(conn) = c.conn.take() {
                        c.out.push_back(format!("sim/disconnect {conn}"));
                    }
                }
                Op::Leave { client: i } => {
                    let c = client(&mut net, i);
                    if let Some(conn) = c.conn {
                        c.out.push_back(format!(r#"{conn}|{{"type":"relay/leave"}}"#));
                    }
                }
                Op::Run { millis } => {
                    let until = net.now() + Duration::from_millis(millis);
                    net.run_until(until, 100_000).expect("settles");
                }
            }
        }
        net.run_until(net.now() + Duration::from_secs(60), 1_000_000).expect("settles");
        for i in 0..8 {
            let c = client(&mut net, i);
            prop_assert!(c.violations.is_empty(), "client {}: {:?}", c.index, c.violations);
        }
    }
}
