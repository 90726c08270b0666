//! Two Rust peers on two independent WebRTC stacks (webrtc-rs 0.21 and str0m 0.25) calling
//! each other through the relay, each driven by the library's session driver over a WebSocket.
pub mod call;
pub mod link;
pub mod peer;
pub mod stack;
pub mod str0m_stack;
pub mod tap;
pub mod webrtc_stack;
