//! The typed message model and its JSON wire codec.
//!
//! Every frame on the wire is one JSON object, an *envelope* `{"type": <string>, "value": <json>}`
//! (go2rtc's `/api/ws` format). This module knows these types:
//!
//! | `type` | `value` | [`Message`] |
//! |---|---|---|
//! | `webrtc/offer` | SDP string | [`Message::Description`] with [`SdpKind::Offer`] |
//! | `webrtc/answer` | SDP string | [`Message::Description`] with [`SdpKind::Answer`] |
//! | `webrtc` (v2) | `{"type":"offer"\|"answer"\|"pranswer","sdp":..,"ice_servers":[..]}` | [`Message::Description`] |
//! | `webrtc/candidate` | `"candidate:..."`, or the browser's `RTCIceCandidate.toJSON()` object | [`Message::Candidate`] |
//! | `webrtc/candidate` | `""`, `null`, or an object whose `candidate` is `""` | [`Message::EndOfCandidates`] |
//! | `error` | `"<request type>: <message>"` | [`Message::Error`] |
//! | anything else | anything | [`Message::Unknown`], keeping the whole frame |
//!
//! # Rules
//!
//! - **Unknown types** decode to [`Message::Unknown`], which keeps the frame's exact text: a relay
//!   forwards it unchanged, an endpoint ignores it (as go2rtc does). Unknown *fields* of a known
//!   envelope are ignored by the typed decoder; a relay that must keep them uses the forwarding
//!   path, [`RawFrame`], which never looks inside `value`.
//! - **Dialects.** Decoding accepts every form above. Encoding writes the form a peer speaks,
//!   chosen by a [`Dialect`]: go2rtc v1 descriptions or v2 `webrtc` objects, candidates as bare
//!   strings (the seed client, go2rtc) or as `toJSON()` objects (browsers that keep `sdpMid`).
//!   A dialect that cannot carry a field drops it (a bare-string candidate has no `sdpMid`); the
//!   [`Dialect`] docs list what each one drops.
//! - **Canonical frames** are compact JSON with the keys in the order this module writes them
//!   (`type` then `value`; `candidate`, `sdpMid`, `sdpMLineIndex`, `usernameFragment`), which is
//!   what `JSON.stringify` produces for the seed client's objects. For canonical frames
//!   `encode(decode(frame)) == frame`, byte for byte.
//! - **End-of-candidates** is sent as `""` (bare-string dialects) or as an object with
//!   `"candidate":""`; never as the string `"null"`.
//! - **Bounds.** [`decode`] refuses frames longer than [`DEFAULT_MAX_FRAME_LEN`];
//!   [`decode_with_limit`] takes another bound.
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::json_scan::skip_plain_blocks;

/// The default bound on the length of one frame, in bytes (64 KiB). A Chrome offer with many
/// transceivers is 5–15 KB; anything near this bound is abuse.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// `type` of an offer in the v1 dialect.
pub const TYPE_OFFER: &str = "webrtc/offer";
/// `type` of an answer in the v1 dialect.
pub const TYPE_ANSWER: &str = "webrtc/answer";
/// `type` of a candidate or of end-of-candidates.
pub const TYPE_CANDIDATE: &str = "webrtc/candidate";
/// `type` of a description in the v2 dialect.
pub const TYPE_WEBRTC: &str = "webrtc";
/// `type` of an error report.
pub const TYPE_ERROR: &str = "error";

/// One signaling message, decoded. See the [module documentation](self) for the wire forms.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A session description: offer, answer or provisional answer.
    Description(Description),
    /// One trickled ICE candidate.
    Candidate(IceCandidate),
    /// The sender has no more candidates (for the generation given, when it says).
    EndOfCandidates(EndOfCandidates),
    /// An error report, `"<request type>: <message>"`.
    Error(ErrorMessage),
    /// A frame of a type this crate does not know. Endpoints ignore it; relays forward it.
    Unknown(UnknownMessage),
}

impl Message {
    /// The `type` this message is written with in the v1 dialect (`webrtc/offer`, ...). A
    /// provisional answer reports [`TYPE_WEBRTC`], the only form that carries it.
    pub fn type_name(&self) -> &str {
        match self {
            Message::Description(d) => d.type_name(),
            Message::Candidate(_) | Message::EndOfCandidates(_) => TYPE_CANDIDATE,
            Message::Error(_) => TYPE_ERROR,
            Message::Unknown(u) => &u.kind,
        }
    }
}

/// The kind of a session description that travels on the wire. (A rollback is a local
/// operation and never travels.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    /// An offer.
    Offer,
    /// A final answer.
    Answer,
    /// A provisional answer (RFC 9429 §4.1.8.1).
    Pranswer,
}

impl SdpKind {
    /// The JSEP name: `offer`, `answer` or `pranswer`.
    pub fn as_str(self) -> &'static str {
        match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
            SdpKind::Pranswer => "pranswer",
        }
    }
}

impl fmt::Display for SdpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session description with the ICE servers a v2 peer may attach to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// Offer, answer or provisional answer.
    pub kind: SdpKind,
    /// The SDP text.
    pub sdp: String,
    /// ICE servers for the receiver to use (v2 dialect only; empty otherwise).
    pub ice_servers: Vec<IceServer>,
}

impl Description {
    /// A description without ICE servers.
    pub fn new(kind: SdpKind, sdp: impl Into<String>) -> Self {
        Self {
            kind,
            sdp: sdp.into(),
            ice_servers: Vec::new(),
        }
    }

