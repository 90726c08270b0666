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
//! A [`Candidate`] keeps one owned copy of its text (`candidate:...`) plus the parsed values
//! and byte spans into that text. Parsing therefore allocates once for an IP candidate (twice for
//! an FQDN/mDNS address, once more for an unusual transport or type token), `Display` writes the
//! stored text, and equality/hashing compare that text. Extensions are not copied at parse time:
//! [`Candidate::extensions`], [`Candidate::extension`] and [`Candidate::generation`] read them
//! from the stored text without allocating, and the span of the first `ufrag` value is recorded
//! while parsing, so [`Candidate::ufrag`] is a lookup. A candidate has no interior mutability,
//! so it is a sound `HashMap`/`HashSet` key.
//!
//! The usual browser shape (lowercase `udp`/`tcp`, `typ` and standard type, `raddr`/`rport` in
//! order, then extension pairs whose values hold no `"` or `\`) is read in one pass that finds
//! each token's end while checking its bytes; a candidate it takes is also known to need no
//! escaping in a JSON string, which lets a negotiation read and write candidate frames without
//! looking for escapes. Anything else, errors included, goes to the general scan: its tokenizer
//! only looks for spaces (a word at a time), and each token's bytes are then checked once, by
//! the class table or by the parser of its field (numbers, addresses). Where the first pass
//! gives a result it is the one the general scan gives; differential property tests check that.
//!
//! On success every byte belongs to a validated token or is a separating space, and no token
//! check admits a control byte; so the CR/LF/NUL scan runs only when parsing fails, and then its
//! finding takes precedence over any other error. The result is the same as scanning first.
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

    fn from_token(t: &[u8]) -> Option<Self> {
        if t.eq_ignore_ascii_case(b"active") {
            Some(Self::Active)
        } else if t.eq_ignore_ascii_case(b"passive") {
            Some(Self::Passive)
        } else if t.eq_ignore_ascii_case(b"so") {
            Some(Self::So)
        } else {
            None
        }
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

/// A byte range into [`Candidate::raw`]. Candidates are at most [`MAX_CANDIDATE_LEN`] bytes, so
/// `u16` is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    fn get(self, s: &str) -> &str {
        // Spans always lie on token boundaries (ASCII spaces) of the text they were made from;
        // the empty fallback is unreachable.
        s.get(usize::from(self.start)..usize::from(self.end))
            .unwrap_or_default()
    }
}

/// One ICE candidate attribute, parsed, with its original text.
///
/// Build one with [`Candidate::parse`] (or `str::parse`) or [`Candidate::new`] and the `with_*`
/// methods. `Display` writes the text exactly as parsed (`candidate:...`, without `a=`).
/// Two candidates are equal (and hash equal) exactly when their texts are equal, so
/// `udp` and `UDP` spellings of one candidate are different values.
#[derive(Clone)]
pub struct Candidate {
    /// The whole text, starting with `candidate:`.
    raw: String,
    foundation: Span,
    component: u16,
    transport_text: Span,
    transport: TransportProtocol,
    priority: u32,
    address_text: Span,
    address: Address,
    port: u16,
    kind: CandidateType,
    /// Offset in `raw` just past the candidate-type token.
    kind_end: u16,
    related_address: Option<Address>,
    related_port: Option<u16>,
    tcp_type: Option<TcpType>,
    /// Offset in `raw` where the extension pairs start (`raw.len()` when there are none).
    ext_start: u16,
    ext_count: u16,
    /// The value of the first `ufrag` extension.
    ufrag: Option<Span>,
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

/// Byte classes, one bit each, for checking a token's bytes with one table lookup per byte.
const ICE: u8 = 1; // ice-char: ALPHA / DIGIT / "+" / "/"
const TOKEN: u8 = 2; // RFC 8866 token-char
const VALUE: u8 = 4; // visible ASCII or a non-ASCII byte (extension values)
const PLAIN: u8 = 8; // VALUE except '"' and '\' (written as they are in a JSON string)
const HOST: u8 = 16; // host name bytes: ALPHA / DIGIT / "-" / "_" / "."

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        // `i < 256`, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let b = i as u8;
        let mut c = 0u8;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' {
            c |= ICE;
        }
        if is_token_char(b) {
            c |= TOKEN;
        }
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            c |= HOST;
        }
        if b > 0x20 && b != 0x7F {
            c |= VALUE;
            if b != b'"' && b != b'\\' {
                c |= PLAIN;
            }
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASSES: [u8; 256] = build_classes();

/// One token: its bytes and start offset.
#[derive(Clone, Copy)]
struct Token<'a> {
    text: &'a [u8],
    at: usize,
}

impl Token<'_> {
    /// Whether every byte of the token is of `class`. Numbers and addresses are checked by
    /// their own parsers instead, so each byte is classified at most once.
    fn is(&self, class: u8) -> bool {
        self.text
            .iter()
            .all(|&b| CLASSES.get(usize::from(b)).is_some_and(|c| c & class != 0))
    }

    fn span(&self) -> Span {
        span(self.at, self.text.len())
    }
}

