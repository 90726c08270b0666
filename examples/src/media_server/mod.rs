//! The media server behind the `media_server` binary: a go2rtc-compatible `/api/ws` endpoint
//! where browsers publish and watch named streams, with str0m as the WebRTC stack and the
//! library's session driver for the signaling.
//!
//! # The WebSocket API
//!
//! `ws://ADDR/api/ws?src=NAME` watches stream NAME (the client's `recvonly` transceivers receive
//! it), `?dst=NAME` publishes (the client's sent tracks become stream NAME), and both at once are
//! allowed: `?src=me&dst=me` gives a client its own camera back. The client offers; the server
//! answers. Both of go2rtc's dialects are spoken, and each client is answered in its own
//! (the negotiation mirrors it):
//!
//! | client → server | server → client |
//! |---|---|
//! | `{"type":"webrtc/offer","value":SDP}` (v1) | `{"type":"webrtc/answer","value":SDP}` |
//! | `{"type":"webrtc","value":{"type":"offer","sdp":SDP}}` (v2) | `{"type":"webrtc","value":{"type":"answer","sdp":SDP}}` |
//! | `{"type":"webrtc/candidate","value":"candidate:..."}`, `""` = end | the same form |
//!
//! The answer carries the server's only candidate (a host candidate on the RTC address) inline,
//! followed by end-of-candidates; nothing is sent before the answer. Candidates that overtake
//! the offer are held by the negotiation and handed to str0m after it. Candidates str0m cannot
//! use (TCP, mDNS names) and addresses a socket on the RTC address cannot reach (anything but
//! loopback from loopback) are skipped, never an error.
//!
//! A v2 offer's `ice_servers` are ignored: a client must never choose which hosts the server
//! contacts (that would let any web page make the server send traffic to any address), and the
//! server needs no STUN or TURN server of its own.
//!
//! # Errors and close codes
//!
//! Errors are `{"type":"error","value":"<request type>: <message>"}` (go2rtc's form). An offer
//! the negotiation or str0m cannot use is answered with `webrtc/offer: ...` (or `webrtc: ...`
//! for v2) and the socket stays usable: a later good offer works. A connection refused as a
//! whole gets one `api/ws: <message>` error frame and is closed with one of [`close_code`]:
//!
//! | code | when |
//! |---|---|
//! | 4009 [`close_code::BAD_REQUEST`] | neither `src` nor `dst`, or a name that is empty, longer than 64 bytes or has control characters |
//! | 4010 [`close_code::PUBLISHER_EXISTS`] | `dst=NAME` while NAME has a publisher |
//! | 4011 [`close_code::TOO_MANY_STREAMS`] | the server has `max_streams` streams |
//! | 4012 [`close_code::TOO_MANY_VIEWERS`] | `src=NAME` while NAME has `max_viewers` viewers |
//! | 1013 (try again later) | the server has `max_connections` connections |
//! | 1011 (internal error) | no UDP port could be had for the media |
//!
//! # Media
//!
//! Frames (str0m's depacketized samples) of a publisher's first video and first audio
//! m-section are queued for every viewer and written to each viewer's `Rtc` with the viewer's
//! own payload type: no transcoding. Opus, VP8 and H264 are negotiated. With simulcast the first
//! layer the publisher lists is forwarded. A viewer's keyframe requests (PLI/FIR) go to the
//! publisher, and one is asked for when a viewer's media connection comes up; its video starts
//! at the next keyframe. Viewers may connect before the publisher and stay when it leaves.
//!
//! # Threads and sockets
//!
//! Each connection is one task owning its `Session`, its `Rtc` and one UDP socket bound to the
//! RTC address, port 0. One socket per connection needs no demultiplexing (str0m's
//! `Rtc::accepts` would have to be asked by a task that owns every `Rtc`, or datagrams routed by
//! ICE ufrag and address), keeps each connection's traffic on its own task, and costs one
//! ephemeral port per connection, bounded by `max_connections`.
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signaling::session::SessionConfig;
use signaling::transport::{CloseCode, Transport};
use signaling_core::admission::AllowAll;
use signaling_core::negotiation::Config;
use signaling_ws::{accept_request, read_request_head, WsConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ops::{answer_http, Answer};
use crate::relay_server::accept;

mod peer;
pub mod streams;

use peer::{PeerSettings, Roles};
use streams::{ConnId, StreamLimits, Streams};

/// The demo page served at `/`.
pub const PAGE: &str = include_str!("../../static/media.html");

/// The request type of errors about the connection request itself (`api/ws: ...`).
pub const REQUEST_TYPE: &str = "api/ws";

/// The longest stream name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Close codes of connections the media server refuses (see the
/// [module docs](self#errors-and-close-codes)).
pub mod close_code {
    use signaling::transport::CloseCode;

    /// No `src` or `dst`, or an invalid stream name (the relay's code for a bad request).
    pub const BAD_REQUEST: CloseCode = signaling_core::relay::close_code::BAD_REQUEST;
    /// The stream already has a publisher.
    pub const PUBLISHER_EXISTS: CloseCode = CloseCode(4010);
    /// The server has as many streams as it may.
    pub const TOO_MANY_STREAMS: CloseCode = CloseCode(4011);
    /// The stream has as many viewers as it may.
    pub const TOO_MANY_VIEWERS: CloseCode = CloseCode(4012);
}

/// Settings of the media server. Every bound here has a command-line flag in the binary.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MediaConfig {
    /// The address media (ICE, DTLS, SRTP) uses: the UDP sockets are bound to it and it is the
    /// only local ICE candidate. Default: 127.0.0.1.
    pub rtc_ip: IpAddr,
    /// Connections (WebSocket or plain HTTP) served at once; more are refused with 1013.
    /// Default: 256.
    pub max_connections: usize,
    /// Streams (names with a publisher or a viewer) at once. Default: 64.
    pub max_streams: usize,
    /// Viewers of one stream at once. Default: 32.
    pub max_viewers: usize,
    /// Media frames waiting to be written to one viewer; when full, frames for that viewer are
    /// dropped (its video waits for the next keyframe) and the publisher never waits.
    /// Default: 128 (about a second of 30 fps video and 50 fps audio).
    pub media_queue: usize,
    /// Largest WebSocket frame accepted, in bytes. Default: 64 KiB.
    pub max_frame_len: usize,
    /// Seconds between keepalive pings on the WebSocket (0: none). Default: 20.
    pub ping_interval: f64,
    /// The negotiation's settings (perfect-negotiation role, bounds on candidates and SDP).
    /// Default: [`Config::default`] (polite, answering in the client's dialect).
    pub negotiation: Config,
    /// The session driver's queues. Default: [`SessionConfig::default`].
    pub session: SessionConfig,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtc_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_connections: 256,
            max_streams: 64,
            max_viewers: 32,
            media_queue: 128,
            max_frame_len: signaling_core::wire::DEFAULT_MAX_FRAME_LEN,
            ping_interval: 20.0,
            negotiation: Config::default(),
            session: SessionConfig::default(),
        }
    }
}

