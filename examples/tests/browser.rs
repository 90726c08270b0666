//! Real-browser end-to-end tests of the `relay` binary: headless Chromium (Debian's
//! `/usr/bin/chromium`, driven by `playwright-core`) runs the demo page and the seed client
//! against the relay, through `examples/browser/e2e.mjs`; and against two relays run as two
//! nodes of a cluster (with a private `nats-server`), each tab of a call on its own node,
//! through the same script with both nodes' addresses.
//!
//! WebRTC gathers the address of every interface, so the relay and the browser run inside a
//! fresh network namespace that has nothing but loopback (`unshare --net`): no traffic can leave
//! the machine.
//!
//! Needs Chromium, node, `examples/browser/node_modules` and `unshare`/`ip` with the right to
//! create a network namespace; `scripts/install-browser-deps` installs them. When one is
//! missing the test prints "skipped: ..." and passes, unless `SIGNALING_REQUIRE_BROWSER=1`, when
//! it fails. The cluster test also needs `nats-server` (`scripts/install-nats-server`), and skips
//! without it unless `SIGNALING_REQUIRE_NATS=1`. The two tests take turns (each runs a video
//! call in Chromium).
//!
//! ```text
//! bash scripts/install-browser-deps
//! SIGNALING_REQUIRE_BROWSER=1 cargo test -p examples --test browser -- --nocapture
//! ```
use std::ffi::OsString;
use std::sync::Mutex;
use std::time::Duration;

use signaling_nats::testing::NatsServer;

mod support;

/// Taken by each test for its whole run: one browser call at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The whole run (relay, browser, both scenarios) may take this long; `e2e.mjs` bounds each
/// scenario to 30 s itself.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn relay_in_a_real_browser() {
    if !support::browser_available("browser end-to-end test") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// Starts NATS and the two nodes in the namespace, waits for NATS to be ready, runs the script
/// against both nodes, then stops everything.
const CLUSTER_SCRIPT: &str = r#"
rm -rf "$NATS_STORE"
"$NATS_SERVER" -a 127.0.0.1 -p 4222 -js -sd "$NATS_STORE" >"$NATS_LOG" 2>&1 &
nats=$!
tries=0
until grep -q "Server is ready" "$NATS_LOG"; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ] || ! kill -0 "$nats" 2>/dev/null; then
    echo "nats-server did not start; its log:" >&2
    cat "$NATS_LOG" >&2
    kill "$nats" 2>/dev/null
    exit 98
  fi
  sleep 0.1
done
"$SERVER" --listen 127.0.0.1:8080 --nats nats://127.0.0.1:4222 --node n1 2>"$NODE1_LOG" &
n1=$!
"$SERVER" --listen 127.0.0.1:8081 --nats nats://127.0.0.1:4222 --node n2 2>"$NODE2_LOG" &
n2=$!
node "$SCRIPT" http://127.0.0.1:8080 http://127.0.0.1:8081
rc=$?
kill "$n1" "$n2" 2>/dev/null
wait "$n1" "$n2" 2>/dev/null
kill "$nats" 2>/dev/null
wait "$nats" 2>/dev/null
exit $rc
"#;

/// `true` when `nats-server` is installed; else skips (after a notice), or panics under
/// `SIGNALING_REQUIRE_NATS=1`.
fn nats_available(what: &str) -> bool {
    match NatsServer::binary() {
        Ok(_) => true,
        Err(missing) if std::env::var("SIGNALING_REQUIRE_NATS").as_deref() == Ok("1") => {
            panic!("{what} cannot run: {missing} (SIGNALING_REQUIRE_NATS=1)")
        }
        Err(missing) => {
            support::show(&format!(
                "\n!!!!!!!!\n!!! {what} skipped: {missing}\n!!! (SIGNALING_REQUIRE_NATS=1 turns this skip into a failure)\n!!!!!!!!\n"
            ));
            false
        }
    }
}

#[test]
fn relay_cluster_in_a_real_browser_with_the_tabs_on_two_nodes() {
    let what = "browser end-to-end run on a cluster of two nodes";
    if !support::browser_available(what) || !nats_available(what) {
        return;
    }
    let Ok(nats) = NatsServer::binary() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = support::temp_dir("browser-cluster");
    let screenshot = tmp.join("relay-cluster-demo.png");
    support::show(&format!("screenshot: {}\n", screenshot.display()));
    let logs = [
        ("NODE1_LOG", tmp.join("node1.log")),
        ("NODE2_LOG", tmp.join("node2.log")),
        ("NATS_LOG", tmp.join("nats-server.log")),
    ];
    let mut env: Vec<(&str, OsString)> = vec![
        ("SERVER", env!("CARGO_BIN_EXE_relay").into()),
        ("NATS_SERVER", nats.into()),
        ("NATS_STORE", tmp.join("nats-store").into()),
        ("SCRIPT", support::browser_dir().join("e2e.mjs").into()),
        ("CHROMIUM", support::chromium().into()),
        ("E2E_SCREENSHOT", screenshot.into()),
    ];
    env.extend(logs.iter().map(|(k, v)| (*k, v.clone().into())));
    let run = support::run_in_loopback_namespace(&tmp, CLUSTER_SCRIPT, &env, LIMIT);
    if !run.success() {
        // The report below quotes node 2's log; the others are shown here.
        for (name, path) in &logs[..1] {
            support::show(&format!(
                "{name} {} (last lines):\n{}\n",
                path.display(),
                support::tail(path, 40)
            ));
        }
        support::show(&format!(
            "NATS_LOG (last lines):\n{}\n",
            support::tail(&logs[2].1, 20)
        ));
    }
    support::report(what, &run, LIMIT, &logs[1].1);
}
