//! [`WsConnection`]: one WebSocket connection, client or server side, as a [`Transport`].
//!
//! The design (inline driving, no task per connection) is documented on [`WsConnection`].
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use futures::task::noop_waker_ref;
use futures::{Sink, SinkExt, Stream, StreamExt};
use signaling::transport::{
    CloseCode, CloseReason, Frame, FrameBlock, PeerInfo, Transport, TransportError, TrySendError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{
    CloseCode as WsCloseCode, Data, OpCode,
};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::config::WsConfig;

/// The most bytes a close reason may carry (RFC 6455 §5.5: 125 bytes of payload, 2 of them the
/// code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The most bytes read and discarded while draining a socket after an error close.
const MAX_DRAIN_BYTES: usize = 1 << 20;

/// An upgraded WebSocket over any stream, with the stream type erased.
pub(crate) trait Socket:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin
{
    /// Shuts the write side and discards what the peer still sends, for at most `limit`, so
    /// that a close frame already written is not destroyed by a TCP reset.
    fn linger(self: Box<Self>, limit: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<S> Socket for WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn linger(self: Box<Self>, limit: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        linger_stream(self.into_inner(), limit)
    }
}

/// [`Socket::linger`] on the stream under a WebSocket.
pub(crate) fn linger_stream<S>(
    mut stream: S,
    limit: Duration,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(async move { linger(&mut stream, limit).await })
}

/// Shuts the write side of `stream` and discards what the peer still sends, for at most
/// `limit`: what [`linger_stream`] does, in place.
pub(crate) async fn linger<S>(stream: &mut S, limit: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let drain = async {
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 1024];
        let mut total = 0usize;
        while total < MAX_DRAIN_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(limit, drain).await;
}

/// One WebSocket connection (client or server side), implementing [`Transport`].
///
/// The connection is driven inline by its methods (see [below](#how-a-connection-is-driven)):
/// keep a [`recv`](Transport::recv) pending, as the session and relay drivers do, so that
/// keepalive pings flow and deadlines are enforced.
///
/// Frames are delivered strictly in order. Failures are reported by `recv`, after every frame
/// received before them:
///
/// | what happened | close code sent | `recv` returns |
/// |---|---|---|
/// | peer closed with 1000, 1001 or no code | (echoed) | `Ok(None)` |
/// | peer closed with another code | (echoed) | `Err(Closed(Some(reason)))` |
/// | frame or message over the size limit | 1009 | `Err(TooLarge { .. })` |
/// | binary frame | 1003 | `Err(Unsupported("binary frame"))` |
/// | text frame that is not UTF-8 | 1003 | `Err(Unsupported("invalid UTF-8 in text frame"))` |
/// | no answer to a ping within `pong_timeout` | 1001 | `Err(TimedOut(..))` |
/// | no text frame for `idle_timeout` | 1001 | `Err(TimedOut("idle timeout"))` |
/// | peer does not read for `write_timeout` | none | `Err(TimedOut(..))` |
/// | WebSocket protocol violation | 1002 | `Err(Io(InvalidData))` |
/// | socket error, or TCP closed without a close frame | none | `Err(Io(..))` |
///
/// After an error close the connection writes the close frame, shuts its write side and
/// discards what the peer still sends for at most `close_timeout`, so the close frame is not
/// lost to a TCP reset; this runs on a small background task, so `recv` reports the error at
/// once. Later calls return [`TransportError::Closed`].
///
/// [`send`](Transport::send) returns once the frame is written to the socket; a peer that does
/// not read for `write_timeout` fails the connection (`TimedOut`, no close frame).
///
/// [`close`](Transport::close) writes the queued frames, then the close frame (reason truncated
/// to [`MAX_CLOSE_REASON_BYTES`] at a character boundary; a code that may not be sent on the
/// wire, such as 1005 or 1006, becomes 1000), and waits at most `close_timeout` for the peer's
/// close frame. Text frames arriving meanwhile are kept, up to
/// [`WsConfig::recv_queue`], and returned by `recv` before it reports the end.
///
/// Dropping an open connection inside a tokio runtime spawns a small task that writes the
/// queued frames and a close frame with 1001 (going away), then lingers like an error close.
/// Outside a runtime the TCP connection is just closed.
///
/// # How a connection is driven
///
/// A connection owns its socket and does its IO inside the [`Transport`] methods, on the task
/// that calls them; there is no task per connection and no channel between the handle and the
/// socket:
///
/// - [`recv`](Transport::recv) polls the socket directly. In the same poll it writes out frames
///   queued by `try_send`, sends keepalive pings, and checks the pong (dead peer), idle and
///   write-stall deadlines against one timer that is re-armed only when it fires.
/// - [`try_recv`](Transport::try_recv) is the same step as `recv`, polled once: it returns
///   a frame already read or buffered, or `Pending` without waiting.
/// - [`send`](Transport::send) writes the frame into tungstenite's write buffer and flushes it
///   to the socket before returning (bounded by `write_timeout`).
/// - [`try_send`](Transport::try_send) appends to a small send queue (at most
///   [`WsConfig::send_queue`] frames) without writing: queued frames go out together, with one
///   flush, on the next `send`, `recv` or `close`. A driver that has several frames for a
///   connection `try_send`s all but the last and `send`s the last, which batches the writes the
///   way a hand-written forwarder does (`feed` while more is ready, then `flush`).
///
/// Why not a driver task per connection, with channels to the handle: every frame would then
/// cross two extra task hops on each end, which measured about 1.8 times the round-trip time
/// of raw tokio-tungstenite for 300-byte frames, and the task, its two channels and their
/// buffers cost about 15 KB per idle connection end. Driven inline, a frame costs what
/// tokio-tungstenite costs plus a few branches (the `ws` bench puts the round trip within
/// 10% of raw), and an idle server connection is its socket, its read buffer, this struct and one
/// timer: about 5 KB with the default configuration (`examples/idle_rss.rs`).
///
/// The price is that nothing happens while no method is running:
///
/// - **Keepalive runs only while a `recv` is pending** (or `close` is waiting for the peer).
///   Pings are sent, the peer's pings answered and the deadlines enforced only then, which is
///   how drivers use a transport: they keep a `recv` pending in a `select!` at all times. A
///   connection nobody calls `recv` on neither pings nor answers pings, and may be declared dead
///   by its peer.
/// - **Nothing is read while `send` waits.** If both ends only `send` and their socket buffers
///   fill, both `send`s fail after `write_timeout`.
/// - **Frames queued by `try_send` need a later call**: they go out on the next `send`, `recv`
///   or `close`.
///
/// Cancel safety: `recv` is cancel-safe. tokio-tungstenite's `poll_next` either returns a whole
/// message or keeps the partial one buffered, and every state change in `recv` happens in the
/// same poll as the event that causes it. A ping or queued frame whose write is interrupted stays
/// in tungstenite's write buffer and is completed by the next flush. A cancelled `send` leaves
/// its frame queued (it is written later, in order). A cancelled `close` leaves the connection
/// closed without the rest of the close handshake.
pub struct WsConnection {
    /// `None` once the socket was closed or handed to a background task.
    socket: Option<Box<dyn Socket>>,
    peer: PeerInfo,
    state: State,
    /// Why the connection closed, once it has.
    closed: Option<CloseReason>,
    /// Frames accepted by `try_send` and not yet handed to tungstenite; at most
    /// `limits.send_queue`.
    outbox: VecDeque<Frame>,
    /// Frames read by `close` while waiting for the peer's close frame; at most
    /// `limits.recv_queue`.
    inbox: VecDeque<Frame>,
    /// tungstenite may hold bytes not yet written to the socket (a pong reply, a ping, a
    /// partially written batch).
    unflushed: bool,
    /// The waker of the last `recv`: `try_recv` polls with it, so that the socket's and the
    /// timer's registrations stay with the receiving task instead of being swapped out and
    /// back for every frame of a burst.
    waker: Option<Waker>,
    /// The block the frames arriving together are copied into (see
    /// [`WsConfig::recv_block_size`]); empty between bursts.
    block: FrameBlock,
    keepalive: Keepalive,
    limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Closed cleanly (by either side): `recv` returns `Ok(None)` after the inbox.
    Ended,
    /// Failed or closed with an error code; the error was reported once.
    Failed,
}

/// Timer state for pings and deadlines. One timer, armed at the earliest deadline and re-armed
/// only when it fires, so the per-frame cost is at most an `Instant::now()` (with an idle
/// timeout).
struct Keepalive {
    timer: Option<Pin<Box<Sleep>>>,
    /// When the timer should fire next; `None`: nothing to wait for.
    timer_at: Option<Instant>,
    next_ping: Option<Instant>,
    awaiting_pong_since: Option<Instant>,
    last_data: Instant,
    /// Since when queued outgoing bytes have been waiting for the socket (inside `recv`).
    stalled_since: Option<Instant>,
    /// The waker the timer was last polled with.
    timer_waker: Option<Waker>,
}

impl Keepalive {
    fn arm(&mut self, at: Instant) {
        if self.timer_at.is_none_or(|current| at < current) {
            self.timer_at = Some(at);
        }
    }

    /// Polls the timer; `true` once it fired (it is then disarmed). A timer that already holds
    /// this task's waker and has not fired is not polled again, so the hot path of `recv` does
    /// no timer work.
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.timer_at else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if timer.deadline() != at {
            timer.as_mut().reset(at);
            self.timer_waker = None;
        }
        if let Some(waker) = &self.timer_waker {
            if waker.will_wake(cx.waker()) && !timer.is_elapsed() {
                return false;
            }
        }
        if timer.as_mut().poll(cx).is_ready() {
            self.timer_at = None;
            self.timer_waker = None;
            true
        } else {
            self.timer_waker = Some(cx.waker().clone());
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    send_queue: usize,
    recv_queue: usize,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    close_timeout: Duration,
    write_timeout: Duration,
    recv_block: usize,
}

impl fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConnection")
            .field("peer", &self.peer)
            .field("state", &self.state)
            .field("closed", &self.closed)
            .field("queued", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl WsConnection {
    /// Wraps an upgraded stream.
    pub(crate) fn new(socket: Box<dyn Socket>, peer: PeerInfo, config: &WsConfig) -> Self {
        let limits = Limits {
            send_queue: config.send_queue.max(1),
            recv_queue: config.recv_queue.max(1),
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            idle_timeout: config.idle_timeout,
            close_timeout: config.close_timeout,
            write_timeout: config.write_timeout,
            recv_block: config.recv_block_size.min(MAX_RECV_BLOCK),
        };
        let now = Instant::now();
        let mut keepalive = Keepalive {
            timer: None,
            timer_at: None,
            next_ping: limits.ping_interval.map(|period| now + period),
            awaiting_pong_since: None,
            last_data: now,
            stalled_since: None,
            timer_waker: None,
        };
        if let Some(at) = keepalive.next_ping {
            keepalive.arm(at);
        }
        if let Some(idle) = limits.idle_timeout {
            keepalive.arm(now + idle);
        }
        Self {
            socket: Some(socket),
            peer,
            state: State::Open,
            closed: None,
            outbox: VecDeque::new(),
            inbox: VecDeque::new(),
            unflushed: false,
            waker: None,
            block: FrameBlock::default(),
            keepalive,
            limits,
        }
    }

    /// Why the connection closed, once it has: the peer's close frame, or the close frame this
    /// side sent (on [`close`](Transport::close) or an error). `None` while open, and after a
    /// failure that sent no close frame (socket error).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.closed.clone()
    }

    /// The frame of a received text message, copied into the current block (see
    /// [`WsConfig::recv_block_size`]).
    fn take_frame(&mut self, text: &Utf8Bytes) -> Frame {
        let len = text.len();
        let block = self.limits.recv_block;
        if len > block / 4 {
            return Frame::from(text.as_str());
        }
        if self.block.spare() < len {
            self.block = FrameBlock::with_capacity(block);
        }
        self.block.push(text.as_str())
    }

    fn closed_error(&self) -> TransportError {
        TransportError::Closed(self.closed.clone())
    }

    /// What `recv` returns once the connection is over.
    fn after_end(&self) -> Result<Option<Frame>, TransportError> {
        match self.state {
            State::Ended => Ok(None),
            State::Open | State::Failed => Err(self.closed_error()),
        }
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        if self.state == State::Open && self.socket.is_some() {
            Ok(())
        } else {
            Err(self.closed_error())
        }
    }

    fn touch(&mut self) {
        if self.limits.idle_timeout.is_some() {
            self.keepalive.last_data = Instant::now();
        }
    }

    /// Ends the connection as `exit` says; returns what `recv` reports.
    fn finish(
        &mut self,
        exit: Exit,
        cx: &mut Context<'_>,
    ) -> Result<Option<Frame>, TransportError> {
        match exit {
            Exit::PeerClosed(reason) => {
                tracing::debug!(remote = ?self.peer.remote_addr, ?reason, "peer closed the connection");
                let reason = reason.unwrap_or_else(|| CloseReason::new(CloseCode(1005), ""));
                self.closed = Some(reason.clone());
                self.outbox.clear();
                // tungstenite queued the close reply: write it now if the socket takes it,
                // else in the background.
                if let Some(mut socket) = self.socket.take() {
                    if socket.poll_flush_unpin(cx).is_pending() {
                        let limit = self.limits.close_timeout;
                        spawn_background(async move {
                            let _ = tokio::time::timeout(limit, socket.flush()).await;
                        });
                    }
                }
                match reason.code {
                    CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode(1005) => {
                        self.state = State::Ended;
                        Ok(None)
                    }
                    _ => {
                        self.state = State::Failed;
                        Err(TransportError::Closed(Some(reason)))
                    }
                }
            }
            Exit::Failed { error, close } => {
                tracing::debug!(remote = ?self.peer.remote_addr, %error, ?close, "connection failed");
                self.state = State::Failed;
                self.outbox.clear();
                if let Some(socket) = self.socket.take() {
                    if let Some(reason) = close {
                        let frame = close_frame(&reason);
                        self.closed = Some(reason);
                        let limit = self.limits.close_timeout;
                        spawn_background(close_and_linger(socket, VecDeque::new(), frame, limit));
                    }
                }
                Err(error)
            }
        }
    }

    /// [`finish`](Self::finish) outside a poll (no waker to flush with).
    fn finish_now(&mut self, exit: Exit) -> TransportError {
        let mut cx = Context::from_waker(noop_waker_ref());
        match self.finish(exit, &mut cx) {
            Ok(_) => self.closed_error(),
            Err(error) => error,
        }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame>, TransportError>> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                return Poll::Ready(self.after_end());
            };
            if self.unflushed || !self.outbox.is_empty() {
                match poll_drain(socket, &mut self.outbox, cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        self.keepalive.stalled_since = None;
                    }
                    Poll::Ready(Err(error)) => {
                        return Poll::Ready(self.finish(exit_for_write_error(error), cx));
                    }
                    Poll::Pending => {
                        self.unflushed = true;
                        if self.keepalive.stalled_since.is_none() {
                            let now = Instant::now();
                            self.keepalive.stalled_since = Some(now);
                            self.keepalive.arm(now + self.limits.write_timeout);
                        }
                    }
                }
            }
            match socket.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    self.keepalive.awaiting_pong_since = None;
                    match message {
                        Message::Text(text) => {
                            self.touch();
                            return Poll::Ready(Ok(Some(self.take_frame(&text))));
                        }
                        Message::Binary(_) => {
                            let exit = Exit::failed(
                                TransportError::Unsupported("binary frame"),
                                CloseCode::UNSUPPORTED_DATA,
                                "binary frames are not supported",
                            );
                            return Poll::Ready(self.finish(exit, cx));
                        }
                        Message::Close(frame) => {
                            let exit = Exit::PeerClosed(frame.as_ref().map(close_reason_of));
                            return Poll::Ready(self.finish(exit, cx));
                        }
                        // tungstenite queued the pong reply; it is written by the next drain.
                        Message::Ping(_) => self.unflushed = true,
                        // Pongs only prove liveness.
                        Message::Pong(_) | Message::Frame(_) => {}
                    }
                    continue;
                }
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(self.finish(exit_for_read_error(error), cx));
                }
                Poll::Ready(None) => {
                    return Poll::Ready(self.finish(Exit::PeerClosed(None), cx));
                }
                Poll::Pending => {}
            }
            if !self.keepalive.poll_fired(cx) {
                // The burst is over: its frames keep their blocks, the connection keeps none,
                // and an empty outgoing queue gives its buffer back (idle connections hold
                // none).
                self.block = FrameBlock::default();
                if self.outbox.is_empty() && self.outbox.capacity() > 0 {
                    self.outbox = VecDeque::new();
                }
                return Poll::Pending;
            }
            if let Err(exit) = self.on_timer(cx) {
                return Poll::Ready(self.finish(exit, cx));
            }
        }
    }

    /// Handles the keepalive timer firing: checks the deadlines, sends a ping when one is due
    /// and re-arms the timer.
    fn on_timer(&mut self, cx: &mut Context<'_>) -> Result<(), Exit> {
        let now = Instant::now();
        let limits = self.limits;
        let keepalive = &mut self.keepalive;
        if let Some(since) = keepalive.stalled_since {
            let deadline = since + limits.write_timeout;
            if now >= deadline {
                return Err(write_timed_out());
            }
            keepalive.arm(deadline);
        }
        if let Some(since) = keepalive.awaiting_pong_since {
            let deadline = since + limits.pong_timeout;
            if now >= deadline {
                return Err(Exit::failed(
                    TransportError::TimedOut("peer did not answer a ping in time"),
                    CloseCode::GOING_AWAY,
                    "keepalive timeout",
                ));
            }
            keepalive.arm(deadline);
        }
        if let Some(idle) = limits.idle_timeout {
            let deadline = keepalive.last_data + idle;
            if now >= deadline {
                return Err(Exit::failed(
                    TransportError::TimedOut("idle timeout"),
                    CloseCode::GOING_AWAY,
                    "idle timeout",
                ));
            }
            keepalive.arm(deadline);
        }
        if let (Some(at), Some(period)) = (keepalive.next_ping, limits.ping_interval) {
            let mut next = at;
            if now >= at {
                next = now + period;
                // A socket that does not take a ping now is not being read by the peer: the
                // ping counts as sent, so the pong deadline catches it.
                if let Some(socket) = self.socket.as_mut() {
                    match socket.poll_ready_unpin(cx) {
                        Poll::Ready(Ok(())) => {
                            socket
                                .start_send_unpin(Message::Ping(Bytes::new()))
                                .map_err(exit_for_write_error)?;
                            self.unflushed = true;
                        }
                        Poll::Ready(Err(error)) => return Err(exit_for_write_error(error)),
                        Poll::Pending => self.unflushed = true,
                    }
                }
                if keepalive.awaiting_pong_since.is_none() {
                    keepalive.awaiting_pong_since = Some(now);
                    keepalive.arm(now + limits.pong_timeout);
                }
            }
            keepalive.next_ping = Some(next);
            keepalive.arm(next);
        }
        Ok(())
    }

    /// Writes the queued frames and flushes, bounded by `write_timeout`.
    async fn write_out(&mut self) -> Result<(), TransportError> {
        let Some(socket) = self.socket.as_mut() else {
            return Err(self.closed_error());
        };
        let outbox = &mut self.outbox;
        let write_timeout = self.limits.write_timeout;
        // The deadline timer is created only if the socket does not take everything at once.
        let mut deadline = pin!(None::<Sleep>);
        let result = poll_fn(|cx| {
            if let Poll::Ready(result) = poll_drain(socket, outbox, cx) {
                return Poll::Ready(result.map_err(exit_for_write_error));
            }
            if deadline.is_none() {
                deadline.set(Some(tokio::time::sleep(write_timeout)));
            }
            match deadline.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(write_timed_out())),
                _ => Poll::Pending,
            }
        })
        .await;
        match result {
            Ok(()) => {
                self.unflushed = false;
                self.keepalive.stalled_since = None;
                Ok(())
            }
            Err(exit) => Err(self.finish_now(exit)),
        }
    }
}

