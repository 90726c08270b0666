//! Real-browser end-to-end test of the `relay` binary: headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by `playwright-core`) runs the demo page and the seed client
//! against the relay, through `examples/browser/e2e.mjs`.
//!
//! WebRTC gathers the address of every interface, so the relay and the browser run inside a
//! fresh network namespace that has nothing but loopback (`unshare --net`): no traffic can leave
//! the machine.
//!
//! Needs Chromium, node, `examples/browser/node_modules` and `unshare`/`ip` with the right to
//! create a network namespace; `scripts/install-browser-deps` installs them. When one is
//! missing the test prints "skipped: ..." and passes, unless `SIGNALING_REQUIRE_BROWSER=1`, when
//! it fails.
//!
//! ```text
//! bash scripts/install-browser-deps
//! SIGNALING_REQUIRE_BROWSER=1 cargo test -p examples --test browser -- --nocapture
//! ```
use std::time::Duration;

mod support;

/// The whole run (relay, browser, both scenarios) may take this long; `e2e.mjs` bounds each
/// scenario to 30 s itself.
const LIMIT: Duration = Duration::from_secs(180);

const SCRIPT: &str = r#"
"$RELAY" --listen 127.0.0.1:8080 2>"$RELAY_LOG" &
relay=$!
node "$E2E" http://127.0.0.1:8080
rc=$?
kill "$relay" 2>/dev/null
wait "$relay" 2>/dev/null
exit $rc
"#;

#[test]
fn relay_in_a_real_browser() {
    if !support::browser_available("browser end-to-end test") {
        return;
    }
    let tmp = support::temp_dir("browser-e2e");
    let relay_log = tmp.join("relay.log");
    let screenshot = tmp.join("relay-demo.png");
    let run = support::run_in_loopback_namespace(
        &tmp,
        SCRIPT,
        &[
            ("RELAY", env!("CARGO_BIN_EXE_relay").into()),
            ("RELAY_LOG", relay_log.clone().into()),
            ("E2E", support::browser_dir().join("e2e.mjs").into()),
            ("E2E_SCREENSHOT", screenshot.clone().into()),
            ("CHROMIUM", support::chromium().into()),
        ],
        LIMIT,
    );
    support::show(&format!("screenshot: {}\n", screenshot.display()));
    support::report("browser end-to-end run", &run, LIMIT, &relay_log);
}
