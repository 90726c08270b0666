//! WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) session resources, sans-IO.
//!
//! WHIP and WHEP are the IETF's HTTP signaling for WebRTC: a client `POST`s an SDP offer to an
//! *endpoint* URL and gets `201 Created`, the SDP answer and a `Location`: the URL of the
//! *session* it created. It may then trickle candidates and restart ICE with `PATCH` requests
//! carrying `application/trickle-ice-sdpfrag` bodies (RFC 8840, see [`sdpfrag`](crate::sdpfrag)),
//! and ends the session with `DELETE`. WHIP publishes media into a server (ingest); WHEP plays
//! media out of it (egress), and adds a server counter-offer (`406`) and a "not live yet"
//! answer (`409` + `Retry-After`).
//!
//! [`Endpoint`] is that protocol's state machine for every session of one endpoint kind. It
//! reads requests ([`Request`]) and writes responses (`http::Response<String>`); it never
//! touches a socket or a clock. What only the application can decide (the SDP answer, an ICE
//! restart of its ICE agent) comes out as an [`Outcome`] the application completes with a
//! method call ([`Endpoint::accept`], [`Endpoint::restarted`], …), which returns the response
//! to send. What the application only needs to hear (trickled candidates, a session deleted)
//! comes out of [`Endpoint::poll_event`].
//!
//! ```
//! use std::time::Instant;
//! use http::{HeaderMap, HeaderValue, Method, StatusCode};
//! use signaling_core::whip::{Config, Endpoint, Outcome, Request};
//!
//! let mut endpoint = Endpoint::new(Config::whip(), [7; 32]);
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", HeaderValue::from_static("application/sdp"));
//! let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
//!              a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
//!              m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n";
//! let request = Request::endpoint(&Method::POST, "/whip/cam", "cam", &headers, offer.as_bytes());
//! let Outcome::Offer(offer) = endpoint.handle(&request, Instant::now()) else { panic!() };
//! // ... hand `offer.sdp` to the media stack, get its answer ...
//! # let answer = offer.sdp.replace("sendonly", "recvonly");
//! let response = endpoint.accept(&offer.session, &answer, 1_700_000_000).unwrap();
//! assert_eq!(response.status(), StatusCode::CREATED);
//! assert!(response.headers()["location"].to_str().unwrap().starts_with("/whip/cam/"));
//! ```
//!
//! # What is answered, and where the texts say so
//!
//! Sections are RFC 9725's (WHIP); the WHEP draft's are the same in substance unless noted.
//!
//! | request | answer |
//! |---|---|
//! | `POST` endpoint, `application/sdp` offer | [`Outcome::Offer`]; then `201` + `Location` + `ETag` + `Accept-Patch` + `Link` (§4.2, §4.3.1, §4.6) |
//! | `POST` with another `Content-Type` | `415` + `Accept-Post: application/sdp` |
//! | `POST` body over [`Config::max_sdp_len`] | `413` |
//! | `POST` body not an SDP with at least one `m=` line | `400` |
//! | `POST` when [`Config::max_sessions`] sessions exist | `503` + `Retry-After` (§4.5) |
//! | `POST`, WHEP, the application sends a counter-offer | `406` + `Location` + the counter-offer (WHEP §4.2) |
//! | `POST`, WHEP, the stream is not live | `409` + `Retry-After` (WHEP §4.2) |
//! | `GET`/`HEAD` on an endpoint or a session | `204`: the resources have no representation (§4.1) |
//! | `OPTIONS` | `200` + `Accept-Post`/`Accept-Patch` + CORS (§4.2); `Link` only when asked to and not a CORS preflight (§4.6) |
//! | `PATCH` when neither trickle nor restarts are supported | `405` + `Allow` (§4.3.1) |
//! | `PATCH` of the kind (trickle / restart) that is not supported | `422` (§4.3.1) |
//! | `PATCH` without `If-Match` | `428` in [`EtagMode::Strict`]; taken as the current ICE session in [`EtagMode::Lenient`] (§4.3.1) |
//! | `PATCH` with an `If-Match` that is not the current entity-tag | `412` (§4.3.1) |
//! | `PATCH` with another `Content-Type` | `415` + `Accept-Patch` |
//! | `PATCH` body not an sdpfrag (e.g. JSON) | `400` naming the problem |
//! | `PATCH` trickle | `204`, no body, no `ETag`; candidates of another ufrag are dropped silently (§4.3.2) |
//! | `PATCH` with `If-Match: *` (or `"*"`, as the prose writes it), or with a new ufrag/pwd | [`Outcome::Restart`]; then `200` + sdpfrag + new `ETag`, or an error that keeps the session and its ICE session (§4.3.3) |
//! | `PATCH` `application/sdp`, WHEP, after a counter-offer | `204`; [`Event::Answer`] (WHEP §4.2) |
//! | `DELETE` session | `200` (§4.2); `If-Match` is ignored (§4.3.1) |
//! | `POST`/`PUT` on a session, `PUT`/`PATCH`/`DELETE` on an endpoint | `405` + `Allow` |
//! | any request for an unknown session | `404` |
//! | a request whose `Origin` is not allowed | `403` |
//!
//! # Entity-tags
//!
//! Every session has a strong entity-tag for its current ICE session, sent in the `201` and in
//! every `200` of an ICE restart. Servers in the field disagree on what to do with a trickle
//! `PATCH` that has no `If-Match`: [`EtagMode::Strict`] (the default) answers `428` as the
//! texts say; [`EtagMode::Lenient`] takes it as meant for the current ICE session, for clients
//! written against servers that ignore `If-Match`. Both refuse a *wrong* entity-tag with `412`:
//! that request belongs to an ICE session that no longer exists.
//!
//! # CORS
//!
//! Browsers' WHIP/WHEP clients run on other origins than the server. Responses to a request
//! with an allowed `Origin` carry `Access-Control-Allow-Origin` and expose `Location`, `ETag`,
//! `Link`, `Accept-Patch`, `Accept-Post` and `Retry-After`, without which a page cannot read the
//! session URL or the entity-tag. Preflights are answered with the methods and the request
//! headers (`Authorization`, `Content-Type`, `If-Match`) the protocol uses.
//!
//! # Bounds
//!
//! Sessions ([`Config::max_sessions`], counting those waiting for the application's answer),
//! SDP size, sdpfrag size and candidates ([`Config::frag_limits`]), candidates per session
//! ([`Config::max_candidates_per_session`] per ICE session; more are dropped silently, as for candidates the
//! server cannot use) and queued events ([`Config::max_events`]; a `PATCH` that finds the
//! queue full is answered `503` + `Retry-After` and nothing of it is taken). An offer the
//! application does not answer within [`Config::answer_timeout`] is dropped by
//! [`Endpoint::handle_timeout`], as is a WHEP counter-offer not answered within
//! [`Config::counter_offer_ttl`].
//!
//! # Session URLs
//!
//! A session's URL is the endpoint's path, `/`, and a 22-character id drawn from a keyed
//! pseudo-random function (HMAC-SHA1 of a counter under the key given to [`Endpoint::new`]):
//! knowing one session's URL tells nothing of another's. `Location` is sent as an absolute path
//! (a relative reference, which clients resolve against the request's URL, RFC 9110 §10.2.2),
//! so the same answer is right behind any host name or proxy. When the `POST` carried a bearer
//! token (RFC 6750), the session's `PATCH` and `DELETE` must carry the same one (`401`
//! otherwise).
pub mod client;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use rustc_hash::FxHashMap;
use sha1::Sha1;

