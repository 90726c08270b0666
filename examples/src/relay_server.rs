//! The relay server behind the `relay` binary: configuration file, TCP accept (with TLS when
//! given a certificate: [`TlsFiles`]), the WebSocket endpoint at `/ws?room=NAME`, the demo page
//! at `/` and the operators' `/healthz`, `/readyz` and `/metrics` (see [`crate::ops`] and
//! [`Server::health`]), on one node or as a node of a cluster (`[cluster]`, through
//! [`signaling_nats`]). Tests and the load generator run the same code in-process.
//!
//! # Metrics
//!
//! `GET /metrics` answers in the Prometheus text format. Every series is read at scrape time
//! from counters the relay keeps anyway ([`RelayStatus`], [`ClusterStats`] and the server's
//! own counts of refused handshakes), so serving frames costs nothing more. On a node of a
//! cluster, the relay's series are those of the rooms this node runs (its own clients' and
//! other nodes' clients' connections to them); a client of a room run elsewhere is counted
//! on the room's node, and by the `signaling_cluster_*` series here.
//!
//! | series | type | what |
//! |---|---|---|
//! | `signaling_relay_open_connections` | gauge | TCP connections being served (upgraded or not), at most `max_connections` |
//! | `signaling_relay_max_connections` | gauge | `[websocket] max_connections` |
//! | `signaling_relay_connections` | gauge | WebSocket connections joined to the relay's rooms |
//! | `signaling_relay_peers` | gauge | peers, connected or waiting to resume |
//! | `signaling_relay_rooms` | gauge | rooms |
//! | `signaling_relay_frames_received_total` | counter | frames received from joined connections |
//! | `signaling_relay_frames_forwarded_total` | counter | peers' frames sent on to other peers (one per recipient) |
//! | `signaling_relay_notices_total` | counter | the relay's own messages sent (`relay/welcome`, `relay/joined`, `relay/left`) |
//! | `signaling_relay_frames_refused_total` | counter | frames answered with an `error` frame instead of being forwarded |
//! | `signaling_relay_frames_invalid_total` | counter | of those, `webrtc` frames that failed validation |
//! | `signaling_relay_frames_queued_total` | counter | frames that waited in a mailbox or a resuming peer's queue |
//! | `signaling_relay_frames_expired_total` | counter | frames dropped from a mailbox for their age |
//! | `signaling_relay_candidates_filtered_total` | counter | candidates dropped by the privacy policy |
//! | `signaling_relay_queue_dropped_frames_total` | counter | frames queued for a connection that ended (closed, lost, cut off) before writing them |
//! | `signaling_relay_refused_connections_total{reason}` | counter | connections refused before joining, by reason (below) |
//! | `signaling_relay_limit_closes_total{reason}` | counter | joined connections closed for a broken limit: `too_big` (1009), `rate_limited` (4004), `idle` (4005), `slow_consumer` (4006) |
//!
//! The reasons of `signaling_relay_refused_connections_total`: `bad_request` (4009: no or an
//! invalid room name), `room_full` (4001), `too_many_rooms` (4002), `too_many_peers` (4003),
//! `resume_failed` (4007); the admission checks' `missing_token`, `bad_token` (401),
//! `missing_origin`, `forbidden_origin` (403) and `admission_other`; `malformed_request` (400 or
//! 431 to a request head or an upgrade), `handshake_timeout` (no whole handshake within
//! `handshake_timeout`), `tls_failed` (a TLS handshake that failed), `shutting_down` (503 to
//! an upgrade during the drain) and, on a node of a cluster, `cluster_unavailable` (1013: the
//! room's node could not be reached). The relay refuses nothing for its connection limit:
//! connections over `max_connections` wait in the kernel's backlog (watch
//! `signaling_relay_open_connections` against `signaling_relay_max_connections`).
//!
//! On a node of a cluster there are also `signaling_cluster_nats_connected` (1 or 0),
//! `signaling_cluster_links` and `signaling_cluster_rooms` (gauges), and
//! `signaling_cluster_messages_published_total`, `signaling_cluster_messages_received_total`,
//! `signaling_cluster_frames_sent_total` and `signaling_cluster_retransmitted_total`.
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use signaling::config::InvalidSetting;
use signaling::relay::{
    join_request_from_peer, DriverConfig, RelayHandle, RelayStatus, ShutdownReport,
};
use signaling::transport::{CloseReason, PeerInfo, Transport};
use signaling_core::admission::{
    Admission, AdmissionConfig, AdmissionConfigError, AllowAll, Refusal, RefusalReason,
};
use signaling_core::relay::close_code;
use signaling_core::relay::RelayConfig;
use signaling_nats::{ClusterConfig, ClusterError, ClusterNode, ClusterStats};
use signaling_ws::{accept_request, read_request_head, AcceptError, WsConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::ops::{self, answer_http, Answer, Health, Metrics, Scrape};

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
    /// TLS on the listener (see [`FileConfig::tls_settings`]); plain TCP when absent and no
    /// certificate is given on the command line.
    pub tls: TlsSection,
}

