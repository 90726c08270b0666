//! Scenario tests of the negotiation state machine: the seed client's flow and each trickle,
//! restart, limit and misbehaviour rule.
// Tests take one base instant from the clock; the library itself never reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use signaling_core::negotiation::{
    ApiError, Config, DropReason, Event, Handled, Negotiation, NegotiationFailure, PeerError,
    SignalingState,
};
use signaling_core::wire::{self, Dialect, IceCandidate, Message, SdpKind};

use common::drain;

fn frame(kind: &str, value: &str) -> String {
    serde_json::json!({"type": kind, "value": value}).to_string()
}

/// Candidate text, mid, m-line index and ufrag of each candidate handed to the application.
type Added = (String, Option<String>, Option<u16>, Option<String>);

fn added(events: &[Event]) -> Vec<Added> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AddRemoteCandidate(rc) => Some((
                rc.init.candidate.clone(),
                rc.init.sdp_mid.as_deref().map(str::to_owned),
                rc.init.sdp_m_line_index,
                rc.init.username_fragment.as_deref().map(str::to_owned),
            )),
            _ => None,
        })
        .collect()
}

/// The seed client: candidates may reach the wire before the offer; they carry no mid/ufrag.
#[test]
fn seed_client_early_candidates_are_held_then_released_in_order() {
    let now = Instant::now();
    let mut server = Negotiation::new(Config::default());
    let c1 = common::candidate(1, None);
    let c2 = common::candidate(2, None);
    server.handle_frame(now, &frame("webrtc/candidate", &c1));
    server.handle_frame(now, &frame("webrtc/candidate", &c2));
    let (frames, events, _) = drain(&mut server);
    assert!(
        frames.is_empty() && events.is_empty(),
        "held, not applied: {events:?}"
    );

    let offer = common::sdp("SeEd", 2, 3, "actpass");
    server.handle_frame(now, &frame("webrtc/offer", &offer));
    let (frames, events, timer) = drain(&mut server);
    assert!(frames.is_empty());
    assert!(
        matches!(&events[0], Event::ApplyRemoteDescription(d) if d.kind == SdpKind::Offer && d.sdp == offer)
    );
    assert_eq!(
        events[1],
        Event::StateChanged(SignalingState::HaveRemoteOffer)
    );
    // Released in order, mapped to the BUNDLE transport's m-section, ufrag filled in.
    assert_eq!(
        added(&events),
        vec![
            (c1.clone(), Some("0".into()), Some(0), Some("SeEd".into())),
            (c2.clone(), Some("0".into()), Some(0), Some("SeEd".into())),
        ]
    );
    assert_eq!(
        timer,
        Some(now + Duration::from_secs(30)),
        "negotiation deadline armed"
    );

    // The server answers; its own candidates follow the answer, in the seed's dialect.
    let answer = common::sdp("SeRv", 1, 3, "active");
    let early = common::candidate(9, None);
    server
        .set_local_description(now, SdpKind::Answer, answer.clone())
        .expect("answer");
    server
        .add_local_candidate(now, IceCandidate::new(early.clone()))
        .expect("candidate");
    server.end_of_local_candidates(now).expect("end");
    let (frames, events, timer) = drain(&mut server);
    assert_eq!(
        frames,
        vec![
            frame("webrtc/answer", &answer),
            frame("webrtc/candidate", &early),
            frame("webrtc/candidate", ""),
        ]
    );
    assert!(events.contains(&Event::Negotiated));
    assert_eq!(timer, None);
    assert_eq!(server.signaling_state(), SignalingState::Stable);
    // Nothing is sent after end-of-candidates.
    assert_eq!(
        server.add_local_candidate(now, IceCandidate::new(common::candidate(10, None))),
        Err(ApiError::AfterEndOfCandidates)
    );
    assert!(drain(&mut server).0.is_empty());
}

/// The event carries the candidate as sent (checked, not parsed); its parsed form and its own
/// `ufrag` extension are there on request, distinct from the filled-in `usernameFragment`.
#[test]
fn remote_candidate_parses_on_request() {
    use signaling_core::candidate::Candidate;
    let now = Instant::now();
    let mut server = Negotiation::new(Config::default());
    server.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("SeEd", 1, 3, "actpass")),
    );
    let with = common::candidate(1, Some("SeEd"));
    let without = format!("a={}", common::candidate(2, None));
    server.handle_frame(now, &frame("webrtc/candidate", &with));
    server.handle_frame(now, &frame("webrtc/candidate", &without));
    let (_, events, _) = drain(&mut server);
    let added: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::AddRemoteCandidate(rc) => Some(rc),
            _ => None,
        })
        .collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].init.candidate, with);
    assert_eq!(added[0].ufrag(), Some("SeEd"));
    assert_eq!(added[0].parse(), Candidate::parse(&with));
    assert_eq!(
        added[1].init.candidate, without,
        "kept as sent, `a=` included"
    );
    assert_eq!(added[1].ufrag(), None, "no ufrag extension");
    assert_eq!(added[1].init.username_fragment.as_deref(), Some("SeEd"));
    let parsed = added[1].parse().expect("checked on arrival");
    assert_eq!(parsed.to_string(), common::candidate(2, None));
}

