//! SDP fragments (RFC 8840): the WHIP and WHEP example bodies read and written back byte for
//! byte, a restart answer built to match WHEP's, what real clients send, every error, the
//! bounds, and property tests.

use proptest::prelude::*;
use signaling_core::candidate::{
    Address, Candidate, CandidateError, CandidateType, TcpType, TransportProtocol,
};
use signaling_core::sdp::MediaLineError;
use signaling_core::sdpfrag::{
    FragLimits, FragMedia, IceParams, SdpFrag, SdpFragError, ValueError, MEDIA_TYPE,
};

const WHEP_TRICKLE: &str = include_str!("data/sdpfrag/whep-trickle.sdpfrag");
const WHEP_RESTART_REQUEST: &str = include_str!("data/sdpfrag/whep-restart-request.sdpfrag");
const WHEP_RESTART_RESPONSE: &str = include_str!("data/sdpfrag/whep-restart-response.sdpfrag");
const WHIP_DRAFT_TRICKLE: &str = include_str!("data/sdpfrag/whip-draft-trickle.sdpfrag");
const WHIP_DRAFT_RESTART_REQUEST: &str =
    include_str!("data/sdpfrag/whip-draft-restart-request.sdpfrag");
const WHIP_DRAFT_RESTART_RESPONSE: &str =
    include_str!("data/sdpfrag/whip-draft-restart-response.sdpfrag");
const MEDOOZE_TRICKLE: &str = include_str!("data/sdpfrag/medooze-trickle.sdpfrag");

const VECTORS: [&str; 7] = [
    WHEP_TRICKLE,
    WHEP_RESTART_REQUEST,
    WHEP_RESTART_RESPONSE,
    WHIP_DRAFT_TRICKLE,
    WHIP_DRAFT_RESTART_REQUEST,
    WHIP_DRAFT_RESTART_RESPONSE,
    MEDOOZE_TRICKLE,
];

fn parse(text: &str) -> SdpFrag {
    SdpFrag::parse(text).unwrap_or_else(|e| panic!("must parse: {e}\n{text}"))
}

fn err(text: &str) -> SdpFragError {
    match SdpFrag::parse(text) {
        Ok(frag) => panic!("must be refused: {text:?} gave {frag:?}"),
        Err(e) => e,
    }
}