/// The `[tls]` section: both keys or neither (see [`FileConfig::tls_settings`]).
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsSection {
    /// The certificate chain: a PEM file of one or more `CERTIFICATE` blocks, the server's own
    /// first. A relative path is relative to the configuration file's directory.
    pub cert: Option<PathBuf>,
    /// The certificate's private key: a PEM file with a `PRIVATE KEY` (PKCS #8),
    /// `RSA PRIVATE KEY` or `EC PRIVATE KEY` block. Relative like `cert`.
    pub key: Option<PathBuf>,
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
    /// Half of the TLS settings: a certificate without its key, or a key without its
    /// certificate.
    #[error(
        "TLS needs a certificate chain and its private key, and {what} is missing: give \
         {flag} on the command line or set `{key}` in the [tls] section of {}",
        file_name(.path)
    )]
    TlsMissing {
        /// The configuration file, if one was given.
        path: Option<PathBuf>,
        /// What is missing, in words (`"the private key"`).
        what: &'static str,
        /// The command-line flag that gives it (`"--tls-key PATH"`).
        flag: &'static str,
        /// The key of the `[tls]` section that gives it.
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
            | Self::TlsMissing { path, .. }
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
        let mut config = Self::from_toml(&text).map_err(|e| e.in_file(path))?;
        config.validate().map_err(|e| e.in_file(path))?;
        // The file's paths are relative to the file, wherever the relay was started.
        let dir = path.parent().unwrap_or(Path::new(""));
        for file in [&mut config.tls.cert, &mut config.tls.key]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
        Ok(config)
    }

    /// The TLS settings: the `[tls]` section's `cert` and `key` with the command line's
    /// (`--tls-cert`, `--tls-key`) over them. `None` (plain TCP) when neither is given
    /// anywhere; both or neither must be. The files are read by [`TlsFiles::acceptor`].
    pub fn tls_settings(
        &self,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        let cert = cert.map(Path::to_owned).or_else(|| self.tls.cert.clone());
        let key = key.map(Path::to_owned).or_else(|| self.tls.key.clone());
        let missing = |what, flag, key| ConfigError::TlsMissing {
            path: None,
            what,
            flag,
            key,
        };
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (Some(_), None) => Err(missing("the private key", "--tls-key PATH", "key")),
            (None, Some(_)) => Err(missing("the certificate chain", "--tls-cert PATH", "cert")),
        }
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

/// The files of the listener's TLS: a certificate chain and its private key, both PEM (see
/// [`TlsSection`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// These files.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Reads both files and makes the acceptor that [`Server::with_tls`] takes: TLS 1.2 and
    /// 1.3 through rustls with its *ring* provider, the protocol versions and cipher suites
    /// rustls deems safe, and no client certificates.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        use signaling_http::tls::{load_pem, TlsError as Load};
        let config = load_pem(&self.cert, &self.key).map_err(|e| match e {
            Load::Certificates { path, source } => TlsError::Cert {
                path,
                why: pem_in_words(source, "certificate"),
            },
            Load::NoCertificates { path } => TlsError::Cert {
                path,
                why: pem_in_words(rustls::pki_types::pem::Error::NoItemsFound, "certificate"),
            },
            Load::PrivateKey { path, source } => TlsError::Key {
                path,
                why: pem_in_words(source, "private key"),
            },
            other => TlsError::Unusable {
                cert: self.cert.clone(),
                key: self.key.clone(),
                why: other.to_string(),
            },
        })?;
        Ok(TlsAcceptor::from(config))
    }
}

