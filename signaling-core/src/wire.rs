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

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

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

/// The form of a valid description or candidate frame: `webrtc/offer` / `webrtc/answer` (v1)
/// or `webrtc` (v2); a `webrtc/candidate` value that is a string or an object. `None` for
/// other types, a candidate frame without a value, and anything that does not decode.
pub fn frame_form(frame: &str) -> Option<Form> {
    decode_general(frame).ok().and_then(|(_, form)| form)
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
    decode_with_form(frame, max_len).map(|(message, _)| message)
}

/// [`decode_with_limit`], and the form the frame was written in (see [`frame_form`]).
pub(crate) fn decode_with_form(
    frame: &str,
    max_len: usize,
) -> Result<(Message, Option<Form>), DecodeError> {
    if frame.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: max_len,
        });
    }
    decode_general(frame)
}

/// The general decoder: serde over any JSON object, any key order, whitespace and escapes.
fn decode_general(frame: &str) -> Result<(Message, Option<Form>), DecodeError> {
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
            let message = Message::Unknown(UnknownMessage {
                kind,
                frame: frame.to_owned(),
            });
            return Ok((message, None));
        }
    };
    let form = match (kind, &value) {
        (Known::Offer | Known::Answer, _) => Some(Form::Description(DescriptionForm::V1)),
        (Known::Webrtc, _) => Some(Form::Description(DescriptionForm::V2)),
        (Known::Candidate, TypedValue::Text(_)) => Some(Form::Candidate(CandidateForm::String)),
        (Known::Candidate, TypedValue::Candidate(_)) => {
            Some(Form::Candidate(CandidateForm::Object))
        }
        _ => None,
    };
    finish(kind, value).map(|message| (message, form))
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
    let mut out = String::new();
    encode_into(message, dialect, &mut out);
    out
}

/// `{"type": ..., "value": ...}`, the envelope every frame is written in.
#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    value: T,
}

/// A v2 description: `{"type":"offer","sdp":...,"ice_servers":[...]}`.
#[derive(Serialize)]
struct V2Out<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sdp: &'a str,
    #[serde(skip_serializing_if = "<[IceServer]>::is_empty")]
    ice_servers: &'a [IceServer],
}

/// A candidate (or end-of-candidates) as a browser's `RTCIceCandidate.toJSON()`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CandidateOut<'a> {
    candidate: &'a str,
    sdp_mid: Option<&'a str>,
    #[serde(rename = "sdpMLineIndex")]
    sdp_m_line_index: Option<u16>,
    username_fragment: Option<&'a str>,
}

/// Encodes a message into `out` (appending), for callers that reuse a buffer.
pub fn encode_into(message: &Message, dialect: Dialect, out: &mut String) {
    fn write<T: Serialize>(out: &mut String, kind: &str, value: T) {
        // Strings, numbers, options and slices of plain structs always serialize.
        if let Ok(json) = serde_json::to_string(&Envelope { kind, value }) {
            out.push_str(&json);
        }
    }
    match message {
        Message::Description(d) => match (dialect.descriptions, d.kind) {
            (DescriptionForm::V1, SdpKind::Offer) => write(out, TYPE_OFFER, &d.sdp),
            (DescriptionForm::V1, SdpKind::Answer) => write(out, TYPE_ANSWER, &d.sdp),
            // v1 has no provisional answer.
            (DescriptionForm::V2, _) | (_, SdpKind::Pranswer) => {
                let value = V2Out {
                    kind: d.kind.as_str(),
                    sdp: &d.sdp,
                    ice_servers: &d.ice_servers,
                };
                write(out, TYPE_WEBRTC, value);
            }
        },
        Message::Candidate(c) => match dialect.candidates {
            CandidateForm::String => write(out, TYPE_CANDIDATE, &c.candidate),
            CandidateForm::Object => {
                let value = CandidateOut {
                    candidate: &c.candidate,
                    sdp_mid: c.sdp_mid.as_deref(),
                    sdp_m_line_index: c.sdp_m_line_index,
                    username_fragment: c.username_fragment.as_deref(),
                };
                write(out, TYPE_CANDIDATE, value);
            }
        },
        Message::EndOfCandidates(e) => match dialect.candidates {
            CandidateForm::String => write(out, TYPE_CANDIDATE, ""),
            CandidateForm::Object => {
                let value = CandidateOut {
                    candidate: "",
                    sdp_mid: e.sdp_mid.as_deref(),
                    sdp_m_line_index: e.sdp_m_line_index,
                    username_fragment: e.username_fragment.as_deref(),
                };
                write(out, TYPE_CANDIDATE, value);
            }
        },
        Message::Error(e) => write(out, TYPE_ERROR, &e.text),
        Message::Unknown(u) => out.push_str(&u.frame),
    }
}

