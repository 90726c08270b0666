//! What the relay tests' WebSocket clients share: reading frames with a bound, expecting a
//! message type, and reading until the close.
use std::time::Duration;

use serde_json::Value;
use signaling::transport::{CloseCode, Transport, TransportError};
use signaling_ws::WsConnection;

/// A generous bound so that a broken test fails instead of hanging; never a timing assertion.
pub const WAIT: Duration = Duration::from_secs(10);

/// The next frame or the end, within [`WAIT`].
pub async fn recv(conn: &mut WsConnection) -> Result<Option<String>, TransportError> {
    tokio::time::timeout(WAIT, conn.recv())
        .await
        .expect("no hang")
        .map(|f| f.map(String::from))
}

/// The next frame, which must come.
pub async fn next_frame(conn: &mut WsConnection) -> String {
    recv(conn).await.expect("open").expect("a frame")
}

/// The next frame, which must be of type `kind`; returns its value.
pub async fn expect_type(conn: &mut WsConnection, kind: &str) -> Value {
    let frame = next_frame(conn).await;
    let v: Value = serde_json::from_str(&frame).expect("json");
    assert_eq!(v["type"], kind, "{frame}");
    v["value"].clone()
}

/// Reads until the connection ends; returns the close code it ended with.
pub async fn closed_with(conn: &mut WsConnection) -> CloseCode {
    loop {
        match recv(conn).await {
            Ok(Some(_)) => continue,
            Ok(None) => return conn.close_reason().map_or(CloseCode::NORMAL, |r| r.code),
            Err(TransportError::Closed(Some(reason))) => return reason.code,
            Err(e) => panic!("ended with {e}"),
        }
    }
}
