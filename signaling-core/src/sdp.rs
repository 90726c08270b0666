//! SDP facts, not a full SDP stack.
//!
//! Signaling needs a handful of facts from a session description: the m-sections (media, port,
//! protocol, mid, direction), the BUNDLE groups, the ICE credentials, whether the description
//! already carries candidates and end-of-candidates, and the ICE options. [`SdpFacts::parse`]
//! extracts exactly those in one pass over the lines; an SDP crate was not used because it would
//! build (and allocate) a full session model, which this job does not need.
//!
//! # What is checked
//!
//! - The input is at most [`DEFAULT_MAX_SDP_LEN`] bytes (or the limit given to
//!   [`SdpFacts::parse_with_limit`]). Every line is at least three bytes long (`x=` and a line
//!   feed), so the number of lines is bounded by the length bound; the number of m-sections is
//!   bounded by [`MAX_MEDIA_SECTIONS`].
//! - Lines end in `\r\n` (what browsers send) or a bare `\n` (what some tools write); the final
//!   line ending is optional. A NUL byte anywhere, or a `\r` that is not followed by `\n`, is an
//!   error.
//! - The first line is `v=0`; every line has the form `<letter>=<value>` with a lowercase letter.
//! - An `m=` line is `<media> <port>[/<count>] <proto> <fmt> [<fmt>...]`.
//! - `a=mid` appears at most once per section, and no two sections share a mid.
//! - `a=ice-ufrag` is 4 to 256 and `a=ice-pwd` 22 to 256 ice-chars (`ALPHA / DIGIT / "+" / "/"`,
//!   RFC 8839 §5.4); each appears at most once per level. Chrome, Firefox and aiortc comply.
//! - Every mid named by a session-level `a=group:BUNDLE` line exists.
//!
//! Everything else (codecs, fingerprints, extmaps, ...) is skipped without being looked at
//! beyond the line syntax above.
//!
//! # Cost
//!
//! The lines are `split` off the text and read in place; only the values kept (media, protocol,
//! mids, ICE credentials, BUNDLE mids) are copied out.

use std::fmt;

/// Default bound on the size of an SDP, in bytes, used by [`SdpFacts::parse`].
///
/// A Chrome offer with audio, video and a data channel is 3 to 6 KB; 64 KiB leaves room for many
/// sections, simulcast and inlined candidates while bounding what a peer can make us scan.
pub const DEFAULT_MAX_SDP_LEN: usize = 64 * 1024;

/// Bound on the number of m-sections in one SDP.
///
/// Browsers cope with a few hundred transceivers at most; anything beyond this is refused with
/// [`SdpError::TooManySections`].
pub const MAX_MEDIA_SECTIONS: usize = 256;

/// Shortest valid `a=ice-ufrag` value (RFC 8839 §5.4).
const UFRAG_MIN: usize = 4;
/// Shortest valid `a=ice-pwd` value (RFC 8839 §5.4).
const PWD_MIN: usize = 22;
/// Longest valid `a=ice-ufrag` / `a=ice-pwd` value (RFC 8839 §5.4).
const ICE_CRED_MAX: usize = 256;

