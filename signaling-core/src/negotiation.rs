//! The sans-IO offer/answer negotiation state machine.
//!
//! One [`Negotiation`] runs one peer-to-peer signaling session. It mirrors the signaling state of
//! the application's own WebRTC stack (a browser's `RTCPeerConnection`, str0m, webrtc-rs, ...),
//! decides what goes on the wire and in which order, and tells the application what to do with
//! its stack. It follows:
//!
//! - **JSEP** (RFC 9429 §3.2) and the W3C `RTCSignalingState` transition table: `stable`,
//!   `have-local-offer`, `have-remote-offer`, `have-local-pranswer`, `have-remote-pranswer`,
//!   `closed`; provisional answers and rollback (only from `have-local-offer` and
//!   `have-remote-offer`). An illegal local step is an [`ApiError`] and changes nothing.
//! - **Perfect negotiation** (W3C WebRTC 1.0 §10.7): each side is polite or impolite. An offer
//!   that collides with our own (`making_offer` or not `stable`) is ignored by the impolite side
//!   and makes the polite side roll back ([`Event::Rollback`]) and accept it. Either side may
//!   start a renegotiation.
//! - **Trickle ICE** (RFC 8838): remote candidates that arrive before their description are held
//!   (bounded) and released in order after it; local candidates never go out before the
//!   description they belong to; end-of-candidates is an explicit message, nothing is sent after
//!   it and remote candidates after it are ignored; every candidate is delivered exactly once;
//!   an ICE restart (new ufrag/pwd) starts a new generation and candidates of older generations
//!   are dropped and counted ([`Event::CandidatesDropped`]), never applied to the new one.
//!   Candidates without `sdpMid`/`sdpMLineIndex` (the seed client's) are mapped to their
//!   m-section through the BUNDLE group or their ufrag.
//!
//! # The driving loop
//!
//! Inputs are `handle_*` calls (a frame from the peer, a timer) and commands (what the
//! application's WebRTC stack did: [`Negotiation::set_local_description`],
//! [`Negotiation::add_local_candidate`], ...). After **every** input or command, drain
//! [`Negotiation::poll_output`] until it returns [`Output::Timeout`]:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use signaling_core::negotiation::{Config, Event, Negotiation, Output};
//! use signaling_core::wire::SdpKind;
//!
//! let mut session = Negotiation::new(Config::default());
//! let now = Instant::now();
//! // A frame arrived from the peer (here: the seed client's offer).
//! session.handle_frame(now, r#"{"type":"webrtc/offer","value":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=sendonly\r\n"}"#);
//! let mut next_timer = None;
//! loop {
//!     match session.poll_output() {
//!         Output::Transmit(frame) => { /* send `frame` to the peer */ let _ = frame; }
//!         Output::Event(Event::ApplyRemoteDescription(desc)) => {
//!             // Apply it to the WebRTC stack; for an offer, create and set an answer, then
//!             // hand the answer back:
//!             # let answer = "v=0\r\no=- 3 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:Fz9x\r\na=ice-pwd:Q7uYro0UCOQ4zxjKXaWCBui2\r\na=recvonly\r\n";
//!             if desc.kind == SdpKind::Offer {
//!                 session.set_local_description(now, SdpKind::Answer, answer.into()).unwrap();
//!             }
//!         }
//!         Output::Event(other) => { /* candidates to add, state changes, failures */ let _ = other; }
//!         Output::Timeout(at) => { next_timer = at; break; }
//!     }
//! }
//! // ... and when `next_timer` passes: session.handle_timeout(Instant::now()), then drain again.
//! # let _ = (next_timer, Duration::ZERO);
//! ```
//!
//! [`Negotiation::poll_typed_output`] gives the same sequence with each frame as a typed
//! [`Message`] ([`TypedOutput`]) instead of its JSON text, for transports that carry messages
//! (feed them to the peer's [`Negotiation::handle_message`]).
//!
//! Peer misbehaviour (a malformed frame, an answer nobody asked for, a bad candidate) never
//! panics and is never an `Err` from `handle_*`: it becomes an outgoing `error` frame plus an
//! [`Event::PeerError`], and nothing already accepted is lost.
use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use rustc_hash::{FxHashSet, FxHasher};
use std::time::{Duration, Instant};

use crate::candidate::{Candidate, CandidateError};
use crate::sdp::{SdpError, SdpFacts, DEFAULT_MAX_SDP_LEN};
use crate::wire::{
    self, CandidateForm, DecodeError, Description, DescriptionForm, Dialect, EndOfCandidates,
    ErrorMessage, Form, IceCandidate, Message, SdpKind, UnknownMessage, DEFAULT_MAX_FRAME_LEN,
    TYPE_CANDIDATE,
};

/// How many previous remote ICE generations are remembered to recognise stale candidates.
const REMEMBERED_GENERATIONS: usize = 8;
/// Room reserved for candidate hashes when a generation sees its first candidate.
const SEEN_CAPACITY: usize = 32;

/// The signaling state, exactly as the W3C `RTCSignalingState` (RFC 9429 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalingState {
    /// No offer/answer exchange in progress.
    Stable,
    /// A local offer was applied; waiting for the remote answer.
    HaveLocalOffer,
    /// A remote offer was applied; waiting for the local answer.
    HaveRemoteOffer,
    /// A remote offer and a local provisional answer were applied.
    HaveLocalPranswer,
    /// A local offer and a remote provisional answer were applied.
    HaveRemotePranswer,
    /// The session is closed; nothing more happens.
    Closed,
}

impl SignalingState {
    /// The W3C name (`have-local-offer`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SignalingState::Stable => "stable",
            SignalingState::HaveLocalOffer => "have-local-offer",
            SignalingState::HaveRemoteOffer => "have-remote-offer",
            SignalingState::HaveLocalPranswer => "have-local-pranswer",
            SignalingState::HaveRemotePranswer => "have-remote-pranswer",
            SignalingState::Closed => "closed",
        }
    }
}

