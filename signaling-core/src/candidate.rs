//! ICE candidate attributes: RFC 8839 §5.1, RFC 6544 `tcptype`, and the browser extensions.
//!
//! ```text
//! candidate:<foundation> <component-id> <transport> <priority> <connection-address> <port>
//!     typ <cand-type> [raddr <addr>] [rport <port>] *(SP <extension-att-name> SP <extension-att-value>)
//! ```
//!
//! [`Candidate::parse`] reads that line (with or without the `a=` SDP prefix) and
//! [`Candidate`]'s `Display` writes it back **byte for byte** (without `a=`).
//!
//! # Design
//!
//! A [`Candidate`] keeps one owned copy of its text (`candidate:...`) plus the parsed values:
//! `Display` writes the stored text, and equality/hashing compare
//! it. The foundation, the transport and address as written, and the extensions are read from
//! the stored text when asked for ([`Candidate::extensions`], [`Candidate::extension`],
//! [`Candidate::ufrag`], [`Candidate::generation`]). A candidate has no interior
//! mutability, so it is a sound `HashMap`/`HashSet` key. Parsing walks the space-separated
//! tokens once; IP addresses are read by `std::net`'s parsers.
//!
//! # Strictness
//!
//! A rejected input is better than a lossy round trip, and browsers never send anything odd, so:
//!
//! - CR, LF and NUL anywhere are rejected first ([`CandidateError::ForbiddenCharacter`]): a
//!   candidate must never be able to smuggle an extra SDP line.
//! - Input longer than [`MAX_CANDIDATE_LEN`] bytes is rejected before any other work.
//! - Tokens are separated by exactly one space (0x20). Leading, trailing or doubled spaces are
//!   [`CandidateError::ExtraWhitespace`]; a tab or other control byte inside a token makes that
//!   token invalid.
//! - Keywords (`typ`, `raddr`, `rport`, `tcptype`), the transport, the candidate type and the
//!   tcptype value are matched ASCII case-insensitively (ABNF literals are case-insensitive); the
//!   original spelling is kept in the text, so `UDP` stays `UDP`.
//! - Addresses keep their original text (e.g. `2001:DB8::1`); [`Candidate::address`] holds the
//!   parsed value and [`Candidate::address_str`] the text. Text that is not a valid IPv4/IPv6
//!   address must be a valid host name: letters, digits, `-` and `_` in labels of 1..=63 bytes,
//!   at most 253 bytes, and a last label that is not all digits — so a zero-padded IPv4 text such
//!   as `010.0.0.1` (which Rust's parser refuses as an address) is rejected instead of being
//!   mistaken for a name. IPv6 zone ids (`fe80::1%eth0`) and brackets are rejected.
//! - Numbers are ASCII digits only (leading zeros allowed, kept in the text): component 1..=256
//!   with at most 3 digits, priority at most 10 digits fitting `u32`, ports fitting `u16`.
//! - `raddr` and `rport` are each optional (RFC 8839 wants them for non-host candidates; they
//!   are not required here), but must appear right after `typ <type>` in that order, and each
//!   must be followed by a value. Appearing later, they are [`CandidateError::MisplacedAttribute`].
//! - Extension pairs follow: names are SDP tokens, values any run of visible ASCII or non-ASCII
//!   UTF-8 bytes. `tcptype` is one of those pairs (it may appear at any extension position, at
//!   most once, and its value must be `active`, `passive` or `so`). It is accepted on any
//!   transport. Other names may repeat; lookups return the first.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The longest candidate text accepted by [`Candidate::parse`], in bytes, including any `a=`
/// prefix. Real candidates are about 100–200 bytes; anything longer is refused before parsing.
pub const MAX_CANDIDATE_LEN: usize = 1024;

/// The `candidate:` attribute prefix.
const PREFIX: &str = "candidate:";
/// The SDP line prefix accepted (and dropped) by [`Candidate::parse`].
const SDP_PREFIX: &str = "a=";

