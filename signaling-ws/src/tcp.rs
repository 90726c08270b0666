//! WebSocket over a plain [`TcpStream`], driven by the socket's readiness.
//!
//! `tokio_tungstenite` adapts any `AsyncRead + AsyncWrite` to the blocking-style `Read + Write`
//! tungstenite works with by registering the task's waker before every call, frame by frame.
//! A `TcpStream` can do without: tungstenite reads and writes through
//! [`TcpStream::try_read`] and [`TcpStream::try_write`], which fail with `WouldBlock` instead of
//! waiting, and the task registers for readiness only then. Frames already buffered are read
//! with no waker work at all. The protocol itself (framing, masking, control frames, the close
//! handshake) stays tungstenite's; what this module does is what `tokio_tungstenite`'s
//! `WebSocketStream` does, with the same results for every outcome.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Sink, Stream};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, WebSocket};

use crate::connection::{linger_stream, Socket};

/// A `TcpStream` as `Read + Write` that never waits: `WouldBlock` when the socket is not
/// ready (which also clears tokio's readiness, so that the next poll for it waits).
///
/// Reads go through a read-ahead buffer that exists only while the connection is busy.
/// tungstenite reads at most its small read buffer at a time (2 KiB by default, which keeps
/// an idle connection cheap), so a busy connection would make one `recv` call per 2 KiB, or
/// more than one per frame. Instead, when tungstenite asks for bytes and none are buffered,
/// up to [`WsConfig::read_ahead`](crate::WsConfig::read_ahead) bytes are read from the socket
/// at once, and tungstenite's reads are served from them. The buffer is freed when the socket
/// has nothing more to read, so an idle connection holds none. (Measured with the relay load
/// test: without it, the relay spent about twice the CPU per forwarded 3 KB frame.)
pub(crate) struct TryIo {
    tcp: TcpStream,
    /// Bytes read from the socket; `ahead[taken..]` has not been handed to tungstenite yet.
    ahead: Vec<u8>,
    taken: usize,
    /// The most bytes read from the socket at once (0: no read-ahead).
    read_ahead: usize,
}

impl TryIo {
    pub(crate) fn new(tcp: TcpStream, read_ahead: usize) -> Self {
        Self {
            tcp,
            ahead: Vec::new(),
            taken: 0,
            read_ahead,
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }
}

impl Read for TryIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.taken == self.ahead.len() {
            if buf.len() >= self.read_ahead {
                return self.tcp.try_read(buf);
            }
            self.ahead.clear();
            self.taken = 0;
            // Reserved, not zeroed: `try_read_buf` reads into the spare capacity.
            self.ahead.reserve_exact(self.read_ahead);
            match self.tcp.try_read_buf(&mut self.ahead) {
                Ok(0) => {
                    self.ahead = Vec::new();
                    return Ok(0);
                }
                Ok(_) => {}
                Err(error) => {
                    // Nothing more to read for now: the connection holds no buffer while it
                    // waits.
                    self.ahead = Vec::new();
                    return Err(error);
                }
            }
        }
        let ahead = self.ahead.get(self.taken..).unwrap_or_default();
        let n = ahead.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), ahead.get(..n)) {
            to.copy_from_slice(from);
        }
        self.taken += n;
        Ok(n)
    }
}

impl Write for TryIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(error: &WsError) -> bool {
    matches!(error, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// The server side of a WebSocket on `tcp`, once the `101 Switching Protocols` response has
/// been written; `tail` is what was read past the request head.
pub(crate) fn upgraded(
    tcp: TcpStream,
    tail: Vec<u8>,
    config: WebSocketConfig,
    read_ahead: usize,
) -> TcpSocket {
    TcpSocket::new(WebSocket::from_partially_read(
        TryIo::new(tcp, read_ahead),
        tail,
        Role::Server,
        Some(config),
    ))
}

/// A WebSocket on a `TcpStream` (see the [module documentation](self)).
pub(crate) struct TcpSocket {
    ws: WebSocket<TryIo>,
    /// Whether the last write went through without blocking (`poll_ready` need not flush).
    ready: bool,
    /// Whether the close frame is queued and what remains is flushing it.
    closing: bool,
    /// Whether the stream has ended (returned `None` or an error).
    ended: bool,
}

impl TcpSocket {
    fn new(ws: WebSocket<TryIo>) -> Self {
        Self {
            ws,
            ready: true,
            closing: false,
            ended: false,
        }
    }

    /// Runs a writing step of tungstenite until it no longer would block; when it would,
    /// registers the task for the socket's writability.
    fn poll_write_step(
        &mut self,
        cx: &mut Context<'_>,
        mut step: impl FnMut(&mut WebSocket<TryIo>) -> Result<(), WsError>,
    ) -> Poll<Result<(), WsError>> {
        loop {
            match step(&mut self.ws) {
                Err(error) if would_block(&error) => {
                    match self.ws.get_ref().tcp().poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(WsError::Io(error))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

impl Stream for TcpSocket {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match this.ws.read() {
                Ok(message) => return Poll::Ready(Some(Ok(message))),
                // Replies tungstenite queues while reading (pongs, the close reply) and cannot
                // write yet are its own business; a `WouldBlock` here is the read's.
                Err(error) if would_block(&error) => {
                    match this.ws.get_ref().tcp().poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => {
                            this.ended = true;
                            return Poll::Ready(Some(Err(WsError::Io(error))));
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Err(WsError::AlreadyClosed | WsError::ConnectionClosed) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Err(error) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

impl Sink<Message> for TcpSocket {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.ready {
            return Poll::Ready(Ok(()));
        }
        // The last write was queued but blocked: flush it away first.
        let result = futures::ready!(this.poll_write_step(cx, WebSocket::flush));
        this.ready = true;
        Poll::Ready(result)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        match this.ws.write(message) {
            Ok(()) => {
                this.ready = true;
                Ok(())
            }
            // Queued; `poll_ready` flushes before taking another.
            Err(error) if would_block(&error) => {
                this.ready = false;
                Ok(())
            }
            Err(error) => {
                this.ready = true;
                Err(error)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        let result = futures::ready!(this.poll_write_step(cx, WebSocket::flush));
        this.ready = true;
        Poll::Ready(match result {
            // The close handshake has just completed: everything was flushed.
            Err(WsError::ConnectionClosed) => Ok(()),
            other => other,
        })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        this.ready = true;
        if !this.closing {
            match this.ws.close(None) {
                Ok(()) | Err(WsError::ConnectionClosed) => return Poll::Ready(Ok(())),
                Err(error) if would_block(&error) => this.closing = true,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        match futures::ready!(this.poll_write_step(cx, WebSocket::flush)) {
            Ok(()) | Err(WsError::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl Socket for TcpSocket {
    fn linger(self: Box<Self>, limit: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        linger_stream(self.ws.into_inner().tcp, limit)
    }
}
