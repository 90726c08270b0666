//! The relay's routing logic, sans-IO: rooms, server-assigned peer ids, addressing, mailbox,
//! ordering guard, limits, resume and candidate privacy.
//!
//! [`Relay`] is a pure state machine. A driver (the `relay` binary, or your own server) owns the
//! connections and feeds it: [`Relay::join`] when a connection wants into a room,
//! [`Relay::handle_frame`] for each frame (one connection's frames strictly in order),
//! [`Relay::disconnected`] when a connection ends (saying whether it was closed cleanly or
//! lost, see [`Disconnect`]), [`Relay::handle_timeout`] when the instant of
//! the last [`RelayOutput::Timeout`] passes. After each, drain [`Relay::poll_output`]: send each
//! [`RelayOutput::Transmit`] to its connection, close each [`RelayOutput::Close`].
//!
//! # Protocol
//!
//! The relay speaks the same `{"type", "value"}` envelope as the peers, so that in a room of two
//! a client that knows nothing of the relay (the seed client) works unchanged:
//!
//! - **Forwarding.** Every frame a peer sends is forwarded to the other peers of its room. In a
//!   room whose capacity is 2, frames are forwarded byte for byte. In larger rooms a frame may
//!   carry `"to": "<peer id>"` to reach one peer, and forwarded frames carry
//!   `"from": "<peer id>"` (added without re-escaping the value). Types starting with `relay/`
//!   are reserved for the relay and never forwarded.
//! - **`relay/welcome`** (to a peer that joined or resumed):
//!   `{"id": "<your id>", "room": "<room>", "peers": ["<id>", ...], "resume": "<token>",
//!   "polite": <bool>, "iceServers": [...]}`. `polite` is a perfect-negotiation hint: the peer
//!   that joins an occupied room is polite, a peer left alone becomes impolite, and a resuming
//!   peer keeps its role. [`Notice::parse`] reads these messages on the client side. `iceServers` is present when the relay hands out ICE
//!   servers (with short-lived TURN credentials). The seed client ignores this message.
//! - **`relay/joined`** `{"id"}` and **`relay/left`** `{"id"}` to the others of the room.
//! - A client leaves at once (no resume grace) by sending **`relay/leave`**, or by closing its
//!   connection cleanly (a WebSocket close frame with 1000 or 1001, [`Disconnect::Clean`]).
//! - Problems with a single frame are answered with an `error` frame
//!   (`"<type>: <message>"`); broken limits close the connection with a [`close_code`].
//!
//! # Validation
//!
//! A peer that splices a received candidate into SDP text (as `a=candidate:` lines, or in an
//! RFC 8840 fragment) must not be handed a candidate that ends the line and starts another. With
//! [`RelayConfig::validate_frames`] on (the default), the relay checks every frame of the
//! `webrtc` protocol (type `webrtc` or `webrtc/...`) before it forwards it:
//!
//! - every JSON string of the frame, keys included, is valid Unicode (no lone surrogate escape
//!   such as `"\ud800"`);
//! - `webrtc/candidate` decodes (in both forms: the bare string and the browser's object), and
//!   its candidate passes the RFC 8839 parser of [`crate::candidate`] (no CR, LF or NUL, and the
//!   grammar); `sdpMid` and `usernameFragment` hold no control character. End-of-candidates
//!   (`""`, `null`, or an object with an empty `candidate`) passes;
//! - `webrtc/offer`, `webrtc/answer` and `webrtc` (v2) decode, and their SDP passes the checks
//!   of [`SdpFacts::parse`] (no NUL, no bare CR, well-formed lines and m-sections, ...).
//!
//! A refused frame is answered with an `error` frame (`"<type>: <message>"`), is not forwarded,
//! and is counted in [`RelayStats::invalid`]; the connection stays open. Frames of other types
//! are not looked into and are forwarded byte for byte.
//!
//! # Mailbox and ordering guard
//!
//! Frames sent into a room where no other peer is present (the seed client sends its offer the
//! moment its socket opens) wait in the room's mailbox, bounded in count, bytes and age, and are
//! delivered in order to the next peer that joins. With the ordering guard on (the default), a
//! peer's `webrtc/candidate` frames are held until its own offer or answer has been forwarded;
//! a held candidate that cannot be routed when it is released (its `to` peer left, or the
//! mailbox is full) is refused then, with an `error` frame to its sender. Nothing else is ever
//! reordered.
//!
//! # Resume
//!
//! A peer whose connection is lost ([`Disconnect::Lost`]: reset, ended without a close frame,
//! timed out, failed to write, or closed for being a slow consumer) stays in its room for
//! [`RelayConfig::resume_grace`]. Frames for it are queued (bounded like a mailbox). A new
//! connection that joins with the peer's resume token takes its place, keeps its id and receives
//! what was queued. The token is secret, rotated on every welcome, and the only way to take over
//! an id. A peer that closed its connection cleanly ([`Disconnect::Clean`]) has left: the others
//! hear `relay/left` at once and its place is free.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::candidate::{self, Candidate, CandidateError};
use crate::ice::{CandidatePolicy, IceServersConfig};
use crate::sdp::{SdpError, SdpFacts};
use crate::transport::{CloseCode, CloseReason, Frame};
use crate::wire::{self, DecodeError, ErrorMessage, JsonError, Message, RawFrame};

/// Close codes the relay uses (application range, RFC 6455 §7.4.2), besides
/// [`CloseCode::MESSAGE_TOO_BIG`] for oversized frames.
pub mod close_code {
    use crate::transport::CloseCode;

    /// The room is at capacity; the peer received nothing of it.
    pub const ROOM_FULL: CloseCode = CloseCode(4001);
    /// The relay has as many rooms as it may.
    pub const TOO_MANY_ROOMS: CloseCode = CloseCode(4002);
    /// The relay has as many peers as it may.
    pub const TOO_MANY_PEERS: CloseCode = CloseCode(4003);
    /// The connection sent frames faster than allowed.
    pub const RATE_LIMITED: CloseCode = CloseCode(4004);
    /// The connection sent nothing for too long.
    pub const IDLE: CloseCode = CloseCode(4005);
    /// The connection did not read what it was sent: a driver's write timeout passed without
    /// progress while senders waited on it, or its queue reached the driver's hard limit.
    pub const SLOW_CONSUMER: CloseCode = CloseCode(4006);
    /// The resume token is unknown, expired, or for another room.
    pub const RESUME_FAILED: CloseCode = CloseCode(4007);
    /// Another connection resumed this peer with its token.
    pub const REPLACED: CloseCode = CloseCode(4008);
    /// The join request is invalid (room name empty, too long, or with forbidden characters).
    pub const BAD_REQUEST: CloseCode = CloseCode(4009);
}

/// `type` of the relay's welcome message.
pub const TYPE_WELCOME: &str = "relay/welcome";
/// `type` of the message announcing a new peer.
pub const TYPE_JOINED: &str = "relay/joined";
/// `type` of the message announcing a peer that left.
pub const TYPE_LEFT: &str = "relay/left";
/// `type` a client sends to leave at once.
pub const TYPE_LEAVE: &str = "relay/leave";

/// The longest room name accepted, in bytes.
pub const MAX_ROOM_NAME_LEN: usize = 64;

/// A message of the relay to a client (`relay/welcome`, `relay/joined`, `relay/left`), read on
/// the client side: a Rust peer in a relay room gets these frames as
/// [`Event::Message`](crate::negotiation::Event::Message) from its negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// `relay/welcome`: this client joined (or resumed).
    Welcome(Welcome),
    /// `relay/joined`: another peer joined the room.
    Joined {
        /// Its id.
        id: String,
    },
    /// `relay/left`: another peer left the room.
    Left {
        /// Its id.
        id: String,
    },
}

