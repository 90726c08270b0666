//! The relay driver over real WebSockets on 127.0.0.1: a peer that closes its connection
//! cleanly (1000, 1001) has left, at once; a peer whose connection is lost keeps its place for
//! the resume grace.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use signaling::relay::{
    close_code, join_request_from_peer, DriverConfig, RelayConfig, RelayHandle,
};
use signaling::transport::{CloseCode, CloseReason, Transport, TransportError};
use signaling_ws::tungstenite::Message;
use signaling_ws::{WsClient, WsConfig, WsConnection, WsServer};
use tokio::time::{timeout, Instant};

/// The relay's resume grace in these tests.
const GRACE: Duration = Duration::from_secs(30);

/// What "promptly" means: far below the grace, far above any scheduling delay.
const PROMPTLY: Duration = Duration::from_secs(3);

/// A relay (default settings, the resume grace above) serving WebSockets on 127.0.0.1.
async fn start() -> (SocketAddr, RelayHandle) {
    let mut server = WsServer::bind("127.0.0.1:0", WsConfig::default())
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut config = RelayConfig::default();
    config.resume_grace = GRACE;
    let relay = RelayHandle::new(config, DriverConfig::default());
    let serving = relay.clone();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            let Some(request) = join_request_from_peer(conn.peer()) else {
                continue;
            };
            let relay = serving.clone();
            tokio::spawn(async move { relay.serve(conn, request).await });
        }
    });
    (addr, relay)
}

async fn connect(addr: SocketAddr, query: &str) -> WsConnection {
    WsClient::connect(&format!("ws://{addr}/ws?{query}"), WsConfig::default())
        .await
        .unwrap()
}

/// The next frame, as JSON, within `within`.
async fn next(conn: &mut WsConnection, within: Duration) -> Result<Value, TransportError> {
    let frame = timeout(within, conn.recv())
        .await
        .expect("a frame in time")?
        .expect("open");
    Ok(serde_json::from_str(&frame).unwrap())
}

/// The value of the next frame, which must be of type `kind`.
async fn expect(conn: &mut WsConnection, kind: &str) -> Value {
    let v = next(conn, PROMPTLY).await.unwrap();
    assert_eq!(v["type"], kind, "{v}");
    v["value"].clone()
}

async fn join(addr: SocketAddr, room: &str) -> (WsConnection, Value) {
    let mut conn = connect(addr, &format!("room={room}")).await;
    let welcome = expect(&mut conn, "relay/welcome").await;
    (conn, welcome)
}

/// Waits (bounded) until the relay serves exactly `n` connections.
async fn wait_for_connections(relay: &RelayHandle, n: usize) {
    let deadline = Instant::now() + PROMPTLY;
    while relay.status().connections != n {
        assert!(Instant::now() < deadline, "{:?}", relay.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_clean_close_is_a_leave_heard_at_once_and_frees_the_place() {
    for code in [CloseCode::NORMAL, CloseCode::GOING_AWAY] {
        let (addr, relay) = start().await;
        let (mut a, welcome_a) = join(addr, "call").await;
        let (mut b, welcome_b) = join(addr, "call").await;
        assert_eq!(expect(&mut a, "relay/joined").await["id"], welcome_b["id"]);

        let closed_at = Instant::now();
        a.close(CloseReason::new(code, "bye")).await.unwrap();
        let left = expect(&mut b, "relay/left").await;
        let heard_after = closed_at.elapsed();
        assert_eq!(left["id"], welcome_a["id"], "close code {code}");
        assert!(heard_after < PROMPTLY, "{heard_after:?} after {code}");

        // The room of two has a free place now, not after the grace.
        let (_c, welcome_c) = join(addr, "call").await;
        assert_eq!(welcome_c["peers"], serde_json::json!([welcome_b["id"]]));
        assert_eq!(expect(&mut b, "relay/joined").await["id"], welcome_c["id"]);
        let status = relay.status();
        assert_eq!((status.peers, status.connections), (2, 2), "{status:?}");

        // A's token resumes nothing: it left.
        let token = welcome_a["resume"].as_str().unwrap();
        let mut again = connect(addr, &format!("room=call&resume={token}")).await;
        match timeout(PROMPTLY, again.recv()).await.unwrap() {
            Err(TransportError::Closed(Some(reason))) => {
                assert_eq!(reason.code, close_code::RESUME_FAILED)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_lost_connection_keeps_its_place_and_resumes() {
    let (addr, relay) = start().await;
    // A speaks raw WebSocket, so that it can vanish without a close frame (TCP FIN only).
    let (mut a, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?room=call"))
        .await
        .unwrap();
    let welcome_a: Value = match a.next().await.unwrap().unwrap() {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(welcome_a["type"], "relay/welcome");
    let (mut b, _) = join(addr, "call").await;
    drop(a);
    wait_for_connections(&relay, 1).await;

    // B hears nothing, and the place is held: a third peer is refused.
    let heard = timeout(Duration::from_millis(300), b.recv()).await;
    assert!(heard.is_err(), "{heard:?}");
    let mut c = connect(addr, "room=call").await;
    match timeout(PROMPTLY, c.recv()).await.unwrap() {
        Err(TransportError::Closed(Some(reason))) => {
            assert_eq!(reason.code, close_code::ROOM_FULL)
        }
        other => panic!("{other:?}"),
    }
    // A comes back with its token and keeps its id.
    let token = welcome_a["value"]["resume"].as_str().unwrap();
    let mut a2 = connect(addr, &format!("room=call&resume={token}")).await;
    let welcome = expect(&mut a2, "relay/welcome").await;
    assert_eq!(welcome["id"], welcome_a["value"]["id"]);
}
