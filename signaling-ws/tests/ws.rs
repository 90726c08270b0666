//! End-to-end tests on real sockets on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use signaling::transport::{
    CloseCode, CloseReason, Frame, PeerInfo, Transport, TransportError, TrySendError,
};
use signaling_core::admission::Refusal;
use signaling_ws::tungstenite::protocol::frame::coding::{Data, OpCode};
use signaling_ws::tungstenite::protocol::frame::Frame as WsFrame;
use signaling_ws::tungstenite::{Bytes, Message};
use signaling_ws::{accept_stream, ConnectError, WsClient, WsConfig, WsConnection, WsServer};
use tokio::time::timeout;

/// A generous bound so that a broken test fails instead of hanging; never a timing assertion.
const LIMIT: Duration = Duration::from_secs(30);

const OFFER: &str = r#"{"type":"webrtc/offer","value":"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"}"#;

/// Spawns a task that echoes every frame of every accepted connection.
fn spawn_echo(mut server: WsServer) {
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(echo(conn));
        }
    });
}

async fn echo(mut conn: WsConnection) {
    while let Ok(Some(frame)) = conn.recv().await {
        if conn.send(frame).await.is_err() {
            break;
        }
    }
}

async fn echo_server(config: WsConfig) -> SocketAddr {
    let server = WsServer::bind("127.0.0.1:0", config).await.unwrap();
    let addr = server.local_addr();
    spawn_echo(server);
    addr
}