    /// The `type` this description is written with in the v1 dialect: `webrtc/offer`,
    /// `webrtc/answer`, or [`TYPE_WEBRTC`] for a provisional answer (only v2 carries those).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            SdpKind::Offer => TYPE_OFFER,
            SdpKind::Answer => TYPE_ANSWER,
            SdpKind::Pranswer => TYPE_WEBRTC,
        }
    }

    /// An offer.
    pub fn offer(sdp: impl Into<String>) -> Self {
        Self::new(SdpKind::Offer, sdp)
    }

    /// An answer.
    pub fn answer(sdp: impl Into<String>) -> Self {
        Self::new(SdpKind::Answer, sdp)
    }
}

/// One entry of an `iceServers` list, as a browser's `RTCIceServer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs. Accepts a single string on input; always written as an
    /// array.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A trickled ICE candidate as it travels: the candidate attribute text and, when the sender
/// knows them, the m-section it belongs to and its ICE username fragment. Mirrors the browser's
/// `RTCIceCandidateInit`.
///
/// The text is not parsed here; [`crate::candidate::Candidate::parse`] does that.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct IceCandidate {
    /// `candidate:...` (never empty: an empty candidate is [`Message::EndOfCandidates`]).
    pub candidate: String,
    /// The m-section's `mid`, when the sender gave it. Shared (`Arc<str>`): a negotiation fills
    /// it in from the description's facts without allocating per candidate.
    pub sdp_mid: Option<Arc<str>>,
    /// The m-section's index, when the sender gave it.
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment (identifies the ICE generation), when the sender gave it.
    /// Shared like `sdp_mid`.
    pub username_fragment: Option<Arc<str>>,
}

impl IceCandidate {
    /// A candidate with only its text, as the seed client sends it.
    pub fn new(candidate: impl Into<String>) -> Self {
        Self {
            candidate: candidate.into(),
            ..Self::default()
        }
    }
}

/// End-of-candidates, with the generation it closes when the sender said.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct EndOfCandidates {
    /// The m-section, when given (shared, as [`IceCandidate::sdp_mid`]).
    pub sdp_mid: Option<Arc<str>>,
    /// The m-section index, when given.
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment of the generation that ended, when given (shared).
    pub username_fragment: Option<Arc<str>>,
}

/// An error report: go2rtc writes `"<request type>: <message>"` as the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ErrorMessage {
    /// The whole text.
    pub text: String,
}

impl ErrorMessage {
    /// An error about a request of type `request_type` (`webrtc/offer`, ...).
    pub fn new(request_type: &str, message: impl fmt::Display) -> Self {
        Self {
            text: format!("{request_type}: {message}"),
        }
    }

    /// The request type the error is about, when the text has the `"<type>: "` prefix.
    pub fn request_type(&self) -> Option<&str> {
        self.text.split_once(": ").map(|(t, _)| t)
    }

    /// The message after the request type (or the whole text).
    pub fn message(&self) -> &str {
        self.text.split_once(": ").map_or(&self.text, |(_, m)| m)
    }
}

/// A frame whose `type` this crate does not know, kept whole.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnknownMessage {
    /// The `type` field.
    pub kind: String,
    /// The frame exactly as received; [`encode`] writes it back unchanged.
    pub frame: String,
}

/// How descriptions are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DescriptionForm {
    /// `{"type":"webrtc/offer","value":"<sdp>"}` (go2rtc v1, the seed client). Drops
    /// `ice_servers`; a provisional answer, which v1 cannot express, is written in the v2 form.
    #[default]
    V1,
    /// `{"type":"webrtc","value":{"type":"offer","sdp":...,"ice_servers":[...]}}` (go2rtc v2).
    V2,
}

/// How candidates and end-of-candidates are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CandidateForm {
    /// The bare `candidate:...` string, `""` for end-of-candidates (go2rtc, the seed client).
    /// Drops `sdpMid`, `sdpMLineIndex` and `usernameFragment`.
    #[default]
    String,
    /// The browser's `RTCIceCandidate.toJSON()` object with all four keys (`null` when unknown).
    Object,
}

/// The wire form a peer speaks. Decoding accepts every form; this only chooses what to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dialect {
    /// How descriptions are written.
    pub descriptions: DescriptionForm,
    /// How candidates are written.
    pub candidates: CandidateForm,
}

impl Dialect {
    /// go2rtc v1, which the seed client speaks: `webrtc/offer` strings and bare candidates.
    pub const GO2RTC: Dialect = Dialect {
        descriptions: DescriptionForm::V1,
        candidates: CandidateForm::String,
    };
    /// go2rtc v2: `webrtc` description objects (with `ice_servers`), bare candidates.
    pub const GO2RTC_V2: Dialect = Dialect {
        descriptions: DescriptionForm::V2,
        candidates: CandidateForm::String,
    };
    /// v1 descriptions and `toJSON()` candidate objects, for browser clients that keep `sdpMid`.
    pub const BROWSER: Dialect = Dialect {
        descriptions: DescriptionForm::V1,
        candidates: CandidateForm::Object,
    };
}

/// The form a peer wrote a description or a candidate in, read off one of its frames (see
/// [`frame_form`]). A negotiation that mirrors its peer's dialect writes its own frames the same
/// way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// A description, in this form.
    Description(DescriptionForm),
    /// A candidate or end-of-candidates, in this form.
    Candidate(CandidateForm),
}