/// Why an SDP was refused.
///
/// Line numbers are 1-based and count lines as separated by `\n`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The SDP is longer than the allowed maximum. Refuse it without looking further.
    #[error("SDP is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Length of the input, in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The SDP is the empty string.
    #[error("SDP is empty")]
    Empty,
    /// The first line is not `v=0`.
    #[error("SDP does not start with v=0")]
    MissingVersion,
    /// A NUL byte occurs in the input.
    #[error("line {line}: NUL byte in SDP")]
    NulByte {
        /// Line holding the NUL byte.
        line: usize,
    },
    /// A `\r` that is not immediately followed by `\n`.
    #[error("line {line}: carriage return not followed by line feed")]
    BareCarriageReturn {
        /// Line holding the stray `\r`.
        line: usize,
    },
    /// A line is not of the form `<letter>=<value>` (this includes empty lines).
    #[error("line {line}: not a <letter>=<value> line")]
    MalformedLine {
        /// The offending line.
        line: usize,
    },
    /// An `m=` line does not have the form `<media> <port>[/<n>] <proto> <fmt>...`.
    #[error("line {line}: invalid m= line: {cause}")]
    InvalidMediaLine {
        /// The offending line.
        line: usize,
        /// What is wrong with it.
        cause: MediaLineError,
    },
    /// More m-sections than [`MAX_MEDIA_SECTIONS`].
    #[error("line {line}: more than {max} m-sections")]
    TooManySections {
        /// The `m=` line that exceeded the bound.
        line: usize,
        /// The bound in force.
        max: usize,
    },
    /// An `a=mid` value is empty or contains whitespace.
    #[error("line {line}: invalid a=mid value")]
    InvalidMid {
        /// The offending line.
        line: usize,
    },
    /// A second `a=mid` in the same m-section.
    #[error("line {line}: second a=mid in one m-section")]
    DuplicateMid {
        /// The second `a=mid` line.
        line: usize,
    },
    /// Two m-sections carry the same mid.
    #[error("line {line}: mid already used by an earlier m-section")]
    MidReused {
        /// The `a=mid` line of the later section.
        line: usize,
    },
    /// An `a=ice-ufrag` value is not 4 to 256 ice-chars.
    #[error("line {line}: a=ice-ufrag must be 4 to 256 characters of ALPHA / DIGIT / + / /")]
    InvalidIceUfrag {
        /// The offending line.
        line: usize,
    },
    /// An `a=ice-pwd` value is not 22 to 256 ice-chars.
    #[error("line {line}: a=ice-pwd must be 22 to 256 characters of ALPHA / DIGIT / + / /")]
    InvalidIcePwd {
        /// The offending line.
        line: usize,
    },
    /// A second `a=ice-ufrag` or `a=ice-pwd` at the same level (session or one m-section).
    #[error("line {line}: duplicate ICE credential attribute")]
    DuplicateIceCredential {
        /// The second occurrence.
        line: usize,
    },
    /// A session-level `a=group:BUNDLE` names a mid that no m-section has.
    #[error("line {line}: BUNDLE group names a mid that no m-section has")]
    UnknownBundleMid {
        /// The `a=group:BUNDLE` line.
        line: usize,
    },
    /// The BUNDLE groups name more mids, in total, than [`MAX_MEDIA_SECTIONS`].
    #[error("line {line}: BUNDLE groups name more than {max} mids")]
    BundleTooLarge {
        /// The `a=group:BUNDLE` line that exceeded the bound.
        line: usize,
        /// The bound in force.
        max: usize,
    },
}

impl SdpError {
    /// The 1-based line the error refers to, if it refers to one.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::TooLong { .. } | Self::Empty => None,
            Self::MissingVersion => Some(1),
            Self::NulByte { line }
            | Self::BareCarriageReturn { line }
            | Self::MalformedLine { line }
            | Self::InvalidMediaLine { line, .. }
            | Self::TooManySections { line, .. }
            | Self::InvalidMid { line }
            | Self::DuplicateMid { line }
            | Self::MidReused { line }
            | Self::InvalidIceUfrag { line }
            | Self::InvalidIcePwd { line }
            | Self::DuplicateIceCredential { line }
            | Self::UnknownBundleMid { line }
            | Self::BundleTooLarge { line, .. } => Some(*line),
        }
    }
}

/// What is wrong with an `m=` line.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MediaLineError {
    /// The media token is missing or empty.
    #[error("missing media type")]
    MissingMedia,
    /// The port field is missing.
    #[error("missing port")]
    MissingPort,
    /// The port is not a decimal number in 0..=65535.
    #[error("port is not a number in 0..=65535")]
    InvalidPort,
    /// The `/<n>` port count is not a positive decimal number.
    #[error("invalid port count")]
    InvalidPortCount,
    /// The protocol field is missing.
    #[error("missing protocol")]
    MissingProtocol,
    /// No format follows the protocol.
    #[error("missing format")]
    MissingFormat,
    /// Two spaces in a row, or a leading or trailing space.
    #[error("empty field")]
    EmptyField,
}

