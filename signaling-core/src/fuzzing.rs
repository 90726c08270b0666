//! Entry points for the fuzz targets in `fuzz/` (compiled with `cfg(fuzzing)`), also replayed
//! over the checked-in corpora by this crate's unit tests on every test run.
//!
//! Each function must never panic, whatever the input.
use std::time::{Duration, Instant};

use crate::candidate::Candidate;
use crate::negotiation::{Config, Negotiation, Output};
use crate::sdp::SdpFacts;
use crate::wire::{self, Description, Dialect, IceCandidate, Message, RawFrame, SdpKind};

/// Decodes a frame through the typed and the forwarding path; re-encodes what decodes.
pub fn wire(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = wire::decode(s) {
        for d in [Dialect::GO2RTC, Dialect::GO2RTC_V2, Dialect::BROWSER] {
            let again = wire::encode(&m, d);
            // Whatever we write, we read back.
            assert!(
                wire::decode_with_limit(&again, usize::MAX).is_ok(),
                "{again}"
            );
        }
    }
    crate::json_scan::check_against_serde(s);
    if let Ok(raw) = RawFrame::parse(s, wire::DEFAULT_MAX_FRAME_LEN) {
        let _ = raw.decode();
        let _ = raw.write_with_from("peer");
    }
}

/// Parses a candidate; a parsed candidate must write back exactly (minus an `a=` prefix).
pub fn candidate(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Candidate::parse(s) {
        let text = c.to_string();
        assert_eq!(text, s.strip_prefix("a=").unwrap_or(s));
        assert_eq!(Candidate::parse(&text).as_ref(), Ok(&c));
    }
}

/// The allocation-free candidate check a negotiation runs on every candidate frame: whether it
/// accepts `s`, and whether it found the text plain JSON. Not a fuzz target: the `check` group
/// of the `candidate` benchmark times it through here (built with `--cfg fuzzing`), since the
/// check itself is not public.
pub fn check_candidate(s: &str) -> (bool, bool) {
    match crate::candidate::check_for_json(s) {
        Ok(c) => (true, c.plain),
        Err(_) => (false, false),
    }
}

/// Extracts SDP facts.
pub fn sdp(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = SdpFacts::parse(s) {
        let _ = f.default_mid(None);
        let _ = f.ice_credentials();
        for i in 0..f.sections().len() {
            let mid = f.mid_at(i);
            if let Some(m) = mid {
                assert_eq!(f.index_of_mid(m), Some(i));
            }
        }
    }
}

/// Runs a sequence of commands and peer frames, read from the bytes, through a negotiation.
pub fn negotiation(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let Some(flags) = next() else {
        return;
    };
    let dialect = match flags % 3 {
        0 => Dialect::GO2RTC,
        1 => Dialect::GO2RTC_V2,
        _ => Dialect::BROWSER,
    };
    let config = Config::new(flags & 4 != 0)
        .with_dialect(dialect)
        .with_max_pending_candidates(8)
        .with_max_candidates(16)
        .with_negotiation_timeout(Duration::from_secs(10));
    let mut n = Negotiation::new(config);
    // The one clock read of the fuzz harness: a base instant; everything after is derived.
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut version = 1u64;
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        version += 1;
        let ufrag = UFRAGS[usize::from(arg % 4)];
        match op % 12 {
            0 => {
                let _ = n.start_offer(now);
            }
            1..=3 => {
                let kind =
                    [SdpKind::Offer, SdpKind::Answer, SdpKind::Pranswer][usize::from(op % 12 - 1)];
                let _ = n.set_local_description(now, kind, sdp_text(ufrag, version, arg % 3 + 1));
            }
            4 => {
                let _ = n.rollback(now);
            }
            5 => {
                let _ = n.add_local_candidate(now, candidate_init(arg, ufrag));
            }
            6 => {
                let _ = n.end_of_local_candidates(now);
            }
            7 => {
                // Raw bytes from the input as a frame.
                let len = usize::from(arg);
                let mut raw = Vec::with_capacity(len);
                for _ in 0..len {
                    match next() {
                        Some(b) => raw.push(b),
                        None => break,
                    }
                }
                n.handle_frame(now, &String::from_utf8_lossy(&raw));
            }
            8 => {
                let kind =
                    [SdpKind::Offer, SdpKind::Answer, SdpKind::Pranswer][usize::from(arg % 3)];
                let d = Description::new(kind, sdp_text(ufrag, version, arg % 3 + 1));
                n.handle_frame(now, &wire::encode(&Message::Description(d), dialect));
            }
            9 => {
                let m = if arg & 0x80 != 0 {
                    Message::EndOfCandidates(Default::default())
                } else {
                    Message::Candidate(candidate_init(arg, ufrag))
                };
                n.handle_frame(now, &wire::encode(&m, Dialect::BROWSER));
            }
            10 => {
                now += Duration::from_secs(u64::from(arg));
                n.handle_timeout(now);
            }
            _ => {
                if arg == 0 {
                    n.close();
                }
            }
        }
        // Draining always ends, with a bounded number of outputs.
        let mut drained = 0;
        while !matches!(n.poll_output(), Output::Timeout(_)) {
            drained += 1;
            assert!(drained < 10_000, "poll_output does not settle");
        }
    }
}

const UFRAGS: [&str; 4] = ["AAAA", "BBBB", "CCCC", "DDDD"];

fn sdp_text(ufrag: &str, version: u64, sections: u8) -> String {
    let mut s = format!(
        "v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE{}\r\n",
        (0..sections).map(|i| format!(" {i}")).collect::<String>()
    );
    for i in 0..sections {
        s.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{ufrag}{ufrag}{ufrag}{ufrag}{ufrag}{ufrag}\r\na=mid:{i}\r\n"
        ));
    }
    s
}

fn candidate_init(arg: u8, ufrag: &str) -> IceCandidate {
    let mut c = IceCandidate::new(format!(
        "candidate:{arg} 1 udp {} 192.0.2.{arg} {} typ host generation 0 ufrag {ufrag}",
        2_000_000_000u32 + u32::from(arg),
        40_000 + u16::from(arg)
    ));
    if arg & 1 != 0 {
        c.sdp_mid = Some((arg % 4).to_string().into());
    }
    if arg & 2 != 0 {
        c.sdp_m_line_index = Some(u16::from(arg % 5));
    }
    c
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Replays every checked-in corpus file (and every pinned crash) through its target.
    #[test]
    fn replay_fuzz_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 4] = [
            ("wire", super::wire),
            ("candidate", super::candidate),
            ("sdp", super::sdp),
            ("negotiation", super::negotiation),
        ];
        let mut total = 0;
        for (name, target) in targets {
            for dir in [
                root.join("corpus").join(name),
                root.join("regressions").join(name),
            ] {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("corpus entry").path();
                    let data = std::fs::read(&path).expect("corpus file");
                    target(&data);
                    total += 1;
                }
            }
        }
        assert!(
            total >= 40,
            "only {total} corpus files found under {}",
            root.display()
        );
    }
}