impl fmt::Display for SignalingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of one negotiation. All bounds are per session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Perfect negotiation role: the polite side rolls back its own offer on a collision, the
    /// impolite side ignores the peer's. Exactly one side of a session must be polite. Default:
    /// `true` (a server answering browsers should yield to them).
    pub polite: bool,
    /// The wire form the peer speaks. Default: [`Dialect::GO2RTC`] (the seed client).
    pub dialect: Dialect,
    /// Write descriptions in the form (v1 or v2) of the peer's last description, and candidates
    /// in the form (string or object) of its last candidate frame; `dialect` decides until the
    /// peer has sent one. A server answering clients of both go2rtc dialects answers each in its
    /// own. Only frames given to [`Negotiation::handle_frame`] count (typed messages carry no
    /// form). Default: `true`.
    pub mirror_dialect: bool,
    /// Take the perfect-negotiation role from a relay's `relay/welcome` (its `polite` hint) as
    /// soon as it arrives, before the frames behind it are handled (see [`crate::relay`]).
    /// Default: `true` (a server answering clients directly never receives a welcome).
    pub relay_role: bool,
    /// How long an offer/answer exchange may stay unfinished (not `stable`) before
    /// [`Event::NegotiationFailed`]. Default: 30 s.
    pub negotiation_timeout: Duration,
    /// How many remote candidates (and end-of-candidates markers) may wait for their
    /// description, and how many local candidates may wait for theirs. Default: 64.
    pub max_pending_candidates: usize,
    /// How many remote candidates one ICE generation may apply. Default: 256.
    pub max_candidates: usize,
    /// Largest accepted SDP, in bytes. Default: [`DEFAULT_MAX_SDP_LEN`].
    pub max_sdp_len: usize,
    /// Largest accepted frame, in bytes. Default: [`DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            polite: true,
            dialect: Dialect::GO2RTC,
            mirror_dialect: true,
            relay_role: true,
            negotiation_timeout: Duration::from_secs(30),
            max_pending_candidates: 64,
            max_candidates: 256,
            max_sdp_len: DEFAULT_MAX_SDP_LEN,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl Config {
    /// The default configuration with the given politeness.
    pub fn new(polite: bool) -> Self {
        Self {
            polite,
            ..Self::default()
        }
    }

    /// Sets the dialect.
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// Sets whether the peer's dialect is mirrored (see [`Config::mirror_dialect`]).
    pub fn with_mirror_dialect(mut self, mirror: bool) -> Self {
        self.mirror_dialect = mirror;
        self
    }

    /// Sets whether the role is taken from a relay's welcome (see [`Config::relay_role`]).
    pub fn with_relay_role(mut self, follow: bool) -> Self {
        self.relay_role = follow;
        self
    }

    /// Sets the negotiation timeout.
    pub fn with_negotiation_timeout(mut self, timeout: Duration) -> Self {
        self.negotiation_timeout = timeout;
        self
    }

    /// Sets the bound on pending candidates.
    pub fn with_max_pending_candidates(mut self, n: usize) -> Self {
        self.max_pending_candidates = n;
        self
    }

    /// Sets the bound on candidates per ICE generation.
    pub fn with_max_candidates(mut self, n: usize) -> Self {
        self.max_candidates = n;
        self
    }
}

/// What the application should do next. Drain with [`Negotiation::poll_output`] until
/// [`Output::Timeout`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Output {
    /// Send this frame to the peer, in order.
    Transmit(String),
    /// Something for the application (see [`Event`]).
    Event(Event),
    /// Nothing more to do now. Call [`Negotiation::handle_timeout`] at this instant (`None`: no
    /// timer is armed).
    Timeout(Option<Instant>),
}

/// [`Output`] with frames still as typed [`Message`]s: what [`Negotiation::poll_typed_output`]
/// returns, for transports that carry messages rather than JSON text (an in-process channel, a
/// codec of their own) and for measuring the state machine without the JSON codec.
///
/// The sequence is exactly the one [`Negotiation::poll_output`] gives: a
/// `TypedOutput::Transmit(m)` stands where `Output::Transmit(wire::encode(&m, dialect))` would,
/// with `dialect` the session's [`Config::dialect`] ([`TypedOutput::into_output`] does that
/// encoding). Both polls take from the same queue, so they can be mixed.
///
/// The message holds exactly what the encoded frame carries, so a peer handed `m` learns what it
/// would from the frame: `wire::decode(&wire::encode(&m, dialect)) == Ok(m)`. Fields the
/// dialect cannot carry are left out (with [`Dialect::GO2RTC`] a candidate is its text alone and
/// end-of-candidates is empty); use [`Dialect::BROWSER`] for candidates with `sdpMid`,
/// `sdpMLineIndex` and `usernameFragment`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum TypedOutput {
    /// Send this message to the peer, in order.
    Transmit(Message),
    /// Something for the application (see [`Event`]).
    Event(Event),
    /// Nothing more to do now (see [`Output::Timeout`]).
    Timeout(Option<Instant>),
}

impl TypedOutput {
    /// The [`Output`] [`Negotiation::poll_output`] gives for this: a message is encoded with
    /// [`wire::encode`] in `dialect`.
    pub fn into_output(self, dialect: Dialect) -> Output {
        match self {
            TypedOutput::Transmit(m) => Output::Transmit(wire::encode(&m, dialect)),
            TypedOutput::Event(e) => Output::Event(e),
            TypedOutput::Timeout(t) => Output::Timeout(t),
        }
    }
}

/// One queued output; frames are kept typed and encoded when polled.
#[derive(Debug)]
enum Queued {
    Transmit(Message),
    Event(Event),
}

/// A remote candidate ready for the application's WebRTC stack (`addIceCandidate`).
///
/// Its text was checked exactly as [`Candidate::parse`] checks it, but no parsed [`Candidate`]
/// is built: most applications hand [`RemoteCandidate::init`] to their stack as it is, and the
/// negotiation itself needs only the candidate's `ufrag`. [`RemoteCandidate::parse`] builds the
/// parsed form when it is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// The candidate as the peer sent it, with `sdp_mid`, `sdp_m_line_index` and
    /// `username_fragment` filled in from the remote description when the peer left them out.
    pub init: IceCandidate,
}

impl RemoteCandidate {
    /// The parsed candidate attribute (parses [`IceCandidate::candidate`] of
    /// [`RemoteCandidate::init`]). It was checked on arrival, so this fails only if `init` was
    /// changed since.
    ///
    /// # Errors
    ///
    /// The [`CandidateError`] [`Candidate::parse`] gives for the text.
    pub fn parse(&self) -> Result<Candidate, CandidateError> {
        Candidate::parse(&self.init.candidate)
    }

    /// The value of the candidate's own `ufrag` extension, if it has one (what
    /// [`Candidate::ufrag`] of [`RemoteCandidate::parse`] gives). Not the filled-in
    /// `init.username_fragment`, which may come from the remote description. Looked up anew at
    /// each call.
    #[must_use]
    pub fn ufrag(&self) -> Option<&str> {
        let text = &self.init.candidate;
        crate::candidate::check(text)
            .ok()
            .flatten()
            .and_then(|range| text.get(range))
    }
}

