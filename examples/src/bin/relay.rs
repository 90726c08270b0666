//! The signaling relay: WebSocket at `ws://ADDR/ws?room=NAME`, and at `/` a demo page that runs
//! the seed client's logic against it (open it in two tabs with the same room for a video call).
//!
//! ```text
//! cargo run --release -p examples --bin relay -- [--listen 127.0.0.1:8080] [--config relay.toml]
//! ```
//!
//! Everything but the listen address comes from the configuration file (see
//! `examples/relay.toml`); without one, the embedded defaults apply. Logs go to stderr
//! (`RUST_LOG=debug` for more).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use signaling_core::admission::{Admission, AdmissionConfig};
use signaling_core::relay::close_code;
use signaling_core::relay::driver::{join_request_from_peer, DriverConfig, RelayHandle};
use signaling_core::relay::RelayConfig;
use signaling_core::transport::{CloseReason, Transport};
use signaling_ws::{accept_stream, HandshakeRequest, Rejection, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const PAGE: &str = include_str!("../../static/index.html");

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "WebRTC signaling relay with a demo page")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Configuration file (TOML); the embedded defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The configuration file.
#[derive(Deserialize, Debug, Default)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    relay: RelayConfig,
    websocket: WsSection,
    admission: Option<AdmissionConfig>,
}

#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
struct WsSection {
    /// Frames queued per connection before it counts as a slow consumer.
    send_queue: usize,
    /// Connections served at once (upgraded or not); more wait in the kernel's backlog.
    max_connections: usize,
    /// Seconds between keepalive pings (0: none).
    ping_interval: f64,
    /// Seconds to wait for a pong before the peer counts as dead.
    pong_timeout: f64,
    /// Bytes of tungstenite's read buffer per connection.
    read_buffer_size: usize,
}

impl Default for WsSection {
    fn default() -> Self {
        Self {
            send_queue: 256,
            max_connections: 20_000,
            ping_interval: 20.0,
            pong_timeout: 10.0,
            read_buffer_size: 4096,
        }
    }
}

struct Server {
    relay: RelayHandle,
    ws: WsConfig,
    admission: Option<Box<dyn Admission>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let file: FileConfig = match &args.config {
        Some(path) => toml::from_str(&std::fs::read_to_string(path)?)?,
        None => FileConfig::default(),
    };
    let ping = (file.websocket.ping_interval > 0.0)
        .then(|| Duration::from_secs_f64(file.websocket.ping_interval));
    let ws = WsConfig::default()
        .with_max_message_size(file.relay.max_frame_len)
        .with_ping_interval(ping)
        .with_pong_timeout(Duration::from_secs_f64(
            file.websocket.pong_timeout.max(0.1),
        ))
        .with_read_buffer_size(file.websocket.read_buffer_size);
    let mut driver = DriverConfig::default();
    driver.send_queue = file.websocket.send_queue;
    let admission = match &file.admission {
        Some(config) => Some(config.build()?),
        None => None,
    };
    let server = Arc::new(Server {
        relay: RelayHandle::new(file.relay, driver),
        ws,
        admission,
    });
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(
        "relay listening on http://{} (demo page at /, WebSocket at /ws?room=NAME)",
        listener.local_addr()?
    );
    let slots = Arc::new(Semaphore::new(file.websocket.max_connections.max(1)));
    loop {
        let permit = slots.clone().acquire_owned().await?;
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(&server, stream, addr).await {
                tracing::debug!(%addr, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Serves one TCP connection: the WebSocket endpoint, the demo page, or 404.
async fn serve(server: &Server, mut stream: TcpStream, addr: SocketAddr) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let head = peek_head(&stream).await?;
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
            k.trim().eq_ignore_ascii_case("upgrade") && v.trim().eq_ignore_ascii_case("websocket")
        })
    });
    if path == "/ws" && upgrade {
        let hook = |req: &HandshakeRequest| match &server.admission {
            Some(a) => a
                .admit(req.peer())
                .map_err(|r| Rejection::new(r.status, r.reason.to_string())),
            None => Ok(()),
        };
        let mut conn = match accept_stream(stream, Some(addr), &server.ws, &hook).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "handshake refused or failed");
                return Ok(());
            }
        };
        match join_request_from_peer(conn.peer()) {
            Some(request) => server.relay.serve(conn, request).await,
            None => {
                let reason = CloseReason::new(close_code::BAD_REQUEST, "missing ?room=NAME");
                let _ = conn.close(reason).await;
            }
        }
        return Ok(());
    }
    // Plain HTTP: consume the request head, answer, close.
    let mut discard = vec![0u8; head.len()];
    stream.read_exact(&mut discard).await?;
    let (status, kind, body) = match (method, path) {
        ("GET", "/" | "/index.html") => ("200 OK", "text/html; charset=utf-8", PAGE),
        _ => ("404 Not Found", "text/plain; charset=utf-8", "not found\n"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The request head (up to and including the blank line), read without consuming it, so that
/// the WebSocket handshake can read it again. At most 8 KiB and 5 seconds.
async fn peek_head(stream: &TcpStream) -> std::io::Result<String> {
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
            return Ok(String::from_utf8_lossy(&buf[..end + 4]).into_owned());
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