/// What `relay/welcome` tells a client. See the [module docs](self#protocol).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct Welcome {
    /// The client's peer id.
    pub id: String,
    /// The room.
    pub room: String,
    /// The other peers in the room.
    #[serde(default)]
    pub peers: Vec<String>,
    /// The resume token: join with `resume=<token>` to take this place back after losing the
    /// connection (a new one comes with every welcome).
    #[serde(default)]
    pub resume: String,
    /// The perfect-negotiation role to take.
    #[serde(default)]
    pub polite: bool,
    /// ICE servers to use, when the relay hands them out.
    #[serde(default, rename = "iceServers")]
    pub ice_servers: Vec<wire::IceServer>,
}

impl Notice {
    /// Reads a relay message; `None` for any other type, or a relay message that is malformed.
    pub fn parse(message: &wire::UnknownMessage) -> Option<Notice> {
        Self::read(&message.kind, message.frame.as_str())
    }

    /// Reads a frame as a relay message; `None` for any other frame.
    pub fn from_frame(frame: &str) -> Option<Notice> {
        let raw = RawFrame::parse(frame, usize::MAX).ok()?;
        Self::read(raw.kind(), frame)
    }

    /// The frame of a `relay/joined` or `relay/left` message about peer `id`.
    pub fn about(kind: &str, id: &str) -> String {
        serde_json::json!({"type": kind, "value": {"id": id}}).to_string()
    }

    fn read(kind: &str, frame: &str) -> Option<Notice> {
        #[derive(serde::Deserialize)]
        struct Envelope<T> {
            value: T,
        }
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        match kind {
            TYPE_WELCOME => serde_json::from_str::<Envelope<Welcome>>(frame)
                .ok()
                .map(|e| Notice::Welcome(e.value)),
            TYPE_JOINED => serde_json::from_str::<Envelope<Id>>(frame)
                .ok()
                .map(|e| Notice::Joined { id: e.value.id }),
            TYPE_LEFT => serde_json::from_str::<Envelope<Id>>(frame)
                .ok()
                .map(|e| Notice::Left { id: e.value.id }),
            _ => None,
        }
    }
}

/// A connection, as numbered by the driver. Unique for the relay's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}", self.0)
    }
}

/// How a connection ended, as the driver saw it: see [`Relay::disconnected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The peer closed the connection on purpose: a WebSocket close frame with 1000 (normal) or
    /// 1001 (going away), what a transport's `recv` reports as a clean end. The peer has left,
    /// as with `relay/leave`: its place is freed and the others hear `relay/left` at once.
    Clean,
    /// The connection was lost: reset or ended without a close frame, closed with another
    /// code, timed out (pings unanswered), or failed to write. The peer keeps its place for
    /// [`RelayConfig::resume_grace`] and may resume.
    Lost,
}

/// Relay settings. Every bound is documented with its default.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Peers per room. Default: 2 (the seed client's one-to-one call).
    pub room_capacity: usize,
    /// Rooms. Default: 10,000.
    pub max_rooms: usize,
    /// Peers, connected or waiting to resume. Default: 20,000.
    pub max_peers: usize,
    /// Largest frame, in bytes. Default: 64 KiB.
    pub max_frame_len: usize,
    /// Sustained frames per second per connection. Default: 50.
    pub rate_per_sec: u32,
    /// Frames a connection may send in a burst above the sustained rate. Default: 200 (a
    /// browser sends its offer and a burst of candidates at once).
    pub rate_burst: u32,
    /// Frames held in a room's mailbox (or a resuming peer's queue). Default: 64.
    pub mailbox_frames: usize,
    /// Bytes held in a room's mailbox (or a resuming peer's queue). Default: 256 KiB.
    pub mailbox_bytes: usize,
    /// How long a frame may wait in a mailbox. Default: 30 s.
    #[serde(with = "secs")]
    pub mailbox_age: Duration,
    /// Candidates held by the ordering guard per peer. Default: 64.
    pub guard_frames: usize,
    /// Hold a peer's candidates until its offer/answer was forwarded. Default: on.
    pub ordering_guard: bool,
    /// Check the frames of the `webrtc` protocol before forwarding them (valid candidates and
    /// SDP, valid Unicode), refusing the others with an `error` frame; see the [module
    /// docs](self#validation). Default: on.
    pub validate_frames: bool,
    /// How long a peer whose socket was lost keeps its place. Zero turns resume off. Default:
    /// 30 s.
    #[serde(with = "secs")]
    pub resume_grace: Duration,
    /// Close a connection that sent nothing for this long. Default: 30 min (signaling is quiet
    /// once a call is up).
    #[serde(with = "secs")]
    pub idle_timeout: Duration,
    /// Which candidates may pass the relay. Default: all.
    pub privacy: CandidatePolicy,
    /// ICE servers (and TURN credentials) handed to each joining peer. Default: none.
    pub ice_servers: Option<IceServersConfig>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            room_capacity: 2,
            max_rooms: 10_000,
            max_peers: 20_000,
            max_frame_len: 64 * 1024,
            rate_per_sec: 50,
            rate_burst: 200,
            mailbox_frames: 64,
            mailbox_bytes: 256 * 1024,
            mailbox_age: Duration::from_secs(30),
            guard_frames: 64,
            ordering_guard: true,
            validate_frames: true,
            resume_grace: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30 * 60),
            privacy: CandidatePolicy::default(),
            ice_servers: None,
        }
    }
}

/// Durations in configuration files are (fractional) seconds.
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = f64::deserialize(d)?;
        Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)
    }
}

/// What a connection asks when it joins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JoinRequest {
    /// The room name (1 to [`MAX_ROOM_NAME_LEN`] bytes, no control characters).
    pub room: String,
    /// A resume token from an earlier welcome, to take back that peer's place.
    pub resume: Option<String>,
    /// A fresh, unguessable token (at least 16 random bytes, encoded) that the driver drew for
    /// this peer. The relay itself has no randomness.
    pub fresh_token: String,
    /// A name for the ICE server credentials (`"<expiry>:<user>"`); the peer id when absent.
    pub user: Option<String>,
    /// Unix time in seconds, for TURN credential expiry.
    pub unix_time: u64,
}

impl JoinRequest {
    /// A request to join `room`, with the driver's fresh token.
    pub fn new(room: impl Into<String>, fresh_token: impl Into<String>) -> Self {
        Self {
            room: room.into(),
            fresh_token: fresh_token.into(),
            ..Self::default()
        }
    }

    /// Resumes with `token`.
    pub fn with_resume(mut self, token: impl Into<String>) -> Self {
        self.resume = Some(token.into());
        self
    }