/// Events for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Apply this remote description to the WebRTC stack (`setRemoteDescription`). For an offer,
    /// then create an answer and hand it to [`Negotiation::set_local_description`].
    ApplyRemoteDescription(Description),
    /// Roll back (or abandon, if it is not set yet) the local offer: the peer's colliding offer
    /// wins (we are polite). The peer's offer follows as [`Event::ApplyRemoteDescription`].
    /// Renegotiate later, from `stable`, if the abandoned offer is still needed.
    Rollback,
    /// Add this remote candidate to the WebRTC stack (`addIceCandidate`).
    AddRemoteCandidate(RemoteCandidate),
    /// The peer has no more candidates for the current ICE generation.
    RemoteEndOfCandidates(EndOfCandidates),
    /// The peer restarted ICE: a new remote generation with this username fragment.
    RemoteIceRestart {
        /// The new remote ufrag.
        username_fragment: String,
    },
    /// The signaling state changed.
    StateChanged(SignalingState),
    /// The peer's offer collided with ours and was ignored (we are impolite).
    OfferIgnored,
    /// An offer/answer exchange finished: the state is back to `stable`.
    Negotiated,
    /// An offer/answer exchange did not finish in time. The state is left as it is: roll back,
    /// retry or close.
    NegotiationFailed(NegotiationFailure),
    /// Remote candidates were dropped and not applied.
    CandidatesDropped {
        /// Why.
        reason: DropReason,
        /// How many.
        count: usize,
    },
    /// The peer sent something invalid; an `error` frame went back and nothing else changed.
    PeerError(PeerError),
    /// The peer reported an error (`{"type":"error",...}`).
    RemoteError(ErrorMessage),
    /// A frame of a type the negotiation does not handle (a relay's `relay/welcome`, an
    /// application's own messages), in its place in the stream. [`crate::relay::Notice::parse`]
    /// reads the relay's.
    Message(UnknownMessage),
}

/// What [`Negotiation::handle_frame`] (or [`Negotiation::handle_message`]) did with one frame.
/// The events it produced say the details; this says which rule applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Handled {
    /// Applied: a description (apply it to the stack), a candidate or end-of-candidates.
    Applied,
    /// A candidate or end-of-candidates held until the description it belongs to arrives.
    Held,
    /// An offer that collided with ours, ignored (this side is impolite).
    Collision,
    /// The same frame again (a description still in force, a candidate already applied):
    /// dropped.
    Duplicate,
    /// A candidate that can no longer apply (an older ICE generation, after
    /// end-of-candidates): dropped.
    Dropped,
    /// Invalid or out of turn: refused, and an `error` frame went back to the peer.
    Refused,
    /// Handed to the application as an event ([`Event::RemoteError`], [`Event::Message`]).
    Delivered,
    /// The session is closed: nothing was done.
    Closed,
}

/// Why a negotiation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiationFailure {
    /// The exchange stayed unfinished for [`Config::negotiation_timeout`].
    Timeout {
        /// The state it was stuck in.
        state: SignalingState,
    },
}

/// Why remote candidates were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// They belong to an older ICE generation (before a restart).
    StaleGeneration,
    /// They arrived after end-of-candidates for their generation (RFC 8838 §14).
    AfterEndOfCandidates,
    /// They name an m-section of an offer this side ignored as a collision (impolite side): the
    /// W3C pattern drops these without an error while it ignores an offer.
    IgnoredOffer,
}

/// Something invalid the peer sent. Each one was answered with an `error` frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The frame could not be decoded.
    #[error("{0}")]
    Decode(#[source] DecodeError),
    /// A description's SDP is malformed.
    #[error("invalid SDP: {0}")]
    InvalidSdp(#[source] SdpError),
    /// A candidate is malformed.
    #[error("invalid candidate: {0}")]
    InvalidCandidate(#[source] CandidateError),
    /// A description that the current state does not allow (an answer without an offer).
    #[error("unexpected {kind} in state {state}")]
    UnexpectedDescription {
        /// The description's kind.
        kind: SdpKind,
        /// Our state when it arrived.
        state: SignalingState,
    },
    /// A candidate names an m-section the remote description does not have.
    #[error("candidate for unknown m-section")]
    UnknownMediaSection,
    /// Too many candidates for one ICE generation.
    #[error("more than {limit} candidates")]
    TooManyCandidates {
        /// The bound ([`Config::max_candidates`]).
        limit: usize,
    },
    /// Too many candidates waiting for their description.
    #[error("more than {limit} candidates before the description")]
    PendingFull {
        /// The bound ([`Config::max_pending_candidates`]).
        limit: usize,
    },
}

/// A command the application gave that is not allowed now. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The operation is not allowed in this signaling state (W3C table).
    #[error("{operation} is not allowed in state {state}")]
    InvalidState {
        /// What was attempted (`set local offer`, `rollback`, ...).
        operation: &'static str,
        /// The state.
        state: SignalingState,
    },
    /// The local SDP is malformed.
    #[error("invalid local SDP: {0}")]
    InvalidSdp(#[source] SdpError),
    /// The local candidate is malformed.
    #[error("invalid local candidate: {0}")]
    InvalidCandidate(#[source] CandidateError),
    /// End-of-candidates was already sent for this ICE generation; the candidate was not sent.
    #[error("candidate after end-of-candidates")]
    AfterEndOfCandidates,
    /// The candidate belongs to an older local ICE generation; it was not sent (harmless).
    #[error("candidate of a previous ICE generation")]
    StaleCandidate,
    /// Too many local candidates are waiting for a local description.
    #[error("more than {limit} local candidates before the local description")]
    PendingFull {
        /// The bound ([`Config::max_pending_candidates`]).
        limit: usize,
    },
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
}

/// Counters, for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Remote candidates handed to the application.
    pub remote_candidates_applied: u64,
    /// Remote candidates (or descriptions) suppressed as exact duplicates.
    pub duplicates_suppressed: u64,
    /// Remote candidates dropped as belonging to an older ICE generation.
    pub stale_candidates_dropped: u64,
    /// Remote candidates ignored after end-of-candidates.
    pub candidates_after_end: u64,
    /// Local candidates sent.
    pub local_candidates_sent: u64,
    /// Invalid things the peer sent.
    pub peer_errors: u64,
    /// Frames of unknown type ignored.
    pub unknown_frames: u64,
}

/// A remote candidate or end-of-candidates, applied at once or waiting for its description
/// (a queue bounded by [`Config::max_pending_candidates`]).
#[derive(Debug)]
enum PendingRemote {
    /// A checked candidate and where the value of its `ufrag` extension lies in its text.
    Candidate(IceCandidate, Option<Range<usize>>),
    End(EndOfCandidates),
}

impl PendingRemote {
    /// The ICE generation (ufrag) the entry names: its `usernameFragment`, else the candidate's
    /// `ufrag` extension.
    fn ufrag(&self) -> Option<&str> {
        match self {
            PendingRemote::Candidate(c, ufrag_at) => candidate_ufrag(c, ufrag_at),
            PendingRemote::End(e) => e.username_fragment.as_deref(),
        }
    }
}

/// A candidate's `usernameFragment`, else its `ufrag` extension (at `ufrag_at` in its text).
fn candidate_ufrag<'a>(c: &'a IceCandidate, ufrag_at: &Option<Range<usize>>) -> Option<&'a str> {
    c.username_fragment
        .as_deref()
        .or_else(|| ufrag_at.clone().and_then(|r| c.candidate.get(r)))
}

/// One remote or local ICE generation.
#[derive(Clone, Debug, Default)]
struct Generation {
    /// The ufrag, when known; shared with every candidate it is filled into.
    ufrag: Option<Arc<str>>,
    /// Hashes of candidates seen in this generation (exactly-once).
    seen: FxHashSet<u64>,
    /// End-of-candidates seen/sent.
    ended: bool,
}

