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

#[test]
fn relay_in_a_real_browser() {
    if !support::browser_available("browser end-to-end test") {
        return;
    }
    let screenshot = support::temp_dir("browser-e2e").join("relay-demo.png");
    support::show(&format!("screenshot: {}\n", screenshot.display()));
    support::BrowserRun {
        what: "browser end-to-end run",
        server: env!("CARGO_BIN_EXE_relay"),
        listen: "127.0.0.1:8080",
        script: "e2e.mjs",
        env: vec![("E2E_SCREENSHOT", screenshot.into())],
        limit: LIMIT,
    }
    .run("browser-e2e");
}
