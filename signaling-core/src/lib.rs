//! Sans-IO WebRTC signaling.
//!
//! `signaling-core` holds everything about WebRTC signaling that does not need a socket, a
//! runtime or a clock:
//!
//! - [`wire`]: the typed message model and its JSON codec (go2rtc's `webrtc/*` dialect, its v2
//!   `webrtc` form, and the browser's `RTCIceCandidate.toJSON()` object form), plus a forwarding
//!   path that reads only the envelope.
//! - [`candidate`]: ICE candidate attributes (RFC 8839 §5.1, RFC 6544 `tcptype`) parsed and
//!   written with an exact round trip.
//! - [`sdp`]: the few facts of an SDP that negotiation needs (m-sections, mids, BUNDLE, ICE
//!   credentials), extracted without building a full SDP model.
//! - [`sdpfrag`]: SDP fragments (RFC 8840, `application/trickle-ice-sdpfrag`), the trickle and
//!   ICE-restart bodies of WHIP and WHEP `PATCH` requests, parsed and written.
//! - [`negotiation`]: the offer/answer state machine (RFC 9429 §3.2, perfect negotiation, Trickle
//!   ICE ordering) driven by `handle_*` inputs and drained with `poll_output`.
//! - [`relay`]: the relay's routing logic (rooms, addressing, mailbox, ordering guard, limits,
//!   resume, candidate privacy), sans-IO.
//! - [`transport`]: what a connection carries and how it ends (frames, close codes, peer info);
//!   the `Transport` trait itself is in the `signaling` crate.
//! - [`admission`]: who may connect: token (query or cookie) and Origin checks over a
//!   connection's [`PeerInfo`](transport::PeerInfo), and combinators for your own.
//! - [`config`]: the error a configuration's `validate` returns for a setting that cannot work.
//! - [`whip`]: WHIP (RFC 9725) and WHEP session resources: the HTTP signaling state machine,
//!   answering requests with `http` responses.
//! - [`ice`]: short-lived TURN REST credentials for `iceServers`, and a configurable candidate
//!   privacy policy (drop host/mDNS/private-range candidates, relay only).
//!
//! Nothing here performs IO or reads the clock: time is an argument. The `signaling` crate runs
//! these state machines on tokio (the session and relay drivers, the `Transport` trait).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod candidate;
pub mod config;
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod ice;
pub mod negotiation;
pub mod relay;
pub mod sdp;
pub mod sdpfrag;
pub mod transport;
pub mod whip;
pub mod wire;
