//! A private `nats-server` for tests (the `testing` feature).
//!
//! [`NatsServer::start`] runs Debian's `nats-server` (installed by `scripts/install-nats-server`)
//! with JetStream on a free port of 127.0.0.1, with its store in a temporary directory, and
//! waits until it is ready. The server can be stopped gracefully ([`NatsServer::stop`]),
//! crashed ([`NatsServer::kill`]) and brought back on the same port with the same store
//! ([`NatsServer::restart`]), so tests can check what survives a restart of the backbone.
//! Dropping the [`NatsServer`] kills the process and removes the directory, so no server
//! outlives its test, even one that panics.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use signaling_nats::testing::NatsServer;
//!
//! let mut server = NatsServer::start()?;
//! let url = server.url(); // "nats://127.0.0.1:PORT", for async_nats::connect
//! # let _ = url;
//! server.restart()?; // same port, same JetStream store
//! # Ok(())
//! # }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian's `nats-server` package installs the server.
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";
/// How long a start or restart may take before it is given up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`NatsServer::stop`] waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two readiness checks.
const POLL: Duration = Duration::from_millis(20);
/// The line `nats-server` logs once it accepts clients (JetStream included).
const READY_LINE: &str = "Server is ready";
/// What `nats-server` logs when its port is taken (another process, or a moment of TIME_WAIT).
const PORT_TAKEN: &str = "address already in use";
/// Set to `1` (as CI does) to make [`NatsServer::start_or_skip`] fail instead of skipping.
const REQUIRE_ENV: &str = "SIGNALING_REQUIRE_NATS";
/// How many lines of the log an error quotes.
const LOG_TAIL_LINES: usize = 20;

/// A private `nats-server` with JetStream, listening on 127.0.0.1 only.
///
/// The server runs as `nats-server -a 127.0.0.1 -p PORT -js -sd DIR`: no monitoring port, no
/// cluster, gateway or leaf node listener. Its output goes to a log file in the temporary
/// directory that also holds the JetStream store. Dropping the value kills the server (SIGKILL)
/// and removes the directory.
#[derive(Debug)]
pub struct NatsServer {
    /// The running server; `None` once stopped or killed.
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    log: PathBuf,
    /// Holds the store and the log; removed when the server is dropped.
    _dir: TempDir,
}

