//! Codec and negotiation speed. Figures are read as ratios to baselines measured in the same run:
//!
//! - `decode/typed` and `decode/forwarding` against `decode/serde_json_value` (parsing the same
//!   2.7 KB Chrome offer frame into a `serde_json::Value`);
//! - `negotiation/full` (offer, answer, 20 candidates and end-of-candidates each way, every frame
//!   encoded and decoded) gives negotiations per second as `1 s / time`; `negotiation/typed` is
//!   the same negotiation with typed messages and no JSON (the state machines' own cost),
//!   `negotiation/one_side` is what one end of `full` pays (the answerer: the offer, 20
//!   candidates and end-of-candidates received as JSON frames; its answer, 20 candidates and
//!   end-of-candidates set and sent as JSON frames), and
//!   `codec/sdp_frames` encodes and decodes its offer and answer frames once (the codec's share
//!   for the two descriptions), `codec/candidate_frame` one of its 42 candidate frames;
//! - `codec/negotiation_frames` encodes and decodes, with `wire::encode` (`Dialect::GO2RTC`) and
//!   `wire::decode`, the 44 frames one `negotiation/full` run sends (its offer and answer, 2 x 20
//!   candidates, 2 end-of-candidates; recorded once, outside the measurement, as typed
//!   messages): the JSON of the frames alone, without the state machines and without any SDP or
//!   candidate parsing, so a lower bound on `negotiation/full` for this codec. (A negotiation
//!   reads and writes the usual candidate frames without the general codec, using what its
//!   candidate check found: its own JSON share is somewhat below this figure.)
//!   `codec/negotiation_frames_serde` does the same with plain `#[derive(Serialize,
//!   Deserialize)]` structs through `serde_json` (a `{"type": String, "value": String}`
//!   envelope, no validation, no typed messages): the floor a generic serde codec would set;
//! - `relay/forward_300B`: the sans-IO relay's share of forwarding one 300-byte frame in a room
//!   of two (envelope read, limits, routing; the frame is shared, not copied);
//!   `relay/broadcast_300B_room8` a frame stamped with `from` and sent to the seven others of
//!   a room of eight.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use signaling_core::negotiation::{Config, Event, Negotiation, Output, TypedOutput};
use signaling_core::wire::{self, Description, Dialect, IceCandidate, Message, RawFrame, SdpKind};

const OFFER: &str = include_str!("../tests/data/chrome-offer.sdp");
const ANSWER: &str = include_str!("../tests/data/chrome-answer.sdp");

fn offer_frame() -> String {
    wire::encode(
        &Message::Description(Description::offer(OFFER)),
        Dialect::GO2RTC,
    )
}

fn decode(c: &mut Criterion) {
    let frame = offer_frame();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&frame)).map(drop))
    });
    g.bench_function("typed", |b| {
        b.iter(|| wire::decode(black_box(&frame)).map(drop))
    });
    g.bench_function("forwarding", |b| {
        b.iter(|| RawFrame::parse(black_box(&frame), wire::DEFAULT_MAX_FRAME_LEN).map(drop))
    });
    g.finish();
    let msg = Message::Description(Description::offer(OFFER));
    c.bench_function("encode/offer", |b| {
        b.iter(|| wire::encode(black_box(&msg), Dialect::GO2RTC))
    });
}

fn candidates(ufrag: &str, base: u32) -> Vec<String> {
    (0..20)
        .map(|i| {
            format!(
                "candidate:{} 1 udp {} 192.0.2.{} {} typ host generation 0 ufrag {ufrag} network-id 1",
                base + i,
                2_122_260_223 - i,
                i + 1,
                50_000 + base + i
            )
        })
        .collect()
}

/// How frames travel between the two sessions of a benchmark negotiation.
trait Link {
    type Frame;
    /// Takes the next output: frames go to `out` (moved, not copied), events are counted.
    /// Returns false at the timeout.
    fn take(
        n: &mut Negotiation,
        out: &mut Vec<Self::Frame>,
        applied: &mut usize,
        answer: &mut bool,
    ) -> bool;
    fn deliver(n: &mut Negotiation, now: Instant, frame: Self::Frame);
}

/// JSON text, encoded by `poll_output` and decoded by `handle_frame`.
struct Json;

