//! What the real-browser and real-stack tests share: finding their prerequisites (skipping, or
//! failing under `SIGNALING_REQUIRE_BROWSER=1`, when one is missing) and running a script inside
//! a fresh network namespace that has nothing but loopback (`unshare --net`), so that no WebRTC
//! traffic can leave the machine.
#![allow(dead_code, unreachable_pub)]

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod relay;
pub mod ws;

/// Debian's Chromium, or `$CHROMIUM`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// The directory of the browser scripts (`examples/browser`).
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
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

/// What a loopback-only namespace needs and does not find.
fn missing_namespace() -> Vec<String> {
    let mut missing = Vec::new();
    if !runs("ip", &["-V"]) {
        missing.push("ip (iproute2)".into());
    }
    if !runs("unshare", &["--net", "true"]) {
        missing
            .push("unshare --net (util-linux, and the right to create a network namespace)".into());
    }
    missing
}

/// What a browser test needs and does not find (Chromium, node, the npm packages of
/// `examples/browser/package.json`, a namespace).
fn missing_browser() -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium().is_file() {
        missing.push(format!("chromium ({})", chromium().display()));
    }
    if !runs("node", &["--version"]) {
        missing.push("node".into());
    }
    for package in ["playwright-core", "whip-whep"] {
        let dir = browser_dir().join("node_modules").join(package);
        if !dir.is_dir() {
            missing.push(format!(
                "{} (npm ci --prefix examples/browser)",
                dir.display()
            ));
        }
    }
    missing.extend(missing_namespace());
    missing
}

/// Writes straight to the process's stderr, past the test harness's capture: skip notices and
/// the runs' reports belong in the CI log even when the test passes.
pub fn show(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn skip_or_fail(what: &str, missing: Vec<String>) -> bool {
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    if std::env::var("SIGNALING_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{what} cannot run, missing: {missing}; run `bash scripts/install-browser-deps`");
    }
    show(&format!(
        "\n!!!!!!!!\n!!! {what} skipped: missing {missing}\n!!! (`bash scripts/install-browser-deps` installs them; SIGNALING_REQUIRE_BROWSER=1 turns this skip into a failure)\n!!!!!!!!\n"
    ));
    false
}

/// `true` when a browser test can run; `false` (after a notice) when it must be skipped.
/// Panics instead of skipping under `SIGNALING_REQUIRE_BROWSER=1` (as in CI).
pub fn browser_available(what: &str) -> bool {
    skip_or_fail(what, missing_browser())
}

/// `true` when a loopback-only namespace can be made (for tests with real WebRTC stacks and no
/// browser); skips or panics like [`browser_available`].
pub fn namespace_available(what: &str) -> bool {
    skip_or_fail(what, missing_namespace())
}

/// The last `lines` lines of a file (a server's log, for a failure report).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A temporary directory of this test target, created if needed.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("create the test's temporary directory");
    dir
}

/// How a namespaced run ended.
#[derive(Debug)]
pub struct Run {
    /// The script's exit status; `None` if it was killed at the time limit.
    pub status: Option<ExitStatus>,
    /// What it printed.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// How long it took.
    pub elapsed: Duration,
}

impl Run {
    /// `true` when the script exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs the shell `script` inside a new network namespace whose only interface is loopback
/// (brought up first), with `env` set, and kills its whole process group at `limit`. Both output
/// streams are read on their own threads so that neither can fill up and block the script.
pub fn run_in_loopback_namespace(
    dir: &Path,
    script: &str,
    env: &[(&str, OsString)],
    limit: Duration,
) -> Run {
    let path = dir.join("run.sh");
    let script = format!(
        "set -u\nip link set lo up || {{ echo \"cannot bring up loopback in the namespace\" >&2; exit 97; }}\n{script}"
    );
    std::fs::write(&path, script).expect("write the namespace script");
    let started = Instant::now();
    let mut command = Command::new("unshare");
    command.arg("--net").arg("sh").arg(&path);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start unshare");
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
        if started.elapsed() > limit {
            // The script and everything it started share one process group.
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Shows a run's output, and panics with `log`'s last lines if it failed or timed out.
pub fn report(what: &str, run: &Run, limit: Duration, log: &Path) {
    show(&format!("\n{}", run.stdout));
    if !run.stderr.trim().is_empty() {
        show(&format!("stderr:\n{}\n", run.stderr));
    }
    show(&format!("{what} took {:.1}s\n", run.elapsed.as_secs_f64()));
    match run.status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "{what} failed ({status}); {} (last lines):\n{}",
            log.display(),
            tail(log, 40)
        ),
        None => panic!(
            "{what} did not finish within {limit:?}; {} (last lines):\n{}",
            log.display(),
            tail(log, 40)
        ),
    }
}

/// A server binary and a browser script run against it, in a loopback-only namespace.
pub struct BrowserRun<'a> {
    /// What is run, for the report (`"media server browser run"`).
    pub what: &'a str,
    /// The server binary (`env!("CARGO_BIN_EXE_...")`), started with `--listen <listen>`.
    pub server: &'a str,
    /// The address it listens on, `127.0.0.1:PORT`.
    pub listen: &'a str,
    /// The script in `examples/browser`, run as `node <script> http://<listen>`.
    pub script: &'a str,
    /// More environment for both (the server's `RUST_LOG`, the script's settings).
    pub env: Vec<(&'a str, OsString)>,
    /// The time limit of the whole run.
    pub limit: Duration,
}

impl BrowserRun<'_> {
    /// Runs it in a temporary directory named `dir`: the server in the background (its log in
    /// `server.log`), the script in front; stops the server after the script. Shows the output,
    /// and panics with the server log's last lines when the script fails.
    pub fn run(self, dir: &str) -> Run {
        const SCRIPT: &str = r#"
"$SERVER" --listen "$LISTEN" 2>"$SERVER_LOG" &
server=$!
node "$SCRIPT" "http://$LISTEN"
rc=$?
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
exit $rc
"#;
        let tmp = temp_dir(dir);
        let log = tmp.join("server.log");
        let mut env = vec![
            ("SERVER", OsString::from(self.server)),
            ("LISTEN", self.listen.into()),
            ("SERVER_LOG", log.clone().into()),
            ("SCRIPT", browser_dir().join(self.script).into()),
            ("CHROMIUM", chromium().into()),
        ];
        env.extend(self.env);
        let run = run_in_loopback_namespace(&tmp, SCRIPT, &env, self.limit);
        report(self.what, &run, self.limit, &log);
        run
    }
}
