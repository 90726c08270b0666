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
//!
//! The data types a transport moves ([`Frame`], [`CloseCode`], [`CloseReason`], [`PeerInfo`])
//! come from `signaling-core` and are re-exported here.
use std::task::Poll;

use async_trait::async_trait;

pub use signaling_core::transport::{CloseCode, CloseReason, Frame, FrameBlock, PeerInfo};

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

/// Refuses a connection before any session runs on it (a bad request, a full server): sends
/// `{"type":"error","value":"<request_type>: <message>"}` (go2rtc's form, which its clients
/// match by prefix), then closes with `code` and `message` as the reason. Errors are ignored:
/// the connection is being given up either way.
pub async fn refuse<T: Transport + ?Sized>(
    transport: &mut T,
    request_type: &str,
    message: &str,
    code: CloseCode,
) {
    use signaling_core::wire::{self, Dialect, ErrorMessage, Message};
    let error = Message::Error(ErrorMessage::new(request_type, message));
    let _ = transport
        .send(wire::encode(&error, Dialect::GO2RTC).into())
        .await;
    let _ = transport.close(CloseReason::new(code, message)).await;
}
