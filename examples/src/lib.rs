//! Runnable examples, binaries and cross-crate tests for the signaling crates.
//!
//! - [`relay_server`]: the server behind the `relay` binary.

pub mod relay_server;