    /// Sets the Unix time used for TURN credentials.
    pub fn with_unix_time(mut self, secs: u64) -> Self {
        self.unix_time = secs;
        self
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum RelayOutput {
    /// Send this frame on this connection.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The frame (a clone shares the buffer of the frame as received).
        frame: Frame,
    },
    /// Close this connection with this code and reason. The relay has already forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Nothing more now; call [`Relay::handle_timeout`] at this instant (`None`: no timer).
    Timeout(Option<Instant>),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Frames received from joined connections, whatever became of them (forwarded, queued,
    /// refused, or closing their connection for a broken limit).
    pub received: u64,
    /// Peers' frames sent on to other peers' connections (one per recipient), including those
    /// that waited in a mailbox or a resuming peer's queue first.
    pub forwarded: u64,
    /// The relay's own messages sent (`relay/welcome`, `relay/joined`, `relay/left`); not
    /// counted in [`forwarded`](Self::forwarded).
    pub notices: u64,
    /// Frames that went into a mailbox or a resuming peer's queue.
    pub queued: u64,
    /// Frames dropped from mailboxes because they grew too old.
    pub expired: u64,
    /// Candidates dropped by the privacy policy.
    pub filtered: u64,
    /// Frames refused with an `error` frame.
    pub refused: u64,
    /// Frames of the `webrtc` protocol refused by validation ([`RelayConfig::validate_frames`]);
    /// also counted in [`refused`](Self::refused).
    pub invalid: u64,
    /// Connections closed for a broken limit: the sum of [`closes`](Self::closes).
    pub limit_closes: u64,
    /// Connections closed for a broken limit, by limit.
    pub closes: LimitCloses,
    /// Joins refused, by reason.
    pub joins_refused: JoinRefusals,
}

/// Connections the relay closed for a broken limit, by limit (part of [`RelayStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitCloses {
    /// A frame larger than [`RelayConfig::max_frame_len`] (1009, message too big).
    pub too_big: u64,
    /// Frames faster than [`RelayConfig::rate_per_sec`] allows ([`close_code::RATE_LIMITED`]).
    pub rate_limited: u64,
    /// No frame for [`RelayConfig::idle_timeout`] ([`close_code::IDLE`]).
    pub idle: u64,
    /// A driver reported the connection too slow to take what it is sent
    /// ([`close_code::SLOW_CONSUMER`], through [`Relay::slow_consumer`]).
    pub slow_consumer: u64,
}

/// Joins the relay refused, by the close code the connection was refused with (part of
/// [`RelayStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JoinRefusals {
    /// [`close_code::BAD_REQUEST`]: an invalid room name, or a fresh token that is too short
    /// or already in use.
    pub bad_request: u64,
    /// [`close_code::ROOM_FULL`].
    pub room_full: u64,
    /// [`close_code::TOO_MANY_ROOMS`].
    pub too_many_rooms: u64,
    /// [`close_code::TOO_MANY_PEERS`].
    pub too_many_peers: u64,
    /// [`close_code::RESUME_FAILED`].
    pub resume_failed: u64,
}

impl JoinRefusals {
    fn count(&mut self, code: CloseCode) {
        let counter = match code {
            close_code::ROOM_FULL => &mut self.room_full,
            close_code::TOO_MANY_ROOMS => &mut self.too_many_rooms,
            close_code::TOO_MANY_PEERS => &mut self.too_many_peers,
            close_code::RESUME_FAILED => &mut self.resume_failed,
            _ => &mut self.bad_request,
        };
        *counter += 1;
    }
}

/// The room registry behind the relay: which peers are in which room. [`LocalRooms`] keeps it in
/// memory; a multi-node deployment can put a shared registry (NATS, Redis) behind the same
/// interface, with remote members reached through the backbone.
pub trait RoomRegistry: Send {
    /// The members of `room`, in join order (empty when the room does not exist).
    fn members(&self, room: &str) -> &[PeerId];
    /// Adds `peer` to `room`, creating it. The relay has checked capacity and limits.
    fn add(&mut self, room: &str, peer: PeerId);
    /// Removes `peer` from `room`, dropping the room when it empties. Returns whether it was
    /// there.
    fn remove(&mut self, room: &str, peer: &PeerId) -> bool;
    /// How many rooms exist.
    fn room_count(&self) -> usize;

    /// A number that changes whenever any room's members change, so that the relay may keep
    /// the answer of [`members`](Self::members) for a run of frames from one peer until it
    /// does. `None` (the default): the members can change in ways the registry does not count
    /// (peers of other processes, say), so the relay asks again for every frame.
    fn membership_version(&self) -> Option<u64> {
        None
    }
}

/// The in-memory [`RoomRegistry`].
#[derive(Debug, Default)]
pub struct LocalRooms {
    // Room names come from clients: keyed with the default (randomly seeded) hasher, so that
    // crafted names cannot collide on purpose.
    rooms: HashMap<String, Vec<PeerId>>,
    /// Counts `add`s and `remove`s (see [`RoomRegistry::membership_version`]).
    version: u64,
}

impl RoomRegistry for LocalRooms {
    fn members(&self, room: &str) -> &[PeerId] {
        self.rooms.get(room).map_or(&[], Vec::as_slice)
    }

    fn add(&mut self, room: &str, peer: PeerId) {
        self.version += 1;
        self.rooms.entry(room.to_owned()).or_default().push(peer);
    }

    fn remove(&mut self, room: &str, peer: &PeerId) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        self.version += 1;
        let before = members.len();
        members.retain(|p| p != peer);
        let removed = members.len() != before;
        if members.is_empty() {
            self.rooms.remove(room);
        }
        removed
    }

    fn room_count(&self) -> usize {
        self.rooms.len()
    }

    fn membership_version(&self) -> Option<u64> {
        Some(self.version)
    }
}

/// A peer id, assigned by the relay: written `p1`, `p2`, ... on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl std::str::FromStr for PeerId {
    type Err = ();

    /// Parses the wire form `p<number>`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let digits = s.strip_prefix('p').ok_or(())?;
        if digits.starts_with('0') || digits.starts_with('+') {
            return Err(());
        }
        digits.parse().map(PeerId).map_err(|_| ())
    }
}

/// Bounded FIFO of frames with an age limit.
#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<(Instant, Frame)>,
    bytes: usize,
}

impl Queue {
    /// Queues `frame`, or gives it back if the mailbox is full. A queued frame is
    /// [detached](Frame::detached): what it holds is what the byte bound counts.
    fn push(
        &mut self,
        now: Instant,
        frame: Frame,
        max_frames: usize,
        max_bytes: usize,
    ) -> Result<(), Frame> {
        if self.frames.len() >= max_frames || self.bytes + frame.len() > max_bytes {
            return Err(frame);
        }
        self.bytes += frame.len();
        self.frames.push_back((now, frame.detached()));
        Ok(())
    }

    fn expire(&mut self, now: Instant, age: Duration) -> usize {
        let mut n = 0;
        while let Some((at, _)) = self.frames.front() {
            if now.saturating_duration_since(*at) < age {
                break;
            }
            if let Some((_, f)) = self.frames.pop_front() {
                self.bytes -= f.len();
            }
            n += 1;
        }
        n
    }

    fn oldest(&self) -> Option<Instant> {
        self.frames.front().map(|(at, _)| *at)
    }

    fn take(&mut self) -> VecDeque<(Instant, Frame)> {
        self.bytes = 0;
        std::mem::take(&mut self.frames)
    }
}

#[derive(Debug)]
struct Peer {
    room: String,
    conn: Option<ConnId>,
    token: String,
    /// Set while the socket is lost and the peer may resume.
    away_since: Option<Instant>,
    /// Frames for the peer while it is away.
    outbox: Queue,
    /// The perfect-negotiation role the welcome gave: polite when it joined an occupied room;
    /// impolite again once it is alone. Kept on resume, so that a resuming peer does not
    /// change sides in the middle of a call.
    polite: bool,
    /// Whether the peer's own offer/answer has been forwarded (ordering guard).
    described: bool,
    /// Candidates held by the ordering guard ([detached](Frame::detached)).
    held: VecDeque<Frame>,
    /// Token bucket: tokens (scaled by 1000) and last refill.
    tokens: u64,
    refilled: Instant,
    last_activity: Instant,
}

/// Timers, lazily validated when they fire.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Idle(PeerId),
    Grace(PeerId),
    Mailbox(String),
}

/// The relay state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Relay<R: RoomRegistry = LocalRooms> {
    config: RelayConfig,
    rooms: R,
    // Keys assigned by the relay itself (never chosen by a client), so a fast hasher is safe.
    peers: FxHashMap<PeerId, Peer>,
    conns: FxHashMap<ConnId, PeerId>,
    tokens: HashMap<String, PeerId>,
    mailboxes: HashMap<String, Queue>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    next_id: u64,
    out: VecDeque<RelayOutput>,
    stats: RelayStats,
    /// The others in the room of the peer that sent last, as of the registry's
    /// [`membership_version`](RoomRegistry::membership_version): the frames of a burst from
    /// one peer are routed with one look-up of its room.
    recipients: Recipients,
}

