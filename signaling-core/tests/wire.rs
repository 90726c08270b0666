//! Golden wire vectors and round-trip properties of the JSON codec.
use proptest::prelude::*;
use serde_json::Value;
use signaling_core::wire::{
    self, DecodeError, Description, Dialect, EndOfCandidates, ErrorMessage, IceCandidate,
    IceServer, Message, RawFrame, SdpKind, UnknownMessage,
};

fn dialect(name: &str) -> Dialect {
    match name {
        "go2rtc" => Dialect::GO2RTC,
        "go2rtc_v2" => Dialect::GO2RTC_V2,
        "browser" => Dialect::BROWSER,
        other => panic!("unknown dialect {other}"),
    }
}

fn opt_str(v: &Value) -> Option<std::sync::Arc<str>> {
    v.as_str().map(Into::into)
}

fn opt_u16(v: &Value) -> Option<u16> {
    v.as_u64().map(|n| u16::try_from(n).expect("index fits"))
}

/// The message a vector's `expect` describes.
fn expected(expect: &Value, frame: &str) -> Message {
    let (key, v) = expect
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("one key");
    match key.as_str() {
        "description" => Message::Description(Description {
            kind: serde_json::from_value(v["kind"].clone()).expect("kind"),
            sdp: v["sdp"].as_str().expect("sdp").to_owned(),
            ice_servers: serde_json::from_value::<Vec<IceServer>>(v["ice_servers"].clone())
                .expect("ice servers"),
        }),
        "candidate" => Message::Candidate(IceCandidate {
            candidate: v["candidate"].as_str().expect("candidate").to_owned(),
            sdp_mid: opt_str(&v["sdpMid"]),
            sdp_m_line_index: opt_u16(&v["sdpMLineIndex"]),
            username_fragment: opt_str(&v["usernameFragment"]),
        }),
        "end_of_candidates" => Message::EndOfCandidates(EndOfCandidates {
            sdp_mid: opt_str(&v["sdpMid"]),
            sdp_m_line_index: opt_u16(&v["sdpMLineIndex"]),
            username_fragment: opt_str(&v["usernameFragment"]),
        }),
        "error" => Message::Error(ErrorMessage {
            text: v.as_str().expect("text").to_owned(),
        }),
        "unknown" => Message::Unknown(UnknownMessage {
            kind: v.as_str().expect("kind").to_owned(),
            frame: frame.to_owned(),
        }),
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn golden_frames() {
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("vectors/frames.json")).expect("vectors parse");
    assert!(vectors.len() >= 20);
    for v in &vectors {
        let name = v["name"].as_str().expect("name");
        let frame = v["frame"].as_str().expect("frame");
        let decoded = wire::decode(frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected(&v["expect"], frame), "{name}");
        if v["canonical"].as_bool().expect("canonical") {
            let d = dialect(v["dialect"].as_str().expect("dialect"));
            assert_eq!(wire::encode(&decoded, d), frame, "{name}: re-encoding");
        }
        // The forwarding view agrees with the typed view on the envelope.
        let raw = RawFrame::parse(frame, wire::DEFAULT_MAX_FRAME_LEN).expect(name);
        assert_eq!(
            raw.decode().expect(name),
            decoded,
            "{name}: forwarding path"
        );
        assert_eq!(
            raw.kind(),
            serde_json::from_str::<Value>(frame).expect(name)["type"],
            "{name}"
        );
    }
}

#[test]
fn golden_bad_frames() {
    let vectors: Vec<Value> =
        serde_json::from_str(include_str!("vectors/bad_frames.json")).expect("vectors parse");
    for v in &vectors {
        let frame = v["frame"].as_str().expect("frame");
        let err = wire::decode(frame).expect_err(frame);
        let kind = match err {
            DecodeError::Envelope(_) => "envelope",
            DecodeError::MissingValue { .. } => "missing_value",
            DecodeError::InvalidValue { .. } => "invalid_value",
            DecodeError::TooLarge { .. } => "too_large",
            _ => "other",
        };
        assert_eq!(kind, v["error"].as_str().expect("error"), "{frame}: {err}");
    }
}

#[test]
fn oversized_frames_are_refused_before_parsing() {
    let big = format!(
        r#"{{"type":"webrtc/offer","value":"{}"}}"#,
        "a".repeat(70_000)
    );
    assert!(matches!(
        wire::decode(&big),
        Err(DecodeError::TooLarge { max: 65536, .. })
    ));
    assert!(wire::decode_with_limit(&big, 100_000).is_ok());
    assert!(matches!(
        RawFrame::parse(&big, 1000),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn forwarding_rewrites_from_without_touching_value() {
    let frame = r#"{"type":"webrtc/offer","value":"v=0\r\n\u00e9","to":"b"}"#;
    let raw = RawFrame::parse(frame, 1024).expect("valid");
    assert_eq!(raw.to(), Some("b"));
    assert_eq!(raw.value_json(), Some(r#""v=0\r\n\u00e9""#));
    assert!(raw.is_description() && !raw.is_candidate());
    assert_eq!(
        raw.write_with_from("a\"1"),
        r#"{"type":"webrtc/offer","value":"v=0\r\n\u00e9","from":"a\"1"}"#
    );
}

#[test]
fn error_message_parts() {
    let e = ErrorMessage::new("webrtc/offer", "bad");
    assert_eq!(e.text, "webrtc/offer: bad");
    assert_eq!(e.request_type(), Some("webrtc/offer"));
    assert_eq!(e.message(), "bad");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, biased towards the characters JSON escapes.
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\r'),
                Just('\n'),
                Just('\t'),
                Just('\u{0}'),
                Just('\u{1f}'),
                Just('\u{7f}'),
                Just('/'),
                Just('é'),
                Just('\u{2028}'),
                Just('😀'),
                proptest::char::range('a', 'z')
            ],
            0..64
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

fn ice_server() -> impl Strategy<Value = IceServer> {
    (
        proptest::collection::vec(text(), 1..3),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(urls, username, credential)| IceServer {
            urls,
            username,
            credential,
        })
}

fn kind() -> impl Strategy<Value = SdpKind> {
    prop_oneof![
        Just(SdpKind::Offer),
        Just(SdpKind::Answer),
        Just(SdpKind::Pranswer)
    ]
}

/// Messages every field of which the dialect can carry.
fn message(d: Dialect) -> BoxedStrategy<Message> {
    let object = d.candidates == wire::CandidateForm::Object;
    let v2 = d.descriptions == wire::DescriptionForm::V2;
    let opt_text = move || {
        if object {
            proptest::option::of(text()).boxed()
        } else {
            Just(None).boxed()
        }
    };
    let opt_index = move || {
        if object {
            proptest::option::of(any::<u16>()).boxed()
        } else {
            Just(None).boxed()
        }
    };
    let description = (
        kind(),
        text(),
        proptest::collection::vec(ice_server(), 0..3),
    )
        .prop_map(move |(kind, sdp, ice_servers)| {
            // v1 cannot carry ice_servers, except on a pranswer (always written in v2 form).
            let ice_servers = if v2 || kind == SdpKind::Pranswer {
                ice_servers
            } else {
                Vec::new()
            };
            Message::Description(Description {
                kind,
                sdp,
                ice_servers,
            })
        });
    let candidate = (
        text().prop_filter("non-empty", |s| !s.is_empty()),
        opt_text(),
        opt_index(),
        opt_text(),
    )
        .prop_map(
            |(candidate, sdp_mid, sdp_m_line_index, username_fragment)| {
                Message::Candidate(IceCandidate {
                    candidate,
                    sdp_mid: sdp_mid.map(Into::into),
                    sdp_m_line_index,
                    username_fragment: username_fragment.map(Into::into),
                })
            },
        );
    let end = (opt_text(), opt_index(), opt_text()).prop_map(
        |(sdp_mid, sdp_m_line_index, username_fragment)| {
            Message::EndOfCandidates(EndOfCandidates {
                sdp_mid: sdp_mid.map(Into::into),
                sdp_m_line_index,
                username_fragment: username_fragment.map(Into::into),
            })
        },
    );
    let error = text().prop_map(|text| Message::Error(ErrorMessage { text }));
    let unknown = ("[a-z/]{1,12}", text())
        .prop_filter("not a known type", |(k, _)| {
            !matches!(
                k.as_str(),
                "webrtc/offer" | "webrtc/answer" | "webrtc/candidate" | "webrtc" | "error"
            )
        })
        .prop_map(|(kind, v)| {
            let frame = serde_json::json!({"type": kind, "value": v}).to_string();
            Message::Unknown(UnknownMessage { kind, frame })
        });
    prop_oneof![description, candidate, end, error, unknown].boxed()
}

/// Every byte that must be escaped, at every offset of plain runs long enough to cross the
/// codec's 16- and 64-byte scanning steps, is escaped as serde_json does and read back.
#[test]
fn escapes_are_found_at_every_offset() {
    for len in 0..150 {
        for at in 0..=len {
            for special in ["\"", "\\", "\n", "\r\n", "\r", "\u{1}", "\u{1f}", "\t"] {
                let mut text = "x".repeat(len);
                text.insert_str(at, special);
                let m = Message::Error(ErrorMessage { text: text.clone() });
                let frame = wire::encode(&m, Dialect::GO2RTC);
                let json = serde_json::to_string(&text).expect("a string");
                assert_eq!(frame, format!(r#"{{"type":"error","value":{json}}}"#));
                assert_eq!(wire::decode(&frame), Ok(m), "{frame:?}");
            }
        }
    }
}

fn any_dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![
        Just(Dialect::GO2RTC),
        Just(Dialect::GO2RTC_V2),
        Just(Dialect::BROWSER)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_encode_round_trip((d, m) in any_dialect().prop_flat_map(|d| (Just(d), message(d)))) {
        let frame = wire::encode(&m, d);
        let back = wire::decode_with_limit(&frame, usize::MAX).expect("own frames decode");
        prop_assert_eq!(&back, &m);
        // Canonical frames re-encode byte for byte.
        prop_assert_eq!(wire::encode(&back, d), frame.clone());
        // The frame is valid JSON.
        prop_assert!(serde_json::from_str::<Value>(&frame).is_ok());
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_does(s in text()) {
        // serde_json escapes exactly as JSON.stringify does for well-formed strings.
        let frame = wire::encode(&Message::Error(ErrorMessage { text: s.clone() }), Dialect::GO2RTC);
        let expected = format!(r#"{{"type":"error","value":{}}}"#, serde_json::to_string(&s).expect("string"));
        prop_assert_eq!(frame, expected);
    }

    #[test]
    fn decoding_arbitrary_input_never_panics(s in any::<String>()) {
        let _ = wire::decode(&s);
        let _ = RawFrame::parse(&s, 1 << 20);
    }

    #[test]
    fn decoding_mutated_frames_never_panics(
        m in message(Dialect::BROWSER),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let frame = wire::encode(&m, Dialect::BROWSER);
        let mut bytes = frame.into_bytes();
        if !bytes.is_empty() {
            let i = cut.index(bytes.len());
            bytes[i] = byte;
            let s = String::from_utf8_lossy(&bytes);
            let _ = wire::decode(&s);
            // And a truncated frame.
            let end = s.char_indices().nth(i / 2).map_or(0, |(j, _)| j);
            let _ = wire::decode(&s[..end]);
        }
    }
}

#[test]
fn the_form_of_a_frame_is_read_off_its_type_and_value() {
    use signaling_core::wire::{frame_form, CandidateForm, DescriptionForm, Form};
    let cases = [
        (
            r#"{"type":"webrtc/offer","value":"v=0"}"#,
            Some(Form::Description(DescriptionForm::V1)),
        ),
        (
            r#"{ "value": "v=0", "type": "webrtc/answer" }"#,
            Some(Form::Description(DescriptionForm::V1)),
        ),
        (
            r#"{"type":"webrtc","value":{"type":"offer","sdp":"v=0","ice_servers":[]}}"#,
            Some(Form::Description(DescriptionForm::V2)),
        ),
        (
            r#"{"type":"webrtc/candidate","value":"candidate:1 1 udp 1 192.0.2.1 1 typ host"}"#,
            Some(Form::Candidate(CandidateForm::String)),
        ),
        (
            r#"{"type":"webrtc/candidate","value":""}"#,
            Some(Form::Candidate(CandidateForm::String)),
        ),
        (
            r#"{"type":"webrtc/candidate","value":{"candidate":"","sdpMid":"0"}}"#,
            Some(Form::Candidate(CandidateForm::Object)),
        ),
        (r#"{"type":"webrtc/candidate","value":null}"#, None),
        (r#"{"type":"webrtc/candidate"}"#, None),
        (r#"{"type":"error","value":"webrtc/offer: no"}"#, None),
        (r#"{"type":"relay/welcome","value":{"id":"1"}}"#, None),
        ("not json", None),
    ];
    for (frame, form) in cases {
        assert_eq!(frame_form(frame), form, "{frame}");
    }
}
