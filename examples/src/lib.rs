//! Runnable examples, binaries and cross-crate tests for the signaling crates.
//!
//! - [`relay_server`]: the server behind the `relay` binary.
//! - [`media_server`]: the go2rtc-compatible media server behind the `media_server` binary.
//! - [`peers`]: Rust peers on webrtc-rs and str0m, behind the `rust_peers` binary.
//! - [`load`]: what the load generators share.
//! - [`ops`]: metrics and health answers for operators, shared by the servers.
//! - [`whip_publish`]: a Rust WHIP publisher on str0m, behind the `whip_publish` binary.

pub mod load;
pub mod media_server;
pub mod ops;
pub mod peers;
pub mod relay_server;
pub mod whip_publish;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` or else `default` (e.g. `info`),
/// in colour when stderr is a terminal: what the binaries share.
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
