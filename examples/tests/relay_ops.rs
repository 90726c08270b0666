//! The `relay` binary's operator features, on the binary as a process: TLS with a self-signed
//! certificate made by the test, `/metrics` after a known pattern of traffic, and `/healthz` /
//! `/readyz` through a shutdown. Clients are tokio-tungstenite WebSocket clients (over
//! tokio-rustls for TLS). Everything runs on 127.0.0.1.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

mod support;

use support::relay::RelayProcess;
use support::ws::WAIT;

const OFFER: &str = include_str!("../../signaling-core/tests/data/chrome-offer.sdp");

/// A WebSocket client of the relay, over any stream.
struct Client<S> {
    ws: WebSocketStream<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    /// The next text frame; `None` when the connection closes first.
    async fn frame(&mut self) -> Option<String> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame or the end within the bound");
            match next {
                Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The value of the next frame, which must be of type `kind`.
    async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.frame().await.expect("a frame");
        let v: Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(v["type"], kind, "{frame}");
        v["value"].clone()
    }

    /// Reads until the close, and on until the end (which sends the answer to the close);
    /// the close's code.
    async fn closed_with(&mut self) -> Option<u16> {
        let mut code = None;
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the close within the bound");
            match next {
                Some(Ok(Message::Close(frame))) => {
                    code = frame.map(|f| u16::from(f.code)).or(Some(1005));
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return code,
            }
        }
    }
}

/// A plain WebSocket client at `ws://addr/ws?query`.
async fn connect(addr: SocketAddr, query: &str) -> Client<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/ws?{query}");
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("WebSocket handshake");
    Client { ws }
}

/// Joins `room` over plain TCP; returns the client and its welcome.
async fn join(addr: SocketAddr, room: &str) -> (Client<TcpStream>, Value) {
    let mut client = connect(addr, &format!("room={room}")).await;
    let welcome = client.expect("relay/welcome").await;
    (client, welcome)
}

/// A GET over `stream`; the whole response (the relay closes after it).
async fn get_over<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the response within the bound")
        .expect("read the response");
    String::from_utf8(response).expect("UTF-8")
}

/// A GET of `path` on `addr` over plain TCP.
async fn get(addr: SocketAddr, path: &str) -> String {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    get_over(tcp, path).await
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or_default()
}

/// The samples of a Prometheus text exposition: `name{labels}` (as written) → value. Checks the
/// format's rules on the way: every sample's family has a `# TYPE` line before it, and counters'
/// samples end in `_total`.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name, kind);
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let name = series.split('{').next().unwrap_or_default();
        let kind = types
            .get(name)
            .unwrap_or_else(|| panic!("no # TYPE before {line}"));
        if *kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
        let value: f64 = value.parse().expect("a number");
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in {samples:?}"))
}

