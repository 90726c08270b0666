//! Connection, server and client settings.
use std::time::Duration;

use signaling_core::config::InvalidSetting;
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
/// wait in the send queue, received frames are read from the socket only by
/// [`recv`](signaling::transport::Transport::recv) (so TCP flow control pushes back on a
/// peer that sends faster than the application reads), at most `recv_queue` frames are kept
/// while [`close`](signaling::transport::Transport::close) waits for the peer, and a
/// server holds at most `max_handshakes_in_flight` handshakes plus `accept_queue` finished
/// connections that [`WsServer::accept`](crate::WsServer::accept) has not taken yet, and
/// reads at most `max_header_bytes` of a request head, within `handshake_timeout`.
///
/// [`validate`](Self::validate) refuses settings that cannot work (a timeout of 0, say).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WsConfig {
    /// The largest text message accepted from the peer, in bytes (after reassembling fragments).
    /// A larger one closes the connection with 1009. Default 64 KiB.
    pub max_message_size: usize,
    /// The largest single frame payload accepted from the peer, in bytes. A larger one closes
    /// the connection with 1009. Default 64 KiB.
    pub max_frame_size: usize,
    /// Initial capacity of the per-connection read buffer, in bytes, and the most bytes
    /// tungstenite takes at once (from the socket, or from the
    /// [read-ahead](Self::read_ahead) buffer) while no larger frame is being read. It is allocated for every
    /// connection and touched (zero-filled by tungstenite) on the first read, so it is resident
    /// even while the connection is idle; it grows on demand to the size of the frame being
    /// read. Default 2 KiB, which holds a candidate or a small SDP in one read: measured with
    /// 5,000 idle server connections, each waiting in `recv` on its own task (example
    /// `idle_rss`, server and clients in separate processes), one server connection costs
    /// about 4.8 KB of process memory with 2 KiB, 3.8 KB with 1 KiB and 7.7 KB with 4 KiB
    /// (kernel socket buffers not included).
    pub read_buffer_size: usize,
    /// Size of the blocks received frames are copied into, in bytes. The frames a connection
    /// receives together are copied out of the read buffer one after another into one block
    /// (one allocation for many frames, shared by them: see
    /// [`FrameBlock`](signaling::transport::FrameBlock)); a frame larger than a quarter of
    /// it gets a buffer of its own. A frame keeps its block alive until it is dropped, so up to
    /// this much memory stands behind a queued frame; between bursts a connection holds no
    /// block. Default 4 KiB; 0: every frame in a buffer of its own; values over 1 MiB are
    /// treated as 1 MiB.
    ///
    /// (Frames are not left in the read buffer itself: while one is held there, tungstenite
    /// allocates a new read buffer for the next read and reads less. Measured with the relay
    /// load test, that forwarded 20 to 25 % fewer frames per second than copying them out.)
    pub recv_block_size: usize,
    /// The most bytes a busy connection reads from its socket at once, in bytes (server side,
    /// plain TCP). tungstenite takes them [`read_buffer_size`](Self::read_buffer_size) at a
    /// time; the read-ahead buffer is freed whenever the socket has nothing more to read, so
    /// idle connections hold none, and a connection that is busy holds up to this much.
    /// Default 64 KiB; 0: none (one socket read per `read_buffer_size`).
    pub read_ahead: usize,
    /// Outgoing bytes gathered before a write to the socket (frames are also written out at
    /// every flush, which [`send`](signaling::transport::Transport::send) does before it
    /// returns). Default 8 KiB.
    pub write_buffer_size: usize,
    /// Bound of the send queue, in frames: frames accepted by [`try_send`] that the socket has
    /// not taken yet (they are written by the next `send`, `recv` or `close`). [`try_send`]
    /// hands the frame back in [`TrySendError::Full`](signaling::transport::TrySendError::Full)
    /// while it is full; [`send`] writes the queue out first. Frames handed to tungstenite are
    /// not counted: it holds at most about `write_buffer_size` plus one frame beyond what the
    /// socket took. Default 64. A value of 0 is treated as 1.
    ///
    /// [`send`]: signaling::transport::Transport::send
    /// [`try_send`]: signaling::transport::Transport::try_send
    pub send_queue: usize,
    /// The most text frames kept when they arrive while
    /// [`close`](signaling::transport::Transport::close) waits for the peer's close frame;
    /// [`recv`](signaling::transport::Transport::recv) returns them before it reports the
    /// end, and later ones are dropped. (Otherwise frames are not queued: `recv` reads them from
    /// the socket one at a time.) Default 64. A value of 0 is treated as 1.
    pub recv_queue: usize,
    /// How often a ping is sent; `None` disables pings. Default 20 s.
    pub ping_interval: Option<Duration>,
    /// How long after a ping the peer has to send anything (a pong or any other frame) before
    /// it is declared dead: the connection closes and `recv` returns
    /// [`TransportError::TimedOut`](signaling::transport::TransportError::TimedOut).
    /// Pings are sent and the deadline checked only while a `recv` is pending; when `recv` is
    /// called again, what the peer sent meanwhile is read before the deadline is checked.
    /// Default 10 s.
    pub pong_timeout: Duration,
    /// Closes the connection (code 1001, `recv` returns `TimedOut`) when no text frame has been
    /// sent or received for this long. Pings and pongs do not count: they keep a live but
    /// unused connection from timing out only through `pong_timeout`'s dead-peer check, while
    /// this catches a live peer that holds a socket open without using it. Checked while a
    /// `recv` is pending. `None` disables it. Default `None`.
    pub idle_timeout: Option<Duration>,
    /// Client only: the deadline for TCP connect, TLS and the upgrade handshake together.
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// Server only: the deadline for the whole upgrade, from the first byte read to the
    /// response written: reading the request head (a client that sends it slowly, a line at a
    /// time, is cut off at the deadline like one that sends nothing), the admission check and
    /// writing the response. A connection that misses it is closed without a response.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Server only: the largest request head accepted, in bytes (the request line and the
    /// headers, up to and including the blank line that ends them). A larger head is answered
    /// with `431 Request Header Fields Too Large`. At most this much is buffered per handshake.
    /// Default 16 KiB (a browser's upgrade request is about 0.5 KiB, plus its cookies).
    pub max_header_bytes: usize,
    /// Server only: the most header lines accepted in a request head. More are answered with
    /// `431 Request Header Fields Too Large`. Default 64 (a browser sends about 15).
    pub max_headers: usize,
    /// Bounds the closing steps: writing the close frame, waiting for the peer's close frame
    /// after [`close`](signaling::transport::Transport::close), and draining the socket
    /// after an error close. Default 5 s.
    pub close_timeout: Duration,
    /// Bounds writing frames to the socket: a `send` that cannot write its frame for this long,
    /// or queued frames a pending `recv` cannot write for this long, fail the connection
    /// (`TimedOut`); this is how a peer that stops reading is disconnected. Default 10 s.
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
            read_buffer_size: 2 * 1024,
            recv_block_size: 4 * 1024,
            read_ahead: 64 * 1024,
            write_buffer_size: 8 * 1024,
            send_queue: 64,
            recv_queue: 64,
            ping_interval: Some(Duration::from_secs(20)),
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
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

    /// Sets [`recv_block_size`](Self::recv_block_size) (at most 1 MiB takes effect).
    pub fn with_recv_block_size(mut self, bytes: usize) -> Self {
        self.recv_block_size = bytes;
        self
    }

    /// Sets [`read_ahead`](Self::read_ahead).
    pub fn with_read_ahead(mut self, bytes: usize) -> Self {
        self.read_ahead = bytes;
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

    /// Sets [`max_header_bytes`](Self::max_header_bytes).
    pub fn with_max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    pub fn with_max_headers(mut self, headers: usize) -> Self {
        self.max_headers = headers;
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

    /// Refuses settings that cannot work: sizes of 0 that refuse every message
    /// (`max_message_size`, `max_frame_size`) or read nothing (`read_buffer_size`), a
    /// `write_buffer_size` of `usize::MAX` (tungstenite needs room above it), timeouts of 0
    /// (`pong_timeout`, `connect_timeout`, `handshake_timeout`, `close_timeout`,
    /// `write_timeout`, and `ping_interval` or `idle_timeout` set to 0), and request-head
    /// bounds too small for any WebSocket upgrade: `max_header_bytes` under
    /// [`MIN_HEADER_BYTES`](Self::MIN_HEADER_BYTES), `max_headers` under
    /// [`MIN_HEADERS`](Self::MIN_HEADERS). The queue bounds documented as "0 is treated as 1"
    /// are accepted.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let sizes = [
            (
                "max_message_size",
                self.max_message_size,
                "every message would be refused",
            ),
            (
                "max_frame_size",
                self.max_frame_size,
                "every frame would be refused",
            ),
            (
                "read_buffer_size",
                self.read_buffer_size,
                "nothing could be read",
            ),
        ];
        for (setting, value, reason) in sizes {
            InvalidSetting::check_nonzero(setting, value as u64, reason)?;
        }
        if self.write_buffer_size == usize::MAX {
            return Err(InvalidSetting::new(
                "write_buffer_size",
                self.write_buffer_size,
                "must be less than the largest usize",
            ));
        }
        let timeouts = [
            (
                "ping_interval",
                self.ping_interval,
                "pings would be sent without pause (disable them instead)",
            ),
            (
                "pong_timeout",
                Some(self.pong_timeout),
                "every peer would count as dead at once",
            ),
            (
                "idle_timeout",
                self.idle_timeout,
                "every connection would be idle at once (disable it instead)",
            ),
            (
                "connect_timeout",
                Some(self.connect_timeout),
                "no connection could be made",
            ),
            (
                "handshake_timeout",
                Some(self.handshake_timeout),
                "no handshake could finish",
            ),
            (
                "close_timeout",
                Some(self.close_timeout),
                "no close handshake could finish",
            ),
            (
                "write_timeout",
                Some(self.write_timeout),
                "no write that has to wait could finish",
            ),
        ];
        for (setting, value, reason) in timeouts {
            if let Some(value) = value {
                InvalidSetting::check_nonzero_duration(setting, value, reason)?;
            }
        }
        if self.max_header_bytes < Self::MIN_HEADER_BYTES {
            return Err(InvalidSetting::new(
                "max_header_bytes",
                self.max_header_bytes,
                "must be at least 256: every browser's upgrade request is larger",
            ));
        }
        if self.max_headers < Self::MIN_HEADERS {
            return Err(InvalidSetting::new(
                "max_headers",
                self.max_headers,
                "must be at least 5: an upgrade request needs Host, Upgrade, Connection, \
                 Sec-WebSocket-Key and Sec-WebSocket-Version",
            ));
        }
        Ok(())
    }

    /// The smallest [`max_header_bytes`](Self::max_header_bytes) [`validate`](Self::validate)
    /// accepts: a minimal upgrade request is about 150 bytes, a browser's several hundred.
    pub const MIN_HEADER_BYTES: usize = 256;

    /// The smallest [`max_headers`](Self::max_headers) [`validate`](Self::validate) accepts:
    /// an upgrade request needs `Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key` and
    /// `Sec-WebSocket-Version`.
    pub const MIN_HEADERS: usize = 5;

    /// The tungstenite settings derived from this configuration.
    pub(crate) fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}
