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

/// The allocation-free check alone (what a negotiation runs on each candidate frame), on the
/// shapes browsers send. It is not public: this group exists only in a build with
/// `RUSTFLAGS="--cfg fuzzing"`, which exposes it through `signaling_core::fuzzing`.
#[cfg(fuzzing)]
fn bench_check(c: &mut Criterion) {
    use signaling_core::fuzzing::check_candidate;
    const NEGOTIATION_HOST: &str = "candidate:13 1 udp 2122260210 192.0.2.14 50013 typ host generation 0 ufrag Kx3v network-id 1";
    const IPV6: &str = "candidate:3171877379 1 udp 2122262783 2001:db8:85a3::8a2e:370:7334 61020 typ host generation 0 ufrag EsAw network-id 2";
    const TCP: &str = "candidate:1936595596 1 tcp 1518280447 192.0.2.13 9 typ host tcptype active generation 0 ufrag EsAw network-id 1";
    for (name, s) in [
        ("check/host", NEGOTIATION_HOST),
        ("check/srflx", CHROME_SRFLX),
        ("check/mdns", CHROME_MDNS),
        ("check/ipv6", IPV6),
        ("check/tcp", TCP),
    ] {
        assert_eq!(check_candidate(s), (true, true), "{s}");
        c.bench_function(name, |b| b.iter(|| check_candidate(black_box(s))));
    }
}

#[cfg(not(fuzzing))]
fn bench_check(_: &mut Criterion) {}

criterion_group!(benches, bench, bench_check);
criterion_main!(benches);
