//! The relay over real WebSockets on 127.0.0.1 (and one in-memory peer): forwarding, mailbox,
//! ordering guard, capacity, admission, resume, limits, privacy and ICE servers.
use std::sync::Arc;
use std::time::Duration;

use examples::relay_server::{FileConfig, Server};
use futures::StreamExt;
use serde_json::Value;
use signaling::relay::fresh_token;
use signaling::transport::{CloseCode, CloseReason, Transport};
use signaling_core::ice::TurnRestCredentials;
use signaling_core::relay::{close_code, JoinRequest};
use signaling_ws::{ConnectError, WsClient, WsConfig, WsConnection};
use tokio::net::TcpListener;

const OFFER: &str = r#"{"type":"webrtc/offer","value":"v=0\r\no=- 5498186869896684180 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"}"#;
const ANSWER: &str = r#"{"type":"webrtc/answer","value":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}"#;
const HOST: &str = r#"{"type":"webrtc/candidate","value":"candidate:4234997325 1 udp 2043278322 192.168.1.2 44323 typ host generation 0 ufrag EsAw network-id 1"}"#;
const SRFLX: &str = r#"{"type":"webrtc/candidate","value":"candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10"}"#;

mod support;

use support::ws::{closed_with, expect_type, next_frame, WAIT};

struct Relay {
    base: String,
    server: Arc<Server>,
}