/// A PEM file's fault in words; `item` is what the file should hold (`"certificate"`).
fn pem_in_words(error: rustls::pki_types::pem::Error, item: &str) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(error) => format!("cannot read it: {}", in_words(&error)),
        Error::NoItemsFound => match item {
            "certificate" => "no certificate in it (a PEM `CERTIFICATE` block)".to_owned(),
            _ => "no private key in it (a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or \
                  `EC PRIVATE KEY` block)"
                .to_owned(),
        },
        Error::MissingSectionEnd { end_marker } => format!(
            "a PEM block does not end (no `{}` line)",
            String::from_utf8_lossy(&end_marker)
        ),
        Error::IllegalSectionStart { .. } => {
            "a PEM block's `-----BEGIN` line is malformed".to_owned()
        }
        Error::Base64Decode(why) => format!("a PEM block is not valid base64 ({why})"),
        other => other.to_string(),
    }
}

/// Why the listener's TLS cannot be set up. Its message names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file cannot be read, or holds no certificate.
    #[error("TLS certificate file {}: {why}", .path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        why: String,
    },
    /// The key file cannot be read, or holds no private key.
    #[error("TLS key file {}: {why}", .path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        why: String,
    },
    /// rustls refuses the pair: a key that does not match the certificate, a key of a kind it
    /// cannot sign with, a certificate it cannot parse.
    #[error(
        "TLS certificate file {} and key file {} cannot be used: {why}",
        .cert.display(),
        .key.display()
    )]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' words.
        why: String,
    },
}

/// Connections the `--ops-listen` listener serves at once ([`Server::run_ops`]); more wait in
/// the kernel's backlog.
pub const OPS_CONNECTIONS: usize = 16;

