//! A shortened soak of the relay binary (`relay_soak`, see its docs): 1,000 connections in 500
//! rooms for 35 seconds, with every kind of event mixed in, on 127.0.0.1. Every frame the relay
//! accepted must arrive exactly once, in order, in its own room; every garbage frame must get
//! its `error` frame or close code.
use std::collections::HashMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The summary's `name=value` fields.
fn fields(summary: &str) -> HashMap<String, String> {
    summary
        .split_whitespace()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_short_soak_loses_nothing_with_every_event_mixed_in() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay_soak"))
        .args(["run", "--connections", "1000", "--duration", "35"])
        .args(["--rate", "2", "--event-every", "10", "--resume-grace", "5"])
        .args(["--drain-timeout", "60", "--seed", "7"])
        .args(["--relay-bin", env!("CARGO_BIN_EXE_relay")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start relay_soak");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    // Bounded: the soak takes about a minute; it is killed (and the test fails) after four.
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let summary = reader.join().expect("reader");
    eprintln!("{summary}");
    let status = status.expect("relay_soak finished within four minutes");
    let f = fields(&summary);
    let count = |name: &str| -> u64 {
        f.get(name)
            .unwrap_or_else(|| panic!("no {name} in the summary"))
            .parse()
            .expect("a number")
    };
    assert_eq!(f.get("result").map(String::as_str), Some("pass"));
    assert!(status.success(), "{status}");
    assert_eq!(count("joined_in_ramp"), 1000);
    for check in [
        "losses",
        "duplicates",
        "out_of_order",
        "cross_room",
        "late_frames",
        "spoofs_forwarded",
        "missing_errors",
        "unexpected_closes",
        "slow_consumer_closes",
        "unaccounted",
    ] {
        assert_eq!(count(check), 0, "{check}");
    }
    assert!(count("frames_received") > 10_000);
    // Every ingredient happened.
    for event in [
        "resumes",
        "leaves",
        "close_leaves",
        "slow_reads",
        "garbage_json",
        "garbage_spoof",
        "garbage_binary",
        "garbage_oversized",
    ] {
        assert!(count(event) > 0, "no {event}");
    }
    // A binary frame is closed with 1003, an oversized one with 1009, a leave with 1000.
    for code in ["1000", "1003", "1009"] {
        assert!(f.contains_key(code), "no close with {code}");
    }
}
