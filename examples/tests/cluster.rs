//! `relay` binaries as nodes of a cluster, each a process of its own, sharing rooms through a
//! real NATS server (Debian's `nats-server`, started by each test on a free 127.0.0.1 port with
//! JetStream and a temporary store; the tests skip when it is missing, unless
//! `SIGNALING_REQUIRE_NATS=1`). Clients are tokio-tungstenite WebSocket clients. Everything runs
//! on 127.0.0.1.
//!
//! The nodes run with short cluster timings and a short resume grace (see [`CONFIG`]) so that
//! node deaths are noticed in about a second.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use signaling_nats::testing::NatsServer;
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::relay::RelayProcess;
use support::ws::WAIT;

const CHROME_OFFER: &str = include_str!("../../signaling-core/tests/data/chrome-offer.sdp");
const CHROME_ANSWER: &str = include_str!("../../signaling-core/tests/data/chrome-answer.sdp");

/// Every node's configuration file: the cluster's timings ([`HEARTBEAT`], [`NODE_TIMEOUT`])
/// and the relay's [`RESUME_GRACE`].
const CONFIG: &str = "\
[relay]
resume_grace = 2

[cluster]
heartbeat = 0.2
node_timeout = 1
release_after = 0.5
retransmit = 0.3
";
const HEARTBEAT: Duration = Duration::from_millis(200);
const NODE_TIMEOUT: Duration = Duration::from_secs(1);
const RESUME_GRACE: Duration = Duration::from_secs(2);
/// What a deadline derived from the configuration allows on top, for a loaded test machine.
const MARGIN: Duration = Duration::from_secs(2);

/// Close codes the clients expect.
const ROOM_FULL: u16 = 4001;
const TRY_AGAIN_LATER: u16 = 1013;

// ---------------------------------------------------------------------------------------------
// Processes: the NATS server and the nodes
// ---------------------------------------------------------------------------------------------

/// A test's NATS server and the configuration file its nodes share.
struct Cluster {
    nats: NatsServer,
    config: PathBuf,
}

impl Cluster {
    /// A NATS server for the test `name`, or `None` (after a notice) when `nats-server` is
    /// missing.
    fn start(name: &str) -> Option<Self> {
        let nats = NatsServer::start_or_skip()?;
        let config = support::temp_dir(&format!("cluster-{name}")).join("relay.toml");
        std::fs::write(&config, CONFIG).expect("write the nodes' configuration file");
        Some(Self { nats, config })
    }

    /// Starts the node `name` (a `relay` process on a free port); returns once it listens.
    fn node(&self, name: &str) -> Node {
        let config = self.config.to_str().expect("a UTF-8 path");
        let url = self.nats.url();
        let (process, addr) =
            RelayProcess::listening(&["--config", config, "--nats", &url, "--node", name]);
        process.wait_for_log(
            &format!("cluster node {name}: connected to NATS at {url}"),
            WAIT,
        );
        Node { process, addr }
    }
}

/// A node: a `relay` process, killed when dropped.
struct Node {
    process: RelayProcess,
    addr: SocketAddr,
}

impl Node {
    /// A client connected to this node, asking for `query` (`room=NAME`, ...).
    async fn connect(&self, query: &str) -> Client {
        Client::connect(&format!("ws://{}/ws?{query}", self.addr)).await
    }

    /// A client joined to `room` on this node; its welcome's value.
    async fn join(&self, room: &str) -> (Client, Value) {
        let mut client = self.connect(&format!("room={room}")).await;
        let welcome = client.expect("relay/welcome").await;
        (client, welcome)
    }