fn temp_dir(name: &str) -> PathBuf {
    support::temp_dir(&format!("relay-ops-{name}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate for `localhost` and its key, as PEM files in `dir`; and the
/// certificate, for a client to trust.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate");
    let cert = write(dir, "cert.pem", &made.cert.pem());
    let key = write(dir, "key.pem", &made.signing_key.serialize_pem());
    (cert, key, made.cert.der().clone())
}

/// A TLS connector that trusts `cert` only.
fn connector(cert: rustls::pki_types::CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("a root certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_stream(tls: &tokio_rustls::TlsConnector, addr: SocketAddr) -> TlsStream {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    tls.connect(name, tcp).await.expect("TLS handshake")
}

/// Joins `room` at `wss://localhost/ws` (at `addr`); returns the client and its welcome.
async fn join_tls(
    tls: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    room: &str,
) -> (Client<TlsStream>, Value) {
    let stream = tls_stream(tls, addr).await;
    let url = format!("wss://localhost:{}/ws?room={room}", addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("WebSocket handshake over TLS");
    let mut client = Client { ws };
    let welcome = client.expect("relay/welcome").await;
    (client, welcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_two_peers_exchange_a_seed_frame_and_a_plain_client_is_turned_away() {
    let dir = temp_dir("tls");
    let (cert, key, der) = self_signed(&dir);
    let mut relay = RelayProcess::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("UTF-8"),
        "--tls-key",
        key.to_str().expect("UTF-8"),
    ]);
    let addr = relay.logged_address("relay listening on ");
    let log = relay.log();
    assert!(
        log.contains(&format!("relay listening on https://{addr}")),
        "{log}"
    );
    assert!(log.contains(&format!("wss://{addr}/ws?room=NAME")), "{log}");
    let tls = connector(der);

    let (mut a, _) = join_tls(&tls, addr, "call").await;
    let (mut b, welcome) = join_tls(&tls, addr, "call").await;
    assert_eq!(a.expect("relay/joined").await["id"], welcome["id"]);
    // The seed client's first frame, forwarded byte for byte.
    let offer = serde_json::json!({"type": "webrtc/offer", "value": OFFER}).to_string();
    a.send(&offer).await;
    assert_eq!(b.frame().await.as_deref(), Some(offer.as_str()));

    // A client that speaks plain HTTP to the TLS port gets no HTTP answer, and the connection
    // ends (a TLS alert at most).
    let response = {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("send");
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut bytes))
            .await
            .expect("the connection ends within the bound");
        // A reset is as good an end as a close.
        let _ = read;
        bytes
    };
    assert!(
        !response.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );

    // The relay serves on: the peers still talk, and the operators' endpoints answer over TLS.
    b.send(r#"{"type":"x","value":"after"}"#).await;
    assert_eq!(
        a.frame().await.as_deref(),
        Some(r#"{"type":"x","value":"after"}"#)
    );
    let health = get_over(tls_stream(&tls, addr).await, "/healthz").await;
    assert_eq!(status_line(&health), "HTTP/1.1 200 OK", "{health}");
    assert_eq!(body(&health), "ok\n");
    let metrics = get_over(tls_stream(&tls, addr).await, "/metrics").await;
    let samples = parse_metrics(body(&metrics));
    assert_eq!(
        sample(
            &samples,
            r#"signaling_relay_refused_connections_total{reason="tls_failed"}"#
        ),
        1.0,
        "the plain client"
    );

    relay.signal("TERM");
    assert_eq!(a.closed_with().await, Some(1001));
    assert_eq!(b.closed_with().await, Some(1001));
    let (status, log) = relay.exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn unusable_tls_files_exit_1_naming_the_file_and_half_a_pair_exits_2() {
    let dir = temp_dir("tls-bad");
    let (cert, key, _) = self_signed(&dir);
    let (cert, key) = (cert.to_str().expect("UTF-8"), key.to_str().expect("UTF-8"));
    let missing = dir.join("no-such.pem");
    let missing = missing.to_str().expect("UTF-8");
    let garbage = write(&dir, "garbage.pem", "not a PEM file\n");
    let garbage = garbage.to_str().expect("UTF-8");
    let cases: [(&[&str], i32, String); 5] = [
        (
            &["--tls-cert", missing, "--tls-key", key],
            1,
            format!("TLS certificate file {missing}: cannot read it: no such file or directory"),
        ),
        (
            &["--tls-cert", cert, "--tls-key", garbage],
            1,
            format!("TLS key file {garbage}: no private key in it"),
        ),
        (
            // The key where the certificate belongs: a PEM file, without a certificate.
            &["--tls-cert", key, "--tls-key", key],
            1,
            format!("TLS certificate file {key}: no certificate in it"),
        ),
        (
            &["--tls-cert", cert],
            2,
            "TLS needs a certificate chain and its private key, and the private key is \
             missing: give --tls-key PATH"
                .to_owned(),
        ),
        (
            &["--tls-key", key],
            2,
            "the certificate chain is missing: give --tls-cert PATH".to_owned(),
        ),
    ];
    for (args, code, message) in cases {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (status, log) = RelayProcess::spawn(&all).exit();
        assert_eq!(status.code(), Some(code), "{args:?}: {log}");
        assert!(
            log.contains(&message),
            "{args:?}: {message:?} not in:\n{log}"
        );
        assert!(!log.contains("relay listening"), "{log}");
    }
}

#[test]
fn the_tls_section_of_the_file_is_read_relative_to_the_file() {
    let dir = temp_dir("tls-file");
    self_signed(&dir);
    // Half a pair in the file: refused, naming the section and the file.
    let half = write(&dir, "half.toml", "[tls]\ncert = \"cert.pem\"\n");
    let half = half.to_str().expect("UTF-8");
    let (status, log) = RelayProcess::spawn(&["--listen", "127.0.0.1:0", "--config", half]).exit();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "set `key` in the [tls] section of the configuration file ({half})"
        )),
        "{log}"
    );
    // Both, relative to the file's directory (the relay runs elsewhere).
    let both = write(
        &dir,
        "both.toml",
        "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    );
    let mut relay = RelayProcess::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--config",
        both.to_str().expect("UTF-8"),
    ]);
    let addr = relay.logged_address("relay listening on ");
    assert!(
        relay
            .log()
            .contains(&format!("relay listening on https://{addr}")),
        "{}",
        relay.log()
    );
    relay.signal("TERM");
    let (status, log) = relay.exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_clients_did() {
    /// Frames A sends to B.
    const FRAMES: usize = 7;
    // A burst of 10 frames per connection, then one a second: A's 7 pass, and a run of 20
    // more breaks the limit.
    let dir = temp_dir("metrics");
    let config = write(
        &dir,
        "relay.toml",
        "[relay]\nrate_per_sec = 1\nrate_burst = 10\n",
    );
    let (mut relay, addr) = RelayProcess::listening(&["--config", config.to_str().expect("UTF-8")]);

    // Two joins and a call: A's frames to B, each forwarded once.
    let (mut a, _) = join(addr, "m").await;
    let (mut b, _) = join(addr, "m").await;
    a.expect("relay/joined").await;
    for i in 0..FRAMES {
        a.send(&format!(r#"{{"type":"x","value":{i}}}"#)).await;
    }
    for i in 0..FRAMES {
        assert_eq!(
            b.frame().await,
            Some(format!(r#"{{"type":"x","value":{i}}}"#))
        );
    }
    // A third peer: the room is full.
    let mut c = connect(addr, "room=m").await;
    assert_eq!(c.closed_with().await, Some(4001));
    // No room: a bad request.
    let mut d = connect(addr, "").await;
    assert_eq!(d.closed_with().await, Some(4009));

    let response = get(addr, "/metrics").await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{response}"
    );
    let samples = parse_metrics(body(&response));
    let value = |series: &str| sample(&samples, series);
    assert_eq!(
        value("signaling_relay_frames_received_total"),
        FRAMES as f64
    );
    assert_eq!(
        value("signaling_relay_frames_forwarded_total"),
        FRAMES as f64
    );
    // Two welcomes, and B's arrival told to A.
    assert_eq!(value("signaling_relay_notices_total"), 3.0);
    assert_eq!(value("signaling_relay_frames_refused_total"), 0.0);
    assert_eq!(value("signaling_relay_connections"), 2.0);
    assert_eq!(value("signaling_relay_peers"), 2.0);
    assert_eq!(value("signaling_relay_rooms"), 1.0);
    assert_eq!(value("signaling_relay_max_connections"), 20_000.0);
    // A, B and this scrape at least (C's and D's may still be ending).
    assert!(value("signaling_relay_open_connections") >= 3.0);
    let refused = |reason: &str| {
        value(&format!(
            r#"signaling_relay_refused_connections_total{{reason="{reason}"}}"#
        ))
    };
    assert_eq!(refused("room_full"), 1.0);
    assert_eq!(refused("bad_request"), 1.0);
    for reason in [
        "too_many_rooms",
        "too_many_peers",
        "resume_failed",
        "missing_token",
        "bad_token",
        "missing_origin",
        "forbidden_origin",
        "malformed_request",
        "handshake_timeout",
        "tls_failed",
        "shutting_down",
    ] {
        assert_eq!(refused(reason), 0.0, "{reason}");
    }
    assert!(
        !samples.keys().any(|k| k.contains("cluster")),
        "no cluster series on a node of its own"
    );
    for reason in ["too_big", "rate_limited", "idle", "slow_consumer"] {
        assert_eq!(
            value(&format!(
                r#"signaling_relay_limit_closes_total{{reason="{reason}"}}"#
            )),
            0.0
        );
    }

    // A malformed request head is counted too, and frames over the rate limit close their
    // connection.
    let response = {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"NOT HTTP\r\n\r\n").await.expect("send");
        let mut bytes = Vec::new();
        let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut bytes)).await;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    // The server counts it once the connection is over on its side, which may be just after
    // the client saw it end: wait for the count (bounded), then check it is exactly one.
    let malformed = r#"signaling_relay_refused_connections_total{reason="malformed_request"}"#;
    let started = std::time::Instant::now();
    while sample(
        &parse_metrics(body(&get(addr, "/metrics").await)),
        malformed,
    ) < 1.0
        && started.elapsed() < WAIT
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for i in 0..20 {
        a.send(&format!(r#"{{"type":"x","value":{i}}}"#)).await;
    }
    assert_eq!(a.closed_with().await, Some(4004));
    let samples = parse_metrics(body(&get(addr, "/metrics").await));
    assert_eq!(sample(&samples, malformed), 1.0);
    assert_eq!(
        sample(
            &samples,
            r#"signaling_relay_limit_closes_total{reason="rate_limited"}"#
        ),
        1.0
    );

    relay.signal("TERM");
    assert_eq!(b.closed_with().await, Some(1001));
    let (status, log) = relay.exit();
    assert_eq!(status.code(), Some(0), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_200_while_serving_and_503_during_the_drain_on_both_listeners() {
    /// Frames B sends to A, 60 kB each: more than the sockets between them hold.
    const FRAMES: usize = 300;
    let dir = temp_dir("health");
    let config = write(
        &dir,
        "relay.toml",
        "[relay]\nrate_per_sec = 100000\nrate_burst = 100000\n[websocket]\nsend_queue = 4096\n",
    );
    let mut relay = RelayProcess::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--ops-listen",
        "127.0.0.1:0",
        "--drain-timeout",
        "30",
        "--config",
        config.to_str().expect("UTF-8"),
    ]);
    let ops = relay.logged_address("operators' endpoints on ");
    let addr = relay.logged_address("relay listening on ");

    for at in [addr, ops] {
        let health = get(at, "/healthz").await;
        assert_eq!(status_line(&health), "HTTP/1.1 200 OK", "{health}");
        assert_eq!(body(&health), "ok\n");
        let ready = get(at, "/readyz").await;
        assert_eq!(status_line(&ready), "HTTP/1.1 200 OK", "{ready}");
        assert_eq!(body(&ready), "ready\n");
    }
    // The operators' listener answers nothing else.
    assert_eq!(status_line(&get(ops, "/").await), "HTTP/1.1 404 Not Found");

    // A peer that reads nothing until told to, with more queued for it than the sockets
    // between hold: the drain, which delivers what is queued before the close, lasts until it
    // reads (or the 30 s drain time).
    let (mut a, _) = join(addr, "h").await;
    let (mut b, _) = join(addr, "h").await;
    a.expect("relay/joined").await;
    let frame = |i: usize| format!(r#"{{"type":"x","value":"{i:04}{}"}}"#, "z".repeat(60_000));
    for i in 0..FRAMES {
        b.send(&frame(i)).await;
    }
    // The relay handles one connection's frames in order: once it answers this one, it has
    // routed all of the above to A's queue.
    b.send(r#"{"type":"relay/probe","value":0}"#).await;
    assert_eq!(
        b.frame().await.as_deref(),
        Some(r#"{"type":"error","value":"relay/probe: reserved type"}"#)
    );
    relay.signal("TERM");
    relay.wait_for_log("SIGTERM received: shutting down", WAIT);
    // The shutdown's first step marks the server as draining; wait for it (bounded).
    let started = std::time::Instant::now();
    let health = loop {
        let health = get(addr, "/healthz").await;
        if status_line(&health) != "HTTP/1.1 200 OK" || started.elapsed() > WAIT {
            break health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        status_line(&health),
        "HTTP/1.1 503 Service Unavailable",
        "{health}"
    );
    assert_eq!(body(&health), "shutting down\n");
    for (at, path) in [(addr, "/readyz"), (ops, "/healthz"), (ops, "/readyz")] {
        let answer = get(at, path).await;
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 503 Service Unavailable",
            "{path}: {answer}"
        );
    }
    // A new peer is turned away before the upgrade.
    let refused = get(addr, "/ws?room=h").await;
    assert_eq!(
        status_line(&refused),
        "HTTP/1.1 503 Service Unavailable",
        "{refused}"
    );
    // Scrapes go on during the drain.
    let metrics = get(ops, "/metrics").await;
    assert_eq!(status_line(&metrics), "HTTP/1.1 200 OK");
    let samples = parse_metrics(body(&metrics));
    assert_eq!(
        sample(
            &samples,
            r#"signaling_relay_refused_connections_total{reason="shutting_down"}"#
        ),
        1.0
    );

    // The peer reads: what was queued, its close, and the relay is done.
    for i in 0..FRAMES {
        assert_eq!(a.frame().await, Some(frame(i)), "frame {i}");
    }
    assert_eq!(a.closed_with().await, Some(1001));
    assert_eq!(b.closed_with().await, Some(1001));
    let (status, log) = relay.exit();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("1 connections arriving during the shutdown refused"),
        "{log}"
    );
}