/// Media direction attribute of an m-section (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`.
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name, e.g. `"sendrecv"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    /// Reads an attribute name (`"sendrecv"`, ...); `None` for anything else.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::SendRecv,
            Self::SendOnly,
            Self::RecvOnly,
            Self::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str() == name)
    }

    /// The direction seen from the other peer (`sendonly` ↔ `recvonly`).
    #[must_use]
    pub const fn reversed(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            other => other,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One m-section of an SDP: the facts negotiation needs about it.
///
/// Values that may be given at session level (ICE credentials, direction) fall back to the
/// session-level value when the section has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSection {
    media: String,
    port: u16,
    protocol: String,
    mid: Option<String>,
    ice_ufrag: Option<String>,
    ice_pwd: Option<String>,
    direction: Option<Direction>,
    end_of_candidates: bool,
    bundle_only: bool,
    ice_trickle: bool,
    candidate_count: usize,
}

impl MediaSection {
    /// The media token of the `m=` line: `"audio"`, `"video"`, `"application"` or another token.
    #[must_use]
    pub fn media(&self) -> &str {
        &self.media
    }

    /// The port of the `m=` line; 0 means the section is rejected or disabled (unless it is
    /// `a=bundle-only`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the port is 0 (a rejected section, or a `bundle-only` one in an offer).
    #[must_use]
    pub fn is_port_zero(&self) -> bool {
        self.port == 0
    }

    /// The protocol of the `m=` line, e.g. `"UDP/TLS/RTP/SAVPF"` or `"UDP/DTLS/SCTP"`.
    #[must_use]
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The section's `a=mid`, if it has one.
    #[must_use]
    pub fn mid(&self) -> Option<&str> {
        self.mid.as_deref()
    }

    /// The section's `a=ice-ufrag`, falling back to the session-level one.
    #[must_use]
    pub fn ice_ufrag(&self) -> Option<&str> {
        self.ice_ufrag.as_deref()
    }

    /// The section's `a=ice-pwd`, falling back to the session-level one.
    #[must_use]
    pub fn ice_pwd(&self) -> Option<&str> {
        self.ice_pwd.as_deref()
    }

    /// The section's direction attribute, falling back to the session-level one. `None` when
    /// neither level has one (RFC 8866 then implies `sendrecv`).
    #[must_use]
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// Whether the section carries `a=end-of-candidates`.
    #[must_use]
    pub fn end_of_candidates(&self) -> bool {
        self.end_of_candidates
    }

    /// Whether the section carries `a=bundle-only`.
    #[must_use]
    pub fn bundle_only(&self) -> bool {
        self.bundle_only
    }

    /// Number of `a=candidate` lines in the section.
    #[must_use]
    pub fn candidate_count(&self) -> usize {
        self.candidate_count
    }

    /// Whether the section carries `a=ice-options` with the `trickle` option.
    #[must_use]
    pub fn ice_trickle(&self) -> bool {
        self.ice_trickle
    }
}

/// The facts of an SDP that signaling and negotiation need.
///
/// ```
/// use signaling_core::sdp::SdpFacts;
///
/// let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
///            a=group:BUNDLE 0\r\n\
///            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
///            a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=mid:0\r\n";
/// let facts = SdpFacts::parse(sdp)?;
/// assert_eq!(facts.sections().len(), 1);
/// assert_eq!(facts.default_mid(None), Some("0"));
/// assert_eq!(facts.ice_credentials(), Some(("abcd", "abcdefghijklmnopqrstuv")));
/// # Ok::<(), signaling_core::sdp::SdpError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdpFacts {
    sections: Vec<MediaSection>,
    bundle_groups: Vec<Vec<String>>,
    session_ice_ufrag: Option<String>,
    session_ice_pwd: Option<String>,
    session_end_of_candidates: bool,
    ice_lite: bool,
    ice_trickle: bool,
    candidate_count: usize,
}

impl SdpFacts {
    /// Parses `sdp` with the [`DEFAULT_MAX_SDP_LEN`] bound.
    ///
    /// # Errors
    ///
    /// Any [`SdpError`]: see the module documentation for what is checked.
    pub fn parse(sdp: &str) -> Result<SdpFacts, SdpError> {
        Self::parse_with_limit(sdp, DEFAULT_MAX_SDP_LEN)
    }

    /// Parses `sdp`, refusing it with [`SdpError::TooLong`] if it is longer than `max_len` bytes.
    ///
    /// # Errors
    ///
    /// Any [`SdpError`]: see the module documentation for what is checked.
    pub fn parse_with_limit(sdp: &str, max_len: usize) -> Result<SdpFacts, SdpError> {
        if sdp.len() > max_len {
            return Err(SdpError::TooLong {
                len: sdp.len(),
                max: max_len,
            });
        }
        if sdp.is_empty() {
            return Err(SdpError::Empty);
        }
        // A NUL or bare `\r` anywhere is reported before any other problem.
        check_bytes(sdp)?;
        Scanner::default().run(sdp)
    }

