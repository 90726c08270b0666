//! What the tests share: the seed client's frames, a relay app served on 127.0.0.1, reading
//! frames with a bound, and a plain HTTP/1.1 request over any stream.
#![allow(dead_code, unreachable_pub)] // each test file uses its own part
#![allow(clippy::unwrap_used)]

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::Value;
use signaling::relay::{DriverConfig, RelayConfig, RelayHandle};
use signaling::transport::{Transport, TransportError};
use signaling_http::tls::{self, ServeConfig, ServeReport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Frames as the seed client sends them (go2rtc's dialect): an offer, its answer, and two
/// candidates as `RTCIceCandidate.candidate` strings.
pub const OFFER: &str = r#"{"type":"webrtc/offer","value":"v=0\r\no=- 5498186869896684180 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"}"#;
pub const ANSWER: &str = r#"{"type":"webrtc/answer","value":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}"#;
pub const HOST: &str = r#"{"type":"webrtc/candidate","value":"candidate:4234997325 1 udp 2043278322 192.168.1.2 44323 typ host generation 0 ufrag EsAw network-id 1"}"#;
pub const SRFLX: &str = r#"{"type":"webrtc/candidate","value":"candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10"}"#;

/// A generous bound so that a broken test fails instead of hanging; never a timing assertion.
pub const WAIT: Duration = Duration::from_secs(10);

/// The body of the app's own route.
pub const HELLO: &str = "hello from the app's own route\n";

/// A relay app served on 127.0.0.1: the user's own `GET /hello` and the relay at `/ws`
/// beside it, plus whatever `extra` adds.
pub struct App {
    pub addr: SocketAddr,
    pub relay: RelayHandle,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<ServeReport>,
}

impl App {
    pub async fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        extra: impl FnOnce(Router, RelayHandle) -> Router,
    ) -> Self {
        Self::start_with(tls, ServeConfig::default(), extra).await
    }

    pub async fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        config: ServeConfig,
        extra: impl FnOnce(Router, RelayHandle) -> Router,
    ) -> Self {
        let relay = RelayHandle::new(RelayConfig::default(), DriverConfig::default());
        let router = Router::new()
            .route("/hello", get(|| async { HELLO }))
            .route("/ws", signaling_http::relay::route(relay.clone()));
        let router = extra(router, relay.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            tls::serve(listener, router, tls)
                .config(config)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Self {
            addr,
            relay,
            stop: Some(stop),
            server,
        }
    }

    /// Gives the shutdown signal and waits (bounded) for the server to return.
    pub async fn shut_down(&mut self) -> ServeReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.server)
            .await
            .expect("the server returns")
            .expect("the server task did not panic")
    }
}

/// The next frame, which must come within [`WAIT`].
pub async fn next_frame<T: Transport>(conn: &mut T) -> String {
    recv(conn).await.expect("open").expect("a frame")
}

/// The next frame or the end, within [`WAIT`].
pub async fn recv<T: Transport>(conn: &mut T) -> Result<Option<String>, TransportError> {
    tokio::time::timeout(WAIT, conn.recv())
        .await
        .expect("no hang")
        .map(|frame| frame.map(String::from))
}

/// The next frame, which must be of type `kind`; returns its value.
pub async fn expect_type<T: Transport>(conn: &mut T, kind: &str) -> Value {
    let frame = next_frame(conn).await;
    let v: Value = serde_json::from_str(&frame).expect("json");
    assert_eq!(v["type"], kind, "{frame}");
    v["value"].clone()
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends `GET path` with `Connection: close` and reads the whole response.
pub async fn http_get<S>(stream: &mut S, path: &str) -> HttpResponse
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    http_request(stream, "GET", path, &[], "").await
}

/// Sends one request with `Connection: close` and reads the whole response.
pub async fn http_request<S>(
    stream: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("no hang")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    // "HTTP/1.1 200 OK"
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

impl HttpResponse {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What the server sends on `tcp` until it closes it (within [`WAIT`]).
pub async fn read_until_closed(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection");
    bytes
}