/// The form of a description or candidate frame: `webrtc/offer` / `webrtc/answer` (v1) or
/// `webrtc` (v2); a `webrtc/candidate` value that is a string or an object. `None` for other
/// types, a candidate frame without a value, and anything that is not a JSON envelope.
pub fn frame_form(frame: &str) -> Option<Form> {
    /// The shape of a `value`, read without keeping it.
    enum Shape {
        Text,
        Object,
        Other,
    }
    impl<'de> Deserialize<'de> for Shape {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct ShapeVisitor;
            impl<'de> Visitor<'de> for ShapeVisitor {
                type Value = Shape;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Shape, E> {
                    Ok(Shape::Text)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Shape::Object)
                }
                fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Shape::Other)
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape, E> {
                    Ok(Shape::Other)
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<Shape, E> {
                    Ok(Shape::Other)
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Shape, E> {
                    Ok(Shape::Other)
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Shape, E> {
                    Ok(Shape::Other)
                }
                fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
                    Ok(Shape::Other)
                }
            }
            d.deserialize_any(ShapeVisitor)
        }
    }
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        value: Option<Shape>,
    }
    let envelope: Envelope<'_> = serde_json::from_str(frame).ok()?;
    match (envelope.kind.as_ref(), envelope.value) {
        (TYPE_OFFER | TYPE_ANSWER, _) => Some(Form::Description(DescriptionForm::V1)),
        (TYPE_WEBRTC, _) => Some(Form::Description(DescriptionForm::V2)),
        (TYPE_CANDIDATE, Some(Shape::Text)) => Some(Form::Candidate(CandidateForm::String)),
        (TYPE_CANDIDATE, Some(Shape::Object)) => Some(Form::Candidate(CandidateForm::Object)),
        _ => None,
    }
}

/// Where and why JSON could not be read (a cloneable summary of a `serde_json` error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    /// serde_json's description, including the line and column.
    pub message: String,
    /// 1-based line of the error (0 when unknown).
    pub line: usize,
    /// 1-based column of the error (0 when unknown).
    pub column: usize,
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        Self {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Why a frame could not be decoded. Peer-caused: answer it with an `error` frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than the bound.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The frame is not a JSON object with a string `type`.
    #[error("not a signaling envelope: {0}")]
    Envelope(#[source] JsonError),
    /// The envelope has no `value` where its type needs one.
    #[error("{kind}: missing value")]
    MissingValue {
        /// The frame's type.
        kind: &'static str,
    },
    /// The `value` does not have the shape its type needs.
    #[error("{kind}: invalid value: {source}")]
    InvalidValue {
        /// The frame's type.
        kind: &'static str,
        /// What was wrong.
        #[source]
        source: JsonError,
    },
}

impl DecodeError {
    /// The request type to name in an `error` reply (`webrtc/offer`, ...), or `"frame"` when the
    /// type itself could not be read.
    pub fn request_type(&self) -> &'static str {
        match self {
            DecodeError::MissingValue { kind } | DecodeError::InvalidValue { kind, .. } => kind,
            _ => "frame",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one frame, refusing frames longer than [`DEFAULT_MAX_FRAME_LEN`].
pub fn decode(frame: &str) -> Result<Message, DecodeError> {
    decode_with_limit(frame, DEFAULT_MAX_FRAME_LEN)
}

/// Decodes one frame, refusing frames longer than `max_len` bytes.
pub fn decode_with_limit(frame: &str, max_len: usize) -> Result<Message, DecodeError> {
    if frame.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: max_len,
        });
    }
    if let Some(message) = decode_canonical(frame) {
        return Ok(message);
    }
    decode_general(frame)
}

/// The common frames, `{"type":"<known type>","value":"<string>"}` exactly as [`encode`] writes
/// them (no whitespace, `type` first, a string `value`), read without serde: one scan, one copy
/// of the value. `None` for anything else (another shape, whitespace, a `\u` escape, anything
/// invalid): [`decode_general`] decides those, errors included. Where this returns a message it
/// is the one [`decode_general`] returns.
fn decode_canonical(frame: &str) -> Option<Message> {
    // The type and the start of the value as one literal each (no type holds a quote, so this
    // is "the type up to the first quote is a known one, then `,"value":"`"); a type with
    // escapes in it is not a known type as written, and is left to serde. Candidates first:
    // they are most of the frames.
    const CANONICAL: [(&str, Known); 4] = [
        (
            "{\"type\":\"webrtc/candidate\",\"value\":\"",
            Known::Candidate,
        ),
        ("{\"type\":\"webrtc/offer\",\"value\":\"", Known::Offer),
        ("{\"type\":\"webrtc/answer\",\"value\":\"", Known::Answer),
        ("{\"type\":\"error\",\"value\":\"", Known::Error),
    ];
    let (known, rest) = CANONICAL
        .iter()
        .find_map(|&(start, known)| Some((known, frame.strip_prefix(start)?)))?;
    let (value, rest) = read_json_string(rest)?;
    if rest != "}" {
        return None;
    }
    Some(match known {
        Known::Offer => Message::Description(Description::offer(value)),
        Known::Answer => Message::Description(Description::answer(value)),
        Known::Error => Message::Error(ErrorMessage { text: value }),
        Known::Candidate if value.is_empty() => {
            Message::EndOfCandidates(EndOfCandidates::default())
        }
        Known::Candidate => Message::Candidate(IceCandidate::new(value)),
        // A v2 description needs an object.
        Known::Webrtc => return None,
    })
}

