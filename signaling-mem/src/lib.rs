//! In-memory signaling transport and a deterministic, fault-injecting simulated network.
//!
//! Two halves, for two kinds of test:
//!
//! - [`pair`] and [`Hub`]: in-memory duplex connections implementing
//!   [`signaling::transport::Transport`], with bounded queues (backpressure, never unbounded
//!   growth). Use them from tokio tests, or to put an in-process peer in a relay room beside
//!   WebSocket peers.
//! - [`sim`]: a deterministic simulated network. Seeded randomness, simulated time, per-link
//!   delay, jitter, reordering (on links declared unordered), duplication, loss, partitions.
//!   It drives sans-IO nodes (such as [`signaling_core::negotiation::Negotiation`], wrapped in
//!   [`sim::SimPeer`]) with no real time passing, so thousands of cases run in seconds.
//!
//! With the `proptest` feature, the `strategy` module exports strategies for link faults and
//! signaling scenarios, so that a user can property-test a flow in a few lines (see its docs).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conn;
pub mod sim;
#[cfg(feature = "proptest")]
pub mod strategy;

pub use conn::{pair, pair_with, Hub, MemConfig, MemConnection, MemListener};
