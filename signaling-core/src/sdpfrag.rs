//! SDP fragments for Trickle ICE and ICE restarts: the `application/trickle-ice-sdpfrag` body
//! of RFC 8840, as WHIP (RFC 9725 §4.3) and WHEP carry it in `PATCH` requests and in the
//! `200 OK` that answers an ICE restart.
//!
//! ```text
//! a=ice-options:trickle ice2          <- session level: ICE options, credentials, BUNDLE
//! a=group:BUNDLE 0 1
//! m=audio 9 UDP/TLS/RTP/SAVPF 111     <- a media section: the m= line of the offer, echoed
//! a=mid:0
//! a=ice-ufrag:EsAw
//! a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
//! a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw
//! a=end-of-candidates
//! ```
//!
//! [`SdpFrag::parse`] reads such a body and [`SdpFrag`]'s `Display` writes one (CRLF line
//! endings, in a fixed order; see [Writing](#writing)). Candidates are read by the crate's one
//! candidate parser, [`Candidate::parse`]. Sans-IO: the HTTP layer hands the body in and
//! writes the text out.
//!
//! # What is accepted
//!
//! The grammar of RFC 8840 §9.2: session-level attributes, then zero or more media
//! descriptions, each an `m=` line followed by its attributes.
//!
//! - **Session level** (before the first `m=`): `a=ice-ufrag`, `a=ice-pwd`, `a=ice-options`,
//!   `a=ice-lite`, `a=group:BUNDLE <mid>...` and `a=end-of-candidates`.
//! - **Media level**: `a=mid`, `a=ice-ufrag`, `a=ice-pwd`, `a=ice-options`, `a=candidate` and
//!   `a=end-of-candidates`. The `m=` line is checked (`<media> <port>[/<n>] <proto> <fmt>...`)
//!   and kept as written, so that an answer can echo it.
//! - A mid is any RFC 8866 token (RFC 5888): `0`, `audio`, `v1` are all mids. Nothing here
//!   assumes it is a number (some servers do; a client that names its sections `audio` and
//!   `video` then fails with them).
//! - `a=ice-ufrag` is 4 to 256 and `a=ice-pwd` 22 to 256 ice-chars (RFC 8839 §5.4), as in
//!   [`sdp`](crate::sdp); `a=ice-options` is one or more tokens separated by single spaces.
//! - Candidates are RFC 8839 / RFC 6544 candidates with any extensions (Chrome's
//!   `generation`, `ufrag`, `network-id`, `network-cost`; TCP `tcptype`; mDNS `*.local`
//!   addresses). A candidate that parses but uses a transport or address the server cannot use
//!   is not an error here: WHIP and WHEP tell the session to discard such a candidate silently
//!   and carry on, which is the session's business.
//!
//! # Lenient, and why
//!
//! - Lines end in CRLF (RFC 8840) or a bare LF (what some clients' string concatenation
//!   gives); the final line ending is optional; empty lines are skipped. None of these changes
//!   what a body means.
//! - Other attributes (`a=ice-pacing`, `a=remote-candidates`, extensions) are not errors:
//!   they are kept as written, at their level ([`SdpFrag::attributes`],
//!   [`FragMedia::attributes`]), and written back after the known ones. Other line types
//!   (`v=`, `o=`, `s=`, `t=`, `c=`, ...) are skipped, so a client that sends more of its SDP
//!   than a fragment needs is still understood.
//! - A media section without `a=mid` is accepted ([`FragMedia::mid`] is `None`): RFC 8840
//!   wants one, but with BUNDLE there is a single transport and its candidates still apply.
//! - A body with no lines at all is a valid, empty fragment (the grammar's repetitions may all
//!   be empty); [`SdpFrag::is_empty`] tells the caller, who decides what an empty `PATCH`
//!   means.
//! - `a=group:BUNDLE` may name mids that the fragment has no section for: WHEP's examples name
//!   both bundled mids and carry only the first section, whose transport the others share.
//! - `a=ice-lite` and `a=ice-options` in a media section are recorded in that section's
//!   [`IceParams`] (RFC 8839 defines `ice-lite` at session level only); a repeated
//!   `a=ice-lite` or `a=end-of-candidates` changes nothing.
//!
//! # What is refused
//!
//! Each with its [`SdpFragError`], naming the 1-based line:
//!
//! - a body over [`FragLimits::max_len`] bytes, checked before anything else; a body that is
//!   not UTF-8 ([`SdpFrag::parse_bytes`]);
//! - a body that starts (after whitespace) with `{` or `[`: JSON, such as the browser's
//!   `RTCIceCandidate.toJSON()` object that a client written for a WebSocket dialect sends.
//!   [`SdpFragError::LooksLikeJson`] says so plainly, instead of "line 1 is malformed";
//! - a control byte (other than tab) in a line, including a CR not followed by LF;
//! - a line that is not `<letter>=<value>`; a known attribute with an invalid value
//!   ([`ValueError`]); a candidate line that [`Candidate::parse`] refuses;
//! - `a=mid` or `a=candidate` before the first `m=` (they only mean something in a media
//!   section);
//! - a second `a=ice-ufrag`, `a=ice-pwd`, `a=ice-options` or `a=mid` at one level, a second
//!   `a=group:BUNDLE`, or two sections with one mid;
//! - more lines, media sections or candidates than [`FragLimits`] allows.
//!
//! # Bounds
//!
//! [`FragLimits`]: 16 KiB per body, 256 lines, 16 media sections and 64 candidates by
//! default. Every line is checked once; each candidate is at most
//! [`MAX_CANDIDATE_LEN`](crate::candidate::MAX_CANDIDATE_LEN) bytes. Unknown attributes kept
//! are bounded by the line limit.
//!
//! # Writing
//!
//! `Display` writes, each line ending in CRLF: `a=ice-lite`, `a=ice-options`, `a=ice-ufrag`,
//! `a=ice-pwd`, `a=group:BUNDLE`, the other session-level attributes, `a=end-of-candidates`;
//! then per media section the `m=` line, `a=mid`, its `ice-lite` / `ice-options` / `ice-ufrag` /
//! `ice-pwd`, its other attributes, its candidates and `a=end-of-candidates`. That is the order
//! of the WHIP and WHEP examples, so their bodies write back byte for byte, and whatever is
//! written parses back to an equal value. A server answering an ICE restart builds its body
//! with [`SdpFrag::restart_answer`].