use crate::candidate::Candidate;
use crate::ice::IceServersConfig;
use crate::sdp::SdpFacts;
use crate::sdpfrag::{FragLimits, FragMedia, IceParams, SdpFrag, ValueError};

/// The media type of SDP offers and answers.
pub const SDP_MEDIA_TYPE: &str = "application/sdp";

/// The request headers a browser client needs to send, for CORS preflights.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match";

/// The response headers a browser client must be able to read.
const EXPOSE_HEADERS: &str = "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After";

/// Which protocol an [`Endpoint`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// WHIP, RFC 9725: the client publishes media into the server.
    Whip,
    /// WHEP, draft-ietf-wish-whep: the client plays media out of the server.
    Whep,
}

impl Protocol {
    /// `"WHIP"` or `"WHEP"`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Whip => "WHIP",
            Protocol::Whep => "WHEP",
        }
    }
}

/// How a trickle `PATCH` without `If-Match` is answered (see the
/// [module docs](self#entity-tags)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EtagMode {
    /// `428 Precondition Required`, as RFC 9725 §4.3.1 says.
    #[default]
    Strict,
    /// Taken as meant for the current ICE session.
    Lenient,
}

/// Settings of an [`Endpoint`]. Every bound is here.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The protocol spoken.
    pub protocol: Protocol,
    /// Trickle ICE by `PATCH` is supported. Default: yes.
    pub trickle: bool,
    /// ICE restarts by `PATCH` are supported. Default: yes.
    pub ice_restart: bool,
    /// How a `PATCH` without `If-Match` is answered. Default: [`EtagMode::Strict`].
    pub etag: EtagMode,
    /// Sessions at once, including offers the application has not answered yet; a `POST`
    /// beyond it is answered `503`. Default: 256.
    pub max_sessions: usize,
    /// Largest SDP offer (or WHEP answer) accepted, in bytes; larger ones get `413`.
    /// Default: 64 KiB.
    pub max_sdp_len: usize,
    /// Bounds on one `PATCH` body.
    pub frag_limits: FragLimits,
    /// Remote candidates taken per ICE session of a session (an ICE restart starts a new
    /// count); more are dropped silently. Default: 64.
    pub max_candidates_per_session: usize,
    /// Events queued for the application; a `PATCH` that would overflow it is answered `503`.
    /// Default: 1024.
    pub max_events: usize,
    /// How long the application may take to answer an offer or an ICE restart. Default: 10 s.
    pub answer_timeout: Duration,
    /// How long a WHEP counter-offer stays valid (the draft's default is 30 s; another value is
    /// sent as the `valid-until` parameter). Default: 30 s.
    pub counter_offer_ttl: Duration,
    /// The `Retry-After` of a `503` when the endpoint is full. Default: 5 s.
    pub retry_after: Duration,
    /// Origins whose browsers may use the endpoint; `None` allows any (`*`). A request with an
    /// `Origin` header not in the list is answered `403`. Requests without `Origin` (non-browser
    /// clients) are not affected. Default: `None`.
    pub allowed_origins: Option<Vec<String>>,
    /// STUN/TURN servers handed out in `Link` headers of the `201` (TURN credentials issued per
    /// session, the session id as the user). Default: none.
    pub ice_servers: Option<IceServersConfig>,
    /// Also send the `Link` headers on non-preflight `OPTIONS` responses (RFC 9725 §4.6 allows
    /// it for clients that cannot change their ICE servers after creating the offer, but does
    /// not recommend it). Default: no.
    pub ice_servers_on_options: bool,
}

impl Config {
    /// Defaults for a WHIP endpoint.
    pub fn whip() -> Self {
        Self::new(Protocol::Whip)
    }

    /// Defaults for a WHEP endpoint.
    pub fn whep() -> Self {
        Self::new(Protocol::Whep)
    }

    /// Defaults for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            trickle: true,
            ice_restart: true,
            etag: EtagMode::Strict,
            max_sessions: 256,
            max_sdp_len: 64 * 1024,
            frag_limits: FragLimits::default(),
            max_candidates_per_session: 64,
            max_events: 1024,
            answer_timeout: Duration::from_secs(10),
            counter_offer_ttl: Duration::from_secs(30),
            retry_after: Duration::from_secs(5),
            allowed_origins: None,
            ice_servers: None,
            ice_servers_on_options: false,
        }
    }

    /// Sets the entity-tag mode.
    pub fn with_etag(mut self, mode: EtagMode) -> Self {
        self.etag = mode;
        self
    }

    /// Sets which `PATCH` kinds are supported.
    pub fn with_patch(mut self, trickle: bool, ice_restart: bool) -> Self {
        self.trickle = trickle;
        self.ice_restart = ice_restart;
        self
    }

    /// Sets the session bound.
    pub fn with_max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions;
        self
    }

    /// Sets the allowed browser origins (`None`: any).
    pub fn with_allowed_origins(mut self, origins: Option<Vec<String>>) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// Sets the STUN/TURN servers handed out in `Link` headers.
    pub fn with_ice_servers(mut self, servers: Option<IceServersConfig>) -> Self {
        self.ice_servers = servers;
        self
    }

    /// Sets how long the application may take to answer.
    pub fn with_answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }
}

/// A session's id: the last segment of its URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        SessionId(s.to_owned())
    }
}

