//! Runnable examples, binaries and cross-crate tests for the signaling crates.
//!
//! - [`relay_server`]: the server behind the `relay` binary.

pub mod relay_server;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
