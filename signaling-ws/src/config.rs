//! Connection, server and client settings.
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Settings for WebSocket connections (both sides) and for [`WsServer`](crate::WsServer).
///
/// Build it from [`WsConfig::default()`] and the `with_*` methods, or set the public fields:
///
/// ```
/// use std::time::Duration;
/// use signaling_ws::WsConfig;
///
/// let config = WsConfig::default()
///     .with_max_message_size(16 * 1024)
///     .with_ping_interval(Some(Duration::from_secs(10)));
/// assert_eq!(config.max_frame_size, 16 * 1024);
/// ```
///
/// Every queue a connection owns is bounded by a field here: at most `send_queue` outgoing frames
/// wait in the send queue, at most `recv_queue + 1` received frames wait for
/// [`recv`](signaling_core::transport::Transport::recv) (when the inbound queue is full the
/// connection stops reading the socket, so TCP flow control pushes back on the peer), and a
/// server holds at most `max_handshakes_in_flight` handshakes plus `accept_queue` finished
/// connections that [`WsServer::accept`](crate::WsServer::accept) has not taken yet.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WsConfig {
    /// The largest text message accepted from the peer, in bytes (after reassembling fragments).
    /// A larger one closes the connection with 1009. Default 64 KiB.
    pub max_message_size: usize,
    /// The largest single frame payload accepted from the peer, in bytes. A larger one closes
    /// the connection with 1009. Default 64 KiB.
    pub max_frame_size: usize,
    /// Initial capacity of the per-connection read buffer, in bytes. It is allocated for every
    /// connection, idle or not, and grows on demand up to the frame size being read, so a small
    /// value keeps idle connections cheap. Default 4 KiB: measured with 2,000 idle local
    /// connections (example `idle_rss`), one connection end costs about 15 KB of process memory
    /// with 4 KiB, 14 KB with 1 KiB, 28 KB with 16 KiB and 146 KB with tungstenite's default of
    /// 128 KiB (kernel socket buffers not included).
    pub read_buffer_size: usize,
    /// Outgoing bytes gathered before a write to the socket (frames are also written out at
    /// every flush, which happens after each batch of queued frames). Default 8 KiB.
    pub write_buffer_size: usize,
    /// Bound of the outgoing frame queue, in frames. [`send`] waits and [`try_send`] fails with
    /// [`TransportError::Full`](signaling_core::transport::TransportError::Full) while it is full.
    /// Default 64. A value of 0 is treated as 1.
    ///
    /// [`send`]: signaling_core::transport::Transport::send
    /// [`try_send`]: signaling_core::transport::Transport::try_send
    pub send_queue: usize,
    /// Bound of the inbound frame queue, in frames: frames read from the socket and not yet taken
    /// by [`recv`](signaling_core::transport::Transport::recv). One more frame may be held by the
    /// connection while the queue is full. Default 64. A value of 0 is treated as 1.
    pub recv_queue: usize,
    /// How often a ping is sent; `None` disables pings. Default 20 s.
    pub ping_interval: Option<Duration>,
    /// How long after a ping the peer has to send anything (a pong or any other frame) before
    /// it is declared dead: the connection closes and `recv` returns
    /// [`TransportError::TimedOut`](signaling_core::transport::TransportError::TimedOut).
    /// The deadline is suspended while the inbound queue is full (the socket is not being read
    /// then, so the peer's answer could not be seen). Default 10 s.
    pub pong_timeout: Duration,
    /// Closes the connection (code 1001, `recv` returns `TimedOut`) when no text frame has been
    /// sent or received for this long. Pings and pongs do not count: they keep a live but
    /// unused connection from timing out only through `pong_timeout`'s dead-peer check, while
    /// this catches a live peer that holds a socket open without using it. `None` disables it.
    /// Default `None`.
    pub idle_timeout: Option<Duration>,
    /// Client only: the deadline for TCP connect, TLS and the upgrade handshake together.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// Server only: the deadline for reading the upgrade request and writing the response.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Bounds the closing steps: writing the close frame, waiting for the peer's close frame
    /// after [`close`](signaling_core::transport::Transport::close), and draining the socket
    /// after an error close. Default 5 s.
    pub close_timeout: Duration,
    /// Bounds writing one batch of frames to the socket; a peer that does not read for this
    /// long is disconnected (`recv` returns `TimedOut`). Default 10 s.
    pub write_timeout: Duration,
    /// Server only: the most handshakes in progress at once. While this many are in progress
    /// the server stops accepting TCP connections (they wait in the kernel's backlog).
    /// Default 256. A value of 0 is treated as 1.
    pub max_handshakes_in_flight: usize,
    /// Server only: bound of the queue of upgraded connections not yet taken by
    /// [`WsServer::accept`](crate::WsServer::accept). Default 64. A value of 0 is treated as 1.
    pub accept_queue: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_frame_size: 64 * 1024,
            read_buffer_size: 4 * 1024,
            write_buffer_size: 8 * 1024,
            send_queue: 64,
            recv_queue: 64,
            ping_interval: Some(Duration::from_secs(20)),
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_handshakes_in_flight: 256,
            accept_queue: 64,
        }
    }
}

impl WsConfig {
    /// Sets both [`max_message_size`](Self::max_message_size) and
    /// [`max_frame_size`](Self::max_frame_size).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`read_buffer_size`](Self::read_buffer_size).
    pub fn with_read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Sets [`write_buffer_size`](Self::write_buffer_size).
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`send_queue`](Self::send_queue).
    pub fn with_send_queue(mut self, frames: usize) -> Self {
        self.send_queue = frames;
        self
    }

    /// Sets [`recv_queue`](Self::recv_queue).
    pub fn with_recv_queue(mut self, frames: usize) -> Self {
        self.recv_queue = frames;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval).
    pub fn with_ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Sets [`pong_timeout`](Self::pong_timeout).
    pub fn with_pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`write_timeout`](Self::write_timeout).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`max_handshakes_in_flight`](Self::max_handshakes_in_flight).
    pub fn with_max_handshakes_in_flight(mut self, handshakes: usize) -> Self {
        self.max_handshakes_in_flight = handshakes;
        self
    }

    /// Sets [`accept_queue`](Self::accept_queue).
    pub fn with_accept_queue(mut self, connections: usize) -> Self {
        self.accept_queue = connections;
        self
    }

    /// The tungstenite settings derived from this configuration.
    pub(crate) fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}
