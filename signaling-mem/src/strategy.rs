//! proptest strategies for link faults and signaling scenarios (feature `proptest`).
//!
//! Property-test a flow in a few lines:
//!
//! ```
//! use std::time::Instant;
//! use proptest::prelude::*;
//! use signaling_mem::strategy;
//!
//! proptest!(ProptestConfig::with_cases(64), |(scenario in strategy::scenario(), seed: u64)| {
//!     let run = scenario.run(seed, Instant::now(), 100_000).expect("settles");
//!     prop_assert_eq!(run.check(), Ok(()));
//! });
//! ```
//!
//! Bring your own [`crate::sim::Node`] and use [`link`] / [`lossless_link`] for the faults.
use std::time::Duration;

use proptest::prelude::*;
use signaling_core::wire::Dialect;

use crate::sim::{LinkConfig, PeerScript, Scenario};

/// A link with delay, jitter, duplication, reordering (when unordered) and no loss: what a
/// reliable transport may look like from the signaling layer's point of view.
pub fn lossless_link() -> impl Strategy<Value = LinkConfig> {
    (0u64..200, 0u64..200, 0.0f64..0.3, any::<bool>()).prop_map(|(delay, jitter, dup, ordered)| {
        let link = LinkConfig::default()
            .with_delay(Duration::from_millis(delay))
            .with_jitter(Duration::from_millis(jitter))
            .with_duplicate(dup);
        if ordered {
            link
        } else {
            link.unordered()
        }
    })
}

/// Any link: [`lossless_link`] plus loss up to 30 %.
pub fn link() -> impl Strategy<Value = LinkConfig> {
    (lossless_link(), 0.0f64..0.3).prop_map(|(l, loss)| l.with_loss(loss))
}

/// One peer's script.
pub fn peer_script() -> impl Strategy<Value = PeerScript> {
    (0u32..8, 1u64..30, any::<bool>(), 1usize..4, any::<bool>()).prop_map(
        |(candidates, gap, ufrag_in_candidate, sections, end)| PeerScript {
            candidates,
            gather_interval: Duration::from_millis(gap),
            ufrag_in_candidate,
            sections,
            end_of_candidates: end,
            ..PeerScript::default()
        },
    )
}

/// A wire dialect.
pub fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![
        Just(Dialect::GO2RTC),
        Just(Dialect::GO2RTC_V2),
        Just(Dialect::BROWSER)
    ]
}

/// A two-peer scenario over a [`lossless_link`]: glare or not, ICE restart or not. Every such
/// scenario must converge.
///
/// On unordered links the scenario has no glare and sends no end-of-candidates: perfect
/// negotiation and RFC 8838's end-of-candidates both assume signaling that is ordered per
/// direction (a re-offer overtaking its own answer, or end-of-candidates overtaking candidates,
/// is then handled by the rules as written, and not as the sender meant). For the same reason an
/// ICE restart on an unordered link uses candidates that name their ufrag: a bare candidate
/// (the seed client's) that overtakes the restart's description cannot be told apart from one of
/// the old generation.
pub fn scenario() -> impl Strategy<Value = Scenario> {
    (
        peer_script(),
        peer_script(),
        dialect(),
        any::<bool>(),
        any::<bool>(),
        lossless_link(),
    )
        .prop_map(|(mut a, mut b, dialect, glare, restart, link)| {
            let glare = glare && link.ordered;
            if !link.ordered {
                for p in [&mut a, &mut b] {
                    p.end_of_candidates = false;
                    p.ufrag_in_candidate |= restart;
                }
            }
            Scenario {
                a,
                b,
                dialect,
                glare,
                restart,
                link,
                ..Scenario::default()
            }
        })
}