impl Generation {
    fn new(ufrag: Option<&str>) -> Self {
        Self {
            ufrag: ufrag.map(Arc::from),
            ..Self::default()
        }
    }
}

/// What one description's candidates are filled in from, made on first use: its mids as shared
/// strings (filling a candidate's `sdp_mid` is then a reference count, not an allocation) and
/// the section its BUNDLE group names first.
#[derive(Debug, Default)]
struct MidCache {
    mids: Vec<(usize, Arc<str>)>,
    /// `Some(found)` once looked for: the index of the first mid of the first non-empty BUNDLE
    /// group, which [`SdpFacts::default_mid`] gives whatever the ufrag.
    bundle_default: Option<Option<usize>>,
}

impl MidCache {
    /// Forgets everything: a new description.
    fn clear(&mut self) {
        self.mids.clear();
        self.bundle_default = None;
    }

    /// The mid of section `index` of `facts` (the description this cache belongs to).
    fn get(&mut self, facts: &SdpFacts, index: usize) -> Option<Arc<str>> {
        if let Some((_, mid)) = self.mids.iter().find(|(i, _)| *i == index) {
            return Some(Arc::clone(mid));
        }
        let mid: Arc<str> = Arc::from(facts.mid_at(index)?);
        self.mids.push((index, Arc::clone(&mid)));
        Some(mid)
    }

    /// The index of the section `facts.default_mid(ufrag)` names, when it has one.
    fn default_index(&mut self, facts: &SdpFacts, ufrag: Option<&str>) -> Option<usize> {
        let bundle = *self.bundle_default.get_or_insert_with(|| {
            let mid = facts.bundle_groups().iter().find_map(|g| g.first())?;
            facts.index_of_mid(mid)
        });
        // Without a BUNDLE group the default depends on the ufrag: looked up each time.
        bundle.or_else(|| facts.index_of_mid(facts.default_mid(ufrag)?))
    }
}

/// One signaling session's offer/answer state machine. See the [module docs](self) for the
/// standards it follows and the driving loop.
#[derive(Debug)]
pub struct Negotiation {
    config: Config,
    /// The dialect frames are written in: `config.dialect`, then the peer's when mirrored.
    dialect: Dialect,
    state: SignalingState,
    making_offer: bool,
    /// Facts of the current remote description (the last one applied).
    remote: Option<SdpFacts>,
    /// The mids of `remote`, shared.
    remote_mids: MidCache,
    remote_gen: Generation,
    /// ufrags of older remote generations, newest last.
    old_remote_ufrags: VecDeque<Arc<str>>,
    /// The remote offer being answered is the first remote description (nothing to go back to
    /// if it is rejected).
    remote_offer_is_first: bool,
    /// Hash of the last remote description applied, while it is the step in force (nothing
    /// happened locally since): the same description again is then a duplicate delivery, not a
    /// new round.
    last_remote: Option<u64>,
    /// An offer was ignored as a collision and no remote description has been applied since
    /// (the W3C pattern's `ignoreOffer`).
    ignoring_offer: bool,
    /// The local description and generation in force before the current local offer, to
    /// return to when that offer is rolled back (a rolled-back offer was never negotiated).
    before_offer: Option<(Option<SdpFacts>, Generation)>,
    /// Hash of the last remote answer applied: the same answer again while `stable` is a
    /// duplicate too (no answer can start a round).
    last_remote_answer: Option<u64>,
    pending_remote: VecDeque<PendingRemote>,
    /// Facts of the current local description (the last one sent).
    local: Option<SdpFacts>,
    /// The mids of `local`, shared.
    local_mids: MidCache,
    local_gen: Generation,
    old_local_ufrags: VecDeque<Arc<str>>,
    /// Local candidates waiting for a local description, each with where its `ufrag`
    /// extension's value lies in its text and whether the text needs no JSON escaping.
    pending_local: VecDeque<(IceCandidate, Option<Range<usize>>)>,
    deadline: Option<Instant>,
    out: VecDeque<Queued>,
    stats: Stats,
}

impl Negotiation {
    /// A new session in state `stable`.
    pub fn new(config: Config) -> Self {
        Self {
            dialect: config.dialect,
            config,
            state: SignalingState::Stable,
            making_offer: false,
            remote: None,
            remote_mids: MidCache::default(),
            remote_gen: Generation::default(),
            remote_offer_is_first: false,
            old_remote_ufrags: VecDeque::new(),
            last_remote: None,
            last_remote_answer: None,
            ignoring_offer: false,
            before_offer: None,
            pending_remote: VecDeque::new(),
            local: None,
            local_mids: MidCache::default(),
            local_gen: Generation::default(),
            old_local_ufrags: VecDeque::new(),
            pending_local: VecDeque::new(),
            deadline: None,
            // Room for what one input usually produces (a description with its events, a few
            // candidates) without regrowing; 14 entries are just under 1 KiB, which glibc's
            // allocator serves from its per-thread cache (16 were measurably slower).
            out: VecDeque::with_capacity(14),
            stats: Stats::default(),
        }
    }

    /// The current signaling state.
    pub fn signaling_state(&self) -> SignalingState {
        self.state
    }

    /// Whether this side is polite.
    pub fn is_polite(&self) -> bool {
        self.config.polite
    }

    /// Sets the perfect-negotiation role, e.g. when a relay's `relay/welcome` says it (see
    /// [`crate::relay::Notice`]). It decides how the next colliding offer is handled.
    pub fn set_polite(&mut self, polite: bool) {
        self.config.polite = polite;
    }