/// Why a candidate string was refused.
///
/// Every variant names what went wrong and, where useful, the field (a grammar name such as
/// `"priority"`) or the byte offset in the input. A peer sending a refused candidate is
/// misbehaving or speaks an unsupported dialect: report it back (e.g. as a wire `error`) and
/// drop the candidate; do not retry with the same text.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    /// The input was empty. An empty candidate means end-of-candidates on the wire: the caller
    /// must handle that before parsing.
    #[error("empty candidate (end-of-candidates must be handled by the caller)")]
    Empty,
    /// A CR, LF or NUL byte appeared (SDP line injection). Refuse the whole message.
    #[error("forbidden byte 0x{byte:02x} at offset {offset}")]
    ForbiddenCharacter {
        /// The offending byte.
        byte: u8,
        /// Its offset in the input.
        offset: usize,
    },
    /// The input is longer than [`MAX_CANDIDATE_LEN`]. Refuse it; no real candidate is this long.
    #[error("candidate is {len} bytes, longer than the maximum of {max}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The maximum, [`MAX_CANDIDATE_LEN`].
        max: usize,
    },
    /// The input does not start with `candidate:` (or `a=candidate:`).
    #[error("missing `candidate:` prefix")]
    MissingPrefix,
    /// Leading, trailing or doubled spaces: tokens must be separated by exactly one space.
    #[error("extra whitespace at offset {offset}")]
    ExtraWhitespace {
        /// Offset of the empty token (of the unexpected space, or of the end of input).
        offset: usize,
    },
    /// A mandatory field is missing: the input ended early.
    #[error("missing field `{field}`")]
    MissingField {
        /// The missing field's grammar name.
        field: &'static str,
    },
    /// The foundation is not 1..=32 ice-chars (letters, digits, `+`, `/`).
    #[error("invalid foundation (1 to 32 letters, digits, `+` or `/`)")]
    InvalidFoundation,
    /// A numeric field holds something other than ASCII digits, or too many digits.
    #[error("invalid number in `{field}`")]
    InvalidNumber {
        /// The field's grammar name.
        field: &'static str,
    },
    /// A numeric field is out of range (component 0 or above 256, port above 65535, priority
    /// above `u32::MAX`).
    #[error("`{field}` out of range")]
    OutOfRange {
        /// The field's grammar name.
        field: &'static str,
    },
    /// The transport is not an SDP token.
    #[error("invalid transport")]
    InvalidTransport,
    /// An address is neither an IP address nor a valid host name.
    #[error("invalid address in `{field}`")]
    InvalidAddress {
        /// `"connection-address"` or `"raddr"`.
        field: &'static str,
    },
    /// The token after the port is not `typ`.
    #[error("expected `typ` after the port")]
    MissingTyp,
    /// The candidate type is not an SDP token.
    #[error("invalid candidate type")]
    InvalidCandidateType,
    /// `raddr`, `rport` or `typ` appeared where it may not (after extensions, twice, or out of
    /// order), or `tcptype` appeared twice.
    #[error("misplaced or repeated `{name}`")]
    MisplacedAttribute {
        /// The attribute name.
        name: &'static str,
    },
    /// An attribute name (`raddr`, `rport`, `tcptype` or an extension name) ends the input
    /// without a value.
    #[error("attribute at offset {offset} has no value")]
    MissingValue {
        /// Offset of the attribute name.
        offset: usize,
    },
    /// An extension name is not an SDP token.
    #[error("invalid extension name at offset {offset}")]
    InvalidExtensionName {
        /// Offset of the name.
        offset: usize,
    },
    /// An extension value holds a control byte.
    #[error("invalid extension value at offset {offset}")]
    InvalidExtensionValue {
        /// Offset of the value.
        offset: usize,
    },
    /// The `tcptype` value is not `active`, `passive` or `so`.
    #[error("invalid tcptype (expected active, passive or so)")]
    InvalidTcpType,
}

impl CandidateError {
    /// A short stable name for the variant (`"too_long"`, `"missing_field"`, ...), for logs,
    /// metrics and test vectors.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::ForbiddenCharacter { .. } => "forbidden_character",
            Self::TooLong { .. } => "too_long",
            Self::MissingPrefix => "missing_prefix",
            Self::ExtraWhitespace { .. } => "extra_whitespace",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidFoundation => "invalid_foundation",
            Self::InvalidNumber { .. } => "invalid_number",
            Self::OutOfRange { .. } => "out_of_range",
            Self::InvalidTransport => "invalid_transport",
            Self::InvalidAddress { .. } => "invalid_address",
            Self::MissingTyp => "missing_typ",
            Self::InvalidCandidateType => "invalid_candidate_type",
            Self::MisplacedAttribute { .. } => "misplaced_attribute",
            Self::MissingValue { .. } => "missing_value",
            Self::InvalidExtensionName { .. } => "invalid_extension_name",
            Self::InvalidExtensionValue { .. } => "invalid_extension_value",
            Self::InvalidTcpType => "invalid_tcptype",
        }
    }
}

/// The transport of a candidate (`UDP`, `TCP`, or another token).
///
/// Matched case-insensitively; the original spelling stays in the candidate text
/// ([`Candidate::transport_str`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransportProtocol {
    /// `udp`, any case.
    Udp,
    /// `tcp`, any case (RFC 6544).
    Tcp,
    /// Any other SDP token, as written.
    Other(String),
}

impl TransportProtocol {
    /// The lowercase name for `Udp`/`Tcp`, the token as written for `Other`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for TransportProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The candidate type after `typ`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CandidateType {
    /// `host`: an address of a local interface (or an mDNS name hiding it).
    Host,
    /// `srflx`: server reflexive, the address a STUN server saw.
    Srflx,
    /// `prflx`: peer reflexive, learned from connectivity checks.
    Prflx,
    /// `relay`: an address allocated on a TURN server.
    Relay,
    /// Any other SDP token, as written.
    Other(String),
}

impl CandidateType {
    /// The lowercase name, or the token as written for `Other`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Prflx => "prflx",
            Self::Relay => "relay",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for CandidateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The RFC 6544 `tcptype` of a TCP candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpType {
    /// `active`: opens outgoing connections only.
    Active,
    /// `passive`: accepts incoming connections only.
    Passive,
    /// `so`: simultaneous open.
    So,
}

impl TcpType {
    /// The lowercase name (`active`, `passive`, `so`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Passive => "passive",
            Self::So => "so",
        }
    }

    fn parse(t: &str) -> Option<Self> {
        [Self::Active, Self::Passive, Self::So]
            .into_iter()
            .find(|k| t.eq_ignore_ascii_case(k.as_str()))
    }
}

impl fmt::Display for TcpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection or related address: an IP address or a host name (FQDN, including mDNS
/// `*.local` names as Chrome sends for host candidates).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name, as written.
    Fqdn(String),
}