#[test]
fn local_candidates_wait_for_their_description() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::new(false).with_dialect(Dialect::BROWSER));
    let c = common::candidate(1, Some("LoCl"));
    n.add_local_candidate(now, IceCandidate::new(c.clone()))
        .expect("held");
    assert!(drain(&mut n).0.is_empty());
    n.start_offer(now).expect("stable");
    let offer = common::sdp("LoCl", 2, 2, "actpass");
    n.set_local_description(now, SdpKind::Offer, offer)
        .expect("offer");
    let (frames, _, _) = drain(&mut n);
    assert_eq!(frames.len(), 2);
    assert!(frames[0].starts_with(r#"{"type":"webrtc/offer""#));
    // Object dialect: mid, index and ufrag filled in from the local description.
    let expected = serde_json::json!({"type":"webrtc/candidate","value":{"candidate":c,"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"LoCl"}});
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&frames[1]).expect("json"),
        expected
    );
    // Exact duplicates are not sent twice.
    n.add_local_candidate(now, IceCandidate::new(c))
        .expect("duplicate is fine");
    assert!(drain(&mut n).0.is_empty());
}

fn answered_offerer(now: Instant) -> Negotiation {
    let mut n = Negotiation::new(Config::new(false));
    n.start_offer(now).expect("stable");
    n.set_local_description(now, SdpKind::Offer, common::sdp("LoCl", 2, 2, "actpass"))
        .expect("offer");
    n.handle_frame(
        now,
        &frame("webrtc/answer", &common::sdp("OldG", 2, 2, "active")),
    );
    let (_, events, _) = drain(&mut n);
    assert!(events.contains(&Event::Negotiated));
    n
}

#[test]
fn ice_restart_drops_stale_generation_candidates() {
    let now = Instant::now();
    let mut n = answered_offerer(now);
    let old = common::candidate(1, Some("OldG"));
    n.handle_frame(now, &frame("webrtc/candidate", &old));
    assert_eq!(added(&drain(&mut n).1).len(), 1);

    // We restart ICE; the peer answers with new credentials.
    n.start_offer(now).expect("stable");
    n.set_local_description(now, SdpKind::Offer, common::sdp("LoC2", 3, 2, "actpass"))
        .expect("offer");
    // A candidate of the new generation overtakes the answer: held, not applied to the old one.
    let new = common::candidate(2, Some("NewG"));
    n.handle_frame(now, &frame("webrtc/candidate", &new));
    let (_, events, _) = drain(&mut n);
    assert!(added(&events).is_empty());
    n.handle_frame(
        now,
        &frame("webrtc/answer", &common::sdp("NewG", 3, 2, "active")),
    );
    let (_, events, _) = drain(&mut n);
    assert!(events.contains(&Event::RemoteIceRestart {
        username_fragment: "NewG".into()
    }));
    assert_eq!(added(&events).len(), 1, "{events:?}");
    // A late candidate of the old generation is dropped and counted, never applied.
    n.handle_frame(
        now,
        &frame("webrtc/candidate", &common::candidate(3, Some("OldG"))),
    );
    let (frames, events, _) = drain(&mut n);
    assert!(frames.is_empty());
    assert_eq!(
        events,
        vec![Event::CandidatesDropped {
            reason: DropReason::StaleGeneration,
            count: 1
        }]
    );
    assert_eq!(n.stats().stale_candidates_dropped, 1);
    // Our own late candidate of the old local generation is refused.
    assert_eq!(
        n.add_local_candidate(now, IceCandidate::new(common::candidate(4, Some("LoCl")))),
        Err(ApiError::StaleCandidate)
    );
}

#[test]
fn remote_candidates_after_end_of_candidates_are_ignored_and_duplicates_suppressed() {
    let now = Instant::now();
    let mut n = answered_offerer(now);
    let c = common::candidate(1, None);
    n.handle_frame(now, &frame("webrtc/candidate", &c));
    n.handle_frame(now, &frame("webrtc/candidate", &c));
    n.handle_frame(now, &frame("webrtc/candidate", ""));
    n.handle_frame(now, &frame("webrtc/candidate", ""));
    n.handle_frame(now, &frame("webrtc/candidate", &common::candidate(2, None)));
    let (frames, events, _) = drain(&mut n);
    assert!(frames.is_empty());
    assert_eq!(added(&events).len(), 1);
    let ends = events
        .iter()
        .filter(|e| matches!(e, Event::RemoteEndOfCandidates(_)))
        .count();
    assert_eq!(ends, 1);
    assert!(events.contains(&Event::CandidatesDropped {
        reason: DropReason::AfterEndOfCandidates,
        count: 1
    }));
    assert_eq!(n.stats().duplicates_suppressed, 1);
}

#[test]
fn peer_misbehaviour_becomes_an_error_frame_and_an_event() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default());
    let cases = [
        ("not json".to_owned(), "frame: "),
        (
            frame("webrtc/answer", &common::sdp("ReMo", 2, 1, "active")),
            "webrtc/answer: unexpected answer in state stable",
        ),
        (frame("webrtc/offer", "hello"), "webrtc/offer: invalid SDP"),
        (
            frame("webrtc/candidate", "candidate:bad\r\na=inject"),
            "webrtc/candidate: invalid candidate",
        ),
        (
            frame("webrtc/candidate", "null"),
            "webrtc/candidate: invalid candidate",
        ),
    ];
    for (input, expected) in cases {
        n.handle_frame(now, &input);
        let (frames, events, _) = drain(&mut n);
        assert_eq!(frames.len(), 1, "{input}");
        let reply = wire::decode(&frames[0]).expect("our frame");
        let Message::Error(e) = reply else {
            panic!("not an error: {reply:?}")
        };
        assert!(e.text.starts_with(expected), "{input} -> {}", e.text);
        assert!(
            matches!(events.as_slice(), [Event::PeerError(_)]),
            "{events:?}"
        );
        assert_eq!(n.signaling_state(), SignalingState::Stable);
    }
    // A remote error report is an event, never answered (no error ping-pong).
    n.handle_frame(now, &frame("error", "webrtc/offer: nope"));
    let (frames, events, _) = drain(&mut n);
    assert!(frames.is_empty());
    assert!(matches!(events.as_slice(), [Event::RemoteError(_)]));
    // Unknown types are not answered: they go to the application, as received.
    let unknown = r#"{"type":"mse","value":"video"}"#;
    n.handle_frame(now, unknown);
    let (frames, events, _) = drain(&mut n);
    assert!(frames.is_empty());
    assert!(
        matches!(events.as_slice(), [Event::Message(m)] if m.kind == "mse" && m.frame == unknown),
        "{events:?}"
    );
}