/// A server on 127.0.0.1 with an ephemeral port.
async fn bind(config: WsConfig) -> (WsServer, SocketAddr) {
    let server = WsServer::bind("127.0.0.1:0", config).await.unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// A raw tokio-tungstenite client of `addr`.
async fn raw_client(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap()
        .0
}

async fn recv(conn: &mut WsConnection) -> Result<Option<String>, TransportError> {
    timeout(LIMIT, conn.recv())
        .await
        .expect("recv hung")
        .map(|f| f.map(String::from))
}

/// Reads from a raw client until its close frame; returns the close code.
async fn raw_close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    timeout(LIMIT, async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("no close frame")
}

/// Frames sent together are copied into shared receive blocks on both ends (the echo server's
/// and the client's): every size around a block's edges, and the frames over a quarter of it,
/// arrive whole and in order, with small blocks, the default, none at all, and a size too large
/// to allocate (it is capped).
#[tokio::test]
async fn frames_received_together_share_blocks_and_arrive_whole() {
    for block in [64, 4 * 1024, 0, usize::MAX] {
        let config = WsConfig::default().with_recv_block_size(block);
        let addr = echo_server(config.clone()).await;
        let mut client = WsClient::connect(&format!("ws://{addr}/api/ws"), config)
            .await
            .unwrap();
        let frames: Vec<String> = (0..40)
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        for frame in &frames {
            client.try_send(frame.as_str().into()).unwrap();
        }
        client.send("end".into()).await.unwrap();
        for frame in &frames {
            assert_eq!(
                recv(&mut client).await.unwrap().as_ref(),
                Some(frame),
                "{block}"
            );
        }
        assert_eq!(recv(&mut client).await.unwrap().as_deref(), Some("end"));
        client.close(CloseReason::normal()).await.unwrap();
    }
}

#[tokio::test]
async fn round_trip_of_text_frames() {
    let addr = echo_server(WsConfig::default()).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/api/ws"), WsConfig::default())
        .await
        .unwrap();
    assert_eq!(client.peer().transport, "ws");
    assert_eq!(client.peer().remote_addr, Some(addr));

    let big: Vec<String> = (0..20)
        .map(|i| format!("{i:04}{}", "x".repeat(3 * 1024)))
        .collect();
    client.send(OFFER.into()).await.unwrap();
    for frame in &big {
        client.send(frame.clone().into()).await.unwrap();
    }
    client
        .send(r#"{"type":"webrtc/candidate","value":""}"#.into())
        .await
        .unwrap();

    assert_eq!(recv(&mut client).await.unwrap().as_deref(), Some(OFFER));
    for frame in &big {
        assert_eq!(recv(&mut client).await.unwrap().as_ref(), Some(frame));
    }
    assert_eq!(
        recv(&mut client).await.unwrap().as_deref(),
        Some(r#"{"type":"webrtc/candidate","value":""}"#)
    );
    client.close(CloseReason::normal()).await.unwrap();
    assert_eq!(recv(&mut client).await.unwrap(), None);
    assert!(matches!(
        client.send("late".into()).await,
        Err(TransportError::Closed(_))
    ));
}

#[tokio::test]
async fn peer_info_carries_the_upgrade_request() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let client = tokio::spawn(async move {
        WsClient::new(format!("ws://{addr}/api/ws?src=cam1"))
            .query_param("token", "a b")
            .header("X-Custom", "Yes")
            .header("Cookie", "theme=dark; session=abc123")
            .open()
            .await
            .unwrap()
    });
    let conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    let client = client.await.unwrap();
    let peer = conn.peer();
    assert_eq!(peer.transport, "ws");
    assert_eq!(peer.path, "/api/ws");
    assert_eq!(peer.query.as_deref(), Some("src=cam1&token=a%20b"));
    assert_eq!(peer.query_param("src"), Some("cam1"));
    assert_eq!(peer.header("x-custom"), Some("Yes"));
    assert!(peer
        .headers
        .iter()
        .any(|(n, v)| n == "x-custom" && v == "Yes"));
    assert!(peer.headers.iter().all(|(n, _)| *n == n.to_lowercase()));
    assert_eq!(
        peer.remote_addr.map(|a| a.ip()),
        Some("127.0.0.1".parse().unwrap())
    );
    drop(client);
}

/// The same admission checks the relay uses: a closure over the request's `PeerInfo`.
fn auth_hook(peer: &PeerInfo) -> Result<(), Refusal> {
    if peer.path != "/api/ws" {
        return Err(Refusal::other(404, "not_found"));
    }
    let token = peer.query_param("token").or_else(|| peer.cookie("session"));
    match token {
        None => Err(Refusal::MISSING_TOKEN),
        Some("good") => Ok(()),
        Some(_) => Err(Refusal::other(403, "bad_token")),
    }
}

#[tokio::test]
async fn admission_refuses_before_upgrade() {
    let mut server = WsServer::bind_with_admission("127.0.0.1:0", WsConfig::default(), auth_hook)
        .await
        .unwrap();
    let addr = server.local_addr();
    let url = format!("ws://{addr}/api/ws");

    match WsClient::new(&url).open().await {
        Err(ConnectError::Rejected { status, body }) => {
            assert_eq!(status, 401);
            assert_eq!(body.as_deref(), Some("missing_token"));
        }
        other => panic!("expected 401, got {other:?}"),
    }
    match WsClient::new(&url).query_param("token", "bad").open().await {
        Err(ConnectError::Rejected { status, body }) => {
            assert_eq!(status, 403);
            assert_eq!(body.as_deref(), Some("bad_token"));
        }
        other => panic!("expected 403, got {other:?}"),
    }
    match WsClient::new(format!("ws://{addr}/other")).open().await {
        Err(ConnectError::Rejected { status, .. }) => assert_eq!(status, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    // A raw tungstenite client sees the same refusal.
    match tokio_tungstenite::connect_async(format!("{url}?token=nope")).await {
        Err(signaling_ws::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }

    // Accepted by token in the cookie: this is the first connection `accept` yields, so none of
    // the refused ones was upgraded.
    let client = WsClient::new(&url)
        .header("cookie", "theme=dark; session=good")
        .open()
        .await
        .unwrap();
    let conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(conn.peer().query, None);
    assert_eq!(
        conn.peer().header("cookie"),
        Some("theme=dark; session=good")
    );
    drop(client);
}

#[tokio::test]
async fn accept_stream_embeds_in_an_existing_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for _ in 0..2 {
            let (stream, remote) = listener.accept().await.unwrap();
            accepted
                .push(accept_stream(stream, Some(remote), &WsConfig::default(), &auth_hook).await);
        }
        accepted
    });
    let refused = WsClient::new(format!("ws://{addr}/api/ws")).open().await;
    assert!(matches!(
        refused,
        Err(ConnectError::Rejected { status: 401, .. })
    ));
    let mut client = WsClient::new(format!("ws://{addr}/api/ws?token=good"))
        .open()
        .await
        .unwrap();
    let mut accepted = server.await.unwrap();
    let mut conn = accepted.pop().unwrap().unwrap();
    assert!(matches!(
        accepted.pop().unwrap(),
        Err(signaling_ws::AcceptError::Rejected { status: 401 })
    ));
    assert_eq!(conn.peer().query_param("token"), Some("good"));
    client.send(OFFER.into()).await.unwrap();
    assert_eq!(recv(&mut conn).await.unwrap().as_deref(), Some(OFFER));
    conn.send("answer".into()).await.unwrap();
    assert_eq!(recv(&mut client).await.unwrap().as_deref(), Some("answer"));
}

/// A stream that is not a `TcpStream` (here an in-process pipe) goes through the general
/// adapter: frames both ways, then a close with its code, and a refused request.
#[tokio::test]
async fn accept_stream_works_on_any_stream() {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        accept_stream(
            server_end,
            None,
            &WsConfig::default(),
            &signaling_core::admission::AllowAll,
        )
        .await
    });
    let (mut client, _) = tokio_tungstenite::client_async("ws://pipe/ws?room=a", client_end)
        .await
        .unwrap();
    let mut conn = server.await.unwrap().unwrap();
    assert_eq!(conn.peer().query_param("room"), Some("a"));
    client.send(Message::text(OFFER)).await.unwrap();
    assert_eq!(recv(&mut conn).await.unwrap().as_deref(), Some(OFFER));
    conn.send("answer".into()).await.unwrap();
    let answer = timeout(LIMIT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, Message::text("answer"));
    let (closed, code) = tokio::join!(
        conn.close(CloseReason::new(CloseCode(4000), "done")),
        async {
            let code = raw_close_code(&mut client).await;
            // Reading on sends the close reply, which the server's close waits for.
            while timeout(LIMIT, client.next()).await.unwrap().is_some() {}
            code
        }
    );
    closed.unwrap();
    assert_eq!(code, Some(4000));

    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        accept_stream(server_end, None, &WsConfig::default(), &auth_hook).await
    });
    let refused = tokio_tungstenite::client_async("ws://pipe/api/ws", client_end).await;
    assert!(refused.is_err());
    assert!(matches!(
        server.await.unwrap(),
        Err(signaling_ws::AcceptError::Rejected { status: 401 })
    ));
}

