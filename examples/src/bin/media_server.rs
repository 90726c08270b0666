//! A go2rtc-compatible media server: browsers publish their camera into a named stream and
//! watch streams by name over `ws://ADDR/api/ws?src=NAME` / `?dst=NAME`; str0m forwards the
//! media (no transcoding). A demo page is at `/`.
//!
//! ```text
//! cargo run --release -p examples --bin media_server -- [--listen 127.0.0.1:8081] [--rtc-ip 127.0.0.1]
//! ```
//!
//! See `examples::media_server` for the protocol, the error frames and close codes. Logs go to
//! stderr (`RUST_LOG=debug` for more).
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use examples::media_server::{MediaConfig, MediaServer};
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging("info");
    let args = Args::parse();
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
    let server = Arc::new(MediaServer::new(config));
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(
        "media server listening on http://{} (demo page at /, WebSocket at /api/ws?src=NAME&dst=NAME, WHIP at /whip/NAME, WHEP at /whep/NAME; media on {})",
        listener.local_addr()?,
        args.rtc_ip
    );
    server.run(listener).await;
    Ok(())
}
