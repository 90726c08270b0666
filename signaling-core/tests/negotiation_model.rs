//! Random sequences of commands and remote descriptions follow the W3C `RTCSignalingState`
//! transition table (with perfect negotiation's collision rule), checked against a small
//! reference model.
// Tests take one base instant from the clock; the library itself never reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use signaling_core::negotiation::{ApiError, Config, Event, Negotiation, SignalingState};
use signaling_core::wire::{self, Description, Message, SdpKind};

#[derive(Clone, Copy, Debug)]
enum Op {
    StartOffer,
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
        6 => kind.clone().prop_map(Op::Local),
        2 => Just(Op::Rollback),
        6 => kind.prop_map(Op::Remote),
        1 => Just(Op::Close),
    ]
}

/// The reference model: W3C table plus perfect negotiation's offer collision rule.
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
        use SignalingState as S;
        if self.state == S::Closed {
            return match op {
                Op::Remote(_) => Outcome::Nothing,
                Op::Close => Outcome::Nothing,
                _ => Outcome::ApiErr,
            };
        }
        match op {
            Op::StartOffer => {
                if self.state == S::Stable {
                    self.making_offer = true;
                    Outcome::Ok
                } else {
                    Outcome::ApiErr
                }
            }
            Op::Local(kind) => {
                let next = match (kind, self.state) {
                    (SdpKind::Offer, S::Stable | S::HaveLocalOffer) => S::HaveLocalOffer,
                    (SdpKind::Answer, S::HaveRemoteOffer | S::HaveLocalPranswer) => S::Stable,
                    (SdpKind::Pranswer, S::HaveRemoteOffer | S::HaveLocalPranswer) => {
                        S::HaveLocalPranswer
                    }
                    _ => return Outcome::ApiErr,
                };
                if kind == SdpKind::Offer {
                    self.making_offer = false;
                }
                self.state = next;
                Outcome::Ok
            }
            Op::Rollback => match self.state {
                S::HaveLocalOffer | S::HaveRemoteOffer => {
                    self.state = S::Stable;
                    self.making_offer = false;
                    Outcome::Ok
                }
                _ => Outcome::ApiErr,
            },
            Op::Remote(SdpKind::Offer) => {
                let collision = self.making_offer || self.state != S::Stable;
                if collision && !self.polite {
                    return Outcome::Ignored;
                }
                match self.state {
                    S::Stable | S::HaveLocalOffer | S::HaveRemoteOffer => {
                        self.making_offer = false;
                        self.state = S::HaveRemoteOffer;
                        Outcome::Ok
                    }
                    _ => Outcome::PeerErr,
                }
            }
            Op::Remote(kind) => match self.state {
                S::HaveLocalOffer | S::HaveRemotePranswer => {
                    self.state = if kind == SdpKind::Answer {
                        S::Stable
                    } else {
                        S::HaveRemotePranswer
                    };
                    Outcome::Ok
                }
                _ => Outcome::PeerErr,
            },
            Op::Close => {
                self.state = S::Closed;
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
        let mut model = Model { state: SignalingState::Stable, making_offer: false, polite };
        for (i, op) in ops.iter().enumerate() {
            let version = i as u64 + 2;
            let expected = model.apply(*op);
            let before = n.signaling_state();
            let got = match *op {
                Op::StartOffer => n.start_offer(now).map(|_| Outcome::Ok),
                Op::Local(kind) => n
                    .set_local_description(now, kind, common::sdp("LoCl", version, 2, "actpass"))
                    .map(|_| Outcome::Ok),
                Op::Rollback => n.rollback(now).map(|_| Outcome::Ok),
                Op::Remote(kind) => {
                    let frame = wire::encode(
                        &Message::Description(Description::new(kind, common::sdp("ReMo", version, 2, "active"))),
                        wire::Dialect::GO2RTC_V2,
                    );
                    n.handle_frame(now, &frame);
                    Ok(Outcome::Nothing)
                }
                Op::Close => { n.close(); Ok(Outcome::Ok) }
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
                (Outcome::PeerErr, Ok(_)) => {
                    prop_assert!(events.iter().any(|e| matches!(e, Event::PeerError(_))));
                    prop_assert_eq!(frames.len(), 1);
                    prop_assert!(frames[0].starts_with(r#"{"type":"error","value":"#), "{}", frames[0]);
                }
                (Outcome::Ignored, Ok(_)) => {
                    prop_assert_eq!(&events, &vec![Event::OfferIgnored]);
                    prop_assert!(frames.is_empty());
                }
                (Outcome::Ok, Ok(_)) => {
                    if let Op::Remote(kind) = op {
                        prop_assert!(events.iter().any(|e| matches!(e, Event::ApplyRemoteDescription(d) if d.kind == *kind)));
                    }
                    if let Op::Local(_) = op {
                        prop_assert_eq!(frames.len(), 1, "a local description goes on the wire");
                    }
                }
                (Outcome::Nothing, Ok(_)) => prop_assert!(frames.is_empty() && events.is_empty()),
            }
            prop_assert_eq!(n.signaling_state(), model.state, "after {:?} (step {})", op, i);
            prop_assert_eq!(n.making_offer(), model.making_offer);
        }
    }
}