#[test]
fn candidate_for_unknown_section_is_refused_without_losing_others() {
    let now = Instant::now();
    let mut n = answered_offerer(now);
    let good = IceCandidate {
        sdp_mid: Some("1".into()),
        ..IceCandidate::new(common::candidate(1, None))
    };
    let bad = IceCandidate {
        sdp_mid: Some("7".into()),
        ..IceCandidate::new(common::candidate(2, None))
    };
    let by_index = IceCandidate {
        sdp_m_line_index: Some(1),
        ..IceCandidate::new(common::candidate(3, None))
    };
    for c in [good, bad, by_index] {
        n.handle_message(now, Message::Candidate(c));
    }
    let (frames, events, _) = drain(&mut n);
    assert_eq!(frames.len(), 1);
    assert!(events.contains(&Event::PeerError(PeerError::UnknownMediaSection)));
    let got = added(&events);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].1.as_deref(), got[0].2), (Some("1"), Some(1)));
    assert_eq!((got[1].1.as_deref(), got[1].2), (Some("1"), Some(1)));
}

#[test]
fn pending_candidates_are_bounded() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default().with_max_pending_candidates(3));
    for i in 0..5 {
        n.handle_frame(now, &frame("webrtc/candidate", &common::candidate(i, None)));
    }
    let (frames, events, _) = drain(&mut n);
    assert_eq!(frames.len(), 2, "two refused with an error frame");
    assert_eq!(
        events,
        vec![
            Event::PeerError(PeerError::PendingFull { limit: 3 }),
            Event::PeerError(PeerError::PendingFull { limit: 3 })
        ]
    );
    n.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("ReMo", 2, 1, "actpass")),
    );
    assert_eq!(
        added(&drain(&mut n).1).len(),
        3,
        "the accepted three are kept"
    );
}

#[test]
fn candidates_per_generation_are_bounded() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default().with_max_candidates(2));
    n.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("ReMo", 2, 1, "actpass")),
    );
    for i in 0..3 {
        n.handle_frame(now, &frame("webrtc/candidate", &common::candidate(i, None)));
    }
    let (_, events, _) = drain(&mut n);
    assert_eq!(added(&events).len(), 2);
    assert!(events.contains(&Event::PeerError(PeerError::TooManyCandidates { limit: 2 })));
}