impl Address {
    /// The IP address, if this is one (no name resolution is done).
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Ip(ip) => Some(*ip),
            Self::Fqdn(_) => None,
        }
    }

    /// Whether this is a host name ending in `.local` (ASCII case-insensitive): an mDNS name
    /// that hides a host address (draft-ietf-mmusic-mdns-ice-candidates).
    #[must_use]
    pub fn is_mdns(&self) -> bool {
        match self {
            Self::Ip(_) => false,
            Self::Fqdn(name) => ends_with_ignore_case(name, ".local"),
        }
    }

    /// Reads an address the way [`Candidate::parse`] does: IPv4, IPv6, else a valid host name.
    /// Returns `None` for anything else.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        parse_address(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Fqdn(name) => f.write_str(name),
        }
    }
}

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<Ipv4Addr> for Address {
    fn from(ip: Ipv4Addr) -> Self {
        Self::Ip(IpAddr::V4(ip))
    }
}

impl From<Ipv6Addr> for Address {
    fn from(ip: Ipv6Addr) -> Self {
        Self::Ip(IpAddr::V6(ip))
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()
            .get(s.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix.as_bytes()))
}

/// One ICE candidate attribute, parsed, with its original text.
///
/// Build one with [`Candidate::parse`] (or `str::parse`) or [`Candidate::new`] and the `with_*`
/// methods. `Display` writes the text exactly as parsed (`candidate:...`, without `a=`).
/// Two candidates are equal (and hash equal) exactly when their texts are equal, so
/// `udp` and `UDP` spellings of one candidate are different values.
#[derive(Clone)]
pub struct Candidate {
    /// The whole text, starting with `candidate:`; its tokens are separated by single spaces.
    raw: String,
    component: u16,
    transport: TransportProtocol,
    priority: u32,
    address: Address,
    port: u16,
    kind: CandidateType,
    related_address: Option<Address>,
    related_port: Option<u16>,
    tcp_type: Option<TcpType>,
    /// Offset in `raw` where the extension pairs start (`raw.len()` when there are none).
    ext_start: usize,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Candidate {}

impl Hash for Candidate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("raw", &self.raw)
            .field("foundation", &self.foundation())
            .field("component", &self.component)
            .field("transport", &self.transport)
            .field("priority", &self.priority)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("kind", &self.kind)
            .field("related_address", &self.related_address)
            .field("related_port", &self.related_port)
            .field("tcp_type", &self.tcp_type)
            .field("extensions", &ExtDebug(self))
            .finish()
    }
}

struct ExtDebug<'a>(&'a Candidate);

impl fmt::Debug for ExtDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.extensions()).finish()
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for Candidate {
    type Err = CandidateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for Candidate {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

impl serde::Serialize for Candidate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> serde::Deserialize<'de> for Candidate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Candidate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ICE candidate string `candidate:...`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Candidate, E> {
                Candidate::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/".
fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// RFC 8866 `token-char`.
fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

/// Whether `t` is an RFC 8866 `token` (one or more token-chars).
pub(crate) fn is_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(is_token_char)
}

/// An extension value: visible ASCII or non-ASCII bytes, no space or control byte.
fn is_valid_value(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b > 0x20 && b != 0x7F)
}

fn is_valid_foundation(t: &str) -> bool {
    (1..=32).contains(&t.len()) && t.bytes().all(is_ice_char)
}

/// A host name: at most 253 bytes of letters, digits, `-`, `_` and `.`, in labels of 1..=63
/// bytes that neither start nor end with `-`, the last one not all digits.
fn is_host_name(t: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    t.len() <= 253
        && t.split('.').all(label_ok)
        && t.rsplit('.')
            .next()
            .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()))
}

/// `Some(Some(ip))` for an IP address (by `std::net`'s parsers), `Some(None)` for a valid host
/// name, `None` otherwise.
fn scan_address(t: &str) -> Option<Option<IpAddr>> {
    match t.parse::<IpAddr>() {
        Ok(ip) => Some(Some(ip)),
        Err(_) => is_host_name(t).then_some(None),
    }
}

/// An IP address, else a valid host name; `None` otherwise.
fn parse_address(t: &str) -> Option<Address> {
    scan_address(t).map(|ip| match ip {
        Some(ip) => Address::Ip(ip),
        None => Address::Fqdn(t.to_owned()),
    })
}

/// ASCII digits only, 1..=`max_digits` of them.
fn parse_digits(t: &str, max_digits: usize, field: &'static str) -> Result<u64, CandidateError> {
    if t.is_empty() || t.len() > max_digits || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CandidateError::InvalidNumber { field });
    }
    // At most 10 digits: fits u64.
    t.parse()
        .map_err(|_| CandidateError::InvalidNumber { field })
}

fn parse_port(t: &str, field: &'static str) -> Result<u16, CandidateError> {
    // Leading zeros are allowed up to a generous width; the value must fit u16.
    let n = parse_digits(t, 10, field)?;
    u16::try_from(n).map_err(|_| CandidateError::OutOfRange { field })
}