/// Which resource a request is for. The HTTP layer routes; the endpoint only needs to know
/// which kind of URL matched.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// The endpoint URL of stream `stream` (WHIP: publish into it; WHEP: play it).
    Endpoint {
        /// The stream's name, as the route captured it.
        stream: &'a str,
    },
    /// A session URL.
    Session {
        /// The session id, as the route captured it.
        id: &'a str,
    },
}

/// One HTTP request, as the endpoint needs it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request path, without the query: a session's `Location` is this path, `/`, its id.
    pub path: &'a str,
    /// Which resource the path is.
    pub target: Target<'a>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request for the endpoint URL of `stream` at `path`.
    pub fn endpoint(
        method: &'a Method,
        path: &'a str,
        stream: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Self {
            method,
            path,
            target: Target::Endpoint { stream },
            headers,
            body,
        }
    }

    /// A request for the session `id`.
    pub fn session(
        method: &'a Method,
        path: &'a str,
        id: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Self {
            method,
            path,
            target: Target::Session { id },
            headers,
            body,
        }
    }

    fn header(&self, name: HeaderName) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What [`Endpoint::handle`] made of a request.
#[derive(Debug)]
#[must_use]
pub enum Outcome {
    /// Send this response.
    Respond(Response<String>),
    /// A new session's offer: answer it with [`Endpoint::accept`], [`Endpoint::counter_offer`]
    /// (WHEP), [`Endpoint::not_live`] (WHEP) or [`Endpoint::reject`], and send the response
    /// that returns.
    Offer(Offer),
    /// An ICE restart: restart the session's ICE agent with the new remote credentials and
    /// candidates, then call [`Endpoint::restarted`], or [`Endpoint::restart_failed`] (the
    /// session keeps its current ICE session).
    Restart(Restart),
}

/// A client's offer, waiting for the application's answer.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The session it creates.
    pub session: SessionId,
    /// The stream the endpoint URL named.
    pub stream: String,
    /// The SDP offer (checked to be an SDP with at least one `m=` section).
    pub sdp: String,
    /// The bearer token of the request's `Authorization` header, if any, for the application
    /// to check (refuse with [`Rejection::Unauthorized`]).
    pub bearer: Option<String>,
}

/// An ICE restart asked for by the client, waiting for the application.
#[derive(Clone, Debug)]
pub struct Restart {
    /// The session.
    pub session: SessionId,
    /// The client's new ICE username fragment.
    pub ufrag: String,
    /// The client's new ICE password.
    pub pwd: String,
    /// The client's candidates of the new ICE session, with their `mid`s.
    pub candidates: Vec<(Option<String>, Candidate)>,
    /// The client has no more candidates.
    pub end_of_candidates: bool,
}

/// The server's side of an ICE restart, for [`Endpoint::restarted`].
#[derive(Clone, Debug, Default)]
pub struct IceAnswer {
    /// The server's new ICE username fragment.
    pub ufrag: String,
    /// The server's new ICE password.
    pub pwd: String,
    /// The server is ICE lite.
    pub lite: bool,
    /// The server's `ice-options`, as in its SDP answer.
    pub options: Option<String>,
    /// The server's candidates (WHIP/WHEP servers gather all before answering).
    pub candidates: Vec<Candidate>,
}

/// Why the application refuses an offer, for [`Endpoint::reject`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// `400`: the offer cannot be used as sent.
    BadRequest(String),
    /// `401` + `WWW-Authenticate: Bearer`: no or a wrong bearer token.
    Unauthorized,
    /// `403`: the client may not use this stream.
    Forbidden,
    /// `404`: no such stream.
    NotFound,
    /// `406`: the number or kind of tracks is not supported (RFC 9725 §4.4).
    NotAcceptable(String),
    /// `409`: the stream is taken (a WHIP stream with a publisher already).
    Conflict(String),
    /// `422`: the offer is well formed but not usable (e.g. `a=setup:active` not supported,
    /// RFC 9725 §4.4).
    Unprocessable(String),
    /// `503` + `Retry-After`: overloaded; try later (RFC 9725 §4.5).
    Unavailable(Duration),
    /// `500`: the media stack failed.
    Internal(String),
}

/// Why an ICE restart failed, for [`Endpoint::restart_failed`]. Either way the session and its
/// current ICE session stay (RFC 9725 §4.3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartFailure {
    /// `422`: the request's ICE information cannot be used.
    Unprocessable(String),
    /// `503` + `Retry-After`: try again later.
    Unavailable(Duration),
    /// `500`: the ICE agent failed.
    Internal(String),
}

/// Something the application needs to hear of.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Trickled candidates for the session's current ICE session (already `204`-ed).
    Candidates {
        /// The session.
        session: SessionId,
        /// The candidates, with the `mid` of the section that carried them.
        candidates: Vec<(Option<String>, Candidate)>,
        /// The client has no more candidates for this ICE session.
        end_of_candidates: bool,
    },
    /// A WHEP player answered the server's counter-offer.
    Answer {
        /// The session.
        session: SessionId,
        /// The player's SDP answer.
        sdp: String,
    },
    /// The session ended.
    Closed {
        /// The session.
        session: SessionId,
        /// Why.
        cause: CloseCause,
    },
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCause {
    /// The client sent `DELETE`.
    Deleted,
    /// A WHEP counter-offer was not answered in time.
    Expired,
}

/// Why a completion call ([`Endpoint::accept`], …) could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompletionError {
    /// The session is gone (deleted, timed out) or is not waiting for this call.
    #[error("session {0} is not waiting for this")]
    NotWaiting(SessionId),
    /// The SDP given is not an SDP with at least one `m=` section.
    #[error("the SDP is not usable: {0}")]
    BadSdp(String),
    /// A WHEP-only call on a WHIP endpoint.
    #[error("only a WHEP endpoint can do this")]
    NotWhep,
    /// The ICE parameters given cannot be written in an sdpfrag.
    #[error("the ICE parameters are not valid: {0}")]
    BadIce(#[from] ValueError),
}

/// Counters of an [`Endpoint`] (monotonic since it was made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Offers handed to the application.
    pub offers: u64,
    /// Sessions created (`201`).
    pub created: u64,
    /// WHEP counter-offers sent (`406`).
    pub counter_offers: u64,
    /// Offers refused by the application (including WHEP's `409`).
    pub rejected: u64,
    /// Requests refused by the endpoint itself (4xx/5xx other than the application's).
    pub refused: u64,
    /// Sessions deleted by their client.
    pub deleted: u64,
    /// Offers, restarts and counter-offers that timed out.
    pub expired: u64,
    /// Trickle `PATCH`es taken.
    pub trickles: u64,
    /// Remote candidates taken.
    pub candidates: u64,
    /// Remote candidates dropped (another ICE session, or over the per-session bound).
    pub dropped_candidates: u64,
    /// ICE restarts completed.
    pub restarts: u64,
    /// ICE restarts the application could not do.
    pub failed_restarts: u64,
}

