//! Random sequences of commands and remote descriptions follow the W3C `RTCSignalingState`
//! transition table, written out below as the spec gives it, with perfect negotiation's
//! collision rule on top.
// Tests take one base instant from the clock; the library itself never reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use signaling_core::negotiation::{ApiError, Config, Event, Handled, Negotiation, SignalingState};
use signaling_core::wire::{self, Description, Message, SdpKind};

use SignalingState::{
    Closed, HaveLocalOffer, HaveLocalPranswer, HaveRemoteOffer, HaveRemotePranswer, Stable,
};

/// A step of the W3C table: which side sets which description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// `setLocalDescription({type})`.
    Local(SdpKind),
    /// `setRemoteDescription({type})`.
    Remote(SdpKind),
    /// `setLocalDescription({type: "rollback"})` (or remote rollback: the same transitions).
    Rollback,
}

/// W3C WebRTC 1.0, §4.3.1 (the `RTCSignalingState` state transition diagram) and JSEP
/// (RFC 9429 §3.2): every legal (state, step, next state). Anything not here is an
/// `InvalidStateError`.
const W3C_TABLE: &[(SignalingState, Step, SignalingState)] = &[
    (Stable, Step::Local(SdpKind::Offer), HaveLocalOffer),
    (Stable, Step::Remote(SdpKind::Offer), HaveRemoteOffer),
    (HaveLocalOffer, Step::Local(SdpKind::Offer), HaveLocalOffer),
    (
        HaveLocalOffer,
        Step::Remote(SdpKind::Pranswer),
        HaveRemotePranswer,
    ),
    (HaveLocalOffer, Step::Remote(SdpKind::Answer), Stable),
    (HaveLocalOffer, Step::Rollback, Stable),
    (
        HaveRemoteOffer,
        Step::Remote(SdpKind::Offer),
        HaveRemoteOffer,
    ),
    (
        HaveRemoteOffer,
        Step::Local(SdpKind::Pranswer),
        HaveLocalPranswer,
    ),
    (HaveRemoteOffer, Step::Local(SdpKind::Answer), Stable),
    (HaveRemoteOffer, Step::Rollback, Stable),
    (
        HaveLocalPranswer,
        Step::Local(SdpKind::Pranswer),
        HaveLocalPranswer,
    ),
    (HaveLocalPranswer, Step::Local(SdpKind::Answer), Stable),
    (
        HaveRemotePranswer,
        Step::Remote(SdpKind::Pranswer),
        HaveRemotePranswer,
    ),
    (HaveRemotePranswer, Step::Remote(SdpKind::Answer), Stable),
];

fn w3c(state: SignalingState, step: Step) -> Option<SignalingState> {
    W3C_TABLE
        .iter()
        .find(|(from, s, _)| *from == state && *s == step)
        .map(|(_, _, to)| *to)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    StartOffer,
    CancelOffer,
    Local(SdpKind),
    Rollback,
    Remote(SdpKind),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(SdpKind::Offer),
        Just(SdpKind::Answer),
        Just(SdpKind::Pranswer)
    ];
    prop_oneof![
        2 => Just(Op::StartOffer),
        1 => Just(Op::CancelOffer),
        6 => kind.clone().prop_map(Op::Local),
        2 => Just(Op::Rollback),
        6 => kind.prop_map(Op::Remote),
        1 => Just(Op::Close),
    ]
}

/// What the W3C table and the perfect negotiation pattern (W3C WebRTC 1.0 §10.7) say a
/// browser running that pattern does.
#[derive(Debug)]
struct Model {
    state: SignalingState,
    making_offer: bool,
    polite: bool,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    ApiErr,
    PeerErr,
    Ignored,
    Nothing,
}