/// Walks the space-separated tokens of a candidate's text with their offsets, refusing empty
/// tokens (leading, trailing or doubled spaces).
struct Tokens<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// The next token and its offset; `Ok(None)` at the end of input.
    fn next_token(&mut self) -> Result<Option<(usize, &'a str)>, CandidateError> {
        let Some(rest) = self.text.get(self.pos..) else {
            return Ok(None);
        };
        // Tokens are a few bytes long: a plain loop beats a vectorized search's setup.
        let end = rest.bytes().position(|b| b == b' ').unwrap_or(rest.len());
        // A space is ASCII: `end` is a char boundary.
        let token = rest.get(..end).unwrap_or_default();
        if token.is_empty() {
            return Err(CandidateError::ExtraWhitespace { offset: self.pos });
        }
        let at = self.pos;
        // Past the token and its separating space; past the end when there is none.
        self.pos += token.len() + 1;
        Ok(Some((at, token)))
    }

    /// The next token, or `MissingField { field }`.
    fn field(&mut self, field: &'static str) -> Result<(usize, &'a str), CandidateError> {
        self.next_token()?
            .ok_or(CandidateError::MissingField { field })
    }
}

impl Candidate {
    /// Parses `candidate:...`; also accepts the `a=candidate:` SDP-line prefix (dropped: the
    /// result displays without it).
    ///
    /// Does not accept `""`: end-of-candidates is the caller's business
    /// ([`CandidateError::Empty`]). See the [module docs](self) for exactly what is accepted.
    ///
    /// # Errors
    ///
    /// A [`CandidateError`] naming the first problem found. CR/LF/NUL and the length bound are
    /// checked before anything else.
    pub fn parse(s: &str) -> Result<Candidate, CandidateError> {
        let text = precheck(s)?;
        // Offsets in errors refer to the caller's input.
        let base = s.len() - text.len();
        parse_text(text).map_err(|e| shift_offsets(e, base))
    }

    /// Creates a candidate with no related address, tcptype or extensions.
    ///
    /// `Udp`/`Tcp` are written lowercase; `Other` tokens and FQDNs as given.
    ///
    /// # Errors
    ///
    /// The same errors [`Candidate::parse`] gives for the written text: an invalid foundation,
    /// a component outside 1..=256, a transport or type that is not a token, or an address that
    /// is not a valid host name. An [`Address::Fqdn`] whose text is an IP address is refused as
    /// [`CandidateError::InvalidAddress`] (use [`Address::Ip`]).
    pub fn new(
        foundation: &str,
        component: u16,
        transport: TransportProtocol,
        priority: u32,
        address: Address,
        port: u16,
        kind: CandidateType,
    ) -> Result<Candidate, CandidateError> {
        // Check each part on its own so that no part can smuggle extra tokens.
        if !is_valid_foundation(foundation) {
            return Err(CandidateError::InvalidFoundation);
        }
        if !(1..=256).contains(&component) {
            return Err(CandidateError::OutOfRange {
                field: "component-id",
            });
        }
        if !is_token(transport.as_str()) {
            return Err(CandidateError::InvalidTransport);
        }
        if !is_token(kind.as_str()) {
            return Err(CandidateError::InvalidCandidateType);
        }
        check_fqdn_is_name(&address, "connection-address")?;
        let text = format!(
            "{PREFIX}{foundation} {component} {transport} {priority} {address} {port} typ {kind}"
        );
        reparse(&text)
    }

    /// Returns this candidate with `raddr <address> rport <port>` set (replacing existing ones),
    /// keeping the extensions.
    ///
    /// # Errors
    ///
    /// [`CandidateError::InvalidAddress`] when `address` is an invalid name (or an
    /// [`Address::Fqdn`] spelling an IP address); [`CandidateError::TooLong`] when the result
    /// would exceed [`MAX_CANDIDATE_LEN`].
    pub fn with_related(self, address: Address, port: u16) -> Result<Candidate, CandidateError> {
        check_fqdn_is_name(&address, "raddr")?;
        let mut text = String::with_capacity(self.raw.len() + 48);
        text.push_str(self.base_text());
        text.push_str(" raddr ");
        text.push_str(&address.to_string());
        text.push_str(" rport ");
        text.push_str(&port.to_string());
        self.push_extensions(&mut text, None);
        reparse(&text)
    }

    /// Returns this candidate with `tcptype <t>`: replaces the value of an existing `tcptype`
    /// pair in place, or appends one.
    ///
    /// # Errors
    ///
    /// [`CandidateError::TooLong`] when the result would exceed [`MAX_CANDIDATE_LEN`].
    pub fn with_tcp_type(self, t: TcpType) -> Result<Candidate, CandidateError> {
        let mut text = String::with_capacity(self.raw.len() + 16);
        text.push_str(self.base_text());
        self.push_related(&mut text);
        let replaced = self.push_extensions(&mut text, Some(t));
        if !replaced {
            text.push_str(" tcptype ");
            text.push_str(t.as_str());
        }
        reparse(&text)
    }

    /// Returns this candidate with the extension pair `name value` appended.
    ///
    /// # Errors
    ///
    /// [`CandidateError::InvalidExtensionName`] when `name` is not an SDP token or is one of
    /// `typ`, `raddr`, `rport` ([`CandidateError::MisplacedAttribute`]);
    /// [`CandidateError::InvalidExtensionValue`] when `value` is empty or holds a space or
    /// control byte; [`CandidateError::InvalidTcpType`] for a bad `tcptype` value and
    /// [`CandidateError::MisplacedAttribute`] for a second one; [`CandidateError::TooLong`]
    /// when the result would exceed [`MAX_CANDIDATE_LEN`]. Offsets in these errors refer to the
    /// new text.
    pub fn with_extension(self, name: &str, value: &str) -> Result<Candidate, CandidateError> {
        let offset = self.raw.len() + 1;
        if !is_token(name) {
            return Err(CandidateError::InvalidExtensionName { offset });
        }
        for reserved in ["typ", "raddr", "rport"] {
            if name.eq_ignore_ascii_case(reserved) {
                return Err(CandidateError::MisplacedAttribute { name: reserved });
            }
        }
        if !is_valid_value(value) {
            return Err(CandidateError::InvalidExtensionValue {
                offset: offset + name.len() + 1,
            });
        }
        let mut text = String::with_capacity(self.raw.len() + name.len() + value.len() + 2);
        text.push_str(&self.raw);
        text.push(' ');
        text.push_str(name);
        text.push(' ');
        text.push_str(value);
        reparse(&text)
    }