    /// The m-sections, in m-line order.
    #[must_use]
    pub fn sections(&self) -> &[MediaSection] {
        &self.sections
    }

    /// Every session-level `a=group:BUNDLE` line, in order, each as its mids in order.
    ///
    /// ```
    /// use signaling_core::sdp::SdpFacts;
    ///
    /// let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE a v\r\n\
    ///            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\n\
    ///            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\n";
    /// let facts = SdpFacts::parse(sdp)?;
    /// assert_eq!(facts.bundle_groups(), [vec!["a", "v"]]);
    /// # Ok::<(), signaling_core::sdp::SdpError>(())
    /// ```
    #[must_use]
    pub fn bundle_groups(&self) -> &[Vec<String>] {
        &self.bundle_groups
    }

    /// The session-level `a=ice-ufrag`.
    #[must_use]
    pub fn session_ice_ufrag(&self) -> Option<&str> {
        self.session_ice_ufrag.as_deref()
    }

    /// The session-level `a=ice-pwd`.
    #[must_use]
    pub fn session_ice_pwd(&self) -> Option<&str> {
        self.session_ice_pwd.as_deref()
    }

    /// The ICE credentials `(ufrag, pwd)` of the first m-section that has both (its own or the
    /// session-level ones); with no m-sections, the session-level pair.
    #[must_use]
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        self.sections
            .iter()
            .find_map(|s| s.ice_ufrag().zip(s.ice_pwd()))
            .or_else(|| self.session_ice_ufrag().zip(self.session_ice_pwd()))
    }

    /// The mid a candidate without `sdpMid` / `sdpMLineIndex` belongs to.
    ///
    /// The first mid of the first non-empty BUNDLE group, if any; else, when `ufrag` is given,
    /// the mid of the first section whose ufrag matches; else the first section's mid.
    #[must_use]
    pub fn default_mid(&self, ufrag: Option<&str>) -> Option<&str> {
        if let Some(mid) = self.bundle_groups.iter().find_map(|g| g.first()) {
            return Some(mid);
        }
        if let Some(ufrag) = ufrag {
            if let Some(section) = self
                .sections
                .iter()
                .find(|s| s.mid().is_some() && s.ice_ufrag() == Some(ufrag))
            {
                return section.mid();
            }
        }
        self.sections.first().and_then(MediaSection::mid)
    }

    /// The mid of the m-section at `index` (the `sdpMLineIndex`).
    #[must_use]
    pub fn mid_at(&self, index: usize) -> Option<&str> {
        self.sections.get(index).and_then(MediaSection::mid)
    }

    /// The index (`sdpMLineIndex`) of the m-section with this mid.
    #[must_use]
    pub fn index_of_mid(&self, mid: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.mid() == Some(mid))
    }

    /// Whether gathering is complete as far as this SDP says: a session-level
    /// `a=end-of-candidates`, or one in every m-section whose port is not 0 (at least one).
    #[must_use]
    pub fn end_of_candidates(&self) -> bool {
        if self.session_end_of_candidates {
            return true;
        }
        let mut live = self.sections.iter().filter(|s| s.port() != 0).peekable();
        live.peek().is_some() && live.all(MediaSection::end_of_candidates)
    }

    /// Number of `a=candidate` lines in the whole SDP (non-trickle SDPs carry their candidates).
    #[must_use]
    pub fn candidate_count(&self) -> usize {
        self.candidate_count
    }

    /// Whether the session carries `a=ice-lite`.
    #[must_use]
    pub fn ice_lite(&self) -> bool {
        self.ice_lite
    }

    /// Whether `a=ice-options` with the `trickle` option is present, at session level or in any
    /// m-section.
    #[must_use]
    pub fn ice_trickle(&self) -> bool {
        self.ice_trickle
    }
}

/// Refuses a NUL byte, or a `\r` not followed by `\n`, naming its line.
fn check_bytes(sdp: &str) -> Result<(), SdpError> {
    let bytes = sdp.as_bytes();
    if let Some(pos) = memchr::memchr(0, bytes) {
        return Err(SdpError::NulByte {
            line: line_of(sdp, pos),
        });
    }
    match memchr::memchr_iter(b'\r', bytes).find(|&pos| bytes.get(pos + 1) != Some(&b'\n')) {
        Some(pos) => Err(SdpError::BareCarriageReturn {
            line: line_of(sdp, pos),
        }),
        None => Ok(()),
    }
}

