//! Errors of making a connection. Errors of an established connection are
//! [`TransportError`](signaling::transport::TransportError)s.
use std::io;

use tokio_tungstenite::tungstenite;

/// Why a server-side handshake ([`accept_stream`](crate::accept_stream)) produced no
/// connection. [`WsServer`](crate::WsServer) only logs these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The admission check refused the request; a response with this HTTP status was sent.
    #[error("handshake refused with HTTP {status}")]
    Rejected {
        /// The HTTP status sent.
        status: u16,
    },
    /// The handshake did not finish within [`WsConfig::handshake_timeout`](crate::WsConfig)
    /// (a client that sent its request head too slowly, or not at all, or did not read the
    /// response). The connection was closed without a response.
    #[error("handshake timed out")]
    TimedOut,
    /// The request head was larger than [`WsConfig::max_header_bytes`](crate::WsConfig) or
    /// had more header lines than [`WsConfig::max_headers`](crate::WsConfig);
    /// `431 Request Header Fields Too Large` was sent.
    #[error("request head too large")]
    HeadTooLarge,
    /// The request head was not valid HTTP/1.x (the reason in words); `400 Bad Request` was
    /// sent.
    #[error("malformed HTTP request: {0}")]
    Malformed(&'static str),
    /// A plain HTTP request (no `Upgrade: websocket`) where a WebSocket was expected;
    /// `426 Upgrade Required` was sent, with `Upgrade: websocket`.
    #[error("not a WebSocket upgrade request")]
    NotUpgrade,
    /// The socket failed during the handshake.
    #[error("IO error during handshake: {0}")]
    Io(#[from] io::Error),
    /// The request asked for a WebSocket upgrade but was not a valid one (not `GET`, not
    /// HTTP/1.1, a missing or malformed `Sec-WebSocket-Key`, a version other than 13);
    /// `400 Bad Request` was sent.
    #[error("invalid WebSocket upgrade request: {0}")]
    Protocol(#[source] Box<tungstenite::Error>),
}

impl AcceptError {
    pub(crate) fn from_ws(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Io(error) => Self::Io(error),
            other => Self::Protocol(Box::new(other)),
        }
    }
}

/// Why [`WsClient`](crate::WsClient) could not connect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is malformed, has no host, or uses a scheme this build does not support
    /// (`wss://` needs the `rustls` feature).
    #[error("invalid URL: {0}")]
    InvalidUrl(#[source] Box<tungstenite::Error>),
    /// An extra header's name or value is not valid HTTP.
    #[error("invalid header {name:?}")]
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// The server answered the upgrade request with this HTTP status instead of upgrading.
    #[error("server refused the upgrade with HTTP {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The response body, as far as it was read, if it was UTF-8.
        body: Option<String>,
    },
    /// TCP connect, TLS and handshake did not finish within
    /// [`WsConfig::connect_timeout`](crate::WsConfig).
    #[error("connect timed out")]
    TimedOut,
    /// The socket failed (connection refused, DNS failure, reset...).
    #[error("IO error while connecting: {0}")]
    Io(#[from] io::Error),
    /// TLS or the WebSocket handshake failed.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(#[source] Box<tungstenite::Error>),
}

impl ConnectError {
    pub(crate) fn from_ws(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Io(error) => Self::Io(error),
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|body| String::from_utf8(body.clone()).ok());
                Self::Rejected { status, body }
            }
            error @ tungstenite::Error::Url(_) => Self::InvalidUrl(Box::new(error)),
            other => Self::Handshake(Box::new(other)),
        }
    }
}