    /// The text `candidate:...` exactly as parsed (without `a=`); the same as `to_string()`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The foundation (1..=32 ice-chars).
    #[must_use]
    pub fn foundation(&self) -> &str {
        self.token(0)
    }

    /// The component id (1..=256; 1 is RTP, 2 is RTCP).
    #[must_use]
    pub fn component(&self) -> u16 {
        self.component
    }

    /// The transport, matched case-insensitively.
    #[must_use]
    pub fn transport(&self) -> &TransportProtocol {
        &self.transport
    }

    /// The transport as written (e.g. `UDP` from Firefox, `udp` from Chrome).
    #[must_use]
    pub fn transport_str(&self) -> &str {
        self.token(2)
    }

    /// The priority.
    #[must_use]
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// The connection address.
    #[must_use]
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The connection address as written (an IPv6 address keeps its original case and form).
    #[must_use]
    pub fn address_str(&self) -> &str {
        self.token(4)
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The candidate type (after `typ`).
    #[must_use]
    pub fn kind(&self) -> CandidateType {
        self.kind.clone()
    }

    /// The candidate type, borrowed (no clone for `Other`).
    #[must_use]
    pub fn kind_ref(&self) -> &CandidateType {
        &self.kind
    }

    /// The `raddr` value, if present.
    #[must_use]
    pub fn related_address(&self) -> Option<&Address> {
        self.related_address.as_ref()
    }

    /// The `rport` value, if present.
    #[must_use]
    pub fn related_port(&self) -> Option<u16> {
        self.related_port
    }

    /// The RFC 6544 `tcptype`, if present.
    #[must_use]
    pub fn tcp_type(&self) -> Option<TcpType> {
        self.tcp_type
    }

    /// All extension pairs after `typ`/`raddr`/`rport`, as borrowed `(name, value)`, in
    /// order, **including** `tcptype` (also available typed as [`Candidate::tcp_type`]).
    ///
    /// Allocation-free: the pairs are read from the stored text. Use
    /// [`Extensions::to_vec`] for owned pairs.
    pub fn extensions(&self) -> Extensions<'_> {
        let rest = self.raw.get(self.ext_start..).unwrap_or_default();
        // Parsing checked that the rest is `name value` pairs separated by single spaces.
        let tokens = if rest.is_empty() {
            0
        } else {
            memchr::memchr_iter(b' ', rest.as_bytes()).count() + 1
        };
        Extensions {
            rest,
            remaining: tokens / 2,
        }
    }

    /// The value of the first extension called `name` (case-sensitive), if any.
    #[must_use]
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The `ufrag` extension (the ICE username fragment browsers append), if present.
    #[must_use]
    pub fn ufrag(&self) -> Option<&str> {
        self.extension("ufrag")
    }

    /// The `generation` extension, if present and a valid `u32`.
    #[must_use]
    pub fn generation(&self) -> Option<u32> {
        let n = parse_digits(self.extension("generation")?, 10, "generation").ok()?;
        u32::try_from(n).ok()
    }

    /// The token at `index` after `candidate:` (0: foundation, 2: transport, 4: address).
    fn token(&self, index: usize) -> &str {
        let tokens = self.raw.get(PREFIX.len()..).unwrap_or_default();
        tokens.split(' ').nth(index).unwrap_or_default()
    }

    /// `candidate:<foundation> ... typ <type>`: the first eight tokens.
    fn base_text(&self) -> &str {
        // The eighth space (or the end) ends the candidate type.
        let end = memchr::memchr_iter(b' ', self.raw.as_bytes())
            .nth(7)
            .unwrap_or(self.raw.len());
        self.raw.get(..end).unwrap_or_default()
    }

    fn push_related(&self, text: &mut String) {
        let start = self.base_text().len();
        if let Some(related) = self.raw.get(start..self.ext_start) {
            // Includes the leading space; may include a trailing space before extensions.
            text.push_str(related.trim_end_matches(' '));
        }
    }

    /// Appends the extension pairs (each with a leading space). With `tcp = Some(t)`, replaces
    /// an existing `tcptype` value with `t`; returns whether that happened.
    fn push_extensions(&self, text: &mut String, tcp: Option<TcpType>) -> bool {
        let mut replaced = false;
        for (k, v) in self.extensions() {
            text.push(' ');
            text.push_str(k);
            text.push(' ');
            match tcp {
                Some(t) if k.eq_ignore_ascii_case("tcptype") => {
                    text.push_str(t.as_str());
                    replaced = true;
                }
                _ => text.push_str(v),
            }
        }
        replaced
    }
}

