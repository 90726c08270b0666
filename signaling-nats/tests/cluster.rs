//! Relay nodes sharing rooms through a real NATS server (Debian's `nats-server`, started by the
//! test on a free 127.0.0.1 port with JetStream and a temporary store). The nodes run in this
//! process, each with its own relay and its own NATS connection; clients are in-memory
//! connections served by the node they "connected" to.
use std::time::Duration;

use signaling::relay::{close_code, DriverConfig, JoinRequest, RelayConfig, RelayHandle};
use signaling::transport::{CloseCode, CloseReason, Frame, Transport, TransportError};
use signaling_mem::MemConnection;
use signaling_nats::testing::NatsServer;
use signaling_nats::{ClusterConfig, ClusterNode, CLUSTER_UNAVAILABLE};

const CHROME_OFFER: &str = include_str!("../../signaling-core/tests/data/chrome-offer.sdp");
const CHROME_ANSWER: &str = include_str!("../../signaling-core/tests/data/chrome-answer.sdp");

const WAIT: Duration = Duration::from_secs(10);

fn cluster_config(server: &NatsServer, name: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(server.url(), name);
    config.heartbeat = Duration::from_millis(200);
    config.node_timeout = Duration::from_millis(1000);
    config.retransmit = Duration::from_millis(300);
    config.release_after = Duration::from_millis(500);
    config.join_timeout = Duration::from_secs(3);
    config
}

async fn node_with(server: &NatsServer, name: &str, relay: RelayConfig) -> ClusterNode {
    let relay = RelayHandle::new(relay, DriverConfig::default());
    ClusterNode::start(cluster_config(server, name), relay)
        .await
        .expect("node starts")
}

async fn node(server: &NatsServer, name: &str) -> ClusterNode {
    node_with(server, name, RelayConfig::default()).await
}

/// A client connected to `node`, asking for `room` (resuming with `resume`).
fn connect(node: &ClusterNode, room: &str, resume: Option<&str>) -> MemConnection {
    let (client, server) = signaling_mem::pair();
    let mut request = JoinRequest::new(room, signaling::relay::fresh_token());
    if let Some(token) = resume {
        request = request.with_resume(token);
    }
    let node = node.clone();
    tokio::spawn(async move { node.serve(server, request).await });
    client
}