// ---------------------------------------------------------------------------------------------
// Forwarding

/// The envelope as the forwarding path reads it: the `value` is borrowed as raw JSON.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    to: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
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
    value: Option<&'a RawValue>,
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
        let env: RawEnvelope<'a> =
            serde_json::from_str(frame).map_err(|e| DecodeError::Envelope(e.into()))?;
        Ok(RawFrame {
            kind: env.kind,
            value: env.value,
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
        self.value.map(RawValue::get)
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
        finish(known, decode_value(known, self.value_json())?)
    }

    /// Writes the frame with `from` set (and `to` removed), keeping `type` and the raw `value`
    /// untouched. A relay uses this to tell a receiver who sent a frame without re-escaping the
    /// SDP. Fields other than `type`, `value`, `to`, `from` are dropped.
    pub fn write_with_from(&self, from: &str) -> String {
        #[derive(Serialize)]
        struct WithFrom<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            value: Option<&'a RawValue>,
            from: &'a str,
        }
        serde_json::to_string(&WithFrom {
            kind: &self.kind,
            value: self.value,
            from,
        })
        .unwrap_or_default()
    }
}

/// Checks that every string of a JSON text (keys and values, at any depth) is valid Unicode.
///
/// The forwarding view ([`RawFrame`]) and the typed decoder skip what they do not read, and
/// skipping a string does not look into its `\u` escapes, so a lone surrogate (`"\ud800"`)
/// passes them. Only an escape can hold one (the text itself is UTF-8), so a text without `\u`
/// is valid as it is; a text with one is read again with every string deserialized as a `str`,
/// which serde_json refuses for a lone surrogate.
pub(crate) fn check_strings(json: &str) -> Result<(), JsonError> {
    if memchr::memmem::find(json.as_bytes(), br"\u").is_none() {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(json);
    AllStrings.deserialize(&mut de)?;
    de.end()?;
    Ok(())
}

/// Visits a whole JSON value, reading every string (and key) as a `str`.
struct AllStrings;

impl<'de> DeserializeSeed<'de> for AllStrings {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AllStrings {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(AllStrings)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(AllStrings)?.is_some() {
            map.next_value_seed(AllStrings)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn lone_surrogates_are_found_anywhere_in_a_frame() {
        for bad in [
            r#"{"type":"x","value":"\ud800"}"#,
            r#"{"type":"x","value":"a\udc00b"}"#,
            r#"{"type":"x","value":"\ud800\u0041"}"#,
            r#"{"type":"x","value":{"deep":[1,{"k":"\udbff"}]}}"#,
            r#"{"type":"x","extra":"\ud800"}"#,
        ] {
            assert!(check_strings(bad).is_err(), "{bad}");
            // The forwarding view skips it.
            assert!(RawFrame::parse(bad, usize::MAX).is_ok(), "{bad}");
        }
        // In a key (which the forwarding view reads, and refuses too).
        assert!(check_strings(r#"{"type":"x","\ud800":1}"#).is_err());
        assert!(check_strings(r#"{"type":"x","value":{"\udfff":1}}"#).is_err());
        for good in [
            r#"{"type":"x","value":"\ud83d\ude00 \u00e9 \\ud800"}"#,
            r#"{"type":"x","value":[null,true,-1,2.5e3,18446744073709551615]}"#,
            r#"{"type":"x","value":"\u0000"}"#,
        ] {
            assert_eq!(check_strings(good), Ok(()), "{good}");
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