/// Checks `s` exactly as [`Candidate::parse`] does (same errors). On success, the byte range in
/// `s` of the value of its first `ufrag` extension, if it has one (what [`Candidate::ufrag`] of
/// the parsed candidate gives).
pub(crate) fn check(s: &str) -> Result<Option<std::ops::Range<usize>>, CandidateError> {
    let text = precheck(s)?;
    let base = s.len() - text.len();
    let scan = scan(text).map_err(|e| shift_offsets(e, base))?;
    Ok(scan.ufrag.map(|range| base + range.start..base + range.end))
}

/// The checks made before the tokens are looked at: CR/LF/NUL, the length bound, emptiness.
/// Returns the text without an `a=` prefix.
fn precheck(s: &str) -> Result<&str, CandidateError> {
    if let Some(offset) = memchr::memchr3(b'\r', b'\n', 0, s.as_bytes()) {
        let byte = s.as_bytes().get(offset).copied().unwrap_or_default();
        return Err(CandidateError::ForbiddenCharacter { byte, offset });
    }
    if s.len() > MAX_CANDIDATE_LEN {
        return Err(CandidateError::TooLong {
            len: s.len(),
            max: MAX_CANDIDATE_LEN,
        });
    }
    if s.is_empty() {
        return Err(CandidateError::Empty);
    }
    Ok(s.strip_prefix(SDP_PREFIX).unwrap_or(s))
}

fn check_fqdn_is_name(address: &Address, field: &'static str) -> Result<(), CandidateError> {
    match address {
        Address::Fqdn(name) if !matches!(parse_address(name), Some(Address::Fqdn(_))) => {
            Err(CandidateError::InvalidAddress { field })
        }
        _ => Ok(()),
    }
}

fn reparse(text: &str) -> Result<Candidate, CandidateError> {
    if text.len() > MAX_CANDIDATE_LEN {
        return Err(CandidateError::TooLong {
            len: text.len(),
            max: MAX_CANDIDATE_LEN,
        });
    }
    parse_text(text)
}

fn shift_offsets(e: CandidateError, base: usize) -> CandidateError {
    use CandidateError as E;
    match e {
        E::ExtraWhitespace { offset } => E::ExtraWhitespace {
            offset: offset + base,
        },
        E::MissingValue { offset } => E::MissingValue {
            offset: offset + base,
        },
        E::InvalidExtensionName { offset } => E::InvalidExtensionName {
            offset: offset + base,
        },
        E::InvalidExtensionValue { offset } => E::InvalidExtensionValue {
            offset: offset + base,
        },
        other => other,
    }
}

/// Parses `candidate:...` (no `a=`, no CR/LF/NUL; callers check the length).
fn parse_text(text: &str) -> Result<Candidate, CandidateError> {
    scan(text).map(|scan| scan.into_candidate(text.to_owned()))
}

/// What [`scan`] reads off a candidate's text: values, and the text of the rest.
/// [`Scan::into_candidate`] adds the owned copies, so that a check allocates nothing.
struct Scan<'a> {
    component: u16,
    transport: &'a str,
    priority: u32,
    /// The address text and its IP (`None`: a host name).
    address: (&'a str, Option<IpAddr>),
    port: u16,
    kind: &'a str,
    related_address: Option<(&'a str, Option<IpAddr>)>,
    related_port: Option<u16>,
    tcp_type: Option<TcpType>,
    ext_start: usize,
    /// Where the value of the first `ufrag` extension is.
    ufrag: Option<std::ops::Range<usize>>,
}

impl Scan<'_> {
    /// The candidate, owning `raw` (a copy of the text that was scanned).
    fn into_candidate(self, raw: String) -> Candidate {
        let address_of = |(text, ip): (&str, Option<IpAddr>)| match ip {
            Some(ip) => Address::Ip(ip),
            None => Address::Fqdn(text.to_owned()),
        };
        let t = self.transport;
        let transport = if t.eq_ignore_ascii_case("udp") {
            TransportProtocol::Udp
        } else if t.eq_ignore_ascii_case("tcp") {
            TransportProtocol::Tcp
        } else {
            TransportProtocol::Other(t.to_owned())
        };
        let kind = [
            CandidateType::Host,
            CandidateType::Srflx,
            CandidateType::Prflx,
            CandidateType::Relay,
        ]
        .into_iter()
        .find(|known| self.kind.eq_ignore_ascii_case(known.as_str()))
        .unwrap_or_else(|| CandidateType::Other(self.kind.to_owned()));
        Candidate {
            component: self.component,
            transport,
            priority: self.priority,
            address: address_of(self.address),
            port: self.port,
            kind,
            related_address: self.related_address.map(address_of),
            related_port: self.related_port,
            tcp_type: self.tcp_type,
            ext_start: self.ext_start,
            raw,
        }
    }
}

