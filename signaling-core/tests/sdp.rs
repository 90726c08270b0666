//! SDP facts: fixtures from real peers, every error variant, and property tests.

use proptest::prelude::*;
use signaling_core::sdp::{
    Direction, MediaLineError, SdpError, SdpFacts, DEFAULT_MAX_SDP_LEN, MAX_MEDIA_SECTIONS,
};

const CHROME_OFFER: &str = include_str!("data/chrome-offer.sdp");
const CHROME_ANSWER: &str = include_str!("data/chrome-answer.sdp");
const FIREFOX_OFFER: &str = include_str!("data/firefox-offer.sdp");
const AIORTC_ANSWER: &str = include_str!("data/aiortc-answer.sdp");
const DATACHANNEL_OFFER: &str = include_str!("data/datachannel-offer.sdp");
const ICE_LITE_LF: &str = include_str!("data/ice-lite-lf.sdp");

fn parse(sdp: &str) -> SdpFacts {
    match SdpFacts::parse(sdp) {
        Ok(facts) => facts,
        Err(e) => panic!("fixture must parse: {e}"),
    }
}

fn mids(facts: &SdpFacts) -> Vec<Option<&str>> {
    facts.sections().iter().map(|s| s.mid()).collect()
}

fn directions(facts: &SdpFacts) -> Vec<Option<Direction>> {
    facts.sections().iter().map(|s| s.direction()).collect()
}

#[test]
fn fixtures_use_the_intended_line_endings() {
    for sdp in [
        CHROME_OFFER,
        CHROME_ANSWER,
        FIREFOX_OFFER,
        AIORTC_ANSWER,
        DATACHANNEL_OFFER,
    ] {
        assert_eq!(sdp.matches('\n').count(), sdp.matches("\r\n").count());
        assert!(sdp.ends_with("\r\n"));
    }
    assert!(!ICE_LITE_LF.contains('\r'));
    assert!((2600..=2800).contains(&CHROME_OFFER.len()));
}

#[test]
fn chrome_offer() {
    let facts = parse(CHROME_OFFER);
    assert_eq!(mids(&facts), [Some("0"), Some("1"), Some("2")]);
    assert_eq!(facts.bundle_groups(), [vec!["0", "1", "2"]]);
    let media: Vec<_> = facts.sections().iter().map(|s| s.media()).collect();
    assert_eq!(media, ["video", "audio", "video"]);
    assert_eq!(
        directions(&facts),
        [
            Some(Direction::SendOnly),
            Some(Direction::RecvOnly),
            Some(Direction::RecvOnly)
        ]
    );
    for s in facts.sections() {
        assert_eq!(s.port(), 9);
        assert_eq!(s.protocol(), "UDP/TLS/RTP/SAVPF");
        assert_eq!(s.ice_ufrag(), Some("Kx3v"));
        assert_eq!(s.ice_pwd(), Some("Qe7bS0u9ZfJr1mYtL4pWn8dA"));
        assert!(s.ice_trickle());
        assert!(!s.bundle_only());
        assert!(!s.end_of_candidates());
        assert_eq!(s.candidate_count(), 0);
    }
    assert_eq!(facts.session_ice_ufrag(), None);
    assert_eq!(facts.session_ice_pwd(), None);
    assert_eq!(
        facts.ice_credentials(),
        Some(("Kx3v", "Qe7bS0u9ZfJr1mYtL4pWn8dA"))
    );
    assert_eq!(facts.default_mid(None), Some("0"));
    assert_eq!(facts.default_mid(Some("nope")), Some("0"));
    assert_eq!(facts.mid_at(1), Some("1"));
    assert_eq!(facts.mid_at(3), None);
    assert_eq!(facts.index_of_mid("2"), Some(2));
    assert_eq!(facts.index_of_mid("3"), None);
    assert!(!facts.end_of_candidates());
    assert_eq!(facts.candidate_count(), 0);
    assert!(facts.ice_trickle());
    assert!(!facts.ice_lite());
}