fn candidate(text: &str) -> Candidate {
    Candidate::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_media_type_is_rfc_8840s() {
    assert_eq!(MEDIA_TYPE, "application/trickle-ice-sdpfrag");
}

#[test]
fn vectors_use_crlf_and_the_example_lengths() {
    for text in VECTORS {
        assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
        assert!(text.ends_with("\r\n"));
    }
    // The Content-Length the WHEP and WHIP texts give for these bodies (CRLF line endings).
    assert_eq!(WHEP_TRICKLE.len(), 576);
    assert_eq!(WHIP_DRAFT_RESTART_REQUEST.len(), 54);
    assert_eq!(WHIP_DRAFT_RESTART_RESPONSE.len(), 102);
}

#[test]
fn every_vector_writes_back_byte_for_byte() {
    for text in VECTORS {
        assert_eq!(parse(text).to_string(), text);
    }
}

#[test]
fn lf_line_endings_and_a_missing_final_newline_mean_the_same() {
    for text in VECTORS {
        let frag = parse(text);
        let lf = text.replace("\r\n", "\n");
        assert_eq!(parse(&lf), frag);
        assert_eq!(parse(lf.trim_end_matches('\n')), frag);
        assert_eq!(parse(text.trim_end_matches("\r\n")), frag);
        // Blank lines (a trailing one, as concatenated bodies have) say nothing.
        assert_eq!(parse(&format!("{text}\r\n")), frag);
    }
}

#[test]
fn whep_trickle_body() {
    let frag = parse(WHEP_TRICKLE);
    assert_eq!(frag.bundle(), ["0", "1"]);
    assert!(frag.ice().is_empty());
    assert!(!frag.end_of_candidates());
    assert_eq!(frag.media().len(), 1);
    let media = &frag.media()[0];
    assert_eq!(media.m_line(), "audio 9 UDP/TLS/RTP/SAVPF 111");
    assert_eq!(media.media(), "audio");
    assert_eq!(media.mid(), Some("0"));
    assert_eq!(media.ice().ufrag(), Some("EsAw"));
    assert_eq!(media.ice().pwd(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
    assert!(media.end_of_candidates());
    assert_eq!(
        (frag.ufrag(), frag.pwd()),
        (Some("EsAw"), Some("P2uYro0UCOQ4zxjKXaWCBui1"))
    );

    let seen: Vec<_> = frag
        .candidates()
        .map(|(mid, c)| {
            (
                mid,
                c.foundation(),
                c.transport().clone(),
                c.address().to_string(),
                c.port(),
                c.tcp_type(),
                c.extension("network-id"),
                c.ufrag(),
                c.generation(),
            )
        })
        .collect();
    use TransportProtocol::{Tcp, Udp};
    let active = Some(TcpType::Active);
    let (mid, ufrag, generation) = (Some("0"), Some("EsAw"), Some(0));
    assert_eq!(
        seen,
        [
            (
                mid,
                "1387637174",
                Udp,
                "192.0.2.1".into(),
                61764,
                None,
                Some("1"),
                ufrag,
                generation
            ),
            (
                mid,
                "3471623853",
                Udp,
                "198.51.100.2".into(),
                61765,
                None,
                Some("2"),
                ufrag,
                generation
            ),
            (
                mid,
                "473322822",
                Tcp,
                "192.0.2.1".into(),
                9,
                active,
                Some("1"),
                ufrag,
                generation
            ),
            (
                mid,
                "2154773085",
                Tcp,
                "198.51.100.2".into(),
                9,
                active,
                Some("2"),
                ufrag,
                generation
            ),
        ]
    );
}

#[test]
fn whep_restart_bodies() {
    let request = parse(WHEP_RESTART_REQUEST);
    assert_eq!(request.ice().options(), Some("trickle ice2"));
    assert_eq!(request.bundle(), ["0", "1"]);
    assert_eq!(request.ufrag(), Some("ysXw"));
    assert_eq!(request.pwd(), Some("vw5LmwG4y/e6dPP/zAP9Gp5k"));
    assert_eq!(request.candidates().count(), 4);
    assert!(!request.media()[0].end_of_candidates());

    let response = parse(WHEP_RESTART_RESPONSE);
    assert!(response.ice().lite());
    assert_eq!(response.ice().options(), Some("trickle ice2"));
    assert_eq!(response.ufrag(), Some("289b31b754eaa438"));
    let (mid, c) = response.candidates().next().expect("one candidate");
    assert_eq!(
        (mid, c.port(), c.kind()),
        (Some("0"), 39132, CandidateType::Host)
    );
    assert!(response.media()[0].end_of_candidates());
}

#[test]
fn a_restart_answer_matches_the_whep_example_byte_for_byte() {
    let request = parse(WHEP_RESTART_REQUEST);
    let ice = IceParams::new(
        "289b31b754eaa438",
        "0b66f472495ef0ccac7bda653ab6be49ea13114472a5d10a",
    )
    .and_then(|ice| ice.with_options("trickle ice2"))
    .expect("valid")
    .with_lite(true);
    let host = candidate("candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host");
    let answer = request.restart_answer(ice, None, [host], true);
    assert_eq!(answer.to_string(), WHEP_RESTART_RESPONSE);
}

#[test]
fn a_restart_answer_to_credentials_only_matches_the_whip_draft_example() {
    let request = parse(WHIP_DRAFT_RESTART_REQUEST);
    assert!(request.media().is_empty());
    assert_eq!(request.ice().ufrag(), Some("ysXw"));
    let ice = IceParams::new(
        "289b31b754eaa438",
        "0b66f472495ef0ccac7bda653ab6be49ea13114472a5d10a",
    )
    .expect("valid")
    .with_lite(true);
    let answer = request.restart_answer(ice, None, [], false);
    assert_eq!(answer.to_string(), WHIP_DRAFT_RESTART_RESPONSE);
}

#[test]
fn a_restart_answer_to_credentials_only_uses_the_sessions_section_when_given() {
    // medooze's whip.js restarts with credentials only, then replaces all its remote
    // candidates with those of the answer: they must be in it.
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE v1 a1\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:v1\r\n\
                 a=sendonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a1\r\n";
    let section = FragMedia::first_in_sdp(offer).expect("the offer has an m-section");
    assert_eq!(section.m_line(), "video 9 UDP/TLS/RTP/SAVPF 96 97");
    assert_eq!(section.mid(), Some("v1"));

    let request = parse(WHIP_DRAFT_RESTART_REQUEST);
    let ice = IceParams::new("NewUfrag", "NewPasswordNewPassword").expect("valid");
    let host = candidate("candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host");
    let answer = request.restart_answer(ice, Some(&section), [host], true);
    assert_eq!(
        answer.to_string(),
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:v1\r\na=ice-ufrag:NewUfrag\r\n\
         a=ice-pwd:NewPasswordNewPassword\r\n\
         a=candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host\r\na=end-of-candidates\r\n"
    );
    // The request's own section wins over the session's.
    let whep = parse(WHEP_RESTART_REQUEST);
    let answer = whep.restart_answer(IceParams::default(), Some(&section), [], false);
    assert_eq!(answer.media()[0].mid(), Some("0"));
    assert_eq!(FragMedia::first_in_sdp("v=0\r\ns=-\r\n"), None);
    assert_eq!(
        FragMedia::first_in_sdp("m=audio 9 RTP/AVP 0\r\na=mid:a b\r\n"),
        None
    );
}

#[test]
fn whip_draft_trickle_has_session_level_credentials() {
    let frag = parse(WHIP_DRAFT_TRICKLE);
    assert_eq!(frag.ice().ufrag(), Some("EsAw"));
    assert!(frag.media()[0].ice().is_empty());
    assert_eq!(frag.ufrag(), Some("EsAw"));
    assert_eq!(frag.media()[0].m_line(), "audio 9 RTP/AVP 0");
    assert_eq!(frag.candidates().count(), 4);
}

#[test]
fn chrome_candidates_from_a_medooze_style_body() {
    let frag = parse(MEDOOZE_TRICKLE);
    assert_eq!(frag.ufrag(), Some("7sFv"));
    assert_eq!(frag.media()[0].media(), "video");
    let cands: Vec<&Candidate> = frag.candidates().map(|(_, c)| c).collect();
    assert_eq!(cands.len(), 5);
    assert!(cands[0].address().is_mdns());
    assert_eq!(cands[0].extension("network-cost"), Some("999"));
    assert_eq!(cands[1].address().to_string(), "2001:db8::1");
    assert_eq!(cands[2].kind(), CandidateType::Srflx);
    assert_eq!(cands[2].related_port(), Some(0));
    assert_eq!(cands[3].tcp_type(), Some(TcpType::Active));
    assert_eq!(cands[4].kind(), CandidateType::Relay);
    assert_eq!(
        cands[4].related_address(),
        Some(&Address::Ip("203.0.113.7".parse().expect("ip")))
    );
    assert!(cands.iter().all(|c| c.ufrag() == Some("7sFv")));
}

#[test]
fn mids_are_tokens_not_numbers() {
    let text = "a=group:BUNDLE audio v1 0\r\n\
                m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:audio\r\n\
                a=candidate:0 1 UDP 2122252543 192.0.2.5 50000 typ host\r\n\
                m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v1\r\n\
                a=candidate:1 1 TCP 2105524479 192.0.2.5 9 typ host tcptype active\r\n\
                m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
                a=end-of-candidates\r\n";
    let frag = parse(text);
    assert_eq!(frag.bundle(), ["audio", "v1", "0"]);
    let mids: Vec<_> = frag.candidates().map(|(mid, c)| (mid, c.port())).collect();
    assert_eq!(mids, [(Some("audio"), 50000), (Some("v1"), 9)]);
    assert_eq!(frag.media()[2].mid(), Some("0"));
    assert!(frag.media()[2].end_of_candidates());
    assert_eq!(frag.to_string(), text);
    // Firefox's uppercase transports keep their spelling.
    assert_eq!(frag.media()[0].candidates()[0].transport_str(), "UDP");
}

#[test]
fn a_candidate_the_server_cannot_use_is_not_a_parse_error() {
    let frag = parse(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
         a=candidate:1 1 sctp 2130706431 192.0.2.1 5000 typ host\r\n\
         a=candidate:2 1 udp 2130706431 unresolvable-name.example 5000 typ host\r\n\
         a=candidate:3 1 udp 2130706431 192.0.2.1 5000 typ futuretype\r\n",
    );
    let kinds: Vec<_> = frag
        .candidates()
        .map(|(_, c)| (c.transport().clone(), c.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            (TransportProtocol::Other("sctp".into()), CandidateType::Host),
            (TransportProtocol::Udp, CandidateType::Host),
            (
                TransportProtocol::Udp,
                CandidateType::Other("futuretype".into())
            ),
        ]
    );
}

#[test]
fn empty_bodies_are_empty_fragments() {
    for text in ["", "\r\n", "\n\n"] {
        let frag = parse(text);
        assert!(frag.is_empty(), "{text:?}");
        assert_eq!(frag.to_string(), "");
        assert_eq!(frag.ufrag(), None);
    }
    assert!(!parse("a=end-of-candidates").is_empty());
}

#[test]
fn other_lines_are_skipped_and_other_attributes_kept() {
    let text = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                a=ice-pacing:50\r\na=group:LS 0 1\r\na=ice-ufrag:abcd\r\n\
                m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
                a=rtcp-mux\r\na=mid:0\r\na=group:BUNDLE 0\r\na=remote-candidates:1 192.0.2.1 5000\r\n";
    let frag = parse(text);
    assert_eq!(frag.ice().ufrag(), Some("abcd"));
    assert_eq!(frag.attributes(), ["ice-pacing:50", "group:LS 0 1"]);
    assert!(frag.bundle().is_empty());
    assert_eq!(
        frag.media()[0].attributes(),
        [
            "rtcp-mux",
            "group:BUNDLE 0",
            "remote-candidates:1 192.0.2.1 5000"
        ]
    );
    let written = frag.to_string();
    assert_eq!(
        written,
        "a=ice-ufrag:abcd\r\na=ice-pacing:50\r\na=group:LS 0 1\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtcp-mux\r\na=group:BUNDLE 0\r\n\
         a=remote-candidates:1 192.0.2.1 5000\r\n"
    );
    assert_eq!(parse(&written), frag);
}

#[test]
fn lenient_spellings_normalise() {
    // An empty BUNDLE group, extra spaces between mids, repeated flags, media-level lite.
    let frag = parse(
        "a=group:BUNDLE\r\na=ice-lite\r\na=ice-lite\r\n\
         m=audio 9 RTP/AVP 0\r\na=ice-lite\r\na=end-of-candidates\r\na=end-of-candidates\r\n",
    );
    assert!(frag.bundle().is_empty());
    assert!(frag.ice().lite() && frag.media()[0].ice().lite());
    assert_eq!(
        frag.to_string(),
        "a=ice-lite\r\nm=audio 9 RTP/AVP 0\r\na=ice-lite\r\na=end-of-candidates\r\n"
    );
    assert_eq!(parse("a=group:BUNDLE  0   1 ").bundle(), ["0", "1"]);
    // A section without a mid.
    let frag = parse("m=audio 9 RTP/AVP 0\r\na=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n");
    assert_eq!(frag.candidates().next().map(|(mid, _)| mid), Some(None));
    // Session-level end-of-candidates.
    let frag = parse("a=ice-ufrag:abcd\r\na=end-of-candidates\r\n");
    assert!(frag.end_of_candidates());
    assert_eq!(
        frag.to_string(),
        "a=ice-ufrag:abcd\r\na=end-of-candidates\r\n"
    );
}

#[test]
fn media_level_credentials_override_the_sessions() {
    let frag = parse(
        "a=ice-ufrag:sess\r\na=ice-pwd:sessionpasswordsession\r\n\
         m=audio 9 RTP/AVP 0\r\na=ice-ufrag:medi\r\nm=video 9 RTP/AVP 0\r\na=ice-ufrag:othr\r\n",
    );
    assert_eq!(frag.ufrag(), Some("medi"));
    assert_eq!(frag.pwd(), Some("sessionpasswordsession"));
}

#[test]
fn json_bodies_are_refused_plainly() {
    for body in [
        r#"{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
        "  \r\n[{\"candidate\":\"\"}]",
        "\t{}",
    ] {
        assert_eq!(err(body), SdpFragError::LooksLikeJson);
    }
    let message = SdpFragError::LooksLikeJson.to_string();
    assert!(
        message.contains("JSON") && message.contains("a=candidate"),
        "{message}"
    );
}

#[test]
fn errors_name_the_line_and_the_cause() {
    let m = "m=audio 9 RTP/AVP 0\r\n";
    let invalid = |line, error| SdpFragError::InvalidValue { line, error };
    let cases: Vec<(String, SdpFragError)> = vec![
        (
            "a=ice-ufrag:abcd\r\nbogus\r\n".into(),
            SdpFragError::MalformedLine { line: 2 },
        ),
        ("A=ice-lite".into(), SdpFragError::MalformedLine { line: 1 }),
        ("ab=c".into(), SdpFragError::MalformedLine { line: 1 }),
        (
            " a=ice-lite".into(),
            SdpFragError::MalformedLine { line: 1 },
        ),
        (
            "a=ice-lite\r\n\r\n  \r\n".into(),
            SdpFragError::MalformedLine { line: 3 },
        ),
        (
            "a=ice-ufrag:ab\0cd".into(),
            SdpFragError::ControlCharacter { line: 1, byte: 0 },
        ),
        (
            "a=ice-lite\r\na=x\ry\r\n".into(),
            SdpFragError::ControlCharacter {
                line: 2,
                byte: b'\r',
            },
        ),
        (
            "a=x:\x1b[31m".into(),
            SdpFragError::ControlCharacter {
                line: 1,
                byte: 0x1b,
            },
        ),
        ("a=ice-ufrag:abc".into(), invalid(1, ValueError::Ufrag)),
        ("a=ice-ufrag:ab-cd".into(), invalid(1, ValueError::Ufrag)),
        ("a=ice-ufrag".into(), invalid(1, ValueError::Ufrag)),
        ("a=ice-pwd:tooshort".into(), invalid(1, ValueError::Pwd)),
        (
            "a=ice-options:trickle  ice2".into(),
            invalid(1, ValueError::IceOptions),
        ),
        ("a=ice-options:".into(), invalid(1, ValueError::IceOptions)),
        (
            "a=ice-lite:yes".into(),
            invalid(1, ValueError::Flag { name: "ice-lite" }),
        ),
        (
            format!("{m}a=end-of-candidates:1"),
            invalid(
                2,
                ValueError::Flag {
                    name: "end-of-candidates",
                },
            ),
        ),
        (
            "a=group:BUNDLE 0 a\"b".into(),
            invalid(1, ValueError::Bundle),
        ),
        (format!("{m}a=mid:"), invalid(2, ValueError::Mid)),
        (format!("{m}a=mid:a b"), invalid(2, ValueError::Mid)),
        (format!("{m}a=mid:(0)"), invalid(2, ValueError::Mid)),
        (
            "m=audio RTP/AVP 0".into(),
            invalid(1, ValueError::MediaLine(MediaLineError::InvalidPort)),
        ),
        (
            "m=audio 9 RTP/AVP".into(),
            invalid(1, ValueError::MediaLine(MediaLineError::MissingFormat)),
        ),
        (
            "m=".into(),
            invalid(1, ValueError::MediaLine(MediaLineError::MissingMedia)),
        ),
        (
            "a=mid:0".into(),
            SdpFragError::AttributeBeforeMedia {
                line: 1,
                name: "mid",
            },
        ),
        (
            "a=ice-ufrag:abcd\r\na=candidate:1 1 udp 1 192.0.2.1 9 typ host".into(),
            SdpFragError::AttributeBeforeMedia {
                line: 2,
                name: "candidate",
            },
        ),
        (
            "a=ice-ufrag:abcd\r\na=ice-ufrag:efgh".into(),
            SdpFragError::DuplicateAttribute {
                line: 2,
                name: "ice-ufrag",
            },
        ),
        (
            format!("{m}a=ice-pwd:abcdefghijklmnopqrstuv\r\na=ice-pwd:abcdefghijklmnopqrstuv"),
            SdpFragError::DuplicateAttribute {
                line: 3,
                name: "ice-pwd",
            },
        ),
        (
            "a=ice-options:trickle\r\na=ice-options:ice2".into(),
            SdpFragError::DuplicateAttribute {
                line: 2,
                name: "ice-options",
            },
        ),
        (
            format!("{m}a=mid:0\r\na=mid:1"),
            SdpFragError::DuplicateAttribute {
                line: 3,
                name: "mid",
            },
        ),
        (
            "a=group:BUNDLE 0\r\na=group:BUNDLE 1".into(),
            SdpFragError::DuplicateAttribute {
                line: 2,
                name: "group:BUNDLE",
            },
        ),
        (
            format!("{m}a=mid:v1\r\n{m}a=mid:v1"),
            SdpFragError::MidReused { line: 4 },
        ),
        (
            format!("{m}a=candidate:1 1 udp 1 192.0.2.1 9"),
            SdpFragError::BadCandidate {
                line: 2,
                source: CandidateError::MissingTyp,
            },
        ),
        (
            // A client that writes "a=" + "candidate:" + RTCIceCandidate.candidate.
            format!("{m}a=candidate:candidate:1 1 udp 1 192.0.2.1 9 typ host"),
            SdpFragError::BadCandidate {
                line: 2,
                source: CandidateError::InvalidFoundation,
            },
        ),
        (
            format!("{m}a=candidate"),
            SdpFragError::BadCandidate {
                line: 2,
                source: CandidateError::MissingPrefix,
            },
        ),
    ];
    for (text, expected) in cases {
        let got = err(&text);
        assert_eq!(got, expected, "{text:?}");
        assert_eq!(got.line(), expected.line());
        assert!(!got.to_string().is_empty());
    }
    assert_eq!(err("{").line(), None);
}

#[test]
fn bounds() {
    let limits = FragLimits::default();
    assert_eq!(
        (
            limits.max_len,
            limits.max_lines,
            limits.max_media,
            limits.max_candidates
        ),
        (16 * 1024, 256, 16, 64)
    );
    assert_eq!(limits.validate(), Ok(()));

    // Length: checked before anything else, on text and on bytes.
    let long = "a".repeat(limits.max_len + 1);
    let too_large = SdpFragError::TooLarge {
        len: limits.max_len + 1,
        max: limits.max_len,
    };
    assert_eq!(err(&long), too_large);
    assert_eq!(
        SdpFrag::parse_bytes(long.as_bytes(), &limits),
        Err(too_large)
    );
    let mut body = "a=ice-lite\r\n".repeat(limits.max_len / 12);
    body.push_str(&"x".repeat(limits.max_len - body.len()));
    assert_eq!(body.len(), limits.max_len);
    assert_eq!(err(&body), SdpFragError::TooManyLines { max: 256 });

    // Candidates: the 65th is refused, counted over all sections.
    let cand = |i: usize| format!("a=candidate:{i} 1 udp 1 192.0.2.1 {i} typ host\r\n");
    let mut text = String::from("m=audio 9 RTP/AVP 0\r\n");
    text.extend((0..32).map(cand));
    text.push_str("m=video 9 RTP/AVP 0\r\n");
    text.extend((32..64).map(cand));
    assert_eq!(parse(&text).candidates().count(), 64);
    text.push_str(&cand(64));
    assert_eq!(
        err(&text),
        SdpFragError::TooManyCandidates { line: 67, max: 64 }
    );

    // Media sections: the 17th is refused.
    let text = "m=audio 9 RTP/AVP 0\r\n".repeat(17);
    assert_eq!(err(&text), SdpFragError::TooManyMedia { line: 17, max: 16 });

    // Lines, counting empty ones.
    assert!(SdpFrag::parse(&"\r\n".repeat(256)).is_ok());
    assert_eq!(
        err(&"\r\n".repeat(257)),
        SdpFragError::TooManyLines { max: 256 }
    );

    // Limits of one's own.
    let mut small = FragLimits::default();
    small.max_candidates = 0;
    small.max_media = 0;
    assert_eq!(
        SdpFrag::parse_with("m=audio 9 RTP/AVP 0", &small),
        Err(SdpFragError::TooManyMedia { line: 1, max: 0 })
    );
    assert!(SdpFrag::parse_with(WHIP_DRAFT_RESTART_REQUEST, &small).is_ok());
    assert_eq!(small.validate(), Ok(()));
    small.max_len = 0;
    assert_eq!(small.validate().map_err(|e| e.setting), Err("max_len"));
}

#[test]
fn limits_load_from_configuration() {
    let limits: FragLimits =
        serde_json::from_str(r#"{"max_candidates": 8}"#).expect("valid configuration");
    assert_eq!(limits.max_candidates, 8);
    assert_eq!(limits.max_len, FragLimits::default().max_len);
    assert!(serde_json::from_str::<FragLimits>(r#"{"max_candidate": 8}"#).is_err());
}

#[test]
fn bodies_as_bytes() {
    let limits = FragLimits::default();
    assert_eq!(
        SdpFrag::parse_bytes(WHEP_TRICKLE.as_bytes(), &limits),
        Ok(parse(WHEP_TRICKLE))
    );
    assert_eq!(
        SdpFrag::parse_bytes(b"a=ice-ufrag:abcd\r\na=x:\xff\xfe", &limits),
        Err(SdpFragError::NotUtf8 { offset: 22 })
    );
}

#[test]
fn builders_check_what_they_are_given() {
    assert_eq!(
        IceParams::new("abc", "abcdefghijklmnopqrstuv"),
        Err(ValueError::Ufrag)
    );
    assert_eq!(
        IceParams::new("abcd", "abcdefghijklmnopqrstu"),
        Err(ValueError::Pwd)
    );
    assert_eq!(
        IceParams::default().with_ufrag("abcd\r\na=ice-lite"),
        Err(ValueError::Ufrag)
    );
    assert_eq!(
        IceParams::default().with_options("trickle\r\n"),
        Err(ValueError::IceOptions)
    );
    assert_eq!(
        FragMedia::new("audio 9 RTP/AVP 0\r\na=ice-lite", None),
        Err(ValueError::ControlCharacter)
    );
    assert_eq!(
        FragMedia::new("audio", None),
        Err(ValueError::MediaLine(MediaLineError::MissingPort))
    );
    assert!(FragMedia::new("audio 9 RTP/AVP 0", Some("0\r\n")).is_err());
    assert_eq!(
        SdpFrag::new().with_bundle(["0", "a b"]).map(|_| ()),
        Err(ValueError::Bundle)
    );
    let section = FragMedia::new("audio 9 RTP/AVP 0", Some("0")).expect("valid");
    let frag = SdpFrag::new()
        .with_media(section.clone())
        .expect("first section");
    assert_eq!(
        frag.with_media(section).map(|_| ()),
        Err(ValueError::DuplicateMid)
    );
}

#[test]
fn a_fragment_built_by_hand_writes_and_reads_back() {
    let frag = SdpFrag::new()
        .with_ice(IceParams::default().with_lite(true))
        .with_bundle(["audio"])
        .and_then(|f| {
            f.with_media(
                FragMedia::new("audio 9 UDP/TLS/RTP/SAVPF 111", Some("audio"))?
                    .with_ice(IceParams::new("abcd", "abcdefghijklmnopqrstuv")?)
                    .with_candidates([candidate(
                        "candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host",
                    )])
                    .with_end_of_candidates(true),
            )
        })
        .expect("valid parts");
    let text = frag.to_string();
    assert_eq!(
        text,
        "a=ice-lite\r\na=group:BUNDLE audio\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
         a=mid:audio\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n\
         a=candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host\r\na=end-of-candidates\r\n"
    );
    assert_eq!(text.parse::<SdpFrag>(), Ok(frag));
}

/// Lines a parser may meet at session level or in a media section, mostly valid.
fn attribute_line() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "a=mid:[a-z0-9]{1,2}",
        1 => "a=mid:[a-z0-9 ]{0,3}",
        2 => "a=ice-ufrag:[A-Za-z0-9+/]{4,6}",
        1 => "a=ice-ufrag:[A-Za-z0-9+/-]{0,6}",
        2 => "a=ice-pwd:[A-Za-z0-9+/]{20,24}",
        2 => "a=ice-options:[a-z2]{1,5}( [a-z2]{1,5})?",
        1 => "a=ice-options:[a-z2 ]{0,12}",
        1 => Just("a=ice-lite".to_owned()),
        2 => Just("a=end-of-candidates".to_owned()),
        1 => "a=group:BUNDLE( [a-z0-9]{1,2}){0,3}",
        8 => "a=candidate:[0-9] 1 (udp|tcp) [0-9]{1,3} 192.0.2.[0-9] [0-9]{1,2} typ (host|srflx)( tcptype active)?( generation 0)?",
        1 => "a=[a-z-]{1,10}(:[ -~]{0,10})?",
        1 => "[b-z]=[ -~]{0,10}",
        1 => "[ -~\t\r\u{1b}\u{e9}]{0,12}",
        1 => Just(String::new()),
    ]
}

/// Bodies shaped like fragments (session lines, then sections of an `m=` line and its lines)
/// from [`attribute_line`]s: they reach every branch of the parser, and often parse.
fn body() -> impl Strategy<Value = Vec<String>> {
    let m_line = prop_oneof![
        4 => Just("m=audio 9 UDP/TLS/RTP/SAVPF 111".to_owned()),
        1 => Just("m=video 0 RTP/AVP 96 97".to_owned()),
        1 => "m=[ -~]{0,8}",
    ];
    (
        proptest::collection::vec(attribute_line(), 0..4),
        proptest::collection::vec(
            (m_line, proptest::collection::vec(attribute_line(), 0..6)),
            0..3,
        ),
    )
        .prop_map(|(session, sections)| {
            let mut lines = session;
            for (m, attributes) in sections {
                lines.push(m);
                lines.extend(attributes);
            }
            lines
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_never_panics_on_any_text(text in any::<String>()) {
        let _ = SdpFrag::parse(&text);
    }

    #[test]
    fn parsing_never_panics_and_what_parses_writes_back(
        lines in body(),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        if let Ok(frag) = SdpFrag::parse(&text) {
            let written = frag.to_string();
            prop_assert_eq!(SdpFrag::parse(&written), Ok(frag.clone()));
            // Every line written is one that was read (as read, or normalised).
            prop_assert!(written.lines().count() <= lines.len());
            prop_assert!(written.is_empty() || written.ends_with("\r\n"));
        }
    }

    #[test]
    fn bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = SdpFrag::parse_bytes(&body, &FragLimits::default());
    }
}

/// The exported strategies, from outside the crate.
#[cfg(feature = "proptest")]
mod exported_strategy {
    use proptest::prelude::*;
    use signaling_core::sdpfrag::strategy::frag;
    use signaling_core::sdpfrag::SdpFrag;

    proptest! {
        #[test]
        fn generated_fragments_round_trip(f in frag()) {
            let text = f.to_string();
            prop_assert_eq!(SdpFrag::parse(&text), Ok(f.clone()));
            // The candidates come back in order, each with its section's mid.
            let expected: Vec<_> = f
                .media()
                .iter()
                .flat_map(|m| m.candidates().iter().map(move |c| (m.mid(), c.to_string())))
                .collect();
            let parsed = SdpFrag::parse(&text).expect("parsed above");
            let got: Vec<_> = parsed.candidates().map(|(mid, c)| (mid, c.to_string())).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
