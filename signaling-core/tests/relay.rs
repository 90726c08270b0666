//! The relay state machine, driven directly (sans-IO).
// Tests take one base instant from the clock; the library itself never reads it.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use serde_json::Value;
use signaling_core::relay::{
    close_code, ConnId, Disconnect, JoinRequest, Relay, RelayConfig, RelayOutput,
};
use signaling_core::transport::CloseCode;

const OFFER: &str = r#"{"type":"webrtc/offer","value":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}"#;
const ANSWER: &str = r#"{"type":"webrtc/answer","value":"v=0\r\no=- 3 2 IN IP4 127.0.0.1\r\n"}"#;

fn cand(n: u32) -> String {
    format!(
        r#"{{"type":"webrtc/candidate","value":"candidate:{n} 1 udp 2122260223 192.0.2.{n} 5000{n} typ host"}}"#
    )
}

fn token(n: u64) -> String {
    format!("{n:032x}")
}

/// Frames sent (by connection), and connections closed (with their codes).
type Drained = (Vec<(ConnId, String)>, Vec<(ConnId, CloseCode)>);

/// Drains outputs.
fn drain(r: &mut Relay) -> Drained {
    let mut sent = Vec::new();
    let mut closed = Vec::new();
    loop {
        match r.poll_output() {
            RelayOutput::Transmit { conn, frame } => sent.push((conn, frame.into())),
            RelayOutput::Close { conn, reason } => closed.push((conn, reason.code)),
            RelayOutput::Timeout(_) => return (sent, closed),
        }
    }
}

fn frames_to(sent: &[(ConnId, String)], conn: ConnId) -> Vec<String> {
    sent.iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, f)| f.clone())
        .collect()
}

fn kinds(frames: &[String]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(f).expect("json")["type"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn join(r: &mut Relay, now: Instant, conn: u64, room: &str) -> Value {
    r.join(now, ConnId(conn), JoinRequest::new(room, token(conn)))
        .expect("joined");
    let (sent, _) = drain(r);
    let mine = frames_to(&sent, ConnId(conn));
    let welcome: Value = serde_json::from_str(&mine[0]).expect("json");
    assert_eq!(welcome["type"], "relay/welcome");
    welcome["value"].clone()
}

#[test]
fn seed_frames_are_held_in_the_mailbox_then_forwarded_byte_for_byte_in_order() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    let a = join(&mut r, now, 1, "room");
    assert_eq!(a["peers"], serde_json::json!([]));
    assert_eq!(a["polite"], false);
    // The seed client sends its offer and candidates at once, before anyone else is there.
    r.handle_frame(now, ConnId(1), OFFER);
    r.handle_frame(now, ConnId(1), cand(1));
    r.handle_frame(now, ConnId(1), cand(2));
    assert_eq!(drain(&mut r).0, vec![]);
    r.join(now, ConnId(2), JoinRequest::new("room", token(2)))
        .expect("joined");
    let (sent, _) = drain(&mut r);
    let to_b = frames_to(&sent, ConnId(2));
    assert_eq!(kinds(&to_b)[0], "relay/welcome");
    assert_eq!(&to_b[1..], &[OFFER.to_owned(), cand(1), cand(2)]);
    let welcome: Value = serde_json::from_str(&to_b[0]).expect("json");
    assert_eq!(welcome["value"]["polite"], true);
    assert_eq!(kinds(&frames_to(&sent, ConnId(1))), vec!["relay/joined"]);
    // Live forwarding, both ways, byte for byte.
    r.handle_frame(now, ConnId(2), ANSWER);
    r.handle_frame(now, ConnId(1), cand(3));
    let (sent, _) = drain(&mut r);
    assert_eq!(
        sent,
        vec![(ConnId(1), ANSWER.to_owned()), (ConnId(2), cand(3))]
    );
}

#[test]
fn the_ordering_guard_holds_candidates_until_the_description() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.handle_frame(now, ConnId(1), cand(1));
    r.handle_frame(now, ConnId(1), cand(2));
    assert_eq!(drain(&mut r).0, vec![], "held");
    r.handle_frame(now, ConnId(1), OFFER);
    let (sent, _) = drain(&mut r);
    assert_eq!(
        frames_to(&sent, ConnId(2)),
        vec![OFFER.to_owned(), cand(1), cand(2)]
    );

    let mut config = RelayConfig::default();
    config.ordering_guard = false;
    let mut r = Relay::new(config);
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.handle_frame(now, ConnId(1), cand(1));
    assert_eq!(
        drain(&mut r).0,
        vec![(ConnId(2), cand(1))],
        "guard off: forwarded at once"
    );
}