async fn start(toml: &str) -> Relay {
    let config = FileConfig::from_toml(toml).expect("config");
    let server = Arc::new(Server::new(config).expect("server"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.clone().run(listener));
    Relay {
        base: format!("ws://{addr}/ws"),
        server,
    }
}

impl Relay {
    async fn connect(&self, query: &str) -> Result<WsConnection, ConnectError> {
        WsClient::connect(&format!("{}?{query}", self.base), WsConfig::default()).await
    }

    async fn join(&self, room: &str) -> (WsConnection, Value) {
        let mut conn = self
            .connect(&format!("room={room}"))
            .await
            .expect("connect");
        let welcome = expect_type(&mut conn, "relay/welcome").await;
        (conn, welcome)
    }

    /// Joins over a raw tokio-tungstenite client, which can vanish without a close frame
    /// (dropped, its TCP connection ends with no close handshake: a lost connection; a
    /// `WsConnection` dropped says goodbye with 1001, which is a leave).
    async fn join_raw(&self, room: &str) -> (RawClient, Value) {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?room={room}", self.base))
            .await
            .expect("connect");
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no hang")
            .expect("a frame")
            .expect("open");
        let v: Value = serde_json::from_str(frame.to_text().expect("text")).expect("json");
        assert_eq!(v["type"], "relay/welcome", "{v}");
        (ws, v["value"].clone())
    }
}

type RawClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Waits (bounded) until the relay serves exactly `n` connections.
async fn wait_for_connections(relay: &Relay, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while relay.server.relay().status().connections != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            relay.server.relay().status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Nothing arrives within a short while.
async fn silent(conn: &mut WsConnection) {
    let r = tokio::time::timeout(Duration::from_millis(200), conn.recv()).await;
    assert!(r.is_err(), "unexpected: {r:?}");
}

#[tokio::test]
async fn seed_frames_wait_in_the_mailbox_and_are_forwarded_byte_for_byte_in_order() {
    let relay = start("").await;
    let (mut a, welcome) = relay.join("call").await;
    assert_eq!(welcome["polite"], false);
    // The seed client sends its offer the moment the socket opens, then candidates; the guard
    // holds a candidate that overtakes the offer.
    a.send(SRFLX.into()).await.expect("send");
    a.send(OFFER.into()).await.expect("send");
    a.send(HOST.into()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut b, welcome) = relay.join("call").await;
    assert_eq!(welcome["polite"], true);
    assert_eq!(welcome["peers"], serde_json::json!(["p1"]));
    assert_eq!(next_frame(&mut b).await, OFFER);
    assert_eq!(next_frame(&mut b).await, SRFLX);
    assert_eq!(next_frame(&mut b).await, HOST);
    assert_eq!(expect_type(&mut a, "relay/joined").await["id"], "p2");
    b.send(ANSWER.into()).await.expect("send");
    assert_eq!(next_frame(&mut a).await, ANSWER);
    b.close(CloseReason::normal()).await.expect("close");
}

#[tokio::test]
async fn the_guard_holds_candidates_until_the_offer_is_forwarded() {
    let relay = start("").await;
    let (mut a, _) = relay.join("r").await;
    let (mut b, _) = relay.join("r").await;
    let _ = expect_type(&mut a, "relay/joined").await;
    b.send(HOST.into()).await.expect("send");
    silent(&mut a).await;
    b.send(OFFER.into()).await.expect("send");
    assert_eq!(next_frame(&mut a).await, OFFER);
    assert_eq!(next_frame(&mut a).await, HOST);
}

#[tokio::test]
async fn the_guard_can_be_turned_off() {
    let relay = start("[relay]\nordering_guard = false\n").await;
    let (mut a, _) = relay.join("r").await;
    let (mut b, _) = relay.join("r").await;
    let _ = expect_type(&mut a, "relay/joined").await;
    b.send(HOST.into()).await.expect("send");
    assert_eq!(next_frame(&mut a).await, HOST);
}

#[tokio::test]
async fn a_third_peer_is_refused_with_4001_and_isolated() {
    let relay = start("").await;
    let (mut a, _) = relay.join("r").await;
    let (mut b, _) = relay.join("r").await;
    let mut c = relay.connect("room=r").await.expect("upgrade");
    assert_eq!(closed_with(&mut c).await, close_code::ROOM_FULL);
    a.send(OFFER.into()).await.expect("send");
    let _ = expect_type(&mut a, "relay/joined").await;
    assert_eq!(next_frame(&mut b).await, OFFER);
    // A room name is required.
    let mut d = relay.connect("nope=1").await.expect("upgrade");
    assert_eq!(closed_with(&mut d).await, close_code::BAD_REQUEST);
}

#[tokio::test]
async fn wrong_token_is_401_and_wrong_origin_is_403_before_the_upgrade() {
    let relay = start(
        "[admission]\ntokens = [\"s3cret\"]\ntoken_query = \"token\"\norigins = [\"http://127.0.0.1:8080\"]\n",
    )
    .await;
    let url = |q: &str| format!("{}?room=r&{q}", relay.base);
    let open = |url: String, origin: &'static str| async move {
        WsClient::new(url).header("Origin", origin).open().await
    };
    let wrong = open(url("token=guess"), "http://127.0.0.1:8080").await;
    assert!(
        matches!(wrong, Err(ConnectError::Rejected { status: 401, .. })),
        "{wrong:?}"
    );
    let missing = open(url(""), "http://127.0.0.1:8080").await;
    assert!(
        matches!(missing, Err(ConnectError::Rejected { status: 401, .. })),
        "{missing:?}"
    );
    let foreign = open(url("token=s3cret"), "https://evil.example").await;
    assert!(
        matches!(foreign, Err(ConnectError::Rejected { status: 403, .. })),
        "{foreign:?}"
    );
    let mut ok = open(url("token=s3cret"), "http://127.0.0.1:8080")
        .await
        .expect("admitted");
    let _ = expect_type(&mut ok, "relay/welcome").await;
    let status = relay.server.relay().status();
    assert_eq!(status.peers, 1, "refused requests never joined: {status:?}");
}

#[tokio::test]
async fn resume_within_the_grace_period_keeps_the_id_and_gets_what_was_queued() {
    let relay = start("[relay]\nresume_grace = 5\n").await;
    let (a, welcome) = relay.join_raw("r").await;
    let (mut b, _) = relay.join("r").await;
    let token = welcome["resume"].as_str().expect("token").to_owned();
    // The socket is lost (no close handshake); wait until the relay has noticed.
    drop(a);
    wait_for_connections(&relay, 1).await;
    b.send(ANSWER.into()).await.expect("send");
    b.send(SRFLX.into()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a2 = relay
        .connect(&format!("room=r&resume={token}"))
        .await
        .expect("connect");
    let welcome2 = expect_type(&mut a2, "relay/welcome").await;
    assert_eq!(welcome2["id"], welcome["id"]);
    assert_ne!(welcome2["resume"], welcome["resume"]);
    assert_eq!(next_frame(&mut a2).await, ANSWER);
    silent(&mut b).await;
}

#[tokio::test]
async fn resume_after_the_grace_period_fails_with_4007() {
    let relay = start("[relay]\nresume_grace = 0.3\n").await;
    let (a, welcome) = relay.join_raw("r").await;
    let (mut b, _) = relay.join("r").await;
    let token = welcome["resume"].as_str().expect("token").to_owned();
    drop(a);
    assert_eq!(expect_type(&mut b, "relay/left").await["id"], "p1");
    let mut late = relay
        .connect(&format!("room=r&resume={token}"))
        .await
        .expect("connect");
    assert_eq!(closed_with(&mut late).await, close_code::RESUME_FAILED);
}

#[tokio::test]
async fn limits_trip_with_their_codes() {
    // Frame size: the WebSocket layer refuses it with 1009.
    let relay = start("[relay]\nmax_frame_len = 2048\n").await;
    let (mut a, _) = relay.join("r").await;
    a.send(format!(r#"{{"type":"x","value":"{}"}}"#, "y".repeat(4000)).into())
        .await
        .expect("send");
    assert_eq!(closed_with(&mut a).await, CloseCode::MESSAGE_TOO_BIG);

    // Rate.
    let relay = start("[relay]\nrate_per_sec = 1\nrate_burst = 3\n").await;
    let (mut a, _) = relay.join("r").await;
    for i in 0..5 {
        let _ = a
            .send(format!(r#"{{"type":"x","value":{i}}}"#).into())
            .await;
    }
    assert_eq!(closed_with(&mut a).await, close_code::RATE_LIMITED);

    // Rooms and peers.
    let relay = start("[relay]\nmax_rooms = 1\nmax_peers = 2\nroom_capacity = 3\n").await;
    let (_a, _) = relay.join("one").await;
    let mut other_room = relay.connect("room=two").await.expect("upgrade");
    assert_eq!(
        closed_with(&mut other_room).await,
        close_code::TOO_MANY_ROOMS
    );
    let (_b, _) = relay.join("one").await;
    let mut third = relay.connect("room=one").await.expect("upgrade");
    assert_eq!(closed_with(&mut third).await, close_code::TOO_MANY_PEERS);

    // Mailbox: bounded, refused with an error frame, nothing accepted is lost.
    let relay = start("[relay]\nmailbox_frames = 2\n").await;
    let (mut a, _) = relay.join("r").await;
    for i in 0..3 {
        a.send(format!(r#"{{"type":"x","value":{i}}}"#).into())
            .await
            .expect("send");
    }
    assert_eq!(
        next_frame(&mut a).await,
        r#"{"type":"error","value":"x: mailbox full"}"#
    );
    let (mut b, _) = relay.join("r").await;
    assert_eq!(next_frame(&mut b).await, r#"{"type":"x","value":0}"#);
    assert_eq!(next_frame(&mut b).await, r#"{"type":"x","value":1}"#);

    // Idle.
    let relay = start("[relay]\nidle_timeout = 0.3\n").await;
    let (mut a, _) = relay.join("r").await;
    assert_eq!(closed_with(&mut a).await, close_code::IDLE);
}

/// A frame of exactly `size` bytes carrying its sequence number.
fn numbered(seq: usize, size: usize) -> String {
    let head = format!(r#"{{"type":"load/data","value":"{seq:08} "#);
    let pad = size - head.len() - 2;
    format!("{head}{}\"}}", "z".repeat(pad))
}

/// The sequence number of a [`numbered`] frame.
fn seq_of(frame: &str) -> usize {
    let v: Value = serde_json::from_str(frame).expect("json");
    let value = v["value"].as_str().expect("value");
    value
        .get(..8)
        .and_then(|n| n.parse().ok())
        .expect("numbered")
}

/// Sends `count` numbered frames as fast as the relay takes them; returns the connection.
fn flood(
    mut conn: WsConnection,
    count: usize,
    size: usize,
) -> tokio::task::JoinHandle<WsConnection> {
    tokio::spawn(async move {
        for seq in 0..count {
            conn.send(numbered(seq, size).into())
                .await
                .expect("the relay keeps reading");
        }
        conn
    })
}

/// Receives `count` numbered frames and checks they are 0, 1, 2, ... in order; pauses every
/// `pause_every` frames for `pause`.
async fn receive_in_order(
    conn: &mut WsConnection,
    count: usize,
    pause_every: usize,
    pause: Duration,
) {
    for want in 0..count {
        let frame = next_frame(conn).await;
        assert_eq!(seq_of(&frame), want, "lost, repeated or reordered");
        if want % pause_every == pause_every - 1 {
            tokio::time::sleep(pause).await;
        }
    }
}

const FLOOD_TOML: &str = "[relay]\nrate_per_sec = 100000\nrate_burst = 100000\n\
    [websocket]\nsend_queue = 8\nburst = 4\nwrite_timeout = 1\n";

#[tokio::test]
async fn a_flood_to_a_reader_that_keeps_reading_is_held_back_and_loses_nothing() {
    let relay = start(FLOOD_TOML).await;
    let (mut reader, _) = relay.join("r").await;
    let (writer, _) = relay.join("r").await;
    let _ = expect_type(&mut reader, "relay/joined").await;
    // 3,000 frames of 3 KB: several times what the queues and socket buffers hold, so the
    // writer must be held back while the reader, pausing now and then, catches up.
    let count = 3_000;
    let sending = flood(writer, count, 3_000);
    receive_in_order(&mut reader, count, 250, Duration::from_millis(100)).await;
    let _writer = sending.await.expect("the writer finished");
    assert_eq!(relay.server.relay().status().stats.limit_closes, 0);
    silent(&mut reader).await;
}

#[tokio::test]
async fn a_reader_that_takes_nothing_for_the_write_timeout_is_closed_as_a_slow_consumer() {
    let relay = start(FLOOD_TOML).await;
    let (mut reader, _) = relay.join("r").await;
    let (mut writer, _) = relay.join("r").await;
    let _ = expect_type(&mut reader, "relay/joined").await;
    // The reader stops reading; the writer floods it with large frames. Once kernel buffers
    // and the queue are full, the relay stops reading the writer, and closes the reader after
    // the write timeout (1 s here) without progress.
    let big = format!(r#"{{"type":"x","value":"{}"}}"#, "z".repeat(60_000));
    let started = tokio::time::Instant::now();
    let _flood = tokio::spawn(async move {
        for _ in 0..2_000 {
            if writer.send(big.clone().into()).await.is_err() {
                break;
            }
        }
        writer
    });
    let deadline = started + WAIT;
    while relay.server.relay().status().stats.limit_closes == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never disconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the write timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(closed_with(&mut reader).await, close_code::SLOW_CONSUMER);
}

#[tokio::test]
async fn in_a_room_of_three_a_stalled_reader_holds_its_senders_back_only_until_it_is_closed() {
    let relay = start(&FLOOD_TOML.replace("[relay]\n", "[relay]\nroom_capacity = 3\n")).await;
    let (mut reader, _) = relay.join("r").await;
    let (mut stalled, _) = relay.join("r").await;
    let _ = expect_type(&mut reader, "relay/joined").await;
    let (writer, _) = relay.join("r").await;
    let _ = expect_type(&mut reader, "relay/joined").await;
    let _ = expect_type(&mut stalled, "relay/joined").await;
    // `stalled` never reads again. Everything the writer sends goes to both; the writer is held
    // back while `stalled`'s queue is full, until `stalled` is closed; `reader` gets every
    // frame, in order.
    let count = 2_000;
    let sending = flood(writer, count, 3_000);
    receive_in_order(&mut reader, count, 500, Duration::from_millis(10)).await;
    let _writer = sending.await.expect("the writer finished");
    assert_eq!(relay.server.relay().status().stats.limit_closes, 1);
    // A slow consumer may resume: its slot is kept for the resume grace.
    assert_eq!(closed_with(&mut stalled).await, close_code::SLOW_CONSUMER);
}

#[tokio::test]
async fn the_privacy_policy_filters_candidates() {
    let relay = start("[relay.privacy]\ndrop_host = true\ndeny = [\"10.0.0.0/8\"]\n").await;
    let (mut a, _) = relay.join("r").await;
    let (mut b, _) = relay.join("r").await;
    let _ = expect_type(&mut a, "relay/joined").await;
    b.send(OFFER.into()).await.expect("send");
    b.send(HOST.into()).await.expect("send");
    b.send(r#"{"type":"webrtc/candidate","value":"candidate:1 1 udp 1677729535 10.1.2.3 54400 typ srflx raddr 0.0.0.0 rport 0"}"#.into())
        .await
        .expect("send");
    b.send(SRFLX.into()).await.expect("send");
    assert_eq!(next_frame(&mut a).await, OFFER);
    assert_eq!(
        next_frame(&mut a).await,
        SRFLX,
        "host and denied-range candidates dropped"
    );
    assert_eq!(relay.server.relay().status().stats.filtered, 2);
}

#[tokio::test]
async fn joining_peers_get_ice_servers_with_turn_rest_credentials() {
    let relay = start(
        "[relay.ice_servers]\nstun = [\"stun:stun.example.org:3478\"]\n[relay.ice_servers.turn]\nsecret = \"secret\"\nttl_secs = 600\nurls = [\"turn:turn.example.org:3478\"]\n",
    )
    .await;
    let (_a, welcome) = relay.join("r").await;
    let servers = welcome["iceServers"].as_array().expect("iceServers");
    assert_eq!(
        servers[0]["urls"],
        serde_json::json!(["stun:stun.example.org:3478"])
    );
    let turn = &servers[1];
    let username = turn["username"].as_str().expect("username");
    let credential = turn["credential"].as_str().expect("credential");
    let (expiry, user) = username.split_once(':').expect("<expiry>:<user>");
    assert_eq!(user, "p1");
    let now = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .expect("clock")
        .as_secs();
    let expiry: u64 = expiry.parse().expect("a number");
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "expiry {expiry}, now {now}"
    );
    assert_eq!(
        credential,
        TurnRestCredentials::credential(b"secret", username)
    );
    TurnRestCredentials::verify(b"secret", username, credential, now).expect("valid");
}

#[tokio::test]
async fn a_room_with_one_websocket_peer_and_one_in_memory_peer() {
    let relay = start("").await;
    let (mut ws_peer, _) = relay.join("mixed").await;
    let (mem_client, mem_server) = signaling_mem::pair();
    let handle = relay.server.relay().clone();
    tokio::spawn(async move {
        handle
            .serve(mem_server, JoinRequest::new("mixed", fresh_token()))
            .await;
    });
    let mut mem_peer = mem_client;
    let welcome = tokio::time::timeout(WAIT, mem_peer.recv())
        .await
        .expect("no hang")
        .expect("open")
        .expect("frame");
    assert!(
        welcome.starts_with(r#"{"type":"relay/welcome""#),
        "{welcome}"
    );
    let _ = expect_type(&mut ws_peer, "relay/joined").await;
    ws_peer.send(OFFER.into()).await.expect("send");
    let got = mem_peer.recv().await.expect("open").expect("frame");
    assert_eq!(got, OFFER);
    mem_peer.send(ANSWER.into()).await.expect("send");
    assert_eq!(next_frame(&mut ws_peer).await, ANSWER);
}

#[tokio::test]
async fn the_demo_page_is_served_at_the_root() {
    let relay = start("").await;
    let http = relay.base.replace("ws://", "").replace("/ws", "");
    let mut stream = tokio::net::TcpStream::connect(&http)
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(body.contains("new WebSocket("));
}

#[test]
fn the_example_configuration_file_parses_and_matches_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/relay.toml"))
        .expect("examples/relay.toml");
    let file = FileConfig::from_toml(&text).expect("parses");
    let defaults = FileConfig::default();
    assert_eq!(format!("{:?}", file.relay), format!("{:?}", defaults.relay));
    assert_eq!(
        format!("{:?}", file.websocket),
        format!("{:?}", defaults.websocket)
    );
    // Every commented-out section parses too, once uncommented.
    let uncommented: String = text
        .lines()
        .filter(|l| !l.starts_with("##"))
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let full = FileConfig::from_toml(&uncommented).expect("the commented-out keys parse");
    assert!(full.relay.privacy.drop_host);
    assert!(full.admission.is_some());
    // The `[cluster]` section lists the defaults, and a NATS server and node name of its own.
    assert!(
        file.cluster.is_none(),
        "the cluster is off unless asked for"
    );
    let cluster = full.cluster.clone().expect("the [cluster] section");
    let mut defaults = signaling_nats::ClusterConfig::default();
    defaults.nats = "nats://127.0.0.1:4222".to_owned();
    defaults.node = "relay-1".to_owned();
    assert_eq!(format!("{cluster:?}"), format!("{defaults:?}"));
    full.validate().expect("the uncommented file is valid");
    let settings = full
        .cluster_settings(None, None)
        .expect("valid")
        .expect("a cluster");
    assert_eq!(settings.node, "relay-1");
}