/// Offset of the first space in `bytes` at or after `from`, or `bytes.len()`. Eight bytes at a
/// time (the has-zero-byte word trick): most tokens fit in one word.
#[inline(always)]
fn find_space(bytes: &[u8], from: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const SPACES: u64 = LO * b' ' as u64;
    let mut i = from;
    while let Some(word) = bytes
        .get(i..i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        let x = u64::from_le_bytes(word) ^ SPACES;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            // The lowest set high bit marks the first space (borrows only run upwards).
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b' ' {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// Walks space-separated tokens of a string, refusing empty tokens.
struct Tokens<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// The next token; `Ok(None)` at the end of input.
    #[inline(always)]
    fn next_token(&mut self) -> Result<Option<Token<'a>>, CandidateError> {
        let start = self.pos;
        if start > self.s.len() {
            return Ok(None);
        }
        let end = find_space(self.s.as_bytes(), start);
        if end == start {
            return Err(CandidateError::ExtraWhitespace { offset: start });
        }
        // Step past the token and its separating space; past the end when there is none.
        self.pos = end + 1;
        let text = self.s.as_bytes().get(start..end).unwrap_or_default();
        Ok(Some(Token { text, at: start }))
    }

    /// The next token, or `MissingField { field }`.
    #[inline(always)]
    fn field(&mut self, field: &'static str) -> Result<Token<'a>, CandidateError> {
        self.next_token()?
            .ok_or(CandidateError::MissingField { field })
    }
}

fn span(start: usize, len: usize) -> Span {
    // Offsets are bounded by MAX_CANDIDATE_LEN (checked before tokenizing), far below u16::MAX.
    Span {
        start: u16::try_from(start).unwrap_or(u16::MAX),
        end: u16::try_from(start + len).unwrap_or(u16::MAX),
    }
}

fn parse_digits(t: &[u8], max_digits: usize, field: &'static str) -> Result<u64, CandidateError> {
    if t.is_empty() || t.len() > max_digits {
        return Err(CandidateError::InvalidNumber { field });
    }
    let mut n: u64 = 0;
    for &b in t {
        if !b.is_ascii_digit() {
            return Err(CandidateError::InvalidNumber { field });
        }
        // At most 10 digits: cannot overflow u64.
        n = n * 10 + u64::from(b - b'0');
    }
    Ok(n)
}

fn parse_port(t: &[u8], field: &'static str) -> Result<u16, CandidateError> {
    // Allow leading zeros up to a generous width; the value must fit u16.
    let n = parse_digits(t, 10, field)?;
    u16::try_from(n).map_err(|_| CandidateError::OutOfRange { field })
}

fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// RFC 8866 `token-char`.
const fn is_token_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

fn is_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(is_token_char)
}

fn is_valid_value(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b > 0x20 && b != 0x7F)
}

fn is_valid_foundation(t: &str) -> bool {
    (1..=32).contains(&t.len()) && t.bytes().all(is_ice_char)
}

/// The label rules of a host name, for text whose bytes are all of the `HOST` class (letters,
/// digits, `-`, `_`, `.`): labels of 1..=63 bytes, not starting or ending with `-`; the last
/// label not all digits. Checked once per label rather than once per byte.
#[inline(always)]
fn host_labels_ok(bytes: &[u8]) -> bool {
    bytes.split(|&c| c == b'.').all(|label| {
        (1..=63).contains(&label.len())
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
    }) && bytes
        .rsplit(|&c| c == b'.')
        .next()
        .is_some_and(|last| !last.iter().all(u8::is_ascii_digit))
}

/// The dotted quad that starts at `at`, read as far as it goes (four octets of 1 to 3 digits, no
/// leading zero, at most 255), and where it ends; `None` if there is none. Callers say what may
/// follow it: [`fast_ipv4`] a space or the end, the IPv6 reader anything. Read to the end of a
/// text, it is exactly as strict as `Ipv4Addr::from_str`, without its general-purpose parser
/// machinery.
#[inline(always)]
fn read_ipv4(b: &[u8], at: usize) -> Option<(Ipv4Addr, usize)> {
    let digit = |i: usize| {
        b.get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|&d| d <= 9)
            .map(u16::from)
    };
    let mut i = at;
    let mut octets = [0u8; 4];
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let mut n = digit(i)?;
        i += 1;
        // 1 to 3 digits, no leading zero (as `Ipv4Addr::from_str`), at most 255.
        if let Some(d) = digit(i) {
            if n == 0 {
                return None;
            }
            n = n * 10 + d;
            i += 1;
            if let Some(d) = digit(i) {
                n = n * 10 + d;
                i += 1;
            }
        }
        *octet = u8::try_from(n).ok()?;
    }
    Some((Ipv4Addr::from(octets), i))
}

fn parse_address(t: &str) -> Option<Address> {
    classify_address(t.as_bytes()).map(|ip| match ip {
        Some(ip) => Address::Ip(ip),
        None => Address::Fqdn(t.to_owned()),
    })
}

/// `Some(Some(ip))` for an IP address, `Some(None)` for a valid host name (at most 253 bytes),
/// `None` otherwise: [`fast_address`] over the whole text.
fn classify_address(t: &[u8]) -> Option<Option<IpAddr>> {
    fast_address(t, 0)
        .filter(|&(_, end)| end == t.len())
        .map(|(ip, _)| ip)
}

/// IPv6 text, exactly as strict as `Ipv6Addr::from_str` (the same grammar, read the same way:
/// groups of 1 to 4 hex digits, at most one `::` standing for at least one zero group, an IPv4
/// address only as the last two groups), without its general-purpose parser machinery.
fn parse_ipv6(t: &[u8]) -> Option<Ipv6Addr> {
    let mut p = V6Reader { b: t, i: 0 };
    let mut head = [0u16; 8];
    let (head_len, head_ipv4) = p.groups(&mut head);
    let groups = if head_len == 8 {
        head
    } else {
        // An IPv4 part may only end the address, and fewer than 8 groups need a `::`.
        if head_ipv4 || !(p.eat(b':') && p.eat(b':')) {
            return None;
        }
        // `::` stands for at least one group, so at most 7 - head_len follow it.
        let mut tail = [0u16; 7];
        let limit = 7 - head_len;
        let (tail_len, _) = p.groups(tail.get_mut(..limit)?);
        let mut groups = head;
        groups
            .get_mut(8 - tail_len..)?
            .copy_from_slice(tail.get(..tail_len)?);
        groups
    };
    // The whole text must be read.
    (p.i == t.len()).then(|| Ipv6Addr::from(groups))
}