/// The start of a canonical candidate frame, up to the value's opening quote.
const CANDIDATE_FRAME_START: &str = "{\"type\":\"webrtc/candidate\",\"value\":\"";
/// The end of a canonical frame with a string value.
const STRING_FRAME_END: &str = "\"}";

/// The text between the opening quote of a canonical candidate frame's value and the frame's
/// closing `"}`, without looking at it. It is the candidate [`decode`] gives when it holds no
/// `"`, `\` or control byte (what a caller checking the candidate may know already).
pub(crate) fn candidate_frame_text(frame: &str) -> Option<&str> {
    frame
        .strip_prefix(CANDIDATE_FRAME_START)?
        .strip_suffix(STRING_FRAME_END)
}

/// The canonical frame of a candidate whose text holds no `"`, `\` or control byte: what
/// [`encode`] writes for it in the bare-string form, without looking for escapes.
pub(crate) fn plain_candidate_frame(text: &str) -> String {
    let mut out =
        String::with_capacity(CANDIDATE_FRAME_START.len() + text.len() + STRING_FRAME_END.len());
    out.push_str(CANDIDATE_FRAME_START);
    out.push_str(text);
    out.push_str(STRING_FRAME_END);
    out
}

/// Reads the rest of a JSON string literal whose opening quote is already consumed: its value
/// and the text after the closing quote. `None` for a `\u` escape (left to serde, which knows
/// surrogates), an invalid escape, a raw control character or a missing closing quote.
fn read_json_string(s: &str) -> Option<(String, &str)> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut start = 0;
    loop {
        let at = find_escape(bytes, skip_plain_blocks(bytes, start));
        // `at` is the index of an ASCII byte (or the end), so both slice ends are char
        // boundaries.
        out.push_str(s.get(start..at)?);
        match *bytes.get(at)? {
            b'"' => return Some((out, s.get(at + 1..)?)),
            // SDP's line ends, two escapes at once.
            b'\\' if bytes.get(at..at + 4) == Some(b"\\r\\n") => {
                out.push_str("\r\n");
                start = at + 4;
            }
            b'\\' => {
                out.push(match *bytes.get(at + 1)? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    _ => return None,
                });
                start = at + 2;
            }
            _ => return None,
        }
    }
}