/// See [`Relay::recipients`](Relay).
#[derive(Debug, Default)]
struct Recipients {
    /// The sender and the membership version the list was taken at.
    key: Option<(PeerId, u64)>,
    /// The sender's room's other members, in join order.
    others: Vec<PeerId>,
}

impl Relay<LocalRooms> {
    /// A relay with an in-memory room registry.
    pub fn new(config: RelayConfig) -> Self {
        Self::with_registry(config, LocalRooms::default())
    }
}

/// Why a join was refused (the connection is closed with this reason; it received nothing).
pub type JoinRefused = CloseReason;

impl<R: RoomRegistry> Relay<R> {
    /// A relay over the given room registry.
    pub fn with_registry(config: RelayConfig, rooms: R) -> Self {
        Self {
            config,
            rooms,
            peers: FxHashMap::default(),
            conns: FxHashMap::default(),
            tokens: HashMap::new(),
            mailboxes: HashMap::new(),
            timers: BinaryHeap::new(),
            next_id: 0,
            out: VecDeque::new(),
            stats: RelayStats::default(),
            recipients: Recipients::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Peers, connected or waiting to resume.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.room_count()
    }

    /// Whether `room` has peers (connected or waiting to resume) or frames waiting in its
    /// mailbox.
    pub fn room_in_use(&self, room: &str) -> bool {
        !self.rooms.members(room).is_empty() || self.mailboxes.contains_key(room)
    }

    /// The peer a connection belongs to.
    pub fn peer_of(&self, conn: ConnId) -> Option<&PeerId> {
        self.conns.get(&conn)
    }

    /// Numbers the peers that join from now on from `first` at least (the ids already given
    /// stay, and numbers never go back). A cluster starts each node's relay at its own point, so
    /// that an id a client learned from one node's relay names no peer of another's.
    pub fn number_peers_from(&mut self, first: u64) {
        self.next_id = self.next_id.max(first.saturating_sub(1));
    }

    /// The next output. Drain after every input until [`RelayOutput::Timeout`].
    pub fn poll_output(&mut self) -> RelayOutput {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        RelayOutput::Timeout(self.next_timeout())
    }

    /// When [`Relay::handle_timeout`] is next due (what [`RelayOutput::Timeout`] carries),
    /// without draining anything. It may be early: timers are checked when they fire.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// A connection asks to join a room (or to resume a peer). On success it receives
    /// `relay/welcome`, then whatever waited for it; the room's other peers receive
    /// `relay/joined`. A refusal means the connection must be closed with the returned reason;
    /// it received nothing of the room.
    pub fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        request: JoinRequest,
    ) -> Result<PeerId, JoinRefused> {
        let joined = self.try_join(now, conn, request);
        if let Err(reason) = &joined {
            self.stats.joins_refused.count(reason.code);
        }
        joined
    }

    fn try_join(
        &mut self,
        now: Instant,
        conn: ConnId,
        request: JoinRequest,
    ) -> Result<PeerId, JoinRefused> {
        if let Err(why) = check_room_name(&request.room) {
            return Err(CloseReason::new(close_code::BAD_REQUEST, why));
        }
        if let Some(token) = request.resume.as_deref() {
            return self.resume(now, conn, token, &request);
        }
        let members = self.rooms.members(&request.room).len();
        if members >= self.config.room_capacity {
            return Err(CloseReason::new(close_code::ROOM_FULL, "room full"));
        }
        if members == 0 && self.rooms.room_count() >= self.config.max_rooms {
            return Err(CloseReason::new(
                close_code::TOO_MANY_ROOMS,
                "too many rooms",
            ));
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(CloseReason::new(
                close_code::TOO_MANY_PEERS,
                "too many peers",
            ));
        }
        if request.fresh_token.len() < 16 || self.tokens.contains_key(&request.fresh_token) {
            return Err(CloseReason::new(close_code::BAD_REQUEST, "bad token"));
        }
        self.next_id += 1;
        let id = PeerId(self.next_id);
        let others: Vec<PeerId> = self.rooms.members(&request.room).to_vec();
        let peer = Peer {
            polite: !others.is_empty(),
            room: request.room.clone(),
            conn: Some(conn),
            token: request.fresh_token.clone(),
            away_since: None,
            outbox: Queue::default(),
            described: false,
            held: VecDeque::new(),
            tokens: u64::from(self.config.rate_burst) * 1000,
            refilled: now,
            last_activity: now,
        };
        self.rooms.add(&request.room, id);
        self.tokens.insert(peer.token.clone(), id);
        self.peers.insert(id, peer);
        self.conns.insert(conn, id);
        self.arm(now + self.config.idle_timeout, Timer::Idle(id));
        self.welcome(conn, &id, &request, &others);
        for other in &others {
            self.notify(other, TYPE_JOINED, &id);
        }
        // What waited in the room's mailbox.
        if let Some(mut mailbox) = self.mailboxes.remove(&request.room) {
            self.stats.expired += mailbox.expire(now, self.config.mailbox_age) as u64;
            for (_, frame) in mailbox.take() {
                self.deliver(now, &id, frame);
            }
        }
        Ok(id)
    }

    fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        token: &str,
        request: &JoinRequest,
    ) -> Result<PeerId, JoinRefused> {
        let refused = || CloseReason::new(close_code::RESUME_FAILED, "cannot resume");
        let id = self.tokens.get(token).copied().ok_or_else(refused)?;
        let room_matches = self.peers.get(&id).is_some_and(|p| p.room == request.room);
        if !room_matches {
            return Err(refused());
        }
        if request.fresh_token.len() < 16 || self.tokens.contains_key(&request.fresh_token) {
            return Err(CloseReason::new(close_code::BAD_REQUEST, "bad token"));
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(refused());
        };
        // The token is the only way to take over an id; the old connection, if any, is replaced.
        if let Some(old) = peer.conn.replace(conn) {
            self.conns.remove(&old);
            self.out.push_back(RelayOutput::Close {
                conn: old,
                reason: CloseReason::new(close_code::REPLACED, "resumed elsewhere"),
            });
        }
        peer.away_since = None;
        peer.last_activity = now;
        self.tokens.remove(&peer.token);
        peer.token = request.fresh_token.clone();
        self.tokens.insert(peer.token.clone(), id);
        let mut queued = peer.outbox.take();
        let room = peer.room.clone();
        self.conns.insert(conn, id);
        let others: Vec<PeerId> = self
            .rooms
            .members(&room)
            .iter()
            .filter(|p| **p != id)
            .copied()
            .collect();
        self.welcome(conn, &id, request, &others);
        for (at, frame) in queued.drain(..) {
            if now.saturating_duration_since(at) < self.config.mailbox_age {
                self.send(conn, frame);
            } else {
                self.stats.expired += 1;
            }
        }
        Ok(id)
    }

    /// The connection ended, other than by a [`RelayOutput::Close`] of the relay's (after which
    /// the relay has already forgotten it). A [clean](Disconnect::Clean) close is a leave: the
    /// peer's place is freed and the others hear `relay/left` now. A [lost](Disconnect::Lost)
    /// connection's peer keeps its place for [`RelayConfig::resume_grace`] (when that is not
    /// zero), and the others hear `relay/left` only when the grace ends without a resume.
    pub fn disconnected(&mut self, now: Instant, conn: ConnId, how: Disconnect) {
        let Some(id) = self.conns.remove(&conn) else {
            return;
        };
        if how == Disconnect::Clean || self.config.resume_grace.is_zero() {
            self.remove_peer(&id);
            return;
        }
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.conn = None;
            peer.away_since = Some(now);
        }
        self.arm(now + self.config.resume_grace, Timer::Grace(id));
    }

    /// A frame arrived on a connection. Give it as a [`Frame`] (or a `String`) when you have it
    /// so: a frame forwarded unchanged is then passed on without a copy (a `&str` is copied
    /// once).
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: impl Into<Frame>) {
        let frame = frame.into();
        let Some(id) = self.conns.get(&conn).copied() else {
            return;
        };
        self.stats.received += 1;
        if frame.len() > self.config.max_frame_len {
            self.close_conn(
                conn,
                CloseReason::new(CloseCode::MESSAGE_TOO_BIG, "frame too large"),
            );
            return;
        }
        let allowed = match self.peers.get_mut(&id) {
            Some(peer) => {
                peer.last_activity = now;
                take_token(&self.config, now, peer)
            }
            None => false,
        };
        if !allowed {
            self.close_conn(
                conn,
                CloseReason::new(close_code::RATE_LIMITED, "rate limit exceeded"),
            );
            return;
        }
        let raw = match RawFrame::parse(&frame, self.config.max_frame_len) {
            Ok(raw) => raw,
            Err(e) => {
                self.refuse(conn, e.request_type(), &e);
                return;
            }
        };
        let kind = raw.kind();
        if kind.starts_with("relay/") {
            if kind == TYPE_LEAVE {
                self.conns.remove(&conn);
                self.remove_peer(&id);
                self.out.push_back(RelayOutput::Close {
                    conn,
                    reason: CloseReason::normal(),
                });
            } else {
                let kind = kind.to_owned();
                self.refuse(conn, &kind, "reserved type");
            }
            return;
        }
        // Checked before anything looks into the frame, and read once for what follows.
        let decoded = if self.config.validate_frames && is_webrtc_type(kind) {
            match check_webrtc_frame(&raw, self.config.max_frame_len) {
                Ok(decoded) => decoded,
                Err(why) => {
                    self.stats.invalid += 1;
                    self.refuse(conn, kind, why);
                    return;
                }
            }
        } else {
            None
        };
        if raw.is_candidate() {
            if self.filtered(&raw, decoded.as_ref()) {
                self.stats.filtered += 1;
                return;
            }
            let described = self.peers.get(&id).is_some_and(|p| p.described);
            if self.config.ordering_guard && !described {
                let limit = self.config.guard_frames;
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                if peer.held.len() >= limit {
                    self.refuse(
                        conn,
                        wire::TYPE_CANDIDATE,
                        "too many candidates before the description",
                    );
                } else {
                    peer.held.push_back(frame.detached());
                }
                return;
            }
        }
        let is_description = raw.is_description();
        let to = raw.to().map(|to| to.parse::<PeerId>().ok());
        let out = match self.stamped(&id, &raw) {
            Some(stamped) => Frame::from(stamped),
            None => frame,
        };
        if let Err((why, frame)) = self.route(now, &id, to, out) {
            let kind = RawFrame::parse(&frame, usize::MAX)
                .map(|raw| raw.kind().to_owned())
                .unwrap_or_default();
            self.refuse(conn, &kind, why);
            return;
        }
        if is_description {
            let held = match self.peers.get_mut(&id) {
                Some(peer) if !peer.described => {
                    peer.described = true;
                    std::mem::take(&mut peer.held)
                }
                _ => VecDeque::new(),
            };
            for frame in held {
                // These parsed when they arrived.
                let Ok(raw) = RawFrame::parse(&frame, usize::MAX) else {
                    continue;
                };
                let to = raw.to().map(|to| to.parse::<PeerId>().ok());
                let out = self.stamped(&id, &raw).map(Frame::from);
                // Refused as it would have been without the guard (its `to` left, the mailbox
                // is full): the sender hears of it.
                if let Err((why, _)) = self.route(now, &id, to, out.unwrap_or(frame)) {
                    self.refuse(conn, wire::TYPE_CANDIDATE, why);
                }
            }
        }
    }

    /// Time passed: expires mailboxes, ends grace periods, closes idle connections.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Idle(id) => {
                    let Some(peer) = self.peers.get(&id) else {
                        continue;
                    };
                    let due = peer.last_activity + self.config.idle_timeout;
                    match peer.conn {
                        Some(conn) if due <= now => {
                            self.close_conn(conn, CloseReason::new(close_code::IDLE, "idle"))
                        }
                        Some(_) => self.arm(due, Timer::Idle(id)),
                        // Away: the grace timer owns the peer now; re-arm for after a resume.
                        None => self.arm(now + self.config.idle_timeout, Timer::Idle(id)),
                    }
                }
                Timer::Grace(id) => {
                    let expired = self.peers.get(&id).is_some_and(|p| {
                        p.away_since
                            .is_some_and(|at| at + self.config.resume_grace <= now)
                    });
                    if expired {
                        self.remove_peer(&id);
                    }
                }
                Timer::Mailbox(room) => {
                    let age = self.config.mailbox_age;
                    if let Some(q) = self.mailboxes.get_mut(&room) {
                        self.stats.expired += q.expire(now, age) as u64;
                        match q.oldest() {
                            Some(at) => self.arm(at + age, Timer::Mailbox(room)),
                            None => {
                                self.mailboxes.remove(&room);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The driver could not deliver to a connection fast enough (its queue is at its bound):
    /// closes it with [`close_code::SLOW_CONSUMER`]; its peer may resume.
    pub fn slow_consumer(&mut self, now: Instant, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.stats.limit_closes += 1;
            self.stats.closes.slow_consumer += 1;
            self.out.push_back(RelayOutput::Close {
                conn,
                reason: CloseReason::new(close_code::SLOW_CONSUMER, "too slow"),
            });
            self.disconnected(now, conn, Disconnect::Lost);
        }
    }

    // -----------------------------------------------------------------------------------------

    /// The frame as forwarded, when it is not the frame as received: with `from` set, in rooms
    /// that may hold more than two peers.
    fn stamped(&self, from: &PeerId, raw: &RawFrame<'_>) -> Option<String> {
        (self.config.room_capacity > 2).then(|| raw.write_with_from(&from.to_string()))
    }

    /// Delivers `frame` from `from` to `to` (`Some(None)`: a `to` that is not a peer id) or to
    /// the rest of its room. On refusal, gives the frame back with the reason.
    fn route(
        &mut self,
        now: Instant,
        from: &PeerId,
        to: Option<Option<PeerId>>,
        frame: Frame,
    ) -> Result<(), (&'static str, Frame)> {
        if let Some(to) = to {
            let Some(sender) = self.peers.get(from) else {
                return Ok(());
            };
            let Some(target) = to else {
                return Err(("unknown peer", frame));
            };
            let same_room = self
                .peers
                .get(&target)
                .is_some_and(|p| p.room == sender.room);
            if !same_room || target == *from {
                return Err(("unknown peer", frame));
            }
            self.deliver(now, &target, frame);
            return Ok(());
        }
        // The others in the room: looked up once for a run of frames from one peer, while no
        // one joins or leaves (as far as the registry can tell). A sender that is no peer (any
        // more) has no room, and its frame goes nowhere.
        let key = self.rooms.membership_version().map(|v| (*from, v));
        if key.is_none() || self.recipients.key != key {
            let Some(peer) = self.peers.get(from) else {
                return Ok(());
            };
            let members = self.rooms.members(&peer.room);
            self.recipients.others.clear();
            self.recipients
                .others
                .extend(members.iter().filter(|p| *p != from));
            self.recipients.key = key;
        }
        let Self {
            recipients,
            peers,
            out,
            stats,
            config,
            ..
        } = self;
        let Some((last, rest)) = recipients.others.split_last() else {
            return self.mailbox(now, from, frame);
        };
        for other in rest {
            deliver_to(peers, out, stats, config, now, other, frame.clone());
        }
        deliver_to(peers, out, stats, config, now, last, frame);
        Ok(())
    }

    /// Queues a frame in the mailbox of `from`'s room (no one else is there yet).
    fn mailbox(
        &mut self,
        now: Instant,
        from: &PeerId,
        frame: Frame,
    ) -> Result<(), (&'static str, Frame)> {
        let Some(peer) = self.peers.get(from) else {
            return Ok(());
        };
        let room = peer.room.clone();
        let (max_frames, max_bytes) = (self.config.mailbox_frames, self.config.mailbox_bytes);
        let age = self.config.mailbox_age;
        let q = self.mailboxes.entry(room.clone()).or_default();
        let was_empty = q.frames.is_empty();
        if let Err(frame) = q.push(now, frame, max_frames, max_bytes) {
            return Err(("mailbox full", frame));
        }
        self.stats.queued += 1;
        if was_empty {
            self.arm(now + age, Timer::Mailbox(room));
        }
        Ok(())
    }

    /// Sends to a peer's connection, or queues for it while it is away.
    fn deliver(&mut self, now: Instant, to: &PeerId, frame: Frame) {
        deliver_to(
            &mut self.peers,
            &mut self.out,
            &mut self.stats,
            &self.config,
            now,
            to,
            frame,
        );
    }

    fn send(&mut self, conn: ConnId, frame: Frame) {
        self.stats.forwarded += 1;
        self.out.push_back(RelayOutput::Transmit { conn, frame });
    }

    /// Whether the privacy policy drops this candidate frame (`decoded`: the frame's message,
    /// when validation already read it). A candidate that does not parse cannot be judged, so
    /// it is dropped too when a policy is set.
    fn filtered(&self, raw: &RawFrame<'_>, decoded: Option<&Message>) -> bool {
        if self.config.privacy.is_allow_all() {
            return false;
        }
        let read_here;
        let message = match decoded {
            Some(message) => message,
            None => {
                read_here = raw.decode();
                match &read_here {
                    Ok(message) => message,
                    Err(_) => return false,
                }
            }
        };
        let Message::Candidate(c) = message else {
            return false;
        };
        match Candidate::parse(&c.candidate) {
            Ok(parsed) => match self.config.privacy.check(&parsed) {
                Ok(()) => false,
                Err(why) => {
                    tracing::debug!(candidate = %parsed, ?why, "candidate filtered");
                    true
                }
            },
            Err(_) => true,
        }
    }

    fn welcome(&mut self, conn: ConnId, id: &PeerId, request: &JoinRequest, others: &[PeerId]) {
        let ice_servers = self.config.ice_servers.as_ref().map(|c| {
            let user = request.user.clone().unwrap_or_else(|| id.to_string());
            c.for_user(&user, request.unix_time)
        });
        let (token, polite) = self
            .peers
            .get(id)
            .map(|p| (p.token.clone(), p.polite))
            .unwrap_or_default();
        let mut value = serde_json::json!({
            "id": id.to_string(),
            "room": request.room,
            "peers": others.iter().map(PeerId::to_string).collect::<Vec<_>>(),
            "resume": token,
            "polite": polite,
        });
        if let (Some(servers), Some(obj)) = (ice_servers, value.as_object_mut()) {
            obj.insert(
                "iceServers".to_owned(),
                serde_json::to_value(servers).unwrap_or_default(),
            );
        }
        let frame = serde_json::json!({"type": TYPE_WELCOME, "value": value}).to_string();
        self.stats.notices += 1;
        self.out.push_back(RelayOutput::Transmit {
            conn,
            frame: frame.into(),
        });
    }

    fn notify(&mut self, to: &PeerId, kind: &str, about: &PeerId) {
        let Some(conn) = self.peers.get(to).and_then(|p| p.conn) else {
            return;
        };
        self.stats.notices += 1;
        self.out.push_back(RelayOutput::Transmit {
            conn,
            frame: Notice::about(kind, &about.to_string()).into(),
        });
    }

    fn refuse(&mut self, conn: ConnId, request_type: &str, why: impl fmt::Display) {
        self.stats.refused += 1;
        let frame = wire::encode(
            &Message::Error(ErrorMessage::new(request_type, why)),
            wire::Dialect::GO2RTC,
        );
        self.out.push_back(RelayOutput::Transmit {
            conn,
            frame: frame.into(),
        });
    }

    /// Closes a connection for a broken limit; its peer may resume.
    fn close_conn(&mut self, conn: ConnId, reason: CloseReason) {
        self.stats.limit_closes += 1;
        let closes = &mut self.stats.closes;
        match reason.code {
            close_code::RATE_LIMITED => closes.rate_limited += 1,
            close_code::IDLE => closes.idle += 1,
            _ => closes.too_big += 1,
        }
        self.out.push_back(RelayOutput::Close { conn, reason });
        let Some(id) = self.conns.remove(&conn) else {
            return;
        };
        // A peer closed for abuse does not get a grace period.
        self.remove_peer(&id);
    }

    fn remove_peer(&mut self, id: &PeerId) {
        let Some(peer) = self.peers.remove(id) else {
            return;
        };
        self.tokens.remove(&peer.token);
        if let Some(conn) = peer.conn {
            self.conns.remove(&conn);
        }
        self.rooms.remove(&peer.room, id);
        let others: Vec<PeerId> = self.rooms.members(&peer.room).to_vec();
        if others.is_empty() {
            // Whatever the last peer left in the mailbox is for nobody now.
            self.mailboxes.remove(&peer.room);
        }
        if let [alone] = others[..] {
            // The one left waits for the next peer, who will be the polite one.
            if let Some(p) = self.peers.get_mut(&alone) {
                p.polite = false;
            }
        }
        for other in &others {
            self.notify(other, TYPE_LEFT, id);
        }
    }

    fn arm(&mut self, at: Instant, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
        // Timers are validated lazily when they fire, so entries of peers and mailboxes that are
        // gone linger. Keep the heap within a constant factor of what is alive.
        let alive = self.peers.len() * 2 + self.mailboxes.len();
        if self.timers.len() > 2 * alive + 64 {
            let (peers, mailboxes) = (&self.peers, &self.mailboxes);
            self.timers.retain(|Reverse((_, t))| match t {
                Timer::Idle(id) | Timer::Grace(id) => peers.contains_key(id),
                Timer::Mailbox(room) => mailboxes.contains_key(room),
            });
        }
    }
}

/// [`Relay::deliver`] on the relay's fields, for callers that hold a borrow of another field.
/// Takes one frame's token from the peer's bucket (refilled for the time since the last
/// refill); `false` if it is empty.
fn take_token(config: &RelayConfig, now: Instant, peer: &mut Peer) -> bool {
    // Frames handled together share one `now`: nothing to refill.
    if now != peer.refilled {
        let elapsed = now.saturating_duration_since(peer.refilled);
        let refill = u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(config.rate_per_sec));
        if refill > 0 {
            let burst = u64::from(config.rate_burst) * 1000;
            peer.tokens = peer.tokens.saturating_add(refill).min(burst);
            peer.refilled = now;
        }
    }
    if peer.tokens >= 1000 {
        peer.tokens -= 1000;
        true
    } else {
        false
    }
}

fn deliver_to(
    peers: &mut FxHashMap<PeerId, Peer>,
    out: &mut VecDeque<RelayOutput>,
    stats: &mut RelayStats,
    config: &RelayConfig,
    now: Instant,
    to: &PeerId,
    frame: Frame,
) {
    let Some(peer) = peers.get_mut(to) else {
        return;
    };
    match peer.conn {
        Some(conn) => {
            stats.forwarded += 1;
            out.push_back(RelayOutput::Transmit { conn, frame });
        }
        None => {
            if peer
                .outbox
                .push(now, frame, config.mailbox_frames, config.mailbox_bytes)
                .is_ok()
            {
                stats.queued += 1;
            } else {
                stats.refused += 1;
            }
        }
    }
}

/// Why validation refused a frame (the message of the `error` frame sent back).
#[derive(Debug, thiserror::Error)]
enum Invalid {
    #[error("invalid string: {0}")]
    Strings(JsonError),
    #[error("missing value")]
    MissingValue,
    #[error("invalid value: {0}")]
    Value(JsonError),
    #[error("invalid candidate: {0}")]
    Candidate(CandidateError),
    #[error("control character in {0}")]
    Control(&'static str),
    #[error("invalid SDP: {0}")]
    Sdp(SdpError),
}

impl From<DecodeError> for Invalid {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::MissingValue { .. } => Invalid::MissingValue,
            DecodeError::InvalidValue { source, .. } | DecodeError::Envelope(source) => {
                Invalid::Value(source)
            }
            // The envelope was read within the bound already; any other error is the value's.
            other => Invalid::Value(JsonError {
                message: other.to_string(),
                line: 0,
                column: 0,
            }),
        }
    }
}