impl Link for Json {
    type Frame = String;
    fn take(
        n: &mut Negotiation,
        out: &mut Vec<String>,
        applied: &mut usize,
        answer: &mut bool,
    ) -> bool {
        match n.poll_output() {
            Output::Transmit(f) => out.push(f),
            Output::Event(e) => count(&e, applied, answer),
            Output::Timeout(_) => return false,
        }
        true
    }
    fn deliver(n: &mut Negotiation, now: Instant, frame: String) {
        Json::deliver_ref(n, now, &frame);
    }
}

impl Json {
    fn deliver_ref(n: &mut Negotiation, now: Instant, frame: &str) {
        n.handle_frame(now, frame);
    }
}

/// Typed messages (`poll_typed_output` to `handle_message`), no JSON. A typed message holds what
/// its frame carries, so the state machines do exactly the work they do behind `Json`.
struct Typed;

impl Link for Typed {
    type Frame = Message;
    fn take(
        n: &mut Negotiation,
        out: &mut Vec<Message>,
        applied: &mut usize,
        answer: &mut bool,
    ) -> bool {
        match n.poll_typed_output() {
            TypedOutput::Transmit(m) => out.push(m),
            TypedOutput::Event(e) => count(&e, applied, answer),
            TypedOutput::Timeout(_) => return false,
        }
        true
    }
    fn deliver(n: &mut Negotiation, now: Instant, m: Message) {
        n.handle_message(now, m);
    }
}

/// `Typed`, checking once (outside the measurements) that each message is what decoding the
/// encoded frame gives, and recording each one in `RECORDED`.
struct Checked;

thread_local! {
    /// The messages of the `negotiate::<Checked>` runs on this thread, in order (both
    /// directions).
    static RECORDED: RefCell<Vec<Message>> = const { RefCell::new(Vec::new()) };
}

impl Link for Checked {
    type Frame = Message;
    fn take(
        n: &mut Negotiation,
        out: &mut Vec<Message>,
        applied: &mut usize,
        answer: &mut bool,
    ) -> bool {
        let before = out.len();
        let more = Typed::take(n, out, applied, answer);
        if let Some(m) = out.get(before) {
            let frame = wire::encode(m, Dialect::GO2RTC);
            assert_eq!(
                wire::decode(&frame).as_ref(),
                Ok(m),
                "typed path = wire path"
            );
            RECORDED.with(|r| r.borrow_mut().push(m.clone()));
        }
        more
    }
    fn deliver(n: &mut Negotiation, now: Instant, m: Message) {
        Typed::deliver(n, now, m);
    }
}

fn count(e: &Event, applied: &mut usize, answer: &mut bool) {
    match e {
        Event::AddRemoteCandidate(_) => *applied += 1,
        Event::ApplyRemoteDescription(d) if d.kind == SdpKind::Offer => *answer = true,
        _ => {}
    }
}

fn drain<L: Link>(n: &mut Negotiation, out: &mut Vec<L::Frame>, applied: &mut usize) {
    let mut unused = false;
    while L::take(n, out, applied, &mut unused) {}
}

/// One full negotiation between two sessions, frames passed over `L`.
/// The offerer: a session that has set its offer, its candidates and their end.
fn offerer(now: Instant, cands: &[String]) -> Negotiation {
    let mut a = Negotiation::new(Config::new(false));
    a.start_offer(now).expect("stable");
    a.set_local_description(now, SdpKind::Offer, OFFER.to_owned())
        .expect("offer");
    local_candidates(&mut a, now, cands);
    a
}

/// The answerer's part once the offer has been applied: its answer, candidates and their end.
fn answer(b: &mut Negotiation, now: Instant, cands: &[String]) {
    b.set_local_description(now, SdpKind::Answer, ANSWER.to_owned())
        .expect("answer");
    local_candidates(b, now, cands);
}

fn local_candidates(n: &mut Negotiation, now: Instant, cands: &[String]) {
    for c in cands {
        n.add_local_candidate(now, IceCandidate::new(c.as_str()))
            .expect("candidate");
    }
    n.end_of_local_candidates(now).expect("end");
}

fn negotiate<L: Link>(now: Instant, a_cands: &[String], b_cands: &[String]) -> usize {
    let mut a = offerer(now, a_cands);
    let mut b = Negotiation::new(Config::new(true));
    let mut applied = 0;
    let mut to_b = Vec::new();
    let mut to_a = Vec::new();
    drain::<L>(&mut a, &mut to_b, &mut applied);
    for f in to_b.drain(..) {
        L::deliver(&mut b, now, f);
    }
    let mut answer_needed = false;
    while L::take(&mut b, &mut to_a, &mut applied, &mut answer_needed) {}
    if answer_needed {
        answer(&mut b, now, b_cands);
    }
    drain::<L>(&mut b, &mut to_a, &mut applied);
    for f in to_a.drain(..) {
        L::deliver(&mut a, now, f);
    }
    drain::<L>(&mut a, &mut to_b, &mut applied);
    applied
}

