//! Publishes a synthetic VP8 video track to a WHIP endpoint (RFC 9725) from Rust: a str0m
//! peer signalled by `signaling_http::whip_client`. It trickles its host candidate after the
//! `201`, sends frames until Ctrl-C, then `DELETE`s the session.
//!
//! ```text
//! cargo run -p examples --bin media_server &   # WHIP at /whip/NAME on 127.0.0.1:8081
//! cargo run -p examples --bin whip_publish -- http://127.0.0.1:8081/whip/cam
//! ```
use std::net::IpAddr;
use std::process::ExitCode;

use clap::Parser;
use examples::whip_publish::Publisher;
use signaling_http::whip_client::{WhipClient, WhipClientConfig};

/// Publishes a synthetic video track to a WHIP endpoint.
#[derive(Parser, Debug)]
struct Args {
    /// The WHIP endpoint URL.
    url: String,
    /// A bearer token for the endpoint.
    #[arg(long)]
    token: Option<String>,
    /// The local address of the UDP socket (the only ICE candidate).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_logging("info");
    let args = Args::parse();
    let config = WhipClientConfig::default().with_bearer_token(args.token);
    let client = match WhipClient::new(config) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client");
            return ExitCode::FAILURE;
        }
    };
    let publisher = match Publisher::start(&client, &args.url, args.bind).await {
        Ok(publisher) => publisher,
        Err(e) => {
            tracing::error!(error = %e, "could not publish");
            return ExitCode::FAILURE;
        }
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match publisher.run(stop).await {
        Ok(report) => {
            tracing::info!(?report, "done");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "publishing failed");
            ExitCode::FAILURE
        }
    }
}
