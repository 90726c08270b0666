//! The relay server behind the `relay` binary: configuration file, TCP accept, the WebSocket
//! endpoint at `/ws?room=NAME` and the demo page at `/`, on one node or as a node of a cluster
//! (`[cluster]`, through [`signaling_nats`]). Tests and the load generator run the same code
//! in-process.
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use signaling::config::InvalidSetting;
use signaling::relay::{join_request_from_peer, DriverConfig, RelayHandle, ShutdownReport};
use signaling::transport::{CloseReason, Transport};
use signaling_core::admission::{Admission, AdmissionConfig, AdmissionConfigError, AllowAll};
use signaling_core::relay::close_code;
use signaling_core::relay::RelayConfig;
use signaling_nats::{ClusterConfig, ClusterError, ClusterNode};
use signaling_ws::{accept_request, read_request_head, WsConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The demo page served at `/`.
pub const PAGE: &str = include_str!("../static/index.html");

/// The configuration file (TOML). Every section and key is optional; see `examples/relay.toml`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// The relay's rooms, limits, privacy policy and ICE servers.
    pub relay: RelayConfig,
    /// The WebSocket endpoint.
    pub websocket: WsSection,
    /// Who may connect (token, origin); everyone when absent.
    pub admission: Option<AdmissionConfig>,
    /// The cluster this relay is a node of (see [`FileConfig::cluster_settings`]); one node on
    /// its own when absent and no NATS server is given on the command line.
    pub cluster: Option<ClusterConfig>,
}

/// The `[websocket]` section.
#[derive(Deserialize, Debug, Clone)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WsSection {
    /// Frames queued per connection at which the peers sending to it stop being read (TCP
    /// backpressure); four times this closes it as a slow consumer. Default: 256.
    pub send_queue: usize,
    /// Seconds a connection that senders wait on may write nothing before it is closed as a
    /// slow consumer (4006). Default: 10.
    pub write_timeout: f64,
    /// Connections served at once (upgraded or not); more wait in the kernel's backlog.
    /// Default: 20,000.
    pub max_connections: usize,
    /// Seconds between keepalive pings (0: none). Default: 20.
    pub ping_interval: f64,
    /// Seconds to wait for a pong before the peer counts as dead. Default: 10.
    pub pong_timeout: f64,
    /// Seconds a client has for the whole upgrade, from its first byte to the response (or
    /// for a plain HTTP request, to its answer); a slower one is disconnected. Default: 10.
    pub handshake_timeout: f64,
    /// Bytes of a request head (request line and headers), at most; a larger one is answered
    /// with 431. Default: 16384.
    pub max_header_bytes: usize,
    /// Header lines of a request, at most; more are answered with 431. Default: 64.
    pub max_headers: usize,
    /// Frames of one connection handled together before its task yields to the writers.
    /// Default: 64 (keep it well below `send_queue`).
    pub burst: usize,
    /// Frames written to one connection with one flush, at most. Default: 256.
    pub write_batch: usize,
    /// Bytes of the read buffer per connection. Default: 2048 (what idle connections cost is
    /// mostly this buffer; larger frames grow it as needed).
    pub read_buffer_size: usize,
    /// Bytes of the blocks received frames are copied into (frames arriving together share
    /// one; 0: each frame in a buffer of its own). Default: 4096.
    pub recv_block_size: usize,
    /// Bytes a busy connection reads from its socket at once (freed when the socket runs dry,
    /// so idle connections hold none; 0: none). Default: 65536.
    pub read_ahead: usize,
}

impl Default for WsSection {
    fn default() -> Self {
        Self {
            send_queue: 256,
            write_timeout: 10.0,
            burst: 64,
            write_batch: 256,
            max_connections: 20_000,
            ping_interval: 20.0,
            pong_timeout: 10.0,
            handshake_timeout: 10.0,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            read_buffer_size: 2048,
            recv_block_size: 4096,
            read_ahead: 64 * 1024,
        }
    }
}

