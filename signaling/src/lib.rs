//! WebRTC signaling on tokio: the async layer over the sans-IO `signaling-core`.
//!
//! `signaling-core` decides everything (what to send, what to apply, who may join, where a
//! frame goes) without a socket, a runtime or a clock. This crate runs it:
//!
//! - [`transport`]: the one small trait a transport implements (WebSocket in `signaling-ws`,
//!   in-memory in `signaling-mem`, or your own), and its contract.
//! - [`session`]: a [`Negotiation`](negotiation::Negotiation) run over any transport in a task,
//!   with commands in (what your WebRTC stack did) and events out (what to apply to it).
//! - [`relay`]: the relay's routing state machine run over connections of any mix of
//!   transports, with per-connection queues and timers.
//!
//! The sans-IO modules are re-exported, so an application can depend on this crate alone:
//! [`negotiation`], [`wire`], [`candidate`], [`sdp`], [`sdpfrag`], [`ice`], [`admission`],
//! [`config`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod relay;
pub mod session;
pub mod transport;

pub use signaling_core::{admission, candidate, config, ice, negotiation, sdp, sdpfrag, wire};