/// A cursor over IPv6 text for [`parse_ipv6`]; each read either succeeds and moves on or fails
/// and leaves the position where it was.
struct V6Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl V6Reader<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        if hit {
            self.i += 1;
        }
        hit
    }

    /// Colon-separated groups into `out` (the first without a colon before it), stopping at the
    /// first that does not read; an IPv4 address is tried first wherever two groups are left,
    /// and ends the run. The count read, and whether an IPv4 address ended it.
    fn groups(&mut self, out: &mut [u16]) -> (usize, bool) {
        let limit = out.len();
        for i in 0..limit {
            let start = self.i;
            if i + 1 < limit {
                if i == 0 || self.eat(b':') {
                    if let Some([a, b, c, d]) = self.ipv4().map(|ip| ip.octets()) {
                        if let Some(pair) = out.get_mut(i..i + 2) {
                            pair.copy_from_slice(&[
                                u16::from_be_bytes([a, b]),
                                u16::from_be_bytes([c, d]),
                            ]);
                        }
                        return (i + 2, true);
                    }
                }
                self.i = start;
            }
            match (i == 0 || self.eat(b':'))
                .then(|| self.hex_group())
                .flatten()
            {
                Some(g) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = g;
                    }
                }
                None => {
                    self.i = start;
                    return (i, false);
                }
            }
        }
        (limit, false)
    }

    /// 1 to 4 hex digits (leading zeros allowed). More digits cannot be part of a valid address.
    fn hex_group(&mut self) -> Option<u16> {
        let start = self.i;
        let mut n: u16 = 0;
        while self.i - start < 4 {
            let Some(d) = self.b.get(self.i).and_then(|&c| char::from(c).to_digit(16)) else {
                break;
            };
            n = n * 16 + u16::try_from(d).ok()?;
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        Some(n)
    }

    /// A dotted-quad IPv4 address as [`read_ipv4`] reads one, up to the first byte that cannot
    /// continue it.
    fn ipv4(&mut self) -> Option<Ipv4Addr> {
        let (ip, end) = read_ipv4(self.b, self.i)?;
        self.i = end;
        Some(ip)
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
        checked_scan(s, |scan, text, _| scan.into_candidate(text.to_owned()))
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
        self.foundation.get(&self.raw)
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
        self.transport_text.get(&self.raw)
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
        self.address_text.get(&self.raw)
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
        let rest = self
            .raw
            .get(usize::from(self.ext_start)..)
            .unwrap_or_default();
        Extensions {
            rest,
            remaining: if rest.is_empty() {
                0
            } else {
                usize::from(self.ext_count)
            },
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
        // Recorded while parsing: the same as `self.extension("ufrag")`, without the search.
        self.ufrag.map(|span| span.get(&self.raw))
    }

    /// The `generation` extension, if present and a valid `u32`.
    #[must_use]
    pub fn generation(&self) -> Option<u32> {
        self.extension("generation").and_then(|v| {
            let n = parse_digits(v.as_bytes(), 10, "generation").ok()?;
            u32::try_from(n).ok()
        })
    }

    /// `candidate:<foundation> ... typ <type>`.
    fn base_text(&self) -> &str {
        let end = usize::from(self.kind_end);
        self.raw.get(..end).unwrap_or_default()
    }

    fn push_related(&self, text: &mut String) {
        let start = usize::from(self.kind_end);
        let end = usize::from(self.ext_start);
        if let Some(related) = self.raw.get(start..end) {
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

/// [`Candidate::parse`] without the allocation: `done` gets the scan, the `candidate:...` text it
/// is of (the input without `a=`), and whether the fast scan took it (then `s` holds no `"`, `\`
/// or control byte).
///
/// `done` is called on the fast scan's result and on the general scan's result separately
/// rather than on one merged value: inlined into each branch, it lets a caller that keeps only
/// part of the scan (as [`check_for_json`] does) drop the rest of the fast scan's work, and no
/// whole `Scan` is stored only to be read back at once (a store-to-load stall).
#[inline(always)]
fn checked_scan<T>(s: &str, done: impl FnOnce(Scan, &str, bool) -> T) -> Result<T, CandidateError> {
    let forbidden = || {
        s.bytes()
            .position(|b| matches!(b, b'\r' | b'\n' | 0))
            .map(|offset| CandidateError::ForbiddenCharacter {
                byte: s.as_bytes().get(offset).copied().unwrap_or_default(),
                offset,
            })
    };
    if s.len() > MAX_CANDIDATE_LEN {
        return Err(forbidden().unwrap_or(CandidateError::TooLong {
            len: s.len(),
            max: MAX_CANDIDATE_LEN,
        }));
    }
    if s.is_empty() {
        return Err(CandidateError::Empty);
    }
    let text = s.strip_prefix(SDP_PREFIX).unwrap_or(s);
    // Offsets in errors refer to the caller's input.
    let base = s.len() - text.len();
    // No valid token holds CR, LF or NUL (see the module docs), so scanning for them only
    // when parsing fails gives the same answer as scanning first.
    if let Some(scan) = scan_fast(text) {
        return Ok(done(scan, text, true));
    }
    match scan_general(text) {
        Ok(scan) => Ok(done(scan, text, false)),
        Err(e) => Err(forbidden().unwrap_or_else(|| shift_offsets(e, base))),
    }
}

/// Checks `s` exactly as [`Candidate::parse`] does (same errors), without allocating. On success,
/// the byte range in `s` of the value of its first `ufrag` extension, if it has one (what
/// [`Candidate::ufrag`] of the parsed candidate would give).
pub(crate) fn check(s: &str) -> Result<Option<std::ops::Range<usize>>, CandidateError> {
    check_for_json(s).map(|c| c.ufrag)
}

/// What [`check_for_json`] found out about a valid candidate text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The byte range of the value of its first `ufrag` extension, if it has one.
    pub(crate) ufrag: Option<std::ops::Range<usize>>,
    /// Whether the text is known to be the content of a JSON string as it is (no `"`, `\` or
    /// control byte: nothing to escape). `true` for the usual browser shape, whose one-pass scan
    /// checks that on the way; `false` says only "not known".
    pub(crate) plain: bool,
}

/// [`check`], and whether the text needs no JSON escaping (see [`Checked`]).
pub(crate) fn check_for_json(s: &str) -> Result<Checked, CandidateError> {
    checked_scan(s, |scan, text, plain| {
        let base = s.len() - text.len();
        let ufrag = scan
            .ufrag
            .map(|span| base + usize::from(span.start)..base + usize::from(span.end));
        Checked { ufrag, plain }
    })
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

/// A [`TransportProtocol`] as a scan records it: `Other`'s token stays in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScannedTransport {
    Udp,
    Tcp,
    Other,
}

impl ScannedTransport {
    fn classify(t: &[u8]) -> Self {
        if t.eq_ignore_ascii_case(b"udp") {
            Self::Udp
        } else if t.eq_ignore_ascii_case(b"tcp") {
            Self::Tcp
        } else {
            Self::Other
        }
    }
}

/// A [`CandidateType`] as a scan records it: `Other`'s token stays in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScannedType {
    Host,
    Srflx,
    Prflx,
    Relay,
    Other,
}

impl ScannedType {
    fn classify(t: &[u8]) -> Self {
        if t.eq_ignore_ascii_case(b"host") {
            Self::Host
        } else if t.eq_ignore_ascii_case(b"srflx") {
            Self::Srflx
        } else if t.eq_ignore_ascii_case(b"prflx") {
            Self::Prflx
        } else if t.eq_ignore_ascii_case(b"relay") {
            Self::Relay
        } else {
            Self::Other
        }
    }
}

/// What one pass over a candidate's text finds: values, and spans into the text for everything
/// else. Nothing is allocated; [`Scan::into_candidate`] adds the owned copies.
#[derive(Debug, PartialEq, Eq)]
struct Scan {
    foundation: Span,
    component: u16,
    transport_text: Span,
    /// `Other`: the token is in `transport_text`.
    transport: ScannedTransport,
    priority: u32,
    address_text: Span,
    /// `None`: a host name (in `address_text`).
    address: Option<IpAddr>,
    port: u16,
    kind_text: Span,
    /// `Other`: the token is in `kind_text`.
    kind: ScannedType,
    /// The `raddr` text and its IP value (`None`: a host name).
    related_address: Option<(Span, Option<IpAddr>)>,
    related_port: Option<u16>,
    tcp_type: Option<TcpType>,
    ext_start: usize,
    ext_count: u16,
    ufrag: Option<Span>,
}

impl Scan {
    /// The candidate, owning `raw` (the text that was scanned).
    fn into_candidate(self, raw: String) -> Candidate {
        let text = |span: Span| span.get(&raw).to_owned();
        let address_of = |span: Span, ip: Option<IpAddr>| match ip {
            Some(ip) => Address::Ip(ip),
            None => Address::Fqdn(text(span)),
        };
        let transport = match self.transport {
            ScannedTransport::Udp => TransportProtocol::Udp,
            ScannedTransport::Tcp => TransportProtocol::Tcp,
            ScannedTransport::Other => TransportProtocol::Other(text(self.transport_text)),
        };
        let kind = match self.kind {
            ScannedType::Host => CandidateType::Host,
            ScannedType::Srflx => CandidateType::Srflx,
            ScannedType::Prflx => CandidateType::Prflx,
            ScannedType::Relay => CandidateType::Relay,
            ScannedType::Other => CandidateType::Other(text(self.kind_text)),
        };
        let address = address_of(self.address_text, self.address);
        let related_address = self.related_address.map(|(span, ip)| address_of(span, ip));
        Candidate {
            foundation: self.foundation,
            component: self.component,
            transport_text: self.transport_text,
            transport,
            priority: self.priority,
            address_text: self.address_text,
            address,
            port: self.port,
            kind,
            kind_end: self.kind_text.end,
            related_address,
            related_port: self.related_port,
            tcp_type: self.tcp_type,
            ext_start: u16::try_from(self.ext_start).unwrap_or(u16::MAX),
            ext_count: self.ext_count,
            ufrag: self.ufrag,
            raw,
        }
    }
}

/// Parses `candidate:...` (no `a=`; callers check the length). Every token check refuses
/// control bytes, so no CR/LF/NUL can get through here either.
fn parse_text(text: &str) -> Result<Candidate, CandidateError> {
    scan(text).map(|scan| scan.into_candidate(text.to_owned()))
}

/// Checks `candidate:...` (no `a=`; callers check the length) as [`parse_text`] does, without
/// allocating. The usual browser shape takes [`scan_fast`]; anything else (errors included) is
/// decided by [`scan_general`].
#[inline(always)]
fn scan(text: &str) -> Result<Scan, CandidateError> {
    match scan_fast(text) {
        Some(scan) => Ok(scan),
        None => scan_general(text),
    }
}

/// The end of the token at `at` (the next space, or the end of input) when it is not empty and
/// every byte is of `class`: the tokenizer and the class check in one pass.
#[inline(always)]
fn fast_token(b: &[u8], at: usize, class: u8) -> Option<usize> {
    let mut i = at;
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            break;
        }
        if CLASSES[usize::from(c)] & class == 0 {
            return None;
        }
        i += 1;
    }
    (i > at).then_some(i)
}

