//! The client side of WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep), sans-IO.
//!
//! A [`ClientSession`] is one publisher's (WHIP) or player's (WHEP) session: it builds the
//! `http::Request`s the protocol needs and reads the `http::Response`s the caller got for
//! them. It never touches a socket or a clock; an HTTP client drives it (the `signaling-http`
//! crate's `client` feature has one on reqwest).
//!
//! # Driving it
//!
//! Commands ([`ClientSession::offer`], [`add_local_candidate`](ClientSession::add_local_candidate),
//! [`end_of_candidates`](ClientSession::end_of_candidates),
//! [`restart_ice`](ClientSession::restart_ice),
//! [`answer_counter_offer`](ClientSession::answer_counter_offer),
//! [`delete`](ClientSession::delete)) change the session and return only API-misuse errors.
//! After each command, and after each response:
//!
//! 1. take every request from [`poll_transmit`](ClientSession::poll_transmit) and send it;
//! 2. hand each response to [`handle_response`](ClientSession::handle_response) with the
//!    [`RequestId`] it came with (or call [`handle_failure`](ClientSession::handle_failure)
//!    when no response came: connection refused, timeout);
//! 3. drain [`poll_event`](ClientSession::poll_event): answers, counter-offers, ICE restarts
//!    and every refusal by the server, as typed [`ResponseError`]s.
//!
//! Requests may be sent concurrently (WHIP allows overlapping `PATCH`es) or one at a time;
//! responses may be handed back in any order.
//!
//! ```
//! use signaling_core::candidate::Candidate;
//! use signaling_core::whip::client::{ClientConfig, ClientEvent, ClientSession};
//!
//! let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
//!              a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
//!              m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n";
//! let endpoint = "https://example.com/whip/cam".parse()?;
//! let mut session = ClientSession::new(ClientConfig::whip(), endpoint);
//! session.offer(offer)?;
//! // A candidate gathered before the answer waits for the session URL and entity-tag.
//! let host = Candidate::parse("candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host")?;
//! session.add_local_candidate(host)?;
//! let post = session.poll_transmit().unwrap();
//! assert_eq!(post.request.method(), "POST");
//! assert!(session.poll_transmit().is_none());
//!
//! let answer = offer.replace("sendonly", "recvonly");
//! let response = http::Response::builder()
//!     .status(201)
//!     .header("location", "/whip/cam/s1")
//!     .header("etag", "\"e1\"")
//!     .body(answer)?;
//! session.handle_response(post.id, &response);
//! assert!(matches!(session.poll_event(), Some(ClientEvent::Answered { .. })));
//! assert_eq!(session.session_url().unwrap().as_str(), "https://example.com/whip/cam/s1");
//! // The buffered candidate goes out in one PATCH, conditional on the entity-tag.
//! let patch = session.poll_transmit().unwrap();
//! assert_eq!(patch.request.headers()["if-match"], "\"e1\"");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is sent, and what is made of the answers
//!
//! Sections are RFC 9725's (WHIP) unless noted; the WHEP draft's are the same in substance.
//!
//! | request | sent as | answers read |
//! |---|---|---|
//! | offer | `POST` endpoint, `Content-Type: application/sdp` (§4.2) | `201`: answer, `Location` resolved against the request's URL (RFC 9110 §10.2.2, RFC 3986 §5.2), `ETag`, `Link: <..>; rel="ice-server"` (§4.6) → [`ClientEvent::Answered`]; `307`/`308`: the `POST` again to `Location` (§4.5), at most [`ClientConfig::max_redirects`] times; WHEP `406` with an SDP body → [`ClientEvent::CounterOffer`] |
//! | trickle | `PATCH` session, `application/trickle-ice-sdpfrag` with the first m-line, its mid, `ice-ufrag`/`ice-pwd`, candidates, `end-of-candidates`; `If-Match: <etag>` (§4.3.1, §4.3.2) | any `2xx` (`204` as specified, `200` as some servers send) → [`ClientEvent::CandidatesSent`]; `412` → [`ResponseError::StaleEtag`] |
//! | ICE restart | `PATCH` session, the new `ice-ufrag`/`ice-pwd` and candidates, `If-Match: *` (§4.3.3; the wildcard of RFC 9110 §13.1.1, unquoted) | `200`: the server's sdpfrag and new `ETag` → [`ClientEvent::IceRestarted`]; the answer to a restart that a later one superseded is ignored |
//! | counter-answer (WHEP) | `PATCH` session, `application/sdp` | any `2xx` → [`ClientEvent::CounterAnswered`] |
//! | delete | `DELETE` session, no `If-Match` (§4.3.1) | any `2xx` (`200` as specified, `204` as some servers send) or `404` → [`ClientEvent::Deleted`] |
//!
//! Every request carries `Authorization: Bearer <token>` when [`ClientConfig::bearer_token`]
//! is set (§4.7). Any other answer becomes a [`ClientEvent::Failed`] with a [`ResponseError`]:
//! `409` and `503` with their `Retry-After` ([`RetryAfter`]), `401`, `403`, `404`, and the
//! status and text of the rest.
//!
//! # Candidates and entity-tags
//!
//! Local candidates wait in a buffer until they can be sent: before the `201` (the session URL
//! and entity-tag are not known yet) and while an ICE restart is in flight (its new entity-tag
//! is not known yet). Then they all go in one aggregated `PATCH` (§4.3.2). The buffer holds at
//! most [`ClientConfig::max_buffered_candidates`]; beyond that
//! [`add_local_candidate`](ClientSession::add_local_candidate) refuses with
//! [`ClientError::BufferFull`] (back-pressure: the caller keeps the candidate). A `PATCH`
//! answered `412` means the client's entity-tag is not the server's ICE session any more; its
//! candidates are dropped and the session needs an ICE restart, which is how the client and
//! server agree on an ICE session again (§4.3.3): until then trickling is refused with
//! [`ClientError::RestartNeeded`]. The same holds after a failed ICE restart. The candidates of a
//! trickle `PATCH` that fails otherwise (no response, `503`) are dropped too, not sent again:
//! a retry loop against a server that keeps refusing would never end, and ICE can still find the
//! path through peer-reflexive candidates.
//!
//! # Bounds
//!
//! Buffered candidates ([`ClientConfig::max_buffered_candidates`]), redirects
//! ([`ClientConfig::max_redirects`]), response bodies read ([`ClientConfig::max_body_len`]),
//! `Link` ICE servers taken ([`ClientConfig::max_ice_servers`]) and the sdpfrag of a restart
//! answer ([`ClientConfig::frag_limits`]). Requests waiting in [`poll_transmit`](ClientSession::poll_transmit)
//! are at most one of each kind (a newer restart replaces an unsent one).
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