#[test]
fn chrome_answer() {
    let facts = parse(CHROME_ANSWER);
    assert_eq!(mids(&facts), [Some("0"), Some("1"), Some("2")]);
    assert_eq!(facts.bundle_groups(), [vec!["0", "1", "2"]]);
    assert_eq!(
        directions(&facts),
        [
            Some(Direction::RecvOnly),
            Some(Direction::SendOnly),
            Some(Direction::SendOnly)
        ]
    );
    assert_eq!(
        facts.ice_credentials(),
        Some(("fT9q", "3hJx+VbN0kq7Wc5y1ZpD/rEm"))
    );
    assert_ne!(
        facts.ice_credentials(),
        parse(CHROME_OFFER).ice_credentials()
    );
    assert!(CHROME_ANSWER.contains("a=setup:active"));
    assert_eq!(facts.candidate_count(), 0);
    assert!(!facts.end_of_candidates());
    // The answer's directions mirror the offer's.
    let offer = parse(CHROME_OFFER);
    for (o, a) in offer.sections().iter().zip(facts.sections()) {
        assert_eq!(o.direction().map(Direction::reversed), a.direction());
    }
}

#[test]
fn firefox_offer() {
    let facts = parse(FIREFOX_OFFER);
    assert_eq!(mids(&facts), [Some("0"), Some("1")]);
    assert_eq!(facts.bundle_groups(), [vec!["0", "1"]]);
    assert_eq!(
        directions(&facts),
        [Some(Direction::SendRecv), Some(Direction::RecvOnly)]
    );
    assert_eq!(facts.session_ice_ufrag(), None);
    for s in facts.sections() {
        assert_eq!(s.port(), 54609);
        assert_eq!(s.ice_ufrag(), Some("5a7e91c2"));
        assert_eq!(s.ice_pwd(), Some("8f3c51e0a2d94b7e6c1f08a35d72e9b4"));
        assert!(s.end_of_candidates());
        assert_eq!(s.candidate_count(), 3);
        // Firefox puts ice-options at session level only.
        assert!(!s.ice_trickle());
    }
    assert!(facts.ice_trickle());
    assert!(facts.end_of_candidates());
    assert_eq!(facts.candidate_count(), 6);
    assert_eq!(facts.default_mid(Some("5a7e91c2")), Some("0"));
}

#[test]
fn aiortc_answer() {
    let facts = parse(AIORTC_ANSWER);
    assert_eq!(mids(&facts), [Some("0"), Some("1")]);
    assert_eq!(facts.bundle_groups(), [vec!["0", "1"]]);
    assert_eq!(
        directions(&facts),
        [Some(Direction::SendOnly), Some(Direction::Inactive)]
    );
    assert_eq!(
        facts.ice_credentials(),
        Some(("tB7x", "Lm3QzR8vK1wN5pY0cT6hJ2"))
    );
    assert!(facts.end_of_candidates());
    assert_eq!(facts.candidate_count(), 4);
    assert!(!facts.ice_trickle());
    assert_eq!(facts.sections()[0].port(), 47413);
}

#[test]
fn datachannel_offer() {
    let facts = parse(DATACHANNEL_OFFER);
    assert_eq!(facts.sections().len(), 1);
    let s = &facts.sections()[0];
    assert_eq!(s.media(), "application");
    assert_eq!(s.protocol(), "UDP/DTLS/SCTP");
    assert_eq!(s.port(), 9);
    assert_eq!(s.mid(), Some("0"));
    assert_eq!(s.direction(), None);
    assert_eq!(facts.bundle_groups(), [vec!["0"]]);
    assert_eq!(
        facts.ice_credentials(),
        Some(("w2Rk", "Zt8nE1q/4bHy7Vc0Lm+3sKxa"))
    );
    assert_eq!(facts.default_mid(None), Some("0"));
}

