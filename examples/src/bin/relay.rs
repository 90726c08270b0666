//! The signaling relay: WebSocket at `ws://ADDR/ws?room=NAME`, and at `/` a demo page that runs
//! the seed client's logic against it (open it in two tabs with the same room for a video call).
//!
//! ```text
//! cargo run --release -p examples --bin relay -- [--listen 127.0.0.1:8080] [--config relay.toml]
//!     [--drain-timeout 5] [--nats nats://HOST:PORT --node NAME]
//!     [--tls-cert cert.pem --tls-key key.pem] [--ops-listen 127.0.0.1:9090]
//! ```
//!
//! Everything but the listen addresses, the drain time, the cluster's NATS server and node name
//! and the TLS files comes from the configuration file (see `examples/relay.toml`); without one,
//! the embedded defaults apply. Logs go to stderr (`RUST_LOG=debug` for more).
//!
//! # TLS
//!
//! With `--tls-cert PATH --tls-key PATH` (or `cert` and `key` in the file's `[tls]` section;
//! the flags win), the listener speaks TLS only: the demo page is at `https://ADDR/` and the
//! WebSocket at `wss://ADDR/ws?room=NAME`. The certificate file is a PEM chain (the server's
//! certificate first), the key file a PEM private key (PKCS #8, PKCS #1 or SEC 1). The TLS
//! handshake is part of the WebSocket handshake: it counts against `max_connections` and
//! `handshake_timeout`. A client that does not speak TLS is disconnected.
//!
//! # Health and metrics
//!
//! `GET /healthz` (liveness) answers 200 `ok` while the relay runs and 503 once a shutdown has
//! begun; `GET /readyz` (readiness) answers 200 `ready`, and 503 during a shutdown and, on a
//! node of a cluster, while its NATS connection is down (the node still serves its own rooms,
//! so `/healthz` stays 200 then, with the body `degraded: NATS connection down`). `GET /metrics`
//! answers in the Prometheus text format (the series are listed in the `relay_server` module's
//! documentation). All three are on the main listener, where they share `max_connections` with
//! everyone, and, with `--ops-listen ADDR`, on a listener of their own (plain HTTP: bind it to
//! an internal address) that answers them whatever the main listener's load: point liveness
//! probes and the Prometheus scraper there.
//!
//! # A cluster of relays
//!
//! With `--nats nats://HOST:PORT --node NAME` (or `nats` and `node` in the file's `[cluster]`
//! section; the flags win), the relay is a node of a cluster: relays started with the same NATS
//! server (with JetStream enabled) share their rooms, so the two peers of a call may connect to
//! different nodes, and a peer may resume on another node than the one it lost. Each node needs
//! a name of its own (1 to 64 of `A-Z a-z 0-9 - _`). The `[cluster]` section's other keys (its
//! timings) are in `examples/relay.toml`; the design and its guarantees are in the
//! `signaling_nats` crate's documentation. The node logs its name and NATS server at start.
//! Without `--nats` and without a `[cluster]` section, the relay is one node on its own.
//!
//! On SIGTERM or SIGINT the relay shuts down gracefully: it stops taking peers (new WebSocket
//! upgrades, `/healthz` and `/readyz` are answered with 503, so that load balancers turn away),
//! writes out what is queued for each connected peer and closes it with 1001 (going away),
//! waiting at most `--drain-timeout` seconds, logs what it did and exits with status 0. A node of a cluster
//! does so for the rooms it runs, then closes its clients of rooms run by other nodes with 1001
//! too (after what reached it for them; the rooms' nodes keep their places for the resume grace,
//! so they may resume on another node), then leaves the cluster, telling the other nodes at once.
//! A second signal during the drain exits at once, with status 1.
//!
//! Exit status: 0 after a shutdown on a signal; 1 when the server cannot run (the address cannot
//! be listened on, the NATS server cannot be reached, a TLS file cannot be read or used: the
//! message names the file); 2 for an invalid command line or configuration (the message names
//! the file, and the line and column or the section and key; or the flag), including a NATS
//! server without a node name and a TLS certificate without its key (or the other way round).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use examples::ops::Signals;
use examples::relay_server::{in_words, FileConfig, Server, TlsFiles};
use signaling_nats::ClusterError;
use tokio::net::TcpListener;

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "WebRTC signaling relay with a demo page")]
struct Args {
    /// Address to listen on (port 0: any free port, logged at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Configuration file (TOML); the embedded defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seconds a shutdown (SIGTERM, SIGINT) waits for each connection to receive what is
    /// queued for it and close; connections not done by then are cut off.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = examples::ops::positive_seconds)]
    drain_timeout: Duration,
    /// Run as a node of a cluster that shares its rooms through this NATS server (JetStream
    /// enabled); overrides `nats` in the `[cluster]` section.
    #[arg(long, value_name = "nats://HOST:PORT")]
    nats: Option<String>,
    /// This node's name in the cluster (unique, 1 to 64 of A-Z a-z 0-9 - _); overrides `node`
    /// in the `[cluster]` section.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key. Overrides `cert` in the
    /// `[tls]` section.
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert's certificate. Overrides `key` in the `[tls]`
    /// section.
    #[arg(long, value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Also answer /healthz, /readyz and /metrics (plain HTTP) on this address, outside the
    /// main listener's connection limit.
    #[arg(long, value_name = "ADDR")]
    ops_listen: Option<SocketAddr>,
}