#[test]
fn a_refused_candidate_is_not_remembered_and_a_duplicate_at_the_bound_is_no_error() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default().with_max_candidates(1));
    n.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("ReMo", 2, 1, "actpass")),
    );
    let with_mid = |i, mid: &str| IceCandidate {
        sdp_mid: Some(mid.into()),
        ..IceCandidate::new(common::candidate(i, None))
    };
    // Refused for its m-section: not counted against the bound, not a duplicate later.
    n.handle_message(now, Message::Candidate(with_mid(1, "7")));
    n.handle_message(now, Message::Candidate(with_mid(1, "0")));
    // At the bound: the same candidate again is a duplicate, another one an error.
    n.handle_message(now, Message::Candidate(with_mid(1, "0")));
    n.handle_message(now, Message::Candidate(with_mid(2, "0")));
    let (frames, events, _) = drain(&mut n);
    assert_eq!(frames.len(), 2, "two error frames");
    assert_eq!(added(&events).len(), 1);
    let errors: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::PeerError(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            PeerError::UnknownMediaSection,
            PeerError::TooManyCandidates { limit: 1 }
        ]
    );
    assert_eq!(n.stats().duplicates_suppressed, 1);
}

#[test]
fn an_unanswered_offer_fails_at_the_deadline() {
    let now = Instant::now();
    let mut n =
        Negotiation::new(Config::new(false).with_negotiation_timeout(Duration::from_secs(5)));
    n.start_offer(now).expect("stable");
    n.set_local_description(now, SdpKind::Offer, common::sdp("LoCl", 2, 1, "actpass"))
        .expect("offer");
    let (_, _, timer) = drain(&mut n);
    assert_eq!(timer, Some(now + Duration::from_secs(5)));
    n.handle_timeout(now + Duration::from_secs(4));
    assert_eq!(drain(&mut n).1, vec![]);
    n.handle_timeout(now + Duration::from_secs(5));
    let (_, events, timer) = drain(&mut n);
    assert_eq!(
        events,
        vec![Event::NegotiationFailed(NegotiationFailure::Timeout {
            state: SignalingState::HaveLocalOffer
        })]
    );
    assert_eq!(timer, None);
    // The application rolls back and may try again.
    n.rollback(now).expect("rollback from have-local-offer");
    assert_eq!(n.signaling_state(), SignalingState::Stable);
}

#[test]
fn pranswer_then_answer() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::new(false).with_dialect(Dialect::GO2RTC_V2));
    n.start_offer(now).expect("stable");
    n.set_local_description(now, SdpKind::Offer, common::sdp("LoCl", 2, 1, "actpass"))
        .expect("offer");
    let pr = wire::encode(
        &Message::Description(wire::Description::new(
            SdpKind::Pranswer,
            common::sdp("ReMo", 2, 1, "active"),
        )),
        Dialect::GO2RTC_V2,
    );
    n.handle_frame(now, &pr);
    assert_eq!(n.signaling_state(), SignalingState::HaveRemotePranswer);
    n.handle_frame(
        now,
        &frame("webrtc/answer", &common::sdp("ReMo", 3, 1, "active")),
    );
    assert_eq!(n.signaling_state(), SignalingState::Stable);
    let (_, events, _) = drain(&mut n);
    assert_eq!(
        events.iter().filter(|e| **e == Event::Negotiated).count(),
        1
    );
}

#[test]
fn closed_sessions_ignore_input_and_refuse_commands() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default());
    n.close();
    assert_eq!(
        drain(&mut n).1,
        vec![Event::StateChanged(SignalingState::Closed)]
    );
    n.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("ReMo", 2, 1, "actpass")),
    );
    assert_eq!(drain(&mut n), (vec![], vec![], None));
    assert_eq!(n.start_offer(now), Err(ApiError::Closed));
    assert_eq!(
        n.set_local_description(now, SdpKind::Offer, common::sdp("LoCl", 2, 1, "actpass")),
        Err(ApiError::Closed)
    );
}

#[test]
fn invalid_local_input_is_an_api_error_and_changes_nothing() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default());
    assert!(matches!(
        n.set_local_description(now, SdpKind::Offer, "garbage".into()),
        Err(ApiError::InvalidSdp(_))
    ));
    assert!(matches!(
        n.add_local_candidate(
            now,
            IceCandidate::new("candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=x")
        ),
        Err(ApiError::InvalidCandidate(_))
    ));
    assert_eq!(n.signaling_state(), SignalingState::Stable);
    assert_eq!(drain(&mut n), (vec![], vec![], None));
}

