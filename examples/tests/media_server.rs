//! The `media_server`: its WebSocket API driven from Rust (in-process, everything on 127.0.0.1:
//! the server's only ICE candidate is 127.0.0.1 and it adds only loopback remote candidates), its
//! WHIP and WHEP endpoints driven through its router (the status codes of RFC 9725 and the WHEP
//! draft, with offers made by str0m as a client), and its browser scenarios (`examples/browser/media.mjs`: decoded video in headless Chromium,
//! against the real binary, inside a loopback-only network namespace).
//!
//! ```text
//! SIGNALING_REQUIRE_BROWSER=1 cargo test -p examples --test media_server -- --nocapture
//! ```
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use examples::media_server::{close_code, MediaConfig, MediaServer, RefusedFor};
use signaling::transport::{Frame, Transport, TransportError};
use signaling_ws::{WsClient, WsConfig, WsConnection};
use str0m::media::{Direction, MediaKind};
use str0m::Rtc;
use tokio::net::{TcpListener, UdpSocket};
use tower_service::Service as _;

mod support;

use support::relay::RelayProcess;

/// A media server on 127.0.0.1, port 0; its base WebSocket URL.
async fn start(config: MediaConfig) -> String {
    let server = Arc::new(MediaServer::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.run(listener, None));
    format!("ws://{addr}/api/ws")
}

async fn connect(url: &str) -> WsConnection {
    WsClient::connect(url, WsConfig::default())
        .await
        .expect("connect")
}

fn frame(kind: &str, value: serde_json::Value) -> Frame {
    serde_json::json!({ "type": kind, "value": value })
        .to_string()
        .into()
}

/// The next frame, parsed; panics after 10 s or at the end of the connection.
async fn next(conn: &mut WsConnection) -> serde_json::Value {
    let got = tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .expect("a frame within 10 s");
    match got {
        Ok(Some(f)) => serde_json::from_str(f.as_str()).expect("JSON frame"),
        other => panic!(
            "connection ended instead: {other:?} ({:?})",
            conn.close_reason()
        ),
    }
}

/// A connection whose roles the server has registered: it answers a frame (the server joins the
/// streams before it starts the session that answers).
async fn registered(url: &str) -> WsConnection {
    let mut conn = connect(url).await;
    conn.send("not JSON".into()).await.unwrap();
    let error = next(&mut conn).await;
    assert_eq!(error["type"], "error", "{error}");
    conn
}