/// Why the relay stopped without a shutdown: the message for the log, and the exit status.
struct Fatal {
    message: String,
    status: u8,
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_logging("info");
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            tracing::error!("{}", fatal.message);
            ExitCode::from(fatal.status)
        }
    }
}

/// Why the node could not join its cluster, as a [`Fatal`]: status 1 when the NATS server cannot
/// be reached or used, 2 for a setting (already refused, normally, by `cluster_settings`).
fn cluster_failed(error: ClusterError) -> Fatal {
    let status = match error {
        ClusterError::Config(..) => 2,
        _ => 1,
    };
    let message = match error {
        ClusterError::Connect(url, why) => {
            // `IO error: Connection refused (os error 111)`: keep the words.
            let why = why.split(" (os error").next().unwrap_or_default();
            format!(
                "cannot connect to NATS at {url}: {why} (is nats-server running there, and is \
                 the address right?)"
            )
        }
        other => other.to_string(),
    };
    Fatal { message, status }
}

async fn run(args: Args) -> Result<(), Fatal> {
    let config = match &args.config {
        Some(path) => FileConfig::load(path),
        None => Ok(FileConfig::default()),
    };
    let (server, cluster, tls) = config
        .and_then(|config| {
            let in_file = |e: examples::relay_server::ConfigError| match &args.config {
                Some(path) => e.in_file(path),
                None => e,
            };
            let cluster = config
                .cluster_settings(args.nats.as_deref(), args.node.as_deref())
                .map_err(in_file)?;
            let tls = config
                .tls_settings(args.tls_cert.as_deref(), args.tls_key.as_deref())
                .map_err(in_file)?;
            Ok((Server::new(config)?, cluster, tls))
        })
        .map_err(|e| Fatal {
            message: e.to_string(),
            status: 2,
        })?;
    let server = match tls.as_ref().map(TlsFiles::acceptor) {
        Some(Ok(acceptor)) => server.with_tls(acceptor),
        Some(Err(e)) => {
            return Err(Fatal {
                message: e.to_string(),
                status: 1,
            })
        }
        None => server,
    };
    let server = match cluster {
        Some(cluster) => {
            let (node, nats) = (cluster.node.clone(), cluster.nats.clone());
            let server = server.join_cluster(cluster).await.map_err(cluster_failed)?;
            tracing::info!(
                "cluster node {node}: connected to NATS at {nats}; rooms are shared with the \
                 cluster's other nodes"
            );
            server
        }
        None => server,
    };
    let server = Arc::new(server);
    // Installed before the listener exists: a signal that arrives once clients can connect
    // always shuts down gracefully.
    let mut signals = Signals::install().map_err(|e| Fatal {
        message: format!("cannot install the signal handlers: {}", in_words(&e)),
        status: 1,
    })?;
    let cannot_listen = |e: std::io::Error| Fatal {
        message: format!("cannot listen on {}: {}", args.listen, in_words(&e)),
        status: 1,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(cannot_listen)?;
    let local = listener.local_addr().map_err(cannot_listen)?;
    let ops = match args.ops_listen {
        Some(addr) => {
            let cannot_listen = |e: std::io::Error| Fatal {
                message: format!("cannot listen on {addr} (--ops-listen): {}", in_words(&e)),
                status: 1,
            };
            let listener = TcpListener::bind(addr).await.map_err(cannot_listen)?;
            let local = listener.local_addr().map_err(cannot_listen)?;
            tracing::info!("operators' endpoints on http://{local} (/healthz, /readyz, /metrics)");
            Some(tokio::spawn(server.clone().run_ops(listener)))
        }
        None => None,
    };
    let (http, ws) = if server.is_tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    tracing::info!(
        "relay listening on {http}://{local} (demo page at /, WebSocket at \
         {ws}://{local}/ws?room=NAME, /healthz, /readyz, /metrics)"
    );

    let mut accepting = tokio::spawn(server.clone().run(listener));
    let stopped = |result: Result<std::io::Result<()>, tokio::task::JoinError>| {
        // `run` ends only if the listener stops working.
        let error = match result {
            Ok(Err(error)) => error,
            _ => std::io::ErrorKind::Other.into(),
        };
        Fatal {
            message: format!("stopped accepting on {local}: {}", in_words(&error)),
            status: 1,
        }
    };
    let name = tokio::select! {
        result = &mut accepting => return Err(stopped(result)),
        name = signals.next() => name,
    };
    // The listener stays open during the drain: new WebSocket upgrades and health checks are
    // answered with 503, so that load balancers see the shutdown rather than a closed port.
    let connections = server.relay().status().connections;
    tracing::info!(
        "{name} received: shutting down; taking no new peers (503), closing {connections} \
         connections with 1001 (going away) within {:?}",
        args.drain_timeout
    );
    let report = tokio::select! {
        report = server.shutdown(args.drain_timeout) => report,
        second = signals.next() => {
            return Err(Fatal {
                message: format!("{second} received during the shutdown: exiting without waiting for the drain"),
                status: 1,
            });
        }
    };
    accepting.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    let refused = report.refused as u64 + server.refused_while_shutting_down();
    let summary = format!(
        "shutdown complete: {} of {} connections closed with 1001 after everything queued was \
         delivered, {} cut off, {} queued frames dropped, {refused} connections arriving during \
         the shutdown refused",
        report.closed, report.connections, report.cut, report.dropped_frames
    );
    if report.cut > 0 || report.dropped_frames > 0 || report.unfinished > 0 {
        tracing::warn!("{summary} ({} still ending)", report.unfinished);
    } else {
        tracing::info!("{summary}");
    }
    Ok(())
}