/// Checks `candidate:...` (no `a=`, no CR/LF/NUL; callers check the length) token by token.
fn scan(text: &str) -> Result<Scan<'_>, CandidateError> {
    if !text.starts_with(PREFIX) {
        return Err(CandidateError::MissingPrefix);
    }
    let mut tok = Tokens {
        text,
        // Bare "candidate:" has no tokens at all (rather than an empty one).
        pos: if text.len() == PREFIX.len() {
            text.len() + 1
        } else {
            PREFIX.len()
        },
    };

    let (_, t) = tok.field("foundation")?;
    if !is_valid_foundation(t) {
        return Err(CandidateError::InvalidFoundation);
    }

    let (_, t) = tok.field("component-id")?;
    let component = u16::try_from(parse_digits(t, 3, "component-id")?)
        .ok()
        .filter(|c| (1..=256).contains(c))
        .ok_or(CandidateError::OutOfRange {
            field: "component-id",
        })?;

    let (_, transport) = tok.field("transport")?;
    if !is_token(transport) {
        return Err(CandidateError::InvalidTransport);
    }

    let (_, t) = tok.field("priority")?;
    let priority = u32::try_from(parse_digits(t, 10, "priority")?)
        .map_err(|_| CandidateError::OutOfRange { field: "priority" })?;

    let (_, t) = tok.field("connection-address")?;
    let address = (
        t,
        scan_address(t).ok_or(CandidateError::InvalidAddress {
            field: "connection-address",
        })?,
    );

    let (_, t) = tok.field("port")?;
    let port = parse_port(t, "port")?;

    match tok.next_token()? {
        Some((_, t)) if t.eq_ignore_ascii_case("typ") => {}
        _ => return Err(CandidateError::MissingTyp),
    }
    let (_, kind) = tok.field("cand-type")?;
    if !is_token(kind) {
        return Err(CandidateError::InvalidCandidateType);
    }

    let mut related_address = None;
    let mut related_port = None;
    let mut tcp_type = None;
    let mut ufrag = None;
    let mut ext_start = text.len();
    // `raddr` then `rport` may follow the type, each at most once and in that order; then only
    // extension pairs.
    let mut seen_raddr = false;
    let mut in_extensions = false;
    while let Some((name_at, name)) = tok.next_token()? {
        let Some((value_at, value)) = tok.next_token()? else {
            return Err(CandidateError::MissingValue { offset: name_at });
        };
        if !in_extensions {
            if name.eq_ignore_ascii_case("raddr") {
                if seen_raddr || related_port.is_some() {
                    return Err(CandidateError::MisplacedAttribute { name: "raddr" });
                }
                let ip =
                    scan_address(value).ok_or(CandidateError::InvalidAddress { field: "raddr" })?;
                related_address = Some((value, ip));
                seen_raddr = true;
                continue;
            }
            if name.eq_ignore_ascii_case("rport") {
                if related_port.is_some() {
                    return Err(CandidateError::MisplacedAttribute { name: "rport" });
                }
                related_port = Some(parse_port(value, "rport")?);
                continue;
            }
            in_extensions = true;
            ext_start = name_at;
        }
        if !is_token(name) {
            return Err(CandidateError::InvalidExtensionName { offset: name_at });
        }
        if !is_valid_value(value) {
            return Err(CandidateError::InvalidExtensionValue { offset: value_at });
        }
        if let Some(reserved) = ["typ", "raddr", "rport"]
            .into_iter()
            .find(|r| name.eq_ignore_ascii_case(r))
        {
            return Err(CandidateError::MisplacedAttribute { name: reserved });
        }
        if name == "ufrag" && ufrag.is_none() {
            ufrag = Some(value_at..value_at + value.len());
        }
        if name.eq_ignore_ascii_case("tcptype") {
            if tcp_type.is_some() {
                return Err(CandidateError::MisplacedAttribute { name: "tcptype" });
            }
            tcp_type = Some(TcpType::parse(value).ok_or(CandidateError::InvalidTcpType)?);
        }
    }

    Ok(Scan {
        component,
        transport,
        priority,
        address,
        port,
        kind,
        related_address,
        related_port,
        tcp_type,
        ext_start,
        ufrag,
    })
}

/// Iterator over a candidate's extension pairs as borrowed `(name, value)`, in order; see
/// [`Candidate::extensions`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    /// `name value name value ...`: the pairs not yet returned.
    rest: &'a str,
    remaining: usize,
}