use std::fmt;

use crate::candidate::{is_token, Candidate, CandidateError};
use crate::config::InvalidSetting;
use crate::sdp::{is_valid_pwd, is_valid_ufrag, lines, MediaLine, MediaLineError};

/// The media type of an SDP fragment body (RFC 8840): the `Content-Type` of a WHIP/WHEP
/// `PATCH` and of the `200 OK` answering an ICE restart.
pub const MEDIA_TYPE: &str = "application/trickle-ice-sdpfrag";

/// Bounds on what [`SdpFrag::parse_with`] reads. Every bound is documented with its default.
///
/// The defaults fit what WHIP and WHEP clients send (one media section, a few to a few dozen
/// candidates) with room to spare, and keep what one request can make a server parse and hold
/// to a few kilobytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FragLimits {
    /// Largest body, in bytes. Default: 16 KiB (a trickle body with 64 browser candidates is
    /// about 8 KiB).
    pub max_len: usize,
    /// Lines, counting empty and skipped ones. Default: 256.
    pub max_lines: usize,
    /// Media sections. Default: 16 (with BUNDLE, clients send one).
    pub max_media: usize,
    /// Candidates, over all media sections. Default: 64.
    pub max_candidates: usize,
}

impl Default for FragLimits {
    fn default() -> Self {
        Self {
            max_len: 16 * 1024,
            max_lines: 256,
            max_media: 16,
            max_candidates: 64,
        }
    }
}

impl FragLimits {
    /// Refuses limits that would refuse every non-empty body: a `max_len` or `max_lines` of 0.
    /// (`max_media` or `max_candidates` of 0 are allowed: they accept only session-level
    /// fragments, or only fragments without candidates.)
    ///
    /// # Errors
    ///
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        InvalidSetting::check_nonzero("max_len", self.max_len as u64, "no body would be accepted")?;
        InvalidSetting::check_nonzero(
            "max_lines",
            self.max_lines as u64,
            "no body would be accepted",
        )
    }
}

/// Why an SDP fragment was refused.
///
/// Every variant means the peer sent a malformed fragment: answer `400 Bad Request` (or
/// `413 Content Too Large` for [`SdpFragError::TooLarge`]) with the message, and do not apply
/// any part of the body. Lines are 1-based and counted as separated by line feeds.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpFragError {
    /// The body is longer than [`FragLimits::max_len`]; nothing else was looked at.
    #[error("SDP fragment is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Length of the body, in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The body is not UTF-8.
    #[error("SDP fragment is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first byte that is not valid UTF-8.
        offset: usize,
    },
    /// The body starts with `{` or `[`: JSON (such as a browser's `RTCIceCandidate` object),
    /// not SDP lines.
    #[error(
        "body is JSON, not an SDP fragment: send application/trickle-ice-sdpfrag lines \
         (a=ice-ufrag:..., m=..., a=mid:..., a=candidate:...)"
    )]
    LooksLikeJson,
    /// A control byte other than tab (a NUL, an escape, a CR not followed by LF, ...) appears in
    /// a line.
    #[error("line {line}: control byte 0x{byte:02x}")]
    ControlCharacter {
        /// The line holding it.
        line: usize,
        /// The byte.
        byte: u8,
    },
    /// More lines than [`FragLimits::max_lines`].
    #[error("more than {max} lines")]
    TooManyLines {
        /// The limit in force.
        max: usize,
    },
    /// A non-empty line is not `<letter>=<value>` with a lowercase letter.
    #[error("line {line}: not a <letter>=<value> SDP line")]
    MalformedLine {
        /// The line.
        line: usize,
    },
    /// An `m=` line or a known attribute has an invalid value.
    #[error("line {line}: {error}")]
    InvalidValue {
        /// The line.
        line: usize,
        /// What is wrong with the value.
        error: ValueError,
    },
    /// An `a=candidate` line that [`Candidate::parse`] refuses.
    #[error("line {line}: invalid candidate: {source}")]
    BadCandidate {
        /// The line.
        line: usize,
        /// Why the candidate was refused; offsets count from the start of `candidate:`.
        source: CandidateError,
    },
    /// `a=mid` or `a=candidate` before the first `m=` line.
    #[error("line {line}: a={name} outside a media section (it must follow an m= line)")]
    AttributeBeforeMedia {
        /// The line.
        line: usize,
        /// `"mid"` or `"candidate"`.
        name: &'static str,
    },
    /// An attribute that may appear once per level appears again (`ice-ufrag`, `ice-pwd`,
    /// `ice-options`, `mid`), or a second `group:BUNDLE`.
    #[error("line {line}: second a={name} at one level")]
    DuplicateAttribute {
        /// The line of the second one.
        line: usize,
        /// The attribute's name.
        name: &'static str,
    },
    /// Two media sections carry the same mid.
    #[error("line {line}: mid already used by an earlier media section")]
    MidReused {
        /// The `a=mid` line of the later section.
        line: usize,
    },
    /// More media sections than [`FragLimits::max_media`].
    #[error("line {line}: more than {max} media sections")]
    TooManyMedia {
        /// The `m=` line past the limit.
        line: usize,
        /// The limit in force.
        max: usize,
    },
    /// More candidates than [`FragLimits::max_candidates`].
    #[error("line {line}: more than {max} candidates")]
    TooManyCandidates {
        /// The candidate line past the limit.
        line: usize,
        /// The limit in force.
        max: usize,
    },
}