/// The frames the offerer of `negotiate` sends: its offer, candidates and end-of-candidates.
fn offerer_frames(now: Instant, a_cands: &[String]) -> Vec<String> {
    let mut a = offerer(now, a_cands);
    let mut frames = Vec::new();
    let mut applied = 0;
    drain::<Json>(&mut a, &mut frames, &mut applied);
    frames
}

/// The answerer's side of `negotiate::<Json>`: the offerer's frames (made beforehand) arrive,
/// the answer and its candidates are set and their frames taken (and dropped, as sent).
fn answer_side(now: Instant, from_a: &[String], b_cands: &[String]) -> usize {
    let (applied, to_a) = answerer(now, from_a, b_cands);
    applied + to_a.len()
}

/// `answer_side`'s work: how many candidates it applied, and the frames it sent.
fn answerer(now: Instant, from_a: &[String], b_cands: &[String]) -> (usize, Vec<String>) {
    let mut b = Negotiation::new(Config::new(true));
    let mut applied = 0;
    for f in from_a {
        Json::deliver_ref(&mut b, now, f);
    }
    let mut to_a = Vec::new();
    let mut answer_needed = false;
    while Json::take(&mut b, &mut to_a, &mut applied, &mut answer_needed) {}
    if answer_needed {
        answer(&mut b, now, b_cands);
    }
    drain::<Json>(&mut b, &mut to_a, &mut applied);
    (applied, to_a)
}

fn negotiation(c: &mut Criterion) {
    let a_cands = candidates("Kx3v", 0);
    let b_cands = candidates("fT9q", 100);
    // The benchmark's one clock read: a base instant for the sessions.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    for applied in [
        negotiate::<Json>(now, &a_cands, &b_cands),
        negotiate::<Checked>(now, &a_cands, &b_cands),
    ] {
        assert_eq!(applied, 40, "every candidate applied");
    }
    let from_a = offerer_frames(now, &a_cands);
    assert_eq!(from_a.len(), 22, "offer, 20 candidates, end");
    // 20 candidates applied, answer + 20 candidates + end sent.
    assert_eq!(answer_side(now, &from_a, &b_cands), 20 + 22);
    let mut g = c.benchmark_group("negotiation");
    g.throughput(Throughput::Elements(1));
    g.bench_function("full", |b| {
        b.iter(|| negotiate::<Json>(now, &a_cands, &b_cands))
    });
    g.bench_function("typed", |b| {
        b.iter(|| negotiate::<Typed>(now, &a_cands, &b_cands))
    });
    g.bench_function("one_side", |b| {
        b.iter(|| answer_side(now, black_box(&from_a), &b_cands))
    });
    // The floor of `one_side`: plain serde structs decoding the 22 frames it receives and
    // encoding the 22 it sends, with no checks at all.
    let (_, to_a) = answerer(now, &from_a, &b_cands);
    let sent: Vec<PlainEnvelope> = to_a
        .iter()
        .map(|f| serde_json::from_str(f).expect("a string value"))
        .collect();
    g.bench_function("one_side_serde_floor", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in black_box(&from_a) {
                n += serde_json::from_str::<PlainEnvelope>(f).map_or(0, |e| e.value.len());
            }
            for e in black_box(&sent) {
                n += serde_json::to_string(e).map_or(0, |s| s.len());
            }
            n
        })
    });
    g.finish();
    // The codec's share of `negotiation/full` for the two descriptions: encoding and decoding
    // the offer and the answer frame once each.
    let offer = Message::Description(Description::offer(OFFER));
    let answer = Message::Description(Description::answer(ANSWER));
    c.bench_function("codec/sdp_frames", |b| {
        b.iter(|| {
            let mut n = 0;
            for m in [&offer, &answer] {
                let frame = wire::encode(black_box(m), Dialect::GO2RTC);
                n += wire::decode(black_box(&frame)).map_or(0, |_| frame.len());
            }
            n
        })
    });
}