/// The lines of `sdp` without their `\n` or `\r\n` ending (the last ending is optional), as
/// `str::lines` gives them, with the line feeds found by `memchr` (an SDP has a hundred short
/// lines; a char search costs more per line).
pub(crate) fn lines(sdp: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', sdp.as_bytes()).chain(
        // The last line, when the text does not end with a line feed.
        (!sdp.ends_with('\n')).then_some(sdp.len()),
    );
    ends.map(move |end| {
        // `\n` is ASCII: `start` and `end` are char boundaries.
        let line = sdp.get(start..end).unwrap_or_default();
        start = end + 1;
        line.strip_suffix('\r').unwrap_or(line)
    })
}

/// 1-based line number of byte offset `pos`.
fn line_of(sdp: &str, pos: usize) -> usize {
    1 + sdp
        .as_bytes()
        .iter()
        .take(pos)
        .filter(|&&b| b == b'\n')
        .count()
}

/// Whether `ufrag` is a valid `a=ice-ufrag` value: 4 to 256 ice-chars (RFC 8839 §5.4).
pub(crate) fn is_valid_ufrag(ufrag: &str) -> bool {
    (UFRAG_MIN..=ICE_CRED_MAX).contains(&ufrag.len()) && is_ice_chars(ufrag)
}

/// Whether `pwd` is a valid `a=ice-pwd` value: 22 to 256 ice-chars (RFC 8839 §5.4).
pub(crate) fn is_valid_pwd(pwd: &str) -> bool {
    (PWD_MIN..=ICE_CRED_MAX).contains(&pwd.len()) && is_ice_chars(pwd)
}