/// Splits `s` at its first space: the text before it and the text after it (`""` when there is
/// no space).
fn split_space(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        // Parsing checked that the rest is exactly `remaining` pairs of non-empty tokens, each
        // separated by one space.
        let (name, rest) = split_space(self.rest);
        let (value, rest) = split_space(rest);
        self.rest = rest;
        self.remaining -= 1;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Extensions<'_> {}

impl std::iter::FusedIterator for Extensions<'_> {}

impl Extensions<'_> {
    /// The number of pairs left.
    #[must_use]
    pub fn len(&self) -> usize {
        self.remaining
    }

    /// Whether no pairs are left.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The remaining pairs as owned strings.
    #[must_use]
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.clone()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Proptest strategies for candidates, for this crate's tests and for users' own property tests
/// (enable the `proptest` feature).
#[cfg(any(test, feature = "proptest"))]
pub mod strategy {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::{Address, Candidate, CandidateType, TcpType, TransportProtocol};

    /// A valid foundation: 1..=32 ice-chars.
    pub fn foundation() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+/]{1,32}"
    }

    /// A transport: `Udp`, `Tcp`, or an `Other` token (sometimes a mixed-case `udp`/`tcp`
    /// spelling, which parses back as `Udp`/`Tcp` with the spelling kept).
    pub fn transport() -> impl Strategy<Value = TransportProtocol> {
        prop_oneof![
            4 => Just(TransportProtocol::Udp),
            3 => Just(TransportProtocol::Tcp),
            1 => "[uU][dD][pP]|[tT][cC][pP]".prop_map(TransportProtocol::Other),
            1 => "[a-z][a-z0-9]{1,5}".prop_map(TransportProtocol::Other),
        ]
    }

    /// A candidate type: the four standard ones or another token.
    pub fn kind() -> impl Strategy<Value = CandidateType> {
        prop_oneof![
            3 => Just(CandidateType::Host),
            2 => Just(CandidateType::Srflx),
            1 => Just(CandidateType::Prflx),
            2 => Just(CandidateType::Relay),
            1 => "[a-z][a-z0-9]{1,6}".prop_map(CandidateType::Other),
        ]
    }

    /// A tcptype.
    pub fn tcp_type() -> impl Strategy<Value = TcpType> {
        prop_oneof![
            Just(TcpType::Active),
            Just(TcpType::Passive),
            Just(TcpType::So)
        ]
    }

    /// A host name of 1..=4 labels (never all-numeric in the last label).
    pub fn hostname() -> impl Strategy<Value = String> {
        "[a-z]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-zA-Z_]([a-zA-Z0-9_-]{0,8}[a-z0-9])?){0,3}"
    }

    /// An mDNS name as Chrome sends for host candidates (`<uuid>.local`).
    pub fn mdns_name() -> impl Strategy<Value = String> {
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.local"
    }

    /// An address: IPv4, IPv6, host name or mDNS name.
    pub fn address() -> impl Strategy<Value = Address> {
        prop_oneof![
            3 => any::<[u8; 4]>().prop_map(|o| Address::from(Ipv4Addr::from(o))),
            2 => any::<[u8; 16]>().prop_map(|o| Address::from(Ipv6Addr::from(o))),
            1 => hostname().prop_map(Address::Fqdn),
            2 => mdns_name().prop_map(Address::Fqdn),
        ]
    }

    /// One extension pair: a browser extension or a random token name with a visible-ASCII
    /// value. Never `typ`, `raddr`, `rport` or `tcptype`.
    pub fn extension() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            (0u32..10).prop_map(|g| ("generation".to_owned(), g.to_string())),
            "[A-Za-z0-9+/]{4,8}".prop_map(|u| ("ufrag".to_owned(), u)),
            (1u16..100).prop_map(|n| ("network-id".to_owned(), n.to_string())),
            prop_oneof![Just(10u16), Just(50), Just(999)]
                .prop_map(|n| ("network-cost".to_owned(), n.to_string())),
            ("[a-z][a-z0-9-]{0,10}", "[!-~]{1,12}").prop_filter(
                "reserved attribute names",
                |(k, _)| !matches!(k.as_str(), "typ" | "raddr" | "rport" | "tcptype")
            ),
        ]
    }

    /// A valid candidate of any type and address kind, with optional `raddr`/`rport`, a
    /// `tcptype` on some TCP candidates, and 0..6 extension pairs.
    pub fn candidate() -> impl Strategy<Value = Candidate> {
        (
            foundation(),
            1u16..=256,
            transport(),
            any::<u32>(),
            address(),
            any::<u16>(),
            kind(),
            proptest::option::of((address(), any::<u16>())),
            proptest::option::of(tcp_type()),
            proptest::collection::vec(extension(), 0..6),
        )
            .prop_filter_map(
                "builder refused the parts",
                |(f, comp, tr, prio, addr, port, kind, related, tcp, exts)| {
                    let mut c = Candidate::new(&f, comp, tr, prio, addr, port, kind).ok()?;
                    if let Some((a, p)) = related {
                        c = c.with_related(a, p).ok()?;
                    }
                    if let Some(t) = tcp.filter(|_| *c.transport() == TransportProtocol::Tcp) {
                        c = c.with_tcp_type(t).ok()?;
                    }
                    for (k, v) in exts {
                        c = c.with_extension(&k, &v).ok()?;
                    }
                    Some(c)
                },
            )
    }

    /// The text form (`candidate:...`) of [`candidate`].
    pub fn candidate_string() -> impl Strategy<Value = String> {
        candidate().prop_map(|c| c.to_string())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::strategy::candidate;
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn check_agrees_with_parse(
            c in candidate(),
            sdp_prefix in any::<bool>(),
            at in any::<proptest::sample::Index>(),
            ch in any::<char>(),
        ) {
            let mut text = if sdp_prefix { format!("a={c}") } else { c.to_string() };
            // And a mutated copy, valid or not.
            let mut mutated = text.clone();
            let i = at.index(mutated.len() + 1);
            if mutated.is_char_boundary(i) {
                mutated.insert(i, ch);
            }
            for s in [std::mem::take(&mut text), mutated] {
                let parsed = Candidate::parse(&s);
                let checked = check(&s);
                prop_assert_eq!(checked.as_ref().err(), parsed.as_ref().err());
                if let (Ok(range), Ok(p)) = (checked, parsed) {
                    prop_assert_eq!(range.and_then(|r| s.get(r)), p.ufrag());
                }
            }
        }

    }

    #[test]
    fn hostnames() {
        for ok in [
            "a",
            "a.b",
            "x-1.example_host.com",
            "4c1b4e9f-3d1e-4f57-9d3c-2f5d0a6f1c2b.local",
            "1a.2b",
        ] {
            assert!(is_host_name(ok), "{ok}");
        }
        let long_label = "a".repeat(64);
        let too_long = ["a"; 128].join("."); // 255 bytes
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "-a",
            "a-",
            "a.-b",
            "a-.b",
            "1.2",
            "a.1",
            "a b",
            "a%b",
            long_label.as_str(),
            too_long.as_str(),
            "a:b",
            "a.b:",
            "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.1",
        ] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn span_offsets_fit_in_u16() {
        const { assert!(MAX_CANDIDATE_LEN < u16::MAX as usize) };
    }
}