#[test]
fn a_held_candidate_that_cannot_be_routed_on_release_is_refused_to_its_sender() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    let for_b = r#"{"type":"webrtc/candidate","value":"candidate:1 1 udp 2122260223 192.0.2.1 50001 typ host","to":"p2"}"#;
    r.handle_frame(now, ConnId(1), for_b);
    assert_eq!(drain(&mut r).0, vec![], "held");
    r.handle_frame(now, ConnId(2), r#"{"type":"relay/leave"}"#);
    let _ = drain(&mut r);
    // The offer waits in the mailbox; the candidate's peer is gone.
    r.handle_frame(now, ConnId(1), OFFER);
    let (sent, closed) = drain(&mut r);
    assert!(closed.is_empty());
    assert_eq!(
        sent,
        vec![(
            ConnId(1),
            r#"{"type":"error","value":"webrtc/candidate: unknown peer"}"#.to_owned()
        )]
    );
    assert_eq!(r.stats().refused, 1);
}

#[test]
fn a_third_peer_is_refused_and_receives_nothing() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    let refused = r.join(now, ConnId(3), JoinRequest::new("room", token(3)));
    assert_eq!(refused.expect_err("full").code, close_code::ROOM_FULL);
    r.handle_frame(now, ConnId(1), OFFER);
    let (sent, _) = drain(&mut r);
    assert!(frames_to(&sent, ConnId(3)).is_empty());
    r.handle_frame(now, ConnId(3), OFFER);
    assert_eq!(
        drain(&mut r),
        (vec![], vec![]),
        "an unjoined connection is ignored"
    );
}