/// Whether every byte is an ice-char (`ALPHA / DIGIT / "+" / "/"`).
fn is_ice_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The attributes the scanner looks at.
enum Attr<'a> {
    Candidate,
    Mid(&'a str),
    IceUfrag(&'a str),
    IcePwd(&'a str),
    IceOptions(&'a str),
    IceLite,
    Direction(Direction),
    EndOfCandidates,
    BundleOnly,
    Group(&'a str),
    Other,
}

impl<'a> Attr<'a> {
    /// Classifies the value of an `a=` line (the text after `a=`).
    fn classify(value: &'a str) -> Self {
        let (name, arg) = match value.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (value, None),
        };
        match (name, arg) {
            ("candidate", Some(_)) => Self::Candidate,
            ("mid", Some(mid)) => Self::Mid(mid),
            ("ice-ufrag", Some(ufrag)) => Self::IceUfrag(ufrag),
            ("ice-pwd", Some(pwd)) => Self::IcePwd(pwd),
            ("ice-options", Some(options)) => Self::IceOptions(options),
            ("group", Some(group)) => Self::Group(group),
            ("ice-lite", None) => Self::IceLite,
            ("end-of-candidates", None) => Self::EndOfCandidates,
            ("bundle-only", None) => Self::BundleOnly,
            (name, None) => Direction::parse(name).map_or(Self::Other, Self::Direction),
            _ => Self::Other,
        }
    }
}

/// The single-pass line scanner: the facts so far, and what the scan needs besides them.
#[derive(Default)]
struct Scanner {
    facts: SdpFacts,
    session_direction: Option<Direction>,
    /// Whether the current section has its own `a=ice-ufrag` / `a=ice-pwd` (a second one is an
    /// error; an inherited session-level one is not).
    own_ufrag: bool,
    own_pwd: bool,
    /// The line of each BUNDLE group, for [`SdpError::UnknownBundleMid`].
    group_lines: Vec<usize>,
}

impl Scanner {
    /// Scans the lines (the caller has checked the bytes).
    fn run(mut self, sdp: &str) -> Result<SdpFacts, SdpError> {
        for (i, line) in lines(sdp).enumerate() {
            let line_no = i + 1;
            if line_no == 1 {
                if line != "v=0" {
                    return Err(SdpError::MissingVersion);
                }
                continue;
            }
            let (kind, value) = match line.split_once('=') {
                Some((kind, value))
                    if kind.len() == 1 && kind.bytes().all(|b| b.is_ascii_lowercase()) =>
                {
                    (kind, value)
                }
                _ => return Err(SdpError::MalformedLine { line: line_no }),
            };
            match kind {
                "m" => self.media_line(value, line_no)?,
                "a" => self.attribute(value, line_no)?,
                _ => {}
            }
        }
        self.finish()
    }

    /// The section being scanned (`None` at session level).
    fn section(&mut self) -> Option<&mut MediaSection> {
        self.facts.sections.last_mut()
    }

    fn media_line(&mut self, value: &str, line: usize) -> Result<(), SdpError> {
        if self.facts.sections.len() >= MAX_MEDIA_SECTIONS {
            return Err(SdpError::TooManySections {
                line,
                max: MAX_MEDIA_SECTIONS,
            });
        }
        let MediaLine {
            media,
            port,
            protocol,
        } = MediaLine::parse(value).map_err(|cause| SdpError::InvalidMediaLine { line, cause })?;
        self.own_ufrag = false;
        self.own_pwd = false;
        self.facts.sections.push(MediaSection {
            media: media.to_owned(),
            port,
            protocol: protocol.to_owned(),
            mid: None,
            ice_ufrag: self.facts.session_ice_ufrag.clone(),
            ice_pwd: self.facts.session_ice_pwd.clone(),
            direction: self.session_direction,
            end_of_candidates: false,
            bundle_only: false,
            ice_trickle: false,
            candidate_count: 0,
        });
        Ok(())
    }

    fn attribute(&mut self, value: &str, line: usize) -> Result<(), SdpError> {
        match Attr::classify(value) {
            Attr::Candidate => {
                self.facts.candidate_count += 1;
                if let Some(s) = self.section() {
                    s.candidate_count += 1;
                }
            }
            Attr::Mid(mid) => self.mid(mid, line)?,
            Attr::IceUfrag(ufrag) => {
                if !is_valid_ufrag(ufrag) {
                    return Err(SdpError::InvalidIceUfrag { line });
                }
                self.credential(false, ufrag, line)?;
            }
            Attr::IcePwd(pwd) => {
                if !is_valid_pwd(pwd) {
                    return Err(SdpError::InvalidIcePwd { line });
                }
                self.credential(true, pwd, line)?;
            }
            Attr::IceOptions(options) => {
                if options.split(' ').any(|o| o == "trickle") {
                    self.facts.ice_trickle = true;
                    if let Some(s) = self.section() {
                        s.ice_trickle = true;
                    }
                }
            }
            Attr::Direction(d) => match self.facts.sections.last_mut() {
                Some(s) => s.direction = Some(d),
                None => self.session_direction = Some(d),
            },
            Attr::EndOfCandidates => match self.facts.sections.last_mut() {
                Some(s) => s.end_of_candidates = true,
                None => self.facts.session_end_of_candidates = true,
            },
            Attr::BundleOnly => {
                if let Some(s) = self.section() {
                    s.bundle_only = true;
                }
            }
            Attr::IceLite => {
                if self.facts.sections.is_empty() {
                    self.facts.ice_lite = true;
                }
            }
            Attr::Group(group) => self.group(group, line)?,
            Attr::Other => {}
        }
        Ok(())
    }

    /// Sets the current level's `a=ice-pwd` (`pwd`) or `a=ice-ufrag`; each may appear once per
    /// level (a section's own value replaces the inherited session-level one).
    fn credential(&mut self, pwd: bool, value: &str, line: usize) -> Result<(), SdpError> {
        let in_section = !self.facts.sections.is_empty();
        let duplicate = match (in_section, pwd) {
            (true, false) => std::mem::replace(&mut self.own_ufrag, true),
            (true, true) => std::mem::replace(&mut self.own_pwd, true),
            (false, false) => self.facts.session_ice_ufrag.is_some(),
            (false, true) => self.facts.session_ice_pwd.is_some(),
        };
        if duplicate {
            return Err(SdpError::DuplicateIceCredential { line });
        }
        let slot = match (self.facts.sections.last_mut(), pwd) {
            (Some(s), false) => &mut s.ice_ufrag,
            (Some(s), true) => &mut s.ice_pwd,
            (None, false) => &mut self.facts.session_ice_ufrag,
            (None, true) => &mut self.facts.session_ice_pwd,
        };
        *slot = Some(value.to_owned());
        Ok(())
    }

    fn mid(&mut self, mid: &str, line: usize) -> Result<(), SdpError> {
        if mid.is_empty() || mid.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(SdpError::InvalidMid { line });
        }
        let Some((current, earlier)) = self.facts.sections.split_last_mut() else {
            // A session-level a=mid means nothing; skip it.
            return Ok(());
        };
        if current.mid.is_some() {
            return Err(SdpError::DuplicateMid { line });
        }
        if earlier.iter().any(|s| s.mid() == Some(mid)) {
            return Err(SdpError::MidReused { line });
        }
        current.mid = Some(mid.to_owned());
        Ok(())
    }

    fn group(&mut self, group: &str, line: usize) -> Result<(), SdpError> {
        if !self.facts.sections.is_empty() {
            // Groups are session-level; a media-level one is ignored.
            return Ok(());
        }
        let mut words = group.split(' ');
        if words.next() != Some("BUNDLE") {
            return Ok(());
        }
        let mids: Vec<String> = words.filter(|w| !w.is_empty()).map(str::to_owned).collect();
        let bundled: usize = self.facts.bundle_groups.iter().map(Vec::len).sum();
        if bundled + mids.len() > MAX_MEDIA_SECTIONS {
            return Err(SdpError::BundleTooLarge {
                line,
                max: MAX_MEDIA_SECTIONS,
            });
        }
        self.facts.bundle_groups.push(mids);
        self.group_lines.push(line);
        Ok(())
    }

    fn finish(self) -> Result<SdpFacts, SdpError> {
        for (group, &line) in self.facts.bundle_groups.iter().zip(&self.group_lines) {
            if group
                .iter()
                .any(|mid| self.facts.index_of_mid(mid).is_none())
            {
                return Err(SdpError::UnknownBundleMid { line });
            }
        }
        Ok(self.facts)
    }
}

/// The fields of an `m=` line value (`<media> <port>[/<count>] <proto> <fmt> [<fmt>...]`)
/// that the scanners keep.
pub(crate) struct MediaLine<'a> {
    pub(crate) media: &'a str,
    pub(crate) port: u16,
    pub(crate) protocol: &'a str,
}

impl<'a> MediaLine<'a> {
    /// Checks the value of an `m=` line (the text after `m=`).
    pub(crate) fn parse(value: &'a str) -> Result<Self, MediaLineError> {
        let mut fields = value.splitn(4, ' ');
        let media = fields.next().unwrap_or_default();
        if media.is_empty() {
            return Err(MediaLineError::MissingMedia);
        }
        let port_field = fields.next().ok_or(MediaLineError::MissingPort)?;
        let (port, count) = match port_field.split_once('/') {
            Some((port, count)) => (port, Some(count)),
            None => (port_field, None),
        };
        let port = parse_decimal_u16(port).ok_or(MediaLineError::InvalidPort)?;
        if let Some(count) = count {
            match parse_decimal_u16(count) {
                Some(n) if n > 0 => {}
                _ => return Err(MediaLineError::InvalidPortCount),
            }
        }
        let protocol = fields.next().ok_or(MediaLineError::MissingProtocol)?;
        if protocol.is_empty() {
            return Err(MediaLineError::EmptyField);
        }
        // The formats: what follows the space after the protocol, each separated by one space.
        let formats = fields.next().ok_or(MediaLineError::MissingFormat)?;
        if formats.split(' ').any(str::is_empty) {
            return Err(MediaLineError::EmptyField);
        }
        Ok(Self {
            media,
            port,
            protocol,
        })
    }
}

/// Parses 1 to 5 ASCII digits into a `u16`, refusing signs, spaces and overflow.
fn parse_decimal_u16(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(line_of("v=0\nx", 4), 2);
        assert_eq!(line_of("v=0", 0), 1);
    }

    #[test]
    fn ice_chars() {
        assert!(is_ice_chars("aZ09+/"));
        assert!(!is_ice_chars("a-b"));
    }

    #[test]
    fn decimal_u16() {
        assert_eq!(parse_decimal_u16("65535"), Some(65535));
        assert_eq!(parse_decimal_u16("65536"), None);
        assert_eq!(parse_decimal_u16("+1"), None);
        assert_eq!(parse_decimal_u16(""), None);
    }
}