    /// Kills the process (SIGKILL: it tells no one); returns when it is gone.
    fn kill(&mut self) {
        self.process.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of a node.
struct Client {
    ws: Socket,
}

/// What a client got next.
#[derive(Debug)]
enum Got {
    Frame(String),
    /// The connection ended: with a close frame's code, or without one.
    Closed(Option<u16>),
}

impl Client {
    async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("no hang")
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        Self { ws }
    }

    async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    /// The next text frame or the end, within [`WAIT`].
    async fn next(&mut self) -> Got {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame or the close within the wait");
            match message {
                Some(Ok(Message::Text(text))) => return Got::Frame(text.as_str().to_owned()),
                Some(Ok(Message::Close(frame))) => {
                    return Got::Closed(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Got::Closed(None),
            }
        }
    }

    /// The next frame, which must come.
    async fn frame(&mut self) -> String {
        match self.next().await {
            Got::Frame(frame) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame that is not one of the relay's notices (`relay/...`).
    async fn data(&mut self) -> String {
        loop {
            let frame = self.frame().await;
            if !frame.starts_with("{\"type\":\"relay/") {
                return frame;
            }
        }
    }

    /// The next frame, which must be of type `kind`; its value.
    async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.frame().await;
        let v: Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(v["type"], kind, "{frame}");
        v["value"].clone()
    }

    /// Reads until the connection ends; the close code it ended with. Completes the close
    /// handshake (the server waits for it).
    async fn closed_with(&mut self) -> Option<u16> {
        loop {
            if let Got::Closed(code) = self.next().await {
                // Polled on, the socket writes the answering close frame and ends.
                while let Ok(Some(_)) = tokio::time::timeout(WAIT, self.ws.next()).await {}
                return code;
            }
        }
    }

    /// Drops the TCP connection without a close frame: the relay sees a lost connection.
    fn drop_connection(self) {
        drop(self.ws);
    }
}

fn seed(kind: &str, value: &str) -> String {
    serde_json::json!({"type": kind, "value": value}).to_string()
}

fn candidate(port: u16) -> String {
    seed(
        "webrtc/candidate",
        &format!("candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host generation 0"),
    )
}

fn app(value: impl std::fmt::Display) -> String {
    format!("{{\"type\":\"app\",\"value\":\"{value}\"}}")
}

fn left(id: &Value) -> String {
    let id = id.as_str().expect("an id");
    format!("{{\"type\":\"relay/left\",\"value\":{{\"id\":\"{id}\"}}}}")
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_two_nodes_negotiate_with_the_seed_frames_byte_for_byte() {
    let Some(cluster) = Cluster::start("negotiate") else {
        return;
    };
    let n1 = cluster.node("n1");
    let n2 = cluster.node("n2");

    // The seed client sends its offer and candidates the moment its socket opens, alone in the
    // room: they wait in the mailbox of the room's node (n1).
    let (mut a, welcome) = n1.join("call").await;
    let a_id = welcome["id"].clone();
    assert_eq!(welcome["peers"], serde_json::json!([]));
    let offer = seed("webrtc/offer", CHROME_OFFER);
    a.send(&offer).await;
    a.send(&candidate(50000)).await;
    a.send(&candidate(50001)).await;

    let (mut b, welcome) = n2.join("call").await;
    let b_id = welcome["id"].clone();
    assert_eq!(welcome["peers"], serde_json::json!([a_id]));
    assert_eq!(b.frame().await, offer);
    assert_eq!(b.frame().await, candidate(50000));
    assert_eq!(b.frame().await, candidate(50001));
    assert_eq!(a.expect("relay/joined").await["id"], b_id);

    let answer = seed("webrtc/answer", CHROME_ANSWER);
    let end = seed("webrtc/candidate", "");
    b.send(&answer).await;
    b.send(&candidate(60000)).await;
    b.send(&end).await;
    assert_eq!(a.frame().await, answer);
    assert_eq!(a.frame().await, candidate(60000));
    assert_eq!(a.frame().await, end);

    // Once both are in the room, frames go straight across too, both ways, in order.
    for i in 0..50 {
        a.send(&app(format!("a{i}"))).await;
        b.send(&app(format!("b{i}"))).await;
    }
    for i in 0..50 {
        assert_eq!(b.frame().await, app(format!("a{i}")));
        assert_eq!(a.frame().await, app(format!("b{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_peer_on_a_third_node_is_refused_with_4001() {
    let Some(cluster) = Cluster::start("third") else {
        return;
    };
    let n1 = cluster.node("n1");
    let n2 = cluster.node("n2");
    let n3 = cluster.node("n3");
    let (mut a, _) = n1.join("pair").await;
    let (mut b, _) = n2.join("pair").await;
    a.expect("relay/joined").await;

    let mut c = n3.connect("room=pair").await;
    assert_eq!(c.closed_with().await, Some(ROOM_FULL));
    // A and B still talk, and heard nothing of C.
    let offer = seed("webrtc/offer", CHROME_OFFER);
    a.send(&offer).await;
    assert_eq!(b.frame().await, offer);
    b.send(&app("still here")).await;
    assert_eq!(a.frame().await, app("still here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_connection_dropped_resumes_on_another_node_and_gets_what_was_sent() {
    let Some(cluster) = Cluster::start("resume") else {
        return;
    };
    let n1 = cluster.node("n1");
    let n2 = cluster.node("n2");
    let n3 = cluster.node("n3");
    let (mut a, _) = n1.join("resume").await;
    let (b, welcome) = n2.join("resume").await;
    let b_id = welcome["id"].clone();
    let token = welcome["resume"]
        .as_str()
        .expect("a resume token")
        .to_owned();
    a.expect("relay/joined").await;

    // B's TCP connection goes away without a close frame: B is lost, not gone, and keeps its
    // place for the resume grace. What A sends meanwhile waits for it.
    b.drop_connection();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let offer = seed("webrtc/offer", CHROME_OFFER);
    a.send(&offer).await;
    a.send(&candidate(50000)).await;

    let mut b = n3.connect(&format!("room=resume&resume={token}")).await;
    let welcome = b.expect("relay/welcome").await;
    assert_eq!(welcome["id"], b_id, "the same peer");
    assert_ne!(welcome["resume"].as_str(), Some(token.as_str()));
    assert_eq!(b.frame().await, offer);
    assert_eq!(b.frame().await, candidate(50000));
    // A saw nothing of it: B's answer is the next thing it gets.
    let answer = seed("webrtc/answer", CHROME_ANSWER);
    b.send(&answer).await;
    assert_eq!(a.frame().await, answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_killed_mid_call_let_their_peers_leave_and_leave_no_room_wedged() {
    let Some(cluster) = Cluster::start("kill") else {
        return;
    };
    let n1 = cluster.node("n1");
    let mut n2 = cluster.node("n2");
    let mut n3 = cluster.node("n3");

    // Call 1: A on n1, which runs the room; B on n2.
    let (mut a, _) = n1.join("call-1").await;
    let (_b, welcome) = n2.join("call-1").await;
    let b_id = welcome["id"].clone();
    a.expect("relay/joined").await;
    // Call 2: C on n3, which runs the room; D on n1.
    let (_c, welcome) = n3.join("call-2").await;
    let c_id = welcome["id"].clone();
    let (mut d, welcome) = n1.join("call-2").await;
    assert_eq!(welcome["peers"], serde_json::json!([c_id]));

    // B's node dies. n2 is declared gone after the node timeout (counted in heartbeats); B is
    // then a lost connection, whose place is kept for the resume grace (B could resume on
    // another node); then A hears that B left.
    let before_kill = Instant::now();
    n2.kill();
    let killed = Instant::now();
    assert_eq!(a.frame().await, left(&b_id));
    let (earliest, latest) = (killed.elapsed(), before_kill.elapsed());
    let bound = NODE_TIMEOUT + HEARTBEAT + RESUME_GRACE + MARGIN;
    assert!(
        earliest >= RESUME_GRACE,
        "A heard that B left {earliest:?} after its node died, within the resume grace"
    );
    assert!(
        latest <= bound,
        "A heard that B left {latest:?} after its node died, later than {bound:?}"
    );

    // The node running call 2 dies: D hears that C left once n3 is declared gone, then is
    // welcomed into the room again, now run by a live node.
    let killed = Instant::now();
    n3.kill();
    assert_eq!(d.frame().await, left(&c_id));
    let heard = killed.elapsed();
    assert!(
        heard <= NODE_TIMEOUT + HEARTBEAT + MARGIN,
        "D heard that C left {heard:?} after C's node died"
    );
    let welcome = d.expect("relay/welcome").await;
    let d_id = welcome["id"].clone();
    assert_eq!(welcome["peers"], serde_json::json!([]));

    // Not wedged: a new peer, on another node (n2 restarted under the same name), joins the
    // room and talks with D both ways.
    let n2 = cluster.node("n2");
    let (mut e, welcome) = n2.join("call-2").await;
    assert_eq!(welcome["peers"], serde_json::json!([d_id]));
    assert_eq!(d.expect("relay/joined").await["id"], welcome["id"]);
    let offer = seed("webrtc/offer", CHROME_OFFER);
    e.send(&offer).await;
    assert_eq!(d.frame().await, offer);
    let answer = seed("webrtc/answer", CHROME_ANSWER);
    d.send(&answer).await;
    assert_eq!(e.frame().await, answer);
    // And call 1's room takes a new peer for A too.
    let (mut f, welcome) = n2.join("call-1").await;
    assert_eq!(welcome["peers"].as_array().map(Vec::len), Some(1));
    f.send(&app("hello A")).await;
    assert_eq!(a.data().await, app("hello A"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_while_nats_is_down_arrive_once_and_in_order_after_it_is_back() {
    let Some(mut cluster) = Cluster::start("outage") else {
        return;
    };
    let n1 = cluster.node("n1");
    let n2 = cluster.node("n2");
    // A on n1, which runs the room; B on n2. X keeps a room of n1's open.
    let (mut a, _) = n1.join("call").await;
    let (mut b, _) = n2.join("call").await;
    a.expect("relay/joined").await;
    let (_x, _) = n1.join("other").await;
    // The link is up and idle.
    a.send(&app("before")).await;
    assert_eq!(b.frame().await, app("before"));

    cluster.nats.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    const FRAMES: usize = 30;
    for i in 0..FRAMES {
        a.send(&app(format!("a{i}"))).await;
        b.send(&app(format!("b{i}"))).await;
    }
    // A join on n2 for the room n1 runs cannot reach n1: try again later.
    let mut refused = n2.connect("room=other").await;
    assert_eq!(refused.closed_with().await, Some(TRY_AGAIN_LATER));
    // Longer than the node timeout: nobody is declared gone for NATS's own outage.
    tokio::time::sleep(NODE_TIMEOUT + Duration::from_millis(500)).await;

    cluster.nats.restart().expect("restart nats-server");
    // Everything sent during the outage, once, in order, and nothing else between.
    for i in 0..FRAMES {
        assert_eq!(a.frame().await, app(format!("b{i}")));
    }
    for i in 0..FRAMES {
        assert_eq!(b.frame().await, app(format!("a{i}")));
    }
    a.send(&app("after")).await;
    b.send(&app("after")).await;
    assert_eq!(a.frame().await, app("after"));
    assert_eq!(b.frame().await, app("after"));
    // And joins across nodes work again.
    let mut late = n2.connect("room=other").await;
    let welcome = late.expect("relay/welcome").await;
    assert_eq!(welcome["peers"].as_array().map(Vec::len), Some(1));
}

// ---------------------------------------------------------------------------------------------
// The binary's start
// ---------------------------------------------------------------------------------------------

#[test]
fn a_nats_server_without_a_node_name_is_refused_with_status_2() {
    let (status, log) =
        RelayProcess::spawn(&["--listen", "127.0.0.1:0", "--nats", "nats://127.0.0.1:4222"]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("a node name is needed to run as a node of a cluster: give --node NAME"),
        "{log}"
    );
    let (status, log) =
        RelayProcess::spawn(&["--listen", "127.0.0.1:0", "--node", "bad name"]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("the NATS server's address is needed"), "{log}");
}

#[test]
fn an_unreachable_nats_server_is_reported_with_status_1() {
    // A port of 127.0.0.1 that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let (status, log) =
        RelayProcess::spawn(&["--listen", "127.0.0.1:0", "--nats", &url, "--node", "n1"]).exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot connect to NATS at {url}: ")),
        "{log}"
    );
    assert!(!log.contains("relay listening"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_client_of_the_node_with_1001_and_its_peers_may_resume_elsewhere() {
    let Some(cluster) = Cluster::start("sigterm") else {
        return;
    };
    let n1 = cluster.node("n1");
    let mut n2 = cluster.node("n2");
    // Call 1 runs on n1: A on n1, B on n2. Call 2 runs on n2: C on n2, D on n1.
    let (mut a, _) = n1.join("call-1").await;
    let (mut b, welcome) = n2.join("call-1").await;
    let b_id = welcome["id"].clone();
    let token = welcome["resume"]
        .as_str()
        .expect("a resume token")
        .to_owned();
    a.expect("relay/joined").await;
    let (mut c, _) = n2.join("call-2").await;
    let (mut d, _) = n1.join("call-2").await;
    c.expect("relay/joined").await;
    // Frames on their way to n2's clients when the signal comes are delivered first.
    a.send(&app("to B")).await;
    d.send(&app("to C")).await;
    assert_eq!(b.frame().await, app("to B"));
    assert_eq!(c.frame().await, app("to C"));

    n2.process.signal("TERM");
    // n2's clients, of its own room (C) and of n1's (B), and n1's client of n2's room (D), all
    // get a close with 1001 (going away).
    assert_eq!(c.closed_with().await, Some(1001));
    assert_eq!(d.closed_with().await, Some(1001));
    assert_eq!(b.closed_with().await, Some(1001));
    let (status, log) = n2.process.exit();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("1 clients of rooms run by other nodes closed with 1001"),
        "{log}"
    );
    assert!(log.contains("left the cluster"), "{log}");

    // B was lost, not gone: it resumes on n1 within the grace, and A heard nothing of it.
    let mut b = n1.connect(&format!("room=call-1&resume={token}")).await;
    assert_eq!(b.expect("relay/welcome").await["id"], b_id);
    b.send(&app("B is back")).await;
    assert_eq!(a.frame().await, app("B is back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_under_its_name_at_once_leaves_no_room_of_its_past_run_wedged() {
    let Some(cluster) = Cluster::start("restart") else {
        return;
    };
    let n1 = cluster.node("n1");
    let mut n2 = cluster.node("n2");
    // Two rooms run by n2, each with one peer on it.
    let (_x, _) = n2.join("r").await;
    let (_y, _) = n2.join("s").await;
    // n2 crashes and is back at once, well within the node timeout: a new run of n2.
    n2.kill();
    let n2 = cluster.node("n2");
    // Its past run's rooms are empty and free, from either node: on n2 itself...
    let (mut p, welcome) = n2.join("r").await;
    assert_eq!(welcome["peers"], serde_json::json!([]));
    let (mut q, welcome) = n1.join("r").await;
    assert_eq!(welcome["peers"].as_array().map(Vec::len), Some(1));
    assert_eq!(p.expect("relay/joined").await["id"], welcome["id"]);
    q.send(&app("q")).await;
    assert_eq!(p.frame().await, app("q"));
    // ... and on n1.
    let (mut s, welcome) = n1.join("s").await;
    assert_eq!(welcome["peers"], serde_json::json!([]));
    let (mut t, _) = n2.join("s").await;
    s.expect("relay/joined").await;
    t.send(&app("t")).await;
    assert_eq!(s.frame().await, app("t"));
}

/// A GET of `path` on `addr`; the status line and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("an answer within the bound")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// Asks `path` until its status line is `status` (bounded by [`WAIT`]); the last answer.
async fn http_until(addr: SocketAddr, path: &str, status: &str) -> (String, String) {
    let started = Instant::now();
    loop {
        let answer = http_get(addr, path).await;
        if answer.0 == status || started.elapsed() > WAIT {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_nats_is_alive_not_ready_and_its_metrics_say_why() {
    let Some(mut cluster) = Cluster::start("health") else {
        return;
    };
    let n1 = cluster.node("n1");
    let n2 = cluster.node("n2");
    let ok = "HTTP/1.1 200 OK";
    let unavailable = "HTTP/1.1 503 Service Unavailable";
    assert_eq!(
        http_get(n2.addr, "/readyz").await,
        (ok.to_owned(), "ready\n".to_owned())
    );
    let (_, metrics) = http_get(n2.addr, "/metrics").await;
    assert!(
        metrics.contains("\nsignaling_cluster_nats_connected 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "\nsignaling_relay_refused_connections_total{reason=\"cluster_unavailable\"} 0\n"
        ),
        "{metrics}"
    );
    // A room run by n1.
    let (_a, _) = n1.join("call").await;

    cluster.nats.stop();
    let (status, body) = http_until(n2.addr, "/readyz", unavailable).await;
    assert_eq!(status, unavailable, "{body}");
    assert_eq!(body, "not ready: NATS connection down\n");
    // Alive: it still serves its own rooms.
    assert_eq!(
        http_get(n2.addr, "/healthz").await,
        (ok.to_owned(), "degraded: NATS connection down\n".to_owned())
    );
    let mut refused = n2.connect("room=call").await;
    assert_eq!(refused.closed_with().await, Some(TRY_AGAIN_LATER));
    let (_, metrics) = http_get(n2.addr, "/metrics").await;
    assert!(
        metrics.contains("\nsignaling_cluster_nats_connected 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "\nsignaling_relay_refused_connections_total{reason=\"cluster_unavailable\"} 1\n"
        ),
        "{metrics}"
    );

    cluster.nats.restart().expect("restart nats-server");
    let (status, body) = http_until(n2.addr, "/readyz", ok).await;
    assert_eq!(status, ok, "{body}");
}