pub use url::Url;

use super::{Protocol, SDP_MEDIA_TYPE};
use crate::candidate::Candidate;
use crate::sdp::SdpFacts;
use crate::sdpfrag::{FragLimits, FragMedia, IceParams, SdpFrag, SdpFragError, ValueError};
use crate::wire::IceServer;

/// Settings of a [`ClientSession`]. Every bound is here.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The protocol spoken: WHIP (publish) or WHEP (play).
    pub protocol: Protocol,
    /// A bearer token sent in `Authorization` on every request (RFC 9725 §4.7). Default: none.
    pub bearer_token: Option<String>,
    /// Local candidates buffered while they cannot be sent (before the `201`, during an ICE
    /// restart). Default: 64, what one trickle body may carry under the default
    /// [`FragLimits`].
    pub max_buffered_candidates: usize,
    /// `307`/`308` redirects followed for one offer. Default: 5.
    pub max_redirects: usize,
    /// Send the bearer token to a redirect target of another origin (scheme, host, port).
    /// Default: no, as browsers and curl do; load-balancing redirects within one origin keep
    /// it. A redirect from `https` to `http` is refused either way.
    pub token_across_origins: bool,
    /// Largest response body read, in bytes; an answer over it is
    /// [`ResponseError::TooLarge`]. Default: 64 KiB, the server side's default SDP bound.
    pub max_body_len: usize,
    /// `Link` ICE servers taken from a `201`; more are ignored. Default: 16.
    pub max_ice_servers: usize,
    /// Bounds on the server's sdpfrag answering an ICE restart.
    pub frag_limits: FragLimits,
}

impl ClientConfig {
    /// Defaults for a WHIP client (publisher).
    pub fn whip() -> Self {
        Self::new(Protocol::Whip)
    }

    /// Defaults for a WHEP client (player).
    pub fn whep() -> Self {
        Self::new(Protocol::Whep)
    }

    /// Defaults for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            bearer_token: None,
            max_buffered_candidates: 64,
            max_redirects: 5,
            token_across_origins: false,
            max_body_len: 64 * 1024,
            max_ice_servers: 16,
            frag_limits: FragLimits::default(),
        }
    }

    /// Sets the bearer token.
    pub fn with_bearer_token(mut self, token: Option<String>) -> Self {
        self.bearer_token = token;
        self
    }

    /// Sets the candidate buffer's bound.
    pub fn with_max_buffered_candidates(mut self, max: usize) -> Self {
        self.max_buffered_candidates = max;
        self
    }

    /// Sets how many redirects are followed.
    pub fn with_max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }
}

/// Names one request of a [`ClientSession`], to hand its response back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// What a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// The `POST` of the offer (again after a redirect).
    Offer,
    /// A trickle `PATCH`.
    Trickle,
    /// An ICE restart `PATCH`.
    Restart,
    /// A WHEP player's `PATCH` answering the server's counter-offer.
    CounterAnswer,
    /// The `DELETE` ending the session.
    Delete,
}

/// A request to send, from [`ClientSession::poll_transmit`].
#[derive(Debug)]
pub struct Transmit {
    /// Hand the response back with this.
    pub id: RequestId,
    /// What it is for.
    pub kind: RequestKind,
    /// The request, with an absolute URI.
    pub request: Request<String>,
}

/// When to try again, from a `Retry-After` header (RFC 9110 §10.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// After this long.
    Delay(Duration),
    /// At this time.
    At(SystemTime),
}

impl RetryAfter {
    /// How long to wait from `now` (zero for a date in the past).
    pub fn delay_from(&self, now: SystemTime) -> Duration {
        match *self {
            RetryAfter::Delay(delay) => delay,
            RetryAfter::At(at) => at.duration_since(now).unwrap_or_default(),
        }
    }

    /// Parses a header value: delay-seconds or an HTTP-date. `None` for anything else.
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // More digits than a u64 holds is still "a very long time".
            let secs = value.parse::<u64>().unwrap_or(u64::MAX);
            return Some(RetryAfter::Delay(Duration::from_secs(secs)));
        }
        httpdate::parse_http_date(value).ok().map(RetryAfter::At)
    }
}

/// The server's side of an ICE session after a restart (the `200`'s sdpfrag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteIce {
    /// The server's new ICE username fragment.
    pub ufrag: String,
    /// The server's new ICE password.
    pub pwd: String,
    /// The server is ICE lite.
    pub lite: bool,
    /// The server's `ice-options`, if it sent them.
    pub options: Option<String>,
    /// The server's candidates, with the mid of the section that carried them. After a
    /// restart these replace every earlier remote candidate (§4.3.3).
    pub candidates: Vec<(Option<String>, Candidate)>,
    /// The server said `end-of-candidates`.
    pub end_of_candidates: bool,
}

/// What a [`ClientSession`] has to tell, from [`ClientSession::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `201 Created`: the session exists. Its URL, entity-tag and ICE servers are also kept
    /// ([`ClientSession::session_url`], [`ClientSession::etag`],
    /// [`ClientSession::ice_servers`]).
    Answered {
        /// The server's SDP answer.
        sdp: String,
        /// The STUN/TURN servers of the `Link` headers.
        ice_servers: Vec<IceServer>,
    },
    /// WHEP: the server answered the offer with its own (`406`). Answer it with
    /// [`ClientSession::answer_counter_offer`] before `valid_until`.
    CounterOffer {
        /// The server's SDP offer.
        sdp: String,
        /// The `valid-until` of its `Content-Type`, if given (the draft's default is 30 s).
        valid_until: Option<SystemTime>,
        /// The STUN/TURN servers of the `Link` headers.
        ice_servers: Vec<IceServer>,
    },
    /// WHEP: the server took the answer to its counter-offer; the session is established.
    CounterAnswered,
    /// A trickle `PATCH` was taken.
    CandidatesSent {
        /// Candidates it carried.
        count: usize,
        /// It carried `end-of-candidates`.
        end_of_candidates: bool,
    },
    /// The ICE restart is done: restart the local ICE agent's remote side with this.
    IceRestarted(RemoteIce),
    /// The session is gone (the server answered the `DELETE` with `2xx`, or `404`).
    Deleted,
    /// The server refused a request, or none answered it.
    Failed {
        /// The request.
        request: RequestId,
        /// What it was for.
        kind: RequestKind,
        /// Why it failed.
        error: ResponseError,
    },
}