impl MediaConfig {
    /// Sets the RTC address.
    pub fn with_rtc_ip(mut self, ip: IpAddr) -> Self {
        self.rtc_ip = ip;
        self
    }

    /// Sets the bounds on connections, streams, viewers per stream and each viewer's queue.
    pub fn with_limits(
        mut self,
        max_connections: usize,
        max_streams: usize,
        max_viewers: usize,
        media_queue: usize,
    ) -> Self {
        self.max_connections = max_connections;
        self.max_streams = max_streams;
        self.max_viewers = max_viewers;
        self.media_queue = media_queue;
        self
    }
}

/// Connections refused for the connection limit are still answered (an error frame and 1013),
/// at most this many at once; beyond that they are dropped unanswered.
const MAX_REFUSING: usize = 32;

/// The media server.
#[derive(Debug)]
pub struct MediaServer {
    streams: Arc<Streams>,
    ws: WsConfig,
    peer: PeerSettings,
    slots: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    next_conn: AtomicU64,
}

impl MediaServer {
    /// A server for `config`. Installs str0m's crypto provider for the process (once; later
    /// calls keep the first).
    pub fn new(config: MediaConfig) -> Self {
        install_crypto();
        let ping =
            (config.ping_interval > 0.0).then(|| Duration::from_secs_f64(config.ping_interval));
        let ws = WsConfig::default()
            .with_max_message_size(config.max_frame_len)
            .with_ping_interval(ping);
        Self {
            streams: Arc::new(Streams::new(StreamLimits {
                max_streams: config.max_streams.max(1),
                max_viewers: config.max_viewers.max(1),
            })),
            ws,
            peer: PeerSettings {
                rtc_ip: config.rtc_ip,
                media_queue: config.media_queue.max(1),
                negotiation: config.negotiation,
                session: config.session,
            },
            slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The stream table (for monitoring).
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// Accepts and serves connections on `listener` until the task is dropped.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, addr) = accept(&listener).await;
            let permit = self.slots.clone().try_acquire_owned().ok();
            let server = self.clone();
            let refusal = match permit {
                Some(_) => None,
                None => match self.refusing.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    // Too many refusals in flight as well: drop it unanswered.
                    Err(_) => continue,
                },
            };
            tokio::spawn(async move {
                let result = match permit {
                    Some(permit) => server.serve(stream, addr, permit).await,
                    None => server.refuse_full(stream, addr, refusal).await,
                };
                if let Err(e) = result {
                    tracing::debug!(%addr, error = %e, "connection ended with an error");
                }
            });
        }
    }

    /// Serves one TCP connection: `/api/ws`, the demo page at `/`, or 404. `permit` is its
    /// place under `max_connections`, held until it ends.
    async fn serve(
        &self,
        mut stream: TcpStream,
        addr: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let head = match Box::pin(read_request_head(&mut stream, &self.ws)).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "request refused or failed");
                return Ok(());
            }
        };
        if head.path() == "/api/ws" && head.is_upgrade() {
            let handshake = accept_request(stream, head, Some(addr), &self.ws, &AllowAll);
            let mut conn = match Box::pin(handshake).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "handshake refused or failed");
                    return Ok(());
                }
            };
            let roles = match roles(conn.peer()) {
                Ok(roles) => roles,
                Err(message) => {
                    tracing::info!(%addr, %message, "bad request");
                    let _ = &mut conn;
                    peer::refuse(conn, close_code::BAD_REQUEST, &message).await;
                    return Ok(());
                }
            };
            let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
            peer::serve(conn, id, roles, &self.streams, &self.peer).await;
            drop(permit);
            return Ok(());
        }
        let answer = match (head.method(), head.path()) {
            ("GET", "/" | "/index.html") => Answer {
                status: "200 OK",
                content_type: "text/html; charset=utf-8",
                body: PAGE.into(),
            },
            _ => Answer::text("404 Not Found", "not found\n"),
        };
        answer_http(stream, head.deadline(), &answer).await
    }

    /// Answers a connection over `max_connections`: 503 for plain HTTP; for a WebSocket, an
    /// error frame and close code 1013.
    async fn refuse_full(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
    ) -> std::io::Result<()> {
        let mut stream = stream;
        let head = match Box::pin(read_request_head(&mut stream, &self.ws)).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "request refused or failed");
                return Ok(());
            }
        };
        let message = "too many connections, try again later";
        if head.is_upgrade() {
            let handshake = accept_request(stream, head, Some(addr), &self.ws, &AllowAll);
            if let Ok(conn) = Box::pin(handshake).await {
                peer::refuse(conn, CloseCode::TRY_AGAIN_LATER, message).await;
            }
        } else {
            let answer = Answer::text("503 Service Unavailable", format!("{message}\n"));
            answer_http(stream, head.deadline(), &answer).await?;
        }
        drop(permit);
        Ok(())
    }
}

/// The roles a connection's URL asks for, or why it is a bad request.
fn roles(peer: &signaling::transport::PeerInfo) -> Result<Roles, String> {
    let name = |key: &str| -> Result<Option<String>, String> {
        match (peer.query_param(key), peer.query_value(key)) {
            (None, _) => Ok(None),
            (Some(_), Some(n))
                if !n.is_empty() && n.len() <= MAX_NAME_LEN && !n.chars().any(char::is_control) =>
            {
                Ok(Some(n))
            }
            (Some(_), _) => Err(format!(
                "{key}: a stream name is 1 to {MAX_NAME_LEN} bytes of UTF-8 without control characters"
            )),
        }
    };
    let roles = Roles {
        src: name("src")?,
        dst: name("dst")?,
    };
    if roles.src.is_none() && roles.dst.is_none() {
        return Err("missing ?src=NAME (watch) or ?dst=NAME (publish)".to_owned());
    }
    Ok(roles)
}

/// Installs str0m's crypto provider (aws-lc-rs, the feature the examples crate enables) as the
/// process default, once.
fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