#[test]
fn rooms_of_more_than_two_address_with_to_and_stamp_from() {
    let now = Instant::now();
    let mut config = RelayConfig::default();
    config.room_capacity = 3;
    let mut r = Relay::new(config);
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    let c = join(&mut r, now, 3, "room");
    assert_eq!(c["peers"], serde_json::json!(["p1", "p2"]));
    r.handle_frame(
        now,
        ConnId(3),
        r#"{"type":"webrtc/offer","value":"v=0\r\n","to":"p1"}"#,
    );
    let (sent, _) = drain(&mut r);
    assert_eq!(
        sent,
        vec![(
            ConnId(1),
            r#"{"type":"webrtc/offer","value":"v=0\r\n","from":"p3"}"#.to_owned()
        )]
    );
    // Without `to`: everyone else.
    r.handle_frame(now, ConnId(1), r#"{"type":"chat","value":"hi"}"#);
    let (sent, _) = drain(&mut r);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(_, f)| f.ends_with(r#","from":"p1"}"#)));
    // An unknown or foreign peer is an error to the sender.
    r.handle_frame(now, ConnId(1), r#"{"type":"chat","value":"x","to":"p9"}"#);
    let (sent, _) = drain(&mut r);
    assert_eq!(
        sent,
        vec![(
            ConnId(1),
            r#"{"type":"error","value":"chat: unknown peer"}"#.to_owned()
        )]
    );
}

#[test]
fn resume_within_the_grace_period_keeps_the_id_and_delivers_what_was_queued() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    let a = join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.disconnected(now, ConnId(1), Disconnect::Lost);
    assert_eq!(
        drain(&mut r).0,
        vec![],
        "the others are not told during the grace period"
    );
    r.handle_frame(now, ConnId(2), ANSWER);
    r.handle_frame(now, ConnId(2), cand(7));
    assert_eq!(drain(&mut r).0, vec![], "queued for the away peer");
    let later = now + Duration::from_secs(10);
    let request =
        JoinRequest::new("room", token(3)).with_resume(a["resume"].as_str().expect("token"));
    let id = r.join(later, ConnId(3), request).expect("resumed");
    assert_eq!(id.to_string(), a["id"].as_str().expect("id"));
    let (sent, _) = drain(&mut r);
    let to_new = frames_to(&sent, ConnId(3));
    assert_eq!(
        kinds(&to_new),
        vec!["relay/welcome", "webrtc/answer", "webrtc/candidate"]
    );
    let welcome: Value = serde_json::from_str(&to_new[0]).expect("json");
    assert_ne!(
        welcome["value"]["resume"], a["resume"],
        "the token is rotated"
    );
    // The old token is spent.
    let again =
        JoinRequest::new("room", token(4)).with_resume(a["resume"].as_str().expect("token"));
    assert_eq!(
        r.join(later, ConnId(4), again).expect_err("spent").code,
        close_code::RESUME_FAILED
    );
}

#[test]
fn a_clean_close_leaves_at_once_and_frees_the_place() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    let a = join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.disconnected(now, ConnId(1), Disconnect::Clean);
    let (sent, closed) = drain(&mut r);
    assert!(closed.is_empty(), "the connection is already gone");
    let to_b = frames_to(&sent, ConnId(2));
    assert_eq!(kinds(&to_b), vec!["relay/left"]);
    let left: Value = serde_json::from_str(&to_b[0]).expect("json");
    assert_eq!(left["value"]["id"], a["id"]);
    assert_eq!(r.peer_count(), 1);
    // The place is free now, not after the grace period: a third peer joins the room of two.
    let c = join(&mut r, now, 3, "room");
    assert_eq!(c["peers"], serde_json::json!(["p2"]));
    assert_eq!(
        c["polite"], true,
        "the one that waited is impolite, the newcomer polite"
    );
    // Nothing is kept for the peer that left: its token resumes nothing, frames go to C only.
    r.handle_frame(now, ConnId(2), ANSWER);
    assert_eq!(drain(&mut r).0, vec![(ConnId(3), ANSWER.to_owned())]);
    let request =
        JoinRequest::new("room", token(4)).with_resume(a["resume"].as_str().expect("token"));
    assert_eq!(
        r.join(now, ConnId(4), request).expect_err("left").code,
        close_code::RESUME_FAILED
    );
    // A late report about the same connection changes nothing.
    r.disconnected(now, ConnId(1), Disconnect::Lost);
    assert_eq!(drain(&mut r), (vec![], vec![]));
    assert_eq!(r.peer_count(), 2);
}

#[test]
fn a_lost_connection_keeps_its_place_for_the_grace_period() {
    let now = Instant::now();
    let mut config = RelayConfig::default();
    config.resume_grace = Duration::from_secs(30);
    let mut r = Relay::new(config);
    let a = join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.disconnected(now, ConnId(1), Disconnect::Lost);
    assert_eq!(drain(&mut r), (vec![], vec![]), "no relay/left yet");
    // The place is held: the room of two is still full.
    let third = r.join(
        now + Duration::from_secs(29),
        ConnId(3),
        JoinRequest::new("room", token(3)),
    );
    assert_eq!(third.expect_err("full").code, close_code::ROOM_FULL);
    r.handle_frame(now, ConnId(2), ANSWER);
    r.handle_frame(now, ConnId(2), cand(1));
    let request =
        JoinRequest::new("room", token(4)).with_resume(a["resume"].as_str().expect("token"));
    let id = r
        .join(now + Duration::from_secs(29), ConnId(4), request)
        .expect("resumed");
    assert_eq!(id.to_string(), a["id"].as_str().expect("id"));
    let (sent, _) = drain(&mut r);
    assert_eq!(
        kinds(&frames_to(&sent, ConnId(4))),
        vec!["relay/welcome", "webrtc/answer", "webrtc/candidate"]
    );
    assert!(
        frames_to(&sent, ConnId(2)).is_empty(),
        "B never heard A left"
    );
    // The grace timer of the old connection finds the peer back and leaves it alone.
    r.handle_timeout(now + Duration::from_secs(31));
    assert_eq!(drain(&mut r), (vec![], vec![]));
    assert_eq!(r.peer_count(), 2);
}

#[test]
fn without_resume_a_lost_connection_leaves_at_once_too() {
    let now = Instant::now();
    let mut config = RelayConfig::default();
    config.resume_grace = Duration::ZERO;
    let mut r = Relay::new(config);
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.disconnected(now, ConnId(1), Disconnect::Lost);
    let (sent, _) = drain(&mut r);
    assert_eq!(kinds(&frames_to(&sent, ConnId(2))), vec!["relay/left"]);
    join(&mut r, now, 3, "room");
}

#[test]
fn a_slow_consumer_is_lost_not_gone() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    let a = join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.slow_consumer(now, ConnId(1));
    let (sent, closed) = drain(&mut r);
    assert_eq!(closed, vec![(ConnId(1), close_code::SLOW_CONSUMER)]);
    assert!(sent.is_empty(), "no relay/left during the grace: {sent:?}");
    let request =
        JoinRequest::new("room", token(3)).with_resume(a["resume"].as_str().expect("token"));
    r.join(now, ConnId(3), request).expect("resumed");
}

