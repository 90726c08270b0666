//! The media server behind the `media_server` binary: browsers publish and watch named streams
//! over a go2rtc-compatible WebSocket API (`/api/ws`), over WHIP (RFC 9725, `/whip/NAME`) and over
//! WHEP (draft-ietf-wish-whep, `/whep/NAME`), all three on the same streams, with str0m as the
//! WebRTC stack, the library's session driver for the WebSocket signaling and its WHIP/WHEP
//! endpoints ([`signaling_http::whip`]) for the HTTP signaling, served by axum.
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /` (and `/index.html`) | the demo page: publish the camera into a stream, or watch one |
//! | `GET /api/ws?src=NAME&dst=NAME` | the WebSocket API (below) |
//! | `POST /whip/NAME`, then `PATCH`/`DELETE` its `Location` | publish into NAME, as `?dst=NAME` does ([WHIP and WHEP](#whip-and-whep)) |
//! | `POST /whep/NAME`, then `PATCH`/`DELETE` its `Location` | watch NAME, as `?src=NAME` does |
//! | `GET /healthz`, `GET /readyz` | `200 ok` / `200 ready`: the server depends on nothing that can be down; `503 shutting down` once [`MediaServer::shutdown`] began |
//! | `GET /metrics` | Prometheus text ([Metrics](#metrics)) |
//!
//! Over TLS (`--tls-cert`, `--tls-key`) the same routes are `https://` and `wss://`.
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
//! | 1013 (try again later) | the server has `max_connections` media connections |
//! | 1011 (internal error) | no UDP port could be had for the media |
//!
//! # WHIP and WHEP
//!
//! A WHIP session is a publisher of NAME exactly as a `?dst=NAME` WebSocket client is, a WHEP
//! session a viewer exactly as `?src=NAME`: the same stream table, the same forwarding, the
//! same limits, each with its own `Rtc` and UDP socket. The client offers (`POST`, an SDP offer
//! as `application/sdp`); str0m answers with its host candidate inline. The protocol's own rules
//! (entity-tags in strict mode, CORS for pages of any origin, bounds on bodies and candidates)
//! are the endpoint's, [`signaling_core::whip`]; what the media server answers:
//!
//! | request | answer |
//! |---|---|
//! | `POST /whip/NAME` or `/whep/NAME`, an offer str0m answers | `201 Created`, the SDP answer, `Location: /whip/NAME/ID`, `ETag`, `Accept-Patch` |
//! | `POST /whep/NAME` while NAME has no publisher | `201` as well: the player waits, connected, and plays when a publisher comes (as a `?src=NAME` client does); it never gets `409` + `Retry-After` |
//! | `POST /whip/NAME` while NAME has a publisher (WebSocket, WHIP) | `409 Conflict` |
//! | a name that is empty, longer than 64 bytes or has control characters | `400 Bad Request` |
//! | the server has `max_connections` media connections or `max_streams` streams, or NAME has `max_viewers` viewers | `503 Service Unavailable` + `Retry-After` |
//! | an offer str0m cannot parse / cannot use (no fingerprint, say) | `400` / `422 Unprocessable Content`, with str0m's reason |
//! | `PATCH` the session, `If-Match` its entity-tag, candidates (trickle, RFC 8840) | `204`; the candidates go to str0m (the same filter as on the WebSocket: UDP, reachable from the RTC address) |
//! | `PATCH` the session, `If-Match: "*"` and new `ice-ufrag`/`ice-pwd` (ICE restart) | `200`, the server's new credentials and candidate, a new `ETag`; str0m's ICE agent restarts |
//! | `DELETE` the session | `200`; the session's media ends (a publisher's viewers stay) |
//! | anything for a session that ended | `404` |
//!
//! An ICE restart gives str0m the session's offer again with the client's new credentials
//! (str0m 0.25 restarts ICE only on an offer or answer whose credentials changed; its
//! `DirectApi` can only swap credentials, which keeps the old candidate pairs): nothing is
//! renegotiated, str0m flushes its candidate pairs and remote candidates and takes new local
//! credentials, and the restart's candidates are added after.
//!
//! A WHIP or WHEP session has no socket whose closing would tell that the client left: it ends
//! when it is deleted, or when its ICE connection is not up for `ice_timeout` (30 s; before it
//! first comes up, after it is lost, during an ICE restart). A session whose media ended (the
//! client closed its peer connection, which clients do before their `DELETE`) waits up to 5 s
//! for the `DELETE`, so that it is answered `200` rather than `404`.
//!
//! A session's task takes trickled candidates and restarts from a queue of 32. Candidates are
//! handed over after their `PATCH` was answered `204`, so they are never dropped: a client
//! that trickles faster than its session takes them (32 `PATCH`es ahead; a browser sends a
//! handful) loses the session, which ends as a deleted one does (later requests `404`;
//! `signaling_media_sessions_overrun_total`).
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
//! # Shutdown
//!
//! [`MediaServer::shutdown`] (the binary: on `SIGTERM` or `SIGINT`) ends every media
//! connection: WebSocket clients are closed with 1001 (going away), WHIP/WHEP sessions are
//! removed without waiting for their `DELETE` (it gets `404`). Meanwhile the listener still
//! answers: health checks get `503`, and new WebSocket connections and offers `503` (WHIP/WHEP
//! with `Retry-After`), so a load balancer sees the shutdown. It returns when every connection
//! has ended, or at its drain time, with a [`MediaShutdown`] report; then
//! [`MediaServer::run_until`]'s signal stops the HTTP server.
//!
//! # Metrics
//!
//! `GET /metrics` answers in the Prometheus text format, read at scrape time from
//! [`MediaServer::stats`]:
//!
//! | series | type | what |
//! |---|---|---|
//! | `signaling_media_connections` | gauge | media connections open: WebSocket clients and WHIP/WHEP sessions |
//! | `signaling_media_max_connections` | gauge | `max_connections` |
//! | `signaling_media_streams` | gauge | streams |
//! | `signaling_media_sessions_total{api}` | counter | media connections opened, by `api`: `ws`, `whip`, `whep` |
//! | `signaling_media_offers_total{outcome}` | counter | offers str0m `answered` or `refused` |
//! | `signaling_media_sessions_overrun_total` | counter | WHIP/WHEP sessions ended because trickled candidates came faster than the session took them |
//! | `signaling_media_refused_total{reason}` | counter | connections and offers refused before their media connection ([`RefusedFor`]: `bad_request`, `publisher_exists`, `too_many_streams`, `too_many_viewers`, `too_many_connections`, `no_udp_port`, `shutting_down`) |
//! | `signaling_media_http_sessions_created_total{endpoint}` | counter | WHIP/WHEP sessions created (`201`), by `endpoint`: `whip`, `whep` |
//! | `signaling_media_http_sessions_deleted_total{endpoint}` | counter | sessions deleted by their client |
//! | `signaling_media_http_requests_refused_total{endpoint}` | counter | requests the endpoint refused itself (bad `Content-Type`, entity-tag, body, ...) |
//! | `signaling_media_http_trickles_total{endpoint}` | counter | trickle `PATCH`es taken (`204`) |
//! | `signaling_media_http_candidates_total{endpoint}` | counter | candidates they carried |
//! | `signaling_media_http_ice_restarts_total{endpoint}` | counter | ICE restarts answered `200` |
//! | `signaling_media_http_ice_restarts_failed_total{endpoint}` | counter | ICE restarts that failed |
//!
//! # Threads and sockets
//!
//! Each connection (WebSocket client or WHIP/WHEP session) is one task owning its signaling,
//! its `Rtc` and one UDP socket bound to the RTC address, port 0. One socket per connection
//! needs no demultiplexing (str0m's `Rtc::accepts` would have to be asked by a task that owns
//! every `Rtc`, or datagrams routed by ICE ufrag and address), keeps each connection's traffic
//! on its own task, and costs one ephemeral port per connection, bounded by `max_connections`.
//! Each of the two HTTP endpoints has one more task that reads its events and routes trickled
//! candidates and ICE restarts to the sessions' tasks (at most 32 waiting per session).
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use signaling::session::SessionConfig;
use signaling::transport::CloseCode;
use signaling_core::admission::AllowAll;
use signaling_core::negotiation::Config;
use signaling_core::whip::{self, EndpointStats, Rejection, RestartFailure, SessionId};
use signaling_http::tls::{ServeConfig, ServeReport};
use signaling_http::whip::{WhipEndpoint, WhipEvent, WhipEvents};
use signaling_http::ws::{AxumWsConfig, WsUpgrade};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::ops::{self, Health, Metrics, Scrape};