impl SdpFragError {
    /// The 1-based line the error refers to, if it refers to one.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::TooLarge { .. }
            | Self::NotUtf8 { .. }
            | Self::LooksLikeJson
            | Self::TooManyLines { .. } => None,
            Self::ControlCharacter { line, .. }
            | Self::MalformedLine { line }
            | Self::InvalidValue { line, .. }
            | Self::BadCandidate { line, .. }
            | Self::AttributeBeforeMedia { line, .. }
            | Self::DuplicateAttribute { line, .. }
            | Self::MidReused { line }
            | Self::TooManyMedia { line, .. }
            | Self::TooManyCandidates { line, .. } => Some(*line),
        }
    }
}

/// Why a value cannot go into a fragment: from [`SdpFragError::InvalidValue`] when parsing,
/// and from the constructors when building one.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// An `ice-ufrag` that is not 4 to 256 ice-chars (letters, digits, `+`, `/`).
    #[error("a=ice-ufrag must be 4 to 256 characters of ALPHA / DIGIT / + / /")]
    Ufrag,
    /// An `ice-pwd` that is not 22 to 256 ice-chars.
    #[error("a=ice-pwd must be 22 to 256 characters of ALPHA / DIGIT / + / /")]
    Pwd,
    /// An `ice-options` value that is not tokens separated by single spaces.
    #[error("a=ice-options must be tokens separated by single spaces")]
    IceOptions,
    /// A mid that is not a token (RFC 5888 `identification-tag`).
    #[error("a mid must be a token (letters, digits and !#$%&'*+-.^_`{{|}}~)")]
    Mid,
    /// A `group:BUNDLE` mid that is not a token.
    #[error("a=group:BUNDLE must list mids (tokens) separated by spaces")]
    Bundle,
    /// A flag attribute (`ice-lite`, `end-of-candidates`) written with a value.
    #[error("a={name} takes no value")]
    Flag {
        /// The attribute's name.
        name: &'static str,
    },
    /// An `m=` line that is not `<media> <port>[/<n>] <proto> <fmt>...`.
    #[error("invalid m= line: {0}")]
    MediaLine(MediaLineError),
    /// A value given to a constructor holds a control character other than tab (a line break
    /// would start another line).
    #[error("value holds a control character")]
    ControlCharacter,
    /// A media section added with a mid that an earlier section already has.
    #[error("mid already used by another media section")]
    DuplicateMid,
}

/// ICE parameters at one level of a fragment: `a=ice-ufrag`, `a=ice-pwd`, `a=ice-options`
/// and `a=ice-lite`.
///
/// Build with [`IceParams::new`] (or `default()`) and the `with_*` methods, which check each
/// value as the parser does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct IceParams {
    ufrag: Option<String>,
    pwd: Option<String>,
    options: Option<String>,
    lite: bool,
}

impl IceParams {
    /// ICE credentials: a username fragment and a password.
    ///
    /// # Errors
    ///
    /// [`ValueError::Ufrag`] or [`ValueError::Pwd`] when a value is not 4 (22 for the
    /// password) to 256 ice-chars.
    pub fn new(ufrag: &str, pwd: &str) -> Result<Self, ValueError> {
        Self::default().with_ufrag(ufrag)?.with_pwd(pwd)
    }

    /// With `a=ice-ufrag:<ufrag>`.
    ///
    /// # Errors
    ///
    /// [`ValueError::Ufrag`] when `ufrag` is not 4 to 256 ice-chars.
    pub fn with_ufrag(mut self, ufrag: &str) -> Result<Self, ValueError> {
        self.ufrag = Some(check(ufrag, is_valid_ufrag, ValueError::Ufrag)?);
        Ok(self)
    }

    /// With `a=ice-pwd:<pwd>`.
    ///
    /// # Errors
    ///
    /// [`ValueError::Pwd`] when `pwd` is not 22 to 256 ice-chars.
    pub fn with_pwd(mut self, pwd: &str) -> Result<Self, ValueError> {
        self.pwd = Some(check(pwd, is_valid_pwd, ValueError::Pwd)?);
        Ok(self)
    }

    /// With `a=ice-options:<options>`, e.g. `"trickle"` or `"trickle ice2"`.
    ///
    /// # Errors
    ///
    /// [`ValueError::IceOptions`] when `options` is not tokens separated by single spaces.
    pub fn with_options(mut self, options: &str) -> Result<Self, ValueError> {
        self.options = Some(check(options, is_valid_options, ValueError::IceOptions)?);
        Ok(self)
    }

    /// With or without `a=ice-lite`.
    #[must_use]
    pub fn with_lite(mut self, lite: bool) -> Self {
        self.lite = lite;
        self
    }

    /// The `a=ice-ufrag` value.
    #[must_use]
    pub fn ufrag(&self) -> Option<&str> {
        self.ufrag.as_deref()
    }