#[derive(Debug)]
enum State {
    /// Waiting for the application's answer to the offer.
    Offered { since: Instant },
    /// A WHEP counter-offer was sent; waiting for the player's answer.
    CounterOffered { until: Instant },
    /// Established.
    Active,
}

#[derive(Debug)]
struct PendingRestart {
    since: Instant,
    ufrag: String,
    pwd: String,
    /// The client's request, whose first section the answer echoes.
    request: SdpFrag,
    /// The request's `Origin` (allowed), for the CORS headers of the answer.
    origin: Option<String>,
}

#[derive(Debug)]
struct Session {
    path: String,
    state: State,
    etag: String,
    remote_ufrag: Option<String>,
    remote_pwd: Option<String>,
    restart: Option<PendingRestart>,
    /// The offer's first m-section (the BUNDLE tag), for restart answers to requests without one.
    section: Option<FragMedia>,
    candidates: usize,
    bearer: Option<String>,
    /// The `POST`'s `Origin` (allowed), for the CORS headers of the answer to it.
    origin: Option<String>,
}

/// The WHIP or WHEP state machine of one endpoint kind: every session of it. See the
/// [module docs](self).
pub struct Endpoint {
    config: Config,
    prf: Hmac<Sha1>,
    counter: u64,
    sessions: FxHashMap<SessionId, Session>,
    events: VecDeque<Event>,
    stats: EndpointStats,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("protocol", &self.config.protocol)
            .field("sessions", &self.sessions.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint with `config`. `key` keys the session ids and entity-tags: give it 32 random
    /// bytes (a predictable key makes session URLs guessable).
    pub fn new(config: Config, key: [u8; 32]) -> Self {
        let prf = Hmac::<Sha1>::new_from_slice(&key).expect("HMAC takes keys of any length");
        Self {
            config,
            prf,
            counter: 0,
            sessions: FxHashMap::default(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sessions at the moment, including those waiting for the application.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `session` exists.
    pub fn contains(&self, session: &SessionId) -> bool {
        self.sessions.contains_key(session)
    }

    /// The counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handles one request at `now`.
    pub fn handle(&mut self, request: &Request<'_>, now: Instant) -> Outcome {
        let origin = request.header(header::ORIGIN);
        let allow_origin = match origin {
            None => None,
            Some(o) if self.origin_allowed(o) => Some(o),
            Some(_) => {
                let response = self.plain(StatusCode::FORBIDDEN, "origin not allowed");
                return self.refuse(response);
            }
        };
        let outcome = match request.target {
            Target::Endpoint { stream } => self.on_endpoint(request, stream, now),
            Target::Session { id } => self.on_session(request, id, now),
        };
        match outcome {
            Outcome::Respond(mut response) => {
                self.add_cors(response.headers_mut(), allow_origin);
                Outcome::Respond(response)
            }
            other => other,
        }
    }

    /// Completes an [`Outcome::Offer`] with the application's SDP answer: `201 Created`.
    /// `unix_time` (seconds) dates the TURN credentials of the `Link` headers.
    pub fn accept(
        &mut self,
        session: &SessionId,
        answer: &str,
        unix_time: u64,
    ) -> Result<Response<String>, CompletionError> {
        self.offered(session)?;
        check_sdp(answer, self.config.max_sdp_len)?;
        let s = self.sessions.get_mut(session).expect("checked above");
        s.state = State::Active;
        let location = format!("{}/{}", s.path.trim_end_matches('/'), session);
        let etag = s.etag.clone();
        let origin = s.origin.clone();
        let mut response = self.with_body(StatusCode::CREATED, SDP_MEDIA_TYPE, answer.to_owned());
        let headers = response.headers_mut();
        self.add_cors(headers, origin.as_deref());
        insert(headers, header::LOCATION, &location);
        insert(headers, header::ETAG, &etag);
        if self.patch_supported() {
            insert(headers, ACCEPT_PATCH, crate::sdpfrag::MEDIA_TYPE);
        }
        self.add_links(headers, session, unix_time);
        self.add_expose(headers);
        self.stats.created += 1;
        Ok(response)
    }

    /// Completes an [`Outcome::Offer`] of a WHEP endpoint with the server's own offer:
    /// `406 Not Acceptable` + `Location` + the counter-offer. The player answers by `PATCH`ing
    /// the session with `application/sdp` ([`Event::Answer`]) within
    /// [`Config::counter_offer_ttl`]. `unix_time` dates the `valid-until` parameter.
    pub fn counter_offer(
        &mut self,
        session: &SessionId,
        offer: &str,
        now: Instant,
        unix_time: u64,
    ) -> Result<Response<String>, CompletionError> {
        if self.config.protocol != Protocol::Whep {
            return Err(CompletionError::NotWhep);
        }
        self.offered(session)?;
        check_sdp(offer, self.config.max_sdp_len)?;
        let ttl = self.config.counter_offer_ttl;
        let s = self.sessions.get_mut(session).expect("checked above");
        s.state = State::CounterOffered { until: now + ttl };
        s.remote_ufrag = None;
        s.remote_pwd = None;
        let location = format!("{}/{}", s.path.trim_end_matches('/'), session);
        let etag = s.etag.clone();
        let origin = s.origin.clone();
        let content_type = if ttl == DEFAULT_COUNTER_OFFER_TTL {
            SDP_MEDIA_TYPE.to_owned()
        } else {
            let until = std::time::UNIX_EPOCH + Duration::from_secs(unix_time) + ttl;
            format!(
                "{SDP_MEDIA_TYPE}; valid-until=\"{}\"",
                httpdate::fmt_http_date(until)
            )
        };
        let mut response = self.with_body(StatusCode::NOT_ACCEPTABLE, "", offer.to_owned());
        let headers = response.headers_mut();
        self.add_cors(headers, origin.as_deref());
        insert(headers, header::CONTENT_TYPE, &content_type);
        insert(headers, header::LOCATION, &location);
        insert(headers, header::ETAG, &etag);
        insert(headers, ACCEPT_PATCH, SDP_MEDIA_TYPE);
        self.add_links(headers, session, unix_time);
        self.add_expose(headers);
        self.stats.counter_offers += 1;
        Ok(response)
    }

    /// Completes an [`Outcome::Offer`] of a WHEP endpoint whose stream is not live:
    /// `409 Conflict` + `Retry-After` (WHEP §4.2). The session is dropped.
    pub fn not_live(
        &mut self,
        session: &SessionId,
        retry_after: Duration,
    ) -> Result<Response<String>, CompletionError> {
        if self.config.protocol != Protocol::Whep {
            return Err(CompletionError::NotWhep);
        }
        self.offered(session)?;
        let origin = self.sessions.remove(session).and_then(|s| s.origin);
        self.stats.rejected += 1;
        let mut response = self.plain(StatusCode::CONFLICT, "the stream is not live");
        insert_retry_after(response.headers_mut(), retry_after);
        self.add_cors(response.headers_mut(), origin.as_deref());
        self.add_expose(response.headers_mut());
        Ok(response)
    }

    /// Completes an [`Outcome::Offer`] with a refusal. The session is dropped.
    pub fn reject(
        &mut self,
        session: &SessionId,
        rejection: Rejection,
    ) -> Result<Response<String>, CompletionError> {
        self.offered(session)?;
        let origin = self.sessions.remove(session).and_then(|s| s.origin);
        self.stats.rejected += 1;
        let mut response = match rejection {
            Rejection::BadRequest(m) => self.plain(StatusCode::BAD_REQUEST, &m),
            Rejection::Unauthorized => self.unauthorized(),
            Rejection::Forbidden => self.plain(StatusCode::FORBIDDEN, "forbidden"),
            Rejection::NotFound => self.plain(StatusCode::NOT_FOUND, "no such stream"),
            Rejection::NotAcceptable(m) => self.plain(StatusCode::NOT_ACCEPTABLE, &m),
            Rejection::Conflict(m) => self.plain(StatusCode::CONFLICT, &m),
            Rejection::Unprocessable(m) => self.plain(StatusCode::UNPROCESSABLE_ENTITY, &m),
            Rejection::Unavailable(after) => {
                let mut r = self.plain(StatusCode::SERVICE_UNAVAILABLE, "try again later");
                insert_retry_after(r.headers_mut(), after);
                r
            }
            Rejection::Internal(m) => self.plain(StatusCode::INTERNAL_SERVER_ERROR, &m),
        };
        self.add_cors(response.headers_mut(), origin.as_deref());
        self.add_expose(response.headers_mut());
        Ok(response)
    }

    /// Completes an [`Outcome::Restart`]: `200 OK` with the server's new ICE credentials and
    /// candidates, and the new ICE session's entity-tag. From now on the session's remote ICE
    /// credentials are the restart's.
    pub fn restarted(
        &mut self,
        session: &SessionId,
        answer: &IceAnswer,
    ) -> Result<Response<String>, CompletionError> {
        let mut ice = IceParams::new(&answer.ufrag, &answer.pwd)?.with_lite(answer.lite);
        if let Some(options) = &answer.options {
            ice = ice.with_options(options)?;
        }
        let etag = self.next_etag();
        let s = self
            .sessions
            .get_mut(session)
            .ok_or_else(|| CompletionError::NotWaiting(session.clone()))?;
        let restart = s
            .restart
            .take()
            .ok_or_else(|| CompletionError::NotWaiting(session.clone()))?;
        s.remote_ufrag = Some(restart.ufrag);
        s.remote_pwd = Some(restart.pwd);
        s.etag = etag.clone();
        let frag = restart.request.restart_answer(
            ice,
            s.section.as_ref(),
            answer.candidates.iter().cloned(),
            true,
        );
        self.stats.restarts += 1;
        let mut response =
            self.with_body(StatusCode::OK, crate::sdpfrag::MEDIA_TYPE, frag.to_string());
        insert(response.headers_mut(), header::ETAG, &etag);
        self.add_cors(response.headers_mut(), restart.origin.as_deref());
        self.add_expose(response.headers_mut());
        Ok(response)
    }

    /// Completes an [`Outcome::Restart`] the application could not do. The session keeps its
    /// current ICE session and entity-tag; the client may retry or `DELETE` (RFC 9725 §4.3.3).
    pub fn restart_failed(
        &mut self,
        session: &SessionId,
        failure: RestartFailure,
    ) -> Result<Response<String>, CompletionError> {
        let s = self
            .sessions
            .get_mut(session)
            .ok_or_else(|| CompletionError::NotWaiting(session.clone()))?;
        let Some(restart) = s.restart.take() else {
            return Err(CompletionError::NotWaiting(session.clone()));
        };
        self.stats.failed_restarts += 1;
        let mut response = match failure {
            RestartFailure::Unprocessable(m) => self.plain(StatusCode::UNPROCESSABLE_ENTITY, &m),
            RestartFailure::Unavailable(after) => {
                let mut r = self.plain(StatusCode::SERVICE_UNAVAILABLE, "try again later");
                insert_retry_after(r.headers_mut(), after);
                r
            }
            RestartFailure::Internal(m) => self.plain(StatusCode::INTERNAL_SERVER_ERROR, &m),
        };
        self.add_cors(response.headers_mut(), restart.origin.as_deref());
        self.add_expose(response.headers_mut());
        Ok(response)
    }

    /// Ends `session` from the server's side (its media ended, ICE consent expired). Later
    /// requests for it get `404`. Returns whether it existed.
    pub fn close(&mut self, session: &SessionId) -> bool {
        self.sessions.remove(session).is_some()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work, if ever. Scans the sessions
    /// (bounded by [`Config::max_sessions`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let answer = self.config.answer_timeout;
        self.sessions
            .values()
            .flat_map(|s| {
                let state = match s.state {
                    State::Offered { since } => Some(since + answer),
                    State::CounterOffered { until } => Some(until),
                    State::Active => None,
                };
                let restart = s.restart.as_ref().map(|r| r.since + answer);
                state.into_iter().chain(restart)
            })
            .min()
    }

    /// Drops what timed out by `now`: offers and ICE restarts the application did not answer
    /// within [`Config::answer_timeout`] (a late completion call gets
    /// [`CompletionError::NotWaiting`]) and WHEP counter-offers past their validity
    /// ([`Event::Closed`] with [`CloseCause::Expired`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let answer = self.config.answer_timeout;
        let mut expired = Vec::new();
        for (id, s) in &mut self.sessions {
            if s.restart.as_ref().is_some_and(|r| r.since + answer <= now) {
                s.restart = None;
                self.stats.expired += 1;
            }
            match s.state {
                State::Offered { since } if since + answer <= now => {
                    expired.push((id.clone(), false));
                }
                State::CounterOffered { until } if until <= now => {
                    expired.push((id.clone(), true));
                }
                _ => {}
            }
        }
        for (id, tell) in expired {
            self.sessions.remove(&id);
            self.stats.expired += 1;
            if tell {
                self.events.push_back(Event::Closed {
                    session: id,
                    cause: CloseCause::Expired,
                });
            }
        }
    }

    fn on_endpoint(&mut self, request: &Request<'_>, stream: &str, now: Instant) -> Outcome {
        let method = request.method;
        if method == Method::POST {
            return self.on_post(request, stream, now);
        }
        let response = if method == Method::OPTIONS {
            let mut r = self.empty(StatusCode::OK);
            let h = r.headers_mut();
            insert(h, header::ALLOW, ENDPOINT_ALLOW);
            insert(h, ACCEPT_POST, SDP_MEDIA_TYPE);
            self.add_preflight(h, request, ENDPOINT_ALLOW);
            if self.config.ice_servers_on_options && !is_preflight(request) {
                self.add_links(h, &SessionId(String::new()), 0);
            }
            r
        } else if method == Method::GET || method == Method::HEAD {
            self.empty(StatusCode::NO_CONTENT)
        } else {
            let mut r = self.plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
            insert(r.headers_mut(), header::ALLOW, ENDPOINT_ALLOW);
            return self.refuse(r);
        };
        Outcome::Respond(response)
    }

    fn on_post(&mut self, request: &Request<'_>, stream: &str, now: Instant) -> Outcome {
        let wrong_type = "the offer must be sent as application/sdp";
        let (sdp, facts) = match self.sdp_body(request, ACCEPT_POST, wrong_type) {
            Ok(body) => body,
            Err(refusal) => return self.refuse(*refusal),
        };
        if self.config.protocol == Protocol::Whep {
            use crate::sdp::Direction;
            let sends = facts.sections().iter().any(|m| {
                !matches!(
                    m.direction(),
                    Some(Direction::SendOnly | Direction::Inactive)
                )
            });
            if !sends {
                return self.refuse(self.plain(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "a WHEP offer must receive media (recvonly or sendrecv)",
                ));
            }
        }
        if self.sessions.len() >= self.config.max_sessions {
            let mut r = self.plain(StatusCode::SERVICE_UNAVAILABLE, "too many sessions");
            insert_retry_after(r.headers_mut(), self.config.retry_after);
            return self.refuse(r);
        }
        let (ufrag, pwd) = match facts.ice_credentials() {
            Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
            None => (None, None),
        };
        let id = self.next_id();
        let etag = self.next_etag();
        self.sessions.insert(
            id.clone(),
            Session {
                path: request.path.to_owned(),
                state: State::Offered { since: now },
                etag,
                remote_ufrag: ufrag,
                remote_pwd: pwd,
                restart: None,
                section: FragMedia::first_in_sdp(sdp),
                candidates: 0,
                bearer: bearer(request).map(str::to_owned),
                origin: request.header(header::ORIGIN).map(str::to_owned),
            },
        );
        self.stats.offers += 1;
        Outcome::Offer(Offer {
            session: id,
            stream: stream.to_owned(),
            sdp: sdp.to_owned(),
            bearer: bearer(request).map(str::to_owned),
        })
    }

    fn on_session(&mut self, request: &Request<'_>, id: &str, now: Instant) -> Outcome {
        let id = SessionId(id.to_owned());
        let Some(session) = self.sessions.get(&id) else {
            let r = self.plain(StatusCode::NOT_FOUND, "no such session");
            return self.refuse(r);
        };
        let method = request.method;
        if method == Method::OPTIONS {
            let allow = self.session_allow();
            let mut r = self.empty(StatusCode::OK);
            let h = r.headers_mut();
            insert(h, header::ALLOW, allow);
            if self.patch_supported() {
                insert(h, ACCEPT_PATCH, crate::sdpfrag::MEDIA_TYPE);
            }
            self.add_preflight(h, request, allow);
            return Outcome::Respond(r);
        }
        if let Some(token) = &session.bearer {
            let sent = bearer(request).map(str::as_bytes).unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(sent, token.as_bytes())) {
                let r = self.unauthorized();
                return self.refuse(r);
            }
        }
        if method == Method::GET || method == Method::HEAD {
            return Outcome::Respond(self.empty(StatusCode::NO_CONTENT));
        }
        if method == Method::DELETE {
            self.sessions.remove(&id);
            self.stats.deleted += 1;
            self.events.push_back(Event::Closed {
                session: id,
                cause: CloseCause::Deleted,
            });
            return Outcome::Respond(self.empty(StatusCode::OK));
        }
        if method == Method::PATCH {
            return self.on_patch(request, id, now);
        }
        let mut r = self.plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here");
        insert(r.headers_mut(), header::ALLOW, self.session_allow());
        self.refuse(r)
    }

    fn on_patch(&mut self, request: &Request<'_>, id: SessionId, now: Instant) -> Outcome {
        let counter_offered = matches!(
            self.sessions.get(&id).map(|s| &s.state),
            Some(State::CounterOffered { .. })
        );
        if counter_offered {
            return self.on_counter_answer(request, id);
        }
        if !self.patch_supported() {
            let mut r = self.plain(StatusCode::METHOD_NOT_ALLOWED, "PATCH is not supported");
            insert(r.headers_mut(), header::ALLOW, self.session_allow());
            return self.refuse(r);
        }
        if !content_type_is(request, crate::sdpfrag::MEDIA_TYPE) {
            let mut r = self.plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a PATCH body must be application/trickle-ice-sdpfrag",
            );
            insert(r.headers_mut(), ACCEPT_PATCH, crate::sdpfrag::MEDIA_TYPE);
            return self.refuse(r);
        }
        let session = self.sessions.get(&id).expect("checked by the caller");
        if matches!(session.state, State::Offered { .. }) {
            let r = self.plain(StatusCode::CONFLICT, "the session is not answered yet");
            return self.refuse(r);
        }
        let if_match = request.header(header::IF_MATCH).map(str::trim);
        // RFC 9110's wildcard is a bare `*`; the WHIP/WHEP prose writes it `"*"`, and clients
        // that copied the prose send the quotes. Both mean "any ICE session": a restart.
        let wildcard = matches!(if_match, Some("*" | "\"*\""));
        match if_match {
            _ if wildcard => {}
            Some(tags) => {
                if !etag_matches(tags, &session.etag) {
                    let r = self.plain(
                        StatusCode::PRECONDITION_FAILED,
                        "If-Match is not the current ICE session's entity-tag",
                    );
                    return self.refuse(r);
                }
            }
            None if self.config.etag == EtagMode::Lenient => {}
            None => {
                let r = self.plain(
                    StatusCode::PRECONDITION_REQUIRED,
                    "a PATCH must carry If-Match: the entity-tag, or \"*\" for an ICE restart",
                );
                return self.refuse(r);
            }
        }
        let text = match check_body(request.body, self.config.frag_limits.max_len) {
            Ok(text) => text,
            Err(r) => return self.refuse(self.plain(r.0, &r.1)),
        };
        let frag = match SdpFrag::parse_with(text, &self.config.frag_limits) {
            Ok(frag) => frag,
            Err(e) => {
                let message = format!("not an SDP fragment: {e}");
                return self.refuse(self.plain(StatusCode::BAD_REQUEST, &message));
            }
        };
        let new_credentials = match frag.ufrag() {
            Some(u) => session.remote_ufrag.as_deref() != Some(u),
            None => false,
        };
        if wildcard || new_credentials {
            self.on_restart(id, frag, request.header(header::ORIGIN), now)
        } else {
            self.on_trickle(id, &frag)
        }
    }

    fn on_restart(
        &mut self,
        id: SessionId,
        frag: SdpFrag,
        origin: Option<&str>,
        now: Instant,
    ) -> Outcome {
        if !self.config.ice_restart {
            let r = self.plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ICE restarts are not supported",
            );
            return self.refuse(r);
        }
        let (Some(ufrag), Some(pwd)) = (frag.ufrag(), frag.pwd()) else {
            let r = self.plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                "an ICE restart must carry the new ice-ufrag and ice-pwd",
            );
            return self.refuse(r);
        };
        let (ufrag, pwd) = (ufrag.to_owned(), pwd.to_owned());
        let session = self.sessions.get_mut(&id).expect("checked by the caller");
        if session.restart.is_some() {
            let r = self.plain(StatusCode::CONFLICT, "an ICE restart is in progress");
            return self.refuse(r);
        }
        session.restart = Some(PendingRestart {
            since: now,
            ufrag: ufrag.clone(),
            pwd: pwd.clone(),
            request: frag.clone(),
            origin: origin.map(str::to_owned),
        });
        let limit = self.config.max_candidates_per_session;
        let mut candidates: Vec<(Option<String>, Candidate)> = frag
            .candidates()
            .filter(|(_, c)| c.ufrag().is_none_or(|u| u == ufrag))
            .map(|(mid, c)| (mid.map(str::to_owned), c.clone()))
            .collect();
        if candidates.len() > limit {
            self.stats.dropped_candidates += (candidates.len() - limit) as u64;
            candidates.truncate(limit);
        }
        session.candidates = candidates.len();
        let end_of_candidates = ends_candidates(&frag);
        Outcome::Restart(Restart {
            session: id,
            ufrag,
            pwd,
            candidates,
            end_of_candidates,
        })
    }

    fn on_trickle(&mut self, id: SessionId, frag: &SdpFrag) -> Outcome {
        if !self.config.trickle {
            let r = self.plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                "trickle ICE is not supported",
            );
            return self.refuse(r);
        }
        if self.events.len() >= self.config.max_events {
            let mut r = self.plain(StatusCode::SERVICE_UNAVAILABLE, "busy, try again");
            insert_retry_after(r.headers_mut(), Duration::from_secs(1));
            return self.refuse(r);
        }
        let limit = self.config.max_candidates_per_session;
        let session = self.sessions.get_mut(&id).expect("checked by the caller");
        let current = session.remote_ufrag.as_deref();
        let mut taken = Vec::new();
        let mut dropped = 0u64;
        for (mid, c) in frag.candidates() {
            let this_session = match (c.ufrag(), current) {
                (Some(u), Some(cur)) => u == cur,
                _ => true,
            };
            if this_session && session.candidates < limit {
                session.candidates += 1;
                taken.push((mid.map(str::to_owned), c.clone()));
            } else {
                dropped += 1;
            }
        }
        let end_of_candidates = ends_candidates(frag);
        self.stats.trickles += 1;
        self.stats.candidates += taken.len() as u64;
        self.stats.dropped_candidates += dropped;
        if !taken.is_empty() || end_of_candidates {
            self.events.push_back(Event::Candidates {
                session: id,
                candidates: taken,
                end_of_candidates,
            });
        }
        Outcome::Respond(self.empty(StatusCode::NO_CONTENT))
    }

    fn on_counter_answer(&mut self, request: &Request<'_>, id: SessionId) -> Outcome {
        let wrong_type = "answer the counter-offer with an application/sdp PATCH";
        let (sdp, facts) = match self.sdp_body(request, ACCEPT_PATCH, wrong_type) {
            Ok(body) => body,
            Err(refusal) => return self.refuse(*refusal),
        };
        if self.events.len() >= self.config.max_events {
            let mut r = self.plain(StatusCode::SERVICE_UNAVAILABLE, "busy, try again");
            insert_retry_after(r.headers_mut(), Duration::from_secs(1));
            return self.refuse(r);
        }
        let session = self.sessions.get_mut(&id).expect("checked by the caller");
        if let Some((u, p)) = facts.ice_credentials() {
            session.remote_ufrag = Some(u.to_owned());
            session.remote_pwd = Some(p.to_owned());
        }
        session.state = State::Active;
        self.stats.created += 1;
        self.events.push_back(Event::Answer {
            session: id,
            sdp: sdp.to_owned(),
        });
        Outcome::Respond(self.empty(StatusCode::NO_CONTENT))
    }

    /// The request's SDP body and its facts, or the answer refusing it: `415` with `accept`
    /// naming `application/sdp`, `413`, or `400`.
    fn sdp_body<'b>(
        &self,
        request: &Request<'b>,
        accept: HeaderName,
        wrong_type: &str,
    ) -> Result<(&'b str, SdpFacts), Box<Response<String>>> {
        if !content_type_is(request, SDP_MEDIA_TYPE) {
            let mut r = self.plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, wrong_type);
            insert(r.headers_mut(), accept, SDP_MEDIA_TYPE);
            return Err(Box::new(r));
        }
        let sdp = check_body(request.body, self.config.max_sdp_len)
            .map_err(|(status, message)| Box::new(self.plain(status, &message)))?;
        let facts = check_sdp(sdp, self.config.max_sdp_len)
            .map_err(|e| Box::new(self.plain(StatusCode::BAD_REQUEST, &e.to_string())))?;
        Ok((sdp, facts))
    }

    fn offered(&self, session: &SessionId) -> Result<(), CompletionError> {
        match self.sessions.get(session).map(|s| &s.state) {
            Some(State::Offered { .. }) => Ok(()),
            _ => Err(CompletionError::NotWaiting(session.clone())),
        }
    }

    fn patch_supported(&self) -> bool {
        self.config.trickle || self.config.ice_restart
    }

    fn session_allow(&self) -> &'static str {
        if self.patch_supported() || self.config.protocol == Protocol::Whep {
            "OPTIONS, GET, HEAD, PATCH, DELETE"
        } else {
            "OPTIONS, GET, HEAD, DELETE"
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        match &self.config.allowed_origins {
            None => true,
            Some(list) => list.iter().any(|o| o == origin),
        }
    }

    fn add_cors(&self, headers: &mut HeaderMap, origin: Option<&str>) {
        let Some(origin) = origin else { return };
        match &self.config.allowed_origins {
            None => insert(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            Some(_) => {
                insert(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
            }
        }
        self.add_expose(headers);
    }

    fn add_expose(&self, headers: &mut HeaderMap) {
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }

    fn add_preflight(&self, headers: &mut HeaderMap, request: &Request<'_>, allow: &str) {
        if request.header(header::ORIGIN).is_none() {
            return;
        }
        insert(headers, header::ACCESS_CONTROL_ALLOW_METHODS, allow);
        insert(headers, header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        insert(headers, header::ACCESS_CONTROL_MAX_AGE, "600");
    }

    fn add_links(&self, headers: &mut HeaderMap, session: &SessionId, unix_time: u64) {
        let Some(servers) = &self.config.ice_servers else {
            return;
        };
        for server in servers.for_user(session.as_str(), unix_time) {
            for url in &server.urls {
                if let Some(value) = link_value(url, &server.username, &server.credential) {
                    headers.append(header::LINK, value);
                }
            }
        }
    }

    fn next_id(&mut self) -> SessionId {
        let bytes = self.prf_block(b"session");
        SessionId(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..16]))
    }

    fn next_etag(&mut self) -> String {
        let bytes = self.prf_block(b"etag");
        let mut tag = String::with_capacity(26);
        tag.push('"');
        tag.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..12]));
        tag.push('"');
        tag
    }

    fn prf_block(&mut self, label: &[u8]) -> [u8; 20] {
        self.counter += 1;
        let mut mac = self.prf.clone();
        mac.update(label);
        mac.update(&self.counter.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    fn refuse(&mut self, response: Response<String>) -> Outcome {
        self.stats.refused += 1;
        Outcome::Respond(response)
    }

    fn empty(&self, status: StatusCode) -> Response<String> {
        let mut response = Response::new(String::new());
        *response.status_mut() = status;
        response
    }

    fn with_body(&self, status: StatusCode, content_type: &str, body: String) -> Response<String> {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        if !content_type.is_empty() {
            insert(response.headers_mut(), header::CONTENT_TYPE, content_type);
        }
        response
    }

    fn plain(&self, status: StatusCode, message: &str) -> Response<String> {
        self.with_body(status, "text/plain; charset=utf-8", format!("{message}\n"))
    }

    fn unauthorized(&self) -> Response<String> {
        let mut r = self.plain(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        insert(r.headers_mut(), header::WWW_AUTHENTICATE, "Bearer");
        r
    }
}

const DEFAULT_COUNTER_OFFER_TTL: Duration = Duration::from_secs(30);
const ENDPOINT_ALLOW: &str = "OPTIONS, GET, HEAD, POST";
const ACCEPT_PATCH: HeaderName = HeaderName::from_static("accept-patch");
const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");

/// Inserts a header whose value is known to be valid, or skips it (never panics).
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn insert_retry_after(headers: &mut HeaderMap, after: Duration) {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
}

fn is_preflight(request: &Request<'_>) -> bool {
    request
        .headers
        .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Whether the request's `Content-Type` is `media_type` (parameters and case ignored).
fn content_type_is(request: &Request<'_>, media_type: &str) -> bool {
    request
        .header(header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// The bearer token of an `Authorization: Bearer ...` header.
fn bearer<'a>(request: &Request<'a>) -> Option<&'a str> {
    let value = request.header(header::AUTHORIZATION)?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a fragment says end-of-candidates, at session level or in a section.
fn ends_candidates(frag: &SdpFrag) -> bool {
    frag.end_of_candidates() || frag.media().iter().any(FragMedia::end_of_candidates)
}

/// Whether an `If-Match` list holds `etag`, by strong comparison (RFC 9110 §13.1.1, §8.8.3.2):
/// weak tags never match.
fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == etag)
}

/// The body as UTF-8 within `max` bytes, or the status and message that refuse it.
fn check_body(body: &[u8], max: usize) -> Result<&str, (StatusCode, String)> {
    if body.len() > max {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {} bytes; the limit is {max}", body.len()),
        ));
    }
    std::str::from_utf8(body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the body is not UTF-8".to_owned()))
}

/// The SDP's facts, if it is an SDP with at least one `m=` section.
fn check_sdp(sdp: &str, max: usize) -> Result<SdpFacts, CompletionError> {
    let trimmed = sdp.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return Err(CompletionError::BadSdp(
            "this is JSON, not SDP: send the bare SDP text as application/sdp".to_owned(),
        ));
    }
    let facts =
        SdpFacts::parse_with_limit(sdp, max).map_err(|e| CompletionError::BadSdp(e.to_string()))?;
    if facts.sections().is_empty() {
        return Err(CompletionError::BadSdp("no m= section".to_owned()));
    }
    Ok(facts)
}

/// One `Link` header value for an ICE server URL (RFC 9725 §4.6, RFC 8288), or `None` if the
/// URL or a credential cannot be written in one.
fn link_value(
    url: &str,
    username: &Option<String>,
    credential: &Option<String>,
) -> Option<HeaderValue> {
    if url
        .chars()
        .any(|c| c.is_control() || matches!(c, '<' | '>' | ' '))
    {
        return None;
    }
    let mut value = format!("<{url}>; rel=\"ice-server\"");
    if let (Some(user), Some(cred)) = (username, credential) {
        value.push_str(&format!(
            "; username={}; credential={}; credential-type=\"password\"",
            quoted(user),
            quoted(cred)
        ));
    }
    HeaderValue::from_str(&value).ok()
}

/// An HTTP quoted-string (RFC 9110 §5.6.4).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