/// Whether a frame type belongs to the `webrtc` protocol (`webrtc` itself, or `webrtc/...`).
fn is_webrtc_type(kind: &str) -> bool {
    kind.strip_prefix("webrtc")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Validates a frame of the `webrtc` protocol (see the [module docs](self#validation)). Gives
/// back the message decoded on the way, for the types this crate knows.
fn check_webrtc_frame(raw: &RawFrame<'_>, max_sdp_len: usize) -> Result<Option<Message>, Invalid> {
    wire::check_strings(raw.frame()).map_err(Invalid::Strings)?;
    if !(raw.is_candidate() || raw.is_description()) {
        return Ok(None);
    }
    let message = raw.decode()?;
    let no_control = |field: &'static str, value: Option<&str>| match value {
        Some(v) if v.chars().any(char::is_control) => Err(Invalid::Control(field)),
        _ => Ok(()),
    };
    match &message {
        Message::Description(d) => {
            SdpFacts::parse_with_limit(&d.sdp, max_sdp_len).map_err(Invalid::Sdp)?;
        }
        Message::Candidate(c) => {
            candidate::check(&c.candidate).map_err(Invalid::Candidate)?;
            no_control("sdpMid", c.sdp_mid.as_deref())?;
            no_control("usernameFragment", c.username_fragment.as_deref())?;
        }
        Message::EndOfCandidates(e) => {
            no_control("sdpMid", e.sdp_mid.as_deref())?;
            no_control("usernameFragment", e.username_fragment.as_deref())?;
        }
        Message::Error(_) | Message::Unknown(_) => {}
    }
    Ok(Some(message))
}

fn check_room_name(room: &str) -> Result<(), &'static str> {
    if room.is_empty() {
        return Err("empty room name");
    }
    if room.len() > MAX_ROOM_NAME_LEN {
        return Err("room name too long");
    }
    if room.chars().any(char::is_control) {
        return Err("control character in room name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Validation of `webrtc/*` frames, driven directly. The cases and fixtures are the oracle:
    //! browser candidates and descriptions from the test vectors, and injections written out.
    // Tests take one base instant from the clock; the relay itself never reads it.
    #![allow(clippy::disallowed_methods)]

    use proptest::prelude::*;

    use super::*;

    const CHROME_OFFER: &str = include_str!("../tests/data/chrome-offer.sdp");
    const CHROME_ANSWER: &str = include_str!("../tests/data/chrome-answer.sdp");
    const FIREFOX_OFFER: &str = include_str!("../tests/data/firefox-offer.sdp");
    const AIORTC_ANSWER: &str = include_str!("../tests/data/aiortc-answer.sdp");
    const CANDIDATES: &str = include_str!("../tests/vectors/candidates.json");

    const HOST: &str = "candidate:4234997325 1 udp 2043278322 192.168.1.2 44323 typ host";

    /// A room of two, both joined and drained: connections 1 and 2.
    fn pair(config: RelayConfig) -> (Relay, Instant) {
        let now = Instant::now();
        let mut r = Relay::new(config);
        for conn in [1, 2] {
            r.join(
                now,
                ConnId(conn),
                JoinRequest::new("room", format!("{conn:032}")),
            )
            .expect("joined");
        }
        let _ = drain(&mut r);
        (r, now)
    }

    /// The frames sent (connection, text) and the connections closed.
    fn drain(r: &mut Relay) -> (Vec<(ConnId, String)>, Vec<ConnId>) {
        let (mut sent, mut closed) = (Vec::new(), Vec::new());
        loop {
            match r.poll_output() {
                RelayOutput::Transmit { conn, frame } => sent.push((conn, frame.to_string())),
                RelayOutput::Close { conn, .. } => closed.push(conn),
                RelayOutput::Timeout(_) => return (sent, closed),
            }
        }
    }

    /// `{"type": kind, "value": value}` as compact JSON (serde_json escapes the strings).
    fn frame(kind: &str, value: serde_json::Value) -> String {
        serde_json::json!({"type": kind, "value": value}).to_string()
    }

    /// Connection 1 sends `frame`: it must come back as one `error` frame to 1 whose value starts
    /// with `"<kind>: <why>"`, nothing reaches 2, and no connection closes.
    fn assert_refused(r: &mut Relay, now: Instant, frame: &str, kind: &str, why: &str) {
        let invalid = r.stats().invalid;
        r.handle_frame(now, ConnId(1), frame);
        let (sent, closed) = drain(r);
        assert!(closed.is_empty(), "{frame}: closed {closed:?}");
        let [(ConnId(1), error)] = &sent[..] else {
            panic!("{frame}: sent {sent:?}");
        };
        let error: serde_json::Value = serde_json::from_str(error).expect("json");
        assert_eq!(error["type"], "error", "{frame}");
        let text = error["value"].as_str().expect("text");
        assert!(
            text.starts_with(&format!("{kind}: {why}")),
            "{frame}: {text}"
        );
        assert_eq!(r.stats().invalid, invalid + 1, "{frame}");
    }

    /// Connection 1 sends `frame`: exactly it reaches 2, byte for byte.
    fn assert_forwarded(r: &mut Relay, now: Instant, frame: &str) {
        r.handle_frame(now, ConnId(1), frame);
        assert_eq!(
            drain(r),
            (vec![(ConnId(2), frame.to_owned())], vec![]),
            "{frame}"
        );
    }

    /// The injections, each with its type and the start of the reason it is refused for.
    fn injections() -> Vec<(String, &'static str, &'static str)> {
        let cand = "webrtc/candidate";
        let offer = "webrtc/offer";
        let nul_sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\0\r\nt=0 0\r\n";
        vec![
            // A candidate that ends its SDP line and starts another, in both forms.
            (
                frame(cand, format!("{HOST}\r\na=ice-ufrag:evil").into()),
                cand,
                "invalid candidate: forbidden byte 0x0d at offset 64",
            ),
            (
                frame(cand, format!("{HOST}\na=ice-ufrag:evil").into()),
                cand,
                "invalid candidate: forbidden byte 0x0a at offset 64",
            ),
            (
                frame(cand, format!("{HOST}\0").into()),
                cand,
                "invalid candidate: forbidden byte 0x00 at offset 64",
            ),
            (
                frame(
                    cand,
                    serde_json::json!({"candidate": format!("{HOST}\r\na=x"), "sdpMid": "0"}),
                ),
                cand,
                "invalid candidate: forbidden byte 0x0d",
            ),
            (
                frame(
                    cand,
                    serde_json::json!({"candidate": HOST, "sdpMid": "0\r\na=mid:1"}),
                ),
                cand,
                "control character in sdpMid",
            ),
            (
                frame(
                    cand,
                    serde_json::json!({"candidate": "", "usernameFragment": "ab\ncd"}),
                ),
                cand,
                "control character in usernameFragment",
            ),
            // Not a candidate at all.
            (
                frame(cand, "candidate:x".into()),
                cand,
                "invalid candidate:",
            ),
            (frame(cand, 5.into()), cand, "invalid value:"),
            // SDP with a NUL, in both description forms.
            (
                frame(offer, nul_sdp.into()),
                offer,
                "invalid SDP: line 3: NUL byte",
            ),
            (
                frame(
                    "webrtc",
                    serde_json::json!({"type": "answer", "sdp": nul_sdp}),
                ),
                "webrtc",
                "invalid SDP: line 3: NUL byte",
            ),
            (
                frame("webrtc/answer", "".into()),
                "webrtc/answer",
                "invalid SDP: SDP is empty",
            ),
            (
                r#"{"type":"webrtc/offer"}"#.to_owned(),
                offer,
                "missing value",
            ),
            // Lone surrogates: in the candidate, the SDP, a field nobody reads, a key.
            (
                format!(r#"{{"type":"{cand}","value":"{HOST} x \ud800"}}"#),
                cand,
                "invalid string:",
            ),
            (
                r#"{"type":"webrtc/offer","value":"v=0\r\ns=\udfff\r\n"}"#.to_owned(),
                offer,
                "invalid string:",
            ),
            (
                format!(r#"{{"type":"{cand}","value":{{"candidate":"{HOST}","x":["\ud800"]}}}}"#),
                cand,
                "invalid string:",
            ),
            (
                format!(r#"{{"type":"{cand}","value":"{HOST}","note":"\udbff\u0041"}}"#),
                cand,
                "invalid string:",
            ),
            (
                r#"{"type":"webrtc/custom","value":{"\ud800":1}}"#.to_owned(),
                "webrtc/custom",
                "invalid string:",
            ),
        ]
    }

    #[test]
    fn injections_are_refused_with_an_error_and_not_forwarded() {
        let (mut r, now) = pair(RelayConfig::default());
        // Candidates are not held by the ordering guard: the sender's offer went out.
        assert_forwarded(&mut r, now, &frame("webrtc/offer", CHROME_OFFER.into()));
        for (frame, kind, why) in injections() {
            assert_refused(&mut r, now, &frame, kind, why);
        }
        // The connection stays open and its valid frames go on.
        assert_forwarded(&mut r, now, &frame("webrtc/candidate", HOST.into()));
        let stats = r.stats();
        assert_eq!(stats.invalid, injections().len() as u64);
        assert_eq!(stats.refused, stats.invalid);
    }

    #[test]
    fn a_refused_candidate_is_not_held_by_the_guard_either() {
        let (mut r, now) = pair(RelayConfig::default());
        let bad = frame("webrtc/candidate", format!("{HOST}\r\na=x").into());
        assert_refused(&mut r, now, &bad, "webrtc/candidate", "invalid candidate:");
        assert_forwarded(&mut r, now, &frame("webrtc/offer", FIREFOX_OFFER.into()));
    }

    #[test]
    fn browser_frames_are_forwarded_byte_for_byte() {
        let (mut r, now) = pair(RelayConfig::default());
        let descriptions = [
            frame("webrtc/offer", CHROME_OFFER.into()),
            frame("webrtc/offer", FIREFOX_OFFER.into()),
            frame("webrtc/answer", CHROME_ANSWER.into()),
            frame("webrtc/answer", AIORTC_ANSWER.into()),
            frame(
                "webrtc",
                serde_json::json!({"type": "offer", "sdp": CHROME_OFFER}),
            ),
            frame(
                "webrtc",
                serde_json::json!({"type": "pranswer", "sdp": CHROME_ANSWER}),
            ),
            // Whitespace and key order are the sender's business.
            format!(
                "{{ \"value\" : {} , \"type\" : \"webrtc/offer\" }}",
                serde_json::Value::from(FIREFOX_OFFER)
            ),
        ];
        for f in &descriptions {
            assert_forwarded(&mut r, now, f);
        }
        let vectors: Vec<serde_json::Value> = serde_json::from_str(CANDIDATES).expect("vectors");
        assert!(vectors.len() >= 15);
        for v in &vectors {
            let c = v["candidate"].as_str().expect("candidate");
            assert_forwarded(&mut r, now, &frame("webrtc/candidate", c.into()));
            let object = serde_json::json!({
                "candidate": c,
                "sdpMid": "0",
                "sdpMLineIndex": 0,
                "usernameFragment": v["ufrag"],
            });
            assert_forwarded(&mut r, now, &frame("webrtc/candidate", object));
        }
        // End-of-candidates, as the seed client and browsers send it.
        for f in [
            r#"{"type":"webrtc/candidate","value":""}"#,
            r#"{"type":"webrtc/candidate","value":null}"#,
            r#"{"type":"webrtc/candidate"}"#,
            r#"{"type":"webrtc/candidate","value":{"candidate":"","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"EsAw"}}"#,
        ] {
            assert_forwarded(&mut r, now, f);
        }
        // A surrogate pair and other escapes are valid Unicode.
        assert_forwarded(
            &mut r,
            now,
            &format!(r#"{{"type":"webrtc/candidate","value":"{HOST} label \ud83d\ude00\u00e9"}}"#),
        );
        // Types outside the `webrtc` protocol are not looked into.
        for f in [
            r#"{"type":"chat","value":"\ud800\r\n\u0000"}"#,
            r#"{"type":"webrtcx","value":"\ud800"}"#,
            r#"{"type":"x","value":{"candidate":"a\r\nb"}}"#,
        ] {
            assert_forwarded(&mut r, now, f);
        }
        assert_eq!(r.stats().invalid, 0);
        assert_eq!(r.stats().refused, 0);
    }

    #[test]
    fn with_validation_off_everything_is_forwarded() {
        let (mut r, now) = pair(RelayConfig {
            validate_frames: false,
            ordering_guard: false,
            ..RelayConfig::default()
        });
        for (frame, _, _) in injections() {
            assert_forwarded(&mut r, now, &frame);
        }
        assert_eq!(r.stats().invalid, 0);
    }

    #[test]
    fn is_webrtc_type_is_the_namespace() {
        for t in ["webrtc", "webrtc/offer", "webrtc/candidate", "webrtc/x"] {
            assert!(is_webrtc_type(t), "{t}");
        }
        for t in [
            "webrtcx",
            "webrtc-x",
            "x/webrtc",
            "relay/leave",
            "WEBRTC",
            "",
        ] {
            assert!(!is_webrtc_type(t), "{t}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A candidate a generator built from the grammar's parts goes through in both forms;
        /// the same candidate with a CR, LF or NUL put anywhere in it never does.
        #[test]
        fn valid_candidates_pass_and_line_breaks_never_do(
            c in candidate::strategy::candidate_string(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(vec!['\r', '\n', '\0']),
            object in any::<bool>(),
        ) {
            let (mut r, now) = pair(RelayConfig { ordering_guard: false, ..RelayConfig::default() });
            let wrap = |text: &str| if object {
                frame("webrtc/candidate", serde_json::json!({"candidate": text, "sdpMid": "0"}))
            } else {
                frame("webrtc/candidate", text.into())
            };
            let good = wrap(&c);
            r.handle_frame(now, ConnId(1), good.as_str());
            prop_assert_eq!(drain(&mut r), (vec![(ConnId(2), good)], vec![]));

            // Anywhere, including before the first and after the last byte (all ASCII-safe:
            // insert at a char boundary).
            let mut bad = c.clone();
            let boundaries: Vec<usize> = (0..=c.len()).filter(|i| c.is_char_boundary(*i)).collect();
            bad.insert(*at.get(&boundaries), byte);
            let bad = wrap(&bad);
            r.handle_frame(now, ConnId(1), bad.as_str());
            let (sent, closed) = drain(&mut r);
            prop_assert!(closed.is_empty());
            prop_assert_eq!(sent.len(), 1);
            prop_assert_eq!(sent[0].0, ConnId(1));
            prop_assert!(sent[0].1.starts_with(r#"{"type":"error","value":"webrtc/candidate: "#), "{}", sent[0].1);
            prop_assert_eq!(r.stats().invalid, 1);
        }
    }
}