#[test]
fn ice_lite_lf_only() {
    let facts = parse(ICE_LITE_LF);
    assert!(facts.ice_lite());
    assert!(!facts.ice_trickle());
    assert_eq!(facts.session_ice_ufrag(), Some("srvU"));
    assert_eq!(facts.session_ice_pwd(), Some("ServerPassword0123456789"));
    assert_eq!(mids(&facts), [Some("a"), Some("v")]);
    assert_eq!(facts.bundle_groups(), [vec!["a", "v"]]);
    // Session-level credentials and direction are inherited, section-level direction wins.
    let [audio, video] = facts.sections() else {
        panic!("two sections expected");
    };
    assert_eq!(audio.ice_ufrag(), Some("srvU"));
    assert_eq!(video.ice_pwd(), Some("ServerPassword0123456789"));
    assert_eq!(audio.direction(), Some(Direction::SendOnly));
    assert_eq!(video.direction(), Some(Direction::Inactive));
    assert!(video.bundle_only());
    assert!(!audio.bundle_only());
    assert_eq!(facts.candidate_count(), 1);
    assert!(facts.end_of_candidates());
    assert_eq!(facts.default_mid(None), Some("a"));
    // The same SDP with CRLF gives the same facts.
    let crlf = ICE_LITE_LF.replace('\n', "\r\n");
    assert_eq!(parse(&crlf), facts);
}

#[test]
fn default_mid_without_bundle() {
    let sdp = "v=0\r\n\
               m=audio 9 RTP/AVP 0\r\na=mid:a\r\na=ice-ufrag:aaaa\r\n\
               m=video 9 RTP/AVP 96\r\na=mid:b\r\na=ice-ufrag:bbbb\r\n";
    let facts = parse(sdp);
    assert_eq!(facts.default_mid(None), Some("a"));
    assert_eq!(facts.default_mid(Some("bbbb")), Some("b"));
    assert_eq!(facts.default_mid(Some("cccc")), Some("a"));
    assert_eq!(facts.ice_credentials(), None);
    assert!(!facts.end_of_candidates());
}

#[test]
fn end_of_candidates_needs_every_live_section() {
    let partial = "v=0\nm=audio 9 RTP/AVP 0\na=end-of-candidates\nm=video 9 RTP/AVP 96\n";
    assert!(!parse(partial).end_of_candidates());
    let rejected = "v=0\nm=audio 9 RTP/AVP 0\na=end-of-candidates\nm=video 0 RTP/AVP 96\n";
    assert!(parse(rejected).end_of_candidates());
    let session = "v=0\na=end-of-candidates\nm=audio 9 RTP/AVP 0\n";
    assert!(parse(session).end_of_candidates());
    assert!(!parse("v=0\n").end_of_candidates());
}

#[test]
fn lenient_where_peers_differ() {
    // No final line ending, port count, extra group semantics, media-level group ignored.
    let sdp = "v=0\na=group:LS 0\na=group:BUNDLE\nm=audio 9/2 RTP/AVP 0\na=mid:0\na=group:BUNDLE x";
    let facts = parse(sdp);
    assert_eq!(facts.bundle_groups(), [Vec::<String>::new()]);
    assert_eq!(facts.default_mid(None), Some("0"));
}

fn err(sdp: &str) -> SdpError {
    match SdpFacts::parse(sdp) {
        Ok(facts) => panic!("expected an error, got {facts:?}"),
        Err(e) => e,
    }
}

const PWD: &str = "abcdefghijklmnopqrstuv";

