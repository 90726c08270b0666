//! [`AxumWs`]: axum's WebSocket as a [`Transport`], and the task that drives it.
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use signaling::transport::{
    CloseCode, CloseReason, Frame, PeerInfo, Transport, TransportError, TrySendError,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::config::AxumWsConfig;

/// The most bytes a close reason may carry (RFC 6455 §5.5: 125 bytes of payload, 2 of them the
/// code). Longer reasons are cut at a character boundary.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// One WebSocket connection upgraded by axum, implementing [`Transport`].
///
/// A small task owns the socket: it writes what the handle queues and reads into a bounded
/// queue that [`recv`](Transport::recv) takes from. Both queues are bounded by
/// [`AxumWsConfig`] (`send_queue`, `recv_queue`); while the receive queue is full the socket is
/// not read, so TCP pushes back on the peer. The task also sends keepalive pings and answers
/// the peer's (axum's WebSocket does that while reading).
///
/// Frames are delivered strictly in order. How a connection ends, as `recv` reports it after
/// every frame received before:
///
/// | what happened | close code sent | `recv` returns |
/// |---|---|---|
/// | peer closed with 1000, 1001 or no code | (echoed) | `Ok(None)` |
/// | peer closed with another code | (echoed) | `Err(Closed(Some(reason)))` |
/// | frame or message over the size limit | 1009 | `Err(TooLarge { .. })` |
/// | binary frame | 1003 | `Err(Unsupported("binary frame"))` |
/// | text frame that is not UTF-8 | 1003 | `Err(Unsupported("invalid UTF-8 in text frame"))` |
/// | nothing heard for `ping_interval + pong_timeout` | 1001 | `Err(TimedOut(..))` |
/// | peer does not read for `write_timeout` | none | `Err(TimedOut(..))` |
/// | WebSocket protocol violation | 1002 | `Err(Io(InvalidData))` |
/// | socket error, or TCP closed without a close frame | none | `Err(Io(..))` |
/// | [`close`](Transport::close) was called | the given one | `Ok(None)` (after the frames that arrived while closing) |
///
/// After an error, later calls return [`TransportError::Closed`]. After an error close the
/// socket is closed once the close frame is written, without reading what the peer still
/// sends (axum's WebSocket gives no access to the stream below it, and reading on after a size
/// error would read the oversized frame): a peer still sending may see the connection reset.
///
/// [`send`](Transport::send) returns once the frame is queued (waiting while the queue is
/// full); [`try_send`](Transport::try_send) hands the frame back when it is full. The task
/// writes what is queued in batches, with one flush per batch.
/// [`close`](Transport::close) writes the frames queued before it, then the close frame (the
/// reason cut to [`MAX_CLOSE_REASON_BYTES`]; a code that may not be sent on the wire, such as
/// 1005 or 1006, becomes 1000), and returns; the task then waits at most `close_timeout` for the
/// peer's close frame, keeping the text frames that arrive meanwhile for `recv`.
///
/// Dropping an open connection writes the queued frames and a close frame with 1001 (going
/// away).
///
/// `recv` is cancel-safe: a frame is taken from the queue only when `recv` completes.
pub struct AxumWs {
    peer: PeerInfo,
    out: mpsc::Sender<Out>,
    inbox: mpsc::Receiver<Frame>,
    ending: Arc<Mutex<Ending>>,
    /// `close` was called: later sends fail, later closes do nothing.
    closing: bool,
}

/// What the handle asks of the task, in order.
enum Out {
    Frame(Frame),
    Close(CloseReason, oneshot::Sender<Result<(), TransportError>>),
}

/// How the connection ended, set by the task before it drops its end of the receive queue.
#[derive(Debug, Default)]
struct Ending {
    /// The error for `recv` to report, once.
    error: Option<TransportError>,
    /// Ended cleanly: `recv` returns `Ok(None)`.
    clean: bool,
    /// The close frame received or sent, if any.
    reason: Option<CloseReason>,
}

impl std::fmt::Debug for AxumWs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AxumWs")
            .field("peer", &self.peer)
            .field("closing", &self.closing)
            .field("received", &self.inbox.len())
            .finish_non_exhaustive()
    }
}