impl WsSection {
    /// The WebSocket and driver settings this section (with the relay's frame size) makes.
    fn settings(&self, relay: &RelayConfig) -> Result<(WsConfig, DriverConfig), InvalidSetting> {
        InvalidSetting::check_nonzero(
            "max_connections",
            self.max_connections as u64,
            "no connection would be served",
        )?;
        let ping = seconds("ping_interval", self.ping_interval)?;
        let pong = seconds("pong_timeout", self.pong_timeout)?;
        let handshake = seconds("handshake_timeout", self.handshake_timeout)?;
        let ws = WsConfig::default()
            .with_max_message_size(relay.max_frame_len)
            .with_ping_interval((!ping.is_zero()).then_some(ping))
            .with_pong_timeout(pong)
            .with_handshake_timeout(handshake)
            .with_max_header_bytes(self.max_header_bytes)
            .with_max_headers(self.max_headers)
            .with_read_buffer_size(self.read_buffer_size)
            .with_recv_block_size(self.recv_block_size)
            .with_read_ahead(self.read_ahead);
        ws.validate()?;
        let mut driver = DriverConfig::default();
        driver.send_queue = self.send_queue;
        driver.write_timeout = seconds("write_timeout", self.write_timeout)?;
        driver.burst = self.burst;
        driver.write_batch = self.write_batch;
        driver.validate()?;
        Ok((ws, driver))
    }
}

/// A configuration file's number of seconds as a duration: finite and not negative.
fn seconds(setting: &'static str, value: f64) -> Result<Duration, InvalidSetting> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| InvalidSetting::new(setting, value, "must be a number of seconds, at least 0"))
}

/// Why a configuration cannot be used. Its message names the file, and where the file is at
/// fault, the line and column, or the section and key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {}", .path.display(), in_words(.source))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not valid TOML, or has a key or value the configuration does not take.
    #[error("{}, line {line}, column {column}: {message}", source_name(.path))]
    Syntax {
        /// The file (`None`: text that came from elsewhere).
        path: Option<PathBuf>,
        /// The line of the fault, from 1.
        line: usize,
        /// The column of the fault, in characters from 1.
        column: usize,
        /// What is wrong, in the TOML parser's words.
        message: String,
    },
    /// A setting cannot work (see [`InvalidSetting`]).
    #[error("{}: [{section}] {setting}", source_name(.path))]
    Invalid {
        /// The file (`None`: text that came from elsewhere).
        path: Option<PathBuf>,
        /// The section of the setting.
        section: &'static str,
        /// The setting, its value and why it cannot work.
        setting: InvalidSetting,
    },
    /// The `[admission]` section is invalid.
    #[error("{}: [admission] {source}", source_name(.path))]
    Admission {
        /// The file (`None`: text that came from elsewhere).
        path: Option<PathBuf>,
        /// What is wrong.
        source: AdmissionConfigError,
    },
    /// A cluster setting is missing: the NATS server, or this node's name.
    #[error(
        "{what} is needed to run as a node of a cluster: give {flag} on the command line or \
         set `{key}` in the [cluster] section of {}",
        file_name(.path)
    )]
    ClusterMissing {
        /// The configuration file, if one was given.
        path: Option<PathBuf>,
        /// What is missing, in words (`"a node name"`).
        what: &'static str,
        /// The command-line flag that gives it (`"--node NAME"`).
        flag: &'static str,
        /// The key of the `[cluster]` section that gives it.
        key: &'static str,
    },
    /// A cluster setting cannot work.
    #[error("{}", cluster_invalid(.path, .flag, .key, .value, .why))]
    ClusterInvalid {
        /// The file (`None`: text that came from elsewhere).
        path: Option<PathBuf>,
        /// The command-line flag the value came from (`"--node"`), if it did.
        flag: Option<&'static str>,
        /// The setting (its key in the `[cluster]` section).
        key: &'static str,
        /// Its value, as it would be written in the file.
        value: String,
        /// Why it cannot work.
        why: String,
    },
}

fn cluster_invalid(
    path: &Option<PathBuf>,
    flag: &Option<&'static str>,
    key: &str,
    value: &str,
    why: &str,
) -> String {
    match flag {
        Some(flag) => format!("{flag} {value}: {why}"),
        None => format!("{}: [cluster] {key} = {value}: {why}", source_name(path)),
    }
}

fn file_name(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!("the configuration file ({})", path.display()),
        None => "a configuration file (--config)".to_owned(),
    }
}