impl NatsServer {
    /// Finds the `nats-server` binary: `/usr/sbin/nats-server`, else the first `nats-server`
    /// on `PATH`.
    ///
    /// # Errors
    ///
    /// An error of kind [`io::ErrorKind::NotFound`], naming `scripts/install-nats-server`,
    /// when it is in neither place.
    pub fn binary() -> io::Result<PathBuf> {
        let debian = PathBuf::from(DEBIAN_BINARY);
        if debian.is_file() {
            return Ok(debian);
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("nats-server"))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "nats-server not found (neither {DEBIAN_BINARY} nor on PATH); \
                         install it with `bash scripts/install-nats-server`"
                    ),
                )
            })
    }

    /// Starts a server on a free port of 127.0.0.1, with JetStream and a fresh store, and
    /// waits (up to 10 s) until it accepts connections and is ready for JetStream.
    ///
    /// # Errors
    ///
    /// When the binary is missing (see [`NatsServer::binary`]), when the temporary directory
    /// or the process cannot be made, or when the server exits or is not ready in time (the
    /// error then quotes the end of its log; the process is killed).
    pub fn start() -> io::Result<NatsServer> {
        let binary = Self::binary()?;
        let dir = tempfile::Builder::new().prefix("nats-server-").tempdir()?;
        let store = dir.path().join("store");
        std::fs::create_dir(&store)?;
        let mut server = NatsServer {
            child: None,
            binary,
            port: free_port()?,
            store,
            log: dir.path().join("nats-server.log"),
            _dir: dir,
        };
        server.launch(true)?;
        Ok(server)
    }

    /// Starts a server for a test, or tells the test to skip: `None` (after printing
    /// "skipped: nats-server not installed" to stderr) when `nats-server` is missing.
    ///
    /// # Panics
    ///
    /// When `nats-server` is missing and the environment variable `SIGNALING_REQUIRE_NATS` is
    /// `1` (as in CI, where the NATS tests must run), and when the server fails to start.
    pub fn start_or_skip() -> Option<NatsServer> {
        if let Err(missing) = Self::binary() {
            if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
                panic!("{missing} ({REQUIRE_ENV}=1: the NATS tests must not skip)");
            }
            // Straight to stderr, past the test harness's capture: a skip belongs in the log.
            let _ = io::stderr().write_all(
                format!(
                    "skipped: nats-server not installed (`bash scripts/install-nats-server`; \
                     {REQUIRE_ENV}=1 turns this skip into a failure)\n"
                )
                .as_bytes(),
            );
            return None;
        }
        match Self::start() {
            Ok(server) => Some(server),
            Err(error) => panic!("nats-server did not start: {error}"),
        }
    }

    /// The URL clients connect to: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's port on 127.0.0.1 (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (`-sd`), kept across restarts and removed on drop.
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    /// The server's process id, or `None` while it is stopped or killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server gracefully: SIGTERM, then SIGKILL if it has not exited within 5 s.
    /// Does nothing when the server is already stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            // The child is not reaped before it exits, so its pid cannot name another process.
            self.send_term(child.id());
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(POLL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the server at once (SIGKILL, a crash: JetStream gets no chance to flush) and reaps
    /// it. Does nothing when the server is already stopped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same JetStream store, so key-value
    /// data written before survives; stops it first (as [`NatsServer::stop`]) if it is running.
    /// Waits for readiness as [`NatsServer::start`] does, retrying while the port is still
    /// taken (for instance, briefly, by the previous process's connections).
    ///
    /// # Errors
    ///
    /// When the process cannot be spawned, or when the server exits or is not ready within
    /// 10 s (the error quotes the end of its log).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch(false)
    }

    /// Spawns the server and waits until it is ready, respawning while the port is taken: on a
    /// new free port when `new_port_if_taken`, else on the same one.
    fn launch(&mut self, new_port_if_taken: bool) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let offset = std::fs::metadata(&self.log).map_or(0, |meta| meta.len());
            let mut child = self.spawn()?;
            match self.wait_ready(&mut child, offset, deadline) {
                Ok(Readiness::Ready) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Ok(Readiness::Exited(status)) => {
                    let log = read_from(&self.log, offset).unwrap_or_default();
                    if log.contains(PORT_TAKEN) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                        if new_port_if_taken {
                            self.port = free_port()?;
                        }
                        continue;
                    }
                    return Err(self.failure(format!("exited ({status}) before it was ready")));
                }
                Ok(Readiness::TimedOut) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.failure(format!(
                        "was not ready within {} s",
                        READY_TIMEOUT.as_secs()
                    )));
                }
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(error);
                }
            }
        }
    }

    /// Spawns `nats-server -a 127.0.0.1 -p PORT -js -sd DIR`, its output appended to the log.
    fn spawn(&self) -> io::Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let stderr = log.try_clone()?;
        Command::new(&self.binary)
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
    }

    /// Polls until the server has logged that it is ready (after `offset`: earlier runs' lines
    /// do not count) and its port accepts a connection, or until it exits or `deadline` passes.
    fn wait_ready(
        &self,
        child: &mut Child,
        offset: u64,
        deadline: Instant,
    ) -> io::Result<Readiness> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Readiness::Exited(status));
            }
            if read_from(&self.log, offset)?.contains(READY_LINE)
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(Readiness::Ready);
            }
            if Instant::now() >= deadline {
                return Ok(Readiness::TimedOut);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends SIGTERM with `kill`, or with `nats-server --signal` where `kill` is missing.
    fn send_term(&self, pid: u32) {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if sent.is_err() {
            let _ = Command::new(&self.binary)
                .arg("--signal")
                .arg(format!("term={pid}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// An error saying the server on this port `what`, with the end of its log.
    fn failure(&self, what: String) -> io::Error {
        let log = read_from(&self.log, 0).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        io::Error::other(format!(
            "nats-server on 127.0.0.1:{} {what}; the end of its log ({}):\n{tail}",
            self.port,
            self.log.display()
        ))
    }
}

impl Drop for NatsServer {
    /// Kills the server (SIGKILL) and reaps it; the temporary directory goes after.
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a wait for readiness ended.
enum Readiness {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

/// A port of 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The file's text from byte `offset` on (lossily decoded).
fn read_from(path: &Path, offset: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    /// Connects to the server and returns the `INFO {...}` line it sends first.
    fn info_line(port: u16) -> String {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set_read_timeout");
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .expect("read INFO");
        line
    }

    fn assert_jetstream_info(port: u16) {
        let info = info_line(port);
        assert!(info.starts_with("INFO {"), "not an INFO line: {info:?}");
        assert!(info.contains("\"jetstream\":true"), "no JetStream: {info}");
    }

    fn assert_refused(port: u16) {
        let error = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .expect_err("the stopped server's port still accepts connections");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
    }

    #[test]
    fn start_stop_restart() {
        let Some(mut server) = NatsServer::start_or_skip() else {
            return;
        };
        let port = server.port();
        assert_eq!(server.url(), format!("nats://127.0.0.1:{port}"));
        assert!(server.store_dir().is_dir());
        let first_pid = server.pid().expect("a running server has a pid");
        assert_jetstream_info(port);

        server.stop();
        assert_eq!(server.pid(), None);
        assert_refused(port);
        server.stop(); // idempotent

        server.restart().expect("restart");
        assert_eq!(server.port(), port);
        assert_ne!(server.pid(), Some(first_pid));
        assert_jetstream_info(port);
        assert!(
            server.store_dir().join("jetstream").is_dir(),
            "JetStream keeps its store in the same directory"
        );
    }

    #[test]
    fn kill_then_restart_and_drop() {
        let Some(mut server) = NatsServer::start_or_skip() else {
            return;
        };
        let port = server.port();
        assert_jetstream_info(port);

        server.kill();
        assert_eq!(server.pid(), None);
        assert_refused(port);
        server.kill(); // idempotent
        server.stop();

        // A restart of a running server stops it first.
        server.restart().expect("restart after a crash");
        server.restart().expect("restart of a running server");
        assert_jetstream_info(port);

        let store = server.store_dir().to_path_buf();
        drop(server);
        assert_refused(port);
        assert!(
            !store.exists(),
            "the temporary directory outlived the server"
        );
    }

    #[test]
    fn restart_waits_for_a_taken_port() {
        let Some(mut server) = NatsServer::start_or_skip() else {
            return;
        };
        let port = server.port();
        server.stop();
        // Another socket holds the port for a moment, as a lingering one would.
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the port");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(holder);
        });
        server.restart().expect("restart once the port is free");
        release.join().expect("the holder thread");
        assert_eq!(server.port(), port);
        assert_jetstream_info(port);
    }

    #[test]
    fn a_failed_start_reports_the_log() {
        let Some(mut server) = NatsServer::start_or_skip() else {
            return;
        };
        server.stop();
        // A store that is a file: nats-server exits with a fatal error.
        let file = server.store.with_file_name("not-a-directory");
        std::fs::write(&file, b"").expect("write the file");
        server.store = file;
        let error = server.restart().expect_err("a restart on a file as store");
        let message = error.to_string();
        assert!(message.contains("exited"), "{message}");
        assert!(message.contains("storage directory"), "{message}");
        assert_eq!(server.pid(), None);
    }

    #[test]
    fn servers_get_distinct_ports() {
        let (Some(a), Some(b)) = (NatsServer::start_or_skip(), NatsServer::start_or_skip()) else {
            return;
        };
        assert_ne!(a.port(), b.port());
        assert_ne!(a.store_dir(), b.store_dir());
        assert_jetstream_info(a.port());
        assert_jetstream_info(b.port());
    }
}