    /// The `a=ice-pwd` value.
    #[must_use]
    pub fn pwd(&self) -> Option<&str> {
        self.pwd.as_deref()
    }

    /// The `a=ice-options` value as written (space-separated options).
    #[must_use]
    pub fn options(&self) -> Option<&str> {
        self.options.as_deref()
    }

    /// Whether `a=ice-lite` is present.
    #[must_use]
    pub fn lite(&self) -> bool {
        self.lite
    }

    /// Whether none of the four is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Writes the lines, each ending in CRLF: `ice-lite`, `ice-options`, `ice-ufrag`, `ice-pwd`.
    fn write_lines(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lite {
            f.write_str("a=ice-lite\r\n")?;
        }
        if let Some(options) = &self.options {
            write!(f, "a=ice-options:{options}\r\n")?;
        }
        if let Some(ufrag) = &self.ufrag {
            write!(f, "a=ice-ufrag:{ufrag}\r\n")?;
        }
        if let Some(pwd) = &self.pwd {
            write!(f, "a=ice-pwd:{pwd}\r\n")?;
        }
        Ok(())
    }
}

/// `value` as an owned string when `valid` accepts it, else `error`.
fn check(value: &str, valid: fn(&str) -> bool, error: ValueError) -> Result<String, ValueError> {
    if valid(value) {
        Ok(value.to_owned())
    } else {
        Err(error)
    }
}

/// `ice-options`: one or more tokens separated by single spaces. RFC 8839 writes the option
/// tags as ice-chars; tokens also admit the `-` of options such as `google-ice` that peers
/// have sent.
fn is_valid_options(options: &str) -> bool {
    options.split(' ').all(is_token)
}

/// One media section of a fragment: the `m=` line, `a=mid`, media-level ICE parameters, the
/// candidates and `a=end-of-candidates`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragMedia {
    m_line: String,
    mid: Option<String>,
    ice: IceParams,
    candidates: Vec<Candidate>,
    end_of_candidates: bool,
    attributes: Vec<String>,
}

impl FragMedia {
    /// A media section with this `m=` line (its value, without `m=`: e.g.
    /// `"audio 9 UDP/TLS/RTP/SAVPF 111"`) and mid. RFC 8840 wants the m= line and mid of the
    /// section the candidates belong to, as the offer has them.
    ///
    /// # Errors
    ///
    /// [`ValueError::ControlCharacter`] for an `m=` line holding a control character other than
    /// tab, [`ValueError::MediaLine`] for another invalid `m=` line, [`ValueError::Mid`] for a
    /// mid that is not a token.
    pub fn new(m_line: &str, mid: Option<&str>) -> Result<Self, ValueError> {
        if m_line.bytes().any(is_forbidden_control) {
            return Err(ValueError::ControlCharacter);
        }
        MediaLine::parse(m_line).map_err(ValueError::MediaLine)?;
        let mid = mid
            .map(|mid| check(mid, is_token, ValueError::Mid))
            .transpose()?;
        Ok(Self {
            m_line: m_line.to_owned(),
            mid,
            ice: IceParams::default(),
            candidates: Vec::new(),
            end_of_candidates: false,
            attributes: Vec::new(),
        })
    }

    /// The first m-section of a full SDP (an offer or answer) as a fragment section: its `m=`
    /// line and mid, nothing else. `None` when the SDP has no valid `m=` line or the mid is not
    /// a token. For [`SdpFrag::restart_answer`]: read it once from the offer a session was
    /// created with.
    #[must_use]
    pub fn first_in_sdp(sdp: &str) -> Option<FragMedia> {
        let mut lines = lines(sdp).skip_while(|line| !line.starts_with("m="));
        let m_line = lines.next()?.strip_prefix("m=")?;
        let mid = lines
            .take_while(|line| !line.starts_with("m="))
            .find_map(|line| line.strip_prefix("a=mid:"));
        Self::new(m_line, mid).ok()
    }

    /// With these media-level ICE parameters (replacing any).
    #[must_use]
    pub fn with_ice(mut self, ice: IceParams) -> Self {
        self.ice = ice;
        self
    }

    /// With these candidates appended, in order.
    #[must_use]
    pub fn with_candidates(mut self, candidates: impl IntoIterator<Item = Candidate>) -> Self {
        self.candidates.extend(candidates);
        self
    }

    /// With or without `a=end-of-candidates`.
    #[must_use]
    pub fn with_end_of_candidates(mut self, end: bool) -> Self {
        self.end_of_candidates = end;
        self
    }

    /// The value of the `m=` line, as written (without `m=`).
    #[must_use]
    pub fn m_line(&self) -> &str {
        &self.m_line
    }

    /// The media token of the `m=` line: `"audio"`, `"video"`, `"application"`, ...
    #[must_use]
    pub fn media(&self) -> &str {
        self.m_line.split(' ').next().unwrap_or_default()
    }

    /// The section's `a=mid`.
    #[must_use]
    pub fn mid(&self) -> Option<&str> {
        self.mid.as_deref()
    }

    /// The section's own ICE parameters (without the session-level ones).
    #[must_use]
    pub fn ice(&self) -> &IceParams {
        &self.ice
    }

    /// The section's candidates, in order.
    #[must_use]
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Whether the section carries `a=end-of-candidates`.
    #[must_use]
    pub fn end_of_candidates(&self) -> bool {
        self.end_of_candidates
    }

    /// The section's other attributes, as written after `a=`, in order.
    #[must_use]
    pub fn attributes(&self) -> &[String] {
        &self.attributes
    }
}