fn source_name(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => format!("configuration file {}", path.display()),
        None => "configuration".to_owned(),
    }
}

impl ConfigError {
    /// The same error, about the configuration file at `file` (for an error of settings that
    /// were read from it: [`FileConfig::cluster_settings`]).
    pub fn in_file(mut self, file: &Path) -> Self {
        match &mut self {
            Self::Read { .. } => {}
            Self::Syntax { path, .. }
            | Self::Invalid { path, .. }
            | Self::Admission { path, .. }
            | Self::ClusterMissing { path, .. }
            | Self::ClusterInvalid { path, .. } => {
                *path = Some(file.to_owned());
            }
        }
        self
    }
}

/// An IO error in plain words: `address already in use`, not `Os { code: 98, .. }`.
pub fn in_words(error: &io::Error) -> String {
    use io::ErrorKind;
    let words = match error.kind() {
        ErrorKind::AddrInUse => "address already in use (is another server running on it?)",
        ErrorKind::AddrNotAvailable => "address not available (no network interface has it)",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::NotFound => "no such file or directory",
        ErrorKind::IsADirectory => "it is a directory",
        ErrorKind::InvalidData => "not UTF-8 text",
        _ => {
            // `Display` of an OS error is its text and "(os error N)": keep the text.
            let text = error.to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_owned();
            return text.to_lowercase();
        }
    };
    words.to_owned()
}

impl FileConfig {
    /// Parses a configuration file's text (without checking the settings: see
    /// [`validate`](Self::validate)).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map_or((1, 1), |span| line_and_column(text, span.start));
            ConfigError::Syntax {
                path: None,
                line,
                column,
                message: error.message().trim_end().to_owned(),
            }
        })
    }

    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::from_toml(&text).map_err(|e| e.in_file(path))?;
        config.validate().map_err(|e| e.in_file(path))?;
        Ok(config)
    }

    /// Refuses settings that cannot work: those [`RelayConfig::validate`],
    /// [`WsConfig::validate`] and [`DriverConfig::validate`] refuse, a `max_connections` of 0,
    /// durations that are negative or not finite, an invalid `[admission]` section, and
    /// `[cluster]` settings that [`ClusterConfig::validate`] refuses (but for `nats` and `node`,
    /// which may come from the command line: see [`cluster_settings`](Self::cluster_settings)).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.settings()?;
        if let Some(cluster) = &self.cluster {
            let mut check = cluster.clone();
            // Checked once the command line's values are in (`cluster_settings`).
            if check.nats.is_empty() {
                check.nats = "nats://127.0.0.1:4222".to_owned();
            }
            if check.node.is_empty() {
                check.node = "node".to_owned();
            }
            check_cluster(&check, |_| None)?;
        }
        Ok(())
    }

    /// The cluster settings: the `[cluster]` section with the command line's NATS server
    /// (`--nats`) and node name (`--node`) over the file's. `None` (one node on its own) when
    /// there is neither a `[cluster]` section nor a flag; otherwise both the NATS server and
    /// the node name must be given somewhere, and the settings must be valid.
    pub fn cluster_settings(
        &self,
        nats: Option<&str>,
        node: Option<&str>,
    ) -> Result<Option<ClusterConfig>, ConfigError> {
        if self.cluster.is_none() && nats.is_none() && node.is_none() {
            return Ok(None);
        }
        let mut cluster = self.cluster.clone().unwrap_or_default();
        if let Some(nats) = nats {
            nats.clone_into(&mut cluster.nats);
        }
        if let Some(node) = node {
            node.clone_into(&mut cluster.node);
        }
        let missing = |what, flag, key| ConfigError::ClusterMissing {
            path: None,
            what,
            flag,
            key,
        };
        if cluster.nats.is_empty() {
            return Err(missing(
                "the NATS server's address",
                "--nats nats://HOST:PORT",
                "nats",
            ));
        }
        if cluster.node.is_empty() {
            return Err(missing("a node name", "--node NAME", "node"));
        }
        check_cluster(&cluster, |key| match key {
            "nats" if nats.is_some() => Some("--nats"),
            "node" if node.is_some() => Some("--node"),
            _ => None,
        })?;
        Ok(Some(cluster))
    }

    /// The validated settings: WebSocket, driver and admission.
    #[allow(clippy::type_complexity)]
    fn settings(
        &self,
    ) -> Result<(WsConfig, DriverConfig, Option<Box<dyn Admission>>), ConfigError> {
        let invalid = |section| {
            move |setting| ConfigError::Invalid {
                path: None,
                section,
                setting,
            }
        };
        self.relay.validate().map_err(invalid("relay"))?;
        let (ws, driver) = self
            .websocket
            .settings(&self.relay)
            .map_err(invalid("websocket"))?;
        let admission = match &self.admission {
            Some(a) => Some(
                a.build()
                    .map_err(|source| ConfigError::Admission { path: None, source })?,
            ),
            None => None,
        };
        Ok((ws, driver, admission))
    }
}

