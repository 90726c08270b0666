//! Parse and display speed of ICE candidates.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use signaling_core::candidate::Candidate;

const CHROME_SRFLX: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10";
/// 100 bytes: a host candidate as the negotiation benchmark's peers send it.
const HOST_100B: &str = "candidate:1234567890 1 udp 2122260223 192.0.2.13 50013 typ host generation 0 ufrag Kx3v network-id 1";
const CHROME_MDNS: &str = "candidate:2194195233 1 udp 2122260223 4c1b4e9f-3d1e-4f57-9d3c-2f5d0a6f1c2b.local 59046 typ host generation 0 ufrag 6fX4 network-cost 999";

fn bench(c: &mut Criterion) {
    assert_eq!(HOST_100B.len(), 100);
    c.bench_function("candidate/parse_chrome_srflx", |b| {
        b.iter(|| Candidate::parse(black_box(CHROME_SRFLX)))
    });
    c.bench_function("candidate/parse_host_100B", |b| {
        b.iter(|| Candidate::parse(black_box(HOST_100B)))
    });
    c.bench_function("candidate/parse_chrome_mdns", |b| {
        b.iter(|| Candidate::parse(black_box(CHROME_MDNS)))
    });
    // Floor: the one allocation and copy that parsing makes.
    c.bench_function("candidate/baseline_to_owned", |b| {
        b.iter(|| black_box(CHROME_SRFLX).to_owned())
    });
    let parsed = Candidate::parse(CHROME_SRFLX).ok();
    c.bench_function("candidate/ufrag_lookup", |b| {
        b.iter(|| black_box(parsed.as_ref()).and_then(|c| c.ufrag().map(str::len)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