/// Why a request failed: the server's answer, or the lack of one.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// `401`: no, or a wrong, bearer token.
    #[error("401 Unauthorized: the bearer token was refused")]
    Unauthorized,
    /// `403`: not allowed.
    #[error("403 Forbidden")]
    Forbidden,
    /// `404`: no such endpoint or session (a session may have expired).
    #[error("404 Not Found")]
    NotFound,
    /// `409`: WHEP: the stream is not live yet; WHIP: the stream is taken. Try again after
    /// `retry_after` (WHEP suggests exponential back-off from it).
    #[error("409 Conflict: {message}")]
    Conflict {
        /// The `Retry-After`, if any.
        retry_after: Option<RetryAfter>,
        /// The response's text (bounded).
        message: String,
    },
    /// `503`: overloaded; try again after `retry_after` (RFC 9725 §4.5).
    #[error("503 Service Unavailable")]
    Unavailable {
        /// The `Retry-After`, if any.
        retry_after: Option<RetryAfter>,
    },
    /// `412` to a trickle `PATCH`: the entity-tag is not the server's ICE session any more.
    /// The candidates were dropped; restart ICE to agree on a session again.
    #[error("412 Precondition Failed: the entity-tag is stale; restart ICE")]
    StaleEtag,
    /// Another refusal.
    #[error("{status}: {message}")]
    Rejected {
        /// The status.
        status: StatusCode,
        /// The response's text (bounded).
        message: String,
    },
    /// A status the request cannot have (a `1xx`, a `3xx` other than a usable redirect of the
    /// offer, a `201` to a `PATCH`, ...).
    #[error("unexpected status {0}")]
    UnexpectedStatus(StatusCode),
    /// A `201`, `406` or redirect without a usable `Location`.
    #[error("no usable Location header")]
    MissingLocation,
    /// A `Location` that does not resolve to an `http(s)` URL.
    #[error("the Location {0:?} is not a usable URL")]
    BadLocation(String),
    /// More redirects than [`ClientConfig::max_redirects`].
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect from `https` to `http`.
    #[error("refused a redirect from https to http")]
    InsecureRedirect,
    /// The answer's body is not an SDP with at least one `m=` section.
    #[error("the answer is not a usable SDP: {0}")]
    BadAnswer(String),
    /// The sdpfrag answering an ICE restart cannot be read, or lacks `ice-ufrag`/`ice-pwd`.
    #[error("the restart answer is not a usable sdpfrag: {0}")]
    BadFragment(String),
    /// The body is larger than [`ClientConfig::max_body_len`].
    #[error("the body is {len} bytes; the limit is {max}")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// No response came ([`ClientSession::handle_failure`]).
    #[error("no response")]
    NoResponse,
}

impl ResponseError {
    /// The `Retry-After` of a `409` or `503`.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            ResponseError::Conflict { retry_after, .. }
            | ResponseError::Unavailable { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The response's status, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        Some(match self {
            ResponseError::Unauthorized => StatusCode::UNAUTHORIZED,
            ResponseError::Forbidden => StatusCode::FORBIDDEN,
            ResponseError::NotFound => StatusCode::NOT_FOUND,
            ResponseError::Conflict { .. } => StatusCode::CONFLICT,
            ResponseError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ResponseError::StaleEtag => StatusCode::PRECONDITION_FAILED,
            ResponseError::Rejected { status, .. } | ResponseError::UnexpectedStatus(status) => {
                *status
            }
            _ => return None,
        })
    }
}

/// A command the session cannot do in its state, or with these arguments.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint URL is not an absolute `http`/`https` URL.
    #[error("the endpoint URL must be http or https")]
    BadEndpoint,
    /// The bearer token cannot be sent in a header.
    #[error("the bearer token is not a valid header value")]
    BadToken,
    /// The offer (or counter-answer) is not an SDP with an `m=` section, a mid that is a token
    /// and ICE credentials.
    #[error("the SDP is not usable: {0}")]
    BadSdp(String),
    /// An offer was already sent and is not refused.
    #[error("an offer was already sent")]
    AlreadyOffered,
    /// No session yet (no `201`): restart and delete need one.
    #[error("no session yet")]
    NoSession,
    /// Not waiting for an answer to a counter-offer.
    #[error("no counter-offer to answer")]
    NoCounterOffer,
    /// The session was deleted.
    #[error("the session is closed")]
    Closed,
    /// The candidate buffer is full ([`ClientConfig::max_buffered_candidates`]).
    #[error("{0} candidates are waiting already")]
    BufferFull(usize),
    /// `end-of-candidates` was given for this ICE session: no more candidates (RFC 8838 §13).
    #[error("end-of-candidates was already given")]
    EndedCandidates,
    /// The candidate's `ufrag` extension is not the current local ICE session's (RFC 8838 §15).
    #[error("the candidate belongs to another ICE session")]
    OtherGeneration,
    /// The entity-tag went stale or an ICE restart failed: restart ICE before trickling.
    #[error("the ICE session is out of step with the server's; restart ICE")]
    RestartNeeded,
    /// ICE parameters that cannot be written in an sdpfrag.
    #[error("bad ICE parameters: {0}")]
    BadIce(#[from] ValueError),
}

/// The local ICE session, and how to write a trickle body for it.
#[derive(Clone, Debug)]
struct LocalIce {
    /// The first m-section's m= line and mid (the BUNDLE tag), the section candidates go in.
    section: FragMedia,
    bundle: Vec<String>,
    options: Option<String>,
    ufrag: String,
    pwd: String,
}

impl LocalIce {
    fn from_sdp(sdp: &str) -> Result<Self, ClientError> {
        let facts = SdpFacts::parse(sdp).map_err(|e| ClientError::BadSdp(e.to_string()))?;
        let section = FragMedia::first_in_sdp(sdp)
            .ok_or_else(|| ClientError::BadSdp("no usable m= section".to_owned()))?;
        let (ufrag, pwd) = facts
            .ice_credentials()
            .ok_or_else(|| ClientError::BadSdp("no ice-ufrag and ice-pwd".to_owned()))?;
        IceParams::new(ufrag, pwd)?;
        let options = crate::sdp::lines(sdp)
            .take_while(|l| !l.starts_with("m="))
            .find_map(|l| l.strip_prefix("a=ice-options:"))
            .filter(|o| IceParams::default().with_options(o).is_ok())
            .map(str::to_owned);
        Ok(Self {
            section,
            bundle: facts.bundle_groups().first().cloned().unwrap_or_default(),
            options,
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        })
    }

    /// The sdpfrag carrying `candidates` (and `end`) for this ICE session.
    fn fragment(&self, candidates: Vec<Candidate>, end: bool) -> Result<SdpFrag, ValueError> {
        let mut session = IceParams::default();
        if let Some(options) = &self.options {
            session = session.with_options(options)?;
        }
        let media = self
            .section
            .clone()
            .with_ice(IceParams::new(&self.ufrag, &self.pwd)?)
            .with_candidates(candidates)
            .with_end_of_candidates(end);
        SdpFrag::new()
            .with_ice(session)
            .with_bundle(&self.bundle)?
            .with_media(media)
    }
}