impl fmt::Display for FragMedia {
    /// The section's lines, each ending in CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={}\r\n", self.m_line)?;
        if let Some(mid) = &self.mid {
            write!(f, "a=mid:{mid}\r\n")?;
        }
        self.ice.write_lines(f)?;
        for attribute in &self.attributes {
            write!(f, "a={attribute}\r\n")?;
        }
        for candidate in &self.candidates {
            write!(f, "a={candidate}\r\n")?;
        }
        if self.end_of_candidates {
            f.write_str("a=end-of-candidates\r\n")?;
        }
        Ok(())
    }
}

/// An SDP fragment (RFC 8840): session-level ICE parameters and BUNDLE group, then media
/// sections with their candidates.
///
/// Parse a body with [`SdpFrag::parse`]; write one with `to_string()`. See the [module
/// docs](self) for what is accepted and the order lines are written in.
///
/// ```
/// use signaling_core::sdpfrag::SdpFrag;
///
/// let body = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
///             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio\r\n\
///             a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
///             a=end-of-candidates\r\n";
/// let frag = SdpFrag::parse(body)?;
/// assert_eq!(frag.ufrag(), Some("EsAw"));
/// let (mid, candidate) = frag.candidates().next().unwrap();
/// assert_eq!((mid, candidate.port()), (Some("audio"), 61764));
/// assert!(frag.media()[0].end_of_candidates());
/// assert_eq!(frag.to_string(), body);
/// # Ok::<(), signaling_core::sdpfrag::SdpFragError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdpFrag {
    ice: IceParams,
    bundle: Vec<String>,
    attributes: Vec<String>,
    end_of_candidates: bool,
    media: Vec<FragMedia>,
}

impl SdpFrag {
    /// An empty fragment; add to it with the `with_*` methods.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a fragment with the default [`FragLimits`].
    ///
    /// # Errors
    ///
    /// Any [`SdpFragError`]: see the [module docs](self) for what is refused.
    pub fn parse(text: &str) -> Result<SdpFrag, SdpFragError> {
        Self::parse_with(text, &FragLimits::default())
    }

    /// Parses a fragment within `limits`.
    ///
    /// # Errors
    ///
    /// Any [`SdpFragError`]: see the [module docs](self) for what is refused.
    pub fn parse_with(text: &str, limits: &FragLimits) -> Result<SdpFrag, SdpFragError> {
        if text.len() > limits.max_len {
            return Err(SdpFragError::TooLarge {
                len: text.len(),
                max: limits.max_len,
            });
        }
        if text
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .starts_with(['{', '['])
        {
            return Err(SdpFragError::LooksLikeJson);
        }
        let mut parser = Parser {
            frag: SdpFrag::default(),
            limits,
            candidates: 0,
            bundle_seen: false,
        };
        for (i, line) in lines(text).enumerate() {
            let line_no = i + 1;
            if line_no > limits.max_lines {
                return Err(SdpFragError::TooManyLines {
                    max: limits.max_lines,
                });
            }
            parser.line(line, line_no)?;
        }
        Ok(parser.frag)
    }

    /// Parses a body as received: checks its length against `limits` before checking that it
    /// is UTF-8, then parses it with [`SdpFrag::parse_with`].
    ///
    /// # Errors
    ///
    /// [`SdpFragError::NotUtf8`], or any error of [`SdpFrag::parse_with`].
    pub fn parse_bytes(body: &[u8], limits: &FragLimits) -> Result<SdpFrag, SdpFragError> {
        if body.len() > limits.max_len {
            return Err(SdpFragError::TooLarge {
                len: body.len(),
                max: limits.max_len,
            });
        }
        let text = std::str::from_utf8(body).map_err(|e| SdpFragError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        Self::parse_with(text, limits)
    }

    /// The fragment a server answers an ICE restart with (WHIP, RFC 9725 §4.3; WHEP): its new
    /// credentials and candidates, in reply to the request `self`.
    ///
    /// `ice` holds the server's new `ice-ufrag` and `ice-pwd` and the `ice-lite` and
    /// `ice-options` of its SDP answer (WHEP asks for the same ones as in the answer). They go
    /// at session level (lite, options) and into one media section (credentials), with
    /// `candidates` and `end_of_candidates`, as in WHEP's example. The answer echoes the
    /// request's `a=group:BUNDLE`.
    ///
    /// The media section is the request's first one (its `m=` line and mid): with max-bundle
    /// the only one a client sends, the BUNDLE transport's. Some clients (medooze's
    /// `whip.js`, early WHIP drafts) send only `a=ice-ufrag` and `a=ice-pwd` for a restart,
    /// yet replace all their remote candidates with the ones in the answer: for them the
    /// answer uses `section`, the session's own first m-section (read it from the offer once
    /// with [`FragMedia::first_in_sdp`]). With neither, the answer carries the credentials at
    /// session level and no candidates, as a fragment has nowhere else to put them.
    ///
    /// ```
    /// use signaling_core::candidate::Candidate;
    /// use signaling_core::sdpfrag::{IceParams, SdpFrag};
    ///
    /// let request = SdpFrag::parse(
    ///     "a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
    ///      a=ice-ufrag:ysXw\r\na=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k\r\n",
    /// )?;
    /// let ice = IceParams::new("289b31b754eaa438", "0b66f472495ef0ccac7bda653ab6be49")?
    ///     .with_lite(true);
    /// let host = Candidate::parse("candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host")?;
    /// let answer = request.restart_answer(ice, None, [host], true);
    /// assert_eq!(
    ///     answer.to_string(),
    ///     "a=ice-lite\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
    ///      a=ice-ufrag:289b31b754eaa438\r\na=ice-pwd:0b66f472495ef0ccac7bda653ab6be49\r\n\
    ///      a=candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host\r\na=end-of-candidates\r\n"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn restart_answer(
        &self,
        ice: IceParams,
        section: Option<&FragMedia>,
        candidates: impl IntoIterator<Item = Candidate>,
        end_of_candidates: bool,
    ) -> SdpFrag {
        let IceParams {
            ufrag,
            pwd,
            options,
            lite,
        } = ice;
        let credentials = IceParams {
            ufrag,
            pwd,
            ..IceParams::default()
        };
        let mut answer = SdpFrag {
            ice: IceParams {
                options,
                lite,
                ..IceParams::default()
            },
            bundle: self.bundle.clone(),
            ..SdpFrag::default()
        };
        match self.media.first().or(section) {
            Some(echoed) => answer.media.push(FragMedia {
                m_line: echoed.m_line.clone(),
                mid: echoed.mid.clone(),
                ice: credentials,
                candidates: candidates.into_iter().collect(),
                end_of_candidates,
                attributes: Vec::new(),
            }),
            None => {
                answer.ice.ufrag = credentials.ufrag;
                answer.ice.pwd = credentials.pwd;
                answer.end_of_candidates = end_of_candidates;
            }
        }
        answer
    }