#[test]
fn every_error_variant() {
    assert_eq!(
        SdpFacts::parse_with_limit("v=0\r\n", 4),
        Err(SdpError::TooLong { len: 5, max: 4 })
    );
    let big = "a".repeat(DEFAULT_MAX_SDP_LEN + 1);
    assert_eq!(
        err(&big),
        SdpError::TooLong {
            len: DEFAULT_MAX_SDP_LEN + 1,
            max: DEFAULT_MAX_SDP_LEN
        }
    );
    assert_eq!(err(""), SdpError::Empty);
    assert_eq!(err("v=1\r\n"), SdpError::MissingVersion);
    assert_eq!(err("s=-\r\nv=0\r\n"), SdpError::MissingVersion);
    assert_eq!(err("v=0\r\ns=\0\r\n"), SdpError::NulByte { line: 2 });
    assert_eq!(
        err("v=0\r\ns=a\rb\r\n"),
        SdpError::BareCarriageReturn { line: 2 }
    );
    assert_eq!(
        err("v=0\r\ns=-\r"),
        SdpError::BareCarriageReturn { line: 2 }
    );
    assert_eq!(
        err("v=0\r\n\r\ns=-\r\n"),
        SdpError::MalformedLine { line: 2 }
    );
    assert_eq!(err("v=0\nS=-\n"), SdpError::MalformedLine { line: 2 });
    assert_eq!(err("v=0\nsx\n"), SdpError::MalformedLine { line: 2 });
    assert_eq!(err("v=0\n\n"), SdpError::MalformedLine { line: 2 });

    let media = |m: &str| err(&format!("v=0\nm={m}\n"));
    let media_err = |cause| SdpError::InvalidMediaLine { line: 2, cause };
    assert_eq!(media(""), media_err(MediaLineError::MissingMedia));
    assert_eq!(media("audio"), media_err(MediaLineError::MissingPort));
    assert_eq!(
        media("audio x RTP/AVP 0"),
        media_err(MediaLineError::InvalidPort)
    );
    assert_eq!(
        media("audio 65536 RTP/AVP 0"),
        media_err(MediaLineError::InvalidPort)
    );
    assert_eq!(
        media("audio 9/0 RTP/AVP 0"),
        media_err(MediaLineError::InvalidPortCount)
    );
    assert_eq!(media("audio 9"), media_err(MediaLineError::MissingProtocol));
    assert_eq!(
        media("audio 9 RTP/AVP"),
        media_err(MediaLineError::MissingFormat)
    );
    assert_eq!(media("audio 9  0"), media_err(MediaLineError::EmptyField));
    assert_eq!(
        media("audio 9 RTP/AVP 0 "),
        media_err(MediaLineError::EmptyField)
    );

    let many = format!(
        "v=0\n{}",
        "m=audio 0 RTP/AVP 0\n".repeat(MAX_MEDIA_SECTIONS + 1)
    );
    assert_eq!(
        err(&many),
        SdpError::TooManySections {
            line: MAX_MEDIA_SECTIONS + 2,
            max: MAX_MEDIA_SECTIONS
        }
    );
    assert_eq!(
        err("v=0\nm=audio 9 RTP/AVP 0\na=mid:\n"),
        SdpError::InvalidMid { line: 3 }
    );
    assert_eq!(
        err("v=0\nm=audio 9 RTP/AVP 0\na=mid:0\na=mid:1\n"),
        SdpError::DuplicateMid { line: 4 }
    );
    assert_eq!(
        err("v=0\nm=audio 9 RTP/AVP 0\na=mid:0\nm=video 9 RTP/AVP 0\na=mid:0\n"),
        SdpError::MidReused { line: 5 }
    );
    assert_eq!(
        err("v=0\na=ice-ufrag:abc\n"),
        SdpError::InvalidIceUfrag { line: 2 }
    );
    assert_eq!(
        err("v=0\na=ice-ufrag:ab-cd\n"),
        SdpError::InvalidIceUfrag { line: 2 }
    );
    assert_eq!(
        err(&format!("v=0\na=ice-ufrag:{}\n", "a".repeat(257))),
        SdpError::InvalidIceUfrag { line: 2 }
    );
    assert_eq!(
        err("v=0\na=ice-pwd:abcdefghijklmnopqrstu\n"),
        SdpError::InvalidIcePwd { line: 2 }
    );
    assert_eq!(
        err(&format!(
            "v=0\nm=audio 9 RTP/AVP 0\na=ice-pwd:{PWD}\na=ice-pwd:{PWD}\n"
        )),
        SdpError::DuplicateIceCredential { line: 4 }
    );
    assert_eq!(
        err("v=0\na=ice-ufrag:abcd\na=ice-ufrag:abcd\n"),
        SdpError::DuplicateIceCredential { line: 3 }
    );
    assert_eq!(
        err("v=0\na=group:BUNDLE 0 1\nm=audio 9 RTP/AVP 0\na=mid:0\n"),
        SdpError::UnknownBundleMid { line: 2 }
    );
    let huge_group = format!(
        "v=0\na=group:BUNDLE{}\n",
        " 0".repeat(MAX_MEDIA_SECTIONS + 1)
    );
    assert_eq!(
        err(&huge_group),
        SdpError::BundleTooLarge {
            line: 2,
            max: MAX_MEDIA_SECTIONS
        }
    );
}