#[derive(Debug)]
enum State {
    /// No offer out (none yet, or the last one was refused).
    Idle,
    /// The offer's `POST` is out.
    Offering {
        id: RequestId,
        url: Url,
        redirects: usize,
        sdp: String,
    },
    /// WHEP: waiting for the application's answer to the server's counter-offer.
    CounterOffered,
    /// WHEP: the answer to the counter-offer is out.
    CounterAnswering { id: RequestId },
    /// The session exists.
    Established,
    /// The `DELETE` is out.
    Deleting { id: RequestId },
    /// The session is gone.
    Closed,
}

/// A trickle `PATCH` in flight.
#[derive(Debug)]
struct InFlight {
    id: RequestId,
    count: usize,
    end: bool,
    /// The ICE session it was for ([`ClientSession::generation`] when it was sent).
    generation: u64,
}

/// One WHIP or WHEP client session, sans-IO. See the [module docs](self) for the driving loop.
pub struct ClientSession {
    config: ClientConfig,
    endpoint: Url,
    state: State,
    next_id: u64,
    queue: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    /// The session URL, once known (`201`, or WHEP's `406`).
    session_url: Option<Url>,
    etag: Option<String>,
    ice_servers: Vec<IceServer>,
    answer: Option<String>,
    /// The local ICE session (from the offer, a counter-answer or the last restart).
    local: Option<LocalIce>,
    /// Counts local ICE sessions: a restart starts a new one.
    generation: u64,
    buffer: Vec<Candidate>,
    /// `end-of-candidates` given for the current ICE session.
    ended: bool,
    /// `end-of-candidates` given and not yet sent.
    end_pending: bool,
    trickles: Vec<InFlight>,
    /// The restart whose answer is awaited: only the last one sent counts (§4.3.3).
    restart: Option<RequestId>,
    /// The server's ICE session is unknown: a `412`, or a failed restart.
    restart_needed: bool,
    /// [`ClientSession::delete`] was called while the offer was out.
    delete_requested: bool,
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("protocol", &self.config.protocol)
            .field("endpoint", &self.endpoint.as_str())
            .field("state", &self.state)
            .field("session_url", &self.session_url.as_ref().map(Url::as_str))
            .field("etag", &self.etag)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// A session with `config` for the endpoint URL `endpoint`. Nothing is sent until
    /// [`offer`](Self::offer).
    pub fn new(config: ClientConfig, endpoint: Url) -> Self {
        let mut endpoint = endpoint;
        endpoint.set_fragment(None);
        Self {
            config,
            endpoint,
            state: State::Idle,
            next_id: 0,
            queue: VecDeque::new(),
            events: VecDeque::new(),
            session_url: None,
            etag: None,
            ice_servers: Vec::new(),
            answer: None,
            local: None,
            generation: 0,
            buffer: Vec::new(),
            ended: false,
            end_pending: false,
            trickles: Vec::new(),
            restart: None,
            restart_needed: false,
            delete_requested: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The session URL, once the server created the session.
    pub fn session_url(&self) -> Option<&Url> {
        self.session_url.as_ref()
    }

    /// The current ICE session's entity-tag, if the server sent one.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The STUN/TURN servers of the `201`'s (or `406`'s) `Link` headers.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    /// The server's SDP answer, once the session exists (WHEP after a counter-offer: the
    /// server's offer).
    pub fn answer(&self) -> Option<&str> {
        self.answer.as_deref()
    }

    /// Whether the session exists and is not being deleted.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Whether the session was deleted.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Local candidates waiting to be sent.
    pub fn buffered_candidates(&self) -> usize {
        self.buffer.len()
    }

    /// Sends the SDP offer: a `POST` to the endpoint. After a refused offer (a `409` or `503`,
    /// say) it may be called again, with the same offer or a new one; candidates buffered for
    /// an offer with other ICE credentials are dropped.
    ///
    /// # Errors
    ///
    /// [`ClientError::AlreadyOffered`] unless idle; [`ClientError::BadSdp`],
    /// [`ClientError::BadIce`] for an offer without an m-section or ICE credentials;
    /// [`ClientError::BadEndpoint`], [`ClientError::BadToken`].
    pub fn offer(&mut self, sdp: &str) -> Result<(), ClientError> {
        if !matches!(self.state, State::Idle) {
            return Err(ClientError::AlreadyOffered);
        }
        if !matches!(self.endpoint.scheme(), "http" | "https") {
            return Err(ClientError::BadEndpoint);
        }
        let ice = LocalIce::from_sdp(sdp)?;
        if self
            .local
            .as_ref()
            .is_none_or(|old| old.ufrag != ice.ufrag || old.pwd != ice.pwd)
        {
            self.buffer.clear();
            self.ended = false;
            self.end_pending = false;
        }
        let url = self.endpoint.clone();
        let id = self.push(RequestKind::Offer, Method::POST, &url, true, |b| {
            b.header(header::CONTENT_TYPE, SDP_MEDIA_TYPE)
                .body(sdp.to_owned())
        })?;
        self.local = Some(ice);
        self.state = State::Offering {
            id,
            url,
            redirects: 0,
            sdp: sdp.to_owned(),
        };
        Ok(())
    }

    /// Adds a local candidate of the current ICE session (the offer's, or the last
    /// restart's). It is sent in the next trickle `PATCH`, or buffered until one can be sent.
    ///
    /// # Errors
    ///
    /// [`ClientError::BufferFull`] (keep the candidate and try after the buffer drained),
    /// [`ClientError::EndedCandidates`], [`ClientError::OtherGeneration`],
    /// [`ClientError::RestartNeeded`], [`ClientError::Closed`], [`ClientError::NoSession`]
    /// before an offer.
    pub fn add_local_candidate(&mut self, candidate: Candidate) -> Result<(), ClientError> {
        self.check_trickle()?;
        if let (Some(ufrag), Some(local)) = (candidate.ufrag(), &self.local) {
            if ufrag != local.ufrag {
                return Err(ClientError::OtherGeneration);
            }
        }
        if self.buffer.len() >= self.config.max_buffered_candidates {
            return Err(ClientError::BufferFull(self.buffer.len()));
        }
        self.buffer.push(candidate);
        Ok(())
    }

    /// Says the current ICE session has no more local candidates: `a=end-of-candidates` in
    /// the next trickle `PATCH`. Repeating it changes nothing.
    ///
    /// # Errors
    ///
    /// As [`add_local_candidate`](Self::add_local_candidate), but for a full buffer.
    pub fn end_of_candidates(&mut self) -> Result<(), ClientError> {
        if self.ended {
            return Ok(());
        }
        self.check_trickle()?;
        self.ended = true;
        self.end_pending = true;
        Ok(())
    }

    /// Restarts ICE (§4.3.3): a `PATCH` with `If-Match: *`, the new local credentials and the
    /// candidates of the new ICE session gathered so far (`end` when that is all of them).
    /// Candidates of the old ICE session that were not sent yet are dropped; later ones wait
    /// for the restart's answer ([`ClientEvent::IceRestarted`]). Calling it again before the
    /// answer supersedes this restart: its answer will be ignored.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoSession`] before the session exists, [`ClientError::Closed`],
    /// [`ClientError::BadIce`] for credentials that are not ICE's,
    /// [`ClientError::BufferFull`] for more candidates than a buffer holds.
    pub fn restart_ice(
        &mut self,
        ufrag: &str,
        pwd: &str,
        candidates: Vec<Candidate>,
        end: bool,
    ) -> Result<(), ClientError> {
        match self.state {
            State::Established => {}
            State::Closed | State::Deleting { .. } => return Err(ClientError::Closed),
            _ => return Err(ClientError::NoSession),
        }
        if candidates.len() > self.config.max_buffered_candidates {
            return Err(ClientError::BufferFull(candidates.len()));
        }
        IceParams::new(ufrag, pwd)?;
        let Some(old) = self.local.as_ref() else {
            return Err(ClientError::NoSession);
        };
        let ice = LocalIce {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
            ..old.clone()
        };
        let body = ice.fragment(candidates, end)?.to_string();
        let url = self.session_url.clone().ok_or(ClientError::NoSession)?;
        // An unsent restart is replaced rather than sent and ignored.
        self.queue.retain(|t| t.kind != RequestKind::Restart);
        let id = self.push(RequestKind::Restart, Method::PATCH, &url, true, |b| {
            b.header(header::CONTENT_TYPE, crate::sdpfrag::MEDIA_TYPE)
                .header(header::IF_MATCH, "*")
                .body(body)
        })?;
        self.local = Some(ice);
        self.generation += 1;
        self.restart = Some(id);
        self.buffer.clear();
        self.ended = end;
        self.end_pending = false;
        Ok(())
    }

    /// WHEP: answers the server's counter-offer ([`ClientEvent::CounterOffer`]) with the local
    /// SDP answer: a `PATCH` of the session with `application/sdp`. The answer's ICE
    /// credentials become the local ICE session's.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoCounterOffer`] when none is waiting; [`ClientError::BadSdp`].
    pub fn answer_counter_offer(&mut self, sdp: &str) -> Result<(), ClientError> {
        if !matches!(self.state, State::CounterOffered) {
            return Err(ClientError::NoCounterOffer);
        }
        let ice = LocalIce::from_sdp(sdp)?;
        let url = self
            .session_url
            .clone()
            .ok_or(ClientError::NoCounterOffer)?;
        let etag = self.etag.clone();
        let id = self.push(RequestKind::CounterAnswer, Method::PATCH, &url, true, |b| {
            let b = b.header(header::CONTENT_TYPE, SDP_MEDIA_TYPE);
            let b = match &etag {
                Some(tag) => b.header(header::IF_MATCH, tag.as_str()),
                None => b,
            };
            b.body(sdp.to_owned())
        })?;
        if self
            .local
            .as_ref()
            .is_some_and(|old| old.ufrag != ice.ufrag || old.pwd != ice.pwd)
        {
            self.buffer.clear();
            self.ended = false;
            self.end_pending = false;
            self.generation += 1;
        }
        self.local = Some(ice);
        self.state = State::CounterAnswering { id };
        Ok(())
    }

    /// Ends the session: a `DELETE` of the session URL. Buffered candidates are dropped, and
    /// answers to requests still out are ignored from now on. While the offer is still out the
    /// `DELETE` waits for its answer: a session the server creates meanwhile is deleted at once
    /// (and no [`ClientEvent::Answered`] is told); an offer that fails leaves nothing to delete.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoSession`] before an offer was sent, [`ClientError::Closed`] when
    /// already deleted or being deleted.
    pub fn delete(&mut self) -> Result<(), ClientError> {
        match self.state {
            State::Established | State::CounterOffered | State::CounterAnswering { .. } => {
                self.queue_delete()
            }
            State::Offering { .. } => {
                self.delete_requested = true;
                self.buffer.clear();
                Ok(())
            }
            State::Closed | State::Deleting { .. } => Err(ClientError::Closed),
            State::Idle => Err(ClientError::NoSession),
        }
    }

    fn queue_delete(&mut self) -> Result<(), ClientError> {
        let url = self.session_url.clone().ok_or(ClientError::NoSession)?;
        self.queue.clear();
        let id = self.push(RequestKind::Delete, Method::DELETE, &url, true, |b| {
            b.body(String::new())
        })?;
        self.state = State::Deleting { id };
        self.buffer.clear();
        self.trickles.clear();
        self.restart = None;
        self.delete_requested = false;
        Ok(())
    }

    /// The next request to send, if any. Trickle `PATCH`es are built here, from every
    /// candidate waiting, once the session URL and entity-tag are known and no ICE restart is
    /// in flight.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(transmit) = self.queue.pop_front() {
            return Some(transmit);
        }
        self.trickle_transmit()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Reads the response to the request `id`. A response to a request this session no
    /// longer waits for (a superseded restart, anything after a `DELETE`, an unknown id) is
    /// ignored.
    pub fn handle_response<B: AsRef<[u8]>>(&mut self, id: RequestId, response: &Response<B>) {
        let body = response.body().as_ref();
        if body.len() > self.config.max_body_len {
            let error = ResponseError::TooLarge {
                len: body.len(),
                max: self.config.max_body_len,
            };
            self.fail(id, error);
            return;
        }
        match self.kind_of(id) {
            Some(RequestKind::Offer) => self.on_offer_response(id, response.status(), response),
            Some(RequestKind::CounterAnswer) => self.on_counter_answer_response(id, response),
            Some(RequestKind::Trickle) => self.on_trickle_response(id, response),
            Some(RequestKind::Restart) => self.on_restart_response(id, response),
            Some(RequestKind::Delete) => self.on_delete_response(id, response),
            None => {}
        }
    }

    /// No response came for the request `id` (connection refused, reset, timed out). It
    /// fails with [`ResponseError::NoResponse`], as a refusal would.
    pub fn handle_failure(&mut self, id: RequestId) {
        self.fail(id, ResponseError::NoResponse);
    }

    fn check_trickle(&self) -> Result<(), ClientError> {
        match self.state {
            State::Closed | State::Deleting { .. } => return Err(ClientError::Closed),
            State::Idle if self.local.is_none() => return Err(ClientError::NoSession),
            _ => {}
        }
        if self.ended {
            return Err(ClientError::EndedCandidates);
        }
        if self.restart_needed {
            return Err(ClientError::RestartNeeded);
        }
        Ok(())
    }

    /// Which kind of request `id` is that an answer is awaited for.
    fn kind_of(&self, id: RequestId) -> Option<RequestKind> {
        match &self.state {
            State::Offering { id: offer, .. } if *offer == id => return Some(RequestKind::Offer),
            State::CounterAnswering { id: answer, .. } if *answer == id => {
                return Some(RequestKind::CounterAnswer)
            }
            State::Deleting { id: delete } if *delete == id => return Some(RequestKind::Delete),
            _ => {}
        }
        if self.restart == Some(id) {
            return Some(RequestKind::Restart);
        }
        self.trickles
            .iter()
            .any(|t| t.id == id)
            .then_some(RequestKind::Trickle)
    }

    fn fail(&mut self, id: RequestId, error: ResponseError) {
        let Some(kind) = self.kind_of(id) else { return };
        match kind {
            RequestKind::Offer if self.delete_requested => {
                self.delete_requested = false;
                self.state = State::Closed;
            }
            RequestKind::Offer => self.state = State::Idle,
            RequestKind::CounterAnswer => self.state = State::CounterOffered,
            RequestKind::Delete => self.state = State::Established,
            RequestKind::Restart => {
                // The server keeps its ICE session (§4.3.3) but the local agent has moved on:
                // they agree again only after another restart.
                self.restart = None;
                self.restart_needed = true;
                self.buffer.clear();
            }
            RequestKind::Trickle => {
                let Some(pos) = self.trickles.iter().position(|t| t.id == id) else {
                    return;
                };
                let trickle = self.trickles.remove(pos);
                if trickle.generation != self.generation {
                    // A failure of the ICE session a restart already replaced says nothing
                    // about the current one.
                    return;
                }
                if error == ResponseError::StaleEtag {
                    self.restart_needed = true;
                    self.buffer.clear();
                }
            }
        }
        self.events.push_back(ClientEvent::Failed {
            request: id,
            kind,
            error,
        });
    }

    /// Takes the session a `201` (or WHEP's `406` counter-offer) created: its SDP, URL,
    /// entity-tag and ICE servers, leaving the session in `next`. Returns the SDP and the ICE
    /// servers for the application's event; `None` when the response was refused (the offer
    /// failed) or a `DELETE` asked for meanwhile went out in place of the event.
    fn adopt_session<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        response: &Response<B>,
        url: &Url,
        next: State,
    ) -> Option<(String, Vec<IceServer>)> {
        let adopted = sdp_body(response).and_then(|sdp| Ok((sdp, location(response, url)?)));
        let (sdp, session_url) = match adopted {
            Ok(adopted) => adopted,
            Err(e) => {
                self.fail(id, e);
                return None;
            }
        };
        let ice_servers = parse_ice_server_links(response.headers(), self.config.max_ice_servers);
        self.session_url = Some(session_url);
        self.etag = header_str(response.headers(), header::ETAG).map(str::to_owned);
        self.ice_servers = ice_servers.clone();
        self.answer = Some(sdp.clone());
        self.state = next;
        if self.delete_requested {
            // Only fails for a token that is no header value, which the POST had.
            let _ = self.queue_delete();
            return None;
        }
        Some((sdp, ice_servers))
    }