impl AxumWs {
    /// Wraps an upgraded socket, with `peer` as what is known of the remote end (see
    /// [`peer_info`](super::peer_info)), and starts the task that drives it.
    ///
    /// The size limits of `config` take effect only if they were set on the upgrade
    /// ([`AxumWsConfig::apply`]; [`WsUpgrade::accept`](super::WsUpgrade::accept) does it).
    ///
    /// # Panics
    /// Outside a tokio runtime (axum's upgrade callbacks run inside one).
    pub fn new(socket: WebSocket, peer: PeerInfo, config: &AxumWsConfig) -> Self {
        let (out, out_rx) = mpsc::channel(config.send_queue.max(1));
        let (inbox_tx, inbox) = mpsc::channel(config.recv_queue.max(1));
        let ending = Arc::new(Mutex::new(Ending::default()));
        let limits = Limits {
            batch: config.send_queue.max(1),
            ping_interval: config.ping_interval,
            dead_after: config
                .ping_interval
                .map(|period| period + config.pong_timeout),
            write_timeout: config.write_timeout,
            close_timeout: config.close_timeout,
        };
        tokio::spawn(drive(socket, out_rx, inbox_tx, ending.clone(), limits));
        Self {
            peer,
            out,
            inbox,
            ending,
            closing: false,
        }
    }

    /// Why the connection closed, once it has: the peer's close frame, or the one this side
    /// sent. `None` while open, and after a failure that sent no close frame.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.ending().reason.clone()
    }

    fn ending(&self) -> MutexGuard<'_, Ending> {
        // Every update completes before the lock is released.
        self.ending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed_error(&self) -> TransportError {
        TransportError::Closed(self.close_reason())
    }

    /// What `recv` returns once the task has ended and the queue is empty.
    fn after_end(&self) -> Result<Option<Frame>, TransportError> {
        let mut ending = self.ending();
        if let Some(error) = ending.error.take() {
            return Err(error);
        }
        if ending.clean {
            Ok(None)
        } else {
            Err(TransportError::Closed(ending.reason.clone()))
        }
    }
}

#[async_trait]
impl Transport for AxumWs {
    async fn send(&mut self, frame: Frame) -> Result<(), TransportError> {
        if self.closing {
            return Err(self.closed_error());
        }
        match self.out.send(Out::Frame(frame)).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.closed_error()),
        }
    }

    fn try_send(&mut self, frame: Frame) -> Result<(), TrySendError> {
        if self.closing {
            return Err(self.closed_error().into());
        }
        match self.out.try_send(Out::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(Out::Frame(frame))) => {
                Err(TrySendError::Full(frame))
            }
            Err(_) => Err(self.closed_error().into()),
        }
    }

    async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        match self.inbox.recv().await {
            Some(frame) => Ok(Some(frame)),
            None => self.after_end(),
        }
    }

    fn try_recv(&mut self) -> Poll<Result<Option<Frame>, TransportError>> {
        match self.inbox.try_recv() {
            Ok(frame) => Poll::Ready(Ok(Some(frame))),
            Err(mpsc::error::TryRecvError::Empty) => Poll::Pending,
            Err(mpsc::error::TryRecvError::Disconnected) => Poll::Ready(self.after_end()),
        }
    }

    async fn close(&mut self, reason: CloseReason) -> Result<(), TransportError> {
        if self.closing {
            return Ok(());
        }
        self.closing = true;
        let (done, written) = oneshot::channel();
        if self.out.send(Out::Close(reason, done)).await.is_err() {
            // The connection is over already: closing is idempotent.
            return Ok(());
        }
        written.await.unwrap_or(Ok(()))
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Frames written with one flush, at most: one send queue's worth.
    batch: usize,
    ping_interval: Option<Duration>,
    /// With pings on, how long the peer may stay silent.
    dead_after: Option<Duration>,
    write_timeout: Duration,
    close_timeout: Duration,
}