/// `poll_typed_output` gives the same sequence as `poll_output`, frames as messages that encode
/// to exactly the frames `poll_output` gives, for every dialect.
#[test]
fn typed_output_is_poll_output_before_encoding() {
    use signaling_core::negotiation::{Output, TypedOutput};
    let now = Instant::now();
    for dialect in [Dialect::GO2RTC, Dialect::GO2RTC_V2, Dialect::BROWSER] {
        let run = |typed: bool| {
            let mut n = Negotiation::new(Config::new(false).with_dialect(dialect));
            n.add_local_candidate(now, IceCandidate::new(common::candidate(1, Some("LoCl"))))
                .expect("held");
            n.start_offer(now).expect("stable");
            n.set_local_description(now, SdpKind::Offer, common::sdp("LoCl", 1, 2, "actpass"))
                .expect("offer");
            n.add_local_candidate(now, IceCandidate::new(common::candidate(2, None)))
                .expect("sent");
            n.end_of_local_candidates(now).expect("end");
            n.handle_frame(now, "not json");
            let mut out = Vec::new();
            loop {
                let o = if typed {
                    match n.poll_typed_output() {
                        TypedOutput::Transmit(m) => {
                            let frame = wire::encode(&m, n.config().dialect);
                            // The message is exactly what the peer decodes from the frame.
                            assert_eq!(wire::decode(&frame), Ok(m));
                            Output::Transmit(frame)
                        }
                        TypedOutput::Event(e) => Output::Event(e),
                        TypedOutput::Timeout(t) => Output::Timeout(t),
                    }
                } else {
                    n.poll_output()
                };
                let done = matches!(o, Output::Timeout(_));
                out.push(o);
                if done {
                    return out;
                }
            }
        };
        let plain = run(false);
        assert_eq!(
            plain
                .iter()
                .filter(|o| matches!(o, Output::Transmit(_)))
                .count(),
            5,
            "offer, two candidates, end-of-candidates, error: {plain:?}"
        );
        assert_eq!(run(true), plain);
    }
}

proptest::proptest! {
    /// A candidate frame is handled exactly as its decoded message (the canonical frames take a
    /// shorter path), and a local candidate's frame is the encoding of its typed message,
    /// whatever the text: valid or not, with characters JSON must escape or not.
    #[test]
    fn candidate_frames_agree_with_typed_messages(
        n in 0u32..300,
        at in proptest::prelude::any::<proptest::sample::Index>(),
        ch in proptest::prelude::any::<char>(),
        extra in proptest::option::of("[ -~]{1,6}"),
        described: bool,
    ) {
        let now = Instant::now();
        let mut text = common::candidate(n, Some("SeEd"));
        if let Some(v) = extra {
            text.push_str(" x ");
            text.push_str(&v);
        }
        let i = at.index(text.len() + 1);
        if text.is_char_boundary(i) {
            text.insert(i, ch);
        }
        let frame = wire::encode(
            &Message::Candidate(IceCandidate::new(text.as_str())),
            Dialect::GO2RTC,
        );
        let mut by_frame = Negotiation::new(Config::default());
        let mut by_message = Negotiation::new(Config::default());
        if described {
            let offer = frame_of("webrtc/offer", &common::sdp("SeEd", 1, 2, "actpass"));
            by_frame.handle_frame(now, &offer);
            by_message.handle_frame(now, &offer);
        }
        let handled = by_frame.handle_frame(now, &frame);
        let handled_too = match wire::decode(&frame) {
            Ok(m) => by_message.handle_message(now, m),
            Err(_) => by_message.handle_frame(now, &frame),
        };
        proptest::prop_assert_eq!(handled, handled_too);
        proptest::prop_assert_eq!(drain(&mut by_frame), drain(&mut by_message));

        let answer = common::sdp("SeRv", 1, 2, "active");
        if described {
            for s in [&mut by_frame, &mut by_message] {
                s.set_local_description(now, SdpKind::Answer, answer.clone())
                    .expect("answer");
                drain(s);
            }
            let sent = by_frame.add_local_candidate(now, IceCandidate::new(text.as_str()));
            proptest::prop_assert_eq!(
                &sent,
                &by_message.add_local_candidate(now, IceCandidate::new(text.as_str()))
            );
            let typed: Vec<_> = std::iter::from_fn(|| {
                match by_message.poll_typed_output() {
                    signaling_core::negotiation::TypedOutput::Timeout(_) => None,
                    out => Some(out.into_output(Dialect::GO2RTC)),
                }
            })
            .collect();
            let encoded: Vec<_> = std::iter::from_fn(|| match by_frame.poll_output() {
                signaling_core::negotiation::Output::Timeout(_) => None,
                out => Some(out),
            })
            .collect();
            proptest::prop_assert_eq!(&encoded, &typed);
            proptest::prop_assert_eq!(encoded.len(), usize::from(sent.is_ok()));
        }
    }
}

fn frame_of(kind: &str, value: &str) -> String {
    frame(kind, value)
}

/// Sets `answer` and adds `candidate`; the frames that go out.
fn answer_with(n: &mut Negotiation, now: Instant, answer: &str, candidate: &str) -> Vec<String> {
    n.set_local_description(now, SdpKind::Answer, answer.to_owned())
        .expect("answer");
    n.add_local_candidate(now, IceCandidate::new(candidate))
        .expect("candidate");
    drain(n).0
}

