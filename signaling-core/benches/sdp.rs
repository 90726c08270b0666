//! Parse time of SDP facts for real-world descriptions.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use signaling_core::sdp::SdpFacts;
use std::hint::black_box;

const FIXTURES: &[(&str, &str)] = &[
    (
        "chrome-offer",
        include_str!("../tests/data/chrome-offer.sdp"),
    ),
    (
        "chrome-answer",
        include_str!("../tests/data/chrome-answer.sdp"),
    ),
    (
        "firefox-offer",
        include_str!("../tests/data/firefox-offer.sdp"),
    ),
    (
        "datachannel-offer",
        include_str!("../tests/data/datachannel-offer.sdp"),
    ),
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("sdp_parse");
    for (name, sdp) in FIXTURES {
        group.throughput(Throughput::Bytes(sdp.len() as u64));
        group.bench_function(*name, |b| b.iter(|| SdpFacts::parse(black_box(sdp))));
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
