//! [`WsConnection`]: one WebSocket connection, client or server side, as a [`Transport`].
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use signaling_core::transport::{CloseCode, CloseReason, PeerInfo, Transport, TransportError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::config::WsConfig;

/// The most bytes a close reason may carry (RFC 6455 §5.5: 125 bytes of payload, 2 of them the
/// code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The most queued frames written before one flush.
const MAX_BATCH: usize = 64;

/// The most bytes read and discarded while draining a socket after an error close.
const MAX_DRAIN_BYTES: usize = 1 << 20;

/// One WebSocket connection (client or server side), implementing [`Transport`].
///
/// A connection is driven by its own tokio task, spawned when the connection is made, that owns
/// the socket: it reads frames into a bounded inbound queue, writes frames from a bounded
/// outbound queue (several queued frames per flush), sends pings and enforces the timeouts of
/// [`WsConfig`]. This handle talks to that task through the two queues, so
/// [`recv`](Transport::recv) is cancel-safe and frames are delivered strictly in order.
///
/// Failures are reported by `recv`, after every frame received before them:
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
/// After an error close the connection shuts its write side and discards what the peer still
/// sends for at most `close_timeout`, so the close frame is not lost to a TCP reset.
///
/// [`close`](Transport::close) sends the queued frames, then the close frame (reason truncated to
/// [`MAX_CLOSE_REASON_BYTES`] at a character boundary; a code that may not be sent on the wire,
/// such as 1005 or 1006, becomes 1000), and waits at most `close_timeout` for the peer's close
/// frame. Frames still arriving meanwhile are kept if the inbound queue has room.
///
/// Dropping the handle closes the connection with 1001 (going away) in the background.
#[derive(Debug)]
pub struct WsConnection {
    commands: mpsc::Sender<Command>,
    inbound: mpsc::Receiver<Result<String, TransportError>>,
    peer: PeerInfo,
    shared: Arc<Shared>,
    state: RecvState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Open,
    Ended,
    Failed,
}

/// State the driver task shares with the handle.
#[derive(Debug, Default)]
struct Shared {
    /// Why the connection closed, once it has (set by the driver).
    closed: OnceLock<CloseReason>,
}

#[derive(Debug)]
enum Command {
    Frame(String),
    Close(CloseReason, oneshot::Sender<Result<(), TransportError>>),
}

impl WsConnection {
    /// Spawns the driver task of an upgraded stream and returns its handle.
    pub(crate) fn spawn<S>(ws: WebSocketStream<S>, peer: PeerInfo, config: &WsConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (commands, command_rx) = mpsc::channel(config.send_queue.max(1));
        let (inbound_tx, inbound) = mpsc::channel(config.recv_queue.max(1));
        let shared = Arc::new(Shared::default());
        let driver = Driver {
            ws,
            commands: command_rx,
            inbound: inbound_tx,
            shared: shared.clone(),
            pending: None,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            idle_timeout: config.idle_timeout,
            close_timeout: config.close_timeout,
            write_timeout: config.write_timeout,
        };
        let span = tracing::debug_span!(
            "ws_connection",
            remote = ?peer.remote_addr,
            path = %peer.path,
        );
        tokio::spawn(driver.run().instrument(span));
        Self {
            commands,
            inbound,
            peer,
            shared,
            state: RecvState::Open,
        }
    }

    /// Why the connection closed, once it has: the peer's close frame, or the close frame this
    /// side sent (on [`close`](Transport::close) or an error). `None` while open, and after a
    /// failure that sent no close frame (socket error).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.closed.get().cloned()
    }

    fn closed_error(&self) -> TransportError {
        TransportError::Closed(self.close_reason())
    }
}

#[async_trait]
impl Transport for WsConnection {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        match self.commands.send(Command::Frame(frame)).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.closed_error()),
        }
    }

    fn try_send(&mut self, frame: String) -> Result<(), TransportError> {
        match self.commands.try_send(Command::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(TransportError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.closed_error()),
        }
    }

    async fn recv(&mut self) -> Result<Option<String>, TransportError> {
        match self.state {
            RecvState::Open => {}
            RecvState::Ended => return Ok(None),
            RecvState::Failed => return Err(self.closed_error()),
        }
        // `mpsc::Receiver::recv` is cancel-safe, and so is this function: the state changes only
        // after a value was taken.
        match self.inbound.recv().await {
            Some(Ok(frame)) => Ok(Some(frame)),
            Some(Err(error)) => {
                self.state = RecvState::Failed;
                Err(error)
            }
            None => {
                self.state = RecvState::Ended;
                Ok(None)
            }
        }
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Close(reason, reply))
            .await
            .is_err()
        {
            // Already closed: closing is idempotent.
            return Ok(());
        }
        done.await.unwrap_or(Ok(()))
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
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

