//! The negotiation state machine beside Chromium's `RTCPeerConnection`: the same sequences of
//! operations (every state × every operation, polite and impolite, and random sequences) run in
//! the browser with the W3C perfect negotiation pattern (`examples/browser/w3c.mjs`) and on
//! [`Negotiation`] with the descriptions the browser made; after every operation both must
//! agree on what happened (applied, refused, ignored as a collision), on the signaling state,
//! and on `makingOffer`.
//!
//! Runs in a loopback-only network namespace like the other browser tests; skipped (or failed
//! under `SIGNALING_REQUIRE_BROWSER=1`) when Chromium or the namespace is missing.
// The test takes one base instant from the clock; the library never reads it.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use serde::Deserialize;
use signaling_core::negotiation::{Config, Handled, Negotiation};
use signaling_core::wire::{Description, Message, SdpKind};

mod support;

const LIMIT: Duration = Duration::from_secs(240);

const OPS: [&str; 10] = [
    "startOffer",
    "cancelOffer",
    "localOffer",
    "localAnswer",
    "localPranswer",
    "remoteOffer",
    "remoteAnswer",
    "remotePranswer",
    "rollback",
    "close",
];

#[derive(serde::Serialize)]
struct Case {
    polite: bool,
    ops: Vec<&'static str>,
}

/// What the browser did for one operation.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Step {
    result: String,
    state: String,
    making_offer: bool,
    sdp: Option<String>,
}

/// Every operation from every state (and from stable while an offer is being made), both
/// roles; then random sequences from a fixed seed.
fn cases() -> Vec<Case> {
    let paths: [&[&'static str]; 6] = [
        &[],
        &["startOffer"],
        &["localOffer"],
        &["remoteOffer"],
        &["remoteOffer", "localPranswer"],
        &["localOffer", "remotePranswer"],
    ];
    let mut cases = Vec::new();
    for polite in [false, true] {
        for path in paths {
            for op in OPS {
                let mut ops = path.to_vec();
                ops.push(op);
                cases.push(Case { polite, ops });
            }
        }
    }
    // xorshift64*: a fixed sequence, so that a failure can be replayed.
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |n: usize| {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    };
    for i in 0..160 {
        let len = 2 + next(12);
        // `close` only ends a sequence: after it everything is refused either way.
        let ops = (0..len).map(|_| OPS[next(OPS.len() - 1)]).collect();
        let mut case = Case {
            polite: i % 2 == 0,
            ops,
        };
        if next(8) == 0 {
            case.ops.push("close");
        }
        cases.push(case);
    }
    cases
}

/// Runs `op` on the state machine with the description the browser used; what happened, in
/// the browser's words.
fn apply(n: &mut Negotiation, now: Instant, op: &str, sdp: String) -> &'static str {
    let local = |n: &mut Negotiation, kind| n.set_local_description(now, kind, sdp.clone());
    let remote = |n: &mut Negotiation, kind| match n.handle_message(
        now,
        Message::Description(Description::new(kind, sdp.clone())),
    ) {
        Handled::Applied => "ok",
        Handled::Collision => "ignored",
        Handled::Refused => "refused",
        Handled::Duplicate => "duplicate",
        _ => "other",
    };
    let done = |r: Result<(), _>| if r.is_ok() { "ok" } else { "refused" };
    match op {
        "startOffer" => done(n.start_offer(now)),
        "cancelOffer" => done(n.cancel_offer(now)),
        "localOffer" => done(local(n, SdpKind::Offer)),
        "localAnswer" => done(local(n, SdpKind::Answer)),
        "localPranswer" => done(local(n, SdpKind::Pranswer)),
        "remoteOffer" => remote(n, SdpKind::Offer),
        "remoteAnswer" => remote(n, SdpKind::Answer),
        "remotePranswer" => remote(n, SdpKind::Pranswer),
        "rollback" => done(n.rollback(now)),
        "close" => {
            n.close();
            "ok"
        }
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn the_state_machine_agrees_with_chromium() {
    if !support::browser_available("W3C differential test") {
        return;
    }
    let cases = cases();
    let tmp = support::temp_dir("w3c");
    let cases_path = tmp.join("cases.json");
    let results_path = tmp.join("results.json");
    std::fs::write(&cases_path, serde_json::to_string(&cases).expect("json")).expect("write");
    let _ = std::fs::remove_file(&results_path);
    let log = tmp.join("node.log");
    let run = support::run_in_loopback_namespace(
        &tmp,
        "node \"$W3C\" 2>\"$LOG\"",
        &[
            ("W3C", support::browser_dir().join("w3c.mjs").into()),
            ("W3C_CASES", cases_path.into()),
            ("W3C_RESULTS", results_path.clone().into()),
            ("LOG", log.clone().into()),
            ("CHROMIUM", support::chromium().into()),
        ],
        LIMIT,
    );
    support::report("W3C differential run", &run, LIMIT, &log);
    let results: Vec<Vec<Step>> =
        serde_json::from_str(&std::fs::read_to_string(&results_path).expect("results"))
            .expect("results json");
    assert_eq!(results.len(), cases.len());

    let now = Instant::now();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (case, steps) in cases.iter().zip(&results) {
        let mut n = Negotiation::new(Config::new(case.polite));
        // A description for operations the browser refused before making one (an answer
        // without a remote offer): the state machine must refuse it for its state too.
        let any_sdp = steps
            .iter()
            .find_map(|s| s.sdp.clone())
            .unwrap_or_else(|| "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n".to_owned());
        for (i, (op, js)) in case.ops.iter().zip(steps).enumerate() {
            assert!(
                !js.result.starts_with("error"),
                "the browser failed unexpectedly at {op} (step {i}) of {:?}: {}",
                case.ops,
                js.result
            );
            let ours = apply(
                &mut n,
                now,
                op,
                js.sdp.clone().unwrap_or_else(|| any_sdp.clone()),
            );
            compared += 1;
            let state = n.signaling_state().as_str();
            if ours != js.result || state != js.state || n.making_offer() != js.making_offer {
                mismatches.push(format!(
                    "{} {:?} step {i} ({op}): chromium {} -> {} (makingOffer {}), ours {ours} -> {state} (making_offer {})",
                    if case.polite { "polite" } else { "impolite" },
                    case.ops,
                    js.result,
                    js.state,
                    js.making_offer,
                    n.making_offer()
                ));
                break;
            }
        }
    }
    support::show(&format!(
        "W3C differential: {} cases, {compared} operations compared with Chromium, {} mismatches\n",
        cases.len(),
        mismatches.len()
    ));
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from Chromium:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