/// Why reading or writing stopped.
enum Finish {
    /// The peer sent a close frame (`None`: without a code).
    PeerClosed(Option<CloseReason>),
    /// A failure: send this close frame, if any, and report the error.
    Failed {
        error: TransportError,
        close: Option<CloseReason>,
    },
    /// Close with this reason: asked by `close` (which waits for `done`), or the handle was
    /// dropped.
    Close {
        reason: CloseReason,
        done: Option<oneshot::Sender<Result<(), TransportError>>>,
    },
}

impl Finish {
    fn failed(error: TransportError, code: CloseCode, reason: &str) -> Self {
        Self::Failed {
            error,
            close: Some(CloseReason::new(code, reason)),
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// The connection's task: reads and writes until either side stops, then closes as the
/// [`AxumWs`] docs say, records how it ended and drops its end of the receive queue (which
/// `recv` sees after the last frame).
async fn drive(
    socket: WebSocket,
    mut out: mpsc::Receiver<Out>,
    inbox: mpsc::Sender<Frame>,
    ending: Arc<Mutex<Ending>>,
    limits: Limits,
) {
    let (mut sink, mut stream) = socket.split();
    let finish = tokio::select! {
        // Reading first: a close frame from the peer is seen before a write fails on it.
        biased;
        finish = read(&mut stream, &inbox, &limits) => finish,
        finish = write(&mut sink, &mut out, &limits) => finish,
    };
    // Later sends fail at once; what was queued after the end is dropped with `out`.
    out.close();
    let outcome = match finish {
        Finish::PeerClosed(reason) => {
            // The library queued its reply to the peer's close frame: write it.
            let _ = tokio::time::timeout(limits.close_timeout, sink.flush()).await;
            let reason = reason.unwrap_or_else(|| CloseReason::new(CloseCode(1005), ""));
            tracing::debug!(%reason, "peer closed the connection");
            match reason.code {
                CloseCode::NORMAL | CloseCode::GOING_AWAY | CloseCode(1005) => Ending {
                    error: None,
                    clean: true,
                    reason: Some(reason),
                },
                _ => Ending {
                    error: Some(TransportError::Closed(Some(reason.clone()))),
                    clean: false,
                    reason: Some(reason),
                },
            }
        }
        Finish::Failed { error, close } => {
            tracing::debug!(%error, ?close, "connection failed");
            if let Some(reason) = &close {
                let _ = bounded(limits.close_timeout, sink.send(close_message(reason))).await;
            }
            Ending {
                error: Some(error),
                clean: false,
                reason: close,
            }
        }
        Finish::Close { reason, done } => {
            tracing::debug!(%reason, "closing");
            let written = bounded(limits.close_timeout, sink.send(close_message(&reason))).await;
            let written = written.map_err(|finish| match finish {
                Finish::Failed {
                    error: TransportError::TimedOut(_),
                    ..
                } => TransportError::TimedOut("close frame could not be written"),
                Finish::Failed { error, .. } => error,
                _ => TransportError::Closed(None),
            });
            let wait = written.is_ok();
            if let Some(done) = done {
                let _ = done.send(written);
            }
            if wait {
                // The peer's close frame ends the stream; text frames before it are kept, as
                // far as the receive queue has room.
                let closing = async {
                    while let Some(Ok(message)) = stream.next().await {
                        if let Message::Text(text) = message {
                            if inbox.try_send(Frame::from(text.as_str())).is_err() {
                                tracing::debug!("frame received while closing dropped");
                            }
                        }
                    }
                };
                if tokio::time::timeout(limits.close_timeout, closing)
                    .await
                    .is_err()
                {
                    tracing::debug!("peer did not answer the close frame in time");
                }
            }
            Ending {
                error: None,
                clean: true,
                reason: Some(reason),
            }
        }
    };
    *ending.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
    // `inbox` is dropped here, after the ending was recorded.
}

/// Reads messages into the receive queue, one at a time and only when it has room.
async fn read(stream: &mut Stream, inbox: &mpsc::Sender<Frame>, limits: &Limits) -> Finish {
    loop {
        let Ok(room) = inbox.reserve().await else {
            // The handle is gone; the writer sees that too and closes.
            return std::future::pending().await;
        };
        let next = match limits.dead_after {
            Some(limit) => match tokio::time::timeout(limit, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Finish::failed(
                        TransportError::TimedOut("peer did not answer a ping in time"),
                        CloseCode::GOING_AWAY,
                        "keepalive timeout",
                    )
                }
            },
            None => stream.next().await,
        };
        match next {
            Some(Ok(Message::Text(text))) => room.send(Frame::from(text.as_str())),
            Some(Ok(Message::Binary(_))) => {
                return Finish::failed(
                    TransportError::Unsupported("binary frame"),
                    CloseCode::UNSUPPORTED_DATA,
                    "binary frames are not supported",
                )
            }
            Some(Ok(Message::Close(frame))) => {
                return Finish::PeerClosed(
                    frame.map(|f| CloseReason::new(CloseCode(f.code), f.reason.as_str())),
                )
            }
            // The library answers pings itself; any message proves the peer alive.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Err(error)) => return read_failure(error),
            None => {
                return Finish::Failed {
                    error: TransportError::Io(io::ErrorKind::UnexpectedEof.into()),
                    close: None,
                }
            }
        }
    }
}

/// Writes what the handle queues, in batches, and the keepalive pings.
async fn write(sink: &mut Sink, out: &mut mpsc::Receiver<Out>, limits: &Limits) -> Finish {
    let mut pings = limits.ping_interval.map(|period| {
        let mut pings = tokio::time::interval_at(Instant::now() + period, period);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        pings
    });
    loop {
        let next = tokio::select! {
            next = out.recv() => next,
            () = tick(&mut pings) => {
                if let Err(finish) = bounded(limits.write_timeout, sink.send(Message::Ping(Bytes::new()))).await {
                    return finish;
                }
                continue;
            }
        };
        let frame = match next {
            Some(Out::Frame(frame)) => frame,
            Some(Out::Close(reason, done)) => {
                return Finish::Close {
                    reason,
                    done: Some(done),
                }
            }
            None => {
                return Finish::Close {
                    reason: CloseReason::new(CloseCode::GOING_AWAY, ""),
                    done: None,
                }
            }
        };
        // This frame and those queued behind it, with one flush.
        let mut close = None;
        let batch = async {
            sink.feed(text_message(frame)).await?;
            for _ in 1..limits.batch {
                match out.try_recv() {
                    Ok(Out::Frame(frame)) => sink.feed(text_message(frame)).await?,
                    Ok(Out::Close(reason, done)) => {
                        close = Some((reason, done));
                        break;
                    }
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        if let Err(finish) = bounded(limits.write_timeout, batch).await {
            return finish;
        }
        if let Some((reason, done)) = close {
            return Finish::Close {
                reason,
                done: Some(done),
            };
        }
    }
}

/// The next keepalive tick; never, with pings off.
async fn tick(pings: &mut Option<Interval>) {
    match pings {
        Some(pings) => {
            pings.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A write bounded by `limit`: a write that cannot finish in time is a peer that does not read.
async fn bounded(
    limit: Duration,
    write: impl std::future::Future<Output = Result<(), axum::Error>>,
) -> Result<(), Finish> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Finish::Failed {
            error: write_error(error),
            close: None,
        }),
        Err(_) => Err(Finish::Failed {
            error: TransportError::TimedOut("peer did not read in time"),
            close: None,
        }),
    }
}

/// A text message of `frame`'s buffer, not copied.
fn text_message(frame: Frame) -> Message {
    let text = Utf8Bytes::try_from(frame.clone().into_bytes())
        // A frame is UTF-8: the copy is never made.
        .unwrap_or_else(|_| Utf8Bytes::from(frame.as_str()));
    Message::Text(text)
}

/// The close frame to send. Codes that may not be sent on the wire (1004 to 1006, 1015,
/// reserved and out-of-range values; RFC 6455 §7.4) are replaced with 1000.
fn close_message(reason: &CloseReason) -> Message {
    let code = match reason.code.0 {
        code @ (1000..=1003 | 1007..=1014 | 3000..=4999) => code,
        _ => CloseCode::NORMAL.0,
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(truncate_reason(&reason.reason)),
    }))
}

/// Cuts a close reason to [`MAX_CLOSE_REASON_BYTES`] at a character boundary.
fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The library's error behind axum's, when it is one.
fn library_error(error: axum::Error) -> Result<tungstenite::Error, io::Error> {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) => Ok(*error),
        Err(other) => Err(io::Error::other(other)),
    }
}

fn read_failure(error: axum::Error) -> Finish {
    use tungstenite::error::{CapacityError, ProtocolError};
    use tungstenite::Error as WsError;
    let error = match library_error(error) {
        Ok(error) => error,
        Err(other) => {
            return Finish::Failed {
                error: TransportError::Io(other),
                close: None,
            }
        }
    };
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Finish::failed(
            TransportError::TooLarge {
                size,
                limit: max_size,
            },
            CloseCode::MESSAGE_TOO_BIG,
            "message too big",
        ),
        WsError::Capacity(_) => Finish::failed(
            TransportError::TooLarge { size: 0, limit: 0 },
            CloseCode::MESSAGE_TOO_BIG,
            "message too big",
        ),
        WsError::Utf8(_) => Finish::failed(
            TransportError::Unsupported("invalid UTF-8 in text frame"),
            CloseCode::UNSUPPORTED_DATA,
            "invalid UTF-8",
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => Finish::PeerClosed(None),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Finish::Failed {
            error: TransportError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection ended without a close frame",
            )),
            close: None,
        },
        WsError::Protocol(error) => Finish::failed(
            TransportError::Io(io::Error::new(io::ErrorKind::InvalidData, error)),
            CloseCode::PROTOCOL_ERROR,
            "protocol error",
        ),
        WsError::Io(error) => Finish::Failed {
            error: TransportError::Io(error),
            close: None,
        },
        other => Finish::Failed {
            error: TransportError::Io(io::Error::other(other)),
            close: None,
        },
    }
}

