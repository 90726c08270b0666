//! The signaling relay: WebSocket at `ws://ADDR/ws?room=NAME`, and at `/` a demo page that runs
//! the seed client's logic against it (open it in two tabs with the same room for a video call).
//!
//! ```text
//! cargo run --release -p examples --bin relay -- [--listen 127.0.0.1:8080] [--config relay.toml]
//!     [--drain-timeout 5]
//! ```
//!
//! Everything but the listen address and the drain time comes from the configuration file (see
//! `examples/relay.toml`); without one, the embedded defaults apply. Logs go to stderr
//! (`RUST_LOG=debug` for more).
//!
//! On SIGTERM or SIGINT the relay shuts down gracefully: it stops accepting connections, writes
//! out what is queued for each connected peer and closes it with 1001 (going away), waiting at
//! most `--drain-timeout` seconds, logs what it did and exits with status 0. A second signal
//! during the drain exits at once, with status 1.
//!
//! Exit status: 0 after a shutdown on a signal; 1 when the server cannot run (the address cannot
//! be listened on); 2 for an invalid command line or configuration (the message names the file,
//! and the line and column or the section and key).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use examples::relay_server::{in_words, FileConfig, Server};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

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
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = drain_seconds)]
    drain_timeout: Duration,
}

fn drain_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| "not a number of seconds".to_owned())?;
    match Duration::try_from_secs_f64(secs) {
        Ok(drain) if !drain.is_zero() => Ok(drain),
        _ => Err("must be a number of seconds greater than 0".to_owned()),
    }
}

/// Why the relay stopped without a shutdown: the message for the log, and the exit status.
struct Fatal {
    message: String,
    status: u8,
}

/// The signals that shut the relay down.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The name of the next signal.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
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

async fn run(args: Args) -> Result<(), Fatal> {
    let config = match &args.config {
        Some(path) => FileConfig::load(path),
        None => Ok(FileConfig::default()),
    };
    let server = config.and_then(Server::new).map_err(|e| Fatal {
        message: e.to_string(),
        status: 2,
    })?;
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
    tracing::info!(
        "relay listening on http://{local} (demo page at /, WebSocket at /ws?room=NAME)"
    );

    let name = tokio::select! {
        result = server.clone().run(listener) => {
            // `run` ends only if the listener stops working.
            let error = result.err().unwrap_or_else(|| std::io::ErrorKind::Other.into());
            return Err(Fatal {
                message: format!("stopped accepting on {local}: {}", in_words(&error)),
                status: 1,
            });
        }
        name = signals.next() => name,
    };
    // The accept loop is dropped with the `select!`: no new connections from here on.
    let connections = server.relay().status().connections;
    tracing::info!(
        "{name} received: shutting down; stopped accepting, closing {connections} connections \
         with 1001 (going away) within {:?}",
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
    let summary = format!(
        "shutdown complete: {} of {} connections closed with 1001 after everything queued was \
         delivered, {} cut off, {} queued frames dropped, {} connections arriving during the \
         shutdown refused",
        report.closed, report.connections, report.cut, report.dropped_frames, report.refused
    );
    if report.cut > 0 || report.dropped_frames > 0 || report.unfinished > 0 {
        tracing::warn!("{summary} ({} still ending)", report.unfinished);
    } else {
        tracing::info!("{summary}");
    }
    Ok(())
}
