//! [`AxumWsConfig`]: limits, queues and timeouts of a WebSocket connection served through axum.
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use signaling_core::config::InvalidSetting;

/// Settings of an [`AxumWs`](super::AxumWs) connection.
///
/// Build it from [`AxumWsConfig::default()`] and the `with_*` methods, or set the public fields:
///
/// ```
/// use std::time::Duration;
/// use signaling_http::ws::AxumWsConfig;
///
/// let config = AxumWsConfig::default()
///     .with_max_message_size(16 * 1024)
///     .with_ping_interval(Some(Duration::from_secs(10)));
/// assert_eq!(config.max_frame_size, 16 * 1024);
/// assert!(config.validate().is_ok());
/// ```
///
/// Every queue a connection owns is bounded here: at most `send_queue` frames wait to be
/// written, at most `recv_queue` received frames wait for
/// [`recv`](signaling::transport::Transport::recv) (then the socket is not read, so TCP
/// pushes back on a peer that sends faster than the application reads), and a received
/// message is at most `max_message_size` bytes.
///
/// The sizes (`max_message_size`, `max_frame_size`, `read_buffer_size`, `write_buffer_size`)
/// are set on the upgrade ([`apply`](Self::apply)), before the socket exists; the queues and
/// timeouts when the socket is wrapped ([`AxumWs::new`](super::AxumWs::new)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AxumWsConfig {
    /// The largest text message accepted from the peer, in bytes (after reassembling
    /// fragments). A larger one closes the connection with 1009. Default 64 KiB.
    pub max_message_size: usize,
    /// The largest single frame payload accepted from the peer, in bytes. A larger one closes
    /// the connection with 1009. Default 64 KiB.
    pub max_frame_size: usize,
    /// Initial capacity of the connection's read buffer, in bytes; it grows to the size of the
    /// frame being read. Allocated for every connection, so it is what an idle connection
    /// costs beyond its socket. Default 2 KiB (a candidate or a small SDP in one read);
    /// axum's own default is 128 KiB.
    pub read_buffer_size: usize,
    /// Outgoing bytes gathered before a write to the socket (queued frames are also written
    /// at every flush, which follows each batch). Default 8 KiB.
    pub write_buffer_size: usize,
    /// Bound of the send queue, in frames: frames accepted by `send` or `try_send` that the
    /// socket has not taken yet. `try_send` hands the frame back in
    /// [`TrySendError::Full`](signaling::transport::TrySendError::Full) while it is full; `send`
    /// waits for room. Default 64. A value of 0 is treated as 1.
    pub send_queue: usize,
    /// Bound of the receive queue, in frames: frames read from the socket that `recv` has not
    /// taken yet, including the frames that arrive while `close` waits for the peer's close
    /// frame. While it is full the socket is not read. Default 64. A value of 0 is treated
    /// as 1.
    pub recv_queue: usize,
    /// How often a ping is sent; `None` disables pings. Default 20 s.
    pub ping_interval: Option<Duration>,
    /// With pings on: a peer from which nothing (pong or frame) has been read for
    /// `ping_interval + pong_timeout` is declared dead: the connection closes with 1001 and
    /// `recv` returns [`TimedOut`](signaling::transport::TransportError::TimedOut). Only
    /// time spent waiting for the peer counts, not time the socket goes unread because the
    /// receive queue is full. Default 10 s.
    pub pong_timeout: Duration,
    /// Bounds writing to the socket: queued frames (or a ping) that cannot be written for
    /// this long fail the connection ([`TimedOut`](signaling::transport::TransportError::TimedOut),
    /// no close frame); this is how a peer that stops reading is disconnected. Default 10 s.
    pub write_timeout: Duration,
    /// Bounds the closing steps: writing the close frame, and waiting for the peer's close
    /// frame after [`close`](signaling::transport::Transport::close) or after the handle was
    /// dropped. Default 5 s.
    pub close_timeout: Duration,
}

impl Default for AxumWsConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            max_frame_size: 64 * 1024,
            read_buffer_size: 2 * 1024,
            write_buffer_size: 8 * 1024,
            send_queue: 64,
            recv_queue: 64,
            ping_interval: Some(Duration::from_secs(20)),
            pong_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl AxumWsConfig {
    /// Sets both [`max_message_size`](Self::max_message_size) and
    /// [`max_frame_size`](Self::max_frame_size).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
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

    /// Sets [`write_timeout`](Self::write_timeout).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Refuses settings that cannot work: sizes of 0 that refuse every message
    /// (`max_message_size`, `max_frame_size`) or read nothing (`read_buffer_size`), a
    /// `write_buffer_size` of `usize::MAX` (the WebSocket library needs room above it), and
    /// timeouts of 0 (`pong_timeout`, `write_timeout`, `close_timeout`, and `ping_interval`
    /// set to 0). The queue bounds documented as "0 is treated as 1" are accepted.
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
                "write_timeout",
                Some(self.write_timeout),
                "no write that has to wait could finish",
            ),
            (
                "close_timeout",
                Some(self.close_timeout),
                "no close handshake could finish",
            ),
        ];
        for (setting, value, reason) in timeouts {
            if let Some(value) = value {
                InvalidSetting::check_nonzero_duration(setting, value, reason)?;
            }
        }
        Ok(())
    }

    /// Sets this configuration's sizes on an upgrade: the limits the WebSocket library
    /// enforces while reading ([`max_message_size`](Self::max_message_size),
    /// [`max_frame_size`](Self::max_frame_size)) and its buffer sizes. A socket from an
    /// upgrade not configured this way has axum's defaults (64 MiB messages, 16 MiB frames).
    pub fn apply<F>(&self, upgrade: WebSocketUpgrade<F>) -> WebSocketUpgrade<F> {
        upgrade
            .max_message_size(self.max_message_size)
            .max_frame_size(self.max_frame_size)
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_limits_are_refused() {
        assert!(AxumWsConfig::default().validate().is_ok());
        let refused = [
            AxumWsConfig::default().with_max_message_size(0),
            AxumWsConfig::default().with_read_buffer_size(0),
            AxumWsConfig::default().with_write_buffer_size(usize::MAX),
            AxumWsConfig::default().with_ping_interval(Some(Duration::ZERO)),
            AxumWsConfig::default().with_pong_timeout(Duration::ZERO),
            AxumWsConfig::default().with_write_timeout(Duration::ZERO),
            AxumWsConfig::default().with_close_timeout(Duration::ZERO),
        ];
        for config in refused {
            assert!(config.validate().is_err(), "{config:?}");
        }
        let accepted = AxumWsConfig::default()
            .with_send_queue(0)
            .with_recv_queue(0)
            .with_ping_interval(None);
        assert!(accepted.validate().is_ok());
    }
}
