//! The relay mounted in an axum router beside the app's own route, served on 127.0.0.1, with
//! signaling-ws's client (a separate WebSocket implementation) and raw tokio-tungstenite
//! clients on the other end.
#![allow(clippy::unwrap_used)]

mod support;

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use signaling::relay::close_code;
use signaling::transport::{CloseCode, CloseReason, Transport, TransportError};
use signaling_core::admission::{AllowAll, OriginAllowlist, TokenCheck};
use signaling_http::relay::RelayRoute;
use signaling_http::ws::{AxumWsConfig, WsUpgrade};
use signaling_ws::{ConnectError, WsClient, WsConfig, WsConnection};
use support::{
    expect_type, http_get, next_frame, recv, App, ANSWER, HELLO, HOST, OFFER, SRFLX, WAIT,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn join(app: &App, room: &str) -> (WsConnection, serde_json::Value) {
    let url = format!("ws://{}/ws?room={room}", app.addr);
    let mut conn = WsClient::connect(&url, WsConfig::default()).await.unwrap();
    let welcome = expect_type(&mut conn, "relay/welcome").await;
    (conn, welcome)
}

#[tokio::test]
async fn two_seed_clients_exchange_frames_byte_for_byte_beside_the_apps_own_route() {
    let app = App::start(None, |router, _| router).await;
    let (mut a, welcome_a) = join(&app, "call").await;
    let (mut b, welcome_b) = join(&app, "call").await;
    assert_eq!(welcome_b["peers"], json!([welcome_a["id"]]));
    assert_eq!(
        expect_type(&mut a, "relay/joined").await["id"],
        welcome_b["id"]
    );

    // The seed client's order: the offer as the socket opens, then its candidates.
    a.send(OFFER.into()).await.unwrap();
    a.try_send(HOST.into()).unwrap();
    a.send(SRFLX.into()).await.unwrap();
    assert_eq!(next_frame(&mut b).await, OFFER);
    assert_eq!(next_frame(&mut b).await, HOST);
    assert_eq!(next_frame(&mut b).await, SRFLX);
    b.send(ANSWER.into()).await.unwrap();
    b.send(HOST.into()).await.unwrap();
    assert_eq!(next_frame(&mut a).await, ANSWER);
    assert_eq!(next_frame(&mut a).await, HOST);

    // The app's own route still answers, on the same port.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let hello = http_get(&mut tcp, "/hello").await;
    assert_eq!((hello.status, hello.body.as_str()), (200, HELLO));

    // A clean close is a leave, heard by the other at once.
    a.close(CloseReason::normal()).await.unwrap();
    assert_eq!(
        expect_type(&mut b, "relay/left").await["id"],
        welcome_a["id"]
    );
    assert!(recv(&mut a).await.unwrap().is_none());
}

#[tokio::test]
async fn a_request_without_a_room_is_closed_with_the_relays_bad_request_code() {
    let app = App::start(None, |router, _| router).await;
    let url = format!("ws://{}/ws", app.addr);
    let mut conn = WsClient::connect(&url, WsConfig::default()).await.unwrap();
    match recv(&mut conn).await {
        Err(TransportError::Closed(Some(reason))) => {
            assert_eq!(reason.code, close_code::BAD_REQUEST);
            assert_eq!(reason.reason, "missing ?room=NAME");
        }
        other => panic!("{other:?}"),
    }
}

/// A raw client, which can send what signaling-ws's cannot (binary frames, oversized ones).
async fn raw_join(
    app: &App,
    room: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let url = format!("ws://{}/ws?room={room}", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let welcome = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        welcome.to_text().unwrap().contains("relay/welcome"),
        "{welcome}"
    );
    ws
}

/// Reads until the server's close frame; its code.
async fn close_code_of<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> WsCloseCode
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no hang")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(_)) => continue,
            other => panic!("ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_binary_frame_is_refused_with_1003() {
    let app = App::start(None, |router, _| router).await;
    let mut ws = raw_join(&app, "bin").await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(close_code_of(&mut ws).await, WsCloseCode::Unsupported);
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_refused_with_1009() {
    let app = App::start(None, |router, _| router).await;
    let limit = AxumWsConfig::default().max_message_size;
    let mut ws = raw_join(&app, "big").await;
    let text = format!(
        r#"{{"type":"webrtc/offer","value":"{}"}}"#,
        "a".repeat(limit)
    );
    ws.send(Message::text(text)).await.unwrap();
    assert_eq!(close_code_of(&mut ws).await, WsCloseCode::Size);

    // A frame at the limit passes the transport (the relay then judges it).
    let mut ws = raw_join(&app, "at-limit").await;
    ws.send(Message::text("a".repeat(limit))).await.unwrap();
    ws.send(Message::text(OFFER)).await.unwrap();
    let answer = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(answer.to_text().unwrap().contains("error"), "{answer}");
}

#[tokio::test]
async fn refused_upgrades_get_the_admission_checks_http_status() {
    let app = App::start(None, |router, relay| {
        let admission = (
            OriginAllowlist::new(["https://app.example"]).unwrap(),
            TokenCheck::new(["s3cret"]).unwrap().query("token"),
        );
        router.route(
            "/guarded",
            RelayRoute::new(relay).admission(admission).into_route(),
        )
    })
    .await;
    let url = format!("ws://{}/guarded", app.addr);
    let connect = |origin: &str, token: Option<&str>| {
        let mut client = WsClient::new(url.clone())
            .header("origin", origin)
            .query_param("room", "guarded");
        if let Some(token) = token {
            client = client.query_param("token", token);
        }
        client.open()
    };
    let cases = [
        ("https://app.example", None, 401, "missing_token"),
        ("https://app.example", Some("wrong"), 401, "bad_token"),
        (
            "https://evil.example",
            Some("s3cret"),
            403,
            "forbidden_origin",
        ),
    ];
    for (origin, token, status, reason) in cases {
        match connect(origin, token).await {
            Err(ConnectError::Rejected { status: got, body }) => {
                assert_eq!(got, status, "{origin} {token:?}");
                assert_eq!(body.as_deref(), Some(reason));
            }
            other => panic!("{origin} {token:?}: {other:?}"),
        }
    }
    let mut conn = connect("https://app.example", Some("s3cret"))
        .await
        .unwrap();
    expect_type(&mut conn, "relay/welcome").await;

    // A plain request to a WebSocket route is refused by axum's upgrade check.
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(http_get(&mut tcp, "/ws?room=x").await.status, 400);
}

/// Answers each connection with one frame describing its `PeerInfo`, then closes.
async fn describe_peer(upgrade: WsUpgrade) -> Response {
    upgrade.accept(&AxumWsConfig::default(), &AllowAll, |mut conn| async move {
        let peer = conn.peer();
        let text = json!({
            "transport": peer.transport,
            "remote": peer.remote_addr.map(|a| a.to_string()),
            "path": peer.path,
            "query": peer.query,
            "origin": peer.origin(),
        })
        .to_string();
        let _ = conn.send(text.into()).await;
        let _ = conn.close(CloseReason::normal()).await;
    })
}

#[tokio::test]
async fn peer_info_is_filled_from_the_upgrade_request() {
    let app = App::start(None, |router, _| {
        router.nest("/api", Router::new().route("/peer", get(describe_peer)))
    })
    .await;
    let url = format!("ws://{}/api/peer?token=a%20b&room=r", app.addr);
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let local = match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        _ => unreachable!("plain ws://"),
    };
    let frame = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let peer: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(
        peer,
        json!({
            "transport": "ws",
            "remote": local.to_string(),
            "path": "/api/peer",
            "query": "token=a%20b&room=r",
            "origin": "https://app.example",
        })
    );
    assert_eq!(close_code_of(&mut ws).await, WsCloseCode::Normal);
}

/// An app whose `/report` route reads each connection to its end and reports what `recv`
/// returned last.
async fn reporting_app() -> (
    App,
    tokio::sync::mpsc::Receiver<Result<Option<String>, String>>,
) {
    let (report, reports) = tokio::sync::mpsc::channel(8);
    let app = App::start(None, move |router, _| {
        router.route(
            "/report",
            get(move |upgrade: WsUpgrade| {
                let report = report.clone();
                async move {
                    upgrade.accept(&AxumWsConfig::default(), &AllowAll, |mut conn| async move {
                        let end = loop {
                            match conn.recv().await {
                                Ok(Some(frame)) => {
                                    if conn.send(frame).await.is_err() {
                                        break Err("send failed".to_owned());
                                    }
                                }
                                Ok(None) => break Ok(None),
                                Err(error) => break Err(error.to_string()),
                            }
                        };
                        let _ = report.send(end).await;
                    })
                }
            }),
        )
    })
    .await;
    (app, reports)
}

#[tokio::test]
async fn how_the_peer_closes_is_what_recv_reports() {
    let (app, mut reports) = reporting_app().await;
    let url = format!("ws://{}/report", app.addr);
    for (code, expected) in [
        (CloseCode::NORMAL, Ok(None)),
        (CloseCode::GOING_AWAY, Ok(None)),
        (
            CloseCode(4000),
            Err("connection closed (close code 4000: going)".to_owned()),
        ),
    ] {
        let mut conn = WsClient::connect(&url, WsConfig::default()).await.unwrap();
        conn.send(OFFER.into()).await.unwrap();
        assert_eq!(next_frame(&mut conn).await, OFFER);
        conn.close(CloseReason::new(code, "going")).await.unwrap();
        let report = tokio::time::timeout(WAIT, reports.recv()).await.unwrap();
        assert_eq!(report, Some(expected), "{code}");
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting_and_leaves_websockets_to_the_relay() {
    let mut app = App::start(None, |router, _| router).await;
    let (mut a, _) = join(&app, "stay").await;
    let report = app.shut_down().await;
    assert_eq!(report.cut, 0, "{report:?}");
    // The listener is closed: nothing is accepted any more.
    assert!(TcpStream::connect(app.addr).await.is_err());
    // The upgraded WebSocket is the relay's, served until the relay shuts down.
    a.send(OFFER.into()).await.unwrap();
    let report = app.relay.shutdown(WAIT).await;
    assert_eq!((report.connections, report.closed), (1, 1), "{report:?}");
    assert_eq!(recv(&mut a).await.map_err(|e| e.to_string()), Ok(None));
    assert_eq!(
        a.close_reason().map(|r| r.code),
        Some(CloseCode::GOING_AWAY)
    );
}
