//! A quick release-mode timing of candidate parsing; run with
//! `cargo test --release -p signaling-core --test candidate_timing -- --ignored --nocapture`.
#![allow(missing_docs)]
// Measuring time is the point of this test; the sans-IO rule is for the library.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::Instant;

use signaling_core::candidate::Candidate;

const CHROME_SRFLX: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 54400 typ srflx raddr 192.168.1.2 rport 54400 generation 0 ufrag EsAw network-id 1 network-cost 10";

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn parse_chrome_srflx_timing() {
    const N: u32 = 1_000_000;
    let mut best = f64::MAX;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..N {
            let c = Candidate::parse(black_box(CHROME_SRFLX));
            black_box(&c);
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(N));
    }
    eprintln!("parse chrome srflx: best of 7 rounds: {best:.1} ns/parse");
}