/// How the driver's main loop ended.
enum Exit {
    /// The peer sent a close frame (`None`: without a status code).
    PeerClosed(Option<CloseReason>),
    /// [`Transport::close`] was called.
    LocalClose(CloseReason, oneshot::Sender<Result<(), TransportError>>),
    /// The handle was dropped.
    HandleDropped,
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

struct Driver<S> {
    ws: WebSocketStream<S>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Result<String, TransportError>>,
    shared: Arc<Shared>,
    /// A received frame waiting for room in the inbound queue; the socket is not read meanwhile.
    pending: Option<String>,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    close_timeout: Duration,
    write_timeout: Duration,
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(mut self) {
        let exit = self.main_loop().await;
        match exit {
            Exit::PeerClosed(reason) => {
                tracing::debug!(?reason, "peer closed the connection");
                // tungstenite queued the close reply; flush it.
                let _ = tokio::time::timeout(self.close_timeout, self.ws.flush()).await;
                let reason = reason.unwrap_or_else(|| CloseReason::new(CloseCode(1005), ""));
                let _ = self.shared.closed.set(reason.clone());
                let Self {
                    ws,
                    inbound,
                    pending,
                    ..
                } = self;
                drop(ws);
                let error = match reason.code {
                    CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode(1005) => None,
                    _ => Some(TransportError::Closed(Some(reason))),
                };
                deliver(&inbound, pending, error).await;
            }
            Exit::LocalClose(reason, reply) => {
                tracing::debug!(%reason, "closing");
                let result = self.close_handshake(&reason).await;
                let _ = self.shared.closed.set(reason);
                let _ = reply.send(result);
                // Frames received before the close stay readable; then `recv` ends.
                if let Some(frame) = self.pending.take() {
                    let _ = self.inbound.try_send(Ok(frame));
                }
            }
            Exit::HandleDropped => {
                tracing::debug!("handle dropped; closing with 1001");
                let reason = CloseReason::new(CloseCode::GOING_AWAY, "");
                let _ = self.shared.closed.set(reason.clone());
                let _ = tokio::time::timeout(
                    self.close_timeout,
                    self.ws.close(Some(close_frame(&reason))),
                )
                .await;
                linger(self.ws, self.close_timeout).await;
            }
            Exit::Failed { error, close } => {
                tracing::debug!(%error, ?close, "connection failed");
                if let Some(reason) = &close {
                    let _ = self.shared.closed.set(reason.clone());
                    let _ = tokio::time::timeout(
                        self.close_timeout,
                        self.ws.close(Some(close_frame(reason))),
                    )
                    .await;
                }
                let Self {
                    ws,
                    inbound,
                    pending,
                    close_timeout,
                    ..
                } = self;
                if close.is_some() {
                    // Report the error while draining the socket; the socket is released when
                    // draining ends even if nobody takes the error.
                    tokio::join!(
                        linger(ws, close_timeout),
                        deliver(&inbound, pending, Some(error))
                    );
                } else {
                    drop(ws);
                    deliver(&inbound, pending, Some(error)).await;
                }
            }
        }
    }

