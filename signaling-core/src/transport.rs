//! The pluggable transport contract.
//!
//! A transport carries UTF-8 text frames ([`Frame`]s) between two endpoints. Everything above it
//! (the session driver, the relay) is written against [`Transport`] only, so a user adds a
//! transport (QUIC, HTTP long-poll, a message bus) by implementing this one trait, and sessions and
//! relays run unchanged over any mix of transports.
//!
//! # Contract
//!
//! - **Ordered and reliable per direction.** Frames arrive in the order they were sent, each
//!   exactly once, or the transport reports an error / end. A transport that cannot promise this
//!   (a datagram bus) must add sequencing itself.
//! - **One frame is one message.** Frames are never split or merged.
//! - **Backpressure.** [`Transport::send`] waits while the transport's bounded send queue is full;
//!   it never buffers without limit. A caller that cannot wait (a relay fanning out to a slow peer)
//!   uses [`Transport::try_send`], which hands the frame back in [`TrySendError::Full`]
//!   instead.
//! - **Cancel safety.** [`Transport::recv`] is cancel-safe: dropping its future before it completes
//!   loses no frame, so it may sit in a `select!` beside other work.
//! - **End.** `recv` returns `Ok(None)` once the remote end closed cleanly; after that, and after an
//!   error, the transport is finished.
//!
//! The trait is object-safe: a relay holds `Box<dyn Transport>` of different kinds.
use std::fmt;
use std::net::SocketAddr;
use std::task::Poll;

use async_trait::async_trait;

mod frame;
pub use frame::{Frame, FrameBlock};

/// One end of a text-frame connection. See the [module documentation](self) for the contract.
#[async_trait]
pub trait Transport: Send {
    /// Sends one frame, waiting while the send queue is full.
    async fn send(&mut self, frame: Frame) -> Result<(), TransportError>;

    /// Queues one frame without waiting; hands it back in [`TrySendError::Full`] if the send
    /// queue is at its bound. A transport may write queued frames lazily, but no
    /// later than the next `send`, `recv` or `close` call, and always in order with `send`: a
    /// caller with several frames at hand `try_send`s all but the last and `send`s the last, so
    /// that a transport can batch the writes.
    fn try_send(&mut self, frame: Frame) -> Result<(), TrySendError>;

    /// Receives the next frame: `Ok(Some(frame))`, `Ok(None)` at a clean end, or an error.
    /// Cancel-safe.
    async fn recv(&mut self) -> Result<Option<Frame>, TransportError>;

    /// Receives a frame that is already here, without waiting: what [`recv`](Self::recv) would
    /// return if it completed at once, or [`Poll::Pending`] if it would wait. A driver that
    /// woke for one frame takes the others that arrived with it this way, and handles them
    /// together.
    ///
    /// The default returns [`Poll::Pending`] (nothing is known without waiting): a transport
    /// that can tell cheaply implements it. It is not a way to be woken: it may leave the
    /// waker of the last `recv` registered (a spurious wake-up at worst), or none; keep a `recv`
    /// pending to be woken.
    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        Poll::Pending
    }

    /// Closes the connection with a code and a reason, flushing frames already queued.
    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError>;

    /// What is known of the remote end (address, request path, query, headers).
    fn peer(&self) -> &PeerInfo;
}

/// A close code. An open newtype: unknown codes round-trip. Values follow WebSocket close codes
/// (RFC 6455 §7.4) so that every transport can map them one to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a frame of a kind this endpoint does not accept (binary, non-UTF-8 text).
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1008: policy violation (rate limit, admission).
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a frame or message larger than the configured maximum.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1011: the endpoint hit an internal error.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1013: try again later (server overloaded, connection limit reached).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A close code with a human-readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// The code.
    pub code: CloseCode,
    /// A short reason (WebSocket limits it to 123 bytes; longer reasons are truncated by the
    /// transport at a character boundary).
    pub reason: String,
}

impl CloseReason {
    /// A close reason from a code and text.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// A normal closure with no reason.
    pub fn normal() -> Self {
        Self::new(CloseCode::NORMAL, "")
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "close code {}", self.code)
        } else {
            write!(f, "close code {}: {}", self.code, self.reason)
        }
    }
}

/// What a transport knows of the remote end. For a WebSocket server connection this is the
/// upgrade request; for an in-memory connection it is whatever the test set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// A short name of the transport kind (`"ws"`, `"mem"`, ...).
    pub transport: &'static str,
    /// The remote socket address, when there is one.
    pub remote_addr: Option<SocketAddr>,
    /// The request path (`/ws`), when there is one.
    pub path: String,
    /// The raw query string without `?`, when there is one.
    pub query: Option<String>,
    /// Request headers, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
}

impl PeerInfo {
    /// Peer information with only the transport kind set.
    pub fn new(transport: &'static str) -> Self {
        Self {
            transport,
            ..Self::default()
        }
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter with this name, percent-decoded is left to the caller: the value
    /// is returned as it appears in the query string.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The value of the first cookie with this (case-sensitive) name, from the `cookie`
    /// header(s) (`a=1; b=2`; HTTP/2 may split cookies over several headers, all are searched in
    /// order). The value is returned as sent: no percent-decoding, no removal of quotes;
    /// whitespace around names and values is trimmed.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k.trim() == name).then(|| v.trim())
            })
    }

    /// The `origin` header, as sent (browsers send it on every WebSocket handshake; other
    /// clients usually do not).
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }
}

/// Why a transport operation failed. Split by cause; the variant docs say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection is closed (by either side). Stop using the transport.
    #[error("connection closed{}", .0.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Closed(Option<CloseReason>),
    /// A frame exceeded the configured maximum size. The connection is closed with 1009.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The frame's size in bytes (or a lower bound when the frame was cut off).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The peer sent a frame this transport does not accept (binary, non-UTF-8). The connection is
    /// closed with 1003.
    #[error("unsupported frame: {0}")]
    Unsupported(&'static str),
    /// A deadline passed: connect timeout, idle timeout, or the peer stopped answering pings.
    #[error("timed out: {0}")]
    TimedOut(&'static str),
    /// The underlying IO failed. The connection is unusable.
    #[error("transport IO error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why [`Transport::try_send`] did not queue a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// The send queue is at its bound. The frame is handed back: `send` it (waiting for room),
    /// retry later, or disconnect the slow consumer.
    #[error("send queue full")]
    Full(Frame),
    /// The transport failed; the frame went with it.
    #[error(transparent)]
    Failed(#[from] TransportError),
}