fn write_error(error: axum::Error) -> TransportError {
    match library_error(error) {
        Ok(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            TransportError::Closed(None)
        }
        Ok(tungstenite::Error::Io(error)) => TransportError::Io(error),
        Ok(other) => TransportError::Io(io::Error::other(other)),
        Err(other) => TransportError::Io(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_cut_at_a_char_boundary() {
        assert_eq!(truncate_reason("bye"), "bye");
        let long = "é".repeat(100); // 200 bytes
        assert_eq!(truncate_reason(&long).len(), 122);
        assert_eq!(truncate_reason(&"a".repeat(123)).len(), 123);
    }

    #[test]
    fn codes_that_may_not_be_sent_become_1000() {
        // RFC 6455 §7.4.1 and §7.4.2: 1004 reserved, 1005, 1006 and 1015 never sent,
        // 1016..=2999 reserved for future protocol use, below 1000 unused.
        let sent = |code: u16| match close_message(&CloseReason::new(CloseCode(code), "")) {
            Message::Close(Some(frame)) => frame.code,
            other => panic!("{other:?}"),
        };
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(sent(code), 1000, "{code}");
        }
        for code in [1000, 1001, 1003, 1008, 1009, 1011, 1013, 3000, 4401, 4999] {
            assert_eq!(sent(code), code);
        }
    }
}