mod peer;
pub mod streams;

use peer::{Command, HttpSignaling, PeerSettings, Roles};
use streams::{ConnId, StreamLimits, Streams};

/// The demo page served at `/`.
pub const PAGE: &str = include_str!("../../static/media.html");

/// The request type of errors about the connection request itself (`api/ws: ...`).
pub const REQUEST_TYPE: &str = "api/ws";

/// The longest stream name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Commands (trickled candidates, ICE restarts) waiting for one WHIP or WHEP session's task.
/// A restart that finds them full is refused (`503`); candidates, whose `PATCH` was already
/// answered `204`, end the session instead of being dropped (see the
/// [module docs](self#whip-and-whep)).
const SESSION_COMMANDS: usize = 32;

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
    /// Media connections at once: WebSocket clients, WHIP sessions and WHEP sessions together
    /// (each has its own `Rtc` and UDP socket). A WebSocket beyond it is refused with 1013, a
    /// WHIP or WHEP offer with `503` + `Retry-After`. Default: 256.
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
    /// How long a WHIP or WHEP session's ICE connection may be down (before it first comes up,
    /// after it is lost, during an ICE restart) before the session ends: such a session has no
    /// socket whose closing would say that the client left. Default: 30 s.
    pub ice_timeout: Duration,
    /// The WHIP endpoint's settings (`/whip/NAME`). Default: [`whip::Config::whip`], its
    /// session bound raised to `max_connections`.
    pub whip: whip::Config,
    /// The WHEP endpoint's settings (`/whep/NAME`). Default: [`whip::Config::whep`], its
    /// session bound raised to `max_connections`.
    pub whep: whip::Config,
    /// The HTTP server's bounds (HTTP connections at once, header sizes and timeouts). Default:
    /// [`ServeConfig::default`].
    pub serve: ServeConfig,
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
            ice_timeout: Duration::from_secs(30),
            whip: whip::Config::whip(),
            whep: whip::Config::whep(),
            serve: ServeConfig::default(),
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

    /// Sets how long a WHIP or WHEP session's ICE connection may be down.
    pub fn with_ice_timeout(mut self, timeout: Duration) -> Self {
        self.ice_timeout = timeout;
        self
    }
}