    /// With these session-level ICE parameters (replacing any).
    #[must_use]
    pub fn with_ice(mut self, ice: IceParams) -> Self {
        self.ice = ice;
        self
    }

    /// With `a=group:BUNDLE` listing these mids (replacing any); none removes the group.
    ///
    /// # Errors
    ///
    /// [`ValueError::Bundle`] when a mid is not a token.
    pub fn with_bundle<S: AsRef<str>>(
        mut self,
        mids: impl IntoIterator<Item = S>,
    ) -> Result<Self, ValueError> {
        self.bundle = mids
            .into_iter()
            .map(|mid| check(mid.as_ref(), is_token, ValueError::Bundle))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// With this media section appended.
    ///
    /// # Errors
    ///
    /// [`ValueError::DuplicateMid`] when an earlier section has the same mid.
    pub fn with_media(mut self, media: FragMedia) -> Result<Self, ValueError> {
        if media.mid.is_some() && self.media.iter().any(|m| m.mid == media.mid) {
            return Err(ValueError::DuplicateMid);
        }
        self.media.push(media);
        Ok(self)
    }

    /// With or without a session-level `a=end-of-candidates`.
    #[must_use]
    pub fn with_end_of_candidates(mut self, end: bool) -> Self {
        self.end_of_candidates = end;
        self
    }

    /// The session-level ICE parameters.
    #[must_use]
    pub fn ice(&self) -> &IceParams {
        &self.ice
    }

    /// The mids of `a=group:BUNDLE`, in order (empty when there is none).
    #[must_use]
    pub fn bundle(&self) -> &[String] {
        &self.bundle
    }

    /// The media sections, in order.
    #[must_use]
    pub fn media(&self) -> &[FragMedia] {
        &self.media
    }

    /// Whether a session-level `a=end-of-candidates` is present (see also
    /// [`FragMedia::end_of_candidates`]).
    #[must_use]
    pub fn end_of_candidates(&self) -> bool {
        self.end_of_candidates
    }

    /// The other session-level attributes, as written after `a=`, in order.
    #[must_use]
    pub fn attributes(&self) -> &[String] {
        &self.attributes
    }

    /// The ICE username fragment the fragment's candidates go with: the first media section's
    /// `a=ice-ufrag`, else the session-level one (a media-level value overrides the session's,
    /// RFC 8839 §5.4). Compare it with the current one to tell an ICE restart from a trickle.
    #[must_use]
    pub fn ufrag(&self) -> Option<&str> {
        self.media
            .first()
            .and_then(|m| m.ice.ufrag())
            .or(self.ice.ufrag())
    }

    /// The ICE password, resolved as [`SdpFrag::ufrag`] is.
    #[must_use]
    pub fn pwd(&self) -> Option<&str> {
        self.media
            .first()
            .and_then(|m| m.ice.pwd())
            .or(self.ice.pwd())
    }

    /// Every candidate with the mid of its section, in order.
    pub fn candidates(&self) -> impl Iterator<Item = (Option<&str>, &Candidate)> + '_ {
        self.media
            .iter()
            .flat_map(|m| m.candidates.iter().map(move |c| (m.mid(), c)))
    }

