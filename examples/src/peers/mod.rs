//! Two Rust peers on two independent WebRTC stacks (webrtc-rs 0.21 and str0m 0.25) calling
//! each other through the relay, each driven by the library's session driver over a WebSocket.
pub mod call;
pub mod link;
pub mod peer;
pub mod stack;
pub mod str0m_stack;
pub mod tap;
pub mod webrtc_stack;

/// Every bound of the peers, their stacks and the test aids, with its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Commands to a stack's task, and events from it, that may wait. Default: 1024.
    pub stack_queue: usize,
    /// Commands to a peer that may wait. Default: 64.
    pub command_queue: usize,
    /// Events a peer keeps for its owner (older ones are dropped; data channel messages are
    /// counted, not kept). Default: 4096.
    pub event_log: usize,
    /// Data channel messages a stack holds while its send buffer is full (str0m), or bytes
    /// buffered per channel before a send waits (webrtc-rs, in KiB). Default: 4096.
    pub send_buffer: usize,
    /// Connections a [`link::Link`] carries at once. Default: 16.
    pub link_connections: usize,
    /// Frames a [`tap::TapHandle`] holds to slip in after the next offer. Default: 16.
    pub injected_frames: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            stack_queue: 1024,
            command_queue: 64,
            event_log: 4096,
            send_buffer: 4096,
            link_connections: 16,
            injected_frames: 16,
        }
    }
}
