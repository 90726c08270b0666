//! An axum app with the signaling relay mounted beside its own routes.
//!
//! ```text
//! cargo run -p signaling-http --example axum_app -- --listen 127.0.0.1:8080
//! cargo run -p signaling-http --example axum_app -- --listen 127.0.0.1:8443 \
//!     --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! `GET /hello` answers text; `/ws?room=NAME` is the relay (the seed client connects there).
//! Ctrl-C stops accepting, then closes the relay's connections with 1001.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use clap::Parser;
use signaling::relay::{DriverConfig, RelayConfig, RelayHandle};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PEM certificate chain; serves HTTPS with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(signaling_http::tls::load_pem(cert, key)?),
        _ => None,
    };

    let relay = RelayHandle::new(RelayConfig::default(), DriverConfig::default());
    let app = Router::new()
        .route("/hello", get(|| async { "hello from your own route\n" }))
        .route("/ws", signaling_http::relay::route(relay.clone()));
    // WHIP and WHEP mount the same way, with a media stack answering their offers:
    // `.nest("/whip", whip.router())` for a `signaling_http::whip::WhipEndpoint` (the
    // `media_server` example does it with str0m).

    let listener = TcpListener::bind(args.listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("serving {scheme}://{}", listener.local_addr()?);
    signaling_http::tls::serve(listener, app, tls)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    let report = relay.shutdown(Duration::from_secs(5)).await;
    tracing::info!(?report, "relay stopped");
    Ok(())
}
