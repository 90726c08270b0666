//! Runnable examples, binaries and cross-crate tests for the signaling crates.
//!
//! - [`relay_server`]: the server behind the `relay` binary.
//! - [`media_server`]: the go2rtc-compatible media server behind the `media_server` binary.
//! - [`peers`]: Rust peers on webrtc-rs and str0m, behind the `rust_peers` binary.

pub mod media_server;
pub mod peers;
pub mod relay_server;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