/// Connections refused for the connection limit are still answered (an error frame and 1013),
/// at most this many at once; beyond that they get `503` without an upgrade.
const MAX_REFUSING: usize = 32;

/// Why a connection (WebSocket) or a session (WHIP/WHEP offer) was refused before its media
/// connection was set up: the reasons of `signaling_media_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedFor {
    /// No role, or a stream name that is empty, too long or has control characters (close
    /// 4009, `400`).
    BadRequest,
    /// The stream has a publisher (close 4010, `409`).
    PublisherExists,
    /// The server has `max_streams` streams (close 4011, `503`).
    TooManyStreams,
    /// The stream has `max_viewers` viewers (close 4012, `503`).
    TooManyViewers,
    /// The server has `max_connections` media connections (close 1013, `503`).
    TooManyConnections,
    /// No UDP port could be had on the RTC address (close 1011, `500`).
    NoUdpPort,
    /// The server is shutting down (`503` without an upgrade; WHIP/WHEP `503` +
    /// `Retry-After`).
    ShuttingDown,
}

impl RefusedFor {
    /// Every reason, in the order the metrics list them.
    pub const ALL: [RefusedFor; 7] = [
        RefusedFor::BadRequest,
        RefusedFor::PublisherExists,
        RefusedFor::TooManyStreams,
        RefusedFor::TooManyViewers,
        RefusedFor::TooManyConnections,
        RefusedFor::NoUdpPort,
        RefusedFor::ShuttingDown,
    ];