    async fn main_loop(&mut self) -> Exit {
        let now = Instant::now();
        let mut ping = self.ping_interval.map(|period| {
            let mut interval = tokio::time::interval_at(now + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        // Deadlines are checked lazily: one timer, re-armed only when it fires, so the hot path
        // does no timer work per frame.
        let mut awaiting_pong_since: Option<Instant> = None;
        let mut last_data = now;
        let check = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(check);
        let mut check_at: Option<Instant> = None;
        let rearm = |check_at: &mut Option<Instant>,
                     check: &mut std::pin::Pin<&mut tokio::time::Sleep>,
                     at: Option<Instant>| {
            if let Some(at) = at {
                let earlier = match *check_at {
                    Some(current) => at < current,
                    None => true,
                };
                if earlier {
                    *check_at = Some(at);
                    check.as_mut().reset(at);
                }
            }
        };
        rearm(
            &mut check_at,
            &mut check,
            self.idle_timeout.map(|idle| now + idle),
        );

        loop {
            tokio::select! {
                biased;
                permit = self.inbound.reserve(), if self.pending.is_some() => {
                    let Ok(permit) = permit else { return Exit::HandleDropped };
                    if let Some(frame) = self.pending.take() {
                        permit.send(Ok(frame));
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else { return Exit::HandleDropped };
                    match command {
                        Command::Close(reason, reply) => return Exit::LocalClose(reason, reply),
                        Command::Frame(frame) => {
                            last_data = Instant::now();
                            match write_batch(&mut self.ws, &mut self.commands, self.write_timeout, frame).await {
                                Ok(None) => {}
                                Ok(Some(exit)) | Err(exit) => return exit,
                            }
                        }
                    }
                }
                message = self.ws.next(), if self.pending.is_none() => {
                    awaiting_pong_since = None;
                    let message = match message {
                        Some(Ok(message)) => message,
                        None => return Exit::PeerClosed(None),
                        Some(Err(error)) => return exit_for_read_error(error),
                    };
                    match message {
                        Message::Text(text) => {
                            last_data = Instant::now();
                            let frame = text.as_str().to_owned();
                            match self.inbound.try_reserve() {
                                Ok(permit) => permit.send(Ok(frame)),
                                Err(mpsc::error::TrySendError::Full(())) => {
                                    self.pending = Some(frame);
                                }
                                Err(mpsc::error::TrySendError::Closed(())) => {
                                    return Exit::HandleDropped;
                                }
                            }
                        }
                        Message::Binary(_) => {
                            return Exit::failed(
                                TransportError::Unsupported("binary frame"),
                                CloseCode::UNSUPPORTED_DATA,
                                "binary frames are not supported",
                            );
                        }
                        Message::Close(frame) => {
                            return Exit::PeerClosed(frame.as_ref().map(close_reason_of));
                        }
                        // Pings are answered by tungstenite on the next read; pongs only prove
                        // liveness.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
                () = tick(&mut ping), if ping.is_some() => {
                    let sent = tokio::time::timeout(
                        self.write_timeout,
                        self.ws.send(Message::Ping(Bytes::new())),
                    )
                    .await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => return exit_for_write_error(error),
                        Err(_) => return write_timed_out(),
                    }
                    if awaiting_pong_since.is_none() {
                        let now = Instant::now();
                        awaiting_pong_since = Some(now);
                        rearm(&mut check_at, &mut check, Some(now + self.pong_timeout));
                    }
                }
                () = &mut check, if check_at.is_some() => {
                    check_at = None;
                    let now = Instant::now();
                    if self.pending.is_some() {
                        // Backpressured by the local consumer: the socket is not being read, so
                        // neither silence nor idleness is the peer's doing.
                        awaiting_pong_since = awaiting_pong_since.map(|_| now);
                        last_data = now;
                    }
                    if let Some(since) = awaiting_pong_since {
                        if now >= since + self.pong_timeout {
                            return Exit::failed(
                                TransportError::TimedOut("peer did not answer a ping in time"),
                                CloseCode::GOING_AWAY,
                                "keepalive timeout",
                            );
                        }
                        rearm(&mut check_at, &mut check, Some(since + self.pong_timeout));
                    }
                    if let Some(idle) = self.idle_timeout {
                        if now >= last_data + idle {
                            return Exit::failed(
                                TransportError::TimedOut("idle timeout"),
                                CloseCode::GOING_AWAY,
                                "idle timeout",
                            );
                        }
                        rearm(&mut check_at, &mut check, Some(last_data + idle));
                    }
                }
            }
        }
    }

    /// Sends our close frame, then reads until the peer's close frame, the end of the stream or
    /// `close_timeout`. Text frames read meanwhile are delivered if the inbound queue has room.
    async fn close_handshake(&mut self, reason: &CloseReason) -> Result<(), TransportError> {
        let deadline = Instant::now() + self.close_timeout;
        match tokio::time::timeout_at(deadline, self.ws.close(Some(close_frame(reason)))).await {
            Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {}
            Ok(Err(error)) => return Err(transport_error_of(error)),
            Err(_) => return Err(TransportError::TimedOut("close frame could not be written")),
        }
        let inbound = &self.inbound;
        let pending = &mut self.pending;
        let ws = &mut self.ws;
        let wait = async {
            while let Some(message) = ws.next().await {
                match message {
                    Ok(Message::Text(text)) => {
                        let frame = text.as_str().to_owned();
                        if let Some(earlier) = pending.take() {
                            let _ = inbound.try_send(Ok(earlier));
                        }
                        if inbound.try_send(Ok(frame)).is_err() {
                            tracing::debug!("frame received while closing dropped: queue full");
                        }
                    }
                    Ok(Message::Close(_)) => {}
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
}

/// Writes `first` and up to [`MAX_BATCH`]` - 1` more queued frames, then flushes once.
/// Returns the exit to take if a close command was among them.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    commands: &mut mpsc::Receiver<Command>,
    write_timeout: Duration,
    first: String,
) -> Result<Option<Exit>, Exit>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let work = async {
        ws.feed(Message::Text(first.into())).await?;
        let mut close = None;
        for _ in 1..MAX_BATCH {
            match commands.try_recv() {
                Ok(Command::Frame(frame)) => ws.feed(Message::Text(frame.into())).await?,
                Ok(Command::Close(reason, reply)) => {
                    close = Some(Exit::LocalClose(reason, reply));
                    break;
                }
                Err(_) => break,
            }
        }
        ws.flush().await?;
        Ok::<_, WsError>(close)
    };
    match tokio::time::timeout(write_timeout, work).await {
        Ok(Ok(close)) => Ok(close),
        Ok(Err(error)) => Err(exit_for_write_error(error)),
        Err(_) => Err(write_timed_out()),
    }
}

/// Waits for the next tick of an interval; never completes without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Delivers a held frame, then the final error, waiting for room; gives up if the handle is gone.
async fn deliver(
    inbound: &mpsc::Sender<Result<String, TransportError>>,
    pending: Option<String>,
    error: Option<TransportError>,
) {
    if let Some(frame) = pending {
        if inbound.send(Ok(frame)).await.is_err() {
            return;
        }
    }
    if let Some(error) = error {
        let _ = inbound.send(Err(error)).await;
    }
}

/// Shuts the write side and discards what the peer still sends, for at most `limit`, so that
/// the close frame already written is not destroyed by a TCP reset.
async fn linger<S>(ws: WebSocketStream<S>, limit: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = ws.into_inner();
    let drain = async {
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 4096];
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
