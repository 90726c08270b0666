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
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole run (relay, browser, both scenarios) may take this long; `e2e.mjs` bounds each
/// scenario to 30 s itself.
const LIMIT: Duration = Duration::from_secs(180);

const SCRIPT: &str = r#"set -u
ip link set lo up || { echo "cannot bring up loopback in the namespace" >&2; exit 97; }
"$RELAY" --listen 127.0.0.1:8080 2>"$RELAY_LOG" &
relay=$!
node "$E2E" http://127.0.0.1:8080
rc=$?
kill "$relay" 2>/dev/null
wait "$relay" 2>/dev/null
exit $rc
"#;

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the test needs and does not find.
fn missing(browser_dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().is_file() {
        missing.push(format!("chromium ({})", chromium().display()));
    }
    if !runs("node", &["--version"]) {
        missing.push("node".into());
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "{} (npm ci --prefix examples/browser)",
            browser_dir.join("node_modules/playwright-core").display()
        ));
    }
    if !runs("ip", &["-V"]) {
        missing.push("ip (iproute2)".into());
    }
    if !runs("unshare", &["--net", "true"]) {
        missing
            .push("unshare --net (util-linux, and the right to create a network namespace)".into());
    }
    missing
}

/// Writes straight to the process's stderr, past the test harness's capture: the skip notice
/// and the browser run's report belong in the CI log even when the test passes.
fn show(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn relay_in_a_real_browser() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = manifest.join("browser");
    let missing = missing(&browser_dir);
    if !missing.is_empty() {
        let what = missing.join(", ");
        if std::env::var("SIGNALING_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "browser end-to-end test cannot run, missing: {what}; run `bash scripts/install-browser-deps`"
            );
        }
        show(&format!(
            "\n!!!!!!!!\n!!! browser end-to-end test skipped: missing {what}\n!!! (`bash scripts/install-browser-deps` installs them; SIGNALING_REQUIRE_BROWSER=1 turns this skip into a failure)\n!!!!!!!!\n"
        ));
        return;
    }

    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-e2e");
    std::fs::create_dir_all(&tmp).expect("create the test's temporary directory");
    let script = tmp.join("run.sh");
    std::fs::write(&script, SCRIPT).expect("write the namespace script");
    let relay_log = tmp.join("relay.log");
    let screenshot = tmp.join("relay-demo.png");

    let started = Instant::now();
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg("sh")
        .arg(&script)
        .env("RELAY", env!("CARGO_BIN_EXE_relay"))
        .env("RELAY_LOG", &relay_log)
        .env("E2E", browser_dir.join("e2e.mjs"))
        .env("E2E_SCREENSHOT", &screenshot)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start unshare");
    // Read both pipes on their own threads so that neither can fill up and block the child.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the namespace script") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            // The script, the relay, node and the browser share one process group.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    show(&format!("\n{out}"));
    if !err.trim().is_empty() {
        show(&format!("stderr:\n{err}\n"));
    }
    show(&format!(
        "browser end-to-end run took {:.1}s; screenshot: {}\n",
        started.elapsed().as_secs_f64(),
        screenshot.display()
    ));
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "browser end-to-end test failed ({status}); relay log (last lines):\n{}",
            tail(&relay_log, 40)
        ),
        None => panic!(
            "browser end-to-end test did not finish within {LIMIT:?}; relay log (last lines):\n{}",
            tail(&relay_log, 40)
        ),
    }
}
