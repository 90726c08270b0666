//! The signaling relay: WebSocket at `ws://ADDR/ws?room=NAME`, and at `/` a demo page that runs
//! the seed client's logic against it (open it in two tabs with the same room for a video call).
//!
//! ```text
//! cargo run --release -p examples --bin relay -- [--listen 127.0.0.1:8080] [--config relay.toml]
//! ```
//!
//! Everything but the listen address comes from the configuration file (see
//! `examples/relay.toml`); without one, the embedded defaults apply. Logs go to stderr
//! (`RUST_LOG=debug` for more).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use examples::relay_server::{FileConfig, Server};
use tokio::net::TcpListener;

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "WebRTC signaling relay with a demo page")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Configuration file (TOML); the embedded defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_logging("info");
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => FileConfig::from_toml(&std::fs::read_to_string(path)?)?,
        None => FileConfig::default(),
    };
    let server = Arc::new(Server::new(config)?);
    let listener = TcpListener::bind(args.listen).await?;
    tracing::info!(
        "relay listening on http://{} (demo page at /, WebSocket at /ws?room=NAME)",
        listener.local_addr()?
    );
    server.run(listener).await?;
    Ok(())
}