    /// The reason's label in the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedFor::BadRequest => "bad_request",
            RefusedFor::PublisherExists => "publisher_exists",
            RefusedFor::TooManyStreams => "too_many_streams",
            RefusedFor::TooManyViewers => "too_many_viewers",
            RefusedFor::TooManyConnections => "too_many_connections",
            RefusedFor::NoUdpPort => "no_udp_port",
            RefusedFor::ShuttingDown => "shutting_down",
        }
    }
}

impl From<&streams::JoinError> for RefusedFor {
    fn from(e: &streams::JoinError) -> Self {
        match e {
            streams::JoinError::PublisherExists(_) => RefusedFor::PublisherExists,
            streams::JoinError::TooManyStreams(_) => RefusedFor::TooManyStreams,
            streams::JoinError::TooManyViewers { .. } => RefusedFor::TooManyViewers,
        }
    }
}

/// Which API a connection came by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// `/api/ws`.
    Ws,
    /// `/whip/NAME`.
    Whip,
    /// `/whep/NAME`.
    Whep,
}

/// The server's own counters (the WHIP and WHEP endpoints count the rest).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    ws: AtomicU64,
    whip: AtomicU64,
    whep: AtomicU64,
    offers_answered: AtomicU64,
    offers_refused: AtomicU64,
    overrun: AtomicU64,
    refused: [AtomicU64; RefusedFor::ALL.len()],
}