/// The value and end of the number at `at`: 1 to `max` ASCII digits (`max` at most 19, so no
/// overflow) up to the next space or the end of input.
#[inline(always)]
fn fast_digits(b: &[u8], at: usize, max: usize) -> Option<(u64, usize)> {
    let mut i = at;
    let mut n: u64 = 0;
    while let Some(&c) = b.get(i) {
        if c == b' ' {
            break;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 || i - at >= max {
            return None;
        }
        n = n * 10 + u64::from(d);
        i += 1;
    }
    (i > at).then_some((n, i))
}

/// The length of the extension name browsers send that `rest` starts with, followed by a space:
/// tokens, none of them reserved, so they need no further check.
#[inline(always)]
fn known_name(rest: &[u8]) -> Option<usize> {
    // Fixed-size compares (no library call), chosen by the first byte.
    let is = |name: &[u8; 16], len: usize| {
        rest.get(..len)
            .is_some_and(|r| r == name.get(..len).unwrap_or_default())
            .then_some(len - 1)
    };
    match rest.first()? {
        b'g' => is(b"generation      ", 11),
        b'u' => is(b"ufrag           ", 6),
        b'n' => is(b"network-id      ", 11).or_else(|| is(b"network-cost    ", 13)),
        _ => None,
    }
}

/// The IPv4 address at `at` and its end, when the token there is a dotted quad that
/// `Ipv4Addr::from_str` accepts, followed by a space or the end of input; `None` otherwise (the caller
/// then finds the token's end and classifies it in full). Reading the address while finding its
/// end looks at each byte once, where finding the end first and then parsing reads it twice.
#[inline(always)]
fn fast_ipv4(b: &[u8], at: usize) -> Option<(Ipv4Addr, usize)> {
    read_ipv4(b, at).filter(|&(_, end)| matches!(b.get(end), None | Some(&b' ')))
}

/// The address token at `at` (up to the next space or the end) and its end: `Some(ip)` for an IP
/// address, `None` for a valid host name. The usual IPv4 address by [`fast_ipv4`]; a token of
/// host name bytes (an mDNS name) by finding its end while checking its bytes, then its labels;
/// anything else by finding the token's end and reading it as IPv6, the one kind left.
#[inline(always)]
fn fast_address(b: &[u8], at: usize) -> Option<(Option<IpAddr>, usize)> {
    if let Some((ip, end)) = fast_ipv4(b, at) {
        return Some((Some(IpAddr::V4(ip)), end));
    }
    if let Some(end) = fast_token(b, at, HOST) {
        // Not IPv4 (`fast_ipv4` takes every IPv4 text) and no colon: a host name or nothing.
        let name = b.get(at..end)?;
        return (name.len() <= 253 && host_labels_ok(name)).then_some((None, end));
    }
    let end = find_space(b, at);
    Some((Some(IpAddr::V6(parse_ipv6(b.get(at..end)?)?)), end))
}

/// Past the separating space at `at`.
#[inline(always)]
fn fast_space(b: &[u8], at: usize) -> Option<usize> {
    (b.get(at) == Some(&b' ')).then_some(at + 1)
}

/// The usual shape of a browser's candidate in one pass, each byte looked at once:
///
/// ```text
/// candidate:<foundation> <component> udp|tcp <priority> <address> <port> typ host|srflx|prflx|relay
///     [ raddr <address>] [ rport <port>] *( <name> <value>)
/// ```
///
/// with the keywords, transport and type in lowercase. `None` for anything else, valid or not
/// (another spelling, an unusual order, any error): [`scan_general`] then decides. When this
/// gives a scan, it is the one `scan_general` gives (the `fast_path_agrees_with_general` tests).
#[inline(always)]
fn scan_fast(text: &str) -> Option<Scan> {
    let b = text.as_bytes();
    if !b.starts_with(PREFIX.as_bytes()) {
        return None;
    }
    let at = PREFIX.len();
    let end = fast_token(b, at, ICE)?;
    if end - at > 32 {
        return None;
    }
    let foundation = span(at, end - at);

    let at = fast_space(b, end)?;
    let (component, end) = fast_digits(b, at, 3)?;
    if !(1..=256).contains(&component) {
        return None;
    }
    let component = u16::try_from(component).ok()?;

    let at = fast_space(b, end)?;
    let transport = match b.get(at..at + 4)? {
        b"udp " => ScannedTransport::Udp,
        b"tcp " => ScannedTransport::Tcp,
        _ => return None,
    };
    let transport_text = span(at, 3);

    let (priority, end) = fast_digits(b, at + 4, 10)?;
    let priority = u32::try_from(priority).ok()?;

    let at = fast_space(b, end)?;
    let (address, end) = fast_address(b, at)?;
    let address_text = span(at, end - at);

    let at = fast_space(b, end)?;
    let (port, end) = fast_digits(b, at, 10)?;
    let port = u16::try_from(port).ok()?;

    if b.get(end..end + 5)? != b" typ " {
        return None;
    }
    let at = end + 5;
    // Fixed-size compares of the four types, then the byte after must end the token.
    let (kind, mut end) = if b.get(at..at + 4) == Some(b"host") {
        (ScannedType::Host, at + 4)
    } else {
        let kind = match b.get(at..at + 5)? {
            b"srflx" => ScannedType::Srflx,
            b"prflx" => ScannedType::Prflx,
            b"relay" => ScannedType::Relay,
            _ => return None,
        };
        (kind, at + 5)
    };
    if !matches!(b.get(end), None | Some(&b' ')) {
        return None;
    }
    let kind_text = span(at, end - at);

    let mut related_address = None;
    if b.get(end..end + 7) == Some(b" raddr ") {
        let at = end + 7;
        let (ip, e) = fast_address(b, at)?;
        related_address = Some((span(at, e - at), ip));
        end = e;
    }
    let mut related_port = None;
    if b.get(end..end + 7) == Some(b" rport ") {
        let (port, e) = fast_digits(b, end + 7, 10)?;
        related_port = Some(u16::try_from(port).ok()?);
        end = e;
    }

    let mut ext_start = b.len();
    let mut ext_count: u16 = 0;
    let mut tcp_type = None;
    let mut ufrag = None;
    while end < b.len() {
        let name_at = fast_space(b, end)?;
        let known = known_name(b.get(name_at..)?);
        let name_end = match known {
            Some(len) => name_at + len,
            None => fast_token(b, name_at, TOKEN)?,
        };
        let value_at = fast_space(b, name_end)?;
        // Visible ASCII or non-ASCII, but no `"` or `\`: a value with those, valid as it is, is
        // left to the general scan, so that every candidate this scan takes is plain JSON text.
        // Byte by byte: the values browsers send are a few bytes long, and a loop whose exit
        // the branch predictor learns lets the scan run on to the next token at once, where
        // working out the end from a whole word puts that arithmetic before every later token
        // (measured: a word-at-a-time version made the whole check about a quarter slower).
        end = fast_token(b, value_at, PLAIN)?;
        let name = b.get(name_at..name_end)?;
        if ext_count == 0 {
            ext_start = name_at;
        }
        // A `ufrag` followed by a space is always a known name, so the other names need no
        // compare.
        if known.is_some() && name == b"ufrag" {
            ufrag = ufrag.or(Some(span(value_at, end - value_at)));
        }
        if known.is_none() && name.len() <= 7 {
            if name.eq_ignore_ascii_case(b"typ")
                || name.eq_ignore_ascii_case(b"raddr")
                || name.eq_ignore_ascii_case(b"rport")
                || (name.eq_ignore_ascii_case(b"tcptype") && tcp_type.is_some())
            {
                return None;
            }
            if name.eq_ignore_ascii_case(b"tcptype") {
                tcp_type = Some(TcpType::from_token(b.get(value_at..end)?)?);
            }
        }
        ext_count = ext_count.saturating_add(1);
    }

    Some(Scan {
        foundation,
        component,
        transport_text,
        transport,
        priority,
        address_text,
        address,
        port,
        kind_text,
        kind,
        related_address,
        related_port,
        tcp_type,
        ext_start,
        ext_count,
        ufrag,
    })
}

/// The general scan: any valid candidate, and the first error of an invalid one.
#[inline(never)]
fn scan_general(text: &str) -> Result<Scan, CandidateError> {
    if !text.starts_with(PREFIX) {
        return Err(CandidateError::MissingPrefix);
    }
    let mut tok = Tokens {
        s: text,
        // Bare "candidate:" has no tokens at all (rather than an empty one).
        pos: if text.len() == PREFIX.len() {
            text.len() + 1
        } else {
            PREFIX.len()
        },
    };

    let t = tok.field("foundation")?;
    if !(t.text.len() <= 32 && t.is(ICE)) {
        return Err(CandidateError::InvalidFoundation);
    }
    let foundation = t.span();

    let t = tok.field("component-id")?;
    let component = parse_digits(t.text, 3, "component-id")?;
    let component = match u16::try_from(component) {
        Ok(c @ 1..=256) => c,
        _ => {
            return Err(CandidateError::OutOfRange {
                field: "component-id",
            })
        }
    };

    let t = tok.field("transport")?;
    if !t.is(TOKEN) {
        return Err(CandidateError::InvalidTransport);
    }
    let transport_text = t.span();
    let transport = ScannedTransport::classify(t.text);

    let t = tok.field("priority")?;
    let priority = parse_digits(t.text, 10, "priority")?;
    let priority =
        u32::try_from(priority).map_err(|_| CandidateError::OutOfRange { field: "priority" })?;

    let t = tok.field("connection-address")?;
    let address = classify_address(t.text).ok_or(CandidateError::InvalidAddress {
        field: "connection-address",
    })?;
    let address_text = t.span();

    let t = tok.field("port")?;
    let port = parse_port(t.text, "port")?;

    let t = tok.next_token()?.ok_or(CandidateError::MissingTyp)?;
    if !t.text.eq_ignore_ascii_case(b"typ") {
        return Err(CandidateError::MissingTyp);
    }
    let t = tok.field("cand-type")?;
    if !t.is(TOKEN) {
        return Err(CandidateError::InvalidCandidateType);
    }
    let kind = ScannedType::classify(t.text);
    let kind_text = t.span();

    let mut related_address = None;
    let mut related_port = None;
    let mut tcp_type = None;
    let mut ufrag = None;
    let mut ext_start = text.len();
    let mut ext_count: u16 = 0;
    // 0: may see raddr; 1: may see rport; 2: extensions only; 3: inside extensions.
    let mut stage = 0u8;

    while let Some(name) = tok.next_token()? {
        let Some(value) = tok.next_token()? else {
            return Err(CandidateError::MissingValue { offset: name.at });
        };
        if stage < 3 {
            if name.text.eq_ignore_ascii_case(b"raddr") {
                if stage > 0 {
                    return Err(CandidateError::MisplacedAttribute { name: "raddr" });
                }
                let ip = classify_address(value.text)
                    .ok_or(CandidateError::InvalidAddress { field: "raddr" })?;
                related_address = Some((value.span(), ip));
                stage = 1;
                continue;
            }
            if name.text.eq_ignore_ascii_case(b"rport") {
                if stage > 1 {
                    return Err(CandidateError::MisplacedAttribute { name: "rport" });
                }
                related_port = Some(parse_port(value.text, "rport")?);
                stage = 2;
                continue;
            }
            stage = 3;
            ext_start = name.at;
        }
        if !name.is(TOKEN) {
            return Err(CandidateError::InvalidExtensionName { offset: name.at });
        }
        if !value.is(VALUE) {
            return Err(CandidateError::InvalidExtensionValue { offset: value.at });
        }
        // Only the short reserved names need a closer look.
        if name.text.len() <= 7 {
            if name.text == b"ufrag" {
                ufrag = ufrag.or(Some(value.span()));
            }
            for reserved in ["typ", "raddr", "rport"] {
                if name.text.eq_ignore_ascii_case(reserved.as_bytes()) {
                    return Err(CandidateError::MisplacedAttribute { name: reserved });
                }
            }
            if name.text.eq_ignore_ascii_case(b"tcptype") {
                if tcp_type.is_some() {
                    return Err(CandidateError::MisplacedAttribute { name: "tcptype" });
                }
                tcp_type =
                    Some(TcpType::from_token(value.text).ok_or(CandidateError::InvalidTcpType)?);
            }
        }
        ext_count = ext_count.saturating_add(1);
    }

    Ok(Scan {
        foundation,
        component,
        transport_text,
        transport,
        priority,
        address_text,
        address,
        port,
        kind_text,
        kind,
        related_address,
        related_port,
        tcp_type,
        ext_start,
        ext_count,
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
    match s.bytes().position(|b| b == b' ') {
        // A space is ASCII: `at` and `at + 1` are char boundaries.
        Some(at) => (
            s.get(..at).unwrap_or_default(),
            s.get(at + 1..).unwrap_or_default(),
        ),
        None => (s, ""),
    }
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

    use super::strategy::{candidate, candidate_string};
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn generated_candidates_round_trip(c in candidate()) {
            let text = c.to_string();
            let back = Candidate::parse(&text);
            prop_assert_eq!(back.as_ref(), Ok(&c));
            let back = back.unwrap_or_else(|_| c.clone());
            prop_assert_eq!(back.to_string(), text.clone());
            prop_assert_eq!(back.foundation(), c.foundation());
            prop_assert_eq!(back.component(), c.component());
            prop_assert_eq!(back.transport(), c.transport());
            prop_assert_eq!(back.priority(), c.priority());
            prop_assert_eq!(back.address(), c.address());
            prop_assert_eq!(back.port(), c.port());
            prop_assert_eq!(back.kind(), c.kind());
            prop_assert_eq!(back.related_address(), c.related_address());
            prop_assert_eq!(back.related_port(), c.related_port());
            prop_assert_eq!(back.tcp_type(), c.tcp_type());
            prop_assert_eq!(back.extensions().to_vec(), c.extensions().to_vec());
            prop_assert_eq!(back.extensions().len(), c.extensions().len());
            prop_assert_eq!(back.ufrag(), back.extension("ufrag"));
            prop_assert_eq!(back.extensions().count(), c.extensions().len());
            let with_sdp = format!("a={text}");
            prop_assert_eq!(Candidate::parse(&with_sdp).map(|c| c.to_string()), Ok(text));
        }

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
                if check_for_json(&s).is_ok_and(|c| c.plain) {
                    prop_assert!(
                        s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
                        "plain JSON text: {:?}", s
                    );
                }
                if let (Ok(range), Ok(p)) = (checked, parsed) {
                    prop_assert_eq!(range.and_then(|r| s.get(r)), p.ufrag());
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,300}") {
            let _ = Candidate::parse(&s);
        }

        #[test]
        fn prefixed_strings_never_panic(s in ".{0,300}") {
            let _ = Candidate::parse(&format!("candidate:{s}"));
            let _ = Candidate::parse(&format!("a=candidate:{s}"));
        }

        #[test]
        fn token_soup_never_panics_and_round_trips(
            toks in proptest::collection::vec("[a-zA-Z0-9.:+/_-]{0,8}|typ|raddr|rport|tcptype|udp|host|1", 0..16)
        ) {
            let s = format!("candidate:{}", toks.join(" "));
            if let Ok(c) = Candidate::parse(&s) {
                prop_assert_eq!(c.to_string(), s);
            }
        }

        #[test]
        fn mutated_candidates_never_panic_and_round_trip(
            s in candidate_string(),
            at in any::<proptest::sample::Index>(),
            ch in any::<char>(),
            delete in any::<bool>(),
        ) {
            let mut m = s.clone();
            let i = at.index(m.len() + 1);
            if m.is_char_boundary(i) {
                if delete {
                    if i < m.len() && m.is_char_boundary(i + 1) {
                        m.remove(i);
                    }
                } else {
                    m.insert(i, ch);
                }
            }
            if let Ok(c) = Candidate::parse(&m) {
                prop_assert_eq!(c.to_string(), m);
            }
        }
    }

    /// Where the fast scan gives a result, the general one gives the same (and the general one
    /// fails exactly where parsing does).
    fn assert_fast_agrees(s: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = scan_fast(s) {
            prop_assert_eq!(Ok(fast), scan_general(s), "{:?}", s);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn fast_path_agrees_with_general_on_generated(s in candidate_string()) {
            assert_fast_agrees(&s)?;
        }

        #[test]
        fn fast_path_agrees_with_general_on_mutated(
            s in candidate_string(),
            at in any::<proptest::sample::Index>(),
            ch in prop_oneof![Just(' '), Just('0'), Just('9'), Just('.'), Just(':'), Just('\t'), Just('\u{7f}'), any::<char>()],
            delete in any::<bool>(),
        ) {
            let mut m = s.clone();
            let i = at.index(m.len() + 1);
            if m.is_char_boundary(i) {
                if delete {
                    if i < m.len() && m.is_char_boundary(i + 1) {
                        m.remove(i);
                    }
                } else {
                    m.insert(i, ch);
                }
            }
            assert_fast_agrees(&m)?;
        }

        #[test]
        fn fast_path_agrees_with_general_on_replaced_tokens(
            s in candidate_string(),
            at in any::<proptest::sample::Index>(),
            with in "|typ|TYP|raddr|RADDR|rport|Rport|tcptype|TCPTYPE|ufrag|active|so|udp|UDP|tcp|host|Host|srflx|relay|prflx|0|1|256|257|65535|65536|4294967295|4294967296|0000000001|00000000001|1.2.3.4|01.2.3.4|::1|a.local|x y|generation|256.1.1.1|1.2.3.4.5|1.2.3|a-.local|-a.local|a_b.local|a..local|x.1|fe80::1|2001:db8::1:2:3:4:5:6|host1|srflxx|hos|relay1",
        ) {
            let mut toks: Vec<&str> = s.split(' ').collect();
            let i = at.index(toks.len());
            if let Some(t) = toks.get_mut(i) {
                *t = &with;
            }
            let m = toks.join(" ");
            assert_fast_agrees(&m)?;
            // And appended as a trailing pair, after the extensions.
            assert_fast_agrees(&format!("{s} {with} 1"))?;
        }

        #[test]
        fn fast_path_agrees_with_general_on_token_soup(
            toks in proptest::collection::vec("[a-zA-Z0-9.:+/_-]{0,8}|typ|raddr|rport|tcptype|ufrag|udp|tcp|host|srflx|active|1|0|256", 0..18)
        ) {
            assert_fast_agrees(&format!("candidate:{}", toks.join(" ")))?;
        }
    }

    #[test]
    fn fast_path_takes_browser_candidates() {
        for s in [
            "candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10",
            "candidate:1234567890 1 udp 2122260223 192.0.2.13 50013 typ host generation 0 ufrag Kx3v network-id 1",
            "candidate:2194195233 1 udp 2122260223 4c1b4e9f-3d1e-4f57-9d3c-2f5d0a6f1c2b.local 59046 typ host generation 0 ufrag 6fX4 network-cost 999",
            "candidate:3 1 tcp 1518280447 2001:db8::1 9 typ host tcptype active generation 0",
            "candidate:4 2 udp 41885439 198.51.100.9 3478 typ relay raddr 0.0.0.0 rport 0",
            "candidate:5 1 udp 1 192.0.2.1 1 typ prflx",
        ] {
            let fast = scan_fast(s);
            assert!(fast.is_some(), "{s}");
            assert_eq!(fast.ok_or(CandidateError::Empty), scan_general(s), "{s}");
        }
    }

    /// `s` between `before` and `after`: the text, where `s` starts, and where the token
    /// starting there ends (the next space, or the end).
    fn embedded(before: &str, s: &str, after: &str) -> (String, usize, usize) {
        let text = format!("{before}{s}{after}");
        let end = find_space(text.as_bytes(), before.len());
        (text, before.len(), end)
    }

    /// [`read_ipv4`] over a whole text.
    fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
        read_ipv4(s, 0)
            .filter(|&(_, end)| end == s.len())
            .map(|(ip, _)| ip)
    }

    proptest! {
        #[test]
        fn ipv4_fast_path_matches_std(s in "[0-9.]{0,18}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}") {
            prop_assert_eq!(parse_ipv4(s.as_bytes()), Ipv4Addr::from_str(&s).ok());
        }

        /// The fused reader accepts exactly the tokens `Ipv4Addr::from_str` does, with the same
        /// value, wherever the token starts and whatever follows it.
        #[test]
        fn fast_ipv4_matches_std(
            before in "[0-9. ]{0,3}",
            s in "[0-9.]{0,18}|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            after in "|[ ][0-9a-z .]{0,3}|[0-9a-z.:][0-9a-z .]{0,3}",
        ) {
            let (text, at, end) = embedded(&before, &s, &after);
            let b = text.as_bytes();
            let std = |t: &[u8]| Ipv4Addr::from_str(std::str::from_utf8(t).ok()?).ok();
            let expected = b.get(at..end).and_then(std).map(|ip| (ip, end));
            prop_assert_eq!(fast_ipv4(b, at), expected, "{:?}", text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The IPv6 reader accepts exactly what `Ipv6Addr::from_str` accepts, with the same value.
        #[test]
        fn ipv6_matches_std(
            s in "[0-9a-fA-F:.]{0,24}|[0-9:.]{0,20}|[0-9a:.]{0,48}|([0-9a-fA-F]{0,5}:){0,9}[0-9a-fA-F]{0,5}|([0-9a-f]{0,4}:{1,2}){0,8}([0-9]{1,4}\\.){0,4}[0-9]{0,4}|.{0,6}",
        ) {
            prop_assert_eq!(parse_ipv6(s.as_bytes()), Ipv6Addr::from_str(&s).ok(), "{:?}", s);
        }
    }

    /// Every text of up to `MAX_LEN` bytes over a few bytes that play every part in the
    /// grammar (digits, a hex letter, both separators), against `Ipv6Addr::from_str`.
    #[test]
    fn ipv6_matches_std_exhaustively() {
        const MAX_LEN: usize = 7;
        const BYTES: [u8; 5] = [b'0', b'1', b'f', b':', b'.'];
        let mut text = Vec::with_capacity(MAX_LEN);
        let mut todo = vec![0usize];
        // Depth-first over all texts: `todo` holds the next byte index at each length.
        while let Some(next) = todo.pop() {
            let s = std::str::from_utf8(&text).unwrap_or_default();
            if next == 0 {
                assert_eq!(parse_ipv6(&text), Ipv6Addr::from_str(s).ok(), "{s}");
            }
            match BYTES.get(next) {
                Some(&c) if text.len() < MAX_LEN => {
                    todo.push(next + 1);
                    text.push(c);
                    todo.push(0);
                }
                _ => {
                    text.pop();
                }
            }
        }
    }

    #[test]
    fn ipv6_edges() {
        for s in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4::5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            ":::",
            ":1::",
            "1:",
            ":1",
            "12345::",
            "0000:0000::00000",
            "::1.2.3.4",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "1:2:3:4:5:1.2.3.4",
            "1.2.3.4::",
            "1.2.3.4",
            "::1.2.3",
            "::1.2.3.4.5",
            "::01.2.3.4",
            "::1.2.3.256",
            "::256.1.1.1",
            "::1234.5.6.7",
            "::123.4.5.6",
            "2001:db8::1",
            "2001:DB8:85a3::8A2E:370:7334",
            "fe80::1%eth0",
            "[::1]",
            "",
            "::g",
            "1:2:3:4:5:6::1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "::0:1.2.3.4",
        ] {
            assert_eq!(parse_ipv6(s.as_bytes()), Ipv6Addr::from_str(s).ok(), "{s}");
        }
    }

    #[test]
    fn ipv4_fast_path_edges() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "",
            "1..2.3",
        ] {
            assert_eq!(parse_ipv4(s.as_bytes()), Ipv4Addr::from_str(s).ok(), "{s}");
            let end = s.len();
            let expected = Ipv4Addr::from_str(s).ok().map(|ip| (ip, end));
            assert_eq!(fast_ipv4(s.as_bytes(), 0), expected, "{s}");
            let spaced = format!("{s} 1");
            assert_eq!(fast_ipv4(spaced.as_bytes(), 0), expected, "{s}");
        }
    }

    /// Whether [`classify_address`] takes `t` for a host name.
    fn is_hostname(t: &[u8]) -> bool {
        classify_address(t) == Some(None)
    }

    /// What [`classify_address`] should say, from std's IP parsers and the reference host name
    /// rules.
    fn classify_reference(t: &[u8]) -> Option<Option<IpAddr>> {
        let text = std::str::from_utf8(t).ok()?;
        if let Ok(ip) = IpAddr::from_str(text) {
            return Some(Some(ip));
        }
        hostname_reference(t).then_some(None)
    }

    /// The host name rules byte by byte, as a reference for [`classify_address`].
    fn hostname_reference(bytes: &[u8]) -> bool {
        if bytes.is_empty() || bytes.len() > 253 {
            return false;
        }
        let mut label_len = 0usize;
        let mut label_all_digits = true;
        let mut prev = b'.';
        for &c in bytes {
            if c == b'.' {
                if label_len == 0 || prev == b'-' {
                    return false;
                }
                label_len = 0;
                label_all_digits = true;
            } else {
                if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                    return false;
                }
                if c == b'-' && label_len == 0 {
                    return false;
                }
                label_len += 1;
                if label_len > 63 {
                    return false;
                }
                label_all_digits &= c.is_ascii_digit();
            }
            prev = c;
        }
        label_len > 0 && prev != b'-' && !label_all_digits
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn hostname_check_matches_reference(
            s in "[a-z0-9._-]{0,12}|[a1.-]{0,8}|[a-z0-9.:%_-]{0,12}|([a-z0-9-]{1,64}\\.){1,5}[a-z0-9-]{1,64}|.{0,8}",
        ) {
            prop_assert_eq!(is_hostname(s.as_bytes()), hostname_reference(s.as_bytes()), "{:?}", s);
        }

        /// The fast scan's address reader agrees with finding the token's end and classifying
        /// it with std's IP parsers and the reference host name rules, wherever the token starts
        /// and whatever follows it.
        #[test]
        fn fast_address_matches_classify(
            before in "[0-9a. ]{0,3}",
            s in "[a-z0-9._-]{0,12}|[0-9.]{0,16}|[0-9a-f:.]{0,16}|[a-z0-9-]{1,64}\\.[a-z]{1,5}|.{0,8}",
            after in "|[ ][0-9a-z .]{0,3}|[0-9a-z.:%][0-9a-z .]{0,3}",
        ) {
            let (text, at, end) = embedded(&before, &s, &after);
            let b = text.as_bytes();
            let expected = b.get(at..end).and_then(classify_reference).map(|ip| (ip, end));
            prop_assert_eq!(fast_address(b, at), expected, "{:?}", text);
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
            assert!(is_hostname(ok.as_bytes()), "{ok}");
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
            assert!(!is_hostname(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn span_offsets_fit_in_u16() {
        const { assert!(MAX_CANDIDATE_LEN < u16::MAX as usize) };
    }
}
