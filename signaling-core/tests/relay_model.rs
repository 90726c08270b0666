//! A property test of the relay: with many rooms and random joins, leaves, reconnects (resume)
//! and frames, no frame is ever delivered outside its room, to the wrong peer (or back to its
//! sender), twice, or out of order.
// Tests take one base instant from the clock; the library itself never reads it.
#![allow(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;
use signaling_core::relay::{ConnId, JoinRequest, PeerId, Relay, RelayConfig, RelayOutput};

#[derive(Clone, Debug)]
enum Op {
    Join {
        client: usize,
        room: usize,
        resume: bool,
    },
    Send {
        client: usize,
        to_first: bool,
    },
    Disconnect {
        client: usize,
    },
    Leave {
        client: usize,
    },
    Tick {
        secs: u64,
    },
}

fn op(clients: usize, rooms: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..clients, 0..rooms, any::<bool>()).prop_map(|(client, room, resume)| Op::Join { client, room, resume }),
        6 => (0..clients, any::<bool>()).prop_map(|(client, to_first)| Op::Send { client, to_first }),
        1 => (0..clients).prop_map(|client| Op::Disconnect { client }),
        1 => (0..clients).prop_map(|client| Op::Leave { client }),
        1 => (0u64..40).prop_map(|secs| Op::Tick { secs }),
    ]
}

#[derive(Default)]
struct Client {
    conn: Option<ConnId>,
    peer: Option<PeerId>,
    room: Option<String>,
    resume: Option<String>,
    seq: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn frames_stay_in_their_room_reach_the_right_peer_once_and_in_order(
        capacity in 2usize..4,
        ops in proptest::collection::vec(op(8, 3), 1..120),
    ) {
        let mut config = RelayConfig::default();
        config.room_capacity = capacity;
        config.ordering_guard = false;
        config.resume_grace = Duration::from_secs(20);
        config.mailbox_age = Duration::from_secs(15);
        let mut relay = Relay::new(config);
        let mut now = Instant::now();
        let mut clients: Vec<Client> = (0..8).map(|_| Client::default()).collect();
        let mut next_conn = 0u64;
        let mut conn_peer: HashMap<ConnId, PeerId> = HashMap::new();
        // Per frame id: the sender's peer and room when sent.
        let mut sent_from: HashMap<String, (PeerId, String)> = HashMap::new();
        let mut delivered: HashSet<(PeerId, String)> = HashSet::new();
        let mut last_seq: HashMap<(PeerId, PeerId), u64> = HashMap::new();
        // Which room each peer id has been in (ids are never reused across rooms).
        let mut peer_room: HashMap<PeerId, String> = HashMap::new();

        for op in ops {
            match op {
                Op::Join { client, room, resume } => {
                    let c = &mut clients[client];
                    if c.conn.is_some() {
                        continue;
                    }
                    next_conn += 1;
                    let conn = ConnId(next_conn);
                    let room = c.room.clone().filter(|_| resume).unwrap_or(format!("r{room}"));
                    let mut request = JoinRequest::new(room.clone(), format!("{next_conn:032}"));
                    if resume {
                        if let Some(t) = &c.resume {
                            request = request.with_resume(t.clone());
                        }
                    }
                    if let Ok(peer) = relay.join(now, conn, request) {
                        if let Some(old) = &c.peer {
                            if resume && *old != peer {
                                prop_assert!(false, "resume gave a new id");
                            }
                        }
                        c.conn = Some(conn);
                        c.peer = Some(peer.clone());
                        c.room = Some(room.clone());
                        conn_peer.insert(conn, peer.clone());
                        if let Some(r) = peer_room.insert(peer.clone(), room.clone()) {
                            prop_assert_eq!(r, room, "an id moved rooms");
                        }
                    }
                }
                Op::Send { client, to_first } => {
                    let c = &mut clients[client];
                    let (Some(conn), Some(peer), Some(room)) = (c.conn, c.peer.clone(), c.room.clone()) else {
                        continue;
                    };
                    c.seq += 1;
                    let id = format!("{}:{}", peer.0, c.seq);
                    let frame = if to_first && capacity > 2 {
                        // Address the first other peer this test knows in the room, if any.
                        let target = peer_room.iter().find(|(p, r)| **r == room && **p != peer).map(|(p, _)| p.0.clone());
                        match target {
                            Some(t) => format!(r#"{{"type":"x","value":"{id}","to":"{t}"}}"#),
                            None => format!(r#"{{"type":"x","value":"{id}"}}"#),
                        }
                    } else {
                        format!(r#"{{"type":"x","value":"{id}"}}"#)
                    };
                    sent_from.insert(id, (peer, room));
                    relay.handle_frame(now, conn, &frame);
                }
                Op::Disconnect { client } => {
                    let c = &mut clients[client];
                    if let Some(conn) = c.conn.take() {
                        relay.disconnected(now, conn);
                    }
                }
                Op::Leave { client } => {
                    let c = &mut clients[client];
                    if let Some(conn) = c.conn {
                        relay.handle_frame(now, conn, r#"{"type":"relay/leave"}"#);
                    }
                }
                Op::Tick { secs } => {
                    now += Duration::from_secs(secs);
                    relay.handle_timeout(now);
                }
            }
            // Drain and check every delivery.
            loop {
                match relay.poll_output() {
                    RelayOutput::Send { conn, frame } => {
                        let v: Value = serde_json::from_str(&frame).expect("json");
                        if v["type"] == "relay/welcome" {
                            // Resume tokens rotate with every welcome.
                            if let Some(c) = clients.iter_mut().find(|c| c.conn == Some(conn)) {
                                c.resume = v["value"]["resume"].as_str().map(str::to_owned);
                            }
                        }
                        if v["type"] != "x" {
                            continue;
                        }
                        let id = v["value"].as_str().expect("id").to_owned();
                        let recipient = conn_peer.get(&conn).cloned().expect("a known connection");
                        let (sender, room) = sent_from.get(&id).cloned().expect("a sent frame");
                        prop_assert_ne!(&recipient, &sender, "sent back to its sender");
                        prop_assert_eq!(peer_room.get(&recipient), Some(&room), "delivered outside its room");
                        if let Some(to) = v.get("to").and_then(Value::as_str) {
                            prop_assert!(false, "`to` leaked to the recipient: {}", to);
                        }
                        if capacity > 2 {
                            prop_assert_eq!(v["from"].as_str(), Some(sender.0.as_str()));
                        }
                        prop_assert!(delivered.insert((recipient.clone(), id.clone())), "delivered twice: {}", id);
                        let seq: u64 = id.rsplit(':').next().and_then(|s| s.parse().ok()).expect("seq");
                        let last = last_seq.entry((sender, recipient)).or_insert(0);
                        prop_assert!(seq > *last, "out of order: {} after {}", seq, last);
                        *last = seq;
                    }
                    RelayOutput::Close { conn, .. } => {
                        for c in clients.iter_mut() {
                            if c.conn == Some(conn) {
                                c.conn = None;
                            }
                        }
                    }
                    RelayOutput::Timeout(_) => break,
                }
            }
        }
    }
}