    fn on_offer_response<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        status: StatusCode,
        response: &Response<B>,
    ) {
        let State::Offering {
            url,
            redirects,
            sdp,
            ..
        } = &self.state
        else {
            return;
        };
        let (url, redirects, sdp) = (url.clone(), *redirects, sdp.clone());
        match status {
            StatusCode::CREATED => {
                let Some((answer, ice_servers)) =
                    self.adopt_session(id, response, &url, State::Established)
                else {
                    return;
                };
                self.events.push_back(ClientEvent::Answered {
                    sdp: answer,
                    ice_servers,
                });
            }
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
                if redirects >= self.config.max_redirects {
                    return self.fail(
                        id,
                        ResponseError::TooManyRedirects(self.config.max_redirects),
                    );
                }
                let target = match location(response, &url) {
                    Ok(u) => u,
                    Err(e) => return self.fail(id, e),
                };
                if url.scheme() == "https" && target.scheme() != "https" {
                    return self.fail(id, ResponseError::InsecureRedirect);
                }
                let token = self.config.token_across_origins || target.origin() == url.origin();
                let pushed = self.push(RequestKind::Offer, Method::POST, &target, token, |b| {
                    b.header(header::CONTENT_TYPE, SDP_MEDIA_TYPE)
                        .body(sdp.clone())
                });
                match pushed {
                    Ok(new_id) => {
                        self.state = State::Offering {
                            id: new_id,
                            url: target,
                            redirects: redirects + 1,
                            sdp,
                        };
                    }
                    Err(_) => self.fail(id, ResponseError::BadLocation(target.to_string())),
                }
            }
            StatusCode::NOT_ACCEPTABLE
                if self.config.protocol == Protocol::Whep && is_sdp(response.headers()) =>
            {
                let Some((counter, ice_servers)) =
                    self.adopt_session(id, response, &url, State::CounterOffered)
                else {
                    return;
                };
                self.events.push_back(ClientEvent::CounterOffer {
                    sdp: counter,
                    valid_until: valid_until(response.headers()),
                    ice_servers,
                });
            }
            status => {
                let error = status_error(status, response);
                self.fail(id, error);
            }
        }
    }

    fn on_counter_answer_response<B: AsRef<[u8]>>(
        &mut self,
        id: RequestId,
        response: &Response<B>,
    ) {
        let status = response.status();
        if !status.is_success() {
            return self.fail(id, status_error(status, response));
        }
        self.state = State::Established;
        self.events.push_back(ClientEvent::CounterAnswered);
    }

    fn on_trickle_response<B: AsRef<[u8]>>(&mut self, id: RequestId, response: &Response<B>) {
        let status = response.status();
        if !status.is_success() {
            let error = if status == StatusCode::PRECONDITION_FAILED {
                ResponseError::StaleEtag
            } else {
                status_error(status, response)
            };
            return self.fail(id, error);
        }
        let Some(pos) = self.trickles.iter().position(|t| t.id == id) else {
            return;
        };
        let trickle = self.trickles.remove(pos);
        self.events.push_back(ClientEvent::CandidatesSent {
            count: trickle.count,
            end_of_candidates: trickle.end,
        });
    }

    fn on_restart_response<B: AsRef<[u8]>>(&mut self, id: RequestId, response: &Response<B>) {
        let status = response.status();
        if status != StatusCode::OK {
            let error = if status.is_success() {
                ResponseError::UnexpectedStatus(status)
            } else {
                status_error(status, response)
            };
            return self.fail(id, error);
        }
        let remote = match std::str::from_utf8(response.body().as_ref())
            .map_err(|e| e.to_string())
            .and_then(|text| {
                SdpFrag::parse_with(text, &self.config.frag_limits)
                    .map_err(|e: SdpFragError| e.to_string())
            })
            .and_then(|frag| remote_ice(&frag).ok_or_else(|| "no ice-ufrag and ice-pwd".to_owned()))
        {
            Ok(remote) => remote,
            Err(e) => return self.fail(id, ResponseError::BadFragment(e)),
        };
        self.restart = None;
        self.restart_needed = false;
        self.etag = header_str(response.headers(), header::ETAG).map(str::to_owned);
        self.events.push_back(ClientEvent::IceRestarted(remote));
    }

    fn on_delete_response<B: AsRef<[u8]>>(&mut self, id: RequestId, response: &Response<B>) {
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            self.state = State::Closed;
            self.events.push_back(ClientEvent::Deleted);
        } else {
            self.fail(id, status_error(status, response));
        }
    }

    /// A trickle `PATCH` of every waiting candidate, when one can be sent.
    fn trickle_transmit(&mut self) -> Option<Transmit> {
        let sendable = matches!(self.state, State::Established)
            && self.restart.is_none()
            && !self.restart_needed
            && (!self.buffer.is_empty() || self.end_pending);
        if !sendable {
            return None;
        }
        let local = self.local.as_ref()?;
        let url = self.session_url.clone()?;
        let candidates = std::mem::take(&mut self.buffer);
        let count = candidates.len();
        let end = self.end_pending;
        let body = match local.fragment(candidates, end) {
            Ok(frag) => frag.to_string(),
            // The local ICE parameters were checked when they were set.
            Err(_) => return None,
        };
        let etag = self.etag.clone();
        let id = self
            .build(Method::PATCH, &url, true, |b| {
                let b = b.header(header::CONTENT_TYPE, crate::sdpfrag::MEDIA_TYPE);
                let b = match &etag {
                    Some(tag) => b.header(header::IF_MATCH, tag.as_str()),
                    None => b,
                };
                b.body(body)
            })
            .ok()?;
        self.end_pending = false;
        self.trickles.push(InFlight {
            id: id.id,
            count,
            end,
            generation: self.generation,
        });
        Some(Transmit {
            kind: RequestKind::Trickle,
            ..id
        })
    }

    /// Builds a request and queues it.
    fn push(
        &mut self,
        kind: RequestKind,
        method: Method,
        url: &Url,
        token: bool,
        finish: impl FnOnce(http::request::Builder) -> http::Result<Request<String>>,
    ) -> Result<RequestId, ClientError> {
        let mut transmit = self.build(method, url, token, finish)?;
        transmit.kind = kind;
        let id = transmit.id;
        self.queue.push_back(transmit);
        Ok(id)
    }

    fn build(
        &mut self,
        method: Method,
        url: &Url,
        token: bool,
        finish: impl FnOnce(http::request::Builder) -> http::Result<Request<String>>,
    ) -> Result<Transmit, ClientError> {
        let mut builder = Request::builder().method(method).uri(url.as_str());
        if let (true, Some(token)) = (token, &self.config.bearer_token) {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::BadToken)?;
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let request = finish(builder).map_err(|_| ClientError::BadEndpoint)?;
        self.next_id += 1;
        Ok(Transmit {
            id: RequestId(self.next_id),
            kind: RequestKind::Offer,
            request,
        })
    }
}