/// Hands the queued frames to tungstenite (as far as it accepts them) and flushes.
fn poll_drain(
    socket: &mut Box<dyn Socket>,
    outbox: &mut VecDeque<Frame>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), WsError>> {
    while !outbox.is_empty() {
        futures::ready!(socket.poll_ready_unpin(cx))?;
        if let Some(frame) = outbox.pop_front() {
            socket.start_send_unpin(text_message(frame))?;
        }
    }
    socket.poll_flush_unpin(cx)
}

/// The largest receive block used, whatever [`WsConfig::recv_block_size`] says.
const MAX_RECV_BLOCK: usize = 1 << 20;

/// A text message of `frame`'s buffer, not copied and not checked again: a `Frame` is UTF-8.
fn text_message(frame: Frame) -> Message {
    Message::Frame(WsFrame::message(
        frame.into_bytes(),
        OpCode::Data(Data::Text),
        true,
    ))
}

/// Spawns a best-effort closing step if there is a runtime; otherwise drops it (and with it
/// the socket, which closes TCP).
fn spawn_background<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}

/// Writes the queued frames and a close frame, then lingers; each step bounded by `limit`.
async fn close_and_linger(
    mut socket: Box<dyn Socket>,
    mut outbox: VecDeque<Frame>,
    frame: CloseFrame,
    limit: Duration,
) {
    let write = async {
        poll_fn(|cx| poll_drain(&mut socket, &mut outbox, cx)).await?;
        socket.send(Message::Close(Some(frame))).await
    };
    let _ = tokio::time::timeout(limit, write).await;
    socket.linger(limit).await;
}