    /// Whether the fragment holds nothing at all (an empty body).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for SdpFrag {
    /// The fragment's lines, each ending in CRLF, in the order of the [module docs](self#writing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ice.write_lines(f)?;
        if !self.bundle.is_empty() {
            f.write_str("a=group:BUNDLE")?;
            for mid in &self.bundle {
                write!(f, " {mid}")?;
            }
            f.write_str("\r\n")?;
        }
        for attribute in &self.attributes {
            write!(f, "a={attribute}\r\n")?;
        }
        if self.end_of_candidates {
            f.write_str("a=end-of-candidates\r\n")?;
        }
        for media in &self.media {
            write!(f, "{media}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SdpFrag {
    type Err = SdpFragError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The line-by-line parse: the fragment so far and what the checks need besides it.
struct Parser<'l> {
    frag: SdpFrag,
    limits: &'l FragLimits,
    candidates: usize,
    /// Whether a session-level `a=group:BUNDLE` was seen (one with no mids leaves
    /// `frag.bundle` empty).
    bundle_seen: bool,
}

impl Parser<'_> {
    fn line(&mut self, line: &str, line_no: usize) -> Result<(), SdpFragError> {
        if let Some(byte) = line.bytes().find(|&b| is_forbidden_control(b)) {
            return Err(SdpFragError::ControlCharacter {
                line: line_no,
                byte,
            });
        }
        if line.is_empty() {
            return Ok(());
        }
        match line.split_once('=') {
            Some(("m", value)) => self.media_line(value, line_no),
            Some(("a", value)) => self.attribute(value, line_no),
            Some((kind, _)) if kind.len() == 1 && kind.bytes().all(|b| b.is_ascii_lowercase()) => {
                Ok(())
            }
            _ => Err(SdpFragError::MalformedLine { line: line_no }),
        }
    }

    fn media_line(&mut self, value: &str, line: usize) -> Result<(), SdpFragError> {
        if self.frag.media.len() >= self.limits.max_media {
            return Err(SdpFragError::TooManyMedia {
                line,
                max: self.limits.max_media,
            });
        }
        let media = FragMedia::new(value, None)
            .map_err(|error| SdpFragError::InvalidValue { line, error })?;
        self.frag.media.push(media);
        Ok(())
    }

    fn attribute(&mut self, value: &str, line: usize) -> Result<(), SdpFragError> {
        let (name, arg) = match value.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (value, None),
        };
        let invalid = |error| SdpFragError::InvalidValue { line, error };
        let duplicate = |name| SdpFragError::DuplicateAttribute { line, name };
        let flag = |arg: Option<&str>, name| match arg {
            None => Ok(()),
            Some(_) => Err(invalid(ValueError::Flag { name })),
        };
        match name {
            "candidate" => self.candidate(value, line),
            "mid" => self.mid(arg, line),
            "ice-ufrag" => {
                let ufrag = check(arg.unwrap_or_default(), is_valid_ufrag, ValueError::Ufrag)
                    .map_err(invalid)?;
                set_once(&mut self.ice().ufrag, ufrag).map_err(|()| duplicate("ice-ufrag"))
            }
            "ice-pwd" => {
                let pwd = check(arg.unwrap_or_default(), is_valid_pwd, ValueError::Pwd)
                    .map_err(invalid)?;
                set_once(&mut self.ice().pwd, pwd).map_err(|()| duplicate("ice-pwd"))
            }
            "ice-options" => {
                let options = check(
                    arg.unwrap_or_default(),
                    is_valid_options,
                    ValueError::IceOptions,
                )
                .map_err(invalid)?;
                set_once(&mut self.ice().options, options).map_err(|()| duplicate("ice-options"))
            }
            "ice-lite" => {
                flag(arg, "ice-lite")?;
                self.ice().lite = true;
                Ok(())
            }
            "end-of-candidates" => {
                flag(arg, "end-of-candidates")?;
                match self.frag.media.last_mut() {
                    Some(media) => media.end_of_candidates = true,
                    None => self.frag.end_of_candidates = true,
                }
                Ok(())
            }
            "group" if self.frag.media.is_empty() => match arg
                .and_then(|a| a.strip_prefix("BUNDLE"))
            {
                Some(mids) if mids.is_empty() || mids.starts_with(' ') => self.bundle(mids, line),
                // Another semantics (`LS`, `FID`, ...): not ICE's business.
                _ => {
                    self.frag.attributes.push(value.to_owned());
                    Ok(())
                }
            },
            _ => {
                match self.frag.media.last_mut() {
                    Some(media) => media.attributes.push(value.to_owned()),
                    None => self.frag.attributes.push(value.to_owned()),
                }
                Ok(())
            }
        }
    }

    /// The ICE parameters of the current level.
    fn ice(&mut self) -> &mut IceParams {
        match self.frag.media.last_mut() {
            Some(media) => &mut media.ice,
            None => &mut self.frag.ice,
        }
    }

    fn candidate(&mut self, value: &str, line: usize) -> Result<(), SdpFragError> {
        let Some(media) = self.frag.media.last_mut() else {
            return Err(SdpFragError::AttributeBeforeMedia {
                line,
                name: "candidate",
            });
        };
        if self.candidates >= self.limits.max_candidates {
            return Err(SdpFragError::TooManyCandidates {
                line,
                max: self.limits.max_candidates,
            });
        }
        let candidate = Candidate::parse(value)
            .map_err(|source| SdpFragError::BadCandidate { line, source })?;
        media.candidates.push(candidate);
        self.candidates += 1;
        Ok(())
    }

    fn mid(&mut self, arg: Option<&str>, line: usize) -> Result<(), SdpFragError> {
        let Some((current, earlier)) = self.frag.media.split_last_mut() else {
            return Err(SdpFragError::AttributeBeforeMedia { line, name: "mid" });
        };
        let mid = check(arg.unwrap_or_default(), is_token, ValueError::Mid)
            .map_err(|error| SdpFragError::InvalidValue { line, error })?;
        if earlier.iter().any(|m| m.mid.as_ref() == Some(&mid)) {
            return Err(SdpFragError::MidReused { line });
        }
        set_once(&mut current.mid, mid)
            .map_err(|()| SdpFragError::DuplicateAttribute { line, name: "mid" })
    }