/// A masked client text frame (7-bit or 16-bit length), as a client must send it.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81];
    match u16::try_from(payload.len()) {
        Ok(len) if len < 126 => frame.push(0x80 | len as u8),
        Ok(len) => {
            frame.push(0x80 | 126);
            frame.extend(len.to_be_bytes());
        }
        Err(_) => panic!("test frames are shorter than 64 KiB"),
    }
    frame.extend(mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Frames that reach the server in pieces (a byte at a time, headers split from payloads) and
/// frames that arrive together are read whole and in order: the server waits for readiness
/// in the middle of a frame and picks up where it stopped (no keepalive timer here that could
/// wake it instead).
#[tokio::test]
async fn frames_arriving_in_pieces_are_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut server, addr) = bind(WsConfig::default().with_ping_interval(None)).await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        timeout(LIMIT, tcp.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));

    let small = br#"{"type":"a","value":"one byte at a time"}"#.to_vec();
    let large = format!(r#"{{"type":"b","value":"{}"}}"#, "x".repeat(1000)).into_bytes();
    // The client writes while the server waits in `recv`.
    let writer = {
        let (small, large) = (small.clone(), large.clone());
        tokio::spawn(async move {
            // A byte at a time, each its own segment.
            for byte in masked_text_frame(&small) {
                tcp.write_all(&[byte]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // The 16-bit length split inside the header, then the payload in two pieces.
            let frame = masked_text_frame(&large);
            for piece in [&frame[..3], &frame[3..500], &frame[500..]] {
                tcp.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Several frames in one write.
            let mut together = Vec::new();
            for i in 0..20 {
                together.extend(masked_text_frame(format!("frame {i}").as_bytes()));
            }
            tcp.write_all(&together).await.unwrap();
            tcp
        })
    };
    // Far more than reading takes, and less than the connection's own timers: a read that
    // does not wait for the socket's readiness fails here, instead of being woken by a timer
    // (the bound is checked first: a `timeout` would poll the read once more when it ends).
    const BOUND: Duration = Duration::from_secs(8);
    async fn bounded(conn: &mut WsConnection) -> Option<String> {
        tokio::select! {
            biased;
            () = tokio::time::sleep(BOUND) => panic!("not read within the bound"),
            frame = conn.recv() => frame.unwrap().map(String::from),
        }
    }
    for expected in [&small, &large] {
        let frame = bounded(&mut conn).await;
        assert_eq!(frame.as_deref(), std::str::from_utf8(expected).ok());
    }
    for i in 0..20 {
        let frame = bounded(&mut conn).await;
        assert_eq!(frame.as_deref(), Some(&*format!("frame {i}")));
    }
    drop(writer.await.unwrap());
}

/// A peer that stops reading makes the server's writes wait (24 MB is far more than the
/// socket buffers hold); once it reads again, the writes resume and everything arrives, in
/// order.
#[tokio::test]
async fn writes_resume_when_a_stalled_reader_reads_again() {
    const N: usize = 400;
    let (mut server, addr) = bind(WsConfig::default().with_ping_interval(None)).await;
    let mut client = raw_client(addr).await;
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    let sender = tokio::spawn(async move {
        let filler = "y".repeat(60 * 1024);
        for i in 0..N {
            conn.send(format!("{i}:{filler}").into()).await.unwrap();
        }
        conn
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..N {
        // Far more than a read takes, and checked first (see
        // `frames_arriving_in_pieces_are_read_whole`).
        let message = tokio::select! {
            biased;
            () = tokio::time::sleep(Duration::from_secs(8)) => panic!("frame {i} never came"),
            message = client.next() => message.unwrap().unwrap(),
        };
        let text = message.into_text().unwrap();
        assert!(text.starts_with(&format!("{i}:")), "frame {i} in order");
    }
    drop(timeout(LIMIT, sender).await.unwrap().unwrap());
}

#[tokio::test]
async fn keepalive_detects_a_silent_peer() {
    let config = WsConfig::default()
        .with_ping_interval(Some(Duration::from_millis(100)))
        .with_pong_timeout(Duration::from_millis(200))
        .with_close_timeout(Duration::from_millis(200));
    let (mut server, addr) = bind(config).await;
    // Never reads, so never answers a ping.
    let silent = raw_client(addr).await;
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    match recv(&mut conn).await {
        Err(TransportError::TimedOut(_)) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert!(matches!(conn.recv().await, Err(TransportError::Closed(_))));
    drop(silent);
}

#[tokio::test]
async fn keepalive_keeps_a_live_peer() {
    // Pings every 50 ms on both ends and a pong deadline far shorter than the quiet period: the
    // connection survives only if each end answers the other's pings while it waits in `recv`
    // (keepalive runs inside `recv`; there is no task per connection).
    let config = WsConfig::default()
        .with_ping_interval(Some(Duration::from_millis(50)))
        .with_pong_timeout(Duration::from_millis(400));
    let (mut server, addr) = bind(config.clone()).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/"), config)
        .await
        .unwrap();
    let conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    let server_side = tokio::spawn(echo(conn));
    // The client waits in `recv` for 24 ping periods (3 pong deadlines) while nobody sends a
    // text frame.
    tokio::select! {
        frame = client.recv() => panic!("unexpected {frame:?}"),
        () = tokio::time::sleep(Duration::from_millis(1200)) => {}
    }
    client.send("still here".into()).await.unwrap();
    assert_eq!(
        recv(&mut client).await.unwrap().as_deref(),
        Some("still here")
    );
    client.close(CloseReason::normal()).await.unwrap();
    timeout(LIMIT, server_side).await.unwrap().unwrap();
}

#[tokio::test]
async fn idle_timeout_closes_an_unused_connection() {
    let config = WsConfig::default().with_idle_timeout(Some(Duration::from_millis(200)));
    let (mut server, addr) = bind(config).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/"), WsConfig::default())
        .await
        .unwrap();
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    match recv(&mut conn).await {
        Err(TransportError::TimedOut("idle timeout")) => {}
        other => panic!("expected idle timeout, got {other:?}"),
    }
    // The client saw a clean close with 1001.
    assert_eq!(recv(&mut client).await.unwrap(), None);
    assert_eq!(
        client.close_reason().map(|r| r.code),
        Some(CloseCode::GOING_AWAY)
    );
}

#[tokio::test]
async fn oversize_message_closes_with_1009_after_earlier_frames() {
    let config = WsConfig::default().with_max_message_size(1024);
    let (mut server, addr) = bind(config).await;
    let mut raw = raw_client(addr).await;
    for i in 0..5 {
        raw.feed(Message::text(format!("frame {i}"))).await.unwrap();
    }
    raw.feed(Message::text("y".repeat(1024))).await.unwrap(); // exactly at the limit
    raw.feed(Message::text("z".repeat(2000))).await.unwrap();
    raw.flush().await.unwrap();

    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    for i in 0..5 {
        assert_eq!(recv(&mut conn).await.unwrap(), Some(format!("frame {i}")));
    }
    assert_eq!(recv(&mut conn).await.unwrap(), Some("y".repeat(1024)));
    match recv(&mut conn).await {
        Err(TransportError::TooLarge { size, limit }) => {
            assert_eq!(size, 2000);
            assert_eq!(limit, 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(raw_close_code(&mut raw).await, Some(1009));
    assert_eq!(
        conn.close_reason().map(|r| r.code),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
}

#[tokio::test]
async fn binary_frame_closes_with_1003() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let mut raw = raw_client(addr).await;
    raw.send(Message::text("before")).await.unwrap();
    raw.send(Message::Binary(Bytes::from_static(b"\x00\x01")))
        .await
        .unwrap();
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(recv(&mut conn).await.unwrap().as_deref(), Some("before"));
    assert!(matches!(
        recv(&mut conn).await,
        Err(TransportError::Unsupported(_))
    ));
    assert_eq!(raw_close_code(&mut raw).await, Some(1003));
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1003() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let mut raw = raw_client(addr).await;
    raw.send(Message::text("ok")).await.unwrap();
    let bad = WsFrame::message(
        Bytes::from_static(b"\xff\xfe"),
        OpCode::Data(Data::Text),
        true,
    );
    raw.send(Message::Frame(bad)).await.unwrap();
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(recv(&mut conn).await.unwrap().as_deref(), Some("ok"));
    assert!(matches!(
        recv(&mut conn).await,
        Err(TransportError::Unsupported(_))
    ));
    assert_eq!(raw_close_code(&mut raw).await, Some(1003));
}

#[tokio::test]
async fn graceful_close_flushes_and_sends_code_and_truncated_reason() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/"), WsConfig::default())
        .await
        .unwrap();
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    for i in 0..50 {
        client.send(format!("m{i}").into()).await.unwrap();
    }
    let long = "é".repeat(100);
    let closer = tokio::spawn(async move {
        let result = client.close(CloseReason::new(CloseCode(4000), long)).await;
        (client, result)
    });
    let mut got = Vec::new();
    let end = loop {
        match recv(&mut conn).await {
            Ok(Some(frame)) => got.push(frame),
            other => break other,
        }
    };
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(got, expected);
    match end {
        Err(TransportError::Closed(Some(reason))) => {
            assert_eq!(reason.code, CloseCode(4000));
            assert_eq!(reason.reason, "é".repeat(61));
        }
        other => panic!("expected the peer's close, got {other:?}"),
    }
    let (mut client, result) = closer.await.unwrap();
    result.unwrap();
    assert_eq!(recv(&mut client).await.unwrap(), None);
}

#[tokio::test]
async fn normal_close_ends_recv_cleanly_and_dropping_sends_1001() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/"), WsConfig::default())
        .await
        .unwrap();
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    // The server waits in `recv`, as a connection's driver does: the close handshake (like
    // keepalive) progresses only while the peer reads.
    let reader = tokio::spawn(async move {
        let got = [
            recv(&mut conn).await.unwrap(),
            recv(&mut conn).await.unwrap(),
            recv(&mut conn).await.unwrap(),
        ];
        (conn, got)
    });
    client.send("last".into()).await.unwrap();
    timeout(Duration::from_secs(2), client.close(CloseReason::normal()))
        .await
        .expect("the peer's close frame did not come back promptly")
        .unwrap();
    let (conn, got) = reader.await.unwrap();
    assert_eq!(got, [Some("last".to_owned()), None, None]);
    assert_eq!(conn.close_reason(), Some(CloseReason::normal()));

    let mut raw = raw_client(addr).await;
    let conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    drop(conn);
    assert_eq!(raw_close_code(&mut raw).await, Some(1001));
}

#[tokio::test]
async fn try_send_reports_full_when_the_peer_does_not_read() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let _ = hold_rx.await; // never reads
        drop(ws);
    });
    let config = WsConfig::default()
        .with_send_queue(4)
        .with_write_timeout(Duration::from_millis(300));
    let mut client = WsClient::connect(&format!("ws://{addr}/"), config)
        .await
        .unwrap();
    let frame = "f".repeat(32 * 1024);
    let mut full = false;
    for _ in 0..100_000 {
        match client.try_send(frame.clone().into()) {
            Ok(()) => tokio::task::yield_now().await,
            Err(TrySendError::Full(back)) => {
                assert_eq!(back, frame, "the frame is handed back");
                full = true;
                break;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(full, "the send queue never filled");
    // A pending `recv` keeps trying to write the queue out and gives up after `write_timeout`.
    match recv(&mut client).await {
        Err(TransportError::TimedOut(_)) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    assert!(matches!(
        client.try_send("late".into()),
        Err(TrySendError::Failed(TransportError::Closed(_)))
    ));
    drop(hold_tx);
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    // Pings every millisecond on both ends, so many `recv`s are cancelled around a ping being
    // written or answered: the stream must stay intact and in order.
    let config = WsConfig::default().with_ping_interval(Some(Duration::from_millis(1)));
    let addr = echo_server(config.clone()).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/"), config)
        .await
        .unwrap();
    let n = 500;
    let mut next = 0;
    let mut sent = 0;
    timeout(LIMIT, async {
        while next < n {
            if sent < n {
                client.send(format!("{sent}").into()).await.unwrap();
                sent += 1;
            }
            tokio::select! {
                frame = client.recv() => {
                    assert_eq!(frame.unwrap(), Some(Frame::from(format!("{next}"))));
                    next += 1;
                }
                () = tokio::task::yield_now() => {}
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn try_send_frames_go_out_in_order_with_sent_ones() {
    let addr = echo_server(WsConfig::default()).await;
    let mut client = WsClient::connect(&format!("ws://{addr}/"), WsConfig::default())
        .await
        .unwrap();
    for i in 0..10 {
        client.try_send(format!("t{i}").into()).unwrap();
    }
    client.send("s".into()).await.unwrap();
    client.try_send("t10".into()).unwrap();
    let mut got = Vec::new();
    for _ in 0..12 {
        got.push(recv(&mut client).await.unwrap().unwrap());
    }
    let mut expected: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    expected.push("s".to_owned());
    expected.push("t10".to_owned());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dropping_writes_queued_frames_before_1001() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let mut raw = raw_client(addr).await;
    let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    for i in 0..5 {
        conn.try_send(format!("q{i}").into()).unwrap();
    }
    drop(conn);
    let mut got = Vec::new();
    let code = timeout(LIMIT, async {
        while let Some(message) = raw.next().await {
            match message.unwrap() {
                Message::Text(text) => got.push(text.as_str().to_owned()),
                Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(got, ["q0", "q1", "q2", "q3", "q4"]);
    assert_eq!(code, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_keep_order() {
    // 1,000 connections use about 2,000 descriptors; shrink if the limit is lower.
    let connections = fd_limit().map_or(1000, |limit| ((limit.saturating_sub(100)) / 2).min(1000));
    assert!(connections >= 10, "file descriptor limit too low");
    let frames = 100;
    let addr = echo_server(WsConfig::default().with_max_handshakes_in_flight(64)).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(connections));
    let connect_limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let barrier = barrier.clone();
        let connect_limit = connect_limit.clone();
        tasks.spawn(async move {
            let permit = connect_limit.acquire().await.unwrap();
            let mut client = WsClient::connect(&format!("ws://{addr}/"), WsConfig::default())
                .await
                .unwrap();
            drop(permit);
            barrier.wait().await; // all connections are open at once
            for i in 0..frames {
                client.send(format!("{c}:{i}").into()).await.unwrap();
            }
            for i in 0..frames {
                assert_eq!(recv(&mut client).await.unwrap(), Some(format!("{c}:{i}")));
            }
            client.close(CloseReason::normal()).await.unwrap();
        });
    }
    timeout(Duration::from_secs(120), async {
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
    .await
    .expect("connections did not finish");
}

fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn wss_without_the_rustls_feature_is_an_invalid_url() {
    match WsClient::connect("wss://127.0.0.1:1/", WsConfig::default()).await {
        Err(ConnectError::InvalidUrl(_)) => {}
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_errors_are_typed() {
    // Nothing listens on this port once the listener is dropped.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    match WsClient::connect(&format!("ws://{addr}/"), WsConfig::default()).await {
        Err(ConnectError::Io(_)) => {}
        other => panic!("expected an IO error, got {other:?}"),
    }
    match WsClient::connect("not a url", WsConfig::default()).await {
        Err(ConnectError::InvalidUrl(_)) => {}
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
    match WsClient::new("ws://127.0.0.1:1/")
        .header("bad header", "x")
        .open()
        .await
    {
        Err(ConnectError::InvalidHeader { name }) => assert_eq!(name, "bad header"),
        other => panic!("expected InvalidHeader, got {other:?}"),
    }
    // A server that accepts TCP but never answers the upgrade.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = WsConfig::default().with_connect_timeout(Duration::from_millis(200));
    match WsClient::connect(&format!("ws://{addr}/"), config).await {
        Err(ConnectError::TimedOut) => {}
        other => panic!("expected TimedOut, got {other:?}"),
    }
    drop(listener);
}

#[tokio::test]
async fn slow_handshake_does_not_block_others_and_times_out() {
    let config = WsConfig::default().with_handshake_timeout(Duration::from_millis(300));
    let (mut server, addr) = bind(config).await;
    // A client that opens TCP and never sends the upgrade request.
    let stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = WsClient::connect(&format!("ws://{addr}/fast"), WsConfig::default())
        .await
        .unwrap();
    let conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
    assert_eq!(conn.peer().path, "/fast");
    // The stalled client is dropped by the server after the handshake timeout.
    let mut stalled = stalled;
    let mut buf = [0u8; 16];
    let read = timeout(LIMIT, tokio::io::AsyncReadExt::read(&mut stalled, &mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)));
    drop(client);
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_goes_through_tls() {
    // A plain TCP server that hangs up: the TLS handshake fails (an IO or handshake error),
    // which shows `wss://` is accepted and TLS is attempted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    match WsClient::connect(
        &format!("wss://localhost:{}/", addr.port()),
        WsConfig::default(),
    )
    .await
    {
        Err(ConnectError::Io(_) | ConnectError::Handshake(_)) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

#[tokio::test]
async fn try_recv_takes_what_has_arrived_without_waiting() {
    let (mut server, addr) = bind(WsConfig::default()).await;
    let mut raw = raw_client(addr).await;
    let mut conn = server.accept().await.unwrap();
    assert!(conn.try_recv().is_pending(), "nothing sent yet");
    // Five frames in one write: the first `recv` reads them all from the socket.
    for i in 0..5 {
        raw.feed(Message::text(format!("f{i}"))).await.unwrap();
    }
    raw.flush().await.unwrap();
    let mut got = vec![recv(&mut conn).await.unwrap().unwrap()];
    while let std::task::Poll::Ready(frame) = conn.try_recv() {
        got.push(String::from(frame.unwrap().unwrap()));
    }
    assert_eq!(got, ["f0", "f1", "f2", "f3", "f4"]);
    // The end is reported the same way as by `recv`.
    raw.close(None).await.unwrap();
    assert_eq!(recv(&mut conn).await.unwrap(), None);
    assert!(matches!(conn.try_recv(), std::task::Poll::Ready(Ok(None))));
}

/// Sends `request` on a new TCP connection and reads the response until the server closes.
async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = timeout(LIMIT, stream.read_to_end(&mut response))
        .await
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test]
async fn request_heads_over_their_bounds_are_refused_with_431() {
    let config = WsConfig::default()
        .with_max_header_bytes(1024)
        .with_max_headers(8);
    let (mut server, addr) = bind(config).await;
    // Within both bounds: upgraded.
    let request = format!("{UPGRADE}X-A: 1\r\n\r\n");
    let (fine, ()) = tokio::join!(raw_http(addr, request.as_bytes()), async {
        let mut conn = timeout(LIMIT, server.accept()).await.unwrap().unwrap();
        let _ = conn.close(CloseReason::normal()).await;
    });
    assert!(fine.starts_with("HTTP/1.1 101 "), "{fine}");

    // Too many bytes: one long header.
    let long = format!("{UPGRADE}Cookie: {}\r\n\r\n", "c".repeat(2000));
    let response = raw_http(addr, long.as_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{response}"
    );

    // Too many header lines, each of them short.
    let many: String = (0..9).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let response = raw_http(addr, format!("{UPGRADE}{many}\r\n").as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");

    // Not HTTP.
    let response = raw_http(addr, b"\x16\x03\x01 hello\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
}

#[tokio::test]
async fn a_plain_request_gets_426_with_the_upgrade_header() {
    let (_server, addr) = bind(WsConfig::default()).await;
    let response = raw_http(addr, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
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
    // An upgrade with a version this server does not speak: 400, naming the one it does.
    let response = raw_http(
        addr,
        format!("{}\r\n", UPGRADE.replace("Version: 13", "Version: 8")).as_bytes(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(
        response.contains("Sec-WebSocket-Version: 13\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn the_handshake_deadline_covers_a_head_sent_a_line_at_a_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Duration::from_millis(800);
    let (_server, addr) = bind(WsConfig::default().with_handshake_timeout(deadline)).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = async {
        stream.write_all(b"GET /ws HTTP/1.1\r\n").await?;
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stream
                .write_all(format!("X-{i}: {i}\r\n").as_bytes())
                .await?;
        }
        Ok::<(), std::io::Error>(())
    };
    // The server closes the socket at the deadline: a write fails (reset) or, after the
    // trickle, a read sees the end.
    let _ = timeout(LIMIT, trickle).await.unwrap();
    let mut buf = [0u8; 64];
    let read = timeout(LIMIT, stream.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= deadline - Duration::from_millis(100),
        "{elapsed:?}"
    );
    assert!(elapsed < deadline + Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn validate_refuses_settings_that_cannot_work() {
    assert_eq!(WsConfig::default().validate(), Ok(()));
    let refused = |config: WsConfig| config.validate().unwrap_err().setting;
    assert_eq!(
        refused(WsConfig::default().with_handshake_timeout(Duration::ZERO)),
        "handshake_timeout"
    );
    assert_eq!(
        refused(WsConfig::default().with_ping_interval(Some(Duration::ZERO))),
        "ping_interval"
    );
    assert_eq!(
        refused(WsConfig::default().with_max_header_bytes(100)),
        "max_header_bytes"
    );
    assert_eq!(
        refused(WsConfig::default().with_max_headers(0)),
        "max_headers"
    );
    assert_eq!(
        refused(WsConfig::default().with_read_buffer_size(0)),
        "read_buffer_size"
    );
    // Disabled pings and a queue of 0 (treated as 1) are fine.
    assert_eq!(
        WsConfig::default()
            .with_ping_interval(None)
            .with_send_queue(0)
            .validate(),
        Ok(())
    );
}