/// Offset of the first byte at or after `from` that a JSON string cannot hold as is (`"`, `\`,
/// or a control character below 0x20), or `bytes.len()`. Eight bytes at a time: SDP lines run
/// 30 to 80 bytes between their `\r\n`s. Callers skip to the block holding that byte with
/// [`skip_plain_blocks`] first (its vector compares are faster still on the plain part).
#[inline]
pub(crate) fn find_escape(bytes: &[u8], from: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(word) = bytes
        .get(i..i + 8)
        .and_then(|c| <[u8; 8]>::try_from(c).ok())
    {
        let x = u64::from_le_bytes(word);
        let quote = x ^ (LO * u64::from(b'"'));
        let backslash = x ^ (LO * u64::from(b'\\'));
        // Each term flags its bytes exactly up to its first hit (borrows only run upwards), so
        // the lowest flag overall is the first byte needing an escape.
        let found = (x.wrapping_sub(LO * 0x20) & !x
            | quote.wrapping_sub(LO) & !quote
            | backslash.wrapping_sub(LO) & !backslash)
            & HI;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if ESCAPE[usize::from(b)] != 0 {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// The general decoder: serde over any JSON object, any key order, whitespace and escapes.
fn decode_general(frame: &str) -> Result<Message, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(frame);
    let in_value = Cell::new(None);
    let parsed = EnvelopeSeed {
        in_value: &in_value,
    }
    .deserialize(&mut de)
    .map_err(|e| match in_value.get() {
        Some(known) => invalid(known, e),
        None => DecodeError::Envelope(e.into()),
    })?;
    de.end().map_err(|e| DecodeError::Envelope(e.into()))?;
    let (kind, value) = match parsed {
        Parsed::Done(known, value) => (known, value),
        Parsed::Deferred(known, raw) => (known, decode_value(known, raw.map(RawValue::get))?),
        Parsed::Unknown(kind) => {
            return Ok(Message::Unknown(UnknownMessage {
                kind,
                frame: frame.to_owned(),
            }))
        }
    };
    finish(kind, value)
}

/// Decodes a `value` kept raw (it came before `type`, or the envelope was read on its own).
fn decode_value(known: Known, raw: Option<&str>) -> Result<TypedValue, DecodeError> {
    match raw {
        Some(raw) => {
            let mut de = serde_json::Deserializer::from_str(raw);
            ValueSeed(known)
                .deserialize(&mut de)
                .map_err(|e| invalid(known, e))
        }
        None => Ok(TypedValue::Absent),
    }
}

fn invalid(known: Known, source: serde_json::Error) -> DecodeError {
    DecodeError::InvalidValue {
        kind: known.name(),
        source: source.into(),
    }
}

fn finish(known: Known, value: TypedValue) -> Result<Message, DecodeError> {
    let kind = known.name();
    Ok(match (known, value) {
        (_, TypedValue::Absent) if known != Known::Candidate => {
            return Err(DecodeError::MissingValue { kind })
        }
        (Known::Offer, TypedValue::Text(sdp)) => Message::Description(Description::offer(sdp)),
        (Known::Answer, TypedValue::Text(sdp)) => Message::Description(Description::answer(sdp)),
        (Known::Error, TypedValue::Text(text)) => Message::Error(ErrorMessage { text }),
        (Known::Webrtc, TypedValue::Description(d)) => Message::Description(d),
        (Known::Candidate, TypedValue::Absent | TypedValue::Null) => {
            Message::EndOfCandidates(EndOfCandidates::default())
        }
        (Known::Candidate, TypedValue::Text(c)) if c.is_empty() => {
            Message::EndOfCandidates(EndOfCandidates::default())
        }
        (Known::Candidate, TypedValue::Text(candidate)) => {
            Message::Candidate(IceCandidate::new(candidate))
        }
        (Known::Candidate, TypedValue::Candidate(c)) if c.candidate.is_empty() => {
            Message::EndOfCandidates(EndOfCandidates {
                sdp_mid: c.sdp_mid,
                sdp_m_line_index: c.sdp_m_line_index,
                username_fragment: c.username_fragment,
            })
        }
        (Known::Candidate, TypedValue::Candidate(c)) => Message::Candidate(c),
        // The seeds only produce the combinations above.
        _ => {
            return Err(DecodeError::InvalidValue {
                kind,
                source: <serde_json::Error as de::Error>::custom("unexpected value").into(),
            })
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Offer,
    Answer,
    Candidate,
    Webrtc,
    Error,
}

impl Known {
    fn from_type(t: &str) -> Option<Known> {
        Some(match t {
            TYPE_OFFER => Known::Offer,
            TYPE_ANSWER => Known::Answer,
            TYPE_CANDIDATE => Known::Candidate,
            TYPE_WEBRTC => Known::Webrtc,
            TYPE_ERROR => Known::Error,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Known::Offer => TYPE_OFFER,
            Known::Answer => TYPE_ANSWER,
            Known::Candidate => TYPE_CANDIDATE,
            Known::Webrtc => TYPE_WEBRTC,
            Known::Error => TYPE_ERROR,
        }
    }
}

enum TypedValue {
    Absent,
    Null,
    Text(String),
    Candidate(IceCandidate),
    Description(Description),
}

enum Parsed<'a> {
    Done(Known, TypedValue),
    Deferred(Known, Option<&'a RawValue>),
    Unknown(String),
}

/// Reads the envelope. While it decodes a typed `value` it records the value's type in
/// `in_value`, so that an error can be attributed to the value rather than the envelope.
struct EnvelopeSeed<'c> {
    in_value: &'c Cell<Option<Known>>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Parsed<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"type\": ..., \"value\": ...}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // `type` usually comes first; then `value` is decoded straight into its typed form in
        // the same pass. If `value` comes first it is kept raw and decoded afterwards.
        let mut kind: Option<Result<Known, String>> = None;
        let mut typed: Option<TypedValue> = None;
        let mut raw: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => {
                    if kind.is_some() {
                        return Err(de::Error::duplicate_field("type"));
                    }
                    let t: Cow<'de, str> = map.next_value()?;
                    kind = Some(Known::from_type(&t).ok_or_else(|| t.into_owned()));
                }
                "value" => {
                    if typed.is_some() || raw.is_some() {
                        return Err(de::Error::duplicate_field("value"));
                    }
                    match &kind {
                        Some(Ok(known)) => {
                            self.in_value.set(Some(*known));
                            typed = Some(map.next_value_seed(ValueSeed(*known))?);
                            self.in_value.set(None);
                        }
                        Some(Err(_)) => {
                            map.next_value::<IgnoredAny>()?;
                            typed = Some(TypedValue::Absent);
                        }
                        None => raw = Some(map.next_value()?),
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match kind {
            None => Err(de::Error::missing_field("type")),
            Some(Err(unknown)) => Ok(Parsed::Unknown(unknown)),
            Some(Ok(known)) => Ok(match typed {
                Some(v) => Parsed::Done(known, v),
                None => Parsed::Deferred(known, raw),
            }),
        }
    }
}

struct ValueSeed(Known);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = TypedValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.0 {
            Known::Offer | Known::Answer | Known::Error => {
                String::deserialize(d).map(TypedValue::Text)
            }
            Known::Webrtc => V2Description::deserialize(d).map(|v| {
                TypedValue::Description(Description {
                    kind: v.kind,
                    sdp: v.sdp,
                    ice_servers: v.ice_servers.unwrap_or_default(),
                })
            }),
            Known::Candidate => d.deserialize_any(CandidateVisitor),
        }
    }
}

#[derive(Deserialize)]
struct V2Description {
    #[serde(rename = "type")]
    kind: SdpKind,
    sdp: String,
    #[serde(default)]
    ice_servers: Option<Vec<IceServer>>,
}

struct CandidateVisitor;

impl<'de> Visitor<'de> for CandidateVisitor {
    type Value = TypedValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a candidate string, null, or an RTCIceCandidateInit object")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TypedValue::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(TypedValue::Text(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TypedValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TypedValue::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut c = IceCandidate::default();
        let mut seen_candidate = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "candidate" => {
                    // `null` is the browser's "no candidate": end-of-candidates.
                    c.candidate = map.next_value::<Option<String>>()?.unwrap_or_default();
                    seen_candidate = true;
                }
                "sdpMid" => c.sdp_mid = map.next_value::<Option<String>>()?.map(Arc::from),
                "sdpMLineIndex" => c.sdp_m_line_index = map.next_value()?,
                "usernameFragment" => {
                    c.username_fragment = map.next_value::<Option<String>>()?.map(Arc::from);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_candidate {
            return Err(de::Error::missing_field("candidate"));
        }
        Ok(TypedValue::Candidate(c))
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encodes a message in the given dialect as one compact JSON frame.
///
/// [`Message::Unknown`] is written back exactly as it was received.
pub fn encode(message: &Message, dialect: Dialect) -> String {
    let mut out = String::with_capacity(estimate(message));
    encode_into(message, dialect, &mut out);
    out
}

fn estimate(message: &Message) -> usize {
    match message {
        Message::Description(d) => d.sdp.len() + d.sdp.len() / 16 + 64,
        Message::Candidate(c) => c.candidate.len() + 96,
        Message::EndOfCandidates(_) => 96,
        Message::Error(e) => e.text.len() + 32,
        Message::Unknown(u) => u.frame.len(),
    }
}

/// Encodes a message into `out` (appending), for callers that reuse a buffer.
pub fn encode_into(message: &Message, dialect: Dialect, out: &mut String) {
    match message {
        Message::Description(d) => {
            if dialect.descriptions == DescriptionForm::V1 && d.kind != SdpKind::Pranswer {
                let kind = if d.kind == SdpKind::Offer {
                    TYPE_OFFER
                } else {
                    TYPE_ANSWER
                };
                known_envelope_start(out, kind);
                json_str(out, &d.sdp);
            } else {
                known_envelope_start(out, TYPE_WEBRTC);
                out.push_str("{\"type\":");
                json_str(out, d.kind.as_str());
                out.push_str(",\"sdp\":");
                json_str(out, &d.sdp);
                if !d.ice_servers.is_empty() {
                    out.push_str(",\"ice_servers\":");
                    // Serializing plain strings and vectors cannot fail.
                    if let Ok(s) = serde_json::to_string(&d.ice_servers) {
                        out.push_str(&s);
                    }
                }
                out.push('}');
            }
            out.push('}');
        }
        Message::Candidate(c) => {
            known_envelope_start(out, TYPE_CANDIDATE);
            match dialect.candidates {
                CandidateForm::String => json_str(out, &c.candidate),
                CandidateForm::Object => candidate_object(
                    out,
                    &c.candidate,
                    c.sdp_mid.as_deref(),
                    c.sdp_m_line_index,
                    c.username_fragment.as_deref(),
                ),
            }
            out.push('}');
        }
        Message::EndOfCandidates(e) => {
            known_envelope_start(out, TYPE_CANDIDATE);
            match dialect.candidates {
                CandidateForm::String => out.push_str("\"\""),
                CandidateForm::Object => candidate_object(
                    out,
                    "",
                    e.sdp_mid.as_deref(),
                    e.sdp_m_line_index,
                    e.username_fragment.as_deref(),
                ),
            }
            out.push('}');
        }
        Message::Error(e) => {
            known_envelope_start(out, TYPE_ERROR);
            json_str(out, &e.text);
            out.push('}');
        }
        Message::Unknown(u) => out.push_str(&u.frame),
    }
}

/// `envelope_start` for this crate's own types, whose JSON needs no escaping: one copy.
fn known_envelope_start(out: &mut String, kind: &'static str) {
    debug_assert!(kind.bytes().all(|b| ESCAPE[usize::from(b)] == 0));
    out.push_str("{\"type\":\"");
    out.push_str(kind);
    out.push_str("\",\"value\":");
}

fn envelope_start(out: &mut String, kind: &str) {
    out.push_str("{\"type\":");
    json_str(out, kind);
    out.push_str(",\"value\":");
}

fn candidate_object(
    out: &mut String,
    candidate: &str,
    mid: Option<&str>,
    index: Option<u16>,
    ufrag: Option<&str>,
) {
    out.push_str("{\"candidate\":");
    json_str(out, candidate);
    out.push_str(",\"sdpMid\":");
    match mid {
        Some(m) => json_str(out, m),
        None => out.push_str("null"),
    }
    out.push_str(",\"sdpMLineIndex\":");
    match index {
        Some(i) => {
            use fmt::Write as _;
            let _ = write!(out, "{i}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"usernameFragment\":");
    match ufrag {
        Some(u) => json_str(out, u),
        None => out.push_str("null"),
    }
    out.push('}');
}

/// Appends `s` as a JSON string literal, escaped exactly as `JSON.stringify` does for
/// well-formed strings (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other controls as `\u00xx`;
/// everything else, `/` and non-ASCII included, verbatim).
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = find_escape(bytes, skip_plain_blocks(bytes, start));
        // `i` is the index of an ASCII byte (or the end), so both slice ends are char
        // boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        let Some(&b) = bytes.get(i) else { break };
        // SDP's line ends, two escapes at once.
        if bytes.get(i..i + 2) == Some(b"\r\n") {
            out.push_str("\\r\\n");
            start = i + 2;
            continue;
        }
        match ESCAPE[usize::from(b)] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            short => {
                out.push('\\');
                out.push(char::from(short));
            }
        }
        start = i + 1;
    }
    out.push('"');
}

/// For each byte: 0 if it is written as is, else the letter after the backslash (`u` for the
/// `\u00xx` form).
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

// ---------------------------------------------------------------------------------------------
// Forwarding

/// The envelope as serde_json reads it, for frames the fast reader leaves to it.
#[derive(Deserialize)]
pub(crate) struct RawEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) to: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) from: Option<Cow<'a, str>>,
}

/// The forwarding view of a frame: its envelope read, its `value` left as raw JSON text (the SDP
/// is never unescaped or copied). What a relay needs to route a frame.
///
/// The envelope may carry addressing fields for relays: `to` (the peer id a frame is for) and
/// `from` (the peer id it came from, set by the relay). Other fields are ignored here and kept
/// in [`RawFrame::frame`].
#[derive(Clone, Debug)]
pub struct RawFrame<'a> {
    kind: Cow<'a, str>,
    /// The raw JSON text of `value`.
    value: Option<&'a str>,
    to: Option<Cow<'a, str>>,
    from: Option<Cow<'a, str>>,
    frame: &'a str,
}

impl<'a> RawFrame<'a> {
    /// Reads the envelope of `frame` (refusing frames longer than `max_len`).
    pub fn parse(frame: &'a str, max_len: usize) -> Result<Self, DecodeError> {
        if frame.len() > max_len {
            return Err(DecodeError::TooLarge {
                len: frame.len(),
                max: max_len,
            });
        }
        if let Some(env) = crate::json_scan::envelope(frame) {
            return Ok(RawFrame {
                kind: Cow::Borrowed(env.kind),
                value: env.value,
                to: env.to.map(Cow::Borrowed),
                from: env.from.map(Cow::Borrowed),
                frame,
            });
        }
        RawFrame::parse_general(frame)
    }

    /// The general envelope reader: serde over any JSON object. The fast reader leaves unusual
    /// frames (escapes in the envelope's strings, say) and invalid ones to it: serde_json reads
    /// them or says what is wrong.
    fn parse_general(frame: &'a str) -> Result<Self, DecodeError> {
        let env: RawEnvelope<'a> =
            serde_json::from_str(frame).map_err(|e| DecodeError::Envelope(e.into()))?;
        Ok(RawFrame {
            kind: env.kind,
            value: env.value.map(RawValue::get),
            to: env.to,
            from: env.from,
            frame,
        })
    }

    /// The `type` field.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The `value` field as raw JSON text, when present.
    pub fn value_json(&self) -> Option<&'a str> {
        self.value
    }

    /// The `to` field (relay addressing), when present.
    pub fn to(&self) -> Option<&str> {
        self.to.as_deref()
    }

    /// The `from` field (relay addressing), when present.
    pub fn from(&self) -> Option<&str> {
        self.from.as_deref()
    }

    /// The whole frame text.
    pub fn frame(&self) -> &'a str {
        self.frame
    }

    /// Whether this is a `webrtc/candidate` frame (a candidate or end-of-candidates).
    pub fn is_candidate(&self) -> bool {
        self.kind == TYPE_CANDIDATE
    }

    /// Whether this is a description (`webrtc/offer`, `webrtc/answer`, `webrtc`).
    pub fn is_description(&self) -> bool {
        matches!(self.kind.as_ref(), TYPE_OFFER | TYPE_ANSWER | TYPE_WEBRTC)
    }

    /// Decodes the frame fully (the typed path).
    ///
    /// The envelope was already read: only `value` is parsed again.
    pub fn decode(&self) -> Result<Message, DecodeError> {
        let Some(known) = Known::from_type(&self.kind) else {
            return Ok(Message::Unknown(UnknownMessage {
                kind: self.kind.clone().into_owned(),
                frame: self.frame.to_owned(),
            }));
        };
        finish(known, decode_value(known, self.value)?)
    }

    /// Writes the frame with `from` set (and `to` removed), keeping `type` and the raw `value`
    /// untouched. A relay uses this to tell a receiver who sent a frame without re-escaping the
    /// SDP. Fields other than `type`, `value`, `to`, `from` are dropped.
    pub fn write_with_from(&self, from: &str) -> String {
        let value = self.value_json().unwrap_or("null");
        let mut out = String::with_capacity(self.frame.len() + from.len() + 16);
        envelope_start(&mut out, &self.kind);
        out.push_str(value);
        out.push_str(",\"from\":");
        json_str(&mut out, from);
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames near the canonical shapes: encoded messages with JSON's special characters in
    /// their strings, then spliced with bytes and escapes that the fast paths must leave to
    /// serde.
    fn near_canonical() -> impl Strategy<Value = String> {
        // Mostly characters the fast paths take (written as themselves or as short escapes);
        // now and then one written as `\u00xx`, which they leave to serde.
        let text = proptest::collection::vec(
            prop_oneof![
                40 => proptest::char::range('a', 'z'),
                2 => Just('"'),
                2 => Just('\\'),
                4 => Just('\r'),
                4 => Just('\n'),
                1 => Just('\t'),
                1 => Just('\u{8}'),
                1 => Just('\u{c}'),
                1 => Just('\u{7f}'),
                2 => Just('/'),
                2 => Just('é'),
                2 => Just('😀'),
                1 => Just('\u{0}'),
                1 => Just('\u{1f}'),
            ],
            0..48,
        )
        .prop_map(|v| v.into_iter().collect::<String>());
        let kind = prop_oneof![
            3 => Just(TYPE_OFFER.to_owned()),
            3 => Just(TYPE_ANSWER.to_owned()),
            3 => Just(TYPE_CANDIDATE.to_owned()),
            1 => Just(TYPE_WEBRTC.to_owned()),
            3 => Just(TYPE_ERROR.to_owned()),
            2 => Just("load/data".to_owned()),
            1 => Just("webrtc\\/offer".to_owned()),
            1 => Just("web\"rtc".to_owned()),
        ];
        let frame = (kind, text).prop_map(|(kind, value)| {
            let mut f = String::new();
            envelope_start(&mut f, &kind);
            json_str(&mut f, &value);
            f.push('}');
            f
        });
        let splice = prop_oneof![
            30 => Just(""),
            1 => Just("\\"),
            1 => Just("\\u0041"),
            1 => Just("\\ud83d\\ude00"),
            1 => Just("\\ud800"),
            1 => Just("\\x"),
            1 => Just("\""),
            1 => Just(" "),
            1 => Just("\t"),
            1 => Just("\u{1}"),
            1 => Just("}"),
            1 => Just(",\"to\":\"b\""),
            1 => Just("\\r\\n"),
            1 => Just("\\r"),
            1 => Just("null"),
        ];
        (
            frame,
            any::<proptest::sample::Index>(),
            splice,
            // Now and then a truncated frame.
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(frame, at, splice, cut)| {
                let mut i = at.index(frame.len() + 1);
                while !frame.is_char_boundary(i) {
                    i -= 1;
                }
                let (head, tail) = frame.split_at(i);
                if cut {
                    format!("{head}{splice}")
                } else {
                    format!("{head}{splice}{tail}")
                }
            })
    }

    fn raw_view(
        r: Result<RawFrame<'_>, DecodeError>,
    ) -> Result<(String, Option<&str>), DecodeError> {
        r.map(|r| {
            (
                format!("{}|{:?}|{:?}", r.kind(), r.to(), r.from()),
                r.value_json(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The canonical fast path accepts and decodes exactly as serde does.
        #[test]
        fn fast_decode_matches_serde(frame in near_canonical()) {
            prop_assert_eq!(decode(&frame), decode_general(&frame));
        }

        /// The forwarding fast path reads exactly what serde reads, and refuses what it refuses.
        #[test]
        fn fast_forwarding_matches_serde(frame in near_canonical()) {
            prop_assert_eq!(
                raw_view(RawFrame::parse(&frame, usize::MAX)),
                raw_view(RawFrame::parse_general(&frame))
            );
        }

        #[test]
        fn fast_paths_match_serde_on_any_text(frame in any::<String>()) {
            prop_assert_eq!(decode(&frame), decode_general(&frame));
            prop_assert_eq!(
                raw_view(RawFrame::parse(&frame, usize::MAX)),
                raw_view(RawFrame::parse_general(&frame))
            );
        }
    }

    #[test]
    fn fast_paths_take_the_common_frames() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=x:\"/\\\t\r\n";
        for m in [
            Message::Description(Description::offer(sdp)),
            Message::Description(Description::answer(sdp)),
            Message::Candidate(IceCandidate::new(
                "candidate:1 1 udp 1 192.0.2.1 1 typ host",
            )),
            Message::EndOfCandidates(EndOfCandidates::default()),
            Message::Error(ErrorMessage::new("webrtc/offer", "bad \"sdp\"")),
        ] {
            let frame = encode(&m, Dialect::GO2RTC);
            assert_eq!(decode_canonical(&frame), Some(m), "{frame}");
            assert!(crate::json_scan::envelope(&frame).is_some(), "{frame}");
        }
        // Left to serde: a `\u` escape, whitespace, another field, a v2 object.
        for frame in [
            r#"{"type":"error","value":"\u0041"}"#,
            r#"{"type":"error", "value":"a"}"#,
            r#"{"type":"error","value":"a","to":"b"}"#,
            r#"{"type":"webrtc","value":{"type":"offer","sdp":"v=0"}}"#,
        ] {
            assert_eq!(decode_canonical(frame), None, "{frame}");
            assert!(decode(frame).is_ok(), "{frame}");
        }
    }

    #[test]
    fn seed_frames_round_trip() {
        for f in [
            r#"{"type":"webrtc/offer","value":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}"#,
            r#"{"type":"webrtc/candidate","value":"candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host"}"#,
            r#"{"type":"webrtc/candidate","value":""}"#,
            r#"{"type":"error","value":"webrtc/offer: bad sdp"}"#,
        ] {
            let m = decode(f).expect("valid frame");
            assert_eq!(encode(&m, Dialect::GO2RTC), f);
        }
    }

    #[test]
    fn value_before_type_is_accepted() {
        let m = decode(r#"{"value":"v=0\r\n","type":"webrtc/answer"}"#).expect("valid");
        assert_eq!(m, Message::Description(Description::answer("v=0\r\n")));
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            decode(r#"{"type":"webrtc/offer","value":5}"#),
            Err(DecodeError::InvalidValue {
                kind: TYPE_OFFER,
                ..
            })
        ));
        assert!(matches!(
            decode(r#"{"value":5,"type":"webrtc/offer"}"#),
            Err(DecodeError::InvalidValue {
                kind: TYPE_OFFER,
                ..
            })
        ));
        assert!(matches!(
            decode(r#"{"type":"webrtc/offer"}"#),
            Err(DecodeError::MissingValue { kind: TYPE_OFFER })
        ));
        assert!(matches!(decode("[1]"), Err(DecodeError::Envelope(_))));
        assert!(matches!(decode("{}"), Err(DecodeError::Envelope(_))));
        assert!(matches!(
            decode(r#"{"type":"x"} trailing"#),
            Err(DecodeError::Envelope(_))
        ));
    }
}