/// The server's ICE session in a restart answer, if it has credentials.
fn remote_ice(frag: &SdpFrag) -> Option<RemoteIce> {
    Some(RemoteIce {
        ufrag: frag.ufrag()?.to_owned(),
        pwd: frag.pwd()?.to_owned(),
        lite: frag.ice().lite() || frag.media().iter().any(|m| m.ice().lite()),
        options: frag
            .ice()
            .options()
            .or_else(|| frag.media().first().and_then(|m| m.ice().options()))
            .map(str::to_owned),
        candidates: frag
            .candidates()
            .map(|(mid, c)| (mid.map(str::to_owned), c.clone()))
            .collect(),
        end_of_candidates: frag.end_of_candidates()
            || frag.media().iter().any(FragMedia::end_of_candidates),
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether the `Content-Type` is `application/sdp` (parameters and case ignored).
fn is_sdp(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SDP_MEDIA_TYPE))
}

/// The SDP of an answer or counter-offer body: UTF-8, an SDP with at least one `m=` section.
fn sdp_body<B: AsRef<[u8]>>(response: &Response<B>) -> Result<String, ResponseError> {
    let text = std::str::from_utf8(response.body().as_ref())
        .map_err(|_| ResponseError::BadAnswer("not UTF-8".to_owned()))?;
    let facts = SdpFacts::parse(text).map_err(|e| ResponseError::BadAnswer(e.to_string()))?;
    if facts.sections().is_empty() {
        return Err(ResponseError::BadAnswer("no m= section".to_owned()));
    }
    Ok(text.to_owned())
}

/// The response's `Location`, resolved against the URL the request went to (RFC 9110
/// §10.2.2: a relative reference is resolved as RFC 3986 §5.2 says), without a fragment.
fn location<B>(response: &Response<B>, base: &Url) -> Result<Url, ResponseError> {
    let value =
        header_str(response.headers(), header::LOCATION).ok_or(ResponseError::MissingLocation)?;
    resolve_location(base, value)
}

/// Resolves a `Location` value against the request URL `base` (RFC 3986 §5.2, with the WHATWG
/// URL parser's normalizations), and checks that the result is an `http(s)` URL. The fragment
/// is dropped: it never reaches a server.
///
/// # Errors
///
/// [`ResponseError::BadLocation`] when the reference does not resolve, or not to `http(s)`.
pub fn resolve_location(base: &Url, location: &str) -> Result<Url, ResponseError> {
    let mut url = base
        .join(location)
        .map_err(|_| ResponseError::BadLocation(location.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(ResponseError::BadLocation(location.to_owned()));
    }
    url.set_fragment(None);
    Ok(url)
}

/// The `valid-until` parameter of a counter-offer's `Content-Type`, if it is an HTTP-date.
fn valid_until(headers: &HeaderMap) -> Option<SystemTime> {
    let value = header_str(headers, header::CONTENT_TYPE)?;
    let params = value.split_once(';')?.1;
    let mut scanner = Scanner::new(params);
    loop {
        scanner.skip_ws();
        if scanner.eat(';') {
            continue;
        }
        let name = scanner.token()?;
        scanner.skip_ws();
        if !scanner.eat('=') {
            return None;
        }
        scanner.skip_ws();
        let value = scanner.value()?;
        if name.eq_ignore_ascii_case("valid-until") {
            return httpdate::parse_http_date(&value).ok();
        }
        if scanner.at_end() {
            return None;
        }
    }
}

/// The typed error of a refusal.
fn status_error<B: AsRef<[u8]>>(status: StatusCode, response: &Response<B>) -> ResponseError {
    let retry_after =
        || header_str(response.headers(), header::RETRY_AFTER).and_then(RetryAfter::parse);
    match status {
        StatusCode::UNAUTHORIZED => ResponseError::Unauthorized,
        StatusCode::FORBIDDEN => ResponseError::Forbidden,
        StatusCode::NOT_FOUND => ResponseError::NotFound,
        StatusCode::CONFLICT => ResponseError::Conflict {
            retry_after: retry_after(),
            message: message(response.body().as_ref()),
        },
        StatusCode::SERVICE_UNAVAILABLE => ResponseError::Unavailable {
            retry_after: retry_after(),
        },
        s if s.is_client_error() || s.is_server_error() => ResponseError::Rejected {
            status: s,
            message: message(response.body().as_ref()),
        },
        s => ResponseError::UnexpectedStatus(s),
    }
}

/// Longest error text kept from a response body.
const MAX_MESSAGE: usize = 256;

/// A refusal's body as a one-line message, at most [`MAX_MESSAGE`] bytes.
fn message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The STUN/TURN servers of `Link: <url>; rel="ice-server"` headers (RFC 9725 §4.6,
/// RFC 8288 §3): one [`IceServer`] per link, in order, at most `max`.
///
/// Links may come in several headers or several to a header (separated by commas outside
/// `<...>` and quoted strings). Parameter names are case-insensitive; values may be tokens or
/// quoted strings (with `\` escapes, RFC 9110 §5.6.4). A link is taken when one of its `rel`
/// types is `ice-server` and its URL has a `stun:`, `stuns:`, `turn:` or `turns:` scheme;
/// `username` and `credential` are kept when both are present and `credential-type` is absent
/// or `password` (the only type RFC 9725 defines). A link that cannot be read is skipped, and
/// reading goes on with the next one: this never fails.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use signaling_core::whip::client::parse_ice_server_links;
///
/// let mut headers = HeaderMap::new();
/// headers.append("link", HeaderValue::from_static(
///     "<stun:stun.example.net>; rel=\"ice-server\", \
///      <turn:turn.example.net?transport=udp>; rel=\"ice-server\"; \
///      username=\"user\"; credential=\"myPassword\"; credential-type=\"password\"",
/// ));
/// let servers = parse_ice_server_links(&headers, 16);
/// assert_eq!(servers[0].urls, ["stun:stun.example.net"]);
/// assert_eq!(servers[1].username.as_deref(), Some("user"));
/// assert_eq!(servers[1].credential.as_deref(), Some("myPassword"));
/// ```
pub fn parse_ice_server_links(headers: &HeaderMap, max: usize) -> Vec<IceServer> {
    let mut servers = Vec::new();
    for value in headers.get_all(header::LINK) {
        // A header value that is not visible ASCII (obs-text) is not a link this reads.
        let Ok(text) = value.to_str() else { continue };
        let mut scanner = Scanner::new(text);
        while !scanner.at_end() {
            if servers.len() >= max {
                return servers;
            }
            if let Some(server) = scanner.link() {
                servers.push(server);
            }
            scanner.skip_past_comma();
        }
    }
    servers
}

fn has_ice_scheme(url: &str) -> bool {
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    ["stun", "stuns", "turn", "turns"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
}

/// A cursor over a header value, for `Link` and media-type parameters.
struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// An RFC 9110 token.
    fn token(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .find(|c: char| !is_tchar(c))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(token)
    }

    /// A token or a quoted string, unescaped.
    fn value(&mut self) -> Option<String> {
        if !self.eat('"') {
            return self.token().map(str::to_owned);
        }
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        // An unterminated quoted string.
        self.rest = "";
        None
    }

    /// Skips to just past the next comma outside `<...>` and quoted strings (or to the end).
    fn skip_past_comma(&mut self) {
        let mut in_quotes = false;
        let mut in_angle = false;
        let mut escaped = false;
        for (i, c) in self.rest.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quotes => escaped = true,
                '"' if !in_angle => in_quotes = !in_quotes,
                '<' if !in_quotes => in_angle = true,
                '>' if !in_quotes => in_angle = false,
                ',' if !in_quotes && !in_angle => {
                    self.rest = &self.rest[i + 1..];
                    return;
                }
                _ => {}
            }
        }
        self.rest = "";
    }

    /// One link-value (`<url> *( ";" link-param )`), if it is an ICE server; leaves the cursor
    /// at the comma that ends it, or wherever it stopped making sense.
    fn link(&mut self) -> Option<IceServer> {
        self.skip_ws();
        if !self.eat('<') {
            return None;
        }
        let end = self.rest.find('>')?;
        let url = self.rest[..end].trim();
        self.rest = &self.rest[end + 1..];
        let mut ice_server = false;
        let mut username = None;
        let mut credential = None;
        let mut password_type = true;
        loop {
            self.skip_ws();
            if !self.eat(';') {
                break;
            }
            self.skip_ws();
            let name = self.token()?;
            self.skip_ws();
            let value = if self.eat('=') {
                self.skip_ws();
                Some(self.value()?)
            } else {
                None
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("rel", Some(rel)) => {
                    ice_server = rel
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("ice-server"));
                }
                ("username", Some(v)) => username = Some(v),
                ("credential", Some(v)) => credential = Some(v),
                ("credential-type", Some(v)) => password_type = v.eq_ignore_ascii_case("password"),
                _ => {}
            }
        }
        if !ice_server || !has_ice_scheme(url) || url.is_empty() {
            return None;
        }
        let (username, credential) = match (username, credential, password_type) {
            (Some(u), Some(c), true) => (Some(u), Some(c)),
            _ => (None, None),
        };
        Some(IceServer {
            urls: vec![url.to_owned()],
            username,
            credential,
        })
    }
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}