async fn recv(client: &mut MemConnection) -> Frame {
    match tokio::time::timeout(WAIT, client.recv()).await {
        Ok(Ok(Some(frame))) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The next frame that is not one of the relay's notices.
async fn recv_data(client: &mut MemConnection) -> Frame {
    loop {
        let frame = recv(client).await;
        if !frame.starts_with("{\"type\":\"relay/") {
            return frame;
        }
    }
}

async fn closed_with(client: &mut MemConnection) -> CloseCode {
    loop {
        match tokio::time::timeout(WAIT, client.recv()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Err(TransportError::Closed(Some(reason)))) => return reason.code,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

fn welcome_value(frame: &Frame) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(frame).expect("JSON");
    assert_eq!(value["type"], "relay/welcome", "{frame}");
    value["value"].clone()
}

fn seed(kind: &str, value: &str) -> String {
    serde_json::json!({"type": kind, "value": value}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_two_nodes_negotiate_with_the_seed_frames_byte_for_byte() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node(&server, "n1").await;
    let n2 = node(&server, "n2").await;

    // The seed client sends its offer the moment its socket opens: it waits in the mailbox of
    // the room's node (n1, where the room was first asked for).
    let mut a = connect(&n1, "call", None);
    welcome_value(&recv(&mut a).await);
    let offer = seed("webrtc/offer", CHROME_OFFER);
    let candidate = seed(
        "webrtc/candidate",
        "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0",
    );
    a.send(offer.clone().into()).await.expect("send");
    a.send(candidate.clone().into()).await.expect("send");

    let mut b = connect(&n2, "call", None);
    let welcome = welcome_value(&recv(&mut b).await);
    assert_eq!(welcome["peers"].as_array().map(Vec::len), Some(1));
    assert_eq!(recv(&mut b).await.as_str(), offer);
    assert_eq!(recv(&mut b).await.as_str(), candidate);

    let answer = seed("webrtc/answer", CHROME_ANSWER);
    let end = seed("webrtc/candidate", "");
    b.send(answer.clone().into()).await.expect("send");
    b.send(end.clone().into()).await.expect("send");
    assert_eq!(recv_data(&mut a).await.as_str(), answer);
    assert_eq!(recv_data(&mut a).await.as_str(), end);
    assert_eq!(n1.stats().rooms, 1);
    assert_eq!(n2.stats().rooms, 0);

    // A burst of frames (within the rate limit) arrives complete and in order.
    for i in 0..150 {
        let text = format!("{{\"type\":\"app\",\"value\":{i}}}");
        b.send(text.into()).await.expect("send");
    }
    for i in 0..150 {
        let expected = format!("{{\"type\":\"app\",\"value\":{i}}}");
        assert_eq!(recv(&mut a).await.as_str(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_peer_on_a_third_node_is_refused_and_sees_nothing() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node(&server, "n1").await;
    let n2 = node(&server, "n2").await;
    let n3 = node(&server, "n3").await;
    let mut a = connect(&n1, "pair", None);
    recv(&mut a).await;
    let mut b = connect(&n2, "pair", None);
    recv(&mut b).await;
    recv(&mut a).await; // relay/joined

    let mut c = connect(&n3, "pair", None);
    assert_eq!(closed_with(&mut c).await, close_code::ROOM_FULL);
    // C's frames went nowhere, and A and B still talk.
    a.send(seed("webrtc/offer", CHROME_OFFER).into())
        .await
        .expect("send");
    assert_eq!(
        recv(&mut b).await.as_str(),
        seed("webrtc/offer", CHROME_OFFER)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addressing_works_across_three_nodes() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let mut config = RelayConfig::default();
    config.room_capacity = 3;
    let n1 = node_with(&server, "n1", config.clone()).await;
    let n2 = node_with(&server, "n2", config.clone()).await;
    let n3 = node_with(&server, "n3", config).await;
    let mut a = connect(&n1, "three", None);
    let a_id = welcome_value(&recv(&mut a).await)["id"].clone();
    let mut b = connect(&n2, "three", None);
    let b_id = welcome_value(&recv(&mut b).await)["id"].clone();
    let mut c = connect(&n3, "three", None);
    welcome_value(&recv(&mut c).await);
    // To B only: C never sees it; B sees who sent it.
    let to_b = serde_json::json!({"type": "app", "value": 1, "to": b_id}).to_string();
    a.send(to_b.into()).await.expect("send");
    let got: serde_json::Value = serde_json::from_str(&recv_data(&mut b).await).expect("JSON");
    assert_eq!(got["from"], a_id);
    assert_eq!(got["value"], 1);
    let to_all = serde_json::json!({"type": "app", "value": 2}).to_string();
    a.send(to_all.into()).await.expect("send");
    let got: serde_json::Value = serde_json::from_str(&recv_data(&mut c).await).expect("JSON");
    assert_eq!(got["value"], 2, "C's first data frame is the broadcast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_resumes_on_another_node_and_gets_what_was_queued() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node(&server, "n1").await;
    let n2 = node(&server, "n2").await;
    let n3 = node(&server, "n3").await;
    let mut a = connect(&n1, "resume", None);
    recv(&mut a).await;
    let b = connect(&n2, "resume", None);
    let mut b = b;
    let token = welcome_value(&recv(&mut b).await)["resume"]
        .as_str()
        .expect("token")
        .to_owned();
    recv(&mut a).await; // joined
                        // B's connection is lost (an abnormal close: not 1000 or 1001).
    b.close(CloseReason::new(CloseCode(4000), "lost"))
        .await
        .expect("close");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = seed("webrtc/offer", CHROME_OFFER);
    a.send(queued.clone().into()).await.expect("send");
    // B comes back on a third node with its token.
    let mut b = connect(&n3, "resume", Some(&token));
    welcome_value(&recv(&mut b).await);
    assert_eq!(recv(&mut b).await.as_str(), queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_is_released_when_empty_and_placed_anew() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node(&server, "n1").await;
    let n2 = node(&server, "n2").await;
    let mut a = connect(&n1, "again", None);
    recv(&mut a).await;
    a.close(CloseReason::normal()).await.expect("close");
    // Released after `release_after` empty; the next join places it on its own node.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(n1.stats().rooms, 0);
    let mut b = connect(&n2, "again", None);
    recv(&mut b).await;
    assert_eq!(n2.stats().rooms, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_local_rooms_work_and_others_are_refused_then_all_recovers() {
    let Some(mut server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node(&server, "n1").await;
    let n2 = node(&server, "n2").await;
    let mut a = connect(&n1, "outage", None);
    recv(&mut a).await;
    let mut b = connect(&n2, "outage", None);
    recv(&mut b).await;
    recv(&mut a).await; // joined
    let mut local = connect(&n1, "local", None);
    recv(&mut local).await;

    server.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Frames accepted during the outage wait in the link.
    for i in 0..20 {
        b.send(format!("{{\"type\":\"app\",\"value\":{i}}}").into())
            .await
            .expect("send");
    }
    // A room of another node: refused with 1013. A room of this node: served.
    let mut refused = connect(&n2, "elsewhere-room", None);
    let mut other = connect(&n1, "local", None);
    assert_eq!(closed_with(&mut refused).await, CLUSTER_UNAVAILABLE);
    welcome_value(&recv(&mut other).await);
    other
        .send("{\"type\":\"app\",\"value\":\"local\"}".into())
        .await
        .expect("send");
    assert!(recv_data(&mut local).await.contains("local"));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    server.restart().expect("restart");
    for i in 0..20 {
        let expected = format!("{{\"type\":\"app\",\"value\":{i}}}");
        assert_eq!(recv(&mut a).await.as_str(), expected);
    }
    // After recovery, the pair still talks both ways and new cross-node joins work.
    a.send("{\"type\":\"app\",\"value\":\"back\"}".into())
        .await
        .expect("send");
    assert!(recv(&mut b).await.contains("back"));
    let mut late = connect(&n2, "local", None);
    assert_eq!(closed_with(&mut late).await, close_code::ROOM_FULL);
}

fn short_grace() -> RelayConfig {
    let mut config = RelayConfig::default();
    config.resume_grace = Duration::from_secs(1);
    config
}

fn left_id(frame: &Frame) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(frame).ok()?;
    (value["type"] == "relay/left").then(|| value["value"]["id"].as_str().map(str::to_owned))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_clients_node_dies_its_peer_leaves_after_the_timeout_and_the_grace() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node_with(&server, "n1", short_grace()).await;
    let n2 = node_with(&server, "n2", short_grace()).await;
    let mut a = connect(&n1, "death", None);
    recv(&mut a).await;
    let mut b = connect(&n2, "death", None);
    let b_id = welcome_value(&recv(&mut b).await)["id"].clone();
    recv(&mut a).await; // joined
    let died = tokio::time::Instant::now();
    n2.abort();
    // A hears that B left: after n2 is declared gone (node timeout 1 s) and B's grace (1 s)
    // ran out without a resume, and not before the grace.
    let frame = recv(&mut a).await;
    let elapsed = died.elapsed();
    assert_eq!(left_id(&frame).as_deref(), b_id.as_str(), "{frame}");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1 + 1 + 2), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_rooms_node_dies_the_survivor_hears_left_rejoins_and_the_room_works() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node_with(&server, "n1", short_grace()).await;
    let n2 = node_with(&server, "n2", short_grace()).await;
    let n3 = node_with(&server, "n3", short_grace()).await;
    let mut a = connect(&n1, "owner-death", None);
    let a_id = welcome_value(&recv(&mut a).await)["id"].clone();
    let mut b = connect(&n2, "owner-death", None);
    welcome_value(&recv(&mut b).await);
    recv(&mut a).await; // joined
    n1.abort();
    // B hears that A left, then is welcomed into the room again (now run by n2).
    let frame = recv(&mut b).await;
    assert_eq!(left_id(&frame).as_deref(), a_id.as_str(), "{frame}");
    let welcome = welcome_value(&recv(&mut b).await);
    assert_eq!(welcome["peers"].as_array().map(Vec::len), Some(0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(n2.stats().rooms, 1);
    // Not wedged: a new peer on a third node joins and talks to B.
    let mut c = connect(&n3, "owner-death", None);
    welcome_value(&recv(&mut c).await);
    c.send(seed("webrtc/offer", CHROME_OFFER).into())
        .await
        .expect("send");
    assert_eq!(
        recv_data(&mut b).await.as_str(),
        seed("webrtc/offer", CHROME_OFFER)
    );
    b.send("{\"type\":\"app\",\"value\":\"hi\"}".into())
        .await
        .expect("send");
    assert!(recv_data(&mut c).await.contains("hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_on_another_node_is_closed_as_a_slow_consumer() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let mut relay = RelayConfig::default();
    relay.rate_per_sec = 1_000_000;
    relay.rate_burst = 1_000_000;
    let mut driver = DriverConfig::default();
    driver.write_timeout = Duration::from_millis(500);
    let start = |name: &'static str| {
        let relay = RelayHandle::new(relay.clone(), driver.clone());
        let config = cluster_config(&server, name);
        async move {
            ClusterNode::start(config, relay)
                .await
                .expect("node starts")
        }
    };
    let n1 = start("n1").await;
    let n2 = start("n2").await;
    let mut a = connect(&n1, "slow", None);
    recv(&mut a).await;
    let mut b = connect(&n2, "slow", None);
    recv(&mut b).await;
    recv(&mut a).await; // joined
                        // A sends far more than B's queues, the link's window and the relay's queue hold; B reads
                        // nothing. A is held back (never closed), and B is closed with 4006 once its queue has
                        // not moved for the write timeout.
    let sender = tokio::spawn(async move {
        for i in 0..5000 {
            let frame = format!("{{\"type\":\"app\",\"value\":{i}}}");
            if a.send(frame.into()).await.is_err() {
                return Err(i);
            }
        }
        Ok(a)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What B gets: the frames that fit its connection's queue (64) when it stopped, then the
    // close; what the edge node held for it is dropped, not written after the close.
    let mut frames = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, b.recv()).await {
            Ok(Ok(Some(_))) => frames += 1,
            Ok(Err(TransportError::Closed(Some(reason)))) => break reason.code,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(code, close_code::SLOW_CONSUMER);
    assert!(frames <= 64, "{frames} frames before the close");
    let a = tokio::time::timeout(WAIT, sender)
        .await
        .expect("A is not held back once B is gone")
        .expect("task")
        .expect("A stays connected");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_sends_its_clients_away_and_they_resume_elsewhere() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let n1 = node(&server, "n1").await;
    let n2 = node(&server, "n2").await;
    let mut a = connect(&n1, "leaving", None);
    recv(&mut a).await;
    let mut b = connect(&n2, "leaving", None);
    let token = welcome_value(&recv(&mut b).await)["resume"]
        .as_str()
        .expect("token")
        .to_owned();
    recv(&mut a).await; // joined
    n2.relay().shutdown(Duration::from_secs(1)).await;
    let (sent_away, cut) = n2.shutdown(Duration::from_secs(2)).await;
    assert_eq!((sent_away, cut), (1, 0));
    // B was closed with 1001 (a clean end for the client)...
    match tokio::time::timeout(WAIT, b.recv()).await {
        Ok(Ok(None)) => {}
        other => panic!("expected a close with 1001, got {other:?}"),
    }
    assert_eq!(
        b.close_reason().map(|r| r.code),
        Some(CloseCode::GOING_AWAY)
    );
    // ...but its peer was only lost: A did not hear it leave, and B resumes on n1. (A frame
    // A sends before n1 has heard of the loss goes to the old link and is lost with it, as
    // on one node a frame written to a socket that then breaks.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = seed("webrtc/offer", CHROME_OFFER);
    a.send(queued.clone().into()).await.expect("send");
    let mut b = connect(&n1, "leaving", Some(&token));
    welcome_value(&recv(&mut b).await);
    assert_eq!(recv(&mut b).await.as_str(), queued);
    // A new client of n2 is sent away at once.
    let mut late = connect(&n2, "leaving", None);
    assert!(matches!(
        tokio::time::timeout(WAIT, late.recv()).await,
        Ok(Ok(None))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_addressed_to_a_peer_of_a_dead_rooms_node_reach_no_one_after_the_room_moves() {
    let Some(server) = NatsServer::start_or_skip() else {
        return;
    };
    let mut relay = short_grace();
    relay.room_capacity = 3;
    let start = |name: &'static str| {
        let relay = RelayHandle::new(relay.clone(), DriverConfig::default());
        let mut config = cluster_config(&server, name);
        // A small window: what the clients send while their room's node is dead (and not yet
        // known to be) waits in their edge node, unread.
        config.window = 8;
        async move {
            ClusterNode::start(config, relay)
                .await
                .expect("node starts")
        }
    };
    let n1 = start("n1").await;
    let n2 = start("n2").await;
    let n3 = start("n3").await;
    let mut a = connect(&n1, "moved", None);
    let a_id = welcome_value(&recv(&mut a).await)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut b = connect(&n2, "moved", None);
    welcome_value(&recv(&mut b).await);
    let mut c = connect(&n3, "moved", None);
    welcome_value(&recv(&mut c).await);
    assert!(left_id(&recv(&mut b).await).is_none()); // joined
    n1.abort();
    // B and C write to A, not knowing yet that the room's node is gone: the first frames go
    // into the links to the dead node, the rest wait in their edge nodes.
    for round in 0..2 {
        for i in 0..20 {
            for (name, client) in [("b", &mut b), ("c", &mut c)] {
                let frame =
                    format!(r#"{{"type":"app","value":"{name}{round}-{i}","to":"{a_id}"}}"#);
                client.send(frame.into()).await.expect("send");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both hear that A and the other left, and join the room again. Frames for A reach nobody
    // (as on one relay, where the id of a peer that left names no one): in the room's new run,
    // A's old id must not name B or C.
    for client in [&mut b, &mut c] {
        let mut welcomed = false;
        loop {
            let frame = match tokio::time::timeout(Duration::from_secs(3), client.recv()).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(other) => panic!("connection ended: {other:?}"),
                Err(_) => break,
            };
            let value: serde_json::Value = serde_json::from_str(&frame).expect("JSON");
            match value["type"].as_str() {
                Some("relay/welcome") => welcomed = true,
                Some("relay/joined" | "relay/left" | "error") => {}
                _ => panic!("a frame addressed to {a_id} reached another peer: {frame}"),
            }
        }
        assert!(welcomed, "joined the room again");
    }
}