/// go2rtc answers each client in the form of its request: v2 `webrtc` objects for v2 offers,
/// v1 strings for v1 offers; candidates as objects for clients that send objects.
#[test]
fn a_server_answers_in_the_dialect_of_each_client() {
    let now = Instant::now();
    let offer = common::sdp("ClNt", 1, 1, "actpass");
    let answer = common::sdp("SeRv", 1, 1, "active");
    let local = common::candidate(5, None);

    // v2 offer, bare candidate: a v2 answer, a bare candidate.
    let mut server = Negotiation::new(Config::default());
    let v2_offer = serde_json::json!({"type": "webrtc", "value": {"type": "offer", "sdp": offer}});
    server.handle_frame(now, &v2_offer.to_string());
    let frames = answer_with(&mut server, now, &answer, &local);
    let sent: Vec<serde_json::Value> = frames
        .iter()
        .map(|f| serde_json::from_str(f).expect("json"))
        .collect();
    assert_eq!(
        sent[0],
        serde_json::json!({"type": "webrtc", "value": {"type": "answer", "sdp": answer}})
    );
    assert_eq!(
        sent[1],
        serde_json::json!({"type": "webrtc/candidate", "value": local})
    );

    // v1 offer, then a candidate object (a browser's toJSON()): a v1 answer, candidate objects.
    let mut server = Negotiation::new(Config::default());
    server.handle_frame(now, &frame("webrtc/offer", &offer));
    let object = serde_json::json!({"type": "webrtc/candidate", "value": {
        "candidate": common::candidate(1, None), "sdpMid": "0", "sdpMLineIndex": 0}});
    server.handle_frame(now, &object.to_string());
    let frames = answer_with(&mut server, now, &answer, &local);
    assert_eq!(frames[0], frame("webrtc/answer", &answer));
    let candidate: serde_json::Value = serde_json::from_str(&frames[1]).expect("json");
    assert_eq!(candidate["value"]["candidate"], local.as_str());
    assert_eq!(candidate["value"]["sdpMid"], "0");

    // With mirroring off, the configured dialect is kept.
    let mut server = Negotiation::new(Config::default().with_mirror_dialect(false));
    server.handle_frame(now, &v2_offer.to_string());
    server
        .set_local_description(now, SdpKind::Answer, answer.clone())
        .expect("answer");
    let (frames, _, _) = drain(&mut server);
    assert_eq!(frames[0], frame("webrtc/answer", &answer));
}

/// The stack refuses an offer: the peer hears why in go2rtc's form, the session is back in
/// stable, and the next offer (even the same SDP, sent again) is applied.
#[test]
fn a_rejected_offer_is_reported_and_the_next_one_works() {
    let now = Instant::now();
    let mut server = Negotiation::new(Config::default());
    let offer = common::sdp("ClNt", 1, 1, "actpass");
    server.handle_frame(now, &frame("webrtc/candidate", &common::candidate(1, None)));
    server.handle_frame(now, &frame("webrtc/offer", &offer));
    drain(&mut server);
    assert_eq!(
        server.reject_remote_description(now, "no codec in common"),
        Ok(())
    );
    let (frames, events, timer) = drain(&mut server);
    assert_eq!(
        frames,
        vec![frame("error", "webrtc/offer: no codec in common")]
    );
    assert_eq!(events, vec![Event::StateChanged(SignalingState::Stable)]);
    assert_eq!(timer, None, "no negotiation is running");
    assert_eq!(
        server.reject_remote_description(now, "again"),
        Err(ApiError::InvalidState {
            operation: "reject remote description",
            state: SignalingState::Stable
        })
    );
    // A candidate now waits for the next offer; the same offer again is a new round.
    let c2 = common::candidate(2, None);
    server.handle_frame(now, &frame("webrtc/candidate", &c2));
    assert_eq!(drain(&mut server).1, vec![], "held until the next offer");
    server.handle_frame(now, &frame("webrtc/offer", &offer));
    let (_, events, _) = drain(&mut server);
    assert!(matches!(&events[0], Event::ApplyRemoteDescription(d) if d.sdp == offer));
    assert_eq!(
        added(&events).into_iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![c2],
        "only the candidate sent after the rejection"
    );
    server
        .set_local_description(now, SdpKind::Answer, common::sdp("SeRv", 1, 1, "active"))
        .expect("answer");
    assert_eq!(server.signaling_state(), SignalingState::Stable);

    // A v2 client hears about its `webrtc` request.
    let mut server = Negotiation::new(Config::default());
    let v2 = serde_json::json!({"type": "webrtc", "value": {"type": "offer", "sdp": offer}});
    server.handle_frame(now, &v2.to_string());
    drain(&mut server);
    server
        .reject_remote_description(now, "unsupported")
        .expect("reject");
    assert_eq!(
        drain(&mut server).0,
        vec![frame("error", "webrtc: unsupported")]
    );
}