#[test]
fn valid_credentials_at_the_bounds() {
    let ufrag = "a".repeat(256);
    let pwd = "+/".repeat(128);
    let sdp = format!("v=0\na=ice-ufrag:{ufrag}\na=ice-pwd:{pwd}\nm=audio 9 RTP/AVP 0\n");
    let facts = parse(&sdp);
    assert_eq!(
        facts.ice_credentials(),
        Some((ufrag.as_str(), pwd.as_str()))
    );
}

#[test]
fn errors_report_their_line() {
    assert_eq!(SdpError::Empty.line(), None);
    assert_eq!(err("v=0\nm=audio\n").line(), Some(2));
    assert_eq!(err("x").line(), Some(1));
}

/// A well-formed section description for the round-trip property.
#[derive(Clone, Debug)]
struct GenSection {
    media: &'static str,
    port: u16,
    mid: String,
    ufrag: Option<String>,
    direction: Option<Direction>,
    candidates: usize,
    end_of_candidates: bool,
    bundle_only: bool,
}

fn direction() -> impl Strategy<Value = Option<Direction>> {
    prop::option::of(prop_oneof![
        Just(Direction::SendRecv),
        Just(Direction::SendOnly),
        Just(Direction::RecvOnly),
        Just(Direction::Inactive),
    ])
}

fn section() -> impl Strategy<Value = GenSection> {
    (
        prop_oneof![Just("audio"), Just("video"), Just("application")],
        any::<u16>(),
        prop::option::of("[a-zA-Z0-9+/]{4,40}"),
        direction(),
        0usize..4,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(media, port, ufrag, direction, candidates, end_of_candidates, bundle_only)| {
                GenSection {
                    media,
                    port,
                    mid: String::new(),
                    ufrag,
                    direction,
                    candidates,
                    end_of_candidates,
                    bundle_only,
                }
            },
        )
}

fn render(
    sections: &[GenSection],
    session_ufrag: &Option<String>,
    bundle: bool,
    eol: &str,
) -> String {
    let mut out = format!("v=0{eol}o=- 1 2 IN IP4 127.0.0.1{eol}s=-{eol}t=0 0{eol}");
    if bundle && !sections.is_empty() {
        out.push_str("a=group:BUNDLE");
        for s in sections {
            out.push(' ');
            out.push_str(&s.mid);
        }
        out.push_str(eol);
    }
    if let Some(u) = session_ufrag {
        out.push_str(&format!("a=ice-ufrag:{u}{eol}a=ice-pwd:{PWD}{eol}"));
    }
    for s in sections {
        let proto = if s.media == "application" {
            "UDP/DTLS/SCTP webrtc-datachannel"
        } else {
            "UDP/TLS/RTP/SAVPF 96 97"
        };
        out.push_str(&format!(
            "m={} {} {proto}{eol}c=IN IP4 0.0.0.0{eol}",
            s.media, s.port
        ));
        if let Some(u) = &s.ufrag {
            out.push_str(&format!("a=ice-ufrag:{u}{eol}"));
        }
        out.push_str(&format!("a=mid:{}{eol}", s.mid));
        if let Some(d) = s.direction {
            out.push_str(&format!("a={d}{eol}"));
        }
        if s.bundle_only {
            out.push_str(&format!("a=bundle-only{eol}"));
        }
        for i in 0..s.candidates {
            out.push_str(&format!(
                "a=candidate:{i} 1 udp 2122260223 192.0.2.{i} 5000{i} typ host{eol}"
            ));
        }
        if s.end_of_candidates {
            out.push_str(&format!("a=end-of-candidates{eol}"));
        }
    }
    out
}