/// The server's own counts of connections refused before they reached the relay (by reason,
/// see the [module docs](self#metrics)); updated on those refusals only.
#[derive(Debug, Default)]
struct Refused {
    missing_room: AtomicU64,
    missing_token: AtomicU64,
    bad_token: AtomicU64,
    missing_origin: AtomicU64,
    forbidden_origin: AtomicU64,
    admission_other: AtomicU64,
    malformed_request: AtomicU64,
    handshake_timeout: AtomicU64,
    tls_failed: AtomicU64,
    shutting_down: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Refused {
    /// Counts a failed request head or upgrade (refusals by admission are counted by
    /// [`Counted`]; plain requests to the WebSocket path and vanished clients are not
    /// refusals).
    fn handshake_failed(&self, error: &AcceptError) {
        match error {
            AcceptError::TimedOut => bump(&self.handshake_timeout),
            AcceptError::HeadTooLarge | AcceptError::Malformed(_) | AcceptError::Protocol(_) => {
                bump(&self.malformed_request)
            }
            _ => {}
        }
    }
}

/// The configured admission checks, counting their refusals by reason.
struct Counted {
    inner: Box<dyn Admission>,
    refused: Arc<Refused>,
}

impl Admission for Counted {
    fn admit(&self, peer: &PeerInfo) -> Result<(), Refusal> {
        let result = self.inner.admit(peer);
        if let Err(refusal) = &result {
            let r = &self.refused;
            bump(match refusal.reason {
                RefusalReason::MissingToken => &r.missing_token,
                RefusalReason::BadToken => &r.bad_token,
                RefusalReason::MissingOrigin => &r.missing_origin,
                RefusalReason::ForbiddenOrigin => &r.forbidden_origin,
                _ => &r.admission_other,
            });
        }
        result
    }
}

/// The relay's series (see the [module docs](self#metrics)), read at scrape time.
fn scrape_relay(
    scrape: &mut Scrape<'_>,
    status: &RelayStatus,
    refused: &Refused,
    cluster: Option<&ClusterStats>,
    open: u64,
    max: u64,
) -> std::fmt::Result {
    let stats = &status.stats;
    scrape.gauge(
        "signaling_relay_open_connections",
        "TCP connections being served, upgraded or not.",
        open,
    )?;
    scrape.gauge(
        "signaling_relay_max_connections",
        "TCP connections served at once, at most ([websocket] max_connections).",
        max,
    )?;
    scrape.gauge(
        "signaling_relay_connections",
        "WebSocket connections joined to the relay's rooms.",
        status.connections as u64,
    )?;
    scrape.gauge(
        "signaling_relay_peers",
        "Peers, connected or waiting to resume.",
        status.peers as u64,
    )?;
    scrape.gauge("signaling_relay_rooms", "Rooms.", status.rooms as u64)?;
    for (name, help, value) in [
        (
            "signaling_relay_frames_received",
            "Frames received from joined connections.",
            stats.received,
        ),
        (
            "signaling_relay_frames_forwarded",
            "Peers' frames sent on to other peers, one per recipient.",
            stats.forwarded,
        ),
        (
            "signaling_relay_notices",
            "The relay's own messages sent (relay/welcome, relay/joined, relay/left).",
            stats.notices,
        ),
        (
            "signaling_relay_frames_refused",
            "Frames answered with an error frame instead of being forwarded.",
            stats.refused,
        ),
        (
            "signaling_relay_frames_invalid",
            "Frames of the webrtc protocol that failed validation (also refused).",
            stats.invalid,
        ),
        (
            "signaling_relay_frames_queued",
            "Frames that waited in a mailbox or a resuming peer's queue.",
            stats.queued,
        ),
        (
            "signaling_relay_frames_expired",
            "Frames dropped from a mailbox for their age.",
            stats.expired,
        ),
        (
            "signaling_relay_candidates_filtered",
            "Candidates dropped by the privacy policy.",
            stats.filtered,
        ),
        (
            "signaling_relay_queue_dropped_frames",
            "Frames queued for a connection that ended before writing them.",
            status.dropped_frames,
        ),
    ] {
        scrape.counter(name, help, value)?;
    }
    let joins = &stats.joins_refused;
    let mut reasons = vec![
        (
            "bad_request",
            joins.bad_request + read(&refused.missing_room),
        ),
        ("room_full", joins.room_full),
        ("too_many_rooms", joins.too_many_rooms),
        ("too_many_peers", joins.too_many_peers),
        ("resume_failed", joins.resume_failed),
        ("missing_token", read(&refused.missing_token)),
        ("bad_token", read(&refused.bad_token)),
        ("missing_origin", read(&refused.missing_origin)),
        ("forbidden_origin", read(&refused.forbidden_origin)),
        ("admission_other", read(&refused.admission_other)),
        ("malformed_request", read(&refused.malformed_request)),
        ("handshake_timeout", read(&refused.handshake_timeout)),
        ("tls_failed", read(&refused.tls_failed)),
        ("shutting_down", read(&refused.shutting_down)),
    ];
    if let Some(cluster) = cluster {
        reasons.push(("cluster_unavailable", cluster.unavailable));
    }
    scrape.counters(
        "signaling_relay_refused_connections",
        "Connections refused before joining a room, by reason.",
        "reason",
        &reasons,
    )?;
    let closes = &stats.closes;
    scrape.counters(
        "signaling_relay_limit_closes",
        "Joined connections closed for a broken limit, by limit.",
        "reason",
        &[
            ("too_big", closes.too_big),
            ("rate_limited", closes.rate_limited),
            ("idle", closes.idle),
            ("slow_consumer", closes.slow_consumer),
        ],
    )
}

/// A cluster node's series (see the [module docs](self#metrics)), read at scrape time.
fn scrape_cluster(
    scrape: &mut Scrape<'_>,
    stats: &ClusterStats,
    connected: bool,
) -> std::fmt::Result {
    scrape.gauge(
        "signaling_cluster_nats_connected",
        "Whether the node's NATS connection is up (1) or down (0).",
        u64::from(connected),
    )?;
    scrape.gauge(
        "signaling_cluster_links",
        "Links open: clients proxied to other nodes, and other nodes' clients here.",
        stats.links as u64,
    )?;
    scrape.gauge(
        "signaling_cluster_rooms",
        "Rooms this node runs for the cluster.",
        stats.rooms as u64,
    )?;
    for (name, help, value) in [
        (
            "signaling_cluster_messages_published",
            "NATS messages published (link messages and heartbeats).",
            stats.published,
        ),
        (
            "signaling_cluster_messages_received",
            "Link messages received.",
            stats.received,
        ),
        (
            "signaling_cluster_frames_sent",
            "Frames sent on links, retransmissions not counted.",
            stats.frames_sent,
        ),
        (
            "signaling_cluster_retransmitted",
            "Items sent again on links (after a loss or a NATS reconnection).",
            stats.retransmitted,
        ),
    ] {
        scrape.counter(name, help, value)?;
    }
    Ok(())
}

/// A relay server, ready to serve connections: one node on its own, or a node of a cluster
/// ([`join_cluster`](Self::join_cluster)), over plain TCP or TLS ([`with_tls`](Self::with_tls)).
pub struct Server {
    relay: RelayHandle,
    cluster: Option<ClusterNode>,
    ws: WsConfig,
    admission: Option<Box<dyn Admission>>,
    slots: Arc<Semaphore>,
    max_connections: usize,
    tls: Option<TlsAcceptor>,
    /// TLS handshakes at once, at most ([`WsConfig::max_handshakes_in_flight`]).
    tls_handshakes: Semaphore,
    refused: Arc<Refused>,
    /// Set when [`shutdown`](Self::shutdown) begins.
    draining: AtomicBool,
    /// Made at the first scrape, once the server is complete (cluster included).
    metrics: OnceLock<Metrics>,
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
        let refused = Arc::new(Refused::default());
        let admission = admission.map(|inner| {
            Box::new(Counted {
                inner,
                refused: refused.clone(),
            }) as Box<dyn Admission>
        });
        let max_connections = config.websocket.max_connections.max(1);
        Ok(Self {
            relay: RelayHandle::new(config.relay, driver),
            cluster: None,
            tls_handshakes: Semaphore::new(ws.max_handshakes_in_flight.max(1)),
            ws,
            admission,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            tls: None,
            refused,
            draining: AtomicBool::new(false),
            metrics: OnceLock::new(),
        })
    }