    /// The dialect this side's frames are written in now (the configured one, or the peer's
    /// when [`Config::mirror_dialect`] is on and the peer has sent a description or candidate).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether an offer is being made ([`Negotiation::start_offer`] was called and the offer has
    /// not been applied or abandoned yet).
    pub fn making_offer(&self) -> bool {
        self.making_offer
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The facts of the current remote description, once one was applied.
    pub fn remote_description(&self) -> Option<&SdpFacts> {
        self.remote.as_ref()
    }

    /// The facts of the current local description, once one was set.
    pub fn local_description(&self) -> Option<&SdpFacts> {
        self.local.as_ref()
    }

    /// When [`Negotiation::handle_timeout`] is next due (the instant [`Output::Timeout`]
    /// carries), without draining anything.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next output. Call after every input and command until it returns
    /// [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        match self.out.pop_front() {
            Some(Queued::Transmit(m)) => Output::Transmit(wire::encode(&m, self.dialect)),
            Some(Queued::Event(e)) => Output::Event(e),
            None => Output::Timeout(self.deadline),
        }
    }

    /// The next output with frames as typed messages, not encoded: see [`TypedOutput`]. Drain it
    /// the same way as [`Negotiation::poll_output`], until [`TypedOutput::Timeout`].
    pub fn poll_typed_output(&mut self) -> TypedOutput {
        match self.out.pop_front() {
            Some(Queued::Transmit(m)) => TypedOutput::Transmit(m),
            Some(Queued::Event(e)) => TypedOutput::Event(e),
            None => TypedOutput::Timeout(self.deadline),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Commands from the application

    /// Perfect negotiation's `makingOffer = true`: the application is about to create an offer
    /// (on `negotiationneeded`). Allowed where a local offer is: in `stable` and
    /// `have-local-offer`. Follow with [`Negotiation::set_local_description`] (offer) once the
    /// stack produced it, or [`Negotiation::cancel_offer`] if it could not; if an
    /// [`Event::Rollback`] comes first, the offer is abandoned.
    pub fn start_offer(&mut self, now: Instant) -> Result<(), ApiError> {
        let _ = now;
        self.check_open()?;
        if !matches!(
            self.state,
            SignalingState::Stable | SignalingState::HaveLocalOffer
        ) {
            return Err(ApiError::InvalidState {
                operation: "start offer",
                state: self.state,
            });
        }
        self.making_offer = true;
        Ok(())
    }

    /// The application could not make the offer it announced with
    /// [`Negotiation::start_offer`] (the stack failed to create or apply it): clears
    /// `making_offer`, as the W3C pattern does in its `finally`, so that the peer's next offer is
    /// not taken for a collision. Nothing is sent; the state does not change. A no-op when no
    /// offer is being made.
    pub fn cancel_offer(&mut self, now: Instant) -> Result<(), ApiError> {
        let _ = now;
        self.check_open()?;
        self.making_offer = false;
        Ok(())
    }

    /// The application applied a local description to its stack (`setLocalDescription`):
    /// validates the step against the W3C table, sends the description, then any local
    /// candidates that were waiting for it.
    ///
    /// Allowed: an offer in `stable` or `have-local-offer`; an answer in `have-remote-offer` or
    /// `have-local-pranswer`; a provisional answer in `have-remote-offer` or
    /// `have-local-pranswer`.
    pub fn set_local_description(
        &mut self,
        now: Instant,
        kind: SdpKind,
        sdp: String,
    ) -> Result<(), ApiError> {
        use SignalingState as S;
        self.check_open()?;
        let next = match (kind, self.state) {
            (SdpKind::Offer, S::Stable | S::HaveLocalOffer) => S::HaveLocalOffer,
            (SdpKind::Answer, S::HaveRemoteOffer | S::HaveLocalPranswer) => S::Stable,
            (SdpKind::Pranswer, S::HaveRemoteOffer | S::HaveLocalPranswer) => S::HaveLocalPranswer,
            (_, state) => {
                return Err(ApiError::InvalidState {
                    operation: match kind {
                        SdpKind::Offer => "set local offer",
                        SdpKind::Answer => "set local answer",
                        SdpKind::Pranswer => "set local pranswer",
                    },
                    state,
                })
            }
        };
        let facts = SdpFacts::parse_with_limit(&sdp, self.config.max_sdp_len)
            .map_err(ApiError::InvalidSdp)?;
        if kind == SdpKind::Offer {
            self.making_offer = false;
            if self.state == S::Stable {
                self.before_offer = Some((self.local.clone(), self.local_gen.clone()));
            }
        } else {
            self.before_offer = None;
        }
        // A new local step: the same remote description again would be a new round.
        self.last_remote = None;
        let ufrag = facts.ice_credentials().map(|(u, _)| u);
        if ufrag != self.local_gen.ufrag.as_deref() || self.local.is_none() {
            if let Some(old) = self.local_gen.ufrag.take() {
                push_bounded(&mut self.old_local_ufrags, old, REMEMBERED_GENERATIONS);
            }
            self.local_gen = Generation::new(ufrag);
        }
        if facts.end_of_candidates() {
            self.local_gen.ended = true;
        }
        self.local = Some(facts);
        self.local_mids.clear();
        self.transmit(Message::Description(Description::new(kind, sdp)));
        self.set_state(now, next);
        if next == S::Stable {
            self.push_event(Event::Negotiated);
        }
        // Local candidates that were waiting for this description.
        let pending = std::mem::take(&mut self.pending_local);
        for (c, ufrag) in pending {
            // Candidates of another generation are dropped: they cannot belong to this one.
            let _ = self.send_local_candidate(c, ufrag);
        }
        Ok(())
    }

    /// Rolls back the local or remote offer (RFC 9429 §4.1.8.2), returning to `stable`. Allowed
    /// only in `have-local-offer` and `have-remote-offer`.
    pub fn rollback(&mut self, now: Instant) -> Result<(), ApiError> {
        self.check_open()?;
        match self.state {
            SignalingState::HaveLocalOffer | SignalingState::HaveRemoteOffer => {
                if self.state == SignalingState::HaveLocalOffer {
                    self.restore_before_offer();
                }
                self.making_offer = false;
                self.last_remote = None;
                self.set_state(now, SignalingState::Stable);
                Ok(())
            }
            state => Err(ApiError::InvalidState {
                operation: "rollback",
                state,
            }),
        }
    }

    /// The application's stack could not apply the remote offer it was given
    /// ([`Event::ApplyRemoteDescription`]): an unsupported codec, no usable m-section, a stack
    /// error. Returns to `stable` (as a rollback of the remote offer), drops the candidates held
    /// for it, and tells the peer with an `error` frame `"<the offer's type>: <reason>"`
    /// (go2rtc's form). The peer may send another offer. Allowed only in `have-remote-offer`.
    pub fn reject_remote_description(
        &mut self,
        now: Instant,
        reason: &str,
    ) -> Result<(), ApiError> {
        self.check_open()?;
        if self.state != SignalingState::HaveRemoteOffer {
            return Err(ApiError::InvalidState {
                operation: "reject remote description",
                state: self.state,
            });
        }
        let request_type = match self.dialect.descriptions {
            DescriptionForm::V1 => wire::TYPE_OFFER,
            DescriptionForm::V2 => wire::TYPE_WEBRTC,
        };
        self.pending_remote.clear();
        // The peer may offer the same SDP again once it has fixed what it can: that is a new
        // round.
        self.last_remote = None;
        if self.remote_offer_is_first {
            // Nothing was negotiated: later candidates wait for the next offer again.
            self.remote = None;
            self.remote_mids.clear();
            self.remote_gen = Generation::default();
        }
        self.stats.peer_errors += 1;
        self.transmit(Message::Error(ErrorMessage::new(request_type, reason)));
        self.set_state(now, SignalingState::Stable);
        Ok(())
    }

    /// The application's stack gathered a local candidate: sends it, or holds it until the
    /// local description it belongs to has gone out.
    ///
    /// An empty `sdp_mid` counts as none given (some stacks' `toJSON()` write `""`).
    pub fn add_local_candidate(
        &mut self,
        now: Instant,
        mut candidate: IceCandidate,
    ) -> Result<(), ApiError> {
        let _ = now;
        self.check_open()?;
        if candidate.sdp_mid.as_deref() == Some("") {
            candidate.sdp_mid = None;
        }
        let checked =
            crate::candidate::check(&candidate.candidate).map_err(ApiError::InvalidCandidate)?;
        if self.local.is_none() {
            if self.pending_local.len() >= self.config.max_pending_candidates {
                return Err(ApiError::PendingFull {
                    limit: self.config.max_pending_candidates,
                });
            }
            self.pending_local.push_back((candidate, checked));
            return Ok(());
        }
        self.send_local_candidate(candidate, checked)
    }

    /// The application's stack finished gathering for the current local ICE generation: sends
    /// end-of-candidates. Nothing more is sent for this generation.
    pub fn end_of_local_candidates(&mut self, now: Instant) -> Result<(), ApiError> {
        let _ = now;
        self.check_open()?;
        if self.local.is_none() {
            return Err(ApiError::InvalidState {
                operation: "end of candidates before a local description",
                state: self.state,
            });
        }
        if self.local_gen.ended {
            return Ok(());
        }
        self.local_gen.ended = true;
        let eoc = match self.dialect.candidates {
            // The bare string form is `""` (see `TypedOutput`).
            CandidateForm::String => EndOfCandidates::default(),
            CandidateForm::Object => {
                let sdp_mid = self.local_default_mid(None);
                self.fill_local_index(EndOfCandidates {
                    sdp_mid,
                    sdp_m_line_index: None,
                    username_fragment: self.local_gen.ufrag.clone(),
                })
            }
        };
        self.transmit(Message::EndOfCandidates(eoc));
        Ok(())
    }

    /// Closes the session: state `closed`, timers off, everything pending dropped. Further
    /// commands fail with [`ApiError::Closed`]; inputs are ignored.
    pub fn close(&mut self) {
        if self.state == SignalingState::Closed {
            return;
        }
        self.pending_local.clear();
        self.pending_remote.clear();
        self.making_offer = false;
        self.deadline = None;
        self.state = SignalingState::Closed;
        self.push_event(Event::StateChanged(SignalingState::Closed));
    }

    // -----------------------------------------------------------------------------------------
    // Inputs

    /// A frame arrived from the peer. Decodes and handles it; a malformed frame is answered with
    /// an `error` frame and an [`Event::PeerError`].
    pub fn handle_frame(&mut self, now: Instant, frame: &str) -> Handled {
        if self.state == SignalingState::Closed {
            return Handled::Closed;
        }
        match wire::decode_with_form(frame, self.config.max_frame_len) {
            Ok((message, form)) => {
                if self.config.mirror_dialect {
                    match form {
                        Some(Form::Description(form)) => self.dialect.descriptions = form,
                        Some(Form::Candidate(form)) => self.dialect.candidates = form,
                        None => {}
                    }
                }
                self.handle_message(now, message)
            }
            Err(e) => {
                let kind = e.request_type();
                self.peer_error(kind, PeerError::Decode(e));
                Handled::Refused
            }
        }
    }

    /// A decoded message arrived from the peer.
    pub fn handle_message(&mut self, now: Instant, message: Message) -> Handled {
        if self.state == SignalingState::Closed {
            return Handled::Closed;
        }
        match message {
            Message::Description(d) => self.handle_description(now, d),
            Message::Candidate(c) => self.handle_candidate(c),
            Message::EndOfCandidates(e) => self.route_remote(PendingRemote::End(e)),
            Message::Error(e) => {
                self.push_event(Event::RemoteError(e));
                Handled::Delivered
            }
            Message::Unknown(u) => {
                self.stats.unknown_frames += 1;
                if self.config.relay_role {
                    if let Some(crate::relay::Notice::Welcome(w)) = crate::relay::Notice::parse(&u)
                    {
                        self.config.polite = w.polite;
                    }
                }
                self.push_event(Event::Message(u));
                Handled::Delivered
            }
        }
    }

    /// Time passed. Call at (or after) the instant the last [`Output::Timeout`] gave.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.deadline {
            if now >= deadline {
                self.deadline = None;
                self.push_event(Event::NegotiationFailed(NegotiationFailure::Timeout {
                    state: self.state,
                }));
            }
        }
    }

    fn handle_description(&mut self, now: Instant, d: Description) -> Handled {
        use SignalingState as S;
        let request_type = d.type_name();
        let hash = hash_of(&(d.kind, &d.sdp));
        let repeated_answer = d.kind == SdpKind::Answer
            && self.state == S::Stable
            && self.last_remote_answer == Some(hash);
        if self.last_remote == Some(hash) || repeated_answer {
            // The description in force, delivered again (a transport duplicate). Once anything
            // happened locally, the same SDP is a new round (RFC 3264 allows an unchanged offer).
            self.stats.duplicates_suppressed += 1;
            return Handled::Duplicate;
        }
        if d.kind == SdpKind::Offer {
            // Perfect negotiation: the impolite side ignores an offer that collides with its own.
            let collision = self.making_offer || self.state != S::Stable;
            if collision && !self.config.polite {
                self.ignoring_offer = true;
                self.push_event(Event::OfferIgnored);
                return Handled::Collision;
            }
        }
        // The W3C table for remote descriptions (the polite side's implicit rollback makes an
        // offer in have-local-offer legal).
        let next = match (d.kind, self.state) {
            (SdpKind::Offer, S::Stable | S::HaveLocalOffer | S::HaveRemoteOffer) => {
                S::HaveRemoteOffer
            }
            (SdpKind::Answer, S::HaveLocalOffer | S::HaveRemotePranswer) => S::Stable,
            (SdpKind::Pranswer, S::HaveLocalOffer | S::HaveRemotePranswer) => S::HaveRemotePranswer,
            (kind, state) => {
                self.peer_error(
                    request_type,
                    PeerError::UnexpectedDescription { kind, state },
                );
                return Handled::Refused;
            }
        };
        let facts = match SdpFacts::parse_with_limit(&d.sdp, self.config.max_sdp_len) {
            Ok(f) => f,
            Err(e) => {
                self.peer_error(request_type, PeerError::InvalidSdp(e));
                return Handled::Refused;
            }
        };
        self.last_remote = Some(hash);
        if d.kind != SdpKind::Offer {
            // Our offer is answered: it is no longer one to roll back.
            self.before_offer = None;
        }
        if d.kind == SdpKind::Answer {
            self.last_remote_answer = Some(hash);
        }
        // Perfect negotiation, polite side: our own offer (applied or being made) gives way.
        if d.kind == SdpKind::Offer && (self.making_offer || self.state == S::HaveLocalOffer) {
            self.making_offer = false;
            self.pending_local.clear();
            self.push_event(Event::Rollback);
            if self.state == S::HaveLocalOffer {
                self.restore_before_offer();
                self.set_state(now, S::Stable);
            }
        }
        // A new ICE generation?
        let ufrag = facts.ice_credentials().map(|(u, _)| u);
        let restart = match (&self.remote, ufrag) {
            (Some(_), Some(u)) => self.remote_gen.ufrag.as_deref() != Some(u),
            (None, _) => true,
            (Some(_), None) => false,
        };
        let is_first = self.remote.is_none();
        self.remote_offer_is_first = is_first;
        if restart {
            if let Some(old) = self.remote_gen.ufrag.take() {
                push_bounded(&mut self.old_remote_ufrags, old, REMEMBERED_GENERATIONS);
            }
            self.remote_gen = Generation::new(ufrag);
        }
        if facts.end_of_candidates() {
            self.remote_gen.ended = true;
        }
        self.remote = Some(facts);
        self.remote_mids.clear();
        self.push_event(Event::ApplyRemoteDescription(d));
        if restart && !is_first {
            if let Some(u) = self.remote_gen.ufrag.clone() {
                self.push_event(Event::RemoteIceRestart {
                    username_fragment: u.as_ref().to_owned(),
                });
            }
        }
        self.set_state(now, next);
        if next == S::Stable {
            self.push_event(Event::Negotiated);
        }
        // Candidates held while an offer was ignored are released under the rule of that time.
        self.release_pending_remote();
        self.ignoring_offer = false;
        Handled::Applied
    }

    fn handle_candidate(&mut self, mut c: IceCandidate) -> Handled {
        if c.sdp_mid.as_deref() == Some("") {
            c.sdp_mid = None;
        }
        match crate::candidate::check(&c.candidate) {
            Ok(ufrag_at) => self.route_remote(PendingRemote::Candidate(c, ufrag_at)),
            Err(e) => {
                self.peer_error(TYPE_CANDIDATE, PeerError::InvalidCandidate(e));
                Handled::Refused
            }
        }
    }

    /// Applies, holds or drops one remote candidate / end-of-candidates.
    fn route_remote(&mut self, entry: PendingRemote) -> Handled {
        match self.classify_generation(entry.ufrag()) {
            Gen::Current => self.apply_remote(entry),
            Gen::Stale => {
                self.drop_remote(DropReason::StaleGeneration, 1);
                Handled::Dropped
            }
            Gen::Unknown => {
                if self.pending_remote.len() >= self.config.max_pending_candidates {
                    let limit = self.config.max_pending_candidates;
                    self.peer_error(TYPE_CANDIDATE, PeerError::PendingFull { limit });
                    Handled::Refused
                } else {
                    self.pending_remote.push_back(entry);
                    Handled::Held
                }
            }
        }
    }

    fn classify_generation(&self, ufrag: Option<&str>) -> Gen {
        if self.remote.is_none() {
            return Gen::Unknown;
        }
        match ufrag {
            None => Gen::Current,
            Some(u) if self.remote_gen.ufrag.as_deref() == Some(u) => Gen::Current,
            // A description without ICE credentials: every candidate belongs to it.
            Some(_) if self.remote_gen.ufrag.is_none() => Gen::Current,
            Some(u) if self.old_remote_ufrags.iter().any(|o| **o == *u) => Gen::Stale,
            Some(_) => Gen::Unknown,
        }
    }

    fn release_pending_remote(&mut self) {
        let pending = std::mem::take(&mut self.pending_remote);
        let mut stale = 0;
        for entry in pending {
            match self.classify_generation(entry.ufrag()) {
                Gen::Current => {
                    self.apply_remote(entry);
                }
                // Held for a description that has now been superseded: it can never apply.
                Gen::Stale | Gen::Unknown => stale += 1,
            }
        }
        if stale > 0 {
            self.drop_remote(DropReason::StaleGeneration, stale);
        }
    }

    fn apply_remote(&mut self, entry: PendingRemote) -> Handled {
        match entry {
            PendingRemote::Candidate(mut init, ufrag_at) => {
                if self.remote_gen.ended {
                    self.drop_remote(DropReason::AfterEndOfCandidates, 1);
                    return Handled::Dropped;
                }
                let ufrag = candidate_ufrag(&init, &ufrag_at);
                let key = hash_of(&(&init.candidate, ufrag));
                // A duplicate is suppressed before any bound or section check. Below the bound,
                // one insertion both checks and records it (undone if the candidate is refused).
                let seen = &mut self.remote_gen.seen;
                if seen.len() >= self.config.max_candidates {
                    if seen.contains(&key) {
                        self.stats.duplicates_suppressed += 1;
                        return Handled::Duplicate;
                    }
                    let limit = self.config.max_candidates;
                    self.peer_error(TYPE_CANDIDATE, PeerError::TooManyCandidates { limit });
                    return Handled::Refused;
                }
                if seen.capacity() == 0 {
                    // Browsers send a handful to a few dozen candidates per generation: one
                    // allocation instead of a rehash at every doubling.
                    seen.reserve(SEEN_CAPACITY);
                }
                if !seen.insert(key) {
                    self.stats.duplicates_suppressed += 1;
                    return Handled::Duplicate;
                }
                match self.resolve_section(init.sdp_mid.as_deref(), init.sdp_m_line_index, ufrag) {
                    Ok(section) => {
                        self.fill_section(section, &mut init.sdp_mid, &mut init.sdp_m_line_index)
                    }
                    Err(PeerError::UnknownMediaSection) if self.ignoring_offer => {
                        // Trickled behind the offer we ignored: no error (W3C's pattern
                        // swallows addIceCandidate's while ignoreOffer is set).
                        self.remote_gen.seen.remove(&key);
                        self.drop_remote(DropReason::IgnoredOffer, 1);
                        return Handled::Dropped;
                    }
                    Err(e) => {
                        self.remote_gen.seen.remove(&key);
                        self.peer_error(TYPE_CANDIDATE, e);
                        return Handled::Refused;
                    }
                }
                if init.username_fragment.is_none() {
                    init.username_fragment = self.remote_gen.ufrag.clone();
                }
                self.stats.remote_candidates_applied += 1;
                self.push_event(Event::AddRemoteCandidate(RemoteCandidate { init }));
                Handled::Applied
            }
            PendingRemote::End(mut e) => {
                if self.remote_gen.ended {
                    return Handled::Duplicate;
                }
                match self.resolve_section(
                    e.sdp_mid.as_deref(),
                    e.sdp_m_line_index,
                    e.username_fragment.as_deref(),
                ) {
                    Ok(section) => {
                        self.fill_section(section, &mut e.sdp_mid, &mut e.sdp_m_line_index)
                    }
                    Err(_) => {
                        // End-of-candidates applies to the whole generation anyway.
                        e.sdp_mid = None;
                        e.sdp_m_line_index = None;
                    }
                }
                if e.username_fragment.is_none() {
                    e.username_fragment = self.remote_gen.ufrag.clone();
                }
                self.remote_gen.ended = true;
                self.push_event(Event::RemoteEndOfCandidates(e));
                Handled::Applied
            }
        }
    }

    /// Checks the m-section of a remote candidate against the remote description and says what
    /// to fill in (see [`Fill`]).
    fn resolve_section(
        &mut self,
        mid: Option<&str>,
        index: Option<u16>,
        ufrag: Option<&str>,
    ) -> Result<Fill, PeerError> {
        let Some(facts) = &self.remote else {
            return Ok(Fill::Nothing);
        };
        if facts.sections().is_empty() {
            return Ok(Fill::Nothing);
        }
        match (mid, index) {
            (Some(m), _) => {
                let i = facts
                    .index_of_mid(m)
                    .ok_or(PeerError::UnknownMediaSection)?;
                Ok(match index {
                    None => Fill::Index(u16::try_from(i).ok()),
                    Some(_) => Fill::Nothing,
                })
            }
            (None, Some(i)) => {
                let i = usize::from(i);
                facts.mid_at(i).ok_or(PeerError::UnknownMediaSection)?;
                Ok(Fill::Mid(i))
            }
            (None, None) => Ok(match self.remote_mids.default_index(facts, ufrag) {
                Some(i) => Fill::MidAndIndex(i),
                // A default mid is a section's mid, so this is "no default mid".
                None => Fill::Index(Some(0)),
            }),
        }
    }

    /// Fills in what [`Negotiation::resolve_section`] found, the mid shared from the remote
    /// description's.
    fn fill_section(&mut self, fill: Fill, mid: &mut Option<Arc<str>>, index: &mut Option<u16>) {
        let Some(facts) = &self.remote else {
            return;
        };
        match fill {
            Fill::Nothing => {}
            Fill::Index(i) => *index = i,
            Fill::Mid(i) => *mid = self.remote_mids.get(facts, i),
            Fill::MidAndIndex(i) => {
                *mid = self.remote_mids.get(facts, i);
                *index = u16::try_from(i).ok();
            }
        }
    }

    fn drop_remote(&mut self, reason: DropReason, count: usize) {
        match reason {
            DropReason::StaleGeneration => self.stats.stale_candidates_dropped += count as u64,
            DropReason::AfterEndOfCandidates => self.stats.candidates_after_end += count as u64,
            DropReason::IgnoredOffer => self.stats.stale_candidates_dropped += count as u64,
        }
        self.push_event(Event::CandidatesDropped { reason, count });
    }

    // -----------------------------------------------------------------------------------------
    // Local candidates

    /// `ufrag_at`: where the candidate's `ufrag` extension value lies in its text.
    fn send_local_candidate(
        &mut self,
        mut c: IceCandidate,
        ufrag_at: Option<Range<usize>>,
    ) -> Result<(), ApiError> {
        let ufrag = c
            .username_fragment
            .as_deref()
            .or_else(|| ufrag_at.and_then(|r| c.candidate.get(r)));
        if let (Some(u), Some(current)) = (ufrag, &self.local_gen.ufrag) {
            if u != &**current {
                return Err(ApiError::StaleCandidate);
            }
        }
        if self.local_gen.ended {
            return Err(ApiError::AfterEndOfCandidates);
        }
        let key = hash_of(&c.candidate);
        if self.local_gen.seen.capacity() == 0 {
            self.local_gen.seen.reserve(SEEN_CAPACITY);
        }
        if !self.local_gen.seen.insert(key) {
            return Ok(());
        }
        self.stats.local_candidates_sent += 1;
        if self.dialect.candidates == CandidateForm::String {
            // The bare string carries the text only (see `TypedOutput`).
            self.transmit(Message::Candidate(IceCandidate::new(c.candidate)));
            return Ok(());
        }
        if c.sdp_mid.is_none() && c.sdp_m_line_index.is_none() {
            c.sdp_mid = self.local_default_mid(ufrag);
        }
        if c.sdp_m_line_index.is_none() {
            if let (Some(m), Some(facts)) = (&c.sdp_mid, &self.local) {
                c.sdp_m_line_index = facts.index_of_mid(m).and_then(|i| u16::try_from(i).ok());
            }
        }
        if c.username_fragment.is_none() {
            c.username_fragment = self.local_gen.ufrag.clone();
        }
        self.transmit(Message::Candidate(c));
        Ok(())
    }

    fn local_default_mid(&mut self, ufrag: Option<&str>) -> Option<Arc<str>> {
        let facts = self.local.as_ref()?;
        let index = self.local_mids.default_index(facts, ufrag)?;
        self.local_mids.get(facts, index)
    }

    fn fill_local_index(&self, mut e: EndOfCandidates) -> EndOfCandidates {
        if let (Some(m), Some(facts)) = (&e.sdp_mid, &self.local) {
            e.sdp_m_line_index = facts.index_of_mid(m).and_then(|i| u16::try_from(i).ok());
        }
        e
    }

    // -----------------------------------------------------------------------------------------
    // Helpers

    fn check_open(&self) -> Result<(), ApiError> {
        if self.state == SignalingState::Closed {
            Err(ApiError::Closed)
        } else {
            Ok(())
        }
    }

    /// A local offer was rolled back: the local description and ICE generation in force before
    /// it are in force again (candidates sent for the abandoned offer may be sent again for
    /// the next description).
    fn restore_before_offer(&mut self) {
        let Some((local, generation)) = self.before_offer.take() else {
            return;
        };
        if let Some(u) = &generation.ufrag {
            self.old_local_ufrags.retain(|old| old != u);
        }
        self.local = local;
        self.local_gen = generation;
        self.local_mids.clear();
        self.pending_local.clear();
    }

    fn set_state(&mut self, now: Instant, next: SignalingState) {
        if next != self.state {
            self.state = next;
            self.push_event(Event::StateChanged(next));
        }
        self.deadline = match next {
            SignalingState::Stable | SignalingState::Closed => None,
            // An exchange in progress keeps the deadline it started with.
            _ => Some(
                self.deadline
                    .unwrap_or_else(|| now + self.config.negotiation_timeout),
            ),
        };
    }

    fn transmit(&mut self, message: Message) {
        self.out.push_back(Queued::Transmit(message));
    }

    fn push_event(&mut self, event: Event) {
        self.out.push_back(Queued::Event(event));
    }

    fn peer_error(&mut self, request_type: &str, error: PeerError) {
        self.stats.peer_errors += 1;
        self.transmit(Message::Error(ErrorMessage::new(request_type, &error)));
        self.push_event(Event::PeerError(error));
    }
}

/// What a remote candidate (or end-of-candidates) without a full m-section reference gets
/// filled in with.
enum Fill {
    Nothing,
    /// `sdp_m_line_index` (the peer gave the mid).
    Index(Option<u16>),
    /// `sdp_mid`: the mid of this section (the peer gave the index).
    Mid(usize),
    /// Both, from this section (the peer gave neither).
    MidAndIndex(usize),
}

enum Gen {
    Current,
    Stale,
    Unknown,
}

fn push_bounded<T>(q: &mut VecDeque<T>, item: T, bound: usize) {
    if q.len() >= bound {
        q.pop_front();
    }
    q.push_back(item);
}

/// A 64-bit hash for duplicate suppression (FxHash: fast, reproducible, not collision-resistant;
/// a collision could only make a peer's own candidate look like a duplicate of its own).
fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = FxHasher::default();
    value.hash(&mut h);
    h.finish()
}