#[test]
fn after_the_grace_period_the_peer_is_gone() {
    let now = Instant::now();
    let mut config = RelayConfig::default();
    config.resume_grace = Duration::from_secs(5);
    let mut r = Relay::new(config);
    let a = join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.disconnected(now, ConnId(1), Disconnect::Lost);
    let _ = drain(&mut r);
    r.handle_timeout(now + Duration::from_secs(5));
    let (sent, _) = drain(&mut r);
    assert_eq!(kinds(&frames_to(&sent, ConnId(2))), vec!["relay/left"]);
    let request =
        JoinRequest::new("room", token(3)).with_resume(a["resume"].as_str().expect("token"));
    let err = r
        .join(now + Duration::from_secs(6), ConnId(3), request)
        .expect_err("expired");
    assert_eq!(err.code, close_code::RESUME_FAILED);
    assert_eq!(r.peer_count(), 1);
}

#[test]
fn a_resume_token_is_the_only_way_to_take_over_an_id() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    let a = join(&mut r, now, 1, "room");
    // A wrong token, or the right token for another room, is refused.
    let wrong = JoinRequest::new("room", token(2)).with_resume("0123456789abcdef0123456789abcdef");
    assert_eq!(
        r.join(now, ConnId(2), wrong).expect_err("wrong").code,
        close_code::RESUME_FAILED
    );
    let elsewhere =
        JoinRequest::new("other", token(3)).with_resume(a["resume"].as_str().expect("t"));
    assert_eq!(
        r.join(now, ConnId(3), elsewhere).expect_err("room").code,
        close_code::RESUME_FAILED
    );
    // The holder of the token replaces a live connection (the old one is told why).
    let holder = JoinRequest::new("room", token(4)).with_resume(a["resume"].as_str().expect("t"));
    r.join(now, ConnId(4), holder).expect("resumed");
    let (_, closed) = drain(&mut r);
    assert_eq!(closed, vec![(ConnId(1), close_code::REPLACED)]);
}