/// Waits for the connection to be closed by the server; its close code.
async fn closed(conn: &mut WsConnection) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.recv())
            .await
            .expect("closed within 10 s")
        {
            Ok(Some(_)) => continue,
            Ok(None) | Err(TransportError::Closed(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    conn.close_reason().expect("a close frame").code.0
}

/// A real offer, made by str0m as a client: receive-only video and audio (what the seed client
/// offers by default), and its ICE ufrag.
fn viewer_offer() -> (String, String) {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = change.apply().expect("an offer");
    let sdp = offer.to_sdp_string();
    let ufrag = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .to_owned();
    (sdp, ufrag)
}

/// The USERNAME of a STUN binding request, or `None` if `data` is not one.
fn stun_binding_username(data: &[u8]) -> Option<String> {
    // Type 0x0001 (binding request), magic cookie 0x2112A442 (RFC 8489 §5).
    if data.len() < 20 || data[0..2] != [0, 1] || data[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    let mut at = 20;
    while at + 4 <= data.len() {
        let kind = u16::from_be_bytes([data[at], data[at + 1]]);
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        let value = data.get(at + 4..at + 4 + len)?;
        if kind == 0x0006 {
            return String::from_utf8(value.to_vec()).ok();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Candidates that reach the server before the offer are held by the negotiation and then
/// given to str0m: the server's connectivity checks arrive at the address that only the early
/// candidate named. A TCP and an mDNS candidate in between are skipped without harm; nothing
/// is sent before the answer, the answer carries the server's candidate inline and puts
/// everything the viewer receives into one MediaStream.
#[tokio::test]
async fn early_candidates_reach_str0m_and_nothing_precedes_the_answer() {
    let url = start(MediaConfig::default()).await;
    let client_udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = client_udp.local_addr().unwrap().port();
    let (offer, ufrag) = viewer_offer();

    let mut conn = connect(&format!("{url}?src=early")).await;
    // Chromium's shapes: a UDP host candidate, a TCP one, an mDNS one; all before the offer.
    let early = [
        format!("candidate:1467250027 1 udp 2122260223 127.0.0.1 {port} typ host generation 0 ufrag {ufrag} network-id 1"),
        format!("candidate:3908765534 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active generation 0 ufrag {ufrag} network-id 1"),
        format!("candidate:2380233486 1 udp 2122262783 3b1d1d1e-6a53-4cfb-9a3b-5d2f0b1c9e55.local 54321 typ host generation 0 ufrag {ufrag} network-id 2"),
    ];
    for c in &early {
        conn.send(frame("webrtc/candidate", c.as_str().into()))
            .await
            .unwrap();
    }
    conn.send(frame("webrtc/offer", offer.into()))
        .await
        .unwrap();
    conn.send(frame("webrtc/candidate", "".into()))
        .await
        .unwrap();

    let answer = next(&mut conn).await;
    assert_eq!(answer["type"], "webrtc/answer", "the first frame: {answer}");
    let sdp = answer["value"].as_str().unwrap();
    assert!(
        sdp.lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 ")),
        "the answer carries the server's host candidate:\n{sdp}"
    );
    let streams: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=msid:"))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(streams.len(), 2, "video and audio are sent:\n{sdp}");
    assert!(
        streams.iter().all(|s| *s == "early"),
        "one stream id: {streams:?}"
    );
    let end = next(&mut conn).await;
    assert_eq!(
        end,
        serde_json::json!({"type": "webrtc/candidate", "value": ""})
    );

    // The server's checks reach the early candidate's address: that address was in no other
    // frame.
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let username = loop {
        let (n, _) = tokio::time::timeout_at(deadline, client_udp.recv_from(&mut buf))
            .await
            .expect("a STUN binding request at the early candidate's address")
            .unwrap();
        if let Some(u) = stun_binding_username(&buf[..n]) {
            break u;
        }
    };
    assert!(
        username.starts_with(&format!("{ufrag}:")),
        "a check for this session: {username}"
    );
    // The socket is still in use after the skipped candidates.
    conn.send(frame("webrtc/candidate", "candidate:x".into()))
        .await
        .unwrap();
    let error = next(&mut conn).await;
    assert_eq!(error["type"], "error");
    assert!(error["value"]
        .as_str()
        .unwrap()
        .starts_with("webrtc/candidate: "));
}

/// A v2 client is answered in v2; a refused offer before it gets go2rtc's error form and leaves
/// the socket usable.
#[tokio::test]
async fn v2_client_gets_a_v2_answer_after_a_refused_offer() {
    let url = start(MediaConfig::default()).await;
    let mut conn = connect(&format!("{url}?src=v2")).await;
    let no_fingerprint = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n";
    conn.send(frame(
        "webrtc",
        serde_json::json!({"type": "offer", "sdp": no_fingerprint}),
    ))
    .await
    .unwrap();
    let error = next(&mut conn).await;
    assert_eq!(error["type"], "error");
    let text = error["value"].as_str().unwrap();
    assert!(
        text.starts_with("webrtc: ") && text.contains("fingerprint"),
        "{text}"
    );

    let (offer, _) = viewer_offer();
    // The client's ICE servers are never used (there is nothing to observe but that the offer
    // is answered as usual).
    conn.send(frame(
        "webrtc",
        serde_json::json!({"type": "offer", "sdp": offer, "ice_servers": [{"urls": ["stun:192.0.2.1:3478"]}]}),
    ))
    .await
    .unwrap();
    let answer = next(&mut conn).await;
    assert_eq!(answer["type"], "webrtc", "{answer}");
    assert_eq!(answer["value"]["type"], "answer");
    assert!(answer["value"]["sdp"].as_str().unwrap().starts_with("v=0"));
}

/// Refusals: no role, a bad name, a second publisher, the stream and viewer limits. Each gets one
/// `api/ws: ...` error frame and its close code; a publisher leaving frees the name.
#[tokio::test]
async fn refusals_have_an_error_frame_and_a_close_code() {
    let url = start(MediaConfig::default().with_limits(16, 2, 1, 8)).await;
    let mut none = connect(&url).await;
    let error = next(&mut none).await;
    assert_eq!(error["type"], "error");
    assert!(error["value"]
        .as_str()
        .unwrap()
        .starts_with("api/ws: missing"));
    assert_eq!(closed(&mut none).await, close_code::BAD_REQUEST.0);

    let mut long = connect(&format!("{url}?src={}", "x".repeat(65))).await;
    assert_eq!(closed(&mut long).await, close_code::BAD_REQUEST.0);

    let publisher = registered(&format!("{url}?dst=cam")).await;
    let mut second = connect(&format!("{url}?dst=cam")).await;
    let error = next(&mut second).await;
    assert!(
        error["value"]
            .as_str()
            .unwrap()
            .contains("already has a publisher"),
        "{error}"
    );
    assert_eq!(closed(&mut second).await, close_code::PUBLISHER_EXISTS.0);

    let _viewer = registered(&format!("{url}?src=cam")).await;
    let mut viewer2 = connect(&format!("{url}?src=cam")).await;
    assert_eq!(closed(&mut viewer2).await, close_code::TOO_MANY_VIEWERS.0);

    let _other = registered(&format!("{url}?dst=other")).await;
    let mut third = connect(&format!("{url}?dst=third")).await;
    assert_eq!(closed(&mut third).await, close_code::TOO_MANY_STREAMS.0);

    // The publisher leaves: its name is free again, and its viewer stays.
    let mut publisher = publisher;
    publisher
        .close(signaling::transport::CloseReason::normal())
        .await
        .unwrap();
    let mut again = None;
    for _ in 0..50 {
        let mut c = connect(&format!("{url}?dst=cam")).await;
        match tokio::time::timeout(Duration::from_millis(200), c.recv()).await {
            // Nothing said: accepted.
            Err(_) => {
                again = Some(c);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(again.is_some(), "the name was not freed");
}

/// Over `max_connections`, a WebSocket gets an `api/ws` error frame and close code 1013; a slot
/// freed is taken again.
#[tokio::test]
async fn connections_over_the_limit_are_told_to_come_back() {
    let url = start(MediaConfig::default().with_limits(1, 4, 4, 8)).await;
    let mut first = registered(&format!("{url}?src=a")).await;
    let mut over = connect(&format!("{url}?src=b")).await;
    let error = next(&mut over).await;
    assert_eq!(error["type"], "error");
    assert!(error["value"]
        .as_str()
        .unwrap()
        .starts_with("api/ws: too many connections"));
    assert_eq!(closed(&mut over).await, 1013);
    first
        .close(signaling::transport::CloseReason::normal())
        .await
        .unwrap();
    let mut taken = false;
    for _ in 0..50 {
        let mut c = connect(&format!("{url}?src=b")).await;
        c.send("not JSON".into()).await.unwrap();
        if next(&mut c).await["value"]
            .as_str()
            .unwrap()
            .starts_with("api/ws:")
        {
            // Still refused: the first connection's slot is not free yet.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        taken = true;
        break;
    }
    assert!(taken, "the slot was not freed");
}

/// A real offer made by str0m as a publishing client: send-only video and audio.
fn publisher_offer() -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _pending) = change.apply().expect("an offer");
    offer.to_sdp_string()
}

/// One request through the server's router (in-process: no socket); the response and its body.
async fn request(
    server: &MediaServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (Response<Body>, String) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Body::from(body.to_owned())).unwrap();
    let mut router = server.router();
    let response = router.call(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// `POST`s `offer` to `path` as `application/sdp`.
async fn post(server: &MediaServer, path: &str, offer: &str) -> (Response<Body>, String) {
    request(
        server,
        Method::POST,
        path,
        &[("content-type", "application/sdp")],
        offer,
    )
    .await
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn ice_ufrag(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("an ice-ufrag")
        .trim_end()
}

/// WHIP (RFC 9725 §4.2) publishes like `?dst=NAME`: `201` with the answer (the server's host
/// candidate inline), `Location` and `ETag`; a second publisher of the same stream gets `409`
/// (the stream is taken), a bad name `400`, an offer str0m cannot use `422`, SDP it cannot
/// parse `400`. WHEP watches like `?src=NAME`, also before the stream has a publisher (`201`,
/// the player waits). `DELETE` (`200`) frees the stream for the next publisher.
#[tokio::test]
async fn whip_and_whep_answer_like_the_websocket_api() {
    let server = MediaServer::new(MediaConfig::default());
    let (whep, answer) = post(&server, "/whep/cam", &viewer_offer().0).await;
    assert_eq!(whep.status(), StatusCode::CREATED, "{answer}");
    assert!(answer.starts_with("v=0"), "{answer}");

    let (created, answer) = post(&server, "/whip/cam", &publisher_offer()).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{answer}");
    let location = header(&created, "location").to_owned();
    assert!(location.starts_with("/whip/cam/"), "{location}");
    assert!(header(&created, "etag").starts_with('"'));
    assert!(
        answer
            .lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 ")),
        "the answer carries the server's host candidate:
{answer}"
    );

    let (taken, text) = post(&server, "/whip/cam", &publisher_offer()).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT, "{text}");
    assert!(text.contains("already has a publisher"), "{text}");
    let long = format!("/whip/{}", "x".repeat(65));
    let (bad, _) = post(&server, &long, &publisher_offer()).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let no_fingerprint = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=setup:actpass\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n";
    let (unusable, text) = post(&server, "/whip/other", no_fingerprint).await;
    assert_eq!(
        unusable.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{text}"
    );
    let (unparsable, text) = post(&server, "/whip/other", "v=0\r\nm=video 9 nonsense\r\n").await;
    assert_eq!(unparsable.status(), StatusCode::BAD_REQUEST, "{text}");

    let (deleted, _) = request(&server, Method::DELETE, &location, &[], "").await;
    assert_eq!(deleted.status(), StatusCode::OK);
    let mut again = None;
    for _ in 0..50 {
        let (r, _) = post(&server, "/whip/cam", &publisher_offer()).await;
        if r.status() == StatusCode::CREATED {
            again = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::CONFLICT);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the stream was not freed by the DELETE");
    // What an operator sees: the 409 and the bad name as refusals, the 422 as an offer str0m
    // could not use, the sessions that got media by API, the DELETE.
    let (health, text) = request(&server, Method::GET, "/healthz", &[], "").await;
    assert_eq!((health.status(), text.as_str()), (StatusCode::OK, "ok\n"));
    let (metrics, text) = request(&server, Method::GET, "/metrics", &[], "").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    for line in [
        r#"signaling_media_refused_total{reason="publisher_exists"} 1"#,
        r#"signaling_media_refused_total{reason="bad_request"} 1"#,
        r#"signaling_media_sessions_total{api="whip"} 3"#,
        r#"signaling_media_sessions_total{api="whep"} 1"#,
        r#"signaling_media_offers_total{outcome="answered"} 3"#,
        r#"signaling_media_offers_total{outcome="refused"} 1"#,
        r#"signaling_media_http_sessions_deleted_total{endpoint="whip"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
}

/// The connection, stream and viewer limits hold for WHIP and WHEP sessions too, counted with
/// the WebSocket clients: `503` + `Retry-After` (RFC 9725 §4.5).
#[tokio::test]
async fn whip_and_whep_sessions_count_against_the_limits() {
    let server = Arc::new(MediaServer::new(
        MediaConfig::default().with_limits(3, 2, 1, 8),
    ));
    let (first, _) = post(&server, "/whep/a", &viewer_offer().0).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let (viewer2, _) = post(&server, "/whep/a", &viewer_offer().0).await;
    assert_eq!(viewer2.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&viewer2, "retry-after").parse::<u64>().unwrap() > 0);
    let (second_stream, _) = post(&server, "/whip/b", &publisher_offer()).await;
    assert_eq!(second_stream.status(), StatusCode::CREATED);
    let (third_stream, _) = post(&server, "/whip/c", &publisher_offer()).await;
    assert_eq!(third_stream.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The third connection slot goes to a WebSocket client; a fourth connection of any kind is
    // refused.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/api/ws", listener.local_addr().unwrap());
    tokio::spawn(server.clone().run(listener, None));
    let _ws = registered(&format!("{url}?dst=a")).await;
    let (over, _) = post(&server, "/whep/b", &viewer_offer().0).await;
    assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
    let mut ws_over = connect(&format!("{url}?src=b")).await;
    assert_eq!(closed(&mut ws_over).await, 1013);
    assert_eq!(server.stats().connections, 3);
}

/// An ICE restart by `PATCH` (RFC 9725 §4.3.3, `If-Match: "*"` and the client's new
/// credentials) is answered `200` with the server's new ICE credentials (not those of its
/// answer), its candidate and a new `ETag`; trickle `PATCH`es then take the new entity-tag
/// (`204`) and refuse the old one (`412`).
#[tokio::test]
async fn an_ice_restart_by_patch_gives_str0m_new_credentials() {
    let server = MediaServer::new(MediaConfig::default());
    let (created, answer) = post(&server, "/whip/cam", &publisher_offer()).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{answer}");
    let location = header(&created, "location").to_owned();
    let old_tag = header(&created, "etag").to_owned();
    let frag = "a=ice-ufrag:R3st\r\na=ice-pwd:4nOtherPasswordOf22chars\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";
    let patch = |tag: &str| {
        [
            ("content-type", "application/trickle-ice-sdpfrag"),
            ("if-match", tag),
        ]
        .map(|(k, v)| (k, v.to_owned()))
    };
    let headers = patch("*");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (restarted, body) = request(&server, Method::PATCH, &location, &headers, frag).await;
    assert_eq!(restarted.status(), StatusCode::OK, "{body}");
    let new_tag = header(&restarted, "etag").to_owned();
    assert_ne!(new_tag, old_tag);
    assert_ne!(ice_ufrag(&body), ice_ufrag(&answer), "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 ")),
        "{body}"
    );
    assert_eq!(server.stats().whip.restarts, 1);

    let trickle = "a=ice-ufrag:R3st\r\na=ice-pwd:4nOtherPasswordOf22chars\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host\r\n";
    for (tag, status) in [
        (new_tag.as_str(), StatusCode::NO_CONTENT),
        (old_tag.as_str(), StatusCode::PRECONDITION_FAILED),
    ] {
        let headers = patch(tag);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (r, body) = request(&server, Method::PATCH, &location, &headers, trickle).await;
        assert_eq!(r.status(), status, "{body}");
    }
}

/// A WHIP or WHEP session has no socket: when its ICE connection does not come up within the
/// ICE timeout, the server ends it (then its URL answers `404`) and frees its slot.
#[tokio::test]
async fn an_http_session_whose_ice_never_comes_up_ends() {
    let server =
        MediaServer::new(MediaConfig::default().with_ice_timeout(Duration::from_millis(200)));
    let (created, _) = post(&server, "/whip/cam", &publisher_offer()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = header(&created, "location").to_owned();
    assert_eq!(server.stats().connections, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (r, _) = request(&server, Method::GET, &location, &[], "").await;
        if r.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "the session did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.stats().connections, 0);
    assert_eq!(server.streams().len(), 0);
}

/// `MediaServer::shutdown` ends every media connection: a WebSocket client is closed with 1001
/// (going away, RFC 6455 §7.4.1), a WHIP session is gone at once (its `DELETE` gets `404`, with
/// no wait for it); health checks, new WebSocket connections and new offers get `503` (offers
/// with `Retry-After`, RFC 9725 §4.5) and are counted as refused for `shutting_down`.
#[tokio::test]
async fn shutdown_closes_websockets_with_1001_ends_http_sessions_and_refuses_newcomers() {
    let server = Arc::new(MediaServer::new(MediaConfig::default()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/api/ws", listener.local_addr().unwrap());
    tokio::spawn(server.clone().run(listener, None));
    let mut viewer = registered(&format!("{url}?src=cam")).await;
    let (created, answer) = post(&server, "/whip/cam", &publisher_offer()).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{answer}");
    let location = header(&created, "location").to_owned();
    let (ready, _) = request(&server, Method::GET, "/readyz", &[], "").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(server.stats().connections, 2);

    let report = server.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (report.connections, report.closed, report.unfinished),
        (2, 2, 0)
    );
    assert_eq!(closed(&mut viewer).await, 1001);
    let (deleted, _) = request(&server, Method::DELETE, &location, &[], "").await;
    assert_eq!(deleted.status(), StatusCode::NOT_FOUND);
    for path in ["/readyz", "/healthz"] {
        let (r, body) = request(&server, Method::GET, path, &[], "").await;
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {body}"
        );
    }
    let (late, _) = post(&server, "/whep/cam", &viewer_offer().0).await;
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&late, "retry-after").parse::<u64>().unwrap() > 0);
    let refused = WsClient::connect(&format!("{url}?src=cam"), WsConfig::default()).await;
    assert!(refused.is_err(), "a WebSocket upgrade during the shutdown");
    let stats = server.stats();
    assert_eq!(stats.connections, 0);
    assert_eq!(stats.refused_for(RefusedFor::ShuttingDown), 2);
    assert_eq!(server.streams().len(), 0);
}

/// The binary shuts down on `SIGTERM` and on `SIGINT`: its WebSocket client is closed with 1001
/// and it exits with status 0, saying what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_closes_its_clients_with_1001_and_exits_0_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let mut process = RelayProcess::spawn_binary(
            env!("CARGO_BIN_EXE_media_server"),
            &["--listen", "127.0.0.1:0", "--drain-timeout", "5"],
        );
        let addr = process.logged_address("media server listening on ");
        let mut client = registered(&format!("ws://{addr}/api/ws?src=cam")).await;
        process.signal(signal);
        assert_eq!(closed(&mut client).await, 1001, "SIG{signal}");
        let (status, log) = process.exit();
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}; log:\n{log}");
        assert!(
            log.contains(&format!("SIG{signal} received: shutting down")),
            "{log}"
        );
        assert!(
            log.contains("shutdown complete: 1 of 1 media connections ended"),
            "{log}"
        );
    }
}

/// The browser scenarios against the binary, in a loopback-only namespace.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn media_server_in_a_real_browser() {
    if !support::browser_available("media server browser test") {
        return;
    }
    support::BrowserRun {
        what: "media server browser run",
        server: env!("CARGO_BIN_EXE_media_server"),
        listen: "127.0.0.1:8081",
        script: "media.mjs",
        env: Vec::new(),
        limit: LIMIT,
    }
    .run("media-server");
}