/// A relay tells a client its role after the connection is up: the role decides the next
/// collision.
#[test]
fn the_role_can_be_set_after_the_start() {
    let now = Instant::now();
    let theirs = common::sdp("ThEm", 1, 1, "actpass");
    for polite in [false, true] {
        let mut n = Negotiation::new(Config::new(!polite));
        n.set_polite(polite);
        assert_eq!(n.is_polite(), polite);
        n.start_offer(now).expect("stable");
        n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 1, 1, "actpass"))
            .expect("offer");
        drain(&mut n);
        n.handle_frame(now, &frame("webrtc/offer", &theirs));
        let (_, events, _) = drain(&mut n);
        if polite {
            assert_eq!(events[0], Event::Rollback);
            assert_eq!(n.signaling_state(), SignalingState::HaveRemoteOffer);
        } else {
            assert_eq!(events, vec![Event::OfferIgnored]);
            assert_eq!(n.signaling_state(), SignalingState::HaveLocalOffer);
        }
    }
}

/// The same description delivered twice while it is in force is dropped; once this side has
/// acted on it, the same SDP is a new round (RFC 3264 allows an unchanged offer, and a browser
/// applies it). The same answer again in `stable` can start nothing: dropped too.
#[test]
fn only_true_duplicates_are_suppressed() {
    let now = Instant::now();
    let offer = frame("webrtc/offer", &common::sdp("ThEm", 1, 1, "actpass"));
    let mut n = Negotiation::new(Config::default());
    assert_eq!(n.handle_frame(now, &offer), Handled::Applied);
    drain(&mut n);
    // Delivered again while being answered: a duplicate, nothing happens.
    assert_eq!(n.handle_frame(now, &offer), Handled::Duplicate);
    assert_eq!(
        drain(&mut n),
        (vec![], vec![], Some(now + Duration::from_secs(30)))
    );
    n.set_local_description(now, SdpKind::Answer, common::sdp("OuRs", 1, 1, "active"))
        .expect("answer");
    drain(&mut n);
    // The peer offers the same SDP again: a new round, as in a browser.
    assert_eq!(n.handle_frame(now, &offer), Handled::Applied);
    let (_, events, _) = drain(&mut n);
    assert!(matches!(&events[0], Event::ApplyRemoteDescription(d) if d.kind == SdpKind::Offer));
    assert_eq!(n.signaling_state(), SignalingState::HaveRemoteOffer);

    // The offering side: the same answer twice in stable is dropped; after a new offer the
    // same answer SDP (an unchanged answerer) is applied.
    let answer = frame("webrtc/answer", &common::sdp("ThEm", 1, 1, "active"));
    let mut n = Negotiation::new(Config::new(false));
    n.start_offer(now).expect("stable");
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 1, 1, "actpass"))
        .expect("offer");
    assert_eq!(n.handle_frame(now, &answer), Handled::Applied);
    drain(&mut n);
    assert_eq!(n.handle_frame(now, &answer), Handled::Duplicate);
    assert_eq!(drain(&mut n).0, Vec::<String>::new(), "no error frame");
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 2, 1, "actpass"))
        .expect("offer again");
    assert_eq!(n.handle_frame(now, &answer), Handled::Applied);
    assert_eq!(n.signaling_state(), SignalingState::Stable);
}

/// W3C perfect negotiation clears `makingOffer` in a `finally`: when the stack fails to make
/// the offer, the impolite side must not ignore the peer's next offer forever.
#[test]
fn a_failed_offer_does_not_block_the_peers_offers() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::new(false));
    n.start_offer(now).expect("stable");
    assert!(n.making_offer());
    // The stack failed to create the offer.
    n.cancel_offer(now).expect("cancel");
    assert!(!n.making_offer());
    let offer = frame("webrtc/offer", &common::sdp("ThEm", 1, 1, "actpass"));
    assert_eq!(n.handle_frame(now, &offer), Handled::Applied);
    assert_eq!(n.signaling_state(), SignalingState::HaveRemoteOffer);

    // A new local offer is legal in have-local-offer (W3C table), so is announcing one.
    let mut n = Negotiation::new(Config::new(false));
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 1, 1, "actpass"))
        .expect("offer");
    assert_eq!(n.start_offer(now), Ok(()));
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 2, 1, "actpass"))
        .expect("a new offer");
    assert_eq!(n.signaling_state(), SignalingState::HaveLocalOffer);
}