#[test]
fn limits_close_with_their_codes() {
    let now = Instant::now();
    let mut config = RelayConfig::default();
    config.max_frame_len = 100;
    config.rate_per_sec = 10;
    config.rate_burst = 5;
    config.idle_timeout = Duration::from_secs(60);
    config.max_rooms = 2;
    config.max_peers = 3;
    let mut r = Relay::new(config);
    join(&mut r, now, 1, "a");
    // Frame size.
    r.handle_frame(
        now,
        ConnId(1),
        format!(r#"{{"type":"x","value":"{}"}}"#, "y".repeat(200)),
    );
    assert_eq!(
        drain(&mut r).1,
        vec![(ConnId(1), CloseCode::MESSAGE_TOO_BIG)]
    );
    // Rate: a burst of 5, then 10 per second.
    join(&mut r, now, 2, "a");
    for _ in 0..5 {
        r.handle_frame(now, ConnId(2), r#"{"type":"x","value":1}"#);
    }
    assert!(drain(&mut r).1.is_empty());
    r.handle_frame(
        now + Duration::from_millis(100),
        ConnId(2),
        r#"{"type":"x","value":1}"#,
    );
    assert!(drain(&mut r).1.is_empty(), "refilled after 100 ms");
    r.handle_frame(
        now + Duration::from_millis(100),
        ConnId(2),
        r#"{"type":"x","value":1}"#,
    );
    assert_eq!(drain(&mut r).1, vec![(ConnId(2), close_code::RATE_LIMITED)]);
    // Rooms and peers.
    join(&mut r, now, 3, "b");
    join(&mut r, now, 4, "c");
    assert_eq!(
        r.join(now, ConnId(5), JoinRequest::new("d", token(5)))
            .expect_err("rooms")
            .code,
        close_code::TOO_MANY_ROOMS
    );
    join(&mut r, now, 6, "b");
    assert_eq!(
        r.join(now, ConnId(7), JoinRequest::new("c", token(7)))
            .expect_err("peers")
            .code,
        close_code::TOO_MANY_PEERS
    );
    // Idle.
    r.handle_timeout(now + Duration::from_secs(61));
    let (_, closed) = drain(&mut r);
    assert!(
        closed.contains(&(ConnId(3), close_code::IDLE)),
        "{closed:?}"
    );
    // Bad room names.
    assert_eq!(
        r.join(now, ConnId(8), JoinRequest::new("", token(8)))
            .expect_err("empty")
            .code,
        close_code::BAD_REQUEST
    );
    // Each close and refusal above is counted under its reason, once.
    let idle = closed
        .iter()
        .filter(|(_, code)| *code == close_code::IDLE)
        .count() as u64;
    let stats = r.stats();
    assert_eq!(
        (
            stats.closes.too_big,
            stats.closes.rate_limited,
            stats.closes.idle,
            stats.closes.slow_consumer
        ),
        (1, 1, idle, 0)
    );
    assert_eq!(stats.limit_closes, 2 + idle);
    let refused = stats.joins_refused;
    assert_eq!(
        (
            refused.too_many_rooms,
            refused.too_many_peers,
            refused.bad_request,
            refused.room_full,
            refused.resume_failed
        ),
        (1, 1, 1, 0, 0)
    );
}

#[test]
fn frames_received_forwarded_and_the_relays_notices_are_counted_apart() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    join(&mut r, now, 1, "room");
    // Into the mailbox: received and queued, forwarded when the second peer joins.
    r.handle_frame(now, ConnId(1), OFFER);
    join(&mut r, now, 2, "room");
    r.handle_frame(now, ConnId(2), ANSWER);
    r.handle_frame(now, ConnId(2), cand(1));
    // Refused with an error frame, not forwarded.
    r.handle_frame(now, ConnId(2), r#"{"type":"relay/x","value":0}"#);
    let (sent, _) = drain(&mut r);
    // A third peer is refused: room full.
    assert_eq!(
        r.join(now, ConnId(3), JoinRequest::new("room", token(3)))
            .expect_err("full")
            .code,
        close_code::ROOM_FULL
    );
    let stats = r.stats();
    assert_eq!(stats.received, 4);
    // The offer to 2; the answer and the candidate to 1.
    assert_eq!(stats.forwarded, 3);
    assert_eq!(stats.queued, 1);
    assert_eq!(stats.refused, 1);
    // Two welcomes and one `relay/joined` (the first welcome was drained by `join`).
    assert_eq!(stats.notices, 3);
    assert_eq!(
        kinds(&frames_to(&sent, ConnId(1))),
        ["webrtc/answer", "webrtc/candidate"]
    );
    assert_eq!(stats.joins_refused.room_full, 1);
}

#[test]
fn the_mailbox_is_bounded_in_count_bytes_and_age() {
    let now = Instant::now();
    let mut config = RelayConfig::default();
    config.mailbox_frames = 2;
    config.mailbox_age = Duration::from_secs(10);
    let mut r = Relay::new(config);
    join(&mut r, now, 1, "room");
    r.handle_frame(now, ConnId(1), OFFER);
    r.handle_frame(now, ConnId(1), r#"{"type":"x","value":1}"#);
    r.handle_frame(now, ConnId(1), r#"{"type":"x","value":2}"#);
    let (sent, _) = drain(&mut r);
    assert_eq!(
        sent,
        vec![(
            ConnId(1),
            r#"{"type":"error","value":"x: mailbox full"}"#.to_owned()
        )]
    );
    r.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(r.stats().expired, 2);
    join(&mut r, now + Duration::from_secs(11), 2, "room");
    let (sent, _) = drain(&mut r);
    assert!(sent.is_empty(), "nothing stale delivered: {sent:?}");
}

#[test]
fn reserved_and_malformed_frames_get_error_frames() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    join(&mut r, now, 1, "room");
    join(&mut r, now, 2, "room");
    r.handle_frame(now, ConnId(1), r#"{"type":"relay/welcome","value":{}}"#);
    r.handle_frame(now, ConnId(1), "not json");
    let (sent, closed) = drain(&mut r);
    assert!(closed.is_empty());
    assert_eq!(kinds(&frames_to(&sent, ConnId(1))), vec!["error", "error"]);
    assert!(frames_to(&sent, ConnId(2)).is_empty());
    // relay/leave leaves at once, no grace.
    r.handle_frame(now, ConnId(1), r#"{"type":"relay/leave"}"#);
    let (sent, closed) = drain(&mut r);
    assert_eq!(closed, vec![(ConnId(1), CloseCode::NORMAL)]);
    assert_eq!(kinds(&frames_to(&sent, ConnId(2))), vec!["relay/left"]);
}

#[test]
fn churn_does_not_grow_the_relay() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    for i in 0..10_000u64 {
        r.join(
            now,
            ConnId(i),
            JoinRequest::new(format!("room{}", i % 7), token(i)),
        )
        .expect("joined");
        r.handle_frame(now, ConnId(i), OFFER);
        r.handle_frame(now, ConnId(i), r#"{"type":"relay/leave"}"#);
        let _ = drain(&mut r);
    }
    assert_eq!(r.peer_count(), 0);
    assert_eq!(r.room_count(), 0);
    assert!(format!("{r:?}").len() < 4096, "state left behind: {r:?}");
}

/// A registry that cannot tell when its rooms change (as one shared with other processes):
/// the relay asks it again for every frame.
#[derive(Debug, Default)]
struct Uncounted(signaling_core::relay::LocalRooms);

impl signaling_core::relay::RoomRegistry for Uncounted {
    fn members(&self, room: &str) -> &[signaling_core::relay::PeerId] {
        self.0.members(room)
    }
    fn add(&mut self, room: &str, peer: signaling_core::relay::PeerId) {
        self.0.add(room, peer);
    }
    fn remove(&mut self, room: &str, peer: &signaling_core::relay::PeerId) -> bool {
        self.0.remove(room, peer)
    }
    fn room_count(&self) -> usize {
        self.0.room_count()
    }
}

/// Who got `frame` from connection 1, in order.
fn receivers<R: signaling_core::relay::RoomRegistry>(
    r: &mut Relay<R>,
    now: Instant,
    frame: &str,
) -> Vec<ConnId> {
    r.handle_frame(now, ConnId(1), frame);
    let mut to = Vec::new();
    while let RelayOutput::Transmit { conn, .. } = r.poll_output() {
        to.push(conn);
    }
    to
}

#[test]
fn a_run_of_frames_from_one_peer_follows_joins_and_leaves() {
    fn check<R: signaling_core::relay::RoomRegistry>(mut r: Relay<R>) {
        let now = Instant::now();
        let joined = |r: &mut Relay<R>, conn: u64| {
            r.join(now, ConnId(conn), JoinRequest::new("room", token(conn)))
                .expect("joined");
            while !matches!(r.poll_output(), RelayOutput::Timeout(_)) {}
        };
        joined(&mut r, 1);
        joined(&mut r, 2);
        let frame = r#"{"type":"x","value":1}"#;
        assert_eq!(receivers(&mut r, now, frame), [ConnId(2)]);
        assert_eq!(receivers(&mut r, now, frame), [ConnId(2)]);
        joined(&mut r, 3);
        assert_eq!(receivers(&mut r, now, frame), [ConnId(2), ConnId(3)]);
        // Another peer's frames in between, then the first one's again.
        r.handle_frame(now, ConnId(3), frame);
        while !matches!(r.poll_output(), RelayOutput::Timeout(_)) {}
        assert_eq!(receivers(&mut r, now, frame), [ConnId(2), ConnId(3)]);
        r.handle_frame(now, ConnId(2), r#"{"type":"relay/leave"}"#);
        while !matches!(r.poll_output(), RelayOutput::Timeout(_)) {}
        assert_eq!(receivers(&mut r, now, frame), [ConnId(3)]);
        // Away (lost connection, may resume): still in the room, its frames are kept for it.
        r.disconnected(now, ConnId(3), Disconnect::Lost);
        while !matches!(r.poll_output(), RelayOutput::Timeout(_)) {}
        assert_eq!(receivers(&mut r, now, frame), []);
        assert_eq!(r.stats().queued, 1);
    }
    let mut config = RelayConfig::default();
    config.room_capacity = 4;
    check(Relay::new(config.clone()));
    check(Relay::with_registry(config, Uncounted::default()));
}

#[test]
fn roles_follow_who_joined_first_and_survive_a_resume() {
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    let a = join(&mut r, now, 1, "room");
    let b = join(&mut r, now, 2, "room");
    assert_eq!(
        (a["polite"].clone(), b["polite"].clone()),
        (false.into(), true.into())
    );
    // A (impolite) loses its socket and comes back while B is there: still impolite, or both
    // sides would yield to each other's offers.
    r.disconnected(now, ConnId(1), Disconnect::Lost);
    let request =
        JoinRequest::new("room", token(3)).with_resume(a["resume"].as_str().expect("token"));
    r.join(now, ConnId(3), request).expect("resumed");
    let (sent, _) = drain(&mut r);
    let welcome: Value = serde_json::from_str(&frames_to(&sent, ConnId(3))[0]).expect("json");
    assert_eq!(welcome["value"]["polite"], false);
    // B resumes too: still polite.
    r.disconnected(now, ConnId(2), Disconnect::Lost);
    let request =
        JoinRequest::new("room", token(4)).with_resume(b["resume"].as_str().expect("token"));
    r.join(now, ConnId(4), request).expect("resumed");
    let (sent, _) = drain(&mut r);
    let welcome: Value = serde_json::from_str(&frames_to(&sent, ConnId(4))[0]).expect("json");
    assert_eq!(welcome["value"]["polite"], true);
    // A leaves for good: B, alone, waits for the next peer as the impolite one, and the
    // newcomer is polite.
    r.handle_frame(now, ConnId(3), r#"{"type":"relay/leave"}"#);
    drain(&mut r);
    let c = join(&mut r, now, 5, "room");
    assert_eq!(c["polite"], true);
    r.disconnected(now, ConnId(4), Disconnect::Lost);
    let token_b = welcome["value"]["resume"]
        .as_str()
        .expect("token")
        .to_owned();
    r.join(
        now,
        ConnId(6),
        JoinRequest::new("room", token(6)).with_resume(token_b),
    )
    .expect("resumed");
    let (sent, _) = drain(&mut r);
    let welcome: Value = serde_json::from_str(&frames_to(&sent, ConnId(6))[0]).expect("json");
    assert_eq!(welcome["value"]["polite"], false);
}

#[test]
fn clients_read_the_relays_notices() {
    use signaling_core::relay::Notice;
    use signaling_core::wire::{self, Message};
    let now = Instant::now();
    let mut r = Relay::new(RelayConfig::default());
    r.join(now, ConnId(1), JoinRequest::new("lobby", token(1)))
        .expect("joined");
    r.join(now, ConnId(2), JoinRequest::new("lobby", token(2)))
        .expect("joined");
    r.handle_frame(now, ConnId(2), r#"{"type":"relay/leave"}"#);
    let (sent, _) = drain(&mut r);
    let notices: Vec<(ConnId, Notice)> = sent
        .iter()
        .map(
            |(conn, frame)| match wire::decode(frame).expect("a frame") {
                Message::Unknown(u) => (*conn, Notice::parse(&u).expect("a notice")),
                other => panic!("not a relay message: {other:?}"),
            },
        )
        .collect();
    let [(ConnId(1), Notice::Welcome(w1)), (ConnId(2), Notice::Welcome(w2)), (ConnId(1), Notice::Joined { id: joined }), (ConnId(1), Notice::Left { id: left })] =
        &notices[..]
    else {
        panic!("{notices:?}")
    };
    assert_eq!(
        (w1.room.as_str(), w1.polite, w1.peers.len()),
        ("lobby", false, 0)
    );
    assert_eq!((w2.polite, w2.peers.clone()), (true, vec![w1.id.clone()]));
    assert_eq!((joined, left), (&w2.id, &w2.id));
    assert_eq!(w1.resume.len(), 32);
    assert!(w1.ice_servers.is_empty());
    // Anything else is not a notice.
    let other = wire::UnknownMessage {
        kind: "relay/welcome".into(),
        frame: r#"{"type":"relay/welcome","value":7}"#.into(),
    };
    assert_eq!(Notice::parse(&other), None);
}
