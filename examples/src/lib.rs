//! Runnable examples, binaries and cross-crate tests for the signaling crates.
//!
//! - [`relay_server`]: the server behind the `relay` binary.
//! - [`media_server`]: the go2rtc-compatible media server behind the `media_server` binary.

pub mod media_server;
pub mod relay_server;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
