//! The relay at its edges, on 127.0.0.1: the handshake deadline and the request-head bounds
//! (in-process, the binary's server code), and the `relay` binary itself: graceful shutdown on
//! SIGTERM and SIGINT, and its messages for a taken port, a bad configuration file and invalid
//! settings.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use examples::relay_server::{FileConfig, Server};
use serde_json::Value;
use signaling::transport::{CloseCode, Transport};
use signaling_ws::{WsClient, WsConfig, WsConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;

use support::relay::RelayProcess;
use support::ws::{closed_with, expect_type, next_frame, WAIT};

// ---------------------------------------------------------------------------------------------
// The handshake deadline and the request-head bounds
// ---------------------------------------------------------------------------------------------

/// Starts the binary's server code in-process with `toml`; returns its address.
async fn start(toml: &str) -> SocketAddr {
    let config = FileConfig::from_toml(toml).expect("config");
    let server = Arc::new(Server::new(config).expect("server"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.run(listener));
    addr
}

/// Sends `request` on a new connection and reads the response until the server closes.
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before it has read all of a request over its bounds.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the server closes after its answer");
    String::from_utf8_lossy(&response).into_owned()
}

/// Waits until the server closes `stream` (a read returns 0 or fails) without answering;
/// returns when that happened.
async fn closed_by_server(stream: &mut TcpStream) -> Instant {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
        Err(_) => panic!("the server did not close the connection within {WAIT:?}"),
        Ok(Ok(0) | Err(_)) => Instant::now(),
        Ok(Ok(n)) => panic!(
            "unexpected answer: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

const DEADLINE: Duration = Duration::from_secs(1);
/// How much earlier than the deadline a close may be seen (timer granularity), and how much
/// later (a loaded test machine): generous, this is about the deadline, not speed.
const EARLY: Duration = Duration::from_millis(100);
const LATE: Duration = Duration::from_secs(4);

fn assert_at_the_deadline(what: &str, elapsed: Duration) {
    assert!(
        elapsed >= DEADLINE - EARLY,
        "{what}: closed after {elapsed:?}, before the {DEADLINE:?} deadline"
    );
    assert!(
        elapsed < DEADLINE + LATE,
        "{what}: closed after {elapsed:?}, long after the {DEADLINE:?} deadline"
    );
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_deadline() {
    let addr = start("[websocket]\nhandshake_timeout = 1\n").await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let closed = closed_by_server(&mut stream).await;
    assert_at_the_deadline("silent", closed - started);
}

#[tokio::test]
async fn a_head_trickled_a_line_at_a_time_is_cut_off_at_the_deadline() {
    let addr = start("[websocket]\nhandshake_timeout = 1\n").await;
    // Both the WebSocket path and a plain one: the deadline covers the head, whatever it asks.
    for path in ["/ws?room=r", "/"] {
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            let mut line = 0;
            let request_line = format!("GET {path} HTTP/1.1\r\n");
            if writer.write_all(request_line.as_bytes()).await.is_err() {
                return line;
            }
            // One header line every 300 ms, never the blank line that ends the head, until the
            // server hangs up (or well past its deadline).
            while started.elapsed() < DEADLINE + LATE {
                tokio::time::sleep(Duration::from_millis(300)).await;
                line += 1;
                let header = format!("X-Line-{line}: {line}\r\n");
                if writer.write_all(header.as_bytes()).await.is_err() {
                    break;
                }
            }
            line
        });
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(WAIT, reader.read(&mut buf))
            .await
            .expect("the server closes the connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{path}: {read:?}");
        assert_at_the_deadline(path, started.elapsed());
        let lines = trickle.await.expect("trickle task");
        assert!(
            lines >= 2,
            "{path}: the server saw {lines} header lines before the deadline"
        );
    }
}

#[tokio::test]
async fn request_heads_over_their_bounds_are_refused_with_431() {
    let addr = start("[websocket]\nmax_header_bytes = 1024\nmax_headers = 10\n").await;
    // Within the bounds (ten headers, under 1 KiB): served.
    let ten: String = (0..9).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let response = http(
        addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{ten}\r\n").as_bytes(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");

    // An oversized header block: one cookie of 4 KB.
    let big = format!(
        "GET /ws?room=r HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(4000)
    );
    let response = http(addr, big.as_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );

    // Too many headers, each short (the whole head well under 1 KiB).
    let eleven: String = (0..10).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{eleven}\r\n");
    assert!(many.len() < 1024);
    let response = http(addr, many.as_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );
}

// ---------------------------------------------------------------------------------------------
// The `relay` binary
// ---------------------------------------------------------------------------------------------

/// A configuration file of this test target, written with `text`.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = support::temp_dir("relay_edge").join(name);
    std::fs::write(&path, text).expect("write the configuration file");
    path
}

async fn join(addr: SocketAddr, room: &str) -> (WsConnection, Value) {
    let url = format!("ws://{addr}/ws?room={room}");
    let mut conn = WsClient::connect(&url, WsConfig::default())
        .await
        .expect("connect");
    let welcome = expect_type(&mut conn, "relay/welcome").await;
    (conn, welcome)
}

/// Frames A sends to B before the signal: B reads none of them until after it, so that most
/// wait in the relay (beyond what the kernel's socket buffers take) when the shutdown begins.
const FRAMES: usize = 300;
const FRAME_PADDING: usize = 60_000;

fn numbered_frame(i: usize) -> String {
    format!(
        r#"{{"type":"x","value":"{i:04}{}"}}"#,
        "z".repeat(FRAME_PADDING)
    )
}

async fn shutdown_on(signal: &str) {
    let config = config_file(
        &format!("shutdown-{signal}.toml"),
        "[relay]\nrate_per_sec = 100000\nrate_burst = 100000\n[websocket]\nsend_queue = 4096\n",
    );
    let config = config.to_str().expect("UTF-8 path");
    let (mut relay, addr) = RelayProcess::listening(&["--config", config, "--drain-timeout", "10"]);
    let (mut a, _) = join(addr, "r").await;
    let (mut b, _) = join(addr, "r").await;
    assert_eq!(expect_type(&mut a, "relay/joined").await["id"], "p2");
    for i in 0..FRAMES {
        a.send(numbered_frame(i).into()).await.expect("send");
    }
    // The relay handles one connection's frames in order: once it answers this one, it has
    // routed all of the above to B's queue.
    a.send(r#"{"type":"relay/probe","value":0}"#.into())
        .await
        .expect("send");
    assert_eq!(
        next_frame(&mut a).await,
        r#"{"type":"error","value":"relay/probe: reserved type"}"#
    );

    relay.signal(signal);
    for i in 0..FRAMES {
        let frame = next_frame(&mut b).await;
        assert!(
            frame == numbered_frame(i),
            "SIG{signal}: frame {i} of {FRAMES} not delivered in order (got {:.40}...)",
            frame
        );
    }
    assert_eq!(closed_with(&mut b).await, CloseCode::GOING_AWAY);
    assert_eq!(closed_with(&mut a).await, CloseCode::GOING_AWAY);

    let (status, log) = relay.exit();
    assert_eq!(status.code(), Some(0), "SIG{signal}: {status}; log:\n{log}");
    assert!(
        log.contains(&format!("SIG{signal} received: shutting down")),
        "{log}"
    );
    assert!(
        log.contains("shutdown complete: 2 of 2 connections closed with 1001"),
        "{log}"
    );
    assert!(log.contains("0 queued frames dropped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_deliver_what_is_queued_then_close_every_peer_with_1001() {
    for signal in ["TERM", "INT"] {
        shutdown_on(signal).await;
    }
}

#[tokio::test]
async fn a_plain_get_on_the_websocket_path_gets_426_and_other_paths_are_unchanged() {
    let (mut relay, addr) = RelayProcess::listening(&[]);
    let response = http(addr, b"GET /ws?room=r HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n"),
        "{response}"
    );
    let response = http(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let response = http(addr, b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    relay.signal("TERM");
    let (status, log) = relay.exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn a_taken_port_is_reported_with_the_address_and_the_reason_in_words() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let (status, log) = RelayProcess::spawn(&["--listen", &addr.to_string()]).exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot listen on {addr}: address already in use")),
        "{log}"
    );
    assert!(!log.contains("Os {"), "{log}");
}

#[test]
fn a_bad_configuration_file_is_reported_with_its_name_line_and_column() {
    // An unknown key.
    let path = config_file(
        "unknown-key.toml",
        "[relay]\nroom_capacity = 2\nrooom = 3\n",
    );
    let (status, log) = RelayProcess::spawn(&["--config", path.to_str().expect("path")]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "configuration file {}, line 3, column 1: unknown field `rooom`",
            path.display()
        )),
        "{log}"
    );

    // A value of the wrong type.
    let path = config_file(
        "wrong-type.toml",
        "[websocket]\nping_interval = \"often\"\n",
    );
    let (status, log) = RelayProcess::spawn(&["--config", path.to_str().expect("path")]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "configuration file {}, line 2, column 17:",
            path.display()
        )),
        "{log}"
    );

    // A file that is not there.
    let path = support::temp_dir("relay_edge").join("missing.toml");
    let (status, log) = RelayProcess::spawn(&["--config", path.to_str().expect("path")]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "cannot read configuration file {}: no such file or directory",
            path.display()
        )),
        "{log}"
    );
}

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    for (name, text, expected) in [
        (
            "room-capacity.toml",
            "[relay]\nroom_capacity = 0\n",
            "[relay] room_capacity = 0: a room must hold at least one peer",
        ),
        (
            "max-connections.toml",
            "[websocket]\nmax_connections = 0\n",
            "[websocket] max_connections = 0: no connection would be served",
        ),
        (
            "handshake-timeout.toml",
            "[websocket]\nhandshake_timeout = 0\n",
            "[websocket] handshake_timeout = 0: no handshake could finish",
        ),
        (
            "pong-timeout.toml",
            "[websocket]\npong_timeout = -1\n",
            "[websocket] pong_timeout = -1: must be a number of seconds, at least 0",
        ),
    ] {
        let path = config_file(name, text);
        let (status, log) = RelayProcess::spawn(&["--config", path.to_str().expect("path")]).exit();
        assert_eq!(status.code(), Some(2), "{name}: {log}");
        assert!(
            log.contains(&format!(
                "configuration file {}: {expected}",
                path.display()
            )),
            "{name}: {log}"
        );
    }
    // A drain time of 0 on the command line.
    let (status, log) = RelayProcess::spawn(&["--drain-timeout", "0"]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("must be a number of seconds greater than 0"),
        "{log}"
    );
}
