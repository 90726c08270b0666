//! The `relay` binary (or another server binary of this package, [`RelayProcess::spawn_binary`])
//! as a child process: started on a free port (its address read from its log), signalled,
//! killed, and its log kept for assertions and failure reports.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::ws::WAIT;

/// A running `relay` binary, its log (stderr) collected line by line. Killed when dropped.
pub struct RelayProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
}

impl RelayProcess {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_binary(env!("CARGO_BIN_EXE_relay"), args)
    }

    /// Starts `program` (a `CARGO_BIN_EXE_*` path) with `args`.
    pub fn spawn_binary(program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            // `RELAY_LOG=debug` (a `RUST_LOG` filter) for more of the server's log.
            .env(
                "RUST_LOG",
                std::env::var("RELAY_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                collected.lock().expect("log").push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self { child, log, lines }
    }

    /// Starts the binary on a free port; returns it once it listens, with its address.
    pub fn listening(args: &[&str]) -> (Self, SocketAddr) {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let process = Self::spawn(&all);
        let addr = process.logged_address("relay listening on ");
        (process, addr)
    }

    /// Waits for the log line with `marker` followed by `http://ADDR` or `https://ADDR`;
    /// returns the address.
    pub fn logged_address(&self, marker: &str) -> SocketAddr {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no log line with {marker:?}; log:\n{}", self.log()));
            if let Some(rest) = line.split(marker).nth(1) {
                let rest = rest.split("://").nth(1).expect("a URL");
                let addr = rest.split_whitespace().next().expect("address");
                return addr.parse().expect("a socket address");
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Sends a signal (`TERM`, `INT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the process to exit; returns its status and its whole log.
    pub fn exit(&mut self) -> (ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the relay") {
                // The log thread ends with the pipe; give it a moment to take the last lines.
                let deadline = Instant::now() + Duration::from_secs(2);
                while self.lines.recv_timeout(Duration::from_millis(50)).is_ok()
                    && Instant::now() < deadline
                {}
                return (status, self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the relay did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RelayProcess {
    /// The process id (the process may have exited).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL, a crash: it tells no one) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded by `limit`) until a line of the log contains `text`; panics with the log
    /// if none does in time.
    pub fn wait_for_log(&self, text: &str, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self
                .log
                .lock()
                .expect("log")
                .iter()
                .any(|l| l.contains(text))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no log line with {text:?} within {limit:?}; log:\n{}",
            self.log()
        );
    }
}
