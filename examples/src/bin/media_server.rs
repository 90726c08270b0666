//! A go2rtc-compatible media server: browsers publish their camera into a named stream and
//! watch streams by name over `ws://ADDR/api/ws?src=NAME` / `?dst=NAME`, WHIP clients publish at
//! `/whip/NAME` and WHEP players watch at `/whep/NAME`; str0m forwards the media (no
//! transcoding). A demo page is at `/`, and `/healthz`, `/readyz` and `/metrics` for operators.
//!
//! ```text
//! cargo run --release -p examples --bin media_server -- [--listen 127.0.0.1:8081] [--rtc-ip 127.0.0.1] \
//!     [--tls-cert cert.pem --tls-key key.pem]
//! ```
//!
//! See `examples::media_server` for the routes, the error frames, close codes and status codes,
//! and the metrics. Logs go to stderr (`RUST_LOG=debug` for more).
//!
//! On `SIGTERM` or `SIGINT` the server shuts down: health checks, new WebSocket connections and
//! WHIP/WHEP offers get `503`, WebSocket clients are closed with 1001 (going away) and WHIP/WHEP
//! sessions end, waiting at most `--drain-timeout` seconds (default 5); it logs what it did and
//! exits with status 0. A second signal during the shutdown exits at once, with status 1.
//! Status 1 also when the server cannot run (the address cannot be listened on, unusable TLS
//! files), 2 for a bad command line.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use examples::media_server::{MediaConfig, MediaServer, RefusedFor};
use examples::ops::Signals;
use examples::relay_server::in_words;
use tokio::net::TcpListener;

/// Command line. Every bound of the server is a flag; the defaults are documented on each.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "go2rtc-compatible WebRTC media server (str0m) with a demo page"
)]
struct Args {
    /// Address to listen on (HTTP and WebSocket).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// PEM certificate chain (leaf first): serves HTTPS and WSS, with --tls-key.
    #[arg(long, requires = "tls_key", value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS #8, PKCS #1 or SEC1) of the certificate.
    #[arg(long, requires = "tls_cert", value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Address for media: the UDP sockets bind to it and it is the only ICE candidate offered.
    /// Must be a concrete address (not 0.0.0.0) that the browsers can reach.
    #[arg(long, default_value = "127.0.0.1")]
    rtc_ip: IpAddr,
    /// Media connections at once: WebSocket clients and WHIP/WHEP sessions together; more are
    /// refused (WebSocket close code 1013, WHIP/WHEP 503 + Retry-After).
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// HTTP connections at once (page, API requests, WebSocket upgrades not yet done); at the
    /// bound the server stops accepting until one ends.
    #[arg(long, default_value_t = 1024)]
    max_http_connections: usize,
    /// Streams (names with a publisher or a viewer) at once; more are refused (close code 4011,
    /// WHIP/WHEP 503).
    #[arg(long, default_value_t = 64)]
    max_streams: usize,
    /// Viewers of one stream at once; more are refused (close code 4012, WHEP 503).
    #[arg(long, default_value_t = 32)]
    max_viewers: usize,
    /// Media frames queued per viewer; a slow viewer misses frames beyond it (the publisher
    /// never waits).
    #[arg(long, default_value_t = 128)]
    media_queue: usize,
    /// Seconds a WHIP/WHEP session's ICE connection may be down (before it first comes up,
    /// lost, or restarting) before the session ends.
    #[arg(long, default_value_t = 30.0)]
    ice_timeout: f64,
    /// Seconds the shutdown on SIGTERM or SIGINT waits for media connections to end.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = examples::ops::positive_seconds)]
    drain_timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_logging("info");
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a signal and shuts down; `Err` with what to log (exit status 1) when the server
/// cannot run or a second signal cuts the shutdown short.
async fn run(args: Args) -> Result<(), String> {
    if args.rtc_ip.is_unspecified() {
        return Err("--rtc-ip must be a concrete address, not the unspecified one".into());
    }
    let ice_timeout = Duration::try_from_secs_f64(args.ice_timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or("--ice-timeout must be a positive number of seconds")?;
    let mut config = MediaConfig::default()
        .with_rtc_ip(args.rtc_ip)
        .with_limits(
            args.max_connections,
            args.max_streams,
            args.max_viewers,
            args.media_queue,
        )
        .with_ice_timeout(ice_timeout);
    config.serve.max_connections = args.max_http_connections;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(signaling_http::tls::load_pem(cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Installed before the listener exists: a signal that arrives once clients can connect
    // always shuts down gracefully.
    let mut signals = Signals::install()
        .map_err(|e| format!("cannot install the signal handlers: {}", in_words(&e)))?;
    let server = Arc::new(MediaServer::new(config));
    let cannot_listen =
        |e: std::io::Error| format!("cannot listen on {}: {}", args.listen, in_words(&e));
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(cannot_listen)?;
    let local = listener.local_addr().map_err(cannot_listen)?;
    tracing::info!(
        "media server listening on {scheme}://{local} (demo page at /, WebSocket at /api/ws?src=NAME&dst=NAME, WHIP at /whip/NAME, WHEP at /whep/NAME, /healthz, /readyz, /metrics; media on {})",
        args.rtc_ip
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(server.clone().run_until(listener, tls, async {
        let _ = stopped.await;
    }));
    let name = tokio::select! {
        _ = &mut serving => return Err(format!("stopped serving on {local}")),
        name = signals.next() => name,
    };
    let connections = server.stats().connections;
    tracing::info!(
        "{name} received: shutting down; taking no new connections (503), ending {connections} \
         media connections (WebSocket clients closed with 1001) within {:?}",
        args.drain_timeout
    );
    let shutdown = async {
        let report = server.shutdown(args.drain_timeout).await;
        let _ = stop.send(());
        let served = serving.await.unwrap_or_default();
        (report, served)
    };
    let (report, served) = tokio::select! {
        done = shutdown => done,
        second = signals.next() => {
            return Err(format!("{second} received during the shutdown: exiting without waiting for the drain"));
        }
    };
    let summary = format!(
        "shutdown complete: {} of {} media connections ended, {} refused during the shutdown; \
         {} HTTP connections open at the end, {} of them cut",
        report.closed,
        report.connections,
        server.stats().refused_for(RefusedFor::ShuttingDown),
        served.connections,
        served.cut
    );
    if report.unfinished > 0 || served.cut > 0 {
        tracing::warn!(
            "{summary} ({} media connections still ending)",
            report.unfinished
        );
    } else {
        tracing::info!("{summary}");
    }
    Ok(())
}
