//! What a connection carries and how it ends: text [`Frame`]s, close codes and reasons, and
//! what is known of the remote end ([`PeerInfo`]). The relay's routing logic and the admission
//! checks work on these; the `Transport` trait that moves frames over a real connection, and its
//! contract, are in the `signaling` crate.
use std::fmt;
use std::net::SocketAddr;

mod frame;
pub use frame::{Frame, FrameBlock};

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

    /// The first query parameter with this name, as it appears in the query string (not
    /// decoded): see [`PeerInfo::query_value`] for the decoded value.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The first query parameter with this name, decoded as a browser's form encoding writes it
    /// (`+` is a space, `%XX` a byte). `None` when absent, or when the decoded bytes are not
    /// UTF-8.
    pub fn query_value(&self, name: &str) -> Option<String> {
        let spaced = self.query_param(name)?.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()
            .map(std::borrow::Cow::into_owned)
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