#[async_trait]
impl Transport for WsConnection {
    async fn send(&mut self, frame: Frame) -> Result<(), TransportError> {
        self.check_writable()?;
        if self.outbox.len() >= self.limits.send_queue {
            // Full of frames from `try_send`: write them out first.
            self.write_out().await?;
        }
        self.touch();
        self.outbox.push_back(frame);
        self.write_out().await
    }

    fn try_send(&mut self, frame: Frame) -> Result<(), TrySendError> {
        self.check_writable()?;
        let mut cx = Context::from_waker(noop_waker_ref());
        if self.outbox.len() >= self.limits.send_queue {
            // Make room if the socket takes frames now; never waits.
            if let Poll::Ready(Err(error)) = self.drain_now(&mut cx) {
                return Err(self.finish_now(exit_for_write_error(error)).into());
            }
            if self.outbox.len() >= self.limits.send_queue {
                return Err(TrySendError::Full(frame));
            }
        }
        self.touch();
        // Written, with one flush for the whole batch, by the next send, recv or close.
        self.outbox.push_back(frame);
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        if let Some(frame) = self.inbox.pop_front() {
            return Ok(Some(frame));
        }
        if self.state != State::Open {
            return self.after_end();
        }
        poll_fn(|cx| {
            if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                self.waker = Some(cx.waker().clone());
            }
            self.poll_recv(cx)
        })
        .await
    }

    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        if let Some(frame) = self.inbox.pop_front() {
            return Poll::Ready(Ok(Some(frame)));
        }
        if self.state != State::Open {
            return Poll::Ready(self.after_end());
        }
        // The same step as `recv`'s, with the waker of the last `recv` (a spurious wake-up of
        // that task at worst), or one that wakes nothing before the first `recv`.
        let waker = self.waker.take();
        let poll = self.poll_recv(&mut Context::from_waker(
            waker.as_ref().unwrap_or(noop_waker_ref()),
        ));
        self.waker = waker;
        poll
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        if self.state != State::Open {
            // Already closed: closing is idempotent.
            return Ok(());
        }
        let Some(mut socket) = self.socket.take() else {
            return Ok(());
        };
        tracing::debug!(remote = ?self.peer.remote_addr, %reason, "closing");
        self.state = State::Ended;
        let frame = close_frame(&reason);
        self.closed = Some(reason);
        let deadline = Instant::now() + self.limits.close_timeout;
        let outbox = &mut self.outbox;
        let write = async {
            poll_fn(|cx| poll_drain(&mut socket, outbox, cx)).await?;
            socket.send(Message::Close(Some(frame))).await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {}
            Ok(Err(error)) => return Err(transport_error_of(error)),
            Err(_) => return Err(TransportError::TimedOut("close frame could not be written")),
        }
        self.outbox.clear();
        // Wait for the peer's close frame, keeping text frames that arrive meanwhile.
        let inbox = &mut self.inbox;
        let room = self.limits.recv_queue;
        let wait = async {
            while let Some(message) = socket.next().await {
                match message {
                    Ok(Message::Text(text)) if inbox.len() < room => {
                        inbox.push_back(Frame::from(text.as_str()));
                    }
                    Ok(Message::Text(_)) => {
                        tracing::debug!("frame received while closing dropped: queue full");
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        };
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            tracing::debug!("peer did not answer the close frame in time");
        }
        Ok(())
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl WsConnection {
    /// Writes out what the socket takes now, without waiting.
    fn drain_now(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let Some(socket) = self.socket.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let polled = poll_drain(socket, &mut self.outbox, cx);
        self.unflushed = !matches!(polled, Poll::Ready(Ok(())));
        polled
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        if self.state != State::Open {
            return;
        }
        let Some(socket) = self.socket.take() else {
            return;
        };
        tracing::debug!(remote = ?self.peer.remote_addr, "dropped; closing with 1001");
        let frame = close_frame(&CloseReason::new(CloseCode::GOING_AWAY, ""));
        let outbox = std::mem::take(&mut self.outbox);
        spawn_background(close_and_linger(
            socket,
            outbox,
            frame,
            self.limits.close_timeout,
        ));
    }
}

/// Truncates a close reason to [`MAX_CLOSE_REASON_BYTES`] at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The close frame to send. Codes that may not be sent on the wire (1005, 1006, 1015, reserved
/// and out-of-range values; RFC 6455 §7.4) are replaced with 1000.
fn close_frame(reason: &CloseReason) -> CloseFrame {
    let code = WsCloseCode::from(reason.code.0);
    CloseFrame {
        code: if code.is_allowed() {
            code
        } else {
            WsCloseCode::Normal
        },
        reason: truncate_reason(&reason.reason).into(),
    }
}

fn close_reason_of(frame: &CloseFrame) -> CloseReason {
    CloseReason::new(CloseCode(u16::from(frame.code)), frame.reason.as_str())
}

/// How the connection ends.
enum Exit {
    /// The peer sent a close frame (`None`: without a status code).
    PeerClosed(Option<CloseReason>),
    /// A failure: send this close frame (if any), then report the error.
    Failed {
        error: TransportError,
        close: Option<CloseReason>,
    },
}

impl Exit {
    fn failed(error: TransportError, code: CloseCode, reason: &str) -> Self {
        Self::Failed {
            error,
            close: Some(CloseReason::new(code, reason)),
        }
    }
}

fn write_timed_out() -> Exit {
    Exit::Failed {
        error: TransportError::TimedOut("peer did not read in time"),
        close: None,
    }
}
fn exit_for_read_error(error: WsError) -> Exit {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Exit::failed(
            TransportError::TooLarge {
                size,
                limit: max_size,
            },
            CloseCode::MESSAGE_TOO_BIG,
            "message too big",
        ),
        WsError::Capacity(_) => Exit::failed(
            TransportError::TooLarge { size: 0, limit: 0 },
            CloseCode::MESSAGE_TOO_BIG,
            "message too big",
        ),
        WsError::Utf8(_) => Exit::failed(
            TransportError::Unsupported("invalid UTF-8 in text frame"),
            CloseCode::UNSUPPORTED_DATA,
            "invalid UTF-8",
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Exit::PeerClosed(None),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Exit::Failed {
            error: TransportError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection ended without a close frame",
            )),
            close: None,
        },
        WsError::Protocol(error) => Exit::failed(
            TransportError::Io(io::Error::new(io::ErrorKind::InvalidData, error)),
            CloseCode::PROTOCOL_ERROR,
            "protocol error",
        ),
        other => Exit::Failed {
            error: transport_error_of(other),
            close: None,
        },
    }
}

fn exit_for_write_error(error: WsError) -> Exit {
    match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Exit::Failed {
            error: TransportError::Closed(None),
            close: None,
        },
        other => Exit::Failed {
            error: transport_error_of(other),
            close: None,
        },
    }
}

fn transport_error_of(error: WsError) -> TransportError {
    match error {
        WsError::Io(error) => TransportError::Io(error),
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed(None),
        other => TransportError::Io(io::Error::other(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_truncated_at_char_boundary() {
        let short = "bye";
        assert_eq!(truncate_reason(short), "bye");
        let long = "é".repeat(100); // 200 bytes
        let cut = truncate_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON_BYTES);
        assert_eq!(cut.len(), 122);
        let exact = "a".repeat(123);
        assert_eq!(truncate_reason(&exact).len(), 123);
    }
}