proptest! {
    #[test]
    fn chrome_offer_truncations_never_panic(at in 0usize..CHROME_OFFER.len()) {
        let cut = CHROME_OFFER.get(..at).unwrap_or_default();
        if let Ok(facts) = SdpFacts::parse(cut) {
            prop_assert!(facts.sections().len() <= 3);
        }
    }

    #[test]
    fn generated_sdp_round_trips(
        mut sections in prop::collection::vec(section(), 0..12),
        session_ufrag in prop::option::of("[a-zA-Z0-9]{4,10}"),
        bundle in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        for (i, s) in sections.iter_mut().enumerate() {
            s.mid = if i % 2 == 0 { i.to_string() } else { format!("m{i}") };
        }
        let eol = if crlf { "\r\n" } else { "\n" };
        let sdp = render(&sections, &session_ufrag, bundle, eol);
        let facts = SdpFacts::parse(&sdp).map_err(|e| TestCaseError::fail(format!("{e}: {sdp}")))?;

        prop_assert_eq!(facts.sections().len(), sections.len());
        prop_assert_eq!(facts.session_ice_ufrag(), session_ufrag.as_deref());
        let total: usize = sections.iter().map(|s| s.candidates).sum();
        prop_assert_eq!(facts.candidate_count(), total);
        for (i, (got, want)) in facts.sections().iter().zip(&sections).enumerate() {
            prop_assert_eq!(got.media(), want.media);
            prop_assert_eq!(got.port(), want.port);
            prop_assert_eq!(got.mid(), Some(want.mid.as_str()));
            prop_assert_eq!(got.ice_ufrag(), want.ufrag.as_deref().or(session_ufrag.as_deref()));
            prop_assert_eq!(got.direction(), want.direction);
            prop_assert_eq!(got.candidate_count(), want.candidates);
            prop_assert_eq!(got.end_of_candidates(), want.end_of_candidates);
            prop_assert_eq!(got.bundle_only(), want.bundle_only);
            prop_assert_eq!(facts.mid_at(i), Some(want.mid.as_str()));
            prop_assert_eq!(facts.index_of_mid(&want.mid), Some(i));
        }
        if bundle && !sections.is_empty() {
            let want: Vec<String> = sections.iter().map(|s| s.mid.clone()).collect();
            prop_assert_eq!(facts.bundle_groups(), vec![want]);
        } else {
            prop_assert_eq!(facts.bundle_groups().len(), 0);
        }
        prop_assert_eq!(facts.default_mid(None), sections.first().map(|s| s.mid.as_str()));
        let live: Vec<_> = sections.iter().filter(|s| s.port != 0).collect();
        prop_assert_eq!(
            facts.end_of_candidates(),
            !live.is_empty() && live.iter().all(|s| s.end_of_candidates)
        );
        // The other line ending gives the same facts.
        let other = render(&sections, &session_ufrag, bundle, if crlf { "\n" } else { "\r\n" });
        prop_assert_eq!(SdpFacts::parse(&other).ok(), Some(facts));
    }
}