/// `handle_frame` says which rule applied to each frame.
#[test]
fn each_frame_says_what_was_done_with_it() {
    let now = Instant::now();
    let mut n = Negotiation::new(Config::default());
    let c1 = frame("webrtc/candidate", &common::candidate(1, None));
    assert_eq!(n.handle_frame(now, &c1), Handled::Held);
    assert_eq!(
        n.handle_frame(
            now,
            &frame("webrtc/offer", &common::sdp("ThEm", 1, 1, "actpass"))
        ),
        Handled::Applied
    );
    assert_eq!(n.handle_frame(now, &c1), Handled::Duplicate);
    assert_eq!(
        n.handle_frame(now, &frame("webrtc/candidate", &common::candidate(2, None))),
        Handled::Applied
    );
    assert_eq!(
        n.handle_frame(now, &frame("webrtc/candidate", "")),
        Handled::Applied
    );
    assert_eq!(
        n.handle_frame(now, &frame("webrtc/candidate", &common::candidate(3, None))),
        Handled::Dropped
    );
    assert_eq!(n.handle_frame(now, "nonsense"), Handled::Refused);
    assert_eq!(
        n.handle_frame(now, &frame("error", "x: y")),
        Handled::Delivered
    );
    assert_eq!(
        n.handle_frame(now, r#"{"type":"relay/joined","value":{"id":"2"}}"#),
        Handled::Delivered
    );
    n.close();
    assert_eq!(n.handle_frame(now, &c1), Handled::Closed);
}

/// What building peers on real stacks showed: the role comes from the relay's welcome before
/// the frames behind it; a rolled-back offer gives the local description back; candidates that
/// trail an ignored offer are dropped without an error; an empty `sdpMid` means none.
#[test]
fn friction_found_with_real_stacks() {
    let now = Instant::now();
    // The welcome and a mailbox offer arrive together: the offer is handled as the polite side.
    let mut n = Negotiation::new(Config::new(false));
    n.start_offer(now).expect("stable");
    let welcome = r#"{"type":"relay/welcome","value":{"id":"2","room":"r","peers":["1"],"resume":"t","polite":true}}"#;
    assert_eq!(n.handle_frame(now, welcome), Handled::Delivered);
    assert!(n.is_polite());
    let offer = frame("webrtc/offer", &common::sdp("ThEm", 1, 1, "actpass"));
    assert_eq!(
        n.handle_frame(now, &offer),
        Handled::Applied,
        "polite: our offer yields"
    );
    let mut n = Negotiation::new(Config::new(false).with_relay_role(false));
    n.handle_frame(now, welcome);
    assert!(!n.is_polite(), "the role is the application's when asked");

    // Rollback: the abandoned offer's candidates and end-of-candidates do not bind the next
    // description.
    let mut n = Negotiation::new(Config::new(true));
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 1, 1, "actpass"))
        .expect("offer");
    let c = IceCandidate::new(common::candidate(1, None));
    n.add_local_candidate(now, c.clone()).expect("sent");
    n.end_of_local_candidates(now).expect("end");
    n.rollback(now).expect("rollback");
    assert!(
        n.local_description().is_none(),
        "back to no local description"
    );
    assert_eq!(
        n.add_local_candidate(now, c.clone()),
        Ok(()),
        "held for the next one"
    );
    drain(&mut n);
    n.handle_frame(now, &offer);
    n.set_local_description(now, SdpKind::Answer, common::sdp("OuRs", 1, 1, "active"))
        .expect("answer");
    let (frames, _, _) = drain(&mut n);
    assert_eq!(
        frames[1],
        frame("webrtc/candidate", &c.candidate),
        "sent after the answer"
    );

    // Impolite side ignoring an offer: candidates naming its sections are dropped quietly.
    let mut n = Negotiation::new(Config::new(false).with_dialect(Dialect::BROWSER));
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 1, 1, "actpass"))
        .expect("offer");
    n.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("ThEm", 1, 3, "actpass")),
    );
    drain(&mut n);
    let trailing = serde_json::json!({"type": "webrtc/candidate", "value": {
        "candidate": common::candidate(2, None), "sdpMid": "2"}});
    // Nothing was negotiated yet: it waits for a description, as any early candidate does.
    assert_eq!(n.handle_frame(now, &trailing.to_string()), Handled::Held);
    let answer = frame("webrtc/answer", &common::sdp("ThEm", 2, 1, "active"));
    n.handle_frame(now, &answer);
    let (frames, events, _) = drain(&mut n);
    assert!(frames.is_empty(), "no error frame: {frames:?}");
    let dropped = Event::CandidatesDropped {
        reason: DropReason::IgnoredOffer,
        count: 1,
    };
    assert!(events.contains(&dropped), "{events:?}");
    // Once negotiated, a new ignored offer's trailing candidates are dropped as they come.
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 2, 1, "actpass"))
        .expect("offer");
    n.handle_frame(
        now,
        &frame("webrtc/offer", &common::sdp("ThEm", 3, 3, "actpass")),
    );
    drain(&mut n);
    assert_eq!(n.handle_frame(now, &trailing.to_string()), Handled::Dropped);
    let (frames, _, _) = drain(&mut n);
    assert!(frames.is_empty(), "no error frame: {frames:?}");

    // An empty mid (webrtc-rs's toJSON) is filled in like a missing one.
    let mut n = Negotiation::new(Config::new(true).with_dialect(Dialect::BROWSER));
    n.set_local_description(now, SdpKind::Offer, common::sdp("OuRs", 1, 1, "actpass"))
        .expect("offer");
    let mut c = IceCandidate::new(common::candidate(3, None));
    c.sdp_mid = Some("".into());
    n.add_local_candidate(now, c).expect("candidate");
    let (frames, _, _) = drain(&mut n);
    let sent: serde_json::Value = serde_json::from_str(&frames[1]).expect("json");
    assert_eq!(sent["value"]["sdpMid"], "0");
}
