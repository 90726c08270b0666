//! Two Rust peers on two independent WebRTC stacks, webrtc-rs 0.21 and str0m 0.25, call each
//! other through the `relay` binary, each driven by the library's session driver over a
//! WebSocket (`examples::peers`): glare resolved by perfect negotiation with the roles from
//! `relay/welcome`, 1,000 messages each way, an ICE restart with a late candidate of the old
//! generation, and a resume after the WebSocket is reset mid-call, followed by a
//! renegotiation. Each step checks what the stacks themselves report (messages that really
//! arrived, channels the stacks opened, media sections they negotiated) and what the library
//! reported (collisions, restart, dropped candidates). It runs twice, each stack joining first
//! once, so each stack takes each role (impolite/polite, restarting, resuming).
//!
//! Both stacks bind their ICE sockets on 127.0.0.1 only; the run also happens inside a fresh
//! network namespace that has nothing but loopback (`unshare --net`) when one can be made, and
//! in this process otherwise.
//!
//! The browser scenario (`examples/browser/rust_peer.mjs`): the demo page in Chromium and a
//! str0m peer (`rust_peers join`) in one room, offers crossing at the start, then the page adds
//! a camera track mid-call and the Rust peer answers; needs what `tests/browser.rs` needs.
//!
//! ```text
//! cargo test -p examples --test rust_peers -- --nocapture
//! ```
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use examples::peers::call::{self, CallOptions, StackKind};
use examples::peers::Bounds;
use examples::relay_server::{FileConfig, Server};

mod support;

/// The whole namespaced run (relay, both calls) may take this long.
const LIMIT: Duration = Duration::from_secs(240);

const CALLS: &str = r#"
"$RELAY" --listen 127.0.0.1:8080 2>"$RELAY_LOG" &
relay=$!
"$RUST_PEERS" call --relay 127.0.0.1:8080 --first webrtc-rs && \
  "$RUST_PEERS" call --relay 127.0.0.1:8080 --first str0m
rc=$?
kill "$relay" 2>/dev/null
wait "$relay" 2>/dev/null
exit $rc
"#;

#[test]
fn webrtc_rs_and_str0m_call_through_the_relay() {
    let tmp = support::temp_dir("rust-peers");
    let relay_log = tmp.join("relay.log");
    if !support::namespace_available("rust peers in a loopback-only namespace") {
        support::show("running the calls in this process instead (ICE on 127.0.0.1 only)\n");
        in_process();
        return;
    }
    let run = support::run_in_loopback_namespace(
        &tmp,
        CALLS,
        &[
            ("RELAY", env!("CARGO_BIN_EXE_relay").into()),
            ("RUST_PEERS", env!("CARGO_BIN_EXE_rust_peers").into()),
            ("RELAY_LOG", relay_log.clone().into()),
            ("RUST_LOG", "warn".into()),
        ],
        LIMIT,
    );
    support::report("rust peers", &run, LIMIT, &relay_log);
    // What the binary printed is what it checked: each step of both calls passed.
    for first in ["webrtc-rs", "str0m"] {
        assert!(
            run.stdout.contains(&format!("run 1: {first} (first)")),
            "the call with {first} first did not run:\n{}",
            run.stdout
        );
    }
    for step in [
        "1. glare",
        "2. 1000 messages",
        "3. ICE restart",
        "4. resume",
    ] {
        assert_eq!(
            run.stdout.matches(step).count(),
            2,
            "step {step:?} did not pass in both calls:\n{}",
            run.stdout
        );
    }
    assert_eq!(run.stdout.matches("passed in").count(), 2, "{}", run.stdout);
}

/// The browser scenario: the whole run (relay, Chromium, the Rust peer) may take this long;
/// `rust_peer.mjs` bounds its scenario to 30 s itself.
const BROWSER_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn a_demo_tab_and_a_str0m_peer_through_the_relay() {
    if !support::browser_available("rust peer and browser test") {
        return;
    }
    let run = support::BrowserRun {
        what: "rust peer and browser run",
        server: env!("CARGO_BIN_EXE_relay"),
        listen: "127.0.0.1:8080",
        script: "rust_peer.mjs",
        env: vec![
            ("RUST_PEERS", env!("CARGO_BIN_EXE_rust_peers").into()),
            ("RUST_LOG", "warn".into()),
        ],
        limit: BROWSER_LIMIT,
    }
    .run("rust-peer-browser");
    assert!(run.stdout.contains("PASS rust peer"), "{}", run.stdout);
}

/// The same calls, in this process, with the relay in-process too.
fn in_process() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = listener.local_addr().unwrap();
        let server = std::sync::Arc::new(Server::new(FileConfig::default()).unwrap());
        tokio::spawn(server.run(listener));
        for first in [StackKind::WebrtcRs, StackKind::Str0m] {
            let options = CallOptions {
                relay,
                room: format!("in-process-{}", first.name()),
                messages: 1000,
                first,
                step_limit: Duration::from_secs(20),
                bounds: Bounds::default(),
            };
            let report = call::run(&options, |line| support::show(&format!("  {line}\n")))
                .await
                .unwrap_or_else(|e| panic!("the call with {} first: {e}", first.name()));
            assert!(report.collisions.0 >= 1 && report.collisions.1 >= 1);
            assert!(report.stale_dropped >= 1);
        }
    });
}