impl Counters {
    /// A connection of `api` got its place in the streams and its socket.
    pub(crate) fn opened(&self, api: Api) {
        let counter = match api {
            Api::Ws => &self.ws,
            Api::Whip => &self.whip,
            Api::Whep => &self.whep,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn offer_answered(&self) {
        self.offers_answered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn offer_refused(&self) {
        self.offers_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn overrun(&self) {
        self.overrun.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, reason: RefusedFor) {
        let index = RefusedFor::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        self.refused[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// The media server's figures (see [`MediaServer::stats`]); counters are monotonic since the
/// server started. `GET /metrics` shows them (see the [module docs](self#metrics)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaStats {
    /// Media connections open now: WebSocket clients and WHIP/WHEP sessions.
    pub connections: u64,
    /// The bound on those (`max_connections`).
    pub max_connections: u64,
    /// Streams now.
    pub streams: u64,
    /// WebSocket connections that got their place in the streams and their UDP socket (those
    /// refused before are counted in `refused`).
    pub ws_sessions: u64,
    /// WHIP sessions that got their place in the streams and their UDP socket (their offers
    /// then answered or refused by str0m).
    pub whip_sessions: u64,
    /// WHEP sessions likewise.
    pub whep_sessions: u64,
    /// Offers str0m answered (WebSocket and HTTP).
    pub offers_answered: u64,
    /// Offers str0m could not use (WebSocket: an `error` frame; HTTP: `400`/`422`).
    pub offers_refused: u64,
    /// WHIP/WHEP sessions ended because trickled candidates came faster than the session took
    /// them (its command queue was full).
    pub sessions_overrun: u64,
    /// Connections and sessions refused before their media connection, by reason (in the
    /// order of [`RefusedFor::ALL`]).
    pub refused: [u64; RefusedFor::ALL.len()],
    /// The WHIP endpoint's counters: trickle `PATCH`es and their candidates, ICE restarts done
    /// (`200`) and failed, sessions deleted, requests the endpoint refused itself.
    pub whip: EndpointStats,
    /// The WHEP endpoint's counters.
    pub whep: EndpointStats,
}

impl MediaStats {
    /// Refusals for `reason`.
    pub fn refused_for(&self, reason: RefusedFor) -> u64 {
        RefusedFor::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.refused[i])
    }
}

/// What every connection and route shares.
#[derive(Debug)]
struct Shared {
    streams: Arc<Streams>,
    peer: PeerSettings,
    ws: AxumWsConfig,
    /// One permit per media connection (WebSocket or WHIP/WHEP session).
    slots: Arc<Semaphore>,
    max_connections: usize,
    refusing: Arc<Semaphore>,
    next_conn: AtomicU64,
    counters: Arc<Counters>,
    /// `true` once [`MediaServer::shutdown`] was called; every connection holds a receiver
    /// ([`PeerSettings::shutdown`]).
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn next_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Media connections open now: each holds one of the slots.
    fn open_connections(&self) -> u64 {
        (self.max_connections - self.slots.available_permits()) as u64
    }
}

/// What [`MediaServer::shutdown`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MediaShutdown {
    /// Media connections (WebSocket clients and WHIP/WHEP sessions) open when it began.
    pub connections: u64,
    /// Of those, the ones that had ended by the end of the drain time.
    pub closed: u64,
    /// Connections still ending at the deadline (their tasks end on their own shortly after).
    pub unfinished: u64,
}

/// The media server: an axum [`Router`] (see [`MediaServer::router`]) and what it shares.
#[derive(Debug)]
pub struct MediaServer {
    shared: Arc<Shared>,
    whip: WhipEndpoint,
    whep: WhipEndpoint,
    metrics: Arc<Metrics>,
    serve: ServeConfig,
}

impl MediaServer {
    /// A server for `config`. Installs str0m's crypto provider for the process (once; later
    /// calls keep the first). Starts the WHIP and WHEP endpoints' tasks: call it inside a
    /// tokio runtime.
    pub fn new(config: MediaConfig) -> Self {
        install_crypto();
        let ping =
            (config.ping_interval > 0.0).then(|| Duration::from_secs_f64(config.ping_interval));
        let ws = AxumWsConfig::default()
            .with_max_message_size(config.max_frame_len)
            .with_ping_interval(ping);
        let max_connections = config.max_connections.max(1);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            streams: Arc::new(Streams::new(StreamLimits {
                max_streams: config.max_streams.max(1),
                max_viewers: config.max_viewers.max(1),
            })),
            peer: PeerSettings {
                rtc_ip: config.rtc_ip,
                media_queue: config.media_queue.max(1),
                negotiation: config.negotiation,
                session: config.session,
                ice_timeout: config.ice_timeout,
                shutdown: shutdown_rx,
            },
            ws,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            next_conn: AtomicU64::new(1),
            counters: Arc::new(Counters::default()),
            shutdown,
        });
        let endpoint = |config: whip::Config, kind: HttpKind| {
            let retry_after = config.retry_after;
            let sessions = config.max_sessions.max(max_connections);
            let config = config.with_max_sessions(sessions);
            let (endpoint, events) = WhipEndpoint::new(config);
            tokio::spawn(dispatch(
                kind,
                endpoint.clone(),
                events,
                shared.clone(),
                retry_after,
            ));
            endpoint
        };
        let whip = endpoint(config.whip, HttpKind::Whip);
        let whep = endpoint(config.whep, HttpKind::Whep);
        let mut metrics = Metrics::new();
        let (read_shared, read_whip, read_whep) = (shared.clone(), whip.clone(), whep.clone());
        metrics.collect("media_server", move |into| {
            scrape(into, &stats(&read_shared, &read_whip, &read_whep))
        });
        Self {
            shared,
            whip,
            whep,
            metrics: Arc::new(metrics),
            serve: config.serve,
        }
    }

    /// The stream table (for monitoring).
    pub fn streams(&self) -> &Streams {
        &self.shared.streams
    }

    /// The server's figures now.
    pub fn stats(&self) -> MediaStats {
        stats(&self.shared, &self.whip, &self.whep)
    }

    /// The routes (see the [module docs](self#routes)), to serve or to nest in another router.
    pub fn router(&self) -> Router {
        let state = AppState {
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
        };
        Router::new()
            .route("/", get(page))
            .route("/index.html", get(page))
            .route("/api/ws", get(websocket))
            .route("/healthz", get(operators))
            .route("/readyz", get(operators))
            .route("/metrics", get(operators))
            .with_state(state)
            .nest("/whip", self.whip.router())
            .nest("/whep", self.whep.router())
    }

    /// Serves [`router`](Self::router) on `listener`, over TLS with `tls` (see
    /// [`signaling_http::tls::load_pem`]; then the WebSocket is `wss://` and the page's origin
    /// `https://`), until the task is dropped.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        self.run_until(listener, tls, std::future::pending()).await;
    }

    /// Serves [`MediaServer::router`] like [`MediaServer::run`] until `signal` completes, then
    /// stops accepting and lets open HTTP connections finish within the serve configuration's
    /// drain time. Media connections are not touched: end them first with
    /// [`MediaServer::shutdown`], while the listener still answers (health checks get `503`
    /// then, rather than a closed port).
    pub async fn run_until(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> ServeReport {
        signaling_http::tls::serve(listener, self.router(), tls)
            .config(self.serve.clone())
            .with_graceful_shutdown(signal)
            .await
    }

    /// Shuts the media server down: `/healthz` and `/readyz` answer `503` from now on, new
    /// WebSocket connections and WHIP/WHEP offers are refused (`503`, counted as
    /// `shutting_down`), every WebSocket client is closed with 1001 (going away) and every
    /// WHIP/WHEP session ends (later requests for it get `404`). Returns once all media
    /// connections have ended, or at `drain`.
    pub async fn shutdown(&self, drain: Duration) -> MediaShutdown {
        let shared = &self.shared;
        let connections = shared.open_connections();
        shared.shutdown.send_replace(true);
        // Every connection holds one slot: all of them back means all connections ended.
        let all = u32::try_from(shared.max_connections).unwrap_or(u32::MAX);
        let ended = tokio::time::timeout(drain, shared.slots.acquire_many(all)).await;
        let unfinished = match ended {
            Ok(_) => 0,
            Err(_) => shared.open_connections(),
        };
        MediaShutdown {
            connections,
            closed: connections.saturating_sub(unfinished),
            unfinished,
        }
    }
}

/// The state of the server's own routes.
#[derive(Clone, Debug)]
struct AppState {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

fn stats(shared: &Shared, whip: &WhipEndpoint, whep: &WhipEndpoint) -> MediaStats {
    let c = &shared.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    MediaStats {
        connections: shared.open_connections(),
        max_connections: shared.max_connections as u64,
        streams: shared.streams.len() as u64,
        ws_sessions: load(&c.ws),
        whip_sessions: load(&c.whip),
        whep_sessions: load(&c.whep),
        offers_answered: load(&c.offers_answered),
        offers_refused: load(&c.offers_refused),
        sessions_overrun: load(&c.overrun),
        refused: c.refused.each_ref().map(load),
        whip: whip.stats(),
        whep: whep.stats(),
    }
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// The series of `GET /metrics` (see the [module docs](self#metrics)), read at scrape time.
fn scrape(scrape: &mut Scrape<'_>, stats: &MediaStats) -> std::fmt::Result {
    scrape.gauge(
        "signaling_media_connections",
        "Media connections open: WebSocket clients and WHIP/WHEP sessions.",
        stats.connections,
    )?;
    scrape.gauge(
        "signaling_media_max_connections",
        "Media connections at once, at most (--max-connections).",
        stats.max_connections,
    )?;
    scrape.gauge("signaling_media_streams", "Streams.", stats.streams)?;
    scrape.counters(
        "signaling_media_sessions",
        "Media connections opened, by API.",
        "api",
        &[
            ("ws", stats.ws_sessions),
            ("whip", stats.whip_sessions),
            ("whep", stats.whep_sessions),
        ],
    )?;
    scrape.counters(
        "signaling_media_offers",
        "Offers str0m answered or could not use.",
        "outcome",
        &[
            ("answered", stats.offers_answered),
            ("refused", stats.offers_refused),
        ],
    )?;
    scrape.counter(
        "signaling_media_sessions_overrun",
        "WHIP/WHEP sessions ended because trickled candidates came faster than the session took them.",
        stats.sessions_overrun,
    )?;
    let refused: Vec<(&str, u64)> = RefusedFor::ALL
        .iter()
        .map(|r| (r.as_str(), stats.refused_for(*r)))
        .collect();
    scrape.counters(
        "signaling_media_refused",
        "Connections and WHIP/WHEP offers refused before their media connection, by reason.",
        "reason",
        &refused,
    )?;
    let (whip, whep) = (&stats.whip, &stats.whep);
    for (name, help, read) in [
        (
            "signaling_media_http_sessions_created",
            "WHIP/WHEP sessions created (201).",
            (|s: &EndpointStats| s.created) as fn(&EndpointStats) -> u64,
        ),
        (
            "signaling_media_http_sessions_deleted",
            "WHIP/WHEP sessions deleted by their client (DELETE).",
            |s| s.deleted,
        ),
        (
            "signaling_media_http_requests_refused",
            "WHIP/WHEP requests the endpoint refused itself (4xx/5xx before the media server saw them).",
            |s| s.refused,
        ),
        (
            "signaling_media_http_trickles",
            "Trickle PATCHes taken (204).",
            |s| s.trickles,
        ),
        (
            "signaling_media_http_candidates",
            "Remote candidates trickled by PATCH.",
            |s| s.candidates,
        ),
        (
            "signaling_media_http_ice_restarts",
            "ICE restarts by PATCH answered 200.",
            |s| s.restarts,
        ),
        (
            "signaling_media_http_ice_restarts_failed",
            "ICE restarts by PATCH that failed.",
            |s| s.failed_restarts,
        ),
    ] {
        scrape.counters(
            name,
            help,
            "endpoint",
            &[("whip", read(whip)), ("whep", read(whep))],
        )?;
    }
    Ok(())
}

/// `GET /healthz`, `/readyz` and `/metrics` (see [`ops::answer`]). The server depends on
/// nothing that can be down: it is serving until it shuts down.
async fn operators(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    let health = if state.shared.shutting_down() {
        Health::ShuttingDown
    } else {
        Health::Serving
    };
    match ops::answer("GET", uri.path(), health, &state.metrics) {
        Some(answer) => {
            let status = answer
                .status
                .split(' ')
                .next()
                .and_then(|code| code.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [
                    (header::CONTENT_TYPE, answer.content_type),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                answer.body.into_owned(),
            )
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /api/ws`: the WebSocket API. Over `max_connections`: an `api/ws` error frame and 1013.
async fn websocket(State(state): State<AppState>, upgrade: WsUpgrade) -> Response {
    let shared = state.shared;
    if shared.shutting_down() {
        shared.counters.refused(RefusedFor::ShuttingDown);
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let roles = roles(upgrade.peer());
    let config = shared.ws.clone();
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        let Ok(refusal) = shared.refusing.clone().try_acquire_owned() else {
            // Too many refusals in flight as well: no upgrade.
            return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
        };
        shared.counters.refused(RefusedFor::TooManyConnections);
        return upgrade.accept(&config, &AllowAll, move |conn| async move {
            let message = "too many connections, try again later";
            peer::refuse(conn, CloseCode::TRY_AGAIN_LATER, message).await;
            drop(refusal);
        });
    };
    upgrade.accept(&config, &AllowAll, move |conn| async move {
        match roles {
            Err(message) => {
                tracing::info!(%message, "bad request");
                shared.counters.refused(RefusedFor::BadRequest);
                peer::refuse(conn, close_code::BAD_REQUEST, &message).await;
            }
            Ok(roles) => {
                shared.counters.ws.fetch_add(1, Ordering::Relaxed);
                let id = shared.next_conn();
                peer::serve(
                    conn,
                    id,
                    roles,
                    &shared.streams,
                    &shared.peer,
                    &shared.counters,
                )
                .await;
            }
        }
        drop(permit);
    })
}

/// Which HTTP endpoint a dispatcher serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HttpKind {
    /// `/whip/NAME`: publish into NAME, as `?dst=NAME`.
    Whip,
    /// `/whep/NAME`: watch NAME, as `?src=NAME`.
    Whep,
}

/// Reads one endpoint's events: an offer becomes a session task (admitted against the
/// connection and stream limits first); trickled candidates and ICE restarts go to their
/// session's task; a deleted session's task is told by its command queue closing.
async fn dispatch(
    kind: HttpKind,
    endpoint: WhipEndpoint,
    mut events: WhipEvents,
    shared: Arc<Shared>,
    retry_after: Duration,
) {
    // The sessions' command queues. Bounded by the connection slots: every entry belongs to a
    // session task holding one, and entries of ended tasks are pruned as new ones come.
    let mut sessions: HashMap<SessionId, mpsc::Sender<Command>> = HashMap::new();
    while let Some(event) = events.next().await {
        match event {
            WhipEvent::Offer(request) => {
                let offer = request.offer();
                if shared.shutting_down() {
                    shared.counters.refused(RefusedFor::ShuttingDown);
                    request.reject(Rejection::Unavailable(retry_after));
                    continue;
                }
                if let Err(message) = valid_name(&offer.stream) {
                    shared.counters.refused(RefusedFor::BadRequest);
                    request.reject(Rejection::BadRequest(message));
                    continue;
                }
                let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
                    shared.counters.refused(RefusedFor::TooManyConnections);
                    request.reject(Rejection::Unavailable(retry_after));
                    continue;
                };
                let name = offer.stream.clone();
                let roles = match kind {
                    HttpKind::Whip => Roles {
                        src: None,
                        dst: Some(name),
                    },
                    HttpKind::Whep => Roles {
                        src: Some(name),
                        dst: None,
                    },
                };
                let (tx, commands) = mpsc::channel(SESSION_COMMANDS);
                sessions.retain(|_, tx| !tx.is_closed());
                sessions.insert(offer.session.clone(), tx);
                let signaling = HttpSignaling {
                    endpoint: endpoint.clone(),
                    session: offer.session.clone(),
                    commands,
                    retry_after,
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let conn = shared.next_conn();
                    peer::serve_http(
                        request,
                        signaling,
                        conn,
                        roles,
                        &shared.streams,
                        &shared.peer,
                        &shared.counters,
                    )
                    .await;
                    drop(permit);
                });
            }
            WhipEvent::Event(whip::Event::Candidates {
                session,
                candidates,
                end_of_candidates,
            }) => {
                let command = Command::Candidates {
                    candidates,
                    end_of_candidates,
                };
                let Some(tx) = sessions.get(&session) else {
                    continue;
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(command) {
                    // The PATCH was answered 204: its candidates are not dropped quietly.
                    tracing::warn!(%session, "trickled candidates overran the session; it ends");
                    shared.counters.overrun();
                    sessions.remove(&session);
                    endpoint.close(&session);
                }
            }
            WhipEvent::Restart(request) => {
                let session = request.restart().session.clone();
                let Some(tx) = sessions.get(&session) else {
                    request.fail(RestartFailure::Internal("the session has ended".to_owned()));
                    continue;
                };
                match tx.try_send(Command::Restart(request)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(Command::Restart(request))) => {
                        request.fail(RestartFailure::Unavailable(Duration::from_secs(1)));
                    }
                    Err(mpsc::error::TrySendError::Closed(Command::Restart(request))) => {
                        request.fail(RestartFailure::Internal("the session has ended".to_owned()));
                    }
                    Err(_) => {}
                }
            }
            WhipEvent::Event(whip::Event::Closed { session, cause }) => {
                tracing::debug!(%session, ?cause, "session closed");
                // Its task sees its command queue close and ends.
                sessions.remove(&session);
            }
            other => {
                // No counter-offers are made, so no answers to them come.
                tracing::debug!(event = ?other, "endpoint event ignored");
            }
        }
    }
}

/// Whether `name` may name a stream: 1 to [`MAX_NAME_LEN`] bytes of UTF-8 without control
/// characters.
fn valid_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(format!(
            "a stream name is 1 to {MAX_NAME_LEN} bytes of UTF-8 without control characters"
        ))
    }
}

/// The roles a connection's URL asks for, or why it is a bad request.
fn roles(peer: &signaling::transport::PeerInfo) -> Result<Roles, String> {
    let name = |key: &str| -> Result<Option<String>, String> {
        match (peer.query_param(key), peer.query_value(key)) {
            (None, _) => Ok(None),
            (Some(_), value) => {
                let n = value.unwrap_or_default();
                valid_name(&n)
                    .map(|()| Some(n))
                    .map_err(|e| format!("{key}: {e}"))
            }
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