/// [`ClusterConfig::validate`], its refusal as a [`ConfigError`]; `flag` names the command-line
/// flag a key was given with, if it was.
fn check_cluster(
    cluster: &ClusterConfig,
    flag: impl Fn(&'static str) -> Option<&'static str>,
) -> Result<(), ConfigError> {
    let (key, why) = match cluster.validate() {
        Ok(()) => return Ok(()),
        Err(ClusterError::Config(key, why)) => (key, why),
        Err(other) => ("", other.to_string()),
    };
    let quoted = |text: &str| {
        if flag(key).is_some() {
            text.to_owned()
        } else {
            format!("{text:?}")
        }
    };
    let value = match key {
        "nats" => quoted(&cluster.nats),
        "node" => quoted(&cluster.node),
        "prefix" => quoted(&cluster.prefix),
        "heartbeat" => cluster.heartbeat.as_secs_f64().to_string(),
        "node_timeout" => cluster.node_timeout.as_secs_f64().to_string(),
        "retransmit" => cluster.retransmit.as_secs_f64().to_string(),
        "join_timeout" => cluster.join_timeout.as_secs_f64().to_string(),
        "release_after" => cluster.release_after.as_secs_f64().to_string(),
        "ack_delay" => cluster.ack_delay.as_secs_f64().to_string(),
        "window" => cluster.window.to_string(),
        "replicas" => cluster.replicas.to_string(),
        _ => String::new(),
    };
    Err(ConfigError::ClusterInvalid {
        path: None,
        flag: flag(key),
        key,
        value,
        why,
    })
}

/// The line and column (both from 1, the column in characters) of byte `offset` of `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A relay server, ready to serve connections: one node on its own, or a node of a cluster
/// ([`join_cluster`](Self::join_cluster)).
pub struct Server {
    relay: RelayHandle,
    cluster: Option<ClusterNode>,
    ws: WsConfig,
    admission: Option<Box<dyn Admission>>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("relay", &self.relay)
            .field("cluster", &self.cluster.as_ref().map(ClusterNode::id))
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for this configuration (starts the relay's timer task on the current runtime).
    /// Refuses a configuration that [`FileConfig::validate`] refuses.
    pub fn new(config: FileConfig) -> Result<Self, ConfigError> {
        let (ws, driver, admission) = config.settings()?;
        Ok(Self {
            relay: RelayHandle::new(config.relay, driver),
            cluster: None,
            ws,
            admission,
            slots: Arc::new(Semaphore::new(config.websocket.max_connections.max(1))),
        })
    }

    /// Makes this server a node of the cluster `config` names: connects to NATS and starts the
    /// node ([`ClusterNode::start`]). From then on its WebSocket connections are served through
    /// the node, and the peers of a room may connect to any node of the cluster.
    pub async fn join_cluster(mut self, config: ClusterConfig) -> Result<Self, ClusterError> {
        let node = ClusterNode::start(config, self.relay.clone()).await?;
        self.cluster = Some(node);
        Ok(self)
    }

    /// The relay, to serve connections of other transports (an in-memory peer, say). On a node
    /// of a cluster it runs the rooms placed on this node only: serve a connection through
    /// [`cluster`](Self::cluster) instead.
    pub fn relay(&self) -> &RelayHandle {
        &self.relay
    }

    /// The cluster node, when the server is one.
    pub fn cluster(&self) -> Option<&ClusterNode> {
        self.cluster.as_ref()
    }

    /// Accepts and serves connections on `listener` until the task is dropped (which stops
    /// accepting; connections already accepted go on until [`shutdown`](Self::shutdown)).
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let permit = match self.slots.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let (stream, addr) = accept(&listener).await;
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(e) = server.serve(stream, addr).await {
                    tracing::debug!(%addr, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }

    /// Shuts the relay down gracefully (see [`RelayHandle::shutdown`]): every connection gets
    /// what was queued for it and a close with 1001, within `drain`. Stop [`run`](Self::run)
    /// first.
    ///
    /// On a node of a cluster, the relay's connections are those of the rooms this node runs
    /// (its own clients', and other nodes' clients' links). Then this node's clients of rooms
    /// run by other nodes get what reached this node for them and a close with 1001 too, within
    /// what is left of `drain` (at least [`EDGE_DRAIN_MIN`]); the rooms' nodes count them as
    /// lost connections, so that they may resume on another node within the resume grace.
    /// Last, the node leaves the cluster ([`ClusterNode::shutdown`]): the other nodes hear at
    /// once that it is gone, and the rooms it ran are free to be placed elsewhere.
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
        let started = Instant::now();
        let report = self.relay.shutdown(drain).await;
        if let Some(cluster) = &self.cluster {
            let left = drain.saturating_sub(started.elapsed()).max(EDGE_DRAIN_MIN);
            let (closed, cut) = cluster.shutdown(left).await;
            if cut == 0 {
                tracing::info!(
                    "{closed} clients of rooms run by other nodes closed with 1001 (they may \
                     resume on another node)"
                );
            } else {
                tracing::warn!(
                    "{closed} clients of rooms run by other nodes closed with 1001; {cut} more \
                     not done within {left:?}, cut off"
                );
            }
            tracing::info!(node = %cluster.id().name, "left the cluster");
        }
        report
    }

    /// Serves one TCP connection: the WebSocket endpoint (`426 Upgrade Required` for a plain
    /// request), the demo page, or 404. Everything up to the upgrade, or up to the plain
    /// answer, is bounded by the handshake deadline (`[websocket] handshake_timeout`).
    pub async fn serve(&self, mut stream: TcpStream, addr: SocketAddr) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let head = match Box::pin(read_request_head(&mut stream, &self.ws)).await {
            Ok(head) => head,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "request refused or failed");
                return Ok(());
            }
        };
        if head.path() == "/ws" {
            let admission: &dyn Admission = match &self.admission {
                Some(a) => a.as_ref(),
                None => &AllowAll,
            };
            // Boxed: the handshake's state is large and short-lived; inline, it would stay in
            // the task's allocation for the connection's whole life.
            let handshake = Box::pin(accept_request(
                stream,
                head,
                Some(addr),
                &self.ws,
                admission,
            ));
            let mut conn = match handshake.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "handshake refused or failed");
                    return Ok(());
                }
            };
            match join_request_from_peer(conn.peer()) {
                Some(request) => match &self.cluster {
                    Some(cluster) => cluster.serve(conn, request).await,
                    None => self.relay.serve(conn, request).await,
                },
                None => {
                    let reason = CloseReason::new(close_code::BAD_REQUEST, "missing ?room=NAME");
                    let _ = conn.close(reason).await;
                }
            }
            return Ok(());
        }
        let (status, kind, body) = match (head.method(), head.path()) {
            ("GET", "/" | "/index.html") => ("200 OK", "text/html; charset=utf-8", PAGE),
            _ => ("404 Not Found", "text/plain; charset=utf-8", "not found\n"),
        };
        answer_plain_http(stream, head.deadline(), status, kind, body).await
    }
}

