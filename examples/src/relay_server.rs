//! The relay server behind the `relay` binary: configuration file, TCP accept, the WebSocket
//! endpoint at `/ws?room=NAME` and the demo page at `/`. Tests and the load generator run the
//! same code in-process.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use signaling::relay::{join_request_from_peer, DriverConfig, RelayHandle};
use signaling::transport::{CloseReason, Transport};
use signaling_core::admission::{Admission, AdmissionConfig, AdmissionConfigError, AllowAll};
use signaling_core::relay::close_code;
use signaling_core::relay::RelayConfig;
use signaling_ws::{accept_stream, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The demo page served at `/`.
pub const PAGE: &str = include_str!("../static/index.html");

/// The configuration file (TOML). Every section and key is optional; see `examples/relay.toml`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// The relay's rooms, limits, privacy policy and ICE servers.
    pub relay: RelayConfig,
    /// The WebSocket endpoint.
    pub websocket: WsSection,
    /// Who may connect (token, origin); everyone when absent.
    pub admission: Option<AdmissionConfig>,
}

/// The `[websocket]` section.
#[derive(Deserialize, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WsSection {
    /// Frames queued per connection at which the peers sending to it stop being read (TCP
    /// backpressure); four times this closes it as a slow consumer. Default: 256.
    pub send_queue: usize,
    /// Seconds a connection that senders wait on may write nothing before it is closed as a
    /// slow consumer (4006). Default: 10.
    pub write_timeout: f64,
    /// Connections served at once (upgraded or not); more wait in the kernel's backlog.
    /// Default: 20,000.
    pub max_connections: usize,
    /// Seconds between keepalive pings (0: none). Default: 20.
    pub ping_interval: f64,
    /// Seconds to wait for a pong before the peer counts as dead. Default: 10.
    pub pong_timeout: f64,
    /// Frames of one connection handled together before its task yields to the writers.
    /// Default: 64 (keep it well below `send_queue`).
    pub burst: usize,
    /// Frames written to one connection with one flush, at most. Default: 256.
    pub write_batch: usize,
    /// Bytes of the read buffer per connection. Default: 2048 (what idle connections cost is
    /// mostly this buffer; larger frames grow it as needed).
    pub read_buffer_size: usize,
    /// Bytes of the blocks received frames are copied into (frames arriving together share
    /// one; 0: each frame in a buffer of its own). Default: 4096.
    pub recv_block_size: usize,
}

impl Default for WsSection {
    fn default() -> Self {
        Self {
            send_queue: 256,
            write_timeout: 10.0,
            burst: 64,
            write_batch: 256,
            max_connections: 20_000,
            ping_interval: 20.0,
            pong_timeout: 10.0,
            read_buffer_size: 2048,
            recv_block_size: 4096,
        }
    }
}