impl Model {
    fn apply(&mut self, op: Op) -> Outcome {
        if self.state == Closed {
            return match op {
                Op::Remote(_) | Op::Close => Outcome::Nothing,
                _ => Outcome::ApiErr,
            };
        }
        match op {
            // `makingOffer = true` before `setLocalDescription()`, which creates an offer
            // where the table allows a local offer.
            Op::StartOffer => match w3c(self.state, Step::Local(SdpKind::Offer)) {
                Some(_) => {
                    self.making_offer = true;
                    Outcome::Ok
                }
                None => Outcome::ApiErr,
            },
            // The pattern's `finally { makingOffer = false; }`.
            Op::CancelOffer => {
                self.making_offer = false;
                Outcome::Ok
            }
            Op::Local(kind) => match w3c(self.state, Step::Local(kind)) {
                Some(next) => {
                    if kind == SdpKind::Offer {
                        self.making_offer = false;
                    }
                    self.state = next;
                    Outcome::Ok
                }
                None => Outcome::ApiErr,
            },
            Op::Rollback => match w3c(self.state, Step::Rollback) {
                Some(next) => {
                    self.state = next;
                    self.making_offer = false;
                    Outcome::Ok
                }
                None => Outcome::ApiErr,
            },
            Op::Remote(SdpKind::Offer) => {
                // offerCollision = makingOffer || signalingState != "stable"; the impolite
                // side ignores it, the polite side rolls back implicitly.
                let collision = self.making_offer || self.state != Stable;
                if collision && !self.polite {
                    return Outcome::Ignored;
                }
                let from = match w3c(self.state, Step::Rollback) {
                    Some(stable) if self.state == HaveLocalOffer => stable,
                    _ => self.state,
                };
                match w3c(from, Step::Remote(SdpKind::Offer)) {
                    Some(next) => {
                        self.making_offer = false;
                        self.state = next;
                        Outcome::Ok
                    }
                    None => Outcome::PeerErr,
                }
            }
            Op::Remote(kind) => match w3c(self.state, Step::Remote(kind)) {
                Some(next) => {
                    self.state = next;
                    Outcome::Ok
                }
                None => Outcome::PeerErr,
            },
            Op::Close => {
                self.state = Closed;
                self.making_offer = false;
                Outcome::Ok
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn follows_the_w3c_table(polite: bool, ops in proptest::collection::vec(op(), 1..40)) {
        let now = Instant::now();
        let mut n = Negotiation::new(Config::new(polite).with_negotiation_timeout(Duration::from_secs(5)));
        let mut model = Model { state: Stable, making_offer: false, polite };
        for (i, op) in ops.iter().enumerate() {
            let version = i as u64 + 2;
            let expected = model.apply(*op);
            let before = n.signaling_state();
            let got = match *op {
                Op::StartOffer => n.start_offer(now).map(|_| None),
                Op::CancelOffer => n.cancel_offer(now).map(|_| None),
                Op::Local(kind) => n
                    .set_local_description(now, kind, common::sdp("LoCl", version, 2, "actpass"))
                    .map(|_| None),
                Op::Rollback => n.rollback(now).map(|_| None),
                Op::Remote(kind) => {
                    let frame = wire::encode(
                        &Message::Description(Description::new(kind, common::sdp("ReMo", version, 2, "active"))),
                        wire::Dialect::GO2RTC_V2,
                    );
                    Ok(Some(n.handle_frame(now, &frame)))
                }
                Op::Close => { n.close(); Ok(None) }
            };
            let (frames, events, _) = common::drain(&mut n);
            match (&expected, got) {
                (Outcome::ApiErr, Err(e)) => {
                    prop_assert!(matches!(e, ApiError::InvalidState { .. } | ApiError::Closed), "{e:?}");
                    prop_assert_eq!(n.signaling_state(), before, "a refused command changed the state");
                    prop_assert!(frames.is_empty() && events.is_empty());
                }
                (Outcome::ApiErr, Ok(_)) => prop_assert!(false, "{op:?} accepted in {before}"),
                (_, Err(e)) => prop_assert!(false, "{op:?} refused in {before}: {e}"),
                (Outcome::PeerErr, Ok(handled)) => {
                    prop_assert_eq!(handled, Some(Handled::Refused));
                    prop_assert!(events.iter().any(|e| matches!(e, Event::PeerError(_))));
                    prop_assert_eq!(frames.len(), 1);
                    prop_assert!(frames[0].starts_with(r#"{"type":"error","value":"#), "{}", frames[0]);
                }
                (Outcome::Ignored, Ok(handled)) => {
                    prop_assert_eq!(handled, Some(Handled::Collision));
                    prop_assert_eq!(&events, &vec![Event::OfferIgnored]);
                    prop_assert!(frames.is_empty());
                }
                (Outcome::Ok, Ok(handled)) => {
                    if let Op::Remote(kind) = op {
                        prop_assert_eq!(handled, Some(Handled::Applied));
                        prop_assert!(events.iter().any(|e| matches!(e, Event::ApplyRemoteDescription(d) if d.kind == *kind)));
                    }
                    if let Op::Local(_) = op {
                        prop_assert_eq!(frames.len(), 1, "a local description goes on the wire");
                    }
                }
                (Outcome::Nothing, Ok(handled)) => {
                    prop_assert!(matches!(handled, None | Some(Handled::Closed)));
                    prop_assert!(frames.is_empty() && events.is_empty());
                }
            }
            prop_assert_eq!(n.signaling_state(), model.state, "after {:?} (step {})", op, i);
            prop_assert_eq!(n.making_offer(), model.making_offer);
        }
    }
}

/// Every state, every step, straight from the table (the random sequences above reach the
/// pranswer states rarely).
#[test]
fn every_state_and_step() {
    let now = Instant::now();
    let kinds = [SdpKind::Offer, SdpKind::Answer, SdpKind::Pranswer];
    let states = [
        Stable,
        HaveLocalOffer,
        HaveRemoteOffer,
        HaveLocalPranswer,
        HaveRemotePranswer,
    ];
    // How to reach each state from stable.
    let path = |state: SignalingState| -> Vec<Step> {
        match state {
            Stable => vec![],
            HaveLocalOffer => vec![Step::Local(SdpKind::Offer)],
            HaveRemoteOffer => vec![Step::Remote(SdpKind::Offer)],
            HaveLocalPranswer => vec![Step::Remote(SdpKind::Offer), Step::Local(SdpKind::Pranswer)],
            HaveRemotePranswer => {
                vec![Step::Local(SdpKind::Offer), Step::Remote(SdpKind::Pranswer)]
            }
            Closed => unreachable!(),
        }
    };
    let steps = kinds
        .iter()
        .flat_map(|&k| [Step::Local(k), Step::Remote(k)])
        .chain([Step::Rollback]);
    for polite in [false, true] {
        for state in states {
            for step in steps.clone() {
                let mut n = Negotiation::new(Config::new(polite));
                let mut version = 1;
                let mut run = |n: &mut Negotiation, step: Step| -> Result<Handled, ApiError> {
                    version += 1;
                    match step {
                        Step::Local(kind) => n
                            .set_local_description(
                                now,
                                kind,
                                common::sdp("LoCl", version, 1, "actpass"),
                            )
                            .map(|()| Handled::Applied),
                        Step::Rollback => n.rollback(now).map(|()| Handled::Applied),
                        Step::Remote(kind) => {
                            let d =
                                Description::new(kind, common::sdp("ReMo", version, 1, "active"));
                            Ok(n.handle_message(now, Message::Description(d)))
                        }
                    }
                };
                for s in path(state) {
                    assert_eq!(run(&mut n, s), Ok(Handled::Applied), "reaching {state}");
                }
                assert_eq!(n.signaling_state(), state);
                let got = run(&mut n, step);
                let remote_offer = step == Step::Remote(SdpKind::Offer);
                let expected = match w3c(state, step) {
                    // The impolite side ignores a colliding offer.
                    _ if remote_offer && !polite && state != Stable => Ok(Handled::Collision),
                    // The polite side rolls its own offer back first.
                    _ if remote_offer && state == HaveLocalOffer => Ok(Handled::Applied),
                    Some(_) => Ok(Handled::Applied),
                    None if matches!(step, Step::Remote(_)) => Ok(Handled::Refused),
                    None => Err(()),
                };
                assert_eq!(
                    got.map_err(|_| ()),
                    expected,
                    "{step:?} in {state} (polite: {polite})"
                );
                let after = match expected {
                    Ok(Handled::Applied) if remote_offer => HaveRemoteOffer,
                    Ok(Handled::Applied) => w3c(state, step).unwrap_or(state),
                    _ => state,
                };
                assert_eq!(
                    n.signaling_state(),
                    after,
                    "{step:?} in {state} (polite: {polite})"
                );
            }
        }
    }
}