    /// Serves TLS (`https://`, `wss://`) with this acceptor (see [`TlsFiles::acceptor`]) in
    /// place of plain TCP. The TLS handshake counts as part of the WebSocket handshake: it
    /// holds the connection's place under `max_connections`, at most
    /// [`WsConfig::max_handshakes_in_flight`] run at once, and the whole of TLS, request head
    /// and upgrade must be done within `handshake_timeout`.
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// Whether the server serves TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// What the server says of its health at `/healthz` and `/readyz` (see
    /// [`ops`](crate::ops#health)): [`Health::ShuttingDown`] once [`shutdown`](Self::shutdown)
    /// has begun; on a node of a cluster whose NATS connection is down,
    /// [`Health::Degraded`] (it still runs its own rooms, and refuses joins of others' with
    /// 1013); otherwise [`Health::Serving`].
    pub fn health(&self) -> Health {
        if self.draining.load(Ordering::Relaxed) {
            Health::ShuttingDown
        } else if self.cluster.as_ref().is_some_and(|c| !c.nats_connected()) {
            Health::Degraded("NATS connection down")
        } else {
            Health::Serving
        }
    }

    /// The server's metrics (see the [module docs](self#metrics)), read from the relay at each
    /// [`render`](Metrics::render).
    pub fn metrics(&self) -> &Metrics {
        self.metrics.get_or_init(|| {
            let mut metrics = Metrics::new();
            let relay = self.relay.clone();
            let cluster = self.cluster.clone();
            let refused = self.refused.clone();
            let slots = self.slots.clone();
            let max = self.max_connections;
            metrics.collect("relay", move |scrape| {
                let open = max.saturating_sub(slots.available_permits());
                let stats = cluster.as_ref().map(ClusterNode::stats);
                scrape_relay(
                    scrape,
                    &relay.status(),
                    &refused,
                    stats.as_ref(),
                    open as u64,
                    max as u64,
                )?;
                match (&cluster, &stats) {
                    (Some(node), Some(stats)) => {
                        scrape_cluster(scrape, stats, node.nats_connected())
                    }
                    _ => Ok(()),
                }
            });
            metrics
        })
    }