/// The least time a shutdown gives the clients of rooms run by other nodes to go away (see
/// [`Server::shutdown`]), even when the relay's own drain took all of its time.
pub const EDGE_DRAIN_MIN: Duration = Duration::from_secs(1);

/// Answers a plain HTTP request whose head has been read: writes `status` (`"200 OK"`, ...)
/// with a body of type `kind`, and closes the connection; gives up at `deadline` (the
/// handshake's, [`RequestHead::deadline`](signaling_ws::RequestHead::deadline)).
pub async fn answer_plain_http(
    mut stream: TcpStream,
    deadline: Instant,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout_at(deadline, answer)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "answering a plain request"))?
}

/// The next connection on `listener`. An accept error (out of file descriptors, say) is logged
/// and retried after 100 ms rather than ending the server.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_placed_by_line_and_column() {
        let text = "[relay]\nroom_capacity = 2\nrooom = 3\n";
        let error = FileConfig::from_toml(text).expect_err("unknown key");
        let ConfigError::Syntax { line, column, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!((*line, *column), (3, 1), "{error}");
        assert!(
            error.to_string().contains("unknown field `rooom`"),
            "{error}"
        );
        assert_eq!(line_and_column("ab\ncdé f", 8), (2, 5));
    }

    #[test]
    fn invalid_settings_name_their_section_and_key() {
        let config = FileConfig::from_toml("[websocket]\npong_timeout = inf\n").expect("parses");
        let error = config.validate().expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("configuration: [websocket] pong_timeout = inf: "),
            "{error}"
        );
        let config = FileConfig::from_toml("[websocket]\nburst = 0\n").expect("parses");
        assert!(config.validate().is_err());
        FileConfig::default()
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn cluster_settings_come_from_the_file_and_the_flags() {
        // Neither: one node on its own.
        let none = FileConfig::default();
        assert!(none.cluster_settings(None, None).expect("valid").is_none());
        // The flags alone.
        let both = none
            .cluster_settings(Some("nats://127.0.0.1:4222"), Some("n1"))
            .expect("valid")
            .expect("a cluster");
        assert_eq!(
            (both.nats.as_str(), both.node.as_str()),
            ("nats://127.0.0.1:4222", "n1")
        );
        // The file's timings, with the flags over its NATS server and node name.
        let file = FileConfig::from_toml(
            "[cluster]\nnats = \"nats://10.0.0.1:4222\"\nnode = \"a\"\nheartbeat = 0.2\nnode_timeout = 1\n",
        )
        .expect("parses");
        file.validate().expect("valid");
        let merged = file
            .cluster_settings(Some("nats://127.0.0.1:1"), Some("b"))
            .expect("valid")
            .expect("a cluster");
        assert_eq!(
            (merged.nats.as_str(), merged.node.as_str()),
            ("nats://127.0.0.1:1", "b")
        );
        assert_eq!(merged.heartbeat, Duration::from_millis(200));
        assert_eq!(merged.node_timeout, Duration::from_secs(1));
    }

    #[test]
    fn a_cluster_without_a_node_name_or_with_bad_settings_is_refused_in_words() {
        let error = FileConfig::default()
            .cluster_settings(Some("nats://127.0.0.1:4222"), None)
            .expect_err("no node name");
        assert_eq!(
            error.to_string(),
            "a node name is needed to run as a node of a cluster: give --node NAME on the \
             command line or set `node` in the [cluster] section of a configuration file (--config)"
        );
        let file = FileConfig::from_toml("[cluster]\nnode = \"n1\"\n").expect("parses");
        let error = file
            .cluster_settings(None, None)
            .expect_err("no NATS server")
            .in_file(Path::new("relay.toml"));
        assert!(
            error.to_string().starts_with(
                "the NATS server's address is needed to run as a node of a cluster: give --nats"
            ),
            "{error}"
        );
        assert!(error.to_string().ends_with("(relay.toml)"), "{error}");
        let error = FileConfig::default()
            .cluster_settings(Some("nats://127.0.0.1:4222"), Some("no spaces"))
            .expect_err("a bad name");
        assert_eq!(
            error.to_string(),
            "--node no spaces: 1 to 64 characters of A-Z a-z 0-9 - _"
        );
        let file =
            FileConfig::from_toml("[cluster]\nheartbeat = 2\nnode_timeout = 3\n").expect("parses");
        let error = file.validate().expect_err("a timeout under two heartbeats");
        assert_eq!(
            error.to_string(),
            "configuration: [cluster] node_timeout = 3: must be at least twice the heartbeat"
        );
        let error = FileConfig::from_toml("[cluster]\nheartbeat = -1\n").expect_err("negative");
        assert!(
            matches!(error, ConfigError::Syntax { line: 2, .. }),
            "{error}"
        );
    }
}
