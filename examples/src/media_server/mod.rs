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
use std::collections::HashMap;
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
use signaling_http::tls::ServeConfig;
use signaling_http::whip::{WhipEndpoint, WhipEvent, WhipEvents};
use signaling_http::ws::{AxumWsConfig, WsUpgrade};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

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

/// Commands (trickled candidates, ICE restarts) waiting for one WHIP or WHEP session's task;
/// more are dropped (candidates: the client's checks still reach the server) or refused
/// (restarts: `503`).
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

/// Counters of the media server, monotonic since it started (see [`MediaServer::stats`]).
#[derive(Debug, Default)]
pub struct Counters {
    ws_connections: AtomicU64,
    whip_sessions: AtomicU64,
    whep_sessions: AtomicU64,
    offers_answered: AtomicU64,
    offers_refused: AtomicU64,
    sessions_refused: AtomicU64,
    ice_restarts: AtomicU64,
    ice_restarts_failed: AtomicU64,
}

impl Counters {
    pub(crate) fn offer_answered(&self) {
        self.offers_answered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn offer_refused(&self) {
        self.offers_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn session_refused(&self) {
        self.sessions_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ice_restart(&self, done: bool) {
        let counter = if done {
            &self.ice_restarts
        } else {
            &self.ice_restarts_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What [`MediaServer::stats`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MediaStats {
    /// Media connections open now (WebSocket clients and WHIP/WHEP sessions).
    pub connections: u64,
    /// Streams now.
    pub streams: u64,
    /// WebSocket connections served (not counting those refused before their session).
    pub ws_connections: u64,
    /// WHIP sessions opened (offers taken for an `Rtc`; answered or not).
    pub whip_sessions: u64,
    /// WHEP sessions opened.
    pub whep_sessions: u64,
    /// Offers str0m answered (WebSocket and HTTP).
    pub offers_answered: u64,
    /// Offers str0m refused (WebSocket: an `error` frame; HTTP: `400`/`422`).
    pub offers_refused: u64,
    /// WHIP/WHEP offers refused before str0m saw them (stream taken `409`, full `503`, bad
    /// name `400`).
    pub sessions_refused: u64,
    /// ICE restarts done (`200` to a restart `PATCH`).
    pub ice_restarts: u64,
    /// ICE restarts that failed.
    pub ice_restarts_failed: u64,
    /// The WHIP endpoint's counters (trickle `PATCH`es, candidates, deletions, ...).
    #[serde(skip)]
    pub whip: EndpointStats,
    /// The WHEP endpoint's counters.
    #[serde(skip)]
    pub whep: EndpointStats,
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
}

impl Shared {
    fn next_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }
}

/// The media server: an axum [`Router`] (see [`MediaServer::router`]) and what it shares.
#[derive(Debug)]
pub struct MediaServer {
    shared: Arc<Shared>,
    whip: WhipEndpoint,
    whep: WhipEndpoint,
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
            },
            ws,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            next_conn: AtomicU64::new(1),
            counters: Arc::new(Counters::default()),
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
        Self {
            shared,
            whip,
            whep,
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
            whip: self.whip.clone(),
            whep: self.whep.clone(),
        };
        Router::new()
            .route("/", get(page))
            .route("/index.html", get(page))
            .route("/api/ws", get(websocket))
            .route("/api/stats", get(stats_json))
            .with_state(state)
            .nest("/whip", self.whip.router())
            .nest("/whep", self.whep.router())
    }

    /// Serves [`router`](Self::router) on `listener` until the task is dropped.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        signaling_http::tls::serve(listener, self.router(), None)
            .config(self.serve.clone())
            .await;
    }
}

/// The state of the server's own routes.
#[derive(Clone, Debug)]
struct AppState {
    shared: Arc<Shared>,
    whip: WhipEndpoint,
    whep: WhipEndpoint,
}

fn stats(shared: &Shared, whip: &WhipEndpoint, whep: &WhipEndpoint) -> MediaStats {
    let c = &shared.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    MediaStats {
        connections: (shared.max_connections - shared.slots.available_permits()) as u64,
        streams: shared.streams.len() as u64,
        ws_connections: load(&c.ws_connections),
        whip_sessions: load(&c.whip_sessions),
        whep_sessions: load(&c.whep_sessions),
        offers_answered: load(&c.offers_answered),
        offers_refused: load(&c.offers_refused),
        sessions_refused: load(&c.sessions_refused),
        ice_restarts: load(&c.ice_restarts),
        ice_restarts_failed: load(&c.ice_restarts_failed),
        whip: whip.stats(),
        whep: whep.stats(),
    }
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// `GET /api/stats`: [`MediaStats`] as JSON, with the WHIP and WHEP endpoints' trickle and
/// restart counters.
async fn stats_json(State(state): State<AppState>) -> Response {
    let figures = stats(&state.shared, &state.whip, &state.whep);
    let endpoint = |s: EndpointStats| {
        serde_json::json!({
            "offers": s.offers, "created": s.created, "rejected": s.rejected,
            "refused": s.refused, "deleted": s.deleted, "expired": s.expired,
            "trickles": s.trickles, "candidates": s.candidates,
            "dropped_candidates": s.dropped_candidates, "restarts": s.restarts,
            "failed_restarts": s.failed_restarts,
        })
    };
    let mut body = serde_json::to_value(figures).unwrap_or_default();
    body["whip"] = endpoint(figures.whip);
    body["whep"] = endpoint(figures.whep);
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /api/ws`: the WebSocket API. Over `max_connections`: an `api/ws` error frame and 1013.
async fn websocket(State(state): State<AppState>, upgrade: WsUpgrade) -> Response {
    let shared = state.shared;
    let roles = roles(upgrade.peer());
    let config = shared.ws.clone();
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        let Ok(refusal) = shared.refusing.clone().try_acquire_owned() else {
            // Too many refusals in flight as well: no upgrade.
            return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
        };
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
                peer::refuse(conn, close_code::BAD_REQUEST, &message).await;
            }
            Ok(roles) => {
                shared
                    .counters
                    .ws_connections
                    .fetch_add(1, Ordering::Relaxed);
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
                if let Err(message) = valid_name(&offer.stream) {
                    shared.counters.session_refused();
                    request.reject(Rejection::BadRequest(message));
                    continue;
                }
                let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
                    shared.counters.session_refused();
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
                let counter = match kind {
                    HttpKind::Whip => &shared.counters.whip_sessions,
                    HttpKind::Whep => &shared.counters.whep_sessions,
                };
                counter.fetch_add(1, Ordering::Relaxed);
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
                if let Some(Err(e)) = sessions.get(&session).map(|tx| tx.try_send(command)) {
                    tracing::debug!(%session, error = %e, "trickled candidates dropped");
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