/// The frames of one `negotiation/full` run as typed messages.
fn negotiation_messages(now: Instant, a_cands: &[String], b_cands: &[String]) -> Vec<Message> {
    RECORDED.with(|r| r.borrow_mut().clear());
    assert_eq!(negotiate::<Checked>(now, a_cands, b_cands), 40);
    RECORDED.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// The envelope as plain serde structs: no validation, no typed values.
#[derive(serde::Serialize, serde::Deserialize)]
struct PlainEnvelope {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

/// The JSON floor of `negotiation/full`: its frames encoded and decoded by the crate's codec, and
/// by plain serde structs.
fn negotiation_frames(c: &mut Criterion) {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let messages = negotiation_messages(now, &candidates("Kx3v", 0), &candidates("fT9q", 100));
    assert_eq!(
        messages.len(),
        44,
        "offer, answer, 2 x 20 candidates, 2 ends"
    );
    let plain: Vec<PlainEnvelope> = messages
        .iter()
        .map(|m| {
            let frame = wire::encode(m, Dialect::GO2RTC);
            let e: PlainEnvelope = serde_json::from_str(&frame).expect("a string value");
            assert_eq!(serde_json::to_string(&e).expect("encoded"), frame);
            e
        })
        .collect();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("negotiation_frames", |b| {
        b.iter(|| {
            let mut n = 0;
            for m in black_box(&messages) {
                let frame = wire::encode(m, Dialect::GO2RTC);
                n += wire::decode(black_box(&frame)).map_or(0, |_| frame.len());
            }
            n
        })
    });
    g.bench_function("negotiation_frames_serde", |b| {
        b.iter(|| {
            let mut n = 0;
            for e in black_box(&plain) {
                let frame = serde_json::to_string(e).unwrap_or_default();
                n += serde_json::from_str::<PlainEnvelope>(black_box(&frame))
                    .map_or(0, |_| frame.len());
            }
            n
        })
    });
    g.finish();
}

/// The codec's share of `negotiation/full` for one of its 42 candidate frames: encoding and
/// decoding one 100-byte candidate frame.
fn candidate_frame(c: &mut Criterion) {
    let text = &candidates("Kx3v", 0)[13];
    let msg = Message::Candidate(IceCandidate::new(text.as_str()));
    c.bench_function("codec/candidate_frame", |b| {
        b.iter(|| {
            let frame = wire::encode(black_box(&msg), Dialect::GO2RTC);
            wire::decode(black_box(&frame)).map_or(0, |_| frame.len())
        })
    });
}

/// A relay with one room of `peers` peers (connections 1 to `peers`), every output drained, and
/// the 300-byte frame the relay benchmarks send.
fn relay_room(
    peers: u64,
) -> (
    signaling_core::relay::Relay,
    Instant,
    signaling_core::transport::Frame,
) {
    use signaling_core::relay::{ConnId, JoinRequest, Relay, RelayConfig, RelayOutput};
    let mut config = RelayConfig::default();
    config.rate_per_sec = u32::MAX;
    config.rate_burst = u32::MAX;
    config.room_capacity = config.room_capacity.max(peers as usize);
    let mut relay = Relay::new(config);
    // The benchmark's one clock read: a base instant for the relay.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    for conn in 1..=peers {
        relay
            .join(
                now,
                ConnId(conn),
                JoinRequest::new("room", format!("{conn:032}")),
            )
            .expect("joined");
    }
    while !matches!(relay.poll_output(), RelayOutput::Timeout(_)) {}
    // As a transport hands it over: a shared frame, passed on without a copy.
    let frame = format!(r#"{{"type":"load/data","value":"{}"}}"#, "x".repeat(269));
    assert_eq!(frame.len(), 300);
    (relay, now, frame.into())
}

fn relay(c: &mut Criterion) {
    use signaling_core::relay::{ConnId, RelayOutput};
    // A room of two forwards the frame as it is; a room of eight stamps it with `from` once
    // and hands it to the seven others.
    for (name, peers) in [("relay/forward_300B", 2), ("relay/broadcast_300B_room8", 8)] {
        let (mut relay, now, frame) = relay_room(peers);
        let mut forward = || {
            relay.handle_frame(now, ConnId(1), black_box(frame.clone()));
            let mut sent = 0;
            while let RelayOutput::Transmit { .. } = relay.poll_output() {
                sent += 1;
            }
            sent
        };
        assert_eq!(forward(), peers - 1, "one frame for each of the others");
        c.bench_function(name, |b| b.iter(&mut forward));
    }
}

criterion_group!(
    benches,
    decode,
    negotiation,
    candidate_frame,
    negotiation_frames,
    relay
);
criterion_main!(benches);