impl FileConfig {
    /// Parses a configuration file's text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// A relay server, ready to serve connections.
pub struct Server {
    relay: RelayHandle,
    ws: WsConfig,
    admission: Option<Box<dyn Admission>>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for this configuration (starts the relay's timer task on the current runtime).
    pub fn new(config: FileConfig) -> Result<Self, AdmissionConfigError> {
        let ping = (config.websocket.ping_interval > 0.0)
            .then(|| Duration::from_secs_f64(config.websocket.ping_interval));
        let ws = WsConfig::default()
            .with_max_message_size(config.relay.max_frame_len)
            .with_ping_interval(ping)
            .with_pong_timeout(Duration::from_secs_f64(
                config.websocket.pong_timeout.max(0.1),
            ))
            .with_read_buffer_size(config.websocket.read_buffer_size)
            .with_recv_block_size(config.websocket.recv_block_size);
        let mut driver = DriverConfig::default();
        driver.send_queue = config.websocket.send_queue;
        // Out-of-range values (negative, NaN, infinite) keep the default.
        driver.write_timeout = Duration::try_from_secs_f64(config.websocket.write_timeout)
            .unwrap_or(driver.write_timeout)
            .max(Duration::from_millis(100));
        driver.burst = config.websocket.burst;
        driver.write_batch = config.websocket.write_batch;
        let admission = match &config.admission {
            Some(a) => Some(a.build()?),
            None => None,
        };
        Ok(Self {
            relay: RelayHandle::new(config.relay, driver),
            ws,
            admission,
            slots: Arc::new(Semaphore::new(config.websocket.max_connections.max(1))),
        })
    }

    /// The relay, to serve connections of other transports (an in-memory peer, say).
    pub fn relay(&self) -> &RelayHandle {
        &self.relay
    }

    /// Accepts and serves connections on `listener` until the task is dropped.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let permit = match self.slots.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let (stream, addr) = accept(&listener).await;
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(e) = server.serve(stream, addr).await {
                    tracing::debug!(%addr, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }

    /// Serves one TCP connection: the WebSocket endpoint, the demo page, or 404.
    pub async fn serve(&self, stream: TcpStream, addr: SocketAddr) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let (head, head_len) = Box::pin(peek_head(&stream)).await?;
        let RequestHead {
            method,
            path,
            upgrade,
        } = RequestHead::parse(&head);
        if path == "/ws" && upgrade {
            let admission: &dyn Admission = match &self.admission {
                Some(a) => a.as_ref(),
                None => &AllowAll,
            };
            // Boxed: the handshake's state is large and short-lived; inline, it would stay in
            // the task's allocation for the connection's whole life.
            let handshake = Box::pin(accept_stream(stream, Some(addr), &self.ws, admission));
            let mut conn = match handshake.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "handshake refused or failed");
                    return Ok(());
                }
            };
            match join_request_from_peer(conn.peer()) {
                Some(request) => self.relay.serve(conn, request).await,
                None => {
                    let reason = CloseReason::new(close_code::BAD_REQUEST, "missing ?room=NAME");
                    let _ = conn.close(reason).await;
                }
            }
            return Ok(());
        }
        let (status, kind, body) = match (method, path) {
            ("GET", "/" | "/index.html") => ("200 OK", "text/html; charset=utf-8", PAGE),
            _ => ("404 Not Found", "text/plain; charset=utf-8", "not found\n"),
        };
        answer_plain_http(stream, head_len, status, kind, body).await
    }
}

/// What the front door needs of an HTTP request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method (`GET`, ...).
    pub method: &'a str,
    /// The target's path, without the query string.
    pub path: &'a str,
    /// Whether the request asks for a WebSocket upgrade (`Upgrade: websocket`).
    pub upgrade: bool,
}

impl<'a> RequestHead<'a> {
    /// Reads the request line and the `Upgrade` header of `head` (as [`peek_head`] gives it).
    /// Missing parts are empty: a malformed head is answered as an unknown path.
    pub fn parse(head: &'a str) -> Self {
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (method, target) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let path = target.split('?').next().unwrap_or_default();
        let upgrade = lines.any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("upgrade")
                    && v.trim().eq_ignore_ascii_case("websocket")
            })
        });
        Self {
            method,
            path,
            upgrade,
        }
    }
}

/// Answers a plain HTTP request whose head ([`peek_head`]) is `head_len` bytes: consumes the head,
/// writes `status` (`"200 OK"`, ...) with a body of type `kind`, and closes the connection.
pub async fn answer_plain_http(
    mut stream: TcpStream,
    head_len: usize,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut discard = vec![0u8; head_len];
    stream.read_exact(&mut discard).await?;
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The next connection on `listener`. An accept error (out of file descriptors, say) is logged
/// and retried after 100 ms rather than ending the server.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The request head (up to and including the blank line) and its length in bytes, read without
/// consuming it, so that the WebSocket handshake can read it again. At most 8 KiB and 5 seconds.
pub async fn peek_head(stream: &TcpStream) -> std::io::Result<(String, usize)> {
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((
                String::from_utf8_lossy(&buf[..end + 4]).into_owned(),
                end + 4,
            ));
        }
        if n == buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        // More of the head is on its way.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