    /// WebSocket upgrades answered with 503 because the server was shutting down.
    pub fn refused_while_shutting_down(&self) -> u64 {
        read(&self.refused.shutting_down)
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
    /// Keep it running during the shutdown, so that load balancers and clients hear 503 (see
    /// [`health`](Self::health)) rather than find the port closed.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let permit = match self.slots.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let (stream, addr) = accept(&listener).await;
            let server = self.clone();
            tokio::spawn(async move {
                let served = match &server.tls {
                    None => server.serve(stream, addr).await,
                    Some(tls) => server.serve_tls(stream, addr, tls).await,
                };
                if let Err(e) = served {
                    tracing::debug!(%addr, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
    }

    /// Accepts and serves operators' requests on `listener` (plain HTTP, whatever the main
    /// listener speaks): `GET /healthz`, `/readyz` and `/metrics`, and 404 for anything
    /// else. These connections do not count against `max_connections` (at most
    /// [`OPS_CONNECTIONS`] are served at once), so health checks and scrapes are answered
    /// while the relay is full, and during the shutdown. Runs until the task is dropped.
    pub async fn run_ops(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        let slots = Arc::new(Semaphore::new(OPS_CONNECTIONS));
        loop {
            let permit = match slots.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let (mut stream, addr) = accept(&listener).await;
            let server = self.clone();
            tokio::spawn(async move {
                let head = match read_request_head(&mut stream, &server.ws).await {
                    Ok(head) => head,
                    Err(e) => {
                        tracing::debug!(%addr, error = %e, "operator's request refused or failed");
                        return;
                    }
                };
                let answer = ops::answer(
                    head.method(),
                    head.path(),
                    server.health(),
                    server.metrics(),
                )
                .unwrap_or_else(|| Answer::text("404 Not Found", "not found\n"));
                if let Err(e) = answer_http(stream, head.deadline(), &answer).await {
                    tracing::debug!(%addr, error = %e, "answering an operator's request failed");
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
        self.draining.store(true, Ordering::Relaxed);
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
    /// request, 503 during the shutdown), the demo page, `/healthz`, `/readyz` and `/metrics`
    /// (see [`crate::ops::answer`]), or 404. Everything up to the upgrade, or up to the plain
    /// answer, is bounded by the handshake deadline (`[websocket] handshake_timeout`).
    pub async fn serve(&self, stream: TcpStream, addr: SocketAddr) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        self.serve_stream(stream, addr, &self.ws).await
    }

    /// [`serve`](Self::serve) after a TLS handshake, all within the handshake deadline.
    async fn serve_tls(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        tls: &TlsAcceptor,
    ) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let deadline = Instant::now() + self.ws.handshake_timeout;
        let handshake = async {
            // Closed never: the semaphore is the server's own.
            let _place = self.tls_handshakes.acquire().await;
            tls.accept(stream).into_fallible().await
        };
        let stream = match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err((e, stream))) => {
                // Counted before the client sees the connection end.
                bump(&self.refused.tls_failed);
                drop(stream);
                tracing::debug!(%addr, error = %e, "TLS handshake failed");
                return Ok(());
            }
            Err(_) => {
                bump(&self.refused.handshake_timeout);
                tracing::debug!(%addr, "TLS handshake timed out");
                return Ok(());
            }
        };
        // The request head and the upgrade get what is left of the handshake's time.
        let mut ws = self.ws.clone();
        ws.handshake_timeout = deadline.saturating_duration_since(Instant::now());
        self.serve_stream(stream, addr, &ws).await
    }

    /// Serves a connection over `stream` (plain TCP or TLS) with the handshake settings `ws`.
    async fn serve_stream<S>(
        &self,
        mut stream: S,
        addr: SocketAddr,
        ws: &WsConfig,
    ) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let head = match Box::pin(read_request_head(&mut stream, ws)).await {
            Ok(head) => head,
            Err(e) => {
                self.refused.handshake_failed(&e);
                tracing::debug!(%addr, error = %e, "request refused or failed");
                return Ok(());
            }
        };
        if head.path() == "/ws" {
            if self.draining.load(Ordering::Relaxed) {
                bump(&self.refused.shutting_down);
                let answer = Answer::text("503 Service Unavailable", "shutting down\n");
                return answer_http(stream, head.deadline(), &answer).await;
            }
            let admission: &dyn Admission = match &self.admission {
                Some(a) => a.as_ref(),
                None => &AllowAll,
            };
            // Boxed: the handshake's state is large and short-lived; inline, it would stay in
            // the task's allocation for the connection's whole life.
            let handshake = Box::pin(accept_request(stream, head, Some(addr), ws, admission));
            let mut conn = match handshake.await {
                Ok(conn) => conn,
                Err(e) => {
                    self.refused.handshake_failed(&e);
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
                    bump(&self.refused.missing_room);
                    let reason = CloseReason::new(close_code::BAD_REQUEST, "missing ?room=NAME");
                    let _ = conn.close(reason).await;
                }
            }
            return Ok(());
        }
        let answer = match (head.method(), head.path()) {
            ("GET", "/" | "/index.html") => Answer {
                status: "200 OK",
                content_type: "text/html; charset=utf-8",
                body: PAGE.into(),
            },
            (method, path) => ops::answer(method, path, self.health(), self.metrics())
                .unwrap_or_else(|| Answer::text("404 Not Found", "not found\n")),
        };
        answer_http(stream, head.deadline(), &answer).await
    }
}

/// The least time a shutdown gives the clients of rooms run by other nodes to go away (see
/// [`Server::shutdown`]), even when the relay's own drain took all of its time.
pub const EDGE_DRAIN_MIN: Duration = Duration::from_secs(1);

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
    fn tls_settings_come_from_the_file_and_the_flags_both_or_neither() {
        let none = FileConfig::default();
        assert_eq!(none.tls_settings(None, None).expect("valid"), None);
        let file =
            FileConfig::from_toml("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").expect("parses");
        assert_eq!(
            file.tls_settings(None, None).expect("valid"),
            Some(TlsFiles::new("c.pem", "k.pem"))
        );
        // The flag wins over the file's key, the file gives the other.
        assert_eq!(
            file.tls_settings(Some(Path::new("/etc/c2.pem")), None)
                .expect("valid"),
            Some(TlsFiles::new("/etc/c2.pem", "k.pem"))
        );
        let error = none
            .tls_settings(None, Some(Path::new("k.pem")))
            .expect_err("a key without its certificate");
        assert!(
            matches!(error, ConfigError::TlsMissing { key: "cert", .. }),
            "{error}"
        );
        let half = FileConfig::from_toml("[tls]\ncert = \"c.pem\"\n").expect("parses");
        let error = half
            .tls_settings(None, None)
            .expect_err("a certificate without its key")
            .in_file(Path::new("relay.toml"));
        assert_eq!(
            error.to_string(),
            "TLS needs a certificate chain and its private key, and the private key is \
             missing: give --tls-key PATH on the command line or set `key` in the [tls] \
             section of the configuration file (relay.toml)"
        );
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
