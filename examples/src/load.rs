//! What the load generators (`relay_load`, `cluster_load`, `relay_soak`) share: numbered frames
//! of an exact size, their in-order count on the receiving side, and reading a process's memory.
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What comes before a frame's number.
const HEAD: &str = r#"{"type":"load/data","value":""#;
/// Digits of a frame's number.
const DIGITS: usize = 10;

/// A frame of exactly `size` bytes (at least 42) carrying the number `seq`.
pub fn payload(size: usize, seq: u64) -> Utf8Bytes {
    let tail = r#""}"#;
    let fill = size.saturating_sub(HEAD.len() + DIGITS + tail.len());
    Utf8Bytes::from(format!("{HEAD}{seq:010}{}{tail}", "x".repeat(fill)))
}

/// The number of a frame made by [`payload`].
pub fn number(frame: &str) -> Option<u64> {
    if !frame.starts_with(HEAD) {
        return None;
    }
    frame.get(HEAD.len()..HEAD.len() + DIGITS)?.parse().ok()
}

/// One stream's counters: frames sent, frames received, and frames received out of order or
/// twice.
#[derive(Debug, Default)]
pub struct StreamCount {
    /// Frames the sender's socket took.
    pub sent: AtomicU64,
    /// Frames the receiver got.
    pub received: AtomicU64,
    /// Frames the receiver got out of order or twice (a gap is counted as lost at the end).
    pub disorder: AtomicU64,
    /// Woken at each frame received.
    pub arrived: Notify,
}

impl StreamCount {
    /// Counts one frame the receiver got; `next` is the number it expects (kept by the
    /// receiving task). Frames of another size than `size` (the relay's notices) are ignored.
    pub fn receive(&self, next: &mut u64, frame: &str, size: usize) {
        if frame.len() != size {
            return;
        }
        match number(frame) {
            Some(n) if n == *next => *next += 1,
            Some(n) if n > *next => {
                self.disorder.fetch_add(1, Ordering::Relaxed);
                *next = n + 1;
            }
            _ => {
                self.disorder.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        self.arrived.notify_one();
    }
}

/// A process's resident memory (`VmRSS` of `/proc/PID/status`), in KiB.
pub fn vm_rss_kb(pid: impl std::fmt::Display) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Raises the soft limit of open files to the hard limit.
pub fn raise_nofile() {
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() {
        if soft < hard {
            let _ = rlimit::Resource::NOFILE.set(hard, hard);
        }
    }
}

/// Starts this same executable with `args` as a server child process that prints
/// `listening ADDR` on its first line of output and ends when its stdin closes; returns it with
/// that address.
pub fn spawn_server(
    args: &[&str],
) -> Result<(std::process::Child, std::net::SocketAddr), Box<dyn std::error::Error + Send + Sync>> {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("server {args:?} said {line:?}"))?
        .parse()?;
    Ok((child, addr))
}