    /// `mids`: what follows `group:BUNDLE`.
    fn bundle(&mut self, mids: &str, line: usize) -> Result<(), SdpFragError> {
        if std::mem::replace(&mut self.bundle_seen, true) {
            return Err(SdpFragError::DuplicateAttribute {
                line,
                name: "group:BUNDLE",
            });
        }
        // Mids are separated by spaces; extra spaces say nothing and are not kept.
        self.frag.bundle = mids
            .split(' ')
            .filter(|mid| !mid.is_empty())
            .map(|mid| check(mid, is_token, ValueError::Bundle))
            .collect::<Result<_, _>>()
            .map_err(|error| SdpFragError::InvalidValue { line, error })?;
        Ok(())
    }
}

/// A control byte other than tab: refused in every line (tab may appear in SDP values).
fn is_forbidden_control(b: u8) -> bool {
    b != b'\t' && b.is_ascii_control()
}

/// Sets `slot` to `value` unless it is already set.
fn set_once(slot: &mut Option<String>, value: String) -> Result<(), ()> {
    if slot.is_some() {
        return Err(());
    }
    *slot = Some(value);
    Ok(())
}

/// Proptest strategies for fragments, for this crate's tests and for users' own property tests
/// (enable the `proptest` feature).
#[cfg(any(test, feature = "proptest"))]
pub mod strategy {
    use proptest::prelude::*;

    use super::{FragMedia, IceParams, SdpFrag};
    use crate::candidate::strategy::candidate;

    /// A valid `ice-ufrag`: 4 to 32 ice-chars.
    pub fn ufrag() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+/]{4,32}"
    }

    /// A valid `ice-pwd`: 22 to 48 ice-chars.
    pub fn pwd() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+/]{22,48}"
    }

    /// An `ice-options` value: one to three options.
    pub fn options() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("trickle".to_owned()),
                Just("ice2".to_owned()),
                Just("renomination".to_owned()),
                "[a-z][a-z0-9-]{0,8}",
            ],
            1..=3,
        )
        .prop_map(|options| options.join(" "))
    }

    /// A mid: numbers as browsers write them, names, and other tokens.
    pub fn mid() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u8..20).prop_map(|n| n.to_string()),
            Just("audio".to_owned()),
            Just("video".to_owned()),
            Just("v1".to_owned()),
            "[!#$%&'*+.0-9A-Z^_`a-z{|}~-]{1,8}",
        ]
    }

    /// An `m=` line value.
    pub fn m_line() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("audio"), Just("video"), Just("application")],
            any::<u16>(),
            prop_oneof![
                Just("UDP/TLS/RTP/SAVPF"),
                Just("RTP/AVP"),
                Just("UDP/DTLS/SCTP")
            ],
            proptest::collection::vec(0u8..128, 1..4),
        )
            .prop_map(|(media, port, proto, formats)| {
                let formats: Vec<String> = formats.iter().map(u8::to_string).collect();
                format!("{media} {port} {proto} {}", formats.join(" "))
            })
    }

    /// ICE parameters, each part present or not.
    pub fn ice_params() -> impl Strategy<Value = IceParams> {
        (
            proptest::option::of(ufrag()),
            proptest::option::of(pwd()),
            proptest::option::of(options()),
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(ufrag, pwd, options, lite)| {
                let mut ice = IceParams::default().with_lite(lite);
                // The generators give valid values only.
                if let Some(u) = ufrag {
                    ice = ice.with_ufrag(&u).unwrap_or_else(|e| panic!("{e}: {u}"));
                }
                if let Some(p) = pwd {
                    ice = ice.with_pwd(&p).unwrap_or_else(|e| panic!("{e}: {p}"));
                }
                if let Some(o) = options {
                    ice = ice.with_options(&o).unwrap_or_else(|e| panic!("{e}: {o}"));
                }
                ice
            })
    }

    /// A media section with 0 to 4 candidates.
    pub fn media() -> impl Strategy<Value = FragMedia> {
        (
            m_line(),
            proptest::option::weighted(0.9, mid()),
            ice_params(),
            proptest::collection::vec(candidate(), 0..5),
            any::<bool>(),
        )
            .prop_map(|(m_line, mid, ice, candidates, end)| {
                FragMedia::new(&m_line, mid.as_deref())
                    .unwrap_or_else(|e| panic!("{e}: {m_line} {mid:?}"))
                    .with_ice(ice)
                    .with_candidates(candidates)
                    .with_end_of_candidates(end)
            })
    }

    /// A fragment with 0 to 3 media sections of distinct mids and an optional BUNDLE group.
    pub fn frag() -> impl Strategy<Value = SdpFrag> {
        (
            ice_params(),
            proptest::collection::vec(mid(), 0..4),
            proptest::collection::vec(media(), 0..4),
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(ice, bundle, media, end)| {
                let mut frag = SdpFrag::new()
                    .with_ice(ice)
                    .with_end_of_candidates(end)
                    .with_bundle(&bundle)
                    .unwrap_or_else(|e| panic!("{e}: {bundle:?}"));
                for m in media {
                    // A section whose mid is taken is left out.
                    frag = match frag.clone().with_media(m) {
                        Ok(f) => f,
                        Err(_) => frag,
                    };
                }
                frag
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::strategy::frag;
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// What is written parses back to the value written, with either line ending and with
        /// or without the final one.
        #[test]
        fn generated_fragments_round_trip(f in frag(), lf in any::<bool>(), last in any::<bool>()) {
            let mut text = f.to_string();
            if lf {
                text = text.replace("\r\n", "\n");
            }
            if !last {
                text.truncate(text.trim_end_matches(['\r', '\n']).len());
            }
            prop_assert_eq!(SdpFrag::parse(&text), Ok(f));
        }
    }
}
